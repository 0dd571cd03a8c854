package cd_checks.ansible_test

import data.cd_checks.ansible

denied := {r.rule | some r in ansible.deny}

task(module, args) := {"name": "a task", module: args}

good_tasks := [
	{
		"name": "Download node_exporter",
		"ansible.builtin.get_url": {
			"url": "https://github.com/prometheus/node_exporter/releases/download/v1.8.2/node_exporter-1.8.2.linux-amd64.tar.gz",
			"dest": "/tmp/node_exporter.tar.gz",
			"checksum": "sha256:6809dd0b3ec45fd6e992c19071d6b5253aed3ead7bf0686885a51d85c6643c66",
		},
	},
	{"name": "Reload nginx", "ansible.builtin.command": "nginx -s reload"},
	{"name": "Count connections", "ansible.builtin.shell": "ss -tan | grep -c ESTAB", "changed_when": false},
	{
		"name": "Create db user",
		"community.postgresql.postgresql_user": {"name": "app", "password": "{{ vault_app_db_password }}"},
		"become_user": "postgres",
	},
]

prod_play := {
	"name": "Roll out nginx config",
	"hosts": "web_production",
	"become": true,
	"serial": [1, "10%", "50%"],
	"max_fail_percentage": 0,
	"vars": {"api_token": "{{ lookup('ansible.builtin.env', 'API_TOKEN') }}"},
	"tasks": good_tasks,
}

play_with(patch) := object.union(object.remove(prod_play, object.keys(patch)), patch)

play_without(key) := object.remove(prod_play, [key])

tasks_with(t) := [{"hosts": "staging", "become": false, "tasks": [t]}]

test_good_playbook_is_clean if {
	count(ansible.deny) == 0 with input as [prod_play]
}

test_good_tasks_file_is_clean if {
	count(ansible.deny) == 0 with input as good_tasks
}

test_odd_input_does_not_error if {
	count(ansible.deny) == 0 with input as {"hosts": 3}
	count(ansible.deny) == 0 with input as [{"hosts": ["web-staging", 7], "become": true, "tasks": "none"}, "junk", 1]
	count(ansible.deny) == 0 with input as [task("shell", ["curl", "x"]), task("command", {"argv": ["curl", "|", "sh"]})]
}

# ANS-001

test_curl_pipe_sh_denied if {
	"ANS-001" in denied with input as [task("ansible.builtin.shell", "curl -fsSL https://get.example.com/install.sh | sudo -E bash -s -- --yes")]
	"ANS-001" in denied with input as [task("shell", {"cmd": "wget -qO- https://example.com/setup | sh"})]
	"ANS-001" in denied with input as [{"name": "x", "shell": null, "args": {"cmd": "curl https://x.example | python3 -"}}]
	"ANS-001" in denied with input as [task("ansible.builtin.shell", "bash <(curl -s https://example.com/i.sh)")]
	"ANS-001" in denied with input as [task("raw", "sh -c \"$(curl -fsSL https://example.com/i.sh)\"")]
}

test_curl_pipe_in_nested_block_denied if {
	some r in ansible.deny with input as [play_with({"tasks": [{"block": [task("shell", "curl -s https://x.example/i.sh | /bin/bash")]}]})]
	r.rule == "ANS-001"
	r.path == [0, "tasks", 0, "block", 0, "shell"]
}

test_download_to_file_allowed if {
	not "ANS-001" in denied with input as good_tasks
	not "ANS-001" in denied with input as [task("shell", "curl -fsSL -o /tmp/i.sh https://example.com/i.sh && sha256sum -c i.sh.sha256")]
	not "ANS-001" in denied with input as [task("shell", "curl -s localhost:9100/metrics | grep -c node_")]
}

# ANS-002

test_plaintext_password_denied if {
	"ANS-002" in denied with input as [play_with({"vars": {"db_password": "hunter2"}})]
	"ANS-002" in denied with input as [task("community.mysql.mysql_user", {"name": "app", "password": "S3cr3t!"})]
	"ANS-002" in denied with input as [{"name": "x", "environment": {"GITHUB_TOKEN": "ghp_0123456789abcdef"}, "command": "gh release list"}]
}

# Keys that end in a secret word without a separator, in vars files and plays alike.
test_secret_suffix_without_separator_denied if {
	some r in ansible.deny with input as {"dbname": "shop", "dbuser": "shop", "dbpassword": "abc123"}
	r.rule == "ANS-002"
	r.path == ["dbpassword"]
	"ANS-002" in denied with input as {"mysqlrootpasswd": "toor"}
	"ANS-002" in denied with input as {"slack_webhooksecret": "xoxb-0123"}
	"ANS-002" in denied with input as [play_with({"vars": {"githubtoken": "ghp_0123456789abcdef"}})]
	"ANS-002" in denied with input as {"api_token": "0123456789abcdef"}
	"ANS-002" in denied with input as {"aws_secret_key": "wJalrXUtnFEMI/K7MDENG"}
	"ANS-002" in denied with input as {"redis_password": 123456}
}

