"""GenAI metrics from spans, recorded before the tail sampler so totals stay exact whatever it drops.

For each GenAI span (one with ``gen_ai.operation.name``) this records the conventions' token usage
(``gen_ai.client.token.usage`` by ``gen_ai.token.type``) and operation duration histograms, and
tokentrace's cost histogram. Spans produced by tokentrace's own instrumentation in this process
(instrumentation scope ``tokentrace*``) already recorded their metrics and are skipped, as is the
cost of foreign spans tokentrace enriched, unless ``record_all`` (the gateway, which sees spans from
other processes only).
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


@dataclass(frozen=True)
class Config:
    record_all: bool = False

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any] | None) -> Config:
        d = dict(d or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown span_metrics setting(s) {unknown}; known: {sorted(known)}")
        if "record_all" in d and not isinstance(d["record_all"], bool):
            raise ValueError(f"span_metrics.record_all must be true or false, got {d['record_all']!r}")
        return cls(**d)


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


def build(config: Config | Mapping[str, Any] | None = None, meter_provider: MeterProvider | None = None
          ) -> SpanMetricsStage:
    if config is None or isinstance(config, Mapping):
        config = Config.from_mapping(config)
    return SpanMetricsStage(config, meter_provider)
