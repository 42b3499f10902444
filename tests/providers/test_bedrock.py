"""Bedrock through real boto3/botocore clients against the local Bedrock Runtime server.

Every expectation comes from what the server sent (its ``Reply`` records) or from genai-prices'
own ``calc_price``; the application's view of every result is compared with an uninstrumented run.
"""

from __future__ import annotations

import json
from typing import Any

import botocore.client
import botocore.exceptions
import pytest
from genai_prices import Usage as CatalogueUsage
from genai_prices import calc_price
from opentelemetry.trace import SpanKind, StatusCode

from tests.providers.servers import bedrock as srv
from tests.providers.servers.bedrock import BedrockServer, make_client
from tokentrace.core import semconv
from tokentrace.core.safety import internal_errors
from tokentrace.instrumentation.bedrock import BedrockInstrumentor

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "Say hello from Bedrock."}]}]
SYSTEM = [{"text": "You are terse."}]
CAPTURE = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"}


@pytest.fixture(scope="module")
def server() -> Any:
    with BedrockServer() as running:
        yield running


@pytest.fixture
def client(server: BedrockServer) -> Any:
    server.reset()
    made = make_client(server)
    yield made
    made.close()


@pytest.fixture
def traced(instrument_with: Any) -> Any:
    return instrument_with(BedrockInstrumentor)


def expected_cost(model: str, reply: srv.Reply) -> float:
    usage = CatalogueUsage(
        input_tokens=reply.input_tokens + (reply.cache_read or 0) + (reply.cache_write or 0),
        output_tokens=reply.output_tokens,
        cache_read_tokens=reply.cache_read,
        cache_write_tokens=reply.cache_write,
    )
    return float(calc_price(usage, model, provider_id="aws").total_price)


def input_total(reply: srv.Reply) -> int:
    return reply.input_tokens + (reply.cache_read or 0) + (reply.cache_write or 0)


# -- Converse --------------------------------------------------------------------------------------------


def test_converse_span_has_every_attribute(server: BedrockServer, client: Any, telemetry: Any, traced: Any) -> None:
    result = client.converse(
        modelId=HAIKU,
        messages=MESSAGES,
        system=SYSTEM,
        inferenceConfig={"maxTokens": 64, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]},
        additionalModelRequestFields={"top_k": 40},
        guardrailConfig={"guardrailIdentifier": "gr-123", "guardrailVersion": "1"},
    )
    (reply,) = server.replies
    assert result["usage"]["inputTokens"] == reply.input_tokens
    span = telemetry.span()
    assert span.name == f"chat {HAIKU}"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    attributes = dict(span.attributes)
    cost = attributes.pop(semconv.USAGE_COST_AMOUNT)
    assert cost == pytest.approx(expected_cost(HAIKU, reply), abs=1e-9)
    assert attributes.pop(semconv.COST_INPUT) + attributes.pop(semconv.COST_OUTPUT) == pytest.approx(cost, abs=1e-12)
    assert attributes.pop(semconv.COST_PRICING_VERSION).startswith("genai-prices ")
    # botocore's HTTP attempts (tokentrace/instrumentation/_botocore_http.py; tests/providers/test_bedrock_health.py)
    http = {k: attributes.pop(k) for k in list(attributes) if k.startswith(("tokentrace.http.", "tokentrace.api_key."))}
    assert http.pop("tokentrace.api_key.alias").startswith("key-")
    assert http == {
        "tokentrace.http.attempts": 1,
        "tokentrace.http.retry_wait": 0,
        "tokentrace.http.failed_attempts.duration": 0,
    }
    assert attributes.pop("tokentrace.request_id") == "req-0001"
    assert attributes == {
        semconv.OPERATION_NAME: "chat",
        semconv.PROVIDER_NAME: "aws.bedrock",
        semconv.REQUEST_MODEL: HAIKU,
        semconv.SERVER_ADDRESS: "127.0.0.1",
        semconv.SERVER_PORT: server.port,
        semconv.REQUEST_STREAM: False,
        semconv.REQUEST_MAX_TOKENS: 64,
        semconv.REQUEST_TEMPERATURE: 0.2,
        semconv.REQUEST_TOP_P: 0.9,
        semconv.REQUEST_TOP_K: 40.0,
        semconv.REQUEST_STOP_SEQUENCES: ("END",),
        semconv.AWS_BEDROCK_GUARDRAIL_ID: "gr-123",
        semconv.AWS_REQUEST_ID: "req-0001",
        semconv.RESPONSE_FINISH_REASONS: ("end_turn",),
        semconv.USAGE_INPUT_TOKENS: input_total(reply),  # the conventions count cache reads and writes as input
        semconv.USAGE_OUTPUT_TOKENS: reply.output_tokens,
        semconv.USAGE_CACHE_READ_INPUT_TOKENS: reply.cache_read,
        "gen_ai.usage.cache_creation.input_tokens": reply.cache_write,
        semconv.USAGE_SOURCE: "reported",
        semconv.USAGE_COST_CURRENCY: "USD",
        semconv.USAGE_COST_SOURCE: "local",
        semconv.COST_PRICING_MODEL: "regional.anthropic.claude-3-haiku-20240307-v1:0",
    }
    assert semconv.INPUT_MESSAGES not in attributes  # content capture is off by default


