"""One span as one row of the ``spans`` table (column order of :data:`~tokentrace.store.schema.COLUMNS`).

Reads only the attribute names the conventions and tokentrace define; a span from another
instrumentation has already been renamed to them by the pipeline's normalise stage.

This runs once per stored span, in the application's process (``bench/store.py`` measures it), so
the provider-health columns cost a span without ``tokentrace.http.attempts`` one dict lookup; a span
with it pays a handful of lookups (its rate-limit buckets come from one set intersection), and only a
retried or failed call (the ones that carry ``tokentrace.http.attempt`` events) has its events read.
Each bucket's remaining and limit go into one small JSON string (``ratelimits``): DuckDB takes strings
from Python several times faster than lists of structs or maps.
"""

from __future__ import annotations

from typing import Any

import orjson

from tokentrace.core import attempts as health
from tokentrace.core import ratelimits, semconv
from tokentrace.processor.model import STATUS_ERROR, SpanData

_CACHE_WRITE_NAMES = ("gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_write.input_tokens")


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value)
    return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return None


_NUMBERS = (int, float)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS

_RATELIMIT = health.RATELIMIT_PREFIX
_ATTEMPTS, _RETRY_WAIT, _FAILED_ATTEMPTS_DURATION = health.ATTEMPTS, health.RETRY_WAIT, health.FAILED_ATTEMPTS_DURATION
_REQUEST_ID, _API_KEY_ALIAS, _EVENT_ATTEMPT = health.REQUEST_ID, health.API_KEY_ALIAS, health.EVENT_ATTEMPT
_NO_HEALTH: tuple[None, ...] = (None,) * 10
_SORTED = orjson.OPT_SORT_KEYS
_STATIC_BUCKETS = (
    "requests",
    "tokens",
    "input_tokens",
    "output_tokens",
    "tokens_minute",
    "tokens_month",
    "requests_minute",
    "requests_month",
    "calls",
    "calls_month",
)


class _EveryHeader:
    """A header mapping that has every header, so the parser names every bucket it can produce."""

    def get(self, name: str, default: Any = None) -> str:
        return "1"


def _known_buckets() -> tuple[str, ...]:
    """The rate-limit buckets :mod:`tokentrace.core.ratelimits` can report, asked of the parser itself
    so a bucket it learns later is stored without a change here."""
    try:
        return tuple(sorted(set(ratelimits.rate_limits(_EveryHeader())) | set(_STATIC_BUCKETS)))
    except Exception:  # a changed parser API: the buckets known today
        return _STATIC_BUCKETS


RATELIMIT_BUCKETS = _known_buckets()
# tokentrace.ratelimit.<bucket>.remaining -> (bucket, tokentrace.ratelimit.<bucket>.limit); a span's
# buckets are found with one C-level intersection of its keys with these
_REMAINING = {
    f"{_RATELIMIT}{bucket}.remaining": (bucket, f"{_RATELIMIT}{bucket}.limit") for bucket in RATELIMIT_BUCKETS
}
_REMAINING_KEYS = frozenset(_REMAINING)


def _event_outcome(attributes: Any) -> tuple[Any, bool]:
    """(HTTP status, failed) of one attempt event: SDK events carry a mapping, OTLP ones (the
    gateway's spans) a list of protobuf ``KeyValue``."""
    if hasattr(attributes, "get"):
        status = attributes.get(health.STATUS_CODE)
        failed = health.ERROR_TYPE in attributes
    else:
        status, failed = None, False
        for kv in attributes:
            if kv.key == health.STATUS_CODE:
                status = kv.value.int_value
            elif kv.key == health.ERROR_TYPE:
                failed = True
    if isinstance(status, int) and status >= 400:
        failed = True
    return status, failed


def _attempt_outcomes(events: Any, attempts: int, call_failed: bool) -> tuple[int | None, int | None]:
    """(failed attempts, throttled attempts). The instrumentation adds an event per attempt whenever
    a call was retried or an attempt failed, so a single attempt without events did not fail. When
    events should be there and are not (dropped on the way, or a span built without them), unknown."""
    if events:
        failed = throttled = seen = 0
        for event in events:
            if event.name != _EVENT_ATTEMPT:
                continue
            seen += 1
            status, bad = _event_outcome(event.attributes)
            failed += bad
            throttled += status == 429
        if seen:
            return failed, throttled
    if attempts == 1 and (events is not None or not call_failed):
        return 0, 0
    return None, None


