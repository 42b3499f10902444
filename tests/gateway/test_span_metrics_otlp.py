"""The gateway's span metrics, aggregated by the stage itself, reach an OTLP metrics receiver: real
receivers, engine, MeterProvider, PeriodicExportingMetricReader and OTLP exporter, a fake backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.metrics.v1 import metrics_pb2

from tests.gateway.backend import FakeBackend, genai_request
from tests.gateway.test_receivers_http import Client
from tokentrace.core import semconv
from tokentrace.gateway.config import load
from tokentrace.gateway.server import GatewayServer
from tokentrace.processor.stages import span_metrics
from tokentrace.processor.stages.span_metrics_aggregate import AggregatedMetric


def gateway(tmp_path: Path, backend: FakeBackend, temporality: str) -> GatewayServer:
    overrides = {
        "receivers.grpc.enabled": False,
        "receivers.http.port": 0,
        "admin.enabled": False,
        "shutdown_timeout_s": 2.0,
        "engine.queue.directory": str(tmp_path / "queue"),
        "engine.exporter.endpoint": backend.grpc_endpoint,
        "engine.pipeline": {"pipeline": ["normalise", "enrich", "span_metrics"]},
        "telemetry.otlp_endpoint": f"http://{backend.grpc_endpoint}",
        "telemetry.temporality": temporality,
        "telemetry.interval_s": 3600.0,  # exported at shutdown
    }
    return GatewayServer(load(None, environ={}, overrides=overrides))


@pytest.mark.parametrize(
    ("temporality", "expected"),
    [
        ("delta", metrics_pb2.AGGREGATION_TEMPORALITY_DELTA),
        ("cumulative", metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE),
    ],
)
def test_span_metrics_reach_the_otlp_receiver(tmp_path: Path, temporality: str, expected: int) -> None:
    request = genai_request(traces=2, spans_per_trace=4, seed=7)
    input_tokens = sum(
        attribute.value.int_value
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
        for attribute in span.attributes
        if attribute.key == semconv.USAGE_INPUT_TOKENS
    )
    with FakeBackend() as backend:
        server = gateway(tmp_path, backend, temporality)
        (stage,) = [stage for stage in server.engine.pipeline.stages if stage.name == "span_metrics"]
        assert isinstance(stage._duration, AggregatedMetric)  # the pre-aggregated path, not SDK instruments
        server.start()
        try:
            assert server.http is not None
            status, _, _ = Client(server.http.port).post("/v1/traces", request.SerializeToString())
            assert status == 200
            backend.wait_for_spans(8)
        finally:
            server.stop()  # the periodic reader's last collection and export
        metrics: dict[str, Any] = {}
        scopes: dict[str, Any] = {}
        for received in backend.requests("metrics"):
            for resource_metrics in received.message.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        metrics[metric.name] = metric
                        scopes[metric.name] = scope_metrics.scope
    requests = metrics[semconv.METRIC_LLM_REQUESTS]
    assert scopes[semconv.METRIC_LLM_REQUESTS].name == span_metrics.SCOPE
    assert requests.sum.aggregation_temporality == expected and requests.sum.is_monotonic
    assert sum(point.as_int for point in requests.sum.data_points) == 6  # three chat spans per trace
    tokens = metrics[semconv.METRIC_LLM_TOKENS]
    by_type = {}
    for point in tokens.sum.data_points:
        labels = {attribute.key: attribute.value.string_value for attribute in point.attributes}
        by_type[labels[semconv.TOKEN_TYPE]] = point.as_int
    assert by_type["input"] == input_tokens
    duration = metrics[semconv.METRIC_OPERATION_DURATION]
    assert duration.unit == "s" and duration.description == "GenAI operation duration."
    assert duration.histogram.aggregation_temporality == expected
    (point,) = duration.histogram.data_points  # every span of the request has the same attributes
    assert list(point.explicit_bounds) == list(semconv.DURATION_BUCKETS)
    assert point.count == 6 and sum(point.bucket_counts) == 6
    assert point.min == point.max == pytest.approx(0.65) and point.sum == pytest.approx(6 * 0.65)
    assert point.bucket_counts[list(semconv.DURATION_BUCKETS).index(1.28)] == 6  # 0.64 < 0.65 <= 1.28
    assert 0 < point.start_time_unix_nano <= point.time_unix_nano
    # the gateway's own metrics still come through the SDK, beside them
    assert "tokentrace.gateway.received" in metrics
