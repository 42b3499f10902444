"""The OTLP/HTTP receiver (default port 4318): ``POST /v1/traces``, ``/v1/metrics``, ``/v1/logs``.

Why a threaded stdlib server: the engine's ``ingest_*`` calls block until the batch is durably
queued (an fsync), so each request needs a thread anyway, and the stdlib keeps the gateway free of a
web framework. What a thread-per-connection server does badly, slow clients, is handled here
explicitly rather than by the event loop:

* a reaper thread enforces absolute deadlines per connection (idle keep-alive wait, request line +
  headers from the first byte, the whole body), not per ``recv`` timeouts that a client trickling
  one byte at a time resets forever; past a deadline the socket is shut down and the thread freed;
* at most ``max_connections`` connections are served; past that a new connection gets a canned 503
  with ``Retry-After`` and is closed at once, from the accept thread, without a thread of its own;
* TLS handshakes run in the connection's thread under the header deadline, never in the accept loop.

Bodies are read in pieces and decompressed as a stream (gzip, deflate) with ``max_length``: the
limit applies to the decompressed size and reading stops at the limit, so a gzip bomb costs at most
``max_body_bytes`` of memory before it is refused with 413.

Status codes follow the OTLP/HTTP specification: 200 with an ``Export*ServiceResponse`` (with
``partial_success`` when the engine rejected spans), 400 for an undecodable body, 401 without a valid
bearer token, 404/405 for other paths and methods, 411 without a length, 413 over the size limit,
415 for an unknown content type or encoding, 429 with ``Retry-After`` when the engine is overloaded
and 503 with ``Retry-After`` when it cannot take data right now. Error bodies are a
``google.rpc.Status`` in the request's encoding (protobuf or JSON).
"""

from __future__ import annotations

import http.server
import logging
import math
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any, NoReturn

from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tokentrace.gateway.config import Authenticator, HttpSettings
from tokentrace.gateway.engine import Overloaded, TooLarge
from tokentrace.gateway.otlp_codec import parse_request
from tokentrace.gateway.otlp_json import decode_json
from tokentrace.gateway.telemetry import ReceiverCounters

