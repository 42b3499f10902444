"""The gateway's own telemetry: the admin endpoints and its metrics, as Prometheus and as OTLP.

Admin port (default 13133, like the Collector's ``health_check``), all ``GET``, no auth, so bind it
to an internal address:

* ``/health``: 200 while the process serves (liveness);
* ``/ready``: 200 when the receivers listen and the engine is ready, else 503 (readiness: a load
  balancer stops sending during start-up and while draining on SIGTERM);
* ``/metrics``: Prometheus text from ``prometheus-client``.

Nothing else is served: no configuration, no span data; bodies are a fixed status word.

Every figure comes from one place, the engine's ``stats()`` plus the receivers'
:class:`ReceiverCounters`, read at scrape/collection time (observable instruments), so Prometheus
and OTLP always agree and the hot path pays nothing for either.
"""

from __future__ import annotations

import http.server
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

from tokentrace.gateway.config import AdminSettings, TelemetrySettings

logger = logging.getLogger("tokentrace.gateway.telemetry")

PREFIX = "tokentrace_gateway_"
# stats() keys that are levels, not running totals (anything with these words in its name)
_GAUGE_WORDS = ("depth", "latency", "in_flight", "inflight")


class ReceiverCounters:
    """Requests by (transport, signal, outcome): outcome is the HTTP status / gRPC code, or a word."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, str], int] = {}
        self._lock = threading.Lock()

    def count(self, transport: str, signal: str, outcome: str) -> None:
        key = (transport, signal, outcome)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def snapshot(self) -> dict[tuple[str, str, str], int]:
        with self._lock:
            return dict(self._counts)

    def get(self, transport: str, signal: str, outcome: str) -> int:
        with self._lock:
            return self._counts.get((transport, signal, outcome), 0)


def is_gauge(key: str) -> bool:
    return any(word in key for word in _GAUGE_WORDS)


def _safe_stats(stats: Callable[[], dict[str, float]]) -> dict[str, float]:
    try:
        return {str(key): float(value) for key, value in stats().items()}
    except Exception:  # a scrape must never take the gateway down
        logger.exception("engine stats failed")
        return {}


# --- Prometheus -------------------------------------------------------------------------------------


class _PrometheusCollector:
    """A ``prometheus_client`` custom collector reading the stats at scrape time."""

    def __init__(self, stats: Callable[[], dict[str, float]], counters: ReceiverCounters) -> None:
        self._stats = stats
        self._counters = counters

    def describe(self) -> Iterable[Any]:
        return []  # unchecked collector: families are known only at scrape time

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        for key, value in sorted(_safe_stats(self._stats).items()):
            name = PREFIX + _metric_name(key)
            if is_gauge(key):
                yield GaugeMetricFamily(name, f"engine stat {key}", value=value)
            else:
                yield CounterMetricFamily(name, f"engine stat {key}", value=value)
        requests = CounterMetricFamily(
            PREFIX + "requests",
            "OTLP requests by transport, signal and outcome",
            labels=["transport", "signal", "outcome"],
        )
        for (transport, signal, outcome), count in sorted(self._counters.snapshot().items()):
            requests.add_metric([transport, signal, outcome], count)
        yield requests


def _metric_name(key: str, *, prometheus: bool = True) -> str:
    """``export_latency_avg_s`` -> ``export_latency_avg_seconds`` (Prometheus) / ``export_latency_avg`` (OTLP,
    with unit ``s``): each ecosystem's convention for units."""
    name = "".join(ch if ch.isalnum() else "_" for ch in key.lower()).removesuffix("_total")
    if name.endswith("_s"):
        name = name[:-2] + ("_seconds" if prometheus else "")
    return name


def _unit(key: str) -> str:
    if key.endswith("_s"):
        return "s"
    if key.endswith("_bytes"):
        return "By"
    return "1"


def prometheus_registry(stats: Callable[[], dict[str, float]], counters: ReceiverCounters) -> Any:
    from prometheus_client import CollectorRegistry, ProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_PrometheusCollector(stats, counters))
    ProcessCollector(registry=registry)  # cpu, memory, open fds: nothing about the data
    return registry