def test_converse_metrics(server: BedrockServer, client: Any, telemetry: Any, traced: Any) -> None:
    client.converse(modelId=HAIKU, messages=MESSAGES)
    (reply,) = server.replies
    points = telemetry.metrics()
    (duration,) = points[semconv.METRIC_OPERATION_DURATION]
    assert duration.count == 1
    assert duration.attributes[semconv.PROVIDER_NAME] == "aws.bedrock"
    assert duration.attributes[semconv.SERVER_PORT] == server.port
    tokens = {p.attributes[semconv.TOKEN_TYPE]: p.sum for p in points[semconv.METRIC_TOKEN_USAGE]}
    assert tokens == {"input": input_total(reply), "output": reply.output_tokens}
    (cost,) = points[semconv.METRIC_COST]
    assert cost.sum == pytest.approx(expected_cost(HAIKU, reply), abs=1e-9)


@pytest.mark.parametrize(
    "model",
    [
        HAIKU,
        "us.anthropic.claude-3-haiku-20240307-v1:0",  # cross-region inference profile
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.anthropic.claude-3-haiku-20240307-v1:0",
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0",
        "global.anthropic.claude-haiku-4-5-20251001-v1:0",  # the global profile's (lower) price tier
        "amazon.nova-lite-v1:0",
        "meta.llama3-8b-instruct-v1:0",
        "mistral.mistral-7b-instruct-v0:2",
    ],
)
def test_converse_model_ids_and_cost(
    server: BedrockServer, client: Any, telemetry: Any, traced: Any, model: str
) -> None:
    client.converse(modelId=model, messages=MESSAGES)
    (reply,) = server.replies
    assert reply.model == model  # botocore sent the id (ARNs included) in the path, unchanged
    attributes = telemetry.span().attributes
    assert attributes[semconv.REQUEST_MODEL] == model
    assert attributes[semconv.USAGE_INPUT_TOKENS] == input_total(reply)
    priced_as = model.rsplit("/", 1)[1] if model.startswith("arn:") else model  # an ARN names its resource
    assert attributes[semconv.USAGE_COST_AMOUNT] == pytest.approx(expected_cost(priced_as, reply), abs=1e-9)


def test_invoke_model_priced_by_the_request_profile(
    server: BedrockServer, client: Any, telemetry: Any, traced: Any
) -> None:
    """The Anthropic body names the bare model (``claude-3-haiku-20240307``, regional price); the
    request's ``global.`` profile id selects the global tier, which is what Bedrock bills."""
    model = "global.anthropic.claude-haiku-4-5-20251001-v1:0"
    client.invoke_model(modelId=model, body=json.dumps({"messages": [], "max_tokens": 5}))
    (reply,) = server.replies
    attributes = telemetry.span().attributes
    assert attributes[semconv.RESPONSE_MODEL] == "claude-3-haiku-20240307"
    assert attributes[semconv.COST_PRICING_MODEL] == "global.anthropic.claude-haiku-4-5-20251001-v1:0"
    assert attributes[semconv.USAGE_COST_AMOUNT] == pytest.approx(expected_cost(model, reply), abs=1e-9)


