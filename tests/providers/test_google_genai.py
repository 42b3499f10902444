"""google-genai: spans, tokens, cost, errors, content and metrics, through the real SDK and its own
HTTP stack against a local server speaking the Gemini / Vertex AI REST wire format."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import genai_prices
import pytest
from google.genai import errors, types
from google.genai.models import AsyncModels, Models
from opentelemetry.trace import StatusCode

from tests.providers.servers.google_genai import (
    BIG_PROMPT_TOKENS,
    GeminiServer,
    client_for,
    observed,
)
from tokentrace.core import semconv
from tokentrace.core.safety import internal_errors
from tokentrace.instrumentation.google_genai import GoogleGenAIInstrumentor

# What the installed SDK's models parse (the suite also runs against the minimum, google-genai 1.0.0,
# whose response models have no response_id, thoughts or tool-use counts, or embedding usage).
HAS_RESPONSE_ID = "response_id" in types.GenerateContentResponse.model_fields
HAS_FULL_USAGE = "tool_use_prompt_token_count" in types.GenerateContentResponseUsageMetadata.model_fields
HAS_EMBED_USAGE = "usage_metadata" in types.EmbedContentResponse.model_fields
CAPTURE = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"}
PROMPT = "Say three short words chunks=3"
WRAPPED = [
    (Models, "generate_content"),
    (Models, "generate_content_stream"),
    (Models, "embed_content"),
    (AsyncModels, "generate_content"),
    (AsyncModels, "generate_content_stream"),
    (AsyncModels, "embed_content"),
    # The SDK's single-request method: only notes each request's usage for the call around it.
    (Models, "_generate_content"),
    (AsyncModels, "_generate_content"),
]


@pytest.fixture(scope="module")
def server() -> Iterator[GeminiServer]:
    with GeminiServer() as s:
        yield s


@pytest.fixture
def instrumented(instrument_with: Any) -> Any:
    return instrument_with(GoogleGenAIInstrumentor)


def _expected_cost(model: str, usage: dict[str, Any]) -> genai_prices.types.PriceCalculation:
    return genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage["input"], cache_read_tokens=usage.get("cache_read"), output_tokens=usage["output"]
        ),
        model_ref=model,
        provider_id="google",
    )


def _usage_of(metadata: types.GenerateContentResponseUsageMetadata) -> dict[str, Any]:
    """The server's reported usage in the conventions' accounting, computed independently."""
    tool_use = getattr(metadata, "tool_use_prompt_token_count", None)  # absent in older SDKs' models
    thoughts = getattr(metadata, "thoughts_token_count", None)
    return {
        "input": metadata.prompt_token_count + (tool_use or 0),
        "output": metadata.candidates_token_count + (thoughts or 0),
        "cache_read": metadata.cached_content_token_count,
        "reasoning": thoughts,
        "total": metadata.total_token_count,
    }


def _check_usage_and_cost(attributes: dict[str, Any], model: str, usage: dict[str, Any]) -> None:
    assert attributes[semconv.USAGE_INPUT_TOKENS] == usage["input"]
    assert attributes[semconv.USAGE_OUTPUT_TOKENS] == usage["output"]
    if HAS_FULL_USAGE:  # an SDK that parses every count: they add up to Gemini's total
        assert usage["input"] + usage["output"] == usage["total"]
    assert attributes.get(semconv.USAGE_CACHE_READ_INPUT_TOKENS) == usage["cache_read"]
    assert attributes.get(semconv.USAGE_REASONING_OUTPUT_TOKENS) == usage["reasoning"]
    assert attributes[semconv.USAGE_SOURCE] == "reported"
    expected = _expected_cost(model, usage)
    assert attributes[semconv.USAGE_COST_AMOUNT] == pytest.approx(float(expected.total_price), abs=1e-9)
    assert attributes[semconv.COST_INPUT] == pytest.approx(float(expected.input_price), abs=1e-9)
    assert attributes[semconv.COST_OUTPUT] == pytest.approx(float(expected.output_price), abs=1e-9)
    assert attributes[semconv.USAGE_COST_CURRENCY] == "USD"
    assert attributes[semconv.COST_PRICING_MODEL] == expected.model.id


# -- generate_content ----------------------------------------------------------------------------------


@pytest.mark.parametrize("vertex", [False, True], ids=["gemini", "vertex"])
@pytest.mark.parametrize("model", ["gemini-2.0-flash", "gemini-2.5-flash"])
def test_generate_content_span(
    server: GeminiServer, telemetry: Any, instrumented: Any, vertex: bool, model: str
) -> None:
    response = client_for(server, vertex=vertex).models.generate_content(model=model, contents=PROMPT)

    span = telemetry.span()
    attributes = dict(span.attributes)
    assert span.name == f"generate_content {model}"
    assert span.status.status_code is StatusCode.UNSET
    assert attributes[semconv.OPERATION_NAME] == "generate_content"
    assert attributes[semconv.PROVIDER_NAME] == ("gcp.vertex_ai" if vertex else "gcp.gemini")
    assert attributes[semconv.REQUEST_MODEL] == model
    assert attributes[semconv.RESPONSE_MODEL] == response.model_version == model
    assert attributes.get(semconv.RESPONSE_ID) == getattr(response, "response_id", None)
    assert attributes[semconv.RESPONSE_FINISH_REASONS] == ("stop",)
    assert attributes[semconv.SERVER_ADDRESS] == "127.0.0.1"
    assert attributes[semconv.SERVER_PORT] == server.port
    assert attributes[semconv.REQUEST_STREAM] is False
    _check_usage_and_cost(attributes, model, _usage_of(response.usage_metadata))
    path = server.requests[-1]["path"]
    assert ("/projects/test-project/locations/us-central1/publishers/google/models/" in path) is vertex


async def test_async_generate_content_span(server: GeminiServer, telemetry: Any, instrumented: Any) -> None:
    response = await client_for(server).aio.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
    attributes = dict(telemetry.span().attributes)
    assert attributes.get(semconv.RESPONSE_ID) == getattr(response, "response_id", None)
    _check_usage_and_cost(attributes, "gemini-2.5-flash", _usage_of(response.usage_metadata))


@pytest.mark.skipif(not HAS_FULL_USAGE, reason="this google-genai drops thoughts/tool-use counts")
def test_thinking_tokens_cache_and_tool_use_prompt(server: GeminiServer, telemetry: Any, instrumented: Any) -> None:
    """Output includes thoughts (also reported as reasoning); input includes the tool-use prompt; the
    cached part of the prompt is cache read. A model genai-prices doesn't know gets a reason, not 0."""
    response = client_for(server).models.generate_content(model="thinking-model", contents="one two three four")
    metadata = response.usage_metadata
    attributes = dict(telemetry.span().attributes)
    assert attributes[semconv.USAGE_INPUT_TOKENS] == metadata.prompt_token_count + metadata.tool_use_prompt_token_count
    assert attributes[semconv.USAGE_OUTPUT_TOKENS] == metadata.candidates_token_count + metadata.thoughts_token_count
    assert attributes[semconv.USAGE_REASONING_OUTPUT_TOKENS] == metadata.thoughts_token_count == 11
    assert attributes[semconv.USAGE_CACHE_READ_INPUT_TOKENS] == metadata.cached_content_token_count == 3
    assert (
        attributes[semconv.USAGE_INPUT_TOKENS] + attributes[semconv.USAGE_OUTPUT_TOKENS] == metadata.total_token_count
    )
    assert attributes[semconv.COST_UNAVAILABLE_REASON] == "model_not_in_catalogue"
    assert semconv.USAGE_COST_AMOUNT not in attributes


