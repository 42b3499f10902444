"""The stream contract and fault-injection checks for SDKs that speak Chat Completions (Mistral, Groq).

Modelled on ``tests/test_stream_contract.py`` and ``tests/test_fault_injection.py``; a provider's test
modules describe how to drive its SDK (:class:`Provider`) and get the same matrix: each way of
opening a stream by each way of leaving it, run instrumented and then uninstrumented as the baseline.
The application must observe the same items, exception and SDK types; the instrumented run must leave
exactly one span, ended once, with the right ``tokentrace.stream.end_reason`` and chunk count.
"""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from observed import fingerprint
from opentelemetry import trace
from opentelemetry.trace import StatusCode

import tokentrace
from tokentrace.core import semconv
from tokentrace.core.recorder import Recorder
from tokentrace.core.safety import internal_errors

PROMPT = "Walk me through the stream contract one chunk at a time"
MESSAGES = [{"role": "user", "content": PROMPT}]
FAULT_MODEL = "midstream-error"
FAILING_MODEL = "error-429"


class AppError(Exception):
    """Raised by the application's own loop body."""


@dataclass(frozen=True)
class StreamMethod:
    """One way of opening a stream: ``open(client, model)`` / ``aopen(client, model)``."""

    id: str
    open: Callable[[Any, str], Any]
    aopen: Callable[[Any, str], Awaitable[Any]]


@dataclass(frozen=True)
class Provider:
    """How a provider's test modules drive its SDK against its local server."""

    name: str
    instrumentor: type
    model: str  # a model the price catalogue knows
    sync_client: Callable[[Any], Any]  # server -> client
    async_client: Callable[[Any], Any]
    stream_types: tuple[type, type]  # the SDK's sync and async stream classes
    stream_methods: tuple[StreamMethod, ...]
    midstream_error: type[BaseException]  # what the SDK raises when a stream breaks
    midstream_error_type: str  # its error.type
    status_error: type[BaseException]  # what the SDK raises for an error status
    status_error_type: str  # its error.type
    usage_of: Callable[[dict[str, Any]], dict[str, Any] | None]  # usage in an item's fingerprint data
    chat: Callable[[Any, str], Any]  # one non-streamed call: (client, model) -> result
    achat: Callable[[Any, str], Awaitable[Any]]
    embed: Callable[[Any], Any]
    aembed: Callable[[Any], Awaitable[Any]]
    close_async: Callable[[Any], Awaitable[Any]]  # how to close an async client


# -- the stream contract -------------------------------------------------------------------------------

END_REASONS = {
    "exhaust": "completed",
    "break_gc": "abandoned",
    "with_early": "closed",
    "close": "closed",
    "server_error": "error",
    "app_error": "closed",
    "cancel": "cancelled",
    "never_iterated_gc": "abandoned",
}
SYNC_EXITS = ["exhaust", "break_gc", "with_early", "close", "server_error", "app_error", "never_iterated_gc"]
ASYNC_EXITS = [*SYNC_EXITS, "cancel"]


@dataclass
class Outcome:
    items: list[dict[str, Any]] = field(default_factory=list)
    error: BaseException | None = None
    raised: AppError | None = None
    current_spans: list[Any] = field(default_factory=list)
    is_sdk_stream: bool = False
    has_aclose: bool | None = None
    status: int | None = None
    with_returned_self: bool | None = None
    stream: Any = None

    def opened(self, stream: Any, stream_type: type) -> None:
        self.is_sdk_stream = isinstance(stream, stream_type)
        self.has_aclose = hasattr(stream, "aclose")
        self.status = stream.response.status_code
        self.current_spans.append(trace.get_current_span())

    def see(self, item: Any) -> None:
        self.items.append(fingerprint(item))
        self.current_spans.append(trace.get_current_span())


