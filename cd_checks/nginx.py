"""An NGINX configuration as nginx reads it: includes resolved, files read in their context.

nginx reads one file, nginx.conf, and splices every `include` in place: a
glob in sorted order (skipping dotfiles), a relative path against the
directory of nginx.conf (the prefix). A site under conf.d/ or sites-enabled/
is never read alone: it inherits what the enclosing `http` block sets and
what the snippets it includes set. `Layout.view(path)` gives the policies
that view of a file: the tree of the nginx.conf that includes it (or of the
nginx.conf of its directory, as if enabled there; or its own tree), every
directive marked with the file it is written in, and the include problems
nginx -t would meet (a missing file, a loop) at the include line of that file.

crossplane parses each file (`single=True`); its own include following
(`single=False`) is not used because it opens absolute and `../` paths on
the machine running the check and recurses without end on an include loop
when combining. Here nothing is read outside the repository: an absolute
path under a packaged prefix (/etc/nginx/...) is read from the repository's
prefix, any other is the host's file; `..` or a link leaving the repository
is refused with a finding. This module reads files; it evaluates no policy.
"""

from __future__ import annotations

import contextlib
import copy
import glob
import hashlib
import posixpath
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cd_checks.findings import Severity

Node = dict[str, Any]
Chain = tuple[tuple[str, int], ...]  # include sites (file, line), outermost first

# Files nginx packages install beside nginx.conf. An include of one the repository
# does not hold reads the host's copy, and none of them sets what the policies ask for.
SHIPPED = frozenset(
    {
        "mime.types",
        "fastcgi_params",
        "fastcgi.conf",
        "proxy_params",
        "scgi_params",
        "uwsgi_params",
        "koi-utf",
        "koi-win",
        "win-utf",
        "snippets/fastcgi-php.conf",
    }
)
# Where packages put nginx.conf: `include /etc/nginx/conf.d/*.conf` in a repository
# that holds that directory means the repository's conf.d/.
INSTALL_PREFIXES = (
    "/etc/nginx/",
    "/usr/local/nginx/conf/",
    "/usr/local/etc/nginx/",
    "/opt/homebrew/etc/nginx/",
)
# Directories whose files nginx.conf's directory includes (Debian, Alpine, h5bp, the docs).
LAYOUT_DIRS = frozenset(
    {"conf.d", "sites-available", "sites-enabled", "snippets", "http.d", "vhosts.d"}
)
MAIN_CONTEXT = frozenset({"http", "events", "stream", "mail"})
# A hostile tree (a file included a thousand times, each including more) stays bounded.
MAX_INCLUDED = 2000
MAX_DIRECTIVES = 200_000


@dataclass(frozen=True)
class Problem:
    """An include nginx -t fails on (or that is not followed), with the includes leading to it."""

    chain: Chain
    rule: str
    severity: Severity
    message: str


@dataclass(frozen=True)
class Placed:
    """A problem as the checked file reports it: at its own line."""

    line: int
    rule: str
    severity: Severity
    message: str


@dataclass(frozen=True)
class View:
    """A file in each context nginx reads it in, the problems of its includes, the files read."""

    documents: tuple[dict[str, Any], ...]
    problems: tuple[Placed, ...]
    files: tuple[str, ...]


@dataclass
class _Tree:
    """One nginx.conf (or a file alone) with its includes spliced in, while it is built."""

    nodes: list[Node]
    files: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)
    guessed: bool = False  # the prefix is a guess: no nginx.conf holds this file
    budget: list[int] = field(default_factory=lambda: [MAX_INCLUDED, MAX_DIRECTIVES])
    # Files on an include loop: nginx -t fails on them, so they are read once, not again
    # at each place they are included (a conf.d/ whose files all include conf.d/*.conf).
    looping: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Target:
    """What an include names: files in the repository, or why it is not followed."""

    files: tuple[str, ...] = ()
    unresolved: bool = False  # contents unknown to the check (the host's file, refused, missing)
    problem: tuple[str, Severity, str] | None = None


