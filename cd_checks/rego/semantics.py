"""conftest's meaning of rule names, rule values and `exception` rules, engine-independent.

A rule named `deny`, `violation` or either with `_suffix`es is a failure; `warn`
or `warn_suffix` a warning. A rule value that is a set or an array (`deny contains
msg`, `violation := [{"msg": ...}]`) holds strings or objects with a string `msg`
(other keys become metadata); any other value (`deny if {...}` is `true`) passes,
as conftest's engine counts it. `exception contains rules if {...}`
yields lists of rule names without their `deny_`/`violation_`/`warn_` prefix;
the empty string names the bare `deny`/`violation`/`warn` rules. When an
exception names a rule, conftest drops all that rule's results for the
document and reports one exception per match, whose message is the exception
query, even if the rule produced nothing. This module only interprets values;
it never evaluates Rego.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from cd_checks.errors import PolicyError
from cd_checks.rego.model import Kind, RuleError, RuleResult

FAILURE = re.compile(r"^(deny|violation)(_[a-zA-Z0-9]+)*$")
WARNING = re.compile(r"^warn(_[a-zA-Z0-9]+)*$")
EXCEPTION_RULE = "exception"


def rule_kind(name: str) -> Kind | None:
    """`failure`, `warning`, or None for a rule conftest does not report."""
    if FAILURE.match(name):
        return "failure"
    if WARNING.match(name):
        return "warning"
    return None


def exception_name(rule: str) -> str:
    """The name an `exception` rule uses for `rule` (conftest's removeRulePrefix)."""
    if rule in ("deny", "violation", "warn"):
        return ""
    for prefix in ("violation_", "deny_", "warn_"):
        if rule.startswith(prefix):
            return rule[len(prefix) :]
    return rule


def exception_query(namespace: str, rule: str) -> str:
    """The query conftest runs for a rule's exceptions; also the exception's message."""
    return f"data.{namespace}.exception[_][_] == {json.dumps(exception_name(rule))}"


def exception_matches(exceptions: Any, rule: str) -> int:
    """How many solutions `exception[_][_] == name` has for the value of `exception`."""
    name = exception_name(rule)
    count = 0
    for entry in _members(exceptions):
        count += sum(1 for item in _members(entry) if item == name)
    return count


def _members(value: Any) -> Iterable[Any]:
    if isinstance(value, dict):
        return value.values()
    if isinstance(value, list):
        return value
    return ()


def rule_results(namespace: str, rule: str, value: Any) -> Iterator[RuleResult | RuleError]:
    """Turn the JSON value of a failure/warning rule into results (or errors for bad members).

    conftest reads only a set or an array as messages: a boolean `deny if {...}`,
    an object or a string is a passed rule, with no message to report.
    """
    kind = rule_kind(rule)
    if kind is None or not isinstance(value, list):
        return
    for member in value:
        yield _one_result(namespace, rule, kind, member)


def _one_result(namespace: str, rule: str, kind: Kind, member: Any) -> RuleResult | RuleError:
    if isinstance(member, str):
        return RuleResult(namespace, rule, kind, member, {})
    if isinstance(member, dict) and isinstance(member.get("msg"), str):
        metadata = {k: v for k, v in member.items() if k != "msg"}
        return RuleResult(namespace, rule, kind, member["msg"], metadata)
    return RuleError(
        namespace, rule, f"result must be a string or an object with a string msg: {_short(member)}"
    )


def exception_results(namespace: str, rule: str, count: int) -> tuple[RuleResult, ...]:
    message = exception_query(namespace, rule)
    return tuple(RuleResult(namespace, rule, "exception", message, {}) for _ in range(count))


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def select_namespaces(
    requested: Iterable[str] | None, *, defined: Iterable[str], with_rules: Iterable[str]
) -> tuple[str, ...]:
    """The namespaces to evaluate, in the order asked, each once.

    As conftest: a namespace that no policy defines, or one without deny/violation/warn
    rules, is evaluated as nothing (0 tests, not an error), and a name with `*`, `?` or
    `[` is a glob (Go's `path.Match`, `.` an ordinary character) over the packages.
    """
    checked = sorted(set(with_rules))
    if requested is None:
        return tuple(checked)
    packages = sorted(set(defined) | set(checked))
    chosen: list[str] = []
    for name in requested:
        if _is_glob(name):
            pattern = _glob(name)
            chosen += [ns for ns in packages if pattern.fullmatch(ns)]
        else:
            chosen.append(name)
    wanted = set(checked)
    return tuple(ns for ns in dict.fromkeys(chosen) if ns in wanted)


def _is_glob(name: str) -> bool:
    return any(char in name for char in "*?[")


def _glob(pattern: str) -> re.Pattern[str]:
    """Go's path.Match as a regular expression; PolicyError for a malformed pattern."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif char == "[":
            i = _char_class(pattern, i, out)
            continue
        elif char == "\\":
            raise PolicyError(
                f"namespace pattern {pattern!r}: a trailing backslash escapes nothing"
            )
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out))


def _char_class(pattern: str, start: int, out: list[str]) -> int:
    """Translate `[...]` at `start` (`^` negates, ranges as `a-z`, as in Go); the index after."""
    end = pattern.find("]", start + 1)
    body = pattern[start + 1 : end] if end > 0 else ""
    negate = body.startswith("^")
    body = body.removeprefix("^")
    if not body:
        raise PolicyError(f"namespace pattern {pattern!r}: unterminated or empty [...]")
    escaped = body.replace("\\", "\\\\").replace("[", "\\[")
    out.append(f"[{'^/' if negate else ''}{escaped}]")
    return end + 1


def successes(definitions: int, values: Iterable[Any], excepted: int) -> int:
    """conftest's count of passed rules for one namespace and document.

    `values` are the values of its rules that were evaluated (not excepted, no error):
    a value that is not a non-empty set or array is one success, undefined none; then
    every definition (`deny` written three times counts three) not accounted for by a
    result, a success or one of the `excepted` results is a success too.
    """
    passed, results = 0, excepted
    for value in values:
        if isinstance(value, list) and value:
            results += sum(1 for member in value if isinstance(member, (str, dict)))
        elif value != UNDEFINED:
            passed += 1
    return passed + max(0, definitions - results - passed)


# regorus' JSON for an undefined rule.
UNDEFINED = "<undefined>"
