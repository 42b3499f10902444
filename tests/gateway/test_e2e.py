"""End to end: the real OpenTelemetry SDK exporters → ``tokentrace gateway`` (a subprocess) → a backend.

The gateway runs as the command users run (``python -m tokentrace.cli gateway --config FILE``) in front
of :class:`~tests.gateway.backend.FakeBackend`; spans arrive enriched exactly as the in-process
pipeline enriches the same spans, over gRPC and HTTP, and what the gateway acknowledged survives a
SIGTERM while the backend is down.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.backend import FakeBackend
from tests.gateway.process import PIPELINE, GatewayProcess
from tokentrace.gateway.otlp_values import decode_attributes
from tokentrace.processor import build_pipeline, from_readable

ROOT = Path(__file__).resolve().parents[2]


# --- what the application emits -----------------------------------------------------------------------

CALLS = [  # (model, input tokens, output tokens, finish reason)
    ("gpt-4o-mini", 1000, 20, "length"),
    ("gpt-4o", 300, 120, "stop"),
    ("gpt-4o-mini", 50, 5, "stop"),
]


def emit(provider: TracerProvider, traces: int = 2) -> None:
    """``traces`` traces of an agent span around the LLM calls in :data:`CALLS`, as instrumentation makes them."""
    tracer = provider.get_tracer("app")
    for index in range(traces):
        with tracer.start_as_current_span(f"handle request {index}"):
            for model, input_tokens, output_tokens, finish in CALLS:
                with tracer.start_as_current_span(f"chat {model}", kind=SpanKind.CLIENT) as span:
                    span.set_attributes(
                        {
                            "gen_ai.operation.name": "chat",
                            "gen_ai.provider.name": "openai",
                            "gen_ai.request.model": model,
                            "gen_ai.response.model": model,
                            "gen_ai.usage.input_tokens": input_tokens,
                            "gen_ai.usage.output_tokens": output_tokens,
                            "gen_ai.request.max_tokens": 20,
                            "gen_ai.response.finish_reasons": (finish,),
                            "server.address": "api.openai.com",
                        }
                    )


def expected_spans(traces: int = 2) -> list[tuple[str, dict[str, Any]]]:
    """(name, attributes) of each span after the in-process pipeline, for the same spans, sorted."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "app"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    emit(provider, traces)
    provider.shutdown()
    pipeline = build_pipeline(PIPELINE)
    spans = pipeline.process([from_readable(span) for span in memory.get_finished_spans()])
    return _sorted((span.name, span.attributes) for span in spans)


def received_spans(backend: Any) -> list[tuple[str, dict[str, Any]]]:
    """(name, attributes) of each span the backend got, decoded from OTLP, sorted; each span once."""
    unique: dict[bytes, Any] = {}
    for span in backend.spans():
        unique.setdefault(span.span_id, span)
    return _sorted((span.name, decode_attributes(span.attributes)) for span in unique.values())


def _sorted(items: Any) -> list[tuple[str, dict[str, Any]]]:
    plain = [
        (name, {key: list(value) if isinstance(value, (tuple, list)) else value for key, value in attributes.items()})
        for name, attributes in items
    ]
    return sorted(plain, key=lambda item: json.dumps([item[0], sorted(item[1].items())], default=str))


def sender(exporter: Any, **resource: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "app", **resource}))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=50))
    return provider


@pytest.fixture
def backend() -> Iterator[FakeBackend]:
    with FakeBackend() as backend:
        yield backend


# --- tests --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("exporter_protocol", ["grpc", "http"])
def test_sdk_grpc_exporter_through_the_gateway(tmp_path: Path, backend: FakeBackend, exporter_protocol: str) -> None:
    with GatewayProcess(tmp_path, backend, protocol=exporter_protocol) as gateway:
        provider = sender(GrpcSpanExporter(endpoint=gateway.grpc_endpoint, insecure=True))
        emit(provider)
        assert provider.force_flush(10_000)
        provider.shutdown()
        backend.wait_for_spans(8)
    assert received_spans(backend) == expected_spans()
    enriched = [attrs for name, attrs in received_spans(backend) if name.startswith("chat")]
    assert all("gen_ai.usage.cost.amount" in attrs and "tokentrace.prompt.fingerprint" in attrs for attrs in enriched)
    assert any(attrs.get("tokentrace.flags") == ["truncated"] for attrs in enriched)
    assert gateway.process is not None and gateway.process.returncode == 0


