"""Request side: turn a Cohere v2 method's keyword arguments into a :class:`GenAICall`.

Cohere's SDK marks omitted arguments with ``OMIT`` (``...``), so "given" means neither None nor that.
The message and tool shapes of Cohere v2 match the OpenAI Chat Completions ones (role/content,
``tool_calls`` with ``function.name``/``arguments``, ``tool_call_id``), so content capture reuses
those readers.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from tokentrace.core import semconv
from tokentrace.core.call import GenAICall
from tokentrace.instrumentation.openai import _content

PROVIDER = "cohere"


def given(value: Any) -> bool:
    return value is not None and value is not Ellipsis


@functools.lru_cache(maxsize=64)
def _address(base_url: str) -> tuple[str | None, int | None]:
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80 if parts.scheme == "http" else None)
    return parts.hostname, port


def endpoint(instance: Any) -> tuple[str | None, int | None]:
    """Host and port the client sends to (``base_url``, else Cohere's production host)."""
    wrapper = getattr(instance, "_client_wrapper", None)  # ClientV2 / AsyncClientV2
    if wrapper is None:  # ``Client.v2``: a bare V2Client, whose raw client holds the wrapper
        wrapper = getattr(getattr(instance, "_raw_client", None), "_client_wrapper", None)
    get_base_url = getattr(wrapper, "get_base_url", None)
    base_url = get_base_url() if get_base_url is not None else None
    return _address(base_url) if isinstance(base_url, str) else (None, None)


_FLOATS = (
    ("temperature", semconv.REQUEST_TEMPERATURE),
    ("p", semconv.REQUEST_TOP_P),
    ("frequency_penalty", semconv.REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", semconv.REQUEST_PRESENCE_PENALTY),
)


def _chat_attributes(kwargs: Mapping[str, Any], stream: bool) -> dict[str, Any]:
    attributes: dict[str, Any] = {semconv.REQUEST_STREAM: stream}
    for key, name in _FLOATS:
        value = kwargs.get(key)
        if given(value) and isinstance(value, (int, float)) and not isinstance(value, bool):
            attributes[name] = float(value)
    for key, name in (
        ("k", semconv.REQUEST_TOP_K),
        ("max_tokens", semconv.REQUEST_MAX_TOKENS),
        ("seed", semconv.REQUEST_SEED),
    ):
        value = kwargs.get(key)
        if given(value) and isinstance(value, int) and not isinstance(value, bool):
            attributes[name] = float(value) if key == "k" else value
    stop = kwargs.get("stop_sequences")
    if given(stop) and isinstance(stop, (list, tuple)) and all(isinstance(s, str) for s in stop):
        attributes[semconv.REQUEST_STOP_SEQUENCES] = list(stop)
    response_format = kwargs.get("response_format")
    if given(response_format):
        kind = (
            response_format.get("type")
            if isinstance(response_format, Mapping)
            else getattr(response_format, "type", None)
        )
        if kind == "json_object":
            attributes[semconv.OUTPUT_TYPE] = "json"
        elif kind == "text":
            attributes[semconv.OUTPUT_TYPE] = "text"
    return attributes


def describe_chat(instance: Any, kwargs: Mapping[str, Any], *, stream: bool, capture: bool) -> GenAICall:
    address, port = endpoint(instance)
    model = kwargs.get("model")
    call = GenAICall(
        "chat",
        PROVIDER,
        model if isinstance(model, str) else None,
        server_address=address,
        server_port=port,
        stream=stream,
        start_attributes=_chat_attributes(kwargs, stream),
    )
    messages = _content.snapshot(kwargs.get("messages"))
    call.input_text = lambda: _content.chat_message_texts(messages)
    if capture:
        call.input_messages = lambda: _content.chat_input_messages(messages)
        tools = kwargs.get("tools")
        if given(tools):
            call.tool_definitions = lambda: _content.tool_definitions(tools)
    return call


def describe_embed(instance: Any, kwargs: Mapping[str, Any], *, capture: bool) -> GenAICall:
    address, port = endpoint(instance)
    attributes: dict[str, Any] = {}
    types = kwargs.get("embedding_types")
    if given(types) and isinstance(types, (list, tuple)) and all(isinstance(t, str) for t in types):
        attributes[semconv.REQUEST_ENCODING_FORMATS] = list(types)
    dimension = kwargs.get("output_dimension")
    if given(dimension) and isinstance(dimension, int):
        attributes[semconv.EMBEDDINGS_DIMENSION_COUNT] = dimension
    model = kwargs.get("model")
    call = GenAICall(
        "embeddings",
        PROVIDER,
        model if isinstance(model, str) else None,
        server_address=address,
        server_port=port,
        start_attributes=attributes,
    )
    texts = kwargs.get("texts")
    call.input_text = lambda: _content.plain_texts(texts if given(texts) else None)
    return call
