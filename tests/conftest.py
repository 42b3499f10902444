"""Shared fixtures: in-memory OpenTelemetry providers, the instrumentor, the local OpenAI simulator,
and tiktoken encodings installed offline (from the ``bpe-openai`` package's bundled files) so token
estimates work without network."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tokentrace
from tokentrace.core.tiktoken_offline import DEFAULT_CACHE, install_offline_encodings

# Token estimates need tiktoken's encodings; tests install them offline before tiktoken loads any.
os.environ.setdefault(
    "TIKTOKEN_CACHE_DIR",
    str(install_offline_encodings(Path(os.environ.get("TOKENTRACE_TEST_CACHE", DEFAULT_CACHE)))),
)


class Telemetry:
    """What a test reads back: finished spans and collected metrics."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def spans(self) -> list[Any]:
        return list(self.exporter.get_finished_spans())

    def span(self) -> Any:
        spans = self.spans()
        assert len(spans) == 1, f"expected one span, got {[s.name for s in spans]}"
        return spans[0]

    def metrics(self) -> dict[str, list[Any]]:
        """Metric name -> data points, across scopes."""
        assert tokentrace.flush(), "metrics still queued after 5 s"
        data = self.reader.get_metrics_data()
        points: dict[str, list[Any]] = {}
        if data is None:
            return points
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    points.setdefault(metric.name, []).extend(metric.data.data_points)
        return points


@pytest.fixture
def telemetry() -> Telemetry:
    return Telemetry()


@pytest.fixture
def instrument(telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """``instrument(**env)``: set environment variables, then instrument OpenAI into ``telemetry``."""
    from tokentrace.instrumentation.openai import OpenAIInstrumentor

    instrumentor = OpenAIInstrumentor()

    def _instrument(**env: str) -> OpenAIInstrumentor:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
        instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
        return instrumentor

    yield _instrument
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


@pytest.fixture
def instrument_with(telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """``instrument_with(InstrumentorClass, **env)``: any tokentrace instrumentor into ``telemetry``,
    uninstrumented after the test (the provider tests' counterpart of ``instrument``)."""
    done: list[Any] = []

    def _instrument(instrumentor_class: type, **env: str) -> Any:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        instrumentor = instrumentor_class()
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
        instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
        done.append(instrumentor)
        return instrumentor

    yield _instrument
    for instrumentor in done:
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


@pytest.fixture
def span_ends(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every span our recorder ends, in order (a span ended twice would appear twice): the stream
    contract tests of every provider check each stream's span ends exactly once."""
    from tokentrace.core.recorder import Recorder

    ended: list[Any] = []
    original = Recorder._end_span

    def counting(self: Recorder, span: Any) -> None:
        ended.append(span)
        original(self, span)

    monkeypatch.setattr(Recorder, "_end_span", counting)
    return ended


@pytest.fixture
def instrumented(instrument: Callable[..., Any]) -> Any:
    """OpenAI instrumented with default settings."""
    return instrument()


@pytest.fixture(scope="session")
def simulator() -> Iterator[Any]:
    from tokentrace.demo.simulator import Simulator

    with Simulator(seed=1) as sim:
        yield sim


@pytest.fixture
def client(simulator: Any) -> Any:
    import openai

    with openai.OpenAI(base_url=simulator.base_url, api_key="sk-test", max_retries=0) as c:
        yield c


@pytest.fixture
async def aclient(simulator: Any) -> Any:
    import openai

    async with openai.AsyncOpenAI(base_url=simulator.base_url, api_key="sk-test", max_retries=0) as c:
        yield c