def test_sdk_http_exporter_with_gzip_and_auth(tmp_path: Path, backend: FakeBackend) -> None:
    config = {"auth": {"bearer_tokens": ["tok-123"]}}
    with GatewayProcess(tmp_path, backend, config=config) as gateway:
        exporter = HttpSpanExporter(
            endpoint=gateway.http_url + "/v1/traces",
            compression=Compression.Gzip,
            headers={"Authorization": "Bearer tok-123"},
        )
        provider = sender(exporter)
        emit(provider)
        assert provider.force_flush(10_000)
        provider.shutdown()
        backend.wait_for_spans(8)
        # the same exporter without the token is refused, and its spans never reach the backend
        unauthenticated = HttpSpanExporter(endpoint=gateway.http_url + "/v1/traces")
        provider = sender(unauthenticated)
        emit(provider, traces=1)
        provider.force_flush(10_000)
        provider.shutdown()
        time.sleep(0.3)
        status, metrics = gateway.admin("/metrics")
        assert status == 200
        assert b'tokentrace_gateway_requests_total{outcome="401",signal="traces",transport="http"}' in metrics
    assert len(backend.spans()) == 8
    assert received_spans(backend) == expected_spans()


def test_metrics_pass_through_to_the_backend(tmp_path: Path, backend: FakeBackend) -> None:
    with GatewayProcess(tmp_path, backend, protocol="http") as gateway:
        reader = PeriodicExportingMetricReader(
            HttpMetricExporter(endpoint=gateway.http_url + "/v1/metrics"), export_interval_millis=60_000
        )
        provider = MeterProvider(metric_readers=[reader])
        provider.get_meter("app").create_counter("app.calls").add(3, {"model": "gpt-4o"})
        assert provider.force_flush(10_000)
        provider.shutdown()
        received = backend.wait_for_requests("metrics", 1)
    metric = received[0].message.resource_metrics[0].scope_metrics[0].metrics[0]
    assert (metric.name, metric.sum.data_points[0].as_int) == ("app.calls", 3)


def test_acknowledged_spans_survive_sigterm_while_the_backend_is_down(tmp_path: Path) -> None:
    backend = FakeBackend()  # not started: the gateway's exports fail and are retried
    gateway = GatewayProcess(tmp_path, backend, config={"shutdown_timeout_s": 1}).start()
    try:
        provider = sender(GrpcSpanExporter(endpoint=gateway.grpc_endpoint, insecure=True))
        emit(provider)
        assert provider.force_flush(10_000)  # acknowledged by the gateway
        provider.shutdown()
        status, _ = gateway.admin("/ready")
        assert status == 200
        assert gateway.stop() == 0  # drains for 1 s, then leaves the rest on disk
        assert any(record.get("message") == "gateway stopped" for record in gateway.logs)
    finally:
        gateway.kill()
    backend.start()
    try:
        with GatewayProcess(tmp_path, backend):  # same queue directory: re-sends what was left
            backend.wait_for_spans(8, timeout_s=20)
        assert len({span.span_id for span in backend.spans()}) == 8
        assert received_spans(backend) == expected_spans()
    finally:
        backend.stop()


def test_logs_are_json_and_leak_no_secrets(tmp_path: Path, backend: FakeBackend) -> None:
    config = {
        "auth": {"bearer_tokens": ["very-secret-token"]},
        "engine": {"exporter": {"headers": {"x-api-key": "backend-secret"}}},
    }
    with GatewayProcess(tmp_path, backend, config=config) as gateway:
        for path in ("/health", "/ready", "/metrics", "/config", "/debug/vars"):
            status, body = gateway.admin(path)
            assert b"very-secret-token" not in body and b"backend-secret" not in body
            assert b"127.0.0.1:%d" % backend.grpc_port not in body
            assert status == (404 if path in ("/config", "/debug/vars") else 200)
    text = "".join(gateway.stderr_lines)
    assert "very-secret-token" not in text and "backend-secret" not in text
    assert all(isinstance(json.loads(line), dict) for line in gateway.stderr_lines if line.strip())
    started = next(record for record in gateway.logs if record["message"] == "gateway started")
    assert started["auth"] == "bearer" and started["level"] == "info"


