"""Tail-sampling policies, shaped like the Collector's ``tailsamplingprocessor``.

A policy is a tiny evaluator with one ``evaluate(trace) -> Decision`` over every span buffered for
one trace. :func:`combine` applies the Collector's rule: any ``DROP`` wins, else any ``SAMPLE``
keeps, else the trace is dropped. The probabilistic policy follows OTEP 235 (W3C trace context
level 2): the trace id's 56 random bits are compared with a rejection threshold, so every process
with the same probability keeps the same traces without talking to the others.

Speed: the error and flagged policies look at every span of every trace, and by the time a trace is
decided its spans have left the CPU's caches. So :func:`span_marks` notes, as each span arrives, the
two facts they need (one pass over the batch, with the policies' own per-span tests), and
:func:`combine` given a trace's OR-ed marks answers for those two policies without reading the spans
again. A mark gives the answer
of ``evaluate`` for its span; when noting a span raises, the trace is marked unknown and its policies
evaluate span by span as before (where an exception makes the policy not sample).
Marks are taken when a span arrives: the sampler is the pipeline's last stage, so nothing changes a
span while it is held.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

from tokentrace.core import semconv
from tokentrace.processor.model import STATUS_ERROR, SpanData

Trace = Sequence[SpanData]

RANDOMNESS_BITS = 56
MAX_THRESHOLD = 1 << RANDOMNESS_BITS  # "never sample"
RANDOMNESS_MASK = MAX_THRESHOLD - 1
ALWAYS_TH = "0"  # OTEP 235 threshold of a span kept with certainty (adjusted count 1)

_ERROR_TYPE = semconv.ERROR_TYPE
_FLAGS = semconv.FLAGS
_PII_DETECTED = semconv.PII_DETECTED

# Span marks (see the module docstring): bits OR-ed over a trace's spans.
MARK_ERROR = 1  # ErrorPolicy's test holds for the span
MARK_FLAGGED = 2  # FlaggedPolicy's test holds for the span
MARK_UNKNOWN = 4  # a test raised: the trace's policies must evaluate its spans

# GenAI operations that wrap other calls rather than being a model call themselves.
WRAPPER_OPERATIONS = frozenset({"invoke_agent", "create_agent", "execute_tool", "invoke_workflow"})


class Decision(enum.Enum):
    SAMPLE = "sample"
    NOT_SAMPLED = "not_sampled"
    DROP = "drop"


class Policy(Protocol):
    name: str

    def evaluate(self, trace: Trace) -> Decision: ...


@dataclass(frozen=True, slots=True)
class Verdict:
    """The combined decision for one trace, cached so late spans follow it."""

    kept: bool
    reason: str | None = None
    threshold: str = ALWAYS_TH


DROPPED = Verdict(False)


# -- OTEP 235 ------------------------------------------------------------------------------------


def threshold_for(probability: float) -> int:
    """The rejection threshold for a sampling probability: ``round((1 - p) * 2**56)``."""
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"sampling probability must be within [0, 1], got {probability!r}")
    # Exact arithmetic on the float's value: a double has 53 bits, the threshold 56.
    return min(MAX_THRESHOLD, max(0, round((1 - Fraction(probability)) * MAX_THRESHOLD)))


def encode_threshold(threshold: int) -> str:
    """OTEP 235 ``th``: 14 hex digits with trailing zeros removed ("0" for always)."""
    if threshold <= 0:
        return ALWAYS_TH
    if threshold >= MAX_THRESHOLD:
        raise ValueError("a threshold of 2**56 means never sample and has no th encoding")
    return f"{threshold:014x}".rstrip("0")


def randomness_of(trace_id: int) -> int:
    """The trace id's randomness: its least significant 56 bits (W3C trace context level 2)."""
    return trace_id & RANDOMNESS_MASK


# -- policies ------------------------------------------------------------------------------------


