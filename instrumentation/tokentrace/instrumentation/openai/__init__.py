"""OpenAI auto-instrumentation: every call of the ``openai`` SDK (1.x, 2.x, 3.x) becomes a GenAI span
with exact tokens, cost and the conventions' metrics.

Zero code: ``opentelemetry-instrument python app.py`` (entry point ``tokentrace_openai``).
One call: ``OpenAIInstrumentor().instrument()`` or :func:`tokentrace.instrument`.
"""

from __future__ import annotations

from collections.abc import Iterator

from tokentrace.core.instrumentor import LibraryInstrumentor, Target
from tokentrace.core.recorder import Recorder

_INSTRUMENTS = ("openai >= 1.40",)
SCOPE = "tokentrace.instrumentation.openai"

# (module, class, method, operation name in _patch, async?)
_METHODS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("openai.resources.chat.completions", "Completions", "create", "CHAT", False),
    ("openai.resources.chat.completions", "AsyncCompletions", "create", "CHAT", True),
    ("openai.resources.chat.completions", "Completions", "parse", "CHAT", False),
    ("openai.resources.chat.completions", "AsyncCompletions", "parse", "CHAT", True),
    ("openai.resources.beta.chat.completions", "Completions", "parse", "CHAT", False),
    ("openai.resources.beta.chat.completions", "AsyncCompletions", "parse", "CHAT", True),
    ("openai.resources.responses", "Responses", "create", "RESPONSES", False),
    ("openai.resources.responses", "AsyncResponses", "create", "RESPONSES", True),
    ("openai.resources.responses", "Responses", "parse", "RESPONSES", False),
    ("openai.resources.responses", "AsyncResponses", "parse", "RESPONSES", True),
    ("openai.resources.embeddings", "Embeddings", "create", "EMBEDDINGS", False),
    ("openai.resources.embeddings", "AsyncEmbeddings", "create", "EMBEDDINGS", True),
    ("openai.resources.completions", "Completions", "create", "COMPLETIONS", False),
    ("openai.resources.completions", "AsyncCompletions", "create", "COMPLETIONS", True),
)
# Helper streams (``.stream()``) close the HTTP response themselves.
_HELPER_CLOSES: tuple[tuple[str, str, bool], ...] = (
    ("openai.lib.streaming.chat._completions", "ChatCompletionStream", False),
    ("openai.lib.streaming.chat._completions", "AsyncChatCompletionStream", True),
    ("openai.lib.streaming.responses._responses", "ResponseStream", False),
    ("openai.lib.streaming.responses._responses", "AsyncResponseStream", True),
)


class OpenAIInstrumentor(LibraryInstrumentor):
    """Instruments the ``openai`` package; a singleton, so instrumenting twice is a no-op."""

    SCOPE = SCOPE
    INSTRUMENTS = _INSTRUMENTS

    def targets(self, recorder: Recorder) -> Iterator[Target]:
        from tokentrace.instrumentation.openai import _patch

        tracer = _patch._Tracer(recorder)
        for module_name, class_name, method, operation_name, is_async in _METHODS:
            operation = getattr(_patch, operation_name)
            wrapper = tracer.async_wrapper(operation) if is_async else tracer.sync_wrapper(operation)
            yield module_name, class_name, method, wrapper
        for module_name, class_name, is_async in _HELPER_CLOSES:
            wrapper = _patch.end_async_helper_stream_on_close if is_async else _patch.end_helper_stream_on_close
            yield module_name, class_name, "close", wrapper


__all__ = ["OpenAIInstrumentor"]
