"""Query results as the report's sections hand them on: dicts with JSON-ready timestamps."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb


def fetch_dicts(connection: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    """Each result row as a dict by column name (what the renderers and ``--json`` take)."""
    cursor = connection.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=False)) for row in cursor.fetchall()]


def iso(value: Any) -> Any:
    """A stored (UTC, naive) timestamp as ISO 8601 with ``Z``; anything else unchanged."""
    return value.isoformat() + "Z" if isinstance(value, dt.datetime) else value
