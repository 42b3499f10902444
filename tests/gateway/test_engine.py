"""The engine end to end against a real local OTLP backend (gRPC and HTTP): pipeline, queue, retries."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from tests.gateway.backend import FakeBackend, free_port, genai_request
from tokentrace.gateway import EngineSettings, ExporterSettings, Gateway, Overloaded, QueueSettings
from tokentrace.gateway.otlp_values import decode_value
from tokentrace.gateway.settings import StoreSettings

NO_STAGES: dict = {"pipeline": []}
KEEP_ALL = {"sample": {"probability": 1.0, "decision_wait_s": 0.05}}


def endpoint(backend: FakeBackend, protocol: str) -> str:
    return backend.grpc_endpoint if protocol == "grpc" else backend.http_endpoint


def make_gateway(
    directory,
    backend: FakeBackend | None,
    protocol: str = "grpc",
    *,
    pipeline=None,
    queue: dict | None = None,
    target: str | None = None,
    **exporter,
) -> Gateway:
    exporter.setdefault("initial_backoff_s", 0.02)
    exporter.setdefault("max_backoff_s", 0.2)
    exporter.setdefault("timeout_s", 3.0)
    settings = EngineSettings(
        queue=QueueSettings(directory=str(directory), **{"fsync": "always", **(queue or {})}),
        exporter=ExporterSettings(endpoint=target or endpoint(backend, protocol), protocol=protocol, **exporter),
        pipeline=NO_STAGES if pipeline is None else pipeline,
        poll_interval_s=0.02,
    )
    gateway = Gateway(settings)
    gateway.start()
    return gateway


@pytest.fixture
def backend():
    with FakeBackend() as server:
        yield server


def attributes(span) -> dict:
    return {kv.key: decode_value(kv.value) for kv in span.attributes}


def sent_spans(request) -> list:
    return [span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_spans_pass_the_pipeline_and_reach_the_backend(tmp_path, backend, protocol):
    gateway = make_gateway(tmp_path, backend, protocol, pipeline=KEEP_ALL)
    request = genai_request(5, 4, seed=1)
    result = gateway.ingest_traces(request)
    assert (result.accepted_spans, result.rejected_spans) == (20, 0)
    spans = backend.wait_for_spans(20)
    gateway.shutdown(5)
    chat = [span for span in spans if attributes(span).get("gen_ai.operation.name") == "chat"]
    assert len(chat) == 15
    for span in chat:
        values = attributes(span)
        assert values["gen_ai.usage.cost.amount"] > 0  # enrich ran
        assert values["tokentrace.sampling.reason"]  # the sampler kept it
    assert {span.span_id for span in spans} == {span.span_id for span in sent_spans(request)}
    received = backend.requests()[0]
    assert received.message.resource_spans[0].resource == request.resource_spans[0].resource
    stats = gateway.stats()
    assert stats["received"] == stats["accepted"] == stats["exported"] == 20
    assert stats["queue_depth_batches"] == 0 and stats["dropped"] == 0


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_without_stages_spans_arrive_byte_identical_with_headers_and_gzip(tmp_path, backend, protocol):
    gateway = make_gateway(tmp_path, backend, protocol, headers={"x-api-key": "secret"})
    request = genai_request(3, 3, seed=2)
    gateway.ingest_traces(request)
    backend.wait_for_spans(9)
    gateway.shutdown(5)
    received = backend.requests()[0]
    assert received.message.SerializeToString() == request.SerializeToString()
    assert received.headers["x-api-key"] == "secret"
    if protocol == "http":
        assert received.headers["content-encoding"] == "gzip"
        assert received.headers["content-type"] == "application/x-protobuf"


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_retryable_failures_are_retried_honouring_the_backends_delay(tmp_path, backend, protocol):
    delay = 0.3 if protocol == "grpc" else 1  # Retry-After is whole seconds
    backend.fail_next(2, "unavailable", retry_after_s=delay)
    gateway = make_gateway(tmp_path, backend, protocol)
    gateway.ingest_traces(genai_request(1, 2, seed=3))
    backend.wait_for_spans(2)
    gateway.shutdown(5)
    attempts = backend.attempts
    assert [attempt.outcome for attempt in attempts] == ["unavailable", "unavailable", "ok"]
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(attempts)]
    assert all(gap >= delay * 0.9 for gap in gaps), gaps
    assert gateway.stats()["retried"] == 2 and gateway.stats()["exported"] == 2


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_resource_exhausted_is_retried_and_429_too(tmp_path, backend, protocol):
    backend.fail_next(1, "exhausted", retry_after_s=0.1 if protocol == "grpc" else 0)
    backend.fail_next(1, "bad_gateway", retry_after_s=None)
    gateway = make_gateway(tmp_path, backend, protocol)
    gateway.ingest_traces(genai_request(1, 2, seed=4))
    backend.wait_for_spans(2)
    gateway.shutdown(5)
    assert [attempt.outcome for attempt in backend.attempts] == ["exhausted", "bad_gateway", "ok"]


def test_grpc_resource_exhausted_without_retry_info_is_permanent(tmp_path, backend):
    backend.fail_next(1, "exhausted", retry_after_s=None)
    gateway = make_gateway(tmp_path, backend, "grpc", concurrency=1)
    gateway.ingest_traces(genai_request(1, 2, seed=5))
    gateway.ingest_traces(genai_request(1, 3, seed=6))
    backend.wait_for_spans(3)
    gateway.shutdown(5)
    assert gateway.stats()["dropped"] == 2 and gateway.stats()["exported"] == 3


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_permanent_errors_drop_the_batch_count_it_and_go_on(tmp_path, backend, protocol, caplog):
    backend.fail_next(1, "invalid")
    gateway = make_gateway(tmp_path, backend, protocol, concurrency=1)
    gateway.ingest_traces(genai_request(1, 2, seed=7))
    gateway.ingest_traces(genai_request(1, 3, seed=8))
    backend.wait_for_spans(3)
    gateway.shutdown(5)
    assert [attempt.outcome for attempt in backend.attempts] == ["invalid", "ok"]
    stats = gateway.stats()
    assert stats["dropped"] == 2 and stats["exported"] == 3 and stats["retried"] == 0
    assert "permanently" in caplog.text


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_partial_success_is_counted_and_logged(tmp_path, backend, protocol, caplog):
    backend.partial_next(1, rejected=2, message="2 spans too old")
    gateway = make_gateway(tmp_path, backend, protocol)
    gateway.ingest_traces(genai_request(1, 4, seed=9))
    backend.wait_for_spans(4)
    gateway.shutdown(5)
    assert gateway.stats()["backend_rejected"] == 2
    assert "2 spans too old" in caplog.text


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_backend_down_then_back_delivers_everything(tmp_path, backend, protocol):
    backend.stop()
    gateway = make_gateway(tmp_path, backend, protocol, max_backoff_s=0.1, timeout_s=0.5)
    requests = [genai_request(2, 3, seed=100 + index) for index in range(6)]
    for request in requests:
        gateway.ingest_traces(request)
    time.sleep(0.5)
    assert gateway.stats()["retried"] >= 1 and gateway.stats()["exported"] == 0
    backend.start()
    spans = backend.wait_for_spans(36, timeout_s=15)
    gateway.shutdown(5)
    expected = {span.span_id for request in requests for span in sent_spans(request)}
    assert {span.span_id for span in spans} == expected
    assert gateway.stats()["queue_depth_batches"] == 0


def test_shutdown_releases_spans_the_sampler_holds(tmp_path, backend):
    pipeline = {"sample": {"probability": 1.0, "decision_wait_s": 600}}
    gateway = make_gateway(tmp_path, backend, pipeline=pipeline)
    request = genai_request(4, 3, seed=10)
    del request.resource_spans[0].scope_spans[0]  # no root span: the sampler waits for the whole decision time
    gateway.ingest_traces(request)
    time.sleep(0.2)
    assert backend.spans() == []  # held until the trace is decided
    gateway.shutdown(5)
    assert len(backend.spans()) == 8


def test_sampled_out_spans_are_not_exported(tmp_path, backend):
    pipeline = {"sample": {"probability": 0.0, "keep_errors": True, "decision_wait_s": 0.01}}
    gateway = make_gateway(tmp_path, backend, pipeline=pipeline)
    failing = genai_request(1, 3, seed=11, error=True)
    gateway.ingest_traces(genai_request(3, 3, seed=12))
    gateway.ingest_traces(failing)
    spans = backend.wait_for_spans(3)
    gateway.shutdown(5)
    assert {span.span_id for span in backend.spans()} == {span.span_id for span in sent_spans(failing)}
    assert len(spans) == 3 and gateway.stats()["accepted"] == 12


def test_what_is_left_at_shutdown_stays_on_disk_and_goes_after_restart(tmp_path, backend):
    backend.stop()
    gateway = make_gateway(tmp_path, backend, timeout_s=0.3)
    requests = [genai_request(1, 4, seed=200 + index) for index in range(3)]
    for request in requests:
        gateway.ingest_traces(request)
    started = time.monotonic()
    gateway.shutdown(0.5)
    assert time.monotonic() - started < 3
    assert not gateway.ready()
    backend.start()
    restarted = make_gateway(tmp_path, backend)
    assert restarted.stats()["queue_recovered_batches"] == 3
    spans = backend.wait_for_spans(12)
    restarted.shutdown(5)
    assert sorted(span.span_id for span in spans) == sorted(s.span_id for r in requests for s in sent_spans(r))


def test_full_queue_refuses_with_overloaded_and_the_pipeline_never_sees_it(tmp_path, backend):
    backend.stop()
    gateway = make_gateway(tmp_path, backend, pipeline=KEEP_ALL, queue={"max_bytes": 20_000}, timeout_s=0.3)
    accepted = []
    with pytest.raises(Overloaded) as refused:
        for index in range(100):
            request = genai_request(2, 4, seed=300 + index)
            gateway.ingest_traces(request)
            accepted.append(request)
    assert refused.value.retry_after_s > 0
    assert 0 < len(accepted) < 100
    stats = gateway.stats()
    assert stats["refused"] == 8 and stats["accepted"] == 8 * len(accepted)
    with pytest.raises(Overloaded):
        gateway.ingest_passthrough("logs", b"x" * 3_000, "application/x-protobuf")  # would fit an empty queue
    backend.start()
    backend.wait_for_spans(8 * len(accepted), timeout_s=15)
    gateway.shutdown(5)
    delivered = {span.span_id for span in backend.spans()}
    assert delivered == {span.span_id for request in accepted for span in sent_spans(request)}


def test_invalid_spans_are_rejected_with_a_message_and_the_rest_exported(tmp_path, backend):
    gateway = make_gateway(tmp_path, backend)
    request = genai_request(1, 3, seed=13)
    request.resource_spans[0].scope_spans[0].spans.add(trace_id=b"short", span_id=b"\x01" * 8, name="broken")
    result = gateway.ingest_traces(request)
    assert (result.accepted_spans, result.rejected_spans) == (3, 1)
    assert "broken" in result.error_message and "16 bytes" in result.error_message
    backend.wait_for_spans(3)
    gateway.shutdown(5)
    assert gateway.stats()["rejected"] == 1 and len(backend.spans()) == 3


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_otlp_json_traces_are_decoded_and_exported(tmp_path, backend, protocol):
    from tests.gateway.test_otlp_codec import otlp_json

    gateway = make_gateway(tmp_path, backend, protocol)
    request = genai_request(2, 2, seed=14)
    result = gateway.ingest_traces_json(otlp_json(request).encode())
    assert result.accepted_spans == 4
    with pytest.raises(ValueError):
        gateway.ingest_traces_json(b"{not json")
    backend.wait_for_spans(4)
    gateway.shutdown(5)
    assert backend.requests()[0].message == request


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_metrics_and_logs_pass_through_untouched(tmp_path, backend, protocol):
    metrics = json.loads(
        json.dumps(
            {
                "resourceMetrics": [
                    {
                        "scopeMetrics": [
                            {
                                "metrics": [
                                    {
                                        "name": "requests",
                                        "sum": {
                                            "dataPoints": [{"asInt": "7", "timeUnixNano": "100"}],
                                            "aggregationTemporality": 2,
                                            "isMonotonic": True,
                                        },
                                    }
                                ]
                            }
                        ]
                    }
                ]
            }
        )
    )
    metrics_message = json_format.ParseDict(metrics, ExportMetricsServiceRequest())
    logs_message = ExportLogsServiceRequest()
    logs_message.resource_logs.add().scope_logs.add().log_records.add(
        time_unix_nano=5, severity_number=9, trace_id=b"\x01" * 16, span_id=b"\x02" * 8
    ).body.string_value = "hello"
    logs_json = json.dumps(
        {
            "resourceLogs": [
                {
                    "scopeLogs": [
                        {
                            "logRecords": [
                                {
                                    "timeUnixNano": "5",
                                    "severityNumber": 9,
                                    "traceId": "01" * 16,
                                    "spanId": "02" * 8,
                                    "body": {"stringValue": "hello"},
                                }
                            ]
                        }
                    ]
                }
            ]
        }
    )
    gateway = make_gateway(tmp_path, backend, protocol, concurrency=1)
    gateway.ingest_passthrough("metrics", metrics_message.SerializeToString(), "application/x-protobuf")
    gateway.ingest_passthrough("logs", logs_json.encode(), "application/json")
    with pytest.raises(ValueError):
        gateway.ingest_passthrough("profiles", b"", "application/x-protobuf")
    backend.wait_for_requests("logs", 1)
    gateway.shutdown(5)
    assert backend.requests("metrics")[0].message == metrics_message
    received_logs = backend.requests("logs")[0]
    assert received_logs.message == logs_message  # hex ids decoded right on either path
    if protocol == "http":
        assert received_logs.body == logs_json.encode()  # forwarded as received
        assert received_logs.content_type == "application/json"


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_tls_with_a_client_certificate(tmp_path, protocol):
    with FakeBackend(tls=True, client_ca=True) as backend:
        certificates = backend.certificates
        target = f"https://localhost:{backend.grpc_port}" if protocol == "grpc" else backend.http_endpoint
        gateway = make_gateway(
            tmp_path,
            backend,
            protocol,
            target=target,
            ca_file=certificates.ca_path,
            client_cert_file=certificates.client_cert_path,
            client_key_file=certificates.client_key_path,
        )
        gateway.ingest_traces(genai_request(1, 2, seed=15))
        backend.wait_for_spans(2)
        gateway.shutdown(5)
        assert gateway.stats()["exported"] == 2


def test_tls_without_the_ca_is_retried_not_dropped(tmp_path):
    with FakeBackend(tls=True) as backend:
        gateway = make_gateway(tmp_path, backend, "http", target=backend.http_endpoint, timeout_s=0.5)
        gateway.ingest_traces(genai_request(1, 2, seed=16))
        time.sleep(0.5)
        assert backend.spans() == [] and gateway.stats()["retried"] >= 1
        gateway.shutdown(0.2)
        assert gateway.stats()["dropped"] == 0 and gateway.stats()["queue_depth_batches"] == 1


def test_ready_and_refusal_outside_the_running_window(tmp_path, backend):
    settings = EngineSettings(
        queue=QueueSettings(directory=str(tmp_path)),
        exporter=ExporterSettings(endpoint=backend.grpc_endpoint),
        pipeline=NO_STAGES,
    )
    gateway = Gateway(settings)
    assert not gateway.ready()
    with pytest.raises(Overloaded):
        gateway.ingest_traces(genai_request(1, 2, seed=17))
    gateway.start()
    assert gateway.ready()
    gateway.shutdown(1)
    assert not gateway.ready()
    with pytest.raises(Overloaded):
        gateway.ingest_traces(genai_request(1, 2, seed=17))


def test_settings_from_mapping_validate_keys_and_values():
    settings = EngineSettings.from_mapping(
        {
            "queue": {"directory": "/q", "fsync": "interval:50"},
            "exporter": {"endpoint": "h:4317", "timeout_s": 2, "headers": {"a": "b"}},
        }
    )
    assert settings.queue.fsync_interval_s == 0.05 and settings.exporter.timeout_s == 2.0
    for bad in (
        {"queue": {"fsync": "sometimes"}},
        {"queue": {"nope": 1}},
        {"exporter": {"protocol": "udp"}},
        {"exporter": {"concurrency": 0}},
        {"unknown": 1},
        {"queue": {"max_bytes": -1}},
    ):
        with pytest.raises(ValueError):
            EngineSettings.from_mapping(bad)


GATEWAY_PROCESS = textwrap.dedent("""
    import json
    import sys
    from tests.gateway.backend import genai_request
    from tokentrace.gateway import EngineSettings, ExporterSettings, Gateway, QueueSettings

    directory, endpoint, fsync, pipeline, without_roots = sys.argv[1:6]
    settings = EngineSettings(queue=QueueSettings(directory=directory, fsync=fsync),
                              exporter=ExporterSettings(endpoint=endpoint, timeout_s=0.2, initial_backoff_s=0.05),
                              pipeline=json.loads(pipeline))
    gateway = Gateway(settings)
    gateway.start()
    index = 0
    while True:
        request = genai_request(1, 3, seed=index)
        if without_roots == "1":
            del request.resource_spans[0].scope_spans[0]  # the HTTP root spans
        gateway.ingest_traces(request)
        print(f"ACK {index}", flush=True)  # what the receiver acknowledges
        index += 1
