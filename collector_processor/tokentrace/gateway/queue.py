"""The persistent queue: an append-only log of segment files, and a committed read position.

Why our own and not ``persist-queue`` or ``diskcache``: both keep items in SQLite (a write
transaction, and with ``persist-queue`` a pickle, per item) and neither gives the three things the
gateway's acknowledgement needs: a write that returns only once durable under a chosen fsync policy
with group commit, a byte bound that refuses rather than drops, and a consumer that commits a position
only after the backend accepted, with several batches in flight. A segment log does all three in
about 300 lines using only ``os`` calls.

Layout of ``directory``::

    00000000000000000001.seg   records appended in order; a new segment past ``segment_bytes``
    00000000000000000002.seg
    committed                  "<segment> <offset>": everything before it was accepted by the backend
    handed                     how far records were handed to the exporter: those past ``committed``
                               are counted as ``redelivered`` after a crash (the backend may have them)

A record is ``length (u32 LE) | crc32 (u32 LE) | kind (u8) | count (u32 LE) | payload``, where length
and the CRC cover kind, count and payload, and count is what the payload holds (spans) for statistics. Writes go
straight to the file descriptor (no user-space buffer), so an acknowledged record is in the kernel and
survives the process being killed; ``fsync`` (``always``, or every ``interval``) makes it survive
power loss. On open, each segment is scanned; a torn tail (short or bad CRC) of the last segment is cut
off, and reading resumes at the committed position. The committed position advances only over an
unbroken run of accepted batches, so a crash re-sends the batches in flight plus any accepted behind
one still being retried (counted as ``redelivered``), never loses one. ``max_unsettled`` bounds that
window: no record is handed out while that many past the committed position are in flight or waiting
for an earlier one, so a crash re-sends at most ``max_unsettled`` batches however long one retries.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass

logger = logging.getLogger(__name__)

HEADER = struct.Struct("<II")  # length, crc32 of the body
BODY_HEADER = struct.Struct("<BI")  # kind, count
MAX_RECORD = 1 << 30
SUFFIX = ".seg"
COMMITTED = "committed"
HANDED = "handed"  # the read position last handed to the exporter (u64 segment, u64 offset)
POSITION = struct.Struct("<QQ")

KIND_TRACES = 1
KIND_METRICS = 2
KIND_LOGS = 3
KIND_JSON = 0x80  # flag: the payload is OTLP/JSON (passthrough as received)


class QueueFull(Exception):
    """No room on disk or in memory; the caller refuses (retryable), nothing is dropped."""


class QueueClosed(Exception):
    """The queue is closed (shutting down)."""


@dataclass(frozen=True, slots=True)
class Record:
    segment: int
    offset: int  # where the record starts
    end: int  # where the next one starts
    kind: int
    payload: bytes
    count: int = 0  # items (spans) in the payload


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """Just after a record: its segment, the offset where the next record starts, and the write count."""

    segment: int
    offset: int
    seq: int = 0


def _segment_name(number: int) -> str:
    return f"{number:020d}{SUFFIX}"


class PersistentQueue:
    """Many producers (``append``), several consumers (``get`` then ``ack``), one directory."""

    def __init__(
        self,
        directory: str,
        *,
        fsync_interval_s: float | None = 0.2,
        max_bytes: int = 1 << 30,
        max_memory_bytes: int = 64 << 20,
        segment_bytes: int = 16 << 20,
        max_unsettled: int = 32,
    ) -> None:
        self.directory = directory
        self.fsync_interval_s = fsync_interval_s  # 0: always, None: never
        self.max_bytes = max_bytes
        self.max_memory_bytes = max_memory_bytes
        self.segment_bytes = segment_bytes
        self.max_unsettled = max(1, max_unsettled)
        self._lock = threading.Lock()
        self._readable = threading.Condition(self._lock)
        self._sync_lock = threading.Lock()
        self._closed = False
        self.recovered_records = 0  # records found after the committed position on open
        self.discarded_bytes = 0  # torn tails cut off on open
        self.appended = 0
        self.acked = 0
        os.makedirs(directory, exist_ok=True)
        self._segments: deque[int] = deque()  # numbers, oldest first
        self._sizes: dict[int, int] = {}
        self._recover()
        self._write_seq = 0  # appends written (for group commit)
        self._synced_seq = 0
        self._in_flight: dict[tuple[int, int], Record] = {}  # handed to consumers, not acked
        self._done: dict[tuple[int, int], int] = {}  # acked out of order (-> end), waiting for earlier ones
        self._in_flight_bytes = 0
        self._flusher: threading.Thread | None = None
        self._stop_flusher = threading.Event()
        if fsync_interval_s:
            self._flusher = threading.Thread(target=self._flush_loop, daemon=True, name="tokentrace-queue-fsync")
            self._flusher.start()

    # --- open / recover -----------------------------------------------------------------------------

    def _recover(self) -> None:
        numbers = sorted(
            int(name[: -len(SUFFIX)])
            for name in os.listdir(self.directory)
            if name.endswith(SUFFIX) and name[: -len(SUFFIX)].isdigit()
        )
        commit_segment, commit_offset = self._read_committed()
        for number in numbers:
            if number < commit_segment:  # fully committed, left behind by a crash before deletion
                os.unlink(self._path(number))
                continue
            self._segments.append(number)
        if not self._segments:
            self._segments.append(max(commit_segment, 1))
        handed = self._read_handed()
        self.redelivered_records = 0  # handed to the exporter before the restart: the backend may have them
        for index, number in enumerate(self._segments):
            path = self._path(number)
            valid, offsets = self._scan(path, commit_offset if number == commit_segment else 0)
            count = len(offsets)
            self.redelivered_records += sum(1 for offset in offsets if (number, offset) < handed)
            size = os.path.getsize(path) if os.path.exists(path) else 0
            if valid < size:
                last = index == len(self._segments) - 1
                logger.warning(
                    "tokentrace gateway queue: %s: cutting %d byte(s) of %s at offset %d",
                    path,
                    size - valid,
                    "torn tail" if last else "corrupt data",
                    valid,
                )
                with open(path, "r+b") as fh:
                    fh.truncate(valid)
                    os.fsync(fh.fileno())
                self.discarded_bytes += size - valid
            self._sizes[number] = valid
            self.recovered_records += count
        self._read_segment = self._segments[0]
        self._read_offset = commit_offset if self._read_segment == commit_segment else 0
        self._commit_segment, self._commit_offset = self._read_segment, self._read_offset
        self._write_segment = self._segments[-1]
        self._write_fd = os.open(self._path(self._write_segment), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if self.fsync_interval_s is not None:
            self._sync_directory()  # the segment's directory entry must survive a power loss too
        self._write_size = self._sizes.get(self._write_segment, 0)
        self._sizes[self._write_segment] = self._write_size
        self._read_fd: int | None = None
        self._read_fd_segment = -1
        self._handed_fd = os.open(os.path.join(self.directory, HANDED), os.O_RDWR | os.O_CREAT, 0o600)

    def _read_handed(self) -> tuple[int, int]:
        try:
            with open(os.path.join(self.directory, HANDED), "rb") as fh:
                return POSITION.unpack(fh.read(POSITION.size))
        except (OSError, struct.error):
            return 0, 0

    def _read_committed(self) -> tuple[int, int]:
        try:
            with open(os.path.join(self.directory, COMMITTED), encoding="ascii") as fh:
                segment, offset = fh.read().split()
                return int(segment), int(offset)
        except FileNotFoundError:
            return 0, 0
        except (OSError, ValueError):
            logger.warning("tokentrace gateway queue: unreadable commit file; re-sending from the oldest segment")
            return 0, 0

    def _scan(self, path: str, start: int) -> tuple[int, list[int]]:
        """(end of the last complete record, offsets of the records from ``start``)."""
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            return 0, []
        return _scan_records(data, start)

    def _path(self, number: int) -> str:
        return os.path.join(self.directory, _segment_name(number))

    # --- producers ----------------------------------------------------------------------------------

    @property
    def disk_bytes(self) -> int:
        """Bytes not yet committed (what the byte bound counts)."""
        total = sum(list(self._sizes.values()))  # a snapshot: stats() reads it without the lock
        return total - self._commit_offset if self._segments else 0

    @property
    def memory_bytes(self) -> int:
        return self._in_flight_bytes

    @property
    def depth(self) -> int:
        """Records appended (or recovered) and not yet acknowledged."""
        return self.recovered_records + self.appended - self.acked

    def could_ever_hold(self, size: int) -> bool:
        """Whether a record of ``size`` fits the byte bound at all, even with the queue empty."""
        return size + HEADER.size + BODY_HEADER.size <= self.max_bytes

    def has_room(self, size: int) -> bool:
        with self._lock:
            return self.disk_bytes + size + HEADER.size <= self.max_bytes

    def append(self, kind: int, payload: bytes, *, count: int = 0, force: bool = False, wait: bool = True) -> Position:
        """Write one record; returns once it is durable under the fsync policy (with ``wait=False`` once
        written: the caller passes the result to :meth:`wait_durable` later, e.g. outside its own lock).

        Raises :class:`QueueFull` past ``max_bytes`` unless ``force`` (spans the pipeline released on
        its own, which must not be lost: the caller checked ``has_room`` before taking them in).
        """
        body_header = BODY_HEADER.pack(kind, count)
        crc = zlib.crc32(payload, zlib.crc32(body_header))
        record = HEADER.pack(len(body_header) + len(payload), crc) + body_header + payload
        with self._lock:
            if self._closed:
                raise QueueClosed("the queue is closed")
            if not force and self.disk_bytes + len(record) > self.max_bytes:
                raise QueueFull(f"queue holds {self.disk_bytes} bytes (max {self.max_bytes})")
            if self._write_size and self._write_size + len(record) > self.segment_bytes:
                self._rotate()
            _write_all(self._write_fd, record)
            self._write_size += len(record)
            self._sizes[self._write_segment] = self._write_size
            self._write_seq += 1
            seq = self._write_seq
            self.appended += 1
            self._readable.notify()
            position = Position(self._write_segment, self._write_size, seq)
        if wait:
            self.wait_durable(position)
        return position

    def wait_durable(self, position: Position) -> None:
        """Return once the record at ``position`` (and everything written before it) is durable under
        the fsync policy: at once for ``interval`` and ``never`` (written records survive the process)."""
        if self.fsync_interval_s == 0:
            with self._lock:
                fd = self._write_fd
            self._sync_up_to(position.seq, fd)

    @property
    def written(self) -> Position:
        """Where the next record will go: :meth:`wait_durable` of it covers every record written so far."""
        with self._lock:
            return Position(self._write_segment, self._write_size, self._write_seq)

    def _rotate(self) -> None:
        if self.fsync_interval_s is not None:
            os.fsync(self._write_fd)
        os.close(self._write_fd)
        self._write_segment += 1
        self._segments.append(self._write_segment)
        self._write_fd = os.open(self._path(self._write_segment), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._write_size = 0
        self._sizes[self._write_segment] = 0
        self._sync_directory()

    def _sync_up_to(self, seq: int, fd: int) -> None:
        """Group commit: one fsync covers every append written before it started."""
        with self._sync_lock:
            if self._synced_seq >= seq:
                return
            with self._lock:
                target = self._write_seq
                fd = self._write_fd
            try:
                os.fsync(fd)
            except OSError:  # rotated and closed meanwhile: rotation fsynced it
                pass
            self._synced_seq = max(self._synced_seq, target)

    def _flush_loop(self) -> None:
        assert self.fsync_interval_s
        while not self._stop_flusher.wait(self.fsync_interval_s):
            with self._lock:
                seq, fd = self._write_seq, self._write_fd
            if seq > self._synced_seq:
                self._sync_up_to(seq, fd)

    def _sync_directory(self) -> None:
        try:
            fd = os.open(self.directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    # --- consumers ----------------------------------------------------------------------------------

    def get(self, timeout_s: float | None = None) -> Record | None:
        """The next record not yet handed out, or None after ``timeout_s`` (or once closed and empty)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._lock:
            while True:
                if self._closed:
                    return None
                record = self._next_locked() if self._unsettled_locked() < self.max_unsettled else None
                if record is not None:
                    if self._in_flight and self._in_flight_bytes + len(record.payload) > self.max_memory_bytes:
                        self._read_segment, self._read_offset = record.segment, record.offset  # not now
                    else:
                        self._in_flight[(record.segment, record.offset)] = record
                        self._in_flight_bytes += len(record.payload)
                        # one small in-place write: after a crash, what was handed out counts as redelivered
                        os.pwrite(self._handed_fd, POSITION.pack(self._read_segment, self._read_offset), 0)
                        return record
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._readable.wait(remaining if remaining is not None else 1.0)

    def _unsettled_locked(self) -> int:
        """Records handed out past the committed position: in flight, or acknowledged behind one that is."""
        return len(self._in_flight) + len(self._done)

    def _next_locked(self) -> Record | None:
        while True:
            size = self._sizes.get(self._read_segment, 0)
            if self._read_offset + HEADER.size <= size:
                return self._read_record_locked()
            if self._read_segment >= self._write_segment:
                return None
            self._read_segment += 1  # this segment is read to its end: on to the next
            self._read_offset = 0

    def _read_record_locked(self) -> Record:
        if self._read_fd_segment != self._read_segment:
            if self._read_fd is not None:
                os.close(self._read_fd)
            self._read_fd = os.open(self._path(self._read_segment), os.O_RDONLY)
            self._read_fd_segment = self._read_segment
        header = os.pread(self._read_fd, HEADER.size + BODY_HEADER.size, self._read_offset)
        length, _crc, kind, count = struct.unpack("<IIBI", header)
        start = self._read_offset + HEADER.size + BODY_HEADER.size
        payload = os.pread(self._read_fd, length - BODY_HEADER.size, start)
        record = Record(
            self._read_segment, self._read_offset, self._read_offset + HEADER.size + length, kind, payload, count
        )
        self._read_offset = record.end
        return record

    def ack(self, record: Record) -> None:
        """The backend has it (or it was dropped for good): advance the committed position past every
        record handed out before it that is also done."""
        with self._lock:
            key = (record.segment, record.offset)
            if self._in_flight.pop(key, None) is None:
                return
            self._in_flight_bytes -= len(record.payload)
            self.acked += 1
            self._done[key] = record.end
            before = (self._commit_segment, self._commit_offset)
            while True:
                self._advance_commit_segment()
                end = self._done.pop((self._commit_segment, self._commit_offset), None)
                if end is None:
                    break
                self._commit_offset = end
            if (self._commit_segment, self._commit_offset) != before:
                self._write_committed_locked()
            self._readable.notify_all()  # memory freed (and maybe disk): waiting consumers may go on

    # --- a journal: a log without consumers, committed in order by its writer --------------------

    def uncommitted(self) -> list[Record]:
        """Every record after the committed position, in order (a journal's replay on open). Only for a
        queue no consumer reads with :meth:`get`."""
        with self._lock:
            out: list[Record] = []
            segment, offset = self._commit_segment, self._commit_offset
            for number in self._segments:
                if number < segment:
                    continue
                start = offset if number == segment else 0
                with open(self._path(number), "rb") as fh:
                    data = fh.read()
                _, offsets = _scan_records(data, start)
                for at in offsets:
                    length, _crc = HEADER.unpack_from(data, at)
                    kind, count = BODY_HEADER.unpack_from(data, at + HEADER.size)
                    body = at + HEADER.size + BODY_HEADER.size
                    end = at + HEADER.size + length
                    out.append(Record(number, at, end, kind, data[body:end], count))
            return out

    def commit_through(self, position: Position) -> None:
        """A journal's writer is done with every record up to ``position``: commit it, delete what is
        wholly behind it. Only for a queue no consumer reads with :meth:`get`."""
        target = (position.segment, position.offset)
        with self._lock:
            if target <= (self._commit_segment, self._commit_offset):
                return
            if (self._read_segment, self._read_offset) < target:
                self._read_segment, self._read_offset = target
            while self._commit_segment < position.segment:
                self._commit_offset = self._sizes.get(self._commit_segment, 0)
                before = self._commit_segment
                self._advance_commit_segment()
                if self._commit_segment == before:  # pragma: no cover - a gap in segment numbers
                    break
            if self._commit_segment == position.segment:
                self._commit_offset = max(self._commit_offset, position.offset)
            self._write_committed_locked()

    def release(self, record: Record) -> None:
        """Hand a record back unsent (shutdown mid-retry): it is sent again after the next start."""
        with self._lock:
            if self._in_flight.pop((record.segment, record.offset), None) is not None:
                self._in_flight_bytes -= len(record.payload)

    def _advance_commit_segment(self) -> None:
        """Delete segments read and committed to their end."""
        while (
            self._commit_segment < self._write_segment
            and self._commit_offset >= self._sizes.get(self._commit_segment, 0)
            and self._read_segment > self._commit_segment
        ):
            old = self._commit_segment
            self._commit_segment += 1
            self._commit_offset = 0
            if self._segments and self._segments[0] == old:
                self._segments.popleft()
            self._sizes.pop(old, None)
            if self._read_fd_segment == old and self._read_fd is not None:
                os.close(self._read_fd)
                self._read_fd, self._read_fd_segment = None, -1
            try:
                os.unlink(self._path(old))
            except FileNotFoundError:
                pass

    def _write_committed_locked(self) -> None:
        path = os.path.join(self.directory, COMMITTED)
        temporary = path + ".tmp"
        with open(temporary, "w", encoding="ascii") as fh:
            fh.write(f"{self._commit_segment} {self._commit_offset}")
            if self.fsync_interval_s == 0:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(temporary, path)

    def empty(self) -> bool:
        """Nothing left to hand out and nothing in flight."""
        with self._lock:
            return not self._in_flight and self._next_pending_locked() is False

    def _next_pending_locked(self) -> bool:
        if self._read_offset + HEADER.size <= self._sizes.get(self._read_segment, 0):
            return True
        return any(self._sizes.get(number, 0) for number in self._segments if number > self._read_segment)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    # --- close --------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop accepting, fsync what was written (whatever the policy), wake blocked consumers."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._readable.notify_all()
        self._stop_flusher.set()
        if self._flusher is not None:
            self._flusher.join(5)
        with self._lock:
            try:
                os.fsync(self._write_fd)
            except OSError:
                pass
            os.close(self._write_fd)
            if self._read_fd is not None:
                os.close(self._read_fd)
                self._read_fd = None
            self._read_fd_segment = -1
            os.close(self._handed_fd)

    @property
    def closed(self) -> bool:
        return self._closed


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _scan_records(data: bytes, start: int) -> tuple[int, list[int]]:
    """(end of the last complete record in ``data``, offsets of the records from ``start``): a record
    that is short or fails its CRC ends the scan (a torn tail)."""
    offsets: list[int] = []
    offset = 0
    size = len(data)
    while offset + HEADER.size <= size:
        length, crc = HEADER.unpack_from(data, offset)
        end = offset + HEADER.size + length
        if length > MAX_RECORD or length < BODY_HEADER.size or end > size:
            break
        if zlib.crc32(data[offset + HEADER.size : end]) != crc:
            break
        if offset >= start:
            offsets.append(offset)
        offset = end
    return offset, offsets
