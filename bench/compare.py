"""tokentrace's added time per OpenAI call next to the other OpenAI instrumentations, in one run.

Each instrumentation gets its own virtualenv (created once, cached under
``~/.cache/tokentrace-bench/venvs/<name>``) with the same ``openai`` and ``opentelemetry-sdk``;
``bench/workload.py`` then runs in each, one after the other, and this prints one table.

By default each workload process measures its instrumentation *paired*: loops of the uninstrumented
SDK and of the instrumented SDK alternate in the same process (see ``workload.Switch``), so the
baseline is that venv's own ``none``, measured under the same machine load. ``--unpaired`` instead
runs ``--setup none`` and the setup as separate processes in each venv and subtracts.

    /tmp/venv/bin/python bench/compare.py            # ~3-4 minutes once the venvs exist
    /tmp/venv/bin/python bench/compare.py --quick    # smoke run, well under a minute
    /tmp/venv/bin/python bench/compare.py --setup tokentrace --setup openlit --no-content

Figures are printed, never asserted: timing on a shared machine is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORKLOAD = Path(__file__).resolve().parent / "workload.py"
CACHE = Path(os.environ.get("TOKENTRACE_BENCH_CACHE", Path.home() / ".cache" / "tokentrace-bench"))
VENVS = CACHE / "venvs"

# One openai for every venv: the peers do not all support openai 3.x (which moved to httpx2) yet.
OPENAI = "openai==2.54.0"
BASE = [OPENAI, "opentelemetry-sdk"]
STREAM_CHUNKS = 50  # workload.STREAM_CONTENT_CHUNKS

# setup -> extra requirements of its venv. Pins below are resolver workarounds, not preferences:
# - opentelemetry-instrumentation-openai-v2 2.4b0 imports ``opentelemetry.util.genai.instruments``,
#   which opentelemetry-util-genai 1.2b0 renamed to ``_instruments``; its requirement is unbounded.
# - openlit 1.45 depends on 14 opentelemetry-instrumentation-* packages; the registry has 0.66b2 of
#   some and only 0.66b1 of others, and pip's backtracking gives up (or falls back to openlit 1.26),
#   so the contrib packages are pinned to the newest version all of them have.
_OPENLIT_CONTRIB = [
    "instrumentation",
    "instrumentation-aiohttp-client",
    "instrumentation-asgi",
    "instrumentation-django",
    "instrumentation-falcon",
    "instrumentation-fastapi",
    "instrumentation-flask",
    "instrumentation-httpx",
    "instrumentation-pyramid",
    "instrumentation-requests",
    "instrumentation-starlette",
    "instrumentation-tornado",
    "instrumentation-urllib",
    "instrumentation-urllib3",
    "instrumentation-wsgi",
    "semantic-conventions",
    "util-http",
]
REQUIREMENTS: dict[str, list[str]] = {
    # the tree itself, non-editable; bpe-openai ships tiktoken's encodings for its offline prefetch
    "tokentrace": [str(ROOT), "bpe-openai"],
    "otel-openai-v2": ["opentelemetry-instrumentation-openai-v2>=2.0b0", "opentelemetry-util-genai==1.1b0"],
    "openllmetry": ["opentelemetry-instrumentation-openai"],
    "openinference": ["openinference-instrumentation-openai"],
    "openlit": ["openlit==1.45.0", *(f"opentelemetry-{name}==0.66b1" for name in _OPENLIT_CONTRIB)],
}
SETUPS = list(REQUIREMENTS)
CASES = ("chat", "stream", "async_chat")

# Environment variables that would change what an instrumentation does; removed for every run.
_ENV_PREFIXES = ("OTEL_", "TOKENTRACE_", "TRACELOOP_", "OPENINFERENCE_", "OPENLIT_", "OPENAI_")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- virtualenvs ----------------------------------------------------------------------------------


def _python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _stamp(setup: str) -> str:
    """What the venv was built from; a change rebuilds it (tokentrace: its declared dependencies)."""
    text = json.dumps([BASE, REQUIREMENTS[setup]])
    if setup == "tokentrace":
        text += (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _pip(venv: Path, *args: str) -> None:
    command = [str(_python(venv)), "-m", "pip", "--disable-pip-version-check", "-q", *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def ensure_venv(setup: str) -> Path:
    """The setup's venv, created on first use; tokentrace is reinstalled from the tree every run."""
    venv = VENVS / setup
    stamp_file = venv / ".tokentrace-bench-stamp"
    stamp = _stamp(setup)
    if not (stamp_file.exists() and stamp_file.read_text() == stamp and _python(venv).exists()):
        log(f"[{setup}] creating {venv} (once; pip install {' '.join(BASE + REQUIREMENTS[setup])})")
        started = time.monotonic()
        if venv.exists():
            import shutil

            shutil.rmtree(venv)
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        _pip(venv, "install", *BASE, *REQUIREMENTS[setup])
        stamp_file.write_text(stamp)
        log(f"[{setup}] ready in {time.monotonic() - started:.0f} s")
    elif setup == "tokentrace":
        # The venv is cached, the code under test is not: install the tree as it is now.
        _pip(venv, "install", "--force-reinstall", "--no-deps", str(ROOT))
    return venv


