# NGINX configuration policies (builtin set "nginx").
#
# Input: one NGINX file as nginx reads it, {"directives": [{"name", "parameters",
# "line", "block"?}]}. `cd-checks validate` splices every include in place and
# hands a file inside the nginx.conf that includes it (cd_checks/nginx.py), so a
# setting inherited from the `http` block or set in an included snippet counts.
# Then `input.file` is the checked file and each directive carries:
#   file           the file it is written in
#   context: true  another file reports it (the nginx.conf, a site checked on its own)
#   unresolved     on an include whose files the check cannot read (the host's)
# A plain parse of one file (conftest's shape, no marks) works the same.
#
# Config (data.cd_checks.config.nginx):
#   allowed_plain_upstreams  globs of upstream hosts (or host:port) that may be
#                            reached over plain http from a public listener
#   require_hsts             false turns off NGINX-007
#   security_headers         the headers NGINX-010 looks after (case-insensitive)
package cd_checks.nginx

config := object.get(data, ["cd_checks", "config", "nginx"], {})

allowed_plain_upstreams := object.get(config, "allowed_plain_upstreams", [])

weak_protocols := {"sslv2", "sslv3", "tlsv1", "tlsv1.1"}

loopback_hosts := {"localhost", "::1", "[::1]", "ip6-localhost"}

default_security_headers := [
	"Strict-Transport-Security",
	"Content-Security-Policy",
	"X-Frame-Options",
	"X-Content-Type-Options",
	"Referrer-Policy",
	"Permissions-Policy",
	"Cross-Origin-Opener-Policy",
	"Cross-Origin-Embedder-Policy",
	"Cross-Origin-Resource-Policy",
]

security_headers := {lower(h) | some h in object.get(config, "security_headers", default_security_headers); is_string(h)}

# A finding on a directive this file reports; one brought in by an include of
# this file names where it is written (the finding lands on the include line).
finding(id, msg, path) := {"msg": concat("", [msg, written_in(path)]), "rule": id, "path": path} if {
	not object.get(directive_at_or_empty(path), "context", false)
}

directive_at_or_empty(path) := directive_at[path] if is_array(path) else := {}

written_in(path) := sprintf(" (%s:%v)", [d.file, d.line]) if {
	d := directive_at_or_empty(path)
	is_string(input.file)
	is_string(d.file)
	d.file != input.file
} else := ""

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
children(d, name) := [c | some c in block_directives(d); is_object(c); c.name == name]

block_directives(d) := d.block.directives if is_array(d.block.directives) else := []

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
# A block that includes files the check cannot read (the host's) may set it there.
declared(_, server, name) if has_child(server, name)

declared(p, _, name) if has_child(enclosing(p, "http"), name)

declared(_, server, _) if opaque(server)

declared(p, _, _) if opaque(enclosing(p, "http"))

opaque(d) if {
	some c in block_directives(d)
	is_object(c)
	c.name == "include"
	c.unresolved == true
}

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
	not opaque(d)
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

