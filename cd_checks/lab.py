"""A local fleet for rehearsals, the demo and the tests: sshd and nginx per loopback address.

`up` starts hosts `lab-01`, `lab-02`, ... on 127.0.0.11, 127.0.0.12, ...: each has its own
sshd on :22 (own host key) and its own nginx on :80 (own prefix, own `conf.d`), all files
under one directory. It writes an Ansible inventory, an `ssh_config` and a `known_hosts`
there, and records the PIDs it started in `lab.json`. `down` and `stop_host` stop exactly
those processes (and their descendants), never anything else. With `monitoring=True` it
also starts Prometheus, nginx exporters and a traffic generator (`cd_checks.lab_monitoring`).
Root's `~/.ssh` and the system's sshd/nginx configuration are never touched. Nothing here
prints or reads `os.environ`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from cd_checks import lab_monitoring, processes, state_dir
from cd_checks.errors import InputError, ToolError

SSHD = Path("/usr/sbin/sshd")
NGINX = Path("/usr/sbin/nginx")
SSH_KEYGEN = Path("/usr/bin/ssh-keygen")
PACKAGES = ("openssh-server", "nginx-light")
PROMETHEUS = Path("/usr/bin/prometheus")
NGINX_EXPORTER = Path("/usr/bin/prometheus-nginx-exporter")
MONITORING_PACKAGES = ("prometheus", "prometheus-nginx-exporter")
DEFAULT_DIRECTORY = Path(".cd-checks/lab")
DEFAULT_FIRST_ADDRESS = "127.0.0.11"
STATE_FILE = "lab.json"
SSH_PORT = 22
HTTP_PORT = 80
# nginx's stub_status for the exporter, in a server of nginx.conf that conf.d cannot replace
STUB_STATUS_PORT = 19080
_PRIVSEP_DIR = Path("/run/sshd")
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0
# sockaddr_un holds 108 bytes; ssh binds "<ControlPath>.<16 random chars>" before renaming.
_SOCKET_PATH_MAX = 107 - 17
_CONTROL_NAME = "cm-%C"
_CONTROL_NAME_LEN = len("cm-") + 40


@dataclass(frozen=True)
class LabHost:
    """One host of the fleet: its address, its nginx directories and the PIDs running it."""

    name: str
    address: str
    nginx_prefix: Path
    nginx_conf_dir: Path
    sshd_pid: int
    nginx_pid: int

    @property
    def url(self) -> str:
        return f"http://{self.address}/"

    @property
    def nginx_listen(self) -> str:
        return f"{self.address}:{HTTP_PORT}"

    @property
    def nginx_reload_cmd(self) -> tuple[str, ...]:
        return (*_nginx_argv(self.nginx_prefix), "-s", "reload")

    @property
    def nginx_test_cmd(self) -> tuple[str, ...]:
        return (*_nginx_argv(self.nginx_prefix), "-t")

    @property
    def sshd_config(self) -> Path:
        return self.nginx_prefix.parent / "ssh" / "sshd_config"


@dataclass(frozen=True)
class Lab:
    """A fleet on disk: its hosts and the files a playbook or testinfra needs to reach them."""

    directory: Path
    hosts: tuple[LabHost, ...]
    inventory: Path
    ssh_config: Path
    known_hosts: Path
    private_key: Path
    staging: tuple[str, ...] = ()
    started: tuple[str, ...] = ()
    monitoring: lab_monitoring.Monitoring | None = None

    @property
    def production(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.hosts if h.name not in self.staging)

    def host(self, name: str) -> LabHost:
        for host in self.hosts:
            if host.name == name:
                return host
        raise InputError(f"no host {name!r} in the lab at {self.directory}")


@dataclass(frozen=True)
class HostStatus:
    """Whether one host's sshd and nginx are running and accepting connections."""

    name: str
    address: str
    ssh_up: bool
    nginx_up: bool

    @property
    def up(self) -> bool:
        return self.ssh_up and self.nginx_up


