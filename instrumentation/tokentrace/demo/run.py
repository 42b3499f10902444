"""``tokentrace demo``: the whole path on one machine, with nothing to configure.

A real workload — the real ``openai`` and ``anthropic`` SDKs (whichever are installed) calling a
local simulator that speaks their wire formats, with streaming, tool calls, embeddings, prompt
caching, rate limits, server errors (some retried by the SDK until they succeed) and slow calls, for
three tenants, three features and a few prompt templates — runs instrumented by tokentrace. Its spans
pass through the processor pipeline (normalise, enrich, flags, redact, tail sampling) into the embedded
store, and the demo ends with ``tokentrace report`` over that store. Every figure shown is read back from the store.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from opentelemetry import baggage, context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

DEFAULT_STORE = Path("tokentrace-demo.duckdb")
TENANTS = ("acme", "globex", "initech")
FEATURES = ("support-chat", "summarise", "search")
CUSTOMERS = ("Ada", "Grace", "Linus", "Margaret", "Barbara")
ORDERS = ("A-1042", "B-2231", "C-7781", "D-9910", "E-5503")
SYSTEM_PROMPT = "You are a concise assistant for the tokentrace demo. Answer in one short paragraph."
# A long, fixed policy text: repeated prompts hit the provider's prompt cache (cheaper cached tokens).
POLICY = " ".join(["Refunds are accepted within 30 days of delivery for unused items in original packaging."] * 40)
# (simulator fault, how many first attempts of the call get it): retried by the SDK (max_retries=2), then answered
RETRIED_FAULTS = (("error-429", 2), ("error-503", 1))
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


class BaggageToAttributes(SpanProcessor):
    """Copies ``tenant.id`` / ``feature`` baggage onto each span at start — what
    ``opentelemetry-processor-baggage``'s BaggageSpanProcessor does in an application."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        for key, value in baggage.get_all(parent_context).items():
            span.set_attribute(key, str(value))


@contextmanager
def request_for(tenant: str, feature: str) -> Iterator[None]:
    ctx = baggage.set_baggage("tenant.id", tenant)
    token = context.attach(baggage.set_baggage("feature", feature, ctx))
    try:
        yield
    finally:
        context.detach(token)


def _support(customer: str, order: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": f"{SYSTEM_PROMPT} Policy: {POLICY}"},
        {"role": "user", "content": f"Hi, I am {customer}. Where is my order {order}? Can I return it?"},
    ]


def _summarise(text: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Summarise in two sentences: {text}"},
    ]


def openai_round(client: Any, index: int) -> int:
    """One round of OpenAI calls as an app would make them; returns the failures the app saw."""
    import openai

    failures = 0
    tenant = TENANTS[index % len(TENANTS)]
    with request_for(tenant, "support-chat"):
        # the first customer asks twice: the repeated prompt is served from the provider's prompt cache
        for customer, order in [*zip(CUSTOMERS, ORDERS, strict=True), (CUSTOMERS[0], ORDERS[0])]:
            try:
                client.chat.completions.create(model="gpt-4o-mini", messages=_support(customer, order), max_tokens=200)
            except openai.APIError:
                failures += 1
        try:
            stream = client.chat.completions.create(
                model="gpt-4o", messages=_support("Alan", "F-0001"), stream=True, stream_options={"include_usage": True}
            )
            for _ in stream:
                pass
        except openai.APIError:
            failures += 1
    with request_for(tenant, "summarise"):
        try:
            client.chat.completions.create(model="gpt-4.1", messages=_summarise(f"Quarterly report {index}: " * 30))
            stream = client.chat.completions.create(
                model="gpt-4o-mini", messages=_summarise("a haiku about tracing"), stream=True
            )
            for _ in stream:  # no usage in this stream: tokens are estimated with tiktoken
                pass
            client.responses.create(
                model="gpt-4.1", input="Write a one-line product tagline.", instructions=SYSTEM_PROMPT
            )
            # a slow call: the simulator waits before answering
            client.chat.completions.create(
                model="gpt-4o",
                messages=_summarise("the history of tracing"),
                extra_headers={"x-sim-fault": "slow", "x-sim-delay": "0.6"},
            )
        except openai.APIError:
            failures += 1
    with request_for(tenant, "search"):
        try:
            client.embeddings.create(model="text-embedding-3-small", input=[f"query {index}", *CUSTOMERS])
            client.chat.completions.create(
                model="gpt-4.1-mini",
                tools=[WEATHER_TOOL],
                messages=[{"role": "user", "content": "What's the weather in Paris?"}],
            )
        except openai.APIError:
            failures += 1
        for model in ("error-429-gpt-4o-mini", "error-500-gpt-4o-mini"):
            try:  # rate limited and failing calls, without the SDK's retries hiding them
                client.with_options(max_retries=0).chat.completions.create(model=model, messages=_summarise("x"))
            except openai.APIError:
                failures += 1
        # calls the SDK retries until they succeed: throttled twice, then a server error once. The app
        # sees two good answers; the report's provider-health section sees 5 attempts and the time lost
        for fault, times in RETRIED_FAULTS:
            try:
                client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=_summarise(f"what {fault} means"),
                    extra_headers={
                        "x-sim-fault": fault,
                        "x-sim-fault-once": f"demo-round-{index}-{fault}",
                        "x-sim-fault-times": str(times),
                    },
                )
            except openai.APIError:
                failures += 1
    return failures