def test_long_context_tier_is_priced_by_genai_prices(server: GeminiServer, telemetry: Any, instrumented: Any) -> None:
    """gemini-2.5-pro costs more per token above 200k prompt tokens: the core prices through the library."""
    response = client_for(server).models.generate_content(model="gemini-2.5-pro", contents="[big] summarise")
    assert response.usage_metadata.prompt_token_count == BIG_PROMPT_TOKENS
    attributes = dict(telemetry.span().attributes)
    usage = _usage_of(response.usage_metadata)
    _check_usage_and_cost(attributes, "gemini-2.5-pro", usage)
    base_rate = _expected_cost("gemini-2.5-pro", {"input": 1000, "output": 0}).input_price / 1000
    assert attributes[semconv.COST_INPUT] > float(base_rate) * usage["input"]  # the long-context rate applied


def test_request_attributes_and_model_prefix(server: GeminiServer, telemetry: Any, instrumented: Any) -> None:
    config = types.GenerateContentConfig(
        temperature=0.3,
        top_p=0.9,
        top_k=20,
        max_output_tokens=64,
        stop_sequences=["END"],
        seed=7,
        candidate_count=2,
        presence_penalty=0.1,
        frequency_penalty=0.2,
        response_mime_type="application/json",
    )
    client_for(server).models.generate_content(model="models/gemini-2.0-flash", contents=PROMPT, config=config)
    attributes = dict(telemetry.span().attributes)
    assert attributes[semconv.REQUEST_MODEL] == "gemini-2.0-flash"
    assert attributes[semconv.REQUEST_TEMPERATURE] == 0.3
    assert attributes[semconv.REQUEST_TOP_P] == 0.9
    assert attributes[semconv.REQUEST_TOP_K] == 20.0
    assert attributes[semconv.REQUEST_MAX_TOKENS] == 64
    assert attributes[semconv.REQUEST_STOP_SEQUENCES] == ("END",)
    assert attributes[semconv.REQUEST_SEED] == 7
    assert attributes[semconv.REQUEST_CHOICE_COUNT] == 2
    assert attributes[semconv.REQUEST_PRESENCE_PENALTY] == 0.1
    assert attributes[semconv.REQUEST_FREQUENCY_PENALTY] == 0.2
    assert attributes[semconv.OUTPUT_TYPE] == "json"