@pytest.mark.parametrize(
    "model",
    [
        "cohere.command-r-v1:0",  # Bedrock hosts it; genai-prices has no AWS price for it
        "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5",  # opaque profile
    ],
)
def test_converse_unpriced_model_says_why(client: Any, telemetry: Any, traced: Any, model: str) -> None:
    client.converse(modelId=model, messages=MESSAGES)
    attributes = telemetry.span().attributes
    assert attributes[semconv.COST_UNAVAILABLE_REASON] == "model_not_in_catalogue"
    assert semconv.USAGE_COST_AMOUNT not in attributes
    assert attributes[semconv.USAGE_INPUT_TOKENS] > 0


def test_converse_content_capture(client: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(BedrockInstrumentor, **CAPTURE)
    tools = {
        "tools": [{"toolSpec": {"name": "weather", "description": "d", "inputSchema": {"json": {"type": "object"}}}}]
    }
    client.converse(modelId=HAIKU, messages=MESSAGES, system=SYSTEM, toolConfig=tools)
    attributes = telemetry.span().attributes
    assert json.loads(attributes[semconv.INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Say hello from Bedrock."}]}
    ]
    assert json.loads(attributes[semconv.SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "You are terse."}]
    assert json.loads(attributes[semconv.OUTPUT_MESSAGES]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": " ".join(srv.REPLY_WORDS)}],
            "finish_reason": "end_turn",
        }
    ]
    assert json.loads(attributes[semconv.TOOL_DEFINITIONS])[0]["name"] == "weather"


def test_converse_stream_exhausted(server: BedrockServer, client: Any, telemetry: Any, instrument_with: Any) -> None:
    instrument_with(BedrockInstrumentor, **CAPTURE)
    response = client.converse_stream(modelId=HAIKU, messages=MESSAGES)
    events = list(response["stream"])
    (reply,) = server.replies
    attributes = telemetry.span().attributes
    assert attributes[semconv.REQUEST_STREAM] is True
    assert attributes[semconv.STREAM_CHUNKS] == len(events)
    assert attributes[semconv.STREAM_END_REASON] == "completed"
    assert attributes[semconv.USAGE_INPUT_TOKENS] == input_total(reply)
    assert attributes[semconv.USAGE_OUTPUT_TOKENS] == reply.output_tokens
    assert attributes[semconv.USAGE_CACHE_READ_INPUT_TOKENS] == reply.cache_read
    assert attributes[semconv.RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert attributes[semconv.USAGE_COST_AMOUNT] == pytest.approx(expected_cost(HAIKU, reply), abs=1e-9)
    assert attributes[semconv.RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    output = json.loads(attributes[semconv.OUTPUT_MESSAGES])
    assert output[0]["parts"][0]["content"] == " ".join(srv.REPLY_WORDS)
    points = telemetry.metrics()
    assert points[semconv.METRIC_TIME_TO_FIRST_CHUNK][0].count == 1


# -- InvokeModel, per family -----------------------------------------------------------------------------

# model, request body, operation, finish reason, response id, response model
FAMILIES = [
    (
        HAIKU,
        {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]},
        "chat",
        "end_turn",
        "msg_bdrk_01ABC",
        "claude-3-haiku-20240307",
    ),
    (
        "us.amazon.nova-lite-v1:0",
        {"messages": [{"role": "user", "content": [{"text": "hi"}]}], "inferenceConfig": {"maxTokens": 50}},
        "chat",
        "end_turn",
        None,
        None,
    ),
    (
        "amazon.titan-text-express-v1",
        {"inputText": "hi", "textGenerationConfig": {"maxTokenCount": 50}},
        "text_completion",
        "FINISH",
        None,
        None,
    ),
    ("meta.llama3-8b-instruct-v1:0", {"prompt": "hi", "max_gen_len": 50}, "text_completion", "stop", None, None),
    ("mistral.mistral-7b-instruct-v0:2", {"prompt": "hi", "max_tokens": 50}, "text_completion", "stop", None, None),
    ("cohere.command-r-v1:0", {"message": "hi", "max_tokens": 50}, "text_completion", "COMPLETE", "c0h3re-resp", None),
]
FAMILY_IDS = ["anthropic", "nova", "titan", "llama", "mistral", "cohere"]


@pytest.mark.parametrize(
    ("model", "body", "operation", "finish", "response_id", "response_model"), FAMILIES, ids=FAMILY_IDS
)
@pytest.mark.parametrize("headers", [True, False], ids=["headers", "body-only"])
def test_invoke_model_families(
    server: BedrockServer,
    client: Any,
    telemetry: Any,
    traced: Any,
    model: str,
    body: dict[str, Any],
    operation: str,
    finish: str,
    response_id: str | None,
    response_model: str | None,
    headers: bool,
) -> None:
    model_id = model if headers else f"{model}~noheaders"
    response = client.invoke_model(modelId=model_id, body=json.dumps(body))
    (reply,) = server.replies
    # The application reads exactly the bytes the server sent.
    assert response["body"].read() == json.dumps(srv.invoke_body(reply, body)).encode()
    span = telemetry.span()
    attributes = dict(span.attributes)
    assert span.name == f"{operation} {model_id}"
    assert attributes[semconv.OPERATION_NAME] == operation
    assert attributes[semconv.REQUEST_MAX_TOKENS] == 50
    assert attributes[semconv.RESPONSE_FINISH_REASONS] == (finish,)
    assert attributes.get(semconv.RESPONSE_ID) == response_id
    assert attributes.get(semconv.RESPONSE_MODEL) == response_model
    reports_usage_in_body = not model.startswith(("mistral.", "cohere."))
    if headers or reports_usage_in_body:
        assert attributes[semconv.USAGE_SOURCE] == "reported"
        assert attributes[semconv.USAGE_INPUT_TOKENS] == input_total(reply)
        assert attributes[semconv.USAGE_OUTPUT_TOKENS] == reply.output_tokens
        assert attributes.get(semconv.USAGE_CACHE_READ_INPUT_TOKENS) == reply.cache_read
    else:  # neither headers nor a usage object: estimated from the texts, and marked so
        assert attributes[semconv.USAGE_SOURCE] == "estimated"
        assert attributes[semconv.USAGE_OUTPUT_TOKENS] > 0


def test_invoke_model_headers_take_precedence(server: BedrockServer, client: Any, telemetry: Any, traced: Any) -> None:
    """Bedrock's headers are what it bills; where they and the body disagree, the headers win."""
    client.invoke_model(modelId=f"{HAIKU}~headerskew", body=json.dumps({"messages": [], "max_tokens": 5}))
    (reply,) = server.replies
    attributes = telemetry.span().attributes
    assert attributes[semconv.USAGE_INPUT_TOKENS] == input_total(reply) + 1000
    assert attributes[semconv.USAGE_OUTPUT_TOKENS] == reply.output_tokens
    assert attributes[semconv.USAGE_CACHE_READ_INPUT_TOKENS] == reply.cache_read


@pytest.mark.parametrize(
    ("model", "body", "dimensions"),
    [
        ("amazon.titan-embed-text-v2:0", {"inputText": "embed me", "dimensions": 16}, 16),
        ("amazon.titan-embed-text-v1", {"inputText": "embed me"}, srv.EMBED_DIMENSIONS),
        ("cohere.embed-english-v3", {"texts": ["a", "b"], "input_type": "search_document"}, srv.EMBED_DIMENSIONS),
    ],
)
def test_invoke_model_embeddings(
    server: BedrockServer, client: Any, telemetry: Any, traced: Any, model: str, body: dict[str, Any], dimensions: int
) -> None:
    response = client.invoke_model(modelId=model, body=json.dumps(body))
    (reply,) = server.replies
    assert json.loads(response["body"].read()) == srv.invoke_body(reply, body)
    span = telemetry.span()
    attributes = dict(span.attributes)
    assert span.name == f"embeddings {model}"
    assert attributes[semconv.OPERATION_NAME] == "embeddings"
    assert attributes[semconv.EMBEDDINGS_DIMENSION_COUNT] == dimensions
    assert attributes[semconv.USAGE_INPUT_TOKENS] == srv.EMBED_INPUT_TOKENS
    assert semconv.USAGE_OUTPUT_TOKENS not in attributes
    assert semconv.REQUEST_STREAM not in attributes
    if model.startswith("amazon."):
        usage = CatalogueUsage(input_tokens=srv.EMBED_INPUT_TOKENS, output_tokens=0)
        price = float(calc_price(usage, model, provider_id="aws").total_price)
        assert attributes[semconv.USAGE_COST_AMOUNT] == pytest.approx(price, abs=1e-9)
    else:
        assert attributes[semconv.COST_UNAVAILABLE_REASON] == "model_not_in_catalogue"


@pytest.mark.parametrize(
    ("model", "body", "operation", "finish", "response_id", "response_model"), FAMILIES, ids=FAMILY_IDS
)
def test_invoke_model_stream_families(
    server: BedrockServer,
    client: Any,
    telemetry: Any,
    traced: Any,
    model: str,
    body: dict[str, Any],
    operation: str,
    finish: str,
    response_id: str | None,
    response_model: str | None,
) -> None:
    response = client.invoke_model_with_response_stream(modelId=model, body=json.dumps(body))
    events = list(response["body"])
    (reply,) = server.replies
    assert [json.loads(e["chunk"]["bytes"]) for e in events] == srv.invoke_stream_chunks(reply)
    attributes = telemetry.span().attributes
    assert attributes[semconv.OPERATION_NAME] == operation
    assert attributes[semconv.REQUEST_STREAM] is True
    assert attributes[semconv.STREAM_CHUNKS] == len(events)
    assert attributes[semconv.STREAM_END_REASON] == "completed"
    assert attributes[semconv.RESPONSE_FINISH_REASONS][-1] == finish
    assert attributes[semconv.USAGE_SOURCE] == "reported"
    assert attributes[semconv.USAGE_INPUT_TOKENS] == input_total(reply)
    assert attributes[semconv.USAGE_OUTPUT_TOKENS] == reply.output_tokens
    assert attributes.get(semconv.USAGE_CACHE_READ_INPUT_TOKENS) == reply.cache_read
    if response_model:
        assert attributes[semconv.RESPONSE_MODEL] == response_model


# -- the InvokeModel body the application reads ------------------------------------------------------------


def _observe_body(body: Any, pattern: str) -> list[Any]:
    """What an application can see of a StreamingBody, by access pattern (exceptions included)."""
    seen: list[Any] = [type(body).__name__]
    try:
        if pattern == "read":
            seen.append(body.read())
            seen.append(body.read())
        elif pattern == "read_n":
            seen.extend([body.read(7), body.read(0), body.read(10_000), body.read(5), body.tell()])
        elif pattern == "iter_lines":
            seen.append(list(body.iter_lines()))
        elif pattern == "iter_chunks":
            seen.append(list(body.iter_chunks(16)))
        elif pattern == "iterate":
            seen.append(list(body))
        elif pattern == "readinto":
            buffer = bytearray(32)
            seen.extend([body.readinto(buffer), bytes(buffer)])
        elif pattern == "readable":
            seen.append(body.readable())
        elif pattern == "close_then_read":
            body.close()
            seen.append(body.read())
        elif pattern == "with":
            with body as raw:
                seen.append(raw.read())
            seen.append(raw.closed)
        elif pattern == "headers":
            seen.append(body._raw_stream.headers["content-type"])
    except Exception as error:
        seen.append((type(error).__name__, str(error)))
    return seen


BODY_PATTERNS = [
    "read",
    "read_n",
    "iter_lines",
    "iter_chunks",
    "iterate",
    "readinto",
    "readable",
    "close_then_read",
    "with",
    "headers",
]


@pytest.mark.parametrize("pattern", BODY_PATTERNS)
def test_invoke_model_body_is_unchanged_for_the_app(
    server: BedrockServer, client: Any, telemetry: Any, traced: Any, pattern: str
) -> None:
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
    traced_view = _observe_body(client.invoke_model(modelId=HAIKU, body=body)["body"], pattern)
    traced.uninstrument()
    baseline = _observe_body(client.invoke_model(modelId=HAIKU, body=body)["body"], pattern)
    assert traced_view == baseline
    assert len(telemetry.spans()) == 1


def test_invoke_model_truncated_body(server: BedrockServer, client: Any, telemetry: Any, traced: Any) -> None:
    """The body is cut short: the app's read raises what it raises without us, and the span says so."""
    body = json.dumps({"messages": [], "max_tokens": 5})
    server.fail_next(200, "", kind="truncate")
    traced_view = _observe_body(client.invoke_model(modelId=HAIKU, body=body)["body"], "read")
    traced.uninstrument()
    server.fail_next(200, "", kind="truncate")
    baseline = _observe_body(client.invoke_model(modelId=HAIKU, body=body)["body"], "read")
    assert traced_view == baseline
    assert baseline[-1][0] in ("IncompleteReadError", "ResponseStreamingError")
    span = telemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE].startswith("botocore.")


# -- errors and retries --------------------------------------------------------------------------------------

ERRORS = [
    (429, "ThrottlingException"),
    (400, "ValidationException"),
    (424, "ModelErrorException"),
    (503, "ServiceUnavailableException"),
    (500, "InternalServerException"),
]


def _call(client: Any, operation: str, model: str = HAIKU) -> Any:
    if operation == "converse":
        return client.converse(modelId=model, messages=MESSAGES)
    if operation == "converse_stream":
        return list(client.converse_stream(modelId=model, messages=MESSAGES)["stream"])
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
    if operation == "invoke_model":
        return client.invoke_model(modelId=model, body=body)["body"].read()
    return list(client.invoke_model_with_response_stream(modelId=model, body=body)["body"])


def _outcome(client: Any, operation: str, model: str = HAIKU) -> tuple[str, str, Any]:
    try:
        _call(client, operation, model)
    except Exception as error:
        response = getattr(error, "response", {}) or {}
        return type(error).__name__, str(error), response.get("Error")
    return "ok", "", None


OPERATIONS = ["converse", "converse_stream", "invoke_model", "invoke_model_with_response_stream"]


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize(("status", "code"), ERRORS, ids=[code for _, code in ERRORS])
def test_request_errors(
    server: BedrockServer, client: Any, telemetry: Any, traced: Any, operation: str, status: int, code: str
) -> None:
    server.fail_next(status, code)
    traced_outcome = _outcome(client, operation)
    traced.uninstrument()
    server.fail_next(status, code)
    assert traced_outcome == _outcome(client, operation)
    assert traced_outcome[0] == code
    span = telemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == code
    assert semconv.USAGE_INPUT_TOKENS not in span.attributes  # a refused request was not billed
    (duration,) = telemetry.metrics()[semconv.METRIC_OPERATION_DURATION]
    assert duration.attributes[semconv.ERROR_TYPE] == code


@pytest.mark.parametrize("operation", ["converse_stream", "invoke_model_with_response_stream"])
@pytest.mark.parametrize(
    ("marker", "code"),
    [("midstream-error", "ModelStreamErrorException"), ("midstream-throttling", "ThrottlingException")],
)
def test_midstream_exception_event(
    server: BedrockServer, client: Any, telemetry: Any, traced: Any, operation: str, marker: str, code: str
) -> None:
    model = f"{HAIKU}~{marker}"
    traced_outcome = _outcome(client, operation, model)
    traced.uninstrument()
    assert traced_outcome == _outcome(client, operation, model)
    assert traced_outcome[0] == "EventStreamError"
    span = telemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == code
    assert span.attributes[semconv.STREAM_END_REASON] == "error"
    assert span.attributes[semconv.STREAM_CHUNKS] == 2


@pytest.mark.parametrize("operation", OPERATIONS)
def test_retries_are_one_span(server: BedrockServer, telemetry: Any, traced: Any, operation: str) -> None:
    """botocore's standard-mode retries happen inside the wrapped call: one app call, one span."""
    server.reset()
    client = make_client(server, attempts=3)
    server.fail_next(429, "ThrottlingException", times=2)
    assert _outcome(client, operation)[0] == "ok"
    assert len(server.requests) == 3
    span = telemetry.span()
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes[semconv.USAGE_INPUT_TOKENS] == input_total(server.replies[0])


def test_retries_exhausted_is_one_error_span(server: BedrockServer, telemetry: Any, traced: Any) -> None:
    server.reset()
    client = make_client(server, attempts=3)
    server.fail_next(503, "ServiceUnavailableException", times=3)
    assert _outcome(client, "converse")[0] == "ServiceUnavailableException"
    assert len(server.requests) == 3
    span = telemetry.span()
    assert span.attributes[semconv.ERROR_TYPE] == "ServiceUnavailableException"


def test_connection_dropped(server: BedrockServer, client: Any, telemetry: Any, traced: Any) -> None:
    server.fail_next(0, "", kind="drop")
    name, _, _ = _outcome(client, "converse")
    assert name in ("ConnectionClosedError", "ProtocolError", "EndpointConnectionError")
    span = telemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == f"botocore.exceptions.{name}"


# -- what is not ours passes through ---------------------------------------------------------------------------


def test_other_operations_and_services_are_not_traced(server: BedrockServer, telemetry: Any, traced: Any) -> None:
    import boto3

    client = make_client(server)
    with pytest.raises(botocore.exceptions.ClientError):
        client.apply_guardrail(guardrailIdentifier="g", guardrailVersion="1", source="INPUT", content=[])
    s3 = boto3.client(
        "s3", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    with pytest.raises(botocore.exceptions.ClientError):
        s3.list_buckets()
    assert telemetry.spans() == []


def test_keyword_arguments_to_make_api_call(server: BedrockServer, client: Any, telemetry: Any, traced: Any) -> None:
    client._make_api_call(operation_name="Converse", api_params={"modelId": HAIKU, "messages": MESSAGES})
    assert telemetry.span().attributes[semconv.REQUEST_MODEL] == HAIKU


def test_instrumentation_dependencies_and_uninstrument(telemetry: Any) -> None:
    original = botocore.client.BaseClient.__dict__["_make_api_call"]
    instrumentor = BedrockInstrumentor()
    assert list(instrumentor.instrumentation_dependencies()) == ["botocore >= 1.34.116"]
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        assert botocore.client.BaseClient.__dict__["_make_api_call"] is not original
        assert botocore.client.BaseClient.__dict__["_make_api_call"].__wrapped__ is original
    finally:
        instrumentor.uninstrument()
    assert botocore.client.BaseClient.__dict__["_make_api_call"] is original


def test_entry_point_is_declared() -> None:
    from importlib.metadata import entry_points

    (point,) = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "tokentrace_bedrock"]
    assert point.load() is BedrockInstrumentor


def test_no_internal_errors_on_the_common_path(server: BedrockServer, client: Any, telemetry: Any, traced: Any) -> None:
    before = sum(internal_errors.values())
    for operation in OPERATIONS:
        _call(client, operation)
    assert len(telemetry.spans()) == 4
    assert sum(internal_errors.values()) == before, dict(internal_errors)


@pytest.mark.parametrize("stream", [False, True], ids=["invoke_model", "invoke_model_with_response_stream"])
def test_invoke_model_content_capture(client: Any, telemetry: Any, instrument_with: Any, stream: bool) -> None:
    instrument_with(BedrockInstrumentor, **CAPTURE)
    body = json.dumps(
        {
            "system": "Be brief.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "max_tokens": 9,
        }
    )
    if stream:
        list(client.invoke_model_with_response_stream(modelId=HAIKU, body=body)["body"])
    else:
        client.invoke_model(modelId=HAIKU, body=body)["body"].read()
    attributes = telemetry.span().attributes
    assert json.loads(attributes[semconv.INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "hi"}]}
    ]
    assert json.loads(attributes[semconv.SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "Be brief."}]
    assert json.loads(attributes[semconv.OUTPUT_MESSAGES]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": " ".join(srv.REPLY_WORDS)}],
            "finish_reason": "end_turn",
        }
    ]


