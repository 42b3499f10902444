"""Request side: turn an OpenAI method's arguments into a :class:`GenAICall`.

Only attributes named by the GenAI conventions are read, and only from values the application
actually passed (the SDK's ``NOT_GIVEN``/``omit`` sentinels mean "absent").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import openai

from tokentrace.core import semconv
from tokentrace.core.call import GenAICall
from tokentrace.instrumentation.openai import _content
from tokentrace.instrumentation.openai._provider import Endpoint

_SENTINELS: tuple[type, ...] = tuple(
    t for t in (getattr(openai, "NotGiven", None), getattr(openai, "Omit", None)) if isinstance(t, type)
)


def given(value: Any) -> bool:
    return value is not None and not isinstance(value, _SENTINELS)


def _output_type(response_format: Any) -> str | None:
    if isinstance(response_format, Mapping):
        kind = response_format.get("type")
        if kind in ("json_object", "json_schema"):
            return "json"
        if kind == "text":
            return "text"
        return None
    if isinstance(response_format, type):  # a pydantic model passed to parse()/stream()
        return "json"
    return None


def _stop_sequences(stop: Any) -> list[str] | None:
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, (list, tuple)) and all(isinstance(s, str) for s in stop):
        return list(stop)
    return None


def _new_call(operation: str, endpoint: Endpoint, model: Any, stream: bool, attributes: dict[str, Any]) -> GenAICall:
    return GenAICall(
        operation,
        endpoint.provider,
        model if isinstance(model, str) else None,
        server_address=endpoint.address,
        server_port=endpoint.port,
        stream=stream,
        start_attributes=attributes,
    )


def _common_sampling_attributes(kwargs: Mapping[str, Any], attributes: dict[str, Any]) -> None:
    for key, name in (
        ("temperature", semconv.REQUEST_TEMPERATURE),
        ("top_p", semconv.REQUEST_TOP_P),
        ("frequency_penalty", semconv.REQUEST_FREQUENCY_PENALTY),
        ("presence_penalty", semconv.REQUEST_PRESENCE_PENALTY),
    ):
        value = kwargs.get(key)
        if given(value) and isinstance(value, (int, float)):
            attributes[name] = float(value)
    seed = kwargs.get("seed")
    if given(seed) and isinstance(seed, int):
        attributes[semconv.REQUEST_SEED] = seed
    stop = kwargs.get("stop")
    if given(stop):
        sequences = _stop_sequences(stop)
        if sequences:
            attributes[semconv.REQUEST_STOP_SEQUENCES] = sequences
    tier = kwargs.get("service_tier")
    if given(tier) and isinstance(tier, str):
        attributes[semconv.OPENAI_REQUEST_SERVICE_TIER] = tier


def describe_chat(endpoint: Endpoint, kwargs: Mapping[str, Any], *, capture: bool) -> GenAICall:
    stream = kwargs.get("stream") is True
    attributes: dict[str, Any] = {semconv.OPENAI_API_TYPE: "chat_completions", semconv.REQUEST_STREAM: stream}
    _common_sampling_attributes(kwargs, attributes)
    max_tokens = kwargs.get("max_completion_tokens")
    if not given(max_tokens):
        max_tokens = kwargs.get("max_tokens")
    if given(max_tokens) and isinstance(max_tokens, int):
        attributes[semconv.REQUEST_MAX_TOKENS] = max_tokens
    n = kwargs.get("n")
    if given(n) and isinstance(n, int) and n != 1:
        attributes[semconv.REQUEST_CHOICE_COUNT] = n
    output_type = _output_type(kwargs.get("response_format"))
    if output_type:
        attributes[semconv.OUTPUT_TYPE] = output_type
    call = _new_call("chat", endpoint, kwargs.get("model"), stream, attributes)
    messages = _content.snapshot(kwargs.get("messages"))
    call.input_text = lambda: _content.chat_message_texts(messages)
    if capture:
        call.input_messages = lambda: _content.chat_input_messages(messages)
        tools = kwargs.get("tools")
        if given(tools):
            call.tool_definitions = lambda: _content.tool_definitions(tools)
    return call


def describe_responses(endpoint: Endpoint, kwargs: Mapping[str, Any], *, capture: bool) -> GenAICall:
    stream = kwargs.get("stream") is True
    attributes: dict[str, Any] = {semconv.OPENAI_API_TYPE: "responses", semconv.REQUEST_STREAM: stream}
    _common_sampling_attributes(kwargs, attributes)
    max_tokens = kwargs.get("max_output_tokens")
    if given(max_tokens) and isinstance(max_tokens, int):
        attributes[semconv.REQUEST_MAX_TOKENS] = max_tokens
    text = kwargs.get("text")
    if given(text) and isinstance(text, Mapping):
        output_type = _output_type(text.get("format"))
        if output_type:
            attributes[semconv.OUTPUT_TYPE] = output_type
    if isinstance(kwargs.get("text_format"), type):
        attributes[semconv.OUTPUT_TYPE] = "json"
    conversation = kwargs.get("conversation")
    if given(conversation):
        conversation_id = (
            conversation
            if isinstance(conversation, str)
            else (conversation.get("id") if isinstance(conversation, Mapping) else None)
        )
        if isinstance(conversation_id, str):
            attributes[semconv.CONVERSATION_ID] = conversation_id
    call = _new_call("chat", endpoint, kwargs.get("model"), stream, attributes)
    items = _content.snapshot(kwargs.get("input"))
    instructions = kwargs.get("instructions")
    call.input_text = lambda: _content.responses_input_texts(items, instructions)
    if capture:
        call.input_messages = lambda: _content.responses_input_messages(items)
        if given(instructions) and isinstance(instructions, str):
            call.system_instructions = lambda: [{"type": "text", "content": instructions}]
        tools = kwargs.get("tools")
        if given(tools):
            call.tool_definitions = lambda: _content.tool_definitions(tools)
    return call


def describe_embeddings(endpoint: Endpoint, kwargs: Mapping[str, Any], *, capture: bool) -> GenAICall:
    attributes: dict[str, Any] = {}
    encoding = kwargs.get("encoding_format")
    if given(encoding) and isinstance(encoding, str):
        attributes[semconv.REQUEST_ENCODING_FORMATS] = [encoding]
    dimensions = kwargs.get("dimensions")
    if given(dimensions) and isinstance(dimensions, int):
        attributes[semconv.EMBEDDINGS_DIMENSION_COUNT] = dimensions
    call = _new_call("embeddings", endpoint, kwargs.get("model"), False, attributes)
    items = kwargs.get("input")
    call.input_text = lambda: _content.plain_texts(items)
    return call


def describe_completions(endpoint: Endpoint, kwargs: Mapping[str, Any], *, capture: bool) -> GenAICall:
    stream = kwargs.get("stream") is True
    attributes: dict[str, Any] = {semconv.REQUEST_STREAM: stream}
    _common_sampling_attributes(kwargs, attributes)
    max_tokens = kwargs.get("max_tokens")
    if given(max_tokens) and isinstance(max_tokens, int):
        attributes[semconv.REQUEST_MAX_TOKENS] = max_tokens
    n = kwargs.get("n")
    if given(n) and isinstance(n, int) and n != 1:
        attributes[semconv.REQUEST_CHOICE_COUNT] = n
    call = _new_call("text_completion", endpoint, kwargs.get("model"), stream, attributes)
    prompt = kwargs.get("prompt")
    call.input_text = lambda: _content.plain_texts(prompt)
    if capture:
        call.input_messages = lambda: [
            {"role": "user", "parts": [{"type": "text", "content": t}]} for t in _content.plain_texts(prompt)
        ]
    return call


def with_stream_usage(kwargs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Ask for the usage chunk; return the kwargs to send and whether we added it (so we hide it)."""
    options = kwargs.get("stream_options")
    if given(options) and isinstance(options, Mapping):
        if options.get("include_usage") is True:
            return kwargs, False
        options = {**options, "include_usage": True}
    else:
        options = {"include_usage": True}
    return {**kwargs, "stream_options": options}, True
