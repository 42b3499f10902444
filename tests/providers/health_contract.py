"""The provider-health contract: every HTTP attempt behind one SDK call is visible, for every SDK.

A per-SDK test module defines a ``driver`` fixture (a :class:`Driver` subclass: how to call the SDK
in each mode, how it retries by default or as configured, which headers its provider sends) and
imports the ``test_*`` functions below, which pytest then runs for that SDK. The real SDK and its
real HTTP stack call a local server that fails the first N requests on purpose (429 with the
provider's ``retry-after`` and error body, 5xx, a reset connection, a stall past the client's
timeout; ``tests/providers/servers/faults.py``, or the simulator's ``x-sim-fault`` headers for
Anthropic). The exported span, its ``tokentrace.http.attempt`` events and the health metrics must
account for each attempt the server received, while the call's outcome is what the application saw.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest
from opentelemetry.trace import StatusCode

from tokentrace.core import attempts as at
from tokentrace.core import semconv
from tokentrace.core.recorder import error_type_of
from tokentrace.core.safety import internal_errors

PROMPT = "How are the provider's servers doing today?"
MESSAGES = [{"role": "user", "content": PROMPT}]
MODES = ("sync", "async", "stream", "astream", "raw", "araw", "helper", "ahelper")
FAILURES = ("rate_limit", "server_error", "overloaded")


class Driver:
    """How one SDK meets the contract; subclasses fill in the class attributes and :meth:`call`."""

    provider: ClassVar[str]
    modes: ClassVar[tuple[str, ...]] = ("sync", "async", "stream", "astream")
    statuses: ClassVar[dict[str, int]] = {"rate_limit": 429, "server_error": 500, "overloaded": 503}
    hint: ClassVar[str | None] = "0.05"  # the retry-after a 429 carries; None: the SDK ignores hints
    min_backoff: ClassVar[float] = 0.0  # the least wait the SDK's backoff makes when it has no usable hint
    max_attempts: ClassVar[int | None] = 3  # with the retry configuration used (None: time-bounded)
    retried: ClassVar[frozenset[str]] = frozenset(
        {"error-429", "error-500", "error-503", "error-529", "reset", "stall"}
    )
    stream_retries: ClassVar[bool] = True  # whether its streams go through the retry loop too
    buckets: ClassVar[dict[str, tuple[str | None, str | None]]] = {}  # bucket -> (limit, remaining) header
    request_id_header: ClassVar[str | None] = None
    headers_mode: ClassVar[str] = "sync"
    stall_timeout: ClassVar[float] = 0.3
    raw_usage: ClassVar[bool] = False  # whether a with_raw_response call records the usage of its body
    exhausted_error: ClassVar[type[BaseException]] = Exception  # the app's exception once 429s exhaust retries

    def __init__(self, server: Any) -> None:
        self.server = server
        self.raw_headers: dict[str, str] | None = None
        self.internal_errors = 0  # faults of ours (tokentrace.core.safety) during the last run()

    # -- the server ----------------------------------------------------------------------------------

    def arm(self, kind: str, times: int = 1, *, retry_after: str | None = None, stall_s: float = 1.0) -> None:
        self.server.faults.arm(kind, times, retry_after=retry_after, stall_s=stall_s)

    def served(self) -> int:
        """Requests the server received since :meth:`arm`."""
        return int(self.server.faults.served)

    def last_headers(self) -> dict[str, str]:
        """The health headers of the last response the server sent."""
        return dict(self.server.faults.last)

    # -- the SDK -------------------------------------------------------------------------------------

    def retries(self, kind: str, mode: str) -> bool:
        return kind in self.retried and (self.stream_retries or "stream" not in mode)

    def call(self, mode: str, timeout: float | None) -> Any:
        """Run one call the way the application would in ``mode`` (async modes via ``asyncio.run``)."""
        raise NotImplementedError

    def run(self, mode: str, timeout: float | None = None) -> tuple[Any, BaseException | None, float]:
        """The call's result or exception, and how long the application waited for it."""
        before = sum(internal_errors.values())
        started = time.perf_counter()
        try:
            result = self.call(mode, timeout)
        except Exception as error:
            return None, error, self._ran(started, before)
        return result, None, self._ran(started, before)

    def _ran(self, started: float, before: int) -> float:
        waited = time.perf_counter() - started
        self.internal_errors = sum(internal_errors.values()) - before
        return waited

    @staticmethod
    def arun(coroutine: Any) -> Any:
        return asyncio.run(coroutine)