class Layout:
    """The NGINX files of one repository and the nginx.conf files that include them.

    `roots` are the repository's nginx.conf files; `is_nginx(path)` tells which
    files are checked as NGINX on their own (their include problems are theirs
    to report); `alone(path)` which are evaluated by the nginx policy set on
    their own (their directives are theirs to report). Parsed files and trees
    are kept for the life of the object (one run, one process).
    """

    def __init__(
        self,
        root: Path,
        roots: Sequence[str],
        *,
        is_nginx: Callable[[str], bool],
        alone: Callable[[str], bool],
        max_bytes: int,
        documents: bool = True,
    ) -> None:
        self.root = root
        self._real_root = root.resolve()
        self._roots = tuple(roots)
        self._is_nginx, self._alone = is_nginx, alone
        self._max_bytes = max_bytes
        self._documents = documents
        self._parsed: dict[str, list[dict[str, Any]] | str] = {}
        self._trees: dict[tuple[str, str, str | None], _Tree] = {}
        self._views: dict[str, View] = {}

    def view(self, path: str, statements: list[dict[str, Any]] | None = None) -> View:
        """`path` as nginx reads it; `statements`: its crossplane parse, when already done."""
        if path in self._views:
            return self._views[path]
        real = self._inside(path)
        if real is not None and real != path and self._alone(real):
            return View((), (), (path, real))  # a link (sites-enabled/x): its target reports
        if statements is not None:
            self._parsed.setdefault(path, statements)
        trees = self._contexts(path)
        documents = tuple(self._document(t, path) for t in trees)
        placed = dict.fromkeys(p for t in trees for p in self._placed(t, path))
        # What the view holds is what the verdict depends on: another site's server
        # block, left out, changes nothing here.
        read = {path}.union(*(_files_in(d["directives"]) for d in documents))
        shown = documents if self._documents else ()
        self._views[path] = View(shown, tuple(placed), tuple(sorted(read)))
        return self._views[path]

    def inputs(self, path: str) -> bytes:
        """A digest of every other file `path`'s verdict depends on (for the result cache)."""
        digest = hashlib.sha256()
        for other in self.view(path).files:
            if other == path:
                continue
            digest.update(other.encode("utf-8", "surrogateescape") + b"\0")
            with contextlib.suppress(OSError):
                digest.update(hashlib.sha256((self.root / other).read_bytes()).digest())
        return digest.digest()

    def dependents(self, changed: Iterable[str], paths: Iterable[str]) -> list[str]:
        """The NGINX files among `paths` whose view reads one of the `changed` files."""
        touched = set(changed)
        return [p for p in paths if (set(self.view(p).files) - {p}) & touched]

    # --- contexts -------------------------------------------------------------

    def _contexts(self, path: str) -> list[_Tree]:
        """The trees `path` is read in: each nginx.conf including it, else its own."""
        if path in self._roots:
            return [self._tree(path, posixpath.dirname(path))]
        parents = [r for r in self._roots if path in self._tree(r, posixpath.dirname(r)).files]
        if parents:
            return [self._tree(r, posixpath.dirname(r)) for r in parents]
        home = self._home(path)
        if home is not None and self._is_fragment(path):
            return [self._tree(home, posixpath.dirname(home), extra=path)]
        prefix = posixpath.dirname(home) if home else _guessed_prefix(path)
        return [self._tree(path, prefix, guessed=home is None)]

    def _home(self, path: str) -> str | None:
        """The nginx.conf of the nearest directory above `path`, if one is there."""
        directory = posixpath.dirname(path)
        while True:
            candidate = posixpath.join(directory, "nginx.conf") if directory else "nginx.conf"
            if candidate in self._roots and candidate != path:
                return candidate
            if not directory:
                return None
            directory = posixpath.dirname(directory)

    def _is_fragment(self, path: str) -> bool:
        statements = self._parse(path)
        return (
            isinstance(statements, list)
            and not {s.get("directive") for s in statements} & MAIN_CONTEXT
        )

    def _tree(
        self, path: str, prefix: str, *, extra: str | None = None, guessed: bool = False
    ) -> _Tree:
        """The tree of `path` with its includes spliced in; `extra`: a file read as if
        included at the end of its http block (a site not enabled yet)."""
        key = (path, prefix, extra)
        if key not in self._trees:
            tree = _Tree([], guessed=guessed)
            tree.files.add(path)
            tree.nodes = self._expand(path, prefix, tree, stack=(path,), chain=())
            if extra is not None:
                self._splice_extra(tree, path, prefix, extra)
            self._trees[key] = tree
        return self._trees[key]

    def _splice_extra(self, tree: _Tree, home: str, prefix: str, extra: str) -> None:
        http = next((n for n in tree.nodes if n["name"] == "http" and "block" in n), None)
        if http is None:  # no http block to read it in: the file alone
            tree.nodes = []
            tree.files = {extra}
            http_nodes = tree.nodes
            chain: Chain = ()
        else:
            http_nodes = http["block"]["directives"]
            chain = ((home, http["line"]),)
        tree.files.add(extra)
        nodes = self._expand(extra, prefix, tree, stack=(home, extra), chain=chain)
        if chain:
            for node in nodes:
                node["included_from"] = [list(chain[0]), *node.get("included_from", [])]
        http_nodes.extend(nodes)

    # --- expanding includes ---------------------------------------------------

    def _expand(
        self, path: str, prefix: str, tree: _Tree, *, stack: tuple[str, ...], chain: Chain
    ) -> list[Node]:
        statements = self._parse(path)
        if isinstance(statements, str):
            return []  # the caller reported it (or the file's own syntax check does)
        return self._convert(statements, path, prefix, tree, stack=stack, chain=chain)

    def _convert(
        self,
        statements: list[dict[str, Any]],
        path: str,
        prefix: str,
        tree: _Tree,
        *,
        stack: tuple[str, ...],
        chain: Chain,
    ) -> list[Node]:
        nodes: list[Node] = []
        for statement in statements:
            if tree.budget[1] <= 0:
                break
            tree.budget[1] -= 1
            node: Node = {
                "name": statement["directive"],
                "parameters": list(statement["args"]),
                "line": statement["line"],
                "file": path,
            }
            if "block" in statement:
                inner = self._convert(
                    statement["block"], path, prefix, tree, stack=stack, chain=chain
                )
                node["block"] = {"directives": inner}
            nodes.append(node)
            if node["name"] == "include" and len(node["parameters"]) == 1:
                nodes += self._include(node, path, prefix, tree, stack=stack, chain=chain)
        return nodes

    def _include(
        self,
        node: Node,
        path: str,
        prefix: str,
        tree: _Tree,
        *,
        stack: tuple[str, ...],
        chain: Chain,
    ) -> list[Node]:
        here = (*chain, (path, node["line"]))
        target = self._resolve(prefix, node["parameters"][0], guessed=tree.guessed)
        if target.problem is not None:
            tree.problems.append(Problem(here, *target.problem))
        if target.unresolved:
            node["unresolved"] = True
        spliced: list[Node] = []
        node["includes"] = list(target.files)
        for included in target.files:
            if included in stack or included in tree.looping:
                self._loop(node, included, tree, stack=stack, here=here)
                continue
            if tree.budget[0] <= 0:
                message = (
                    f"include {node['parameters'][0]}: more than {MAX_INCLUDED} includes; "
                    "not followed"
                )
                tree.problems.append(Problem(here, "include-limit", "error", message))
                node["unresolved"] = True
                break
            tree.budget[0] -= 1
            tree.files.add(included)
            spliced += self._splice(node, included, prefix, tree, stack=stack, chain=here)
        return spliced

    def _loop(
        self, node: Node, included: str, tree: _Tree, *, stack: tuple[str, ...], here: Chain
    ) -> None:
        """One finding per include directive that closes a loop; the files on it are not
        expanded again."""
        if included in stack:
            cycle = stack[stack.index(included) :]
            tree.looping.update(cycle)
            if not node.get("loop"):
                loop = " -> ".join([*cycle, included])
                message = f"include {node['parameters'][0]}: include loop ({loop}); nginx -t fails"
                tree.problems.append(Problem(here, "include-loop", "error", message))
        node["unresolved"] = node["loop"] = True

    def _splice(
        self,
        node: Node,
        included: str,
        prefix: str,
        tree: _Tree,
        *,
        stack: tuple[str, ...],
        chain: Chain,
    ) -> list[Node]:
        statements = self._parse(included)
        if isinstance(statements, str):
            if not self._is_nginx(included):  # else its own syntax check reports it
                message = f"include {node['parameters'][0]}: {included}: {statements}"
                tree.problems.append(Problem(chain, "include-invalid", "error", message))
            node["unresolved"] = True
            return []
        nodes = self._convert(
            statements, included, prefix, tree, stack=(*stack, included), chain=chain
        )
        for child in nodes:
            child["included_from"] = [list(chain[-1]), *child.get("included_from", [])]
        return nodes

    def _resolve(self, prefix: str, pattern: str, *, guessed: bool) -> _Target:
        """The repository files an include names, relative to `prefix` as nginx reads them."""
        relative = pattern
        if pattern.startswith("/"):
            mapped = next((p for p in INSTALL_PREFIXES if pattern.startswith(p)), None)
            if mapped is None:
                return _Target(unresolved=posixpath.basename(pattern) not in SHIPPED)
            relative = pattern[len(mapped) :]
        joined = posixpath.normpath(posixpath.join(prefix, relative))
        if joined == ".." or joined.startswith("../"):
            return _refused(pattern, "it points outside the repository")
        if glob.has_magic(joined):
            return self._glob(pattern, joined)
        return self._one(pattern, joined, relative, absolute=relative != pattern, guessed=guessed)

    def _one(
        self, pattern: str, joined: str, relative: str, *, absolute: bool, guessed: bool
    ) -> _Target:
        full = self.root / joined
        if full.is_file():
            inside = self._inside(joined)
            return (
                _Target((inside,)) if inside else _refused(pattern, "a link leaves the repository")
            )
        if relative in SHIPPED or (absolute and posixpath.basename(relative) in SHIPPED):
            return _Target()  # the host's packaged copy
        if absolute or not (self.root / posixpath.dirname(joined)).is_dir():
            return _Target(unresolved=True)  # a directory this repository does not hold
        severity: Severity = "warning" if guessed else "error"
        message = f"include {pattern}: no such file in the repository ({joined}); nginx -t fails"
        return _Target(unresolved=True, problem=("include-missing", severity, message))

    def _glob(self, pattern: str, joined: str) -> _Target:
        parts = joined.split("/")
        base = "/".join(parts[: next(i for i, p in enumerate(parts) if glob.has_magic(p))])
        if base and not (self.root / base).is_dir():
            return _Target(unresolved=True)  # a directory this repository does not hold
        found: list[str] = []
        refused: list[str] = []
        for match in sorted(glob.glob(joined, root_dir=self.root)):
            if not (self.root / match).is_file():
                continue
            inside = self._inside(match)
            if inside is None:
                refused.append(match)
            else:
                found.append(inside)
        if refused:
            problem = _refused(pattern, f"{refused[0]} is a link out of the repository").problem
            return _Target(tuple(found), unresolved=True, problem=problem)
        return _Target(tuple(found))

    def _inside(self, relative: str) -> str | None:
        """The repository path a file really is (links resolved), None when outside."""
        try:
            real = (self.root / relative).resolve()
            return real.relative_to(self._real_root).as_posix()
        except (OSError, ValueError):
            return None

    # --- parsing ----------------------------------------------------------------

    def _parse(self, path: str) -> list[dict[str, Any]] | str:
        """crossplane's statements of one file, or why it cannot be read."""
        if path not in self._parsed:
            self._parsed[path] = self._read(path)
        return self._parsed[path]

    def _read(self, path: str) -> list[dict[str, Any]] | str:
        import crossplane

        full = self.root / path
        try:
            if full.stat().st_size > self._max_bytes:
                return f"larger than {self._max_bytes} bytes; not read"
            payload = crossplane.parse(str(full), single=True, check_ctx=False, comments=False)
        except Exception as exc:  # noqa: BLE001 - any failure to read is the include's finding
            return f"cannot be read: {exc}"
        config = payload["config"][0] if payload["config"] else {}
        if config.get("errors"):
            error = config["errors"][0]
            text = str(error.get("error", "")).rsplit(" in ", 1)[0]
            return f"line {error.get('line')}: {text}"
        statements: list[dict[str, Any]] = config.get("parsed", [])
        return statements

    # --- what the checked file sees and reports ---------------------------------

    def _document(self, tree: _Tree, path: str) -> dict[str, Any]:
        nodes = [self._mark(copy.copy(n), path, ()) for n in tree.nodes]
        return {"file": path, "directives": [n for n in nodes if n is not None]}

    def _mark(self, node: Node, path: str, reached: tuple[str, ...]) -> Node | None:
        """Mark what `path` does not report (`context`), drop other files' servers.

        `reached`: the files passed through to get here (enclosing blocks and
        includes). A node is `path`'s to report when `path` is among them and no
        file after it is checked on its own (that file reports its directives).
        """
        sources = [f for f, _ in node.get("included_from", [])]
        reached = _squeeze((*reached, *sources, node["file"]))
        if not self._reports(reached, path):
            node["context"] = True
        if "block" in node:
            inner = [
                self._mark(copy.copy(child), path, reached) for child in node["block"]["directives"]
            ]
            node["block"] = {"directives": [c for c in inner if c is not None]}
            if node.get("context") and node["name"] == "server" and not _reports_any(node):
                return None  # another site's server: nothing here inherits from it
        return node

    def _reports(self, reached: tuple[str, ...], path: str) -> bool:
        if path not in reached:
            return False
        after = reached[len(reached) - reached[::-1].index(path) :]
        return not any(self._alone(f) for f in after)

    def _placed(self, tree: _Tree, path: str) -> list[Placed]:
        """The tree's include problems that `path` reports, at its own include line."""
        placed = []
        for problem in tree.problems:
            files = [f for f, _ in problem.chain]
            if path not in files:
                continue
            at = len(files) - 1 - files[::-1].index(path)
            below = files[at + 1 :]
            if any(self._is_nginx(f) for f in below):
                continue  # a file checked on its own reports its own includes
            message = problem.message
            if below:
                where, line = problem.chain[-1]
                message = f"{message} (in {where}:{line})"
            placed.append(Placed(problem.chain[at][1], problem.rule, problem.severity, message))
        return placed


def _refused(pattern: str, why: str) -> _Target:
    message = f"include {pattern}: not followed, {why}"
    return _Target(unresolved=True, problem=("include-outside", "warning", message))


def _squeeze(files: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f for i, f in enumerate(files) if i == 0 or files[i - 1] != f)


def _files_in(nodes: list[Node]) -> set[str]:
    found: set[str] = set()
    for node in nodes:
        found.add(node["file"])
        if "block" in node:
            found |= _files_in(node["block"]["directives"])
    return found


def _reports_any(node: Node) -> bool:
    children = node.get("block", {}).get("directives", [])
    return any(not c.get("context") or _reports_any(c) for c in children)


def _guessed_prefix(path: str) -> str:
    """Where nginx.conf would be for a file no nginx.conf in the repository holds."""
    directory = posixpath.dirname(path)
    if posixpath.basename(directory) in LAYOUT_DIRS:
        return posixpath.dirname(directory)
    return directory


def roots(paths: Iterable[str], is_nginx: Callable[[str], bool]) -> tuple[str, ...]:
    """The repository's nginx.conf files: the trees every other NGINX file is looked up in."""
    return tuple(p for p in paths if posixpath.basename(p) == "nginx.conf" and is_nginx(p))
