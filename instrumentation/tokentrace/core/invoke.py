"""Running one wrapped SDK method: describe the request, call the SDK, hand over the result.

The application's call always happens exactly once, with the application's arguments, and its
result or exception is what the application gets. Our steps around it are guarded: if describing
the request fails, the call runs untraced; if reading the response fails, the span is ended with
what is known and the SDK's result is returned unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import SpanKind

from tokentrace.core import semconv
from tokentrace.core.attempts import CURRENT_CALL
from tokentrace.core.call import GenAICall
from tokentrace.core.recorder import Recorder
from tokentrace.core.safety import report

# describe(instance, args, kwargs) -> (call, kwargs to send) or None to pass through untraced.
# Positional arguments are passed to the SDK unchanged; only keyword arguments may be amended.
Describe = Callable[[Any, tuple[Any, ...], dict[str, Any]], "tuple[GenAICall, dict[str, Any]] | None"]
HandleResult = Callable[[GenAICall, Any], Any]
AsyncHandleResult = Callable[[GenAICall, Any], Awaitable[Any]]

# The call of a *router* library (LiteLLM) whose SDK call is running: tokentrace-instrumented SDK
# calls it makes underneath (the openai SDK for OpenAI models, ...) merge their provider-level detail
# into it instead of opening a second span. A ContextVar, so it follows the call into asyncio tasks
# and into LiteLLM's executor threads (which run in a copy of the caller's context), and is reset
# as soon as the router's method returns: a stream iterated later never sees it.
_ROUTER_CALL: ContextVar[GenAICall | None] = ContextVar("tokentrace_router_call", default=None)

_LLM_OPERATIONS = frozenset({"chat", "text_completion", "embeddings", "generate_content"})
_OWN_SCOPE_PREFIX = "tokentrace"


def _open_llm_span_in_context(call: GenAICall) -> tuple[str, Any] | None:
    """Another span for this same call already open around us: ``("own"|"foreign", span)``.

    Stacked instrumentations (another OpenAI instrumentor, an SDK's native span) wrap the same
    method; the outer one's CLIENT span is current when we run. Recording a second span would
    double every count, so we enrich theirs (or, for our own, stay out of the way).
    """
    span = trace.get_current_span()
    kind = getattr(span, "kind", None)
    if kind is None or not span.is_recording():
        return None  # no SDK span open: the common case, decided in two attribute reads
    attributes = getattr(span, "attributes", None)
    if not attributes or getattr(span, "end_time", None) is not None:
        return None
    if kind is not SpanKind.CLIENT and attributes.get("openinference.span.kind") != "LLM":
        return None
    is_llm = (
        attributes.get(semconv.OPERATION_NAME) in _LLM_OPERATIONS
        or "llm.request.type" in attributes
        or attributes.get("openinference.span.kind") == "LLM"
    )
    if not is_llm:
        return None
    model = attributes.get(semconv.REQUEST_MODEL) or attributes.get("llm.model_name")
    if model is not None and call.request_model is not None and model != call.request_model:
        return None
    scope = getattr(getattr(span, "instrumentation_scope", None), "name", "") or ""
    return ("own" if scope.startswith(_OWN_SCOPE_PREFIX) else "foreign"), span


def _begin(recorder: Recorder, describe: Describe, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]):
    try:
        described = describe(instance, args, kwargs)
        if described is None:
            return None, kwargs
        call, send_kwargs = described
        outer = _ROUTER_CALL.get()
        if outer is not None and not outer.ended:
            call.merge_into = outer  # no span of its own: the outer call records it (Recorder.finish)
            call.owns_span = False
            return call, send_kwargs
        existing = _open_llm_span_in_context(call)
        if existing is None:
            recorder.start(call)
        elif existing[0] == "own":
            return None, kwargs
        else:
            recorder.adopt(call, existing[1])
        return call, send_kwargs
    except Exception:
        report("describing the request")
        return None, kwargs


def _fail(recorder: Recorder, call: GenAICall, error: BaseException) -> None:
    try:
        recorder.finish(call, error)
    except Exception:
        report("recording a failed call")


def _fallback_finish(recorder: Recorder, call: GenAICall) -> None:
    report("reading the response")
    try:
        recorder.finish(call)
    except Exception:
        report("ending the span after a response error")


def _enter_attempts(recorder: Recorder, call: GenAICall) -> Any:
    """Let the HTTP hook (instrumentation/_http.py) see this call's attempts; a routed call's go to
    the router's call, whose span they belong to."""
    if not recorder.settings.http_attempts:
        return None
    return CURRENT_CALL.set(call.merge_into or call)


def _leave(token: Any, routing: Any, attempts: Any = None) -> None:
    if attempts is not None:
        CURRENT_CALL.reset(attempts)
    if routing is not None:
        _ROUTER_CALL.reset(routing)
    if token is not None:
        context.detach(token)


def run_sync(
    recorder: Recorder,
    describe: Describe,
    wrapped: Callable[..., Any],
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    handle_result: HandleResult,
    *,
    router: bool = False,
) -> Any:
    """``router=True`` for a library that calls other instrumented SDKs underneath (LiteLLM): their
    calls merge into this one (see ``_ROUTER_CALL``)."""
    call, send_kwargs = _begin(recorder, describe, instance, args, kwargs)
    if call is None:
        return wrapped(*args, **kwargs)
    token = context.attach(trace.set_span_in_context(call.span)) if call.owns_span else None
    routing = _ROUTER_CALL.set(call) if router and call.owns_span else None
    attempts = _enter_attempts(recorder, call)
    try:
        result = wrapped(*args, **send_kwargs)
    except BaseException as error:
        _leave(token, routing, attempts)
        _fail(recorder, call, error)
        raise
    _leave(token, routing, attempts)
    try:
        return handle_result(call, result)
    except Exception:
        _fallback_finish(recorder, call)
        return result


async def run_async(
    recorder: Recorder,
    describe: Describe,
    wrapped: Callable[..., Awaitable[Any]],
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    handle_result: AsyncHandleResult,
    *,
    router: bool = False,
) -> Any:
    call, send_kwargs = _begin(recorder, describe, instance, args, kwargs)
    if call is None:
        return await wrapped(*args, **kwargs)
    token = context.attach(trace.set_span_in_context(call.span)) if call.owns_span else None
    routing = _ROUTER_CALL.set(call) if router and call.owns_span else None
    attempts = _enter_attempts(recorder, call)
    try:
        result = await wrapped(*args, **send_kwargs)
    except BaseException as error:
        _leave(token, routing, attempts)
        _fail(recorder, call, error)
        raise
    _leave(token, routing, attempts)
    try:
        return await handle_result(call, result)
    except Exception:
        _fallback_finish(recorder, call)
        return result
