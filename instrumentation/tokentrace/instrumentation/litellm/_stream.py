"""The proxy around LiteLLM's ``CustomStreamWrapper``.

Unlike an SDK stream, one ``CustomStreamWrapper`` class serves both ``completion(stream=True)`` and
``acompletion(stream=True)``: it is iterable with ``for`` and ``async for``, has ``aclose()`` and no
``close()`` or context manager (in LiteLLM 1.x). The core proxies are one-sided, so this one offers
both iteration protocols, on the core's end-exactly-once state, and adds no method LiteLLM lacks
(``close`` exists on the proxy only where the wrapped stream has it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import wrapt

from tokentrace.core.call import GenAICall
from tokentrace.core.recorder import Recorder
from tokentrace.core.stream import (
    END_ABANDONED,
    END_CANCELLED,
    END_CLOSED,
    END_COMPLETED,
    END_ERROR,
    ChunkObserver,
    _StreamState,
)


class TracedLiteLLMStream(wrapt.ObjectProxy):  # type: ignore[misc]
    """A ``CustomStreamWrapper``, traced: the span ends once, however the stream is left."""

    def __init__(self, wrapped: Any, call: GenAICall, recorder: Recorder, observe: ChunkObserver) -> None:
        super().__init__(wrapped)
        self._self_state = _StreamState(call, recorder, observe, None)

    def __iter__(self) -> TracedLiteLLMStream:
        return self

    def __next__(self) -> Any:
        state = self._self_state
        try:
            chunk = self.__wrapped__.__next__()
        except StopIteration:
            state.end(None, END_COMPLETED)
            raise
        except BaseException as error:
            state.end(error, END_ERROR)
            raise
        state.on_chunk(chunk)
        return chunk

    def __aiter__(self) -> TracedLiteLLMStream:
        return self

    async def __anext__(self) -> Any:
        state = self._self_state
        try:
            chunk = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            state.end(None, END_COMPLETED)
            raise
        except asyncio.CancelledError:
            state.end(None, END_CANCELLED)
            raise
        except BaseException as error:
            state.end(error, END_ERROR)
            raise
        state.on_chunk(chunk)
        return chunk

    @property
    def aclose(self) -> Callable[[], Any]:
        wrapped_aclose = self.__wrapped__.aclose  # the SDK's own AttributeError where it has none
        state = self._self_state

        async def aclose() -> Any:
            try:
                return await wrapped_aclose()
            finally:
                state.end(None, END_CLOSED)

        return aclose

    @property
    def close(self) -> Callable[[], Any]:
        wrapped_close = self.__wrapped__.close
        state = self._self_state

        def close() -> Any:
            try:
                return wrapped_close()
            finally:
                state.end(None, END_CLOSED)

        return close

    # wrapt's proxy has context-manager methods; CustomStreamWrapper has none. As properties that
    # defer to the wrapped stream, ``hasattr(stream, "__enter__")`` answers as it would untraced.
    @property
    def __enter__(self) -> Callable[[], Any]:
        return self.__wrapped__.__enter__

    @property
    def __exit__(self) -> Callable[..., Any]:
        return self.__wrapped__.__exit__

    def tokentrace_end(self, reason: str = END_CLOSED) -> None:
        self._self_state.end(None, reason)

    def __del__(self) -> None:
        try:
            self._self_state.end(None, END_ABANDONED)
        except Exception:  # pragma: no cover - interpreter shutdown
            pass
