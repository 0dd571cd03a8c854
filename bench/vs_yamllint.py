#!/usr/bin/env python3
"""`cd-checks validate` against yamllint alone, on the same files of any repository.

Not a timed test: it prints what it measured on this machine, as ratios to
yamllint run alone over the YAML files cd-checks checks (same yamllint config):

  cold      cd-checks validate --no-cache           (everything checked)
  warm      cd-checks validate, result cache filled  (a CI re-run)
  PR mode   cd-checks validate --changed-since HEAD~1 after a one-file commit

each with wall time, CPU time (user + system of the command and every process
it waited for, from the kernel's accounting of the child) and peak memory (the
largest single process). Every figure is the median of --runs runs; yamllint and
the cold run alternate, so a machine that speeds up or slows down meanwhile
moves both. On a loaded or 1-core machine the wall-time gain of the worker
processes disappears: the CPU ratio says what it costs there.

DIR is not touched: a git repository is cloned (its committed files, as CI sees
them), any other directory copied and committed, into a temporary directory.
The result cache gets a key of its own (CD_CHECKS_CACHE_KEY), so no per-user
key is made.

Usage: python bench/vs_yamllint.py DIR [--runs 3] [--jobs N] [--change PATH]
   or: python bench/vs_yamllint.py --kube-prometheus [--scale 1.0]
       (a generated repository shaped like kube-prometheus: bench/kube_prometheus_like.py)
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float
    peak_mb: float


def measure(argv: list[str], cwd: Path, env: dict[str, str]) -> Sample:
    """One run: wall clock around it, CPU and peak memory from the kernel (wait4)."""
    start = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=sink, stderr=subprocess.PIPE)
        assert process.stderr is not None
        errors = process.stderr.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if process.returncode not in (0, 1):
        sys.exit(f"{' '.join(argv[:4])} ... exited {process.returncode}: {errors.decode()[-800:]}")
    # ru_maxrss is in KiB on Linux: the largest of the child and the processes it waited for.
    return Sample(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def median(samples: list[Sample]) -> Sample:
    return Sample(
        statistics.median(s.wall for s in samples),
        statistics.median(s.cpu for s in samples),
        max(s.peak_mb for s in samples),
    )


def workspace(source: Path, into: Path) -> Path:
    """A copy of `source` to measure in: a clone of its commits, or (not a git repository,
    or one without a commit) its files, committed in a fresh repository."""
    work = into / "repo"
    committed = subprocess.run(
        ["git", "-C", str(source), "rev-parse", "--verify", "--quiet", "HEAD"],
        capture_output=True,
        check=False,
    )
    if committed.returncode == 0:
        subprocess.run(["git", "clone", "-q", "--", str(source), str(work)], check=True)
    else:
        shutil.copytree(source, work, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        git(work, "init", "-q", "-b", "main")
        git(work, "add", "-A")
        git(work, "commit", "-q", "-m", "copied for the benchmark")
    return work


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, env={**os.environ, **GIT_ENV})


def yaml_files(root: Path) -> tuple[list[str], str | None]:
    """The files cd-checks checks as YAML, and the yamllint config file it uses (None:
    yamllint's defaults): what yamllint alone is given."""
    from cd_checks import config as config_module
    from cd_checks import files
    from cd_checks.validate import Checker, ValidateOptions, build_spec

    config = config_module.load(root, None)
    spec = build_spec(config, ValidateOptions(root=root))
    checker = Checker(spec)
    listed = files.select(root, include=config.include, exclude=config.exclude).paths
    return [p for p in listed if checker.kind(p) == "yaml"], spec.yamllint_path


def changed_file(root: Path, paths: list[str], given: str | None) -> str:
    """The file a one-file PR changes: the one asked for, else the median-sized YAML file."""
    if given is not None:
        return given
    by_size = sorted(paths, key=lambda p: (root / p).stat().st_size)
    return by_size[len(by_size) // 2]


def run(root: Path, args: argparse.Namespace) -> None:
    env = {**os.environ, "CD_CHECKS_CACHE_KEY": secrets.token_hex(32)}
    env.pop("GITHUB_STEP_SUMMARY", None)
    paths, yamllint_config = yaml_files(root)
    if not paths:
        sys.exit(f"{args.directory}: no YAML file to compare on")
    size = sum((root / p).stat().st_size for p in paths) / 2**20
    config = ["-c", yamllint_config] if yamllint_config else ["-d", "extends: default"]
    yamllint = [sys.executable, "-m", "yamllint", "-f", "parsable", *config, "--", *paths]
    jobs = ["--jobs", str(args.jobs)] if args.jobs else []
    validate = [sys.executable, "-m", "cd_checks", "validate", *jobs]
    print(f"repository: {args.directory} ({len(paths)} YAML files, {size:.1f} MB of YAML)")
    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"yamllint {version('yamllint')}, cd-checks {version('cd-checks')}; "
        f"median of {args.runs} runs"
    )
    baseline, cold = [], []
    for _ in range(args.runs):  # alternating: a drift of the machine moves both
        baseline.append(measure(yamllint, root, env))
        cold.append(measure([*validate, "--no-cache"], root, env))
    measure(validate, root, env)  # fills the cache
    warm = [measure(validate, root, env) for _ in range(args.runs)]
    changed = changed_file(root, paths, args.change)
    with (root / changed).open("a", encoding="utf-8") as handle:
        handle.write("# changed by the benchmark\n")
    git(root, "commit", "-q", "-am", f"change {changed}")
    pr_mode = [
        measure([*validate, "--changed-since", "HEAD~1"], root, env) for _ in range(args.runs)
    ]
    report(
        [
            ("yamllint alone (same YAML files)", median(baseline)),
            ("cd-checks validate --no-cache (cold)", median(cold)),
            ("cd-checks validate (cache warm)", median(warm)),
            (f"cd-checks validate --changed-since HEAD~1 (1 file: {changed})", median(pr_mode)),
        ]
    )


def report(rows: list[tuple[str, Sample]]) -> None:
    base = rows[0][1]
    print(f"{'run':46} {'wall s':>8} {'CPU s':>8} {'peak MB':>8} {'wall':>7} {'CPU':>7}")
    for label, sample in rows:
        shown = label if len(label) <= 46 else label[:43] + "..."
        print(
            f"{shown:46} {sample.wall:8.2f} {sample.cpu:8.2f} {sample.peak_mb:8.0f} "
            f"{sample.wall / base.wall:6.2f}x {sample.cpu / base.cpu:6.2f}x"
        )


def version(distribution: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, nargs="?", help="the repository to measure on")
    parser.add_argument("--runs", type=int, default=3, help="runs of each command (median)")
    parser.add_argument("--jobs", type=int, help="cd-checks --jobs (default: all cores)")
    parser.add_argument("--change", help="the file the one-file PR changes (repo-relative)")
    parser.add_argument(
        "--kube-prometheus", action="store_true", help="measure on a generated repository"
    )
    parser.add_argument("--scale", type=float, default=1.0, help="of the generated repository")
    args = parser.parse_args()
    if (args.directory is None) != args.kube_prometheus:
        parser.error("give DIR or --kube-prometheus")
    with tempfile.TemporaryDirectory(prefix="cd-checks-bench-") as temporary:
        source = args.directory
        if args.kube_prometheus:
            sys.path.insert(0, str(HERE))
            import kube_prometheus_like

            source = Path(temporary) / "generated"
            kube_prometheus_like.generate(source, scale=args.scale)
            args.directory = (
                f"generated, shaped like kube-prometheus (bench/kube_prometheus_like.py, "
                f"scale {args.scale:g})"
            )
        run(workspace(source.resolve(), Path(temporary)), args)


if __name__ == "__main__":
    main()
