"""Microbenchmarks of tokentrace's hot paths (pytest-benchmark), each next to its reference.

    pytest bench/ --benchmark-only                  # all groups
    pytest bench/ --benchmark-only -k chunk         # one group

Not part of the test suite (``testpaths`` is ``tests``). Groups:

- ``pricing``: ``PriceBook.cost`` (cached per model) vs ``genai_prices.calc_price`` (what a call
  would pay without the cache), same model and usage.
- ``chunk``: 50 chunks through ``TracedStream.__next__`` (real ``ChatCompletionChunk`` objects, the
  chat observer) vs 50 ``next()`` on the bare iterator. Divide by 50 for per-chunk figures.
- ``recorder``: ``Recorder.start`` + ``finish`` of a non-streamed call whose usage is reported.
- ``wrapper``: the whole wrapper around a non-streamed ``chat.completions.create`` (describe, span,
  context, reading the ``ChatCompletion``, cost, metrics, end) around an SDK method stubbed to
  return a parsed completion at once, vs calling the stub directly: tokentrace's own added time,
  without the SDK's microsecond-scale noise.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("pytest_benchmark")
openai = pytest.importorskip("openai")

import workload  # noqa: E402  (bench/ is on sys.path under pytest's default import mode)
from openai.types.chat import ChatCompletion, ChatCompletionChunk  # noqa: E402

from tokentrace.core.call import GenAICall  # noqa: E402
from tokentrace.core.pricing import PriceBook  # noqa: E402
from tokentrace.core.recorder import Recorder  # noqa: E402
from tokentrace.core.settings import Settings  # noqa: E402
from tokentrace.core.usage import Usage  # noqa: E402
from tokentrace.instrumentation.openai import _patch  # noqa: E402

CHUNKS_PER_ROUND = workload.STREAM_CONTENT_CHUNKS
ROUNDS = 2000


def _chunks() -> list[ChatCompletionChunk]:
    events = [*workload.STREAM_EVENTS, workload.USAGE_EVENT]
    chunks = [ChatCompletionChunk.model_validate(json.loads(event[len(b"data: ") :])) for event in events]
    return chunks[:CHUNKS_PER_ROUND]


def _completion() -> ChatCompletion:
    return ChatCompletion.model_validate(json.loads(workload.CHAT_BODY))


@pytest.fixture(scope="module")
def telemetry() -> workload.Telemetry:
    return workload.Telemetry()


@pytest.fixture(scope="module")
def recorder(telemetry: workload.Telemetry) -> Recorder:
    return Recorder(
        "tokentrace.bench",
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        settings=Settings(),
    )


# -- pricing --------------------------------------------------------------------------------------


@pytest.mark.benchmark(group="pricing")
def test_pricebook_cost_cached(benchmark: Any) -> None:
    book = PriceBook()
    usage = Usage(input_tokens=workload.PROMPT_TOKENS, output_tokens=17)
    book.cost("openai", workload.MODEL_SNAPSHOT, usage)  # the one lookup a model ever pays
    cost = benchmark(book.cost, "openai", workload.MODEL_SNAPSHOT, usage)
    assert cost.total > 0


@pytest.mark.benchmark(group="pricing")
def test_genai_prices_calc_price(benchmark: Any) -> None:
    import genai_prices

    usage = genai_prices.Usage(input_tokens=workload.PROMPT_TOKENS, output_tokens=17)
    price = benchmark(genai_prices.calc_price, usage, workload.MODEL_SNAPSHOT, provider_id="openai")
    assert price.total_price > 0


# -- per chunk ------------------------------------------------------------------------------------


@pytest.mark.benchmark(group="chunk")
def test_chunks_traced_stream(benchmark: Any, recorder: Recorder) -> None:
    chunks = _chunks()
    tracer = _patch._Tracer(recorder)

    def setup() -> tuple[tuple[Any], dict[str, Any]]:
        call = GenAICall(
            "chat", "openai", workload.MODEL, server_address="api.openai.com", server_port=443, stream=True
        )
        recorder.start(call)
        return (tracer.traced_stream(_patch.CHAT, call, iter(chunks)),), {}

    def consume(stream: Any) -> None:
        step = stream.__next__
        for _ in range(CHUNKS_PER_ROUND):  # never the StopIteration: that ends the call
            step()

    benchmark.pedantic(consume, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=50)


@pytest.mark.benchmark(group="chunk")
def test_chunks_plain_iterator(benchmark: Any) -> None:
    chunks = _chunks()

    def setup() -> tuple[tuple[Any], dict[str, Any]]:
        return (iter(chunks),), {}

    def consume(stream: Any) -> None:
        step = stream.__next__
        for _ in range(CHUNKS_PER_ROUND):
            step()

    benchmark.pedantic(consume, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=50)


# -- recorder -------------------------------------------------------------------------------------


@pytest.mark.benchmark(group="recorder")
def test_recorder_start_finish(benchmark: Any, recorder: Recorder) -> None:
    def setup() -> tuple[tuple[GenAICall], dict[str, Any]]:
        call = GenAICall(
            "chat",
            "openai",
            workload.MODEL,
            server_address="api.openai.com",
            server_port=443,
            start_attributes={"openai.api.type": "chat_completions", "gen_ai.request.stream": False},
        )
        return (call,), {}

    def start_finish(call: GenAICall) -> None:
        recorder.start(call)
        call.response_id = "chatcmpl-bench"
        call.response_model = workload.MODEL_SNAPSHOT
        call.finish_reasons = ["stop"]
        call.usage.input_tokens = workload.PROMPT_TOKENS
        call.usage.output_tokens = 17
        recorder.finish(call)

    benchmark.pedantic(start_finish, setup=setup, rounds=ROUNDS * 5, iterations=1, warmup_rounds=100)


# -- the whole wrapper ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stub_call() -> tuple[Any, Any, dict[str, Any]]:
    """An SDK method stub returning a parsed ChatCompletion, a real client instance, the kwargs."""
    completion = _completion()
    client = openai.OpenAI(api_key="sk-bench", base_url=workload.BASE_URL, max_retries=0)

    def create(*args: Any, **kwargs: Any) -> ChatCompletion:
        return completion

    return create, client.chat.completions, {"model": workload.MODEL, "messages": workload.MESSAGES}


@pytest.mark.benchmark(group="wrapper")
def test_wrapper_non_streamed_call(benchmark: Any, recorder: Recorder, stub_call: Any) -> None:
    create, instance, kwargs = stub_call
    traced = _patch._Tracer(recorder).sync_wrapper(_patch.CHAT)
    result = benchmark(traced, create, instance, (), kwargs)
    assert result.id


@pytest.mark.benchmark(group="wrapper")
def test_wrapper_baseline_stub_alone(benchmark: Any, stub_call: Any) -> None:
    create, _, kwargs = stub_call
    result = benchmark(lambda: create(**kwargs))
    assert result.id
