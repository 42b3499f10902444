"""The stream contract for LiteLLM's ``CustomStreamWrapper`` (``completion`` / ``acompletion`` with
``stream=True``), on the OpenAI route (openai SDK underneath, itself instrumented and merged) and the
Anthropic route (LiteLLM's own httpx handler).

Each case opens a stream one way and leaves it one way, twice: instrumented, then uninstrumented as
the baseline. The application must see the same chunks and the same exception both times; the
instrumented run must leave exactly one LLM span (LiteLLM's: the inner openai call merges into it),
ended exactly once, a child of the application's span, with the right
``tokentrace.stream.end_reason`` and ``tokentrace.stream.chunks``. ``CustomStreamWrapper`` has no
``close()`` and no ``with``: an application leaves early by ``break`` (then drops it), ``aclose()``,
or its own exception.
"""

from __future__ import annotations

import asyncio
import gc
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from observed import fingerprint
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from tests.providers.litellm_setup import (  # noqa: F401  (autouse fixtures)
    close_litellm_sessions,
    collect_litellm_sessions,
    fresh_litellm_clients,
    litellm,
)
from tests.providers.stream_exits import AppError, cancel_after_first, the_stream_span
from tokentrace.core import semconv
from tokentrace.core.safety import internal_errors
from tokentrace.demo.simulator import Simulator
from tokentrace.instrumentation.litellm import LiteLLMInstrumentor
from tokentrace.instrumentation.openai import OpenAIInstrumentor

CHUNK_DELAY = 0.25  # the slow simulator's pause between events: cancellation lands before chunk two
PROMPT = [{"role": "user", "content": "Walk me through the LiteLLM stream contract."}]
ROUTES = {
    "openai": ("openai/gpt-4o-mini", "openai", {"stream_options": {"include_usage": True}}),
    "anthropic": ("anthropic/claude-3-5-haiku-20241022", "anthropic", {"max_tokens": 64}),
}
END_REASONS = {
    "exhaust": "completed",
    "break_gc": "abandoned",
    "aclose": "closed",
    "app_error": "abandoned",  # the app's exception leaves the stream behind; it is collected
    "server_error": "error",
    "never_iterated_gc": "abandoned",
    "cancel": "cancelled",
}
SYNC_EXITS = ["exhaust", "break_gc", "app_error", "server_error", "never_iterated_gc"]
ASYNC_EXITS = [*SYNC_EXITS, "aclose", "cancel"]


@dataclass
class Outcome:
    items: list[dict[str, Any]] = field(default_factory=list)
    error: BaseException | None = None
    raised: AppError | None = None
    current_spans: list[Any] = field(default_factory=list)
    stream_type: type | None = None
    has_close: bool | None = None
    has_aclose: bool | None = None

    def opened(self, stream: Any) -> None:
        self.stream_type = type(stream.__wrapped__) if hasattr(stream, "__wrapped__") else type(stream)
        self.has_close = hasattr(stream, "close")
        self.has_aclose = hasattr(stream, "aclose")
        self.current_spans.append(trace.get_current_span())

    def see(self, chunk: Any) -> None:
        self.items.append(fingerprint(chunk))
        self.current_spans.append(trace.get_current_span())


def _kwargs(route: str, sim: Any, exit_path: str) -> dict[str, Any]:
    model, _, extra = ROUTES[route]
    if exit_path == "server_error":
        model = f"{route}/midstream-error"
    base = sim.base_url if route == "openai" else f"http://{sim.host}:{sim.port}"
    return {"model": model, "messages": PROMPT, "api_base": base, "api_key": "sk-test", "stream": True, **extra}


def _scrub(text: str) -> str:
    return re.sub(r"req_\d+|chatcmpl-[0-9a-f-]+", "ID", text)


