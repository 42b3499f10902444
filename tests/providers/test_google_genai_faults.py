"""Nothing of ours may change what a google-genai application sees (see ``fault_contract``).

Each case makes one of tokentrace's hooks raise, then runs the same workload twice against the local
Gemini server: once successfully, once failing in the SDK (``error-429``, retries off). The successful
run must return what an uninstrumented run returns; the failing one must raise the SDK's exception
with the same type, message, code and details. The fault must be counted in
``tokentrace.core.safety.internal_errors``, and the span must still end where the fault allows it.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from google.genai import errors
from opentelemetry.sdk import trace as sdk_trace

from tests.providers import fault_contract as contract
from tests.providers.fault_contract import (
    CAPTURE,
    DESCRIBE,
    FAILED_CALL,
    PER_CHUNK,
    READING,
    STREAM_END,
    Fault,
    boom,
    inject_function,
    on,
)
from tests.providers.servers.google_genai import GeminiServer, client_for, observed
from tokentrace.core import pricing, recorder
from tokentrace.core.call import GenAICall
from tokentrace.instrumentation.google_genai import (
    GoogleGenAIInstrumentor,
    _content,
    _hops,
    _patch,
    _requests,
    _responses,
)

MODEL = "gemini-2.5-flash"
EMBEDDING_MODEL = "gemini-embedding-001"
FAILING_MODEL = "error-429"
PROMPT = "Nothing of ours may change what the application sees."


class BrokenContextVar:
    """A context variable that cannot be set: reads say "no call collecting"."""

    def get(self) -> None:
        return None

    set = reset = staticmethod(boom)


# -- workloads ------------------------------------------------------------------------------------------


def run_sync(client: Any, workload: str, failing: bool = False) -> Any:
    if workload == "generate":
        return observed(client.models.generate_content(model=FAILING_MODEL if failing else MODEL, contents=PROMPT))
    if workload == "stream":
        stream = client.models.generate_content_stream(model=FAILING_MODEL if failing else MODEL, contents=PROMPT)
        return [observed(chunk) for chunk in stream]
    if workload == "embed":
        model = FAILING_MODEL if failing else EMBEDDING_MODEL
        return observed(client.models.embed_content(model=model, contents=PROMPT))
    raise AssertionError(workload)  # pragma: no cover


async def run_async(client: Any, workload: str, failing: bool = False) -> Any:
    models = client.aio.models
    if workload == "generate":
        return observed(await models.generate_content(model=FAILING_MODEL if failing else MODEL, contents=PROMPT))
    if workload == "stream":
        stream = await models.generate_content_stream(model=FAILING_MODEL if failing else MODEL, contents=PROMPT)
        return [observed(chunk) async for chunk in stream]
    if workload == "embed":
        model = FAILING_MODEL if failing else EMBEDDING_MODEL
        return observed(await models.embed_content(model=model, contents=PROMPT))
    raise AssertionError(workload)  # pragma: no cover


# -- faults ---------------------------------------------------------------------------------------------


def _fn(module: Any, name: str) -> Callable[[pytest.MonkeyPatch], None]:
    """Make ``module.name`` raise, also where ``_patch``'s operations hold it since import."""
    return lambda mp: inject_function(mp, module, name, _patch, ("GENERATE", "GENERATE_STREAM", "EMBED"))


