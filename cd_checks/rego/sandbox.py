"""The embedded engine in a bounded child process: a policy cannot crash, hang or exhaust the run.

regorus evaluates in process, and a policy can overflow its stack (mutual
recursion of functions: SIGSEGV), allocate without end (a comprehension over
a huge range) or loop for hours. So the engine runs in a forked child with an
address-space limit (RLIMIT_AS) and each document gets a wall-clock limit.
The child writes which rule it is evaluating into shared memory before each
rule; when it dies or overruns, that rule becomes a `RuleError` naming it,
its file and what happened on that document, and "not evaluated" on every
later one (a rule that took 30 s once is not given another 30 s per file);
the child is replaced, and the other rules run as before.
One child serves a whole run (per process), so the cost is a fork and one
pipe round trip per file. Rego unit tests (`run_tests`) run the same way: a
test that crashes or overruns the engine fails with the reason. This module
never prints; the child's stderr (a Rust panic) is captured to say why it died.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import gc
import json
import multiprocessing
import os
import signal
import tempfile
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import IO, Any

from cd_checks.errors import PolicyError
from cd_checks.rego.model import (
    EngineOptions,
    FileInfo,
    Outcome,
    PolicySource,
    RuleError,
    TestResult,
)

# Seconds one document may take through all rules (regorus takes well under a
# millisecond on a real one), and bytes the engine may add to its address space.
TIMEOUT = 30.0
MEMORY = 2 * 2**30
# Bytes of shared memory for "namespace\trule\tfile:line" of the rule being evaluated.
PROGRESS_BYTES = 1024


@dataclass(frozen=True)
class Limits:
    seconds: float = TIMEOUT
    memory: int = MEMORY


@dataclass(frozen=True)
class _Stop:
    """Why the child stopped on one document: the rule it was in, and what happened."""

    document: int
    namespace: str
    rule: str
    where: str
    reason: str

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.rule


class BoundedEvaluator:
    """An `Evaluator` that evaluates in a bounded child; same answers as `EmbeddedEvaluator`."""

    def __init__(
        self,
        source: PolicySource,
        limits: Limits | None = None,
        *,
        wait: bool = True,
        options: EngineOptions | None = None,
    ) -> None:
        """Start the child. With `wait`, wait until the policies are loaded (a PolicyError
        now); without, the child loads them while the caller goes on, and the first
        use waits (validate starts its evaluators so, and parses files meanwhile)."""
        self._source = source
        self._options = options or EngineOptions()
        # Read when built, so a test can lower the module's limits.
        self._limits = limits or Limits(TIMEOUT, MEMORY)
        self._stopped: dict[tuple[str, str], str] = {}
        self._child: _Child | None = self._spawn()
        self._namespaces: tuple[str, ...] = ()
        if wait:
            self._ready()

    @property
    def namespaces(self) -> tuple[str, ...]:
        self._ready()
        return self._namespaces

    def evaluate(
        self,
        documents: Sequence[Any],
        *,
        namespaces: Sequence[str] | None,
        files: Sequence[FileInfo | None] | None = None,
    ) -> list[Outcome]:
        texts = [_json_input(document) for document in documents]
        infos = list(files) if files is not None else [None] * len(documents)
        outcomes: list[Outcome | None] = [None if isinstance(text, str) else text for text in texts]
        todo = [i for i, text in enumerate(texts) if isinstance(text, str)]
        first: list[tuple[int, _Stop]] = []
        while todo:
            child = self._ready()
            chosen = [(str(texts[i]), infos[i]) for i in todo]
            stop = child.evaluate(chosen, namespaces, outcomes, todo)
            if stop is None:
                break
            self._stop(stop)
            todo = todo[stop.document :]
            first.append((todo[0], stop))
        for index, stop in first:  # what happened, where it happened
            outcomes[index] = _as_first(outcomes[index], stop)
        return [outcome for outcome in outcomes if outcome is not None]

    def _spawn(self) -> _Child:
        return _Child(_serve, (self._source, dict(self._stopped), self._options), self._limits)

    def _ready(self) -> _Child:
        """A child with the policies loaded; a rule that stops it while loading is stopped,
        and a new child starts."""
        for _ in range(1000):  # each round stops one more rule; a policy set has fewer
            child = self._child or self._spawn()
            self._child = child
            ready = child.ready()
            if isinstance(ready, tuple):
                self._namespaces = ready
                return child
            self._stop(ready, when="while the policies were loaded")
        raise PolicyError("the Rego engine kept crashing while loading the policies")

    def _stop(self, stop: _Stop, *, when: str = "on an earlier document") -> None:
        if self._child is not None:
            self._child.close()
            self._child = None
        if not stop.rule:
            raise PolicyError(f"loading the policies {stop.reason}")
        message = f"{stop.where}: not evaluated: it {stop.reason} {when}"
        self._stopped[(stop.namespace, stop.rule)] = message


def _as_first(outcome: Outcome | None, stop: _Stop) -> Outcome | None:
    """The stopped rule's error on the document it stopped on says what happened there."""
    if outcome is None:
        return None
    message = f"{stop.where}: {stop.reason}"
    errors = tuple(
        RuleError(e.namespace, e.rule, message) if (e.namespace, e.rule) == stop.key else e
        for e in outcome.errors
    )
    return replace(outcome, errors=errors)


