"""The store's one table, ``spans``: a column per question the report answers, plus the rest as JSON.

Columns are what reports group, filter and sum on (model, tenant, template, cost, tokens, latency);
everything else a span carried stays queryable in ``attributes`` (JSON). Times are UTC
``TIMESTAMP`` values; durations are seconds as ``DOUBLE``. ``schema_version`` in the ``meta`` table
lets a newer tokentrace migrate an older file rather than misread it.
"""

from __future__ import annotations

import os
from pathlib import Path

SCHEMA_VERSION = 1
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
)

COLUMN_NAMES = tuple(name for name, _, _ in COLUMNS)

DDL = (
    "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    "CREATE TABLE IF NOT EXISTS spans (" + ", ".join(f"{name} {kind}" for name, kind, _ in COLUMNS) + ")",
)
