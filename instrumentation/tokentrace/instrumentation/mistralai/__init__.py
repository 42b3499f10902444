"""Mistral auto-instrumentation: calls of the ``mistralai`` SDK (1.x and later, Speakeasy-generated)
become GenAI spans with exact tokens, cost and the conventions' metrics.

Zero code: ``opentelemetry-instrument python app.py`` (entry point ``tokentrace_mistralai``).
One call: ``MistralInstrumentor().instrument()``.

The SDK moved its modules from ``mistralai.*`` (1.x) to ``mistralai.client.*`` (2.x and later);
both layouts are listed and whichever the installed version has is wrapped.
"""

from __future__ import annotations

from collections.abc import Iterator

from tokentrace.core.instrumentor import LibraryInstrumentor, Target
from tokentrace.core.recorder import Recorder

SCOPE = "tokentrace.instrumentation.mistralai"
_INSTRUMENTS = ("mistralai >= 1.0",)

# (module, class, method, operation in _patch, async?) for both package layouts.
_METHODS: tuple[tuple[str, str, str, str, bool], ...] = tuple(
    (f"{package}.{module}", cls, method, operation, is_async)
    for package in ("mistralai.client", "mistralai")
    for module, cls, method, operation, is_async in (
        ("chat", "Chat", "complete", "CHAT", False),
        ("chat", "Chat", "complete_async", "CHAT", True),
        ("chat", "Chat", "stream", "CHAT_STREAM", False),
        ("chat", "Chat", "stream_async", "CHAT_STREAM", True),
        ("embeddings", "Embeddings", "create", "EMBEDDINGS", False),
        ("embeddings", "Embeddings", "create_async", "EMBEDDINGS", True),
    )
)


class MistralInstrumentor(LibraryInstrumentor):
    """Instruments the ``mistralai`` package; a singleton, so instrumenting twice is a no-op."""

    SCOPE = SCOPE
    INSTRUMENTS = _INSTRUMENTS

    def targets(self, recorder: Recorder) -> Iterator[Target]:
        from tokentrace.instrumentation.mistralai import _patch

        wrappers = _patch.Wrappers(recorder)
        for module_name, class_name, method, operation, is_async in _METHODS:
            yield module_name, class_name, method, wrappers.make(getattr(_patch, operation), is_async)


__all__ = ["MistralInstrumentor"]