def drive_sync(provider: Provider, method: StreamMethod, exit_path: str, client: Any) -> Outcome:
    out = Outcome()
    model = FAULT_MODEL if exit_path == "server_error" else provider.model
    if exit_path in ("break_gc", "never_iterated_gc"):
        stream = method.open(client, model)
        out.opened(stream, provider.stream_types[0])
        if exit_path == "break_gc":
            for item in stream:
                out.see(item)
                break
        del stream
        gc.collect()
        out.current_spans.append(trace.get_current_span())
        return out
    stream = method.open(client, model)
    out.stream = stream
    out.opened(stream, provider.stream_types[0])
    try:
        if exit_path in ("exhaust", "server_error"):
            for item in stream:
                out.see(item)
        elif exit_path in ("with_early", "app_error"):
            with stream as entered:
                out.with_returned_self = entered is stream
                for item in entered:
                    out.see(item)
                    if exit_path == "app_error":
                        out.raised = AppError("the application's own bug")
                        raise out.raised
                    break
        elif exit_path == "close":
            for item in stream:
                out.see(item)
                break
            stream.close()
        else:  # pragma: no cover - a typo in the matrix
            raise AssertionError(exit_path)
    except (AppError, provider.midstream_error) as error:
        out.error = error
    out.current_spans.append(trace.get_current_span())
    return out


async def drive_async(provider: Provider, method: StreamMethod, exit_path: str, client: Any) -> Outcome:
    out = Outcome()
    model = FAULT_MODEL if exit_path == "server_error" else provider.model
    if exit_path == "cancel":
        model = f"slow-{provider.model}"
    if exit_path in ("break_gc", "never_iterated_gc"):
        stream = await method.aopen(client, model)
        out.opened(stream, provider.stream_types[1])
        if exit_path == "break_gc":
            async for item in stream:
                out.see(item)
                break
        del stream
        gc.collect()
        out.current_spans.append(trace.get_current_span())
        return out
    stream = await method.aopen(client, model)
    out.stream = stream
    out.opened(stream, provider.stream_types[1])
    try:
        if exit_path in ("exhaust", "server_error"):
            async for item in stream:
                out.see(item)
        elif exit_path in ("with_early", "app_error"):
            async with stream as entered:
                out.with_returned_self = entered is stream
                async for item in entered:
                    out.see(item)
                    if exit_path == "app_error":
                        out.raised = AppError("the application's own bug")
                        raise out.raised
                    break
        elif exit_path == "close":
            async for item in stream:
                out.see(item)
                break
            await stream.close()
        elif exit_path == "cancel":
            first = asyncio.Event()

            async def consume() -> None:
                async for item in stream:
                    out.see(item)
                    first.set()

            task = asyncio.create_task(consume())
            await asyncio.wait_for(first.wait(), 10)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError as error:
                out.error = error
        else:  # pragma: no cover
            raise AssertionError(exit_path)
    except (AppError, provider.midstream_error) as error:
        out.error = error
    out.current_spans.append(trace.get_current_span())
    return out


