"""Provider health in the store and the report: the attempt columns, the schema migration, and the
section's figures, checked against calls whose attempts are known."""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode
from rich.console import Console

from tokentrace.core import attempts as core_attempts
from tokentrace.core import ratelimits
from tokentrace.gateway.otlp_codec import decode_request
from tokentrace.processor.model import from_readable
from tokentrace.report import html, terminal
from tokentrace.report.queries import Filters, build_report
from tokentrace.store.rows import to_row
from tokentrace.store.schema import ADDED_IN, COLUMN_NAMES, SCHEMA_VERSION
from tokentrace.store.writer import StoreWriter, connect

from .spans import BASE_NS, attempt_events, health, llm_span

HEALTH_COLUMNS = ADDED_IN[2]
MINUTE = 60.0


def _columns(row: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(COLUMN_NAMES, row, strict=True))


# --- one span to one row --------------------------------------------------------------------------


def _sdk_spans() -> list[Any]:
    """Real SDK spans as the recorder leaves them: a call retried after two 429s, a call that failed
    on its one attempt, a call with one good attempt, and a span from before attempt info."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    base = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}
    with tracer.start_as_current_span("retried", attributes=base) as span:
        span.set_attributes(
            health(3, 0.5, 0.2, "req_3", "key-0011aabb", requests=(100, 40), tokens=(1000, 100), input_tokens=(10, 9))
        )
        for event in attempt_events(429, 429, 200):
            span.add_event(event.name, event.attributes, event.timestamp)
    with tracer.start_as_current_span("failed", attributes=base) as span:
        span.set_attributes(health(1, 0.0, 0.1, "req_4", "key-0011aabb", requests=(100, 0)))
        for event in attempt_events(429):
            span.add_event(event.name, event.attributes, event.timestamp)
        span.set_attribute("error.type", "openai.RateLimitError")
        span.set_status(Status(StatusCode.ERROR))
    with tracer.start_as_current_span("one attempt", attributes=base) as span:
        span.set_attributes(health(1, request_id="req_5", tokens=(1000, 1000)))
    with tracer.start_as_current_span("old", attributes=base):
        pass
    provider.shutdown()
    return list(exporter.get_finished_spans())


EXPECTED = {
    "retried": {
        "attempts": 3,
        "failed_attempts": 2,
        "throttled_attempts": 2,
        "retry_wait_s": 0.5,
        "failed_attempts_s": 0.2,
        "request_id": "req_3",
        "api_key_alias": "key-0011aabb",
        "min_headroom": 0.1,
        "min_headroom_bucket": "tokens",
        "ratelimits": '{"input_tokens":[9,10],"requests":[40,100],"tokens":[100,1000]}',
    },
    "failed": {
        "attempts": 1,
        "failed_attempts": 1,
        "throttled_attempts": 1,
        "retry_wait_s": 0.0,
        "failed_attempts_s": 0.1,
        "request_id": "req_4",
        "api_key_alias": "key-0011aabb",
        "min_headroom": 0.0,
        "min_headroom_bucket": "requests",
        "ratelimits": '{"requests":[0,100]}',
    },
    "one attempt": {
        "attempts": 1,
        "failed_attempts": 0,
        "throttled_attempts": 0,
        "retry_wait_s": 0.0,
        "failed_attempts_s": 0.0,
        "request_id": "req_5",
        "api_key_alias": None,
        "min_headroom": 1.0,
        "min_headroom_bucket": "tokens",
        "ratelimits": '{"tokens":[1000,1000]}',
    },
    "old": dict.fromkeys(HEALTH_COLUMNS),
}


def _health_of(row: tuple[Any, ...]) -> dict[str, Any]:
    columns = _columns(row)
    return {name: columns[name] for name in HEALTH_COLUMNS}


def test_sdk_spans_fill_the_attempt_columns() -> None:
    rows = {span.name: _health_of(to_row(from_readable(span))) for span in _sdk_spans()}
    assert rows.keys() == EXPECTED.keys()
    for name, expected in EXPECTED.items():
        assert rows[name] == pytest.approx(expected), name


def test_otlp_spans_at_the_gateway_fill_the_same_columns() -> None:
    """The gateway's spans keep their events as protobuf: the same counts come out of them."""
    request = encode_spans(_sdk_spans())
    decoded = decode_request(request).spans
    rows = {span.name: _health_of(to_row(span)) for span in decoded}
    assert rows.keys() == EXPECTED.keys()
    for name, expected in EXPECTED.items():
        assert rows[name] == pytest.approx(expected), name


