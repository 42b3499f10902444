"""The tail sampler's fast paths decide, roll up, release and count exactly as the plain code did.

``Reference`` below is the sampler as it was before its speed-ups (every policy evaluates every span of a
trace when it is decided, the roll-up scans the spans with ``is_local_root``, counts per trace), kept here as
the oracle, with one fix: late spans whose trace's decision later decisions of the same batch pushed out of
the cache used to raise KeyError; they now follow the decision they found. Hypothesis drives both with the
same batches, polls and clock steps (backwards too) and compares what each released (the same spans, in the
same order, with the same attributes, value types included), what each still holds, its ``oldest_arrival_ns``,
its self-metrics and the calls its stateful policies saw. The fast paths this would catch going wrong: span
marks taken on arrival (``policies.span_marks``) deciding the error and flagged policies, pure policies
skipped once a reason is found, the one-pass roll-up, the buffer's inlined loop and O(1)
``oldest_arrival_ns``, and counting from the released groups.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from tokentrace.core import semconv
from tokentrace.processor.model import STATUS_ERROR, STATUS_OK, STATUS_UNSET, SpanData
from tokentrace.processor.sampling import (
    Decision,
    ErrorPolicy,
    FlaggedPolicy,
    ProbabilisticPolicy,
    SamplingConfig,
    TailSamplingStage,
    TraceBuffer,
    combine,
)
from tokentrace.processor.sampling.policies import (
    ALWAYS_TH,
    MARK_ERROR,
    MARK_FLAGGED,
    MARK_UNKNOWN,
    WRAPPER_OPERATIONS,
    span_marks,
)
from tokentrace.processor.sampling.stage import ROOT_GRACE_S

SECOND = 1_000_000_000

# -- the reference: the sampler before its speed-ups ----------------------------------------------


def ref_is_flagged(span: SpanData) -> bool:
    attributes = span.attributes
    if attributes.get(semconv.FLAGS) or attributes.get(semconv.PII_DETECTED) is True:
        return True
    if True not in attributes.values():
        return False
    return any(value is True and key.startswith(semconv.FLAG_PREFIX) for key, value in attributes.items())


def ref_evaluate(policy: Any, trace: list[SpanData]) -> Decision:
    """The built-in policies as they were written; anything else evaluates itself."""
    kind = type(policy).__name__
    if kind == "ErrorPolicy":
        for span in trace:
            if span.status_code == STATUS_ERROR or span.attributes.get(semconv.ERROR_TYPE):
                return Decision.SAMPLE
        return Decision.NOT_SAMPLED
    if kind == "FlaggedPolicy":
        return Decision.SAMPLE if any(ref_is_flagged(span) for span in trace) else Decision.NOT_SAMPLED
    if kind == "ProbabilisticPolicy":
        if not trace:
            return Decision.NOT_SAMPLED
        return Decision.SAMPLE if (trace[0].trace_id & ((1 << 56) - 1)) >= policy.threshold else Decision.NOT_SAMPLED
    return policy.evaluate(trace)  # latency, cost and rate limit are unchanged; custom policies


def ref_combine(policies: Sequence[Any], trace: list[SpanData]) -> tuple[bool, str | None, str]:
    reason = None
    for policy in policies:
        try:
            decision = ref_evaluate(policy, trace)
        except Exception:
            continue
        if decision is Decision.DROP:
            return (False, None, ALWAYS_TH)
        if decision is Decision.SAMPLE and reason is None:
            reason = policy
    if reason is None:
        return (False, None, ALWAYS_TH)
    th = reason.th if isinstance(reason, ProbabilisticPolicy) and reason.th is not None else ALWAYS_TH
    return (True, reason.name, th)


def ref_roll_up(spans: list[SpanData]) -> None:
    roots = [span for span in spans if span.is_local_root]
    if not roots:
        return
    root = min(roots, key=lambda span: (span.parent_span_id is not None, span.start_ns))
    calls = 0
    cost = None
    input_tokens = output_tokens = 0

    def as_int(value: Any) -> int | None:
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    for span in spans:
        operation = span.attributes.get(semconv.OPERATION_NAME)
        if not (isinstance(operation, str) and operation not in WRAPPER_OPERATIONS):
            continue
        calls += 1
        amount = span.attributes.get(semconv.USAGE_COST_AMOUNT)
        if isinstance(amount, (int, float)) and not isinstance(amount, bool):
            cost = (cost or 0.0) + amount
        input_tokens += as_int(span.attributes.get(semconv.USAGE_INPUT_TOKENS)) or 0
        output_tokens += as_int(span.attributes.get(semconv.USAGE_OUTPUT_TOKENS)) or 0
    if not calls:
        return
    root.set(semconv.TRACE_LLM_CALLS, calls)
    root.set(semconv.TRACE_USAGE_INPUT_TOKENS, input_tokens)
    root.set(semconv.TRACE_USAGE_OUTPUT_TOKENS, output_tokens)
    if cost is not None:
        root.set(semconv.TRACE_COST_AMOUNT, cost)


@dataclass
class _RefPending:
    first_ns: int
    spans: list[SpanData] = field(default_factory=list)
    root_seen: bool = False


class Reference:
    """The original TraceBuffer + TailSamplingStage, in one class."""

    def __init__(self, config: SamplingConfig, policies: list[Any]) -> None:
        self.policies = policies
        self.wait_ns = int(config.decision_wait_s * 1e9)
        self.grace_ns = min(int(ROOT_GRACE_S * 1e9), self.wait_ns)
        self.config = config
        self.pending: OrderedDict[int, _RefPending] = OrderedDict()
        self.root_due: list[tuple[int, int]] = []
        self.decided: OrderedDict[int, tuple[bool, str | None, str]] = OrderedDict()
        self.counts = {"kept": 0, "dropped": 0, "overflow": 0, "late": 0}

    def _decide(self, trace_id: int, cause: str) -> tuple[tuple[bool, str | None, str], list[SpanData]]:
        pending = self.pending.pop(trace_id)
        verdict = ref_combine(self.policies, pending.spans)
        if verdict[0]:
            try:
                ref_roll_up(pending.spans)
            except Exception:
                pass
        self.counts["kept" if verdict[0] else "dropped"] += 1
        if cause == "overflow":
            self.counts["overflow"] += 1
        if self.config.decision_cache_size:
            self.decided[trace_id] = verdict
            self.decided.move_to_end(trace_id)
            while len(self.decided) > self.config.decision_cache_size:
                self.decided.popitem(last=False)
        return verdict, pending.spans

    def _due(self, now: int) -> list[tuple[Any, list[SpanData]]]:
        out = []
        while self.root_due and self.root_due[0][0] <= now:
            _, trace_id = heapq.heappop(self.root_due)
            if trace_id in self.pending:
                out.append(self._decide(trace_id, "root"))
        deadline = now - self.wait_ns
        while self.pending:
            trace_id, pending = next(iter(self.pending.items()))
            if pending.first_ns > deadline:
                break
            out.append(self._decide(trace_id, "wait"))
        return out

    def process(self, spans: list[SpanData], now: int) -> list[SpanData]:
        out: list[tuple[Any, list[SpanData]]] = []
        late: dict[int, list[SpanData]] = {}
        late_verdicts: dict[int, Any] = {}  # the one fix: was self.decided[trace_id], a KeyError when evicted
        for span in spans:
            trace_id = span.trace_id
            pending = self.pending.get(trace_id)
            if pending is None:
                if trace_id in self.decided:
                    self.decided.move_to_end(trace_id)
                    late_verdicts.setdefault(trace_id, self.decided[trace_id])
                    late.setdefault(trace_id, []).append(span)
                    continue
                while len(self.pending) >= self.config.max_traces:
                    out.append(self._decide(next(iter(self.pending)), "overflow"))
                pending = self.pending[trace_id] = _RefPending(now)
            pending.spans.append(span)
            if span.is_local_root and not pending.root_seen:
                pending.root_seen = True
                heapq.heappush(self.root_due, (now + self.grace_ns, trace_id))
            if len(pending.spans) >= self.config.max_spans_per_trace:
                out.append(self._decide(trace_id, "span_limit"))
        for trace_id, late_spans in late.items():
            self.counts["late"] += len(late_spans)
            out.append((self.decided.get(trace_id, late_verdicts[trace_id]), late_spans))
        out.extend(self._due(now))
        return self._emit(out)

    def poll(self, now: int) -> list[SpanData]:
        return self._emit(self._due(now))

    def shutdown(self) -> list[SpanData]:
        out = [self._decide(trace_id, "shutdown") for trace_id in list(self.pending)]
        self.root_due.clear()
        return self._emit(out)

    def _emit(self, groups: list[tuple[Any, list[SpanData]]]) -> list[SpanData]:
        out = []
        for (kept, reason, th), spans in groups:
            if kept:
                for span in spans:
                    span.set(semconv.SAMPLING_REASON, reason)
                    span.set(semconv.SAMPLING_THRESHOLD, th)
                out.extend(spans)
        return out

    def oldest_arrival_ns(self) -> int | None:
        return min((pending.first_ns for pending in self.pending.values()), default=None)


# -- generated inputs -----------------------------------------------------------------------------


class Calls:
    """A policy that is not built in: it may DROP, keeps state (the traces it saw), and must be asked
    about every trace exactly as before."""

    name = "custom"

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    def evaluate(self, trace: Sequence[SpanData]) -> Decision:
        self.seen.append((trace[0].trace_id, len(trace)))
        if trace[0].trace_id % 7 == 0:
            raise RuntimeError("custom policies may raise")
        return (Decision.DROP, Decision.SAMPLE, Decision.NOT_SAMPLED)[trace[0].trace_id % 3]


class FakeSeconds:
    """The rate limit's clock: a fixed sequence of readings, the same for both samplers."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return 100.0 + self.calls * 0.3


