"""Microseconds per span of the processor pipeline, stage by stage, on realistic spans.

    /tmp/venv/bin/python bench/pipeline.py                    # table + goal check
    /tmp/venv/bin/python bench/pipeline.py --repeats 9        # quicker
    /tmp/venv/bin/python bench/pipeline.py --profile enrich --kind genai+content

Spans are built as ``SpanData`` directly. Every timed run gets a fresh batch: the copy (new
``SpanData``, new attribute dict, new random trace ids) is made *outside* the timed region, so
nothing is subtracted; its cost is printed for reference. A stage's input is what the stages before
it in the default order produce (prepared outside the timed region too), so each row is the work the
stage does in the pipeline. The ``sample`` stage (probability 0.1, short decision wait) is timed with
``process`` + ``poll`` + ``shutdown``, so the cost of buffered traces counts.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pstats
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from tokentrace.processor.config import STAGES, build_pipeline
from tokentrace.processor.model import SpanData
from tokentrace.processor.pipeline import Pipeline

BATCH = 512
SPANS_PER_TRACE = 4  # one local root + three children
GOAL_US = 10.0
GOAL_KIND = "genai"
GOAL_PIPELINE = "normalise+enrich+sample"
SAMPLE_SETTINGS = {"probability": 0.1, "decision_wait_s": 0.001}
POLL_AHEAD_NS = 1_000_000_000  # poll as the timer would a second later: every held trace is due

INTERNAL, SERVER, CLIENT = 0, 1, 2
RESOURCE = {
    "service.name": "support-bot",
    "service.version": "1.4.2",
    "deployment.environment.name": "prod",
    "telemetry.sdk.name": "opentelemetry",
    "telemetry.sdk.language": "python",
    "telemetry.sdk.version": "1.38.0",
    "host.name": "ip-10-0-3-17",
}

# -- content ---------------------------------------------------------------------------------------

_SYSTEM = (
    "You are the support assistant of Acme Cloud. Answer in the user's language, be concise, cite the "
    "relevant help-centre article by its number, and never reveal internal ticket notes. If the user "
    "asks about billing, link https://acme.example/billing and explain the invoice lines."
)
_QUESTION = (
    "Hi, since the upgrade on 2026-11-{day:02d} our nightly export job #{job} fails after about {mins} "
    "minutes with 'ERR_QUOTA_EXCEEDED'. We are on the Team plan with {seats} seats and the export is "
    "roughly {size} GB. Yesterday it worked, today it stopped at 87%. The job runs from our eu-west "
    'workspace and writes to a bucket called "acme-exports-{job}". I already tried restarting it '
    "twice and reducing the parallelism from 8 to 4, same result. Is there a new limit on exports, and "
    "if so how can we raise it before the end of the month? We need the data for the quarterly "
    "report. Also, could you tell me whether the failed runs are billed? Thanks a lot.{contact}"
)
_EARLIER = (
    "Earlier today you told me to check the quota page, but it shows {used} of {quota} units used, so "
    "that does not look like the problem to me."
)
_ANSWER = (
    "Thanks for the details. Since the 2026-11 release, exports larger than {size_limit} GB count "
    "against a separate export quota of {quota} units per day on the Team plan; your job needs about "
    "{need} units, which is why it stops near 87%. You can (1) split the export by date range so each "
    "part stays below the limit, (2) ask an admin to raise the export quota under Settings > Limits, "
    "which takes effect within 15 minutes, or (3) move to the Business plan, where the limit is 10x "
    "higher. Failed runs are not billed: only completed exports appear on the invoice. See article "
    "KB-{kb} for the step-by-step guide. Let me know if you want me to open a quota request for you."
)
_FOLLOW_UP = (
    "Understood. Could you share the export job's settings (date range, format, destination) and the "
    "time of the last failed run, so I can compare them with the new limits?"
)
_REPLY = (
    "Date range is the whole of last quarter, format Parquet, destination the bucket above, last failure at "
    "02:14 UTC. Our ticket reference is {ticket}."
)
_CLOSING = (
    " If splitting is not practical, scheduling the export to run in two halves (for example at 01:00 and "
    "03:00 UTC) also keeps each run below the daily threshold. Your quota resets at 00:00 UTC."
)
_CONTACTS = ("", " You can reach me at jane.doe@example.com.", "", " Call me back on +44 20 7946 0{n:03d}.")


def _messages(i: int) -> tuple[str, str, str]:
    """(system instructions, input messages, output messages) as the conventions' JSON strings."""
    contact = _CONTACTS[i % len(_CONTACTS)].format(n=i % 1000)
    question = _QUESTION.format(
        day=1 + i % 28, job=4000 + i, mins=10 + i % 50, seats=5 + i % 40, size=20 + i % 90, contact=contact
    )
    earlier = _EARLIER.format(used=100 + i, quota=5000)
    answer = _ANSWER.format(size_limit=50, quota=200 + i % 7, need=260 + i % 30, kb=1000 + i % 300) + _CLOSING
    system = json.dumps([{"type": "text", "content": _SYSTEM}])
    inputs = json.dumps(
        [
            {"role": "user", "parts": [{"type": "text", "content": question}]},
            {"role": "assistant", "parts": [{"type": "text", "content": "Could you check the quota page first?"}]},
            {"role": "user", "parts": [{"type": "text", "content": earlier}]},
            {"role": "assistant", "parts": [{"type": "text", "content": _FOLLOW_UP}]},
            {"role": "user", "parts": [{"type": "text", "content": _REPLY.format(ticket=70000 + i)}]},
        ]
    )
    outputs = json.dumps(
        [{"role": "assistant", "parts": [{"type": "text", "content": answer}], "finish_reason": "stop"}]
    )
    return system, inputs, outputs


