"""The stream contract for google-genai: each way of opening a stream x each way of leaving it.

``Models.generate_content_stream`` returns a generator and ``AsyncModels.generate_content_stream`` a
coroutine resolving to an async generator; neither is a context manager, so the ways out are:
exhaust, break + GC, ``close()`` / ``aclose()``, a server error mid-stream, the application's own
exception in the loop, never iterating + GC, and (async) task cancellation. Each case runs twice,
instrumented and then uninstrumented as the baseline: the application must see the same chunks, the
same exception and the same object shape; the instrumented run must leave exactly one span, ended
once, with the right ``tokentrace.stream.end_reason`` and chunk count.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from google.genai import _api_client, errors
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from tests.providers.servers.google_genai import GeminiServer, client_for, observed
from tests.providers.stream_exits import AppError, cancel_after_first, the_stream_span
from tokentrace.core import semconv
from tokentrace.core.safety import internal_errors
from tokentrace.instrumentation.google_genai import GoogleGenAIInstrumentor

MODEL = "gemini-2.5-flash"
FAULT_MODEL = "midstream-error"
PROMPT = "Stream four pieces please chunks=4"
CHUNK_DELAY = 0.25  # the slow server's pause between chunks: a cancellation lands before chunk two

END_REASONS = {
    "exhaust": "completed",
    "break_gc": "abandoned",
    "close": "closed",
    "aclose": "closed",
    "server_error": "error",
    "app_error": "abandoned",  # no ``with`` to leave: the generator is dropped with the exception
    "cancel": "cancelled",
    "never_iterated_gc": "abandoned",
}
SYNC_EXITS = ["exhaust", "break_gc", "close", "server_error", "app_error", "never_iterated_gc"]
ASYNC_EXITS = ["exhaust", "break_gc", "aclose", "server_error", "app_error", "cancel", "never_iterated_gc"]
APIS = ["gemini", "vertex"]

# SDK behaviour the matrix depends on, absent from the oldest supported google-genai (1.0.0): an error
# event inside an SSE stream raising APIError, and async streams on a native async HTTP client (1.0
# ran the sync client in a thread and yielded buffered chunks, so a cancellation never landed mid-stream).
MIDSTREAM_ERRORS = '{"error":' in inspect.getsource(_api_client)
_CLIENT = getattr(_api_client, "BaseApiClient", None) or _api_client.ApiClient  # renamed in 1.x
NATIVE_ASYNC = "to_thread" not in inspect.getsource(_CLIENT._async_request)


def _applies(exit_path: str) -> Any:
    reason = None
    if exit_path == "server_error" and not MIDSTREAM_ERRORS:
        reason = "this google-genai ignores error events inside a stream"
    if exit_path == "cancel" and not NATIVE_ASYNC:
        reason = "this google-genai's async stream is not cancellable mid-stream"
    return pytest.param(exit_path, marks=pytest.mark.skipif(reason is not None, reason=reason or ""))


@dataclass
class Outcome:
    items: list[dict[str, Any]] = field(default_factory=list)
    error: BaseException | None = None
    shape: dict[str, bool] = field(default_factory=dict)
    current_spans: list[Any] = field(default_factory=list)

    def opened(self, stream: Any) -> None:
        self.shape = {
            name: hasattr(stream, name)
            for name in ("__next__", "__anext__", "close", "aclose", "__enter__", "__aenter__", "send", "asend")
        }
        self.current_spans.append(trace.get_current_span())

    def see(self, item: Any) -> None:
        self.items.append(observed(item))
        self.current_spans.append(trace.get_current_span())


def drive_sync(exit_path: str, client: Any) -> Outcome:
    out = Outcome()
    model = FAULT_MODEL if exit_path == "server_error" else MODEL
    stream = client.models.generate_content_stream(model=model, contents=PROMPT)
    out.opened(stream)
    try:
        if exit_path in ("exhaust", "server_error"):
            for chunk in stream:
                out.see(chunk)
        elif exit_path in ("break_gc", "close", "app_error"):
            for chunk in stream:
                out.see(chunk)
                if exit_path == "app_error":
                    raise AppError("the application's own bug")
                break
            if exit_path == "close":
                stream.close()
                stream.close()  # a second close is a no-op for the generator and for us
    except (AppError, errors.APIError) as error:
        out.error = error
    del stream
    gc.collect()
    out.current_spans.append(trace.get_current_span())
    return out


async def drive_async(exit_path: str, client: Any) -> Outcome:
    out = Outcome()
    model = FAULT_MODEL if exit_path == "server_error" else MODEL
    stream = await client.aio.models.generate_content_stream(model=model, contents=PROMPT)
    out.opened(stream)
    try:
        if exit_path in ("exhaust", "server_error"):
            async for chunk in stream:
                out.see(chunk)
        elif exit_path in ("break_gc", "aclose", "app_error"):
            async for chunk in stream:
                out.see(chunk)
                if exit_path == "app_error":
                    raise AppError("the application's own bug")
                break
            if exit_path == "aclose":
                await stream.aclose()
                await stream.aclose()
        elif exit_path == "cancel":
            out.error = await cancel_after_first(stream, out.see)
    except (AppError, errors.APIError) as error:
        out.error = error
    del stream
    gc.collect()
    await asyncio.sleep(0)  # let the loop finalise a dropped async generator, as an app's loop would
    out.current_spans.append(trace.get_current_span())
    return out


# -- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[GeminiServer]:
    with GeminiServer() as s:
        yield s


@pytest.fixture(scope="module")
def slow_server() -> Iterator[GeminiServer]:
    with GeminiServer(chunk_delay=CHUNK_DELAY) as s:
        yield s


@pytest.fixture(scope="module", autouse=True)
def _quick_collections() -> Iterator[None]:
    """Collect what earlier test modules left behind before counting span ends, then freeze the heap
    so each case's ``gc.collect()`` only walks the objects the case made."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


