"""Spans of the real ``openai`` SDK talking HTTP to the local simulator, sync and async.

Every expectation comes from what the SDK itself returned or what the simulator recorded, never
from a mock: usage attributes must equal the usage the server reported, request attributes must
match what the application passed, and errors must be the SDK's own exceptions.
"""

from __future__ import annotations

import inspect
import json
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pydantic
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

from tokentrace.core import semconv
from tokentrace.core.call import GenAICall
from tokentrace.core.recorder import CONTENT_EVENT_NAME, Recorder
from tokentrace.core.settings import Settings
from tokentrace.demo import simulator as sim_rules
from tokentrace.instrumentation.openai._provider import Endpoint, endpoint_for_url

MODEL = "gpt-4o-mini"
CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
RESPONSES_WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": WEATHER_TOOL["function"]["parameters"],
}


def unique(text: str) -> str:
    """A prompt the session-wide simulator has not seen (its prompt cache is per text)."""
    return f"{text} [{uuid.uuid4().hex[:12]}]"


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


async def resolve(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class Api:
    """Calls one SDK method by dotted path on the sync or async client; ``await api(path, **kw)``."""

    def __init__(self, mode: str, client: Any, aclient: Any) -> None:
        self.mode = mode
        self.client = client if mode == "sync" else aclient

    async def __call__(self, path: str, **kwargs: Any) -> Any:
        target = self.client
        for part in path.split("."):
            target = getattr(target, part)
        return await resolve(target(**kwargs))

    async def collect(self, stream: Any) -> list[Any]:
        if self.mode == "sync":
            return list(stream)
        return [chunk async for chunk in stream]


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest, client: Any, aclient: Any) -> Api:
    return Api(request.param, client, aclient)


def attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def last_request(simulator: Any, marker: str) -> dict[str, Any]:
    """The newest request the simulator received whose body mentions ``marker``."""
    for record in reversed(simulator.requests):
        if marker in json.dumps(record.get("body")):
            return record
    raise AssertionError(f"the simulator received no request mentioning {marker!r}")


def usage_attributes(span: Any) -> dict[str, Any]:
    return {k: v for k, v in attrs(span).items() if k.startswith("gen_ai.usage.") and "cost" not in k}


def with_cache_writes(expected: dict[str, Any], details: Any) -> dict[str, Any]:
    """Cache-write tokens appear when (and only when) the server reported them."""
    written = getattr(details, "cache_write_tokens", None)
    if written is not None:
        expected[semconv.RELEASED.usage_cache_creation_input_tokens] = written
    return expected


def assert_chat_usage_matches(span: Any, usage: Any) -> None:
    """The span's usage is exactly what the server reported in a Chat Completions ``usage``."""
    expected = {
        semconv.USAGE_INPUT_TOKENS: usage.prompt_tokens,
        semconv.USAGE_OUTPUT_TOKENS: usage.completion_tokens,
        semconv.USAGE_CACHE_READ_INPUT_TOKENS: usage.prompt_tokens_details.cached_tokens,
        semconv.USAGE_REASONING_OUTPUT_TOKENS: usage.completion_tokens_details.reasoning_tokens,
    }
    assert usage_attributes(span) == with_cache_writes(expected, usage.prompt_tokens_details)
    assert attrs(span)[semconv.USAGE_SOURCE] == semconv.USAGE_SOURCE_REPORTED


# -- chat completions ------------------------------------------------------------------------------


async def test_chat_plain_span(api: Api, instrumented: Any, telemetry: Any, simulator: Any) -> None:
    prompt = unique("plain chat")
    result = await api(
        "chat.completions.create",
        model=MODEL,
        messages=user(prompt),
        max_tokens=50,
        temperature=0.5,
        top_p=0.9,
        seed=7,
        stop=["END", "STOP"],
        frequency_penalty=0.25,
        presence_penalty=0.5,
        service_tier="default",
        n=1,
    )
    span = telemetry.span()
    a = attrs(span)
    assert span.name == "chat gpt-4o-mini"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert a[semconv.OPERATION_NAME] == "chat"
    assert a[semconv.PROVIDER_NAME] == "openai"
    assert a[semconv.REQUEST_MODEL] == MODEL
    assert a[semconv.SERVER_ADDRESS] == "127.0.0.1"
    assert a[semconv.SERVER_PORT] == simulator.port
    assert a[semconv.REQUEST_MAX_TOKENS] == 50
    assert a[semconv.REQUEST_TEMPERATURE] == pytest.approx(0.5)
    assert a[semconv.REQUEST_TOP_P] == pytest.approx(0.9)
    assert a[semconv.REQUEST_SEED] == 7
    assert list(a[semconv.REQUEST_STOP_SEQUENCES]) == ["END", "STOP"]
    assert a[semconv.REQUEST_FREQUENCY_PENALTY] == pytest.approx(0.25)
    assert a[semconv.REQUEST_PRESENCE_PENALTY] == pytest.approx(0.5)
    assert semconv.REQUEST_CHOICE_COUNT not in a  # n=1, the default, is not recorded
    assert semconv.OUTPUT_TYPE not in a
    assert a[semconv.RESPONSE_ID] == result.id
    assert a[semconv.RESPONSE_MODEL] == result.model == sim_rules.DATED_MODELS[MODEL]
    assert list(a[semconv.RESPONSE_FINISH_REASONS]) == ["stop"]
    assert a[semconv.OPENAI_API_TYPE] == "chat_completions"
    assert a[semconv.OPENAI_RESPONSE_SYSTEM_FINGERPRINT] == result.system_fingerprint == sim_rules.SYSTEM_FINGERPRINT
    assert a[semconv.OPENAI_RESPONSE_SERVICE_TIER] == result.service_tier
    assert a[semconv.OPENAI_REQUEST_SERVICE_TIER] == "default"
    assert semconv.SYSTEM not in a  # the deprecated attribute is opt-in only
    assert_chat_usage_matches(span, result.usage)
    # The simulator's own rule agrees with what it reported: the numbers are not made up by us.
    body = last_request(simulator, prompt)["body"]
    assert a[semconv.USAGE_INPUT_TOKENS] == sim_rules.count_prompt_tokens(body)
    assert a[semconv.USAGE_OUTPUT_TOKENS] == sim_rules.count_completion_tokens(result.choices[0].message.content)
    assert a[semconv.USAGE_CACHE_READ_INPUT_TOKENS] == 0


