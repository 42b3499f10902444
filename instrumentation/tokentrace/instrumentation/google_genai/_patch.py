"""The wrappers put around ``Models`` / ``AsyncModels`` methods.

An :class:`Operation` names what differs between methods (describe the request, read the result,
read a stream's chunks); the rest is :mod:`tokentrace.core.invoke` and :mod:`tokentrace.core.stream`.

Stream shapes: ``Models.generate_content_stream`` returns a generator (the request is sent on the
first ``next()``, so an HTTP error surfaces while iterating); ``AsyncModels.generate_content_stream``
is a coroutine whose result is an async generator. Both are proxied with the core's stream
proxies, so the span ends once on exhaustion, error, ``close()``/``aclose()``, cancellation or GC.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tokentrace.core.call import GenAICall
from tokentrace.core.recorder import Recorder
from tokentrace.core.stream import IfWrappedHas, TracedAsyncStream, TracedStream
from tokentrace.core.wrapping import MULTI_PROVIDER_INSTRUMENTATIONS, operation_wrapper
from tokentrace.instrumentation.google_genai import _hops, _requests, _responses

# Other GenAI instrumentations of these methods; when one sits inside our wrapper we call past it
# so each call still yields one span.
_OTHER_INSTRUMENTATIONS = (
    "opentelemetry.instrumentation.google_genai",
    "opentelemetry.instrumentation.genai",
    "openinference.instrumentation.google_genai",
    *MULTI_PROVIDER_INSTRUMENTATIONS,
)


@dataclass(frozen=True)
class Operation:
    describe: Callable[..., GenAICall]
    apply: Callable[[GenAICall, Any, bool], None]
    stream: bool = False
    collect_hops: bool = False  # sum the usage of every HTTP request the method sends (see _hops)


class GeneratorStream(TracedStream):
    """The core's stream proxy over ``generate_content_stream``'s generator, adding no method."""

    __enter__ = IfWrappedHas("__enter__", TracedStream.__enter__)
    __exit__ = IfWrappedHas("__exit__", TracedStream.__exit__)
    __aenter__ = IfWrappedHas("__aenter__")
    __aexit__ = IfWrappedHas("__aexit__")


class AsyncGeneratorStream(TracedAsyncStream):
    """The core's async stream proxy over the async generator: ``aclose()`` passes through (and ends
    the span); ``close()`` and the context-manager methods, which an async generator lacks, stay absent."""

    close = IfWrappedHas("close", TracedAsyncStream.close)
    __aenter__ = IfWrappedHas("__aenter__", TracedAsyncStream.__aenter__)
    __aexit__ = IfWrappedHas("__aexit__", TracedAsyncStream.__aexit__)
    __enter__ = IfWrappedHas("__enter__")
    __exit__ = IfWrappedHas("__exit__")


GENERATE = Operation(_requests.describe_generate, _responses.apply_generate, collect_hops=True)
GENERATE_STREAM = Operation(_requests.describe_generate, _responses.apply_generate, stream=True)
EMBED = Operation(_requests.describe_embed, _responses.apply_embed)


class Tracer:
    """Shared state of every google-genai wrapper of one instrumentor."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.capture = recorder.settings.capture_content.enabled

    def describe(self, operation: Operation, instance: Any, kwargs: dict[str, Any]) -> tuple[GenAICall, dict[str, Any]]:
        endpoint = _requests.endpoint_of(instance)
        call = operation.describe(endpoint, kwargs, stream=operation.stream, capture=self.capture)
        if operation.collect_hops:
            call.provider_state = _hops.current()
        return call, kwargs

    def handle(self, operation: Operation, call: GenAICall, result: Any) -> Any:
        if operation.stream:
            observer = _responses.chunk_observer(call, self.capture)
            if hasattr(result, "__anext__"):
                return AsyncGeneratorStream(result, call, self.recorder, observer)
            return GeneratorStream(result, call, self.recorder, observer)
        operation.apply(call, result, self.capture)
        self.recorder.finish(call)
        return result

    def sync_wrapper(self, operation: Operation) -> Callable[..., Any]:
        traced = operation_wrapper(self, operation, is_async=False, others=_OTHER_INSTRUMENTATIONS)
        if not operation.collect_hops:
            return traced

        def traced_collecting_hops(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            token = _hops.start()
            try:
                return traced(wrapped, instance, args, kwargs)
            finally:
                _hops.stop(token)

        return traced_collecting_hops

    def async_wrapper(self, operation: Operation) -> Callable[..., Any]:
        traced = operation_wrapper(self, operation, is_async=True, others=_OTHER_INSTRUMENTATIONS)
        if not operation.collect_hops:
            return traced

        async def traced_collecting_hops(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            token = _hops.start()
            try:
                return await traced(wrapped, instance, args, kwargs)
            finally:
                _hops.stop(token)

        return traced_collecting_hops
