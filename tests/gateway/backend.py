"""A real local OTLP backend for the gateway tests: a grpcio server and an HTTP server on 127.0.0.1.

Both speak the real OTLP wire formats (gRPC ``TraceService``/``MetricsService``/``LogsService``;
HTTP ``POST /v1/{traces,metrics,logs}`` with protobuf or JSON bodies, gzip or not), record every
request they accept, and can be told to misbehave:

* ``fail_next(n, kind)``: the next ``n`` requests fail with ``kind``:
  ``"unavailable"`` (gRPC UNAVAILABLE with RetryInfo / HTTP 503 with Retry-After),
  ``"exhausted"`` (RESOURCE_EXHAUSTED with RetryInfo / HTTP 429 with Retry-After),
  ``"invalid"`` (INVALID_ARGUMENT / HTTP 400: permanent, must not be retried),
  ``"bad_gateway"`` (HTTP 502 / gRPC UNAVAILABLE without RetryInfo).
* ``partial_next(n, rejected, message)``: accept but answer with OTLP ``partial_success``.
* ``stop()`` / ``start()``: go down and come back on the same ports.
* ``delay_s``: sleep before answering (timeouts).

RetryInfo travels the two ways clients read it: the ``grpc-status-details-bin`` trailer (a
``google.rpc.Status`` with details, what Go collectors read) and the ``google.rpc.retryinfo-bin``
trailer (what the OpenTelemetry Python exporter reads).

``tls=True`` serves both with a self-signed certificate made on the fly (``backend.ca_path`` is the
CA to trust; ``client_ca=True`` also requires a client certificate, see ``make_client_cert``).

Usage::

    with FakeBackend() as backend:
        ... export to backend.grpc_endpoint ("127.0.0.1:PORT") or backend.http_endpoint ("http://...")
        backend.wait_for_spans(10)
        backend.spans()  # list of opentelemetry.proto.trace.v1.trace_pb2.Span, in arrival order
"""

from __future__ import annotations

import datetime
import gzip
import http.server
import ipaddress
import json
import os
import socket
import ssl
import tempfile
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import duration_pb2, json_format
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

SIGNALS: dict[str, tuple[Any, Any]] = {
    "traces": (trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse),
    "metrics": (metrics_service_pb2.ExportMetricsServiceRequest, metrics_service_pb2.ExportMetricsServiceResponse),
    "logs": (logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse),
}

FAILURE_KINDS = ("unavailable", "exhausted", "invalid", "bad_gateway")


@dataclass
class Received:
    """One accepted request."""

    transport: str  # "grpc" | "http"
    signal: str  # "traces" | "metrics" | "logs"
    message: Any  # the parsed Export*ServiceRequest
    body: bytes  # the raw (decompressed) body as received
    headers: dict[str, str]  # lower-cased HTTP headers or gRPC metadata
    content_type: str = "application/x-protobuf"


@dataclass
class _Failure:
    kind: str
    retry_after_s: float | None


@dataclass
class _Partial:
    rejected: int
    message: str


@dataclass
class Attempt:
    """Every request, accepted or failed (for counting retries)."""

    transport: str
    signal: str
    outcome: str  # "ok" | "partial" | one of FAILURE_KINDS
    at: float = field(default_factory=time.monotonic)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- certificates -----------------------------------------------------------------------------------


