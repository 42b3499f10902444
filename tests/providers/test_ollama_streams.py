"""The stream contract for Ollama's ``stream=True`` (a generator; an async generator on ``AsyncClient``)
for ``chat`` and ``generate``: every way of leaving it ends one span once, and the application sees
what it would untraced."""

from __future__ import annotations

import gc
from typing import Any

import httpx
import ollama
import pytest

from tests.providers.generator_streams import (
    ASYNC_EXITS,
    SYNC_EXITS,
    Opener,
    count_span_ends,
    run_async_case,
    run_sync_case,
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


@pytest.fixture(scope="module")
def server() -> Any:
    with OllamaServer() as s:
        yield s


@pytest.fixture(scope="module")
def slow_server() -> Any:
    with OllamaServer(chunk_delay=0.25) as s:
        yield s


@pytest.fixture(scope="module", autouse=True)
def _quick_collections() -> Any:
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture
def span_ends(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    return count_span_ends(monkeypatch)


@pytest.mark.parametrize("opener", OPENERS, ids=[o.id for o in OPENERS])
@pytest.mark.parametrize("exit_path", SYNC_EXITS)
def test_sync_stream_contract(
    opener: Opener, exit_path: str, server: Any, telemetry: Any, instrument_with: Any, span_ends: list[Any]
) -> None:
    run_sync_case(opener, exit_path, server, telemetry, lambda: instrument_with(OllamaInstrumentor), span_ends)


@pytest.mark.parametrize("opener", OPENERS, ids=[o.id for o in OPENERS])
@pytest.mark.parametrize("exit_path", ASYNC_EXITS)
async def test_async_stream_contract(
    opener: Opener,
    exit_path: str,
    server: Any,
    slow_server: Any,
    telemetry: Any,
    instrument_with: Any,
    span_ends: list[Any],
) -> None:
    chosen = slow_server if exit_path == "cancel" else server
    await run_async_case(opener, exit_path, chosen, telemetry, lambda: instrument_with(OllamaInstrumentor), span_ends)
