"""The nginx set reads a file as nginx does: includes spliced in, inside the nginx.conf that
includes it, through `cd-checks validate` as a user runs it.

The corpus (tests/policies/corpus/nginx/) holds three repositories laid out as people keep
NGINX in git: h5bp's server-configs-nginx (the repository is the prefix, sites in conf.d/,
settings in included h5bp/ snippets), a Debian host's /etc/nginx (sites-enabled/ links,
absolute /etc/nginx includes) and Ansible roles (Jinja templates, Apache and supervisor
conf.d files beside nginx's). Each false alarm of issue 10 (server_tokens, certificates,
client_max_body_size set in an included file or the parent http block) has a test here that
fails when files are read alone.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from cd_checks.builtin_policies import BUILTIN_SETS
from cd_checks.config import DEFAULT_NGINX_GLOBS
from cd_checks.files import matcher
from tests.conftest import Run, git, init_repo

CORPUS = Path(__file__).parent / "corpus" / "nginx"
NGINX_ONLY = "---\npolicy:\n  builtin: [nginx]\n"

Found = set[tuple[str, int | None, str, str]]


def copy_of(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(CORPUS / name, target, symlinks=True)
    return target


def findings(run: Run) -> Found:
    report = json.loads(run.out)
    return {(f["path"], f["line"], f["rule"], f["severity"]) for f in report["findings"]}


def validate(cli: Callable[..., Run], root: Path, *args: str) -> Run:
    return cli("-C", root, "validate", "--no-cache", "--format", "json", *args)


# --- the corpus: what a reviewer sees ---------------------------------------------


def test_h5bp_layout_reports_the_weak_cipher_and_nothing_a_reviewer_dismisses(
    cli: Callable[..., Run], tmp_path: Path
) -> None:
    run = validate(cli, copy_of("h5bp", tmp_path))
    assert run.code == 1, run.out
    assert findings(run) == {
        # +SSLv3 in the included h5bp/tls/policy_deprecated.conf, at the site's include line
        ("conf.d/legacy.example.org.conf", 13, "NGINX-008", "error"),
        # the svgz location's add_header drops basic.conf's security headers
        ("conf.d/legacy.example.org.conf", 18, "NGINX-010", "warning"),
        # the www redirect over TLS sends no HSTS (hstspreload.org asks for it there too)
        ("conf.d/example.com.conf", 16, "NGINX-007", "warning"),
    }
    message = next(f["message"] for f in json.loads(run.out)["findings"] if f["line"] == 13)
    assert message.startswith("ssl_ciphers enables the SSLv3 cipher family")
    assert message.endswith("(h5bp/tls/policy_deprecated.conf:8)")


def test_debian_layout_reads_sites_in_the_http_block(
    cli: Callable[..., Run], tmp_path: Path
) -> None:
    run = validate(cli, copy_of("debian", tmp_path))
    assert run.code == 0, run.out
    # Only the /media/ location that replaces the security headers with Cache-Control;
    # /static/ repeats them. sites-enabled/ links are reported once, on their target.
    assert findings(run) == {
        ("etc/nginx/sites-available/app.example.net", 34, "NGINX-010", "warning"),
    }


def test_roles_layout_skips_templates_and_other_programs_conf_d(
    cli: Callable[..., Run], tmp_path: Path
) -> None:
    run = cli("-C", copy_of("roles", tmp_path), "validate", "--no-cache")
    assert run.code == 0, run.out
    # cd-checks.yml, tasks/main.yml, files/nginx.conf, files/conf.d/status.conf: not the
    # Jinja templates, Apache's <FilesMatch> or supervisor's [program:worker] under conf.d/
    assert run.out.strip() == "no problems in 4 files"


def test_include_problems_are_findings_at_the_include_line(
    cli: Callable[..., Run], tmp_path: Path
) -> None:
    root = copy_of("includes", tmp_path)
    (tmp_path / "outside.conf").write_text("server_tokens on;\n", "utf-8")
    (root / "nginx/snippets/escape.conf").symlink_to(tmp_path / "outside.conf")
    run = validate(cli, root)
    assert run.code == 1, run.out
    assert findings(run) == {
        ("nginx/conf.d/shop.conf", 5, "include-missing", "error"),
        ("nginx/conf.d/shop.conf", 6, "include-outside", "warning"),
        ("nginx/conf.d/shop.conf", 7, "include-outside", "warning"),
        # loop/ is under nginx/, checked on its own: the loop is reported once, where it closes
        ("nginx/loop/b.conf", 2, "include-loop", "error"),
        ("nginx/snippets/escape.conf", None, "symlink-outside", "warning"),
    }
    assert "server_tokens" not in run.out  # the file outside was never read


def test_files_that_all_include_each_other_are_one_loop_finding_each(
    cli: Callable[..., Run], repo: Callable[[Mapping[str, str | bytes]], Path]
) -> None:
    sites = {
        f"conf.d/s{i:02}.conf": "include conf.d/*.conf;\nserver {\n    listen 80;\n}\n"
        for i in range(12)
    }
    main = "events {}\nhttp {\n    server_tokens off;\n    include conf.d/*.conf;\n}\n"
    run = validate(cli, repo({"cd-checks.yml": NGINX_ONLY, "nginx.conf": main, **sites}))
    assert run.code == 1
    assert findings(run) == {(name, 1, "include-loop", "error") for name in sites}


# --- each false-alarm class of issue 10, alone ------------------------------------------

H5BP_MAIN = """\
events { worker_connections 1024; }
http {
    include h5bp/security/server_software_information.conf;
    client_max_body_size 8m;
    include conf.d/*.conf;
}
"""

SITE_WITH_CERT_SNIPPET = """\
server {
    listen 443 ssl;
    server_name example.com;
    include h5bp/tls/certificate_files.conf;
    add_header Strict-Transport-Security "max-age=63072000" always;
}
"""


@pytest.mark.parametrize(
    ("files", "rule"),
    [
        pytest.param(
            {
                "nginx.conf": H5BP_MAIN,
                "h5bp/security/server_software_information.conf": "server_tokens off;\n",
            },
            "NGINX-001",
            id="server_tokens-in-included-file",
        ),
        pytest.param(
            {
                "nginx.conf": H5BP_MAIN,
                "h5bp/security/server_software_information.conf": "server_tokens off;\n",
                "h5bp/tls/certificate_files.conf": (
                    "ssl_certificate /etc/ssl/a.pem;\nssl_certificate_key /etc/ssl/a.key;\n"
                ),
                "conf.d/example.com.conf": SITE_WITH_CERT_SNIPPET,
            },
            "NGINX-004",
            id="certificate-in-included-file",
        ),
        pytest.param(
            {
                "nginx.conf": H5BP_MAIN.replace(
                    "client_max_body_size 8m;",
                    "client_max_body_size 8m;\n    ssl_certificate /etc/ssl/wild.pem;\n"
                    "    ssl_certificate_key /etc/ssl/wild.key;",
                ),
                "h5bp/security/server_software_information.conf": "server_tokens off;\n",
                "conf.d/example.com.conf": SITE_WITH_CERT_SNIPPET.replace(
                    "    include h5bp/tls/certificate_files.conf;\n", ""
                ),
            },
            "NGINX-004",
            id="certificate-in-parent-http",
        ),
        pytest.param(
            {
                "nginx.conf": H5BP_MAIN,
                "h5bp/security/server_software_information.conf": "server_tokens off;\n",
                "conf.d/static.conf": "server {\n    listen 80;\n    root /srv/www;\n}\n",
            },
            "NGINX-005",
            id="client_max_body_size-in-parent-http",
        ),
        pytest.param(
            {
                "nginx.conf": H5BP_MAIN,
                "h5bp/security/server_software_information.conf": "server_tokens off;\n",
                "conf.d/upstreams.conf": "upstream app {\n    server 127.0.0.1:8080;\n}\n",
                "conf.d/app.conf": (
                    "server {\n    listen 80;\n"
                    "    location / {\n        proxy_pass http://app;\n    }\n}\n"
                ),
            },
            "NGINX-006",
            id="local-upstream-in-another-file",
        ),
    ],
)
def test_inherited_or_included_setting_counts(
    cli: Callable[..., Run],
    repo: Callable[[Mapping[str, str | bytes]], Path],
    files: dict[str, str],
    rule: str,
) -> None:
    run = validate(cli, repo({"cd-checks.yml": NGINX_ONLY, **files}))
    assert run.code == 0, run.out
    assert rule not in {r for _, _, r, _ in findings(run)}


def test_the_setting_missing_everywhere_is_still_found(
    cli: Callable[..., Run], repo: Callable[[Mapping[str, str | bytes]], Path]
) -> None:
    run = validate(
        cli,
        repo(
            {
                "cd-checks.yml": NGINX_ONLY,
                "nginx.conf": "events {}\nhttp {\n    include conf.d/*.conf;\n}\n",
                "conf.d/example.com.conf": SITE_WITH_CERT_SNIPPET,
                "h5bp/tls/certificate_files.conf": "ssl_certificate /etc/ssl/a.pem;\n",
            }
        ),
    )
    assert run.code == 1, run.out
    assert findings(run) == {
        ("nginx.conf", 2, "NGINX-001", "error"),
        ("conf.d/example.com.conf", 2, "NGINX-004", "error"),  # no key, here or above
        ("conf.d/example.com.conf", 1, "NGINX-005", "warning"),
    }


def test_a_site_not_enabled_is_read_in_its_nginx_conf(
    cli: Callable[..., Run], repo: Callable[[Mapping[str, str | bytes]], Path]
) -> None:
    run = validate(
        cli,
        repo(
            {
                "cd-checks.yml": NGINX_ONLY,
                "nginx.conf": "events {}\nhttp {\n    server_tokens off;\n"
                "    client_max_body_size 4m;\n    include sites-enabled/*;\n}\n",
                "sites-available/old": "server {\n    listen 80;\n    root /srv/old;\n}\n",
            }
        ),
    )
    assert run.code == 0, run.out
    assert findings(run) == set()


def test_a_file_no_nginx_conf_holds_is_read_alone(
    cli: Callable[..., Run], repo: Callable[[Mapping[str, str | bytes]], Path]
) -> None:
    run = validate(
        cli,
        repo(
            {
                "cd-checks.yml": NGINX_ONLY,
                "sites/shop.nginx.conf": "server {\n    listen 80;\n    root /srv/shop;\n}\n",
            }
        ),
    )
    assert findings(run) == {("sites/shop.nginx.conf", 1, "NGINX-005", "warning")}


# --- PR mode and the cache: a verdict follows the files it depends on --------------


def _debian_repo(tmp_path: Path) -> Path:
    root = copy_of("debian", tmp_path)
    return init_repo(root)


def test_pr_changing_only_a_site_finds_its_nginx_conf(
    cli: Callable[..., Run], tmp_path: Path
) -> None:
    root = _debian_repo(tmp_path)
    site = root / "etc/nginx/sites-available/default"
    site.write_text(site.read_text("utf-8").replace("return 444;", "root /srv/www;"), "utf-8")
    run = validate(cli, root, "--changed-since", "main")
    # the parent's client_max_body_size 25m counts: no NGINX-005 on the changed site
    assert run.code == 0, run.out
    assert findings(run) == set()
    hook = validate(cli, root, "etc/nginx/sites-available/default")  # pre-commit names files
    assert hook.code == 0, hook.out
    assert findings(hook) == set()


def test_pr_changing_only_nginx_conf_rechecks_the_sites_it_includes(
    cli: Callable[..., Run], tmp_path: Path
) -> None:
    root = _debian_repo(tmp_path)
    git(root, "checkout", "-q", "-b", "change")
    main_conf = root / "etc/nginx/nginx.conf"
    text = main_conf.read_text("utf-8").replace("\tclient_max_body_size 25m;\n", "")
    main_conf.write_text(text, "utf-8")
    git(root, "commit", "-q", "-am", "drop the body limit")
    run = validate(cli, root, "--changed-since", "main")
    assert ("etc/nginx/sites-available/app.example.net", 9, "NGINX-005", "warning") in findings(run)


def test_cached_verdict_follows_the_parent_file(
    cli: Callable[..., Run], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CD_CHECKS_CACHE_KEY", "a-key-long-enough-for-the-cache")
    root = _debian_repo(tmp_path)
    first = cli("-C", root, "validate", "--format", "json")
    assert first.code == 0, first.out
    main_conf = root / "etc/nginx/nginx.conf"
    text = main_conf.read_text("utf-8").replace("\tclient_max_body_size 25m;\n", "")
    main_conf.write_text(text, "utf-8")
    second = cli("-C", root, "validate", "--format", "json")
    assert ("etc/nginx/sites-available/app.example.net", 9, "NGINX-005", "warning") in findings(
        second
    )


# --- default globs -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "read"),
    [
        ("nginx.conf", True),
        ("deploy/edge/nginx.conf", True),
        ("roles/nginx/files/nginx.conf", True),
        ("nginx/sites/shop.conf", True),
        ("deploy/nginx/h5bp/basic.conf", True),
        ("edge/api.nginx.conf", True),
        ("conf.d/example.com.conf", True),
        ("etc/nginx/sites-available/default", True),
        ("etc/nginx/sites-enabled/app.example.net", True),
        ("etc/nginx/snippets/ssl-params.conf", True),
        ("conf.d/.staging.conf", False),  # nginx's `*` skips dotfiles: h5bp disables so
        ("roles/nginx/templates/nginx.conf.j2", False),
        ("roles/nginx/templates/sites/site.conf", False),
        ("templates/nginx.conf", False),
        ("conf.d/templates/example.com.conf", False),
        ("h5bp/basic.conf", False),  # read through nginx.conf's include, not alone
        ("sites-available/README.md", False),
        ("docs/nginx.md", False),
    ],
)
def test_default_globs(path: str, read: bool) -> None:
    assert matcher(DEFAULT_NGINX_GLOBS).match_file(path) is read
    assert BUILTIN_SETS["nginx"].files == DEFAULT_NGINX_GLOBS


def test_conf_d_of_another_program_is_not_read_as_nginx(
    cli: Callable[..., Run], repo: Callable[[Mapping[str, str | bytes]], Path]
) -> None:
    root = repo(
        {
            "cd-checks.yml": NGINX_ONLY,
            "apache/conf.d/ssl.conf": "<VirtualHost *:443>\n  SSLEngine on\n</VirtualHost>\n",
            "apache/sites-enabled/site": "ServerName example.com\nDocumentRoot /srv/www\n",
            "supervisor/conf.d/app.conf": "[program:app]\ncommand=/srv/app/run\n",
            "conf.d/app.conf": "server {\n    listen 80\n}\n",  # NGINX, with a syntax error
        }
    )
    run = cli("-C", root, "validate", "--no-cache")
    assert run.code == 1
    assert run.out.splitlines()[0].startswith("conf.d/app.conf:2  error    syntax/syntax")
    assert "apache" not in run.out and "supervisor" not in run.out
    assert run.out.rstrip().endswith("in 2 files")


def test_corpus_keeps_the_links_of_sites_enabled() -> None:
    link = CORPUS / "debian/etc/nginx/sites-enabled/app.example.net"
    assert link.is_symlink() and link.resolve().parent.name == "sites-available"
