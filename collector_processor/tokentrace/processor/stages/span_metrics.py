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
        self._group_cache: dict[tuple[Any, ...], tuple[dict[str, Any], dict[str, dict[str, Any]]]] = {}
        self._dims_cache: dict[tuple[Any, ...], tuple[dict[str, Any], dict[str, dict[str, Any]]]] = {}
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
        self._counters = (self._requests, self._errors, self._llm_tokens, self._llm_cost)

    def process(self, batch: list[SpanData]) -> list[SpanData]:
        pending: _Pending = {counter: {} for counter in self._counters}
        for span in batch:
            try:
                self._record(span, pending)
            except Exception:
                logger.debug("tokentrace: span metrics failed for %r", span.name, exc_info=True)
        self._flush(pending)
        return batch

    @staticmethod
    def _flush(pending: _Pending) -> None:
        for counter, sums in pending.items():
            for amount, attributes in sums.values():
                try:
                    counter.add(amount, attributes)
                except Exception:
                    logger.debug("tokentrace: span metrics failed to add to %r", counter, exc_info=True)

    # Counters are summed per (counter, attribute set) over the batch and added once at its end: an SDK
    # add costs 10-20 µs of attribute cleaning and hashing, and the sum is the same. Attribute sets come
    # from caches keyed on the few values they are built from and their types (see _cacheable), shared by
    # every span of a series, which is what lets the batch sum find its entry by identity.
    @staticmethod
    def _add(pending: _Pending, counter: Any, amount: Any, attributes: dict[str, Any]) -> None:
        if amount < 0:  # the SDK refuses it with a warning: keep that per span rather than netting it off
            counter.add(amount, attributes)
            return
        sums = pending[counter]
        entry = sums.get(id(attributes))
        if entry is None:
            sums[id(attributes)] = [amount, attributes]
        else:
            entry[0] += amount

    def _record(self, span: SpanData, pending: _Pending | None = None) -> None:
        attributes = span.attributes
        operation = attributes.get(semconv.OPERATION_NAME)
        if not isinstance(operation, str):
            return
        if pending is None:  # a single span outside process(): add at once
            pending = {counter: {} for counter in self._counters}
            self._record(span, pending)
            self._flush(pending)
            return
        if self.config.grouped:
            self._record_grouped(span, attributes, pending)
        record_all = self.config.record_all
        if not record_all and span.scope_name.startswith(OWN_SCOPE_PREFIX):
            return  # tokentrace's recorder already recorded this call's metrics
        dims, token_dims = self._dims(span, attributes)
        if span.end_ns >= span.start_ns > 0:
            self._duration.record(span.duration_s, dims)
        for key, token_type in (
            (semconv.USAGE_INPUT_TOKENS, semconv.TOKEN_TYPE_INPUT),
            (semconv.USAGE_OUTPUT_TOKENS, semconv.TOKEN_TYPE_OUTPUT),
        ):
            tokens = _number(attributes.get(key))
            if tokens is not None:
                self._tokens.record(tokens, token_dims[token_type] if token_dims is not None
                                    else {**dims, semconv.TOKEN_TYPE: token_type})
        cost = _number(attributes.get(semconv.USAGE_COST_AMOUNT))
        if cost is not None and (record_all or not attributes.get(semconv.ENRICHED_FOREIGN_SPAN)):
            self._cost.record(cost, dims)

    def _dims(self, span: SpanData, attributes: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The conventions' attributes, and per token type those plus ``gen_ai.token.type`` (cached)."""
        values = tuple(map(attributes.get, _DIMENSION_KEYS))
        # the types too: server.port is an int, and 1 == True == 1.0 must not share an entry
        cache_key = (values, tuple(map(type, values)), span.status_code == STATUS_ERROR)
        try:
            cached = self._dims_cache.get(cache_key)
        except TypeError:  # a list value: fine as a metric attribute, not as a key
            cached = None
        if cached is not None:
            return cached
        system = values[-1]
        dims: dict[str, Any] = {}
        for key, value in zip(_DIMENSIONS, values, strict=False):
            if value is not None and value != "":
                dims[key] = value
        if semconv.PROVIDER_NAME not in dims and isinstance(system, str):
            dims[semconv.PROVIDER_NAME] = system
        if semconv.ERROR_TYPE not in dims and span.status_code == STATUS_ERROR:
            dims[semconv.ERROR_TYPE] = "_OTHER"
        if not _cacheable(values):
            return dims, None
        token_dims = {kind: {**dims, semconv.TOKEN_TYPE: kind}
                      for kind in (semconv.TOKEN_TYPE_INPUT, semconv.TOKEN_TYPE_OUTPUT)}
        if len(self._dims_cache) >= _CACHE_LIMIT:
            self._dims_cache.clear()
        self._dims_cache[cache_key] = cached = (dims, token_dims)
        return cached

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

    def _cached_group(self, span: SpanData, attributes: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """``_group`` and its per-token-kind attribute sets, cached per series once it is admitted."""
        values = tuple(map(attributes.get, _GROUP_KEYS))
        cache_key = (values, tuple(map(type, values)), span.status_code == STATUS_ERROR)
        cached = self._group_cache.get(cache_key)
        if cached is not None:
            return cached
        group = self._group(span, attributes)
        by_kind = {kind: {**group, semconv.TOKEN_TYPE: kind} for _, kind in _TOKEN_KINDS}
        if group.get("tokentrace.overflow") is True or not _cacheable(values):
            return group, by_kind  # overflow is counted per span; odd values are not cached
        if len(self._group_cache) >= _CACHE_LIMIT:
            self._group_cache.clear()
        self._group_cache[cache_key] = cached = (group, by_kind)
        return cached

    def _record_grouped(self, span: SpanData, attributes: dict[str, Any],
                        pending: _Pending) -> None:
        group, by_kind = self._cached_group(span, attributes)
        add = self._add
        add(pending, self._requests, 1, group)
        if semconv.ERROR_TYPE in group or span.status_code == STATUS_ERROR:
            add(pending, self._errors, 1, group)
        if span.end_ns >= span.start_ns > 0:
            self._llm_duration.record(span.duration_s, group)
        ttfc = _number(attributes.get(semconv.RESPONSE_TIME_TO_FIRST_CHUNK))
        if ttfc is not None:
            self._llm_ttfc.record(ttfc, group)
        for key, kind in _TOKEN_KINDS:
            tokens = attributes.get(key)
            if tokens is None:  # most spans carry two or three of the six
                continue
            tokens = _number(tokens)
            if tokens:
                add(pending, self._llm_tokens, tokens, by_kind[kind])
        cost = _number(attributes.get(semconv.USAGE_COST_AMOUNT))
        if cost:
            add(pending, self._llm_cost, cost, group)


_CACHE_LIMIT = 4096
# What a group and the conventions' attribute set are built from: their cache keys.
_GROUP_KEYS = (*(source for source, _ in _GROUPS), semconv.REQUEST_MODEL, semconv.SYSTEM)
_DIMENSION_KEYS = (*_DIMENSIONS, semconv.SYSTEM)
_Pending = dict[Any, dict[int, list[Any]]]  # counter -> id(attribute set) -> [sum, attribute set]


def _cacheable(values: tuple[Any, ...]) -> bool:
    """Whether a cache key built from these values is safe: strings, ints, bools and None only, with
    their types in the key (``True == 1 == 1.0``; ``-0.0 == 0.0`` is why floats are left out)."""
    return all(value is None or type(value) in _KEY_TYPES for value in values)


_KEY_TYPES = (str, int, bool)


def build(config: Config | Mapping[str, Any] | None = None, meter_provider: MeterProvider | None = None
          ) -> SpanMetricsStage:
    if config is None or isinstance(config, Mapping):
        config = Config.from_mapping(config)
    return SpanMetricsStage(config, meter_provider)
