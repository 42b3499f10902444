"""Tail sampling: policies, OTEP 235 thresholds, the trace buffer, the stage, and the SDK end to end."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from tokentrace.core import semconv
from tokentrace.processor.model import STATUS_ERROR, SpanData
from tokentrace.processor.pipeline import Pipeline
from tokentrace.processor.sampling import (
    CostPolicy,
    Decision,
    ErrorPolicy,
    FlaggedPolicy,
    LatencyPolicy,
    ProbabilisticPolicy,
    RateLimitPolicy,
    SamplingConfig,
    TailSamplingStage,
    TraceBuffer,
    build,
    combine,
    encode_threshold,
    threshold_for,
)
from tokentrace.processor.sampling.policies import randomness_of
from tokentrace.processor.sdk import PipelineSpanExporter
from tokentrace.processor.stages import span_metrics

SECOND = 1_000_000_000
_span_ids = iter(range(1, 1 << 62))


def span(
    trace_id: int = 1,
    parent: int | None = 99,
    *,
    start: int = SECOND,
    duration_s: float = 0.01,
    status: int = 0,
    scope: str = "app",
    **attributes: Any,
) -> SpanData:
    return SpanData(
        trace_id=trace_id,
        span_id=next(_span_ids),
        parent_span_id=parent,
        name="s",
        kind=0,
        start_ns=start,
        end_ns=start + int(duration_s * SECOND),
        attributes=dict(attributes),
        scope_name=scope,
        status_code=status,
    )


def chat(
    trace_id: int = 1,
    parent: int | None = 99,
    *,
    model: str = "gpt-4o",
    input_tokens: int = 10,
    output_tokens: int = 5,
    cost: float | None = 0.001,
    **kwargs: Any,
) -> SpanData:
    attributes: dict[str, Any] = {
        semconv.OPERATION_NAME: "chat",
        semconv.PROVIDER_NAME: "openai",
        semconv.REQUEST_MODEL: model,
        semconv.USAGE_INPUT_TOKENS: input_tokens,
        semconv.USAGE_OUTPUT_TOKENS: output_tokens,
    }
    if cost is not None:
        attributes[semconv.USAGE_COST_AMOUNT] = cost
    attributes.update(kwargs.pop("attributes", {}))
    return span(trace_id, parent, **kwargs, **attributes)


class Clock:
    def __init__(self, now: int = 1_000 * SECOND) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> int:
        self.now += int(seconds * SECOND)
        return self.now


def sums(reader: InMemoryMetricReader) -> dict[tuple[str, tuple[tuple[str, Any], ...]], tuple[float, int]]:
    """(metric, sorted attribute items) -> (sum, count) for histograms; (value, 0) for counters."""
    out: dict[tuple[str, tuple[tuple[str, Any], ...]], tuple[float, int]] = {}
    data = reader.get_metrics_data()
    if data is None:
        return out
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    key = (metric.name, tuple(sorted((point.attributes or {}).items())))
                    if hasattr(point, "count"):
                        out[key] = (point.sum, point.count)
                    else:
                        out[key] = (point.value, 0)
    return out


def total(reader_sums: dict, name: str, **match: Any) -> tuple[float, int]:
    value, count = 0.0, 0
    for (metric, attrs), (v, c) in reader_sums.items():
        if metric == name and all(dict(attrs).get(k) == w for k, w in match.items()):
            value += v
            count += c
    return value, count


# -- policies --------------------------------------------------------------------------------------


def test_error_policy() -> None:
    policy = ErrorPolicy()
    assert policy.evaluate([span(), span()]) is Decision.NOT_SAMPLED
    assert policy.evaluate([span(), span(status=STATUS_ERROR)]) is Decision.SAMPLE
    assert policy.evaluate([span(**{semconv.ERROR_TYPE: "openai.RateLimitError"})]) is Decision.SAMPLE


def test_latency_policy_span_or_whole_trace() -> None:
    policy = LatencyPolicy(1.0)
    assert policy.evaluate([span(duration_s=0.5)]) is Decision.NOT_SAMPLED
    assert policy.evaluate([span(duration_s=1.5)]) is Decision.SAMPLE
    # No single span is slow, but the trace spans 1.2 s.
    trace_spans = [span(start=SECOND, duration_s=0.6), span(start=SECOND + int(0.6 * SECOND), duration_s=0.6)]
    assert policy.evaluate(trace_spans) is Decision.SAMPLE
    assert policy.evaluate([]) is Decision.NOT_SAMPLED


def test_cost_policy_sums_the_trace() -> None:
    policy = CostPolicy(0.01)
    assert policy.evaluate([chat(cost=0.004), chat(cost=0.004)]) is Decision.NOT_SAMPLED
    assert policy.evaluate([chat(cost=0.004), chat(cost=0.004), chat(cost=0.002)]) is Decision.SAMPLE
    assert policy.evaluate([chat(cost=None), span()]) is Decision.NOT_SAMPLED


def test_flagged_policy() -> None:
    policy = FlaggedPolicy()
    assert policy.evaluate([span(**{semconv.FLAGS: ()})]) is Decision.NOT_SAMPLED
    assert policy.evaluate([span(**{semconv.FLAGS: ("jailbreak",)})]) is Decision.SAMPLE
    assert policy.evaluate([span(**{"tokentrace.flag.jailbreak": False})]) is Decision.NOT_SAMPLED
    assert policy.evaluate([span(), span(**{"tokentrace.flag.jailbreak": True})]) is Decision.SAMPLE
    assert policy.evaluate([span(**{semconv.PII_DETECTED: True})]) is Decision.SAMPLE


def test_rate_limit_policy_token_bucket_per_model() -> None:
    now = [100.0]
    policy = RateLimitPolicy({"gpt-4o": 2, "*": 1}, clock=lambda: now[0])
    decisions = [policy.evaluate([chat(model="gpt-4o")]) for _ in range(4)]
    assert decisions == [Decision.SAMPLE, Decision.SAMPLE, Decision.NOT_SAMPLED, Decision.NOT_SAMPLED]
    # Another model has its own bucket ("*": 1 per second).
    assert policy.evaluate([chat(model="o3")]) is Decision.SAMPLE
    assert policy.evaluate([chat(model="o3")]) is Decision.NOT_SAMPLED
    assert policy.evaluate([span()]) is Decision.NOT_SAMPLED  # no model
    now[0] += 0.5  # one token refilled for gpt-4o (2/s), half a token for o3
    assert policy.evaluate([chat(model="gpt-4o")]) is Decision.SAMPLE
    assert policy.evaluate([chat(model="gpt-4o")]) is Decision.NOT_SAMPLED
    assert policy.evaluate([chat(model="o3")]) is Decision.NOT_SAMPLED
    now[0] += 0.5
    assert policy.evaluate([chat(model="o3")]) is Decision.SAMPLE
    with pytest.raises(ValueError):
        RateLimitPolicy({"m": -1})


def test_combine_drop_wins_else_any_sample_keeps() -> None:
    class Fixed:
        def __init__(self, name: str, decision: Decision) -> None:
            self.name, self.decision = name, decision

        def evaluate(self, trace: Any) -> Decision:
            return self.decision

    class Broken:
        name = "broken"

        def evaluate(self, trace: Any) -> Decision:
            raise RuntimeError("boom")

    s, n, d = Decision.SAMPLE, Decision.NOT_SAMPLED, Decision.DROP
    assert combine([Fixed("a", n), Fixed("b", s), Fixed("c", s)], [span()]).reason == "b"
    assert not combine([Fixed("a", s), Fixed("b", d)], [span()]).kept
    assert not combine([Fixed("a", n), Broken()], [span()]).kept
    assert combine([Broken(), Fixed("a", s)], [span()]).kept


# -- OTEP 235 --------------------------------------------------------------------------------------


def test_threshold_known_vectors() -> None:
    assert threshold_for(1.0) == 0 and encode_threshold(0) == "0"
    assert encode_threshold(threshold_for(0.5)) == "8"
    assert encode_threshold(threshold_for(0.25)) == "c"
    assert encode_threshold(threshold_for(0.75)) == "4"
    assert encode_threshold(threshold_for(0.1)) == "e6666666666666"
    assert threshold_for(0.0) == 1 << 56
    with pytest.raises(ValueError):
        threshold_for(1.5)


def test_probabilistic_uses_the_low_56_bits() -> None:
    policy = ProbabilisticPolicy(0.5)
    high_bits = 0xFFFFFFFFFFFFFFFFFF << 56
    assert randomness_of(high_bits | 0x80000000000000) == 0x80000000000000
    assert policy.sampled(0x80000000000000)  # exactly the threshold: kept
    assert not policy.sampled(high_bits | 0x7FFFFFFFFFFFFF)  # high bits are ignored
    assert ProbabilisticPolicy(1.0).sampled(0)
    assert not ProbabilisticPolicy(0.0).sampled((1 << 56) - 1)


def _kept_by_stage(ids: list[int], probability: float) -> set[int]:
    stage = build({"probability": probability, "keep_errors": False, "keep_flagged": False}, MeterProvider())
    out = stage.process([span(trace_id, None) for trace_id in ids]) + stage.shutdown()
    return {s.trace_id for s in out}


_SUBPROCESS = """
import json, sys
from opentelemetry.sdk.metrics import MeterProvider
from tokentrace.processor.model import SpanData
from tokentrace.processor.sampling import build
ids = [int(x, 16) for x in json.load(sys.stdin)]
stage = build({"probability": float(sys.argv[1]), "keep_errors": False, "keep_flagged": False}, MeterProvider())
spans = [SpanData(t, i + 1, None, "s", 0, 1, 2, {}) for i, t in enumerate(ids)]
out = stage.process(spans) + stage.shutdown()
print(json.dumps(sorted(format(s.trace_id, "032x") for s in out)))
"""


def test_decision_is_identical_across_processes() -> None:
    rng = random.Random(235)
    ids = [rng.getrandbits(128) for _ in range(1000)]
    here = _kept_by_stage(ids, 0.3)
    result = subprocess.run(
        [sys.executable, "-c", _SUBPROCESS, "0.3"],
        input=json.dumps([format(i, "032x") for i in ids]),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    there = {int(x, 16) for x in json.loads(result.stdout)}
    assert there == here
    assert 200 < len(here) < 400


def test_kept_fraction_matches_probability() -> None:
    rng = random.Random(10)
    policy = ProbabilisticPolicy(0.1)
    kept = sum(policy.sampled(rng.getrandbits(128)) for _ in range(20_000))
    assert abs(kept / 20_000 - 0.1) <= 0.015


def test_kept_spans_carry_reason_and_threshold() -> None:
    stage = TailSamplingStage(SamplingConfig(probability=0.5), MeterProvider())
    kept_by_probability = stage.process([span(0x80000000000000, None)]) + stage.shutdown()
    assert [s.attributes[semconv.SAMPLING_REASON] for s in kept_by_probability] == ["probabilistic"]
    assert kept_by_probability[0].attributes[semconv.SAMPLING_THRESHOLD] == "8"
    assert kept_by_probability[0].changed
    stage.process([span(0x10, None, status=STATUS_ERROR)])
    kept_by_error = stage.shutdown()
    assert kept_by_error[0].attributes[semconv.SAMPLING_REASON] == "error"
    assert kept_by_error[0].attributes[semconv.SAMPLING_THRESHOLD] == "0"  # adjusted count 1
    assert stage.process([span(0x10 + 1, None)]) + stage.shutdown() == []  # below threshold, no error


# -- config ----------------------------------------------------------------------------------------


def test_config_from_mapping() -> None:
    config = SamplingConfig.from_mapping({"probability": 0.2, "per_model_limits": {"gpt-4o": 5}})
    assert config.probability == 0.2 and config.per_model_limits == {"gpt-4o": 5}
    assert SamplingConfig.from_mapping({}) == SamplingConfig()
    with pytest.raises(ValueError, match="probabilty"):
        SamplingConfig.from_mapping({"probabilty": 0.2})
    for bad in ({"probability": 2}, {"max_traces": 0}, {"decision_wait_s": "5"}, {"per_model_limits": {"m": "x"}}):
        with pytest.raises(ValueError):
            SamplingConfig.from_mapping(bad)
    assert span_metrics.Config.from_mapping({"record_all": True}).record_all
    with pytest.raises(ValueError, match="unknown"):
        span_metrics.Config.from_mapping({"record": True})
    names = [
        type(p).__name__
        for p in SamplingConfig(latency_threshold_s=1, cost_threshold_usd=0.1, per_model_limits={"m": 1}).policies()
    ]
    assert names == [
        "ErrorPolicy",
        "FlaggedPolicy",
        "LatencyPolicy",
        "CostPolicy",
        "ProbabilisticPolicy",
        "RateLimitPolicy",
    ]


def test_disabled_passes_through() -> None:
    stage = build({"enabled": False, "probability": 0.0})
    batch = [span(5)]
    assert stage.process(batch) == batch and stage.poll(0) == [] and stage.shutdown() == []


# -- buffer and stage timing ----------------------------------------------------------------------


def _stage(clock: Clock, reader: InMemoryMetricReader | None = None, **config: Any) -> TailSamplingStage:
    provider = MeterProvider(metric_readers=[reader] if reader else [])
    return TailSamplingStage(SamplingConfig(**config), provider, clock=clock)


def test_decision_waits_for_root_plus_grace_or_decision_wait() -> None:
    clock = Clock()
    stage = _stage(clock, decision_wait_s=1.0)
    assert stage.process([chat(1), chat(2)]) == []  # children only: held
    assert stage.poll(clock.advance(0.5)) == []
    assert stage.process([span(1, None)]) == []  # root arrives: decided after the grace
    assert stage.poll(clock.advance(0.05)) == []
    released = stage.poll(clock.advance(0.06))
    assert {s.trace_id for s in released} == {1} and len(released) == 2
    released = stage.poll(clock.advance(0.4))  # trace 2 reaches decision_wait_s without a root
    assert [s.trace_id for s in released] == [2]
    assert len(stage.buffer) == 0


def test_late_spans_follow_the_cached_decision() -> None:
    clock = Clock()
    reader = InMemoryMetricReader()
    stage = _stage(clock, reader, probability=0.5, decision_wait_s=0.05)
    kept_id, dropped_id = 0x80000000000001, 0x00000000000001
    stage.process([chat(kept_id), chat(dropped_id)])
    assert len(stage.poll(clock.advance(0.06))) == 1
    # Late spans leave (or vanish) at once, without waiting.
    late = stage.process([span(kept_id, None), chat(dropped_id), chat(kept_id)])
    assert [s.trace_id for s in late] == [kept_id, kept_id]
    assert all(s.attributes[semconv.SAMPLING_REASON] == "probabilistic" for s in late)
    assert len(stage.buffer) == 0
    metrics = sums(reader)
    assert total(metrics, semconv.METRIC_SAMPLING_LATE_SPANS)[0] == 3
    assert total(metrics, semconv.METRIC_SAMPLING_TRACES, decision="kept")[0] == 1
    assert total(metrics, semconv.METRIC_SAMPLING_TRACES, decision="dropped")[0] == 1


def test_decision_cache_is_bounded_lru() -> None:
    buffer: TraceBuffer[bool] = TraceBuffer(lambda spans, cause: True, decision_cache_size=3, decision_wait_s=0)
    for trace_id in range(1, 6):
        buffer.add([span(trace_id)])
    assert [buffer.cached(t) for t in range(1, 6)] == [None, None, True, True, True]


def test_overflow_decides_oldest_and_stays_bounded() -> None:
    reader = InMemoryMetricReader()
    stage = _stage(Clock(), reader, max_traces=10, decision_wait_s=60)
    out: list[SpanData] = []
    lock = threading.Lock()

    def produce(trace_id: int) -> None:
        for _ in range(3):
            released = stage.process([chat(trace_id)])
            assert len(stage.buffer) <= 10
            with lock:
                out.extend(released)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(produce, range(1, 101)))
    assert len(stage.buffer) <= 10 and stage.buffer.span_count <= 30
    out.extend(stage.shutdown())
    assert len(out) == 300 and len({s.span_id for s in out}) == 300
    metrics = sums(reader)
    overflow = total(metrics, semconv.METRIC_SAMPLING_OVERFLOW)[0]
    assert overflow >= 90
    assert (
        total(metrics, semconv.METRIC_SAMPLING_TRACES)[0] + total(metrics, semconv.METRIC_SAMPLING_LATE_SPANS)[0] >= 100
    )


def test_spans_per_trace_bounded() -> None:
    stage = _stage(Clock(), max_spans_per_trace=5, decision_wait_s=60)
    assert stage.process([chat(7) for _ in range(4)]) == []
    assert len(stage.process([chat(7)])) == 5  # the fifth span decides the trace
    assert len(stage.process([chat(7)])) == 1  # later spans follow the decision


def test_rollups_on_local_root() -> None:
    clock = Clock()
    stage = _stage(clock, decision_wait_s=0.05)
    root = span(3, None)
    children = [
        chat(3, input_tokens=10, output_tokens=1, cost=0.25),
        chat(3, input_tokens=20, output_tokens=2, cost=0.5),
        chat(3, input_tokens=5, output_tokens=3, cost=None),
        span(3, **{semconv.OPERATION_NAME: "invoke_agent", semconv.USAGE_INPUT_TOKENS: 35}),
    ]
    stage.process([*children, root])
    stage.poll(clock.advance(1))
    assert root.changed
    assert root.attributes[semconv.TRACE_LLM_CALLS] == 3
    assert root.attributes[semconv.TRACE_USAGE_INPUT_TOKENS] == 35
    assert root.attributes[semconv.TRACE_USAGE_OUTPUT_TOKENS] == 6
    assert root.attributes[semconv.TRACE_COST_AMOUNT] == pytest.approx(0.75)
    # A trace without GenAI calls gets no roll-ups.
    plain = span(4, None)
    stage.process([plain, span(4)])
    stage.poll(clock.advance(1))
    assert semconv.TRACE_LLM_CALLS not in plain.attributes


def test_cost_threshold_keeps_expensive_traces() -> None:
    clock = Clock()
    stage = _stage(clock, probability=0.0, cost_threshold_usd=1.0, decision_wait_s=0.05)
    stage.process([chat(1, cost=0.6), chat(1, cost=0.6), span(1, None), chat(2, cost=0.6), span(2, None)])
    kept = stage.poll(clock.advance(1))
    assert {s.trace_id for s in kept} == {1}
    assert {s.attributes[semconv.SAMPLING_REASON] for s in kept} == {"cost"}


# -- span metrics ----------------------------------------------------------------------------------


def test_span_metrics_skip_own_spans_unless_record_all() -> None:
    for record_all, expected in ((False, 1), (True, 2)):
        reader = InMemoryMetricReader()
        stage = span_metrics.build({"record_all": record_all}, MeterProvider(metric_readers=[reader]))
        batch = [
            chat(1, input_tokens=7, scope="opentelemetry.instrumentation.openai_v2"),
            chat(1, input_tokens=7, scope="tokentrace.instrumentation.openai"),
            span(1),
        ]
        assert stage.process(batch) == batch and stage.poll(0) == [] and stage.shutdown() == []
        metrics = sums(reader)
        assert total(metrics, semconv.METRIC_TOKEN_USAGE, **{semconv.TOKEN_TYPE: "input"}) == (7 * expected, expected)
        assert total(metrics, semconv.METRIC_OPERATION_DURATION)[1] == expected
        assert total(metrics, semconv.METRIC_COST)[1] == expected
        conventions = [a for (name, a) in metrics if name.startswith("gen_ai.")]
        assert all(dict(a).get(semconv.REQUEST_MODEL) == "gpt-4o" for a in conventions)
        # the grouped tokentrace.llm.* metrics count every GenAI span, ours included
        assert total(metrics, semconv.METRIC_LLM_REQUESTS)[0] == 2


# -- end to end through the SDK --------------------------------------------------------------------


class EndToEnd:
    """A real TracerProvider exporting through PipelineSpanExporter([span_metrics, sample])."""

    def __init__(self, processor: str, **config: Any) -> None:
        self.reader = InMemoryMetricReader()
        meters = MeterProvider(metric_readers=[self.reader])
        self.sampler = build(config, meters)
        self.memory = InMemorySpanExporter()
        self.exporter = PipelineSpanExporter(self.memory, Pipeline([span_metrics.build({}, meters), self.sampler]))
        self.provider = TracerProvider()
        if processor == "simple":
            self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        else:
            self.provider.add_span_processor(BatchSpanProcessor(self.exporter, schedule_delay_millis=10))
        self.tracer = self.provider.get_tracer("app")
        self.expected: dict[int, list[dict[str, Any]]] = defaultdict(list)  # trace id -> child attributes
        self.span_counts: Counter[int] = Counter()
        self.errors: Counter[int] = Counter()
        self._lock = threading.Lock()

    def child_attributes(self, rng: random.Random) -> tuple[dict[str, Any], bool]:
        attributes = {
            semconv.OPERATION_NAME: "chat",
            semconv.PROVIDER_NAME: "openai",
            semconv.REQUEST_MODEL: rng.choice(["gpt-4o", "gpt-4o-mini"]),
            semconv.USAGE_INPUT_TOKENS: rng.randint(1, 500),
            semconv.USAGE_OUTPUT_TOKENS: rng.randint(1, 200),
            semconv.USAGE_COST_AMOUNT: rng.randint(1, 1000) / 1e5,
        }
        return attributes, rng.random() < 0.05

    def child(self, context: Any, trace_id: int, attributes: dict[str, Any], error: bool) -> None:
        with self.tracer.start_as_current_span("chat", context=context, attributes=attributes) as s:
            if error:
                s.set_status(Status(StatusCode.ERROR, "boom"))
                s.set_attribute(semconv.ERROR_TYPE, "openai.APIError")
            with self.tracer.start_as_current_span("http"):  # a non-GenAI grandchild
                pass
        with self._lock:
            self.expected[trace_id].append(attributes)
            self.span_counts[trace_id] += 2
            self.errors[trace_id] += error

    def expected_kept(self) -> set[int]:
        probabilistic = ProbabilisticPolicy(0.5)
        errors = {t for t, children in self.errors.items() if children}
        return {t for t in self.span_counts if probabilistic.sampled(t) or t in errors}

    def finish(self) -> list[Any]:
        self.provider.force_flush()
        time.sleep(0.12)  # past the root grace (0.1 s)
        assert self.exporter.force_flush()
        assert len(self.sampler.buffer) == 0
        # The exporter's poll timer may have released spans and still be handing them to the sink.
        want = sum(self.span_counts[t] for t in self.expected_kept())
        deadline = time.monotonic() + 5
        while len(self.memory.get_finished_spans()) < want and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.memory.get_finished_spans())

    def check(self, exported: list[Any]) -> None:
        span_ids = [s.context.span_id for s in exported]
        assert len(span_ids) == len(set(span_ids)), "a span was exported twice"
        by_trace: dict[int, list[Any]] = defaultdict(list)
        for s in exported:
            by_trace[s.context.trace_id].append(s)
        assert set(by_trace) <= set(self.span_counts)
        kept = set(by_trace)
        assert kept == self.expected_kept()
        for trace_id, spans in by_trace.items():
            assert len(spans) == self.span_counts[trace_id], "a kept trace is incomplete"
            roots = [s for s in spans if s.parent is None]
            assert len(roots) == 1
            root = roots[0].attributes
            children = self.expected[trace_id]
            assert root[semconv.TRACE_LLM_CALLS] == len(children)
            assert root[semconv.TRACE_USAGE_INPUT_TOKENS] == sum(c[semconv.USAGE_INPUT_TOKENS] for c in children)
            assert root[semconv.TRACE_USAGE_OUTPUT_TOKENS] == sum(c[semconv.USAGE_OUTPUT_TOKENS] for c in children)
            assert root[semconv.TRACE_COST_AMOUNT] == pytest.approx(sum(c[semconv.USAGE_COST_AMOUNT] for c in children))
            assert {s.attributes[semconv.SAMPLING_REASON] for s in spans} <= {"error", "probabilistic"}
        assert 0 < len(kept) < len(self.span_counts), "expected both kept and dropped traces"

        metrics = sums(self.reader)
        all_children = [c for children in self.expected.values() for c in children]
        input_sum, input_count = total(metrics, semconv.METRIC_TOKEN_USAGE, **{semconv.TOKEN_TYPE: "input"})
        assert input_sum == sum(c[semconv.USAGE_INPUT_TOKENS] for c in all_children)
        assert input_count == len(all_children)
        assert total(metrics, semconv.METRIC_TOKEN_USAGE, **{semconv.TOKEN_TYPE: "output"})[0] == sum(
            c[semconv.USAGE_OUTPUT_TOKENS] for c in all_children
        )
        assert total(metrics, semconv.METRIC_COST)[0] == pytest.approx(
            sum(c[semconv.USAGE_COST_AMOUNT] for c in all_children)
        )
        assert total(metrics, semconv.METRIC_OPERATION_DURATION)[1] == len(all_children)
        assert total(metrics, semconv.METRIC_SAMPLING_TRACES, decision="kept")[0] == len(kept)
        assert total(metrics, semconv.METRIC_SAMPLING_TRACES)[0] == len(self.span_counts)

    def close(self) -> None:
        self.provider.shutdown()


def test_threads_end_to_end() -> None:
    e2e = EndToEnd("simple", probability=0.5, decision_wait_s=2.0)
    rng = random.Random(8)
    roots = []
    tasks = []
    for _ in range(150):
        root = e2e.tracer.start_span("request")
        trace_id = root.get_span_context().trace_id
        e2e.span_counts[trace_id] += 1
        context = trace.set_span_in_context(root)
        roots.append(root)
        tasks.extend((context, trace_id, *e2e.child_attributes(rng)) for _ in range(rng.randint(1, 6)))
    rng.shuffle(tasks)  # each trace's children end on several threads
    try:
        with ThreadPoolExecutor(8) as pool:
            for future in [pool.submit(e2e.child, *task) for task in tasks]:
                future.result()
            for future in [pool.submit(root.end) for root in roots]:
                future.result()
        e2e.check(e2e.finish())
    finally:
        e2e.close()


async def test_asyncio_end_to_end() -> None:
    e2e = EndToEnd("batch", probability=0.5, decision_wait_s=2.0)
    rng = random.Random(9)

    async def one_child(trace_id: int, attributes: dict[str, Any], error: bool) -> None:
        await asyncio.sleep(0)
        e2e.child(None, trace_id, attributes, error)
        await asyncio.sleep(0)

    async def one_trace() -> None:
        with e2e.tracer.start_as_current_span("request") as root:
            trace_id = root.get_span_context().trace_id
            e2e.span_counts[trace_id] += 1
            await asyncio.gather(*(one_child(trace_id, *e2e.child_attributes(rng)) for _ in range(rng.randint(1, 6))))

    try:
        await asyncio.gather(*(one_trace() for _ in range(150)))
        exported = await asyncio.to_thread(e2e.finish)
        e2e.check(exported)
    finally:
        e2e.close()
