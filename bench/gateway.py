"""Gateway engine throughput (spans/s per core) and resident memory, no network.

    /tmp/venv/bin/python bench/gateway.py                 # throughput + memory
    /tmp/venv/bin/python bench/gateway.py --skip-memory   # throughput only
    /tmp/venv/bin/python bench/gateway.py --profile 512   # cProfile of the 512-span case

Throughput: protobuf bytes -> ``ExportTraceServiceRequest.FromString`` (what the receiver does) ->
``Gateway.ingest_traces`` (decode to SpanData, the default pipeline with tail sampling at probability
0.1, serialise, append to the on-disk queue with ``fsync: never``) while the export workers take the
batches off the queue into an exporter that drops them. CPU time of the whole process (every thread)
is measured, so the figure is spans per CPU-second, i.e. per core. The reference in the same run is
plain protobuf parse + serialise of the same payloads. Payloads are GenAI spans without content (an
HTTP root and chat spans, 4 spans per trace), every trace id distinct.

Memory: the same engine fed 10k spans/s (512-span batches) for ``--memory-seconds`` with tail sampling
holding traces for its default 5 s decision wait; the peak RSS is reported.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.gateway.backend import genai_request
from tokentrace.gateway import EngineSettings, ExporterSettings, Gateway, QueueSettings
from tokentrace.gateway.export import OK, Exporter, Outcome
from tokentrace.gateway.server import tune_garbage_collector

GOAL_SPANS_PER_S = 100_000
GOAL_RSS_MIB = 150
PIPELINE = {"sample": {"probability": 0.1}}


class NullExporter(Exporter):
    def send(self, kind: int, payload: bytes) -> Outcome:
        return OK


def payloads(batch_spans: int, count: int) -> list[bytes]:
    spans_per_trace = 4 if batch_spans % 4 == 0 else 5
    traces = batch_spans // spans_per_trace
    return [genai_request(traces, spans_per_trace, seed=index).SerializeToString() for index in range(count)]


def gateway(directory: str, metrics: bool = False) -> Gateway:
    """The engine; ``metrics``: with an SDK MeterProvider recording the span metrics, as a gateway with
    ``telemetry.otlp_endpoint`` set runs (without one, the metrics API is the no-op default)."""
    settings = EngineSettings(
        queue=QueueSettings(directory=directory, fsync="never"),
        exporter=ExporterSettings(endpoint="unused:4317"),
        pipeline=PIPELINE,
    )
    meter_provider = None
    if metrics:
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        from tokentrace.gateway.config import TelemetrySettings
        from tokentrace.gateway.telemetry import meter_provider as gateway_meter_provider

        meter_provider = gateway_meter_provider(TelemetrySettings(), [InMemoryMetricReader()])
    engine = Gateway(settings, exporter=NullExporter(), meter_provider=meter_provider)
    tune_garbage_collector()  # as the gateway process does at startup
    engine.start()
    return engine


def cpu_rate(bodies: list[bytes], spans: int, run) -> float:
    started = time.process_time()
    for body in bodies:
        run(body)
    return len(bodies) * spans / (time.process_time() - started)


def throughput(batch_spans: int, batches: int, profile: bool, metrics: bool = False) -> None:
    bodies = payloads(batch_spans, batches)
    parse = ExportTraceServiceRequest.FromString

    def baseline(body: bytes) -> None:
        parse(body).SerializeToString()

    with tempfile.TemporaryDirectory() as directory:
        engine = gateway(directory, metrics)

        def ingest(body: bytes) -> None:
            engine.ingest_traces(parse(body), body)  # as the receivers do: the bytes ride along for the journal

        warm = max(2, batches // 10)
        for body in bodies[:warm]:
            ingest(body)
        measured = bodies[warm:]
        if profile:
            profiler = cProfile.Profile()
            profiler.enable()
        engine_rates, base_rates = [], []
        chunk = max(1, len(measured) // 3)
        for start in range(0, len(measured), chunk):  # alternate, so drifting machine load hits both
            part = measured[start : start + chunk]
            engine_rates.append(cpu_rate(part, batch_spans, ingest))
            base_rates.append(cpu_rate(part, batch_spans, baseline))
        if profile:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
        engine.shutdown(10)
        stats = engine.stats()
    engine_rate = sorted(engine_rates)[len(engine_rates) // 2]
    base_rate = sorted(base_rates)[len(base_rates) // 2]
    label = f"{batch_spans:>4}-span batches{' + span metrics to an SDK MeterProvider' if metrics else ''}"
    print(
        f"{label}: engine {engine_rate:>9,.0f} spans/s per core | protobuf parse+serialise "
        f"{base_rate:>10,.0f} spans/s | ratio {engine_rate / base_rate:.3f} | exported {stats['exported']:.0f} of "
        f"{stats['accepted']:.0f} (sampling 0.1)"
    )
    if batch_spans == 512 and not metrics:
        verdict = "met" if engine_rate >= GOAL_SPANS_PER_S else "NOT met"
        print(f"  goal >= {GOAL_SPANS_PER_S:,} spans/s per core for 512-span batches: {verdict}")


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def memory(seconds: float) -> None:
    """Run in a fresh process (``--memory-only``) so the throughput phase's garbage does not count."""
    batch_spans = 512
    rate = 10_000
    interval = batch_spans / rate
    templates = [genai_request(batch_spans // 4, 4, seed=index) for index in range(8)]
    traces = [
        [span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans] for request in templates
    ]
    after_import = rss_mib()
    peak = 0.0
    counter = 0

    def next_body(index: int) -> bytes:
        """A template with fresh trace ids (every trace distinct, as in production)."""
        nonlocal counter
        request = templates[index % len(templates)]
        remap: dict[bytes, bytes] = {}
        for span in traces[index % len(templates)]:
            new = remap.get(span.trace_id)
            if new is None:
                counter += 1
                new = remap[span.trace_id] = counter.to_bytes(8, "big") + span.trace_id[8:]
            span.trace_id = new
        return request.SerializeToString()

    parse = ExportTraceServiceRequest.FromString
    with tempfile.TemporaryDirectory() as directory:
        engine = gateway(directory)
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.wait(0.1):
                peak = max(peak, rss_mib())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        cpu_started = time.process_time()
        behind = 0
        batches = int(seconds / interval)
        for index in range(batches):
            due = started + index * interval
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                behind += 1
            body = next_body(index)
            engine.ingest_traces(parse(body), body)
        elapsed = time.monotonic() - started
        cpu = time.process_time() - cpu_started
        stop.set()
        sampler.join()
        held = engine.stats()
        engine.shutdown(10)
    sent = batches * batch_spans
    verdict = "met" if peak < GOAL_RSS_MIB else "NOT met"
    print(
        f"memory: {sent / elapsed:,.0f} spans/s for {elapsed:.0f} s (CPU {cpu / elapsed:.0%} of a core, {behind} "
        f"batches late) with tail sampling (decision wait 5 s): peak RSS {peak:.0f} MiB, {after_import:.0f} MiB "
        f"after imports; exported {held['exported']:.0f} of {held['accepted']:.0f} -> goal < {GOAL_RSS_MIB} MiB "
        f"{verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=120)
    parser.add_argument("--profile", type=int, choices=[10, 512])
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-only", action="store_true")
    parser.add_argument("--memory-seconds", type=float, default=20.0)
    args = parser.parse_args()
    if args.profile:
        throughput(args.profile, args.batches, True)
        return
    if args.memory_only:
        memory(args.memory_seconds)
        return
    print(f"pid {os.getpid()}, {os.cpu_count()} cores visible; pipeline: default stages, sample {PIPELINE['sample']}")
    throughput(512, args.batches, False)
    throughput(10, args.batches * 40, False)
    throughput(512, args.batches // 2, False, metrics=True)
    if not args.skip_memory:  # a fresh process: the throughput phase's allocations must not count
        subprocess.run(
            [sys.executable, __file__, "--memory-only", "--memory-seconds", str(args.memory_seconds)], check=False
        )


if __name__ == "__main__":
    main()
