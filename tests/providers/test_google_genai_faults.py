"""Nothing of ours may change what a google-genai application sees.

Each case makes one of tokentrace's hooks raise, then runs the same workload twice against the local
Gemini server: once successfully, once failing in the SDK (``error-429``, retries off). The successful
run must return what an uninstrumented run returns; the failing one must raise the SDK's exception
with the same type, message, code and details. The fault must be counted in
``tokentrace.core.safety.internal_errors``, and the span must still end where the fault allows it.
"""

from __future__ import annotations

import dataclasses
import gc
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from google.genai import errors
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.trace import StatusCode

import tokentrace
from tests.providers.servers.google_genai import GeminiServer, client_for, observed
from tokentrace.core import pricing, recorder
from tokentrace.core.call import GenAICall
from tokentrace.core.safety import internal_errors
from tokentrace.instrumentation.google_genai import (
    GoogleGenAIInstrumentor,
    _content,
    _hops,
    _patch,
    _requests,
    _responses,
)

MODEL = "gemini-2.5-flash"
EMBEDDING_MODEL = "gemini-embedding-001"
FAILING_MODEL = "error-429"
PROMPT = "Nothing of ours may change what the application sees."
CAPTURE = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"}
PER_CHUNK = -1  # expected count: once per chunk of the stream
AT_LEAST_ONCE = 0  # expected count: one or more (an unended stream retries when it is collected)


class InjectedFault(RuntimeError):
    pass


def boom(*args: Any, **kwargs: Any) -> Any:
    raise InjectedFault("injected into a tokentrace hook")


class BrokenContextVar:
    """A context variable that cannot be set: reads say "no call collecting"."""

    def get(self) -> None:
        return None

    set = reset = staticmethod(boom)


# -- workloads ------------------------------------------------------------------------------------------


def run_sync(client: Any, workload: str, failing: bool = False) -> Any:
    if workload == "generate":
        return observed(client.models.generate_content(model=FAILING_MODEL if failing else MODEL, contents=PROMPT))
    if workload == "stream":
        stream = client.models.generate_content_stream(model=FAILING_MODEL if failing else MODEL, contents=PROMPT)
        return [observed(chunk) for chunk in stream]
    if workload == "embed":
        model = FAILING_MODEL if failing else EMBEDDING_MODEL
        return observed(client.models.embed_content(model=model, contents=PROMPT))
    raise AssertionError(workload)  # pragma: no cover


async def run_async(client: Any, workload: str, failing: bool = False) -> Any:
    models = client.aio.models
    if workload == "generate":
        return observed(await models.generate_content(model=FAILING_MODEL if failing else MODEL, contents=PROMPT))
    if workload == "stream":
        stream = await models.generate_content_stream(model=FAILING_MODEL if failing else MODEL, contents=PROMPT)
        return [observed(chunk) async for chunk in stream]
    if workload == "embed":
        model = FAILING_MODEL if failing else EMBEDDING_MODEL
        return observed(await models.embed_content(model=model, contents=PROMPT))
    raise AssertionError(workload)  # pragma: no cover


# -- faults ---------------------------------------------------------------------------------------------


