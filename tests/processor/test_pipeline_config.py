"""The pipeline's assembly: configuration from YAML and environment, the SDK exporter adapter, and
zero-code selection through ``OTEL_TRACES_EXPORTER=tokentrace``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tokentrace.processor import ConfigError, Pipeline, PipelineSpanExporter, build_pipeline, load
from tokentrace.processor.model import SpanData


class _Tag:
    """A stage that marks every span and holds back spans named 'later' until polled."""

    name = "tag"

    def __init__(self) -> None:
        self.held: list[SpanData] = []

    def process(self, batch: list[SpanData]) -> list[SpanData]:
        out = []
        for span in batch:
            span.set("tagged", True)
            (self.held if span.name == "later" else out).append(span)
        return out

    def poll(self, now_ns: int) -> list[SpanData]:
        released, self.held = self.held, []
        return released

    def shutdown(self) -> list[SpanData]:
        return self.poll(0)


def test_environment_overrides_file(tmp_path: Path) -> None:
    config_file = tmp_path / "processor.yaml"
    config_file.write_text("pipeline: [normalise, sample]\nsample: {probability: 0.5, decision_wait_s: 2}\n")
    config = load(
        {
            "TOKENTRACE_PROCESSOR_CONFIG": str(config_file),
            "TOKENTRACE_SAMPLE__PROBABILITY": "0.1",
            "TOKENTRACE_SAMPLE__PER_MODEL_LIMITS": "{gpt-4o: 2}",
            "TOKENTRACE_UNRELATED": "x",
        }
    )
    assert config["pipeline"] == ["normalise", "sample"]
    assert config["sample"] == {"probability": 0.1, "decision_wait_s": 2, "per_model_limits": {"gpt-4o": 2}}
    assert load({"TOKENTRACE_PIPELINE": "enrich, sample"})["pipeline"] == ["enrich", "sample"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"pipeline": ["normalise", "teleport"]}, "unknown stage"),
        ({"pipeline": "normalise"}, "must be a list"),
        ({"pipeline": ["sample", "enrich"]}, "'sample' must be the last stage"),
        ({"pipeline": [], "bogus": {}}, "unknown stage"),
    ],
)
def test_invalid_configuration_is_a_clear_error(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_pipeline(config)


def test_unreadable_config_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipeline: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load({"TOKENTRACE_PROCESSOR_CONFIG": str(bad)})
    with pytest.raises(ConfigError, match="cannot read"):
        load({"TOKENTRACE_PROCESSOR_CONFIG": str(tmp_path / "missing.yaml")})


def test_exporter_runs_stages_and_releases_held_spans() -> None:
    sink = InMemorySpanExporter()
    stage = _Tag()
    exporter = PipelineSpanExporter(sink, Pipeline([stage]), poll_interval=3600)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("now", attributes={"keep": 1}):
        pass
    with tracer.start_as_current_span("later"):
        pass
    assert [(s.name, dict(s.attributes)) for s in sink.get_finished_spans()] == [("now", {"keep": 1, "tagged": True})]
    exporter.poll()
    assert [s.name for s in sink.get_finished_spans()] == ["now", "later"]
    provider.shutdown()


def test_unchanged_spans_reach_the_exporter_as_the_same_objects() -> None:
    received: list[Any] = []

    class Recording(InMemorySpanExporter):
        def export(self, spans: Any) -> Any:
            received.extend(spans)
            return super().export(spans)

    sink = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Recording()))
    provider.add_span_processor(SimpleSpanProcessor(PipelineSpanExporter(sink, Pipeline([]), poll_interval=3600)))
    with provider.get_tracer("test").start_as_current_span("plain"):
        pass
    assert sink.get_finished_spans()[0] is not None
    assert sink.get_finished_spans()[0].context == received[0].context
    from tokentrace.processor.model import from_readable, to_readable

    assert to_readable(from_readable(received[0])) is received[0]  # nothing changed: no copy
    provider.shutdown()


def test_zero_code_exporter_wraps_the_named_exporter(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(
        "from opentelemetry import trace\n"
        "with trace.get_tracer('app').start_as_current_span('work', attributes={'gen_ai.system': 'openai'}):\n"
        "    pass\n"
    )
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "tokentrace",
        "TOKENTRACE_TRACES_EXPORTER": "console",
        "TOKENTRACE_PIPELINE": "",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "zero-code",
    }
    launcher = Path(sys.executable).parent / "opentelemetry-instrument"
    result = subprocess.run(
        [str(launcher), sys.executable, str(app)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    start = result.stdout.index("{")
    exported = json.loads(result.stdout[start:])
    assert exported["name"] == "work"
    assert exported["resource"]["attributes"]["service.name"] == "zero-code"


def test_wrapped_exporter_must_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    from tokentrace.processor.sdk import TokentraceSpanExporter

    monkeypatch.setenv("TOKENTRACE_TRACES_EXPORTER", "no-such-exporter")
    with pytest.raises(ValueError, match="no-such-exporter"):
        TokentraceSpanExporter()


def test_reparented_span_reaches_the_exporter_with_its_new_parent() -> None:
    sink = InMemorySpanExporter()

    class Reparent:
        name = "reparent"

        def process(self, batch: list[SpanData]) -> list[SpanData]:
            by_name = {span.name: span for span in batch}
            child = by_name["child"]
            child.parent_span_id = by_name["root"].span_id
            child.changed = True
            return [span for span in batch if span.name != "wrapper"]

        def poll(self, now_ns: int) -> list[SpanData]:
            return []

        def shutdown(self) -> list[SpanData]:
            return []

    provider = TracerProvider()
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider.add_span_processor(BatchSpanProcessor(PipelineSpanExporter(sink, Pipeline([Reparent()]), 3600)))
    tracer = provider.get_tracer("test")
    with (
        tracer.start_as_current_span("root") as root,
        tracer.start_as_current_span("wrapper"),
        tracer.start_as_current_span("child"),
    ):
        pass
    provider.force_flush()
    exported = {span.name: span for span in sink.get_finished_spans()}
    assert set(exported) == {"root", "child"}
    assert exported["child"].parent.span_id == root.get_span_context().span_id
    provider.shutdown()
