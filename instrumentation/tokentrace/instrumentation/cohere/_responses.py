"""Response side: read ids, finish reasons, usage and (when captured) output from Cohere v2 results.

Usage: Cohere reports ``usage.tokens`` (what the model processed) and ``usage.billed_units`` (what
Cohere bills). ``gen_ai.usage.*`` follow ``tokens`` where present, as the conventions count tokens the
model used; the cost is priced from the billed units, because that is the amount on the invoice.
Billed units are also kept as ``tokentrace.cohere.billed_units.*``. Where only one of the two is
reported, it serves for both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tokentrace.core import semconv
from tokentrace.core.call import GenAICall
from tokentrace.core.usage import Usage
from tokentrace.instrumentation.openai import _content

# Cohere's finish reasons in the conventions' output-message vocabulary (the span attribute keeps
# Cohere's own value).
_OUTPUT_FINISH = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_call",
    "ERROR": "error",
    "TIMEOUT": "error",
}

_BILLED = (
    ("input_tokens", semconv.COHERE_BILLED_INPUT_TOKENS),
    ("output_tokens", semconv.COHERE_BILLED_OUTPUT_TOKENS),
    ("search_units", semconv.COHERE_BILLED_SEARCH_UNITS),
    ("classifications", semconv.COHERE_BILLED_CLASSIFICATIONS),
)


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def _count(value: Any) -> int | None:
    """Cohere types its counts as floats; they are whole numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def apply_usage(call: GenAICall, usage: Any) -> None:
    """Fill ``call.usage`` from ``tokens`` (else billed units) and ``call.billed_usage`` from billed units."""
    tokens = _get(usage, "tokens")
    billed = _get(usage, "billed_units")
    billed_input = _count(_get(billed, "input_tokens"))
    billed_output = _count(_get(billed, "output_tokens"))
    input_tokens = _count(_get(tokens, "input_tokens"))
    output_tokens = _count(_get(tokens, "output_tokens"))
    target = call.usage
    target.input_tokens = input_tokens if input_tokens is not None else billed_input
    target.output_tokens = output_tokens if output_tokens is not None else billed_output
    cached = _count(_get(usage, "cached_tokens"))
    if cached:
        target.cache_read_input_tokens = cached
    target.source = semconv.USAGE_SOURCE_REPORTED
    if billed is not None:
        if billed_input is not None or billed_output is not None:
            call.billed_usage = Usage(input_tokens=billed_input, output_tokens=billed_output)
        for key, name in _BILLED:
            value = _count(_get(billed, key))
            if value is not None:
                call.attributes[name] = value


def _finish(call: GenAICall, reason: Any) -> None:
    if reason is not None:
        call.finish_reasons.append(str(reason))


def output_message(message: Any, finish_reason: Any) -> dict[str, Any]:
    """An assistant message (``AssistantMessageResponse`` shape) in the conventions' JSON shape."""
    parts: list[dict[str, Any]] = []
    plan = _get(message, "tool_plan")
    if isinstance(plan, str) and plan:
        parts.append({"type": "reasoning", "content": plan})
    for item in _get(message, "content") or ():
        kind = _get(item, "type")
        if kind == "text":
            parts.append({"type": "text", "content": _get(item, "text")})
        elif kind == "thinking":
            parts.append({"type": "reasoning", "content": _get(item, "thinking")})
    for tool_call in _get(message, "tool_calls") or ():
        function = _get(tool_call, "function")
        parts.append(
            {
                "type": "tool_call",
                "id": _get(tool_call, "id"),
                "name": _get(function, "name"),
                "arguments": _content._arguments(_get(function, "arguments")),
            }
        )
    return {"role": "assistant", "parts": parts, "finish_reason": _OUTPUT_FINISH.get(str(finish_reason), "stop")}


