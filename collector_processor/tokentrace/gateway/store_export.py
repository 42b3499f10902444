"""The gateway's local destination: queued batches into the embedded store (DuckDB), alone or next to a backend.

:class:`StoreExporter` implements the engine's :class:`~tokentrace.gateway.export.Exporter`: it decodes
a queued ``ExportTraceServiceRequest`` into :class:`~tokentrace.processor.model.SpanData` (the codec
the receivers use) and commits the rows before it answers ``ok``, so the queue's position moves past
a batch only once the batch is durably in the store file. A write that cannot get the file (another
process holds it past ``store.timeout_s``) or fails is ``retry``: the batch stays queued. The store
holds spans only, so metrics and logs requests are acknowledged and dropped (counted, logged once).

Writes are idempotent per span: a row whose ``(trace_id, span_id, start_time)`` is already in the
file is skipped (an anti-join limited to the batch's time range, which DuckDB's zone maps prune to a
few row groups). A batch re-sent after a crash (the queue redelivers what was in flight) therefore
never doubles rows, nor does a client re-sending spans the gateway already accepted.

:class:`FanOutExporter` (``store.keep_local`` with a backend) succeeds only when both have the batch.
It writes to the store first, then sends to the backend; a batch the store took but the backend
refused with a retryable error is retried to the backend only (the store write is remembered by the
payload's digest until the backend's final answer, and the store's dedup covers what memory cannot,
such as a restart in between). A backend that refuses a batch permanently gets ``drop`` as before;
the store keeps its copy.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tokentrace.gateway.export import OK, Exporter, Outcome, build_exporter
from tokentrace.gateway.otlp_codec import decode_request
from tokentrace.gateway.otlp_json import decode_json
from tokentrace.gateway.queue import KIND_JSON, KIND_TRACES
from tokentrace.gateway.settings import EngineSettings, StoreSettings
from tokentrace.processor.model import SpanData
from tokentrace.store.rows import to_row
from tokentrace.store.schema import COLUMN_NAMES, COLUMNS
from tokentrace.store.writer import StoreWriter, connect

logger = logging.getLogger(__name__)

_TIME_COLUMNS = {"start_time", "end_time"}
_START = COLUMN_NAMES.index("start_time")
_BATCH = ", ".join(
    (f"make_timestamp(unnest(${i + 1}))" if name in _TIME_COLUMNS else f"unnest(${i + 1})::{kind}") + f" AS {name}"
    for i, (name, kind, _) in enumerate(COLUMNS)
)
_LOW, _HIGH = len(COLUMNS) + 1, len(COLUMNS) + 2
# rows of the batch not already stored; the time range lets the scan of ``spans`` skip most row groups
INSERT_NEW = (
    f"INSERT INTO spans ({', '.join(COLUMN_NAMES)}) SELECT * FROM (SELECT {_BATCH}) AS batch "
    "WHERE NOT EXISTS (SELECT 1 FROM spans AS s "
    f"WHERE s.start_time BETWEEN make_timestamp(${_LOW}) AND make_timestamp(${_HIGH}) "
    "AND s.start_time = batch.start_time AND s.trace_id = batch.trace_id AND s.span_id = batch.span_id)"
)


class DedupStoreWriter(StoreWriter):
    """A :class:`StoreWriter` that commits a batch synchronously, skipping rows already in the file.

    No buffer and no background thread: the caller (an export worker) waits for the commit, and a
    failed commit leaves nothing behind to be written twice; the batch is simply retried from the queue.
    """

    def __init__(self, path: Path | str, settings: StoreSettings) -> None:
        super().__init__(path, retention_days=settings.retention_days, max_rows=settings.max_rows, background=False)
        self.duplicates = 0

    def commit(self, spans: Iterable[SpanData], timeout_s: float) -> tuple[int, int]:
        """Insert the spans not stored yet, in one transaction; (rows inserted, rows already there)."""
        unique: dict[tuple[str, str, int], tuple[Any, ...]] = {}
        total = 0
        for span in spans:
            row = to_row(span)
            unique.setdefault((row[0], row[1], row[_START]), row)
            total += 1
        rows = list(unique.values())
        if not rows:
            return 0, 0
        starts = [row[_START] for row in rows]
        parameters: list[Any] = [list(column) for column in zip(*rows, strict=True)]
        parameters += [min(starts), max(starts)]
        with self._flush_lock, connect(self.path, timeout_s=timeout_s) as connection:
            found = connection.execute(INSERT_NEW, parameters).fetchone()
            inserted = int(found[0]) if found else 0
            self._apply_retention(connection)
        self.written += inserted
        self.duplicates += total - inserted
        return inserted, total - inserted


def decode_spans(kind: int, payload: bytes) -> list[SpanData]:
    """The spans of one queued traces batch (protobuf, or OTLP/JSON should one ever be queued)."""
    request = decode_json(payload, "traces") if kind & KIND_JSON else ExportTraceServiceRequest.FromString(payload)
    return list(decode_request(request).spans)


class StoreExporter(Exporter):
    """Batches into the local store; ``ok`` only once they are committed (see the module docstring)."""

    def __init__(self, settings: StoreSettings, *, path: Path | str | None = None) -> None:
        self.settings = settings
        self.path = Path(path or settings.resolved_path())
        try:
            self.writer = DedupStoreWriter(self.path, settings)
        except Exception as exc:  # a directory, no permission, a newer schema: the gateway cannot start
            raise OSError(f"store.path: cannot open the local store {self.path}: {exc}") from exc
        self.passthrough_dropped = 0  # metrics/logs requests acknowledged and dropped
        self._warned = False

    def send(self, kind: int, payload: bytes) -> Outcome:
        if kind & ~KIND_JSON != KIND_TRACES:
            self.passthrough_dropped += 1
            if not self._warned:
                self._warned = True
                logger.warning(
                    "tokentrace gateway: the local store holds spans only; metrics and logs sent to this gateway "
                    "are acknowledged and dropped (configure exporter.endpoint to forward them)"
                )
            return OK
        try:
            spans = decode_spans(kind, payload)
        except Exception as exc:  # the queue checks CRCs, so this is a bug; retrying cannot help
            return Outcome("drop", message=f"queued batch not decodable for the store: {exc}")
        try:
            self.writer.commit(spans, self.settings.timeout_s)
        except Exception as exc:  # the file is busy past the timeout, or the disk failed: the batch stays queued
            return Outcome("retry", message=f"local store {self.path}: {type(exc).__name__}: {exc}")
        return OK

    def stats(self) -> dict[str, float]:
        return {
            "store_written": self.writer.written,
            "store_duplicates": self.writer.duplicates,
            "store_passthrough_dropped": self.passthrough_dropped,
        }

    def close(self) -> None:
        self.writer.close()


class FanOutExporter(Exporter):
    """The backend and the local store (``store.keep_local``): ``ok`` only when both have the batch."""

    MEMORY = 4096  # batches stored locally and still waiting for the backend (digests, 16 bytes each)

    def __init__(self, backend: Exporter, store: StoreExporter) -> None:
        self.backend = backend
        self.store = store
        self._stored: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def send(self, kind: int, payload: bytes) -> Outcome:
        if kind & ~KIND_JSON != KIND_TRACES:
            return self.backend.send(kind, payload)  # metrics and logs: the backend's alone
        digest = hashlib.blake2b(payload, digest_size=16).digest()
        with self._lock:
            stored = digest in self._stored
        if not stored:
            outcome = self.store.send(kind, payload)
            if outcome.status == "retry":
                return outcome  # the backend is not sent what the store could not take yet
            if outcome.status == "drop":  # undecodable (a bug): the backend, the primary destination, may still take it
                logger.error("tokentrace gateway: %s; sending the batch to the backend only", outcome.message)
            else:
                with self._lock:
                    self._stored[digest] = None
                    while len(self._stored) > self.MEMORY:
                        self._stored.popitem(last=False)  # forgotten: the store's dedup still holds
        outcome = self.backend.send(kind, payload)
        if outcome.status != "retry":
            with self._lock:
                self._stored.pop(digest, None)
        if outcome.status == "drop":
            return Outcome("drop", message=f"{outcome.message} (the local store kept the batch)")
        return outcome

    def stats(self) -> dict[str, float]:
        return self.store.stats()

    def close(self) -> None:
        try:
            self.backend.close()
        finally:
            self.store.close()


def build_engine_exporter(settings: EngineSettings) -> Exporter:
    """The engine's exporter for its settings: the store, the backend, or both (see ``destination``)."""
    destination = settings.destination
    if destination == "store":
        return StoreExporter(settings.store)
    backend = build_exporter(settings.exporter)
    if destination == "backend":
        return backend
    try:
        return FanOutExporter(backend, StoreExporter(settings.store))
    except BaseException:
        backend.close()
        raise
