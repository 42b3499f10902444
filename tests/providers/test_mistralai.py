"""Mistral spans, tokens, cost, errors and content from the real ``mistralai`` SDK against a local
server speaking Mistral's wire format (``tests/providers/servers/mistral.py``)."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from genai_prices import Usage as CatalogueUsage
from genai_prices import calc_price
from mistralai.client import Mistral, chat, embeddings
from mistralai.client.errors import HTTPValidationError, SDKError
from opentelemetry.trace import StatusCode

from tests.providers import chat_compat_cases as cases
from tests.providers.chat_compat_cases import CAPTURE, MESSAGES, MODES, TOOLS, assert_cost, captured
from tests.providers.chat_compat_contract import server_fixture
from tests.providers.mistral_setup import CHAT_MODEL, EMBEDDING_MODEL, INPUTS
from tests.providers.servers import chat_compatible, mistral
from tokentrace.core import semconv
from tokentrace.core.tokens import shared_estimator
from tokentrace.instrumentation.mistralai import MistralInstrumentor

server = server_fixture(mistral.server)


@pytest.fixture
def client(server: Any) -> Mistral:
    return Mistral(api_key="test-key", server_url=server.root_url)


async def complete(mode: str, client: Mistral, **kwargs: Any) -> Any:
    if mode == "sync":
        return client.chat.complete(**kwargs)
    return await client.chat.complete_async(**kwargs)


async def stream(mode: str, client: Mistral, **kwargs: Any) -> list[Any]:
    if mode == "sync":
        with client.chat.stream(**kwargs) as events:
            return list(events)
    async with await client.chat.stream_async(**kwargs) as events:
        return [event async for event in events]


async def embed(mode: str, client: Mistral, **kwargs: Any) -> Any:
    if mode == "sync":
        return client.embeddings.create(**kwargs)
    return await client.embeddings.create_async(**kwargs)


def price(usage: Any, model: str = CHAT_MODEL, cached: int | None = None) -> Any:
    return cases.catalogue_price(usage, model, "mistral", cached)


# -- chat -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_chat_span(mode: str, client: Mistral, server: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(MistralInstrumentor)
    result = await complete(
        mode,
        client,
        model=CHAT_MODEL,
        messages=MESSAGES,
        temperature=0.3,
        top_p=0.9,
        max_tokens=64,
        random_seed=7,
        stop=["END"],
        presence_penalty=0.1,
        frequency_penalty=0.2,
        top_k=40,
        n=2,
        response_format={"type": "json_object"},
    )
    span = telemetry.span()
    attributes = dict(span.attributes)
    assert span.name == f"chat {CHAT_MODEL}"
    assert span.kind.name == "CLIENT"
    assert span.status.status_code is StatusCode.UNSET
    assert cases.call_attributes(attributes) == {
        semconv.OPERATION_NAME: "chat",
        semconv.PROVIDER_NAME: "mistral_ai",
        semconv.REQUEST_MODEL: CHAT_MODEL,
        semconv.SERVER_ADDRESS: "127.0.0.1",
        semconv.SERVER_PORT: server.port,
        semconv.REQUEST_STREAM: False,
        semconv.REQUEST_TEMPERATURE: 0.3,
        semconv.REQUEST_TOP_P: 0.9,
        semconv.REQUEST_MAX_TOKENS: 64,
        semconv.REQUEST_SEED: 7,
        semconv.REQUEST_TOP_K: 40,
        semconv.REQUEST_CHOICE_COUNT: 2,
        semconv.REQUEST_STOP_SEQUENCES: ("END",),
        semconv.REQUEST_PRESENCE_PENALTY: 0.1,
        semconv.REQUEST_FREQUENCY_PENALTY: 0.2,
        semconv.OUTPUT_TYPE: "json",
        semconv.RESPONSE_ID: result.id,
        semconv.RESPONSE_MODEL: CHAT_MODEL,
        semconv.RESPONSE_FINISH_REASONS: ("stop",),
        semconv.USAGE_INPUT_TOKENS: chat_compatible.prompt_tokens(MESSAGES),
        semconv.USAGE_OUTPUT_TOKENS: len(chat_compatible.reply_words(MESSAGES)),
        semconv.USAGE_SOURCE: "reported",
    }
    assert result.usage.prompt_tokens == chat_compatible.prompt_tokens(MESSAGES)
    assert_cost(attributes, price(result.usage), CHAT_MODEL)
    # Nothing of the conversation is recorded unless content capture is on.
    assert not {semconv.INPUT_MESSAGES, semconv.OUTPUT_MESSAGES, semconv.TOOL_DEFINITIONS} & set(attributes)


@pytest.mark.parametrize("mode", MODES)
async def test_stream_tokens_cost_and_timing(mode: str, client: Mistral, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(MistralInstrumentor)
    events = await stream(mode, client, model=CHAT_MODEL, messages=MESSAGES, max_tokens=32)
    usage = events[-1].data.usage
    assert usage is not None and all(event.data.usage is None for event in events[:-1])
    attributes = dict(telemetry.span().attributes)
    assert attributes[semconv.REQUEST_STREAM] is True
    assert attributes[semconv.REQUEST_MAX_TOKENS] == 32
    assert attributes[semconv.RESPONSE_ID] == events[0].data.id
    assert attributes[semconv.RESPONSE_MODEL] == CHAT_MODEL
    assert attributes[semconv.RESPONSE_FINISH_REASONS] == ("stop",)
    assert attributes[semconv.USAGE_INPUT_TOKENS] == usage.prompt_tokens
    assert attributes[semconv.USAGE_OUTPUT_TOKENS] == usage.completion_tokens
    assert attributes[semconv.USAGE_SOURCE] == "reported"
    assert attributes[semconv.STREAM_CHUNKS] == len(events)
    assert attributes[semconv.STREAM_END_REASON] == "completed"
    assert attributes[semconv.RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert_cost(attributes, price(usage), CHAT_MODEL)
    metrics = telemetry.metrics()
    tokens = {p.attributes[semconv.TOKEN_TYPE]: p.sum for p in metrics[semconv.METRIC_TOKEN_USAGE]}
    assert tokens == {"input": usage.prompt_tokens, "output": usage.completion_tokens}
    assert metrics[semconv.METRIC_OPERATION_DURATION][0].count == 1
    assert metrics[semconv.METRIC_TIME_TO_FIRST_CHUNK][0].count == 1
    assert metrics[semconv.METRIC_COST][0].sum == pytest.approx(
        attributes[semconv.USAGE_COST_AMOUNT], abs=cases.TOLERANCE
    )
    point = metrics[semconv.METRIC_OPERATION_DURATION][0]
    assert point.attributes[semconv.PROVIDER_NAME] == "mistral_ai"
    assert point.attributes[semconv.RESPONSE_MODEL] == CHAT_MODEL


@pytest.mark.parametrize("mode", MODES)
async def test_cached_prompt_tokens(mode: str, client: Mistral, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(MistralInstrumentor)
    messages = [{"role": "user", "content": "a long shared prefix [cached] and a question"}]
    result = await complete(mode, client, model=CHAT_MODEL, messages=messages)
    attributes = dict(telemetry.span().attributes)
    assert attributes[semconv.USAGE_INPUT_TOKENS] == result.usage.prompt_tokens  # cached ones included
    assert attributes[semconv.USAGE_CACHE_READ_INPUT_TOKENS] == chat_compatible.CACHED_TOKENS
    assert_cost(attributes, price(result.usage, cached=chat_compatible.CACHED_TOKENS), CHAT_MODEL)


async def test_unknown_model_has_no_cost(client: Mistral, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(MistralInstrumentor)
    client.chat.complete(model="my-fine-tune-v3", messages=MESSAGES)
    attributes = dict(telemetry.span().attributes)
    assert attributes[semconv.USAGE_INPUT_TOKENS] == chat_compatible.prompt_tokens(MESSAGES)
    assert attributes[semconv.COST_UNAVAILABLE_REASON] == "model_not_in_catalogue"
    assert semconv.USAGE_COST_AMOUNT not in attributes


async def test_stream_without_usage_is_estimated(client: Mistral, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(MistralInstrumentor)
    messages = [{"role": "user", "content": "count these yourself [no-usage] please"}]
    events = await stream("sync", client, model=CHAT_MODEL, messages=messages)
    texts = [e.data.choices[0].delta.content for e in events if e.data.choices[0].delta.content]
    attributes = dict(telemetry.span().attributes)
    assert attributes[semconv.USAGE_SOURCE] == "estimated"
    assert attributes[semconv.USAGE_OUTPUT_TOKENS] == shared_estimator.count_text(CHAT_MODEL, texts) > 0
    assert attributes[semconv.USAGE_INPUT_TOKENS] == shared_estimator.count_messages(
        CHAT_MODEL, [messages[0]["content"]]
    )


# -- embeddings -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_embeddings_span(mode: str, client: Mistral, server: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(MistralInstrumentor)
    result = await embed(mode, client, model=EMBEDDING_MODEL, inputs=INPUTS, encoding_format="float")
    span = telemetry.span()
    attributes = dict(span.attributes)
    assert span.name == f"embeddings {EMBEDDING_MODEL}"
    assert attributes[semconv.OPERATION_NAME] == "embeddings"
    assert attributes[semconv.PROVIDER_NAME] == "mistral_ai"
    assert attributes[semconv.SERVER_PORT] == server.port
    assert attributes[semconv.REQUEST_ENCODING_FORMATS] == ("float",)
    assert attributes[semconv.EMBEDDINGS_DIMENSION_COUNT] == chat_compatible.DIMENSIONS
    assert attributes[semconv.RESPONSE_ID] == result.id
    assert attributes[semconv.USAGE_INPUT_TOKENS] == result.usage.prompt_tokens == 5
    assert semconv.USAGE_OUTPUT_TOKENS not in attributes
    expected = calc_price(CatalogueUsage(input_tokens=5), EMBEDDING_MODEL, provider_id="mistral")
    assert_cost(attributes, expected, EMBEDDING_MODEL)


# -- errors -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("status", "error", "error_type"),
    [
        (429, SDKError, "mistralai.client.errors.sdkerror.SDKError"),
        (500, SDKError, "mistralai.client.errors.sdkerror.SDKError"),
        (400, SDKError, "mistralai.client.errors.sdkerror.SDKError"),
        (422, HTTPValidationError, "mistralai.client.errors.httpvalidationerror.HTTPValidationError"),
    ],
)
async def test_status_errors(
    mode: str, status: int, error: type, error_type: str, client: Mistral, telemetry: Any, instrument_with: Any
) -> None:
    instrument_with(MistralInstrumentor)
    with pytest.raises(error) as raised:
        await complete(mode, client, model=f"error-{status}", messages=MESSAGES)
    assert raised.value.raw_response.status_code == status
    span = telemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == str(raised.value)[:512]
    attributes = dict(span.attributes)
    assert attributes[semconv.ERROR_TYPE] == error_type
    assert semconv.USAGE_INPUT_TOKENS not in attributes
    assert attributes[semconv.COST_UNAVAILABLE_REASON] == "usage_unknown"
    point = telemetry.metrics()[semconv.METRIC_OPERATION_DURATION][0]
    assert point.attributes[semconv.ERROR_TYPE] == error_type


@pytest.mark.parametrize("mode", MODES)
async def test_connection_error(mode: str, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(MistralInstrumentor)
    with chat_compatible.ChatServer(mistral.PROFILE) as closed:
        port = closed.port
    client = Mistral(api_key="test-key", server_url=f"http://127.0.0.1:{port}")
    with pytest.raises(httpx2.ConnectError):
        await complete(mode, client, model=CHAT_MODEL, messages=MESSAGES)
    span = telemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "httpx2.ConnectError"
    assert span.attributes[semconv.SERVER_PORT] == port


async def test_per_call_server_url(client: Mistral, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(MistralInstrumentor)
    with mistral.server() as other:
        client.chat.complete(model=CHAT_MODEL, messages=MESSAGES, server_url=other.root_url)
        assert [path for path, _ in other.requests] == ["/v1/chat/completions"]
    assert telemetry.span().attributes[semconv.SERVER_PORT] == other.port


# -- content ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_content_capture_chat_with_tools(
    mode: str, client: Mistral, telemetry: Any, instrument_with: Any
) -> None:
    instrument_with(MistralInstrumentor, **CAPTURE)
    result = await complete(mode, client, model=CHAT_MODEL, messages=MESSAGES, tools=TOOLS)
    assert result.choices[0].finish_reason == "tool_calls"
    span = telemetry.span()
    assert captured(span, semconv.INPUT_MESSAGES) == [
        {"role": "system", "parts": [{"type": "text", "content": "You answer briefly."}]},
        {"role": "user", "parts": [{"type": "text", "content": MESSAGES[1]["content"]}]},
    ]
    assert captured(span, semconv.TOOL_DEFINITIONS) == [
        {
            "type": "function",
            "name": "lookup_weather",
            "description": "Weather for a city",
            "parameters": TOOLS[0]["function"]["parameters"],
        }
    ]
    assert captured(span, semconv.OUTPUT_MESSAGES) == [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "call_1", "name": "lookup_weather", "arguments": {"city": "Paris"}}],
            "finish_reason": "tool_calls",
        }
    ]


@pytest.mark.parametrize("mode", MODES)
async def test_content_capture_stream(mode: str, client: Mistral, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(MistralInstrumentor, **CAPTURE)
    await stream(mode, client, model=CHAT_MODEL, messages=MESSAGES)
    span = telemetry.span()
    assert captured(span, semconv.OUTPUT_MESSAGES) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": chat_compatible.reply_text(MESSAGES)}],
            "finish_reason": "stop",
        }
    ]
    assert len(captured(span, semconv.INPUT_MESSAGES)) == 2


async def test_content_capture_of_sdk_models_and_tool_results(
    client: Mistral, telemetry: Any, instrument_with: Any
) -> None:
    """Messages as the SDK's own pydantic models, a tool result, and list content parts."""
    from mistralai.client import models

    instrument_with(MistralInstrumentor, **CAPTURE)
    messages = [
        models.UserMessage(content=[models.TextChunk(text="Weather in Paris?")]),
        models.AssistantMessage(
            content="",
            tool_calls=[
                models.ToolCall(
                    id="call_9", function=models.FunctionCall(name="lookup_weather", arguments={"city": "P"})
                )
            ],
        ),
        models.ToolMessage(content="sunny", tool_call_id="call_9"),
    ]
    client.chat.complete(model=CHAT_MODEL, messages=messages)
    assert captured(telemetry.span(), semconv.INPUT_MESSAGES) == [
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": ""},
                {"type": "tool_call", "id": "call_9", "name": "lookup_weather", "arguments": {"city": "P"}},
            ],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_9", "response": "sunny"}]},
    ]


