"""The ``redact`` stage: find PII and secrets in captured content, and flag, mask or hash them.

Only spans that carry content are scanned: ``gen_ai.input.messages``, ``gen_ai.output.messages``,
``gen_ai.system_instructions`` and, on GenAI spans, the flattened ``gen_ai.prompt.*``,
``gen_ai.completion.*``, ``llm.input_messages.*`` and ``llm.output_messages.*`` attributes
(``attributes`` and ``prefixes`` change the lists). A span without any costs a few dict lookups.
Detection is :mod:`tokentrace.processor.pii` (one combined regex, then Luhn / mod-97 validation).

Modes:

``flag``
    Content is left alone; the span gets ``tokentrace.pii.detected = true`` and the sorted list
    ``tokentrace.pii.types`` (``email``, ``phone``, ``credit_card``, ``iban``, ``api_key``,
    ``private_key``, ``ip_address``).
``mask`` (default)
    Each match is replaced by ``[REDACTED:EMAIL]`` (the type in upper case). JSON attributes are parsed
    and every string value is redacted before re-serialising, so they stay valid JSON; values that are
    not JSON (plain text, or JSON cut short by a length limit) are redacted as text.
``hash``
    Each match is replaced by ``[EMAIL:<8 hex>]``, the first 8 hex digits of HMAC-SHA256 of the
    normalised value (emails lower-cased, phone/card digits only, IBANs without spaces) keyed with
    ``salt``, so the same value is the same token across spans and services sharing the salt, and can't
    be reversed by hashing guesses without it. ``salt`` falls back to ``$TOKENTRACE_REDACT_SALT``; hash
    mode without a salt is a configuration error.

``mask`` and ``hash`` also set the two ``tokentrace.pii.*`` attributes. ``types`` limits detection.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tokentrace.core import semconv
from tokentrace.processor import pii
from tokentrace.processor.model import SpanData
from tokentrace.processor.stages import PassThroughTiming
from tokentrace.processor.stages.enrich import config_from_mapping

NAME = "redact"
MODES = ("flag", "mask", "hash")
SALT_ENV = "TOKENTRACE_REDACT_SALT"
_KEY_SETS_LIMIT = 1024


@dataclass(frozen=True)
class Config:
    mode: str = "mask"
    salt: str = ""
    types: tuple[str, ...] = pii.ALL_TYPES
    attributes: tuple[str, ...] = pii.CONTENT_KEYS
    prefixes: tuple[str, ...] = pii.CONTENT_PREFIXES

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"redact: mode must be one of {list(MODES)}, got {self.mode!r}")
        unknown = sorted(set(self.types) - set(pii.ALL_TYPES))
        if unknown:
            raise ValueError(f"redact: unknown PII types {unknown}; known types are {list(pii.ALL_TYPES)}")

    @classmethod
    def from_mapping(cls, data: Any) -> Config:
        return config_from_mapping(cls, data)


class RedactStage(PassThroughTiming):
    name = NAME

    def __init__(self, config: Config) -> None:
        self.config = config
        self.types: frozenset[str] | None = None if set(config.types) == set(pii.ALL_TYPES) else frozenset(config.types)
        self._gate = frozenset(config.attributes) | (frozenset(pii.GENAI_MARKERS) if config.prefixes else frozenset())
        self.replacer: Callable[[str, str], str] | None = None
        self._content_keys: dict[tuple[str, ...], tuple[str, ...]] = {}
        if config.mode == "mask":
            self.replacer = pii.mask_replacer
        elif config.mode == "hash":
            salt = config.salt or os.environ.get(SALT_ENV, "")
            if not salt:
                raise ValueError(f"redact: mode 'hash' needs a salt (config 'salt' or ${SALT_ENV})")
            self.replacer = pii.hash_replacer(salt.encode("utf-8"))

    def process(self, batch: list[SpanData]) -> list[SpanData]:
        keys, prefixes, gate = self.config.attributes, self.config.prefixes, self._gate
        known = self._content_keys
        for span in batch:
            if gate.isdisjoint(span.attributes):  # no content key, no GenAI marker: the cheap way out
                continue
            # Which keys carry content depends on the key names alone, and GenAI spans of one
            # instrumentation have the same few key sets: remember the answer per key set (in order,
            # as content_keys lists them) instead of testing every key against the prefixes again.
            names = tuple(span.attributes)
            found_keys = known.get(names)
            if found_keys is None:
                found_keys = tuple(pii.content_keys(span.attributes, keys, prefixes))
                if len(known) >= _KEY_SETS_LIMIT:
                    known.clear()
                known[names] = found_keys
            if found_keys:
                try:
                    self._redact(span, found_keys)
                except Exception:
                    pass
        return batch

    def _redact(self, span: SpanData, keys: tuple[str, ...] | list[str]) -> None:
        attributes = span.attributes
        found: set[str] = set()
        for key in keys:
            value = attributes.get(key)
            if self.replacer is None:
                for text in _strings(value):
                    found |= pii.detect(text, self.types)
                continue
            if isinstance(value, str):
                redacted = pii.redact_value(value, self.replacer, self.types, found)
                if redacted is not value:
                    span.set(key, redacted)
            elif isinstance(value, (list, tuple)) and any(isinstance(v, str) for v in value):
                items = [
                    pii.redact_value(v, self.replacer, self.types, found) if isinstance(v, str) else v for v in value
                ]
                if any(a is not b for a, b in zip(items, value, strict=True)):
                    span.set(key, type(value)(items))
        if found:
            previous = attributes.get(semconv.PII_TYPES) or ()
            span.set(semconv.PII_DETECTED, True)
            span.set(semconv.PII_TYPES, sorted(found | set(previous)))


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, str)]
    return []


def build(config: Config | None = None) -> RedactStage:
    return RedactStage(config if config is not None else Config())


__all__ = ["MODES", "Config", "RedactStage", "build"]
