"""`cd-checks validate` end to end: real files, real yamllint, real Rego engine, real exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, Run, git, init_repo, run_process, write_tree

Cli = Callable[..., Run]

POLICY = """package main

deny contains msg if {
\tinput.kind == "Service"
\tinput.replicas < 2
\tmsg := sprintf("service %s needs at least 2 replicas", [input.name])
}

deny contains {"msg": "port 23 is telnet", "path": ["spec", "port"]} if {
\tinput.spec.port == 23
}

warn contains "no owner label" if {
\tinput.kind == "Service"
\tnot input.owner
}
"""


def findings(run: Run) -> list[dict[str, object]]:
    return list(json.loads(run.out)["findings"])


def where(run: Run) -> list[tuple[object, ...]]:
    return [(f["path"], f["line"], f["column"], f["check"], f["rule"]) for f in findings(run)]


@pytest.fixture
def example(tmp_path: Path) -> Path:
    copy = tmp_path / "examples"
    shutil.copytree(EXAMPLES, copy, ignore=shutil.ignore_patterns(".cd-checks"))
    return copy


def bad_change(example: Path) -> Path:
    """Lay the documented bad change (examples/bad-change/) over the example repository."""
    overlay = example / "bad-change"
    for source in overlay.rglob("*"):
        if source.is_file() and source.name != "README.md":
            target = example / source.relative_to(overlay)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    return example


# -- the embedded example --------------------------------------------------------------


def test_example_repository_is_green(cli: Cli, example: Path) -> None:
    run = cli("-C", example, "validate", "--format", "json")
    assert run.code == 0, run.out + run.err
    summary = json.loads(run.out)["summary"]
    assert summary["errors"] == 0 and summary["files"] >= 12


def test_bad_change_shows_every_check_family_and_fails(cli: Cli, example: Path) -> None:
    run = cli("-C", bad_change(example), "validate", "--format", "json")
    assert run.code == 1, run.err
    errors = [f for f in findings(run) if f["severity"] == "error"]
    assert {f["check"] for f in errors} == {"syntax", "schema", "policy"}
    # every builtin policy set, and the repository's own policies, found something
    prefixes = {str(f["rule"]).split("-")[0] for f in errors if f["check"] == "policy"}
    assert prefixes == {"NGINX", "MON", "PATCH", "AGENT", "ANS", "PIPE", "SVC"}
    (duplicate,) = [f for f in errors if f["rule"] == "MON-007"]  # cross-file, always on
    assert "edge.rules.yml" in str(duplicate["message"]) + str(duplicate["path"])
    assert ("nginx/sites/shop.conf", 18, "syntax") in {
        (f["path"], f["line"], f["check"]) for f in errors
    }


def test_example_runs_as_a_real_subprocess(example: Path) -> None:
    run = run_process("validate", cwd=example)
    assert run.code == 0, run.out + run.err
    assert "no problems" in run.out
    bad = run_process("-C", bad_change(example), "validate", "--no-cache")
    assert bad.code == 1
    assert "errors" in bad.out.splitlines()[-1]


# -- exit codes and fail-on ------------------------------------------------------------


def test_exit_codes_follow_fail_on(cli: Cli, repo: Callable[..., Path]) -> None:
    root = repo({"a.yml": "---\nkey: value   \n"})  # trailing spaces: a yamllint error
    assert cli("-C", root, "validate").code == 1
    assert cli("-C", root, "validate", "--fail-on", "never").code == 0
    warn_only = repo({"a.yml": "key: value\n"})  # missing document start: a warning
    assert cli("-C", warn_only, "validate").code == 0
    assert cli("-C", warn_only, "validate", "--fail-on", "warning").code == 1


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("files: {inclde: ['*']}\n", "cd-checks.yml: unknown key 'inclde' in files"),
        (
            "policy: {paths: policy}\n",
            "cd-checks.yml: policy.paths: 'policy' is not of type 'array'",
        ),
        (
            "schema: [{files: '*.yml'}]\n",
            "cd-checks.yml: schema.0: 'schema' is a required property",
        ),
        ("syntax: {yamllint: missing.yml}\n", "syntax.yamllint: file not found: missing.yml"),
        ("policy: {builtin: [nginx, kubernetes]}\n", "unknown set 'kubernetes'"),
        ("files: [\n", "invalid YAML"),
    ],
)
def test_config_errors_are_one_line_and_exit_2(
    cli: Cli, repo: Callable[..., Path], config: str, message: str
) -> None:
    root = repo({"cd-checks.yml": config, "a.yml": "a: 1\n"})
    run = cli("-C", root, "validate")
    assert run.code == 2
    assert run.err.startswith("cd-checks: error: ") and message in run.err
    assert len(run.err.strip().splitlines()) == 1 and "Traceback" not in run.err


def test_usage_error_exits_2(cli: Cli) -> None:
    assert cli("validate", "--format", "xml").code == 2
    assert cli("validate", "--config", "/nonexistent/cd-checks.yml").code == 2


# -- bad input: a finding or one error line, and the other files still run --------------


def test_bad_inputs_become_findings_and_the_run_goes_on(
    cli: Cli, repo: Callable[..., Path], tmp_path: Path
) -> None:
    bomb = ["---", 'a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    bomb += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    root = repo(
        {
            "cd-checks.yml": "schema:\n  - {files: 'svc/*.yml', schema: missing.json}\n"
            "  - {files: 'app/*.yml', schema: broken.json}\n",
            "broken.json": '{"type": 12}',
            "svc/a.yml": "---\nname: a\n",
            "app/b.yml": "---\nname: b\n",
            "utf8.yml": b"---\nname: caf\xe9\n",
            "image.yml": b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0",
            "empty.yml": "",
            "empty.json": "",
            "bomb.yml": "\n".join(bomb) + "\n",
            "good.yml": "---\nfine: true\n",
        }
    )
    outside = tmp_path / "outside.yml"
    outside.write_text("secret: 1\n")
    os.symlink(outside, root / "link.yml")
    run = cli("-C", root, "validate", "--format", "json")
    assert run.code == 1, run.err
    got = {(f["path"], f["rule"]) for f in findings(run)}
    assert {
        ("utf8.yml", "encoding"),
        ("image.yml", "binary"),
        ("empty.json", "syntax"),
        ("bomb.yml", "alias-bomb"),
        ("link.yml", "symlink-outside"),
        ("cd-checks.yml", "schema-missing"),
        ("broken.json", "invalid-schema"),
    } <= got
    assert not any(p in ("good.yml", "empty.yml") for p, _ in got)


def test_twenty_megabyte_yaml_is_parsed_not_linted(cli: Cli, repo: Callable[..., Path]) -> None:
    line = "- {name: host-%06d, address: 10.0.0.1, tags: [web, prod, eu-west]}\n"
    big = "---\n" + "".join(line % i for i in range(320_000))
    root = repo({"big.yml": big, "policy/p.rego": POLICY})
    assert len(big) > 20 * 2**20
    run = cli("-C", root, "validate", "--format", "json")
    assert run.code == 0, run.err
    assert [(f["rule"], f["severity"]) for f in findings(run)] == [("too-large", "warning")]


def test_rego_that_does_not_compile_is_one_error_line(cli: Cli, repo: Callable[..., Path]) -> None:
    root = repo(
        {
            "policy/bad.rego": "package main\n\ndeny contains msg if {\n  msg := \n}\n",
            "a.yml": "a: 1\n",
        }
    )
    run = cli("-C", root, "validate")
    assert run.code == 2
    assert run.err.startswith("cd-checks: error: ") and "bad.rego:" in run.err
    assert len(run.err.strip().splitlines()) == 1


def test_policy_directory_without_policies_is_an_error(cli: Cli, repo: Callable[..., Path]) -> None:
    root = repo(
        {
            "cd-checks.yml": "policy: {paths: [rules/]}\n",
            "rules/README.md": "none yet\n",
            "a.yml": "a: 1\n",
        }
    )
    run = cli("-C", root, "validate")
    assert run.code == 2 and "no policies found" in run.err


# -- policies --------------------------------------------------------------------------


def test_policy_findings_with_severity_and_location(cli: Cli, repo: Callable[..., Path]) -> None:
    root = repo(
        {
            "policy/main.rego": POLICY,
            "svc.yml": "---\nkind: Service\nname: shop\nreplicas: 1\nspec:\n  port: 23\n",
        }
    )
    run = cli("-C", root, "validate", "--format", "json")
    assert run.code == 1
    got = {(f["line"], f["column"], f["severity"], f["message"]) for f in findings(run)}
    assert got == {
        (None, None, "error", "service shop needs at least 2 replicas"),
        (6, 9, "error", "port 23 is telnet"),
        (None, None, "warning", "no owner label"),
    }


def test_one_input_per_yaml_document(cli: Cli, repo: Callable[..., Path]) -> None:
    one = "---\nkind: Service\nname: {}\nreplicas: 1\nowner: x\n"
    two = one.format("a") + one.format("b")
    root = repo({"policy/main.rego": POLICY, "svc.yml": two})
    messages = sorted(
        f["message"] for f in findings(cli("-C", root, "validate", "--format", "json"))
    )
    assert messages == [
        "service a needs at least 2 replicas",
        "service b needs at least 2 replicas",
    ]


def test_combine_gives_all_files_as_one_input(cli: Cli, repo: Callable[..., Path]) -> None:
    combined = """package main

