"""Ollama (``Client``, ``AsyncClient``, module-level ``ollama.chat``) against a local server speaking
Ollama's wire format: spans, tokens, timings, cost (price file only: local models have no list price),
errors, content; positional and keyword arguments."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx
import ollama
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from tests.providers.servers.ollama import TEMPLATE_TOKENS, TIMINGS, OllamaServer
from tokentrace.core import semconv
from tokentrace.instrumentation.ollama import OllamaInstrumentor

MODEL = "llama3.2"
EMBED_MODEL = "nomic-embed-text"
PROMPT = "Why run a model locally chunks=3"  # 6 words: prompt_eval_count 16, eval_count 6
MESSAGES = [{"role": "user", "content": PROMPT}]
CAPTURE = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"}
INPUT_TOKENS = 6 + TEMPLATE_TOKENS


@pytest.fixture(scope="module")
def server() -> Any:
    with OllamaServer() as s:
        yield s


@pytest.fixture
def client(server: OllamaServer) -> Any:
    with ollama.Client(host=server.base_url) as c:
        yield c


@pytest.fixture
async def aclient(server: OllamaServer) -> Any:
    async with ollama.AsyncClient(host=server.base_url) as c:
        yield c


@pytest.fixture
def price_file(tmp_path: Any) -> str:
    path = tmp_path / "prices.yaml"
    path.write_text("models:\n  - provider: ollama\n    model: 'llama3*'\n    input_mtok: 0.05\n    output_mtok: 0.2\n")
    return str(path)


def attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def _check_span(span: Any, server: OllamaServer, operation: str, *, stream: bool | None) -> dict[str, Any]:
    a = attrs(span)
    assert span.name == f"{operation} {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert a[semconv.OPERATION_NAME] == operation
    assert a[semconv.PROVIDER_NAME] == "ollama"
    assert a[semconv.REQUEST_MODEL] == MODEL
    assert a[semconv.RESPONSE_MODEL] == MODEL
    assert a[semconv.SERVER_ADDRESS] == "127.0.0.1"
    assert a[semconv.SERVER_PORT] == server.server_address[1]
    if stream is not None:
        assert a[semconv.REQUEST_STREAM] is stream
    assert a[semconv.RESPONSE_FINISH_REASONS] == ("stop",)
    assert semconv.RESPONSE_ID not in a  # Ollama sends none
    assert a[semconv.USAGE_INPUT_TOKENS] == INPUT_TOKENS
    assert a[semconv.USAGE_OUTPUT_TOKENS] == 6
    assert a[semconv.USAGE_SOURCE] == "reported"
    assert a[semconv.OLLAMA_TOTAL_DURATION] == TIMINGS["total_duration"] / 1e9
    assert a[semconv.OLLAMA_LOAD_DURATION] == TIMINGS["load_duration"] / 1e9
    assert a[semconv.OLLAMA_PROMPT_EVAL_DURATION] == TIMINGS["prompt_eval_duration"] / 1e9
    assert a[semconv.OLLAMA_EVAL_DURATION] == TIMINGS["eval_duration"] / 1e9
    # No list price for a local model, and no cost of 0 either.
    assert a[semconv.COST_UNAVAILABLE_REASON] == "no_list_price_local_model"
    assert semconv.USAGE_COST_AMOUNT not in a
    assert semconv.ERROR_TYPE not in a
    assert semconv.INPUT_MESSAGES not in a and semconv.OUTPUT_MESSAGES not in a
    return a


def test_chat_positional(client: Any, server: OllamaServer, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(OllamaInstrumentor)
    response = client.chat(
        MODEL,
        MESSAGES,
        options={"temperature": 0.2, "top_p": 0.8, "top_k": 30, "num_predict": 64, "seed": 3, "stop": ["END"]},
        format="json",
    )
    assert isinstance(response, ollama.ChatResponse)
    a = _check_span(telemetry.span(), server, "chat", stream=False)
    assert a[semconv.REQUEST_TEMPERATURE] == 0.2
    assert a[semconv.REQUEST_TOP_P] == 0.8
    assert a[semconv.REQUEST_TOP_K] == 30.0
    assert a[semconv.REQUEST_MAX_TOKENS] == 64
    assert a[semconv.REQUEST_SEED] == 3
    assert a[semconv.REQUEST_STOP_SEQUENCES] == ("END",)
    assert a[semconv.OUTPUT_TYPE] == "json"
    metrics = telemetry.metrics()
    tokens = {p.attributes[semconv.TOKEN_TYPE]: p.sum for p in metrics[semconv.METRIC_TOKEN_USAGE]}
    assert tokens == {"input": INPUT_TOKENS, "output": 6}
    assert semconv.METRIC_COST not in metrics


def test_chat_keywords_and_options_object(
    client: Any, server: OllamaServer, telemetry: Any, instrument_with: Any
) -> None:
    instrument_with(OllamaInstrumentor)
    client.chat(model=MODEL, messages=MESSAGES, options=ollama.Options(temperature=0.5, num_predict=10))
    a = _check_span(telemetry.span(), server, "chat", stream=False)
    assert a[semconv.REQUEST_TEMPERATURE] == 0.5
    assert a[semconv.REQUEST_MAX_TOKENS] == 10


def test_module_level_functions(
    server: OllamaServer, telemetry: Any, instrument_with: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ollama.chat`` is a method of a default client bound at import; it is traced too, and restored."""
    original = ollama.chat
    monkeypatch.setattr(ollama._client, "_client", httpx.Client(base_url=server.base_url))
    instrumentor = instrument_with(OllamaInstrumentor)
    assert ollama.chat is not original
    ollama.chat(MODEL, MESSAGES)
    _check_span(telemetry.span(), server, "chat", stream=False)
    instrumentor.uninstrument()
    assert ollama.chat is original