FAULTS = [
    # Describing the request: the call runs untraced.
    Fault("tracer.describe", on(_patch.Tracer, "describe"), "generate", DESCRIBE, DESCRIBE, 0, 0),
    Fault("tracer.describe-stream", on(_patch.Tracer, "describe"), "stream", DESCRIBE, DESCRIBE, 0, 0),
    Fault("endpoint_of", _fn(_requests, "endpoint_of"), "generate", DESCRIBE, DESCRIBE, 0, 0),
    Fault("describe_generate", _fn(_requests, "describe_generate"), "generate", DESCRIBE, DESCRIBE, 0, 0),
    Fault("describe_generate-stream", _fn(_requests, "describe_generate"), "stream", DESCRIBE, DESCRIBE, 0, 0),
    Fault("describe_embed", _fn(_requests, "describe_embed"), "embed", DESCRIBE, DESCRIBE, 0, 0),
    # Reading the result: the span still ends with what is known.
    Fault("apply_generate", _fn(_responses, "apply_generate"), "generate", READING, {}),
    Fault("apply_usage", _fn(_responses, "apply_usage"), "generate", READING, {}),
    Fault("apply_embed", _fn(_responses, "apply_embed"), "embed", READING, {}),
    Fault("observe_chunk", _fn(_responses, "observe_chunk"), "stream", {"reading a stream chunk": PER_CHUNK}, {}),
    # A stream's usage is converted once, from the last chunk's, when it ends.
    Fault("apply_usage-stream", _fn(_responses, "apply_usage"), "stream", {"finishing stream accumulation": 1}, {}),
    # Noting each request's usage (automatic function calling): the response's own usage is used.
    Fault("hops.note", _fn(_hops, "_note"), "generate", {"noting a request's usage": 1}, {}),
    Fault(
        "hops.start",
        lambda mp: mp.setattr(_hops, "_usages", BrokenContextVar()),
        "generate",
        {"collecting request usage": 1},
        {"collecting request usage": 1},
    ),
    Fault("apply_summed_usage", _fn(_responses, "apply_summed_usage"), "generate", READING, {}),
    # The stream is returned untraced and its span ends at once (before the SDK's error surfaces).
    Fault("chunk_observer", _fn(_responses, "chunk_observer"), "stream", READING, READING, error_status=False),
    Fault("mark_chunk", on(GenAICall, "mark_chunk"), "stream", {"reading a stream chunk": PER_CHUNK}, {}),
    # Content capture.
    Fault(
        "input_messages",
        _fn(_content, "input_messages"),
        "generate",
        {"capturing content": 1},
        {"capturing content": 1},
        env=CAPTURE,
    ),
    Fault(
        "input_messages-stream",
        _fn(_content, "input_messages"),
        "stream",
        {"capturing content": 1},
        {"capturing content": 1},
        env=CAPTURE,
    ),
    Fault("output_messages", _fn(_content, "output_messages"), "generate", READING, {}, env=CAPTURE),
    Fault(
        "output_message-stream",
        _fn(_content, "output_message"),
        "stream",
        {"finishing stream accumulation": 1},
        {},
        env=CAPTURE,
    ),
    # Pricing and metrics.
    Fault("price", on(pricing.PriceBook, "cost"), "generate", {"pricing": 1}, {"pricing": 1}),
    Fault("price-stream", on(pricing.PriceBook, "cost"), "stream", {"pricing": 1}, {"pricing": 1}),
    Fault("price-embed", on(pricing.PriceBook, "cost"), "embed", {"pricing": 1}, {"pricing": 1}),
    Fault(
        "record_metrics",
        on(recorder.Recorder, "_record_metrics"),
        "generate",
        {"recording metrics": 1},
        {"recording metrics": 1},
    ),
    Fault(
        "record_metrics-stream",
        on(recorder.Recorder, "_record_metrics"),
        "stream",
        {"recording metrics": 1},
        {"recording metrics": 1},
    ),
    # Ending the span.
    Fault("end_span", on(recorder.Recorder, "_end_span"), "generate", READING, FAILED_CALL, 0, 0),
    Fault("end_span-stream", on(recorder.Recorder, "_end_span"), "stream", STREAM_END, STREAM_END, 0, 0),
    Fault("span.end", on(sdk_trace.Span, "end"), "generate", {"ending the span": 1}, {"ending the span": 1}, 0, 0),
    Fault("span.end-stream", on(sdk_trace.Span, "end"), "stream", {"ending the span": 1}, {"ending the span": 1}, 0, 0),
    Fault("finish-stream", on(recorder.Recorder, "finish"), "stream", STREAM_END, STREAM_END, 0, 0),
]


def _span_name(fault: Fault, failing: bool) -> str:
    operation = "embeddings" if fault.workload == "embed" else "generate_content"
    return f"{operation} {FAILING_MODEL if failing else (EMBEDDING_MODEL if fault.workload == 'embed' else MODEL)}"


HARNESS = contract.FaultHarness(
    instrumentors=(GoogleGenAIInstrumentor,),
    run=run_sync,
    arun=run_async,
    error=errors.ClientError,
    error_type="google.genai.errors.ClientError",
    error_fields=("code", "details"),
    span_name=_span_name,
)


@pytest.fixture(autouse=True)
def _collect_leftovers() -> Iterator[None]:
    """A fault can leave a stream proxy whose span could not end; collect it here, not in a later test."""
    yield
    gc.collect()


@pytest.fixture(scope="module")
def server() -> Iterator[GeminiServer]:
    with GeminiServer() as s:
        yield s


# -- tests ----------------------------------------------------------------------------------------------


test_sync_fault_is_contained, test_async_fault_is_contained = contract.fault_tests(
    HARNESS, FAULTS, client_for, client_for
)
