"""Span metrics aggregated by the stage itself, for a metric reader to export as if the SDK had.

In the gateway every span brings five or six histogram measurements; through the SDK each costs
10-20 µs (attribute cleaning and hashing, a lock, the aggregation), which made span metrics the
gateway's most expensive stage. Here a series is an object the stage resolves once per attribute set
(its plans hold it), a measurement is appended to the series' list, and at the end of each batch the
list is aggregated in a few C loops (``reduce``, ``sorted``, ``bisect``), falling back to the SDK's
value-by-value rules when a value must be refused. The gateway's ``MeterProvider``
(:mod:`tokentrace.gateway.metric_producers`) asks :class:`Aggregates` for its points at each
collection and merges them into what its readers export: the role the metrics specification gives a
``MetricProducer``, which the Python SDK does not have yet.

What is exported is what the SDK would export for the same measurements with its default
aggregations: the same names, units, descriptions and scope, the same attribute sets (cleaned and told
apart by value *and* type, like the SDK's), explicit-bucket histograms on the instruments' advisory
boundaries with sum, count, min and max, monotonic sums, and per reader the temporality it prefers,
with the SDK's rules for start times and for series without new measurements. Measurements the SDK
refuses (negative, not finite) are refused the same way, each on its own.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Hashable, Mapping, Sequence
from functools import reduce
from operator import add
from typing import Any

from opentelemetry.attributes import _clean_attribute_value
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

logger = logging.getLogger(__name__)

_MAX = sys.float_info.max
_INF = math.inf


def series_key(value: Any) -> Hashable:
    """A cleaned attribute value (or set) as a key that tells ``1``, ``True`` and ``1.0`` apart, as the
    SDK's own series key does."""
    if value is None or isinstance(value, (str, int, float, bool, bytes)):
        return (type(value).__name__, value)
    if isinstance(value, Mapping):
        return ("mapping", tuple((key, series_key(value[key])) for key in sorted(value, key=str)))
    if isinstance(value, Sequence):
        return ("sequence", tuple(series_key(item) for item in value))
    return ("other", repr(value))


def counter_adds(amounts: list[Any], one_by_one: bool) -> list[Any]:
    """What to add to a counter for a batch's amounts: the sum of those the SDK accepts, added left to
    right (a float sum depends on the order), and apart each amount it refuses (negative, NaN, infinite),
    for the SDK (or :class:`SumSeries`) to refuse one by one with a warning. So a bad value on one span
    drops that span's amount only, never the rest of the batch's sum, whichever spans share a batch.
    ``one_by_one``: every amount apart (overflow and uncached attribute sets, which were never summed
    per batch: their totals keep the rounding of adding amounts one at a time)."""
    if one_by_one or not amounts:
        return amounts
    total = reduce(add, amounts)
    if 0 <= total <= _MAX and min(amounts) >= 0:  # none refused (a NaN or infinity fails the sum): C loops
        return [total]
    total = None
    refused = []
    for amount in amounts:
        if not 0 <= amount <= _MAX:  # the SDK's tests (NaN compares false)
            refused.append(amount)
        elif total is None:
            total = amount
        else:
            total += amount
    return refused if total is None else [total, *refused]


def _refuse(value: Any, metric: str) -> None:
    """What the SDK does with a negative or not finite measurement: log it (the caller drops it). An int
    too large for a double, which the SDK's ``math.isfinite`` raises on, is dropped the same way (OTLP's
    int64 values never are)."""
    logger.warning("span metrics: %s is negative or not finite on %s, ignoring measurement", value, metric)


class SumSeries:
    """One attribute set of a counter: its value since the last collection, and the current batch's amounts.

    ``values`` takes a batch's amounts (the stage appends them); :meth:`flush` adds them as the stage adds
    them to an SDK counter (:func:`counter_adds`), so both paths give the same floating-point totals.
    """

    __slots__ = ("attributes", "metric", "one_by_one", "start_ns", "value", "values")

    def __init__(self, metric: str, attributes: dict[str, Any]) -> None:
        self.metric = metric
        self.attributes = attributes
        self.start_ns = time.time_ns()
        self.value: Any = None  # None: nothing since the last collection (the SDK's convention)
        self.values: list[Any] = []
        self.one_by_one = False

    def flush(self) -> None:
        try:
            for amount in counter_adds(self.values, self.one_by_one):
                if not 0 <= amount <= _MAX:  # the SDK's Counter.add checks (NaN compares false)
                    _refuse(amount, self.metric)
                else:
                    self.value = (0 if self.value is None else self.value) + amount
        finally:
            self.values.clear()

    def drain(self) -> Any:
        value, self.value = self.value, None
        return value


