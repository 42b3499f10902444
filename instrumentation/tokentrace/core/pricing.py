"""Cost of a call from genai-prices' bundled catalogue, overridable by a user price file.

``genai_prices.calc_price`` resolves the model and walks its price units on every call (~100 µs).
A call should pay microseconds, so the lookup happens once per (provider, model) and the result,
per-token rates or the reason there is no price, is cached. Tiered prices (where the rate depends
on the prompt's size) keep the library's exact calculation.

:meth:`PriceBook.price` is the whole calculation on plain token counts, returning the rates and the
input/output split; :meth:`PriceBook.cost` wraps it in a :class:`Cost`. The gateway's enrich stage
calls ``price`` directly: it prices every GenAI span, and building a :class:`Usage` and a frozen
:class:`Cost` per span cost more than the arithmetic itself.
"""

from __future__ import annotations

import fnmatch
import json
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from tokentrace.core import semconv
from tokentrace.core.usage import Usage

CURRENCY = "USD"
_CACHE_LIMIT = 4096

# gen_ai.provider.name (and the OpenAI-compatible hosts we recognise) -> genai-prices provider id.
PROVIDER_IDS: dict[str, str] = {
    "openai": "openai",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "anthropic": "anthropic",
    "aws.bedrock": "aws",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "groq": "groq",
    "mistral_ai": "mistral",
    "perplexity": "perplexity",
    "x_ai": "x-ai",
    "together": "together",
    "openrouter": "openrouter",
    "fireworks": "fireworks",
    "cerebras": "cerebras",
}


# The reasons that only say the catalogue lacks the model: a provider module that knows better (a
# self-hosted model server, which has no list price at all) replaces them, see GenAICall.no_list_price_reason.
CATALOGUE_MISSES: frozenset[str] = frozenset({"provider_not_in_catalogue", "model_not_in_catalogue"})


@dataclass(frozen=True)
class Cost:
    """The priced call: total and its input/output split, in USD (no split: a provider-reported total)."""

    total: float
    input: float | None
    output: float | None
    source: str
    pricing_model: str
    pricing_version: str


@dataclass(frozen=True, slots=True)  # slots: read on every priced span
class Rates:
    """USD per token for one model, or the library's price object when rates are tiered; also what a
    :class:`Cost` from these rates says besides its amounts (source, pricing model and version)."""

    input: float
    output: float
    cache_read: float
    cache_write: float
    pricing_model: str
    source: str
    version: str
    tiered: Any = None  # genai_prices ModelPrice, priced exactly through the library
    multiplier: float = 1.0  # a price file's discount, applied to tiered prices

    def tiered_split(
        self, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int
    ) -> tuple[float, float]:
        """(input cost, output cost) of these counts from the library's tiered prices."""
        from genai_prices import Usage as CatalogueUsage

        result = self.tiered.calc_price(
            CatalogueUsage(
                input_tokens=input_tokens,
                cache_read_tokens=cache_read or None,
                cache_write_tokens=cache_write or None,
                output_tokens=output_tokens,
            )
        )
        return float(result["input_price"]) * self.multiplier, float(result["output_price"]) * self.multiplier


class PriceFileError(ValueError):
    """The user price file could not be read; the message names the file and the problem."""


def _per_token(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float, Decimal)):
        return float(value) / 1_000_000
    return None


@dataclass(frozen=True)
class _FileEntry:
    provider: str | None
    model: str
    input_mtok: float | None
    output_mtok: float | None
    cache_read_mtok: float | None
    cache_write_mtok: float | None
    discount: float

    def matches(self, provider: str, model: str) -> bool:
        if self.provider is not None and self.provider != provider:
            return False
        return fnmatch.fnmatchcase(model.lower(), self.model.lower())


