"""Stages in order, the same in the SDK span processor and in the gateway.

Held-back spans (the tail sampler waits for a trace to complete) re-enter the pipeline after the
stage that held them, so every span passes every stage exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from tokentrace.processor.model import SpanData
from tokentrace.processor.stages import Stage


class Pipeline:
    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = list(stages)

    def process(self, batch: list[SpanData]) -> list[SpanData]:
        return self._run(batch, 0)

    def poll(self, now_ns: int | None = None) -> list[SpanData]:
        """Spans any stage releases now, carried through the stages after it."""
        now = time.time_ns() if now_ns is None else now_ns
        out: list[SpanData] = []
        for index, stage in enumerate(self.stages):
            released = stage.poll(now)
            if released:
                out.extend(self._run(released, index + 1))
        return out

    def shutdown(self) -> list[SpanData]:
        out: list[SpanData] = []
        for index, stage in enumerate(self.stages):
            released = stage.shutdown()
            if released:
                out.extend(self._run(released, index + 1))
        return out

    @property
    def holds_spans(self) -> bool:
        """Whether a stage may keep spans back (tail sampling): spans it holds are in memory only."""
        return any(getattr(stage, "holds_spans", False) for stage in self.stages)

    def oldest_held_ns(self) -> int | None:
        """When (``time.time_ns()``) the oldest span a stage still holds arrived, None if none is held.

        Every span that entered the pipeline before that instant has left it (passed or dropped), which
        is what lets the gateway forget the copy of a request it journalled before acknowledging it.
        """
        held = [stage.oldest_held_ns() for stage in self.stages if getattr(stage, "holds_spans", False)]
        return min((value for value in held if value is not None), default=None)

    def _run(self, batch: list[SpanData], start: int) -> list[SpanData]:
        for stage in self.stages[start:]:
            if not batch:
                break
            batch = stage.process(batch)
        return batch
