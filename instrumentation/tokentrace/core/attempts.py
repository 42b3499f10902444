"""The HTTP attempts inside one SDK call: retries, waits, throttling and rate-limit headroom.

SDKs retry 429s, 5xx and timeouts on their own, so a call that "took 9 s" may have been two
failures and a wait. While an instrumented SDK call runs, :data:`CURRENT_CALL` holds its
:class:`~tokentrace.core.call.GenAICall`; the HTTP client hook
(:mod:`tokentrace.instrumentation._http`) appends one :class:`Attempt` per request it sends. When
the call ends, :func:`describe_attempts` turns them into span attributes and events, and
:class:`HealthInstruments` into provider-health metrics.

Attempts are span **events**, not child spans: they are not operations the application made (its
one call is the span), a child span per retry would change span counts and sampling, and events
keep each attempt's start time, status and duration on the call they belong to. A call with a
single successful attempt gets the totals only (``tokentrace.http.attempts`` = 1), no event.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tokentrace.core import ratelimits

if TYPE_CHECKING:
    from tokentrace.core.call import GenAICall

CURRENT_CALL: ContextVar[GenAICall | None] = ContextVar("tokentrace_current_call", default=None)

ATTEMPTS = "tokentrace.http.attempts"
RETRY_WAIT = "tokentrace.http.retry_wait"  # seconds spent waiting between attempts
FAILED_ATTEMPTS_DURATION = "tokentrace.http.failed_attempts.duration"  # seconds spent in failed attempts
REQUEST_ID = "tokentrace.request_id"
API_KEY_ALIAS = "tokentrace.api_key.alias"
RATELIMIT_PREFIX = "tokentrace.ratelimit."
EVENT_ATTEMPT = "tokentrace.http.attempt"
EVENT_ATTEMPT_NUMBER = "tokentrace.http.attempt.number"
EVENT_ATTEMPT_DURATION = "tokentrace.http.attempt.duration"
EVENT_RETRY_AFTER = "tokentrace.http.retry_after"
EVENT_WAIT_BEFORE_NEXT = "tokentrace.http.wait_before_next"
STATUS_CODE = "http.response.status_code"
ERROR_TYPE = "error.type"

_KEY_HEADERS = ("authorization", "x-api-key", "api-key", "x-goog-api-key")
_alias_cache: dict[str, str] = {}


def api_key_alias(headers: Any) -> str | None:
    """A stable, non-reversible name for the credential a request used (never the key itself)."""
    for name in _KEY_HEADERS:
        value = headers.get(name) if headers is not None else None
        if isinstance(value, str) and value:
            secret = value.removeprefix("Bearer ").strip()
            alias = _alias_cache.get(secret)
            if alias is None:
                alias = "key-" + hashlib.sha256(secret.encode()).hexdigest()[:8]
                if len(_alias_cache) < 1024:
                    _alias_cache[secret] = alias
            return alias
    return None


@dataclass
class Attempt:
    """One HTTP request the SDK sent for the call."""

    started_ns: int  # wall clock, for the event timestamp
    started: float  # perf_counter
    ended: float = 0.0
    status: int | None = None
    error_type: str | None = None
    retry_after_s: float | None = None
    request_id: str | None = None
    key_alias: str | None = None
    limits: dict[str, ratelimits.Bucket] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return max(0.0, self.ended - self.started)

    @property
    def failed(self) -> bool:
        return self.error_type is not None or (self.status is not None and self.status >= 400)


def begin_attempt(request: Any = None) -> Attempt:
    """A new attempt; ``request`` (httpx-style, with ``headers``) names the credential by alias."""
    attempt = Attempt(started_ns=time.time_ns(), started=time.perf_counter())
    headers = getattr(request, "headers", None)
    if headers is not None:
        attempt.key_alias = api_key_alias(headers)
    return attempt


def end_attempt(attempt: Attempt, response: Any = None, error: BaseException | None = None) -> None:
    """Fill in the outcome from an httpx-style response (``status_code``, ``headers``) or an error."""
    attempt.ended = time.perf_counter()
    if error is not None:
        attempt.error_type = f"{type(error).__module__.split('.')[0]}.{type(error).__qualname__}"
        return
    attempt.status = getattr(response, "status_code", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return
    attempt.request_id = ratelimits.request_id(headers)
    attempt.limits = ratelimits.rate_limits(headers)
    if attempt.status is not None and attempt.status >= 400:
        attempt.retry_after_s = ratelimits.retry_after_s(headers)
        attempt.error_type = str(attempt.status)


@dataclass
class AttemptSummary:
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any], int]]  # (name, attributes, timestamp ns)
    waits: list[float]
    limits: dict[str, ratelimits.Bucket]
    key_alias: str | None = None


def describe_attempts(attempts: list[Attempt]) -> AttemptSummary:
    """Span attributes (totals, request id, latest headroom) and one event per attempt when retried."""
    attributes: dict[str, Any] = {ATTEMPTS: len(attempts)}
    waits = [max(0.0, later.started - earlier.ended) for earlier, later in itertools.pairwise(attempts)]
    attributes[RETRY_WAIT] = sum(waits)
    attributes[FAILED_ATTEMPTS_DURATION] = sum(a.duration_s for a in attempts if a.failed)
    request_ids = [a.request_id for a in attempts if a.request_id]
    if request_ids:
        attributes[REQUEST_ID] = request_ids[-1]
    alias = next((a.key_alias for a in reversed(attempts) if a.key_alias), None)
    if alias:
        attributes[API_KEY_ALIAS] = alias
    limits: dict[str, ratelimits.Bucket] = {}
    for attempt in attempts:  # the latest value of each bucket
        limits.update(attempt.limits)
    for bucket, values in limits.items():
        prefix = f"{RATELIMIT_PREFIX}{bucket}."
        if values.limit is not None:
            attributes[prefix + "limit"] = values.limit
        if values.remaining is not None:
            attributes[prefix + "remaining"] = values.remaining
        if values.reset_s is not None:
            attributes[prefix + "reset"] = values.reset_s
    events = []
    if len(attempts) > 1 or any(a.failed for a in attempts):
        for index, attempt in enumerate(attempts):
            event: dict[str, Any] = {EVENT_ATTEMPT_NUMBER: index + 1, EVENT_ATTEMPT_DURATION: attempt.duration_s}
            if attempt.status is not None:
                event[STATUS_CODE] = attempt.status
            if attempt.error_type is not None:
                event[ERROR_TYPE] = attempt.error_type
            if attempt.retry_after_s is not None:
                event[EVENT_RETRY_AFTER] = attempt.retry_after_s
            if index < len(waits):
                event[EVENT_WAIT_BEFORE_NEXT] = waits[index]
            if attempt.request_id:
                event[REQUEST_ID] = attempt.request_id
            events.append((EVENT_ATTEMPT, event, attempt.started_ns))
    return AttemptSummary(attributes, events, waits, limits, alias)


def status_class(attempt: Attempt) -> str:
    return f"{attempt.status // 100}xx" if attempt.status is not None else "none"
