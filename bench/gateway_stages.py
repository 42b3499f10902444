"""Where the gateway's time per span goes: CPU µs per span for each step, one thread, no queue or network.

    /tmp/venv/bin/python bench/gateway_stages.py                # 512-span batches, default pipeline
    /tmp/venv/bin/python bench/gateway_stages.py --batches 200 --spans 10
    /tmp/venv/bin/python bench/gateway_stages.py --metrics      # span metrics into an SDK MeterProvider
    /tmp/venv/bin/python bench/gateway_stages.py --profile      # cProfile of the whole loop, by own time
    /tmp/venv/bin/python bench/gateway_stages.py --floor        # what the protobuf runtime alone costs

Steps: ``parse`` (``ExportTraceServiceRequest.FromString``, the receivers' validation), ``decode`` (the
same bytes to the pipeline's span objects), each stage of the gateway's default pipeline (tail sampling at probability
0.1), and ``encode`` (what passed, back to OTLP bytes). Same payloads as ``bench/gateway.py`` (GenAI
spans without content, 4 spans per trace, every trace id distinct); the first batches warm the caches
and are not counted. Times are ``time.thread_time`` (CPU of this thread), so other processes on the
machine disturb them less than wall time; the last line is the sum as spans/s, the figure the engine
would reach without its queue, journal and export threads.

``--floor``: the part no Python code of ours can remove, i.e. the protobuf runtime (upb) handing a span's
data to Python: parse the request (full and lite schema), read a span's fields, get its attribute
entries as bytes, and look each up in the entry cache. Each line includes the ones above it; the last
column is the share of the 10 µs per span a 100k spans/s per core goal allows. The last line is a
sketch of the least any pipeline must do on top (one loop: a price, four metric appends, the sampling
marks, spans grouped by trace; no attribute written, nothing encoded, held or journalled).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.gateway import PIPELINE, payloads
from tokentrace.gateway.engine import build_gateway_pipeline
from tokentrace.gateway.otlp_codec import decode_request, encode_spans
from tokentrace.gateway.server import tune_garbage_collector

WARM_BATCHES = 5


def pipeline(metrics: bool):
    meter_provider = None
    if metrics:
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        from tokentrace.gateway.config import TelemetrySettings
        from tokentrace.gateway.telemetry import meter_provider as gateway_meter_provider

        meter_provider = gateway_meter_provider(TelemetrySettings(), [InMemoryMetricReader()])
    return build_gateway_pipeline(PIPELINE, meter_provider=meter_provider)


def run(bodies: list[bytes], stages, times: dict[str, float] | None) -> int:
    """One pass over ``bodies``; adds CPU seconds per step to ``times``; returns the spans decoded."""
    clock = time.thread_time
    spans = 0
    for body in bodies:
        started = clock()
        ExportTraceServiceRequest.FromString(body)  # the receiver's validating parse
        parsed = clock()
        decoded = decode_request(body)  # as the engine does: from the bytes the receiver parsed
        decoded_at = clock()
        batch = decoded.spans
        spans += len(batch)
        if times is not None:
            times["parse"] += parsed - started
            times["decode"] += decoded_at - parsed
        for stage in stages:
            before = clock()
            batch = stage.process(batch)
            if times is not None:
                times[stage.name] += clock() - before
        before = clock()
        if batch:
            encode_spans(batch, decoded)
        if times is not None:
            times["encode"] += clock() - before
    return spans


def floor(bodies: list[bytes]) -> None:
    """See the module docstring (``--floor``)."""
    from tokentrace.core.pricing import PriceBook
    from tokentrace.gateway.otlp_codec import LiteRequest
    from tokentrace.gateway.otlp_values import attribute_pairs

    for body in bodies:  # fill the entry cache, as a running gateway has
        decode_request(body)
    parse_lite = LiteRequest.FromString

    def spans_of(body: bytes):
        return (span for rs in parse_lite(body).resource_spans for ss in rs.scope_spans for span in ss.spans)

    def fields(body: bytes) -> None:
        for span in spans_of(body):
            span.trace_id, span.span_id, span.parent_span_id, span.name, span.kind  # noqa: B018
            span.start_time_unix_nano, span.end_time_unix_nano, span.status.code, span.flags  # noqa: B018

    def entries(body: bytes) -> None:
        for span in spans_of(body):
            span.trace_id, span.span_id, span.parent_span_id, span.name, span.kind  # noqa: B018
            span.start_time_unix_nano, span.end_time_unix_nano, span.status.code, span.flags  # noqa: B018
            span.attributes[:]

    def attributes(body: bytes) -> None:
        for span in spans_of(body):
            span.trace_id, span.span_id, span.parent_span_id, span.name, span.kind  # noqa: B018
            span.start_time_unix_nano, span.end_time_unix_nano, span.status.code, span.flags  # noqa: B018
            dict(attribute_pairs(span.attributes))

    prices = PriceBook()
    price = prices.price
    series: dict[tuple[Any, ...], tuple[list[Any], ...]] = {}

    def fused(body: bytes) -> None:
        """The least any pipeline must do per span, in one loop: the entries to a dict, a price from the
        price book, four metric appends, the error/flag/cost marks, spans grouped by trace. No attribute
        is written, nothing is encoded, nothing held or journalled."""
        traces: dict[bytes, list[Any]] = {}
        for span in spans_of(body):
            trace_id, start, end, code = (
                span.trace_id,
                span.start_time_unix_nano,
                span.end_time_unix_nano,
                span.status.code,
            )
            attributes = dict(attribute_pairs(span.attributes))
            cost = 0.0
            flagged = False
            operation = attributes.get("gen_ai.operation.name")
            if operation is not None:
                model = attributes.get("gen_ai.response.model") or attributes.get("gen_ai.request.model")
                input_tokens = attributes.get("gen_ai.usage.input_tokens")
                output_tokens = attributes.get("gen_ai.usage.output_tokens")
                priced = price(attributes.get("gen_ai.provider.name"), model, input_tokens, output_tokens, None, None)
                if not isinstance(priced, str):
                    cost = priced[1] + priced[2]
                buffers = series.get((operation, model))
                if buffers is None:
                    buffers = series[(operation, model)] = ([], [], [], [])
                buffers[0].append(input_tokens)
                buffers[1].append(output_tokens)
                buffers[2].append(cost)
                buffers[3].append((end - start) / 1e9)
                flagged = attributes.get("gen_ai.response.finish_reasons") not in (None, ("stop",))
            marks = (code == 2, flagged, cost, end - start)
            held = traces.get(trace_id)
            if held is None:
                traces[trace_id] = [(span, marks)]
            else:
                held.append((span, marks))
        for buffers in series.values():
            for values in buffers:
                values.clear()

    steps = {
        "full-schema parse (the receivers' validation)": ExportTraceServiceRequest.FromString,
        "lite parse": parse_lite,
        "+ read each span's fields": fields,
        "+ its attribute entries as bytes": entries,
        "+ entries to a dict (cache hits)": attributes,
        "a minimal fused pass (see fused())": fused,
    }
    per_span = sum(len(span.attributes) for span in spans_of(bodies[0])) / sum(1 for _ in spans_of(bodies[0]))
    count = len(bodies) * sum(1 for _ in spans_of(bodies[0]))
    print(f"protobuf runtime floor, CPU µs per span ({per_span:.0f} attributes per span; best of 5 passes)")
    for label, step in steps.items():
        best = float("inf")
        for _ in range(5):
            started = time.thread_time()
            for body in bodies:
                step(body)
            best = min(best, time.thread_time() - started)
        micros = best / count * 1e6
        print(f"  {label:<48} {micros:6.2f}  {micros / 10:6.0%} of 10 µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=120)
    parser.add_argument("--spans", type=int, default=512, help="spans per batch (a multiple of 4 or 5)")
    parser.add_argument("--metrics", action="store_true", help="span metrics into an SDK MeterProvider")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--floor", action="store_true", help="only what the protobuf runtime costs")
    args = parser.parse_args()
    if args.floor:
        floor(payloads(args.spans, args.batches // 2))
        return

    stages = pipeline(args.metrics).stages
    bodies = payloads(args.spans, args.batches + WARM_BATCHES)
    tune_garbage_collector()
    run(bodies[:WARM_BATCHES], stages, None)
    measured = bodies[WARM_BATCHES:]
    times = dict.fromkeys(["parse", "decode", *(stage.name for stage in stages), "encode"], 0.0)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
    spans = run(measured, stages, times)
    if args.profile:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(35)
    total = sum(times.values())
    label = f"{args.spans}-span batches{', span metrics into an SDK MeterProvider' if args.metrics else ''}"
    print(f"{label}: CPU µs per span ({spans:,} spans)")
    for name, seconds in times.items():
        print(f"  {name:<14} {seconds / spans * 1e6:7.2f}")
    print(f"  {'total':<14} {total / spans * 1e6:7.2f}  -> {spans / total:,.0f} spans/s on one core")


if __name__ == "__main__":
    main()
