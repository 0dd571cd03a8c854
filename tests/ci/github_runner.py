"""A workflow job's steps, and a composite action's, run the way GitHub's runner runs them.

What is real: every `run:` step is a script file run by its shell as the runner
does (`bash --noprofile --norc -eo pipefail FILE`, `python FILE`), with the step's
`env:` and `working-directory:` evaluated, a fresh `GITHUB_OUTPUT` and
`GITHUB_STEP_SUMMARY` file a step, `GITHUB_WORKSPACE`, and for a composite action
`GITHUB_ACTION_PATH` and `github.action_path`. `if:` conditions are evaluated
with the runner's implicit `success()`, step outcomes and outputs feed the
`steps` context, and an action's `outputs:` are evaluated from its steps.
Workflow commands in a step's output (`::error file=...::...`) are parsed into
annotations.

What is not: `uses:` of third-party actions (checkout, setup-python, cache,
upload-sarif) are recorded with their evaluated `with:` and skipped (the
cache's restore is a miss), unless the runner is given an `ActionsCache`: then
actions/cache/restore and /save work as GitHub's cache service documents them
(exact key, else the newest entry a restore-key prefixes; only entries saved by
the run's own ref or the default branch, with the same `path` list, which is part
of an entry's version; a key is never overwritten); `uses:` of
this repository's actions (`cd-checks/cd-checks@REF`, `.../rollout@REF`, `./`)
run from `action_root`.
Expressions cover what the project's workflows use: contexts, literals,
`== != && || !`, and `always() success() failure() cancelled() hashFiles()`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

STATUS_FUNCTIONS = ("always", "success", "failure", "cancelled")
SHELLS = {
    "bash": ["bash", "--noprofile", "--norc", "-eo", "pipefail"],
    "sh": ["sh", "-e"],
    "python": ["python"],
}
OWN_ACTION = re.compile(r"^(?:cd-checks/cd-checks(?P<sub>/[\w./-]+)?@\S+|\./?(?P<local>.*))$")


@dataclass(frozen=True)
class Annotation:
    """A workflow command such as `::error file=a.yml,line=2::message`, unescaped."""

    level: str
    properties: dict[str, str]
    message: str


@dataclass
class StepResult:
    name: str
    outcome: str  # success | failure | skipped
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    uses: str | None = None
    with_: dict[str, str] = field(default_factory=dict)
    children: list[StepResult] = field(default_factory=list)

    @property
    def annotations(self) -> list[Annotation]:
        found = parse_annotations(self.stdout)
        for child in self.children:
            found += child.annotations
        return found

    @property
    def summaries(self) -> str:
        return self.summary + "".join(child.summaries for child in self.children)


@dataclass
class CacheEntry:
    scope: str  # the ref of the run that saved it
    key: str
    files: dict[str, Path]  # each saved path, as given, -> its copy
    paths: tuple[str, ...]  # the `path` input: restores with another list miss it


@dataclass
class ActionsCache:
    """A repository's Actions cache, outliving runs: what actions/cache/restore and
    actions/cache/save see. Entries are kept in the order they were saved."""

    store: Path
    default_branch: str = "main"
    entries: list[CacheEntry] = field(default_factory=list)

    def restore(self, ref: str, with_: Mapping[str, str], workspace: Path) -> dict[str, str]:
        paths = _paths(with_)
        found = self._lookup(ref, paths, with_["key"], with_.get("restore-keys", "").splitlines())
        for path, copy in found.files.items() if found else ():
            target = _cache_path(path, workspace)
            if copy.is_dir():
                shutil.copytree(copy, target, dirs_exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(copy, target)
        return {
            "cache-hit": "true" if found is not None and found.key == with_["key"] else "false",
            "cache-primary-key": with_["key"],
            "cache-matched-key": found.key if found else "",
        }

    def _lookup(
        self, ref: str, paths: tuple[str, ...], key: str, prefixes: list[str]
    ) -> CacheEntry | None:
        """The exact key, else per restore-key the newest entry it prefixes: the run's own
        ref's entries first, then the default branch's; no other ref's."""
        scopes = dict.fromkeys((ref, f"refs/heads/{self.default_branch}"))
        usable = [e for e in reversed(self.entries) if e.paths == paths]
        for scope in scopes:
            for entry in usable:
                if entry.scope == scope and entry.key == key:
                    return entry
        for prefix in filter(None, (p.strip() for p in prefixes)):
            for scope in scopes:
                for entry in usable:
                    if entry.scope == scope and entry.key.startswith(prefix):
                        return entry
        return None

    def save(self, ref: str, with_: Mapping[str, str], workspace: Path) -> str:
        """Save the paths under the key; a warning (not a failure) when the key exists."""
        if any(e.key == with_["key"] and e.scope == ref for e in self.entries):
            return f"Failed to save: cache entry with key {with_['key']} already exists"
        files: dict[str, Path] = {}
        for number, path in enumerate(_paths(with_)):
            source = _cache_path(path, workspace)
            if not source.exists():
                continue
            copy = self.store / f"{len(self.entries)}-{number}"
            if source.is_dir():
                shutil.copytree(source, copy)
            else:
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, copy)
            files[path] = copy
        if not files:
            return "Path Validation Error: no path to save exists"
        self.entries.append(CacheEntry(ref, with_["key"], files, _paths(with_)))
        return f"Cache saved with key: {with_['key']}"


