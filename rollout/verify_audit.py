"""The rollout action's audit steps: `cd-checks audit verify` before and after the deploy.

`python verify_audit.py before|after`, run by action.yml with its inputs in the
environment (CONFIG, ANCHORS, KEEP_HEAD, BREAK_GLASS, RESTORED, SAVE_KEY). It
runs `cd-checks audit verify --format json`, with `--anchor-dir ANCHORS` when the
action keeps the head between runs (KEEP_HEAD=true: a cache restored into ANCHORS
holds the head an earlier run kept), and turns the verdict into what a GitHub job
shows:

- an `::error` annotation per problem, naming the record, and a `::warning` per
  warning of cd-checks (e.g. no head kept yet);
- a job summary section: the verdict, the head (seq, id, hash), the head it was
  checked against;
- step outputs: ok, head-seq, head-id, head-hash, and anchored (`true` when the
  trail verified and its head is in ANCHORS, for the cache save).

Exit status: verify's (0 clean, 1 a problem, 2 an error); with BREAK_GLASS=true
always 0, the failure reported as errors: break-glass never skips the audit, and
an emergency deploy is not stopped by a trail someone damaged. Text from the trail
(record ids, signer names) is escaped for workflow commands and Markdown. This file
belongs to the action; it uses nothing of cd-checks but its command line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

TITLE = "cd-checks audit verify"


def command(data: str, *, prop: bool = False) -> str:
    """`data` escaped as the runner unescapes a workflow command's message or property."""
    data = data.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return data.replace(":", "%3A").replace(",", "%2C") if prop else data


def plain(text: str) -> str:
    """One log line that shows as text: no controls, no workflow command inside."""
    text = re.sub(r"[\x00-\x1f\x7f-\x9f]", lambda m: f"\\x{ord(m[0]):02x}", text)
    return text.replace("##[", "#\\#[")


def markdown(text: str) -> str:
    r"""Text for the job summary, Markdown's own characters escaped (`*` as `\*`)."""
    return re.sub(r"([\\`*_{}\[\]<>()#+!|~])", r"\\\1", plain(text))


def code(text: str) -> str:
    """A Markdown code span that no backtick in `text` can close early."""
    return "`" + plain(text).replace("`", "'") + "`"


def keeps_head(env: dict[str, str]) -> bool:
    return env.get("KEEP_HEAD") == "true" and bool(env.get("ANCHORS"))


def verify(env: dict[str, str]) -> tuple[int, dict[str, Any] | None, str]:
    argv = ["cd-checks", "audit", "verify", "--format", "json"]
    if env.get("CONFIG"):
        argv += ["--config", env["CONFIG"]]
    if keeps_head(env):
        argv += ["--anchor-dir", env["ANCHORS"]]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    try:
        verdict = json.loads(done.stdout) if done.returncode in (0, 1) else None
    except ValueError:
        verdict = None
    return done.returncode, verdict, done.stderr


def annotate(code_: int, verdict: dict[str, Any] | None, stderr: str) -> list[str]:
    """Workflow commands for the log: each problem an error, each warning a warning."""
    lines = []
    for line in stderr.splitlines():
        if line.startswith("cd-checks: warning: "):
            message = line.removeprefix("cd-checks: warning: ")
            lines.append(f"::warning title={command(TITLE, prop=True)}::{command(message)}")
        else:
            lines.append(plain(line))
    for problem in (verdict or {}).get("problems", []):
        message = f"{problem['kind']}: {problem['message']}"
        lines.append(f"::error title={command(TITLE, prop=True)}::{command(message)}")
    if verdict is None:
        said = [line for line in stderr.splitlines() if line.startswith("cd-checks: ")]
        message = said[-1] if said else f"cd-checks audit verify exited with {code_}"
        lines.append(f"::error title={command(TITLE, prop=True)}::{command(message)}")
    return lines


def head_cells(head: dict[str, Any]) -> str:
    return f"#{head['seq']} | {code(str(head['id']))} | {code(str(head['hash']))}"