def test_a_bad_config_exits_2_with_the_key_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("receivers:\n  http:\n    prot: 4318\n")
    result = subprocess.run(
        [sys.executable, "-m", "tokentrace.cli", "gateway", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "receivers.http.prot: unknown key" in result.stderr


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_a_full_queue_makes_the_sdk_retry_until_it_drains(tmp_path: Path, transport: str) -> None:
    """Overload end to end: the SDK exporter gets UNAVAILABLE+RetryInfo / 429+Retry-After, backs off
    as told, and its spans arrive once the backend is back and the queue has room: nothing is lost."""
    filler = trace_service_pb2.ExportTraceServiceRequest()
    filler.resource_spans.add().scope_spans.add().spans.add(
        trace_id=b"\x07" * 16,
        span_id=b"\x07" * 8,
        name="filler" + " " * 50_000,
        start_time_unix_nano=1,
        end_time_unix_nano=2,
    )
    body = filler.SerializeToString()
    backend = FakeBackend()  # down at first: the filler stays queued
    # room for the filler or for the SDK's batch (a few KB), not for both
    config = {"engine": {"queue": {"max_bytes": len(body) + 1000}}}
    with GatewayProcess(tmp_path, backend, config=config) as gateway:
        request = urllib.request.Request(
            gateway.http_url + "/v1/traces",
            data=body,
            method="POST",
            headers={"Content-Type": "application/x-protobuf"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        if transport == "grpc":
            exporter: Any = GrpcSpanExporter(endpoint=gateway.grpc_endpoint, insecure=True, timeout=30)
        else:
            exporter = HttpSpanExporter(endpoint=gateway.http_url + "/v1/traces", timeout=30)
        timer = threading.Timer(2.0, backend.start)  # the backend comes back while the SDK is backing off
        timer.start()
        try:
            provider = sender(exporter)
            emit(provider)
            assert provider.force_flush(40_000)
            provider.shutdown()
            backend.wait_for_spans(9, timeout_s=20)
            _, metrics = gateway.admin("/metrics")
        finally:
            timer.join()
    try:
        refused = {
            (sample.labels.get("outcome"), sample.labels.get("transport")): sample.value
            for family in text_string_to_metric_families(metrics.decode())
            for sample in family.samples
            if sample.name == "tokentrace_gateway_requests_total"
        }
        assert refused.get(("UNAVAILABLE" if transport == "grpc" else "429", transport), 0) >= 1
        names = sorted(name.strip() for name, _ in received_spans(backend))
        assert names.count("filler") == 1 and len(names) == 9
        assert [item for item in received_spans(backend) if not item[0].startswith("filler")] == expected_spans()
    finally:
        backend.stop()


def test_self_telemetry_goes_out_as_otlp_metrics(tmp_path: Path, backend: FakeBackend) -> None:
    config = {"telemetry": {"otlp_endpoint": f"http://{backend.grpc_endpoint}", "interval_s": 0.5}}
    with GatewayProcess(tmp_path, backend, config=config) as gateway:
        provider = sender(GrpcSpanExporter(endpoint=gateway.grpc_endpoint, insecure=True))
        emit(provider)
        assert provider.force_flush(10_000)
        provider.shutdown()
        backend.wait_for_spans(8)
        deadline = time.monotonic() + 15
        received = 0.0
        while time.monotonic() < deadline and received < 8:
            for request in backend.requests("metrics"):
                for resource_metrics in request.message.resource_metrics:
                    service = {kv.key: kv.value.string_value for kv in resource_metrics.resource.attributes}
                    assert service["service.name"] == "tokentrace-gateway"
                    for scope_metrics in resource_metrics.scope_metrics:
                        for metric in scope_metrics.metrics:
                            if metric.name == "tokentrace.gateway.received":
                                received = max(
                                    received, *(point.as_double or point.as_int for point in metric.sum.data_points)
                                )
            time.sleep(0.2)
    assert received == 8


def test_sigint_drains_and_exits_0_like_sigterm(tmp_path: Path, backend: FakeBackend) -> None:
    gateway = GatewayProcess(tmp_path, backend).start()
    try:
        provider = sender(HttpSpanExporter(endpoint=gateway.http_url + "/v1/traces"))
        emit(provider, traces=1)
        assert provider.force_flush(10_000)
        provider.shutdown()
        assert gateway.stop(signal.SIGINT) == 0
    finally:
        gateway.kill()
    received = next(record for record in gateway.logs if record["message"] == "signal received")
    assert received["signal"] == "SIGINT"
    assert len(backend.spans()) == 4  # drained before exiting
