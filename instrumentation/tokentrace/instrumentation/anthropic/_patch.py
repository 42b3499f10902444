"""The wrappers around the Messages resources: ``create`` / ``parse`` and the ``stream()`` helper.

``create(stream=True)`` returns the SDK's ``Stream``; we return it behind
:class:`~tokentrace.core.stream.TracedStream`. ``stream()`` returns a ``MessageStreamManager`` that
makes the request only on ``with``/``async with``: we swap the manager's request for a traced one, so
the raw stream the helper reads is our proxy and ``text_stream``, ``get_final_message()``,
``until_done()``, ``close()`` and an early ``with`` exit all end the span through it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic

from tokentrace.core.call import GenAICall
from tokentrace.core.invoke import run_async, run_sync
from tokentrace.core.recorder import Recorder
from tokentrace.core.safety import report
from tokentrace.core.stream import TracedAsyncStream, TracedStream
from tokentrace.core.wrapping import MULTI_PROVIDER_INSTRUMENTATIONS, past_other_instrumentations
from tokentrace.instrumentation.anthropic import _legacy, _native, _requests, _responses

# async ``with_raw_response`` results, whose ``parse()`` must be awaited (older SDKs: a sync legacy response)
_ASYNC_RAW: Any = getattr(anthropic, "AsyncAPIResponse", ())

# Other GenAI instrumentations of the same methods: when one sits inside our wrapper we call past it.
_OTHER_INSTRUMENTATIONS = (
    "opentelemetry.instrumentation.anthropic",
    "openinference.instrumentation.anthropic",
    *MULTI_PROVIDER_INSTRUMENTATIONS,
)
_STREAM_TYPES = (anthropic.Stream, anthropic.AsyncStream)


class Tracer:
    """What every Anthropic wrapper of one instrumentor shares."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.capture = recorder.settings.capture_content.enabled
        self.legacy_helpers = _legacy.rebuilds_from_response()

    # -- results ----------------------------------------------------------------------------------

    def handle(self, call: GenAICall, result: Any) -> Any:
        if isinstance(result, _STREAM_TYPES):
            reader = _responses.StreamReader(call, self.capture)
            proxy = TracedAsyncStream if isinstance(result, anthropic.AsyncStream) else TracedStream
            return proxy(result, call, self.recorder, reader.observe)
        if hasattr(result, "http_response") and hasattr(result, "parse"):
            self._raw(call, result)
            return result
        if not call.ended:
            _responses.apply_message(call, result, self.capture)
            self.recorder.finish(call)
        return result

    def _raw(self, call: GenAICall, raw: Any, parsed: Any = None) -> None:
        """``with_raw_response``: a body already read is parsed (the SDK caches it for the app);
        an unread or streamed body (``with_streaming_response``) ends the call with no usage.
        ``parsed``: the async response's parse, awaited by the caller."""
        if parsed is None and not call.stream and getattr(raw.http_response, "is_closed", False):
            parsed = raw.parse()
        if parsed is not None:
            _responses.apply_message(call, parsed, self.capture)
        self.recorder.finish(call)

    # -- wrappers ---------------------------------------------------------------------------------

    def _describe(self, stream: bool) -> Callable[..., Any]:
        def describe(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            call = _requests.describe(instance, kwargs, stream=stream, capture=self.capture)
            holder = _native.pending.get()
            if holder is not None:
                holder.append(call)
            return call, kwargs

        return describe

    def _run(self, describe: Callable[..., Any], wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        token = _native.pending.set([])
        try:
            return run_sync(self.recorder, describe, wrapped, instance, args, kwargs, self.handle)
        finally:
            _native.pending.reset(token)

    async def _run_async(
        self, describe: Callable[..., Any], wrapped: Any, instance: Any, args: Any, kwargs: Any
    ) -> Any:
        async def handle(call: GenAICall, result: Any) -> Any:
            if isinstance(result, _ASYNC_RAW):  # with_raw_response: its parse() is a coroutine
                parsed = None
                if not call.stream and getattr(result.http_response, "is_closed", False):
                    parsed = await result.parse()  # cached by the SDK: the app's own parse() gets the same
                self._raw(call, result, parsed)
                return result
            return self.handle(call, result)

        token = _native.pending.set([])
        try:
            return await run_async(self.recorder, describe, wrapped, instance, args, kwargs, handle)
        finally:
            _native.pending.reset(token)

    def create(self) -> Callable[..., Any]:
        describe = self._describe(stream=False)

        def traced_create(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            wrapped = past_other_instrumentations(wrapped, _OTHER_INSTRUMENTATIONS)
            return self._run(describe, wrapped, instance, args, kwargs)

        return traced_create

    def async_create(self) -> Callable[..., Any]:
        describe = self._describe(stream=False)

        async def traced_async_create(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            wrapped = past_other_instrumentations(wrapped, _OTHER_INSTRUMENTATIONS)
            return await self._run_async(describe, wrapped, instance, args, kwargs)

        return traced_async_create

    def stream(self) -> Callable[..., Any]:
        """``messages.stream(...)``: the manager is returned as is, with its request traced."""
        describe = self._describe(stream=True)

        def traced_stream(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            wrapped = past_other_instrumentations(wrapped, _OTHER_INSTRUMENTATIONS)
            manager = wrapped(*args, **kwargs)
            try:
                name = _request_attribute(manager)
                if name is not None:
                    original = getattr(manager, name)
                    setattr(manager, name, self._traced_request(describe, original, instance, kwargs))
            except Exception:
                report("tracing a stream helper")
            return manager

        return traced_stream

    def _traced_request(self, describe: Callable[..., Any], original: Any, instance: Any, kwargs: Any) -> Any:
        if callable(original):  # sync manager: ``self.__api_request()`` on enter

            def traced_request() -> Any:
                stream = self._run(describe, lambda **_: original(), instance, (), dict(kwargs))
                if self.legacy_helpers:  # an old SDK's helper re-reads the response: hand it ours
                    _legacy.entering.set(stream)
                return stream

            return traced_request

        async def traced_async_request() -> Any:  # async manager: ``await self.__api_request`` on enter
            stream = await self._run_async(describe, lambda **_: original, instance, (), dict(kwargs))
            if self.legacy_helpers:
                _legacy.entering.set(stream)
            return stream

        return traced_async_request()


def _request_attribute(manager: Any) -> str | None:
    """The (name-mangled) attribute holding a stream manager's pending request."""
    for name in vars(manager):
        if name.endswith("__api_request"):
            return name
    return None