class ErrorPolicy:
    """Keep traces with any span whose status is ERROR or that carries ``error.type``."""

    name = "error"

    def evaluate(self, trace: Trace) -> Decision:
        return Decision.SAMPLE if any(map(_errored, trace)) else Decision.NOT_SAMPLED


def _errored(span: SpanData) -> bool:
    """ErrorPolicy's test of one span (shared with :func:`span_marks`)."""
    return span.status_code == STATUS_ERROR or bool(span.attributes.get(_ERROR_TYPE))


class LatencyPolicy:
    """Keep traces where any span, or the trace as a whole, took longer than ``threshold_s``."""

    name = "latency"

    def __init__(self, threshold_s: float) -> None:
        self.threshold_ns = int(threshold_s * 1e9)

    def evaluate(self, trace: Trace) -> Decision:
        if not trace:
            return Decision.NOT_SAMPLED
        # The trace's extent is at least any one span's duration, so one comparison covers both.
        start = min(span.start_ns for span in trace)
        end = max(span.end_ns for span in trace)
        return Decision.SAMPLE if end - start > self.threshold_ns else Decision.NOT_SAMPLED


def trace_cost(trace: Trace) -> float | None:
    """Sum of ``gen_ai.usage.cost.amount`` over the trace; None when no span has a cost."""
    total = None
    for span in trace:
        value = span.attributes.get(semconv.USAGE_COST_AMOUNT)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            total = (total or 0.0) + value
    return total


class CostPolicy:
    """Keep traces whose summed cost reaches ``threshold_usd``."""

    name = "cost"

    def __init__(self, threshold_usd: float) -> None:
        self.threshold_usd = threshold_usd

    def evaluate(self, trace: Trace) -> Decision:
        total = trace_cost(trace)
        return Decision.SAMPLE if total is not None and total >= self.threshold_usd else Decision.NOT_SAMPLED


def _flagged(attributes: Mapping[str, object]) -> bool:
    """FlaggedPolicy's test of one span's attributes (shared with :func:`span_marks`). ``True in values()``
    is a C-level pre-check (most spans carry no true value at all) before the Python scan for a true
    ``tokentrace.flag.*`` key."""
    return bool(
        attributes.get(_FLAGS)
        or attributes.get(_PII_DETECTED) is True
        or (True in attributes.values() and _true_flag(attributes))
    )


def _true_flag(attributes: Mapping[str, object]) -> bool:
    return any(value is True and key.startswith(semconv.FLAG_PREFIX) for key, value in attributes.items())


class FlaggedPolicy:
    """Keep traces with a flagged span: ``tokentrace.flags``, a true ``tokentrace.flag.*``, or PII."""

    name = "flagged"

    def evaluate(self, trace: Trace) -> Decision:
        return Decision.SAMPLE if any(_flagged(span.attributes) for span in trace) else Decision.NOT_SAMPLED


def span_marks(spans: Iterable[SpanData]) -> list[int]:
    """One mark per span: ErrorPolicy's and FlaggedPolicy's per-span tests (a test that raises marks the
    span unknown, and the policies then evaluate its trace span by span, as ever)."""
    marks: list[int] = []
    append = marks.append
    for span in spans:
        try:
            mark = MARK_ERROR if _errored(span) else 0
            if _flagged(span.attributes):
                mark |= MARK_FLAGGED
        except Exception:
            mark = MARK_UNKNOWN
        append(mark)
    return marks


