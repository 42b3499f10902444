"""LiteLLM: one span per ``litellm.completion`` / ``acompletion`` / ``embedding`` / ``aembedding`` call.

Runs the real ``litellm`` package with its real HTTP stacks against the local simulator on
127.0.0.1: ``openai/...`` models through the openai SDK LiteLLM uses underneath, ``anthropic/...``
models through LiteLLM's own httpx handler speaking Anthropic's Messages API. LiteLLM pins
``openai<3``: in the openai 3.x test environment this module is skipped (the only skip).
``LITELLM_LOCAL_MODEL_COST_MAP`` keeps LiteLLM from fetching its cost map from the internet at import.
"""

from __future__ import annotations

import asyncio
import re
import socket
from typing import Any

import pytest
from genai_prices import Usage as CatalogueUsage
from genai_prices import calc_price
from opentelemetry.trace import StatusCode

from tests.providers.litellm_setup import (  # noqa: F401  (autouse fixtures)
    close_litellm_sessions,
    collect_litellm_sessions,
    fresh_litellm_clients,
    litellm,
)
from tokentrace.core import semconv
from tokentrace.instrumentation.litellm import LiteLLMInstrumentor, _providers
from tokentrace.instrumentation.openai import OpenAIInstrumentor

OPENAI_MODEL = "openai/gpt-4o-mini"
ANTHROPIC_MODEL = "anthropic/claude-3-5-haiku-20241022"
EMBEDDING_MODEL = "openai/text-embedding-3-small"
OPENAI_SCOPE = "tokentrace.instrumentation.openai"
LITELLM_SCOPE = "tokentrace.instrumentation.litellm"


@pytest.fixture
def routes(simulator: Any) -> dict[str, dict[str, Any]]:
    root = f"http://{simulator.host}:{simulator.port}"
    return {
        "openai": {"model": OPENAI_MODEL, "api_base": simulator.base_url, "api_key": "sk-test"},
        "anthropic": {"model": ANTHROPIC_MODEL, "api_base": root, "api_key": "sk-ant-test", "max_tokens": 64},
    }


@pytest.fixture
def both(instrument_with: Any) -> Any:
    """LiteLLM and the openai SDK it calls underneath, both instrumented (the usual setup)."""
    instrument_with(OpenAIInstrumentor)
    return instrument_with(LiteLLMInstrumentor)


def messages(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes)


def llm_spans(telemetry: Any) -> list[Any]:
    return [s for s in telemetry.spans() if semconv.OPERATION_NAME in (s.attributes or {})]


def one_span(telemetry: Any) -> Any:
    spans = llm_spans(telemetry)
    assert len(spans) == 1, [(s.name, s.instrumentation_scope.name) for s in spans]
    assert spans[0].instrumentation_scope.name == LITELLM_SCOPE
    return spans[0]


def catalogue_cost(provider_id: str, model: str, usage: Any) -> float:
    cached = getattr(getattr(usage, "prompt_tokens_details", None), "cached_tokens", None)
    price = calc_price(
        CatalogueUsage(
            input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens, cache_read_tokens=cached or None
        ),
        model,
        provider_id=provider_id,
    )
    return float(price.total_price)


def metric_points(telemetry: Any, name: str) -> list[Any]:
    return telemetry.metrics().get(name, [])


# -- chat, OpenAI route: the inner openai SDK call enriches the one LiteLLM span -----------------------


def _check_openai_chat(span: Any, response: Any, sim: Any, *, stream: bool, merged: bool = True) -> dict[str, Any]:
    a = attrs(span)
    assert span.name == f"chat {OPENAI_MODEL}"
    assert span.status.status_code is StatusCode.UNSET
    assert a[semconv.OPERATION_NAME] == "chat"
    assert a[semconv.PROVIDER_NAME] == "openai"
    assert a[semconv.REQUEST_MODEL] == OPENAI_MODEL  # as the application passed it
    assert a[semconv.REQUEST_STREAM] is stream
    assert a[semconv.LITELLM_PROVIDER] == "openai"
    assert a[semconv.SERVER_ADDRESS] == "127.0.0.1" and a[semconv.SERVER_PORT] == sim.port
    assert a[semconv.LITELLM_API_BASE].startswith(sim.base_url)
    # The provider's own response model (dated), which LiteLLM's stream chunks do not carry.
    assert a[semconv.RESPONSE_MODEL] == "gpt-4o-mini-2024-07-18"
    assert a[semconv.RESPONSE_FINISH_REASONS] == ("stop",)
    if merged:
        assert a[semconv.MERGED_FROM] == OPENAI_SCOPE
        assert a[semconv.OPENAI_API_TYPE] == "chat_completions"
    else:
        assert semconv.MERGED_FROM not in a
    return a


