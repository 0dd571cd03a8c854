package cd_checks.nginx_test

import data.cd_checks.nginx

denied := {r.rule | some r in nginx.deny}

warned := {r.rule | some r in nginx.warn}

d(name, ps) := {"name": name, "parameters": ps, "line": 1}

blk(name, ps, children) := {"name": name, "parameters": ps, "line": 1, "block": {"directives": children}}

conf(ds) := {"directives": ds}

tls_basics := [
	d("listen", ["443", "ssl"]),
	d("server_name", ["shop.example.com"]),
	d("ssl_certificate", ["/etc/ssl/shop.crt"]),
	d("ssl_certificate_key", ["/etc/ssl/private/shop.key"]),
	d("ssl_protocols", ["TLSv1.2", "TLSv1.3"]),
	d("client_max_body_size", ["10m"]),
	d("add_header", ["Strict-Transport-Security", "max-age=63072000", "always"]),
]

good_site := conf([blk("server", [], array.concat(tls_basics, [
	blk("location", ["/"], [d("proxy_pass", ["https://10.0.3.7:8443"])]),
	blk("location", ["/static/"], [d("root", ["/srv/shop"])]),
]))])

good_main := conf([
	d("user", ["www-data"]),
	blk("events", [], [d("worker_connections", ["1024"])]),
	blk("http", [], [
		d("server_tokens", ["off"]),
		d("client_max_body_size", ["2m"]),
		d("include", ["conf.d/*.conf"]),
	]),
])

site_with(extra) := conf([blk("server", [], array.concat(tls_basics, extra))])

test_good_site_is_clean if {
	count(nginx.deny) == 0 with input as good_site
	count(nginx.warn) == 0 with input as good_site
}

test_good_main_is_clean if {
	count(nginx.deny) == 0 with input as good_main
}

test_odd_input_does_not_error if {
	count(nginx.deny) == 0 with input as {"directives": [{"name": 3, "parameters": "x"}, "junk", 7]}
	count(nginx.deny) == 0 with input as []
	count(nginx.deny) == 0 with input as "text"
	# numeric parameters are read as strings; a stray string among directives is skipped
	odd := conf([blk("server", [], [{"name": "listen", "parameters": [443, "ssl"]}, "junk"])])
	denied == {"NGINX-004"} with input as odd
	"NGINX-005" in warned with input as odd
}

test_repeated_directives_do_not_error if {
	site := conf([blk("http", [], [
		d("server_tokens", ["off"]),
		d("client_max_body_size", ["1m"]),
		blk("server", [], array.concat(tls_basics, [
			d("server_name", ["www.shop.example.com"]),
			d("client_max_body_size", ["2m"]),
			blk("location", ["/"], [blk("location", ["/a/"], [d("proxy_pass", ["http://127.0.0.1:8080"])])]),
		])),
	])])
	count(nginx.deny) == 0 with input as site
	count(nginx.warn) == 0 with input as site
}

# NGINX-001

test_server_tokens_on_denied if {
	"NGINX-001" in denied with input as site_with([d("server_tokens", ["on"])])
}

test_server_tokens_build_denied if {
	"NGINX-001" in denied with input as site_with([d("server_tokens", ["build"])])
}

test_http_without_server_tokens_denied if {
	"NGINX-001" in denied with input as conf([blk("http", [], [d("client_max_body_size", ["1m"])])])
}

test_server_tokens_off_allowed if {
	not "NGINX-001" in denied with input as site_with([d("server_tokens", ["off"])])
	not "NGINX-001" in denied with input as good_main
}

# NGINX-002

test_tls10_denied if {
	"NGINX-002" in denied with input as conf([blk("server", [], [
		d("listen", ["443", "ssl"]),
		d("ssl_certificate", ["a.crt"]),
		d("ssl_certificate_key", ["a.key"]),
		d("client_max_body_size", ["1m"]),
		d("ssl_protocols", ["TLSv1", "TLSv1.1", "TLSv1.2"]),
	])])
}

