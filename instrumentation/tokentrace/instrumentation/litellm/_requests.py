"""Request side: turn ``litellm.completion`` / ``embedding`` arguments into a :class:`GenAICall`.

LiteLLM takes OpenAI-shaped arguments for every provider, so the message and tool shapes are the
OpenAI module's; ``gen_ai.request.model`` is the model string exactly as the application passed it
(``anthropic/claude-...``), the provider is the one LiteLLM routes to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokentrace.core import semconv
from tokentrace.core.call import GenAICall
from tokentrace.instrumentation.litellm import _providers
from tokentrace.instrumentation.openai import _content

_FLOAT_PARAMS = (
    ("temperature", semconv.REQUEST_TEMPERATURE),
    ("top_p", semconv.REQUEST_TOP_P),
    ("frequency_penalty", semconv.REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", semconv.REQUEST_PRESENCE_PENALTY),
)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _argument(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str) -> Any:
    """A parameter LiteLLM accepts positionally too (``completion(model, messages)``)."""
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else None


def _new_call(operation: str, model: Any, kwargs: Mapping[str, Any], stream: bool, attributes: dict[str, Any]):
    litellm_provider = _providers.litellm_provider(model, kwargs.get("custom_llm_provider"))
    if litellm_provider:
        attributes[semconv.LITELLM_PROVIDER] = litellm_provider
    api_base = kwargs.get("api_base") or kwargs.get("base_url")
    address, port = _providers.server_of(api_base)
    if address:
        attributes[semconv.LITELLM_API_BASE] = api_base
    metadata = kwargs.get("metadata")
    if isinstance(metadata, Mapping):
        group = metadata.get("model_group")
        if isinstance(group, str) and group:
            attributes[semconv.LITELLM_MODEL_GROUP] = group
    return GenAICall(
        operation,
        _providers.provider_name(litellm_provider),
        model if isinstance(model, str) else None,
        server_address=address,
        server_port=port,
        stream=stream,
        start_attributes=attributes,
    )


def describe_completion(args: tuple[Any, ...], kwargs: Mapping[str, Any], *, capture: bool) -> GenAICall:
    stream = kwargs.get("stream") is True
    attributes: dict[str, Any] = {semconv.REQUEST_STREAM: stream}
    for key, name in _FLOAT_PARAMS:
        value = kwargs.get(key)
        if _number(value):
            attributes[name] = float(value)
    max_tokens = kwargs.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = kwargs.get("max_tokens")
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
        attributes[semconv.REQUEST_MAX_TOKENS] = max_tokens
    seed = kwargs.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        attributes[semconv.REQUEST_SEED] = seed
    stop = kwargs.get("stop")
    if isinstance(stop, str):
        attributes[semconv.REQUEST_STOP_SEQUENCES] = [stop]
    elif isinstance(stop, (list, tuple)) and stop and all(isinstance(s, str) for s in stop):
        attributes[semconv.REQUEST_STOP_SEQUENCES] = list(stop)
    n = kwargs.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n != 1:
        attributes[semconv.REQUEST_CHOICE_COUNT] = n
    response_format = kwargs.get("response_format")
    json_format = isinstance(response_format, Mapping) and response_format.get("type") in ("json_object", "json_schema")
    if json_format or isinstance(response_format, type):  # a dict, or a pydantic model
        attributes[semconv.OUTPUT_TYPE] = "json"
    call = _new_call("chat", _argument(args, kwargs, 0, "model"), kwargs, stream, attributes)
    messages = _content.snapshot(_argument(args, kwargs, 1, "messages"))
    call.input_text = lambda: _content.chat_message_texts(messages)
    if capture:
        call.input_messages = lambda: _content.chat_input_messages(messages)
        tools = kwargs.get("tools")
        if tools:
            call.tool_definitions = lambda: _content.tool_definitions(tools)
    return call


def describe_embedding(args: tuple[Any, ...], kwargs: Mapping[str, Any], *, capture: bool) -> GenAICall:
    attributes: dict[str, Any] = {}
    encoding = kwargs.get("encoding_format")
    if isinstance(encoding, str):
        attributes[semconv.REQUEST_ENCODING_FORMATS] = [encoding]
    dimensions = kwargs.get("dimensions")
    if isinstance(dimensions, int) and not isinstance(dimensions, bool):
        attributes[semconv.EMBEDDINGS_DIMENSION_COUNT] = dimensions
    call = _new_call("embeddings", _argument(args, kwargs, 0, "model"), kwargs, False, attributes)
    items = _argument(args, kwargs, 1, "input")
    call.input_text = lambda: _content.plain_texts(items)
    return call
