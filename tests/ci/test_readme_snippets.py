"""Every ```yaml block of the README, linted as what it is, as a user would copy it.

Each block is classified by the file name in its first comment line
(`# .github/workflows/NAME.yml`, `# action.yml`, `# .gitlab-ci.yml`,
`# .pre-commit-config.yaml`, `# cd-checks.yml`), else by its keys, and linted:

- GitHub workflow: actionlint (with shellcheck and pyflakes on the scripts),
  `zizmor --offline`, check-jsonschema `vendor.github-workflows`;
- GitHub action: check-jsonschema `vendor.github-actions`, zizmor, and
  actionlint on a workflow holding the action's steps;
- GitLab CI: check-jsonschema `vendor.gitlab-ci` (`--data-transform gitlab-ci`);
- pre-commit config: pre-commit's own `validate-config`;
- cd-checks.yml: cd-checks' config schema (`cd_checks/config.schema.json`);
- `.cd-checks-exceptions.yml`: read by cd-checks' validate below, as it is there;
- every block, whatever its kind: cd-checks' own default `validate` (no config,
  so yamllint's default rules, line-length included) in a scratch repository
  holding the block under its file name, which must exit 0.

A block that is part of a file rather than a whole file is marked by an HTML
comment on the line before its fence, `<!-- snippet: excerpt of PATH -->`, and
must appear verbatim in PATH, which is linted whole here. The shipped actions
(`action.yml`, `rollout/action.yml`) and example workflows
(`examples/ci/github/*.yml`) are linted the same way as whole files.

Then the README's GitHub workflow is adopted in a scratch repository: its job
runs step by step as the runner would (github_runner.py), with the validate
action from this repository.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from cd_checks import __version__
from tests.ci.github_runner import Runner, copy_of_repository, runner_path, runner_python
from tests.conftest import EXAMPLES, REPO, git, init_repo

README = REPO / "README.md"
BIN = Path(sys.executable).parent
LINTERS_PATH = f"{BIN}{os.pathsep}{os.environ['PATH']}"  # shellcheck and pyflakes for actionlint
ACTIONS = [REPO / "action.yml", REPO / "rollout" / "action.yml"]
WORKFLOWS = sorted((REPO / "examples" / "ci" / "github").glob("*.yml"))
WORKFLOWS = [w for w in WORKFLOWS if w.name != "zizmor.yml"]
ZIZMOR_CONFIG = REPO / "examples" / "ci" / "github" / "zizmor.yml"
CONFIG_SCHEMA = REPO / "cd_checks" / "config.schema.json"
FILE_NAMES = {
    "workflow": ".github/workflows/{name}",
    "action": "action.yml",
    "gitlab": ".gitlab-ci.yml",
    "pre-commit": ".pre-commit-config.yaml",
    # Not at the root: there it would be the scratch repository's config.
    "cd-checks": "docs/cd-checks.yml",
    # Where cd-checks reads it by default: its entries are checked by validate.
    "exceptions": ".cd-checks-exceptions.yml",
    "other": "snippet.yml",
}


@dataclass(frozen=True)
class Snippet:
    line: int  # of the opening fence in README.md
    text: str
    marker: str  # the `<!-- snippet: ... -->` text before the fence, or ""
    section: str  # the heading above it

    @property
    def id(self) -> str:
        return f"README.md:{self.line}:{self.kind}"

    @property
    def named(self) -> str | None:
        first = self.text.splitlines()[0] if self.text.strip() else ""
        match = re.match(r"#\s+(\S+\.ya?ml)\b", first)
        return match[1] if match else None

    @property
    def kind(self) -> str:
        if self.marker.startswith("excerpt of "):
            return "excerpt"
        return kind_of(self.named, load(self.text))


class AnyTagLoader(yaml.SafeLoader):
    """Reads GitLab's `!reference` and other application tags as plain values."""


