"""Paired added-time measurement for one provider instrumentation, shared by ``bench/providers/*.py``.

Loops of the uninstrumented SDK and of the instrumented SDK alternate in one process (ABBA order,
so drift in machine speed hits both alike) against the same local server or transport; the figure
is the median of the pairs' differences, printed next to the baseline as a ratio. Spans are counted
per loop (zero for a baseline loop, one per call instrumented) so a toggle that failed to toggle
cannot pass unnoticed. Figures are printed, never asserted.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class Toggle:
    """Instrument once, then swap the wrapped methods in and out in microseconds."""

    def __init__(self, instrumentor_class: type, **instrument_kwargs: Any) -> None:
        self.exporter = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        self.instrumentor = instrumentor_class()
        if self.instrumentor.is_instrumented_by_opentelemetry:
            self.instrumentor.uninstrument()
        self.instrumentor.instrument(
            tracer_provider=tracer_provider, meter_provider=meter_provider, **instrument_kwargs
        )
        self._swaps = []
        for cls, method in self.instrumentor._patched:
            wrapper = vars(cls)[method]
            self._swaps.append((cls, method, wrapper, wrapper.__wrapped__))
        self.on = True

    def set(self, on: bool) -> None:
        for cls, method, wrapper, original in self._swaps:
            setattr(cls, method, wrapper if on else original)
        self.on = on

    def close(self) -> None:
        self.set(True)
        self.instrumentor.uninstrument()


@dataclass
class Figure:
    case: str
    baseline_us: float
    added_us: float

    @property
    def ratio(self) -> float:
        return (self.baseline_us + self.added_us) / self.baseline_us if self.baseline_us else float("nan")


def _loop(run: Callable[[], Any], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        run()
    return (time.perf_counter() - start) / number * 1e6


def added_time(case: str, run: Callable[[], Any], toggle: Toggle, *, number: int = 50, pairs: int = 15) -> Figure:
    """Median added µs per ``run()`` with the instrumentation on, paired with its own baseline."""
    for on in (False, True):  # warm both paths
        toggle.set(on)
        _loop(run, max(3, number // 5))
    baselines, diffs = [], []
    for index in range(pairs):
        order = (False, True) if index % 2 == 0 else (True, False)
        timings = {}
        for on in order:
            toggle.set(on)
            toggle.exporter.clear()
            timings[on] = _loop(run, number)
            spans = len(toggle.exporter.get_finished_spans())
            if on and spans < number:
                raise RuntimeError(f"{case}: {spans} spans for {number} instrumented calls")
            if not on and spans:
                raise RuntimeError(f"{case}: {spans} spans with the instrumentation off")
        baselines.append(timings[False])
        diffs.append(timings[True] - timings[False])
    toggle.set(True)
    return Figure(case, statistics.median(baselines), statistics.median(diffs))


def per_chunk(short: Figure, long: Figure, short_chunks: int, long_chunks: int) -> float:
    """Added µs per chunk: the slope between two stream lengths (the per-call part cancels)."""
    return (long.added_us - short.added_us) / (long_chunks - short_chunks)


def print_figures(title: str, figures: list[Figure], chunk_figures: dict[str, float] | None = None) -> None:
    print(f"== {title}")
    print(f"{'case':<34}{'baseline µs':>14}{'added µs':>12}{'ratio':>8}")
    for figure in figures:
        print(f"{figure.case:<34}{figure.baseline_us:>14.1f}{figure.added_us:>12.1f}{figure.ratio:>8.3f}")
    for name, value in (chunk_figures or {}).items():
        print(f"{name:<34}{'':>14}{value:>12.2f}  µs/chunk")


def best_us(run: Callable[[], Any], number: int, repeats: int = 7) -> float:
    """The best of ``repeats`` loops of ``number`` runs, in µs per run: in-process costs (no network)
    are stable at their best even on a busy machine."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            run()
        best = min(best, (time.perf_counter() - start) / number * 1e6)
    return best


def print_in_process(
    one_call: Callable[[], Any],
    items: list[Any],
    traced: Callable[[Iterator[Any]], Iterable[Any]],
    labels: tuple[str, str],
    unit: str,
) -> None:
    """Print our own cost without the network: ``one_call()`` runs the hooks of one non-streamed call
    on a response fetched once; ``traced(iterator)`` wraps already decoded stream ``items`` in our
    proxy, whose per-item cost is the traced loop's time less the bare loop's. ``labels`` name the two
    lines; ``unit`` is what one item of the stream is called."""

    def bare() -> None:
        for _ in iter(items):
            pass

    def traced_loop() -> None:
        for _ in traced(iter(items)):
            pass

    per_call = best_us(one_call, 200)
    per_item = (best_us(traced_loop, 3) - best_us(bare, 3)) / len(items)
    print("== in-process (no network)")
    print(f"{labels[0]:<34}{'':>14}{per_call:>12.1f}  µs/call")
    print(f"{labels[1]:<34}{'':>14}{per_item:>12.2f}  µs/{unit}")
