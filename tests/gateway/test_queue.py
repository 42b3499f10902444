"""The persistent queue: order, bounds, commits, recovery after a crash (a real kill -9), torn tails."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from tokentrace.gateway.queue import COMMITTED, KIND_LOGS, KIND_TRACES, PersistentQueue, QueueClosed, QueueFull


def drain(queue: PersistentQueue, ack: bool = True) -> list[bytes]:
    out = []
    while True:
        record = queue.get(timeout_s=0.05)
        if record is None:
            return out
        out.append(record.payload)
        if ack:
            queue.ack(record)


@pytest.fixture
def directory(tmp_path):
    return str(tmp_path / "queue")


def test_records_come_out_in_order_with_kind_and_count(directory):
    queue = PersistentQueue(directory, fsync_interval_s=0)
    queue.append(KIND_TRACES, b"one", count=3)
    queue.append(KIND_LOGS, b"two")
    first = queue.get(timeout_s=1)
    second = queue.get(timeout_s=1)
    assert (first.kind, first.payload, first.count) == (KIND_TRACES, b"one", 3)
    assert (second.kind, second.payload, second.count) == (KIND_LOGS, b"two", 0)
    assert queue.get(timeout_s=0.01) is None
    queue.ack(second)
    queue.ack(first)
    assert queue.empty() and queue.depth == 0 and queue.disk_bytes == 0
    queue.close()


def test_get_blocks_until_an_append(directory):
    queue = PersistentQueue(directory, fsync_interval_s=None)
    got = []
    thread = threading.Thread(target=lambda: got.append(queue.get(timeout_s=5)))
    thread.start()
    queue.append(KIND_TRACES, b"x")
    thread.join(5)
    assert got[0].payload == b"x"
    queue.close()


def test_full_queue_refuses_and_never_drops(directory):
    queue = PersistentQueue(directory, fsync_interval_s=None, max_bytes=1000)
    for _ in range(4):
        queue.append(KIND_TRACES, b"x" * 200)
    assert not queue.has_room(200)
    with pytest.raises(QueueFull):
        queue.append(KIND_TRACES, b"y" * 200)
    queue.append(KIND_TRACES, b"z" * 200, force=True)  # released spans the caller admitted earlier
    assert drain(queue) == [b"x" * 200] * 4 + [b"z" * 200]
    queue.append(KIND_TRACES, b"y" * 200)  # room again once committed
    queue.close()


def test_memory_bound_limits_records_in_flight(directory):
    queue = PersistentQueue(directory, fsync_interval_s=None, max_memory_bytes=250)
    for index in range(3):
        queue.append(KIND_TRACES, bytes([index]) * 200)
    first = queue.get(timeout_s=0.1)
    second = queue.get(timeout_s=0.1)  # over the bound: waits
    assert first is not None and second is None
    queue.ack(first)
    assert queue.get(timeout_s=0.1).payload == b"\x01" * 200
    queue.close()


def test_export_runs_at_most_max_unsettled_ahead_of_a_batch_being_retried(directory):
    """One batch retried for long must not let the rest run ahead without bound: everything handed out
    past the committed position is what a crash sends twice."""
    queue = PersistentQueue(directory, fsync_interval_s=0, max_unsettled=3)
    for index in range(10):
        queue.append(KIND_TRACES, b"batch-%d" % index)
    stuck = queue.get(timeout_s=1)  # the backend keeps refusing this one
    delivered = []
    while (record := queue.get(timeout_s=0.05)) is not None:
        queue.ack(record)  # the others are accepted at once...
        delivered.append(record.payload)
    assert delivered == [b"batch-1", b"batch-2"]  # ...but only up to the bound
    queue.close()
    reopened = PersistentQueue(directory, fsync_interval_s=0)
    assert reopened.redelivered_records == 3  # the stuck one and the two behind it: the bound
    assert drain(reopened)[:3] == [b"batch-0", b"batch-1", b"batch-2"]
    reopened.close()
    assert stuck.payload == b"batch-0"


def test_settling_the_oldest_batch_lets_export_run_ahead_again(directory):
    queue = PersistentQueue(directory, fsync_interval_s=None, max_unsettled=2)
    for index in range(4):
        queue.append(KIND_TRACES, b"batch-%d" % index)
    first, second = queue.get(timeout_s=1), queue.get(timeout_s=1)
    queue.ack(second)  # acknowledged out of order: still unsettled behind the first
    assert queue.get(timeout_s=0.05) is None
    queue.ack(first)
    assert [queue.get(timeout_s=1).payload for _ in range(2)] == [b"batch-2", b"batch-3"]
    queue.close()


def test_a_journal_commits_in_order_across_segments_and_replays_the_rest(directory):
    """The intake journal's use: append, commit up to a position, read back what is not committed."""
    journal = PersistentQueue(directory, fsync_interval_s=0, segment_bytes=300)
    positions = [journal.append(KIND_TRACES, b"request-%d" % index + b"." * 100, wait=False) for index in range(8)]
    journal.wait_durable(positions[-1])
    assert len({position.segment for position in positions}) > 2  # spread over several segments
    journal.commit_through(positions[4])
    segments_left = len([name for name in os.listdir(directory) if name.endswith(".seg")])
    journal.close()
    reopened = PersistentQueue(directory, fsync_interval_s=0, segment_bytes=300)
    assert [record.payload[:9] for record in reopened.uncommitted()] == [b"request-5", b"request-6", b"request-7"]
    assert segments_left < len({position.segment for position in positions})  # committed segments deleted
    reopened.commit_through(positions[2])  # behind the committed position: nothing changes
    assert len(reopened.uncommitted()) == 3
    reopened.commit_through(reopened.written)
    assert reopened.uncommitted() == [] and reopened.disk_bytes == 0
    reopened.close()


