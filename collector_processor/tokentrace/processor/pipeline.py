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

    def _run(self, batch: list[SpanData], start: int) -> list[SpanData]:
        for stage in self.stages[start:]:
            if not batch:
                break
            batch = stage.process(batch)
        return batch
