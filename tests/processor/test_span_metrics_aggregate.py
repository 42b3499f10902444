"""span_metrics aggregated by the stage itself (the gateway's path) exports exactly what the same stage
exports through the SDK's instruments: names, units, descriptions, scope, attribute sets (with their
types), bucket boundaries, counts, sums, min and max, in both temporalities, over several collections,
past the series cap, with odd values and with the plan cache evicting."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    ExponentialHistogram,
    InMemoryMetricReader,
)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, ExponentialBucketHistogramAggregation

from tokentrace.core import semconv
from tokentrace.gateway.config import TelemetrySettings
from tokentrace.gateway.telemetry import meter_provider as gateway_meter_provider
from tokentrace.processor.model import STATUS_ERROR, SpanData
from tokentrace.processor.stages import span_metrics
from tokentrace.processor.stages.span_metrics_aggregate import AggregatedMetric

TEMPORALITIES = ("cumulative", "delta")


def reader_for(temporality: str, otlp_like: bool = False) -> InMemoryMetricReader:
    """``otlp_like``: the histogram aggregation the OTLP exporter asks for (explicit buckets, no boundaries)."""
    return InMemoryMetricReader(
        preferred_temporality=span_metrics.preferred_temporality(temporality),
        preferred_aggregation={Histogram: ExplicitBucketHistogramAggregation()} if otlp_like else None,
    )


def sdk_stage(config: dict[str, Any], *readers: InMemoryMetricReader) -> span_metrics.SpanMetricsStage:
    stage = span_metrics.build(config, MeterProvider(metric_readers=list(readers)))
    assert not isinstance(stage._duration, AggregatedMetric)
    return stage


def aggregated_stage(config: dict[str, Any], *readers: InMemoryMetricReader) -> span_metrics.SpanMetricsStage:
    stage = span_metrics.build(config, gateway_meter_provider(TelemetrySettings(), list(readers)))
    assert isinstance(stage._duration, AggregatedMetric)  # the gateway's provider takes the stage's aggregates
    return stage


def typed(value: Any) -> Any:
    """A value with its type, recursively: 1, True and 1.0 must stay apart."""
    if isinstance(value, (list, tuple)):
        return ("sequence", tuple(typed(item) for item in value))
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    return (type(value).__name__, value)


def exported(reader: InMemoryMetricReader) -> dict[Any, Any]:
    """Every span_metrics point of one collection, keyed by metric and attribute set, exactly (types too).

    Also checks what cannot be compared between two providers: the timestamps are sensible."""
    out: dict[Any, Any] = {}
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            scope = scope_metrics.scope
            if scope.name != span_metrics.SCOPE:
                continue
            for metric in scope_metrics.metrics:
                kind = type(metric.data).__name__
                shape = (
                    metric.name,
                    metric.unit,
                    metric.description,
                    kind,
                    metric.data.aggregation_temporality,
                    getattr(metric.data, "is_monotonic", None),
                    (scope.name, scope.version, scope.schema_url, scope_metrics.schema_url),
                )
                for point in metric.data.data_points:
                    assert 0 < point.start_time_unix_nano <= point.time_unix_nano
                    attributes = tuple(sorted((key, typed(value)) for key, value in point.attributes.items()))
                    if kind == "Histogram":
                        value: Any = (
                            point.count,
                            typed(point.sum),
                            tuple(point.bucket_counts),
                            tuple(point.explicit_bounds),
                            typed(point.min),
                            typed(point.max),
                            list(point.exemplars),
                        )
                    else:
                        value = (typed(point.value), list(point.exemplars))
                    key = (shape, attributes)
                    assert key not in out, f"two points for one series: {key}"
                    out[key] = value
    return out


def llm_span(n: int, attributes: dict[str, Any], *, status: int = 0, start: int = 10**9, scope: str = "other") -> Any:
    return SpanData(n, n, None, "chat", 3, start, start + 250_000_000, attributes, scope_name=scope, status_code=status)


# --- generated spans ---------------------------------------------------------------------------------

NAMES = st.sampled_from(["openai", "anthropic", "gpt-4o", "t1", "acme", "globex"])
ODD = st.sampled_from([None, "", 1, True, 1.0, 0, 443, 2.5, ["a", "b"], ("a", "b")])
LABEL = st.one_of(NAMES, NAMES, ODD)  # mostly plain strings, sometimes odd
AMOUNT = st.one_of(
    st.integers(0, 10**7),
    st.floats(0, 50, allow_nan=False),
    st.sampled_from([0, 0.0, -0.0, -3, -0.5, True, "7", None, 2**62, math.nan, math.inf, -math.inf]),
)
LABEL_KEYS = (
    semconv.OPERATION_NAME,
    semconv.PROVIDER_NAME,
    semconv.REQUEST_MODEL,
    semconv.RESPONSE_MODEL,
    semconv.SERVER_ADDRESS,
    semconv.SERVER_PORT,
    semconv.ERROR_TYPE,
    semconv.SYSTEM,
    semconv.PROMPT_FINGERPRINT,
    semconv.ATTRIBUTION_TENANT,
)
AMOUNT_KEYS = (
    semconv.USAGE_INPUT_TOKENS,
    semconv.USAGE_OUTPUT_TOKENS,
    semconv.USAGE_CACHE_READ_INPUT_TOKENS,
    "gen_ai.usage.cache_creation.input_tokens",
    semconv.USAGE_REASONING_OUTPUT_TOKENS,
    semconv.USAGE_COST_AMOUNT,
    semconv.RESPONSE_TIME_TO_FIRST_CHUNK,
)


@st.composite
def spans(draw: Any) -> Any:
    attributes: dict[str, Any] = {}
    for key in LABEL_KEYS:
        if draw(st.booleans()):
            attributes[key] = draw(LABEL)
    if draw(st.integers(0, 5)):  # mostly GenAI spans
        attributes[semconv.OPERATION_NAME] = draw(st.sampled_from(["chat", "embeddings"]))
    for key in AMOUNT_KEYS:
        if draw(st.booleans()):
            attributes[key] = draw(AMOUNT)
    if draw(st.integers(0, 4)) == 0:
        attributes[semconv.ENRICHED_FOREIGN_SPAN] = True
    start = draw(st.sampled_from([0, 10**9]))
    return SpanData(
        draw(st.integers(1, 10**6)),
        1,
        None,
        "chat",
        3,
        start,
        start + draw(st.sampled_from([-1, 0, 1, 7 * 10**8, 90 * 10**9])),
        attributes,
        scope_name=draw(st.sampled_from(["tokentrace.instrumentation.openai", "opentelemetry.instrumentation.x"])),
        status_code=draw(st.sampled_from([0, 1, STATUS_ERROR])),
    )


CONFIGS = st.fixed_dictionaries(
    {
        "record_all": st.booleans(),
        "grouped": st.booleans(),
        "max_series": st.sampled_from([1, 3, 2000]),
    }
)
# batches, each followed (or not) by a collection
SCRIPTS = st.lists(st.tuples(st.lists(spans(), max_size=25), st.booleans()), min_size=1, max_size=6)


def copies(batch: list[SpanData]) -> tuple[list[SpanData], list[SpanData]]:
    def copy(span: SpanData) -> SpanData:
        return SpanData(
            span.trace_id,
            span.span_id,
            None,
            span.name,
            span.kind,
            span.start_ns,
            span.end_ns,
            dict(span.attributes),
            scope_name=span.scope_name,
            status_code=span.status_code,
        )

    return [copy(span) for span in batch], [copy(span) for span in batch]


@pytest.mark.filterwarnings("ignore")
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(CONFIGS, SCRIPTS, st.sampled_from(TEMPORALITIES), st.sampled_from([2, 4096]), st.booleans())
def test_aggregated_path_exports_what_the_sdk_instruments_export(
    config: dict[str, Any], script: list[Any], temporality: str, cache_limit: int, otlp_like: bool
) -> None:
    """The differential test: one stage per path, the same batches, a collection of both after some."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(span_metrics, "_CACHE_LIMIT", cache_limit)  # 2: plans and buffers evicted all the time
        sdk_reader, aggregated_reader = reader_for(temporality, otlp_like), reader_for(temporality, otlp_like)
        sdk = sdk_stage(config, sdk_reader)
        aggregated = aggregated_stage(config, aggregated_reader)
        for batch, collect in [*script[:-1], (script[-1][0], True)]:
            for_sdk, for_aggregated = copies(batch)
            sdk.process(for_sdk)
            aggregated.process(for_aggregated)
            assert len(sdk._plans) <= cache_limit and len(aggregated._plans) <= cache_limit
            if collect:
                assert exported(aggregated_reader) == exported(sdk_reader)


