package cd_checks.terraform_test

import data.cd_checks.terraform

denied := {r.rule | some r in terraform.deny}

messages := {r.msg | some r in terraform.deny}

plan(changes) := {"format_version": "1.2", "terraform_version": "1.9.8", "resource_changes": changes}

change(address, typ, actions, after) := {
	"address": address,
	"mode": "managed",
	"type": typ,
	"name": "x",
	"change": {"actions": actions, "before": null, "after": after},
}

sg(cidrs) := change("aws_security_group.web", "aws_security_group", ["create"], {
	"name": "web",
	"ingress": [{"from_port": 443, "to_port": 443, "protocol": "tcp", "cidr_blocks": cidrs, "ipv6_cidr_blocks": []}],
})

test_creating_and_updating_private_things_is_clean if {
	count(terraform.deny) == 0 with input as plan([
		sg(["10.0.0.0/8"]),
		change("aws_instance.web", "aws_instance", ["update"], {"instance_type": "t3.small"}),
		change("aws_s3_bucket.logs", "aws_s3_bucket", ["no-op"], {}),
		change("data.aws_ami.x", "aws_ami", ["read"], {}),
	])
}

test_odd_input_does_not_error if {
	count(terraform.deny) == 0 with input as "plan"
	count(terraform.deny) == 0 with input as {"resource": {"aws_instance": {"web": [{}]}}}
	count(terraform.deny) == 0 with input as plan([1, {"change": 2}, {"change": {"actions": "delete"}}])
	count(terraform.deny) == 0 with input as plan([change("a.b", "aws_security_group", ["create"], {"ingress": "x"})])
}

test_destroy_is_denied if {
	"TF-001" in denied with input as plan([change("aws_db_instance.main", "aws_db_instance", ["delete"], null)])
	"aws_db_instance.main is destroyed by this plan; make sure that is wanted (data on it is lost)" in messages with input as plan([change("aws_db_instance.main", "aws_db_instance", ["delete"], null)])
}

test_replace_is_not_a_destroy if {
	not "TF-001" in denied with input as plan([change("aws_instance.web", "aws_instance", ["delete", "create"], {})])
}

test_replace_is_denied_either_order if {
	"TF-002" in denied with input as plan([change("aws_instance.web", "aws_instance", ["delete", "create"], {})])
	"TF-002" in denied with input as plan([change("aws_instance.web", "aws_instance", ["create", "delete"], {})])
}

test_replace_names_its_cause if {
	replaced := object.union(change("aws_instance.web", "aws_instance", ["delete", "create"], {}), {"change": {"actions": ["delete", "create"], "after": {}, "replace_paths": [["ami"]]}})
	some msg in messages with input as plan([replaced])
	endswith(msg, "; forced by ami")
}

test_update_is_not_a_replace if {
	not "TF-002" in denied with input as plan([change("aws_instance.web", "aws_instance", ["update"], {})])
}

test_security_group_open_to_the_world_is_denied if {
	"TF-003" in denied with input as plan([sg(["0.0.0.0/0"])])
}

test_open_ipv6_and_rule_resources_are_denied if {
	"TF-003" in denied with input as plan([change("aws_security_group_rule.ssh", "aws_security_group_rule", ["create"], {"type": "ingress", "from_port": 22, "to_port": 22, "cidr_blocks": [], "ipv6_cidr_blocks": ["::/0"]})])
	"TF-003" in denied with input as plan([change("aws_vpc_security_group_ingress_rule.r", "aws_vpc_security_group_ingress_rule", ["update"], {"cidr_ipv4": "0.0.0.0/0"})])
	"TF-003" in denied with input as plan([change("google_compute_firewall.f", "google_compute_firewall", ["create"], {"allow": [{"protocol": "tcp"}], "source_ranges": ["0.0.0.0/0"]})])
	"TF-003" in denied with input as plan([change("azurerm_network_security_rule.r", "azurerm_network_security_rule", ["create"], {"direction": "Inbound", "access": "Allow", "source_address_prefix": "*", "destination_port_range": "3389"})])
	"TF-003" in denied with input as plan([change("azurerm_network_security_group.g", "azurerm_network_security_group", ["create"], {"security_rule": [{"direction": "Inbound", "access": "Allow", "source_address_prefixes": ["Internet"]}]})])
}

test_egress_and_closed_rules_are_clean if {
	not "TF-003" in denied with input as plan([change("aws_security_group_rule.out", "aws_security_group_rule", ["create"], {"type": "egress", "cidr_blocks": ["0.0.0.0/0"]})])
	not "TF-003" in denied with input as plan([change("google_compute_firewall.f", "google_compute_firewall", ["create"], {"direction": "EGRESS", "allow": [{}], "source_ranges": ["0.0.0.0/0"]})])
	not "TF-003" in denied with input as plan([change("azurerm_network_security_rule.r", "azurerm_network_security_rule", ["create"], {"direction": "Inbound", "access": "Deny", "source_address_prefix": "*"})])
	not "TF-003" in denied with input as plan([object.union(sg(["0.0.0.0/0"]), {"change": {"actions": ["no-op"], "after": sg(["0.0.0.0/0"]).change.after}})])
}