def anthropic_round(client: Any, index: int) -> int:
    import anthropic

    failures = 0
    tenant = TENANTS[(index + 1) % len(TENANTS)]
    system = [{"type": "text", "text": f"{SYSTEM_PROMPT} Policy: {POLICY}", "cache_control": {"type": "ephemeral"}}]
    with request_for(tenant, "support-chat"):
        for customer, order in zip(CUSTOMERS[:3], ORDERS[:3], strict=True):
            try:
                client.messages.create(
                    model="claude-sonnet-4-5",
                    max_tokens=300,
                    system=system,
                    messages=[{"role": "user", "content": f"Hi, I am {customer}. Where is my order {order}?"}],
                )
            except anthropic.APIError:
                failures += 1
        try:
            with client.messages.stream(
                model="claude-haiku-4-5",
                max_tokens=200,
                messages=[{"role": "user", "content": "Stream a short answer about refunds."}],
            ) as stream:
                for _ in stream.text_stream:
                    pass
            client.with_options(max_retries=0).messages.create(
                model="error-429-claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}]
            )
        except anthropic.APIError:
            failures += 1
    return failures


async def async_part(base_url: str) -> int:
    import openai

    async with openai.AsyncOpenAI(base_url=base_url, api_key="sk-demo", max_retries=2) as client:
        with request_for("globex", "search"):
            results = await asyncio.gather(
                *(
                    client.chat.completions.create(model="gpt-4o-mini", messages=_summarise(f"document {n}"))
                    for n in range(5)
                ),
                return_exceptions=True,
            )
    return sum(isinstance(result, Exception) for result in results)


def run_workload(base_url: str, rounds: int) -> tuple[int, list[str]]:
    """Drive the SDKs; return (failures the app saw, SDKs used)."""
    import openai

    used = ["openai"]
    failures = 0
    client = openai.OpenAI(base_url=base_url, api_key="sk-demo", max_retries=2)
    try:
        import anthropic

        root = base_url.removesuffix("/v1")  # the anthropic SDK adds /v1/messages itself
        claude = anthropic.Anthropic(base_url=root, api_key="sk-ant-demo", max_retries=2)
        used.append("anthropic")
    except ImportError:
        claude = None
    for index in range(rounds):
        failures += openai_round(client, index)
        if claude is not None:
            failures += anthropic_round(claude, index)
    failures += asyncio.run(async_part(base_url))
    return failures, used


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(prog="tokentrace demo", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="workload rounds (default 3)")
    parser.add_argument("--latency", type=float, default=0.05, help="simulated base latency, seconds")
    parser.add_argument("--fault-rate", type=float, default=0.03, help="share of random 429/500 answers")
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE, help=f"store file (default {DEFAULT_STORE})")
    parser.add_argument("--keep", action="store_true", help="add to an existing store instead of starting afresh")
    args = parser.parse_args(argv)

    import tokentrace
    from tokentrace.core.tiktoken_offline import use_offline_encodings_if_needed
    from tokentrace.demo.simulator import Simulator
    from tokentrace.processor import build_pipeline, span_processor
    from tokentrace.report.queries import build_report
    from tokentrace.report.terminal import render
    from tokentrace.store.exporter import StoreSpanExporter
    from tokentrace.store.writer import connect

    logging.basicConfig(level=logging.ERROR)
    use_offline_encodings_if_needed()
    if not args.keep:
        for stale in (args.store, args.store.with_name(args.store.name + ".wal")):
            stale.unlink(missing_ok=True)
    store = StoreSpanExporter(args.store, retention_days=None)
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BaggageToAttributes())
    tracer_provider.add_span_processor(span_processor(store, build_pipeline({"sample": {"decision_wait_s": 0.2}})))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    instrumented = tokentrace.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    started = time.perf_counter()
    try:
        with Simulator(seed=7, latency=args.latency, chunk_delay=0.002, fault_rate=args.fault_rate) as simulator:
            out.write(f"tokentrace demo: simulator on {simulator.base_url}; instrumented: {', '.join(instrumented)}\n")
            failures, used = run_workload(simulator.base_url, args.rounds)
            requests = len(simulator.requests)
    finally:
        tokentrace.uninstrument()
        tracer_provider.shutdown()  # drains the pipeline and flushes the store
    out.write(
        f"workload done in {time.perf_counter() - started:.1f}s with {', '.join(used)}; the app saw "
        f"{failures} failed calls; the SDKs sent {requests} HTTP requests, retries included. "
        f"Report from {args.store}:\n\n"
    )
    from rich.console import Console

    with connect(args.store, read_only=True) as connection:
        report = build_report(connection, top=5)
    render(report, Console(file=out, width=120))
    out.write(
        f"\nMore: tokentrace report --store {args.store} --html report.html   (or --json, --since 1h, "
        "--tenant acme, --model gpt-4o ...)\n"
    )
    return 0
