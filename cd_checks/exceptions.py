"""Expiring policy exceptions: the `.cd-checks-exceptions.yml` file.

Each entry excepts one rule id on the files its path globs match, for a
stated reason, until a date. `load` turns the file into `PolicyException`s
plus findings for malformed entries (never an exception); `apply` drops the
policy findings an exception covers (or keeps each as a record of level
`exception`, so a report shows and counts what was excepted), reports
expired exceptions as errors (their findings come back) and unused ones as
warnings. Pure apart from reading the one file; it knows nothing about
policies or engines.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pathspec
import yaml

from cd_checks import bounded
from cd_checks.files import bad_glob, matcher
from cd_checks.findings import Finding

ENTRY_KEYS = ("rule", "paths", "reason", "expires")
INVALID = "exceptions/invalid"
EXPIRED = "exceptions/expired"
UNUSED = "exceptions/unused"


@dataclass(frozen=True)
class PolicyException:
    """Rule `rule` is excepted on files matching `paths` until `expires` (inclusive)."""

    rule: str
    paths: tuple[str, ...]
    reason: str
    expires: datetime.date
    line: int

    def covers(self, finding: Finding, spec: pathspec.PathSpec[Any] | None = None) -> bool:
        """True for a policy finding of this rule on a matching path (`spec`: prebuilt globs)."""
        if finding.check != "policy" or finding.rule != self.rule:
            return False
        if finding.severity not in ("error", "warning"):  # a record (exception, trace)
            return False
        return (spec or matcher(self.paths)).match_file(finding.path)

    def expired(self, today: datetime.date) -> bool:
        return today > self.expires


@dataclass(frozen=True)
class _Node:
    """A parsed YAML value and the 1-based line it starts on."""

    value: Any
    line: int


def load(path: Path, *, display: str | None = None) -> tuple[list[PolicyException], list[Finding]]:
    """Read the exceptions file; a missing file is empty, problems are findings on `display`."""
    shown = display if display is not None else path.name
    if not path.is_file():
        return [], []
    try:
        root = _compose(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return [], [_invalid(shown, None, f"cannot read the exceptions file: {exc}")]
    except bounded.ParseProblem as refused:  # an alias bomb, too deep, too large
        return [], [_invalid(shown, refused.line, f"the exceptions file: {refused.message}")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        return [], [_invalid(shown, line, f"invalid YAML in the exceptions file: {problem}")]
    return _entries(root, shown)


def _compose(text: str) -> yaml.Node | None:
    return bounded.compose_yaml(text, bounded.SETTINGS)


def _entries(root: yaml.Node | None, shown: str) -> tuple[list[PolicyException], list[Finding]]:
    if root is None:
        return [], []
    if not isinstance(root, yaml.MappingNode):
        return [], [
            _invalid(shown, _line(root), "the top level must be a mapping with `exceptions:`")
        ]
    problems: list[Finding] = []
    entries: yaml.Node | None = None
    for key, value in root.value:
        if key.value == "exceptions":
            entries = value
        else:
            problems.append(
                _invalid(shown, _line(key), f"unknown key {key.value!r} (expected exceptions)")
            )
    if entries is None or _is_null(entries):
        return [], problems
    if not isinstance(entries, yaml.SequenceNode):
        return [], [*problems, _invalid(shown, _line(entries), "`exceptions` must be a list")]
    loaded: list[PolicyException] = []
    for item in entries.value:
        exception, found = _entry(item, shown)
        problems += found
        if exception is not None:
            loaded.append(exception)
    return loaded, problems


def _entry(node: yaml.Node, shown: str) -> tuple[PolicyException | None, list[Finding]]:
    line = _line(node)
    if not isinstance(node, yaml.MappingNode):
        return None, [
            _invalid(shown, line, "an exception must be a mapping of rule, paths, reason, expires")
        ]
    fields: dict[str, _Node] = {}
    problems: list[Finding] = []
    for key, value in node.value:
        name = str(key.value)
        if name not in ENTRY_KEYS:
            allowed = ", ".join(ENTRY_KEYS)
            problems.append(
                _invalid(shown, _line(key), f"unknown key {name!r} (allowed: {allowed})")
            )
            continue
        fields[name] = _Node(_construct(value), _line(value))
    rule = _text(fields, "rule", line, shown, problems, "the rule id it excepts, e.g. NGINX-005")
    reason = _text(fields, "reason", line, shown, problems, "why, with a ticket")
    paths = _paths(fields, line, shown, problems)
    expires = _expires(fields, line, shown, problems)
    if problems or rule is None or reason is None or paths is None or expires is None:
        return None, problems
    return PolicyException(rule, paths, reason, expires, line), []


def _text(
    fields: dict[str, _Node], key: str, line: int, shown: str, problems: list[Finding], hint: str
) -> str | None:
    node = fields.get(key)
    if node is None:
        problems.append(_invalid(shown, line, f"exception has no {key} ({hint})"))
        return None
    if not isinstance(node.value, str) or not node.value.strip():
        problems.append(_invalid(shown, node.line, f"{key} must be a non-empty string ({hint})"))
        return None
    return node.value.strip()


def _paths(
    fields: dict[str, _Node], line: int, shown: str, problems: list[Finding]
) -> tuple[str, ...] | None:
    node = fields.get("paths")
    if node is None:
        problems.append(
            _invalid(shown, line, "exception has no paths (globs of the excepted files)")
        )
        return None
    value = [node.value] if isinstance(node.value, str) else node.value
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        problems.append(
            _invalid(shown, node.line, "paths must be a glob or a non-empty list of globs")
        )
        return None
    bad = [(glob, reason) for glob in value if (reason := bad_glob(glob)) is not None]
    if bad:
        glob, reason = bad[0]
        problems.append(_invalid(shown, node.line, f"paths: bad glob {glob!r}: {reason}"))
        return None
    return tuple(value)


def _expires(
    fields: dict[str, _Node], line: int, shown: str, problems: list[Finding]
) -> datetime.date | None:
    node = fields.get("expires")
    if node is None:
        problems.append(_invalid(shown, line, "exception has no expires date (YYYY-MM-DD)"))
        return None
    value = node.value
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value.strip())
        except ValueError:
            pass
    problems.append(_invalid(shown, node.line, f"expires {value!r} is not a date (YYYY-MM-DD)"))
    return None


def _construct(node: yaml.Node) -> Any:
    loader = bounded.YamlLoader("")
    try:
        return loader.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError):  # a 5,000-digit number, an application tag
        return node.value if isinstance(node, yaml.ScalarNode) else None
    finally:
        loader.dispose()


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _invalid(shown: str, line: int | None, message: str) -> Finding:
    return Finding(shown, line, None, "policy", INVALID, "error", message)


def apply(
    findings: Sequence[Finding],
    exceptions: Sequence[PolicyException],
    *,
    today: datetime.date,
    exceptions_path: str,
    report_unused: bool = True,
    record: bool = False,
) -> list[Finding]:
    """Drop what live exceptions cover; report expired (error) and unused (warning) exceptions.

    `report_unused` is off when the run saw only part of the repository (PR mode,
    given paths): an exception for a file not checked is not unused. `record`: a
    finding an exception covers comes back as a record of level `exception` (shown
    and counted like conftest's applied exceptions, failing nothing).
    """
    live = [e for e in exceptions if not e.expired(today)]
    specs = [matcher(e.paths) for e in live]
    used: set[int] = set()
    kept: list[Finding] = []
    for finding in findings:
        covering = [
            i for i, e in enumerate(live) if not _own(finding) and e.covers(finding, specs[i])
        ]
        used.update(covering)
        if not covering:
            kept.append(finding)
        elif record:
            kept.append(_excepted(finding, live[covering[0]], exceptions_path))
    kept += [_expired(e, exceptions_path, findings) for e in exceptions if e.expired(today)]
    if report_unused:
        kept += [_unused(e, exceptions_path) for i, e in enumerate(live) if i not in used]
    return kept


def _excepted(finding: Finding, exception: PolicyException, shown: str) -> Finding:
    why = f"excepted until {exception.expires.isoformat()} by {shown}:{exception.line}"
    message = f"{finding.message} ({why}: {exception.reason})"
    return replace(finding, severity="exception", message=message)


def _own(finding: Finding) -> bool:
    return finding.rule.startswith("exceptions/")


def _expired(exception: PolicyException, shown: str, findings: Sequence[Finding]) -> Finding:
    count = sum(1 for f in findings if exception.covers(f))
    if count:
        back = f"its {count} finding(s) are reported again: fix them or renew it with a new date"
    else:
        back = "it no longer matches anything: delete it"
    message = (
        f"the exception for {exception.rule} on {', '.join(exception.paths)} expired on "
        f"{exception.expires.isoformat()} ({exception.reason}); {back}"
    )
    return Finding(shown, exception.line, None, "policy", EXPIRED, "error", message)


def _unused(exception: PolicyException, shown: str) -> Finding:
    message = (
        f"the exception for {exception.rule} on {', '.join(exception.paths)} matches no finding; "
        "the problem is fixed or the glob is wrong: delete or correct it"
    )
    return Finding(shown, exception.line, None, "policy", UNUSED, "warning", message)