AnyTagLoader.add_multi_constructor(
    "!", lambda loader, suffix, node: loader.construct_sequence(node)
    if isinstance(node, yaml.SequenceNode) else loader.construct_scalar(node)  # type: ignore[arg-type]
)  # fmt: skip


def load(text: str) -> Any:
    return yaml.load(text, Loader=AnyTagLoader)  # noqa: S506 - a SafeLoader subclass


def kind_of(named: str | None, document: Any) -> str:
    if named:
        if named.startswith(".github/workflows/"):
            return "workflow"
        by_name = {
            "action.yml": "action",
            ".gitlab-ci.yml": "gitlab",
            ".pre-commit-config.yaml": "pre-commit",
            "cd-checks.yml": "cd-checks",
        }
        if named in by_name:
            return by_name[named]
    if not isinstance(document, dict):
        return "other"
    if "jobs" in document and (True in document or "on" in document):
        return "workflow"
    if "runs" in document:
        return "action"
    if "repos" in document:
        return "pre-commit"
    if set(document) == {"exceptions"}:
        return "exceptions"
    gitlab_keys = {"include", "stages", "workflow", "spec", "default", "variables"}
    if gitlab_keys & set(document) or any(
        isinstance(v, dict) and "script" in v for v in document.values()
    ):
        return "gitlab"
    config_keys = set(json.loads(CONFIG_SCHEMA.read_text())["properties"])
    if set(document) <= config_keys:
        return "cd-checks"
    return "other"


def readme_snippets() -> list[Snippet]:
    lines = README.read_text().splitlines()
    found = []
    index = 0
    section = ""
    while index < len(lines):
        fence = re.match(r"^(\s*)```yaml\s*$", lines[index])
        other = re.match(r"^(\s*)```\S*\s*$", lines[index])
        if fence is None and other is not None:  # another language: skip it whole
            index += 1
            while not re.match(rf"^{other[1]}```\s*$", lines[index]):
                index += 1
        elif fence is None and re.match(r"^#{1,4} ", lines[index]):
            section = lines[index]
        if fence is None:
            index += 1
            continue
        indent, start = fence[1], index
        body = []
        index += 1
        while not re.match(rf"^{indent}```\s*$", lines[index]):
            body.append(lines[index][len(indent) :])
            index += 1
        before = next((lines[i] for i in range(start - 1, -1, -1) if lines[i].strip()), "")
        marker = re.match(r"^\s*<!--\s*snippet:\s*(.*?)\s*-->\s*$", before)
        text = "\n".join(body) + "\n"
        found.append(Snippet(start + 1, text, marker[1] if marker else "", section))
        index += 1
    return found


SNIPPETS = readme_snippets()


# Blocks of README sections this test's author does not own that fail today,
# told to the lead: each is a strict xfail, so the fix turns it into a failure
# to remove from here. Keyed by the heading of the block's section.
KNOWN_FAILING: dict[str, str] = {}


def snippets(*kinds: str) -> list[Any]:
    params = []
    for snippet in SNIPPETS:
        if snippet.kind not in kinds:
            continue
        known = KNOWN_FAILING.get(snippet.section)
        marks = [pytest.mark.xfail(strict=True, reason=known)] if known else []
        params.append(pytest.param(snippet, id=snippet.id, marks=marks))
    return params


def written(snippet: Snippet, root: Path) -> Path:
    name = FILE_NAMES[snippet.kind].format(name=Path(snippet.named or "snippet.yml").name)
    target = root / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(snippet.text)
    return target


