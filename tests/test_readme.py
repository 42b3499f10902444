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


def test_main_job_runs_the_workload_into_the_store_and_reports(tmp_path: Path) -> None:
    store = tmp_path / "demo.duckdb"
    result = subprocess.run(
        [sys.executable, "-m", "tokentrace.cli", "demo", "--rounds", "1", "--fault-rate", "0", "--store", str(store)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for heading in (
        "Top by cost: template",
        "Top by cost: tenant",
        "Latency",
        "Failures",
        "Token efficiency",
        "Cost over time",
        "What if",
    ):
        assert heading in out
    app_failed = int(re.search(r"the app saw (\d+) failed calls", out).group(1))
    import duckdb

    with duckdb.connect(str(store), read_only=True) as db:
        calls, errors, cost, providers, tenants, templates = db.execute(
            "SELECT count(*), count(error_type), sum(cost_usd), list(DISTINCT provider ORDER BY provider), "
            "list(DISTINCT tenant ORDER BY tenant), count(DISTINCT template) FROM spans WHERE operation IS NOT NULL"
        ).fetchone()
        errors_by_type = dict(
            db.execute("SELECT error_type, count(*) FROM spans WHERE error_type IS NOT NULL GROUP BY ALL").fetchall()
        )
        slowest, cached, estimated, streamed = db.execute(
            "SELECT max(duration_s), sum(cache_read_tokens), count(*) FILTER (usage_source = 'estimated'), "
            "count(time_to_first_chunk_s) FROM spans"
        ).fetchone()
    # one round: 15 OpenAI calls, 5 Anthropic calls, 5 async OpenAI calls; 3 of them fail on purpose
    assert calls == 25 and errors == 3 == app_failed
    assert errors_by_type == {
        "openai.RateLimitError": 1,
        "openai.InternalServerError": 1,
        "anthropic.RateLimitError": 1,
    }
    assert providers == ["anthropic", "openai"] and tenants == ["acme", "globex"]  # round 1 of 3 tenants
    assert templates >= 4 and cost > 0
    assert slowest >= 0.6  # the deliberately slow call
    assert cached > 0 and estimated >= 1 and streamed >= 3
    assert f"${cost:.4f}" in out or f"${cost:.6f}" in out  # the report's total is the store's