def test_attempt_counts_without_events() -> None:
    # a retried call whose events did not come with it: the counts are unknown, the totals still there
    lost = _health_of(to_row(llm_span(extra=health(2, 0.3, 0.1))))
    assert (lost["attempts"], lost["failed_attempts"], lost["throttled_attempts"]) == (2, None, None)
    assert lost["retry_wait_s"] == pytest.approx(0.3)
    # one attempt, no events, the call succeeded: nothing failed, whatever the origin
    assert _health_of(to_row(llm_span(extra=health(1))))["failed_attempts"] == 0
    # one attempt and the call failed, no origin to look at: unknown; with an origin and no events: 0
    failed = _health_of(to_row(llm_span(error_type="openai.APIConnectionError", extra=health(1))))
    assert failed["failed_attempts"] is None
    seen = _health_of(to_row(llm_span(error_type="openai.BadRequestError", extra=health(1), events=[])))
    assert seen["failed_attempts"] == 0
    # a transport error is a failed attempt without a status; 5xx fail; only 429 throttles
    mixed = _health_of(to_row(llm_span(extra=health(4), events=attempt_events("httpx.ReadTimeout", 503, 429, 200))))
    assert (mixed["failed_attempts"], mixed["throttled_attempts"]) == (3, 1)
    # headroom: a bucket without a usable limit is skipped; ties go to the first bucket by name
    odd = _health_of(to_row(llm_span(extra=health(1, requests=(0, 5), tokens=(100, 50), calls=(10, 5)))))
    assert (odd["min_headroom"], odd["min_headroom_bucket"]) == (0.5, "calls")
    assert json.loads(odd["ratelimits"]) == {"calls": [5, 10], "tokens": [50, 100]}
    none = _health_of(to_row(llm_span(extra=health(1))))
    assert (none["min_headroom"], none["min_headroom_bucket"], none["ratelimits"]) == (None, None, None)


# --- migrating a file of schema version 1 ---------------------------------------------------------

