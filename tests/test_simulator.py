"""The OpenAI simulator, exercised through the real ``openai`` SDK (no instrumentation involved).

Everything else in the suite trusts the simulator to speak OpenAI's wire format, so these tests pin it
down with the SDK's own parsers: strict response validation where the SDK's types allow it, the
streaming helpers, Azure URL rewriting, and the SDK's retry and timeout machinery against each fault.
"""

from __future__ import annotations

import array
import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
from openai.types.responses import ResponseFunctionCallArgumentsDoneEvent
from pydantic import BaseModel

from tokentrace.demo.simulator import (
    DATED_MODELS,
    DEFAULT_EMBEDDING_DIMENSIONS,
    MIDSTREAM_CHUNKS,
    REASONING_TOKENS,
    REPLY_FILLER,
    REPLY_PREFIX,
    Simulator,
    count_completion_tokens,
    count_prompt_tokens,
    embedding_vector,
    reply_text,
)

OPENAI_MAJOR = int(openai.__version__.split(".")[0])
# The live API's ``response.function_call_arguments.done`` has no ``name`` (openai-python#3472; openai 3.9
# dropped the field), but openai 2.x declares it required: that SDK parses the real event only leniently.
_DONE_EVENT_NAME = ResponseFunctionCallArgumentsDoneEvent.model_fields.get("name")
DONE_EVENT_NEEDS_NAME = _DONE_EVENT_NAME is not None and _DONE_EVENT_NAME.is_required()
USER = [{"role": "user", "content": "What is the capital of France?"}]
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the web",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}


class City(BaseModel):
    name: str
    population: int


class Answer(BaseModel):
    city: City
    confidence: float
    sure: bool
    aliases: list[str]
    note: str | None


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(seed=1) as simulator:
        yield simulator


@pytest.fixture
def client(sim: Simulator) -> Iterator[openai.OpenAI]:
    """Strict response validation: a missing or mistyped field fails the test, not just a lookup."""
    with openai.OpenAI(base_url=sim.base_url, api_key="sk-test", max_retries=0, _strict_response_validation=True) as c:
        yield c


@pytest.fixture
def lenient(sim: Simulator) -> Iterator[openai.OpenAI]:
    """For wire shapes the SDK's own types reject under strict validation (base64 embeddings,
    legacy-completion stream chunks with ``finish_reason: null``) although real OpenAI sends them."""
    with openai.OpenAI(base_url=sim.base_url, api_key="sk-test", max_retries=0) as c:
        yield c


