"""A local Bedrock Runtime server on 127.0.0.1 speaking the real wire formats.

Real ``boto3``/``botocore`` clients talk to it through ``endpoint_url`` (fake credentials; botocore
signs the requests, the server does not check signatures). It answers the four inference
operations the way Bedrock does:

* ``POST /model/{modelId}/converse`` → Converse JSON (``output.message``, ``stopReason``, ``usage``
  with ``inputTokens``/``outputTokens``/``cacheReadInputTokens``/``cacheWriteInputTokens``);
* ``POST /model/{modelId}/converse-stream`` → ``application/vnd.amazon.eventstream`` with
  ``messageStart``, ``contentBlockDelta``…, ``contentBlockStop``, ``messageStop``, ``metadata``;
* ``POST /model/{modelId}/invoke`` → the model family's native JSON body plus Bedrock's
  ``X-Amzn-Bedrock-*-Token-Count`` headers;
* ``POST /model/{modelId}/invoke-with-response-stream`` → ``chunk`` events whose ``bytes`` are the
  family's native stream chunks, the last one carrying ``amazon-bedrock-invocationMetrics``.

Families are chosen by the model id (``anthropic.``, ``amazon.nova``, ``titan-text``,
``titan-embed``, ``meta.llama``, ``mistral.``, ``cohere.command``, ``cohere.embed``). Markers in the
model id change behaviour: ``midstream-error`` (an exception event after the first content chunk;
``midstream-throttling`` sends ``throttlingException``), ``noheaders`` (no token-count headers),
``nocache`` (no cache counts), ``tooluse`` (Converse replies add a tool call), ``headerskew``
(headers count 1000 more input tokens than the body), ``~n=<words>`` (reply length). Request-level
failures are queued with :meth:`BedrockServer.fail_next` (HTTP status + AWS error code, a truncated body, a dropped
connection, or a stall past the client's read timeout) and served to the next requests in order, so
``fail_next(429, "ThrottlingException", times=2)`` fails the first two attempts of the next call and
lets tests drive botocore's retries. Error replies are Bedrock's: the status, a ``{"message": ...}``
JSON body with Bedrock's own message for the code, ``x-amzn-ErrorType``, ``x-amzn-RequestId``, and
optionally a retry hint (``x-amz-retry-after`` in milliseconds, ``Retry-After`` in seconds).
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from tests.providers.servers import aws_eventstream as es

REPLY_WORDS = ["Bedrock", "answers", "from", "the", "local", "test", "server", "in", "ten", "words"]
INPUT_TOKENS = 21  # uncached input tokens, as Bedrock reports them
CACHE_READ = 64
CACHE_WRITE = 5
EMBED_INPUT_TOKENS = 7
EMBED_DIMENSIONS = 8
_LENGTH = re.compile(r"~n=(\d+)")


# What Bedrock Runtime says for the errors tests inject (the body is ``{"message": ...}``).
AWS_MESSAGES = {
    "ThrottlingException": "Too many requests, please wait before trying again.",
    "ServiceUnavailableException": "Bedrock is unable to process your request.",
    "ModelNotReadyException": "Model is not ready to serve inference requests. The AWS SDK will automatically "
    "retry the operation up to 5 times. For information about configuring automatic retries, see Retry "
    "behavior in the AWS SDKs and Tools reference guide.",
    "InternalServerException": "The system encountered an unexpected error during processing. Try your request again.",
}


@dataclass
class Failure:
    status: int
    code: str
    message: str | None = None  # None: Bedrock's own message for the code
    kind: str = "error"  # "error" | "truncate" (cut the body short) | "drop" (close without answering) | "stall"
    retry_after_ms: int | None = None  # sent as x-amz-retry-after (botocore's standard mode honours it)
    retry_after_s: int | None = None  # sent as Retry-After
    stall_s: float = 1.0  # "stall": wait this long, then close without answering


@dataclass
class Reply:
    """What the server reported for one request (tests compare spans against it)."""

    model: str
    operation: str
    input_tokens: int | None  # uncached
    output_tokens: int
    cache_read: int | None
    cache_write: int | None
    words: list[str]


def family_of(model: str) -> str:
    lowered = model.lower()
    for marker, family in (
        ("titan-embed", "titan-embed"),
        ("cohere.embed", "cohere-embed"),
        ("anthropic.", "anthropic"),
        ("amazon.nova", "nova"),
        ("titan-text", "titan"),
        ("meta.llama", "llama"),
        ("mistral.", "mistral"),
        ("cohere.command", "cohere"),
    ):
        if marker in lowered:
            return family
    return "anthropic"


def reply_for(model: str, operation: str) -> Reply:
    match = _LENGTH.search(model)
    count = int(match.group(1)) if match else len(REPLY_WORDS)
    words = [REPLY_WORDS[i % len(REPLY_WORDS)] for i in range(count)]
    family = family_of(model)
    cached = family in ("anthropic", "nova") and "nocache" not in model
    if family in ("titan-embed", "cohere-embed"):
        return Reply(model, operation, EMBED_INPUT_TOKENS, 0, None, None, [])
    return Reply(
        model,
        operation,
        INPUT_TOKENS,
        len(words),
        CACHE_READ if cached else None,
        CACHE_WRITE if cached else None,
        words,
    )


def _deltas(reply: Reply) -> list[str]:
    return [word if i == 0 else " " + word for i, word in enumerate(reply.words)]


# -- Converse ---------------------------------------------------------------------------------------------


def _converse_usage(reply: Reply) -> dict[str, Any]:
    usage: dict[str, Any] = {"inputTokens": reply.input_tokens, "outputTokens": reply.output_tokens}
    total = reply.input_tokens + reply.output_tokens
    if reply.cache_read is not None:
        usage["cacheReadInputTokens"] = reply.cache_read
        usage["cacheWriteInputTokens"] = reply.cache_write
        total += reply.cache_read + reply.cache_write
    usage["totalTokens"] = total
    return usage


TOOL_USE = {"toolUseId": "tooluse_01", "name": "get_weather", "input": {"city": "Paris"}}


def converse_body(reply: Reply) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"text": " ".join(reply.words)}]
    if "tooluse" in reply.model:
        content.append({"toolUse": TOOL_USE})
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": "tool_use" if "tooluse" in reply.model else "end_turn",
        "usage": _converse_usage(reply),
        "metrics": {"latencyMs": 123},
    }


def converse_stream_events(reply: Reply, fail: str | None) -> list[bytes]:
    events = [es.event("messageStart", {"role": "assistant", "p": "abc"})]
    for index, delta in enumerate(_deltas(reply)):
        events.append(es.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": delta}, "p": "ab"}))
        if fail and index == 0:
            events.append(es.exception(fail, "The model stopped mid-stream."))
            return events
    events.append(es.event("contentBlockStop", {"contentBlockIndex": 0, "p": "abcd"}))
    stop = "end_turn"
    if "tooluse" in reply.model:  # a second content block: a tool call whose JSON input arrives in pieces
        start = {"toolUseId": TOOL_USE["toolUseId"], "name": TOOL_USE["name"]}
        events.append(es.event("contentBlockStart", {"contentBlockIndex": 1, "start": {"toolUse": start}}))
        for piece in ('{"city":', ' "Paris"}'):
            events.append(
                es.event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": piece}}})
            )
        events.append(es.event("contentBlockStop", {"contentBlockIndex": 1}))
        stop = "tool_use"
    events.append(es.event("messageStop", {"stopReason": stop, "p": "abcdef"}))
    events.append(es.event("metadata", {"usage": _converse_usage(reply), "metrics": {"latencyMs": 321}, "p": "a"}))
    return events


# -- InvokeModel, per family --------------------------------------------------------------------------------


def _metrics(reply: Reply) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "inputTokenCount": reply.input_tokens,
        "outputTokenCount": reply.output_tokens,
        "invocationLatency": 321,
        "firstByteLatency": 55,
    }
    if reply.cache_read is not None:
        metrics["cacheReadInputTokenCount"] = reply.cache_read
        metrics["cacheWriteInputTokenCount"] = reply.cache_write
    return metrics


def invoke_body(reply: Reply, request: dict[str, Any]) -> dict[str, Any]:
    family = family_of(reply.model)
    text = " ".join(reply.words)
    if family == "anthropic":
        usage: dict[str, Any] = {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens}
        if reply.cache_read is not None:
            usage["cache_read_input_tokens"] = reply.cache_read
            usage["cache_creation_input_tokens"] = reply.cache_write
        return {
            "id": "msg_bdrk_01ABC",
            "type": "message",
            "role": "assistant",
            "model": "claude-3-haiku-20240307",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }
    if family == "nova":
        usage = {"inputTokens": reply.input_tokens, "outputTokens": reply.output_tokens}
        usage["totalTokens"] = reply.input_tokens + reply.output_tokens
        if reply.cache_read is not None:
            usage["cacheReadInputTokenCount"] = reply.cache_read
            usage["cacheWriteInputTokenCount"] = reply.cache_write
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": "end_turn",
            "usage": usage,
        }
    if family == "titan":
        return {
            "inputTextTokenCount": reply.input_tokens,
            "results": [{"tokenCount": reply.output_tokens, "outputText": text, "completionReason": "FINISH"}],
        }
    if family == "llama":
        return {
            "generation": text,
            "prompt_token_count": reply.input_tokens,
            "generation_token_count": reply.output_tokens,
            "stop_reason": "stop",
        }
    if family == "mistral":
        return {"outputs": [{"text": text, "stop_reason": "stop"}]}
    if family == "cohere":
        return {
            "response_id": "c0h3re-resp",
            "text": text,
            "generation_id": "c0h3re-gen",
            "chat_history": [],
            "finish_reason": "COMPLETE",
        }
    dims = request.get("dimensions") or EMBED_DIMENSIONS
    vector = [round(0.01 * i, 3) for i in range(dims)]
    if family == "titan-embed":
        return {"embedding": vector, "inputTextTokenCount": reply.input_tokens}
    texts = request.get("texts") or []
    return {
        "embeddings": [vector for _ in texts],
        "id": "c0h3re-emb",
        "response_type": "embeddings_floats",
        "texts": texts,
    }


def invoke_stream_chunks(reply: Reply) -> list[dict[str, Any]]:
    family = family_of(reply.model)
    deltas = _deltas(reply)
    chunks: list[dict[str, Any]]
    if family == "anthropic":
        start_usage: dict[str, Any] = {"input_tokens": reply.input_tokens, "output_tokens": 1}
        if reply.cache_read is not None:
            start_usage["cache_read_input_tokens"] = reply.cache_read
            start_usage["cache_creation_input_tokens"] = reply.cache_write
        chunks = [
            {
                "type": "message_start",
                "message": {
                    "id": "msg_bdrk_01STR",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-3-haiku-20240307",
                    "content": [],
                    "stop_reason": None,
                    "usage": start_usage,
                },
            },
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            *({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": d}} for d in deltas),
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": reply.output_tokens},
            },
            {"type": "message_stop"},
        ]
    elif family == "nova":
        usage = {"inputTokens": reply.input_tokens, "outputTokens": reply.output_tokens}
        if reply.cache_read is not None:
            usage["cacheReadInputTokenCount"] = reply.cache_read
            usage["cacheWriteInputTokenCount"] = reply.cache_write
        chunks = [
            {"messageStart": {"role": "assistant"}},
            *({"contentBlockDelta": {"delta": {"text": d}, "contentBlockIndex": 0}} for d in deltas),
            {"contentBlockStop": {"contentBlockIndex": 0}},
            {"messageStop": {"stopReason": "end_turn"}},
            {"metadata": {"usage": usage}},
        ]
    elif family == "titan":
        chunks = [
            {
                "outputText": d,
                "index": 0,
                "totalOutputTextTokenCount": i + 1,
                "completionReason": None,
                "inputTextTokenCount": reply.input_tokens if i == 0 else None,
            }
            for i, d in enumerate(deltas)
        ]
        chunks[-1]["completionReason"] = "FINISH"
    elif family == "llama":
        chunks = [
            {
                "generation": d,
                "prompt_token_count": reply.input_tokens if i == 0 else None,
                "generation_token_count": i + 1,
                "stop_reason": None,
            }
            for i, d in enumerate(deltas)
        ]
        chunks[-1]["stop_reason"] = "stop"
    elif family == "mistral":
        chunks = [{"outputs": [{"text": d, "stop_reason": None}]} for d in deltas]
        chunks[-1]["outputs"][0]["stop_reason"] = "stop"
    else:  # cohere command r
        chunks = [{"is_finished": False, "event_type": "text-generation", "text": d} for d in deltas]
        chunks.append({"is_finished": True, "event_type": "stream-end", "finish_reason": "COMPLETE"})
    chunks[-1]["amazon-bedrock-invocationMetrics"] = _metrics(reply)
    return chunks


# -- the server ---------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        owner = self.server.owner
        match = re.fullmatch(r"/model/(?P<model>[^/]+)/(?P<action>[a-z-]+)", self.path.split("?")[0])
        if match is None:
            self._error(404, "UnknownOperationException", "no such route")
            return
        model = unquote(match.group("model"))
        action = match.group("action")
        owner.requests.append((action, model, dict(self.headers), raw))
        failure = owner.take_failure()
        if failure is not None:
            self._fail(failure)
            return
        try:
            request = json.loads(raw) if raw else {}
        except ValueError:
            request = {}
        reply = reply_for(model, action)
        owner.replies.append(reply)
        if action == "converse":
            self._json(200, converse_body(reply))
        elif action == "converse-stream":
            self._stream(converse_stream_events(reply, _midstream(model)))
        elif action == "invoke":
            headers = {}
            if "noheaders" not in model:
                skew = 1000 if "headerskew" in model else 0  # Bedrock's count differs from the body's
                headers["X-Amzn-Bedrock-Input-Token-Count"] = str(reply.input_tokens + skew)
                headers["X-Amzn-Bedrock-Output-Token-Count"] = str(reply.output_tokens)
                if reply.cache_read is not None:
                    headers["X-Amzn-Bedrock-Cache-Read-Input-Token-Count"] = str(reply.cache_read)
                    headers["X-Amzn-Bedrock-Cache-Write-Input-Token-Count"] = str(reply.cache_write)
            headers["X-Amzn-Bedrock-Invocation-Latency"] = "321"
            self._json(200, invoke_body(reply, request if isinstance(request, dict) else {}), headers)
        elif action == "invoke-with-response-stream":
            chunks = invoke_stream_chunks(reply)
            fail = _midstream(model)
            events = []
            for index, chunk in enumerate(chunks):
                events.append(es.chunk_event(chunk))
                if fail and index == 1:
                    events.append(es.exception(fail, "The model stopped mid-stream."))
                    break
            self._stream(events, {"X-Amzn-Bedrock-Content-Type": "application/json"})
        else:
            self._error(404, "UnknownOperationException", action)

    # -- writing -----------------------------------------------------------------------------------------

    def _headers(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("x-amzn-RequestId", f"req-{len(self.server.owner.requests):04d}")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self._headers(status, {"Content-Type": "application/json", "Content-Length": str(len(data)), **(headers or {})})
        self.wfile.write(data)

    def _error(self, status: int, code: str, message: str | None, headers: dict[str, str] | None = None) -> None:
        body: dict[str, Any] = {"message": AWS_MESSAGES.get(code, "injected failure") if message is None else message}
        if code == "ModelErrorException":
            body.update({"originalStatusCode": 500, "resourceName": "model"})
        error_type = {"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
        self._json(status, body, {**error_type, **(headers or {})})

    def _fail(self, failure: Failure) -> None:
        if failure.kind == "stall":  # the client's read timeout fires first; then hang up without answering
            self.server.owner.closing.wait(failure.stall_s)
            self.close_connection = True
            return
        if failure.kind == "drop":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if failure.kind == "truncate":
            data = json.dumps(invoke_body(reply_for("anthropic.x", "invoke"), {})).encode()
            headers = {"Content-Type": "application/json", "Content-Length": str(len(data) + 100)}
            headers["X-Amzn-Bedrock-Input-Token-Count"] = str(INPUT_TOKENS)
            headers["X-Amzn-Bedrock-Output-Token-Count"] = str(len(REPLY_WORDS))
            self._headers(200, headers)
            self.wfile.write(data)
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        hints = {}
        if failure.retry_after_ms is not None:
            hints["x-amz-retry-after"] = str(failure.retry_after_ms)
        if failure.retry_after_s is not None:
            hints["Retry-After"] = str(failure.retry_after_s)
        self._error(failure.status, failure.code, failure.message, hints)

    def _stream(self, events: list[bytes], headers: dict[str, str] | None = None) -> None:
        self._headers(
            200,
            {"Content-Type": es.EVENTSTREAM_CONTENT_TYPE, "Transfer-Encoding": "chunked", **(headers or {})},
        )
        delay = self.server.owner.chunk_delay
        for event in events:
            self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            self.wfile.flush()
            if delay:
                threading.Event().wait(delay)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def _midstream(model: str) -> str | None:
    if "midstream-throttling" in model:
        return "throttlingException"
    if "midstream-error" in model:
        return "modelStreamErrorException"
    return None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: BedrockServer


class BedrockServer:
    """``with BedrockServer() as server: boto3.client("bedrock-runtime", endpoint_url=server.url, ...)``."""

    def __init__(self, chunk_delay: float = 0.0) -> None:
        self.chunk_delay = chunk_delay
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.replies: list[Reply] = []
        self._failures: deque[Failure] = deque()
        self.closing = threading.Event()  # ends stalls early when the server shuts down
        self._lock = threading.Lock()
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def fail_next(
        self,
        status: int,
        code: str,
        times: int = 1,
        kind: str = "error",
        message: str | None = None,
        *,
        retry_after_ms: int | None = None,
        retry_after_s: int | None = None,
        stall_s: float = 1.0,
    ) -> None:
        """Fail the next ``times`` requests (whatever their operation): ``kind`` "error" answers
        ``status`` with AWS error ``code``; "truncate", "drop" and "stall" are transport faults."""
        failure = Failure(status, code, message, kind, retry_after_ms, retry_after_s, stall_s)
        with self._lock:
            self._failures.extend(failure for _ in range(times))

    def take_failure(self) -> Failure | None:
        with self._lock:
            return self._failures.popleft() if self._failures else None

    def reset(self) -> None:
        with self._lock:
            self._failures.clear()
        self.requests.clear()
        self.replies.clear()

    def __enter__(self) -> BedrockServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()


def make_client(server: BedrockServer, attempts: int = 1, mode: str = "standard", **config: Any) -> Any:
    """A real boto3 bedrock-runtime client aimed at ``server`` (fake credentials, us-east-1; ``attempts``
    counts the first try, so the default makes botocore retry nothing)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "bedrock-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key="test-secret",
        config=Config(retries={"mode": mode, "total_max_attempts": attempts}, **config),
    )
