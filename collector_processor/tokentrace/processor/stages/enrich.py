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
from tokentrace.core.pricing import CURRENCY, PriceBook, Rates
from tokentrace.core.settings import PRICES_FILE_ENV
from tokentrace.processor import pii
from tokentrace.processor.model import SpanData
from tokentrace.processor.stages import PassThroughTiming

NAME = "enrich"
FINGERPRINT_LENGTH = 16
_FINGERPRINTS_LIMIT = 4096

_CACHE_WRITE_KEYS = (
    semconv.RELEASED.usage_cache_creation_input_tokens,
    semconv.DEVELOPMENT.usage_cache_creation_input_tokens,
)
_CACHE_KEYS = frozenset({semconv.USAGE_CACHE_READ_INPUT_TOKENS, *_CACHE_WRITE_KEYS})
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
        raise ValueError(
            f"{cls.__module__.rsplit('.', 1)[-1]} config: unknown keys {unknown}; known keys are {sorted(fields)}"
        )
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


def _cache_counts(attributes: dict[str, Any]) -> tuple[int | None, int | None]:
    """(cache read, cache write) input tokens as :func:`_int` reads them."""
    cache_read = _int(attributes.get(semconv.USAGE_CACHE_READ_INPUT_TOKENS))
    cache_write = None
    for key in _CACHE_WRITE_KEYS:  # the released name first, then the development one
        cache_write = _int(attributes.get(key))
        if cache_write is not None:
            break
    return cache_read, cache_write