deny contains {"msg": msg, "path": [i, "contents", "name"]} if {
\tsome i, j
\tinput[i].contents.name == input[j].contents.name
\ti != j
\tmsg := sprintf("duplicate name %s", [input[i].contents.name])
}
"""
    root = repo(
        {
            "policy/main.rego": combined,
            "a.yml": "---\nname: web\n",
            "b.yml": "---\nname: web\n",
            "c.yml": "---\nname: db\n",
        }
    )
    assert cli("-C", root, "validate").code == 0  # per-file input: never a duplicate
    run = cli("-C", root, "validate", "--combine", "--format", "json")
    assert run.code == 1
    assert sorted(where(run)) == [
        ("a.yml", 2, 7, "policy", "main.deny"),
        ("b.yml", 2, 7, "policy", "main.deny"),
    ]


def test_v0_policy_needs_rego_version_flag(cli: Cli, repo: Callable[..., Path]) -> None:
    v0 = 'package main\n\ndeny[msg] {\n  input.kind == "Service"\n  msg := "v0 rule fired"\n}\n'
    root = repo({"policy/old.rego": v0, "svc.yml": "---\nkind: Service\n"})
    run = cli("-C", root, "validate")
    assert run.code == 2 and "--rego-version v0" in run.err
    run = cli("-C", root, "validate", "--rego-version", "v0", "--format", "json")
    assert run.code == 1 and [f["message"] for f in findings(run)] == ["v0 rule fired"]


def test_namespaces(cli: Cli, repo: Callable[..., Path]) -> None:
    other = 'package extra\n\ndeny contains "extra fired" if input.kind == "Service"\n'
    root = repo(
        {
            "policy/extra.rego": other,
            "policy/main.rego": POLICY,
            "svc.yml": "---\nkind: Service\nname: s\nreplicas: 3\nowner: o\n",
        }
    )
    assert cli("-C", root, "validate").code == 0
    assert cli("-C", root, "validate", "--namespace", "extra").code == 1
    assert cli("-C", root, "validate", "--all-namespaces").code == 1


def test_nginx_config_reaches_policies_in_conftest_shape(
    cli: Cli, repo: Callable[..., Path]
) -> None:
    policy = """package main

