"""Added time per OpenAI call: one instrumentation setup, measured against an in-process fake API.

Run as ``python bench/workload.py --setup NAME --json`` (``bench/compare.py`` does this in one
virtualenv per setup) or import it and call :func:`run`. Nothing leaves the process: the OpenAI
client's HTTP transport is a ``MockTransport`` (``httpx`` for openai 1.x/2.x, ``httpx2`` for 3.x)
answering from pre-encoded bytes, spans go through a ``SimpleSpanProcessor`` into an exporter that
drops them, and metrics are aggregated for an ``InMemoryMetricReader``. So creating, filling and
ending spans and recording metrics costs what it costs in production; exporting costs nothing.

Setups: ``none`` (uninstrumented SDK), ``tokentrace``, ``otel-openai-v2``, ``openllmetry``,
``openinference``, ``openlit``. Each instrumentation runs with its own defaults (including whether
it captures message content), except where ``--no-content`` turns content capture off everywhere.

Cases:

- ``chat``: non-streamed ``chat.completions.create`` (sync), response with usage.
- ``stream``: ``stream=True`` with ``stream_options={"include_usage": True}``: 50 content chunks
  plus the usage chunk, fully iterated (sync).
- ``async_chat``: non-streamed ``AsyncOpenAI`` call, sequential awaits on one event loop.

Each case: warm-up calls, then timed loops of ``number`` calls (time.perf_counter_ns around the
loop, and the process's CPU time); a figure is the median of the loops' per-call means, in
microseconds. An instrumented setup is measured *paired* by default: the instrumentation's patches
are switched off and on between loops (:class:`Switch`), so loops of the bare SDK and of the
instrumented SDK alternate in one process and ``added`` is the median of the pairs' differences.
Under a shared machine's drifting load this is far steadier than subtracting two processes' figures
(``--unpaired`` measures only the current state, the way ``--setup none`` does).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

SETUPS = ("none", "tokentrace", "otel-openai-v2", "openllmetry", "openinference", "openlit")
CASES = ("chat", "stream", "async_chat")
STREAM_CONTENT_CHUNKS = 50
MODEL = "gpt-4o-mini"
MODEL_SNAPSHOT = "gpt-4o-mini-2024-07-18"
BASE_URL = "https://api.openai.com/v1"
MESSAGES = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Name three prime numbers and explain briefly why each one is prime."},
]
PROMPT_TOKENS = 31
COMPLETION_TOKENS = STREAM_CONTENT_CHUNKS

# Plain calls: warm-up calls, then ``DEFAULT_REPEAT`` timed loops (pairs of loops when paired) of
# ``DEFAULT_NUMBER`` calls. Short loops and many of them: on a shared machine the load changes
# within seconds, and the closer a baseline loop and an instrumented loop are in time, the more alike
# their conditions. A 50-chunk stream is several plain calls' work, so it gets an eighth of the
# calls. ``--quick`` keeps the loop length and does a quarter of the loops and warm-up.
DEFAULT_WARMUP = 200
DEFAULT_NUMBER = 25
DEFAULT_REPEAT = 80
STREAM_DIVISOR = 8
QUICK_DIVISOR = 4

# The distributions measured, for the report.
DISTRIBUTIONS = {
    "tokentrace": "tokentrace",
    "otel-openai-v2": "opentelemetry-instrumentation-openai-v2",
    "openllmetry": "opentelemetry-instrumentation-openai",
    "openinference": "openinference-instrumentation-openai",
    "openlit": "openlit",
}


class SetupUnavailable(RuntimeError):
    """The setup cannot run here (package missing, or it cannot be isolated from the network)."""


# -- canned responses -----------------------------------------------------------------------------


def _chat_completion_body() -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench0000000000000000000001",
            "object": "chat.completion",
            "created": 1_730_000_000,
            "model": MODEL_SNAPSHOT,
            "system_fingerprint": "fp_bench01",
            "service_tier": "default",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "2, 3 and 5: each has no divisor other than 1 and itself.",
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": 17,
                "total_tokens": PROMPT_TOKENS + 17,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
        },
        separators=(",", ":"),
    ).encode()


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _stream_events() -> tuple[list[bytes], bytes]:
    """The 50 content chunks (then ``[DONE]``), and the usage chunk sent before ``[DONE]`` on request."""
    base = {
        "id": "chatcmpl-bench0000000000000000000002",
        "object": "chat.completion.chunk",
        "created": 1_730_000_000,
        "model": MODEL_SNAPSHOT,
        "system_fingerprint": "fp_bench01",
        "service_tier": "default",
    }
    events = []
    for index in range(STREAM_CONTENT_CHUNKS):
        delta: dict[str, Any] = {"content": f" tok{index}"}
        if index == 0:
            delta = {"role": "assistant", "content": "", "refusal": None}
        last = index == STREAM_CONTENT_CHUNKS - 1
        if last:
            delta = {}
        events.append(
            _sse(
                {
                    **base,
                    "choices": [
                        {"index": 0, "delta": delta, "logprobs": None, "finish_reason": "stop" if last else None}
                    ],
                    "usage": None,
                }
            )
        )
    usage_chunk = _sse(
        {
            **base,
            "choices": [],
            "usage": {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": COMPLETION_TOKENS,
                "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
            },
        }
    )
    return events, usage_chunk


CHAT_BODY = _chat_completion_body()
STREAM_EVENTS, USAGE_EVENT = _stream_events()
DONE_EVENT = b"data: [DONE]\n\n"
STREAM_WITHOUT_USAGE = (*STREAM_EVENTS, DONE_EVENT)
STREAM_WITH_USAGE = (*STREAM_EVENTS, USAGE_EVENT, DONE_EVENT)


def http_module() -> Any:
    """The HTTP library the installed openai is built on: ``httpx2`` (openai 3.x) or ``httpx``."""
    base_client = importlib.import_module("openai._base_client")
    module = getattr(base_client, "httpx2", None) or getattr(base_client, "httpx", None)
    if module is None:  # pragma: no cover - a future SDK
        raise RuntimeError("cannot tell which HTTP library openai uses")
    return module


def mock_clients() -> tuple[Any, Any]:
    """A sync and an async OpenAI client whose HTTP transport answers in-process."""
    import openai

    http = http_module()

    class EventStream(http.SyncByteStream, http.AsyncByteStream):  # type: ignore[misc, name-defined]
        """The SSE body delivered one event per read, as a network stream would."""

        def __init__(self, events: Sequence[bytes]) -> None:
            self._events = events

        def __iter__(self) -> Iterator[bytes]:
            return iter(self._events)

        async def __aiter__(self):  # type: ignore[override]
            for event in self._events:
                yield event

    json_headers = {"content-type": "application/json"}
    sse_headers = {"content-type": "text/event-stream"}

    def handler(request: Any) -> Any:
        body = request.content
        if b'"stream":true' in body:
            events = STREAM_WITH_USAGE if b'"include_usage":true' in body else STREAM_WITHOUT_USAGE
            return http.Response(200, headers=sse_headers, stream=EventStream(events))
        return http.Response(200, headers=json_headers, content=CHAT_BODY)

    transport = http.MockTransport(handler)
    sync_client = openai.OpenAI(
        api_key="sk-bench", base_url=BASE_URL, max_retries=0, http_client=http.Client(transport=transport)
    )
    async_client = openai.AsyncOpenAI(
        api_key="sk-bench",
        base_url=BASE_URL,
        max_retries=0,
        http_client=http.AsyncClient(transport=transport),
    )
    return sync_client, async_client


# -- telemetry ------------------------------------------------------------------------------------


class Telemetry:
    """Real SDK providers whose output goes nowhere: spans are dropped, metrics kept in memory."""

    def __init__(self) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

        class DroppingSpanExporter(SpanExporter):
            def __init__(self) -> None:
                self.count = 0

            def export(self, spans: Sequence[Any]) -> SpanExportResult:
                self.count += len(spans)
                return SpanExportResult.SUCCESS

        self.exporter = DroppingSpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.logger_provider = None
        try:  # events/logs some instrumentations emit: a real provider with no processor
            from opentelemetry.sdk._logs import LoggerProvider

            self.logger_provider = LoggerProvider()
        except ImportError:  # pragma: no cover - old SDK
            pass

    def install_globally(self) -> None:
        """Instrumentations that read the global providers (openlit only ever does) find ours."""
        from opentelemetry import metrics, trace

        trace.set_tracer_provider(self.tracer_provider)
        metrics.set_meter_provider(self.meter_provider)
        if self.logger_provider is not None:
            from opentelemetry import _logs

            _logs.set_logger_provider(self.logger_provider)

    def metric_points(self) -> int:
        data = self.reader.get_metrics_data()
        if data is None:
            return 0
        return sum(
            len(metric.data.data_points)
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        )


# -- setups ---------------------------------------------------------------------------------------


def _version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _offline_tiktoken() -> None:
    """tokentrace prefetches tiktoken encodings at instrument(); give it the files, as the tests do."""
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        return
    try:
        import gzip
        import hashlib

        import bpe_openai.data  # ships the encodings; installed by compare.py
    except ImportError:
        return
    urls = {
        "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    }
    cache = Path.home() / ".cache" / "tokentrace-tiktoken"
    cache.mkdir(parents=True, exist_ok=True)
    source = Path(bpe_openai.data.__file__).parent
    for name, url in urls.items():
        target = cache / hashlib.sha1(url.encode()).hexdigest()
        if not target.exists():
            target.write_bytes(gzip.decompress((source / f"{name}.tiktoken.gz").read_bytes()))
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)


def _content_env(capture: bool | None) -> None:
    """``--no-content``: the variables each instrumentation reads to leave message content out."""
    if capture is not False:
        return
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "false"  # tokentrace, otel-v2, openlit
    os.environ["TRACELOOP_TRACE_CONTENT"] = "false"  # openllmetry
    os.environ["OPENINFERENCE_HIDE_INPUTS"] = "true"  # openinference
    os.environ["OPENINFERENCE_HIDE_OUTPUTS"] = "true"


def _openlit_pricing_file() -> str:
    """openlit downloads its price list at init unless given a file: give it one (same model)."""
    path = Path(tempfile.gettempdir()) / "tokentrace-bench-openlit-pricing.json"
    # USD per 1k tokens, openlit's unit; gpt-4o-mini's list price.
    prices = {
        "chat": {
            MODEL: {"promptPrice": 0.00015, "completionPrice": 0.0006},
            MODEL_SNAPSHOT: {"promptPrice": 0.00015, "completionPrice": 0.0006},
        }
    }
    path.write_text(json.dumps(prices))
    return str(path)


def _no_network_exporters() -> None:
    for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    ):
        os.environ.pop(name, None)
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER"):
        os.environ[name] = "none"


def instrument(setup: str, telemetry: Telemetry, *, capture: bool | None = None) -> dict[str, Any]:
    """Instrument openai for ``setup``; return notes for the report (versions, options used)."""
    if setup not in SETUPS:
        raise ValueError(f"unknown setup {setup!r}; choose from {', '.join(SETUPS)}")
    _no_network_exporters()
    _content_env(capture)
    telemetry.install_globally()
    notes: dict[str, Any] = {}
    if setup == "none":
        return notes
    distribution = DISTRIBUTIONS[setup]
    notes["version"] = _version(distribution)
    if notes["version"] is None:
        raise SetupUnavailable(f"{distribution} is not installed in {sys.prefix}")
    providers = {"tracer_provider": telemetry.tracer_provider, "meter_provider": telemetry.meter_provider}
    if setup == "tokentrace":
        _offline_tiktoken()
        from tokentrace.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(**providers)
    elif setup == "otel-openai-v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(**providers, logger_provider=telemetry.logger_provider)
    elif setup == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(**providers)
    elif setup == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(**providers)
    elif setup == "openlit":
        notes.update(_instrument_openlit(capture))
    _settle()
    return notes


def _instrument_openlit(capture: bool | None) -> dict[str, Any]:
    """openlit.init with only its OpenAI instrumentor, on our (global) providers, no downloads.

    init() reuses an SDK TracerProvider/MeterProvider/LoggerProvider already set globally instead
    of building exporters; ``pricing_json`` as a local file stops the price-list download; every
    instrumentor but ``openai`` is disabled by name; GPU and system metrics stay off (defaults).
    """
    try:
        import openlit
        from openlit._instrumentors import MODULE_NAME_MAP
    except ImportError as exc:
        raise SetupUnavailable(f"openlit cannot be imported: {exc}") from exc
    disabled = sorted(name for name in MODULE_NAME_MAP if name != "openai")
    kwargs: dict[str, Any] = {
        "pricing_json": _openlit_pricing_file(),
        "disabled_instrumentors": disabled,
        "collect_gpu_stats": False,
        "disable_batch": True,
    }
    if capture is False:
        kwargs["capture_message_content"] = False
    attempts_before = len(NETWORK_ATTEMPTS)
    openlit.init(**kwargs)
    if len(NETWORK_ATTEMPTS) > attempts_before:
        attempts = NETWORK_ATTEMPTS[attempts_before:]
        raise SetupUnavailable(f"openlit.init tried to reach the network: {attempts}")
    return {"openlit_disabled_instrumentors": len(disabled)}


NETWORK_ATTEMPTS: list[str] = []


def refuse_network() -> None:
    """Make every outgoing connection in this process fail at once, and remember it.

    The fake API never opens a socket, so a connection attempt is an instrumentation phoning out
    (a price list, a telemetry ping): it must not reach the network nor stall a timed loop.
    """
    import socket

    def refuse(sock: Any, address: Any, *args: Any) -> Any:
        NETWORK_ATTEMPTS.append(repr(address))
        raise OSError(f"tokentrace bench: network disabled (connect to {address!r})")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse  # type: ignore[method-assign]
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in (None, "localhost", "127.0.0.1", "::1"):
            NETWORK_ATTEMPTS.append(repr(host))
            raise socket.gaierror(f"tokentrace bench: network disabled (resolve {host!r})")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]


def _settle(timeout: float = 60.0) -> None:
    """Let background work started by instrument() (tokentrace's tiktoken prefetch) finish first."""
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and thread.name.startswith("tokentrace-"):
            thread.join(max(0.0, deadline - time.monotonic()))


# -- switching the instrumentation off and on ------------------------------------------------------


_MISSING = object()


def import_openai_modules() -> None:
    """Import the SDK's resource and helper modules up front (the SDK loads them lazily), so every
    module an instrumentation patches exists before the ``Switch`` snapshot."""
    import pkgutil

    for package_name in ("openai.resources", "openai.lib"):
        try:
            package = importlib.import_module(package_name)
        except ImportError:
            continue
        for info in pkgutil.walk_packages(package.__path__, package_name + "."):
            with contextlib.suppress(Exception):  # optional extras (numpy, sounddevice...) may be missing
                importlib.import_module(info.name)


def _openai_owners() -> dict[int, Any]:
    """Every loaded ``openai`` module and every class defined in one: where patches live."""
    owners: dict[int, Any] = {}
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "openai" or name.startswith("openai.")):
            continue
        owners[id(module)] = module
        for value in list(vars(module).values()):
            if isinstance(value, type) and (getattr(value, "__module__", "") or "").startswith("openai"):
                owners[id(value)] = value
    return owners


