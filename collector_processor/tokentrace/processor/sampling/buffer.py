"""Spans held per trace until the trace is decided, then a cache of decisions for late spans.

A trace is decided ``root_grace_s`` after its local root span arrives, or ``decision_wait_s`` after
its first span, whichever comes first; when ``max_traces`` are held the oldest is decided at once
(overflow), and a trace reaching ``max_spans_per_trace`` is decided at once too. Decisions go into
an LRU cache of ``decision_cache_size`` trace ids, so a span arriving after its trace was decided
follows that decision immediately. Every method is thread-safe: the exporter thread and the poll
timer both call in.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from tokentrace.processor.model import SpanData

V = TypeVar("V")

CAUSE_ROOT = "root"
CAUSE_WAIT = "wait"
CAUSE_OVERFLOW = "overflow"
CAUSE_SPAN_LIMIT = "span_limit"
CAUSE_SHUTDOWN = "shutdown"


@dataclass(slots=True)
class _Pending:
    first_ns: int
    spans: list[SpanData] = field(default_factory=list)
    root_seen: bool = False


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
        decide: Callable[[list[SpanData], str], V],
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
        self._pending: OrderedDict[int, _Pending] = OrderedDict()  # insertion order = first-span order
        self._root_due: list[tuple[int, int]] = []  # heap of (due_ns, trace_id)
        self._decided: OrderedDict[int, V] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    @property
    def span_count(self) -> int:
        with self._lock:
            return sum(len(p.spans) for p in self._pending.values())

    def oldest_arrival_ns(self) -> int | None:
        """When the oldest span still held arrived (by ``clock``), or None when nothing is held: every
        span that arrived before it has left the buffer (the gateway's intake journal relies on this)."""
        with self._lock:
            return min((pending.first_ns for pending in self._pending.values()), default=None)

    def cached(self, trace_id: int) -> V | None:
        with self._lock:
            return self._decided.get(trace_id)

    # -- in --------------------------------------------------------------------------------------

    def add(self, spans: list[SpanData], now_ns: int | None = None) -> list[Released[V]]:
        """Buffer ``spans``; returns the traces decided now (by overflow, size or due time)."""
        now = self.clock() if now_ns is None else now_ns
        out: list[Released[V]] = []
        late: dict[int, list[SpanData]] = {}
        with self._lock:
            for span in spans:
                trace_id = span.trace_id
                pending = self._pending.get(trace_id)
                if pending is None:
                    verdict = self._decided.get(trace_id)
                    if verdict is not None or trace_id in self._decided:
                        self._decided.move_to_end(trace_id)
                        late.setdefault(trace_id, []).append(span)
                        continue
                    while len(self._pending) >= self.max_traces:
                        oldest = next(iter(self._pending))
                        out.append(self._decide_locked(oldest, CAUSE_OVERFLOW))
                    pending = self._pending[trace_id] = _Pending(now)
                pending.spans.append(span)
                if span.is_local_root and not pending.root_seen:
                    pending.root_seen = True
                    heapq.heappush(self._root_due, (now + self.grace_ns, trace_id))
                if len(pending.spans) >= self.max_spans_per_trace:
                    out.append(self._decide_locked(trace_id, CAUSE_SPAN_LIMIT))
            for trace_id, late_spans in late.items():
                out.append(Released(self._decided[trace_id], late_spans, late=True))
            out.extend(self._release_due_locked(now))
        return out

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
        while heap and heap[0][0] <= now:
            _, trace_id = heapq.heappop(heap)
            if trace_id in self._pending:
                out.append(self._decide_locked(trace_id, CAUSE_ROOT))
        deadline = now - self.wait_ns
        while self._pending:
            trace_id, pending = next(iter(self._pending.items()))
            if pending.first_ns > deadline:
                break
            out.append(self._decide_locked(trace_id, CAUSE_WAIT))
        return out

    def _decide_locked(self, trace_id: int, cause: str) -> Released[V]:
        pending = self._pending.pop(trace_id)
        verdict = self._decide(pending.spans, cause)
        if self.decision_cache_size:
            self._decided[trace_id] = verdict
            self._decided.move_to_end(trace_id)
            while len(self._decided) > self.decision_cache_size:
                self._decided.popitem(last=False)
        return Released(verdict, pending.spans, cause=cause)
