"""The lab's traffic generator: steady HTTP requests to every lab host, counted for Prometheus.

Run as a daemon by `cd-checks lab up --monitoring` (see `cd_checks.lab_monitoring`):

    python -m cd_checks.lab_traffic --listen 127.0.0.10:19100 --rate 5 127.0.0.11 127.0.0.12

One thread per host sends `GET http://<address>/` about `--rate` times a second (no proxy,
short timeout, `User-Agent: cd-checks-lab-traffic/1` so a lab site can tell it from health
checks), so request and error rates exist for metric gates to measure. The counts
are served on `http://<listen>/metrics` from a registry of its own:
`lab_http_requests_total{instance="<address>:80",status="<code>|error"}` and
`lab_http_request_duration_seconds{instance="<address>:80"}`. It only ever talks to the
addresses it is given and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import ipaddress
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

HTTP_PORT = 80
USER_AGENT = "cd-checks-lab-traffic/1"
# loopback answers in well under a millisecond; a slow or broken reload shows up to seconds
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0)


@dataclass(frozen=True)
class Meters:
    """The generator's metrics, in a registry of their own (no process-wide default)."""

    registry: CollectorRegistry
    requests: Counter
    duration: Histogram


def meters() -> Meters:
    registry = CollectorRegistry()
    requests = Counter(
        "lab_http_requests",
        "Requests the lab traffic generator sent, by target and HTTP status ('error': none).",
        ["instance", "status"],
        registry=registry,
    )
    duration = Histogram(
        "lab_http_request_duration_seconds",
        "Time until the response (or the error) of a lab traffic request.",
        ["instance"],
        buckets=BUCKETS,
        registry=registry,
    )
    return Meters(registry=registry, requests=requests, duration=duration)


def request_once(opener: urllib.request.OpenerDirector, url: str, timeout: float) -> str:
    """GET `url`; the HTTP status as text, or "error" when no response arrived."""
    try:
        with opener.open(url, timeout=timeout) as response:
            response.read()
            return str(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return str(exc.code)
    except (OSError, ValueError):
        return "error"


def drive(
    address: str, meters: Meters, *, rate: float, timeout: float, stop: threading.Event
) -> None:
    """Send requests to one host at `rate` per second until `stop` is set."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    opener.addheaders = [("User-Agent", USER_AGENT)]
    url = f"http://{address}/"
    instance = f"{address}:{HTTP_PORT}"
    period = 1.0 / rate
    due = time.monotonic()
    while not stop.is_set():
        started = time.monotonic()
        status = request_once(opener, url, timeout)
        meters.duration.labels(instance=instance).observe(time.monotonic() - started)
        meters.requests.labels(instance=instance, status=status).inc()
        # a slow answer does not make the generator catch up with a burst
        due = max(due + period, time.monotonic())
        stop.wait(due - time.monotonic())


def _address(text: str) -> str:
    try:
        address = ipaddress.IPv4Address(text)
    except ipaddress.AddressValueError as exc:
        raise argparse.ArgumentTypeError(f"not an IPv4 address: {text!r}") from exc
    if not address.is_loopback:
        raise argparse.ArgumentTypeError(f"not a loopback address: {text}")
    return str(address)


def _listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected ADDRESS:PORT, got {text!r}")
    return _address(host), int(port)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cd_checks.lab_traffic", description=__doc__)
    parser.add_argument("--listen", type=_listen, required=True, help="ADDRESS:PORT of /metrics")
    parser.add_argument("--rate", type=float, default=5.0, help="requests per second per host")
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds per request")
    parser.add_argument("addresses", nargs="+", type=_address, help="lab host addresses")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    if options.rate <= 0 or options.timeout <= 0:
        _parser().error("--rate and --timeout must be positive")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    metrics = meters()
    address, port = options.listen
    start_http_server(port, addr=address, registry=metrics.registry)
    workers = [
        threading.Thread(
            target=drive,
            args=(host, metrics),
            kwargs={"rate": options.rate, "timeout": options.timeout, "stop": stop},
            name=f"traffic-{host}",
            daemon=True,
        )
        for host in options.addresses
    ]
    for worker in workers:
        worker.start()
    while not stop.wait(1.0):
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