@pytest.mark.parametrize("temporality", TEMPORALITIES)
def test_collections_series_cap_and_overflow(temporality: str) -> None:
    """Known figures through the aggregated path: per-collection deltas or running totals, the series cap
    (three tenants, then the overflow series and its counter), and bucket counts on the advisory bounds."""
    reader = reader_for(temporality)
    stage = aggregated_stage({"max_series": 3, "record_all": True}, reader)

    def batch(first: int, tenants: list[str]) -> list[SpanData]:
        base = {
            semconv.OPERATION_NAME: "chat",
            semconv.PROVIDER_NAME: "openai",
            semconv.REQUEST_MODEL: "gpt-4o",
            semconv.USAGE_INPUT_TOKENS: 100,
            semconv.USAGE_COST_AMOUNT: 0.5,
        }
        return [llm_span(first + n, {**base, semconv.ATTRIBUTION_TENANT: tenant}) for n, tenant in enumerate(tenants)]

    stage.process(batch(0, ["a", "b", "c", "d", "e"]))
    first = exported(reader)
    stage.process(batch(10, ["a", "f"]))
    second = exported(reader)
    third = exported(reader)  # nothing new

    def total(found: dict[Any, Any], name: str, **match: Any) -> Any:
        result = 0
        for (shape, attributes), value in found.items():
            labels = {key: typed_value[1] for key, typed_value in attributes}
            if shape[0] == name and all(labels.get(key.replace("__", ".")) == v for key, v in match.items()):
                result += value[0] if shape[3] == "Histogram" else value[0][1]
        return result

    assert total(first, semconv.METRIC_LLM_REQUESTS) == 5
    assert total(first, semconv.METRIC_LLM_REQUESTS, tokentrace__overflow=True) == 2
    assert total(first, semconv.METRIC_LLM_SERIES_OVERFLOW) == 2
    assert total(first, semconv.METRIC_OPERATION_DURATION) == 5  # histogram counts
    expected = (2, 1) if temporality == "delta" else (7, 3)  # "a" is admitted; "f" overflows
    assert (total(second, semconv.METRIC_LLM_REQUESTS), total(second, semconv.METRIC_LLM_SERIES_OVERFLOW)) == expected
    assert total(third, semconv.METRIC_LLM_REQUESTS) == (0 if temporality == "delta" else 7)
    (duration,) = [
        value
        for (shape, attributes), value in first.items()
        if shape[0] == semconv.METRIC_LLM_DURATION and ("tokentrace.tenant", ("str", "a")) in attributes
    ]
    count, _, buckets, bounds, low, high, _ = duration
    assert bounds == semconv.DURATION_BUCKETS and count == 1 and low == high == ("float", 0.25)
    assert buckets[list(bounds).index(0.32)] == 1  # 0.16 < 0.25 <= 0.32


