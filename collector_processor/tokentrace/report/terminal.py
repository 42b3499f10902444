"""The report as terminal tables (rich), for a person at a shell."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _usd(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) < 0.01:
        return f"${value:.6f}"
    return f"${value:,.4f}" if abs(value) < 100 else f"${value:,.2f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _secs(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold")
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right")
    return table


def render(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    s = report["summary"]
    console.print(
        f"[bold]{s['calls']:,} LLM calls[/] in {s['traces']:,} traces, {s['first_call'] or '—'} → "
        f"{s['last_call'] or '—'}: total [bold]{_usd(s['cost_usd'])}[/], {s['errors']:,} failed "
        f"({_pct(s['error_rate'])}), {s['input_tokens']:,} input / {s['output_tokens']:,} output tokens"
        + (f"; {s['calls_without_cost']:,} calls without a price" if s["calls_without_cost"] else "")
    )
    for group, rows in report["top_cost"].items():
        table = _table(f"Top by cost: {group}", group, "calls", "cost", "share", "p95", "errors")
        for row in rows:
            table.add_row(
                str(row["key"] or "(none)"),
                f"{row['calls']:,}",
                _usd(row["cost_usd"]),
                _pct(row["share"]),
                _secs(row["p95_s"]),
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
            _secs(d.get("p50")),
            _secs(d.get("p90")),
            _secs(d.get("p95")),
            _secs(d.get("p99")),
            _secs(t.get("p50")),
            _secs(t.get("p95")),
        )
    console.print(table)

    table = _table("Failures", "error.type", "provider", "model", "calls", "rate")
    for row in report["failures"]:
        table.add_row(
            row["error_type"], str(row["provider"]), str(row["model"]), f"{row['calls']:,}", _pct(row["rate"])
        )
    console.print(table)

    table = _table("Quality flags", "flag", "calls", "rate")
    for row in report["quality_flags"]:
        table.add_row(row["flag"], f"{row['calls']:,}", _pct(row["rate"]))
    console.print(table)

    table = _table("Token efficiency", "model", "calls", "input", "output", "cached share", "output/input", "estimated")
    for row in report["efficiency"]:
        ratio = row["output_per_input"]
        table.add_row(
            str(row["model"]),
            f"{row['calls']:,}",
            f"{row['input_tokens']:,}",
            f"{row['output_tokens']:,}",
            _pct(row["cached_share"]),
            "—" if ratio is None else f"{ratio:.2f}",
            f"{row['estimated_calls']:,}",
        )
    console.print(table)

    table = _table("Cost over time", "from", "calls", "cost", "errors")
    for row in report["cost_over_time"]:
        table.add_row(row["bucket_start"], f"{row['calls']:,}", _usd(row["cost_usd"]), f"{row['errors']:,}")
    console.print(table)

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
            _usd(row["cost_usd"]),
            f"{best['provider']}:{best['model']}" if best else "(none cheaper)",
            _usd(best["cost_usd"]) if best else "—",
            f"{_usd(best['saving_usd'])} ({_pct(best['saving_share'])})" if best else "—",
        )
    console.print(table)
    console.print(
        f"Estimated saving with the cheapest candidate per model: [bold]"
        f"{_usd(what_if['best_total_saving_usd'])}[/] ({what_if['caveat']})."
    )
