"""The report's provider-health section: how often providers throttled or failed the SDKs' HTTP
attempts, how much time retries cost, and how close the calls came to their rate limits.

The figures come from the store's attempt columns (schema version 2), which the instrumentation
fills for SDKs whose HTTP client it hooks. Calls without them (spans from older versions, other
instrumentations, SDKs not hooked) are counted apart and left out of every rate, so "no attempt info"
never reads as "no retries". Calls group by the model the application asked for (``request_model``):
a throttled call has no response model, and grouping it apart from its successful siblings would
hide the throttling.
"""

from __future__ import annotations

from typing import Any

import duckdb

from tokentrace.report.rows import fetch_dicts, iso

MODEL = "coalesce(request_model, response_model)"
LOST = "(coalesce(retry_wait_s, 0) + coalesce(failed_attempts_s, 0))"

# attempts (retries included), their outcomes, and the time they cost; rates are derived in Python
_AGGREGATES = f"""
    count(*) AS calls,
    count(attempts) AS calls_with_attempts,
    sum(attempts) AS attempts,
    count(*) FILTER (WHERE attempts > 1) AS retried_calls,
    sum(attempts) FILTER (WHERE throttled_attempts IS NOT NULL AND failed_attempts IS NOT NULL) AS counted_attempts,
    sum(throttled_attempts) FILTER (WHERE failed_attempts IS NOT NULL) AS throttled_attempts,
    sum(failed_attempts - throttled_attempts) AS other_failed_attempts,
    sum(retry_wait_s) AS retry_wait_s,
    sum(failed_attempts_s) AS failed_attempts_s,
    sum({LOST}) FILTER (WHERE attempts IS NOT NULL) AS lost_s,
    sum(duration_s) FILTER (WHERE attempts IS NOT NULL) AS call_time_s"""


def _ratio(part: float | None, whole: float | None) -> float | None:
    return part / whole if part is not None and whole else None


def _rates(row: dict[str, Any]) -> dict[str, Any]:
    """Per-call and per-attempt figures of one aggregate row; None where the calls had no attempt info."""
    counted = row["counted_attempts"]
    row["attempts_per_call"] = _ratio(row["attempts"], row["calls_with_attempts"])
    row["throttling_rate"] = _ratio(row["throttled_attempts"], counted)
    row["error_rate"] = _ratio(row["other_failed_attempts"], counted)
    row["lost_share"] = _ratio(row.get("lost_s"), row.get("call_time_s"))
    return row


def provider_health(
    connection: duckdb.DuckDBPyConnection, calls: str, params: list[Any], width_us: int | None, top: int
) -> dict[str, Any]:
    """The section's data over ``calls`` (the report's filtered calls subquery and its parameters)."""
    (totals,) = fetch_dicts(connection, f"SELECT {_AGGREGATES} FROM {calls}", params)
    totals = _rates(totals)
    with_attempts = totals["calls_with_attempts"]
    section: dict[str, Any] = {
        "available": bool(with_attempts),
        "calls": totals["calls"],
        "calls_with_attempts": with_attempts,
        "note": _note(totals["calls"], with_attempts),
        "totals": totals,
        "by_model": [],
        "over_time": [],
        "worst_calls": [],
        "headroom": [],
    }
    if not with_attempts:
        return section

    section["by_model"] = [
        _rates(row)
        for row in fetch_dicts(
            connection,
            f"""
            SELECT provider, {MODEL} AS model, {_AGGREGATES}
            FROM {calls} GROUP BY ALL
            ORDER BY calls_with_attempts = 0, lost_s DESC NULLS LAST, calls DESC, provider, model LIMIT ?""",
            [*params, top],
        )
    ]

    if width_us:
        over_time = fetch_dicts(
            connection,
            f"""
            SELECT make_timestamp((epoch_us(start_time) // ?) * ?) AS bucket_start, provider, {_AGGREGATES}
            FROM {calls} WHERE attempts IS NOT NULL GROUP BY ALL ORDER BY bucket_start, provider""",
            [width_us, width_us, *params],
        )
        for row in over_time:
            row["bucket_start"] = iso(row["bucket_start"])
            row["bucket_seconds"] = width_us / 1e6
            _rates(row)
        section["over_time"] = over_time

    worst = fetch_dicts(
        connection,
        f"""
        SELECT start_time, provider, {MODEL} AS model, request_id, attempts, failed_attempts, throttled_attempts,
               retry_wait_s, failed_attempts_s, {LOST} AS lost_s, duration_s, error_type, trace_id, span_id
        FROM {calls} WHERE attempts IS NOT NULL AND {LOST} > 0
        ORDER BY lost_s DESC, start_time, span_id LIMIT ?""",
        [*params, top],
    )
    for row in worst:
        row["start_time"] = iso(row["start_time"])
    section["worst_calls"] = worst

    # the lowest remaining/limit per provider, model, bucket and key, and the call it was seen on (the
    # earliest on a tie); a cast to a MAP parses each call's small JSON once (json_each is ten times slower)
    headroom = fetch_dicts(
        connection,
        f"""
        WITH entries AS (
            SELECT provider, {MODEL} AS model, api_key_alias AS key_alias, end_time, request_id,
                   unnest(map_entries(TRY_CAST(ratelimits AS MAP(VARCHAR, DOUBLE[])))) AS entry
            FROM {calls} WHERE ratelimits IS NOT NULL
        ), buckets AS (
            SELECT * EXCLUDE (entry), entry.key AS bucket, entry.value[1] AS remaining, entry.value[2] AS "limit"
            FROM entries
        ), lowest AS (
            SELECT provider, model, bucket, key_alias, count(*) AS calls,
                   arg_min({{'remaining': remaining, 'limit': "limit", 'at': end_time, 'request_id': request_id}},
                           (remaining / "limit", end_time)) AS seen
            FROM buckets WHERE "limit" > 0 AND remaining IS NOT NULL GROUP BY ALL
        )
        SELECT provider, model, bucket, key_alias, least(1.0, greatest(0.0, seen.remaining / seen.limit)) AS lowest,
               seen.remaining AS remaining, seen.limit AS "limit", seen.at AS at, seen.request_id AS request_id, calls
        FROM lowest ORDER BY lowest, provider, model, bucket, key_alias NULLS LAST LIMIT ?""",
        [*params, top],
    )
    for row in headroom:
        row["at"] = iso(row["at"])
    section["headroom"] = headroom
    return section


def _note(calls: int, with_attempts: int) -> str | None:
    """What the figures cover, in words, when not every call carries attempt info."""
    if not calls:
        return None
    if not with_attempts:
        return (
            f"No HTTP attempt info in these {calls:,} calls: they were recorded by a tokentrace version before "
            "provider health, by another instrumentation, or through an SDK whose HTTP client is not hooked. "
            "Throttling, retries and headroom are unknown here, not zero."
        )
    if with_attempts < calls:
        return (
            f"HTTP attempt info for {with_attempts:,} of {calls:,} calls; the other {calls - with_attempts:,} "
            "(older versions, other instrumentations, SDKs not hooked) are left out of every rate below."
        )
    return None
