"""What the SDK's retries hide, made visible: every HTTP attempt, the waits, headroom and request ids.

The real openai SDK (its own retry loop, backoff and ``retry-after`` handling) calls the simulator,
which fails the first N requests of a call on purpose (``x-sim-fault-once`` + ``x-sim-fault-times``)
with 429/500/503, a reset connection or a stall; the exported span, events and metrics must account
for each attempt while the application sees exactly what it sees uninstrumented.
"""

from __future__ import annotations

import uuid
from typing import Any

import openai
import pytest

from tokentrace.core import attempts as at
from tokentrace.core import semconv

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "How are you?"}]


def faulty(fault: str, times: int = 1) -> dict[str, str]:
    return {"x-sim-fault": fault, "x-sim-fault-once": uuid.uuid4().hex, "x-sim-fault-times": str(times)}


def events(span: Any) -> list[dict[str, Any]]:
    return [dict(e.attributes) for e in span.events if e.name == at.EVENT_ATTEMPT]


@pytest.fixture
def retrying(simulator: Any) -> Any:
    with openai.OpenAI(base_url=simulator.base_url, api_key="sk-health", max_retries=3) as c:
        yield c


@pytest.mark.parametrize(("fault", "status"), [("error-429", 429), ("error-500", 500), ("error-503", 503)])
def test_retried_failures_are_each_an_attempt_with_wait_and_status(
    retrying: Any, instrumented: Any, telemetry: Any, fault: str, status: int
) -> None:
    reply = retrying.chat.completions.create(model=MODEL, messages=MESSAGES, extra_headers=faulty(fault, times=2))
    span = telemetry.span()
    a = dict(span.attributes)
    assert a[at.ATTEMPTS] == 3 and semconv.ERROR_TYPE not in a  # the call succeeded, as the app saw
    assert a[semconv.RESPONSE_ID] == reply.id
    attempts = events(span)
    assert [e.get(at.STATUS_CODE) for e in attempts] == [status, status, 200]
    assert [e[at.EVENT_ATTEMPT_NUMBER] for e in attempts] == [1, 2, 3]
    assert attempts[0][at.ERROR_TYPE] == str(status)
    assert attempts[0][at.EVENT_RETRY_AFTER] == pytest.approx(0.010)  # the simulator's retry-after-ms
    waits = [e[at.EVENT_WAIT_BEFORE_NEXT] for e in attempts[:2]]
    assert all(w >= 0.009 for w in waits)  # the SDK honoured retry-after before retrying
    assert a[at.RETRY_WAIT] == pytest.approx(sum(waits))
    failed = sum(e[at.EVENT_ATTEMPT_DURATION] for e in attempts[:2])
    assert a[at.FAILED_ATTEMPTS_DURATION] == pytest.approx(failed)
    # the call's duration is still the whole call the application waited for
    assert (span.end_time - span.start_time) / 1e9 >= a[at.RETRY_WAIT] + failed
    points = telemetry.metrics()[semconv.METRIC_PROVIDER_ATTEMPTS]
    by_class = {dict(p.attributes)[semconv.HTTP_STATUS_CLASS]: p.value for p in points}
    assert by_class == {f"{status // 100}xx": 2, "2xx": 1}
    (wait,) = telemetry.metrics()[semconv.METRIC_PROVIDER_RETRY_WAIT]
    assert wait.count == 2 and wait.sum == pytest.approx(sum(waits))


def test_a_single_attempt_has_totals_headroom_and_request_id_but_no_events(
    client: Any, instrumented: Any, telemetry: Any
) -> None:
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
    raw.parse()
    span = telemetry.span()
    a = dict(span.attributes)
    assert a[at.ATTEMPTS] == 1 and a[at.RETRY_WAIT] == 0 and a[at.FAILED_ATTEMPTS_DURATION] == 0
    assert events(span) == []
    assert a[at.REQUEST_ID] == raw.headers["x-request-id"]
    assert a["tokentrace.ratelimit.requests.limit"] == float(raw.headers["x-ratelimit-limit-requests"])
    assert a["tokentrace.ratelimit.requests.remaining"] == float(raw.headers["x-ratelimit-remaining-requests"])
    assert a["tokentrace.ratelimit.tokens.remaining"] == float(raw.headers["x-ratelimit-remaining-tokens"])
    assert a["tokentrace.ratelimit.requests.reset"] == pytest.approx(0.006)  # "6ms"
    alias = a[at.API_KEY_ALIAS]
    assert alias.startswith("key-") and "sk-test" not in alias
    metrics = telemetry.metrics()
    (headroom,) = [
        p
        for p in metrics[semconv.METRIC_RATELIMIT_HEADROOM]
        if dict(p.attributes)[semconv.RATELIMIT_BUCKET] == "requests"
    ]
    assert dict(headroom.attributes)[at.API_KEY_ALIAS] == alias
    assert headroom.value == pytest.approx(
        a["tokentrace.ratelimit.requests.remaining"] / a["tokentrace.ratelimit.requests.limit"]
    )


