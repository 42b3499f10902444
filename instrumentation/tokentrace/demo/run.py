"""``tokentrace demo``: a real workload through the real OpenAI SDK, instrumented and processed, against the
local simulator, ending in a per-call table and totals.

Everything the table shows is read back from the exported spans, not from the SDK's responses,
so the demo doubles as an end-to-end check of the instrumentation.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tokentrace.core import semconv

QUESTIONS = (
    "What is the capital of France?",
    "Summarise the plot of Hamlet in two sentences.",
    "Explain what an OpenTelemetry span is.",
    "Give me three names for a coffee shop.",
    "Translate 'good morning' into Spanish.",
)
SYSTEM_PROMPT = "You are a concise assistant for the tokentrace demo. Answer in one short paragraph."
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def _messages(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question}]


def run_workload(base_url: str, rounds: int) -> int:
    """Drive the SDK the way an application would; return how many calls failed (the app's view)."""
    import openai

    failures = 0
    client = openai.OpenAI(base_url=base_url, api_key="sk-demo", max_retries=2)
    for round_index in range(rounds):
        for question in QUESTIONS:
            try:
                client.chat.completions.create(model="gpt-4o-mini", messages=_messages(question), max_tokens=200)
            except openai.APIError:
                failures += 1
        try:
            stream = client.chat.completions.create(
                model="gpt-4o", messages=_messages(QUESTIONS[round_index % len(QUESTIONS)]), stream=True,
                stream_options={"include_usage": True},
            )
            for _ in stream:
                pass
            stream = client.chat.completions.create(
                model="gpt-4o-mini", messages=_messages("Stream me a haiku about tracing."), stream=True
            )
            for _ in stream:  # no usage in this stream: tokens are estimated with tiktoken
                pass
            client.chat.completions.create(
                model="gpt-4.1-mini", messages=_messages("What's the weather in Paris?"), tools=[WEATHER_TOOL]
            )
            client.responses.create(model="gpt-4.1", input="Write a one-line product tagline.",
                                    instructions=SYSTEM_PROMPT)
            client.embeddings.create(model="text-embedding-3-small", input=list(QUESTIONS))
        except openai.APIError:
            failures += 1
        try:
            client.with_options(max_retries=0).chat.completions.create(
                model="error-429", messages=_messages("This one is rate limited.")
            )
        except openai.RateLimitError:
            failures += 1
    failures += asyncio.run(_async_part(base_url))
    return failures


async def _async_part(base_url: str) -> int:
    import openai

    async with openai.AsyncOpenAI(base_url=base_url, api_key="sk-demo", max_retries=2) as client:
        results = await asyncio.gather(
            *(client.chat.completions.create(model="gpt-4o-mini", messages=_messages(q)) for q in QUESTIONS),
            return_exceptions=True,
        )
    return sum(isinstance(result, Exception) for result in results)


def _fmt_cost(value: Any) -> str:
    return f"${value:.6f}" if isinstance(value, float) else "-"


def _fmt_tokens(attributes: Any, key: str) -> str:
    value = attributes.get(key)
    if value is None:
        return "-"
    return f"~{value}" if attributes.get(semconv.USAGE_SOURCE) == semconv.USAGE_SOURCE_ESTIMATED else str(value)


def print_report(spans: Sequence[Any], out: TextIO, app_failures: int, wall_seconds: float) -> None:
    header = (
        f"{'operation':<12} {'model':<26} {'in':>7} {'cached':>6} {'out':>6} {'cost':>11} {'latency':>9}  status"
    )
    out.write(header + "\n" + "-" * len(header) + "\n")
    total_cost = 0.0
    by_model: dict[str, float] = {}
    tokens_in = tokens_out = errors = 0
    for span in sorted(spans, key=lambda s: s.start_time):
        attributes = span.attributes
        model = attributes.get(semconv.RESPONSE_MODEL) or attributes.get(semconv.REQUEST_MODEL) or "?"
        latency = (span.end_time - span.start_time) / 1e9
        error = attributes.get(semconv.ERROR_TYPE)
        cost = attributes.get(semconv.USAGE_COST_AMOUNT)
        status = f"error {error}" if error else ("stream" if attributes.get(semconv.REQUEST_STREAM) else "ok")
        out.write(
            f"{attributes.get(semconv.OPERATION_NAME, '?'):<12} {model[:26]:<26} "
            f"{_fmt_tokens(attributes, semconv.USAGE_INPUT_TOKENS):>7} "
            f"{attributes.get(semconv.USAGE_CACHE_READ_INPUT_TOKENS) or '':>6} "
            f"{_fmt_tokens(attributes, semconv.USAGE_OUTPUT_TOKENS):>6} {_fmt_cost(cost):>11} "
            f"{latency * 1000:>7.1f}ms  {status}\n"
        )
        total_cost += cost if isinstance(cost, float) else 0.0
        if isinstance(cost, float):
            by_model[model] = by_model.get(model, 0.0) + cost
        tokens_in += attributes.get(semconv.USAGE_INPUT_TOKENS) or 0
        tokens_out += attributes.get(semconv.USAGE_OUTPUT_TOKENS) or 0
        errors += 1 if error else 0
    out.write("-" * len(header) + "\n")
    out.write(
        f"{len(spans)} calls, {errors} failed (the app saw {app_failures}), {tokens_in} input + {tokens_out} "
        f"output tokens, total cost ${total_cost:.6f}, wall time {wall_seconds:.1f}s\n"
        "(~ = estimated with tiktoken where the provider reported no usage)\n\ncost by model:\n"
    )
    for model, cost in sorted(by_model.items(), key=lambda item: -item[1]):
        out.write(f"  {model:<30} ${cost:.6f}  {cost / total_cost:6.1%}\n")
    flags: dict[str, int] = {}
    templates: set[str] = set()
    for span in spans:
        for flag in span.attributes.get(semconv.FLAGS) or ():
            flags[flag] = flags.get(flag, 0) + 1
        fingerprint = span.attributes.get(semconv.PROMPT_FINGERPRINT)
        if fingerprint:
            templates.add(fingerprint)
    flag_text = ", ".join(f"{name} {count}" for name, count in sorted(flags.items())) or "none"
    out.write(f"\nquality flags: {flag_text}; prompt templates: {len(templates)}\n")


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(prog="tokentrace demo", description=__doc__)
    parser.add_argument("--rounds", type=int, default=2, help="workload rounds (default 2)")
    parser.add_argument("--latency", type=float, default=0.05, help="simulated base latency, seconds")
    parser.add_argument("--fault-rate", type=float, default=0.05, help="share of 429/500 answers")
    args = parser.parse_args(argv)

    from tokentrace.core.tiktoken_offline import use_offline_encodings_if_needed
    from tokentrace.demo.simulator import Simulator
    from tokentrace.instrumentation.openai import OpenAIInstrumentor

    logging.basicConfig(level=logging.ERROR)
    use_offline_encodings_if_needed()
    from tokentrace.processor import build_pipeline, span_processor

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    # The spans go through the processor pipeline (normalise, enrich, flags, redact, tail sampling
    # that keeps every trace here) before they reach the exporter the report reads.
    tracer_provider.add_span_processor(span_processor(exporter, build_pipeline({"sample": {"decision_wait_s": 0.2}})))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    started = time.perf_counter()
    try:
        with Simulator(seed=7, latency=args.latency, chunk_delay=0.002, fault_rate=args.fault_rate) as simulator:
            out.write(f"tokentrace demo: OpenAI-compatible simulator on {simulator.base_url}\n\n")
            failures = run_workload(simulator.base_url, args.rounds)
    finally:
        instrumentor.uninstrument()
        tracer_provider.shutdown()  # drains the pipeline: every held trace is decided and exported
    print_report(exporter.get_finished_spans(), out, failures, time.perf_counter() - started)
    return 0
