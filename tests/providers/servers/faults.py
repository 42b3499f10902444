"""Provider-health faults and headers for the local provider servers.

A health test switches a server's health headers on (``server.faults.headers_on = True``) and arms it
for the next N requests (``server.faults.arm("error-429", times=2)``); the SDK's
own retry loop then meets, in order: a 429 with the provider's ``retry-after`` and real error body,
a 5xx (500, 503), a reset connection (``reset``: TCP RST, no response) or a stall longer than the
client's timeout (``stall``). With headers on, every response (faulted or not) carries the
provider's rate-limit and request-id headers, from a :class:`Dialect`, with a request counter so
values change per response; :attr:`Faults.sent` keeps them, so a test compares the span to exactly
what the server said. Off (the default) and unarmed, a server answers exactly as before: other tests
compare error messages, which quote the response headers, between two runs.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

FAULTS = ("error-429", "error-500", "error-503", "error-529", "reset", "stall")


@dataclass
class Fault:
    kind: str
    times: int
    retry_after: str | None  # the 429/503 hint header value (seconds), None: the dialect's default
    stall_s: float


@dataclass(frozen=True)
class Dialect:
    """A provider's health headers and error bodies on the wire."""

    name: str
    # request number -> rate-limit and request-id headers sent on every response
    headers: Callable[[int], list[tuple[str, str]]]
    # (status, request number) -> error body of an armed fault
    error_body: Callable[[int, int], dict[str, Any]]
    # headers also sent on a 429 (besides ``retry-after``); some providers send no quota headers there
    quota_on_429: bool = True
    default_retry_after: str | None = None


@dataclass
class Faults:
    """Armed faults and the headers a server sent; thread-safe (servers are threaded)."""

    dialect: Dialect
    armed: Fault | None = None
    headers_on: bool = False  # send the dialect's rate-limit / request-id headers on every response
    served: int = 0  # requests received since the last arm()
    sent: list[dict[str, str]] = field(default_factory=list)  # health headers of each response since arm()
    counter: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def arm(self, kind: str, times: int = 1, *, retry_after: str | None = None, stall_s: float = 2.0) -> None:
        assert kind in FAULTS, kind
        with self._lock:
            self.armed = Fault(kind, times, retry_after, stall_s)
            self.served = 0
            self.sent = []

    def reset(self) -> None:
        with self._lock:
            self.armed = None
            self.served = 0
            self.sent = []

    def take(self) -> tuple[int, Fault | None]:
        """Count a request; its number and the fault it gets (None: answer normally)."""
        with self._lock:
            self.counter += 1
            self.served += 1
            fault = self.armed
            if fault is None or fault.times <= 0:
                return self.counter, None
            fault.times -= 1
            return self.counter, fault

    def headers_for(self, number: int, status: int = 200) -> list[tuple[str, str]]:
        if not self.headers_on:
            return []
        headers = self.dialect.headers(number)
        if status == 429 and not self.dialect.quota_on_429:
            headers = [h for h in headers if h[0] in _ID_HEADERS]
        with self._lock:
            self.sent.append(dict(headers))
            if len(self.sent) > 1000:  # benchmarks send thousands of requests: keep the recent ones
                del self.sent[:500]
        return headers

    @property
    def last(self) -> dict[str, str]:
        """The health headers of the last response ({} for a provider that sends none)."""
        return self.sent[-1] if self.sent else {}


_ID_HEADERS = frozenset(
    {"x-request-id", "request-id", "x-debug-trace-id", "mistral-correlation-id", "x-kong-request-id"}
)


def serve_fault(handler: Any, faults: Faults, number: int, fault: Fault) -> None:
    """Answer ``handler``'s request with ``fault`` (a ``BaseHTTPRequestHandler``)."""
    if fault.kind == "reset":
        _reset(handler)
        return
    if fault.kind == "stall":
        time.sleep(fault.stall_s)  # the client has given up meanwhile
        _reset(handler)
        return
    status = int(fault.kind.split("-")[1])
    extra = faults.headers_for(number, status)
    retry_after = fault.retry_after if fault.retry_after is not None else faults.dialect.default_retry_after
    if status in (429, 503, 529) and retry_after is not None:
        extra = [*extra, ("retry-after", retry_after)]
    data = json.dumps(faults.dialect.error_body(status, number)).encode()
    handler.send_response(status)
    for name, value in extra:
        handler.send_header(name, value)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
    handler.wfile.flush()


def _reset(handler: Any) -> None:
    """Close with a TCP RST and no response: the client sees a reset connection."""
    handler.close_connection = True
    with contextlib.suppress(OSError):
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.connection.close()


