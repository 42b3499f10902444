"""span_metrics' grouped ``tokentrace.llm.*`` metrics: groups, the series cap, temporality."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader

from tokentrace.core import semconv
from tokentrace.processor.model import STATUS_ERROR, STATUS_UNSET, SpanData
from tokentrace.processor.stages import span_metrics


def llm(n: int, *, tenant: str = "acme", template: str = "t1", error: str | None = None, **extra: Any) -> SpanData:
    attributes = {
        semconv.OPERATION_NAME: "chat",
        semconv.PROVIDER_NAME: "openai",
        semconv.REQUEST_MODEL: "gpt-4o",
        semconv.RESPONSE_MODEL: "gpt-4o-2024-08-06",
        semconv.USAGE_INPUT_TOKENS: 100,
        semconv.USAGE_OUTPUT_TOKENS: 10,
        semconv.USAGE_CACHE_READ_INPUT_TOKENS: 40,
        semconv.USAGE_COST_AMOUNT: 0.01,
        semconv.ATTRIBUTION_TENANT: tenant,
        semconv.PROMPT_FINGERPRINT: template,
        **extra,
    }
    if error:
        attributes[semconv.ERROR_TYPE] = error
    return SpanData(
        trace_id=n,
        span_id=n,
        parent_span_id=None,
        name="chat gpt-4o",
        kind=3,
        start_ns=10**9,
        end_ns=10**9 + 500_000_000,
        attributes=attributes,
        scope_name="tokentrace.instrumentation.openai",
        status_code=STATUS_ERROR if error else STATUS_UNSET,
    )


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                out.setdefault(metric.name, []).extend(metric.data.data_points)
    return out


def value(found: dict[str, list[Any]], name: str, **match: Any) -> float:
    total = 0.0
    for point in found.get(name, []):
        attributes = dict(point.attributes)
        if all(attributes.get(k.replace("__", ".")) == v for k, v in match.items()):
            total += point.sum if hasattr(point, "count") else point.value
    return total


def run(spans: list[SpanData], **config: Any) -> InMemoryMetricReader:
    reader = InMemoryMetricReader()
    stage = span_metrics.build(config, MeterProvider(metric_readers=[reader]))
    stage.process(spans)
    return reader


def test_grouped_by_tenant_template_model_and_error_type() -> None:
    spans = [
        llm(1),
        llm(2),
        llm(3, tenant="globex"),
        llm(4, template="t2", error="openai.RateLimitError"),
        llm(5, gen_ai__response__time_to_first_chunk=0.2),
    ]
    spans[4].attributes[semconv.RESPONSE_TIME_TO_FIRST_CHUNK] = 0.2
    found = points(run(spans))
    assert value(found, semconv.METRIC_LLM_REQUESTS) == 5
    assert value(found, semconv.METRIC_LLM_REQUESTS, tokentrace__tenant="acme") == 4
    assert value(found, semconv.METRIC_LLM_REQUESTS, tokentrace__prompt__fingerprint="t2") == 1
    assert value(found, semconv.METRIC_LLM_ERRORS) == 1
    assert value(found, semconv.METRIC_LLM_ERRORS, error__type="openai.RateLimitError") == 1
    assert value(found, semconv.METRIC_LLM_REQUESTS, gen_ai__response__model="gpt-4o-2024-08-06") == 5
    assert value(found, semconv.METRIC_LLM_COST) == pytest.approx(0.05)
    assert value(found, semconv.METRIC_LLM_COST, tokentrace__tenant="globex") == pytest.approx(0.01)
    assert value(found, semconv.METRIC_LLM_TOKENS, gen_ai__token__type="input") == 500
    assert value(found, semconv.METRIC_LLM_TOKENS, gen_ai__token__type="output") == 50
    assert value(found, semconv.METRIC_LLM_TOKENS, gen_ai__token__type="cache_read") == 200
    (duration,) = [
        p
        for p in found[semconv.METRIC_LLM_DURATION]
        if dict(p.attributes).get("tokentrace.tenant") == "acme"
        and dict(p.attributes).get("tokentrace.prompt.fingerprint") == "t1"
    ]
    assert duration.count == 3 and duration.sum == pytest.approx(1.5)
    (ttfc,) = found[semconv.METRIC_LLM_TIME_TO_FIRST_CHUNK]
    assert ttfc.count == 1 and ttfc.sum == pytest.approx(0.2)
    assert semconv.METRIC_LLM_SERIES_OVERFLOW not in found


def test_series_cap_sends_the_rest_to_one_counted_overflow_series() -> None:
    spans = [llm(n, tenant=f"tenant-{n}") for n in range(10)]
    found = points(run(spans, max_series=3))
    requests = found[semconv.METRIC_LLM_REQUESTS]
    assert len(requests) == 4  # three groups and the overflow series
    assert value(found, semconv.METRIC_LLM_REQUESTS) == 10  # nothing lost
    assert value(found, semconv.METRIC_LLM_REQUESTS, tokentrace__overflow=True) == 7
    assert value(found, semconv.METRIC_LLM_SERIES_OVERFLOW) == 7
    assert value(found, semconv.METRIC_LLM_COST) == pytest.approx(0.10)


def test_non_genai_spans_are_not_counted_and_grouping_can_be_switched_off() -> None:
    other = llm(1)
    other.attributes.pop(semconv.OPERATION_NAME)
    assert semconv.METRIC_LLM_REQUESTS not in points(run([other]))
    assert semconv.METRIC_LLM_REQUESTS not in points(run([llm(2)], grouped=False))


@pytest.mark.parametrize(
    ("setting", "expected"),
    [("delta", AggregationTemporality.DELTA), ("cumulative", AggregationTemporality.CUMULATIVE)],
)
def test_preferred_temporality_gives_the_reader_its_temporality(
    setting: str, expected: AggregationTemporality, caplog: pytest.LogCaptureFixture
) -> None:
    """The reader (the gateway's ``telemetry.temporality``) decides; the stage's own ``temporality`` key,
    whichever value, changes nothing and says so."""
    reader = InMemoryMetricReader(preferred_temporality=span_metrics.preferred_temporality(setting))
    other = "cumulative" if setting == "delta" else "delta"
    with caplog.at_level("WARNING", logger=span_metrics.__name__):
        stage = span_metrics.build({"temporality": other}, MeterProvider(metric_readers=[reader]))
    assert "span_metrics.temporality has no effect" in caplog.text
    stage.process([llm(1)])
    first = value(points(reader), semconv.METRIC_LLM_REQUESTS)
    stage.process([llm(2)])
    data = reader.get_metrics_data()
    metric = next(
        m
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == semconv.METRIC_LLM_REQUESTS
    )
    assert metric.data.aggregation_temporality == expected
    second = sum(p.value for p in metric.data.data_points)
    assert (first, second) == ((1, 1) if setting == "delta" else (1, 2))


def test_bad_settings_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="max_series"):
        span_metrics.Config.from_mapping({"max_series": 0})
    with pytest.raises(ValueError, match="temporality"):
        span_metrics.Config.from_mapping({"temporality": "sometimes"})
