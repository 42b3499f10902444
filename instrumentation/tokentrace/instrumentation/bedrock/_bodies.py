"""InvokeModel bodies: each model family's JSON shape, read into a :class:`GenAICall`.

Bedrock passes the model's native body through, so usage lives in a different place per family.
Bedrock itself also reports token counts for every family (the ``x-amzn-bedrock-*-token-count``
headers of ``InvokeModel`` and the ``amazon-bedrock-invocationMetrics`` object on the last chunk of
``InvokeModelWithResponseStream``); those are what Bedrock bills, so they take precedence over a
body's own counts and fill in families whose bodies carry none (Mistral text, Cohere embed).

Every count is converted to the conventions' accounting: input tokens include cache reads and
writes (Anthropic, Converse and Bedrock's metrics report them apart from ``input_tokens``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokentrace.core.call import GenAICall
from tokentrace.core.usage import Usage


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def set_usage(
    usage: Usage,
    uncached_input: int | None,
    output: int | None,
    cache_read: int | None = None,
    cache_write: int | None = None,
) -> None:
    """Fill ``usage`` from counts reported apart (uncached input, cache read, cache write)."""
    if uncached_input is not None or cache_read is not None or cache_write is not None:
        usage.input_tokens = (uncached_input or 0) + (cache_read or 0) + (cache_write or 0)
    if output is not None:
        usage.output_tokens = output
    if cache_read is not None:
        usage.cache_read_input_tokens = cache_read
    if cache_write is not None:
        usage.cache_creation_input_tokens = cache_write


def _add_finish(call: GenAICall, reason: Any) -> None:
    if isinstance(reason, str) and reason:
        call.finish_reasons.append(reason)


# -- headers and invocation metrics (any family) ---------------------------------------------------

_HEADER_INPUT = "x-amzn-bedrock-input-token-count"
_HEADER_OUTPUT = "x-amzn-bedrock-output-token-count"
_HEADER_CACHE_READ = "x-amzn-bedrock-cache-read-input-token-count"
_HEADER_CACHE_WRITE = "x-amzn-bedrock-cache-write-input-token-count"


def _header_int(headers: Mapping[str, Any], name: str) -> int | None:
    value = headers.get(name)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def apply_token_headers(usage: Usage, headers: Mapping[str, Any]) -> bool:
    """Bedrock's own counts from the InvokeModel response headers (botocore lower-cases names)."""
    uncached = _header_int(headers, _HEADER_INPUT)
    output = _header_int(headers, _HEADER_OUTPUT)
    if uncached is None and output is None:
        return False
    set_usage(
        usage, uncached, output, _header_int(headers, _HEADER_CACHE_READ), _header_int(headers, _HEADER_CACHE_WRITE)
    )
    return True


def apply_invocation_metrics(usage: Usage, metrics: Any) -> None:
    """``amazon-bedrock-invocationMetrics`` on the last chunk of a response stream."""
    if not isinstance(metrics, Mapping):
        return
    set_usage(
        usage,
        as_int(metrics.get("inputTokenCount")),
        as_int(metrics.get("outputTokenCount")),
        as_int(metrics.get("cacheReadInputTokenCount")),
        as_int(metrics.get("cacheWriteInputTokenCount")),
    )


# -- complete bodies (InvokeModel) -------------------------------------------------------------------