def _json_input(document: Any) -> str | Outcome:
    try:
        return json.dumps(document, default=str, allow_nan=False)
    except ValueError as exc:  # NaN or Infinity is not JSON
        problem = f"the document cannot be given to Rego as input: {exc}"
        return Outcome((), (RuleError("*", "*", problem),))


class _Child:
    """One forked child process running `work` (`_serve` or `_serve_tests`) within `limits`,
    and the parent's ends of its pipe."""

    def __init__(self, work: Callable[..., None], args: tuple[Any, ...], limits: Limits) -> None:
        self.limits = limits
        self.namespaces: tuple[str, ...] | None = None
        context = multiprocessing.get_context("fork")
        self.progress = context.RawArray(ctypes.c_char, PROGRESS_BYTES)
        self.document = context.RawValue(ctypes.c_int, 0)
        # Closed by _close, with the process.
        self.stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self.conn, theirs = context.Pipe()
        self.process = context.Process(
            target=_child_main,
            args=(work, args, theirs, self.progress, self.document, self.conn),
            kwargs={"memory": limits.memory, "stderr": self.stderr.fileno()},
            daemon=True,
        )
        # Objects the child inherits stay out of its garbage collector: scanning them
        # would copy every page of the parent's heap into the child (copy-on-write).
        gc.freeze()
        try:
            self.process.start()
        finally:
            gc.unfreeze()
        theirs.close()
        # Closed with the evaluator, or at exit: never left running. A forked process
        # (a validate worker) inherits this object: only the one that started it stops it.
        weakref.finalize(self, _close, self.process, self.conn, self.stderr, os.getpid())

    def ready(self) -> tuple[str, ...] | _Stop:
        """The namespaces, once the child has loaded the policies."""
        if self.namespaces is not None:
            return self.namespaces
        message = self.receive()
        if isinstance(message, _Stop):
            return message
        kind, value = message
        if kind == "error":
            self.close()
            raise PolicyError(value)
        self.namespaces = tuple(value)
        return self.namespaces

    def evaluate(
        self,
        texts: list[tuple[str, FileInfo | None]],
        namespaces: Sequence[str] | None,
        outcomes: list[Outcome | None],
        where: list[int],
    ) -> _Stop | None:
        """Evaluate `texts`, filling `outcomes[where[i]]`; the stop when the child fails."""
        try:
            self.conn.send((texts, None if namespaces is None else list(namespaces)))
        except (BrokenPipeError, ConnectionError):
            return self._died()
        for index in range(len(texts)):
            message = self.receive()
            if isinstance(message, _Stop):
                return message
            kind, value = message
            if kind == "error":
                raise PolicyError(value)
            outcomes[where[index]] = value
        return None

    def receive(self) -> tuple[str, Any] | _Stop:
        seconds = self.limits.seconds
        deadline = time.monotonic() + seconds
        while not self.conn.poll(max(0.0, min(1.0, deadline - time.monotonic()))):
            if not self.process.is_alive():
                return self._died()
            if time.monotonic() >= deadline:
                return self._overran(seconds)
        try:
            message: tuple[str, Any] = self.conn.recv()
        except (EOFError, ConnectionError):
            return self._died()
        return message

    def _overran(self, seconds: float) -> _Stop:
        self.close()
        return self._where(f"took longer than {seconds:g} s (the limit) and was stopped")

    def _died(self) -> _Stop:
        self.process.join(5)
        code = self.process.exitcode
        self.stderr.seek(0)
        said = self.stderr.read().decode("utf-8", "replace")
        self.close()
        return self._where(_why(code, said, self.limits.memory))

    def _where(self, reason: str) -> _Stop:
        raw = bytes(self.progress.value).decode("utf-8", "replace")
        namespace, rule, where = ([*raw.split("\t"), "", "", ""])[:3]
        return _Stop(int(self.document.value), namespace, rule, where, reason)

    def close(self) -> None:
        _close(self.process, self.conn, self.stderr, os.getpid())


def _why(code: int | None, said: str, memory: int) -> str:
    if "memory allocation" in said or "MemoryError" in said:
        return f"needed more than {memory // 2**20:,} MB of memory (the limit)"
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        if name in ("SIGSEGV", "SIGBUS") or "overflowed its stack" in said:
            return f"crashed the Rego engine ({name}: most likely unbounded recursion)"
        return f"crashed the Rego engine ({name})"
    return f"crashed the Rego engine (exit code {code})"


def _close(process: Any, conn: Connection, stderr: IO[bytes], owner: int) -> None:
    if os.getpid() != owner:
        return
    conn.close()
    stderr.close()
    if process.is_alive():
        process.kill()
    process.join(5)