# -- running --------------------------------------------------------------------------------------


def _clean_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(_ENV_PREFIXES)}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_workload(venv: Path, setup: str, extra: list[str], timeout: float) -> dict[str, Any]:
    command = [str(_python(venv)), str(WORKLOAD), "--setup", setup, "--json", *extra]
    # Run from outside the tree, so the venv's installed tokentrace is imported, not ./instrumentation.
    result = subprocess.run(command, capture_output=True, text=True, env=_clean_env(), cwd=str(CACHE), timeout=timeout)
    if result.returncode != 0:
        return {
            "setup": setup,
            "skipped": f"workload failed (exit {result.returncode}): "
            f"{result.stderr.strip().splitlines()[-1] if result.stderr.strip() else '?'}",
            "results": {},
        }
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure_setup(setup: str, extra: list[str], paired: bool, timeout: float) -> dict[str, Any]:
    """One setup's document, with ``baseline`` and ``added`` filled in either mode."""
    try:
        venv = ensure_venv(setup)
    except Exception as exc:  # a peer that cannot be installed here is reported, not fatal
        return {"setup": setup, "skipped": f"cannot build its venv: {exc}".splitlines()[0], "results": {}}
    started = time.monotonic()
    if paired:
        document = run_workload(venv, setup, extra, timeout)
    else:
        base = run_workload(venv, "none", [*extra, "--unpaired"], timeout)
        document = run_workload(venv, setup, [*extra, "--unpaired"], timeout)
        if "skipped" not in document and "skipped" not in base:
            for suffix in ("", "_cpu"):
                document["baseline" + suffix] = base["results" + suffix]
                document["added" + suffix] = {
                    case: round(value - base["results" + suffix][case], 3)
                    for case, value in document["results" + suffix].items()
                }
    document["seconds"] = round(time.monotonic() - started, 1)
    status = document.get("skipped") or f"{document['seconds']} s"
    log(f"[{setup}] {status}")
    return document


# -- report ---------------------------------------------------------------------------------------


def _row(cells: list[str], widths: list[int]) -> str:
    return (
        "| "
        + " | ".join(
            cell.rjust(width) if index > 1 else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )
        + " |"
    )


def table(documents: list[dict[str, Any]]) -> str:
    header = [
        "setup",
        "case",
        "µs/call",
        "baseline µs",
        "added µs",
        "ratio",
        "added µs (CPU)",
        "added µs/chunk",
        "µs/chunk net of call",
        "spans/call",
    ]
    rows: list[list[str]] = []
    for document in documents:
        if "skipped" in document:
            rows.append([document["setup"], "skipped", "", "", "", "", "", "", "", ""])
            continue
        added = document.get("added", {})
        for case in CASES:
            if case not in document["results"]:
                continue
            value, base = document["results"][case], document.get("baseline", {}).get(case)
            extra = added.get(case)
            per_chunk = net = ""
            if case == "stream" and extra is not None:
                per_chunk = f"{extra / STREAM_CHUNKS:.2f}"
                if "chat" in added:
                    net = f"{(extra - added['chat']) / STREAM_CHUNKS:.2f}"
            added_cpu = document.get("added_cpu", {}).get(case)
            rows.append(
                [
                    document["setup"],
                    case,
                    f"{value:.1f}",
                    "" if base is None else f"{base:.1f}",
                    "" if extra is None else f"{extra:+.1f}",
                    "" if not base else f"{value / base:.3f}",
                    "" if added_cpu is None else f"{added_cpu:+.1f}",
                    per_chunk,
                    net,
                    f"{document['spans_per_call'].get(case, 0):g}",
                ]
            )
    widths = [
        max(len(header[i]), *(len(row[i]) for row in rows)) if rows else len(header[i]) for i in range(len(header))
    ]
    lines = [_row(header, widths), "|" + "|".join("-" * (width + 2) for width in widths) + "|"]
    lines += [_row(row, widths) for row in rows]
    return "\n".join(lines)


