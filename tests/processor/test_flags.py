"""The flags stage on real spans from the simulator (which echoes the prompt, so a prompt can make the
"model" refuse or sound like boilerplate), plus hand-made spans for what the simulator can't produce."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tokentrace.core import semconv
from tokentrace.processor.model import STATUS_ERROR, SpanData, from_readable
from tokentrace.processor.stages import flags
from tokentrace.processor.stages.flags import Config, Finding

MODEL = "gpt-4o-mini"


def ask(client: Any, text: str, **kwargs: Any) -> Any:
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}], **kwargs)


def flagged(span: SpanData) -> list[str]:
    return list(span.attributes.get(semconv.FLAGS, ()))


def run(telemetry: Any, config: Config | None = None) -> list[SpanData]:
    batch = [from_readable(span) for span in telemetry.spans()]
    return flags.build(config).process(batch)


def genai_span(attributes: dict[str, Any], status: int = 0) -> SpanData:
    base = {semconv.OPERATION_NAME: "chat", semconv.PROVIDER_NAME: "openai", semconv.REQUEST_MODEL: MODEL}
    return SpanData(1, 2, None, "chat", 3, 0, 1, {**base, **attributes}, status_code=status)


def output(*parts: dict[str, Any], finish_reason: str = "stop") -> str:
    return json.dumps([{"role": "assistant", "parts": list(parts), "finish_reason": finish_reason}])


def text(content: str) -> dict[str, Any]:
    return {"type": "text", "content": content}


@pytest.fixture
def content(instrument: Any) -> Any:
    return instrument(OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="SPAN_ONLY")


# -- built-in flags on real spans -----------------------------------------------------------------


def test_plain_answer_raises_nothing(client: Any, content: Any, telemetry: Any) -> None:
    ask(client, "What is the capital of France?")
    (span,) = run(telemetry)
    assert semconv.FLAGS not in span.attributes
    assert not span.changed


def test_truncated_by_max_tokens(client: Any, content: Any, telemetry: Any) -> None:
    ask(client, "Tell me a long story about dragons and castles", max_tokens=3)
    (span,) = run(telemetry)
    assert flagged(span) == [semconv.FLAG_TRUNCATED]
    assert span.attributes[semconv.FLAG_PREFIX + semconv.FLAG_TRUNCATED] is True


def test_empty_answer(client: Any, content: Any, telemetry: Any) -> None:
    ask(client, "Say nothing", max_tokens=0)
    (span,) = run(telemetry)
    assert span.attributes[semconv.USAGE_OUTPUT_TOKENS] == 0
    assert flagged(span) == [semconv.FLAG_EMPTY, semconv.FLAG_TRUNCATED]


def test_refusal_wording(client: Any, content: Any, telemetry: Any) -> None:
    ask(client, "I'm sorry, but I can't help with that.")
    ask(client, "I cannot help with requests like this.")
    ask(client, "I am sorry to hear it, can you help me?")  # an apology is not a refusal
    spans = run(telemetry)
    assert [semconv.FLAG_REFUSAL in flagged(s) for s in spans] == [True, True, False]


def test_boilerplate(client: Any, content: Any, telemetry: Any) -> None:
    ask(client, "As an AI language model, I think it's fine.")
    ask(client, "As a gardener, I think it's fine.")
    spans = run(telemetry)
    assert [semconv.FLAG_BOILERPLATE in flagged(s) for s in spans] == [True, False]


def test_too_short_for_a_detailed_request(client: Any, content: Any, telemetry: Any) -> None:
    ask(client, "Explain in detail how TLS handshakes work")
    ask(client, "What time zone is Paris in?")
    spans = run(telemetry)
    assert [flagged(s) for s in spans] == [[semconv.FLAG_TOO_SHORT], []]
    # The detail rule is configurable: off with detail_min_tokens=0.
    assert flags.build(Config(detail_min_tokens=0)).evaluate(spans[0]) == set()


def test_too_short_for_max_tokens_ratio() -> None:
    span = genai_span({semconv.REQUEST_MAX_TOKENS: 1000, semconv.USAGE_OUTPUT_TOKENS: 20})
    assert flags.build().evaluate(span) == set()  # off by default
    assert flags.build(Config(short_ratio=0.05)).evaluate(span) == {semconv.FLAG_TOO_SHORT}
    span.attributes[semconv.USAGE_OUTPUT_TOKENS] = 60
    assert flags.build(Config(short_ratio=0.05)).evaluate(span) == set()


def test_tool_call_error_in_tool_response(client: Any, content: Any, telemetry: Any) -> None:
    def after_tool(result: str) -> None:
        client.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "user", "content": "weather in Paris"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": result},
            ],
        )

    after_tool("Error: weather service unavailable")
    after_tool(json.dumps({"error": {"code": 503, "message": "upstream down"}}))
    after_tool("Traceback (most recent call last):\n  File 'x.py'\nKeyError: 'city'")
    after_tool(json.dumps({"temperature": 21, "unit": "C"}))
    spans = run(telemetry)
    assert [semconv.FLAG_TOOL_ERROR in flagged(s) for s in spans] == [True, True, True, False]


def test_tool_error_on_execute_tool_span() -> None:
    failed = genai_span({semconv.OPERATION_NAME: "execute_tool", semconv.ERROR_TYPE: "TimeoutError"})
    errored = genai_span({semconv.OPERATION_NAME: "execute_tool"}, status=STATUS_ERROR)
    ok = genai_span({semconv.OPERATION_NAME: "execute_tool"})
    stage = flags.build()
    assert [stage.evaluate(s) for s in (failed, errored, ok)] == [{semconv.FLAG_TOOL_ERROR}] * 2 + [set()]


def test_embeddings_are_not_empty_answers(client: Any, content: Any, telemetry: Any) -> None:
    client.embeddings.create(model="text-embedding-3-small", input="hello")
    (span,) = run(telemetry)
    assert semconv.FLAGS not in span.attributes


# -- built-in flags on hand-made spans ------------------------------------------------------------


def test_content_filter_and_refusal_part() -> None:
    stage = flags.build()
    filtered = genai_span({semconv.RESPONSE_FINISH_REASONS: ("content_filter",), semconv.USAGE_OUTPUT_TOKENS: 0})
    refusal = genai_span({semconv.OUTPUT_MESSAGES: output({"type": "refusal", "content": "No."})})
    assert semconv.FLAG_REFUSAL in stage.evaluate(filtered)
    assert stage.evaluate(refusal) == {semconv.FLAG_REFUSAL}  # a refusal part is not an empty answer


def test_empty_output_message_and_tool_call_answer() -> None:
    stage = flags.build()
    empty = genai_span({semconv.OUTPUT_MESSAGES: output(text("  "))})
    tool_call = genai_span(
        {
            semconv.OUTPUT_MESSAGES: output(
                {"type": "tool_call", "id": "c", "name": "f", "arguments": {}}, finish_reason="tool_calls"
            )
        }
    )
    failed = genai_span({semconv.USAGE_OUTPUT_TOKENS: 0, semconv.ERROR_TYPE: "RateLimitError"})
    assert stage.evaluate(empty) == {semconv.FLAG_EMPTY}
    assert stage.evaluate(tool_call) == set()
    assert stage.evaluate(failed) == set()


@pytest.mark.parametrize("reason", ["length", "max_tokens", "max_output_tokens"])
def test_truncation_reasons(reason: str) -> None:
    span = genai_span({semconv.RESPONSE_FINISH_REASONS: (reason,), semconv.USAGE_OUTPUT_TOKENS: 5})
    assert flags.build().evaluate(span) == {semconv.FLAG_TRUNCATED}


def test_output_tokens_equal_to_max_tokens_is_truncated() -> None:
    span = genai_span(
        {semconv.REQUEST_MAX_TOKENS: 64, semconv.USAGE_OUTPUT_TOKENS: 64, semconv.RESPONSE_FINISH_REASONS: ("stop",)}
    )
    assert flags.build().evaluate(span) == {semconv.FLAG_TRUNCATED}


def test_checks_and_extra_patterns_are_configurable() -> None:
    span = genai_span(
        {semconv.OUTPUT_MESSAGES: output(text("Computer says no.")), semconv.RESPONSE_FINISH_REASONS: ("length",)}
    )
    config = Config.from_mapping({"checks": ["refusal"], "refusal_patterns": [r"computer says no"]})
    assert flags.build(config).evaluate(span) == {semconv.FLAG_REFUSAL}


def test_existing_flags_are_merged() -> None:
    span = genai_span({semconv.FLAGS: ("custom",), semconv.RESPONSE_FINISH_REASONS: ("length",)})
    flags.build().process([span])
    assert span.attributes[semconv.FLAGS] == ["custom", semconv.FLAG_TRUNCATED]


# -- detectors ------------------------------------------------------------------------------------


def test_pii_detector(client: Any, content: Any, telemetry: Any) -> None:
    ask(client, "Please email jane.doe@example.com about it")
    ask(client, "Nothing personal here")
    spans = run(telemetry, Config(detectors=("pii",)))
    assert flagged(spans[0]) == [semconv.FLAG_PII]
    assert spans[0].attributes[semconv.FLAG_PREFIX + semconv.FLAG_PII] is True
    assert flagged(spans[1]) == []


def test_detectors_run_only_on_spans_with_content(client: Any, instrumented: Any, telemetry: Any) -> None:
    calls: list[list[str]] = []

    class Recorder:
        name = "recorder"

        def __call__(self, span: SpanData, texts: list[str]) -> list[Finding]:
            calls.append(texts)
            return [Finding("recorded")]

    ask(client, "no content captured, jane.doe@example.com")
    stage = flags.FlagsStage(Config(), detectors=[Recorder()])
    stage.process([from_readable(s) for s in telemetry.spans()])
    assert calls == []
    with_content = genai_span({semconv.INPUT_MESSAGES: json.dumps([{"role": "user", "parts": [text("hi")]}])})
    stage.process([with_content])
    assert calls == [["hi"]]
    assert flagged(with_content) == ["recorded"]


class Toxicity:
    """A user plugin, as an entry point in ``tokentrace.detectors`` would name it."""

    name = "toxicity"

    def __call__(self, span: SpanData, texts: list[str]) -> list[Finding]:
        return [Finding("harmful", "insult")] if any("idiot" in t for t in texts) else []


class FakeEntryPoint:
    def __init__(self, name: str, obj: Any) -> None:
        self.name, self.value, self._obj = name, f"tests:{name}", obj

    def load(self) -> Any:
        return self._obj


def test_entry_point_detectors(monkeypatch: pytest.MonkeyPatch) -> None:
    groups: list[str] = []

    def entry_points(group: str) -> list[Any]:
        groups.append(group)
        return [FakeEntryPoint("toxicity", Toxicity), FakeEntryPoint("broken", lambda span, texts: 1 / 0)]

    monkeypatch.setattr(flags, "_entry_points", entry_points)
    stage = flags.build(Config.from_mapping({"detectors": ["toxicity", "broken", "pii"]}))
    assert groups == [flags.ENTRY_POINT_GROUP] * 2
    rude = genai_span({semconv.OUTPUT_MESSAGES: output(text("You idiot."))})
    polite = genai_span({semconv.OUTPUT_MESSAGES: output(text("Happy to help."))})
    stage.process([rude, polite])  # the broken detector is skipped, not fatal
    assert flagged(rude) == ["harmful"]
    assert flagged(polite) == []
    with pytest.raises(ValueError, match="no detector 'missing'"):
        flags.build(Config(detectors=("missing",)))


# -- pass-through and config ----------------------------------------------------------------------


def test_non_genai_span_passes_untouched() -> None:
    span = SpanData(1, 2, None, "GET /", 2, 0, 1, {"http.method": "GET", "error.type": "500"})
    before = dict(span.attributes)
    assert flags.build(Config(detectors=("pii",))).process([span]) == [span]
    assert span.attributes == before and not span.changed


def test_config_validation() -> None:
    assert Config.from_mapping({}) == Config()
    with pytest.raises(ValueError, match="unknown keys"):
        Config.from_mapping({"detector": ["pii"]})
    with pytest.raises(ValueError, match="unknown checks"):
        Config.from_mapping({"checks": ["sarcasm"]})
    with pytest.raises(ValueError, match="invalid pattern"):
        Config.from_mapping({"refusal_patterns": ["("]})
    with pytest.raises(ValueError, match="short_ratio"):
        Config.from_mapping({"short_ratio": 2})
