"""LiteLLM auto-instrumentation: ``litellm.completion`` / ``acompletion`` (streamed or not) and
``litellm.embedding`` / ``aembedding`` become one GenAI span each, with the provider LiteLLM routed
to as ``gen_ai.provider.name``, exact tokens, and LiteLLM's own cost where it computed one.

When tokentrace also instruments the SDK LiteLLM calls underneath (the openai SDK for ``openai/``
models), that inner call records nothing of its own: its provider-level detail (dated response
model, response id, usage, server) is merged into the LiteLLM span. See docs/providers/litellm.md.

Zero code: ``opentelemetry-instrument python app.py`` (entry point ``tokentrace_litellm``).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

from wrapt import wrap_function_wrapper

from tokentrace.core.instrumentor import LibraryInstrumentor, Target
from tokentrace.core.recorder import Recorder

_INSTRUMENTS = ("litellm >= 1.50",)
SCOPE = "tokentrace.instrumentation.litellm"

# Module-level functions of the ``litellm`` package: (name, request kind, async?).
FUNCTIONS: tuple[tuple[str, str, bool], ...] = (
    ("completion", "completion", False),
    ("acompletion", "completion", True),
    ("embedding", "embedding", False),
    ("aembedding", "embedding", True),
)


class LiteLLMInstrumentor(LibraryInstrumentor):
    """Instruments the ``litellm`` package's public call functions; a singleton.

    They are module functions rather than methods, so they are wrapped on the ``litellm`` module
    here instead of through :meth:`targets` (which resolves classes). Code that did
    ``from litellm import completion`` before instrumenting keeps the unwrapped function.
    """

    SCOPE = SCOPE
    INSTRUMENTS = _INSTRUMENTS

    def targets(self, recorder: Recorder) -> Iterator[Target]:
        return iter(())

    def _instrument(self, **kwargs: Any) -> None:
        super()._instrument(**kwargs)
        from tokentrace.instrumentation.litellm import _patch, _requests, _responses

        module = importlib.import_module("litellm")
        tracer = _patch._Tracer(self.recorder)
        for name, kind, is_async in FUNCTIONS:
            if not callable(vars(module).get(name)):
                continue
            describe = _requests.describe_completion if kind == "completion" else _requests.describe_embedding
            apply = _responses.apply_completion if kind == "completion" else _responses.apply_embedding
            wrapper = tracer.async_wrapper(describe, apply) if is_async else tracer.sync_wrapper(describe, apply)
            wrap_function_wrapper(module, name, wrapper)
            self._patched.append((module, name))


__all__ = ["LiteLLMInstrumentor"]