# -- Rego unit tests -----------------------------------------------------------------------


def run_tests(
    source: PolicySource,
    *,
    run: str | None = None,
    limits: Limits | None = None,
    show_builtin_errors: bool = False,
    trace: bool = False,
) -> list[TestResult]:
    """`verify.run_tests` in a bounded child: a test that crashes the engine or runs out
    of time or memory fails, saying so, and the other tests still run. The flags are
    conftest verify's (`EngineOptions`)."""
    limits = limits or Limits(TIMEOUT, MEMORY)
    options = EngineOptions(show_builtin_errors=show_builtin_errors, trace=trace)
    results: dict[tuple[str, str], TestResult] = {}
    for _ in range(1000):  # each round settles at least one test
        child = _Child(_serve_tests, (source, run, set(results), options), limits)
        stop = _collect(child, results)
        child.close()
        if stop is None:
            return sorted(results.values(), key=lambda r: (r.file, r.line))
        if not stop.rule:
            raise PolicyError(f"loading the policies {stop.reason}")
        file, _, line = stop.where.rpartition(":")
        failed = TestResult(stop.namespace, stop.rule, False, stop.reason, file, int(line))
        results[stop.key] = failed
    raise PolicyError("the Rego engine kept crashing while running the tests")


def _collect(child: _Child, results: dict[tuple[str, str], TestResult]) -> _Stop | None:
    while True:
        message = child.receive()
        if isinstance(message, _Stop):
            return message
        kind, value = message
        if kind == "error":
            raise PolicyError(value)
        if kind == "done":
            return None
        results[(value.namespace, value.name)] = value


def _serve_tests(
    source: PolicySource,
    run: str | None,
    done: set[tuple[str, str]],
    options: EngineOptions,
    conn: Connection,
    progress: Any,
    document: Any,
) -> None:
    from cd_checks.rego import verify

    announce = _announcer(progress)
    try:
        for result in verify.iter_tests(
            source,
            run=run,
            skip=done,
            on_test=lambda h: announce(h.namespace, h.name, f"{h.file}:{h.line}"),
            options=options,
        ):
            conn.send(("result", result))
    except PolicyError as exc:
        conn.send(("error", str(exc)))
        return
    conn.send(("done", None))


# -- the child ---------------------------------------------------------------------------


def _child_main(
    work: Callable[..., None],
    args: tuple[Any, ...],
    conn: Connection,
    progress: Any,
    document: Any,
    parents: Connection,
    *,
    memory: int,
    stderr: int,
) -> None:
    """What every child does first: bounds, then `work(*args, conn, progress, document)`."""
    parents.close()  # the parent's end, inherited: keeping it would hide the parent's exit
    _die_with_parent()
    os.dup2(stderr, 2)  # a Rust panic's message is read by the parent, not shown
    # A fault handler inherited from the parent (pytest, PYTHONFAULTHANDLER) writes to the
    # parent's stderr, not fd 2: the crash is the parent's to report, in one line.
    if faulthandler.is_enabled():
        faulthandler.enable(file=2)
    _limit(memory)
    work(*args, conn, progress, document)


def _announcer(progress: Any) -> Callable[[str, str, str], None]:
    def announce(namespace: str, rule: str, where: str) -> None:
        progress.value = f"{namespace}\t{rule}\t{where}".encode()[: PROGRESS_BYTES - 1]

    return announce


def _serve(
    source: PolicySource,
    stopped: dict[tuple[str, str], str],
    options: EngineOptions,
    conn: Connection,
    progress: Any,
    document: Any,
) -> None:
    """The child: load the policies, then answer requests until the parent hangs up."""
    from cd_checks.rego.embedded import EmbeddedEvaluator

    announce = _announcer(progress)
    try:
        evaluator = EmbeddedEvaluator(source, stopped=stopped, on_rule=announce, options=options)
    except PolicyError as exc:
        conn.send(("error", str(exc)))
        return
    progress.value = b""
    conn.send(("ready", evaluator.namespaces))
    while True:
        try:
            texts, namespaces = conn.recv()
        except EOFError:
            return
        try:
            selected = evaluator.select(namespaces)
        except PolicyError as exc:
            conn.send(("error", str(exc)))
            continue
        for index, (text, file) in enumerate(texts):
            document.value = index
            try:
                conn.send(("outcome", evaluator.evaluate_json(text, selected, file)))
            except PolicyError as exc:  # a static mistake only evaluation finds
                conn.send(("error", str(exc)))
                break


def _limit(memory: int) -> None:
    """Cap the address space at what the child has now plus `memory`; no core dumps."""
    import resource

    with contextlib.suppress(OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            current = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return  # not Linux: no measure to start from, no limit
    with contextlib.suppress(OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_AS, (current + memory, current + memory))


def _die_with_parent() -> None:
    """Linux: SIGKILL when the parent dies, even by SIGKILL (no orphaned engine)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