class Switch:
    """Turns an instrumentation off and on again by swapping back what it patched.

    ``instrument()`` is bracketed by two snapshots of the attributes of every ``openai`` module and
    class; every attribute it replaced (wrapt wrappers on ``create``, ``request``, ...) is recorded
    and can be put back or re-applied in microseconds. This needs nothing from the library (openlit's
    ``uninstrument`` is a no-op) and keeps everything else identical: same process, same clients,
    same warmed caches, so the baseline and the instrumented loops can alternate.
    """

    def __init__(self) -> None:
        self._before: dict[int, tuple[Any, dict[str, Any]]] = {}
        self.patches: list[tuple[Any, str, Any, Any]] = []
        self.on = True

    def snapshot(self) -> None:
        self._before = {key: (owner, dict(vars(owner))) for key, owner in _openai_owners().items()}

    def diff(self) -> None:
        for owner, before in self._before.values():
            after = dict(vars(owner))
            for name, new in after.items():
                old = before.get(name, _MISSING)
                if new is old:
                    continue
                # A class can gain a wrapper over an inherited method (openinference wraps
                # ``OpenAI.request``); a module gaining a name is a submodule import, not a patch.
                if old is _MISSING and not isinstance(owner, type):
                    continue
                self.patches.append((owner, name, old, new))
        self._before = {}

    def set(self, on: bool) -> None:
        if on == self.on:
            return
        for owner, name, old, new in self.patches:
            if on:
                setattr(owner, name, new)
            elif old is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, old)
        self.on = on

    def describe(self) -> list[str]:
        return sorted(
            f"{getattr(owner, '__qualname__', getattr(owner, '__name__', '?'))}.{name}"
            for owner, name, _, _ in self.patches
        )


