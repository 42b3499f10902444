"""The stream contract for Anthropic: each way of opening a stream x each way of leaving it.

Every case runs twice against the simulator, instrumented and then uninstrumented (the baseline):
the application must observe the same items and the same exception; the instrumented run must
export exactly one span, ended once, with the right ``tokentrace.stream.end_reason`` and chunk count.
The SDK's own telemetry is off here (see test_anthropic_native for it on).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import pytest
import wrapt
from observed import fingerprint

from tests.providers import test_anthropic_support as support
from tests.providers.stream_exits import AppError
from tests.providers.test_anthropic_support import MESSAGES, MODEL, make_client
from tokentrace.core import semconv
from tokentrace.core.safety import internal_errors
from tokentrace.demo.simulator import Simulator

sim = support.sim
traced = support.traced
FAULT_MODEL = "midstream-error-claude"
TAKE = 3


@dataclass
class Outcome:
    items: list[Any]
    error: str | None


@pytest.fixture(scope="module")
def slow_sim() -> Iterator[Simulator]:
    with Simulator(seed=4, chunk_delay=0.2) as simulator:
        yield simulator


# -- ways of opening (sync): return (iterable, closeable, context manager, keep-alive refs) --------


def _open_create(client: Any, model: str) -> tuple[Any, Any, Any]:
    stream = client.messages.create(model=model, max_tokens=200, messages=MESSAGES, stream=True)
    return stream, stream, stream


def _open_helper(client: Any, model: str, *, beta: bool = False, text: bool = False) -> tuple[Any, Any, Any]:
    messages = client.beta.messages if beta else client.messages
    manager = messages.stream(model=model, max_tokens=200, messages=MESSAGES)
    helper = manager.__enter__()

    class _Exit:
        def __enter__(self) -> Any:
            return helper

        def __exit__(self, *exc: Any) -> Any:
            return manager.__exit__(*exc)

    return (helper.text_stream if text else helper), helper, _Exit()


OPENERS = {
    "create": _open_create,
    "helper": _open_helper,
    "helper_text": lambda c, m: _open_helper(c, m, text=True),
    "beta_helper": lambda c, m: _open_helper(c, m, beta=True),
}
if not support.SDK_HAS_BETA_STREAM:
    del OPENERS["beta_helper"]


def _observe(item: Any) -> Any:
    return item if isinstance(item, str) else fingerprint(item)


def _run_sync(client: Any, opener: str, exit_: str) -> Outcome:
    model = FAULT_MODEL if exit_ == "server_error" else MODEL
    items: list[Any] = []
    iterable, closeable, context = OPENERS[opener](client, model)
    try:
        if exit_ in ("exhaust", "server_error"):
            for item in iterable:
                items.append(_observe(item))
        elif exit_ == "break_gc":
            for item in iterable:
                items.append(_observe(item))
                if len(items) == TAKE:
                    break
            del iterable, closeable, context
            gc.collect()
        elif exit_ == "with_exit":
            with context as entered:
                for item in iterable if entered is not None else ():
                    items.append(_observe(item))
                    if len(items) == TAKE:
                        break
        elif exit_ == "close":
            for item in iterable:
                items.append(_observe(item))
                if len(items) == TAKE:
                    break
            closeable.close()
        elif exit_ == "app_error":
            with context:
                for item in iterable:
                    items.append(_observe(item))
                    raise AppError("the app's own bug")
        elif exit_ == "never_iterated_gc":
            del iterable, closeable, context
            gc.collect()
    except Exception as error:
        return Outcome(items, f"{type(error).__name__}: {error}")
    return Outcome(items, None)


END_REASONS = {
    "exhaust": {"completed"},
    "server_error": {"error"},
    "break_gc": {"abandoned", "closed"},
    "with_exit": {"closed"},
    "close": {"closed"},
    "app_error": {"closed"},
    "never_iterated_gc": {"abandoned", "closed"},
}


def _check_span(telemetry: Any, exit_: str, opener: str, outcome: Outcome) -> Any:
    spans = telemetry.spans()
    assert len(spans) == 1, [s.name for s in spans]
    span = spans[0]
    attributes = span.attributes
    assert attributes[semconv.STREAM_END_REASON] in END_REASONS[exit_]
    chunks = attributes[semconv.STREAM_CHUNKS]
    if opener == "create":
        assert chunks == len(outcome.items)
    elif exit_ == "never_iterated_gc":
        assert chunks == 0
    else:
        assert chunks >= 1
    if exit_ == "exhaust":
        assert attributes[semconv.USAGE_OUTPUT_TOKENS] > 1
        assert attributes[semconv.RESPONSE_FINISH_REASONS] == ("end_turn",)
    if exit_ == "server_error":
        assert attributes[semconv.ERROR_TYPE] == "anthropic.APIStatusError"
    else:
        assert semconv.ERROR_TYPE not in attributes
    return span


SYNC_EXITS = ["exhaust", "break_gc", "with_exit", "close", "server_error", "app_error", "never_iterated_gc"]


@pytest.mark.parametrize("exit_", SYNC_EXITS)
@pytest.mark.parametrize("opener", list(OPENERS))
def test_sync_contract(sim, traced, telemetry, opener, exit_) -> None:
    errors_before = sum(internal_errors.values())
    instrumentor = traced()
    client = make_client(sim)
    traced_outcome = _run_sync(client, opener, exit_)
    gc.collect()
    _check_span(telemetry, exit_, opener, traced_outcome)
    instrumentor.uninstrument()
    baseline = _run_sync(client, opener, exit_)
    assert traced_outcome == baseline
    assert len(telemetry.spans()) == 1
    assert sum(internal_errors.values()) == errors_before


# -- async ----------------------------------------------------------------------------------------


async def _aopen(client: Any, opener: str, model: str) -> tuple[Any, Any, Any]:
    if opener == "create":
        stream = await client.messages.create(model=model, max_tokens=200, messages=MESSAGES, stream=True)
        return stream, stream, stream
    messages = client.beta.messages if opener == "beta_helper" else client.messages
    manager = messages.stream(model=model, max_tokens=200, messages=MESSAGES)
    helper = await manager.__aenter__()

    class _Exit:
        async def __aenter__(self) -> Any:
            return helper

        async def __aexit__(self, *exc: Any) -> Any:
            return await manager.__aexit__(*exc)

    return (helper.text_stream if opener == "helper_text" else helper), helper, _Exit()


async def _run_async(client: Any, opener: str, exit_: str) -> Outcome:
    model = FAULT_MODEL if exit_ == "server_error" else MODEL
    items: list[Any] = []
    iterable, closeable, context = await _aopen(client, opener, model)
    try:
        if exit_ in ("exhaust", "server_error"):
            async for item in iterable:
                items.append(_observe(item))
        elif exit_ == "with_exit":
            async with context:
                async for item in iterable:
                    items.append(_observe(item))
                    if len(items) == TAKE:
                        break
        elif exit_ == "close":
            async for item in iterable:
                items.append(_observe(item))
                if len(items) == TAKE:
                    break
            await closeable.close()
        elif exit_ == "app_error":
            async with context:
                async for item in iterable:
                    items.append(_observe(item))
                    raise AppError("the app's own bug")
        elif exit_ == "never_iterated_gc":
            await closeable.close()  # async streams are closed by the app; GC cannot await
    except Exception as error:
        return Outcome(items, f"{type(error).__name__}: {error}")
    return Outcome(items, None)


ASYNC_EXITS = ["exhaust", "with_exit", "close", "server_error", "app_error"]


@pytest.mark.parametrize("exit_", ASYNC_EXITS)
@pytest.mark.parametrize("opener", list(OPENERS))
async def test_async_contract(sim, traced, telemetry, opener, exit_) -> None:
    errors_before = sum(internal_errors.values())
    instrumentor = traced()
    client = make_client(sim, is_async=True)
    traced_outcome = await _run_async(client, opener, exit_)
    _check_span(telemetry, exit_, opener, traced_outcome)
    instrumentor.uninstrument()
    baseline = await _run_async(client, opener, exit_)
    assert traced_outcome == baseline
    assert sum(internal_errors.values()) == errors_before


@pytest.mark.parametrize("opener", list(OPENERS))
async def test_async_cancellation(slow_sim, traced, telemetry, opener) -> None:
    traced()
    client = make_client(slow_sim, is_async=True)
    first = asyncio.Event()

    async def consume() -> None:
        iterable, _, context = await _aopen(client, opener, MODEL)
        async with context:
            async for _ in iterable:
                first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    span = telemetry.span()
    assert span.attributes[semconv.STREAM_END_REASON] in ("cancelled", "closed")
    assert span.attributes[semconv.STREAM_CHUNKS] >= 1
    assert semconv.USAGE_OUTPUT_TOKENS not in span.attributes  # message_delta never arrived


async def test_async_never_iterated_gc(sim, traced, telemetry) -> None:
    traced()
    stream = await make_client(sim, is_async=True).messages.create(
        model=MODEL, max_tokens=200, messages=MESSAGES, stream=True
    )
    assert type(stream).__name__ == "TracedAsyncStream"
    del stream
    gc.collect()
    assert telemetry.span().attributes[semconv.STREAM_END_REASON] == "abandoned"


def test_stream_is_still_the_sdk_type(sim, traced) -> None:
    traced()
    stream = make_client(sim).messages.create(model=MODEL, max_tokens=200, messages=MESSAGES, stream=True)
    with stream:
        if not isinstance(wrapt.ObjectProxy(stream.__wrapped__), anthropic.Stream):
            pytest.xfail("this SDK's Stream class defeats isinstance() through any wrapt proxy (anthropic 0.40)")
        assert isinstance(stream, anthropic.Stream)
        assert stream.response.headers["request-id"].startswith("req_")
