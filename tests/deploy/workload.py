"""The application of the deployment tests: the real ``openai`` SDK, instrumented by tokentrace, calling the
local simulator, exporting OTLP/gRPC with the OpenTelemetry SDK to the Collector.

Each request is one trace: a server span around one to four chat calls. The recipe (:func:`recipe`)
makes some traces fail (a 500 from the simulator), some truncated (``max_tokens`` reached: the gateway
flags it), some expensive (a long prompt to gpt-4o) and some slow (the simulator waits), so that the
shipped sampling policies keep some traces and drop others. Trace and span ids come from a seeded
generator, so the same requests give the same trace ids in every run: one gateway and three gateways
can be fed the same input. :class:`App` remembers what the application did (its spans, the usage of
each response, what the exporter had acknowledged), and :func:`expected_kept` computes the kept set
from that alone, with the sampling settings, without the gateway's code.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import openai
from genai_prices import Usage as CatalogueUsage
from genai_prices import calc_price
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, StatusCode

from tokentrace.demo.simulator import Simulator
from tokentrace.instrumentation.openai import OpenAIInstrumentor

LONG_PROMPT_WORDS = 30_000  # gpt-4o at 2.50 USD / M input tokens: about 0.075 USD, over the 0.05 threshold
SLOW_DELAY_S = 1.2


def recipe(index: int, *, light: bool = False) -> list[dict[str, Any]]:
    """The chat calls of request ``index``: ``create()`` keyword arguments plus ``kind``; ``light``
    leaves out the expensive and slow calls (for steady load)."""
    calls: list[dict[str, Any]] = [
        {"kind": "plain", "model": "gpt-4o-mini", "messages": _user(f"request {index}: where is my order?")}
    ]
    if index % 2:
        calls.append({"kind": "plain", "model": "gpt-4.1-mini", "messages": _user(f"request {index}: summarise it")})
    if index % 5 == 1:
        calls.append(
            {
                "kind": "error",
                "model": "gpt-4o-mini",
                "messages": _user(f"request {index}: fail"),
                "extra_headers": {"x-sim-fault": "error-500"},
            }
        )
    if index % 6 == 2:
        calls.append(
            {"kind": "truncated", "model": "gpt-4o-mini", "messages": _user(f"request {index}: long"), "max_tokens": 3}
        )
    if index % 7 == 3 and not light:
        text = " ".join(["tokens"] * LONG_PROMPT_WORDS)
        calls.append({"kind": "expensive", "model": "gpt-4o", "messages": _user(f"request {index}: {text}")})
    if index % 13 == 4 and not light:
        calls.append(
            {
                "kind": "slow",
                "model": "gpt-4o-mini",
                "messages": _user(f"request {index}: slow"),
                "extra_headers": {"x-sim-fault": "slow", "x-sim-delay": str(SLOW_DELAY_S)},
            }
        )
    return calls


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


class SeededIds(IdGenerator):
    """Trace and span ids from a seeded generator: the same requests get the same ids in every run."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.lock = threading.Lock()

    def generate_span_id(self) -> int:
        with self.lock:
            return self.random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        with self.lock:
            return self.random.getrandbits(128) or 1


class Acknowledged(SpanExporter):
    """Wraps the OTLP exporter; remembers the span ids of every batch the Collector acknowledged, with when."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.acked: dict[str, float] = {}
        self.failed = 0
        self.lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        now = time.monotonic()
        with self.lock:
            if result is SpanExportResult.SUCCESS:
                for span in spans:
                    self.acked[f"{span.context.span_id:016x}"] = now
            else:
                self.failed += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


@dataclass
class Call:
    """One chat call as the application saw it."""

    trace_id: str
    kind: str
    model: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int = 0
    finish_reason: str | None = None
    failed: bool = False

    @property
    def cost(self) -> float | None:
        """genai-prices' own price for the usage the simulator reported (None for a failed call)."""
        if self.input_tokens is None:
            return None
        price = calc_price(
            CatalogueUsage(
                input_tokens=self.input_tokens,
                output_tokens=self.output_tokens,
                cache_read_tokens=self.cached_tokens or None,
            ),
            self.model,
            provider_id="openai",
        )
        return float(price.total_price)


@dataclass
class Request:
    trace_id: str
    index: int
    calls: list[Call] = field(default_factory=list)
    started: float = 0.0  # monotonic
    ended: float = 0.0


