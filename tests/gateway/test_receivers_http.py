"""The OTLP/HTTP receiver against real HTTP clients, every status code the OTLP/HTTP spec names.

The receiver runs in-process on a free port in front of :class:`StubEngine`, which implements the
engine's interface (ingest, overload, partial rejection) so each refusal can be provoked on demand;
the end-to-end tests (``test_e2e.py``) run the real engine.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import socket
import ssl
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.gateway.backend import Certificates
from tokentrace.gateway.config import Authenticator, HttpSettings, TlsSettings
from tokentrace.gateway.engine import IngestResult, Overloaded
from tokentrace.gateway.otlp_json import decode_json
from tokentrace.gateway.receivers_http import HttpReceiver
from tokentrace.gateway.telemetry import ReceiverCounters

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class StubEngine:
    """The engine's interface; records what the receivers hand it and answers as a test says.

    JSON is decoded with the engine's own OTLP/JSON decoder, as the real ``ingest_traces_json`` does.
    """

    def __init__(self) -> None:
        self.traces: list[Any] = []
        self.passthrough: list[tuple[str, bytes, str]] = []
        self.overloaded_for: float | None = None  # raise Overloaded(retry_after_s=...) while set
        self.crash: Exception | None = None  # raise this (an engine bug)
        self.reject = 0  # spans to reject per request
        self.delay_s = 0.0
        self.lock = threading.Lock()

    def start(self) -> None:
        pass

    def ready(self) -> bool:
        return True

    def stats(self) -> dict[str, float]:
        spans = sum(_count(request) for request in self.traces)
        return {"received_spans": spans, "accepted_spans": spans - self.reject * len(self.traces), "queue_depth": 0}

    def shutdown(self, timeout_s: float) -> None:
        pass

    def _gate(self) -> None:
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.crash is not None:
            raise self.crash
        if self.overloaded_for is not None:
            error = Overloaded("queue full")
            error.retry_after_s = self.overloaded_for
            raise error

    def ingest_traces(self, request: Any, raw: bytes | None = None) -> IngestResult:
        self._gate()
        with self.lock:
            self.traces.append(request)
        spans = _count(request)
        rejected = min(self.reject, spans)
        return IngestResult(
            accepted_spans=spans - rejected,
            rejected_spans=rejected,
            error_message="rejected by policy" if rejected else "",
        )

    def ingest_traces_json(self, body: bytes) -> IngestResult:
        return self.ingest_traces(decode_json(body))

    def ingest_passthrough(self, signal: str, body: bytes, content_type: str) -> None:
        self._gate()
        with self.lock:
            self.passthrough.append((signal, body, content_type))


def _count(request: Any) -> int:
    return sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)


def trace_request(spans: int = 3, trace_id: bytes = b"\x01" * 16, name: str = "chat gpt-4o") -> Any:
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name", value=common_pb2.AnyValue(string_value="svc"))
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "test"
    for index in range(spans):
        scope.spans.append(
            trace_pb2.Span(
                trace_id=trace_id,
                span_id=(index + 1).to_bytes(8, "big"),
                name=name,
                kind=trace_pb2.Span.SPAN_KIND_CLIENT,
                start_time_unix_nano=1_000_000_000,
                end_time_unix_nano=2_000_000_000,
                attributes=[
                    common_pb2.KeyValue(key="gen_ai.operation.name", value=common_pb2.AnyValue(string_value="chat"))
                ],
            )
        )
    return request


def otlp_json(request: Any) -> bytes:
    """OTLP/JSON for ``request``: proto3 JSON with trace and span ids in hex, as the OTLP spec wants."""
    data = json_format.MessageToDict(request)

    def hexify(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                    node[key] = base64.b64decode(value).hex()
                else:
                    hexify(value)
        elif isinstance(node, list):
            for item in node:
                hexify(item)

    hexify(data)
    return json.dumps(data).encode()


def logs_request() -> Any:
    request = logs_service_pb2.ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    scope.log_records.append(logs_pb2.LogRecord(time_unix_nano=1, body=common_pb2.AnyValue(string_value="hello")))
    return request


def bomb(decompressed_bytes: int, wbits: int = 16 + zlib.MAX_WBITS) -> bytes:
    """``decompressed_bytes`` of zeros, compressed (about 1000:1)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    block = bytes(1024 * 1024)
    out = bytearray()
    for _ in range(decompressed_bytes // len(block)):
        out += compressor.compress(block)
    out += compressor.flush()
    return bytes(out)


class Client:
    """Raw HTTP/1.1 requests to the receiver (``http.client``: nothing hides status codes)."""

    def __init__(self, port: int, context: ssl.SSLContext | None = None) -> None:
        self.port = port
        self.context = context

    def connection(self, timeout: float = 10) -> http.client.HTTPConnection:
        if self.context is not None:
            return http.client.HTTPSConnection("localhost", self.port, timeout=timeout, context=self.context)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def post(
        self, path: str, body: bytes, content_type: str = PROTOBUF, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        connection = self.connection()
        try:
            connection.request("POST", path, body=body, headers={"Content-Type": content_type, **(headers or {})})
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def request(self, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        connection = self.connection()
        try:
            connection.request(method, path)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()


def start_receiver(engine: Any, tokens: tuple[bytes, ...] = (), **settings: Any) -> HttpReceiver:
    settings.setdefault("host", "127.0.0.1")
    receiver = HttpReceiver(HttpSettings(port=0, **settings), engine, Authenticator(tokens), ReceiverCounters())
    receiver.start()
    return receiver


@pytest.fixture
def engine() -> StubEngine:
    return StubEngine()


@pytest.fixture
def receiver(engine: StubEngine) -> Iterator[HttpReceiver]:
    receiver = start_receiver(
        engine, max_body_bytes=1024 * 1024, header_timeout_s=1.0, body_timeout_s=1.0, idle_timeout_s=2.0
    )
    yield receiver
    receiver.stop()


@pytest.fixture
def client(receiver: HttpReceiver) -> Client:
    return Client(receiver.port)


def _status(body: bytes, media: str) -> Any:
    if media == JSON:
        return json_format.Parse(body.decode(), status_pb2.Status())
    return status_pb2.Status.FromString(body)


# --- accepted -----------------------------------------------------------------------------------------


def test_protobuf_traces_are_ingested_and_answered_in_protobuf(client: Client, engine: StubEngine) -> None:
    request = trace_request(3)
    status, headers, body = client.post("/v1/traces", request.SerializeToString())
    assert status == 200
    assert headers["content-type"] == PROTOBUF
    response = trace_service_pb2.ExportTraceServiceResponse.FromString(body)
    assert not response.HasField("partial_success")
    assert engine.traces == [request]


def test_json_traces_are_ingested_and_answered_in_json(client: Client, engine: StubEngine) -> None:
    body = json.dumps(
        {
            "resourceSpans": [
                {
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": "5b8efff798038103d269b633813fc60c",
                                    "spanId": "eee19b7ec3c1b174",
                                    "name": "chat",
                                    "kind": 3,
                                    "startTimeUnixNano": "1",
                                    "endTimeUnixNano": "2",
                                }
                            ]
                        }
                    ]
                }
            ]
        }
    ).encode()
    status, headers, payload = client.post("/v1/traces", body, JSON + "; charset=utf-8")
    assert status == 200
    assert headers["content-type"] == JSON
    assert json.loads(payload) == {}
    span = engine.traces[0].resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id.hex() == "5b8efff798038103d269b633813fc60c"