def _health(span: SpanData, a: dict[str, Any], call_failed: bool) -> tuple[Any, ...]:
    """The provider-health columns (schema version 2), in :data:`COLUMNS` order."""
    attempts = a.get(_ATTEMPTS)
    if attempts.__class__ is not int:
        return _NO_HEALTH
    events = getattr(span.origin, "events", None)
    if events and events[0].__class__ is bytes:  # the gateway's spans keep their events as bytes
        from opentelemetry.proto.trace.v1.trace_pb2 import Span

        events = [Span.Event.FromString(raw) for raw in events]
    if not events and attempts == 1 and (events is not None or not call_failed):
        failed = throttled = 0  # the common case, inline: one attempt, and it did not fail
    else:
        failed, throttled = _attempt_outcomes(events, attempts, call_failed)
    lowest = lowest_bucket = buckets = None
    for key in a.keys() & _REMAINING_KEYS:
        bucket, limit_key = _REMAINING[key]
        remaining, limit = a[key], a.get(limit_key)
        if remaining.__class__ not in _NUMBERS or limit.__class__ not in _NUMBERS or limit <= 0:
            continue
        if buckets is None:
            buckets = {}
        buckets[bucket] = (remaining, limit)
        headroom = remaining / limit
        if lowest is None or headroom < lowest or (headroom == lowest and bucket < lowest_bucket):
            lowest, lowest_bucket = headroom, bucket
    if lowest is not None:
        lowest = min(1.0, max(0.0, lowest))
    request_id, alias = a.get(_REQUEST_ID), a.get(_API_KEY_ALIAS)
    return (
        attempts,
        failed,
        throttled,
        _float(a.get(_RETRY_WAIT)),
        _float(a.get(_FAILED_ATTEMPTS_DURATION)),
        request_id if request_id.__class__ is str and request_id else None,
        alias if alias.__class__ is str and alias else None,
        lowest,
        lowest_bucket,
        orjson.dumps(buckets, option=_SORTED).decode() if buckets is not None else None,
    )


def to_row(span: SpanData) -> tuple[Any, ...]:
    """The row values; times as epoch microseconds (the insert turns them into TIMESTAMPs)."""
    a = span.attributes
    flags = a.get(semconv.FLAGS)
    cache_write = next((a[name] for name in _CACHE_WRITE_NAMES if name in a), None)
    error_type = _str(a.get(semconv.ERROR_TYPE))
    row = (
        f"{span.trace_id:032x}",
        f"{span.span_id:016x}",
        f"{span.parent_span_id:016x}" if span.parent_span_id else None,
        span.name,
        span.kind,
        _str(span.resource.get("service.name")),
        span.start_ns // 1000,
        span.end_ns // 1000,
        max(0.0, (span.end_ns - span.start_ns) / 1e9),
        span.status_code,
        error_type,
        _str(a.get(semconv.OPERATION_NAME)),
        _str(a.get(semconv.PROVIDER_NAME)) or _str(a.get(semconv.SYSTEM)),
        _str(a.get(semconv.REQUEST_MODEL)),
        _str(a.get(semconv.RESPONSE_MODEL)),
        _int(a.get(semconv.USAGE_INPUT_TOKENS)),
        _int(a.get(semconv.USAGE_OUTPUT_TOKENS)),
        _int(a.get(semconv.USAGE_CACHE_READ_INPUT_TOKENS)),
        _int(cache_write),
        _int(a.get(semconv.USAGE_REASONING_OUTPUT_TOKENS)),
        _str(a.get(semconv.USAGE_SOURCE)),
        _float(a.get(semconv.USAGE_COST_AMOUNT)),
        _str(a.get(semconv.USAGE_COST_SOURCE)),
        _str(a.get(semconv.COST_UNAVAILABLE_REASON)),
        _float(a.get(semconv.RESPONSE_TIME_TO_FIRST_CHUNK)),
        a.get(semconv.REQUEST_STREAM) if isinstance(a.get(semconv.REQUEST_STREAM), bool) else None,
        _str(a.get(semconv.PROMPT_FINGERPRINT)),
        _str(a.get(semconv.ATTRIBUTION_TENANT)),
        _str(a.get(semconv.ATTRIBUTION_FEATURE)),
        _str(a.get(semconv.ATTRIBUTION_USER)),
        [str(flag) for flag in flags] if isinstance(flags, (list, tuple)) else [],
        _str(a.get(semconv.SAMPLING_REASON)),
        orjson.dumps(a, default=_json_default, option=_JSON_OPTIONS).decode(),
    )
    # concatenated, not unpacked into the display above: a tuple display with ``*`` builds a list first
    return row + _health(span, a, error_type is not None or span.status_code == STATUS_ERROR)
