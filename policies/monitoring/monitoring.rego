# Prometheus alerting and recording rule policies (builtin set "monitoring").
#
# Input: one Prometheus rule file, {"groups": [{"name", "rules": [...]}]}, or a
# Kubernetes PrometheusRule resource (prometheus-operator), groups under spec.
# Cross-file checks (duplicate alert names) live in cd_checks.monitoring.combined.
#
# Config (data.cd_checks.config.monitoring):
#   min_for      shortest `for` an alert may have before MON-002 warns (default "5m")
#   severities   allowed values of the severity label (default critical, warning, info)
package cd_checks.monitoring

config := object.get(data, ["cd_checks", "config", "monitoring"], {})

min_for := object.get(config, "min_for", "5m")

severities := object.get(config, "severities", ["critical", "warning", "info"])

finding(id, msg, path) := {"msg": msg, "rule": id, "path": path}

has_key(obj, key) if {
	is_object(obj)
	key in object.keys(obj)
}

# Where the groups are: the top level of a rule file, spec of a PrometheusRule.
groups_at := ["spec", "groups"] if {
	input.kind == "PrometheusRule"
} else := ["groups"]

groups := object.get(input, groups_at, []) if is_object(input)

# Every group, as [path, group].
group_list contains [array.concat(groups_at, [i]), group] if {
	is_array(groups)
	some i, group in groups
	is_object(group)
}

# Every rule of every group, as [path, rule].
rules contains [array.concat(gpath, ["rules", j]), rule] if {
	some [gpath, group] in group_list
	is_array(group.rules)
	some j, rule in group.rules
	is_object(rule)
}

alerts contains [path, rule] if {
	some [path, rule] in rules
	is_string(rule.alert)
}

# --- durations (Prometheus syntax: 1y2w3d4h5m6s7ms, or 0) --------------------

duration_units := {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}

valid_duration(s) if {
	is_string(s)
	regex.match(`^(0|([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?)$`, s)
	s != ""
}

seconds(s) := sum(parts) if {
	valid_duration(s)
	matches := regex.find_all_string_submatch_n(`([0-9]+)(ms|y|w|d|h|m|s)`, s, -1)
	parts := [(to_number(m[1]) * duration_units[m[2]]) | some m in matches]
}

# --- MON-001: every alert has a valid `for` ----------------------------------

deny contains result if {
	some [path, rule] in alerts
	not has_key(rule, "for")
	msg := sprintf(
		"alert %s has no `for`: it fires on the first failed evaluation, so a single scrape blip pages someone",
		[rule.alert],
	)
	result := finding("MON-001", msg, path)
}

deny contains result if {
	some [path, rule] in alerts
	has_key(rule, "for")
	not valid_duration(rule["for"])
	msg := sprintf("alert %s: `for` %v is not a Prometheus duration (e.g. 5m, 1h30m)", [rule.alert, rule["for"]])
	result := finding("MON-001", msg, array.concat(path, ["for"]))
}

# --- MON-002: `for` is not shorter than the configured minimum (warning) -----

warn contains result if {
	some [path, rule] in alerts
	seconds(rule["for"]) < seconds(min_for)
	msg := sprintf(
		"alert %s waits only %s before firing (minimum %s); short `for` values page on transient spikes",
		[rule.alert, rule["for"], min_for],
	)
	result := finding("MON-002", msg, array.concat(path, ["for"]))
}

# --- MON-003: severity label from the allowed set ----------------------------

deny contains result if {
	some [path, rule] in alerts
	not has_label(rule, "severity")
	msg := sprintf(
		"alert %s has no severity label; routing and paging depend on it (allowed: %s)",
		[rule.alert, concat(", ", severities)],
	)
	result := finding("MON-003", msg, label_path(path, rule))
}

deny contains result if {
	some [path, rule] in alerts
	has_label(rule, "severity")
	not rule.labels.severity in severities
	msg := sprintf(
		"alert %s has severity %v, not one of %s; Alertmanager routes will not match it",
		[rule.alert, rule.labels.severity, concat(", ", severities)],
	)
	result := finding("MON-003", msg, array.concat(path, ["labels", "severity"]))
}

has_label(rule, name) if {
	is_object(rule.labels)
	has_key(rule.labels, name)
}

label_path(path, rule) := array.concat(path, ["labels"]) if {
	is_object(rule.labels)
} else := path

# --- MON-004 / MON-005: summary and runbook_url annotations ------------------

deny contains result if {
	some [path, rule] in alerts
	not annotation(rule, "summary")
	msg := sprintf("alert %s has no summary annotation; the page says nothing about what is wrong", [rule.alert])
	result := finding("MON-004", msg, annotation_path(path, rule, "summary"))
}

deny contains result if {
	some [path, rule] in alerts
	not annotation(rule, "runbook_url")
	msg := sprintf("alert %s has no runbook_url annotation; on-call has no documented first step", [rule.alert])
	result := finding("MON-005", msg, annotation_path(path, rule, "runbook_url"))
}

deny contains result if {
	some [path, rule] in alerts
	url := annotation(rule, "runbook_url")
	not regex.match(`^(https?://\S+|\{\{.*\}\}\S*)$`, url)
	msg := sprintf("alert %s: runbook_url %q is not an http(s) URL", [rule.alert, url])
	result := finding("MON-005", msg, array.concat(path, ["annotations", "runbook_url"]))
}

annotation(rule, name) := value if {
	value := rule.annotations[name]
	is_string(value)
	trim_space(value) != ""
}

annotation_path(path, rule, name) := array.concat(path, ["annotations", name]) if {
	is_object(rule.annotations)
	has_key(rule.annotations, name)
} else := array.concat(path, ["annotations"]) if {
	is_object(rule.annotations)
} else := path

# --- MON-006: recording rule names follow level:metric:operations ------------

deny contains result if {
	some [path, rule] in rules
	is_string(rule.record)
	not regex.match(`^[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_]+$`, rule.record)
	msg := sprintf(
		"recording rule %q does not follow level:metric:operations (e.g. job:http_requests:rate5m)",
		[rule.record],
	)
	result := finding("MON-006", msg, array.concat(path, ["record"]))
}

# --- MON-008: group names are unique within a file ---------------------------

deny contains result if {
	is_array(groups)
	some i, group in groups
	is_string(group.name)
	some k, other in groups
	k < i
	other.name == group.name
	msg := sprintf("rule group %q is defined twice in this file; Prometheus refuses to load it", [group.name])
	result := finding("MON-008", msg, array.concat(groups_at, [i, "name"]))
}
