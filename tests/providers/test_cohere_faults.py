"""Nothing of ours may change what a Cohere application sees (see ``fault_contract``).

Each case makes one tokentrace hook raise, then runs a workload against the local Cohere server twice:
successfully, and failing in the SDK (``error-429``, no retries). Results and exceptions must equal an
uninstrumented run's; the fault must be counted in ``internal_errors``; the span must still end where
the fault allows it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import cohere
import pytest

from tests.providers import fault_contract as contract
from tests.providers.fault_contract import CAPTURE, DESCRIBE, PER_CHUNK, READING, Fault, on
from tests.providers.generator_streams import fingerprint
from tests.providers.servers.cohere import CohereServer, client_for
from tokentrace.core.call import GenAICall
from tokentrace.instrumentation.cohere import CohereInstrumentor, _requests, _responses

MODEL = "command-a-03-2025"
FAILING = "error-429"
MESSAGES = [{"role": "user", "content": "Contain the fault chunks=3"}]


def _embed_arguments(failing: bool) -> dict[str, Any]:
    return {
        "model": FAILING if failing else "embed-v4.0",
        "texts": ["a b"],
        "input_type": "search_document",
        "embedding_types": ["float"],
    }


def run_sync(client: Any, workload: str, failing: bool) -> Any:
    model = FAILING if failing else MODEL
    if workload == "chat":
        return fingerprint(client.chat(model=model, messages=MESSAGES))
    if workload == "chat_stream":
        return [fingerprint(e) for e in client.chat_stream(model=model, messages=MESSAGES)]
    return fingerprint(client.embed(**_embed_arguments(failing)))


async def run_async(client: Any, workload: str, failing: bool) -> Any:
    model = FAILING if failing else MODEL
    if workload == "chat":
        return fingerprint(await client.chat(model=model, messages=MESSAGES))
    if workload == "chat_stream":
        return [fingerprint(e) async for e in client.chat_stream(model=model, messages=MESSAGES)]
    return fingerprint(await client.embed(**_embed_arguments(failing)))


HARNESS = contract.FaultHarness(
    instrumentors=(CohereInstrumentor,),
    run=run_sync,
    arun=run_async,
    error=cohere.TooManyRequestsError,
    error_type="cohere.errors.too_many_requests_error.TooManyRequestsError",
    error_fields=("status_code", "body"),
)

FAULTS = [
    Fault("describe_chat", on(_requests, "describe_chat"), "chat", DESCRIBE, DESCRIBE, 0, 0),
    Fault("describe_chat-stream", on(_requests, "describe_chat"), "chat_stream", DESCRIBE, DESCRIBE, 0, 0),
    Fault("describe_embed", on(_requests, "describe_embed"), "embed", DESCRIBE, DESCRIBE, 0, 0),
    Fault("endpoint", on(_requests, "endpoint"), "chat", DESCRIBE, DESCRIBE, 0, 0),
    Fault("apply_chat", on(_responses, "apply_chat"), "chat", READING, {}),
    Fault("apply_usage", on(_responses, "apply_usage"), "chat", READING, {}),
    Fault("apply_embed", on(_responses, "apply_embed"), "embed", READING, {}),
    Fault("observe_event", on(_responses, "observe_event"), "chat_stream", {"reading a stream chunk": PER_CHUNK}, {}),
    Fault("apply_usage-stream", on(_responses, "apply_usage"), "chat_stream", {"reading a stream chunk": 1}, {}),
    Fault(
        "chat_event_observer",
        on(_responses, "chat_event_observer"),
        "chat_stream",
        READING,
        READING,
        error_status=False,
    ),  # the stream goes back untraced; its span ends at once
    Fault("mark_chunk", on(GenAICall, "mark_chunk"), "chat_stream", {"reading a stream chunk": PER_CHUNK}, {}),
    Fault("output_message", on(_responses, "output_message"), "chat", READING, {}, env=CAPTURE),
    Fault(
        "output_message-stream",
        on(_responses, "output_message"),
        "chat_stream",
        {"finishing stream accumulation": 1},
        {"finishing stream accumulation": 1},
        env=CAPTURE,
    ),
    *contract.recorder_faults("chat", "chat_stream"),
]


@pytest.fixture(scope="module")
def server() -> Iterator[CohereServer]:
    with CohereServer() as s:
        yield s


test_sync_fault_is_contained, test_async_fault_is_contained = contract.fault_tests(
    HARNESS,
    FAULTS,
    lambda server: client_for(server.base_url),
    lambda server: client_for(server.base_url, asynchronous=True),
)
