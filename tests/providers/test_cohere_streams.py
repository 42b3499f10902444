"""The stream contract for Cohere's ``chat_stream`` (a generator; an async generator on the async
client): every way of leaving it ends one span once, and the application sees what it would untraced."""

from __future__ import annotations

import gc
from typing import Any

import cohere
import httpx
import pytest

from tests.providers.generator_streams import (
    ASYNC_EXITS,
    SYNC_EXITS,
    Opener,
    count_span_ends,
    run_async_case,
    run_sync_case,
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


@pytest.fixture(scope="module")
def server() -> Any:
    with CohereServer() as s:
        yield s


@pytest.fixture(scope="module")
def slow_server() -> Any:
    with CohereServer(chunk_delay=0.25) as s:
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


@pytest.mark.parametrize("exit_path", SYNC_EXITS)
def test_sync_stream_contract(
    exit_path: str, server: Any, telemetry: Any, instrument_with: Any, span_ends: list[Any]
) -> None:
    run_sync_case(OPENER, exit_path, server, telemetry, lambda: instrument_with(CohereInstrumentor), span_ends)


@pytest.mark.parametrize("exit_path", ASYNC_EXITS)
async def test_async_stream_contract(
    exit_path: str, server: Any, slow_server: Any, telemetry: Any, instrument_with: Any, span_ends: list[Any]
) -> None:
    chosen = slow_server if exit_path == "cancel" else server
    await run_async_case(OPENER, exit_path, chosen, telemetry, lambda: instrument_with(CohereInstrumentor), span_ends)
