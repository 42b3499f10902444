"""What the span tests of the Chat Completions-shaped SDKs (``test_groq.py``, ``test_mistralai.py``)
share: the conversation and tools they send, and the cost check against genai-prices' own answer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from genai_prices import Usage as CatalogueUsage
from genai_prices import calc_price

from tokentrace.core import semconv

TOLERANCE = 1e-9  # cost equal to genai-prices' to this
CAPTURE = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"}
MODES = ["sync", "async"]
MESSAGES = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "What is the weather like in Paris today"},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def catalogue_price(usage: Any, model: str, provider_id: str, cached: int | None = None) -> Any:
    """genai-prices' own answer for the usage (``prompt_tokens`` / ``completion_tokens``) the server reported."""
    return calc_price(
        CatalogueUsage(
            input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens, cache_read_tokens=cached
        ),
        model,
        provider_id=provider_id,
    )


def assert_cost(attributes: dict[str, Any], expected: Any, model: str) -> None:
    """The span's cost is genai-prices' ``expected`` answer for ``model``, to :data:`TOLERANCE`."""
    assert float(expected.total_price) > 0
    assert attributes[semconv.USAGE_COST_AMOUNT] == pytest.approx(float(expected.total_price), abs=TOLERANCE)
    assert attributes[semconv.COST_INPUT] == pytest.approx(float(expected.input_price), abs=TOLERANCE)
    assert attributes[semconv.COST_OUTPUT] == pytest.approx(float(expected.output_price), abs=TOLERANCE)
    assert attributes[semconv.USAGE_COST_CURRENCY] == "USD"
    assert attributes[semconv.USAGE_COST_SOURCE] == semconv.COST_SOURCE_LOCAL
    assert attributes[semconv.COST_PRICING_MODEL] == model
    assert attributes[semconv.COST_PRICING_VERSION].startswith("genai-prices")
    assert semconv.COST_UNAVAILABLE_REASON not in attributes


def captured(span: Any, key: str) -> Any:
    """A content attribute (JSON) of ``span``, decoded."""
    return json.loads(span.attributes[key])


COST_KEYS = frozenset(
    {
        semconv.USAGE_COST_AMOUNT,
        semconv.USAGE_COST_CURRENCY,
        semconv.USAGE_COST_SOURCE,
        semconv.COST_INPUT,
        semconv.COST_OUTPUT,
        semconv.COST_PRICING_MODEL,
        semconv.COST_PRICING_VERSION,
    }
)


def call_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """A span's attributes less the cost (:func:`assert_cost` checks it) and the HTTP attempts and key
    alias (``tokentrace.http.*``, ``tokentrace.api_key.*``: checked in tests/test_provider_health.py)."""
    http = ("tokentrace.http.", "tokentrace.api_key.")
    return {k: v for k, v in attributes.items() if k not in COST_KEYS and not k.startswith(http)}
