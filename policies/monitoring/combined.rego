# Cross-file Prometheus checks, evaluated only with --combine.
#
# Input: [{"path": "<repo-relative path>", "contents": <rule file>}, ...].
package cd_checks.monitoring.combined

finding(id, msg, path) := {"msg": msg, "rule": id, "path": path}

# Every alert in every file, as [file index, path in the file, name].
alert_sites contains [f, array.concat(at, [i, "rules", j, "alert"]), rule.alert] if {
	is_array(input)
	some f, file in input
	at := groups_at(file.contents)
	groups := object.get(file.contents, at, [])
	is_array(groups)
	some i, group in groups
	is_array(group.rules)
	some j, rule in group.rules
	is_string(rule.alert)
}

# Where the groups are: the top level of a rule file, spec of a PrometheusRule.
groups_at(contents) := ["spec", "groups"] if {
	contents.kind == "PrometheusRule"
} else := ["groups"] if {
	is_object(contents)
}

# [alert name, file index]: looked up by value, so the check stays linear in alerts x files.
defined_in contains [name, f] if some [f, _, name] in alert_sites

# --- MON-007: alert names are unique across rule files -----------------------

deny contains result if {
	some [f, where, name] in alert_sites
	f > 0
	earlier := {k | some k in numbers.range(0, f - 1); [name, k] in defined_in}
	count(earlier) > 0
	first := min(earlier)
	msg := sprintf(
		"alert %s is also defined in %v; two rules with one name make silences and routing ambiguous",
		[name, object.get(input[first], "path", sprintf("file #%d", [first]))],
	)
	result := finding("MON-007", msg, array.concat([f, "contents"], where))
}
