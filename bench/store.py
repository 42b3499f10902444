"""Store ingest rate and report time, at scale.

    /tmp/venv/bin/python bench/store.py                # 1M spans (a few minutes)
    /tmp/venv/bin/python bench/store.py --spans 100000

Ingest is timed from SpanData batches (what the pipeline hands the store) to committed rows, in
batches of ``--batch``; next to it, in the same run, the cost of the row conversion alone (the
Python part) as a baseline ratio. Spans carry what an instrumented httpx-based SDK records: attempt
totals, request id, key alias and two rate-limit buckets on every call, and ``tokentrace.http.attempt``
events on the ~5 % retried and the failed calls (``--no-health`` leaves all that out, as spans of
older versions). Then ``build_report`` (every section) over the whole file, and a
filtered report (one tenant, last hour). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import tempfile
import time
from pathlib import Path

from opentelemetry.sdk.trace import Event

from tokentrace.processor.model import SpanData
from tokentrace.report.queries import Filters, build_report
from tokentrace.store.rows import to_row
from tokentrace.store.writer import StoreWriter, connect

MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "claude-sonnet-4-5", "claude-haiku-4-5", "gemini-2.0-flash")
TENANTS = tuple(f"tenant-{n}" for n in range(50))
TEMPLATES = tuple(f"{n:016x}" for n in range(200))


class _Origin:
    """What the in-process exporter's ``ReadableSpan`` offers the row conversion: its events."""

    __slots__ = ("events",)

    def __init__(self, events: tuple[Event, ...]) -> None:
        self.events = events


def _attempt_event(number: int, status: int, duration: float, wait: float | None) -> Event:
    attributes: dict[str, object] = {
        "tokentrace.http.attempt.number": number,
        "tokentrace.http.attempt.duration": duration,
        "http.response.status_code": status,
        "tokentrace.request_id": f"req_{number}",
    }
    if status >= 400:
        attributes["error.type"] = str(status)
    if wait is not None:
        attributes["tokentrace.http.wait_before_next"] = wait
    return Event("tokentrace.http.attempt", attributes)


def add_health(rng: random.Random, attributes: dict[str, object]) -> tuple[Event, ...]:
    """Attempt totals, request id, key alias and headroom as the recorder sets them; the events of a
    retried (429 then 200) or failed call."""
    failed = "error.type" in attributes
    retried = not failed and rng.random() < 0.05
    events: tuple[Event, ...] = ()
    attributes["tokentrace.http.attempts"] = 2 if retried else 1
    attributes["tokentrace.http.retry_wait"] = 0.5 if retried else 0.0
    attributes["tokentrace.http.failed_attempts.duration"] = 0.1 if retried or failed else 0.0
    attributes["tokentrace.request_id"] = f"req_{rng.getrandbits(48):012x}"
    attributes["tokentrace.api_key.alias"] = "key-1a2b3c4d"
    for bucket, limit in (("requests", 10_000), ("tokens", 2_000_000)):
        attributes[f"tokentrace.ratelimit.{bucket}.limit"] = limit
        attributes[f"tokentrace.ratelimit.{bucket}.remaining"] = rng.randint(0, limit)
        attributes[f"tokentrace.ratelimit.{bucket}.reset"] = rng.random() * 60
    if retried:
        events = (_attempt_event(1, 429, 0.1, 0.5), _attempt_event(2, 200, 1.0, None))
    elif failed:
        events = (_attempt_event(1, 429, 0.1, None),)
    return events


def make_batch(rng: random.Random, size: int, now_ns: int, window_s: float, health: bool = True) -> list[SpanData]:
    batch = []
    for _ in range(size):
        model = rng.choice(MODELS)
        start = now_ns - int(rng.random() * window_s * 1e9)
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": model,
            "gen_ai.response.model": model,
            "gen_ai.usage.input_tokens": rng.randint(50, 4000),
            "gen_ai.usage.output_tokens": rng.randint(5, 800),
            "gen_ai.usage.cost.amount": rng.random() / 50,
            "tokentrace.usage.source": "reported",
            "tokentrace.tenant": rng.choice(TENANTS),
            "tokentrace.prompt.fingerprint": rng.choice(TEMPLATES),
            "server.address": "api.openai.com",
        }
        if rng.random() < 0.03:
            attributes["error.type"] = "openai.RateLimitError"
        if rng.random() < 0.3:
            attributes["gen_ai.response.time_to_first_chunk"] = rng.random()
        events = add_health(rng, attributes) if health else ()
        batch.append(
            SpanData(
                trace_id=rng.getrandbits(128),
                span_id=rng.getrandbits(64),
                parent_span_id=None,
                name=f"chat {model}",
                kind=3,
                start_ns=start,
                end_ns=start + rng.randint(10**7, 5 * 10**9),
                attributes=attributes,
                resource={"service.name": "bench"},
                origin=_Origin(events),
            )
        )
    return batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--no-health", dest="health", action="store_false", help="spans without attempt info")
    args = parser.parse_args()
    rng = random.Random(42)
    now_ns = time.time_ns()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.duckdb"
        writer = StoreWriter(
            path, background=False, retention_days=None, max_rows=None, max_buffered_rows=args.batch * 2
        )
        ingest = convert = 0.0
        written = 0
        while written < args.spans:
            batch = make_batch(rng, min(args.batch, args.spans - written), now_ns, 7 * 86400, args.health)
            started = time.perf_counter()
            for span in batch:
                to_row(span)
            convert += time.perf_counter() - started
            started = time.perf_counter()
            writer.write(batch)
            writer.flush()
            ingest += time.perf_counter() - started
            written += len(batch)
        size_mib = path.stat().st_size / 2**20
        print(
            f"ingest: {written:,} spans in {ingest:.1f} s = {written / ingest:,.0f} spans/s "
            f"(row conversion alone {written / convert:,.0f} spans/s; ingest/conversion time ratio "
            f"{ingest / convert:.2f}); file {size_mib:.0f} MiB = {size_mib * 2**20 / written:.0f} B/span"
        )
        with connect(path, read_only=True) as connection:
            started = time.perf_counter()
            report = build_report(connection)
            full = time.perf_counter() - started
            started = time.perf_counter()
            since = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(hours=1)
            build_report(connection, Filters(since=since, tenants=["tenant-7"]))
            filtered = time.perf_counter() - started
        print(
            f"report over {report['summary']['calls']:,} calls: {full:.2f} s; "
            f"filtered (one tenant, last hour): {filtered:.2f} s"
        )


if __name__ == "__main__":
    main()
