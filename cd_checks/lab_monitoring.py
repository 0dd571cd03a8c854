"""The lab's monitoring stack: Prometheus, an nginx exporter per host and a traffic generator.

`cd-checks lab up --monitoring` calls `start`: Debian's `prometheus` on `<lab net>.10:19090`
(scrape and rule evaluation every second, TSDB under `<lab>/monitoring/data`), one
`prometheus-nginx-exporter` per host on `<host>:19113` reading that host's stub_status
(`<host>:19080`, served by the lab's own nginx.conf), and `python -m cd_checks.lab_traffic`
on `<lab net>.10:19100` sending a few requests a second to every host. Each runs as a daemon
(start-stop-daemon, a pid file and a log under `<lab>/monitoring`); their PIDs go to lab.json
and `stop` ends exactly those processes. It returns once Prometheus is ready and has scraped
every target. Loopback only; no system service or configuration is touched; nothing here
prints or reads `os.environ`.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

import cd_checks
from cd_checks import lab as fleet
from cd_checks.errors import InputError, ToolError

START_STOP_DAEMON = Path("/sbin/start-stop-daemon")
PROMETHEUS_PORT = 19090
TRAFFIC_PORT = 19100
EXPORTER_PORT = 19113
TRAFFIC_RATE = 5.0
RETENTION = "6h"
DIRECTORY = "monitoring"
_READY_TIMEOUT = 30.0
_POLL = 0.1


@dataclass(frozen=True)
class Exporter:
    """The nginx exporter of one lab host."""

    host: str
    address: str
    pid: int

    @property
    def listen(self) -> str:
        return f"{self.address}:{EXPORTER_PORT}"


@dataclass(frozen=True)
class Monitoring:
    """A lab's monitoring processes, where they listen and where their files are."""

    directory: Path
    address: str
    prometheus_pid: int
    traffic_pid: int
    traffic_hosts: tuple[str, ...]
    exporters: tuple[Exporter, ...]
    started: tuple[str, ...] = ()

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.address}:{PROMETHEUS_PORT}"

    @property
    def prometheus_listen(self) -> str:
        return f"{self.address}:{PROMETHEUS_PORT}"

    @property
    def traffic_listen(self) -> str:
        return f"{self.address}:{TRAFFIC_PORT}"

    @property
    def config(self) -> Path:
        return self.directory / "prometheus.yml"

    @property
    def rules(self) -> Path:
        return self.directory / "rules.yml"


@dataclass(frozen=True)
class ComponentStatus:
    """Whether one monitoring process runs and accepts connections."""

    name: str
    listen: str
    up: bool


@dataclass(frozen=True)
class MonitoringStatus:
    prometheus_url: str
    components: tuple[ComponentStatus, ...]

    @property
    def up(self) -> bool:
        return all(c.up for c in self.components)


@dataclass(frozen=True)
class _Daemon:
    """One process to run: what it is (for messages), its argv, marker, port and files."""

    what: str
    argv: tuple[str, ...]
    marker: str
    address: str
    port: int
    pid_file: Path
    log: Path
    chdir: Path


# --- public API ---------------------------------------------------------------------------


def monitoring_address(lab: fleet.Lab) -> str:
    """`<lab net>.10`: the first host's address with the last octet 10."""
    return lab.hosts[0].address.rsplit(".", 1)[0] + ".10"