def verdict(documents: list[dict[str, Any]]) -> list[str]:
    """tokentrace against the goals (README): fastest of all, ≤50 µs/call, ≤2 µs/chunk."""
    by_setup = {d["setup"]: d for d in documents if "skipped" not in d and d.get("added")}
    ours = by_setup.get("tokentrace")
    if ours is None:
        return ["tokentrace was not measured"]
    lines = []
    for case in CASES:
        if case not in ours["added"]:
            continue
        slower = [
            name
            for name, d in by_setup.items()
            if name != "tokentrace" and case in d["added"] and d["added"][case] <= ours["added"][case]
        ]
        lines.append(
            f"{case}: tokentrace adds {ours['added'][case]:+.1f} µs "
            f"(CPU {ours['added_cpu'][case]:+.1f}); "
            + ("less than every peer measured" if not slower else f"NOT less than: {', '.join(slower)}")
        )
    if "chat" in ours["added"]:
        value = ours["added"]["chat"]
        lines.append(f"goal ≤50 µs per non-streamed call: {value:+.1f} µs -> {'met' if value <= 50 else 'MISSED'}")
    if "stream" in ours["added"]:
        value = ours["added"]["stream"] / STREAM_CHUNKS
        line = f"goal ≤2 µs per streamed chunk: {value:.2f} µs -> {'met' if value <= 2 else 'MISSED'}"
        if "chat" in ours["added"]:
            net = (ours["added"]["stream"] - ours["added"]["chat"]) / STREAM_CHUNKS
            line += f" (net of the per-call part: {net:.2f} µs)"
        lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setup", action="append", choices=SETUPS, help="repeatable; default: all")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    parser.add_argument(
        "--no-content",
        action="store_true",
        help="content capture off in every instrumentation (default: each one's own default)",
    )
    parser.add_argument(
        "--unpaired",
        action="store_true",
        help="baseline from a separate `--setup none` process per venv instead of in-process",
    )
    parser.add_argument("--repeat", type=int, help="passed to workload.py")
    parser.add_argument("--number", type=int, help="passed to workload.py")
    parser.add_argument("--json", type=Path, help="also write every workload document to this file")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per workload process")
    args = parser.parse_args(argv)

    extra: list[str] = []
    if args.quick:
        extra.append("--quick")
    if args.no_content:
        extra.append("--no-content")
    if args.repeat:
        extra += ["--repeat", str(args.repeat)]
    if args.number:
        extra += ["--number", str(args.number)]
    setups = args.setup or SETUPS
    CACHE.mkdir(parents=True, exist_ok=True)

    for setup in setups:  # build every venv first, so the timed runs follow each other closely
        try:
            ensure_venv(setup)
        except Exception as exc:
            log(f"[{setup}] venv failed: {exc}")
    started = time.monotonic()
    documents = [measure_setup(setup, extra, not args.unpaired, args.timeout) for setup in setups]
    elapsed = time.monotonic() - started

    first = next((d for d in documents if "skipped" not in d), {})
    print(
        f"openai {first.get('openai_version', '?')} ({first.get('http_library', '?')}), "
        f"Python {first.get('python', '?')}, content capture: "
        f"{'off everywhere' if args.no_content else 'each instrumentation default'}, "
        f"baseline: {'separate process' if args.unpaired else 'same process, alternating loops'}, "
        f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print()
    print(table(documents))
    print()
    versions = ", ".join(
        f"{d['setup']} {d.get('notes', {}).get('version', '?')}" for d in documents if "skipped" not in d
    )
    print(f"versions: {versions}")
    for document in documents:
        if "skipped" in document:
            print(f"skipped {document['setup']}: {document['skipped']}")
        for problem in document.get("problems", []):
            print(f"PROBLEM {document['setup']}: {problem}")
        if document.get("network_attempts"):
            print(f"NOTE {document['setup']}: refused network attempts {document['network_attempts']}")
    print()
    for line in verdict(documents):
        print(line)
    print(f"\nmeasured in {elapsed:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(documents, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
