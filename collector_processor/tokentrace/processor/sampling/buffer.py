"""Spans held per trace until the trace is decided, then a cache of decisions for late spans.

A trace is decided ``root_grace_s`` after its local root span arrives, or ``decision_wait_s`` after
its first span, whichever comes first; when ``max_traces`` are held the oldest is decided at once
(overflow), and a trace reaching ``max_spans_per_trace`` is decided at once too. Decisions go into
an LRU cache of ``decision_cache_size`` trace ids, so a span arriving after its trace was decided
follows that decision immediately. Every method is thread-safe: the exporter thread and the poll
timer both call in.

The caller may pass one int per span (``marks``); a held trace's marks are OR-ed together in
:attr:`HeldSpans.marks`, so ``decide`` can use what its caller noted about each span as it arrived
(when the span was still in the CPU's caches) instead of reading every span again. A span added
without marks is marked :data:`NO_MARKS` (every bit set), so its trace's marks cannot pass for complete.

Per span, :meth:`TraceBuffer.add` does one dict lookup, an append and a local-root test on the span's
fields (no property call); the decision cache is consulted once per new trace, and a held trace is one
object (a list with three slots). :meth:`oldest_arrival_ns` is O(1) while traces were created in clock
order (always, unless the clock stepped back), because then the first held trace is also the oldest.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from heapq import heappop, heappush
from itertools import repeat
from typing import Generic, TypeVar

from tokentrace.processor.model import SpanData

V = TypeVar("V")

CAUSE_ROOT = "root"
CAUSE_WAIT = "wait"
CAUSE_OVERFLOW = "overflow"
CAUSE_SPAN_LIMIT = "span_limit"
CAUSE_SHUTDOWN = "shutdown"

NO_MARKS = -1  # the mark of a span added without marks: every bit set, so "unknown" whatever bit says so


class HeldSpans(list[SpanData]):
    """The spans held for one trace, in arrival order, with when the first arrived (``first_ns``),
    whether its root grace is scheduled (``root_seen``) and the OR of the marks given with them."""

    __slots__ = ("first_ns", "marks", "root_seen")

    first_ns: int
    marks: int
    root_seen: bool


@dataclass(slots=True)
class Released(Generic[V]):
    """Spans leaving the buffer with their trace's decision; ``late`` for spans of a decided trace."""

    verdict: V
    spans: list[SpanData]
    late: bool = False
    cause: str = ""