@dataclass(frozen=True)
class _Files:
    """Where a lab keeps its shared files."""

    directory: Path

    @property
    def state(self) -> Path:
        return self.directory / STATE_FILE

    @property
    def inventory(self) -> Path:
        return self.directory / "inventory.yml"

    @property
    def ssh_config(self) -> Path:
        return self.directory / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        return self.directory / "known_hosts"

    @property
    def private_key(self) -> Path:
        return self.directory / "id_ed25519"

    @property
    def authorized_keys(self) -> Path:
        return self.directory / "authorized_keys"

    @property
    def control_dir(self) -> Path:
        """Where ssh's ControlPath sockets live: the lab directory unless its path is too long."""
        if len(str(self.directory)) + 1 + _CONTROL_NAME_LEN <= _SOCKET_PATH_MAX:
            return self.directory
        digest = hashlib.sha1(str(self.directory).encode(), usedforsecurity=False).hexdigest()
        return Path("/tmp") / f"cd-checks-lab-{digest[:12]}"  # noqa: S108 - fixed, short path

    def host_dir(self, name: str) -> Path:
        return self.directory / "hosts" / name


# --- public API ---------------------------------------------------------------------------


def up(
    directory: Path,
    *,
    hosts: int = 10,
    staging: int = 2,
    first_address: str = DEFAULT_FIRST_ADDRESS,
    monitoring: bool = False,
) -> Lab:
    """Start (or complete) a lab of `hosts` hosts, the first `staging` in group staging.

    With `monitoring` (or when the lab already has it) its monitoring stack is started or
    brought in line with the hosts too."""
    addresses = _addresses(first_address, hosts)
    if not 0 <= staging <= hosts:
        raise InputError(f"--staging must be between 0 and {hosts}, got {staging}")
    ensure_tools(is_root=os.geteuid() == 0, monitoring=monitoring)
    files = _Files(directory.resolve())
    state_dir.make_dirs(files.directory)
    _PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    _ensure_client_key(files)
    records = _retire_extra_hosts(files, addresses)
    started: list[str] = []
    for index, address in enumerate(addresses, start=1):
        name = f"lab-{index:02d}"
        record, was_started = _ensure_host(files, name, address, records.get(name))
        records[name] = record
        _save_state(files, records, staging=staging)
        if was_started:
            started.append(name)
    lab = load(files.directory)
    _write_client_files(lab, files)
    if monitoring or lab.monitoring is not None:
        ensure_tools(is_root=os.geteuid() == 0, monitoring=True)
        lab = replace(lab, monitoring=lab_monitoring.start(lab))
    return replace(lab, started=tuple(started))


def load(directory: Path) -> Lab:
    """The lab recorded in `directory`/lab.json."""
    files = _Files(directory.resolve())
    state = _read_state(files)
    try:
        hosts = tuple(_lab_host(files, record) for record in state["hosts"])
        staging = tuple(host.name for host in hosts[: int(state["staging"])])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{files.state} is not a lab state file: {exc!r}") from exc
    if not hosts:
        raise InputError(f"{files.state} lists no hosts")
    return Lab(
        directory=files.directory,
        hosts=hosts,
        inventory=files.inventory,
        ssh_config=files.ssh_config,
        known_hosts=files.known_hosts,
        private_key=files.private_key,
        staging=staging,
        monitoring=lab_monitoring.from_record(files.directory, state.get("monitoring")),
    )


def status(directory: Path) -> list[HostStatus]:
    """Each host's sshd and nginx: process alive and port accepting connections."""
    return [_host_status(host) for host in load(directory).hosts]


def monitoring_status(directory: Path) -> lab_monitoring.MonitoringStatus | None:
    """The lab's monitoring processes (None when the lab has no monitoring)."""
    monitoring = load(directory).monitoring
    return None if monitoring is None else lab_monitoring.status(monitoring)


def down(directory: Path) -> list[str]:
    """Stop every process the lab started; return the names of hosts that were running,
    and "monitoring" when any of its monitoring processes was."""
    lab = load(directory)
    files = _Files(lab.directory)
    watched = lab.monitoring is not None and lab_monitoring.stop(lab.monitoring)
    record_monitoring(lab.directory, None)
    stopped = [host.name for host in lab.hosts if _stop_host_processes(host)]
    _save_state(
        files,
        {h.name: _record(h.name, h.address, 0, 0) for h in lab.hosts},
        staging=len(lab.staging),
    )
    _remove_runtime_files(lab, files)
    return [*stopped, "monitoring"] if watched else stopped


def stop_host(lab: Lab, name: str) -> None:
    """Stop one host's sshd and nginx, as if the machine went down."""
    lab.host(name)  # an unknown name is an error before anything is touched
    files = _Files(lab.directory)
    state = _read_state(files)
    records = {r["name"]: r for r in state["hosts"]}
    # The pids of the lab's state now, not of `lab` as it was loaded: a host restarted
    # since (`up` again) runs under new pids, and the old ones would stop nothing.
    _stop_host_processes(_lab_host(files, records[name]))
    records[name] = _record(name, records[name]["address"], 0, 0)
    _save_state(files, records, staging=state["staging"])


