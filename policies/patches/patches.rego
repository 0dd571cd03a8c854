# OS/package patch manifest policies (builtin set "patches").
#
# Input: one patch manifest (shape: policies/patches/schema.json):
#   {"name", "target": {"group"}, "window": "continuous" | {"start", "end"},
#    "reboot": {"strategy", "serial"?}, "packages": [{"name", "version"}]}
#
# Config (data.cd_checks.config.patches):
#   forbidden_targets   target groups a patch may not name (default all, *, ungrouped)
package cd_checks.patches

config := object.get(data, ["cd_checks", "config", "patches"], {})

forbidden_targets := object.get(config, "forbidden_targets", ["all", "*", "ungrouped"])

reboot_strategies := {"none", "if-required", "always"}

floating_versions := {"latest", "present", "installed", "any", "newest", "stable"}

finding(id, msg, path) := {"msg": msg, "rule": id, "path": path}

has_key(obj, key) if {
	is_object(obj)
	key in object.keys(obj)
}

manifest if is_object(input)

packages contains [i, pkg] if {
	manifest
	is_array(input.packages)
	some i, pkg in input.packages
	is_object(pkg)
}

package_name(pkg) := pkg.name if {
	is_string(pkg.name)
} else := "(unnamed)"

# --- PATCH-001: packages pinned to exact versions ----------------------------

deny contains result if {
	some [i, pkg] in packages
	not has_key(pkg, "version")
	msg := sprintf(
		"package %s has no version; pin the exact version that was tested in staging",
		[package_name(pkg)],
	)
	result := finding("PATCH-001", msg, ["packages", i])
}

deny contains result if {
	some [i, pkg] in packages
	has_key(pkg, "version")
	not exact_version(pkg.version)
	msg := sprintf(
		"package %s version %v is not an exact version (no ranges, wildcards or 'latest'; quote it so YAML keeps it a string)",
		[package_name(pkg), pkg.version],
	)
	result := finding("PATCH-001", msg, ["packages", i, "version"])
}

# Debian ([epoch:]upstream[-revision]) and RPM (version-release) version strings.
exact_version(v) if {
	is_string(v)
	regex.match(`^[0-9A-Za-z][0-9A-Za-z.+~:_-]*$`, v)
	regex.match(`[0-9]`, v)
	not lower(v) in floating_versions
}

# --- PATCH-002: a reboot strategy is declared --------------------------------

deny contains result if {
	manifest
	not reboot_strategy
	msg := sprintf(
		"no reboot strategy: declare reboot.strategy (%s) so kernel and libc updates take effect predictably",
		[concat(", ", sort(reboot_strategies))],
	)
	result := finding("PATCH-002", msg, object_path("reboot"))
}

reboot_strategy := input.reboot.strategy if input.reboot.strategy in reboot_strategies

# --- PATCH-003: a maintenance window or "continuous" is declared -------------

deny contains result if {
	manifest
	not has_key(input, "window")
	msg := "no window: declare a maintenance window {start, end} or window: continuous"
	result := finding("PATCH-003", msg, [])
}

deny contains result if {
	manifest
	has_key(input, "window")
	input.window != "continuous"
	not window_bounds
	msg := "window must be \"continuous\" or {start, end} with RFC 3339 timestamps (2026-12-01T22:00:00Z)"
	result := finding("PATCH-003", msg, ["window"])
}

deny contains result if {
	[start, end] := window_bounds
	end <= start
	msg := sprintf("maintenance window ends (%s) before it starts (%s)", [input.window.end, input.window.start])
	result := finding("PATCH-003", msg, ["window", "end"])
}

window_bounds := [start, end] if {
	is_string(input.window.start)
	is_string(input.window.end)
	regex.match(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$`, input.window.start)
	regex.match(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$`, input.window.end)
	start := time.parse_rfc3339_ns(input.window.start)
	end := time.parse_rfc3339_ns(input.window.end)
}

# --- PATCH-004: a target group is declared (and is not everything) -----------

deny contains result if {
	manifest
	not target_group
	msg := "no target group: declare target.group so the rollout knows which hosts get the patch"
	result := finding("PATCH-004", msg, object_path("target"))
}

deny contains result if {
	group := target_group
	group in forbidden_targets
	msg := sprintf(
		"target group %q is the whole fleet; patch a named group so staging and canary stages mean something",
		[group],
	)
	result := finding("PATCH-004", msg, ["target", "group"])
}

target_group := input.target.group if {
	is_string(input.target.group)
	trim_space(input.target.group) != ""
}

# --- PATCH-005: reboots need a maintenance window ----------------------------

deny contains result if {
	reboot_strategy in {"if-required", "always"}
	input.window == "continuous"
	msg := sprintf(
		"reboot strategy %s with window continuous reboots production hosts at any hour; declare a maintenance window or use strategy none",
		[reboot_strategy],
	)
	result := finding("PATCH-005", msg, ["reboot", "strategy"])
}

# --- PATCH-006: each package appears once ------------------------------------

deny contains result if {
	some [i, pkg] in packages
	is_string(pkg.name)
	some [k, other] in packages
	k < i
	other.name == pkg.name
	msg := sprintf("package %s is listed twice; one pin is silently ignored", [pkg.name])
	result := finding("PATCH-006", msg, ["packages", i, "name"])
}

# The key's path when present, else the document root.
object_path(key) := [key] if {
	has_key(input, key)
} else := []