def from_record(lab_directory: Path, record: object) -> Monitoring | None:
    """The monitoring recorded in lab.json (None when the lab has none)."""
    if record is None:
        return None
    if not isinstance(record, dict):
        raise InputError(f"{lab_directory / fleet.STATE_FILE}: 'monitoring' is not a mapping")
    try:
        return Monitoring(
            directory=lab_directory / DIRECTORY,
            address=str(record["address"]),
            prometheus_pid=int(record["prometheus_pid"]),
            traffic_pid=int(record["traffic_pid"]),
            traffic_hosts=tuple(str(a) for a in record["traffic_hosts"]),
            exporters=tuple(
                Exporter(host=str(e["host"]), address=str(e["address"]), pid=int(e["pid"]))
                for e in record["exporters"]
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"{lab_directory / fleet.STATE_FILE}: bad 'monitoring' record: {exc!r}"
        ) from exc


def to_record(monitoring: Monitoring) -> dict[str, Any]:
    return {
        "address": monitoring.address,
        "prometheus_pid": monitoring.prometheus_pid,
        "traffic_pid": monitoring.traffic_pid,
        "traffic_hosts": list(monitoring.traffic_hosts),
        "exporters": [
            {"host": e.host, "address": e.address, "pid": e.pid} for e in monitoring.exporters
        ],
    }


def start(lab: fleet.Lab, *, timeout: float = _READY_TIMEOUT) -> Monitoring:
    """Start (or complete) the monitoring of `lab`; return once every target is scraped."""
    address = monitoring_address(lab)
    current = _retire_stale(lab, address)
    plan = _plan(lab, current)
    directory = current.directory
    directory.mkdir(parents=True, exist_ok=True)
    for host in lab.hosts:
        fleet.ensure_stub_status(host)
    config_changed = _write_configs(current, lab)
    daemons = plan.to_start(lab)
    for daemon in daemons:
        fleet.refuse_busy_port(daemon.address, daemon.port, daemon.what)
    running = _start_all(lab, plan, daemons)
    if current.prometheus_pid == running.prometheus_pid and config_changed:
        fleet.signal_process(running.prometheus_pid, signal.SIGHUP)
    _wait_ready(running, daemons, lab, timeout=timeout)
    return running


def stop(monitoring: Monitoring) -> bool:
    """Stop the monitoring processes of a lab; return whether any was running."""
    stopped = False
    # generator and Prometheus first: the exporters going away is no outage to record
    for daemon_marker, pid in _recorded_processes(monitoring):
        if fleet.process_alive(pid, daemon_marker):
            fleet.terminate(pid, children_first=False)
            stopped = True
    return stopped


def status(monitoring: Monitoring) -> MonitoringStatus:
    """Each monitoring process: alive (and ours) and accepting connections."""
    components = [
        _component(
            "prometheus",
            monitoring.prometheus_listen,
            monitoring.prometheus_pid,
            _prometheus_marker(monitoring),
        ),
        _component(
            "traffic",
            monitoring.traffic_listen,
            monitoring.traffic_pid,
            _traffic_marker(monitoring.address),
        ),
    ]
    components += [
        _component(f"exporter {e.host}", e.listen, e.pid, _exporter_marker(e.address))
        for e in monitoring.exporters
    ]
    return MonitoringStatus(prometheus_url=monitoring.prometheus_url, components=tuple(components))


def prometheus_config(monitoring: Monitoring, lab: fleet.Lab) -> dict[str, Any]:
    """The Prometheus configuration: the generator (its own `instance` labels) and exporters."""
    nginx_targets = [
        {"targets": [f"{host.address}:{EXPORTER_PORT}"], "labels": {"host": host.name}}
        for host in lab.hosts
    ]
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(monitoring.rules)],
        "scrape_configs": [
            {
                "job_name": "lab-traffic",
                # keep the generator's instance="<host>:80" instead of its own address
                "honor_labels": True,
                "static_configs": [{"targets": [monitoring.traffic_listen]}],
            },
            {"job_name": "lab-nginx", "static_configs": nginx_targets},
        ],
    }


def alert_rules() -> dict[str, Any]:
    """The rules file: one alert, so `alerts:` of a metric gate has a real one to watch."""
    down = {
        "alert": "LabHostDown",
        "expr": "nginx_up == 0",
        "for": "5s",
        "labels": {"severity": "page"},
        "annotations": {
            "summary": "nginx of {{ $labels.host }} does not answer its exporter"
            " ({{ $labels.instance }})",
        },
    }
    return {"groups": [{"name": "cd-checks-lab", "rules": [down]}]}


# --- what to start ------------------------------------------------------------------------


