"""PriceBook.price (the per-span path the gateway's enrich stage calls) gives what PriceBook.cost gives, and
both agree with genai-prices' own calc_price, for simple, tiered and unknown models and odd usages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage as CatalogueUsage
from genai_prices import calc_price
from hypothesis import given, settings
from hypothesis import strategies as st

from tokentrace.core import semconv
from tokentrace.core.pricing import Cost, PriceBook
from tokentrace.core.usage import Usage

# (provider, model): simple catalogue prices, tiered prices (rate by prompt size), dated prices, and misses.
SIMPLE = [("openai", "gpt-4o-mini"), ("openai", "gpt-4o-mini-2024-07-18"), ("anthropic", "claude-3-5-haiku-latest")]
TIERED = [("anthropic", "claude-sonnet-4-5"), ("gcp.gemini", "gemini-2.5-pro")]
MISSES = [("openai", "no-such-model-xyz"), ("ollama", "llama3"), ("", "gpt-4o"), ("openai", ""), ("openai", None)]
MODELS = SIMPLE + TIERED + MISSES

counts = st.one_of(st.none(), st.integers(min_value=0, max_value=2_000_000))
usages = st.builds(
    Usage,
    input_tokens=counts,
    output_tokens=counts,
    cache_read_input_tokens=counts,
    cache_creation_input_tokens=counts,
    reasoning_output_tokens=counts,
)
BOOK = PriceBook()


def test_the_chosen_models_are_what_the_tests_need() -> None:
    for provider, model in SIMPLE:
        rates = BOOK.price(provider, model, 1, 1, None, None)
        assert not isinstance(rates, str) and rates[0].tiered is None, model
    for provider, model in TIERED:
        rates = BOOK.price(provider, model, 1, 1, None, None)
        assert not isinstance(rates, str) and rates[0].tiered is not None, model


@settings(max_examples=300, deadline=None)
@given(model=st.sampled_from(MODELS), usage=usages)
def test_price_is_cost_without_the_objects(model: tuple[str, str | None], usage: Usage) -> None:
    provider, name = model
    cost = outcome(BOOK.cost, provider, name, usage)
    priced = outcome(
        BOOK.price,
        provider,
        name,
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_input_tokens,
        usage.cache_creation_input_tokens,
    )
    if not isinstance(cost, Cost):  # a reason, or the library's error (tiered prices, more cache than input)
        assert priced == cost
        return
    rates, input_cost, output_cost = priced
    assert cost == Cost(
        total=input_cost + output_cost,
        input=input_cost,
        output=output_cost,
        source=rates.source,
        pricing_model=rates.pricing_model,
        pricing_version=rates.version,
    )


def outcome(function: Callable[..., Any], *args: Any) -> Any:
    """What ``function(*args)`` returns, or the type and text of what it raises."""
    try:
        return function(*args)
    except Exception as exc:
        return type(exc), str(exc)


@settings(max_examples=200, deadline=None)
@given(
    model=st.sampled_from(SIMPLE + TIERED),
    input_tokens=st.integers(min_value=0, max_value=1_000_000),
    output_tokens=st.integers(min_value=0, max_value=100_000),
    cached=st.integers(min_value=0, max_value=1_000_000),
)
def test_catalogue_cost_matches_genai_prices(
    model: tuple[str, str], input_tokens: int, output_tokens: int, cached: int
) -> None:
    """The split arithmetic (float rates, or the library for tiered prices) against the library in Decimal."""
    provider, name = model
    cached = min(cached, input_tokens)
    cost = BOOK.cost(
        provider, name, Usage(input_tokens=input_tokens, output_tokens=output_tokens, cache_read_input_tokens=cached)
    )
    assert isinstance(cost, Cost)
    provider_id = {"openai": "openai", "anthropic": "anthropic", "gcp.gemini": "google"}[provider]
    expected = calc_price(
        CatalogueUsage(input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cached or None),
        name,
        provider_id=provider_id,
    )
    assert cost.total == pytest.approx(float(expected.total_price), rel=1e-9, abs=1e-12)
    assert cost.input == pytest.approx(float(expected.input_price), rel=1e-9, abs=1e-12)
    assert cost.source == semconv.COST_SOURCE_LOCAL


def test_uncached_input_is_clamped_at_zero_like_max(tmp_path: Path) -> None:
    """More cache tokens than input (an odd report) charges no uncached input, as max(..., 0) did."""
    path = tmp_path / "prices.json"
    path.write_text(
        '{"models": [{"model": "mine-*", "input_mtok": 1.0, "output_mtok": 2.0, "cache_read_mtok": 0.1,'
        ' "cache_write_mtok": 3.0}]}'
    )
    book = PriceBook(str(path))
    for input_tokens, read, write in [(10, 20, 0), (10, 0, 20), (0, 0, 0), (5, 5, 0), (100, 30, 20), (None, 4, None)]:
        priced = book.price("openai", "mine-1", input_tokens, 7, read, write)
        assert not isinstance(priced, str)
        rates, input_cost, output_cost = priced
        uncached = max((input_tokens or 0) - read - (write or 0), 0)
        expected = uncached * rates.input + read * rates.cache_read + (write or 0) * rates.cache_write
        assert (input_cost, output_cost) == (expected, 7 * rates.output)


def test_price_file_rates_go_through_the_same_path(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text('{"models": [{"model": "mine-*", "input_mtok": 2.0, "output_mtok": 8.0}]}')
    book = PriceBook(str(path))
    priced = book.price("openai", "mine-1", 1000, 10, None, None)
    assert not isinstance(priced, str)
    rates, input_cost, output_cost = priced
    assert rates.source == semconv.COST_SOURCE_PRICE_FILE
    assert input_cost == pytest.approx(0.002, rel=1e-12) and output_cost == pytest.approx(0.00008, rel=1e-12)
    assert book.cost("openai", "mine-1", Usage(input_tokens=1000, output_tokens=10)) == Cost(
        input_cost + output_cost, input_cost, output_cost, rates.source, "mine-1", rates.version
    )