def _paths(with_: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(p.strip() for p in with_["path"].splitlines() if p.strip())


def _cache_path(path: str, workspace: Path) -> Path:
    return Path(path) if os.path.isabs(path) else workspace / path


@dataclass
class Runner:
    """One job's world: the checkout, the runner's temp dir and PATH, the event."""

    workspace: Path
    temp: Path
    action_root: Path
    path: str
    github: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    cache: ActionsCache | None = None
    skip: frozenset[str] = frozenset()  # names of steps a test has no need to run again

    def run_job(self, job: Mapping[str, Any]) -> list[StepResult]:
        """The steps of a workflow job, in order, as the runner would run them."""
        results: list[StepResult] = []
        context: dict[str, Any] = {}
        for number, step in enumerate(job["steps"]):
            result = self._step(step, number, context, {}, None, results)
            results.append(result)
            if "id" in step:
                context[step["id"]] = _step_context(result)
        return results

    def run_action(self, action_dir: Path, with_: Mapping[str, str]) -> StepResult:
        """A composite action's steps with its inputs; its outputs on the result."""
        action = yaml.safe_load((action_dir / "action.yml").read_text("utf-8"))
        scope = {"github": {**self.github, "action_path": str(action_dir)}, "inputs": {}}
        inputs = {}
        for name, spec in action.get("inputs", {}).items():
            default = interpolate(str(spec.get("default", "")), self._contexts(scope, {}))
            inputs[name] = str(with_[name]) if name in with_ else default
        unknown = set(with_) - set(inputs)
        assert not unknown, f"inputs the action does not declare: {sorted(unknown)}"
        scope["inputs"] = inputs
        children: list[StepResult] = []
        steps: dict[str, Any] = {}
        for number, step in enumerate(action["runs"]["steps"]):
            result = self._step(step, number, steps, scope, action_dir, children)
            children.append(result)
            if "id" in step:
                steps[step["id"]] = _step_context(result)
        contexts = self._contexts(scope, steps)
        outputs = {
            name: interpolate(str(spec["value"]), contexts)
            for name, spec in action.get("outputs", {}).items()
        }
        failed_inside = any(child.outcome == "failure" for child in children)
        return StepResult(
            name=action.get("name", str(action_dir)),
            outcome="failure" if failed_inside else "success",
            outputs=outputs,
            children=children,
        )

    # -- one step ------------------------------------------------------------------------

    def _step(
        self,
        step: Mapping[str, Any],
        number: int,
        steps: dict[str, Any],
        scope: dict[str, Any],
        action_dir: Path | None,
        before: list[StepResult],
    ) -> StepResult:
        name = str(step.get("name") or step.get("uses") or step.get("run", "")[:40])
        failed = any(result.outcome == "failure" for result in before)
        contexts = self._contexts(scope, steps)
        if not condition(step.get("if", ""), contexts, failed=failed) or name in self.skip:
            return StepResult(name, "skipped")
        if "uses" in step:
            return self._uses(step, name, contexts)
        return self._run(step, name, number, contexts, action_dir)

    def _uses(self, step: Mapping[str, Any], name: str, contexts: dict[str, Any]) -> StepResult:
        uses = str(step["uses"])
        with_ = {k: interpolate(_text(v), contexts) for k, v in (step.get("with") or {}).items()}
        own = OWN_ACTION.match(uses)
        if own is None and self.cache is not None and uses.startswith("actions/cache/"):
            return self._cache(uses, name, with_)
        if own is None:
            # A third-party action: not run here. A cache restore is a miss.
            return StepResult(name, "success", uses=uses, with_=with_)
        sub = (own["sub"] or own["local"] or "").strip("/")
        result = self.run_action(self.action_root / sub, with_)
        result.uses, result.with_ = uses, with_
        return result

    def _cache(self, uses: str, name: str, with_: dict[str, str]) -> StepResult:
        assert self.cache is not None
        ref = str(self.github.get("ref", ""))
        if uses.startswith("actions/cache/restore@"):
            outputs = self.cache.restore(ref, with_, self.workspace)
            return StepResult(name, "success", outputs=outputs, uses=uses, with_=with_)
        assert uses.startswith("actions/cache/save@"), uses
        said = self.cache.save(ref, with_, self.workspace)
        return StepResult(name, "success", stdout=said, uses=uses, with_=with_)

    def _run(
        self,
        step: Mapping[str, Any],
        name: str,
        number: int,
        contexts: dict[str, Any],
        action_dir: Path | None,
    ) -> StepResult:
        shell = str(step.get("shell", "bash"))
        script = self.temp / f"step-{id(step)}-{number}.{'py' if shell == 'python' else 'sh'}"
        script.write_text(str(step["run"]), "utf-8")
        output, summary = self.temp / f"output-{id(step)}", self.temp / f"summary-{id(step)}"
        output.write_text("")
        summary.write_text("")
        env = {**os.environ, **self.env, "PATH": self.path}
        env |= {
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(summary),
            "RUNNER_TEMP": str(self.temp),
            "RUNNER_OS": "Linux",
            "GITHUB_SHA": str(self.github.get("sha", "")),
            "GITHUB_ACTIONS": "true",
        }
        if action_dir is not None:
            env["GITHUB_ACTION_PATH"] = str(action_dir)
        env |= {k: interpolate(_text(v), contexts) for k, v in (step.get("env") or {}).items()}
        directory = interpolate(str(step.get("working-directory", ".")), contexts)
        done = subprocess.run(
            [*SHELLS[shell], str(script)],
            cwd=self.workspace / directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        return StepResult(
            name,
            "success" if done.returncode == 0 else "failure",
            returncode=done.returncode,
            stdout=done.stdout,
            stderr=done.stderr,
            outputs=parse_outputs(output.read_text("utf-8")),
            summary=summary.read_text("utf-8"),
        )

    def _contexts(self, scope: Mapping[str, Any], steps: Mapping[str, Any]) -> dict[str, Any]:
        github = scope.get("github", self.github)
        return {
            "github": github,
            "inputs": scope.get("inputs", {}),
            "steps": steps,
            "runner": {"os": "Linux", "temp": str(self.temp)},
            "env": self.env,
            "hashFiles": lambda *globs: _hash_files(self.workspace, globs),
        }


def _step_context(result: StepResult) -> dict[str, Any]:
    return {"outputs": result.outputs, "outcome": result.outcome, "conclusion": result.outcome}


def _hash_files(workspace: Path, globs: tuple[Any, ...]) -> str:
    matched = sorted(p for g in globs for p in workspace.glob(str(g)) if p.is_file())
    return "hash-of-" + ",".join(p.name for p in matched) if matched else ""


# -- workflow commands and outputs -----------------------------------------------------------


def parse_annotations(stdout: str) -> list[Annotation]:
    found = []
    for line in stdout.splitlines():
        command = re.match(r"^::(error|warning|notice)(?: ([^:]*))?::(.*)$", line)
        if command is None:
            continue
        properties = {}
        for pair in filter(None, (command[2] or "").split(",")):
            key, _, value = pair.partition("=")
            properties[key] = _unescape(value, prop=True)
        found.append(Annotation(command[1], properties, _unescape(command[3])))
    return found


def _unescape(value: str, *, prop: bool = False) -> str:
    if prop:
        value = value.replace("%3A", ":").replace("%2C", ",")
    return value.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def parse_outputs(text: str) -> dict[str, str]:
    """`name=value` lines and `name<<DELIMITER` blocks, as the runner reads GITHUB_OUTPUT."""
    outputs: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            for inner in lines:
                if inner == delimiter:
                    break
                body.append(inner)
            outputs[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


# -- expressions -----------------------------------------------------------------------------

TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>\d+(?:\.\d+)?)"
    r"|(?P<op>==|!=|&&|\|\||[!(),])|(?P<name>[A-Za-z_][\w.-]*))"
)


def interpolate(text: str, contexts: Mapping[str, Any]) -> str:
    """Replace each `${{ expr }}` in `text` by the expression's value as a string."""
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: _text(evaluate(m[1], contexts)), text)


