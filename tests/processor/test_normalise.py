"""The normalise stage: spans of other GenAI instrumentations translated to the current conventions.

OpenLLMetry and OpenInference spans come from the real packages, run against the local simulator;
OpenLIT and old-convention spans are hand-built from those projects' real attribute names (OpenLIT
pins an older ``openai`` than this project tests against, so it is not installed).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tokentrace.core import semconv
from tokentrace.demo import simulator as sim_rules
from tokentrace.processor.model import SpanData, from_readable
from tokentrace.processor.pipeline import Pipeline
from tokentrace.processor.sdk import span_processor
from tokentrace.processor.stages import normalise
from tokentrace.processor.stages.normalise import NORMALISED_FROM, Config, NormaliseStage, build

MODEL = "gpt-4o-mini"
EMBEDDING_MODEL = "text-embedding-3-small"
CACHE_CREATION = semconv.RELEASED.usage_cache_creation_input_tokens
CLIENT, INTERNAL = 2, 0


def unique(text: str) -> str:
    """A prompt the session-wide simulator has not cached yet."""
    return f"{text} {uuid.uuid4().hex[:8]}"


def stage(**options: Any) -> NormaliseStage:
    return build(Config(**options))


def span(
    attributes: dict[str, Any],
    *,
    span_id: int = 1,
    parent: int | None = None,
    trace_id: int = 7,
    kind: int = CLIENT,
    start: int = 100,
    end: int = 200,
    scope: str = "",
) -> SpanData:
    return SpanData(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name="s",
        kind=kind,
        start_ns=start,
        end_ns=end,
        attributes=dict(attributes),
        scope_name=scope,
    )


def messages(value: str) -> list[dict[str, Any]]:
    return json.loads(value)


def last_body(simulator: Any, marker: str) -> dict[str, Any]:
    for request in reversed(simulator.requests):
        if marker in json.dumps(request.get("body")):
            return request["body"]
    raise AssertionError(f"no request mentioning {marker!r}")


# -- peer instrumentations --------------------------------------------------------------------------


def _remove_wrappers(package: str) -> None:
    """Undo wrapt wrappers from ``package`` left on classes of the loaded ``openai`` modules."""
    import sys

    import wrapt

    proxy_type = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)  # wrapt 2 split the hierarchy
    for name, module in list(sys.modules.items()):
        if not (name == "openai" or name.startswith("openai.")) or module is None:
            continue
        for cls in list(vars(module).values()):
            if not (isinstance(cls, type) and cls.__module__ == name):
                continue
            for attr, value in list(vars(cls).items()):
                wrapper = getattr(value, "_self_wrapper", None)
                if isinstance(value, proxy_type) and getattr(wrapper, "__module__", "").startswith(package):
                    setattr(cls, attr, value.__wrapped__)


class Peer:
    """A peer instrumentation on its own provider (or a given one), undone completely on close.

    OpenLLMetry 0.62's ``uninstrument`` leaves its wrappers in place with opentelemetry-instrumentation
    0.66 (it calls ``unwrap("openai.resources.chat.completions", "Completions.create")``, a form the
    newer ``unwrap`` no longer resolves), so close() also removes wrappers of the peer's package.
    """

    def __init__(self, instrumentor: Any, tracer_provider: Any = None) -> None:
        conflict = instrumentor._check_dependency_conflicts()
        if conflict:  # e.g. OpenInference needs openai>=2.8: the CI's openai 1.x run has no such peer
            pytest.skip(f"{type(instrumentor).__module__} does not support this environment: {conflict}")
        self.package = type(instrumentor).__module__ + "."  # both peers define it in the package's __init__
        self.exporter = InMemorySpanExporter()
        if tracer_provider is None:
            tracer_provider = TracerProvider()
            tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.instrumentor = instrumentor
        instrumentor.instrument(tracer_provider=tracer_provider)

    def spans(self) -> list[SpanData]:
        return [from_readable(s) for s in self.exporter.get_finished_spans()]

    def close(self) -> None:
        if self.instrumentor.is_instrumented_by_opentelemetry:
            self.instrumentor.uninstrument()
        _remove_wrappers(self.package)


@pytest.fixture
def openllmetry() -> Iterator[Peer]:
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    peer = Peer(OpenAIInstrumentor())
    yield peer
    peer.close()


@pytest.fixture
def openinference() -> Iterator[Peer]:
    from openinference.instrumentation.openai import OpenAIInstrumentor

    peer = Peer(OpenAIInstrumentor())
    yield peer
    peer.close()


# -- config -----------------------------------------------------------------------------------------


def test_config_from_mapping() -> None:
    assert Config.from_mapping({}) == Config(enabled=True, drop_originals=False, collapse_duplicates=True)
    assert Config.from_mapping(None) == Config()
    assert Config.from_mapping({"drop_originals": "true", "collapse_duplicates": False}) == Config(
        drop_originals=True, collapse_duplicates=False
    )
    with pytest.raises(ValueError, match=r"unknown option\(s\) 'drop_original'.*known: collapse_duplicates"):
        Config.from_mapping({"drop_original": True})
    with pytest.raises(ValueError, match="'enabled' must be a boolean"):
        Config.from_mapping({"enabled": "maybe"})


def test_build_makes_a_pass_through_stage() -> None:
    built = build(Config())
    assert isinstance(built, NormaliseStage)
    assert built.name == "normalise"
    assert built.poll(0) == [] and built.shutdown() == []
    assert isinstance(normalise.build(), NormaliseStage)


def test_disabled_stage_changes_nothing() -> None:
    s = span({"llm.token_count.prompt": 3})
    assert stage(enabled=False).process([s]) == [s]
    assert s.attributes == {"llm.token_count.prompt": 3} and not s.changed


def test_native_span_is_untouched() -> None:
    attrs = {
        semconv.OPERATION_NAME: "chat",
        semconv.PROVIDER_NAME: "openai",
        semconv.REQUEST_MODEL: MODEL,
        semconv.USAGE_INPUT_TOKENS: 3,
        semconv.USAGE_OUTPUT_TOKENS: 4,
    }
    s = span(attrs)
    assert stage().process([s]) == [s]
    assert s.attributes == attrs and not s.changed


def test_hot_path_is_cheap() -> None:
    attrs = {
        semconv.OPERATION_NAME: "chat",
        semconv.PROVIDER_NAME: "openai",
        semconv.REQUEST_MODEL: MODEL,
        semconv.RESPONSE_MODEL: MODEL,
        semconv.RESPONSE_ID: "x",
        semconv.USAGE_INPUT_TOKENS: 3,
        semconv.USAGE_OUTPUT_TOKENS: 4,
        semconv.SERVER_ADDRESS: "h",
        semconv.SERVER_PORT: 1,
        semconv.REQUEST_TEMPERATURE: 0.5,
        semconv.RESPONSE_FINISH_REASONS: ("stop",),
        "http.request.method": "POST",
        "url.full": "http://h/v1/chat/completions",
    }
    batch = [span(attrs, span_id=i) for i in range(1, 1001)]
    st = stage()
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        st.process(batch)
        best = min(best, time.perf_counter() - started)
    per_span_us = best / len(batch) * 1e6
    assert per_span_us < 5, f"{per_span_us:.2f} µs per native span"  # ~1 µs; loose for slow CI machines


# -- OpenLLMetry (real package) ------------------------------------------------------------------------


def test_openllmetry_chat(openllmetry: Peer, simulator: Any) -> None:
    import openai

    prompt = unique("hello openllmetry")
    client = openai.OpenAI(base_url=simulator.base_url, api_key="x", max_retries=0)
    result = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}],
        temperature=0.5,
        max_tokens=50,
    )
    again = client.chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}]
    )
    first, second = stage().process(openllmetry.spans())
    a = first.attributes
    body = last_body(simulator, prompt)
    assert a[NORMALISED_FROM] == "openllmetry"
    assert a[semconv.OPERATION_NAME] == "chat"
    assert a[semconv.PROVIDER_NAME] == "openai"
    assert a[semconv.USAGE_INPUT_TOKENS] == sim_rules.count_prompt_tokens(body) == result.usage.prompt_tokens
    assert a[semconv.USAGE_OUTPUT_TOKENS] == sim_rules.count_completion_tokens(result.choices[0].message.content)
    assert a[semconv.USAGE_REASONING_OUTPUT_TOKENS] == 0  # from gen_ai.usage.reasoning_tokens
    assert a[semconv.OPENAI_RESPONSE_SYSTEM_FINGERPRINT] == sim_rules.SYSTEM_FINGERPRINT  # gen_ai.openai.response.*
    assert a[semconv.REQUEST_STREAM] is False  # from gen_ai.is_streaming
    assert a[semconv.RESPONSE_MODEL] == result.model
    out = messages(a[semconv.OUTPUT_MESSAGES])
    assert out[0]["parts"][0]["content"] == result.choices[0].message.content
    assert out[0]["finish_reason"] == "stop"
    # The repeated prompt is half cached, as the simulator reports.
    assert second.attributes[semconv.USAGE_CACHE_READ_INPUT_TOKENS] == again.usage.prompt_tokens_details.cached_tokens
    assert again.usage.prompt_tokens_details.cached_tokens == again.usage.prompt_tokens // 2 > 0
    client.close()


def test_openllmetry_embeddings_and_stream_drop_originals(openllmetry: Peer, simulator: Any) -> None:
    import openai

    client = openai.OpenAI(base_url=simulator.base_url, api_key="x", max_retries=0)
    text = unique("embed me")
    client.embeddings.create(model=EMBEDDING_MODEL, input=text)
    prompt = unique("stream me")
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": prompt}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    reply = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    embedding, streamed = stage(drop_originals=True).process(openllmetry.spans())
    e = embedding.attributes
    assert e[semconv.OPERATION_NAME] == "embeddings"
    assert e[semconv.USAGE_INPUT_TOKENS] == sim_rules.count_prompt_tokens(last_body(simulator, text))
    assert semconv.USAGE_OUTPUT_TOKENS not in e  # no output tokens are invented from the total
    s = streamed.attributes
    assert s[semconv.REQUEST_STREAM] is True
    assert s[semconv.USAGE_INPUT_TOKENS] == sim_rules.count_prompt_tokens(last_body(simulator, prompt))
    assert s[semconv.USAGE_OUTPUT_TOKENS] == sim_rules.count_completion_tokens(reply)
    for a in (e, s):
        assert a[NORMALISED_FROM] == "openllmetry"
        assert (a[semconv.SERVER_ADDRESS], a[semconv.SERVER_PORT]) == ("127.0.0.1", simulator.port)  # api_base
        for foreign in ("gen_ai.usage.total_tokens", "gen_ai.is_streaming", "gen_ai.openai.api_base"):
            assert foreign not in a
    client.close()


def test_openllmetry_flattened_messages() -> None:
    """Older OpenLLMetry releases (and its other instrumentations) flatten messages into indexed keys."""
    s = span(
        {
            "gen_ai.system": "OpenAI",
            "llm.request.type": "chat",
            "gen_ai.request.model": MODEL,
            "gen_ai.prompt.0.role": "system",
            "gen_ai.prompt.0.content": "Be brief.",
            "gen_ai.prompt.1.role": "user",
            "gen_ai.prompt.1.content": "What is the weather?",
            "gen_ai.prompt.2.role": "assistant",
            "gen_ai.prompt.2.tool_calls.0.id": "call_1",
            "gen_ai.prompt.2.tool_calls.0.name": "weather",
            "gen_ai.prompt.2.tool_calls.0.arguments": '{"city": "Paris"}',
            "gen_ai.prompt.3.role": "tool",
            "gen_ai.prompt.3.content": "sunny",
            "gen_ai.prompt.3.tool_call_id": "call_1",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "It is sunny.",
            "gen_ai.completion.0.finish_reason": "stop",
            "gen_ai.usage.prompt_tokens": 30,
            "gen_ai.usage.completion_tokens": 4,
            "llm.usage.total_tokens": 34,
            "gen_ai.usage.cache_read_input_tokens": 10,
            "gen_ai.usage.cache_creation_input_tokens": 5,
            "llm.frequency_penalty": 0.5,
            "llm.chat.stop_sequences": ["END"],
        }
    )
    stage().process([s])
    a = s.attributes
    assert a[NORMALISED_FROM] == "openllmetry"
    assert a[semconv.PROVIDER_NAME] == "openai" and a[semconv.SYSTEM] == "OpenAI"
    assert a[semconv.OPERATION_NAME] == "chat"
    assert (a[semconv.USAGE_INPUT_TOKENS], a[semconv.USAGE_OUTPUT_TOKENS]) == (30, 4)
    assert a[semconv.USAGE_CACHE_READ_INPUT_TOKENS] == 10 and a[CACHE_CREATION] == 5
    assert a[semconv.REQUEST_FREQUENCY_PENALTY] == 0.5 and a[semconv.REQUEST_STOP_SEQUENCES] == ["END"]
    assert messages(a[semconv.INPUT_MESSAGES]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "What is the weather?"}]},
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "name": "weather", "arguments": {"city": "Paris"}, "id": "call_1"}],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "response": "sunny", "id": "call_1"}]},
    ]
    assert messages(a[semconv.OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "It is sunny."}], "finish_reason": "stop"},
    ]
    assert list(a[semconv.RESPONSE_FINISH_REASONS]) == ["stop"]
    assert "gen_ai.prompt.0.role" in a  # originals kept by default


@pytest.mark.parametrize(
    ("system", "provider"),
    [
        ("openai", "openai"),
        ("OpenAI", "openai"),
        ("Anthropic", "anthropic"),
        ("AzureOpenAI", "azure.ai.openai"),
        ("az.ai.openai", "azure.ai.openai"),
        ("MistralAI", "mistral_ai"),
        ("Bedrock", "aws.bedrock"),
        ("Vertex AI", "gcp.vertex_ai"),
        ("Watsonx", "ibm.watsonx.ai"),
        ("SomethingNew", "somethingnew"),
    ],
)
def test_provider_values(system: str, provider: str) -> None:
    s = span({"gen_ai.system": system})
    stage().process([s])
    assert s.attributes[semconv.PROVIDER_NAME] == provider
    assert s.attributes[semconv.SYSTEM] == system


@pytest.mark.parametrize(
    ("request_type", "operation"), [("chat", "chat"), ("completion", "text_completion"), ("embedding", "embeddings")]
)
def test_openllmetry_request_type(request_type: str, operation: str) -> None:
    s = span({"llm.request.type": request_type})
    stage().process([s])
    assert s.attributes[semconv.OPERATION_NAME] == operation


# -- OpenInference (real package) ----------------------------------------------------------------------


def test_openinference_chat(openinference: Peer, simulator: Any) -> None:
    import openai

    prompt = unique("hello openinference")
    client = openai.OpenAI(base_url=simulator.base_url, api_key="x", max_retries=0)
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}]
    result = client.chat.completions.create(
        model=MODEL,
        messages=chat,
        temperature=0.5,
        max_tokens=50,
        top_p=0.9,
        seed=3,
        stop=["END"],
        frequency_penalty=0.25,
    )
    again = client.chat.completions.create(model=MODEL, messages=chat)
    first, second = stage().process(openinference.spans())
    a = first.attributes
    body = last_body(simulator, prompt)
    assert a[NORMALISED_FROM] == "openinference"
    assert a[semconv.OPERATION_NAME] == "chat"
    assert a[semconv.PROVIDER_NAME] == "openai"
    assert a[semconv.REQUEST_MODEL] == MODEL  # from llm.invocation_parameters
    assert a[semconv.RESPONSE_MODEL] == result.model == sim_rules.DATED_MODELS[MODEL]  # llm.model_name
    assert a[semconv.USAGE_INPUT_TOKENS] == sim_rules.count_prompt_tokens(body) == result.usage.prompt_tokens
    assert a[semconv.USAGE_OUTPUT_TOKENS] == sim_rules.count_completion_tokens(result.choices[0].message.content)
    assert a[semconv.USAGE_CACHE_READ_INPUT_TOKENS] == 0
    assert a[semconv.USAGE_REASONING_OUTPUT_TOKENS] == 0
    assert a[semconv.REQUEST_TEMPERATURE] == 0.5 and a[semconv.REQUEST_MAX_TOKENS] == 50
    assert a[semconv.REQUEST_TOP_P] == 0.9 and a[semconv.REQUEST_SEED] == 3
    assert a[semconv.REQUEST_STOP_SEQUENCES] == ["END"] and a[semconv.REQUEST_FREQUENCY_PENALTY] == 0.25
    assert messages(a[semconv.INPUT_MESSAGES]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": prompt}]},
    ]
    assert messages(a[semconv.OUTPUT_MESSAGES]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": result.choices[0].message.content}],
            "finish_reason": "stop",
        },
    ]
    assert list(a[semconv.RESPONSE_FINISH_REASONS]) == ["stop"]
    cached = again.usage.prompt_tokens_details.cached_tokens
    assert second.attributes[semconv.USAGE_CACHE_READ_INPUT_TOKENS] == cached == again.usage.prompt_tokens // 2
    client.close()


def test_openinference_embeddings_and_stream_drop_originals(openinference: Peer, simulator: Any) -> None:
    import openai

    client = openai.OpenAI(base_url=simulator.base_url, api_key="x", max_retries=0)
    text = unique("embed me")
    client.embeddings.create(model=EMBEDDING_MODEL, input=text)
    prompt = unique("stream me")
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": prompt}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    reply = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    embedding, streamed = stage(drop_originals=True).process(openinference.spans())
    e = embedding.attributes
    assert e[semconv.OPERATION_NAME] == "embeddings"
    assert e[semconv.REQUEST_MODEL] == EMBEDDING_MODEL
    assert e[semconv.USAGE_INPUT_TOKENS] == sim_rules.count_prompt_tokens(last_body(simulator, text))
    assert semconv.USAGE_OUTPUT_TOKENS not in e
    s = streamed.attributes
    assert s[semconv.REQUEST_STREAM] is True
    assert s[semconv.USAGE_INPUT_TOKENS] == sim_rules.count_prompt_tokens(last_body(simulator, prompt))
    assert s[semconv.USAGE_OUTPUT_TOKENS] == sim_rules.count_completion_tokens(reply)
    assert messages(s[semconv.OUTPUT_MESSAGES])[0]["parts"][0]["content"] == reply
    for a in (e, s):
        assert a[NORMALISED_FROM] == "openinference"
        leftovers = [k for k in a if k.startswith(("llm.", "openinference.", "embedding.model_name"))]
        # Only names with a current equivalent are dropped; audio token counts have none.
        assert all(".audio" in k for k in leftovers), leftovers


def test_openinference_cache_write_and_tool_calls() -> None:
    s = span(
        {
            "openinference.span.kind": "LLM",
            "llm.provider": "azure",
            "llm.system": "openai",
            "llm.model_name": "gpt-4o",
            "llm.token_count.prompt": 100,
            "llm.token_count.completion": 7,
            "llm.token_count.prompt_details.cache_read": 40,
            "llm.token_count.prompt_details.cache_write": 60,
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.contents.0.message_content.type": "text",
            "llm.input_messages.0.message.contents.0.message_content.text": "weather?",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_9",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "weather",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"city": "Oslo"}',
            "llm.invocation_parameters": '{"response_format": {"type": "json_schema"}, "n": 2}',
        }
    )
    stage().process([s])
    a = s.attributes
    assert a[semconv.PROVIDER_NAME] == "azure.ai.openai"
    assert a[semconv.REQUEST_MODEL] == a[semconv.RESPONSE_MODEL] == "gpt-4o"
    assert a[semconv.USAGE_CACHE_READ_INPUT_TOKENS] == 40 and a[CACHE_CREATION] == 60
    assert a[semconv.OUTPUT_TYPE] == "json" and a[semconv.REQUEST_CHOICE_COUNT] == 2
    assert messages(a[semconv.INPUT_MESSAGES]) == [{"role": "user", "parts": [{"type": "text", "content": "weather?"}]}]
    assert messages(a[semconv.OUTPUT_MESSAGES]) == [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "name": "weather", "arguments": {"city": "Oslo"}, "id": "call_9"}],
        },
    ]


def test_cache_creation_name_follows_the_opt_in() -> None:
    s = span({"llm.token_count.prompt_details.cache_write": 60})
    NormaliseStage(Config(), names=semconv.DEVELOPMENT).process([s])
    assert s.attributes[semconv.DEVELOPMENT.usage_cache_creation_input_tokens] == 60


# -- OpenLIT (hand-built from openlit 1.45's semcov names) ----------------------------------------------


def openlit_span(**extra: Any) -> SpanData:
    return span(
        {
            "telemetry.sdk.name": "openlit",
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": MODEL,
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "server.address": "api.openai.com",
            "server.port": 443,
            "gen_ai.request.stream": True,
            "gen_ai.server.time_per_output_token": 0.01,
            "gen_ai.server.time_to_first_token": 0.25,
            "gen_ai.sdk.version": "1.45.0",
            "gen_ai.usage.input_tokens": 20,
            "gen_ai.usage.output_tokens": 10,
            "gen_ai.client.token.usage": 30,
            "gen_ai.usage.cost": 0.000009,
            "gen_ai.usage.reasoning_tokens": 2,
            "gen_ai.usage.prompt_tokens_details.cached_tokens": 8,
            "gen_ai.usage.prompt_tokens_details.cache_creation_tokens": 4,
            **extra,
        }
    )


def test_openlit() -> None:
    s = openlit_span()
    stage().process([s])
    a = s.attributes
    assert a[NORMALISED_FROM] == "openlit"
    assert a[semconv.USAGE_COST_AMOUNT] == pytest.approx(0.000009)
    assert a[semconv.USAGE_COST_CURRENCY] == "USD"
    assert a[semconv.USAGE_COST_SOURCE] == "instrumentation"
    assert a[semconv.RESPONSE_TIME_TO_FIRST_CHUNK] == 0.25
    assert a[semconv.USAGE_REASONING_OUTPUT_TOKENS] == 2
    assert a[semconv.USAGE_CACHE_READ_INPUT_TOKENS] == 8 and a[CACHE_CREATION] == 4
    assert (a[semconv.USAGE_INPUT_TOKENS], a[semconv.USAGE_OUTPUT_TOKENS]) == (20, 10)


def test_openlit_drop_originals_keeps_names_without_equivalent() -> None:
    s = openlit_span()
    stage(drop_originals=True).process([s])
    a = s.attributes
    for dropped in (
        "gen_ai.usage.cost",
        "gen_ai.client.token.usage",
        "gen_ai.usage.reasoning_tokens",
        "gen_ai.server.time_to_first_token",
        "gen_ai.usage.prompt_tokens_details.cached_tokens",
    ):
        assert dropped not in a
    assert a["gen_ai.sdk.version"] == "1.45.0" and a["gen_ai.server.time_per_output_token"] == 0.01
    assert a[semconv.USAGE_COST_AMOUNT] == pytest.approx(0.000009)


def test_openlit_older_names_and_totals() -> None:
    """OpenLIT before the v1.37 conventions: gen_ai.system, prompt/completion/total tokens."""
    s = span(
        {
            "gen_ai.system": "openai",
            "gen_ai.operation.name": "chat",
            "gen_ai.usage.prompt_tokens": 12,
            "gen_ai.usage.total_tokens": 20,
            "gen_ai.usage.cost": 0.5,
            "gen_ai.request.stream": False,
            "gen_ai.server.time_to_first_token": 1.5,
            "gen_ai.environment": "prod",
        }
    )
    stage().process([s])
    a = s.attributes
    assert a[NORMALISED_FROM] == "openlit"
    assert a[semconv.PROVIDER_NAME] == "openai"
    assert a[semconv.USAGE_INPUT_TOKENS] == 12 and a[semconv.USAGE_OUTPUT_TOKENS] == 8  # total - input
    assert semconv.RESPONSE_TIME_TO_FIRST_CHUNK not in a  # not a stream


def test_cost_already_present_is_kept() -> None:
    s = openlit_span(**{semconv.USAGE_COST_AMOUNT: 1.0, semconv.USAGE_COST_SOURCE: "local"})
    stage().process([s])
    assert s.attributes[semconv.USAGE_COST_AMOUNT] == 1.0
    assert s.attributes[semconv.USAGE_COST_SOURCE] == "local"


# -- older releases of the conventions --------------------------------------------------------------


def test_semconv_legacy() -> None:
    s = span(
        {
            "gen_ai.system": "openai",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": MODEL,
            "gen_ai.usage.prompt_tokens": 11,
            "gen_ai.usage.completion_tokens": 5,
            "gen_ai.openai.request.service_tier": "auto",
            "gen_ai.openai.response.service_tier": "default",
            "gen_ai.openai.response.system_fingerprint": "fp_1",
            "gen_ai.openai.request.seed": 42,
            "gen_ai.openai.request.response_format": "json_object",
        }
    )
    stage(drop_originals=True).process([s])
    assert s.attributes == {
        "gen_ai.system": "openai",  # kept even when dropping originals: deprecated but still read
        semconv.PROVIDER_NAME: "openai",
        semconv.OPERATION_NAME: "chat",
        semconv.REQUEST_MODEL: MODEL,
        semconv.USAGE_INPUT_TOKENS: 11,
        semconv.USAGE_OUTPUT_TOKENS: 5,
        semconv.OPENAI_REQUEST_SERVICE_TIER: "auto",
        semconv.OPENAI_RESPONSE_SERVICE_TIER: "default",
        semconv.OPENAI_RESPONSE_SYSTEM_FINGERPRINT: "fp_1",
        semconv.REQUEST_SEED: 42,
        semconv.OUTPUT_TYPE: "json",
        NORMALISED_FROM: "semconv-legacy",
    }
    assert s.changed


def test_system_beside_provider_is_not_legacy() -> None:
    """tokentrace (and other current instrumentations) add gen_ai.system on the stability opt-in."""
    attrs = {semconv.SYSTEM: "openai", semconv.PROVIDER_NAME: "openai", semconv.OPERATION_NAME: "chat"}
    s = span(attrs)
    stage(drop_originals=True).process([s])
    assert s.attributes == attrs and not s.changed


def test_current_names_are_never_overwritten() -> None:
    s = span(
        {
            semconv.PROVIDER_NAME: "azure.ai.openai",
            "gen_ai.system": "openai",
            semconv.USAGE_INPUT_TOKENS: 99,
            "gen_ai.usage.prompt_tokens": 11,
            "llm.token_count.prompt": 12,
            semconv.OPERATION_NAME: "text_completion",
            "llm.request.type": "chat",
            semconv.INPUT_MESSAGES: "[]",
            "gen_ai.prompt.0.content": "hi",
        }
    )
    stage().process([s])
    a = s.attributes
    assert a[semconv.PROVIDER_NAME] == "azure.ai.openai"
    assert a[semconv.USAGE_INPUT_TOKENS] == 99
    assert a[semconv.OPERATION_NAME] == "text_completion"
    assert a[semconv.INPUT_MESSAGES] == "[]"
    assert a[NORMALISED_FROM] == "openinference"  # the most specific dialect seen wins the mark


def test_odd_values_pass_through() -> None:
    s = span(
        {
            "llm.invocation_parameters": "{not json",
            "gen_ai.prompt.0.content": 5,
            "llm.token_count.prompt": "3",
            "gen_ai.usage.cost": "free",
            "openinference.span.kind": 7,
        }
    )
    assert stage().process([s]) == [s]
    assert s.attributes[semconv.USAGE_INPUT_TOKENS] == "3"  # renamed as is; the value is not ours to judge
    assert semconv.USAGE_COST_AMOUNT not in s.attributes


# -- collapsing stacked wrappers ---------------------------------------------------------------------


def test_collapse_tokentrace_and_openinference(instrument: Any, telemetry: Any, simulator: Any) -> None:
    """Both instrumentations active: two spans for one call, one after normalising."""
    import openai
    from openinference.instrumentation.openai import OpenAIInstrumentor

    instrument()
    peer = Peer(OpenAIInstrumentor(), telemetry.tracer_provider)
    try:
        prompt = unique("stacked")
        with openai.OpenAI(base_url=simulator.base_url, api_key="x", max_retries=0) as client:
            result = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": prompt}])
    finally:
        peer.close()
    raw = [from_readable(s) for s in telemetry.spans()]
    assert sorted(s.scope_name for s in raw) == [
        "openinference.instrumentation.openai",
        "tokentrace.instrumentation.openai",
    ]
    ours = next(s for s in raw if s.scope_name.startswith("tokentrace"))
    before = dict(ours.attributes)
    (kept,) = stage().process(raw)
    assert kept is ours  # the conventions-native span is kept
    a = kept.attributes
    for key, value in before.items():
        assert a[key] == value  # nothing of ours is overwritten
    assert NORMALISED_FROM not in a
    assert list(a[normalise.COLLAPSED_FROM]) == ["openinference.instrumentation.openai"]
    assert a["llm.invocation_parameters"]  # what only the other span had is merged in
    assert a[semconv.USAGE_INPUT_TOKENS] == result.usage.prompt_tokens
    assert a[semconv.USAGE_INPUT_TOKENS] == sim_rules.count_prompt_tokens(last_body(simulator, prompt))


def test_collapse_through_the_sdk_exporter(instrument: Any, telemetry: Any, simulator: Any) -> None:
    """End to end: the pipeline behind a BatchSpanProcessor exports one span per call."""
    import openai
    from openinference.instrumentation.openai import OpenAIInstrumentor

    exported = InMemorySpanExporter()
    telemetry.tracer_provider.add_span_processor(span_processor(exported, Pipeline([build()])))
    instrument()
    peer = Peer(OpenAIInstrumentor(), telemetry.tracer_provider)
    try:
        with openai.OpenAI(base_url=simulator.base_url, api_key="x", max_retries=0) as client:
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": unique("sdk")}])
            client.embeddings.create(model=EMBEDDING_MODEL, input=unique("sdk embed"))
    finally:
        peer.close()
    assert telemetry.tracer_provider.force_flush()
    assert len(telemetry.spans()) == 4
    names = sorted(s.instrumentation_scope.name for s in exported.get_finished_spans())
    assert names == ["tokentrace.instrumentation.openai"] * 2
    telemetry.tracer_provider.shutdown()


def test_collapse_keeps_native_inner_span_and_reparents() -> None:
    # foreign outer (OpenInference, INTERNAL) -> native inner (CLIENT) -> an HTTP child
    outer = span(
        {"openinference.span.kind": "LLM", "llm.model_name": MODEL, "llm.token_count.prompt": 5, "output.value": "raw"},
        span_id=10,
        parent=1,
        kind=INTERNAL,
        start=100,
        end=400,
    )
    inner = span(
        {semconv.OPERATION_NAME: "chat", semconv.REQUEST_MODEL: MODEL, semconv.USAGE_INPUT_TOKENS: 6},
        span_id=11,
        parent=10,
        start=110,
        end=390,
        scope="tokentrace.instrumentation.openai",
    )
    http = span({"http.request.method": "POST"}, span_id=12, parent=11, kind=CLIENT, start=120, end=380)
    sibling = span({"x": 1}, span_id=13, parent=10, kind=INTERNAL, start=395, end=399)
    out = stage().process([outer, inner, http, sibling])
    assert out == [inner, http, sibling]
    assert inner.parent_span_id == 1 and inner.changed
    assert inner.attributes[semconv.USAGE_INPUT_TOKENS] == 6  # its own value
    assert inner.attributes["output.value"] == "raw"
    assert http.parent_span_id == 11
    assert sibling.parent_span_id == 11 and sibling.changed


def test_collapse_keeps_outer_when_both_foreign_and_chains() -> None:
    top = span(
        {"llm.request.type": "chat", semconv.REQUEST_MODEL: MODEL, "gen_ai.usage.prompt_tokens": 5},
        span_id=20,
        kind=CLIENT,
        start=0,
        end=100,
    )
    middle = span(
        {"openinference.span.kind": "LLM", "llm.model_name": MODEL, "llm.token_count.completion": 3},
        span_id=21,
        parent=20,
        kind=INTERNAL,
        start=5,
        end=95,
    )
    bottom = span(
        {"openinference.span.kind": "LLM", "llm.model_name": MODEL, "llm.provider": "openai"},
        span_id=22,
        parent=21,
        kind=INTERNAL,
        start=6,
        end=94,
    )
    child = span({}, span_id=23, parent=22, kind=INTERNAL, start=7, end=8)
    out = stage().process([top, middle, bottom, child])
    assert out == [top, child]
    assert child.parent_span_id == 20
    a = top.attributes
    assert a[semconv.USAGE_INPUT_TOKENS] == 5 and a[semconv.USAGE_OUTPUT_TOKENS] == 3
    assert a[semconv.PROVIDER_NAME] == "openai"
    assert a[NORMALISED_FROM] == "openllmetry"


@pytest.mark.parametrize(
    "change",
    [
        {"model": "gpt-4o"},  # a different model: a real nested call (e.g. a judge)
        {"operation": "embeddings"},
        {"trace_id": 8},
        {"start": 300, "end": 350},  # no overlap
        {"kind": INTERNAL},  # neither span is a CLIENT span
        {"operation": "invoke_agent"},
    ],
)
def test_no_collapse_when_not_the_same_call(change: dict[str, Any]) -> None:
    parent = span(
        {semconv.OPERATION_NAME: change.get("operation", "chat"), semconv.REQUEST_MODEL: MODEL},
        span_id=30,
        kind=INTERNAL,
        start=0,
        end=200,
    )
    child = span(
        {semconv.OPERATION_NAME: "chat", semconv.REQUEST_MODEL: change.get("model", MODEL)},
        span_id=31,
        parent=30,
        trace_id=change.get("trace_id", 7),
        kind=change.get("kind", CLIENT),
        start=change.get("start", 10),
        end=change.get("end", 190),
    )
    assert stage().process([parent, child]) == [parent, child]
    assert child.parent_span_id == 30


def test_collapse_can_be_turned_off() -> None:
    parent = span({semconv.OPERATION_NAME: "chat", semconv.REQUEST_MODEL: MODEL}, span_id=40, start=0, end=200)
    child = span(
        {"openinference.span.kind": "LLM", "llm.model_name": MODEL},
        span_id=41,
        parent=40,
        kind=INTERNAL,
        start=10,
        end=190,
    )
    assert stage(collapse_duplicates=False).process([parent, child]) == [parent, child]