def test_two_readers_each_get_their_own_temporality() -> None:
    cumulative, delta = reader_for("cumulative"), reader_for("delta")
    sdk_cumulative, sdk_delta = reader_for("cumulative"), reader_for("delta")
    aggregated = aggregated_stage({}, cumulative, delta)
    sdk = sdk_stage({}, sdk_cumulative, sdk_delta)
    attributes = {semconv.OPERATION_NAME: "chat", semconv.PROVIDER_NAME: "openai", semconv.USAGE_INPUT_TOKENS: 3}
    for n in range(3):
        for stage in (aggregated, sdk):
            stage.process([llm_span(n, dict(attributes))])
        assert exported(delta) == exported(sdk_delta)
        if n != 1:  # the cumulative readers skip a collection: the delta reader's must not eat their data
            assert exported(cumulative) == exported(sdk_cumulative)


@pytest.mark.parametrize(
    "aggregation", [ExponentialBucketHistogramAggregation(), ExplicitBucketHistogramAggregation((1.0, 2.0))]
)
def test_a_reader_wanting_other_aggregations_gets_the_sdk_path(aggregation: Any) -> None:
    """Exponential histograms or other boundaries are not what the stage aggregates: it records through
    the SDK instead, whose output is then what the reader asked for."""
    reader = InMemoryMetricReader(preferred_aggregation={Histogram: aggregation})
    stage = span_metrics.build({}, gateway_meter_provider(TelemetrySettings(), [reader]))
    assert not isinstance(stage._duration, AggregatedMetric)
    stage.process([llm_span(1, {semconv.OPERATION_NAME: "chat", semconv.PROVIDER_NAME: "openai"})])
    data = reader.get_metrics_data()
    (duration,) = [
        metric.data
        for resource_metrics in data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
        if metric.name == semconv.METRIC_LLM_DURATION
    ]
    if isinstance(aggregation, ExponentialBucketHistogramAggregation):
        assert isinstance(duration, ExponentialHistogram)
    else:
        assert duration.data_points[0].explicit_bounds == (1.0, 2.0)