def test_dict_config_is_read_too(server: GeminiServer, telemetry: Any, instrumented: Any) -> None:
    client_for(server).models.generate_content(
        model="gemini-2.0-flash", contents=PROMPT, config={"temperature": 0.5, "max_output_tokens": 32}
    )
    attributes = dict(telemetry.span().attributes)
    assert (attributes[semconv.REQUEST_TEMPERATURE], attributes[semconv.REQUEST_MAX_TOKENS]) == (0.5, 32)


def test_no_usage_reported_leaves_tokens_unknown(server: GeminiServer, telemetry: Any, instrumented: Any) -> None:
    """No tokenizer for Gemini models in the core: no usage means unknown tokens, never an estimate."""
    client_for(server).models.generate_content(model="no-usage", contents=PROMPT)
    attributes = dict(telemetry.span().attributes)
    assert semconv.USAGE_INPUT_TOKENS not in attributes
    assert semconv.USAGE_OUTPUT_TOKENS not in attributes
    assert semconv.USAGE_SOURCE not in attributes
    assert attributes[semconv.COST_UNAVAILABLE_REASON] == "usage_unknown"


def test_result_is_unchanged(server: GeminiServer, telemetry: Any, instrument_with: Any) -> None:
    client = client_for(server)
    baseline = observed(client.models.generate_content(model="gemini-2.5-flash", contents=PROMPT))
    instrument_with(GoogleGenAIInstrumentor)
    traced = client_for(server).models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
    assert type(traced) is types.GenerateContentResponse
    assert observed(traced) == baseline


def get_weather(city: str) -> dict[str, Any]:
    """Weather of a city."""
    return {"city": city, "temp": 21}


get_weather.__annotations__ = {"city": str, "return": dict}  # real types, not this module's strings


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_automatic_function_calling_sums_every_request(
    server: GeminiServer, telemetry: Any, instrumented: Any, is_async: bool
) -> None:
    """With a Python function in ``tools`` the SDK sends two requests inside one call; both are billed."""
    sent_before = len(server.usages)
    config = types.GenerateContentConfig(tools=[get_weather])
    client = client_for(server)
    if is_async:
        response = await client.aio.models.generate_content(model="tool-call", contents="Paris?", config=config)
    else:
        response = client.models.generate_content(model="tool-call", contents="Paris?", config=config)
    usages = server.usages[sent_before:]
    assert len(usages) == 2  # the function call, then the answer to the function's result
    assert response.usage_metadata.prompt_token_count == usages[-1]["promptTokenCount"]  # the last one only
    attributes = dict(telemetry.span().attributes)
    assert attributes[semconv.USAGE_INPUT_TOKENS] == sum(u["promptTokenCount"] for u in usages)
    assert attributes[semconv.USAGE_OUTPUT_TOKENS] == sum(u["candidatesTokenCount"] for u in usages)
    assert attributes[semconv.RESPONSE_FINISH_REASONS] == ("stop",)


def test_chat_send_message_is_traced(server: GeminiServer, telemetry: Any, instrumented: Any) -> None:
    chat = client_for(server).chats.create(model="gemini-2.0-flash")
    response = chat.send_message("Hello there")
    span = telemetry.span()
    assert span.name == "generate_content gemini-2.0-flash"
    assert span.attributes[semconv.USAGE_OUTPUT_TOKENS] == response.usage_metadata.candidates_token_count


