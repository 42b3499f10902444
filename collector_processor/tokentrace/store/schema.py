"""The store's one table, ``spans``: a column per question the report answers, plus the rest as JSON.

Columns are what reports group, filter and sum on (model, tenant, template, cost, tokens, latency,
provider health); everything else a span carried stays queryable in ``attributes`` (JSON). Times are
UTC ``TIMESTAMP`` values; durations are seconds as ``DOUBLE``. ``schema_version`` in the ``meta``
table lets a newer tokentrace migrate an older file (:data:`ADDED_IN`) rather than misread it, and an
older tokentrace refuse a newer file.

Columns are only ever appended (``ALTER TABLE ... ADD COLUMN``), so a migrated file and a new one
have the same columns in the same order, and an older writer's explicit-column ``INSERT`` still works
on a migrated file (its rows get NULL in the new columns, as do the rows written before).
"""

from __future__ import annotations

import os
from pathlib import Path

SCHEMA_VERSION = 2
PATH_ENV = "TOKENTRACE_STORE_PATH"
DEFAULT_FILE = "tokentrace.duckdb"


def default_path() -> Path:
    """``TOKENTRACE_STORE_PATH``, else ``tokentrace.duckdb`` in the working directory (where
    ``tokentrace report`` looks by default, like ``.coverage`` for coverage.py)."""
    return Path(os.environ.get(PATH_ENV) or DEFAULT_FILE)


# (column, DuckDB type, meaning) — docs/store.md is generated from the same table by hand; keep both.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("trace_id", "VARCHAR", "32 lowercase hex digits"),
    ("span_id", "VARCHAR", "16 lowercase hex digits"),
    ("parent_span_id", "VARCHAR", "16 hex digits, NULL for a root span"),
    ("name", "VARCHAR", "span name"),
    ("kind", "TINYINT", "OTLP SpanKind number (3 = CLIENT)"),
    ("service_name", "VARCHAR", "resource service.name"),
    ("start_time", "TIMESTAMP", "UTC"),
    ("end_time", "TIMESTAMP", "UTC"),
    ("duration_s", "DOUBLE", "end - start, seconds"),
    ("status_code", "TINYINT", "0 unset, 1 ok, 2 error"),
    ("error_type", "VARCHAR", "error.type, NULL when the call succeeded"),
    ("operation", "VARCHAR", "gen_ai.operation.name, NULL for non-GenAI spans"),
    ("provider", "VARCHAR", "gen_ai.provider.name (gen_ai.system for older instrumentations)"),
    ("request_model", "VARCHAR", "gen_ai.request.model"),
    ("response_model", "VARCHAR", "gen_ai.response.model"),
    ("input_tokens", "BIGINT", "gen_ai.usage.input_tokens (includes cached)"),
    ("output_tokens", "BIGINT", "gen_ai.usage.output_tokens (includes reasoning)"),
    ("cache_read_tokens", "BIGINT", "gen_ai.usage.cache_read.input_tokens"),
    ("cache_write_tokens", "BIGINT", "gen_ai.usage.cache_creation.input_tokens"),
    ("reasoning_tokens", "BIGINT", "gen_ai.usage.reasoning.output_tokens"),
    ("usage_source", "VARCHAR", "reported | estimated"),
    ("cost_usd", "DOUBLE", "gen_ai.usage.cost.amount, NULL when unavailable"),
    ("cost_source", "VARCHAR", "gen_ai.usage.cost.source"),
    ("cost_unavailable_reason", "VARCHAR", "tokentrace.cost.unavailable_reason"),
    ("time_to_first_chunk_s", "DOUBLE", "gen_ai.response.time_to_first_chunk (streams)"),
    ("stream", "BOOLEAN", "gen_ai.request.stream"),
    ("template", "VARCHAR", "tokentrace.prompt.fingerprint"),
    ("tenant", "VARCHAR", "tokentrace.tenant"),
    ("feature", "VARCHAR", "tokentrace.feature"),
    ("user_id", "VARCHAR", "tokentrace.user"),
    ("flags", "VARCHAR[]", "tokentrace.flags (quality and safety flags raised)"),
    ("sampling_reason", "VARCHAR", "tokentrace.sampling.reason"),
    ("attributes", "JSON", "every span attribute, as JSON"),
    # version 2: provider health (tokentrace.http.* and tokentrace.ratelimit.* on the call span)
    ("attempts", "INTEGER", "tokentrace.http.attempts: HTTP requests sent for the call, retries included"),
    ("failed_attempts", "INTEGER", "attempts that failed (HTTP status >= 400 or a transport error)"),
    ("throttled_attempts", "INTEGER", "attempts answered 429 Too Many Requests"),
    ("retry_wait_s", "DOUBLE", "tokentrace.http.retry_wait: seconds waited between attempts"),
    ("failed_attempts_s", "DOUBLE", "tokentrace.http.failed_attempts.duration: seconds spent in failed attempts"),
    ("request_id", "VARCHAR", "tokentrace.request_id: the provider's id of the last response"),
    ("api_key_alias", "VARCHAR", "tokentrace.api_key.alias: which credential (never the key)"),
    ("min_headroom", "DOUBLE", "lowest remaining / limit over the call's rate-limit buckets, 0..1"),
    ("min_headroom_bucket", "VARCHAR", "the bucket of min_headroom (requests, tokens, input_tokens, ...)"),
    ("ratelimits", "JSON", "every rate-limit bucket of the call: {bucket: [remaining, limit]}"),
)

# schema version -> the columns it added (the migration of an older file adds them, NULL in old rows)
ADDED_IN: dict[int, tuple[str, ...]] = {
    2: (
        "attempts",
        "failed_attempts",
        "throttled_attempts",
        "retry_wait_s",
        "failed_attempts_s",
        "request_id",
        "api_key_alias",
        "min_headroom",
        "min_headroom_bucket",
        "ratelimits",
    ),
}

COLUMN_NAMES = tuple(name for name, _, _ in COLUMNS)

DDL = (
    "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    "CREATE TABLE IF NOT EXISTS spans (" + ", ".join(f"{name} {kind}" for name, kind, _ in COLUMNS) + ")",
)
