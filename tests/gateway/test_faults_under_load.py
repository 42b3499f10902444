"""Faults under load, end to end: ``tokentrace gateway`` (a subprocess) fed by the real OpenTelemetry SDK
exporters (OTLP/gRPC and OTLP/HTTP through ``BatchSpanProcessor``) at a steady rate, in front of
:class:`~tests.gateway.backend.FakeBackend`.

* the backend goes down for a real minute under load and comes back: every span the SDK exporters got
  acknowledged reaches it, the gateway adds no duplicate, and its queue-depth self-telemetry rises
  during the outage and returns to 0;
* the gateway is killed with SIGKILL while it exports to a live backend (from inside the backend's
  handler, so a batch the backend has is never committed) and restarted on the same queue: every
  acknowledged span arrives, and every duplicate comes from a batch the queue counts as redelivered;
* thousands of malformed, oversized and gzip-bomb OTLP requests over HTTP and gRPC leave the gateway's
  resident memory flat, and it still accepts a valid request afterwards.

These are slow (about 70 s, 12 s and 20 s): they run in real time, on purpose.
"""

from __future__ import annotations

import gzip
import http.client
import os
import random
import shutil
import signal
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.backend import FakeBackend, Received
from tests.gateway.process import GatewayProcess
from tests.gateway.test_receivers_http import otlp_json
from tokentrace.gateway.queue import PersistentQueue

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
RATE_PER_EXPORTER = 150  # spans/s from each of the two SDK exporters: a few hundred spans/s in all
SDK_BATCH = 64  # BatchSpanProcessor.max_export_batch_size: the most spans one gateway request (and record) holds
MIB = 1024 * 1024


# --- the application side: SDK exporters at a steady rate, remembering what was acknowledged ---------------


class Acknowledged(SpanExporter):
    """Wraps an OTLP exporter; keeps the span ids of every batch whose export returned SUCCESS (the
    gateway acknowledged it), with when."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.acked: dict[bytes, float] = {}
        self.failed = 0
        self._lock = threading.Lock()

    def export(self, spans: Any) -> SpanExportResult:
        result = self.inner.export(spans)
        now = time.monotonic()
        with self._lock:
            if result is SpanExportResult.SUCCESS:
                for span in spans:
                    self.acked[span_id(span)] = now
            else:
                self.failed += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def span_id(span: ReadableSpan) -> bytes:
    return span.context.span_id.to_bytes(8, "big")


class Feeder:
    """One SDK pipeline (TracerProvider → BatchSpanProcessor → OTLP exporter) emitting GenAI client spans
    at ``rate`` per second from its own thread until ``stop``."""

    def __init__(self, exporter: SpanExporter, rate: int, name: str) -> None:
        self.exporter = Acknowledged(exporter)
        self.provider = TracerProvider(resource=Resource.create({"service.name": f"load-{name}"}))
        self.provider.add_span_processor(
            BatchSpanProcessor(
                self.exporter, schedule_delay_millis=100, max_export_batch_size=SDK_BATCH, max_queue_size=50_000
            )
        )
        self.rate = rate
        self.created = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"feeder-{name}", daemon=True)

    def start(self) -> Feeder:
        self._thread.start()
        return self

    def _run(self) -> None:
        tracer = self.provider.get_tracer("load")
        tick = 0.05
        per_tick = max(1, round(self.rate * tick))
        next_at = time.monotonic()
        while not self._stop.is_set():
            for _ in range(per_tick):
                with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT) as span:
                    span.set_attributes(
                        {
                            "gen_ai.operation.name": "chat",
                            "gen_ai.provider.name": "openai",
                            "gen_ai.request.model": "gpt-4o-mini",
                            "gen_ai.response.model": "gpt-4o-mini",
                            "gen_ai.usage.input_tokens": 120,
                            "gen_ai.usage.output_tokens": 30,
                            "load.seq": self.created,
                        }
                    )
                self.created += 1
            next_at += tick
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def stop(self, flush: bool = True) -> None:
        """Stop emitting; flush what the processor holds (``flush``) and shut the pipeline down."""
        self._stop.set()
        self._thread.join(10)
        if flush:
            self.provider.force_flush(30_000)
        self.provider.shutdown()

    @property
    def acked(self) -> dict[bytes, float]:
        return self.exporter.acked


def feeders(gateway: GatewayProcess, timeout_s: float = 10) -> list[Feeder]:
    """One feeder per OTLP transport, both at :data:`RATE_PER_EXPORTER`."""
    return [
        Feeder(
            GrpcSpanExporter(endpoint=gateway.grpc_endpoint, insecure=True, timeout=timeout_s),
            RATE_PER_EXPORTER,
            "grpc",
        ),
        Feeder(
            HttpSpanExporter(endpoint=gateway.http_url + "/v1/traces", timeout=timeout_s), RATE_PER_EXPORTER, "http"
        ),
    ]


# --- the gateway's self-telemetry -----------------------------------------------------------------


def engine_stats(gateway: GatewayProcess) -> dict[str, float]:
    """The engine's stats from the admin ``/metrics`` (Prometheus), by sample name, without the prefix."""
    status, body = gateway.admin("/metrics")
    assert status == 200
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name.startswith("tokentrace_gateway_") and not sample.labels:
                out[sample.name.removeprefix("tokentrace_gateway_").removesuffix("_total")] = sample.value
    return out


