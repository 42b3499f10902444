"""Anthropic auto-instrumentation: every Messages call of the ``anthropic`` SDK (first party,
``AnthropicBedrock``, ``AnthropicVertex``; sync and async; ``create``, ``stream=True``, the
``messages.stream()`` helper, ``parse``, and the ``beta.messages`` equivalents) becomes one GenAI
span with exact tokens (cache reads/writes included per the conventions' Anthropic rule), cost from
genai-prices and the conventions' metrics.

When the SDK traces itself (anthropic>=2 with a tracer provider), its span and ours are one: see
:mod:`._native`. Zero code: ``opentelemetry-instrument python app.py`` (entry point
``tokentrace_anthropic``); in code: ``AnthropicInstrumentor().instrument()``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

from wrapt import wrap_function_wrapper

from tokentrace.core.instrumentor import LibraryInstrumentor, Target, resolve_class
from tokentrace.core.recorder import Recorder

SCOPE = "tokentrace.instrumentation.anthropic"
_INSTRUMENTS = ("anthropic >= 0.40",)

_MESSAGES_MODULES = (
    "anthropic.resources.messages.messages",
    "anthropic.resources.messages",  # anthropic<0.49: one module
    "anthropic.resources.beta.messages.messages",
    "anthropic.resources.beta.prompt_caching.messages",  # anthropic 0.3x-0.4x prompt caching beta
)
# The SDK's own span of an API call (anthropic>=2): handed our span instead, see _native.
_NATIVE_SPAN_START = ("anthropic._base_client", "start_api_call_span")


class AnthropicInstrumentor(LibraryInstrumentor):
    """Instruments the ``anthropic`` package; a singleton, so instrumenting twice is a no-op."""

    SCOPE = SCOPE
    INSTRUMENTS = _INSTRUMENTS

    def targets(self, recorder: Recorder) -> Iterator[Target]:
        from tokentrace.instrumentation.anthropic._patch import Tracer

        tracer = Tracer(recorder)
        seen: set[tuple[int, str]] = set()
        for module in _MESSAGES_MODULES:
            for class_name, method, wrapper in (
                ("Messages", "create", tracer.create()),
                ("AsyncMessages", "create", tracer.async_create()),
                ("Messages", "parse", tracer.create()),
                ("AsyncMessages", "parse", tracer.async_create()),
                ("Messages", "stream", tracer.stream()),
                ("AsyncMessages", "stream", tracer.stream()),
            ):
                cls = resolve_class(module, class_name, method)
                if cls is None or (id(cls), method) in seen:
                    continue  # missing in this SDK version, or the same class re-exported by another module
                seen.add((id(cls), method))
                yield module, class_name, method, wrapper
        from tokentrace.instrumentation.anthropic import _legacy

        yield from _legacy.targets()

    def _instrument(self, **kwargs: Any) -> None:
        super()._instrument(**kwargs)
        module_name, function = _NATIVE_SPAN_START
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            return
        if callable(getattr(module, function, None)):
            from tokentrace.instrumentation.anthropic._native import hand_over_span

            wrap_function_wrapper(module, function, hand_over_span)
            self._patched.append((module, function))


__all__ = ["AnthropicInstrumentor"]