def test_chat_openai_route(routes: Any, simulator: Any, telemetry: Any, both: Any) -> None:
    route = routes["openai"]
    response = litellm.completion(messages=messages("LiteLLM over the openai SDK, one span."), **route)
    span = one_span(telemetry)
    a = _check_openai_chat(span, response, simulator, stream=False)
    assert a[semconv.RESPONSE_ID] == response.id
    assert a[semconv.USAGE_INPUT_TOKENS] == response.usage.prompt_tokens > 0
    assert a[semconv.USAGE_OUTPUT_TOKENS] == response.usage.completion_tokens > 0
    assert a[semconv.USAGE_SOURCE] == "reported"
    assert a[semconv.LITELLM_CALL_ID] == response._hidden_params["litellm_call_id"]
    # LiteLLM's own cost is the cost; genai-prices' figure for the same usage sits beside it.
    assert a[semconv.USAGE_COST_SOURCE] == "provider"
    assert a[semconv.USAGE_COST_AMOUNT] == pytest.approx(response._hidden_params["response_cost"], abs=1e-12)
    assert a[semconv.USAGE_COST_CURRENCY] == "USD"
    assert a[semconv.COST_LOCAL_AMOUNT] == pytest.approx(
        catalogue_cost("openai", "gpt-4o-mini", response.usage), abs=1e-9
    )
    assert semconv.COST_INPUT not in a and semconv.COST_OUTPUT not in a  # LiteLLM gives no split


def test_chat_openai_route_metrics_once(routes: Any, simulator: Any, telemetry: Any, both: Any) -> None:
    response = litellm.completion(messages=messages("Metrics are recorded once."), **routes["openai"])
    one_span(telemetry)
    durations = metric_points(telemetry, semconv.METRIC_OPERATION_DURATION)
    assert sum(p.count for p in durations) == 1
    point = durations[0]
    assert point.attributes[semconv.PROVIDER_NAME] == "openai"
    assert point.attributes[semconv.REQUEST_MODEL] == OPENAI_MODEL
    assert point.attributes[semconv.RESPONSE_MODEL] == "gpt-4o-mini-2024-07-18"
    tokens = metric_points(telemetry, semconv.METRIC_TOKEN_USAGE)
    by_type = {p.attributes[semconv.TOKEN_TYPE]: p for p in tokens}
    assert by_type["input"].count == by_type["output"].count == 1
    assert by_type["input"].sum == response.usage.prompt_tokens
    assert by_type["output"].sum == response.usage.completion_tokens
    cost = metric_points(telemetry, semconv.METRIC_COST)
    assert sum(p.count for p in cost) == 1
    assert cost[0].sum == pytest.approx(response._hidden_params["response_cost"], abs=1e-12)


async def test_async_chat_openai_route(routes: Any, simulator: Any, telemetry: Any, both: Any) -> None:
    response = await litellm.acompletion(messages=messages("acompletion over the openai SDK."), **routes["openai"])
    span = one_span(telemetry)
    a = _check_openai_chat(span, response, simulator, stream=False)
    assert a[semconv.RESPONSE_ID] == response.id
    assert a[semconv.USAGE_INPUT_TOKENS] == response.usage.prompt_tokens > 0
    assert a[semconv.USAGE_COST_SOURCE] == "provider"


def test_chat_without_the_openai_instrumentation(
    routes: Any, simulator: Any, telemetry: Any, instrument_with: Any
) -> None:
    """Only LiteLLM instrumented: still one span, from LiteLLM's own view of the response."""
    instrument_with(LiteLLMInstrumentor)
    response = litellm.completion(messages=messages("Only LiteLLM is instrumented."), **routes["openai"])
    a = _check_openai_chat(one_span(telemetry), response, simulator, stream=False, merged=False)
    assert a[semconv.USAGE_INPUT_TOKENS] == response.usage.prompt_tokens


