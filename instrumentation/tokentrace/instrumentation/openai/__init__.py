"""OpenAI auto-instrumentation: every call of the ``openai`` SDK (1.x, 2.x, 3.x) becomes a GenAI span
with exact tokens, cost and the conventions' metrics.

Zero code: ``opentelemetry-instrument python app.py`` (entry point ``tokentrace_openai``).
One call: ``OpenAIInstrumentor().instrument()`` or :func:`tokentrace.instrument`.
"""

from __future__ import annotations

import importlib
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap
from wrapt import wrap_function_wrapper

from tokentrace.core.recorder import Recorder
from tokentrace.core.settings import Settings

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


def _resolve(module_name: str, class_name: str, method: str) -> Any | None:
    """The class whose own ``__dict__`` defines ``method``, or None where this SDK version lacks it."""
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    cls = getattr(module, class_name, None)
    if cls is None or method not in vars(cls):
        return None
    return cls


class OpenAIInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments the ``openai`` package; a singleton, so instrumenting twice is a no-op."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return _INSTRUMENTS

    def _instrument(self, **kwargs: Any) -> None:
        from tokentrace.instrumentation.openai import _patch

        recorder = Recorder(
            SCOPE,
            tracer_provider=kwargs.get("tracer_provider"),
            meter_provider=kwargs.get("meter_provider"),
            logger_provider=kwargs.get("logger_provider"),
            settings=kwargs.get("settings") or Settings.from_environment(),
        )
        if recorder.settings.estimate_tokens:
            recorder.estimator.prefetch()
        tracer = _patch._Tracer(recorder)
        self._patched: list[tuple[Any, str]] = []
        seen: set[int] = set()
        for module_name, class_name, method, operation_name, is_async in _METHODS:
            cls = _resolve(module_name, class_name, method)
            if cls is None or id(vars(cls)[method]) in seen:
                continue
            seen.add(id(vars(cls)[method]))
            operation = getattr(_patch, operation_name)
            wrapper = tracer.async_wrapper(operation) if is_async else tracer.sync_wrapper(operation)
            wrap_function_wrapper(cls, method, wrapper)
            self._patched.append((cls, method))
        for module_name, class_name, is_async in _HELPER_CLOSES:
            cls = _resolve(module_name, class_name, "close")
            if cls is None:
                continue
            wrapper = _patch.end_async_helper_stream_on_close if is_async else _patch.end_helper_stream_on_close
            wrap_function_wrapper(cls, "close", wrapper)
            self._patched.append((cls, "close"))

    def _uninstrument(self, **kwargs: Any) -> None:
        for cls, method in getattr(self, "_patched", ()):
            unwrap(cls, method)
        self._patched = []


__all__ = ["OpenAIInstrumentor"]
