"""Nothing of ours may change what a LiteLLM application sees.

Each case makes one of tokentrace's hooks raise and runs the same call twice against the simulator:
once successful, once failing in LiteLLM (``error-429`` → ``litellm.RateLimitError``). Results must
equal an uninstrumented run's, the exception must be the same, the fault must be counted in
``tokentrace.core.safety.internal_errors``, and the span must still end where the fault allows it.
LiteLLM and the openai SDK under it are both instrumented, so the merge of the inner call is covered.
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
litellm = pytest.importorskip("litellm")

from observed import fingerprint  # noqa: E402
from opentelemetry.trace import StatusCode  # noqa: E402

import tokentrace  # noqa: E402
from tokentrace.core import pricing, recorder, semconv  # noqa: E402
from tokentrace.core.safety import internal_errors  # noqa: E402
from tokentrace.instrumentation.litellm import LiteLLMInstrumentor, _providers, _requests, _responses  # noqa: E402
from tokentrace.instrumentation.openai import OpenAIInstrumentor, _content  # noqa: E402

PROMPT = [{"role": "user", "content": "Nothing of ours may change what LiteLLM returns."}]
CAPTURE = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"}
PER_CHUNK = -1


class InjectedFault(RuntimeError):
    pass


def boom(*args: Any, **kwargs: Any) -> Any:
    raise InjectedFault("injected into a tokentrace hook")


def _route(sim: Any, workload: str, failing: bool) -> dict[str, Any]:
    if workload.startswith("anthropic"):
        model = "anthropic/error-429" if failing else "anthropic/claude-3-5-haiku-20241022"
        return {"model": model, "api_base": f"http://{sim.host}:{sim.port}", "api_key": "k", "max_tokens": 64}
    if workload == "embedding":
        model = "openai/error-429" if failing else "openai/text-embedding-3-small"
        return {"model": model, "api_base": sim.base_url, "api_key": "k", "encoding_format": "float"}
    model = "openai/error-429" if failing else "openai/gpt-4o-mini"
    return {"model": model, "api_base": sim.base_url, "api_key": "k"}


def _observed(item: Any) -> Any:
    return re.sub(r"chatcmpl-[0-9a-f-]+", "ID", str(fingerprint(item)))


def run_sync(sim: Any, workload: str, failing: bool = False) -> Any:
    sim.reset()
    route = _route(sim, workload, failing)
    if workload == "embedding":
        return _observed(litellm.embedding(input=["embed"], **route))
    if workload.endswith("stream"):
        stream = litellm.completion(messages=PROMPT, stream=True, stream_options={"include_usage": True}, **route)
        return [_observed(chunk) for chunk in stream]
    return _observed(litellm.completion(messages=PROMPT, **route))


async def run_async(sim: Any, workload: str, failing: bool = False) -> Any:
    sim.reset()
    route = _route(sim, workload, failing)
    if workload == "embedding":
        return _observed(await litellm.aembedding(input=["embed"], **route))
    if workload.endswith("stream"):
        stream = await litellm.acompletion(
            messages=PROMPT, stream=True, stream_options={"include_usage": True}, **route
        )
        return [_observed(chunk) async for chunk in stream]
    return _observed(await litellm.acompletion(messages=PROMPT, **route))


@dataclass(frozen=True)
class Fault:
    id: str
    inject: Callable[[pytest.MonkeyPatch], None]
    workload: str
    counted: dict[str, int]
    counted_on_error: dict[str, int]
    spans: int = 1  # LiteLLM spans the successful call leaves
    spans_on_error: int = 1
    env: dict[str, str] = field(default_factory=dict)


def _on(owner: Any, name: str) -> Callable[[pytest.MonkeyPatch], None]:
    return lambda mp: mp.setattr(owner, name, boom)


DESCRIBE = {"describing the request": 1}
READING = {"reading the response": 1}
FAULTS = [
    # Describing the request: the call runs untraced by us (the inner openai call then has its own span).
    Fault("describe_completion", _on(_requests, "describe_completion"), "chat", DESCRIBE, DESCRIBE, 0, 0),
    Fault("describe_completion-stream", _on(_requests, "describe_completion"), "chat_stream", DESCRIBE, DESCRIBE, 0, 0),
    Fault("describe_embedding", _on(_requests, "describe_embedding"), "embedding", DESCRIBE, DESCRIBE, 0, 0),
    Fault("litellm_provider", _on(_providers, "litellm_provider"), "anthropic", DESCRIBE, DESCRIBE, 0, 0),
    # Reading the response: the span still ends, with what is known.
    Fault("apply_completion", _on(_responses, "apply_completion"), "chat", READING, {}),
    Fault("apply_completion-anthropic", _on(_responses, "apply_completion"), "anthropic", READING, {}),
    Fault("apply_embedding", _on(_responses, "apply_embedding"), "embedding", READING, {}),
    Fault("apply_hidden", _on(_responses, "apply_hidden"), "anthropic", READING, {}),
    Fault(
        "apply_hidden-stream",
        _on(_responses, "apply_hidden"),
        "anthropic_stream",
        {"finishing stream accumulation": 1},
        {},
    ),
    Fault("chunk_observer", _on(_responses, "chunk_observer"), "chat_stream", READING, {}),
    Fault(
        "collect-per-chunk",
        _on(_responses, "_collect"),
        "anthropic_stream",
        {"reading a stream chunk": PER_CHUNK},
        {},
        env=CAPTURE,
    ),
    # The merge of the inner openai call into LiteLLM's.
    Fault("merge", _on(recorder.Recorder, "_merge"), "chat", {"merging into the outer call": 1}, {}),
    Fault("merge-stream", _on(recorder.Recorder, "_merge"), "chat_stream", {"merging into the outer call": 1}, {}),
    # Pricing, content, metrics, ending the span.
    Fault("price", _on(pricing.PriceBook, "cost"), "chat", {"pricing": 1}, {"pricing": 1}),
    Fault("price-stream", _on(pricing.PriceBook, "cost"), "anthropic_stream", {"pricing": 1}, {"pricing": 1}),
    Fault(
        "content",
        _on(_content, "chat_input_messages"),
        "chat",
        {"capturing content": 1},
        {"capturing content": 1},
        env=CAPTURE,
    ),
    Fault(
        "record_metrics",
        _on(recorder.Recorder, "_record_metrics"),
        "chat",
        {"recording metrics": 1},
        {"recording metrics": 1},
    ),
    Fault("end_span", _on(recorder.Recorder, "_end_span"), "chat", READING, {"recording a failed call": 1}, 0, 0),
]


def _delta(before: Counter[str]) -> Counter[str]:
    assert tokentrace.flush()
    return Counter({k: v - before.get(k, 0) for k, v in internal_errors.items() if v != before.get(k, 0)})


def _check_counted(delta: Counter[str], expected: dict[str, int], chunks: int) -> None:
    assert set(delta) == set(expected), dict(delta)
    for where, count in expected.items():
        if count == PER_CHUNK:
            assert delta[where] == chunks > 0
        else:
            assert delta[where] == count, dict(delta)


def _check_spans(telemetry: Any, expected: int, failing: bool) -> None:
    spans = [s for s in telemetry.spans() if s.instrumentation_scope.name == "tokentrace.instrumentation.litellm"]
    assert len(spans) == expected, [s.name for s in spans]
    if expected:
        if failing:
            assert spans[0].status.status_code is StatusCode.ERROR
            assert spans[0].attributes[semconv.ERROR_TYPE] == "litellm.exceptions.RateLimitError"
        else:
            assert spans[0].status.status_code is StatusCode.UNSET


def _same_error(error: BaseException, baseline: BaseException) -> None:
    assert type(error) is type(baseline) is litellm.RateLimitError
    assert re.sub(r"req_\d+", "", str(error)) == re.sub(r"req_\d+", "", str(baseline))
    assert error.status_code == baseline.status_code == 429


def _close_leftover_sessions() -> None:
    """aiohttp sessions LiteLLM opened on event loops that are gone: closed now, quietly."""
    try:
        import aiohttp
    except ImportError:
        return
    for session in [o for o in gc.get_objects() if isinstance(o, aiohttp.ClientSession) and not o.closed]:
        try:
            asyncio.run(session.close())
        except Exception:
            session._connector = None  # its loop is closed: nothing left to release


@pytest.fixture(scope="module", autouse=True)
def _collect_litellm_sessions() -> Any:
    """LiteLLM keeps an aiohttp session per event loop the tests ran; collected here, while pytest
    still captures output, rather than at interpreter exit after the summary."""
    yield
    litellm.in_memory_llm_clients_cache.flush_cache()
    gc.collect()
    _close_leftover_sessions()


@pytest.fixture(autouse=True)
async def _close_litellm_sessions() -> Any:
    """Close LiteLLM's cached aiohttp sessions while the test's event loop still runs (else they are
    reported unclosed at interpreter exit, after pytest's summary)."""
    yield
    close = getattr(litellm, "close_litellm_async_clients", None)
    if close is not None:
        await close()


@pytest.fixture(autouse=True)
def _fresh_litellm_clients() -> Any:
    litellm.in_memory_llm_clients_cache.flush_cache()
    yield
    litellm.in_memory_llm_clients_cache.flush_cache()


def _instrument(instrument_with: Any, fault: Fault) -> None:
    instrument_with(OpenAIInstrumentor, **fault.env)
    instrument_with(LiteLLMInstrumentor, **fault.env)
    litellm.in_memory_llm_clients_cache.flush_cache()


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
def test_sync_fault_is_contained(
    fault: Fault, simulator: Any, telemetry: Any, instrument_with: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = run_sync(simulator, fault.workload)
    with pytest.raises(litellm.RateLimitError) as expected_error:
        run_sync(simulator, fault.workload, failing=True)
    chunks = len(expected) if isinstance(expected, list) else 0

    fault.inject(monkeypatch)
    _instrument(instrument_with, fault)
    before = Counter(internal_errors)
    assert run_sync(simulator, fault.workload) == expected
    _check_counted(_delta(before), fault.counted, chunks)
    _check_spans(telemetry, fault.spans, failing=False)

    telemetry.exporter.clear()
    before = Counter(internal_errors)
    with pytest.raises(litellm.RateLimitError) as error:
        run_sync(simulator, fault.workload, failing=True)
    _same_error(error.value, expected_error.value)
    _check_counted(_delta(before), fault.counted_on_error, chunks)
    _check_spans(telemetry, fault.spans_on_error, failing=True)


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
async def test_async_fault_is_contained(
    fault: Fault, simulator: Any, telemetry: Any, instrument_with: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = await run_async(simulator, fault.workload)
    with pytest.raises(litellm.RateLimitError) as expected_error:
        await run_async(simulator, fault.workload, failing=True)
    chunks = len(expected) if isinstance(expected, list) else 0

    fault.inject(monkeypatch)
    _instrument(instrument_with, fault)
    before = Counter(internal_errors)
    assert await run_async(simulator, fault.workload) == expected
    _check_counted(_delta(before), fault.counted, chunks)
    _check_spans(telemetry, fault.spans, failing=False)

    telemetry.exporter.clear()
    before = Counter(internal_errors)
    with pytest.raises(litellm.RateLimitError) as error:
        await run_async(simulator, fault.workload, failing=True)
    _same_error(error.value, expected_error.value)
    _check_counted(_delta(before), fault.counted_on_error, chunks)
    _check_spans(telemetry, fault.spans_on_error, failing=True)