def _post(url: str, payload: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(
        url, data=payload, method="POST", headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def _sse_payloads(url: str, payload: bytes) -> list[Any]:
    """The JSON ``data:`` payloads of a streamed answer, exactly as sent on the wire."""
    request = urllib.request.Request(url, data=payload, method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        lines = response.read().decode().splitlines()
    return [json.loads(line[6:]) for line in lines if line.startswith("data: {")]


# ---- chat completions ----------------------------------------------------------------------------------


def test_chat_completion_shape_usage_and_headers(sim: Simulator, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=USER)
    completion = raw.parse()
    expected_text = reply_text(USER[0]["content"])
    assert expected_text == f"{REPLY_PREFIX} What is the capital of France? {REPLY_FILLER}"
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == DATED_MODELS["gpt-4o-mini"] == "gpt-4o-mini-2024-07-18"
    assert completion.system_fingerprint == "fp_sim"
    assert completion.service_tier == "default"
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.index == 0 and choice.finish_reason == "stop"
    assert choice.message.role == "assistant" and choice.message.content == expected_text
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens == count_prompt_tokens({"messages": USER}) == 3 + 6 + 4
    assert usage.completion_tokens == count_completion_tokens(expected_text)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.completion_tokens_details is not None and usage.completion_tokens_details.reasoning_tokens == 0
    assert usage.prompt_tokens_details is not None

    record = sim.requests[-1]
    assert set(record) >= {"path", "method", "headers", "body"}
    assert record["path"] == "/v1/chat/completions" and record["method"] == "POST"
    assert record["headers"]["authorization"] == "Bearer sk-test"
    assert record["body"]["messages"] == USER
    assert raw.headers["x-request-id"] == record["request_id"]
    assert raw.headers["x-ratelimit-limit-requests"] == "10000"
    assert int(raw.headers["x-ratelimit-remaining-requests"]) < 10000
    assert raw.headers["x-ratelimit-reset-requests"] == "6ms"
    for name in ("openai-processing-ms", "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens"):
        assert int(raw.headers[name]) >= 0
    assert raw.headers["x-ratelimit-reset-tokens"].endswith("ms")


def test_undated_model_is_echoed(client: openai.OpenAI) -> None:
    assert client.chat.completions.create(model="my-custom-model", messages=USER).model == "my-custom-model"


def test_chat_n_choices(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="gpt-4o", messages=USER, n=3)
    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert all(c.message.content == reply_text(USER[0]["content"]) for c in completion.choices)
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 3 * count_completion_tokens(reply_text(USER[0]["content"]))


def test_chat_max_tokens_truncates_with_length(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="gpt-4o", messages=USER, max_tokens=3)
    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.content == "Echo: What is"
    assert completion.usage is not None and completion.usage.completion_tokens == 3
    completion = client.chat.completions.create(model="gpt-4o", messages=USER, max_completion_tokens=2)
    assert completion.choices[0].message.content == "Echo: What"


def test_reasoning_model_reports_reasoning_tokens(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="o3-mini", messages=USER)
    assert completion.model == "o3-mini-2025-01-31"
    usage = completion.usage
    assert usage is not None and usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == REASONING_TOKENS
    assert usage.completion_tokens == count_completion_tokens(reply_text(USER[0]["content"])) + REASONING_TOKENS


def test_repeated_prompt_reports_cached_tokens(client: openai.OpenAI) -> None:
    messages = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "cache me please"}]
    first = client.chat.completions.create(model="gpt-4o", messages=messages)
    second = client.chat.completions.create(model="gpt-4o", messages=messages)
    assert first.usage is not None and first.usage.prompt_tokens_details is not None
    assert second.usage is not None and second.usage.prompt_tokens_details is not None
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    assert second.usage.prompt_tokens_details.cached_tokens == second.usage.prompt_tokens // 2 > 0


def test_chat_tool_call_then_text_after_tool_result(client: openai.OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "Find the population of Paris"}]
    first = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[SEARCH_TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.id.startswith("call_") and call.type == "function"
    assert call.function.name == "search"
    assert json.loads(call.function.arguments) == {"query": "Find the population of Paris"}

    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "2.1 million"},
    ]
    second = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[SEARCH_TOOL])
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == reply_text("Find the population of Paris")
    assert second.choices[0].message.tool_calls is None


def test_chat_parse_with_pydantic_model(client: openai.OpenAI) -> None:
    parsed = client.chat.completions.parse(model="gpt-4o", messages=USER, response_format=Answer)
    answer = parsed.choices[0].message.parsed
    assert isinstance(answer, Answer)
    assert answer.city == City(name="x", population=1)
    assert answer.confidence == 1.5 and answer.sure is True and answer.aliases == []


def test_chat_parse_strict_tool_arguments(client: openai.OpenAI) -> None:
    tool = openai.pydantic_function_tool(City, name="lookup_city")
    parsed = client.chat.completions.parse(model="gpt-4o", messages=USER, tools=[tool])
    call = parsed.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.parsed_arguments == City(name="x", population=1)


def test_chat_json_object_mode(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="gpt-4o", messages=USER, response_format={"type": "json_object"})
    assert json.loads(completion.choices[0].message.content or "") == {"reply": reply_text(USER[0]["content"])}


