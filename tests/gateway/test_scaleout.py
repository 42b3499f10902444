"""Several gateways behind trace-id routing keep exactly the traces one gateway keeps.

The OpenTelemetry Collector's ``loadbalancing`` exporter with ``routing_key: traceID`` sends every
span of a trace to the same gateway (see ``examples/deploy/``). Here the sender routes each span by
``trace_id % N``, which has the property that matters (one trace, one gateway), and the gateways tail
sample with policies that need the whole trace (a cost threshold on the trace's total, errors
anywhere in the trace). A control run routes span by span round-robin, as a plain load balancer
would, and keeps a different set: the test can tell split traces apart.
"""

from __future__ import annotations

import http.client
import random
import time
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.gateway.backend import FakeBackend
from tests.gateway.process import GatewayProcess
from tokentrace.gateway.otlp_values import decode_attributes

SAMPLING = {
    "pipeline": ["normalise", "enrich", "sample"],
    # one call costs 0.025 USD (10k input tokens of gpt-4o): only traces with two or more calls pass
    "sample": {
        "probability": 0.25,
        "cost_threshold_usd": 0.04,
        "keep_errors": True,
        "keep_flagged": False,
        "decision_wait_s": 30,
    },
}
TRACES = 40


def _value(value: Any) -> common_pb2.AnyValue:
    if isinstance(value, str):
        return common_pb2.AnyValue(string_value=value)
    return common_pb2.AnyValue(int_value=value)


def make_spans(seed: int = 7) -> list[tuple[int, trace_pb2.Span]]:
    """(trace id, span) for :data:`TRACES` traces: a root and 1-3 LLM calls, some failing; children first."""
    rng = random.Random(seed)
    now = time.time_ns()
    out: list[list[tuple[int, trace_pb2.Span]]] = []
    for index in range(TRACES):
        trace_id = rng.getrandbits(128)
        root_id = rng.getrandbits(64) | 1
        spans = []
        for call in range(index % 3 + 1):
            attributes = {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 10_000,
                "gen_ai.usage.output_tokens": 0,
            }
            failed = index % 7 == 0 and call == 0
            spans.append(
                trace_pb2.Span(
                    trace_id=trace_id.to_bytes(16, "big"),
                    span_id=(rng.getrandbits(64) | 1).to_bytes(8, "big"),
                    parent_span_id=root_id.to_bytes(8, "big"),
                    name="chat gpt-4o",
                    kind=trace_pb2.Span.SPAN_KIND_CLIENT,
                    start_time_unix_nano=now + call,
                    end_time_unix_nano=now + 1_000_000 + call,
                    attributes=[common_pb2.KeyValue(key=key, value=_value(value)) for key, value in attributes.items()],
                    status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR if failed else 0),
                )
            )
        spans.append(
            trace_pb2.Span(
                trace_id=trace_id.to_bytes(16, "big"),
                span_id=root_id.to_bytes(8, "big"),
                name="handle request",
                kind=trace_pb2.Span.SPAN_KIND_SERVER,
                start_time_unix_nano=now - 1,
                end_time_unix_nano=now + 2_000_000,
            )
        )
        out.append([(trace_id, span) for span in spans])
    # interleave traces, as spans from many requests arrive: each trace keeps its own order
    ordered = []
    while any(out):
        for spans in out:
            if spans:
                ordered.append(spans.pop(0))
    return ordered


def post(port: int, span: trace_pb2.Span) -> None:
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name", value=common_pb2.AnyValue(string_value="app"))
    resource_spans.scope_spans.add().spans.append(span)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(
            "POST", "/v1/traces", body=request.SerializeToString(), headers={"Content-Type": "application/x-protobuf"}
        )
        response = connection.getresponse()
        body = response.read()
        assert response.status == 200, (response.status, body)
    finally:
        connection.close()


def run(tmp_path: Path, gateways: int, route: str) -> dict[bytes, dict[str, Any]]:
    """Kept spans (span id -> attributes) when ``gateways`` gateways get the spans routed by ``route``."""
    with FakeBackend() as backend:
        processes = [
            GatewayProcess(tmp_path / f"{route}-{index}", backend, config={"engine": {"pipeline": SAMPLING}})
            for index in range(gateways)
        ]
        try:
            for process in processes:
                process.start()
            for number, (trace_id, span) in enumerate(make_spans()):
                target = trace_id % gateways if route == "trace_id" else number % gateways
                post(processes[target].ports["http"], span)
        finally:
            # SIGTERM: each gateway decides every trace it holds and drains its queue before exiting
            codes = [process.stop() for process in processes]
        assert codes == [0] * gateways
        return {span.span_id: decode_attributes(span.attributes) for span in backend.spans()}


def _traces(kept: dict[bytes, dict[str, Any]], spans: list[tuple[int, trace_pb2.Span]]) -> set[int]:
    trace_of = {span.span_id: trace_id for trace_id, span in spans}
    return {trace_of[span_id] for span_id in kept}


def test_trace_id_routing_keeps_what_one_gateway_keeps(tmp_path: Path) -> None:
    spans = make_spans()
    one = run(tmp_path, 1, "trace_id")
    three = run(tmp_path, 3, "trace_id")
    kept = _traces(one, spans)
    assert 0 < len(kept) < TRACES  # the policies keep some traces and drop others
    assert three == one  # the same spans, with the same attributes (roll-ups, sampling threshold)
    # a trace is kept whole or not at all
    for trace_id in kept:
        assert {span.span_id for t, span in spans if t == trace_id} <= set(one)


def test_round_robin_splits_traces_and_changes_decisions(tmp_path: Path) -> None:
    """The control: without trace-id routing the same input gives a different result."""
    one = run(tmp_path, 1, "trace_id")
    spread = run(tmp_path, 3, "round_robin")
    assert spread != one
    spans = make_spans()
    kept_whole = {
        trace_id
        for trace_id in _traces(spread, spans)
        if {span.span_id for t, span in spans if t == trace_id} <= set(spread)
    }
    assert kept_whole != _traces(spread, spans) or _traces(spread, spans) != _traces(one, spans)
