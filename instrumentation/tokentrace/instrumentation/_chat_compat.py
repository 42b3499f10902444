"""Chat Completions shapes as SDKs other than ``openai`` take and return them (Mistral, Groq, ...).

Their request parameters are mostly OpenAI's (each provider names its integer ones), and their
results and chunks are OpenAI's (``choices[].message`` / ``choices[].delta``, ``usage`` with
``prompt_tokens`` / ``completion_tokens``), with a few differences this module absorbs so each
provider module stays a thin mapping: message content may be a list of parts (Mistral), tool-call
arguments may be an object rather than a JSON string (Mistral), a delta may carry ``reasoning``
text (Groq), and absent fields may be an SDK sentinel (Speakeasy's ``UNSET``) rather than None.

The conventions' message shapes and the usage reader are the OpenAI module's
(:mod:`tokentrace.instrumentation.openai._content`, ``_responses.apply_chat_usage``), reused, not
copied. What is not reused is the OpenAI module's result reader: it also records ``openai.*``
attributes, which do not belong on another provider's span.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from tokentrace.core import semconv
from tokentrace.core.call import GenAICall
from tokentrace.instrumentation.openai import _content
from tokentrace.instrumentation.openai._responses import apply_chat_usage

Observer = Callable[[GenAICall, Any], None]

__all__ = [
    "apply_chat_result",
    "apply_chat_usage",
    "apply_embeddings_result",
    "chat_chunk_observer",
    "chat_request_attributes",
    "describe_chat_messages",
    "integer",
    "new_call",
    "number",
    "server_of",
    "text",
]


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def text(value: Any) -> str | None:
    """A string, or None for absent values and SDK sentinels."""
    return value if isinstance(value, str) else None


def number(value: Any) -> float | None:
    """An int or float request parameter (not a bool, not a sentinel)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def integer(value: Any) -> int | None:
    """An int request parameter (not a bool, not a sentinel)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


Server = tuple[str | None, int | None]  # server.address, server.port

# Chat Completions parameters both SDKs name alike.
_FLOAT_PARAMETERS = (
    ("temperature", semconv.REQUEST_TEMPERATURE),
    ("top_p", semconv.REQUEST_TOP_P),
    ("presence_penalty", semconv.REQUEST_PRESENCE_PENALTY),
    ("frequency_penalty", semconv.REQUEST_FREQUENCY_PENALTY),
)


def chat_request_attributes(
    kwargs: Mapping[str, Any], stream: bool, integers: tuple[tuple[str, str], ...]
) -> dict[str, Any]:
    """The conventions' request attributes from Chat Completions-style keyword arguments.

    ``integers`` names the provider's own integer parameters (``random_seed`` or ``seed``, ...); the
    first of several mapped to one attribute wins.
    """
    attributes: dict[str, Any] = {semconv.REQUEST_STREAM: stream}
    for key, name in _FLOAT_PARAMETERS:
        value = number(kwargs.get(key))
        if value is not None:
            attributes[name] = value
    for key, name in integers:
        value = integer(kwargs.get(key))
        if value is not None and name not in attributes:
            attributes[name] = value
    choices = integer(kwargs.get("n"))
    if choices is not None and choices != 1:
        attributes[semconv.REQUEST_CHOICE_COUNT] = choices
    stop = kwargs.get("stop")
    if isinstance(stop, str):
        attributes[semconv.REQUEST_STOP_SEQUENCES] = [stop]
    elif isinstance(stop, (list, tuple)) and stop and all(isinstance(s, str) for s in stop):
        attributes[semconv.REQUEST_STOP_SEQUENCES] = list(stop)
    output_type = _output_type(kwargs.get("response_format"))
    if output_type:
        attributes[semconv.OUTPUT_TYPE] = output_type
    return attributes


def _output_type(response_format: Any) -> str | None:
    """``json_object`` / ``json_schema`` -> ``json``; a dict or an SDK model (whose type may be an enum)."""
    if isinstance(response_format, Mapping):
        kind = response_format.get("type")
    else:
        kind = getattr(response_format, "type", None)
    kind = getattr(kind, "value", kind)
    if kind in ("json_object", "json_schema"):
        return "json"
    return "text" if kind == "text" else None


def new_call(
    operation: str, provider: str, model: Any, server: Server, stream: bool, attributes: dict[str, Any]
) -> GenAICall:
    return GenAICall(
        operation,
        provider,
        text(model),
        server_address=server[0],
        server_port=server[1],
        stream=stream,
        start_attributes=attributes,
    )


@functools.lru_cache(maxsize=64)
def server_of(url: str) -> Server:
    """``server.address`` and ``server.port`` of a base URL (clients keep theirs for life: cached)."""
    parts = urlsplit(url)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        port = None
    return (parts.hostname or None), port


# -- content ----------------------------------------------------------------------------------------


def _content_texts(content: Any) -> tuple[str, str]:
    """(answer text, reasoning text) of a message's content: a string or a list of parts."""
    if isinstance(content, str):
        return content, ""
    answer: list[str] = []
    reasoning: list[str] = []
    if isinstance(content, list):
        for part in content:
            kind = _get(part, "type")
            if kind == "thinking":  # Mistral's reasoning part holds a list of text parts
                reasoning.extend(t for t in (text(_get(p, "text")) for p in _get(part, "thinking") or ()) if t)
                continue
            value = text(_get(part, "text"))
            if value:
                answer.append(value)
    return "".join(answer), "".join(reasoning)


