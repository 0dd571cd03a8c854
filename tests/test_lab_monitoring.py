"""End-to-end tests of `cd-checks lab up --monitoring`: real Prometheus, nginx exporters and
traffic generator against the lab's real nginx, all on loopback."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cd_checks import lab as fleet
from cd_checks.errors import ToolError
from cd_checks.lab import Lab, LabHost
from tests.conftest import Run
from tests.lab_fixture import lab_fleet

pytestmark = pytest.mark.lab

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from lab_fleet(tmp_path_factory, hosts=3, monitoring=True)


@pytest.fixture
def plain_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A one-host lab without monitoring, for tests that add it (and stop it) themselves."""
    yield from lab_fleet(tmp_path_factory, hosts=1)


def _api(lab: Lab, path: str, **params: str) -> Any:
    assert lab.monitoring is not None
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with _OPENER.open(f"{lab.monitoring.prometheus_url}{path}{query}", timeout=5) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]


def _by_instance(lab: Lab, promql: str) -> dict[str, float]:
    """An instant query's vector as instance -> value."""
    result = _api(lab, "/api/v1/query", query=promql)["result"]
    return {sample["metric"].get("instance", ""): float(sample["value"][1]) for sample in result}


def _eventually(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)
    return True


def _web(host: LabHost) -> str:
    return f"{host.address}:80"


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in {"Z", "X"}