test_sslv3_in_http_denied if {
	"NGINX-002" in denied with input as conf([blk("http", [], [
		d("server_tokens", ["off"]),
		d("ssl_protocols", ["SSLv3", "TLSv1.2"]),
	])])
}

test_weak_proxy_ssl_protocols_denied if {
	"NGINX-002" in denied with input as site_with([blk("location", ["/"], [d("proxy_ssl_protocols", ["TLSv1.1"])])])
}

test_modern_protocols_allowed if {
	not "NGINX-002" in denied with input as good_site
	not "NGINX-002" in denied with input as site_with([d("proxy_ssl_protocols", ["TLSv1.3"])])
}

# NGINX-003

test_autoindex_on_denied if {
	"NGINX-003" in denied with input as site_with([blk("location", ["/files/"], [d("autoindex", ["on"])])])
}

test_autoindex_off_allowed if {
	not "NGINX-003" in denied with input as site_with([blk("location", ["/files/"], [d("autoindex", ["off"])])])
}

# NGINX-004

test_ssl_listener_without_key_denied if {
	"NGINX-004" in denied with input as conf([blk("server", [], [
		d("listen", ["443", "ssl"]),
		d("ssl_certificate", ["/etc/ssl/a.crt"]),
		d("client_max_body_size", ["1m"]),
	])])
}

test_ssl_listener_without_certificate_denied if {
	"NGINX-004" in denied with input as conf([blk("server", [], [
		d("listen", ["[::]:443", "ssl", "http2"]),
		d("client_max_body_size", ["1m"]),
	])])
}

test_missing_key_points_at_ssl_listener if {
	some r in nginx.deny with input as conf([blk("server", [], [
		d("listen", ["80"]),
		d("listen", ["443", "ssl"]),
		d("ssl_certificate", ["/etc/ssl/a.crt"]),
		d("client_max_body_size", ["1m"]),
	])])
	r.rule == "NGINX-004"
	r.path == ["directives", 0, "block", "directives", 1]
}

test_certificate_inherited_from_http_allowed if {
	not "NGINX-004" in denied with input as conf([blk("http", [], [
		d("server_tokens", ["off"]),
		d("ssl_certificate", ["/etc/ssl/wild.crt"]),
		d("ssl_certificate_key", ["/etc/ssl/private/wild.key"]),
		blk("server", [], [d("listen", ["443", "ssl"]), d("client_max_body_size", ["1m"])]),
	])])
}

test_plain_listener_needs_no_certificate if {
	not "NGINX-004" in denied with input as conf([blk("server", [], [d("listen", ["80"])])])
}

# NGINX-005

test_server_without_body_limit_warned if {
	site := conf([blk("server", [], [d("listen", ["80"]), d("root", ["/srv/www"])])])
	"NGINX-005" in warned with input as site
	not "NGINX-005" in denied with input as site
}

test_redirect_only_server_needs_no_body_limit if {
	not "NGINX-005" in denied with input as conf([blk("server", [], [d("listen", ["80"]), d("return", ["301", "https://$host$request_uri"])])])
}

test_unlimited_body_denied if {
	"NGINX-005" in denied with input as site_with([blk("location", ["/upload"], [d("client_max_body_size", ["0"])])])
}

test_body_limit_in_http_allowed if {
	not "NGINX-005" in denied with input as conf([blk("http", [], [
		d("server_tokens", ["off"]),
		d("client_max_body_size", ["4m"]),
		blk("server", [], [d("listen", ["80"])]),
	])])
}

test_stream_server_needs_no_body_limit if {
	not "NGINX-005" in denied with input as conf([blk("stream", [], [blk("server", [], [
		d("listen", ["5432"]),
		d("proxy_pass", ["db.internal:5432"]),
	])])])
}

# NGINX-006

test_plain_upstream_on_public_listener_denied if {
	"NGINX-006" in denied with input as site_with([blk("location", ["/api/"], [d("proxy_pass", ["http://10.0.3.7:8080/"])])])
}