def drive_sync(route: str, exit_path: str, sim: Any) -> Outcome:
    out = Outcome()
    sim.reset()  # both runs see a fresh prompt cache, so the usage (and LiteLLM's cost) match
    stream: Any = None
    try:
        stream = litellm.completion(**_kwargs(route, sim, exit_path))
        out.opened(stream)
        if exit_path == "never_iterated_gc":
            pass
        elif exit_path == "break_gc":
            for chunk in stream:
                out.see(chunk)
                break
        elif exit_path == "app_error":
            for chunk in stream:
                out.see(chunk)
                out.raised = AppError("the application's own bug")
                raise out.raised
        else:  # exhaust, server_error
            for chunk in stream:
                out.see(chunk)
    except Exception as error:
        out.error = error
    stream = None  # the application drops the stream: what it left unended, the collector ends
    gc.collect()
    out.current_spans.append(trace.get_current_span())
    return out


async def drive_async(route: str, exit_path: str, sim: Any) -> Outcome:
    out = Outcome()
    sim.reset()
    stream: Any = None
    try:
        stream = await litellm.acompletion(**_kwargs(route, sim, exit_path))
        out.opened(stream)
        if exit_path == "never_iterated_gc":
            pass
        elif exit_path == "break_gc":
            async for chunk in stream:
                out.see(chunk)
                break
        elif exit_path == "aclose":
            async for chunk in stream:
                out.see(chunk)
                break
            await stream.aclose()
        elif exit_path == "app_error":
            async for chunk in stream:
                out.see(chunk)
                out.raised = AppError("the application's own bug")
                raise out.raised
        elif exit_path == "cancel":
            out.error = await cancel_after_first(stream, out.see)
        else:
            async for chunk in stream:
                out.see(chunk)
    except Exception as error:
        out.error = error
    stream = None  # the application drops the stream: what it left unended, the collector ends
    gc.collect()
    out.current_spans.append(trace.get_current_span())
    return out


@pytest.fixture(scope="module")
def slow_simulator() -> Any:
    with Simulator(seed=2, chunk_delay=CHUNK_DELAY) as sim:
        yield sim


def check(
    route: str, exit_path: str, traced: Outcome, baseline: Outcome, app_span: Any, telemetry: Any, ended: list[Any]
) -> None:
    # The application could not tell the difference.
    assert [_scrub(str(i)) for i in traced.items] == [_scrub(str(i)) for i in baseline.items]
    assert type(traced.error) is type(baseline.error)
    assert _scrub(str(traced.error)) == _scrub(str(baseline.error))
    assert traced.stream_type is baseline.stream_type is litellm.CustomStreamWrapper
    assert traced.has_close is baseline.has_close
    assert traced.has_aclose is baseline.has_aclose
    if exit_path == "app_error":
        assert traced.error is traced.raised is not None
    if exit_path == "cancel":
        assert isinstance(traced.error, asyncio.CancelledError)
    if exit_path == "server_error":
        assert type(traced.error).__module__ == "litellm.exceptions"
    assert traced.current_spans and all(span is app_span for span in traced.current_spans)

    span = the_stream_span(
        [s for s in telemetry.spans() if semconv.OPERATION_NAME in (s.attributes or {})], ended, app_span
    )
    assert span.instrumentation_scope.name == "tokentrace.instrumentation.litellm"
    a = dict(span.attributes)
    assert a[semconv.PROVIDER_NAME] == ROUTES[route][1]
    assert a[semconv.STREAM_END_REASON] == END_REASONS[exit_path]
    assert a[semconv.STREAM_CHUNKS] == len(traced.items)
    if exit_path in ("break_gc", "aclose", "app_error", "cancel"):
        assert len(traced.items) == 1
    if exit_path == "never_iterated_gc":
        assert not traced.items
    if exit_path == "server_error":
        assert span.status.status_code is StatusCode.ERROR
        assert a[semconv.ERROR_TYPE] == f"litellm.exceptions.{type(traced.error).__qualname__}"
    else:
        assert span.status.status_code is StatusCode.UNSET
        assert semconv.ERROR_TYPE not in a
    if exit_path == "exhaust":
        assert a[semconv.USAGE_SOURCE] == "reported"
        assert a[semconv.USAGE_INPUT_TOKENS] > 0 and a[semconv.USAGE_OUTPUT_TOKENS] > 0
        assert a[semconv.USAGE_COST_AMOUNT] > 0
        if route == "openai":  # the openai SDK call's own detail, merged
            assert a[semconv.MERGED_FROM] == "tokentrace.instrumentation.openai"
            assert a[semconv.RESPONSE_MODEL] == "gpt-4o-mini-2024-07-18"
            usage = traced.items[-1]["data"]["usage"]
            assert a[semconv.USAGE_INPUT_TOKENS] == usage["prompt_tokens"]
            assert a[semconv.USAGE_COST_SOURCE] == "provider"  # LiteLLM's cost on the usage chunk
            assert a[semconv.USAGE_COST_AMOUNT] == pytest.approx(usage["cost"], abs=1e-12)


