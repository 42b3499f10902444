"""Fault injection for the Mistral instrumentation: each of our hooks raising leaves the application's
results and exceptions exactly as uninstrumented, and the fault is counted (see ``chat_compat_contract``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.providers import chat_compat_contract as contract
from tests.providers.chat_compat_contract import Fault
from tests.providers.mistral_setup import PROVIDER
from tests.providers.servers import mistral as mistral_server
from tokentrace.instrumentation.mistralai import _patch

FAULTS = contract.chat_faults(_patch.Wrappers, _patch, "event_observer")


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    with mistral_server.server() as s:
        yield s


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
def test_sync_fault_is_contained(
    fault: Fault, server: Any, telemetry: Any, instrument_with: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    contract.run_sync_fault(PROVIDER, fault, server, telemetry, instrument_with, monkeypatch)


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
async def test_async_fault_is_contained(
    fault: Fault, server: Any, telemetry: Any, instrument_with: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await contract.run_async_fault(PROVIDER, fault, server, telemetry, instrument_with, monkeypatch)
