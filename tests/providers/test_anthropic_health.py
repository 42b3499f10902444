"""Provider health for ``anthropic`` (see ``health_contract``), with the SDK's own span off and on.

The anthropic SDK retries twice by default (408/409/429/5xx incl. 529 overloaded, connection errors
and timeouts), honouring ``retry-after-ms`` / ``retry-after``. The simulator fails the first N
requests of a call (``x-sim-fault`` + ``x-sim-fault-once`` + ``x-sim-fault-times``; a reset is its
``drop``, a stall its ``slow``) and sends Anthropic's own ``retry-after`` (``x-sim-retry-after``),
``request-id`` and ``anthropic-ratelimit-*`` headers (requests, tokens, input and output tokens).
anthropic 2.x opens its own span when it has a tracer; ours is handed to it, so every attempt must
land on that one span in both modes (``open_telemetry`` on / off).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import pytest

from tests.providers.health_contract import (  # noqa: F401  (the contract's tests, run for anthropic)
    MESSAGES,
    Driver,
    test_every_mode_records_its_attempts,
    test_exhausted_retries_keep_the_apps_exception,
    test_one_attempt_has_headroom_request_id_and_no_events,
    test_reset_connection,
    test_retried_failures_are_each_an_attempt,
    test_stall_past_the_timeout,
    test_switched_off_by_the_setting,
)
from tests.providers.test_anthropic_support import SDK_HAS_OTEL
from tokentrace.demo.simulator import Simulator
from tokentrace.instrumentation.anthropic import AnthropicInstrumentor

MODEL = "claude-haiku-4-5"
_SIM_FAULT = {
    "error-429": "error-429",
    "error-500": "error-500",
    "error-529": "error-529",
    "reset": "drop",
    "stall": "slow",
}


class AnthropicDriver(Driver):
    provider = "anthropic"
    modes = ("sync", "async", "stream", "astream", "raw", "araw", "helper", "ahelper")
    statuses = {"rate_limit": 429, "server_error": 500, "overloaded": 529}
    buckets = {
        "requests": ("anthropic-ratelimit-requests-limit", "anthropic-ratelimit-requests-remaining"),
        "tokens": ("anthropic-ratelimit-tokens-limit", "anthropic-ratelimit-tokens-remaining"),
        "input_tokens": ("anthropic-ratelimit-input-tokens-limit", "anthropic-ratelimit-input-tokens-remaining"),
        "output_tokens": ("anthropic-ratelimit-output-tokens-limit", "anthropic-ratelimit-output-tokens-remaining"),
    }
    request_id_header = "request-id"
    headers_mode = "raw"
    raw_usage = True
    exhausted_error = anthropic.RateLimitError

    def __init__(self, server: Simulator, otel: Any) -> None:
        super().__init__(server)
        self.otel = otel
        self.fault_headers: dict[str, str] = {}
        self.once = ""

    def arm(self, kind: str, times: int = 1, *, retry_after: str | None = None, stall_s: float = 1.0) -> None:
        self.once = uuid.uuid4().hex
        self.fault_headers = {
            "x-sim-fault": _SIM_FAULT[kind],
            "x-sim-fault-once": self.once,
            "x-sim-fault-times": str(times),
            "x-sim-delay": str(stall_s),
            # every fault carries Anthropic's retry-after (the SDK honours it on 5xx too)
            "x-sim-retry-after": retry_after or self.hint or "0.05",
        }

    def _mine(self) -> list[dict[str, Any]]:
        return [r for r in self.server.requests if r["headers"].get("x-sim-fault-once") == self.once]

    def served(self) -> int:
        return len(self._mine())

    def last_headers(self) -> dict[str, str]:
        if self.raw_headers is not None:
            return self.raw_headers
        return {"request-id": self._mine()[-1]["request_id"]}

    def _options(self, timeout: float | None) -> dict[str, Any]:
        options: dict[str, Any] = {
            "base_url": self.server.anthropic_base_url,
            "api_key": "sk-ant-health",
            "default_headers": self.fault_headers,
        }
        if SDK_HAS_OTEL:
            options["open_telemetry"] = self.otel
        if timeout is not None:
            options["timeout"] = timeout
        return options

    def call(self, mode: str, timeout: float | None) -> Any:
        if mode.startswith("a"):
            return self.arun(self._acall(mode, timeout))
        request = {"model": MODEL, "max_tokens": 100, "messages": MESSAGES}
        with anthropic.Anthropic(**self._options(timeout)) as client:
            if mode == "stream":
                return list(client.messages.create(**request, stream=True))
            if mode == "helper":
                with client.messages.stream(**request) as stream:
                    return stream.get_final_message()
            if mode == "raw":
                raw = client.messages.with_raw_response.create(**request)
                self.raw_headers = dict(raw.headers)
                return raw.parse()
            return client.messages.create(**request)

    async def _acall(self, mode: str, timeout: float | None) -> Any:
        request = {"model": MODEL, "max_tokens": 100, "messages": MESSAGES}
        async with anthropic.AsyncAnthropic(**self._options(timeout)) as client:
            if mode == "astream":
                return [event async for event in await client.messages.create(**request, stream=True)]
            if mode == "ahelper":
                async with client.messages.stream(**request) as stream:
                    return await stream.get_final_message()
            if mode == "araw":
                raw = await client.messages.with_raw_response.create(**request)
                return await raw.parse()
            return await client.messages.create(**request)


@pytest.fixture(scope="module")
def server() -> Iterator[Simulator]:
    with Simulator(seed=8) as simulator:
        yield simulator


@pytest.fixture
def reinstrument(instrument_with: Callable[..., Any]) -> Callable[..., Any]:
    return lambda **env: instrument_with(AnthropicInstrumentor, **env)


@pytest.fixture(params=["sdk-span-off", "sdk-span-on"])
def driver(request: Any, server: Simulator, reinstrument: Callable[..., Any], telemetry: Any) -> AnthropicDriver:
    if request.param == "sdk-span-on" and not SDK_HAS_OTEL:
        pytest.skip("this anthropic version has no telemetry of its own")
    reinstrument()
    otel = {"tracer_provider": telemetry.tracer_provider} if request.param == "sdk-span-on" else False
    return AnthropicDriver(server, otel)