def condition(text: Any, contexts: Mapping[str, Any], *, failed: bool) -> bool:
    """An `if:`; without a status function the runner adds `success() &&`."""
    expression = str(text).strip() if text not in (None, "") else ""
    if expression.startswith("${{") and expression.endswith("}}"):
        expression = expression[3:-2]
    if not expression:
        return not failed
    status = {
        "always": lambda: True,
        "success": lambda: not failed,
        "failure": lambda: failed,
        "cancelled": lambda: False,
    }
    value = evaluate(expression, {**contexts, **status})
    if not any(re.search(rf"\b{name}\(", expression) for name in STATUS_FUNCTIONS):
        return not failed and _truthy(value)
    return _truthy(value)


def evaluate(expression: str, contexts: Mapping[str, Any]) -> Any:
    tokens = _tokens(expression)
    value, rest = _or(tokens, contexts)
    assert not rest, f"cannot evaluate {expression!r}: {rest}"
    return value


def _tokens(expression: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    expression = expression.strip()
    while position < len(expression):
        match = TOKEN.match(expression, position)
        assert match, f"cannot read {expression[position:]!r}"
        kind = match.lastgroup or ""
        tokens.append((kind, match[kind]))
        position = match.end()
    return tokens


def _or(tokens: list[tuple[str, str]], ctx: Mapping[str, Any]) -> tuple[Any, list[Any]]:
    value, rest = _and(tokens, ctx)
    while rest and rest[0] == ("op", "||"):
        right, rest = _and(rest[1:], ctx)
        value = value if _truthy(value) else right
    return value, rest


def _and(tokens: list[tuple[str, str]], ctx: Mapping[str, Any]) -> tuple[Any, list[Any]]:
    value, rest = _compare(tokens, ctx)
    while rest and rest[0] == ("op", "&&"):
        right, rest = _compare(rest[1:], ctx)
        value = right if _truthy(value) else value
    return value, rest


def _compare(tokens: list[tuple[str, str]], ctx: Mapping[str, Any]) -> tuple[Any, list[Any]]:
    value, rest = _unary(tokens, ctx)
    while rest and rest[0] in (("op", "=="), ("op", "!=")):
        operator = rest[0][1]
        right, rest = _unary(rest[1:], ctx)
        equal = _loose(value) == _loose(right)
        value = equal if operator == "==" else not equal
    return value, rest


def _unary(tokens: list[tuple[str, str]], ctx: Mapping[str, Any]) -> tuple[Any, list[Any]]:
    if tokens and tokens[0] == ("op", "!"):
        value, rest = _unary(tokens[1:], ctx)
        return not _truthy(value), rest
    return _primary(tokens, ctx)


def _primary(tokens: list[tuple[str, str]], ctx: Mapping[str, Any]) -> tuple[Any, list[Any]]:
    kind, text = tokens[0]
    rest = tokens[1:]
    if (kind, text) == ("op", "("):
        value, rest = _or(rest, ctx)
        assert rest[0] == ("op", ")")
        return value, rest[1:]
    if kind == "string":
        return text[1:-1].replace("''", "'"), rest
    if kind == "number":
        return float(text), rest
    if text in ("true", "false", "null"):
        return {"true": True, "false": False, "null": None}[text], rest
    if rest and rest[0] == ("op", "("):
        arguments, rest = [], rest[1:]
        while rest[0] != ("op", ")"):
            argument, rest = _or(rest, ctx)
            arguments.append(argument)
            if rest[0] == ("op", ","):
                rest = rest[1:]
        return ctx[text](*arguments), rest[1:]
    return _lookup(text, ctx), rest


def _lookup(dotted: str, ctx: Mapping[str, Any]) -> Any:
    value: Any = ctx
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _truthy(value: Any) -> bool:
    return value not in (None, False, "", 0)


def _loose(value: Any) -> Any:
    """GitHub compares strings case-insensitively; null equals ''."""
    if value is None:
        return ""
    return value.casefold() if isinstance(value, str) else value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# -- the runner's machine: this repository as the action's checkout, and a Python -----------


def copy_of_repository(source: Path, target: Path) -> Path:
    """The repository's files as a checkout of the action at a ref holds them (no .git, no venv)."""
    listed = subprocess.run(
        ["git", "-C", str(source), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in filter(None, listed.split("\0")):
        origin = source / name
        if origin.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_bytes(origin.read_bytes())
    return target


def runner_python(target: Path, python: str) -> Path:
    """A fresh venv standing in for actions/setup-python's Python: it has the
    dependencies (from this interpreter's site-packages, so nothing is downloaded)
    but not cd-checks, which the action's install step must put there."""
    subprocess.run([python, "-m", "venv", str(target)], check=True)
    here = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    there = subprocess.run(
        [
            str(target / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # A plain path line: the dependencies import, the editable cd_checks does not.
    Path(there, "runner-dependencies.pth").write_text(here + "\n")
    return target / "bin"


def runner_path(python_bin: Path, drop: str) -> str:
    """PATH of the runner: its Python first, without this test run's own venv."""
    rest = [p for p in os.environ["PATH"].split(os.pathsep) if p and Path(p) != Path(drop)]
    return os.pathsep.join([str(python_bin), *rest])
