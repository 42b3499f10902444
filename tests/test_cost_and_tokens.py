"""Cost, token estimates and metrics of real SDK calls against the simulator.

Expected costs come from genai-prices' own ``calc_price`` (the library the catalogue belongs to),
expected token estimates from tiktoken itself, expected usage from what the server reported.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import openai
import pytest
from genai_prices import Usage as CatalogueUsage
from genai_prices import calc_price, data_snapshot

from tokentrace.core import semconv
from tokentrace.core.pricing import PriceBook, PriceFileError, load_price_file
from tokentrace.core.tokens import TOKENS_PER_MESSAGE, TOKENS_PER_REPLY, TokenEstimator, shared_estimator
from tokentrace.core.usage import Usage
from tokentrace.demo import simulator as sim_rules

MODEL = "gpt-4o-mini"
TOLERANCE = 1e-12


def unique(text: str) -> str:
    return f"{text} [{uuid.uuid4().hex[:12]}]"


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def catalogue_price(usage: Any, model: str = MODEL) -> Any:
    """genai-prices' own answer for a Chat Completions ``usage``."""
    cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
    return calc_price(
        CatalogueUsage(
            input_tokens=usage.prompt_tokens,
            output_tokens=usage.completion_tokens,
            cache_read_tokens=cached or None,
        ),
        model,
        provider_id="openai",
    )


# -- catalogue cost --------------------------------------------------------------------------------


def test_cost_matches_genai_prices(client: Any, instrumented: Any, telemetry: Any) -> None:
    result = client.chat.completions.create(model=MODEL, messages=user(unique("what does this cost")))
    expected = catalogue_price(result.usage)
    a = attrs(telemetry.span())
    assert float(expected.total_price) > 0
    assert a[semconv.USAGE_COST_AMOUNT] == pytest.approx(float(expected.total_price), abs=TOLERANCE)
    assert a[semconv.COST_INPUT] == pytest.approx(float(expected.input_price), abs=TOLERANCE)
    assert a[semconv.COST_OUTPUT] == pytest.approx(float(expected.output_price), abs=TOLERANCE)
    assert a[semconv.COST_INPUT] + a[semconv.COST_OUTPUT] == pytest.approx(a[semconv.USAGE_COST_AMOUNT], abs=TOLERANCE)
    assert a[semconv.USAGE_COST_CURRENCY] == "USD"
    assert a[semconv.USAGE_COST_SOURCE] == semconv.COST_SOURCE_LOCAL
    assert a[semconv.COST_PRICING_VERSION].startswith("genai-prices")
    assert a[semconv.COST_PRICING_MODEL] == "gpt-4o-mini"
    assert semconv.COST_UNAVAILABLE_REASON not in a
    # By hand, from the catalogue's per-million rates: nothing cached on a first call.
    rates = expected.model_price
    by_hand = (
        result.usage.prompt_tokens * float(rates.input_mtok) + result.usage.completion_tokens * float(rates.output_mtok)
    ) / 1_000_000
    assert a[semconv.USAGE_COST_AMOUNT] == pytest.approx(by_hand, abs=TOLERANCE)


def test_cached_tokens_priced_at_cache_read_rate(client: Any, instrumented: Any, telemetry: Any) -> None:
    messages = [{"role": "system", "content": "A long shared system prompt " * 5}, *user(unique("cached"))]
    first = client.chat.completions.create(model=MODEL, messages=messages)
    second = client.chat.completions.create(model=MODEL, messages=messages)
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached > 0
    assert second.usage.prompt_tokens == first.usage.prompt_tokens
    first_span, second_span = telemetry.spans()
    rates = catalogue_price(second.usage).model_price
    assert rates.cache_read_mtok < rates.input_mtok
    expected_input = (
        (second.usage.prompt_tokens - cached) * float(rates.input_mtok) + cached * float(rates.cache_read_mtok)
    ) / 1_000_000
    assert attrs(second_span)[semconv.COST_INPUT] == pytest.approx(expected_input, abs=TOLERANCE)
    assert attrs(second_span)[semconv.USAGE_COST_AMOUNT] == pytest.approx(
        float(catalogue_price(second.usage).total_price), abs=TOLERANCE
    )
    assert attrs(second_span)[semconv.COST_INPUT] < attrs(first_span)[semconv.COST_INPUT]


