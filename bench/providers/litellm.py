"""Added time of the LiteLLM instrumentation, per call and per streamed chunk.

Run (LiteLLM pins ``openai<3``, so it has its own environment):
``/tmp/venv-litellm/bin/python bench/providers/litellm.py``. The real ``litellm`` package calls the
local simulator (``tokentrace.demo.simulator``): ``openai/...`` through the openai SDK, and
``anthropic/...`` through LiteLLM's own httpx handler. Instrumented and uninstrumented loops
alternate (see ``bench/providers/_measure.py``). The OpenAI route is measured with the openai SDK
uninstrumented and instrumented (then its call merges into the LiteLLM span). The per-chunk figure
is the slope between a short and a long stream (a JSON-schema answer; ``tools`` would make LiteLLM
import its optional ``mcp`` dependency), so the per-call part cancels.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "bench" / "providers"
# This script shares its name with the library: its own folder must not shadow it on sys.path.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != HERE), str(HERE)]
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no cost-map download at import

import litellm  # noqa: E402
from _measure import Toggle, added_time, per_chunk, print_figures  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402

from tokentrace.core.tiktoken_offline import DEFAULT_CACHE, install_offline_encodings  # noqa: E402
from tokentrace.demo.simulator import Simulator  # noqa: E402
from tokentrace.instrumentation.litellm import LiteLLMInstrumentor, _patch, _requests, _responses  # noqa: E402
from tokentrace.instrumentation.litellm._stream import TracedLiteLLMStream  # noqa: E402
from tokentrace.instrumentation.openai import OpenAIInstrumentor  # noqa: E402

MESSAGES = [{"role": "user", "content": "Say hello to the benchmark please"}]
WIDE = 40  # properties of the JSON schema whose streamed answer makes the long stream
SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "record",
        "schema": {
            "type": "object",
            "properties": {f"p{i}": {"type": "string"} for i in range(WIDE)},
            "required": [f"p{i}" for i in range(WIDE)],
        },
    },
}


def _best_us(run: object, number: int, repeat: int = 9) -> float:
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            run()  # type: ignore[operator]
        timings.append((time.perf_counter() - start) / number * 1e6)
    return statistics.median(timings)


def hook_figures(toggle: Toggle, route: dict, kwargs: dict) -> dict[str, float]:
    """Our part alone, without LiteLLM's tens of milliseconds of noise around it: the real wrapper
    around a stand-in for ``litellm.completion`` returning a real captured response, and the real
    stream proxy over real captured chunks."""
    toggle.set(False)
    response = litellm.completion(messages=MESSAGES, **route)
    chunks = list(litellm.completion(messages=MESSAGES, stream=True, **kwargs))
    toggle.set(True)
    recorder = toggle.instrumentor.recorder
    wrapper = _patch._Tracer(recorder).sync_wrapper(_requests.describe_completion, _responses.apply_completion)
    call_kwargs = {"messages": MESSAGES, **route}

    def sdk(*args: object, **kw: object) -> object:
        return response

    def traced() -> None:
        wrapper(sdk, None, (), call_kwargs)

    def plain() -> None:
        sdk(**call_kwargs)

    def consume(items: list) -> None:
        call = _requests.describe_completion((), {**call_kwargs, "stream": True}, capture=False)
        recorder.start(call)
        for _ in TracedLiteLLMStream(iter(items), call, recorder, _responses.chunk_observer(call, False)):
            pass

    per_call = _best_us(traced, 2000) - _best_us(plain, 2000)
    empty, full = _best_us(lambda: consume([]), 2000), _best_us(lambda: consume(chunks), 300)
    toggle.exporter.clear()
    return {
        "hooks: completion, per call": per_call,
        f"hooks: stream x{len(chunks)}, per chunk": (full - empty) / len(chunks),
    }


def main() -> None:
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(install_offline_encodings(DEFAULT_CACHE)))  # no download
    litellm.suppress_debug_info = True
    with Simulator(seed=7) as sim:
        openai_route = {"model": "openai/gpt-4o-mini", "api_base": sim.base_url, "api_key": "k"}
        anthropic_route = {
            "model": "anthropic/claude-3-5-haiku-20241022",
            "api_base": f"http://{sim.host}:{sim.port}",
            "api_key": "k",
        }

        # Every call runs inside an application span, as in a traced application: LiteLLM does extra
        # work per chunk whenever an OpenTelemetry span is current (its trace-id correlation), which
        # without one here would be charged to tokentrace (whose span is current during the call).
        app = TracerProvider().get_tracer("app")

        def chat(route: dict) -> None:
            with app.start_as_current_span("app"):
                litellm.completion(messages=MESSAGES, **route)

        def stream(route: dict, **extra: object) -> int:
            with app.start_as_current_span("app"):
                return sum(1 for _ in litellm.completion(messages=MESSAGES, stream=True, **route, **extra))

        toggle = Toggle(LiteLLMInstrumentor)
        try:
            figures = [
                added_time("completion openai/ (sdk untraced)", lambda: chat(openai_route), toggle, number=20, pairs=9),
                added_time("completion anthropic/", lambda: chat(anthropic_route), toggle, number=20, pairs=9),
            ]
            OpenAIInstrumentor().instrument(tracer_provider=TracerProvider())  # its spans go nowhere we count
            litellm.in_memory_llm_clients_cache.flush_cache()
            figures.append(
                added_time("completion openai/ (sdk merged)", lambda: chat(openai_route), toggle, number=20, pairs=9)
            )
            OpenAIInstrumentor().uninstrument()
            litellm.in_memory_llm_clients_cache.flush_cache()

            toggle.set(False)
            usage = {"stream_options": {"include_usage": True}}
            short_kw = {**openai_route, **usage, "max_tokens": 2}
            long_kw = {**openai_route, **usage, "response_format": SCHEMA}
            short_chunks, long_chunks = stream(short_kw), stream(long_kw)
            toggle.set(True)
            short = added_time(f"stream openai/ x{short_chunks}", lambda: stream(short_kw), toggle, number=20, pairs=9)
            long = added_time(f"stream openai/ x{long_chunks}", lambda: stream(long_kw), toggle, number=10, pairs=9)
            figures += [short, long]
            chunk_figures = {"stream openai/, per chunk": per_chunk(short, long, short_chunks, long_chunks)}
            hooks = hook_figures(toggle, openai_route, long_kw)
            print_figures(f"litellm {metadata.version('litellm')}", figures, chunk_figures)
            for name, value in hooks.items():
                print(f"{name:<34}{'':>14}{value:>12.2f}  µs")
        finally:
            toggle.close()


if __name__ == "__main__":
    main()
