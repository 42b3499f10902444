"""The ``enrich`` stage: cost, token estimates, a prompt-template fingerprint and attribution.

Only GenAI spans (those with ``gen_ai.operation.name``) are enriched; any other span costs one dict
lookup. Per GenAI span, in order:

1. **Tokens** where usage is missing: estimated with tiktoken (the instrumentation's own
   :data:`~tokentrace.core.tokens.shared_estimator`) from captured content, ``gen_ai.input.messages``
   and ``gen_ai.output.messages``; ``tokentrace.usage.source`` becomes ``"estimated"``. Content
   truncated by a length limit is not valid JSON and is not estimated from.
2. **Cost** where missing: a span with a model and tokens but no ``gen_ai.usage.cost.amount`` gets the
   attributes the instrumentation sets (amount, currency, source, ``tokentrace.cost.input``/``output``/
   ``pricing_model``/``pricing_version``) from the shared :class:`~tokentrace.core.pricing.PriceBook`,
   or ``tokentrace.cost.unavailable_reason``. With ``prices_file`` and ``reprice=True``, a cost already
   on the span is *replaced* when the central price file has an entry for the model (source
   ``"price_file"``), so prices are corrected in one place for every service.
3. **Prompt fingerprint** ``tokentrace.prompt.fingerprint``: 16 hex characters of SHA-256 over the
   prompt's *skeleton*, so calls differing only in their variables group together. With captured
   content the skeleton is the system instructions, the system messages and the user messages (not
   assistant or tool turns, which vary with the conversation), each with variable parts replaced by
   placeholders: URLs, emails, UUIDs, dates and times, quoted strings, numbers (long digit runs
   included). Without content it falls back to (operation, request model, hash of the system
   instructions when present), which groups by call site rather than by template.
   ``tokentrace.prompt.fingerprint_source`` says which (``"content"`` or ``"metadata"``). Variables
   that are free text (a name, a pasted document) are not recognised; ``fingerprint_max_chars`` keeps
   only the start of each message, where templates usually put their fixed instructions.
4. **Attribution** ``tokentrace.tenant``/``user``/``feature``: the first of the configured keys found
   in the span's attributes, then in its resource's. Baggage is not on spans by itself: install
   ``opentelemetry-processor-baggage`` (``BaggageSpanProcessor``) in the application so propagated
   baggage such as ``tenant.id`` is copied onto every span, or set the keys as resource attributes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from dataclasses import dataclass
from typing import Any

from tokentrace.core import semconv
from tokentrace.core.pricing import CURRENCY, Cost, PriceBook
from tokentrace.core.settings import PRICES_FILE_ENV
from tokentrace.core.usage import Usage
from tokentrace.processor import pii
from tokentrace.processor.model import SpanData
from tokentrace.processor.stages import PassThroughTiming

NAME = "enrich"
FINGERPRINT_LENGTH = 16

_CACHE_WRITE_KEYS = (semconv.RELEASED.usage_cache_creation_input_tokens,
                     semconv.DEVELOPMENT.usage_cache_creation_input_tokens)
_CHAT_OPERATIONS = frozenset({"chat", "invoke_agent", "generate_content"})
_FINGERPRINT_ROLES = frozenset({"system", "developer", "user"})


def config_from_mapping(cls: Any, data: Any) -> Any:
    """A config dataclass from a plain mapping: unknown keys and wrong types are clear errors."""
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__module__.rsplit('.', 1)[-1]} config must be a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{cls.__module__.rsplit('.', 1)[-1]} config: unknown keys {unknown}; "
                         f"known keys are {sorted(fields)}")
    values: dict[str, Any] = {}
    defaults = cls()
    for key, value in data.items():
        default = getattr(defaults, key)
        if isinstance(default, tuple):
            if isinstance(value, str):
                value = (value,)
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{key}: expected a list of strings, got {value!r}")
            value = tuple(value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{key}: expected true or false, got {value!r}")
        elif isinstance(default, (int, float)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{key}: expected a number, got {value!r}")
            value = type(default)(value)
        elif value is not None and not isinstance(value, str):
            raise ValueError(f"{key}: expected a string, got {value!r}")
        values[key] = value
    return cls(**values)


@dataclass(frozen=True)
class Config:
    cost: bool = True
    prices_file: str | None = None
    reprice: bool = False
    estimate_tokens: bool = True
    fingerprint: bool = True
    fingerprint_max_chars: int = 4000  # per message; 0 keeps all of it
    attribution: bool = True
    tenant_keys: tuple[str, ...] = ("tenant.id", "tenant")
    user_keys: tuple[str, ...] = ("enduser.id", "user.id")
    feature_keys: tuple[str, ...] = ("feature",)

    def __post_init__(self) -> None:
        if self.reprice and not self.prices_file:
            raise ValueError("enrich: reprice=true needs prices_file (the central price file that corrects prices)")
        if self.fingerprint_max_chars < 0:
            raise ValueError("enrich: fingerprint_max_chars must be >= 0")

    @classmethod
    def from_mapping(cls, data: Any) -> Config:
        return config_from_mapping(cls, data)


# -- fingerprint ----------------------------------------------------------------------------------

_VARIABLES = re.compile(
    r"(?P<url>\b(?:https?|ftp)://[^\s\"'<>]+|\bwww\.[^\s\"'<>]+)"
    r"|(?P<email>[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24})"
    r"|(?P<uuid>\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b)"
    r"|(?P<date>\b\d{4}-\d{1,2}-\d{1,2}(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b"
    r"|\b\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b|\b\d{1,2}:\d{2}(?::\d{2})?(?:\s?[AaPp][Mm])?\b)"
    r"|(?P<quoted>\"[^\"\n]{0,500}\"|\u201c[^\u201d\n]{0,500}\u201d|\u2018[^\u2019\n]{0,500}\u2019|(?<!\w)'[^'\n]{0,500}'(?!\w)|`[^`\n]{0,500}`)"
    r"|(?P<number>[-+]?\b\d[\d,_]*(?:\.\d+)?\b)"
)
_SPACE = re.compile(r"\s+")


def skeleton(text: str, max_chars: int = 0) -> str:
    """``text`` with its variable parts replaced by ``<url>``, ``<email>``, ``<uuid>``, ``<date>``,
    ``<quoted>`` and ``<number>``, whitespace collapsed."""
    if max_chars and len(text) > max_chars:
        text = text[:max_chars]
    text = _VARIABLES.sub(lambda m: f"<{m.lastgroup}>", text)
    return _SPACE.sub(" ", text).strip()


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:FINGERPRINT_LENGTH]


def content_fingerprint(attributes: dict[str, Any], max_chars: int = 0) -> str | None:
    """The template fingerprint from captured content, or ``None`` when there is no usable content."""
    pieces: list[str] = []
    instructions = attributes.get(semconv.SYSTEM_INSTRUCTIONS)
    if instructions is not None:
        text = pii.instructions_text(instructions)
        if text:
            pieces.append("instructions:" + skeleton(text, max_chars))
    for message in pii.messages(attributes.get(semconv.INPUT_MESSAGES)):
        role = message.get("role")
        if role in _FINGERPRINT_ROLES:
            pieces.append(f"{role}:" + skeleton(pii.message_text(message), max_chars))
    if not pieces:
        return None
    return _digest("content", str(attributes.get(semconv.OPERATION_NAME, "")), *pieces)


def metadata_fingerprint(attributes: dict[str, Any]) -> str:
    """The fallback without content: operation, request model and the system instructions' hash."""
    model = attributes.get(semconv.REQUEST_MODEL) or attributes.get(semconv.RESPONSE_MODEL) or ""
    instructions = attributes.get(semconv.SYSTEM_INSTRUCTIONS)
    instructions_hash = hashlib.sha256(str(instructions).encode("utf-8")).hexdigest() if instructions else ""
    return _digest("metadata", str(attributes.get(semconv.OPERATION_NAME, "")), str(model), instructions_hash)


