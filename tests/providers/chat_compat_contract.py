"""The stream contract and fault-injection checks for SDKs that speak Chat Completions (Mistral, Groq).

Modelled on ``tests/test_stream_contract.py`` and ``tests/test_fault_injection.py``; a provider's test
modules describe how to drive its SDK (:class:`Provider`) and get the same matrix: each way of
opening a stream by each way of leaving it, run instrumented and then uninstrumented as the baseline.
The application must observe the same items, exception and SDK types; the instrumented run must leave
exactly one span, ended once, with the right ``tokentrace.stream.end_reason`` and chunk count.
"""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from observed import fingerprint
from opentelemetry import trace

from tests.providers import stream_exits as exits
from tests.providers.fault_contract import (
    CAPTURE,
    DESCRIBE,
    FAILED_CALL,
    PER_CHUNK,
    READING,
    Fault,
    FaultHarness,
    on,
    recorder_faults,
)
from tests.providers.fault_contract import fault_tests as contract_fault_tests
from tests.providers.stream_exits import AppError
from tokentrace.core import semconv
from tokentrace.core.safety import internal_errors

PROMPT = "Walk me through the stream contract one chunk at a time"
MESSAGES = [{"role": "user", "content": PROMPT}]
FAULT_MODEL = "midstream-error"
FAILING_MODEL = "error-429"


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
                exits.take_first(entered, out, exit_path)
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
                await exits.atake_first(entered, out, exit_path)
        elif exit_path == "close":
            async for item in stream:
                out.see(item)
                break
            await stream.close()
        elif exit_path == "cancel":
            out.error = await exits.cancel_after_first(stream, out.see)
        else:  # pragma: no cover
            raise AssertionError(exit_path)
    except (AppError, provider.midstream_error) as error:
        out.error = error
    out.current_spans.append(trace.get_current_span())
    return out


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
    exits.check_app_saw_the_same(exit_path, traced, baseline, app_span)
    assert traced.is_sdk_stream and baseline.is_sdk_stream
    assert traced.has_aclose is baseline.has_aclose
    assert traced.status == baseline.status == 200
    assert traced.with_returned_self is baseline.with_returned_self
    if exit_path in ("with_early", "app_error"):
        assert traced.with_returned_self is True
    if exit_path == "server_error":
        assert isinstance(traced.error, provider.midstream_error)
    if exit_path in ("exhaust", "break_gc", "with_early", "close", "app_error", "cancel", "server_error"):
        assert traced.items, "the exit path never saw a chunk"

    # Exactly one LLM span, ended exactly once, a child of the application's span.
    span = exits.the_stream_span([s for s in telemetry.spans() if s.name.startswith("chat ")], ended, app_span)
    attributes = dict(span.attributes)
    assert attributes[semconv.PROVIDER_NAME] == provider.name
    assert attributes[semconv.STREAM_END_REASON] == END_REASONS[exit_path]
    if exit_path in ("break_gc", "with_early", "close", "app_error", "cancel"):
        assert len(traced.items) == 1
    assert attributes[semconv.STREAM_CHUNKS] == len(traced.items)

    exits.check_error_status(span, provider.midstream_error_type if exit_path == "server_error" else None)

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


def run_workload(provider: Provider, client: Any, workload: str, failing: bool = False) -> Any:
    model = FAILING_MODEL if failing else provider.model
    if workload == "chat":
        return fingerprint(provider.chat(client, model))
    if workload == "chat_stream":
        return [fingerprint(item) for item in provider.stream_methods[0].open(client, model)]
    if workload == "embeddings":  # the failing call goes to chat: the servers fail embeddings no other way
        return fingerprint(provider.chat(client, model) if failing else provider.embed(client))
    raise AssertionError(workload)  # pragma: no cover


async def arun_workload(provider: Provider, client: Any, workload: str, failing: bool = False) -> Any:
    model = FAILING_MODEL if failing else provider.model
    if workload == "chat":
        return fingerprint(await provider.achat(client, model))
    if workload == "chat_stream":
        stream = await provider.stream_methods[0].aopen(client, model)
        return [fingerprint(item) async for item in stream]
    if workload == "embeddings":
        return fingerprint(await provider.achat(client, model) if failing else await provider.aembed(client))
    raise AssertionError(workload)  # pragma: no cover


def fault_harness(provider: Provider) -> FaultHarness:
    """How ``fault_contract`` drives a Chat Completions-shaped SDK."""
    return FaultHarness(
        instrumentors=(provider.instrumentor,),
        run=lambda client, workload, failing: run_workload(provider, client, workload, failing),
        arun=lambda client, workload, failing: arun_workload(provider, client, workload, failing),
        error=provider.status_error,
        error_type=provider.status_error_type,
        span_name=lambda fault, failing: f"chat {FAILING_MODEL}" if failing else None,
        aclose=provider.close_async,
    )