def assert_no_cost(span: Any, reason: str) -> None:
    a = attrs(span)
    assert semconv.USAGE_COST_AMOUNT not in a  # never a cost of 0 for "we don't know"
    assert semconv.COST_INPUT not in a
    assert semconv.COST_OUTPUT not in a
    assert a[semconv.COST_UNAVAILABLE_REASON] == reason
    assert a[semconv.USAGE_INPUT_TOKENS] > 0  # tokens are still known


def test_unknown_model_has_no_cost(client: Any, instrumented: Any, telemetry: Any) -> None:
    client.chat.completions.create(model="my-finetune-x", messages=user(unique("unknown model")))
    assert_no_cost(telemetry.span(), "model_not_in_catalogue")
    assert semconv.METRIC_COST not in telemetry.metrics()


def test_unknown_provider_has_no_cost(simulator: Any, instrument: Any, telemetry: Any, client: Any) -> None:
    instrument(TOKENTRACE_OPENAI_PROVIDER_HOSTS=f"127.0.0.1:{simulator.port}=ollama")
    client.chat.completions.create(model="llama3.2", messages=user(unique("local model")))
    assert attrs(telemetry.span())[semconv.PROVIDER_NAME] == "ollama"
    assert_no_cost(telemetry.span(), "provider_not_in_catalogue")
    assert semconv.METRIC_COST not in telemetry.metrics()


def test_ollama_port_has_no_cost(instrumented: Any, telemetry: Any) -> None:
    """An OpenAI client pointed at Ollama's port, even for a model name the catalogue knows."""
    try:
        ollama = sim_rules.Simulator(port=11434).start()
    except OSError:
        pytest.skip("port 11434 is busy on this machine")
    try:
        with openai.OpenAI(base_url=ollama.base_url, api_key="ollama", max_retries=0) as local:
            local.chat.completions.create(model=MODEL, messages=user("hello ollama"))
    finally:
        ollama.stop()
    span = telemetry.span()
    assert attrs(span)[semconv.PROVIDER_NAME] == "ollama"
    assert attrs(span)[semconv.SERVER_PORT] == 11434
    assert_no_cost(span, "provider_not_in_catalogue")


def test_price_book_reasons() -> None:
    book = PriceBook()
    usage = Usage(input_tokens=10, output_tokens=5)
    assert book.cost("ollama", "llama3", usage) == "provider_not_in_catalogue"
    assert book.cost("openai", "my-finetune-x", usage) == "model_not_in_catalogue"
    assert book.cost("openai", None, usage) == "model_unknown"
    assert book.cost("openai", MODEL, Usage()) == "usage_unknown"


# -- price file ------------------------------------------------------------------------------------

PRICE_FILE = {
    "models": [
        {"model": "ft:gpt-4o-mini-2024-07-18:acme:*", "input_mtok": 0.3, "output_mtok": 1.2},
        {"model": "my-finetune-x", "provider": "openai", "input_mtok": 2.0, "output_mtok": 8.0},
        {"model": "gpt-4o-mini*", "discount": 0.25},
    ]
}
PRICE_FILE_YAML = """\
models:
  - model: "ft:gpt-4o-mini-2024-07-18:acme:*"   # every fine-tune of this organisation
    input_mtok: 0.3
    output_mtok: 1.2
  - model: my-finetune-x
    provider: openai
    input_mtok: 2.0
    output_mtok: 8.0
  - model: "gpt-4o-mini*"
    discount: 0.25
"""


@pytest.fixture(params=["yaml", "json"])
def price_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if request.param == "yaml":
        path = tmp_path / "prices.yaml"
        path.write_text(PRICE_FILE_YAML)
    else:
        path = tmp_path / "prices.json"
        path.write_text(json.dumps(PRICE_FILE))
    return path


