"""``tokentrace report``: arguments, reading the store, and choosing the output."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from tokentrace.report.queries import Filters, build_report
from tokentrace.store.schema import default_path
from tokentrace.store.writer import connect

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(value: str, now: dt.datetime | None = None) -> dt.datetime:
    """``24h``/``30m``/``7d`` (ago) or an ISO 8601 time (UTC unless it says otherwise)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    match = _DURATION.match(value.strip())
    if match:
        return now - dt.timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time: {value!r} (use 24h, 7d or an ISO 8601 time)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _utc_naive(value: dt.datetime | None) -> dt.datetime | None:
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None) if value is not None else None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tokentrace report", description=__doc__)
    p.add_argument(
        "--store", type=Path, default=None, help="store file (default: TOKENTRACE_STORE_PATH, else ./tokentrace.duckdb)"
    )
    p.add_argument("--since", type=parse_time, help="start of the window: 24h, 7d, or ISO time")
    p.add_argument("--until", type=parse_time, help="end of the window")
    p.add_argument("--service", action="append", default=[], help="only this service.name (repeatable)")
    p.add_argument("--model", action="append", default=[], help="only this model (repeatable)")
    p.add_argument("--tenant", action="append", default=[], help="only this tenant (repeatable)")
    p.add_argument("--template", action="append", default=[], help="only this prompt fingerprint (repeatable)")
    p.add_argument("--top", type=int, default=10, help="rows per ranking (default 10)")
    p.add_argument(
        "--candidate",
        action="append",
        default=[],
        help="what-if candidate provider:model (repeatable; default TOKENTRACE_REPORT_CANDIDATES)",
    )
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the report as JSON")
    output.add_argument("--html", type=Path, metavar="FILE", help="write a self-contained HTML page")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.store = args.store or default_path()
    if not args.store.exists():
        sys.stderr.write(
            f"tokentrace report: no store at {args.store} (run an instrumented app first, or pass --store)\n"
        )
        return 2
    filters = Filters(
        since=_utc_naive(args.since),
        until=_utc_naive(args.until),
        services=args.service,
        models=args.model,
        tenants=args.tenant,
        templates=args.template,
    )
    from rich.console import Console

    console = Console(stderr=True)
    with connect(args.store, read_only=True) as connection, console.status("reading the store") as status:
        report = build_report(
            connection,
            filters,
            top=args.top,
            candidates=args.candidate or None,
            progress=lambda step: status.update(f"computing {step}"),
        )
    if args.json:
        json.dump(report, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    elif args.html:
        from tokentrace.report.html import render

        args.html.write_text(render(report), encoding="utf-8")
        sys.stderr.write(f"report written to {args.html}\n")
    else:
        from tokentrace.report.terminal import render

        render(report, Console())
    return 0
