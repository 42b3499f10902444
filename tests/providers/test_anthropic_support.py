"""Shared fixtures and helpers of the Anthropic tests (no tests here).

Every test drives the REAL ``anthropic`` SDK over HTTP against the local simulator, which speaks the
Messages API wire format (JSON, SSE, Bedrock's AWS event-stream framing, Vertex rawPredict).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import genai_prices
import pytest

from tokentrace.core import semconv
from tokentrace.demo.simulator import Simulator
from tokentrace.instrumentation.anthropic import AnthropicInstrumentor

MODEL = "claude-haiku-4-5"
BEDROCK_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
VERTEX_MODEL = "claude-sonnet-4@20250514"
PROMPT = "Tell me about the stream contract, one chunk at a time please."
MESSAGES = [{"role": "user", "content": PROMPT}]
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
PROVIDER_IDS = {"anthropic": "anthropic", "aws.bedrock": "aws", "gcp.vertex_ai": "google"}
PLATFORMS = ("anthropic", "bedrock", "vertex")
PLATFORM_MODEL = {"anthropic": MODEL, "bedrock": BEDROCK_MODEL, "vertex": VERTEX_MODEL}
PLATFORM_PROVIDER = {"anthropic": "anthropic", "bedrock": "aws.bedrock", "vertex": "gcp.vertex_ai"}
SDK_HAS_OTEL = "open_telemetry" in inspect.signature(anthropic.Anthropic.__init__).parameters
"""anthropic>=2 traces itself (the ``open_telemetry`` client option); older versions have no spans of their own."""
SDK_HAS_THINKING = "thinking" in inspect.signature(anthropic.resources.messages.Messages.create).parameters
SDK_HAS_BETA_STREAM = hasattr(anthropic.resources.beta.messages.Messages, "stream")
SDK_HAS_COUNT_TOKENS = hasattr(anthropic.resources.messages.Messages, "count_tokens")
needs_thinking = pytest.mark.skipif(not SDK_HAS_THINKING, reason="this anthropic version has no extended thinking")
needs_beta_stream = pytest.mark.skipif(not SDK_HAS_BETA_STREAM, reason="this anthropic version has no beta stream()")
needs_sdk_otel = pytest.mark.skipif(not SDK_HAS_OTEL, reason="this anthropic version has no telemetry of its own")


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(seed=3) as simulator:
        yield simulator


@pytest.fixture
def traced(instrument_with: Callable[..., Any]) -> Callable[..., Any]:
    """``traced(**env)``: instrument Anthropic into the test's in-memory telemetry."""
    return lambda **env: instrument_with(AnthropicInstrumentor, **env)


def make_client(sim: Simulator, platform: str = "anthropic", *, is_async: bool = False, otel: Any = False, **kw: Any):
    """A real SDK client for ``platform`` against the simulator; ``otel`` is the SDK's own
    ``open_telemetry`` option (False: the SDK's spans off; ``{"tracer_provider": tp}``: on)."""
    options: dict[str, Any] = {"max_retries": 0, **kw}
    if SDK_HAS_OTEL:
        options["open_telemetry"] = otel
    elif otel:
        pytest.skip("this anthropic version has no telemetry of its own")
    if platform == "bedrock":
        cls = anthropic.AsyncAnthropicBedrock if is_async else anthropic.AnthropicBedrock
        if "api_key" in inspect.signature(cls.__init__).parameters:
            options["api_key"] = "bedrock-test-key"
        else:  # older SDKs sign with SigV4: botocore-shaped fake credentials
            options.update(
                aws_access_key="AKIAIOSFODNN7EXAMPLE", aws_secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
            )
        return cls(base_url=sim.anthropic_base_url, aws_region="us-east-1", **options)
    if platform == "vertex":
        cls = anthropic.AsyncAnthropicVertex if is_async else anthropic.AnthropicVertex
        return cls(
            base_url=sim.vertex_base_url, region="us-east5", project_id="proj", access_token="test-token", **options
        )
    cls = anthropic.AsyncAnthropic if is_async else anthropic.Anthropic
    return cls(base_url=sim.anthropic_base_url, api_key="sk-ant-test", **options)


def expected_cost(provider: str, model: str, usage: Any) -> float:
    """genai-prices' own price for the usage the server reported (Anthropic accounting in)."""
    cache_read = usage.cache_read_input_tokens or 0
    cache_write = usage.cache_creation_input_tokens or 0
    price = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage.input_tokens + cache_read + cache_write,
            cache_read_tokens=cache_read or None,
            cache_write_tokens=cache_write or None,
            output_tokens=usage.output_tokens,
        ),
        model,
        provider_id=PROVIDER_IDS[provider],
    )
    return float(price.total_price)


def assert_usage(span: Any, usage: Any) -> None:
    """The span's tokens are the server's, in the conventions' accounting."""
    attributes = span.attributes
    cache_read = usage.cache_read_input_tokens or 0
    cache_write = usage.cache_creation_input_tokens or 0
    assert attributes[semconv.USAGE_INPUT_TOKENS] == usage.input_tokens + cache_read + cache_write
    assert attributes[semconv.USAGE_OUTPUT_TOKENS] == usage.output_tokens
    assert attributes[semconv.USAGE_CACHE_READ_INPUT_TOKENS] == cache_read
    assert attributes["gen_ai.usage.cache_creation.input_tokens"] == cache_write
    assert attributes[semconv.USAGE_SOURCE] == "reported"


def llm_spans(telemetry: Any) -> list[Any]:
    return [s for s in telemetry.spans() if s.attributes.get(semconv.OPERATION_NAME) == "chat"]


def metric_sum(telemetry: Any, name: str, **attributes: Any) -> float:
    total = 0.0
    for point in telemetry.metrics().get(name, []):
        if all(point.attributes.get(k) == v for k, v in attributes.items()):
            total += point.sum
    return total


def metric_count(telemetry: Any, name: str) -> int:
    return sum(point.count for point in telemetry.metrics().get(name, []))
