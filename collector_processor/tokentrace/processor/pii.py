"""Built-in PII and secret detection over captured GenAI content, and the content helpers around it.

One combined, precompiled regular expression finds *candidates* in one pass; candidates that need it
are then validated (Luhn for card numbers, ISO 7064 mod-97 for IBANs, digit counts for phone
numbers, :mod:`ipaddress` for IPv6), so a Luhn-invalid 16-digit order number is not a card and a
time like ``12:30:45`` is not an IPv6 address. A candidate that fails validation is skipped as a
whole (the scan resumes after it), so a long number that is not a card is never re-read as a phone.

Types (the mask tag is the upper-case name): ``email``, ``phone``, ``credit_card``, ``iban``,
``api_key`` (OpenAI ``sk-``, Anthropic ``sk-ant-``, AWS ``AKIA``/``ASIA``, GitHub ``ghp_``..., Slack
``xox?-``, ``Bearer <token>``), ``private_key`` (PEM private-key headers, with the block when present),
``ip_address`` (IPv4 and IPv6).

The module also holds the small helpers every content-reading stage shares: which attributes carry
content, and how to get plain texts out of the conventions' JSON message shapes.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tokentrace.core import semconv

# -- content attributes ---------------------------------------------------------------------------

CONTENT_KEYS: tuple[str, ...] = (semconv.INPUT_MESSAGES, semconv.OUTPUT_MESSAGES, semconv.SYSTEM_INSTRUCTIONS)
"""Attributes holding JSON content in the current conventions."""

CONTENT_PREFIXES: tuple[str, ...] = (
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "llm.input_messages.",
    "llm.output_messages.",
)
"""Flattened content of older conventions (``gen_ai.prompt.0.content``) and OpenInference."""

# A span without any of these keys cannot carry content under a prefix; checking them first keeps
# non-GenAI spans on a few dict lookups instead of a walk over their attribute names.
GENAI_MARKERS = (semconv.OPERATION_NAME, semconv.SYSTEM, "openinference.span.kind")


def content_keys(
    attributes: dict[str, Any], keys: tuple[str, ...] = CONTENT_KEYS, prefixes: tuple[str, ...] = CONTENT_PREFIXES
) -> list[str]:
    """Names of the attributes of ``attributes`` that carry content (empty when none)."""
    found = [key for key in keys if key in attributes]
    if prefixes and any(marker in attributes for marker in GENAI_MARKERS):
        found.extend(key for key in attributes if key.startswith(prefixes) and key not in found)
    return found


def parse_json(value: Any) -> Any:
    """A JSON attribute's value, or ``None`` when it isn't JSON (truncated by a length limit, say)."""
    if isinstance(value, (list, dict)):
        return value
    if not isinstance(value, str):
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


def messages(value: Any) -> list[dict[str, Any]]:
    """A ``gen_ai.*.messages`` attribute as a list of message dicts (empty when unreadable)."""
    parsed = parse_json(value)
    if not isinstance(parsed, list):
        return []
    return [m for m in parsed if isinstance(m, dict)]


def part_text(part: Any) -> str:
    """Text a part carries: text/refusal content, tool-call name and arguments, tool responses."""
    if isinstance(part, str):
        return part
    if not isinstance(part, dict):
        return ""
    kind = part.get("type")
    if kind == "tool_call":
        arguments = part.get("arguments")
        args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        return str(part.get("name") or "") + (args if arguments is not None else "")
    if kind == "tool_call_response":
        response = part.get("response")
        return response if isinstance(response, str) else json.dumps(response, ensure_ascii=False, default=str)
    content = part.get("content")
    return content if isinstance(content, str) else ""


def message_text(message: dict[str, Any]) -> str:
    """All text of one message, its parts joined."""
    parts = message.get("parts")
    if isinstance(parts, list):
        return "".join(part_text(part) for part in parts)
    content = message.get("content")  # a plain {"role", "content"} message from another instrumentation
    return content if isinstance(content, str) else ""


def instructions_text(value: Any) -> str:
    """``gen_ai.system_instructions`` (a JSON list of parts, or plain text) as text."""
    parsed = parse_json(value)
    if isinstance(parsed, list):
        return "".join(part_text(part) for part in parsed)
    if isinstance(value, str):
        return value if parsed is None else (parsed if isinstance(parsed, str) else value)
    return ""


def content_texts(attributes: dict[str, Any], keys: list[str] | None = None) -> list[str]:
    """Every text of the span's content, for detectors: message texts, instructions, flattened values."""
    texts: list[str] = []
    for key in keys if keys is not None else content_keys(attributes):
        value = attributes.get(key)
        if key in (semconv.INPUT_MESSAGES, semconv.OUTPUT_MESSAGES):
            parsed = messages(value)
            if parsed:
                texts.extend(t for t in (message_text(m) for m in parsed) if t)
            elif isinstance(value, str) and value:
                texts.append(value)  # not JSON (truncated): scan it as it is
        elif key == semconv.SYSTEM_INSTRUCTIONS:
            text = instructions_text(value)
            if text:
                texts.append(text)
        elif isinstance(value, str) and value:
            texts.append(value)
    return texts


