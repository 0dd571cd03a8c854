package cd_checks.monitoring_test

import data.cd_checks.monitoring
import data.cd_checks.monitoring.combined

denied := {r.rule | some r in monitoring.deny}

warned := {r.rule | some r in monitoring.warn}

combined_denied := {r.rule | some r in combined.deny}

# whatever the severity
reported := denied | warned

good_alert := {
	"alert": "NginxHighErrorRate",
	"expr": "sum by (instance) (rate(nginx_http_requests_total{status=~\"5..\"}[5m])) / sum by (instance) (rate(nginx_http_requests_total[5m])) > 0.05",
	"for": "10m",
	"labels": {"severity": "critical", "team": "edge"},
	"annotations": {
		"summary": "More than 5% of requests on {{ $labels.instance }} fail",
		"runbook_url": "https://runbooks.example.com/edge/nginx-high-error-rate",
	},
}

good_record := {"record": "instance:nginx_http_requests:rate5m", "expr": "sum by (instance) (rate(nginx_http_requests_total[5m]))"}

file_with(rule) := {"groups": [{"name": "nginx", "rules": [good_record, rule]}]}

alert_with(patch) := object.union(object.remove(good_alert, object.keys(patch)), patch)

alert_without(key) := object.remove(good_alert, [key])

test_good_file_is_clean if {
	count(monitoring.deny) == 0 with input as file_with(good_alert)
	count(monitoring.warn) == 0 with input as file_with(good_alert)
}

test_odd_input_does_not_error if {
	count(monitoring.deny) == 0 with input as {"groups": "none"}
	count(monitoring.deny) == 0 with input as {"groups": [{"name": "x", "rules": [1, "two", null]}]}
	count(monitoring.deny) == 0 with input as ["groups"]
	count(monitoring.deny) == 0 with input as {"kind": "PrometheusRule", "spec": "x"}
	count(monitoring.deny) == 0 with input as {"kind": "PrometheusRule", "spec": {"groups": {"a": 1}}}
	count(combined.deny) == 0 with input as [{"path": "a", "contents": {"kind": "PrometheusRule", "spec": 3}}, {"contents": null}]
	count(monitoring.warn) == 0 with input as file_with(alert_with({"for": 300}))
}

# MON-001

test_alert_without_for_denied if {
	"MON-001" in denied with input as file_with(alert_without("for"))
}

test_alert_with_bad_for_denied if {
	"MON-001" in denied with input as file_with(alert_with({"for": "5 minutes"}))
	"MON-001" in denied with input as file_with(alert_with({"for": 300}))
}

test_alert_with_for_allowed if {
	not "MON-001" in denied with input as file_with(alert_with({"for": "1h30m"}))
	not "MON-001" in denied with input as file_with(alert_with({"for": "30s"}))
}

# `for: 0m` is how generators spell "no for" (246 alerts in one public collection).
test_zero_for_is_no_for if {
	some r in monitoring.deny with input as file_with(alert_with({"for": "0m"}))
	r.rule == "MON-001"
	r.path == ["groups", 0, "rules", 1, "for"]
	contains(r.msg, "`for: 0m`, which is no `for`")
	"MON-001" in denied with input as file_with(alert_with({"for": "0"}))
	"MON-001" in denied with input as file_with(alert_with({"for": "0s"}))
	not "MON-002" in warned with input as file_with(alert_with({"for": "0m"}))
}

watchdog := {
	"alert": "Watchdog",
	"expr": "vector(1)",
	"labels": {"severity": "none"},
	"annotations": {
		"summary": "An alert that should always be firing to certify that Alertmanager is working properly.",
		"runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/general/watchdog",
	},
}

info_inhibitor := {
	"alert": "InfoInhibitor",
	"expr": "ALERTS{severity = \"info\"} == 1 unless on (namespace) ALERTS{alertname != \"InfoInhibitor\", severity =~ \"warning|critical\", alertstate=\"firing\"} == 1",
	"labels": {"severity": "none"},
	"annotations": {
		"summary": "Info-level alert inhibition.",
		"runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/general/infoinhibitor",
	},
}

test_heartbeat_and_inhibitor_alerts_allowed if {
	count(monitoring.deny) == 0 with input as file_with(watchdog)
	count(monitoring.deny) == 0 with input as file_with(info_inhibitor)
	count(monitoring.warn) == 0 with input as file_with(watchdog)
	not "MON-001" in denied with input as file_with(object.union(watchdog, {"for": "0m", "labels": {"severity": "critical"}}))
	not "MON-002" in warned with input as file_with(object.union(info_inhibitor, {"for": "1m"}))
}