def test_partial_success_reports_rejected_spans_in_the_request_encoding(client: Client, engine: StubEngine) -> None:
    engine.reject = 2
    status, _, body = client.post("/v1/traces", trace_request(3).SerializeToString())
    assert status == 200
    partial = trace_service_pb2.ExportTraceServiceResponse.FromString(body).partial_success
    assert (partial.rejected_spans, partial.error_message) == (2, "rejected by policy")
    json_body = otlp_json(trace_request(3))
    status, _, body = client.post("/v1/traces", json_body, JSON)
    assert status == 200
    assert json.loads(body) == {"partialSuccess": {"rejectedSpans": "2", "errorMessage": "rejected by policy"}}


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "deflate-raw"])
def test_compressed_bodies_are_decompressed(client: Client, engine: StubEngine, encoding: str) -> None:
    raw = trace_request(5).SerializeToString()
    if encoding == "gzip":
        body = gzip.compress(raw)
    elif encoding == "deflate":
        body = zlib.compress(raw)
    else:  # raw deflate, which some clients send as "deflate"
        compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        body = compressor.compress(raw) + compressor.flush()
    status, _, _ = client.post("/v1/traces", body, headers={"Content-Encoding": encoding.split("-")[0]})
    assert status == 200
    assert engine.traces[0].SerializeToString() == raw


