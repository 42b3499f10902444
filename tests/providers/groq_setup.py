"""How the Groq tests drive the real ``groq`` SDK against the local Groq server."""

from __future__ import annotations

from typing import Any

import groq

from tests.providers.chat_compat_contract import MESSAGES, Provider, StreamMethod
from tokentrace.instrumentation.groq import GroqInstrumentor

CHAT_MODEL = "llama-3.3-70b-versatile"
EMBEDDING_MODEL = "nomic-embed-text-v1_5"
INPUTS = ["first text to embed", "second"]


def client(server: Any) -> groq.Groq:
    return groq.Groq(api_key="test-key", base_url=server.root_url, max_retries=0)


def async_client(server: Any) -> groq.AsyncGroq:
    return groq.AsyncGroq(api_key="test-key", base_url=server.root_url, max_retries=0)


def _usage(data: dict[str, Any]) -> dict[str, Any] | None:
    return (data.get("x_groq") or {}).get("usage")


async def _aopen(c: groq.AsyncGroq, model: str) -> Any:
    return await c.chat.completions.create(model=model, messages=MESSAGES, stream=True)


async def _achat(c: groq.AsyncGroq, model: str) -> Any:
    return await c.chat.completions.create(model=model, messages=MESSAGES)


async def _aembed(c: groq.AsyncGroq) -> Any:
    return await c.embeddings.create(model=EMBEDDING_MODEL, input=INPUTS)


async def _close(c: groq.AsyncGroq) -> None:
    await c.close()


PROVIDER = Provider(
    name="groq",
    instrumentor=GroqInstrumentor,
    model=CHAT_MODEL,
    sync_client=client,
    async_client=async_client,
    stream_types=(groq.Stream, groq.AsyncStream),
    stream_methods=(
        StreamMethod(
            "chat.completions.create",
            lambda c, m: c.chat.completions.create(model=m, messages=MESSAGES, stream=True),
            _aopen,
        ),
    ),
    midstream_error=groq.APIError,
    midstream_error_type="groq.APIError",
    status_error=groq.RateLimitError,
    status_error_type="groq.RateLimitError",
    usage_of=_usage,
    chat=lambda c, m: c.chat.completions.create(model=m, messages=MESSAGES),
    achat=_achat,
    embed=lambda c: c.embeddings.create(model=EMBEDDING_MODEL, input=INPUTS),
    aembed=_aembed,
    close_async=_close,
)
