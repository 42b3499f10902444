"""Added time of the google-genai instrumentation, per call and per streamed chunk.

Run: ``/tmp/venv/bin/python bench/providers/google_genai.py``. The real ``google.genai`` client (its
own httpx stack) calls the local Gemini REST server from ``tests/providers/servers/google_genai.py``;
instrumented and uninstrumented loops alternate (see ``bench/providers/_measure.py``). The per-chunk
figure is the slope between a 4-chunk and a 64-chunk stream, so the per-call part cancels out.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench" / "providers")]

from _measure import Toggle, added_time, per_chunk, print_figures  # noqa: E402

from tests.providers.servers.google_genai import GeminiServer, client_for  # noqa: E402
from tokentrace.core.settings import TIME_PER_CHUNK_METRIC_ENV, Settings  # noqa: E402
from tokentrace.instrumentation.google_genai import GoogleGenAIInstrumentor  # noqa: E402

MODEL = "gemini-2.5-flash"
SHORT, LONG = 4, 64


def main() -> None:
    with GeminiServer() as server:
        client = client_for(server)
        toggle = Toggle(GoogleGenAIInstrumentor)
        try:

            def generate() -> None:
                client.models.generate_content(model=MODEL, contents="Say hello chunks=4")

            def embed() -> None:
                client.models.embed_content(model="gemini-embedding-001", contents="a b c")

            def stream(chunks: int):
                prompt = f"Stream please chunks={chunks}"

                def run() -> None:
                    for _ in client.models.generate_content_stream(model=MODEL, contents=prompt):
                        pass

                return run

            figures = [
                added_time("generate_content", generate, toggle),
                added_time("embed_content", embed, toggle),
                added_time(f"generate_content_stream x{SHORT}", stream(SHORT), toggle),
                added_time(f"generate_content_stream x{LONG}", stream(LONG), toggle, number=20),
            ]
            chunk = per_chunk(figures[2], figures[3], SHORT, LONG)
        finally:
            toggle.close()
        # Most of the per-chunk figure is the core's time_per_output_chunk metric (one SDK record per
        # chunk, off the app's thread but on the same cores); without it, what the provider code adds.
        settings = Settings.from_environment({**os.environ, TIME_PER_CHUNK_METRIC_ENV: "false"})
        toggle = Toggle(GoogleGenAIInstrumentor, settings=settings)
        try:
            short = added_time(f"... x{SHORT}, no per-chunk metric", stream(SHORT), toggle)
            long = added_time(f"... x{LONG}, no per-chunk metric", stream(LONG), toggle, number=20)
        finally:
            toggle.close()
        figures += [short, long]
        chunks = {
            "stream, per chunk": chunk,
            "stream, per chunk, no per-chunk metric": per_chunk(short, long, SHORT, LONG),
        }
        print_figures("google-genai " + _version(), figures, chunks)


def _version() -> str:
    from google.genai import version

    return version.__version__


if __name__ == "__main__":
    main()
