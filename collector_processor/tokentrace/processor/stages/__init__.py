"""Pipeline stages: each is a small class built from a config dataclass, with one ``process(batch)``.

A stage module defines ``Config`` (a frozen dataclass with defaults, ``from_mapping`` validating a
plain dict from YAML or environment variables) and a stage class ``build(config) -> Stage``. The
registry in :mod:`tokentrace.processor.config` maps stage names to modules.
"""

from __future__ import annotations

from typing import Protocol

from tokentrace.processor.model import SpanData


class Stage(Protocol):
    """One step between finished spans and the exporter.

    ``process`` may change spans in place (set ``changed`` via ``SpanData.set``/``pop``) and returns
    the spans to pass on; a stage that holds spans back, like the tail sampler, returns fewer and
    releases them later from ``poll``, and then also says so: a ``holds_spans`` attribute (True)
    and ``oldest_held_ns()`` (when the oldest span it holds arrived, by ``time.time_ns()``; None when
    it holds none), which the gateway needs to know when a request it acknowledged is fully passed on.
    Stages must not raise on odd input: a span they cannot understand passes through unchanged.
    """

    name: str

    def process(self, batch: list[SpanData]) -> list[SpanData]: ...

    def poll(self, now_ns: int) -> list[SpanData]:
        """Spans held back earlier that are due now."""
        ...

    def shutdown(self) -> list[SpanData]:
        """Release everything still held."""
        ...


class PassThroughTiming:
    """Mixin for stages that never hold spans back."""

    def poll(self, now_ns: int) -> list[SpanData]:
        return []

    def shutdown(self) -> list[SpanData]:
        return []