def test_chat_stream_with_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert all(c.model == "gpt-4o-mini-2024-07-18" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    first = chunks[0].choices[0].delta
    assert first.role == "assistant" and first.content == ""
    assert all(c.usage is None for c in chunks[:-1])
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    expected = reply_text(USER[0]["content"])
    assert text == expected
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) == len(expected.split())
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.prompt_tokens == count_prompt_tokens({"messages": USER})
    assert usage.completion_tokens == count_completion_tokens(expected)


def test_chat_stream_without_usage_and_n(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=USER, stream=True, n=2))
    assert all(c.usage is None for c in chunks)
    for index in (0, 1):
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices and c.choices[0].index == index)
        assert text == reply_text(USER[0]["content"])
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason]
    assert finishes == ["stop", "stop"]


def test_chat_stream_tool_call_deltas(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=USER, tools=[SEARCH_TOOL], stream=True))
    first = chunks[0].choices[0].delta
    assert first.role == "assistant" and first.tool_calls is not None
    head = first.tool_calls[0]
    assert head.index == 0 and head.id and head.type == "function"
    assert head.function is not None and head.function.name == "search" and head.function.arguments == ""
    fragments = [c.choices[0].delta.tool_calls[0] for c in chunks[1:] if c.choices[0].delta.tool_calls]
    assert len(fragments) > 1
    assert all(f.id is None and f.function is not None and f.function.name is None for f in fragments)
    arguments = "".join(f.function.arguments or "" for f in fragments if f.function)
    assert json.loads(arguments) == {"query": USER[0]["content"]}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_chat_stream_helper(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(
        model="gpt-4o", messages=USER, stream_options={"include_usage": True}
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(deltas) == reply_text(USER[0]["content"])
    assert final.choices[0].message.content == reply_text(USER[0]["content"])
    assert final.usage is not None and final.usage.total_tokens > 0


def test_stream_closed_early_by_client(capfd: pytest.CaptureFixture[str]) -> None:
    with Simulator(chunk_delay=0.01) as slow_sim:
        client = openai.OpenAI(base_url=slow_sim.base_url, api_key="sk-test", max_retries=0)
        long_prompt = [{"role": "user", "content": "one two three four five six seven eight nine ten"}]
        stream = client.chat.completions.create(model="gpt-4o", messages=long_prompt, stream=True)
        received = [next(stream), next(stream)]
        stream.close()
        assert received[1].choices[0].delta.content == "Echo: "
        time.sleep(0.3)  # let the server hit the closed socket
        after = client.chat.completions.create(model="gpt-4o", messages=USER)
        assert after.choices[0].message.content == reply_text(USER[0]["content"])
        client.close()
    assert "Traceback" not in capfd.readouterr().err


async def test_async_client_create_and_stream(sim: Simulator) -> None:
    async with openai.AsyncOpenAI(base_url=sim.base_url, api_key="sk-test", max_retries=0) as client:
        completion = await client.chat.completions.create(model="gpt-4o", messages=USER)
        assert completion.choices[0].message.content == reply_text(USER[0]["content"])
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=USER, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
        assert (
            "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            == completion.choices[0].message.content
        )
        assert chunks[-1].usage is not None
        response = await client.responses.create(model="gpt-4.1", input="hello async")
        assert response.output_text == reply_text("hello async")
        embedding = await client.embeddings.create(model="text-embedding-3-small", input="async")
        assert embedding.data[0].embedding == pytest.approx(embedding_vector("async"))
    assert sim.requests[-1]["headers"]["x-stainless-async"].startswith("async")


# ---- responses -------------------------------------------------------------------------------------------


def test_responses_create(sim: Simulator, client: openai.OpenAI) -> None:
    body = {"model": "gpt-4.1", "input": "Tell me a joke", "instructions": "Be brief."}
    response = client.responses.create(model="gpt-4.1", input="Tell me a joke", instructions="Be brief.")
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed" and response.model == "gpt-4.1-2025-04-14"
    assert response.output_text == reply_text("Tell me a joke")
    message = response.output[0]
    assert message.type == "message" and message.role == "assistant" and message.status == "completed"
    assert message.content[0].type == "output_text" and message.content[0].annotations == []
    usage = response.usage
    assert usage is not None
    assert usage.input_tokens == count_prompt_tokens(body) == 3 + (2 + 4) + (4 + 4)
    assert usage.output_tokens == count_completion_tokens(reply_text("Tell me a joke"))
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0
    assert sim.requests[-1]["path"] == "/v1/responses"


def test_responses_message_list_input_and_truncation(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="o4-mini",
        input=[
            {"role": "system", "content": "sys"},
            {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        ],
        max_output_tokens=2,
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "Echo: hi"
    assert response.usage is not None
    assert response.usage.output_tokens_details.reasoning_tokens == REASONING_TOKENS
    assert response.usage.output_tokens == 2 + REASONING_TOKENS


def test_responses_raw_stream_events(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="gpt-4.1", input="stream this", stream=True))
    types = [e.type for e in events]
    text = reply_text("stream this")
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * len(text.split()),
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert "".join(e.delta for e in deltas) == text
    assert {(e.item_id, e.output_index, e.content_index) for e in deltas} == {(events[2].item.id, 0, 0)}
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.usage is not None and completed.response.output_text == text


def test_responses_stream_helper(client: openai.OpenAI) -> None:
    with client.responses.stream(model="gpt-4.1", input=[{"role": "user", "content": "helper"}]) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == reply_text("helper") == final.output_text
    assert final.usage is not None and final.usage.total_tokens > 0


def test_responses_function_call_round_trip(sim: Simulator, client: openai.OpenAI, lenient: openai.OpenAI) -> None:
    tools: list[Any] = [
        {
            "type": "function",
            "name": "search",
            "parameters": SEARCH_TOOL["function"]["parameters"],  # type: ignore[index]
            "strict": True,
        }
    ]
    first = client.responses.create(model="gpt-4.1", input="look it up", tools=tools)
    call = first.output[0]
    assert call.type == "function_call" and call.name == "search"
    assert json.loads(call.arguments) == {"query": "look it up"}
    assert first.tools[0].type == "function"

    streaming = lenient if DONE_EVENT_NEEDS_NAME else client
    with streaming.responses.stream(model="gpt-4.1", input="look it up", tools=tools) as stream:
        argument_deltas = [e.delta for e in stream if e.type == "response.function_call_arguments.delta"]
        streamed = stream.get_final_response()
    assert "".join(argument_deltas) == streamed.output[0].arguments  # type: ignore[union-attr]
    assert streamed.output[0].name == "search"  # type: ignore[union-attr]
    payload = json.dumps({"model": "gpt-4.1", "input": "look it up", "tools": tools, "stream": True}).encode()
    done = [e for e in _sse_payloads(f"{sim.base_url}/responses", payload) if e["type"].endswith("arguments.done")]
    assert len(done) == 1 and set(done[0]) == {"type", "sequence_number", "item_id", "output_index", "arguments"}

    follow_up = client.responses.create(
        model="gpt-4.1",
        input=[
            {"role": "user", "content": "look it up"},
            {"type": "function_call", "call_id": call.call_id, "name": "search", "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "found it"},
        ],
        tools=tools,
    )
    assert follow_up.output[0].type == "message"
    assert follow_up.output_text == reply_text("look it up")


def test_responses_parse_text_format(client: openai.OpenAI) -> None:
    parsed = client.responses.parse(model="gpt-4.1", input="structured please", text_format=Answer)
    assert parsed.output_parsed == Answer(
        city=City(name="x", population=1), confidence=1.5, sure=True, aliases=[], note="x"
    )


# ---- embeddings and legacy completions ---------------------------------------------------------------


def test_embeddings_default_float_and_base64(sim: Simulator, lenient: openai.OpenAI) -> None:
    inputs = ["first text", "second"]
    default = lenient.embeddings.create(model="text-embedding-3-small", input=inputs)  # SDK asks for base64
    assert default.object == "list" and default.model == "text-embedding-3-small"
    assert [d.index for d in default.data] == [0, 1]
    assert all(len(d.embedding) == DEFAULT_EMBEDDING_DIMENSIONS for d in default.data)
    assert default.data[0].embedding == embedding_vector("first text")
    assert default.usage.prompt_tokens == default.usage.total_tokens == count_prompt_tokens({"input": inputs})

    floats = lenient.embeddings.create(
        model="text-embedding-3-small", input="first text", encoding_format="float", dimensions=16
    )
    assert sim.requests[-1]["body"]["encoding_format"] == "float"
    assert floats.data[0].embedding == embedding_vector("first text", 16)

    encoded = lenient.embeddings.create(model="text-embedding-3-small", input="first text", encoding_format="base64")
    payload = encoded.data[0].embedding
    assert isinstance(payload, str)
    assert array.array("f", base64.b64decode(payload)).tolist() == default.data[0].embedding


def test_legacy_completions(client: openai.OpenAI, lenient: openai.OpenAI) -> None:
    completion = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hello", n=2, max_tokens=50)
    assert completion.object == "text_completion"
    assert [c.index for c in completion.choices] == [0, 1]
    assert completion.choices[0].text == reply_text("Say hello") and completion.choices[0].logprobs is None
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == count_prompt_tokens({"prompt": "Say hello"})
    assert completion.usage.completion_tokens == 2 * count_completion_tokens(reply_text("Say hello"))

    chunks = list(
        lenient.completions.create(
            model="gpt-3.5-turbo-instruct",
            prompt="Say hello",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == reply_text("Say hello")
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == completion.usage.prompt_tokens + count_completion_tokens(
        reply_text("Say hello")
    )


# ---- Azure ------------------------------------------------------------------------------------------------


def test_azure_deployment_urls(sim: Simulator) -> None:
    azure = openai.AzureOpenAI(
        azure_endpoint=f"http://127.0.0.1:{sim.port}",
        api_version="2024-10-21",
        api_key="x",
        max_retries=0,
        _strict_response_validation=True,
    )
    completion = azure.chat.completions.create(model="my-gpt4o", messages=USER)
    assert completion.model == "my-gpt4o"
    record = sim.requests[-1]
    assert record["path"] == "/openai/deployments/my-gpt4o/chat/completions"
    assert record["query"] == {"api-version": "2024-10-21"}
    assert record["headers"]["api-key"] == "x"

    stream = azure.chat.completions.create(model="my-gpt4o", messages=USER, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == reply_text(USER[0]["content"])
    embeddings = azure.embeddings.create(model="my-embedder", input="x", encoding_format="float")
    assert embeddings.model == "my-embedder"
    assert sim.requests[-1]["path"] == "/openai/deployments/my-embedder/embeddings"
    azure.close()


def test_azure_deployment_name_used_when_body_has_no_model(sim: Simulator) -> None:
    url = f"{sim.azure_endpoint}/openai/deployments/prod-chat/chat/completions?api-version=2024-10-21"
    status, _, body = _post(url, json.dumps({"messages": USER}).encode())
    assert status == 200 and body["model"] == "prod-chat"
    url = f"{sim.azure_endpoint}/openai/deployments/prod-instruct/completions?api-version=2024-10-21"
    status, _, body = _post(url, json.dumps({"prompt": "hi"}).encode())
    assert status == 200 and body["model"] == "prod-instruct"


# ---- faults ---------------------------------------------------------------------------------------------

ERROR_CASES = [
    ("error-429", openai.RateLimitError, 429, "rate_limit_exceeded"),
    ("error-500", openai.InternalServerError, 500, None),
    ("error-400", openai.BadRequestError, 400, "invalid_value"),
    ("error-401", openai.AuthenticationError, 401, "invalid_api_key"),
    ("error-404", openai.NotFoundError, 404, "model_not_found"),
]


@pytest.mark.parametrize(("fault", "exc_type", "status", "code"), ERROR_CASES)
def test_error_faults_by_model_and_header(
    client: openai.OpenAI, fault: str, exc_type: type[openai.APIStatusError], status: int, code: str | None
) -> None:
    with pytest.raises(exc_type) as by_model:
        client.chat.completions.create(model=f"{fault}-gpt-4o", messages=USER)
    with pytest.raises(exc_type) as by_header:
        client.embeddings.create(model="text-embedding-3-small", input="x", extra_headers={"x-sim-fault": fault})
    for info in (by_model, by_header):
        assert info.value.status_code == status
        assert info.value.code == code
        assert info.value.request_id is not None and info.value.request_id.startswith("req_")
    error_type = {429: "requests", 500: "server_error"}.get(status, "invalid_request_error")
    assert by_model.value.type == error_type
    if status == 429:
        assert by_model.value.response.headers["retry-after"] == "0"
        assert by_model.value.body == {
            "message": "Rate limit reached",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
        if OPENAI_MAJOR >= 3:  # openai 3 puts only the error's message in the exception text
            assert by_model.value.message.endswith("Rate limit reached")
        else:  # openai 1.x/2.x: "Error code: 429 - " and the whole parsed body
            assert by_model.value.message == f"Error code: 429 - {{'error': {by_model.value.body!r}}}"


def test_fault_once_is_retried_by_the_sdk(sim: Simulator) -> None:
    client = openai.OpenAI(base_url=sim.base_url, api_key="sk-test", max_retries=1)
    for fault in ("error-429", "error-500", "drop"):
        before = len(sim.requests)
        completion = client.chat.completions.create(
            model="gpt-4o",
            messages=USER,
            extra_headers={"x-sim-fault": fault, "x-sim-fault-once": f"once-{fault}"},
        )
        assert completion.choices[0].message.content == reply_text(USER[0]["content"])
        attempts = sim.requests[before:]
        assert [r["headers"]["x-stainless-retry-count"] for r in attempts] == ["0", "1"]
    client.close()


def test_fault_once_without_retries(client: openai.OpenAI) -> None:
    headers = {"x-sim-fault-once": "manual-once"}
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="error-429", messages=USER, extra_headers=headers)
    completion = client.chat.completions.create(model="error-429", messages=USER, extra_headers=headers)
    assert completion.model == "error-429"


def test_slow_fault_triggers_client_timeout(client: openai.OpenAI) -> None:
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(
            model="gpt-4o",
            messages=USER,
            timeout=0.2,
            extra_headers={"x-sim-fault": "slow", "x-sim-delay": "3"},
        )
    assert time.monotonic() - started < 2.0


def test_slow_fault_answers_after_delay(client: openai.OpenAI) -> None:
    started = time.monotonic()
    completion = client.chat.completions.create(
        model="slow-gpt-4o", messages=USER, extra_headers={"x-sim-delay": "0.2"}
    )
    assert time.monotonic() - started >= 0.2
    assert completion.model == "slow-gpt-4o"


def test_midstream_error_raises_api_error(client: openai.OpenAI) -> None:
    received: list[Any] = []
    with pytest.raises(openai.APIError) as chat_error:
        for chunk in client.chat.completions.create(model="midstream-error", messages=USER, stream=True):
            received.append(chunk)
    assert len(received) == 1 + MIDSTREAM_CHUNKS
    assert chat_error.value.type == "server_error"

    events: list[Any] = []
    with pytest.raises(openai.APIError):
        for event in client.responses.create(
            model="gpt-4.1", input="hi", stream=True, extra_headers={"x-sim-fault": "midstream-error"}
        ):
            events.append(event)
    assert [e.type for e in events][-1] == "response.output_text.delta"

    with pytest.raises(openai.InternalServerError):  # nothing to cut short without a stream
        client.chat.completions.create(model="midstream-error", messages=USER)


def test_drop_fault_is_a_connection_error(sim: Simulator, client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="drop", messages=USER)
    assert client.chat.completions.create(model="gpt-4o", messages=USER).choices


def test_bad_requests(sim: Simulator) -> None:
    status, headers, body = _post(f"{sim.base_url}/chat/completions", b"{not json")
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    assert headers["x-request-id"] == sim.requests[-1]["request_id"]
    assert sim.requests[-1]["body"] is None
    status, _, body = _post(f"{sim.base_url}/unknown", b"{}")
    assert status == 404 and "Invalid URL" in body["error"]["message"]
    status, _, body = _post(f"{sim.base_url}/chat/completions", json.dumps({"model": "gpt-4o"}).encode())
    assert status == 400 and body["error"]["param"] == "messages"
    status, _, body = _post(f"{sim.base_url}/chat/completions", json.dumps({"messages": USER}).encode())
    assert status == 400 and body["error"]["param"] == "model"
    status, _, body = _post(
        f"{sim.base_url}/chat/completions",
        json.dumps({"model": "gpt-4o", "messages": USER}).encode(),
        {"x-sim-fault": "explode"},
    )
    assert status == 400 and body["error"]["code"] == "unknown_fault"
    with urllib.request.urlopen(f"{sim.base_url}/models", timeout=5) as response:
        assert "gpt-4o-mini" in {m["id"] for m in json.loads(response.read())["data"]}


def _statuses(simulator: Simulator, count: int) -> list[int]:
    payload = json.dumps({"model": "gpt-4o", "messages": USER}).encode()
    return [_post(f"{simulator.base_url}/chat/completions", payload)[0] for _ in range(count)]


def test_fault_rate_is_seeded() -> None:
    with Simulator(seed=42, fault_rate=0.5) as one, Simulator(seed=42, fault_rate=0.5) as two:
        first, second = _statuses(one, 30), _statuses(two, 30)
    assert first == second
    assert set(first) == {200, 429, 500}
    with Simulator(seed=42, fault_rate=0.0) as calm:
        assert set(_statuses(calm, 5)) == {200}


def test_latency_and_concurrent_recording() -> None:
    with Simulator(latency=0.05) as sim:
        started = time.monotonic()
        assert _statuses(sim, 1) == [200]
        assert time.monotonic() - started >= 0.03
        client = openai.OpenAI(base_url=sim.base_url, api_key="sk-test", max_retries=0)
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(
                pool.map(
                    lambda i: client.chat.completions.create(
                        model="gpt-4o", messages=[{"role": "user", "content": f"q{i}"}]
                    ),
                    range(16),
                )
            )
        client.close()
    assert {r.choices[0].message.content for r in results} == {reply_text(f"q{i}") for i in range(16)}
    assert len(sim.requests) == 17
    assert len({r["request_id"] for r in sim.requests}) == 17


def test_token_rules() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [{"type": "text", "text": "two words"}]},
        ]
    }
    assert count_prompt_tokens(body) == 3 + (3 + 4) + (2 + 4)
    assert count_prompt_tokens({"input": [[1, 2, 3], [4]]}) == 3 + (3 + 4) + (1 + 4)
    assert count_completion_tokens("a b  c\n") == 3
    assert count_completion_tokens(None) == 0
    assert reply_text("  many   spaces\there ") == f"{REPLY_PREFIX} many spaces here {REPLY_FILLER}"
    assert reply_text("") == f"{REPLY_PREFIX} {REPLY_FILLER}"
    assert reply_text("x" * 100) == f"{REPLY_PREFIX} {'x' * 40} {REPLY_FILLER}"
