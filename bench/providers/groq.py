"""Added time of the Groq instrumentation, per call and per streamed chunk.

Run: ``/tmp/venv/bin/python bench/providers/groq.py``. The real ``groq`` client (its own httpx stack)
calls the local Groq server from ``tests/providers/servers/groq.py``; instrumented and uninstrumented
loops alternate (see ``bench/providers/_measure.py``). The per-chunk figure is the slope between a
4-chunk and a 64-chunk stream, so the per-call part cancels out.
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

import groq  # noqa: E402
from _measure import Toggle, added_time, per_chunk, print_figures  # noqa: E402

from tests.providers.servers import groq as groq_server  # noqa: E402
from tokentrace.instrumentation.groq import GroqInstrumentor  # noqa: E402

MODEL = "llama-3.3-70b-versatile"
SHORT, LONG = 4, 64


def main() -> None:
    with groq_server.server() as server:
        toggle = Toggle(GroqInstrumentor)
        client = groq.Groq(api_key="bench", base_url=server.root_url, max_retries=0)
        messages = [{"role": "user", "content": "Say hello to the benchmark"}]
        try:

            def chat() -> None:
                client.chat.completions.create(model=MODEL, messages=messages)

            def embed() -> None:
                client.embeddings.create(model="nomic-embed-text-v1_5", input=["a b c"])

            def stream(chunks: int):
                streamed = [{"role": "user", "content": f"Stream please chunks={chunks}"}]

                def run() -> None:
                    for _ in client.chat.completions.create(model=MODEL, messages=streamed, stream=True):
                        pass

                return run

            figures = [
                added_time("chat.completions.create", chat, toggle),
                added_time("embeddings.create", embed, toggle),
                added_time(f"chat stream x{SHORT}", stream(SHORT), toggle),
                added_time(f"chat stream x{LONG}", stream(LONG), toggle, number=20),
            ]
            # N text chunks plus the final chunk with the finish reason and x_groq.usage.
            chunk = per_chunk(figures[2], figures[3], SHORT + 1, LONG + 1)
            print_figures(f"groq {metadata.version('groq')}", figures, {"stream, per chunk": chunk})
        finally:
            toggle.close()


if __name__ == "__main__":
    main()
