"""Fuzzing `validate` (issue 9): random and mutated YAML, JSON, TOML, INI and NGINX files,
and a mutated config and exceptions file, never crash a run.

Every run exits 0, 1 or 2 with no traceback, and when it exits 0 or 1 the good
file beside the fuzzed one was still checked (its trailing space is reported).
Seeds are real files of each kind; mutations splice in the inputs that once
aborted runs (NUL bytes, alias bombs, deep nesting, 5,000-digit numbers,
impossible dates, NaN, bad globs, stray bytes). Derandomized and without an
example database, so CI sees the same examples every time.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cd_checks.cli import main

GOOD = ("good.yml", "---\nkey: value \n")
POLICY = 'package main\n\nwarn contains "seen" if input.fuzz\n'

SEEDS: dict[str, str] = {
    "fuzz.yml": "---\nname: web\nreplicas: 3\nwhen: 2024-01-01\n"
    "ports: [80, 443]\nanchors: &a {x: 1}\nuse: *a\nfuzz: true\n",
    "fuzz.json": '{"name": "web", "replicas": 3, "ports": [80, 443], "fuzz": true}\n',
    "fuzz.toml": '[server]\nname = "web"\nreplicas = 3\nports = [80, 443]\nfuzz = true\n',
    "fuzz.ini": "[server]\nname = web\nreplicas = 3\n",
    "nginx/fuzz.conf": "server {\n    listen 80;\n    location / {\n"
    "        proxy_pass http://127.0.0.1:8080;\n    }\n}\n",
    "cd-checks.yml": "files:\n  include: ['**/*']\n  exclude: ['vendor/**']\n"
    "schema:\n  - {files: 'svc/*.yml', schema: s.json}\n",
    ".cd-checks-exceptions.yml": "---\nexceptions:\n  - rule: NGINX-001\n"
    "    paths: [nginx/*.conf]\n    reason: INC-1\n    expires: 2099-01-01\n",
}

BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9)
)
FRAGMENTS = [
    "\0",
    "[" * 300,
    "{" * 300 + "}" * 300,
    "- " * 200,
    "&a [*a]",
    BOMB,
    "9" * 5000,
    "NaN",
    "-Infinity",
    "2024-02-30",
    "!!python/object/apply:os.system ['true']",
    "\ufeff",
    "\t",
    "\r",
    "\x85",
    "\x1b",
    "[z-a]",
    '"$ref": "#"',
    "%YAML 1.1\n",
    "---\n...\n",
    "<<: *a\n",
    "include /etc/passwd;",
    "}",
    '"a": 1, "a": 2',
]
RAW = [b"\xff\xfe", b"\xed\xa0\x80", b"\xc3", b"\x00" * 9000]


@st.composite
def mutated(draw: st.DrawFn, seed: str) -> bytes:
    data = bytearray(seed.encode())
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        start = draw(st.integers(min_value=0, max_value=len(data)))
        end = draw(st.integers(min_value=start, max_value=min(len(data), start + 40)))
        operation = draw(st.sampled_from(["insert", "delete", "duplicate", "replace"]))
        piece = draw(
            st.one_of(
                st.sampled_from(FRAGMENTS).map(str.encode),
                st.sampled_from(RAW),
                st.binary(max_size=16),
            )
        )
        if operation == "insert":
            data[start:start] = piece
        elif operation == "delete":
            del data[start:end]
        elif operation == "duplicate":
            data[start:start] = data[start:end] * draw(st.integers(min_value=2, max_value=50))
        else:
            data[start:end] = piece
    return bytes(data)


def contents(seed: str) -> st.SearchStrategy[bytes]:
    return st.one_of(
        mutated(seed),
        st.binary(max_size=300),
        st.text(max_size=300).map(lambda text: text.encode("utf-8", "surrogatepass")),
    )


def run_validate(root: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["-C", str(root), "validate", "--format", "json", "--no-cache"])
    return code, out.getvalue(), err.getvalue()


FUZZ = settings(
    max_examples=int(os.environ.get("CD_CHECKS_FUZZ_EXAMPLES", "12")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("name", sorted(SEEDS))
@FUZZ
@given(data=st.data())
def test_validate_survives_random_and_mutated_input(name: str, data: st.DataObject) -> None:
    content = data.draw(contents(SEEDS[name]), label=name)
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        files = {GOOD[0]: GOOD[1].encode(), "policy/p.rego": POLICY.encode(), name: content}
        if name == "cd-checks.yml":
            files |= {"s.json": b'{"type": "object"}', "svc/a.yml": b"---\na: 1\n"}
        for path, body in files.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(body)
        code, out, err = run_validate(root)
    assert code in (0, 1, 2), (code, err)
    assert "Traceback" not in err and "internal error" not in err, err
    if code == 2:
        # A user error of the whole run: one line, and only the config can cause it.
        assert name == "cd-checks.yml", err
        assert err.startswith("cd-checks: error:"), err
        return
    found = json.loads(out)["findings"]
    assert {"path": "good.yml", "line": 2, "rule": "trailing-spaces"}.items() <= next(
        (f for f in found if f["path"] == "good.yml"), {}
    ).items(), found
    assert not [f for f in found if f["rule"] == "input/error"], found
