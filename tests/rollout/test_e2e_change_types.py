"""Two change types from one merge on a real lab fleet, each behind its own gate.

The config repository has `defaults:` (stages: a canary, then the rest) and two change
types for the `production` hosts: `site` (the example site, deploy/site.yml, checked by
the example testinfra tests and /healthz) and `banner` (its own playbook writing a second
nginx conf.d file, a server on port 18081 answering /banner, checked by an HTTP probe of
/banner only). A first rollout of each makes its known-good revision; then ONE merge
commit changes both, the banner half answering 500. Deployed as a CI does, one job per
type in a fixed order: the site goes everywhere, the banner fails at its canary and only
the banner is rolled back. Two waves per run keep the lab test short.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from cd_checks.lab import Lab
from tests.conftest import REPO, git, init_repo
from tests.lab_fixture import lab_fleet
from tests.rollout.repo_files import YAMLLINT
from tests.rollout.test_e2e import World, get

pytestmark = pytest.mark.lab

BANNER_PORT = 18081
SITE_FILES = ["deploy/site.yml", "deploy/templates/site.conf.j2", "deploy/vars/site.yml"]
BANNER_FILES = ["deploy/banner.yml", "deploy/templates/banner.conf.j2", "deploy/vars/banner.yml"]
CONFIG = {
    "defaults": {
        "inventory": "inventory/hosts.yml",  # the tests pass the lab's with --inventory
        "stages": [
            {"name": "canary", "hosts": "production", "percent": 25},
            {"name": "production", "hosts": "production"},
        ],
        "rollback": {"automatic": True},
    },
    "changes": {
        "site": {
            "hosts": "production",
            "files": [*SITE_FILES, "tests/health/site/**"],
            "apply": {"ansible": {"playbook": "deploy/site.yml"}},
            "health": {
                "testinfra": "tests/health/site/",
                "http": [{"url": "http://{host}/healthz", "status": 200}],
                "bake_seconds": 1,
                "retries": 1,
                "max_failed_percent": 0,
            },
        },
        "banner": {
            "hosts": "production",
            "files": BANNER_FILES,
            "apply": {"ansible": {"playbook": "deploy/banner.yml"}},
            "health": {
                "http": [
                    {
                        "url": f"http://{{host}}:{BANNER_PORT}/banner",
                        "status": 200,
                        "contains": "banner",
                    }
                ],
                "bake_seconds": 1,
                "retries": 1,
                "max_failed_percent": 0,
            },
        },
    },
}
BANNER_YML = """\
---
# Write conf.d/banner.conf (a server of its own on the banner port) and reload nginx.
- name: Deploy the banner
  hosts: all
  become: false
  gather_facts: false
  vars_files:
    - vars/banner.yml
  vars:
    cd_checks_revision: unknown
  tasks:
    - name: Write conf.d/banner.conf
      ansible.builtin.template:
        src: templates/banner.conf.j2
        dest: "{{ nginx_conf_dir }}/banner.conf"
        mode: "0644"

    - name: Check the whole nginx config
      ansible.builtin.command:
        argv: "{{ nginx_test_cmd }}"
      changed_when: false

    - name: Reload nginx
      ansible.builtin.command:
        argv: "{{ nginx_reload_cmd }}"
      changed_when: true

    # Whatever it answers (the gate judges that): wait until this revision answers it.
    - name: Wait until nginx serves this revision
      ansible.builtin.uri:
        url: "http://{{ ansible_host }}:{{ banner_port }}/banner"
        return_content: true
        use_proxy: false
        status_code: [200, 500]
      register: page
      until: cd_checks_revision in page.content
      retries: 20
      delay: 1