test_secret_like_keys_that_hold_no_secret_allowed if {
	not "ANS-002" in denied with input as {"dbpassword": ""}
	not "ANS-002" in denied with input as {"dbpassword": "  "}
	not "ANS-002" in denied with input as {"dbpassword": null}
	not "ANS-002" in denied with input as {"dbpassword": "{{ lookup('community.hashi_vault.hashi_vault', 'secret/db:password') }}"}
	not "ANS-002" in denied with input as {"dbpassword": "{{ vault_dbpassword }}"}
	not "ANS-002" in denied with input as {"require_password": false}
	not "ANS-002" in denied with input as {"password_file": "/etc/app/password", "token_ttl": 3600}
	not "ANS-002" in denied with input as {"compass": "north", "bypass": "proxy"}
}

test_vaulted_or_templated_secret_allowed if {
	not "ANS-002" in denied with input as [prod_play]
	not "ANS-002" in denied with input as [play_with({"vars": {"db_password": "$ANSIBLE_VAULT;1.1;AES256\n6238..."}})]
	not "ANS-002" in denied with input as [play_with({"vars": {"db_password": {"__ansible_vault": "$ANSIBLE_VAULT;1.1;AES256\n62"}}})]
	not "ANS-002" in denied with input as [task("ansible.builtin.user", {"name": "deploy", "update_password": "on_create"})]
	not "ANS-002" in denied with input as [task("ansible.builtin.user", {"name": "svc", "password": "!"})]
}

# ANS-003

test_production_play_without_serial_denied if {
	"ANS-003" in denied with input as [play_without("serial")]
	"ANS-003" in denied with input as [play_with({"serial": "100%"})]
	"ANS-003" in denied with input as [play_with({"hosts": ["db-prod", "cache-prod"], "serial": null})]
}

test_non_production_play_needs_no_serial if {
	not "ANS-003" in denied with input as [object.union(play_without("serial"), {"hosts": "web_staging"})]
	not "ANS-003" in denied with input as [object.union(play_without("serial"), {"hosts": "productivity_tools"})]
}

test_production_words_are_configurable if {
	"ANS-003" in denied with input as [object.union(play_without("serial"), {"hosts": "live"})]
		with data.cd_checks.config.ansible.production_words as ["live"]
}

# ANS-004

test_production_play_without_max_fail_denied if {
	"ANS-004" in denied with input as [play_without("max_fail_percentage")]
}

test_production_play_with_max_fail_allowed if {
	not "ANS-004" in denied with input as [prod_play]
}

# ANS-005

test_play_without_become_denied if {
	"ANS-005" in denied with input as [play_without("become")]
}

# A play without `become` (and without become_user, which is the rule's other half).
no_become(patch) := [object.union(
	{"name": "Configure", "hosts": "webservers", "tasks": [{"name": "Reload nginx", "ansible.builtin.command": "nginx -s reload"}]},
	patch,
)]

test_plays_that_need_no_become_allowed if {
	not "ANS-005" in denied with input as no_become({"remote_user": "root"})
	not "ANS-005" in denied with input as no_become({"vars": {"ansible_user": "root"}})
	not "ANS-005" in denied with input as no_become({"connection": "local"})
	not "ANS-005" in denied with input as no_become({"hosts": "localhost"})
	not "ANS-005" in denied with input as no_become({"hosts": "localhost, 127.0.0.1"})
	not "ANS-005" in denied with input as no_become({"hosts": ["localhost"]})
	not "ANS-005" in denied with input as no_become({"vars": {"ansible_connection": "winrm"}})
	not "ANS-005" in denied with input as no_become({"connection": "psrp"})
	not "ANS-005" in denied with input as no_become({"hosts": "windows"})
	not "ANS-005" in denied with input as no_become({"hosts": "all", "tasks": [task("win_feature", {"name": "Web-Server"})]})
	not "ANS-005" in denied with input as no_become({"hosts": "all", "tasks": [{"block": [task("ansible.windows.win_service", {"name": "W3SVC"})]}]})
}

test_plays_that_may_need_become_denied if {
	"ANS-005" in denied with input as no_become({"remote_user": "deploy"})
	"ANS-005" in denied with input as no_become({"connection": "ssh"})
	"ANS-005" in denied with input as no_become({"hosts": "localhost,web1"})
	"ANS-005" in denied with input as no_become({"hosts": "windowsill"})
	"ANS-005" in denied with input as no_become({"vars": {"win_path": "C:\\app"}})
}

test_become_user_without_become_denied if {
	"ANS-005" in denied with input as [play_with({"become": false, "tasks": [{"name": "x", "command": "psql -c 'select 1'", "become_user": "postgres"}]})]
}

test_explicit_become_allowed if {
	not "ANS-005" in denied with input as [prod_play]
	not "ANS-005" in denied with input as [play_with({"become": false, "tasks": [{"block": good_tasks, "become": true}]})]
	not "ANS-005" in denied with input as good_tasks
}

# ANS-006

test_disabled_tls_verification_denied if {
	"ANS-006" in denied with input as [task("ansible.builtin.get_url", {"url": "https://x.example/a", "dest": "/tmp/a", "validate_certs": false})]
	"ANS-006" in denied with input as [task("uri", {"url": "https://x.example/a", "validate_certs": "no"})]
}

test_tls_verification_allowed if {
	not "ANS-006" in denied with input as [task("ansible.builtin.get_url", {"url": "https://x.example/a", "dest": "/tmp/a", "validate_certs": true})]
}