def _processes_mentioning(*needles: str) -> list[str]:
    """Command lines of running processes that name any of `needles`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(needle in cmdline for needle in needles):
            found.append(f"{entry.name}: {cmdline}")
    return found


def test_prometheus_sees_the_traffic_to_every_host(lab: Lab) -> None:
    total = 'sum(rate(lab_http_requests_total{status="200"}[5s]))'
    assert _eventually(lambda: sum(_by_instance(lab, total).values()) > 0)
    per_host = _by_instance(
        lab, 'sum by (instance) (rate(lab_http_requests_total{status="200"}[5s]))'
    )
    assert set(per_host) == {_web(h) for h in lab.hosts}
    assert all(rate > 0 for rate in per_host.values()), per_host
    latency = _by_instance(lab, "sum by (instance) (lab_http_request_duration_seconds_count)")
    assert set(latency) == {_web(h) for h in lab.hosts}


def test_the_exporter_reports_nginx_up_for_every_host(lab: Lab) -> None:
    up = _by_instance(lab, "nginx_up")
    assert up == {f"{h.address}:19113": 1.0 for h in lab.hosts}
    rules = [r["name"] for g in _api(lab, "/api/v1/rules")["groups"] for r in g["rules"]]
    assert rules == ["LabHostDown"]


def test_a_host_that_serves_500_shows_a_5xx_rate_of_its_own(lab: Lab) -> None:
    broken = lab.host("lab-02")
    site = f"server {{ listen {broken.nginx_listen}; location / {{ return 500; }} }}\n"
    (broken.nginx_conf_dir / "site.conf").write_text(site)
    _reload(broken)
    errors = 'sum by (instance) (rate(lab_http_requests_total{status=~"5.."}[5s]))'
    try:
        assert _eventually(lambda: _by_instance(lab, errors).get(_web(broken), 0) > 0)
        rates = _by_instance(lab, errors)
        others = {_web(h) for h in lab.hosts} - {_web(broken)}
        assert all(rates.get(instance, 0) == 0 for instance in others), rates
    finally:
        fleet.reset_sites(lab)


def _reload(host: LabHost) -> None:
    subprocess.run(list(host.nginx_reload_cmd), check=True, capture_output=True)  # noqa: S603


def test_lab_status_shows_the_monitoring_and_its_url(lab: Lab, cli: Callable[..., Run]) -> None:
    assert lab.monitoring is not None
    done = cli("lab", "status", "--dir", lab.directory)
    assert done.code == 0, done.out + done.err
    address = lab.monitoring.address
    assert f"prometheus        {address}:19090      up" in done.out
    assert f"traffic           {address}:19100      up" in done.out
    for host in lab.hosts:
        assert f"exporter {host.name}   {host.address}:19113" in done.out
    assert done.out.endswith(f"Prometheus: http://{address}:19090\n")


def test_a_stopped_host_fires_lab_host_down(lab: Lab) -> None:
    victim = lab.host("lab-03")
    fleet.stop_host(lab, victim.name)
    try:

        def firing() -> bool:
            alerts = _api(lab, "/api/v1/alerts")["alerts"]
            return any(
                a["labels"].get("alertname") == "LabHostDown"
                and a["labels"].get("host") == "lab-03"
                and a["state"] == "firing"
                for a in alerts
            )

        assert _eventually(firing, timeout=20)
        failed = _by_instance(lab, 'lab_http_requests_total{status="error"}')
        assert set(failed) == {_web(victim)}
    finally:
        fleet.up(lab.directory, hosts=3, first_address=lab.hosts[0].address)
    assert _eventually(lambda: _by_instance(lab, "nginx_up")[f"{victim.address}:19113"] == 1)


def test_a_busy_prometheus_port_is_one_error_line(plain_lab: Lab, cli: Callable[..., Run]) -> None:
    address = plain_lab.hosts[0].address.rsplit(".", 1)[0] + ".10"
    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind((address, 19090))
        blocker.listen()
        done = cli(
            "lab", "up", "--dir", plain_lab.directory, "--hosts", "1",
            "--first-address", plain_lab.hosts[0].address, "--monitoring",
        )  # fmt: skip
    assert (done.code, done.out) == (2, "")
    assert done.err == (
        f"cd-checks: error: {address}:19090 (for prometheus) is already taken by a process"
        " this lab did not start (another lab? stop it with `cd-checks lab down --dir ...`)\n"
    )
    assert fleet.load(plain_lab.directory).monitoring is None
    assert not _processes_mentioning(f"{address}:")


def test_up_adds_monitoring_to_a_running_lab_and_down_stops_all_of_it(
    plain_lab: Lab, cli: Callable[..., Run]
) -> None:
    host = plain_lab.hosts[0]
    url = f"http://{host.address.rsplit('.', 1)[0]}.10:19090"
    done = cli(
        "lab", "up", "--dir", plain_lab.directory, "--hosts", "1",
        "--first-address", host.address, "--monitoring",
    )  # fmt: skip
    assert done.code == 0, done.err
    assert done.out.startswith(f"lab: already up in {plain_lab.directory}\n")
    assert (
        f"monitoring:  Prometheus at {url} (started traffic generator, prometheus,"
        " 1 nginx exporter)\n"
    ) in done.out
    assert done.out.endswith(f"  export CD_CHECKS_PROMETHEUS_URL={url}\n")
    monitoring = fleet.load(plain_lab.directory).monitoring
    assert monitoring is not None and monitoring.prometheus_url == url
    pids = [monitoring.prometheus_pid, monitoring.traffic_pid, monitoring.exporters[0].pid]
    assert all(_running(pid) for pid in pids)
    ours = (
        str(plain_lab.directory),
        f"{host.address}:",
        f" {host.address} ",
        url.removeprefix("http://"),
    )
    assert len(_processes_mentioning(*ours)) >= 5  # sshd, nginx, exporter, generator, prometheus

    done = cli("lab", "down", "--dir", plain_lab.directory)
    assert (done.code, done.out) == (0, "lab: stopped lab-01, monitoring\n")
    assert not [pid for pid in pids if _running(pid)]
    assert not _processes_mentioning(*ours)
    assert fleet.load(plain_lab.directory).monitoring is None


def test_missing_monitoring_tools_name_the_debian_packages(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(fleet, "PROMETHEUS", tmp_path / "no-prometheus")
    with pytest.raises(ToolError) as caught:
        fleet.ensure_tools(is_root=False, monitoring=True)
    assert str(caught.value) == (
        "the lab needs Prometheus and its nginx exporter: run `apt-get install -y"
        " --no-install-recommends prometheus prometheus-nginx-exporter` as root"
    )
    fleet.ensure_tools(is_root=False, monitoring=False)  # sshd and nginx alone are there