# -- detection ------------------------------------------------------------------------------------

EMAIL = "email"
PHONE = "phone"
CREDIT_CARD = "credit_card"
IBAN = "iban"
API_KEY = "api_key"
PRIVATE_KEY = "private_key"
IP_ADDRESS = "ip_address"
ALL_TYPES = (EMAIL, PHONE, CREDIT_CARD, IBAN, API_KEY, PRIVATE_KEY, IP_ADDRESS)

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"

# Group name -> (type, pattern). Order matters at equal start positions: secrets and cards before
# phones, so a card number is never read as a phone; IBAN before anything that could eat its digits.
_PATTERNS: tuple[tuple[str, str, str], ...] = (
    (
        "private_key",
        PRIVATE_KEY,
        r"-----BEGIN (?P<pk_kind>(?:[A-Z0-9]+ )*PRIVATE KEY)-----(?:[\s\S]{0,10000}?-----END (?P=pk_kind)-----)?",
    ),
    ("anthropic", API_KEY, r"(?<![\w-])sk-ant-[A-Za-z0-9_-]{20,}"),
    ("openai", API_KEY, r"(?<![\w-])sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"),
    ("aws", API_KEY, r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Za-z0-9])"),
    ("github", API_KEY, r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
    ("slack", API_KEY, r"(?<![A-Za-z0-9])xox[abposr]-[A-Za-z0-9-]{10,}"),
    ("bearer", API_KEY, r"\b[Bb]earer[ \t]+[A-Za-z0-9\-._~+/]{16,}=*"),
    (
        "email",
        EMAIL,
        r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}(?![\w-])",
    ),
    ("iban", IBAN, r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])"),
    ("card", CREDIT_CARD, r"(?<![\d.+-])\d(?:[ -]?\d){12,18}(?![\d-])"),
    ("ipv4", IP_ADDRESS, rf"(?<![\d.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\.?\d)"),
    ("ipv6", IP_ADDRESS, r"(?<![\w:.])(?=[0-9A-Fa-f:]*[0-9A-Fa-f])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])"),
    ("phone_intl", PHONE, r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){1,5}(?![\d-])"),
    ("phone_us", PHONE, r"(?<![\w+(])(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\d-])"),
)

# Every match starts after a non-word character: the shared look-behind in front rejects the positions
# inside words (most of a text) with one check instead of one per alternative.
COMBINED = re.compile(r"(?<!\w)(?:" + "|".join(f"(?P<{group}>{pattern})" for group, _, pattern in _PATTERNS) + ")")
# Nothing can match in a text without a digit, '@' or ':' and without any key prefix.
# fmt: off
_TRIGGER_LITERALS = (
    *"0123456789@:", "sk-", "AKIA", "ASIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xox", "earer",
    "PRIVATE KEY",
)
# fmt: on
_TYPE_OF_GROUP = {group: kind for group, kind, _ in _PATTERNS}
_NOT_DIGIT = re.compile(r"\D")
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


# IBAN lengths per country (ISO 13616 registry); unknown countries need a plausible length only.
# fmt: off
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24,
    "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21,
    "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LI": 21,
    "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30,
    "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20,
}
# fmt: on


def iban_valid(candidate: str) -> bool:
    iban = _NOT_ALNUM.sub("", candidate).upper()
    expected = _IBAN_LENGTHS.get(iban[:2])
    if expected is not None and len(iban) != expected:
        return False
    if not 15 <= len(iban) <= 34:
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