""")


def held_request(index: int) -> Any:
    """A request of two chat spans whose local root never comes: the sampler holds them its whole wait."""
    request = genai_request(1, 3, seed=index)
    del request.resource_spans[0].scope_spans[0]
    return request


def acknowledged_before_sigkill(directory, fsync: str, pipeline: dict, *, without_roots: bool) -> int:
    """Run a gateway subprocess (backend unreachable) ingesting request after request, kill -9 it after
    40 acknowledgements; the index of the last request it acknowledged."""
    unreachable = f"127.0.0.1:{free_port()}"
    arguments = [str(directory), unreachable, fsync, json.dumps(pipeline), "1" if without_roots else "0"]
    process = subprocess.Popen(
        [sys.executable, "-c", GATEWAY_PROCESS, *arguments],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    acked = -1
    try:
        for line in process.stdout:
            acked = int(line.split()[1])
            if acked >= 40:
                break
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    for line in process.stdout:
        acked = int(line.split()[1])
    return acked


@pytest.mark.parametrize("fsync", ["always", "interval:100"])
def test_gateway_killed_with_sigkill_loses_no_acknowledged_span(tmp_path, fsync):
    acked = acknowledged_before_sigkill(tmp_path, fsync, {"pipeline": []}, without_roots=False)
    expected = {span.span_id for index in range(acked + 1) for span in sent_spans(genai_request(1, 3, seed=index))}
    with FakeBackend() as backend:
        gateway = make_gateway(tmp_path, backend)
        backend.wait_for_spans(len(expected), timeout_s=20)
        gateway.shutdown(5)
        delivered = [span.span_id for span in backend.spans()]
    assert expected <= set(delivered)
    assert len(delivered) - len(set(delivered)) == 0  # nothing was sent before the kill: no duplicates


@pytest.mark.parametrize("fsync", ["always", "interval:100"])
def test_spans_held_by_tail_sampling_survive_a_sigkill(tmp_path, fsync):
    """Acknowledged but undecided spans live in the sampler's memory; the intake journal brings them back."""
    # tail sampling that decides nothing for 30 s (no local roots), so every acknowledged span is still
    # held in memory when the process is killed
    holding = {"sample": {"probability": 1.0, "decision_wait_s": 30}}
    acked = acknowledged_before_sigkill(tmp_path, fsync, holding, without_roots=True)
    expected = {span.span_id for index in range(acked + 1) for span in sent_spans(held_request(index))}
    with FakeBackend() as backend:
        gateway = make_gateway(tmp_path, backend, pipeline=KEEP_ALL)
        assert gateway.stats()["replayed"] >= len(expected)  # nothing had left the sampler: all replayed
        backend.wait_for_spans(len(expected), timeout_s=20)
        gateway.shutdown(5)
        delivered = [span.span_id for span in backend.spans()]
        assert gateway.stats()["journal_depth_bytes"] == 0
    assert expected <= set(delivered)
    assert len(delivered) == len(set(delivered))  # none had reached the backend before: no duplicates


