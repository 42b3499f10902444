"""Metric recording off the application's thread.

An OpenTelemetry SDK ``Histogram.record`` costs several microseconds (attribute validation and
hashing under a lock), and a streamed call records one ``time_per_output_chunk`` point per chunk.
Done inline, that work would sit between the application and its last chunk. Instead the call's
thread hands the finished call to a queue (a C-level ``SimpleQueue.put``) and one daemon thread
records it, usually while the application waits on the network.

The queue is bounded in practice: past ``MAX_BACKLOG`` waiting items the caller records inline, so
memory cannot grow without limit. ``flush()`` waits for everything queued so far; it runs at exit and
in forked children a fresh worker is started.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any

from tokentrace.core.safety import report

MAX_BACKLOG = 10_000


class BackgroundRecorder:
    """Runs submitted callables in order on one daemon thread."""

    def __init__(self) -> None:
        self._queue: SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]] | threading.Event] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._pid = os.getpid()

    def submit(self, function: Callable[..., Any], *args: Any) -> None:
        if self._thread is None or self._pid != os.getpid():
            self._start()
        if self._queue.qsize() >= MAX_BACKLOG:
            self._run(function, args)  # backpressure: the worker is behind, pay inline
            return
        self._queue.put((function, args))

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait until everything submitted before this call has been recorded."""
        if self._thread is None or self._pid != os.getpid():
            return True
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            if self._pid != os.getpid():  # forked: the parent's thread and backlog are not ours
                self._queue = SimpleQueue()
                self._pid = os.getpid()
            self._thread = threading.Thread(target=self._work, name="tokentrace-metrics", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        queue = self._queue
        while True:
            item = queue.get()
            if isinstance(item, threading.Event):
                item.set()
                continue
            self._run(*item)

    @staticmethod
    def _run(function: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            function(*args)
        except Exception:
            report("recording metrics")


background = BackgroundRecorder()
atexit.register(background.flush, 2.0)
