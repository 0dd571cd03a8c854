# Risky Terraform plans (builtin set "terraform").
#
# Input: a plan as `terraform show -json PLAN` writes it:
#   {"format_version", "terraform_version", "resource_changes": [{"address", "type", "name",
#    "mode", "change": {"actions": [...], "before": {...} | null, "after": {...} | null}}]}
# Anything else (a .tf file's HCL, a state file) has no resource_changes and is passed over.
package cd_checks.terraform

finding(id, msg, path) := {"msg": msg, "rule": id, "path": path}

world_v4 := {"0.0.0.0/0"}

world_v6 := {"::/0"}

# Azure's words for "any source" in a network security rule.
azure_any := {"*", "0.0.0.0/0", "::/0", "internet", "any"}

changes contains [i, rc] if {
	is_object(input)
	is_array(input.resource_changes)
	some i, rc in input.resource_changes
	is_object(rc)
	is_object(rc.change)
	is_array(rc.change.actions)
}

actions(rc) := {a | some a in rc.change.actions}

address(rc) := rc.address if is_string(rc.address)

else := sprintf("%v.%v", [rc.type, rc.name])

# --- TF-001: a resource is destroyed -----------------------------------------

deny contains result if {
	some [i, rc] in changes
	actions(rc) == {"delete"}
	msg := sprintf(
		"%s is destroyed by this plan; make sure that is wanted (data on it is lost)",
		[address(rc)],
	)
	result := finding("TF-001", msg, ["resource_changes", i, "change", "actions"])
}

# --- TF-002: a resource is replaced ------------------------------------------

deny contains result if {
	some [i, rc] in changes
	actions(rc) == {"delete", "create"}
	msg := sprintf(
		"%s is replaced (%s): its data and identity (IDs, addresses) do not survive%s",
		[address(rc), replace_order(rc), replace_cause(rc)],
	)
	result := finding("TF-002", msg, ["resource_changes", i, "change", "actions"])
}

replace_order(rc) := "destroyed, then created again" if {
	rc.change.actions[0] == "delete"
} else := "created first, then the old one destroyed"

replace_cause(rc) := sprintf("; forced by %s", [concat(", ", sorted_paths)]) if {
	is_array(rc.change.replace_paths)
	sorted_paths := sort([concat(".", [sprintf("%v", [s]) | some s in p]) |
		some p in rc.change.replace_paths
		is_array(p)
	])
	count(sorted_paths) > 0
} else := ""

# --- TF-003: ingress opened to the whole internet ----------------------------

deny contains result if {
	some [i, rc] in changes
	some kind in {"create", "update"}
	kind in actions(rc)
	some where in opened[i]
	msg := sprintf(
		"%s opens ingress to the whole internet (%s); allow the sources that need it",
		[address(rc), where],
	)
	result := finding("TF-003", msg, ["resource_changes", i, "change", "after"])
}

# Index of the change -> how its planned state opens ingress to any address.
opened[i] contains where if {
	some [i, rc] in changes
	rc.type == "aws_security_group" # inline ingress blocks
	some rule in array_of(rc.change.after.ingress)
	ports := sprintf("ingress ports %v-%v", [object.get(rule, "from_port", "?"), object.get(rule, "to_port", "?")])
	some where in open_cidrs(rule, ports)
}

opened[i] contains where if {
	some [i, rc] in changes
	rc.type == "aws_security_group_rule"
	after := rc.change.after
	after.type == "ingress"
	ports := sprintf("ports %v-%v", [object.get(after, "from_port", "?"), object.get(after, "to_port", "?")])
	some where in open_cidrs(after, ports)
}

opened[i] contains where if {
	some [i, rc] in changes
	rc.type == "aws_vpc_security_group_ingress_rule"
	some field in ["cidr_ipv4", "cidr_ipv6"]
	cidr := rc.change.after[field]
	cidr in world
	where := sprintf("%s %s", [field, cidr])
}

# Google: an ingress firewall (INGRESS is the default direction) that allows traffic.
opened[i] contains where if {
	some [i, rc] in changes
	rc.type == "google_compute_firewall"
	after := rc.change.after
	is_object(after)
	not after.direction == "EGRESS"
	not after.disabled == true
	count(array_of(after.allow)) > 0
	some range in array_of(after.source_ranges)
	range in world
	where := sprintf("source_ranges %s", [range])
}

# Azure: an inbound allow rule, on its own or inline in a network security group.
opened[i] contains where if {
	some [i, rc] in changes
	rc.type == "azurerm_network_security_rule"
	some where in azure_open(rc.change.after)
}

opened[i] contains where if {
	some [i, rc] in changes
	rc.type == "azurerm_network_security_group"
	some rule in array_of(rc.change.after.security_rule)
	some where in azure_open(rule)
}

world := world_v4 | world_v6

open_cidrs(rule, ports) := {where |
	is_object(rule)
	some field in ["cidr_blocks", "ipv6_cidr_blocks"]
	some cidr in array_of(object.get(rule, field, []))
	cidr in world
	where := sprintf("%s %s, %s", [field, cidr, ports])
}

azure_open(rule) := {where |
	is_object(rule)
	lower_text(object.get(rule, "direction", "")) == "inbound"
	lower_text(object.get(rule, "access", "")) == "allow"
	some source in azure_sources(rule)
	lower_text(source) in azure_any
	where := sprintf("source %s, ports %v", [source, object.get(rule, "destination_port_range", "any")])
}

azure_sources(rule) := {s | s := rule.source_address_prefix; is_string(s)} | {s |
	some s in array_of(object.get(rule, "source_address_prefixes", []))
	is_string(s)
}

lower_text(value) := lower(value) if is_string(value)

else := ""

array_of(value) := value if is_array(value)

else := []