def test_the_intake_journal_forgets_a_request_once_its_spans_left_the_sampler(tmp_path, backend):
    gateway = make_gateway(tmp_path, backend, pipeline={"sample": {"probability": 1.0, "decision_wait_s": 0.3}})
    for index in range(5):
        gateway.ingest_traces(held_request(index))
    gateway.poll()
    assert gateway.stats()["journal_depth_bytes"] > 0  # undecided: the journal keeps them
    deadline = time.monotonic() + 10
    while gateway.stats()["journal_depth_bytes"] and time.monotonic() < deadline:
        time.sleep(0.05)
        gateway.poll()
    assert gateway.stats()["journal_depth_bytes"] == 0
    backend.wait_for_spans(5 * 2, timeout_s=10)  # two chat spans a request (the root was left out)
    gateway.shutdown(5)
    restarted = make_gateway(tmp_path, backend, pipeline=KEEP_ALL)
    assert restarted.stats()["replayed"] == 0  # a clean stop leaves nothing to replay
    restarted.shutdown(5)


def test_without_tail_sampling_there_is_no_journal(tmp_path, backend):
    gateway = make_gateway(tmp_path, backend, pipeline={"pipeline": []})
    gateway.ingest_traces(held_request(1))
    assert gateway.stats()["journal_depth_bytes"] == 0
    assert not (tmp_path / "intake").exists()
    gateway.shutdown(5)