# The DDL tokentrace wrote with schema version 1, frozen here as it was.
V1_DDL = (
    "CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    "CREATE TABLE spans (trace_id VARCHAR, span_id VARCHAR, parent_span_id VARCHAR, name VARCHAR, kind TINYINT, "
    "service_name VARCHAR, start_time TIMESTAMP, end_time TIMESTAMP, duration_s DOUBLE, status_code TINYINT, "
    "error_type VARCHAR, operation VARCHAR, provider VARCHAR, request_model VARCHAR, response_model VARCHAR, "
    "input_tokens BIGINT, output_tokens BIGINT, cache_read_tokens BIGINT, cache_write_tokens BIGINT, "
    "reasoning_tokens BIGINT, usage_source VARCHAR, cost_usd DOUBLE, cost_source VARCHAR, "
    "cost_unavailable_reason VARCHAR, time_to_first_chunk_s DOUBLE, stream BOOLEAN, template VARCHAR, "
    "tenant VARCHAR, feature VARCHAR, user_id VARCHAR, flags VARCHAR[], sampling_reason VARCHAR, attributes JSON)",
    "INSERT INTO meta VALUES ('schema_version', '1')",
)
V1_COLUMNS = tuple(column.split()[0] for column in V1_DDL[1].split("(", 1)[1].rstrip(")").split(", "))
# what a version 1 writer inserted: its own columns, named
V1_INSERT = f"INSERT INTO spans ({', '.join(V1_COLUMNS)}) VALUES ({', '.join('?' for _ in V1_COLUMNS)})"


def _v1_file(path: Path, calls: int = 3) -> None:
    with duckdb.connect(str(path)) as connection:
        for statement in V1_DDL:
            connection.execute(statement)
        for n in range(calls):
            row = _columns(to_row(llm_span(start_s=n, model="gpt-4o", tokentrace__tenant="acme")))
            values = [row[name] for name in V1_COLUMNS]
            values[V1_COLUMNS.index("start_time")] = dt.datetime(2026, 1, 1, 0, 0, n)
            values[V1_COLUMNS.index("end_time")] = dt.datetime(2026, 1, 1, 0, 0, n, 500_000)
            connection.execute(V1_INSERT, values)


def test_the_columns_added_in_version_2_are_the_health_columns() -> None:
    assert SCHEMA_VERSION == 2
    assert (*V1_COLUMNS, *ADDED_IN[2]) == COLUMN_NAMES


def test_a_version_1_file_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "v1.duckdb"
    _v1_file(path)
    writer = StoreWriter(path, background=False, retention_days=None)
    writer.write(
        [
            llm_span(
                start_s=10, extra=health(3, 0.5, 0.2, "req_9", requests=(100, 20)), events=attempt_events(429, 500, 200)
            )
        ]
    )
    assert writer.flush() == 1
    with connect(path, read_only=True) as connection:
        version = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        cursor = connection.execute("SELECT * FROM spans ORDER BY start_time")
        names = tuple(d[0] for d in cursor.description)
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    assert version == str(SCHEMA_VERSION)
    assert names == COLUMN_NAMES  # a migrated file has a new file's columns, in the same order
    old, new = rows[:3], rows[3]
    assert [row["tenant"] for row in old] == ["acme"] * 3 and all(row["cost_usd"] == 0.001 for row in old)
    assert all(row[name] is None for row in old for name in HEALTH_COLUMNS)  # old rows: no attempt info
    assert (new["attempts"], new["failed_attempts"], new["throttled_attempts"], new["request_id"]) == (3, 2, 1, "req_9")
    assert new["min_headroom"] == pytest.approx(0.2)
    # opening it again is a no-op
    StoreWriter(path, background=False).close()
    with connect(path, read_only=True) as connection:
        assert connection.execute("SELECT count(*) FROM spans").fetchone()[0] == 4


def test_a_version_1_writer_still_appends_to_a_migrated_file(tmp_path: Path) -> None:
    path = tmp_path / "v1.duckdb"
    _v1_file(path, calls=1)
    StoreWriter(path, background=False).close()  # migrated
    _v1_file_rows = _columns(to_row(llm_span()))
    with duckdb.connect(str(path)) as connection:
        values = [_v1_file_rows[name] for name in V1_COLUMNS]
        values[V1_COLUMNS.index("start_time")] = values[V1_COLUMNS.index("end_time")] = dt.datetime(2026, 1, 1)
        connection.execute(V1_INSERT, values)
        assert connection.execute("SELECT count(*), count(attempts) FROM spans").fetchone() == (2, 0)


def test_a_failed_migration_leaves_the_file_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "v1.duckdb"
    _v1_file(path)
    from tokentrace.store import writer as writer_module

    kinds = dict(writer_module.ADDED_IN)
    monkeypatch.setattr(writer_module, "ADDED_IN", {2: (*kinds[2][:3], "no_such_column")})
    with pytest.raises(KeyError):
        StoreWriter(path, background=False)
    with connect(path, read_only=True) as connection:
        assert connection.execute("SELECT value FROM meta").fetchone()[0] == "1"
        assert "attempts" not in {
            r[0] for r in connection.execute("SELECT name FROM pragma_table_info('spans')").fetchall()
        }


def test_the_report_reads_a_version_1_file_without_migrating_it(tmp_path: Path) -> None:
    path = tmp_path / "v1.duckdb"
    _v1_file(path)
    with connect(path, read_only=True) as connection:
        report = build_report(connection)
    assert report["summary"]["calls"] == 3
    section = report["provider_health"]
    assert section["available"] is False and section["calls_with_attempts"] == 0
    assert "No HTTP attempt info in these 3 calls" in section["note"]
    assert section["totals"]["attempts"] is None and section["totals"]["throttling_rate"] is None
    with connect(path, read_only=True) as connection:
        assert connection.execute("SELECT value FROM meta").fetchone()[0] == "1"  # untouched
    out = io.StringIO()
    terminal.render(report, Console(file=out, width=200))
    assert "Provider health: No HTTP attempt info in these 3 calls" in out.getvalue()
    page = html.render(report)
    assert "No HTTP attempt info in these 3 calls" in page and 'data-chart="throttling-over-time"' not in page


# --- the report's section, on calls whose attempts are known ------------------------------------------


DATED = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18"}  # what the provider answers for the model asked for


def _call(minute: float, provider: str, model: str, duration: float, **kwargs: Any) -> Any:
    kwargs.setdefault("response_model", DATED.get(model, model))
    return llm_span(start_s=minute * MINUTE, duration_s=duration, provider=provider, model=model, **kwargs)


@pytest.fixture(scope="module")
def health_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """11 calls, 9 with attempt info (15 attempts: 3 throttled, 3 other failures, 3.4 s lost in 11.1 s)."""
    a, b, c = "key-aaaa0000", "key-bbbb0000", "key-cccc0000"
    mini, big, haiku = ("openai", "gpt-4o-mini"), ("openai", "gpt-4o"), ("anthropic", "claude-haiku-4-5")
    spans = [
        # 1. one good attempt
        _call(0, *mini, 1.0, extra=health(1, 0.0, 0.0, "req_1", a, requests=(100, 90), tokens=(1000, 800))),
        # 2. two 429s then a 200
        _call(
            1,
            *mini,
            2.0,
            extra=health(3, 0.5, 0.2, "req_2", a, requests=(100, 50), tokens=(1000, 900)),
            events=attempt_events(429, 429, 200),
        ),
        # 3. a 500 then a 200
        _call(
            2,
            *mini,
            1.5,
            extra=health(2, 0.25, 0.25, "req_3", a, requests=(100, 80), tokens=(1000, 100)),
            events=attempt_events(500, 200),
        ),
        # 4. throttled, no retry: the call failed, it has no response model
        _call(
            3,
            *mini,
            0.1,
            response_model=None,
            error_type="openai.RateLimitError",
            extra=health(1, 0.0, 0.1, "req_4", a, requests=(100, 0), tokens=(1000, 1000)),
            events=attempt_events(429),
        ),
        _call(4, *big, 1.0, extra=health(1, 0.0, 0.0, "req_5", b, requests=(50, 25))),
        # 6. a connection error then a 200
        _call(5, *big, 3.0, extra=health(2, 1.0, 0.5, "req_6", b), events=attempt_events("httpx.ConnectError", 200)),
        _call(6, *haiku, 0.5, extra=health(1, 0.0, 0.0, "req_7", c, input_tokens=(2000, 1000))),
        # 8. overloaded (529) then a 200
        _call(7, *haiku, 1.0, extra=health(2, 0.3, 0.1, "req_8", c), events=attempt_events(529, 200)),
        # 9, 10. spans from before attempt info
        _call(8, *mini, 5.0),
        _call(9, "anthropic", "claude-sonnet-4-5", 1.0),
        # 11. retried, its events lost on the way: totals known, outcomes not
        _call(10, *mini, 1.0, extra=health(2, 0.1, 0.1, "req_11", a)),
    ]
    path = tmp_path_factory.mktemp("health") / "health.duckdb"
    writer = StoreWriter(path, background=False, retention_days=None)
    writer.write(spans)
    writer.flush()
    return path


def _section(path: Path, **kwargs: Any) -> dict[str, Any]:
    with connect(path, read_only=True) as connection:
        return build_report(connection, **kwargs)["provider_health"]


def test_totals_rates_and_time_lost(health_store: Path) -> None:
    section = _section(health_store)
    assert section["available"] is True and (section["calls"], section["calls_with_attempts"]) == (11, 9)
    assert section["note"].startswith("HTTP attempt info for 9 of 11 calls")
    t = section["totals"]
    assert (t["attempts"], t["retried_calls"], t["counted_attempts"]) == (15, 5, 13)
    assert (t["throttled_attempts"], t["other_failed_attempts"]) == (3, 3)
    assert t["attempts_per_call"] == pytest.approx(15 / 9)
    assert t["throttling_rate"] == pytest.approx(3 / 13) and t["error_rate"] == pytest.approx(3 / 13)
    assert t["retry_wait_s"] == pytest.approx(2.15) and t["failed_attempts_s"] == pytest.approx(1.25)
    assert t["lost_s"] == pytest.approx(3.4) and t["call_time_s"] == pytest.approx(11.1)  # not the 6 s without info
    assert t["lost_share"] == pytest.approx(3.4 / 11.1)


def test_by_provider_and_model(health_store: Path) -> None:
    rows = {(r["provider"], r["model"]): r for r in _section(health_store)["by_model"]}
    mini = rows["openai", "gpt-4o-mini"]  # the throttled call counts with its model, response model or not
    assert (mini["calls"], mini["calls_with_attempts"], mini["attempts"], mini["retried_calls"]) == (6, 5, 9, 3)
    assert (mini["throttled_attempts"], mini["other_failed_attempts"]) == (3, 1)
    assert mini["throttling_rate"] == pytest.approx(3 / 7) and mini["error_rate"] == pytest.approx(1 / 7)
    assert mini["lost_s"] == pytest.approx(1.5) and mini["lost_share"] == pytest.approx(1.5 / 5.6)
    big = rows["openai", "gpt-4o"]
    assert (big["attempts"], big["throttled_attempts"], big["other_failed_attempts"]) == (3, 0, 1)
    assert big["lost_s"] == pytest.approx(1.5) and big["attempts_per_call"] == pytest.approx(1.5)
    haiku = rows["anthropic", "claude-haiku-4-5"]
    assert haiku["error_rate"] == pytest.approx(1 / 3) and haiku["lost_s"] == pytest.approx(0.4)
    sonnet = rows["anthropic", "claude-sonnet-4-5"]  # no attempt info: unknown, not zero
    assert (sonnet["calls"], sonnet["calls_with_attempts"], sonnet["attempts"]) == (1, 0, None)
    assert sonnet["throttling_rate"] is None and sonnet["error_rate"] is None and sonnet["lost_s"] is None
    assert list(rows)[-1] == ("anthropic", "claude-sonnet-4-5")  # listed after the groups with figures


def test_over_time_in_the_report_buckets(health_store: Path) -> None:
    section = _section(health_store)
    over_time = section["over_time"]
    assert {row["bucket_seconds"] for row in over_time} == {30.0}  # 10 minutes in 24 bars: 30 s bars
    assert sum(row["attempts"] for row in over_time) == 15  # calls without attempt info are not there
    by_start = {(row["bucket_start"], row["provider"]): row for row in over_time}
    second = by_start["2026-01-01T00:01:00Z", "openai"]
    assert (second["attempts"], second["throttled_attempts"], second["throttling_rate"]) == (3, 2, pytest.approx(2 / 3))
    assert by_start["2026-01-01T00:07:00Z", "anthropic"]["error_rate"] == pytest.approx(0.5)
    assert by_start["2026-01-01T00:10:00Z", "openai"]["throttling_rate"] is None  # outcomes unknown


def test_worst_calls_and_headroom(health_store: Path) -> None:
    section = _section(health_store)
    worst = [(row["request_id"], round(row["lost_s"], 6)) for row in section["worst_calls"]]
    assert worst == [("req_6", 1.5), ("req_2", 0.7), ("req_3", 0.5), ("req_8", 0.4), ("req_11", 0.2), ("req_4", 0.1)]
    assert section["worst_calls"][1]["start_time"] == "2026-01-01T00:01:00Z"
    headroom = [
        (r["provider"], r["model"], r["bucket"], r["key_alias"], r["lowest"], r["remaining"], r["limit"], r["calls"])
        for r in section["headroom"]
    ]
    assert headroom == [
        ("openai", "gpt-4o-mini", "requests", "key-aaaa0000", 0.0, 0.0, 100.0, 4),
        ("openai", "gpt-4o-mini", "tokens", "key-aaaa0000", pytest.approx(0.1), 100.0, 1000.0, 4),
        ("anthropic", "claude-haiku-4-5", "input_tokens", "key-cccc0000", 0.5, 1000.0, 2000.0, 1),
        ("openai", "gpt-4o", "requests", "key-bbbb0000", 0.5, 25.0, 50.0, 1),
    ]
    lowest = section["headroom"][0]
    assert (lowest["at"], lowest["request_id"]) == ("2026-01-01T00:03:00.100000Z", "req_4")  # when the call ended
    assert section["headroom"][1]["request_id"] == "req_3"


def test_the_section_respects_filters_and_window(health_store: Path) -> None:
    big = _section(health_store, filters=Filters(models=["gpt-4o"]))
    assert (big["calls"], big["totals"]["attempts"]) == (2, 3)
    assert [r["model"] for r in big["by_model"]] == ["gpt-4o"] and [r["model"] for r in big["headroom"]] == ["gpt-4o"]
    start = dt.datetime(2026, 1, 1)
    late = _section(health_store, filters=Filters(since=start + dt.timedelta(minutes=4)))
    assert late["totals"]["attempts"] == 8 and late["totals"]["throttled_attempts"] == 0
    assert {r["request_id"] for r in late["worst_calls"]} == {"req_6", "req_8", "req_11"}
    assert all(r["model"] != "gpt-4o-mini" for r in late["headroom"])
    old_only = _section(health_store, filters=Filters(models=["claude-sonnet-4-5"]))
    assert old_only["available"] is False and "No HTTP attempt info in these 1 calls" in old_only["note"]
    assert _section(health_store, top=2)["worst_calls"][1]["request_id"] == "req_2"
    assert len(_section(health_store, top=2)["headroom"]) == 2


def test_terminal_renders_the_section(health_store: Path) -> None:
    with connect(health_store, read_only=True) as connection:
        report = build_report(connection)
    out = io.StringIO()
    terminal.render(report, Console(file=out, width=250))
    text = out.getvalue()
    assert (
        "Provider health: 15 HTTP attempts for 9 calls (1.67 per call, 5 calls retried); throttled (429) 23.1%, "
        "other errors 23.1% of attempts; 3.40 s lost to retries (30.6% of call time). HTTP attempt info for 9 of "
        "11 calls" in text
    )
    lines = text.splitlines()
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines]
    assert [row for row in cells if row[:2] == ["openai", "gpt-4o-mini"] and len(row) == 8 and row[2].isdigit()] == [
        ["openai", "gpt-4o-mini", "6", "1.80", "3", "3 (42.9%)", "1 (14.3%)", "1.50 s (26.8%)"]
    ]
    assert not [row for row in cells if len(row) == 8 and row[1].startswith("claude-sonnet")]  # no zeros for it
    assert "No attempt info for anthropic claude-sonnet-4-5 (1 call): left out of the figures." in text
    assert ["2026-01-01T00:10:00Z", "openai", "2", "—", "—"] in cells  # over time: outcomes unknown, not 0
    for title in (
        "Provider health: attempts and time lost to retries",
        "Provider health over time: throttling and error rates of attempts",
        "Time lost to retries: worst calls",
        "Headroom at peak: lowest remaining / limit",
    ):
        assert title in text
    worst = next(line for line in lines if "req_6" in line)
    assert "1.00 s" in worst and "500 ms" in worst and "1.50 s" in worst and "3.00 s" in worst
    peak = next(line for line in lines if "key-aaaa0000" in line and "requests" in line)
    assert "0.0%" in peak and "0 / 100" in peak and "2026-01-01 00:03:00.100" in peak and "req_4" in peak


