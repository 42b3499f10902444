"""The simulator's Anthropic surfaces, pinned down with the real SDK and raw HTTP (no instrumentation).

Other Anthropic tests and the demo trust these wire shapes: Messages JSON and SSE (every event type),
Bedrock's AWS event-stream framing, Vertex rawPredict, error envelopes, headers and cache usage.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any

import anthropic
import pytest
from botocore.eventstream import EventStreamBuffer

from tests.providers import test_anthropic_support as support
from tests.providers.test_anthropic_support import (
    BEDROCK_MODEL,
    MESSAGES,
    MODEL,
    VERTEX_MODEL,
    WEATHER_TOOL,
    make_client,
)
from tokentrace.demo.simulator import (
    MIDSTREAM_CHUNKS,
    THINKING_PREFIX,
    anthropic_route_of,
    count_anthropic_input_tokens,
    count_completion_tokens,
    reply_text,
)

sim = support.sim


def _post(sim: Any, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        f"http://{sim.host}:{sim.port}{path}",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def _sse(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in data.decode().strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_json_message_and_headers(sim) -> None:
    body = {"model": MODEL, "max_tokens": 100, "messages": MESSAGES}
    status, headers, raw = _post(sim, "/v1/messages", body)
    assert status == 200
    message = json.loads(raw)
    text = reply_text(MESSAGES[0]["content"])
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"] == [{"type": "text", "text": text}]
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["input_tokens"] == count_anthropic_input_tokens(body)
    assert message["usage"]["output_tokens"] == count_completion_tokens(text)
    assert message["usage"]["cache_creation_input_tokens"] == message["usage"]["cache_read_input_tokens"] == 0
    assert headers["request-id"].startswith("req_")
    for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
        for field in ("limit", "remaining", "reset"):
            assert f"anthropic-ratelimit-{kind}-{field}" in headers


def test_sse_every_event_type(sim) -> None:
    body = {
        "model": MODEL,
        "max_tokens": 100,
        "stream": True,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tools": [WEATHER_TOOL],
        "messages": [{"role": "user", "content": "Weather in Oslo?"}],
    }
    status, headers, raw = _post(sim, "/v1/messages", body)
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = _sse(raw)
    names = [name for name, _ in events]
    assert all(name == data["type"] for name, data in events)
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert "ping" in names
    deltas = [data["delta"]["type"] for name, data in events if name == "content_block_delta"]
    assert {"thinking_delta", "signature_delta", "input_json_delta"} <= set(deltas)
    starts = [data["content_block"]["type"] for name, data in events if name == "content_block_start"]
    assert starts == ["thinking", "tool_use"]
    assert names.count("content_block_stop") == 2
    start_usage = events[0][1]["message"]["usage"]
    final = events[-2][1]
    assert start_usage["output_tokens"] == 1  # the placeholder
    assert final["usage"]["output_tokens"] > 1
    assert final["delta"]["stop_reason"] == "tool_use"
    thinking = "".join(
        d["delta"]["thinking"]
        for n, d in events
        if n == "content_block_delta" and d["delta"]["type"] == "thinking_delta"
    )
    assert thinking.startswith(THINKING_PREFIX)
    assert final["usage"]["output_tokens_details"]["thinking_tokens"] == count_completion_tokens(thinking)


def test_midstream_error_event(sim) -> None:
    status, _, raw = _post(
        sim, "/v1/messages", {"model": "midstream-error-x", "max_tokens": 100, "stream": True, "messages": MESSAGES}
    )
    events = _sse(raw)
    assert status == 200
    assert events[-1] == ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert [n for n, _ in events].count("content_block_delta") == MIDSTREAM_CHUNKS


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (404, "not_found_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (529, "overloaded_error"),
    ],
)
def test_error_envelopes(sim, status, kind) -> None:
    code, headers, raw = _post(
        sim, "/v1/messages", {"model": f"error-{status}-x", "max_tokens": 10, "messages": MESSAGES}
    )
    assert code == status
    body = json.loads(raw)
    assert body["type"] == "error" and body["error"]["type"] == kind and body["request_id"] == headers["request-id"]
    if status in (429, 500, 529):
        assert headers["retry-after-ms"]


def test_bad_requests(sim) -> None:
    assert _post(sim, "/v1/messages", {"model": MODEL, "messages": MESSAGES})[0] == 400
    assert _post(sim, "/v1/messages", {"max_tokens": 5, "messages": MESSAGES})[0] == 400


def test_sdk_retry_then_success(sim) -> None:
    client = make_client(sim, max_retries=2)
    message = client.messages.create(
        model=MODEL,
        max_tokens=50,
        messages=MESSAGES,
        extra_headers={"x-sim-fault": "error-529", "x-sim-fault-once": "sim-retry"},
    )
    assert message.stop_reason == "end_turn"


def test_sdk_errors(sim) -> None:
    client = make_client(sim)
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model="error-429-x", max_tokens=10, messages=MESSAGES)
    with pytest.raises(anthropic.APIConnectionError):
        client.messages.create(model="drop-x", max_tokens=10, messages=MESSAGES)
    with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):
        list(client.messages.create(model="midstream-error-x", max_tokens=10, messages=MESSAGES, stream=True))


def test_cache_creation_then_read(sim) -> None:
    client = make_client(sim)
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 50,
        "system": [{"type": "text", "text": "cached system prompt", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "simulator cache test prompt"}],
    }
    first, second = client.messages.create(**kwargs), client.messages.create(**kwargs)
    total = count_anthropic_input_tokens(kwargs)
    assert first.usage.cache_creation_input_tokens == total // 2 and first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens == total // 2 and second.usage.cache_creation_input_tokens == 0
    assert first.usage.input_tokens == second.usage.input_tokens == total - total // 2


def test_max_tokens_truncates(sim) -> None:
    message = make_client(sim).messages.create(model=MODEL, max_tokens=3, messages=MESSAGES)
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 3


def test_bedrock_eventstream_frames(sim) -> None:
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "messages": MESSAGES}
    status, headers, raw = _post(sim, f"/model/{BEDROCK_MODEL}/invoke-with-response-stream", body)
    assert status == 200 and headers["content-type"] == "application/vnd.amazon.eventstream"
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    frames = list(buffer)
    assert {f.headers[":event-type"] for f in frames} == {"chunk"}
    types = [json.loads(base64.b64decode(json.loads(f.payload)["bytes"]))["type"] for f in frames]
    assert types[0] == "message_start" and types[-1] == "message_stop"
    last = json.loads(base64.b64decode(json.loads(frames[-1].payload)["bytes"]))
    assert "amazon-bedrock-invocationMetrics" in last


def test_bedrock_and_vertex_through_sdk(sim) -> None:
    bedrock = make_client(sim, "bedrock").messages.create(model=BEDROCK_MODEL, max_tokens=50, messages=MESSAGES)
    vertex = make_client(sim, "vertex").messages.create(model=VERTEX_MODEL, max_tokens=50, messages=MESSAGES)
    assert bedrock.model == BEDROCK_MODEL and vertex.model == VERTEX_MODEL
    with make_client(sim, "bedrock").messages.stream(model=BEDROCK_MODEL, max_tokens=50, messages=MESSAGES) as stream:
        assert stream.get_final_text() == reply_text(MESSAGES[0]["content"])
    # anthropic<0.4x's Bedrock decoder raises ValueError for an exception frame; newer ones an API error.
    with pytest.raises((anthropic.APIStatusError, ValueError), match="modelStreamErrorException"):
        list(
            make_client(sim, "bedrock").messages.create(
                model="midstream-error-x", max_tokens=10, messages=MESSAGES, stream=True
            )
        )
    with pytest.raises(anthropic.RateLimitError):
        make_client(sim, "vertex").messages.create(model="error-429-x", max_tokens=10, messages=MESSAGES)


def test_routes() -> None:
    assert anthropic_route_of("/v1/messages").flavor == "anthropic"
    assert anthropic_route_of("/v1/messages/count_tokens").count_tokens
    route = anthropic_route_of("/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke")
    assert (route.flavor, route.model, route.stream) == ("bedrock", "anthropic.claude-3-haiku-20240307-v1:0", False)
    route = anthropic_route_of(
        "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-x@1:streamRawPredict"
    )
    assert (route.flavor, route.model, route.stream) == ("vertex", "claude-x@1", True)
    assert anthropic_route_of("/v1/chat/completions") is None