def events(span: Any) -> list[dict[str, Any]]:
    return [dict(e.attributes) for e in span.events if e.name == at.EVENT_ATTEMPT]


def _duration(span: Any) -> float:
    return (span.end_time - span.start_time) / 1e9


def _check_totals(span: Any, app_waited: float) -> list[dict[str, Any]]:
    """The span's totals are the sums of its events; its duration is what the application waited."""
    a = span.attributes
    attempts = events(span)
    assert a[at.ATTEMPTS] == len(attempts)
    waits = [e[at.EVENT_WAIT_BEFORE_NEXT] for e in attempts[:-1]]
    assert at.EVENT_WAIT_BEFORE_NEXT not in attempts[-1]
    assert a[at.RETRY_WAIT] == pytest.approx(sum(waits), abs=1e-9)
    failed = [e[at.EVENT_ATTEMPT_DURATION] for e in attempts if at.ERROR_TYPE in e]
    assert a[at.FAILED_ATTEMPTS_DURATION] == pytest.approx(sum(failed), abs=1e-9)
    assert [e[at.EVENT_ATTEMPT_NUMBER] for e in attempts] == list(range(1, len(attempts) + 1))
    assert sum(waits) + sum(failed) <= _duration(span) <= app_waited + 0.005
    return attempts


def _check_outcome(span: Any, error: BaseException | None, driver: Driver) -> None:
    """The span's outcome is the application's: its exception's type, or success; nothing of ours failed."""
    assert driver.internal_errors == 0
    if error is None:
        assert semconv.ERROR_TYPE not in span.attributes
        assert span.status.status_code is not StatusCode.ERROR
    else:
        assert span.attributes[semconv.ERROR_TYPE] == error_type_of(error)
        assert span.status.status_code is StatusCode.ERROR