async def test_repeated_prompt_reports_cache_read_tokens(api: Api, instrumented: Any, telemetry: Any) -> None:
    messages = [{"role": "system", "content": "You are terse and helpful."}, *user(unique("cache me"))]
    first = await api("chat.completions.create", model=MODEL, messages=messages)
    second = await api("chat.completions.create", model=MODEL, messages=messages)
    spans = telemetry.spans()
    assert len(spans) == 2
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached > 0
    assert attrs(spans[0])[semconv.USAGE_CACHE_READ_INPUT_TOKENS] == 0
    assert attrs(spans[1])[semconv.USAGE_CACHE_READ_INPUT_TOKENS] == cached
    assert_chat_usage_matches(spans[1], second.usage)


async def test_reasoning_model_reports_reasoning_tokens(api: Api, instrumented: Any, telemetry: Any) -> None:
    result = await api("chat.completions.create", model="o3-mini", messages=user(unique("think")))
    span = telemetry.span()
    assert span.name == "chat o3-mini"
    reasoning = result.usage.completion_tokens_details.reasoning_tokens
    assert reasoning == sim_rules.REASONING_TOKENS
    assert attrs(span)[semconv.USAGE_REASONING_OUTPUT_TOKENS] == reasoning
    # Output tokens include reasoning tokens, as the conventions define them.
    assert attrs(span)[semconv.USAGE_OUTPUT_TOKENS] == result.usage.completion_tokens
    assert_chat_usage_matches(span, result.usage)


async def test_json_response_format_sets_output_type(api: Api, instrumented: Any, telemetry: Any) -> None:
    result = await api(
        "chat.completions.create",
        model=MODEL,
        messages=user(unique("json please")),
        response_format={"type": "json_object"},
    )
    json.loads(result.choices[0].message.content)
    assert attrs(telemetry.span())[semconv.OUTPUT_TYPE] == "json"


async def test_several_choices(api: Api, instrumented: Any, telemetry: Any) -> None:
    result = await api("chat.completions.create", model=MODEL, messages=user(unique("three")), n=3)
    a = attrs(telemetry.span())
    assert len(result.choices) == 3
    assert a[semconv.REQUEST_CHOICE_COUNT] == 3
    assert list(a[semconv.RESPONSE_FINISH_REASONS]) == [c.finish_reason for c in result.choices]
    assert len(a[semconv.RESPONSE_FINISH_REASONS]) == 3
    assert a[semconv.USAGE_OUTPUT_TOKENS] == result.usage.completion_tokens


async def test_tool_calls(api: Api, instrumented: Any, telemetry: Any) -> None:
    result = await api(
        "chat.completions.create",
        model=MODEL,
        messages=user(unique("weather in Paris")),
        tools=[WEATHER_TOOL],
    )
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls[0].function.name == "get_weather"
    a = attrs(telemetry.span())
    assert list(a[semconv.RESPONSE_FINISH_REASONS]) == ["tool_calls"]
    assert_chat_usage_matches(telemetry.span(), result.usage)


class CityWeather(pydantic.BaseModel):
    city: str
    temperature_c: float
    sunny: bool


async def test_parse_with_pydantic_model(api: Api, instrumented: Any, telemetry: Any) -> None:
    result = await api(
        "chat.completions.parse",
        model=MODEL,
        messages=user(unique("weather as JSON")),
        response_format=CityWeather,
    )
    assert isinstance(result.choices[0].message.parsed, CityWeather)
    span = telemetry.span()
    assert span.name == "chat gpt-4o-mini"
    a = attrs(span)
    assert a[semconv.OUTPUT_TYPE] == "json"
    assert a[semconv.RESPONSE_ID] == result.id
    assert_chat_usage_matches(span, result.usage)


