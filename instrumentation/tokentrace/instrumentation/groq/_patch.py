"""The wrappers put around ``groq``'s ``chat.completions.create`` and ``embeddings.create``.

Results are OpenAI-shaped, read by :mod:`tokentrace.instrumentation._chat_compat`. What is Groq's
own: a stream's usage arrives on its last chunk as ``x_groq.usage`` (``usage`` itself stays empty
unless the application asked for ``stream_options.include_usage``), so the chunk observer reads
both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import groq

from tokentrace.core.call import GenAICall
from tokentrace.core.recorder import Recorder
from tokentrace.core.stream import TracedAsyncStream, TracedStream
from tokentrace.core.wrapping import MULTI_PROVIDER_INSTRUMENTATIONS, async_wrapper, sync_wrapper
from tokentrace.instrumentation import _chat_compat
from tokentrace.instrumentation.groq import _requests

# Other GenAI instrumentations of groq; when one sits inside our wrapper we call past it.
_OTHER_INSTRUMENTATIONS = (
    "opentelemetry.instrumentation.groq",
    "openinference.instrumentation.groq",
    *MULTI_PROVIDER_INSTRUMENTATIONS,
)


@dataclass(frozen=True)
class Operation:
    describe: Callable[..., GenAICall]
    apply: Callable[[GenAICall, Any, bool], None]


def apply_chat(call: GenAICall, result: Any, capture: bool) -> None:
    _chat_compat.apply_chat_result(call, result, capture)


def apply_embeddings(call: GenAICall, result: Any, capture: bool) -> None:
    _chat_compat.apply_embeddings_result(call, result)


def chunk_observer(call: GenAICall, capture: bool) -> Callable[[GenAICall, Any], None]:
    """The shared Chat Completions observer plus Groq's ``x_groq.usage``."""
    observe_chunk = _chat_compat.chat_chunk_observer(call, capture)

    def observe(call: GenAICall, chunk: Any) -> None:
        observe_chunk(call, chunk)
        extra = getattr(chunk, "x_groq", None)
        if extra is not None and extra.usage is not None:
            _chat_compat.apply_chat_usage(call.usage, extra.usage)

    return observe


CHAT = Operation(_requests.describe_chat, apply_chat)
EMBEDDINGS = Operation(_requests.describe_embeddings, apply_embeddings)


def server_of(instance: Any) -> _chat_compat.Server:
    return _chat_compat.server_of(str(instance._client.base_url))


class Wrappers:
    """Builds the wrapt wrappers of one instrumentor (one recorder, one content setting)."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.capture = recorder.settings.capture_content.enabled

    def describe(self, operation: Operation, instance: Any, kwargs: dict[str, Any]) -> tuple[GenAICall, dict]:
        return operation.describe(kwargs, server_of(instance), capture=self.capture), kwargs

    def handle(self, operation: Operation, call: GenAICall, result: Any) -> Any:
        if isinstance(result, groq.Stream):
            return TracedStream(result, call, self.recorder, chunk_observer(call, self.capture))
        if isinstance(result, groq.AsyncStream):
            return TracedAsyncStream(result, call, self.recorder, chunk_observer(call, self.capture))
        if isinstance(result, groq.BaseModel):
            operation.apply(call, result, self.capture)
        # Anything else is a with_raw_response / with_streaming_response wrapper whose body the
        # application has not read yet: the span ends with the request side only.
        self.recorder.finish(call)
        return result

    def make(self, operation: Operation, is_async: bool) -> Callable[..., Any]:
        def describe(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[GenAICall, dict]:
            return self.describe(operation, instance, kwargs)

        if is_async:

            async def handle_async(call: GenAICall, result: Any) -> Any:
                return self.handle(operation, call, result)

            return async_wrapper(self.recorder, describe, handle_async, _OTHER_INSTRUMENTATIONS)

        def handle(call: GenAICall, result: Any) -> Any:
            return self.handle(operation, call, result)

        return sync_wrapper(self.recorder, describe, handle, _OTHER_INSTRUMENTATIONS)
