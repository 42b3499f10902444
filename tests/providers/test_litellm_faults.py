"""Nothing of ours may change what a LiteLLM application sees.

Each case makes one of tokentrace's hooks raise and runs the same call twice against the simulator:
once successful, once failing in LiteLLM (``error-429`` → ``litellm.RateLimitError``). Results must
equal an uninstrumented run's, the exception must be the same, the fault must be counted in
``tokentrace.core.safety.internal_errors``, and the span must still end where the fault allows it.
LiteLLM and the openai SDK under it are both instrumented, so the merge of the inner call is covered.
"""

from __future__ import annotations

import re
from typing import Any

from observed import fingerprint

from tests.providers import fault_contract as contract
from tests.providers.fault_contract import CAPTURE, DESCRIBE, PER_CHUNK, READING, Fault
from tests.providers.fault_contract import on as _on
from tests.providers.litellm_setup import (  # noqa: F401  (autouse fixtures)
    close_litellm_sessions,
    collect_litellm_sessions,
    fresh_litellm_clients,
    litellm,
)
from tokentrace.core import pricing, recorder
from tokentrace.instrumentation.litellm import LiteLLMInstrumentor, _providers, _requests, _responses
from tokentrace.instrumentation.openai import OpenAIInstrumentor, _content

PROMPT = [{"role": "user", "content": "Nothing of ours may change what LiteLLM returns."}]


def _route(sim: Any, workload: str, failing: bool) -> dict[str, Any]:
    if workload.startswith("anthropic"):
        model = "anthropic/error-429" if failing else "anthropic/claude-3-5-haiku-20241022"
        return {"model": model, "api_base": f"http://{sim.host}:{sim.port}", "api_key": "k", "max_tokens": 64}
    if workload == "embedding":
        model = "openai/error-429" if failing else "openai/text-embedding-3-small"
        return {"model": model, "api_base": sim.base_url, "api_key": "k", "encoding_format": "float"}
    model = "openai/error-429" if failing else "openai/gpt-4o-mini"
    return {"model": model, "api_base": sim.base_url, "api_key": "k"}


def _observed(item: Any) -> Any:
    return re.sub(r"chatcmpl-[0-9a-f-]+", "ID", str(fingerprint(item)))


def run_sync(sim: Any, workload: str, failing: bool = False) -> Any:
    sim.reset()
    route = _route(sim, workload, failing)
    if workload == "embedding":
        return _observed(litellm.embedding(input=["embed"], **route))
    if workload.endswith("stream"):
        stream = litellm.completion(messages=PROMPT, stream=True, stream_options={"include_usage": True}, **route)
        return [_observed(chunk) for chunk in stream]
    return _observed(litellm.completion(messages=PROMPT, **route))


async def run_async(sim: Any, workload: str, failing: bool = False) -> Any:
    sim.reset()
    route = _route(sim, workload, failing)
    if workload == "embedding":
        return _observed(await litellm.aembedding(input=["embed"], **route))
    if workload.endswith("stream"):
        stream = await litellm.acompletion(
            messages=PROMPT, stream=True, stream_options={"include_usage": True}, **route
        )
        return [_observed(chunk) async for chunk in stream]
    return _observed(await litellm.acompletion(messages=PROMPT, **route))


FAULTS = [
    # Describing the request: the call runs untraced by us (the inner openai call then has its own span).
    Fault("describe_completion", _on(_requests, "describe_completion"), "chat", DESCRIBE, DESCRIBE, 0, 0),
    Fault("describe_completion-stream", _on(_requests, "describe_completion"), "chat_stream", DESCRIBE, DESCRIBE, 0, 0),
    Fault("describe_embedding", _on(_requests, "describe_embedding"), "embedding", DESCRIBE, DESCRIBE, 0, 0),
    Fault("litellm_provider", _on(_providers, "litellm_provider"), "anthropic", DESCRIBE, DESCRIBE, 0, 0),
    # Reading the response: the span still ends, with what is known.
    Fault("apply_completion", _on(_responses, "apply_completion"), "chat", READING, {}),
    Fault("apply_completion-anthropic", _on(_responses, "apply_completion"), "anthropic", READING, {}),
    Fault("apply_embedding", _on(_responses, "apply_embedding"), "embedding", READING, {}),
    Fault("apply_hidden", _on(_responses, "apply_hidden"), "anthropic", READING, {}),
    Fault(
        "apply_hidden-stream",
        _on(_responses, "apply_hidden"),
        "anthropic_stream",
        {"finishing stream accumulation": 1},
        {},
    ),
    Fault("chunk_observer", _on(_responses, "chunk_observer"), "chat_stream", READING, {}),
    Fault(
        "collect-per-chunk",
        _on(_responses, "_collect"),
        "anthropic_stream",
        {"reading a stream chunk": PER_CHUNK},
        {},
        env=CAPTURE,
    ),
    # The merge of the inner openai call into LiteLLM's.
    Fault("merge", _on(recorder.Recorder, "_merge"), "chat", {"merging into the outer call": 1}, {}),
    Fault("merge-stream", _on(recorder.Recorder, "_merge"), "chat_stream", {"merging into the outer call": 1}, {}),
    # Pricing, content, metrics, ending the span.
    Fault("price", _on(pricing.PriceBook, "cost"), "chat", {"pricing": 1}, {"pricing": 1}),
    Fault("price-stream", _on(pricing.PriceBook, "cost"), "anthropic_stream", {"pricing": 1}, {"pricing": 1}),
    Fault(
        "content",
        _on(_content, "chat_input_messages"),
        "chat",
        {"capturing content": 1},
        {"capturing content": 1},
        env=CAPTURE,
    ),
    Fault(
        "record_metrics",
        _on(recorder.Recorder, "_record_metrics"),
        "chat",
        {"recording metrics": 1},
        {"recording metrics": 1},
    ),
    Fault("end_span", _on(recorder.Recorder, "_end_span"), "chat", READING, {"recording a failed call": 1}, 0, 0),
]


HARNESS = contract.FaultHarness(
    instrumentors=(OpenAIInstrumentor, LiteLLMInstrumentor),  # the inner openai call merges into ours
    run=run_sync,
    arun=run_async,
    error=litellm.RateLimitError,
    error_type="litellm.exceptions.RateLimitError",
    chained=(),
    message=lambda error: re.sub(r"req_\d+", "", str(error)),  # the simulator's request ids differ
    spans_of=lambda telemetry: [
        s for s in telemetry.spans() if s.instrumentation_scope.name == "tokentrace.instrumentation.litellm"
    ],
    after_instrumenting=litellm.in_memory_llm_clients_cache.flush_cache,
)


# LiteLLM has no client: each call names its route on the simulator.
test_sync_fault_is_contained, test_async_fault_is_contained = contract.fault_tests(
    HARNESS, FAULTS, lambda sim: sim, lambda sim: sim, source="simulator"
)
