# Prometheus alerting and recording rule policies (builtin set "monitoring").
#
# Input: one Prometheus rule file, {"groups": [{"name", "rules": [...]}]}, or a
# Kubernetes PrometheusRule resource (prometheus-operator), groups under spec.
# Cross-file checks (duplicate alert names) live in cd_checks.monitoring.combined.
#
# Any other YAML (a Prometheus server config, a CRD) has no rule groups and is
# passed over quietly.
#
# Config (data.cd_checks.config.monitoring):
#   min_for        shortest `for` an alert may have before MON-002 warns (default "5m")
#   severities     allowed values of the severity label (default critical, warning, info)
#   allow_renames  recording rules that only rename one metric may keep a plain metric
#                  name (default true; node_exporter's compatibility rules)
package cd_checks.monitoring

config := object.get(data, ["cd_checks", "config", "monitoring"], {})

min_for := object.get(config, "min_for", "5m")

severities := object.get(config, "severities", ["critical", "warning", "info"])

allow_renames := object.get(config, "allow_renames", true)

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

# --- alerts that fire at once on purpose --------------------------------------

# A heartbeat (dead man's switch: Watchdog, DeadMansSwitch) always fires, so that
# its absence downstream says the alerting pipeline is broken: `expr: vector(1)`.
heartbeat(rule) if {
	is_string(rule.expr)
	regex.match(`^\s*vector\s*\(\s*[0-9.]+\s*\)\s*$`, rule.expr)
}

# An alert over the ALERTS series (InfoInhibitor, "too many alerts firing") is built
# from alerts that already waited their own `for`; it is there to inhibit or group.
meta_alert(rule) if {
	is_string(rule.expr)
	regex.match(`(^|[^a-zA-Z0-9_:])ALERTS(_FOR_STATE)?([^a-zA-Z0-9_:]|$)`, rule.expr)
}

# A time-to-live alert compares a timestamp with time() (a certificate that expires in
# 7 days, the last backup older than 26 h): the value moves one way with the clock, a
# scrape blip cannot flip it, and the threshold already is the wait.
ttl_alert(rule) if {
	is_string(rule.expr)
	regex.match(`(^|[^a-zA-Z0-9_:])time\s*\(\s*\)`, rule.expr)
}

fires_at_once(rule) if heartbeat(rule)

fires_at_once(rule) if meta_alert(rule)

fires_at_once(rule) if ttl_alert(rule)

# --- MON-001: every alert has a valid `for` ----------------------------------

deny contains result if {
	some [path, rule] in alerts
	not has_key(rule, "for")
	not fires_at_once(rule)
	msg := sprintf(
		"alert %s has no `for`: it fires on the first failed evaluation, so a single scrape blip pages someone",
		[rule.alert],
	)
	result := finding("MON-001", msg, path)
}

# `for: 0m` is what Prometheus does without a `for` (and what generators write for it).
deny contains result if {
	some [path, rule] in alerts
	seconds(rule["for"]) == 0
	not fires_at_once(rule)
	msg := sprintf(
		"alert %s has `for: %v`, which is no `for`: it fires on the first failed evaluation, so a single scrape blip pages someone",
		[rule.alert, rule["for"]],
	)
	result := finding("MON-001", msg, array.concat(path, ["for"]))
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
	seconds(rule["for"]) > 0 # zero is MON-001's
	seconds(rule["for"]) < seconds(min_for)
	not fires_at_once(rule)
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
	not unrouted(rule)
	msg := sprintf(
		"alert %s has severity %v, not one of %s; Alertmanager routes will not match it",
		[rule.alert, rule.labels.severity, concat(", ", severities)],
	)
	result := finding("MON-003", msg, array.concat(path, ["labels", "severity"]))
}

# `severity: none` on a heartbeat or an inhibitor (kube-prometheus' Watchdog and
# InfoInhibitor): deliberately routed to no one, by alert name or not at all.
unrouted(rule) if {
	rule.labels.severity == "none"
	heartbeat(rule)
}

unrouted(rule) if {
	rule.labels.severity == "none"
	meta_alert(rule)
}

has_label(rule, name) if {
	is_object(rule.labels)
	has_key(rule.labels, name)
}

label_path(path, rule) := array.concat(path, ["labels"]) if {
	is_object(rule.labels)
} else := path

# --- MON-004 / MON-005: summary and runbook_url annotations ------------------
# MON-005 is a warning: a runbook for every alert is a good house rule, not a defect
# of the alert.

deny contains result if {
	some [path, rule] in alerts
	not annotation(rule, "summary")
	msg := sprintf("alert %s has no summary annotation; the page says nothing about what is wrong", [rule.alert])
	result := finding("MON-004", msg, annotation_path(path, rule, "summary"))
}

warn contains result if {
	some [path, rule] in alerts
	not annotation(rule, "runbook_url")
	msg := sprintf("alert %s has no runbook_url annotation; on-call has no documented first step", [rule.alert])
	result := finding("MON-005", msg, annotation_path(path, rule, "runbook_url"))
}

warn contains result if {
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

# --- MON-006: recording rule names follow level:metric:operations (warning) --
# A naming convention: a warning. The level may be empty (`:node_memory_MemAvailable_bytes:sum`,
# every label aggregated away, as kube-prometheus names it).

warn contains result if {
	some [path, rule] in rules
	is_string(rule.record)
	not regex.match(`^([a-zA-Z_][a-zA-Z0-9_]*)?:[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_]+$`, rule.record)
	not renaming(rule)
	msg := sprintf(
		"recording rule %q does not follow level:metric:operations (e.g. job:http_requests:rate5m)",
		[rule.record],
	)
	result := finding("MON-006", msg, array.concat(path, ["record"]))
}

# A rule that only renames one metric, like node_exporter's documented compatibility
# rules (`record: node_cpu`, `expr: label_replace(node_cpu_seconds_total, ...)`,
# `node_disk_io_time_ms / 1000`): it aggregates nothing and takes no rate, so there is
# no level or operation to name, and it keeps a plain metric name on purpose, the
# one old dashboards query.
renaming(rule) if {
	allow_renames == true
	regex.match(`^[a-zA-Z_][a-zA-Z0-9_]*$`, rule.record)
	bare := promql_skeleton(rule.expr)
	not contains(bare, "[") # a range: rate, increase, *_over_time, a subquery
	words := regex.find_all_string_submatch_n(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\(?)`, bare, -1)
	every word in words {
		renaming_word(word)
	}
	metrics := {word[1] | some word in words; word[2] == ""; not word[1] in promql_keywords}
	count(metrics) == 1
}

# A call of a function that keeps the series as they are, or a name that is no call.
renaming_word(word) if word[2] == ""

renaming_word(word) if word[1] in {"label_replace", "label_join", "time"}

promql_keywords := {"and", "or", "unless", "bool", "offset", "inf", "nan", "Inf", "NaN"}

# The expression without string literals, label matchers and numbers: what is left
# names metrics, functions, aggregations and operators.
promql_skeleton(expr) := regex.replace(
	regex.replace(
		regex.replace(expr, `"(\\.|[^"\\])*"|'(\\.|[^'\\])*'`, ""),
		`\{[^}]*\}`, "",
	),
	`(^|[^a-zA-Z0-9_:])[0-9][a-zA-Z0-9_.]*`, "$1",
) if is_string(expr)

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
