"""conftest's examples/ directories, translated, give the outcomes conftest's suite states.

One test (or a few) per directory the issue names: kubernetes, kubernetes/combine, nginx,
ini, toml, hcl2, docker, exceptions, data, compose, namespace, configfile. The expected
exit codes, counts and messages are those of conftest's acceptance.bats and example
READMEs for the same inputs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest_parity.parity import (
    cd_checks,
    example,
    messages,
)

Capsys = pytest.CaptureFixture[str]

DEPLOYMENT_FAILURES = [
    "Containers must not run as root in Deployment hello-kubernetes",
    "Deployment hello-kubernetes must provide app/release labels for pod selectors",
    "Found deployment hello-kubernetes but deployments are not allowed",
    "hello-kubernetes must include Kubernetes recommended labels",
]


# -- kubernetes ------------------------------------------------------------------------------


def test_nginx_example_passes_and_a_plain_listener_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    root = example("nginx", tmp_path, monkeypatch)
    run = cd_checks(capsys, "validate", "nginx.conf", "--format", "json")
    assert run.code == 0, run.out + run.err
    assert messages(run) == []
    text = (root / "nginx.conf").read_text()
    (root / "nginx.conf").write_text(text.replace("return 301 https://", "return 301 http://"))
    run = cd_checks(capsys, "validate", "nginx.conf", "--format", "json")
    assert run.code == 1, run.out + run.err
    assert messages(run) == ["Server listening without SSL must redirect to HTTPS"]


def test_toml_disallowed_cipher_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    # acceptance.bats: "Can parse toml files".
    example("toml", tmp_path, monkeypatch)
    run = cd_checks(capsys, "validate", "traefik.toml", "--format", "json")
    assert run.code == 1, run.out + run.err
    assert messages(run) == [
        'Following ciphers are not allowed: ["TLS_RSA_WITH_AES_256_GCM_SHA384"]'
    ]


def test_compose_latest_tag_and_old_version_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    # acceptance.bats: "No images tagged latest" (from the compose example's policy).
    example("compose", tmp_path, monkeypatch)
    run = cd_checks(capsys, "validate", "docker-compose.yml", "--format", "json")
    assert run.code == 1, run.out + run.err
    assert messages(run) == [
        "Must be using at least version 3.5 of the Compose file format",
        "No images tagged latest",
    ]
    run = cd_checks(capsys, "validate", "docker-compose-valid.yml", "--format", "json")
    assert run.code == 0, run.out + run.err