# -- other APIs ------------------------------------------------------------------------------------


async def test_responses_create(api: Api, instrumented: Any, telemetry: Any) -> None:
    prompt = unique("responses api")
    first = await api("responses.create", model="o3-mini", input=prompt, max_output_tokens=200, temperature=0.3)
    second = await api("responses.create", model="o3-mini", input=prompt, max_output_tokens=200, temperature=0.3)
    spans = telemetry.spans()
    assert [s.name for s in spans] == ["chat o3-mini", "chat o3-mini"]
    for span, result in zip(spans, (first, second), strict=True):
        a = attrs(span)
        assert span.kind is SpanKind.CLIENT
        assert a[semconv.OPERATION_NAME] == "chat"
        assert a[semconv.OPENAI_API_TYPE] == "responses"
        assert a[semconv.REQUEST_MAX_TOKENS] == 200
        assert a[semconv.REQUEST_TEMPERATURE] == pytest.approx(0.3)
        assert a[semconv.RESPONSE_ID] == result.id
        assert a[semconv.RESPONSE_MODEL] == result.model
        assert list(a[semconv.RESPONSE_FINISH_REASONS]) == ["stop"]
        assert a[semconv.OPENAI_RESPONSE_SERVICE_TIER] == result.service_tier
        expected = {
            semconv.USAGE_INPUT_TOKENS: result.usage.input_tokens,
            semconv.USAGE_OUTPUT_TOKENS: result.usage.output_tokens,
            semconv.USAGE_CACHE_READ_INPUT_TOKENS: result.usage.input_tokens_details.cached_tokens,
            semconv.USAGE_REASONING_OUTPUT_TOKENS: result.usage.output_tokens_details.reasoning_tokens,
        }
        assert usage_attributes(span) == with_cache_writes(expected, result.usage.input_tokens_details)
        assert a[semconv.USAGE_SOURCE] == semconv.USAGE_SOURCE_REPORTED
    assert attrs(spans[1])[semconv.USAGE_CACHE_READ_INPUT_TOKENS] > 0
    assert attrs(spans[0])[semconv.USAGE_REASONING_OUTPUT_TOKENS] == sim_rules.REASONING_TOKENS


async def test_embeddings(api: Api, instrumented: Any, telemetry: Any) -> None:
    texts = [unique("embed one"), unique("embed two")]
    result = await api("embeddings.create", model="text-embedding-3-small", input=texts)
    span = telemetry.span()
    a = attrs(span)
    assert span.name == "embeddings text-embedding-3-small"
    assert span.kind is SpanKind.CLIENT
    assert a[semconv.OPERATION_NAME] == "embeddings"
    assert a[semconv.PROVIDER_NAME] == "openai"
    assert a[semconv.USAGE_INPUT_TOKENS] == result.usage.prompt_tokens
    assert semconv.USAGE_OUTPUT_TOKENS not in a
    assert a[semconv.EMBEDDINGS_DIMENSION_COUNT] == len(result.data[0].embedding)
    assert a[semconv.EMBEDDINGS_DIMENSION_COUNT] == sim_rules.DEFAULT_EMBEDDING_DIMENSIONS
    assert semconv.REQUEST_ENCODING_FORMATS not in a  # the application passed none


async def test_embeddings_encoding_format_and_dimensions(api: Api, instrumented: Any, telemetry: Any) -> None:
    result = await api(
        "embeddings.create",
        model="text-embedding-3-small",
        input=unique("embed me"),
        encoding_format="float",
        dimensions=16,
    )
    a = attrs(telemetry.span())
    assert len(result.data[0].embedding) == 16
    assert list(a[semconv.REQUEST_ENCODING_FORMATS]) == ["float"]
    assert a[semconv.EMBEDDINGS_DIMENSION_COUNT] == 16


async def test_legacy_completions(api: Api, instrumented: Any, telemetry: Any) -> None:
    result = await api(
        "completions.create", model="gpt-3.5-turbo-instruct", prompt=unique("complete this"), max_tokens=30
    )
    span = telemetry.span()
    a = attrs(span)
    assert span.name == "text_completion gpt-3.5-turbo-instruct"
    assert a[semconv.OPERATION_NAME] == "text_completion"
    assert a[semconv.REQUEST_MAX_TOKENS] == 30
    assert a[semconv.RESPONSE_ID] == result.id
    assert list(a[semconv.RESPONSE_FINISH_REASONS]) == ["stop"]
    assert a[semconv.USAGE_INPUT_TOKENS] == result.usage.prompt_tokens
    assert a[semconv.USAGE_OUTPUT_TOKENS] == result.usage.completion_tokens