def _output_message(content: str, reasoning: str, tool_calls: Any, finish_reason: Any) -> dict[str, Any]:
    message = _content.chat_output_message(
        {"content": content or None, "tool_calls": tool_calls if isinstance(tool_calls, list) else None},
        finish_reason,
    )
    if reasoning:
        message["parts"].insert(0, {"type": "reasoning", "content": reasoning})
    return message


def describe_chat_messages(call: GenAICall, messages: Any, tools: Any, capture: bool) -> None:
    """Lazy prompt text for estimates and, with capture on, the conventions' input shapes."""
    snapshot = _content.snapshot(messages)
    call.input_text = lambda: _content.chat_message_texts(snapshot)
    if capture:
        call.input_messages = lambda: _content.chat_input_messages(snapshot)
        if isinstance(tools, list) and tools:
            call.tool_definitions = lambda: _content.tool_definitions(tools)


# -- complete results -------------------------------------------------------------------------------


def apply_chat_result(call: GenAICall, completion: Any, capture: bool) -> None:
    """Id, model, finish reasons, usage and (with capture) output messages of a chat completion."""
    call.response_id = text(_get(completion, "id"))
    call.response_model = text(_get(completion, "model"))
    choices = _get(completion, "choices") or ()
    call.finish_reasons = [str(_get(choice, "finish_reason") or "") for choice in choices]
    usage = _get(completion, "usage")
    if usage is not None:
        apply_chat_usage(call.usage, usage)
    messages = []
    for choice in choices:
        message = _get(choice, "message")
        answer, reasoning = _content_texts(_get(message, "content"))
        reasoning = reasoning or text(_get(message, "reasoning")) or ""
        tool_calls = _get(message, "tool_calls")
        if capture:
            messages.append(_output_message(answer, reasoning, tool_calls, _get(choice, "finish_reason")))
        if not call.usage.known:
            call.output_text.extend(t for t in (answer, reasoning) if t)
    if capture:
        call.output_messages = messages


def apply_embeddings_result(call: GenAICall, result: Any) -> None:
    call.response_id = text(_get(result, "id"))
    call.response_model = text(_get(result, "model"))
    usage = _get(result, "usage")
    prompt_tokens = _get(usage, "prompt_tokens")
    if isinstance(prompt_tokens, int):
        call.usage.input_tokens = prompt_tokens
        call.usage.source = semconv.USAGE_SOURCE_REPORTED
    data = _get(result, "data") or ()
    if data:
        vector = _get(data[0], "embedding")
        if isinstance(vector, list):
            call.attributes[semconv.EMBEDDINGS_DIMENSION_COUNT] = len(vector)


