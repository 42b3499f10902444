"""The gateway process wired together in-process (real engine, real receivers, a fake backend):
admin endpoints, self-telemetry as Prometheus and as OTLP, overload with the real queue, stop order."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.backend import FakeBackend
from tests.gateway.test_receivers_http import Client, trace_request
from tokentrace.gateway import logs
from tokentrace.gateway.config import load
from tokentrace.gateway.server import GatewayServer


def config_for(tmp_path: Path, backend: FakeBackend, **engine: Any) -> Any:
    overrides = {
        "receivers.grpc.port": 0,
        "receivers.http.port": 0,
        "admin.port": 0,
        "shutdown_timeout_s": 2.0,
        "engine.queue.directory": str(tmp_path / "queue"),
        "engine.exporter.endpoint": backend.grpc_endpoint,
        "engine.exporter.initial_backoff_s": 0.05,
        "engine.exporter.max_backoff_s": 0.2,
        "engine.pipeline": {"pipeline": ["normalise", "enrich"]},
    }
    for key, value in engine.items():
        overrides[f"engine.{key}"] = value
    return load(None, environ={}, overrides=overrides)


def admin(server: GatewayServer, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    assert server.admin is not None
    request = urllib.request.Request(f"http://127.0.0.1:{server.admin.port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture
def backend() -> Iterator[FakeBackend]:
    with FakeBackend() as backend:
        yield backend


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def server(tmp_path: Path, backend: FakeBackend, reader: InMemoryMetricReader) -> Iterator[GatewayServer]:
    server = GatewayServer(config_for(tmp_path, backend), metric_readers=[reader])
    server.start()
    yield server
    server.stop()


def test_health_ready_and_nothing_else(server: GatewayServer) -> None:
    assert admin(server, "/health")[::2] == (200, b'{"status": "ok"}')
    assert admin(server, "/ready")[::2] == (200, b'{"status": "ready"}')
    for path in ("/", "/config", "/v1/traces", "/metrics/../config"):
        assert admin(server, path)[0] == 404
    status, headers, _ = admin(server, "/health", method="POST")
    assert (status, headers["Allow"]) == (405, "GET")


def test_not_ready_while_stopping(tmp_path: Path, backend: FakeBackend) -> None:
    server = GatewayServer(config_for(tmp_path, backend))
    assert not server.ready()  # before start
    server.start()
    assert server.ready()
    server.engine.shutdown(0.1)  # the engine stops accepting first: readiness follows it
    assert admin(server, "/ready")[0] == 503
    assert server.http is not None
    status, headers, _ = Client(server.http.port).post("/v1/traces", trace_request(1).SerializeToString())
    assert (status, headers["retry-after"]) == (503, "1")  # draining: 503, not the queue-full 429
    server.stop()
    assert not server.ready()


def test_prometheus_metrics_follow_the_engine_stats(server: GatewayServer, backend: FakeBackend) -> None:
    assert server.http is not None
    client = Client(server.http.port)
    assert client.post("/v1/traces", trace_request(3).SerializeToString())[0] == 200
    assert client.post("/v1/traces", b"\xff\xff\xff")[0] == 400
    backend.wait_for_spans(3)
    status, headers, body = admin(server, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }
    stats = server.engine.stats()
    assert samples[("tokentrace_gateway_received_total", ())] == stats["received"] == 3
    assert samples[("tokentrace_gateway_accepted_total", ())] == 3
    assert ("tokentrace_gateway_queue_depth_batches", ()) in samples  # a gauge: no _total
    assert ("tokentrace_gateway_export_latency_max_seconds", ()) in samples
    labels = (("outcome", "200"), ("signal", "traces"), ("transport", "http"))
    assert samples[("tokentrace_gateway_requests_total", labels)] == 1
    labels = (("outcome", "400"), ("signal", "traces"), ("transport", "http"))
    assert samples[("tokentrace_gateway_requests_total", labels)] == 1


def test_otlp_self_telemetry_through_the_sdk(
    server: GatewayServer, backend: FakeBackend, reader: InMemoryMetricReader
) -> None:
    assert server.grpc is not None
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc.port}") as channel:
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(trace_request(4), timeout=10)
    backend.wait_for_spans(4)
    points: dict[str, list[Any]] = {}
    for resource_metrics in reader.get_metrics_data().resource_metrics:
        assert resource_metrics.resource.attributes["service.name"] == "tokentrace-gateway"
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                points[metric.name] = list(metric.data.data_points)
    assert points["tokentrace.gateway.received"][0].value == 4
    assert points["tokentrace.gateway.accepted"][0].value == 4
    for name in ("refused", "rejected", "exported", "retried", "dropped", "queue_depth_batches", "export_latency_avg"):
        assert f"tokentrace.gateway.{name}" in points, name
    requests = {point.attributes["outcome"]: point.value for point in points["tokentrace.gateway.requests"]}
    assert requests == {"OK": 1}


def test_overload_with_the_real_queue_gives_retry_hints(tmp_path: Path) -> None:
    """Backend down and a tiny queue: the queue fills, then both receivers refuse with retry hints."""
    backend = FakeBackend()  # never started
    server = GatewayServer(config_for(tmp_path, backend, **{"queue.max_bytes": 4096}))
    server.start()
    try:
        assert server.http is not None and server.grpc is not None
        client = Client(server.http.port)
        body = trace_request(10).SerializeToString()
        statuses = [client.post("/v1/traces", body) for _ in range(20)]
        refused = [(status, headers) for status, headers, _ in statuses if status != 200]
        assert statuses[0][0] == 200 and refused
        assert all(status == 429 and int(headers["retry-after"]) >= 1 for status, headers in refused)
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc.port}") as channel, pytest.raises(grpc.RpcError) as caught:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(trace_request(10), timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        retry = error_details_pb2.RetryInfo()
        assert rpc_status.from_call(caught.value).details[0].Unpack(retry)
        assert retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9 > 0
        assert server.engine.stats()["refused"] >= 10
    finally:
        server.stop()


def test_a_request_larger_than_the_whole_queue_is_refused_for_good(tmp_path: Path, backend: FakeBackend) -> None:
    """Retrying could never help, so no retry hint: 413 / RESOURCE_EXHAUSTED without RetryInfo, while a
    request that fits is still taken in."""
    server = GatewayServer(config_for(tmp_path, backend, **{"queue.max_bytes": 4096}))
    server.start()
    try:
        assert server.http is not None and server.grpc is not None
        client = Client(server.http.port)
        huge = trace_request(200)
        assert huge.ByteSize() > 4096
        status, headers, _ = client.post("/v1/traces", huge.SerializeToString())
        assert status == 413 and "retry-after" not in headers
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc.port}") as channel, pytest.raises(grpc.RpcError) as caught:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(huge, timeout=10)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert rpc_status.from_call(caught.value) is None  # no RetryInfo: exporters must not retry it
        assert server.engine.stats()["refused"] == 2 * 200
        assert client.post("/v1/traces", trace_request(2).SerializeToString())[0] == 200
    finally:
        server.stop()


def test_stop_is_idempotent_and_logs_json(tmp_path: Path, backend: FakeBackend) -> None:
    stream = io.StringIO()
    handler = logs.configure("info", "json", stream)
    try:
        server = GatewayServer(config_for(tmp_path, backend))
        server.start()
        server.stop()
        server.stop()
    finally:
        logging.getLogger().removeHandler(handler)
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    messages = [record["message"] for record in records]
    assert messages.count("gateway started") == 1 and messages.count("gateway stopped") == 1
    started = records[messages.index("gateway started")]
    assert started["grpc_port"] == server.grpc.port and started["auth"] == "off"
    assert {"time", "level", "logger"} <= set(started)


def test_json_formatter_carries_extra_fields_and_exceptions() -> None:
    stream = io.StringIO()
    handler = logs.configure("debug", "json", stream)
    try:
        log = logging.getLogger("tokentrace.test")
        log.info("hello %s", "world", extra={"port": 4317})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        logging.getLogger().removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (first["message"], first["port"], first["level"]) == ("hello world", 4317, "info")
    assert "ValueError: boom" in second["exception"]


def test_a_warning_when_listening_beyond_loopback_without_auth(tmp_path: Path, backend: FakeBackend) -> None:
    stream = io.StringIO()
    handler = logs.configure("info", "json", stream)
    try:
        config = config_for(tmp_path, backend)
        exposed = dataclasses.replace(
            config,
            receivers=dataclasses.replace(
                config.receivers, http=dataclasses.replace(config.receivers.http, host="0.0.0.0")
            ),
        )
        for current, warned in ((config, False), (exposed, True)):
            server = GatewayServer(current)
            server.start()
            server.stop()
            records = [json.loads(line) for line in stream.getvalue().splitlines()]
            warnings = [r for r in records if r["message"] == "OTLP receivers listen beyond loopback without auth"]
            assert bool(warnings) is warned
            if warned:
                assert warnings[0]["hosts"] == ["0.0.0.0"] and warnings[0]["level"] == "warning"
    finally:
        logging.getLogger().removeHandler(handler)


def test_shutdown_delay_keeps_serving_while_not_ready(tmp_path: Path, backend: FakeBackend) -> None:
    config = dataclasses.replace(config_for(tmp_path, backend), shutdown_delay_s=1.0)
    server = GatewayServer(config)
    server.start()
    assert server.http is not None
    client = Client(server.http.port)
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    try:
        time.sleep(0.3)
        assert admin(server, "/ready")[0] == 503  # load balancers take it out...
        assert client.post("/v1/traces", trace_request(2).SerializeToString())[0] == 200  # ...while it still serves
    finally:
        stopper.join(10)
    backend.wait_for_spans(2)
    with pytest.raises(OSError):
        client.post("/v1/traces", trace_request(1).SerializeToString())  # then it stops listening