test_plain_upstream_on_default_listener_denied if {
	"NGINX-006" in denied with input as conf([blk("server", [], [
		d("client_max_body_size", ["1m"]),
		blk("location", ["/"], [blk("location", ["/v1/"], [d("proxy_pass", ["http://api.internal"])])]),
	])])
}

test_upstream_group_on_other_hosts_denied if {
	"NGINX-006" in denied with input as conf([
		blk("upstream", ["app"], [d("server", ["10.0.3.7:8080"]), d("server", ["127.0.0.1:8080", "backup"])]),
		blk("server", [], array.concat(tls_basics, [blk("location", ["/"], [d("proxy_pass", ["http://app"])])])),
	])
}

test_loopback_upstream_allowed if {
	not "NGINX-006" in denied with input as site_with([blk("location", ["/"], [d("proxy_pass", ["http://127.0.0.1:8080"])])])
	not "NGINX-006" in denied with input as site_with([blk("location", ["/"], [d("proxy_pass", ["http://unix:/run/app.sock:/"])])])
	not "NGINX-006" in denied with input as conf([
		blk("upstream", ["app"], [d("server", ["127.0.0.1:8080"]), d("server", ["unix:/run/app.sock"])]),
		blk("server", [], array.concat(tls_basics, [blk("location", ["/"], [d("proxy_pass", ["http://app"])])])),
	])
}

test_private_listener_allowed if {
	not "NGINX-006" in denied with input as conf([blk("server", [], [
		d("listen", ["127.0.0.1:8081"]),
		d("client_max_body_size", ["1m"]),
		blk("location", ["/"], [d("proxy_pass", ["http://10.0.3.7:8080"])]),
	])])
}

test_allowed_plain_upstream_from_data if {
	site := site_with([blk("location", ["/"], [d("proxy_pass", ["http://api.internal.example:8080"])])])
	not "NGINX-006" in denied with input as site with data.cd_checks.config.nginx.allowed_plain_upstreams as ["*.internal.example"]
	"NGINX-006" in denied with input as site with data.cd_checks.config.nginx.allowed_plain_upstreams as ["*.other.example"]
}

test_finding_points_at_proxy_pass if {
	some r in nginx.deny with input as site_with([blk("location", ["/"], [d("proxy_pass", ["http://10.1.1.1"])])])
	r.rule == "NGINX-006"
	r.path == ["directives", 0, "block", "directives", 7, "block", "directives", 0]
}

# NGINX-007

test_tls_server_without_hsts_warned if {
	"NGINX-007" in warned with input as conf([blk("server", [], [
		d("listen", ["443", "ssl"]),
		d("ssl_certificate", ["a.crt"]),
		d("ssl_certificate_key", ["a.key"]),
		d("client_max_body_size", ["1m"]),
	])])
}

test_hsts_allowed if {
	not "NGINX-007" in warned with input as good_site
}

test_hsts_can_be_turned_off if {
	not "NGINX-007" in warned with input as conf([blk("server", [], [d("listen", ["443", "ssl"])])])
		with data.cd_checks.config.nginx.require_hsts as false
}

test_server_own_add_header_hides_http_hsts if {
	# nginx sends the http block's add_header only to servers that set none.
	"NGINX-007" in warned with input as conf([blk("http", [], [
		d("server_tokens", ["off"]),
		d("add_header", ["Strict-Transport-Security", "max-age=63072000"]),
		blk("server", [], [
			d("listen", ["443", "ssl"]),
			d("ssl_certificate", ["a.crt"]),
			d("ssl_certificate_key", ["a.key"]),
			d("client_max_body_size", ["1m"]),
			d("add_header", ["X-Frame-Options", "DENY"]),
		]),
	])])
}

