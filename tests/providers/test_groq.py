"""Groq spans, tokens, cost, errors and content from the real ``groq`` SDK against a local server
speaking Groq's wire format (``tests/providers/servers/groq.py``)."""

from __future__ import annotations

from typing import Any

import groq
import pytest
from groq.resources import embeddings as groq_embeddings
from groq.resources.chat import completions as groq_completions
from opentelemetry.trace import StatusCode

from tests.providers import chat_compat_cases as cases
from tests.providers.chat_compat_cases import CAPTURE, MESSAGES, MODES, TOOLS, assert_cost, captured
from tests.providers.chat_compat_contract import server_fixture
from tests.providers.groq_setup import CHAT_MODEL, EMBEDDING_MODEL, INPUTS
from tests.providers.servers import chat_compatible
from tests.providers.servers import groq as groq_server
from tokentrace.core import semconv
from tokentrace.instrumentation.groq import GroqInstrumentor

server = server_fixture(groq_server.server)


@pytest.fixture
def clients(server: Any) -> Any:
    return {
        "sync": groq.Groq(api_key="test-key", base_url=server.root_url, max_retries=0),
        "async": groq.AsyncGroq(api_key="test-key", base_url=server.root_url, max_retries=0),
    }


async def create(mode: str, clients: Any, **kwargs: Any) -> Any:
    if mode == "sync":
        return clients["sync"].chat.completions.create(**kwargs)
    return await clients["async"].chat.completions.create(**kwargs)


async def stream(mode: str, clients: Any, **kwargs: Any) -> list[Any]:
    if mode == "sync":
        with clients["sync"].chat.completions.create(stream=True, **kwargs) as chunks:
            return list(chunks)
    async with await clients["async"].chat.completions.create(stream=True, **kwargs) as chunks:
        return [chunk async for chunk in chunks]


def price(usage: Any, model: str = CHAT_MODEL, cached: int | None = None) -> Any:
    return cases.catalogue_price(usage, model, "groq", cached)


