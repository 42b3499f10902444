"""The store as an OpenTelemetry ``SpanExporter``: the in-process pipeline's default destination.

``OTEL_TRACES_EXPORTER=tokentrace`` with no OTLP endpoint configured ends here; so does
``TOKENTRACE_TRACES_EXPORTER=store`` explicitly (entry point ``tokentrace_store``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from tokentrace.processor.model import from_readable
from tokentrace.store.schema import default_path
from tokentrace.store.writer import StoreWriter

logger = logging.getLogger("tokentrace")


class StoreSpanExporter(SpanExporter):
    def __init__(self, path: Path | str | None = None, **writer_options: object) -> None:
        self.writer = StoreWriter(path or default_path(), **writer_options)  # type: ignore[arg-type]

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            self.writer.write(from_readable(span) for span in spans)
        except Exception:
            logger.warning("tokentrace: could not buffer spans for the store", exc_info=True)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        try:
            self.writer.flush(timeout_millis / 1000)
        except Exception:
            logger.warning("tokentrace: store flush failed", exc_info=True)
            return False
        return True

    def shutdown(self) -> None:
        try:
            self.writer.close()
        except Exception:
            logger.warning("tokentrace: store close failed", exc_info=True)