# -- measuring ------------------------------------------------------------------------------------


def _time_loop(call: Callable[[], Any], number: int) -> tuple[float, float]:
    """µs per call over ``number`` calls: wall clock (perf_counter) and this process's CPU time."""
    perf, cpu = time.perf_counter_ns, time.process_time_ns
    started, started_cpu = perf(), cpu()
    for _ in range(number):
        call()
    ended, ended_cpu = perf(), cpu()
    return (ended - started) / number / 1000.0, (ended_cpu - started_cpu) / number / 1000.0


async def _time_loop_async(call: Callable[[], Any], number: int) -> tuple[float, float]:
    perf, cpu = time.perf_counter_ns, time.process_time_ns
    started, started_cpu = perf(), cpu()
    for _ in range(number):
        await call()
    ended, ended_cpu = perf(), cpu()
    return (ended - started) / number / 1000.0, (ended_cpu - started_cpu) / number / 1000.0


def iterations(
    case: str, quick: bool = False, number: int | None = None, warmup: int | None = None, repeat: int | None = None
) -> tuple[int, int, int]:
    """(warm-up calls, timed calls per loop, loops) for ``case``; ``number`` and ``warmup`` are the
    plain calls' counts, of which a stream gets an eighth."""
    divisor = QUICK_DIVISOR if quick else 1
    warm = warmup if warmup is not None else DEFAULT_WARMUP // divisor
    timed = number if number is not None else DEFAULT_NUMBER
    loops = repeat if repeat is not None else DEFAULT_REPEAT // divisor
    if case == "stream":
        warm, timed = warm // STREAM_DIVISOR, timed // STREAM_DIVISOR
    return max(1, warm), max(1, timed), max(1, loops)


