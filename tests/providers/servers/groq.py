"""Groq's wire format (``POST /openai/v1/chat/completions``, ``/openai/v1/embeddings``) on 127.0.0.1.

Results carry Groq's extras (``x_groq.id``, ``system_fingerprint``); a stream's usage arrives on
its last chunk as ``x_groq.usage``; a failure mid-stream is an ``event: error`` frame. Error bodies
are ``{"error": {"message": ..., "type": ..., "code": ...}}``.
"""

from __future__ import annotations

from typing import Any

from tests.providers.servers.chat_compatible import ChatServer, Profile
from tests.providers.servers.faults import GROQ

_ERRORS = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("tokens", "rate_limit_exceeded"),
}


def error_body(status: int) -> dict[str, Any]:
    kind, code = _ERRORS.get(status, ("internal_server_error", None))
    error: dict[str, Any] = {"message": f"status {status}", "type": kind}
    if code:
        error["code"] = code
    return {"error": error}


PROFILE = Profile(
    name="groq",
    prefix="/openai/v1",
    usage_in_x_groq=True,
    error_body=error_body,
    midstream_event=True,
    dialect=GROQ,
    extra_fields=lambda number: {"system_fingerprint": "fp_test", "x_groq": {"id": f"req_{number}"}},
)


def server() -> ChatServer:
    """A Groq-speaking server; clients use ``base_url=server.root_url`` (the SDK adds ``/openai/v1``)."""
    return ChatServer(PROFILE)
