"""End-to-end tests of the lab fleet: real sshd, nginx, ssh, ansible and testinfra on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import testinfra
import yaml
from click.testing import CliRunner

from cd_checks import lab as fleet
from cd_checks import processes
from cd_checks.cli.lab import lab as lab_command
from cd_checks.errors import InputError
from cd_checks.lab import Lab
from cd_checks.rollout import inventory
from tests.lab_fixture import lab_fleet


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from lab_fleet(tmp_path_factory, hosts=3)


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
        return response.status, response.read().decode()


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in {"Z", "X"}


def _eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    """nginx reloads asynchronously: old workers may answer for a moment."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _ssh(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    argv = ["ssh", "-F", str(lab.ssh_config), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)  # noqa: S603


@pytest.mark.lab
def test_each_host_serves_its_initial_page(lab: Lab) -> None:
    for host in lab.hosts:
        assert _get(host.url) == (200, f"{host.name} initial\n")
        assert _get(host.url + "healthz") == (200, "ok\n")


@pytest.mark.lab
def test_ssh_by_name_and_address_with_strict_host_key_checking(lab: Lab) -> None:
    assert "StrictHostKeyChecking yes" in lab.ssh_config.read_text()
    by_name = _ssh(lab, "lab-01", "echo", "hello from", "lab-01")
    by_address = _ssh(lab, lab.host("lab-02").address, "echo", "hi")
    assert (by_name.returncode, by_name.stdout) == (0, "hello from lab-01\n"), by_name.stderr
    assert (by_address.returncode, by_address.stdout) == (0, "hi\n"), by_address.stderr


@pytest.mark.lab
def test_ssh_refuses_a_host_key_not_in_known_hosts(lab: Lab) -> None:
    result = _ssh(
        lab, "-o", "UserKnownHostsFile=/dev/null", "-o", "ControlPath=none", "lab-01", "true"
    )
    assert result.returncode == 255
    assert "Host key verification failed" in result.stderr


@pytest.mark.lab
def test_inventory_has_staging_and_production_with_nginx_vars(lab: Lab) -> None:
    inventory = yaml.safe_load(lab.inventory.read_text())["all"]["children"]
    assert list(inventory["staging"]["hosts"]) == ["lab-01", "lab-02"]
    assert list(inventory["production"]["hosts"]) == ["lab-03"]
    lab_03 = inventory["production"]["hosts"]["lab-03"]
    host = lab.host("lab-03")
    assert lab_03["ansible_host"] == host.address
    assert lab_03["ansible_user"] == "root"
    assert lab_03["nginx_conf_dir"] == str(host.nginx_conf_dir)
    assert lab_03["nginx_reload_cmd"][-2:] == ["-s", "reload"]
    assert (host.nginx_conf_dir / "site.conf").read_text().count(f"listen {host.address}:80;") == 1


@pytest.mark.lab
def test_inventory_has_the_groups_of_the_example_change_types(lab: Lab) -> None:
    # examples/cd-checks.yml: nginx -> `web`, patches -> `all:!db`, monitoring -> `monitoring`.
    found = inventory.load(lab.inventory)
    assert found.group("web") == ("lab-01", "lab-02", "lab-03")
    assert found.group("monitoring") == ("lab-03",)
    assert found.group("db") == ()
    rules_dir = Path(found.hosts["lab-03"].vars["prometheus_rules_dir"])
    assert rules_dir == lab.host("lab-03").nginx_prefix.parent / "prometheus" / "rules"
    assert found.hosts["lab-03"].vars["nginx_conf_dir"] == str(lab.host("lab-03").nginx_conf_dir)
    # Every lab host is this machine: the patch playbook records versions there, never apt.
    for name in ("lab-01", "lab-03"):
        packages = Path(found.hosts[name].vars["lab_packages_file"])
        assert packages == lab.host(name).nginx_prefix.parent / "packages.json"


@pytest.mark.lab
def test_ansible_pings_every_host_over_ssh(lab: Lab) -> None:
    environment = {**os.environ, **fleet.lab_environment(lab)}
    argv = ["ansible", "-i", str(lab.inventory), "all", "-m", "ping"]
    result = subprocess.run(  # noqa: S603
        argv,
        env=environment,
        stdin=subprocess.DEVNULL,  # ansible refuses a non-blocking stdin the runner may have
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for host in lab.hosts:
        assert f"{host.name} | SUCCESS" in result.stdout


@pytest.mark.lab
def test_testinfra_reads_a_file_on_a_host(lab: Lab) -> None:
    host = testinfra.get_host("ssh://lab-01", ssh_config=str(lab.ssh_config))
    site = host.file(str(lab.host("lab-01").nginx_conf_dir / "site.conf"))
    assert site.exists
    assert site.contains("lab-01 initial")


@pytest.mark.lab
def test_reload_cmd_applies_a_new_site_and_reset_sites_restores_it(lab: Lab) -> None:
    host = lab.host("lab-02")
    site = (host.nginx_conf_dir / "site.conf").read_text()
    (host.nginx_conf_dir / "site.conf").write_text(site.replace("initial", "changed"))
    subprocess.run(list(host.nginx_test_cmd), check=True, capture_output=True)  # noqa: S603
    subprocess.run(list(host.nginx_reload_cmd), check=True, capture_output=True)  # noqa: S603
    assert _eventually(lambda: _get(host.url)[1] == "lab-02 changed\n")
    fleet.reset_sites(lab)
    assert _eventually(lambda: _get(host.url)[1] == "lab-02 initial\n")


@pytest.mark.lab
def test_status_reports_all_up_and_exits_0(lab: Lab) -> None:
    assert all(s.ssh_up and s.nginx_up for s in fleet.status(lab.directory))
    result = CliRunner().invoke(lab_command, ["status", "--dir", str(lab.directory)])
    assert result.exit_code == 0, result.output
    assert result.output.count(" up    up") == 3


@pytest.mark.lab
def test_up_again_keeps_the_running_processes(lab: Lab) -> None:
    first = lab.hosts[0].address
    argv = ["up", "--dir", str(lab.directory), "--hosts", "3", "--first-address", first]
    result = CliRunner().invoke(lab_command, argv)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"lab: already up in {lab.directory}\n")
    assert f"inventory:   {lab.inventory}\n" in result.output
    assert f"export ANSIBLE_PYTHON_INTERPRETER={fleet.python_interpreter()}\n" in result.output
    again = fleet.load(lab.directory)
    assert [(h.sshd_pid, h.nginx_pid) for h in again.hosts] == [
        (h.sshd_pid, h.nginx_pid) for h in lab.hosts
    ]


