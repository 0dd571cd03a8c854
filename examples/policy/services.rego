# Service catalogue rules of this (example) organisation: every critical
# service has someone paged for it, and health checks are frequent enough
# for the rollout gates to notice a bad deploy.
package main

import rego.v1

is_service if {
	is_string(input.name)
	is_string(input.tier)
}

deny contains {"msg": msg, "path": ["tier"], "rule": "SVC-001"} if {
	is_service
	input.tier == "critical"
	not input.oncall
	msg := sprintf("critical service %q has no oncall rotation", [input.name])
}

deny contains {"msg": msg, "path": ["healthcheck", "interval_seconds"], "rule": "SVC-002"} if {
	is_service
	input.tier == "critical"
	input.healthcheck.interval_seconds > data.limits.max_critical_interval_seconds
	msg := sprintf(
		"critical service %q is health-checked every %ds; at most %ds",
		[input.name, input.healthcheck.interval_seconds, data.limits.max_critical_interval_seconds],
	)
}

warn contains {"msg": msg, "path": ["dependencies"], "rule": "SVC-003"} if {
	is_service
	some dependency in input.dependencies
	not dependency in data.limits.known_services
	msg := sprintf("service %q depends on %q, which is not in the catalogue", [input.name, dependency])
}
