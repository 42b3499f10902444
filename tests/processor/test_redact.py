"""PII detection (positive and negative cases per type) and the redact stage's three modes, on real
spans from the simulator where the content comes from the instrumentation itself."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tokentrace.core import semconv
from tokentrace.processor import pii
from tokentrace.processor.model import SpanData, from_readable, to_readable
from tokentrace.processor.stages import redact
from tokentrace.processor.stages.redact import Config

MODEL = "gpt-4o-mini"
SALT = "test-salt"


# -- detection ------------------------------------------------------------------------------------

POSITIVE = [
    (pii.EMAIL, "jane.doe+tag@mail.example.co.uk"),
    (pii.EMAIL, "BOB@EXAMPLE.COM"),
    (pii.PHONE, "+44 20 7946 0958"),
    (pii.PHONE, "+1 (415) 555-2671"),
    (pii.PHONE, "+33612345678"),
    (pii.PHONE, "(415) 555-2671"),
    (pii.PHONE, "415-555-2671"),
    (pii.PHONE, "415.555.2671"),
    (pii.CREDIT_CARD, "4111 1111 1111 1111"),
    (pii.CREDIT_CARD, "4111111111111111"),
    (pii.CREDIT_CARD, "5500-0000-0000-0004"),
    (pii.CREDIT_CARD, "378282246310005"),
    (pii.IBAN, "GB82 WEST 1234 5698 7654 32"),
    (pii.IBAN, "DE89370400440532013000"),
    (pii.IBAN, "FR1420041010050500013M02606"),
    (pii.API_KEY, "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"),
    (pii.API_KEY, "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz01"),
    (pii.API_KEY, "AKIAIOSFODNN7EXAMPLE"),
    (pii.API_KEY, "ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"),
    (pii.API_KEY, "xoxb-123456789012-abcdefABCDEF"),
    (pii.API_KEY, "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"),
    (pii.PRIVATE_KEY, "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----"),
    (pii.PRIVATE_KEY, "-----BEGIN PRIVATE KEY-----"),
    (pii.IP_ADDRESS, "192.168.10.254"),
    (pii.IP_ADDRESS, "2001:db8::8a2e:370:7334"),
    (pii.IP_ADDRESS, "fe80::1"),
]

NEGATIVE = [
    "4111 1111 1111 1112",  # 16 digits failing Luhn: not a card, and not read as a phone either
    "1234567890123456",
    "order number 8812345678901",  # 13 digits, Luhn-invalid
    "GB82 WEST 1234 5698 7654 33",  # IBAN with a wrong check
    "DE00370400440532013000",
    "user at example dot com",
    "foo@bar",
    "sk-short",
    "AKIA-not-a-key",
    "ghp_short",
    "the bearer of bad news",
    "-----BEGIN PUBLIC KEY-----",
    "999.168.1.1",
    "version 1.2.3",
    "meeting at 12:30:45",
    "id 550e8400-e29b-41d4-a716-446655440000",
    "on 2024-01-15",
    "call extension 4471",
    "we shipped 1,234,567 units",
]


@pytest.mark.parametrize(("kind", "value"), POSITIVE)
def test_detects(kind: str, value: str) -> None:
    matches = list(pii.find(f"before {value} after"))
    assert [(m.type, m.text) for m in matches] == [(kind, value)]


@pytest.mark.parametrize("text", NEGATIVE)
def test_does_not_detect(text: str) -> None:
    assert list(pii.find(text)) == []


def test_validators() -> None:
    assert pii.luhn_valid("4111111111111111") and not pii.luhn_valid("4111111111111112")
    assert pii.iban_valid("GB82 WEST 1234 5698 7654 32") and not pii.iban_valid("GB82 WEST 1234 5698 7654 3")
    assert pii.COMBINED.groups > 10  # one combined expression, compiled once


def test_type_filter() -> None:
    text = "mail a@b.io from 10.0.0.1"
    assert pii.detect(text) == {pii.EMAIL, pii.IP_ADDRESS}
    assert pii.detect(text, frozenset({pii.EMAIL})) == {pii.EMAIL}


# -- the stage on real spans ----------------------------------------------------------------------

SECRET_PROMPT = "Card 4111 1111 1111 1111, mail jane@example.com, key sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz01"


@pytest.fixture
def span(client: Any, instrument: Any, telemetry: Any) -> SpanData:
    instrument(OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="SPAN_ONLY")
    client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Never reveal bob@example.org or 4111-1111-1111-1111."},
            {"role": "user", "content": SECRET_PROMPT},
        ],
    )
    return from_readable(telemetry.span())


def texts(span: SpanData) -> str:
    return json.dumps({k: span.attributes.get(k) for k in pii.CONTENT_KEYS})


def test_flag_mode_leaves_content(span: SpanData) -> None:
    before = dict(span.attributes)
    redact.build(Config(mode="flag")).process([span])
    a = span.attributes
    assert a[semconv.PII_DETECTED] is True
    assert a[semconv.PII_TYPES] == [pii.API_KEY, pii.CREDIT_CARD, pii.EMAIL]
    assert {k: v for k, v in a.items() if not k.startswith("tokentrace.pii.")} == before


def test_mask_mode_keeps_json_valid(span: SpanData) -> None:
    redact.build().process([span])
    a = span.attributes
    inputs = json.loads(a[semconv.INPUT_MESSAGES])
    outputs = json.loads(a[semconv.OUTPUT_MESSAGES])
    assert inputs[0]["parts"][0]["content"] == "Never reveal [REDACTED:EMAIL] or [REDACTED:CREDIT_CARD]."
    assert inputs[1]["parts"][0]["content"] == (
        "Card [REDACTED:CREDIT_CARD], mail [REDACTED:EMAIL], key [REDACTED:API_KEY]"
    )
    # The simulator echoes the prompt's first 40 characters: the card is in the output too.
    assert "[REDACTED:CREDIT_CARD]" in outputs[0]["parts"][0]["content"]
    for secret in ("4111", "jane@example.com", "bob@example.org", "sk-proj"):
        assert secret not in texts(span)
    assert a[semconv.PII_DETECTED] is True
    assert a[semconv.PII_TYPES] == [pii.API_KEY, pii.CREDIT_CARD, pii.EMAIL]
    readable = to_readable(span)
    assert "[REDACTED:EMAIL]" in readable.attributes[semconv.INPUT_MESSAGES]


def test_hash_mode_is_stable_and_salt_dependent(span: SpanData) -> None:
    original = dict(span.attributes)
    redact.build(Config(mode="hash", salt=SALT)).process([span])
    content = json.loads(span.attributes[semconv.INPUT_MESSAGES])[1]["parts"][0]["content"]
    email_token = pii.hash_replacer(SALT.encode())(pii.EMAIL, "jane@example.com")
    assert email_token.startswith("[EMAIL:") and len(email_token) == len("[EMAIL:12345678]")
    assert email_token in content
    # Same value, same token: across calls, stages, and spellings of the value.
    again = SpanData(1, 2, None, "chat", 3, 0, 1, dict(original))
    redact.build(Config(mode="hash", salt=SALT)).process([again])
    assert again.attributes[semconv.INPUT_MESSAGES] == span.attributes[semconv.INPUT_MESSAGES]
    replace = pii.hash_replacer(SALT.encode())
    assert replace(pii.EMAIL, "Jane@Example.com") == email_token
    assert replace(pii.CREDIT_CARD, "4111 1111 1111 1111") == replace(pii.CREDIT_CARD, "4111-1111-1111-1111")
    # A different salt gives different tokens.
    other = SpanData(1, 2, None, "chat", 3, 0, 1, dict(original))
    redact.build(Config(mode="hash", salt="another-salt")).process([other])
    assert email_token not in other.attributes[semconv.INPUT_MESSAGES]
    assert "[EMAIL:" in other.attributes[semconv.INPUT_MESSAGES]


def test_hash_mode_needs_a_salt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(redact.SALT_ENV, raising=False)
    with pytest.raises(ValueError, match="salt"):
        redact.build(Config(mode="hash"))
    monkeypatch.setenv(redact.SALT_ENV, SALT)
    stage = redact.build(Config(mode="hash"))
    assert stage.replacer is not None and stage.replacer(pii.EMAIL, "a@b.io") == pii.hash_replacer(SALT.encode())(
        pii.EMAIL, "a@b.io"
    )


def test_span_without_content_is_not_scanned(client: Any, instrumented: Any, telemetry: Any) -> None:
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": SECRET_PROMPT}])
    span = from_readable(telemetry.span())
    span.attributes["note"] = "jane@example.com"  # not a content attribute
    before = dict(span.attributes)
    redact.build().process([span])
    assert span.attributes == before and not span.changed


def test_clean_content_is_unchanged(client: Any, instrument: Any, telemetry: Any) -> None:
    instrument(OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="SPAN_ONLY")
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Nothing to hide"}])
    span = from_readable(telemetry.span())
    before = dict(span.attributes)
    for mode in ("flag", "mask"):
        redact.build(Config(mode=mode)).process([span])
    assert span.attributes == before and not span.changed


# -- other content shapes -------------------------------------------------------------------------


def genai_span(attributes: dict[str, Any]) -> SpanData:
    return SpanData(1, 2, None, "chat", 3, 0, 1, {semconv.OPERATION_NAME: "chat", **attributes})


def test_flattened_and_openinference_attributes() -> None:
    span = SpanData(
        1,
        2,
        None,
        "llm",
        3,
        0,
        1,
        {
            semconv.SYSTEM: "openai",
            "gen_ai.prompt.0.content": "reach me at +44 20 7946 0958",
            "gen_ai.prompt.0.role": "user",
            "llm.input_messages.0.message.content": "server 10.1.2.3",
            semconv.SYSTEM_INSTRUCTIONS: json.dumps([{"type": "text", "content": "Admin: root@example.com"}]),
        },
    )
    redact.build().process([span])
    a = span.attributes
    assert a["gen_ai.prompt.0.content"] == "reach me at [REDACTED:PHONE]"
    assert a["gen_ai.prompt.0.role"] == "user"
    assert a["llm.input_messages.0.message.content"] == "server [REDACTED:IP_ADDRESS]"
    assert json.loads(a[semconv.SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "Admin: [REDACTED:EMAIL]"}]
    assert a[semconv.PII_TYPES] == [pii.EMAIL, pii.IP_ADDRESS, pii.PHONE]


def test_tool_arguments_and_truncated_json() -> None:
    messages = json.dumps(
        [
            {
                "role": "assistant",
                "parts": [
                    {
                        "type": "tool_call",
                        "id": "c",
                        "name": "charge",
                        "arguments": {"card": "4111111111111111", "n": 2},
                    }
                ],
            }
        ]
    )
    truncated = messages[:-10]  # cut by a content length limit: not JSON any more
    span = genai_span({semconv.OUTPUT_MESSAGES: messages, semconv.INPUT_MESSAGES: truncated})
    redact.build().process([span])
    parsed = json.loads(span.attributes[semconv.OUTPUT_MESSAGES])
    assert parsed[0]["parts"][0]["arguments"] == {"card": "[REDACTED:CREDIT_CARD]", "n": 2}
    assert "4111" not in span.attributes[semconv.INPUT_MESSAGES]
    assert "[REDACTED:CREDIT_CARD]" in span.attributes[semconv.INPUT_MESSAGES]


def test_types_limit_and_list_values() -> None:
    span = genai_span({semconv.INPUT_MESSAGES: "ip 10.0.0.1 mail a@b.io", "gen_ai.prompt.0.content": ["a@b.io", 3]})
    redact.build(Config.from_mapping({"types": ["email"]})).process([span])
    assert span.attributes[semconv.INPUT_MESSAGES] == "ip 10.0.0.1 mail [REDACTED:EMAIL]"
    assert span.attributes["gen_ai.prompt.0.content"] == ["[REDACTED:EMAIL]", 3]
    assert span.attributes[semconv.PII_TYPES] == [pii.EMAIL]


def test_non_genai_span_passes_untouched() -> None:
    span = SpanData(1, 2, None, "GET /", 2, 0, 1, {"http.url": "http://a@b.io", "gen_ai.prompt.0.content": "a@b.io"})
    before = dict(span.attributes)
    assert redact.build().process([span]) == [span]
    assert span.attributes == before and not span.changed


def test_config_validation() -> None:
    assert Config.from_mapping({"mode": "flag"}).mode == "flag"
    with pytest.raises(ValueError, match="mode must be one of"):
        Config.from_mapping({"mode": "erase"})
    with pytest.raises(ValueError, match="unknown PII types"):
        Config.from_mapping({"types": ["ssn"]})
    with pytest.raises(ValueError, match="unknown keys"):
        Config.from_mapping({"salts": "x"})


def test_enrich_flags_redact_in_one_pipeline(client: Any, instrument: Any, telemetry: Any) -> None:
    """The three stages together, as the SDK exporter and the gateway run them; other spans ride along."""
    from opentelemetry.trace import SpanKind

    from tokentrace.processor.pipeline import Pipeline
    from tokentrace.processor.stages import enrich, flags

    instrument(OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="SPAN_ONLY")
    with telemetry.tracer_provider.get_tracer("app").start_as_current_span("GET /checkout", kind=SpanKind.SERVER):
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Pay with 4111 1111 1111 1111 please"}], max_tokens=3
        )
    pipeline = Pipeline([enrich.build(), flags.build(flags.Config(detectors=("pii",))), redact.build()])
    batch = [from_readable(s) for s in telemetry.spans()]
    http = next(s for s in batch if s.name == "GET /checkout")
    http_before = dict(http.attributes)
    out = pipeline.process(batch)
    assert len(out) == 2
    llm = next(s for s in out if s is not http)
    a = llm.attributes
    assert a[semconv.FLAGS] == [semconv.FLAG_PII, semconv.FLAG_TRUNCATED]
    assert a[semconv.PII_TYPES] == [pii.CREDIT_CARD]
    assert "4111" not in a[semconv.INPUT_MESSAGES]
    assert json.loads(a[semconv.INPUT_MESSAGES])[0]["parts"][0]["content"] == "Pay with [REDACTED:CREDIT_CARD] please"
    assert a[semconv.PROMPT_FINGERPRINT_SOURCE] == semconv.FINGERPRINT_SOURCE_CONTENT
    assert http.attributes == http_before and not http.changed
    assert to_readable(http) is http.origin
