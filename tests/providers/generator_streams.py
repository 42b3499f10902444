"""The stream contract for SDKs whose streams are plain generators (Cohere's ``chat_stream``, Ollama's
``stream=True``): one harness, used by ``test_cohere_streams.py`` and ``test_ollama_streams.py``.

Each case opens a stream one way (an :class:`Opener`) and leaves it one way (``SYNC_EXITS`` /
``ASYNC_EXITS``), twice: instrumented, then uninstrumented as the baseline. The application must see
the same items and the same exception both times; the instrumented run must leave exactly one LLM
span, ended once, a child of the application's span, with the right ``tokentrace.stream.end_reason``
and ``tokentrace.stream.chunks``. Generators have no ``with`` of their own, so the managed exits use
``contextlib.closing`` / ``aclosing`` as an application would.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry import trace

from tests.providers import stream_exits as exits
from tests.providers.stream_exits import AppError
from tokentrace.core import semconv


@dataclass(frozen=True)
class Opener:
    id: str
    operation: str
    model: str
    open: Callable[[Any, str], Any]  # (server, model) -> a fresh client's stream
    aopen: Callable[[Any, str], Awaitable[Any]]
    sdk_errors: tuple[type[BaseException], ...]  # what the SDK raises for the error exits
    server_error_model: str = "midstream-error"
    http_error_model: str = "error-429"
    error_type: str = ""  # error.type of a mid-stream failure
    http_error_type: str = ""


END_REASONS = {
    "exhaust": "completed",
    "break_gc": "abandoned",
    "with_early": "closed",
    "close": "closed",
    "aclose": "closed",
    "app_error": "closed",
    "server_error": "error",
    "http_error": "error",
    "never_iterated_gc": "abandoned",
    "cancel": "cancelled",
}
SYNC_EXITS = [
    "exhaust",
    "break_gc",
    "with_early",
    "close",
    "app_error",
    "server_error",
    "http_error",
    "never_iterated_gc",
]
ASYNC_EXITS = [
    "exhaust",
    "break_gc",
    "with_early",
    "aclose",
    "app_error",
    "server_error",
    "http_error",
    "never_iterated_gc",
    "cancel",
]


def fingerprint(item: Any) -> dict[str, Any]:
    data = item.model_dump(mode="json", warnings=False)
    if isinstance(data, dict):
        data.pop("id", None)  # the local servers number their responses
    return {"class": type(item).__name__, "data": data}


@dataclass
class Outcome:
    items: list[dict[str, Any]] = field(default_factory=list)
    error: BaseException | None = None
    raised: AppError | None = None
    current_spans: list[Any] = field(default_factory=list)
    stream_type: type | None = None

    def see(self, item: Any) -> None:
        self.items.append(fingerprint(item))
        self.current_spans.append(trace.get_current_span())


def model_for(opener: Opener, exit_path: str) -> str:
    if exit_path == "server_error":
        return opener.server_error_model
    if exit_path == "http_error":
        return opener.http_error_model
    return opener.model


def drive_sync(opener: Opener, exit_path: str, server: Any) -> Outcome:
    out = Outcome()
    stream = opener.open(server, model_for(opener, exit_path))
    out.stream_type = type(stream.__wrapped__ if hasattr(stream, "__wrapped__") else stream)
    out.current_spans.append(trace.get_current_span())
    try:
        if exit_path in ("break_gc", "never_iterated_gc"):
            if exit_path == "break_gc":
                for item in stream:
                    out.see(item)
                    break
            del stream
            gc.collect()
        elif exit_path in ("exhaust", "server_error", "http_error"):
            for item in stream:
                out.see(item)
        elif exit_path in ("with_early", "app_error"):
            with contextlib.closing(stream) as entered:
                exits.take_first(entered, out, exit_path)
        elif exit_path == "close":
            for item in stream:
                out.see(item)
                break
            stream.close()
            stream.close()  # a second close is harmless
        else:  # pragma: no cover - a typo in the matrix
            raise AssertionError(exit_path)
    except (AppError, *opener.sdk_errors) as error:
        out.error = error
    out.current_spans.append(trace.get_current_span())
    return out


async def drive_async(opener: Opener, exit_path: str, server: Any) -> Outcome:
    out = Outcome()
    stream = await opener.aopen(server, model_for(opener, exit_path))
    out.stream_type = type(stream.__wrapped__ if hasattr(stream, "__wrapped__") else stream)
    out.current_spans.append(trace.get_current_span())
    try:
        if exit_path in ("break_gc", "never_iterated_gc"):
            if exit_path == "break_gc":
                async for item in stream:
                    out.see(item)
                    break
            del stream
            gc.collect()
        elif exit_path in ("exhaust", "server_error", "http_error"):
            async for item in stream:
                out.see(item)
        elif exit_path in ("with_early", "app_error"):
            async with contextlib.aclosing(stream) as entered:
                await exits.atake_first(entered, out, exit_path)
        elif exit_path == "aclose":
            async for item in stream:
                out.see(item)
                break
            await stream.aclose()
            await stream.aclose()
        elif exit_path == "cancel":
            out.error = await exits.cancel_after_first(stream, out.see)
        else:  # pragma: no cover
            raise AssertionError(exit_path)
    except (AppError, *opener.sdk_errors) as error:
        out.error = error
    out.current_spans.append(trace.get_current_span())
    return out


def check(
    opener: Opener,
    exit_path: str,
    traced: Outcome,
    baseline: Outcome,
    app_span: Any,
    telemetry: Any,
    ended: list[Any],
) -> dict[str, Any]:
    # The application could not tell the difference.
    exits.check_app_saw_the_same(exit_path, traced, baseline, app_span)
    assert traced.stream_type is baseline.stream_type
    if exit_path in ("server_error", "http_error"):
        assert isinstance(traced.error, opener.sdk_errors)

    # Exactly one LLM span, ended once, the application's span its parent.
    model = model_for(opener, exit_path)
    span = exits.the_stream_span(
        [s for s in telemetry.spans() if s.name == f"{opener.operation} {model}"], ended, app_span
    )
    attributes = dict(span.attributes)
    assert attributes[semconv.STREAM_END_REASON] == END_REASONS[exit_path]
    assert attributes[semconv.STREAM_CHUNKS] == len(traced.items)
    if exit_path in ("break_gc", "with_early", "close", "aclose", "app_error", "cancel"):
        assert len(traced.items) == 1
    if exit_path in ("never_iterated_gc", "http_error"):
        assert not traced.items
    errors = {"server_error": opener.error_type, "http_error": opener.http_error_type}
    exits.check_error_status(span, errors.get(exit_path))
    if exit_path == "exhaust":
        assert attributes[semconv.USAGE_SOURCE] == "reported"
        assert attributes[semconv.USAGE_INPUT_TOKENS] > 0 and attributes[semconv.USAGE_OUTPUT_TOKENS] > 0
    return attributes


def run_sync_case(
    opener: Opener, exit_path: str, server: Any, telemetry: Any, instrument: Callable[[], Any], ended: list[Any]
) -> dict[str, Any]:
    instrumentor = instrument()
    app_tracer = telemetry.tracer_provider.get_tracer("app")
    with app_tracer.start_as_current_span("app") as app_span:
        traced = drive_sync(opener, exit_path, server)
    gc.collect()
    settled = (len(telemetry.spans()), len(ended))
    instrumentor.uninstrument()
    with app_tracer.start_as_current_span("baseline"):
        baseline = drive_sync(opener, exit_path, server)
    gc.collect()
    assert (len(telemetry.spans()) - 1, len(ended)) == settled  # the baseline adds only its app span
    return check(opener, exit_path, traced, baseline, app_span, telemetry, ended)


async def run_async_case(
    opener: Opener, exit_path: str, server: Any, telemetry: Any, instrument: Callable[[], Any], ended: list[Any]
) -> dict[str, Any]:
    instrumentor = instrument()
    app_tracer = telemetry.tracer_provider.get_tracer("app")
    with app_tracer.start_as_current_span("app") as app_span:
        traced = await drive_async(opener, exit_path, server)
    gc.collect()
    await asyncio.sleep(0.05)  # let the loop finalise abandoned async generators
    settled = (len(telemetry.spans()), len(ended))
    instrumentor.uninstrument()
    with app_tracer.start_as_current_span("baseline"):
        baseline = await drive_async(opener, exit_path, server)
    gc.collect()
    await asyncio.sleep(0.05)
    assert (len(telemetry.spans()) - 1, len(ended)) == settled
    return check(opener, exit_path, traced, baseline, app_span, telemetry, ended)


def contract_tests(
    openers: list[Opener], instrumentor: type, start_server: Callable[..., Any]
) -> tuple[Any, Any, Any, Any, Any]:
    """The fixtures and tests of one SDK's generator stream contract, which its test module binds to
    its names (``server, slow_server, quick_collections, test_sync_stream_contract,
    test_async_stream_contract = contract_tests(...)``).

    ``start_server(chunk_delay=...)`` is a context manager yielding the SDK's local server; the
    cancellation exit uses a slow one, so the cancel lands before the second chunk."""

    @pytest.fixture(scope="module")
    def server() -> Iterator[Any]:
        with start_server() as running:
            yield running

    @pytest.fixture(scope="module")
    def slow_server() -> Iterator[Any]:
        with start_server(chunk_delay=0.25) as running:
            yield running

    @pytest.fixture(scope="module", autouse=True)
    def quick_collections() -> Iterator[None]:
        """The exits collect garbage; freezing what exists already keeps each collection short."""
        gc.collect()
        gc.freeze()
        yield
        gc.unfreeze()

    def cases(exits: list[str]) -> list[Any]:
        return [
            pytest.param(opener, exit_path, id=f"{opener.id}-{exit_path}") for opener in openers for exit_path in exits
        ]

    @pytest.mark.parametrize(("opener", "exit_path"), cases(SYNC_EXITS))
    def test_sync_stream_contract(
        opener: Opener, exit_path: str, server: Any, telemetry: Any, instrument_with: Any, span_ends: list[Any]
    ) -> None:
        run_sync_case(opener, exit_path, server, telemetry, lambda: instrument_with(instrumentor), span_ends)

    @pytest.mark.parametrize(("opener", "exit_path"), cases(ASYNC_EXITS))
    async def test_async_stream_contract(
        opener: Opener,
        exit_path: str,
        server: Any,
        slow_server: Any,
        telemetry: Any,
        instrument_with: Any,
        span_ends: list[Any],
    ) -> None:
        chosen = slow_server if exit_path == "cancel" else server
        await run_async_case(opener, exit_path, chosen, telemetry, lambda: instrument_with(instrumentor), span_ends)

    return server, slow_server, quick_collections, test_sync_stream_contract, test_async_stream_contract