async def test_async_chat(aclient: Any, server: OllamaServer, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(OllamaInstrumentor)
    await aclient.chat(MODEL, MESSAGES)
    _check_span(telemetry.span(), server, "chat", stream=False)


def test_chat_stream(client: Any, server: OllamaServer, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(OllamaInstrumentor)
    parts = list(client.chat(MODEL, MESSAGES, stream=True))
    assert parts[-1].done and not parts[0].done
    a = _check_span(telemetry.span(), server, "chat", stream=True)
    assert a[semconv.STREAM_CHUNKS] == len(parts) == 4
    assert a[semconv.STREAM_END_REASON] == "completed"
    assert a[semconv.USAGE_INPUT_TOKENS] == parts[-1].prompt_eval_count
    assert a[semconv.USAGE_OUTPUT_TOKENS] == parts[-1].eval_count


async def test_async_chat_stream(aclient: Any, server: OllamaServer, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(OllamaInstrumentor)
    stream = await aclient.chat(MODEL, MESSAGES, stream=True)
    parts = [part async for part in stream]
    a = _check_span(telemetry.span(), server, "chat", stream=True)
    assert a[semconv.STREAM_CHUNKS] == len(parts)


def test_generate(client: Any, server: OllamaServer, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(OllamaInstrumentor)
    client.generate(MODEL, PROMPT)
    _check_span(telemetry.span(), server, "text_completion", stream=False)


def test_generate_stream(client: Any, server: OllamaServer, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(OllamaInstrumentor)
    parts = list(client.generate(MODEL, PROMPT, stream=True))
    a = _check_span(telemetry.span(), server, "text_completion", stream=True)
    assert a[semconv.STREAM_CHUNKS] == len(parts)


async def test_async_generate_stream(aclient: Any, server: OllamaServer, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(OllamaInstrumentor)
    parts = [p async for p in await aclient.generate(model=MODEL, prompt=PROMPT, stream=True)]
    a = _check_span(telemetry.span(), server, "text_completion", stream=True)
    assert a[semconv.STREAM_CHUNKS] == len(parts)


def test_cost_from_price_file(client: Any, telemetry: Any, instrument_with: Any, price_file: str) -> None:
    instrument_with(OllamaInstrumentor, TOKENTRACE_PRICES_FILE=price_file)
    client.chat(MODEL, MESSAGES)
    a = attrs(telemetry.span())
    assert a[semconv.USAGE_COST_AMOUNT] == pytest.approx((INPUT_TOKENS * 0.05 + 6 * 0.2) / 1e6, abs=1e-12)
    assert a[semconv.USAGE_COST_SOURCE] == "price_file"
    assert a[semconv.USAGE_COST_CURRENCY] == "USD"
    assert semconv.COST_UNAVAILABLE_REASON not in a
    assert telemetry.metrics()[semconv.METRIC_COST][0].sum == pytest.approx(a[semconv.USAGE_COST_AMOUNT])


def test_price_file_without_this_model(client: Any, telemetry: Any, instrument_with: Any, price_file: str) -> None:
    instrument_with(OllamaInstrumentor, TOKENTRACE_PRICES_FILE=price_file)
    client.chat("mistral", MESSAGES)
    a = attrs(telemetry.span())
    assert a[semconv.COST_UNAVAILABLE_REASON] == "no_list_price_local_model"
    assert semconv.USAGE_COST_AMOUNT not in a


def test_no_usage_is_estimated(client: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(OllamaInstrumentor)
    client.chat("no-usage", MESSAGES)
    a = attrs(telemetry.span())
    assert a[semconv.USAGE_SOURCE] == "estimated"
    assert a[semconv.USAGE_INPUT_TOKENS] > 0 and a[semconv.USAGE_OUTPUT_TOKENS] > 0
    assert semconv.OLLAMA_TOTAL_DURATION not in a


def test_done_reason_length(client: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(OllamaInstrumentor)
    list(client.generate("length", PROMPT, stream=True))
    assert attrs(telemetry.span())[semconv.RESPONSE_FINISH_REASONS] == ("length",)


def _check_embed_span(span: Any, tokens: int | None) -> dict[str, Any]:
    a = attrs(span)
    assert span.name == f"embeddings {EMBED_MODEL}"
    assert a[semconv.OPERATION_NAME] == "embeddings"
    assert a[semconv.PROVIDER_NAME] == "ollama"
    assert a[semconv.EMBEDDINGS_DIMENSION_COUNT] == 8
    assert a[semconv.COST_UNAVAILABLE_REASON] == "no_list_price_local_model"
    if tokens is not None:
        assert a[semconv.USAGE_INPUT_TOKENS] == tokens
        assert a[semconv.USAGE_SOURCE] == "reported"
    return a


def test_embed(client: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(OllamaInstrumentor)
    client.embed(EMBED_MODEL, ["one two three", "four five"])
    a = _check_embed_span(telemetry.span(), 5 + TEMPLATE_TOKENS)
    assert a[semconv.RESPONSE_MODEL] == EMBED_MODEL


async def test_async_embed(aclient: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(OllamaInstrumentor)
    await aclient.embed(model=EMBED_MODEL, input="one two three")
    _check_embed_span(telemetry.span(), 3 + TEMPLATE_TOKENS)


def test_legacy_embeddings_are_estimated(client: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(OllamaInstrumentor)
    client.embeddings(EMBED_MODEL, "one two three")
    a = _check_embed_span(telemetry.span(), None)
    assert a[semconv.USAGE_SOURCE] == "estimated"
    assert a[semconv.USAGE_INPUT_TOKENS] > 0


# -- content ----------------------------------------------------------------------------------------


def get_weather(city: str) -> str:
    """Weather in a city."""
    return "sunny"


def test_content_capture(client: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(OllamaInstrumentor, **CAPTURE)
    client.chat(MODEL, [{"role": "system", "content": "Be brief."}, *MESSAGES], tools=[get_weather])
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
        {"type": "function", "name": "get_weather", "description": "Weather in a city."}
    ]


_TOOL_OUTPUT = [
    {
        "role": "assistant",
        "parts": [{"type": "tool_call", "name": "get_weather", "arguments": {"city": "Oslo"}}],
        "finish_reason": "stop",
    }
]


def test_tool_call_content(client: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(OllamaInstrumentor, **CAPTURE)
    client.chat("tool-call", MESSAGES)
    assert json.loads(attrs(telemetry.span())[semconv.OUTPUT_MESSAGES]) == _TOOL_OUTPUT


def test_stream_content_capture(client: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(OllamaInstrumentor, **CAPTURE)
    list(client.chat("tool-call", MESSAGES, stream=True))
    assert json.loads(attrs(telemetry.span())[semconv.OUTPUT_MESSAGES]) == _TOOL_OUTPUT
    telemetry.exporter.clear()
    list(client.generate(MODEL, PROMPT, system="Be brief.", stream=True))
    a = attrs(telemetry.span())
    assert json.loads(a[semconv.SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "Be brief."}]
    assert json.loads(a[semconv.INPUT_MESSAGES]) == [{"role": "user", "parts": [{"type": "text", "content": PROMPT}]}]
    assert json.loads(a[semconv.OUTPUT_MESSAGES])[0]["parts"] == [
        {"type": "text", "content": "part0 ok part1 ok part2 ok "}
    ]


# -- errors -------------------------------------------------------------------------------------------


def _check_error_span(span: Any, model: str, error_type: str, operation: str = "chat") -> None:
    a = attrs(span)
    assert span.name == f"{operation} {model}"
    assert span.status.status_code is StatusCode.ERROR
    assert a[semconv.ERROR_TYPE] == error_type
    assert semconv.USAGE_INPUT_TOKENS not in a


@pytest.mark.parametrize("status", [404, 429, 500])
def test_http_errors(status: int, client: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(OllamaInstrumentor)
    with pytest.raises(ollama.ResponseError) as error:
        client.chat(f"error-{status}", MESSAGES)
    assert error.value.status_code == status
    _check_error_span(telemetry.span(), f"error-{status}", "ollama.ResponseError")


@pytest.mark.parametrize("status", [404, 429])
async def test_async_http_errors(status: int, aclient: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(OllamaInstrumentor)
    with pytest.raises(ollama.ResponseError):
        await aclient.embed(f"error-{status}", "x")
    _check_error_span(telemetry.span(), f"error-{status}", "ollama.ResponseError", "embeddings")


def test_stream_http_error_on_first_iteration(client: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(OllamaInstrumentor)
    stream = client.chat("error-429", MESSAGES, stream=True)
    with pytest.raises(ollama.ResponseError):
        next(stream)
    _check_error_span(telemetry.span(), "error-429", "ollama.ResponseError")
    assert attrs(telemetry.span())[semconv.STREAM_END_REASON] == "error"


def test_midstream_error(client: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(OllamaInstrumentor)
    seen = []
    with pytest.raises(ollama.ResponseError):
        for part in client.chat("midstream-error", MESSAGES, stream=True):
            seen.append(part)
    assert len(seen) == 2
    span = telemetry.span()
    assert attrs(span)[semconv.STREAM_CHUNKS] == 2
    assert attrs(span)[semconv.ERROR_TYPE] == "ollama.ResponseError"
    assert span.status.status_code is StatusCode.ERROR


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_refused(telemetry: Any, instrument_with: Any) -> None:
    instrument_with(OllamaInstrumentor)
    client = ollama.Client(host=f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(ConnectionError):
        client.chat(MODEL, MESSAGES)
    _check_error_span(telemetry.span(), MODEL, "ConnectionError")
    telemetry.exporter.clear()
    with pytest.raises(httpx.ConnectError):  # a stream connects on its first iteration
        list(client.chat(MODEL, MESSAGES, stream=True))
    _check_error_span(telemetry.span(), MODEL, "httpx.ConnectError")


async def test_async_connection_refused(telemetry: Any, instrument_with: Any) -> None:
    instrument_with(OllamaInstrumentor)
    client = ollama.AsyncClient(host=f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(ConnectionError):
        await client.generate(MODEL, PROMPT)
    _check_error_span(telemetry.span(), MODEL, "ConnectionError", "text_completion")


# -- the instrumentor -------------------------------------------------------------------------------


def test_dependencies_and_uninstrument(client: Any, telemetry: Any, instrument_with: Any) -> None:
    from ollama._client import AsyncClient, Client

    methods = ("chat", "generate", "embed", "embeddings")
    originals = {(cls, name): vars(cls)[name] for cls in (Client, AsyncClient) for name in methods}
    instrumentor = instrument_with(OllamaInstrumentor)
    assert list(instrumentor.instrumentation_dependencies()) == ["ollama >= 0.4"]
    assert all(vars(cls)[name] is not original for (cls, name), original in originals.items())
    instrumentor.uninstrument()
    assert all(vars(cls)[name] is original for (cls, name), original in originals.items())
    client.chat(MODEL, MESSAGES)
    list(client.generate(MODEL, PROMPT, stream=True))
    assert telemetry.spans() == []
