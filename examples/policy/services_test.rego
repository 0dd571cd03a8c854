package main

import rego.v1

critical := {"name": "shop", "tier": "critical", "oncall": "shop-primary", "healthcheck": {"path": "/healthz", "interval_seconds": 15}}

test_critical_with_oncall_passes if {
	count(deny) == 0 with input as critical
}

test_critical_without_oncall_denied if {
	some result in deny with input as object.remove(critical, ["oncall"])
	result.rule == "SVC-001"
}

test_slow_healthcheck_denied if {
	slow := object.union(critical, {"healthcheck": {"path": "/healthz", "interval_seconds": 120}})
	some result in deny with input as slow
	result.rule == "SVC-002"
}

test_unknown_dependency_warns if {
	some result in warn with input as object.union(critical, {"dependencies": ["mystery"]})
	result.rule == "SVC-003"
}