def test_uncommitted_records_are_redelivered_after_reopen(directory):
    queue = PersistentQueue(directory, fsync_interval_s=0)
    for index in range(5):
        queue.append(KIND_TRACES, b"batch-%d" % index)
    records = [queue.get(timeout_s=1) for _ in range(3)]
    queue.ack(records[0])
    queue.ack(records[2])  # out of order: the commit stays behind records[1]
    queue.close()
    reopened = PersistentQueue(directory, fsync_interval_s=0)
    assert reopened.recovered_records == 4 and reopened.redelivered_records == 2  # records[1] and records[2]
    assert drain(reopened) == [b"batch-1", b"batch-2", b"batch-3", b"batch-4"]
    reopened.close()
    again = PersistentQueue(directory, fsync_interval_s=0)
    assert again.recovered_records == 0 and drain(again) == []
    again.close()


def test_segments_rotate_and_committed_ones_are_deleted(directory):
    queue = PersistentQueue(directory, fsync_interval_s=None, segment_bytes=300)
    for index in range(10):
        queue.append(KIND_TRACES, bytes([index]) * 100)
    segments = [name for name in os.listdir(directory) if name.endswith(".seg")]
    assert len(segments) >= 4
    assert drain(queue) == [bytes([index]) * 100 for index in range(10)]
    segments = [name for name in os.listdir(directory) if name.endswith(".seg")]
    assert len(segments) == 1
    queue.close()
    reopened = PersistentQueue(directory, fsync_interval_s=None, segment_bytes=300)
    assert drain(reopened) == []
    reopened.append(KIND_TRACES, b"after")
    assert drain(reopened) == [b"after"]
    reopened.close()


def test_torn_tail_is_cut_and_appends_continue(directory):
    queue = PersistentQueue(directory, fsync_interval_s=0)
    queue.append(KIND_TRACES, b"complete")
    queue.close()
    segment = os.path.join(directory, sorted(name for name in os.listdir(directory) if name.endswith(".seg"))[-1])
    size = os.path.getsize(segment)
    with open(segment, "ab") as fh:
        fh.write(b"\x40\x00\x00\x00\x12\x34")  # a header promising 64 bytes, then nothing
    reopened = PersistentQueue(directory, fsync_interval_s=0)
    assert reopened.discarded_bytes == 6 and os.path.getsize(segment) == size
    reopened.append(KIND_TRACES, b"next")
    assert drain(reopened) == [b"complete", b"next"]
    reopened.close()


def test_corrupt_record_is_detected_by_its_crc(directory):
    queue = PersistentQueue(directory, fsync_interval_s=0)
    queue.append(KIND_TRACES, b"good")
    queue.append(KIND_TRACES, b"will be flipped")
    queue.close()
    segment = os.path.join(directory, next(name for name in os.listdir(directory) if name.endswith(".seg")))
    with open(segment, "r+b") as fh:
        fh.seek(-3, os.SEEK_END)
        fh.write(b"XXX")
    reopened = PersistentQueue(directory, fsync_interval_s=0)
    assert drain(reopened) == [b"good"]
    reopened.close()