"""
BANNER_CONF = """\
# deployed by cd-checks, revision {{ cd_checks_revision }}
server {
    listen {{ ansible_host }}:{{ banner_port }};
    default_type text/plain;

    location = /banner {
        return {{ banner_status }} "{{ banner_text }}, revision {{ cd_checks_revision }}\\n";
    }
}
"""


def banner_vars(text: str, status: str) -> str:
    return f'---\nbanner_port: {BANNER_PORT}\nbanner_text: "{text}"\nbanner_status: {status}\n'


class Fleet(World):
    def state(self, change: str, environment: str) -> dict[str, Any]:
        path = self.root / ".cd-checks/rollout" / change / environment / "rollout.json"
        return dict(json.loads(path.read_text()))

    def banner(self, name: str) -> tuple[int, str]:
        return get(f"http://{self.lab.host(name).address}:{BANNER_PORT}/banner")

    def audit(self) -> list[dict[str, Any]]:
        text = (self.root / ".cd-checks/audit.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines()]

    def edit(self, name: str, old: str, new: str) -> None:
        path = self.root / name
        text = path.read_text()
        assert old in text, name
        path.write_text(text.replace(old, new))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from lab_fleet(tmp_path_factory, hosts=5, staging=1)


@pytest.fixture(scope="module")
def fleet(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    root = tmp_path_factory.mktemp("config-repo")
    for name in SITE_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "examples" / name, root / name)
    tests = REPO / "examples/tests/health"
    (root / "tests/health/site").mkdir(parents=True)
    shutil.copy(next(tests.glob("**/test_nginx.py")), root / "tests/health/site")
    (root / "deploy/banner.yml").write_text(BANNER_YML)
    (root / "deploy/templates/banner.conf.j2").write_text(BANNER_CONF)
    (root / "deploy/vars/banner.yml").write_text(banner_vars("banner v1", "200"))
    (root / "cd-checks.yml").write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    (root / ".gitignore").write_text(".cd-checks/\n")
    (root / ".yamllint").write_text(YAMLLINT)
    init_repo(root)
    return Fleet(lab, root, tmp_path_factory.mktemp("scratch"))


def test_one_merge_two_change_types_a_failure_in_the_second_rolls_back_only_it(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    start = time.monotonic()
    known_good = fleet.head()
    for change in ("site", "banner"):  # the first rollouts: each type's known-good
        code, out, err = fleet.cli(capsys, "rollout", "run", "--change", change, "--all")
        assert code == 0, out + err
    for host in fleet.lab.production:
        assert fleet.banner(host) == (200, f"banner v1, revision {known_good}\n")
    first = time.monotonic() - start

    merge = _merge_a_branch_changing_both_types(fleet)

    code, out, err = fleet.cli(capsys, "rollout", "run", "--change", "site", "--all")
    assert code == 0, out + err
    site = time.monotonic() - start - first
    code, out, _ = fleet.cli(capsys, "rollout", "plan", "--change", "banner", "--format", "json")
    canary = json.loads(out)["stages"][0]["waves"][0]
    assert code == 0 and len(canary) == 1 and canary[0] in fleet.lab.production
    code, out, err = fleet.cli(capsys, "rollout", "run", "--change", "banner", "--all")
    assert code == 1, out + err

    address = fleet.lab.host(canary[0]).address
    assert f"FAILED: stage canary wave 1: health gate failed on 1 of 1 host(s) ({canary[0]}" in out
    assert f"{canary[0]}: http http://{address}:{BANNER_PORT}/banner: status 500" in out
    assert f"rollback of environment production to {known_good[:12]}: {canary[0]}" in out
    assert "rollback verified" in out
    # Only the banner went back, to its own known-good; the new site stays everywhere.
    for host in fleet.lab.production:
        assert fleet.served(host) == (200, f"cd-checks site v2 on {host}, revision {merge}\n")
        assert fleet.banner(host) == (200, f"banner v1, revision {known_good}\n")
    staging = fleet.lab.staging[0]  # outside both types' `hosts: production`: never touched
    assert fleet.served(staging) == (200, f"{staging} initial\n")
    with pytest.raises(OSError):  # nothing listens on its banner port
        fleet.banner(staging)

    _assert_the_audit_trail(fleet, merge)
    assert fleet.state("site", "production")["status"] == "done"
    assert fleet.state("banner", "production")["status"] == "rolled_back"
    assert sorted(p.name for p in (fleet.root / ".cd-checks/rollout").iterdir()) == [
        "banner",
        "site",
    ]
    print(
        f"first rollouts of both types: {first:.1f}s, the merge's site: {site:.1f}s, "
        f"all: {time.monotonic() - start:.1f}s"
    )


def _merge_a_branch_changing_both_types(fleet: Fleet) -> str:
    """A real `git merge --no-ff` of a branch with one commit per type; the merge commit."""
    git(fleet.root, "switch", "-q", "-c", "two-changes")
    fleet.edit("deploy/vars/site.yml", '"cd-checks example site"', '"cd-checks site v2"')
    fleet.commit("site: a new title")
    (fleet.root / "deploy/vars/banner.yml").write_text(banner_vars("banner v2", "500"))
    fleet.commit("banner: a new text (and a 500 in production)")
    git(fleet.root, "switch", "-q", "main")
    git(fleet.root, "merge", "-q", "--no-ff", "-m", "Merge branch 'two-changes'", "two-changes")
    merge = fleet.head()
    assert len(git(fleet.root, "rev-list", "--parents", "-n1", merge).split()) == 3
    return merge


def _assert_the_audit_trail(fleet: Fleet, merge: str) -> None:
    finals = [
        (r["change"], r["stage"], r["outcome"])
        for r in fleet.audit()
        if r["kind"] == "stage" and r["outcome"] != "started" and r["revision_to"] == merge
    ]
    assert finals == [
        ("site", "canary", "succeeded"),
        ("site", "production", "succeeded"),
        ("banner", "canary", "rolled_back"),
    ]