def test_vertex_embed_content_path(server: GeminiServer, telemetry: Any, instrumented: Any) -> None:
    """Vertex's Gemini embedding models use ``:embedContent`` and report ``usage_metadata``/statistics."""
    result = client_for(server, vertex=True).models.embed_content(model="gemini-embedding-001", contents="a b c")
    assert server.requests[-1]["path"].endswith(":embedContent" if HAS_EMBED_USAGE else ":predict")  # SDK 1.0: predict
    attributes = dict(telemetry.span().attributes)
    assert attributes[semconv.PROVIDER_NAME] == "gcp.vertex_ai"
    reported = getattr(result, "usage_metadata", None)
    expected = reported.prompt_token_count if reported is not None else int(result.embeddings[0].statistics.token_count)
    assert attributes[semconv.USAGE_INPUT_TOKENS] == expected == 3


def test_private_request_method_alone_notes_nothing(server: GeminiServer, telemetry: Any, instrumented: Any) -> None:
    """The usage-noting wrapper on the SDK's private method records nothing outside our own call."""
    client_for(server).models._generate_content(model="gemini-2.0-flash", contents=PROMPT)
    assert telemetry.spans() == []


# -- streams ---------------------------------------------------------------------------------------------


def test_stream_usage_is_the_last_chunks(server: GeminiServer, telemetry: Any, instrumented: Any) -> None:
    chunks = list(client_for(server).models.generate_content_stream(model="gemini-2.5-flash", contents=PROMPT))
    assert len(chunks) == 3
    # Every chunk carries the running usage; the call's usage is the last one, not their sum.
    assert [c.usage_metadata.candidates_token_count for c in chunks] == [2, 4, 6]
    attributes = dict(telemetry.span().attributes)
    assert attributes[semconv.REQUEST_STREAM] is True
    assert attributes[semconv.STREAM_CHUNKS] == 3
    assert attributes[semconv.STREAM_END_REASON] == "completed"
    assert attributes[semconv.RESPONSE_FINISH_REASONS] == ("stop",)
    assert attributes.get(semconv.RESPONSE_ID) == getattr(chunks[0], "response_id", None)
    assert attributes[semconv.RESPONSE_MODEL] == "gemini-2.5-flash"
    assert attributes[semconv.RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    _check_usage_and_cost(attributes, "gemini-2.5-flash", _usage_of(chunks[-1].usage_metadata))


async def test_async_stream_is_an_awaitable_of_an_async_iterator(
    server: GeminiServer, telemetry: Any, instrumented: Any
) -> None:
    stream = await client_for(server, vertex=True).aio.models.generate_content_stream(
        model="gemini-2.0-flash", contents=PROMPT
    )
    assert hasattr(stream, "__anext__") and not hasattr(stream, "close")  # an async generator, as untraced
    chunks = [chunk async for chunk in stream]
    attributes = dict(telemetry.span().attributes)
    assert attributes[semconv.PROVIDER_NAME] == "gcp.vertex_ai"
    assert attributes[semconv.STREAM_CHUNKS] == len(chunks) == 3
    assert attributes[semconv.STREAM_END_REASON] == "completed"
    _check_usage_and_cost(attributes, "gemini-2.0-flash", _usage_of(chunks[-1].usage_metadata))


def test_metrics(server: GeminiServer, telemetry: Any, instrumented: Any) -> None:
    list(client_for(server).models.generate_content_stream(model="gemini-2.0-flash", contents=PROMPT))
    metrics = telemetry.metrics()
    tokens = {p.attributes[semconv.TOKEN_TYPE]: p.sum for p in metrics[semconv.METRIC_TOKEN_USAGE]}
    attributes = dict(telemetry.span().attributes)
    assert tokens == {
        "input": attributes[semconv.USAGE_INPUT_TOKENS],
        "output": attributes[semconv.USAGE_OUTPUT_TOKENS],
    }
    (duration,) = metrics[semconv.METRIC_OPERATION_DURATION]
    assert duration.count == 1
    assert duration.attributes[semconv.PROVIDER_NAME] == "gcp.gemini"
    assert duration.attributes[semconv.OPERATION_NAME] == "generate_content"
    assert metrics[semconv.METRIC_TIME_TO_FIRST_CHUNK][0].count == 1
    assert metrics[semconv.METRIC_COST][0].sum == pytest.approx(attributes[semconv.USAGE_COST_AMOUNT], abs=1e-12)


# -- embeddings ---------------------------------------------------------------------------------------------


@pytest.mark.skipif(not HAS_EMBED_USAGE, reason="this google-genai has no EmbedContentResponse.usage_metadata")
def test_embeddings_gemini_usage_metadata(server: GeminiServer, telemetry: Any, instrumented: Any) -> None:
    result = client_for(server).models.embed_content(model="gemini-embedding-001", contents=["a b c", "d e"])
    span = telemetry.span()
    attributes = dict(span.attributes)
    assert span.name == "embeddings gemini-embedding-001"
    assert attributes[semconv.OPERATION_NAME] == "embeddings"
    assert attributes[semconv.PROVIDER_NAME] == "gcp.gemini"
    assert attributes[semconv.USAGE_INPUT_TOKENS] == result.usage_metadata.prompt_token_count == 5
    assert attributes[semconv.EMBEDDINGS_DIMENSION_COUNT] == len(result.embeddings[0].values)
    assert server.requests[-1]["path"].endswith(":batchEmbedContents")
    expected = _expected_cost("gemini-embedding-001", {"input": 5, "output": 0})
    assert attributes[semconv.USAGE_COST_AMOUNT] == pytest.approx(float(expected.total_price), abs=1e-9)


async def test_embeddings_vertex_statistics(server: GeminiServer, telemetry: Any, instrumented: Any) -> None:
    """Vertex's text embedding models report tokens per embedding (``statistics.token_count``)."""
    result = await client_for(server, vertex=True).aio.models.embed_content(
        model="text-embedding-005", contents=["a b c", "d e"], config={"output_dimensionality": 8}
    )
    attributes = dict(telemetry.span().attributes)
    assert server.requests[-1]["path"].endswith(":predict")
    assert attributes[semconv.PROVIDER_NAME] == "gcp.vertex_ai"
    assert attributes[semconv.USAGE_INPUT_TOKENS] == sum(int(e.statistics.token_count) for e in result.embeddings) == 5
    assert attributes[semconv.EMBEDDINGS_DIMENSION_COUNT] == 8


def test_embeddings_without_usage_stay_unknown(server: GeminiServer, telemetry: Any, instrumented: Any) -> None:
    client_for(server).models.embed_content(model="text-embedding-004", contents="a b c")
    attributes = dict(telemetry.span().attributes)
    assert semconv.USAGE_INPUT_TOKENS not in attributes
    assert attributes[semconv.COST_UNAVAILABLE_REASON] == "usage_unknown"


# -- errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error_class"), [(400, errors.ClientError), (429, errors.ClientError), (500, errors.ServerError)]
)
def test_http_errors(server: GeminiServer, telemetry: Any, instrument_with: Any, code: int, error_class: type) -> None:
    model = f"error-{code}"
    with pytest.raises(error_class) as baseline:
        client_for(server).models.generate_content(model=model, contents=PROMPT)
    instrument_with(GoogleGenAIInstrumentor)
    with pytest.raises(error_class) as traced:
        client_for(server).models.generate_content(model=model, contents=PROMPT)
    assert traced.value.code == baseline.value.code == code
    assert str(traced.value) == str(baseline.value)
    assert traced.value.details == baseline.value.details
    span = telemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    qualified = f"google.genai.errors.{error_class.__name__}"
    assert span.attributes[semconv.ERROR_TYPE] == qualified
    assert semconv.USAGE_INPUT_TOKENS not in span.attributes
    (duration,) = telemetry.metrics()[semconv.METRIC_OPERATION_DURATION]
    assert duration.attributes[semconv.ERROR_TYPE] == qualified


