"""Mistral's wire format (``POST /v1/chat/completions``, ``/v1/embeddings``) on 127.0.0.1.

A stream's usage arrives on its last chunk (with the finish reason) before ``data: [DONE]``; a
failure mid-stream shows as a dropped connection. Error bodies are Mistral's: ``{"object": "error",
"message": ..., "type": ..., "code": ...}`` for request errors, ``{"message": ...}`` for rate limits
and authentication, ``{"detail": [...]}`` for validation (422).
"""

from __future__ import annotations

from typing import Any

from tests.providers.servers.chat_compatible import ChatServer, Profile
from tests.providers.servers.faults import MISTRAL


def error_body(status: int) -> dict[str, Any]:
    if status == 429:
        return {"message": "Requests rate limit exceeded", "request_id": "req-429"}
    if status == 401:
        return {"message": "Unauthorized", "request_id": "req-401"}
    if status == 422:
        return {"detail": [{"type": "missing", "loc": ["body", "messages"], "msg": "Field required"}]}
    kind = "internal_server_error" if status >= 500 else "invalid_request_error"
    return {"object": "error", "message": f"status {status}", "type": kind, "param": None, "code": str(status)}


PROFILE = Profile(
    name="mistral",
    prefix="/v1",
    usage_in_x_groq=False,
    error_body=error_body,
    midstream_event=False,
    dialect=MISTRAL,
    extra_fields=lambda number: {},
)


def server() -> ChatServer:
    """A Mistral-speaking server; clients use ``server_url=server.root_url``."""
    return ChatServer(PROFILE)