def _median(values: Sequence[float]) -> float:
    return round(statistics.median(values), 3)


def measure(
    cases: Sequence[str] = CASES,
    *,
    repeat: int | None = None,
    quick: bool = False,
    number: int | None = None,
    warmup: int | None = None,
    telemetry: Telemetry | None = None,
    switch: Switch | None = None,
) -> dict[str, Any]:
    """Time each case.

    Without a ``switch``: ``repeat`` loops of the current state. With one: ``repeat`` pairs of loops,
    the uninstrumented baseline and the instrumented SDK alternating (ABBA order, so a drift in the
    machine's speed hits both alike); ``added`` is the median of the pairs' differences. Every
    loop's exported span count is checked: zero for a baseline loop, at least one per call for an
    instrumented one, so a switch that failed to switch cannot pass unnoticed.
    """
    sync_client, async_client = mock_clients()

    def chat() -> Any:
        return sync_client.chat.completions.create(model=MODEL, messages=MESSAGES)

    def stream() -> int:
        chunks = 0
        for _ in sync_client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        ):
            chunks += 1
        return chunks

    def async_chat() -> Any:
        return async_client.chat.completions.create(model=MODEL, messages=MESSAGES)

    # What the application sees is the same with and without instrumentation.
    delivered = stream()
    if delivered != STREAM_CONTENT_CHUNKS + 1:
        raise RuntimeError(f"stream delivered {delivered} chunks, expected {STREAM_CONTENT_CHUNKS + 1}")

    states: tuple[bool, ...] = (False, True) if switch is not None else (True,)
    document: dict[str, Any] = {
        "results": {},
        "results_cpu": {},
        "runs": {},
        "spans_per_call": {},
        "iterations": {},
        "problems": [],
    }
    if switch is not None:
        for key in ("baseline", "baseline_cpu", "added", "added_cpu", "baseline_runs"):
            document[key] = {}
    for case in cases:
        warm, timed, loops = iterations(case, quick, number, warmup, repeat)
        document["iterations"][case] = {"warmup": warm, "number": timed, "loops": loops}
        # ABBA: pair 0 runs baseline then instrumented, pair 1 the reverse, and so on.
        order = [state for pair in range(loops) for state in (states if pair % 2 == 0 else states[::-1])]
        runner = _Runner(switch, telemetry, states, warm, timed, order)
        if case == "async_chat":
            asyncio.run(runner.run_async(async_chat))
        else:
            runner.run(chat if case == "chat" else stream)
        if switch is not None:
            switch.set(True)

        measured = runner.timings[True]
        document["results"][case] = _median([wall for wall, _ in measured])
        document["results_cpu"][case] = _median([cpu for _, cpu in measured])
        document["runs"][case] = [round(wall, 3) for wall, _ in measured]
        document["spans_per_call"][case] = round(min(runner.spans[True]), 3)
        if switch is not None:
            base = runner.timings[False]
            pairs = list(zip(measured, base, strict=True))
            document["baseline"][case] = _median([wall for wall, _ in base])
            document["baseline_cpu"][case] = _median([cpu for _, cpu in base])
            document["baseline_runs"][case] = [round(wall, 3) for wall, _ in base]
            document["added"][case] = _median([on[0] - off[0] for on, off in pairs])
            document["added_cpu"][case] = _median([on[1] - off[1] for on, off in pairs])
            if max(runner.spans[False]) > 0:
                document["problems"].append(f"{case}: spans recorded with the instrumentation switched off")
            if min(runner.spans[True]) < 1:
                document["problems"].append(f"{case}: fewer spans than calls with the instrumentation on")
    return document