def test_price_file(client: Any, instrument: Any, telemetry: Any, price_file: Path) -> None:
    instrument(TOKENTRACE_PRICES_FILE=str(price_file))
    fine_tuned = "ft:gpt-4o-mini-2024-07-18:acme:support-bot:9xyz"
    tuned = client.chat.completions.create(model=fine_tuned, messages=user(unique("fine-tuned")))
    exact = client.chat.completions.create(model="my-finetune-x", messages=user(unique("exact entry")))
    discounted = client.chat.completions.create(model=MODEL, messages=user(unique("discounted")))
    tuned_span, exact_span, discounted_span = telemetry.spans()

    def by_rates(usage: Any, input_mtok: float, output_mtok: float) -> float:
        return (usage.prompt_tokens * input_mtok + usage.completion_tokens * output_mtok) / 1_000_000

    for span, result, rates in ((tuned_span, tuned, (0.3, 1.2)), (exact_span, exact, (2.0, 8.0))):
        a = attrs(span)
        assert a[semconv.USAGE_COST_AMOUNT] == pytest.approx(by_rates(result.usage, *rates), abs=TOLERANCE)
        assert a[semconv.COST_INPUT] == pytest.approx(result.usage.prompt_tokens * rates[0] / 1e6, abs=TOLERANCE)
        assert a[semconv.USAGE_COST_SOURCE] == semconv.COST_SOURCE_PRICE_FILE
        assert price_file.name in a[semconv.COST_PRICING_VERSION]
    a = attrs(discounted_span)
    catalogue = float(catalogue_price(discounted.usage).total_price)
    assert a[semconv.USAGE_COST_AMOUNT] == pytest.approx(0.75 * catalogue, abs=TOLERANCE)
    assert a[semconv.USAGE_COST_SOURCE] == semconv.COST_SOURCE_PRICE_FILE
    assert a[semconv.COST_PRICING_VERSION].startswith("genai-prices")
    assert price_file.name in a[semconv.COST_PRICING_VERSION]


