"""Request side: a ``messages.create`` / ``messages.stream`` call's arguments as a :class:`GenAICall`.

The provider comes from the client: the SDK's own ``_gen_ai_provider_name`` where it has one
(anthropic>=2), else the client class (``AnthropicBedrock`` -> ``aws.bedrock``, ``AnthropicVertex`` ->
``gcp.vertex_ai``). Only values the application passed are read (``NOT_GIVEN``/``omit`` mean absent).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anthropic

from tokentrace.core import semconv
from tokentrace.core.call import GenAICall
from tokentrace.instrumentation.anthropic import _content

PROVIDER = "anthropic"
BEDROCK = "aws.bedrock"
VERTEX = "gcp.vertex_ai"

_SENTINELS: tuple[type, ...] = tuple(
    t for t in (getattr(anthropic, "NotGiven", None), getattr(anthropic, "Omit", None)) if isinstance(t, type)
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_CLASS_PROVIDERS = {
    "AnthropicBedrock": BEDROCK,
    "AsyncAnthropicBedrock": BEDROCK,
    "BaseBedrockClient": BEDROCK,
    "AnthropicVertex": VERTEX,
    "AsyncAnthropicVertex": VERTEX,
    "BaseVertexClient": VERTEX,
}


def given(value: Any) -> bool:
    return value is not None and not isinstance(value, _SENTINELS)


def provider_of(client: Any) -> str:
    """``gen_ai.provider.name`` for a client (first party, Bedrock or Vertex)."""
    name = getattr(client, "_gen_ai_provider_name", None)
    if isinstance(name, str) and name:
        return name
    for cls in type(client).__mro__:
        provider = _CLASS_PROVIDERS.get(cls.__name__)
        if provider is not None:
            return provider
    return PROVIDER


def _server(client: Any) -> tuple[str | None, int | None]:
    url = getattr(client, "base_url", None)
    host = getattr(url, "host", None)
    if not host:
        return None, None
    port = getattr(url, "port", None) or _DEFAULT_PORTS.get(getattr(url, "scheme", ""))
    return host, port


def _output_type(kwargs: Mapping[str, Any]) -> str | None:
    for key in ("output_config", "output_format"):
        value = kwargs.get(key)
        if isinstance(value, type):  # a pydantic model given to parse()/stream()
            return "json"
        if isinstance(value, Mapping):
            fmt = value.get("format", value) if key == "output_config" else value
            if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
                return "json"
            if isinstance(fmt, type):
                return "json"
    return None


def describe(instance: Any, kwargs: Mapping[str, Any], *, stream: bool, capture: bool) -> GenAICall:
    """The call a Messages method is about to make; ``stream`` is True for the ``stream()`` helper."""
    client = getattr(instance, "_client", None)
    stream = stream or kwargs.get("stream") is True
    attributes: dict[str, Any] = {semconv.REQUEST_STREAM: stream}
    max_tokens = kwargs.get("max_tokens")
    if given(max_tokens) and isinstance(max_tokens, int):
        attributes[semconv.REQUEST_MAX_TOKENS] = max_tokens
    for key, name in (
        ("temperature", semconv.REQUEST_TEMPERATURE),
        ("top_p", semconv.REQUEST_TOP_P),
        ("top_k", semconv.REQUEST_TOP_K),
    ):
        value = kwargs.get(key)
        if given(value) and isinstance(value, (int, float)) and not isinstance(value, bool):
            attributes[name] = float(value)
    stop = kwargs.get("stop_sequences")
    if given(stop) and isinstance(stop, (list, tuple)) and all(isinstance(s, str) for s in stop):
        attributes[semconv.REQUEST_STOP_SEQUENCES] = list(stop)
    output_type = _output_type(kwargs)
    if output_type:
        attributes[semconv.OUTPUT_TYPE] = output_type
    model = kwargs.get("model")
    address, port = _server(client)
    call = GenAICall(
        "chat",
        provider_of(client),
        model if isinstance(model, str) else None,
        server_address=address,
        server_port=port,
        stream=stream,
        start_attributes=attributes,
    )
    messages = _content.snapshot(kwargs.get("messages"))
    system = kwargs.get("system")
    system = _content.snapshot(system) if given(system) else None
    call.input_text = lambda: _content.input_texts(messages, system)
    if capture:
        call.input_messages = lambda: _content.input_messages(messages)
        if system:
            call.system_instructions = lambda: _content.system_instructions(system)
        tools = kwargs.get("tools")
        if given(tools):
            tools = _content.snapshot(tools)
            call.tool_definitions = lambda: _content.tool_definitions(tools)
    return call
