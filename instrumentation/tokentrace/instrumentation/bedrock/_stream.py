"""A traced ``botocore.eventstream.EventStream``: the span ends exactly once, however the app leaves it.

The core :class:`~tokentrace.core.stream.TracedStream` proxies an *iterator* (``__next__``,
``__enter__``); botocore's ``EventStream`` is neither: it is an iterable whose ``__iter__`` is a
generator over one shared event generator, with ``close()`` and no context-manager protocol. Proxying
it with ``TracedStream`` would give the app a ``next()`` and a ``with`` that fail differently from
the real object, so this proxy keeps EventStream's exact shape:

* ``iter(stream)`` returns a new generator each time, over the same underlying events (an app may
  ``break`` and iterate again, and sees the remaining events, as without tracing);
* ``close()`` closes the HTTP body and ends the span (``closed``);
* exhausting the events ends it ``completed``; an exception event (``EventStreamError``) or a
  transport error ends it ``error`` with ``error.type`` set to the AWS error code;
* the proxy being garbage-collected first ends it ``abandoned``.

Generators handed out hold the proxy, so the span cannot be ended as abandoned while the app still
iterates one of them. ``next()`` and ``with`` fail exactly as on the SDK object (EventStream has neither).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import wrapt

from tokentrace.core.call import GenAICall
from tokentrace.core.recorder import Recorder
from tokentrace.core.safety import report
from tokentrace.core.stream import END_ABANDONED, END_CLOSED, END_COMPLETED, END_ERROR

EventObserver = Callable[[GenAICall, Any], None]
ErrorClassifier = Callable[[BaseException], "str | None"]


class TracedEventStream(wrapt.ObjectProxy):  # type: ignore[misc]
    """Proxy of a botocore ``EventStream`` (``response["stream"]`` / ``response["body"]``)."""

    def __init__(
        self,
        wrapped: Any,
        call: GenAICall,
        recorder: Recorder,
        observe: EventObserver,
        classify: ErrorClassifier,
    ) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_recorder = recorder
        self._self_observe = observe
        self._self_classify = classify

    def __iter__(self) -> Iterator[Any]:
        return self._self_events(iter(self.__wrapped__))

    def _self_events(self, events: Iterator[Any]) -> Iterator[Any]:
        while True:
            try:
                event = next(events)
            except StopIteration:
                self._self_end(None, END_COMPLETED)
                return
            except BaseException as error:
                self._self_end(error, END_ERROR)
                raise
            self._self_on_event(event)
            yield event

    def _self_on_event(self, event: Any) -> None:
        call = self._self_call
        try:
            call.mark_chunk()
            self._self_observe(call, event)
        except Exception:
            report("reading a stream chunk")

    def _self_end(self, error: BaseException | None, reason: str) -> None:
        call = self._self_call
        if call.ended:
            return
        if error is not None and call.error_type is None:
            try:
                call.error_type = self._self_classify(error)
            except Exception:
                report("classifying a stream error")
        try:
            self._self_recorder.finish(call, error, reason)
        except Exception:
            report("ending a stream")

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_end(None, END_CLOSED)

    # wrapt.ObjectProxy forwards ``with`` to the wrapped object's attributes, which would turn the
    # TypeError an EventStream gives into an AttributeError; keep the SDK's behaviour either way.
    def __enter__(self) -> Any:
        enter = getattr(type(self.__wrapped__), "__enter__", None)
        if enter is None:
            raise TypeError(f"'{type(self.__wrapped__).__name__}' object does not support the context manager protocol")
        enter(self.__wrapped__)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return type(self.__wrapped__).__exit__(self.__wrapped__, exc_type, exc, tb)
        finally:
            self._self_end(None, END_CLOSED)

    def tokentrace_end(self, reason: str = END_CLOSED) -> None:
        self._self_end(None, reason)

    def __del__(self) -> None:
        try:
            self._self_end(None, END_ABANDONED)
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


# Python names the *type* in the errors an app's misuse raises (``next(stream)``: "'EventStream' object
# is not an iterator"); the proxy answers to the SDK's name so those messages are the SDK's too.
TracedEventStream.__name__ = "EventStream"
TracedEventStream.__qualname__ = "EventStream"
