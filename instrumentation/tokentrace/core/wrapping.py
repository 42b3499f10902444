"""wrapt wrappers from two provider functions: ``describe`` (the request) and ``handle`` (the result).

Every provider's wrappers have the same shape: skip past other instrumentations of the same
method, then :func:`~tokentrace.core.invoke.run_sync` / ``run_async``. Writing that once keeps the
provider modules to the part that differs, reading their SDK's shapes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from tokentrace.core.invoke import AsyncHandleResult, Describe, HandleResult, run_async, run_sync
from tokentrace.core.recorder import Recorder

logger = logging.getLogger("tokentrace")

_warned_about: set[str] = set()


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
    recorder: Recorder, describe: Describe, handle: HandleResult, others: tuple[str, ...] = ()
) -> Callable[..., Any]:
    def traced_call(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        wrapped = past_other_instrumentations(wrapped, others)
        return run_sync(recorder, describe, wrapped, instance, args, kwargs, handle)

    return traced_call


def async_wrapper(
    recorder: Recorder, describe: Describe, handle: AsyncHandleResult, others: tuple[str, ...] = ()
) -> Callable[..., Awaitable[Any]]:
    async def traced_call(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        wrapped = past_other_instrumentations(wrapped, others)
        return await run_async(recorder, describe, wrapped, instance, args, kwargs, handle)

    return traced_call
