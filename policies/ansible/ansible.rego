# Ansible playbook and tasks-file policies (builtin set "ansible").
#
# Input: a playbook (a list of plays, each with `hosts`), a tasks file (a list
# of tasks, e.g. roles/*/tasks/main.yml) or a variables file (a mapping:
# group_vars/, host_vars/, a role's defaults/ and vars/). Tasks are found at
# any depth (tasks, pre_tasks, post_tasks, handlers, block/rescue/always).
#
# Config (data.cd_checks.config.ansible):
#   production_words     words in a play's `hosts` that make it a production play
#                        (default prod, production; matched as whole words:
#                        web_production, prod:&eu, ["db-prod"])
#   allowed_secret_keys  keys that look like secrets but are not (default
#                        update_password, password_length, token_ttl)
package cd_checks.ansible

config := object.get(data, ["cd_checks", "config", "ansible"], {})

production_words := object.get(config, "production_words", ["prod", "production"])

allowed_secret_keys := object.get(config, "allowed_secret_keys", ["update_password", "password_length", "token_ttl"])

finding(id, msg, path) := {"msg": msg, "rule": id, "path": path}

has_key(obj, key) if {
	is_object(obj)
	key in object.keys(obj)
}

# Plays of a playbook, as [index, play]; a tasks file has none.
plays contains [i, play] if {
	is_array(input)
	some i, play in input
	has_key(play, "hosts")
}

playbook if count(plays) > 0

hosts_text(play) := concat(",", [sprintf("%v", [h]) | some h in play.hosts]) if {
	is_array(play.hosts)
} else := sprintf("%v", [play.hosts])

production_play(play) if {
	words := regex.split(`[^a-z0-9]+`, lower(hosts_text(play)))
	some word in production_words
	word in words
}

# --- ANS-001: no download piped into a shell ---------------------------------

shell_modules := {
	"shell", "command", "raw",
	"ansible.builtin.shell", "ansible.builtin.command", "ansible.builtin.raw",
	"ansible.legacy.shell", "ansible.legacy.command", "ansible.legacy.raw",
}

remote_code_patterns := [
	# curl … | sh, wget -qO- … | sudo bash, curl … | python3
	`(?i)\b(curl|wget)\b[^|;&\n]*\|\s*(sudo\s+(-\S+\s+)*)?(\S*/)?((ba|z|k|da|fi)?sh|python[0-9.]*|perl|ruby)\b`,
	# bash <(curl …), source <(wget -O- …)
	`(?i)<\(\s*(curl|wget)\b`,
	# sh -c "$(curl …)", eval "$(wget -O- …)"
	`(?i)(\beval|\b(ba|z|k|da)?sh\s+-c)\s+["']?\$\(\s*(curl|wget)\b`,
]

commands contains [array.concat(p, [module]), text] if {
	walk(input, [p, task])
	is_object(task)
	some module in shell_modules
	text := command_text(task[module])
}

commands contains [array.concat(p, [module, "cmd"]), text] if {
	walk(input, [p, task])
	is_object(task)
	some module in shell_modules
	text := command_text(task[module].cmd)
}

commands contains [array.concat(p, ["args", "cmd"]), text] if {
	walk(input, [p, task])
	is_object(task)
	some module in shell_modules
	has_key(task, module)
	text := command_text(task.args.cmd)
}

command_text(v) := v if is_string(v)

deny contains result if {
	some [path, text] in commands
	some pattern in remote_code_patterns
	regex.match(pattern, text)
	msg := "the task pipes a download into an interpreter: whatever the server returns runs as this user; download with get_url (checksum set) and run the verified file"
	result := finding("ANS-001", msg, path)
}

# --- ANS-002: no plaintext secrets -------------------------------------------

# Keys that end in password, passwd, secret or token (`dbpassword`, `api_token`,
# `ansible_become_password`), and the separated shorter forms (`ssh_pass`, `api_key`).
secret_key_pattern := `(?i)^(.*(password|passwd|secret|token)|(.*[_-])?(pass|passphrase|api[_-]?key|access[_-]?key|secret[_-]?key|private[_-]?key))$`

deny contains result if {
	walk(input, [path, value])
	literal(value)
	count(path) > 0
	key := path[count(path) - 1]
	is_string(key)
	regex.match(secret_key_pattern, key)
	not key in allowed_secret_keys
	msg := sprintf(
		"%s has a literal value; secrets in git are leaked secrets: use ansible-vault (!vault) or a lookup (\"{{ vault_%s }}\")",
		[key, lower(key)],
	)
	result := finding("ANS-002", msg, path)
}