def test_a_failing_stage_does_not_lose_the_batch(tmp_path, backend, caplog):
    class Broken:
        name = "broken"

        def process(self, batch):
            raise RuntimeError("stage bug")

        def poll(self, now_ns):
            return []

        def shutdown(self):
            return []

    from tokentrace.processor.pipeline import Pipeline

    settings = EngineSettings(
        queue=QueueSettings(directory=str(tmp_path)), exporter=ExporterSettings(endpoint=backend.grpc_endpoint)
    )
    gateway = Gateway(settings, pipeline=Pipeline([Broken()]))
    gateway.start()
    request = genai_request(1, 3, seed=18)
    assert gateway.ingest_traces(request).accepted_spans == 3
    backend.wait_for_spans(3)
    gateway.shutdown(5)
    assert gateway.stats()["pipeline_errors"] == 1 and "stage bug" in caplog.text
    assert backend.requests()[0].message == request


def test_shutdown_waits_for_requests_in_the_pipeline(tmp_path, backend, monkeypatch):
    """A request admitted before shutdown but not yet in the pipeline must not end up held by the sampler
    after shutdown released it (it is acknowledged: losing it is data loss)."""
    import threading

    from tokentrace.gateway import engine as engine_module
    from tokentrace.processor.pipeline import Pipeline

    entered, proceed = threading.Event(), threading.Event()
    real_decode = engine_module.decode_request

    def slow_decode(request):  # widens the window between admission and the pipeline
        entered.set()
        proceed.wait(5)
        return real_decode(request)

    monkeypatch.setattr(engine_module, "decode_request", slow_decode)

    class Holding:
        name = "holding"

        def __init__(self):
            self.held = []

        def process(self, batch):
            self.held.extend(batch)
            return []

        def poll(self, now_ns):
            return []

        def shutdown(self):
            held, self.held = self.held, []
            return held

    settings = EngineSettings(
        queue=QueueSettings(directory=str(tmp_path)), exporter=ExporterSettings(endpoint=backend.grpc_endpoint)
    )
    gateway = Gateway(settings, pipeline=Pipeline([Holding()]))
    gateway.start()
    results = []
    ingest = threading.Thread(target=lambda: results.append(gateway.ingest_traces(genai_request(1, 3, seed=19))))
    ingest.start()
    assert entered.wait(5)
    stopper = threading.Thread(target=gateway.shutdown, args=(5,))
    stopper.start()
    time.sleep(0.2)
    proceed.set()
    ingest.join(5)
    stopper.join(10)
    assert results[0].accepted_spans == 3
    assert len(backend.spans()) == 3


def test_the_same_engine_can_start_again_after_shutdown(tmp_path, backend):
    gateway = make_gateway(tmp_path, backend)
    gateway.ingest_traces(genai_request(1, 2, seed=20))
    gateway.shutdown(5)
    gateway.start()
    assert gateway.ready()
    gateway.ingest_traces(genai_request(1, 3, seed=21))
    backend.wait_for_spans(5)
    gateway.shutdown(5)


def test_a_bad_exporter_setting_fails_start_without_opening_the_queue(tmp_path):
    # no endpoint: the local store, here at a path that cannot be a file
    settings = EngineSettings(
        queue=QueueSettings(directory=str(tmp_path / "q")), store=StoreSettings(path=str(tmp_path)), pipeline=NO_STAGES
    )
    gateway = Gateway(settings)
    with pytest.raises(OSError, match=r"store\.path: cannot open the local store"):
        gateway.start()
    assert gateway.queue is None and not gateway.ready()
