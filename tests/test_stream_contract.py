"""The stream contract: a streamed call's span ends exactly once on every exit path, records what was
seen so far, and the application cannot tell the stream was traced.

Each case runs one way of opening a stream (``METHODS``) with one way of leaving it (``SYNC_EXITS`` /
``ASYNC_EXITS``) twice against the simulator: instrumented, then after ``uninstrument()`` as the
baseline. Both runs must show the application the same items, the same exception and the same SDK
types; the instrumented run must produce exactly one LLM span, ended once, with the right
``tokentrace.stream.end_reason`` and ``tokentrace.stream.chunks``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gc
import logging
import ssl
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, ExitStack, nullcontext
from dataclasses import dataclass, field
from typing import Any

import openai
import pytest
from observed import fingerprint
from opentelemetry import trace

from tests.providers import stream_exits as exits
from tests.providers.stream_exits import AppError
from tokentrace.core import semconv
from tokentrace.core.safety import internal_errors
from tokentrace.demo.simulator import Simulator

CHAT_MODEL = "gpt-4o-mini"
COMPLETIONS_MODEL = "gpt-3.5-turbo-instruct"
FAULT_MODEL = "midstream-error"
PROMPT = "Walk me through the stream contract, one chunk at a time."
MESSAGES = [{"role": "user", "content": PROMPT}]
CHUNK_DELAY = 0.25  # the slow simulator's pause between events: cancellation lands before chunk two


# -- ways of opening a stream -----------------------------------------------------------------------


@dataclass
class Opened:
    stream: Any  # what the application iterates and closes
    traced: Any  # the SDK stream object (for helpers, the raw stream they read)
    raw: Any = None  # a raw-response wrapper, held like an application holds it


@dataclass(frozen=True)
class Method:
    id: str
    operation: str
    model: str
    usage_source: str  # what an exhausted stream reports: "reported" or "estimated"
    managed: bool  # opened through a context manager (helper streams, with_streaming_response)
    helper: str | None  # "chat" or "responses" for the SDK's .stream() helpers
    open: Callable[[Any, str, ExitStack], Opened]
    aopen: Callable[[Any, str, AsyncExitStack], Awaitable[Opened]]
    env: tuple[tuple[str, str], ...] = ()  # settings to instrument with


def _plain(stream: Any) -> Opened:
    return Opened(stream, stream)


def _helper(helper: Any) -> Opened:
    return Opened(helper, helper._raw_stream)


async def _a_chat(client: Any, model: str, stack: AsyncExitStack, **extra: Any) -> Opened:
    return _plain(await client.chat.completions.create(model=model, messages=MESSAGES, stream=True, **extra))


async def _a_chat_helper(client: Any, model: str, stack: AsyncExitStack) -> Opened:
    manager = client.chat.completions.stream(model=model, messages=MESSAGES)
    return _helper(await stack.enter_async_context(manager))


async def _a_responses(client: Any, model: str, stack: AsyncExitStack) -> Opened:
    return _plain(await client.responses.create(model=model, input=PROMPT, stream=True))


async def _a_responses_helper(client: Any, model: str, stack: AsyncExitStack) -> Opened:
    return _helper(await stack.enter_async_context(client.responses.stream(model=model, input=PROMPT)))


async def _a_completions(client: Any, model: str, stack: AsyncExitStack) -> Opened:
    return _plain(await client.completions.create(model=model, prompt=PROMPT, stream=True))


async def _a_raw(client: Any, model: str, stack: AsyncExitStack) -> Opened:
    raw = await client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES, stream=True)
    stream = raw.parse()  # LegacyAPIResponse.parse() is synchronous even on the async client
    return Opened(stream, stream, raw)


async def _a_streaming(client: Any, model: str, stack: AsyncExitStack) -> Opened:
    streaming = client.chat.completions.with_streaming_response
    manager = streaming.create(model=model, messages=MESSAGES, stream=True)
    raw = await stack.enter_async_context(manager)
    stream = await raw.parse()
    return Opened(stream, stream, raw)


def _streaming(client: Any, model: str, stack: ExitStack) -> Opened:
    raw = stack.enter_context(
        client.chat.completions.with_streaming_response.create(model=model, messages=MESSAGES, stream=True)
    )
    stream = raw.parse()
    return Opened(stream, stream, raw)


def _raw(client: Any, model: str, stack: ExitStack) -> Opened:
    raw = client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES, stream=True)
    stream = raw.parse()
    return Opened(stream, stream, raw)


USAGE_OPTIONS = {"stream_options": {"include_usage": True}}

METHODS = [
    Method(
        "chat.create",
        "chat",
        CHAT_MODEL,
        "estimated",
        False,
        None,
        lambda c, m, s: _plain(c.chat.completions.create(model=m, messages=MESSAGES, stream=True)),
        _a_chat,
    ),
    Method(
        "chat.create+include_usage",
        "chat",
        CHAT_MODEL,
        "reported",
        False,
        None,
        lambda c, m, s: _plain(c.chat.completions.create(model=m, messages=MESSAGES, stream=True, **USAGE_OPTIONS)),
        lambda c, m, s: _a_chat(c, m, s, **USAGE_OPTIONS),
    ),
    Method(
        "chat.stream",
        "chat",
        CHAT_MODEL,
        "estimated",
        True,
        "chat",
        lambda c, m, s: _helper(s.enter_context(c.chat.completions.stream(model=m, messages=MESSAGES))),
        _a_chat_helper,
    ),
    Method(
        "responses.create",
        "chat",
        CHAT_MODEL,
        "reported",
        False,
        None,
        lambda c, m, s: _plain(c.responses.create(model=m, input=PROMPT, stream=True)),
        _a_responses,
    ),
    Method(
        "responses.stream",
        "chat",
        CHAT_MODEL,
        "reported",
        True,
        "responses",
        lambda c, m, s: _helper(s.enter_context(c.responses.stream(model=m, input=PROMPT))),
        _a_responses_helper,
    ),
    Method(
        "completions.create",
        "text_completion",
        COMPLETIONS_MODEL,
        "estimated",
        False,
        None,
        lambda c, m, s: _plain(c.completions.create(model=m, prompt=PROMPT, stream=True)),
        _a_completions,
    ),
    Method("chat.with_raw_response", "chat", CHAT_MODEL, "estimated", False, None, _raw, _a_raw),
    Method("chat.with_streaming_response", "chat", CHAT_MODEL, "estimated", True, None, _streaming, _a_streaming),
]
# With TOKENTRACE_STREAM_INCLUDE_USAGE we ask for the usage chunk and hide it: the application must
# still see exactly the chunks of an uninstrumented run, and the span count only those.
INJECTED = (("TOKENTRACE_STREAM_INCLUDE_USAGE", "true"),)
METHODS += [
    dataclasses.replace(m, id=f"{m.id}+injected_usage", usage_source="reported", env=INJECTED)
    for m in METHODS
    if m.id in ("chat.create", "chat.stream", "completions.create")
]
INJECTED_EXITS = frozenset({"exhaust", "final", "break_gc", "close", "server_error", "cancel"})

# exit path -> tokentrace.stream.end_reason
END_REASONS = {
    "exhaust": "completed",
    "final": "completed",
    "until_done": "completed",
    "break_gc": "abandoned",
    "with_early": "closed",
    "close": "closed",
    "aclose": "closed",
    "server_error": "error",
    "app_error": "closed",
    "cancel": "cancelled",
    "never_iterated_gc": "abandoned",
}
SYNC_EXITS = [
    "exhaust",
    "final",
    "until_done",
    "break_gc",
    "with_early",
    "close",
    "server_error",
    "app_error",
    "never_iterated_gc",
]
ASYNC_EXITS = [*SYNC_EXITS, "aclose", "cancel"]


def _applies(method: Method, exit_path: str) -> bool:
    if method.env and exit_path not in INJECTED_EXITS:
        return False
    if exit_path in ("final", "until_done"):
        return method.helper is not None
    if exit_path == "aclose":
        return method.helper is None  # helper streams have no aclose(); AsyncStream does (openai>=3)
    return True


# AsyncStream.aclose() arrived in openai 3; on 1.x/2.x an application can only close().
_NO_ACLOSE = pytest.mark.skipif(
    not hasattr(openai.AsyncStream, "aclose"),
    reason=f"openai {openai.__version__}: AsyncStream has no aclose()",
)


def _cases(exits: list[str]) -> list[Any]:
    return [
        pytest.param(
            method, exit_path, id=f"{method.id}-{exit_path}", marks=[_NO_ACLOSE] if exit_path == "aclose" else []
        )
        for method in METHODS
        for exit_path in exits
        if _applies(method, exit_path)
    ]


# -- what the application observed -------------------------------------------------------------------


@dataclass
class Outcome:
    items: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] | None = None
    error: BaseException | None = None
    raised: AppError | None = None  # what the application's own code raised
    current_spans: list[Any] = field(default_factory=list)
    is_sdk_stream: bool = False
    has_aclose: bool | None = None
    response_status: int | None = None
    with_returned_self: bool | None = None
    second_close: Callable[[], Any] | None = None

    def opened(self, opened: Opened, stream_type: type) -> None:
        self.is_sdk_stream = isinstance(opened.traced, stream_type)
        self.has_aclose = hasattr(opened.traced, "aclose")  # the proxy adds no method the SDK lacks
        self.response_status = opened.traced.response.status_code
        self.current_spans.append(trace.get_current_span())

    def see(self, item: Any) -> None:
        self.items.append(fingerprint(item))
        self.current_spans.append(trace.get_current_span())

    def raw_chunks(self, method: Method) -> int:
        """Raw stream chunks behind the items seen: the chat helper emits one ``chunk`` event per chunk."""
        if method.helper == "chat":
            return sum(1 for item in self.items if item["data"].get("type") == "chunk")
        return len(self.items)


def _final_of(stream: Any) -> Any:
    if hasattr(stream, "get_final_completion"):
        return stream.get_final_completion()
    return stream.get_final_response()


async def _afinal_of(stream: Any) -> Any:
    if hasattr(stream, "get_final_completion"):
        return await stream.get_final_completion()
    return await stream.get_final_response()


def drive_sync(method: Method, exit_path: str, client: Any) -> Outcome:
    out = Outcome()
    model = FAULT_MODEL if exit_path == "server_error" else method.model
    if exit_path in ("break_gc", "never_iterated_gc"):
        stack = ExitStack()  # never closed: the application just drops everything
        opened = method.open(client, model, stack)
        out.opened(opened, openai.Stream)
        if exit_path == "break_gc":
            for item in opened.stream:
                out.see(item)
                break
        del opened, stack
        gc.collect()
        out.current_spans.append(trace.get_current_span())
        out.second_close = gc.collect
        return out
    try:
        with ExitStack() as stack:
            opened = method.open(client, model, stack)
            out.opened(opened, openai.Stream)
            stream = opened.stream
            if exit_path == "exhaust":
                for item in stream:
                    out.see(item)
            elif exit_path == "final":
                out.final = fingerprint(_final_of(stream))
            elif exit_path == "until_done":
                assert stream.until_done() is stream
                out.final = fingerprint(_final_of(stream))
            elif exit_path in ("with_early", "app_error"):
                # Managed streams are already inside the manager's ``with``; leave that one.
                context = nullcontext(stream) if method.managed else stream
                with context as entered:
                    if not method.managed:
                        out.with_returned_self = entered is stream
                    exits.take_first(entered, out, exit_path)
                    if method.managed:
                        stack.close()
            elif exit_path == "close":
                for item in stream:
                    out.see(item)
                    break
                stream.close()
            elif exit_path == "server_error":
                for item in stream:
                    out.see(item)
            else:  # pragma: no cover - a typo in the matrix
                raise AssertionError(exit_path)
    except (AppError, openai.APIError) as error:
        out.error = error
    out.current_spans.append(trace.get_current_span())  # nothing of ours is left attached

    def second_close() -> None:
        opened.stream.close()
        if opened.stream is not opened.traced:
            opened.traced.close()
        if method.managed and opened.raw is not None:
            opened.raw.close()

    out.second_close = second_close
    return out


async def drive_async(method: Method, exit_path: str, client: Any) -> Outcome:
    out = Outcome()
    model = FAULT_MODEL if exit_path == "server_error" else method.model
    if exit_path in ("break_gc", "never_iterated_gc"):
        stack = AsyncExitStack()
        opened = await method.aopen(client, model, stack)
        out.opened(opened, openai.AsyncStream)
        if exit_path == "break_gc":
            async for item in opened.stream:
                out.see(item)
                break
        del opened, stack
        gc.collect()
        out.current_spans.append(trace.get_current_span())
        out.second_close = gc.collect
        return out
    try:
        async with AsyncExitStack() as stack:
            opened = await method.aopen(client, model, stack)
            out.opened(opened, openai.AsyncStream)
            stream = opened.stream
            if exit_path == "exhaust":
                async for item in stream:
                    out.see(item)
            elif exit_path == "final":
                out.final = fingerprint(await _afinal_of(stream))
            elif exit_path == "until_done":
                assert await stream.until_done() is stream
                out.final = fingerprint(await _afinal_of(stream))
            elif exit_path in ("with_early", "app_error"):
                context = nullcontext(stream) if method.managed else stream
                async with context as entered:
                    if not method.managed:
                        out.with_returned_self = entered is stream
                    await exits.atake_first(entered, out, exit_path)
                    if method.managed:
                        await stack.aclose()
            elif exit_path in ("close", "aclose"):
                async for item in stream:
                    out.see(item)
                    break
                await (stream.aclose() if exit_path == "aclose" else stream.close())
            elif exit_path == "server_error":
                async for item in stream:
                    out.see(item)
            elif exit_path == "cancel":
                out.error = await exits.cancel_after_first(stream, out.see)
            else:  # pragma: no cover - a typo in the matrix
                raise AssertionError(exit_path)
    except (AppError, openai.APIError) as error:
        out.error = error
    out.current_spans.append(trace.get_current_span())

    async def second_close() -> None:
        await opened.stream.close()
        if opened.stream is not opened.traced:
            await opened.traced.close()
        if hasattr(opened.traced, "aclose"):
            await opened.traced.aclose()
        if method.managed and opened.raw is not None:
            await opened.raw.close()

    out.second_close = second_close
    return out


# -- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slow_simulator() -> Any:
    with Simulator(seed=2, chunk_delay=CHUNK_DELAY) as sim:
        yield sim


@pytest.fixture(scope="module", autouse=True)
def _quick_collections() -> Any:
    """The GC exit paths call ``gc.collect()``; freezing the heap built by imports and tiktoken keeps
    each collection to the objects the tests made, which are collected as usual."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@functools.cache
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()  # built once: loading CA certificates costs ~40 ms per client


