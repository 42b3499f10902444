"""Ollama auto-instrumentation: every ``chat``, ``generate``, ``embed`` and ``embeddings`` call of the
``ollama`` SDK (``Client``, ``AsyncClient`` and the module-level ``ollama.chat(...)`` functions) becomes
a GenAI span with the token counts Ollama reports, its server-side timings, and a cost only where the
user's price file prices the local model.

Zero code: ``opentelemetry-instrument python app.py`` (entry point ``tokentrace_ollama``).
One call: ``OllamaInstrumentor().instrument()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tokentrace.core.instrumentor import LibraryInstrumentor, Target
from tokentrace.core.recorder import Recorder

SCOPE = "tokentrace.instrumentation.ollama"
# 0.4 made responses typed (pydantic models with attribute access), which the readers rely on.
_INSTRUMENTS = ("ollama >= 0.4",)
_MODULE = "ollama._client"
_METHODS = ("chat", "generate", "embed", "embeddings")


class OllamaInstrumentor(LibraryInstrumentor):
    """Instruments the ``ollama`` package; a singleton, so instrumenting twice is a no-op."""

    SCOPE = SCOPE
    INSTRUMENTS = _INSTRUMENTS

    def targets(self, recorder: Recorder) -> Iterator[Target]:
        from tokentrace.instrumentation.ollama import _patch

        wrappers = _patch.Wrappers(recorder)
        for method in _METHODS:
            yield _MODULE, "Client", method, wrappers.sync(method)
            yield _MODULE, "AsyncClient", method, wrappers.asynchronous(method)

    def _instrument(self, **kwargs: Any) -> None:
        super()._instrument(**kwargs)
        self._rebind_module_functions()

    def _uninstrument(self, **kwargs: Any) -> None:
        super()._uninstrument(**kwargs)
        self._restore_module_functions()

    # ``ollama.chat`` and friends are bound methods of a default Client taken at import, before any
    # patching; rebinding them through the (now wrapped) class makes ``ollama.chat(...)`` traced too.
    def _rebind_module_functions(self) -> None:
        self._module_originals: dict[str, Any] = {}
        try:
            import ollama
        except ImportError:  # pragma: no cover - the launcher checks the dependency first
            return
        default = getattr(ollama, "_client", None)
        if default is None:
            return
        for method in _METHODS:
            original = getattr(ollama, method, None)
            if getattr(original, "__self__", None) is default:
                self._module_originals[method] = original
                setattr(ollama, method, getattr(default, method))

    def _restore_module_functions(self) -> None:
        import ollama

        for method, original in getattr(self, "_module_originals", {}).items():
            setattr(ollama, method, original)
        self._module_originals = {}


__all__ = ["OllamaInstrumentor"]
