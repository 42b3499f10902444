"""The ``flags`` stage: quality and safety flags on GenAI spans.

Each raised flag becomes ``tokentrace.flag.<name> = true`` and its name joins the list attribute
``tokentrace.flags`` (sorted, no duplicates), so a backend can filter on one boolean or group by the
list. Only GenAI spans (``gen_ai.operation.name``) are looked at; others cost one dict lookup.

Built-in flags (``checks`` selects them; all on by default):

``empty``
    An answer with no output: ``gen_ai.usage.output_tokens == 0``, or captured output messages with
    no text and no tool call. Not raised on failed calls (``error.type``) or embeddings.
``too_short``
    Output tokens below ``short_ratio`` x ``gen_ai.request.max_tokens`` (off while ``short_ratio`` is
    0), or below ``detail_min_tokens`` when the last user message asks for detail (``detail_patterns``:
    "in detail", "step by step", "explain", ...; needs captured content).
``refusal``
    Finish reason ``content_filter``, a ``refusal`` output part, or refusal wording in the answer
    ("I'm sorry, but I can't", "I cannot help with", ...; extend with ``refusal_patterns``).
``truncated``
    Finish reason ``length``/``max_tokens``/``max_output_tokens``, or output tokens equal to
    ``gen_ai.request.max_tokens``.
``boilerplate``
    Generic assistant boilerplate in the answer ("As an AI language model", ...;
    ``boilerplate_patterns`` adds more).
``tool_error``
    An ``execute_tool`` span with ``error.type`` (or error status), or a ``tool_call_response`` part in
    the input whose response looks like an error (``{"error": ...}``, "Error: ...", a traceback).

Pluggable detectors run after the built-in checks, only on spans that carry content. A detector is
any callable ``(span, texts) -> list[Finding]`` with a ``name``: ``texts`` are the plain texts of the
span's content (messages, instructions). ``detectors`` names them: ``"pii"`` is built in
(:class:`tokentrace.processor.pii.PiiDetector`); any other name is looked up in the entry-point group
``tokentrace.detectors`` (for example a harmful-content classifier)::

    [project.entry-points."tokentrace.detectors"]
    toxicity = "mypackage.toxicity:ToxicityDetector"

An entry point may name a class (instantiated without arguments), a factory or a detector. Each
finding's ``name`` becomes a flag; a detector that raises is skipped for that span.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from tokentrace.core import semconv
from tokentrace.processor import pii
from tokentrace.processor.model import STATUS_ERROR, SpanData
from tokentrace.processor.stages import PassThroughTiming
from tokentrace.processor.stages.enrich import config_from_mapping

NAME = "flags"
ENTRY_POINT_GROUP = "tokentrace.detectors"

BUILTIN_CHECKS = (
    semconv.FLAG_EMPTY,
    semconv.FLAG_TOO_SHORT,
    semconv.FLAG_REFUSAL,
    semconv.FLAG_TRUNCATED,
    semconv.FLAG_BOILERPLATE,
    semconv.FLAG_TOOL_ERROR,
)
TRUNCATION_REASONS = frozenset({"length", "max_tokens", "max_output_tokens", "model_length"})
FILTER_REASONS = frozenset({"content_filter", "safety", "refusal", "prohibited_content", "blocklist"})
_NO_ANSWER_OPERATIONS = frozenset({"embeddings", "execute_tool", "create_agent"})

_APOS = "['\u2019]"
DEFAULT_REFUSAL_PATTERNS = (
    rf"\bI{_APOS}?m (?:very |really |so )?sorry,? (?:but )?I (?:can{_APOS}?t|cannot|can not|am unable|won{_APOS}?t|"
    rf"am not able)",
    r"\bI (?:cannot|can not) (?:help|assist|comply|provide|fulfill|support) (?:you )?with\b",
    rf"\bI can{_APOS}?t (?:help|assist|comply|provide|fulfill) (?:you )?with\b",
    r"\bI['\u2019]?m (?:unable|not able) to (?:help|assist|comply|provide|fulfill)",
    r"\bI (?:must|have to) (?:decline|refuse)\b",
    r"\bI['\u2019]?m not (?:able|allowed|permitted) to (?:help|assist|provide|discuss)",
)
DEFAULT_BOILERPLATE_PATTERNS = (
    r"\bAs an AI(?: language model| model| assistant)?\b",
    r"\bAs a (?:large )?language model\b",
    r"\bI (?:am|'m) (?:just )?an AI(?: language model| assistant)?(?: and| so|,)",
    r"\bI don['\u2019]?t have (?:personal )?(?:opinions|feelings|beliefs|emotions)\b",
    r"\b(?:my|the) knowledge cutoff\b",
    r"\bAs of my (?:last )?(?:knowledge )?(?:update|training)\b",
)
DEFAULT_DETAIL_PATTERNS = (
    r"\bin (?:great |more |full )?detail\b",
    r"\bdetailed\b",
    r"\bstep[- ]by[- ]step\b",
    r"\bexplain\b",
    r"\belaborate\b",
    r"\bcomprehensive\b",
    r"\bthorough(?:ly)?\b",
    r"\bin depth\b",
    r"\bfull report\b",
)
_ERROR_TEXT = re.compile(
    r"^\s*(?:error|exception|failed|failure|fatal)\b|Traceback \(most recent call last\)|"
    r"^\s*\{\s*\"(?:error|errors|exception)\"\s*:|\b(?:status|status_code)\W{1,3}[45]\d\d\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a detector found: ``name`` becomes the flag, ``detail`` says what (for logs/tests)."""

    name: str
    detail: str = ""