class HistogramSeries:
    """One attribute set of a histogram: bucket counts, sum, min and max since the last collection.

    ``values`` takes a batch's measurements (the stage appends them: the cheapest call there is), and
    :meth:`flush` aggregates them, with the result the SDK's ``record`` gives one by one in that order.
    """

    __slots__ = ("attributes", "bounds", "counts", "max", "metric", "min", "start_ns", "sum", "values")

    def __init__(self, metric: str, attributes: dict[str, Any], bounds: tuple[float, ...]) -> None:
        self.metric = metric
        self.attributes = attributes
        self.bounds = bounds
        self.start_ns = time.time_ns()
        self.counts: list[int] | None = None
        self.sum: Any = 0
        self.min: Any = _INF
        self.max: Any = -_INF
        self.values: list[Any] = []

    def flush(self) -> None:
        values = self.values
        if values:
            try:
                self._aggregate(values)
            finally:
                values.clear()

    def _aggregate(self, values: list[Any]) -> None:
        bounds = self.bounds
        counts = self.counts or [0] * (len(bounds) + 1)
        # The usual case, in C loops: no value refused (a NaN or an infinity makes the sum fail the test).
        # The sum is added value by value, as the SDK does; sorted() keeps equal values in their order, so
        # its first is what min() returns (the first of the smallest), as max() returns the first largest.
        total, ordered = reduce(add, values, self.sum), sorted(values)
        if ordered[0] >= 0 and total <= _MAX:
            below = 0
            for index, bound in enumerate(bounds):  # bucket i holds bounds[i-1] < value <= bounds[i]
                upto = bisect_right(ordered, bound, below)
                counts[index] += upto - below
                below = upto
            counts[-1] += len(ordered) - below
            self.counts, self.sum = counts, total
            if ordered[0] < self.min:
                self.min = ordered[0]
            highest = max(values)
            if highest > self.max:
                self.max = highest
            return
        sum_, min_, max_, accepted = self.sum, self.min, self.max, False
        for value in values:  # the SDK's record, value by value
            if not 0 <= value <= _MAX:  # negative, not finite (NaN compares false), or beyond a double
                _refuse(value, self.metric)
                continue
            sum_ += value
            if value < min_:  # what min(min_, value) keeps, without the call
                min_ = value
            if value > max_:
                max_ = value
            counts[bisect_left(bounds, value)] += 1
            accepted = True
        if accepted:
            self.counts, self.sum, self.min, self.max = counts, sum_, min_, max_

    def drain(self) -> tuple[list[int], Any, Any, Any] | None:
        counts = self.counts
        if counts is None:
            return None
        drained = (counts, self.sum, self.min, self.max)
        self.counts, self.sum, self.min, self.max = None, 0, _INF, -_INF
        return drained


class _SumState:
    """One reader's view of a :class:`SumSeries`: the SDK's ``_SumAggregation`` collection rules."""

    __slots__ = ("pending", "previous", "previous_start", "series")

    def __init__(self, series: SumSeries) -> None:
        self.series = series
        self.pending: Any = None
        self.previous: Any = 0
        self.previous_start = series.start_ns

    def merge(self, value: Any) -> None:
        self.pending = value if self.pending is None else self.pending + value

    def point(self, temporality: AggregationTemporality, now: int) -> NumberDataPoint | None:
        value, self.pending = self.pending, None
        attributes = self.series.attributes
        if temporality is AggregationTemporality.DELTA:
            start, self.previous_start = self.previous_start, now
            if value is None:
                return None
            return NumberDataPoint(attributes, start, now, value, [])
        self.previous = (0 if value is None else value) + self.previous
        return NumberDataPoint(attributes, self.series.start_ns, now, self.previous, [])


class _HistogramState:
    """One reader's view of a :class:`HistogramSeries`: the SDK's explicit-bucket collection rules."""

    __slots__ = ("counts", "max", "min", "previous", "previous_start", "series", "sum")

    def __init__(self, series: HistogramSeries) -> None:
        self.series = series
        self.counts: list[int] | None = None
        self.sum: Any = 0
        self.min: Any = _INF
        self.max: Any = -_INF
        self.previous: tuple[list[int], Any, Any, Any] | None = None
        self.previous_start = series.start_ns

    def merge(self, drained: tuple[list[int], Any, Any, Any]) -> None:
        counts, sum_, min_, max_ = drained
        if self.counts is None:
            self.counts, self.sum, self.min, self.max = counts, sum_, min_, max_
            return
        self.counts = [mine + theirs for mine, theirs in zip(self.counts, counts, strict=True)]
        self.sum += sum_
        self.min = min(self.min, min_)
        self.max = max(self.max, max_)

    def point(self, temporality: AggregationTemporality, now: int) -> HistogramDataPoint | None:
        counts, sum_, min_, max_ = self.counts, self.sum, self.min, self.max
        self.counts, self.sum, self.min, self.max = None, 0, _INF, -_INF
        series = self.series
        if temporality is AggregationTemporality.DELTA:
            start, self.previous_start = self.previous_start, now
            if counts is None:
                return None
            return _histogram_point(series, start, now, (counts, sum_, min_, max_))
        if counts is None:
            counts = [0] * (len(series.bounds) + 1)
        before = self.previous or ([0] * len(counts), 0, _INF, -_INF)
        total = [value + earlier for value, earlier in zip(counts, before[0], strict=True)]
        self.previous = (total, sum_ + before[1], min(min_, before[2]), max(max_, before[3]))
        return _histogram_point(series, series.start_ns, now, self.previous)


