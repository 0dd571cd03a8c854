"""Ansible INI inventories as real repositories hold them, for the validate and rollout tests.

`DOCS` follows the examples of Ansible's inventory guide ("How to build your
inventory"); `KUBESPRAY` is kubespray's `inventory/sample/inventory.ini` with
its hosts filled in, as a kubespray user's copy has them.
"""

from __future__ import annotations

DOCS = """\
# An INI inventory as in Ansible's inventory guide.
mail.example.com

[webservers]
foo.example.com
bar.example.com ansible_port=2222 ansible_host=192.0.2.50
web[01:20].example.com
badwolf.example.com:5309

[dbservers]
one.example.com
two.example.com ansible_user=admin
three.example.com     # a comment after a host

; a semicolon comment line
[atlanta]
host1 http_port=80 maxRequestsPerChild=808
host2 http_port=303 maxRequestsPerChild=909 motd="Welcome to Atlanta, GA"

[atlanta:vars]
ntp_server=ntp.atlanta.example.com
proxy=proxy.atlanta.example.com
greeting = "hello from the south"

[southeast:children]
atlanta
raleigh

[raleigh]
host3

[southeast:vars]
some_server=foo.southeast.example.com
escape_pods=2

[usa:children]
southeast
"""

KUBESPRAY = """\
# ## Configure 'ip' variable to bind kubernetes services on a
# ## different ip than the default iface
# ## We should set etcd_member_name for etcd cluster. The node that is not a etcd member
# ## do not need to set the value, or can set the empty string value.
[all]
node1 ansible_host=95.54.0.12  # ip=10.3.0.1 etcd_member_name=etcd1
node2 ansible_host=95.54.0.13  # ip=10.3.0.2 etcd_member_name=etcd2
node3 ansible_host=95.54.0.14  # ip=10.3.0.3 etcd_member_name=etcd3
node4 ansible_host=95.54.0.15  # ip=10.3.0.4 etcd_member_name=etcd4

# ## configure a bastion host if your nodes are not directly reachable
# bastion ansible_host=x.x.x.x ansible_user=some_user

[kube_control_plane]
node1
node2

[etcd]
node1
node2
node3

[kube_node]
node3
node4

[calico_rr]

[k8s_cluster:children]
kube_control_plane
kube_node
calico_rr
"""

# (what is broken, the inventory, the line Ansible stops at, words of the message)
BROKEN = [
    (
        "unterminated section",
        "[webservers]\nfoo.example.com\n[dbservers\none\n",
        3,
        "no closing ']'",
    ),
    ("bad host range", "[web]\nok.example.com\nweb[01:x].example.com\n", 3, "host range"),
    ("variable without =", "[db]\none ansible_user=admin\ntwo ansible_port\n", 3, "key=value"),
    (
        "undefined child group",
        "[web]\nfoo\n\n[prod:children]\nweb\ndbs\n",
        6,
        "undefined group 'dbs'",
    ),
    ("unknown section type", "[web]\nfoo\n[web:hostz]\nbar\n", 3, "unknown type"),
]
