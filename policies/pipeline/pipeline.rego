# Policies on the repository's own cd-checks.yml rollout section (builtin set "pipeline").
#
# Input: the cd-checks.yml document. rollout.stages = [{name, hosts, percent?,
# waves?, environment?}]; a stage with `percent` is a canary.
# With `changes:` (change types, each with its own rollout keys and `defaults:`)
# these rules do not look at the types' sections yet: they judge `rollout:` only. A stage is a
# staging (production) stage when a word of its name, environment or hosts is
# a staging (production) word; a canary counts as production.
#
# Config (data.cd_checks.config.pipeline):
#   canary_min_percent, canary_max_percent   allowed canary size (default 5 and 10)
#   staging_words      default staging, stage, stg
#   production_words   default production, prod
#   min_bake_seconds   PIPE-005 warns below this (default 60)
package cd_checks.pipeline

config := object.get(data, ["cd_checks", "config", "pipeline"], {})

canary_min := object.get(config, "canary_min_percent", 5)

canary_max := object.get(config, "canary_max_percent", 10)

staging_words := object.get(config, "staging_words", ["staging", "stage", "stg"])

production_words := object.get(config, "production_words", ["production", "prod"])

min_bake_seconds := object.get(config, "min_bake_seconds", 60)

finding(id, msg, path) := {"msg": msg, "rule": id, "path": path}

has_key(obj, key) if {
	is_object(obj)
	key in object.keys(obj)
}

rollout := input.rollout if is_object(input.rollout)

stages contains [i, stage] if {
	is_array(rollout.stages)
	some i, stage in rollout.stages
	is_object(stage)
}

stage_label(stage) := stage.name if {
	is_string(stage.name)
} else := "(unnamed)"

words(stage) := {w |
	some key in ["name", "environment", "hosts"]
	is_string(stage[key])
	some w in regex.split(`[^a-z0-9]+`, lower(stage[key]))
}

staging(stage) if {
	some w in staging_words
	w in words(stage)
}

canary(stage) if {
	has_key(stage, "percent")
	not staging(stage)
}

production(stage) if canary(stage)

production(stage) if {
	not staging(stage)
	some w in production_words
	w in words(stage)
}

staging_indexes := {i | some [i, s] in stages; staging(s)}

production_indexes := {i | some [i, s] in stages; production(s)}

stages_path := ["rollout", "stages"] if {
	has_key(rollout, "stages")
} else := ["rollout"] if {
	rollout
} else := []

# --- PIPE-001: staging comes before production -------------------------------

deny contains result if {
	is_object(input)
	not rollout
	not is_object(input.changes) # change types: each has a rollout section of its own
	msg := "no rollout section: merged changes are not deployed through staging, canary and health gates"
	result := finding("PIPE-001", msg, [])
}

deny contains result if {
	rollout
	count(staging_indexes) == 0
	msg := sprintf(
		"no staging stage (a stage whose name, environment or hosts says %s); production gets untested changes",
		[concat("/", staging_words)],
	)
	result := finding("PIPE-001", msg, stages_path)
}

deny contains result if {
	count(production_indexes) > 0
	some i in staging_indexes
	i > min(production_indexes)
	first := rollout.stages[min(production_indexes)]
	msg := sprintf(
		"staging stage %s runs after production stage %s; staging must come first",
		[stage_label(rollout.stages[i]), stage_label(first)],
	)
	result := finding("PIPE-001", msg, ["rollout", "stages", i])
}

# --- PIPE-002: a canary of 5-10 % of production ------------------------------

deny contains result if {
	rollout
	count({i | some [i, s] in stages; canary(s)}) == 0
	msg := sprintf(
		"no canary stage (a production stage with percent: %v-%v); the first production wave hits a whole group",
		[canary_min, canary_max],
	)
	result := finding("PIPE-002", msg, stages_path)
}

deny contains result if {
	some [i, stage] in stages
	canary(stage)
	not canary_size_ok(stage.percent)
	msg := sprintf(
		"canary stage %s takes %v%% of production; keep canaries between %v%% and %v%%",
		[stage_label(stage), stage.percent, canary_min, canary_max],
	)
	result := finding("PIPE-002", msg, ["rollout", "stages", i, "percent"])
}

deny contains result if {
	some [i, stage] in stages
	canary(stage)
	some [k, other] in stages
	k < i
	production(other)
	not canary(other)
	msg := sprintf(
		"canary stage %s runs after production stage %s; the canary must come before the rest of production",
		[stage_label(stage), stage_label(other)],
	)
	result := finding("PIPE-002", msg, ["rollout", "stages", i])
}

canary_size_ok(p) if {
	is_number(p)
	p >= canary_min
	p <= canary_max
}

# --- PIPE-003: health checks gate every stage --------------------------------

deny contains result if {
	rollout
	not health_checked
	msg := "rollout.health defines no testinfra tests and no http probes: no stage is gated on health"
	result := finding("PIPE-003", msg, health_path)
}

health_checked if {
	is_string(rollout.health.testinfra)
	trim_space(rollout.health.testinfra) != ""
}

health_checked if {
	is_array(rollout.health.http)
	count(rollout.health.http) > 0
}

health_path := ["rollout", "health"] if {
	has_key(rollout, "health")
} else := ["rollout"]

# --- PIPE-004: automatic rollback is on --------------------------------------

deny contains result if {
	rollout
	not rollout.rollback.automatic == true
	msg := "rollout.rollback.automatic is not true: a failed health gate leaves the change on the hosts that got it"
	result := finding("PIPE-004", msg, rollback_path)
}

rollback_path := ["rollout", "rollback", "automatic"] if {
	has_key(rollout.rollback, "automatic")
} else := ["rollout", "rollback"] if {
	has_key(rollout, "rollback")
} else := ["rollout"]

# --- PIPE-005: health gates bake before they pass (warning) ------------------

warn contains result if {
	health_checked
	bake := object.get(rollout.health, "bake_seconds", 0)
	is_number(bake)
	bake < min_bake_seconds
	msg := sprintf(
		"health gates check after %vs (minimum %vs): errors that need traffic or a restart cycle to show up pass the gate",
		[bake, min_bake_seconds],
	)
	result := finding("PIPE-005", msg, bake_path)
}

bake_path := ["rollout", "health", "bake_seconds"] if {
	has_key(rollout.health, "bake_seconds")
} else := health_path