def reset_sites(lab: Lab) -> None:
    """Put every host's initial site back in conf.d (dropping other files) and reload nginx."""
    for host in lab.hosts:
        for extra in host.nginx_conf_dir.glob("*.conf"):
            extra.unlink()
        site = host.nginx_conf_dir / "site.conf"
        site.write_text(initial_site_config(host.name, host.nginx_listen))
        if _nginx_alive(host):
            _run_checked(list(host.nginx_reload_cmd), what=f"nginx reload on {host.name}")


def lab_environment(lab: Lab) -> dict[str, str]:
    """Environment variables for ansible against this lab (ansible.cfg is ignored in
    world-writable directories, so the settings travel in the environment)."""
    ssh_args = f"-F {shlex.quote(str(lab.ssh_config))} -o ControlMaster=auto -o ControlPersist=60s"
    return {
        "ANSIBLE_INVENTORY": str(lab.inventory),
        "ANSIBLE_PYTHON_INTERPRETER": python_interpreter(),
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_SSH_ARGS": ssh_args,
        "ANSIBLE_HOST_KEY_CHECKING": "True",
    }


def python_interpreter() -> str:
    """The Python a lab host (this machine) runs Ansible modules with."""
    system = Path("/usr/bin/python3")
    return str(system) if system.exists() else sys.executable


def ensure_tools(*, is_root: bool, monitoring: bool = False) -> None:
    """Install Debian's openssh-server and nginx-light if missing (root only); with
    `monitoring`, prometheus and prometheus-nginx-exporter too."""
    _ensure_packages(PACKAGES, (SSHD, NGINX, SSH_KEYGEN), "sshd and nginx", is_root=is_root)
    if monitoring:
        tools = (PROMETHEUS, NGINX_EXPORTER, lab_monitoring.START_STOP_DAEMON)
        what = "Prometheus and its nginx exporter"
        _ensure_packages(MONITORING_PACKAGES, tools, what, is_root=is_root)


def _ensure_packages(
    packages: tuple[str, ...], tools: tuple[Path, ...], what: str, *, is_root: bool
) -> None:
    if all(path.exists() for path in tools):
        return
    wanted = " ".join(packages)
    if not is_root:
        raise ToolError(
            f"the lab needs {what}: run"
            f" `apt-get install -y --no-install-recommends {wanted}` as root"
        )
    install = [
        "env", "DEBIAN_FRONTEND=noninteractive",
        "apt-get", "install", "-y", "--no-install-recommends", *packages,
    ]  # fmt: skip
    if _run_quiet(install) != 0:
        _run_quiet(["apt-get", "update"])
        if _run_quiet(install) != 0:
            raise ToolError(f"could not install {wanted} with apt-get")
    missing = [str(path) for path in tools if not path.exists()]
    if missing:
        raise ToolError(f"{wanted} installed, but {', '.join(missing)} is still missing")


# --- hosts --------------------------------------------------------------------------------


def _addresses(first_address: str, hosts: int) -> list[str]:
    try:
        first = ipaddress.IPv4Address(first_address)
    except ipaddress.AddressValueError as exc:
        raise InputError(f"bad first address {first_address!r}: {exc}") from exc
    if hosts < 1:
        raise InputError(f"--hosts must be at least 1, got {hosts}")
    last = first + (hosts - 1) if int(first) + hosts - 1 <= 0xFFFFFFFF else None
    loopback = ipaddress.IPv4Network("127.0.0.0/8")
    if first not in loopback or last is None or last not in loopback:
        raise InputError(f"{hosts} hosts from {first_address} leave the loopback range 127.0.0.0/8")
    return [str(first + i) for i in range(hosts)]


def _retire_extra_hosts(files: _Files, addresses: list[str]) -> dict[str, dict[str, Any]]:
    """Previous records still wanted; stop hosts the new shape drops or moves."""
    if not files.state.exists():
        return {}
    wanted = {f"lab-{i:02d}": a for i, a in enumerate(addresses, start=1)}
    kept: dict[str, dict[str, Any]] = {}
    lab = load(files.directory)
    for host in lab.hosts:
        if wanted.get(host.name) == host.address:
            kept[host.name] = _record(host.name, host.address, host.sshd_pid, host.nginx_pid)
        else:
            _stop_host_processes(host)
    return kept