def _status_class_counts(telemetry: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for point in telemetry.metrics().get(semconv.METRIC_PROVIDER_ATTEMPTS, []):
        key = dict(point.attributes)[semconv.HTTP_STATUS_CLASS]
        counts[key] = counts.get(key, 0) + int(point.value)
    return counts


# -- the contract --------------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", FAILURES)
def test_retried_failures_are_each_an_attempt(driver: Driver, telemetry: Any, failure: str) -> None:
    """429 / 5xx twice then success: three attempts with status, error, duration, retry-after, wait."""
    status = driver.statuses[failure]
    kind = f"error-{status}"
    hinted = status == 429 and driver.hint is not None
    driver.arm(kind, times=2, retry_after=driver.hint if status == 429 else None)
    result, error, waited = driver.run("sync")
    span = telemetry.span()
    _check_outcome(span, error, driver)
    if not driver.retries(kind, "sync"):
        assert error is not None and driver.served() == 1
        (attempt,) = _check_totals(span, waited)
        assert attempt[at.STATUS_CODE] == status and attempt[at.ERROR_TYPE] == str(status)
        assert _status_class_counts(telemetry) == {f"{status // 100}xx": 1}
        return
    assert error is None and result is not None
    assert span.attributes[at.ATTEMPTS] == 3 == driver.served()
    attempts = _check_totals(span, waited)
    assert [e.get(at.STATUS_CODE) for e in attempts] == [status, status, 200]
    assert [e.get(at.ERROR_TYPE) for e in attempts] == [str(status), str(status), None]
    assert all(e[at.EVENT_ATTEMPT_DURATION] > 0 for e in attempts)
    waits = [e[at.EVENT_WAIT_BEFORE_NEXT] for e in attempts[:2]]
    if hinted:
        assert [e[at.EVENT_RETRY_AFTER] for e in attempts[:2]] == [float(driver.hint)] * 2  # type: ignore[arg-type]
        assert all(w >= float(driver.hint) * 0.95 for w in waits)  # type: ignore[arg-type]  # the SDK honoured it
    else:
        assert all(w >= driver.min_backoff * 0.95 for w in waits)
    assert span.attributes[semconv.USAGE_OUTPUT_TOKENS] > 0  # the call itself succeeded and was read
    assert _status_class_counts(telemetry) == {f"{status // 100}xx": 2, "2xx": 1}
    (wait,) = telemetry.metrics()[semconv.METRIC_PROVIDER_RETRY_WAIT]
    assert wait.count == 2 and wait.sum == pytest.approx(sum(waits))


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_records_its_attempts(driver: Driver, telemetry: Any, mode: str) -> None:
    """A 429 then success, sync / async / streamed / raw: two attempts on the one span, request id on it."""
    if mode not in driver.modes:
        pytest.skip(f"{type(driver).__name__} has no {mode} mode")
    driver.arm("error-429", retry_after=driver.hint)
    _, error, waited = driver.run(mode)
    span = telemetry.span()
    _check_outcome(span, error, driver)
    attempts = _check_totals(span, waited)
    assert len(attempts) == driver.served()
    if driver.retries("error-429", mode):
        assert error is None
        assert [e.get(at.STATUS_CODE) for e in attempts] == [429, 200]
        if "raw" not in mode or driver.raw_usage:  # else a raw body is the app's to read (request side only)
            assert span.attributes[semconv.USAGE_OUTPUT_TOKENS] > 0
        if "stream" in mode or "helper" in mode:
            assert span.attributes["tokentrace.stream.end_reason"] in ("completed", "closed")
    else:
        assert error is not None
        assert [e.get(at.STATUS_CODE) for e in attempts] == [429]
    if driver.hint is not None:
        assert attempts[0][at.EVENT_RETRY_AFTER] == float(driver.hint)
    if driver.request_id_header is not None:
        expected = driver.last_headers()[driver.request_id_header]
        assert span.attributes[at.REQUEST_ID] == expected == attempts[-1][at.REQUEST_ID]


def test_exhausted_retries_keep_the_apps_exception(driver: Driver, telemetry: Any) -> None:
    driver.arm("error-429", times=99, retry_after=driver.hint)
    _, error, waited = driver.run("sync")
    assert isinstance(error, driver.exhausted_error), repr(error)
    span = telemetry.span()
    _check_outcome(span, error, driver)
    attempts = _check_totals(span, waited)
    assert len(attempts) == driver.served()
    if driver.max_attempts is not None:
        assert len(attempts) == driver.max_attempts
    else:
        assert len(attempts) >= 2
    assert [e[at.STATUS_CODE] for e in attempts] == [429] * len(attempts)
    assert _status_class_counts(telemetry) == {"4xx": len(attempts)}


def test_reset_connection(driver: Driver, telemetry: Any) -> None:
    driver.arm("reset")
    _, error, waited = driver.run("sync")
    span = telemetry.span()
    _check_outcome(span, error, driver)
    attempts = _check_totals(span, waited)
    assert len(attempts) == driver.served()
    assert at.STATUS_CODE not in attempts[0]
    assert attempts[0][at.ERROR_TYPE].startswith(("httpx", "httpx2", "h11", "httpcore"))
    if driver.retries("reset", "sync"):
        assert error is None and [e.get(at.STATUS_CODE) for e in attempts] == [None, 200]
    else:
        assert error is not None and len(attempts) == 1


def test_stall_past_the_timeout(driver: Driver, telemetry: Any) -> None:
    driver.arm("stall", stall_s=driver.stall_timeout + 0.7)
    _, error, waited = driver.run("sync", timeout=driver.stall_timeout)
    span = telemetry.span()
    _check_outcome(span, error, driver)
    attempts = _check_totals(span, waited)
    assert len(attempts) == driver.served()
    assert "Timeout" in attempts[0][at.ERROR_TYPE] and at.STATUS_CODE not in attempts[0]
    assert attempts[0][at.EVENT_ATTEMPT_DURATION] >= driver.stall_timeout * 0.95
    if driver.retries("stall", "sync"):
        assert error is None and [e.get(at.STATUS_CODE) for e in attempts] == [None, 200]
    else:
        assert error is not None and len(attempts) == 1


def test_one_attempt_has_headroom_request_id_and_no_events(driver: Driver, telemetry: Any) -> None:
    if hasattr(driver.server, "faults"):
        driver.server.faults.reset()
    _, error, _ = driver.run(driver.headers_mode)
    assert error is None, error
    assert driver.internal_errors == 0
    span = telemetry.span()
    a = span.attributes
    assert a[at.ATTEMPTS] == 1 and a[at.RETRY_WAIT] == 0 and a[at.FAILED_ATTEMPTS_DURATION] == 0
    assert events(span) == []
    sent = driver.last_headers()
    alias = a[at.API_KEY_ALIAS]
    assert alias.startswith("key-")
    if driver.request_id_header is not None:
        assert a[at.REQUEST_ID] == sent[driver.request_id_header]
    else:
        assert at.REQUEST_ID not in a
    recorded = {k for k in a if k.startswith(at.RATELIMIT_PREFIX)}
    expected: set[str] = set()
    for bucket, (limit, remaining) in driver.buckets.items():
        prefix = f"{at.RATELIMIT_PREFIX}{bucket}."
        if limit is not None:
            assert a[prefix + "limit"] == float(sent[limit])
            expected.add(prefix + "limit")
        if remaining is not None:
            assert a[prefix + "remaining"] == float(sent[remaining])
            expected.add(prefix + "remaining")
    assert expected <= recorded
    assert {k.rsplit(".", 1)[0] for k in recorded} == {f"{at.RATELIMIT_PREFIX}{b}" for b in driver.buckets}
    headroom = {
        dict(p.attributes)[semconv.RATELIMIT_BUCKET]: p
        for p in telemetry.metrics().get(semconv.METRIC_RATELIMIT_HEADROOM, [])
    }
    for bucket, (limit, remaining) in driver.buckets.items():
        if limit is not None and remaining is not None:
            point = headroom.pop(bucket)
            assert point.value == pytest.approx(float(sent[remaining]) / float(sent[limit]))
            assert dict(point.attributes)[at.API_KEY_ALIAS] == alias
    assert headroom == {}


def test_switched_off_by_the_setting(driver: Driver, telemetry: Any, reinstrument: Callable[..., Any]) -> None:
    reinstrument(TOKENTRACE_HTTP_ATTEMPTS="false")
    driver.arm("error-429", retry_after=driver.hint)
    driver.run("stream" if "stream" in driver.modes else "sync")
    span = telemetry.span()
    assert at.ATTEMPTS not in span.attributes and events(span) == []


__all__ = [
    "MESSAGES",
    "Driver",
    "test_every_mode_records_its_attempts",
    "test_exhausted_retries_keep_the_apps_exception",
    "test_one_attempt_has_headroom_request_id_and_no_events",
    "test_reset_connection",
    "test_retried_failures_are_each_an_attempt",
    "test_stall_past_the_timeout",
    "test_switched_off_by_the_setting",
]


def contract_fixtures(
    start_server: Callable[[], Any], instrumentor: type, driver_class: type[Driver]
) -> tuple[Any, Any, Any]:
    """The ``server``, ``reinstrument`` and ``driver`` fixtures of a per-SDK module, which binds them
    to module names (``server, reinstrument, driver = contract_fixtures(...)``): ``start_server()`` is
    a context manager yielding a server with ``faults`` (``tests/providers/servers/faults.py``)."""

    @pytest.fixture(scope="module")
    def server() -> Iterator[Any]:
        with start_server() as running:
            running.faults.headers_on = True  # the provider's rate-limit and request-id headers on every response
            yield running

    @pytest.fixture
    def reinstrument(instrument_with: Callable[..., Any]) -> Callable[..., Any]:
        return lambda **env: instrument_with(instrumentor, **env)

    @pytest.fixture
    def driver(server: Any, reinstrument: Callable[..., Any]) -> Driver:
        server.faults.reset()
        reinstrument()
        return driver_class(server)

    return server, reinstrument, driver
