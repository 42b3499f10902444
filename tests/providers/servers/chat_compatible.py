"""A local server speaking the Chat Completions wire format as Mistral and Groq serve it.

Mistral (``POST /v1/chat/completions``, ``/v1/embeddings``) and Groq (``POST /openai/v1/...``) both
answer in OpenAI's shapes: a JSON body, or Server-Sent Events ``data: {...}`` ending with
``data: [DONE]``. They differ in the details this server is parameterised by (:class:`Profile`):
the URL prefix, where a stream's usage arrives (Mistral: ``usage`` on the last chunk; Groq:
``x_groq.usage`` on the last chunk), provider-only fields, and the error bodies.

Replies are deterministic so tests can recompute every figure: :func:`prompt_tokens`,
:func:`reply_words`. The model name picks behaviour: ``error-<status>`` answers with that status and
the provider's error body; ``midstream-error`` breaks the stream after two chunks the way the
provider does (Groq: an ``error`` event; Mistral: the connection drops); ``slow-...`` pauses between
chunks. The request picks the rest: with ``tools`` the reply is a call of the first tool; a prompt
containing ``[cached]`` reports :data:`CACHED_TOKENS` cached prompt tokens; one containing
``[no-usage]`` reports no usage (so token estimates are used); ``reasoning_format="parsed"`` (Groq)
adds :data:`REASONING` as the message's ``reasoning`` (streamed: a first chunk of its own).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.providers.servers.faults import Dialect, Faults, send_health_headers, serve_fault

HOST = "127.0.0.1"
REPLY_PREFIX = "Echo"
CACHED_TOKENS = 4
DIMENSIONS = 8
SLOW_DELAY = 0.25
TOOL_NAME = "get_weather"
TOOL_ARGUMENTS = '{"city": "Paris"}'
REASONING = "The user wants an echo."


@dataclass(frozen=True)
class Profile:
    """What differs between the providers on the wire."""

    name: str
    prefix: str  # URL path before /chat/completions and /embeddings
    usage_in_x_groq: bool  # Groq: a stream's usage is on the last chunk's x_groq.usage
    error_body: Callable[[int], dict[str, Any]]
    midstream_event: bool  # Groq sends an error event; Mistral's connection just drops
    extra_fields: Callable[[int], dict[str, Any]]  # provider-only fields on results and chunks
    dialect: Dialect | None = None  # rate-limit / request-id headers and armed faults (servers/faults.py)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _prompt(body: dict[str, Any]) -> str:
    return " ".join(_text_of(m.get("content")) for m in body.get("messages") or [])


def _tool_name(body: dict[str, Any]) -> str:
    tools = body.get("tools") or [{}]
    return str(tools[0].get("function", {}).get("name", TOOL_NAME))


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """Prompt tokens the server reports: words plus three per message."""
    return sum(len(_text_of(m.get("content")).split()) + 3 for m in messages)


def reply_words(messages: list[dict[str, Any]]) -> list[str]:
    """The reply, word by word: ``Echo`` and the last message's first five words, or ``Echo`` and
    N-1 words ``more`` when the last message asks for ``chunks=N`` (benchmarks vary stream length)."""
    last = _text_of(messages[-1].get("content")) if messages else ""
    asked = re.search(r"chunks=(\d+)", last)
    if asked:
        return [REPLY_PREFIX, *["more"] * (int(asked.group(1)) - 1)]
    return [REPLY_PREFIX, *last.split()[:5]]


def reply_text(messages: list[dict[str, Any]]) -> str:
    return " ".join(reply_words(messages))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers, body and each SSE event go out at once, not after a 40 ms ACK delay
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        owner = self.server.owner
        owner.requests.append((self.path, body))
        number, fault = owner.faults.take() if owner.faults is not None else (None, None)
        if fault is not None:
            return serve_fault(self, owner.faults, number, fault)
        self._number = number
        profile = owner.profile
        model = str(body.get("model", ""))
        if model.startswith("error-"):
            status = int(model.split("-")[1])
            return self._json(status, profile.error_body(status))
        if self.path == f"{profile.prefix}/chat/completions":
            return self._chat(body, model)
        if self.path == f"{profile.prefix}/embeddings":
            return self._embeddings(body, model)
        return self._json(404, profile.error_body(404))

    # -- responses --------------------------------------------------------------------------------

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        send_health_headers(self, self.server.owner.faults, getattr(self, "_number", None))
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _usage(self, body: dict[str, Any], model: str, completion: int) -> dict[str, Any]:
        prompt = prompt_tokens(body.get("messages") or [])
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        if "[cached]" in _prompt(body):
            usage["prompt_tokens_details"] = {"cached_tokens": CACHED_TOKENS}
        return usage

    def _chat(self, body: dict[str, Any], model: str) -> None:
        owner = self.server.owner
        profile = owner.profile
        number = owner.next_id()
        messages = body.get("messages") or []
        words = reply_words(messages)
        tools = bool(body.get("tools"))
        reasoning = body.get("reasoning_format") == "parsed"  # Groq: reasoning apart from the answer
        head = {"id": f"cmpl-{number}", "created": 1_700_000_000, "model": model, **profile.extra_fields(number)}
        finish = "tool_calls" if tools else "stop"
        usage = None if "[no-usage]" in _prompt(body) else self._usage(body, model, len(words))
        tool_call = {
            "id": "call_1",
            "type": "function",
            "index": 0,
            "function": {"name": _tool_name(body), "arguments": TOOL_ARGUMENTS},
        }
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": "" if tools else " ".join(words)}
            if tools:
                message["tool_calls"] = [tool_call]
            if reasoning:
                message["reasoning"] = REASONING
            result = {
                **head,
                "object": "chat.completion",
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            }
            if usage is not None:
                result["usage"] = usage
            return self._json(200, result)
        self.send_response(200)
        send_health_headers(self, owner.faults, self._number)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

        def chunk(delta: dict[str, Any], finish_reason: str | None = None, last: bool = False) -> dict[str, Any]:
            item = {
                **head,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }
            if last and usage is not None:
                if profile.usage_in_x_groq:
                    item["x_groq"] = {**item.get("x_groq", {}), "usage": usage}
                else:
                    item["usage"] = usage
            return item

        if tools:
            events = [chunk({"role": "assistant", "content": "", "tool_calls": [tool_call]})]
        else:
            events = [chunk({"role": "assistant", "content": w if i == 0 else " " + w}) for i, w in enumerate(words)]
        if reasoning:
            events.insert(0, chunk({"role": "assistant", "reasoning": REASONING}))
        events.append(chunk({"content": ""}, finish, last=True))
        delay = SLOW_DELAY if model.startswith("slow-") else 0.0
        try:
            for index, event in enumerate(events):
                if model == "midstream-error" and index == 2:
                    if profile.midstream_event:
                        error = {"error": {"message": "Service Unavailable", "type": "internal_server_error"}}
                        self._write(f"event: error\ndata: {json.dumps(error)}\n\n".encode())
                        self._write(b"")
                    else:
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(2)  # no final chunk: the client sees a broken body
                    return
                self._write(f"data: {json.dumps(event)}\n\n".encode())
                if delay:
                    time.sleep(delay)
            self._write(b"data: [DONE]\n\n")
            self._write(b"")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _write(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _embeddings(self, body: dict[str, Any], model: str) -> None:
        owner = self.server.owner
        raw = body.get("inputs", body.get("input"))
        inputs = [raw] if isinstance(raw, str) else list(raw or [])
        tokens = sum(len(str(text).split()) for text in inputs)
        self._json(
            200,
            {
                "id": f"emb-{owner.next_id()}",
                "object": "list",
                "model": model,
                "data": [
                    {"object": "embedding", "index": i, "embedding": [0.1 * (i + 1)] * DIMENSIONS}
                    for i in range(len(inputs))
                ],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0},
            },
        )


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: ChatServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client dropping its keep-alive connection is normal; anything else is printed."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


class ChatServer:
    """``with ChatServer(profile) as server:`` serves on 127.0.0.1 at ``server.base_url``."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.faults = Faults(profile.dialect) if profile.dialect is not None else None
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._counter = 0
        self._lock = threading.Lock()
        self._httpd = _HTTPServer((HOST, 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def next_id(self) -> int:
        with self._lock:
            self._counter += 1
            return self._counter

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def root_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def __enter__(self) -> ChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
