"""The GenAI span processor: normalise, enrich, flag, redact and tail-sample spans before export.

In-process::

    from tokentrace.processor import span_processor, build_pipeline
    provider.add_span_processor(span_processor(OTLPSpanExporter(), build_pipeline()))

Zero code: ``OTEL_TRACES_EXPORTER=tokentrace`` (``TOKENTRACE_TRACES_EXPORTER`` names the exporter
it wraps, default ``otlp``). The same stages run in the standalone gateway.
"""

from tokentrace.processor.config import ConfigError, build_pipeline, load
from tokentrace.processor.model import SpanData, from_readable, to_readable
from tokentrace.processor.pipeline import Pipeline
from tokentrace.processor.sdk import PipelineSpanExporter, span_processor

__all__ = [
    "ConfigError",
    "Pipeline",
    "PipelineSpanExporter",
    "SpanData",
    "build_pipeline",
    "from_readable",
    "load",
    "span_processor",
    "to_readable",
]
