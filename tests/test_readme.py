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
        "Provider health: attempts and time lost to retries",
        "Provider health over time",
        "Time lost to retries: worst calls",
        "Headroom at peak",
        "What if",
    ):
        assert heading in out
    app_failed = int(re.search(r"the app saw (\d+) failed calls", out).group(1))
    requests = int(re.search(r"the SDKs sent (\d+) HTTP requests", out).group(1))
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
        with_attempts, attempts, failed_attempts, throttled, request_ids, distinct_ids = db.execute(
            "SELECT count(attempts), sum(attempts), sum(failed_attempts), sum(throttled_attempts), count(request_id), "
            "count(DISTINCT request_id) FROM spans WHERE operation IS NOT NULL"
        ).fetchone()
        retried = db.execute(
            "SELECT attempts, failed_attempts, throttled_attempts, retry_wait_s, failed_attempts_s, error_type, "
            "request_id, min_headroom_bucket FROM spans WHERE attempts > 1 ORDER BY attempts DESC"
        ).fetchall()
        throttled_once = db.execute(
            "SELECT provider, attempts, failed_attempts, throttled_attempts FROM spans "
            "WHERE error_type LIKE '%RateLimitError' ORDER BY provider"
        ).fetchall()
    # one round: 17 OpenAI calls, 5 Anthropic calls, 5 async OpenAI calls; 3 of them fail on purpose, and 2
    # more succeed after the SDK's retries (two 429s, then a 503): 27 calls, 30 HTTP requests
    assert calls == 27 and errors == 3 == app_failed
    assert requests == 30
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
    # provider health: every call's attempts are stored, and they are the requests the SDKs sent
    assert with_attempts == calls and attempts == requests
    assert request_ids == calls == distinct_ids  # each call names the provider's id of its last response
    (three, two) = retried  # the two calls the SDK retried, both answered in the end
    assert three[:3] == (3, 2, 2) and two[:3] == (2, 1, 0)  # (attempts, failed, throttled)
    assert three[5] is None and two[5] is None  # no error: the app got its answers
    for call in retried:  # the SDK honoured the simulator's retry-after-ms (10 ms) before each retry
        assert call[3] >= 0.010 * (call[0] - 1) and call[4] > 0 and call[6].startswith("req_") and call[7]
    # the calls rate limited without retries: one attempt each, failed and throttled
    assert throttled_once == [("anthropic", 1, 1, 1), ("openai", 1, 1, 1)]
    # failed: the two 429s and the 503 retried, and the three calls failing on purpose; throttled: 429s
    assert (failed_attempts, throttled) == (2 + 1 + 3, 2 + 2)
    assert f"Provider health: {requests} HTTP attempts for {calls} calls" in out
