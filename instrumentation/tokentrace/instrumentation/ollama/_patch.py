"""The wrappers put around Ollama's client methods.

With ``stream=True`` Ollama returns a generator (an async generator on ``AsyncClient``) that sends the
request on its first iteration, so HTTP errors and a refused connection surface there, not at the
call; the generator is returned inside a stream proxy that ends the span whichever way iteration ends.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from tokentrace.core.call import GenAICall
from tokentrace.core.recorder import Recorder
from tokentrace.core.stream import TracedAsyncStream, TracedStream
from tokentrace.core.wrapping import MULTI_PROVIDER_INSTRUMENTATIONS, async_wrapper, sync_wrapper
from tokentrace.instrumentation.ollama import _requests, _responses

OTHER_INSTRUMENTATIONS = (
    "opentelemetry.instrumentation.ollama",
    "openinference.instrumentation",
    *MULTI_PROVIDER_INSTRUMENTATIONS,
)

_APPLY = {
    "chat": _responses.apply_chat,
    "generate": _responses.apply_generate,
    "embed": _responses.apply_embed,
    "embeddings": _responses.apply_embed,
}


class Wrappers:
    """The wrapt wrappers of one instrumentor, sharing its recorder and content setting."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.capture = recorder.settings.capture_content.enabled

    def _describer(self, method: str) -> Callable[..., Any]:
        def describe(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]):
            return _requests.describe(method, instance, args, kwargs, capture=self.capture), kwargs

        return describe

    def _handler(self, method: str) -> Callable[[GenAICall, Any], Any]:
        def handle(call: GenAICall, result: Any) -> Any:
            if inspect.isgenerator(result):
                observer = _responses.part_observer(method, call, self.capture)
                return TracedStream(result, call, self.recorder, observer)
            if inspect.isasyncgen(result):
                observer = _responses.part_observer(method, call, self.capture)
                return TracedAsyncStream(result, call, self.recorder, observer)
            _APPLY[method](call, result, self.capture)
            self.recorder.finish(call)
            return result

        return handle

    def sync(self, method: str) -> Callable[..., Any]:
        return sync_wrapper(self.recorder, self._describer(method), self._handler(method), OTHER_INSTRUMENTATIONS)

    def asynchronous(self, method: str) -> Callable[..., Any]:
        handle = self._handler(method)

        async def async_handle(call: GenAICall, result: Any) -> Any:
            return handle(call, result)

        return async_wrapper(self.recorder, self._describer(method), async_handle, OTHER_INSTRUMENTATIONS)