def test_types_stay_apart_and_refused_values_are_dropped() -> None:
    reader = reader_for("cumulative")
    stage = aggregated_stage({"record_all": True}, reader)
    base = {semconv.OPERATION_NAME: "chat", semconv.PROVIDER_NAME: "openai"}
    stage.process(
        [
            llm_span(1, {**base, semconv.SERVER_PORT: 1, semconv.USAGE_INPUT_TOKENS: 5}),
            llm_span(2, {**base, semconv.SERVER_PORT: True, semconv.USAGE_INPUT_TOKENS: -5}),
            llm_span(3, {**base, semconv.SERVER_PORT: 1.0, semconv.USAGE_INPUT_TOKENS: math.nan}),
        ]
    )
    found = exported(reader)
    ports = {
        dict(attributes)[semconv.SERVER_PORT]
        for (shape, attributes), _ in found.items()
        if shape[0] == semconv.METRIC_OPERATION_DURATION
    }
    assert ports == {("int", 1), ("bool", True), ("float", 1.0)}
    token_points = [value for (shape, _), value in found.items() if shape[0] == semconv.METRIC_TOKEN_USAGE]
    assert [(count, total) for count, total, *_ in token_points] == [(1, ("int", 5))]  # -5 and NaN refused


def test_collections_while_batches_are_recorded_lose_nothing() -> None:
    """A reader's collection runs on another thread than the pipeline: every span is counted once."""
    reader = reader_for("delta")
    stage = aggregated_stage({}, reader)
    attributes = {semconv.OPERATION_NAME: "chat", semconv.PROVIDER_NAME: "openai"}
    done = threading.Event()
    counted = []

    def collect() -> None:
        while not done.is_set():
            counted.append(exported(reader))
        counted.append(exported(reader))

    collector = threading.Thread(target=collect)
    collector.start()
    for n in range(200):
        stage.process([llm_span(n * 10 + i, dict(attributes)) for i in range(10)])
    done.set()
    collector.join()
    name = semconv.METRIC_LLM_REQUESTS
    requests = [value[0][1] for found in counted for (shape, _), value in found.items() if shape[0] == name]
    assert sum(requests) == 2000