# -- checks ---------------------------------------------------------------------------------------------


def _check(
    exit_path: str, traced: Outcome, baseline: Outcome, app_span: Any, telemetry: Any, ended: list[Any], api: str
) -> None:
    # The application could not tell the difference.
    assert traced.items == baseline.items
    assert traced.shape == baseline.shape
    assert type(traced.error) is type(baseline.error)
    assert str(traced.error) == str(baseline.error)
    if traced.error is not None:
        assert type(traced.error.__context__) is type(baseline.error.__context__)
    if exit_path == "server_error":
        assert isinstance(traced.error, errors.ServerError) and traced.error.code == 500
    if exit_path == "cancel":
        assert isinstance(traced.error, asyncio.CancelledError)
    if exit_path != "never_iterated_gc":
        assert traced.items, "the exit path never saw a chunk"
    assert traced.current_spans and all(span is app_span for span in traced.current_spans)

    model = FAULT_MODEL if exit_path == "server_error" else MODEL
    span = the_stream_span([s for s in telemetry.spans() if s.name == f"generate_content {model}"], ended, app_span)
    attributes = dict(span.attributes)
    assert attributes[semconv.PROVIDER_NAME] == ("gcp.vertex_ai" if api == "vertex" else "gcp.gemini")
    assert attributes[semconv.STREAM_END_REASON] == END_REASONS[exit_path]
    assert attributes[semconv.STREAM_CHUNKS] == len(traced.items)
    if exit_path in ("break_gc", "close", "aclose", "app_error", "cancel"):
        assert len(traced.items) == 1
    if exit_path == "server_error":
        assert span.status.status_code is StatusCode.ERROR
        assert attributes[semconv.ERROR_TYPE] == "google.genai.errors.ServerError"
    else:
        assert span.status.status_code is StatusCode.UNSET
        assert semconv.ERROR_TYPE not in attributes
    if traced.items:  # the usage is the running usage of the last chunk seen, never a sum
        usage = traced.items[-1]["data"]["usage_metadata"]
        assert attributes[semconv.USAGE_INPUT_TOKENS] == usage["prompt_token_count"] + usage.get(
            "tool_use_prompt_token_count", 0
        )
        assert attributes[semconv.USAGE_OUTPUT_TOKENS] == usage["candidates_token_count"] + usage.get(
            "thoughts_token_count", 0
        )
    else:
        assert semconv.USAGE_INPUT_TOKENS not in attributes
    if exit_path == "exhaust":
        assert len(traced.items) == 4
        assert attributes[semconv.RESPONSE_FINISH_REASONS] == ("stop",)
        assert attributes[semconv.USAGE_COST_AMOUNT] > 0


# -- the matrix ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("exit_path", [_applies(e) for e in SYNC_EXITS])
def test_sync_stream_contract(
    exit_path: str,
    api: str,
    server: GeminiServer,
    telemetry: Any,
    instrument_with: Any,
    span_ends: list[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    instrumentor = instrument_with(GoogleGenAIInstrumentor)
    app_tracer = telemetry.tracer_provider.get_tracer("app")
    errors_before = sum(internal_errors.values())
    caplog.set_level(logging.WARNING)
    vertex = api == "vertex"
    with app_tracer.start_as_current_span("app") as app_span:
        traced = drive_sync(exit_path, client_for(server, vertex=vertex))
    instrumentor.uninstrument()
    with app_tracer.start_as_current_span("app"):
        baseline = drive_sync(exit_path, client_for(server, vertex=vertex))
    _check(exit_path, traced, baseline, app_span, telemetry, span_ends, api)
    assert sum(internal_errors.values()) == errors_before, dict(internal_errors)
    assert not [r for r in caplog.records if "ended span" in r.getMessage()]


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("exit_path", [_applies(e) for e in ASYNC_EXITS])
async def test_async_stream_contract(
    exit_path: str,
    api: str,
    server: GeminiServer,
    slow_server: GeminiServer,
    telemetry: Any,
    instrument_with: Any,
    span_ends: list[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim = slow_server if exit_path == "cancel" else server
    instrumentor = instrument_with(GoogleGenAIInstrumentor)
    app_tracer = telemetry.tracer_provider.get_tracer("app")
    errors_before = sum(internal_errors.values())
    caplog.set_level(logging.WARNING)
    vertex = api == "vertex"
    with app_tracer.start_as_current_span("app") as app_span:
        traced = await drive_async(exit_path, client_for(sim, vertex=vertex))
    instrumentor.uninstrument()
    with app_tracer.start_as_current_span("app"):
        baseline = await drive_async(exit_path, client_for(sim, vertex=vertex))
    _check(exit_path, traced, baseline, app_span, telemetry, span_ends, api)
    assert sum(internal_errors.values()) == errors_before, dict(internal_errors)
    assert not [r for r in caplog.records if "ended span" in r.getMessage()]
