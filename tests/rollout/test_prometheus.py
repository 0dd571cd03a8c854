"""The Prometheus client against a real HTTP server that answers like Prometheus' API.

One test runs a real Prometheus (Debian's /usr/bin/prometheus) when it is installed.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from cd_checks.errors import ConfigError
from cd_checks.rollout.analysis import expand
from cd_checks.rollout.inventory import Host
from cd_checks.rollout.prometheus import (
    MAX_BODY,
    Prometheus,
    PrometheusError,
    Sample,
    client_from,
)
from cd_checks.rollout.spec import MetricsSpec

TOKEN = "s3cret-T0ken"
# What Prometheus 2.42 answers for `sum(rate(x[1m]) *` (measured on this machine).
PARSE_ERROR = {
    "status": "error",
    "errorType": "bad_data",
    "error": 'invalid parameter "query": 1:18: parse error: unclosed left parenthesis',
}


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    delay: float = 0.0  # before the status line
    body_delay: float = 0.0  # after the headers
    headers: tuple[tuple[str, str], ...] = ()


def success(data: object) -> Reply:
    return Reply(body=json.dumps({"status": "success", "data": data}).encode())


@dataclass
class FakePrometheus:
    """Routes `/api/v1/query` and `/api/v1/alerts` (under any prefix) to scripted replies."""

    reply: Callable[[str, dict[str, str]], Reply]
    seen: list[tuple[str, dict[str, str], str | None]] = field(default_factory=list)


@pytest.fixture
def server() -> Iterator[tuple[FakePrometheus, str]]:
    fake = FakePrometheus(lambda path, params: success({"resultType": "vector", "result": []}))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            url = urllib.parse.urlsplit(self.path)
            params = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
            fake.seen.append((url.path, params, self.headers.get("Authorization")))
            reply = fake.reply(url.path, params)
            time.sleep(reply.delay)
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply.body)))
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.flush()
                time.sleep(reply.body_delay)
                self.wfile.write(reply.body)
            except OSError:
                pass  # the client gave up (timeout tests)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def client(url: str, *, token: str | None = TOKEN, timeout: float = 5.0) -> Prometheus:
    return Prometheus(url, token, timeout)


def test_a_vector_gives_its_samples_with_nan_and_infinities(
    server: tuple[FakePrometheus, str],
) -> None:
    fake, url = server
    result = [
        {"metric": {"instance": "127.0.0.1:9100", "job": "node"}, "value": [1.7e9, "0.25"]},
        {"metric": {"instance": "127.0.0.2:9100"}, "value": [1.7e9, "NaN"]},
        {"metric": {}, "value": [1.7e9, "+Inf"]},
        {"metric": {}, "value": [1.7e9, "-Inf"]},
    ]
    fake.reply = lambda path, params: success({"resultType": "vector", "result": result})
    promql = 'sum(rate(x{status=~"5..",instance=~"127[.]0[.]0[.]1:9100|a\\\\+b"}[1m])) + 1'
    samples = client(url).query(promql)
    assert [s.labels for s in samples] == [
        {"instance": "127.0.0.1:9100", "job": "node"},
        {"instance": "127.0.0.2:9100"},
        {},
        {},
    ]
    values = [s.value for s in samples]
    assert (
        values[0] == 0.25
        and values[1] != values[1]
        and values[2:]
        == [
            float("inf"),
            float("-inf"),
        ]
    )
    # the query reaches Prometheus exactly as written, with the bearer token
    assert fake.seen == [("/api/v1/query", {"query": promql}, f"Bearer {TOKEN}")]


def test_a_scalar_is_one_sample_without_labels(server: tuple[FakePrometheus, str]) -> None:
    fake, url = server
    fake.reply = lambda path, params: success({"resultType": "scalar", "result": [1.7e9, "3"]})
    assert client(url).query("scalar(up)") == [Sample({}, 3.0)]


def test_no_token_sends_no_authorization(server: tuple[FakePrometheus, str]) -> None:
    fake, url = server
    client(url, token=None).query("up")
    assert fake.seen[0][2] is None


def test_a_base_url_with_a_path_prefix(server: tuple[FakePrometheus, str]) -> None:
    fake, url = server
    client(url + "/prometheus/").query("up")
    assert fake.seen[0][0] == "/prometheus/api/v1/query"


@pytest.mark.parametrize(
    ("kind", "result", "what", "hint"),
    [
        (
            "matrix",
            [{"metric": {}, "values": [[1.7e9, "1"]]}],
            "a range vector (matrix)",
            " (aggregate the range with a function such as rate() or avg_over_time())",
        ),
        ("string", [1.7e9, "hello"], "a string", ""),
    ],
)
def test_a_range_vector_or_a_string_is_an_error(
    server: tuple[FakePrometheus, str], kind: str, result: object, what: str, hint: str
) -> None:
    fake, url = server
    fake.reply = lambda path, params: success({"resultType": kind, "result": result})
    with pytest.raises(PrometheusError) as caught:
        client(url).query("up[5m]")
    assert str(caught.value) == (
        f"the query gives {what}; a metric gate needs an instant vector or a scalar{hint}"
    )
    assert caught.value.permanent


def test_a_query_that_does_not_parse_gives_prometheus_own_text(
    server: tuple[FakePrometheus, str],
) -> None:
    fake, url = server
    fake.reply = lambda path, params: Reply(400, json.dumps(PARSE_ERROR).encode())
    with pytest.raises(PrometheusError) as caught:
        client(url).query("sum(rate(x[1m]) *")
    assert str(caught.value) == (
        f'Prometheus at {url} answered HTTP 400: bad_data: invalid parameter "query":'
        " 1:18: parse error: unclosed left parenthesis"
    )
    assert caught.value.kind == "bad_data" and caught.value.permanent


def test_several_parse_errors_are_one_line(server: tuple[FakePrometheus, str]) -> None:
    fake, url = server
    error = {"status": "error", "errorType": "bad_data", "error": "1:3: first\n1:9: second\n"}
    fake.reply = lambda path, params: Reply(400, json.dumps(error).encode())
    with pytest.raises(PrometheusError, match=r"bad_data: 1:3: first; 1:9: second$"):
        client(url).query("x")


def test_a_server_error_with_prometheus_json(server: tuple[FakePrometheus, str]) -> None:
    fake, url = server
    error = {"status": "error", "errorType": "timeout", "error": "query timed out in query queue"}
    fake.reply = lambda path, params: Reply(503, json.dumps(error).encode())
    with pytest.raises(PrometheusError) as caught:
        client(url).query("x")
    assert str(caught.value) == (
        f"Prometheus at {url} answered HTTP 503: timeout: query timed out in query queue"
    )
    assert not caught.value.permanent


def test_a_server_error_without_json(server: tuple[FakePrometheus, str]) -> None:
    fake, url = server
    fake.reply = lambda path, params: Reply(500, b"<html>\n  <b>upstream down</b>\n</html>")
    with pytest.raises(PrometheusError) as caught:
        client(url).query("x")
    assert str(caught.value) == (
        f"Prometheus at {url} answered HTTP 500 Internal Server Error:"
        " <html>; <b>upstream down</b>; </html>"
    )
    assert caught.value.kind == "http"


@pytest.mark.parametrize("where", ["delay", "body_delay"])
def test_a_slow_answer_is_a_timeout(server: tuple[FakePrometheus, str], where: str) -> None:
    fake, url = server
    slow = Reply(200, b'{"status":"success","data":{"resultType":"vector","result":[]}}')
    fake.reply = lambda path, params: Reply(**{**slow.__dict__, where: 2.0})
    started = time.monotonic()
    with pytest.raises(PrometheusError) as caught:
        client(url, timeout=0.3).query("x")
    assert time.monotonic() - started < 1.5
    assert str(caught.value) == f"Prometheus at {url} did not answer within 0.3 s (timeout)"
    assert caught.value.kind == "timeout"


@pytest.mark.parametrize(
    ("body", "start"),
    [
        (b"<html><body>Sign in</body></html>", "<html><body>Sign in</body></html>"),
        (b"", "an empty body"),
        (b'{"status": "weird"}', '{"status": "weird"}'),
        (b"\xff\xfe garbage", "\ufffd\ufffd garbage"),
    ],
)
def test_a_body_that_is_not_the_api_json(
    server: tuple[FakePrometheus, str], body: bytes, start: str
) -> None:
    fake, url = server
    fake.reply = lambda path, params: Reply(200, body)
    with pytest.raises(PrometheusError) as caught:
        client(url).query("x")
    assert str(caught.value) == (
        f"Prometheus at {url} sent something that is not Prometheus' JSON API answer: {start}"
    )


def test_an_oversized_body_is_not_read_to_the_end(server: tuple[FakePrometheus, str]) -> None:
    fake, url = server
    fake.reply = lambda path, params: Reply(200, b" " * (MAX_BODY + 1))
    with pytest.raises(PrometheusError) as caught:
        client(url).query("x")
    assert str(caught.value) == f"Prometheus at {url} sent an answer larger than 8 MiB"


def test_a_closed_port_is_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(PrometheusError) as caught:
        client(url).query("up")
    assert str(caught.value) == f"Prometheus at {url} is unreachable: connection refused"
    assert caught.value.kind == "unreachable" and not caught.value.permanent


def test_the_token_never_appears_in_a_message(server: tuple[FakePrometheus, str]) -> None:
    fake, url = server

    def echo(path: str, params: dict[str, str]) -> Reply:
        # A proxy that echoes the request's headers in its error page.
        return Reply(401, f"Unauthorized: Authorization: Bearer {TOKEN}".encode())

    fake.reply = echo
    with pytest.raises(PrometheusError) as caught:
        client(url).query("up")
    assert fake.seen[0][2] == f"Bearer {TOKEN}"
    assert TOKEN not in str(caught.value)
    assert str(caught.value) == (
        f"Prometheus at {url} answered HTTP 401 Unauthorized: Unauthorized: Authorization:"
        " Bearer ***"
    )
    assert TOKEN not in repr(client(url))


def test_a_redirect_is_not_followed_with_the_token(server: tuple[FakePrometheus, str]) -> None:
    fake, url = server
    moved = Reply(302, b"", headers=(("Location", f"{url}/elsewhere/api/v1/query"),))
    fake.reply = lambda path, params: moved if path == "/api/v1/query" else success({})
    with pytest.raises(PrometheusError) as caught:
        client(url).query("up")
    assert str(caught.value) == (
        f"Prometheus at {url} answered HTTP 302, a redirect to {url}/elsewhere/api/v1/query:"
        " set the Prometheus URL to where it points"
    )
    assert [path for path, _, _ in fake.seen] == ["/api/v1/query"]


def test_firing_alerts_are_those_firing_among_the_names(
    server: tuple[FakePrometheus, str],
) -> None:
    fake, url = server
    alerts = [
        {"labels": {"alertname": "DiskFull", "instance": "a"}, "state": "firing"},
        {"labels": {"alertname": "HighErrorRate"}, "state": "pending"},
        {"labels": {"alertname": "Watchdog"}, "state": "firing"},
        {"labels": {"alertname": "HostDown"}, "state": "firing"},
    ]
    fake.reply = lambda path, params: success({"alerts": alerts})
    names = ["HostDown", "HighErrorRate", "DiskFull", "Unknown"]
    assert client(url).firing_alerts(names) == ["HostDown", "DiskFull"]
    assert fake.seen[0][:2] == ("/api/v1/alerts", {})
    assert client(url).firing_alerts([]) == []
    assert len(fake.seen) == 1  # no names, no request


def test_an_alerts_answer_without_alerts(server: tuple[FakePrometheus, str]) -> None:
    fake, url = server
    fake.reply = lambda path, params: success({"resultType": "vector"})
    with pytest.raises(PrometheusError, match="sent an alerts answer without alerts"):
        client(url).firing_alerts(["X"])


# --- client_from --------------------------------------------------------------------------


def test_client_from_the_environment_else_the_spec() -> None:
    env = {"CD_CHECKS_PROMETHEUS_TOKEN": TOKEN}
    ours = client_from(MetricsSpec(prometheus="https://prom.example/", timeout=3.0), env)
    assert (ours.url, ours.token, ours.timeout) == ("https://prom.example", TOKEN, 3.0)
    env["CD_CHECKS_PROMETHEUS_URL"] = "http://env:9090"
    assert (
        client_from(MetricsSpec(prometheus="https://prom.example/"), env).url == "http://env:9090"
    )
    assert client_from(MetricsSpec(), env).url == "http://env:9090"
    assert client_from(MetricsSpec(), {"CD_CHECKS_PROMETHEUS_URL": "http://e:1"}).token is None


def test_client_from_without_a_url_names_both_places() -> None:
    with pytest.raises(ConfigError) as caught:
        client_from(MetricsSpec(), {})
    assert str(caught.value) == (
        "the metric gate needs Prometheus: set `prometheus:` in health.metrics"
        " or CD_CHECKS_PROMETHEUS_URL"
    )


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://prom:21", "'ftp://prom:21' must start with http:// or https://"),
        ("prom:9090", "'prom:9090' must start with http:// or https://"),
        ("http://", "'http://' names no host"),
        ("http://prom:90x", "is not a URL"),
        (
            "http://admin:hunter2@prom:9090",
            "'http://***@prom:9090' may not hold credentials: set CD_CHECKS_PROMETHEUS_TOKEN",
        ),
        ("http://prom:9090/?x=1", "may not have a ?query or #fragment"),
    ],
)
def test_client_from_a_bad_url(url: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        client_from(MetricsSpec(prometheus=url), {})
    assert str(caught.value).startswith("health.metrics.prometheus ")
    assert problem in str(caught.value)
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ConfigError, match="^CD_CHECKS_PROMETHEUS_URL "):
        client_from(MetricsSpec(), {"CD_CHECKS_PROMETHEUS_URL": url})


def test_a_token_an_http_header_cannot_carry_is_named_not_shown() -> None:
    env = {"CD_CHECKS_PROMETHEUS_URL": "http://p:9090", "CD_CHECKS_PROMETHEUS_TOKEN": "ab\ncd"}
    with pytest.raises(ConfigError) as caught:
        client_from(MetricsSpec(), env)
    assert str(caught.value) == (
        "CD_CHECKS_PROMETHEUS_TOKEN holds characters an HTTP header cannot carry"
    )


# --- a real Prometheus ----------------------------------------------------------------------

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def answers(prometheus: Prometheus) -> bool:
    try:
        prometheus.query("1")
    except PrometheusError:
        return False
    return True


TRICKY = 'a+b*c?(d)|e{f}$g^h[i]j\\k"l\tm.n ü'


def tricky_rule(name: str, label: str) -> dict[str, str]:
    # label_replace's replacement expands $name: a literal $ is $$.
    value = json.dumps(label.replace("$", "$$"))
    return {"record": name, "expr": f'label_replace(vector(1), "instance", {value}, "", "")'}


def rules() -> str:
    group = {
        "name": "t",
        "rules": [
            {"record": "cd_no_instance", "expr": "vector(1)"},
            tricky_rule("cd_tricky", TRICKY),
            # the same label with a letter for the dot (`.` unescaped would match it)
            tricky_rule("cd_tricky_x", TRICKY.replace(".", "x")),
            {"alert": "AlwaysFiring", "expr": "vector(1)"},
            {"alert": "NeverFiring", "expr": "vector(1) == 2"},
        ],
    }
    return yaml.safe_dump({"groups": [group]})


@pytest.mark.skipif(not Path(PROMETHEUS).is_file(), reason="needs Debian's prometheus")
def test_a_real_prometheus(tmp_path: Path) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    (tmp_path / "rules.yml").write_text(rules(), "utf-8")
    # Prometheus scrapes itself, so `up{instance="127.0.0.1:<port>"}` exists.
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{tmp_path / 'rules.yml'}]\n"
        f"scrape_configs:\n- job_name: self\n  static_configs: [{{targets: ['{address}']}}]\n",
        "utf-8",
    )
    argv = [
        PROMETHEUS,
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address={address}",
    ]
    log = (tmp_path / "log").open("wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        prometheus = Prometheus(f"http://{address}", None, 5.0)
        wait_for(lambda: answers(prometheus), 30, "Prometheus to answer")
        # (a) its own parse error, through PrometheusError
        with pytest.raises(PrometheusError) as caught:
            prometheus.query("sum(rate(up[1m]) *")
        assert caught.value.kind == "bad_data" and caught.value.permanent
        assert str(caught.value) == (
            f"Prometheus at http://{address} answered HTTP 400: bad_data: invalid parameter"
            ' "query": 1:19: parse error: unclosed left parenthesis'
        )
        # (b) expanded {instances} regexes are valid and match exactly the hosts' labels
        wait_for(lambda: bool(prometheus.query("up")), 30, "the first scrape")
        wait_for(lambda: bool(prometheus.query("cd_tricky")), 30, "the recording rules")
        me = [Host("prometheus", "127.0.0.1")]
        found = prometheus.query(expand('up{instance=~"{instances}"}', me, [], f"{{host}}:{port}"))
        assert [s.labels["instance"] for s in found] == [address]
        near = [Host("a", "127.0.0.11"), Host("b", "127x0x0x1")]
        assert (
            prometheus.query(expand('up{instance=~"{instances}"}', near, me, f"{{host}}:{port}"))
            == []
        )
        tricky = [Host("t", TRICKY)]
        query = '{__name__=~"cd_tricky.*",instance=~"{instances}"}'
        found = prometheus.query(expand(query, tricky, me, "{host}"))
        assert [(s.labels["__name__"], s.labels["instance"]) for s in found] == [
            ("cd_tricky", TRICKY)
        ]
        nearly = [Host("t", TRICKY[:-1]), Host("u", TRICKY + "x")]
        assert (
            prometheus.query(expand('cd_tricky{instance=~"{instances}"}', nearly, me, "{host}"))
            == []
        )
        # no hosts match nothing, not even a series without the label (as `^$` would)
        assert (
            prometheus.query(
                expand('cd_no_instance{instance=~"{baseline_instances}"}', me, [], "{host}")
            )
            == []
        )
        assert len(prometheus.query('cd_no_instance{instance=~"^$"}')) == 1
        wait_for(
            lambda: prometheus.firing_alerts(["NeverFiring", "AlwaysFiring"]) == ["AlwaysFiring"],
            30,
            "AlwaysFiring to fire",
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