def test_html_renders_the_section(health_store: Path) -> None:
    with connect(health_store, read_only=True) as connection:
        report = build_report(connection)
    page = html.render(report)
    section = page[page.index('<h2 id="provider-health">') : page.index("<h2>What if")]
    for chart in ("throttling-over-time", "retry-time-by-model", "headroom-lowest"):
        assert f'<figure id="{chart}">' in section and f'data-chart="{chart}"' in section
    assert "HTTP attempt info for 9 of 11 calls" in section
    assert "<td>req_6</td>" in section and "<td>0 / 100</td>" in section
    assert "No attempt info for anthropic claude-sonnet-4-5 (1 call)" in section
    assert "<td>claude-sonnet-4-5</td>" not in section
    throttling = section[section.index('data-chart="throttling-over-time"') : section.index("</svg>")]
    # one pair of bars per 30 s bucket with attempt info, the 00:01 bucket's throttling rate the tallest
    assert (
        throttling.count('<rect class="throttling-rate"') == 1 + 9 and throttling.count('class="error-rate"') == 1 + 9
    )
    assert "00:01:00 throttled (429): 66.7%" in throttling  # 30 s buckets: labelled to the second
    data = json.loads(page[page.index('id="report-data">') + len('id="report-data">') : page.rindex("</script>")])
    assert data["provider_health"]["totals"]["attempts"] == 15


