"""One span per call when the SDK traces itself.

anthropic>=2 opens its own ``CLIENT`` span for every API call (``anthropic._base_client`` calls
``start_api_call_span`` inside ``client.request``) whenever OpenTelemetry has a tracer provider,
unless ``ANTHROPIC_OPEN_TELEMETRY=false`` or ``open_telemetry=False``. Our wrapper sits OUTSIDE that
(around ``messages.create``), so left alone every call would make two spans: ours and the SDK's as
its child, and a sampler or a cost roll-up would count the call twice.

We hand our span to the SDK instead: while a traced call is in flight, ``start_api_call_span`` gets a
tracer whose ``start_span`` returns OUR span (behind :class:`SdkSpanView`). The SDK then records its
own attributes (``http.*``, ``url.*``, ``anthropic.request.id``, ``anthropic.thinking.*``...) on our
span, and propagates its trace context, but cannot end it, set it OK, or write usage: the recorder
owns those, whichever ends first (the SDK ends its span when the response body ends; our stream
proxy when the application stops reading; non-streamed calls end inside the SDK before we return).
The result is exactly one span, with our name, scope, tokens, cost and metrics, plus the SDK's extras.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import wrapt
from opentelemetry.trace import INVALID_SPAN, Status, StatusCode

from tokentrace.core import semconv
from tokentrace.core.call import GenAICall
from tokentrace.core.safety import report

# The call whose SDK request is being made in this thread/task (a one-element list, emptied once the
# SDK's span start claims it, so retries or nested requests never claim it again).
pending: ContextVar[list[GenAICall] | None] = ContextVar("tokentrace_anthropic_pending", default=None)

# Attributes only the recorder writes: the SDK reads usage its own way (and under development names).
_OURS = frozenset(
    {
        semconv.OPERATION_NAME,
        semconv.PROVIDER_NAME,
        semconv.REQUEST_MODEL,
        semconv.SERVER_ADDRESS,
        semconv.SERVER_PORT,
        semconv.RESPONSE_ID,
        semconv.RESPONSE_MODEL,
        semconv.RESPONSE_FINISH_REASONS,
        semconv.RESPONSE_TIME_TO_FIRST_CHUNK,
        semconv.REQUEST_STREAM,
    }
)
_USAGE_PREFIX = "gen_ai.usage."


def _sdk_may_write(key: str) -> bool:
    return key not in _OURS and not key.startswith(_USAGE_PREFIX)


class SdkSpanView(wrapt.ObjectProxy):  # type: ignore[misc]
    """Our span as the SDK sees it: its attributes and errors pass, its ``end`` and ``OK`` do not."""

    def __init__(self, span: Any, call: GenAICall) -> None:
        super().__init__(span)
        self._self_call = call

    def end(self, end_time: Any = None) -> None:
        return None  # the recorder ends the span, once, after writing tokens and cost

    def set_attribute(self, key: str, value: Any) -> Any:
        if not self._self_call.ended and _sdk_may_write(key):
            self.__wrapped__.set_attribute(key, value)
        return self

    def set_attributes(self, attributes: Any) -> Any:
        if not self._self_call.ended:
            self.__wrapped__.set_attributes({k: v for k, v in dict(attributes).items() if _sdk_may_write(k)})
        return self

    def set_status(self, status: Any, description: Any = None) -> None:
        code = status.status_code if isinstance(status, Status) else status
        if self._self_call.ended or code is not StatusCode.ERROR:
            return  # OK is final in OpenTelemetry: it would mask an error found later
        self.__wrapped__.set_status(status, description)

    def record_exception(self, *args: Any, **kwargs: Any) -> None:
        if not self._self_call.ended:
            self.__wrapped__.record_exception(*args, **kwargs)

    def add_event(self, *args: Any, **kwargs: Any) -> Any:
        if not self._self_call.ended:
            self.__wrapped__.add_event(*args, **kwargs)
        return self


class _HandOverTracer:
    """The tracer ``start_api_call_span`` gets for a traced call: it "starts" our span."""

    def __init__(self, call: GenAICall) -> None:
        self._call = call

    def start_span(self, name: str, *args: Any, attributes: Any = None, **kwargs: Any) -> Any:
        call = self._call
        try:
            if attributes:
                call.span.set_attributes(  # type: ignore[union-attr]
                    {k: v for k, v in dict(attributes).items() if _sdk_may_write(k)}
                )
            return SdkSpanView(call.span, call)
        except Exception:
            report("handing the span to the SDK")
            return INVALID_SPAN  # not recording: the SDK goes on without a span of its own


def hand_over_span(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """Wraps ``anthropic._base_client.start_api_call_span``: the SDK's span of a traced call is ours."""
    holder = pending.get()
    if not holder:
        return wrapped(*args, **kwargs)
    try:
        call = holder.pop()
        if call.span is not None and call.owns_span and not call.ended:
            tracer = _HandOverTracer(call)
            if args:
                args = (tracer, *args[1:])
            else:
                kwargs = {**kwargs, "tracer": tracer}
    except Exception:
        report("handing the span to the SDK")
    return wrapped(*args, **kwargs)