# Every run gets a fresh client: the SDK binds ``with_streaming_response.create`` when first used, so a
# client used while instrumented would keep calling the traced method after ``uninstrument()``.
def _sync_client(sim: Any) -> Any:
    return openai.OpenAI(
        base_url=sim.base_url,
        api_key="sk-test",
        max_retries=0,
        http_client=openai.DefaultHttpxClient(verify=_tls()),
    )


def _async_client(sim: Any) -> Any:
    return openai.AsyncOpenAI(
        base_url=sim.base_url,
        api_key="sk-test",
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(verify=_tls()),
    )


def _llm_spans(telemetry: Any, method: Method, model: str) -> list[Any]:
    return [s for s in telemetry.spans() if s.name == f"{method.operation} {model}"]


# -- the checks shared by sync and async --------------------------------------------------------------


def _check(
    method: Method,
    exit_path: str,
    traced: Outcome,
    baseline: Outcome,
    app_span: Any,
    telemetry: Any,
    ended: list[Any],
    expected_total_chunks: int | None,
) -> Any:
    model = FAULT_MODEL if exit_path == "server_error" else method.model

    # The application could not tell the difference.
    exits.check_app_saw_the_same(exit_path, traced, baseline, app_span)
    assert traced.final == baseline.final
    assert traced.is_sdk_stream and baseline.is_sdk_stream
    assert traced.has_aclose is baseline.has_aclose
    assert traced.response_status == baseline.response_status == 200
    assert traced.with_returned_self is baseline.with_returned_self
    if exit_path in ("with_early", "app_error") and not method.managed:
        assert traced.with_returned_self is True
    if exit_path == "server_error":
        assert isinstance(traced.error, openai.APIError)
    if exit_path in ("exhaust", "break_gc", "with_early", "close", "aclose", "app_error", "cancel"):
        assert traced.items, "the exit path never saw a chunk"

    # Exactly one LLM span, ended exactly once, a child of the application's span.
    span = exits.the_stream_span(_llm_spans(telemetry, method, model), ended, app_span)
    attributes = dict(span.attributes)
    assert attributes[semconv.STREAM_END_REASON] == END_REASONS[exit_path]

    # Chunks recorded are the chunks the application consumed.
    expected_chunks = expected_total_chunks if exit_path in ("final", "until_done") else traced.raw_chunks(method)
    if exit_path in ("break_gc", "with_early", "close", "aclose", "app_error", "cancel"):
        assert expected_chunks == 1
    if exit_path == "never_iterated_gc":
        assert expected_chunks == 0
    # An injected usage chunk is read for its usage but not counted: the application never saw it.
    assert attributes[semconv.STREAM_CHUNKS] == expected_chunks

    exits.check_error_status(span, "openai.APIError" if exit_path == "server_error" else None)

    if END_REASONS[exit_path] == "completed":
        _check_tokens(method, traced, attributes)
    return span


