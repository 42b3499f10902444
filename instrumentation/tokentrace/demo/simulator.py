"""A local, deterministic, OpenAI-compatible HTTP server.

Why this exists: the instrumentation has to be proven against the *real* ``openai`` SDK (its response
parsing, retries, streaming wrappers and Azure URL rewriting), not against mocks of it, and the
``tokentrace demo`` command needs traffic that looks like production without network access or API
keys. So this module speaks OpenAI's actual wire format (JSON bodies, Server-Sent Events, error
envelopes, rate-limit headers) while answering from simple deterministic rules that a test can
recompute: :func:`reply_text`, :func:`count_prompt_tokens` and :func:`count_completion_tokens`.

Endpoints (POST): ``/v1/chat/completions``, ``/v1/responses``, ``/v1/embeddings``, ``/v1/completions``,
the Azure shapes ``/openai/deployments/{deployment}/{endpoint}?api-version=...``, ``/openai/{endpoint}``
and ``/openai/v1/{endpoint}``; GET ``/v1/models`` for tools that probe the server.
The Anthropic Messages API too: ``POST /v1/messages`` (JSON and SSE), Amazon Bedrock's
``/model/{id}/invoke`` and ``/invoke-with-response-stream`` (AWS event-stream framing) and Vertex AI's
``.../publishers/anthropic/models/{model}:rawPredict`` / ``:streamRawPredict``, with Anthropic's error
envelopes, ``request-id`` / ``anthropic-ratelimit-*`` headers, prompt-cache usage, tool use and thinking.

Faults are chosen by the request itself so every failure mode can be provoked on purpose: header
``x-sim-fault: <fault>`` or a model name starting with ``<fault>`` (``error-429``, ``error-500``,
``error-400``, ``error-401``, ``error-404``, any other ``error-<4xx|5xx>``, ``slow``, ``midstream-error``,
``drop``). Adding ``x-sim-fault-once: <id>`` applies the fault only to the first request carrying that
id (the first ``x-sim-fault-times: N`` requests), which lets a test watch the SDK's own retries
succeed. On the Anthropic endpoints ``x-sim-retry-after: <seconds>`` makes a 429/5xx send that
``retry-after`` alone (as Anthropic does) instead of the fast ``retry-after-ms``. ``fault_rate`` adds
seeded random 429/500s.

Standard library only, so the demo works in any environment the instrumentation installs into.
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import hashlib
import json
import math
import random
import re
import socket
import struct
import sys
import threading
import time
import traceback
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = [
    "DATED_MODELS",
    "DEFAULT_EMBEDDING_DIMENSIONS",
    "DEFAULT_SLOW_DELAY",
    "MESSAGE_OVERHEAD_TOKENS",
    "REASONING_TOKENS",
    "REPLY_FILLER",
    "REPLY_PREFIX",
    "REQUEST_OVERHEAD_TOKENS",
    "THINKING_PREFIX",
    "AnthropicRoute",
    "Simulator",
    "anthropic_route_of",
    "aws_event_frame",
    "count_anthropic_input_tokens",
    "count_completion_tokens",
    "count_prompt_tokens",
    "embedding_vector",
    "fault_for_model",
    "fill_schema",
    "has_cache_control",
    "is_reasoning_model",
    "main",
    "prompt_text",
    "reply_text",
    "thinking_text",
    "tool_arguments",
]

JSONDict = dict[str, Any]

# --------------------------------------------------------------------------------------------------
# Fixed facts. Tests import these instead of repeating magic numbers, so a change here cannot make
# the simulator and its expectations drift apart.
# --------------------------------------------------------------------------------------------------

HOST = "127.0.0.1"
"""Loopback only: the simulator is a test and demo fixture and must never be reachable from outside."""

REPLY_PREFIX = "Echo:"
REPLY_FILLER = "this reply comes from the tokentrace simulator."
SNIPPET_CHARS = 40
"""How many characters of the prompt the reply (and a tool call's ``query``) echoes."""

MESSAGE_OVERHEAD_TOKENS = 4
"""Tokens charged per prompt unit (message, input item, prompt string), like OpenAI's per-message framing."""
REQUEST_OVERHEAD_TOKENS = 3
"""Tokens charged once per request, like the ``<|start|>assistant`` priming OpenAI adds."""
IMAGE_TOKENS = 85
"""Tokens charged per image part (OpenAI's low-detail image price)."""
REASONING_TOKENS = 10
"""Hidden reasoning tokens added to the completion count of ``o<digit>`` models."""

DEFAULT_EMBEDDING_DIMENSIONS = 8
MAX_EMBEDDING_DIMENSIONS = 4096
DEFAULT_SLOW_DELAY = 2.0
"""Seconds the ``slow`` fault waits when no ``x-sim-delay`` header is given."""
MIDSTREAM_CHUNKS = 2
"""Content chunks a ``midstream-error`` stream delivers before the error event."""

SYSTEM_FINGERPRINT = "fp_sim"
SERVICE_TIER = "default"
OPENAI_VERSION = "2020-10-01"
ORGANIZATION = "tokentrace-sim"

RATE_LIMIT_REQUESTS = 10_000
RATE_LIMIT_TOKENS = 2_000_000
RATE_LIMIT_WINDOW_SECONDS = 60.0
RETRY_AFTER_MS = 10
"""Sent as ``retry-after-ms`` on retryable faults so the SDK's retries take milliseconds, not seconds."""

DATED_MODELS: dict[str, str] = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "o3-mini": "o3-mini-2025-01-31",
    "o4-mini": "o4-mini-2025-04-16",
}
"""Request alias -> dated snapshot reported back, as OpenAI does; other models are echoed unchanged."""

KNOWN_MODELS: tuple[str, ...] = (
    *DATED_MODELS,
    "text-embedding-3-small",
    "text-embedding-3-large",
    "gpt-3.5-turbo-instruct",
)

NAMED_FAULTS: tuple[str, ...] = ("midstream-error", "slow", "drop")

_ERROR_FAULTS: dict[int, tuple[str, str | None, str | None, str]] = {
    # status: (type, code, param, message); ``{model}`` is filled in.
    429: ("requests", "rate_limit_exceeded", None, "Rate limit reached"),
    500: (
        "server_error",
        None,
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    400: ("invalid_request_error", "invalid_value", None, "Invalid request (simulated fault)."),
    401: ("invalid_request_error", "invalid_api_key", None, "Incorrect API key provided (simulated fault)."),
    404: (
        "invalid_request_error",
        "model_not_found",
        "model",
        "The model `{model}` does not exist or you do not have access to it.",
    ),
}

_ERROR_FAULT_RE = re.compile(r"^error-([45]\d\d)(?=$|[-:/_.])")
_ROUTE_RE = re.compile(
    r"^(?:/v1|/openai/v1|/openai/deployments/(?P<deployment>[^/]+)|/openai)"
    r"/(?P<endpoint>chat/completions|responses|embeddings|completions)/?$"
)
_MODELS_RE = re.compile(r"^(?:/v1|/openai/v1|/openai)/models(?:/(?P<model>[^/]+))?/?$")
_REASONING_RE = re.compile(r"^o\d")
_IMAGE_PART_TYPES = frozenset({"image_url", "input_image", "image"})
_BAD_JSON_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
    "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"
)


# --------------------------------------------------------------------------------------------------
# Deterministic rules, public so tests can compute the expected values instead of hard-coding them.
# --------------------------------------------------------------------------------------------------


def _words(text: str) -> int:
    return len(text.split())


