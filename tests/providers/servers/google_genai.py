"""A local server speaking the Gemini REST wire format, for the google-genai tests and bench.

The real ``google.genai`` client (its own httpx stack) is pointed at it with
``HttpOptions(base_url=server.base_url)``. It answers what the SDK sends:

* Gemini Developer API: ``POST /v1beta/models/{model}:generateContent``,
  ``:streamGenerateContent?alt=sse`` (``data: {...}`` SSE events) and ``:batchEmbedContents``;
* Vertex AI: the same methods under ``/v1beta1/.../publishers/google/models/{model}:...``, plus
  ``:predict`` (text embedding models, whose predictions carry ``statistics.token_count``);
* errors as Google APIs send them: ``{"error": {"code", "message", "status"}}`` with the HTTP status,
  and mid-stream as an SSE event holding the same object.

Behaviour is chosen by the model name, so a test states what it wants in the call itself:
``error-429``/``error-400``/``error-500``, ``midstream-error`` (two chunks, then an error event),
``no-usage`` (no ``usageMetadata``), ``tool-call`` (a ``functionCall`` part, or text once the request
returns the function's result), ``thinking-model``
(thoughts, cached and tool-use prompt tokens). A prompt containing ``chunks=N`` streams N text chunks;
``[big]`` reports a 250,000-token prompt (Gemini's long-context price tier). Every answer is
deterministic, and :attr:`GeminiServer.requests` keeps what was received, for assertions.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.providers.servers.faults import GOOGLE, Faults, serve_fault

_PATH = re.compile(r"^/(?P<version>v1[a-z0-9]*)/(?P<prefix>.*?)models/(?P<model>[^:/]+):(?P<method>[A-Za-z]+)")
_CHUNKS = re.compile(r"chunks=(\d+)")
_STATUS = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}

DEFAULT_CHUNKS = 4
BIG_PROMPT_TOKENS = 250_000
EMBEDDING_DIMENSIONS = 8


def _texts(value: Any) -> list[str]:
    """Every ``text`` string in a request body, in order."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "text" and isinstance(item, str):
                found.append(item)
            else:
                found.extend(_texts(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_texts(item))
    return found


def prompt_tokens_for(body: dict[str, Any]) -> int:
    """The prompt size the server reports: one token per whitespace-separated word of the request."""
    words = sum(len(text.split()) for text in _texts(body.get("contents")) + _texts(body.get("systemInstruction")))
    if any("[big]" in text for text in _texts(body)):
        return BIG_PROMPT_TOKENS
    return max(words, 1)


def answer_words(chunks: int) -> list[str]:
    """The streamed text pieces: two tokens each."""
    return [f"part{index} ok " for index in range(chunks)]


def usage_for(model: str, prompt: int, output: int) -> dict[str, Any] | None:
    if model == "no-usage":
        return None
    usage: dict[str, Any] = {"promptTokenCount": prompt, "candidatesTokenCount": output}
    total = prompt + output
    if model == "thinking-model" or model.startswith("gemini-2.5"):
        usage["thoughtsTokenCount"] = 11
        usage["cachedContentTokenCount"] = min(prompt, 3)
        usage["toolUsePromptTokenCount"] = 5
        total += 16
    usage["totalTokenCount"] = total
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    return usage


class _Handler(BaseHTTPRequestHandler):
    server: GeminiServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stalls

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        match = _PATH.match(self.path)
        with self.server.lock:
            self.server.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
            self.server.counter += 1
            serial = self.server.counter
        if match is None:
            self._error(404, f"no route for {self.path}")
            return
        number, fault = self.server.faults.take()
        if fault is not None:
            serve_fault(self, self.server.faults, number, fault)
            return
        model, method = match["model"], match["method"]
        if model.startswith("error-"):
            code = int(model.split("-", 1)[1])
            self._error(code, f"simulated {code} for {model}")
            return
        if method == "generateContent":
            self._json(200, self._generate(model, body, serial))
        elif method == "streamGenerateContent":
            self._stream(model, body, serial)
        elif method in ("batchEmbedContents", "embedContent"):
            self._json(200, self._embed(model, body, batch=method == "batchEmbedContents"))
        elif method == "predict":
            self._json(200, self._predict(body))
        else:
            self._error(404, f"method {method} is not simulated")

    # -- answers ---------------------------------------------------------------------------------

    def _generate(self, model: str, body: dict[str, Any], serial: int) -> dict[str, Any]:
        prompt = prompt_tokens_for(body)
        if model == "tool-call" and not _answers_a_function_call(body):
            parts: list[dict[str, Any]] = [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]
            output = 7
        else:
            text = "".join(answer_words(_chunk_count(body)))
            parts = [{"text": text}]
            output = 2 * _chunk_count(body)
        response: dict[str, Any] = {
            "candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": 0}],
            "modelVersion": model,
            "responseId": f"resp-{serial}",
        }
        usage = usage_for(model, prompt, output)
        if usage is not None:
            response["usageMetadata"] = usage
        with self.server.lock:
            self.server.usages.append(usage)
        return response

    def _stream(self, model: str, body: dict[str, Any], serial: int) -> None:
        prompt = prompt_tokens_for(body)
        chunks = 2 if model == "midstream-error" else _chunk_count(body)
        delay = self.server.chunk_delay
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        try:
            for index, piece in enumerate(answer_words(chunks)):
                candidate: dict[str, Any] = {"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}
                last = index == chunks - 1
                if last and model != "midstream-error":
                    candidate["finishReason"] = "STOP"
                event: dict[str, Any] = {
                    "candidates": [candidate],
                    "modelVersion": model,
                    "responseId": f"resp-{serial}",
                }
                # Like the real API: every chunk carries the running usage of the call so far.
                usage = usage_for(model, prompt, 2 * (index + 1))
                if usage is not None:
                    event["usageMetadata"] = usage
                self._chunk(f"data: {json.dumps(event)}\r\n\r\n".encode())
                if delay and not last:
                    time.sleep(delay)
            if model == "midstream-error":
                error = {"error": {"code": 500, "message": "simulated mid-stream failure", "status": "INTERNAL"}}
                self._chunk(f"data: {json.dumps(error)}\r\n\r\n".encode())
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError):  # the client went away: a test of that very path
            self.close_connection = True

    def _embed(self, model: str, body: dict[str, Any], *, batch: bool) -> dict[str, Any]:
        requests = body.get("requests") if batch else [body]
        vectors = [{"values": _vector(len(_texts(r)))} for r in requests or ()]
        response: dict[str, Any] = {"embeddings": vectors} if batch else {"embedding": vectors[0]}
        if model != "no-usage" and not model.startswith("text-embedding"):
            words = sum(len(text.split()) for text in _texts(requests))
            response["usageMetadata"] = {"promptTokenCount": words, "totalTokenCount": words}
        return response

    def _predict(self, body: dict[str, Any]) -> dict[str, Any]:
        predictions = []
        for instance in body.get("instances") or ():
            words = len(str(instance.get("content", "")).split())
            predictions.append(
                {"embeddings": {"values": _vector(words), "statistics": {"token_count": words, "truncated": False}}}
            )
        return {"predictions": predictions, "metadata": {"billableCharacterCount": 42}}

    # -- framing ---------------------------------------------------------------------------------

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json; charset=UTF-8")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, code: int, message: str) -> None:
        status = _STATUS.get(code, "UNKNOWN")
        self._json(code, {"error": {"code": code, "message": message, "status": status}})

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _answers_a_function_call(body: dict[str, Any]) -> bool:
    """The request's last turn returns a function's result (automatic function calling's second request)."""
    contents = body.get("contents") or [{}]
    return any("functionResponse" in part for part in contents[-1].get("parts") or ())