def _retire_stale(lab: fleet.Lab, address: str) -> Monitoring:
    """The recorded monitoring if it still fits the lab's address range, else a blank one."""
    previous = lab.monitoring
    if previous is not None and previous.address == address:
        return previous
    if previous is not None:
        stop(previous)
    return Monitoring(
        directory=lab.directory / DIRECTORY,
        address=address,
        prometheus_pid=0,
        traffic_pid=0,
        traffic_hosts=(),
        exporters=(),
    )


@dataclass(frozen=True)
class _Plan:
    """Which recorded processes stay and which must (re)start for the lab's hosts."""

    current: Monitoring
    kept: dict[str, Exporter]
    addresses: tuple[str, ...]
    keep_traffic: bool
    keep_prometheus: bool

    def to_start(self, lab: fleet.Lab) -> list[_Daemon]:
        current = self.current
        daemons = [
            _exporter_daemon(current, host.name, host.address)
            for host in lab.hosts
            if host.name not in self.kept
        ]
        if not self.keep_traffic:
            daemons.append(_traffic_daemon(current, self.addresses))
        if not self.keep_prometheus:
            daemons.append(_prometheus_daemon(current))
        return daemons


def _plan(lab: fleet.Lab, current: Monitoring) -> _Plan:
    """What to keep; stops the exporters of retired or moved hosts and an outdated generator."""
    wanted = {host.name: host.address for host in lab.hosts}
    kept: dict[str, Exporter] = {}
    for exporter in current.exporters:
        alive = fleet.process_alive(exporter.pid, _exporter_marker(exporter.address))
        if alive and wanted.get(exporter.host) == exporter.address:
            kept[exporter.host] = exporter
        elif alive:
            fleet.terminate(exporter.pid, children_first=False)
    addresses = tuple(host.address for host in lab.hosts)
    traffic_alive = fleet.process_alive(current.traffic_pid, _traffic_marker(current.address))
    keep_traffic = traffic_alive and current.traffic_hosts == addresses
    if traffic_alive and not keep_traffic:
        fleet.terminate(current.traffic_pid, children_first=False)
    return _Plan(
        current=current,
        kept=kept,
        addresses=addresses,
        keep_traffic=keep_traffic,
        keep_prometheus=fleet.process_alive(current.prometheus_pid, _prometheus_marker(current)),
    )


def _start_all(lab: fleet.Lab, plan: _Plan, daemons: Sequence[_Daemon]) -> Monitoring:
    """Start `daemons`, recording each PID in lab.json as soon as it is known."""
    current = plan.current
    running = replace(
        current,
        prometheus_pid=current.prometheus_pid if plan.keep_prometheus else 0,
        traffic_pid=current.traffic_pid if plan.keep_traffic else 0,
        traffic_hosts=plan.addresses,
        exporters=tuple(plan.kept[h.name] for h in lab.hosts if h.name in plan.kept),
    )
    fleet.record_monitoring(lab.directory, to_record(running))
    started: list[str] = []
    for daemon in daemons:
        pid = _start_daemon(daemon)
        running = _with_pid(running, daemon, pid, lab)
        fleet.record_monitoring(lab.directory, to_record(running))
        started.append(daemon.what)
    return replace(running, started=tuple(started))


def _with_pid(running: Monitoring, daemon: _Daemon, pid: int, lab: fleet.Lab) -> Monitoring:
    if daemon.port == PROMETHEUS_PORT:
        return replace(running, prometheus_pid=pid)
    if daemon.port == TRAFFIC_PORT:
        return replace(running, traffic_pid=pid)
    host = next(h for h in lab.hosts if h.address == daemon.address)
    exporters = {e.host: e for e in running.exporters}
    exporters[host.name] = Exporter(host=host.name, address=host.address, pid=pid)
    ordered = tuple(exporters[h.name] for h in lab.hosts if h.name in exporters)
    return replace(running, exporters=ordered)