def _text_of(content: Any) -> str:
    """The plain text of a message ``content`` (string, list of parts, or None)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, dict)]
        texts += [p for p in content if isinstance(p, str)]
        return " ".join(t for t in texts if isinstance(t, str))
    return ""


def _unit_tokens(unit: Any) -> int:
    """Tokens of one prompt unit: a message / input item dict, a string, or a token-id array."""
    if isinstance(unit, str):
        return _words(unit)
    if isinstance(unit, int):
        return 1
    if isinstance(unit, list):
        if all(isinstance(v, int) for v in unit):
            return len(unit)
        return sum(_unit_tokens(v) for v in unit)
    if not isinstance(unit, dict):
        return 0
    if unit.get("type") in _IMAGE_PART_TYPES:
        return IMAGE_TOKENS
    tokens = 0
    content = unit.get("content")
    if isinstance(content, str):
        tokens += _words(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and part.get("type") in _IMAGE_PART_TYPES:
                tokens += IMAGE_TOKENS
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                tokens += _words(part["text"])
            elif isinstance(part, str):
                tokens += _words(part)
    if isinstance(unit.get("text"), str) and "content" not in unit:
        tokens += _words(unit["text"])
    for call in unit.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            tokens += _words(f"{function.get('name') or ''} {function.get('arguments') or ''}")
    if unit.get("type") == "function_call":
        tokens += _words(f"{unit.get('name') or ''} {unit.get('arguments') or ''}")
    output = unit.get("output")
    if isinstance(output, str):
        tokens += _words(output)
    elif isinstance(output, list):
        tokens += _words(_text_of(output))
    return tokens


def _prompt_units(body: Mapping[str, Any]) -> list[Any]:
    """Split a request body of any endpoint into the units that are each charged an overhead."""
    units: list[Any] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        units.append(instructions)
    elif isinstance(instructions, list):
        units.extend(instructions)
    messages = body.get("messages")
    if isinstance(messages, list):
        units.extend(messages)
    for key in ("input", "prompt"):
        value = body.get(key)
        if isinstance(value, str):
            units.append(value)
        elif isinstance(value, list):
            if value and all(isinstance(v, int) for v in value):
                units.append(value)  # a single token-id array
            else:
                units.extend(value)
    return units


def count_prompt_tokens(body: Mapping[str, Any]) -> int:
    """Prompt tokens the simulator reports for a request body of any endpoint.

    ``REQUEST_OVERHEAD_TOKENS + sum(words(unit) + MESSAGE_OVERHEAD_TOKENS for unit in units)`` where the
    units are: ``instructions`` (if any), each chat message, each ``input`` item (a string ``input`` is
    one unit; a list of strings or token arrays is one unit per element) and each ``prompt`` string.
    Words are ``str.split()`` words, token-id arrays count their length, images ``IMAGE_TOKENS``.
    One uniform rule for every endpoint keeps the expectations in tests trivial to derive.
    """
    return REQUEST_OVERHEAD_TOKENS + sum(_unit_tokens(u) + MESSAGE_OVERHEAD_TOKENS for u in _prompt_units(body))


def count_completion_tokens(text: str | None) -> int:
    """Completion tokens for generated text: its whitespace-separated words."""
    return _words(text) if text else 0


def prompt_text(body: Mapping[str, Any]) -> str:
    """The text a reply echoes: the last user message (chat / responses) or the prompt (completions)."""
    for key in ("messages", "input", "prompt"):
        value = body.get(key)
        if isinstance(value, str):
            return value
        if not isinstance(value, list) or not value:
            continue
        users = [m for m in value if isinstance(m, dict) and m.get("role") == "user"]
        if users:
            return _text_of(users[-1].get("content"))
        strings = [v for v in value if isinstance(v, str)]
        if strings:
            return strings[-1]
        last = value[-1]
        if isinstance(last, dict):
            return _text_of(last.get("content"))
    return ""


def _snippet(prompt: str) -> str:
    return " ".join(prompt.split())[:SNIPPET_CHARS].strip()


def reply_text(prompt: str) -> str:
    """The assistant text for a prompt: ``"Echo: <first 40 chars of the prompt> <REPLY_FILLER>"``.

    Whitespace in the prompt is collapsed first, so the reply is always single-spaced and its word count
    (= completion tokens) is predictable.
    """
    snippet = _snippet(prompt)
    return f"{REPLY_PREFIX} {snippet} {REPLY_FILLER}" if snippet else f"{REPLY_PREFIX} {REPLY_FILLER}"


def is_reasoning_model(model: str) -> bool:
    """``o<digit>...`` models (o1, o3-mini, o4-mini) report hidden reasoning tokens."""
    return bool(_REASONING_RE.match(model))


def fault_for_model(model: str | None) -> str | None:
    """The fault a model name asks for (``"error-429-gpt-4o"`` -> ``"error-429"``), or None."""
    if not model:
        return None
    name = model.lower()
    match = _ERROR_FAULT_RE.match(name)
    if match:
        return f"error-{match.group(1)}"
    for fault in NAMED_FAULTS:
        if name == fault or name.startswith((f"{fault}-", f"{fault}:", f"{fault}/", f"{fault}_")):
            return fault
    return None


def _normalize_fault(value: str) -> str | None:
    """Validate an ``x-sim-fault`` header value so a typo fails loudly instead of silently succeeding."""
    value = value.strip().lower()
    if value in NAMED_FAULTS or re.fullmatch(r"error-[45]\d\d", value):
        return value
    return None


def fill_schema(schema: Any, root: Any = None, _depth: int = 0) -> Any:
    """A value that satisfies a JSON schema: every required property filled with a value of its type.

    Strings are ``"x"``, integers ``1``, numbers ``1.5``, booleans ``True``, arrays ``[]`` and objects are
    filled recursively, so ``chat.completions.parse(response_format=SomePydanticModel)`` validates, nested
    models and ``$ref``/``$defs`` included.
    """
    root = schema if root is None else root
    if not isinstance(schema, dict) or _depth > 12:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        return fill_schema(target, root, _depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            preferred = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            return fill_schema((preferred or options)[0], root, _depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        properties = schema.get("properties") or {}
        required = schema.get("required") or []
        return {name: fill_schema(properties.get(name, {"type": "string"}), root, _depth + 1) for name in required}
    if kind == "array":
        count = int(schema.get("minItems") or 0)
        return [fill_schema(schema.get("items") or {}, root, _depth + 1) for _ in range(count)]
    if kind == "integer":
        return _bounded(1, schema)
    if kind == "number":
        return _bounded(1.5, schema)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string_for(schema)


def _bounded(value: float, schema: Mapping[str, Any]) -> Any:
    low, high = schema.get("minimum"), schema.get("maximum")
    if isinstance(low, (int, float)) and value < low:
        value = low
    if isinstance(high, (int, float)) and value > high:
        value = high
    return value


_STRING_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "email": "sim@example.com",
    "uri": "https://example.com",
    "uuid": "00000000-0000-0000-0000-000000000000",
}


def _string_for(schema: Mapping[str, Any]) -> str:
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _STRING_FORMATS:
        return _STRING_FORMATS[fmt]
    return "x" * max(1, int(schema.get("minLength") or 1))


def tool_arguments(parameters: Any, prompt: str) -> str:
    """The JSON ``arguments`` string of a simulated tool call.

    ``{"query": "<prompt snippet>"}`` when the tool has no declared properties or declares ``query``;
    otherwise the parameters schema filled by :func:`fill_schema`. Serialised with ``json.dumps``
    defaults, so the argument fragments contain spaces to stream word by word.
    """
    properties = parameters.get("properties") if isinstance(parameters, dict) else None
    if not properties:
        return json.dumps({"query": _snippet(prompt)})
    args = fill_schema(parameters)
    if not isinstance(args, dict):
        args = {}
    if "query" in properties:
        args["query"] = _snippet(prompt)
    return json.dumps(args)


def embedding_vector(text: str, dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS) -> list[float]:
    """A unit-length vector derived from the text's hash: same text, same vector, in every process.

    The values are rounded through float32 so the ``float`` and ``base64`` encodings decode to exactly
    the same numbers.
    """
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")
    rng = random.Random(seed)
    raw = [rng.uniform(-1.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    packed = struct.pack(f"<{dimensions}f", *(v / norm for v in raw))
    return list(struct.unpack(f"<{dimensions}f", packed))


def _embedding_base64(vector: Sequence[float]) -> str:
    """OpenAI's ``encoding_format="base64"``: little-endian float32 bytes, base64-encoded."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


# --------------------------------------------------------------------------------------------------
# Small helpers for building payloads.
# --------------------------------------------------------------------------------------------------


def _as_int(value: Any, default: int | None) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return int(value)


def _truncate(text: str, limit: int | None) -> tuple[str, bool]:
    """Cut ``text`` to ``limit`` words, as ``max_tokens`` does; returns (text, truncated)."""
    words = text.split()
    if limit is None or limit < 0 or len(words) <= limit:
        return text, False
    return " ".join(words[:limit]), True


def _pieces(text: str) -> list[str]:
    """Word-sized stream fragments whose concatenation is exactly ``text``."""
    parts = re.findall(r"\S+\s*", text)
    lead = text[: len(text) - len(text.lstrip())]
    if lead:
        parts = [lead + parts[0], *parts[1:]] if parts else [lead]
    return parts


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def _sse_data(payload: Any) -> bytes:
    return b"data: " + _dumps(payload) + b"\n\n"


def _sse_event(event: str, payload: Any) -> bytes:
    return f"event: {event}\n".encode() + _sse_data(payload)


_SSE_DONE = b"data: [DONE]\n\n"


def _error_body(message: str, err_type: str, code: str | None = None, param: str | None = None) -> JSONDict:
    return {"error": {"message": message, "type": err_type, "param": param, "code": code}}


