"""The HTML report in a real headless Chromium: every chart draws its bars, provider health's too.

Each chart has its own bar colour (the throttling chart one per series), so counting that colour's
pixels in a screenshot of the whole page tells which charts rendered. The screenshot is kept in
``artifacts/report.png`` (``TOKENTRACE_ARTIFACTS`` overrides the folder) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from tokentrace.report.html import CHART_COLOURS, SERIES_COLOURS, render
from tokentrace.report.queries import build_report
from tokentrace.store.writer import connect

from .test_report import known_store  # noqa: F401  (the fixture)

ARTIFACTS = Path(os.environ.get("TOKENTRACE_ARTIFACTS", Path(__file__).resolve().parents[2] / "artifacts"))


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("no Chromium on PATH: install Debian's chromium package (.ci/run does)")


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def test_html_report_renders_every_chart_in_chromium(known_store: Path, tmp_path: Path) -> None:  # noqa: F811
    with connect(known_store, read_only=True) as connection:
        page = tmp_path / "report.html"
        page.write_text(render(build_report(connection)), encoding="utf-8")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    completed = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--window-size=1200,5000",  # the whole page: provider health comes after the tables
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0 and shot.exists(), completed.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    # each chart's colour, and the throttling chart's second series (its first is the chart's colour)
    colours = {**CHART_COLOURS, "error-rate": SERIES_COLOURS["error-rate"]}
    assert SERIES_COLOURS["throttling-rate"] == CHART_COLOURS["throttling-over-time"]
    counts = dict.fromkeys(colours, 0)
    wanted = {_rgb(colour): name for name, colour in colours.items()}
    assert len(wanted) == len(colours)  # no two charts or series share a colour
    for count, pixel in image.getcolors(maxcolors=1 << 20) or []:
        if pixel in wanted:
            counts[wanted[pixel]] += count
    # every chart drew bars covering a visible area (a bar is at least a few hundred pixels), among them
    # provider health's: throttling and error rates over time, time lost by model, lowest headroom
    assert {"throttling-over-time", "error-rate", "retry-time-by-model", "headroom-lowest"} <= counts.keys()
    assert all(count > 500 for count in counts.values()), counts
