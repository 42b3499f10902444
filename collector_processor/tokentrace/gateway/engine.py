"""The gateway engine: decode, run the processor pipeline, queue durably, export with retries.

Receivers call ``ingest_traces`` (protobuf), ``ingest_traces_json`` (OTLP/JSON) and
``ingest_passthrough`` (metrics and logs, forwarded untouched). Each returns once what it accepted is
in the persistent queue (durable per the fsync policy): that is when the receiver may acknowledge.
When the queue has no room the call raises :class:`Overloaded` *before* the pipeline sees the batch,
so a client's retry is not processed twice and nothing acknowledged is ever dropped.

Spans the tail sampler holds (their trace is not decided yet) are in memory only, yet their request
was acknowledged. So when the pipeline can hold spans, each request is first appended to an intake
journal (a second persistent queue, ``<queue.directory>/intake``), and the journal is committed up to
a request only once nothing the sampler still holds arrived before it was processed
(``Pipeline.oldest_held_ns``) and what the pipeline released is in the queue. After a crash the
uncommitted requests are run through the pipeline again (``replayed``): nothing acknowledged is lost,
and what may reach the backend twice is bounded by the decision wait's worth of requests.

Threads: receivers' threads run decode and the pipeline (under one lock: stages keep state), a poller
releases spans the tail sampler held once their trace is decided, and ``exporter.concurrency``
workers take batches from the queue, send them, retry retryable failures for as long as it takes and
commit the queue's position once the backend accepted (or, without a backend, once the local store
committed the batch: :mod:`tokentrace.gateway.store_export`). ``shutdown`` stops intake, releases
every held span into the queue, drains the queue within the timeout and leaves the rest on disk for
the next start.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from tokentrace.gateway.export import Exporter, Outcome, backoff_delays, build_exporter
from tokentrace.gateway.otlp_codec import Decoded, count_spans, decode_request, encode_spans
from tokentrace.gateway.otlp_json import decode_json
from tokentrace.gateway.queue import (
    KIND_JSON,
    KIND_LOGS,
    KIND_METRICS,
    KIND_TRACES,
    PersistentQueue,
    Position,
    QueueClosed,
    QueueFull,
    Record,
)
from tokentrace.gateway.settings import EngineSettings

logger = logging.getLogger(__name__)

PASSTHROUGH_KINDS = {"metrics": KIND_METRICS, "logs": KIND_LOGS}
JOURNAL_DIRECTORY = "intake"  # inside queue.directory
OVERLOAD_RETRY_AFTER_S = 1.0


class Overloaded(Exception):
    """A retryable refusal: the receiver answers UNAVAILABLE with RetryInfo / 503 with Retry-After."""

    def __init__(self, message: str = "the gateway is overloaded", retry_after_s: float = OVERLOAD_RETRY_AFTER_S):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class TooLarge(Exception):
    """A request bigger than the whole queue: it could never be taken in, so it is refused for good
    (413 / RESOURCE_EXHAUSTED without a retry hint) instead of being retried forever."""


@dataclass
class IngestResult:
    accepted_spans: int
    rejected_spans: int = 0
    error_message: str = ""  # for OTLP partial_success


class _Stats:
    """Counters (plain ints under the GIL; read as a snapshot by ``stats()``)."""

    __slots__ = (
        "accepted",
        "dropped",
        "export_batches",
        "export_latency_s_max",
        "export_latency_s_sum",
        "exported",
        "exported_batches",
        "held_released",
        "partial_rejected",
        "passthrough",
        "pipeline_errors",
        "queued",
        "received",
        "refused",
        "rejected",
        "replayed",
        "retried",
    )

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)


def build_gateway_pipeline(config: Any, meter_provider: Any = None) -> Any:
    """The processor's pipeline from ``config`` (or the processor's own configuration when None), with
    ``span_metrics.record_all`` on unless set: every span the gateway sees comes from another process,
    whose metrics tokentrace did not record."""
    from tokentrace.processor import config as processor_config

    data = dict(processor_config.load() if config is None else config)
    span_metrics = data.get("span_metrics")
    if span_metrics is None or isinstance(span_metrics, dict):
        data["span_metrics"] = {"record_all": True, **(span_metrics or {})}
    return processor_config.build_pipeline(data, meter_provider=meter_provider)


class Gateway:
    """The engine behind the receivers; see the module docstring."""

    def __init__(
        self,
        settings: EngineSettings,
        *,
        meter_provider: Any = None,
        pipeline: Any = None,
        exporter: Exporter | None = None,
    ) -> None:
        self.settings = settings
        if pipeline is None:
            pipeline = build_gateway_pipeline(settings.pipeline, meter_provider)
        self.pipeline = pipeline
        self._exporter = exporter
        self._owns_exporter = exporter is None
        self._exporter_stats: Any = None  # the exporter's own counters (the local store's), kept past shutdown
        self.queue: PersistentQueue | None = None
        self._journal: PersistentQueue | None = None  # requests acknowledged while the sampler may hold spans
        self._journalled: deque[tuple[Position, int]] = deque()  # (journal position, time processed) in order
        self._stats = _Stats()
        self._pipeline_lock = threading.Lock()
        self._accepting = False
        self._active = 0  # ingest calls in progress
        self._idle = threading.Condition()
        self._stop_poll = threading.Event()
        self._stop_export = threading.Event()  # interrupts retry waits at the end of shutdown
        self._threads: list[threading.Thread] = []
        self._poller: threading.Thread | None = None
        self._started = False

    # --- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Open (and recover) the queue, connect the exporter, start the poller and export workers."""
        if self._started:
            return
        if self._exporter is None:  # first: a bad exporter setting must not leave the queue open
            destination = self.settings.destination
            if destination == "backend":
                self._exporter = build_exporter(self.settings.exporter)
            else:  # imported here: a gateway with a backend alone never loads DuckDB (~15 MiB)
                from tokentrace.gateway.store_export import build_engine_exporter

                self._exporter = build_engine_exporter(self.settings)
                logger.info(
                    "tokentrace gateway: spans go to %s; local store %s",
                    "the backend and the local store" if destination == "backend+store" else "the local store only",
                    self.settings.store.resolved_path(),
                )
        self._exporter_stats = getattr(self._exporter, "stats", None)
        self._stop_poll.clear()
        self._stop_export.clear()
        self._threads = []
        queue_settings = self.settings.queue
        self.queue = PersistentQueue(
            queue_settings.directory,
            fsync_interval_s=queue_settings.fsync_interval_s,
            max_bytes=queue_settings.max_bytes,
            max_memory_bytes=queue_settings.max_memory_bytes,
            segment_bytes=queue_settings.segment_bytes,
            # at least one batch per export worker, or some would idle while the rest retry
            max_unsettled=max(queue_settings.max_unsettled_batches, self.settings.exporter.concurrency),
        )
        if self.queue.redelivered_records:
            logger.warning(
                "tokentrace gateway: %d batch(es) were being sent when the gateway stopped; the backend may get "
                "them twice",
                self.queue.redelivered_records,
            )
        if self.queue.recovered_records:
            logger.info(
                "tokentrace gateway: %d batch(es) recovered from the queue, re-sending", self.queue.recovered_records
            )
        if getattr(self.pipeline, "holds_spans", False):
            self._journal = PersistentQueue(
                os.path.join(queue_settings.directory, JOURNAL_DIRECTORY),
                fsync_interval_s=queue_settings.fsync_interval_s,
                max_bytes=queue_settings.max_bytes,
                segment_bytes=queue_settings.segment_bytes,
            )
            self._replay_journal()
        self._started = True
        self._accepting = True
        self._poller = threading.Thread(target=self._poll_loop, daemon=True, name="tokentrace-gateway-poll")
        self._poller.start()
        for index in range(self.settings.exporter.concurrency):
            thread = threading.Thread(target=self._export_loop, daemon=True, name=f"tokentrace-gateway-export-{index}")
            thread.start()
            self._threads.append(thread)

    def ready(self) -> bool:
        return bool(self._accepting and self.queue is not None and not self.queue.closed and self._exporter is not None)

    def shutdown(self, timeout_s: float) -> None:
        """Stop accepting, release held spans into the queue, drain it to the backend within
        ``timeout_s``; what is left stays on disk and is sent after the next start."""
        if not self._started:
            return
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._idle:
            self._accepting = False
            self._idle.wait_for(lambda: not self._active, timeout=max(0.1, deadline - time.monotonic()))
        self._stop_poll.set()
        if self._poller is not None:
            self._poller.join(max(0.1, deadline - time.monotonic()))
        with self._pipeline_lock:
            try:
                released = self.pipeline.shutdown()
            except Exception:
                logger.exception("tokentrace gateway: pipeline shutdown failed")
                released = []
            written = self._enqueue_released_locked(released)
            settled = self._settled_locked()
        self._settle(written, settled)
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        queue = self.queue
        assert queue is not None
        while time.monotonic() < deadline and not queue.empty():
            time.sleep(0.01)
        if not queue.empty():
            logger.warning("tokentrace gateway: shutdown timeout; %d batch(es) stay queued on disk", queue.depth)
        self._stop_export.set()
        queue.close()
        for thread in self._threads:
            thread.join(max(0.5, deadline - time.monotonic() + 1.0))
        if self._exporter is not None:
            try:
                self._exporter.close()
            except Exception:
                logger.debug("tokentrace gateway: exporter close failed", exc_info=True)
            if self._owns_exporter:
                self._exporter = None  # a restart builds a new one (the old channel is closed)
        self._started = False

    # --- intake -------------------------------------------------------------------------------------

    def _enter(self, size: int, *, exact: bool = True) -> PersistentQueue:
        """Admit one request (or refuse it): counted as active until ``_leave`` so that shutdown waits for
        it before releasing what the sampler holds (an acknowledged span must not be held after that).
        ``exact``: ``size`` is the request's encoded size, not a guess, so it may be refused as too large."""
        with self._idle:
            queue = self.queue
            if not self._accepting or queue is None:
                raise Overloaded("the gateway is not accepting (starting or shutting down)")
            if exact and not queue.could_ever_hold(size):
                raise TooLarge(f"the request ({size} bytes) is larger than the whole queue ({queue.max_bytes} bytes)")
            if not queue.has_room(size):
                raise Overloaded(f"the queue is full ({queue.disk_bytes} bytes waiting)")
            self._active += 1
            return queue

    def _leave(self) -> None:
        with self._idle:
            self._active -= 1
            if not self._active:
                self._idle.notify_all()

    def ingest_traces(self, request: Any, raw: bytes | None = None) -> IngestResult:
        """Run ``request`` (an ExportTraceServiceRequest; ``raw``: its bytes as received, if at hand)
        through the pipeline into the queue."""
        try:
            queue = self._enter(len(raw) if raw is not None else request.ByteSize())
        except (Overloaded, TooLarge):
            self._stats.refused += count_spans(request)
            raise
        try:
            return self._ingest(queue, request, raw)
        finally:
            self._leave()

    def _ingest(self, queue: PersistentQueue, request: Any, raw: bytes | None = None) -> IngestResult:
        stats = self._stats
        decoded = decode_request(raw if raw is not None else request)
        total = len(decoded.spans)
        stats.received += total + decoded.rejected
        stats.rejected += decoded.rejected
        if decoded.spans:
            try:
                self._run_pipeline(queue, decoded)
            except QueueClosed as exc:  # cannot happen while active (shutdown waits); never acknowledge it
                stats.refused += total
                raise Overloaded("the gateway is shutting down") from exc
        stats.accepted += total
        return IngestResult(total, decoded.rejected, decoded.error_message)

    def _run_pipeline(self, queue: PersistentQueue, decoded: Decoded, replaying: Position | None = None) -> None:
        """Journal (when spans may be held), process, queue what passed; return once both are durable.

        Journal, pipeline and queue writes happen in one critical section, so the journal's record of a
        request is never committed before what the pipeline released from it is in the queue; the
        fsync waits happen after it, so concurrent requests still share one fsync."""
        spans = decoded.spans
        journal = self._journal
        journalled: Position | None = None  # appended now (a replayed request is in the journal already)
        written: Position | None = None
        with self._pipeline_lock:
            position = replaying
            if journal is not None and position is None:
                position = journalled = journal.append(
                    KIND_TRACES, decoded.body, count=len(spans), force=True, wait=False
                )
            try:
                passed = self.pipeline.process(spans)
            except Exception:  # a stage's bug must not lose data: pass the batch on as it is
                logger.exception("tokentrace gateway: the pipeline failed; exporting the batch unprocessed")
                self._stats.pipeline_errors += 1
                passed = spans
            if passed:
                payload = encode_spans(passed, decoded)
                written = queue.append(KIND_TRACES, payload, count=len(passed), force=True, wait=False)
                self._stats.queued += len(passed)
            if position is not None:
                self._journalled.append((position, time.time_ns()))
        if journal is not None and journalled is not None:
            journal.wait_durable(journalled)
        if written is not None:
            queue.wait_durable(written)

    def _replay_journal(self) -> None:
        """Run the requests acknowledged before a crash whose spans may not all have reached the queue
        through the pipeline again (their spans already queued then may reach the backend twice)."""
        journal, queue = self._journal, self.queue
        assert journal is not None and queue is not None
        records = journal.uncommitted()
        for record in records:
            try:
                decoded = decode_request(record.payload)
            except ValueError:  # pragma: no cover - the record's CRC held, so it is what was written
                logger.error("tokentrace gateway: an intake journal record does not decode; skipped")
                continue
            self._stats.replayed += len(decoded.spans)
            if decoded.spans:
                self._run_pipeline(queue, decoded, replaying=Position(record.segment, record.end))
        if records:
            logger.warning(
                "tokentrace gateway: %d request(s) acknowledged before the last stop were not fully passed on; "
                "%d span(s) run through the pipeline again (some may reach the backend twice)",
                len(records),
                self._stats.replayed,
            )

    def _settled_locked(self) -> Position | None:
        """The journal position every request before which has fully left the pipeline (under the lock)."""
        if self._journal is None or not self._journalled:
            return None
        try:
            oldest = self.pipeline.oldest_held_ns()
        except Exception:
            logger.exception("tokentrace gateway: could not ask the pipeline what it holds")
            return None
        settled = None
        journalled = self._journalled
        while journalled and (oldest is None or journalled[0][1] < oldest):
            settled = journalled.popleft()[0]
        return settled

    def _settle(self, written: Position | None, settled: Position | None) -> None:
        """After the lock: make released spans durable, then commit the journal up to ``settled``."""
        queue = self.queue
        if written is not None and queue is not None:
            queue.wait_durable(written)
        if settled is not None and self._journal is not None and queue is not None:
            queue.wait_durable(queue.written)  # other requests' released spans, written under the lock
            self._journal.commit_through(settled)

    def ingest_traces_json(self, body: bytes) -> IngestResult:
        """OTLP/JSON; ``ValueError`` when the body cannot be decoded."""
        self._enter(len(body) // 2, exact=False)  # refuse before the decode work when full
        self._leave()
        return self.ingest_traces(decode_json(body, "traces"))

    def ingest_passthrough(self, signal: str, body: bytes, content_type: str) -> None:
        """Metrics or logs, queued as received and forwarded untouched."""
        kind = PASSTHROUGH_KINDS.get(signal)
        if kind is None:
            raise ValueError(f"unknown passthrough signal {signal!r}")
        if "json" in (content_type or "").lower():
            kind |= KIND_JSON
        queue = self._enter(len(body))
        try:
            queue.append(kind, bytes(body))
        except (QueueFull, QueueClosed) as exc:
            raise Overloaded(str(exc)) from exc
        finally:
            self._leave()
        self._stats.passthrough += 1

    def _enqueue_released_locked(self, released: list[Any]) -> Position | None:
        """Write spans the pipeline released on its own into the queue (under the pipeline lock); the
        caller waits for :meth:`PersistentQueue.wait_durable` of the result after the lock."""
        if not released:
            return None
        self._stats.held_released += len(released)
        try:
            payload = encode_spans(released)
        except Exception:
            logger.exception("tokentrace gateway: could not encode %d released span(s); dropped", len(released))
            self._stats.dropped += len(released)
            return None
        assert self.queue is not None
        try:
            written = self.queue.append(KIND_TRACES, payload, count=len(released), force=True, wait=False)
        except QueueClosed:
            logger.error("tokentrace gateway: queue closed; %d released span(s) lost", len(released))
            self._stats.dropped += len(released)
            return None
        self._stats.queued += len(released)
        return written

    def _poll_loop(self) -> None:
        while not self._stop_poll.wait(self.settings.poll_interval_s):
            self.poll()

    def poll(self) -> None:
        """Release spans whose trace is decided, and commit the journal past requests fully passed on
        (the timer calls this; tests may too)."""
        try:
            with self._pipeline_lock:
                released = self.pipeline.poll()
                written = self._enqueue_released_locked(released)
                settled = self._settled_locked()
            self._settle(written, settled)
        except Exception:
            logger.exception("tokentrace gateway: pipeline poll failed")

    # --- export -------------------------------------------------------------------------------------

    def _export_loop(self) -> None:
        queue = self.queue
        assert queue is not None
        while not self._stop_export.is_set():
            record = queue.get(timeout_s=0.25)
            if record is None:
                if queue.closed:
                    return
                continue
            self._deliver(queue, record)

    def _deliver(self, queue: PersistentQueue, record: Record) -> None:
        settings = self.settings.exporter
        stats = self._stats
        exporter = self._exporter
        assert exporter is not None
        delays = backoff_delays(settings.initial_backoff_s, settings.max_backoff_s)
        first = time.monotonic()
        while True:
            started = time.perf_counter()
            try:
                outcome = exporter.send(record.kind, record.payload)
            except Exception as exc:  # a bug or an unexpected transport error: retry, never lose the batch
                logger.exception("tokentrace gateway: export raised")
                outcome = Outcome("retry", message=f"{type(exc).__name__}: {exc}")
            elapsed = time.perf_counter() - started
            if outcome.status == "ok":
                stats.exported += record.count
                stats.exported_batches += 1
                stats.export_batches += 1
                stats.export_latency_s_sum += elapsed
                stats.export_latency_s_max = max(stats.export_latency_s_max, elapsed)
                if outcome.rejected or outcome.message:
                    stats.partial_rejected += outcome.rejected
                    logger.warning(
                        "tokentrace gateway: backend rejected %d of %d item(s): %s",
                        outcome.rejected,
                        record.count,
                        outcome.message,
                    )
                queue.ack(record)
                return
            if outcome.status == "drop":
                stats.dropped += record.count
                logger.error(
                    "tokentrace gateway: backend refused a batch of %d item(s) permanently, dropped: %s",
                    record.count,
                    outcome.message,
                )
                queue.ack(record)
                return
            stats.retried += 1
            if settings.max_elapsed_s is not None and time.monotonic() - first > settings.max_elapsed_s:
                stats.dropped += record.count
                logger.error(
                    "tokentrace gateway: gave up on a batch of %d item(s) after %.0f s: %s",
                    record.count,
                    time.monotonic() - first,
                    outcome.message,
                )
                queue.ack(record)
                return
            # the backend's delay when it gave one (floored: "0" must not turn into a busy loop), else backoff
            delay = max(outcome.retry_after_s, 0.05) if outcome.retry_after_s is not None else next(delays)
            logger.info("tokentrace gateway: export failed (%s); retrying in %.2f s", outcome.message, delay)
            if self._stop_export.wait(delay):
                queue.release(record)  # shutdown: stays in the queue for the next start
                return

    # --- introspection ------------------------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        stats = self._stats
        queue = self.queue
        batches = stats.export_batches
        return {
            "received": stats.received,
            "accepted": stats.accepted,
            "refused": stats.refused,
            "rejected": stats.rejected,
            "queued": stats.queued,
            "held_released": stats.held_released,
            "passthrough": stats.passthrough,
            "exported": stats.exported,
            "exported_batches": stats.exported_batches,
            "retried": stats.retried,
            "dropped": stats.dropped,
            "backend_rejected": stats.partial_rejected,
            "pipeline_errors": stats.pipeline_errors,
            "replayed": stats.replayed,
            "queue_depth_bytes": queue.disk_bytes if queue is not None else 0,
            "queue_depth_batches": queue.depth if queue is not None else 0,
            "queue_in_flight_batches": queue.in_flight if queue is not None else 0,
            "queue_recovered_batches": queue.recovered_records if queue is not None else 0,
            "redelivered_batches": queue.redelivered_records if queue is not None else 0,
            # acknowledged requests kept in the intake journal until the sampler has passed them all on
            "journal_depth_bytes": self._journal.disk_bytes if self._journal is not None else 0,
            "export_latency_avg_s": stats.export_latency_s_sum / batches if batches else 0.0,
            "export_latency_max_s": stats.export_latency_s_max,
            **self._store_stats(),
        }

    def _store_stats(self) -> dict[str, float]:
        """The local store's counters (0 without one, so the metrics are the same set either way)."""
        figures = {"store_written": 0, "store_duplicates": 0, "store_passthrough_dropped": 0}
        if self._exporter_stats is not None:
            try:
                figures.update(self._exporter_stats())
            except Exception:
                logger.debug("tokentrace gateway: exporter stats failed", exc_info=True)
        return figures
