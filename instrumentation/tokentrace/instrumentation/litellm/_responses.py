"""Response side: read LiteLLM's ``ModelResponse`` / ``EmbeddingResponse`` and stream chunks.

Where an instrumented SDK call ran underneath (the openai SDK for OpenAI models) its exact
provider-level detail has already been merged into the call (``core.invoke``): the readers here only
fill what is still missing, so the provider's own response model, id and usage win over LiteLLM's
normalised copy. ``_hidden_params`` carry what only LiteLLM knows: the provider it routed to, the
endpoint, and its own cost (``response_cost``, computed by LiteLLM for non-streamed calls; a stream's
``include_usage`` chunk carries it as ``usage.cost``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tokentrace.core import semconv
from tokentrace.core.call import GenAICall
from tokentrace.core.usage import Usage
from tokentrace.instrumentation.litellm import _providers
from tokentrace.instrumentation.openai import _content

_MISSING = object()


def _get(obj: Any, key: str) -> Any:
    """A field of a LiteLLM result, read without pydantic's ``__getattr__``.

    LiteLLM keeps most fields of its pydantic models as *extras* and ``_hidden_params`` as a private
    attribute; plain attribute access reaches both through ``BaseModel.__getattr__`` (about a
    microsecond a read, several for a field that is absent), which per stream chunk would cost more
    than everything else we do. The instance dict and pydantic's extra/private slots are read directly.
    """
    if isinstance(obj, dict):
        return obj.get(key)
    fields = getattr(obj, "__dict__", None)
    if fields is None:
        return getattr(obj, key, None)
    value = fields.get(key, _MISSING)
    if value is not _MISSING:
        return value
    if key.startswith("_"):
        private = getattr(obj, "__pydantic_private__", None)
        if private is not None:
            return private.get(key)
    else:
        extra = getattr(obj, "__pydantic_extra__", _MISSING)
        if isinstance(extra, dict):
            return extra.get(key)
        if extra is None:  # a pydantic model without extras: every field is in __dict__
            return None
    return getattr(obj, key, None)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def hidden_params(result: Any) -> Mapping[str, Any]:
    hidden = _get(result, "_hidden_params")
    return hidden if isinstance(hidden, Mapping) else {}


# -- usage ------------------------------------------------------------------------------------------


def read_usage(reported: Any) -> Usage | None:
    """LiteLLM's OpenAI-shaped usage, already in the conventions' accounting (``prompt_tokens``
    includes cache reads and writes for every provider LiteLLM normalises)."""
    usage = Usage(
        input_tokens=_int(_get(reported, "prompt_tokens")), output_tokens=_int(_get(reported, "completion_tokens"))
    )
    if not usage.known:
        return None
    details = _get(reported, "prompt_tokens_details")
    cached = _int(_get(details, "cached_tokens"))
    if cached is None:
        cached = _int(_get(reported, "cache_read_input_tokens"))
    if cached:
        usage.cache_read_input_tokens = cached
    written = _int(_get(reported, "cache_creation_input_tokens"))
    if written is None:
        written = _int(_get(details, "cache_creation_tokens"))
    if written:
        usage.cache_creation_input_tokens = written
    reasoning = _int(_get(_get(reported, "completion_tokens_details"), "reasoning_tokens"))
    if reasoning:
        usage.reasoning_output_tokens = reasoning
    return usage


def _apply_usage(call: GenAICall, reported: Any, *, zero_is_unknown: bool = False) -> None:
    if call.usage.known or reported is None:
        return  # the inner SDK call's own usage was merged: it is the provider's exact count
    usage = read_usage(reported)
    if usage is None:
        return
    if zero_is_unknown and not usage.input_tokens and not usage.output_tokens:
        return  # LiteLLM's stream total is 0/0 when the provider sent no usage: unknown, not free
    call.usage = usage


# -- what only LiteLLM knows ---------------------------------------------------------------------------


def apply_hidden(call: GenAICall, hidden: Mapping[str, Any], *, cost: bool) -> None:
    """Provider, endpoint, deployment and (non-streamed) cost from ``_hidden_params``."""
    if not hidden:
        return
    attributes = call.attributes
    routed = hidden.get("custom_llm_provider")
    if isinstance(routed, str) and routed:
        attributes[semconv.LITELLM_PROVIDER] = routed
        name = _providers.provider_name(routed)
        if name != call.provider:
            call.provider = name
            attributes[semconv.PROVIDER_NAME] = name
    api_base = hidden.get("api_base")
    if isinstance(api_base, str) and api_base:
        attributes[semconv.LITELLM_API_BASE] = api_base
        if call.server_address is None:
            address, port = _providers.server_of(api_base)
            if address:
                call.server_address, call.server_port = address, port
                attributes[semconv.SERVER_ADDRESS] = address
                if port is not None:
                    attributes[semconv.SERVER_PORT] = port
    model_id = hidden.get("model_id")
    if isinstance(model_id, str) and model_id:
        attributes[semconv.LITELLM_MODEL_ID] = model_id
    call_id = hidden.get("litellm_call_id")
    if isinstance(call_id, str) and call_id:
        attributes[semconv.LITELLM_CALL_ID] = call_id
    if hidden.get("cache_hit") is True:
        attributes[semconv.LITELLM_CACHE_HIT] = True
    if cost:
        _apply_cost(call, hidden.get("response_cost"))
    if call.response_model is None:
        model = hidden.get("provider_response_model")
        if isinstance(model, str) and model:
            call.response_model = model


def _apply_cost(call: GenAICall, value: Any) -> None:
    """LiteLLM's own cost of the call (USD), where it computed one; None when its cost map lacks the model."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        call.reported_cost = float(value)


