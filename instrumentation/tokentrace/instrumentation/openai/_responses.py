"""Response side: read usage, ids, finish reasons and (when captured) output from OpenAI results.

Chunk observers run once per streamed chunk, so they only read a few fields and append text;
anything heavier (token estimates, output messages) happens once at the end of the stream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tokentrace.core import semconv
from tokentrace.core.call import GenAICall
from tokentrace.core.usage import Usage
from tokentrace.instrumentation.openai import _content


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, dict):  # a concrete-type check: an ABC check would cost more than the read
        return obj.get(key)
    return getattr(obj, key, None)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# -- usage ----------------------------------------------------------------------------------------


def _apply_usage(usage: Usage, reported: Any, input_key: str, output_key: str) -> None:
    """OpenAI's two usage shapes differ only in names; input counts already include cached tokens."""
    usage.input_tokens = _int(_get(reported, input_key))
    usage.output_tokens = _int(_get(reported, output_key))
    details = _get(reported, f"{input_key}_details")
    cached = _int(_get(details, "cached_tokens"))
    if cached is not None:
        usage.cache_read_input_tokens = cached
    written = _int(_get(details, "cache_write_tokens"))
    if written is not None:
        usage.cache_creation_input_tokens = written
    reasoning = _int(_get(_get(reported, f"{output_key}_details"), "reasoning_tokens"))
    if reasoning is not None:
        usage.reasoning_output_tokens = reasoning
    usage.source = semconv.USAGE_SOURCE_REPORTED


def apply_chat_usage(usage: Usage, reported: Any) -> None:
    """Chat Completions and legacy Completions: ``prompt_tokens`` / ``completion_tokens``."""
    _apply_usage(usage, reported, "prompt_tokens", "completion_tokens")


def apply_responses_usage(usage: Usage, reported: Any) -> None:
    """Responses API: ``input_tokens`` / ``output_tokens``."""
    _apply_usage(usage, reported, "input_tokens", "output_tokens")


def _openai_response_fields(call: GenAICall, result: Any) -> None:
    fingerprint = _get(result, "system_fingerprint")
    if isinstance(fingerprint, str):
        call.attributes[semconv.OPENAI_RESPONSE_SYSTEM_FINGERPRINT] = fingerprint
    tier = _get(result, "service_tier")
    if isinstance(tier, str):
        call.attributes[semconv.OPENAI_RESPONSE_SERVICE_TIER] = tier


# -- complete results -----------------------------------------------------------------------------


def _apply_choices_result(call: GenAICall, completion: Any) -> Any:
    """What Chat Completions and legacy Completions share: ids, finish reasons, usage, OpenAI fields."""
    call.response_id = _get(completion, "id")
    call.response_model = _get(completion, "model")
    choices = _get(completion, "choices") or ()
    call.finish_reasons = [str(_get(choice, "finish_reason") or "") for choice in choices]
    usage = _get(completion, "usage")
    if usage is not None:
        apply_chat_usage(call.usage, usage)
    _openai_response_fields(call, completion)
    return choices


def apply_chat_completion(call: GenAICall, completion: Any, capture: bool) -> None:
    choices = _apply_choices_result(call, completion)
    if capture:
        call.output_messages = [
            _content.chat_output_message(_get(choice, "message"), _get(choice, "finish_reason")) for choice in choices
        ]
    if not call.usage.known:
        for choice in choices:
            text = _get(_get(choice, "message"), "content")
            if isinstance(text, str):
                call.output_text.append(text)


def apply_completion(call: GenAICall, completion: Any, capture: bool) -> None:
    choices = _apply_choices_result(call, completion)
    texts = [_get(choice, "text") or "" for choice in choices]
    if capture:
        call.output_messages = [
            {"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": reason}
            for text, reason in zip(texts, call.finish_reasons, strict=False)
        ]
    if not call.usage.known:
        call.output_text.extend(texts)


def responses_finish_reason(response: Any) -> str:
    status = _get(response, "status")
    if status == "incomplete":
        reason = _get(_get(response, "incomplete_details"), "reason")
        return "length" if reason == "max_output_tokens" else str(reason or "incomplete")
    if status == "failed":
        return "error"
    if any(_get(item, "type") == "function_call" for item in _get(response, "output") or ()):
        return "tool_calls"
    return "stop"


def apply_response(call: GenAICall, response: Any, capture: bool) -> None:
    call.response_id = _get(response, "id")
    call.response_model = _get(response, "model")
    reason = responses_finish_reason(response)
    call.finish_reasons = [reason]
    usage = _get(response, "usage")
    if usage is not None:
        apply_responses_usage(call.usage, usage)
    tier = _get(response, "service_tier")
    if isinstance(tier, str):
        call.attributes[semconv.OPENAI_RESPONSE_SERVICE_TIER] = tier
    conversation = _get(_get(response, "conversation"), "id")
    if isinstance(conversation, str):
        call.attributes[semconv.CONVERSATION_ID] = conversation
    if capture:
        call.output_messages = _content.responses_output_messages(_get(response, "output"), reason)
    if _get(response, "status") == "failed":
        error = _get(response, "error")
        call.error_type = str(_get(error, "code") or "response_failed")