def _ensure_host(
    files: _Files, name: str, address: str, record: dict[str, Any] | None
) -> tuple[dict[str, Any], bool]:
    """Make sure one host runs; return its record and whether anything was started."""
    host = _lab_host(files, record or _record(name, address, 0, 0))
    sshd_pid, nginx_pid, started = host.sshd_pid, host.nginx_pid, False
    if not _sshd_alive(host):
        _write_sshd_files(files, host)
        sshd_pid, started = _start_sshd(host), True
    if not _nginx_alive(host):
        _write_nginx_files(host)
        try:
            nginx_pid, started = _start_nginx(host), True
        except ToolError:
            if started:  # the sshd started a moment ago is in no record yet: never leak it
                terminate(sshd_pid, children_first=True)
            raise
    return _record(name, address, sshd_pid, nginx_pid), started


def _lab_host(files: _Files, record: dict[str, Any]) -> LabHost:
    prefix = files.host_dir(record["name"]) / "nginx"
    return LabHost(
        name=record["name"],
        address=record["address"],
        nginx_prefix=prefix,
        nginx_conf_dir=prefix / "conf.d",
        sshd_pid=int(record["sshd_pid"]),
        nginx_pid=int(record["nginx_pid"]),
    )


def _record(name: str, address: str, sshd_pid: int, nginx_pid: int) -> dict[str, Any]:
    return {"name": name, "address": address, "sshd_pid": sshd_pid, "nginx_pid": nginx_pid}


def _host_status(host: LabHost) -> HostStatus:
    return HostStatus(
        name=host.name,
        address=host.address,
        ssh_up=_sshd_alive(host),
        nginx_up=_nginx_alive(host),
    )


def _sshd_alive(host: LabHost) -> bool:
    return process_alive(host.sshd_pid, _sshd_marker(host)) and listening(host.address, SSH_PORT)


def _nginx_alive(host: LabHost) -> bool:
    return process_alive(host.nginx_pid, _nginx_marker(host)) and listening(host.address, HTTP_PORT)


def _sshd_marker(host: LabHost) -> str:
    return f"-f {host.sshd_config} "


def _nginx_marker(host: LabHost) -> str:
    return f"-p {host.nginx_prefix}/ "


# --- sshd ---------------------------------------------------------------------------------


def _write_sshd_files(files: _Files, host: LabHost) -> None:
    ssh_dir = host.sshd_config.parent
    ssh_dir.mkdir(parents=True, exist_ok=True)
    host_key = ssh_dir / "ssh_host_ed25519_key"
    if not host_key.exists():
        _keygen(host_key, comment=f"{host.name} host key")
    host.sshd_config.write_text(_sshd_config_text(files, host, host_key))


def _sshd_config_text(files: _Files, host: LabHost, host_key: Path) -> str:
    ssh_dir = host.sshd_config.parent
    options = [
        ("ListenAddress", f"{host.address}:{SSH_PORT}"),
        ("HostKey", _quoted(host_key)),
        ("PidFile", _quoted(ssh_dir / "sshd.pid")),
        ("AuthorizedKeysFile", _quoted(files.authorized_keys)),
        ("StrictModes", "no"),
        ("UsePAM", "no"),
        ("PermitRootLogin", "prohibit-password"),
        ("PasswordAuthentication", "no"),
        ("KbdInteractiveAuthentication", "no"),
        ("MaxStartups", "100:30:200"),
        ("UseDNS", "no"),
        ("PrintMotd", "no"),
        ("Subsystem", "sftp internal-sftp"),
    ]
    header = f"# {host.name}: written by `cd-checks lab up`\n"
    return header + "".join(f"{key} {value}\n" for key, value in options)


def _start_sshd(host: LabHost) -> int:
    ssh_dir = host.sshd_config.parent
    pid_file = ssh_dir / "sshd.pid"
    pid_file.unlink(missing_ok=True)
    refuse_busy_port(host.address, SSH_PORT, host.name)
    log = ssh_dir / "sshd.log"
    argv = [str(SSHD), "-f", str(host.sshd_config), "-E", str(log)]
    _start_daemon(argv, log, what=f"sshd for {host.name}")
    return _wait_for_daemon(pid_file, host.address, SSH_PORT, log, what=f"sshd for {host.name}")


