"""Stream proxies: the span of a streamed call ends exactly once, whichever way the stream ends.

The proxies are ``wrapt.ObjectProxy`` objects, so the application still holds "the SDK's stream":
``isinstance`` checks, attributes such as ``.response`` and every method pass through. Only
iteration, context management, ``close``/``aclose`` and finalisation are intercepted. A provider
module supplies two small callables: ``observe`` (per chunk: cheap field reads only) and,
optionally, ``hide`` (drop a chunk the application did not ask for, such as the usage-only chunk
of an injected ``include_usage``).

A stream that lacks some of the intercepted methods (a generator has no ``with``; LiteLLM's
``CustomStreamWrapper`` iterates both ways but has no ``close()``) is proxied by a subclass that
declares those with :class:`IfWrappedHas`, so the proxy adds no method the SDK object lacks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import wrapt

from tokentrace.core.attempts import CURRENT_CALL
from tokentrace.core.call import GenAICall
from tokentrace.core.recorder import Recorder
from tokentrace.core.safety import report

ChunkObserver = Callable[[GenAICall, Any], None]
ChunkFilter = Callable[[Any], bool]

END_COMPLETED = "completed"
END_CLOSED = "closed"
END_ERROR = "error"
END_CANCELLED = "cancelled"
END_ABANDONED = "abandoned"


class _StreamState:
    """What both proxies share: the call, how to read a chunk, and ending once.

    ``pending`` is the call the HTTP attempt hook (:mod:`tokentrace.instrumentation._http`) should
    credit while the stream has yielded nothing yet. Generator-based streams (google-genai, Ollama,
    Cohere's ``chat_stream``) send their request, and the SDK retries it, on the first ``next()``,
    after the wrapped method returned and :data:`~tokentrace.core.attempts.CURRENT_CALL` was reset;
    pulling under ``pending`` makes those attempts visible. Cleared at the first chunk, so the
    per-chunk path afterwards pays one attribute read.
    """

    __slots__ = ("call", "hide", "observe", "pending", "recorder")

    def __init__(self, call: GenAICall, recorder: Recorder, observe: ChunkObserver, hide: ChunkFilter | None):
        self.call = call
        self.recorder = recorder
        self.observe = observe
        self.hide = hide
        self.pending: GenAICall | None = None
        try:
            if recorder.settings.http_attempts:
                self.pending = call.merge_into or call  # a routed call's attempts go to the router's span
        except Exception:
            report("preparing stream attempts")

    def pull(self, pull: Callable[[], Any]) -> Any:
        """``pull()`` with this call current for the HTTP hook (the first chunk's request)."""
        token = CURRENT_CALL.set(self.pending)
        try:
            chunk = pull()
        finally:
            CURRENT_CALL.reset(token)
        self.pending = None
        return chunk

    async def apull(self, pull: Callable[[], Any]) -> Any:
        token = CURRENT_CALL.set(self.pending)
        try:
            chunk = await pull()
        finally:
            CURRENT_CALL.reset(token)
        self.pending = None
        return chunk

    def on_chunk(self, chunk: Any) -> bool:
        """Record a chunk; return True when the application should not see it.

        A hidden chunk (one we asked for, such as the injected usage chunk) is read but not counted:
        ``tokentrace.stream.chunks`` and the per-chunk timings describe what the application received.
        """
        hidden = False
        if self.hide is not None:
            try:
                hidden = bool(self.hide(chunk))
            except Exception:
                report("filtering a stream chunk")
        call = self.call
        try:
            if not hidden:
                call.mark_chunk()
            self.observe(call, chunk)
        except Exception:
            report("reading a stream chunk")
        return hidden

    def end(self, error: BaseException | None, reason: str) -> None:
        if self.call.ended:
            return
        try:
            self.recorder.finish(self.call, error, reason)
        except Exception:
            report("ending a stream")

    def end_by(self, error: BaseException) -> None:
        """End the call as what the wrapped stream's ``next()`` raised ends it: exhaustion as
        ``completed``, cancellation as ``cancelled``, anything else as ``error``. Only on the way out,
        so the per-chunk path pays nothing for it."""
        if isinstance(error, (StopIteration, StopAsyncIteration)):
            self.end(None, END_COMPLETED)
        elif isinstance(error, asyncio.CancelledError):
            self.end(None, END_CANCELLED)
        else:
            self.end(error, END_ERROR)


class _TracedProxy(wrapt.ObjectProxy):  # type: ignore[misc]
    """What the sync and async proxies share: the state, ending on request, ending on GC.

    Only construction and finalisation live here; the per-chunk methods stay on each proxy, one
    frame deep, because they are the hot path.
    """

    def __init__(
        self,
        wrapped: Any,
        call: GenAICall,
        recorder: Recorder,
        observe: ChunkObserver,
        hide: ChunkFilter | None = None,
    ) -> None:
        super().__init__(wrapped)
        self._self_state = _StreamState(call, recorder, observe, hide)

    def tokentrace_end(self, reason: str = END_CLOSED) -> None:
        """Let a helper stream that closes the HTTP response directly end the call."""
        self._self_state.end(None, reason)

    def __del__(self) -> None:
        try:
            self._self_state.end(None, END_ABANDONED)
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


class TracedStream(_TracedProxy):
    """A synchronous SDK stream, traced."""

    def __iter__(self) -> TracedStream:
        return self

    def __next__(self) -> Any:
        state = self._self_state
        while True:
            try:
                chunk = self.__wrapped__.__next__() if state.pending is None else state.pull(self.__wrapped__.__next__)
            except BaseException as error:
                state.end_by(error)
                raise
            if not state.on_chunk(chunk):
                return chunk

    def __enter__(self) -> TracedStream:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._self_state.end(None, END_CLOSED)

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_state.end(None, END_CLOSED)


class TracedAsyncStream(_TracedProxy):
    """An asynchronous SDK stream, traced; cancellation ends the call as ``cancelled``."""

    def __aiter__(self) -> TracedAsyncStream:
        return self

    async def __anext__(self) -> Any:
        state = self._self_state
        while True:
            try:
                if state.pending is None:
                    chunk = await self.__wrapped__.__anext__()
                else:
                    chunk = await state.apull(self.__wrapped__.__anext__)
            except BaseException as error:
                state.end_by(error)
                raise
            if not state.on_chunk(chunk):
                return chunk

    async def __aenter__(self) -> TracedAsyncStream:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._self_state.end(None, END_CANCELLED if exc_type is asyncio.CancelledError else END_CLOSED)

    async def close(self) -> Any:
        try:
            return await self.__wrapped__.close()
        finally:
            self._self_state.end(None, END_CLOSED)

    @property
    def aclose(self) -> Callable[[], Any]:
        """``aclose()`` exists only where the SDK's stream has it (openai>=3): on older SDKs the lookup
        raises the SDK's own AttributeError, so ``hasattr(stream, "aclose")`` is the same traced or not."""
        wrapped_aclose = self.__wrapped__.aclose
        state = self._self_state

        async def aclose() -> Any:
            try:
                return await wrapped_aclose()
            finally:
                state.end(None, END_CLOSED)

        return aclose


class IfWrappedHas:
    """A proxy method that exists only where the wrapped stream has a method of that name.

    wrapt's proxy and the proxies above define ``close``, ``__enter__``/``__exit__`` and
    ``__aenter__``/``__aexit__``; a stream that lacks some (a generator, LiteLLM's
    ``CustomStreamWrapper``) would otherwise gain them when traced, and ``hasattr(stream,
    "__enter__")`` would differ traced and untraced. Declared on a subclass as
    ``close = IfWrappedHas("close", TracedStream.close)``: where the wrapped stream has the method,
    ``implementation`` (the traced one) is used, or with none the wrapped stream's own method;
    where it has not, the lookup raises the wrapped object's own AttributeError.
    """

    def __init__(self, name: str, implementation: Any = None) -> None:
        self.name = name
        self.implementation = implementation

    def __get__(self, proxy: Any, owner: Any = None) -> Any:
        if proxy is None:
            return self
        target = getattr(proxy.__wrapped__, self.name)  # the SDK object's own AttributeError
        return self.implementation.__get__(proxy, owner) if self.implementation is not None else target
