"""google-genai auto-instrumentation: every ``client.models`` / ``client.aio.models`` call of the
``google-genai`` SDK (``from google import genai``) becomes a GenAI span with exact tokens, cost and
the conventions' metrics, for the Gemini Developer API (``gcp.gemini``) and Vertex AI
(``gcp.vertex_ai``) alike.

Zero code: ``opentelemetry-instrument python app.py`` (entry point ``tokentrace_google_genai``).
One call: ``GoogleGenAIInstrumentor().instrument()`` or :func:`tokentrace.instrument`.
"""

from __future__ import annotations

from collections.abc import Iterator

from tokentrace.core.instrumentor import LibraryInstrumentor, Target
from tokentrace.core.recorder import Recorder

_INSTRUMENTS = ("google-genai >= 1.0.0",)
SCOPE = "tokentrace.instrumentation.google_genai"

_MODULE = "google.genai.models"
# (class, method, operation in _patch, async?). The public methods: one span per application call,
# whatever the SDK does inside it (automatic continuation hops are merged by the SDK itself).
_METHODS: tuple[tuple[str, str, str, bool], ...] = (
    ("Models", "generate_content", "GENERATE", False),
    ("Models", "generate_content_stream", "GENERATE_STREAM", False),
    ("Models", "embed_content", "EMBED", False),
    ("AsyncModels", "generate_content", "GENERATE", True),
    ("AsyncModels", "generate_content_stream", "GENERATE_STREAM", True),
    ("AsyncModels", "embed_content", "EMBED", True),
)


# The SDK's single-request method: wrapped only to note each request's usage (see _hops).
_HOPS: tuple[tuple[str, bool], ...] = (("Models", False), ("AsyncModels", True))


class GoogleGenAIInstrumentor(LibraryInstrumentor):
    """Instruments the ``google-genai`` package; a singleton, so instrumenting twice is a no-op."""

    SCOPE = SCOPE
    INSTRUMENTS = _INSTRUMENTS

    def targets(self, recorder: Recorder) -> Iterator[Target]:
        from tokentrace.instrumentation.google_genai import _hops, _patch

        tracer = _patch.Tracer(recorder)
        for class_name, method, operation_name, is_async in _METHODS:
            operation = getattr(_patch, operation_name)
            wrapper = tracer.async_wrapper(operation) if is_async else tracer.sync_wrapper(operation)
            yield _MODULE, class_name, method, wrapper
        for class_name, is_async in _HOPS:
            yield _MODULE, class_name, "_generate_content", _hops.note_async if is_async else _hops.note_sync


__all__ = ["GoogleGenAIInstrumentor"]