literal(value) if {
	is_string(value)
	plaintext(value)
}

literal(value) if is_number(value) # db_password: 123456 is read as a number

plaintext(value) if {
	trim_space(value) != "" # an empty default, to be set in the inventory or vault
	not regex.match(`^[!*]+$`, trim_space(value)) # "!" / "*": a locked account, not a secret
	not contains(value, "{{")
	not startswith(trim_space(value), "$ANSIBLE_VAULT;")
}

# --- ANS-003 / ANS-004: production plays roll out in batches -----------------

deny contains result if {
	some [i, play] in plays
	production_play(play)
	not batched(play)
	msg := sprintf(
		"production play (hosts: %s) has no serial, or serial 100%%: every host changes at once; set serial (e.g. [1, \"10%%\", \"50%%\"])",
		[hosts_text(play)],
	)
	result := finding("ANS-003", msg, play_path(i, play, "serial"))
}

batched(play) if {
	has_key(play, "serial")
	not play.serial in {"100%", null, ""}
}

deny contains result if {
	some [i, play] in plays
	production_play(play)
	not has_key(play, "max_fail_percentage")
	msg := sprintf(
		"production play (hosts: %s) has no max_fail_percentage: a failing batch does not stop the rollout",
		[hosts_text(play)],
	)
	result := finding("ANS-004", msg, [i, "hosts"])
}

# --- ANS-005: become is explicit ---------------------------------------------

deny contains result if {
	some [i, play] in plays
	not has_key(play, "become")
	not escalation_moot(play)
	msg := sprintf(
		"play (hosts: %s) does not declare become: privilege escalation then depends on ansible.cfg and the runner's environment; set become: true or false",
		[hosts_text(play)],
	)
	result := finding("ANS-005", msg, [i, "hosts"])
}

deny contains result if {
	playbook
	walk(input, [p, node])
	is_object(node)
	has_key(node, "become_user")
	not escalated(p)
	msg := sprintf(
		"become_user %v without become: true here or in an enclosing play/block; the task silently runs as the connection user",
		[node.become_user],
	)
	result := finding("ANS-005", msg, array.concat(p, ["become_user"]))
}

# Plays where an undeclared `become` changes nothing a reviewer cares about: they
# connect as root already, run on the controller, or manage Windows (WinRM and PSRP
# log in as an administrator; `runas` is no sudo).
escalation_moot(play) if connects_as(play, "root")

escalation_moot(play) if connection(play) == "local"

escalation_moot(play) if {
	names := regex.split(`\s*,\s*`, trim_space(hosts_text(play)))
	every name in names {
		name in {"localhost", "127.0.0.1", "::1"}
	}
}

escalation_moot(play) if connection(play) in {"winrm", "psrp"}

escalation_moot(play) if "windows" in regex.split(`[^a-z0-9]+`, lower(hosts_text(play)))

escalation_moot(play) if {
	some section in ["tasks", "pre_tasks", "post_tasks", "handlers"]
	walk(play[section], [_, task])
	is_object(task)
	some module, _ in task
	is_string(module)
	regex.match(`^((ansible|community)\.windows\.|chocolatey\.chocolatey\.)?win_|^microsoft\.ad\.`, module)
}

connects_as(play, user) if play.remote_user == user

connects_as(play, user) if {
	some key in ["ansible_user", "ansible_ssh_user"]
	play.vars[key] == user
}

connection(play) := play.connection if {
	is_string(play.connection)
} else := play.vars.ansible_connection if {
	is_string(play.vars.ansible_connection)
}

# `become: true` on the node at path p or on an object enclosing it.
escalated(p) if {
	walk(input, [q, node])
	count(q) <= count(p)
	array.slice(p, 0, count(q)) == q
	node.become == true
}

# --- ANS-006: TLS verification stays on --------------------------------------

deny contains result if {
	walk(input, [p, node])
	is_object(node)
	some key in ["validate_certs", "verify_ssl", "validate_certificate"]
	node[key] in {false, "no", "false", "False"}
	msg := sprintf("%s: false turns off TLS certificate checks; anyone on the path can serve the content", [key])
	result := finding("ANS-006", msg, array.concat(p, [key]))
}

# --- helpers -----------------------------------------------------------------

play_path(i, play, key) := [i, key] if {
	has_key(play, key)
} else := [i, "hosts"]
