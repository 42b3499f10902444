"""The wrappers put around Cohere's v2 methods.

``chat`` and ``embed`` return a result; ``chat_stream`` is a generator function (an async generator
function on ``AsyncV2Client``), so its call only creates the generator and the HTTP request (and any
HTTP error) happens on the first iteration. Both stream flavours are therefore wrapped with the
synchronous wrapper and returned inside a stream proxy that ends the span whichever way iteration ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tokentrace.core.call import GenAICall
from tokentrace.core.recorder import Recorder
from tokentrace.core.stream import TracedAsyncStream, TracedStream
from tokentrace.core.wrapping import MULTI_PROVIDER_INSTRUMENTATIONS, async_wrapper, sync_wrapper
from tokentrace.instrumentation.cohere import _requests, _responses

# Other GenAI instrumentations of the same methods; when one sits inside ours we call past it.
OTHER_INSTRUMENTATIONS = (
    "opentelemetry.instrumentation.cohere",
    "openinference.instrumentation",
    *MULTI_PROVIDER_INSTRUMENTATIONS,
)


class Wrappers:
    """The wrapt wrappers of one instrumentor, sharing its recorder and content setting."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.capture = recorder.settings.capture_content.enabled

    # -- describe ---------------------------------------------------------------------------------

    def _describe_chat(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]):
        return _requests.describe_chat(instance, kwargs, stream=False, capture=self.capture), kwargs

    def _describe_chat_stream(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]):
        return _requests.describe_chat(instance, kwargs, stream=True, capture=self.capture), kwargs

    def _describe_embed(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]):
        return _requests.describe_embed(instance, kwargs, capture=self.capture), kwargs

    # -- results ----------------------------------------------------------------------------------

    def _finisher(self, apply: Callable[[GenAICall, Any, bool], None]) -> Callable[[GenAICall, Any], Any]:
        def handle(call: GenAICall, result: Any) -> Any:
            apply(call, result, self.capture)
            self.recorder.finish(call)
            return result

        return handle

    def _async_finisher(self, apply: Callable[[GenAICall, Any, bool], None]) -> Callable[[GenAICall, Any], Any]:
        handle = self._finisher(apply)

        async def async_handle(call: GenAICall, result: Any) -> Any:
            return handle(call, result)

        return async_handle

    def _stream(self, call: GenAICall, stream: Any) -> Any:
        observer = _responses.chat_event_observer(call, self.capture)
        return TracedStream(stream, call, self.recorder, observer)

    def _async_stream(self, call: GenAICall, stream: Any) -> Any:
        observer = _responses.chat_event_observer(call, self.capture)
        return TracedAsyncStream(stream, call, self.recorder, observer)

    # -- wrappers ---------------------------------------------------------------------------------

    def chat(self) -> Callable[..., Any]:
        return sync_wrapper(
            self.recorder, self._describe_chat, self._finisher(_responses.apply_chat), OTHER_INSTRUMENTATIONS
        )

    def chat_stream(self) -> Callable[..., Any]:
        return sync_wrapper(self.recorder, self._describe_chat_stream, self._stream, OTHER_INSTRUMENTATIONS)

    def embed(self) -> Callable[..., Any]:
        return sync_wrapper(
            self.recorder, self._describe_embed, self._finisher(_responses.apply_embed), OTHER_INSTRUMENTATIONS
        )

    def async_chat(self) -> Callable[..., Any]:
        return async_wrapper(
            self.recorder, self._describe_chat, self._async_finisher(_responses.apply_chat), OTHER_INSTRUMENTATIONS
        )

    def async_chat_stream(self) -> Callable[..., Any]:
        return sync_wrapper(self.recorder, self._describe_chat_stream, self._async_stream, OTHER_INSTRUMENTATIONS)

    def async_embed(self) -> Callable[..., Any]:
        return async_wrapper(
            self.recorder, self._describe_embed, self._async_finisher(_responses.apply_embed), OTHER_INSTRUMENTATIONS
        )