async def test_with_raw_response(api: Api, instrumented: Any, telemetry: Any) -> None:
    raw = await api("chat.completions.with_raw_response.create", model=MODEL, messages=user(unique("raw")))
    assert raw.headers.get("x-request-id", "").startswith("req_")
    completion = await resolve(raw.parse())
    assert isinstance(completion, openai.types.chat.ChatCompletion)
    span = telemetry.span()  # exactly one, already ended
    a = attrs(span)
    assert a[semconv.RESPONSE_ID] == completion.id
    assert_chat_usage_matches(span, completion.usage)
    await resolve(raw.parse())  # parsing again records nothing more
    assert len(telemetry.spans()) == 1


def test_with_streaming_response_non_stream_sync(client: Any, instrumented: Any, telemetry: Any) -> None:
    with client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=user(unique("streaming response"))
    ) as response:
        assert response.headers.get("x-request-id", "").startswith("req_")
        completion = response.parse()
    span = telemetry.span()
    assert attrs(span)[semconv.RESPONSE_ID] == completion.id
    assert_chat_usage_matches(span, completion.usage)


async def test_with_streaming_response_non_stream_async(aclient: Any, instrumented: Any, telemetry: Any) -> None:
    async with aclient.chat.completions.with_streaming_response.create(
        model=MODEL, messages=user(unique("streaming response"))
    ) as response:
        completion = await response.parse()
    span = telemetry.span()
    assert attrs(span)[semconv.RESPONSE_ID] == completion.id
    assert_chat_usage_matches(span, completion.usage)


class StartRecorder(SpanProcessor):
    """What a head sampler would see: the attributes a span has when it starts."""

    def __init__(self) -> None:
        self.started: list[dict[str, Any]] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.started.append(dict(span.attributes or {}))


async def test_sampling_attributes_present_at_start(
    api: Api, instrumented: Any, telemetry: Any, simulator: Any
) -> None:
    processor = StartRecorder()
    telemetry.tracer_provider.add_span_processor(processor)
    await api("chat.completions.create", model=MODEL, messages=user(unique("start attributes")))
    await api("embeddings.create", model="text-embedding-3-small", input="start")
    assert len(processor.started) == 2
    expected = (("chat", MODEL), ("embeddings", "text-embedding-3-small"))
    for started, (operation, model) in zip(processor.started, expected, strict=True):
        assert started[semconv.OPERATION_NAME] == operation
        assert started[semconv.PROVIDER_NAME] == "openai"
        assert started[semconv.REQUEST_MODEL] == model
        assert started[semconv.SERVER_ADDRESS] == "127.0.0.1"
        assert started[semconv.SERVER_PORT] == simulator.port
        assert semconv.RESPONSE_ID not in started  # response attributes come at the end


async def test_span_is_current_during_the_http_request(simulator: Any, instrumented: Any, telemetry: Any) -> None:
    """HTTP-level instrumentation (and log correlation) inside the SDK call sees the GenAI span."""
    seen: list[Any] = []

    def on_request(request: Any) -> None:
        seen.append(trace.get_current_span().get_span_context())

    async def on_async_request(request: Any) -> None:
        on_request(request)

    tracer = telemetry.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("app operation") as parent:
        http = openai.DefaultHttpxClient(event_hooks={"request": [on_request]})
        with openai.OpenAI(base_url=simulator.base_url, api_key="sk-test", max_retries=0, http_client=http) as c:
            c.chat.completions.create(model=MODEL, messages=user(unique("current span")))
        ahttp = openai.DefaultAsyncHttpxClient(event_hooks={"request": [on_async_request]})
        async with openai.AsyncOpenAI(
            base_url=simulator.base_url, api_key="sk-test", max_retries=0, http_client=ahttp
        ) as ac:
            await ac.embeddings.create(model="text-embedding-3-small", input="current span")
    genai = [s for s in telemetry.spans() if s.name != "app operation"]
    assert len(genai) == 2
    assert [ctx.span_id for ctx in seen] == [s.context.span_id for s in genai]
    for span in genai:
        assert span.parent is not None
        assert span.parent.span_id == parent.get_span_context().span_id
    assert trace.get_current_span() is trace.INVALID_SPAN  # and nothing leaks out of the call


# -- errors ----------------------------------------------------------------------------------------


def duration_points(telemetry: Any) -> list[Any]:
    return telemetry.metrics().get(semconv.METRIC_OPERATION_DURATION, [])


def assert_failed_span(telemetry: Any, error_type: str) -> Any:
    span = telemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)[semconv.ERROR_TYPE] == error_type
    assert semconv.USAGE_INPUT_TOKENS not in attrs(span)  # nothing was billed, nothing is made up
    assert semconv.USAGE_COST_AMOUNT not in attrs(span)
    points = duration_points(telemetry)
    assert len(points) == 1
    assert points[0].attributes[semconv.ERROR_TYPE] == error_type
    assert points[0].count == 1
    return span


