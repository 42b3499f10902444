"""Nothing of ours may change what the application sees.

Each case makes one of tokentrace's hooks raise ``RuntimeError`` and then runs the same call twice
against the simulator: once successful, once failing in the SDK (``error-429`` with no retries). The
successful call must return what an uninstrumented call returns; the failing call must raise the
SDK's exception with the same type, message, status and body. The fault must be counted in
``tokentrace.core.safety.internal_errors`` (so it is visible in logs and tests, never to the app), and
the span must still end where the fault allows it.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable
from typing import Any

import openai
import pytest
from observed import fingerprint
from opentelemetry.sdk import trace as sdk_trace

from tests.providers import fault_contract as contract
from tests.providers.fault_contract import AT_LEAST_ONCE, DESCRIBE, FAILED_CALL, PER_CHUNK, Fault, boom
from tests.providers.fault_contract import on as _on
from tokentrace.core import pricing, recorder, semconv, tokens
from tokentrace.core.call import GenAICall
from tokentrace.instrumentation.openai import OpenAIInstrumentor, _content, _patch, _requests, _responses

CHAT_MODEL = "gpt-4o-mini"
EMBEDDING_MODEL = "text-embedding-3-small"
FAILING_MODEL = "error-429"
PROMPT = "Nothing of ours may change what the application sees."
MESSAGES = [{"role": "user", "content": PROMPT}]
CAPTURE_ON_SPAN = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"}

# -- workloads --------------------------------------------------------------------------------------


def run_sync(client: Any, workload: str, model: str | None = None) -> Any:
    if workload == "chat":
        return fingerprint(client.chat.completions.create(model=model or CHAT_MODEL, messages=MESSAGES))
    if workload == "chat_stream":
        stream = client.chat.completions.create(model=model or CHAT_MODEL, messages=MESSAGES, stream=True)
        return [fingerprint(chunk) for chunk in stream]
    if workload == "responses":
        return fingerprint(client.responses.create(model=model or CHAT_MODEL, input=PROMPT))
    if workload == "responses_stream":
        stream = client.responses.create(model=model or CHAT_MODEL, input=PROMPT, stream=True)
        return [fingerprint(event) for event in stream]
    if workload == "embeddings":
        return fingerprint(client.embeddings.create(model=model or EMBEDDING_MODEL, input=PROMPT))
    if workload == "chat_helper":
        with client.chat.completions.stream(model=model or CHAT_MODEL, messages=MESSAGES) as stream:
            events = [fingerprint(event) for event in stream]
            return [*events, fingerprint(stream.get_final_completion())]
    if workload == "chat_raw":
        raw = client.chat.completions.with_raw_response.create(model=model or CHAT_MODEL, messages=MESSAGES)
        return fingerprint(raw.parse())
    if workload == "chat_raw_stream":
        raw = client.chat.completions.with_raw_response.create(
            model=model or CHAT_MODEL, messages=MESSAGES, stream=True
        )
        return [fingerprint(chunk) for chunk in raw.parse()]
    raise AssertionError(workload)  # pragma: no cover


async def run_async(client: Any, workload: str, model: str | None = None) -> Any:
    if workload == "chat":
        return fingerprint(await client.chat.completions.create(model=model or CHAT_MODEL, messages=MESSAGES))
    if workload == "chat_stream":
        stream = await client.chat.completions.create(model=model or CHAT_MODEL, messages=MESSAGES, stream=True)
        return [fingerprint(chunk) async for chunk in stream]
    if workload == "responses":
        return fingerprint(await client.responses.create(model=model or CHAT_MODEL, input=PROMPT))
    if workload == "responses_stream":
        stream = await client.responses.create(model=model or CHAT_MODEL, input=PROMPT, stream=True)
        return [fingerprint(e) async for e in stream]
    if workload == "embeddings":
        return fingerprint(await client.embeddings.create(model=model or EMBEDDING_MODEL, input=PROMPT))
    if workload == "chat_helper":
        async with client.chat.completions.stream(model=model or CHAT_MODEL, messages=MESSAGES) as stream:
            events = [fingerprint(event) async for event in stream]
            return [*events, fingerprint(await stream.get_final_completion())]
    if workload == "chat_raw":
        raw = await client.chat.completions.with_raw_response.create(model=model or CHAT_MODEL, messages=MESSAGES)
        return fingerprint(raw.parse())
    if workload == "chat_raw_stream":
        raw = await client.chat.completions.with_raw_response.create(
            model=model or CHAT_MODEL, messages=MESSAGES, stream=True
        )
        return [fingerprint(chunk) async for chunk in raw.parse()]
    raise AssertionError(workload)  # pragma: no cover


# -- faults -------------------------------------------------------------------------------------------


def inject_function(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> None:
    """Make ``module.name`` raise, wherever it is referenced.

    ``_patch``'s :class:`Operation` objects hold the request/response functions themselves (taken at
    import time), so those references are replaced too; call before instrumenting.
    """
    contract.inject_function(monkeypatch, module, name, _patch, ("CHAT", "RESPONSES", "EMBEDDINGS", "COMPLETIONS"))


def _fn(module: Any, name: str) -> Callable[[pytest.MonkeyPatch], None]:
    return lambda mp: inject_function(mp, module, name)


FAULTS = [
    # Describing the request: the call runs untraced.
    Fault("tracer.describe", _on(_patch._Tracer, "describe"), "chat", DESCRIBE, DESCRIBE, 0, 0),
    Fault("tracer.describe-stream", _on(_patch._Tracer, "describe"), "chat_stream", DESCRIBE, DESCRIBE, 0, 0),
    Fault("describe_chat", _fn(_requests, "describe_chat"), "chat", DESCRIBE, DESCRIBE, 0, 0),
    Fault("describe_responses", _fn(_requests, "describe_responses"), "responses", DESCRIBE, DESCRIBE, 0, 0),
    # Reading the response: the span still ends, with what is known.
    Fault("apply_chat_completion", _fn(_responses, "apply_chat_completion"), "chat", {"reading the response": 1}, {}),
    Fault(
        "observe_chat_chunk",
        _fn(_responses, "observe_chat_chunk"),
        "chat_stream",
        {"reading a stream chunk": PER_CHUNK},
        {},
    ),
    Fault("apply_response", _fn(_responses, "apply_response"), "responses", {"reading the response": 1}, {}),
    Fault(
        "apply_response-stream",
        _fn(_responses, "apply_response"),
        "responses_stream",
        {"reading a stream chunk": 1},
        {},
    ),  # read once, from response.completed
    Fault("apply_embeddings", _fn(_responses, "apply_embeddings"), "embeddings", {"reading the response": 1}, {}),
    Fault(
        "apply_chat_completion-raw",
        _fn(_responses, "apply_chat_completion"),
        "chat_raw",
        {"reading the response": 1},
        {},
    ),
    Fault(
        "chat_chunk_observer-stream",
        _fn(_responses, "chat_chunk_observer"),
        "chat_stream",
        {"reading the response": 1},
        {},
    ),  # the stream is returned untraced; the span ends at once
    Fault(
        "chat_chunk_observer-raw_stream",
        _fn(_responses, "chat_chunk_observer"),
        "chat_raw_stream",
        {"reading a raw response": 1},
        {},
    ),
    Fault(
        "observe_chat_chunk-helper",
        _fn(_responses, "observe_chat_chunk"),
        "chat_helper",
        {"reading a stream chunk": PER_CHUNK},
        {},
    ),
    # The close() wrapper put on the SDK's helper streams.
    Fault("helper_close", _fn(_patch, "_end_raw_stream"), "chat_helper", {"ending a helper stream": 1}, {}),
    # The stream proxy's own per-chunk step.
    Fault("mark_chunk-stream", _on(GenAICall, "mark_chunk"), "chat_stream", {"reading a stream chunk": PER_CHUNK}, {}),
    # Pricing and token estimates.
    Fault("price", _on(pricing.PriceBook, "cost"), "chat", {"pricing": 1}, {"pricing": 1}),
    Fault("price-stream", _on(pricing.PriceBook, "cost"), "chat_stream", {"pricing": 1}, {"pricing": 1}),
    Fault("count_text-stream", _on(tokens.TokenEstimator, "count_text"), "chat_stream", {"estimating tokens": 1}, {}),
    Fault(
        "count_messages-stream",
        _on(tokens.TokenEstimator, "count_messages"),
        "chat_stream",
        {"estimating tokens": 1},
        {},
    ),
    # Metrics and content.
    Fault(
        "record_metrics",
        _on(recorder.Recorder, "_record_metrics"),
        "chat",
        {"recording metrics": 1},
        {"recording metrics": 1},
    ),
    Fault(
        "record_metrics-stream",
        _on(recorder.Recorder, "_record_metrics"),
        "chat_stream",
        {"recording metrics": 1},
        {"recording metrics": 1},
    ),
    Fault(
        "content",
        _fn(_content, "chat_input_messages"),
        "chat",
        {"capturing content": 1},
        {"capturing content": 1},
        env=CAPTURE_ON_SPAN,
    ),
    Fault(
        "content-stream",
        _fn(_content, "chat_input_messages"),
        "chat_stream",
        {"capturing content": 1},
        {"capturing content": 1},
        env=CAPTURE_ON_SPAN,
    ),
    # Ending the span: our guard around span.end, and span.end itself.
    Fault("end_span", _on(recorder.Recorder, "_end_span"), "chat", {"reading the response": 1}, FAILED_CALL, 0, 0),
    Fault(
        "end_span-stream",
        _on(recorder.Recorder, "_end_span"),
        "chat_stream",
        {"ending a stream": AT_LEAST_ONCE},
        FAILED_CALL,
        0,
        0,
    ),
    Fault("span.end", _on(sdk_trace.Span, "end"), "chat", {"ending the span": 1}, {"ending the span": 1}, 0, 0),
    Fault(
        "span.end-stream",
        _on(sdk_trace.Span, "end"),
        "chat_stream",
        {"ending the span": 1},
        {"ending the span": 1},
        0,
        0,
    ),
    # Ending the call (the recorder as a whole) from a stream.
    Fault(
        "finish-stream",
        _on(recorder.Recorder, "finish"),
        "chat_stream",
        {"ending a stream": AT_LEAST_ONCE},
        FAILED_CALL,
        0,
        0,
    ),
    Fault(
        "finish-responses-stream",
        _on(recorder.Recorder, "finish"),
        "responses_stream",
        {"ending a stream": AT_LEAST_ONCE},
        FAILED_CALL,
        0,
        0,
    ),
]


def _chunks(fault: Fault, expected: Any) -> int:
    """Raw chunks behind what a workload returned (the chat helper emits a ``chunk`` event per chunk)."""
    if fault.workload == "chat_helper":
        return sum(1 for item in expected if item["data"].get("type") == "chunk")
    return len(expected) if isinstance(expected, list) else 0


def _span_name(fault: Fault, failing: bool) -> str:
    operation = "embeddings" if fault.workload == "embeddings" else "chat"
    default = EMBEDDING_MODEL if fault.workload == "embeddings" else CHAT_MODEL
    return f"{operation} {FAILING_MODEL if failing else default}"


HARNESS = contract.FaultHarness(
    instrumentors=(OpenAIInstrumentor,),
    run=lambda client, workload, failing: run_sync(client, workload, FAILING_MODEL if failing else None),
    arun=lambda client, workload, failing: run_async(client, workload, FAILING_MODEL if failing else None),
    error=openai.RateLimitError,
    error_type="openai.RateLimitError",
    error_fields=("status_code", "body"),
    span_name=_span_name,
    chunks=_chunks,
)


# -- tests --------------------------------------------------------------------------------------------


@functools.cache
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()  # built once: loading CA certificates costs ~40 ms per client


@pytest.fixture
def new_client(simulator: Any) -> Any:
    """Fresh sync clients: the SDK binds ``with_raw_response.create`` on first use, so a client used
    before instrumenting would keep calling the untraced method."""
    clients: list[Any] = []

    def make() -> Any:
        clients.append(
            openai.OpenAI(
                base_url=simulator.base_url,
                api_key="sk-test",
                max_retries=0,
                http_client=openai.DefaultHttpxClient(verify=_tls()),
            )
        )
        return clients[-1]

    yield make
    for c in clients:
        c.close()


@pytest.fixture
async def new_aclient(simulator: Any) -> Any:
    clients: list[Any] = []

    def make() -> Any:
        clients.append(
            openai.AsyncOpenAI(
                base_url=simulator.base_url,
                api_key="sk-test",
                max_retries=0,
                http_client=openai.DefaultAsyncHttpxClient(verify=_tls()),
            )
        )
        return clients[-1]

    yield make
    for c in clients:
        await c.close()


@pytest.mark.parametrize("fault", contract.fault_params(FAULTS))
def test_sync_fault_is_contained(
    fault: Fault, new_client: Any, telemetry: Any, instrument_with: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    contract.run_sync_fault(HARNESS, fault, new_client, telemetry, instrument_with, monkeypatch)


@pytest.mark.parametrize("fault", contract.fault_params(FAULTS))
async def test_async_fault_is_contained(
    fault: Fault, new_aclient: Any, telemetry: Any, instrument_with: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await contract.run_async_fault(HARNESS, fault, new_aclient, telemetry, instrument_with, monkeypatch)


def test_extraction_fault_still_ends_the_span_with_what_is_known(
    client: Any, telemetry: Any, instrument: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A response we cannot read leaves a span with the request side, ended once, and no error status."""
    inject_function(monkeypatch, _responses, "apply_chat_completion")
    instrument()
    client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)
    span = telemetry.span()
    assert span.end_time is not None
    assert span.attributes[semconv.REQUEST_MODEL] == CHAT_MODEL
    assert semconv.RESPONSE_ID not in span.attributes
    assert semconv.ERROR_TYPE not in span.attributes


def test_stream_fault_keeps_the_stream_contract(
    client: Any, telemetry: Any, instrument: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per-chunk reads failing: every chunk still reaches the app, and the span still ends as completed."""
    inject_function(monkeypatch, _responses, "observe_chat_chunk")
    instrument()
    chunks = list(client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, stream=True))
    attributes = telemetry.span().attributes
    assert attributes[semconv.STREAM_END_REASON] == "completed"
    assert attributes[semconv.STREAM_CHUNKS] == len(chunks) > 1


def test_injection_reaches_the_operations(monkeypatch: pytest.MonkeyPatch) -> None:
    """The helper really replaces the references ``_patch`` holds (or the faults above test nothing)."""
    inject_function(monkeypatch, _responses, "apply_chat_completion")
    inject_function(monkeypatch, _requests, "describe_chat")
    assert _patch.CHAT.apply is boom and _patch.CHAT.describe is boom
    assert _patch.RESPONSES.apply is _responses.apply_response is not boom
