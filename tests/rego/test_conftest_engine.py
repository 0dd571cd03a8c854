"""The conftest engine, against a fake `conftest` script (conftest is not installable here).

The fake is a small Python program on a temporary PATH entry that records its
argument list and prints conftest-shaped JSON (`--output json`), so these
tests check the command we build and how we read conftest's answer. They do
not prove the real conftest agrees; the embedded-engine tests cover semantics.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from cd_checks.errors import PolicyError
from cd_checks.rego import Outcome, PolicySource, RuleError, RuleResult, open_engine
from cd_checks.rego.conftest import ConftestEvaluator

FAKE_CONFTEST = """#!@PYTHON@
import json, sys
from pathlib import Path

here = Path(__file__).parent
args = sys.argv[1:]
data = {}
if "--data" in args:
    for f in sorted(Path(args[args.index("--data") + 1]).rglob("*.json")):
        data.update(json.loads(f.read_text()))
with open(here / "calls.jsonl", "a") as log:
    log.write(json.dumps({"argv": args, "data": data}) + "\\n")
policies = [args[i + 1] for i, a in enumerate(args) if a == "--policy"]
if any(Path(p, "broken.rego").exists() for p in policies):
    print("Error: running test: load: loading policies: get compiler: 1 error occurred: "
          "policy/broken.rego:3: rego_parse_error: unexpected } token", file=sys.stderr)
    sys.exit(1)
namespaces = [args[i + 1] for i, a in enumerate(args) if a == "--namespace"] or ["main"]
results = []
for name in [a for a in args if a.endswith(".json") and "/data/" not in a]:
    doc = json.loads(Path(name).read_text())
    if doc.get("crash"):
        print("Error: running test: check: query rule: evaluating policy: policy/main.rego:9: "
              "eval_type_error: plus: operand 1 must be number but got string", file=sys.stderr)
        sys.exit(1)
    for ns in namespaces:
        check = {"filename": name, "namespace": ns, "successes": 1}
        if "fail" in doc:
            check["failures"] = [{"msg": doc["fail"], "metadata": {
                "query": "data." + ns + ".deny_port", "path": ["spec", "port"]}}]
        if "warn" in doc:
            query = "data." + ns + ".warn"
            check["warnings"] = [{"msg": doc["warn"], "metadata": {"query": query}}]
        if doc.get("excepted"):
            check["exceptions"] = [{"msg": 'data.' + ns + '.exception[_][_] == "port"'}]
        results.append(check)
print(json.dumps(results, indent="\\t"))
"""

POLICY = """package main

deny_port contains {"msg": "bad port", "path": ["spec", "port"]} if input.port < 1024

warn contains "no owner" if not input.owner

