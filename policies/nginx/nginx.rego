# NGINX configuration policies (builtin set "nginx").
#
# Input: one parsed NGINX file, {"directives": [{"name", "parameters", "line", "block"?}]}.
# A site file usually starts with `server` at the top level, a main nginx.conf
# with `http`; every rule looks at directives at any depth. Settings inherited
# from an enclosing `http` block in the same file count as declared.
#
# Config (data.cd_checks.config.nginx):
#   allowed_plain_upstreams  globs of upstream hosts (or host:port) that may be
#                            reached over plain http from a public listener
#   require_hsts             false turns off NGINX-007
package cd_checks.nginx

config := object.get(data, ["cd_checks", "config", "nginx"], {})

allowed_plain_upstreams := object.get(config, "allowed_plain_upstreams", [])

weak_protocols := {"sslv2", "sslv3", "tlsv1", "tlsv1.1"}

loopback_hosts := {"localhost", "::1", "[::1]", "ip6-localhost"}

finding(id, msg, path) := {"msg": msg, "rule": id, "path": path}

# Every directive at any depth, as [path, directive].
directives contains [path, d] if {
	walk(input, [path, d])
	is_object(d)
	is_string(d.name)
	count(path) >= 2
	path[count(path) - 2] == "directives"
}

params(d) := [sprintf("%v", [x]) | some x in d.parameters] if {
	is_array(d.parameters)
} else := []

has_block(d) if is_array(d.block.directives)

# Direct children named `name`, in order (a directive may repeat: server_name, listen).
children(d, name) := [c | some c in d.block.directives; is_object(c); c.name == name]

has_child(d, name) if count(children(d, name)) > 0

# Directives by path, for ancestor lookups.
directive_at[path] := d if some [path, d] in directives

# Paths of the directives enclosing the directive at `p`, outermost first:
# ["directives", 0], ["directives", 0, "block", "directives", 3], ...
ancestors(p) := [array.slice(p, 0, n) | some n in numbers.range(2, count(p) - 1); n % 3 == 2]

# The innermost directive named `name` that encloses the node at path `p`.
enclosing(p, name) := found[count(found) - 1] if {
	found := [d | some q in ancestors(p); d := directive_at[q]; d.name == name]
	count(found) > 0
}

inside(p, name) if enclosing(p, name)

# A setting declared in the server block or inherited from the enclosing http block.
declared(p, server, name) if has_child(server, name)

declared(p, _, name) if has_child(enclosing(p, "http"), name)

servers contains [p, d] if {
	some [p, d] in directives
	d.name == "server"
	has_block(d)
}

http_servers contains [p, d] if {
	some [p, d] in servers
	not inside(p, "stream")
	not inside(p, "mail")
}

listens(server) := [params(c) | some c in server.block.directives; is_object(c); c.name == "listen"]

tls_server(server) if {
	some ps in listens(server)
	some flag in ["ssl", "quic"]
	flag in ps
}

# --- NGINX-001: server_tokens off -------------------------------------------

deny contains result if {
	some [p, d] in directives
	d.name == "server_tokens"
	lower(concat(" ", params(d))) != "off"
	msg := sprintf(
		"server_tokens %s: nginx will reveal its version in the Server header and error pages; set server_tokens off",
		[concat(" ", params(d))],
	)
	result := finding("NGINX-001", msg, p)
}

deny contains result if {
	some [p, d] in directives
	d.name == "http"
	has_block(d)
	not has_child(d, "server_tokens")
	msg := "the http block does not set server_tokens off; the default (on) reveals the nginx version"
	result := finding("NGINX-001", msg, p)
}

# --- NGINX-002: no legacy TLS protocols --------------------------------------

deny contains result if {
	some [p, d] in directives
	d.name in {"ssl_protocols", "proxy_ssl_protocols"}
	weak := [x | some x in params(d); lower(x) in weak_protocols]
	count(weak) > 0
	msg := sprintf(
		"%s enables %s, broken or deprecated (RFC 8996); allow only TLSv1.2 and TLSv1.3",
		[d.name, concat(", ", weak)],
	)
	result := finding("NGINX-002", msg, p)
}

# --- NGINX-003: no directory listings ----------------------------------------

deny contains result if {
	some [p, d] in directives
	d.name == "autoindex"
	lower(concat(" ", params(d))) == "on"
	msg := "autoindex on publishes directory listings; serve an explicit index or return 403/404"
	result := finding("NGINX-003", msg, p)
}

# --- NGINX-004: TLS servers have a certificate and a key ---------------------

