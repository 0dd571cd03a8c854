"""`cd-checks init` on real repositories: the config it writes validates what is there (or
finds only real problems), and every CI file it writes passes actionlint, zizmor,
check-jsonschema and yamllint's defaults."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
import yaml

from cd_checks.scaffold import pin, render
from tests.conftest import EXAMPLES, REPO, Run, git, init_repo, write_tree

NGINX_REPO = {
    "nginx.conf": """\
user www-data;
worker_processes auto;
events {
    worker_connections 1024;
}
http {
    server_tokens off;
    client_max_body_size 10m;
    ssl_protocols TLSv1.2 TLSv1.3;
    include /etc/nginx/conf.d/*.conf;
}
""",
    "conf.d/shop.conf": """\
server {
    listen 443 ssl;
    server_name shop.example.com;
    ssl_certificate /etc/ssl/shop.pem;
    ssl_certificate_key /etc/ssl/shop.key;
    add_header Strict-Transport-Security "max-age=31536000" always;
    client_max_body_size 10m;
    location / {
        proxy_pass http://127.0.0.1:8080;
    }
}
""",
    "conf.d/files.conf": """\
server {
    listen 80;
    server_name files.example.com;
    client_max_body_size 1m;
    location / {
        root /srv/files;
        autoindex on;
    }
}
""",
    "logrotate.conf": "/var/log/nginx/*.log {\n    daily\n    rotate 14\n}\n",
    "README.md": "# NGINX configs of the web tier\n",
}

PROMETHEUS_REPO = {
    "prometheus/prometheus.yml": """\
---
global:
  scrape_interval: 30s
rule_files:
  - rules/*.yml
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ["node-1:9100", "node-2:9100"]
""",
    "prometheus/rules/node.yml": """\
---
groups:
  - name: node
    rules:
      - record: instance:node_cpu_utilisation:rate5m
        expr: 1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))
      - alert: NodeDown
        expr: up{job="node"} == 0
        for: 5m
        labels:
          severity: critical
        annotations:
          summary: "{{ $labels.instance }} is down"
          runbook_url: https://runbooks.example.com/node-down
""",
    "prometheus/rules/disk.yml": """\
---
groups:
  - name: disk
    rules:
      - alert: DiskAlmostFull
        expr: node_filesystem_avail_bytes / node_filesystem_size_bytes < 0.1
        for: 15m
        labels:
          severity: warning
        annotations:
          summary: "{{ $labels.instance }}: less than 10% disk left"
""",
    "alertmanager/alertmanager.yml": """\
---
route:
  receiver: on-call
  group_by: [alertname]
receivers:
  - name: on-call
    webhook_configs:
      - url: https://pager.example.com/hook
""",
}

ANSIBLE_REPO = {
    "ansible.cfg": "[defaults]\ninventory = inventory/hosts.ini\nroles_path = roles\n",
    "inventory/hosts.ini": """\
[webservers:children]
staging
production

[staging]
web-stg-01 ansible_host=10.0.1.10

[production]
web-prd-[01:04] ansible_user=deploy

[production:vars]
nginx_worker_processes=4
""",
    "inventory/group_vars/all.yml": "---\nntp_server: ntp.example.com\n",
    "site.yml": """\
---
- name: Configure the web servers
  hosts: webservers
  become: true
  roles:
    - nginx
""",
    "roles/nginx/tasks/main.yml": """\
---
- name: Install nginx
  ansible.builtin.apt:
    name: nginx
    state: present
  notify: Reload nginx

- name: Fetch the monitoring agent installer
  ansible.builtin.shell: curl -fsSL https://agent.example.com/install.sh | sh
""",
    "roles/nginx/handlers/main.yml": """\
---
- name: Reload nginx
  ansible.builtin.service:
    name: nginx
    state: reloaded
""",
    "roles/nginx/defaults/main.yml": "---\nnginx_worker_processes: 2\n",
    "roles/nginx/templates/nginx.conf.j2": "worker_processes {{ nginx_worker_processes }};\n",
}

WORKFLOWS = (render.GITHUB_VALIDATE, render.GITHUB_DEPLOY)


# --- helpers --------------------------------------------------------------------------------


def make_repo(root: Path, files: Mapping[str, str]) -> Path:
    return init_repo(write_tree(root, files))


def run(*args: str | Path, cwd: Path | None = None) -> Run:
    """`cd-checks ARGS` as a real process (the editable install under test)."""
    done = subprocess.run(
        [sys.executable, "-m", "cd_checks", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def validate(root: Path) -> tuple[int, list[dict[str, object]]]:
    done = run("-C", root, "validate", "--format", "json", "--no-cache")
    assert done.code in (0, 1), done.err
    return done.code, json.loads(done.out)["findings"]


def where(findings: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return sorted((f["path"], f["line"], f["rule"]) for f in findings)


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip(f"{name} is not installed (the test extra installs it)")
    return found


def lint_ci(root: Path, *, config_written: bool = True) -> None:
    """Every CI file init wrote passes the linters users run on them."""
    workflows = [root / w for w in WORKFLOWS if (root / w).is_file()]
    gitlab = root / render.GITLAB_CI
    commands = []
    if workflows:
        commands += [
            [tool("actionlint"), *workflows],
            [tool("zizmor"), "--offline", "--no-progress", *workflows],
            [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *workflows],
        ]
    if gitlab.is_file():
        commands.append(
            [tool("check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci"]
            + ["--data-transform", "gitlab-ci", gitlab]
        )
    for command in commands:
        done = subprocess.run(list(map(str, command)), capture_output=True, text=True, cwd=root)
        assert done.returncode == 0, f"{command[0]}:\n{done.stdout}{done.stderr}"
    yamllint_defaults(root, config_written=config_written)


def yamllint_defaults(root: Path, *, config_written: bool) -> None:
    """yamllint's default rules (cd-checks' default YAML check): not even a warning."""
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    conf = YamlLintConfig("extends: default")
    written = [*WORKFLOWS, render.GITLAB_CI, render.PRE_COMMIT]
    written += [render.CONFIG_FILE] if config_written else []
    for name in written:
        if (root / name).is_file():
            problems = list(linter.run((root / name).read_text(), conf))
            assert not problems, f"{name}: {[str(p) for p in problems]}"


def init(root: Path, *args: str) -> Run:
    done = run("init", *args, cwd=root)  # in the repository, as a user does
    assert done.code == 0, done.out + done.err
    return done


def config(root: Path) -> dict[str, object]:
    loaded = yaml.safe_load((root / "cd-checks.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


# --- the example repository, as someone else's repo -----------------------------------------


def test_init_on_the_example_repository_finds_what_its_own_config_turns_on(
    tmp_path: Path,
) -> None:
    root = tmp_path / "ops"
    shutil.copytree(EXAMPLES, root)
    (root / "cd-checks.yml").unlink()
    shutil.rmtree(root / "ci")
    # init writes one `rollout:` and guesses its testinfra directory only when there is
    # one: keep the web site's (the example has one per change type).
    for other in ("patches", "monitoring"):
        shutil.rmtree(root / "tests/health" / other)
    init_repo(root)

    done = init(root, "--ci", "both")
    original = yaml.safe_load((EXAMPLES / "cd-checks.yml").read_text())
    written = config(root)
    assert written["policy"]["builtin"] == original["policy"]["builtin"]  # type: ignore[index]
    assert written["schema"] == original["schema"]
    assert written["files"] == {"exclude": ["bad-change/**"]}  # it has its own cd-checks.yml
    # The example has change types; init writes one `rollout:` like its web site's (nginx).
    rollout, expected = written["rollout"], {**original["defaults"], **original["changes"]["nginx"]}
    for key in ("inventory", "apply", "stages", "rollback"):
        assert rollout[key] == expected[key], key  # type: ignore[index]
    assert rollout["health"]["testinfra"] == "tests/health/nginx/"  # type: ignore[index]
    assert written["audit"] == {"store": "git", "remote": "origin"}

    assert validate(root) == (0, [])
    lint_ci(root)
    for name in (*WORKFLOWS, render.GITLAB_CI, render.PRE_COMMIT, ".gitignore"):
        assert re.search(rf"(wrote|added) +{re.escape(name)} ", done.out), name
    assert 'require the check "validate" (pull requests show it as "cd-checks / validate")' in (
        done.out
    )
    assert "git add cd-checks.yml .gitignore" in done.out


# --- small realistic repositories -----------------------------------------------------------


def test_an_nginx_repository_gets_globs_for_where_its_configs_are(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "web", NGINX_REPO)
    done = init(root, "--ci", "github")
    assert "found: 3 NGINX configs" in done.out  # not logrotate.conf
    written = config(root)
    # the default globs find nginx.conf and conf.d/ (and leave logrotate.conf alone)
    assert "syntax" not in written
    assert written["policy"] == {"builtin": ["nginx"]}
    code, findings = validate(root)
    assert code == 1 and where(findings) == [("conf.d/files.conf", 7, "NGINX-003")]  # real
    assert not (root / render.GITLAB_CI).exists()
    assert not (root / render.GITHUB_DEPLOY).exists()
    assert "note: no deploy workflow: cd-checks.yml has no rollout section yet" in done.out
    lint_ci(root)


def test_a_prometheus_repository_with_long_promql_gets_a_yamllint_config_that_fits(
    tmp_path: Path,
) -> None:
    root = make_repo(tmp_path / "monitoring", PROMETHEUS_REPO)
    done = init(root, "--ci", "gitlab")
    assert "found: 2 Prometheus rule files" in done.out
    assert "found: 1 Alertmanager config" in done.out
    # The default globs of the monitoring set fit these files: no override.
    assert config(root)["policy"] == {"builtin": ["monitoring"]}
    yamllint = yaml.safe_load((root / ".yamllint").read_text())
    assert yamllint == {"extends": "default", "rules": {"line-length": {"max": 90}}}
    code, findings = validate(root)
    # Real, and a house rule: a warning that does not fail the run.
    assert code == 0 and where(findings) == [("prometheus/rules/disk.yml", 11, "MON-005")]
    gitlab = yaml.safe_load((root / render.GITLAB_CI).read_text())
    assert gitlab["include"] == [
        {"component": "$CI_SERVER_FQDN/cd-checks/cd-checks/validate@0.2.0"}
    ]
    assert not (root / ".github").exists()
    lint_ci(root)


def test_an_ansible_repository_with_an_ini_inventory_gets_a_rollout_and_deploys(
    tmp_path: Path,
) -> None:
    root = make_repo(tmp_path / "ansible", ANSIBLE_REPO)
    done = init(root, "--ci", "both")
    assert "found: a rollout: site.yml on inventory/hosts.ini" in done.out
    written = config(root)
    assert written["policy"] == {"builtin": ["ansible", "pipeline"]}
    assert written["rollout"]["inventory"] == "inventory/hosts.ini"  # type: ignore[index]
    assert [s["hosts"] for s in written["rollout"]["stages"]] == [  # type: ignore[index]
        "staging",
        "production",
        "production",
    ]
    code, findings = validate(root)
    # Both real: no health gate yet (the config says so where it is missing), and a
    # task that pipes curl into sh.
    assert code == 1
    assert where(findings) == [
        ("cd-checks.yml", 25, "PIPE-003"),
        ("roles/nginx/tasks/main.yml", 9, "ANS-001"),
    ]
    assert "add testinfra tests or HTTP probes" in (root / "cd-checks.yml").read_text()

    deploy = yaml.safe_load((root / render.GITHUB_DEPLOY).read_text())
    jobs = deploy["jobs"]
    assert list(jobs) == ["staging", "canary", "production", "rollback"]
    assert [jobs[j].get("needs") for j in ("canary", "production")] == ["staging", "canary"]
    assert jobs["canary"]["concurrency"]["group"] == "deploy-production"
    assert jobs["rollback"]["if"] == "failure()"
    gitlab = yaml.safe_load((root / render.GITLAB_CI).read_text())
    assert gitlab["stages"] == ["test", "deploy"]
    assert gitlab["include"][1]["component"] == "$CI_SERVER_FQDN/cd-checks/cd-checks/deploy@0.2.0"
    lint_ci(root)


def test_the_pull_request_workflow_uploads_sarif_also_when_the_check_fails(
    tmp_path: Path,
) -> None:
    root = make_repo(tmp_path / "web", NGINX_REPO)
    init(root, "--ci", "github")
    workflow = yaml.safe_load((root / render.GITHUB_VALIDATE).read_text())
    assert workflow["name"] == "cd-checks"
    job = workflow["jobs"]["validate"]
    assert job["name"] == "validate"  # the required check "cd-checks / validate"
    steps = job["steps"]
    assert steps[0]["uses"] == f"actions/checkout@{render.CHECKOUT[0]}"
    assert steps[1]["uses"] == f"cd-checks/cd-checks@{git(REPO, 'rev-parse', 'HEAD').strip()}"
    assert steps[1]["with"] == {"sarif-file": "cd-checks.sarif"}
    upload = steps[2]
    assert upload["uses"] == f"github/codeql-action/upload-sarif@{render.UPLOAD_SARIF[0]}"
    assert upload["if"] == "${{ !cancelled() && hashFiles('cd-checks.sarif') != '' }}"
    assert upload["with"]["sarif_file"] == "cd-checks.sarif"
    assert job["permissions"]["security-events"] == "write"
    text = (root / render.GITHUB_VALIDATE).read_text()
    assert "# v0.2.0" in text and "# v5.0.0" in text  # versions beside the SHAs


# --- running again, --force -----------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def test_running_init_again_changes_nothing_and_says_so(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ansible", ANSIBLE_REPO)
    init(root, "--ci", "both")
    before = snapshot(root)
    again = init(root, "--ci", "both")
    assert snapshot(root) == before
    assert "Nothing written: every file is already there (--force overwrites them)." in again.out
    assert "kept      .gitignore" in again.out and "already ignores .cd-checks/" in again.out
    assert "kept      cd-checks.yml" in again.out and "exists (--force overwrites it)" in again.out


def test_force_overwrites_but_keeps_the_users_gitignore(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "web", {**NGINX_REPO, ".gitignore": "*.swp"})
    init(root, "--ci", "github")
    (root / "cd-checks.yml").write_text("{}\n")
    (root / render.GITHUB_VALIDATE).write_text("edited\n")
    done = init(root, "--ci", "github", "--force")
    assert re.search(r"overwrote +cd-checks.yml ", done.out)
    assert config(root)["policy"]["builtin"] == ["nginx"]  # type: ignore[index]
    assert "edited" not in (root / render.GITHUB_VALIDATE).read_text()
    gitignore = (root / ".gitignore").read_text()
    assert gitignore.startswith("*.swp\n\n# cd-checks:") and gitignore.count(".cd-checks/\n") == 1


def test_a_kept_config_decides_the_ci_files(tmp_path: Path) -> None:
    # The user's own stages (no canary): GitHub deploys them; GitLab's three-job
    # deploy component does not fit them, so .gitlab-ci.yml only validates.
    root = make_repo(tmp_path / "ansible", ANSIBLE_REPO)
    own = {
        "rollout": {
            "inventory": "inventory/hosts.ini",
            "apply": {"ansible": {"playbook": "site.yml"}},
            "stages": [
                {"name": "stg", "hosts": "staging"},
                {"name": "prod.eu", "hosts": "production"},
            ],
        }
    }
    (root / "cd-checks.yml").write_text(yaml.safe_dump(own))
    done = init(root, "--ci", "both")
    assert "kept      cd-checks.yml" in done.out
    jobs = yaml.safe_load((root / render.GITHUB_DEPLOY).read_text())["jobs"]
    assert list(jobs) == ["stg", "prod-eu", "rollback"]
    assert jobs["prod-eu"]["steps"][1]["with"]["stage"] == "prod.eu"
    gitlab = yaml.safe_load((root / render.GITLAB_CI).read_text())
    assert [list(i) for i in gitlab["include"]] == [["component"]]
    assert "these stages differ, so .gitlab-ci.yml only validates" in done.out
    lint_ci(root, config_written=False)  # the config is the user's


# --- where the config lives, which ref ------------------------------------------------------


def test_a_config_in_a_subdirectory_gets_workflows_at_the_top(tmp_path: Path) -> None:
    top = make_repo(tmp_path / "mono", {f"ops/{k}": v for k, v in NGINX_REPO.items()})
    done = init(top / "ops", "--ci", "both")
    assert (top / "ops" / "cd-checks.yml").is_file()
    steps = yaml.safe_load((top / render.GITHUB_VALIDATE).read_text())["jobs"]["validate"]["steps"]
    assert steps[1]["with"] == {"working-directory": "ops", "sarif-file": "cd-checks.sarif"}
    assert steps[2]["with"]["sarif_file"] == "ops/cd-checks.sarif"
    assert "note: no .gitlab-ci.yml" in done.out and "note: no .pre-commit-config.yaml" in done.out
    assert ".cd-checks/" in (top / ".gitignore").read_text()
    lint_ci(top)


def test_without_a_known_commit_the_release_tag_is_used_and_the_user_told_to_pin(
    tmp_path: Path,
) -> None:
    root = make_repo(tmp_path / "web", NGINX_REPO)
    done = init(root, "--ci", "github", "--action-ref", "v0.2.0")
    text = (root / render.GITHUB_VALIDATE).read_text()
    assert "uses: cd-checks/cd-checks@v0.2.0  # pin this to the commit SHA of the tag" in text
    assert "note: the CI files use the tag v0.2.0: pin it to its commit SHA" in done.out
    pre_commit = yaml.safe_load((root / render.PRE_COMMIT).read_text())
    assert pre_commit["repos"][0]["rev"] == "v0.2.0"


def test_the_installed_commit_is_read_as_pip_records_it() -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    vcs = {
        "url": "https://github.com/cd-checks/cd-checks",
        "vcs_info": {"vcs": "git", "commit_id": sha},
    }
    assert pin.installed_commit(json.dumps(vcs), lambda _: None) == (
        sha,
        "the commit cd-checks was installed from (https://github.com/cd-checks/cd-checks)",
    )
    editable = {"url": "file:///src/cd%20checks", "dir_info": {"editable": True}}
    seen: list[Path] = []

    def head(path: Path) -> str:
        seen.append(path)
        return sha

    assert pin.installed_commit(json.dumps(editable), head)[0] == sha  # type: ignore[index]
    assert seen == [Path("/src/cd checks")]
    wheel = {"url": "file:///tmp/cd_checks-0.2.0-py3-none-any.whl", "archive_info": {}}
    assert pin.installed_commit(json.dumps(wheel), head) is None
    assert pin.installed_commit(None, head) is None
    assert pin.resolve(None).ref == git(REPO, "rev-parse", "HEAD").strip()  # this checkout


def test_third_party_pins_are_the_ones_the_examples_use() -> None:
    pins = {
        "actions/checkout": render.CHECKOUT,
        "github/codeql-action/upload-sarif": render.UPLOAD_SARIF,
    }
    for workflow in (EXAMPLES / "ci" / "github").glob("*.yml"):
        for action, sha in re.findall(r"uses: ([\w./-]+)@([0-9a-f]{40})", workflow.read_text()):
            if action in pins:
                assert sha == pins[action][0], f"{workflow.name}: {action}"


def test_init_help_shows_examples(cli: Callable[..., Run]) -> None:
    done = cli("init", "--help")
    assert done.code == 0
    assert re.search(r"Examples:\n +cd-checks init +# ", done.out)
    assert "--ci [auto|github|gitlab|both|none]" in done.out