def _structured_text(fmt: Any, prompt: str) -> str | None:
    """JSON content for ``response_format`` (chat) / ``text.format`` (responses); None for plain text."""
    if not isinstance(fmt, dict):
        return None
    kind = fmt.get("type")
    if kind == "json_schema":
        wrapper = fmt.get("json_schema") if isinstance(fmt.get("json_schema"), dict) else fmt
        return json.dumps(fill_schema(wrapper.get("schema") or {}))
    if kind == "json_object":
        return json.dumps({"reply": reply_text(prompt)})
    return None


def _chat_tool(body: Mapping[str, Any]) -> tuple[str, Any] | None:
    """(name, parameters) of the function tool a chat request would call, honouring ``tool_choice``."""
    choice = body.get("tool_choice", "auto")
    if choice == "none":
        return None
    functions = [
        t["function"]
        for t in body.get("tools") or []
        if isinstance(t, dict) and t.get("type", "function") == "function" and isinstance(t.get("function"), dict)
    ]
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        functions = [f for f in functions if f.get("name") == wanted] or functions
    if not functions:
        return None
    return str(functions[0].get("name")), functions[0].get("parameters")


def _responses_tool(body: Mapping[str, Any]) -> tuple[str, Any] | None:
    """(name, parameters) of the function tool a Responses request would call."""
    choice = body.get("tool_choice", "auto")
    if choice == "none":
        return None
    functions = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"]
    if isinstance(choice, dict) and choice.get("type") == "function":
        functions = [f for f in functions if f.get("name") == choice.get("name")] or functions
    if not functions:
        return None
    return str(functions[0].get("name")), functions[0].get("parameters")


def _echo_tools(tools: Any) -> list[Any]:
    """Tools as the Responses API reports them back (function tools get ``strict``/``parameters``)."""
    echoed: list[Any] = []
    for tool in tools or []:
        if isinstance(tool, dict) and tool.get("type") == "function":
            echoed.append({"parameters": None, "strict": True, "description": None, **tool})
        else:
            echoed.append(tool)
    return echoed


@dataclass
class _Choice:
    """One planned completion choice, rendered later as JSON or as stream chunks."""

    index: int
    text: str | None
    finish_reason: str
    tokens: int
    tool_id: str | None = None
    tool_name: str | None = None
    tool_args: str | None = None


@dataclass
class _Stream:
    """The SSE events of a stream, plus what a ``midstream-error`` needs to cut it short."""

    events: list[bytes]
    prelude: int
    error_event: bytes
    done: bytes | None


# --------------------------------------------------------------------------------------------------
# HTTP plumbing.
# --------------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its Simulator and keeps client disconnects quiet."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], sim: Simulator) -> None:
        self.sim = sim
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, conn: socket.socket, alive: bool) -> None:
        """Remember open connections so ``stop()`` can unblock keep-alive threads."""
        with self.connections_lock:
            if alive:
                self.connections.add(conn)
            else:
                self.connections.discard(conn)

    def close_connections(self) -> None:
        with self.connections_lock:
            conns = list(self.connections)
            self.connections.clear()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (timeouts, early ``close()``, ``drop``) is normal here, not an error."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Forwards every request to the owning Simulator; HTTP/1.1 so the SDK can keep connections alive."""

    protocol_version = "HTTP/1.1"
    server_version = "tokentrace-sim"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without TCP_NODELAY, Nagle + the client's delayed ACK
        # add ~40 ms to every response, which would drown any latency a test or the bench measures.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def do_POST(self) -> None:
        self.server.sim._serve(self, "POST")

    def do_GET(self) -> None:
        self.server.sim._serve(self, "GET")

    def do_PUT(self) -> None:
        self.server.sim._serve(self, "PUT")

    def do_PATCH(self) -> None:
        self.server.sim._serve(self, "PATCH")

    def do_DELETE(self) -> None:
        self.server.sim._serve(self, "DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request access logs; they would drown test and demo output."""

    def read_body(self) -> bytes:
        """The request body, with or without ``Transfer-Encoding: chunked``."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""


class _Exchange:
    """One request/response: writes OpenAI-style headers, JSON bodies and (chunked) SSE streams."""

    def __init__(self, handler: _Handler) -> None:
        self.handler = handler
        self.started = time.monotonic()
        self.request_id = "req_0"
        self.remaining_requests = RATE_LIMIT_REQUESTS
        self.prompt_tokens = 0
        self.headers_sent = False
        self.alive = True
        self.chunked = handler.request_version != "HTTP/1.0"
        self.flavor = "openai"  # "anthropic", "bedrock" or "vertex": which provider's headers and error bodies
        self.stream_content_type = "text/event-stream; charset=utf-8"
        self.retry_after: str | None = None  # Anthropic faults: x-sim-retry-after, sent as retry-after alone

    def _headers(self, extra: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        if self.flavor != "openai":
            return [*_anthropic_headers(self), *extra]
        elapsed_ms = int((time.monotonic() - self.started) * 1000)
        reset_tokens_ms = max(1, math.ceil(self.prompt_tokens * RATE_LIMIT_WINDOW_SECONDS * 1000 / RATE_LIMIT_TOKENS))
        return [
            ("x-request-id", self.request_id),
            ("openai-processing-ms", str(elapsed_ms)),
            ("openai-version", OPENAI_VERSION),
            ("openai-organization", ORGANIZATION),
            ("x-ratelimit-limit-requests", str(RATE_LIMIT_REQUESTS)),
            ("x-ratelimit-remaining-requests", str(self.remaining_requests)),
            ("x-ratelimit-limit-tokens", str(RATE_LIMIT_TOKENS)),
            ("x-ratelimit-remaining-tokens", str(max(0, RATE_LIMIT_TOKENS - self.prompt_tokens))),
            ("x-ratelimit-reset-requests", "6ms"),
            ("x-ratelimit-reset-tokens", f"{reset_tokens_ms}ms"),
            *extra,
        ]

    def _start(self, status: int, headers: list[tuple[str, str]]) -> bool:
        handler = self.handler
        self.headers_sent = True
        try:
            handler.send_response(status)
            for name, value in headers:
                handler.send_header(name, value)
            handler.end_headers()
        except OSError:
            self._lost()
            return False
        return True

    def _lost(self) -> None:
        self.alive = False
        self.handler.close_connection = True

    def send_json(self, status: int, payload: Any, extra: Iterable[tuple[str, str]] = ()) -> None:
        data = _dumps(payload)
        headers = self._headers(extra)
        headers += [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        if self._start(status, headers):
            self._write_raw(data)

    def send_error(
        self,
        status: int,
        message: str,
        err_type: str,
        code: str | None = None,
        param: str | None = None,
        extra: Iterable[tuple[str, str]] = (),
    ) -> None:
        if self.flavor != "openai":
            self.send_json(status, *_anthropic_error(self, status, message, err_type, extra))
            return
        self.send_json(status, _error_body(message, err_type, code, param), extra)

    def start_stream(self) -> bool:
        headers = self._headers(())
        headers += [("Content-Type", self.stream_content_type), ("Cache-Control", "no-cache")]
        headers.append(("Transfer-Encoding", "chunked") if self.chunked else ("Connection", "close"))
        return self._start(200, headers)

    def _write_raw(self, data: bytes) -> bool:
        if not self.alive:
            return False
        try:
            self.handler.wfile.write(data)
            self.handler.wfile.flush()
        except OSError:
            self._lost()
            return False
        return True

    def write_event(self, data: bytes) -> bool:
        """Write one SSE event as its own HTTP chunk, so the client sees it immediately."""
        if self.chunked:
            data = b"%x\r\n" % len(data) + data + b"\r\n"
        return self._write_raw(data)

    def end_stream(self) -> None:
        if self.chunked:
            self._write_raw(b"0\r\n\r\n")
        else:
            self.handler.close_connection = True

    def drop(self) -> None:
        """Hang up without a response: the client sees a connection error."""
        self.headers_sent = True
        self._lost()
        with contextlib.suppress(OSError):
            self.handler.connection.shutdown(socket.SHUT_RDWR)


# --------------------------------------------------------------------------------------------------
# Anthropic Messages API: first party (``POST /v1/messages``), Amazon Bedrock (``/model/{id}/invoke``,
# ``/invoke-with-response-stream`` in AWS event-stream framing) and Google Vertex AI
# (``.../publishers/anthropic/models/{model}:rawPredict`` / ``:streamRawPredict``).
#
# Same deterministic rules as the OpenAI endpoints (reply text, word-count tokens), in Anthropic's
# accounting: ``usage.input_tokens`` EXCLUDES cached tokens, which are reported separately as
# ``cache_creation_input_tokens`` (first time a prompt with ``cache_control`` is seen) and
# ``cache_read_input_tokens`` (every later time). A stream's ``message_start`` carries the placeholder
# ``output_tokens: 1`` and ``message_delta`` the cumulative final counts, as the live API does.
# --------------------------------------------------------------------------------------------------

ANTHROPIC_VERSION_HEADER = "2023-06-01"
ANTHROPIC_ORGANIZATION = "00000000-0000-4000-8000-000000000000"
ANTHROPIC_STOP_PLACEHOLDER_OUTPUT_TOKENS = 1
"""``message_start``'s ``usage.output_tokens``: a placeholder, never the call's output count."""
THINKING_PREFIX = "Thinking about:"
BEDROCK_CHUNK_PADDING = "abcdefghijklmnopqrstuvwxyz"

_ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request (simulated fault)."),
    401: ("authentication_error", "invalid x-api-key (simulated fault)"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "model: {model}"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "This request would exceed the rate limit for your organization (simulated fault)."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}
_OPENAI_TO_ANTHROPIC_ERROR = {"server_error": "api_error", "requests": "rate_limit_error"}
_BEDROCK_ERRORS: dict[int, str] = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
_ANTHROPIC_FIRST_PARTY_RE = re.compile(r"^/v1/messages(?P<count>/count_tokens)?/?$")
_BEDROCK_RE = re.compile(r"^/model/(?P<model>[^/]+)/(?P<verb>invoke|invoke-with-response-stream)/?$")
_VERTEX_RE = re.compile(
    r"^(?:/v1)?/projects/[^/]+/locations/[^/]+/publishers/anthropic/models/(?P<model>[^/:]+)"
    r":(?P<verb>rawPredict|streamRawPredict)$"
)


@dataclass(frozen=True)
class AnthropicRoute:
    """Which Anthropic surface a path is: ``flavor`` (anthropic/bedrock/vertex), path model, stream."""

    flavor: str
    model: str | None
    stream: bool | None  # None: the body's ``stream`` decides (first party)
    count_tokens: bool = False


def anthropic_route_of(path: str) -> AnthropicRoute | None:
    """The Anthropic route of a request path, or None for the OpenAI endpoints."""
    match = _ANTHROPIC_FIRST_PARTY_RE.match(path)
    if match:
        return AnthropicRoute("anthropic", None, None, bool(match.group("count")))
    match = _BEDROCK_RE.match(path)
    if match:
        return AnthropicRoute("bedrock", unquote(match.group("model")), match.group("verb") != "invoke")
    match = _VERTEX_RE.match(path)
    if match:
        model = unquote(match.group("model"))
        if model == "count-tokens":
            return AnthropicRoute("vertex", None, False, True)
        return AnthropicRoute("vertex", model, match.group("verb") == "streamRawPredict")
    return None


def _anthropic_blocks(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def count_anthropic_input_tokens(body: Mapping[str, Any]) -> int:
    """All prompt tokens of a Messages request (before the cache split): the OpenAI rule over ``messages``
    plus ``system`` (one unit per block, or one for a string) and one unit per tool (name + description)."""
    total = count_prompt_tokens({"messages": body.get("messages") or []})
    system = body.get("system")
    if isinstance(system, str) and system:
        total += _words(system) + MESSAGE_OVERHEAD_TOKENS
    for block in _anthropic_blocks(system):
        total += _unit_tokens(block) + MESSAGE_OVERHEAD_TOKENS
    for tool in _anthropic_blocks(body.get("tools")):
        if isinstance(tool, dict):
            total += _words(f"{tool.get('name') or ''} {tool.get('description') or ''}") + MESSAGE_OVERHEAD_TOKENS
    return total


def has_cache_control(body: Mapping[str, Any]) -> bool:
    """Whether the request marks anything for prompt caching (top level, system, message or tool blocks)."""
    if isinstance(body.get("cache_control"), dict):
        return True
    blocks: list[Any] = [*_anthropic_blocks(body.get("system")), *_anthropic_blocks(body.get("tools"))]
    for message in _anthropic_blocks(body.get("messages")):
        if isinstance(message, dict):
            blocks.append(message)
            blocks.extend(_anthropic_blocks(message.get("content")))
    return any(isinstance(b, dict) and isinstance(b.get("cache_control"), dict) for b in blocks)


def thinking_text(prompt: str) -> str:
    """The thinking block's text when ``thinking`` is enabled: ``"Thinking about: <snippet>"``."""
    snippet = _snippet(prompt)
    return f"{THINKING_PREFIX} {snippet}" if snippet else THINKING_PREFIX


def _anthropic_tool(body: Mapping[str, Any]) -> tuple[str, Any] | None:
    """(name, input_schema) of the client tool a request would call, honouring ``tool_choice``."""
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "none":
        return None
    tools = [
        t
        for t in _anthropic_blocks(body.get("tools"))
        if isinstance(t, dict) and isinstance(t.get("name"), str) and t.get("type", "custom") == "custom"
    ]
    if isinstance(choice, dict) and choice.get("type") == "tool":
        tools = [t for t in tools if t.get("name") == choice.get("name")] or tools
    if not tools:
        return None
    return tools[0]["name"], tools[0].get("input_schema")


def _wants_tool(body: Mapping[str, Any]) -> bool:
    messages = _anthropic_blocks(body.get("messages"))
    last = messages[-1] if messages else None
    if not isinstance(last, dict) or last.get("role") != "user":
        return False
    content = _anthropic_blocks(last.get("content"))
    return not any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content)


