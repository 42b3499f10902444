"""Added time of the Ollama instrumentation, per call and per streamed part.

Run: ``/tmp/venv/bin/python bench/providers/ollama.py``. The real ``ollama.Client`` (its own httpx
stack) calls the local Ollama server from ``tests/providers/servers/ollama.py``; instrumented and
uninstrumented loops alternate (see ``bench/providers/_measure.py``). The per-chunk figure is the slope
between a 4-part and a 64-part stream, so the per-call part cancels out.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "bench" / "providers"
# This script shares its name with the SDK: its own folder (first on sys.path) must not shadow the SDK,
# so it goes last, for ``_measure`` only.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != HERE), str(HERE)]

import ollama  # noqa: E402
from _measure import Toggle, added_time, per_chunk, print_figures, print_in_process  # noqa: E402

from tests.providers.servers.ollama import OllamaServer  # noqa: E402
from tokentrace.instrumentation.ollama import OllamaInstrumentor  # noqa: E402

MODEL = "llama3.2"
SHORT, LONG = 4, 64


def main() -> None:
    with OllamaServer() as server:
        toggle = Toggle(OllamaInstrumentor)
        client = ollama.Client(host=server.base_url)
        messages = [{"role": "user", "content": "Say hello chunks=4"}]
        try:

            def chat() -> None:
                client.chat(MODEL, messages)

            def embed() -> None:
                client.embed("nomic-embed-text", "a b c")

            def stream(chunks: int):
                streamed = [{"role": "user", "content": f"Stream please chunks={chunks}"}]

                def run() -> None:
                    for _ in client.chat(MODEL, streamed, stream=True):
                        pass

                return run

            figures = [
                added_time("chat", chat, toggle),
                added_time("embed", embed, toggle),
                added_time(f"chat stream x{SHORT}", stream(SHORT), toggle),
                added_time(f"chat stream x{LONG}", stream(LONG), toggle, number=20),
            ]
            # N text parts plus the final done part.
            chunk = per_chunk(figures[2], figures[3], SHORT + 1, LONG + 1)
            print_figures(f"ollama {metadata.version('ollama')}", figures, {"stream, per part": chunk})
        finally:
            toggle.close()
        print_in_process_cost(client)


def print_in_process_cost(client: object, parts: int = 2000) -> None:
    """Our own cost without the network (see ``_measure.print_in_process``), on responses fetched once."""
    from opentelemetry.sdk.trace import TracerProvider

    from tokentrace.core.recorder import Recorder
    from tokentrace.core.stream import TracedStream
    from tokentrace.instrumentation.ollama import _requests, _responses

    recorder = Recorder("bench", tracer_provider=TracerProvider())
    args = (MODEL, [{"role": "user", "content": "Say hello chunks=4"}])
    response = client.chat(*args)
    captured = list(client.chat(MODEL, [{"role": "user", "content": "x chunks=64"}], stream=True))

    def one_call() -> None:
        call = _requests.describe("chat", client, args, {}, capture=False)
        recorder.start(call)
        _responses.apply_chat(call, response, False)
        recorder.finish(call)

    def traced(items: Iterator[object]) -> TracedStream:
        call = _requests.describe("chat", client, args, {"stream": True}, capture=False)
        recorder.start(call)
        return TracedStream(items, call, recorder, _responses.part_observer("chat", call, False))

    items = captured * (parts // len(captured))
    print_in_process(one_call, items, traced, ("chat hooks, per call", "chat stream, per part"), "part")


if __name__ == "__main__":
    main()