def _write_cert(
    directory: str, name: str, subject: str, issuer_key: Any = None, issuer_cert: Any = None, is_ca: bool = False
) -> tuple[str, str, Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name_obj = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name_obj)
        .issuer_name(issuer_cert.subject if issuer_cert is not None else name_obj)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if not is_ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        ).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    cert = builder.sign(issuer_key if issuer_key is not None else key, hashes.SHA256())
    cert_path = os.path.join(directory, f"{name}.crt")
    key_path = os.path.join(directory, f"{name}.key")
    with open(cert_path, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return cert_path, key_path, key, cert


class Certificates:
    """A throwaway CA with a server certificate (localhost, 127.0.0.1) and a client certificate."""

    def __init__(self, directory: str | None = None) -> None:
        self.directory = directory or tempfile.mkdtemp(prefix="tokentrace-certs-")
        self.ca_path, self.ca_key_path, ca_key, ca_cert = _write_cert(
            self.directory, "ca", "tokentrace test CA", is_ca=True
        )
        self.server_cert_path, self.server_key_path, _, _ = _write_cert(
            self.directory, "server", "localhost", ca_key, ca_cert
        )
        self.client_cert_path, self.client_key_path, _, _ = _write_cert(
            self.directory, "client", "client", ca_key, ca_cert
        )

    @staticmethod
    def read(path: str) -> bytes:
        with open(path, "rb") as fh:
            return fh.read()


# --- the backend ------------------------------------------------------------------------------------


class FakeBackend:
    """An OTLP backend on 127.0.0.1 (gRPC and HTTP) that records what it gets and fails on demand."""

    def __init__(
        self,
        *,
        grpc_enabled: bool = True,
        http_enabled: bool = True,
        tls: bool = False,
        client_ca: bool = False,
        certificates: Certificates | None = None,
    ) -> None:
        self.grpc_enabled = grpc_enabled
        self.http_enabled = http_enabled
        self.tls = tls
        self.client_ca = client_ca
        self.certificates = certificates or (Certificates() if tls else None)
        self.grpc_port = free_port() if grpc_enabled else 0
        self.http_port = free_port() if http_enabled else 0
        self.delay_s = 0.0
        self.received: list[Received] = []
        self.attempts: list[Attempt] = []
        self._failures: list[_Failure] = []
        self._partials: list[_Partial] = []
        self._lock = threading.Condition()
        self._grpc_server: grpc.Server | None = None
        self._http_server: http.server.ThreadingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None

    # endpoints
    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        scheme = "https" if self.tls else "http"
        host = "localhost" if self.tls else "127.0.0.1"
        return f"{scheme}://{host}:{self.http_port}"

    @property
    def ca_path(self) -> str | None:
        return self.certificates.ca_path if self.certificates else None

    # control
    def fail_next(self, count: int, kind: str = "unavailable", retry_after_s: float | None = 0.05) -> None:
        """Fail the next ``count`` requests (any transport, any signal) with ``kind``."""
        if kind not in FAILURE_KINDS:
            raise ValueError(f"kind must be one of {FAILURE_KINDS}")
        with self._lock:
            self._failures.extend(_Failure(kind, retry_after_s) for _ in range(count))

    def partial_next(self, count: int, rejected: int, message: str = "rejected by the backend") -> None:
        with self._lock:
            self._partials.extend(_Partial(rejected, message) for _ in range(count))

    def clear(self) -> None:
        with self._lock:
            self.received.clear()
            self.attempts.clear()
            self._failures.clear()
            self._partials.clear()

    # lifecycle
    def start(self) -> FakeBackend:
        if self.grpc_enabled and self._grpc_server is None:
            self._start_grpc()
        if self.http_enabled and self._http_server is None:
            self._start_http()
        return self

    def stop(self) -> None:
        """Go down (connections refused) until ``start()``; ports are kept."""
        if self._grpc_server is not None:
            self._grpc_server.stop(grace=None).wait(5)
            self._grpc_server = None
        if self._http_server is not None:
            self._http_server.shutdown()
            self._http_server.server_close()
            self._http_server = None
            if self._http_thread is not None:
                self._http_thread.join(5)

    def __enter__(self) -> FakeBackend:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # what arrived
    def requests(self, signal: str = "traces") -> list[Received]:
        with self._lock:
            return [item for item in self.received if item.signal == signal]

    def spans(self) -> list[Any]:
        """Every span received, in arrival order (duplicates included)."""
        out = []
        for item in self.requests("traces"):
            for resource_spans in item.message.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    out.extend(scope_spans.spans)
        return out

    def span_ids(self) -> list[bytes]:
        return [span.span_id for span in self.spans()]

    def wait_for_spans(self, count: int, timeout_s: float = 10.0) -> list[Any]:
        """Block until at least ``count`` spans arrived; returns them (raises AssertionError on timeout)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                spans = [
                    span
                    for item in self.received
                    if item.signal == "traces"
                    for resource_spans in item.message.resource_spans
                    for scope_spans in resource_spans.scope_spans
                    for span in scope_spans.spans
                ]
                if len(spans) >= count:
                    return spans
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"backend got {len(spans)} spans, expected {count}")
                self._lock.wait(min(remaining, 0.05))

    def wait_for_requests(self, signal: str, count: int, timeout_s: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                items = [item for item in self.received if item.signal == signal]
                if len(items) >= count:
                    return items
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"backend got {len(items)} {signal} requests, expected {count}")
                self._lock.wait(min(remaining, 0.05))

    # shared request handling: returns (outcome, failure or partial)
    def _decide(self, transport: str, signal: str) -> tuple[str, _Failure | _Partial | None]:
        if self.delay_s:
            time.sleep(self.delay_s)
        with self._lock:
            if self._failures:
                failure = self._failures.pop(0)
                self.attempts.append(Attempt(transport, signal, failure.kind))
                return failure.kind, failure
            partial = self._partials.pop(0) if self._partials else None
            self.attempts.append(Attempt(transport, signal, "partial" if partial else "ok"))
            return ("partial" if partial else "ok"), partial

    def _record(self, item: Received) -> None:
        with self._lock:
            self.received.append(item)
            self._lock.notify_all()

    # gRPC
    def _start_grpc(self) -> None:
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8),
            options=[
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ],
        )
        backend = self
        handlers = []
        for signal, (request_cls, response_cls) in SIGNALS.items():
            handlers.append(self._grpc_handler(backend, signal, request_cls, response_cls))
        server.add_generic_rpc_handlers(tuple(handlers))
        address = f"127.0.0.1:{self.grpc_port}"
        if self.tls:
            assert self.certificates is not None
            credentials = grpc.ssl_server_credentials(
                [
                    (
                        Certificates.read(self.certificates.server_key_path),
                        Certificates.read(self.certificates.server_cert_path),
                    )
                ],
                root_certificates=Certificates.read(self.certificates.ca_path) if self.client_ca else None,
                require_client_auth=self.client_ca,
            )
            server.add_secure_port(address, credentials)
        else:
            server.add_insecure_port(address)
        server.start()
        self._grpc_server = server

    @staticmethod
    def _grpc_handler(backend: FakeBackend, signal: str, request_cls: Any, response_cls: Any) -> Any:
        service = {
            "traces": "opentelemetry.proto.collector.trace.v1.TraceService",
            "metrics": "opentelemetry.proto.collector.metrics.v1.MetricsService",
            "logs": "opentelemetry.proto.collector.logs.v1.LogsService",
        }[signal]

        def export(body: bytes, context: grpc.ServicerContext) -> bytes:
            _outcome, detail = backend._decide("grpc", signal)
            if isinstance(detail, _Failure):
                _grpc_abort(context, detail)
            message = request_cls.FromString(body)
            metadata = {key.lower(): value for key, value in context.invocation_metadata() if isinstance(value, str)}
            if "grpc-encoding" not in metadata:
                metadata.setdefault("grpc-accept-encoding", "")
            backend._record(Received("grpc", signal, message, body, metadata))
            response = response_cls()
            if isinstance(detail, _Partial):
                _fill_partial(signal, response, detail)
            return response.SerializeToString()

        method = grpc.unary_unary_rpc_method_handler(export)  # bytes in, bytes out: we parse ourselves
        return grpc.method_handlers_generic_handler(service, {"Export": method})

    # HTTP
    def _start_http(self) -> None:
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                signal = {"/v1/traces": "traces", "/v1/metrics": "metrics", "/v1/logs": "logs"}.get(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if signal is None:
                    self._reply(404, b"not found", "text/plain")
                    return
                _outcome, detail = backend._decide("http", signal)
                if isinstance(detail, _Failure):
                    status = {"unavailable": 503, "exhausted": 429, "invalid": 400, "bad_gateway": 502}[detail.kind]
                    extra = {}
                    if detail.retry_after_s is not None and detail.kind in ("unavailable", "exhausted"):
                        extra["Retry-After"] = str(max(0, round(detail.retry_after_s)))
                    body = status_pb2.Status(code=code_pb2.UNAVAILABLE, message=detail.kind).SerializeToString()
                    self._reply(status, body, "application/x-protobuf", extra)
                    return
                if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
                    raw = gzip.decompress(raw)
                content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                request_cls, response_cls = SIGNALS[signal]
                try:
                    if content_type == "application/json":
                        message = json_format.ParseDict(_hex_ids_to_base64(json.loads(raw)), request_cls())
                    else:
                        message = request_cls.FromString(raw)
                except Exception as exc:  # a malformed body is the client's bug: 400
                    self._reply(400, str(exc).encode(), "text/plain")
                    return
                headers = {key.lower(): value for key, value in self.headers.items()}
                backend._record(Received("http", signal, message, raw, headers, content_type))
                response = response_cls()
                if isinstance(detail, _Partial):
                    _fill_partial(signal, response, detail)
                if content_type == "application/json":
                    self._reply(200, json_format.MessageToJson(response).encode(), "application/json")
                else:
                    self._reply(200, response.SerializeToString(), "application/x-protobuf")

            def _reply(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        server = _QuietHTTPServer(("127.0.0.1", self.http_port), Handler)
        server.daemon_threads = True
        if self.tls:
            assert self.certificates is not None
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.certificates.server_cert_path, self.certificates.server_key_path)
            if self.client_ca:
                context.verify_mode = ssl.CERT_REQUIRED
                context.load_verify_locations(self.certificates.ca_path)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._http_server = server
        self._http_thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="fake-otlp-http"
        )
        self._http_thread.start()


class _QuietHTTPServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that timed out and hung up is not a backend error worth a traceback."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError, TimeoutError)):
            super().handle_error(request, client_address)


_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})


def _hex_ids_to_base64(node: Any) -> Any:
    """OTLP/JSON writes trace and span ids in hex where proto3 JSON (json_format) expects base64."""
    import base64

    if isinstance(node, dict):
        return {
            key: (
                base64.b64encode(bytes.fromhex(value)).decode()
                if key in _ID_KEYS and isinstance(value, str)
                else _hex_ids_to_base64(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_hex_ids_to_base64(item) for item in node]
    return node


def _fill_partial(signal: str, response: Any, partial: _Partial) -> None:
    field_name = {"traces": "rejected_spans", "metrics": "rejected_data_points", "logs": "rejected_log_records"}[signal]
    setattr(response.partial_success, field_name, partial.rejected)
    response.partial_success.error_message = partial.message


def _grpc_abort(context: grpc.ServicerContext, failure: _Failure) -> None:
    code = {
        "unavailable": grpc.StatusCode.UNAVAILABLE,
        "exhausted": grpc.StatusCode.RESOURCE_EXHAUSTED,
        "invalid": grpc.StatusCode.INVALID_ARGUMENT,
        "bad_gateway": grpc.StatusCode.UNAVAILABLE,
    }[failure.kind]
    trailers = []
    if failure.retry_after_s is not None and failure.kind in ("unavailable", "exhausted"):
        seconds = int(failure.retry_after_s)
        retry = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=seconds, nanos=int((failure.retry_after_s - seconds) * 1e9))
        )
        status = status_pb2.Status(code=code.value[0], message=failure.kind)
        status.details.add().Pack(retry)
        trailers.append(("grpc-status-details-bin", status.SerializeToString()))
        trailers.append(("google.rpc.retryinfo-bin", retry.SerializeToString()))
    if trailers:
        context.set_trailing_metadata(tuple(trailers))
    context.abort(code, failure.kind)


# --- payloads ---------------------------------------------------------------------------------------


def genai_request(
    traces: int = 1,
    spans_per_trace: int = 4,
    *,
    seed: int | None = None,
    model: str = "gpt-4o-mini",
    error: bool = False,
    service: str = "support-bot",
) -> trace_service_pb2.ExportTraceServiceRequest:
    """An ExportTraceServiceRequest of GenAI traces as an instrumented app sends them (no content):
    per trace an HTTP server root span and ``spans_per_trace - 1`` chat client spans under it."""
    import random

    from opentelemetry.proto.common.v1 import common_pb2
    from opentelemetry.proto.resource.v1 import resource_pb2
    from opentelemetry.proto.trace.v1 import trace_pb2

    rng = random.Random(seed)

    def kv(key: str, value: Any) -> common_pb2.KeyValue:
        if isinstance(value, bool):
            return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(bool_value=value))
        if isinstance(value, int):
            return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(int_value=value))
        if isinstance(value, float):
            return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(double_value=value))
        if isinstance(value, (list, tuple)):
            return common_pb2.KeyValue(
                key=key,
                value=common_pb2.AnyValue(
                    array_value=common_pb2.ArrayValue(
                        values=[common_pb2.AnyValue(string_value=str(item)) for item in value]
                    )
                ),
            )
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=str(value)))

    resource = resource_pb2.Resource(
        attributes=[
            kv("service.name", service),
            kv("service.version", "1.4.2"),
            kv("deployment.environment.name", "prod"),
            kv("telemetry.sdk.name", "opentelemetry"),
            kv("telemetry.sdk.language", "python"),
            kv("telemetry.sdk.version", "1.38.0"),
            kv("host.name", "ip-10-0-3-17"),
        ]
    )
    http_spans = []
    genai_spans = []
    start = 1_763_700_000_000_000_000 + rng.randrange(10**12)
    for _ in range(traces):
        trace_id = rng.getrandbits(128).to_bytes(16, "big")
        root_id = rng.getrandbits(64).to_bytes(8, "big")
        http_spans.append(
            trace_pb2.Span(
                trace_id=trace_id,
                span_id=root_id,
                name="POST /chat",
                kind=trace_pb2.Span.SPAN_KIND_SERVER,
                start_time_unix_nano=start,
                end_time_unix_nano=start + 2_500_000_000,
                flags=0x101,
                attributes=[
                    kv("http.request.method", "POST"),
                    kv("http.route", "/chat"),
                    kv("http.response.status_code", 200),
                    kv("url.scheme", "https"),
                ],
            )
        )
        for index in range(spans_per_trace - 1):
            begin = start + 10_000_000 + index * 700_000_000
            input_tokens = rng.randrange(200, 3000)
            output_tokens = rng.randrange(20, 800)
            attributes = [
                kv("gen_ai.operation.name", "chat"),
                kv("gen_ai.provider.name", "openai"),
                kv("gen_ai.request.model", model),
                kv("gen_ai.response.model", model + "-2024-07-18"),
                kv("gen_ai.response.id", f"chatcmpl-{rng.getrandbits(64):016x}"),
                kv("gen_ai.response.finish_reasons", ["stop"]),
                kv("gen_ai.request.max_tokens", 1024),
                kv("gen_ai.request.temperature", 0.2),
                kv("gen_ai.usage.input_tokens", input_tokens),
                kv("gen_ai.usage.output_tokens", output_tokens),
                kv("server.address", "api.openai.com"),
                kv("server.port", 443),
            ]
            status = trace_pb2.Status()
            if error and index == 0:
                attributes.append(kv("error.type", "RateLimitError"))
                status = trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR, message="rate limited")
            genai_spans.append(
                trace_pb2.Span(
                    trace_id=trace_id,
                    span_id=rng.getrandbits(64).to_bytes(8, "big"),
                    parent_span_id=root_id,
                    name=f"chat {model}",
                    kind=trace_pb2.Span.SPAN_KIND_CLIENT,
                    start_time_unix_nano=begin,
                    end_time_unix_nano=begin + 650_000_000,
                    attributes=attributes,
                    status=status,
                    flags=0x101,
                )
            )
    scopes = [
        trace_pb2.ScopeSpans(
            scope=common_pb2.InstrumentationScope(name="opentelemetry.instrumentation.fastapi", version="0.55b0"),
            spans=http_spans,
        )
    ]
    if genai_spans:
        scopes.append(
            trace_pb2.ScopeSpans(
                scope=common_pb2.InstrumentationScope(name="opentelemetry.instrumentation.openai_v2", version="2.1b0"),
                spans=genai_spans,
            )
        )
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource, scope_spans=scopes, schema_url="https://opentelemetry.io/schemas/1.38.0"
            )
        ]
    )
