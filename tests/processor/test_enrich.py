"""The enrich stage on real spans: tokentrace's OpenAI instrumentation against the simulator.

Expected costs come from genai-prices' own ``calc_price``, expected estimates from tiktoken itself
(through the shared estimator the instrumentation uses), never from the stage under test.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from genai_prices import Usage as CatalogueUsage
from genai_prices import calc_price

from tokentrace.core import semconv
from tokentrace.core.tokens import shared_estimator
from tokentrace.processor.model import SpanData, from_readable, to_readable
from tokentrace.processor.stages import enrich
from tokentrace.processor.stages.enrich import Config, content_fingerprint, skeleton

MODEL = "gpt-4o-mini"
TOLERANCE = 1e-12
COST_KEYS = (
    semconv.USAGE_COST_AMOUNT,
    semconv.USAGE_COST_CURRENCY,
    semconv.USAGE_COST_SOURCE,
    semconv.COST_INPUT,
    semconv.COST_OUTPUT,
    semconv.COST_PRICING_MODEL,
    semconv.COST_PRICING_VERSION,
)
USAGE_KEYS = (
    semconv.USAGE_INPUT_TOKENS,
    semconv.USAGE_OUTPUT_TOKENS,
    semconv.USAGE_CACHE_READ_INPUT_TOKENS,
    semconv.USAGE_REASONING_OUTPUT_TOKENS,
    semconv.USAGE_SOURCE,
)
SYSTEM = "You are a support assistant for ACME. Answer in two sentences."


def chat(client: Any, question: str, system: str = SYSTEM, **kwargs: Any) -> Any:
    return client.chat.completions.create(
        model=kwargs.pop("model", MODEL),
        messages=[{"role": "system", "content": system}, {"role": "user", "content": question}],
        **kwargs,
    )


def spans(telemetry: Any) -> list[SpanData]:
    return [from_readable(span) for span in telemetry.spans()]


def strip(span: SpanData, keys: tuple[str, ...]) -> SpanData:
    for key in keys:
        span.attributes.pop(key, None)
    span.changed = False
    return span


def catalogue(span_attributes: dict[str, Any]) -> Any:
    cached = span_attributes.get(semconv.USAGE_CACHE_READ_INPUT_TOKENS) or 0
    return calc_price(
        CatalogueUsage(
            input_tokens=span_attributes[semconv.USAGE_INPUT_TOKENS],
            output_tokens=span_attributes.get(semconv.USAGE_OUTPUT_TOKENS) or 0,
            cache_read_tokens=cached or None,
        ),
        span_attributes[semconv.RESPONSE_MODEL],
        provider_id="openai",
    )


@pytest.fixture
def content(instrument: Any) -> Any:
    return instrument(OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="SPAN_ONLY")


# -- cost -----------------------------------------------------------------------------------------


def test_cost_where_missing_matches_genai_prices(client: Any, content: Any, telemetry: Any) -> None:
    chat(client, "How do I reset my password for account 7781?")
    client.embeddings.create(model="text-embedding-3-small", input="reset password")
    recorded = spans(telemetry)
    originals = [dict(span.attributes) for span in recorded]
    batch = [strip(span, COST_KEYS) for span in recorded]

    out = enrich.build().process(batch)

    assert out is batch
    for span, original in zip(out, originals, strict=True):
        a = span.attributes
        expected = catalogue(a)
        assert float(expected.total_price) > 0
        assert span.changed
        assert a[semconv.USAGE_COST_AMOUNT] == pytest.approx(float(expected.total_price), abs=TOLERANCE)
        assert a[semconv.COST_INPUT] == pytest.approx(float(expected.input_price), abs=TOLERANCE)
        assert a[semconv.COST_OUTPUT] == pytest.approx(float(expected.output_price), abs=TOLERANCE)
        assert a[semconv.USAGE_COST_CURRENCY] == "USD"
        assert a[semconv.USAGE_COST_SOURCE] == semconv.COST_SOURCE_LOCAL
        assert a[semconv.COST_PRICING_VERSION].startswith("genai-prices")
        # The same attributes, with the same values, as the instrumentation itself set.
        for key in COST_KEYS:
            assert a[key] == original[key], key


def test_existing_cost_is_left_alone(client: Any, content: Any, telemetry: Any) -> None:
    chat(client, "hello")
    span = spans(telemetry)[0]
    before = dict(span.attributes)
    enrich.build(Config(fingerprint=False, attribution=False)).process([span])
    assert span.attributes == before
    assert not span.changed


def test_price_file_reprices_existing_cost(client: Any, content: Any, telemetry: Any, tmp_path: Any) -> None:
    chat(client, "what does a central price cost")
    client.embeddings.create(model="text-embedding-3-small", input="not in the price file")
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n  - model: 'gpt-4o-mini*'\n    input_mtok: 1.0\n    output_mtok: 2.0\n")
    chat_span, embed_span = spans(telemetry)
    embed_before = dict(embed_span.attributes)

    enrich.build(Config(prices_file=str(prices), reprice=True)).process([chat_span, embed_span])

    a = chat_span.attributes
    expected_input = a[semconv.USAGE_INPUT_TOKENS] * 1.0 / 1_000_000
    expected_output = a[semconv.USAGE_OUTPUT_TOKENS] * 2.0 / 1_000_000
    assert a[semconv.USAGE_COST_SOURCE] == semconv.COST_SOURCE_PRICE_FILE
    assert a[semconv.COST_INPUT] == pytest.approx(expected_input, abs=TOLERANCE)
    assert a[semconv.COST_OUTPUT] == pytest.approx(expected_output, abs=TOLERANCE)
    assert a[semconv.USAGE_COST_AMOUNT] == pytest.approx(expected_input + expected_output, abs=TOLERANCE)
    assert a[semconv.COST_PRICING_VERSION] == "price-file:prices.yaml"
    # A model the file doesn't cover keeps the cost it had.
    for key in COST_KEYS:
        assert embed_span.attributes[key] == embed_before[key]


def test_price_file_without_reprice_prices_only_missing(
    client: Any, content: Any, telemetry: Any, tmp_path: Any
) -> None:
    chat(client, "one")
    chat(client, "two")
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": [{"model": "gpt-4o-mini*", "input_mtok": 1.0, "output_mtok": 2.0}]}))
    kept, missing = spans(telemetry)
    kept_cost = kept.attributes[semconv.USAGE_COST_AMOUNT]
    strip(missing, COST_KEYS)
    enrich.build(Config(prices_file=str(prices))).process([kept, missing])
    assert kept.attributes[semconv.USAGE_COST_AMOUNT] == kept_cost
    assert missing.attributes[semconv.USAGE_COST_SOURCE] == semconv.COST_SOURCE_PRICE_FILE


def test_unknown_model_gets_reason_not_cost() -> None:
    span = SpanData(
        1,
        2,
        None,
        "chat x",
        3,
        0,
        1,
        {
            semconv.OPERATION_NAME: "chat",
            semconv.PROVIDER_NAME: "openai",
            semconv.REQUEST_MODEL: "no-such-model-xyz",
            semconv.USAGE_INPUT_TOKENS: 10,
            semconv.USAGE_OUTPUT_TOKENS: 5,
        },
    )
    enrich.build().process([span])
    assert semconv.USAGE_COST_AMOUNT not in span.attributes
    assert span.attributes[semconv.COST_UNAVAILABLE_REASON] == "model_not_in_catalogue"


# -- token estimates ------------------------------------------------------------------------------


def test_tokens_estimated_from_captured_content(client: Any, content: Any, telemetry: Any) -> None:
    question = "Estimate my tokens please, order 4471"
    result = chat(client, question)
    span = strip(spans(telemetry)[0], COST_KEYS + USAGE_KEYS)

    enrich.build().process([span])

    a = span.attributes
    model = a[semconv.RESPONSE_MODEL]
    reply = result.choices[0].message.content
    assert a[semconv.USAGE_INPUT_TOKENS] == shared_estimator.count_messages(model, [SYSTEM, question])
    assert a[semconv.USAGE_OUTPUT_TOKENS] == shared_estimator.count_text(model, [reply])
    assert a[semconv.USAGE_SOURCE] == semconv.USAGE_SOURCE_ESTIMATED
    expected = catalogue(a)  # the estimate is priced like reported usage
    assert a[semconv.USAGE_COST_AMOUNT] == pytest.approx(float(expected.total_price), abs=TOLERANCE)


def test_no_estimate_without_content(client: Any, instrumented: Any, telemetry: Any) -> None:
    chat(client, "no content captured")
    span = strip(spans(telemetry)[0], COST_KEYS + USAGE_KEYS)
    enrich.build().process([span])
    assert semconv.USAGE_INPUT_TOKENS not in span.attributes
    assert semconv.USAGE_COST_AMOUNT not in span.attributes


def test_reported_usage_is_not_estimated(client: Any, content: Any, telemetry: Any) -> None:
    chat(client, "reported")
    span = spans(telemetry)[0]
    reported = span.attributes[semconv.USAGE_INPUT_TOKENS]
    enrich.build().process([span])
    assert span.attributes[semconv.USAGE_INPUT_TOKENS] == reported
    assert span.attributes[semconv.USAGE_SOURCE] == semconv.USAGE_SOURCE_REPORTED


# -- fingerprint ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("order 12345 costs 9.99", "order <number> costs <number>"),
        ('say "hello world" now', "say <quoted> now"),
        ("mail bob@example.com", "mail <email>"),
        ("id 550e8400-e29b-41d4-a716-446655440000", "id <uuid>"),
        ("on 2024-01-15 or 15/01/2024 at 10:30", "on <date> or <date> at <date>"),
        ("see https://example.com/a?b=1 ok", "see <url> ok"),
        ("card 4111111111111111", "card <number>"),
        ("  spaced\n\nout  ", "spaced out"),
    ],
)
def test_skeleton_replaces_variables(text: str, expected: str) -> None:
    assert skeleton(text) == expected


def test_fingerprint_groups_calls_differing_only_in_variables(client: Any, content: Any, telemetry: Any) -> None:
    chat(client, "Summarise ticket 1234 from alice@example.com opened 2024-05-01")
    chat(client, "Summarise ticket 98 from bob@example.org opened 2025-11-30")
    chat(client, "Translate ticket 98 into French")
    chat(client, "Summarise ticket 98 from bob@example.org opened 2025-11-30", system="You are a pirate.")
    batch = spans(telemetry)
    enrich.build().process(batch)
    prints = [span.attributes[semconv.PROMPT_FINGERPRINT] for span in batch]
    assert all(len(p) == enrich.FINGERPRINT_LENGTH and int(p, 16) >= 0 for p in prints)
    assert prints[0] == prints[1]
    assert prints[2] != prints[0]
    assert prints[3] != prints[1]  # same user message, different system prompt
    assert {s.attributes[semconv.PROMPT_FINGERPRINT_SOURCE] for s in batch} == {semconv.FINGERPRINT_SOURCE_CONTENT}


def test_fingerprint_ignores_assistant_turns() -> None:
    def attrs(history: str) -> dict[str, Any]:
        return {
            semconv.OPERATION_NAME: "chat",
            semconv.INPUT_MESSAGES: json.dumps(
                [
                    {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
                    {"role": "assistant", "parts": [{"type": "text", "content": history}]},
                    {"role": "user", "parts": [{"type": "text", "content": "Next?"}]},
                ]
            ),
        }

    assert content_fingerprint(attrs("one thing")) == content_fingerprint(attrs("something else entirely"))


def test_fingerprint_falls_back_to_metadata_without_content(client: Any, instrumented: Any, telemetry: Any) -> None:
    chat(client, "first question")
    chat(client, "a completely different question")
    chat(client, "first question", model="gpt-4o")
    batch = spans(telemetry)
    enrich.build().process(batch)
    prints = [span.attributes[semconv.PROMPT_FINGERPRINT] for span in batch]
    assert prints[0] == prints[1]
    assert prints[2] != prints[0]
    assert {s.attributes[semconv.PROMPT_FINGERPRINT_SOURCE] for s in batch} == {semconv.FINGERPRINT_SOURCE_METADATA}


def test_fingerprint_is_stable_across_processes() -> None:
    attributes = {semconv.OPERATION_NAME: "chat", semconv.REQUEST_MODEL: "m"}
    assert enrich.metadata_fingerprint(attributes) == enrich.metadata_fingerprint(dict(attributes))
    assert enrich.metadata_fingerprint(attributes) != enrich.metadata_fingerprint(
        {**attributes, semconv.SYSTEM_INSTRUCTIONS: "x"}
    )


# -- attribution ----------------------------------------------------------------------------------


def genai_span(attributes: dict[str, Any] | None = None, resource: dict[str, Any] | None = None) -> SpanData:
    base = {semconv.OPERATION_NAME: "chat", semconv.PROVIDER_NAME: "openai", semconv.REQUEST_MODEL: MODEL}
    return SpanData(1, 2, None, "chat", 3, 0, 1, {**base, **(attributes or {})}, resource=resource or {})


def test_attribution_from_span_then_resource() -> None:
    span = genai_span({"tenant.id": "acme", "user.id": "u-7"}, {"tenant.id": "ignored", "feature": "search"})
    enrich.build().process([span])
    a = span.attributes
    assert (a[semconv.ATTRIBUTION_TENANT], a[semconv.ATTRIBUTION_USER], a[semconv.ATTRIBUTION_FEATURE]) == (
        "acme",
        "u-7",
        "search",
    )


def test_attribution_keys_are_configurable_and_ordered() -> None:
    config = Config.from_mapping({"tenant_keys": ["org", "tenant"], "feature_keys": "app.feature"})
    span = genai_span({"tenant": "second", "org": "first", "app.feature": "chatbot"})
    enrich.build(config).process([span])
    assert span.attributes[semconv.ATTRIBUTION_TENANT] == "first"
    assert span.attributes[semconv.ATTRIBUTION_FEATURE] == "chatbot"
    assert semconv.ATTRIBUTION_USER not in span.attributes


def test_attribution_from_baggage_copied_onto_spans(client: Any, instrumented: Any, telemetry: Any) -> None:
    """What a BaggageSpanProcessor does: baggage entries become span attributes at span start."""
    from opentelemetry import baggage, context
    from opentelemetry.sdk.trace import SpanProcessor

    class CopyBaggage(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            for key, value in baggage.get_all(parent_context).items():
                span.set_attribute(key, str(value))

    telemetry.tracer_provider.add_span_processor(CopyBaggage())
    ctx = baggage.set_baggage("enduser.id", "user-42", baggage.set_baggage("tenant.id", "globex"))
    token = context.attach(ctx)
    try:
        chat(client, "who am I")
    finally:
        context.detach(token)
    span = spans(telemetry)[0]
    enrich.build().process([span])
    assert span.attributes[semconv.ATTRIBUTION_TENANT] == "globex"
    assert span.attributes[semconv.ATTRIBUTION_USER] == "user-42"


# -- pass-through, config, edges ------------------------------------------------------------------


def test_non_genai_span_passes_untouched() -> None:
    span = SpanData(1, 2, None, "GET /", 2, 0, 1, {"http.method": "GET", "tenant.id": "acme"})
    before = dict(span.attributes)
    assert enrich.build().process([span]) == [span]
    assert span.attributes == before
    assert not span.changed


def test_odd_values_do_not_raise() -> None:
    span = genai_span(
        {semconv.USAGE_INPUT_TOKENS: "ten", semconv.INPUT_MESSAGES: "[{not json", semconv.OUTPUT_MESSAGES: 7}
    )
    enrich.build().process([span])
    assert span.attributes[semconv.PROMPT_FINGERPRINT_SOURCE] == semconv.FINGERPRINT_SOURCE_METADATA


def test_config_from_mapping() -> None:
    assert Config.from_mapping(None) == Config()
    config = Config.from_mapping({"user_keys": ["uid"], "fingerprint_max_chars": 100, "cost": False})
    assert config.user_keys == ("uid",) and config.fingerprint_max_chars == 100 and not config.cost
    with pytest.raises(ValueError, match=r"unknown keys \['tenant_key'\]"):
        Config.from_mapping({"tenant_key": "x"})
    with pytest.raises(ValueError, match="reprice"):
        Config.from_mapping({"reprice": True})
    with pytest.raises(ValueError, match="true or false"):
        Config.from_mapping({"cost": "yes"})
    with pytest.raises(ValueError, match="list of strings"):
        Config.from_mapping({"user_keys": [1]})


def test_enriched_span_goes_back_to_readable(client: Any, content: Any, telemetry: Any) -> None:
    chat(client, "round trip")
    span = spans(telemetry)[0]
    enrich.build().process([span])
    readable = to_readable(span)
    assert readable.attributes[semconv.PROMPT_FINGERPRINT] == span.attributes[semconv.PROMPT_FINGERPRINT]


def test_failed_call_without_answer_is_not_estimated() -> None:
    messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "hello there"}]}])
    failed = genai_span({semconv.INPUT_MESSAGES: messages, semconv.ERROR_TYPE: "RateLimitError"})
    answered = genai_span({semconv.INPUT_MESSAGES: messages})
    enrich.build().process([failed, answered])
    assert semconv.USAGE_INPUT_TOKENS not in failed.attributes
    assert answered.attributes[semconv.USAGE_INPUT_TOKENS] == shared_estimator.count_messages(MODEL, ["hello there"])
    assert answered.attributes[semconv.USAGE_SOURCE] == semconv.USAGE_SOURCE_ESTIMATED
