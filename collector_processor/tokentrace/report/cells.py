"""The text of the report's cells, shared by the terminal and HTML renderers so both say the same."""

from __future__ import annotations

from typing import Any

DASH = "—"  # unknown, never shown as 0


def usd(value: float | None) -> str:
    if value is None:
        return DASH
    if abs(value) < 0.01:
        return f"${value:.6f}"
    return f"${value:,.4f}" if abs(value) < 100 else f"${value:,.2f}"


def pct(value: float | None) -> str:
    return DASH if value is None else f"{value * 100:.1f}%"


def secs(value: float | None) -> str:
    if value is None:
        return DASH
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def count(value: int | None) -> str:
    return DASH if value is None else f"{value:,}"


def when(iso: str | None) -> str:
    """An ISO time as ``2026-01-01 00:03:00.100`` (to the millisecond, no T or Z) for narrow tables."""
    return DASH if not iso else iso.rstrip("Z").replace("T", " ")[:23]


def without_attempt_info(health: dict[str, Any]) -> str | None:
    """The provider/model groups with no attempt info at all, in words (listed apart, never as zeros)."""
    groups = [row for row in health["by_model"] if not row["calls_with_attempts"]]
    if not groups:
        return None
    names = ", ".join(
        f"{row['provider']} {row['model']} ({row['calls']:,} call{'s' if row['calls'] != 1 else ''})" for row in groups
    )
    return f"No attempt info for {names}: left out of the figures."


WORST_CALL_HEADERS = (
    "started", "provider", "model", "request id", "attempts", "429s", "waited", "in failed", "lost", "call",
)  # fmt: skip


def worst_call_cells(row: dict[str, Any]) -> list[str]:
    """One call of the provider-health section's "time lost to retries" table."""
    return [
        when(row["start_time"]),
        str(row["provider"]),
        str(row["model"]),
        row["request_id"] or DASH,
        f"{row['attempts']:,}",
        count(row["throttled_attempts"]),
        secs(row["retry_wait_s"]),
        secs(row["failed_attempts_s"]),
        secs(row["lost_s"]),
        secs(row["duration_s"]),
    ]


HEADROOM_HEADERS = ("provider", "model", "bucket", "key", "lowest", "remaining / limit", "at", "request id")


def headroom_cells(row: dict[str, Any]) -> list[str]:
    """One bucket of the provider-health section's "headroom at peak" table."""
    return [
        str(row["provider"]),
        str(row["model"]),
        row["bucket"],
        row["key_alias"] or DASH,
        pct(row["lowest"]),
        f"{row['remaining']:,.0f} / {row['limit']:,.0f}",
        when(row["at"]),
        row["request_id"] or DASH,
    ]
