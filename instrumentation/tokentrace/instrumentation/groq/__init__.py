"""Groq auto-instrumentation: calls of the ``groq`` SDK become GenAI spans with exact tokens, cost
and the conventions' metrics.

Zero code: ``opentelemetry-instrument python app.py`` (entry point ``tokentrace_groq``).
One call: ``GroqInstrumentor().instrument()``.
"""

from __future__ import annotations

from collections.abc import Iterator

from tokentrace.core.instrumentor import LibraryInstrumentor, Target
from tokentrace.core.recorder import Recorder

SCOPE = "tokentrace.instrumentation.groq"
_INSTRUMENTS = ("groq >= 0.9",)

# (module, class, method, operation in _patch, async?)
_METHODS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("groq.resources.chat.completions", "Completions", "create", "CHAT", False),
    ("groq.resources.chat.completions", "AsyncCompletions", "create", "CHAT", True),
    ("groq.resources.embeddings", "Embeddings", "create", "EMBEDDINGS", False),
    ("groq.resources.embeddings", "AsyncEmbeddings", "create", "EMBEDDINGS", True),
)


class GroqInstrumentor(LibraryInstrumentor):
    """Instruments the ``groq`` package; a singleton, so instrumenting twice is a no-op."""

    SCOPE = SCOPE
    INSTRUMENTS = _INSTRUMENTS

    def targets(self, recorder: Recorder) -> Iterator[Target]:
        from tokentrace.instrumentation.groq import _patch

        wrappers = _patch.Wrappers(recorder)
        for module_name, class_name, method, operation, is_async in _METHODS:
            yield module_name, class_name, method, wrappers.make(getattr(_patch, operation), is_async)


__all__ = ["GroqInstrumentor"]