def _anthropic_structured_text(body: Mapping[str, Any]) -> str | None:
    """JSON text for structured output (``output_config.format`` / legacy ``output_format`` json_schema)."""
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if not isinstance(fmt, dict):
        fmt = body.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        return json.dumps(fill_schema(fmt.get("schema") or {}))
    return None


def _iso_in(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))


def _anthropic_headers(ex: _Exchange) -> list[tuple[str, str]]:
    """Anthropic's response headers (``request-id``, ``anthropic-ratelimit-*``), or Bedrock's."""
    if ex.flavor == "bedrock":
        return [("x-amzn-RequestId", ex.request_id)]
    remaining_tokens = str(max(0, RATE_LIMIT_TOKENS - ex.prompt_tokens))
    reset = _iso_in(RATE_LIMIT_WINDOW_SECONDS)
    headers = [
        ("request-id", ex.request_id),
        ("anthropic-organization-id", ANTHROPIC_ORGANIZATION),
        ("anthropic-ratelimit-requests-limit", str(RATE_LIMIT_REQUESTS)),
        ("anthropic-ratelimit-requests-remaining", str(ex.remaining_requests)),
        ("anthropic-ratelimit-requests-reset", reset),
        ("anthropic-ratelimit-tokens-limit", str(RATE_LIMIT_TOKENS)),
        ("anthropic-ratelimit-tokens-remaining", remaining_tokens),
        ("anthropic-ratelimit-tokens-reset", reset),
        ("anthropic-ratelimit-input-tokens-limit", str(RATE_LIMIT_TOKENS)),
        ("anthropic-ratelimit-input-tokens-remaining", remaining_tokens),
        ("anthropic-ratelimit-input-tokens-reset", reset),
        ("anthropic-ratelimit-output-tokens-limit", str(RATE_LIMIT_TOKENS)),
        ("anthropic-ratelimit-output-tokens-remaining", str(RATE_LIMIT_TOKENS)),
        ("anthropic-ratelimit-output-tokens-reset", reset),
    ]
    return headers