def _prometheus_daemon(monitoring: Monitoring) -> _Daemon:
    directory = monitoring.directory
    argv = (
        str(fleet.PROMETHEUS),
        f"--config.file={monitoring.config}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--storage.tsdb.retention.time={RETENTION}",
        f"--web.listen-address={monitoring.prometheus_listen}",
    )
    return _Daemon(
        what="prometheus",
        argv=argv,
        marker=_prometheus_marker(monitoring),
        address=monitoring.address,
        port=PROMETHEUS_PORT,
        pid_file=directory / "prometheus.pid",
        log=directory / "prometheus.log",
        chdir=directory,
    )


def _exporter_daemon(monitoring: Monitoring, name: str, address: str) -> _Daemon:
    argv = (
        str(fleet.NGINX_EXPORTER),
        f"--nginx.scrape-uri=http://{address}:{fleet.STUB_STATUS_PORT}/stub_status",
        f"--web.listen-address={address}:{EXPORTER_PORT}",
        # a scrape must answer within Prometheus' 1s scrape timeout
        "--nginx.timeout=500ms",
        # the exporter quits when stub_status does not answer at its start: allow a reload
        "--nginx.retries=10",
        "--nginx.retry-interval=500ms",
    )
    return _Daemon(
        what=f"nginx exporter for {name}",
        argv=argv,
        marker=_exporter_marker(address),
        address=address,
        port=EXPORTER_PORT,
        pid_file=monitoring.directory / f"nginx-exporter-{name}.pid",
        log=monitoring.directory / f"nginx-exporter-{name}.log",
        chdir=monitoring.directory,
    )


def _traffic_daemon(monitoring: Monitoring, addresses: Sequence[str]) -> _Daemon:
    argv = (
        sys.executable,
        "-m",
        "cd_checks.lab_traffic",
        "--listen",
        monitoring.traffic_listen,
        "--rate",
        str(TRAFFIC_RATE),
        "--",
        *addresses,
    )
    return _Daemon(
        what="traffic generator",
        argv=argv,
        marker=_traffic_marker(monitoring.address),
        address=monitoring.address,
        port=TRAFFIC_PORT,
        pid_file=monitoring.directory / "traffic.pid",
        log=monitoring.directory / "traffic.log",
        # `python -m` imports from its working directory: the one holding this package
        chdir=Path(cd_checks.__file__).resolve().parent.parent,
    )


def _prometheus_marker(monitoring: Monitoring) -> str:
    return f"--config.file={monitoring.config} "


def _exporter_marker(address: str) -> str:
    return f"--web.listen-address={address}:{EXPORTER_PORT} "


def _traffic_marker(address: str) -> str:
    return f"--listen {address}:{TRAFFIC_PORT} "


def _recorded_processes(monitoring: Monitoring) -> Iterator[tuple[str, int]]:
    yield _traffic_marker(monitoring.address), monitoring.traffic_pid
    yield _prometheus_marker(monitoring), monitoring.prometheus_pid
    for exporter in monitoring.exporters:
        yield _exporter_marker(exporter.address), exporter.pid


def _component(name: str, listen: str, pid: int, marker: str) -> ComponentStatus:
    address, _, port = listen.rpartition(":")
    up = fleet.process_alive(pid, marker) and fleet.listening(address, int(port))
    return ComponentStatus(name=name, listen=listen, up=up)


# --- files --------------------------------------------------------------------------------


def _write_configs(monitoring: Monitoring, lab: fleet.Lab) -> bool:
    """Write prometheus.yml and rules.yml; return whether either changed."""
    header = "# written by `cd-checks lab up --monitoring`\n"
    wanted = {
        monitoring.config: prometheus_config(monitoring, lab),
        monitoring.rules: alert_rules(),
    }
    changed = False
    for path, content in wanted.items():
        text = header + yaml.safe_dump(content, sort_keys=False, default_flow_style=False)
        if not path.exists() or path.read_text() != text:
            fleet.write_atomic(path, text)
            changed = True
    return changed


# --- processes ----------------------------------------------------------------------------