deny contains result if {
	some [p, server] in servers
	tls_server(server)
	missing := [name |
		some name in ["ssl_certificate", "ssl_certificate_key"]
		not declared(p, server, name)
	]
	count(missing) > 0
	msg := sprintf(
		"server %s listens with ssl but has no %s; nginx rejects the config or fails every TLS handshake",
		[server_label(server), concat(" or ", missing)],
	)
	result := finding("NGINX-004", msg, array.concat(p, ["block", "directives", tls_listen_index(server)]))
}

# The first `listen … ssl` (or quic) of a server.
tls_listen_index(server) := min({i |
	some i, c in server.block.directives
	is_object(c)
	c.name == "listen"
	some flag in ["ssl", "quic"]
	flag in params(c)
})

# --- NGINX-005: explicit request body limit ----------------------------------

deny contains result if {
	some [p, server] in http_servers
	not declared(p, server, "client_max_body_size")
	not has_child(server, "return") # redirect-only servers answer before reading a body
	msg := sprintf(
		"server %s does not set client_max_body_size; state the upload limit this service needs instead of relying on the 1m default",
		[server_label(server)],
	)
	result := finding("NGINX-005", msg, p)
}

deny contains result if {
	some [p, d] in directives
	d.name == "client_max_body_size"
	params(d) == ["0"]
	msg := "client_max_body_size 0 disables the request body limit; any client can stream unbounded uploads"
	result := finding("NGINX-005", msg, p)
}

# --- NGINX-006: no plain-http upstream behind a public listener --------------

deny contains result if {
	some [q, d] in directives
	d.name == "proxy_pass"
	some p in ancestors(q)
	server := directive_at[p]
	[p, server] in http_servers
	public_server(server)
	target := params(d)[0]
	startswith(lower(target), "http://")
	hostport := upstream_hostport(target)
	not allowed_upstream(hostport)
	msg := sprintf(
		"proxy_pass to plain-http upstream %s from a server listening on a public address; use https:// or list the upstream in policy.builtin_data.nginx.allowed_plain_upstreams",
		[hostport],
	)
	result := finding("NGINX-006", msg, q)
}

# --- NGINX-007: HSTS on TLS servers (warning) --------------------------------

warn contains result if {
	object.get(config, "require_hsts", true) == true
	some [p, server] in http_servers
	tls_server(server)
	not hsts(p, server)
	msg := sprintf(
		"TLS server %s sends no Strict-Transport-Security header; browsers can be downgraded to http",
		[server_label(server)],
	)
	result := finding("NGINX-007", msg, p)
}

hsts(_, server) if hsts_header(server)

hsts(p, _) if hsts_header(enclosing(p, "http"))

hsts_header(d) if {
	some c in d.block.directives
	is_object(c)
	c.name == "add_header"
	lower(params(c)[0]) == "strict-transport-security"
}

# --- helpers -----------------------------------------------------------------

server_label(server) := concat(" ", params(children(server, "server_name")[0])) if {
	has_child(server, "server_name")
} else := "(no server_name)"

public_server(server) if count(listens(server)) == 0

public_server(server) if {
	some ps in listens(server)
	count(ps) > 0
	not local_address(ps[0])
}

local_address(addr) if startswith(addr, "unix:")

local_address(addr) if {
	host := address_host(addr)
	local_host(host)
}

local_host(host) if startswith(host, "127.")

local_host(host) if lower(host) in loopback_hosts

# "[::1]:80" -> "[::1]", "127.0.0.1:80" -> "127.0.0.1", "localhost" -> "localhost".
# A bare port ("80") has no host and never matches.
address_host(addr) := host if {
	startswith(addr, "[")
	host := concat("", [substring(addr, 0, indexof(addr, "]")), "]"])
} else := host if {
	contains(addr, ":")
	host := split(addr, ":")[0]
} else := addr if {
	not regex.match(`^[0-9]+$`, addr)
}

upstream_hostport(url) := split(substring(url, 7, -1), "/")[0]

allowed_upstream(hostport) if startswith(hostport, "unix:")

allowed_upstream(hostport) if local_host(address_host(hostport))

allowed_upstream(hostport) if {
	some pattern in allowed_plain_upstreams
	is_string(pattern)
	some candidate in {hostport, address_host(hostport)}
	glob.match(pattern, null, candidate)
}

allowed_upstream(hostport) if hostport in local_upstreams

# Upstream groups in the same file whose servers are all on this machine.
local_upstreams contains params(up)[0] if {
	some [_, up] in directives
	up.name == "upstream"
	has_block(up)
	members := [params(c) | some c in up.block.directives; is_object(c); c.name == "server"]
	count(members) > 0
	every m in members {
		local_address(m[0])
	}
}
