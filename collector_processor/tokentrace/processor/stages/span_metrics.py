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
``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` in an application; in the gateway its
``telemetry.temporality`` setting, read through :func:`preferred_temporality`. This stage's own
``temporality`` key decides nothing: it is still accepted (and validated), with a warning saying so.

Cost per span (the gateway sees 100k spans/s): both attribute sets of a span depend on ten of its
attributes, so a plan (:class:`_Plan`) cached on their values *and types* holds them, already bound to
their series. A measurement is then one ``list.append`` onto its series' buffer, and the buffers are
flushed at the end of the batch: an SDK counter gets one ``add`` of the batch's sum per series, an SDK
histogram its values in order (an SDK call costs 10-20 µs of attribute cleaning, hashing and locking).
In the gateway the series are the stage's own (:mod:`.span_metrics_aggregate`), aggregated in a few C
loops per batch and exported by the gateway's ``MeterProvider``: the same points the SDK would export.
Without a MeterProvider (the API's proxies, which drop every call until one is set globally) only the
plan is looked up, so the series cap still sees every series.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.metrics import MeterProvider, get_meter

from tokentrace.core import semconv
from tokentrace.core.instruments import create_instruments
from tokentrace.processor.model import STATUS_ERROR, SpanData
from tokentrace.processor.stages import PassThroughTiming
from tokentrace.processor.stages.span_metrics_aggregate import AggregatedMetric, Aggregates, counter_adds, series_key
from tokentrace.version import __version__

logger = logging.getLogger(__name__)

OWN_SCOPE_PREFIX = "tokentrace"
SCOPE = "tokentrace.processor.span_metrics"
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
    temporality: str = "cumulative"  # validated, unused: the gateway's telemetry.temporality decides

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
        if "temporality" in d:  # accepted so older configs still load, but said out loud: it changes nothing
            logger.warning(
                "span_metrics.temporality has no effect: the metric exporter decides (in an application "
                "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, in the gateway telemetry.temporality)"
            )
        return cls(**d)


def preferred_temporality(temporality: str) -> dict[type, Any]:
    """The ``preferred_temporality`` argument of an SDK metric exporter/reader for a setting value."""
    from opentelemetry.sdk.metrics import Counter, Histogram, ObservableCounter, UpDownCounter
    from opentelemetry.sdk.metrics.export import AggregationTemporality

    chosen = AggregationTemporality.DELTA if temporality == "delta" else AggregationTemporality.CUMULATIVE
    return {
        Counter: chosen,
        Histogram: chosen,
        ObservableCounter: chosen,
        UpDownCounter: AggregationTemporality.CUMULATIVE,
    }


def _number(value: Any) -> float | int | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return None


_PLAIN_NUMBERS = frozenset((int, float))  # types _number returns values of as they are


class _CounterBuffer:
    """A counter and one attribute set: the amounts of the current batch, added to the counter as one sum.

    An SDK ``add`` costs 10-20 µs of attribute cleaning and hashing, and the sum is the same. Plans share
    one per (counter, attribute set), told apart by value and type like the SDK's series.
    """

    __slots__ = ("attributes", "counter", "one_by_one", "values")

    def __init__(self, counter: Any, attributes: dict[str, Any] | None) -> None:
        self.counter = counter
        self.attributes = attributes
        self.values: list[Any] = []
        self.one_by_one = False  # see counter_adds

    def flush(self) -> None:
        try:
            _measure_each(self.counter, self.counter.add, counter_adds(self.values, self.one_by_one), self.attributes)
        finally:
            self.values.clear()


class _HistogramBuffer:
    """A histogram and one attribute set: the values of the current batch, recorded at its end."""

    __slots__ = ("attributes", "histogram", "values")

    def __init__(self, histogram: Any, attributes: dict[str, Any]) -> None:
        self.histogram = histogram
        self.attributes = attributes
        self.values: list[Any] = []

    def flush(self) -> None:
        try:
            _measure_each(self.histogram, self.histogram.record, self.values, self.attributes)
        finally:
            self.values.clear()


def _measure_each(instrument: Any, measure: Any, amounts: list[Any], attributes: dict[str, Any] | None) -> None:
    """``measure`` (an SDK ``add`` or ``record``) each amount; one that raises (an int too large for the
    SDK's ``math.isfinite``, say) is dropped, not the amounts after it."""
    for amount in amounts:
        try:
            measure(amount, attributes)
        except Exception:
            logger.debug("tokentrace: span metrics failed to measure on %r", instrument, exc_info=True)


class _Plan:
    """What one kind of span records: the attribute sets of both families, bound to their series.

    A plan is cached on the values (and types) of every span attribute its attribute sets are built from,
    so a span of a known kind costs one key and one lookup, and each measurement one ``list.append`` onto
    the buffer of its series (``_CounterBuffer``/``_HistogramBuffer``, or in the gateway the aggregated
    series of :mod:`.span_metrics_aggregate`); buffers are flushed at the end of the batch.
    """

    __slots__ = (
        "buffers",
        "cost",
        "duration",
        "errors",
        "input_tokens",
        "llm_cost",
        "llm_duration",
        "llm_input",
        "llm_output",
        "llm_tokens",
        "llm_ttfc",
        "mark",
        "output_tokens",
        "overflow",
        "requests",
    )

    def __init__(self) -> None:
        self.buffers: list[Any] = []  # every buffer below, flushed once the batch is done
        self.mark: object = None  # the batch that last used this plan (it is then on that batch's list)
        self.requests: Any = None  # each of these appends to a series' buffer; None: the grouped family is off
        self.errors: Any = None  # None: not an error
        self.overflow: Any = None  # None: the series is within the cap
        self.llm_duration: Any = None
        self.llm_ttfc: Any = None
        self.llm_input: Any = None
        self.llm_output: Any = None
        self.llm_tokens: tuple[Any, ...] = ()  # the appends of _TOKEN_KINDS[2:]
        self.llm_cost: Any = None
        self.duration: Any = None
        self.input_tokens: Any = None
        self.output_tokens: Any = None
        self.cost: Any = None


class SpanMetricsStage(PassThroughTiming):
    """Records both families per span; see the module docstring.

    ``aggregates``: keep the metrics in the stage (the gateway's path, exported by its ``MeterProvider``)
    instead of recording them through ``meter_provider``'s instruments.
    """

    name = "span_metrics"

    def __init__(
        self,
        config: Config | None = None,
        meter_provider: MeterProvider | None = None,
        aggregates: Aggregates | None = None,
    ) -> None:
        self.config = config or Config()
        # one lock for a whole batch: buffers are shared, the in-process SDK processor calls from
        # application threads, and a reader collects the aggregates under it too
        self._lock: Any = aggregates.lock if aggregates is not None else threading.Lock()
        meter: Any = aggregates or get_meter(SCOPE, __version__, meter_provider)
        instruments = create_instruments(meter)
        self._duration = instruments.duration
        self._tokens = instruments.tokens
        self._cost = instruments.cost
        self._series: set[tuple[Any, ...]] = set()
        self._plans: dict[tuple[Any, ...], _Plan] = {}
        self._buffers: dict[tuple[int, Hashable], Any] = {}  # the SDK path's buffers, shared by the plans
        self._requests = meter.create_counter(
            semconv.METRIC_LLM_REQUESTS,
            unit="{request}",
            description="LLM calls, by provider, model, template, tenant.",
        )
        self._errors = meter.create_counter(
            semconv.METRIC_LLM_ERRORS, unit="{request}", description="Failed LLM calls, by error type."
        )
        self._llm_duration = meter.create_histogram(
            semconv.METRIC_LLM_DURATION,
            unit="s",
            description="LLM call duration.",
            explicit_bucket_boundaries_advisory=semconv.DURATION_BUCKETS,
        )
        self._llm_ttfc = meter.create_histogram(
            semconv.METRIC_LLM_TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time to the first chunk of a stream.",
            explicit_bucket_boundaries_advisory=semconv.DURATION_BUCKETS,
        )
        self._llm_tokens = meter.create_counter(
            semconv.METRIC_LLM_TOKENS, unit="{token}", description="Tokens by type (input, output, cache_read, ...)."
        )
        self._llm_cost = meter.create_counter(semconv.METRIC_LLM_COST, unit="USD", description="Cost in US dollars.")
        self._overflow = meter.create_counter(
            semconv.METRIC_LLM_SERIES_OVERFLOW,
            unit="{span}",
            description="Spans counted in the overflow series (cap reached).",
        )
        self._all = (
            self._duration,
            self._tokens,
            self._cost,
            self._requests,
            self._errors,
            self._llm_duration,
            self._llm_ttfc,
            self._llm_tokens,
            self._llm_cost,
            self._overflow,
        )

    def process(self, batch: list[SpanData]) -> list[SpanData]:
        used: list[_Plan] = []  # the plans this batch used, whose buffers to flush
        with self._lock:
            live = self._live()
            record_all = self.config.record_all
            mark = object()
            record = self._record
            for span in batch:
                try:
                    record(span, live, record_all, mark, used)
                except Exception:
                    logger.debug("tokentrace: span metrics failed for %r", span.name, exc_info=True)
            for plan in used:
                for buffer in plan.buffers:  # shared buffers are empty the second time
                    try:
                        buffer.flush()
                    except Exception:
                        logger.debug("tokentrace: span metrics failed to flush %r", buffer, exc_info=True)
        return batch

    def _live(self) -> bool:
        """Whether a measurement can go anywhere: False only while every instrument is an API proxy that
        has no real instrument yet (no MeterProvider given and none set globally), when the API drops
        every call. Asked once per batch, so a provider set later gets the next batch's measurements."""
        return any(getattr(instrument, "_real_instrument", instrument) is not None for instrument in self._all)

    def _record(self, span: SpanData, live: bool, record_all: bool, mark: object, used: list[_Plan]) -> None:
        """One span: its plan (admitting its series), then its measurements onto the plan's buffers, in the
        order of the plain per-span code. One call per span: the call costs as much as a few measurements."""
        attributes = span.attributes
        if not isinstance(attributes.get(_OPERATION), str):  # first: cheap for spans that are not GenAI ones
            return
        values = tuple(map(attributes.get, _KEYS))
        error = span.status_code == STATUS_ERROR
        # the types too: server.port is an int, and 1 == True == 1.0 must not share an entry
        key = (values, tuple(map(type, values)), error)
        try:
            plan = self._plans.get(key)
        except TypeError:  # a list value: fine as a metric attribute, not as a key
            plan = None
        if plan is None:
            plan = self._plan(attributes, values, error, key)
        if not live:
            return
        if plan.mark is not mark:
            plan.mark = mark
            used.append(plan)
        # one C loop for every value measured (attribute lookups of semconv names cost as much as the gets)
        input_tokens, output_tokens, cost, ttfc, cache_read, cache_creation, cache_write, reasoning = map(
            attributes.get, _MEASURED
        )
        start, end = span.start_ns, span.end_ns
        duration = (end - start) / 1e9 if end >= start > 0 else None  # SpanData.duration_s, without the call
        # _number's answer, without the call for a plain int or float (what almost every span has)
        if type(input_tokens) not in _PLAIN_NUMBERS:
            input_tokens = _number(input_tokens)
        if type(output_tokens) not in _PLAIN_NUMBERS:
            output_tokens = _number(output_tokens)
        if type(cost) not in _PLAIN_NUMBERS:
            cost = _number(cost)
        requests = plan.requests
        if requests is not None:
            requests(1)
            if plan.overflow is not None:
                plan.overflow(1)
            if plan.errors is not None:
                plan.errors(1)
            if duration is not None:
                plan.llm_duration(duration)
            if ttfc is not None and (ttfc := _number(ttfc)) is not None:
                plan.llm_ttfc(ttfc)
            if input_tokens:
                plan.llm_input(input_tokens)
            if output_tokens:
                plan.llm_output(output_tokens)
            if cache_read is not None or cache_creation is not None or cache_write is not None or reasoning is not None:
                others = (cache_read, cache_creation, cache_write, reasoning)  # most spans carry none of them
                for tokens, append in zip(others, plan.llm_tokens, strict=True):
                    if tokens is not None and (tokens := _number(tokens)):
                        append(tokens)
            if cost:
                plan.llm_cost(cost)
        if not record_all and span.scope_name.startswith(OWN_SCOPE_PREFIX):
            return  # tokentrace's recorder already recorded this call's metrics
        if duration is not None:
            plan.duration(duration)
        if input_tokens is not None:
            plan.input_tokens(input_tokens)
        if output_tokens is not None:
            plan.output_tokens(output_tokens)
        if cost is not None and (record_all or not attributes.get(semconv.ENRICHED_FOREIGN_SPAN)):
            plan.cost(cost)

    def _plan(self, attributes: dict[str, Any], values: tuple[Any, ...], error: bool, key: tuple[Any, ...]) -> _Plan:
        """A new plan, cached unless a value is of a type that could be confused in a key (see _cacheable)."""
        plan = _Plan()
        counter, histogram = self._counter, self._histogram
        if self.config.grouped:
            group, overflow = self._group(attributes, error)
            # Sums per batch only for a group that was cached before plans existed; an overflow or odd-valued
            # group was added span by span, and still is (the same float rounding as before).
            one_by_one = overflow or not _cacheable(tuple(map(attributes.get, _GROUP_KEYS)))
            plan.requests = counter(plan, self._requests, group, one_by_one)
            if overflow:
                plan.overflow = counter(plan, self._overflow, None)
            if semconv.ERROR_TYPE in group or error:
                plan.errors = counter(plan, self._errors, group, one_by_one)
            plan.llm_duration = histogram(plan, self._llm_duration, group)
            plan.llm_ttfc = histogram(plan, self._llm_ttfc, group)
            plan.llm_input, plan.llm_output, *others = (
                counter(plan, self._llm_tokens, {**group, semconv.TOKEN_TYPE: kind}, one_by_one)
                for _, kind in _TOKEN_KINDS
            )
            plan.llm_tokens = tuple(others)
            plan.llm_cost = counter(plan, self._llm_cost, group, one_by_one)
        dims = _dims(values, error)
        plan.duration = histogram(plan, self._duration, dims)
        plan.input_tokens = histogram(plan, self._tokens, {**dims, semconv.TOKEN_TYPE: semconv.TOKEN_TYPE_INPUT})
        plan.output_tokens = histogram(plan, self._tokens, {**dims, semconv.TOKEN_TYPE: semconv.TOKEN_TYPE_OUTPUT})
        plan.cost = histogram(plan, self._cost, dims)
        if _cacheable(values):
            if len(self._plans) >= _CACHE_LIMIT:
                self._plans.clear()
                self._buffers.clear()  # only plans refer to them (and this batch's list of used plans)
            self._plans[key] = plan
        return plan

    def _group(self, attributes: dict[str, Any], error: bool) -> tuple[dict[str, Any], bool]:
        """The tokentrace.llm.* attribute set, and whether it is past the series cap (then the overflow set)."""
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
        if semconv.ERROR_TYPE not in group and error:
            group[semconv.ERROR_TYPE] = "_OTHER"
        key = tuple(sorted(group.items()))
        if key not in self._series:
            if len(self._series) >= self.config.max_series:
                return dict(OVERFLOW), True
            self._series.add(key)
        return group, False

    def _counter(self, plan: _Plan, counter: Any, attributes: dict[str, Any] | None, one_by_one: bool = False) -> Any:
        """The ``append`` of the buffer for ``counter`` and ``attributes``, which the plan then flushes.
        (An attribute set is always or never ``one_by_one``: odd and overflow sets are never a cached one.)"""
        if isinstance(counter, AggregatedMetric):
            buffer = counter.series(attributes)
        else:
            buffer = self._buffer(counter, attributes, _CounterBuffer)
        buffer.one_by_one = one_by_one
        plan.buffers.append(buffer)
        return buffer.values.append

    def _histogram(self, plan: _Plan, histogram: Any, attributes: dict[str, Any]) -> Any:
        if isinstance(histogram, AggregatedMetric):
            buffer = histogram.series(attributes)
        else:
            buffer = self._buffer(histogram, attributes, _HistogramBuffer)
        plan.buffers.append(buffer)
        return buffer.values.append

    def _buffer(self, instrument: Any, attributes: dict[str, Any] | None, kind: type) -> Any:
        """The SDK path's buffer for an instrument and attribute set, shared by the plans that use it.
        Bounded: uncached plans (odd values) could otherwise add buffers forever."""
        key = (id(instrument), series_key(attributes))
        buffer = self._buffers.get(key)
        if buffer is None:
            if len(self._buffers) >= _BUFFER_LIMIT:
                self._buffers.clear()  # plans keep theirs; a series may then have two buffers in a batch
            buffer = self._buffers[key] = kind(instrument, attributes)
        return buffer


def _dims(values: tuple[Any, ...], error: bool) -> dict[str, Any]:
    """The conventions' attribute set from the values of ``_KEYS``."""
    dims: dict[str, Any] = {}
    for key, value in zip(_DIMENSIONS, values, strict=False):  # _KEYS starts with _DIMENSIONS
        if value is not None and value != "":
            dims[key] = value
    system = values[_KEYS.index(semconv.SYSTEM)]
    if semconv.PROVIDER_NAME not in dims and isinstance(system, str):
        dims[semconv.PROVIDER_NAME] = system
    if semconv.ERROR_TYPE not in dims and error:
        dims[semconv.ERROR_TYPE] = "_OTHER"
    return dims


_CACHE_LIMIT = 4096
_BUFFER_LIMIT = 16 * _CACHE_LIMIT  # a plan has up to twelve buffers, most shared with other plans
# What _record reads: input and output tokens, cost, time to first chunk, then _TOKEN_KINDS[2:].
_MEASURED = (
    semconv.USAGE_INPUT_TOKENS,
    semconv.USAGE_OUTPUT_TOKENS,
    semconv.USAGE_COST_AMOUNT,
    semconv.RESPONSE_TIME_TO_FIRST_CHUNK,
    *(source for source, _ in _TOKEN_KINDS[2:]),
)
assert _MEASURED[:2] == (_TOKEN_KINDS[0][0], _TOKEN_KINDS[1][0]) and len(_TOKEN_KINDS) == 6
# Every span attribute the two attribute sets are built from (gen_ai.operation.name first): the plans' key.
_KEYS = (*_DIMENSIONS, semconv.SYSTEM, semconv.PROMPT_FINGERPRINT, semconv.ATTRIBUTION_TENANT)
_OPERATION = semconv.OPERATION_NAME
_GROUP_KEYS = (*(source for source, _ in _GROUPS), semconv.REQUEST_MODEL, semconv.SYSTEM)  # what _group reads


def _cacheable(values: tuple[Any, ...]) -> bool:
    """Whether a cache key built from these values is safe: strings, ints, bools and None only, with
    their types in the key (``True == 1 == 1.0``; ``-0.0 == 0.0`` is why floats are left out)."""
    return all(value is None or type(value) in _KEY_TYPES for value in values)


_KEY_TYPES = (str, int, bool)


def build(
    config: Config | Mapping[str, Any] | None = None, meter_provider: MeterProvider | None = None
) -> SpanMetricsStage:
    """The stage; aggregating itself when ``meter_provider`` takes metric producers (the gateway's does,
    see :mod:`tokentrace.gateway.telemetry`), else recording through its instruments."""
    if config is None or isinstance(config, Mapping):
        config = Config.from_mapping(config)
    register = getattr(meter_provider, "register_metric_producer", None)
    if register is not None:
        aggregates = Aggregates(SCOPE, __version__)
        if register(aggregates):
            return SpanMetricsStage(config, aggregates=aggregates)
    return SpanMetricsStage(config, meter_provider)
