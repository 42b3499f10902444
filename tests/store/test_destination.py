"""Where the in-process pipeline sends spans: the store by default, a backend when configured, or both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tokentrace.processor.sdk import FanOutSpanExporter, TokentraceSpanExporter
from tokentrace.store.exporter import StoreSpanExporter
from tokentrace.store.writer import connect


@pytest.fixture
def no_backend(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "TOKENTRACE_TRACES_EXPORTER",
        "TOKENTRACE_STORE_KEEP_LOCAL",
    ):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "spans.duckdb"
    monkeypatch.setenv("TOKENTRACE_STORE_PATH", str(path))
    return path


def test_without_a_backend_spans_go_to_the_store(no_backend: Path) -> None:
    exporter = TokentraceSpanExporter()
    try:
        assert isinstance(exporter.exporter, StoreSpanExporter)
        assert exporter.exporter.writer.path == no_backend
    finally:
        exporter.shutdown()


def test_with_a_backend_spans_go_there_and_optionally_also_to_the_store(
    no_backend: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    exporter = TokentraceSpanExporter()
    assert not isinstance(exporter.exporter, (StoreSpanExporter, FanOutSpanExporter))
    assert "OTLP" in type(exporter.exporter).__name__
    exporter.shutdown()
    monkeypatch.setenv("TOKENTRACE_STORE_KEEP_LOCAL", "true")
    both = TokentraceSpanExporter()
    assert isinstance(both.exporter, FanOutSpanExporter)
    assert [type(e).__name__ for e in both.exporter.exporters][1] == "StoreSpanExporter"
    both.shutdown()


def test_an_instrumented_call_lands_in_the_store(no_backend: Path, simulator: Any, instrument: Any) -> None:
    import openai

    from tokentrace.instrumentation.openai import OpenAIInstrumentor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(TokentraceSpanExporter()))
    instrumentor = OpenAIInstrumentor()
    instrumentor.uninstrument() if instrumentor.is_instrumented_by_opentelemetry else None
    instrumentor.instrument(tracer_provider=provider)
    try:
        with openai.OpenAI(base_url=simulator.base_url, api_key="sk-test", max_retries=0) as client:
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    with connect(no_backend, read_only=True) as connection:
        rows = connection.execute(
            "SELECT operation, response_model, input_tokens, output_tokens, cost_usd, template FROM spans"
        ).fetchall()
    assert len(rows) == 1
    operation, model, input_tokens, output_tokens, cost, template = rows[0]
    assert (operation, model) == ("chat", reply.model)
    assert (input_tokens, output_tokens) == (reply.usage.prompt_tokens, reply.usage.completion_tokens)
    assert cost > 0 and template  # priced by the instrumentation, fingerprinted by the pipeline
