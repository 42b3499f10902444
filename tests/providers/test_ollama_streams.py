"""The stream contract for Ollama's ``stream=True`` (a generator; an async generator on ``AsyncClient``)
for ``chat`` and ``generate``: every way of leaving it ends one span once, and the application sees
what it would untraced."""

from __future__ import annotations

from typing import Any

import httpx
import ollama

from tests.providers.generator_streams import (
    Opener,
    contract_tests,
)
from tests.providers.servers.ollama import OllamaServer
from tokentrace.instrumentation.ollama import OllamaInstrumentor

MESSAGES = [{"role": "user", "content": "Stream it chunks=4"}]
ERRORS = (ollama.ResponseError, httpx.HTTPError)


def _opener(method: str, operation: str) -> Opener:
    def open_stream(server: Any, model: str) -> Any:
        client = ollama.Client(host=server.base_url)
        if method == "chat":
            return client.chat(model, MESSAGES, stream=True)
        return client.generate(model, "Stream it chunks=4", stream=True)

    async def aopen_stream(server: Any, model: str) -> Any:
        client = ollama.AsyncClient(host=server.base_url)
        if method == "chat":
            return await client.chat(model=model, messages=MESSAGES, stream=True)
        return await client.generate(model=model, prompt="Stream it chunks=4", stream=True)

    return Opener(
        method,
        operation,
        "llama3.2",
        open_stream,
        aopen_stream,
        sdk_errors=ERRORS,
        error_type="ollama.ResponseError",
        http_error_type="ollama.ResponseError",
    )


OPENERS = [_opener("chat", "chat"), _opener("generate", "text_completion")]


server, slow_server, quick_collections, test_sync_stream_contract, test_async_stream_contract = contract_tests(
    OPENERS, OllamaInstrumentor, OllamaServer
)
