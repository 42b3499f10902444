"""Result side: read a ``GenerateContentResponse`` / ``EmbedContentResponse`` (or a stream's chunks)
into the call.

Token accounting (Gemini's ``usage_metadata`` -> the conventions'):

* input = ``prompt_token_count`` (which already includes ``cached_content_token_count``) +
  ``tool_use_prompt_token_count`` (the prompt of tool use, billed as input and counted separately);
* cache read = ``cached_content_token_count``;
* output = ``candidates_token_count`` + ``thoughts_token_count``: the conventions' output includes
  reasoning, and Gemini bills thoughts as output; reasoning = ``thoughts_token_count``.

So input + output is Gemini's ``total_token_count``. In a stream every chunk carries the running
usage of the call so far; the last one seen is the call's usage (never summed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tokentrace.core import semconv
from tokentrace.core.call import GenAICall
from tokentrace.core.usage import Usage
from tokentrace.instrumentation.google_genai import _content


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):  # Vertex embedding statistics report counts as floats
        return int(value)
    return None


def apply_usage(usage: Usage, metadata: Any) -> None:
    """Set ``usage`` from a ``usage_metadata`` object (replacing what was there)."""
    prompt = _count(getattr(metadata, "prompt_token_count", None))
    tool_prompt = _count(getattr(metadata, "tool_use_prompt_token_count", None))
    candidates = _count(getattr(metadata, "candidates_token_count", None))
    if candidates is None:  # embeddings' UsageMetadata names it response_token_count
        candidates = _count(getattr(metadata, "response_token_count", None))
    thoughts = _count(getattr(metadata, "thoughts_token_count", None))
    if prompt is not None or tool_prompt is not None:
        usage.input_tokens = (prompt or 0) + (tool_prompt or 0)
    if candidates is not None or thoughts is not None:
        usage.output_tokens = (candidates or 0) + (thoughts or 0)
    usage.cache_read_input_tokens = _count(getattr(metadata, "cached_content_token_count", None))
    usage.reasoning_output_tokens = thoughts
    usage.source = semconv.USAGE_SOURCE_REPORTED


def finish_reason(value: Any) -> str | None:
    """Gemini's finish reason as the provider names it, lower-cased (``stop``, ``max_tokens``, ``safety``)."""
    if value is None:
        return None
    raw = getattr(value, "value", value)
    return str(raw).lower() if raw else None


def apply_generate(call: GenAICall, response: Any, capture: bool) -> None:
    call.response_id = getattr(response, "response_id", None)
    call.response_model = getattr(response, "model_version", None)
    candidates = getattr(response, "candidates", None) or ()
    reasons = [finish_reason(getattr(candidate, "finish_reason", None)) for candidate in candidates]
    call.finish_reasons = [reason for reason in reasons if reason]
    hops = call.provider_state
    if isinstance(hops, list) and hops:  # every request the call sent (function calling, continuation)
        apply_summed_usage(call.usage, hops)
    else:
        metadata = getattr(response, "usage_metadata", None)
        if metadata is not None:
            apply_usage(call.usage, metadata)
    if capture:
        call.output_messages = _content.output_messages(candidates)


def apply_summed_usage(usage: Usage, metadatas: list[Any]) -> None:
    """The sum of several requests' usage: each request is billed on its own."""
    for metadata in metadatas:
        if metadata is None:
            continue
        one = Usage()
        apply_usage(one, metadata)
        usage.input_tokens = _add(usage.input_tokens, one.input_tokens)
        usage.output_tokens = _add(usage.output_tokens, one.output_tokens)
        usage.cache_read_input_tokens = _add(usage.cache_read_input_tokens, one.cache_read_input_tokens)
        usage.reasoning_output_tokens = _add(usage.reasoning_output_tokens, one.reasoning_output_tokens)
        usage.source = semconv.USAGE_SOURCE_REPORTED


def _add(total: int | None, value: int | None) -> int | None:
    if value is None:
        return total
    return value if total is None else total + value


def apply_embed(call: GenAICall, response: Any, capture: bool) -> None:
    """Embedding usage: ``usage_metadata`` where the API reports it, else Vertex's per-embedding
    ``statistics.token_count`` (one per input, so they add up); else unknown."""
    embeddings = getattr(response, "embeddings", None) or ()
    metadata = getattr(response, "usage_metadata", None)
    if metadata is not None and getattr(metadata, "prompt_token_count", None) is not None:
        apply_usage(call.usage, metadata)
    else:
        counts = [_count(getattr(getattr(e, "statistics", None), "token_count", None)) for e in embeddings]
        if counts and all(count is not None for count in counts):
            call.usage.input_tokens = sum(counts)  # type: ignore[arg-type]
            call.usage.source = semconv.USAGE_SOURCE_REPORTED
    if embeddings:
        values = getattr(embeddings[0], "values", None)
        if isinstance(values, list):
            call.attributes[semconv.EMBEDDINGS_DIMENSION_COUNT] = len(values)


# -- stream chunks --------------------------------------------------------------------------------


def observe_chunk(call: GenAICall, chunk: Any) -> None:
    """Per chunk: ids once, a reference to the latest usage, finish reasons as they arrive. Field
    reads only; the usage is converted once, when the stream ends (:func:`apply_stream_usage`)."""
    if call.response_model is None:  # getattr: response_id arrived in google-genai 1.x, not 1.0
        call.response_id = getattr(chunk, "response_id", None)
        call.response_model = getattr(chunk, "model_version", None)
    metadata = chunk.usage_metadata
    if metadata is not None:
        call.provider_state = metadata
    candidates = chunk.candidates
    if candidates:
        for candidate in candidates:
            reason = candidate.finish_reason
            if reason is not None:
                text = finish_reason(reason)
                if text:
                    call.finish_reasons.append(text)


def apply_stream_usage(call: GenAICall) -> None:
    """The last usage a stream's chunks carried is the call's usage (a running total, never summed)."""
    if call.provider_state is not None:
        apply_usage(call.usage, call.provider_state)


def chunk_observer(call: GenAICall, capture: bool) -> Callable[[GenAICall, Any], None]:
    """The plain observer, or one that also gathers each candidate's parts for content capture; either
    way the call's usage is read from the last chunk's when the stream ends."""
    if not capture:
        call.before_end = lambda: apply_stream_usage(call)
        return observe_chunk
    gathered: dict[int, dict[str, Any]] = {}

    def observe(call: GenAICall, chunk: Any) -> None:
        observe_chunk(call, chunk)
        for position, candidate in enumerate(chunk.candidates or ()):
            index = candidate.index if isinstance(candidate.index, int) else position
            state = gathered.setdefault(index, {"parts": [], "finish_reason": None})
            content = candidate.content
            if content is not None and content.parts:
                state["parts"].extend(content.parts)
            if candidate.finish_reason is not None:
                state["finish_reason"] = candidate.finish_reason

    def finish() -> None:
        apply_stream_usage(call)
        call.output_messages = [
            _content.output_message(state["parts"], state["finish_reason"]) for _, state in sorted(gathered.items())
        ]

    call.before_end = finish
    return observe
