"""The hot-path shortcuts give what the plain code gives: span_metrics' batch sums and cached attribute
sets, flags without content, redact's per-key-set memory."""

from __future__ import annotations

import itertools
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from tokentrace.core import semconv
from tokentrace.processor.model import STATUS_ERROR, STATUS_UNSET, SpanData
from tokentrace.processor.stages import flags, redact, span_metrics


def chat(n: int, **attributes: Any) -> SpanData:
    base: dict[str, Any] = {
        semconv.OPERATION_NAME: "chat",
        semconv.PROVIDER_NAME: "openai",
        semconv.REQUEST_MODEL: "gpt-4o",
        semconv.SERVER_ADDRESS: "api.openai.com",
        semconv.SERVER_PORT: 443,
        semconv.USAGE_INPUT_TOKENS: 100 + n,
        semconv.USAGE_OUTPUT_TOKENS: 10 + n,
        semconv.USAGE_COST_AMOUNT: 0.001 * (n + 1),
        semconv.ATTRIBUTION_TENANT: f"tenant-{n % 3}",
    }
    base.update(attributes)
    return SpanData(
        n,
        n,
        None,
        "chat",
        3,
        10**9,
        10**9 + 1000 * (n + 1),
        base,
        status_code=STATUS_ERROR if semconv.ERROR_TYPE in base else STATUS_UNSET,
    )


def points(reader: InMemoryMetricReader) -> dict[Any, Any]:
    out = {}
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:
                    key = (metric.name, tuple(sorted((k, (type(v), v)) for k, v in p.attributes.items())))
                    out[key] = (
                        (p.count, round(p.sum, 12), tuple(p.bucket_counts))
                        if hasattr(p, "count")
                        else round(p.value, 12)
                    )
    return out


def spans() -> list[SpanData]:
    out = [chat(n) for n in range(30)]
    out += [chat(30 + n, **{semconv.ERROR_TYPE: "RateLimitError"}) for n in range(4)]
    out.append(chat(40, **{semconv.SERVER_PORT: 1}))  # 1 and True must stay two attribute sets
    out.append(chat(41, **{semconv.SERVER_PORT: True}))
    out.append(chat(42, **{semconv.SERVER_ADDRESS: ["a", "b"]}))  # unhashable: recorded, not cached
    out.append(chat(43, **{semconv.USAGE_INPUT_TOKENS: -5}))  # refused by the SDK, as before
    out.append(chat(44, **{semconv.SYSTEM: "openai", semconv.PROVIDER_NAME: None}))
    return out


def test_span_metrics_batch_sums_equal_span_by_span_recording() -> None:
    batched, single = InMemoryMetricReader(), InMemoryMetricReader()
    config = {"record_all": True, "max_series": 4}  # past the cap too: the overflow series
    stage = span_metrics.build(config, MeterProvider(metric_readers=[batched]))
    stage.process(spans())
    stage.process(spans())  # the second time from the caches
    one_by_one = span_metrics.build(config, MeterProvider(metric_readers=[single]))
    for span in itertools.chain(spans(), spans()):
        one_by_one.process([span])
    got, expected = points(batched), points(single)
    assert got == expected
    port_sets = {
        dict(a)[semconv.SERVER_PORT]
        for name, a in got
        if name == "gen_ai.client.operation.duration" and semconv.SERVER_PORT in dict(a)
    }
    assert port_sets == {(int, 443), (int, 1), (bool, True)}
    overflow = [v for (name, _), v in got.items() if name == semconv.METRIC_LLM_SERIES_OVERFLOW]
    assert overflow and overflow[0] > 0


def test_flags_without_content_same_as_the_general_rules() -> None:
    class Nothing:
        name = "nothing"

        def __call__(self, span: SpanData, texts: list[str]) -> list[Any]:
            return []

    configs = [flags.Config(), flags.Config(short_ratio=0.5), flags.Config(checks=(semconv.FLAG_TRUNCATED,))]
    variants = []
    for operation, output_tokens, max_tokens, reasons, error in itertools.product(
        ["chat", "embeddings", "execute_tool"],
        [None, 0, 5, 100, 2.0],
        [None, 10, 100],
        [None, "length", ["stop"], ("content_filter",), ["STOP", "Max_Tokens"]],
        [None, "Timeout"],
    ):
        attributes: dict[str, Any] = {semconv.OPERATION_NAME: operation}
        for key, value in (
            (semconv.USAGE_OUTPUT_TOKENS, output_tokens),
            (semconv.REQUEST_MAX_TOKENS, max_tokens),
            (semconv.RESPONSE_FINISH_REASONS, reasons),
            (semconv.ERROR_TYPE, error),
        ):
            if value is not None:
                attributes[key] = value
        variants.append(attributes)
    for config in configs:
        fast = flags.FlagsStage(config, detectors=[])
        general = flags.FlagsStage(config, detectors=[Nothing()])  # a detector forces the general path
        for attributes in variants:
            for status in (STATUS_UNSET, STATUS_ERROR):
                span = SpanData(1, 2, None, "x", 3, 0, 1, dict(attributes), status_code=status)
                assert fast.evaluate(span) == general.evaluate(span), (config, attributes, status)


def test_redact_remembers_key_sets_not_values() -> None:
    stage = redact.build()
    clean = chat(1, **{"gen_ai.prompt.0.content": "hello"})
    dirty = chat(2, **{"gen_ai.prompt.0.content": "mail me at jane.doe@example.com"})
    stage.process([clean, dirty])
    assert "jane.doe@example.com" not in dirty.attributes["gen_ai.prompt.0.content"]
    assert dirty.attributes[semconv.PII_DETECTED] is True
    assert semconv.PII_DETECTED not in clean.attributes
