package cd_checks.pipeline_test

import data.cd_checks.pipeline

denied := {r.rule | some r in pipeline.deny}

warned := {r.rule | some r in pipeline.warn}

staging := {"name": "staging", "hosts": "web_staging"}

canary := {"name": "canary", "hosts": "web_production", "percent": 5}

production := {"name": "production", "hosts": "web_production", "waves": ["25%", "50%", "100%"]}

good_rollout := {
	"inventory": "inventory/hosts.yml",
	"apply": {"ansible": {"playbook": "playbooks/site.yml"}},
	"stages": [staging, canary, production],
	"health": {"testinfra": "tests/health", "bake_seconds": 120, "retries": 3, "max_failed_percent": 0},
	"rollback": {"automatic": true},
}

config(patch) := {"policy": {"builtin": ["pipeline"]}, "rollout": object.union(object.remove(good_rollout, object.keys(patch)), patch)}

stages(list) := config({"stages": list})

test_good_config_is_clean if {
	count(pipeline.deny) == 0 with input as config({})
	count(pipeline.warn) == 0 with input as config({})
}

test_odd_input_does_not_error if {
	count(pipeline.deny) == 0 with input as [good_rollout]
	denied == {"PIPE-001", "PIPE-002", "PIPE-003", "PIPE-004"} with input as {"rollout": {"stages": "all", "health": [], "rollback": "yes"}}
	denied == {"PIPE-001", "PIPE-002"} with input as stages([1, {"name": 3, "percent": "5"}])
}

# PIPE-001

test_missing_rollout_denied if {
	"PIPE-001" in denied with input as {"policy": {"builtin": ["pipeline"]}}
}

test_change_types_are_no_missing_rollout if {
	types := {"defaults": good_rollout, "changes": {"nginx": {"files": ["nginx/**"]}}}
	not "PIPE-001" in denied with input as types
}

test_missing_staging_denied if {
	"PIPE-001" in denied with input as stages([canary, production])
}

test_staging_after_production_denied if {
	"PIPE-001" in denied with input as stages([canary, production, staging])
	some r in pipeline.deny with input as stages([canary, staging, production])
	r.rule == "PIPE-001"
	r.path == ["rollout", "stages", 1]
}

test_staging_by_environment_allowed if {
	not "PIPE-001" in denied with input as stages([{"name": "pre", "hosts": "web_pre", "environment": "staging"}, canary, production])
	not "PIPE-001" in denied with input as config({})
}

# PIPE-002

test_missing_canary_denied if {
	"PIPE-002" in denied with input as stages([staging, production])
}

test_canary_size_denied if {
	"PIPE-002" in denied with input as stages([staging, object.union(canary, {"percent": 25}), production])
	"PIPE-002" in denied with input as stages([staging, object.union(canary, {"percent": 1}), production])
}

test_canary_after_production_denied if {
	"PIPE-002" in denied with input as stages([staging, production, canary])
}

test_canary_bounds_are_configurable if {
	not "PIPE-002" in denied with input as stages([staging, object.union(canary, {"percent": 2}), production])
		with data.cd_checks.config.pipeline.canary_min_percent as 1
}

test_canary_allowed if {
	not "PIPE-002" in denied with input as stages([staging, object.union(canary, {"percent": 10}), production])
}

# PIPE-003

test_missing_health_denied if {
	"PIPE-003" in denied with input as config({"health": {"bake_seconds": 60}})
	"PIPE-003" in denied with input as config({"health": {"http": []}})
	"PIPE-003" in denied with input as {"rollout": object.remove(good_rollout, ["health"])}
}

test_http_health_allowed if {
	not "PIPE-003" in denied with input as config({"health": {"http": [{"url": "http://{host}/healthz", "status": 200}], "bake_seconds": 60}})
}

# PIPE-004

test_rollback_off_denied if {
	"PIPE-004" in denied with input as config({"rollback": {"automatic": false}})
	"PIPE-004" in denied with input as {"rollout": object.remove(good_rollout, ["rollback"])}
}

test_rollback_on_allowed if {
	not "PIPE-004" in denied with input as config({})
}

# PIPE-005

test_no_bake_warned if {
	"PIPE-005" in warned with input as config({"health": {"testinfra": "tests/health"}})
	"PIPE-005" in warned with input as config({"health": {"testinfra": "tests/health", "bake_seconds": 10}})
}

test_bake_allowed if {
	not "PIPE-005" in warned with input as config({})
	not "PIPE-005" in warned with input as config({"health": {"testinfra": "t", "bake_seconds": 10}})
		with data.cd_checks.config.pipeline.min_bake_seconds as 5
}
