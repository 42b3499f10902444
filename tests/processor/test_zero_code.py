"""Zero code, end to end: ``opentelemetry-instrument`` with ``OTEL_TRACES_EXPORTER=tokentrace`` puts the
whole default pipeline in front of the configured exporter, for an app that imports nothing of ours."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

APP = """
import openai, os
client = openai.OpenAI(base_url=os.environ["SIM_URL"], api_key="sk-test", max_retries=0)
client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "Email the summary to jane.doe@example.com please"}],
)
"""


def _spans(console_output: str) -> list[dict[str, Any]]:
    decoder = json.JSONDecoder()
    spans, index = [], 0
    while True:
        start = console_output.find("{", index)
        if start < 0:
            return spans
        value, index = decoder.raw_decode(console_output, start)
        spans.append(value)


def test_launcher_runs_instrumentation_and_pipeline(simulator: Any, tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP)
    env = {
        **os.environ,
        "SIM_URL": simulator.base_url,
        "OTEL_SERVICE_NAME": "pipeline-e2e",
        "OTEL_TRACES_EXPORTER": "tokentrace",
        "TOKENTRACE_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "openai,openai_v2,httpx,requests,urllib3",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY",
        "TOKENTRACE_SAMPLE__DECISION_WAIT_S": "0.1",
        "TOKENTRACE_REDACT__MODE": "mask",
    }
    launcher = Path(sys.executable).parent / "opentelemetry-instrument"
    result = subprocess.run(
        [str(launcher), sys.executable, str(app)], env=env, capture_output=True, text=True, timeout=90, check=False
    )
    assert result.returncode == 0, result.stderr
    spans = [span for span in _spans(result.stdout) if span.get("name") == "chat gpt-4o-mini"]
    assert len(spans) == 1, result.stdout[-2000:]
    attributes = spans[0]["attributes"]
    assert attributes["gen_ai.usage.cost.amount"] > 0
    assert attributes["tokentrace.prompt.fingerprint"]
    assert "jane.doe@example.com" not in json.dumps(attributes)
    assert "REDACTED" in attributes["gen_ai.input.messages"]
    assert attributes["tokentrace.pii.detected"] is True
    assert attributes["tokentrace.trace.cost.amount"] == attributes["gen_ai.usage.cost.amount"]
    assert attributes["tokentrace.sampling.reason"]