# -- span templates: (name, kind, scope, attributes) per position in the trace --------------------

Template = tuple[str, int, str, dict[str, Any]]


def _chat_attributes(i: int) -> dict[str, Any]:
    input_tokens, output_tokens = 900 + i % 300, 120 + i % 80
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.response.id": f"chatcmpl-{i:024d}",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 512,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
        "gen_ai.usage.cache_read.input_tokens": 256,
        "gen_ai.usage.cost.amount": (input_tokens * 0.15 + output_tokens * 0.6) / 1e6,
        "gen_ai.usage.cost.currency": "USD",
        "gen_ai.usage.cost.source": "local",
        "tokentrace.cost.input": input_tokens * 0.15 / 1e6,
        "tokentrace.cost.output": output_tokens * 0.6 / 1e6,
        "tokentrace.usage.source": "reported",
        "openai.api.type": "chat_completions",
        "openai.response.service_tier": "default",
        "server.address": "api.openai.com",
        "server.port": 443,
    }


def genai(i: int, content: bool) -> list[Template]:
    root = (
        "invoke_agent support-bot",
        INTERNAL,
        "tokentrace.agents",
        {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.provider.name": "openai",
            "gen_ai.agent.name": "support-bot",
            "gen_ai.agent.id": "agent-7",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.conversation.id": f"conv-{i // 3}",
            "tenant.id": "acme",
            "enduser.id": f"user-{i % 97}",
        },
    )
    out = [root]
    for j in range(SPANS_PER_TRACE - 1):
        attributes = _chat_attributes(i + j)
        if content:
            system, inputs, outputs = _messages(i + j)
            attributes["gen_ai.system_instructions"] = system
            attributes["gen_ai.input.messages"] = inputs
            attributes["gen_ai.output.messages"] = outputs
        out.append(("chat gpt-4o-mini", CLIENT, "tokentrace.openai", attributes))
    return out


def openllmetry(i: int) -> list[Template]:
    root = (
        "support_bot.workflow",
        INTERNAL,
        "opentelemetry.instrumentation.langchain",
        {
            "traceloop.span.kind": "workflow",
            "traceloop.entity.name": "support_bot",
            "traceloop.workflow.name": "support_bot",
            "traceloop.association.properties.user_id": f"user-{i % 97}",
        },
    )
    out = [root]
    for j in range(SPANS_PER_TRACE - 1):
        _, inputs, outputs = _messages(i + j)
        question = json.loads(inputs)[0]["parts"][0]["content"]
        answer = json.loads(outputs)[0]["parts"][0]["content"]
        prompt, completion = 900 + (i + j) % 300, 120 + (i + j) % 80
        out.append(
            (
                "openai.chat",
                CLIENT,
                "opentelemetry.instrumentation.openai.v1",
                {
                    "llm.request.type": "chat",
                    "gen_ai.system": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                    "gen_ai.response.id": f"chatcmpl-{i + j:024d}",
                    "gen_ai.request.temperature": 0.2,
                    "gen_ai.request.max_tokens": 512,
                    "llm.is_streaming": False,
                    "llm.headers": "None",
                    "gen_ai.openai.api_base": "https://api.openai.com/v1/",
                    "gen_ai.openai.system_fingerprint": "fp_0ba0d124f1",
                    "gen_ai.usage.prompt_tokens": prompt,
                    "gen_ai.usage.completion_tokens": completion,
                    "llm.usage.total_tokens": prompt + completion,
                    "gen_ai.usage.cache_read_input_tokens": 256,
                    "gen_ai.prompt.0.role": "system",
                    "gen_ai.prompt.0.content": _SYSTEM,
                    "gen_ai.prompt.1.role": "user",
                    "gen_ai.prompt.1.content": question,
                    "gen_ai.completion.0.role": "assistant",
                    "gen_ai.completion.0.content": answer,
                    "gen_ai.completion.0.finish_reason": "stop",
                },
            )
        )
    return out


def openinference(i: int) -> list[Template]:
    root = (
        "SupportChain",
        INTERNAL,
        "openinference.instrumentation.langchain",
        {
            "openinference.span.kind": "CHAIN",
            "input.value": '{"question": "export job fails"}',
            "input.mime_type": "application/json",
            "output.value": "See article KB-1042.",
            "session.id": f"conv-{i // 3}",
            "user.id": f"user-{i % 97}",
        },
    )
    out = [root]
    for j in range(SPANS_PER_TRACE - 1):
        _, inputs, outputs = _messages(i + j)
        question = json.loads(inputs)[0]["parts"][0]["content"]
        answer = json.loads(outputs)[0]["parts"][0]["content"]
        prompt, completion = 900 + (i + j) % 300, 120 + (i + j) % 80
        request = json.dumps(
            {
                "model": "gpt-4o-mini",
                "temperature": 0.2,
                "messages": [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": question}],
            }
        )
        out.append(
            (
                "ChatCompletion",
                CLIENT,
                "openinference.instrumentation.openai",
                {
                    "openinference.span.kind": "LLM",
                    "llm.provider": "openai",
                    "llm.system": "openai",
                    "llm.model_name": "gpt-4o-mini-2024-07-18",
                    "llm.invocation_parameters": '{"model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 512}',
                    "llm.token_count.prompt": prompt,
                    "llm.token_count.completion": completion,
                    "llm.token_count.total": prompt + completion,
                    "llm.token_count.prompt_details.cache_read": 256,
                    "llm.input_messages.0.message.role": "system",
                    "llm.input_messages.0.message.content": _SYSTEM,
                    "llm.input_messages.1.message.role": "user",
                    "llm.input_messages.1.message.content": question,
                    "llm.output_messages.0.message.role": "assistant",
                    "llm.output_messages.0.message.content": answer,
                    "input.value": request,
                    "input.mime_type": "application/json",
                    "output.value": json.dumps(
                        {
                            "id": f"chatcmpl-{i + j:024d}",
                            "choices": [{"message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
                        }
                    ),
                    "output.mime_type": "application/json",
                },
            )
        )
    return out


def http(i: int) -> list[Template]:
    root = (
        "GET /api/orders/{order_id}",
        SERVER,
        "opentelemetry.instrumentation.fastapi",
        {
            "http.request.method": "GET",
            "http.route": "/api/orders/{order_id}",
            "url.path": f"/api/orders/{i}",
            "url.scheme": "https",
            "http.response.status_code": 200,
            "server.address": "shop.example.com",
            "server.port": 443,
            "network.protocol.version": "1.1",
            "client.address": "10.0.4.21",
            "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
        },
    )
    db = (
        "SELECT orders",
        CLIENT,
        "opentelemetry.instrumentation.sqlalchemy",
        {
            "db.system.name": "postgresql",
            "db.namespace": "shop",
            "db.operation.name": "SELECT",
            "db.collection.name": "orders",
            "db.query.text": "SELECT * FROM orders WHERE id = %(id)s",
            "server.address": "db.internal",
            "server.port": 5432,
        },
    )
    client = (
        "GET",
        CLIENT,
        "opentelemetry.instrumentation.httpx",
        {
            "http.request.method": "GET",
            "url.full": f"https://inventory.internal/items?order={i}",
            "http.response.status_code": 200,
            "server.address": "inventory.internal",
            "server.port": 443,
        },
    )
    cache = (
        "GET",
        CLIENT,
        "opentelemetry.instrumentation.redis",
        {
            "db.system.name": "redis",
            "db.operation.name": "GET",
            "db.query.text": "GET order:*",
            "server.address": "cache.internal",
            "server.port": 6379,
        },
    )
    return [root, db, client, cache]


KINDS: dict[str, Callable[[int], list[Template]]] = {
    "genai": lambda i: genai(i, content=False),
    "genai+content": lambda i: genai(i, content=True),
    "openllmetry": openllmetry,
    "openinference": openinference,
    "http": http,
}


def templates(kind: str, batch: int) -> list[SpanData]:
    """One batch of spans of ``kind``, traces of SPANS_PER_TRACE spans (trace ids set by ``fresh``)."""
    spans: list[SpanData] = []
    start = 1_763_700_000_000_000_000
    trace = 0
    while len(spans) < batch:
        shapes = KINDS[kind](trace)
        root_id = random.getrandbits(64)
        root_start = start + trace * 50_000_000
        for position, (name, span_kind, scope, attributes) in enumerate(shapes):
            # Children follow one another inside the root: no overlap, so nothing looks like a duplicate.
            begin = root_start + 1_000_000 + (position - 1) * 400_000_000 if position else root_start
            end = begin + 380_000_000 if position else root_start + 1_300_000_000
            spans.append(
                SpanData(
                    trace_id=trace,
                    span_id=root_id if position == 0 else random.getrandbits(64),
                    parent_span_id=None if position == 0 else root_id,
                    name=name,
                    kind=span_kind,
                    start_ns=begin,
                    end_ns=end,
                    attributes=attributes,
                    resource=RESOURCE,
                    scope_name=scope,
                )
            )
        trace += 1
    return spans[:batch]


def fresh(spans: list[SpanData]) -> list[SpanData]:
    """New spans (own attribute dicts) with new random trace ids, one per template trace."""
    ids: dict[int, int] = {}
    out = []
    for s in spans:
        trace_id = ids.get(s.trace_id)
        if trace_id is None:
            trace_id = ids[s.trace_id] = random.getrandbits(128)
        out.append(
            SpanData(
                trace_id,
                s.span_id,
                s.parent_span_id,
                s.name,
                s.kind,
                s.start_ns,
                s.end_ns,
                dict(s.attributes),
                s.resource,
                s.scope_name,
            )
        )
    return out


# -- measurement -----------------------------------------------------------------------------------


def meter_provider() -> Any:
    """An SDK meter provider read in memory, so span_metrics and the sampler's counters do real work."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    return MeterProvider(metric_readers=[InMemoryMetricReader()])


def make(order: list[str], provider: Any) -> Pipeline:
    config: dict[str, Any] = {"pipeline": order}
    if "sample" in order:
        config["sample"] = dict(SAMPLE_SETTINGS)
    return build_pipeline(config, meter_provider=provider)


def timed_run(pipeline: Pipeline, batch: list[SpanData]) -> int:
    """Nanoseconds for the batch through ``pipeline``, held spans released (poll + shutdown)."""
    start = time.perf_counter_ns()
    pipeline.process(batch)
    pipeline.poll(time.time_ns() + POLL_AHEAD_NS)
    pipeline.shutdown()
    return time.perf_counter_ns() - start


class Case:
    """One row-cell: ``order`` timed, fed by ``before`` (untimed) on fresh copies of ``template``."""

    def __init__(self, order: list[str], before: list[str], template: list[SpanData], provider: Any) -> None:
        self.pipeline = make(order, provider)
        self.before = make(before, provider) if before else None
        self.template = template

    def batch(self) -> list[SpanData]:
        spans = fresh(self.template)
        if self.before is not None:
            spans = self.before.process(spans)
            for span in spans:
                span.changed = False
        return spans

    def measure(self, repeats: int, warmup: int) -> float:
        samples = []
        for index in range(warmup + repeats):
            spans = self.batch()
            count = len(spans)
            gc.collect()
            elapsed = timed_run(self.pipeline, spans)
            if index >= warmup:
                samples.append(elapsed / 1000 / count)
        return statistics.median(samples)


def columns() -> list[tuple[str, list[str], list[str]]]:
    """(label, stages timed, stages run before them untimed)."""
    order = list(STAGES)
    cols = [(name, [name], order[:i]) for i, name in enumerate(order)]
    cols.append((GOAL_PIPELINE, ["normalise", "enrich", "sample"], []))
    cols.append(("default (all)", order, []))
    return cols


def copy_cost(template: list[SpanData], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        fresh(template)
        samples.append((time.perf_counter_ns() - start) / 1000 / len(template))
    return statistics.median(samples)


def describe(template: list[SpanData]) -> str:
    content = [s.attributes for s in template if "gen_ai.input.messages" in s.attributes]
    if not content:
        return ""
    size = statistics.median(len(a["gen_ai.input.messages"]) for a in content)
    out = statistics.median(len(a["gen_ai.output.messages"]) for a in content)
    return f"input.messages {size:.0f} B, output.messages {out:.0f} B"


def profile(stage: str, kind: str, batch: int, runs: int, provider: Any) -> None:
    cols = {label: (order, before) for label, order, before in columns()}
    order, before = cols[stage]
    case = Case(order, before, templates(kind, batch), provider)
    case.measure(3, 0)
    batches = [case.batch() for _ in range(runs)]
    profiler = cProfile.Profile()
    for spans in batches:
        profiler.enable()
        timed_run(case.pipeline, spans)
        profiler.disable()
    print(f"\ncProfile: {stage} on {kind}, {runs} batches of {batch} spans (sorted by own time)\n")
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats("tokentrace", 25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=21, help="timed batches per cell (median taken)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--kind", action="append", choices=list(KINDS), help="span kinds (default: all)")
    parser.add_argument("--profile", metavar="STAGE", help="cProfile one column (a stage or pipeline label)")
    parser.add_argument("--profile-runs", type=int, default=40)
    args = parser.parse_args()
    random.seed(1)
    provider = meter_provider()
    kinds = args.kind or list(KINDS)
    if args.profile:
        for kind in kinds:
            profile(args.profile, kind, args.batch, args.profile_runs, provider)
        return

    cols = columns()
    print(
        f"batches of {args.batch} spans, {SPANS_PER_TRACE} spans per trace, median of {args.repeats} "
        f"batches (after {args.warmup} warm-up); sample: {SAMPLE_SETTINGS}, poll + shutdown timed"
    )
    print(
        "copies are made outside the timed region (nothing subtracted); each stage is fed what the "
        "stages before it produce\n"
    )
    header = "| span kind | " + " | ".join(label for label, _, _ in cols) + " |"
    rows = []
    results: dict[tuple[str, str], float] = {}
    notes = []
    for kind in kinds:
        template = templates(kind, args.batch)
        cells = []
        for label, order, before in cols:
            value = Case(order, before, template, provider).measure(args.repeats, args.warmup)
            results[kind, label] = value
            cells.append(f"{value:.2f}")
        rows.append(f"| {kind} | " + " | ".join(cells) + " |")
        note = describe(template)
        notes.append(
            f"- {kind}: copy {copy_cost(template, args.repeats):.2f} µs/span (untimed)" + (f"; {note}" if note else "")
        )
    print("µs per span (median)\n")
    print(header)
    print("| --- |" + " ---: |" * len(cols))
    print("\n".join(rows))
    print()
    print("\n".join(notes))
    if (GOAL_KIND, GOAL_PIPELINE) in results:
        value = results[GOAL_KIND, GOAL_PIPELINE]
        verdict = "met" if value < GOAL_US else "MISSED"
        print(
            f"\ngoal: {GOAL_PIPELINE} < {GOAL_US:g} µs/span on {GOAL_KIND} spans without content: "
            f"{value:.2f} µs/span -> {verdict}"
        )


if __name__ == "__main__":
    main()
