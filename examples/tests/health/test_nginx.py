"""Health tests for the example site, run by `cd-checks rollout` with testinfra after each wave.

Each test runs once per host of the wave (testinfra's `host` fixture, ssh
backend). The host's own address is the server side of the ssh connection,
so the same tests work on a real fleet (nginx on 0.0.0.0:80) and on the
`cd-checks lab` fleet (one nginx per loopback address).
"""

from __future__ import annotations

import re

import pytest


@pytest.fixture(scope="module")
def address(host):
    """The address this host was reached at (server side of $SSH_CONNECTION)."""
    return host.check_output("echo $SSH_CONNECTION").split()[2]


@pytest.fixture(scope="module")
def nginx_master(host, address):
    """The command line of the nginx master listening on this host's port 80."""
    listeners = host.check_output("ss -Hltnp 'sport = :80'")
    for line in listeners.splitlines():
        if line.split()[3].rsplit(":", 1)[0] not in (address, "0.0.0.0", "*", "[::]"):
            continue
        for pid in re.findall(r'"nginx",pid=(\d+)', line):
            # nginx rewrites its title to "nginx: master process /usr/sbin/nginx -p PREFIX ...".
            title = host.file(f"/proc/{pid}/cmdline").content_string.replace("\0", " ")
            if "master process" in title:
                return title.split()
    pytest.fail(f"no nginx master listens on {address}:80")


def test_nginx_is_listening(host, address, nginx_master):
    assert host.socket(f"tcp://{address}:80").is_listening


def test_site_config_is_deployed(host, nginx_master):
    args = nginx_master
    prefix = args[args.index("-p") + 1] if "-p" in args else "/etc/nginx"
    site = host.file(f"{prefix.rstrip('/')}/conf.d/site.conf")
    assert site.is_file
    assert "deployed by cd-checks" in site.content_string


def test_healthz_answers_200(host, address):
    status = host.check_output(f"curl -s -o /dev/null -w '%{{http_code}}' http://{address}/healthz")
    assert status == "200"


def test_site_answers(host, address):
    page = host.run(f"curl -s -f http://{address}/")
    assert page.rc == 0
    assert "revision" in page.stdout