def inject_function(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> None:
    """Make ``module.name`` raise wherever it is referenced, including the :class:`_patch.Operation`
    objects that hold it since import (call before instrumenting)."""
    original = getattr(module, name)
    monkeypatch.setattr(module, name, boom)
    for operation_name in ("GENERATE", "GENERATE_STREAM", "EMBED"):
        operation = getattr(_patch, operation_name)
        changes = {f.name: boom for f in dataclasses.fields(operation) if getattr(operation, f.name) is original}
        if changes:
            monkeypatch.setattr(_patch, operation_name, dataclasses.replace(operation, **changes))


def _on(cls: Any, name: str) -> Callable[[pytest.MonkeyPatch], None]:
    return lambda mp: mp.setattr(cls, name, boom)


def _fn(module: Any, name: str) -> Callable[[pytest.MonkeyPatch], None]:
    return lambda mp: inject_function(mp, module, name)


@dataclass(frozen=True)
class Fault:
    id: str
    inject: Callable[[pytest.MonkeyPatch], None]
    workload: str
    counted: dict[str, int]  # internal_errors places the successful run adds to
    counted_on_error: dict[str, int]  # ... and the failing SDK call
    spans: int = 1  # spans the successful run leaves
    spans_on_error: int = 1
    error_status: bool = True  # the failing run's span carries the error
    env: dict[str, str] = dataclasses.field(default_factory=dict)


DESCRIBE = {"describing the request": 1}
READING = {"reading the response": 1}
FAILED_CALL = {"recording a failed call": 1}
STREAM_END = {"ending a stream": AT_LEAST_ONCE}

FAULTS = [
    # Describing the request: the call runs untraced.
    Fault("tracer.describe", _on(_patch.Tracer, "describe"), "generate", DESCRIBE, DESCRIBE, 0, 0),
    Fault("tracer.describe-stream", _on(_patch.Tracer, "describe"), "stream", DESCRIBE, DESCRIBE, 0, 0),
    Fault("endpoint_of", _fn(_requests, "endpoint_of"), "generate", DESCRIBE, DESCRIBE, 0, 0),
    Fault("describe_generate", _fn(_requests, "describe_generate"), "generate", DESCRIBE, DESCRIBE, 0, 0),
    Fault("describe_generate-stream", _fn(_requests, "describe_generate"), "stream", DESCRIBE, DESCRIBE, 0, 0),
    Fault("describe_embed", _fn(_requests, "describe_embed"), "embed", DESCRIBE, DESCRIBE, 0, 0),
    # Reading the result: the span still ends with what is known.
    Fault("apply_generate", _fn(_responses, "apply_generate"), "generate", READING, {}),
    Fault("apply_usage", _fn(_responses, "apply_usage"), "generate", READING, {}),
    Fault("apply_embed", _fn(_responses, "apply_embed"), "embed", READING, {}),
    Fault("observe_chunk", _fn(_responses, "observe_chunk"), "stream", {"reading a stream chunk": PER_CHUNK}, {}),
    # A stream's usage is converted once, from the last chunk's, when it ends.
    Fault("apply_usage-stream", _fn(_responses, "apply_usage"), "stream", {"finishing stream accumulation": 1}, {}),
    # Noting each request's usage (automatic function calling): the response's own usage is used.
    Fault("hops.note", _fn(_hops, "_note"), "generate", {"noting a request's usage": 1}, {}),
    Fault(
        "hops.start",
        lambda mp: mp.setattr(_hops, "_usages", BrokenContextVar()),
        "generate",
        {"collecting request usage": 1},
        {"collecting request usage": 1},
    ),
    Fault("apply_summed_usage", _fn(_responses, "apply_summed_usage"), "generate", READING, {}),
    # The stream is returned untraced and its span ends at once (before the SDK's error surfaces).
    Fault("chunk_observer", _fn(_responses, "chunk_observer"), "stream", READING, READING, error_status=False),
    Fault("mark_chunk", _on(GenAICall, "mark_chunk"), "stream", {"reading a stream chunk": PER_CHUNK}, {}),
    # Content capture.
    Fault(
        "input_messages",
        _fn(_content, "input_messages"),
        "generate",
        {"capturing content": 1},
        {"capturing content": 1},
        env=CAPTURE,
    ),
    Fault(
        "input_messages-stream",
        _fn(_content, "input_messages"),
        "stream",
        {"capturing content": 1},
        {"capturing content": 1},
        env=CAPTURE,
    ),
    Fault("output_messages", _fn(_content, "output_messages"), "generate", READING, {}, env=CAPTURE),
    Fault(
        "output_message-stream",
        _fn(_content, "output_message"),
        "stream",
        {"finishing stream accumulation": 1},
        {},
        env=CAPTURE,
    ),
    # Pricing and metrics.
    Fault("price", _on(pricing.PriceBook, "cost"), "generate", {"pricing": 1}, {"pricing": 1}),
    Fault("price-stream", _on(pricing.PriceBook, "cost"), "stream", {"pricing": 1}, {"pricing": 1}),
    Fault("price-embed", _on(pricing.PriceBook, "cost"), "embed", {"pricing": 1}, {"pricing": 1}),
    Fault(
        "record_metrics",
        _on(recorder.Recorder, "_record_metrics"),
        "generate",
        {"recording metrics": 1},
        {"recording metrics": 1},
    ),
    Fault(
        "record_metrics-stream",
        _on(recorder.Recorder, "_record_metrics"),
        "stream",
        {"recording metrics": 1},
        {"recording metrics": 1},
    ),
    # Ending the span.
    Fault("end_span", _on(recorder.Recorder, "_end_span"), "generate", READING, FAILED_CALL, 0, 0),
    Fault("end_span-stream", _on(recorder.Recorder, "_end_span"), "stream", STREAM_END, STREAM_END, 0, 0),
    Fault("span.end", _on(sdk_trace.Span, "end"), "generate", {"ending the span": 1}, {"ending the span": 1}, 0, 0),
    Fault(
        "span.end-stream", _on(sdk_trace.Span, "end"), "stream", {"ending the span": 1}, {"ending the span": 1}, 0, 0
    ),
    Fault("finish-stream", _on(recorder.Recorder, "finish"), "stream", STREAM_END, STREAM_END, 0, 0),
]


# -- checks ---------------------------------------------------------------------------------------------


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


def _check_same_error(error: BaseException, baseline: BaseException) -> None:
    assert type(error) is type(baseline) is errors.ClientError
    assert str(error) == str(baseline)
    assert error.code == baseline.code == 429
    assert error.details == baseline.details
    assert type(error.__cause__) is type(baseline.__cause__)
    assert type(error.__context__) is type(baseline.__context__)


def _check_spans(telemetry: Any, fault: Fault, expected: int, failing: bool) -> None:
    spans = telemetry.spans()
    assert len(spans) == expected, [s.name for s in spans]
    if not expected:
        return
    span = spans[0]
    operation = "embeddings" if fault.workload == "embed" else "generate_content"
    model = FAILING_MODEL if failing else (EMBEDDING_MODEL if fault.workload == "embed" else MODEL)
    assert span.name == f"{operation} {model}"
    if failing and fault.error_status:
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes["error.type"] == "google.genai.errors.ClientError"
    else:
        assert span.status.status_code is StatusCode.UNSET


@pytest.fixture(autouse=True)
def _collect_leftovers() -> Iterator[None]:
    """A fault can leave a stream proxy whose span could not end; collect it here, not in a later test."""
    yield
    gc.collect()


@pytest.fixture(scope="module")
def server() -> Iterator[GeminiServer]:
    with GeminiServer() as s:
        yield s


# -- tests ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
def test_sync_fault_is_contained(
    fault: Fault, server: GeminiServer, telemetry: Any, instrument_with: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = run_sync(client_for(server), fault.workload)
    with pytest.raises(errors.ClientError) as expected_error:
        run_sync(client_for(server), fault.workload, failing=True)
    chunks = len(expected) if isinstance(expected, list) else 0

    fault.inject(monkeypatch)
    instrument_with(GoogleGenAIInstrumentor, **fault.env)

    before = Counter(internal_errors)
    assert run_sync(client_for(server), fault.workload) == expected
    _check_counted(_delta(before), fault.counted, chunks)
    _check_spans(telemetry, fault, fault.spans, failing=False)

    telemetry.exporter.clear()
    before = Counter(internal_errors)
    with pytest.raises(errors.ClientError) as error:
        run_sync(client_for(server), fault.workload, failing=True)
    _check_same_error(error.value, expected_error.value)
    _check_counted(_delta(before), fault.counted_on_error, 0)
    _check_spans(telemetry, fault, fault.spans_on_error, failing=True)


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
async def test_async_fault_is_contained(
    fault: Fault, server: GeminiServer, telemetry: Any, instrument_with: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = await run_async(client_for(server), fault.workload)
    with pytest.raises(errors.ClientError) as expected_error:
        await run_async(client_for(server), fault.workload, failing=True)
    chunks = len(expected) if isinstance(expected, list) else 0

    fault.inject(monkeypatch)
    instrument_with(GoogleGenAIInstrumentor, **fault.env)

    before = Counter(internal_errors)
    assert await run_async(client_for(server), fault.workload) == expected
    _check_counted(_delta(before), fault.counted, chunks)
    _check_spans(telemetry, fault, fault.spans, failing=False)

    telemetry.exporter.clear()
    before = Counter(internal_errors)
    with pytest.raises(errors.ClientError) as error:
        await run_async(client_for(server), fault.workload, failing=True)
    _check_same_error(error.value, expected_error.value)
    _check_counted(_delta(before), fault.counted_on_error, 0)
    _check_spans(telemetry, fault, fault.spans_on_error, failing=True)