def _check_tokens(method: Method, traced: Outcome, attributes: dict[str, Any]) -> None:
    assert attributes[semconv.USAGE_SOURCE] == method.usage_source
    input_tokens = attributes[semconv.USAGE_INPUT_TOKENS]
    output_tokens = attributes[semconv.USAGE_OUTPUT_TOKENS]
    if method.usage_source == "estimated":
        assert input_tokens > 0 and output_tokens > 0
        return
    assert input_tokens > 0 and output_tokens > 0
    last = traced.items[-1]["data"] if traced.items else {}
    if method.env:  # the usage chunk we asked for was hidden from the application
        assert all(item["data"].get("usage") is None for item in traced.items)
    elif "response" in last:  # Responses: usage arrives on response.completed
        usage = last["response"]["usage"]
        assert (input_tokens, output_tokens) == (usage["input_tokens"], usage["output_tokens"])
    elif "usage" in last:  # the application's own include_usage: the last chunk it saw
        usage = last["usage"]
        assert (input_tokens, output_tokens) == (usage["prompt_tokens"], usage["completion_tokens"])


def _count_total_chunks(method: Method, client: Any) -> int:
    """Chunks in a full uninstrumented stream of the API a helper wraps."""
    if method.helper == "chat":
        return len(list(client.chat.completions.create(model=method.model, messages=MESSAGES, stream=True)))
    return len(list(client.responses.create(model=method.model, input=PROMPT, stream=True)))


