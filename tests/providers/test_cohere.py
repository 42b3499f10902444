"""Cohere v2 (``ClientV2`` / ``AsyncClientV2`` / ``Client.v2``) against a local server speaking Cohere's
wire format: spans, tokens (``usage.tokens``), cost (from ``usage.billed_units``), errors, content."""

from __future__ import annotations

import json
import socket
from typing import Any

import cohere
import pytest
from genai_prices import Usage as CatalogueUsage
from genai_prices import calc_price
from opentelemetry.trace import SpanKind, StatusCode

from tests.providers.servers.cohere import TEMPLATE_TOKENS, CohereServer, client_for
from tokentrace.core import semconv
from tokentrace.instrumentation.cohere import CohereInstrumentor

MODEL = "command-a-03-2025"
EMBED_MODEL = "embed-v4.0"
PROMPT = "Tell me about billed units chunks=3"  # 6 words: billed input 6, processed 66; output 6
MESSAGES = [{"role": "user", "content": PROMPT}]
CAPTURE = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"}


@pytest.fixture(scope="module")
def server() -> Any:
    with CohereServer() as s:
        yield s


# Cohere's Client.__init__ binds ``self.chat`` / ``self.chat_stream`` on the instance (argument checks),
# so a client must be created after instrumenting, as with ``opentelemetry-instrument``: the fixtures
# are factories called after ``instrument_with``.
@pytest.fixture
def make_client(server: CohereServer) -> Any:
    return lambda: client_for(server.base_url)


@pytest.fixture
def make_aclient(server: CohereServer) -> Any:
    return lambda: client_for(server.base_url, asynchronous=True)


def attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def catalogue_cost(model: str, input_tokens: int, output_tokens: int = 0) -> float:
    usage = CatalogueUsage(input_tokens=input_tokens, output_tokens=output_tokens)
    return float(calc_price(usage, model, provider_id="cohere").total_price)


def _check_chat_span(span: Any, server: CohereServer, *, stream: bool) -> dict[str, Any]:
    a = attrs(span)
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert a[semconv.OPERATION_NAME] == "chat"
    assert a[semconv.PROVIDER_NAME] == "cohere"
    assert a[semconv.REQUEST_MODEL] == MODEL
    assert a[semconv.SERVER_ADDRESS] == "127.0.0.1"
    assert a[semconv.SERVER_PORT] == server.server_address[1]
    assert a[semconv.REQUEST_STREAM] is stream
    assert a[semconv.RESPONSE_ID].startswith("resp-")
    assert a[semconv.RESPONSE_FINISH_REASONS] == ("COMPLETE",)
    # Tokens the model processed (usage.tokens), billed units on their own attributes.
    assert a[semconv.USAGE_INPUT_TOKENS] == 6 + TEMPLATE_TOKENS
    assert a[semconv.USAGE_OUTPUT_TOKENS] == 6
    assert a[semconv.USAGE_SOURCE] == "reported"
    assert a[semconv.COHERE_BILLED_INPUT_TOKENS] == 6
    assert a[semconv.COHERE_BILLED_OUTPUT_TOKENS] == 6
    # Cost from the billed units: what Cohere invoices.
    assert a[semconv.USAGE_COST_AMOUNT] == pytest.approx(catalogue_cost(MODEL, 6, 6), abs=1e-9)
    assert a[semconv.USAGE_COST_AMOUNT] > 0
    assert a[semconv.USAGE_COST_CURRENCY] == "USD"
    assert a[semconv.USAGE_COST_SOURCE] == "local"
    assert a[semconv.COST_PRICING_MODEL] == "command-a"
    assert semconv.ERROR_TYPE not in a
    assert semconv.INPUT_MESSAGES not in a and semconv.OUTPUT_MESSAGES not in a  # content off by default
    return a