test_heartbeat_needs_its_shape if {
	# severity none is for heartbeats and inhibitors only; a constant other than vector(n) is no heartbeat
	"MON-003" in denied with input as file_with(alert_with({"labels": {"severity": "none"}}))
	"MON-001" in denied with input as file_with(object.union(watchdog, {"expr": "up == 0"}))
	"MON-001" in denied with input as file_with(object.union(watchdog, {"expr": "MY_ALERTS_TOTAL > 1"}))
}

ttl_alert := alert_with({
	"alert": "SSLCertificateExpiresSoon",
	"expr": "probe_ssl_earliest_cert_expiry{job=\"blackbox\"} - time() < 86400 * 14",
})

test_ttl_alert_without_for_allowed if {
	not "MON-001" in denied with input as file_with(object.remove(ttl_alert, ["for"]))
	not "MON-002" in warned with input as file_with(object.union(ttl_alert, {"for": "1m"}))
	"MON-001" in denied with input as file_with(object.remove(object.union(ttl_alert, {"expr": "x509_timestamp(x) < 5"}), ["for"]))
}

test_missing_for_points_at_rule if {
	some r in monitoring.deny with input as file_with(alert_without("for"))
	r.rule == "MON-001"
	r.path == ["groups", 0, "rules", 1]
}

# MON-002

test_short_for_warned if {
	"MON-002" in warned with input as file_with(alert_with({"for": "1m"}))
	"MON-002" in warned with input as file_with(alert_with({"for": "90s"}))
}

test_min_for_is_configurable if {
	"MON-002" in warned with input as file_with(good_alert) with data.cd_checks.config.monitoring.min_for as "15m"
	not "MON-002" in warned with input as file_with(alert_with({"for": "2m"})) with data.cd_checks.config.monitoring.min_for as "2m"
}

test_long_for_allowed if {
	not "MON-002" in warned with input as file_with(alert_with({"for": "5m"}))
	not "MON-002" in warned with input as file_with(alert_with({"for": "1d"}))
}

# MON-003

test_missing_severity_denied if {
	"MON-003" in denied with input as file_with(alert_with({"labels": {"team": "edge"}}))
	"MON-003" in denied with input as file_with(alert_without("labels"))
}

test_unknown_severity_denied if {
	"MON-003" in denied with input as file_with(alert_with({"labels": {"severity": "page"}}))
}

test_severities_are_configurable if {
	not "MON-003" in denied with input as file_with(alert_with({"labels": {"severity": "page"}}))
		with data.cd_checks.config.monitoring.severities as ["page", "ticket"]
}

test_known_severity_allowed if {
	not "MON-003" in denied with input as file_with(alert_with({"labels": {"severity": "warning"}}))
}

# MON-004

test_missing_summary_denied if {
	"MON-004" in denied with input as file_with(alert_with({"annotations": {"runbook_url": "https://runbooks.example.com/x"}}))
	"MON-004" in denied with input as file_with(alert_with({"annotations": {"summary": " ", "runbook_url": "https://runbooks.example.com/x"}}))
}

test_summary_allowed if {
	not "MON-004" in denied with input as file_with(good_alert)
}

# MON-005

test_missing_runbook_warned if {
	"MON-005" in warned with input as file_with(alert_with({"annotations": {"summary": "disk full"}}))
	"MON-005" in warned with input as file_with(alert_without("annotations"))
	not "MON-005" in denied with input as file_with(alert_without("annotations"))
}

test_runbook_not_a_url_warned if {
	"MON-005" in warned with input as file_with(alert_with({"annotations": {"summary": "x", "runbook_url": "see wiki"}}))
}

test_templated_runbook_allowed if {
	not "MON-005" in warned with input as file_with(alert_with({"annotations": {
		"summary": "x",
		"runbook_url": "{{ $externalURL }}/runbooks/disk",
	}}))
}

# MON-006

test_recording_rule_name_warned if {
	"MON-006" in warned with input as file_with({"record": "nginx_request_rate", "expr": "rate(x[5m])"})
	"MON-006" in warned with input as file_with({"record": "job:nginx_requests", "expr": "rate(x[5m])"})
	not "MON-006" in denied with input as file_with({"record": "job:nginx_requests", "expr": "rate(x[5m])"})
}

test_recording_rule_name_allowed if {
	not "MON-006" in warned with input as file_with({"record": "job:nginx_http_requests:rate5m", "expr": "x"})
	not "MON-006" in warned with input as file_with({"record": ":node_memory_MemAvailable_bytes:sum", "expr": "sum(node_memory_MemAvailable_bytes)"})
}

record(name, expr) := file_with({"record": name, "expr": expr})