@pytest.mark.lab
def test_a_stopped_host_is_reported_down_and_restarted_by_up(lab: Lab) -> None:
    fleet.stop_host(lab, "lab-03")
    host = lab.host("lab-03")
    assert not _running(host.sshd_pid)
    assert not _running(host.nginx_pid)
    result = CliRunner().invoke(lab_command, ["status", "--dir", str(lab.directory)])
    assert result.exit_code == 1
    assert result.output.splitlines()[3].split() == ["lab-03", host.address, "down", "down"]
    with pytest.raises(OSError):
        _get(host.url)
    again = fleet.up(lab.directory, hosts=3, first_address=lab.hosts[0].address)
    assert again.started == ("lab-03",)
    assert _get(host.url) == (200, "lab-03 initial\n")
    # Stopped again through the Lab loaded before the restart: its pids are stale, the
    # new processes must stop all the same (they were left running, and blocked `up`).
    fleet.stop_host(lab, "lab-03")
    restarted = again.host("lab-03")
    assert not _running(restarted.sshd_pid) and not _running(restarted.nginx_pid)
    assert fleet.up(lab.directory, hosts=3, first_address=lab.hosts[0].address).started == (
        "lab-03",
    )
    assert _get(host.url) == (200, "lab-03 initial\n")


@pytest.mark.lab
def test_down_stops_every_process_it_started(tmp_path_factory: pytest.TempPathFactory) -> None:
    fleet_run = lab_fleet(tmp_path_factory, hosts=2)
    lab = next(fleet_run)
    try:
        assert _ssh(lab, "lab-01", "true").returncode == 0  # leaves a ControlPersist session
        pids = [pid for h in fleet.load(lab.directory).hosts for pid in (h.sshd_pid, h.nginx_pid)]
        assert all(_running(pid) for pid in pids)
        result = CliRunner().invoke(lab_command, ["down", "--dir", str(lab.directory)])
        assert result.exit_code == 0
        assert result.output == "lab: stopped lab-01, lab-02\n"
        assert not [pid for pid in pids if _running(pid)]
        assert not any(s.ssh_up or s.nginx_up for s in fleet.status(lab.directory))
        assert fleet.down(lab.directory) == []
    finally:
        fleet_run.close()


def test_load_without_a_lab_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no lab in"):
        fleet.load(tmp_path)


@pytest.mark.parametrize(
    ("hosts", "staging", "first", "message"),
    [
        (3, 4, "127.0.0.11", "--staging must be between 0 and 3"),
        (0, 0, "127.0.0.11", "--hosts must be at least 1"),
        (3, 1, "10.0.0.1", "leave the loopback range"),
        (3, 1, "127.255.255.254", "leave the loopback range"),
        (3, 1, "not-an-address", "bad first address"),
    ],
)
def test_up_rejects_a_bad_shape(
    tmp_path: Path, hosts: int, staging: int, first: str, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        fleet.up(tmp_path, hosts=hosts, staging=staging, first_address=first)
    assert not (tmp_path / "lab.json").exists()


@pytest.mark.lab
def test_a_host_that_stops_answering_fails_ssh_in_seconds_even_over_a_shared_connection(
    lab: Lab,
) -> None:
    host = lab.hosts[-1]
    assert _ssh(lab, host.name, "true").returncode == 0  # a ControlPersist master now exists
    sshd = [p for p in _pids(str(host.sshd_config)) if p > 0]
    family = [*sshd, *(c for p in sshd for c in processes.descendants(p))]
    for pid in family:
        os.kill(pid, signal.SIGSTOP)  # the host hangs: connections stay open, nothing answers
    try:
        started = time.monotonic()
        hung = _ssh(lab, host.name, "true")
        assert hung.returncode == 255
        assert time.monotonic() - started < 29  # ServerAlive 5 s x 2, ConnectTimeout 5 s; not 30
    finally:
        for pid in family:
            os.kill(pid, signal.SIGCONT)
    assert _ssh(lab, host.name, "true").returncode == 0


def _pids(marker: str) -> list[int]:
    found = subprocess.run(
        ["pgrep", "-f", "--", marker],
        capture_output=True,
        text=True,
        check=False,  # noqa: S607
    )
    return [int(p) for p in found.stdout.split()]
