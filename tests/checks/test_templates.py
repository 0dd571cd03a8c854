"""Templates are not what they render to: Jinja files are not checked unless asked for."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Run, write_tree

Cli = Callable[..., Run]
NGINX = "events {}\nhttp {\n  server_tokens off;\n}\n"

JINJA_NGINX = """{% if tls %}
server {
    listen 443 ssl;
    server_tokens {{ tokens }};
}
{% endif %}
"""
JINJA_YAML = "---\n{% for user in users %}\n- name: {{ user }}\n{% endfor %}\n"


def test_jinja_templates_are_not_syntax_checked_by_default(cli: Cli, tmp_path: Path) -> None:
    files = {
        # nginx.conf* would take templates in: they stay out all the same.
        "cd-checks.yml": '---\nsyntax:\n  nginx: ["**/nginx.conf*"]\n',
        "roles/x/templates/nginx.conf.j2": JINJA_NGINX,
        "roles/x/templates/users.yml": JINJA_YAML,
        "templates/app.yaml.jinja2": JINJA_YAML,
        "deploy/nginx.conf": NGINX,
    }
    root = write_tree(tmp_path / "r", files)
    run = cli("-C", root, "validate", "--no-cache", "--format", "json")
    assert run.code == 0, run.out
    assert json.loads(run.out)["findings"] == []
    # Opting back in: `syntax.templates` lists what is a template, [] nothing.
    (root / "cd-checks.yml").write_text(
        '---\nsyntax:\n  nginx: ["**/nginx.conf*"]\n  templates: []\n'
    )
    run = cli("-C", root, "validate", "--no-cache", "--format", "json")
    flagged = {f["path"] for f in json.loads(run.out)["findings"] if f["check"] == "syntax"}
    assert run.code == 1
    assert {"roles/x/templates/nginx.conf.j2", "roles/x/templates/users.yml"} <= flagged


def test_a_templates_directory_outside_roles_is_still_checked(cli: Cli, tmp_path: Path) -> None:
    """GitLab CI/CD components live in templates/: real YAML, checked as such."""
    root = write_tree(tmp_path / "r", {"templates/validate/template.yml": "---\na: [1\n"})
    run = cli("-C", root, "validate", "--no-cache", "--format", "json")
    assert run.code == 1
    found = json.loads(run.out)["findings"]
    assert [(f["path"], f["rule"]) for f in found] == [
        ("templates/validate/template.yml", "syntax")
    ]
