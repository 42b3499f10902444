"""The stream contract for Cohere's ``chat_stream`` (a generator; an async generator on the async
client): every way of leaving it ends one span once, and the application sees what it would untraced."""

from __future__ import annotations

from typing import Any

import cohere
import httpx

from tests.providers.generator_streams import (
    Opener,
    contract_tests,
)
from tests.providers.servers.cohere import CohereServer, client_for
from tokentrace.instrumentation.cohere import CohereInstrumentor

MESSAGES = [{"role": "user", "content": "Stream it chunks=4"}]


def _open(server: Any, model: str) -> Any:
    # A fresh client per run: Cohere binds chat_stream on the instance when the client is created.
    client = client_for(server.base_url)
    return client.chat_stream(model=model, messages=MESSAGES)


async def _aopen(server: Any, model: str) -> Any:
    client = client_for(server.base_url, asynchronous=True)
    return client.chat_stream(model=model, messages=MESSAGES)


OPENER = Opener(
    "chat_stream",
    "chat",
    "command-a-03-2025",
    _open,
    _aopen,
    sdk_errors=(httpx.RemoteProtocolError, cohere.TooManyRequestsError),
    error_type="httpx.RemoteProtocolError",
    http_error_type="cohere.errors.too_many_requests_error.TooManyRequestsError",
)


server, slow_server, quick_collections, test_sync_stream_contract, test_async_stream_contract = contract_tests(
    [OPENER], CohereInstrumentor, CohereServer
)
