"""The stream contract for ``groq``'s ``chat.completions.create(stream=True)``, sync and async (see
``chat_compat_contract``): every exit path ends the span once and the app sees what it would untraced."""

from __future__ import annotations

from tests.providers import chat_compat_contract as contract
from tests.providers.groq_setup import PROVIDER
from tests.providers.servers import groq as groq_server

server, test_sync_stream_contract, test_async_stream_contract = contract.stream_contract_tests(
    PROVIDER, groq_server.server
)