class Detector(Protocol):
    name: str

    def __call__(self, span: SpanData, texts: list[str]) -> list[Finding]: ...


@dataclass(frozen=True)
class Config:
    checks: tuple[str, ...] = BUILTIN_CHECKS
    detectors: tuple[str, ...] = ()
    short_ratio: float = 0.0  # output < ratio x max_tokens is too short; 0 turns this rule off
    detail_min_tokens: int = 50  # a request for detail answered in fewer output tokens is too short
    detail_patterns: tuple[str, ...] = DEFAULT_DETAIL_PATTERNS
    refusal_patterns: tuple[str, ...] = ()  # added to the defaults
    boilerplate_patterns: tuple[str, ...] = ()  # added to the defaults

    def __post_init__(self) -> None:
        unknown = sorted(set(self.checks) - set(BUILTIN_CHECKS))
        if unknown:
            raise ValueError(f"flags: unknown checks {unknown}; known checks are {list(BUILTIN_CHECKS)}")
        if not 0.0 <= self.short_ratio <= 1.0:
            raise ValueError("flags: short_ratio must be between 0 and 1")
        if self.detail_min_tokens < 0:
            raise ValueError("flags: detail_min_tokens must be >= 0")
        for pattern in (*self.detail_patterns, *self.refusal_patterns, *self.boilerplate_patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"flags: invalid pattern {pattern!r}: {exc}") from exc

    @classmethod
    def from_mapping(cls, data: Any) -> Config:
        return config_from_mapping(cls, data)


def _any_of(patterns: Iterable[str]) -> re.Pattern[str] | None:
    patterns = list(patterns)
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


def _entry_points(group: str) -> list[Any]:
    from importlib.metadata import entry_points

    return list(entry_points(group=group))


def load_detector(name: str) -> Detector:
    """The detector called ``name``: built in, or from the ``tokentrace.detectors`` entry points."""
    if name == "pii":
        return pii.PiiDetector()
    for entry_point in _entry_points(ENTRY_POINT_GROUP):
        if entry_point.name == name:
            loaded = entry_point.load()
            detector = loaded() if isinstance(loaded, type) else loaded
            if not callable(detector):
                raise ValueError(f"flags: detector {name!r} ({entry_point.value}) is not callable")
            if not getattr(detector, "name", None):
                try:
                    detector.name = name
                except AttributeError:
                    pass
            return detector
    raise ValueError(
        f"flags: no detector {name!r}: built in is 'pii', others come from the {ENTRY_POINT_GROUP!r} entry points"
    )


def _finish_reasons(reasons: Any, outputs: Iterable[dict[str, Any]]) -> set[str]:
    """The finish reasons, lower-cased: ``reasons`` (the attribute's value) and the output messages'."""
    found = {reasons} if isinstance(reasons, str) else {str(r) for r in reasons or ()}
    for message in outputs:
        reason = message.get("finish_reason")
        if isinstance(reason, str):
            found.add(reason)
    return {r.lower() for r in found}


