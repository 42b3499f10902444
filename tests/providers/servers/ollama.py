"""A local server speaking Ollama's REST wire format, for the ollama tests and bench.

The real ``ollama`` client (``Client(host=server.base_url)``, its own httpx stack) is pointed at it.
It answers ``POST /api/chat``, ``/api/generate``, ``/api/embed`` and the deprecated ``/api/embeddings``:
one JSON body, or with ``"stream": true`` newline-delimited JSON parts (``application/x-ndjson``), the
last with ``done: true``, ``done_reason`` and the counts and timings (nanoseconds). Errors are what
Ollama sends: ``{"error": "..."}`` with the HTTP status, and mid-stream an ``{"error": ...}`` line in a
200 response (the SDK raises ``ResponseError`` for both).

Behaviour is chosen by the model name: ``error-404``/``error-429``/``error-500``, ``midstream-error``
(two parts, then an error line), ``tool-call`` (a tool call, reason ``stop``), ``no-usage`` (no counts),
``length`` (``done_reason: length``). A prompt containing ``chunks=N`` streams N text parts. Counts are
deterministic: prompt = the prompt's words + :data:`TEMPLATE_TOKENS`, output = two per part.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from tests.providers.servers.faults import OLLAMA, Faults
from tests.providers.servers.local import LocalServer, QuietHandler

_CHUNKS = re.compile(r"chunks=(\d+)")
DEFAULT_CHUNKS = 3
TEMPLATE_TOKENS = 10
EMBEDDING_DIMENSIONS = 8
CREATED_AT = "2026-01-01T00:00:00.000000Z"
TIMINGS = {
    "total_duration": 2_500_000_000,
    "load_duration": 1_000_000_000,
    "prompt_eval_duration": 500_000_000,
    "eval_duration": 900_000_000,
}


def _texts(value: Any) -> list[str]:
    found: list[str] = []
    if isinstance(value, str):
        found.append(value)
    elif isinstance(value, dict):
        for key in ("content", "prompt", "system"):
            if key in value:
                found.extend(_texts(value[key]))
    elif isinstance(value, list):
        for item in value:
            found.extend(_texts(item))
    return found


def prompt_tokens(body: dict[str, Any]) -> int:
    texts = _texts(body.get("messages")) + _texts(body.get("prompt")) + _texts(body.get("system"))
    texts += _texts(body.get("input"))
    return sum(len(text.split()) for text in texts) + TEMPLATE_TOKENS


def pieces_for(body: dict[str, Any]) -> list[str]:
    count = DEFAULT_CHUNKS
    for text in _texts(body.get("messages")) + _texts(body.get("prompt")):
        match = _CHUNKS.search(text)
        if match:
            count = int(match.group(1))
    return [f"part{index} ok " for index in range(count)]


_TOOL_CALL = {"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}


class _Handler(QuietHandler):
    server: OllamaServer

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # http.server calls it by this name
        body = self.take_request()
        if body is None:  # a provider-health fault was served
            return
        model = str(body.get("model", ""))
        if model.startswith("error-"):
            status = int(model.split("-", 1)[1])
            message = f"model '{model}' not found" if status == 404 else f"simulated error {status}"
            self._json(status, {"error": message})
            return
        kind = self.path.rsplit("/", 1)[-1]
        if kind in ("embed", "embeddings"):
            self._embed(kind, model, body)
        elif kind in ("chat", "generate"):
            if body.get("stream"):
                self._stream(kind, model, body)
            else:
                self._complete(kind, model, body)
        else:
            self._json(404, {"error": f"no route {self.path}"})

    def _final(self, model: str, body: dict[str, Any], output: int) -> dict[str, Any]:
        final: dict[str, Any] = {"done": True, "done_reason": "length" if model == "length" else "stop"}
        if model != "no-usage":
            final.update(TIMINGS, prompt_eval_count=prompt_tokens(body), eval_count=output)
        return final

    def _part(self, kind: str, model: str, text: str, **extra: Any) -> dict[str, Any]:
        part: dict[str, Any] = {"model": model, "created_at": CREATED_AT}
        if kind == "chat":
            part["message"] = {"role": "assistant", "content": text, **extra}
        else:
            part["response"] = text
        return part

    def _complete(self, kind: str, model: str, body: dict[str, Any]) -> None:
        pieces = pieces_for(body)
        extra = {"tool_calls": [_TOOL_CALL]} if model == "tool-call" else {}
        text = "" if model == "tool-call" else "".join(pieces)
        self._json(200, {**self._part(kind, model, text, **extra), **self._final(model, body, 2 * len(pieces))})

    def _stream(self, kind: str, model: str, body: dict[str, Any]) -> None:
        pieces = pieces_for(body)
        parts = [{**self._part(kind, model, piece), "done": False} for piece in pieces]
        if model == "tool-call" and kind == "chat":
            parts = [{**self._part(kind, model, "", tool_calls=[_TOOL_CALL]), "done": False}]
        parts.append({**self._part(kind, model, ""), **self._final(model, body, 2 * len(pieces))})
        if model == "midstream-error":
            parts = [*parts[:2], {"error": "simulated failure mid-stream"}]
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for part in parts:
            data = json.dumps(part).encode() + b"\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
            if self.server.chunk_delay:
                time.sleep(self.server.chunk_delay)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _embed(self, kind: str, model: str, body: dict[str, Any]) -> None:
        items = body.get("input") if kind == "embed" else body.get("prompt")
        texts = [items] if isinstance(items, str) else list(items or [])
        vectors = [[round(0.1 * (i + 1) * (j + 1), 3) for j in range(EMBEDDING_DIMENSIONS)] for i in range(len(texts))]
        if kind == "embeddings":
            self._json(200, {"embedding": vectors[0] if vectors else []})
            return
        response: dict[str, Any] = {"model": model, "embeddings": vectors}
        if model != "no-usage":
            response.update(
                total_duration=TIMINGS["total_duration"],
                load_duration=TIMINGS["load_duration"],
                prompt_eval_count=prompt_tokens(body),
            )
        self._json(200, response)


class OllamaServer(LocalServer):
    """Ollama's REST API on 127.0.0.1 (see :class:`LocalServer`); Ollama sends no quota headers."""

    def __init__(self, chunk_delay: float = 0.0) -> None:
        super().__init__(_Handler, Faults(OLLAMA), chunk_delay)
