"""The gateway's ``MeterProvider``: the SDK's, plus metrics that a producer aggregated itself.

The span metrics stage aggregates its measurements itself in the gateway
(:mod:`tokentrace.processor.stages.span_metrics_aggregate`): an SDK histogram record per measurement
cost more than the rest of the pipeline together. At each collection the stage's points join the SDK's
in what a reader exports. The metrics specification calls such a source a ``MetricProducer``; the
Python SDK (1.45) has none, so each reader's collect callback is wrapped instead: the SDK's collection,
then every producer's scope for that reader, in the temporality the reader prefers.

A producer has ``add_reader(reader)`` and ``collect(reader, temporality) -> ScopeMetrics | None``, with
``temporality`` the reader's preference for ``sum`` and ``histogram``.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, MetricsData, ResourceMetrics, ScopeMetrics
from opentelemetry.sdk.metrics.view import (
    Aggregation,
    DefaultAggregation,
    ExplicitBucketHistogramAggregation,
    SumAggregation,
)


class GatewayMeterProvider(MeterProvider):
    """A ``MeterProvider`` whose readers also export the scopes of registered metric producers."""

    def __init__(self, *, metric_readers: list[MetricReader], **options: Any) -> None:
        super().__init__(metric_readers=metric_readers, **options)
        self._producers: list[Any] = []
        self._readers = list(metric_readers)
        # The hook relies on SDK internals (1.45); an SDK without them gets no producers, and the span
        # metrics stage then records through instruments, slower but the same metrics.
        self._hookable = hasattr(self, "_measurement_consumer") and all(
            hasattr(reader, name) for reader in self._readers for name in _READER_INTERNALS
        )
        if self._hookable:
            for reader in self._readers:
                self._hook(reader)

    def add_metric_reader(self, metric_reader: MetricReader) -> None:
        super().add_metric_reader(metric_reader)
        if not self._hookable:
            return
        self._hook(metric_reader)
        self._readers.append(metric_reader)
        for producer in self._producers:
            producer.add_reader(metric_reader)

    def _hook(self, reader: MetricReader) -> None:
        # what MeterProvider does for each reader, with _collect in place of the SDK's own collection
        reader._set_collect_callback(self._collect)

    def register_metric_producer(self, producer: Any) -> bool:
        """Export ``producer``'s metrics from now on; False (and not registered) when a reader wants other
        aggregations than the SDK's defaults, which a producer's explicit-bucket histograms and sums would
        not match: the caller then records through instruments instead."""
        if not self._hookable:
            return False
        for reader in self._readers:
            if not _defaults(reader._instrument_class_aggregation):
                return False
        for reader in self._readers:
            producer.add_reader(reader)
        self._producers.append(producer)
        return True

    def _collect(self, reader: MetricReader, timeout_millis: float = 10_000) -> MetricsData | None:
        data = self._measurement_consumer.collect(reader, timeout_millis)
        temporality = reader._instrument_class_temporality
        chosen = {"sum": _preference(temporality, Counter), "histogram": _preference(temporality, Histogram)}
        scopes: list[ScopeMetrics] = [s for producer in self._producers if (s := producer.collect(reader, chosen))]
        if not scopes:
            return data
        if data is None:
            resource = self._sdk_config.resource
            return MetricsData(resource_metrics=[ResourceMetrics(resource, scopes, resource.schema_url)])
        data.resource_metrics[0].scope_metrics.extend(scopes)
        return data


_READER_INTERNALS = ("_set_collect_callback", "_instrument_class_temporality", "_instrument_class_aggregation")


def _defaults(aggregations: dict[type, Aggregation]) -> bool:
    """Whether a reader aggregates counters and histograms as the SDK does by default: sums, and explicit
    buckets on the instrument's advisory boundaries with min and max (what the OTLP exporter asks for
    unless ``OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION`` says otherwise)."""
    counter, histogram = _preference(aggregations, Counter), _preference(aggregations, Histogram)
    if not isinstance(counter, (DefaultAggregation, SumAggregation)):
        return False
    if isinstance(histogram, ExplicitBucketHistogramAggregation):
        return histogram._boundaries is None and histogram._record_min_max
    return isinstance(histogram, DefaultAggregation)


def _preference(preferences: dict[type, Any], kind: type) -> Any:
    """A reader's preference for an instrument kind: its maps are keyed by the SDK's concrete classes."""
    return next(value for cls, value in preferences.items() if issubclass(cls, kind))
