"""Provider health for ``google-genai`` (see ``health_contract``).

google-genai does NOT retry by default (no ``HttpRetryOptions``: one attempt). The contract runs
with ``HttpRetryOptions(attempts=3, initial_delay=0.05, jitter=0)``: 408/429/5xx, timeouts and refused
connections, exponential backoff that ignores any server hint (a Gemini 429 carries its hint in the
body's ``RetryInfo``, not in a header); a reset connection (``httpx.ReadError``) is not retried.
The Gemini API sends no rate-limit or request-id headers. Streams send their request on the first
``next()``, after the call returned: their attempts are seen through the stream proxy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from google import genai
from google.genai import errors, types

from tests.providers.health_contract import (  # noqa: F401  (the contract's tests, run for google-genai)
    PROMPT,
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
from tests.providers.servers.google_genai import GeminiServer
from tokentrace.instrumentation.google_genai import GoogleGenAIInstrumentor

MODEL = "gemini-2.5-flash"
RETRIES = types.HttpRetryOptions(attempts=3, initial_delay=0.05, max_delay=0.2, exp_base=2, jitter=0)


class GoogleDriver(Driver):
    provider = "gcp.gemini"
    hint = None  # the SDK's backoff ignores retry hints
    min_backoff = 0.05
    retried = frozenset({"error-429", "error-500", "error-503", "stall"})
    retry_options: types.HttpRetryOptions | None = RETRIES
    exhausted_error = errors.ClientError

    def _client(self, timeout: float | None) -> genai.Client:
        options: dict[str, Any] = {"base_url": self.server.base_url}
        if self.retry_options is not None:
            options["retry_options"] = self.retry_options
        if timeout is not None:
            options["timeout"] = int(timeout * 1000)  # milliseconds
        client = genai.Client(api_key="gemini-health", http_options=types.HttpOptions(**options))
        self.server.clients.append(client)  # see servers.google_genai.client_for
        return client

    def call(self, mode: str, timeout: float | None) -> Any:
        if mode.startswith("a"):
            return self.arun(self._acall(mode, timeout))
        models = self._client(timeout).models
        if mode == "stream":
            return list(models.generate_content_stream(model=MODEL, contents=PROMPT))
        return models.generate_content(model=MODEL, contents=PROMPT)

    async def _acall(self, mode: str, timeout: float | None) -> Any:
        models = self._client(timeout).aio.models
        if mode == "astream":
            return [chunk async for chunk in await models.generate_content_stream(model=MODEL, contents=PROMPT)]
        return await models.generate_content(model=MODEL, contents=PROMPT)


class DefaultGoogleDriver(GoogleDriver):
    retry_options = None
    retried = frozenset()


server, reinstrument, driver = contract_fixtures(GeminiServer, GoogleGenAIInstrumentor, GoogleDriver)


@pytest.mark.parametrize("mode", ["sync", "stream"])
def test_no_retries_by_default(server: Any, reinstrument: Callable[..., Any], telemetry: Any, mode: str) -> None:
    """Without ``HttpRetryOptions`` a 503 is the call's outcome: one attempt, the app's ServerError."""
    reinstrument()
    driver = DefaultGoogleDriver(server)
    driver.arm("error-503")
    _, error, _ = driver.run(mode)
    assert type(error).__name__ == "ServerError" and driver.served() == 1
    span = telemetry.span()
    assert [e.get("http.response.status_code") for e in events(span)] == [503]
    assert span.attributes["error.type"] == "google.genai.errors.ServerError"
