"""The stream contract for ``mistralai``'s ``chat.stream`` / ``chat.stream_async`` (see
``chat_compat_contract``): every exit path ends the span once and the app sees what it would untraced."""

from __future__ import annotations

from tests.providers import chat_compat_contract as contract
from tests.providers.mistral_setup import PROVIDER
from tests.providers.servers import mistral

server, test_sync_stream_contract, test_async_stream_contract = contract.stream_contract_tests(PROVIDER, mistral.server)
