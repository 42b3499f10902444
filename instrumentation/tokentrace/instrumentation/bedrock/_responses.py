"""Result side: Converse responses and stream events, InvokeModel bodies and chunks, AWS errors."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from tokentrace.core import semconv
from tokentrace.core.call import GenAICall
from tokentrace.instrumentation.bedrock import _bodies, _content
from tokentrace.instrumentation.bedrock._body import drain

Observer = Callable[[GenAICall, Any], None]


def aws_error_type(error: BaseException) -> str | None:
    """``error.type`` for AWS errors: the service's error code, the same whether Bedrock refused the
    request (``ClientError``, e.g. ``ThrottlingException``) or failed mid-stream (an exception event,
    which botocore raises as ``EventStreamError`` with code ``throttlingException``). Other errors
    (connection failures) keep the recorder's class-name rule."""
    response = getattr(error, "response", None)
    if not isinstance(response, Mapping):
        return None
    details = response.get("Error")
    code = details.get("Code") if isinstance(details, Mapping) else None
    if isinstance(code, str) and code:
        return code[0].upper() + code[1:]
    return None


def read_metadata(call: GenAICall, result: Mapping[str, Any]) -> Mapping[str, Any]:
    """Record ``aws.request_id``; return the HTTP headers (botocore lower-cases their names)."""
    metadata = result.get("ResponseMetadata")
    if not isinstance(metadata, Mapping):
        return {}
    request_id = metadata.get("RequestId")
    if isinstance(request_id, str) and request_id:
        call.attributes[semconv.AWS_REQUEST_ID] = request_id
    headers = metadata.get("HTTPHeaders")
    return headers if isinstance(headers, Mapping) else {}


def _converse_usage(call: GenAICall, usage: Any) -> None:
    if isinstance(usage, Mapping):
        _bodies.set_usage(
            call.usage,
            _bodies.as_int(usage.get("inputTokens")),
            _bodies.as_int(usage.get("outputTokens")),
            _bodies.as_int(usage.get("cacheReadInputTokens")),
            _bodies.as_int(usage.get("cacheWriteInputTokens")),
        )


# -- Converse -----------------------------------------------------------------------------------------


def apply_converse(call: GenAICall, result: Mapping[str, Any], capture: bool) -> None:
    read_metadata(call, result)
    stop = result.get("stopReason")
    if isinstance(stop, str):
        call.finish_reasons.append(stop)
    _converse_usage(call, result.get("usage"))
    output = result.get("output")
    message = output.get("message") if isinstance(output, Mapping) else None
    if isinstance(message, Mapping):
        content = message.get("content")
        if call.usage.output_tokens is None:
            call.output_text.extend(_content._texts_of(content))
        if capture:
            call.output_messages = _content.output_message(content, stop if isinstance(stop, str) else None)


def converse_stream_observer(call: GenAICall, capture: bool) -> Observer:
    tools: dict[int, dict[str, Any]] = {}  # content block index -> tool call (content capture only)

    def observe(call: GenAICall, event: Any) -> None:
        delta = event.get("contentBlockDelta")
        if delta is not None:
            body = delta.get("delta", {})
            text = body.get("text")
            if text is not None:
                call.output_text.append(text)
            elif capture and "toolUse" in body:
                tool = tools.get(delta.get("contentBlockIndex"))
                if tool is not None:
                    tool["arguments"] += body["toolUse"].get("input") or ""
            return
        stop = event.get("messageStop")
        if stop is not None:
            reason = stop.get("stopReason")
            if isinstance(reason, str):
                call.finish_reasons.append(reason)
            return
        metadata = event.get("metadata")
        if metadata is not None:
            _converse_usage(call, metadata.get("usage"))
            return
        start = event.get("contentBlockStart")
        if capture and start is not None:
            use = start.get("start", {}).get("toolUse")
            if use is not None:
                tools[start.get("contentBlockIndex")] = {
                    "type": "tool_call",
                    "id": use.get("toolUseId"),
                    "name": use.get("name"),
                    "arguments": "",
                }

    if capture:
        call.before_end = lambda: _stream_output_message(call, list(tools.values()))
    return observe


def _stream_output_message(call: GenAICall, tool_calls: list[dict[str, Any]] | None = None) -> None:
    reason = call.finish_reasons[-1] if call.finish_reasons else None
    call.output_messages = _content.text_output_message(call.output_text, reason)
    for tool in tool_calls or ():
        arguments = tool["arguments"]
        try:
            tool["arguments"] = json.loads(arguments) if arguments else None
        except ValueError:
            pass  # a stream cut short mid-arguments: keep the text received
        call.output_messages[0]["parts"].append(tool)


# -- InvokeModel --------------------------------------------------------------------------------------


def apply_invoke(call: GenAICall, result: dict[str, Any], capture: bool) -> BaseException | None:
    """Read the body (replacing it with an identical one for the app) and Bedrock's token headers.

    Returns the error reading the body raised, if any: the app's read will raise it too.
    """
    headers = read_metadata(call, result)
    body = result.get("body")
    error = None
    if body is not None and hasattr(body, "read"):
        data, result["body"], error = drain(body)
        if data:
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = None
            if isinstance(parsed, Mapping):
                _bodies.apply_body(call, parsed)
                if call.operation == "embeddings":
                    _embedding_dimensions(call, parsed)
    _bodies.apply_token_headers(call.usage, headers)  # what Bedrock bills; fills families without usage
    if call.operation == "embeddings":
        call.output_text.clear()
        call.usage.output_tokens = None  # embeddings produce no output tokens
    elif capture:
        reason = call.finish_reasons[-1] if call.finish_reasons else None
        call.output_messages = _content.text_output_message(call.output_text, reason)
    return error


def _embedding_dimensions(call: GenAICall, body: Mapping[str, Any]) -> None:
    if semconv.EMBEDDINGS_DIMENSION_COUNT in call.start_attributes:
        return
    vector = body.get("embedding")
    if vector is None:
        embeddings = body.get("embeddings")
        if isinstance(embeddings, Mapping):  # Cohere embed with embedding_types
            embeddings = next(iter(embeddings.values()), None)
        if isinstance(embeddings, list) and embeddings:
            vector = embeddings[0]
    if isinstance(vector, list) and vector:
        call.attributes[semconv.EMBEDDINGS_DIMENSION_COUNT] = len(vector)


# Text-delta chunks of the message-shaped families: they carry only output text, which is needed
# only for a token estimate (Bedrock's invocation metrics, on the last chunk, normally give exact
# counts) or for content capture. Their JSON is kept as bytes and parsed at the end if needed, so the
# per-chunk cost is a prefix test and an append instead of a ``json.loads``.
_TEXT_DELTA_PREFIXES = (b'{"type":"content_block_delta"', b'{"contentBlockDelta"')


def invoke_stream_observer(call: GenAICall, capture: bool) -> Observer:
    deferred: list[bytes] = []

    def observe(call: GenAICall, event: Any) -> None:
        chunk = event.get("chunk")
        if chunk is None:
            return
        data = chunk["bytes"]
        if not capture and data.startswith(_TEXT_DELTA_PREFIXES):
            deferred.append(data)
            return
        payload = json.loads(data)
        if isinstance(payload, dict):
            _bodies.apply_chunk(call, payload)

    def before_end() -> None:
        if deferred and call.usage.output_tokens is None:  # no exact count arrived: estimate from the text
            for data in deferred:
                payload = json.loads(data)
                if isinstance(payload, dict):
                    _bodies.apply_chunk(call, payload)
        if capture:
            _stream_output_message(call)

    call.before_end = before_end
    return observe
