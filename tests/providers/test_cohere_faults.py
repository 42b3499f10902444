"""Nothing of ours may change what a Cohere application sees.

Each case makes one tokentrace hook raise, then runs a workload against the local Cohere server twice:
successfully, and failing in the SDK (``error-429``, no retries). Results and exceptions must equal an
uninstrumented run's; the fault must be counted in ``internal_errors``; the span must still end where
the fault allows it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cohere
import pytest
from opentelemetry.trace import StatusCode

import tokentrace
from tests.providers.generator_streams import fingerprint
from tests.providers.servers.cohere import CohereServer, client_for
from tokentrace.core import pricing, semconv
from tokentrace.core.call import GenAICall
from tokentrace.core.recorder import Recorder
from tokentrace.core.safety import internal_errors
from tokentrace.instrumentation.cohere import CohereInstrumentor, _requests, _responses
from tokentrace.instrumentation.openai import _content

MODEL = "command-a-03-2025"
FAILING = "error-429"
MESSAGES = [{"role": "user", "content": "Contain the fault chunks=3"}]
CAPTURE = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"}
PER_CHUNK = -1
AT_LEAST_ONCE = 0


class InjectedFault(RuntimeError):
    pass


def boom(*args: Any, **kwargs: Any) -> Any:
    raise InjectedFault("injected into a tokentrace hook")


def run_sync(client: Any, workload: str, model: str) -> Any:
    if workload == "chat":
        return fingerprint(client.chat(model=model, messages=MESSAGES))
    if workload == "chat_stream":
        return [fingerprint(e) for e in client.chat_stream(model=model, messages=MESSAGES)]
    return fingerprint(
        client.embed(
            model="embed-v4.0" if model == MODEL else model,
            texts=["a b"],
            input_type="search_document",
            embedding_types=["float"],
        )
    )


async def run_async(client: Any, workload: str, model: str) -> Any:
    if workload == "chat":
        return fingerprint(await client.chat(model=model, messages=MESSAGES))
    if workload == "chat_stream":
        return [fingerprint(e) async for e in client.chat_stream(model=model, messages=MESSAGES)]
    return fingerprint(
        await client.embed(
            model="embed-v4.0" if model == MODEL else model,
            texts=["a b"],
            input_type="search_document",
            embedding_types=["float"],
        )
    )


@dataclass(frozen=True)
class Fault:
    id: str
    inject: Callable[[pytest.MonkeyPatch], None]
    workload: str
    counted: dict[str, int]
    counted_on_error: dict[str, int]
    spans: int = 1
    error_status: bool = True  # the failing call's span carries the SDK's error
    env: dict[str, str] = field(default_factory=dict)


def _on(owner: Any, name: str) -> Callable[[pytest.MonkeyPatch], None]:
    return lambda mp: mp.setattr(owner, name, boom)


DESCRIBE = {"describing the request": 1}
READ = {"reading the response": 1}

FAULTS = [
    Fault("describe_chat", _on(_requests, "describe_chat"), "chat", DESCRIBE, DESCRIBE, spans=0),
    Fault("describe_chat-stream", _on(_requests, "describe_chat"), "chat_stream", DESCRIBE, DESCRIBE, spans=0),
    Fault("describe_embed", _on(_requests, "describe_embed"), "embed", DESCRIBE, DESCRIBE, spans=0),
    Fault("endpoint", _on(_requests, "endpoint"), "chat", DESCRIBE, DESCRIBE, spans=0),
    Fault("apply_chat", _on(_responses, "apply_chat"), "chat", READ, {}),
    Fault("apply_usage", _on(_responses, "apply_usage"), "chat", READ, {}),
    Fault("apply_embed", _on(_responses, "apply_embed"), "embed", READ, {}),
    Fault("observe_event", _on(_responses, "observe_event"), "chat_stream", {"reading a stream chunk": PER_CHUNK}, {}),
    Fault("apply_usage-stream", _on(_responses, "apply_usage"), "chat_stream", {"reading a stream chunk": 1}, {}),
    Fault(
        "chat_event_observer", _on(_responses, "chat_event_observer"), "chat_stream", READ, READ, error_status=False
    ),  # the stream goes back untraced; its span ends at once
    Fault("mark_chunk", _on(GenAICall, "mark_chunk"), "chat_stream", {"reading a stream chunk": PER_CHUNK}, {}),
    Fault("price", _on(pricing.PriceBook, "cost"), "chat", {"pricing": 1}, {"pricing": 1}),
    Fault("price-stream", _on(pricing.PriceBook, "cost"), "chat_stream", {"pricing": 1}, {"pricing": 1}),
    Fault(
        "content",
        _on(_content, "chat_input_messages"),
        "chat",
        {"capturing content": 1},
        {"capturing content": 1},
        env=CAPTURE,
    ),
    Fault("output_message", _on(_responses, "output_message"), "chat", READ, {}, env=CAPTURE),
    Fault(
        "output_message-stream",
        _on(_responses, "output_message"),
        "chat_stream",
        {"finishing stream accumulation": 1},
        {"finishing stream accumulation": 1},
        env=CAPTURE,
    ),
    Fault(
        "record_metrics", _on(Recorder, "_record_metrics"), "chat", {"recording metrics": 1}, {"recording metrics": 1}
    ),
    Fault(
        "finish-stream",
        _on(Recorder, "finish"),
        "chat_stream",
        {"ending a stream": AT_LEAST_ONCE},
        {"ending a stream": AT_LEAST_ONCE},
        spans=0,
    ),
]


def _delta(before: Counter[str]) -> Counter[str]:
    assert tokentrace.flush()
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
    assert type(error) is type(baseline) is cohere.TooManyRequestsError
    assert str(error) == str(baseline)
    assert error.status_code == baseline.status_code == 429  # type: ignore[attr-defined]
    assert error.body == baseline.body  # type: ignore[attr-defined]
    assert type(error.__context__) is type(baseline.__context__)


def _check_spans(telemetry: Any, fault: Fault, failing: bool) -> None:
    spans = telemetry.spans()
    assert len(spans) == fault.spans, [s.name for s in spans]
    if spans:
        span = spans[0]
        if failing and fault.error_status:
            assert span.status.status_code is StatusCode.ERROR
            assert span.attributes[semconv.ERROR_TYPE].endswith("TooManyRequestsError")
        else:
            assert span.status.status_code is StatusCode.UNSET


@pytest.fixture(scope="module")
def server() -> Any:
    with CohereServer() as s:
        yield s


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
def test_sync_fault_is_contained(
    fault: Fault, server: Any, telemetry: Any, instrument_with: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def make() -> Any:
        return client_for(server.base_url)

    expected = run_sync(make(), fault.workload, MODEL)
    with pytest.raises(cohere.TooManyRequestsError) as expected_error:
        run_sync(make(), fault.workload, FAILING)
    chunks = len(expected) if isinstance(expected, list) else 0

    fault.inject(monkeypatch)
    instrument_with(CohereInstrumentor, **fault.env)
    before = Counter(internal_errors)
    assert run_sync(make(), fault.workload, MODEL) == expected
    _check_counted(_delta(before), fault.counted, chunks)
    _check_spans(telemetry, fault, failing=False)

    telemetry.exporter.clear()
    before = Counter(internal_errors)
    with pytest.raises(cohere.TooManyRequestsError) as error:
        run_sync(make(), fault.workload, FAILING)
    _check_same_error(error.value, expected_error.value)
    _check_counted(_delta(before), fault.counted_on_error, chunks)
    _check_spans(telemetry, fault, failing=True)


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
async def test_async_fault_is_contained(
    fault: Fault, server: Any, telemetry: Any, instrument_with: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def make() -> Any:
        return client_for(server.base_url, asynchronous=True)

    expected = await run_async(make(), fault.workload, MODEL)
    with pytest.raises(cohere.TooManyRequestsError) as expected_error:
        await run_async(make(), fault.workload, FAILING)
    chunks = len(expected) if isinstance(expected, list) else 0

    fault.inject(monkeypatch)
    instrument_with(CohereInstrumentor, **fault.env)
    before = Counter(internal_errors)
    assert await run_async(make(), fault.workload, MODEL) == expected
    _check_counted(_delta(before), fault.counted, chunks)
    _check_spans(telemetry, fault, failing=False)

    telemetry.exporter.clear()
    before = Counter(internal_errors)
    with pytest.raises(cohere.TooManyRequestsError) as error:
        await run_async(make(), fault.workload, FAILING)
    _check_same_error(error.value, expected_error.value)
    _check_counted(_delta(before), fault.counted_on_error, chunks)
    _check_spans(telemetry, fault, failing=True)
