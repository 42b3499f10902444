"""The fault-injection contract every instrumented SDK shares (modelled on ``tests/test_fault_injection.py``).

Each case makes one tokentrace hook raise (:class:`Fault`), then runs a workload twice: successfully and
failing in the SDK (``error-429``, no retries), first uninstrumented as the baseline, then instrumented.
The application must see the same results and the same exception; the fault must be counted in
``tokentrace.core.safety.internal_errors``; the span must still end where the fault allows it.

A provider's test module describes how to drive its SDK (:class:`FaultHarness`) and its faults; the
runners :func:`run_sync_fault` / :func:`run_async_fault` do the rest.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

import tokentrace
from tokentrace.core import semconv
from tokentrace.core.safety import internal_errors

PER_CHUNK = -1  # expected count: once for every chunk of the stream
AT_LEAST_ONCE = 0  # expected count: one or more (an unended stream retries when it is collected)
CAPTURE = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"}
DESCRIBE = {"describing the request": 1}
READING = {"reading the response": 1}
FAILED_CALL = {"recording a failed call": 1}
STREAM_END = {"ending a stream": AT_LEAST_ONCE}


class InjectedFault(RuntimeError):
    """What an injected hook raises: never an exception the application could raise itself."""


def boom(*args: Any, **kwargs: Any) -> Any:
    raise InjectedFault("injected into a tokentrace hook")


def on(owner: Any, name: str) -> Callable[[pytest.MonkeyPatch], None]:
    """A fault making ``owner.name`` (a function, method or attribute) raise."""
    return lambda mp: mp.setattr(owner, name, boom)


def inject_function(
    monkeypatch: pytest.MonkeyPatch, module: Any, name: str, holder: Any, operations: Iterable[str]
) -> None:
    """Make ``module.name`` raise wherever it is referenced, including the dataclass ``Operation``
    objects ``holder.<operation>`` that took the function itself at import time (call before
    instrumenting, or the wrappers keep the original)."""
    original = getattr(module, name)
    monkeypatch.setattr(module, name, boom)
    for operation_name in operations:
        operation = getattr(holder, operation_name)
        changes = {f.name: boom for f in dataclasses.fields(operation) if getattr(operation, f.name) is original}
        if changes:
            monkeypatch.setattr(holder, operation_name, dataclasses.replace(operation, **changes))


@dataclass(frozen=True)
class Fault:
    id: str
    inject: Callable[[pytest.MonkeyPatch], None]
    workload: str  # what the provider's harness runs
    counted: dict[str, int]  # internal_errors places the successful call adds to
    counted_on_error: dict[str, int]  # ... and the failing SDK call (empty: the hook isn't reached)
    spans: int = 1  # LLM spans the successful call leaves (0: untraced, or the span could not end)
    spans_on_error: int = 1
    error_status: bool = True  # the failing call's span carries the SDK's error
    env: dict[str, str] = field(default_factory=dict)


def recorder_faults(chat: str, stream: str, *, finish_on_error: dict[str, int] = STREAM_END) -> list[Fault]:
    """The faults in the shared recorder every provider goes through: pricing, content capture of the
    input (``_content.chat_input_messages``), metrics, and ending a stream; ``chat`` and ``stream`` name
    the provider's non-streamed and streamed workloads, ``finish_on_error`` what a stream's failing
    call counts when ``Recorder.finish`` raises."""
    from tokentrace.core import pricing
    from tokentrace.core.recorder import Recorder
    from tokentrace.instrumentation.openai import _content

    return [
        Fault("price", on(pricing.PriceBook, "cost"), chat, {"pricing": 1}, {"pricing": 1}),
        Fault("price-stream", on(pricing.PriceBook, "cost"), stream, {"pricing": 1}, {"pricing": 1}),
        Fault(
            "content",
            on(_content, "chat_input_messages"),
            chat,
            {"capturing content": 1},
            {"capturing content": 1},
            env=CAPTURE,
        ),
        Fault(
            "record_metrics", on(Recorder, "_record_metrics"), chat, {"recording metrics": 1}, {"recording metrics": 1}
        ),
        Fault("finish-stream", on(Recorder, "finish"), stream, STREAM_END, finish_on_error, 0, 0),
    ]


def fault_params(faults: Iterable[Fault]) -> list[Any]:
    """``faults`` as ``pytest.param``s named by their ids."""
    return [pytest.param(fault, id=fault.id) for fault in faults]


def counted_since(before: Counter[str]) -> Counter[str]:
    """What ``internal_errors`` gained since ``before`` (after flushing: metrics record off the app's thread)."""
    assert tokentrace.flush(), "metrics are recorded off the app's thread; wait for them"
    return Counter({k: v - before.get(k, 0) for k, v in internal_errors.items() if v != before.get(k, 0)})


def check_counted(delta: Counter[str], expected: dict[str, int], chunks: int) -> None:
    assert set(delta) == set(expected), dict(delta)
    for where, count in expected.items():
        if count == PER_CHUNK:
            assert delta[where] == chunks > 0
        elif count == AT_LEAST_ONCE:
            assert delta[where] >= 1
        else:
            assert delta[where] == count, dict(delta)


def chunks_in(fault: Fault, expected: Any) -> int:
    """Chunks behind what a workload returned: a stream's workload returns a list of its items."""
    return len(expected) if isinstance(expected, list) else 0


@dataclass(frozen=True)
class FaultHarness:
    """How the fault contract drives one SDK.

    ``run(client, workload, failing)`` / ``arun(...)`` run a workload and return what the application
    observed (``failing``: against a model the server answers with a 429); ``error`` is what the SDK
    raises then, with ``error_type`` its ``error.type`` and ``error_fields`` the attributes that must
    equal the baseline's (the first one holds the status, 429).
    """

    instrumentors: tuple[type, ...]
    run: Callable[[Any, str, bool], Any]
    arun: Callable[[Any, str, bool], Awaitable[Any]]
    error: type[BaseException]
    error_type: str
    error_fields: tuple[str, ...] = ("status_code",)
    chained: tuple[str, ...] = ("__cause__", "__context__")  # links whose types must equal the baseline's
    message: Callable[[BaseException], str] = str  # the exception's text, less what differs run to run
    spans_of: Callable[[Any], list[Any]] = lambda telemetry: telemetry.spans()  # the spans the contract counts
    span_name: Callable[[Fault, bool], str | None] = lambda fault, failing: None  # None: not checked
    chunks: Callable[[Fault, Any], int] = chunks_in
    aclose: Callable[[Any], Awaitable[Any]] | None = None  # how to close an async client, if it must be
    after_instrumenting: Callable[[], Any] = lambda: None  # e.g. drop clients an SDK cached untraced

    def instrument(self, instrument_with: Callable[..., Any], env: dict[str, str]) -> None:
        for instrumentor in self.instrumentors:
            instrument_with(instrumentor, **env)
        self.after_instrumenting()

    def check_same_error(self, error: BaseException, baseline: BaseException) -> None:
        assert type(error) is type(baseline) is self.error
        assert self.message(error) == self.message(baseline)
        status, *others = self.error_fields
        assert getattr(error, status) == getattr(baseline, status) == 429
        for name in others:
            assert getattr(error, name) == getattr(baseline, name), name
        for link in self.chained:
            assert type(getattr(error, link)) is type(getattr(baseline, link)), link

    def check_spans(self, telemetry: Any, fault: Fault, expected: int, failing: bool) -> None:
        spans = self.spans_of(telemetry)
        assert len(spans) == expected, [s.name for s in spans]
        if not expected:
            return
        span = spans[0]
        name = self.span_name(fault, failing)
        if name is not None:
            assert span.name == name
        if failing and fault.error_status:
            assert span.status.status_code is StatusCode.ERROR
            assert span.attributes[semconv.ERROR_TYPE] == self.error_type
        else:
            assert span.status.status_code is StatusCode.UNSET


def run_sync_fault(
    harness: FaultHarness,
    fault: Fault,
    new_client: Callable[[], Any],
    telemetry: Any,
    instrument_with: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The contract for one fault, sync: ``new_client()`` makes a fresh SDK client (one made before
    instrumenting may have bound untraced methods)."""
    client = new_client()
    expected = harness.run(client, fault.workload, False)
    with pytest.raises(harness.error) as expected_error:
        harness.run(client, fault.workload, True)
    chunks = harness.chunks(fault, expected)

    fault.inject(monkeypatch)
    harness.instrument(instrument_with, fault.env)
    client = new_client()

    before = Counter(internal_errors)
    assert harness.run(client, fault.workload, False) == expected
    check_counted(counted_since(before), fault.counted, chunks)
    harness.check_spans(telemetry, fault, fault.spans, failing=False)

    telemetry.exporter.clear()
    before = Counter(internal_errors)
    with pytest.raises(harness.error) as error:
        harness.run(client, fault.workload, True)
    harness.check_same_error(error.value, expected_error.value)
    check_counted(counted_since(before), fault.counted_on_error, chunks)
    harness.check_spans(telemetry, fault, fault.spans_on_error, failing=True)


async def run_async_fault(
    harness: FaultHarness,
    fault: Fault,
    new_client: Callable[[], Any],
    telemetry: Any,
    instrument_with: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """:func:`run_sync_fault` with the SDK's async client."""
    client = new_client()
    expected = await harness.arun(client, fault.workload, False)
    with pytest.raises(harness.error) as expected_error:
        await harness.arun(client, fault.workload, True)
    if harness.aclose is not None:
        await harness.aclose(client)
    chunks = harness.chunks(fault, expected)

    fault.inject(monkeypatch)
    harness.instrument(instrument_with, fault.env)
    client = new_client()

    before = Counter(internal_errors)
    assert await harness.arun(client, fault.workload, False) == expected
    check_counted(counted_since(before), fault.counted, chunks)
    harness.check_spans(telemetry, fault, fault.spans, failing=False)

    telemetry.exporter.clear()
    before = Counter(internal_errors)
    with pytest.raises(harness.error) as error:
        await harness.arun(client, fault.workload, True)
    harness.check_same_error(error.value, expected_error.value)
    check_counted(counted_since(before), fault.counted_on_error, chunks)
    harness.check_spans(telemetry, fault, fault.spans_on_error, failing=True)
    if harness.aclose is not None:
        await harness.aclose(client)


def fault_tests(
    harness: FaultHarness,
    faults: list[Fault],
    sync_client: Callable[[Any], Any],
    async_client: Callable[[Any], Any],
    source: str = "server",
) -> tuple[Any, Any]:
    """The sync and async tests of the contract for ``faults``, which a test module binds to its names
    (``test_sync_fault_is_contained, test_async_fault_is_contained = fault_tests(...)``).

    ``source`` names the fixture the clients come from (the provider's local server, by default);
    ``sync_client(<that fixture's value>)`` / ``async_client(...)`` make a fresh SDK client."""

    @pytest.mark.parametrize("fault", fault_params(faults))
    def test_sync_fault_is_contained(
        fault: Fault,
        request: pytest.FixtureRequest,
        telemetry: Any,
        instrument_with: Any,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        served = request.getfixturevalue(source)
        run_sync_fault(harness, fault, lambda: sync_client(served), telemetry, instrument_with, monkeypatch)

    @pytest.mark.parametrize("fault", fault_params(faults))
    async def test_async_fault_is_contained(
        fault: Fault,
        request: pytest.FixtureRequest,
        telemetry: Any,
        instrument_with: Any,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        served = request.getfixturevalue(source)
        await run_async_fault(harness, fault, lambda: async_client(served), telemetry, instrument_with, monkeypatch)

    return test_sync_fault_is_contained, test_async_fault_is_contained
