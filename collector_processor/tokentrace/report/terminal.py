"""The report as terminal tables (rich), for a person at a shell."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from tokentrace.report.cells import (
    DASH,
    HEADROOM_HEADERS,
    WORST_CALL_HEADERS,
    count,
    headroom_cells,
    pct,
    secs,
    usd,
    without_attempt_info,
    worst_call_cells,
)


def _table(title: str, *columns: str, left: int = 1) -> Table:
    """A table whose first ``left`` columns (names) are left-aligned and the rest (figures) right-aligned."""
    table = Table(title=title, title_justify="left", title_style="bold")
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index < left else "right")
    return table


def render(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    s = report["summary"]
    console.print(
        f"[bold]{s['calls']:,} LLM calls[/] in {s['traces']:,} traces, {s['first_call'] or '—'} → "
        f"{s['last_call'] or '—'}: total [bold]{usd(s['cost_usd'])}[/], {s['errors']:,} failed "
        f"({pct(s['error_rate'])}), {s['input_tokens']:,} input / {s['output_tokens']:,} output tokens"
        + (f"; {s['calls_without_cost']:,} calls without a price" if s["calls_without_cost"] else "")
    )
    for group, rows in report["top_cost"].items():
        table = _table(f"Top by cost: {group}", group, "calls", "cost", "share", "p95", "errors")
        for row in rows:
            table.add_row(
                str(row["key"] or "(none)"),
                f"{row['calls']:,}",
                usd(row["cost_usd"]),
                pct(row["share"]),
                secs(row["p95_s"]),
                f"{row['errors']:,}",
            )
        console.print(table)

    latency = report["latency"]
    table = _table(
        "Latency (duration; time to first chunk for streams)",
        "model",
        "operation",
        "calls",
        "p50",
        "p90",
        "p95",
        "p99",
        "TTFT p50",
        "TTFT p95",
    )
    for row in [{"model": "(all)", "operation": "", "calls": s["calls"], **latency["overall"]}, *latency["by_model"]]:
        d = row["duration_s"] or {}
        t = row["time_to_first_chunk_s"] or {}
        table.add_row(
            str(row["model"]),
            str(row["operation"]),
            f"{row['calls']:,}",
            secs(d.get("p50")),
            secs(d.get("p90")),
            secs(d.get("p95")),
            secs(d.get("p99")),
            secs(t.get("p50")),
            secs(t.get("p95")),
        )
    console.print(table)

    table = _table("Failures", "error.type", "provider", "model", "calls", "rate")
    for row in report["failures"]:
        table.add_row(row["error_type"], str(row["provider"]), str(row["model"]), f"{row['calls']:,}", pct(row["rate"]))
    console.print(table)

    table = _table("Quality flags", "flag", "calls", "rate")
    for row in report["quality_flags"]:
        table.add_row(row["flag"], f"{row['calls']:,}", pct(row["rate"]))
    console.print(table)

    table = _table("Token efficiency", "model", "calls", "input", "output", "cached share", "output/input", "estimated")
    for row in report["efficiency"]:
        ratio = row["output_per_input"]
        table.add_row(
            str(row["model"]),
            f"{row['calls']:,}",
            f"{row['input_tokens']:,}",
            f"{row['output_tokens']:,}",
            pct(row["cached_share"]),
            "—" if ratio is None else f"{ratio:.2f}",
            f"{row['estimated_calls']:,}",
        )
    console.print(table)

    table = _table("Cost over time", "from", "calls", "cost", "errors")
    for row in report["cost_over_time"]:
        table.add_row(row["bucket_start"], f"{row['calls']:,}", usd(row["cost_usd"]), f"{row['errors']:,}")
    console.print(table)

    render_health(report["provider_health"], console)

    what_if = report["what_if"]
    table = _table(
        "What if: the same tokens on a cheaper model",
        "model",
        "calls",
        "cost",
        "cheapest candidate",
        "its cost",
        "saving",
    )
    for row in what_if["models"]:
        best = row["best"]
        table.add_row(
            str(row["model"]),
            f"{row['calls']:,}",
            usd(row["cost_usd"]),
            f"{best['provider']}:{best['model']}" if best else "(none cheaper)",
            usd(best["cost_usd"]) if best else "—",
            f"{usd(best['saving_usd'])} ({pct(best['saving_share'])})" if best else "—",
        )
    console.print(table)
    console.print(
        f"Estimated saving with the cheapest candidate per model: [bold]"
        f"{usd(what_if['best_total_saving_usd'])}[/] ({what_if['caveat']})."
    )


def _with_share(amount: str, share: float | None) -> str:
    """A count and its share, ``2 (11.8%)``; a dash when unknown."""
    return DASH if amount == DASH or share is None else f"{amount} ({pct(share)})"


def render_health(health: dict[str, Any], console: Console) -> None:
    """The provider-health section: attempts, throttling and errors (total and over time), time lost
    to retries with the worst calls, and the lowest rate-limit headroom. Counts and their rates share
    a cell so the tables fit a 120-column terminal; ``--json`` and ``--html`` have every figure apart."""
    t = health["totals"]
    if not health["available"]:
        console.print(f"[bold]Provider health[/]: {health['note'] or 'no LLM calls in the window.'}")
        return
    console.print(
        f"[bold]Provider health[/]: {t['attempts']:,} HTTP attempts for {t['calls_with_attempts']:,} calls "
        f"({t['attempts_per_call']:.2f} per call, {t['retried_calls']:,} calls retried); throttled (429) "
        f"{pct(t['throttling_rate'])}, other errors {pct(t['error_rate'])} of attempts; "
        f"{secs(t['lost_s'])} lost to retries ({pct(t['lost_share'])} of call time)"
        + (f". {health['note']}" if health["note"] else "")
    )
    table = _table(
        "Provider health: attempts and time lost to retries",
        "provider",
        "model",
        "calls",
        "attempts/call",
        "retried",
        "429s (rate)",
        "other errors (rate)",
        "time lost (of call time)",
        left=2,
    )
    for row in health["by_model"]:
        if not row["calls_with_attempts"]:
            continue
        table.add_row(
            str(row["provider"]),
            str(row["model"]),
            f"{row['calls']:,}",
            f"{row['attempts_per_call']:.2f}",
            f"{row['retried_calls']:,}",
            _with_share(count(row["throttled_attempts"]), row["throttling_rate"]),
            _with_share(count(row["other_failed_attempts"]), row["error_rate"]),
            _with_share(secs(row["lost_s"]), row["lost_share"]),
        )
    console.print(table)
    missing = without_attempt_info(health)
    if missing:
        console.print(missing)

    table = _table(
        "Provider health over time: throttling and error rates of attempts",
        "from",
        "provider",
        "attempts",
        "429s (rate)",
        "other errors (rate)",
        left=2,
    )
    for row in health["over_time"]:
        table.add_row(
            row["bucket_start"],
            str(row["provider"]),
            f"{row['attempts']:,}",
            _with_share(count(row["throttled_attempts"]), row["throttling_rate"]),
            _with_share(count(row["other_failed_attempts"]), row["error_rate"]),
        )
    console.print(table)

    table = _table("Time lost to retries: worst calls", *WORST_CALL_HEADERS, left=4)
    for row in health["worst_calls"]:
        table.add_row(*worst_call_cells(row))
    if health["worst_calls"]:
        console.print(table)
    else:
        console.print("Time lost to retries: none (no call was retried or had a failed attempt).")

    if not health["headroom"]:
        console.print("Headroom at peak: no rate-limit headers in these calls.")
        return
    table = _table("Headroom at peak: lowest remaining / limit", *HEADROOM_HEADERS, left=4)
    for row in health["headroom"]:
        table.add_row(*headroom_cells(row))
    console.print(table)