def apply_chat(call: GenAICall, response: Any, capture: bool) -> None:
    call.response_id = _get(response, "id")
    model = _get(response, "model")  # not in Cohere's schema today; read if a deployment adds it
    if isinstance(model, str):
        call.response_model = model
    reason = _get(response, "finish_reason")
    _finish(call, reason)
    usage = _get(response, "usage")
    if usage is not None:
        apply_usage(call, usage)
    message = _get(response, "message")
    if capture:
        call.output_messages = [output_message(message, reason)]
    if not call.usage.known:
        for item in _get(message, "content") or ():
            text = _get(item, "text")
            if isinstance(text, str):
                call.output_text.append(text)


def apply_embed(call: GenAICall, response: Any, capture: bool) -> None:
    call.response_id = _get(response, "id")
    meta = _get(response, "meta")
    if meta is not None:
        apply_usage(call, meta)  # ApiMeta carries the same tokens / billed_units pair
    embeddings = _get(response, "embeddings")
    if embeddings is not None:
        for key in ("float_", "int8", "uint8", "binary", "ubinary", "base64"):
            vectors = _get(embeddings, key) if not isinstance(embeddings, list) else embeddings
            if vectors:
                first = vectors[0]
                if isinstance(first, (list, str)) and key != "base64":
                    call.attributes.setdefault(semconv.EMBEDDINGS_DIMENSION_COUNT, len(first))
                break


# -- stream events ----------------------------------------------------------------------------------


def observe_event(call: GenAICall, event: Any) -> None:
    """Per event: a type switch and a few attribute reads (text kept only for estimates)."""
    kind = event.type
    if kind == "content-delta":
        text = _get(_get(_get(event.delta, "message"), "content"), "text")
        if text:
            call.output_text.append(text)
    elif kind == "message-start":
        call.response_id = event.id
    elif kind == "tool-call-delta":
        # Older SDKs (5.x) type this delta's message as a plain dict.
        arguments = _get(_get(_get(_get(event.delta, "message"), "tool_calls"), "function"), "arguments")
        if arguments:
            call.output_text.append(arguments)
    elif kind == "message-end":
        delta = event.delta
        if delta is not None:
            _finish(call, delta.finish_reason)
            if delta.usage is not None:
                apply_usage(call, delta.usage)


def chat_event_observer(call: GenAICall, capture: bool) -> Callable[[GenAICall, Any], None]:
    """The plain observer, or one that also rebuilds the output message for content capture."""
    if not capture:
        return observe_event
    state: dict[str, Any] = {"text": [], "thinking": [], "plan": [], "tools": {}}

    def observe(call: GenAICall, event: Any) -> None:
        observe_event(call, event)
        kind = event.type
        message = _get(_get(event, "delta"), "message")
        if kind == "content-delta":
            content = _get(message, "content")
            thinking = _get(content, "thinking")
            if thinking:
                state["thinking"].append(thinking)
            text = _get(content, "text")
            if text:
                state["text"].append(text)
        elif kind == "tool-plan-delta":
            plan = _get(message, "tool_plan")
            if plan:
                state["plan"].append(plan)
        elif kind in ("tool-call-start", "tool-call-delta"):
            tool_call = _get(message, "tool_calls")
            entry = state["tools"].setdefault(_get(event, "index"), {"id": None, "name": None, "args": []})
            entry["id"] = _get(tool_call, "id") or entry["id"]
            function = _get(tool_call, "function")
            entry["name"] = _get(function, "name") or entry["name"]
            arguments = _get(function, "arguments")
            if arguments:
                entry["args"].append(arguments)

    def build() -> None:
        content = []
        if state["thinking"]:
            content.append({"type": "thinking", "thinking": "".join(state["thinking"])})
        if state["text"]:
            content.append({"type": "text", "text": "".join(state["text"])})
        message = {
            "tool_plan": "".join(state["plan"]) or None,
            "content": content,
            "tool_calls": [
                {"id": t["id"], "function": {"name": t["name"], "arguments": "".join(t["args"])}}
                for _, t in sorted(state["tools"].items())
            ],
        }
        call.output_messages = [output_message(message, call.finish_reasons[-1] if call.finish_reasons else None)]

    call.before_end = build
    return observe
