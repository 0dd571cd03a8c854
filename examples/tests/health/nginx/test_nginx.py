"""Health tests for the example site, run by `cd-checks rollout` with testinfra after each wave.

Each test runs once per host of the wave (testinfra's `host` fixture, ssh
backend). The host's own address is the server side of the ssh connection,
so the same tests work on a real fleet (nginx on 0.0.0.0:80) and on the
`cd-checks lab` fleet (one nginx per loopback address). Every `host.run`
is an ssh round trip, so the fixtures fetch what several tests need once.
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
    """The command line of the nginx master listening on this host's port 80, or None."""
    # One round trip: the listeners, then the title of every nginx process among them.
    script = (
        "ss -Hltnp 'sport = :80'; echo ---; "
        "for p in $(ss -Hltnp 'sport = :80' | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); "
        "do echo \"$p $(tr '\\0' ' ' < /proc/$p/cmdline)\"; done"
    )
    listeners, _, titles = host.check_output(script).partition("---")
    mine = set()
    for line in listeners.splitlines():
        if line.split()[3].rsplit(":", 1)[0] in (address, "0.0.0.0", "*", "[::]"):
            mine.update(re.findall(r'"nginx",pid=(\d+)', line))
    for line in titles.strip().splitlines():
        pid, _, title = line.partition(" ")
        # nginx rewrites its title to "nginx: master process /usr/sbin/nginx -p PREFIX ...".
        if pid in mine and "master process" in title:
            return title.split()
    return None


def test_nginx_is_listening(address, nginx_master):
    assert nginx_master is not None, f"no nginx master listens on {address}:80"


def test_site_config_is_deployed(host, nginx_master):
    assert nginx_master is not None
    args = nginx_master
    prefix = args[args.index("-p") + 1] if "-p" in args else "/etc/nginx"
    site = host.run(f"cat {prefix.rstrip('/')}/conf.d/site.conf")
    assert site.rc == 0, site.stderr
    assert "deployed by cd-checks" in site.stdout


def test_healthz_answers_200(host, address):
    status = host.check_output(
        f"curl -s -m 5 -o /dev/null -w '%{{http_code}}' http://{address}/healthz"
    )
    assert status == "200"


def test_site_answers(host, address):
    page = host.run(f"curl -s -f -m 5 http://{address}/")  # a hung nginx fails, not hangs
    assert page.rc == 0
    assert "revision" in page.stdout
