"""wrapt wrappers from two provider functions: ``describe`` (the request) and ``handle`` (the result).

Every provider's wrappers have the same shape: skip past other instrumentations of the same
method, then :func:`~tokentrace.core.invoke.run_sync` / ``run_async``. Writing that once keeps the
provider modules to the part that differs, reading their SDK's shapes. A provider whose methods
differ only by an *operation* (OpenAI, google-genai) gets both wrappers from
:func:`operation_wrapper`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from tokentrace.core.call import GenAICall
from tokentrace.core.invoke import AsyncHandleResult, Describe, HandleResult, run_async, run_sync
from tokentrace.core.recorder import Recorder

logger = logging.getLogger("tokentrace")

_warned_about: set[str] = set()

# Instrumentation packages that wrap every provider's SDK they know; a provider's ``others`` (the
# wrappers to call past) are its own library's instrumentations plus these.
MULTI_PROVIDER_INSTRUMENTATIONS = ("openlit", "langfuse", "agentops")


def past_other_instrumentations(wrapped: Any, others: tuple[str, ...]) -> Any:
    """The method under any wrappers of the listed instrumentation packages (by module prefix).

    When another GenAI instrumentation wraps the same method inside ours, calling through it would
    record the call twice; we call past it and say so once.
    """
    if not others:
        return wrapped
    wrapper = getattr(wrapped, "_self_wrapper", None)
    while wrapper is not None:
        module = getattr(wrapper, "__module__", "") or ""
        if not module.startswith(others):
            break
        if module not in _warned_about:
            _warned_about.add(module)
            logger.warning("tokentrace: %s also instruments this library; tokentrace records each call once", module)
        wrapped = wrapped.__wrapped__
        wrapper = getattr(wrapped, "_self_wrapper", None)
    return wrapped


def sync_wrapper(
    recorder: Recorder,
    describe: Describe,
    handle: HandleResult,
    others: tuple[str, ...] = (),
    *,
    router: bool = False,
) -> Callable[..., Any]:
    """``router=True`` for a library whose calls route to other instrumented SDKs (see ``run_sync``)."""

    def traced_call(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        wrapped = past_other_instrumentations(wrapped, others)
        return run_sync(recorder, describe, wrapped, instance, args, kwargs, handle, router=router)

    return traced_call


def async_wrapper(
    recorder: Recorder,
    describe: Describe,
    handle: AsyncHandleResult,
    others: tuple[str, ...] = (),
    *,
    router: bool = False,
) -> Callable[..., Awaitable[Any]]:
    async def traced_call(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        wrapped = past_other_instrumentations(wrapped, others)
        return await run_async(recorder, describe, wrapped, instance, args, kwargs, handle, router=router)

    return traced_call


class OperationTracer(Protocol):
    """A provider's wrapper factory that reads every method through one ``describe`` / ``handle`` pair,
    told apart by an *operation* (the provider's description of one API shape)."""

    recorder: Recorder

    def describe(self, operation: Any, instance: Any, kwargs: dict[str, Any]) -> tuple[GenAICall, dict[str, Any]]: ...

    def handle(self, operation: Any, call: GenAICall, result: Any) -> Any: ...


def operation_wrapper(
    tracer: OperationTracer, operation: Any, *, is_async: bool, others: tuple[str, ...] = ()
) -> Callable[..., Any]:
    """The wrapt wrapper of a sync or async method that runs ``operation`` through ``tracer``.

    ``tracer.handle`` is synchronous either way (the result of an awaited call is read like any
    other). Both methods are looked up on each call, not bound here, so a tracer's class can be
    patched after instrumenting (the fault-injection tests do).
    """

    def describe(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[GenAICall, dict[str, Any]]:
        return tracer.describe(operation, instance, kwargs)

    if is_async:

        async def handle_async(call: GenAICall, result: Any) -> Any:
            return tracer.handle(operation, call, result)

        return async_wrapper(tracer.recorder, describe, handle_async, others)

    def handle(call: GenAICall, result: Any) -> Any:
        return tracer.handle(operation, call, result)

    return sync_wrapper(tracer.recorder, describe, handle, others)