test_hsts_inherited_from_http_allowed if {
	not "NGINX-007" in warned with input as conf([blk("http", [], [
		d("server_tokens", ["off"]),
		d("add_header", ["Strict-Transport-Security", "max-age=63072000"]),
		blk("server", [], [d("listen", ["443", "ssl"]), d("ssl_certificate", ["a.crt"]), d("ssl_certificate_key", ["a.key"])]),
	])])
}

# --- files read in context (marks set by cd_checks/nginx.py) ------------------

f(name, ps, file) := {"name": name, "parameters": ps, "line": 3, "file": file}

fblk(name, ps, file, children) := {"name": name, "parameters": ps, "line": 2, "file": file, "block": {"directives": children}}

ctx(x) := object.union(x, {"context": true})

# conf.d/shop.conf read inside nginx.conf's http block, which includes a snippet.
in_context(server_children) := {"file": "conf.d/shop.conf", "directives": [ctx(fblk("http", [], "nginx.conf", [
	ctx(f("include", ["h5bp/security/server_software_information.conf"], "nginx.conf")),
	ctx(object.union(f("server_tokens", ["off"], "h5bp/security/server_software_information.conf"), {"included_from": [["nginx.conf", 9]]})),
	ctx(f("client_max_body_size", ["16m"], "nginx.conf")),
	ctx(f("ssl_certificate", ["/etc/ssl/wild.pem"], "nginx.conf")),
	ctx(f("ssl_certificate_key", ["/etc/ssl/wild.key"], "nginx.conf")),
	object.union(fblk("server", [], "conf.d/shop.conf", server_children), {"included_from": [["nginx.conf", 40]]}),
]))]}

test_inherited_settings_count_in_context if {
	site := in_context([f("listen", ["443", "ssl"], "conf.d/shop.conf"), f("add_header", ["Strict-Transport-Security", "max-age=1"], "conf.d/shop.conf")])
	count(nginx.deny) == 0 with input as site
	count(nginx.warn) == 0 with input as site
}

test_context_directives_are_not_reported_here if {
	# nginx.conf's own problems are nginx.conf's findings, not every site's.
	site := {"file": "conf.d/shop.conf", "directives": [ctx(fblk("http", [], "nginx.conf", [
		ctx(f("server_tokens", ["on"], "nginx.conf")),
		ctx(f("autoindex", ["on"], "nginx.conf")),
		ctx(fblk("server", [], "conf.d/other.conf", [ctx(f("listen", ["443", "ssl"], "conf.d/other.conf"))])),
	]))]}
	count(nginx.deny) == 0 with input as site
	count(nginx.warn) == 0 with input as site
}

test_own_problems_are_reported_in_context if {
	site := in_context([f("listen", ["80"], "conf.d/shop.conf"), f("autoindex", ["on"], "conf.d/shop.conf")])
	denied == {"NGINX-003"} with input as site
}

test_included_directive_names_its_file if {
	snippet := "snippets/legacy-tls.conf"
	site := in_context([
		f("listen", ["443", "ssl"], "conf.d/shop.conf"),
		f("include", [snippet], "conf.d/shop.conf"),
		object.union(f("ssl_ciphers", ["RC4-SHA"], snippet), {"included_from": [["conf.d/shop.conf", 7]]}),
	])
	some r in nginx.deny with input as site
	r.rule == "NGINX-008"
	endswith(r.msg, "(snippets/legacy-tls.conf:3)")
}

test_unreadable_include_may_set_anything if {
	host := {"name": "include", "parameters": ["/etc/letsencrypt/options-ssl-nginx.conf"], "line": 1, "unresolved": true}
	not "NGINX-001" in denied with input as conf([blk("http", [], [host, d("client_max_body_size", ["1m"])])])
	site := conf([blk("server", [], [d("listen", ["443", "ssl"]), host])])
	not "NGINX-004" in denied with input as site
	not "NGINX-005" in warned with input as site
	not "NGINX-007" in warned with input as site
	# a readable include hides nothing
	"NGINX-004" in denied with input as conf([blk("server", [], [d("listen", ["443", "ssl"]), d("include", ["snippets/headers.conf"])])])
}

