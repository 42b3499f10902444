"""Provider health for ``cohere`` (see ``health_contract``).

The cohere SDK retries twice by default (``max_retries=2``) on 408/409/429/5xx, honouring
``retry-after-ms`` / integer ``retry-after`` (else ``x-ratelimit-reset``, else 1 s x 2^n backoff);
it retries a refused connection but not a reset one (``httpx.ReadError``) nor a timeout, and its
``chat_stream`` does not retry at all. Cohere's trial-key headers (``x-trial-endpoint-call-*``,
``x-endpoint-monthly-call-limit``; none on a 429) and ``x-debug-trace-id`` are on every response.
"""

from __future__ import annotations

from typing import Any

import cohere

from tests.providers.health_contract import (  # noqa: F401  (the contract's tests, run for cohere)
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
from tests.providers.servers.cohere import CohereServer
from tokentrace.instrumentation.cohere import CohereInstrumentor

MODEL = "command-r-plus"


class CohereDriver(Driver):
    provider = "cohere"
    hint = "1"  # the SDK reads only integer seconds from retry-after
    min_backoff = 0.9  # 1 s x (0.9..1.1) for a 5xx without a hint
    retried = frozenset({"error-429", "error-500", "error-503"})
    stream_retries = False
    buckets = {
        "calls": ("x-trial-endpoint-call-limit", "x-trial-endpoint-call-remaining"),
        "calls_month": ("x-endpoint-monthly-call-limit", None),
    }
    request_id_header = "x-debug-trace-id"
    exhausted_error = cohere.TooManyRequestsError

    def _options(self, timeout: float | None) -> dict[str, Any]:
        options: dict[str, Any] = {"api_key": "co-health", "base_url": self.server.base_url}
        if timeout is not None:
            options["timeout"] = timeout
        return options

    def call(self, mode: str, timeout: float | None) -> Any:
        if mode.startswith("a"):
            return self.arun(self._acall(mode, timeout))
        with cohere.ClientV2(**self._options(timeout)) as client:
            if mode == "stream":
                return list(client.chat_stream(model=MODEL, messages=MESSAGES))
            return client.chat(model=MODEL, messages=MESSAGES)

    async def _acall(self, mode: str, timeout: float | None) -> Any:
        async with cohere.AsyncClientV2(**self._options(timeout)) as client:
            if mode == "astream":
                return [event async for event in client.chat_stream(model=MODEL, messages=MESSAGES)]
            return await client.chat(model=MODEL, messages=MESSAGES)


server, reinstrument, driver = contract_fixtures(CohereServer, CohereInstrumentor, CohereDriver)