class _TokenBucket:
    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)  # one second of burst
        self.tokens = self.capacity
        self.updated = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class RateLimitPolicy:
    """At most N sampled traces per second per ``gen_ai.request.model`` (a token bucket each).

    ``limits`` maps model names to traces per second; ``"*"`` applies to models not listed. A trace
    over its model's limit, or with no limited model, is not sampled by this policy.
    """

    name = "rate_limit"

    def __init__(self, limits: Mapping[str, float], clock: Callable[[], float] = time.monotonic) -> None:
        for model, rate in limits.items():
            if not isinstance(rate, (int, float)) or isinstance(rate, bool) or rate < 0:
                raise ValueError(f"per_model_limits[{model!r}] must be a non-negative number, got {rate!r}")
        self.limits = dict(limits)
        self.clock = clock
        self._buckets: dict[str, _TokenBucket] = {}
        self._lock = threading.Lock()

    def _models(self, trace: Trace) -> list[str]:
        seen: list[str] = []
        for span in trace:
            model = span.attributes.get(semconv.REQUEST_MODEL)
            if isinstance(model, str) and model not in seen:
                seen.append(model)
        return seen

    def evaluate(self, trace: Trace) -> Decision:
        models = self._models(trace)
        if not models:
            return Decision.NOT_SAMPLED
        now = self.clock()
        with self._lock:
            for model in models:
                key = model if model in self.limits else "*"
                rate = self.limits.get(key)
                if rate is None:
                    continue
                bucket = self._buckets.get(model)
                if bucket is None:
                    bucket = self._buckets[model] = _TokenBucket(rate, now)
                if bucket.take(now):
                    return Decision.SAMPLE
        return Decision.NOT_SAMPLED


class ProbabilisticPolicy:
    """OTEP 235 consistent probability sampling on the trace id's randomness."""

    name = "probabilistic"

    def __init__(self, probability: float) -> None:
        self.probability = probability
        self.threshold = threshold_for(probability)
        self.th = encode_threshold(self.threshold) if self.threshold < MAX_THRESHOLD else None

    def sampled(self, trace_id: int) -> bool:
        return trace_id & RANDOMNESS_MASK >= self.threshold  # randomness_of(trace_id), inlined

    def evaluate(self, trace: Trace) -> Decision:
        if not trace:
            return Decision.NOT_SAMPLED
        return Decision.SAMPLE if self.sampled(trace[0].trace_id) else Decision.NOT_SAMPLED


def combine(policies: Sequence[Policy], trace: Trace, marks: int | None = None) -> Verdict:
    """Any DROP wins; else the first policy that samples keeps the trace (and names the reason).

    A policy that raises counts as not sampled. The OTEP 235 threshold is the probabilistic one
    when that policy is the reason, else "0": kept with certainty, adjusted count 1. ``marks``: the
    OR of :func:`span_marks` over every span of ``trace``, which then decides the error and flagged
    policies. Once a reason is found, the built-in policies that can neither drop nor change state
    are not evaluated: their answer could not change the verdict (a rate limit still is: it takes a
    token).
    """
    known = _MARKS if marks is not None and not marks & MARK_UNKNOWN else _NO_MARKS
    bits = marks or 0
    reason: Policy | None = None
    for policy in policies:
        kind = type(policy)
        if reason is not None and kind in _PURE:
            continue
        mark = known.get(kind)
        if mark is not None:
            decision = Decision.SAMPLE if bits & mark else Decision.NOT_SAMPLED
        else:
            try:
                decision = policy.evaluate(trace)
            except Exception:
                continue
        if decision is Decision.DROP:
            return DROPPED
        if decision is Decision.SAMPLE and reason is None:
            reason = policy
    if reason is None:
        return DROPPED
    th = reason.th if isinstance(reason, ProbabilisticPolicy) and reason.th is not None else ALWAYS_TH
    return Verdict(True, reason.name, th)


# Built-in policies (exact types: a subclass may override evaluate) that never DROP and keep no state,
# and those whose decision a trace's marks give.
_PURE: frozenset[type] = frozenset({ErrorPolicy, FlaggedPolicy, LatencyPolicy, CostPolicy, ProbabilisticPolicy})
_MARKS: dict[type, int] = {ErrorPolicy: MARK_ERROR, FlaggedPolicy: MARK_FLAGGED}
_NO_MARKS: dict[type, int] = {}
MARKED_POLICIES = frozenset(_MARKS)