# --- OTLP through the OpenTelemetry SDK ---------------------------------------------------------


def meter_provider(settings: TelemetrySettings, readers: list[Any] | None = None) -> Any:
    """The SDK ``MeterProvider`` exporting the gateway's metrics; None when there is nowhere to send them.

    ``readers`` replaces the OTLP reader (tests pass an ``InMemoryMetricReader``). The provider also
    exports what the span metrics stage aggregates itself (see :mod:`tokentrace.gateway.metric_producers`).
    """
    from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    if readers is None:
        if not settings.otlp_endpoint:
            return None
        if settings.otlp_protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from tokentrace.processor.stages.span_metrics import preferred_temporality

        exporter = OTLPMetricExporter(
            endpoint=settings.otlp_endpoint,
            headers=dict(settings.otlp_headers) or None,
            preferred_temporality=preferred_temporality(settings.temporality),
        )
        readers = [PeriodicExportingMetricReader(exporter, export_interval_millis=settings.interval_s * 1000)]
    from tokentrace.gateway.metric_producers import GatewayMeterProvider

    return GatewayMeterProvider(
        metric_readers=readers,
        resource=Resource.create({"service.name": settings.service_name}),
        # The SDK's default (trace-based) filter looks for a sampled current span on every measurement;
        # the gateway records span metrics for spans it received, never inside one of its own, so the
        # filter finds nothing and costs ~40% of each histogram record.
        exemplar_filter=AlwaysOffExemplarFilter(),
    )


def register_instruments(provider: Any, stats: Callable[[], dict[str, float]], counters: ReceiverCounters) -> None:
    """Observable instruments over ``stats()`` (one per key) and the receivers' request counts.

    The set of keys is read once here: an engine exposes a fixed set.
    """
    from opentelemetry.metrics import CallbackOptions, Observation

    meter = provider.get_meter("tokentrace.gateway")
    for key in sorted(_safe_stats(stats)):

        def observe(options: CallbackOptions, key: str = key) -> Iterable[Observation]:
            value = _safe_stats(stats).get(key)
            return [] if value is None else [Observation(value)]

        name = "tokentrace.gateway." + _metric_name(key, prometheus=False)
        unit = _unit(key)
        if is_gauge(key):
            meter.create_observable_gauge(name, [observe], unit=unit, description=f"engine stat {key}")
        else:
            meter.create_observable_counter(name, [observe], unit=unit, description=f"engine stat {key}")

    def observe_requests(options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(count, {"transport": transport, "signal": signal, "outcome": outcome})
            for (transport, signal, outcome), count in counters.snapshot().items()
        ]

    meter.create_observable_counter(
        "tokentrace.gateway.requests",
        [observe_requests],
        unit="{request}",
        description="OTLP requests by transport, signal and outcome",
    )


# --- the admin server -------------------------------------------------------------------------------


class _AdminHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tokentrace-gateway"
    sys_version = ""
    timeout = 5  # per-read socket timeout: the admin port answers probes, nothing slow
    server: AdminServer

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("admin " + format, *args)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/health":
            self._reply(200, {"status": "ok"})
        elif path == "/ready":
            ready = self.server.is_ready()
            self._reply(200 if ready else 503, {"status": "ready" if ready else "not ready"})
        elif path == "/metrics":
            from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

            self._send(200, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)
        else:
            self._reply(404, {"status": "not found"})

    def _not_allowed(self) -> None:
        self.close_connection = True
        self._reply(405, {"status": "method not allowed"}, {"Allow": "GET"})

    do_POST = do_PUT = do_DELETE = do_PATCH = _not_allowed

    def _reply(self, status: int, body: dict[str, str], headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", headers)

    def _send(self, status: int, payload: bytes, media: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)


class AdminServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, settings: AdminSettings, is_ready: Callable[[], bool], registry: Any) -> None:
        self.is_ready = is_ready
        self.registry = registry
        if ":" in settings.host:
            self.address_family = socket.AF_INET6
        super().__init__((settings.host.strip("[]"), settings.port), _AdminHandler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("admin connection error", exc_info=True)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.2}, name="tokentrace-admin", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(5)
