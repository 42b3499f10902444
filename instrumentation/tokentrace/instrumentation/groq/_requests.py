"""Request side: a ``groq`` method's keyword arguments as a :class:`GenAICall`.

Groq's SDK is generated like OpenAI's (Stainless), so absent parameters are its ``NOT_GIVEN`` /
``omit`` sentinels, which the type checks in :mod:`~tokentrace.instrumentation._chat_compat` skip.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokentrace.core import semconv
from tokentrace.core.call import GenAICall
from tokentrace.instrumentation import _chat_compat
from tokentrace.instrumentation._chat_compat import Server
from tokentrace.instrumentation.openai import _content

PROVIDER = "groq"

# Groq's names for the integer parameters of the conventions (max_completion_tokens wins).
_INTEGERS = (
    ("max_completion_tokens", semconv.REQUEST_MAX_TOKENS),
    ("max_tokens", semconv.REQUEST_MAX_TOKENS),
    ("seed", semconv.REQUEST_SEED),
)


def describe_chat(kwargs: Mapping[str, Any], server: Server, *, capture: bool) -> GenAICall:
    stream = kwargs.get("stream") is True
    attributes = _chat_compat.chat_request_attributes(kwargs, stream, _INTEGERS)
    call = _chat_compat.new_call("chat", PROVIDER, kwargs.get("model"), server, stream, attributes)
    _chat_compat.describe_chat_messages(call, kwargs.get("messages"), kwargs.get("tools"), capture)
    return call


def describe_embeddings(kwargs: Mapping[str, Any], server: Server, *, capture: bool) -> GenAICall:
    attributes: dict[str, Any] = {}
    encoding = kwargs.get("encoding_format")
    if isinstance(encoding, str):
        attributes[semconv.REQUEST_ENCODING_FORMATS] = [encoding]
    call = _chat_compat.new_call("embeddings", PROVIDER, kwargs.get("model"), server, False, attributes)
    inputs = kwargs.get("input")
    call.input_text = lambda: _content.plain_texts(inputs)
    return call