# --- nginx --------------------------------------------------------------------------------


def _nginx_argv(prefix: Path) -> tuple[str, ...]:
    return (str(NGINX), "-p", f"{prefix}/", "-c", "nginx.conf", "-e", "logs/error.log")


def _write_nginx_files(host: LabHost) -> None:
    prefix = host.nginx_prefix
    for sub in ("conf.d", "logs", "tmp"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    write_atomic(prefix / "nginx.conf", _nginx_conf_text(host))
    site = host.nginx_conf_dir / "site.conf"
    if not site.exists():
        site.write_text(initial_site_config(host.name, host.nginx_listen))


def _nginx_conf_text(host: LabHost) -> str:
    return _NGINX_CONF.format(name=host.name, stub_status=f"{host.address}:{STUB_STATUS_PORT}")


def ensure_stub_status(host: LabHost) -> None:
    """Make a running host serve stub_status (a lab started before it existed lacks it)."""
    if not _nginx_alive(host) or listening(host.address, STUB_STATUS_PORT):
        return
    write_atomic(host.nginx_prefix / "nginx.conf", _nginx_conf_text(host))
    _run_checked(list(host.nginx_reload_cmd), what=f"nginx reload on {host.name}")
    deadline = time.monotonic() + _START_TIMEOUT
    while not listening(host.address, STUB_STATUS_PORT):
        if time.monotonic() > deadline:
            error_log = host.nginx_prefix / "logs" / "error.log"
            raise ToolError(
                f"nginx of {host.name} does not serve stub_status on"
                f" {host.address}:{STUB_STATUS_PORT}: {tail(error_log)}"
            )
        time.sleep(0.05)


def initial_site_config(name: str, listen: str) -> str:
    """The site every lab host serves until a playbook replaces conf.d/site.conf."""
    return _SITE_CONF.format(name=name, listen=listen)


_NGINX_CONF = """\
# {name}: written by `cd-checks lab up`; sites live in conf.d/*.conf
worker_processes 1;
pid nginx.pid;
error_log logs/error.log;

events {{
    worker_connections 128;
}}

http {{
    access_log logs/access.log;
    client_body_temp_path tmp/client_body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    default_type text/plain;
    include conf.d/*.conf;

    # for the lab's Prometheus nginx exporter; a site in conf.d cannot replace it
    server {{
        listen {stub_status};
        access_log off;
        location = /stub_status {{
            stub_status;
        }}
        location / {{
            return 404;
        }}
    }}
}}
"""

_SITE_CONF = """\
server {{
    listen {listen};
    server_name {name};

    location = /healthz {{
        return 200 "ok\\n";
    }}

    location / {{
        return 200 "{name} initial\\n";
    }}
}}
"""


def _start_nginx(host: LabHost) -> int:
    pid_file = host.nginx_prefix / "nginx.pid"
    pid_file.unlink(missing_ok=True)
    refuse_busy_port(host.address, HTTP_PORT, host.name)
    log = host.nginx_prefix / "logs" / "startup.log"
    _start_daemon([*_nginx_argv(host.nginx_prefix), "-q"], log, what=f"nginx for {host.name}")
    error_log = host.nginx_prefix / "logs" / "error.log"
    return _wait_for_daemon(
        pid_file, host.address, HTTP_PORT, error_log, what=f"nginx for {host.name}"
    )


# --- processes ----------------------------------------------------------------------------


def _start_daemon(argv: list[str], log: Path, *, what: str) -> None:
    """Run a self-daemonizing server; its early errors go to `log` (nginx keeps stderr open)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as sink:
        try:
            code = subprocess.run(  # noqa: S603 - fixed argument list
                argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, check=False
            ).returncode
        except OSError as exc:
            raise ToolError(f"cannot start {what}: {exc}") from exc
    if code != 0:
        raise ToolError(f"{what} failed to start (exit {code}): {tail(log)}")


def _wait_for_daemon(pid_file: Path, address: str, port: int, log: Path, *, what: str) -> int:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        pid = read_pid(pid_file)
        if pid and listening(address, port):
            return pid
        time.sleep(0.02)
    raise ToolError(f"{what} did not come up on {address}:{port}: {tail(log)}")


def read_pid(pid_file: Path) -> int:
    try:
        text = pid_file.read_text().strip()
    except OSError:
        return 0
    return int(text) if text.isdigit() else 0


def refuse_busy_port(address: str, port: int, name: str) -> None:
    if listening(address, port):
        raise ToolError(
            f"{address}:{port} (for {name}) is already taken by a process this lab did not start"
            " (another lab? stop it with `cd-checks lab down --dir ...`)"
        )


def listening(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1.0):
            return True
    except OSError:
        return False


def process_alive(pid: int, marker: str) -> bool:
    """Whether `pid` runs and is the process we started (its command line names our file)."""
    if pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    running = processes.state(stat) not in {"Z", "X"}
    return running and marker in cmdline.replace(b"\0", b" ").decode(errors="replace") + " "


def terminate(pid: int, *, children_first: bool) -> None:
    try:
        processes.terminate(pid, children_first=children_first, timeout=_STOP_TIMEOUT)
    except processes.ProcessError as exc:
        raise ToolError(str(exc)) from None


signal_process = processes.signal_process


def _stop_host_processes(host: LabHost) -> bool:
    """Stop a host's sshd (sessions first) and nginx; return whether either was running."""
    sshd = process_alive(host.sshd_pid, _sshd_marker(host))
    nginx = process_alive(host.nginx_pid, _nginx_marker(host))
    if sshd:
        terminate(host.sshd_pid, children_first=True)
    if nginx:
        # nginx's master stops its workers; signalling workers would only make it respawn them
        terminate(host.nginx_pid, children_first=False)
    return sshd or nginx


# --- files --------------------------------------------------------------------------------


def _ensure_client_key(files: _Files) -> None:
    if not files.private_key.exists():
        _keygen(files.private_key, comment="cd-checks lab client")
    public = files.private_key.with_name(files.private_key.name + ".pub").read_text()
    files.authorized_keys.write_text(public)


def _keygen(path: Path, *, comment: str) -> None:
    argv = [str(SSH_KEYGEN), "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)]
    _run_checked(argv, what=f"ssh-keygen for {path}")


def _run_checked(argv: list[str], *, what: str) -> None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    except OSError as exc:
        raise ToolError(f"cannot run {what}: {exc}") from exc
    if result.returncode != 0:
        raise ToolError(f"{what} failed (exit {result.returncode}): {result.stderr.strip()}")


def _write_client_files(lab: Lab, files: _Files) -> None:
    control_dir = files.control_dir
    control_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(files.inventory, inventory_text(lab))
    write_atomic(files.ssh_config, _ssh_config_text(lab, control_dir))
    write_atomic(files.known_hosts, "".join(_known_hosts_lines(lab)))


def inventory_text(lab: Lab) -> str:
    """The Ansible inventory (YAML): groups staging and production with per-host nginx vars,
    `web` (both of them), `monitoring` (the last host, with its `prometheus_rules_dir`) and
    an empty `db`, so each change type of the example repository has its hosts on the lab."""
    groups: dict[str, Any] = {"staging": {"hosts": {}}, "production": {"hosts": {}}}
    for host in lab.hosts:
        group = "staging" if host.name in lab.staging else "production"
        groups[group]["hosts"][host.name] = _host_vars(lab, host)
    groups["web"] = {"children": {"staging": None, "production": None}}
    # No databases on the lab; the empty group keeps patterns such as `all:!db` valid.
    groups["db"] = {}
    if lab.hosts:
        last = lab.hosts[-1]
        # The host's lab directory (its nginx prefix's parent) holds its Prometheus rules.
        rules_dir = str(last.nginx_prefix.parent / "prometheus" / "rules")
        groups["monitoring"] = {"hosts": {last.name: {"prometheus_rules_dir": rules_dir}}}
    text: str = yaml.safe_dump(
        {"all": {"children": groups}}, sort_keys=False, default_flow_style=False
    )
    return "# written by `cd-checks lab up`\n" + text


def _host_vars(lab: Lab, host: LabHost) -> dict[str, Any]:
    return {
        "ansible_host": host.address,
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(lab.private_key),
        "ansible_python_interpreter": python_interpreter(),
        "nginx_prefix": str(host.nginx_prefix),
        "nginx_conf_dir": str(host.nginx_conf_dir),
        "nginx_listen": host.nginx_listen,
        "nginx_reload_cmd": list(host.nginx_reload_cmd),
        "nginx_test_cmd": list(host.nginx_test_cmd),
        # Every lab host is this machine: a playbook must never install, downgrade or
        # reboot for real here. The example's patch playbook records the versions it
        # would install in this file instead, and its health tests read them back.
        "lab_packages_file": str(host.nginx_prefix.parent / "packages.json"),
    }


def _ssh_config_text(lab: Lab, control_dir: Path) -> str:
    blocks = [f"# written by `cd-checks lab up` for the lab in {lab.directory}\n"]
    for host in lab.hosts:
        options = [
            ("HostName", host.address),
            ("Port", str(SSH_PORT)),
            ("User", "root"),
            ("IdentityFile", _ssh_path(lab.private_key)),
            ("IdentitiesOnly", "yes"),
            ("UserKnownHostsFile", _ssh_path(lab.known_hosts)),
            ("StrictHostKeyChecking", "yes"),
            ("BatchMode", "yes"),
            ("ControlMaster", "auto"),
            ("ControlPath", _quoted(Path(str(control_dir).replace("%", "%%")) / _CONTROL_NAME)),
            ("ControlPersist", "60s"),
            # A host that stops answering (fault injection: its sshd SIGSTOPped) fails a
            # connection in seconds, also one reusing a shared master connection.
            ("ConnectTimeout", "5"),
            ("ServerAliveInterval", "5"),
            ("ServerAliveCountMax", "2"),
        ]
        body = "".join(f"    {key} {value}\n" for key, value in options)
        blocks.append(f"\nHost {host.name} {host.address}\n{body}")
    return "".join(blocks)


def _known_hosts_lines(lab: Lab) -> Iterator[str]:
    for host in lab.hosts:
        public = host.sshd_config.parent / "ssh_host_ed25519_key.pub"
        key_type, key = public.read_text().split()[:2]
        yield f"{host.name},{host.address} {key_type} {key}\n"


def _ssh_path(path: Path) -> str:
    return _quoted(Path(str(path).replace("%", "%%")))


def _quoted(path: Path) -> str:
    if '"' in str(path) or "\n" in str(path):
        raise InputError(f"the lab directory path cannot contain quotes or newlines: {path}")
    return f'"{path}"'


def write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def _remove_runtime_files(lab: Lab, files: _Files) -> None:
    for host in lab.hosts:
        (host.sshd_config.parent / "sshd.pid").unlink(missing_ok=True)
        (host.nginx_prefix / "nginx.pid").unlink(missing_ok=True)
        shutil.rmtree(host.nginx_prefix / "tmp", ignore_errors=True)
    control_dir = files.control_dir
    for socket_path in control_dir.glob("cm-*"):
        socket_path.unlink(missing_ok=True)
    if control_dir != files.directory:
        shutil.rmtree(control_dir, ignore_errors=True)


# --- state --------------------------------------------------------------------------------


def _read_state(files: _Files) -> dict[str, Any]:
    try:
        state = json.loads(files.state.read_text())
    except FileNotFoundError as exc:
        raise InputError(
            f"no lab in {files.directory} (start one with `cd-checks lab up`)"
        ) from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {files.state}: {exc}") from exc
    if not isinstance(state, dict) or not isinstance(state.get("hosts"), list):
        raise InputError(f"{files.state} is not a lab state file")
    return state


def _save_state(files: _Files, records: dict[str, dict[str, Any]], *, staging: int) -> None:
    """Write the hosts' records, keeping the monitoring record already there."""
    ordered = sorted(records.values(), key=lambda r: int(r["name"].rsplit("-", 1)[1]))
    state: dict[str, Any] = {"version": 1, "staging": staging, "hosts": ordered}
    if files.state.exists():
        monitoring = _read_state(files).get("monitoring")
        if monitoring is not None:
            state["monitoring"] = monitoring
    write_atomic(files.state, json.dumps(state, indent=2) + "\n")


def record_monitoring(directory: Path, record: dict[str, Any] | None) -> None:
    """Record the monitoring processes (their PIDs) in lab.json; None removes the record."""
    files = _Files(directory.resolve())
    state = _read_state(files)
    if record is None:
        state.pop("monitoring", None)
    else:
        state["monitoring"] = record
    write_atomic(files.state, json.dumps(state, indent=2) + "\n")


def _run_quiet(argv: list[str]) -> int:
    try:
        return subprocess.run(argv, capture_output=True, check=False).returncode  # noqa: S603
    except OSError:
        return 127


def tail(log: Path, lines: int = 3) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return f"(no log at {log})"
    return " | ".join(text[-lines:]) or f"(empty log {log})"