class TraceBuffer(Generic[V]):
    """``decide(spans, cause) -> verdict`` is called once per trace, under the buffer's lock."""

    def __init__(
        self,
        decide: Callable[[HeldSpans, str], V],
        *,
        decision_wait_s: float = 5.0,
        root_grace_s: float = 0.1,
        max_traces: int = 10_000,
        max_spans_per_trace: int = 1_000,
        decision_cache_size: int = 100_000,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if max_traces < 1 or max_spans_per_trace < 1 or decision_cache_size < 0:
            raise ValueError("max_traces and max_spans_per_trace must be >= 1, decision_cache_size >= 0")
        self._decide = decide
        self.wait_ns = int(decision_wait_s * 1e9)
        self.grace_ns = min(int(root_grace_s * 1e9), self.wait_ns)
        self.max_traces = max_traces
        self.max_spans_per_trace = max_spans_per_trace
        self.decision_cache_size = decision_cache_size
        self.clock = clock
        self._lock = threading.Lock()
        self._pending: OrderedDict[int, HeldSpans] = OrderedDict()  # insertion order = first-span order
        self._root_due: list[tuple[int, int]] = []  # heap of (due_ns, trace_id)
        self._decided: OrderedDict[int, V] = OrderedDict()
        # Whether the held traces' first_ns ascend in creation order, and the latest first_ns given.
        self._in_clock_order = True
        self._newest_ns = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    @property
    def span_count(self) -> int:
        with self._lock:
            return sum(len(held) for held in self._pending.values())

    def oldest_arrival_ns(self) -> int | None:
        """When the oldest span still held arrived (by ``clock``), or None when nothing is held: every
        span that arrived before it has left the buffer (the gateway's intake journal relies on this)."""
        with self._lock:
            if not self._pending:
                return None
            if self._in_clock_order:
                return next(iter(self._pending.values())).first_ns
            return min(held.first_ns for held in self._pending.values())

    def cached(self, trace_id: int) -> V | None:
        with self._lock:
            return self._decided.get(trace_id)

    # -- in --------------------------------------------------------------------------------------

    def add(
        self, spans: list[SpanData], now_ns: int | None = None, marks: Sequence[int] | None = None
    ) -> list[Released[V]]:
        """Buffer ``spans`` (with ``marks``, one per span, if given); returns the traces decided now (by
        overflow, size or due time)."""
        now = self.clock() if now_ns is None else now_ns
        out: list[Released[V]] = []
        late: dict[int, tuple[V, list[SpanData]]] = {}  # trace id -> (its verdict then, its late spans)
        with self._lock:
            self._note_clock_locked(now)
            pending = self._pending
            decided = self._decided
            root_due = now + self.grace_ns
            max_traces, max_spans = self.max_traces, self.max_spans_per_trace
            for span, mark in zip(spans, repeat(NO_MARKS) if marks is None else marks, strict=False):
                trace_id = span.trace_id
                held = pending.get(trace_id)
                if held is None:
                    if trace_id in decided:
                        decided.move_to_end(trace_id)
                        late_group = late.get(trace_id)
                        if late_group is None:
                            late[trace_id] = (decided[trace_id], [span])
                        else:
                            late_group[1].append(span)
                        continue
                    while len(pending) >= max_traces:
                        out.append(self._decide_locked(next(iter(pending)), CAUSE_OVERFLOW))
                    held = pending[trace_id] = HeldSpans()
                    held.first_ns, held.marks, held.root_seen = now, 0, False
                held.append(span)
                if mark:
                    held.marks |= mark
                if (span.parent_span_id is None or span.is_remote_parent) and not held.root_seen:
                    held.root_seen = True  # a local root (SpanData.is_local_root, inlined)
                    heappush(self._root_due, (root_due, trace_id))
                if len(held) >= max_spans:
                    out.append(self._decide_locked(trace_id, CAUSE_SPAN_LIMIT))
            for trace_id, (verdict, late_spans) in late.items():
                # The cached verdict now (as ever), or, if later decisions of this batch pushed it out of
                # the cache, the one the spans found (this used to raise KeyError and lose the batch).
                out.append(Released(decided.get(trace_id, verdict), late_spans, late=True))
            out.extend(self._release_due_locked(now))
        return out

    def _note_clock_locked(self, now: int) -> None:
        """Keep :meth:`oldest_arrival_ns` O(1) unless traces may be created out of clock order."""
        if not self._pending:
            self._in_clock_order = True
            self._newest_ns = now
        elif now < self._newest_ns:
            self._in_clock_order = False
        else:
            self._newest_ns = now

    # -- out -------------------------------------------------------------------------------------

    def poll(self, now_ns: int | None = None) -> list[Released[V]]:
        """Decide the traces whose root grace or decision wait has passed."""
        now = self.clock() if now_ns is None else now_ns
        with self._lock:
            return self._release_due_locked(now)

    def drain(self) -> list[Released[V]]:
        """Decide everything still held (shutdown)."""
        with self._lock:
            out = [self._decide_locked(trace_id, CAUSE_SHUTDOWN) for trace_id in list(self._pending)]
            self._root_due.clear()
            return out

    def _release_due_locked(self, now: int) -> list[Released[V]]:
        out: list[Released[V]] = []
        heap = self._root_due
        pending = self._pending
        while heap and heap[0][0] <= now:
            trace_id = heappop(heap)[1]
            if trace_id in pending:
                out.append(self._decide_locked(trace_id, CAUSE_ROOT))
        deadline = now - self.wait_ns
        while pending:
            trace_id = next(iter(pending))
            if pending[trace_id].first_ns > deadline:
                break
            out.append(self._decide_locked(trace_id, CAUSE_WAIT))
        return out

    def _decide_locked(self, trace_id: int, cause: str) -> Released[V]:
        spans = self._pending.pop(trace_id)
        verdict = self._decide(spans, cause)
        if self.decision_cache_size:
            decided = self._decided
            decided[trace_id] = verdict  # a new key (a held trace is never in the cache): already the newest
            while len(decided) > self.decision_cache_size:
                decided.popitem(last=False)
        return Released(verdict, spans, False, cause)
