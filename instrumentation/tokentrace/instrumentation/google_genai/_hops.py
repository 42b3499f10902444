"""The HTTP requests behind one ``generate_content`` call, for its usage.

``Models.generate_content`` may send several requests: automatic function calling (a Python function
in ``tools``; also what ``Chat.send_message`` runs) answers the model's function calls and asks again,
and automatic continuation follows continuation tokens. The response the application gets carries
one request's usage (or a merge), yet every request is billed. So while our span's
``generate_content`` runs, a light wrapper on the SDK's single-request method ``_generate_content``
notes each response's ``usage_metadata``; the call's usage is their sum.

The list lives in a context variable set only around our own wrapped call, so a direct call of the
private method (or one from an untraced path) notes nothing. Where an SDK version lacks
``_generate_content`` the list stays empty and the final response's usage is used, as before.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any

from tokentrace.core.safety import report

_usages: ContextVar[list[Any] | None] = ContextVar("tokentrace_google_genai_hops", default=None)


def start() -> Token[list[Any] | None] | None:
    """Begin noting requests for the ``generate_content`` call about to run (guarded: None on failure)."""
    try:
        return _usages.set([])
    except Exception:
        report("collecting request usage")
        return None


def stop(token: Token[list[Any] | None] | None) -> None:
    if token is not None:
        try:
            _usages.reset(token)
        except Exception:
            report("collecting request usage")


def current() -> list[Any] | None:
    return _usages.get()


def _note(result: Any) -> None:
    usages = _usages.get()
    if usages is not None:
        usages.append(getattr(result, "usage_metadata", None))


def note_sync(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    result = wrapped(*args, **kwargs)
    try:
        _note(result)
    except Exception:
        report("noting a request's usage")
    return result


async def note_async(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    result = await wrapped(*args, **kwargs)
    try:
        _note(result)
    except Exception:
        report("noting a request's usage")
    return result