def load_price_file(path: str) -> tuple[list[_FileEntry], str]:
    """Read a YAML or JSON price file: ``{"models": [{"model": glob, "input_mtok": ...}, ...]}``."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise PriceFileError(f"price file {path}: cannot read it ({exc})") from exc
    try:
        if file.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:
        raise PriceFileError(f"price file {path}: not valid YAML/JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise PriceFileError(f"price file {path}: expected a mapping with a 'models' list")
    entries: list[_FileEntry] = []
    for index, item in enumerate(data["models"]):
        if not isinstance(item, dict) or not isinstance(item.get("model"), str):
            raise PriceFileError(f"price file {path}: models[{index}] needs a 'model' name or glob")
        known = {"provider", "model", "input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "discount"}
        unknown = set(item) - known
        if unknown:
            raise PriceFileError(f"price file {path}: models[{index}] has unknown keys {sorted(unknown)}")
        try:
            entry = _FileEntry(
                provider=item.get("provider"),
                model=item["model"],
                input_mtok=None if item.get("input_mtok") is None else float(item["input_mtok"]),
                output_mtok=None if item.get("output_mtok") is None else float(item["output_mtok"]),
                cache_read_mtok=None if item.get("cache_read_mtok") is None else float(item["cache_read_mtok"]),
                cache_write_mtok=(None if item.get("cache_write_mtok") is None else float(item["cache_write_mtok"])),
                discount=float(item.get("discount", 0.0)),
            )
        except (TypeError, ValueError) as exc:
            raise PriceFileError(f"price file {path}: models[{index}]: {exc}") from exc
        if not 0.0 <= entry.discount < 1.0:
            raise PriceFileError(f"price file {path}: models[{index}]: discount must be in [0, 1)")
        if entry.input_mtok is None and entry.output_mtok is None and entry.discount == 0.0:
            raise PriceFileError(
                f"price file {path}: models[{index}] sets neither prices (input_mtok/output_mtok) nor a discount"
            )
        entries.append(entry)
    digest = f"price-file:{file.name}"
    return entries, digest


class PriceBook:
    """Prices calls; safe to share between threads."""

    def __init__(self, prices_file: str | None = None) -> None:
        import genai_prices

        self._catalogue_version = f"genai-prices {genai_prices.__version__}"
        self._file_entries: list[_FileEntry] = []
        self._file_version = ""
        if prices_file:
            self._file_entries, self._file_version = load_price_file(prices_file)
        self._cache: dict[tuple[str, str], Rates | str] = {}
        self._lock = threading.Lock()

    def cost(self, provider: str, model: str | None, usage: Usage) -> Cost | str:
        """Price ``usage``; return a :class:`Cost`, or the reason there is none."""
        priced = self.price(
            provider,
            model,
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_read_input_tokens,
            usage.cache_creation_input_tokens,
        )
        if isinstance(priced, str):
            return priced
        rates, input_cost, output_cost = priced
        return Cost(
            total=input_cost + output_cost,
            input=input_cost,
            output=output_cost,
            source=rates.source,
            pricing_model=rates.pricing_model,
            pricing_version=rates.version,
        )

    def price(
        self,
        provider: str,
        model: str | None,
        input_tokens: int | None,
        output_tokens: int | None,
        cache_read: int | None,
        cache_write: int | None,
    ) -> tuple[Rates, float, float] | str:
        """:meth:`cost` without the objects: ``(rates, input cost, output cost)``, or the reason there is
        no price. The total is ``input cost + output cost``."""
        if not model:
            return "model_unknown"
        if input_tokens is None and output_tokens is None:
            return "usage_unknown"
        key = (provider, model)
        rates = self._cache.get(key)
        if rates is None:
            rates = self._resolve(provider, model)
            with self._lock:
                if len(self._cache) >= _CACHE_LIMIT:
                    self._cache.clear()
                self._cache[key] = rates
        if isinstance(rates, str):
            return rates
        input_tokens = input_tokens or 0
        output_tokens = output_tokens or 0
        cache_read = cache_read or 0
        cache_write = cache_write or 0
        if rates.tiered is not None:
            return rates, *rates.tiered_split(input_tokens, output_tokens, cache_read, cache_write)
        uncached = input_tokens - cache_read - cache_write
        if uncached < 0:  # max(uncached, 0) without the call
            uncached = 0
        input_cost = uncached * rates.input + cache_read * rates.cache_read + cache_write * rates.cache_write
        return rates, input_cost, output_tokens * rates.output

    # -- lookup -------------------------------------------------------------------------------

    def _resolve(self, provider: str, model: str) -> Rates | str:
        entry = next((e for e in self._file_entries if e.matches(provider, model)), None)
        if entry is not None and entry.input_mtok is not None:
            output = entry.output_mtok if entry.output_mtok is not None else entry.input_mtok
            factor = (1.0 - entry.discount) / 1_000_000
            return Rates(
                input=entry.input_mtok * factor,
                output=output * factor,
                cache_read=(entry.cache_read_mtok if entry.cache_read_mtok is not None else entry.input_mtok) * factor,
                cache_write=(entry.cache_write_mtok if entry.cache_write_mtok is not None else entry.input_mtok)
                * factor,
                pricing_model=model,
                source=semconv.COST_SOURCE_PRICE_FILE,
                version=self._file_version,
            )
        catalogue = self._from_catalogue(provider, model)
        if entry is not None and isinstance(catalogue, Rates):
            keep = 1.0 - entry.discount
            return Rates(
                input=catalogue.input * keep,
                output=catalogue.output * keep,
                cache_read=catalogue.cache_read * keep,
                cache_write=catalogue.cache_write * keep,
                pricing_model=catalogue.pricing_model,
                source=semconv.COST_SOURCE_PRICE_FILE,
                version=f"{catalogue.version}; {self._file_version}",
                tiered=catalogue.tiered,
                multiplier=keep,
            )
        return catalogue

    def _from_catalogue(self, provider: str, model: str) -> Rates | str:
        provider_id = PROVIDER_IDS.get(provider)
        if provider_id is None:
            return "provider_not_in_catalogue"
        from genai_prices import data_snapshot

        try:
            _, model_info = data_snapshot.get_snapshot().find_provider_model(model, None, provider_id, None)
        except LookupError:
            return "model_not_in_catalogue"
        # A model whose price changed on a date has conditional prices: the one in force now applies
        # (None here made genai-prices raise for such models, e.g. mistral-small-latest).
        price = model_info.get_prices(datetime.now(timezone.utc))
        values = {
            name: getattr(price, name, None)
            for name in ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")
        }
        if values["input_mtok"] is None and values["output_mtok"] is None:
            return "model_has_no_token_price"
        simple = all(v is None or isinstance(v, Decimal) for v in values.values())
        input_rate = _per_token(values["input_mtok"]) or 0.0
        return Rates(
            input=input_rate,
            output=_per_token(values["output_mtok"]) or 0.0,
            cache_read=_per_token(values["cache_read_mtok"]) if values["cache_read_mtok"] is not None else input_rate,
            cache_write=_per_token(values["cache_write_mtok"])
            if values["cache_write_mtok"] is not None
            else input_rate,
            pricing_model=model_info.id,
            source=semconv.COST_SOURCE_LOCAL,
            version=self._catalogue_version,
            tiered=None if simple else price,
        )