def test_invoke_model_content_not_captured_by_default(client: Any, telemetry: Any, traced: Any) -> None:
    client.invoke_model(modelId=HAIKU, body=json.dumps({"messages": [{"role": "user", "content": "secret"}]}))
    attributes = telemetry.span().attributes
    for name in (semconv.INPUT_MESSAGES, semconv.OUTPUT_MESSAGES, semconv.SYSTEM_INSTRUCTIONS):
        assert name not in attributes


def test_another_botocore_instrumentation_inside_ours(
    server: BedrockServer, telemetry: Any, instrument_with: Any
) -> None:
    """OTel contrib's botocore instrumentation wraps the same method: for Bedrock inference calls we
    call past it (one span per call); every other AWS call still goes through it."""
    import boto3
    import wrapt

    seen: list[str] = []

    def other_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        seen.append(args[0])
        return wrapped(*args, **kwargs)

    other_wrapper.__module__ = "opentelemetry.instrumentation.botocore"
    original = botocore.client.BaseClient.__dict__["_make_api_call"]
    wrapt.wrap_function_wrapper(botocore.client.BaseClient, "_make_api_call", other_wrapper)
    try:
        instrument_with(BedrockInstrumentor)
        make_client(server).converse(modelId=HAIKU, messages=MESSAGES)
        s3 = boto3.client(
            "s3", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
        )
        with pytest.raises(botocore.exceptions.ClientError):
            s3.list_buckets()
    finally:
        BedrockInstrumentor().uninstrument()
        botocore.client.BaseClient._make_api_call = original
    assert seen == ["ListBuckets"]
    assert telemetry.span().attributes[semconv.REQUEST_MODEL] == HAIKU