class EnrichStage(PassThroughTiming):
    """The stage. Its hot path is a GenAI span without content, and every step on it is cheap:

    * cost: :meth:`PriceBook.price` on the plain token counts (rates cached per provider and model), and
      the seven attributes written straight into the span (no ``Usage`` or ``Cost`` objects per span);
    * fingerprint: memoised per (operation, model, instructions), values with their types;
    * attribution: when the span has none of the configured keys, the answer is its resource's, and the
      spans of one batch share their resource dict (one per ``ResourceSpans`` in the gateway), so it is
      looked up once per resource dict and batch.
    """

    name = NAME

    def __init__(self, config: Config) -> None:
        self.config = config
        # Without its own setting the stage uses the instrumentation's price file, TOKENTRACE_PRICES_FILE.
        prices_file = config.prices_file or os.environ.get(PRICES_FILE_ENV) or None
        self.prices = PriceBook(prices_file) if config.cost else None
        self._attribution = (
            (
                (semconv.ATTRIBUTION_TENANT, config.tenant_keys),
                (semconv.ATTRIBUTION_USER, config.user_keys),
                (semconv.ATTRIBUTION_FEATURE, config.feature_keys),
            )
            if config.attribution
            else ()
        )
        targets = {target for target, _ in self._attribution}
        keys = {key for _, keys in self._attribution for key in keys}
        # A span with none of these takes its attribution from its resource alone. Not when a target is also
        # a key: then setting one target changes the next lookup, and only the span-by-span loop is right.
        self._attribution_gate = frozenset(targets | keys) if targets.isdisjoint(keys) else None
        self._estimator: Any = None
        self._fingerprints: dict[tuple[Any, ...], str] = {}

    def process(self, batch: list[SpanData]) -> list[SpanData]:
        by_resource: dict[int, tuple[tuple[str, Any], ...]] = {}  # id(resource dict) -> its attribution
        for span in batch:
            if semconv.OPERATION_NAME in span.attributes:
                try:
                    self._enrich(span, by_resource)
                except Exception:  # a stage never fails the batch over one odd span
                    pass
        return batch

    def _enrich(self, span: SpanData, by_resource: dict[int, tuple[tuple[str, Any], ...]]) -> None:
        config = self.config
        attributes = span.attributes
        if (
            config.estimate_tokens
            and semconv.USAGE_INPUT_TOKENS not in attributes
            and semconv.USAGE_OUTPUT_TOKENS not in attributes
        ):
            self._estimate(span)
        if self.prices is not None:
            self._cost(span, attributes)
        if config.fingerprint and semconv.PROMPT_FINGERPRINT not in attributes:
            self._fingerprint(span, attributes)
        if self._attribution:
            self._attribute(span, attributes, by_resource)

    # -- tokens -----------------------------------------------------------------------------------

    def _estimate(self, span: SpanData) -> None:
        """Token counts from captured content, for a span with neither count."""
        attributes = span.attributes
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

    def _cost(self, span: SpanData, attributes: dict[str, Any]) -> None:
        has_cost = semconv.USAGE_COST_AMOUNT in attributes
        if has_cost and not self.config.reprice:
            return
        model = attributes.get(semconv.RESPONSE_MODEL) or attributes.get(semconv.REQUEST_MODEL)
        if not model:
            return
        input_tokens = attributes.get(semconv.USAGE_INPUT_TOKENS)
        if type(input_tokens) is not int:  # plain ints, the usual case, skip the call
            input_tokens = _int(input_tokens)
        output_tokens = attributes.get(semconv.USAGE_OUTPUT_TOKENS)
        if type(output_tokens) is not int:
            output_tokens = _int(output_tokens)
        if input_tokens is None and output_tokens is None:
            return
        # Cache counts are absent from most spans: one C-level test for all three names.
        cache_read, cache_write = (
            (None, None) if attributes.keys().isdisjoint(_CACHE_KEYS) else _cache_counts(attributes)
        )
        provider = attributes.get(semconv.PROVIDER_NAME) or attributes.get(semconv.SYSTEM) or ""
        assert self.prices is not None
        priced = self.prices.price(
            provider if type(provider) is str else str(provider),
            model if type(model) is str else str(model),
            input_tokens,
            output_tokens,
            cache_read,
            cache_write,
        )
        if isinstance(priced, str):
            if not has_cost and semconv.COST_UNAVAILABLE_REASON not in attributes:
                span.set(semconv.COST_UNAVAILABLE_REASON, priced)
            return
        rates, input_cost, output_cost = priced
        if has_cost and rates.source != semconv.COST_SOURCE_PRICE_FILE:
            return  # reprice replaces only what the central price file corrects
        _set_cost(span, rates, input_cost, output_cost)

    # -- fingerprint and attribution --------------------------------------------------------------

    def _fingerprint(self, span: SpanData, attributes: dict[str, Any]) -> None:
        fingerprint = None
        if semconv.INPUT_MESSAGES in attributes or semconv.SYSTEM_INSTRUCTIONS in attributes:
            fingerprint = content_fingerprint(attributes, self.config.fingerprint_max_chars)
        if fingerprint is not None:
            attributes[semconv.PROMPT_FINGERPRINT] = fingerprint
            attributes[semconv.PROMPT_FINGERPRINT_SOURCE] = semconv.FINGERPRINT_SOURCE_CONTENT
        else:
            attributes[semconv.PROMPT_FINGERPRINT] = self._metadata_fingerprint(attributes)
            attributes[semconv.PROMPT_FINGERPRINT_SOURCE] = semconv.FINGERPRINT_SOURCE_METADATA
        span.changed = True

    def _metadata_fingerprint(self, attributes: dict[str, Any]) -> str:
        """:func:`metadata_fingerprint`, memoised: the same few (operation, model, instructions) recur.
        The key holds the types too: 1, 1.0 and True are equal keys but different strings."""
        operation = attributes.get(semconv.OPERATION_NAME)
        model = attributes.get(semconv.REQUEST_MODEL) or attributes.get(semconv.RESPONSE_MODEL)
        instructions = attributes.get(semconv.SYSTEM_INSTRUCTIONS)
        text = str(instructions) if instructions else ""
        if type(operation) is str and type(model) is str:  # the usual case: no types needed to tell keys apart
            key: tuple[Any, ...] = (operation, model, text)
        else:
            key = (type(operation), operation, type(model), model, text)
        try:
            cached = self._fingerprints.get(key)
        except TypeError:  # an unhashable value (a list): computed, not remembered
            return metadata_fingerprint(attributes)
        if cached is None:
            cached = metadata_fingerprint(attributes)
            if len(self._fingerprints) >= _FINGERPRINTS_LIMIT:
                self._fingerprints.clear()
            self._fingerprints[key] = cached
        return cached

    def _attribute(
        self, span: SpanData, attributes: dict[str, Any], by_resource: dict[int, tuple[tuple[str, Any], ...]]
    ) -> None:
        gate = self._attribution_gate
        if gate is not None and attributes.keys().isdisjoint(gate):
            # Nothing on the span itself: the answer is its resource's. Keyed by id() only within one
            # process() call, while the batch keeps the resource dicts alive and nothing changes them.
            resource = span.resource
            found = by_resource.get(id(resource))
            if found is None:
                found = self._resource_attribution(resource)
                if found is not None:
                    by_resource[id(resource)] = found
            if found is not None:
                for target, value in found:
                    span.set(target, value)
                return
        for target, keys in self._attribution:
            if target in attributes:
                continue
            value = _lookup(keys, attributes, span.resource)
            if value is not None:
                span.set(target, value)

    def _resource_attribution(self, resource: dict[str, Any]) -> tuple[tuple[str, Any], ...] | None:
        """(target, value) for each attribution found in ``resource`` alone, in the configured order; None
        when a value cannot be compared, so that the span-by-span loop sets what it can before it raises."""
        found = []
        try:
            for target, keys in self._attribution:
                value = _lookup(keys, {}, resource)
                if value is not None:
                    found.append((target, value))
        except Exception:
            return None
        return tuple(found)


def _set_cost(span: SpanData, rates: Rates, input_cost: float, output_cost: float) -> None:
    """The seven cost attributes, in the order the instrumentation sets them (as seven ``span.set``)."""
    attributes = span.attributes
    attributes[semconv.USAGE_COST_AMOUNT] = input_cost + output_cost
    attributes[semconv.USAGE_COST_CURRENCY] = CURRENCY
    attributes[semconv.USAGE_COST_SOURCE] = rates.source
    attributes[semconv.COST_INPUT] = input_cost
    attributes[semconv.COST_OUTPUT] = output_cost
    attributes[semconv.COST_PRICING_MODEL] = rates.pricing_model
    attributes[semconv.COST_PRICING_VERSION] = rates.version
    span.changed = True
    if semconv.COST_UNAVAILABLE_REASON in attributes:
        del attributes[semconv.COST_UNAVAILABLE_REASON]


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
    "Config",
    "EnrichStage",
    "build",
    "config_from_mapping",
    "content_fingerprint",
    "metadata_fingerprint",
    "skeleton",
]
