"""Added time of the Anthropic instrumentation, per call and per streamed event.

Run: ``/tmp/venv/bin/python bench/providers/anthropic.py``. The real ``anthropic.Anthropic`` client
(its own HTTP stack) calls the local simulator (``tokentrace.demo.simulator``); instrumented and
uninstrumented loops alternate (see ``bench/providers/_measure.py``). The SDK's own telemetry is
measured off and on (on: our span is handed to the SDK, see ``instrumentation/anthropic/_native.py``).
The per-event figure is the slope between a short and a long stream, so the per-call part cancels.
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "bench" / "providers"
# This script shares its name with the SDK: its own folder (first on sys.path) must not shadow the SDK,
# so it goes last, for ``_measure`` only.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != HERE), str(HERE)]

import anthropic  # noqa: E402
from _measure import Toggle, added_time, per_chunk, print_figures  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402

from tokentrace.demo.simulator import Simulator  # noqa: E402
from tokentrace.instrumentation.anthropic import AnthropicInstrumentor  # noqa: E402

MODEL = "claude-haiku-4-5"
MESSAGES = [{"role": "user", "content": "Say hello to the benchmark please"}]
WIDE = 40  # properties of the tool whose streamed input makes the long stream
TOOL = {
    "name": "record",
    "input_schema": {
        "type": "object",
        "properties": {f"p{i}": {"type": "string"} for i in range(WIDE)},
        "required": [f"p{i}" for i in range(WIDE)],
    },
}


def main() -> None:
    with Simulator(seed=7) as sim:
        toggle = Toggle(AnthropicInstrumentor)
        sdk_provider = TracerProvider()  # the SDK's own spans, when on, go nowhere we count
        try:
            figures = []
            chunk_figures = {}
            for sdk in ("off", "on"):
                otel = {"tracer_provider": sdk_provider} if sdk == "on" else False
                client = anthropic.Anthropic(
                    base_url=sim.anthropic_base_url, api_key="k", max_retries=0, open_telemetry=otel
                )

                def create(client: anthropic.Anthropic = client) -> None:
                    client.messages.create(model=MODEL, max_tokens=200, messages=MESSAGES)

                def short(client: anthropic.Anthropic = client) -> None:
                    for _ in client.messages.create(model=MODEL, max_tokens=2, messages=MESSAGES, stream=True):
                        pass

                def long(client: anthropic.Anthropic = client) -> None:
                    events = client.messages.create(
                        model=MODEL, max_tokens=200, messages=MESSAGES, tools=[TOOL], stream=True
                    )
                    for _ in events:
                        pass

                toggle.set(False)
                short_events = sum(
                    1 for _ in client.messages.create(model=MODEL, max_tokens=2, messages=MESSAGES, stream=True)
                )
                long_events = sum(
                    1
                    for _ in client.messages.create(
                        model=MODEL, max_tokens=200, messages=MESSAGES, tools=[TOOL], stream=True
                    )
                )
                toggle.set(True)
                pair = [
                    added_time(f"create (sdk otel {sdk})", create, toggle),
                    added_time(f"stream x{short_events} (sdk otel {sdk})", short, toggle),
                    added_time(f"stream x{long_events} (sdk otel {sdk})", long, toggle, number=20),
                ]
                figures.extend(pair)
                chunk_figures[f"stream, per event (sdk otel {sdk})"] = per_chunk(
                    pair[1], pair[2], short_events, long_events
                )
            print_figures(f"anthropic {metadata.version('anthropic')}", figures, chunk_figures)
        finally:
            toggle.close()


if __name__ == "__main__":
    main()