deny contains {"msg": "server_tokens must be off", "path": path} if {
\tsome i
\tinput.directives[i].name == "server"
\tsome j
\td := input.directives[i].block.directives[j]
\td.name == "server_tokens"
\td.parameters[0] == "on"
\tpath := ["directives", i, "block", "directives", j]
}
"""
    root = repo(
        {
            "policy/main.rego": policy,
            "nginx/sites/a.conf": "server {\n    listen 80;\n    server_tokens on;\n}\n",
        }
    )
    run = cli("-C", root, "validate", "--format", "json")
    assert run.code == 1
    assert where(run) == [("nginx/sites/a.conf", 3, None, "policy", "main.deny")]


# -- PR mode, cache, formats, help -----------------------------------------------------


def test_changed_since_checks_only_the_change(cli: Cli, tmp_path: Path) -> None:
    root = write_tree(tmp_path / "r", {"old.yml": "---\nbad: x   \n", "ok.yml": "---\na: 1\n"})
    init_repo(root)
    git(root, "checkout", "-q", "-b", "pr")
    write_tree(root, {"new.yml": "---\nalso: bad  \n"})
    git(root, "mv", "ok.yml", "moved.yml")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "change")
    run = cli("-C", root, "validate", "--changed-since", "main", "--format", "json")
    assert json.loads(run.out)["summary"]["files"] == 2  # new.yml and moved.yml
    assert [f["path"] for f in findings(run)] == ["new.yml"]


def test_cache_answers_unchanged_files_and_notices_policy_changes(
    cli: Cli, repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cd_checks.findings import Finding
    from cd_checks.result_cache import Cache

    key = "a CI secret of the project, 32 chars"
    monkeypatch.setenv("CD_CHECKS_CACHE_KEY", key)
    root = repo(
        {
            "policy/main.rego": POLICY,
            "svc.yml": "---\nkind: Service\nname: s\nreplicas: 1\nowner: o\n",
        }
    )
    first = cli("-C", root, "validate", "--format", "json")
    entries = list((root / ".cd-checks" / "cache").rglob("*.json"))
    assert len(entries) == 1
    # The second run is answered from the entry: a planted finding shows up.
    planted = {
        "path": "svc.yml",
        "line": 1,
        "column": 1,
        "check": "policy",
        "rule": "planted",
        "severity": "warning",
        "message": "from the cache",
    }
    # (signed with the key, as cd-checks signs its entries: test_cache_integrity.py)
    Cache(entries[0].parent.parent, "", key.encode()).put(
        entries[0].stem, [Finding.from_dict(planted)]
    )
    assert findings(cli("-C", root, "validate", "--format", "json")) == [planted]
    # --no-cache ignores it
    assert cli("-C", root, "validate", "--no-cache", "--format", "json").out == first.out
    # A restored cache in another checkout directory still answers.
    moved = root.parent / "moved"
    shutil.copytree(root, moved)
    assert findings(cli("-C", moved, "validate", "--format", "json")) == [planted]
    # A corrupt cache entry is a miss (with a warning), not an error.
    entries[0].write_text("{not json")
    corrupt = cli("-C", root, "validate", "--format", "json")
    assert corrupt.out == first.out and "1 result cache entry failed verification" in corrupt.err
    # Changing a policy changes the verdict, though the file did not change.
    (root / "policy" / "main.rego").write_text(POLICY.replace("< 2", "< 1"))
    assert cli("-C", root, "validate", "--format", "json").code == 0


def test_parallel_run_equals_serial_run(cli: Cli, repo: Callable[..., Path]) -> None:
    files = {
        f"svc/s{i}.yml": f"---\nkind: Service\nname: s{i}\nreplicas: {i % 3}\n" for i in range(120)
    }
    root = repo({"policy/main.rego": POLICY, **files})
    serial = cli("-C", root, "validate", "--no-cache", "--jobs", "1", "--format", "json")
    parallel = cli("-C", root, "validate", "--no-cache", "--jobs", "2", "--format", "json")
    assert serial.code == parallel.code == 1
    assert serial.out == parallel.out
    assert json.loads(serial.out)["summary"] == {"files": 120, "errors": 80, "warnings": 120}


def test_workers_get_the_largest_files_first_and_small_ones_in_small_chunks() -> None:
    from cd_checks.validate import CHUNK_BYTES, CHUNK_FILES, _chunks

    # A kube-prometheus checkout: big CRDs that sort together, many small manifests.
    sizes = {f"setup/0crd{i}.yaml": 2**20 + i for i in range(10)}
    sizes |= {f"small/m{i:03}.yaml": 2000 for i in range(400)}
    tasks = [(path, True) for path in sorted(sizes)]
    chunks = _chunks(tasks, sizes)
    assert chunks[:10] == [[(f"setup/0crd{i}.yaml", True)] for i in reversed(range(10))]
    assert sorted(task for chunk in chunks for task in chunk) == sorted(tasks)
    for chunk in chunks[10:]:
        assert len(chunk) <= CHUNK_FILES and sum(sizes[p] for p, _ in chunk) <= CHUNK_BYTES


def test_a_cross_file_finding_is_placed_alike_in_every_mode(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MON-007 (one alert name in two files) on the same file:line whether the documents
    came from this process, a worker process, the result cache or a PR-mode read."""
    monkeypatch.setenv("CD_CHECKS_CACHE_KEY", "k" * 32)
    rules = (
        "---\ngroups:\n  - name: {name}\n    rules:\n{padding}      - alert: NodeDown\n"
        "        expr: up == 0\n        for: 5m\n        labels: {{severity: critical}}\n"
        "        annotations: {{summary: down, runbook_url: 'https://runbooks.example/x'}}\n"
    )
    record = "      - record: job:up:sum{n}\n        expr: sum by (job) (up)\n"
    padding = "".join(record.format(n=n) for n in range(3))
    files = {f"manifests/m{i:02}.yml": f"---\nkind: ConfigMap\nname: m{i}\n" for i in range(60)}
    root = write_tree(
        tmp_path / "r",
        {
            **files,
            "cd-checks.yml": "---\npolicy: {builtin: [monitoring]}\n",
            "prometheus/a.rules.yml": rules.format(name="a", padding=""),
            "prometheus/b.rules.yml": rules.format(name="b", padding=padding),
        },
    )
    init_repo(root)
    expected = [("prometheus/b.rules.yml", 11, 16, "MON-007")]

    def placed(*args: str) -> list[tuple[object, ...]]:
        run = cli("-C", root, "validate", "--format", "json", *args)
        assert run.code == 1, run.out + run.err
        return [(f["path"], f["line"], f["column"], f["rule"]) for f in findings(run)]

    assert placed("--no-cache", "--jobs", "1") == expected  # in this process
    assert placed("--no-cache", "--jobs", "2") == expected  # from worker processes
    assert placed() == expected  # filling the cache
    assert placed() == expected  # from the cache
    write_tree(root, {"manifests/m00.yml": "---\nkind: ConfigMap\nname: changed\n"})
    git(root, "commit", "-qam", "one file")
    assert placed("--changed-since", "HEAD~1") == expected  # PR mode, the rules unchanged
    assert placed("--changed-since", "HEAD~1", "--no-cache") == expected