class _Runner:
    """The loops of one case: warm each state up, then time the loops in ``order``."""

    def __init__(
        self,
        switch: Switch | None,
        telemetry: Telemetry | None,
        states: tuple[bool, ...],
        warm: int,
        timed: int,
        order: list[bool],
    ) -> None:
        self.switch, self.telemetry = switch, telemetry
        self.states, self.warm, self.timed, self.order = states, warm, timed, order
        self.timings: dict[bool, list[tuple[float, float]]] = {state: [] for state in states}
        self.spans: dict[bool, list[float]] = {state: [] for state in states}

    def _set(self, state: bool) -> None:
        if self.switch is not None:
            self.switch.set(state)

    def _exported(self) -> int:
        return self.telemetry.exporter.count if self.telemetry is not None else 0

    def _collect(self, index: int) -> None:
        """A full collection before each pair (cheap: warm-up ended with ``gc.freeze``), so garbage
        of one pair is not collected inside the next; collections within a loop are the calls' own."""
        if index % len(self.states) == 0:
            gc.collect()

    def _warmed(self) -> None:
        gc.collect()
        gc.freeze()  # the SDK's and instrumentations' long-lived objects: out of every later collection

    def run(self, call: Callable[[], Any]) -> None:
        for state in self.states:
            self._set(state)
            for _ in range(self.warm):
                call()
        self._warmed()
        for index, state in enumerate(self.order):
            self._collect(index)
            self._set(state)
            before = self._exported()
            self.timings[state].append(_time_loop(call, self.timed))
            self.spans[state].append((self._exported() - before) / self.timed)

    async def run_async(self, call: Callable[[], Any]) -> None:
        for state in self.states:
            self._set(state)
            for _ in range(self.warm):
                await call()
        self._warmed()
        for index, state in enumerate(self.order):
            self._collect(index)
            self._set(state)
            before = self._exported()
            self.timings[state].append(await _time_loop_async(call, self.timed))
            self.spans[state].append((self._exported() - before) / self.timed)