@pytest.mark.parametrize("stream", [False, True], ids=["converse", "converse_stream"])
def test_converse_tool_call_captured(client: Any, telemetry: Any, instrument_with: Any, stream: bool) -> None:
    instrument_with(BedrockInstrumentor, **CAPTURE)
    model = f"{HAIKU}~tooluse"
    if stream:
        list(client.converse_stream(modelId=model, messages=MESSAGES)["stream"])
    else:
        client.converse(modelId=model, messages=MESSAGES)
    attributes = telemetry.span().attributes
    assert attributes[semconv.RESPONSE_FINISH_REASONS] == ("tool_use",)
    assert json.loads(attributes[semconv.OUTPUT_MESSAGES]) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": " ".join(srv.REPLY_WORDS)},
                {"type": "tool_call", "id": "tooluse_01", "name": "get_weather", "arguments": {"city": "Paris"}},
            ],
            "finish_reason": "tool_use",
        }
    ]


def test_instrumentation_dependencies_are_met_by_the_installed_botocore() -> None:
    from opentelemetry.instrumentation.dependencies import get_dependency_conflicts

    assert get_dependency_conflicts(BedrockInstrumentor().instrumentation_dependencies()) is None
    assert get_dependency_conflicts(["botocore >= 999"]) is not None  # what the launcher skips on