def _histogram_point(
    series: HistogramSeries, start: int, now: int, values: tuple[list[int], Any, Any, Any]
) -> HistogramDataPoint:
    counts, sum_, min_, max_ = values
    return HistogramDataPoint(
        attributes=series.attributes,
        start_time_unix_nano=start,
        time_unix_nano=now,
        count=sum(counts),
        sum=sum_,
        bucket_counts=tuple(counts),
        explicit_bounds=series.bounds,
        min=min_,
        max=max_,
        exemplars=[],
    )


class AggregatedMetric:
    """One instrument's definition and its series, in the order they were made (the SDK's order)."""

    def __init__(self, name: str, unit: str, description: str, bounds: Sequence[float] | None) -> None:
        self.name = name
        self.unit = unit
        self.description = description
        self.bounds = None if bounds is None else tuple(bounds)
        self.by_key: dict[Hashable, SumSeries | HistogramSeries] = {}

    def series(self, attributes: Mapping[str, Any] | None) -> Any:
        """The series of an attribute set (made on first use), cleaned and keyed the way the SDK does."""
        cleaned = _clean_attribute_value(dict(attributes or {}), None)
        key = series_key(cleaned)
        series = self.by_key.get(key)
        if series is None:
            if self.bounds is None:
                series = SumSeries(self.name, cleaned)
            else:
                series = HistogramSeries(self.name, cleaned, self.bounds)
            self.by_key[key] = series
        return series


class Aggregates:
    """The span metrics of one stage, kept as the SDK would keep them, exported per reader.

    The stage records under ``lock``, held for a whole batch; a reader's collection holds it for the
    time it takes to drain what the batches left.
    """

    def __init__(self, scope_name: str, scope_version: str) -> None:
        self.scope = InstrumentationScope(scope_name, scope_version, None, None)
        self.lock = threading.Lock()
        self._metrics: list[AggregatedMetric] = []
        self._readers: dict[int, dict[Any, _SumState | _HistogramState]] = {}

    # the two ``Meter`` methods the stage (and create_instruments) use, so it defines its metrics once
    def create_counter(self, name: str, unit: str = "", description: str = "") -> AggregatedMetric:
        return self._add(AggregatedMetric(name, unit, description, None))

    def create_histogram(
        self,
        name: str,
        unit: str = "",
        description: str = "",
        *,
        explicit_bucket_boundaries_advisory: Sequence[float],  # every span metrics histogram has them
    ) -> AggregatedMetric:
        return self._add(AggregatedMetric(name, unit, description, explicit_bucket_boundaries_advisory))

    def _add(self, metric: AggregatedMetric) -> AggregatedMetric:
        self._metrics.append(metric)
        return metric

    def add_reader(self, reader: object) -> None:
        """Start keeping state for a reader: it sees measurements from now on, as an SDK reader does."""
        with self.lock:
            self._drain()  # what came before goes to the readers there were
            self._readers.setdefault(id(reader), {})

    def collect(self, reader: object, temporality: Mapping[str, AggregationTemporality]) -> ScopeMetrics | None:
        """The points for ``reader`` now; ``temporality`` is its preference for ``sum`` and ``histogram``."""
        with self.lock:
            now = time.time_ns()  # under the lock: no series made after it (start times stay before it)
            self._drain()
            states = self._readers.get(id(reader))
            if states is None:
                return None
            metrics = [self._points(metric, states, temporality, now) for metric in self._metrics]
        found = [metric for metric in metrics if metric is not None]
        if not found:
            return None
        return ScopeMetrics(scope=self.scope, metrics=found, schema_url=self.scope.schema_url)

    def _drain(self) -> None:
        """Move what the series gathered since the last collection of any reader into every reader's state."""
        for metric in self._metrics:
            state_type = _SumState if metric.bounds is None else _HistogramState
            for series in metric.by_key.values():
                drained = series.drain()
                if drained is None:
                    continue
                for states in self._readers.values():
                    state = states.get(series)
                    if state is None:
                        state = states[series] = state_type(series)
                    state.merge(drained)

    @staticmethod
    def _points(
        metric: AggregatedMetric, states: dict[Any, Any], temporality: Mapping[str, AggregationTemporality], now: int
    ) -> Metric | None:
        chosen = temporality["sum" if metric.bounds is None else "histogram"]
        points = []
        for series in metric.by_key.values():
            state = states.get(series)
            if state is not None:
                point = state.point(chosen, now)
                if point is not None:
                    points.append(point)
        if not points:
            return None
        if metric.bounds is None:
            data: Any = Sum(data_points=points, aggregation_temporality=chosen, is_monotonic=True)
        else:
            data = Histogram(data_points=points, aggregation_temporality=chosen)
        return Metric(name=metric.name, description=metric.description, unit=metric.unit, data=data)
