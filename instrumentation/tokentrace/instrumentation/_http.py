"""The HTTP client hook that sees each attempt of an instrumented SDK call.

Most LLM SDKs (openai 1.x/2.x, anthropic, groq, mistralai, cohere, ollama, google-genai) send
through ``httpx``; openai 3.x through ``httpx2``. Their retry loops call the client's ``send`` once
per attempt, so wrapping ``send`` sees every attempt, whichever SDK version and retry policy. The
hook does nothing unless an instrumented call is running in the current context
(:data:`~tokentrace.core.attempts.CURRENT_CALL`), so the application's other HTTP traffic pays one
context-variable read. Installed once however many instrumentors use it (reference counted).
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from opentelemetry.instrumentation.utils import unwrap
from wrapt import wrap_function_wrapper

from tokentrace.core.attempts import CURRENT_CALL, begin_attempt, end_attempt
from tokentrace.core.safety import report

_TARGETS = (
    ("httpx", "Client", False),
    ("httpx", "AsyncClient", True),
    ("httpx2", "Client", False),
    ("httpx2", "AsyncClient", True),
)
_lock = threading.Lock()
_users = 0
_patched: list[tuple[Any, str]] = []


def _start(call: Any, args: Any) -> Any:
    try:
        attempt = begin_attempt(args[0] if args else None)
        call.attempts.append(attempt)
        return attempt
    except Exception:
        report("starting an HTTP attempt")
        return None


def _finish(attempt: Any, response: Any = None, error: BaseException | None = None) -> None:
    if attempt is None:
        return
    try:
        end_attempt(attempt, response, error)
    except Exception:
        report("reading an HTTP attempt")


def _send(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    call = CURRENT_CALL.get()
    if call is None:
        return wrapped(*args, **kwargs)
    attempt = _start(call, args)
    try:
        response = wrapped(*args, **kwargs)
    except BaseException as error:
        _finish(attempt, error=error)
        raise
    _finish(attempt, response)
    return response


async def _send_async(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    call = CURRENT_CALL.get()
    if call is None:
        return await wrapped(*args, **kwargs)
    attempt = _start(call, args)
    try:
        response = await wrapped(*args, **kwargs)
    except BaseException as error:
        _finish(attempt, error=error)
        raise
    _finish(attempt, response)
    return response


def install() -> None:
    """Wrap ``send`` of every installed httpx flavour (once, however many callers)."""
    global _users
    with _lock:
        _users += 1
        if _users > 1:
            return
        for module_name, class_name, is_async in _TARGETS:
            try:
                cls = getattr(importlib.import_module(module_name), class_name)
            except (ImportError, AttributeError):
                continue
            wrap_function_wrapper(cls, "send", _send_async if is_async else _send)
            _patched.append((cls, "send"))


def uninstall() -> None:
    global _users
    with _lock:
        _users = max(0, _users - 1)
        if _users:
            return
        for cls, method in _patched:
            unwrap(cls, method)
        _patched.clear()