@pytest.fixture
def span_ends(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every span our recorder ends, in order (a span ended twice would appear twice)."""
    ended: list[Any] = []
    original = Recorder._end_span

    def counting(self: Recorder, span: Any) -> None:
        ended.append(span)
        original(self, span)

    monkeypatch.setattr(Recorder, "_end_span", counting)
    return ended


def check_stream(
    provider: Provider,
    exit_path: str,
    traced: Outcome,
    baseline: Outcome,
    app_span: Any,
    telemetry: Any,
    ended: list[Any],
) -> Any:
    # The application could not tell the difference.
    assert traced.items == baseline.items
    assert type(traced.error) is type(baseline.error)
    assert str(traced.error) == str(baseline.error)
    assert traced.is_sdk_stream and baseline.is_sdk_stream
    assert traced.has_aclose is baseline.has_aclose
    assert traced.status == baseline.status == 200
    assert traced.with_returned_self is baseline.with_returned_self
    if exit_path in ("with_early", "app_error"):
        assert traced.with_returned_self is True
    if traced.error is not None:
        assert type(traced.error.__context__) is type(baseline.error.__context__)
    if exit_path == "app_error":
        assert traced.raised is not None and traced.error is traced.raised
    if exit_path == "server_error":
        assert isinstance(traced.error, provider.midstream_error)
    if exit_path == "cancel":
        assert isinstance(traced.error, asyncio.CancelledError)
    assert traced.current_spans and all(span is app_span for span in traced.current_spans)
    if exit_path in ("exhaust", "break_gc", "with_early", "close", "app_error", "cancel", "server_error"):
        assert traced.items, "the exit path never saw a chunk"

    # Exactly one LLM span, ended exactly once, a child of the application's span.
    spans = [s for s in telemetry.spans() if s.name.startswith("chat ")]
    assert len(spans) == 1, [s.name for s in telemetry.spans()]
    span = spans[0]
    assert [s.context.span_id for s in ended] == [span.context.span_id]
    assert span.parent is not None and span.parent.span_id == app_span.get_span_context().span_id
    attributes = dict(span.attributes)
    assert attributes[semconv.PROVIDER_NAME] == provider.name
    assert attributes[semconv.STREAM_END_REASON] == END_REASONS[exit_path]
    if exit_path in ("break_gc", "with_early", "close", "app_error", "cancel"):
        assert len(traced.items) == 1
    assert attributes[semconv.STREAM_CHUNKS] == len(traced.items)

    if exit_path == "server_error":
        assert span.status.status_code is StatusCode.ERROR
        assert attributes[semconv.ERROR_TYPE] == provider.midstream_error_type
    else:
        assert span.status.status_code is StatusCode.UNSET
        assert semconv.ERROR_TYPE not in attributes

    if exit_path == "exhaust":  # the tokens the server reported on the last chunk, nothing else
        usage = provider.usage_of(traced.items[-1]["data"])
        assert usage is not None
        assert attributes[semconv.USAGE_SOURCE] == "reported"
        assert attributes[semconv.USAGE_INPUT_TOKENS] == usage["prompt_tokens"]
        assert attributes[semconv.USAGE_OUTPUT_TOKENS] == usage["completion_tokens"]
        assert attributes[semconv.RESPONSE_FINISH_REASONS] == ("stop",)
    return span


def stream_cases(provider: Provider, exits: list[str]) -> list[Any]:
    return [
        pytest.param(method, exit_path, id=f"{method.id}-{exit_path}")
        for method in provider.stream_methods
        for exit_path in exits
    ]


def run_sync_contract(
    provider: Provider,
    method: StreamMethod,
    exit_path: str,
    server: Any,
    telemetry: Any,
    instrument_with: Any,
    ended: list[Any],
) -> Any:
    instrumentor = instrument_with(provider.instrumentor)
    app_tracer = telemetry.tracer_provider.get_tracer("app")
    errors_before = sum(internal_errors.values())
    with app_tracer.start_as_current_span("app") as app_span:
        traced = drive_sync(provider, method, exit_path, provider.sync_client(server))
        settled = (len(telemetry.spans()), len(ended))
        if traced.stream is not None:  # a second close creates nothing and raises nothing
            traced.stream.close()
        gc.collect()
        assert (len(telemetry.spans()), len(ended)) == settled
    instrumentor.uninstrument()
    with app_tracer.start_as_current_span("app"):
        baseline = drive_sync(provider, method, exit_path, provider.sync_client(server))
    span = check_stream(provider, exit_path, traced, baseline, app_span, telemetry, ended)
    assert sum(internal_errors.values()) == errors_before, dict(internal_errors)
    return span


async def run_async_contract(
    provider: Provider,
    method: StreamMethod,
    exit_path: str,
    server: Any,
    telemetry: Any,
    instrument_with: Any,
    ended: list[Any],
) -> Any:
    instrumentor = instrument_with(provider.instrumentor)
    app_tracer = telemetry.tracer_provider.get_tracer("app")
    errors_before = sum(internal_errors.values())
    client = provider.async_client(server)
    with app_tracer.start_as_current_span("app") as app_span:
        traced = await drive_async(provider, method, exit_path, client)
        settled = (len(telemetry.spans()), len(ended))
        if traced.stream is not None:
            await traced.stream.close()
        gc.collect()
        assert (len(telemetry.spans()), len(ended)) == settled
    await provider.close_async(client)
    instrumentor.uninstrument()
    client = provider.async_client(server)
    with app_tracer.start_as_current_span("app"):
        baseline = await drive_async(provider, method, exit_path, client)
    await provider.close_async(client)
    span = check_stream(provider, exit_path, traced, baseline, app_span, telemetry, ended)
    assert sum(internal_errors.values()) == errors_before, dict(internal_errors)
    return span


# -- fault injection -------------------------------------------------------------------------------------

PER_CHUNK = -1  # expected count: once for every chunk of the stream
AT_LEAST_ONCE = 0  # expected count: one or more


class InjectedFault(RuntimeError):
    pass


def boom(*args: Any, **kwargs: Any) -> Any:
    raise InjectedFault("injected into a tokentrace hook")


@dataclass(frozen=True)
class Fault:
    id: str
    inject: Callable[[pytest.MonkeyPatch], None]
    workload: str  # chat | chat_stream | embeddings
    counted: dict[str, int]  # internal_errors places the successful call adds to
    counted_on_error: dict[str, int]  # ... and the failing SDK call
    spans: int = 1
    spans_on_error: int = 1
    env: dict[str, str] = field(default_factory=dict)


def on(target: Any, name: str) -> Callable[[pytest.MonkeyPatch], None]:
    return lambda mp: mp.setattr(target, name, boom)


def run_workload(provider: Provider, client: Any, workload: str, model: str | None = None) -> Any:
    if workload == "chat":
        return fingerprint(provider.chat(client, model or provider.model))
    if workload == "chat_stream":
        return [fingerprint(item) for item in provider.stream_methods[0].open(client, model or provider.model)]
    if workload == "embeddings":
        return fingerprint(provider.embed(client) if model is None else provider.chat(client, model))
    raise AssertionError(workload)  # pragma: no cover


async def arun_workload(provider: Provider, client: Any, workload: str, model: str | None = None) -> Any:
    if workload == "chat":
        return fingerprint(await provider.achat(client, model or provider.model))
    if workload == "chat_stream":
        stream = await provider.stream_methods[0].aopen(client, model or provider.model)
        return [fingerprint(item) async for item in stream]
    if workload == "embeddings":
        return fingerprint(await provider.aembed(client) if model is None else await provider.achat(client, model))
    raise AssertionError(workload)  # pragma: no cover


def _delta(before: Counter[str]) -> Counter[str]:
    assert tokentrace.flush(), "metrics are recorded off the app's thread; wait for them"
    return Counter({k: v - before.get(k, 0) for k, v in internal_errors.items() if v != before.get(k, 0)})


def _check_counted(delta: Counter[str], expected: dict[str, int], chunks: int) -> None:
    assert set(delta) == set(expected), dict(delta)
    for where, count in expected.items():
        if count == PER_CHUNK:
            assert delta[where] == chunks > 0
        elif count == AT_LEAST_ONCE:
            assert delta[where] >= 1
        else:
            assert delta[where] == count, dict(delta)


def _check_same_error(provider: Provider, error: BaseException, baseline: BaseException) -> None:
    assert type(error) is type(baseline) is provider.status_error
    assert str(error) == str(baseline)
    assert error.status_code == baseline.status_code == 429  # type: ignore[attr-defined]
    assert type(error.__cause__) is type(baseline.__cause__)
    assert type(error.__context__) is type(baseline.__context__)


def _check_spans(provider: Provider, telemetry: Any, expected: int, failing: bool) -> None:
    spans = telemetry.spans()
    assert len(spans) == expected, [s.name for s in spans]
    if expected:
        span = spans[0]
        if failing:
            assert span.name == f"chat {FAILING_MODEL}"
            assert span.status.status_code is StatusCode.ERROR
            assert span.attributes[semconv.ERROR_TYPE] == provider.status_error_type
        else:
            assert span.status.status_code is StatusCode.UNSET


def run_sync_fault(
    provider: Provider, fault: Fault, server: Any, telemetry: Any, instrument_with: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = provider.sync_client(server)
    expected = run_workload(provider, client, fault.workload)
    with pytest.raises(provider.status_error) as expected_error:
        run_workload(provider, client, fault.workload, FAILING_MODEL)
    chunks = len(expected) if isinstance(expected, list) else 0

    fault.inject(monkeypatch)
    instrument_with(provider.instrumentor, **fault.env)
    client = provider.sync_client(server)

    before = Counter(internal_errors)
    assert run_workload(provider, client, fault.workload) == expected
    _check_counted(_delta(before), fault.counted, chunks)
    _check_spans(provider, telemetry, fault.spans, failing=False)

    telemetry.exporter.clear()
    before = Counter(internal_errors)
    with pytest.raises(provider.status_error) as error:
        run_workload(provider, client, fault.workload, FAILING_MODEL)
    _check_same_error(provider, error.value, expected_error.value)
    _check_counted(_delta(before), fault.counted_on_error, chunks)
    _check_spans(provider, telemetry, fault.spans_on_error, failing=True)


async def run_async_fault(
    provider: Provider, fault: Fault, server: Any, telemetry: Any, instrument_with: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = provider.async_client(server)
    expected = await arun_workload(provider, client, fault.workload)
    with pytest.raises(provider.status_error) as expected_error:
        await arun_workload(provider, client, fault.workload, FAILING_MODEL)
    await provider.close_async(client)
    chunks = len(expected) if isinstance(expected, list) else 0

    fault.inject(monkeypatch)
    instrument_with(provider.instrumentor, **fault.env)
    client = provider.async_client(server)

    before = Counter(internal_errors)
    assert await arun_workload(provider, client, fault.workload) == expected
    _check_counted(_delta(before), fault.counted, chunks)
    _check_spans(provider, telemetry, fault.spans, failing=False)

    telemetry.exporter.clear()
    before = Counter(internal_errors)
    with pytest.raises(provider.status_error) as error:
        await arun_workload(provider, client, fault.workload, FAILING_MODEL)
    _check_same_error(provider, error.value, expected_error.value)
    _check_counted(_delta(before), fault.counted_on_error, chunks)
    _check_spans(provider, telemetry, fault.spans_on_error, failing=True)
    await provider.close_async(client)


def chat_faults(wrappers: type, patch_module: Any, observer: str) -> list[Fault]:
    """The faults every Chat Completions-shaped provider shares: each hook of ours raising in turn.

    ``wrappers`` is the provider's wrapper-building class (its ``describe`` is the first hook);
    ``patch_module.<observer>`` builds the provider's stream chunk observer.
    """
    from tokentrace.core import pricing, recorder
    from tokentrace.core.call import GenAICall
    from tokentrace.instrumentation import _chat_compat
    from tokentrace.instrumentation.openai import _content

    describe = {"describing the request": 1}
    chunk = {"reading a stream chunk": PER_CHUNK}
    capture = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"}

    faults = [
        # Describing the request: the call runs untraced.
        Fault("wrappers.describe", on(wrappers, "describe"), "chat", describe, describe, 0, 0),
        Fault("wrappers.describe-stream", on(wrappers, "describe"), "chat_stream", describe, describe, 0, 0),
        Fault("server_of", on(_chat_compat, "server_of"), "chat", describe, describe, 0, 0),
        Fault(
            "describe_chat_messages",
            on(_chat_compat, "describe_chat_messages"),
            "chat_stream",
            describe,
            describe,
            0,
            0,
        ),
        # Reading the result: the span still ends, with what is known.
        Fault("apply_chat_result", on(_chat_compat, "apply_chat_result"), "chat", {"reading the response": 1}, {}),
        Fault(
            "apply_embeddings_result",
            on(_chat_compat, "apply_embeddings_result"),
            "embeddings",
            {"reading the response": 1},
            {},
        ),
        Fault("observe_chat_chunk", on(_chat_compat, "observe_chat_chunk"), "chat_stream", chunk, {}),
        Fault(
            "apply_chat_usage-stream",
            on(_chat_compat, "apply_chat_usage"),
            "chat_stream",
            {"reading a stream chunk": 1},
            {},
        ),  # only the last chunk carries usage
        Fault(observer, on(patch_module, observer), "chat_stream", {"reading the response": 1}, {}),
        Fault("mark_chunk", on(GenAICall, "mark_chunk"), "chat_stream", chunk, {}),
        # Content capture.
        Fault(
            "content",
            on(_content, "chat_input_messages"),
            "chat",
            {"capturing content": 1},
            {"capturing content": 1},
            env=capture,
        ),
        Fault("content-stream-choices", on(_chat_compat._Choices, "add"), "chat_stream", chunk, {}, env=capture),
        Fault(
            "content-stream-build",
            on(_chat_compat._Choices, "messages"),
            "chat_stream",
            {"finishing stream accumulation": 1},
            {},
            env=capture,
        ),
        # Pricing, metrics and ending.
        Fault("price", on(pricing.PriceBook, "cost"), "chat", {"pricing": 1}, {"pricing": 1}),
        Fault("price-stream", on(pricing.PriceBook, "cost"), "chat_stream", {"pricing": 1}, {"pricing": 1}),
        Fault("price-embeddings", on(pricing.PriceBook, "cost"), "embeddings", {"pricing": 1}, {"pricing": 1}),
        Fault(
            "record_metrics",
            on(recorder.Recorder, "_record_metrics"),
            "chat",
            {"recording metrics": 1},
            {"recording metrics": 1},
        ),
        Fault(
            "finish-stream",
            on(recorder.Recorder, "finish"),
            "chat_stream",
            {"ending a stream": AT_LEAST_ONCE},
            {"recording a failed call": 1},
            0,
            0,
        ),
    ]
    return faults
