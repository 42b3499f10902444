"""The SDK's own spans (anthropic>=2) and ours: exactly one span per call, ours, in every order.

anthropic 2.x opens a ``CLIENT`` span inside ``client.request`` whenever it has a tracer (its
``open_telemetry`` option, or the global provider; ``ANTHROPIC_OPEN_TELEMETRY=false`` turns it off).
Our wrapper is outside it; the instrumentation hands our span to the SDK, so the SDK's attributes
land on our span and nothing else is exported. Checked with the SDK's telemetry on and off, sync and
async, streamed and not, first party, Bedrock and Vertex, and with the SDK ending "its" span before
and after our stream proxy ends the call.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import anthropic
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from tests.providers import test_anthropic_support as support
from tests.providers.test_anthropic_support import MESSAGES, MODEL, PLATFORM_MODEL, PLATFORMS, make_client, metric_sum
from tokentrace.core import semconv

sim = support.sim
traced = support.traced
SDK_SCOPE = "com.anthropic.sdk.python"
OUR_SCOPE = "tokentrace.instrumentation.anthropic"


def _otel(mode: str, telemetry: Any) -> Any:
    return {"tracer_provider": telemetry.tracer_provider} if mode == "on" else False


def _one_span(telemetry: Any, sdk: str, platform: str = "anthropic") -> Any:
    spans = telemetry.spans()
    assert [(s.name, s.instrumentation_scope.name) for s in spans] == [(f"chat {PLATFORM_MODEL[platform]}", OUR_SCOPE)]
    span = spans[0]
    attributes = span.attributes
    if sdk == "on":
        assert attributes["http.response.status_code"] == 200
        assert attributes["url.path"]
        if platform != "bedrock":
            assert attributes["anthropic.request.id"].startswith("req_")
    else:
        assert "http.response.status_code" not in attributes
    # Usage is ours alone: the SDK's development-name duplicate never reaches the span.
    assert "gen_ai.usage.cache_write.input_tokens" not in attributes
    assert span.status.status_code is StatusCode.UNSET  # the SDK's OK is not applied
    # Metrics once: the token histogram saw this call's input tokens exactly once.
    assert (
        metric_sum(telemetry, semconv.METRIC_TOKEN_USAGE, **{semconv.TOKEN_TYPE: "input"})
        == (attributes[semconv.USAGE_INPUT_TOKENS])
    )
    return span


def _call_sync(client: Any, platform: str, how: str) -> None:
    model = PLATFORM_MODEL[platform]
    if how == "create":
        client.messages.create(model=model, max_tokens=200, messages=MESSAGES)
    elif how == "stream":
        for _ in client.messages.create(model=model, max_tokens=200, messages=MESSAGES, stream=True):
            pass
    else:
        with client.messages.stream(model=model, max_tokens=200, messages=MESSAGES) as stream:
            stream.until_done()


async def _call_async(client: Any, platform: str, how: str) -> None:
    model = PLATFORM_MODEL[platform]
    if how == "create":
        await client.messages.create(model=model, max_tokens=200, messages=MESSAGES)
    elif how == "stream":
        async for _ in await client.messages.create(model=model, max_tokens=200, messages=MESSAGES, stream=True):
            pass
    else:
        async with client.messages.stream(model=model, max_tokens=200, messages=MESSAGES) as stream:
            await stream.get_final_message()


@pytest.mark.parametrize("how", ["create", "stream", "helper"])
@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("sdk", ["on", "off"])
def test_one_span_sync(sim, traced, telemetry, sdk, platform, how) -> None:
    traced()
    _call_sync(make_client(sim, platform, otel=_otel(sdk, telemetry)), platform, how)
    _one_span(telemetry, sdk, platform)


@pytest.mark.parametrize("how", ["create", "stream", "helper"])
@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("sdk", ["on", "off"])
async def test_one_span_async(sim, traced, telemetry, sdk, platform, how) -> None:
    traced()
    await _call_async(make_client(sim, platform, is_async=True, otel=_otel(sdk, telemetry)), platform, how)
    _one_span(telemetry, sdk, platform)


def test_sdk_alone_makes_its_own_span(sim, telemetry) -> None:
    """The baseline the tests above rely on: uninstrumented, the SDK does export a span per call."""
    make_client(sim, otel=_otel("on", telemetry)).messages.create(model=MODEL, max_tokens=200, messages=MESSAGES)
    assert [s.instrumentation_scope.name for s in telemetry.spans()] == [SDK_SCOPE]


@support.needs_sdk_otel
def test_environment_switch(sim, traced, telemetry, monkeypatch) -> None:
    """Option unset: the SDK follows ``ANTHROPIC_OPEN_TELEMETRY`` (and the global, no-op, provider)."""
    traced()
    make_client(sim, otel=None).messages.create(model=MODEL, max_tokens=200, messages=MESSAGES)
    assert telemetry.span().attributes["http.response.status_code"] == 200
    telemetry.exporter.clear()
    monkeypatch.setenv("ANTHROPIC_OPEN_TELEMETRY", "false")
    make_client(sim, otel=None).messages.create(model=MODEL, max_tokens=200, messages=MESSAGES)
    assert "http.response.status_code" not in telemetry.span().attributes


def test_sdk_ends_first_on_early_close(sim, traced, telemetry) -> None:
    """close(): the SDK's body observer ends its span, then our proxy ends the call."""
    traced()
    stream = make_client(sim, otel=_otel("on", telemetry)).messages.create(
        model=MODEL, max_tokens=200, messages=MESSAGES, stream=True
    )
    next(iter(stream))
    stream.close()
    span = _only(telemetry)
    assert span.attributes[semconv.STREAM_END_REASON] == "closed"
    assert span.attributes[semconv.STREAM_CHUNKS] == 1
    assert span.attributes["http.response.status_code"] == 200