@pytest.mark.parametrize(
    ("model", "exception", "error_type"),
    [
        ("error-429", openai.RateLimitError, "openai.RateLimitError"),
        ("error-500", openai.InternalServerError, "openai.InternalServerError"),
        ("error-400", openai.BadRequestError, "openai.BadRequestError"),
        ("drop", openai.APIConnectionError, "openai.APIConnectionError"),
    ],
)
async def test_http_errors(
    api: Api, instrumented: Any, telemetry: Any, model: str, exception: type, error_type: str
) -> None:
    with pytest.raises(exception) as caught:
        await api("chat.completions.create", model=model, messages=user("fail"))
    assert type(caught.value) is exception  # what the application gets is untouched
    span = assert_failed_span(telemetry, error_type)
    assert span.name == f"chat {model}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connection_refused(instrumented: Any, telemetry: Any) -> None:
    base_url = f"http://127.0.0.1:{free_port()}/v1"
    closed = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
    with closed, pytest.raises(openai.APIConnectionError):
        closed.chat.completions.create(model=MODEL, messages=user("nobody home"))
    async with openai.AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0) as aclosed:
        with pytest.raises(openai.APIConnectionError):
            await aclosed.chat.completions.create(model=MODEL, messages=user("nobody home"))
    spans = telemetry.spans()
    assert len(spans) == 2
    for span in spans:
        assert span.status.status_code is StatusCode.ERROR
        assert attrs(span)[semconv.ERROR_TYPE] == "openai.APIConnectionError"
    assert all(p.attributes[semconv.ERROR_TYPE] == "openai.APIConnectionError" for p in duration_points(telemetry))


async def test_timeout(api: Api, instrumented: Any, telemetry: Any) -> None:
    with pytest.raises(openai.APITimeoutError):
        await api(
            "chat.completions.create",
            model="slow",
            messages=user("take your time"),
            timeout=0.2,
            extra_headers={"x-sim-delay": "1"},
        )
    assert_failed_span(telemetry, "openai.APITimeoutError")


async def test_sdk_retry_is_one_span(simulator: Any, instrumented: Any, telemetry: Any) -> None:
    fault_id = uuid.uuid4().hex
    headers = {"x-sim-fault": "error-500", "x-sim-fault-once": fault_id}
    with openai.OpenAI(base_url=simulator.base_url, api_key="sk-test", max_retries=1) as retrying:
        result = retrying.chat.completions.create(model=MODEL, messages=user(unique("retry")), extra_headers=headers)
    attempts = [r for r in simulator.requests if r["headers"].get("x-sim-fault-once") == fault_id]
    assert len(attempts) == 2  # the SDK really did retry
    span = telemetry.span()
    assert span.status.status_code is StatusCode.UNSET
    assert semconv.ERROR_TYPE not in attrs(span)
    assert attrs(span)[semconv.RESPONSE_ID] == result.id
    [point] = duration_points(telemetry)
    assert semconv.ERROR_TYPE not in point.attributes


# -- providers -------------------------------------------------------------------------------------


def test_azure_client_provider(simulator: Any, instrumented: Any, telemetry: Any) -> None:
    with openai.AzureOpenAI(
        azure_endpoint=simulator.azure_endpoint, api_key="az-test", api_version="2024-10-21", max_retries=0
    ) as azure:
        result = azure.chat.completions.create(model=MODEL, messages=user(unique("azure")))
    assert last_request(simulator, "azure")["path"].startswith("/openai/")
    span = telemetry.span()
    a = attrs(span)
    assert a[semconv.PROVIDER_NAME] == "azure.ai.openai"
    assert a[semconv.SERVER_ADDRESS] == "127.0.0.1"
    assert a[semconv.SERVER_PORT] == simulator.port
    assert_chat_usage_matches(span, result.usage)


async def test_async_azure_client_provider(simulator: Any, instrumented: Any, telemetry: Any) -> None:
    async with openai.AsyncAzureOpenAI(
        azure_endpoint=simulator.azure_endpoint, api_key="az-test", api_version="2024-10-21", max_retries=0
    ) as azure:
        await azure.embeddings.create(model="text-embedding-3-small", input="azure embeddings")
    assert attrs(telemetry.span())[semconv.PROVIDER_NAME] == "azure.ai.openai"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.openai.com/v1", Endpoint("openai", "api.openai.com", 443)),
        (
            "https://my-resource.openai.azure.com/openai",
            Endpoint("azure.ai.openai", "my-resource.openai.azure.com", 443),
        ),
        ("https://api.groq.com/openai/v1", Endpoint("groq", "api.groq.com", 443)),
        ("https://api.together.xyz/v1", Endpoint("together", "api.together.xyz", 443)),
        ("https://api.deepseek.com", Endpoint("deepseek", "api.deepseek.com", 443)),
        ("https://openrouter.ai/api/v1", Endpoint("openrouter", "openrouter.ai", 443)),
        ("http://localhost:11434/v1", Endpoint("ollama", "localhost", 11434)),
        ("http://127.0.0.1:8000/v1", Endpoint("openai", "127.0.0.1", 8000)),
        ("http://proxy.internal/v1", Endpoint("openai", "proxy.internal", 80)),
        ("https://API.OpenAI.com:8443/v1", Endpoint("openai", "api.openai.com", 8443)),
    ],
)
def test_endpoint_for_url(url: str, expected: Endpoint) -> None:
    assert endpoint_for_url(url) == expected


