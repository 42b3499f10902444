"""The HTTP plumbing the local provider servers share: a threaded server on 127.0.0.1 used as a context
manager, and a quiet request handler. Each provider's module adds only its wire format."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from tests.providers.servers.faults import Faults, serve_fault


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, no request log, and a fixed ``Date`` header (error messages quote headers)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms ACK waits
    server: LocalServer

    def log_message(self, *args: Any) -> None:
        pass

    def date_time_string(self, timestamp: float | None = None) -> str:
        return "Thu, 01 Jan 2026 00:00:00 GMT"

    def read_json(self) -> dict[str, Any]:
        """The request's JSON body (``{}`` when there is none)."""
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def take_request(self) -> dict[str, Any] | None:
        """Read the request's JSON body and record it in ``server.requests``; if a provider-health fault
        is scheduled for it, serve that and return None. The request's number is kept in ``_number``
        (the health headers a server sends carry it)."""
        body = self.read_json()
        self.server.requests.append((self.path, body))
        number, fault = self.server.faults.take()
        if fault is not None:
            serve_fault(self, self.server.faults, number, fault)
            return None
        self._number = number
        return body


class LocalServer(ThreadingHTTPServer):
    """``with Server() as server:`` serves on 127.0.0.1 at :attr:`base_url` until the block ends.

    :attr:`requests` records what the handler saw; :attr:`faults` holds the provider-health faults and
    headers (``servers/faults.py``); :attr:`chunk_delay` is the pause between streamed chunks."""

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], faults: Faults, chunk_delay: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.chunk_delay = chunk_delay
        self.faults = faults
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.counter = 0
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
        self.server_close()
