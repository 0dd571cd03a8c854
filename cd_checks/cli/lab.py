"""`cd-checks lab up|down|status`: a local fleet (sshd + nginx per loopback address).

Click options and rendering only; the fleet itself lives in `cd_checks.lab`.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from cd_checks import lab as fleet
from cd_checks.cli import examples
from cd_checks.lab import DEFAULT_DIRECTORY, DEFAULT_FIRST_ADDRESS, HostStatus, Lab
from cd_checks.lab_monitoring import EXPORTER_PORT, Monitoring, MonitoringStatus

_directory_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DIRECTORY,
    show_default=True,
    help="Directory holding the lab's keys, configs, inventory and state.",
)


@click.group(
    epilog=examples(
        "cd-checks lab up --hosts 10      # 10 hosts on 127.0.0.11-20, 2 of them staging",
        "cd-checks lab status",
        "cd-checks lab down               # stops exactly the processes it started",
    )
)
def lab() -> None:
    """Start/stop a local fleet (sshd + nginx on loopback) for rehearsals and tests."""


@lab.command(
    epilog=examples(
        "cd-checks lab up                         # 10 hosts, lab-01 and lab-02 are staging",
        "cd-checks lab up --hosts 3 --monitoring  # + Prometheus on http://127.0.0.10:19090",
        "cd-checks lab up --first-address 127.0.1.11 --dir /tmp/lab2   # a second lab",
    )
)
@_directory_option
@click.option("--hosts", type=click.IntRange(1, 200), default=10, show_default=True)
@click.option(
    "--staging",
    type=click.IntRange(0),
    help="How many of the first hosts form the staging group (default 2, at most --hosts);"
    " the rest are production.",
)
@click.option(
    "--first-address",
    default=DEFAULT_FIRST_ADDRESS,
    show_default=True,
    help="Loopback address of lab-01; the others follow.",
)
@click.option(
    "--monitoring",
    is_flag=True,
    help="Also run Prometheus on <lab net>.10:19090, an nginx exporter per host (:19113)"
    " and a traffic generator (<lab net>.10:19100). Kept by later `lab up`s until `lab down`.",
)
def up(
    directory: Path, hosts: int, staging: int | None, first_address: str, monitoring: bool
) -> None:
    """Start the lab (idempotent: running hosts are kept, dead ones restarted)."""
    staging = min(2, hosts) if staging is None else staging
    running = fleet.up(
        directory,
        hosts=hosts,
        staging=staging,
        first_address=first_address,
        monitoring=monitoring,
    )
    click.echo(_render_up(running))


@lab.command(epilog=examples("cd-checks lab down", "cd-checks lab down --dir /tmp/lab2"))
@_directory_option
def down(directory: Path) -> None:
    """Stop every process the lab started."""
    stopped = fleet.down(directory)
    if stopped:
        click.echo(f"lab: stopped {', '.join(stopped)}")
    else:
        click.echo(f"lab: nothing was running in {directory}")


@lab.command(
    epilog=examples(
        "cd-checks lab status",
        "cd-checks lab status --dir /tmp/lab2 || cd-checks lab up --dir /tmp/lab2",
    )
)
@_directory_option
@click.pass_context
def status(ctx: click.Context, directory: Path) -> None:
    """Show each host's sshd and nginx (and the monitoring); exit 1 unless all are up."""
    statuses = fleet.status(directory)
    click.echo(_render_status(statuses))
    monitoring = fleet.monitoring_status(directory)
    if monitoring is not None:
        click.echo(_render_monitoring_status(monitoring))
    if not all(s.up for s in statuses) or (monitoring is not None and not monitoring.up):
        ctx.exit(1)


def _render_up(running: Lab) -> str:
    if running.started:
        headline = f"lab: started {', '.join(running.started)} in {running.directory}"
    else:
        headline = f"lab: already up in {running.directory}"
    lines = [headline]
    for host in running.hosts:
        group = "staging" if host.name in running.staging else "production"
        lines.append(f"  {host.name}  {host.address:<15}  {group:<10}  {host.url}")
    lines += [
        f"inventory:   {running.inventory}",
        f"ssh_config:  {running.ssh_config}",
        f"known_hosts: {running.known_hosts}",
        f"private key: {running.private_key}",
        "environment for ansible:",
    ]
    environment = fleet.lab_environment(running)
    lines += [f"  export {name}={shlex.quote(value)}" for name, value in environment.items()]
    if running.monitoring is not None:
        lines += _render_monitoring(running.monitoring)
    return "\n".join(lines)


def _render_monitoring(monitoring: Monitoring) -> list[str]:
    return [
        f"monitoring:  Prometheus at {monitoring.prometheus_url} ({_started(monitoring)})",
        f"  traffic generator: http://{monitoring.traffic_listen}/metrics"
        " (lab_http_requests_total, lab_http_request_duration_seconds)",
        f"  nginx exporters:   http://<host address>:{EXPORTER_PORT}/metrics"
        " (nginx_up, nginx_http_requests_total, nginx_connections_*)",
        f"  files:             {monitoring.directory}",
        "environment for metric gates:",
        f"  export CD_CHECKS_PROMETHEUS_URL={shlex.quote(monitoring.prometheus_url)}",
    ]


def _started(monitoring: Monitoring) -> str:
    if not monitoring.started:
        return "already up"
    exporters = [name for name in monitoring.started if name.startswith("nginx exporter")]
    others = [name for name in monitoring.started if name not in exporters]
    if exporters:
        others.append(f"{len(exporters)} nginx exporter{'s' if len(exporters) > 1 else ''}")
    return "started " + ", ".join(others)


def _render_status(statuses: list[HostStatus]) -> str:
    lines = [f"{'HOST':<8}  {'ADDRESS':<15}  {'SSH':<4}  NGINX"]
    for s in statuses:
        ssh, nginx = _word(s.ssh_up), _word(s.nginx_up)
        lines.append(f"{s.name:<8}  {s.address:<15}  {ssh:<4}  {nginx}")
    return "\n".join(lines)


def _render_monitoring_status(monitoring: MonitoringStatus) -> str:
    lines = ["", f"{'MONITORING':<16}  {'LISTEN':<21}  STATE"]
    for c in monitoring.components:
        lines.append(f"{c.name:<16}  {c.listen:<21}  {_word(c.up)}")
    lines.append(f"Prometheus: {monitoring.prometheus_url}")
    return "\n".join(lines)


def _word(up: bool) -> str:
    return "up" if up else "down"