# --- NGINX-008 ---------------------------------------------------------------------

ciphers(s) := site_with([d("ssl_ciphers", [s])])

mozilla_intermediate := "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"

test_broken_ciphers_denied if {
	every s in [
		"HIGH:!aNULL:!MD5:+SSLv3",
		"ALL:!ADH:!EXPORT56:RC4+RSA:+HIGH:+MEDIUM:+LOW:+SSLv2:+EXP",
		"ECDHE-RSA-AES128-GCM-SHA256:RC4-SHA",
		"ECDHE-RSA-AES128-GCM-SHA256:DES-CBC3-SHA",
		"EDH-RSA-DES-CBC3-SHA",
		"HIGH",
		"AESGCM:!MD5",
		"ECDHE-RSA-AES128-GCM-SHA256:aNULL",
		"DEFAULT:MEDIUM",
		"NULL-SHA",
		"EXP-RC4-MD5",
		"ECDHE+AESGCM:eNULL",
	] {
		"NGINX-008" in denied with input as ciphers(s)
	}
}

test_broken_cipher_message_names_the_families if {
	some r in nginx.deny with input as ciphers("HIGH:!aNULL:RC4:+SSLv3")
	r.rule == "NGINX-008"
	contains(r.msg, "RC4")
	contains(r.msg, "SSLv3")
	not contains(r.msg, "aNULL)")
}

test_cbc_sha1_ciphers_warned if {
	every s in [
		"HIGH:!aNULL:!MD5",
		"EECDH+CHACHA20:EECDH+AES",
		"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-SHA",
		"ECDHE-ECDSA-AES256-SHA:AES128-SHA",
		"ALL:!aNULL:!eNULL",
	] {
		"NGINX-008" in warned with input as ciphers(s)
		not "NGINX-008" in denied with input as ciphers(s)
	}
}

test_strong_ciphers_allowed if {
	every s in [
		mozilla_intermediate,
		"EECDH+AESGCM:EDH+AESGCM",
		"ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL",
		"HIGH:!aNULL:!MD5:!SHA1",
		"ECDHE-ECDSA-AES128-GCM-SHA256 ECDHE-RSA-AES128-GCM-SHA256",
	] {
		not "NGINX-008" in denied with input as ciphers(s)
		not "NGINX-008" in warned with input as ciphers(s)
	}
}

test_proxy_ssl_ciphers_checked if {
	"NGINX-008" in denied with input as site_with([blk("location", ["/"], [d("proxy_ssl_ciphers", ["RC4:HIGH"])])])
}

# --- NGINX-009 ---------------------------------------------------------------------

test_prefer_server_ciphers_with_modern_protocols_warned if {
	"NGINX-009" in warned with input as site_with([d("ssl_prefer_server_ciphers", ["on"])])
	"NGINX-009" in warned with input as conf([blk("http", [], [
		d("server_tokens", ["off"]),
		d("ssl_protocols", ["TLSv1.3"]),
		d("ssl_prefer_server_ciphers", ["on"]),
	])])
	# nginx's default protocols (1.23.4+) are TLSv1.2 and TLSv1.3
	"NGINX-009" in warned with input as conf([blk("server", [], [d("ssl_prefer_server_ciphers", ["on"])])])
}

test_prefer_server_ciphers_allowed if {
	not "NGINX-009" in warned with input as site_with([d("ssl_prefer_server_ciphers", ["off"])])
	# Mozilla's old configuration (legacy protocols) prefers the server's order
	not "NGINX-009" in warned with input as conf([blk("http", [], [
		d("server_tokens", ["off"]),
		d("ssl_protocols", ["TLSv1", "TLSv1.1", "TLSv1.2"]),
		blk("server", [], [d("ssl_prefer_server_ciphers", ["on"])]),
	])])
}

