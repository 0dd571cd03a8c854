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
	denied == {"NGINX-004", "NGINX-005"} with input as conf([blk("server", [], [{"name": "listen", "parameters": [443, "ssl"]}, "junk"])])
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

test_server_without_body_limit_denied if {
	"NGINX-005" in denied with input as conf([blk("server", [], [d("listen", ["80"]), d("root", ["/srv/www"])])])
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
