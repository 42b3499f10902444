"""The README's two commands stay true: CI runs the same test command, and the main job runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first_screen = text[: text.index("## ")]
    return re.findall(r"```bash\n(.+?)\n```", first_screen)


def test_first_screen_has_the_two_commands() -> None:
    commands = _readme_commands()
    assert commands == ['pip install -e ".[demo]" && tokentrace demo', 'pip install -e ".[test]" && python -m pytest']


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert _readme_commands()[1] in ci.splitlines()


def test_main_job_runs_and_reports_calls_tokens_and_cost() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tokentrace.cli", "demo", "--rounds", "1", "--fault-rate", "0"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "chat         gpt-4o-mini-2024-07-18" in out
    assert "error openai.RateLimitError" in out
    assert "embeddings   text-embedding-3-small" in out
    assert re.search(r"~\d+", out), "the stream without usage should show an estimated count"
    totals = re.search(r"(\d+) calls, (\d+) failed \(the app saw (\d+)\).*total cost \$(\d+\.\d+)", out)
    assert totals is not None, out
    calls, failed, app_failed, cost = totals.groups()
    assert int(calls) == 16 and int(failed) == 1 == int(app_failed)
    assert float(cost) > 0
    assert re.search(r"quality flags: .+; prompt templates: [1-9]", out), "the processor pipeline ran"
