"""The OTLP/gRPC receiver (default port 4317): ``TraceService``, ``MetricsService``, ``LogsService``.

Handlers take the request as raw bytes and parse it themselves, so an undecodable message is
``INVALID_ARGUMENT`` (the client's bug, not retried) rather than grpcio's generic deserialisation
failure. grpcio itself decompresses gzip and deflate and refuses a message over
``max_message_bytes`` (checked after decompression) with ``RESOURCE_EXHAUSTED``.

Codes, as the OTLP specification and the Collector's receiver use them:

* OK with ``partial_success.rejected_spans`` when the engine rejected part of a batch;
* ``INVALID_ARGUMENT``: undecodable data (permanent);
* ``UNAUTHENTICATED``: bearer token missing or wrong, when auth is on;
* ``UNAVAILABLE`` with a ``google.rpc.RetryInfo`` detail when the engine is overloaded or could not
  queue the request (retryable); the detail travels in ``grpc-status-details-bin`` (the standard
  ``google.rpc.Status`` trailer, what Go clients read) and in ``google.rpc.retryinfo-bin`` (what the
  OpenTelemetry Python exporter reads).
"""

from __future__ import annotations

import logging
from concurrent import futures
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tokentrace.gateway.config import Authenticator, GrpcSettings
from tokentrace.gateway.engine import Overloaded, TooLarge
from tokentrace.gateway.otlp_codec import parse_request
from tokentrace.gateway.telemetry import ReceiverCounters

logger = logging.getLogger("tokentrace.gateway.grpc")

SERVICES = {
    "traces": "opentelemetry.proto.collector.trace.v1.TraceService",
    "metrics": "opentelemetry.proto.collector.metrics.v1.MetricsService",
    "logs": "opentelemetry.proto.collector.logs.v1.LogsService",
}
RESPONSES = {
    "traces": trace_service_pb2.ExportTraceServiceResponse,
    "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
    "logs": logs_service_pb2.ExportLogsServiceResponse,
}
PROTOBUF = "application/x-protobuf"


def retry_status(message: str, retry_after_s: float) -> grpc.Status:
    """UNAVAILABLE with a ``RetryInfo`` detail, in both trailers clients read it from."""
    seconds = max(0.0, float(retry_after_s))
    whole = int(seconds)
    retry = error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(seconds=whole, nanos=round((seconds - whole) * 1e9))
    )
    status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message=message)
    status.details.add().Pack(retry)
    standard = rpc_status.to_status(status)  # the grpc-status-details-bin trailer
    return standard._replace(
        trailing_metadata=(*standard.trailing_metadata, ("google.rpc.retryinfo-bin", retry.SerializeToString()))
    )


class _Refusal(Exception):
    def __init__(self, code: grpc.StatusCode, message: str, status: grpc.Status | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


class _Exporter:
    """One signal's ``Export`` handler: bytes in, bytes out."""

    def __init__(self, signal: str, engine: Any, authenticator: Authenticator, counters: ReceiverCounters) -> None:
        self.signal = signal
        self.engine = engine
        self.authenticator = authenticator
        self.counters = counters

    def __call__(self, body: bytes, context: grpc.ServicerContext) -> bytes:
        try:
            payload = self._export(body, context)
        except _Refusal as refusal:
            self.counters.count("grpc", self.signal, refusal.code.name)
            if refusal.status is not None:
                context.abort_with_status(refusal.status)
            context.abort(refusal.code, refusal.message)
        self.counters.count("grpc", self.signal, "OK")
        return payload

    def _export(self, body: bytes, context: grpc.ServicerContext) -> bytes:
        if self.authenticator.enabled:
            authorization = next(
                (value for key, value in context.invocation_metadata() if key == "authorization"), None
            )
            if not self.authenticator.allows(authorization):
                raise _Refusal(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")
        try:
            request = parse_request(body, self.signal)
        except ValueError as exc:
            raise _Refusal(grpc.StatusCode.INVALID_ARGUMENT, f"undecodable {self.signal} request: {exc}") from None
        response = RESPONSES[self.signal]()
        try:
            if self.signal == "traces":
                result = self.engine.ingest_traces(request, body)
                if result.rejected_spans:
                    response.partial_success.rejected_spans = result.rejected_spans
                    response.partial_success.error_message = result.error_message
            else:
                self.engine.ingest_passthrough(self.signal, body, PROTOBUF)
        except TooLarge as exc:  # could never be queued: no retry hint, a retry would be refused the same way
            raise _Refusal(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)) from None
        except Overloaded as exc:
            delay = getattr(exc, "retry_after_s", 1.0) or 1.0
            raise _Refusal(
                grpc.StatusCode.UNAVAILABLE,
                f"gateway overloaded: {exc}",
                retry_status(f"gateway overloaded: {exc}", delay),
            ) from None
        except Exception:  # decoded already, so not the client's fault; not acknowledged, so retryable
            logger.exception("ingest failed", extra={"signal": self.signal, "transport": "grpc"})
            message = "the gateway could not queue this request; retry later"
            raise _Refusal(grpc.StatusCode.UNAVAILABLE, message, retry_status(message, 1.0)) from None
        return response.SerializeToString()


class GrpcReceiver:
    """A grpcio server with the three OTLP services."""

    def __init__(
        self,
        settings: GrpcSettings,
        engine: Any,
        authenticator: Authenticator,
        counters: ReceiverCounters | None = None,
    ) -> None:
        self.settings = settings
        self.counters = counters or ReceiverCounters()
        options = [
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
            # keepalive: drop connections whose peer vanished; allow the clients' own pings
            ("grpc.keepalive_time_ms", 60_000),
            ("grpc.keepalive_timeout_ms", 20_000),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
        ]
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix="tokentrace-grpc"),
            options=options,
            maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
        )
        handlers = []
        for signal, service in SERVICES.items():
            method = grpc.unary_unary_rpc_method_handler(_Exporter(signal, engine, authenticator, self.counters))
            handlers.append(grpc.method_handlers_generic_handler(service, {"Export": method}))
        self.server.add_generic_rpc_handlers(tuple(handlers))
        address = f"{_host(settings.host)}:{settings.port}"
        if settings.tls.enabled:
            credentials = grpc.ssl_server_credentials(
                [(_read(settings.tls.key_file), _read(settings.tls.cert_file))],
                root_certificates=_read(settings.tls.client_ca_file) if settings.tls.client_ca_file else None,
                require_client_auth=bool(settings.tls.client_ca_file),
            )
            self.port = self.server.add_secure_port(address, credentials)
        else:
            self.port = self.server.add_insecure_port(address)
        if not self.port:
            raise OSError(f"cannot listen on {address}")

    def start(self) -> None:
        self.server.start()

    def stop(self, grace_s: float = 5.0) -> None:
        """Refuse new calls at once; calls in progress get ``grace_s`` to finish."""
        self.server.stop(grace_s).wait(grace_s + 1)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()