# -- the stage ------------------------------------------------------------------------------------


def _int(value: Any) -> int | None:
    if type(value) is int:  # the usual case, first
        return value
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


class EnrichStage(PassThroughTiming):
    name = NAME

    def __init__(self, config: Config) -> None:
        self.config = config
        # Without its own setting the stage uses the instrumentation's price file, TOKENTRACE_PRICES_FILE.
        prices_file = config.prices_file or os.environ.get(PRICES_FILE_ENV) or None
        self.prices = PriceBook(prices_file) if config.cost else None
        self._attribution = (
            (semconv.ATTRIBUTION_TENANT, config.tenant_keys),
            (semconv.ATTRIBUTION_USER, config.user_keys),
            (semconv.ATTRIBUTION_FEATURE, config.feature_keys),
        ) if config.attribution else ()
        self._estimator: Any = None
        self._fingerprints: dict[tuple[Any, Any, str], str] = {}

    def process(self, batch: list[SpanData]) -> list[SpanData]:
        for span in batch:
            if semconv.OPERATION_NAME in span.attributes:
                try:
                    self._enrich(span)
                except Exception:  # a stage never fails the batch over one odd span
                    pass
        return batch

    def _metadata_fingerprint(self, attributes: dict[str, Any]) -> str:
        """:func:`metadata_fingerprint`, memoised: the same few (operation, model, instructions) recur."""
        key = (
            attributes.get(semconv.OPERATION_NAME),
            attributes.get(semconv.REQUEST_MODEL) or attributes.get(semconv.RESPONSE_MODEL),
            str(attributes.get(semconv.SYSTEM_INSTRUCTIONS) or ""),
        )
        cached = self._fingerprints.get(key)
        if cached is None:
            cached = metadata_fingerprint(attributes)
            if len(self._fingerprints) >= 4096:
                self._fingerprints.clear()
            self._fingerprints[key] = cached
        return cached

    def _enrich(self, span: SpanData) -> None:
        config = self.config
        attributes = span.attributes
        if config.estimate_tokens:
            self._estimate(span)
        if self.prices is not None:
            self._cost(span)
        if config.fingerprint and semconv.PROMPT_FINGERPRINT not in attributes:
            has_content = semconv.INPUT_MESSAGES in attributes or semconv.SYSTEM_INSTRUCTIONS in attributes
            fingerprint = content_fingerprint(attributes, config.fingerprint_max_chars) if has_content else None
            if fingerprint is not None:
                span.set(semconv.PROMPT_FINGERPRINT, fingerprint)
                span.set(semconv.PROMPT_FINGERPRINT_SOURCE, semconv.FINGERPRINT_SOURCE_CONTENT)
            else:
                span.set(semconv.PROMPT_FINGERPRINT, self._metadata_fingerprint(attributes))
                span.set(semconv.PROMPT_FINGERPRINT_SOURCE, semconv.FINGERPRINT_SOURCE_METADATA)
        for target, keys in self._attribution:
            if target in attributes:
                continue
            value = _lookup(keys, attributes, span.resource)
            if value is not None:
                span.set(target, value)

    # -- tokens -----------------------------------------------------------------------------------

    def _estimate(self, span: SpanData) -> None:
        attributes = span.attributes
        if semconv.USAGE_INPUT_TOKENS in attributes or semconv.USAGE_OUTPUT_TOKENS in attributes:
            return
        raw_input = attributes.get(semconv.INPUT_MESSAGES)
        raw_output = attributes.get(semconv.OUTPUT_MESSAGES)
        if raw_input is None and raw_output is None:
            return
        if semconv.ERROR_TYPE in attributes and not pii.messages(raw_output):
            return  # as in the instrumentation: a call that failed before answering isn't billed its prompt
        if self._estimator is None:
            from tokentrace.core.tokens import shared_estimator

            self._estimator = shared_estimator
        model = attributes.get(semconv.RESPONSE_MODEL) or attributes.get(semconv.REQUEST_MODEL)
        estimated = False
        inputs = pii.messages(raw_input)
        if inputs:
            texts = [pii.message_text(m) for m in inputs]
            instructions = attributes.get(semconv.SYSTEM_INSTRUCTIONS)
            if instructions is not None:
                texts.insert(0, pii.instructions_text(instructions))
            if attributes.get(semconv.OPERATION_NAME) in _CHAT_OPERATIONS:
                count = self._estimator.count_messages(model, texts)
            else:
                count = self._estimator.count_text(model, texts)
            if count is not None:
                span.set(semconv.USAGE_INPUT_TOKENS, count)
                estimated = True
        outputs = pii.messages(raw_output)
        if outputs:
            count = self._estimator.count_text(model, [pii.message_text(m) for m in outputs])
            if count is not None:
                span.set(semconv.USAGE_OUTPUT_TOKENS, count)
                estimated = True
        if estimated:
            span.set(semconv.USAGE_SOURCE, semconv.USAGE_SOURCE_ESTIMATED)

    # -- cost -------------------------------------------------------------------------------------

    def _cost(self, span: SpanData) -> None:
        attributes = span.attributes
        has_cost = semconv.USAGE_COST_AMOUNT in attributes
        if has_cost and not self.config.reprice:
            return
        model = attributes.get(semconv.RESPONSE_MODEL) or attributes.get(semconv.REQUEST_MODEL)
        cache_write = None
        for key in _CACHE_WRITE_KEYS:  # the released name first, then the development one
            cache_write = _int(attributes.get(key))
            if cache_write is not None:
                break
        usage = Usage(
            input_tokens=_int(attributes.get(semconv.USAGE_INPUT_TOKENS)),
            output_tokens=_int(attributes.get(semconv.USAGE_OUTPUT_TOKENS)),
            cache_read_input_tokens=_int(attributes.get(semconv.USAGE_CACHE_READ_INPUT_TOKENS)),
            cache_creation_input_tokens=cache_write,
            reasoning_output_tokens=_int(attributes.get(semconv.USAGE_REASONING_OUTPUT_TOKENS)),
        )
        if not model or not usage.known:
            return
        provider = str(attributes.get(semconv.PROVIDER_NAME) or attributes.get(semconv.SYSTEM) or "")
        assert self.prices is not None
        result = self.prices.cost(provider, str(model), usage)
        if isinstance(result, str):
            if not has_cost and semconv.COST_UNAVAILABLE_REASON not in attributes:
                span.set(semconv.COST_UNAVAILABLE_REASON, result)
            return
        if has_cost and result.source != semconv.COST_SOURCE_PRICE_FILE:
            return  # reprice replaces only what the central price file corrects
        _set_cost(span, result)


def _set_cost(span: SpanData, cost: Cost) -> None:
    span.attributes.update(  # one update, in the order of seven span.set calls
        {
            semconv.USAGE_COST_AMOUNT: cost.total,
            semconv.USAGE_COST_CURRENCY: CURRENCY,
            semconv.USAGE_COST_SOURCE: cost.source,
            semconv.COST_INPUT: cost.input,
            semconv.COST_OUTPUT: cost.output,
            semconv.COST_PRICING_MODEL: cost.pricing_model,
            semconv.COST_PRICING_VERSION: cost.pricing_version,
        }
    )
    span.changed = True
    span.pop(semconv.COST_UNAVAILABLE_REASON)


def _lookup(keys: tuple[str, ...], attributes: dict[str, Any], resource: dict[str, Any]) -> Any:
    for source in (attributes, resource):
        for key in keys:
            value = source.get(key)
            if value is not None and value != "":
                return value if isinstance(value, (str, bool, int, float)) else str(value)
    return None


def build(config: Config | None = None) -> EnrichStage:
    return EnrichStage(config if config is not None else Config())


__all__ = [
    "Config", "EnrichStage", "build", "config_from_mapping", "content_fingerprint", "metadata_fingerprint", "skeleton",
]