def test_openai_calls_after_litellm_get_their_own_span(
    routes: Any, simulator: Any, telemetry: Any, both: Any, client: Any
) -> None:
    """The merge lasts only while LiteLLM's call runs: the app's own openai call right after (with a
    LiteLLM stream still open) is its own span."""
    stream = litellm.completion(messages=messages("Still open."), stream=True, **routes["openai"])
    next(iter(stream))
    client.chat.completions.create(model="gpt-4o-mini", messages=messages("A direct openai call."))
    list(stream)
    scopes = sorted(s.instrumentation_scope.name for s in llm_spans(telemetry))
    assert scopes == sorted([OPENAI_SCOPE, LITELLM_SCOPE])


# -- streams -----------------------------------------------------------------------------------------


def test_stream_openai_route_include_usage(routes: Any, simulator: Any, telemetry: Any, both: Any) -> None:
    stream = litellm.completion(
        messages=messages("Stream with usage, please."),
        stream=True,
        stream_options={"include_usage": True},
        **routes["openai"],
    )
    chunks = list(stream)
    usage = chunks[-1].usage
    span = one_span(telemetry)
    a = _check_openai_chat(span, None, simulator, stream=True)
    assert a[semconv.RESPONSE_ID] == chunks[0].id
    assert a[semconv.USAGE_INPUT_TOKENS] == usage.prompt_tokens > 0
    assert a[semconv.USAGE_OUTPUT_TOKENS] == usage.completion_tokens > 0
    assert a[semconv.USAGE_SOURCE] == "reported"
    assert a[semconv.STREAM_CHUNKS] == len(chunks)
    assert a[semconv.STREAM_END_REASON] == "completed"
    # LiteLLM prices the include_usage chunk (usage.cost); genai-prices' figure is kept beside it.
    assert a[semconv.USAGE_COST_SOURCE] == "provider"
    assert a[semconv.USAGE_COST_AMOUNT] == pytest.approx(usage.cost, abs=1e-12)
    assert a[semconv.COST_LOCAL_AMOUNT] == pytest.approx(catalogue_cost("openai", "gpt-4o-mini", usage), abs=1e-9)


async def test_async_stream_openai_route(routes: Any, simulator: Any, telemetry: Any, both: Any) -> None:
    stream = await litellm.acompletion(
        messages=messages("Async stream with usage."),
        stream=True,
        stream_options={"include_usage": True},
        **routes["openai"],
    )
    chunks = [chunk async for chunk in stream]
    span = one_span(telemetry)
    a = _check_openai_chat(span, None, simulator, stream=True)
    assert a[semconv.USAGE_INPUT_TOKENS] == chunks[-1].usage.prompt_tokens
    assert a[semconv.STREAM_CHUNKS] == len(chunks)


def test_stream_without_usage_is_estimated(routes: Any, simulator: Any, telemetry: Any, both: Any) -> None:
    """No usage reached LiteLLM (its own total is 0/0 then): tokens are estimated, never 0."""
    list(litellm.completion(messages=messages("No usage chunk here."), stream=True, **routes["openai"]))
    a = attrs(one_span(telemetry))
    assert a[semconv.USAGE_SOURCE] == "estimated"
    assert a[semconv.USAGE_INPUT_TOKENS] > 0 and a[semconv.USAGE_OUTPUT_TOKENS] > 0


# -- a non-OpenAI route: LiteLLM's own httpx handler, Anthropic's Messages API ----------------------------


def _check_anthropic(span: Any, sim: Any, *, stream: bool) -> dict[str, Any]:
    a = attrs(span)
    assert span.name == f"chat {ANTHROPIC_MODEL}"
    assert a[semconv.PROVIDER_NAME] == "anthropic"
    assert a[semconv.REQUEST_MODEL] == ANTHROPIC_MODEL
    assert a[semconv.RESPONSE_MODEL] == "claude-3-5-haiku-20241022"
    assert a[semconv.LITELLM_PROVIDER] == "anthropic"
    assert a[semconv.REQUEST_MAX_TOKENS] == 64
    assert a[semconv.SERVER_ADDRESS] == "127.0.0.1" and a[semconv.SERVER_PORT] == sim.port
    assert semconv.MERGED_FROM not in a  # no instrumented SDK underneath
    assert a[semconv.USAGE_SOURCE] == "reported"
    assert sim.requests[-1]["path"] == "/v1/messages"
    return a


