"""One span as one row of the ``spans`` table (column order of :data:`~tokentrace.store.schema.COLUMNS`).

Reads only the attribute names the conventions and tokentrace define; a span from another
instrumentation has already been renamed to them by the pipeline's normalise stage.
"""

from __future__ import annotations

from typing import Any

import orjson

from tokentrace.core import semconv
from tokentrace.processor.model import SpanData

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


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def to_row(span: SpanData) -> tuple[Any, ...]:
    """The row values; times as epoch microseconds (the insert turns them into TIMESTAMPs)."""
    a = span.attributes
    flags = a.get(semconv.FLAGS)
    cache_write = next((a[name] for name in _CACHE_WRITE_NAMES if name in a), None)
    error_type = _str(a.get(semconv.ERROR_TYPE))
    return (
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
