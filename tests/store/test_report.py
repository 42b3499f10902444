"""``tokentrace report``: numbers checked against workloads whose totals are known."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tokentrace.core.pricing import PriceBook
from tokentrace.core.usage import Usage
from tokentrace.report.queries import Filters, bucket_width_us, build_report
from tokentrace.store.writer import StoreWriter, connect

from .spans import attempt_events, health, llm_span

THROTTLED = (3, 13, 23, 33, 43, 53, 63)  # rate limited: three 429s, the SDK's retries exhausted
RETRIED = tuple(range(5, 100, 10))  # a 500, then a 200


def _attempts(i: int) -> tuple[dict[str, Any], Any]:
    """Provider-health attributes and attempt events of call ``i`` (headroom shrinking as calls go on)."""
    buckets = {"requests": (100, 100 - i % 60), "tokens": (10_000, 10_000 - 90 * i)}
    if i in THROTTLED:
        return health(3, 0.02, 0.03, f"req_{i}", "key-known000", **buckets), attempt_events(429, 429, 429)
    if i in RETRIED:
        return health(2, 0.01, 0.005, f"req_{i}", "key-known000", **buckets), attempt_events(500, 200)
    return health(1, 0.0, 0.0, f"req_{i}", "key-known000", **buckets), None


@pytest.fixture(scope="module")
def known_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """100 calls with durations 0.01..1.00 s, fixed costs, 7 rate-limit errors, 3 flags, 2 tenants; 124
    HTTP attempts (21 throttled, 10 server errors)."""
    path = tmp_path_factory.mktemp("report") / "known.duckdb"
    spans = []
    for i in range(1, 101):
        model = "gpt-4o" if i % 4 == 0 else "gpt-4o-mini"  # 25 gpt-4o calls
        attempts, events = _attempts(i)
        spans.append(
            llm_span(
                start_s=i * 60.0,
                duration_s=i / 100,
                model=model,
                cost=0.05 if model == "gpt-4o" else 0.002,
                input_tokens=1000,
                output_tokens=100 if model == "gpt-4o" else 50,
                error_type="RateLimitError" if i in THROTTLED else None,
                tokentrace__tenant="acme" if i <= 60 else "globex",
                tokentrace__prompt__fingerprint="tpl-summarise" if i % 2 else "tpl-classify",
                tokentrace__flags=("refusal",) if i in (10, 20, 30) else (),
                gen_ai__usage__cache_read__input_tokens=500 if model == "gpt-4o" else 0,
                gen_ai__response__time_to_first_chunk=i / 1000 if i % 5 == 0 else None,
                extra=attempts,
                events=events,
            )
        )
    # a non-LLM span is stored but never counted as a call
    other = llm_span()
    other.attributes.clear()
    spans.append(other)
    writer = StoreWriter(path, background=False, retention_days=None)
    writer.write(spans)
    writer.flush()
    return path


def _report(path: Path, **kwargs: Any) -> dict[str, Any]:
    with connect(path, read_only=True) as connection:
        return build_report(connection, **kwargs)


def test_totals_counts_and_rankings(known_store: Path) -> None:
    report = _report(known_store)
    s = report["summary"]
    assert s["calls"] == 100 and s["traces"] == 100
    assert round(s["cost_usd"], 2) == round(25 * 0.05 + 75 * 0.002, 2) == 1.40
    assert s["errors"] == 7 and s["error_rate"] == pytest.approx(0.07)
    assert s["input_tokens"] == 100_000 and s["output_tokens"] == 25 * 100 + 75 * 50
    by_model = {row["key"]: row for row in report["top_cost"]["model"]}
    assert [row["key"] for row in report["top_cost"]["model"]] == ["gpt-4o", "gpt-4o-mini"]
    assert by_model["gpt-4o"]["calls"] == 25 and by_model["gpt-4o"]["cost_usd"] == pytest.approx(1.25)
    assert by_model["gpt-4o"]["share"] == pytest.approx(1.25 / 1.40)
    by_tenant = {row["key"]: row for row in report["top_cost"]["tenant"]}
    assert by_tenant["acme"]["calls"] == 60 and by_tenant["acme"]["cost_usd"] == pytest.approx(15 * 0.05 + 45 * 0.002)
    by_template = {row["key"]: row["calls"] for row in report["top_cost"]["template"]}
    assert by_template == {"tpl-summarise": 50, "tpl-classify": 50}


def test_latency_percentiles(known_store: Path) -> None:
    overall = _report(known_store)["latency"]["overall"]
    # durations 0.01..1.00: linear interpolation between order statistics (DuckDB quantile_cont)
    assert overall["duration_s"] == pytest.approx({"p50": 0.505, "p90": 0.901, "p95": 0.9505, "p99": 0.9901})
    # TTFT on every 5th call: 0.005, 0.010, ..., 0.100 (20 values)
    assert overall["time_to_first_chunk_s"]["p50"] == pytest.approx(0.0525)
    assert overall["time_to_first_chunk_s"]["p95"] == pytest.approx(0.09525)
    assert sum(row["calls"] for row in _report(known_store)["latency"]["histogram"]) == 100


def test_failures_flags_efficiency_and_time(known_store: Path) -> None:
    report = _report(known_store)
    (failure,) = report["failures"]
    assert failure["error_type"] == "RateLimitError" and failure["calls"] == 7
    assert report["quality_flags"] == [{"flag": "refusal", "calls": 3, "rate": pytest.approx(0.03)}]
    efficiency = {row["model"]: row for row in report["efficiency"]}
    assert efficiency["gpt-4o"]["cached_share"] == pytest.approx(0.5)
    assert efficiency["gpt-4o-mini"]["output_per_input"] == pytest.approx(0.05)
    buckets = report["cost_over_time"]
    assert sum(row["calls"] for row in buckets) == 100
    assert sum(row["cost_usd"] for row in buckets) == pytest.approx(1.40)
    assert buckets[0]["bucket_seconds"] == 300  # 99 minutes in 24 bars -> 5-minute bars


def test_filters_window_model_tenant_template(known_store: Path) -> None:
    start = dt.datetime(2026, 1, 1) + dt.timedelta(minutes=10)
    window = _report(known_store, filters=Filters(since=start, until=start + dt.timedelta(minutes=10)))
    assert window["summary"]["calls"] == 10  # minutes 10..19
    assert _report(known_store, filters=Filters(models=["gpt-4o"]))["summary"]["calls"] == 25
    assert _report(known_store, filters=Filters(tenants=["globex"]))["summary"]["calls"] == 40
    assert _report(known_store, filters=Filters(templates=["tpl-classify"], tenants=["acme"]))["summary"]["calls"] == 30
    assert _report(known_store, filters=Filters(services=["nope"]))["summary"]["calls"] == 0


def test_provider_health_over_the_known_calls(known_store: Path) -> None:
    section = _report(known_store)["provider_health"]
    t = section["totals"]
    assert (t["attempts"], t["throttled_attempts"], t["other_failed_attempts"], t["retried_calls"]) == (124, 21, 10, 17)
    assert t["throttling_rate"] == pytest.approx(21 / 124) and t["error_rate"] == pytest.approx(10 / 124)
    assert t["lost_s"] == pytest.approx(7 * 0.05 + 10 * 0.015)
    assert sum(row["attempts"] for row in section["over_time"]) == 124
    lowest = section["headroom"][0]  # tokens fall by 90 a call: the last gpt-4o call (100) has the least
    assert (lowest["model"], lowest["bucket"], lowest["lowest"], lowest["request_id"]) == (
        "gpt-4o",
        "tokens",
        pytest.approx(0.1),
        "req_100",
    )


def test_what_if_prices_the_same_tokens_on_candidates(known_store: Path) -> None:
    report = _report(known_store, candidates=["openai:gpt-4.1-nano", "openai:gpt-4o-mini", "openai:no-such-model"])
    what_if = {row["model"]: row for row in report["what_if"]["models"]}
    gpt4o = what_if["gpt-4o"]
    expected = PriceBook().cost(
        "openai", "gpt-4.1-nano", Usage(input_tokens=25_000, output_tokens=2_500, cache_read_input_tokens=12_500)
    )
    nano = next(a for a in gpt4o["alternatives"] if a["model"] == "gpt-4.1-nano")
    assert nano["cost_usd"] == pytest.approx(expected.total, abs=1e-12)
    assert nano["saving_usd"] == pytest.approx(1.25 - expected.total, abs=1e-12)
    missing = next(a for a in gpt4o["alternatives"] if a["model"] == "no-such-model")
    assert missing["cost_usd"] is None and missing["unavailable"] == "model_not_in_catalogue"
    assert gpt4o["best"]["model"] == "gpt-4.1-nano"
    assert all(a["model"] != "gpt-4o-mini" for a in what_if["gpt-4o-mini"]["alternatives"])  # not itself
    assert report["what_if"]["best_total_saving_usd"] == pytest.approx(
        sum(row["best"]["saving_usd"] for row in what_if.values() if row["best"])
    )


def test_bucket_widths_are_round() -> None:
    assert bucket_width_us(3600, 24) == 300 * 10**6
    assert bucket_width_us(10, 24) == 1 * 10**6
    assert bucket_width_us(30 * 86400, 24) == 2 * 86400 * 10**6


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokentrace.cli", "report", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_json_terminal_html_and_errors(known_store: Path, tmp_path: Path) -> None:
    as_json = _cli("--store", str(known_store), "--json", "--model", "gpt-4o")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["summary"]["calls"] == 25 and round(data["summary"]["cost_usd"], 2) == 1.25
    assert data["provider_health"]["totals"]["attempts"] == 25  # gpt-4o calls: none throttled or retried
    terminal = _cli("--store", str(known_store), "--since", "2026-01-01T00:00:00Z")
    assert terminal.returncode == 0, terminal.stderr
    for heading in (
        "Top by cost: model",
        "Latency",
        "Failures",
        "Quality flags",
        "Token efficiency",
        "Cost over time",
        "Provider health over time",
        "Headroom at peak",
        "What if",
    ):
        assert heading in terminal.stdout
    assert "$1.40" in terminal.stdout
    assert "Provider health: 124 HTTP attempts for 100 calls" in terminal.stdout
    page = tmp_path / "r.html"
    html = _cli("--store", str(known_store), "--html", str(page))
    assert html.returncode == 0, html.stderr
    text = page.read_text()
    assert "http://" not in text and "https://" not in text  # self-contained
    for chart in (
        "cost-over-time",
        "latency-distribution",
        "cost-by-model",
        "cost-by-template",
        "throttling-over-time",
        "retry-time-by-model",
        "headroom-lowest",
    ):
        assert f'data-chart="{chart}"' in text
    missing = _cli("--store", str(tmp_path / "none.duckdb"))
    assert missing.returncode == 2 and "no store" in missing.stderr
    bad = _cli("--store", str(known_store), "--since", "yesterday-ish")
    assert bad.returncode == 2 and "not a time" in bad.stderr
