"""Provider health for ``ollama`` (see ``health_contract``).

The ollama client never retries and a local Ollama sends no rate-limit or request-id headers, so
each failure (a 429/500/503 with Ollama's ``{"error": ...}`` body, a reset connection, a stall past
the client's timeout) is one attempt and the call's outcome, recorded with status, error type and
duration, and nothing breaks. Streams send their request on the first ``next()``: still seen.
"""

from __future__ import annotations

from typing import Any

import ollama

from tests.providers.health_contract import (  # noqa: F401  (the contract's tests, run for ollama)
    MESSAGES,
    Driver,
    contract_fixtures,
    test_every_mode_records_its_attempts,
    test_exhausted_retries_keep_the_apps_exception,
    test_one_attempt_has_headroom_request_id_and_no_events,
    test_reset_connection,
    test_retried_failures_are_each_an_attempt,
    test_stall_past_the_timeout,
    test_switched_off_by_the_setting,
)
from tests.providers.servers.ollama import OllamaServer
from tokentrace.instrumentation.ollama import OllamaInstrumentor

MODEL = "llama3.2"


class OllamaDriver(Driver):
    provider = "ollama"
    hint = None
    max_attempts = 1
    retried = frozenset()
    exhausted_error = ollama.ResponseError

    def _options(self, timeout: float | None) -> dict[str, Any]:
        # an Authorization header, as a client of an Ollama behind a proxy (or ollama.com) sends
        options: dict[str, Any] = {"host": self.server.base_url, "headers": {"Authorization": "Bearer ol-health"}}
        if timeout is not None:
            options["timeout"] = timeout
        return options

    def call(self, mode: str, timeout: float | None) -> Any:
        if mode.startswith("a"):
            return self.arun(self._acall(mode, timeout))
        with ollama.Client(**self._options(timeout)) as client:
            if mode == "stream":
                return list(client.chat(model=MODEL, messages=MESSAGES, stream=True))
            return client.chat(model=MODEL, messages=MESSAGES)

    async def _acall(self, mode: str, timeout: float | None) -> Any:
        async with ollama.AsyncClient(**self._options(timeout)) as client:
            if mode == "astream":
                return [part async for part in await client.chat(model=MODEL, messages=MESSAGES, stream=True)]
            return await client.chat(model=MODEL, messages=MESSAGES)


server, reinstrument, driver = contract_fixtures(OllamaServer, OllamaInstrumentor, OllamaDriver)
