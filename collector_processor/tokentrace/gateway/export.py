"""Sending queued batches to an OTLP backend over gRPC or HTTP, and deciding what a failure means.

Batches leave the queue already serialised, so both exporters send the bytes as they are: the gRPC
one through a raw-bytes unary method on the channel (the same wire call ``TraceServiceStub.Export``
makes, without parsing and re-serialising), the HTTP one as the POST body.

Each ``send`` returns an :class:`Outcome`: ``ok`` (with the backend's ``partial_success``, if any),
``retry`` (with the delay the backend asked for, from gRPC RetryInfo or HTTP Retry-After) or
``drop`` (a permanent error). Retryable per the OTLP spec: gRPC CANCELLED, DEADLINE_EXCEEDED, ABORTED,
OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS, and RESOURCE_EXHAUSTED only with RetryInfo; HTTP 429, 502, 503,
504, and connection failures. :func:`backoff_delays` spaces the retries (exponential, full jitter).
"""

from __future__ import annotations

import email.utils
import gzip
import logging
import random
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from tokentrace.gateway.queue import KIND_JSON, KIND_LOGS, KIND_METRICS, KIND_TRACES
from tokentrace.gateway.settings import ExporterSettings

logger = logging.getLogger(__name__)

SIGNAL_OF_KIND = {KIND_TRACES: "traces", KIND_METRICS: "metrics", KIND_LOGS: "logs"}
GRPC_METHODS = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
RETRYABLE_HTTP = frozenset({429, 502, 503, 504})
USER_AGENT = "tokentrace-gateway"


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # "ok" | "retry" | "drop"
    retry_after_s: float | None = None
    rejected: int = 0  # partial_success
    message: str = ""


OK = Outcome("ok")


def backoff_delays(initial_s: float, maximum_s: float, rng: random.Random | None = None) -> Iterator[float]:
    """Exponential backoff with full jitter: each delay uniform in [initial/2, min(max, initial * 2**n)]."""
    rng = rng or random.Random()
    ceiling = initial_s
    while True:
        yield rng.uniform(min(initial_s, ceiling) / 2, ceiling)
        ceiling = min(maximum_s, ceiling * 2)


def _partial(signal: str, response: Any) -> Outcome:
    if not response.HasField("partial_success"):
        return OK
    partial = response.partial_success
    rejected = getattr(
        partial,
        {"traces": "rejected_spans", "metrics": "rejected_data_points", "logs": "rejected_log_records"}[signal],
        0,
    )
    if not rejected and not partial.error_message:
        return OK
    return Outcome("ok", rejected=rejected, message=partial.error_message)


def _responses() -> dict[str, Any]:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    return {
        "traces": ExportTraceServiceResponse,
        "metrics": ExportMetricsServiceResponse,
        "logs": ExportLogsServiceResponse,
    }


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _json_to_protobuf(signal: str, payload: bytes) -> bytes:
    """Passthrough JSON for a gRPC backend (which speaks protobuf only)."""
    from tokentrace.gateway.otlp_json import decode_json

    return decode_json(payload, signal).SerializeToString()


class Exporter:
    """Common interface: ``send(kind, payload) -> Outcome``; ``close()``."""

    def send(self, kind: int, payload: bytes) -> Outcome:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


class GrpcExporter(Exporter):
    def __init__(self, settings: ExporterSettings) -> None:
        import grpc

        self._grpc = grpc
        self.settings = settings
        endpoint = settings.endpoint
        secure = bool(settings.ca_file or settings.client_cert_file)
        if "://" in endpoint:
            parsed = urlparse(endpoint)
            secure = secure or parsed.scheme == "https"
            endpoint = parsed.netloc
        if settings.insecure:
            secure = False
        # the channel reconnects on its own schedule (by default backing off up to 120 s): keep it within the
        # exporter's own retry backoff, or sending resumes long after a backend that was down is back
        reconnect_ms = max(100, round(settings.max_backoff_s * 1000))
        options = [
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.primary_user_agent", USER_AGENT),
            ("grpc.initial_reconnect_backoff_ms", min(1000, reconnect_ms)),
            ("grpc.max_reconnect_backoff_ms", reconnect_ms),
        ]
        if secure:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(settings.ca_file) if settings.ca_file else None,
                private_key=_read(settings.client_key_file) if settings.client_key_file else None,
                certificate_chain=_read(settings.client_cert_file) if settings.client_cert_file else None,
            )
            self.channel = grpc.secure_channel(endpoint, credentials, options=options)
        else:
            self.channel = grpc.insecure_channel(endpoint, options=options)
        responses = _responses()
        self._methods = {
            signal: self.channel.unary_unary(
                path, request_serializer=None, response_deserializer=responses[signal].FromString
            )
            for signal, path in GRPC_METHODS.items()
        }
        self._metadata = tuple((key.lower(), value) for key, value in settings.headers.items())
        self._compression = grpc.Compression.Gzip if settings.compression == "gzip" else grpc.Compression.NoCompression
        self._retryable = {
            grpc.StatusCode.CANCELLED,
            grpc.StatusCode.DEADLINE_EXCEEDED,
            grpc.StatusCode.ABORTED,
            grpc.StatusCode.OUT_OF_RANGE,
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DATA_LOSS,
        }

    def send(self, kind: int, payload: bytes) -> Outcome:
        signal = SIGNAL_OF_KIND[kind & ~KIND_JSON]
        if kind & KIND_JSON:
            try:
                payload = _json_to_protobuf(signal, payload)
            except ValueError as exc:
                return Outcome("drop", message=f"passthrough JSON not convertible to protobuf: {exc}")
        grpc = self._grpc
        try:
            response = self._methods[signal](
                payload, timeout=self.settings.timeout_s, metadata=self._metadata, compression=self._compression
            )
        except grpc.RpcError as error:
            code = error.code() if hasattr(error, "code") else None
            retry_after = _grpc_retry_delay(error)
            message = f"gRPC {getattr(code, 'name', code)}: {error.details() if hasattr(error, 'details') else error}"
            if code in self._retryable or (code == grpc.StatusCode.RESOURCE_EXHAUSTED and retry_after is not None):
                return Outcome("retry", retry_after_s=retry_after, message=message)
            return Outcome("drop", message=message)
        return _partial(signal, response)

    def close(self) -> None:
        self.channel.close()


