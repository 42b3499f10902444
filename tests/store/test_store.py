"""The store file: schema, retention, several writer processes, and a writer killed mid-write."""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from tokentrace.store.schema import COLUMN_NAMES, COLUMNS, SCHEMA_VERSION
from tokentrace.store.writer import StoreWriter, connect

from .spans import BASE_NS, llm_span


def _count(path: Path) -> int:
    with connect(path, read_only=True) as connection:
        return connection.execute("SELECT count(*) FROM spans").fetchone()[0]


def test_row_holds_every_reported_column(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    writer = StoreWriter(path, background=False, retention_days=None)
    span = llm_span(
        duration_s=1.25,
        cost=0.0125,
        input_tokens=1200,
        output_tokens=300,
        error_type="RateLimitError",
        tokentrace__tenant="acme",
        tokentrace__prompt__fingerprint="tpl1",
        tokentrace__feature="search",
        tokentrace__flags=("refusal", "pii"),
        gen_ai__usage__cache_read__input_tokens=1000,
        gen_ai__usage__cache_creation__input_tokens=50,
        gen_ai__response__time_to_first_chunk=0.2,
        gen_ai__request__stream=True,
        tokentrace__sampling__reason="error",
    )
    writer.write([span])
    assert writer.flush() == 1
    with connect(path, read_only=True) as connection:
        cursor = connection.execute("SELECT * FROM spans")
        names = [d[0] for d in cursor.description]
        row = dict(zip(names, cursor.fetchone(), strict=True))
        version = connection.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    assert tuple(names) == COLUMN_NAMES
    assert int(version) == SCHEMA_VERSION
    assert row["trace_id"] == f"{span.trace_id:032x}" and row["span_id"] == f"{span.span_id:016x}"
    assert row["parent_span_id"] is None
    assert row["start_time"].isoformat() == "2026-01-01T00:00:00"
    assert row["duration_s"] == pytest.approx(1.25)
    assert (row["provider"], row["request_model"], row["response_model"]) == ("openai", "gpt-4o-mini", "gpt-4o-mini")
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"], row["cache_write_tokens"]) == (
        1200,
        300,
        1000,
        50,
    )
    assert row["cost_usd"] == pytest.approx(0.0125)
    assert (row["error_type"], row["status_code"]) == ("RateLimitError", 2)
    assert (row["tenant"], row["template"], row["feature"]) == ("acme", "tpl1", "search")
    assert row["flags"] == ["refusal", "pii"]
    assert row["time_to_first_chunk_s"] == pytest.approx(0.2) and row["stream"] is True
    assert row["sampling_reason"] == "error" and row["service_name"] == "svc"
    assert json.loads(row["attributes"])["tokentrace.tenant"] == "acme"


def test_retention_by_age_and_by_row_count(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    now_ns = time.time_ns()
    old = [llm_span(start_ns=now_ns - 40 * 86400 * 10**9) for _ in range(5)]
    recent = [llm_span(start_ns=now_ns - i * 10**9) for i in range(30)]
    writer = StoreWriter(path, background=False, retention_days=30, max_rows=20)
    writer.write(old + recent)
    writer.flush()
    with connect(path, read_only=True) as connection:
        count, oldest = connection.execute("SELECT count(*), min(start_time) FROM spans").fetchone()
    assert count == 20  # the 5 old ones went by age, then the 10 oldest recent ones by count
    assert oldest >= datetime.datetime.fromtimestamp(now_ns / 1e9 - 30, datetime.timezone.utc).replace(tzinfo=None)


_WRITER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from store.spans import llm_span
    from tokentrace.store.writer import StoreWriter
    path, batches, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    writer = StoreWriter(path, background=False, retention_days=None)
    for batch in range(batches):
        writer.write([llm_span(start_s=batch) for _ in range(size)])
        writer.flush(timeout_s=60)
        print("committed", (batch + 1) * size, flush=True)
""")


def _writer_process(path: Path, batches: int, size: int) -> subprocess.Popen[str]:
    code = _WRITER.format(tests=str(Path(__file__).resolve().parent.parent))
    return subprocess.Popen(
        [sys.executable, "-c", code, str(path), str(batches), str(size)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_several_writer_processes_and_a_reader_share_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    StoreWriter(path, background=False).close()
    writers = [_writer_process(path, batches=15, size=100) for _ in range(3)]
    reads = []
    while any(w.poll() is None for w in writers):
        reads.append(_count(path))  # a reader taking turns with the writers
        time.sleep(0.05)
    for writer in writers:
        _out, err = writer.communicate()
        assert writer.returncode == 0, err
    assert reads == sorted(reads)  # readers only ever see whole committed batches, growing
    assert all(r % 100 == 0 for r in reads)
    assert _count(path) == 3 * 15 * 100


def test_a_writer_killed_mid_write_loses_no_committed_row(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    writer = _writer_process(path, batches=100_000, size=500)
    committed = 0
    assert writer.stdout is not None
    deadline = time.monotonic() + 60
    while committed < 5_000 and time.monotonic() < deadline:
        line = writer.stdout.readline()
        if line.startswith("committed"):
            committed = int(line.split()[1])
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    assert committed >= 5_000
    count = _count(path)  # the file opens cleanly after the crash
    assert count >= committed  # every acknowledged row is there
    assert count % 500 == 0  # and no half of a batch
    # and it still takes writes
    after = StoreWriter(path, background=False, retention_days=None)
    after.write([llm_span()])
    after.flush()
    assert _count(path) == count + 1


def test_schema_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    StoreWriter(path, background=False).close()
    with duckdb.connect(str(path)) as connection:
        connection.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(RuntimeError, match="newer"):
        StoreWriter(path, background=False)


def test_background_flush_and_close(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    writer = StoreWriter(path, flush_interval_s=0.05, retention_days=None)
    writer.write([llm_span(start_ns=BASE_NS)])
    deadline = time.monotonic() + 10
    while writer.written == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert writer.written == 1
    writer.write([llm_span()])
    writer.close()
    assert _count(path) == 2


def test_documented_schema_matches_the_code() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "store.md").read_text(encoding="utf-8")
    for name, kind, _ in COLUMNS:
        assert f"| `{name}` | `{kind}` |" in doc, name
    assert f"## Schema (version {SCHEMA_VERSION})" in doc