def test_chat_anthropic_route(routes: Any, simulator: Any, telemetry: Any, both: Any) -> None:
    response = litellm.completion(messages=messages("Anthropic through LiteLLM's handler."), **routes["anthropic"])
    a = _check_anthropic(one_span(telemetry), simulator, stream=False)
    assert a[semconv.RESPONSE_ID] == response.id
    assert a[semconv.USAGE_INPUT_TOKENS] == response.usage.prompt_tokens > 0
    assert a[semconv.USAGE_OUTPUT_TOKENS] == response.usage.completion_tokens > 0
    cost = response._hidden_params.get("response_cost")
    if cost is None:  # this model is not in LiteLLM's cost map: genai-prices prices it
        assert a[semconv.USAGE_COST_SOURCE] == "local"
        expected = catalogue_cost("anthropic", "claude-3-5-haiku-20241022", response.usage)
        assert a[semconv.USAGE_COST_AMOUNT] == pytest.approx(expected, abs=1e-9)
    else:
        assert a[semconv.USAGE_COST_SOURCE] == "provider"
        assert a[semconv.USAGE_COST_AMOUNT] == pytest.approx(cost, abs=1e-12)


def test_stream_anthropic_route(routes: Any, simulator: Any, telemetry: Any, both: Any) -> None:
    """Anthropic reports usage in its stream events; LiteLLM's total of them is read at the end."""
    route = routes["anthropic"]
    reference = litellm.completion(messages=messages("Anthropic, streamed."), **route)
    telemetry.exporter.clear()
    chunks = list(litellm.completion(messages=messages("Anthropic, streamed."), stream=True, **route))
    a = _check_anthropic(one_span(telemetry), simulator, stream=True)
    assert a[semconv.USAGE_INPUT_TOKENS] == reference.usage.prompt_tokens
    assert a[semconv.USAGE_OUTPUT_TOKENS] == reference.usage.completion_tokens
    assert a[semconv.STREAM_CHUNKS] == len(chunks)
    assert a[semconv.RESPONSE_FINISH_REASONS] == ("stop",)


async def test_async_stream_anthropic_route(routes: Any, simulator: Any, telemetry: Any, both: Any) -> None:
    stream = await litellm.acompletion(
        messages=messages("Anthropic, async stream."), stream=True, **routes["anthropic"]
    )
    chunks = [chunk async for chunk in stream]
    a = _check_anthropic(one_span(telemetry), simulator, stream=True)
    assert a[semconv.USAGE_INPUT_TOKENS] > 0
    assert a[semconv.STREAM_CHUNKS] == len(chunks)
    assert a[semconv.STREAM_END_REASON] == "completed"


# -- embeddings --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", [None, "float"])
def test_embedding(encoding: str | None, simulator: Any, telemetry: Any, both: Any) -> None:
    """Without ``encoding_format`` LiteLLM posts through the client directly (no SDK method runs);
    with it, ``embeddings.create`` runs and merges its detail."""
    extra = {"encoding_format": encoding} if encoding else {}
    response = litellm.embedding(
        model=EMBEDDING_MODEL, input=["embed me"], api_base=simulator.base_url, api_key="sk-test", **extra
    )
    span = one_span(telemetry)
    a = attrs(span)
    assert span.name == f"embeddings {EMBEDDING_MODEL}"
    assert a[semconv.OPERATION_NAME] == "embeddings"
    assert a[semconv.PROVIDER_NAME] == "openai"
    assert a[semconv.RESPONSE_MODEL] == "text-embedding-3-small"
    assert a[semconv.USAGE_INPUT_TOKENS] == response.usage.prompt_tokens > 0
    assert semconv.USAGE_OUTPUT_TOKENS not in a
    assert a[semconv.EMBEDDINGS_DIMENSION_COUNT] == len(response.data[0]["embedding"])
    assert a[semconv.USAGE_COST_SOURCE] == "provider"
    assert a[semconv.USAGE_COST_AMOUNT] == pytest.approx(response._hidden_params["response_cost"], abs=1e-12)
    assert (a.get(semconv.MERGED_FROM) == OPENAI_SCOPE) is bool(encoding)


async def test_async_embedding(simulator: Any, telemetry: Any, both: Any) -> None:
    response = await litellm.aembedding(
        model=EMBEDDING_MODEL, input=["embed me too"], api_base=simulator.base_url, api_key="sk-test"
    )
    a = attrs(one_span(telemetry))
    assert a[semconv.USAGE_INPUT_TOKENS] == response.usage.prompt_tokens
    assert a[semconv.OPERATION_NAME] == "embeddings"


