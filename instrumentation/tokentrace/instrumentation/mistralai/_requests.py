"""Request side: a ``mistralai`` method's keyword arguments as a :class:`GenAICall`.

Every SDK method here is keyword-only. Unset parameters are Speakeasy's ``UNSET`` sentinel (or
None), which the type checks in :mod:`~tokentrace.instrumentation._chat_compat` skip.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokentrace.core import semconv
from tokentrace.core.call import GenAICall
from tokentrace.instrumentation import _chat_compat
from tokentrace.instrumentation._chat_compat import Server, integer
from tokentrace.instrumentation.openai import _content

PROVIDER = "mistral_ai"

# Mistral's names for the integer parameters of the conventions.
_INTEGERS = (
    ("max_tokens", semconv.REQUEST_MAX_TOKENS),
    ("random_seed", semconv.REQUEST_SEED),
    ("top_k", semconv.REQUEST_TOP_K),
)


def describe_chat(kwargs: Mapping[str, Any], server: Server, *, stream: bool, capture: bool) -> GenAICall:
    attributes = _chat_compat.chat_request_attributes(kwargs, stream, _INTEGERS)
    call = _chat_compat.new_call("chat", PROVIDER, kwargs.get("model"), server, stream, attributes)
    _chat_compat.describe_chat_messages(call, kwargs.get("messages"), kwargs.get("tools"), capture)
    return call


def describe_embeddings(kwargs: Mapping[str, Any], server: Server, *, stream: bool, capture: bool) -> GenAICall:
    attributes: dict[str, Any] = {}
    encoding = kwargs.get("encoding_format")
    encoding = getattr(encoding, "value", encoding)  # an enum member or its string
    if isinstance(encoding, str):
        attributes[semconv.REQUEST_ENCODING_FORMATS] = [encoding]
    dimensions = integer(kwargs.get("output_dimension"))
    if dimensions is not None:
        attributes[semconv.EMBEDDINGS_DIMENSION_COUNT] = dimensions
    call = _chat_compat.new_call("embeddings", PROVIDER, kwargs.get("model"), server, False, attributes)
    inputs = kwargs.get("inputs")
    call.input_text = lambda: _content.plain_texts(inputs)
    return call