def run(
    setup: str,
    cases: Sequence[str] = CASES,
    *,
    repeat: int | None = None,
    quick: bool = False,
    number: int | None = None,
    warmup: int | None = None,
    capture: bool | None = None,
    paired: bool = True,
) -> dict[str, Any]:
    """Instrument for ``setup`` in this process and measure; the JSON document ``--json`` prints.

    With ``paired`` (the default) an instrumented setup is measured against the uninstrumented SDK
    in the same process, loops alternating; ``--setup none`` measures the SDK alone.
    """
    import openai

    document: dict[str, Any] = {
        "setup": setup,
        "openai_version": openai.__version__,
        "http_library": http_module().__name__,
        "python": platform.python_version(),
        "content_capture": "defaults" if capture is None else ("on" if capture else "off"),
    }
    refuse_network()
    telemetry = Telemetry()
    switch = Switch() if paired and setup != "none" else None
    if switch is not None:
        mock_clients()  # import every module a call needs before the snapshot, so none is new after it
        import_openai_modules()
        switch.snapshot()
    try:
        document["notes"] = instrument(setup, telemetry, capture=capture)
    except SetupUnavailable as exc:
        document["skipped"] = str(exc)
        document["results"] = {}
        return document
    if switch is not None:
        switch.diff()
        document["patched"] = switch.describe()
        if not switch.patches:
            document["problems"] = ["the instrumentation patched nothing in openai: cannot pair"]
            switch = None
    measured = measure(
        cases, repeat=repeat, quick=quick, number=number, warmup=warmup, telemetry=telemetry, switch=switch
    )
    measured["problems"] = document.get("problems", []) + measured["problems"]
    document.update(measured)
    document["metric_points"] = telemetry.metric_points()
    document["network_attempts"] = NETWORK_ATTEMPTS
    return document


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setup", choices=SETUPS, default="none")
    parser.add_argument("--case", action="append", choices=CASES, help="repeatable; default: all cases")
    parser.add_argument("--repeat", type=int, help=f"timed loops (pairs if paired); default {DEFAULT_REPEAT}")
    parser.add_argument(
        "--number", type=int, help=f"calls per timed loop, plain cases (default {DEFAULT_NUMBER}; stream: 1/8)"
    )
    parser.add_argument(
        "--warmup", type=int, help=f"warm-up calls, plain cases (default {DEFAULT_WARMUP}; stream: an eighth)"
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"1/{QUICK_DIVISOR} of the loops and warm-up, for a smoke run"
    )
    parser.add_argument("--no-content", action="store_true", help="message-content capture off everywhere")
    parser.add_argument(
        "--unpaired", action="store_true", help="measure only the instrumented SDK (no in-process baseline loops)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document (for compare.py)")
    args = parser.parse_args(argv)

    document = run(
        args.setup,
        args.case or CASES,
        repeat=args.repeat,
        quick=args.quick,
        number=args.number,
        warmup=args.warmup,
        capture=False if args.no_content else None,
        paired=not args.unpaired,
    )
    if args.json:
        print(json.dumps(document))
        return 0
    print(f"setup={document['setup']} openai={document['openai_version']} ({document['http_library']})")
    if "skipped" in document:
        print(f"  skipped: {document['skipped']}")
        return 0
    for case, value in document["results"].items():
        line = f"  {case:<11} {value:10.1f} µs/call (cpu {document['results_cpu'][case]:.1f})"
        if "added" in document:
            line += (
                f"  baseline {document['baseline'][case]:.1f}  added {document['added'][case]:+.1f} µs"
                f" (cpu {document['added_cpu'][case]:+.1f})"
            )
        print(line + f"  spans/call {document['spans_per_call'][case]}")
    for problem in document.get("problems", []):
        print(f"  PROBLEM: {problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
