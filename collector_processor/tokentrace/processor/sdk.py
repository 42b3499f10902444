"""The pipeline in an OpenTelemetry Python process.

:class:`PipelineSpanExporter` wraps the application's exporter: the SDK's batching processor hands
it finished spans off the application's thread, the pipeline runs, and what it passes goes to the
wrapped exporter. Spans the tail sampler holds back are released by a timer thread. Only public SDK
interfaces are used (``SpanExporter``, ``ReadableSpan``, ``BatchSpanProcessor``).

Zero code: ``OTEL_TRACES_EXPORTER=tokentrace`` selects this exporter through the SDK's own
``opentelemetry_traces_exporter`` entry points, and ``TOKENTRACE_TRACES_EXPORTER`` (default
``otlp``) names the exporter it wraps, resolved through the same entry points.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from tokentrace.processor.model import SpanData, from_readable, to_readable
from tokentrace.processor.pipeline import Pipeline

WRAPPED_EXPORTER_ENV = "TOKENTRACE_TRACES_EXPORTER"
POLL_INTERVAL_S = 0.25


class PipelineSpanExporter(SpanExporter):
    """Runs the pipeline on each exported batch, then exports the result with ``exporter``."""

    def __init__(self, exporter: SpanExporter, pipeline: Pipeline, poll_interval: float = POLL_INTERVAL_S) -> None:
        self.exporter = exporter
        self.pipeline = pipeline
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._poller = threading.Thread(
            target=self._poll_loop, args=(poll_interval,), daemon=True, name="tokentrace-pipeline"
        )
        self._poller.start()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        batch = [from_readable(span) for span in spans]
        with self._lock:  # held across the send too: force_flush() then means "exported", not "released"
            return self._send(self.pipeline.process(batch))

    def _send(self, passed: list[SpanData]) -> SpanExportResult:
        if not passed:
            return SpanExportResult.SUCCESS
        return self.exporter.export([to_readable(data) for data in passed])

    def _poll_loop(self, interval: float) -> None:
        while not self._stopped.wait(interval):
            self.poll()

    def poll(self) -> SpanExportResult:
        with self._lock:
            return self._send(self.pipeline.poll())

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        self.poll()
        return self.exporter.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._stopped.set()
        with self._lock:
            self._send(self.pipeline.shutdown())
        self.exporter.shutdown()


def span_processor(exporter: SpanExporter, pipeline: Pipeline, **batch_options: Any) -> BatchSpanProcessor:
    """The one call in code: ``provider.add_span_processor(span_processor(exporter, pipeline))``."""
    return BatchSpanProcessor(PipelineSpanExporter(exporter, pipeline), **batch_options)


STORE_EXPORTER = "tokentrace_store"
KEEP_LOCAL_ENV = "TOKENTRACE_STORE_KEEP_LOCAL"
_OTLP_ENDPOINT_ENVS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def _default_exporter_name() -> str:
    """``otlp`` when an OTLP endpoint is configured, else the embedded store."""
    return "otlp" if any(os.environ.get(name) for name in _OTLP_ENDPOINT_ENVS) else STORE_EXPORTER


def _otlp_candidates() -> list[str]:
    """``otlp`` is registered by the ``opentelemetry-exporter-otlp`` meta package only; otherwise the
    protocol (``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL``, gRPC by default as the spec says) picks one."""
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    by_protocol = (
        ["otlp_proto_http", "otlp_proto_grpc"]
        if (protocol or "").startswith("http")
        else ["otlp_proto_grpc", "otlp_proto_http"]
    )
    return ["otlp", *by_protocol]


def _exporter_by_name(name: str) -> SpanExporter:
    from importlib.metadata import entry_points

    if name == "store":
        name = STORE_EXPORTER
    if name == "tokentrace":
        raise ValueError(f"{WRAPPED_EXPORTER_ENV} must name the exporter tokentrace wraps, not tokentrace itself")
    installed = {entry_point.name: entry_point for entry_point in entry_points(group="opentelemetry_traces_exporter")}
    for candidate in _otlp_candidates() if name == "otlp" else [name]:
        if candidate in installed:
            return installed[candidate].load()()
    raise ValueError(f"{WRAPPED_EXPORTER_ENV}={name!r}: no such opentelemetry_traces_exporter is installed")


class FanOutSpanExporter(SpanExporter):
    """Several exporters for the same spans (a backend and the local store); fails if any fails."""

    def __init__(self, exporters: Sequence[SpanExporter]) -> None:
        self.exporters = list(exporters)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        results = [exporter.export(spans) for exporter in self.exporters]
        ok = all(result is SpanExportResult.SUCCESS for result in results)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return all([exporter.force_flush(timeout_millis) for exporter in self.exporters])

    def shutdown(self) -> None:
        for exporter in self.exporters:
            exporter.shutdown()


def _wrapped_exporter_from_environment() -> SpanExporter:
    """The exporter(s) named by ``TOKENTRACE_TRACES_EXPORTER`` (comma-separated), by default OTLP
    when an endpoint is configured and otherwise the embedded store; ``TOKENTRACE_STORE_KEEP_LOCAL``
    adds the store next to a backend."""
    names = [n.strip() for n in os.environ.get(WRAPPED_EXPORTER_ENV, "").split(",") if n.strip()]
    names = names or [_default_exporter_name()]
    keep_local = os.environ.get(KEEP_LOCAL_ENV, "").strip().lower() in ("1", "true", "yes", "on")
    if keep_local and STORE_EXPORTER not in names and "store" not in names:
        names.append(STORE_EXPORTER)
    exporters = [_exporter_by_name(name) for name in names]
    return exporters[0] if len(exporters) == 1 else FanOutSpanExporter(exporters)


class TokentraceSpanExporter(PipelineSpanExporter):
    """What ``OTEL_TRACES_EXPORTER=tokentrace`` instantiates: the configured pipeline in front of the
    exporter named by ``TOKENTRACE_TRACES_EXPORTER``."""

    def __init__(self) -> None:
        from tokentrace.processor.config import build_pipeline

        super().__init__(_wrapped_exporter_from_environment(), build_pipeline())