def test_concatenated_gzip_members_are_one_body(client: Client, engine: StubEngine) -> None:
    raw = trace_request(4).SerializeToString()
    body = gzip.compress(raw[:10]) + gzip.compress(raw[10:])
    status, _, _ = client.post("/v1/traces", body, headers={"Content-Encoding": "gzip"})
    assert status == 200
    assert engine.traces[0].SerializeToString() == raw


@pytest.mark.parametrize("signal", ["metrics", "logs"])
@pytest.mark.parametrize("media", [PROTOBUF, JSON])
def test_metrics_and_logs_pass_through_untouched(client: Client, engine: StubEngine, signal: str, media: str) -> None:
    message = (
        logs_request()
        if signal == "logs"
        else metrics_service_pb2.ExportMetricsServiceRequest(
            resource_metrics=[
                {"scope_metrics": [{"metrics": [{"name": "m", "gauge": {"data_points": [{"as_int": 3}]}}]}]}
            ]
        )
    )
    raw = otlp_json(message) if media == JSON else message.SerializeToString()
    status, headers, _body = client.post(
        f"/v1/{signal}", gzip.compress(raw), media, headers={"Content-Encoding": "gzip"}
    )
    assert status == 200
    assert headers["content-type"] == media
    assert engine.passthrough == [(signal, raw, media)]  # decompressed, otherwise byte for byte
    assert not engine.traces


def test_chunked_transfer_encoding(receiver: HttpReceiver, engine: StubEngine) -> None:
    raw = trace_request(2).SerializeToString()
    chunks = [raw[:7], raw[7:]]
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n"
    reply = _raw_exchange(
        receiver.port,
        b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf"
        b"\r\nTransfer-Encoding: chunked\r\n\r\n" + body,
    )
    assert reply.startswith(b"HTTP/1.1 200")
    assert engine.traces[0].SerializeToString() == raw


def test_keep_alive_serves_several_requests_on_one_connection(receiver: HttpReceiver, engine: StubEngine) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=5)
    for _ in range(3):
        connection.request(
            "POST", "/v1/traces", body=trace_request(1).SerializeToString(), headers={"Content-Type": PROTOBUF}
        )
        response = connection.getresponse()
        response.read()
        assert response.status == 200
    connection.close()
    assert len(engine.traces) == 3


# --- refused ------------------------------------------------------------------------------------------


def test_body_over_the_limit_is_413_before_reading_it(client: Client, engine: StubEngine) -> None:
    status, headers, body = client.post("/v1/traces", bytes(1024 * 1024 + 1))
    assert status == 413
    assert headers["connection"] == "close"
    assert _status(body, PROTOBUF).code == code_pb2.RESOURCE_EXHAUSTED
    assert not engine.traces


