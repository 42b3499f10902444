"""Nothing of ours may change what an Ollama application sees (see ``fault_contract``).

Each case makes one tokentrace hook raise, then runs a workload against the local Ollama server twice:
successfully, and failing in the SDK (``error-429``). Results and exceptions must equal an
uninstrumented run's; the fault must be counted in ``internal_errors``; the span must still end where
the fault allows it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import ollama
import pytest

from tests.providers import fault_contract as contract
from tests.providers.fault_contract import CAPTURE, DESCRIBE, PER_CHUNK, READING, Fault, boom, on
from tests.providers.generator_streams import fingerprint
from tests.providers.servers.ollama import OllamaServer
from tokentrace.core.call import GenAICall
from tokentrace.instrumentation.ollama import OllamaInstrumentor, _patch, _requests, _responses

MODEL = "llama3.2"
FAILING = "error-429"
MESSAGES = [{"role": "user", "content": "Contain the fault chunks=3"}]


def run_sync(client: Any, workload: str, failing: bool) -> Any:
    model = FAILING if failing else MODEL
    if workload == "chat":
        return fingerprint(client.chat(model, MESSAGES))
    if workload == "chat_stream":
        return [fingerprint(p) for p in client.chat(model, MESSAGES, stream=True)]
    if workload == "generate_stream":
        return [fingerprint(p) for p in client.generate(model, "Contain it", stream=True)]
    return fingerprint(client.embed(model, ["a b"]))


async def run_async(client: Any, workload: str, failing: bool) -> Any:
    model = FAILING if failing else MODEL
    if workload == "chat":
        return fingerprint(await client.chat(model, MESSAGES))
    if workload == "chat_stream":
        return [fingerprint(p) async for p in await client.chat(model, MESSAGES, stream=True)]
    if workload == "generate_stream":
        return [fingerprint(p) async for p in await client.generate(model, "Contain it", stream=True)]
    return fingerprint(await client.embed(model, ["a b"]))


HARNESS = contract.FaultHarness(
    instrumentors=(OllamaInstrumentor,),
    run=run_sync,
    arun=run_async,
    error=ollama.ResponseError,
    error_type="ollama.ResponseError",
)


def _apply(method: str) -> Callable[[pytest.MonkeyPatch], None]:
    """The result readers are looked up in ``_patch._APPLY``, so the fault goes there."""
    return lambda mp: mp.setitem(_patch._APPLY, method, boom)


FAULTS = [
    Fault("describe", on(_requests, "describe"), "chat", DESCRIBE, DESCRIBE, 0, 0),
    Fault("describe-stream", on(_requests, "describe"), "chat_stream", DESCRIBE, DESCRIBE, 0, 0),
    Fault("endpoint", on(_requests, "endpoint"), "embed", DESCRIBE, DESCRIBE, 0, 0),
    Fault("apply_chat", _apply("chat"), "chat", READING, {}),
    Fault("apply_embed", _apply("embed"), "embed", READING, {}),
    Fault("apply_final", on(_responses, "apply_final"), "chat", READING, {}),
    Fault("apply_final-stream", on(_responses, "apply_final"), "generate_stream", {"reading a stream chunk": 1}, {}),
    Fault(
        "observe_chat_part",
        on(_responses, "observe_chat_part"),
        "chat_stream",
        {"reading a stream chunk": PER_CHUNK},
        {},
    ),
    Fault("part_observer", on(_responses, "part_observer"), "chat_stream", READING, READING, error_status=False),
    Fault("mark_chunk", on(GenAICall, "mark_chunk"), "generate_stream", {"reading a stream chunk": PER_CHUNK}, {}),
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
def server() -> Iterator[OllamaServer]:
    with OllamaServer() as s:
        yield s


test_sync_fault_is_contained, test_async_fault_is_contained = contract.fault_tests(
    HARNESS,
    FAULTS,
    lambda server: ollama.Client(host=server.base_url),
    lambda server: ollama.AsyncClient(host=server.base_url),
)
