"""The report as one self-contained HTML page: inline SVG charts and tables, no scripts or fonts
fetched from anywhere, so it opens the same offline, in a mail attachment or in CI artefacts."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from tokentrace.report.cells import (
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

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1b1f24;padding:0 1rem}
h1{font-size:1.5rem} h2{font-size:1.1rem;margin-top:2rem;border-bottom:1px solid #ddd} h3{font-size:1rem}
table{border-collapse:collapse;margin:.5rem 0 1rem} td,th{padding:.2rem .7rem;border-bottom:1px solid #eee}
td{text-align:right} td:first-child,th:first-child{text-align:left}
.charts{display:grid;grid-template-columns:1fr 1fr;gap:1.5rem} figure{margin:0}
figcaption{font-weight:600;margin-bottom:.3rem} svg text{font-size:11px;fill:#444}
.note{color:#666;font-size:12px}
"""


# One colour per chart, so a screenshot shows which charts drew their bars.
CHART_COLOURS = {
    "cost-over-time": "#3b6fd8",
    "latency-distribution": "#2a9d8f",
    "cost-by-model": "#e76f51",
    "cost-by-template": "#8e44ad",
    "throttling-over-time": "#f4a261",  # its first series (throttling rate); SERIES_COLOURS has the other
    "retry-time-by-model": "#c9a000",
    "headroom-lowest": "#4f8a2b",
}
SERIES_COLOURS = {"throttling-rate": CHART_COLOURS["throttling-over-time"], "error-rate": "#b5179e"}


def _tooltip(label: str, value: str) -> str:
    return f"<title>{escape(label)}: {escape(value)}</title>"


