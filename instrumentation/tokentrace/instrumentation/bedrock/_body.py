"""Reading an InvokeModel response body without taking it from the application.

``response["body"]`` is a ``botocore.response.StreamingBody`` the application reads after the call
returns. The span wants what is in it (finish reason, response id, per-family usage, output text),
so we read it once, completely, right after the call, and hand the application a new
``StreamingBody`` over the very same bytes. Why this and not a lazy tee that observes the app's
reads: InvokeModel is not streamed; Bedrock has already sent the whole (small) JSON document, so
reading it now costs nothing the app would not pay a moment later, lets the span end when the call
returns (a lazily read body would keep it open until the app reads, perhaps never), and returns the
HTTP connection to the pool at once.

What the application still sees: the same bytes from ``read()``, ``read(n)``, ``iter_lines()``,
``iter_chunks()``, ``readlines()`` and iteration; ``close()``; content-length verification; reads
after ``close()`` returning ``b""`` as urllib3's response does; attributes of the original urllib3
response (``headers``, ``status``...) through ``body._raw_stream``. If reading failed (timeout,
connection reset, truncated body), the app's first read raises the *same* exception object our
``read()`` got, as its own ``read()`` would have without us.
Caveat: on such a broken body, an app reading in pieces (``read(n)``, ``iter_lines()``) gets that
exception on its first read instead of after the partial bytes (and the ``read()``-style exception,
``ResponseStreamingError``, rather than ``IncompleteReadError``).
Caveat: ``set_socket_timeout()`` on the replayed body raises AttributeError (there is no socket left
to time out: the body is already in memory).
"""

from __future__ import annotations

import io
from typing import Any

from botocore.response import StreamingBody


class ReplayedRaw(io.BytesIO):
    """Bytes already received, read like the urllib3 response they came from."""

    def __init__(self, data: bytes, original: Any, error: BaseException | None) -> None:
        super().__init__(data)
        self._original = original
        self._error = error

    def _fail(self) -> None:
        error = self._error
        if error is not None:
            raise error

    def read(self, amt: int | None = None) -> bytes:  # type: ignore[override]
        if self.closed:
            return b""
        if amt is None or amt < 0:
            self._fail()
            return super().read()
        chunk = super().read(amt)
        if not chunk and amt > 0:
            self._fail()
        return chunk

    def readinto(self, buffer: Any) -> int:  # type: ignore[override]
        if self.closed:
            return 0
        count = super().readinto(buffer)
        if count == 0 and len(buffer) > 0:
            self._fail()
        return count

    def stream(self, amt: int = 2**16, decode_content: bool | None = None) -> Any:
        while True:
            chunk = self.read(amt)
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        super().close()
        original = self._original
        if original is not None:
            original.close()

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes BytesIO lacks: the original urllib3 response's (headers, status...).
        original = self.__dict__.get("_original")
        if original is None:
            raise AttributeError(name)
        return getattr(original, name)


def drain(body: StreamingBody) -> tuple[bytes, StreamingBody, BaseException | None]:
    """Read ``body`` to the end; return its bytes, a body replaying them for the app, and any read error."""
    data = b""
    error: BaseException | None = None
    try:
        data = body.read()  # as the app would: one read(), which also verifies the content length
    except Exception as exc:  # the app's own read would have raised it; it will, from the replay
        error = exc
    original = getattr(body, "_raw_stream", None)
    replay = ReplayedRaw(data, original, error)
    return data, StreamingBody(replay, None if error is not None else len(data)), error