# Relying on the default is a choice a static site makes on purpose: a warning.
warn contains result if {
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

# Sent by the server (its own add_header or the http block's, as nginx inherits
# them), or by a location of it; unknown when the server includes the host's files.
hsts(p, _) if "strict-transport-security" in effective_headers(level_paths(p))

hsts(_, server) if {
	walk(server, [_, c])
	is_object(c)
	c.name == "add_header"
	lower(params(c)[0]) == "strict-transport-security"
}

hsts(_, server) if opaque(server)

hsts(p, _) if opaque(enclosing(p, "http"))

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

# --- NGINX-008: weak ssl_ciphers ----------------------------------------------
#
# The cipher string is read the way OpenSSL reads it: `:`-separated terms, `!X`
# and `-X` remove, `A+B` is the intersection, `+X` keeps X at the end of the
# list. A broken family enabled by a term and not removed is an error; CBC suites
# with SHA-1, which Mozilla's intermediate configuration leaves out, a warning.

cipher_directives := {"ssl_ciphers", "proxy_ssl_ciphers", "grpc_ssl_ciphers", "uwsgi_ssl_ciphers"}

# Aliases that bring in the family named, as OpenSSL 1.0-3.x define them.
broken_aliases := {
	"RC4": {"rc4"},
	"DES and 3DES": {"des", "3des", "medium"},
	"MD5": {"md5"},
	"NULL encryption (eNULL)": {"null", "enull", "complementofall"},
	"anonymous key exchange (aNULL)": {"anull", "adh", "aecdh"},
	"EXPORT and LOW": {"export", "exp", "export40", "export56", "low"},
	"SSLv2 ciphers": {"sslv2"},
	"the SSLv3 cipher family": {"sslv3"},
}

# Removing any of these removes the family.
broken_removals := {
	"RC4": {"rc4", "medium"},
	"DES and 3DES": {"des", "3des", "medium"},
	"MD5": {"md5"},
	"NULL encryption (eNULL)": {"null", "enull"},
	"anonymous key exchange (aNULL)": {"anull", "adh"},
	"EXPORT and LOW": {"export", "exp", "low"},
	"SSLv2 ciphers": {"sslv2"},
	"the SSLv3 cipher family": {"sslv3"},
}

# Terms made only of these include anonymous suites (OpenSSL's HIGH has ADH-AES).
anonymous_generic := {
	"all", "high", "medium", "low", "complementofall", "complementofdefault", "aes", "aes128",
	"aes256", "aesgcm", "aesccm", "camellia", "camellia128", "camellia256", "chacha20", "aria",
	"sha", "sha1", "sha256", "sha384", "tlsv1.2", "tlsv1", "tlsv1.0", "sslv3", "kedh", "kdhe",
	"keecdh", "kecdhe", "dh", "ecdh",
}

# Terms made only of these include CBC suites with SHA-1 (ECDHE-RSA-AES128-SHA, AES128-SHA).
sha1_generic := {
	"all", "default", "high", "medium", "low", "complementofall", "complementofdefault", "aes",
	"aes128", "aes256", "camellia", "camellia128", "camellia256", "seed", "idea", "sha", "sha1",
	"sslv3", "tlsv1", "tlsv1.0", "rsa", "krsa", "arsa", "ecdsa", "aecdsa", "dss", "adss", "eecdh",
	"ecdhe", "keecdh", "kecdhe", "edh", "dhe", "kedh", "kdhe", "dh", "ecdh", "kecdh", "psk", "srp",
}

cipher_terms(d) := [t | some t in regex.split(`[:, ]+`, concat(":", params(d))); t != ""]

removed_terms(d) := {lower(substring(t, 1, -1)) |
	some t in cipher_terms(d)
	some mark in ["!", "-"]
	startswith(t, mark)
}

# Enabled terms, lowercased, split into their `+` components.
enabled_terms(d) := [split(lower(trim_left(t, "+")), "+") |
	some t in cipher_terms(d)
	not startswith(t, "!")
	not startswith(t, "-")
	not startswith(t, "@")
]

# A suite name (ECDHE-RSA-DES-CBC3-SHA) is split at its dashes.
suite_words := {
	"RC4": {"rc4"},
	"DES and 3DES": {"des", "cbc3", "3des"},
	"NULL encryption (eNULL)": {"null"},
}

suite_families(words) := {f |
	some f, marks in suite_words
	some w in words
	w in marks
} | {"MD5" | words[count(words) - 1] == "md5"} | {"anonymous key exchange (aNULL)" |
	words[0] in {"adh", "aecdh"}
} | {"EXPORT and LOW" |
	some w in words
	startswith(w, "exp")
}

term_families(parts) := {f |
	some part in parts
	some f, aliases in broken_aliases
	part in aliases
} | {f |
	some part in parts
	contains(part, "-")
	some f in suite_families(split(part, "-"))
} | {"anonymous key exchange (aNULL)" |
	every part in parts {
		part in anonymous_generic
	}
}

broken_families(d) := {f |
	some parts in enabled_terms(d)
	some f in term_families(parts)
	count(broken_removals[f] & removed_terms(d)) == 0
}

cbc_sha1(d) if {
	some parts in enabled_terms(d)
	some part in parts
	words := split(part, "-")
	count(words) > 1
	words[count(words) - 1] == "sha"
	not regex.match(`gcm|chacha20|ccm|poly1305`, part)
	count({"sha1", "sha"} & removed_terms(d)) == 0
}

cbc_sha1(d) if {
	some parts in enabled_terms(d)
	every part in parts {
		part in sha1_generic
	}
	count({"sha1", "sha"} & removed_terms(d)) == 0
}

deny contains result if {
	some [p, d] in directives
	d.name in cipher_directives
	families := broken_families(d)
	count(families) > 0
	msg := sprintf(
		"%s enables %s: broken ciphers, or ones only clients older than TLS 1.2 need; remove them (end the list with :!aNULL:!eNULL:!EXPORT:!DES:!3DES:!RC4:!MD5:!SSLv3) or use Mozilla's intermediate cipher list",
		[d.name, concat(", ", sort(families))],
	)
	result := finding("NGINX-008", msg, p)
}

warn contains result if {
	some [p, d] in directives
	d.name in cipher_directives
	count(broken_families(d)) == 0
	cbc_sha1(d)
	msg := sprintf(
		"%s allows CBC suites with SHA-1 (such as ECDHE-RSA-AES128-SHA), which Mozilla's intermediate configuration leaves out; list only ECDHE/DHE suites with AES-GCM or CHACHA20-POLY1305, or append :!SHA1",
		[d.name],
	)
	result := finding("NGINX-008", msg, p)
}

# --- NGINX-009: ssl_prefer_server_ciphers with modern protocols (warning) ------

modern_protocols := {"tlsv1.2", "tlsv1.3"}

# nginx's default since 1.23.4.
default_protocols := ["tlsv1.2", "tlsv1.3"]

warn contains result if {
	some [p, d] in directives
	d.name == "ssl_prefer_server_ciphers"
	lower(concat(" ", params(d))) == "on"
	protocols := {lower(x) | some x in innermost(p, "ssl_protocols", default_protocols)}
	count(protocols) > 0
	count(protocols - modern_protocols) == 0
	msg := sprintf(
		"ssl_prefer_server_ciphers on with %s only: Mozilla's intermediate and modern configurations set it off, since every allowed suite is strong and clients without AES hardware pick ChaCha20; set ssl_prefer_server_ciphers off",
		[concat(" and ", sort([x | some x in innermost(p, "ssl_protocols", default_protocols)]))],
	)
	result := finding("NGINX-009", msg, p)
}

# The parameters of the innermost `name` visible from the directive at `p` (in
# its own block or an enclosing one), else `fallback`.
innermost(p, name, fallback) := found if {
	holders := array.concat([input.directives], [directive_at[q].block.directives | some q in ancestors(p)])
	hits := [[i, params(c)] | some i, h in holders; is_array(h); some c in h; is_object(c); c.name == name]
	count(hits) > 0
	depth := max({i | some [i, _] in hits})
	last := [ps | some [i, ps] in hits; i == depth]
	found := last[count(last) - 1]
} else := fallback

# --- NGINX-010: add_header in a nested block drops inherited headers (warning) --
#
# nginx inherits add_header into a block only when the block sets none of its
# own (or says `add_header_inherit merge`, nginx 1.29.3+). A location that adds
# Cache-Control silently stops sending the server's security headers.

header_levels := {"http", "server", "location", "if"}

# The blocks add_header is inherited through, from the outermost to `p`'s own.
level_paths(p) := [q |
	some q in array.concat(ancestors(p), [p])
	directive_at[q].name in header_levels
	has_block(directive_at[q])
]

add_headers(d) := [c | some c in block_directives(d); is_object(c); c.name == "add_header"; count(params(c)) > 0]

header_names(d) := {params(c)[0] | some c in add_headers(d)}

# add_header_inherit in force at level j: the innermost one at or above it.
inherit_mode(levels, j) := mode if {
	ks := {k | some k in numbers.range(0, j); has_child(directive_at[levels[k]], "add_header_inherit")}
	count(ks) > 0
	mode := lower(params(children(directive_at[levels[max(ks)]], "add_header_inherit")[0])[0])
} else := "on"

# Whether headers from above pass through level j to the levels below it.
passes(levels, j) if inherit_mode(levels, j) == "merge"

passes(levels, j) if {
	count(add_headers(directive_at[levels[j]])) == 0
	inherit_mode(levels, j) != "off"
}

# The header names (as written) sent at the last of `levels`.
effective_headers_as_written(levels) := {name |
	some i, q in levels
	some name in header_names(directive_at[q])
	every j in [j | some j in numbers.range(0, count(levels) - 1); j > i] {
		passes(levels, j)
	}
}

effective_headers(levels) := {lower(n) | some n in effective_headers_as_written(levels)}

warn contains result if {
	some [p, d] in directives
	d.name in header_levels
	count(add_headers(d)) > 0
	not answers_itself(d)
	levels := level_paths(p)
	count(levels) > 1
	inherit_mode(levels, count(levels) - 1) != "merge"
	above := array.slice(levels, 0, count(levels) - 1)
	own := {lower(n) | some n in header_names(d)}
	dropped := sort({n |
		some n in effective_headers_as_written(above)
		lower(n) in security_headers
		not lower(n) in own
	})
	count(dropped) > 0
	first := min({i | some i, c in block_directives(d); is_object(c); c.name == "add_header"})
	msg := sprintf(
		"%s sets its own add_header, so nginx no longer sends %s set above it (add_header is inherited only by blocks that set none); repeat them here (e.g. include the snippet that sets them) or add add_header_inherit merge (nginx 1.29.3+)",
		[block_label(d), concat(", ", dropped)],
	)
	result := finding("NGINX-010", msg, array.concat(p, ["block", "directives", first]))
}

# `if ($request_method = OPTIONS) { add_header Access-Control-Allow-Origin *; return 204; }`:
# a CORS preflight answer, no page to protect.
answers_itself(d) if {
	d.name == "if"
	has_child(d, "return")
}

block_label(d) := sprintf("server %s", [server_label(d)]) if d.name == "server"

block_label(d) := sprintf("%s %s", [d.name, concat(" ", params(d))]) if d.name != "server"