def send_health_headers(handler: Any, faults: Faults | None, number: int | None) -> None:
    """Between ``send_response`` and ``end_headers``: the provider's rate-limit and request-id headers."""
    if faults is None or number is None:
        return
    for name, value in faults.headers_for(number):
        handler.send_header(name, value)


# -- the providers' dialects ---------------------------------------------------------------------------


def _groq_headers(n: int) -> list[tuple[str, str]]:
    return [
        ("x-request-id", f"req_01jgroq{n:08d}"),
        ("x-ratelimit-limit-requests", "14400"),
        ("x-ratelimit-remaining-requests", str(14400 - n)),
        ("x-ratelimit-reset-requests", "2m59.56s"),
        ("x-ratelimit-limit-tokens", "18000"),
        ("x-ratelimit-remaining-tokens", str(18000 - 10 * n)),
        ("x-ratelimit-reset-tokens", "7.66s"),
    ]


def _groq_error(status: int, n: int) -> dict[str, Any]:
    if status == 429:
        message = "Rate limit reached for model `llama-3.1-8b-instant` on tokens per minute (TPM). Please try again."
        return {"error": {"message": message, "type": "tokens", "code": "rate_limit_exceeded"}}
    return {
        "error": {
            "message": "Service Unavailable" if status == 503 else "Internal Server Error",
            "type": "internal_server_error",
        }
    }


GROQ = Dialect("groq", _groq_headers, _groq_error)


def _mistral_headers(n: int) -> list[tuple[str, str]]:
    return [
        ("mistral-correlation-id", f"0199mistral-{n:06d}"),
        ("x-kong-request-id", f"kong{n:06d}"),
        ("x-ratelimit-limit-req-minute", "720"),
        ("x-ratelimit-remaining-req-minute", str(720 - n)),
        ("x-ratelimit-limit-tokens-minute", "5000000"),
        ("x-ratelimit-remaining-tokens-minute", str(5000000 - 50 * n)),
        ("x-ratelimit-tokens-query-cost", "50"),
        ("x-ratelimit-limit-tokens-month", "4000000000"),
        ("x-ratelimit-remaining-tokens-month", str(4000000000 - 50 * n)),
    ]


def _mistral_error(status: int, n: int) -> dict[str, Any]:
    if status == 429:
        return {
            "object": "error",
            "message": "Rate limit exceeded",
            "type": "rate_limited",
            "param": None,
            "code": "1300",
            "raw_status_code": 429,
        }
    return {
        "object": "error",
        "message": "Service unavailable." if status == 503 else "Internal server error",
        "type": "internal_server_error",
        "param": None,
        "code": "3000",
        "raw_status_code": status,
    }


MISTRAL = Dialect("mistral", _mistral_headers, _mistral_error)


def _cohere_headers(n: int) -> list[tuple[str, str]]:
    return [
        ("x-debug-trace-id", f"{n:032x}"),
        ("x-endpoint-monthly-call-limit", "1000"),
        ("x-trial-endpoint-call-limit", "20"),
        ("x-trial-endpoint-call-remaining", str(max(0, 20 - n))),
    ]


def _cohere_error(status: int, n: int) -> dict[str, Any]:
    if status == 429:
        message = "You are using a Trial key, which is limited to 20 API calls / minute."
        return {"id": f"0000-{n}", "message": message}
    return {"id": f"0000-{n}", "message": "internal server error, this has been reported to our developers"}


# Cohere sends no quota headers on a 429, and documents no retry-after: the SDK honours one when sent
# (integer seconds or retry-after-ms), so the 429s here send one to check that.
COHERE = Dialect("cohere", _cohere_headers, _cohere_error, quota_on_429=False)


def _ollama_error(status: int, n: int) -> dict[str, Any]:
    if status == 503:
        return {"error": "server busy, please try again.  maximum pending requests exceeded"}
    if status == 429:
        return {"error": "too many requests"}
    return {"error": "an error was encountered while running the model: unexpected EOF"}


OLLAMA = Dialect("ollama", lambda n: [], _ollama_error)  # a local server: no quota, no request id


_GOOGLE_STATUS = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


def _google_error(status: int, n: int) -> dict[str, Any]:
    error: dict[str, Any] = {"code": status, "status": _GOOGLE_STATUS.get(status, "UNKNOWN")}
    if status == 429:
        error["message"] = "You exceeded your current quota, please check your plan and billing details."
        error["details"] = [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"},
        ]
    else:
        error["message"] = "The model is overloaded. Please try again later." if status == 503 else "Internal error"
    return {"error": error}


# The Gemini API sends no rate-limit or request-id headers; a 429's retry hint is in its body.
GOOGLE = Dialect("google", lambda n: [], _google_error)
