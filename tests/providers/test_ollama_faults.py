"""Nothing of ours may change what an Ollama application sees.

Each case makes one tokentrace hook raise, then runs a workload against the local Ollama server twice:
successfully, and failing in the SDK (``error-429``). Results and exceptions must equal an
uninstrumented run's; the fault must be counted in ``internal_errors``; the span must still end where
the fault allows it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ollama
import pytest
from opentelemetry.trace import StatusCode

import tokentrace
from tests.providers.generator_streams import fingerprint
from tests.providers.servers.ollama import OllamaServer
from tokentrace.core import pricing, semconv
from tokentrace.core.call import GenAICall
from tokentrace.core.recorder import Recorder
from tokentrace.core.safety import internal_errors
from tokentrace.instrumentation.ollama import OllamaInstrumentor, _patch, _requests, _responses
from tokentrace.instrumentation.openai import _content

MODEL = "llama3.2"
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
        return fingerprint(client.chat(model, MESSAGES))
    if workload == "chat_stream":
        return [fingerprint(p) for p in client.chat(model, MESSAGES, stream=True)]
    if workload == "generate_stream":
        return [fingerprint(p) for p in client.generate(model, "Contain it", stream=True)]
    return fingerprint(client.embed(model, ["a b"]))


async def run_async(client: Any, workload: str, model: str) -> Any:
    if workload == "chat":
        return fingerprint(await client.chat(model, MESSAGES))
    if workload == "chat_stream":
        return [fingerprint(p) async for p in await client.chat(model, MESSAGES, stream=True)]
    if workload == "generate_stream":
        return [fingerprint(p) async for p in await client.generate(model, "Contain it", stream=True)]
    return fingerprint(await client.embed(model, ["a b"]))


@dataclass(frozen=True)
class Fault:
    id: str
    inject: Callable[[pytest.MonkeyPatch], None]
    workload: str
    counted: dict[str, int]
    counted_on_error: dict[str, int]
    spans: int = 1
    error_status: bool = True
    env: dict[str, str] = field(default_factory=dict)


def _on(owner: Any, name: str) -> Callable[[pytest.MonkeyPatch], None]:
    return lambda mp: mp.setattr(owner, name, boom)


def _apply(method: str) -> Callable[[pytest.MonkeyPatch], None]:
    """The result readers are looked up in ``_patch._APPLY``, so the fault goes there."""
    return lambda mp: mp.setitem(_patch._APPLY, method, boom)


DESCRIBE = {"describing the request": 1}
READ = {"reading the response": 1}

FAULTS = [
    Fault("describe", _on(_requests, "describe"), "chat", DESCRIBE, DESCRIBE, spans=0),
    Fault("describe-stream", _on(_requests, "describe"), "chat_stream", DESCRIBE, DESCRIBE, spans=0),
    Fault("endpoint", _on(_requests, "endpoint"), "embed", DESCRIBE, DESCRIBE, spans=0),
    Fault("apply_chat", _apply("chat"), "chat", READ, {}),
    Fault("apply_embed", _apply("embed"), "embed", READ, {}),
    Fault("apply_final", _on(_responses, "apply_final"), "chat", READ, {}),
    Fault("apply_final-stream", _on(_responses, "apply_final"), "generate_stream", {"reading a stream chunk": 1}, {}),
    Fault(
        "observe_chat_part",
        _on(_responses, "observe_chat_part"),
        "chat_stream",
        {"reading a stream chunk": PER_CHUNK},
        {},
    ),
    Fault("part_observer", _on(_responses, "part_observer"), "chat_stream", READ, READ, error_status=False),
    Fault("mark_chunk", _on(GenAICall, "mark_chunk"), "generate_stream", {"reading a stream chunk": PER_CHUNK}, {}),
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
    assert type(error) is type(baseline) is ollama.ResponseError
    assert str(error) == str(baseline)
    assert error.status_code == baseline.status_code == 429  # type: ignore[attr-defined]
    assert type(error.__context__) is type(baseline.__context__)


def _check_spans(telemetry: Any, fault: Fault, failing: bool) -> None:
    spans = telemetry.spans()
    assert len(spans) == fault.spans, [s.name for s in spans]
    if spans:
        span = spans[0]
        if failing and fault.error_status:
            assert span.status.status_code is StatusCode.ERROR
            assert span.attributes[semconv.ERROR_TYPE] == "ollama.ResponseError"
        else:
            assert span.status.status_code is StatusCode.UNSET


@pytest.fixture(scope="module")
def server() -> Any:
    with OllamaServer() as s:
        yield s


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
def test_sync_fault_is_contained(
    fault: Fault, server: Any, telemetry: Any, instrument_with: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = ollama.Client(host=server.base_url)
    expected = run_sync(client, fault.workload, MODEL)
    with pytest.raises(ollama.ResponseError) as expected_error:
        run_sync(client, fault.workload, FAILING)
    chunks = len(expected) if isinstance(expected, list) else 0

    fault.inject(monkeypatch)
    instrument_with(OllamaInstrumentor, **fault.env)
    before = Counter(internal_errors)
    assert run_sync(client, fault.workload, MODEL) == expected
    _check_counted(_delta(before), fault.counted, chunks)
    _check_spans(telemetry, fault, failing=False)

    telemetry.exporter.clear()
    before = Counter(internal_errors)
    with pytest.raises(ollama.ResponseError) as error:
        run_sync(client, fault.workload, FAILING)
    _check_same_error(error.value, expected_error.value)
    _check_counted(_delta(before), fault.counted_on_error, chunks)
    _check_spans(telemetry, fault, failing=True)


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
async def test_async_fault_is_contained(
    fault: Fault, server: Any, telemetry: Any, instrument_with: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = ollama.AsyncClient(host=server.base_url)
    expected = await run_async(client, fault.workload, MODEL)
    with pytest.raises(ollama.ResponseError) as expected_error:
        await run_async(client, fault.workload, FAILING)
    chunks = len(expected) if isinstance(expected, list) else 0

    fault.inject(monkeypatch)
    instrument_with(OllamaInstrumentor, **fault.env)
    before = Counter(internal_errors)
    assert await run_async(client, fault.workload, MODEL) == expected
    _check_counted(_delta(before), fault.counted, chunks)
    _check_spans(telemetry, fault, failing=False)

    telemetry.exporter.clear()
    before = Counter(internal_errors)
    with pytest.raises(ollama.ResponseError) as error:
        await run_async(client, fault.workload, FAILING)
    _check_same_error(error.value, expected_error.value)
    _check_counted(_delta(before), fault.counted_on_error, chunks)
    _check_spans(telemetry, fault, failing=True)
