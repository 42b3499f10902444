"""Response side: read the model, ``done_reason``, token counts and timings from Ollama results.

Ollama reports ``prompt_eval_count`` (input tokens) and ``eval_count`` (output tokens) on a complete
response and on the last streamed part (``done=True``); earlier parts carry only text. Its timings
(nanoseconds) become ``tokentrace.ollama.*_duration`` in seconds: for a local model, whether the time
went to loading the model, reading the prompt or generating is the question a slow call raises.
Ollama sends no response id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tokentrace.core import semconv
from tokentrace.core.call import GenAICall

_DURATIONS = (
    ("total_duration", semconv.OLLAMA_TOTAL_DURATION),
    ("load_duration", semconv.OLLAMA_LOAD_DURATION),
    ("prompt_eval_duration", semconv.OLLAMA_PROMPT_EVAL_DURATION),
    ("eval_duration", semconv.OLLAMA_EVAL_DURATION),
)


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def apply_final(call: GenAICall, result: Any) -> None:
    """What a complete response (or the ``done`` part of a stream) reports: model, reason, usage, timings."""
    model = _get(result, "model")
    if isinstance(model, str) and model:
        call.response_model = model
    reason = _get(result, "done_reason")
    if isinstance(reason, str) and reason:
        call.finish_reasons = [reason]
    input_tokens = _int(_get(result, "prompt_eval_count"))
    output_tokens = _int(_get(result, "eval_count"))
    if input_tokens is not None or output_tokens is not None:
        call.usage.input_tokens = input_tokens
        call.usage.output_tokens = output_tokens
        call.usage.source = semconv.USAGE_SOURCE_REPORTED
    attributes = call.attributes
    for key, name in _DURATIONS:
        value = _int(_get(result, key))
        if value is not None:
            attributes[name] = value / 1e9


def output_message(message: Any, text: str | None, reason: Any) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    thinking = _get(message, "thinking")
    if isinstance(thinking, str) and thinking:
        parts.append({"type": "reasoning", "content": thinking})
    content = _get(message, "content") if message is not None else text
    if isinstance(content, str) and content:
        parts.append({"type": "text", "content": content})
    for tool_call in _get(message, "tool_calls") or ():
        function = _get(tool_call, "function")
        parts.append({"type": "tool_call", "name": _get(function, "name"), "arguments": _get(function, "arguments")})
    return {"role": "assistant", "parts": parts, "finish_reason": str(reason or "stop")}


def apply_chat(call: GenAICall, response: Any, capture: bool) -> None:
    apply_final(call, response)
    message = _get(response, "message")
    if capture:
        call.output_messages = [output_message(message, None, _get(response, "done_reason"))]
    if not call.usage.known:
        text = _get(message, "content")
        if isinstance(text, str):
            call.output_text.append(text)


def apply_generate(call: GenAICall, response: Any, capture: bool) -> None:
    apply_final(call, response)
    text = _get(response, "response")
    if capture:
        call.output_messages = [output_message(None, text, _get(response, "done_reason"))]
    if not call.usage.known and isinstance(text, str):
        call.output_text.append(text)


def apply_embed(call: GenAICall, response: Any, capture: bool) -> None:
    """``embed`` reports ``prompt_eval_count``; the deprecated ``embeddings`` reports no usage (estimated)."""
    apply_final(call, response)
    vectors = _get(response, "embeddings")
    first = vectors[0] if vectors else _get(response, "embedding")
    if first:
        call.attributes[semconv.EMBEDDINGS_DIMENSION_COUNT] = len(first)


# -- stream parts -----------------------------------------------------------------------------------


def observe_chat_part(call: GenAICall, part: Any) -> None:
    text = part.message.content
    if text:
        call.output_text.append(text)
    if part.done:
        apply_final(call, part)


def observe_generate_part(call: GenAICall, part: Any) -> None:
    text = part.response
    if text:
        call.output_text.append(text)
    if part.done:
        apply_final(call, part)


def part_observer(method: str, call: GenAICall, capture: bool) -> Callable[[GenAICall, Any], None]:
    """The plain per-part observer, or one that also gathers the output message for content capture."""
    observe = observe_chat_part if method == "chat" else observe_generate_part
    if not capture:
        return observe
    thinking: list[str] = []
    tool_calls: list[Any] = []

    def observe_for_capture(call: GenAICall, part: Any) -> None:
        observe(call, part)
        message = _get(part, "message")
        if message is not None:
            if message.thinking:
                thinking.append(message.thinking)
            if message.tool_calls:
                tool_calls.extend(message.tool_calls)
        elif part.thinking:
            thinking.append(part.thinking)

    def build() -> None:
        message = {"content": "".join(call.output_text), "thinking": "".join(thinking), "tool_calls": tool_calls}
        reason = call.finish_reasons[-1] if call.finish_reasons else None
        call.output_messages = [output_message(message, None, reason)]

    call.before_end = build
    return observe_for_capture