def _bar_chart(name: str, labels: list[str], values: list[float], fmt: Any, *, horizontal: bool) -> str:
    width = 520
    height = 260 if not horizontal or not values else 16 + 28 * len(values)
    top = max(values) if values and max(values) > 0 else 1.0
    parts = [
        f'<style>svg[data-chart="{name}"] .bar{{fill:{CHART_COLOURS[name]}}}</style>',
        f'<svg class="chart" data-chart="{escape(name)}" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img">',
    ]
    if not values:
        parts.append('<text x="10" y="20">no data</text>')
    elif horizontal:
        row = min(28.0, (height - 10) / len(values))
        for i, (label, value) in enumerate(zip(labels, values, strict=False)):
            y = 5 + i * row
            length = (width - 260) * value / top
            parts.append(f'<text x="0" y="{y + row * 0.65:.1f}">{escape(label[:28])}</text>')
            parts.append(
                f'<rect class="bar" x="170" y="{y:.1f}" width="{max(length, 1):.1f}" '
                f'height="{row * 0.7:.1f}">{_tooltip(label, fmt(value))}</rect>'
            )
            parts.append(f'<text x="{175 + length:.1f}" y="{y + row * 0.65:.1f}">{escape(fmt(value))}</text>')
    else:
        column = (width - 20) / len(values)
        for i, (label, value) in enumerate(zip(labels, values, strict=False)):
            bar = (height - 40) * value / top
            x = 10 + i * column
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{height - 25 - bar:.1f}" '
                f'width="{max(column * 0.8, 1):.1f}" height="{max(bar, 1):.1f}">{_tooltip(label, fmt(value))}</rect>'
            )
            if len(values) <= 12 or i % max(1, len(values) // 8) == 0:
                parts.append(f'<text x="{x:.1f}" y="{height - 8}">{escape(label[:14])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _grouped_bar_chart(name: str, labels: list[str], series: list[tuple[str, str, list[float]]], fmt: Any) -> str:
    """Side-by-side bars per label, one colour per series (``(key, title, values)``; colours from
    :data:`SERIES_COLOURS`), with a legend."""
    width, height = 520, 260
    every = [value for _, _, values in series for value in values]
    top = max(every) if every and max(every) > 0 else 1.0
    styles = "".join(f'svg[data-chart="{name}"] .{key}{{fill:{SERIES_COLOURS[key]}}}' for key, _, _ in series)
    parts = [
        f"<style>{styles}</style>",
        f'<svg class="chart" data-chart="{escape(name)}" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img">',
    ]
    for index, (key, title, _) in enumerate(series):
        x = 10 + index * 170
        parts.append(f'<rect class="{key}" x="{x}" y="4" width="10" height="10"></rect>')
        parts.append(f'<text x="{x + 14}" y="13">{escape(title)}</text>')
    if not labels:
        parts.append('<text x="10" y="40">no data</text>')
    else:
        column = (width - 20) / len(labels)
        bar = column * 0.8 / len(series)
        step = -(-len(labels) // 8)  # at most 8 labels, so they never overlap
        for i, label in enumerate(labels):
            x = 10 + i * column
            for j, (key, title, values) in enumerate(series):
                length = (height - 60) * values[i] / top
                parts.append(
                    f'<rect class="{key}" x="{x + j * bar:.1f}" y="{height - 25 - length:.1f}" '
                    f'width="{max(bar, 1):.1f}" height="{max(length, 1):.1f}">'
                    f"{_tooltip(f'{label} {title}', fmt(values[i]))}</rect>"
                )
            if i % step == 0:
                parts.append(f'<text x="{x:.1f}" y="{height - 8}">{escape(label[:14])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render(report: dict[str, Any]) -> str:
    s = report["summary"]
    over_time = report["cost_over_time"]
    by_model = report["top_cost"]["model"]
    by_template = report["top_cost"]["template"]
    histogram = report["latency"]["histogram"]
    charts = [
        (
            "cost-over-time",
            "Cost over time",
            _bar_chart(
                "cost-over-time",
                [r["bucket_start"][11:16] for r in over_time],
                [r["cost_usd"] for r in over_time],
                usd,
                horizontal=False,
            ),
        ),
        (
            "latency-distribution",
            "Latency distribution (calls per duration band)",
            _bar_chart(
                "latency-distribution",
                [secs(10 ** r["log10_bin"]) for r in histogram],
                [float(r["calls"]) for r in histogram],
                lambda v: f"{v:.0f} calls",
                horizontal=False,
            ),
        ),
        (
            "cost-by-model",
            "Cost by model",
            _bar_chart(
                "cost-by-model",
                [str(r["key"]) for r in by_model],
                [r["cost_usd"] for r in by_model],
                usd,
                horizontal=True,
            ),
        ),
        (
            "cost-by-template",
            "Cost by prompt template",
            _bar_chart(
                "cost-by-template",
                [str(r["key"] or "(none)") for r in by_template],
                [r["cost_usd"] for r in by_template],
                usd,
                horizontal=True,
            ),
        ),
    ]
    sections = [
        "<h1>tokentrace report</h1>",
        f"<p><b>{s['calls']:,}</b> LLM calls in {s['traces']:,} traces, {escape(str(s['first_call']))} → "
        f"{escape(str(s['last_call']))}: total <b>{escape(usd(s['cost_usd']))}</b>, {s['errors']:,} failed "
        f"({escape(pct(s['error_rate']))}).</p>",
        '<div class="charts">'
        + "".join(
            f'<figure id="{name}"><figcaption>{escape(title)}</figcaption>{svg}</figure>' for name, title, svg in charts
        )
        + "</div>",
    ]
    for group, rows in report["top_cost"].items():
        sections.append(f"<h2>Top by cost: {escape(group)}</h2>")
        sections.append(
            _table(
                [group, "calls", "cost", "share", "p95", "errors"],
                [
                    [
                        str(r["key"] or "(none)"),
                        f"{r['calls']:,}",
                        usd(r["cost_usd"]),
                        pct(r["share"]),
                        secs(r["p95_s"]),
                        f"{r['errors']:,}",
                    ]
                    for r in rows
                ],
            )
        )
    latency = report["latency"]
    sections.append("<h2>Latency</h2>")
    latency_rows = []
    for row in [{"model": "(all)", "operation": "", "calls": s["calls"], **latency["overall"]}, *latency["by_model"]]:
        d, t = row["duration_s"] or {}, row["time_to_first_chunk_s"] or {}
        latency_rows.append(
            [
                str(row["model"]),
                str(row["operation"]),
                f"{row['calls']:,}",
                *(secs(d.get(p)) for p in ("p50", "p90", "p95", "p99")),
                secs(t.get("p50")),
                secs(t.get("p95")),
            ]
        )
    sections.append(
        _table(["model", "operation", "calls", "p50", "p90", "p95", "p99", "TTFT p50", "TTFT p95"], latency_rows)
    )
    sections.append("<h2>Failures</h2>")
    sections.append(
        _table(
            ["error.type", "provider", "model", "calls", "rate"],
            [
                [r["error_type"], str(r["provider"]), str(r["model"]), f"{r['calls']:,}", pct(r["rate"])]
                for r in report["failures"]
            ],
        )
    )
    sections.append("<h2>Quality flags</h2>")
    sections.append(
        _table(
            ["flag", "calls", "rate"],
            [[r["flag"], f"{r['calls']:,}", pct(r["rate"])] for r in report["quality_flags"]],
        )
    )
    sections.append("<h2>Token efficiency</h2>")
    sections.append(
        _table(
            ["model", "calls", "input", "output", "cached share", "output/input"],
            [
                [
                    str(r["model"]),
                    f"{r['calls']:,}",
                    f"{r['input_tokens']:,}",
                    f"{r['output_tokens']:,}",
                    pct(r["cached_share"]),
                    "—" if r["output_per_input"] is None else f"{r['output_per_input']:.2f}",
                ]
                for r in report["efficiency"]
            ],
        )
    )
    sections.extend(_health_section(report["provider_health"]))
    what_if = report["what_if"]
    sections.append("<h2>What if: the same tokens on a cheaper model</h2>")
    sections.append(
        _table(
            ["model", "calls", "cost", "cheapest candidate", "its cost", "saving"],
            [
                [
                    str(r["model"]),
                    f"{r['calls']:,}",
                    usd(r["cost_usd"]),
                    f"{r['best']['provider']}:{r['best']['model']}" if r["best"] else "(none cheaper)",
                    usd(r["best"]["cost_usd"]) if r["best"] else "—",
                    f"{usd(r['best']['saving_usd'])} ({pct(r['best']['saving_share'])})" if r["best"] else "—",
                ]
                for r in what_if["models"]
            ],
        )
    )
    sections.append(
        f"<p>Estimated saving: <b>{escape(usd(what_if['best_total_saving_usd']))}</b>. "
        f'<span class="note">{escape(what_if["caveat"])}</span></p>'
    )
    data = json.dumps(report, default=str).replace("</", "<\\/")
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>tokentrace report</title>'
        f"<style>{_STYLE}</style></head><body>{''.join(sections)}"
        f'<script type="application/json" id="report-data">{data}</script></body></html>'
    )


_BY_MODEL_HEADERS = [
    "provider",
    "model",
    "calls",
    "attempts/call",
    "retried",
    "429s",
    "429 rate",
    "other errors",
    "error rate",
    "time lost",
    "of call time",
]


def _rates_by_bucket(over_time: list[dict[str, Any]]) -> tuple[list[str], list[float], list[float]]:
    """Throttling and error rates per time bucket, all providers together (the table has them apart)."""
    buckets: dict[str, list[int]] = {}
    for row in over_time:
        totals = buckets.setdefault(row["bucket_start"], [0, 0, 0])
        totals[0] += row["counted_attempts"] or 0
        totals[1] += row["throttled_attempts"] or 0
        totals[2] += row["other_failed_attempts"] or 0
    seconds = over_time[0]["bucket_seconds"] if over_time else 60
    labels = [start[11:16] if seconds >= 60 else start[11:19] for start in buckets]
    throttling = [t[1] / t[0] if t[0] else 0.0 for t in buckets.values()]
    errors = [t[2] / t[0] if t[0] else 0.0 for t in buckets.values()]
    return labels, throttling, errors


def _health_section(health: dict[str, Any]) -> list[str]:
    parts = ['<h2 id="provider-health">Provider health</h2>']
    if not health["available"]:
        parts.append(f'<p class="note">{escape(health["note"] or "No LLM calls in the window.")}</p>')
        return parts
    t = health["totals"]
    parts.append(
        f"<p><b>{t['attempts']:,}</b> HTTP attempts for {t['calls_with_attempts']:,} calls "
        f"({t['attempts_per_call']:.2f} per call, {t['retried_calls']:,} retried): throttled (429) "
        f"<b>{escape(pct(t['throttling_rate']))}</b>, other errors <b>{escape(pct(t['error_rate']))}</b> of "
        f"attempts; <b>{escape(secs(t['lost_s']))}</b> lost to retries ({escape(pct(t['lost_share']))} of "
        "call time).</p>"
    )
    if health["note"]:
        parts.append(f'<p class="note">{escape(health["note"])}</p>')
    labels, throttling, errors = _rates_by_bucket(health["over_time"])
    lost = [r for r in health["by_model"] if r["lost_s"]]
    charts = [
        (
            "throttling-over-time",
            "Throttling and error rates of attempts over time",
            _grouped_bar_chart(
                "throttling-over-time",
                labels,
                [("throttling-rate", "throttled (429)", throttling), ("error-rate", "other errors", errors)],
                pct,
            ),
        ),
        (
            "retry-time-by-model",
            "Time lost to retries by model",
            _bar_chart(
                "retry-time-by-model",
                [f"{r['provider']}:{r['model']}" for r in lost],
                [r["lost_s"] for r in lost],
                secs,
                horizontal=True,
            ),
        ),
        (
            "headroom-lowest",
            "Lowest rate-limit headroom (remaining / limit)",
            _bar_chart(
                "headroom-lowest",
                [f"{r['model']} {r['bucket']} {r['key_alias'] or ''}" for r in health["headroom"]],
                [r["lowest"] for r in health["headroom"]],
                pct,
                horizontal=True,
            ),
        ),
    ]
    parts.append(
        '<div class="charts">'
        + "".join(
            f'<figure id="{name}"><figcaption>{escape(title)}</figcaption>{svg}</figure>' for name, title, svg in charts
        )
        + "</div>"
    )
    parts.append("<h3>Attempts and time lost to retries</h3>")
    parts.append(
        _table(
            _BY_MODEL_HEADERS,
            [
                [
                    str(r["provider"]),
                    str(r["model"]),
                    f"{r['calls']:,}",
                    f"{r['attempts_per_call']:.2f}",
                    f"{r['retried_calls']:,}",
                    count(r["throttled_attempts"]),
                    pct(r["throttling_rate"]),
                    count(r["other_failed_attempts"]),
                    pct(r["error_rate"]),
                    secs(r["lost_s"]),
                    pct(r["lost_share"]),
                ]
                for r in health["by_model"]
                if r["calls_with_attempts"]
            ],
        )
    )
    missing = without_attempt_info(health)
    if missing:
        parts.append(f'<p class="note">{escape(missing)}</p>')
    parts.append("<h3>Over time</h3>")
    parts.append(
        _table(
            ["from", "provider", "attempts", "429s", "429 rate", "other errors", "error rate"],
            [
                [
                    r["bucket_start"],
                    str(r["provider"]),
                    f"{r['attempts']:,}",
                    count(r["throttled_attempts"]),
                    pct(r["throttling_rate"]),
                    count(r["other_failed_attempts"]),
                    pct(r["error_rate"]),
                ]
                for r in health["over_time"]
            ],
        )
    )
    parts.append("<h3>Worst calls by time lost to retries</h3>")
    parts.append(
        _table(list(WORST_CALL_HEADERS), [worst_call_cells(r) for r in health["worst_calls"]])
        if health["worst_calls"]
        else '<p class="note">No call was retried or had a failed attempt.</p>'
    )
    parts.append("<h3>Headroom at peak</h3>")
    parts.append(
        _table(list(HEADROOM_HEADERS), [headroom_cells(r) for r in health["headroom"]])
        if health["headroom"]
        else '<p class="note">No rate-limit headers in these calls.</p>'
    )
    return parts
