"""The stream contract for ``mistralai``'s ``chat.stream`` / ``chat.stream_async`` (see
``chat_compat_contract``): every exit path ends the span once and the app sees what it would untraced."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.providers import chat_compat_contract as contract
from tests.providers.chat_compat_contract import span_ends  # noqa: F401  (fixture)
from tests.providers.mistral_setup import PROVIDER
from tests.providers.servers import mistral


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    with mistral.server() as s:
        yield s


@pytest.mark.parametrize(("method", "exit_path"), contract.stream_cases(PROVIDER, contract.SYNC_EXITS))
def test_sync_stream_contract(
    method: Any,
    exit_path: str,
    server: Any,
    telemetry: Any,
    instrument_with: Any,
    span_ends: list[Any],  # noqa: F811
) -> None:
    contract.run_sync_contract(PROVIDER, method, exit_path, server, telemetry, instrument_with, span_ends)


@pytest.mark.parametrize(("method", "exit_path"), contract.stream_cases(PROVIDER, contract.ASYNC_EXITS))
async def test_async_stream_contract(
    method: Any,
    exit_path: str,
    server: Any,
    telemetry: Any,
    instrument_with: Any,
    span_ends: list[Any],  # noqa: F811
) -> None:
    await contract.run_async_contract(PROVIDER, method, exit_path, server, telemetry, instrument_with, span_ends)