def chat_faults(wrappers: type, patch_module: Any, observer: str) -> list[Fault]:
    """The faults every Chat Completions-shaped provider shares: each hook of ours raising in turn.

    ``wrappers`` is the provider's wrapper-building class (its ``describe`` is the first hook);
    ``patch_module.<observer>`` builds the provider's stream chunk observer.
    """
    from tokentrace.core import pricing
    from tokentrace.core.call import GenAICall
    from tokentrace.instrumentation import _chat_compat

    chunk = {"reading a stream chunk": PER_CHUNK}
    return [
        # Describing the request: the call runs untraced.
        Fault("wrappers.describe", on(wrappers, "describe"), "chat", DESCRIBE, DESCRIBE, 0, 0),
        Fault("wrappers.describe-stream", on(wrappers, "describe"), "chat_stream", DESCRIBE, DESCRIBE, 0, 0),
        Fault("server_of", on(_chat_compat, "server_of"), "chat", DESCRIBE, DESCRIBE, 0, 0),
        Fault(
            "describe_chat_messages",
            on(_chat_compat, "describe_chat_messages"),
            "chat_stream",
            DESCRIBE,
            DESCRIBE,
            0,
            0,
        ),
        # Reading the result: the span still ends, with what is known.
        Fault("apply_chat_result", on(_chat_compat, "apply_chat_result"), "chat", READING, {}),
        Fault("apply_embeddings_result", on(_chat_compat, "apply_embeddings_result"), "embeddings", READING, {}),
        Fault("observe_chat_chunk", on(_chat_compat, "observe_chat_chunk"), "chat_stream", chunk, {}),
        Fault(
            "apply_chat_usage-stream",
            on(_chat_compat, "apply_chat_usage"),
            "chat_stream",
            {"reading a stream chunk": 1},
            {},
        ),  # only the last chunk carries usage
        Fault(observer, on(patch_module, observer), "chat_stream", READING, {}),
        Fault("mark_chunk", on(GenAICall, "mark_chunk"), "chat_stream", chunk, {}),
        # Content capture of the stream's output.
        Fault("content-stream-choices", on(_chat_compat._Choices, "add"), "chat_stream", chunk, {}, env=CAPTURE),
        Fault(
            "content-stream-build",
            on(_chat_compat._Choices, "messages"),
            "chat_stream",
            {"finishing stream accumulation": 1},
            {},
            env=CAPTURE,
        ),
        # Pricing, input content, metrics and ending, in the shared recorder.
        Fault("price-embeddings", on(pricing.PriceBook, "cost"), "embeddings", {"pricing": 1}, {"pricing": 1}),
        *recorder_faults("chat", "chat_stream", finish_on_error=FAILED_CALL),
    ]


# -- the tests a provider's modules bind ------------------------------------------------------------------


def server_fixture(start_server: Callable[[], Any]) -> Any:
    """A module-scoped ``server`` fixture: ``start_server()`` is a context manager yielding the server."""

    @pytest.fixture(scope="module")
    def server() -> Iterator[Any]:
        with start_server() as running:
            yield running

    return server


def stream_contract_tests(provider: Provider, start_server: Callable[[], Any]) -> tuple[Any, Any, Any]:
    """The ``server`` fixture and the sync and async stream contract tests for ``provider``, which a
    test module binds to its names (``server, test_sync_stream_contract, test_async_stream_contract =
    stream_contract_tests(...)``)."""

    @pytest.mark.parametrize(("method", "exit_path"), stream_cases(provider, SYNC_EXITS))
    def test_sync_stream_contract(
        method: StreamMethod, exit_path: str, server: Any, telemetry: Any, instrument_with: Any, span_ends: list[Any]
    ) -> None:
        run_sync_contract(provider, method, exit_path, server, telemetry, instrument_with, span_ends)

    @pytest.mark.parametrize(("method", "exit_path"), stream_cases(provider, ASYNC_EXITS))
    async def test_async_stream_contract(
        method: StreamMethod, exit_path: str, server: Any, telemetry: Any, instrument_with: Any, span_ends: list[Any]
    ) -> None:
        await run_async_contract(provider, method, exit_path, server, telemetry, instrument_with, span_ends)

    return server_fixture(start_server), test_sync_stream_contract, test_async_stream_contract


def fault_tests(provider: Provider, start_server: Callable[[], Any], faults: list[Fault]) -> tuple[Any, Any, Any]:
    """The ``server`` fixture and the sync and async fault-injection tests (``fault_contract``) for
    ``provider``, bound by a test module as ``server, test_sync_fault_is_contained,
    test_async_fault_is_contained = fault_tests(...)``."""
    tests = contract_fault_tests(fault_harness(provider), faults, provider.sync_client, provider.async_client)
    return server_fixture(start_server), *tests