def run(*argv: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env={**os.environ, "PATH": LINTERS_PATH},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


# -- the linters -----------------------------------------------------------------------------


def actionlint(path: Path) -> None:
    done = run(BIN / "actionlint", "-no-color", path)
    assert done.returncode == 0, done.stdout + done.stderr


def zizmor(path: Path, *config: str | Path) -> subprocess.CompletedProcess[str]:
    return run(BIN / "zizmor", "--offline", "--no-progress", *config, path)


def zizmor_clean(path: Path) -> None:
    done = zizmor(path)
    # zizmor skips, with only a warning, a file it cannot read as a workflow/action.
    assert "failed to" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stdout + done.stderr


def check_jsonschema(schema: str, path: Path, *extra: str) -> None:
    done = run(sys.executable, "-m", "check_jsonschema", *schema.split(), *extra, path)
    assert done.returncode == 0, done.stdout + done.stderr


def action_as_workflow(action: Path, target: Path) -> Path:
    """The action's steps as a reusable workflow's job, its inputs as the workflow's."""
    document = load(action.read_text())
    inputs = {name: {"type": "string"} for name in document.get("inputs", {})}
    workflow = {
        "name": "action steps",
        "on": {"workflow_call": {"inputs": inputs}},
        "permissions": {},
        "jobs": {"steps": {"runs-on": "ubuntu-latest", "steps": document["runs"]["steps"]}},
    }
    target.write_text(yaml.safe_dump(workflow, sort_keys=False))
    return target


def default_validate(root: Path) -> None:
    """cd-checks' own checks with no config (yamllint's defaults) on a scratch repository."""
    init_repo(root)
    done = run(sys.executable, "-m", "cd_checks", "-C", root, "validate", "--no-cache")
    assert done.returncode == 0, done.stdout + done.stderr


def lint(kind: str, path: Path, tmp_path: Path) -> None:
    if kind == "workflow":
        actionlint(path)
        zizmor_clean(path)
        check_jsonschema("--builtin-schema vendor.github-workflows", path)
    elif kind == "action":
        check_jsonschema("--builtin-schema vendor.github-actions", path)
        zizmor_clean(path)
        actionlint(action_as_workflow(path, tmp_path / "action-steps.yml"))
    elif kind == "gitlab":
        check_jsonschema("--builtin-schema vendor.gitlab-ci", path, "--data-transform", "gitlab-ci")
    elif kind == "pre-commit":
        done = run(sys.executable, "-m", "pre_commit", "validate-config", path)
        assert done.returncode == 0, done.stdout + done.stderr
    elif kind == "cd-checks":
        check_jsonschema(f"--schemafile {CONFIG_SCHEMA}", path)


def test_the_readme_has_the_snippets_this_test_knows() -> None:
    kinds = [s.kind for s in SNIPPETS]
    for kind in ("workflow", "gitlab", "pre-commit", "cd-checks", "excerpt"):
        assert kind in kinds, kind
    assert "other" not in kinds, [s.id for s in SNIPPETS if s.kind == "other"]


@pytest.mark.parametrize(
    "snippet",
    snippets("workflow", "action", "gitlab", "pre-commit", "cd-checks", "exceptions", "other"),
)
def test_readme_snippet_passes_its_linters(snippet: Snippet, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    path = written(snippet, root)
    lint(snippet.kind, path, tmp_path)
    default_validate(root)


@pytest.mark.parametrize("snippet", snippets("excerpt"))
def test_readme_excerpt_is_verbatim_from_a_linted_file(snippet: Snippet) -> None:
    source = REPO / snippet.marker.removeprefix("excerpt of ")
    assert source in [*ACTIONS, *WORKFLOWS], f"{source} is not linted by this test"
    assert snippet.text in source.read_text(), f"{snippet.id} is not a part of {source}"


@pytest.mark.parametrize(
    "path", [*ACTIONS, *WORKFLOWS], ids=lambda p: p.relative_to(REPO).as_posix()
)
def test_shipped_actions_and_example_workflows_pass_the_linters(path: Path, tmp_path: Path) -> None:
    kind = "action" if path.name == "action.yml" else "workflow"
    lint(kind, path, tmp_path)
    root = tmp_path / "repo"
    target = root / (".github/workflows/" + path.name if kind == "workflow" else "action.yml")
    target.parent.mkdir(parents=True)
    shutil.copy(path, target)
    default_validate(root)


# -- pinning: one release, one SHA a third-party action, both forms documented ---------------

USES = re.compile(
    r"uses: (?P<action>[\w.-]+/[\w.-]+(?:/[\w./-]+)?)@(?P<ref>[\w.-]+)(?:\s+# (?P<comment>\S+))?"
)
PINNED_FILES = [README, *ACTIONS, *WORKFLOWS]


def pins() -> list[tuple[Path, str, str, str | None]]:
    found = []
    for path in PINNED_FILES:
        for match in USES.finditer(path.read_text()):
            found.append((path, match["action"], match["ref"], match["comment"]))
    return found


def test_every_action_is_pinned_to_a_commit_with_its_version() -> None:
    by_action: dict[str, set[tuple[str, str | None]]] = {}
    for path, action, ref, comment in pins():
        if ref == f"v{__version__}" and action.startswith("cd-checks/cd-checks"):
            continue  # the documented tag form
        assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{path.name}: {action}@{ref}"
        assert comment and re.fullmatch(r"v\d+\.\d+\.\d+", comment), f"{path.name}: {action}"
        owner_repo = "/".join(action.split("/")[:2])
        by_action.setdefault(owner_repo, set()).add((ref, comment))
    # One version of each action everywhere (a sub-action shares its repository's ref).
    for action, versions in by_action.items():
        assert len(versions) == 1, f"{action} pinned differently: {versions}"
    # cd-checks itself: this release, at its tag's commit (zeros until the tag exists).
    ((_, comment),) = by_action["cd-checks/cd-checks"]
    assert comment == f"v{__version__}"


def test_readme_documents_both_pinning_forms_of_this_release() -> None:
    text = README.read_text()
    assert f"uses: cd-checks/cd-checks@v{__version__}" in text
    assert f"uses: cd-checks/cd-checks/rollout@v{__version__}" in text
    assert re.search(rf"uses: cd-checks/cd-checks@[0-9a-f]{{40}}  # v{__version__}", text)
    assert f"rev: v{__version__}" in text
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert re.search(r"^## \[(\d+\.\d+\.\d+)\]", changelog, re.M)[1] == __version__  # type: ignore[index]
    assert "<org>" not in text and "@v1\n" not in text and "v0.1.0" not in text


def test_the_tag_form_passes_zizmor_with_the_example_config(tmp_path: Path) -> None:
    workflow = next(s for s in SNIPPETS if s.kind == "workflow")
    tagged = re.sub(
        r"(cd-checks/cd-checks(?:/rollout)?)@[0-9a-f]{40}  # (v\S+)", r"\1@\2", workflow.text
    )
    assert tagged != workflow.text
    path = tmp_path / ".github" / "workflows" / "cd-checks.yml"
    path.parent.mkdir(parents=True)
    path.write_text(tagged)
    assert "unpinned-uses" in zizmor(path).stdout  # a tag is not a pin, by default
    done = zizmor(path, "--config", ZIZMOR_CONFIG)
    assert done.returncode == 0, done.stdout + done.stderr


def test_readme_command_gives_the_commit_of_an_annotated_release_tag(tmp_path: Path) -> None:
    (command,) = set(
        re.findall(
            r"^git ls-remote https://github\.com/cd-checks/cd-checks '[^']+'$",
            README.read_text(),
            re.M,
        )
    )
    (tmp_path / "remote").mkdir()
    remote = init_repo(tmp_path / "remote")
    git(remote, "tag", "-a", f"v{__version__}", "-m", "release")
    url, pattern = command.split()[2], command.split()[3].strip("'")
    assert url == "https://github.com/cd-checks/cd-checks"
    done = run("git", "ls-remote", remote, pattern)
    (line,) = done.stdout.splitlines()
    assert line.split()[0] == git(remote, "rev-parse", "HEAD").strip()


# -- the check to require --------------------------------------------------------------------


def test_required_check_name_is_the_documented_one() -> None:
    workflow = load(next(s for s in SNIPPETS if s.kind == "workflow").text)
    assert workflow["name"] == "cd-checks"
    assert workflow["jobs"]["validate"]["name"] == "validate"
    example = load((REPO / "examples/ci/github/pr.yml").read_text())
    assert (example["name"], example["jobs"]["validate"]["name"]) == ("cd-checks", "validate")
    section = README.read_text().split("### Require the check to merge", 1)[1].split("\n## ", 1)[0]
    section = " ".join(section.split())
    assert '"cd-checks / validate"' in section and "`validate`" in section
    assert '"Pipelines must succeed"' in section and "Settings → Merge requests" in section


# -- adopting the README's workflow in a scratch repository ----------------------------------


@pytest.fixture(scope="module")
def runner_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return runner_python(tmp_path_factory.mktemp("runner") / "python", sys.executable)


@pytest.fixture(scope="module")
def action_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_of_repository(REPO, tmp_path_factory.mktemp("action"))


def adopt(
    workflow_text: str, tmp_path: Path, runner_bin: Path, action_root: Path
) -> tuple[Path, list[Any]]:
    """The example ops repository with the bad change and the workflow, as a checkout."""
    workspace = tmp_path / "workspace"
    shutil.copytree(EXAMPLES, workspace, ignore=shutil.ignore_patterns(".cd-checks", "ci"))
    shutil.copytree(workspace / "bad-change", workspace, dirs_exist_ok=True)
    (workspace / ".github" / "workflows").mkdir(parents=True)
    (workspace / ".github" / "workflows" / "cd-checks.yml").write_text(workflow_text)
    init_repo(workspace)
    sha = git(workspace, "rev-parse", "HEAD").strip()
    (tmp_path / "temp").mkdir()
    runner = Runner(
        workspace=workspace,
        temp=tmp_path / "temp",
        action_root=action_root,
        path=runner_path(runner_bin, str(BIN)),
        github={
            "sha": sha,
            "workspace": str(workspace),
            "event_name": "pull_request",
            "event": {"pull_request": {"number": 7, "head": {"sha": sha}}},
        },
    )
    job = load(workflow_text)["jobs"]["validate"]
    return workspace, runner.run_job(job)


@pytest.mark.parametrize("source", ["README.md", "examples/ci/github/pr.yml"])
def test_adopting_the_pr_workflow_annotates_fails_and_still_uploads_sarif(
    source: str, tmp_path: Path, runner_bin: Path, action_root: Path
) -> None:
    text = (
        next(s for s in SNIPPETS if s.kind == "workflow").text
        if source == "README.md"
        else (REPO / source).read_text()
    )
    workspace, steps = adopt(text, tmp_path, runner_bin, action_root)
    checkout, validate, upload, *rest = steps
    assert checkout.uses and checkout.uses.startswith("actions/checkout@")
    assert checkout.with_["persist-credentials"] == "false"
    assert validate.outcome == "failure" and validate.outputs["exit-code"] == "1"
    assert any(a.properties["file"] == "nginx/sites/files.conf" for a in validate.annotations)
    # The upload runs although validate failed, and finds the report it is given.
    assert upload.outcome == "success" and upload.uses
    assert upload.uses.startswith("github/codeql-action/upload-sarif@")
    sarif = json.loads((workspace / upload.with_["sarif_file"]).read_text())
    assert len(sarif["runs"][0]["results"]) == int(validate.outputs["errors"]) + int(
        validate.outputs["warnings"]
    )
    for step in rest:  # examples/ci/github/pr.yml: the rollout plan for the reviewers
        assert step.outcome == "success", step.stdout + step.stderr
        assert "## Rollout plan for" in step.summary and "canary" in step.summary