def test_chat(make_client: Any, server: CohereServer, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(CohereInstrumentor)
    client = make_client()
    response = client.chat(
        model=MODEL,
        messages=MESSAGES,
        temperature=0.3,
        p=0.9,
        k=40,
        max_tokens=100,
        seed=7,
        stop_sequences=["END"],
        frequency_penalty=0.1,
        presence_penalty=0.2,
        response_format={"type": "json_object"},
    )
    assert response.message.content[0].text == "part0 ok part1 ok part2 ok "
    a = _check_chat_span(telemetry.span(), server, stream=False)
    assert a[semconv.RESPONSE_ID] == response.id
    assert a[semconv.REQUEST_TEMPERATURE] == 0.3
    assert a[semconv.REQUEST_TOP_P] == 0.9
    assert a[semconv.REQUEST_TOP_K] == 40.0
    assert a[semconv.REQUEST_MAX_TOKENS] == 100
    assert a[semconv.REQUEST_SEED] == 7
    assert a[semconv.REQUEST_STOP_SEQUENCES] == ("END",)
    assert a[semconv.REQUEST_FREQUENCY_PENALTY] == 0.1
    assert a[semconv.REQUEST_PRESENCE_PENALTY] == 0.2
    assert a[semconv.OUTPUT_TYPE] == "json"

    metrics = telemetry.metrics()
    tokens = {p.attributes[semconv.TOKEN_TYPE]: p.sum for p in metrics[semconv.METRIC_TOKEN_USAGE]}
    assert tokens == {"input": 6 + TEMPLATE_TOKENS, "output": 6}
    assert metrics[semconv.METRIC_OPERATION_DURATION][0].attributes[semconv.PROVIDER_NAME] == "cohere"
    assert metrics[semconv.METRIC_COST][0].sum == pytest.approx(catalogue_cost(MODEL, 6, 6), abs=1e-9)


def test_chat_through_client_v2_property(server: CohereServer, telemetry: Any, instrument_with: Any) -> None:
    """``cohere.Client(...).v2.chat`` is the same V2Client method."""
    instrument_with(CohereInstrumentor)
    cohere.Client(api_key="test", base_url=server.base_url).v2.chat(model=MODEL, messages=MESSAGES)
    _check_chat_span(telemetry.span(), server, stream=False)


async def test_async_chat(make_aclient: Any, server: CohereServer, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(CohereInstrumentor)
    aclient = make_aclient()
    response = await aclient.chat(model=MODEL, messages=MESSAGES)
    a = _check_chat_span(telemetry.span(), server, stream=False)
    assert a[semconv.RESPONSE_ID] == response.id


def test_chat_stream(make_client: Any, server: CohereServer, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(CohereInstrumentor)
    client = make_client()
    events = list(client.chat_stream(model=MODEL, messages=MESSAGES))
    assert [e.type for e in events][:2] == ["message-start", "content-start"]
    a = _check_chat_span(telemetry.span(), server, stream=True)
    assert a[semconv.RESPONSE_ID] == events[0].id
    assert a[semconv.STREAM_CHUNKS] == len(events) == 7
    assert a[semconv.STREAM_END_REASON] == "completed"
    assert a[semconv.RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert events[-1].delta.usage.billed_units.input_tokens == a[semconv.COHERE_BILLED_INPUT_TOKENS]


async def test_async_chat_stream(make_aclient: Any, server: CohereServer, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(CohereInstrumentor)
    aclient = make_aclient()
    events = [e async for e in aclient.chat_stream(model=MODEL, messages=MESSAGES)]
    a = _check_chat_span(telemetry.span(), server, stream=True)
    assert a[semconv.STREAM_CHUNKS] == len(events)
    assert a[semconv.STREAM_END_REASON] == "completed"


@pytest.mark.parametrize(
    ("model", "tokens", "billed", "priced_input"),
    [
        ("tokens-only", 6 + TEMPLATE_TOKENS, None, 6 + TEMPLATE_TOKENS),  # no billed units: price the tokens
        ("billed-only", 6, 6, 6),  # no token counts: the billed units are the only counts
    ],
)
def test_one_usage_block(
    model: str,
    tokens: int,
    billed: int | None,
    priced_input: int,
    make_client: Any,
    telemetry: Any,
    instrument_with: Any,
    tmp_path: Any,
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps({"models": [{"provider": "cohere", "model": model, "input_mtok": 2.0, "output_mtok": 8.0}]})
    )
    instrument_with(CohereInstrumentor, TOKENTRACE_PRICES_FILE=str(prices))
    client = make_client()
    client.chat(model=model, messages=MESSAGES)
    a = attrs(telemetry.span())
    assert a[semconv.USAGE_INPUT_TOKENS] == tokens
    assert a[semconv.USAGE_OUTPUT_TOKENS] == 6
    assert a.get(semconv.COHERE_BILLED_INPUT_TOKENS) == billed
    assert a[semconv.USAGE_COST_SOURCE] == "price_file"
    assert a[semconv.USAGE_COST_AMOUNT] == pytest.approx((priced_input * 2.0 + 6 * 8.0) / 1e6, abs=1e-12)


def test_no_usage_is_estimated(make_client: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(CohereInstrumentor)
    client = make_client()
    client.chat(model="no-usage", messages=MESSAGES)
    a = attrs(telemetry.span())
    assert a[semconv.USAGE_SOURCE] == "estimated"
    assert a[semconv.USAGE_INPUT_TOKENS] > 0 and a[semconv.USAGE_OUTPUT_TOKENS] > 0
    assert semconv.COHERE_BILLED_INPUT_TOKENS not in a
    assert a[semconv.COST_UNAVAILABLE_REASON] == "model_not_in_catalogue"
    assert semconv.USAGE_COST_AMOUNT not in a


def test_unknown_model_has_no_cost(make_client: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(CohereInstrumentor)
    client = make_client()
    client.chat(model="my-finetune-1", messages=MESSAGES)
    a = attrs(telemetry.span())
    assert a[semconv.COST_UNAVAILABLE_REASON] == "model_not_in_catalogue"
    assert semconv.USAGE_COST_AMOUNT not in a


def test_content_capture(make_client: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(CohereInstrumentor, **CAPTURE)
    client = make_client()
    tools = [
        {
            "type": "function",
            "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}},
        }
    ]
    messages = [{"role": "system", "content": "Be brief."}, *MESSAGES]
    client.chat(model=MODEL, messages=messages, tools=tools)
    a = attrs(telemetry.span())
    assert json.loads(a[semconv.INPUT_MESSAGES]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": PROMPT}]},
    ]
    assert json.loads(a[semconv.OUTPUT_MESSAGES]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "part0 ok part1 ok part2 ok "}],
            "finish_reason": "stop",
        }
    ]
    assert json.loads(a[semconv.TOOL_DEFINITIONS]) == [
        {"type": "function", "name": "get_weather", "description": "Weather", "parameters": {"type": "object"}}
    ]


_TOOL_OUTPUT = [
    {
        "role": "assistant",
        "parts": [
            {"type": "reasoning", "content": "I will look up the weather."},
            {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Oslo"}},
        ],
        "finish_reason": "tool_call",
    }
]


def test_tool_call_content(make_client: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(CohereInstrumentor, **CAPTURE)
    client = make_client()
    client.chat(model="tool-call", messages=MESSAGES)
    a = attrs(telemetry.span())
    assert a[semconv.RESPONSE_FINISH_REASONS] == ("TOOL_CALL",)
    assert json.loads(a[semconv.OUTPUT_MESSAGES]) == _TOOL_OUTPUT


def test_stream_content_capture(make_client: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(CohereInstrumentor, **CAPTURE)
    client = make_client()
    list(client.chat_stream(model=MODEL, messages=MESSAGES))
    a = attrs(telemetry.span())
    assert json.loads(a[semconv.OUTPUT_MESSAGES]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "part0 ok part1 ok part2 ok "}],
            "finish_reason": "stop",
        }
    ]
    assert json.loads(a[semconv.INPUT_MESSAGES])[0]["parts"][0]["content"] == PROMPT


def test_stream_tool_call_content(make_client: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(CohereInstrumentor, **CAPTURE)
    client = make_client()
    list(client.chat_stream(model="tool-call", messages=MESSAGES))
    a = attrs(telemetry.span())
    assert a[semconv.RESPONSE_FINISH_REASONS] == ("TOOL_CALL",)
    output = json.loads(a[semconv.OUTPUT_MESSAGES])
    assert output[0]["parts"][1] == _TOOL_OUTPUT[0]["parts"][1]
    assert output[0]["finish_reason"] == "tool_call"


def _check_embed_span(span: Any) -> None:
    a = attrs(span)
    assert span.name == f"embeddings {EMBED_MODEL}"
    assert a[semconv.OPERATION_NAME] == "embeddings"
    assert a[semconv.PROVIDER_NAME] == "cohere"
    assert a[semconv.RESPONSE_ID].startswith("resp-")
    assert a[semconv.USAGE_INPUT_TOKENS] == 5  # billed input tokens: Cohere's embed meta
    assert semconv.USAGE_OUTPUT_TOKENS not in a
    assert a[semconv.COHERE_BILLED_INPUT_TOKENS] == 5
    assert a[semconv.EMBEDDINGS_DIMENSION_COUNT] == 8
    assert a[semconv.REQUEST_ENCODING_FORMATS] == ("float",)
    assert a[semconv.USAGE_COST_AMOUNT] == pytest.approx(catalogue_cost(EMBED_MODEL, 5), abs=1e-9)
    assert a[semconv.USAGE_COST_AMOUNT] > 0


def test_embed(make_client: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(CohereInstrumentor)
    client = make_client()
    client.embed(
        model=EMBED_MODEL, texts=["one two three", "four five"], input_type="search_document", embedding_types=["float"]
    )
    _check_embed_span(telemetry.span())


async def test_async_embed(make_aclient: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(CohereInstrumentor)
    aclient = make_aclient()
    await aclient.embed(
        model=EMBED_MODEL, texts=["one two three", "four five"], input_type="search_document", embedding_types=["float"]
    )
    _check_embed_span(telemetry.span())


# -- errors -------------------------------------------------------------------------------------------

ERRORS = [
    ("error-429", cohere.TooManyRequestsError, "cohere.errors.too_many_requests_error.TooManyRequestsError"),
    ("error-400", cohere.BadRequestError, "cohere.errors.bad_request_error.BadRequestError"),
    ("error-500", cohere.InternalServerError, "cohere.errors.internal_server_error.InternalServerError"),
]


def _check_error_span(span: Any, model: str, error_type: str) -> None:
    a = attrs(span)
    assert span.name == f"chat {model}"
    assert span.status.status_code is StatusCode.ERROR
    assert a[semconv.ERROR_TYPE] == error_type
    assert semconv.USAGE_INPUT_TOKENS not in a  # a refused call used no tokens


@pytest.mark.parametrize(("model", "error", "error_type"), ERRORS)
def test_http_errors(
    model: str, error: type, error_type: str, make_client: Any, telemetry: Any, instrument_with: Any
) -> None:
    instrument_with(CohereInstrumentor)
    client = make_client()
    with pytest.raises(error):
        client.chat(model=model, messages=MESSAGES)
    _check_error_span(telemetry.span(), model, error_type)


@pytest.mark.parametrize(("model", "error", "error_type"), ERRORS)
async def test_async_http_errors(
    model: str, error: type, error_type: str, make_aclient: Any, telemetry: Any, instrument_with: Any
) -> None:
    instrument_with(CohereInstrumentor)
    aclient = make_aclient()
    with pytest.raises(error):
        await aclient.chat(model=model, messages=MESSAGES)
    _check_error_span(telemetry.span(), model, error_type)


def test_stream_http_error(make_client: Any, telemetry: Any, instrument_with: Any) -> None:
    """The stream's request is sent on first iteration; its error ends the span there."""
    instrument_with(CohereInstrumentor)
    client = make_client()
    stream = client.chat_stream(model="error-429", messages=MESSAGES)
    assert telemetry.spans() == []
    with pytest.raises(cohere.TooManyRequestsError):
        next(iter(stream))
    _check_error_span(telemetry.span(), "error-429", ERRORS[0][2])
    assert attrs(telemetry.span())[semconv.STREAM_END_REASON] == "error"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_refused(telemetry: Any, instrument_with: Any) -> None:
    import httpx

    instrument_with(CohereInstrumentor)
    client = client_for(f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(httpx.ConnectError):
        client.chat(model=MODEL, messages=MESSAGES)
    _check_error_span(telemetry.span(), MODEL, "httpx.ConnectError")


async def test_async_connection_refused(telemetry: Any, instrument_with: Any) -> None:
    import httpx

    instrument_with(CohereInstrumentor)
    client = client_for(f"http://127.0.0.1:{_closed_port()}", asynchronous=True)
    with pytest.raises(httpx.ConnectError):
        await client.chat(model=MODEL, messages=MESSAGES)
    _check_error_span(telemetry.span(), MODEL, "httpx.ConnectError")


# -- the instrumentor -------------------------------------------------------------------------------


def test_dependencies_and_uninstrument(make_client: Any, telemetry: Any, instrument_with: Any) -> None:
    from cohere.v2.client import AsyncV2Client, V2Client

    originals = {
        (cls, name): vars(cls)[name] for cls in (V2Client, AsyncV2Client) for name in ("chat", "chat_stream", "embed")
    }
    instrumentor = instrument_with(CohereInstrumentor)
    assert list(instrumentor.instrumentation_dependencies()) == ["cohere >= 5.10"]
    assert all(vars(cls)[name] is not original for (cls, name), original in originals.items())
    instrumentor.uninstrument()
    assert all(vars(cls)[name] is original for (cls, name), original in originals.items())
    client = make_client()
    client.chat(model=MODEL, messages=MESSAGES)
    list(client.chat_stream(model=MODEL, messages=MESSAGES))
    client.embed(model=EMBED_MODEL, texts=["x"], input_type="search_document")
    assert telemetry.spans() == []
