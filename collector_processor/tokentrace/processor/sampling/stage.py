"""The tail-sampling stage: buffer each trace, roll up its GenAI usage, apply the policies.

Before a trace is decided its local root span gets the trace's totals (cost, tokens, model calls)
so a kept trace carries them on one span. Kept spans get the reason and the OTEP 235 threshold
(``tokentrace.sampling.threshold``) so backends can compute adjusted counts. Self-metrics:
``tokentrace.sampling.traces{decision=kept|dropped}``, ``tokentrace.sampling.overflow`` and
``tokentrace.sampling.late_spans``.

Cost per span (most traces are dropped): each batch is marked in one pass while its spans are still in
the CPU's caches (:func:`~tokentrace.processor.sampling.policies.span_marks`), so deciding a dropped
trace later reads none of its spans; the roll-up (one pass) and the kept-span attributes are computed for
kept traces only; the self-metrics are counted per batch from what the buffer released.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.metrics import MeterProvider, get_meter

from tokentrace.core import semconv
from tokentrace.processor.model import SpanData
from tokentrace.processor.sampling.buffer import CAUSE_OVERFLOW, HeldSpans, Released, TraceBuffer
from tokentrace.processor.sampling.policies import (
    DROPPED,
    MARKED_POLICIES,
    WRAPPER_OPERATIONS,
    CostPolicy,
    ErrorPolicy,
    FlaggedPolicy,
    LatencyPolicy,
    Policy,
    ProbabilisticPolicy,
    RateLimitPolicy,
    Verdict,
    combine,
    span_marks,
    threshold_for,
)
from tokentrace.version import __version__

logger = logging.getLogger(__name__)

ROOT_GRACE_S = 0.1

_OPERATION_NAME = semconv.OPERATION_NAME
_USAGE_COST_AMOUNT = semconv.USAGE_COST_AMOUNT
_USAGE_INPUT_TOKENS = semconv.USAGE_INPUT_TOKENS
_USAGE_OUTPUT_TOKENS = semconv.USAGE_OUTPUT_TOKENS
_SAMPLING_REASON = semconv.SAMPLING_REASON
_SAMPLING_THRESHOLD = semconv.SAMPLING_THRESHOLD


def _number(name: str, value: Any, *, minimum: float | None = None, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"sampling.{name} must be a number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"sampling.{name} must be >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class SamplingConfig:
    enabled: bool = True
    keep_errors: bool = True
    latency_threshold_s: float | None = None
    cost_threshold_usd: float | None = None
    keep_flagged: bool = True
    probability: float = 1.0
    per_model_limits: dict[str, float] = field(default_factory=dict)
    decision_wait_s: float = 5.0
    max_traces: int = 10_000
    max_spans_per_trace: int = 1_000
    decision_cache_size: int = 100_000

    def __post_init__(self) -> None:
        _number("latency_threshold_s", self.latency_threshold_s, minimum=0, optional=True)
        _number("cost_threshold_usd", self.cost_threshold_usd, minimum=0, optional=True)
        _number("probability", self.probability, minimum=0)
        threshold_for(self.probability)  # validates <= 1
        _number("decision_wait_s", self.decision_wait_s, minimum=0)
        for name in ("max_traces", "max_spans_per_trace"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"sampling.{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.decision_cache_size, int) or self.decision_cache_size < 0:
            raise ValueError(f"sampling.decision_cache_size must be an integer >= 0, got {self.decision_cache_size!r}")
        if not isinstance(self.per_model_limits, Mapping):
            raise ValueError(f"sampling.per_model_limits must be a mapping, got {self.per_model_limits!r}")
        for model, rate in self.per_model_limits.items():
            _number(f"per_model_limits[{model!r}]", rate, minimum=0)

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any] | None) -> SamplingConfig:
        d = dict(d or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown sampling setting(s) {unknown}; known: {sorted(known)}")
        if "per_model_limits" in d and isinstance(d["per_model_limits"], Mapping):
            d["per_model_limits"] = dict(d["per_model_limits"])
        return cls(**d)

    def policies(self, clock: Callable[[], float] | None = None) -> list[Policy]:
        """In reason order: the specific reasons first, the probabilistic baseline, then rate limits."""
        policies: list[Policy] = []
        if self.keep_errors:
            policies.append(ErrorPolicy())
        if self.keep_flagged:
            policies.append(FlaggedPolicy())
        if self.latency_threshold_s is not None:
            policies.append(LatencyPolicy(self.latency_threshold_s))
        if self.cost_threshold_usd is not None:
            policies.append(CostPolicy(self.cost_threshold_usd))
        if self.probability > 0:
            policies.append(ProbabilisticPolicy(self.probability))
        if self.per_model_limits:
            policies.append(
                RateLimitPolicy(self.per_model_limits, clock) if clock else RateLimitPolicy(self.per_model_limits)
            )
        return policies


Config = SamplingConfig


def roll_up(spans: list[SpanData]) -> None:
    """Set the trace's GenAI totals on its local root span (the earliest one, if several).

    One pass over the spans finds the root and sums the model calls (every span that names a GenAI
    operation other than a wrapper's): only kept traces get here, so dropped ones pay nothing.
    """
    root: SpanData | None = None
    root_key: tuple[bool, int] | None = None
    calls = 0
    cost: float | None = None
    input_tokens = output_tokens = 0
    for span in spans:
        parent = span.parent_span_id
        if parent is None or span.is_remote_parent:  # SpanData.is_local_root, inlined
            key = (parent is not None, span.start_ns)
            if root_key is None or key < root_key:  # the first of equal keys, as min() picks
                root, root_key = span, key
        attributes = span.attributes
        operation = attributes.get(_OPERATION_NAME)
        if not isinstance(operation, str) or operation in WRAPPER_OPERATIONS:
            continue
        calls += 1
        amount = attributes.get(_USAGE_COST_AMOUNT)
        if isinstance(amount, (int, float)) and not isinstance(amount, bool):
            cost = (cost or 0.0) + amount
        input_tokens += _int(attributes.get(_USAGE_INPUT_TOKENS)) or 0
        output_tokens += _int(attributes.get(_USAGE_OUTPUT_TOKENS)) or 0
    if root is None or not calls:
        return
    root.set(semconv.TRACE_LLM_CALLS, calls)
    root.set(semconv.TRACE_USAGE_INPUT_TOKENS, input_tokens)
    root.set(semconv.TRACE_USAGE_OUTPUT_TOKENS, output_tokens)
    if cost is not None:
        root.set(semconv.TRACE_COST_AMOUNT, cost)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class TailSamplingStage:
    name = "sample"

    def __init__(
        self,
        config: SamplingConfig | None = None,
        meter_provider: MeterProvider | None = None,
        *,
        policies: list[Policy] | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.config = config or SamplingConfig()
        self.policies = policies if policies is not None else self.config.policies()
        # Whether spans are marked as they arrive (policies.span_marks): fixed here, so that every held
        # trace's marks are complete whenever they are used, even if self.policies is changed later.
        self._marking = any(type(policy) in MARKED_POLICIES for policy in self.policies)
        buffer_options: dict[str, Any] = {"clock": clock} if clock is not None else {}
        self.buffer: TraceBuffer[Verdict] = TraceBuffer(
            self._decide,
            decision_wait_s=self.config.decision_wait_s,
            root_grace_s=ROOT_GRACE_S,
            max_traces=self.config.max_traces,
            max_spans_per_trace=self.config.max_spans_per_trace,
            decision_cache_size=self.config.decision_cache_size,
            **buffer_options,
        )
        meter = get_meter("tokentrace.processor.sampling", __version__, meter_provider)
        self._traces = meter.create_counter(
            semconv.METRIC_SAMPLING_TRACES, unit="{trace}", description="Traces decided by the tail sampler."
        )
        self._overflow = meter.create_counter(
            semconv.METRIC_SAMPLING_OVERFLOW,
            unit="{trace}",
            description="Traces decided early because the sampling buffer was full.",
        )
        self._kept_attributes = {semconv.SAMPLING_DECISION: "kept"}
        self._dropped_attributes = {semconv.SAMPLING_DECISION: "dropped"}
        self._late = meter.create_counter(
            semconv.METRIC_SAMPLING_LATE_SPANS,
            unit="{span}",
            description="Spans that arrived after their trace was decided.",
        )

    # Called by the buffer, under its lock, once per trace. The self-metrics are counted in _emit from
    # what the buffer released (every decided trace is released exactly once), and the SDK counters are
    # fed once per batch there (a counter add costs microseconds of attribute hashing).
    def _decide(self, spans: HeldSpans, cause: str) -> Verdict:
        try:
            verdict = combine(self.policies, spans, spans.marks if self._marking else None)
        except Exception:
            logger.debug("tokentrace: sampling decision failed", exc_info=True)
            verdict = DROPPED
        if verdict.kept:  # roll-ups only where they will be seen
            try:
                roll_up(spans)
            except Exception:
                logger.debug("tokentrace: trace roll-up failed", exc_info=True)
        return verdict

    def _emit(self, released: list[Released[Verdict]]) -> list[SpanData]:
        out: list[SpanData] = []
        kept = dropped = overflow = late = 0
        for group in released:
            verdict = group.verdict
            if group.late:
                late += len(group.spans)
            else:
                if verdict.kept:
                    kept += 1
                else:
                    dropped += 1
                if group.cause == CAUSE_OVERFLOW:
                    overflow += 1
            if not verdict.kept:
                continue
            reason, threshold = verdict.reason, verdict.threshold
            for span in group.spans:  # span.set() twice, inlined
                attributes = span.attributes
                attributes[_SAMPLING_REASON] = reason
                attributes[_SAMPLING_THRESHOLD] = threshold
                span.changed = True
            out.extend(group.spans)
        self._count(kept, dropped, overflow, late)
        return out

    def _count(self, kept: int, dropped: int, overflow: int, late: int) -> None:
        try:
            if kept:
                self._traces.add(kept, self._kept_attributes)
            if dropped:
                self._traces.add(dropped, self._dropped_attributes)
            if overflow:
                self._overflow.add(overflow)
            if late:
                self._late.add(late)
        except Exception:
            logger.debug("tokentrace: sampling self-metrics failed", exc_info=True)

    def process(self, batch: list[SpanData]) -> list[SpanData]:
        if not self.config.enabled:
            return batch
        marks = span_marks(batch) if self._marking else None
        return self._emit(self.buffer.add(batch, marks=marks))

    def poll(self, now_ns: int) -> list[SpanData]:
        if not self.config.enabled:
            return []
        return self._emit(self.buffer.poll(now_ns))

    def shutdown(self) -> list[SpanData]:
        return self._emit(self.buffer.drain())

    @property
    def holds_spans(self) -> bool:
        return self.config.enabled

    def oldest_held_ns(self) -> int | None:
        """See :meth:`tokentrace.processor.pipeline.Pipeline.oldest_held_ns`."""
        return self.buffer.oldest_arrival_ns()


def build(
    config: SamplingConfig | Mapping[str, Any] | None = None, meter_provider: MeterProvider | None = None
) -> TailSamplingStage:
    if config is None or isinstance(config, Mapping):
        config = SamplingConfig.from_mapping(config)
    return TailSamplingStage(config, meter_provider)