def test_reset_connection_then_success(retrying: Any, instrumented: Any, telemetry: Any) -> None:
    retrying.chat.completions.create(model=MODEL, messages=MESSAGES, extra_headers=faulty("drop"))
    attempts = events(telemetry.span())
    assert len(attempts) == 2
    assert at.STATUS_CODE not in attempts[0]
    assert attempts[0][at.ERROR_TYPE].startswith(("httpx", "httpx2", "h11", "httpcore"))
    assert attempts[1][at.STATUS_CODE] == 200


def test_stalled_attempt_times_out_then_success(simulator: Any, instrumented: Any, telemetry: Any) -> None:
    with openai.OpenAI(base_url=simulator.base_url, api_key="sk-health", max_retries=2, timeout=0.3) as c:
        c.chat.completions.create(model=MODEL, messages=MESSAGES, extra_headers={**faulty("slow"), "x-sim-delay": "2"})
    attempts = events(telemetry.span())
    assert len(attempts) == 2
    assert "Timeout" in attempts[0][at.ERROR_TYPE] and attempts[0][at.EVENT_ATTEMPT_DURATION] >= 0.29
    assert attempts[1][at.STATUS_CODE] == 200


def test_exhausted_retries_keep_the_apps_exception_and_record_every_attempt(
    retrying: Any, instrumented: Any, telemetry: Any
) -> None:
    with pytest.raises(openai.RateLimitError):
        retrying.chat.completions.create(model=MODEL, messages=MESSAGES, extra_headers=faulty("error-429", 9))
    span = telemetry.span()
    assert span.attributes[semconv.ERROR_TYPE] == "openai.RateLimitError"
    assert span.attributes[at.ATTEMPTS] == 4  # max_retries=3
    assert [e[at.STATUS_CODE] for e in events(span)] == [429] * 4
    assert at.EVENT_WAIT_BEFORE_NEXT not in events(span)[-1]


def test_streams_record_attempts_and_tokens_per_second(retrying: Any, instrumented: Any, telemetry: Any) -> None:
    stream = retrying.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=faulty("error-429"),
    )
    chunks = list(stream)
    assert chunks
    span = telemetry.span()
    assert span.attributes[at.ATTEMPTS] == 2
    (rate,) = telemetry.metrics()[semconv.METRIC_STREAM_TOKENS_PER_SECOND]
    assert rate.count == 1 and rate.sum > 0


async def test_async_calls_record_attempts(simulator: Any, instrumented: Any, telemetry: Any) -> None:
    async with openai.AsyncOpenAI(base_url=simulator.base_url, api_key="sk-health", max_retries=2) as c:
        await c.chat.completions.create(model=MODEL, messages=MESSAGES, extra_headers=faulty("error-500"))
    assert [e[at.STATUS_CODE] for e in events(telemetry.span())] == [500, 200]


def test_other_http_traffic_is_not_recorded(simulator: Any, instrumented: Any, telemetry: Any) -> None:
    import httpx

    assert httpx.get(f"{simulator.base_url}/models").status_code == 200
    assert telemetry.spans() == []


def test_switched_off_by_setting(retrying: Any, instrument: Any, telemetry: Any) -> None:
    instrument(TOKENTRACE_HTTP_ATTEMPTS="false")
    retrying.chat.completions.create(model=MODEL, messages=MESSAGES, extra_headers=faulty("error-429"))
    span = telemetry.span()
    assert at.ATTEMPTS not in span.attributes and events(span) == []


def test_a_fault_in_the_attempt_hook_never_reaches_the_app(
    retrying: Any, instrumented: Any, telemetry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tokentrace.core.safety import internal_errors
    from tokentrace.instrumentation import _http

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("injected")

    before = internal_errors["reading an HTTP attempt"]
    monkeypatch.setattr(_http, "end_attempt", broken)
    reply = retrying.chat.completions.create(model=MODEL, messages=MESSAGES, extra_headers=faulty("error-429"))
    assert reply.choices[0].message.content
    assert internal_errors["reading an HTTP attempt"] >= before + 2
    assert telemetry.span().attributes[semconv.RESPONSE_ID] == reply.id
