"""GenAI metrics from spans, recorded before the tail sampler so totals stay exact whatever it drops.

Two families:

* The conventions' ``gen_ai.client.token.usage`` and ``gen_ai.client.operation.duration``
  histograms and tokentrace's cost histogram, with the conventions' low-cardinality attributes.
  Spans produced by tokentrace's own instrumentation in this process (instrumentation scope
  ``tokentrace*``) already recorded these and are skipped, as is the cost of foreign spans tokentrace
  enriched, unless ``record_all`` (the gateway, which sees spans from other processes only).
* ``tokentrace.llm.*``: the questions teams ask, grouped by provider, model, operation, prompt
  template (fingerprint), tenant and error type — requests, errors, duration and time to first
  chunk, tokens by type, cost — for every GenAI span, ours included (nothing else records them).
  Tenants and templates can be many, so distinct attribute sets are capped (``max_series``); past
  the cap a span is counted under ``tokentrace.overflow=true`` and ``tokentrace.llm.series_overflow``
  counts how often, so nothing is silently lost and the backend's cardinality stays bounded.

Temporality (delta or cumulative) belongs to the metric exporter: the standard
``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` in an application; in the gateway the
``temporality`` setting here, read through :func:`preferred_temporality`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.metrics import MeterProvider, get_meter

from tokentrace.core import semconv
from tokentrace.core.instruments import create_instruments
from tokentrace.processor.model import STATUS_ERROR, SpanData
from tokentrace.processor.stages import PassThroughTiming
from tokentrace.version import __version__

logger = logging.getLogger(__name__)

OWN_SCOPE_PREFIX = "tokentrace"
_DIMENSIONS = (
    semconv.OPERATION_NAME,
    semconv.PROVIDER_NAME,
    semconv.REQUEST_MODEL,
    semconv.RESPONSE_MODEL,
    semconv.SERVER_ADDRESS,
    semconv.SERVER_PORT,
    semconv.ERROR_TYPE,
)


# Attributes of the tokentrace.llm.* metrics (span attribute -> metric attribute).
_GROUPS = (
    (semconv.PROVIDER_NAME, semconv.PROVIDER_NAME),
    (semconv.RESPONSE_MODEL, "gen_ai.response.model"),
    (semconv.OPERATION_NAME, semconv.OPERATION_NAME),
    (semconv.PROMPT_FINGERPRINT, semconv.PROMPT_FINGERPRINT),
    (semconv.ATTRIBUTION_TENANT, semconv.ATTRIBUTION_TENANT),
    (semconv.ERROR_TYPE, semconv.ERROR_TYPE),
)
OVERFLOW = {"tokentrace.overflow": True}
_TOKEN_KINDS = (
    (semconv.USAGE_INPUT_TOKENS, "input"),
    (semconv.USAGE_OUTPUT_TOKENS, "output"),
    (semconv.USAGE_CACHE_READ_INPUT_TOKENS, "cache_read"),
    ("gen_ai.usage.cache_creation.input_tokens", "cache_write"),
    ("gen_ai.usage.cache_write.input_tokens", "cache_write"),
    (semconv.USAGE_REASONING_OUTPUT_TOKENS, "reasoning"),
)


@dataclass(frozen=True)
class Config:
    record_all: bool = False
    grouped: bool = True  # the tokentrace.llm.* metrics
    max_series: int = 2000  # distinct attribute sets of tokentrace.llm.* before the overflow bucket
    temporality: str = "cumulative"  # for the gateway's metric exporter: cumulative | delta

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any] | None) -> Config:
        d = dict(d or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown span_metrics setting(s) {unknown}; known: {sorted(known)}")
        for flag in ("record_all", "grouped"):
            if flag in d and not isinstance(d[flag], bool):
                raise ValueError(f"span_metrics.{flag} must be true or false, got {d[flag]!r}")
        if "max_series" in d and (not isinstance(d["max_series"], int) or d["max_series"] < 1):
            raise ValueError(f"span_metrics.max_series must be a positive integer, got {d['max_series']!r}")
        if d.get("temporality", "cumulative") not in ("cumulative", "delta"):
            raise ValueError(f"span_metrics.temporality must be cumulative or delta, got {d['temporality']!r}")
        return cls(**d)


def preferred_temporality(temporality: str) -> dict[type, Any]:
    """The ``preferred_temporality`` argument of an SDK metric exporter/reader for a setting value."""
    from opentelemetry.sdk.metrics import Counter, Histogram, ObservableCounter, UpDownCounter
    from opentelemetry.sdk.metrics.export import AggregationTemporality

    chosen = AggregationTemporality.DELTA if temporality == "delta" else AggregationTemporality.CUMULATIVE
    return {Counter: chosen, Histogram: chosen, ObservableCounter: chosen,
            UpDownCounter: AggregationTemporality.CUMULATIVE}


def _number(value: Any) -> float | int | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return None


class SpanMetricsStage(PassThroughTiming):
    name = "span_metrics"

    def __init__(self, config: Config | None = None, meter_provider: MeterProvider | None = None) -> None:
        self.config = config or Config()
        meter = get_meter("tokentrace.processor.span_metrics", __version__, meter_provider)
        instruments = create_instruments(meter)
        self._duration = instruments.duration
        self._tokens = instruments.tokens
        self._cost = instruments.cost
        self._series: set[tuple[Any, ...]] = set()
        self._requests = meter.create_counter(semconv.METRIC_LLM_REQUESTS, unit="{request}",
                                              description="LLM calls, by provider, model, template, tenant.")
        self._errors = meter.create_counter(semconv.METRIC_LLM_ERRORS, unit="{request}",
                                            description="Failed LLM calls, by error type.")
        self._llm_duration = meter.create_histogram(
            semconv.METRIC_LLM_DURATION, unit="s", description="LLM call duration.",
            explicit_bucket_boundaries_advisory=semconv.DURATION_BUCKETS)
        self._llm_ttfc = meter.create_histogram(
            semconv.METRIC_LLM_TIME_TO_FIRST_CHUNK, unit="s", description="Time to the first chunk of a stream.",
            explicit_bucket_boundaries_advisory=semconv.DURATION_BUCKETS)
        self._llm_tokens = meter.create_counter(semconv.METRIC_LLM_TOKENS, unit="{token}",
                                                description="Tokens by type (input, output, cache_read, ...).")
        self._llm_cost = meter.create_counter(semconv.METRIC_LLM_COST, unit="USD", description="Cost in US dollars.")
        self._overflow = meter.create_counter(semconv.METRIC_LLM_SERIES_OVERFLOW, unit="{span}",
                                              description="Spans counted in the overflow series (cap reached).")

    def process(self, batch: list[SpanData]) -> list[SpanData]:
        for span in batch:
            try:
                self._record(span)
            except Exception:
                logger.debug("tokentrace: span metrics failed for %r", span.name, exc_info=True)
        return batch

    def _record(self, span: SpanData) -> None:
        attributes = span.attributes
        operation = attributes.get(semconv.OPERATION_NAME)
        if not isinstance(operation, str):
            return
        if self.config.grouped:
            self._record_grouped(span, attributes)
        record_all = self.config.record_all
        if not record_all and span.scope_name.startswith(OWN_SCOPE_PREFIX):
            return  # tokentrace's recorder already recorded this call's metrics
        dims: dict[str, Any] = {}
        for key in _DIMENSIONS:
            value = attributes.get(key)
            if value is not None and value != "":
                dims[key] = value
        if semconv.PROVIDER_NAME not in dims and isinstance(attributes.get(semconv.SYSTEM), str):
            dims[semconv.PROVIDER_NAME] = attributes[semconv.SYSTEM]
        if semconv.ERROR_TYPE not in dims and span.status_code == STATUS_ERROR:
            dims[semconv.ERROR_TYPE] = "_OTHER"
        if span.end_ns >= span.start_ns > 0:
            self._duration.record(span.duration_s, dims)
        for key, token_type in (
            (semconv.USAGE_INPUT_TOKENS, semconv.TOKEN_TYPE_INPUT),
            (semconv.USAGE_OUTPUT_TOKENS, semconv.TOKEN_TYPE_OUTPUT),
        ):
            tokens = _number(attributes.get(key))
            if tokens is not None:
                self._tokens.record(tokens, {**dims, semconv.TOKEN_TYPE: token_type})
        cost = _number(attributes.get(semconv.USAGE_COST_AMOUNT))
        if cost is not None and (record_all or not attributes.get(semconv.ENRICHED_FOREIGN_SPAN)):
            self._cost.record(cost, dims)


    def _group(self, span: SpanData, attributes: dict[str, Any]) -> dict[str, Any]:
        group: dict[str, Any] = {}
        for source, name in _GROUPS:
            value = attributes.get(source)
            if value is not None and value != "":
                group[name] = value
        if "gen_ai.response.model" not in group:
            model = attributes.get(semconv.REQUEST_MODEL)
            if model:
                group["gen_ai.response.model"] = model
        if semconv.PROVIDER_NAME not in group and isinstance(attributes.get(semconv.SYSTEM), str):
            group[semconv.PROVIDER_NAME] = attributes[semconv.SYSTEM]
        if semconv.ERROR_TYPE not in group and span.status_code == STATUS_ERROR:
            group[semconv.ERROR_TYPE] = "_OTHER"
        key = tuple(sorted(group.items()))
        if key not in self._series:
            if len(self._series) >= self.config.max_series:
                self._overflow.add(1)
                return dict(OVERFLOW)
            self._series.add(key)
        return group

    def _record_grouped(self, span: SpanData, attributes: dict[str, Any]) -> None:
        group = self._group(span, attributes)
        self._requests.add(1, group)
        if semconv.ERROR_TYPE in group or span.status_code == STATUS_ERROR:
            self._errors.add(1, group)
        if span.end_ns >= span.start_ns > 0:
            self._llm_duration.record(span.duration_s, group)
        ttfc = _number(attributes.get(semconv.RESPONSE_TIME_TO_FIRST_CHUNK))
        if ttfc is not None:
            self._llm_ttfc.record(ttfc, group)
        for key, kind in _TOKEN_KINDS:
            tokens = _number(attributes.get(key))
            if tokens:
                self._llm_tokens.add(tokens, {**group, semconv.TOKEN_TYPE: kind})
        cost = _number(attributes.get(semconv.USAGE_COST_AMOUNT))
        if cost:
            self._llm_cost.add(cost, group)


def build(config: Config | Mapping[str, Any] | None = None, meter_provider: MeterProvider | None = None
          ) -> SpanMetricsStage:
    if config is None or isinstance(config, Mapping):
        config = Config.from_mapping(config)
    return SpanMetricsStage(config, meter_provider)
