"""`validate` checks what `rollout run` will need: findings located in cd-checks.yml."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from cd_checks.validate import ValidateOptions, run
from tests.checks.inventory_samples import DOCS
from tests.conftest import Run, git, init_repo, write_tree

Cli = Callable[..., Run]

CONFIG = """\
rollout:
  inventory: inventory/hosts.ini
  apply:
    ansible: {playbook: deploy/site.yml}
  stages:
    - {name: staging, hosts: atlanta}
    - name: canary
      hosts: webservers
      percent: 10
    - {name: production, hosts: usa}
  health:
    testinfra: tests/health/
"""

PLAYBOOK = "- name: Deploy\n  hosts: all\n  become: true\n  tasks: []\n"
YAMLLINT = "extends: default\nrules: {document-start: disable}\n"


def files(config: str = CONFIG) -> dict[str, str]:
    return {
        "cd-checks.yml": config,
        "inventory/hosts.ini": DOCS,
        "deploy/site.yml": "---\n" + PLAYBOOK,
        "tests/health/test_nginx.py": "def test_ok():\n    pass\n",
        "deploy.sh": "#!/bin/sh\n",
        ".yamllint": YAMLLINT,
    }


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = write_tree(tmp_path / "repo", files())
    (root / "deploy.sh").chmod(0o755)
    return init_repo(root)


def validate(cli: Cli, root: Path, *args: str) -> tuple[int, list[tuple[object, ...]]]:
    done = cli("-C", root, "validate", "--format", "json", "--no-cache", *args)
    found = json.loads(done.out)["findings"]
    where = [(f["path"], f["line"], f["column"], f"{f['check']}/{f['rule']}") for f in found]
    return done.code, where


def message(cli: Cli, root: Path) -> str:
    done = cli("-C", root, "validate", "--format", "json", "--no-cache")
    return str(json.loads(done.out)["findings"][0]["message"])


def edit(root: Path, old: str, new: str) -> None:
    config = root / "cd-checks.yml"
    text = config.read_text()
    assert old in text
    config.write_text(text.replace(old, new))


def test_a_complete_rollout_config_is_clean(cli: Cli, root: Path) -> None:
    assert validate(cli, root) == (0, [])


def test_a_stage_naming_a_missing_group(cli: Cli, root: Path) -> None:
    """Before, validate was green and only the deploy failed."""
    edit(root, "hosts: atlanta", "hosts: atlantaa")
    assert validate(cli, root) == (1, [("cd-checks.yml", 6, 30, "rollout/unknown-group")])
    assert message(cli, root) == (
        "stage 'staging' names group 'atlantaa', which the inventory does not define; "
        "did you mean 'atlanta'?"
    )
    edit(root, "hosts: webservers", "hosts: frontends")
    assert validate(cli, root)[1][1] == ("cd-checks.yml", 8, 14, "rollout/unknown-group")


def test_the_text_output_shows_config_line_and_column(cli: Cli, root: Path) -> None:
    edit(root, "hosts: usa", "hosts: stagin")
    done = cli("-C", root, "validate", "--no-cache")
    assert done.code == 1
    assert (
        "cd-checks.yml:10:33  error    rollout/unknown-group  stage 'production' names group "
        "'stagin', which the inventory does not define" in done.out
    )


@pytest.mark.parametrize(
    ("missing", "position", "rule", "words"),
    [
        ("inventory/hosts.ini", (2, 14), "inventory-missing", "inventory 'inventory/hosts.ini'"),
        ("deploy/site.yml", (4, 25), "playbook-missing", "playbook 'deploy/site.yml'"),
        ("tests/health", (12, 16), "testinfra-missing", "health.testinfra 'tests/health/'"),
    ],
)
def test_a_missing_referent(
    cli: Cli, root: Path, missing: str, position: tuple[int, int], rule: str, words: str
) -> None:
    git(root, "rm", "-r", "-q", missing)
    code, found = validate(cli, root)
    assert code == 1 and ("cd-checks.yml", *position, f"rollout/{rule}") in found
    assert f"{words} does not exist" in message(cli, root)


def test_a_misspelt_path_gets_a_suggestion(cli: Cli, root: Path) -> None:
    edit(root, "deploy/site.yml", "deploy/sites.yml")
    assert validate(cli, root) == (1, [("cd-checks.yml", 4, 25, "rollout/playbook-missing")])
    assert message(cli, root).endswith("did you mean 'deploy/site.yml'?")


def test_the_command_program_when_it_is_a_repository_path(cli: Cli, root: Path) -> None:
    edit(root, "ansible: {playbook: deploy/site.yml}", 'command: ["./deploy.sh", "{hosts}"]')
    assert validate(cli, root) == (0, [])
    (root / "deploy.sh").chmod(0o644)
    assert validate(cli, root) == (1, [("cd-checks.yml", 4, 15, "rollout/command-not-executable")])
    edit(root, "./deploy.sh", "scripts/deploy.sh")
    assert validate(cli, root) == (1, [("cd-checks.yml", 4, 15, "rollout/command-missing")])
    edit(root, "scripts/deploy.sh", "ansible-playbook")  # found on the deploy host's PATH
    assert validate(cli, root) == (0, [])


def test_a_broken_inventory_is_reported_once_at_its_line(cli: Cli, root: Path) -> None:
    (root / "inventory/hosts.ini").write_text("[atlanta]\nhost1\n[webservers\n")
    assert validate(cli, root) == (1, [("inventory/hosts.ini", 3, 1, "syntax/inventory")])


def test_a_broken_yaml_inventory_is_reported_at_the_inventory(cli: Cli, root: Path) -> None:
    # valid YAML (yamllint is happy), but not an inventory
    (root / "inventory/hosts.yml").write_text("---\n- atlanta\n- usa\n")
    edit(root, "inventory/hosts.ini", "inventory/hosts.yml")
    code, found = validate(cli, root)
    assert code == 1 and found == [("inventory/hosts.yml", None, None, "rollout/inventory-invalid")]


def test_a_directory_inventory(cli: Cli, root: Path) -> None:
    git(root, "mv", "inventory/hosts.ini", "inventory/10-hosts")
    write_tree(root, {"inventory/20-extra.yml": "---\nextra:\n  hosts:\n    extra-1:\n"})
    edit(root, "inventory: inventory/hosts.ini", "inventory: inventory/")
    edit(root, "hosts: usa", "hosts: extra")
    assert validate(cli, root) == (0, [])
    edit(root, "hosts: extra", "hosts: extras")
    assert validate(cli, root)[1] == [("cd-checks.yml", 10, 33, "rollout/unknown-group")]


def test_pr_mode_checks_when_the_pr_touches_a_referent(cli: Cli, root: Path) -> None:
    edit(root, "hosts: atlanta", "hosts: atlantaa")
    git(root, "commit", "-qam", "typo before the PR")
    git(root, "checkout", "-qb", "pr")
    (root / "README.md").write_text("docs\n")  # an unrelated change: config not re-checked
    git(root, "add", "README.md")
    assert validate(cli, root, "--changed-since", "main") == (0, [])
    (root / "inventory/hosts.ini").write_text(DOCS + "\n[more]\nhost9\n")  # the inventory
    code, found = validate(cli, root, "--changed-since", "main")
    assert code == 1 and ("cd-checks.yml", 6, 30, "rollout/unknown-group") in found


def test_pr_mode_catches_a_deleted_playbook(cli: Cli, root: Path) -> None:
    git(root, "checkout", "-qb", "pr")
    git(root, "rm", "-q", "deploy/site.yml")
    code, found = validate(cli, root, "--changed-since", "main")
    assert (code, found) == (1, [("cd-checks.yml", 4, 25, "rollout/playbook-missing")])


def test_a_rollout_with_another_inventory_checks_that_one(root: Path) -> None:
    """`rollout run --inventory lab.yml`: its pre-flight checks the stages against lab.yml."""
    git(root, "rm", "-q", "inventory/hosts.ini")
    lab = root.parent / "lab.yml"
    lab.write_text("atlanta: [a1]\nwebservers: [w1, w2]\nusa: [a1]\n")
    report = run(ValidateOptions(root=root, use_cache=False, inventory=lab))
    assert report.findings == ()
    lab.write_text("atlanta: [a1]\nwebservers: [w1, w2]\n")
    report = run(ValidateOptions(root=root, use_cache=False, inventory=lab))
    assert [(f.path, f.line, f.rule) for f in report.findings] == [
        ("cd-checks.yml", 10, "unknown-group")
    ]


def test_stage_config_errors_are_findings(cli: Cli, root: Path) -> None:
    edit(root, "percent: 10", "percent: 10\n      waves: ['50%', '10%']")
    code, found = validate(cli, root)
    assert (code, found) == (1, [("cd-checks.yml", 7, 7, "rollout/invalid")])  # the stage


def test_a_metric_check_that_cannot_be_built_is_a_finding_at_that_check(
    cli: Cli, tmp_path: Path
) -> None:
    config = CONFIG.replace("  health:\n    testinfra: tests/health/\n", METRICS)
    config = config.replace("          max: 0.1\n", "")  # `fine` has neither max, min nor compare
    root = write_tree(tmp_path / "repo", {**files(config)})
    (root / "deploy.sh").chmod(0o755)
    init_repo(root)
    code, where = validate(cli, root)
    assert (code, where) == (1, [("cd-checks.yml", 23, 11, "rollout/invalid")])


def test_a_style_warning_does_not_hide_a_broken_inventory(cli: Cli, root: Path) -> None:
    long_comment = "# " + "x" * 90 + "\n"  # yamllint: line-length warning, the file parses
    (root / "inventory/hosts.yml").write_text("---\n" + long_comment + "- atlanta\n")
    edit(root, "inventory/hosts.ini", "inventory/hosts.yml")
    code, found = validate(cli, root)
    assert code == 1 and ("inventory/hosts.yml", None, None, "rollout/inventory-invalid") in found


METRICS = """\
  health:
    bake_seconds: 20
    metrics:
      instance: "{hostname}:9100"
      checks:
        - name: errors
          query: sum(rate(x{instance=~"{instance}"}[1m]))
          max: 1
        - name: latency
          query: histogram_quantile(0.9, sum by (le) (rate(y{job="a"}[1m])))
          compare: baseline
          max_ratio: 1.2
        - name: fine
          query: sum(rate(x{status=~"5..",instance=~"{instances}"}[1m]))
          max: 0.1
"""


def test_metric_gate_mistakes_are_findings_at_their_check(cli: Cli, tmp_path: Path) -> None:
    config = CONFIG.replace("  health:\n    testinfra: tests/health/\n", METRICS)
    root = write_tree(tmp_path / "repo", {**files(config)})
    (root / "deploy.sh").chmod(0o755)
    init_repo(root)
    code, where = validate(cli, root)
    done = cli("-C", root, "validate", "--no-cache")
    assert code == 1
    assert ("cd-checks.yml", 14, 7, "rollout/metrics") in where  # the instance template
    assert ("cd-checks.yml", 16, 11, "rollout/metrics") in where  # {instance}
    assert ("cd-checks.yml", 19, 11, "rollout/metrics") in where  # compare w/o {instances}
    assert not [w for w in where if w[1] >= 23]  # a good check: nothing
    assert "unknown placeholder {instance} (did you mean {instances}?)" in done.out
    assert "unknown placeholder {hostname}" in done.out
    assert "min_samples 5 but a bake of 20 s at an interval of 10 s gives 3 sample(s)" in done.out
