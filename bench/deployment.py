"""Deployment sizing: the gateway end to end behind the real Collector, exporting to Jaeger v2.

    eval "$(bash deploy/build-go-tools | tail -n 2 | sed 's/^/export /')"   # the Collector and Jaeger binaries
    /tmp/venv/bin/python bench/deployment.py                 # one gateway behind collector-gateway.yaml
    /tmp/venv/bin/python bench/deployment.py --gateways 3    # three behind collector-loadbalancer-static.yaml
    /tmp/venv/bin/python bench/deployment.py --clients 4 --seconds 60 --json /tmp/sizing.json

What runs (the processes and configs of ``tests/deploy``, started by its harness):

* Jaeger v2 with ``examples/deploy/jaeger.yaml`` (memory storage);
* one gateway (or ``--gateways N``): ``tokentrace gateway`` with the shipped ``examples/deploy/gateway.yaml``
  (``fsync: interval:200``, the full pipeline, the default sampling: probability 0.1, 10 s
  ``decision_wait_s``), only its deployment keys replaced (loopback ports, queue directory, Jaeger as the
  backend: ``tests.deploy.harness.gateway_config``);
* the Collector in front: ``collector-gateway.yaml`` for one gateway, ``collector-loadbalancer-static.yaml``
  (the static list naming the gateways, ``routing_key: traceID``) for several;
* ``--clients`` threads in this process, each with its own gRPC channel, sending 512-span
  ``ExportTraceServiceRequest``s (``tests.gateway.backend.genai_request``: GenAI spans without content, an
  HTTP root and 3 chat spans per trace; fresh random trace ids in every request) to the Collector as fast as
  it accepts them. A refusal (UNAVAILABLE, RESOURCE_EXHAUSTED, or another code the OpenTelemetry SDK
  retries) is backed off as the SDK's OTLP exporter does: the server's RetryInfo delay when it sends one,
  else 1 s, 2 s, 4 s, 8 s (+-20 % jitter), then the same request again. (The SDK gives a request up once its
  10 s timeout is spent; here it is retried until accepted, so the load stays on.)

What is measured over the ``--seconds`` window (the clients' run):

* spans/s each gateway received and exported (``tokentrace_gateway_received_total`` and
  ``..._exported_total`` from its admin ``/metrics``, read at the window's start and end); exported lags
  received by ``decision_wait_s`` and is about 10 % of it (the sampler keeps errors, slow or costly traces and
  10 % of the rest);
* CPU of each process (``/proc/<pid>/stat`` utime + stime over the window, in cores), including this
  process (the clients), since all of them share the machine;
* peak RSS of each process (``/proc/<pid>/status`` VmRSS sampled every 0.2 s), over the window and up to the
  end of the drain;
* the spans/s the Collector accepted, as the clients saw it, and once a second what it held (accepted by
  the clients' count, not yet received by a gateway): near its queue's 100,000 spans per gateway, the
  gateways set the pace and the clients are being refused.

After the window the clients stop and the run waits (``--drain``, at most) for the Collector and the
gateways' tail samplers to pass on what they hold, then prints the totals (received, exported, kept %).
The machine may be shared: the load average at the start and the end is printed, and with other jobs
running the figures are lower bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import grpc
import yaml
from google.rpc.error_details_pb2 import RetryInfo

from tests.deploy.harness import JAEGER_ENV, OTELCOL_ENV, Collector, GoProcess, Jaeger, binary, gateway_config
from tests.gateway.backend import free_port, genai_request
from tests.gateway.process import GatewayProcess

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
BATCH_SPANS = 512
SPANS_PER_TRACE = 4
# the codes the OpenTelemetry Python OTLP/gRPC exporter retries (its _RETRYABLE_ERROR_CODES)
RETRYABLE = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
QUEUE_SPANS = 100_000  # sending_queue.queue_size in both Collector files
MAX_BACKOFF_S = 8.0  # the SDK's last wait inside its default 10 s timeout
RSS_INTERVAL_S = 0.2
MIB = 1024 * 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SHARED_NOTE = "the machine is shared with other jobs: with a load average above the core count these are lower bounds"


# --- /proc ------------------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (every thread), from ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()  # the command name may hold spaces: skip past it
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of proc(5)


def rss_bytes(pid: int) -> int:
    """VmRSS of ``pid`` (0 once it has exited)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min, {os.cpu_count()} cores)"


