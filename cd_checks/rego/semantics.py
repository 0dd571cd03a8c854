"""conftest's meaning of rule names, rule values and `exception` rules, engine-independent.

A rule named `deny`, `violation` or either with `_suffix`es is a failure; `warn`
or `warn_suffix` a warning. A rule value is a set of strings or objects with a
string `msg` (other keys become metadata). `exception contains rules if {...}`
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
    """Turn the JSON value of a failure/warning rule into results (or errors for bad members)."""
    kind = rule_kind(rule)
    if kind is None:
        return
    if not isinstance(value, list):
        yield RuleError(namespace, rule, f"must be a set of messages, got {_short(value)}")
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
    """The namespaces to evaluate. conftest passes silently on an unknown namespace; we refuse."""
    checked = sorted(set(with_rules))
    if requested is None:
        return tuple(checked)
    known = set(defined)
    for namespace in requested:
        if namespace not in known:
            listed = ", ".join(checked) or "none"
            raise PolicyError(
                f"namespace {namespace!r} is not defined by any policy "
                f"(namespaces with rules: {listed})"
            )
        if namespace not in checked:
            raise PolicyError(f"namespace {namespace!r} has no deny, violation or warn rules")
    return tuple(dict.fromkeys(requested))
