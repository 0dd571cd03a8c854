# Agent upgrade manifest policies (builtin set "agents").
#
# Input: one agent upgrade manifest (shape: policies/agents/schema.json):
#   {"agent", "version", "current_version", "allow_downgrade"?,
#    "artifacts": [{"platform", "url", "checksum"}],
#    "rollout": {"stages": ["canary", ...] | [{"name", "percent"?}, ...]}}
package cd_checks.agents

finding(id, msg, path) := {"msg": msg, "rule": id, "path": path}

has_key(obj, key) if {
	is_object(obj)
	key in object.keys(obj)
}

manifest if is_object(input)

agent := input.agent if {
	is_string(input.agent)
} else := "the agent"

# Semantic version 2.0.0, with an optional leading "v" (v1.8.2), as tags often have.
semver_text(v) := trim_prefix(v, "v") if {
	is_string(v)
	semver.is_valid(trim_prefix(v, "v"))
}

# --- AGENT-001: versions are semantic versions -------------------------------

deny contains result if {
	manifest
	not semver_text(input.version)
	msg := sprintf(
		"version %v of %s is not a semantic version (MAJOR.MINOR.PATCH, quoted)",
		[object.get(input, "version", "(missing)"), agent],
	)
	result := finding("AGENT-001", msg, key_path("version"))
}

deny contains result if {
	manifest
	has_key(input, "current_version")
	not semver_text(input.current_version)
	msg := sprintf("current_version %v is not a semantic version (MAJOR.MINOR.PATCH, quoted)", [input.current_version])
	result := finding("AGENT-001", msg, ["current_version"])
}

# --- AGENT-002: no downgrade unless explicitly allowed -----------------------

deny contains result if {
	manifest
	not has_key(input, "current_version")
	msg := sprintf(
		"no current_version: cannot tell whether this rollout of %s upgrades or downgrades the fleet",
		[agent],
	)
	result := finding("AGENT-002", msg, key_path("version"))
}

deny contains result if {
	semver.compare(semver_text(input.version), semver_text(input.current_version)) < 0
	not input.allow_downgrade == true
	msg := sprintf(
		"%s would go from %s down to %s; set allow_downgrade: true (and a reason) if the downgrade is intended",
		[agent, input.current_version, input.version],
	)
	result := finding("AGENT-002", msg, ["version"])
}

# --- AGENT-003: every artifact has a checksum --------------------------------

deny contains result if {
	manifest
	not has_artifacts
	msg := sprintf("no artifacts: list the %s packages or archives with their checksums", [agent])
	result := finding("AGENT-003", msg, key_path("artifacts"))
}

deny contains result if {
	some [i, artifact] in artifacts
	not valid_checksum(artifact.checksum)
	msg := sprintf(
		"artifact %s has no valid checksum (sha256:<64 hex> or sha512:<128 hex>); a tampered or truncated download would be installed",
		[artifact_label(artifact, i)],
	)
	result := finding("AGENT-003", msg, artifact_path(i, artifact, "checksum"))
}

has_artifacts if count(artifacts) > 0

# Artifacts as [index in input.artifacts, artifact].
artifacts contains [i, a] if {
	is_array(input.artifacts)
	some i, a in input.artifacts
	is_object(a)
}

valid_checksum(c) if {
	is_string(c)
	regex.match(`^(sha256:[0-9a-fA-F]{64}|sha512:[0-9a-fA-F]{128})$`, c)
}

artifact_label(artifact, i) := artifact.platform if {
	is_string(artifact.platform)
} else := artifact.url if {
	is_string(artifact.url)
} else := sprintf("#%d", [i])

# --- AGENT-004: the rollout starts with a canary stage -----------------------

deny contains result if {
	manifest
	not "canary" in stage_names
	msg := sprintf(
		"rollout stages of %s have no canary stage; a bad agent build would hit the whole fleet at once",
		[agent],
	)
	result := finding("AGENT-004", msg, rollout_path)
}

deny contains result if {
	"canary" in stage_names
	stage_names[0] != "canary"
	msg := sprintf("the canary stage must come first (stages: %s)", [concat(", ", stage_names)])
	result := finding("AGENT-004", msg, ["rollout", "stages", 0])
}

stage_names := [name | some s in input.rollout.stages; name := stage_name(s)] if {
	is_array(input.rollout.stages)
} else := []

stage_name(s) := lower(s) if is_string(s)

stage_name(s) := lower(s.name) if is_string(s.name)

rollout_path := ["rollout", "stages"] if {
	is_array(input.rollout.stages)
} else := key_path("rollout")

# --- AGENT-005: artifacts come over https ------------------------------------

deny contains result if {
	some [i, artifact] in artifacts
	is_string(artifact.url)
	not startswith(lower(artifact.url), "https://")
	msg := sprintf("artifact %s is fetched over %s; download agents over https", [artifact.url, scheme(artifact.url)])
	result := finding("AGENT-005", msg, ["artifacts", i, "url"])
}

scheme(url) := split(url, "://")[0] if {
	contains(url, "://")
} else := "a path without a scheme"

# --- helpers -----------------------------------------------------------------

key_path(key) := [key] if {
	has_key(input, key)
} else := []

artifact_path(i, artifact, key) := ["artifacts", i, key] if {
	has_key(artifact, key)
} else := ["artifacts", i]
