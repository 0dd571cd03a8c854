"""Ansible host patterns over an inventory: which hosts a change type's `hosts:` names.

The semantics are ansible-core's (`InventoryManager.get_hosts`: `split_host_pattern`,
`order_patterns`, `_evaluate_patterns`, `_enumerate_matches`): terms are separated by
`,` (or by `:` when the pattern has no comma); plain terms are unions in the order
given, then `&term` intersections, then `!term` exclusions, whatever the order they
were written in; a pattern of only `&`/`!` terms starts from `all`. A term is a host
name, a group name (its hosts, children included), a shell glob (`web*`, fnmatch,
case-sensitive) over group names and, when it has a wildcard or a dot or names no
group, over host names too, or `~regex` (Python `re.match`). A term that matches
nothing selects nothing (Ansible only warns); `unknown_terms` names such terms so
validate can report them, since `all:!dbb` would otherwise deploy to `db`.

Written here rather than calling ansible-core: its `InventoryManager` loads the
inventory itself (plugins, `ansible.cfg`, variables), while cd-checks reads
inventories its own way (`cd_checks.rollout.inventory`, also without ansible-core
installed, for validate) and needs the pattern evaluated over that same `Inventory`.
tests/rollout/test_patterns.py holds the two to the same answer. Not supported: the
`[0]`/`[1:3]` subscripts (they pick hosts by position, which moves as the inventory
grows: a ConfigError) and Ansible's implicit `localhost`. Results are in inventory
order. This module is pure: no files, no tools.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass

from cd_checks.errors import ConfigError
from cd_checks.rollout.inventory import Inventory

# ansible-core's split_host_pattern: without a comma, `:` separates terms except
# inside a bracketed expression.
_COLON_TERMS = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")
# ansible-core's PATTERN_WITH_SUBSCRIPT: `web[0]`, `web[1:3]`, `web[-1]`.
_SUBSCRIPT = re.compile(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]$")
_HOSTS_TOO = (".", "?", "*", "[")


@dataclass(frozen=True)
class Term:
    """One term of a pattern: its operator ("" union, "&" intersection, "!" exclusion)."""

    operator: str
    expression: str

    def __str__(self) -> str:
        return self.operator + self.expression


def split(pattern: str) -> tuple[Term, ...]:
    """The pattern's terms in the order Ansible applies them (unions, `&`, then `!`)."""
    words = pattern.split(",") if "," in pattern else _COLON_TERMS.findall(pattern)
    terms = [_term(w.strip()) for w in words if w.strip()]
    unions = [t for t in terms if t.operator == ""] or [Term("", "all")]
    ordered = (
        *unions,
        *(t for t in terms if t.operator == "&"),
        *(t for t in terms if t.operator == "!"),
    )
    return tuple(ordered)


def _term(word: str) -> Term:
    operator = word[0] if word[0] in "&!" else ""
    expression = word[len(operator) :]
    if not expression:
        raise ConfigError(f"host pattern term {word!r} names nothing")
    if not expression.startswith("~") and _SUBSCRIPT.match(expression):
        raise ConfigError(
            f"host pattern term {word!r}: subscripts ([0], [1:3]) pick hosts by position, "
            "which moves as the inventory grows; name a group or hosts instead"
        )
    return Term(operator, expression)


def select(inventory: Inventory, pattern: str) -> tuple[str, ...]:
    """The names of the hosts `pattern` selects, in inventory order."""
    chosen: dict[str, None] = {}
    for term in split(pattern):
        found = matches(inventory, term)
        if term.operator == "!":
            chosen = {h: None for h in chosen if h not in found}
        elif term.operator == "&":
            chosen = {h: None for h in chosen if h in found}
        else:
            chosen.update(dict.fromkeys(found))
    return tuple(h for h in inventory.hosts if h in chosen)


def unknown_terms(inventory: Inventory, pattern: str) -> tuple[str, ...]:
    """The terms of `pattern` that match no group or host (Ansible ignores them, warning).

    A term naming an empty group is known: Ansible matches the group (to no host) without
    a warning, and `all:!db` over an inventory whose `db` is empty excludes what it says.
    """
    return tuple(
        str(t) for t in split(pattern) if not matches(inventory, t) and not _groups(inventory, t)
    )


def _groups(inventory: Inventory, term: Term) -> list[str]:
    test = _matcher(term.expression)
    return [g for g in inventory.groups if test(g)]


def matches(inventory: Inventory, term: Term) -> tuple[str, ...]:
    """The hosts one term names, its operator aside (`_enumerate_matches`)."""
    expression = term.expression
    # As Ansible: a union term that is a host's name is that host, even beside a group
    # of the same name; `&name` and `!name` are looked up as groups first.
    if term.operator == "" and expression in inventory.hosts:
        return (expression,)
    test = _matcher(expression)
    groups = [g for g in inventory.groups if test(g)]
    found: dict[str, None] = {}
    for group in groups:
        found.update(dict.fromkeys(inventory.groups[group]))
    if not groups or expression.startswith("~") or any(c in expression for c in _HOSTS_TOO):
        found.update(dict.fromkeys(h for h in inventory.hosts if test(h)))
    return tuple(found)


def _matcher(expression: str) -> Callable[[str], bool]:
    source = expression[1:] if expression.startswith("~") else fnmatch.translate(expression)
    try:
        compiled = re.compile(source)
    except re.error as exc:
        raise ConfigError(f"host pattern term {expression!r}: {exc}") from exc
    return lambda name: compiled.match(name) is not None
