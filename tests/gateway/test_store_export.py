"""The gateway's local store: without a backend spans go to the embedded DuckDB store, and with
``store.keep_local`` to both, each span exactly once in the store whatever the retries."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from tests.gateway.backend import FakeBackend, genai_request
from tests.gateway.process import GatewayProcess
from tests.gateway.test_e2e import CALLS, emit, sender
from tokentrace.gateway import EngineSettings, ExporterSettings, Gateway, QueueSettings
from tokentrace.gateway.config import ConfigError, build_engine_settings, load
from tokentrace.gateway.export import GrpcExporter
from tokentrace.gateway.otlp_codec import decode_request
from tokentrace.gateway.queue import KIND_TRACES
from tokentrace.gateway.settings import StoreSettings
from tokentrace.gateway.store_export import FanOutExporter, StoreExporter
from tokentrace.processor import build_pipeline
from tokentrace.store.writer import connect

PIPELINE = {"pipeline": ["normalise", "enrich", "flags"]}


def recent(request: Any, seconds_ago: float = 600) -> Any:
    """``request`` with its spans moved to ``seconds_ago`` (the store's default 30-day retention
    would delete ``genai_request``'s fixed 2025 timestamps on the first write)."""
    spans = [span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]
    shift = time.time_ns() - int(seconds_ago * 1e9) - min(span.start_time_unix_nano for span in spans)
    for span in spans:
        span.start_time_unix_nano += shift
        span.end_time_unix_nano += shift
    return request


def make_gateway(
    tmp_path: Path,
    backend: FakeBackend | None = None,
    *,
    pipeline: dict | None = None,
    store: dict | None = None,
    **exporter,
) -> Gateway:
    exporter.setdefault("initial_backoff_s", 0.02)
    exporter.setdefault("max_backoff_s", 0.2)
    exporter.setdefault("timeout_s", 3.0)
    settings = EngineSettings(
        queue=QueueSettings(directory=str(tmp_path / "queue"), fsync="always"),
        exporter=ExporterSettings(endpoint=backend.grpc_endpoint if backend else "", **exporter),
        store=StoreSettings(**{"path": str(tmp_path / "spans.duckdb"), **(store or {})}),
        pipeline=PIPELINE if pipeline is None else pipeline,
        poll_interval_s=0.02,
    )
    gateway = Gateway(settings)
    gateway.start()
    return gateway


def stored(path: Path, columns: str = "*") -> list[dict[str, Any]]:
    with connect(path, read_only=True) as connection:
        cursor = connection.execute(f"SELECT {columns} FROM spans ORDER BY start_time, span_id")
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def span_keys(request: Any) -> set[tuple[str, str]]:
    return {(f"{span.trace_id:032x}", f"{span.span_id:016x}") for span in decode_request(request).spans}


def report(path: Path, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "tokentrace.cli", "report", "--store", str(path), "--json", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def backend():
    with FakeBackend() as server:
        yield server


# --- no backend: the store ----------------------------------------------------------------------------


def test_without_a_backend_enriched_spans_land_in_the_store_and_the_report_reads_them(tmp_path):
    path = tmp_path / "spans.duckdb"
    requests = [recent(genai_request(2, 4, seed=seed)) for seed in (1, 2, 3)]  # 6 traces, 24 spans, 18 calls
    gateway = make_gateway(tmp_path)
    assert isinstance(gateway._exporter, StoreExporter)
    for request in requests:
        gateway.ingest_traces(request)
    deadline = time.monotonic() + 10
    while gateway.stats()["exported"] < 24 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(stored(path, "span_id")) == 24  # committed before the queue let go of them
    gateway.shutdown(10)

    # what the in-process pipeline makes of the same spans
    expected = {}
    for request in requests:
        for span in build_pipeline(PIPELINE).process(decode_request(request).spans):
            expected[(f"{span.trace_id:032x}", f"{span.span_id:016x}")] = span.attributes
    rows = stored(path)
    assert {(row["trace_id"], row["span_id"]) for row in rows} == set(expected) and len(rows) == 24
    calls = [row for row in rows if row["operation"] == "chat"]
    assert len(calls) == 18
    for row in calls:
        attributes = expected[(row["trace_id"], row["span_id"])]
        assert row["cost_usd"] == pytest.approx(attributes["gen_ai.usage.cost.amount"], abs=1e-12)
        assert row["cost_usd"] > 0
        assert row["template"] == attributes["tokentrace.prompt.fingerprint"] and row["template"]
        assert row["service_name"] == "support-bot" and row["request_model"] == "gpt-4o-mini"
        assert json.loads(row["attributes"])["gen_ai.usage.cost.amount"] == row["cost_usd"]
    stats = gateway.stats()
    assert stats["exported"] == stats["store_written"] == 24
    assert stats["store_duplicates"] == 0 and stats["dropped"] == 0

    data = report(path)
    summary = data["summary"]
    assert (summary["calls"], summary["traces"], summary["errors"]) == (18, 6, 0)
    assert summary["cost_usd"] == pytest.approx(sum(row["cost_usd"] for row in calls))
    assert summary["input_tokens"] == sum(row["input_tokens"] for row in calls)
    assert summary["output_tokens"] == sum(row["output_tokens"] for row in calls)
    assert {row["key"]: row["calls"] for row in data["top_cost"]["model"]} == {
        "gpt-4o-mini-2024-07-18": 18
    }  # the response model


def test_a_batch_delivered_twice_is_stored_once(tmp_path):
    """A client re-sending what the gateway accepted, or the queue redelivering in-flight batches after
    a crash: the same spans reach the store again and must not double the rows (or the cost)."""
    path = tmp_path / "spans.duckdb"
    request = recent(genai_request(3, 4, seed=5))
    gateway = make_gateway(tmp_path, concurrency=1)
    gateway.ingest_traces(request)
    gateway.ingest_traces(request)
    gateway.shutdown(10)
    rows = stored(path, "trace_id, span_id")
    assert len(rows) == 12 and {(r["trace_id"], r["span_id"]) for r in rows} == span_keys(request)
    stats = gateway.stats()
    assert (stats["store_written"], stats["store_duplicates"], stats["exported"]) == (12, 12, 24)

    # the exporter alone, as after a crash: the same queued payload twice (and duplicates inside one batch)
    exporter = StoreExporter(StoreSettings(path=str(tmp_path / "other.duckdb")))
    payload = request.SerializeToString()
    assert exporter.send(KIND_TRACES, payload).status == "ok"
    assert exporter.send(KIND_TRACES, payload).status == "ok"
    doubled = recent(genai_request(1, 3, seed=6))
    doubled.resource_spans.append(doubled.resource_spans[0])
    assert exporter.send(KIND_TRACES, doubled.SerializeToString()).status == "ok"
    exporter.close()
    assert len(stored(tmp_path / "other.duckdb", "span_id")) == 15
    assert exporter.stats()["store_written"] == 15 and exporter.stats()["store_duplicates"] == 15


def test_metrics_and_logs_are_acknowledged_and_dropped_with_a_counter_and_one_log_line(tmp_path, caplog):
    metrics = ExportMetricsServiceRequest()
    metrics.resource_metrics.add().scope_metrics.add().metrics.add(name="requests")
    gateway = make_gateway(tmp_path)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            gateway.ingest_passthrough("metrics", metrics.SerializeToString(), "application/x-protobuf")
        gateway.ingest_passthrough("logs", b"{}", "application/json")
        gateway.shutdown(10)
    stats = gateway.stats()
    assert stats["store_passthrough_dropped"] == 4 and stats["passthrough"] == 4
    assert stats["queue_depth_batches"] == 0 and stats["dropped"] == 0
    assert caplog.text.count("holds spans only") == 1
    assert stored(tmp_path / "spans.duckdb") == []


def test_retention_settings_apply_to_what_the_gateway_writes(tmp_path):
    old = genai_request(1, 3, seed=7)  # its 2025 timestamps are past a 30-day retention
    new = recent(genai_request(1, 3, seed=8))
    gateway = make_gateway(tmp_path, pipeline={"pipeline": []})
    gateway.ingest_traces(old)
    gateway.ingest_traces(new)
    gateway.shutdown(10)
    assert {(r["trace_id"], r["span_id"]) for r in stored(tmp_path / "spans.duckdb")} == span_keys(new)

    unbounded = make_gateway(tmp_path / "b", pipeline={"pipeline": []}, store={"retention_days": None, "max_rows": 4})
    unbounded.ingest_traces(old)
    unbounded.ingest_traces(new)
    unbounded.shutdown(10)
    kept = stored(tmp_path / "b" / "spans.duckdb")
    assert len(kept) == 4  # max_rows keeps the newest
    assert {(r["trace_id"], r["span_id"]) for r in kept} >= span_keys(new)


# --- a backend and the store (keep_local) -----------------------------------------------------------------


def test_keep_local_delivers_every_span_to_both_and_backend_retries_add_no_rows(tmp_path, backend):
    path = tmp_path / "spans.duckdb"
    backend.fail_next(3, "unavailable", retry_after_s=0.05)
    requests = [recent(genai_request(2, 3, seed=20 + index)) for index in range(4)]  # 24 spans
    gateway = make_gateway(tmp_path, backend, store={"keep_local": True})
    assert isinstance(gateway._exporter, FanOutExporter)
    for request in requests:
        gateway.ingest_traces(request)
    backend.wait_for_spans(24)
    gateway.shutdown(10)
    expected = set().union(*(span_keys(request) for request in requests))
    rows = stored(path, "trace_id, span_id, cost_usd, operation")
    assert len(rows) == 24 and {(r["trace_id"], r["span_id"]) for r in rows} == expected
    received = {(span.trace_id.hex(), span.span_id.hex()) for span in backend.spans()}
    assert received == expected and len(backend.spans()) == 24
    assert all(row["cost_usd"] > 0 for row in rows if row["operation"] == "chat")
    assert [attempt.outcome for attempt in backend.attempts].count("unavailable") == 3
    stats = gateway.stats()
    assert stats["retried"] == 3 and stats["exported"] == 24
    # each batch was written to the store once: the retries went to the backend only
    assert (stats["store_written"], stats["store_duplicates"]) == (24, 0)


def test_keep_local_retries_after_a_restart_do_not_duplicate_rows(tmp_path, backend):
    """The store took the batches, the backend was down, the gateway stopped: after the restart the
    queue re-sends them (the fan-out's memory is gone) and the store's dedup keeps one row each."""
    path = tmp_path / "spans.duckdb"
    backend.stop()
    requests = [recent(genai_request(1, 4, seed=30 + index)) for index in range(3)]
    gateway = make_gateway(tmp_path, backend, store={"keep_local": True}, timeout_s=0.3, concurrency=3)
    for request in requests:
        gateway.ingest_traces(request)
    deadline = time.monotonic() + 10
    while gateway.stats()["store_written"] < 12 and time.monotonic() < deadline:
        time.sleep(0.02)
    gateway.shutdown(0.3)
    assert gateway.stats()["exported"] == 0 and len(stored(path, "span_id")) == 12
    backend.start()
    restarted = make_gateway(tmp_path, backend, store={"keep_local": True})
    backend.wait_for_spans(12)
    restarted.shutdown(10)
    assert len(stored(path, "span_id")) == 12
    assert restarted.stats()["store_duplicates"] == 12 and restarted.stats()["store_written"] == 0
    assert {(s.trace_id.hex(), s.span_id.hex()) for s in backend.spans()} == set().union(
        *(span_keys(r) for r in requests)
    )


def test_keep_local_sends_nothing_to_the_backend_until_the_store_takes_the_batch(tmp_path, backend):
    """Another process holds the store file: the batch waits (retried), then both get it once."""
    path = tmp_path / "spans.duckdb"
    gateway = make_gateway(tmp_path, backend, store={"keep_local": True, "timeout_s": 0.1})
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True); sys.stdin.read()",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        request = recent(genai_request(1, 4, seed=40))
        gateway.ingest_traces(request)
        deadline = time.monotonic() + 10
        while gateway.stats()["retried"] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert gateway.stats()["retried"] >= 2
        assert backend.attempts == []  # not sent while the store could not take it
    finally:
        holder.communicate("", timeout=10)  # let go of the file
    backend.wait_for_spans(4)
    gateway.shutdown(10)
    assert len(backend.spans()) == 4 and len(backend.attempts) == 1
    assert {(r["trace_id"], r["span_id"]) for r in stored(path)} == span_keys(request)


def test_keep_local_a_permanent_backend_refusal_drops_but_the_store_keeps_it(tmp_path, backend):
    backend.fail_next(1, "invalid")
    request = recent(genai_request(1, 3, seed=50))
    gateway = make_gateway(tmp_path, backend, store={"keep_local": True})
    gateway.ingest_traces(request)
    deadline = time.monotonic() + 10
    while gateway.stats()["dropped"] < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    gateway.shutdown(10)
    assert gateway.stats()["dropped"] == 3 and backend.spans() == []
    assert {(r["trace_id"], r["span_id"]) for r in stored(tmp_path / "spans.duckdb")} == span_keys(request)


def test_keep_local_metrics_go_to_the_backend_only(tmp_path, backend):
    metrics = ExportMetricsServiceRequest()
    metrics.resource_metrics.add().scope_metrics.add().metrics.add(name="requests")
    gateway = make_gateway(tmp_path, backend, store={"keep_local": True})
    gateway.ingest_passthrough("metrics", metrics.SerializeToString(), "application/x-protobuf")
    received = backend.wait_for_requests("metrics", 1)
    gateway.shutdown(10)
    assert received[0].message == metrics
    assert gateway.stats()["store_passthrough_dropped"] == 0


# --- configuration ------------------------------------------------------------------------------------------


def engine_settings(engine: dict[str, Any], environ: dict[str, str] | None = None) -> EngineSettings:
    """The engine's settings from the gateway's configuration, ``engine`` as the file's section."""
    overrides = {}
    for section, keys in engine.items():
        if not isinstance(keys, dict):
            overrides[f"engine.{section}"] = keys
        for key, value in keys.items() if isinstance(keys, dict) else ():
            overrides[f"engine.{section}.{key}"] = value
    return build_engine_settings(load(None, environ=environ or {}, overrides=overrides))


def test_destination_follows_the_configuration(tmp_path, monkeypatch):
    monkeypatch.delenv("TOKENTRACE_STORE_PATH", raising=False)
    default = engine_settings({})
    assert default.destination == "store" and default.store.resolved_path() == "tokentrace.duckdb"
    monkeypatch.setenv("TOKENTRACE_STORE_PATH", str(tmp_path / "env.duckdb"))
    assert engine_settings({}).store.resolved_path() == str(tmp_path / "env.duckdb")
    explicit = engine_settings({"exporter": {"protocol": "store"}, "store": {"path": "/data/s.duckdb"}})
    assert explicit.destination == "store" and explicit.store.resolved_path() == "/data/s.duckdb"
    assert engine_settings({"exporter": {"endpoint": "backend:4317"}}).destination == "backend"
    both = engine_settings(
        {"exporter": {"endpoint": "backend:4317"}},
        environ={
            "TOKENTRACE_GATEWAY_ENGINE__STORE__KEEP_LOCAL": "true",
            "TOKENTRACE_GATEWAY_ENGINE__STORE__RETENTION_DAYS": "7",
        },
    )
    assert both.destination == "backend+store" and both.store.keep_local and both.store.retention_days == 7
    assert engine_settings({"store": {"retention_days": None, "max_rows": None}}).store.retention_days is None


@pytest.mark.parametrize(
    ("engine", "message"),
    [
        (
            {"exporter": {"endpoint": "backend:4317", "protocol": "store"}},
            "exporter.endpoint is 'backend:4317' but exporter.protocol is 'store'",
        ),
        ({"exporter": {"protocol": "thrift"}}, "expected 'grpc', 'http' or 'store'"),
        ({"store": {"keep_locally": True}}, "store: unknown setting(s) ['keep_locally']"),
        ({"store": {"keep_local": "maybe"}}, "store.keep_local: expected true or false"),
        ({"store": {"retention_days": 0}}, "store.retention_days: expected a number > 0"),
        ({"store": {"max_rows": 1.5}}, "store.max_rows: expected an integer > 0"),
        ({"store": "spans.duckdb"}, "store: expected a mapping"),
    ],
)
def test_store_configuration_errors_name_the_key(engine, message):
    with pytest.raises(ConfigError) as error:
        engine_settings(engine)
    assert message in str(error.value)


def test_the_grpc_exporter_alone_when_keep_local_is_off(tmp_path, backend):
    gateway = make_gateway(tmp_path, backend)
    assert isinstance(gateway._exporter, GrpcExporter)
    gateway.shutdown(5)
    assert not (tmp_path / "spans.duckdb").exists()


# --- the gateway process ------------------------------------------------------------------------------------


def test_gateway_process_without_a_backend_writes_the_store_while_report_reads_it(tmp_path):
    """``tokentrace gateway --config`` with no exporter endpoint: spans from the OpenTelemetry SDK land
    in ``./tokentrace.duckdb`` (its working directory), and ``tokentrace report`` reads the file while
    the gateway keeps writing to it."""
    path = tmp_path / "tokentrace.duckdb"
    config = {"engine": {"exporter": {"endpoint": None}}}
    with GatewayProcess(tmp_path, None, config=config, env={"TOKENTRACE_STORE_PATH": ""}) as gateway:
        assert any("local store only" in record.get("message", "") for record in gateway.logs)
        provider = sender(GrpcSpanExporter(endpoint=gateway.grpc_endpoint, insecure=True))
        emit(provider, traces=2)
        assert provider.force_flush(10_000)
        deadline = time.monotonic() + 30
        while True:  # the store is written a moment after the acknowledgement
            data = report(path) if path.exists() else {"summary": {"calls": 0}}
            if data["summary"]["calls"] == 2 * len(CALLS) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert data["summary"]["calls"] == 2 * len(CALLS) and data["summary"]["traces"] == 2

        stop = threading.Event()
        sent = [2]

        def keep_sending() -> None:
            while not stop.is_set():
                emit(provider, traces=1)
                provider.force_flush(10_000)
                sent[0] += 1
                time.sleep(0.05)

        writer = threading.Thread(target=keep_sending)
        writer.start()
        try:
            readings = [report(path)["summary"]["calls"] for _ in range(3)]  # readers and the writer take turns
        finally:
            stop.set()
            writer.join(30)
        provider.shutdown()
        assert readings == sorted(readings) and readings[-1] >= 2 * len(CALLS)
        assert gateway.stop() == 0
    final = report(path)["summary"]
    assert (final["calls"], final["traces"]) == (sent[0] * len(CALLS), sent[0])
    assert final["cost_usd"] > 0
    rows = stored(path, "span_id")
    assert len(rows) == sent[0] * (len(CALLS) + 1) == len({row["span_id"] for row in rows})