def summary(phase: str, code_: int, verdict: dict[str, Any] | None, env: dict[str, str]) -> str:
    """The job summary's section for this phase (before: a heading, the verdict, the
    head it was checked against, the head; after: the head after this job)."""
    out = ["## cd-checks audit trail", ""] if phase == "before" else [""]
    if verdict is None or code_ != 0:
        out += failed(phase, code_, verdict, env)
        return "\n".join(out) + "\n"
    head = verdict.get("head")
    if phase == "before":
        signed = ", ".join(f"{markdown(k)}: {v}" for k, v in sorted(verdict["signed"].items()))
        counts = f"{verdict['records']} records, chain intact, signed: {signed or 'none'}"
        if verdict["unsigned"]:
            counts += f", {len(verdict['unsigned'])} unsigned"
        out += [f":white_check_mark: {code(verdict['trail'])}: {counts}.", ""]
        out += [anchor_line(verdict, env), "", "| head | seq | id | hash |", "|---|---|---|---|"]
    label = "before the deploy" if phase == "before" else "after this job"
    out.append(f"| {label} | {head_cells(head)} |" if head else f"| {label} | (empty) | | |")
    if phase == "after" and head and verdict.get("anchor_file") and env.get("SAVE_KEY"):
        out += ["", f"Kept for the next run: cache {code(env['SAVE_KEY'])}."]
    return "\n".join(out) + "\n"


def failed(
    phase: str, code_: int, verdict: dict[str, Any] | None, env: dict[str, str]
) -> list[str]:
    what = "nothing was deployed" if phase == "before" else "after this job's deploy"
    if env.get("BREAK_GLASS") == "true":
        what = "BREAK-GLASS: the job went on"
    out = [f":x: **audit verify failed** ({what}):", ""]
    out += [
        f"- {code(p['kind'])} {markdown(p['message'])}" for p in (verdict or {}).get("problems", [])
    ]
    if verdict is None:
        out.append(f"- cd-checks audit verify exited with {code_}: see the job log")
    return out


def anchor_line(verdict: dict[str, Any], env: dict[str, str]) -> str:
    if not keeps_head(env):
        return "Not checked against an earlier run's head (input `audit-anchor` is false)."
    if verdict.get("anchor_file") is None:
        return (
            "Not checked against an earlier run's head: this trail lives in the checkout; "
            "only a trail pushed to a remote (`audit: {store: git, remote: origin}`) "
            "outlives the job."
        )
    anchor = verdict.get("anchor")
    if anchor is None:
        return (
            ":warning: No head kept by an earlier run (a first run, or the cache was "
            "evicted): records cut off the trail's end before this run cannot be detected."
        )
    restored = f" (cache {code(env['RESTORED'])})" if env.get("RESTORED") else ""
    return (
        f"Checked against the head an earlier run kept{restored}: "
        f"#{anchor['seq']} {code(str(anchor['id']))} {code(str(anchor['hash']))}."
    )


def outputs(code_: int, verdict: dict[str, Any] | None) -> dict[str, str]:
    ok = code_ == 0 and verdict is not None and verdict.get("ok") is True
    head = (verdict or {}).get("head") or {}
    anchored = ok and bool(head) and (verdict or {}).get("anchor_file") is not None
    return {
        "ok": str(ok).lower(),
        "head-seq": str(head.get("seq", "")) if ok else "",
        # Safe as one output line: a record id never holds a line break once verified,
        # but an output is no place to find out.
        "head-id": plain(str(head.get("id", ""))) if ok else "",
        "head-hash": str(head.get("hash", "")) if ok else "",
        "anchored": str(anchored).lower(),
    }


def main(phase: str, env: dict[str, str]) -> int:
    code_, verdict, stderr = verify(env)
    for line in annotate(code_, verdict, stderr):
        print(line, flush=True)
    if env.get("GITHUB_STEP_SUMMARY"):
        with open(env["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as out:
            out.write(summary(phase, code_, verdict, env))
    if env.get("GITHUB_OUTPUT"):
        with open(env["GITHUB_OUTPUT"], "a", encoding="utf-8") as out:
            out.writelines(f"{name}={value}\n" for name, value in outputs(code_, verdict).items())
    if code_ != 0 and env.get("BREAK_GLASS") == "true":
        message = "BREAK-GLASS: going on past a failed audit verify; the trail needs a look"
        print(f"::error title={command(TITLE, prop=True)}::{command(message)}")
        return 0
    return code_


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], dict(os.environ)))