# -- errors: LiteLLM's exception classes ------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


ERROR_CASES = [
    pytest.param("openai", "error-429", "litellm.exceptions.RateLimitError", id="openai-429"),
    pytest.param("openai", "error-500", "litellm.exceptions.InternalServerError", id="openai-500"),
    pytest.param("openai", "error-401", "litellm.exceptions.AuthenticationError", id="openai-401"),
    pytest.param("anthropic", "error-429", "litellm.exceptions.RateLimitError", id="anthropic-429"),
    pytest.param("anthropic", "error-400", "litellm.exceptions.BadRequestError", id="anthropic-400"),
]


def _scrub_ids(text: str) -> str:
    return re.sub(r"req_\d+", "req_N", text)


def _call_failing(route: dict[str, Any], model: str) -> BaseException:
    prefix = route["model"].split("/")[0]
    with pytest.raises(Exception) as caught:
        litellm.completion(messages=messages("fail"), **{**route, "model": f"{prefix}/{model}"})
    return caught.value


@pytest.mark.parametrize(("route_name", "model", "error_type"), ERROR_CASES)
def test_errors(
    route_name: str, model: str, error_type: str, routes: Any, telemetry: Any, instrument_with: Any
) -> None:
    baseline = _call_failing(routes[route_name], model)
    instrument_with(OpenAIInstrumentor)
    instrument_with(LiteLLMInstrumentor)
    error = _call_failing(routes[route_name], model)
    # The application sees LiteLLM's very exception, as without tokentrace.
    assert type(error) is type(baseline)
    assert f"{type(error).__module__}.{type(error).__qualname__}" == error_type
    assert _scrub_ids(str(error)) == _scrub_ids(str(baseline))  # the server numbers its requests
    assert getattr(error, "status_code", None) == getattr(baseline, "status_code", None)
    span = one_span(telemetry)
    assert span.status.status_code is StatusCode.ERROR
    a = attrs(span)
    assert a[semconv.ERROR_TYPE] == error_type
    assert semconv.USAGE_COST_AMOUNT not in a
    durations = metric_points(telemetry, semconv.METRIC_OPERATION_DURATION)
    assert [p.attributes[semconv.ERROR_TYPE] for p in durations] == [error_type]


async def test_async_error(routes: Any, telemetry: Any, both: Any) -> None:
    route = {**routes["openai"], "model": "openai/error-429"}
    with pytest.raises(litellm.RateLimitError):
        await litellm.acompletion(messages=messages("fail"), **route)
    span = one_span(telemetry)
    assert attrs(span)[semconv.ERROR_TYPE] == "litellm.exceptions.RateLimitError"


def test_connection_refused(telemetry: Any, both: Any) -> None:
    route = {"model": OPENAI_MODEL, "api_base": f"http://127.0.0.1:{_closed_port()}/v1", "api_key": "sk-test"}
    with pytest.raises(Exception) as caught:  # LiteLLM maps the openai SDK's connection error
        litellm.completion(messages=messages("nobody listens"), **route)
    error = caught.value
    assert type(error).__module__ == "litellm.exceptions"
    span = one_span(telemetry)
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)[semconv.ERROR_TYPE] == f"litellm.exceptions.{type(error).__qualname__}"


def test_retries_make_one_span(routes: Any, simulator: Any, telemetry: Any, both: Any) -> None:
    """LiteLLM's own retry: the failed attempt merges nothing, the one span has the success."""
    route = routes["openai"]
    response = litellm.completion(
        messages=messages("retry me"),
        num_retries=1,
        extra_headers={"x-sim-fault": "error-500", "x-sim-fault-once": f"litellm-{id(telemetry)}"},
        **route,
    )
    span = one_span(telemetry)
    assert span.status.status_code is StatusCode.UNSET
    assert attrs(span)[semconv.RESPONSE_ID] == response.id


# -- content capture --------------------------------------------------------------------------------------


def test_content_off_by_default(routes: Any, telemetry: Any, both: Any) -> None:
    litellm.completion(messages=messages("secret prompt"), **routes["openai"])
    a = attrs(one_span(telemetry))
    assert semconv.INPUT_MESSAGES not in a and semconv.OUTPUT_MESSAGES not in a


