"""``with_raw_response`` and ``with_streaming_response``: the result is a response wrapper, not the
parsed object, and for streams the body is read only when the application asks.

Non-streamed raw responses are already read, so they are parsed here (the SDK caches the parse, so
the application's own ``.parse()`` returns the same object). Otherwise the wrapper is proxied: its
``parse()`` result is recorded (or, for a stream, traced), and ``close()`` or garbage collection
ends the span if the application reads the body some other way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import wrapt

from tokentrace.core.call import GenAICall
from tokentrace.core.recorder import Recorder
from tokentrace.core.safety import report
from tokentrace.core.stream import END_ABANDONED, END_CLOSED

# (call, parsed result) -> what the application should get (the result, or a traced stream)
OnParsed = Callable[[GenAICall, Any], Any]


def _is_stream(value: Any) -> bool:
    import openai

    return isinstance(value, (openai.Stream, openai.AsyncStream))


def _end(recorder: Recorder, call: GenAICall, reason: str) -> None:
    try:
        recorder.finish(call, None, reason)
    except Exception:
        report("ending a raw response")


class _RawState:
    __slots__ = ("call", "on_parsed", "recorder", "streams")

    def __init__(self, call: GenAICall, recorder: Recorder, on_parsed: OnParsed) -> None:
        self.call = call
        self.recorder = recorder
        self.on_parsed = on_parsed
        self.streams: dict[int, Any] = {}

    def handle(self, parsed: Any) -> Any:
        if self.call.ended and not _is_stream(parsed):
            return parsed
        key = id(parsed)
        if key in self.streams:
            return self.streams[key][1]
        try:
            result = self.on_parsed(self.call, parsed)
        except Exception:
            report("reading a raw response")
            _end(self.recorder, self.call, END_CLOSED)
            return parsed
        if result is not parsed:
            self.streams[key] = (parsed, result)  # keep the parsed stream alive with its proxy
        return result


class TracedRawResponse(wrapt.ObjectProxy):  # type: ignore[misc]
    """A sync ``LegacyAPIResponse`` or ``APIResponse`` whose parse result is traced."""

    def __init__(self, wrapped: Any, call: GenAICall, recorder: Recorder, on_parsed: OnParsed) -> None:
        super().__init__(wrapped)
        self._self_state = _RawState(call, recorder, on_parsed)

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        return self._self_state.handle(self.__wrapped__.parse(*args, **kwargs))

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            _end(self._self_state.recorder, self._self_state.call, END_CLOSED)

    def __del__(self) -> None:
        try:
            _end(self._self_state.recorder, self._self_state.call, END_ABANDONED)
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


class TracedAsyncRawResponse(wrapt.ObjectProxy):  # type: ignore[misc]
    """An ``AsyncAPIResponse`` (async ``parse``/``close``) whose parse result is traced."""

    def __init__(self, wrapped: Any, call: GenAICall, recorder: Recorder, on_parsed: OnParsed) -> None:
        super().__init__(wrapped)
        self._self_state = _RawState(call, recorder, on_parsed)

    async def parse(self, *args: Any, **kwargs: Any) -> Any:
        return self._self_state.handle(await self.__wrapped__.parse(*args, **kwargs))

    async def close(self) -> Any:
        try:
            return await self.__wrapped__.close()
        finally:
            _end(self._self_state.recorder, self._self_state.call, END_CLOSED)

    def __del__(self) -> None:
        try:
            _end(self._self_state.recorder, self._self_state.call, END_ABANDONED)
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


def raw_response_kind(result: Any) -> str | None:
    """``legacy`` (with_raw_response), ``sync``/``async`` (with_streaming_response), or None."""
    from openai import _legacy_response, _response

    if isinstance(result, _legacy_response.LegacyAPIResponse):
        return "legacy"
    if isinstance(result, _response.AsyncAPIResponse):
        return "async"
    if isinstance(result, _response.APIResponse):
        return "sync"
    return None