def _start_daemon(daemon: _Daemon) -> int:
    """Run `daemon` detached (own session, stdin /dev/null, output to its log); its PID."""
    daemon.pid_file.unlink(missing_ok=True)
    daemon.log.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        str(START_STOP_DAEMON),
        "--start",
        "--quiet",
        "--background",
        "--make-pidfile",
        "--pidfile",
        str(daemon.pid_file),
        "--output",
        str(daemon.log),
        "--chdir",
        str(daemon.chdir),
        "--startas",
        daemon.argv[0],
        "--",
        *daemon.argv[1:],
    ]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    except OSError as exc:
        raise ToolError(f"cannot start {daemon.what}: {exc}") from exc
    pid = fleet.read_pid(daemon.pid_file)
    if result.returncode != 0 or not pid:
        detail = result.stderr.strip() or f"exit {result.returncode}"
        raise ToolError(f"cannot start {daemon.what}: {detail} (log: {daemon.log})")
    return pid


def _wait_ready(
    monitoring: Monitoring, daemons: Sequence[_Daemon], lab: fleet.Lab, *, timeout: float
) -> None:
    """Wait until the started daemons listen, Prometheus is ready and every target is up."""
    deadline = time.monotonic() + timeout
    pids = _started_pids(monitoring, daemons)
    pending = "the monitoring processes"
    while time.monotonic() < deadline:
        for daemon in daemons:
            if not fleet.process_alive(pids[daemon.what], daemon.marker):
                raise ToolError(
                    f"{daemon.what} exited: {fleet.tail(daemon.log)} (log: {daemon.log})"
                )
        pending = _pending(monitoring, daemons, lab)
        if not pending:
            return
        time.sleep(_POLL)
    raise ToolError(f"monitoring did not come up within {timeout:g}s: {pending}")


def _started_pids(monitoring: Monitoring, daemons: Sequence[_Daemon]) -> dict[str, int]:
    by_port = {PROMETHEUS_PORT: monitoring.prometheus_pid, TRAFFIC_PORT: monitoring.traffic_pid}
    exporters = {e.address: e.pid for e in monitoring.exporters}
    return {d.what: by_port.get(d.port) or exporters.get(d.address, 0) for d in daemons}


def _pending(monitoring: Monitoring, daemons: Sequence[_Daemon], lab: fleet.Lab) -> str:
    """What is not up yet (empty when everything is)."""
    for daemon in daemons:
        if not fleet.listening(daemon.address, daemon.port):
            where = f"{daemon.address}:{daemon.port}"
            return f"{daemon.what} does not listen on {where} (log: {daemon.log})"
    log = monitoring.directory / "prometheus.log"
    if not _ready(monitoring.prometheus_url):
        return f"Prometheus at {monitoring.prometheus_url} is not ready (log: {log})"
    return _targets_pending(monitoring, lab)


def _ready(url: str) -> bool:
    try:
        with _opener().open(f"{url}/-/ready", timeout=2.0) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


def _targets_pending(monitoring: Monitoring, lab: fleet.Lab) -> str:
    expected = {monitoring.traffic_listen: monitoring.directory / "traffic.log"}
    for host in lab.hosts:
        log = monitoring.directory / f"nginx-exporter-{host.name}.log"
        expected[f"{host.address}:{EXPORTER_PORT}"] = log
    health = _target_health(monitoring.prometheus_url)
    for instance, log in expected.items():
        state, error = health.get(instance, ("unknown", "not scraped yet"))
        if state != "up":
            return (
                f"Prometheus target {instance} is {state}: {error or 'no scrape yet'} (log: {log})"
            )
    return ""


def _target_health(url: str) -> dict[str, tuple[str, str]]:
    """instance -> (health, last error) of Prometheus' active targets."""
    try:
        with _opener().open(f"{url}/api/v1/targets?state=active", timeout=2.0) as response:
            body = json.loads(response.read())
    except (OSError, ValueError):
        return {}
    targets = body.get("data", {}).get("activeTargets", []) if isinstance(body, dict) else []
    return {
        str(t.get("labels", {}).get("instance")): (str(t.get("health")), str(t.get("lastError")))
        for t in targets
        if isinstance(t, dict)
    }


def _opener() -> urllib.request.OpenerDirector:
    # loopback only: a proxy from the environment must not see these requests
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))
