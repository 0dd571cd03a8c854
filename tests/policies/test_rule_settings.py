"""Every builtin rule can be tuned where it lives: `policy.rules.<ID>` in cd-checks.yml.

A rule's severity (error, warning, off) and the files it applies to (`files:` in
place of its set's globs, `exclude:`) are the user's; an unknown id is one error
line. A set that is on and reads no file of the repository says so on stderr.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Run, git, init_repo, write_tree

Cli = Callable[..., Run]

# An alert with a `for`, a severity and no summary (MON-004, error) nor runbook
# (MON-005, warning).
RULES = """---
groups:
  - name: {name}
    rules:
      - alert: {alert}
        expr: rate(errors_total[5m]) > 1
        for: 10m
        labels: {{severity: critical}}
        annotations: {{description: "errors"}}
"""


def rules(name: str, alert: str) -> str:
    return RULES.format(name=name, alert=alert)


def monitoring_repo(root: Path, settings: str) -> Path:
    return write_tree(
        root,
        {
            "cd-checks.yml": f"---\npolicy:\n  builtin: [monitoring]\n{settings}",
            "rules/app.yml": rules("app", "HighErrorRate"),
            "legacy/rules/old.yml": rules("old", "OldErrorRate"),
            "custom/odd.yml": rules("odd", "OddErrorRate"),
        },
    )


def policy_findings(cli: Cli, root: Path, *args: str) -> tuple[Run, set[tuple[str, str, str]]]:
    run = cli("-C", root, "validate", "--no-cache", "--format", "json", *args)
    assert run.code in (0, 1), run.err
    found = json.loads(run.out)["findings"]
    return run, {(f["path"], f["rule"], f["severity"]) for f in found if f["check"] == "policy"}


def test_default_severities(cli: Cli, tmp_path: Path) -> None:
    run, found = policy_findings(cli, monitoring_repo(tmp_path / "r", ""))
    assert run.code == 1
    assert found == {
        ("rules/app.yml", "MON-004", "error"),
        ("rules/app.yml", "MON-005", "warning"),
        ("legacy/rules/old.yml", "MON-004", "error"),
        ("legacy/rules/old.yml", "MON-005", "warning"),
    }


def test_severity_off_warning_and_error(cli: Cli, tmp_path: Path) -> None:
    settings = '  rules:\n    MON-004: {severity: warning}\n    MON-005: {severity: "off"}\n'
    run, found = policy_findings(cli, monitoring_repo(tmp_path / "r", settings))
    assert run.code == 0, run.out  # MON-004 no longer fails the run; MON-005 is gone
    assert found == {
        ("rules/app.yml", "MON-004", "warning"),
        ("legacy/rules/old.yml", "MON-004", "warning"),
    }
    settings = "  rules:\n    MON-005: {severity: error}\n"
    run, found = policy_findings(cli, monitoring_repo(tmp_path / "s", settings))
    assert ("rules/app.yml", "MON-005", "error") in found


def test_unquoted_off_is_off(cli: Cli, tmp_path: Path) -> None:
    """YAML 1.1 reads `off` as false: it still turns the rule off."""
    settings = "  rules:\n    MON-004: {severity: off}\n    MON-005: {severity: off}\n"
    run = cli("-C", monitoring_repo(tmp_path / "r", settings), "validate", "--no-cache")
    assert run.code == 0
    assert "MON-00" not in run.out


def test_exclude_and_files_globs(cli: Cli, tmp_path: Path) -> None:
    settings = (
        "  rules:\n"
        '    MON-004: {exclude: ["legacy/**"]}\n'
        # In place of the set's globs: also a file the set does not read by default.
        '    MON-005: {files: ["custom/*.yml", "legacy/**"]}\n'
    )
    _, found = policy_findings(cli, monitoring_repo(tmp_path / "r", settings))
    assert found == {
        ("rules/app.yml", "MON-004", "error"),
        ("legacy/rules/old.yml", "MON-005", "warning"),
        ("custom/odd.yml", "MON-005", "warning"),  # only the rule given the file reads it
    }


def test_cross_file_rule_is_tuned_too(cli: Cli, tmp_path: Path) -> None:
    """MON-007 (one alert name in two files) comes from the combined input."""
    root = monitoring_repo(tmp_path / "r", '  rules:\n    MON-007: {exclude: "legacy/**"}\n')
    (root / "legacy/rules/old.yml").write_text(rules("old", "HighErrorRate"), "utf-8")
    (root / "rules/copy.yml").write_text(rules("copy", "HighErrorRate"), "utf-8")
    _, found = policy_findings(cli, root)
    duplicates = {path for path, rule, _ in found if rule == "MON-007"}
    assert duplicates and all(not p.startswith("legacy/") for p in duplicates)
    (root / "cd-checks.yml").write_text(
        '---\npolicy:\n  builtin: [monitoring]\n  rules:\n    MON-007: {severity: "off"}\n'
    )
    _, found = policy_findings(cli, root)
    assert not {rule for _, rule, _ in found} & {"MON-007"}


def test_unknown_rule_id_is_one_error_line(cli: Cli, tmp_path: Path) -> None:
    root = monitoring_repo(tmp_path / "r", '  rules:\n    MON-05: {severity: "off"}\n')
    run = cli("-C", root, "validate", "--no-cache")
    assert run.code == 2
    assert run.err.count("\n") == 1 and run.err.startswith("cd-checks: error: ")
    assert "unknown rule 'MON-05' in policy.rules; did you mean 'MON-005'?" in run.err
    (root / "cd-checks.yml").write_text("---\npolicy:\n  rules:\n    mon-005: {severity: error}\n")
    run = cli("-C", root, "validate", "--no-cache")
    assert run.code == 2 and "did you mean 'MON-005'?" in run.err


def test_bad_rule_settings_are_one_error_line(cli: Cli, tmp_path: Path) -> None:
    cases = {
        "MON-005: {severty: error}": "unknown key 'severty' in policy.rules.MON-005; did you mean",
        "MON-005: {severity: info}": "policy.rules.MON-005.severity: 'info' is not one of",
        'MON-005: {exclude: ["[z-a]"]}': "policy.rules.MON-005.exclude[0]: bad glob '[z-a]'",
    }
    for number, (setting, message) in enumerate(cases.items()):
        root = monitoring_repo(tmp_path / str(number), f"  rules:\n    {setting}\n")
        run = cli("-C", root, "validate", "--no-cache")
        assert run.code == 2 and message in run.err, run.err
        assert run.err.count("\n") == 1


# -- a set that reads no file ------------------------------------------------------------

NGINX = "events {}\nhttp {\n  server_tokens off;\n}\n"


def test_set_matching_no_file_is_one_warning(cli: Cli, tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "r",
        {
            "cd-checks.yml": "---\npolicy:\n  builtin: [nginx, monitoring]\n",
            "deploy/web.conf": NGINX,  # not where the nginx set looks
            "rules/app.yml": rules("app", "A"),
        },
    )
    run = cli("-C", root, "validate", "--no-cache")
    warnings = [line for line in run.err.splitlines() if line.startswith("cd-checks: warning:")]
    assert len(warnings) == 1, run.err
    assert "policy set 'nginx' is on but matches no file" in warnings[0]
    assert (
        "**/nginx.conf" in warnings[0]
        and "syntax.nginx and policy.builtin_files.nginx" in warnings[0]
    )
    assert run.code == 1  # monitoring's findings; the warning itself fails nothing
    assert "deploy/web.conf" not in run.out
    # Pointed at the file, the set reads it and the warning goes.
    (root / "cd-checks.yml").write_text(
        '---\nsyntax:\n  nginx: ["deploy/*.conf"]\n'
        'policy:\n  builtin: [nginx]\n  builtin_files: {nginx: ["deploy/*.conf"]}\n'
    )
    run = cli("-C", root, "validate", "--no-cache")
    assert "warning" not in run.err and run.code == 0, run.err + run.out


def test_set_matching_no_file_only_warns_on_an_empty_repository_in_pr_mode(
    cli: Cli, tmp_path: Path
) -> None:
    root = init_repo(
        write_tree(
            tmp_path / "r",
            {
                "cd-checks.yml": "---\npolicy:\n  builtin: [nginx, ansible]\n",
                "nginx/nginx.conf": NGINX,
                "deploy.yml": "---\n- hosts: web\n  become: true\n  tasks: []\n",
            },
        )
    )
    (root / "notes.yml").write_text("---\na: 1\n")
    git(root, "add", "notes.yml")
    git(root, "commit", "-q", "-m", "notes")
    # The change touches no NGINX file and no play: the sets are fine, only idle here.
    run = cli("-C", root, "validate", "--no-cache", "--changed-since", "HEAD~1")
    assert run.code == 0 and "warning" not in run.err, run.err
    git(root, "rm", "-q", "nginx/nginx.conf")
    git(root, "commit", "-q", "-m", "no nginx")
    run = cli("-C", root, "validate", "--no-cache", "--changed-since", "HEAD~1")
    assert "policy set 'nginx' is on but matches no file" in run.err
    assert "'ansible'" not in run.err  # deploy.yml holds a play