def test_sdk_ends_after_us(sim, traced, telemetry, caplog) -> None:
    """Our call ends first; the SDK's later end, status and attributes are dropped quietly."""
    traced()
    stream = make_client(sim, otel=_otel("on", telemetry)).messages.create(
        model=MODEL, max_tokens=200, messages=MESSAGES, stream=True
    )
    next(iter(stream))
    stream.tokentrace_end("closed")
    assert len(telemetry.spans()) == 1
    with caplog.at_level(logging.WARNING, logger="opentelemetry"):
        stream.close()
    assert "ended span" not in caplog.text
    assert len(telemetry.spans()) == 1


def test_abandoned_stream_gc(sim, traced, telemetry) -> None:
    traced()
    stream = make_client(sim, otel=_otel("on", telemetry)).messages.create(
        model=MODEL, max_tokens=200, messages=MESSAGES, stream=True
    )
    del stream
    gc.collect()
    span = _only(telemetry)
    assert span.attributes[semconv.STREAM_END_REASON] in ("abandoned", "closed")


@pytest.mark.parametrize("sdk", ["on", "off"])
def test_midstream_error(sim, traced, telemetry, sdk) -> None:
    traced()
    client = make_client(sim, otel=_otel(sdk, telemetry))
    with pytest.raises(anthropic.APIStatusError):
        for _ in client.messages.create(model="midstream-error-claude", max_tokens=200, messages=MESSAGES, stream=True):
            pass
    span = _only(telemetry)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "anthropic.APIStatusError"
    assert span.attributes[semconv.STREAM_END_REASON] == "error"


@pytest.mark.parametrize("sdk", ["on", "off"])
def test_http_error(sim, traced, telemetry, sdk) -> None:
    traced()
    with pytest.raises(anthropic.RateLimitError):
        make_client(sim, otel=_otel(sdk, telemetry)).messages.create(
            model="error-429-claude", max_tokens=200, messages=MESSAGES
        )
    span = _only(telemetry)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "anthropic.RateLimitError"
    if sdk == "on":
        assert span.attributes["http.response.status_code"] == 429


async def test_async_cancel_with_sdk_on(sim, traced, telemetry) -> None:
    traced()
    client = make_client(sim, is_async=True, otel=_otel("on", telemetry))

    async def consume() -> None:
        async with client.messages.stream(model="slow-claude", max_tokens=200, messages=MESSAGES) as stream:
            async for _ in stream:
                pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    span = _only(telemetry)
    assert span.attributes[semconv.REQUEST_MODEL] == "slow-claude"


def test_retry_is_one_span(sim, traced, telemetry) -> None:
    traced()
    client = make_client(sim, otel=_otel("on", telemetry), max_retries=2)
    client.messages.create(
        model=MODEL,
        max_tokens=200,
        messages=MESSAGES,
        extra_headers={"x-sim-fault": "error-500", "x-sim-fault-once": "native-retry"},
    )
    span = _only(telemetry)
    assert span.attributes["http.request.resend_count"] == 1
    assert semconv.ERROR_TYPE not in span.attributes


def _only(telemetry: Any) -> Any:
    spans = telemetry.spans()
    assert [s.instrumentation_scope.name for s in spans] == [OUR_SCOPE]
    return spans[0]


def test_inside_an_open_sdk_span_enriches_it(sim, traced, telemetry) -> None:
    """Our wrapper INSIDE an already-open GenAI span of the SDK (as when SDK code calls ``create`` under
    its own span): that span is enriched with our tokens and cost instead of getting a child."""
    traced()
    tracer = telemetry.tracer_provider.get_tracer(SDK_SCOPE)
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic", "gen_ai.request.model": MODEL}
    with tracer.start_as_current_span("anthropic.messages.create", kind=SpanKind.CLIENT, attributes=attributes):
        message = make_client(sim).messages.create(model=MODEL, max_tokens=200, messages=MESSAGES)
    spans = telemetry.spans()
    assert [s.instrumentation_scope.name for s in spans] == [SDK_SCOPE]
    assert spans[0].attributes[semconv.ENRICHED_FOREIGN_SPAN] is True
    assert spans[0].attributes[semconv.USAGE_OUTPUT_TOKENS] == message.usage.output_tokens
    assert spans[0].attributes[semconv.USAGE_COST_AMOUNT] > 0