def test_price_file_provider_filter(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": [{"model": "llama*", "provider": "ollama", "input_mtok": 1}]}))
    book = PriceBook(str(path))
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    cost = book.cost("ollama", "llama3.2", usage)
    assert not isinstance(cost, str)
    assert cost.total == pytest.approx(2.0)  # output falls back to the input rate
    assert cost.source == semconv.COST_SOURCE_PRICE_FILE
    assert book.cost("groq", "llama3.2", usage) == "model_not_in_catalogue"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("broken.yaml", "models: [unclosed", "not valid YAML/JSON"),
        ("broken.json", "{not json", "not valid YAML/JSON"),
        ("list.yaml", "- model: x\n", "expected a mapping with a 'models' list"),
        ("nomodel.yaml", "models:\n  - input_mtok: 1\n", "models[0] needs a 'model' name or glob"),
        (
            "typo.yaml",
            "models:\n  - model: x\n    input_mtok: 1\n    ouput_mtok: 2\n",
            "unknown keys ['ouput_mtok']",
        ),
        ("text.yaml", "models:\n  - model: x\n    input_mtok: cheap\n", "models[0]"),
        ("discount.yaml", "models:\n  - model: x\n    discount: 1.5\n", "discount must be in [0, 1)"),
        ("empty.yaml", "models:\n  - model: x\n", "sets neither prices"),
    ],
)
def test_malformed_price_file(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(PriceFileError) as caught:
        load_price_file(str(path))
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_missing_price_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(PriceFileError, match="cannot read it"):
        load_price_file(str(path))
    with pytest.raises(PriceFileError):
        PriceBook(str(path))


def test_price_book_caches_catalogue_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []
    original = data_snapshot.DataSnapshot.find_provider_model

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(data_snapshot.DataSnapshot, "find_provider_model", counting)
    book = PriceBook()
    first = book.cost("openai", MODEL, Usage(input_tokens=100, output_tokens=10))
    second = book.cost("openai", MODEL, Usage(input_tokens=300, output_tokens=30))
    assert len(calls) == 1
    assert not isinstance(first, str) and not isinstance(second, str)
    assert second.total == pytest.approx(3 * first.total)
    book.cost("openai", "my-finetune-x", Usage(input_tokens=1))
    book.cost("openai", "my-finetune-x", Usage(input_tokens=1))  # "not found" is cached too
    assert len(calls) == 2
    book.cost("openai", "gpt-4o", Usage(input_tokens=1))
    assert len(calls) == 3


def test_instrumented_calls_share_one_lookup(
    client: Any, instrumented: Any, telemetry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []
    original = data_snapshot.DataSnapshot.find_provider_model

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(data_snapshot.DataSnapshot, "find_provider_model", counting)
    for _ in range(3):
        client.chat.completions.create(model="gpt-4.1-nano", messages=user(unique("again")))
    assert len(calls) == 1
    assert all(semconv.USAGE_COST_AMOUNT in attrs(s) for s in telemetry.spans())


# -- token estimates -------------------------------------------------------------------------------


def stream_text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_streamed_chat_without_usage_is_estimated(client: Any, instrumented: Any, telemetry: Any) -> None:
    messages = [{"role": "system", "content": "Be concise."}, *user(unique("estimate my tokens"))]
    chunks = list(client.chat.completions.create(model=MODEL, messages=messages, stream=True))
    assert all(getattr(c, "usage", None) is None for c in chunks)  # the server reported nothing
    encoding = shared_estimator.encoding_for(chunks[0].model)
    assert encoding is not None
    assert encoding.name == "o200k_base"
    expected_output = len(encoding.encode_ordinary(stream_text(chunks)))
    expected_input = TOKENS_PER_REPLY + sum(
        TOKENS_PER_MESSAGE + len(encoding.encode_ordinary(m["content"])) for m in messages
    )
    a = attrs(telemetry.span())
    assert a[semconv.USAGE_SOURCE] == semconv.USAGE_SOURCE_ESTIMATED
    assert a[semconv.USAGE_OUTPUT_TOKENS] == expected_output
    assert a[semconv.USAGE_INPUT_TOKENS] == expected_input
    assert expected_output > 5
    # An estimate is priced too (clearly marked by the usage source).
    assert a[semconv.USAGE_COST_AMOUNT] > 0


async def test_async_streamed_completion_is_estimated(aclient: Any, instrumented: Any, telemetry: Any) -> None:
    prompt = unique("legacy completion stream")
    stream = await aclient.completions.create(model="gpt-3.5-turbo-instruct", prompt=prompt, stream=True)
    text = "".join([c.choices[0].text async for c in stream if c.choices])
    encoding = shared_estimator.encoding_for("gpt-3.5-turbo-instruct")
    a = attrs(telemetry.span())
    assert a[semconv.USAGE_SOURCE] == semconv.USAGE_SOURCE_ESTIMATED
    assert a[semconv.USAGE_OUTPUT_TOKENS] == len(encoding.encode_ordinary(text))
    assert a[semconv.USAGE_INPUT_TOKENS] == len(encoding.encode_ordinary(prompt))


def test_estimates_disabled(client: Any, instrument: Any, telemetry: Any) -> None:
    instrument(TOKENTRACE_ESTIMATE_TOKENS="false")
    list(client.chat.completions.create(model=MODEL, messages=user(unique("no estimates")), stream=True))
    a = attrs(telemetry.span())
    assert not [k for k in a if k.startswith("gen_ai.usage.")]  # no tokens and no cost, never a 0
    assert semconv.USAGE_SOURCE not in a
    assert a[semconv.COST_UNAVAILABLE_REASON] == "usage_unknown"
    metrics = telemetry.metrics()
    assert semconv.METRIC_TOKEN_USAGE not in metrics
    assert semconv.METRIC_COST not in metrics
    assert semconv.METRIC_OPERATION_DURATION in metrics


def test_estimator_runs_once_per_stream(
    client: Any, instrumented: Any, telemetry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoding = shared_estimator.encoding_for(sim_rules.DATED_MODELS[MODEL])
    count_text_calls: list[Any] = []
    encode_calls: list[str] = []
    original_count_text = TokenEstimator.count_text
    original_encode = encoding.encode_ordinary

    def counting_count_text(self: Any, model: Any, texts: Any) -> Any:
        count_text_calls.append(model)
        return original_count_text(self, model, texts)

    def counting_encode(text: str) -> list[int]:
        encode_calls.append(text)
        return original_encode(text)

    monkeypatch.setattr(TokenEstimator, "count_text", counting_count_text)
    monkeypatch.setattr(encoding, "encode_ordinary", counting_encode)
    prompt = unique("count my calls")
    chunks = list(client.chat.completions.create(model=MODEL, messages=user(prompt), stream=True))
    assert len(chunks) > 5
    assert len(count_text_calls) == 1  # the output, once, at the end of the stream
    assert len(encode_calls) == 2  # one output text + one prompt message, not one per chunk
    assert stream_text(chunks) in encode_calls
    assert attrs(telemetry.span())[semconv.STREAM_CHUNKS] == len(chunks)


def test_reported_usage_is_never_estimated(
    client: Any, instrumented: Any, telemetry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("estimated although the server reported usage")

    monkeypatch.setattr(TokenEstimator, "count_text", fail)
    monkeypatch.setattr(TokenEstimator, "count_messages", fail)
    client.chat.completions.create(model=MODEL, messages=user(unique("reported")))
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=user(unique("reported stream")),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    for span in telemetry.spans():
        assert attrs(span)[semconv.USAGE_SOURCE] == semconv.USAGE_SOURCE_REPORTED
    assert attrs(telemetry.spans()[1])[semconv.USAGE_OUTPUT_TOKENS] == chunks[-1].usage.completion_tokens


# -- metrics ---------------------------------------------------------------------------------------


def metric(telemetry: Any, name: str) -> Any:
    """One metric with its unit and points (``telemetry.metrics()`` has the points only)."""
    telemetry.metrics()  # waits for metrics recorded off the application's thread
    data = telemetry.reader.get_metrics_data()
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for item in scope_metrics.metrics:
                if item.name == name:
                    return item
    raise AssertionError(f"no metric {name}")


def test_token_usage_and_duration_metrics(client: Any, instrumented: Any, telemetry: Any, simulator: Any) -> None:
    result = client.chat.completions.create(model=MODEL, messages=user(unique("metrics")))
    points = telemetry.metrics()[semconv.METRIC_TOKEN_USAGE]
    by_type = {p.attributes[semconv.TOKEN_TYPE]: p for p in points}
    assert set(by_type) == {semconv.TOKEN_TYPE_INPUT, semconv.TOKEN_TYPE_OUTPUT}
    assert by_type["input"].sum == result.usage.prompt_tokens
    assert by_type["output"].sum == result.usage.completion_tokens
    assert by_type["input"].count == by_type["output"].count == 1
    assert list(by_type["input"].explicit_bounds) == list(semconv.TOKEN_BUCKETS)
    for point in points:
        assert point.attributes[semconv.OPERATION_NAME] == "chat"
        assert point.attributes[semconv.PROVIDER_NAME] == "openai"
        assert point.attributes[semconv.REQUEST_MODEL] == MODEL
        assert point.attributes[semconv.RESPONSE_MODEL] == result.model
        assert point.attributes[semconv.SERVER_PORT] == simulator.port

    duration = metric(telemetry, semconv.METRIC_OPERATION_DURATION)
    assert duration.unit == "s"
    [point] = duration.data.data_points
    assert point.count == 1
    assert 0 < point.sum < 5
    assert tuple(point.explicit_bounds) == semconv.DURATION_BUCKETS
    assert metric(telemetry, semconv.METRIC_TOKEN_USAGE).unit == "{token}"
    # A non-streamed call has no chunk timings.
    metrics = telemetry.metrics()
    assert semconv.METRIC_TIME_TO_FIRST_CHUNK not in metrics
    assert semconv.METRIC_TIME_PER_OUTPUT_CHUNK not in metrics


async def test_stream_chunk_metrics(aclient: Any, instrumented: Any, telemetry: Any) -> None:
    stream = await aclient.chat.completions.create(model=MODEL, messages=user(unique("chunk timing")), stream=True)
    chunks = [chunk async for chunk in stream]
    span = telemetry.span()
    assert attrs(span)[semconv.STREAM_CHUNKS] == len(chunks)
    ttfc = metric(telemetry, semconv.METRIC_TIME_TO_FIRST_CHUNK)
    assert ttfc.unit == "s"
    [first] = ttfc.data.data_points
    assert first.count == 1
    assert first.sum == pytest.approx(attrs(span)[semconv.RESPONSE_TIME_TO_FIRST_CHUNK])
    per_chunk = metric(telemetry, semconv.METRIC_TIME_PER_OUTPUT_CHUNK)
    assert per_chunk.unit == "s"
    [point] = per_chunk.data.data_points
    assert point.count == len(chunks) - 1
    assert tuple(point.explicit_bounds) == semconv.TIME_PER_CHUNK_BUCKETS
    [duration] = metric(telemetry, semconv.METRIC_OPERATION_DURATION).data.data_points
    assert first.sum + point.sum <= duration.sum + 1e-6


def test_cost_metric_matches_spans(client: Any, instrumented: Any, telemetry: Any) -> None:
    for model in (MODEL, MODEL, "gpt-4.1-mini"):
        client.chat.completions.create(model=model, messages=user(unique("cost metric")))
    client.embeddings.create(model="text-embedding-3-small", input=unique("cost metric"))
    spans = telemetry.spans()
    total = sum(attrs(s)[semconv.USAGE_COST_AMOUNT] for s in spans)
    cost = metric(telemetry, semconv.METRIC_COST)
    assert cost.unit == "USD"
    points = cost.data.data_points
    assert sum(p.sum for p in points) == pytest.approx(total, abs=TOLERANCE)
    assert sum(p.count for p in points) == 4
    by_model = {p.attributes[semconv.REQUEST_MODEL]: p for p in points}
    mini = [attrs(s)[semconv.USAGE_COST_AMOUNT] for s in spans if attrs(s)[semconv.REQUEST_MODEL] == MODEL]
    assert by_model[MODEL].count == 2
    assert by_model[MODEL].sum == pytest.approx(sum(mini), abs=TOLERANCE)


def test_metric_attributes_are_low_cardinality(client: Any, instrumented: Any, telemetry: Any) -> None:
    for _ in range(3):
        client.chat.completions.create(model=MODEL, messages=user(unique("cardinality")))
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="error-429", messages=user("x"))
    allowed = {
        semconv.OPERATION_NAME,
        semconv.PROVIDER_NAME,
        semconv.REQUEST_MODEL,
        semconv.RESPONSE_MODEL,
        semconv.SERVER_ADDRESS,
        semconv.SERVER_PORT,
        semconv.ERROR_TYPE,
        semconv.TOKEN_TYPE,
        # provider health: bounded sets (status classes and codes, rate-limit buckets, credentials)
        semconv.HTTP_STATUS_CLASS,
        "http.response.status_code",
        semconv.RATELIMIT_BUCKET,
        "tokentrace.api_key.alias",
    }
    metrics = telemetry.metrics()
    assert metrics
    for name, points in metrics.items():
        for point in points:
            assert set(point.attributes) <= allowed, (name, point.attributes)
            assert semconv.RESPONSE_ID not in point.attributes
    # Three successful calls with distinct response ids fall into one series per metric.
    duration = [p for p in metrics[semconv.METRIC_OPERATION_DURATION] if semconv.ERROR_TYPE not in p.attributes]
    assert len(duration) == 1
    assert duration[0].count == 3