# -- chat -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_chat_span(mode: str, clients: Any, server: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(GroqInstrumentor)
    result = await create(
        mode,
        clients,
        model=CHAT_MODEL,
        messages=MESSAGES,
        temperature=0.3,
        top_p=0.9,
        max_completion_tokens=64,
        seed=7,
        stop="END",
        presence_penalty=0.1,
        frequency_penalty=0.2,
        response_format={"type": "json_object"},
    )
    span = telemetry.span()
    attributes = dict(span.attributes)
    assert span.name == f"chat {CHAT_MODEL}"
    assert span.status.status_code is StatusCode.UNSET
    # Exactly these: in particular no openai.* attributes for Groq's system_fingerprint.
    assert cases.call_attributes(attributes) == {
        semconv.OPERATION_NAME: "chat",
        semconv.PROVIDER_NAME: "groq",
        semconv.REQUEST_MODEL: CHAT_MODEL,
        semconv.SERVER_ADDRESS: "127.0.0.1",
        semconv.SERVER_PORT: server.port,
        semconv.REQUEST_STREAM: False,
        semconv.REQUEST_TEMPERATURE: 0.3,
        semconv.REQUEST_TOP_P: 0.9,
        semconv.REQUEST_MAX_TOKENS: 64,
        semconv.REQUEST_SEED: 7,
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
    assert result.system_fingerprint == "fp_test"
    assert_cost(attributes, price(result.usage), CHAT_MODEL)


@pytest.mark.parametrize("mode", MODES)
async def test_stream_usage_from_x_groq(mode: str, clients: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(GroqInstrumentor)
    chunks = await stream(mode, clients, model=CHAT_MODEL, messages=MESSAGES, max_tokens=32)
    usage = chunks[-1].x_groq.usage
    assert usage is not None and all(chunk.usage is None for chunk in chunks)
    attributes = dict(telemetry.span().attributes)
    assert attributes[semconv.REQUEST_STREAM] is True
    assert attributes[semconv.REQUEST_MAX_TOKENS] == 32
    assert attributes[semconv.RESPONSE_ID] == chunks[0].id
    assert attributes[semconv.RESPONSE_FINISH_REASONS] == ("stop",)
    assert attributes[semconv.USAGE_INPUT_TOKENS] == usage.prompt_tokens
    assert attributes[semconv.USAGE_OUTPUT_TOKENS] == usage.completion_tokens
    assert attributes[semconv.USAGE_SOURCE] == "reported"
    assert attributes[semconv.STREAM_CHUNKS] == len(chunks)
    assert attributes[semconv.STREAM_END_REASON] == "completed"
    assert_cost(attributes, price(usage), CHAT_MODEL)
    metrics = telemetry.metrics()
    tokens = {p.attributes[semconv.TOKEN_TYPE]: p.sum for p in metrics[semconv.METRIC_TOKEN_USAGE]}
    assert tokens == {"input": usage.prompt_tokens, "output": usage.completion_tokens}
    assert metrics[semconv.METRIC_TIME_TO_FIRST_CHUNK][0].count == 1
    assert metrics[semconv.METRIC_COST][0].sum == pytest.approx(
        attributes[semconv.USAGE_COST_AMOUNT], abs=cases.TOLERANCE
    )


@pytest.mark.parametrize("mode", MODES)
async def test_cached_prompt_tokens(mode: str, clients: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(GroqInstrumentor)
    messages = [{"role": "user", "content": "a long shared prefix [cached] and a question"}]
    chunks = await stream(mode, clients, model=CHAT_MODEL, messages=messages)
    usage = chunks[-1].x_groq.usage
    assert usage.prompt_tokens_details.cached_tokens == chat_compatible.CACHED_TOKENS
    attributes = dict(telemetry.span().attributes)
    assert attributes[semconv.USAGE_INPUT_TOKENS] == usage.prompt_tokens  # cached ones included
    assert attributes[semconv.USAGE_CACHE_READ_INPUT_TOKENS] == chat_compatible.CACHED_TOKENS
    assert_cost(attributes, price(usage, cached=chat_compatible.CACHED_TOKENS), CHAT_MODEL)


async def test_unknown_model_has_no_cost(clients: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(GroqInstrumentor)
    clients["sync"].chat.completions.create(model="my-org/private-model", messages=MESSAGES)
    attributes = dict(telemetry.span().attributes)
    assert attributes[semconv.USAGE_INPUT_TOKENS] == chat_compatible.prompt_tokens(MESSAGES)
    assert attributes[semconv.COST_UNAVAILABLE_REASON] == "model_not_in_catalogue"
    assert semconv.USAGE_COST_AMOUNT not in attributes


@pytest.mark.parametrize("mode", MODES)
async def test_embeddings_span(mode: str, clients: Any, server: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(GroqInstrumentor)
    if mode == "sync":
        result = clients["sync"].embeddings.create(model=EMBEDDING_MODEL, input=INPUTS, encoding_format="float")
    else:
        result = await clients["async"].embeddings.create(model=EMBEDDING_MODEL, input=INPUTS, encoding_format="float")
    span = telemetry.span()
    attributes = dict(span.attributes)
    assert span.name == f"embeddings {EMBEDDING_MODEL}"
    assert attributes[semconv.PROVIDER_NAME] == "groq"
    assert attributes[semconv.SERVER_PORT] == server.port
    assert attributes[semconv.REQUEST_ENCODING_FORMATS] == ("float",)
    assert attributes[semconv.EMBEDDINGS_DIMENSION_COUNT] == chat_compatible.DIMENSIONS
    assert attributes[semconv.USAGE_INPUT_TOKENS] == result.usage.prompt_tokens == 5
    # genai-prices lists no Groq embedding model: no cost, and the reason says so.
    assert attributes[semconv.COST_UNAVAILABLE_REASON] == "model_not_in_catalogue"


# -- errors -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, groq.RateLimitError),
        (500, groq.InternalServerError),
        (400, groq.BadRequestError),
        (404, groq.NotFoundError),
    ],
)
async def test_status_errors(
    mode: str, status: int, error: type, clients: Any, telemetry: Any, instrument_with: Any
) -> None:
    instrument_with(GroqInstrumentor)
    with pytest.raises(error) as raised:
        await create(mode, clients, model=f"error-{status}", messages=MESSAGES)
    assert raised.value.status_code == status
    assert raised.value.body == groq_server.error_body(status)
    span = telemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == str(raised.value)[:512]
    attributes = dict(span.attributes)
    assert attributes[semconv.ERROR_TYPE] == f"groq.{error.__name__}"
    assert semconv.USAGE_INPUT_TOKENS not in attributes
    point = telemetry.metrics()[semconv.METRIC_OPERATION_DURATION][0]
    assert point.attributes[semconv.ERROR_TYPE] == f"groq.{error.__name__}"


@pytest.mark.parametrize("mode", MODES)
async def test_connection_error(mode: str, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(GroqInstrumentor)
    with groq_server.server() as closed:
        port = closed.port
    url = f"http://127.0.0.1:{port}"
    clients = {
        "sync": groq.Groq(api_key="k", base_url=url, max_retries=0),
        "async": groq.AsyncGroq(api_key="k", base_url=url, max_retries=0),
    }
    with pytest.raises(groq.APIConnectionError):
        await create(mode, clients, model=CHAT_MODEL, messages=MESSAGES)
    span = telemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "groq.APIConnectionError"


@pytest.mark.parametrize("mode", MODES)
async def test_midstream_error_keeps_what_was_seen(
    mode: str, clients: Any, telemetry: Any, instrument_with: Any
) -> None:
    instrument_with(GroqInstrumentor)
    with pytest.raises(groq.APIError, match="Service Unavailable"):
        await stream(mode, clients, model="midstream-error", messages=MESSAGES)
    span = telemetry.span()
    attributes = dict(span.attributes)
    assert span.status.status_code is StatusCode.ERROR
    assert attributes[semconv.ERROR_TYPE] == "groq.APIError"
    assert attributes[semconv.STREAM_END_REASON] == "error"
    assert attributes[semconv.STREAM_CHUNKS] == 2
    assert attributes[semconv.RESPONSE_ID]


def test_raw_response_records_the_request_side(clients: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(GroqInstrumentor)
    client = groq.Groq(api_key="k", base_url=str(clients["sync"].base_url).removesuffix("/openai/v1/"), max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model=CHAT_MODEL, messages=MESSAGES)
    assert raw.parse().choices[0].message.content == chat_compatible.reply_text(MESSAGES)
    span = telemetry.span()
    assert span.attributes[semconv.REQUEST_MODEL] == CHAT_MODEL
    assert span.status.status_code is StatusCode.UNSET


# -- content ----------------------------------------------------------------------------------------------


async def test_no_content_by_default(clients: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(GroqInstrumentor)
    await stream("sync", clients, model=CHAT_MODEL, messages=MESSAGES, tools=TOOLS)
    keys = set(telemetry.span().attributes)
    assert not {semconv.INPUT_MESSAGES, semconv.OUTPUT_MESSAGES, semconv.TOOL_DEFINITIONS} & keys


@pytest.mark.parametrize("mode", MODES)
async def test_content_capture_with_tools(mode: str, clients: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(GroqInstrumentor, **CAPTURE)
    await create(mode, clients, model=CHAT_MODEL, messages=MESSAGES, tools=TOOLS)
    span = telemetry.span()
    assert captured(span, semconv.INPUT_MESSAGES) == [
        {"role": "system", "parts": [{"type": "text", "content": "You answer briefly."}]},
        {"role": "user", "parts": [{"type": "text", "content": MESSAGES[1]["content"]}]},
    ]
    assert captured(span, semconv.TOOL_DEFINITIONS)[0]["name"] == "lookup_weather"
    expected = [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "call_1", "name": "lookup_weather", "arguments": {"city": "Paris"}}],
            "finish_reason": "tool_calls",
        }
    ]
    assert captured(span, semconv.OUTPUT_MESSAGES) == expected
    telemetry.exporter.clear()
    await stream(mode, clients, model=CHAT_MODEL, messages=MESSAGES, tools=TOOLS)
    assert captured(telemetry.span(), semconv.OUTPUT_MESSAGES) == expected


@pytest.mark.parametrize("mode", MODES)
async def test_content_capture_reasoning(mode: str, clients: Any, telemetry: Any, instrument_with: Any) -> None:
    """Groq's ``reasoning_format="parsed"``: reasoning apart from the answer, streamed or not."""
    instrument_with(GroqInstrumentor, **CAPTURE)
    expected = [
        {
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "content": chat_compatible.REASONING},
                {"type": "text", "content": chat_compatible.reply_text(MESSAGES)},
            ],
            "finish_reason": "stop",
        }
    ]
    result = await create(mode, clients, model=CHAT_MODEL, messages=MESSAGES, reasoning_format="parsed")
    assert result.choices[0].message.reasoning == chat_compatible.REASONING
    assert captured(telemetry.span(), semconv.OUTPUT_MESSAGES) == expected
    telemetry.exporter.clear()
    await stream(mode, clients, model=CHAT_MODEL, messages=MESSAGES, reasoning_format="parsed")
    assert captured(telemetry.span(), semconv.OUTPUT_MESSAGES) == expected


# -- lifecycle --------------------------------------------------------------------------------------------


def test_dependencies_and_uninstrument_restores_methods(telemetry: Any) -> None:
    instrumentor = GroqInstrumentor()
    assert tuple(instrumentor.instrumentation_dependencies()) == ("groq >= 0.9",)
    classes = (
        groq_completions.Completions,
        groq_completions.AsyncCompletions,
        groq_embeddings.Embeddings,
        groq_embeddings.AsyncEmbeddings,
    )
    originals = [vars(cls)["create"] for cls in classes]
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        assert [vars(cls)["create"].__wrapped__ for cls in classes] == originals
    finally:
        instrumentor.uninstrument()
    assert [vars(cls)["create"] for cls in classes] == originals


def test_unsupported_version_is_skipped(telemetry: Any) -> None:
    """The dependency check that ``INSTRUMENTS`` feeds: an unsatisfied requirement wraps nothing."""

    class FutureOnly(GroqInstrumentor):
        INSTRUMENTS = ("groq >= 99",)
        _instance = None  # its own singleton, not the real instrumentor's

    original = vars(groq_completions.Completions)["create"]
    instrumentor = FutureOnly()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider)
    try:
        assert vars(groq_completions.Completions)["create"] is original
        assert not instrumentor.is_instrumented_by_opentelemetry
    finally:
        instrumentor.uninstrument()