exception contains ["port"] if input.excepted
"""


@pytest.fixture
def fake_conftest(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "conftest"
    script.write_text(FAKE_CONFTEST.replace("@PYTHON@", sys.executable), "utf-8")
    script.chmod(0o755)
    return script


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "policy"
    (directory / "nginx").mkdir(parents=True)
    (directory / "main.rego").write_text(POLICY, "utf-8")
    (directory / "nginx" / "n.rego").write_text(
        'package cd_checks.nginx\n\ndeny_tokens contains "tokens on" if input.tokens\n', "utf-8"
    )
    return directory


def calls(fake: Path) -> list[dict[str, Any]]:
    lines = (fake.parent / "calls.jsonl").read_text("utf-8").splitlines()
    return [json.loads(line) for line in lines]


def open_fake(fake: Path, source: PolicySource) -> ConftestEvaluator:
    evaluator = open_engine(source, engine="auto", which=lambda name: str(fake))
    assert isinstance(evaluator, ConftestEvaluator)
    return evaluator


def test_auto_picks_conftest_when_on_path(fake_conftest: Path, policy_dir: Path) -> None:
    found = shutil.which("conftest", path=str(fake_conftest.parent))
    evaluator = open_engine(
        PolicySource((policy_dir,)),
        which=lambda name: shutil.which(name, path=str(fake_conftest.parent)),
    )
    assert found == str(fake_conftest)
    assert isinstance(evaluator, ConftestEvaluator)
    assert evaluator.namespaces == ("cd_checks.nginx", "main")


def test_command_line_and_results(fake_conftest: Path, policy_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "limits.yaml").write_text("limits:\n  min: 1\n", "utf-8")
    source = PolicySource(
        (policy_dir,), (tmp_path / "data",), extra_data={"cd_checks": {"config": {"x": 1}}}
    )
    evaluator = open_fake(fake_conftest, source)
    outcomes = evaluator.evaluate(
        [{"fail": "bad port"}, {"warn": "no owner"}, {"excepted": True}, {}], namespaces=["main"]
    )
    assert outcomes[0].results == (
        RuleResult("main", "deny_port", "failure", "bad port", {"path": ["spec", "port"]}),
    )
    assert outcomes[1].results == (RuleResult("main", "warn", "warning", "no owner", {}),)
    assert outcomes[2].results == (
        RuleResult("main", "deny_port", "exception", 'data.main.exception[_][_] == "port"', {}),
    )
    assert outcomes[3].results == ()
    check_run, run = calls(fake_conftest)
    argv = run["argv"]
    assert argv[:11] == [
        "test", "--no-color", "--no-fail", "--output", "json", "--parser", "json",
        "--rego-version", "v1", "--policy", str(policy_dir),
    ]  # fmt: skip
    assert argv[11] == "--data"
    assert argv[13:15] == ["--namespace", "main"]
    assert [Path(a).name for a in argv[15:]] == [f"document-{i:06d}.json" for i in range(4)]
    assert run["data"] == {"limits": {"min": 1}, "cd_checks": {"config": {"x": 1}}}
    assert "--all-namespaces" in check_run["argv"]


def test_all_namespaces_when_none_requested(fake_conftest: Path, policy_dir: Path) -> None:
    evaluator = open_fake(fake_conftest, PolicySource((policy_dir,), rego_version="v0"))
    evaluator.evaluate([{}], namespaces=None)
    argv = calls(fake_conftest)[-1]["argv"]
    assert "--all-namespaces" in argv
    assert "--namespace" not in argv
    assert argv[argv.index("--rego-version") + 1] == "v0"


def test_an_evaluation_error_is_isolated_to_its_document(
    fake_conftest: Path, policy_dir: Path
) -> None:
    evaluator = open_fake(fake_conftest, PolicySource((policy_dir,)))
    outcomes = evaluator.evaluate(
        [{"fail": "bad port"}, {"crash": True}, {"warn": "no owner"}], namespaces=["main"]
    )
    assert [r.message for r in outcomes[0].results] == ["bad port"]
    assert outcomes[1].results == ()
    assert outcomes[1].errors == (
        RuleError(
            "main",
            "*",
            "running test: check: query rule: evaluating policy: policy/main.rego:9: "
            "eval_type_error: plus: operand 1 must be number but got string",
        ),
    )
    assert [r.message for r in outcomes[2].results] == ["no owner"]


def test_compile_error_is_a_policy_error_when_opening(
    fake_conftest: Path, policy_dir: Path
) -> None:
    (policy_dir / "broken.rego").write_text("package main\n\ndeny contains msg if {\n", "utf-8")
    with pytest.raises(PolicyError, match=r"conftest cannot load the policies: .*broken.rego:3"):
        open_fake(fake_conftest, PolicySource((policy_dir,)))


def test_unknown_namespace_selects_nothing_like_conftest(
    fake_conftest: Path, policy_dir: Path
) -> None:
    evaluator = open_fake(fake_conftest, PolicySource((policy_dir,)))
    assert evaluator.evaluate([{}], namespaces=["k8s"]) == [Outcome((), ())]
    assert len(calls(fake_conftest)) == 1  # only the load check ran: nothing to evaluate


def test_missing_policy_dir_fails_before_conftest(fake_conftest: Path, tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="policy path not found"):
        open_fake(fake_conftest, PolicySource((tmp_path / "nope",)))
    assert not (fake_conftest.parent / "calls.jsonl").exists()
