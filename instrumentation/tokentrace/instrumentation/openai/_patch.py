"""The wrappers put around OpenAI's resource methods, one per API shape.

An :class:`Operation` names what differs between the APIs (how to describe a request, how to read
a result, how to read a stream's chunks); the wrapper logic that is the same for all of them lives
here once, on top of :mod:`tokentrace.core.invoke`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import openai
import pydantic

from tokentrace.core.call import GenAICall
from tokentrace.core.recorder import Recorder
from tokentrace.core.safety import swallow
from tokentrace.core.stream import TracedAsyncStream, TracedStream
from tokentrace.core.wrapping import MULTI_PROVIDER_INSTRUMENTATIONS, operation_wrapper
from tokentrace.instrumentation.openai import _requests, _responses
from tokentrace.instrumentation.openai._provider import Endpoint, EndpointCache
from tokentrace.instrumentation.openai._raw import (
    TracedAsyncRawResponse,
    TracedRawResponse,
    raw_response_kind,
)

Observer = Callable[[GenAICall, Any], None]

# Other GenAI instrumentations that wrap the same methods; when one sits inside our wrapper we
# call past it so each call still yields one span (see README, "Other instrumentations").
_OTHER_INSTRUMENTATIONS = (
    "opentelemetry.instrumentation.openai",
    "opentelemetry.instrumentation.genai",
    "openinference.instrumentation.openai",
    *MULTI_PROVIDER_INSTRUMENTATIONS,
)


@dataclass(frozen=True)
class Operation:
    describe: Callable[..., GenAICall]
    apply: Callable[[GenAICall, Any, bool], None]
    stream_observer: Callable[[GenAICall, bool], Observer] | None = None
    usage_chunk_injectable: bool = False


CHAT = Operation(_requests.describe_chat, _responses.apply_chat_completion, _responses.chat_chunk_observer, True)
RESPONSES = Operation(_requests.describe_responses, _responses.apply_response, _responses.responses_event_observer)
EMBEDDINGS = Operation(_requests.describe_embeddings, _responses.apply_embeddings)
COMPLETIONS = Operation(
    _requests.describe_completions, _responses.apply_completion, _responses.completion_chunk_observer, True
)


class _Tracer:
    """Shared state of every OpenAI wrapper of one instrumentor."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.endpoints = EndpointCache()
        settings = recorder.settings
        self.capture = settings.capture_content.enabled
        self.include_usage = settings.stream_include_usage

    def describe(self, operation: Operation, instance: Any, kwargs: dict[str, Any]):
        client = getattr(instance, "_client", None)
        endpoint = self.endpoints.lookup(client) if client is not None else Endpoint("openai", None, None)
        call = operation.describe(endpoint, kwargs, capture=self.capture)
        if call.stream and self.include_usage and operation.usage_chunk_injectable:
            kwargs, hide = _requests.with_stream_usage(kwargs)
            call.provider_state = hide
        return call, kwargs

    # -- results ----------------------------------------------------------------------------------

    def traced_stream(self, operation: Operation, call: GenAICall, stream: Any) -> Any:
        observer = operation.stream_observer(call, self.capture) if operation.stream_observer else _ignore
        hide = _responses.hide_usage_only_chunk if call.provider_state is True else None
        proxy = TracedAsyncStream if isinstance(stream, openai.AsyncStream) else TracedStream
        return proxy(stream, call, self.recorder, observer, hide)

    def on_parsed(self, operation: Operation, call: GenAICall, parsed: Any) -> Any:
        if isinstance(parsed, (openai.Stream, openai.AsyncStream)):
            return self.traced_stream(operation, call, parsed)
        if not call.ended:
            operation.apply(call, parsed, self.capture)
            self.recorder.finish(call)
        return parsed

    def handle(self, operation: Operation, call: GenAICall, result: Any) -> Any:
        if not isinstance(result, pydantic.BaseModel):  # a parsed result (the common case) is read below
            if isinstance(result, (openai.Stream, openai.AsyncStream)):
                return self.traced_stream(operation, call, result)
            kind = raw_response_kind(result)
            if kind == "legacy" and not call.stream:
                self.on_parsed(operation, call, result.parse())  # the SDK caches it for the app's parse()
                return result
            if kind in ("legacy", "sync"):
                return TracedRawResponse(result, call, self.recorder, lambda c, p: self.on_parsed(operation, c, p))
            if kind == "async":
                return TracedAsyncRawResponse(result, call, self.recorder, lambda c, p: self.on_parsed(operation, c, p))
        operation.apply(call, result, self.capture)
        self.recorder.finish(call)
        return result

    # -- wrappers ---------------------------------------------------------------------------------

    def sync_wrapper(self, operation: Operation) -> Callable[..., Any]:
        return operation_wrapper(self, operation, is_async=False, others=_OTHER_INSTRUMENTATIONS)

    def async_wrapper(self, operation: Operation) -> Callable[..., Any]:
        return operation_wrapper(self, operation, is_async=True, others=_OTHER_INSTRUMENTATIONS)


def _ignore(call: GenAICall, chunk: Any) -> None:
    return None


def end_helper_stream_on_close(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """The SDK's helper streams close the HTTP response directly; end our traced stream too."""
    try:
        return wrapped(*args, **kwargs)
    finally:
        with swallow("ending a helper stream"):  # the app's close() result or exception, never ours
            _end_raw_stream(instance)


async def end_async_helper_stream_on_close(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    try:
        return await wrapped(*args, **kwargs)
    finally:
        with swallow("ending a helper stream"):
            _end_raw_stream(instance)


def _end_raw_stream(helper: Any) -> None:
    raw = getattr(helper, "_raw_stream", None)
    if isinstance(raw, (TracedStream, TracedAsyncStream)):
        raw.tokentrace_end()
