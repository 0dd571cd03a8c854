package cd_checks.agents_test

import data.cd_checks.agents

denied := {r.rule | some r in agents.deny}

good := {
	"agent": "node_exporter",
	"version": "1.8.2",
	"current_version": "1.7.0",
	"target": {"group": "linux"},
	"artifacts": [
		{
			"platform": "linux-amd64",
			"url": "https://github.com/prometheus/node_exporter/releases/download/v1.8.2/node_exporter-1.8.2.linux-amd64.tar.gz",
			"checksum": "sha256:6809dd0b3ec45fd6e992c19071d6b5253aed3ead7bf0686885a51d85c6643c66",
		},
		{
			"platform": "linux-arm64",
			"url": "https://github.com/prometheus/node_exporter/releases/download/v1.8.2/node_exporter-1.8.2.linux-arm64.tar.gz",
			"checksum": "sha256:627382b9723c642411c33f48861134ebe893e70a63bcc8b3fc0619cd0bfac4be",
		},
	],
	"rollout": {"stages": [{"name": "canary", "percent": 5}, {"name": "early", "percent": 25}, {"name": "fleet", "percent": 100}]},
}

with_(patch) := object.union(object.remove(good, object.keys(patch)), patch)

without(key) := object.remove(good, [key])

artifact(patch) := with_({"artifacts": [object.union(object.remove(good.artifacts[0], object.keys(patch)), patch)]})

test_good_manifest_is_clean if {
	count(agents.deny) == 0 with input as good
	count(agents.deny) == 0 with input as with_({"version": "v2.0.0-rc.1", "current_version": "v1.9.9"})
	count(agents.deny) == 0 with input as with_({"rollout": {"stages": ["canary", "fleet"]}})
}

test_odd_input_does_not_error if {
	count(agents.deny) == 0 with input as [good]
	count(agents.deny) == 0 with input as null
	denied == {"AGENT-001", "AGENT-002", "AGENT-003", "AGENT-004"} with input as {"version": 1.8, "artifacts": [3], "rollout": "canary"}
}

# AGENT-001

test_non_semver_denied if {
	"AGENT-001" in denied with input as with_({"version": "1.8"})
	"AGENT-001" in denied with input as with_({"version": "latest"})
	"AGENT-001" in denied with input as without("version")
	"AGENT-001" in denied with input as with_({"current_version": "1.7"})
}

test_semver_allowed if {
	not "AGENT-001" in denied with input as with_({"version": "1.8.2+build.7"})
}

# AGENT-002

test_downgrade_denied if {
	"AGENT-002" in denied with input as with_({"version": "1.6.1"})
	"AGENT-002" in denied with input as with_({"version": "1.6.1", "allow_downgrade": "yes"})
	"AGENT-002" in denied with input as with_({"version": "1.8.0-rc.1", "current_version": "1.8.0"})
}

test_missing_current_version_denied if {
	"AGENT-002" in denied with input as without("current_version")
}

test_allowed_downgrade_and_upgrade if {
	not "AGENT-002" in denied with input as with_({"version": "1.6.1", "allow_downgrade": true})
	not "AGENT-002" in denied with input as with_({"version": "1.10.0", "current_version": "1.9.3"})
}

# AGENT-003

test_missing_checksum_denied if {
	"AGENT-003" in denied with input as artifact({"checksum": ""})
	"AGENT-003" in denied with input as with_({"artifacts": [{"url": "https://example.com/a.deb"}]})
	"AGENT-003" in denied with input as artifact({"checksum": "md5:0cc175b9c0f1b6a831c399e269772661"})
	"AGENT-003" in denied with input as without("artifacts")
}

test_checksum_allowed if {
	not "AGENT-003" in denied with input as good
}

test_checksum_finding_points_at_artifact if {
	some r in agents.deny with input as with_({"artifacts": [good.artifacts[0], {"url": "https://example.com/a.deb"}]})
	r.rule == "AGENT-003"
	r.path == ["artifacts", 1]
}

# AGENT-004

test_missing_canary_denied if {
	"AGENT-004" in denied with input as with_({"rollout": {"stages": ["early", "fleet"]}})
	"AGENT-004" in denied with input as without("rollout")
}

test_canary_not_first_denied if {
	"AGENT-004" in denied with input as with_({"rollout": {"stages": ["fleet", "canary"]}})
}

test_canary_first_allowed if {
	not "AGENT-004" in denied with input as good
}

# AGENT-005

test_plain_http_artifact_denied if {
	"AGENT-005" in denied with input as artifact({"url": "http://mirror.example.com/node_exporter.tar.gz"})
	"AGENT-005" in denied with input as artifact({"url": "ftp://mirror.example.com/node_exporter.tar.gz"})
}

test_https_artifact_allowed if {
	not "AGENT-005" in denied with input as good
}