def apply_body(call: GenAICall, body: Mapping[str, Any]) -> None:
    """Read a complete InvokeModel response body of any supported family (its text goes to
    ``call.output_text``, for estimates and, when capture is on, the output message)."""
    usage = call.usage
    if body.get("type") == "message" or ("stop_reason" in body and "content" in body):  # Anthropic messages
        if isinstance(body.get("id"), str):
            call.response_id = body["id"]
        if isinstance(body.get("model"), str):
            call.response_model = body["model"]
        _add_finish(call, body.get("stop_reason"))
        reported = body.get("usage")
        if isinstance(reported, Mapping):
            set_usage(
                usage,
                as_int(reported.get("input_tokens")),
                as_int(reported.get("output_tokens")),
                as_int(reported.get("cache_read_input_tokens")),
                as_int(reported.get("cache_creation_input_tokens")),
            )
        _text_parts(call, body.get("content"))
        return
    output = body.get("output")
    if isinstance(output, Mapping) and isinstance(output.get("message"), Mapping):  # Amazon Nova
        _add_finish(call, body.get("stopReason"))
        reported = body.get("usage")
        if isinstance(reported, Mapping):
            set_usage(
                usage,
                as_int(reported.get("inputTokens")),
                as_int(reported.get("outputTokens")),
                as_int(reported.get("cacheReadInputTokenCount")),
                as_int(reported.get("cacheWriteInputTokenCount")),
            )
        _text_parts(call, output["message"].get("content"))
        return
    if "inputTextTokenCount" in body:  # Amazon Titan text and Titan embeddings
        results = body.get("results")
        output_tokens: int | None = None
        if isinstance(results, list):
            output_tokens = 0
            for result in results:
                if isinstance(result, Mapping):
                    output_tokens += as_int(result.get("tokenCount")) or 0
                    _add_finish(call, result.get("completionReason"))
                    _text(call, result.get("outputText"))
        set_usage(usage, as_int(body.get("inputTextTokenCount")), output_tokens)
        return
    if "prompt_token_count" in body or "generation_token_count" in body:  # Meta Llama
        set_usage(usage, as_int(body.get("prompt_token_count")), as_int(body.get("generation_token_count")))
        _add_finish(call, body.get("stop_reason"))
        _text(call, body.get("generation"))
        return
    if isinstance(body.get("choices"), list):  # Mistral chat / OpenAI-compatible (gpt-oss, DeepSeek)
        reported = body.get("usage")
        if isinstance(reported, Mapping):
            set_usage(usage, as_int(reported.get("prompt_tokens")), as_int(reported.get("completion_tokens")))
        if isinstance(body.get("id"), str):
            call.response_id = body["id"]
        for choice in body["choices"]:
            if isinstance(choice, Mapping):
                _add_finish(call, choice.get("finish_reason") or choice.get("stop_reason"))
                message = choice.get("message")
                if isinstance(message, Mapping):
                    _text(call, message.get("content"))
                else:  # DeepSeek-R1's completion-style choices
                    _text(call, choice.get("text"))
        return
    if isinstance(body.get("outputs"), list):  # Mistral text completion
        for item in body["outputs"]:
            if isinstance(item, Mapping):
                _add_finish(call, item.get("stop_reason"))
                _text(call, item.get("text"))
        return
    if isinstance(body.get("generations"), list):  # Cohere Command (legacy generate)
        if isinstance(body.get("id"), str):
            call.response_id = body["id"]
        for item in body["generations"]:
            if isinstance(item, Mapping):
                _add_finish(call, item.get("finish_reason"))
                _text(call, item.get("text"))
        return
    if "generation_id" in body or ("text" in body and "finish_reason" in body):  # Cohere Command R
        if isinstance(body.get("response_id"), str):
            call.response_id = body["response_id"]
        _add_finish(call, body.get("finish_reason"))
        _text(call, body.get("text"))
        meta = body.get("meta")
        units = meta.get("billed_units") if isinstance(meta, Mapping) else None
        if isinstance(units, Mapping):
            set_usage(usage, as_int(units.get("input_tokens")), as_int(units.get("output_tokens")))
        return
    if isinstance(body.get("embeddings"), (list, Mapping)) and isinstance(body.get("id"), str):  # Cohere embed
        call.response_id = body["id"]


def _text(call: GenAICall, text: Any) -> None:
    if isinstance(text, str):
        call.output_text.append(text)


def _text_parts(call: GenAICall, content: Any) -> None:
    if isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping):
                _text(call, part.get("text"))


# -- stream chunks (InvokeModelWithResponseStream) -----------------------------------------------------