def test_unreadable_commit_file_resends_everything(directory):
    queue = PersistentQueue(directory, fsync_interval_s=0)
    queue.append(KIND_TRACES, b"a")
    queue.close()
    with open(os.path.join(directory, COMMITTED), "w") as fh:
        fh.write("garbage")
    reopened = PersistentQueue(directory, fsync_interval_s=0)
    assert drain(reopened) == [b"a"]
    reopened.close()


def test_closed_queue_refuses_appends_and_wakes_consumers(directory):
    queue = PersistentQueue(directory, fsync_interval_s=0.01)
    waiter = []
    thread = threading.Thread(target=lambda: waiter.append(queue.get()))
    thread.start()
    queue.close()
    thread.join(5)
    assert waiter == [None]
    with pytest.raises(QueueClosed):
        queue.append(KIND_TRACES, b"late")


def test_concurrent_producers_with_group_commit(directory):
    queue = PersistentQueue(directory, fsync_interval_s=0)

    def produce(worker: int) -> None:
        for index in range(50):
            queue.append(KIND_TRACES, b"%d-%d" % (worker, index))

    threads = [threading.Thread(target=produce, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    payloads = drain(queue)
    assert sorted(payloads) == sorted(b"%d-%d" % (w, i) for w in range(4) for i in range(50))
    for worker in range(4):  # each producer's records keep their order
        mine = [p for p in payloads if p.startswith(b"%d-" % worker)]
        assert mine == [b"%d-%d" % (worker, i) for i in range(50)]
    queue.close()


WRITER = textwrap.dedent("""
    import sys
    from tokentrace.gateway.queue import KIND_TRACES, PersistentQueue

    policy = {"always": 0, "never": None}.get(sys.argv[2], 0.05)
    queue = PersistentQueue(sys.argv[1], fsync_interval_s=policy, segment_bytes=20000)
    index = 0
    while True:
        queue.append(KIND_TRACES, b"batch-%08d-" % index + b"x" * (index % 700), count=index)
        sys.stdout.write(f"ACK {index}\\n")  # the receiver would acknowledge now
        sys.stdout.flush()
        index += 1
""")


@pytest.mark.parametrize("policy", ["always", "interval", "never"])
def test_every_acknowledged_batch_survives_kill_9(directory, policy):
    process = subprocess.Popen([sys.executable, "-c", WRITER, directory, policy], stdout=subprocess.PIPE, text=True)
    acked = -1
    try:
        assert process.stdout is not None
        for line in process.stdout:
            acked = int(line.split()[1])
            if acked >= 300:
                break
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    for line in process.stdout:  # acknowledgements already written before the kill count too
        acked = int(line.split()[1])
    assert acked >= 300
    queue = PersistentQueue(directory, fsync_interval_s=0, segment_bytes=20000)
    payloads = drain(queue)
    indexes = [int(payload[6:14]) for payload in payloads]
    assert indexes[: acked + 1] == list(range(acked + 1))  # every acknowledged batch, in order, intact
    for payload, index in zip(payloads, indexes, strict=True):
        assert payload == b"batch-%08d-" % index + b"x" * (index % 700)
    queue.close()


def test_consumer_killed_mid_flight_resends_only_the_in_flight_batches(directory):
    consumer = textwrap.dedent("""
        import sys, time
        from tokentrace.gateway.queue import PersistentQueue
        queue = PersistentQueue(sys.argv[1], fsync_interval_s=0)
        held = []
        while True:
            record = queue.get(timeout_s=5)
            if int(record.payload) < 40:
                queue.ack(record)
            else:
                held.append(record)  # "being sent" when the kill comes
                if len(held) == 3:
                    print("READY", flush=True)
                    time.sleep(60)
    """)
    queue = PersistentQueue(directory, fsync_interval_s=0)
    for index in range(50):
        queue.append(KIND_TRACES, b"%d" % index)
    queue.close()
    process = subprocess.Popen([sys.executable, "-c", consumer, directory], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "READY"
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    reopened = PersistentQueue(directory, fsync_interval_s=0)
    assert reopened.redelivered_records == 3  # the three in flight: possible duplicates, counted
    assert reopened.recovered_records == 10
    assert [int(payload) for payload in drain(reopened)] == list(range(40, 50))
    reopened.close()
