"""Added time of the Bedrock instrumentation, per call and per streamed chunk.

Real boto3 ``bedrock-runtime`` clients against the local Bedrock Runtime test server (127.0.0.1):
``converse``, ``invoke_model`` (body read and replayed) and, for two stream lengths each,
``converse_stream`` and ``invoke_model_with_response_stream``. Also the cost for a non-Bedrock botocore
call going through the same wrapped ``_make_api_call`` (it must be ~0), and the per-request cost of
the HTTP-attempt hook (``tokentrace/instrumentation/_botocore_http.py``), inside and outside a call.

The server runs in a child process (see ``server_process``). Run:
``/tmp/venv/bin/python bench/providers/bedrock.py``
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import Toggle, added_time, per_chunk, print_figures  # noqa: E402

from tests.providers.servers.bedrock import BedrockServer, make_client  # noqa: E402
from tokentrace.instrumentation.bedrock import BedrockInstrumentor  # noqa: E402

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "bench"}]}]
BODY = json.dumps({"messages": [{"role": "user", "content": "bench"}], "max_tokens": 50})
SHORT, LONG = 10, 200


def _serve(urls: Any) -> None:
    with BedrockServer() as server:
        urls.put(server.url)
        threading.Event().wait()


@contextlib.contextmanager
def server_process() -> Iterator[Any]:
    """The local server in its own process: in-process, its thread and the client's contend for the
    GIL (5 ms switch interval), which turns any extra client work into scheduling noise per chunk."""
    context = multiprocessing.get_context("spawn")
    urls = context.Queue()
    process = context.Process(target=_serve, args=(urls,), daemon=True)
    process.start()
    try:
        yield SimpleNamespace(url=urls.get(timeout=60))
    finally:
        process.terminate()
        process.join(10)


def main() -> None:
    with server_process() as server:
        client = make_client(server)
        toggle = Toggle(BedrockInstrumentor)
        try:
            figures = [
                added_time("converse", lambda: client.converse(modelId=HAIKU, messages=MESSAGES), toggle),
                added_time(
                    "invoke_model (body read)",
                    lambda: client.invoke_model(modelId=HAIKU, body=BODY)["body"].read(),
                    toggle,
                ),
            ]
            chunk_figures = {}
            for name, open_stream, overhead in (
                ("converse_stream", lambda m: client.converse_stream(modelId=m, messages=MESSAGES)["stream"], 4),
                (
                    "invoke_model_stream",
                    lambda m: client.invoke_model_with_response_stream(modelId=m, body=BODY)["body"],
                    5,
                ),
            ):
                runs = {}
                for words in (SHORT, LONG):
                    model = f"{HAIKU}~n={words}"
                    runs[words] = added_time(
                        f"{name} ({words + overhead} chunks)",
                        lambda model=model, open_stream=open_stream: list(open_stream(model)),
                        toggle,
                        number=20,
                    )
                    figures.append(runs[words])
                chunk_figures[f"{name} per chunk"] = per_chunk(runs[SHORT], runs[LONG], SHORT, LONG)
        finally:
            toggle.close()
        print_figures("bedrock (botocore bedrock-runtime, local server)", figures, chunk_figures)
    print_in_process_chunk_cost()
    print_provider_code_cost()
    print_attempt_hook_cost()


def print_provider_code_cost(number: int = 5000) -> None:
    """CPU time of this provider module's own steps for one Converse call (describe the request,
    read the response), without the core recorder (span, metrics, cost) or botocore."""
    import time

    import boto3
    from opentelemetry.sdk.trace import TracerProvider

    from tests.providers.servers import bedrock as srv
    from tokentrace.core.recorder import Recorder
    from tokentrace.instrumentation.bedrock import _responses
    from tokentrace.instrumentation.bedrock._patch import BedrockTracer

    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="a",
        aws_secret_access_key="b",
    )
    tracer = BedrockTracer(Recorder("bench", tracer_provider=TracerProvider()))
    params = {"modelId": HAIKU, "messages": MESSAGES}
    result = srv.converse_body(srv.reply_for(HAIKU, "converse"))
    result["ResponseMetadata"] = {"RequestId": "r", "HTTPHeaders": {}}
    start = time.process_time()
    for _ in range(number):
        call, _ = tracer.describe(client, ("Converse", params), {})
    describe = (time.process_time() - start) / number * 1e6
    start = time.process_time()
    for _ in range(number):
        _responses.apply_converse(call, result, False)
    apply = (time.process_time() - start) / number * 1e6
    print("== provider code alone, per Converse call (CPU)")
    print(f"{'describe request':<34}{'':>14}{describe:>12.2f}  µs")
    print(f"{'read response':<34}{'':>14}{apply:>12.2f}  µs")


def print_in_process_chunk_cost(events: int = 2000, repeats: int = 7) -> None:
    """The proxy's own per-event cost without the network (stable on a busy machine): the same
    decoded events iterated bare and through ``TracedEventStream`` with each observer; best of N."""
    import time

    from opentelemetry.sdk.trace import TracerProvider

    from tokentrace.core.call import GenAICall
    from tokentrace.core.recorder import Recorder
    from tokentrace.instrumentation.bedrock import _responses
    from tokentrace.instrumentation.bedrock._stream import TracedEventStream

    class Events:
        def __init__(self, items: list) -> None:
            self.items = items

        def __iter__(self):
            yield from self.items

        def close(self) -> None:
            pass

    recorder = Recorder("bench", tracer_provider=TracerProvider())
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " word"}}
    cases = (
        (
            "converse_stream event",
            [{"contentBlockDelta": {"delta": {"text": " word"}, "contentBlockIndex": 0}}],
            _responses.converse_stream_observer,
        ),
        (
            "invoke_model_stream chunk",
            [{"chunk": {"bytes": json.dumps(delta, separators=(",", ":")).encode()}}],
            _responses.invoke_stream_observer,
        ),
    )
    # Each stream ends as Bedrock's do, with the exact usage (so nothing is estimated at the end).
    usage = {"inputTokens": 10, "outputTokens": events}
    metrics = {"inputTokenCount": 10, "outputTokenCount": events}
    last = {
        "converse_stream event": {"metadata": {"usage": usage, "metrics": {"latencyMs": 1}}},
        "invoke_model_stream chunk": {
            "chunk": {
                "bytes": json.dumps({"type": "message_stop", "amazon-bedrock-invocationMetrics": metrics}).encode()
            }
        },
    }
    print("== in-process, per event (no network)")
    for name, one, observer in cases:
        items = one * events + [last[name]]
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            list(Events(items))
            bare = time.perf_counter() - start
            call = GenAICall("chat", "aws.bedrock", HAIKU, stream=True)
            recorder.start(call)
            stream = TracedEventStream(Events(items), call, recorder, observer(call, False), _responses.aws_error_type)
            start = time.perf_counter()
            list(stream)
            best = min(best, (time.perf_counter() - start - bare) / events * 1e6)
        print(f"{name:<34}{'':>14}{best:>12.2f}  µs/event")


def print_attempt_hook_cost(number: int = 20000, repeats: int = 5) -> None:
    """CPU time of the botocore attempt hook per HTTP request: its ``before-send`` and
    ``response-received`` handlers as botocore calls them, for a request inside an instrumented call
    (an attempt recorded: a 200, or a 429 with its AWS error code) and outside one (a watched
    client's other traffic: two context-variable reads). Best of N; recording at the call's end
    (events, metrics) is part of the per-call figures above."""
    import time

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest, HeadersDict
    from botocore.credentials import Credentials

    from tokentrace.core.attempts import CURRENT_CALL
    from tokentrace.core.call import GenAICall
    from tokentrace.instrumentation import _botocore_http

    request = AWSRequest(method="POST", url="https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse")
    SigV4Auth(Credentials("AKIDBENCH", "secret"), "bedrock", "us-east-1").add_auth(request)
    prepared = request.prepare()
    headers = HeadersDict({"x-amzn-RequestId": "0f2d-bench", "Content-Type": "application/json"})
    answers = {
        "200": ({"status_code": 200, "headers": headers, "body": b""}, {"ResponseMetadata": {}}),
        "429": ({"status_code": 429, "headers": headers, "body": b""}, {"Error": {"Code": "ThrottlingException"}}),
    }
    call = GenAICall("chat", "aws.bedrock", HAIKU)
    on_send, on_received = _botocore_http._on_send, _botocore_http._on_received
    print("== botocore attempt hook, per HTTP request (CPU, both handlers)")
    for label, inside in (("inside a call, 200", "200"), ("inside a call, 429", "429"), ("outside a call", None)):
        response, parsed = answers[inside or "200"]
        token = CURRENT_CALL.set(call if inside else None)
        try:
            best = float("inf")
            for _ in range(repeats):
                call.attempts.clear()
                start = time.process_time()
                for _ in range(number):
                    on_send(request=prepared, event_name="before-send.bedrock-runtime.Converse")
                    on_received(response_dict=response, parsed_response=parsed, exception=None, context={})
                best = min(best, (time.process_time() - start) / number * 1e6)
        finally:
            CURRENT_CALL.reset(token)
        print(f"{label:<34}{'':>14}{best:>12.2f}  µs")


if __name__ == "__main__":
    main()