class DepthMonitor:
    """Samples ``queue_depth_batches`` twice a second: (monotonic time, depth)."""

    def __init__(self, gateway: GatewayProcess) -> None:
        self.gateway = gateway
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="depth-monitor", daemon=True)

    def start(self) -> DepthMonitor:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                depth = engine_stats(self.gateway)["queue_depth_batches"]
            except Exception:  # a scrape racing the end of the test
                continue
            self.samples.append((time.monotonic(), depth))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def peak(self, start: float, end: float) -> float:
        return max((depth for at, depth in self.samples if start <= at <= end), default=0.0)


def wait_for_ids(backend: FakeBackend, wanted: set[bytes], timeout_s: float) -> set[bytes]:
    """Block until every id in ``wanted`` reached the backend; returns the ids still missing on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        missing = wanted - set(backend.span_ids())
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(0.25)


def wait_for_empty_queue(gateway: GatewayProcess, timeout_s: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout_s
    while True:
        stats = engine_stats(gateway)
        if (stats["queue_depth_batches"] == 0 and stats["queue_in_flight_batches"] == 0) or time.monotonic() > deadline:
            return stats
        time.sleep(0.25)


def duplicates(ids: list[bytes]) -> dict[bytes, int]:
    counts: dict[bytes, int] = {}
    for item in ids:
        counts[item] = counts.get(item, 0) + 1
    return {item: count for item, count in counts.items() if count > 1}


# --- 1. the backend down for a minute under load -------------------------------------------------------

OUTAGE_S = 60.0


def test_backend_down_for_a_minute_under_load_then_everything_is_delivered(tmp_path: Path) -> None:
    backend = FakeBackend().start()
    gateway = GatewayProcess(tmp_path, backend).start()
    monitor = DepthMonitor(gateway).start()
    load = [feeder.start() for feeder in feeders(gateway)]
    try:
        time.sleep(3)
        backend.stop()  # connections refused from now on: the gateway queues and retries
        down_at = time.monotonic()
        time.sleep(OUTAGE_S)
        backend.start()  # same ports
        up_at = time.monotonic()
        time.sleep(3)  # the load goes on while the queue drains
        for feeder in load:
            feeder.stop()
        acked = {key: at for feeder in load for key, at in feeder.acked.items()}
        missing = wait_for_ids(backend, set(acked), timeout_s=60)
        stats = wait_for_empty_queue(gateway, timeout_s=10)
        drained_at = time.monotonic()
        monitor.stop()
        assert gateway.stop() == 0
    finally:
        monitor.stop()
        for feeder in load:
            feeder.stop(flush=False)
        gateway.kill()
        backend.stop()

    created = sum(feeder.created for feeder in load)
    acked_during_outage = sum(1 for at in acked.values() if down_at <= at <= up_at)
    delivered = backend.span_ids()
    resumed_s = min((attempt.at for attempt in backend.attempts if attempt.at >= up_at), default=float("inf")) - up_at
    print(
        f"\nresumed_s={resumed_s:.2f} created={created} acked={len(acked)} acked_during_outage={acked_during_outage} "
        f"delivered={len(delivered)} unique={len(set(delivered))} duplicates={len(delivered) - len(set(delivered))} "
        f"peak_depth={monitor.peak(down_at, up_at)} drain_s={drained_at - up_at:.1f} stats={stats}"
    )
    # the load really ran through the outage, and the gateway kept acknowledging it
    assert acked_during_outage >= 0.8 * 2 * RATE_PER_EXPORTER * OUTAGE_S
    assert len(acked) >= 0.95 * created
    # every acknowledged span arrived
    assert not missing, f"{len(missing)} acknowledged span(s) never reached the backend"
    # the gateway sent each span it accepted exactly once: nothing dropped, no redelivery, no duplicate of
    # its own making (a duplicate could only be an SDK re-send the gateway accepted twice, counted in accepted)
    assert stats["dropped"] == 0 and stats["redelivered_batches"] == 0
    assert len(delivered) == stats["accepted"] == stats["exported"]
    assert stats["retried"] > 0
    # the queue-depth self-telemetry rose during the outage and came back to 0
    # each SDK exporter sends about 10 batches/s (schedule_delay 100 ms); each is one queued record
    assert monitor.peak(down_at, up_at) >= 0.25 * 2 * 10 * OUTAGE_S
    assert stats["queue_depth_batches"] == 0 and stats["queue_depth_bytes"] == 0
    # the exporter's retries are at most max_backoff_s (0.2 s here) apart: sending resumes soon after the
    # backend is back, not after the gRPC channel's own reconnect backoff (up to 120 s by default)
    assert resumed_s < 5, f"the gateway resumed sending {resumed_s:.1f} s after the backend came back"


# --- 2. SIGKILL while exporting to a live backend ------------------------------------------------------


def redelivery_window(queue_directory: Path, scratch: Path) -> list[set[bytes]]:
    """The span ids of each record the queue will count as redelivered at its next start (handed to the
    exporter, not committed), read from a copy of the directory the killed gateway left."""
    copy = scratch / "queue-copy"
    shutil.copytree(queue_directory, copy)
    queue = PersistentQueue(str(copy), fsync_interval_s=None)
    try:
        window = []
        for _ in range(queue.redelivered_records):
            record = queue.get(timeout_s=1)
            assert record is not None
            request = trace_service_pb2.ExportTraceServiceRequest.FromString(record.payload)
            window.append(
                {
                    span.span_id
                    for resource_spans in request.resource_spans
                    for scope_spans in resource_spans.scope_spans
                    for span in scope_spans.spans
                }
            )
        return window
    finally:
        queue.close()


def test_sigkill_while_exporting_to_a_live_backend_loses_nothing_acknowledged(tmp_path: Path) -> None:
    backend = FakeBackend()
    backend.delay_s = 0.01  # each export takes a moment: the workers overlap
    killed = threading.Event()
    armed = threading.Event()
    record = backend._record

    def record_then_kill(item: Received) -> None:
        """The backend has the batch; the gateway dies before it reads the answer (so before it commits)."""
        record(item)
        if armed.is_set() and item.signal == "traces" and not killed.is_set():
            killed.set()
            assert gateway.process is not None
            os.kill(gateway.process.pid, signal.SIGKILL)

    backend._record = record_then_kill  # type: ignore[method-assign]
    backend.start()
    gateway = GatewayProcess(tmp_path / "first", backend).start()
    queue_directory = tmp_path / "first" / "queue"
    load = [feeder.start() for feeder in feeders(gateway, timeout_s=2)]
    try:
        time.sleep(4)
        before_kill = engine_stats(gateway)
        armed.set()
        assert killed.wait(10), "the gateway exported nothing under load"
        assert gateway.process is not None
        assert gateway.process.wait(10) == -signal.SIGKILL
        for feeder in load:  # what was in flight to the dead gateway fails: not acknowledged
            feeder.stop()
        acked = {key for feeder in load for key in feeder.acked}
        before_restart = backend.span_ids()
        window = redelivery_window(queue_directory, tmp_path)
        window_ids = set().union(*window) if window else set()

        # restart on the same queue directory (and the same configuration)
        second = GatewayProcess(
            tmp_path / "second", backend, config={"engine": {"queue": {"directory": str(queue_directory)}}}
        )
        second.start()
        try:
            missing = wait_for_ids(backend, acked, timeout_s=30)
            stats = wait_for_empty_queue(second, timeout_s=15)
            assert second.stop() == 0
        finally:
            second.kill()
    finally:
        for feeder in load:
            feeder.stop(flush=False)
        gateway.kill()
        backend.stop()

    delivered = backend.span_ids()
    repeated = duplicates(delivered)
    duplicate_spans = len(delivered) - len(set(delivered))
    concurrency = 2  # exporter.concurrency's default, which GatewayProcess keeps
    print(
        f"\nacked={len(acked)} delivered={len(delivered)} unique={len(set(delivered))} "
        f"delivered_before_kill={len(before_restart)} duplicates={duplicate_spans} "
        f"redelivered_batches={stats['redelivered_batches']} window_spans={len(window_ids)} "
        f"window_batch_sizes={[len(ids) for ids in window]} "
        f"in_flight_before_kill={before_kill['queue_in_flight_batches']}"
    )
    assert len(acked) > 500  # the load was real
    assert not missing, f"{len(missing)} acknowledged span(s) lost to the SIGKILL"
    # the restarted engine counts exactly the batches that were handed out and not committed
    assert stats["redelivered_batches"] == len(window) >= 1
    # ... which are those in flight (at most one per export worker) plus those the backend accepted out of
    # order behind one still in flight (the committed position only moves over a contiguous prefix): with
    # a backend answering in about 10 ms, at most one more per worker; each record is one SDK batch
    assert len(window) <= 2 * concurrency
    assert all(len(ids) <= SDK_BATCH for ids in window)
    # every duplicate comes from a redelivered batch, and there are at most as many as those batches hold
    assert set(repeated) <= window_ids
    assert all(count == 2 for count in repeated.values())
    assert 1 <= duplicate_spans <= len(window_ids) <= stats["redelivered_batches"] * SDK_BATCH
    # the batch the backend held when the gateway died is one of them
    assert window_ids & set(before_restart)


# --- 3. malformed OTLP does not leak memory --------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    try:
        import psutil  # type: ignore[import-not-found]

        return int(psutil.Process(pid).memory_info().rss)
    except ImportError:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def valid_request(spans: int = 3, seed: int = 0) -> trace_service_pb2.ExportTraceServiceRequest:
    rng = random.Random(seed)
    request = trace_service_pb2.ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    trace_id = rng.randbytes(16)
    for _ in range(spans):
        scope.spans.append(
            trace_pb2.Span(
                trace_id=trace_id,
                span_id=rng.randbytes(8),
                name="chat gpt-4o",
                kind=trace_pb2.Span.SPAN_KIND_CLIENT,
                start_time_unix_nano=1_000_000_000,
                end_time_unix_nano=2_000_000_000,
                attributes=[
                    common_pb2.KeyValue(key="gen_ai.operation.name", value=common_pb2.AnyValue(string_value="chat")),
                    common_pb2.KeyValue(key="gen_ai.usage.input_tokens", value=common_pb2.AnyValue(int_value=10)),
                ],
            )
        )
    return request


def nested_value(depth: int) -> common_pb2.AnyValue:
    value = common_pb2.AnyValue(string_value="leaf")
    for _ in range(depth):
        value = common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=[value]))
    return value


def _deeply_nested_protobuf(depth: int) -> bytes:
    """A span attribute nested ``depth`` levels deep, written by hand (the library refuses to build it)."""
    inner = common_pb2.AnyValue(string_value="leaf").SerializeToString()
    for _ in range(depth):
        array = b"\x0a" + _varint(len(inner)) + inner  # ArrayValue.values = 1
        inner = b"\x2a" + _varint(len(array)) + array  # AnyValue.array_value = 5
    key_value = b"\x0a\x01k" + b"\x12" + _varint(len(inner)) + inner
    span = trace_pb2.Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="deep").SerializeToString()
    span += b"\x4a" + _varint(len(key_value)) + key_value  # Span.attributes = 9
    scope = b"\x12" + _varint(len(span)) + span  # ScopeSpans.spans = 2
    resource = b"\x12" + _varint(len(scope)) + scope  # ResourceSpans.scope_spans = 2
    return b"\x0a" + _varint(len(resource)) + resource  # ExportTraceServiceRequest.resource_spans = 1


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


LIMIT = 1 * MIB  # the receivers' size limits in this test


class Malformed:
    """Deterministic malformed bodies: (body, content type, content encoding)."""

    def __init__(self, seed: int = 7) -> None:
        rng = random.Random(seed)
        self.rng = rng
        valid = valid_request(20, seed).SerializeToString()
        valid_json = otlp_json(valid_request(20, seed))
        self.protobuf: list[bytes] = [
            _deeply_nested_protobuf(200),  # past protobuf's recursion limit
            b"\xff" * 64,
            b"\x0a\xff\xff\xff\xff\x0f",  # a length far past the end
            valid[: len(valid) // 2],
            valid + b"\x0a",
        ]
        for size in (16, 300, 4000, 20_000):
            self.protobuf.extend(rng.randbytes(size) for _ in range(4))
        for _ in range(12):
            flipped = bytearray(valid)
            for _ in range(6):
                flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            self.protobuf.append(bytes(flipped))
        self.json: list[bytes] = [
            b"{",
            b"[" * 100_000 + b"]" * 100_000,  # deeper than the JSON parser recurses
            b'{"resourceSpans": ' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}",
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": 5}]}]}]}',
            b'{"resourceSpans": "not a list"}',
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "1e999999"}]}]}]}',
            valid_json[: len(valid_json) // 2],
            valid_json.replace(b'"', b"'"),
            "\ud800".encode("utf-8", "surrogatepass"),
        ]
        self.json.extend(rng.randbytes(2000) for _ in range(6))
        zeros = b"\0" * (64 * MIB)
        self.gzip_bomb = gzip.compress(zeros, 9)  # 64 MiB of zeros in about 64 KiB
        self.oversized = rng.randbytes(LIMIT + 100_000)
        self.corrupt_gzip = gzip.compress(valid)[:-20] + b"\x00" * 20

    def http_bodies(self) -> list[tuple[bytes, str, str]]:
        bodies = [(body, "application/x-protobuf", "") for body in self.protobuf]
        bodies += [(body, "application/json", "") for body in self.json]
        bodies += [(gzip.compress(body, 1), "application/x-protobuf", "gzip") for body in self.protobuf[:8]]
        bodies += [
            (self.gzip_bomb, "application/x-protobuf", "gzip"),
            (self.gzip_bomb, "application/json", "gzip"),
            (self.oversized, "application/x-protobuf", ""),
            (self.corrupt_gzip, "application/x-protobuf", "gzip"),
        ]
        return bodies

    def grpc_bodies(self, round_number: int) -> list[tuple[bytes, bool]]:
        """(body, gzip on the wire); the slow oversized one (1 MiB through HTTP/2 flow control) every 5th round."""
        bodies = [(body, False) for body in self.protobuf]
        bodies += [(body, True) for body in self.protobuf[:8]]
        bodies.append((b"\0" * (4 * MIB), True))  # 4 MiB decompressed, small on the wire
        if round_number % 5 == 0:
            bodies.append((self.oversized, False))
        return bodies


class HttpFlood:
    """Keep-alive HTTP client posting bodies; reconnects whenever the gateway closes the connection."""

    def __init__(self, url: str) -> None:
        parsed = urllib.parse.urlparse(url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.connection: http.client.HTTPConnection | None = None
        self.statuses: dict[int, int] = {}

    def post(self, body: bytes, content_type: str, encoding: str) -> int:
        headers = {"Content-Type": content_type}
        if encoding:
            headers["Content-Encoding"] = encoding
        for attempt in range(3):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
            try:
                self.connection.request("POST", "/v1/traces", body=body, headers=headers)
                response = self.connection.getresponse()
                response.read()
                if response.will_close:
                    self.connection.close()
                    self.connection = None
                self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
                return response.status
            except (ConnectionError, http.client.HTTPException, OSError):
                self.connection.close()
                self.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()


class GrpcFlood:
    def __init__(self, endpoint: str) -> None:
        self.channel = grpc.insecure_channel(endpoint.removeprefix("http://"))
        self.export = self.channel.unary_unary(TRACE_EXPORT, request_serializer=None, response_deserializer=None)
        self.codes: dict[str, int] = {}

    def post(self, body: bytes, compressed: bool) -> grpc.StatusCode:
        compression = grpc.Compression.Gzip if compressed else grpc.Compression.NoCompression
        try:
            self.export(body, timeout=10, compression=compression)
            code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            code = error.code()
        self.codes[code.name] = self.codes.get(code.name, 0) + 1
        return code

    def close(self) -> None:
        self.channel.close()


def flood(http_client: HttpFlood, grpc_client: GrpcFlood, bodies: Malformed, rounds: int) -> None:
    """``rounds`` passes over every malformed body, HTTP and gRPC at once (two client threads)."""
    http_bodies = bodies.http_bodies()
    errors: list[BaseException] = []

    def run_http() -> None:
        try:
            for _ in range(rounds):
                for body, media, encoding in http_bodies:
                    http_client.post(body, media, encoding)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=run_http, name="http-flood", daemon=True)
    thread.start()
    for round_number in range(rounds):
        for body, compressed in bodies.grpc_bodies(round_number):
            grpc_client.post(body, compressed)
    thread.join(300)
    assert not thread.is_alive()
    if errors:
        raise errors[0]


def test_malformed_otlp_floods_do_not_grow_the_gateways_memory(tmp_path: Path) -> None:
    config = {
        "receivers": {"grpc": {"max_message_bytes": LIMIT}, "http": {"max_body_bytes": LIMIT}},
        "engine": {"queue": {"fsync": "never"}},
    }
    bodies = Malformed()
    # two malloc arenas instead of glibc's one per thread (up to 8 per core): the HTTP receiver's threads
    # otherwise grow the RSS by some 20 MiB of arenas over the first thousands of requests and then plateau,
    # noise that would hide a leak of the same size; with two, what grows is what is kept
    env = {"MALLOC_ARENA_MAX": "2"}
    with FakeBackend() as backend, GatewayProcess(tmp_path, backend, config=config, env=env) as gateway:
        assert gateway.process is not None
        pid = gateway.process.pid
        http_client, grpc_client = HttpFlood(gateway.http_url), GrpcFlood(gateway.grpc_endpoint)
        try:
            flood(http_client, grpc_client, bodies, rounds=10)  # warm-up: threads, caches, allocator arenas
            time.sleep(1)
            before = rss_bytes(pid)
            http_client.statuses.clear()
            grpc_client.codes.clear()
            started = time.monotonic()
            trend = []
            for _ in range(10):
                flood(http_client, grpc_client, bodies, rounds=10)
                trend.append(round(rss_bytes(pid) / MIB, 1))
            flooded_s = time.monotonic() - started
            time.sleep(1)
            after = rss_bytes(pid)
            # still serving: a valid request on each transport is accepted and delivered
            good_http, good_grpc = valid_request(3, seed=101), valid_request(3, seed=102)
            assert http_client.post(good_http.SerializeToString(), "application/x-protobuf", "") == 200
            assert grpc_client.post(good_grpc.SerializeToString(), False) == grpc.StatusCode.OK
            json_body = json_format.MessageToJson(valid_request(1, seed=103)).encode()
            assert (
                http_client.post(
                    otlp_json(json_format.Parse(json_body, trace_service_pb2.ExportTraceServiceRequest())),
                    "application/json",
                    "",
                )
                == 200
            )
            backend.wait_for_spans(7, timeout_s=15)
            stats = engine_stats(gateway)
        finally:
            http_client.close()
            grpc_client.close()
    sent_http = sum(http_client.statuses.values())
    sent_grpc = sum(grpc_client.codes.values())
    print(
        f"\nrss_before={before / MIB:.1f}MiB rss_after={after / MIB:.1f}MiB growth={(after - before) / MIB:.1f}MiB "
        f"http={sent_http} {http_client.statuses} grpc={sent_grpc} {grpc_client.codes} flood_s={flooded_s:.1f} "
        f"rss_trend_mib={trend}"
    )
    assert sent_http + sent_grpc >= 10_000
    # garbage is the client's problem (4xx / INVALID_ARGUMENT, RESOURCE_EXHAUSTED), never a 5xx or a crash
    assert set(http_client.statuses) <= {200, 400, 413, 415} and http_client.statuses.get(413, 0) >= 3 * 100
    assert set(grpc_client.codes) <= {"OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"}
    assert grpc_client.codes.get("RESOURCE_EXHAUSTED", 0) >= 100 + 100 // 5
    assert stats["pipeline_errors"] == 0
    assert after - before < 10 * MIB, f"RSS grew by {(after - before) / MIB:.1f} MiB over the flood"
