"""Provider health for ``groq`` (see ``health_contract``): its stainless retry loop (2 retries by
default: 408/409/429/5xx, connection errors and timeouts, honouring ``retry-after``) against the local
Groq server, with Groq's ``x-ratelimit-*`` and ``x-request-id`` headers on every response."""

from __future__ import annotations

from typing import Any

import groq
import pytest

from tests.providers.health_contract import (  # noqa: F401  (the contract's tests, run for groq)
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
from tests.providers.servers import groq as groq_server
from tokentrace.instrumentation.groq import GroqInstrumentor

MODEL = "llama-3.1-8b-instant"


class GroqDriver(Driver):
    provider = "groq"
    modes = ("sync", "async", "stream", "astream", "raw", "araw")
    min_backoff = 0.375  # no hint on a 500: 0.5 s x (0.75..1) jitter
    buckets = {
        "requests": ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests"),
        "tokens": ("x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens"),
    }
    request_id_header = "x-request-id"
    headers_mode = "raw"
    exhausted_error = groq.RateLimitError

    def _options(self, timeout: float | None) -> dict[str, Any]:
        options: dict[str, Any] = {"api_key": "gsk-health", "base_url": self.server.root_url, "max_retries": 2}
        if timeout is not None:
            options["timeout"] = timeout
        return options

    def call(self, mode: str, timeout: float | None) -> Any:
        if mode.startswith("a"):
            return self.arun(self._acall(mode, timeout))
        with groq.Groq(**self._options(timeout)) as client:
            completions = client.chat.completions
            if mode == "stream":
                return list(completions.create(model=MODEL, messages=MESSAGES, stream=True))
            if mode == "raw":
                raw = completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
                self.raw_headers = dict(raw.headers)
                return raw.parse()
            return completions.create(model=MODEL, messages=MESSAGES)

    async def _acall(self, mode: str, timeout: float | None) -> Any:
        async with groq.AsyncGroq(**self._options(timeout)) as client:
            completions = client.chat.completions
            if mode == "astream":
                return [chunk async for chunk in await completions.create(model=MODEL, messages=MESSAGES, stream=True)]
            if mode == "araw":
                raw = await completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
                return await raw.parse()
            return await completions.create(model=MODEL, messages=MESSAGES)


server, reinstrument, driver = contract_fixtures(groq_server.server, GroqInstrumentor, GroqDriver)


def test_raw_headers_are_the_servers(driver: GroqDriver, telemetry: Any) -> None:
    """What ``with_raw_response`` shows the application is what the span says."""
    driver.run("raw")
    a = telemetry.span().attributes
    assert driver.raw_headers is not None
    assert a["tokentrace.request_id"] == driver.raw_headers["x-request-id"]
    assert a["tokentrace.ratelimit.tokens.remaining"] == float(driver.raw_headers["x-ratelimit-remaining-tokens"])
    assert a["tokentrace.ratelimit.requests.reset"] == pytest.approx(179.56)  # "2m59.56s"
    assert a["tokentrace.ratelimit.tokens.reset"] == pytest.approx(7.66)
