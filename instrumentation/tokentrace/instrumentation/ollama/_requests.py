"""Request side: turn an Ollama method's arguments (positional or keyword) into a :class:`GenAICall`.

Ollama's methods are called positionally as often as not (``client.chat("llama3.2", messages)``), so
each argument is read from ``args`` by its position in the SDK's signature, else from ``kwargs``.
Sampling settings live in ``options`` (a dict or ``ollama.Options``) under Ollama's own names.
The chat message shape (role/content, ``tool_calls`` with ``function.name``/``arguments``) matches the
OpenAI one, so content capture reuses those readers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokentrace.core import semconv
from tokentrace.core.call import GenAICall
from tokentrace.instrumentation.openai import _content

PROVIDER = "ollama"

# The positional parameters of each method, in the SDK's order (the rest are keyword-only).
POSITIONAL: dict[str, tuple[str, ...]] = {
    "chat": ("model", "messages"),
    "generate": ("model", "prompt", "suffix"),
    "embed": ("model", "input", "truncate", "options", "keep_alive", "dimensions"),
    "embeddings": ("model", "prompt", "options", "keep_alive"),
}
OPERATIONS = {"chat": "chat", "generate": "text_completion", "embed": "embeddings", "embeddings": "embeddings"}

_FLOAT_OPTIONS = (
    ("temperature", semconv.REQUEST_TEMPERATURE),
    ("top_p", semconv.REQUEST_TOP_P),
    ("top_k", semconv.REQUEST_TOP_K),
    ("frequency_penalty", semconv.REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", semconv.REQUEST_PRESENCE_PENALTY),
)


def argument(method: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], name: str) -> Any:
    names = POSITIONAL[method]
    if name in names:
        index = names.index(name)
        if index < len(args):
            return args[index]
    return kwargs.get(name)


def endpoint(instance: Any) -> tuple[str | None, int | None]:
    url = getattr(getattr(instance, "_client", None), "base_url", None)
    if url is None:
        return None, None
    return url.host or None, url.port


def _option(options: Any, key: str) -> Any:
    if isinstance(options, Mapping):
        return options.get(key)
    return getattr(options, key, None)


def _request_attributes(options: Any, stream: bool | None, output_format: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    if stream is not None:
        attributes[semconv.REQUEST_STREAM] = stream
    if options is not None:
        for key, name in _FLOAT_OPTIONS:
            value = _option(options, key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                attributes[name] = float(value)
        for key, name in (("num_predict", semconv.REQUEST_MAX_TOKENS), ("seed", semconv.REQUEST_SEED)):
            value = _option(options, key)
            if isinstance(value, int) and not isinstance(value, bool):
                attributes[name] = value
        stop = _option(options, "stop")
        if isinstance(stop, (list, tuple)) and all(isinstance(s, str) for s in stop):
            attributes[semconv.REQUEST_STOP_SEQUENCES] = list(stop)
    if output_format == "json" or isinstance(output_format, Mapping):
        attributes[semconv.OUTPUT_TYPE] = "json"
    return attributes


def tool_definitions(tools: Any) -> list[dict[str, Any]]:
    """Tools as dicts/``ollama.Tool`` (OpenAI's shape) or plain Python functions (Ollama converts those)."""
    result = []
    for tool in tools or ():
        if callable(tool) and not isinstance(tool, Mapping) and not hasattr(tool, "function"):
            doc = (getattr(tool, "__doc__", None) or "").strip()
            result.append({"type": "function", "name": getattr(tool, "__name__", None), "description": doc or None})
        else:
            result.extend(_content.tool_definitions([tool]))
    return result


def describe(
    method: str, instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], *, capture: bool
) -> GenAICall:
    def get(name: str) -> Any:
        return argument(method, args, kwargs, name)

    model = get("model")
    stream = kwargs.get("stream") is True if method in ("chat", "generate") else None
    address, port = endpoint(instance)
    attributes = _request_attributes(get("options"), stream, kwargs.get("format"))
    dimensions = get("dimensions") if method == "embed" else None
    if isinstance(dimensions, int):
        attributes[semconv.EMBEDDINGS_DIMENSION_COUNT] = dimensions
    call = GenAICall(
        OPERATIONS[method],
        PROVIDER,
        model if isinstance(model, str) and model else None,
        server_address=address,
        server_port=port,
        stream=bool(stream),
        start_attributes=attributes,
    )
    # A local model has no list price: without a price-file entry, say so rather than "not in catalogue".
    call.no_list_price_reason = semconv.COST_UNAVAILABLE_LOCAL_MODEL
    if method == "chat":
        messages = _content.snapshot(get("messages"))
        call.input_text = lambda: _content.chat_message_texts(messages)
        if capture:
            call.input_messages = lambda: _content.chat_input_messages(messages)
            tools = kwargs.get("tools")
            if tools:
                call.tool_definitions = lambda: tool_definitions(tools)
    elif method == "generate":
        prompt = get("prompt")
        system = kwargs.get("system")
        call.input_text = lambda: _content.plain_texts(prompt) + _content.plain_texts(system)
        if capture:
            call.input_messages = lambda: [
                {"role": "user", "parts": [{"type": "text", "content": text}]} for text in _content.plain_texts(prompt)
            ]
            if isinstance(system, str) and system:
                call.system_instructions = lambda: [{"type": "text", "content": system}]
    else:
        items = get("input") if method == "embed" else get("prompt")
        call.input_text = lambda: _content.plain_texts(items)
    return call