@pytest.mark.parametrize("chunked", [False, True])
def test_gzip_bomb_is_413_with_bounded_memory(receiver: HttpReceiver, engine: StubEngine, chunked: bool) -> None:
    payload = bomb(512 * 1024 * 1024)  # 512 MiB of zeros in about 500 KiB; the limit is 1 MiB
    assert len(payload) < 1024 * 1024
    if chunked:
        head = b"Transfer-Encoding: chunked\r\n"
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)
    else:
        head = b"Content-Length: %d\r\n" % len(payload)
        body = payload
    tracemalloc.start()
    try:
        reply = _raw_exchange(
            receiver.port,
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: "
            b"application/x-protobuf\r\nContent-Encoding: gzip\r\n" + head + b"\r\n" + body,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reply.startswith(b"HTTP/1.1 413")
    assert peak < 16 * 1024 * 1024, f"peak {peak} bytes while refusing a bomb"
    assert not engine.traces


def test_deflate_bomb_is_413(client: Client) -> None:
    status, _, _ = client.post(
        "/v1/traces", bomb(64 * 1024 * 1024, zlib.MAX_WBITS), headers={"Content-Encoding": "deflate"}
    )
    assert status == 413


def test_corrupt_gzip_is_400(client: Client) -> None:
    status, _, body = client.post("/v1/traces", b"\x1f\x8b\x08\x00garbage", headers={"Content-Encoding": "gzip"})
    assert status == 400
    assert _status(body, PROTOBUF).code == code_pb2.INVALID_ARGUMENT
    truncated = gzip.compress(trace_request(3).SerializeToString())[:-12]
    status, _, _ = client.post("/v1/traces", truncated, headers={"Content-Encoding": "gzip"})
    assert status == 400


def test_garbage_protobuf_is_400_with_a_protobuf_status(client: Client, engine: StubEngine) -> None:
    status, headers, body = client.post("/v1/traces", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")
    assert status == 400
    assert headers["content-type"] == PROTOBUF
    error = _status(body, PROTOBUF)
    assert error.code == code_pb2.INVALID_ARGUMENT
    assert "undecodable" in error.message
    assert not engine.traces


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2]",
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "eee19b7ec3c1b174"}]}]}]}',
        b"\xff\xfe",
    ],
)
def test_garbage_json_is_400_with_a_json_status(client: Client, engine: StubEngine, body: bytes) -> None:
    status, headers, payload = client.post("/v1/traces", body, JSON)
    assert status == 400
    assert headers["content-type"] == JSON
    assert _status(payload, JSON).code == code_pb2.INVALID_ARGUMENT
    assert not engine.traces


@pytest.mark.parametrize("signal", ["metrics", "logs"])
def test_garbage_metrics_and_logs_are_400_not_forwarded(client: Client, engine: StubEngine, signal: str) -> None:
    assert client.post(f"/v1/{signal}", b"\xff\xff\xff\xff")[0] == 400
    assert client.post(f"/v1/{signal}", b"{oops", JSON)[0] == 400
    assert not engine.passthrough


@pytest.mark.parametrize("media", ["text/plain", "application/grpc", ""])
def test_unknown_content_type_is_415(client: Client, media: str) -> None:
    status, _, body = client.post("/v1/traces", trace_request(1).SerializeToString(), media)
    assert status == 415
    assert _status(body, PROTOBUF).code == code_pb2.INVALID_ARGUMENT


def test_unknown_content_encoding_is_415(client: Client) -> None:
    status, _, _ = client.post("/v1/traces", b"x", headers={"Content-Encoding": "br"})
    assert status == 415


def test_other_paths_are_404_and_other_methods_405(client: Client) -> None:
    assert client.post("/v1/spans", b"")[0] == 404
    assert client.request("GET", "/")[0] == 404
    status, headers, _ = client.request("GET", "/v1/traces")
    assert (status, headers["allow"]) == (405, "POST")
    assert client.request("PUT", "/v1/logs")[0] == 405


