"""Header parsing for rate-limit headroom, retry hints and request ids, per provider dialect."""

from __future__ import annotations

import datetime as dt

import pytest

from tokentrace.core.ratelimits import Bucket, parse_go_duration, rate_limits, request_id, retry_after_s

NOW = dt.datetime(2026, 11, 21, 12, 0, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("1s", 1.0), ("0.5", 0.5), ("12us", 12e-6)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5x", "m5", "1s garbage"])
def test_go_durations_refuse_garbage(text: str) -> None:
    assert parse_go_duration(text) is None


def test_openai_headers() -> None:
    headers = {
        "x-ratelimit-limit-requests": "5000",
        "x-ratelimit-remaining-requests": "4999",
        "x-ratelimit-reset-requests": "12ms",
        "x-ratelimit-limit-tokens": "160000",
        "x-ratelimit-remaining-tokens": "40000",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    found = rate_limits(headers, NOW)
    assert found["requests"] == Bucket(5000, 4999, 0.012)
    assert found["tokens"] == Bucket(160000, 40000, 360.0)
    assert found["tokens"].headroom == pytest.approx(0.25)


def test_anthropic_headers() -> None:
    headers = {
        "anthropic-ratelimit-requests-limit": "1000",
        "anthropic-ratelimit-requests-remaining": "999",
        "anthropic-ratelimit-requests-reset": "2026-11-21T12:00:30Z",
        "anthropic-ratelimit-input-tokens-limit": "80000",
        "anthropic-ratelimit-input-tokens-remaining": "8000",
        "anthropic-ratelimit-input-tokens-reset": "2026-11-21T12:01:00Z",
        "anthropic-ratelimit-output-tokens-limit": "16000",
        "anthropic-ratelimit-output-tokens-remaining": "16000",
        "anthropic-ratelimit-tokens-limit": "96000",
        "anthropic-ratelimit-tokens-remaining": "24000",
    }
    found = rate_limits(headers, NOW)
    assert found["requests"] == Bucket(1000, 999, 30.0)
    assert found["input_tokens"] == Bucket(80000, 8000, 60.0)
    assert found["input_tokens"].headroom == pytest.approx(0.1)
    assert found["output_tokens"].reset_s is None
    assert found["tokens"].remaining == 24000


def test_mistral_and_cohere_headers() -> None:
    found = rate_limits(
        {
            "x-ratelimitbysize-limit-minute": "500000",
            "x-ratelimitbysize-remaining-minute": "250000",
            "x-trial-endpoint-call-limit": "40",
            "x-trial-endpoint-call-remaining": "39",
        },
        NOW,
    )
    assert found["tokens_minute"].headroom == pytest.approx(0.5)
    assert found["calls"] == Bucket(40, 39)


def test_mistral_current_headers_give_request_and_token_buckets_per_window() -> None:
    found = rate_limits(
        {
            "x-ratelimit-limit-req-minute": "60",
            "x-ratelimit-remaining-req-minute": "45",
            "x-ratelimit-limit-tokens-minute": "500000",
            "x-ratelimit-remaining-tokens-minute": "125000",
            "x-ratelimit-limit-tokens-month": "1000000000",
            "x-ratelimit-remaining-tokens-month": "999000000",
        },
        NOW,
    )
    assert found["requests_minute"] == Bucket(60, 45)
    assert found["tokens_minute"].headroom == pytest.approx(0.25)
    assert found["tokens_month"] == Bucket(1_000_000_000, 999_000_000)
    assert "requests_month" not in found and "requests" not in found  # not OpenAI's unwindowed names


def test_no_headers_no_buckets_and_garbage_ignored() -> None:
    assert rate_limits({}, NOW) == {}
    assert rate_limits({"x-ratelimit-limit-requests": "lots"}, NOW) == {}


def test_retry_after_forms() -> None:
    assert retry_after_s({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_s({"retry-after": "2"}) == 2.0
    assert retry_after_s({"retry-after": "Sat, 21 Nov 2026 12:00:05 GMT"}, NOW) == pytest.approx(5.0)
    assert retry_after_s({"retry-after": "whenever"}, NOW) is None
    assert retry_after_s({}) is None


def test_request_ids() -> None:
    assert request_id({"x-request-id": "req_1"}) == "req_1"
    assert request_id({"request-id": "req_011CS"}) == "req_011CS"
    assert request_id({"x-amzn-requestid": "abc"}) == "abc"
    assert request_id({"mistral-correlation-id": "m-1", "x-kong-request-id": "k-1"}) == "m-1"
    assert request_id({"x-kong-request-id": "k-1"}) == "k-1"
    assert request_id({"x-debug-trace-id": "c-1"}) == "c-1"
    assert request_id({}) is None