async def test_async_stream_error_on_open(server: GeminiServer, telemetry: Any, instrumented: Any) -> None:
    """The request of a stream is sent on the first ``__anext__``: the 429 surfaces there."""
    stream = await client_for(server).aio.models.generate_content_stream(model="error-429", contents=PROMPT)
    with pytest.raises(errors.ClientError) as raised:
        await stream.__anext__()
    assert raised.value.code == 429
    span = telemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "google.genai.errors.ClientError"
    assert span.attributes[semconv.STREAM_END_REASON] == "error"
    assert span.attributes[semconv.STREAM_CHUNKS] == 0


def test_connection_error(telemetry: Any, instrumented: Any) -> None:
    server = GeminiServer()
    server.server_close()  # a port nobody listens on
    with pytest.raises(Exception) as raised:
        client_for(server).models.generate_content(model="gemini-2.0-flash", contents=PROMPT)
    span = telemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    error = type(raised.value)
    assert span.attributes[semconv.ERROR_TYPE].endswith(error.__qualname__)


# -- content capture ------------------------------------------------------------------------------------


def _tool_config() -> types.GenerateContentConfig:
    return types.GenerateContentConfig(
        system_instruction="You are terse.",
        tools=[
            types.Tool(
                function_declarations=[
                    types.FunctionDeclaration(
                        name="get_weather",
                        description="Weather of a city",
                        parameters=types.Schema(type="OBJECT", properties={"city": types.Schema(type="STRING")}),
                    )
                ]
            )
        ],
    )