def test_invoke_model_file_body_is_left_to_botocore(
    server: BedrockServer, client: Any, telemetry: Any, traced: Any
) -> None:
    """A file-like request body is botocore's to read: we do not touch it (no request attributes)."""
    import io

    payload = json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}).encode()
    client.invoke_model(modelId=HAIKU, body=io.BytesIO(payload))["body"].read()
    assert server.requests[0][3] == payload
    attributes = telemetry.span().attributes
    assert attributes[semconv.OPERATION_NAME] == "text_completion"
    assert semconv.REQUEST_MAX_TOKENS not in attributes
    assert attributes[semconv.USAGE_INPUT_TOKENS] == input_total(server.replies[0])


@pytest.mark.parametrize(
    ("body", "finish", "text", "usage"),
    [
        (  # OpenAI gpt-oss on Bedrock: chat.completion with usage
            {
                "id": "chatcmpl-1",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
            },
            "stop",
            "ok",
            (12, 3),
        ),
        (  # Mistral Large chat format: no usage in the body (Bedrock's headers give it)
            {"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "stop_reason": "stop"}]},
            "stop",
            "ok",
            (None, None),
        ),
        (  # DeepSeek-R1 completion-style choices
            {"choices": [{"text": "ok", "stop_reason": "length"}]},
            "length",
            "ok",
            (None, None),
        ),
    ],
    ids=["gpt-oss", "mistral-chat", "deepseek-r1"],
)
def test_openai_compatible_bodies(body: dict[str, Any], finish: str, text: str, usage: tuple[Any, Any]) -> None:
    """Families the local server does not speak, read from their documented body shapes."""
    from tokentrace.core.call import GenAICall
    from tokentrace.instrumentation.bedrock import _bodies

    call = GenAICall("chat", "aws.bedrock", "m")
    _bodies.apply_body(call, body)
    assert call.finish_reasons == [finish]
    assert call.output_text == [text]
    assert (call.usage.input_tokens, call.usage.output_tokens) == usage
