"""The proxy around LiteLLM's ``CustomStreamWrapper``.

Unlike an SDK stream, one ``CustomStreamWrapper`` class serves both ``completion(stream=True)`` and
``acompletion(stream=True)``: it is iterable with ``for`` and ``async for``, has ``aclose()`` and no
``close()`` or context manager (in LiteLLM 1.x). The core's proxies are one-sided, so this one is
both of them (``for`` from :class:`~tokentrace.core.stream.TracedStream`, ``async for`` and
``aclose()`` from :class:`~tokentrace.core.stream.TracedAsyncStream`, one end-exactly-once state),
and adds no method LiteLLM lacks: ``close`` and the context-manager methods exist on the proxy only
where the wrapped stream has them (and are then the core's traced ones).
"""

from __future__ import annotations

from tokentrace.core.stream import IfWrappedHas, TracedAsyncStream, TracedStream


class TracedLiteLLMStream(TracedStream, TracedAsyncStream):
    """A ``CustomStreamWrapper``, traced: the span ends once, however the stream is left."""

    close = IfWrappedHas("close", TracedStream.close)  # sync, as LiteLLM's would be; not the async one
    __enter__ = IfWrappedHas("__enter__", TracedStream.__enter__)
    __exit__ = IfWrappedHas("__exit__", TracedStream.__exit__)
    __aenter__ = IfWrappedHas("__aenter__", TracedAsyncStream.__aenter__)
    __aexit__ = IfWrappedHas("__aexit__", TracedAsyncStream.__aexit__)