async def _acount_total_chunks(method: Method, client: Any) -> int:
    if method.helper == "chat":
        stream = await client.chat.completions.create(model=method.model, messages=MESSAGES, stream=True)
    else:
        stream = await client.responses.create(model=method.model, input=PROMPT, stream=True)
    return len([chunk async for chunk in stream])


# -- the matrix ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "exit_path"), _cases(SYNC_EXITS))
def test_sync_stream_contract(
    method: Method,
    exit_path: str,
    simulator: Any,
    telemetry: Any,
    instrument: Any,
    span_ends: list[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    instrumentor = instrument(**dict(method.env))
    app_tracer = telemetry.tracer_provider.get_tracer("app")
    errors_before = sum(internal_errors.values())
    caplog.set_level(logging.WARNING)

    with _sync_client(simulator) as client, app_tracer.start_as_current_span("app") as app_span:
        traced = drive_sync(method, exit_path, client)
        settled = (len(telemetry.spans()), len(span_ends))
        traced.second_close()  # a second close/exit creates nothing and raises nothing
        assert (len(telemetry.spans()), len(span_ends)) == settled

    instrumentor.uninstrument()
    with _sync_client(simulator) as client, app_tracer.start_as_current_span("app"):
        baseline = drive_sync(method, exit_path, client)
        baseline.second_close()
        total = _count_total_chunks(method, client) if exit_path in ("final", "until_done") else None

    _check(method, exit_path, traced, baseline, app_span, telemetry, span_ends, total)
    assert sum(internal_errors.values()) == errors_before, dict(internal_errors)
    assert not [r for r in caplog.records if "ended span" in r.getMessage()]


@pytest.mark.parametrize(("method", "exit_path"), _cases(ASYNC_EXITS))
async def test_async_stream_contract(
    method: Method,
    exit_path: str,
    simulator: Any,
    slow_simulator: Any,
    telemetry: Any,
    instrument: Any,
    span_ends: list[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim = slow_simulator if exit_path == "cancel" else simulator
    instrumentor = instrument(**dict(method.env))
    app_tracer = telemetry.tracer_provider.get_tracer("app")
    errors_before = sum(internal_errors.values())
    caplog.set_level(logging.WARNING)

    async with _async_client(sim) as client:
        with app_tracer.start_as_current_span("app") as app_span:
            traced = await drive_async(method, exit_path, client)
            settled = (len(telemetry.spans()), len(span_ends))
            result = traced.second_close()
            if asyncio.iscoroutine(result):
                await result
            assert (len(telemetry.spans()), len(span_ends)) == settled

    instrumentor.uninstrument()
    async with _async_client(sim) as client:
        with app_tracer.start_as_current_span("app"):
            baseline = await drive_async(method, exit_path, client)
            result = baseline.second_close()
            if asyncio.iscoroutine(result):
                await result
            total = None
            if exit_path in ("final", "until_done"):
                total = await _acount_total_chunks(method, client)

    _check(method, exit_path, traced, baseline, app_span, telemetry, span_ends, total)
    assert sum(internal_errors.values()) == errors_before, dict(internal_errors)
    assert not [r for r in caplog.records if "ended span" in r.getMessage()]


# -- the proxy is the SDK's stream ----------------------------------------------------------------------


def test_sync_proxy_passes_through(client: Any, telemetry: Any, instrumented: Any) -> None:
    stream = client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, stream=True)
    assert isinstance(stream, openai.Stream)
    assert stream.response.status_code == 200
    assert stream.response.headers["content-type"].startswith("text/event-stream")
    with stream as entered:
        assert entered is stream
        assert iter(stream) is stream
        next(stream)
    assert telemetry.span().attributes[semconv.STREAM_END_REASON] == "closed"


async def test_async_proxy_passes_through(aclient: Any, telemetry: Any, instrumented: Any) -> None:
    stream = await aclient.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, stream=True)
    assert isinstance(stream, openai.AsyncStream)
    assert stream.response.status_code == 200
    async with stream as entered:
        assert entered is stream
        assert stream.__aiter__() is stream
        await stream.__anext__()
    assert telemetry.span().attributes[semconv.STREAM_END_REASON] == "closed"
