"""The report's numbers, computed by DuckDB over the ``spans`` table.

Every section is one SQL query over the same filtered set of LLM calls (spans with an
``operation``), so the sections agree with each other: the calls counted in "top by model" are
the calls whose latencies make the percentiles. Costs are summed as DOUBLE and rounded only when
rendered.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb

from tokentrace.report.health import provider_health
from tokentrace.report.rows import fetch_dicts, iso
from tokentrace.report.whatif import what_if
from tokentrace.store.schema import COLUMNS

PERCENTILES = (0.5, 0.9, 0.95, 0.99)
GROUPS = {
    "template": "template",
    "model": "coalesce(response_model, request_model)",
    "tenant": "tenant",
    "operation": "operation",
    "provider": "provider",
    "feature": "feature",
}


@dataclass
class Filters:
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    services: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    tenants: list[str] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)

    def where(self) -> tuple[str, list[Any]]:
        clauses, params = ["operation IS NOT NULL"], []
        if self.since is not None:
            clauses.append("start_time >= ?")
            params.append(self.since.replace(tzinfo=None))
        if self.until is not None:
            clauses.append("start_time < ?")
            params.append(self.until.replace(tzinfo=None))
        for column, values in (("service_name", self.services), ("tenant", self.tenants), ("template", self.templates)):
            if values:
                clauses.append(f"{column} IN ({', '.join('?' for _ in values)})")
                params.extend(values)
        if self.models:
            marks = ", ".join("?" for _ in self.models)
            clauses.append(f"(request_model IN ({marks}) OR response_model IN ({marks}))")
            params.extend(self.models * 2)
        return " AND ".join(clauses), params


_NICE_WIDTHS_S = (
    1,
    5,
    10,
    30,
    60,
    300,
    600,
    900,
    1800,
    3600,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86400,
    2 * 86400,
    7 * 86400,
)


def bucket_width_us(window_s: float, buckets: int) -> int:
    """The smallest round width (1 s, 5 min, 1 h, ...) that covers ``window_s`` in ``buckets`` bars."""
    wanted = window_s / max(1, buckets)
    width = next((w for w in _NICE_WIDTHS_S if w >= wanted), _NICE_WIDTHS_S[-1])
    return width * 1_000_000


def spans_source(connection: duckdb.DuckDBPyConnection) -> str:
    """``spans``, or for a file of an older schema (read-only, so not migrated) a view of it with the
    columns it lacks as typed NULLs: the report reads any version, and says "no attempt info" there."""
    present = {row[0] for row in connection.execute("SELECT name FROM pragma_table_info('spans')").fetchall()}
    missing = [f"NULL::{kind} AS {name}" for name, kind, _ in COLUMNS if name not in present]
    return f"(SELECT *, {', '.join(missing)} FROM spans)" if missing else "spans"


def build_report(
    connection: duckdb.DuckDBPyConnection,
    filters: Filters | None = None,
    *,
    top: int = 10,
    candidates: list[str] | None = None,
    buckets: int = 24,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """All sections as JSON-ready data."""
    filters = filters or Filters()
    where, params = filters.where()
    step = progress or (lambda _name: None)
    calls = f"(SELECT * FROM {spans_source(connection)} WHERE {where})"

    step("summary")
    (summary,) = fetch_dicts(
        connection,
        f"""
        SELECT count(*) AS calls,
               count(*) FILTER (WHERE status_code = 2 OR error_type IS NOT NULL) AS errors,
               coalesce(sum(cost_usd), 0) AS cost_usd,
               count(*) FILTER (WHERE cost_usd IS NULL) AS calls_without_cost,
               coalesce(sum(input_tokens), 0) AS input_tokens,
               coalesce(sum(output_tokens), 0) AS output_tokens,
               count(DISTINCT trace_id) AS traces,
               min(start_time) AS first_call, max(start_time) AS last_call
        FROM {calls}""",
        params,
    )
    summary = {key: iso(value) for key, value in summary.items()}
    summary["error_rate"] = summary["errors"] / summary["calls"] if summary["calls"] else 0.0

    step("top by cost")
    top_cost = {}
    for group, expression in GROUPS.items():
        rows = fetch_dicts(
            connection,
            f"""
            SELECT {expression} AS key, count(*) AS calls, coalesce(sum(cost_usd), 0) AS cost_usd,
                   coalesce(sum(input_tokens), 0) AS input_tokens, coalesce(sum(output_tokens), 0) AS output_tokens,
                   quantile_cont(duration_s, 0.95) AS p95_s,
                   count(*) FILTER (WHERE status_code = 2 OR error_type IS NOT NULL) AS errors
            FROM {calls} GROUP BY ALL ORDER BY cost_usd DESC, calls DESC, key NULLS LAST LIMIT ?""",
            [*params, top],
        )
        for row in rows:
            row["share"] = row["cost_usd"] / summary["cost_usd"] if summary["cost_usd"] else 0.0
        top_cost[group] = rows

    step("latency")
    quantiles = ", ".join(str(p) for p in PERCENTILES)
    latency = fetch_dicts(
        connection,
        f"""
        SELECT coalesce(response_model, request_model) AS model, operation, count(*) AS calls,
               quantile_cont(duration_s, [{quantiles}]) AS duration_s,
               quantile_cont(time_to_first_chunk_s, [{quantiles}]) AS time_to_first_chunk_s,
               count(time_to_first_chunk_s) AS streamed_calls
        FROM {calls} GROUP BY ALL ORDER BY calls DESC, model LIMIT ?""",
        [*params, top],
    )
    (overall,) = fetch_dicts(
        connection,
        f"""
        SELECT quantile_cont(duration_s, [{quantiles}]) AS duration_s,
               quantile_cont(time_to_first_chunk_s, [{quantiles}]) AS time_to_first_chunk_s
        FROM {calls}""",
        params,
    )
    for row in [overall, *latency]:
        for key in ("duration_s", "time_to_first_chunk_s"):
            values = row[key]
            row[key] = dict(zip(("p50", "p90", "p95", "p99"), values, strict=False)) if values else None
    histogram = fetch_dicts(
        connection,
        f"""
        SELECT floor(log10(greatest(duration_s, 0.001)) * 4) / 4 AS log10_bin, count(*) AS calls
        FROM {calls} GROUP BY ALL ORDER BY log10_bin""",
        params,
    )

    step("failures")
    failures = fetch_dicts(
        connection,
        f"""
        SELECT coalesce(error_type, '_OTHER') AS error_type, provider,
               coalesce(response_model, request_model) AS model, count(*) AS calls
        FROM {calls} WHERE status_code = 2 OR error_type IS NOT NULL
        GROUP BY ALL ORDER BY calls DESC, error_type LIMIT ?""",
        [*params, top],
    )
    for row in failures:
        row["rate"] = row["calls"] / summary["calls"] if summary["calls"] else 0.0

    step("quality flags")
    flags = fetch_dicts(
        connection,
        f"""
        SELECT flag, count(*) AS calls FROM (SELECT unnest(flags) AS flag FROM {calls})
        GROUP BY ALL ORDER BY calls DESC, flag""",
        params,
    )
    for row in flags:
        row["rate"] = row["calls"] / summary["calls"] if summary["calls"] else 0.0

    step("token efficiency")
    efficiency = fetch_dicts(
        connection,
        f"""
        SELECT coalesce(response_model, request_model) AS model, count(*) AS calls,
               coalesce(sum(input_tokens), 0) AS input_tokens, coalesce(sum(output_tokens), 0) AS output_tokens,
               coalesce(sum(cache_read_tokens), 0) AS cache_read_tokens,
               coalesce(sum(reasoning_tokens), 0) AS reasoning_tokens,
               count(*) FILTER (WHERE usage_source = 'estimated') AS estimated_calls
        FROM {calls} GROUP BY ALL ORDER BY input_tokens DESC LIMIT ?""",
        [*params, top],
    )
    for row in efficiency:
        row["cached_share"] = row["cache_read_tokens"] / row["input_tokens"] if row["input_tokens"] else 0.0
        row["output_per_input"] = row["output_tokens"] / row["input_tokens"] if row["input_tokens"] else None

    step("cost over time")
    over_time: list[dict[str, Any]] = []
    width_us: int | None = None
    if summary["calls"]:
        first = dt.datetime.fromisoformat(summary["first_call"].rstrip("Z"))
        last = dt.datetime.fromisoformat(summary["last_call"].rstrip("Z"))
        width_us = bucket_width_us((last - first).total_seconds(), buckets)
        over_time = fetch_dicts(
            connection,
            f"""
            SELECT make_timestamp((epoch_us(start_time) // ?) * ?) AS bucket_start, count(*) AS calls,
                   coalesce(sum(cost_usd), 0) AS cost_usd,
                   count(*) FILTER (WHERE status_code = 2 OR error_type IS NOT NULL) AS errors
            FROM {calls} GROUP BY ALL ORDER BY bucket_start""",
            [width_us, width_us, *params],
        )
        for row in over_time:
            row["bucket_start"] = iso(row["bucket_start"])
            row["bucket_seconds"] = width_us / 1e6

    step("provider health")
    health = provider_health(connection, calls, params, width_us, top)

    step("what-if")
    usage_by_model = fetch_dicts(
        connection,
        f"""
        SELECT provider, coalesce(response_model, request_model) AS model, count(*) AS calls,
               coalesce(sum(cost_usd), 0) AS cost_usd, sum(input_tokens) AS input_tokens,
               sum(output_tokens) AS output_tokens, coalesce(sum(cache_read_tokens), 0) AS cache_read_tokens,
               coalesce(sum(cache_write_tokens), 0) AS cache_write_tokens
        FROM {calls} WHERE (input_tokens IS NOT NULL OR output_tokens IS NOT NULL)
          AND operation IN ('chat', 'text_completion', 'generate_content')
        GROUP BY ALL ORDER BY cost_usd DESC""",
        params,
    )

    return {
        "filters": {
            "since": iso(filters.since),
            "until": iso(filters.until),
            "services": filters.services,
            "models": filters.models,
            "tenants": filters.tenants,
            "templates": filters.templates,
        },
        "summary": summary,
        "top_cost": top_cost,
        "latency": {"overall": overall, "by_model": latency, "histogram": histogram},
        "failures": failures,
        "quality_flags": flags,
        "efficiency": efficiency,
        "cost_over_time": over_time,
        "what_if": what_if(usage_by_model, candidates),
        "provider_health": health,
    }