# node_exporter's docs/example-16-compatibility-rules.yml and its new-to-old twin
test_compatibility_renames_allowed if {
	not "MON-006" in reported with input as record("node_boot_time_seconds", "node_boot_time")
	not "MON-006" in reported with input as record("node_cpu", `label_replace(node_cpu_seconds_total, "cpu", "$1", "cpu", "cpu(.+)")`)
	not "MON-006" in reported with input as record("node_disk_io_time_seconds_total", "node_disk_io_time_ms / 1000")
	not "MON-006" in reported with input as record("node_disk_io_time_ms", "node_disk_io_time_seconds_total * 1000")
	not "MON-006" in reported with input as record("node_supervisord_uptime", "time() - node_supervisord_start_time_seconds")
	not "MON-006" in reported with input as record("node_memory_DirectMap2M", `node_memory_DirectMap2M_bytes{job="node"}`)
	not "MON-006" in reported with input as record(
		"node_nfs_requests_total",
		`label_replace(label_replace(node_nfs_procedures, "proto", "$1", "version", "(.+)"), "method", "$1", "procedure", "(.+)")`,
	)
}

test_computations_are_no_renames if {
	"MON-006" in warned with input as record("node_cpu_rate", "rate(node_cpu_seconds_total[5m])")
	"MON-006" in warned with input as record("node_cpu_total", "sum(node_cpu_seconds_total)")
	"MON-006" in warned with input as record("node_cpu_total", "sum by (instance) (node_cpu_seconds_total)")
	"MON-006" in warned with input as record("mem_ratio", "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes")
	"MON-006" in warned with input as record("cpu_abs", "abs(node_cpu_seconds_total)")
	"MON-006" in warned with input as record("a:b", "node_cpu")
	"MON-006" in warned with input as record("up_one", "vector(1)")
}

test_renames_are_configurable if {
	"MON-006" in warned with input as record("node_boot_time_seconds", "node_boot_time")
		with data.cd_checks.config.monitoring.allow_renames as false
}

# MON-008

test_duplicate_group_denied if {
	"MON-008" in denied with input as {"groups": [{"name": "nginx", "rules": [good_alert]}, {"name": "nginx", "rules": [good_record]}]}
}

test_distinct_groups_allowed if {
	not "MON-008" in denied with input as {"groups": [{"name": "nginx", "rules": [good_alert]}, {"name": "node", "rules": [good_record]}]}
}

# MON-007 (combined)

two_files(second) := [
	{"path": "monitoring/alerts/nginx.yml", "contents": file_with(good_alert)},
	{"path": "monitoring/alerts/edge.yml", "contents": second},
]

test_duplicate_alert_across_files_denied if {
	"MON-007" in combined_denied with input as two_files(file_with(good_alert))
}

test_duplicate_alert_points_at_later_file if {
	some r in combined.deny with input as two_files(file_with(good_alert))
	r.path == [1, "contents", "groups", 0, "rules", 1, "alert"]
	contains(r.msg, "monitoring/alerts/nginx.yml")
}

test_unique_alerts_across_files_allowed if {
	not "MON-007" in combined_denied with input as two_files(file_with(alert_with({"alert": "NginxDown"})))
	not "MON-007" in combined_denied with input as [{"path": "a.yml", "contents": "junk"}, 3]
}

test_each_later_copy_is_reported_once if {
	files := [
		{"path": "a.yml", "contents": file_with(good_alert)},
		{"path": "b.yml", "contents": file_with(good_alert)},
		{"path": "c.yml", "contents": file_with(good_alert)},
	]
	found := [[r.path[0], r.msg] | some r in combined.deny] with input as files
	count(found) == 2
	every item in found {
		item[0] in {1, 2}
		contains(item[1], "a.yml")
	}
}

test_same_file_severity_tiers_are_not_cross_file if {
	tiers := {"groups": [{"name": "disk", "rules": [
		alert_with({"alert": "DiskFull", "labels": {"severity": "warning"}}),
		alert_with({"alert": "DiskFull", "labels": {"severity": "critical"}}),
	]}]}
	not "MON-007" in combined_denied with input as [{"path": "disk.yml", "contents": tiers}]
}

prometheus_rule(rule) := {
	"apiVersion": "monitoring.coreos.com/v1",
	"kind": "PrometheusRule",
	"metadata": {"name": "nginx", "namespace": "monitoring"},
	"spec": file_with(rule),
}

test_prometheus_rule_resource_is_checked if {
	count(monitoring.deny) == 0 with input as prometheus_rule(good_alert)
	some r in monitoring.deny with input as prometheus_rule(alert_without("for"))
	r.rule == "MON-001"
	r.path == ["spec", "groups", 0, "rules", 1]
}

test_prometheus_rule_duplicates_across_files if {
	some r in combined.deny with input as [
		{"path": "a.yml", "contents": file_with(good_alert)},
		{"path": "k8s/rules.yml", "contents": prometheus_rule(good_alert)},
	]
	r.rule == "MON-007"
	r.path == [1, "contents", "spec", "groups", 0, "rules", 1, "alert"]
}