def _reason_classes(reasons: Any) -> tuple[bool, bool]:
    """(any truncation reason, any filter reason) among the attribute value ``reasons``."""
    if reasons is None:
        return False, False
    if (type(reasons) is list or type(reasons) is tuple) and len(reasons) == 1 and type(reasons[0]) is str:
        reason = reasons[0].lower()  # the usual value, one reason: no sets to build
        return reason in TRUNCATION_REASONS, reason in FILTER_REASONS
    found = _finish_reasons(reasons, ())
    return bool(found & TRUNCATION_REASONS), bool(found & FILTER_REASONS)


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def _looks_like_error(response: Any) -> bool:
    if isinstance(response, dict):
        return any(key in response for key in ("error", "errors", "exception")) or response.get("ok") is False
    if isinstance(response, str):
        if _ERROR_TEXT.search(response[:2000]):
            return True
        parsed = pii.parse_json(response)
        return isinstance(parsed, dict) and _looks_like_error(parsed)
    return False


class FlagsStage(PassThroughTiming):
    name = NAME

    def __init__(self, config: Config, detectors: list[Detector] | None = None) -> None:
        self.config = config
        self.checks = frozenset(config.checks)
        self.refusal = _any_of((*DEFAULT_REFUSAL_PATTERNS, *config.refusal_patterns))
        self.boilerplate = _any_of((*DEFAULT_BOILERPLATE_PATTERNS, *config.boilerplate_patterns))
        self.detail = _any_of(config.detail_patterns)
        self.detectors: list[Detector] = (
            detectors if detectors is not None else [load_detector(n) for n in config.detectors]
        )

    def process(self, batch: list[SpanData]) -> list[SpanData]:
        for span in batch:
            if semconv.OPERATION_NAME in span.attributes:
                try:
                    raised = self.evaluate(span)
                    if raised:
                        _raise(span, raised)
                except Exception:
                    pass
        return batch

    def evaluate(self, span: SpanData) -> set[str]:
        """The names of the flags ``span`` raises (without changing it)."""
        attributes = span.attributes
        if (
            not self.detectors
            and semconv.OUTPUT_MESSAGES not in attributes
            and semconv.INPUT_MESSAGES not in attributes
        ):
            return self._evaluate_without_content(span, attributes)
        raised: set[str] = set()
        checks = self.checks
        operation = attributes.get(semconv.OPERATION_NAME)
        outputs = pii.messages(attributes.get(semconv.OUTPUT_MESSAGES))
        output_texts = [pii.message_text(m) for m in outputs]
        answer = "\n".join(output_texts)
        output_tokens = _int(attributes.get(semconv.USAGE_OUTPUT_TOKENS))
        max_tokens = _int(attributes.get(semconv.REQUEST_MAX_TOKENS))
        reasons = _finish_reasons(attributes.get(semconv.RESPONSE_FINISH_REASONS), outputs)
        failed = semconv.ERROR_TYPE in attributes or span.status_code == STATUS_ERROR
        answers = operation not in _NO_ANSWER_OPERATIONS

        if answers and not failed and semconv.FLAG_EMPTY in checks:
            has_tool_call = any(
                isinstance(part, dict) and part.get("type") == "tool_call"
                for m in outputs
                for part in (m.get("parts") or ())
            )
            if output_tokens == 0 or (
                semconv.OUTPUT_MESSAGES in attributes
                and outputs
                and not answer.strip()
                and not has_tool_call
                and not _has_refusal_part(outputs)
            ):
                raised.add(semconv.FLAG_EMPTY)

        if (
            answers
            and semconv.FLAG_TRUNCATED in checks
            and (
                reasons & TRUNCATION_REASONS
                or (max_tokens and output_tokens is not None and output_tokens >= max_tokens)
            )
        ):
            raised.add(semconv.FLAG_TRUNCATED)

        if answers and not failed and semconv.FLAG_TOO_SHORT in checks and output_tokens:
            by_ratio = bool(
                self.config.short_ratio and max_tokens and output_tokens < self.config.short_ratio * max_tokens
            )
            if by_ratio or (
                self.detail is not None
                and output_tokens < self.config.detail_min_tokens
                and self._asks_for_detail(attributes)
            ):
                raised.add(semconv.FLAG_TOO_SHORT)

        if (
            answers
            and semconv.FLAG_REFUSAL in checks
            and (
                reasons & FILTER_REASONS
                or _has_refusal_part(outputs)
                or (self.refusal is not None and answer and self.refusal.search(answer[:2000]))
            )
        ):
            raised.add(semconv.FLAG_REFUSAL)

        if (
            answers
            and semconv.FLAG_BOILERPLATE in checks
            and answer
            and self.boilerplate is not None
            and self.boilerplate.search(answer)
        ):
            raised.add(semconv.FLAG_BOILERPLATE)

        if semconv.FLAG_TOOL_ERROR in checks and self._tool_error(span, operation, failed):
            raised.add(semconv.FLAG_TOOL_ERROR)

        if self.detectors:
            keys = pii.content_keys(attributes)
            if keys:
                texts = pii.content_texts(attributes, keys)
                for detector in self.detectors:
                    try:
                        findings = detector(span, texts)
                    except Exception:
                        continue
                    for finding in findings or ():
                        name = getattr(finding, "name", None)
                        if isinstance(name, str) and name:
                            raised.add(name)
        return raised

    def _evaluate_without_content(self, span: SpanData, attributes: dict[str, Any]) -> set[str]:
        """:meth:`evaluate` for a span without captured messages (content capture is off by default):
        the same rules, minus those that read an answer or a prompt, which cannot fire here. Every
        value is read (and may raise) as :meth:`evaluate` reads it, before any rule."""
        operation = attributes.get(semconv.OPERATION_NAME)
        output_tokens = attributes.get(semconv.USAGE_OUTPUT_TOKENS)
        if type(output_tokens) is not int:  # plain ints, the usual case, skip the call
            output_tokens = _int(output_tokens)
        max_tokens = attributes.get(semconv.REQUEST_MAX_TOKENS)
        if type(max_tokens) is not int:
            max_tokens = _int(max_tokens)
        truncated_reason, filter_reason = _reason_classes(attributes.get(semconv.RESPONSE_FINISH_REASONS))
        failed = semconv.ERROR_TYPE in attributes or span.status_code == STATUS_ERROR
        checks = self.checks
        raised: set[str] = set()
        if operation not in _NO_ANSWER_OPERATIONS:
            if not failed and output_tokens == 0 and semconv.FLAG_EMPTY in checks:
                raised.add(semconv.FLAG_EMPTY)
            if (
                truncated_reason or (max_tokens and output_tokens is not None and output_tokens >= max_tokens)
            ) and semconv.FLAG_TRUNCATED in checks:
                raised.add(semconv.FLAG_TRUNCATED)
            short_ratio = self.config.short_ratio
            if (
                short_ratio
                and not failed
                and output_tokens
                and max_tokens
                and output_tokens < short_ratio * max_tokens
                and semconv.FLAG_TOO_SHORT in checks
            ):
                raised.add(semconv.FLAG_TOO_SHORT)
            if filter_reason and semconv.FLAG_REFUSAL in checks:
                raised.add(semconv.FLAG_REFUSAL)
        if failed and operation == "execute_tool" and semconv.FLAG_TOOL_ERROR in checks:
            raised.add(semconv.FLAG_TOOL_ERROR)
        return raised

    def _asks_for_detail(self, attributes: dict[str, Any]) -> bool:
        inputs = pii.messages(attributes.get(semconv.INPUT_MESSAGES))
        for message in reversed(inputs):
            if message.get("role") == "user":
                return bool(self.detail and self.detail.search(pii.message_text(message)))
        return False

    @staticmethod
    def _tool_error(span: SpanData, operation: Any, failed: bool) -> bool:
        if operation == "execute_tool" and failed:
            return True
        raw = span.attributes.get(semconv.INPUT_MESSAGES)
        if not isinstance(raw, str) or "tool_call_response" not in raw:
            return False
        inputs = pii.messages(raw)
        # Only the latest tool results: an error answered turns ago was already flagged then.
        latest: list[Any] = []
        for message in reversed(inputs):
            if message.get("role") != "tool":
                break
            latest.extend(message.get("parts") or ())
        for part in latest:
            if (
                isinstance(part, dict)
                and part.get("type") == "tool_call_response"
                and _looks_like_error(part.get("response"))
            ):
                return True
        return False


def _raise(span: SpanData, raised: set[str]) -> None:
    """``tokentrace.flag.<name> = true`` for each raised flag, and the sorted list of all of them."""
    existing = span.attributes.get(semconv.FLAGS) or ()
    names = sorted(set(existing) | raised)
    for name in raised:
        span.set(semconv.FLAG_PREFIX + name, True)
    span.set(semconv.FLAGS, names)


def _has_refusal_part(outputs: list[dict[str, Any]]) -> bool:
    return any(
        isinstance(part, dict) and part.get("type") == "refusal"
        for message in outputs
        for part in (message.get("parts") or ())
    )


def build(config: Config | None = None) -> FlagsStage:
    return FlagsStage(config if config is not None else Config())


__all__ = ["BUILTIN_CHECKS", "Config", "Detector", "Finding", "FlagsStage", "build", "load_detector"]
