"""yamllint's problems with a YAML text, as `yamllint.linter.run` gives them, in one scan.

`linter.run` scans the text twice with PyYAML's pure-Python scanner: once for
its rules (`get_cosmetic_problems`) and once more, scanner and parser, only to
find a syntax error (`get_syntax_error`); the second pass costs about as much
as all the rules. Here the rules' pass also hands every token it scanned to
one more token rule, which keeps them (the config it runs with is wrapped, not
changed: nothing global is touched), and PyYAML's own parser then reads that
token list. The scanner produces the same tokens whoever pulls them, so the
parser meets the same tokens, fails at the same one with the same message, or
accepts the text: the same answer as `get_syntax_error`. When the scan stopped
on a scanner error (the token list ends before the end of the stream), or the
rules' pass did not hand the tokens over, `get_syntax_error` itself runs. The
syntax error is then put among the rules' problems exactly where `run` puts it.
tests/checks/test_yamllint_run.py holds this to `linter.run` on mutated texts.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.parser import Parser

_DISABLE_FILE = re.compile(r"^#\s*yamllint disable-file\s*$")


def problems(text: str, conf: Any, path: str | None = None) -> list[Any]:
    """The `yamllint.linter.LintProblem`s of `text`, in `linter.run`'s order.

    Raises what `linter.run` raises (a `yaml.reader.ReaderError` for a character
    PyYAML does not read).
    """
    from yamllint import linter
    from yamllint import parser as lines

    parts = ("get_cosmetic_problems", "get_syntax_error", "LintProblem")
    if not all(hasattr(linter, part) for part in parts) or not hasattr(lines, "line_generator"):
        return list(linter.run(text, conf, path))  # a yamllint laid out otherwise: two scans
    if path is not None and conf.is_file_ignored(path):
        return []
    first_line = next(lines.line_generator(text)).content
    if _DISABLE_FILE.match(first_line):
        return []
    recorder = _Tokens()
    found = list(linter.get_cosmetic_problems(text, _Recording(conf, recorder), path))
    error = recorder.syntax_error() if recorder.complete() else linter.get_syntax_error(text)
    return _placed(found, error)


def _placed(found: list[Any], error: Any) -> list[Any]:
    """The syntax error (if any) in place of the first problem at or after its position;
    at the end when there is none: where `linter.run` puts it."""
    if error is None:
        return found
    placed: list[Any] = []
    for problem in found:
        if error is not None and error.line <= problem.line and error.column <= problem.column:
            placed.append(error)
            error = None
        else:
            placed.append(problem)
    return placed if error is None else [*placed, error]


class _Tokens:
    """A yamllint token rule (same shape as its rule modules) that keeps every token, each
    as a small tuple: a file's tokens as objects (marks and all) would double a worker's
    memory on a big file, and the garbage collector would walk them over and over."""

    ID = "cd-checks-tokens"
    TYPE = "token"

    def __init__(self) -> None:
        self.tokens: list[_Kept] = []

    def check(self, conf: Any, token: yaml.Token, *context: Any) -> tuple[()]:
        start = token.start_mark
        # What the parser reads besides the marks: value, plain, style, name (by class).
        attributes = {k: v for k, v in vars(token).items() if k not in _MARKS} or None
        self.tokens.append((type(token), attributes, start.line, start.column))
        return ()

    def complete(self) -> bool:
        """Whether the scan reached the end of the stream (no scanner error)."""
        return bool(self.tokens) and self.tokens[-1][0] is yaml.StreamEndToken

    def syntax_error(self) -> Any:
        """`linter.get_syntax_error`'s answer, from the kept tokens."""
        from yamllint import linter

        replay = _Replay(self.tokens)
        try:
            while replay.check_event():
                replay.get_event()  # type: ignore[no-untyped-call]
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            assert mark is not None  # a parser error is always marked
            problem = linter.LintProblem(
                mark.line + 1, mark.column + 1, f"syntax error: {exc.problem} (syntax)"
            )
            problem.level = "error"
            return problem
        return None


_MARKS = frozenset({"start_mark", "end_mark"})
# A kept token: its class, its other attributes, and where it starts (line, column). Its
# end is not kept: the parser's errors are placed at a token's start (or an earlier one's).
_Kept = tuple[type[yaml.Token], dict[str, Any] | None, int, int]


class _Mark:
    """Where a replayed token is: all a parser error's message here needs of a mark."""

    __slots__ = ("column", "line")

    def __init__(self, line: int, column: int) -> None:
        self.line, self.column = line, column

    def __str__(self) -> str:
        return f"line {self.line + 1}, column {self.column + 1}"


class _Recording:
    """A yamllint config that also runs `_Tokens`; everything else is the wrapped one's."""

    def __init__(self, conf: Any, recorder: _Tokens) -> None:
        self._conf = conf
        self._recorder = recorder
        self.rules = {**conf.rules, recorder.ID: {"level": "error"}}

    def enabled_rules(self, path: str | None) -> list[Any]:
        return [*self._conf.enabled_rules(path), self._recorder]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conf, name)


class _Replay(Parser):
    """PyYAML's parser reading kept tokens instead of pulling them from its scanner
    (`Scanner.check_token`, `peek_token` and `get_token`, over a finished list); each
    token is made again when the parser comes to it."""

    def __init__(self, tokens: list[_Kept]) -> None:
        super().__init__()
        self._tokens = tokens
        self._next = 0
        self._current: yaml.Token | None = None

    def check_token(self, *choices: type) -> bool:
        token = self.peek_token()
        return token is not None and (not choices or isinstance(token, choices))

    def peek_token(self) -> yaml.Token | None:
        if self._current is None and self._next < len(self._tokens):
            kind, attributes, line, column = self._tokens[self._next]
            token = kind.__new__(kind)
            token.__dict__.update(attributes or ())
            token.start_mark = token.end_mark = _Mark(line, column)
            self._current = token
        return self._current

    def get_token(self) -> yaml.Token | None:
        token = self.peek_token()
        if token is not None:
            self._next += 1
            self._current = None
        return token