def apply_chunk(call: GenAICall, chunk: Mapping[str, Any]) -> None:
    """Read one decoded ``chunk`` payload of any supported family (cheap key lookups only)."""
    kind = chunk.get("type")
    if kind is not None:  # Anthropic messages stream
        if kind == "content_block_delta":
            delta = chunk.get("delta")
            if isinstance(delta, Mapping) and isinstance(delta.get("text"), str):
                call.output_text.append(delta["text"])
        elif kind == "message_start":
            message = chunk.get("message")
            if isinstance(message, Mapping):
                if isinstance(message.get("id"), str):
                    call.response_id = message["id"]
                if isinstance(message.get("model"), str):
                    call.response_model = message["model"]
                reported = message.get("usage")
                if isinstance(reported, Mapping):
                    set_usage(
                        call.usage,
                        as_int(reported.get("input_tokens")),
                        None,
                        as_int(reported.get("cache_read_input_tokens")),
                        as_int(reported.get("cache_creation_input_tokens")),
                    )
        elif kind == "message_delta":
            delta = chunk.get("delta")
            if isinstance(delta, Mapping):
                _add_finish(call, delta.get("stop_reason"))
            reported = chunk.get("usage")
            if isinstance(reported, Mapping) and as_int(reported.get("output_tokens")) is not None:
                call.usage.output_tokens = reported["output_tokens"]
    elif "contentBlockDelta" in chunk:  # Amazon Nova
        delta = chunk["contentBlockDelta"].get("delta") if isinstance(chunk["contentBlockDelta"], Mapping) else None
        if isinstance(delta, Mapping) and isinstance(delta.get("text"), str):
            call.output_text.append(delta["text"])
    elif "messageStop" in chunk:
        stop = chunk["messageStop"]
        if isinstance(stop, Mapping):
            _add_finish(call, stop.get("stopReason"))
    elif "metadata" in chunk:
        metadata = chunk["metadata"]
        reported = metadata.get("usage") if isinstance(metadata, Mapping) else None
        if isinstance(reported, Mapping):
            set_usage(
                call.usage,
                as_int(reported.get("inputTokens")),
                as_int(reported.get("outputTokens")),
                as_int(reported.get("cacheReadInputTokenCount")),
                as_int(reported.get("cacheWriteInputTokenCount")),
            )
    elif "outputText" in chunk:  # Amazon Titan text
        if isinstance(chunk["outputText"], str):
            call.output_text.append(chunk["outputText"])
        _add_finish(call, chunk.get("completionReason"))
    elif "generation" in chunk:  # Meta Llama
        if isinstance(chunk["generation"], str):
            call.output_text.append(chunk["generation"])
        _add_finish(call, chunk.get("stop_reason"))
    elif isinstance(chunk.get("outputs"), list):  # Mistral text
        for item in chunk["outputs"]:
            if isinstance(item, Mapping):
                if isinstance(item.get("text"), str):
                    call.output_text.append(item["text"])
                _add_finish(call, item.get("stop_reason"))
    elif isinstance(chunk.get("choices"), list):  # Mistral chat / OpenAI-compatible
        for choice in chunk["choices"]:
            if isinstance(choice, Mapping):
                delta = choice.get("delta") or choice.get("message")
                if isinstance(delta, Mapping) and isinstance(delta.get("content"), str):
                    call.output_text.append(delta["content"])
                elif isinstance(choice.get("text"), str):
                    call.output_text.append(choice["text"])
                _add_finish(call, choice.get("finish_reason") or choice.get("stop_reason"))
    elif "event_type" in chunk or "text" in chunk:  # Cohere Command R (text-generation ... stream-end)
        if isinstance(chunk.get("text"), str):
            call.output_text.append(chunk["text"])
        _add_finish(call, chunk.get("finish_reason"))
    # Bedrock's own counts arrive on the last chunk of every family and are what Bedrock bills.
    metrics = chunk.get("amazon-bedrock-invocationMetrics")
    if metrics is not None:
        apply_invocation_metrics(call.usage, metrics)