class RssSampler:
    """Samples VmRSS of named pids every 0.2 s in a thread; ``peaks()`` since start, ``mark()`` freezes the
    window's peaks."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak = dict.fromkeys(pids, 0)
        self.window_peak: dict[str, int] | None = None
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], rss_bytes(pid))
            if self.stop_event.wait(RSS_INTERVAL_S):
                return

    def start(self) -> RssSampler:
        self.thread.start()
        return self

    def mark(self) -> None:
        self.window_peak = dict(self.peak)

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join()


# --- the clients ----------------------------------------------------------------------------------------------


class Payloads:
    """512-span requests from ``genai_request`` templates, each with fresh random trace ids (every trace of
    every request distinct, as from real applications; the sampler's 10 % then falls on random ids)."""

    def __init__(self, seed: int, templates: int = 4) -> None:
        self.rng = random.Random(seed)
        self.requests = [
            genai_request(BATCH_SPANS // SPANS_PER_TRACE, SPANS_PER_TRACE, seed=seed * 1000 + index)
            for index in range(templates)
        ]
        self.spans = [
            [span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]
            for request in self.requests
        ]
        self.index = 0

    def next(self) -> bytes:
        slot = self.index % len(self.requests)
        self.index += 1
        remap: dict[bytes, bytes] = {}
        for span in self.spans[slot]:
            new = remap.get(span.trace_id)
            if new is None:
                new = remap[span.trace_id] = self.rng.getrandbits(128).to_bytes(16, "big")
            span.trace_id = new
        return self.requests[slot].SerializeToString()


@dataclass
class ClientStats:
    accepted_spans: int = 0  # acknowledged by the Collector before the window's end
    late_spans: int = 0  # acknowledged after it (the request was in flight when the window closed)
    requests: int = 0
    refusals: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)  # not retryable: the request is dropped, as the SDK does
    backoff_s: float = 0.0


def retry_delay(error: grpc.RpcError, attempt: int) -> float:
    """The SDK's delay: the server's RetryInfo when present, else 2**attempt s with +-20 % jitter."""
    for key, value in error.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == "google.rpc.retryinfo-bin":
            info = RetryInfo.FromString(value)
            return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return min(MAX_BACKOFF_S, 2.0**attempt) * random.uniform(0.8, 1.2)


def client(endpoint: str, payloads: Payloads, window_end: threading.Event, stats: ClientStats) -> None:
    """Send as fast as the Collector accepts until ``window_end``; one channel, one request at a time."""
    with grpc.insecure_channel(endpoint) as channel:
        export = channel.unary_unary(EXPORT_METHOD)  # bytes in, bytes out: no (de)serialisation cost here
        body = payloads.next()
        attempt = 0
        while not window_end.is_set():
            try:
                export(body, timeout=10)
            except grpc.RpcError as error:
                code = error.code()  # type: ignore[attr-defined]
                if code in RETRYABLE:
                    stats.refusals[code.name] = stats.refusals.get(code.name, 0) + 1
                    delay = retry_delay(error, attempt)
                    attempt += 1
                    stats.backoff_s += delay
                    window_end.wait(delay)
                    continue  # the same request again
                stats.errors[code.name] = stats.errors.get(code.name, 0) + 1
            else:
                stats.requests += 1
                if window_end.is_set():
                    stats.late_spans += BATCH_SPANS
                else:
                    stats.accepted_spans += BATCH_SPANS
            attempt = 0
            body = payloads.next()


# --- the deployment -------------------------------------------------------------------------------------------


class Gateways:
    """N gateways from the shipped gateway.yaml on fixed gRPC ports (a static list names them), one queue
    directory each; the default sampling (no overrides)."""

    def __init__(self, directory: Path, count: int, endpoint: str) -> None:
        self.configs = [
            gateway_config(directory / f"gateway-{index}", endpoint, grpc_port=free_port()) for index in range(count)
        ]
        self.processes = [
            GatewayProcess(directory / f"gateway-{index}", config=config) for index, config in enumerate(self.configs)
        ]

    @property
    def hostnames(self) -> list[str]:
        return [f"127.0.0.1:{config['receivers']['grpc']['port']}" for config in self.configs]

    def start(self) -> Gateways:
        with ThreadPoolExecutor(len(self.processes)) as pool:
            list(pool.map(lambda process: process.start(), self.processes))
        return self

    def counters(self, index: int) -> dict[str, float]:
        """Every ``tokentrace_gateway_*_total`` counter of gateway ``index``, by its middle word."""
        status, body = self.processes[index].admin("/metrics")
        if status != 200:
            raise RuntimeError(f"gateway {index}: /metrics answered {status}")
        out = {}
        for line in body.decode().splitlines():
            if line.startswith("tokentrace_gateway_") and "_total " in line and "{" not in line:
                name, value = line.split()
                out[name.removeprefix("tokentrace_gateway_").removesuffix("_total")] = float(value)
        return out

    def all_counters(self) -> list[dict[str, float]]:
        return [self.counters(index) for index in range(len(self.processes))]

    def stop(self) -> None:
        with ThreadPoolExecutor(len(self.processes)) as pool:
            list(pool.map(lambda process: process.stop(), self.processes))

    def kill(self) -> None:
        for process in self.processes:
            process.kill()


def collector_for(directory: Path, gateways: Gateways) -> Collector:
    if len(gateways.processes) == 1:
        return Collector(
            "collector-gateway.yaml", directory / "collector", TOKENTRACE_GATEWAY_ENDPOINT=gateways.hostnames[0]
        )
    return Collector(
        "collector-loadbalancer-static.yaml",
        directory / "collector",
        TOKENTRACE_GATEWAYS=yaml.safe_dump(gateways.hostnames, default_flow_style=True).strip(),
        TOKENTRACE_GATEWAY_ENDPOINT=gateways.hostnames[0],
    )


def pid_of(process: GoProcess | GatewayProcess) -> int:
    assert process.process is not None
    return process.process.pid


def drain(gateways: Gateways, decision_wait_s: float, limit_s: float) -> tuple[list[dict[str, float]], float]:
    """Wait until the gateways have received nothing new for 2 s and then exported nothing new for
    ``decision_wait_s`` + 2 s (the sampler has decided everything), at most ``limit_s``."""
    started = time.monotonic()
    last = gateways.all_counters()
    received_at = exported_at = time.monotonic()
    while time.monotonic() - started < limit_s:
        time.sleep(1.0)
        now = gateways.all_counters()
        moment = time.monotonic()
        if [c.get("received") for c in now] != [c.get("received") for c in last]:
            received_at = moment
        if [c.get("exported") for c in now] != [c.get("exported") for c in last]:
            exported_at = moment
        last = now
        if moment - received_at > decision_wait_s + 2 and moment - exported_at > 2:
            break
    return last, time.monotonic() - started


def run(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    count = args.gateways
    with Jaeger(directory / "jaeger") as jaeger:
        gateways = Gateways(directory, count, jaeger.grpc_endpoint)
        sample = gateways.configs[0]["engine"]["pipeline"]["sample"]
        collector: Collector | None = None
        try:
            gateways.start()
            collector = collector_for(directory, gateways).start()
            pids = {f"gateway-{index}": pid_of(process) for index, process in enumerate(gateways.processes)}
            pids.update(collector=pid_of(collector), jaeger=pid_of(jaeger), clients=os.getpid())
            idle_rss = {name: rss_bytes(pid) for name, pid in pids.items()}
            sampler = RssSampler(pids).start()
            window_end = threading.Event()
            stats = [ClientStats() for _ in range(args.clients)]
            threads = [
                threading.Thread(
                    target=client,
                    args=(collector.grpc_endpoint, Payloads(seed=1 + number), window_end, stats[number]),
                    daemon=True,
                )
                for number in range(args.clients)
            ]
            load_start = load_average()
            counters_start = gateways.all_counters()
            cpu_start = {name: cpu_seconds(pid) for name, pid in pids.items()}
            started = time.monotonic()
            for thread in threads:
                thread.start()
            deadline = started + args.seconds
            # what the Collector holds (acknowledged to the clients, not yet received by a gateway), once a
            # second: when it stays near its queue's size the gateways set the pace
            backlog: list[float] = []
            received_start = sum(c.get("received", 0) for c in counters_start)
            while (left := deadline - time.monotonic()) > 0:
                time.sleep(min(1.0, left))
                if time.monotonic() < deadline - 0.1:
                    received = sum(c.get("received", 0) for c in gateways.all_counters()) - received_start
                    backlog.append(sum(s.accepted_spans for s in stats) - received)
            window_end.set()
            elapsed = time.monotonic() - started
            cpu_end = {name: cpu_seconds(pid) for name, pid in pids.items()}
            counters_end = gateways.all_counters()
            sampler.mark()
            load_end = load_average()
            for thread in threads:
                thread.join(30)
            totals, drained_s = drain(gateways, float(sample.get("decision_wait_s", 0)), args.drain)
            sampler.stop()
            retries = [line.strip() for line in collector.lines if "Exporting failed" in line]
            assert collector.stop() == 0, collector.log()
            gateways.stop()
        finally:
            if collector is not None:
                collector.kill()
            gateways.kill()
    assert sampler.window_peak is not None
    return {
        "mode": f"{count} gateway{'s' if count > 1 else ''}",
        "collector_config": "collector-gateway.yaml" if count == 1 else "collector-loadbalancer-static.yaml",
        "clients": args.clients,
        "batch_spans": BATCH_SPANS,
        "seconds": elapsed,
        "sampling": sample,
        "fsync": gateways.configs[0]["engine"]["queue"]["fsync"],
        "load_average_start": load_start,
        "load_average_end": load_end,
        "client_accepted_spans": sum(s.accepted_spans for s in stats),
        "client_late_spans": sum(s.late_spans for s in stats),
        "client_refusals": _merge([s.refusals for s in stats]),
        "client_errors": _merge([s.errors for s in stats]),
        "client_backoff_s": sum(s.backoff_s for s in stats),
        "gateways": [
            {
                "received": end.get("received", 0) - begin.get("received", 0),
                "exported": end.get("exported", 0) - begin.get("exported", 0),
                "refused": end.get("refused", 0) - begin.get("refused", 0),
            }
            for begin, end in zip(counters_start, counters_end, strict=True)
        ],
        "cpu_s": {name: cpu_end[name] - cpu_start[name] for name in pids},
        "rss_idle": idle_rss,
        "rss_peak_window": sampler.window_peak,
        "rss_peak_total": dict(sampler.peak),
        "collector_backlog_spans": backlog,
        "collector_export_retries": retries,
        "totals_after_drain": totals,
        "drain_s": drained_s,
    }


def _merge(items: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        for key, value in item.items():
            out[key] = out.get(key, 0) + value
    return out


# --- the report -----------------------------------------------------------------------------------------------


def report(result: dict[str, Any]) -> None:
    seconds = result["seconds"]
    sample = result["sampling"]
    print(
        f"\n{result['mode']} behind {result['collector_config']}, exporting to Jaeger v2 (memory storage); shipped "
        f"gateway.yaml (fsync {result['fsync']}, sampling probability {sample.get('probability')}, decision_wait_s "
        f"{sample.get('decision_wait_s')}); {result['clients']} gRPC clients sending {result['batch_spans']}-span "
        f"requests for {seconds:.1f} s"
    )
    print(f"load average at start: {result['load_average_start']}; at end: {result['load_average_end']}")
    print(f"  ({SHARED_NOTE})")
    refusals = ", ".join(f"{n} {code}" for code, n in sorted(result["client_refusals"].items())) or "none"
    errors = ", ".join(f"{n} {code}" for code, n in sorted(result["client_errors"].items())) or "none"
    print(
        f"clients: the Collector accepted {result['client_accepted_spans'] / seconds:,.0f} spans/s "
        f"({result['client_accepted_spans']:,} spans); refusals backed off: {refusals} "
        f"({result['client_backoff_s']:.1f} s of back-off in all); dropped on other errors: {errors}"
    )

    print(
        "spans the Collector held (acknowledged, not yet at a gateway), once a second: "
        + ", ".join(f"{value:,.0f}" for value in result["collector_backlog_spans"])
        + f" (its queue holds {QUEUE_SPANS:,} per gateway: near that, the gateways set the pace and the clients"
        " were refused)"
    )

    header = f"{'process':<14}{'received/s':>12}{'exported/s':>12}{'refused':>9}{'CPU cores':>11}"
    header += f"{'RSS idle':>10}{'peak RSS':>10}{'peak to end':>13}  (MiB)"
    print("\n" + header)
    print("-" * len(header))

    def row(name: str, received: float | None, exported: float | None, refused: float | None, label: str = "") -> None:
        cells = [f"{label or name:<14}"]
        for value, width in ((received, 12), (exported, 12)):
            cells.append(f"{value / seconds:>{width},.0f}" if value is not None else " " * (width - 1) + "-")
        cells.append(f"{refused:>9,.0f}" if refused is not None else " " * 8 + "-")
        cells.append(f"{result['cpu_s'][name] / seconds:>11.2f}")
        for key, width in (("rss_idle", 10), ("rss_peak_window", 10), ("rss_peak_total", 13)):
            cells.append(f"{result[key][name] / MIB:>{width},.0f}")
        print("".join(cells))

    for index, figures in enumerate(result["gateways"]):
        row(f"gateway-{index}", figures["received"], figures["exported"], figures["refused"])
    row("collector", None, None, None)
    row("jaeger", None, None, None)
    row("clients", None, None, None, label="clients (here)")
    gateways = result["gateways"]
    if len(gateways) > 1:
        received = sum(g["received"] for g in gateways)
        exported = sum(g["exported"] for g in gateways)
        cores = sum(result["cpu_s"][f"gateway-{i}"] for i in range(len(gateways))) / seconds
        print(
            f"{'all gateways':<14}{received / seconds:>12,.0f}{exported / seconds:>12,.0f}{'':>9}{cores:>11.2f}"
            f"   (per gateway: {received / seconds / len(gateways):,.0f} spans/s at {cores / len(gateways):.2f} core)"
        )
    gateway_cpu = sum(result["cpu_s"][f"gateway-{i}"] for i in range(len(gateways)))
    if gateway_cpu:
        per_core = sum(g["received"] for g in gateways) / gateway_cpu
        print(f"gateway spans per CPU-second (received / gateway CPU): {per_core:,.0f}")
    total_cpu = sum(result["cpu_s"].values()) / seconds
    print(f"all processes together: {total_cpu:.2f} cores of {os.cpu_count()}")
    print(
        "received/exported: spans/s from each gateway's /metrics over the window; exported lags received by "
        "decision_wait_s. peak RSS: over the window; peak to end: including the drain."
    )
    totals = result["totals_after_drain"]
    received = sum(t.get("received", 0) for t in totals)
    exported = sum(t.get("exported", 0) for t in totals)
    kept = f"{exported / received:.1%}" if received else "-"
    print(
        f"after the drain ({result['drain_s']:.0f} s): the gateways received {received:,.0f} spans in all and "
        f"exported {exported:,.0f} to Jaeger (kept {kept})"
    )
    retries = result.get("collector_export_retries", [])
    if retries:
        reasons: dict[str, int] = {}
        for line in retries:
            reason = line.split("Exporting failed.", 1)[1].split("{", 1)[0].strip()
            try:
                reason += f" ({json.loads('{' + line.split('{', 1)[1])['error']})"
            except (ValueError, KeyError, IndexError):
                pass
            reasons[reason] = reasons.get(reason, 0) + 1
        summary = "; ".join(f"{count} x {reason}" for reason, count in reasons.items())
        print(f"  the Collector logged 'Exporting failed': {summary}")
    sent = result["client_accepted_spans"] + result["client_late_spans"]
    if received > sent:
        print(
            f"  {received - sent:,.0f} more than the Collector acknowledged: spans delivered twice, most likely parts "
            "of refused requests that the client sent again (the load-balancing exporter queues each gateway's share "
            "separately, so a request refused by one gateway's full queue may already be queued for the others)"
        )
    elif received < sent:
        print(f"  {sent - received:,.0f} fewer than the Collector acknowledged: still in it at the drain's limit")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--gateways", type=int, default=1, help="1: collector-gateway.yaml; more: the static list")
    parser.add_argument("--clients", type=int, default=2, help="client threads, one gRPC channel each")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the clients send (the window)")
    parser.add_argument("--drain", type=float, default=60.0, help="at most this long for the drain after the window")
    parser.add_argument("--keep", metavar="DIR", help="run in DIR and keep it (queues, configs) instead of a temp dir")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    missing = [name for name in (OTELCOL_ENV, JAEGER_ENV) if not binary(name)]
    if missing:
        parser.error(f"set {' and '.join(missing)}: run `bash deploy/build-go-tools`, its last two lines")
    if args.gateways < 1 or args.clients < 1:
        parser.error("--gateways and --clients must be at least 1")
    if args.keep:
        result = run(args, Path(args.keep))
    else:
        with tempfile.TemporaryDirectory(prefix="tokentrace-deployment-bench-") as directory:
            result = run(args, Path(directory))
    report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
