"""Fault injection for the Groq instrumentation: each of our hooks raising leaves the application's
results and exceptions exactly as uninstrumented, and the fault is counted (see ``chat_compat_contract``
and ``fault_contract``)."""

from __future__ import annotations

from tests.providers import chat_compat_contract as contract
from tests.providers.groq_setup import PROVIDER
from tests.providers.servers import groq as groq_server
from tokentrace.instrumentation.groq import _patch

FAULTS = contract.chat_faults(_patch.Wrappers, _patch, "chunk_observer")

server, test_sync_fault_is_contained, test_async_fault_is_contained = contract.fault_tests(
    PROVIDER, groq_server.server, FAULTS
)
