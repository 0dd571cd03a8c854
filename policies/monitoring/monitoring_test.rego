package cd_checks.monitoring_test

import data.cd_checks.monitoring
import data.cd_checks.monitoring.combined

denied := {r.rule | some r in monitoring.deny}

warned := {r.rule | some r in monitoring.warn}

combined_denied := {r.rule | some r in combined.deny}

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
	not "MON-001" in denied with input as file_with(alert_with({"for": "0"}))
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

test_missing_runbook_denied if {
	"MON-005" in denied with input as file_with(alert_with({"annotations": {"summary": "disk full"}}))
	"MON-005" in denied with input as file_with(alert_without("annotations"))
}

test_runbook_not_a_url_denied if {
	"MON-005" in denied with input as file_with(alert_with({"annotations": {"summary": "x", "runbook_url": "see wiki"}}))
}

test_templated_runbook_allowed if {
	not "MON-005" in denied with input as file_with(alert_with({"annotations": {
		"summary": "x",
		"runbook_url": "{{ $externalURL }}/runbooks/disk",
	}}))
}

# MON-006

test_recording_rule_name_denied if {
	"MON-006" in denied with input as file_with({"record": "nginx_request_rate", "expr": "rate(x[5m])"})
	"MON-006" in denied with input as file_with({"record": "job:nginx_requests", "expr": "rate(x[5m])"})
}

test_recording_rule_name_allowed if {
	not "MON-006" in denied with input as file_with({"record": "job:nginx_http_requests:rate5m", "expr": "x"})
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