def _valid(group: str, text: str) -> bool:
    if group == "card":
        digits = _NOT_DIGIT.sub("", text)
        return 13 <= len(digits) <= 19 and luhn_valid(digits)
    if group == "iban":
        return iban_valid(text)
    if group in ("phone_intl", "phone_us"):
        return 7 <= len(_NOT_DIGIT.sub("", text)) <= 15
    if group == "ipv6":
        if text.count(":") < 2:
            return False
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            return False
        return True
    return True


@dataclass(frozen=True, slots=True)
class Match:
    type: str
    start: int
    end: int
    text: str


def find(text: str, types: frozenset[str] | None = None) -> Iterator[Match]:
    """Validated PII matches in ``text``, left to right, non-overlapping."""
    if not any(literal in text for literal in _TRIGGER_LITERALS):  # str.__contains__ is a C scan
        return
    for found in COMBINED.finditer(text):
        group = found.lastgroup
        if group == "pk_kind":  # the inner group of the private-key pattern
            group = "private_key"
        kind = _TYPE_OF_GROUP.get(group or "")
        if kind is None or (types is not None and kind not in types):
            continue
        value = found.group()
        if _valid(group or "", value):
            yield Match(kind, found.start(), found.end(), value)


def detect(text: str, types: frozenset[str] | None = None) -> set[str]:
    """The PII types present in ``text``."""
    return {match.type for match in find(text, types)}


def normalized(kind: str, value: str) -> str:
    """The canonical form hashed in ``hash`` mode, so spellings of one value stay joinable."""
    if kind == EMAIL:
        return value.lower()
    if kind in (PHONE, CREDIT_CARD):
        return ("+" if value.startswith("+") else "") + _NOT_DIGIT.sub("", value)
    if kind == IBAN:
        return _NOT_ALNUM.sub("", value).upper()
    if kind == IP_ADDRESS:
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            return value
    return value


def mask_replacer(kind: str, value: str) -> str:
    return f"[REDACTED:{kind.upper()}]"


def hash_replacer(salt: bytes) -> Callable[[str, str], str]:
    def replace(kind: str, value: str) -> str:
        digest = hmac.new(salt, normalized(kind, value).encode("utf-8"), hashlib.sha256).hexdigest()
        return f"[{kind.upper()}:{digest[:8]}]"

    return replace


def replace_in_text(
    text: str, replacer: Callable[[str, str], str], types: frozenset[str] | None, found: set[str]
) -> str:
    """``text`` with every match replaced by ``replacer(type, value)``; adds found types to ``found``."""
    pieces: list[str] = []
    last = 0
    for match in find(text, types):
        found.add(match.type)
        pieces.append(text[last : match.start])
        pieces.append(replacer(match.type, match.text))
        last = match.end
    if not pieces:
        return text
    pieces.append(text[last:])
    return "".join(pieces)


def replace_in_json(
    value: Any, replacer: Callable[[str, str], str], types: frozenset[str] | None, found: set[str]
) -> Any:
    """A parsed JSON value with every string value (not keys) redacted."""
    if isinstance(value, str):
        return replace_in_text(value, replacer, types, found)
    if isinstance(value, list):
        return [replace_in_json(item, replacer, types, found) for item in value]
    if isinstance(value, dict):
        return {key: replace_in_json(item, replacer, types, found) for key, item in value.items()}
    return value


def redact_value(value: str, replacer: Callable[[str, str], str], types: frozenset[str] | None, found: set[str]) -> str:
    """An attribute value redacted; JSON stays valid JSON, anything else is redacted as text."""
    if not value.lstrip().startswith(("[", "{", '"')):
        return replace_in_text(value, replacer, types, found)
    try:
        parsed = json.loads(value)
    except ValueError:
        return replace_in_text(value, replacer, types, found)
    local: set[str] = set()
    redacted = replace_in_json(parsed, replacer, types, local)
    if not local:
        return value
    found |= local
    return json.dumps(redacted, ensure_ascii=False)


class PiiDetector:
    """The ``pii`` detector of the flags stage: one finding per PII type in the texts."""

    name = "pii"

    def __init__(self, types: frozenset[str] | None = None) -> None:
        self.types = types

    def __call__(self, span: Any, texts: list[str]) -> list[Any]:
        from tokentrace.processor.stages.flags import Finding

        kinds: set[str] = set()
        for text in texts:
            kinds |= detect(text, self.types)
        return [Finding(semconv.FLAG_PII, kind) for kind in sorted(kinds)]