def _instrument(instrument_with: Any) -> list[Any]:
    return [instrument_with(OpenAIInstrumentor), instrument_with(LiteLLMInstrumentor)]


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("exit_path", SYNC_EXITS)
def test_sync_stream_contract(
    route: str, exit_path: str, simulator: Any, telemetry: Any, instrument_with: Any, span_ends: list[Any]
) -> None:
    instrumentors = _instrument(instrument_with)
    app_tracer = telemetry.tracer_provider.get_tracer("app")
    errors_before = sum(internal_errors.values())
    with app_tracer.start_as_current_span("app") as app_span:
        traced = drive_sync(route, exit_path, simulator)
    for instrumentor in instrumentors:
        instrumentor.uninstrument()
    litellm.in_memory_llm_clients_cache.flush_cache()
    with app_tracer.start_as_current_span("app"):
        baseline = drive_sync(route, exit_path, simulator)
    check(route, exit_path, traced, baseline, app_span, telemetry, span_ends)
    assert sum(internal_errors.values()) == errors_before, dict(internal_errors)


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("exit_path", ASYNC_EXITS)
async def test_async_stream_contract(
    route: str,
    exit_path: str,
    simulator: Any,
    slow_simulator: Any,
    telemetry: Any,
    instrument_with: Any,
    span_ends: list[Any],
) -> None:
    sim = slow_simulator if exit_path == "cancel" else simulator
    instrumentors = _instrument(instrument_with)
    app_tracer = telemetry.tracer_provider.get_tracer("app")
    errors_before = sum(internal_errors.values())
    with app_tracer.start_as_current_span("app") as app_span:
        traced = await drive_async(route, exit_path, sim)
    for instrumentor in instrumentors:
        instrumentor.uninstrument()
    litellm.in_memory_llm_clients_cache.flush_cache()
    with app_tracer.start_as_current_span("app"):
        baseline = await drive_async(route, exit_path, sim)
    check(route, exit_path, traced, baseline, app_span, telemetry, span_ends)
    assert sum(internal_errors.values()) == errors_before, dict(internal_errors)


def test_proxy_passes_through(simulator: Any, telemetry: Any, instrument_with: Any) -> None:
    _instrument(instrument_with)
    stream = litellm.completion(**_kwargs("openai", simulator, "exhaust"))
    assert isinstance(stream, litellm.CustomStreamWrapper)
    assert iter(stream) is stream and stream.__aiter__() is stream
    assert stream.model == "gpt-4o-mini" and stream.custom_llm_provider == "openai"
    assert not hasattr(stream, "close") and not hasattr(stream, "__enter__")
    list(stream)
    assert next(iter(stream), None) is None  # exhausted twice: nothing new, one span
    spans = [s for s in telemetry.spans() if s.instrumentation_scope.name.endswith("litellm")]
    assert len(spans) == 1