def test_output_file_and_github_step_summary(
    cli: Cli, repo: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = repo({"a.yml": "---\nkey: value   \n"})
    out = tmp_path / "report.sarif"
    run = cli("-C", root, "validate", "--format", "sarif", "--output", out)
    assert run.code == 1 and run.out == ""
    assert json.loads(out.read_text())["version"] == "2.1.0"
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    run = cli("-C", root, "validate", "--format", "github")
    assert run.out.startswith("::error file=a.yml,line=2,col=11")
    assert "a.yml" in summary.read_text()


def test_no_config_uses_defaults_and_policy_directory(cli: Cli, repo: Callable[..., Path]) -> None:
    root = repo(
        {"policy/main.rego": POLICY, "svc.yml": "---\nkind: Service\nname: s\nreplicas: 1\n"}
    )
    run = cli("-C", root, "validate", "--format", "json")
    assert {f["check"] for f in findings(run)} == {"policy"}


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys\nfrom cd_checks.cli import main\nmain(['--help'])\n"
        "heavy = {'yaml', 'regorus', 'jsonschema', 'yamllint', 'crossplane', 'pathspec'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert "validate" in done.stdout


def test_expiring_exceptions_through_validate(cli: Cli, repo: Callable[..., Path]) -> None:
    nginx = "server {\n    listen 8080;\n    server_tokens on;\n    client_max_body_size 1m;\n}\n"
    root = repo(
        {
            "cd-checks.yml": "---\npolicy: {builtin: [nginx]}\n",
            "nginx/sites/legacy.conf": nginx,
            "nginx/sites/other.conf": nginx,
            ".cd-checks-exceptions.yml": (
                "---\nexceptions:\n"
                "  - rule: NGINX-001\n    paths: [nginx/sites/legacy.conf]\n"
                "    reason: vendor appliance checks the header, OPS-1\n    expires: 2099-01-01\n"
                "  - rule: NGINX-003\n    paths: ['nginx/**']\n"
                "    reason: nothing matches this any more\n    expires: 2099-01-01\n"
                "  - rule: NGINX-001\n    paths: [nginx/sites/other.conf]\n"
                "    reason: was temporary\n    expires: 2020-01-01\n"
            ),
        }
    )
    run = cli("-C", root, "validate", "--format", "json")
    assert run.code == 1
    got = sorted((f["path"], f["line"], f["rule"], f["severity"]) for f in findings(run))
    assert got == [
        (".cd-checks-exceptions.yml", 7, "exceptions/unused", "warning"),
        (".cd-checks-exceptions.yml", 11, "exceptions/expired", "error"),
        ("nginx/sites/other.conf", 3, "NGINX-001", "error"),
    ]
    # PR mode sees part of the repository: no "unused" verdict from it.
    run = cli("-C", root, "validate", "--format", "json", "nginx/sites/other.conf")
    assert "exceptions/unused" not in {f["rule"] for f in findings(run)}


def test_unexpected_error_exits_3_without_traceback(
    cli: Cli, repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import cd_checks.validate

    def broken(options: object, **_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(cd_checks.validate, "run", broken)
    run = cli("-C", repo({"a.yml": "a: 1\n"}), "validate")
    assert run.code == 3
    assert "internal error: RuntimeError: boom" in run.err and "Traceback" not in run.err


def test_interrupt_exits_130(
    cli: Cli, repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import cd_checks.validate

    def interrupted(options: object, **_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cd_checks.validate, "run", interrupted)
    assert cli("-C", repo({"a.yml": "a: 1\n"}), "validate").code == 130


def test_started_in_a_subdirectory_uses_the_repository_config(cli: Cli, tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "r",
        {
            "cd-checks.yml": "---\nschema:\n  - {files: 'services/*.yml', schema: svc.json}\n",
            "svc.json": '{"properties": {"port": {"type": "integer"}}}',
            "services/a.yml": "---\nport: web\n",
            "services/b.yml": "---\nport: 80\n",
        },
    )
    init_repo(root)
    for where, args in ((root / "services", ["a.yml"]), (root / "services", []), (root, [])):
        run = cli("-C", where, "validate", "--format", "json", *args)
        assert run.code == 1, (where, args, run.out)
        assert [(f["path"], f["rule"]) for f in findings(run)] == [("services/a.yml", "type")]


def test_pr_mode_sees_what_a_change_does_to_other_files(cli: Cli, tmp_path: Path) -> None:
    rules = (
        "---\ngroups:\n  - name: {group}\n    rules:\n      - alert: NodeDown\n"
        "        expr: up == 0\n        for: 5m\n        labels: {{severity: critical}}\n"
        "        annotations: {{summary: down, runbook_url: 'https://runbooks.example/x'}}\n"
    )
    root = write_tree(
        tmp_path / "r",
        {
            "cd-checks.yml": "---\npolicy: {builtin: [monitoring]}\n"
            "schema:\n  - {files: 'services/*.yml', schema: svc.json}\n",
            "svc.json": '{"type": "object"}',
            "services/a.yml": "---\nname: a\n",
            "prometheus/node.rules.yml": rules.format(group="node"),
        },
    )
    init_repo(root)
    git(root, "checkout", "-q", "-b", "pr")
    # 1. a new file that duplicates an alert name of an unchanged file
    write_tree(root, {"prometheus/extra.rules.yml": rules.format(group="extra")})
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "duplicate alert")
    run = cli("-C", root, "validate", "--changed-since", "main", "--format", "json")
    assert run.code == 1 and "MON-007" in {f["rule"] for f in findings(run)}
    git(root, "rm", "-q", "prometheus/extra.rules.yml")
    # 2. a schema change that the unchanged service file no longer meets
    write_tree(root, {"svc.json": '{"type": "object", "required": ["team"]}'})
    git(root, "commit", "-qam", "require team")
    run = cli("-C", root, "validate", "--changed-since", "main", "--format", "json")
    assert run.code == 1
    assert [(f["path"], f["rule"]) for f in findings(run)] == [("services/a.yml", "required")]


def test_a_top_level_list_is_one_input_per_element_as_in_conftest(
    cli: Cli, repo: Callable[..., Path]
) -> None:
    policy = (
        'package main\n\ndeny contains {"msg": msg, "path": ["hosts"]} if {\n'
        '\tinput.hosts == "all"\n\tmsg := sprintf("play %s targets all hosts", [input.name])\n}\n'
    )
    playbook = "---\n- name: one\n  hosts: web\n- name: two\n  hosts: all\n"
    root = repo({"policy/main.rego": policy, "play.yml": playbook})
    run = cli("-C", root, "validate", "--format", "json")
    assert [(f["line"], f["message"]) for f in findings(run)] == [(5, "play two targets all hosts")]
