"""The wrappers put around ``mistralai``'s ``Chat`` and ``Embeddings`` methods.

``stream`` / ``stream_async`` return an ``EventStream`` / ``EventStreamAsync`` of ``CompletionEvent``
items whose ``.data`` is an OpenAI-shaped chunk; the traced proxy reads ``.data`` and hands the
application the very events the SDK produced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tokentrace.core.call import GenAICall
from tokentrace.core.recorder import Recorder
from tokentrace.core.stream import TracedAsyncStream, TracedStream
from tokentrace.core.wrapping import MULTI_PROVIDER_INSTRUMENTATIONS, async_wrapper, sync_wrapper
from tokentrace.instrumentation import _chat_compat
from tokentrace.instrumentation.mistralai import _requests

# Other GenAI instrumentations of mistralai; when one sits inside our wrapper we call past it.
_OTHER_INSTRUMENTATIONS = (
    "opentelemetry.instrumentation.mistralai",
    "openinference.instrumentation.mistralai",
    *MULTI_PROVIDER_INSTRUMENTATIONS,
)


@dataclass(frozen=True)
class Operation:
    describe: Callable[..., GenAICall]
    apply: Callable[[GenAICall, Any, bool], None]
    stream: bool = False


def apply_chat(call: GenAICall, result: Any, capture: bool) -> None:
    _chat_compat.apply_chat_result(call, result, capture)


def apply_embeddings(call: GenAICall, result: Any, capture: bool) -> None:
    _chat_compat.apply_embeddings_result(call, result)


def event_observer(call: GenAICall, capture: bool) -> Callable[[GenAICall, Any], None]:
    """Reads each ``CompletionEvent``'s chunk; usage comes on the last one."""
    observe_chunk = _chat_compat.chat_chunk_observer(call, capture)

    def observe(call: GenAICall, event: Any) -> None:
        observe_chunk(call, event.data)

    return observe


CHAT = Operation(_requests.describe_chat, apply_chat)
CHAT_STREAM = Operation(_requests.describe_chat, apply_chat, stream=True)
EMBEDDINGS = Operation(_requests.describe_embeddings, apply_embeddings)


def server_of(instance: Any, kwargs: dict[str, Any]) -> _chat_compat.Server:
    """The server a call goes to: its own ``server_url`` or the client's configured one."""
    url = kwargs.get("server_url")
    if not isinstance(url, str) or not url:
        url = instance.sdk_configuration.get_server_details()[0]
    return _chat_compat.server_of(url)


class Wrappers:
    """Builds the wrapt wrappers of one instrumentor (one recorder, one content setting)."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.capture = recorder.settings.capture_content.enabled

    def describe(self, operation: Operation, instance: Any, kwargs: dict[str, Any]) -> tuple[GenAICall, dict]:
        call = operation.describe(kwargs, server_of(instance, kwargs), stream=operation.stream, capture=self.capture)
        return call, kwargs

    def handle(self, operation: Operation, call: GenAICall, result: Any, is_async: bool) -> Any:
        if operation.stream:
            proxy = TracedAsyncStream if is_async else TracedStream
            return proxy(result, call, self.recorder, event_observer(call, self.capture))
        operation.apply(call, result, self.capture)
        self.recorder.finish(call)
        return result

    def make(self, operation: Operation, is_async: bool) -> Callable[..., Any]:
        def describe(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[GenAICall, dict]:
            return self.describe(operation, instance, kwargs)

        if is_async:

            async def handle_async(call: GenAICall, result: Any) -> Any:
                return self.handle(operation, call, result, True)

            return async_wrapper(self.recorder, describe, handle_async, _OTHER_INSTRUMENTATIONS)

        def handle(call: GenAICall, result: Any) -> Any:
            return self.handle(operation, call, result, False)

        return sync_wrapper(self.recorder, describe, handle, _OTHER_INSTRUMENTATIONS)