def _chunk_count(body: dict[str, Any]) -> int:
    for text in _texts(body.get("contents")):
        match = _CHUNKS.search(text)
        if match:
            return int(match.group(1))
    return DEFAULT_CHUNKS


def _vector(seed: int) -> list[float]:
    return [round((seed + index) / 10, 3) for index in range(EMBEDDING_DIMENSIONS)]


class GeminiServer(ThreadingHTTPServer):
    """The simulated Gemini/Vertex endpoint on 127.0.0.1; use as a context manager."""

    daemon_threads = True

    def __init__(self, chunk_delay: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.chunk_delay = chunk_delay
        self.faults = Faults(GOOGLE)  # provider-health faults (servers/faults.py); Gemini sends no quota headers
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.counter = 0
        self.clients: list[Any] = []
        self.usages: list[dict[str, Any] | None] = []  # usageMetadata of each generateContent answer
        self._thread = threading.Thread(target=self.serve_forever, name="gemini-server", daemon=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def __enter__(self) -> GeminiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
        self.server_close()


# -- clients of the real SDK pointed at the server ---------------------------------------------------


def _fake_credentials() -> Any:
    """Google credentials that always hold a token: Vertex mode sends ``Authorization: Bearer`` with it
    and never reaches for the metadata server or a key file."""
    import google.auth.credentials

    class FakeCredentials(google.auth.credentials.Credentials):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.token = "fake-token"

        def refresh(self, request: Any) -> None:
            self.token = "fake-token"

        @property
        def expired(self) -> bool:
            return False

        @property
        def valid(self) -> bool:
            return True

    return FakeCredentials()


def client_for(server: GeminiServer, *, vertex: bool = False) -> Any:
    """A ``google.genai.Client`` on the SDK's own HTTP stack, aimed at ``server``, with retries off (a
    simulated 429/500 must reach the application once). ``vertex``: a Vertex AI client (project,
    location and credentials), which sends the ``projects/.../publishers/google/models`` paths."""
    from google import genai
    from google.genai import types

    retry = getattr(types, "HttpRetryOptions", None)  # google-genai < 1.15 never retried
    extra = {"retry_options": retry(attempts=1)} if retry is not None else {}
    options = types.HttpOptions(base_url=server.base_url, **extra)
    if vertex:
        client = genai.Client(
            vertexai=True,
            project="test-project",
            location="us-central1",
            credentials=_fake_credentials(),
            http_options=options,
        )
    else:
        client = genai.Client(api_key="test-api-key", http_options=options)
    # A collected Client closes its HTTP client, which ``client_for(s).models.x(...)`` would hit
    # mid-call: the server keeps its clients alive.
    server.clients.append(client)
    return client


_VOLATILE = frozenset({"response_id", "sdk_http_response", "create_time"})


def observed(item: Any) -> dict[str, Any]:
    """A response or chunk as the application sees it, minus what differs between two identical
    requests (the server's response counter, the HTTP date header)."""
    data = item.model_dump(mode="json", exclude_none=True)
    return {"class": type(item).__name__, "data": {k: v for k, v in data.items() if k not in _VOLATILE}}