def test_no_meter_provider_records_once_one_is_set_globally() -> None:
    """Without a MeterProvider the stage skips recording (the API's proxies would drop every call), but a
    provider set globally later gets the next batch's measurements, as through the proxies. A child
    process: the global provider can be set only once."""
    script = """
import json
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from tokentrace.processor.model import SpanData
from tokentrace.processor.stages import span_metrics

stage = span_metrics.build({"record_all": True})
def batch():
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.usage.input_tokens": 4}
    return [SpanData(1, 1, None, "chat", 3, 10**9, 2 * 10**9, attributes, scope_name="x")]
stage.process(batch())
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
stage.process(batch())
found = {}
for rm in reader.get_metrics_data().resource_metrics:
    for sm in rm.scope_metrics:
        for m in sm.metrics:
            found[m.name] = [getattr(p, "value", None) or p.count for p in m.data.data_points]
print(json.dumps(found))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    found = json.loads(result.stdout)
    assert found[semconv.METRIC_LLM_REQUESTS] == [1]  # the second batch only
    assert found[semconv.METRIC_TOKEN_USAGE] == [1]
    assert found[semconv.METRIC_OPERATION_DURATION] == [1]


def test_cumulative_start_times_stay_and_delta_start_times_follow() -> None:
    for temporality in TEMPORALITIES:
        reader = reader_for(temporality)
        stage = aggregated_stage({}, reader)
        span = {semconv.OPERATION_NAME: "chat", semconv.PROVIDER_NAME: "openai"}
        times = []
        for n in range(2):
            stage.process([llm_span(n, dict(span))])
            data = reader.get_metrics_data()
            (point,) = [
                p
                for rm in data.resource_metrics
                for sm in rm.scope_metrics
                for m in sm.metrics
                if m.name == semconv.METRIC_LLM_REQUESTS
                for p in m.data.data_points
            ]
            times.append((point.start_time_unix_nano, point.time_unix_nano))
        (start1, end1), (start2, end2) = times
        assert start1 <= end1 <= start2 <= end2 if temporality == "delta" else start1 == start2 < end1 <= end2
        if temporality == "delta":
            assert start2 == end1


def test_the_sdk_paths_buffers_stay_bounded_with_uncached_spans() -> None:
    """Float tenants are never cached (1.0 == 1), so each span makes a plan: the buffers they share are
    bounded, and clearing them changes nothing in what is exported (integer amounts: exact either way)."""
    spans = [
        llm_span(
            n,
            {
                semconv.OPERATION_NAME: "chat",
                semconv.ATTRIBUTION_TENANT: float(n % 40),
                semconv.SERVER_PORT: float(n % 7),
                semconv.USAGE_INPUT_TOKENS: n,
            },
        )
        for n in range(400)
    ]
    unbounded_reader, bounded_reader = reader_for("cumulative"), reader_for("cumulative")
    unbounded = sdk_stage({}, unbounded_reader)
    for start in range(0, 400, 50):
        unbounded.process(copies(spans[start : start + 50])[0])
    assert len(unbounded._buffers) > 100
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(span_metrics, "_BUFFER_LIMIT", 10)
        bounded = sdk_stage({}, bounded_reader)
        for start in range(0, 400, 50):
            bounded.process(copies(spans[start : start + 50])[0])
            assert len(bounded._buffers) <= 10 and not bounded._plans
    assert exported(bounded_reader) == exported(unbounded_reader)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("make", [sdk_stage, aggregated_stage])
def test_a_refused_amount_drops_only_its_own_span_s(make: Any) -> None:
    """A NaN, an infinity or a negative amount is refused on its own: the other spans' amounts of the same
    series and batch still count, whether the series is summed per batch (tenant "a") or span by span
    (the overflow series, past ``max_series``)."""
    reader = reader_for("cumulative")
    stage = make({"max_series": 1}, reader)
    costs = [("a", 1.0), ("a", math.nan), ("a", 2.0), ("a", math.inf), ("a", -1.0)]
    costs += [("b", 1.5), ("c", math.nan), ("d", 2.0), ("b", -math.inf)]
    stage.process(
        [
            llm_span(n, {semconv.OPERATION_NAME: "chat", semconv.ATTRIBUTION_TENANT: t, semconv.USAGE_COST_AMOUNT: c})
            for n, (t, c) in enumerate(costs)
        ]
    )
    cost = {
        dict(attributes).get("tokentrace.tenant", dict(attributes).get("tokentrace.overflow")): value[0]
        for (shape, attributes), value in exported(reader).items()
        if shape[0] == semconv.METRIC_LLM_COST
    }
    assert cost == {("str", "a"): ("float", 3.0), ("bool", True): ("float", 3.5)}


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("amount", [math.nan, math.inf, -1])
def test_a_refused_amount_gives_the_same_points_when_the_sdk_path_splits_a_series(amount: float) -> None:
    """With a plan cache of 2, the SDK path's buffers are dropped with the plans mid-batch, so one series'
    amounts are flushed in two parts, while the aggregated path sums them at once. A refused amount in the
    first part used to sink that part's sum in one path and the whole batch's in the other (a
    ``reasoning`` point in one export and not the other)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(span_metrics, "_CACHE_LIMIT", 2)
        sdk_reader, aggregated_reader = reader_for("cumulative"), reader_for("cumulative")
        sdk, aggregated = sdk_stage({}, sdk_reader), aggregated_stage({}, aggregated_reader)

        def batch() -> list[SpanData]:
            return [
                llm_span(
                    port,
                    {
                        semconv.OPERATION_NAME: "chat",
                        semconv.PROVIDER_NAME: "openai",
                        semconv.SERVER_PORT: port,  # a plan each: the third evicts the first two, and the buffers
                        semconv.USAGE_REASONING_OUTPUT_TOKENS: reasoning,
                    },
                )
                for port, reasoning in ((1, amount), (2, 5), (3, 7))
            ]

        sdk.process(batch())
        aggregated.process(batch())
        expected = exported(sdk_reader)
        assert exported(aggregated_reader) == expected
        reasoning = [
            value
            for (shape, attributes), value in expected.items()
            if shape[0] == semconv.METRIC_LLM_TOKENS and (semconv.TOKEN_TYPE, ("str", "reasoning")) in attributes
        ]
        assert reasoning == [(("int", 12), [])]