test_prefer_server_ciphers_sees_the_innermost_protocols if {
	"NGINX-009" in warned with input as conf([blk("http", [], [
		d("server_tokens", ["off"]),
		d("ssl_protocols", ["TLSv1", "TLSv1.2"]),
		blk("server", [], [d("ssl_protocols", ["TLSv1.2", "TLSv1.3"]), d("ssl_prefer_server_ciphers", ["on"])]),
	])])
}

# --- NGINX-010 ---------------------------------------------------------------------

headers_site(location_children) := conf([blk("server", [], array.concat(tls_basics, [
	d("add_header", ["X-Frame-Options", "DENY", "always"]),
	d("add_header", ["X-Content-Type-Options", "nosniff", "always"]),
	blk("location", ["/static/"], location_children),
]))])

test_location_add_header_dropping_security_headers_warned if {
	site := headers_site([d("add_header", ["Cache-Control", "public, max-age=86400"])])
	some r in nginx.warn with input as site
	r.rule == "NGINX-010"
	contains(r.msg, "location /static/")
	contains(r.msg, "Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options")
	r.path == ["directives", 0, "block", "directives", 9, "block", "directives", 0]
}

test_location_repeating_the_headers_allowed if {
	not "NGINX-010" in warned with input as headers_site([
		d("add_header", ["Cache-Control", "public"]),
		d("add_header", ["x-frame-options", "DENY"]),
		d("add_header", ["X-Content-Type-Options", "nosniff"]),
		d("add_header", ["Strict-Transport-Security", "max-age=63072000"]),
	])
}

test_location_without_add_header_inherits if {
	not "NGINX-010" in warned with input as headers_site([d("expires", ["7d"])])
}

test_add_header_inherit_merge_allowed if {
	not "NGINX-010" in warned with input as headers_site([d("add_header_inherit", ["merge"]), d("add_header", ["Cache-Control", "public"])])
	# inherited from the http block
	not "NGINX-010" in warned with input as conf([blk("http", [], [
		d("server_tokens", ["off"]),
		d("add_header_inherit", ["merge"]),
		d("add_header", ["X-Frame-Options", "DENY"]),
		blk("server", [], [d("listen", ["80"]), d("client_max_body_size", ["1m"]), d("add_header", ["X-Served-By", "edge"])]),
	])])
}

test_server_add_header_drops_http_headers if {
	"NGINX-010" in warned with input as conf([blk("http", [], [
		d("server_tokens", ["off"]),
		d("add_header", ["X-Frame-Options", "DENY"]),
		blk("server", [], [d("listen", ["80"]), d("client_max_body_size", ["1m"]), d("add_header", ["X-Served-By", "edge"])]),
	])])
}

test_nested_location_drops_through_a_silent_level if {
	# the outer location sets none, so it passes the server's headers on; the inner one drops them
	"NGINX-010" in warned with input as headers_site([blk("location", ["~* \\.svgz$"], [d("add_header", ["Content-Encoding", "gzip"])])])
}

test_only_other_headers_dropped_allowed if {
	not "NGINX-010" in warned with input as conf([blk("server", [], [
		d("listen", ["80"]),
		d("client_max_body_size", ["1m"]),
		d("add_header", ["X-Served-By", "edge"]),
		blk("location", ["/"], [d("add_header", ["Cache-Control", "no-store"])]),
	])])
}

test_security_headers_setting if {
	site := headers_site([d("add_header", ["Cache-Control", "public"])])
	not "NGINX-010" in warned with input as site with data.cd_checks.config.nginx.security_headers as ["content-security-policy"]
	"NGINX-010" in warned with input as site with data.cd_checks.config.nginx.security_headers as ["x-frame-options"]
}

test_preflight_answer_in_if_allowed if {
	not "NGINX-010" in warned with input as headers_site([blk("if", ["$request_method", "=", "OPTIONS"], [
		d("add_header", ["Access-Control-Allow-Origin", "*"]),
		d("return", ["204"]),
	])])
	"NGINX-010" in warned with input as headers_site([blk("if", ["$arg_download"], [d("add_header", ["Content-Disposition", "attachment"])])])
}