logger = logging.getLogger("tokentrace.gateway.http")

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
SIGNALS = {"/v1/traces": "traces", "/v1/metrics": "metrics", "/v1/logs": "logs"}
RESPONSES = {
    "traces": trace_service_pb2.ExportTraceServiceResponse,
    "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
    "logs": logs_service_pb2.ExportLogsServiceResponse,
}
READ_SIZE = 64 * 1024
LINGER_S = 2.0  # how long a refused request's unread body is drained before closing
_BUSY_RESPONSE = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class HttpError(Exception):
    """A request refused with ``status``; ``close`` when the rest of the request was not read."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        close: bool = False,
        headers: dict[str, str] | None = None,
        code: int = code_pb2.INVALID_ARGUMENT,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close
        self.headers = headers or {}
        self.code = code


# --- deadlines --------------------------------------------------------------------------------------


class Deadlines:
    """Absolute per-connection deadlines, enforced by one reaper thread shutting sockets down."""

    def __init__(self, tick_s: float = 0.05) -> None:
        self._deadlines: dict[socket.socket, float] = {}
        self._expired: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._tick_s = tick_s
        self._thread = threading.Thread(target=self._run, name="tokentrace-http-deadlines", daemon=True)
        self._thread.start()

    def arm(self, sock: socket.socket, seconds: float) -> None:
        with self._lock:
            self._deadlines[sock] = time.monotonic() + seconds

    def disarm(self, sock: socket.socket) -> None:
        with self._lock:
            self._deadlines.pop(sock, None)

    def forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._deadlines.pop(sock, None)
            self._expired.discard(sock)

    def expired(self, sock: socket.socket) -> bool:
        with self._lock:
            return sock in self._expired

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def _run(self) -> None:
        while not self._stop.wait(self._tick_s):
            now = time.monotonic()
            with self._lock:
                late = [sock for sock, deadline in self._deadlines.items() if deadline <= now]
                for sock in late:
                    del self._deadlines[sock]
                    self._expired.add(sock)
            for sock in late:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


# --- bodies -----------------------------------------------------------------------------------------


def _raw_pieces(rfile: Any, length: int | None, limit: int) -> Iterator[bytes]:
    """The body as received: ``length`` bytes, or chunked transfer coding when ``length`` is None."""
    if length is not None:
        if length > limit:
            raise HttpError(
                413,
                f"request body of {length} bytes is over the limit of {limit}",
                close=True,
                code=code_pb2.RESOURCE_EXHAUSTED,
            )
        yield from _exactly(rfile, length)
        return
    total = 0
    while True:
        line = rfile.readline(1024)
        if not line.endswith(b"\n"):
            raise ConnectionError("client closed the connection mid-body")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise HttpError(400, "malformed chunked transfer coding", close=True) from None
        if size < 0:
            raise HttpError(400, "malformed chunked transfer coding", close=True)
        if size == 0:
            while True:  # trailers, up to the blank line
                trailer = rfile.readline(8192)
                if not trailer.endswith(b"\n"):
                    raise ConnectionError("client closed the connection mid-body")
                if trailer in (b"\r\n", b"\n"):
                    return
        total += size
        if total > limit:
            raise HttpError(
                413, f"request body is over the limit of {limit} bytes", close=True, code=code_pb2.RESOURCE_EXHAUSTED
            )
        yield from _exactly(rfile, size)
        if rfile.readline(8) not in (b"\r\n", b"\n"):
            raise HttpError(400, "malformed chunked transfer coding", close=True)


def _exactly(rfile: Any, count: int) -> Iterator[bytes]:
    """``count`` bytes of the body in pieces of at most ``READ_SIZE``; a short read is a dropped client."""
    remaining = count
    while remaining:
        piece = rfile.read(min(READ_SIZE, remaining))
        if not piece:
            raise ConnectionError("client closed the connection mid-body")
        remaining -= len(piece)
        yield piece


def _decompressor(encoding: str, first: bytes) -> Any:
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    # "deflate" is zlib-wrapped per RFC 9110, but some clients send raw deflate: tell by the header
    if len(first) >= 2 and first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0:
        return zlib.decompressobj(zlib.MAX_WBITS)
    return zlib.decompressobj(-zlib.MAX_WBITS)


def read_body(pieces: Iterator[bytes], encoding: str, limit: int) -> bytes:
    """The decoded body; raises 413 as soon as it would pass ``limit`` bytes, 400 if corrupt."""
    out = bytearray()
    if encoding in ("", "identity"):
        for piece in pieces:
            out += piece
            if len(out) > limit:
                raise HttpError(
                    413,
                    f"request body is over the limit of {limit} bytes",
                    close=True,
                    code=code_pb2.RESOURCE_EXHAUSTED,
                )
        return bytes(out)
    decompressor = None
    try:
        for piece in pieces:
            data = piece
            while data:
                if decompressor is None:
                    decompressor = _decompressor(encoding, data)
                chunk = decompressor.decompress(data, limit - len(out) + 1)
                out += chunk
                if len(out) > limit:
                    raise HttpError(
                        413,
                        f"decompressed request body is over the limit of {limit} bytes",
                        close=True,
                        code=code_pb2.RESOURCE_EXHAUSTED,
                    )
                if decompressor.eof:
                    data = decompressor.unused_data  # another gzip member follows (concatenated gzip)
                    decompressor = None
                    if data and encoding == "deflate":
                        raise HttpError(400, "data after the end of the deflate stream", close=True)
                else:
                    data = decompressor.unconsumed_tail
        if decompressor is not None:
            out += decompressor.flush()
            if not decompressor.eof:
                raise HttpError(400, f"truncated {encoding} body", close=True)
    except zlib.error as exc:
        raise HttpError(400, f"body is not valid {encoding}: {exc}", close=True) from None
    if len(out) > limit:
        raise HttpError(
            413,
            f"decompressed request body is over the limit of {limit} bytes",
            close=True,
            code=code_pb2.RESOURCE_EXHAUSTED,
        )
    return bytes(out)


# --- the handler ------------------------------------------------------------------------------------


class OtlpHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tokentrace-gateway"
    sys_version = ""
    # TCP_NODELAY: a reply goes out as two writes (headers, then body); with Nagle on, the body waits for
    # the client's delayed ACK of the headers, about 40 ms per request on a kept-alive connection
    disable_nagle_algorithm = True
    server: OtlpHttpServer

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("http " + format, *args)

    def handle_one_request(self) -> None:
        deadlines = self.server.deadlines
        sock = self.connection
        try:
            deadlines.arm(sock, self.server.settings.idle_timeout_s)
            if not self.rfile.peek(1):  # idle keep-alive wait, up to the first byte of a request
                self.close_connection = True
                return
            deadlines.arm(sock, self.server.settings.header_timeout_s)
            super().handle_one_request()
        except (OSError, ValueError):  # reset, shut down by the reaper, or a socket closed under us
            self.close_connection = True
        finally:
            deadlines.disarm(sock)
            if deadlines.expired(sock):
                self.close_connection = True
                self.server.counters.count("http", "-", "timeout")

    def finish(self) -> None:
        try:
            super().finish()
            if self._linger:
                self._drain()
        except OSError:
            pass
        self.server.deadlines.forget(self.connection)

    _linger = False

    def _drain(self) -> None:
        """Read (and discard) what the client still sends before closing, for a bounded time and size.

        Closing with unread data makes the kernel reset the connection, and a client still sending
        its body then sees "connection reset" instead of our 413/401/415 answer.
        """
        sock = self.connection
        deadline = time.monotonic() + LINGER_S
        budget = 2 * self.server.settings.max_body_bytes
        self.server.deadlines.arm(sock, LINGER_S)
        try:
            while budget > 0 and time.monotonic() < deadline:
                piece = sock.recv(READ_SIZE)
                if not piece:
                    break
                budget -= len(piece)
        finally:
            self.server.deadlines.disarm(sock)

    # methods
    def do_POST(self) -> None:
        signal = SIGNALS.get(self.path.split("?", 1)[0])
        if signal is None:
            self._refuse(
                HttpError(
                    404, f"no such path; OTLP paths are {', '.join(SIGNALS)}", close=True, code=code_pb2.NOT_FOUND
                ),
                JSON,
            )
            return
        encoding = JSON if _media_type(self.headers.get("Content-Type")) == JSON else PROTOBUF
        try:
            self._export(signal)
        except HttpError as exc:
            self.server.counters.count("http", signal, str(exc.status))
            self._refuse(exc, encoding)

    def _method_not_allowed(self) -> None:
        if self.path.split("?", 1)[0] in SIGNALS:
            self._refuse(
                HttpError(
                    405, "OTLP endpoints take POST", headers={"Allow": "POST"}, close=True, code=code_pb2.UNIMPLEMENTED
                ),
                JSON,
            )
        else:
            self._refuse(HttpError(404, "not found", close=True, code=code_pb2.NOT_FOUND), JSON)

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _method_not_allowed

    def handle_expect_100(self) -> bool:
        """``Expect: 100-continue`` (curl sends it past 1 KiB): refuse before the client sends the body."""
        signal = SIGNALS.get(self.path.split("?", 1)[0])
        if self.command == "POST" and signal is not None:
            encoding = JSON if _media_type(self.headers.get("Content-Type")) == JSON else PROTOBUF
            try:
                self._check_headers()
                length = self._content_length()
                if length is not None and length > self.server.settings.max_body_bytes:
                    raise HttpError(
                        413,
                        f"request body of {length} bytes is over the limit",
                        close=True,
                        code=code_pb2.RESOURCE_EXHAUSTED,
                    )
            except HttpError as exc:
                self.server.counters.count("http", signal, str(exc.status))
                self._refuse(exc, encoding)
                self._linger = False  # nothing to drain: the client waits for this answer before sending
                return False
        return super().handle_expect_100()

    # the export path
    def _export(self, signal: str) -> None:
        settings = self.server.settings
        media, encoding = self._check_headers()
        length = self._content_length()
        self.server.deadlines.arm(self.connection, settings.body_timeout_s)
        try:
            body = read_body(
                _raw_pieces(self.rfile, length, settings.max_body_bytes), encoding, settings.max_body_bytes
            )
        finally:
            self.server.deadlines.disarm(self.connection)
        if self.server.deadlines.expired(self.connection):
            raise ConnectionError("body deadline passed")
        response = self._ingest(signal, body, media)
        if media == JSON:
            payload = json_format.MessageToJson(response, indent=None).encode("utf-8")
        else:
            payload = response.SerializeToString()
        self.server.deadlines.arm(self.connection, settings.body_timeout_s)  # a client not reading the reply
        self._reply(200, payload, media)
        self.server.counters.count("http", signal, "200")

    def _check_headers(self) -> tuple[str, str]:
        """Auth, content type and encoding, all known before the body: (media type, content encoding)."""
        if not self.server.authenticator.allows(self.headers.get("Authorization")):
            raise HttpError(
                401,
                "missing or invalid bearer token",
                close=True,
                code=code_pb2.UNAUTHENTICATED,
                headers={"WWW-Authenticate": 'Bearer realm="tokentrace-gateway"'},
            )
        media = _media_type(self.headers.get("Content-Type"))
        if media not in (PROTOBUF, JSON):
            raise HttpError(415, f"unsupported content type {media!r}; use {PROTOBUF} or {JSON}", close=True)
        encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
        if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
            raise HttpError(415, f"unsupported content encoding {encoding!r}; use gzip or deflate", close=True)
        return media, encoding

    def _content_length(self) -> int | None:
        transfer = (self.headers.get("Transfer-Encoding") or "").strip().lower()
        if transfer:
            if transfer != "chunked":
                raise HttpError(
                    501, f"unsupported transfer encoding {transfer!r}", close=True, code=code_pb2.UNIMPLEMENTED
                )
            return None
        raw = self.headers.get("Content-Length")
        if raw is None:
            raise HttpError(411, "Content-Length or chunked transfer encoding required", close=True)
        try:
            length = int(raw)
        except ValueError:
            raise HttpError(400, "malformed Content-Length", close=True) from None
        if length < 0:
            raise HttpError(400, "malformed Content-Length", close=True)
        return length

    def _ingest(self, signal: str, body: bytes, media: str) -> Any:
        engine = self.server.engine
        response = RESPONSES[signal]()
        try:
            if signal == "traces":
                if media == JSON:
                    result = engine.ingest_traces_json(body)
                else:
                    result = engine.ingest_traces(_parse_protobuf(signal, body), body)
                if result.rejected_spans:
                    response.partial_success.rejected_spans = result.rejected_spans
                    response.partial_success.error_message = result.error_message
            else:
                _check_decodes(signal, body, media)
                engine.ingest_passthrough(signal, body, media)
        except HttpError:
            raise
        except TooLarge as exc:  # could never be queued: a retry would be refused the same way
            raise HttpError(413, str(exc), code=code_pb2.RESOURCE_EXHAUSTED) from None
        except Overloaded as exc:
            retry_after = max(1, math.ceil(getattr(exc, "retry_after_s", 1.0) or 1.0))
            # 429 while the engine runs but its queue is full; 503 while it starts or drains
            status = 429 if _ready(engine) else 503
            raise HttpError(
                status,
                f"gateway overloaded: {exc}",
                headers={"Retry-After": str(retry_after)},
                code=code_pb2.UNAVAILABLE,
            ) from None
        except ValueError as exc:
            if signal != "traces" or media != JSON:  # decoded here already: the engine failed, not the client
                self._engine_failed(signal)
            # OTLP/JSON traces are decoded by the engine: its ValueError means undecodable
            raise HttpError(400, f"undecodable {signal} request: {_short(exc)}") from None
        except Exception:
            self._engine_failed(signal)
        return response

    def _engine_failed(self, signal: str) -> NoReturn:
        """Not the client's fault and not acknowledged: logged, and a retryable 503 (never a 500)."""
        logger.exception("ingest failed", extra={"signal": signal, "transport": "http"})
        raise HttpError(
            503,
            "the gateway could not queue this request; retry later",
            headers={"Retry-After": "1"},
            code=code_pb2.UNAVAILABLE,
        ) from None

    # replies
    def _refuse(self, error: HttpError, media: str) -> None:
        status = status_pb2.Status(code=error.code, message=error.message)
        if media == JSON:
            payload = json_format.MessageToJson(status, indent=None).encode("utf-8")
        else:
            payload = status.SerializeToString()
        if error.close:
            self.close_connection = True
            self._linger = True
        try:
            self._reply(error.status, payload, media, error.headers)
        except OSError:
            self.close_connection = True

    def _reply(self, status: int, payload: bytes, media: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        self.wfile.flush()


def _ready(engine: Any) -> bool:
    try:
        return bool(engine.ready())
    except Exception:
        return False


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def _parse_protobuf(signal: str, body: bytes) -> Any:
    try:
        return parse_request(body, signal)
    except ValueError as exc:
        raise HttpError(400, f"undecodable {signal} request: {_short(exc)}") from None


def _check_decodes(signal: str, body: bytes, media: str) -> None:
    """Metrics and logs pass through untouched, but garbage is refused here rather than by the backend."""
    try:
        if media == JSON:
            decode_json(body, signal)
        else:
            parse_request(body, signal)
    except ValueError as exc:
        raise HttpError(400, f"undecodable {signal} request: {_short(exc)}") from None


# --- the server -------------------------------------------------------------------------------------


class OtlpHttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        settings: HttpSettings,
        engine: Any,
        authenticator: Authenticator,
        counters: ReceiverCounters | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.authenticator = authenticator
        self.counters = counters or ReceiverCounters()
        self.deadlines = Deadlines()
        self._active = 0
        self._active_lock = threading.Lock()
        self.ssl_context = _server_context(settings) if settings.tls.enabled else None
        if ":" in settings.host:
            self.address_family = socket.AF_INET6
        super().__init__((settings.host.strip("[]"), settings.port), OtlpHandler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._active_lock:
            busy = self._active >= self.settings.max_connections
            if not busy:
                self._active += 1
        if busy:  # refused from the accept thread, without a thread of its own
            self.counters.count("http", "-", "busy")
            try:
                request.setblocking(False)
                request.send(_BUSY_RESPONSE)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            with self._active_lock:
                self._active -= 1
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._active_lock:
                self._active -= 1

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.ssl_context is not None:
            # the handshake runs here, in the connection's thread, under the header deadline (the reaper
            # must hold the SSL socket: wrapping detaches the plain one)
            request = self.ssl_context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
            self.deadlines.arm(request, self.settings.header_timeout_s)
            try:
                request.do_handshake()
            except (OSError, ssl.SSLError) as exc:
                logger.debug("tls handshake failed", extra={"peer": str(client_address[0]), "reason": str(exc)})
                self.shutdown_request(request)
                return
            finally:
                self.deadlines.forget(request)
        self.RequestHandlerClass(request, client_address, self)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("http connection error", exc_info=True)

    def server_close(self) -> None:
        super().server_close()
        self.deadlines.stop()


def _server_context(settings: HttpSettings) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.tls.cert_file, settings.tls.key_file)
    if settings.tls.client_ca_file:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(settings.tls.client_ca_file)
    return context


class HttpReceiver:
    """Owns the server and its accept thread."""

    def __init__(
        self,
        settings: HttpSettings,
        engine: Any,
        authenticator: Authenticator,
        counters: ReceiverCounters | None = None,
    ) -> None:
        self.server = OtlpHttpServer(settings, engine, authenticator, counters)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server.port

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, name="tokentrace-http-accept", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting; requests in progress finish (their threads are daemons past the grace)."""
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(5)
