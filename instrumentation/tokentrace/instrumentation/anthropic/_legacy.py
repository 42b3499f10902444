"""Helper streams of older SDKs (anthropic < 0.4x-0.5x): the helper re-reads the response itself.

There ``MessageStreamManager.__enter__`` builds ``MessageStream(cast_to=, response=, client=)`` from
the raw stream's response and drops the raw stream, which in newer SDKs it keeps and reads. So for
those versions the traced raw stream is put back: the helper's own ``_raw_stream`` (a second ``Stream``
over the same, unread response) is replaced by ours right after ``__init__``, and its ``close()``
(which closes the response directly) ends the call.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from tokentrace.core.safety import swallow
from tokentrace.core.stream import TracedAsyncStream, TracedStream

# (module, sync helper class, async helper class)
_HELPERS = (
    ("anthropic.lib.streaming._messages", "MessageStream", "AsyncMessageStream"),
    (
        "anthropic.lib.streaming._prompt_caching_beta_messages",
        "PromptCachingBetaMessageStream",
        "AsyncPromptCachingBetaMessageStream",
    ),
)

# The traced raw stream the helper being entered in this thread/task is about to be built from.
entering: ContextVar[Any] = ContextVar("tokentrace_anthropic_entering", default=None)


def rebuilds_from_response() -> bool:
    """True for SDKs whose helper builds its own stream from the response (the old shape)."""
    try:
        module = importlib.import_module(_HELPERS[0][0])
        return "response" in inspect.signature(module.MessageStream.__init__).parameters
    except Exception:
        return False


def adopt_traced_stream(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    result = wrapped(*args, **kwargs)
    with swallow("tracing a stream helper"):
        traced = entering.get()
        if traced is not None and traced.response is kwargs.get("response"):
            entering.set(None)
            instance._raw_stream = traced
    return result


def _end(helper: Any) -> None:
    raw = getattr(helper, "_raw_stream", None)
    if isinstance(raw, (TracedStream, TracedAsyncStream)):
        raw.tokentrace_end()


def end_on_close(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    try:
        return wrapped(*args, **kwargs)
    finally:
        with swallow("ending a helper stream"):
            _end(instance)


async def end_on_async_close(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    try:
        return await wrapped(*args, **kwargs)
    finally:
        with swallow("ending a helper stream"):
            _end(instance)


def targets() -> Iterator[tuple[str, str, str, Any]]:
    """What to wrap on an old SDK; nothing on a current one."""
    if not rebuilds_from_response():
        return
    for module, sync_class, async_class in _HELPERS:
        yield module, sync_class, "__init__", adopt_traced_stream
        yield module, sync_class, "close", end_on_close
        yield module, async_class, "__init__", adopt_traced_stream
        yield module, async_class, "close", end_on_async_close