class App:
    """The instrumented application: ``request(i)`` runs request ``i`` of :func:`recipe` as one trace."""

    def __init__(self, collector_endpoint: str, service: str, simulator: Simulator, *, seed: int = 1) -> None:
        self.memory = InMemorySpanExporter()
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": service}), id_generator=SeededIds(seed)
        )
        self.provider.add_span_processor(SimpleSpanProcessor(self.memory))
        self.exporter = Acknowledged(OTLPSpanExporter(endpoint=collector_endpoint, insecure=True, timeout=30))
        self.provider.add_span_processor(
            BatchSpanProcessor(self.exporter, schedule_delay_millis=100, max_export_batch_size=128)
        )
        self.instrumentor = OpenAIInstrumentor()
        if self.instrumentor.is_instrumented_by_opentelemetry:
            self.instrumentor.uninstrument()
        self.instrumentor.instrument(tracer_provider=self.provider, meter_provider=MeterProvider())
        self.client = openai.OpenAI(base_url=simulator.base_url, api_key="sk-test", max_retries=0)
        self.tracer = self.provider.get_tracer("deploy-test-app")
        self.requests: dict[str, Request] = {}
        self.lock = threading.Lock()

    def request(self, index: int, *, light: bool = False, pause_s: float = 0.0) -> Request:
        """Request ``index`` of :func:`recipe` as one trace; ``pause_s`` between calls (the app thinking)
        makes the trace last long enough that its spans leave in several export batches."""
        with self.tracer.start_as_current_span(f"handle request {index}", kind=SpanKind.SERVER) as root:
            request = Request(f"{root.get_span_context().trace_id:032x}", index, started=time.monotonic())
            for number, spec in enumerate(recipe(index, light=light)):
                if number and pause_s:
                    time.sleep(pause_s)
                kwargs = {key: value for key, value in spec.items() if key != "kind"}
                call = Call(request.trace_id, spec["kind"], spec["model"])
                try:
                    response = self.client.chat.completions.create(**kwargs)
                except openai.APIStatusError:
                    call.failed = True
                else:
                    usage = response.usage
                    assert usage is not None
                    call.input_tokens, call.output_tokens = usage.prompt_tokens, usage.completion_tokens
                    details = usage.prompt_tokens_details
                    call.cached_tokens = (details.cached_tokens or 0) if details else 0
                    call.finish_reason = response.choices[0].finish_reason
                request.calls.append(call)
        request.ended = time.monotonic()
        with self.lock:
            self.requests[request.trace_id] = request
        return request

    def run(self, count: int, *, start: int = 0, interval_s: float = 0.0, light: bool = False) -> None:
        for index in range(start, start + count):
            began = time.monotonic()
            self.request(index, light=light)
            if interval_s:
                time.sleep(max(0.0, interval_s - (time.monotonic() - began)))

    def close(self) -> None:
        assert self.provider.force_flush(60_000), "the app's exporter did not flush"
        self.provider.shutdown()
        if self.instrumentor.is_instrumented_by_opentelemetry:
            self.instrumentor.uninstrument()
        self.client.close()

    def spans(self) -> dict[str, list[ReadableSpan]]:
        """What the application emitted, by trace id (hex)."""
        out: dict[str, list[ReadableSpan]] = {}
        for span in self.memory.get_finished_spans():
            out.setdefault(f"{span.context.trace_id:032x}", []).append(span)
        return out


# --- what the sampling settings keep, computed from what the application did ----------------------------------


def keep_reason(spans: Sequence[ReadableSpan], calls: Sequence[Call], sample: Mapping[str, Any]) -> str | None:
    """The policy that keeps this trace under ``sample`` (the gateway's ``sample`` settings), in the
    gateway's order (errors, flags, latency, cost, probability), or None when it is dropped."""
    if sample.get("keep_errors", True) and any(span.status.status_code is StatusCode.ERROR for span in spans):
        return "error"
    if sample.get("keep_flagged", True) and any(
        call.finish_reason == "length" or call.output_tokens == 0 for call in calls
    ):
        return "flagged"
    latency = sample.get("latency_threshold_s")
    extent = max(span.end_time for span in spans) - min(span.start_time for span in spans)
    if latency is not None and extent > latency * 1e9:
        return "latency"
    threshold = sample.get("cost_threshold_usd")
    costs = [call.cost for call in calls if call.cost is not None]
    if threshold is not None and costs and sum(costs) >= threshold:
        return "cost"
    probability = float(sample.get("probability", 1.0))
    if probability > 0:
        # OTEP 235: the trace id's 56 low bits against the rejection threshold round((1 - p) * 2**56)
        rejection = round((1 - probability) * (1 << 56))
        if (spans[0].context.trace_id & ((1 << 56) - 1)) >= rejection:
            return "probabilistic"
    return None


def expected_kept(app: App, sample: Mapping[str, Any]) -> dict[str, str]:
    """Trace id -> the reason it is kept, for the traces the sampling settings keep."""
    spans = app.spans()
    kept = {}
    for trace_id, request in app.requests.items():
        reason = keep_reason(spans[trace_id], request.calls, sample)
        if reason:
            kept[trace_id] = reason
    return kept


def current_trace_id() -> str:
    return f"{trace.get_current_span().get_span_context().trace_id:032x}"
