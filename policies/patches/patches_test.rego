package cd_checks.patches_test

import data.cd_checks.patches

denied := {r.rule | some r in patches.deny}

good := {
	"name": "2026-11-openssl-dsa-5890",
	"description": "OpenSSL security update",
	"target": {"group": "web"},
	"window": {"start": "2026-12-01T22:00:00Z", "end": "2026-12-02T02:00:00Z"},
	"reboot": {"strategy": "if-required", "serial": 1},
	"packages": [
		{"name": "openssl", "version": "3.0.15-1~deb12u1"},
		{"name": "libssl3", "version": "3.0.15-1~deb12u1"},
		{"name": "kernel", "version": "5.14.0-427.13.1.el9_4"},
		{"name": "tzdata", "version": "2:2024a-0+deb12u1"},
	],
}

with_(patch) := object.union(object.remove(good, object.keys(patch)), patch)

without(key) := object.remove(good, [key])

pkg(version) := with_({"packages": [{"name": "openssl", "version": version}]})

test_good_manifest_is_clean if {
	count(patches.deny) == 0 with input as good
}

test_continuous_without_reboot_is_clean if {
	count(patches.deny) == 0 with input as with_({"window": "continuous", "reboot": {"strategy": "none"}})
}

test_odd_input_does_not_error if {
	count(patches.deny) == 0 with input as "patch"
	count(patches.deny) == 0 with input as [good]
	denied == {"PATCH-002", "PATCH-003", "PATCH-004"} with input as {"name": "x", "packages": "openssl", "reboot": [], "target": 3, "window": {"start": 1, "end": 2}}
}

# PATCH-001

test_floating_versions_denied if {
	"PATCH-001" in denied with input as pkg("latest")
	"PATCH-001" in denied with input as pkg("3.0.*")
	"PATCH-001" in denied with input as pkg(">=3.0.15")
	"PATCH-001" in denied with input as pkg("3.0.15 || 3.0.16")
	"PATCH-001" in denied with input as pkg(3.1)
	"PATCH-001" in denied with input as with_({"packages": [{"name": "openssl"}]})
}

test_exact_versions_allowed if {
	not "PATCH-001" in denied with input as pkg("1:9.2p1-2+deb12u3")
	not "PATCH-001" in denied with input as pkg("2.40.1-1.el9")
}

# PATCH-002

test_missing_reboot_strategy_denied if {
	"PATCH-002" in denied with input as without("reboot")
	"PATCH-002" in denied with input as with_({"reboot": {"serial": 2}})
	"PATCH-002" in denied with input as with_({"reboot": {"strategy": "whenever"}})
}

test_reboot_strategy_allowed if {
	not "PATCH-002" in denied with input as with_({"reboot": {"strategy": "always", "serial": "10%"}})
}

# PATCH-003

test_missing_window_denied if {
	"PATCH-003" in denied with input as without("window")
}

test_malformed_window_denied if {
	"PATCH-003" in denied with input as with_({"window": "weekends"})
	"PATCH-003" in denied with input as with_({"window": {"start": "2026-12-01 22:00", "end": "2026-12-02T02:00:00Z"}})
}

test_window_ending_before_start_denied if {
	"PATCH-003" in denied with input as with_({"window": {"start": "2026-12-02T02:00:00Z", "end": "2026-12-01T22:00:00Z"}})
}

test_window_allowed if {
	not "PATCH-003" in denied with input as good
	not "PATCH-003" in denied with input as with_({"window": "continuous", "reboot": {"strategy": "none"}})
	not "PATCH-003" in denied with input as with_({"window": {"start": "2026-12-01T22:00:00+01:00", "end": "2026-12-01T23:30:00+01:00"}})
}

# PATCH-004

test_missing_target_denied if {
	"PATCH-004" in denied with input as without("target")
	"PATCH-004" in denied with input as with_({"target": {"group": ""}})
}

test_whole_fleet_target_denied if {
	"PATCH-004" in denied with input as with_({"target": {"group": "all"}})
}

test_forbidden_targets_are_configurable if {
	not "PATCH-004" in denied with input as with_({"target": {"group": "all"}})
		with data.cd_checks.config.patches.forbidden_targets as []
}

test_named_target_allowed if {
	not "PATCH-004" in denied with input as good
}

# PATCH-005

test_reboot_without_window_denied if {
	"PATCH-005" in denied with input as with_({"window": "continuous"})
	"PATCH-005" in denied with input as with_({"window": "continuous", "reboot": {"strategy": "always"}})
}

test_reboot_in_window_allowed if {
	not "PATCH-005" in denied with input as good
}

# PATCH-006

test_duplicate_package_denied if {
	"PATCH-006" in denied with input as with_({"packages": [
		{"name": "openssl", "version": "3.0.15-1~deb12u1"},
		{"name": "openssl", "version": "3.0.14-1~deb12u2"},
	]})
}

test_distinct_packages_allowed if {
	not "PATCH-006" in denied with input as good
}
