"""What the stream contract tests of every SDK share: the application's own exception and the way an
application cancels a task that is consuming a stream (``tests/test_stream_contract.py`` and the
per-provider stream contracts use them; each keeps its own matrix of exits and end reasons)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable, Iterable
from typing import Any


class AppError(Exception):
    """Raised by the application's own loop body."""


async def cancel_after_first(
    stream: Any, see: Callable[[Any], None], timeout: float = 10
) -> asyncio.CancelledError | None:
    """Consume ``stream`` in a task, calling ``see`` on every item, and cancel the task once the first
    item arrived: what ``await`` on the cancelled task raised (None if it finished first)."""
    first = asyncio.Event()

    async def consume() -> None:
        async for item in stream:
            see(item)
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), timeout)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError as error:
        return error
    return None


def take_first(items: Iterable[Any], out: Any, exit_path: str) -> None:
    """The loop body of the early exits: see the first item (``out.see``), then leave by ``break`` or,
    on ``app_error``, by the application's own exception (kept in ``out.raised``)."""
    for item in items:
        out.see(item)
        if exit_path == "app_error":
            out.raised = AppError("the application's own bug")
            raise out.raised
        break


async def atake_first(items: AsyncIterable[Any], out: Any, exit_path: str) -> None:
    """:func:`take_first` with ``async for``."""
    async for item in items:
        out.see(item)
        if exit_path == "app_error":
            out.raised = AppError("the application's own bug")
            raise out.raised
        break


def check_app_saw_the_same(exit_path: str, traced: Any, baseline: Any, app_span: Any) -> None:
    """The application could not tell the traced run from the ``baseline``: the same items and the same
    exception (type, text, what it chained), its very own exception on ``app_error``, the cancellation
    on ``cancel``; and its own span, never ours, stayed current while the stream was open."""
    assert traced.items == baseline.items
    assert type(traced.error) is type(baseline.error)
    assert str(traced.error) == str(baseline.error)
    if traced.error is not None:  # nothing of ours chained onto it
        assert type(traced.error.__context__) is type(baseline.error.__context__)
    if exit_path == "app_error":  # the very exception the application raised, not a copy or a wrapper
        assert traced.raised is not None and traced.error is traced.raised
    if exit_path == "cancel":
        assert isinstance(traced.error, asyncio.CancelledError)
    assert traced.current_spans and all(span is app_span for span in traced.current_spans)


def the_stream_span(spans: list[Any], ended: list[Any], app_span: Any) -> Any:
    """The one LLM span among ``spans``, checked ended exactly once (``ended``: every span our recorder
    ended) and a child of the application's span."""
    assert len(spans) == 1, [s.name for s in spans]
    span = spans[0]
    assert [s.context.span_id for s in ended] == [span.context.span_id]
    assert span.parent is not None and span.parent.span_id == app_span.get_span_context().span_id
    return span


def check_error_status(span: Any, error_type: str | None) -> None:
    """ERROR status with ``error_type`` for a stream that failed, else UNSET and no ``error.type``."""
    from opentelemetry.trace import StatusCode

    from tokentrace.core import semconv

    if error_type is not None:
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes[semconv.ERROR_TYPE] == error_type
    else:
        assert span.status.status_code is StatusCode.UNSET
        assert semconv.ERROR_TYPE not in span.attributes