# -- complete results -----------------------------------------------------------------------------


def apply_completion(call: GenAICall, response: Any, capture: bool) -> None:
    apply_hidden(call, hidden_params(response), cost=True)
    if call.response_id is None:
        call.response_id = _get(response, "id")
    if call.response_model is None:
        call.response_model = _get(response, "model")
    choices = _get(response, "choices") or ()
    if not call.finish_reasons:
        call.finish_reasons = [str(_get(choice, "finish_reason") or "") for choice in choices]
    _apply_usage(call, _get(response, "usage"))
    if capture:
        call.output_messages = [
            _content.chat_output_message(_get(choice, "message"), _get(choice, "finish_reason")) for choice in choices
        ]
    if not call.usage.known:
        for choice in choices:
            text = _get(_get(choice, "message"), "content")
            if isinstance(text, str):
                call.output_text.append(text)


def apply_embedding(call: GenAICall, response: Any, capture: bool) -> None:
    apply_hidden(call, hidden_params(response), cost=True)
    if call.response_model is None:
        call.response_model = _get(response, "model")
    if not call.usage.known:
        tokens = _int(_get(_get(response, "usage"), "prompt_tokens"))
        if tokens is not None:
            call.usage.input_tokens = tokens
            call.usage.source = semconv.USAGE_SOURCE_REPORTED
    data = _get(response, "data") or ()
    if data and semconv.EMBEDDINGS_DIMENSION_COUNT not in call.attributes:
        vector = _get(data[0], "embedding")
        if isinstance(vector, list):
            call.attributes[semconv.EMBEDDINGS_DIMENSION_COUNT] = len(vector)


# -- stream chunks ----------------------------------------------------------------------------------


class _StreamSeen:
    """What a stream's chunks left for the end: the last chunk's hidden params (LiteLLM puts its
    computed usage there when the stream ends) and, for capture, the output per choice."""

    __slots__ = ("choices", "first", "hidden")

    def __init__(self) -> None:
        self.first = True
        self.hidden: Mapping[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] | None = None


def chunk_observer(call: GenAICall, capture: bool) -> Callable[[GenAICall, Any], None]:
    """The per-chunk reader of a ``CustomStreamWrapper``'s ``ModelResponseStream`` chunks."""
    seen = _StreamSeen()
    if capture:
        seen.choices = {}

    def observe(call: GenAICall, chunk: Any) -> None:
        hidden = _get(chunk, "_hidden_params")
        if hidden is not None:
            seen.hidden = hidden
        if seen.first:
            seen.first = False
            if call.response_id is None:
                call.response_id = _get(chunk, "id")
            if call.response_model is None:
                call.response_model = (hidden.get("provider_response_model") if hidden else None) or _get(
                    chunk, "model"
                )
        usage = _get(chunk, "usage")
        if usage is not None:
            _apply_usage(call, usage, zero_is_unknown=True)
            _apply_cost(call, _get(usage, "cost"))  # LiteLLM prices the include_usage chunk
        for choice in _get(chunk, "choices") or ():
            delta = _get(choice, "delta")
            if delta is not None:
                content = _get(delta, "content")
                if content:
                    call.output_text.append(content)
                tool_calls = _get(delta, "tool_calls")
                if tool_calls:
                    for tool_call in tool_calls:
                        function = _get(tool_call, "function")
                        if function is not None:
                            name = _get(function, "name")
                            if name:
                                call.output_text.append(name)
                            arguments = _get(function, "arguments")
                            if arguments:
                                call.output_text.append(arguments)
            reason = _get(choice, "finish_reason")
            if reason:
                call.finish_reasons.append(reason)
            if seen.choices is not None:
                _collect(seen.choices, choice)

    def at_end() -> None:
        hidden = seen.hidden
        apply_hidden(call, hidden, cost=False)  # a stream's cost comes with its include_usage chunk
        _apply_usage(call, hidden.get("usage") if hidden else None, zero_is_unknown=True)
        if seen.choices is not None:
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
                for _, state in sorted(seen.choices.items())
            ]

    call.before_end = at_end
    return observe


def _collect(choices: dict[int, dict[str, Any]], choice: Any) -> None:
    state = choices.setdefault(_get(choice, "index") or 0, {"content": [], "tool_calls": {}, "finish_reason": None})
    delta = _get(choice, "delta")
    if delta is not None:
        content = _get(delta, "content")
        if content:
            state["content"].append(content)
        for tool_call in _get(delta, "tool_calls") or ():
            entry = state["tool_calls"].setdefault(_get(tool_call, "index"), {"id": None, "name": "", "args": []})
            if _get(tool_call, "id"):
                entry["id"] = _get(tool_call, "id")
            function = _get(tool_call, "function")
            if function is not None:
                entry["name"] += _get(function, "name") or ""
                arguments = _get(function, "arguments")
                if arguments:
                    entry["args"].append(arguments)
    reason = _get(choice, "finish_reason")
    if reason:
        state["finish_reason"] = reason
