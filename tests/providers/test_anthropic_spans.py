"""Anthropic spans, tokens, cost and metrics, through the real SDK against the simulator.

Tokens must equal what the server reported, in the conventions' accounting (input includes cache
reads and writes); cost must equal ``genai_prices.calc_price`` for the same usage.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from tests.providers import test_anthropic_support as support
from tests.providers.test_anthropic_support import (
    MESSAGES,
    MODEL,
    PLATFORM_MODEL,
    PLATFORM_PROVIDER,
    PLATFORMS,
    WEATHER_TOOL,
    assert_usage,
    expected_cost,
    llm_spans,
    make_client,
    metric_count,
    metric_sum,
)
from tokentrace.core import semconv
from tokentrace.instrumentation.anthropic import AnthropicInstrumentor

sim = support.sim
traced = support.traced

CAPTURE = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"}


def _check_common(span: Any, platform: str, sim: Any, *, stream: bool, model: str | None = None) -> None:
    model = model or PLATFORM_MODEL[platform]
    assert span.name == f"chat {model}"
    assert span.kind is SpanKind.CLIENT
    assert span.instrumentation_scope.name == "tokentrace.instrumentation.anthropic"
    attributes = span.attributes
    assert attributes[semconv.OPERATION_NAME] == "chat"
    assert attributes[semconv.PROVIDER_NAME] == PLATFORM_PROVIDER[platform]
    assert attributes[semconv.REQUEST_MODEL] == model
    assert attributes[semconv.RESPONSE_MODEL] == model
    assert attributes[semconv.SERVER_ADDRESS] == "127.0.0.1"
    assert attributes[semconv.SERVER_PORT] == sim.port
    assert attributes[semconv.REQUEST_STREAM] is stream
    assert attributes[semconv.REQUEST_MAX_TOKENS] == 200
    assert attributes[semconv.RESPONSE_ID].startswith("msg_sim")
    assert span.status.status_code is StatusCode.UNSET


def _check_cost(span: Any, platform: str, usage: Any) -> None:
    expected = expected_cost(PLATFORM_PROVIDER[platform], PLATFORM_MODEL[platform], usage)
    assert span.attributes[semconv.USAGE_COST_AMOUNT] == pytest.approx(expected, abs=1e-9)
    assert span.attributes[semconv.USAGE_COST_CURRENCY] == "USD"
    assert expected > 0


@pytest.mark.parametrize("platform", PLATFORMS)
def test_create(sim, traced, telemetry, platform) -> None:
    traced()
    client = make_client(sim, platform)
    message = client.messages.create(
        model=PLATFORM_MODEL[platform], max_tokens=200, stop_sequences=["STOP"], messages=MESSAGES
    )
    span = telemetry.span()
    _check_common(span, platform, sim, stream=False)
    assert span.attributes[semconv.REQUEST_STOP_SEQUENCES] == ("STOP",)
    assert span.attributes[semconv.RESPONSE_ID] == message.id
    assert span.attributes[semconv.RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert_usage(span, message.usage)
    _check_cost(span, platform, message.usage)
    assert metric_sum(telemetry, semconv.METRIC_TOKEN_USAGE, **{semconv.TOKEN_TYPE: "input"}) == (
        message.usage.input_tokens
    )
    assert metric_sum(telemetry, semconv.METRIC_TOKEN_USAGE, **{semconv.TOKEN_TYPE: "output"}) == (
        message.usage.output_tokens
    )
    assert metric_count(telemetry, semconv.METRIC_OPERATION_DURATION) == 1
    assert metric_sum(telemetry, semconv.METRIC_COST) == pytest.approx(span.attributes[semconv.USAGE_COST_AMOUNT])


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_async_create(sim, traced, telemetry, platform) -> None:
    traced()
    client = make_client(sim, platform, is_async=True)
    message = await client.messages.create(model=PLATFORM_MODEL[platform], max_tokens=200, messages=MESSAGES)
    span = telemetry.span()
    _check_common(span, platform, sim, stream=False)
    assert_usage(span, message.usage)
    _check_cost(span, platform, message.usage)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_stream_output_tokens_counted_once(sim, traced, telemetry, platform) -> None:
    """message_start's placeholder output_tokens is not added to message_delta's final count."""
    traced()
    client = make_client(sim, platform)
    events = list(
        client.messages.create(model=PLATFORM_MODEL[platform], max_tokens=200, messages=MESSAGES, stream=True)
    )
    start = next(e for e in events if e.type == "message_start").message.usage
    delta = next(e for e in events if e.type == "message_delta").usage
    assert start.output_tokens == 1 and delta.output_tokens > 1
    span = telemetry.span()
    _check_common(span, platform, sim, stream=True)
    assert span.attributes[semconv.USAGE_OUTPUT_TOKENS] == delta.output_tokens
    assert span.attributes[semconv.USAGE_INPUT_TOKENS] == start.input_tokens
    assert span.attributes[semconv.STREAM_CHUNKS] == len(events)
    assert span.attributes[semconv.STREAM_END_REASON] == "completed"
    assert span.attributes[semconv.RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert metric_sum(telemetry, semconv.METRIC_TOKEN_USAGE, **{semconv.TOKEN_TYPE: "output"}) == delta.output_tokens
    assert metric_count(telemetry, semconv.METRIC_TIME_TO_FIRST_CHUNK) == 1


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_async_stream_helper(sim, traced, telemetry, platform) -> None:
    traced()
    client = make_client(sim, platform, is_async=True)
    async with client.messages.stream(model=PLATFORM_MODEL[platform], max_tokens=200, messages=MESSAGES) as stream:
        text = "".join([t async for t in stream.text_stream])
        message = await stream.get_final_message()
    assert text.startswith("Echo:")
    span = telemetry.span()
    _check_common(span, platform, sim, stream=True)
    assert_usage(span, message.usage)
    _check_cost(span, platform, message.usage)


def test_prompt_cache_write_then_read(sim, traced, telemetry) -> None:
    traced()
    client = make_client(sim)
    system = [
        {"type": "text", "text": "You answer questions about caching. " * 8, "cache_control": {"type": "ephemeral"}}
    ]
    prompt = [{"role": "user", "content": "A question only this test asks about caches"}]
    first = client.messages.create(model=MODEL, max_tokens=200, system=system, messages=prompt)
    second = client.messages.create(model=MODEL, max_tokens=200, system=system, messages=prompt)
    assert first.usage.cache_creation_input_tokens > 0 and first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens > 0 and second.usage.cache_creation_input_tokens == 0
    spans = telemetry.spans()
    assert len(spans) == 2
    for span, message in zip(spans, (first, second), strict=True):
        assert_usage(span, message.usage)
        _check_cost(span, "anthropic", message.usage)
    # Same tokens in total, but cache writes cost more than reads.
    assert spans[0].attributes[semconv.USAGE_INPUT_TOKENS] == spans[1].attributes[semconv.USAGE_INPUT_TOKENS]
    assert spans[0].attributes[semconv.USAGE_COST_AMOUNT] > spans[1].attributes[semconv.USAGE_COST_AMOUNT]


def test_cache_write_name_follows_opt_in(sim, traced, telemetry) -> None:
    traced(OTEL_SEMCONV_STABILITY_OPT_IN="gen_ai_latest_experimental")
    system = [{"type": "text", "text": "Opt-in system prompt for caching.", "cache_control": {"type": "ephemeral"}}]
    message = make_client(sim).messages.create(
        model=MODEL, max_tokens=200, system=system, messages=[{"role": "user", "content": "opt-in question"}]
    )
    span = telemetry.span()
    assert span.attributes["gen_ai.usage.cache_write.input_tokens"] == message.usage.cache_creation_input_tokens > 0
    assert "gen_ai.usage.cache_creation.input_tokens" not in span.attributes


@pytest.mark.parametrize("stream", [False, True])
def test_tool_use_and_capture(sim, traced, telemetry, stream) -> None:
    traced(**CAPTURE)
    client = make_client(sim)
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 200,
        "system": "You call tools.",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [WEATHER_TOOL],
    }
    if stream:
        with client.messages.stream(**kwargs) as helper:
            message = helper.get_final_message()
    else:
        message = client.messages.create(**kwargs)
    tool_use = message.content[-1]
    assert tool_use.type == "tool_use"
    span = telemetry.span()
    assert span.attributes[semconv.RESPONSE_FINISH_REASONS] == ("tool_use",)
    assert_usage(span, message.usage)
    output = json.loads(span.attributes[semconv.OUTPUT_MESSAGES])
    assert output == [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": tool_use.id, "name": "get_weather", "arguments": tool_use.input}],
            "finish_reason": "tool_call",
        }
    ]
    assert json.loads(span.attributes[semconv.INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]}
    ]
    assert json.loads(span.attributes[semconv.SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "You call tools."}]
    assert json.loads(span.attributes[semconv.TOOL_DEFINITIONS]) == [
        {
            "type": "function",
            "name": "get_weather",
            "description": WEATHER_TOOL["description"],
            "parameters": WEATHER_TOOL["input_schema"],
        }
    ]


def test_tool_result_turn(sim, traced, telemetry) -> None:
    traced(**CAPTURE)
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
    ]
    message = make_client(sim).messages.create(model=MODEL, max_tokens=200, messages=messages, tools=[WEATHER_TOOL])
    assert message.stop_reason == "end_turn"
    inputs = json.loads(telemetry.span().attributes[semconv.INPUT_MESSAGES])
    assert inputs[1]["parts"] == [
        {"type": "tool_call", "id": "toolu_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    ]
    assert inputs[2]["parts"] == [{"type": "tool_call_response", "id": "toolu_1", "response": "sunny"}]


def test_content_not_captured_by_default(sim, traced, telemetry) -> None:
    traced()
    make_client(sim).messages.create(model=MODEL, max_tokens=200, system="secret system", messages=MESSAGES)
    attributes = telemetry.span().attributes
    for name in (
        semconv.INPUT_MESSAGES,
        semconv.OUTPUT_MESSAGES,
        semconv.SYSTEM_INSTRUCTIONS,
        semconv.TOOL_DEFINITIONS,
    ):
        assert name not in attributes


@support.needs_thinking
@pytest.mark.parametrize("stream", [False, True])
def test_extended_thinking(sim, traced, telemetry, stream) -> None:
    traced(**CAPTURE)
    client = make_client(sim)
    kwargs = {
        "model": MODEL,
        "max_tokens": 200,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": MESSAGES,
    }
    if stream:
        with client.messages.stream(**kwargs) as helper:
            thinking = "".join(e.thinking for e in helper if e.type == "thinking")
            message = helper.get_final_message()
        assert thinking.startswith("Thinking about:")
    else:
        message = client.messages.create(**kwargs)
    assert message.content[0].type == "thinking"
    span = telemetry.span()
    assert_usage(span, message.usage)
    assert span.attributes[semconv.USAGE_REASONING_OUTPUT_TOKENS] == message.usage.output_tokens_details.thinking_tokens
    parts = json.loads(span.attributes[semconv.OUTPUT_MESSAGES])[0]["parts"]
    assert parts[0] == {"type": "reasoning", "content": message.content[0].thinking}
    assert parts[1] == {"type": "text", "content": message.content[1].text}


@pytest.mark.parametrize("stream", [False, True])
def test_beta_messages(sim, traced, telemetry, stream) -> None:
    if stream and not support.SDK_HAS_BETA_STREAM:
        pytest.skip("this anthropic version has no beta stream()")
    traced()
    client = make_client(sim)
    if stream:
        with client.beta.messages.stream(model=MODEL, max_tokens=200, messages=MESSAGES, betas=["x-beta"]) as helper:
            message = helper.get_final_message()
    else:
        message = client.beta.messages.create(model=MODEL, max_tokens=200, messages=MESSAGES, betas=["x-beta"])
    span = telemetry.span()
    _check_common(span, "anthropic", sim, stream=stream)
    assert_usage(span, message.usage)
    _check_cost(span, "anthropic", message.usage)


async def test_async_beta_create(sim, traced, telemetry) -> None:
    traced()
    message = await make_client(sim, is_async=True).beta.messages.create(model=MODEL, max_tokens=200, messages=MESSAGES)
    assert_usage(telemetry.span(), message.usage)


@pytest.mark.parametrize(
    ("model", "error", "error_type"),
    [
        ("error-429-claude", anthropic.RateLimitError, "anthropic.RateLimitError"),
        ("error-500-claude", anthropic.InternalServerError, "anthropic.InternalServerError"),
        ("error-529-claude", anthropic.APIStatusError, None),
        ("error-400-claude", anthropic.BadRequestError, "anthropic.BadRequestError"),
        ("drop-claude", anthropic.APIConnectionError, "anthropic.APIConnectionError"),
    ],
)
@pytest.mark.parametrize("platform", ["anthropic", "bedrock"])
def test_errors(sim, traced, telemetry, model, error, error_type, platform) -> None:
    traced()
    with pytest.raises(error) as raised:
        make_client(sim, platform).messages.create(model=model, max_tokens=200, messages=MESSAGES)
    span = telemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    expected = error_type or f"anthropic.{type(raised.value).__name__}"
    assert span.attributes[semconv.ERROR_TYPE] == expected
    assert semconv.USAGE_INPUT_TOKENS not in span.attributes  # a failed request is not billed: no estimate
    assert span.attributes[semconv.COST_UNAVAILABLE_REASON] == "usage_unknown"
    points = telemetry.metrics()[semconv.METRIC_OPERATION_DURATION]
    assert [p.attributes[semconv.ERROR_TYPE] for p in points] == [expected]


def test_unknown_model_has_reason_not_zero_cost(sim, traced, telemetry) -> None:
    traced()
    make_client(sim).messages.create(model="claude-from-the-future", max_tokens=200, messages=MESSAGES)
    span = telemetry.span()
    assert semconv.USAGE_COST_AMOUNT not in span.attributes
    assert span.attributes[semconv.COST_UNAVAILABLE_REASON] == "model_not_in_catalogue"


@pytest.mark.parametrize(
    ("provider", "model", "pricing_model"),
    [
        (
            "aws.bedrock",
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
            "regional.anthropic.claude-3-5-sonnet-20240620-v1:0",
        ),
        (
            "aws.bedrock",
            "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
            "regional.anthropic.claude-3-5-sonnet-20241022-v2:0",
        ),
        ("gcp.vertex_ai", "claude-sonnet-4@20250514", "claude-4-sonnet"),
        ("gcp.vertex_ai", "claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"),
    ],
)
def test_platform_model_ids_are_priced(sim, traced, telemetry, provider, model, pricing_model) -> None:
    traced()
    platform = "bedrock" if provider == "aws.bedrock" else "vertex"
    message = make_client(sim, platform).messages.create(model=model, max_tokens=200, messages=MESSAGES)
    span = telemetry.span()
    assert span.attributes[semconv.COST_PRICING_MODEL] == pricing_model
    assert span.attributes[semconv.USAGE_COST_AMOUNT] == pytest.approx(
        expected_cost(provider, model, message.usage), abs=1e-9
    )


def test_with_raw_response(sim, traced, telemetry) -> None:
    traced()
    raw = make_client(sim).messages.with_raw_response.create(model=MODEL, max_tokens=200, messages=MESSAGES)
    message = raw.parse()
    assert raw.headers["request-id"].startswith("req_")
    assert_usage(telemetry.span(), message.usage)


@pytest.mark.skipif(not support.SDK_HAS_COUNT_TOKENS, reason="no count_tokens in this anthropic version")
def test_count_tokens_not_traced(sim, traced, telemetry) -> None:
    traced()
    count = make_client(sim).messages.count_tokens(model=MODEL, messages=MESSAGES)
    assert count.input_tokens > 0
    assert llm_spans(telemetry) == []


def test_dependencies_and_uninstrument_restores() -> None:
    from anthropic.resources.beta.messages import Messages as BetaMessages
    from anthropic.resources.messages import AsyncMessages, Messages

    originals = [
        vars(Messages)["create"],
        vars(AsyncMessages)["create"],
        vars(Messages)["stream"],
        vars(BetaMessages)["create"],
    ]
    import anthropic._base_client as base_client

    native = getattr(base_client, "start_api_call_span", None)
    instrumentor = AnthropicInstrumentor()
    assert list(instrumentor.instrumentation_dependencies()) == ["anthropic >= 0.40"]
    instrumentor.instrument()
    try:
        assert vars(Messages)["create"] is not originals[0]
        assert getattr(base_client, "start_api_call_span", None) is not native or native is None
    finally:
        instrumentor.uninstrument()
    assert [
        vars(Messages)["create"],
        vars(AsyncMessages)["create"],
        vars(Messages)["stream"],
        vars(BetaMessages)["create"],
    ] == originals
    assert getattr(base_client, "start_api_call_span", None) is native


def test_each_method_wrapped_once(traced) -> None:
    """``anthropic.resources.messages`` re-exports the same class: wrapping it twice would nest spans."""
    from anthropic.resources.messages import Messages

    instrumentor = traced()
    patched = [(owner, method) for owner, method in instrumentor._patched if owner is Messages]
    expected = [m for m in ("create", "parse", "stream") if m in vars(Messages) or m in vars(Messages.__mro__[0])]
    assert sorted(method for _, method in patched) == sorted(expected)


@pytest.mark.skipif(not hasattr(anthropic.resources.messages.Messages, "parse"), reason="no parse() in this SDK")
def test_parse_structured_output(sim, traced, telemetry) -> None:
    import pydantic

    class City(pydantic.BaseModel):
        name: str
        population: int

    traced()
    parsed = make_client(sim).messages.parse(model=MODEL, max_tokens=200, messages=MESSAGES, output_format=City)
    assert isinstance(parsed.parsed_output, City)
    span = telemetry.span()
    assert span.attributes[semconv.OUTPUT_TYPE] == "json"
    assert_usage(span, parsed.usage)


def test_with_streaming_response_ends_on_return(sim, traced, telemetry) -> None:
    """An unread body is left to the app: the span ends on return; no reported usage (input estimated)."""
    traced()
    with make_client(sim).messages.with_streaming_response.create(
        model=MODEL, max_tokens=200, messages=MESSAGES
    ) as response:
        body = json.loads(response.read())
    assert body["type"] == "message"
    span = telemetry.span()
    assert span.attributes[semconv.REQUEST_MODEL] == MODEL
    assert span.attributes[semconv.USAGE_SOURCE] == "estimated"
    assert semconv.USAGE_OUTPUT_TOKENS not in span.attributes