def _anthropic_error(
    ex: _Exchange, status: int, message: str, err_type: str, extra: Iterable[tuple[str, str]]
) -> tuple[JSONDict, list[tuple[str, str]]]:
    """The error body (and headers) of the exchange's flavor: Anthropic's envelope, or Bedrock's."""
    extra = list(extra)
    if ex.flavor == "bedrock":
        code = _BEDROCK_ERRORS.get(status, "InternalServerException" if status >= 500 else "ValidationException")
        extra.append(("x-amzn-ErrorType", f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/"))
        return {"message": message}, extra
    err_type = _OPENAI_TO_ANTHROPIC_ERROR.get(err_type, err_type)
    return {"type": "error", "error": {"type": err_type, "message": message}, "request_id": ex.request_id}, extra


def _aws_string_header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode("utf-8"), value.encode("utf-8")
    return struct.pack("!B", len(raw_name)) + raw_name + struct.pack("!BH", 7, len(raw_value)) + raw_value


def aws_event_frame(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message: prelude (lengths + CRC32), string headers, payload, message CRC32."""
    header_bytes = b"".join(_aws_string_header(k, v) for k, v in headers.items())
    prelude = struct.pack("!II", 12 + len(header_bytes) + len(payload) + 4, len(header_bytes))
    prelude += struct.pack("!I", zlib.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + header_bytes + payload
    return message + struct.pack("!I", zlib.crc32(message) & 0xFFFFFFFF)


def _bedrock_chunk(event: Mapping[str, Any]) -> bytes:
    payload = {"bytes": base64.b64encode(_dumps(event)).decode("ascii"), "p": BEDROCK_CHUNK_PADDING}
    headers = {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
    return aws_event_frame(headers, _dumps(payload))


def _bedrock_exception(kind: str, message: str) -> bytes:
    headers = {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"}
    return aws_event_frame(headers, _dumps({"message": message}))


@dataclass
class _AnthropicPlan:
    """One planned Messages response: its content blocks, stop reason and usage."""

    message_id: str
    model: str
    blocks: list[JSONDict]
    stop_reason: str
    usage: JSONDict


class _AnthropicEndpoints:
    """The Anthropic surfaces of :class:`Simulator` (mixed in; uses its faults, cache and streaming)."""

    @property
    def anthropic_base_url(self) -> str:
        """Root URL for ``Anthropic(base_url=...)`` and ``AnthropicBedrock(base_url=...)``."""
        return f"http://{self.host}:{self.port}"  # type: ignore[attr-defined]

    @property
    def vertex_base_url(self) -> str:
        """Base URL for ``AnthropicVertex(base_url=...)`` (Vertex's ``/v1`` prefix included)."""
        return f"http://{self.host}:{self.port}/v1"  # type: ignore[attr-defined]

    def _anthropic_dispatch(
        self,
        ex: _Exchange,
        route: AnthropicRoute,
        method: str,
        headers: Mapping[str, str],
        body: Any,
        bad_json: bool,
    ) -> None:
        sim: Any = self
        ex.flavor = route.flavor
        if method != "POST":
            ex.send_error(405 if route.flavor != "bedrock" else 404, f"Method {method} not allowed", "not_found_error")
            return
        if bad_json or not isinstance(body, dict):
            ex.send_error(400, "There was an error parsing the body of your request.", "invalid_request_error")
            return
        ex.prompt_tokens = count_anthropic_input_tokens(body)
        if route.count_tokens:
            ex.send_json(200, {"input_tokens": ex.prompt_tokens})
            return
        model = route.model or body.get("model")
        if not isinstance(model, str) or not model:
            ex.send_error(400, "model: Field required", "invalid_request_error")
            return
        if not isinstance(body.get("max_tokens"), int) or not _anthropic_blocks(body.get("messages")):
            ex.send_error(400, "max_tokens and messages: Field required", "invalid_request_error")
            return
        fault = sim._choose_fault(ex, headers, model)
        if fault == "invalid":
            return
        ex.retry_after = headers.get("x-sim-retry-after")
        if not sim._sleep(sim._latency_delay()) or fault == "drop":
            ex.drop()
            return
        if fault is not None and fault.startswith("error-"):
            self._anthropic_fault(ex, int(fault[6:]), model)
            return
        if fault == "slow":
            try:
                delay = float(headers.get("x-sim-delay", DEFAULT_SLOW_DELAY))
            except ValueError:
                delay = DEFAULT_SLOW_DELAY
            if not sim._sleep(delay):
                ex.drop()
                return
        stream = route.stream if route.stream is not None else body.get("stream") is True
        midstream = fault == "midstream-error"
        if midstream and not stream:
            self._anthropic_fault(ex, 500, model)
            return
        plan = self._anthropic_plan(ex, body, model)
        if not stream:
            message = {
                "id": plan.message_id,
                "type": "message",
                "role": "assistant",
                "model": plan.model,
                "content": plan.blocks,
                "stop_reason": plan.stop_reason,
                "stop_sequence": None,
                "usage": plan.usage,
            }
            extra: list[tuple[str, str]] = []
            if route.flavor == "bedrock":
                extra = [
                    ("x-amzn-bedrock-input-token-count", str(_total_input(plan.usage))),
                    ("x-amzn-bedrock-output-token-count", str(plan.usage["output_tokens"])),
                    ("x-amzn-bedrock-invocation-latency", str(int((time.monotonic() - ex.started) * 1000))),
                ]
            ex.send_json(200, message, extra)
            return
        if route.flavor == "bedrock":
            ex.stream_content_type = "application/vnd.amazon.eventstream"
        sim._run_stream(ex, _anthropic_stream(plan, route.flavor), midstream)

    def _anthropic_fault(self, ex: _Exchange, status: int, model: str) -> None:
        err_type, message = _ANTHROPIC_ERRORS.get(
            status, ("api_error" if status >= 500 else "invalid_request_error", f"Simulated HTTP {status} error.")
        )
        extra: list[tuple[str, str]] = []
        if ex.retry_after and (status == 429 or status >= 500):
            extra.append(("retry-after", ex.retry_after))  # x-sim-retry-after: Anthropic's own header alone
        else:
            if status == 429:
                extra.append(("retry-after", "0"))
            if status == 429 or status >= 500:
                extra.append(("retry-after-ms", str(RETRY_AFTER_MS)))
        ex.send_error(status, message.replace("{model}", model), err_type, extra=extra)

    def _anthropic_plan(self, ex: _Exchange, body: JSONDict, model: str) -> _AnthropicPlan:
        sim: Any = self
        number = ex.request_id.removeprefix("req_")
        prompt = prompt_text(body)
        blocks: list[JSONDict] = []
        output_tokens = 0
        thinking_tokens = None
        thinking = body.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
            text = thinking_text(prompt)
            thinking_tokens = count_completion_tokens(text)
            output_tokens += thinking_tokens
            blocks.append({"type": "thinking", "thinking": text, "signature": f"sig_sim{number}"})
        tool = _anthropic_tool(body) if _wants_tool(body) else None
        if tool is not None:
            name, schema = tool
            arguments = fill_schema(schema or {"type": "object"})
            blocks.append({"type": "tool_use", "id": f"toolu_sim{number}", "name": name, "input": arguments})
            output_tokens += count_completion_tokens(f"{name} {json.dumps(arguments)}")
            stop_reason = "tool_use"
        else:
            text = _anthropic_structured_text(body) or reply_text(prompt)
            text, truncated = _truncate(text, _as_int(body.get("max_tokens"), None))
            blocks.append({"type": "text", "text": text})
            output_tokens += count_completion_tokens(text)
            stop_reason = "max_tokens" if truncated else "end_turn"
        total = count_anthropic_input_tokens(body)
        cached = total // 2 if has_cache_control(body) else 0
        created = read = 0
        if cached:
            key = json.dumps(
                ["anthropic", model, body.get("system"), body.get("tools"), body.get("messages")],
                sort_keys=True,
                default=str,
            )
            with sim._lock:
                seen = key in sim._seen_prompts
                sim._seen_prompts.add(key)
            read, created = (cached, 0) if seen else (0, cached)
        usage: JSONDict = {
            "input_tokens": total - created - read,
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read,
            "cache_creation": {"ephemeral_5m_input_tokens": created, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }
        if thinking_tokens is not None:
            usage["output_tokens_details"] = {"thinking_tokens": thinking_tokens}
        return _AnthropicPlan(f"msg_sim{number}", model, blocks, stop_reason, usage)


def _total_input(usage: Mapping[str, Any]) -> int:
    return int(usage["input_tokens"] + usage["cache_creation_input_tokens"] + usage["cache_read_input_tokens"])


def _anthropic_stream(plan: _AnthropicPlan, flavor: str) -> _Stream:
    """The event sequence of a streamed Message (SSE, or Bedrock chunk frames)."""
    payloads: list[JSONDict] = []
    start_usage = {
        **{k: v for k, v in plan.usage.items() if k != "output_tokens_details"},
        "output_tokens": ANTHROPIC_STOP_PLACEHOLDER_OUTPUT_TOKENS,
    }
    payloads.append(
        {
            "type": "message_start",
            "message": {
                "id": plan.message_id,
                "type": "message",
                "role": "assistant",
                "model": plan.model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": start_usage,
            },
        }
    )
    prelude = 0
    for index, block in enumerate(plan.blocks):
        kind = block["type"]
        if kind == "thinking":
            start: JSONDict = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": p} for p in _pieces(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif kind == "tool_use":
            start = {**block, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in _pieces(json.dumps(block["input"]))]
        else:
            start = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"])]
        payloads.append({"type": "content_block_start", "index": index, "content_block": start})
        if index == 0:
            payloads.append({"type": "ping"})
            prelude = len(payloads)
        payloads.extend({"type": "content_block_delta", "index": index, "delta": d} for d in deltas)
        payloads.append({"type": "content_block_stop", "index": index})
    final_usage = {k: v for k, v in plan.usage.items() if k not in ("cache_creation", "service_tier")}
    payloads.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": plan.stop_reason, "stop_sequence": None},
            "usage": final_usage,
        }
    )
    stop: JSONDict = {"type": "message_stop"}
    if flavor == "bedrock":
        stop["amazon-bedrock-invocationMetrics"] = {
            "inputTokenCount": _total_input(plan.usage),
            "outputTokenCount": plan.usage["output_tokens"],
            "invocationLatency": 1,
            "firstByteLatency": 1,
        }
    payloads.append(stop)
    if flavor == "bedrock":
        events = [_bedrock_chunk(p) for p in payloads]
        error = _bedrock_exception("modelStreamErrorException", "The model stream failed (simulated fault).")
    else:
        events = [_sse_event(p["type"], p) for p in payloads]
        error = _sse_event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    return _Stream(events=events, prelude=prelude, error_event=error, done=None)


# --------------------------------------------------------------------------------------------------
# The simulator.
# --------------------------------------------------------------------------------------------------


class Simulator(_AnthropicEndpoints):
    """A local OpenAI-compatible server for tests and the ``tokentrace demo`` command.

    Use it as a context manager (``with Simulator() as sim: OpenAI(base_url=sim.base_url, ...)``) or
    call :meth:`start` / :meth:`stop`. Every received request is appended to :attr:`requests` as
    ``{"path", "method", "headers", "body", "query", "request_id"}`` (headers lower-cased, body parsed
    JSON or None, path without the query string) so tests can assert on what the SDK actually sent.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        latency: float = 0.0,
        chunk_delay: float = 0.0,
        fault_rate: float = 0.0,
        port: int = 0,
    ) -> None:
        self.seed = seed
        self.latency = latency
        self.chunk_delay = chunk_delay
        self.fault_rate = fault_rate
        self.host = HOST
        self.port = port
        self.requests: list[JSONDict] = []
        self._lock = threading.Lock()
        self._fault_rng = random.Random(seed)
        self._latency_rng = random.Random(seed + 1)
        self._counter = 0
        self._recent: collections.deque[float] = collections.deque()
        self._seen_prompts: set[str] = set()
        self._fault_once_ids: dict[str, int] = {}  # x-sim-fault-once id -> times applied
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """OpenAI-style base URL (``http://127.0.0.1:PORT/v1``) for ``OpenAI(base_url=...)``."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def azure_endpoint(self) -> str:
        """Root URL for ``AzureOpenAI(azure_endpoint=...)``."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> Simulator:
        """Bind 127.0.0.1 (port 0 = any free port) and serve from a daemon thread."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server((self.host, self.port), self)
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"tokentrace-simulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping fault handlers and close kept-alive connections. Idempotent."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def reset(self) -> None:
        """Forget recorded requests, seen prompts (prompt cache) and used ``x-sim-fault-once`` ids."""
        with self._lock:
            self.requests.clear()
            self._seen_prompts.clear()
            self._fault_once_ids.clear()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._server is not None else "stopped"
        return f"<Simulator {self.base_url} {state}, {len(self.requests)} requests>"

    # ---- request handling --------------------------------------------------------------------------

    def _serve(self, handler: _Handler, method: str) -> None:
        ex = _Exchange(handler)
        try:
            self._dispatch(ex, handler, method)
        except OSError:
            ex._lost()
        except Exception as exc:  # a simulator bug: report it loudly, answer like OpenAI's 500
            traceback.print_exc(file=sys.stderr)
            if ex.headers_sent:
                ex._lost()
            else:
                ex.send_error(500, f"Simulator internal error: {exc!r}", "server_error")

    def _record(self, ex: _Exchange, handler: _Handler, method: str) -> tuple[str, JSONDict, Any, bool]:
        url = urlsplit(handler.path)
        raw = handler.read_body()
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        record = {
            "path": url.path,
            "method": method,
            "headers": {k.lower(): v for k, v in handler.headers.items()},
            "body": body,
            "query": dict(parse_qsl(url.query)),
        }
        now = time.monotonic()
        with self._lock:
            self._counter += 1
            ex.request_id = record["request_id"] = f"req_{self._counter}"
            self.requests.append(record)
            self._recent.append(now)
            while self._recent and now - self._recent[0] > RATE_LIMIT_WINDOW_SECONDS:
                self._recent.popleft()
            ex.remaining_requests = max(0, RATE_LIMIT_REQUESTS - len(self._recent))
        if isinstance(body, dict):
            try:
                ex.prompt_tokens = count_prompt_tokens(body)
            except Exception:  # odd shapes still get an answer; the endpoint validates properly
                ex.prompt_tokens = 0
        return url.path, record["headers"], body, bad_json

    def _dispatch(self, ex: _Exchange, handler: _Handler, method: str) -> None:
        path, headers, body, bad_json = self._record(ex, handler, method)

        anthropic_route = anthropic_route_of(path)
        if anthropic_route is not None:
            self._anthropic_dispatch(ex, anthropic_route, method, headers, body, bad_json)
            return
        models = _MODELS_RE.match(path)
        if method == "GET" and models:
            self._models(ex, models.group("model"))
            return
        route = _ROUTE_RE.match(path)
        if method != "POST" or route is None:
            ex.send_error(404, f"Invalid URL ({method} {path})", "invalid_request_error")
            return
        if bad_json or not isinstance(body, dict):
            ex.send_error(400, _BAD_JSON_MESSAGE, "invalid_request_error")
            return

        endpoint, deployment = route.group("endpoint"), route.group("deployment")
        requested = body.get("model")
        if isinstance(requested, str) and requested:
            model, response_model = requested, DATED_MODELS.get(requested, requested)
        elif deployment:
            model = response_model = deployment
        else:
            ex.send_error(400, "you must provide a model parameter", "invalid_request_error", None, "model")
            return

        fault = self._choose_fault(ex, headers, model)
        if fault == "invalid":
            return
        if not self._sleep(self._latency_delay()):
            ex.drop()
            return
        if fault == "drop":
            ex.drop()
            return
        if fault is not None and fault.startswith("error-"):
            self._send_fault(ex, int(fault[6:]), model)
            return
        if fault == "slow":
            try:
                delay = float(headers.get("x-sim-delay", DEFAULT_SLOW_DELAY))
            except ValueError:
                delay = DEFAULT_SLOW_DELAY
            if not self._sleep(delay):
                ex.drop()
                return
        stream = bool(body.get("stream"))
        midstream = fault == "midstream-error"
        if midstream and not stream:
            self._send_fault(ex, 500, model)
            return

        if endpoint == "chat/completions":
            self._chat(ex, body, model, response_model, stream, midstream)
        elif endpoint == "responses":
            self._responses(ex, body, model, response_model, stream, midstream)
        elif endpoint == "embeddings":
            self._embeddings(ex, body, response_model)
        else:
            self._completions(ex, body, response_model, stream, midstream)

    def _choose_fault(self, ex: _Exchange, headers: Mapping[str, str], model: str) -> str | None:
        """Decide the fault for this request; returns ``"invalid"`` after answering a bad header."""
        header = headers.get("x-sim-fault", "").strip()
        if header:
            fault = _normalize_fault(header)
            if fault is None:
                ex.send_error(
                    400,
                    f"Unknown simulator fault {header!r}; use error-<status> or {'/'.join(NAMED_FAULTS)}",
                    "invalid_request_error",
                    "unknown_fault",
                )
                return "invalid"
        else:
            fault = fault_for_model(model)
        once = headers.get("x-sim-fault-once")
        if fault is not None and once:
            times_header = str(headers.get("x-sim-fault-times", "1")).strip()
            times = int(times_header) if times_header.isdigit() and int(times_header) > 0 else 1
            with self._lock:
                used = self._fault_once_ids.get(once, 0)
                if used >= times:
                    fault = None
                else:
                    self._fault_once_ids[once] = used + 1
        if fault is None and self.fault_rate > 0:
            with self._lock:  # always two draws, so one request's outcome never shifts the next one's
                roll, pick = self._fault_rng.random(), self._fault_rng.random()
            if roll < self.fault_rate:
                fault = "error-429" if pick < 0.5 else "error-500"
        return fault

    def _latency_delay(self) -> float:
        if self.latency <= 0:
            return 0.0
        with self._lock:
            jitter = self._latency_rng.uniform(-0.25, 0.25)
        return self.latency * (1.0 + jitter)

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless the simulator stops meanwhile; returns False if it did."""
        if seconds <= 0:
            return not self._stopping.is_set()
        return not self._stopping.wait(seconds)

    def _send_fault(self, ex: _Exchange, status: int, model: str) -> None:
        err_type, code, param, message = _ERROR_FAULTS.get(
            status,
            (
                "server_error" if status >= 500 else "invalid_request_error",
                None,
                None,
                f"Simulated HTTP {status} error.",
            ),
        )
        extra: list[tuple[str, str]] = []
        if status == 429:
            extra.append(("retry-after", "0"))
        if status == 429 or status >= 500:
            extra.append(("retry-after-ms", str(RETRY_AFTER_MS)))
        ex.send_error(status, message.replace("{model}", model), err_type, code, param, extra)

    def _cached_tokens(self, kind: str, model: str, body: Mapping[str, Any], prompt_tokens: int) -> int:
        """Prompt caching: a prompt this server has seen before reports half its tokens as cached."""
        key = json.dumps([kind, model, _prompt_units(body)], sort_keys=True, default=str)
        with self._lock:
            seen = key in self._seen_prompts
            self._seen_prompts.add(key)
        return prompt_tokens // 2 if seen else 0

    def _run_stream(self, ex: _Exchange, stream: _Stream, midstream: bool) -> None:
        """Send the events, pausing ``chunk_delay`` between them; stop quietly if the client leaves."""
        if midstream:
            cut = min(stream.prelude + MIDSTREAM_CHUNKS, len(stream.events) - 1)
            events = [*stream.events[:cut], stream.error_event]
        else:
            events = [*stream.events, *([stream.done] if stream.done else [])]
        if not ex.start_stream():
            return
        for position, event in enumerate(events):
            if position and self.chunk_delay > 0 and not self._sleep(self.chunk_delay):
                ex._lost()
                return
            if not ex.write_event(event):
                return
        ex.end_stream()

    # ---- endpoints -----------------------------------------------------------------------------------

    def _models(self, ex: _Exchange, model: str | None) -> None:
        def entry(name: str) -> JSONDict:
            return {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": ORGANIZATION}

        if model:
            ex.send_json(200, entry(model))
        else:
            ex.send_json(200, {"object": "list", "data": [entry(m) for m in KNOWN_MODELS]})

    def _chat(
        self, ex: _Exchange, body: JSONDict, model: str, response_model: str, stream: bool, midstream: bool
    ) -> None:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            ex.send_error(
                400,
                "Missing required parameter: 'messages'.",
                "invalid_request_error",
                "missing_required_parameter",
                "messages",
            )
            return
        number = ex.request_id.removeprefix("req_")
        n = max(1, _as_int(body.get("n"), 1) or 1)
        limit = _as_int(body.get("max_completion_tokens", body.get("max_tokens")), None)
        prompt = prompt_text(body)
        tool = _chat_tool(body)
        last = messages[-1]
        wants_tool = tool is not None and isinstance(last, dict) and last.get("role") == "user"

        choices: list[_Choice] = []
        for index in range(n):
            if wants_tool and tool is not None:
                name, parameters = tool
                args = tool_arguments(parameters, prompt)
                choices.append(
                    _Choice(
                        index=index,
                        text=None,
                        finish_reason="tool_calls",
                        tokens=count_completion_tokens(f"{name} {args}"),
                        tool_id=f"call_sim{number}x{index}",
                        tool_name=name,
                        tool_args=args,
                    )
                )
            else:
                text = _structured_text(body.get("response_format"), prompt) or reply_text(prompt)
                text, truncated = _truncate(text, limit)
                finish = "length" if truncated else "stop"
                choices.append(_Choice(index, text, finish, count_completion_tokens(text)))

        reasoning = REASONING_TOKENS if is_reasoning_model(model) else 0
        prompt_tokens = count_prompt_tokens(body)
        completion_tokens = sum(c.tokens for c in choices) + reasoning
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {
                "cached_tokens": self._cached_tokens("chat", model, body, prompt_tokens),
                "audio_tokens": 0,
            },
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        head = {
            "id": f"chatcmpl-sim{number}",
            "created": int(time.time()),
            "model": response_model,
            "service_tier": SERVICE_TIER,
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        if not stream:
            ex.send_json(
                200,
                {
                    **head,
                    "object": "chat.completion",
                    "choices": [_chat_choice(c) for c in choices],
                    "usage": usage,
                },
            )
            return
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        self._run_stream(ex, _chat_stream(head, choices, usage, include_usage), midstream)

    def _responses(
        self, ex: _Exchange, body: JSONDict, model: str, response_model: str, stream: bool, midstream: bool
    ) -> None:
        number = ex.request_id.removeprefix("req_")
        prompt = prompt_text(body)
        items = body.get("input")
        last = items[-1] if isinstance(items, list) and items else None
        last_is_user = isinstance(items, str) or (
            isinstance(last, dict) and last.get("role") == "user" and last.get("type", "message") == "message"
        )
        tool = _responses_tool(body)
        limit = _as_int(body.get("max_output_tokens"), None)
        incomplete = False

        if tool is not None and last_is_user:
            name, parameters = tool
            args = tool_arguments(parameters, prompt)
            item: JSONDict = {
                "type": "function_call",
                "id": f"fc_sim{number}",
                "call_id": f"call_sim{number}",
                "name": name,
                "arguments": args,
                "status": "completed",
            }
            visible_tokens = count_completion_tokens(f"{name} {args}")
        else:
            fmt = body.get("text", {}).get("format") if isinstance(body.get("text"), dict) else None
            text = _structured_text(fmt, prompt) or reply_text(prompt)
            text, incomplete = _truncate(text, limit)
            item = {
                "type": "message",
                "id": f"msg_sim{number}",
                "status": "incomplete" if incomplete else "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
            }
            visible_tokens = count_completion_tokens(text)

        reasoning = REASONING_TOKENS if is_reasoning_model(model) else 0
        input_tokens = count_prompt_tokens(body)
        output_tokens = visible_tokens + reasoning
        usage = {
            "input_tokens": input_tokens,
            "input_tokens_details": {
                "cached_tokens": self._cached_tokens("responses", model, body, input_tokens),
                "cache_write_tokens": 0,
            },
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": input_tokens + output_tokens,
        }
        created = int(time.time())
        status = "incomplete" if incomplete else "completed"

        def snapshot(state: str, output: list[Any], final: bool) -> JSONDict:
            return {
                "id": f"resp_sim{number}",
                "object": "response",
                "created_at": created,
                "status": state,
                "background": False,
                "completed_at": created if final and state == "completed" else None,
                "error": None,
                "incomplete_details": {"reason": "max_output_tokens"} if final and incomplete else None,
                "instructions": body.get("instructions"),
                "max_output_tokens": body.get("max_output_tokens"),
                "max_tool_calls": body.get("max_tool_calls"),
                "model": response_model,
                "output": output,
                "parallel_tool_calls": body.get("parallel_tool_calls", True),
                "previous_response_id": body.get("previous_response_id"),
                "prompt_cache_key": body.get("prompt_cache_key"),
                "reasoning": {"effort": "medium" if reasoning else None, "summary": None},
                "safety_identifier": body.get("safety_identifier"),
                "service_tier": SERVICE_TIER,
                "store": body.get("store", True),
                "temperature": body.get("temperature", 1.0),
                "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
                "tool_choice": body.get("tool_choice", "auto"),
                "tools": _echo_tools(body.get("tools")),
                "top_logprobs": body.get("top_logprobs", 0),
                "top_p": body.get("top_p", 1.0),
                "truncation": body.get("truncation", "disabled"),
                "usage": usage if final else None,
                "user": body.get("user"),
                "metadata": body.get("metadata") or {},
            }

        if not stream:
            ex.send_json(200, snapshot(status, [item], True))
            return
        self._run_stream(
            ex,
            _responses_stream(snapshot("in_progress", [], False), snapshot(status, [item], True), item),
            midstream,
        )

    def _embeddings(self, ex: _Exchange, body: JSONDict, response_model: str) -> None:
        raw = body.get("input")
        if raw is None or raw in ("", []):
            ex.send_error(
                400,
                "Missing required parameter: 'input'.",
                "invalid_request_error",
                "missing_required_parameter",
                "input",
            )
            return
        if isinstance(raw, str):
            texts = [raw]
        elif isinstance(raw, list) and all(isinstance(v, int) for v in raw):
            texts = [" ".join(map(str, raw))]
        elif isinstance(raw, list):
            texts = [v if isinstance(v, str) else " ".join(map(str, v)) for v in raw]
        else:
            ex.send_error(400, "Invalid type for 'input'.", "invalid_request_error", "invalid_type", "input")
            return
        dimensions = _as_int(body.get("dimensions"), DEFAULT_EMBEDDING_DIMENSIONS) or DEFAULT_EMBEDDING_DIMENSIONS
        dimensions = max(1, min(dimensions, MAX_EMBEDDING_DIMENSIONS))
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(texts):
            vector = embedding_vector(text, dimensions)
            encoded: Any = _embedding_base64(vector) if as_base64 else vector
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        prompt_tokens = count_prompt_tokens(body)
        ex.send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": response_model,
                "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
            },
        )

    def _completions(self, ex: _Exchange, body: JSONDict, response_model: str, stream: bool, midstream: bool) -> None:
        number = ex.request_id.removeprefix("req_")
        raw = body.get("prompt", "")
        if isinstance(raw, str):
            prompts = [raw]
        elif isinstance(raw, list) and raw and all(isinstance(v, int) for v in raw):
            prompts = [""]
        elif isinstance(raw, list) and raw:
            prompts = [v if isinstance(v, str) else "" for v in raw]
        else:
            prompts = [""]
        n = max(1, _as_int(body.get("n"), 1) or 1)
        limit = _as_int(body.get("max_tokens"), None)
        choices: list[_Choice] = []
        for p_index, prompt in enumerate(prompts):
            for c_index in range(n):
                text, truncated = _truncate(reply_text(prompt), limit)
                finish = "length" if truncated else "stop"
                choices.append(_Choice(p_index * n + c_index, text, finish, count_completion_tokens(text)))
        prompt_tokens = count_prompt_tokens(body)
        completion_tokens = sum(c.tokens for c in choices)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        head = {
            "id": f"cmpl-sim{number}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": response_model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        if not stream:
            rendered = [
                {"text": c.text, "index": c.index, "logprobs": None, "finish_reason": c.finish_reason} for c in choices
            ]
            ex.send_json(200, {**head, "choices": rendered, "usage": usage})
            return
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        self._run_stream(ex, _completions_stream(head, choices, usage, include_usage), midstream)


# --------------------------------------------------------------------------------------------------
# Payload renderers (pure functions of a plan, so non-streamed and streamed answers always agree).
# --------------------------------------------------------------------------------------------------


def _chat_choice(choice: _Choice) -> JSONDict:
    message: JSONDict = {"role": "assistant", "content": choice.text, "refusal": None, "annotations": []}
    if choice.tool_name is not None:
        message["tool_calls"] = [
            {
                "id": choice.tool_id,
                "type": "function",
                "function": {"name": choice.tool_name, "arguments": choice.tool_args},
            }
        ]
    return {
        "index": choice.index,
        "message": message,
        "logprobs": None,
        "finish_reason": choice.finish_reason,
    }


def _interleave(per_choice: list[list[JSONDict]]) -> Iterable[JSONDict]:
    """Round-robin the choices' deltas, as OpenAI interleaves ``n > 1`` streams."""
    for step in range(max((len(p) for p in per_choice), default=0)):
        for deltas in per_choice:
            if step < len(deltas):
                yield deltas[step]


def _chat_stream(head: JSONDict, choices: list[_Choice], usage: JSONDict, include_usage: bool) -> _Stream:
    def chunk(rendered: list[JSONDict], usage_value: Any = None) -> bytes:
        payload = {**head, "object": "chat.completion.chunk", "choices": rendered}
        if include_usage:
            payload["usage"] = usage_value
        return _sse_data(payload)

    def choice_delta(index: int, delta: JSONDict, finish: str | None = None) -> JSONDict:
        return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}

    events: list[bytes] = []
    for c in choices:
        first: JSONDict = {"role": "assistant", "content": "", "refusal": None}
        if c.tool_name is not None:
            first["content"] = None
            first["tool_calls"] = [
                {
                    "index": 0,
                    "id": c.tool_id,
                    "type": "function",
                    "function": {"name": c.tool_name, "arguments": ""},
                }
            ]
        events.append(chunk([choice_delta(c.index, first)]))
    per_choice: list[list[JSONDict]] = []
    for c in choices:
        if c.tool_name is not None:
            deltas = [{"tool_calls": [{"index": 0, "function": {"arguments": p}}]} for p in _pieces(c.tool_args or "")]
        else:
            deltas = [{"content": p} for p in _pieces(c.text or "")]
        per_choice.append([choice_delta(c.index, d) for d in deltas])
    events.extend(chunk([rendered]) for rendered in _interleave(per_choice))
    events.extend(chunk([choice_delta(c.index, {}, c.finish_reason)]) for c in choices)
    if include_usage:
        events.append(chunk([], usage))
    error = _sse_data(_error_body("The server had an error while processing your request.", "server_error"))
    return _Stream(events=events, prelude=len(choices), error_event=error, done=_SSE_DONE)


def _completions_stream(head: JSONDict, choices: list[_Choice], usage: JSONDict, include_usage: bool) -> _Stream:
    def chunk(rendered: list[JSONDict], usage_value: Any = None) -> bytes:
        payload = {**head, "choices": rendered}
        if include_usage:
            payload["usage"] = usage_value
        return _sse_data(payload)

    def piece(index: int, text: str, finish: str | None = None) -> JSONDict:
        return {"text": text, "index": index, "logprobs": None, "finish_reason": finish}

    per_choice = [[piece(c.index, p) for p in _pieces(c.text or "")] for c in choices]
    events = [chunk([rendered]) for rendered in _interleave(per_choice)]
    events.extend(chunk([piece(c.index, "", c.finish_reason)]) for c in choices)
    if include_usage:
        events.append(chunk([], usage))
    error = _sse_data(_error_body("The server had an error while processing your request.", "server_error"))
    return _Stream(events=events, prelude=0, error_event=error, done=_SSE_DONE)


def _responses_stream(initial: JSONDict, final: JSONDict, item: JSONDict) -> _Stream:
    """The Responses API event sequence; it ends with ``response.completed`` and no ``[DONE]``."""
    events: list[bytes] = []

    def emit(event_type: str, **fields: Any) -> None:
        events.append(_sse_event(event_type, {"type": event_type, "sequence_number": len(events), **fields}))

    emit("response.created", response=initial)
    emit("response.in_progress", response=initial)
    item_id = item["id"]
    if item["type"] == "function_call":
        emit(
            "response.output_item.added",
            output_index=0,
            item={**item, "arguments": "", "status": "in_progress"},
        )
        prelude = len(events)
        for fragment in _pieces(item["arguments"]):
            emit("response.function_call_arguments.delta", item_id=item_id, output_index=0, delta=fragment)
        emit(  # no ``name``: the live API does not send it (openai 2.x's model wrongly requires it)
            "response.function_call_arguments.done",
            item_id=item_id,
            output_index=0,
            arguments=item["arguments"],
        )
    else:
        part = item["content"][0]
        emit(
            "response.output_item.added",
            output_index=0,
            item={**item, "status": "in_progress", "content": []},
        )
        location = {"item_id": item_id, "output_index": 0, "content_index": 0}
        emit("response.content_part.added", **location, part={**part, "text": ""})
        prelude = len(events)
        for fragment in _pieces(part["text"]):
            emit("response.output_text.delta", **location, delta=fragment, logprobs=[])
        emit("response.output_text.done", **location, text=part["text"], logprobs=[])
        emit("response.content_part.done", **location, part=part)
    emit("response.output_item.done", output_index=0, item=item)
    emit(f"response.{final['status']}", response=final)
    message = "The server had an error while processing your request."
    error = _sse_event(
        "error",
        {
            "type": "error",
            "sequence_number": prelude + MIDSTREAM_CHUNKS,
            "code": "server_error",
            "message": message,
            "param": None,
            "error": {"type": "server_error", "code": "server_error", "message": message, "param": None},
        },
    )
    return _Stream(events=events, prelude=prelude, error_event=error, done=None)


# --------------------------------------------------------------------------------------------------
# Manual use: ``python -m tokentrace.demo.simulator`` serves until interrupted.
# --------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run a simulator in the foreground, for poking at it with curl or a hand-written client."""
    parser = argparse.ArgumentParser(description="Local OpenAI-compatible simulator (127.0.0.1 only).")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--chunk-delay", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    args = parser.parse_args(argv)
    sim = Simulator(
        seed=args.seed,
        latency=args.latency,
        chunk_delay=args.chunk_delay,
        fault_rate=args.fault_rate,
        port=args.port,
    ).start()
    print(f"OpenAI-compatible simulator listening on {sim.base_url} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
