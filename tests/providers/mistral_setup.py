"""How the Mistral tests drive the real ``mistralai`` SDK against the local Mistral server."""

from __future__ import annotations

from typing import Any

import httpx2
from mistralai.client import Mistral
from mistralai.client.errors import SDKError
from mistralai.client.utils.eventstreaming import EventStream, EventStreamAsync

from tests.providers.chat_compat_contract import MESSAGES, Provider, StreamMethod
from tokentrace.instrumentation.mistralai import MistralInstrumentor

CHAT_MODEL = "mistral-small-latest"
EMBEDDING_MODEL = "mistral-embed"
INPUTS = ["first text to embed", "second"]


def client(server: Any) -> Mistral:
    return Mistral(api_key="test-key", server_url=server.root_url)


def _usage(data: dict[str, Any]) -> dict[str, Any] | None:
    return data["data"].get("usage")


async def _aopen(c: Mistral, model: str) -> Any:
    return await c.chat.stream_async(model=model, messages=MESSAGES)


async def _achat(c: Mistral, model: str) -> Any:
    return await c.chat.complete_async(model=model, messages=MESSAGES)


async def _aembed(c: Mistral) -> Any:
    return await c.embeddings.create_async(model=EMBEDDING_MODEL, inputs=INPUTS)


async def _close(c: Mistral) -> None:
    return None  # the SDK owns its httpx clients and closes them when collected


PROVIDER = Provider(
    name="mistral_ai",
    instrumentor=MistralInstrumentor,
    model=CHAT_MODEL,
    sync_client=client,
    async_client=client,
    stream_types=(EventStream, EventStreamAsync),
    stream_methods=(StreamMethod("chat.stream", lambda c, m: c.chat.stream(model=m, messages=MESSAGES), _aopen),),
    midstream_error=httpx2.RemoteProtocolError,
    midstream_error_type="httpx2.RemoteProtocolError",
    status_error=SDKError,
    status_error_type="mistralai.client.errors.sdkerror.SDKError",
    usage_of=_usage,
    chat=lambda c, m: c.chat.complete(model=m, messages=MESSAGES),
    achat=_achat,
    embed=lambda c: c.embeddings.create(model=EMBEDDING_MODEL, inputs=INPUTS),
    aembed=_aembed,
    close_async=_close,
)