def test_a_reader_added_later_gets_the_aggregates_from_then_on() -> None:
    first, later = reader_for("cumulative"), reader_for("cumulative")
    provider = gateway_meter_provider(TelemetrySettings(), [first])
    stage = span_metrics.build({}, provider)
    span = {semconv.OPERATION_NAME: "chat", semconv.PROVIDER_NAME: "openai"}
    stage.process([llm_span(1, dict(span))])
    provider.add_metric_reader(later)
    stage.process([llm_span(2, dict(span))])

    def requests(reader: InMemoryMetricReader) -> Any:
        found = exported(reader)
        return [value[0] for (shape, _), value in found.items() if shape[0] == semconv.METRIC_LLM_REQUESTS]

    assert (requests(first), requests(later)) == ([("int", 2)], [("int", 1)])


def test_an_sdk_without_the_hooked_internals_gets_the_sdk_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The producer hook uses SDK internals; where a reader lacks them the gateway still starts and the
    stage records through the SDK's instruments (slower, the same metrics)."""
    from tokentrace.gateway import metric_producers

    monkeypatch.setattr(metric_producers, "_READER_INTERNALS", ("_an_internal_this_sdk_does_not_have",))
    reader = InMemoryMetricReader()
    stage = span_metrics.build({}, gateway_meter_provider(TelemetrySettings(), [reader]))
    assert not isinstance(stage._duration, AggregatedMetric)
    stage.process([llm_span(1, {semconv.OPERATION_NAME: "chat", semconv.PROVIDER_NAME: "openai"})])
    names = {
        metric.name
        for resource_metrics in reader.get_metrics_data().resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
    }
    assert {semconv.METRIC_LLM_DURATION, semconv.METRIC_LLM_REQUESTS} <= names