def test_endpoint_for_url_azure_client_and_user_hosts() -> None:
    assert endpoint_for_url("http://127.0.0.1:9999", azure_client=True).provider == "azure.ai.openai"
    hosts = (("gpu-box:8000", "vllm"), ("llm.internal", "vllm"))
    assert endpoint_for_url("http://gpu-box:8000/v1", user_hosts=hosts) == Endpoint("vllm", "gpu-box", 8000)
    assert endpoint_for_url("http://gpu-box:9000/v1", user_hosts=hosts).provider == "openai"  # other port
    assert endpoint_for_url("https://a.llm.internal/v1", user_hosts=hosts) == Endpoint("vllm", "a.llm.internal", 443)


def test_provider_hosts_environment_variable(simulator: Any, instrument: Any, telemetry: Any, client: Any) -> None:
    instrument(TOKENTRACE_OPENAI_PROVIDER_HOSTS=f"llm.internal=vllm,127.0.0.1:{simulator.port}=vllm")
    client.chat.completions.create(model="meta-llama/Llama-3.1-8B-Instruct", messages=user(unique("vllm")))
    a = attrs(telemetry.span())
    assert a[semconv.PROVIDER_NAME] == "vllm"
    assert a[semconv.COST_UNAVAILABLE_REASON] == "provider_not_in_catalogue"


# -- content capture -------------------------------------------------------------------------------


def content_attributes(span: Any) -> dict[str, Any]:
    names = (
        semconv.INPUT_MESSAGES,
        semconv.OUTPUT_MESSAGES,
        semconv.SYSTEM_INSTRUCTIONS,
        semconv.TOOL_DEFINITIONS,
    )
    return {name: json.loads(attrs(span)[name]) for name in names if name in attrs(span)}


def test_no_content_by_default(client: Any, instrumented: Any, telemetry: Any) -> None:
    client.chat.completions.create(model=MODEL, messages=user("secret prompt"), tools=[WEATHER_TOOL])
    client.responses.create(model=MODEL, input="secret prompt", instructions="secret instructions")
    for span in telemetry.spans():
        assert content_attributes(span) == {}
        assert not any("secret" in str(value) for value in attrs(span).values())


@pytest.mark.parametrize("mode", ["SPAN_ONLY", "true", "span_only"])
def test_content_on_span(client: Any, instrument: Any, telemetry: Any, mode: str) -> None:
    instrument(**{CAPTURE_ENV: mode})
    prompt = unique("hello capture")
    messages = [{"role": "system", "content": "Be brief."}, *user(prompt)]
    result = client.chat.completions.create(model=MODEL, messages=messages)
    content = content_attributes(telemetry.span())
    assert content[semconv.INPUT_MESSAGES] == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": prompt}]},
    ]
    assert content[semconv.OUTPUT_MESSAGES] == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": result.choices[0].message.content}],
            "finish_reason": "stop",
        }
    ]
    assert semconv.TOOL_DEFINITIONS not in content


def test_content_tool_calls_and_definitions(client: Any, instrument: Any, telemetry: Any) -> None:
    instrument(**{CAPTURE_ENV: "SPAN_ONLY"})
    prompt = unique("weather in Oslo")
    first = client.chat.completions.create(model=MODEL, messages=user(prompt), tools=[WEATHER_TOOL])
    tool_call = first.choices[0].message.tool_calls[0]
    follow_up = [
        *user(prompt),
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": tool_call.id, "content": "12 degrees and sunny"},
    ]
    second = client.chat.completions.create(model=MODEL, messages=follow_up, tools=[WEATHER_TOOL])
    first_span, second_span = telemetry.spans()
    content = content_attributes(first_span)
    assert content[semconv.TOOL_DEFINITIONS] == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Weather for a city.",
            "parameters": WEATHER_TOOL["function"]["parameters"],
        }
    ]
    assert content[semconv.OUTPUT_MESSAGES] == [
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": tool_call.id,
                    "name": "get_weather",
                    "arguments": json.loads(tool_call.function.arguments),
                }
            ],
            "finish_reason": "tool_calls",
        }
    ]
    inputs = content_attributes(second_span)[semconv.INPUT_MESSAGES]
    assert [m["role"] for m in inputs] == ["user", "assistant", "tool"]
    assert inputs[1]["parts"] == [
        {
            "type": "tool_call",
            "id": tool_call.id,
            "name": "get_weather",
            "arguments": json.loads(tool_call.function.arguments),
        }
    ]
    assert inputs[2]["parts"] == [
        {"type": "tool_call_response", "id": tool_call.id, "response": "12 degrees and sunny"}
    ]
    output = content_attributes(second_span)[semconv.OUTPUT_MESSAGES]
    assert output[0]["parts"] == [{"type": "text", "content": second.choices[0].message.content}]