def test_content_is_off_by_default(server: GeminiServer, telemetry: Any, instrumented: Any) -> None:
    client_for(server).models.generate_content(model="gemini-2.0-flash", contents=PROMPT, config=_tool_config())
    attributes = telemetry.span().attributes
    for name in (
        semconv.INPUT_MESSAGES,
        semconv.OUTPUT_MESSAGES,
        semconv.SYSTEM_INSTRUCTIONS,
        semconv.TOOL_DEFINITIONS,
    ):
        assert name not in attributes


def test_content_capture(server: GeminiServer, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(GoogleGenAIInstrumentor, **CAPTURE)
    contents = [
        types.Content(role="user", parts=[types.Part.from_text(text="Weather in Paris?")]),
        types.Content(role="model", parts=[types.Part.from_function_call(name="get_weather", args={"city": "Paris"})]),
        types.Content(
            role="user", parts=[types.Part.from_function_response(name="get_weather", response={"temp": 21})]
        ),
        types.Part.from_bytes(data=b"\x89PNG", mime_type="image/png"),
        "and this too",
    ]
    client_for(server).models.generate_content(model="tool-call", contents=contents, config=_tool_config())
    attributes = telemetry.span().attributes
    assert json.loads(attributes[semconv.SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "You are terse."}]
    assert json.loads(attributes[semconv.INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": None, "name": "get_weather", "arguments": {"city": "Paris"}}],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": None, "name": "get_weather", "response": {"temp": 21}}],
        },
        {
            "role": "user",
            "parts": [
                {"type": "blob", "mime_type": "image/png", "modality": "image", "content": "iVBORw=="},
                {"type": "text", "content": "and this too"},
            ],
        },
    ]
    tools = json.loads(attributes[semconv.TOOL_DEFINITIONS])
    assert tools == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}},
        }
    ]
    assert json.loads(attributes[semconv.OUTPUT_MESSAGES]) == [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": None, "name": "get_weather", "arguments": {"city": "Paris"}}],
            "finish_reason": "tool_call",
        }
    ]


async def test_stream_content_capture_merges_fragments(
    server: GeminiServer, telemetry: Any, instrument_with: Any
) -> None:
    instrument_with(GoogleGenAIInstrumentor, **CAPTURE)
    stream = await client_for(server).aio.models.generate_content_stream(model="gemini-2.0-flash", contents=PROMPT)
    text = "".join([chunk.text async for chunk in stream])
    attributes = telemetry.span().attributes
    assert json.loads(attributes[semconv.INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": PROMPT}]}
    ]
    assert json.loads(attributes[semconv.OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": "stop"}
    ]


# -- the instrumentor ------------------------------------------------------------------------------------


def test_instrumentation_dependencies() -> None:
    assert list(GoogleGenAIInstrumentor().instrumentation_dependencies()) == ["google-genai >= 1.0.0"]


def test_uninstrument_restores_the_original_methods(server: GeminiServer, telemetry: Any) -> None:
    originals = {(cls, name): vars(cls)[name] for cls, name in WRAPPED}
    instrumentor = GoogleGenAIInstrumentor()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        assert all(vars(cls)[name] is not originals[(cls, name)] for cls, name in WRAPPED)
        assert len(instrumentor._patched) == len(WRAPPED)
    finally:
        instrumentor.uninstrument()
    assert all(vars(cls)[name] is originals[(cls, name)] for cls, name in WRAPPED)
    client_for(server).models.generate_content(model="gemini-2.0-flash", contents=PROMPT)
    assert telemetry.spans() == []


def test_no_internal_errors_on_the_happy_path(server: GeminiServer, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(GoogleGenAIInstrumentor, **CAPTURE)
    before = sum(internal_errors.values())
    client = client_for(server)
    client.models.generate_content(model="gemini-2.5-flash", contents=PROMPT, config=_tool_config())
    list(client.models.generate_content_stream(model="gemini-2.5-flash", contents=PROMPT))
    client.models.embed_content(model="gemini-embedding-001", contents="a b")
    assert len(telemetry.spans()) == 3
    assert sum(internal_errors.values()) == before, dict(internal_errors)
