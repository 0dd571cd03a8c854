"""A lab fleet for tests: started on free loopback addresses, always stopped afterwards.

`lab_fleet` is a generator for a fixture to `yield from`, e.g. in tests/conftest.py:

    @pytest.fixture(scope="session")
    def lab(tmp_path_factory):
        yield from lab_fleet(tmp_path_factory, hosts=5)

Each call picks its own 127.0.X.11.. range (skipping ranges another lab holds, spreading
pytest-xdist workers apart), so concurrent test runs and workers do not collide. With
`monitoring=True` the lab also runs its monitoring stack (Prometheus on 127.0.X.10:19090,
see `cd_checks.lab_monitoring`), on the lab's own range as well.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from cd_checks.errors import ToolError
from cd_checks.lab import Lab, down, up
from cd_checks.lab_monitoring import EXPORTER_PORT, PROMETHEUS_PORT, TRAFFIC_PORT

_FIRST_OCTET = 20
_LAST_OCTET = 250
_ATTEMPTS = 6


def lab_fleet(
    tmp_path_factory: pytest.TempPathFactory,
    hosts: int,
    *,
    staging: int | None = None,
    monitoring: bool = False,
) -> Generator[Lab, None, None]:
    """Start a lab of `hosts` hosts in a fresh temporary directory; stop it on teardown."""
    directory = tmp_path_factory.mktemp("lab")
    staging_hosts = min(2, hosts) if staging is None else staging
    try:
        yield _up_on_free_addresses(directory, hosts, staging_hosts, monitoring=monitoring)
    finally:
        if (directory / "lab.json").exists():
            down(directory)


def _up_on_free_addresses(path: Path, hosts: int, staging: int, *, monitoring: bool) -> Lab:
    failure: ToolError | None = None
    attempts = 0
    for octet in _candidate_octets():
        addresses = [f"127.0.{octet}.{11 + i}" for i in range(hosts)]
        if any(_taken(address) for address in addresses):
            continue
        if monitoring and _taken(f"127.0.{octet}.10", (PROMETHEUS_PORT, TRAFFIC_PORT)):
            continue
        try:
            return up(
                path,
                hosts=hosts,
                staging=staging,
                first_address=addresses[0],
                monitoring=monitoring,
            )
        except ToolError as exc:  # a concurrent run took the range first: try the next one
            failure = exc
            attempts += 1
            _clean(path)  # the next range starts from nothing: no process, no file of this one
            if attempts >= _ATTEMPTS:
                break
    if (path / "lab.json").exists():
        down(path)
    raise RuntimeError(f"could not start a {hosts}-host lab: {failure}")


def _clean(path: Path) -> None:
    if (path / "lab.json").exists():
        down(path)
    shutil.rmtree(path)
    path.mkdir()


def _candidate_octets() -> Iterator[int]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    span = _LAST_OCTET - _FIRST_OCTET
    offset = (int(worker) * 16 if worker.isdigit() else 0) + os.getpid() % 8
    for step in range(span):
        yield _FIRST_OCTET + (offset + step) % span


def _taken(address: str, ports: tuple[int, ...] = (22, 80, EXPORTER_PORT)) -> bool:
    for port in ports:
        try:
            with socket.create_connection((address, port), timeout=0.2):
                return True
        except OSError:
            continue
    return False