ODD_VALUES = st.sampled_from([True, False, 1, 1.0, 0, 0.0, -0.0, "", "x", "true", None, (), ("a",), [], ["b"], 2.5])
KEYS = st.sampled_from(
    [
        semconv.ERROR_TYPE,
        semconv.FLAGS,
        semconv.PII_DETECTED,
        semconv.FLAG_PREFIX + "jailbreak",
        semconv.FLAG_PREFIX + "pii",
        "tokentrace.flagged",  # not the flag prefix
        "x.tokentrace.flag.y",  # contains it without starting with it
        semconv.OPERATION_NAME,
        semconv.USAGE_COST_AMOUNT,
        semconv.USAGE_INPUT_TOKENS,
        semconv.USAGE_OUTPUT_TOKENS,
        semconv.REQUEST_MODEL,
        "app.attribute",
    ]
)
OPERATIONS = st.sampled_from(["chat", "embeddings", "invoke_agent", "execute_tool", 5, None, ""])
NUMBERS = st.one_of(
    st.integers(-5, 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.sampled_from(["3", None, 1.0, -0.0]),
)


@st.composite
def span_specs(draw: Any, trace_ids: list[int]) -> dict[str, Any]:
    attributes: dict[Any, Any] = {}
    if draw(st.booleans()):
        attributes[semconv.OPERATION_NAME] = draw(OPERATIONS)
        attributes[semconv.USAGE_COST_AMOUNT] = draw(NUMBERS)
        attributes[semconv.USAGE_INPUT_TOKENS] = draw(NUMBERS)
        attributes[semconv.USAGE_OUTPUT_TOKENS] = draw(NUMBERS)
        attributes[semconv.REQUEST_MODEL] = draw(st.sampled_from(["gpt-4o", "o3", 7, None]))
    for _ in range(draw(st.integers(0, 3))):
        attributes[draw(KEYS)] = draw(st.one_of(ODD_VALUES, NUMBERS))
    if draw(st.integers(0, 30)) == 0:
        attributes[7] = draw(st.sampled_from([True, False]))  # a non-str key: the flagged test raises on True
    start = draw(st.integers(0, 5 * SECOND))
    return {
        "trace_id": draw(st.sampled_from(trace_ids)),
        "parent": draw(st.sampled_from([None, None, 11, 12])),
        "remote": draw(st.booleans()),
        "start": start,
        "end": start + draw(st.integers(0, 3 * SECOND)),
        "status": draw(st.sampled_from([STATUS_UNSET, STATUS_UNSET, STATUS_OK, STATUS_ERROR])),
        "attributes": attributes,
    }


def build_span(spec: dict[str, Any], span_id: int) -> SpanData:
    return SpanData(
        trace_id=spec["trace_id"],
        span_id=span_id,
        parent_span_id=spec["parent"],
        name="s",
        kind=0,
        start_ns=spec["start"],
        end_ns=spec["end"],
        attributes=dict(spec["attributes"]),
        status_code=spec["status"],
        is_remote_parent=spec["remote"],
    )


@st.composite
def scenarios(draw: Any) -> dict[str, Any]:
    low = st.integers(0, (1 << 56) - 1)
    trace_ids = draw(
        st.lists(
            st.builds(lambda high, low: (high << 56) | low or 1, st.integers(0, 255), low),
            min_size=1,
            max_size=8,
            unique=True,
        )
    )
    config = SamplingConfig(
        keep_errors=draw(st.booleans()),
        keep_flagged=draw(st.booleans()),
        latency_threshold_s=draw(st.sampled_from([None, 0.5, 2.0])),
        cost_threshold_usd=draw(st.sampled_from([None, 0.0, 1.0])),
        probability=draw(st.sampled_from([0.0, 0.1, 0.5, 1.0])),
        per_model_limits=draw(st.sampled_from([{}, {"gpt-4o": 1.0}, {"*": 2.0, "o3": 0.5}])),
        decision_wait_s=draw(st.sampled_from([0.0, 0.05, 1.0, 5.0])),
        max_traces=draw(st.integers(1, 6)),
        max_spans_per_trace=draw(st.integers(1, 8)),
        decision_cache_size=draw(st.integers(0, 5)),
    )
    steps = []
    for _ in range(draw(st.integers(1, 8))):
        step = draw(st.sampled_from(["process", "process", "poll"]))
        clock_step = draw(st.sampled_from([0, 1, 30 * 10**6, 60 * 10**6, 120 * 10**6, SECOND, -50 * 10**6]))
        batch = draw(st.lists(span_specs(trace_ids), max_size=12)) if step == "process" else []
        steps.append((step, clock_step, batch))
    return {"config": config, "custom": draw(st.booleans()), "steps": steps}


def view(spans: list[SpanData]) -> list[tuple[Any, ...]]:
    """What left, comparable across the two samplers: ids, attributes with their types (repr: 1 is not
    True, -0.0 is not 0.0, nan equals nan), and the changed flag."""
    return [
        (span.trace_id, span.span_id, span.changed, sorted((repr(k), repr(v)) for k, v in span.attributes.items()))
        for span in spans
    ]


def metric_totals(reader: InMemoryMetricReader) -> dict[str, int]:
    totals = {"kept": 0, "dropped": 0, "overflow": 0, "late": 0}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    if metric.name == semconv.METRIC_SAMPLING_TRACES:
                        totals[point.attributes[semconv.SAMPLING_DECISION]] += point.value
                    elif metric.name == semconv.METRIC_SAMPLING_OVERFLOW:
                        totals["overflow"] += point.value
                    elif metric.name == semconv.METRIC_SAMPLING_LATE_SPANS:
                        totals["late"] += point.value
    return totals


def run_both(scenario: dict[str, Any]) -> None:
    config: SamplingConfig = scenario["config"]
    customs = (Calls(), Calls()) if scenario["custom"] else None
    rate_clocks = (FakeSeconds(), FakeSeconds())

    def policies(side: int) -> list[Any]:
        chosen = config.policies(rate_clocks[side])
        if customs:
            chosen.insert(1, customs[side])
        return chosen

    now = [1_000 * SECOND]
    clock: Callable[[], int] = lambda: now[0]  # noqa: E731
    reader = InMemoryMetricReader()
    fast = TailSamplingStage(config, MeterProvider(metric_readers=[reader]), policies=policies(0), clock=clock)
    reference = Reference(config, policies(1))
    span_id = 0
    for step, clock_step, batch in scenario["steps"]:
        now[0] += clock_step
        if step == "poll":
            assert view(fast.poll(now[0])) == view(reference.poll(now[0]))
        else:
            fast_batch, reference_batch = [], []
            for spec in batch:
                span_id += 1
                fast_batch.append(build_span(spec, span_id))
                reference_batch.append(build_span(spec, span_id))
            assert view(fast.process(fast_batch)) == view(reference.process(reference_batch, now[0]))
        assert fast.oldest_held_ns() == reference.oldest_arrival_ns()
        assert len(fast.buffer) == len(reference.pending)
        assert fast.buffer.span_count == sum(len(p.spans) for p in reference.pending.values())
    assert view(fast.shutdown()) == view(reference.shutdown())
    assert metric_totals(reader) == reference.counts
    assert rate_clocks[0].calls == rate_clocks[1].calls
    if customs:
        assert customs[0].seen == customs[1].seen


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_the_sampler_matches_the_reference(scenario: dict[str, Any]) -> None:
    run_both(scenario)


# -- the pieces, directly --------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(span_specs([1, 2]), min_size=0, max_size=6))
def test_marks_decide_like_the_policies(specs: list[dict[str, Any]]) -> None:
    """span_marks gives ErrorPolicy's and FlaggedPolicy's answer per span, or UNKNOWN where one raises;
    combine with the OR of the marks gives what it gives evaluating the spans."""
    spans = [build_span(spec, index + 1) for index, spec in enumerate(specs)]
    marks = span_marks(spans)
    assert len(marks) == len(spans)
    for span, mark in zip(spans, marks, strict=True):
        try:
            error = ref_evaluate(ErrorPolicy(), [span]) is Decision.SAMPLE
            flagged = ref_evaluate(FlaggedPolicy(), [span]) is Decision.SAMPLE
        except Exception:
            assert mark == MARK_UNKNOWN
        else:
            assert mark == (MARK_ERROR if error else 0) | (MARK_FLAGGED if flagged else 0)
    merged = 0
    for mark in marks:
        merged |= mark
    for chosen in ([ErrorPolicy(), FlaggedPolicy()], [FlaggedPolicy(), ErrorPolicy(), ProbabilisticPolicy(0.5)]):
        expected = ref_combine(chosen, spans)
        for given_marks in (merged, None):
            verdict = combine(chosen, spans, given_marks)
            assert (verdict.kept, verdict.reason if verdict.kept else None, verdict.threshold) == expected


def test_a_raising_flag_test_makes_the_trace_evaluate_its_spans() -> None:
    """A non-str key with a true value makes FlaggedPolicy raise on that span (not sampled, as before),
    even when a later span is flagged; the marks say UNKNOWN and combine evaluates the spans."""
    odd = SpanData(1, 1, None, "s", 0, 0, 1, {7: True})
    flagged = SpanData(1, 2, 1, "s", 0, 0, 1, {semconv.FLAG_PREFIX + "x": True})
    marks = span_marks([odd, flagged])
    assert marks == [MARK_UNKNOWN, MARK_FLAGGED]
    assert not combine([FlaggedPolicy()], [odd, flagged], marks[0] | marks[1]).kept
    assert combine([FlaggedPolicy()], [flagged, odd], marks[0] | marks[1]).kept


def test_rate_limit_is_asked_even_after_a_reason_is_found() -> None:
    class Counting:
        name = "counting"
        calls = 0

        def evaluate(self, trace: Any) -> Decision:
            Counting.calls += 1
            return Decision.NOT_SAMPLED

    error_span = SpanData(1, 1, None, "s", 0, 0, 1, {}, status_code=STATUS_ERROR)
    verdict = combine([ErrorPolicy(), Counting(), FlaggedPolicy()], [error_span], MARK_ERROR)
    assert verdict.reason == "error" and Counting.calls == 1


def test_oldest_arrival_when_the_clock_steps_back() -> None:
    buffer: TraceBuffer[bool] = TraceBuffer(lambda spans, cause: False, decision_wait_s=60, root_grace_s=60)
    buffer.add([SpanData(1, 1, 5, "s", 0, 0, 1, {})], now_ns=10 * SECOND)
    buffer.add([SpanData(2, 2, 5, "s", 0, 0, 1, {})], now_ns=9 * SECOND)  # the clock stepped back
    assert buffer.oldest_arrival_ns() == 9 * SECOND  # not the first held trace's
    buffer.add([SpanData(3, 3, 5, "s", 0, 0, 1, {})], now_ns=11 * SECOND)
    assert buffer.oldest_arrival_ns() == 9 * SECOND
    buffer.drain()
    assert buffer.oldest_arrival_ns() is None
    buffer.add([SpanData(4, 4, 5, "s", 0, 0, 1, {})], now_ns=5 * SECOND)  # in order again once empty
    buffer.add([SpanData(5, 5, 5, "s", 0, 0, 1, {})], now_ns=6 * SECOND)
    assert buffer.oldest_arrival_ns() == 5 * SECOND


def test_marks_reach_decide_or_by_trace() -> None:
    seen: dict[int, int] = {}

    def decide(spans: Any, cause: str) -> bool:
        seen[spans[0].trace_id] = spans.marks
        return False

    buffer: TraceBuffer[bool] = TraceBuffer(decide, decision_wait_s=60)
    spans = [SpanData(t, i, 5, "s", 0, 0, 1, {}) for i, t in enumerate([1, 2, 1, 1], start=1)]
    buffer.add(spans, now_ns=SECOND, marks=[1, 0, 2, 0])
    buffer.add([SpanData(2, 9, 5, "s", 0, 0, 1, {})], now_ns=SECOND, marks=[4])
    buffer.drain()
    assert seen == {1: 3, 2: 4}


def test_late_spans_whose_decision_is_evicted_in_the_same_batch() -> None:
    """Trace 1 is decided; a late span of it arrives, then trace 2 is decided in the same batch (span
    limit) and pushes trace 1 out of a one-entry cache: the late span follows the decision it found."""
    buffer: TraceBuffer[str] = TraceBuffer(
        lambda spans, cause: f"verdict {spans[0].trace_id}", max_spans_per_trace=1, decision_cache_size=1
    )
    buffer.add([SpanData(1, 1, 5, "s", 0, 0, 1, {})], now_ns=SECOND)
    released = buffer.add([SpanData(1, 2, 5, "s", 0, 0, 1, {}), SpanData(2, 3, 5, "s", 0, 0, 1, {})], now_ns=SECOND)
    assert [(group.verdict, group.late, [s.span_id for s in group.spans]) for group in released] == [
        ("verdict 2", False, [3]),
        ("verdict 1", True, [2]),
    ]


def test_a_span_with_a_remote_parent_starts_the_root_grace() -> None:
    causes: list[str] = []
    buffer: TraceBuffer[bool] = TraceBuffer(lambda spans, cause: causes.append(cause) or False, decision_wait_s=5)
    remote_child = SpanData(1, 1, 5, "s", 0, 0, 1, {}, is_remote_parent=True)
    buffer.add([remote_child], now_ns=SECOND)
    assert buffer.poll(SECOND + int(ROOT_GRACE_S * SECOND)) and causes == ["root"]


def test_spans_added_without_marks_are_evaluated() -> None:
    """A caller feeding the stage's buffer directly (no marks) still gets the error policy's verdict."""
    stage = TailSamplingStage(SamplingConfig(probability=0.0), MeterProvider())
    stage.buffer.add([SpanData(0x10, 1, None, "s", 0, 0, 1, {semconv.ERROR_TYPE: "boom"})], now_ns=SECOND)
    (released,) = stage.buffer.drain()
    assert released.verdict.kept and released.verdict.reason == "error"


def test_a_value_whose_equality_raises() -> None:
    """Marking runs FlaggedPolicy's own test: a span flagged before the odd value is compared is marked
    flagged, as the policy finds it; one whose test reaches the odd value is marked unknown, and its
    trace is then evaluated span by span (where the policy's exception counts as not sampled)."""

    class Odd:
        def __eq__(self, other: object) -> bool:
            raise ValueError("ambiguous")

        __hash__ = object.__hash__

    span = SpanData(1, 1, None, "s", 0, 0, 1, {"app.odd": Odd(), semconv.PII_DETECTED: True})
    (mark,) = span_marks([span])
    assert mark == MARK_FLAGGED
    assert ref_combine([FlaggedPolicy()], [span]) == (True, "flagged", ALWAYS_TH)
    verdict = combine([FlaggedPolicy()], [span], mark)
    assert (verdict.kept, verdict.reason) == (True, "flagged")
    unflagged = SpanData(2, 1, None, "s", 0, 0, 1, {"app.odd": Odd()})
    (mark,) = span_marks([unflagged])
    assert mark == MARK_UNKNOWN
    verdict = combine([FlaggedPolicy()], [unflagged], mark)
    assert ref_combine([FlaggedPolicy()], [unflagged]) == (False, None, ALWAYS_TH)
    assert (verdict.kept, verdict.reason, verdict.threshold) == (False, None, ALWAYS_TH)