def apply_embeddings(call: GenAICall, result: Any, capture: bool) -> None:
    call.response_model = _get(result, "model")
    usage = _get(result, "usage")
    if usage is not None:
        call.usage.input_tokens = _int(_get(usage, "prompt_tokens"))
        call.usage.source = semconv.USAGE_SOURCE_REPORTED
    data = _get(result, "data") or ()
    if data:
        vector = _get(data[0], "embedding")
        if isinstance(vector, list):
            call.attributes[semconv.EMBEDDINGS_DIMENSION_COUNT] = len(vector)


# -- stream chunks --------------------------------------------------------------------------------


def observe_chat_chunk(call: GenAICall, chunk: Any) -> None:
    if call.response_id is None:
        call.response_id = chunk.id
        call.response_model = chunk.model
        _openai_response_fields(call, chunk)
    usage = getattr(chunk, "usage", None)
    if usage is not None:
        apply_chat_usage(call.usage, usage)
    for choice in chunk.choices:
        delta = choice.delta
        if delta is not None:
            content = delta.content
            if content:
                call.output_text.append(content)
            tool_calls = delta.tool_calls
            if tool_calls:
                for tool_call in tool_calls:
                    function = tool_call.function
                    if function is not None:
                        if function.name:
                            call.output_text.append(function.name)
                        if function.arguments:
                            call.output_text.append(function.arguments)
        if choice.finish_reason:
            call.finish_reasons.append(choice.finish_reason)


def chat_chunk_observer(call: GenAICall, capture: bool) -> Callable[[GenAICall, Any], None]:
    """The plain observer, or one that also rebuilds output messages per choice for capture."""
    if not capture:
        return observe_chat_chunk
    choices: dict[int, dict[str, Any]] = {}

    def observe(call: GenAICall, chunk: Any) -> None:
        observe_chat_chunk(call, chunk)
        for choice in chunk.choices:
            state = choices.setdefault(choice.index, {"content": [], "tool_calls": {}, "finish_reason": None})
            delta = choice.delta
            if delta is not None:
                if delta.content:
                    state["content"].append(delta.content)
                for tool_call in delta.tool_calls or ():
                    entry = state["tool_calls"].setdefault(tool_call.index, {"id": None, "name": "", "args": []})
                    if tool_call.id:
                        entry["id"] = tool_call.id
                    function = tool_call.function
                    if function is not None:
                        entry["name"] += function.name or ""
                        if function.arguments:
                            entry["args"].append(function.arguments)
            if choice.finish_reason:
                state["finish_reason"] = choice.finish_reason

    def build_messages() -> None:
        call.output_messages = [
            _content.chat_output_message(
                {
                    "content": "".join(state["content"]) or None,
                    "tool_calls": [
                        {"id": tc["id"], "function": {"name": tc["name"], "arguments": "".join(tc["args"])}}
                        for _, tc in sorted(state["tool_calls"].items())
                    ],
                },
                state["finish_reason"],
            )
            for _, state in sorted(choices.items())
        ]

    call.before_end = build_messages
    return observe


def observe_completion_chunk(call: GenAICall, chunk: Any) -> None:
    if call.response_id is None:
        call.response_id = chunk.id
        call.response_model = chunk.model
    usage = getattr(chunk, "usage", None)
    if usage is not None:
        apply_chat_usage(call.usage, usage)
    for choice in chunk.choices:
        if choice.text:
            call.output_text.append(choice.text)
        if choice.finish_reason:
            call.finish_reasons.append(choice.finish_reason)


def completion_chunk_observer(call: GenAICall, capture: bool) -> Callable[[GenAICall, Any], None]:
    if capture:

        def build_messages() -> None:
            call.output_messages = [
                {
                    "role": "assistant",
                    "parts": [{"type": "text", "content": "".join(call.output_text)}],
                    "finish_reason": call.finish_reasons[-1] if call.finish_reasons else "stop",
                }
            ]

        call.before_end = build_messages
    return observe_completion_chunk


_RESPONSE_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def responses_event_observer(call: GenAICall, capture: bool) -> Callable[[GenAICall, Any], None]:
    def observe(call: GenAICall, event: Any) -> None:
        kind = event.type
        if kind == "response.output_text.delta":
            call.output_text.append(event.delta)
        elif kind in _RESPONSE_FINAL_EVENTS:
            apply_response(call, event.response, capture)
        elif kind == "response.created":
            response = event.response
            call.response_id = response.id
            call.response_model = response.model
        elif kind == "error":
            call.error_type = str(getattr(event, "code", None) or "error")

    return observe


def hide_usage_only_chunk(chunk: Any) -> bool:
    """The extra chunk ``include_usage`` adds: no choices, only usage."""
    return not chunk.choices and getattr(chunk, "usage", None) is not None