def _grpc_retry_delay(error: Any) -> float | None:
    """RetryInfo from the trailers: ``grpc-status-details-bin`` (google.rpc.Status) or
    ``google.rpc.retryinfo-bin`` (what the OpenTelemetry Python exporter reads)."""
    try:
        trailers = error.trailing_metadata() or ()
    except Exception:
        return None
    from google.rpc import error_details_pb2, status_pb2

    for key, value in trailers:
        try:
            if key == "grpc-status-details-bin":
                status = status_pb2.Status.FromString(value)
                for detail in status.details:
                    if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                        info = error_details_pb2.RetryInfo()
                        detail.Unpack(info)
                        return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
            elif key == "google.rpc.retryinfo-bin":
                info = error_details_pb2.RetryInfo.FromString(value)
                return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
        except Exception:
            continue
    return None


class HttpExporter(Exporter):
    def __init__(self, settings: ExporterSettings) -> None:
        import urllib3

        self._urllib3 = urllib3
        self.settings = settings
        base = settings.endpoint.rstrip("/")
        if "://" not in base:
            base = ("https://" if settings.ca_file else "http://") + base
        self.urls = {
            "traces": base + settings.traces_path,
            "metrics": base + settings.metrics_path,
            "logs": base + settings.logs_path,
        }
        pool_options: dict[str, Any] = {
            "maxsize": max(1, settings.concurrency),
            "block": False,
            "retries": False,
            "timeout": urllib3.Timeout(total=settings.timeout_s),
        }
        if base.startswith("https://"):
            context = ssl.create_default_context(cafile=settings.ca_file or None)
            if settings.insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if settings.client_cert_file:
                context.load_cert_chain(settings.client_cert_file, settings.client_key_file)
            pool_options["ssl_context"] = context
        self.pool = urllib3.PoolManager(num_pools=4, **pool_options)
        self._headers = {"User-Agent": USER_AGENT, **settings.headers}
        self._responses = _responses()

    def send(self, kind: int, payload: bytes) -> Outcome:
        signal = SIGNAL_OF_KIND[kind & ~KIND_JSON]
        is_json = bool(kind & KIND_JSON)
        headers = dict(self._headers)
        headers["Content-Type"] = "application/json" if is_json else "application/x-protobuf"
        body = payload
        if self.settings.compression == "gzip":
            body = gzip.compress(payload, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        try:
            response = self.pool.request("POST", self.urls[signal], body=body, headers=headers, redirect=False)
        except self._urllib3.exceptions.HTTPError as exc:  # connection refused/reset, timeout, TLS
            return Outcome("retry", message=f"HTTP {type(exc).__name__}: {exc}")
        status = response.status
        if 200 <= status < 300:
            if is_json or not response.data:
                return OK
            try:
                return _partial(signal, self._responses[signal].FromString(response.data))
            except Exception:
                return OK  # accepted; an unreadable body is the backend's quirk
        message = f"HTTP {status}: {response.data[:200]!r}"
        if status in RETRYABLE_HTTP:
            return Outcome("retry", retry_after_s=_retry_after(response.headers.get("Retry-After")), message=message)
        return Outcome("drop", message=message)

    def close(self) -> None:
        self.pool.clear()


def _retry_after(value: str | None) -> float | None:
    """``Retry-After``: seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def build_exporter(settings: ExporterSettings) -> Exporter:
    if not settings.endpoint:
        raise ValueError("exporter.endpoint is not set")
    return GrpcExporter(settings) if settings.protocol == "grpc" else HttpExporter(settings)