def test_content_responses_instructions(client: Any, instrument: Any, telemetry: Any) -> None:
    instrument(**{CAPTURE_ENV: "SPAN_ONLY"})
    prompt = unique("summarise")
    result = client.responses.create(
        model=MODEL,
        input=prompt,
        instructions="Answer in one line.",
        tools=[RESPONSES_WEATHER_TOOL],
        tool_choice="none",
    )
    content = content_attributes(telemetry.span())
    assert content[semconv.SYSTEM_INSTRUCTIONS] == [{"type": "text", "content": "Answer in one line."}]
    assert content[semconv.INPUT_MESSAGES] == [{"role": "user", "parts": [{"type": "text", "content": prompt}]}]
    assert content[semconv.OUTPUT_MESSAGES] == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": result.output_text}],
            "finish_reason": "stop",
        }
    ]
    assert content[semconv.TOOL_DEFINITIONS][0]["name"] == "get_weather"


@pytest.fixture
def logs(telemetry: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``logs(mode)``: instrument with content capture ``mode`` and an SDK LoggerProvider; returns
    the provider's in-memory exporter."""
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs import export as log_export

    from tokentrace.instrumentation.openai import OpenAIInstrumentor

    exporter_cls = getattr(log_export, "InMemoryLogRecordExporter", None) or log_export.InMemoryLogExporter
    processor_cls = log_export.SimpleLogRecordProcessor
    instrumentor = OpenAIInstrumentor()

    def _instrument(mode: str) -> Any:
        monkeypatch.setenv(CAPTURE_ENV, mode)
        exporter = exporter_cls()
        provider = LoggerProvider()
        provider.add_log_record_processor(processor_cls(exporter))
        instrumentor.instrument(
            tracer_provider=telemetry.tracer_provider,
            meter_provider=telemetry.meter_provider,
            logger_provider=provider,
        )
        return exporter

    yield _instrument
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


def finished_logs(exporter: Any) -> list[Any]:
    return [getattr(item, "log_record", item) for item in exporter.get_finished_logs()]


@pytest.mark.parametrize("mode", ["EVENT_ONLY", "SPAN_AND_EVENT"])
def test_content_event(client: Any, logs: Any, telemetry: Any, mode: str) -> None:
    exporter = logs(mode)
    prompt = unique("event capture")
    result = client.chat.completions.create(model=MODEL, messages=user(prompt))
    span = telemetry.span()
    records = finished_logs(exporter)
    assert len(records) == 1
    record = records[0]
    assert record.event_name == CONTENT_EVENT_NAME
    assert record.trace_id == span.context.trace_id
    assert record.span_id == span.context.span_id
    event = dict(record.attributes)
    assert event[semconv.OPERATION_NAME] == "chat"
    assert event[semconv.PROVIDER_NAME] == "openai"
    assert event[semconv.REQUEST_MODEL] == MODEL
    assert json.loads(event[semconv.INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": prompt}]}
    ]
    assert json.loads(event[semconv.OUTPUT_MESSAGES])[0]["parts"] == [
        {"type": "text", "content": result.choices[0].message.content}
    ]
    on_span = content_attributes(span)
    if mode == "EVENT_ONLY":
        assert on_span == {}
    else:
        assert on_span[semconv.INPUT_MESSAGES] == json.loads(event[semconv.INPUT_MESSAGES])
        assert on_span[semconv.OUTPUT_MESSAGES] == json.loads(event[semconv.OUTPUT_MESSAGES])


def test_span_only_emits_no_event(client: Any, logs: Any, telemetry: Any) -> None:
    exporter = logs("SPAN_ONLY")
    client.chat.completions.create(model=MODEL, messages=user(unique("no event")))
    assert finished_logs(exporter) == []
    assert semconv.INPUT_MESSAGES in attrs(telemetry.span())


async def test_streamed_content_is_rebuilt(api: Api, instrument: Any, telemetry: Any) -> None:
    instrument(**{CAPTURE_ENV: "SPAN_ONLY"})
    prompt = unique("stream capture")
    chunks = await api.collect(await api("chat.completions.create", model=MODEL, messages=user(prompt), stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == sim_rules.reply_text(prompt)
    content = content_attributes(telemetry.span())
    assert content[semconv.OUTPUT_MESSAGES] == [
        {"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": "stop"}
    ]


async def test_streamed_tool_calls_are_rebuilt(api: Api, instrument: Any, telemetry: Any) -> None:
    instrument(**{CAPTURE_ENV: "SPAN_ONLY"})
    prompt = unique("stream weather")
    chunks = await api.collect(
        await api(
            "chat.completions.create",
            model=MODEL,
            messages=user(prompt),
            tools=[WEATHER_TOOL],
            stream=True,
            n=2,
        )
    )
    arguments: dict[int, str] = {}
    ids: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for tool_call in choice.delta.tool_calls or ():
                if tool_call.id:
                    ids[choice.index] = tool_call.id
                arguments[choice.index] = arguments.get(choice.index, "") + (tool_call.function.arguments or "")
    assert len(chunks) > 4  # the arguments really arrived in pieces
    assert sorted(ids) == [0, 1]
    span = telemetry.span()
    assert list(attrs(span)[semconv.RESPONSE_FINISH_REASONS]) == ["tool_calls", "tool_calls"]
    assert content_attributes(span)[semconv.OUTPUT_MESSAGES] == [
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": ids[i],
                    "name": "get_weather",
                    "arguments": json.loads(arguments[i]),
                }
            ],
            "finish_reason": "tool_calls",
        }
        for i in (0, 1)
    ]


# -- settings --------------------------------------------------------------------------------------


def recorded_span(telemetry: Any, environ: dict[str, str], usage: dict[str, int]) -> Any:
    """Record one call through a Recorder built from ``environ`` (the OpenAI path never reports
    cache creation tokens, so this is how the name switch is reached)."""
    recorder = Recorder(
        "tokentrace.test",
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        settings=Settings.from_environment(environ),
    )
    call = GenAICall("chat", "anthropic", "claude-sonnet-4-5", server_address="api.anthropic.com", server_port=443)
    for key, value in usage.items():
        setattr(call.usage, key, value)
    recorder.start(call)
    recorder.finish(call)
    return telemetry.spans()[-1]


def test_cache_creation_attribute_name_follows_opt_in(telemetry: Any) -> None:
    usage = {"input_tokens": 120, "output_tokens": 8, "cache_creation_input_tokens": 100}
    released = attrs(recorded_span(telemetry, {}, usage))
    assert released["gen_ai.usage.cache_creation.input_tokens"] == 100
    assert "gen_ai.usage.cache_write.input_tokens" not in released
    development = attrs(
        recorded_span(telemetry, {"OTEL_SEMCONV_STABILITY_OPT_IN": "http, gen_ai_latest_experimental"}, usage)
    )
    assert development[semconv.DEVELOPMENT.usage_cache_creation_input_tokens] == 100
    assert development["gen_ai.usage.cache_write.input_tokens"] == 100
    assert "gen_ai.usage.cache_creation.input_tokens" not in development
    for a in (released, development):
        assert a[semconv.USAGE_INPUT_TOKENS] == 120  # the other names do not move


def test_emit_legacy_gen_ai_system(client: Any, instrument: Any, telemetry: Any) -> None:
    instrument(TOKENTRACE_EMIT_GEN_AI_SYSTEM="true")
    client.chat.completions.create(model=MODEL, messages=user(unique("system attribute")))
    a = attrs(telemetry.span())
    assert a[semconv.SYSTEM] == "openai"
    assert a[semconv.PROVIDER_NAME] == "openai"


def visible(chunks: list[Any]) -> list[tuple[Any, ...]]:
    """What the application sees of a chat stream, without the per-request ids."""
    return [
        tuple((c.index, c.delta.content, c.finish_reason) for c in chunk.choices) or ("usage", chunk.usage)
        for chunk in chunks
    ]


async def test_stream_include_usage(api: Api, instrument: Any, telemetry: Any, simulator: Any) -> None:
    prompt = unique("include usage")
    plain = await api.collect(await api("chat.completions.create", model=MODEL, messages=user(prompt), stream=True))
    assert telemetry.spans() == []  # not instrumented yet

    instrument(TOKENTRACE_STREAM_INCLUDE_USAGE="true")
    traced = await api.collect(await api("chat.completions.create", model=MODEL, messages=user(prompt), stream=True))
    sent = last_request(simulator, prompt)["body"]
    assert sent["stream_options"] == {"include_usage": True}
    assert visible(traced) == visible(plain)  # the usage-only chunk we asked for is not shown
    assert all(chunk.choices for chunk in traced)
    span = telemetry.span()
    a = attrs(span)
    assert a[semconv.USAGE_SOURCE] == semconv.USAGE_SOURCE_REPORTED
    assert a[semconv.USAGE_INPUT_TOKENS] == sim_rules.count_prompt_tokens(sent)
    assert a[semconv.USAGE_OUTPUT_TOKENS] == sim_rules.count_completion_tokens(sim_rules.reply_text(prompt))
    assert a[semconv.STREAM_CHUNKS] == len(traced)  # what the application received


async def test_stream_include_usage_requested_by_app(api: Api, instrument: Any, telemetry: Any) -> None:
    instrument(TOKENTRACE_STREAM_INCLUDE_USAGE="true")
    chunks = await api.collect(
        await api(
            "chat.completions.create",
            model=MODEL,
            messages=user(unique("app wants usage")),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None  # the application asked for it, so it sees it
    a = attrs(telemetry.span())
    assert a[semconv.USAGE_OUTPUT_TOKENS] == chunks[-1].usage.completion_tokens
    assert a[semconv.USAGE_SOURCE] == semconv.USAGE_SOURCE_REPORTED