@pytest.mark.parametrize("stream", [False, True])
def test_content_capture(stream: bool, routes: Any, telemetry: Any, instrument_with: Any) -> None:
    env = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"}
    instrument_with(OpenAIInstrumentor, **env)
    instrument_with(LiteLLMInstrumentor, **env)
    result = litellm.completion(messages=messages("capture me"), stream=stream, **routes["anthropic"])
    if stream:
        text = "".join(chunk.choices[0].delta.content or "" for chunk in result)
    else:
        text = result.choices[0].message.content
    import json

    a = attrs(one_span(telemetry))
    assert json.loads(a[semconv.INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "capture me"}]}
    ]
    output = json.loads(a[semconv.OUTPUT_MESSAGES])
    assert output[0]["role"] == "assistant"
    assert output[0]["parts"][0]["content"] == text
    assert output[0]["finish_reason"] == "stop"


# -- provider names, dependencies, uninstrument -----------------------------------------------------------


@pytest.mark.parametrize(
    ("litellm_name", "expected"),
    [
        ("openai", "openai"),
        ("anthropic", "anthropic"),
        ("azure", "azure.ai.openai"),
        ("bedrock", "aws.bedrock"),
        ("vertex_ai", "gcp.vertex_ai"),
        ("gemini", "gcp.gemini"),
        ("groq", "groq"),
        ("mistral", "mistral_ai"),
        ("cohere", "cohere"),
        ("cohere_chat", "cohere"),
        ("ollama", "ollama"),
        ("ollama_chat", "ollama"),
        ("hosted_vllm", "hosted_vllm"),
        (None, "litellm"),
    ],
)
def test_provider_names(litellm_name: str | None, expected: str) -> None:
    assert _providers.provider_name(litellm_name) == expected


@pytest.mark.parametrize(
    ("model", "custom", "expected"),
    [
        ("anthropic/claude-3-5-haiku-20241022", None, "anthropic"),
        ("gpt-4o-mini", None, "openai"),  # a bare name: LiteLLM's own resolver
        ("my-deployment", "azure", "azure"),
        ("groq/llama-3.1-8b-instant", None, "groq"),
        ("no-such-model-anywhere", None, None),
    ],
)
def test_request_provider(model: str, custom: str | None, expected: str | None) -> None:
    assert _providers.litellm_provider(model, custom) == expected


def test_dependencies_and_uninstrument(routes: Any, telemetry: Any, instrument_with: Any) -> None:
    originals = {name: getattr(litellm, name) for name in ("completion", "acompletion", "embedding", "aembedding")}
    instrumentor = instrument_with(LiteLLMInstrumentor)
    assert list(instrumentor.instrumentation_dependencies()) == ["litellm >= 1.50"]
    assert all(getattr(litellm, name) is not original for name, original in originals.items())
    instrumentor.uninstrument()
    assert all(getattr(litellm, name) is original for name, original in originals.items())
    litellm.completion(messages=messages("untraced"), **routes["openai"])
    assert llm_spans(telemetry) == []


def test_positional_arguments(routes: Any, telemetry: Any, both: Any) -> None:
    route = dict(routes["openai"])
    model = route.pop("model")
    litellm.completion(model, messages("positional"), **route)
    assert attrs(one_span(telemetry))[semconv.REQUEST_MODEL] == model


def test_app_span_is_parent(routes: Any, telemetry: Any, both: Any) -> None:
    tracer = telemetry.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("app") as app:
        asyncio.run(litellm.acompletion(messages=messages("parented"), **routes["openai"]))
    span = one_span(telemetry)
    assert span.parent is not None and span.parent.span_id == app.get_span_context().span_id


# -- cost sources -----------------------------------------------------------------------------------------


def test_unknown_model_has_no_cost(routes: Any, telemetry: Any, both: Any) -> None:
    """Neither LiteLLM's cost map nor genai-prices knows the model: no cost, a reason, never 0."""
    response = litellm.completion(messages=messages("fine-tuned"), **{**routes["openai"], "model": "openai/my-ft-x"})
    assert response._hidden_params.get("response_cost") is None
    a = attrs(one_span(telemetry))
    assert semconv.USAGE_COST_AMOUNT not in a and semconv.COST_LOCAL_AMOUNT not in a
    assert a[semconv.COST_UNAVAILABLE_REASON] == "model_not_in_catalogue"
    assert semconv.METRIC_COST not in telemetry.metrics()


