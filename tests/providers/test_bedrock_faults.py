"""Fault injection: a failure in any of tokentrace's Bedrock hooks never reaches the application.

Each case makes one hook raise, runs a workload against the local server instrumented, then again
uninstrumented, and compares what the application observed (results, events, body bytes, exceptions).
The fault must be counted in ``tokentrace.core.safety.internal_errors`` and, where the fault allows,
the call's span must still end.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

from tests.providers.servers.bedrock import BedrockServer, make_client
from tokentrace.core import pricing
from tokentrace.core.safety import internal_errors
from tokentrace.instrumentation.bedrock import BedrockInstrumentor, _bodies, _content, _patch, _requests, _responses

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "Faults stay ours."}]}]
CAPTURE = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"}


class InjectedFault(RuntimeError):
    pass


def boom(*args: Any, **kwargs: Any) -> Any:
    raise InjectedFault("injected into a tokentrace hook")


def boom_observer(*args: Any, **kwargs: Any) -> Any:
    return boom


def _scrub(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k not in ("ResponseMetadata", "stream", "body")}


def run(client: Any, workload: str, server: BedrockServer) -> Any:
    """What the application observes of one workload: results, events, bytes, or the exception."""
    invoke_body = json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
    try:
        if workload == "converse":
            return _scrub(client.converse(modelId=HAIKU, messages=MESSAGES))
        if workload == "converse_429":
            server.fail_next(429, "ThrottlingException")
            return _scrub(client.converse(modelId=HAIKU, messages=MESSAGES))
        if workload == "converse_stream":
            response = client.converse_stream(modelId=HAIKU, messages=MESSAGES)
            return [_scrub(response), list(response["stream"])]
        if workload == "converse_stream_error":
            response = client.converse_stream(modelId=f"{HAIKU}~midstream-throttling", messages=MESSAGES)
            return [_scrub(response), list(response["stream"])]
        if workload == "invoke_model":
            response = client.invoke_model(modelId=HAIKU, body=invoke_body)
            return [_scrub(response), response["body"].read(), response["body"].read()]
        if workload == "invoke_model_truncated":
            server.fail_next(200, "", kind="truncate")
            response = client.invoke_model(modelId=HAIKU, body=invoke_body)
            return [_scrub(response), response["body"].read()]
        if workload == "invoke_stream":
            response = client.invoke_model_with_response_stream(modelId=HAIKU, body=invoke_body)
            return [_scrub(response), list(response["body"])]
        if workload == "embeddings":
            response = client.invoke_model(modelId="amazon.titan-embed-text-v2:0", body=json.dumps({"inputText": "x"}))
            return [_scrub(response), response["body"].read()]
    except Exception as error:
        return ("raised", type(error).__name__, str(error), (getattr(error, "response", None) or {}).get("Error"))
    raise AssertionError(workload)


ALL = (
    "converse",
    "converse_429",
    "converse_stream",
    "converse_stream_error",
    "invoke_model",
    "invoke_model_truncated",
    "invoke_stream",
    "embeddings",
)
# hook name -> (object, attribute, replacement, workloads it is on the path of, does a span still end?)
FAULTS: dict[str, tuple[Any, str, Any, tuple[str, ...], bool]] = {
    "operation_filter": (_requests, "bedrock_operation", boom, ALL, False),
    "describe_converse": (_requests, "describe_converse", boom, ALL[:4], False),
    "describe_invoke": (_requests, "describe_invoke", boom, ALL[4:], False),
    "converse_result": (_responses, "apply_converse", boom, ("converse",), True),
    "invoke_result": (_responses, "apply_invoke", boom, ("invoke_model", "embeddings", "invoke_model_truncated"), True),
    "body_drain": (_responses, "drain", boom, ("invoke_model", "embeddings", "invoke_model_truncated"), True),
    "body_reader": (_bodies, "apply_body", boom, ("invoke_model", "embeddings"), True),
    "token_headers": (_bodies, "apply_token_headers", boom, ("invoke_model", "embeddings"), True),
    "converse_chunk_observer": (_responses, "converse_stream_observer", boom_observer, ALL[2:4], True),
    "invoke_chunk_reader": (_bodies, "apply_chunk", boom, ("invoke_stream",), True),
    "stream_proxy": (
        _patch,
        "TracedEventStream",
        boom,
        ("converse_stream", "converse_stream_error", "invoke_stream"),
        True,
    ),
    "error_classifier": (_responses, "aws_error_type", boom, ("converse_429", "converse_stream_error"), True),
    "content_capture": (_content, "converse_messages", boom, ("converse", "converse_stream"), True),
    "pricing": (pricing.PriceBook, "cost", boom, ("converse", "invoke_model", "invoke_stream"), True),
}


@pytest.fixture(scope="module")
def server() -> Any:
    with BedrockServer() as running:
        yield running


@pytest.mark.parametrize(
    ("fault", "workload"), [(fault, workload) for fault, spec in FAULTS.items() for workload in spec[3]]
)
def test_fault_never_reaches_the_app(
    fault: str,
    workload: str,
    server: BedrockServer,
    telemetry: Any,
    instrument_with: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target, attribute, replacement, _, span_ends = FAULTS[fault]
    server.reset()
    instrumentor = instrument_with(BedrockInstrumentor, **CAPTURE)
    client = make_client(server)
    before = Counter(internal_errors)
    with monkeypatch.context() as patch:
        patch.setattr(target, attribute, replacement)
        traced = run(client, workload, server)
    faults = sum((Counter(internal_errors) - before).values())
    instrumentor.uninstrument()
    baseline = run(client, workload, server)

    assert traced == baseline
    assert faults >= 1, f"the fault in {fault} was not on the path of {workload}"
    spans = telemetry.spans()
    if span_ends:
        (span,) = spans  # ended exactly once, whatever failed
        if workload == "converse_429":  # the SDK's exception, recorded as such
            assert span.status.status_code is StatusCode.ERROR
    else:
        assert spans == []  # the call ran untraced