def test_missing_length_is_411(receiver: HttpReceiver) -> None:
    reply = _raw_exchange(
        receiver.port, b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 411")


def test_overload_is_429_with_retry_after(client: Client, engine: StubEngine) -> None:
    engine.overloaded_for = 2.2
    status, headers, body = client.post("/v1/traces", trace_request(1).SerializeToString())
    assert status == 429
    assert headers["retry-after"] == "3"  # whole seconds, rounded up
    assert _status(body, PROTOBUF).code == code_pb2.UNAVAILABLE
    status, headers, _ = client.post("/v1/logs", logs_request().SerializeToString())
    assert (status, headers["retry-after"]) == (429, "3")


def test_an_engine_failure_is_a_retryable_503_never_a_500(client: Client, engine: StubEngine) -> None:
    engine.crash = RuntimeError("disk on fire")
    status, headers, _ = client.post("/v1/traces", trace_request(1).SerializeToString())
    assert (status, headers["retry-after"]) == (503, "1")


# --- auth ---------------------------------------------------------------------------------------------


def test_bearer_token_required_when_auth_is_on(engine: StubEngine) -> None:
    receiver = start_receiver(engine, tokens=(b"s3cret", b"other"))
    try:
        client = Client(receiver.port)
        body = trace_request(1).SerializeToString()
        status, headers, payload = client.post("/v1/traces", body)
        assert status == 401
        assert headers["www-authenticate"].startswith("Bearer")
        assert _status(payload, PROTOBUF).code == code_pb2.UNAUTHENTICATED
        assert client.post("/v1/traces", body, headers={"Authorization": "Bearer wrong"})[0] == 401
        assert client.post("/v1/traces", body, headers={"Authorization": "Basic s3cret"})[0] == 401
        assert client.post("/v1/logs", body, headers={"Authorization": "Bearer"})[0] == 401
        assert not engine.traces and not engine.passthrough
        assert client.post("/v1/traces", body, headers={"Authorization": "Bearer s3cret"})[0] == 200
        assert client.post("/v1/traces", body, headers={"Authorization": "bearer other"})[0] == 200
        assert len(engine.traces) == 2
    finally:
        receiver.stop()


def test_unauthenticated_bodies_are_not_decompressed(engine: StubEngine) -> None:
    receiver = start_receiver(engine, tokens=(b"t",), max_body_bytes=1024)
    try:
        status, _, _ = Client(receiver.port).post(
            "/v1/traces", bomb(8 * 1024 * 1024), headers={"Content-Encoding": "gzip"}
        )
        assert status == 401
    finally:
        receiver.stop()


# --- slow clients -------------------------------------------------------------------------------------


def _raw_exchange(port: int, data: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except OSError:  # the server may answer (413) and close before taking the whole body
            pass
        return _read_all(sock)


def _read_all(sock: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            piece = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return out
        if not piece:
            return out
        out += piece
        if b"\r\n\r\n" in out:
            head, _, rest = out.partition(b"\r\n\r\n")
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:") and len(rest) >= int(line.split(b":")[1]):
                    return out


def _closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closed ``sock`` (fails if it is still open after ``seconds``)."""
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(1024):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"connection still open after {seconds} s")
    return time.monotonic() - started


def test_slowloris_headers_are_cut_off_at_the_header_deadline(receiver: HttpReceiver, client: Client) -> None:
    slow = socket.create_connection(("127.0.0.1", receiver.port))
    slow.sendall(b"POST /v1/traces HTTP/1.1\r\n")
    started = time.monotonic()
    try:
        for _ in range(30):  # a header byte every 0.1 s resets no per-read timeout: the deadline is absolute
            slow.sendall(b"X")
            time.sleep(0.1)
            if time.monotonic() - started > 1.6:
                break
    except OSError:
        pass  # closed under us: what we want
    else:
        pass
    elapsed = time.monotonic() - started + _closed_within(slow, 3.0)
    slow.close()
    assert elapsed < 2.5  # header_timeout_s=1.0, plus the reaper's tick
    assert client.post("/v1/traces", trace_request(1).SerializeToString())[0] == 200  # others still served


def test_slow_body_is_cut_off_at_the_body_deadline(receiver: HttpReceiver, engine: StubEngine) -> None:
    slow = socket.create_connection(("127.0.0.1", receiver.port))
    slow.sendall(
        b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
        b"Content-Length: 1000\r\n\r\n" + b"\x0a" * 10
    )
    assert _closed_within(slow, 3.0) < 2.5  # body_timeout_s=1.0
    slow.close()
    assert not engine.traces


def test_idle_keep_alive_connections_are_closed(receiver: HttpReceiver) -> None:
    idle = socket.create_connection(("127.0.0.1", receiver.port))
    assert 1.5 < _closed_within(idle, 4.0) < 3.5  # idle_timeout_s=2.0
    idle.close()


def test_connections_past_the_limit_get_503_while_others_finish(engine: StubEngine) -> None:
    receiver = start_receiver(engine, max_connections=2, header_timeout_s=3.0, idle_timeout_s=3.0)
    held = [socket.create_connection(("127.0.0.1", receiver.port)) for _ in range(2)]
    try:
        time.sleep(0.2)
        reply = _raw_exchange(receiver.port, b"POST /v1/traces HTTP/1.1\r\n")
        assert reply.startswith(b"HTTP/1.1 503")
        assert b"Retry-After: 1" in reply
        for sock in held:
            sock.close()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # the slots free up as the server notices the closes
            try:
                if Client(receiver.port).post("/v1/traces", trace_request(1).SerializeToString())[0] == 200:
                    break
            except (OSError, http.client.HTTPException):  # refused at the cap while the slots free up
                pass
            time.sleep(0.1)
        else:
            pytest.fail("connection slots never freed")
    finally:
        receiver.stop()


# --- TLS ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificates() -> Certificates:
    return Certificates()


def test_tls(engine: StubEngine, certificates: Certificates) -> None:
    receiver = start_receiver(engine, tls=TlsSettings(certificates.server_cert_path, certificates.server_key_path))
    try:
        context = ssl.create_default_context(cafile=certificates.ca_path)
        assert Client(receiver.port, context).post("/v1/traces", trace_request(1).SerializeToString())[0] == 200
        with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):  # plaintext to a TLS port
            Client(receiver.port).post("/v1/traces", b"")
        assert len(engine.traces) == 1
    finally:
        receiver.stop()


def test_mutual_tls_requires_a_client_certificate(engine: StubEngine, certificates: Certificates) -> None:
    tls = TlsSettings(certificates.server_cert_path, certificates.server_key_path, certificates.ca_path)
    receiver = start_receiver(engine, tls=tls)
    try:
        anonymous = ssl.create_default_context(cafile=certificates.ca_path)
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            Client(receiver.port, anonymous).post("/v1/traces", trace_request(1).SerializeToString())
        identified = ssl.create_default_context(cafile=certificates.ca_path)
        identified.load_cert_chain(certificates.client_cert_path, certificates.client_key_path)
        assert Client(receiver.port, identified).post("/v1/traces", trace_request(1).SerializeToString())[0] == 200
        assert len(engine.traces) == 1
    finally:
        receiver.stop()


def test_a_stalled_tls_handshake_does_not_block_accepting(engine: StubEngine, certificates: Certificates) -> None:
    receiver = start_receiver(
        engine, tls=TlsSettings(certificates.server_cert_path, certificates.server_key_path), header_timeout_s=1.0
    )
    stalled = socket.create_connection(("127.0.0.1", receiver.port))  # connects, never says hello
    try:
        context = ssl.create_default_context(cafile=certificates.ca_path)
        assert Client(receiver.port, context).post("/v1/traces", trace_request(1).SerializeToString())[0] == 200
        assert _closed_within(stalled, 3.0) < 2.5
    finally:
        stalled.close()
        receiver.stop()


def test_counters_record_outcomes(receiver: HttpReceiver, client: Client, engine: StubEngine) -> None:
    client.post("/v1/traces", trace_request(1).SerializeToString())
    client.post("/v1/traces", b"\xff\xff\xff\xff")
    counters = receiver.server.counters
    assert counters.get("http", "traces", "200") == 1
    assert counters.get("http", "traces", "400") == 1


def test_ipv6_listen_address(engine: StubEngine) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        receiver = start_receiver(engine, host="::1")
    except OSError:
        pytest.skip("::1 not configured")
    try:
        connection = http.client.HTTPConnection("::1", receiver.port, timeout=10)
        connection.request(
            "POST", "/v1/traces", body=trace_request(1).SerializeToString(), headers={"Content-Type": PROTOBUF}
        )
        assert connection.getresponse().status == 200
        connection.close()
    finally:
        receiver.stop()


def test_expect_100_continue(receiver: HttpReceiver, engine: StubEngine) -> None:
    """curl's ``Expect: 100-continue``: a refusal comes before the body is sent, a go-ahead before it too."""
    head = b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nExpect: 100-continue\r\n"
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=5) as sock:
        sock.sendall(head + b"Content-Length: %d\r\n\r\n" % (64 * 1024 * 1024))
        assert _read_all(sock).startswith(b"HTTP/1.1 413")
    body = trace_request(2).SerializeToString()
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=5) as sock:
        sock.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body))
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        assert _read_all(sock).startswith(b"HTTP/1.1 200")
    assert engine.traces == [trace_request(2)]
