#!/usr/bin/env python3
"""Benchmark: `cd-checks validate` against yamllint alone, on the same generated repository.

Not a timed test: it prints wall-clock seconds and ratios measured side by
side in one run, on this machine. It generates an ops repository of a few
thousand files (Prometheus rule files, service entries with a schema, NGINX
site configs, JSON), then times:

  yamllint (its CLI, same config) over the YAML files    - the baseline
  cd-checks validate --no-cache (syntax + schema + policy) - cold
  cd-checks validate (second run, content cache warm)     - a CI re-run
  cd-checks validate after one file changed               - a typical PR
  cd-checks validate --changed-since HEAD~1               - PR mode

Usage: python bench/validate_vs_yamllint.py [--files N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RULE = """      - alert: {name}
        expr: sum by (instance) (rate(http_requests_total{{job="{job}",status=~"5.."}}[5m])) > {n}
        for: 10m
        labels:
          severity: warning
          team: platform
        annotations:
          summary: "High error rate on {{{{ $labels.instance }}}} for job {job}"
          runbook_url: https://runbooks.example.internal/{job}/{name}
"""
SITE = """server {{
    listen 443 ssl;
    server_name app{n}.example.com;
    server_tokens off;
    client_max_body_size 4m;
    ssl_certificate /etc/ssl/app{n}.pem;
    ssl_certificate_key /etc/ssl/app{n}.key;
    location / {{ proxy_pass https://backend{n}; }}
}}
"""
SCHEMA = (
    '{"type": "object", "required": ["name", "port"],'
    ' "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}'
)
POLICY = """package main

deny contains msg if {
\tinput.port == 23
\tmsg := sprintf("service %s uses telnet", [input.name])
}
"""


def generate(root: Path, count: int) -> list[Path]:
    per_kind = count // 4
    (root / "prometheus").mkdir(parents=True)
    (root / "services").mkdir()
    (root / "nginx" / "sites").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "policy").mkdir()
    for i in range(per_kind):
        rules = "".join(RULE.format(name=f"Alert{i}x{j}", job=f"job{i}", n=j) for j in range(24))
        (root / "prometheus" / f"r{i}.rules.yml").write_text(
            f"groups:\n  - name: g{i}\n    rules:\n{rules}"
        )
        (root / "services" / f"s{i}.yml").write_text(
            f"name: svc{i}\nport: {8000 + i}\nowner: team{i % 7}\n"
        )
        (root / "nginx" / "sites" / f"app{i}.conf").write_text(SITE.format(n=i))
        (root / "data" / f"d{i}.json").write_text(
            f'{{"id": {i}, "tags": ["a", "b"], "ok": true}}\n'
        )
    (root / "service.schema.json").write_text(SCHEMA)
    (root / "policy" / "main.rego").write_text(POLICY)
    (root / ".yamllint").write_text(
        "extends: default\nrules: {document-start: disable, line-length: {max: 160}}\n"
    )
    (root / "cd-checks.yml").write_text(
        "syntax: {yamllint: .yamllint}\n"
        "schema:\n  - {files: 'services/*.yml', schema: service.schema.json}\n"
        "policy: {paths: [policy/]}\n"
    )
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "generated"]):
        git(root, *args)
    return sorted(root.rglob("*.yml"))


def git(root: Path, *args: str) -> None:
    env = {
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@b",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@b",
        "PATH": "/usr/bin:/bin",
    }
    subprocess.run(["git", "-C", str(root), *args], check=True, env=env)


def timed(argv: list[str], cwd: Path) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run(
        argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        sys.exit(f"{argv[:3]} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return elapsed, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4000)
    parser.add_argument("--keep", type=Path, help="generate into this directory and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="cd-checks-bench-"))
    if root.exists() and any(root.iterdir()):
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    yaml_files = generate(root, args.files)
    total = sum(1 for p in root.rglob("*") if p.is_file() and ".git" not in p.parts)
    cd_checks = [sys.executable, "-m", "cd_checks", "validate"]
    megabytes = sum(p.stat().st_size for p in yaml_files) / 2**20
    print(f"repository: {total} files ({len(yaml_files)} YAML, {megabytes:.1f} MB of YAML)")

    baseline, _ = timed(
        [sys.executable, "-m", "yamllint", "-f", "parsable", "-c", ".yamllint", "."], root
    )
    cold, _ = timed([*cd_checks, "--no-cache"], root)
    cold_1, _ = timed([*cd_checks, "--no-cache", "--jobs", "1"], root)
    timed(cd_checks, root)  # fills the cache
    warm, _ = timed(cd_checks, root)
    changed = root / "services" / "s1.yml"
    changed.write_text(changed.read_text().replace("port: 8001", "port: 23"))
    one_changed, code = timed(cd_checks, root)
    git(root, "commit", "-qam", "telnet")
    pr_mode, _ = timed([*cd_checks, "--changed-since", "HEAD~1"], root)

    rows = [
        ("yamllint alone (YAML files only)", baseline),
        ("cd-checks validate, cold, all cores", cold),
        ("cd-checks validate, cold, --jobs 1", cold_1),
        ("cd-checks validate, cache warm", warm),
        ("cd-checks validate, one file changed", one_changed),
        ("cd-checks validate --changed-since HEAD~1", pr_mode),
    ]
    print(f"{'run':45} {'seconds':>8} {'vs yamllint':>12}")
    for label, seconds in rows:
        print(f"{label:45} {seconds:8.2f} {seconds / baseline:11.2f}x")
    print(f"(one-file-changed run exit code {code}: the telnet port was found)")
    if args.keep is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