def test_reported_cost_without_a_catalogue_price(telemetry: Any) -> None:
    """The core's provider-cost path on its own: a reported cost for a model genai-prices lacks."""
    from tokentrace.core.call import GenAICall
    from tokentrace.core.recorder import Recorder

    recorder = Recorder(
        "tokentrace.test", tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    call = GenAICall("chat", "hosted_vllm", "hosted_vllm/my-model")
    recorder.start(call)
    call.usage.input_tokens, call.usage.output_tokens = 10, 5
    call.reported_cost = 0.25
    recorder.finish(call)
    a = attrs(telemetry.span())
    assert a[semconv.USAGE_COST_AMOUNT] == 0.25
    assert a[semconv.USAGE_COST_SOURCE] == "provider"
    assert a[semconv.COST_PRICING_MODEL] == "hosted_vllm/my-model"
    for absent in (
        semconv.COST_LOCAL_AMOUNT,
        semconv.COST_UNAVAILABLE_REASON,
        semconv.COST_INPUT,
        semconv.COST_PRICING_VERSION,
    ):
        assert absent not in a
    assert [p.sum for p in telemetry.metrics()[semconv.METRIC_COST]] == [0.25]


def test_router_deployment(simulator: Any, telemetry: Any, both: Any) -> None:
    """``litellm.Router`` calls ``litellm.completion``/``acompletion`` per attempt: one span each, with
    the model group and deployment id the Router chose."""
    deployment = {"model": OPENAI_MODEL, "api_base": simulator.base_url, "api_key": "sk-test"}
    router = litellm.Router(
        model_list=[{"model_name": "fast", "litellm_params": deployment, "model_info": {"id": "deployment-1"}}]
    )
    router.completion(model="fast", messages=messages("through the router"))
    asyncio.run(router.acompletion(model="fast", messages=messages("through the router, async")))
    spans = llm_spans(telemetry)
    assert [s.instrumentation_scope.name for s in spans] == [LITELLM_SCOPE, LITELLM_SCOPE]
    for span in spans:
        a = attrs(span)
        assert a[semconv.REQUEST_MODEL] == OPENAI_MODEL
        assert a[semconv.LITELLM_MODEL_GROUP] == "fast"
        assert a[semconv.LITELLM_MODEL_ID] == "deployment-1"
        assert a[semconv.MERGED_FROM] == OPENAI_SCOPE


def test_entry_point() -> None:
    """The ``opentelemetry-instrument`` launcher finds the instrumentor under ``tokentrace_litellm``."""
    from importlib.metadata import entry_points

    (entry,) = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "tokentrace_litellm"]
    assert entry.load() is LiteLLMInstrumentor


def test_bare_model_name_merges_too(simulator: Any, telemetry: Any, both: Any) -> None:
    """A bare model name is the same string the openai SDK gets: the inner call still merges (before,
    an equal model name made it stay out of the way, losing the provider's detail)."""
    response = litellm.completion(
        model="gpt-4o-mini", messages=messages("bare"), api_base=simulator.base_url, api_key="sk-test"
    )
    a = attrs(one_span(telemetry))
    assert a[semconv.PROVIDER_NAME] == "openai"
    assert a[semconv.MERGED_FROM] == OPENAI_SCOPE
    assert a[semconv.RESPONSE_ID] == response.id


def test_concurrent_calls_do_not_mix(routes: Any, telemetry: Any, both: Any) -> None:
    """Threads and asyncio tasks each merge into their own LiteLLM call (the merge target is a
    ContextVar), so every span carries its own response."""
    from concurrent.futures import ThreadPoolExecutor

    route = routes["openai"]
    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda i: litellm.completion(messages=messages(f"thread {i}"), **route), range(8)))

    async def many() -> list[Any]:
        return await asyncio.gather(*(litellm.acompletion(messages=messages(f"task {i}"), **route) for i in range(8)))

    responses += asyncio.run(many())
    spans = llm_spans(telemetry)
    assert len(spans) == 16 and {s.instrumentation_scope.name for s in spans} == {LITELLM_SCOPE}
    by_id = {attrs(s)[semconv.RESPONSE_ID]: attrs(s) for s in spans}
    assert set(by_id) == {r.id for r in responses}
    for response in responses:
        assert by_id[response.id][semconv.USAGE_INPUT_TOKENS] == response.usage.prompt_tokens
        assert by_id[response.id][semconv.MERGED_FROM] == OPENAI_SCOPE
