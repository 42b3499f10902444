"""``tokentrace gateway``: the receivers, the engine and the admin endpoints in one process.

Start order is downstream first (engine, telemetry, admin, then the receivers) and stop order
upstream first, as the Collector does: on SIGTERM or SIGINT ``/ready`` turns 503, the receivers
stop taking requests (gRPC calls in progress get a grace period, HTTP requests in progress finish),
then ``engine.shutdown`` drains the queue to the backend within ``shutdown_timeout_s``. What the
engine acknowledged but could not send by then stays in its durable queue for the next start. A
second signal exits at once.

The process logs one ``gateway started`` JSON line with the ports it listens on (useful with port
0, which picks free ports).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from tokentrace.gateway import logs
from tokentrace.gateway.config import Authenticator, GatewayConfig, build_engine_settings, from_args
from tokentrace.gateway.telemetry import (
    AdminServer,
    ReceiverCounters,
    meter_provider,
    prometheus_registry,
    register_instruments,
)

logger = logging.getLogger("tokentrace.gateway")


class GatewayServer:
    """Everything one gateway process runs; ``engine`` defaults to the engine built from ``config``."""

    def __init__(self, config: GatewayConfig, engine: Any = None, metric_readers: list[Any] | None = None) -> None:
        self.config = config
        # the pipeline's own metrics (span_metrics, sampling) go where the gateway's go
        self.meter_provider: Any = meter_provider(config.telemetry, metric_readers)
        if engine is None:
            from tokentrace.gateway.engine import Gateway

            engine = Gateway(build_engine_settings(config), meter_provider=self.meter_provider)
        self.engine = engine
        self.counters = ReceiverCounters()
        self.authenticator = Authenticator(config.auth.tokens())
        self.grpc: Any = None
        self.http: Any = None
        self.admin: AdminServer | None = None
        self._accepting = False
        self._stopped = False
        self._lock = threading.Lock()

    # lifecycle
    def start(self) -> None:
        from tokentrace.gateway.receivers_grpc import GrpcReceiver
        from tokentrace.gateway.receivers_http import HttpReceiver

        config = self.config
        self.engine.start()
        try:
            if self.meter_provider is not None:
                register_instruments(self.meter_provider, self.engine.stats, self.counters)
            if config.admin.enabled:
                self.admin = AdminServer(
                    config.admin, self.ready, prometheus_registry(self.engine.stats, self.counters)
                )
                self.admin.start()
            if config.receivers.grpc.enabled:
                self.grpc = GrpcReceiver(config.receivers.grpc, self.engine, self.authenticator, self.counters)
                self.grpc.start()
            if config.receivers.http.enabled:
                self.http = HttpReceiver(config.receivers.http, self.engine, self.authenticator, self.counters)
                self.http.start()
        except BaseException:
            self.stop()
            raise
        self._accepting = True
        receivers = (config.receivers.grpc, config.receivers.http)
        exposed = [receiver.host for receiver in receivers if receiver.enabled and not _loopback(receiver.host)]
        if exposed and not self.authenticator.enabled:
            logger.warning("OTLP receivers listen beyond loopback without auth", extra={"hosts": exposed})
        logger.info(
            "gateway started",
            extra={
                "grpc_port": self.grpc.port if self.grpc else None,
                "http_port": self.http.port if self.http else None,
                "admin_port": self.admin.port if self.admin else None,
                "auth": "bearer" if self.authenticator.enabled else "off",
                "grpc_tls": config.receivers.grpc.tls.enabled,
                "http_tls": config.receivers.http.tls.enabled,
            },
        )

    def ready(self) -> bool:
        if not self._accepting:
            return False
        try:
            return bool(self.engine.ready())
        except Exception:
            return False

    def stop(self) -> None:
        """Stop receiving, drain the engine, flush self-telemetry; safe to call twice."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._accepting = False
        if self.config.shutdown_delay_s:
            logger.info("gateway stopping: not ready, still serving", extra={"seconds": self.config.shutdown_delay_s})
            time.sleep(self.config.shutdown_delay_s)
        logger.info("gateway stopping: receivers closed, draining the queue")
        grace = min(5.0, self.config.shutdown_timeout_s)
        if self.http is not None:
            _quietly(self.http.stop)
        if self.grpc is not None:
            _quietly(self.grpc.stop, grace)
        _quietly(self.engine.shutdown, self.config.shutdown_timeout_s)
        if self.meter_provider is not None:
            _quietly(self.meter_provider.shutdown)
        if self.admin is not None:
            _quietly(self.admin.stop)
        logger.info("gateway stopped", extra={"stats": _stats(self.engine)})


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _quietly(function: Any, *args: Any) -> None:
    try:
        function(*args)
    except Exception:
        logger.exception("error while stopping", extra={"step": getattr(function, "__qualname__", str(function))})


def _stats(engine: Any) -> dict[str, float]:
    try:
        return dict(engine.stats())
    except Exception:
        return {}


# The engine allocates a few objects per span and keeps almost none in reference cycles, so Python's
# default collector (a young-generation pass every 700 allocations, rescanning what the tail sampler
# holds as it ages) spends ~10% of the CPU finding nothing. What exists at startup (modules, price data,
# configuration) is frozen out of every pass; cycles are still collected, less often.
GC_THRESHOLDS = (20_000, 50, 100)


def tune_garbage_collector() -> None:
    """The collector settings the gateway process runs with (``bench/gateway.py`` uses them too)."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def main(argv: Sequence[str] | None = None) -> int:
    """Run until SIGTERM/SIGINT; exit 0 after a clean drain, 2 on a configuration error, 1 otherwise."""
    try:
        config, check_only = from_args(sys.argv[1:] if argv is None else argv)
        if check_only:
            settings = build_engine_settings(config)
            from tokentrace.processor.config import build_pipeline

            build_pipeline(settings.pipeline)  # the stages validate their own settings
            sys.stdout.write("configuration OK\n")
            return 0
    except ValueError as exc:  # ConfigError, and the pipeline's own
        sys.stderr.write(f"tokentrace gateway: configuration error: {exc}\n")
        return 2
    logs.configure(config.logging.level, config.logging.format)
    try:
        server = GatewayServer(config)
    except ValueError as exc:  # ConfigError, and the engine's and the pipeline's own validation
        sys.stderr.write(f"tokentrace gateway: configuration error: {exc}\n")
        return 2
    stop = threading.Event()
    signals_seen: list[int] = []

    def on_signal(number: int, frame: Any) -> None:
        signals_seen.append(number)
        if len(signals_seen) > 1:
            logger.warning("second signal: exiting without draining")
            sys.stderr.flush()
            import os

            os._exit(1)
        stop.set()

    previous = {number: signal.signal(number, on_signal) for number in (signal.SIGTERM, signal.SIGINT)}
    tune_garbage_collector()
    try:
        try:
            server.start()
        except OSError as exc:
            logger.error("cannot start", extra={"reason": str(exc)})
            return 1
        while not stop.wait(0.5):
            pass
        logger.info("signal received", extra={"signal": signal.Signals(signals_seen[0]).name})
        server.stop()
        return 0
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


if __name__ == "__main__":
    raise SystemExit(main())
