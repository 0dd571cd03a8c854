"""A small client of Prometheus' HTTP API: instant queries and firing alerts.

Two endpoints, both GET: `/api/v1/query` (an instant query at "now") and
`/api/v1/alerts`. Requests go directly (never through a proxy, like the HTTP
probes of `cd_checks.rollout.health`), with a bearer token taken from the
environment only (`CD_CHECKS_PROMETHEUS_TOKEN`). Every failure (unreachable,
timeout, an HTTP error, a body that is not Prometheus' JSON, a result of the
wrong type) is a `PrometheusError` whose message is one line for the user and
carries Prometheus' own `errorType: error` text when it sent one; the token is
never part of a message. Nothing here retries or sleeps: the metric gate
decides what a failed measurement means.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cd_checks.errors import ConfigError
from cd_checks.rollout.spec import MetricsSpec

URL_ENV = "CD_CHECKS_PROMETHEUS_URL"
TOKEN_ENV = "CD_CHECKS_PROMETHEUS_TOKEN"
MAX_BODY = 8 * 1024 * 1024  # a query answer larger than this is a query that needs aggregating
MAX_MESSAGE = 400


class PrometheusError(Exception):
    """A request to Prometheus failed; the message is one line for the user.

    `kind` says how: Prometheus' own errorType ("bad_data", "execution",
    "timeout", ...) when it sent one, else "unreachable", "timeout", "http",
    "body", "result" (an answer that cannot be read) or "result_type" (a range
    vector or a string where an instant vector or a scalar is needed).
    """

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind

    @property
    def permanent(self) -> bool:
        """True when asking again cannot help: the query does not parse or gives a range."""
        return self.kind in ("bad_data", "result_type")


@dataclass(frozen=True)
class Sample:
    """One series of an instant vector (or a scalar, with no labels) and its value."""

    labels: Mapping[str, str]
    value: float


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib would send the Authorization header on to wherever a redirect points.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass(frozen=True)
class Prometheus:
    url: str
    token: str | None = field(default=None, repr=False)
    timeout: float = 10.0

    def query(self, promql: str) -> list[Sample]:
        """The instant vector or scalar `promql` gives now."""
        return _samples(self._get("/api/v1/query", {"query": promql}))

    def firing_alerts(self, names: Sequence[str]) -> list[str]:
        """Those of `names` that have an alert in state "firing", in the order given."""
        if not names:
            return []
        data = self._get("/api/v1/alerts", {})
        alerts = data.get("alerts") if isinstance(data, dict) else None
        if not isinstance(alerts, list):
            raise PrometheusError(f"{self._where()} sent an alerts answer without alerts", "body")
        firing = {
            str(a.get("labels", {}).get("alertname"))
            for a in alerts
            if isinstance(a, dict) and a.get("state") == "firing"
        }
        return [name for name in names if name in firing]

    def _get(self, path: str, params: Mapping[str, str]) -> Any:
        try:
            return self._request(path, params)
        except PrometheusError as exc:
            # A proxy or Prometheus might echo the request's headers in an error page.
            if self.token and self.token in str(exc):
                raise PrometheusError(str(exc).replace(self.token, "***"), exc.kind) from None
            raise

    def _request(self, path: str, params: Mapping[str, str]) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        request = urllib.request.Request(f"{self.url.rstrip('/')}{path}{query}")
        request.add_header("Accept", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
        try:
            with opener.open(request, timeout=self.timeout) as response:
                return self._payload(response.read(MAX_BODY + 1), None)
        except urllib.error.HTTPError as exc:
            with exc:
                return self._payload(_read(exc), exc)
        except TimeoutError:
            raise self._timeout() from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise self._timeout() from None
            raise self._unreachable(exc.reason) from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise self._unreachable(exc) from None

    def _payload(self, body: bytes, error: urllib.error.HTTPError | None) -> Any:
        """The `data` of a success answer; anything else is a PrometheusError."""
        status = f"HTTP {error.code}" if error is not None else "an answer"
        if len(body) > MAX_BODY:
            raise PrometheusError(
                f"{self._where()} sent {status} larger than {MAX_BODY // 1048576} MiB", "body"
            )
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if isinstance(answer, dict) and answer.get("status") == "error":
            kind = str(answer.get("errorType") or "http")
            text = _one_line(f"{kind}: {answer.get('error', '')}")
            raise PrometheusError(f"{self._where()} answered {status}: {text}", kind)
        if error is not None:
            raise PrometheusError(self._http_error(error, body), "http")
        if not isinstance(answer, dict) or answer.get("status") != "success":
            start = _one_line(body[:80].decode("utf-8", "replace")) or "an empty body"
            raise PrometheusError(
                f"{self._where()} sent something that is not Prometheus' JSON API answer: {start}",
                "body",
            )
        return answer.get("data")

    def _http_error(self, error: urllib.error.HTTPError, body: bytes) -> str:
        if 300 <= error.code < 400:
            target = error.headers.get("Location", "elsewhere")
            return (
                f"{self._where()} answered HTTP {error.code}, a redirect to {target}:"
                " set the Prometheus URL to where it points"
            )
        text = _one_line(body[:200].decode("utf-8", "replace"))
        return f"{self._where()} answered HTTP {error.code} {error.reason}" + (
            f": {text}" if text else ""
        )

    def _where(self) -> str:
        return f"Prometheus at {self.url}"

    def _timeout(self) -> PrometheusError:
        return PrometheusError(
            f"{self._where()} did not answer within {self.timeout:g} s (timeout)", "timeout"
        )

    def _unreachable(self, reason: object) -> PrometheusError:
        if isinstance(reason, ConnectionRefusedError):
            why = "connection refused"
        elif isinstance(reason, OSError) and reason.strerror:
            why = reason.strerror
        else:
            why = str(reason) or type(reason).__name__
        return PrometheusError(f"{self._where()} is unreachable: {_one_line(why)}", "unreachable")


def _read(error: urllib.error.HTTPError) -> bytes:
    try:
        return error.read(MAX_BODY + 1)
    except (OSError, http.client.HTTPException):
        return b""


def _one_line(text: str) -> str:
    """Prometheus joins several parse errors with newlines; a message is one line."""
    line = "; ".join(part.strip() for part in text.splitlines() if part.strip())
    line = "".join(c if c.isprintable() else "?" for c in line)
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 3] + "..."


def _samples(data: Any) -> list[Sample]:
    if not isinstance(data, dict) or "result" not in data:
        raise PrometheusError("Prometheus sent a query answer without a result", "result")
    kind, result = data.get("resultType"), data["result"]
    try:
        if kind == "vector":
            return [Sample(dict(s["metric"]), _value(s["value"])) for s in result]
        if kind == "scalar":
            return [Sample({}, _value(result))]
    except (KeyError, TypeError, ValueError, IndexError):
        raise PrometheusError(
            f"Prometheus sent a {kind} result that cannot be read", "result"
        ) from None
    hint = ""
    if kind == "matrix":
        hint = " (aggregate the range with a function such as rate() or avg_over_time())"
    what = {"matrix": "a range vector (matrix)", "string": "a string"}.get(str(kind), repr(kind))
    raise PrometheusError(
        f"the query gives {what}; a metric gate needs an instant vector or a scalar{hint}",
        "result_type",
    )


def _value(pair: Any) -> float:
    # [<unix time>, "<value>"]; Prometheus writes "NaN", "+Inf" and "-Inf", which float() reads.
    return float(pair[1])


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a Prometheus base URL, or None (for `validate`, too)."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is no number
    except ValueError as exc:
        return f"is not a URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return "must start with http:// or https://"
    if not parts.hostname:
        return "names no host"
    if parts.username is not None or parts.password is not None:
        return f"may not hold credentials: set {TOKEN_ENV} for a bearer token"
    if parts.query or parts.fragment:
        return "may not have a ?query or #fragment: give the base URL Prometheus is served at"
    return None


def _shown(url: str) -> str:
    """`url` without the password it may hold."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    return f"{scheme}{sep}{netloc}{slash}{path}"


def client_from(spec: MetricsSpec, env: Mapping[str, str]) -> Prometheus:
    """The client for `spec`: env CD_CHECKS_PROMETHEUS_URL, else its URL; the env token.

    The environment wins, as it does for most tools' settings: one config rehearses against
    a lab (`cd-checks lab up --monitoring` prints the line to export) and deploys for real.
    """
    from_env = env.get(URL_ENV, "").strip()
    url = from_env or (spec.prometheus or "").strip()
    if not url:
        raise ConfigError(
            f"the metric gate needs Prometheus: set `prometheus:` in health.metrics or {URL_ENV}"
        )
    where = URL_ENV if from_env else "health.metrics.prometheus"
    problem = url_problem(url)
    if problem:
        raise ConfigError(f"{where} {_shown(url)!r} {problem}")
    token = env.get(TOKEN_ENV, "").strip() or None
    if token is not None and not all(" " < c < "\x7f" for c in token):
        # http.client would put the value in its error message
        raise ConfigError(f"{TOKEN_ENV} holds characters an HTTP header cannot carry")
    return Prometheus(url.rstrip("/"), token, spec.timeout)
