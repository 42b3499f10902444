"""Added time of the Mistral instrumentation, per call and per streamed chunk.

Run: ``/tmp/venv/bin/python bench/providers/mistralai.py``. The real ``mistralai`` client (its own
httpx stack) calls the local Mistral server from ``tests/providers/servers/mistral.py``; instrumented
and uninstrumented loops alternate (see ``bench/providers/_measure.py``). The per-chunk figure is the
slope between a 4-chunk and a 64-chunk stream, so the per-call part cancels out.
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "bench" / "providers"
# This script shares its name with the SDK, a namespace package: any ``mistralai.py`` on sys.path would
# win over it, so the SDK is imported before this folder is added (last, for ``_measure`` only).
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]
from mistralai.client import Mistral  # noqa: E402

sys.path.append(str(HERE))
from _measure import Toggle, added_time, per_chunk, print_figures  # noqa: E402

from tests.providers.servers import mistral  # noqa: E402
from tokentrace.instrumentation.mistralai import MistralInstrumentor  # noqa: E402

MODEL = "mistral-small-latest"
SHORT, LONG = 4, 64


def main() -> None:
    with mistral.server() as server:
        toggle = Toggle(MistralInstrumentor)
        client = Mistral(api_key="bench", server_url=server.root_url)
        messages = [{"role": "user", "content": "Say hello to the benchmark"}]
        try:

            def chat() -> None:
                client.chat.complete(model=MODEL, messages=messages)

            def embed() -> None:
                client.embeddings.create(model="mistral-embed", inputs=["a b c"])

            def stream(chunks: int):
                streamed = [{"role": "user", "content": f"Stream please chunks={chunks}"}]

                def run() -> None:
                    with client.chat.stream(model=MODEL, messages=streamed) as events:
                        for _ in events:
                            pass

                return run

            figures = [
                added_time("chat.complete", chat, toggle),
                added_time("embeddings.create", embed, toggle),
                added_time(f"chat.stream x{SHORT}", stream(SHORT), toggle),
                added_time(f"chat.stream x{LONG}", stream(LONG), toggle, number=20),
            ]
            # N text chunks plus the final chunk with the finish reason and usage.
            chunk = per_chunk(figures[2], figures[3], SHORT + 1, LONG + 1)
            print_figures(f"mistralai {metadata.version('mistralai')}", figures, {"stream, per chunk": chunk})
        finally:
            toggle.close()


if __name__ == "__main__":
    main()