# -- stream chunks ----------------------------------------------------------------------------------


def _arguments_text(arguments: Any) -> str:
    """Tool-call arguments as text: a JSON string as sent, an object (Mistral) serialised."""
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments, ensure_ascii=False, default=str) if arguments else ""


def observe_chat_chunk(call: GenAICall, chunk: Any) -> None:
    """Per chunk: a few field reads and appends; usage wherever the chunk carries it."""
    if call.response_id is None:
        call.response_id = text(chunk.id)
        call.response_model = text(chunk.model)
    usage = getattr(chunk, "usage", None)
    if usage is not None:
        apply_chat_usage(call.usage, usage)
    for choice in chunk.choices:
        delta = choice.delta
        if delta is not None:
            content = delta.content
            if isinstance(content, str):
                if content:
                    call.output_text.append(content)
            elif content:
                call.output_text.extend(t for t in _content_texts(content) if t)
            reasoning = getattr(delta, "reasoning", None)
            if isinstance(reasoning, str) and reasoning:
                call.output_text.append(reasoning)
            tool_calls = delta.tool_calls
            if tool_calls:
                for tool_call in tool_calls:
                    function = tool_call.function
                    if function is not None:
                        if function.name:
                            call.output_text.append(function.name)
                        arguments = _arguments_text(function.arguments)
                        if arguments:
                            call.output_text.append(arguments)
        reason = choice.finish_reason
        if isinstance(reason, str) and reason:
            call.finish_reasons.append(reason)


class _Choices:
    """Output messages rebuilt from deltas, per choice (content capture only)."""

    def __init__(self) -> None:
        self.by_index: dict[int, dict[str, Any]] = {}

    def add(self, chunk: Any) -> None:
        for choice in chunk.choices:
            state = self.by_index.setdefault(
                choice.index, {"content": [], "reasoning": [], "tool_calls": {}, "finish_reason": None}
            )
            delta = choice.delta
            if delta is not None:
                answer, reasoning = _content_texts(delta.content)
                if answer:
                    state["content"].append(answer)
                reasoning = reasoning or text(getattr(delta, "reasoning", None))
                if reasoning:
                    state["reasoning"].append(reasoning)
                for position, tool_call in enumerate(delta.tool_calls or ()):
                    index = getattr(tool_call, "index", None)
                    key = index if isinstance(index, int) else position
                    entry = state["tool_calls"].setdefault(key, {"id": None, "name": "", "args": []})
                    if text(tool_call.id):
                        entry["id"] = tool_call.id
                    function = tool_call.function
                    if function is not None:
                        entry["name"] += text(function.name) or ""
                        if function.arguments:
                            entry["args"].append(function.arguments)
            if isinstance(choice.finish_reason, str):
                state["finish_reason"] = choice.finish_reason

    def messages(self) -> list[dict[str, Any]]:
        def arguments(parts: list[Any]) -> Any:
            if len(parts) == 1 and not isinstance(parts[0], str):
                return parts[0]  # an object, sent whole (Mistral)
            return "".join(_arguments_text(p) for p in parts)

        return [
            _output_message(
                "".join(state["content"]),
                "".join(state["reasoning"]),
                [
                    {"id": tc["id"], "function": {"name": tc["name"], "arguments": arguments(tc["args"])}}
                    for _, tc in sorted(state["tool_calls"].items())
                ],
                state["finish_reason"],
            )
            for _, state in sorted(self.by_index.items())
        ]


def chat_chunk_observer(call: GenAICall, capture: bool) -> Observer:
    """The plain per-chunk observer, or one that also rebuilds output messages for capture."""
    if not capture:
        return observe_chat_chunk
    choices = _Choices()

    def observe(call: GenAICall, chunk: Any) -> None:
        observe_chat_chunk(call, chunk)
        choices.add(chunk)

    def build_messages() -> None:
        call.output_messages = choices.messages()

    call.before_end = build_messages
    return observe
