"""What a provider's response headers say about rate-limit headroom, retry hints and the request id.

Providers spell these differently; this turns them into one shape, so a dashboard can alert on
"remaining requests below 10 %" for any of them:

* OpenAI, Groq, Cerebras, OpenRouter: ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``,
  resets as Go durations (``6m0s``, ``20ms``).
* Anthropic: ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}``,
  resets as RFC 3339 times.
* Mistral: ``x-ratelimit-{limit,remaining}-{req,tokens}-{minute,month}`` (requests and tokens per
  window, its current API) and the older ``x-ratelimitbysize-{limit,remaining}-{minute,month}`` (tokens).
* Cohere: ``x-{trial,}endpoint-call-{limit,remaining}`` and monthly call limits.
* Retry hints: ``retry-after-ms``, ``retry-after`` (seconds or an HTTP date).
* Request ids: ``x-request-id``, ``request-id``, ``x-amzn-requestid``, ``x-goog-request-id``,
  Mistral's ``mistral-correlation-id`` / ``x-kong-request-id``, Cohere's ``x-debug-trace-id``...

Everything here is a pure function of a header mapping (any object with a case-insensitive ``get``,
such as httpx's ``Headers``, or a plain dict with lower-case keys).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}

REQUEST_ID_HEADERS = (
    "x-request-id",
    "request-id",
    "x-amzn-requestid",
    "x-amzn-request-id",
    "x-goog-request-id",
    "mistral-correlation-id",  # Mistral: the id its support asks for
    "x-kong-request-id",  # Mistral's gateway
    "x-debug-trace-id",  # Cohere: its only per-request id
    "cf-ray",
)


@dataclass(frozen=True)
class Bucket:
    """One rate-limit window: the limit, what is left, and seconds until it refills (if given)."""

    limit: float | None = None
    remaining: float | None = None
    reset_s: float | None = None

    @property
    def headroom(self) -> float | None:
        """Share of the limit still available, 0..1."""
        if self.limit and self.remaining is not None and self.limit > 0:
            return max(0.0, min(1.0, self.remaining / self.limit))
        return None


def parse_go_duration(value: str) -> float | None:
    """``1h2m3.5s`` / ``6m0s`` / ``20ms`` -> seconds (OpenAI's reset headers); a bare number is seconds."""
    text = value.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    total, position = 0.0, 0
    for match in _GO_DURATION.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    return total if position == len(text) and position else None


def _seconds_until(value: str, now: dt.datetime) -> float | None:
    """RFC 3339 time (Anthropic) or an HTTP date -> seconds from ``now`` (never negative)."""
    text = value.strip()
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, (when - now).total_seconds())


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _get(headers: Mapping[str, str] | Any, name: str) -> str | None:
    value = headers.get(name)
    return value if isinstance(value, str) else None


def rate_limits(headers: Mapping[str, str] | Any, now: dt.datetime | None = None) -> dict[str, Bucket]:
    """Bucket name (``requests``, ``tokens``, ``input_tokens``, ``output_tokens``, ``tokens_minute``,
    ``tokens_month``, ``requests_minute``, ``requests_month``, ``calls``, ``calls_month``) ->
    :class:`Bucket`, for the headers present."""
    now = now or dt.datetime.now(dt.timezone.utc)
    found: dict[str, Bucket] = {}
    for bucket in ("requests", "tokens"):  # OpenAI-style
        limit = _number(_get(headers, f"x-ratelimit-limit-{bucket}"))
        remaining = _number(_get(headers, f"x-ratelimit-remaining-{bucket}"))
        reset = _get(headers, f"x-ratelimit-reset-{bucket}")
        if limit is not None or remaining is not None:
            found[bucket] = Bucket(limit, remaining, parse_go_duration(reset) if reset else None)
    for bucket in ("requests", "tokens", "input-tokens", "output-tokens"):  # Anthropic
        limit = _number(_get(headers, f"anthropic-ratelimit-{bucket}-limit"))
        remaining = _number(_get(headers, f"anthropic-ratelimit-{bucket}-remaining"))
        reset = _get(headers, f"anthropic-ratelimit-{bucket}-reset")
        if limit is not None or remaining is not None:
            found[bucket.replace("-", "_")] = Bucket(limit, remaining, _seconds_until(reset, now) if reset else None)
    for window in ("minute", "month"):  # Mistral, tokens per window
        limit = _number(_get(headers, f"x-ratelimitbysize-limit-{window}"))
        remaining = _number(_get(headers, f"x-ratelimitbysize-remaining-{window}"))
        if limit is not None or remaining is not None:
            found[f"tokens_{window}"] = Bucket(limit, remaining)
        for kind, bucket in (("req", "requests"), ("tokens", "tokens")):  # Mistral's current names
            limit = _number(_get(headers, f"x-ratelimit-limit-{kind}-{window}"))
            remaining = _number(_get(headers, f"x-ratelimit-remaining-{kind}-{window}"))
            if limit is not None or remaining is not None:
                found[f"{bucket}_{window}"] = Bucket(limit, remaining)
    for prefix, bucket in (("x-trial-endpoint-call", "calls"), ("x-endpoint-monthly-call", "calls_month")):  # Cohere
        limit = _number(_get(headers, f"{prefix}-limit"))
        remaining = _number(_get(headers, f"{prefix}-remaining"))
        if limit is not None or remaining is not None:
            found[bucket] = Bucket(limit, remaining)
    return found


def retry_after_s(headers: Mapping[str, str] | Any, now: dt.datetime | None = None) -> float | None:
    """The server's requested wait before retrying, in seconds (``retry-after-ms`` wins)."""
    millis = _number(_get(headers, "retry-after-ms"))
    if millis is not None:
        return max(0.0, millis / 1000)
    value = _get(headers, "retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return max(0.0, seconds)
    return _seconds_until(value, now or dt.datetime.now(dt.timezone.utc))


def request_id(headers: Mapping[str, str] | Any) -> str | None:
    for name in REQUEST_ID_HEADERS:
        value = _get(headers, name)
        if value:
            return value
    return None
