"""Provider health for ``mistralai`` (see ``health_contract``).

mistralai does NOT retry by default: without a ``retry_config`` every call is one attempt. The
contract runs with its retry configuration turned on (``RetryConfig("backoff", ...,
retry_connection_errors=True)``: 429/500/502/503/504, honouring ``retry-after`` / ``retry-after-ms``,
bounded by ``max_elapsed_time`` rather than a count); ``test_no_retries_by_default`` checks the
default. Mistral's ``x-ratelimit-{limit,remaining}-{req,tokens}-{minute,month}`` and
``mistral-correlation-id`` headers are on every response of the local Mistral server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from mistralai.client import Mistral
from mistralai.client.errors import SDKError
from mistralai.client.utils.retries import BackoffStrategy, RetryConfig

from tests.providers.health_contract import (  # noqa: F401  (the contract's tests, run for mistralai)
    MESSAGES,
    Driver,
    contract_fixtures,
    events,
    test_every_mode_records_its_attempts,
    test_exhausted_retries_keep_the_apps_exception,
    test_one_attempt_has_headroom_request_id_and_no_events,
    test_reset_connection,
    test_retried_failures_are_each_an_attempt,
    test_stall_past_the_timeout,
    test_switched_off_by_the_setting,
)
from tests.providers.servers import mistral as mistral_server
from tokentrace.instrumentation.mistralai import MistralInstrumentor

MODEL = "mistral-small-latest"
# 10 ms, x1.5 per retry, no jitter; give up after 0.8 s (a 0.3 s timeout fits; the exhausted test's
# attempt count is whatever fits)
RETRIES = RetryConfig("backoff", BackoffStrategy(10, 100, 1.5, 800, jitter_ms=0), retry_connection_errors=True)


class MistralDriver(Driver):
    provider = "mistral_ai"
    min_backoff = 0.010
    max_attempts = None  # time-bounded: max_elapsed_time
    buckets = {
        "requests_minute": ("x-ratelimit-limit-req-minute", "x-ratelimit-remaining-req-minute"),
        "tokens_minute": ("x-ratelimit-limit-tokens-minute", "x-ratelimit-remaining-tokens-minute"),
        "tokens_month": ("x-ratelimit-limit-tokens-month", "x-ratelimit-remaining-tokens-month"),
    }
    request_id_header = "mistral-correlation-id"
    retry_config: RetryConfig | None = RETRIES
    exhausted_error = SDKError  # the last 429 once max_elapsed_time is spent

    def _client(self, timeout: float | None) -> Mistral:
        options: dict[str, Any] = {"api_key": "mistral-health", "server_url": self.server.root_url}
        if self.retry_config is not None:
            options["retry_config"] = self.retry_config
        if timeout is not None:
            options["timeout_ms"] = int(timeout * 1000)
        return Mistral(**options)

    def call(self, mode: str, timeout: float | None) -> Any:
        if mode.startswith("a"):
            return self.arun(self._acall(mode, timeout))
        with self._client(timeout) as client:
            if mode == "stream":
                with client.chat.stream(model=MODEL, messages=MESSAGES) as stream:
                    return list(stream)
            return client.chat.complete(model=MODEL, messages=MESSAGES)

    async def _acall(self, mode: str, timeout: float | None) -> Any:
        async with self._client(timeout) as client:
            if mode == "astream":
                stream = await client.chat.stream_async(model=MODEL, messages=MESSAGES)
                return [event async for event in stream]
            return await client.chat.complete_async(model=MODEL, messages=MESSAGES)


class DefaultMistralDriver(MistralDriver):
    retry_config = None
    retried = frozenset()


server, reinstrument, driver = contract_fixtures(mistral_server.server, MistralInstrumentor, MistralDriver)


@pytest.mark.parametrize("fault", ["error-429", "error-503", "reset"])
def test_no_retries_by_default(server: Any, reinstrument: Callable[..., Any], telemetry: Any, fault: str) -> None:
    """Without a retry configuration one failure is the call's outcome: one attempt, the app's error."""
    reinstrument()
    driver = DefaultMistralDriver(server)
    driver.arm(fault, retry_after="0.05")
    _, error, _ = driver.run("sync")
    assert error is not None and driver.served() == 1
    span = telemetry.span()
    (attempt,) = events(span)
    assert attempt.get("http.response.status_code") == (None if fault == "reset" else int(fault[6:]))
    assert span.attributes["tokentrace.http.attempts"] == 1