def test_cli_json_carries_the_section(health_store: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tokentrace.cli", "report", "--store", str(health_store), "--json", "--model", "gpt-4o"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    section = json.loads(result.stdout)["provider_health"]
    assert section["totals"]["attempts"] == 3 and section["worst_calls"][0]["request_id"] == "req_6"


# Response headers of each dialect tokentrace.core.ratelimits reads (values as the providers send them).
DIALECTS = {
    "openai": {
        "x-ratelimit-limit-requests": "10000",
        "x-ratelimit-remaining-requests": "9000",
        "x-ratelimit-limit-tokens": "2000000",
        "x-ratelimit-remaining-tokens": "100000",
        "x-ratelimit-reset-tokens": "6m0s",
    },
    "anthropic": {
        f"anthropic-ratelimit-{bucket}-{field}": value
        for bucket, remaining in (("requests", "40"), ("tokens", "30"), ("input-tokens", "20"), ("output-tokens", "90"))
        for field, value in (("limit", "100"), ("remaining", remaining), ("reset", "2026-01-01T00:01:00Z"))
    },
    "mistral": {
        "x-ratelimit-limit-req-minute": "60",
        "x-ratelimit-remaining-req-minute": "59",
        "x-ratelimit-limit-tokens-minute": "500000",
        "x-ratelimit-remaining-tokens-minute": "400000",
        "x-ratelimitbysize-limit-minute": "500000",
        "x-ratelimitbysize-remaining-minute": "450000",
        "x-ratelimitbysize-limit-month": "1000000000",
        "x-ratelimitbysize-remaining-month": "10000000",
    },
    "cohere": {
        "x-trial-endpoint-call-limit": "20",
        "x-trial-endpoint-call-remaining": "4",
        "x-endpoint-monthly-call-limit": "1000",
        "x-endpoint-monthly-call-remaining": "999",
    },
}


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_every_bucket_the_header_parser_reports_is_stored(dialect: str) -> None:
    """Headers -> the recorder's span attributes -> the row: whatever buckets the parser names (the
    instrumentation's side), the store finds them all and the tightest one."""
    attempt = core_attempts.Attempt(started_ns=BASE_NS, started=0.0, ended=0.1, status=200)
    attempt.limits = ratelimits.rate_limits(DIALECTS[dialect])
    summary = core_attempts.describe_attempts([attempt])
    row = _health_of(to_row(llm_span(extra=summary.attributes)))
    usable = {bucket: values for bucket, values in attempt.limits.items() if values.headroom is not None}
    assert len(usable) >= 2  # the dialect's headers were understood
    assert json.loads(row["ratelimits"]) == {b: [v.remaining, v.limit] for b, v in usable.items()}
    tightest = min(usable, key=lambda bucket: (usable[bucket].headroom, bucket))
    assert (row["min_headroom_bucket"], row["min_headroom"]) == (tightest, pytest.approx(usable[tightest].headroom))
