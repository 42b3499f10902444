"""A local server speaking Cohere's v2 REST wire format, for the cohere tests and bench.

The real ``cohere`` client (``ClientV2(base_url=server.base_url)``, its own httpx stack) is pointed at
it. It answers:

* ``POST /v2/chat``: a ``V2ChatResponse`` JSON body, or with ``"stream": true`` a ``text/event-stream``
  of ``event: <type>`` / ``data: {json}`` SSE events (message-start, content-start, content-delta...,
  content-end, message-end with ``finish_reason`` and ``usage``), as the SDK's ``EventSource`` parses;
* ``POST /v2/embed``: an ``embeddings_by_type`` body whose ``meta`` holds ``billed_units``;
* errors as Cohere sends them: ``{"id", "message"}`` with the HTTP status (the SDK raises
  ``TooManyRequestsError`` for 429, ``BadRequestError`` for 400, ``InternalServerError`` for 500).

Behaviour is chosen by the model name: ``error-429``/``error-400``/``error-500``, ``midstream-error``
(two events, then the connection drops mid-body), ``no-usage`` (no ``usage``), ``tool-call`` (a tool
plan and a tool call), ``tokens-only`` / ``billed-only`` (one of the two usage blocks). A prompt
containing ``chunks=N`` streams N content deltas. Usage is deterministic: billed input = the prompt's
words, processed input = billed + :data:`TEMPLATE_TOKENS` (Cohere's prompt template, which it does not
bill), output = two per delta.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from tests.providers.servers.faults import COHERE, Faults, send_health_headers
from tests.providers.servers.local import LocalServer, QuietHandler

_CHUNKS = re.compile(r"chunks=(\d+)")
DEFAULT_CHUNKS = 3
TEMPLATE_TOKENS = 60
EMBEDDING_DIMENSIONS = 8


def _texts(value: Any) -> list[str]:
    found: list[str] = []
    if isinstance(value, str):
        found.append(value)
    elif isinstance(value, dict):
        for key in ("content", "text"):
            if key in value:
                found.extend(_texts(value[key]))
    elif isinstance(value, list):
        for item in value:
            found.extend(_texts(item))
    return found


def prompt_words(messages: Any) -> int:
    return max(sum(len(text.split()) for text in _texts(messages)), 1)


def chunks_in(messages: Any) -> int:
    for text in _texts(messages):
        match = _CHUNKS.search(text)
        if match:
            return int(match.group(1))
    return DEFAULT_CHUNKS


def deltas(chunks: int) -> list[str]:
    return [f"part{index} ok " for index in range(chunks)]


def usage_for(model: str, billed_input: int, output: int) -> dict[str, Any] | None:
    if model == "no-usage":
        return None
    billed = {"input_tokens": billed_input, "output_tokens": output}
    tokens = {"input_tokens": billed_input + TEMPLATE_TOKENS, "output_tokens": output}
    if model == "tokens-only":
        return {"tokens": tokens}
    if model == "billed-only":
        return {"billed_units": billed}
    return {"billed_units": billed, "tokens": tokens}


_TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}


class _Handler(QuietHandler):
    server: CohereServer

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        send_health_headers(self, self.server.faults, getattr(self, "_number", None))
        self.send_header("Content-Type", "application/json")
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
            self._json(status, {"id": "err-1", "message": f"simulated error {status}"})
            return
        if self.path == "/v2/chat":
            if body.get("stream"):
                self._stream(model, body)
            else:
                self._chat(model, body)
        elif self.path == "/v2/embed":
            self._embed(model, body)
        else:
            self._json(404, {"message": f"no route {self.path}"})

    def _next_id(self) -> str:
        with self.server.lock:
            self.server.counter += 1
            return f"resp-{self.server.counter}"

    def _chat(self, model: str, body: dict[str, Any]) -> None:
        pieces = deltas(chunks_in(body.get("messages")))
        message: dict[str, Any] = {"role": "assistant"}
        finish = "COMPLETE"
        if model == "tool-call":
            message["tool_plan"] = "I will look up the weather."
            message["tool_calls"] = [_TOOL_CALL]
            finish = "TOOL_CALL"
        else:
            message["content"] = [{"type": "text", "text": "".join(pieces)}]
        response: dict[str, Any] = {"id": self._next_id(), "finish_reason": finish, "message": message}
        usage = usage_for(model, prompt_words(body.get("messages")), 2 * len(pieces))
        if usage is not None:
            response["usage"] = usage
        self._json(200, response)

    def _stream(self, model: str, body: dict[str, Any]) -> None:
        pieces = deltas(chunks_in(body.get("messages")))
        events: list[dict[str, Any]] = [
            {
                "id": self._next_id(),
                "type": "message-start",
                "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": []}},
            },
        ]
        finish = "COMPLETE"
        if model == "tool-call":
            finish = "TOOL_CALL"
            events.append({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will look it up."}}})
            events.append(
                {
                    "type": "tool-call-start",
                    "index": 0,
                    "delta": {
                        "message": {"tool_calls": {**_TOOL_CALL, "function": {"name": "get_weather", "arguments": ""}}}
                    },
                }
            )
            events.append(
                {
                    "type": "tool-call-delta",
                    "index": 0,
                    "delta": {"message": {"tool_calls": {"function": {"arguments": '{"city": "Oslo"}'}}}},
                }
            )
            events.append({"type": "tool-call-end", "index": 0})
        else:
            events.append(
                {
                    "type": "content-start",
                    "index": 0,
                    "delta": {"message": {"content": {"type": "text", "text": ""}}},
                }
            )
            for piece in pieces:
                events.append({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": piece}}}})
            events.append({"type": "content-end", "index": 0})
        end: dict[str, Any] = {"finish_reason": finish}
        usage = usage_for(model, prompt_words(body.get("messages")), 2 * len(pieces))
        if usage is not None:
            end["usage"] = usage
        events.append({"type": "message-end", "delta": end})

        self.send_response(200)
        send_health_headers(self, self.server.faults, self._number)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for index, event in enumerate(events):
            if model == "midstream-error" and index == 2:
                self.close_connection = True  # the body ends without its last chunk: a dropped stream
                self.wfile.flush()
                return
            data = f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
            if self.server.chunk_delay:
                time.sleep(self.server.chunk_delay)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _embed(self, model: str, body: dict[str, Any]) -> None:
        texts = body.get("texts") or []
        words = prompt_words(texts)
        types = body.get("embedding_types") or ["float"]
        vectors = [[round(0.1 * (i + 1) * (j + 1), 3) for j in range(EMBEDDING_DIMENSIONS)] for i in range(len(texts))]
        embeddings = {
            kind: vectors if kind == "float" else [[1] * EMBEDDING_DIMENSIONS for _ in texts] for kind in types
        }
        meta: dict[str, Any] = {"api_version": {"version": "2"}}
        if model != "no-usage":
            meta["billed_units"] = {"input_tokens": words}
        self._json(
            200,
            {
                "id": self._next_id(),
                "response_type": "embeddings_by_type",
                "embeddings": embeddings,
                "texts": texts,
                "meta": meta,
            },
        )


class CohereServer(LocalServer):
    """Cohere's v2 REST API on 127.0.0.1 (see :class:`LocalServer`); health faults and Cohere's quota headers."""

    def __init__(self, chunk_delay: float = 0.0) -> None:
        super().__init__(_Handler, Faults(COHERE), chunk_delay)


def client_for(base_url: str, *, asynchronous: bool = False) -> Any:
    """A real ``cohere.ClientV2`` (or ``AsyncClientV2``) for ``base_url``, without retries where the SDK
    version lets a client say so (``max_retries`` arrived after 5.10, the oldest version supported)."""
    import inspect

    import cohere

    cls = cohere.AsyncClientV2 if asynchronous else cohere.ClientV2
    kwargs: dict[str, Any] = {"api_key": "test", "base_url": base_url}
    if "max_retries" in inspect.signature(cls.__init__).parameters:
        kwargs["max_retries"] = 0
    return cls(**kwargs)
