"""Added time of the Cohere instrumentation, per call and per streamed event.

Run: ``/tmp/venv/bin/python bench/providers/cohere.py``. The real ``cohere.ClientV2`` (its own httpx
stack) calls the local Cohere v2 server from ``tests/providers/servers/cohere.py``; instrumented and
uninstrumented loops alternate (see ``bench/providers/_measure.py``). The per-chunk figure is the slope
between a 4-delta and a 64-delta stream, so the per-call part cancels out.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "bench" / "providers"
# This script shares its name with the SDK: its own folder (first on sys.path) must not shadow the SDK,
# so it goes last, for ``_measure`` only.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != HERE), str(HERE)]

import cohere  # noqa: E402
from _measure import Toggle, added_time, per_chunk, print_figures, print_in_process  # noqa: E402

from tests.providers.servers.cohere import CohereServer, client_for  # noqa: E402
from tokentrace.instrumentation.cohere import CohereInstrumentor  # noqa: E402

MODEL = "command-a-03-2025"
SHORT, LONG = 4, 64
# A stream of N deltas is N + 4 events (message-start, content-start, content-end, message-end).
EVENTS_SHORT, EVENTS_LONG = SHORT + 4, LONG + 4


def main() -> None:
    with CohereServer() as server:
        toggle = Toggle(CohereInstrumentor)
        client = client_for(server.base_url)
        # Client.__init__ binds chat/chat_stream on the instance (argument checks); dropping those
        # lets the toggle's class-level swap decide which method runs.
        vars(client).pop("chat", None)
        vars(client).pop("chat_stream", None)
        messages = [{"role": "user", "content": "Say hello chunks=4"}]
        try:

            def chat() -> None:
                client.chat(model=MODEL, messages=messages)

            def embed() -> None:
                client.embed(model="embed-v4.0", texts=["a b c"], input_type="search_document")

            def stream(chunks: int):
                streamed = [{"role": "user", "content": f"Stream please chunks={chunks}"}]

                def run() -> None:
                    for _ in client.chat_stream(model=MODEL, messages=streamed):
                        pass

                return run

            figures = [
                added_time("chat", chat, toggle),
                added_time("embed", embed, toggle),
                added_time(f"chat_stream x{SHORT}", stream(SHORT), toggle),
                added_time(f"chat_stream x{LONG}", stream(LONG), toggle, number=20),
            ]
            chunk = per_chunk(figures[2], figures[3], EVENTS_SHORT, EVENTS_LONG)
            print_figures(f"cohere {cohere.__version__}", figures, {"stream, per event": chunk})
        finally:
            toggle.close()
        print_in_process_cost(client)


def print_in_process_cost(client: object, events: int = 2000) -> None:
    """Our own cost without the network (see ``_measure.print_in_process``), on responses fetched once."""
    from opentelemetry.sdk.trace import TracerProvider

    from tokentrace.core.recorder import Recorder
    from tokentrace.core.stream import TracedStream
    from tokentrace.instrumentation.cohere import _requests, _responses

    recorder = Recorder("bench", tracer_provider=TracerProvider())
    messages = [{"role": "user", "content": "Say hello chunks=4"}]
    kwargs = {"model": MODEL, "messages": messages}
    response = type(client).chat(client, **kwargs)
    captured = list(
        type(client).chat_stream(client, model=MODEL, messages=[{"role": "user", "content": "x chunks=64"}])
    )

    def one_call() -> None:
        call = _requests.describe_chat(client, kwargs, stream=False, capture=False)
        recorder.start(call)
        _responses.apply_chat(call, response, False)
        recorder.finish(call)

    def traced(items: Iterator[object]) -> TracedStream:
        call = _requests.describe_chat(client, kwargs, stream=True, capture=False)
        recorder.start(call)
        return TracedStream(items, call, recorder, _responses.chat_event_observer(call, False))

    items = captured * (events // len(captured))
    print_in_process(one_call, items, traced, ("chat hooks, per call", "chat_stream, per event"), "event")


if __name__ == "__main__":
    main()
