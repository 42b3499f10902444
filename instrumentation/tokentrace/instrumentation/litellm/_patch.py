"""The wrappers put around ``litellm.completion`` / ``acompletion`` / ``embedding`` / ``aembedding``.

They are the core's wrappers (:mod:`tokentrace.core.wrapping`) with ``router=True``: the
SDK calls LiteLLM makes underneath (the openai SDK for OpenAI models), when tokentrace instruments
them too, merge their exact provider-level detail into this call rather than opening a second span.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import litellm

from tokentrace.core.call import GenAICall
from tokentrace.core.recorder import Recorder
from tokentrace.core.wrapping import MULTI_PROVIDER_INSTRUMENTATIONS, async_wrapper, sync_wrapper
from tokentrace.instrumentation.litellm import _responses
from tokentrace.instrumentation.litellm._stream import TracedLiteLLMStream

# Other GenAI instrumentations of LiteLLM: when one sits inside our wrapper, call past it.
_OTHER_INSTRUMENTATIONS = (
    "opentelemetry.instrumentation.litellm",
    "openinference.instrumentation.litellm",
    *MULTI_PROVIDER_INSTRUMENTATIONS,
)

# The class behind every ``stream=True`` result, as the package exports it.
_STREAM_CLASS: type = litellm.CustomStreamWrapper

Describe = Callable[..., GenAICall]
Apply = Callable[[GenAICall, Any, bool], None]


class _Tracer:
    """Shared state of the LiteLLM wrappers of one instrumentor."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.capture = recorder.settings.capture_content.enabled

    def handle(self, apply: Apply, call: GenAICall, result: Any) -> Any:
        if isinstance(result, _STREAM_CLASS):
            observer = _responses.chunk_observer(call, self.capture)
            return TracedLiteLLMStream(result, call, self.recorder, observer)
        apply(call, result, self.capture)
        self.recorder.finish(call)
        return result

    def _describe(self, describe: Describe) -> Callable[..., tuple[GenAICall, dict[str, Any]]]:
        capture = self.capture

        def describe_call(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]):
            return describe(args, kwargs, capture=capture), kwargs

        return describe_call

    def sync_wrapper(self, describe: Describe, apply: Apply) -> Callable[..., Any]:
        def handle(call: GenAICall, result: Any) -> Any:
            return self.handle(apply, call, result)

        return sync_wrapper(self.recorder, self._describe(describe), handle, _OTHER_INSTRUMENTATIONS, router=True)

    def async_wrapper(self, describe: Describe, apply: Apply) -> Callable[..., Any]:
        async def handle(call: GenAICall, result: Any) -> Any:
            return self.handle(apply, call, result)

        return async_wrapper(self.recorder, self._describe(describe), handle, _OTHER_INSTRUMENTATIONS, router=True)
