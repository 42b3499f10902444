"""What the same calls would have cost on cheaper models.

Each model's token totals (input, cached input, cache writes, output) are priced on every
candidate with the same price catalogue that prices live calls. This assumes the same token counts
— tokenisers differ by a few percent across vendors — and says nothing about answer quality; the
report prints both caveats next to the figures.
"""

from __future__ import annotations

import os
from typing import Any

from tokentrace.core.pricing import Cost, PriceBook
from tokentrace.core.usage import Usage

CANDIDATES_ENV = "TOKENTRACE_REPORT_CANDIDATES"
DEFAULT_CANDIDATES = (
    "openai:gpt-4o-mini",
    "openai:gpt-4.1-nano",
    "anthropic:claude-3-5-haiku-latest",
    "gcp.gemini:gemini-2.0-flash",
)
CAVEAT = "same token counts assumed (tokenisers differ by a few percent); answer quality not compared"


def parse_candidates(values: list[str] | None) -> list[tuple[str, str]]:
    """``provider:model`` strings (a bare model means OpenAI) from arguments or the environment."""
    if not values:
        env = os.environ.get(CANDIDATES_ENV, "")
        values = [v.strip() for v in env.split(",") if v.strip()] or list(DEFAULT_CANDIDATES)
    parsed = []
    for value in values:
        provider, _, model = value.partition(":")
        parsed.append((provider, model) if model else ("openai", provider))
    return parsed


def what_if(
    usage_by_model: list[dict[str, Any]], candidates: list[str] | None = None, prices: PriceBook | None = None
) -> dict[str, Any]:
    prices = prices or PriceBook(os.environ.get("TOKENTRACE_PRICES_FILE") or None)
    options = parse_candidates(candidates)
    models = []
    best_total_saving = 0.0
    for row in usage_by_model:
        usage = Usage(
            input_tokens=int(row["input_tokens"] or 0),
            output_tokens=int(row["output_tokens"] or 0),
            cache_read_input_tokens=int(row["cache_read_tokens"] or 0) or None,
            cache_creation_input_tokens=int(row["cache_write_tokens"] or 0) or None,
        )
        current = float(row["cost_usd"] or 0.0)
        alternatives = []
        for provider, model in options:
            if model == row["model"]:
                continue
            priced = prices.cost(provider, model, usage)
            if not isinstance(priced, Cost):
                alternatives.append({"provider": provider, "model": model, "cost_usd": None, "unavailable": priced})
                continue
            alternatives.append(
                {
                    "provider": provider,
                    "model": model,
                    "cost_usd": priced.total,
                    "saving_usd": current - priced.total,
                    "saving_share": (current - priced.total) / current if current else 0.0,
                }
            )
        alternatives.sort(key=lambda a: (a["cost_usd"] is None, a["cost_usd"] or 0.0))
        cheaper = [a for a in alternatives if a["cost_usd"] is not None and a["saving_usd"] > 0]
        best = cheaper[0] if cheaper else None
        if best is not None:
            best_total_saving += best["saving_usd"]
        models.append(
            {
                "provider": row["provider"],
                "model": row["model"],
                "calls": row["calls"],
                "cost_usd": current,
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "alternatives": alternatives,
                "best": best,
            }
        )
    return {
        "candidates": [f"{p}:{m}" for p, m in options],
        "models": models,
        "best_total_saving_usd": best_total_saving,
        "caveat": CAVEAT,
    }
