"""Appending spans to the store file, from any number of processes, without losing committed rows.

DuckDB lets one process at a time hold a file open for writing, so a writer never keeps it open:
each flush opens the file, appends the buffered rows in one transaction, and closes it. Processes
(the app's exporter, a gateway, ``tokentrace report``) therefore take turns; a flush that finds the
file locked retries with backoff while rows keep buffering (up to ``max_buffered_rows``; past that
the oldest are dropped and counted, never the application blocked). A committed transaction is
durable (DuckDB's write-ahead log), so a writer killed mid-flush loses only that flush's rows and
leaves the file readable.

Rows go in through ``unnest`` of column lists: one statement per flush, ~50k rows/s here, where
``executemany`` manages a few hundred.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb

from tokentrace.processor.model import SpanData
from tokentrace.store.rows import to_row
from tokentrace.store.schema import ADDED_IN, COLUMN_NAMES, COLUMNS, DDL, SCHEMA_VERSION

logger = logging.getLogger("tokentrace")

_TIME_COLUMNS = {"start_time", "end_time"}
_SELECT = ", ".join(
    f"make_timestamp(unnest(${i + 1}))" if name in _TIME_COLUMNS else f"unnest(${i + 1})::{kind}"
    for i, (name, kind, _) in enumerate(COLUMNS)
)
_INSERT = f"INSERT INTO spans ({', '.join(COLUMN_NAMES)}) SELECT {_SELECT}"


def is_lock_error(error: BaseException) -> bool:
    return "lock" in str(error).lower()


def connect(path: Path | str, *, read_only: bool = False, timeout_s: float = 30.0) -> duckdb.DuckDBPyConnection:
    """Open the store, waiting (with jittered backoff) while another process holds it."""
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as error:
            if not is_lock_error(error) or time.monotonic() >= deadline:
                raise
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 0.25)


def ensure_schema(connection: duckdb.DuckDBPyConnection) -> None:
    """Create the tables in a new file; migrate an older file in place; refuse a newer one."""
    for statement in DDL:
        connection.execute(statement)
    found = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if found is None:
        connection.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
    elif int(found[0]) > SCHEMA_VERSION:
        raise RuntimeError(f"store schema {found[0]} is newer than this tokentrace ({SCHEMA_VERSION}); upgrade")
    elif int(found[0]) < SCHEMA_VERSION:
        migrate(connection, int(found[0]))


def migrate(connection: duckdb.DuckDBPyConnection, version: int) -> None:
    """Bring a file of schema ``version`` to :data:`SCHEMA_VERSION`: one transaction adding the columns of
    every later version (NULL in the rows already there), then the new version number. A crash
    midway leaves the file as it was; two processes cannot both migrate (DuckDB lets one hold it)."""
    kinds = {name: kind for name, kind, _ in COLUMNS}
    existing = {row[0] for row in connection.execute("SELECT name FROM pragma_table_info('spans')").fetchall()}
    connection.execute("BEGIN TRANSACTION")
    try:
        for later in range(version + 1, SCHEMA_VERSION + 1):
            for name in ADDED_IN.get(later, ()):
                if name not in existing:
                    connection.execute(f"ALTER TABLE spans ADD COLUMN {name} {kinds[name]}")
        connection.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)])
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    logger.info("tokentrace: store migrated from schema %d to %d", version, SCHEMA_VERSION)


class StoreWriter:
    """Buffers spans and appends them to the store file every ``flush_interval_s`` seconds.

    Retention: after a flush, rows older than ``retention_days`` and, past ``max_rows``, the
    oldest rows are deleted, so the file stays bounded.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        flush_interval_s: float = 1.0,
        max_buffered_rows: int = 200_000,
        retention_days: float | None = 30.0,
        max_rows: int | None = 5_000_000,
        background: bool = True,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.flush_interval_s = flush_interval_s
        self.max_buffered_rows = max_buffered_rows
        self.retention_days = retention_days
        self.max_rows = max_rows
        self.written = 0
        self.dropped = 0
        self._buffer: deque[tuple[Any, ...]] = deque()
        self._lock = threading.Lock()  # guards the buffer
        self._flush_lock = threading.Lock()  # one flush at a time in this process
        self._stopped = threading.Event()
        with connect(self.path) as connection:
            ensure_schema(connection)
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._run, name="tokentrace-store", daemon=True)
            self._thread.start()

    def write(self, spans: Iterable[SpanData]) -> None:
        rows = [to_row(span) for span in spans]
        with self._lock:
            self._buffer.extend(rows)
            overflow = len(self._buffer) - self.max_buffered_rows
            for _ in range(max(0, overflow)):
                self._buffer.popleft()
        if overflow > 0:
            self.dropped += overflow
            logger.warning("tokentrace: store buffer full; dropped %d oldest rows", overflow)

    def flush(self, timeout_s: float = 30.0) -> int:
        """Append everything buffered now; the number of rows committed."""
        with self._flush_lock:
            with self._lock:
                rows = list(self._buffer)
                self._buffer.clear()
            if not rows:
                return 0
            try:
                with connect(self.path, timeout_s=timeout_s) as connection:
                    connection.execute(_INSERT, [list(column) for column in zip(*rows, strict=False)])
                    self._apply_retention(connection)
            except Exception:
                with self._lock:  # put them back, ahead of newer rows, for the next attempt
                    self._buffer.extendleft(reversed(rows))
                raise
            self.written += len(rows)
            return len(rows)

    def _apply_retention(self, connection: duckdb.DuckDBPyConnection) -> None:
        if self.retention_days is not None:
            connection.execute(
                "DELETE FROM spans WHERE start_time < now()::TIMESTAMP - to_microseconds(?::BIGINT)",
                [int(self.retention_days * 86_400e6)],
            )
        if self.max_rows is not None:
            (count,) = connection.execute("SELECT count(*) FROM spans").fetchone()
            if count > self.max_rows:
                connection.execute(
                    "DELETE FROM spans WHERE rowid IN (SELECT rowid FROM spans ORDER BY start_time LIMIT ?)",
                    [count - self.max_rows],
                )

    def _run(self) -> None:
        while not self._stopped.wait(self.flush_interval_s):
            try:
                self.flush()
            except Exception:
                logger.warning("tokentrace: store flush failed; will retry", exc_info=True)

    def close(self, timeout_s: float = 30.0) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.flush(timeout_s)