# -- lifecycle --------------------------------------------------------------------------------------------


def test_dependencies_and_uninstrument_restores_methods(telemetry: Any) -> None:
    instrumentor = MistralInstrumentor()
    assert tuple(instrumentor.instrumentation_dependencies()) == ("mistralai >= 1.0",)
    originals = {
        name: vars(cls)[name]
        for cls, names in (
            (chat.Chat, ("complete", "complete_async", "stream", "stream_async")),
            (embeddings.Embeddings, ("create", "create_async")),
        )
        for name in names
    }
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        assert all(
            getattr(vars(chat.Chat).get(n), "__wrapped__", None) is f
            for n, f in originals.items()
            if n in vars(chat.Chat)
        )
        assert len(instrumentor._patched) == 6
    finally:
        instrumentor.uninstrument()
    restored = {
        **{n: vars(chat.Chat)[n] for n in ("complete", "complete_async", "stream", "stream_async")},
        **{n: vars(embeddings.Embeddings)[n] for n in ("create", "create_async")},
    }
    assert restored == originals


@pytest.mark.parametrize("mode", MODES)
async def test_content_capture_stream_tool_call(
    mode: str, client: Mistral, telemetry: Any, instrument_with: Any
) -> None:
    instrument_with(MistralInstrumentor, **CAPTURE)
    events = await stream(mode, client, model=CHAT_MODEL, messages=MESSAGES, tools=TOOLS)
    assert events[-1].data.choices[0].finish_reason == "tool_calls"
    span = telemetry.span()
    assert captured(span, semconv.OUTPUT_MESSAGES) == [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "call_1", "name": "lookup_weather", "arguments": {"city": "Paris"}}],
            "finish_reason": "tool_calls",
        }
    ]
    assert span.attributes[semconv.RESPONSE_FINISH_REASONS] == ("tool_calls",)


def test_unsupported_version_is_skipped(telemetry: Any) -> None:
    """The dependency check that ``INSTRUMENTS`` feeds: an unsatisfied requirement wraps nothing."""

    class FutureOnly(MistralInstrumentor):
        INSTRUMENTS = ("mistralai >= 99",)
        _instance = None  # its own singleton, not the real instrumentor's

    original = vars(chat.Chat)["complete"]
    instrumentor = FutureOnly()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider)
    try:
        assert vars(chat.Chat)["complete"] is original
        assert not instrumentor.is_instrumented_by_opentelemetry
    finally:
        instrumentor.uninstrument()
