"""The botocore hook that sees each HTTP attempt of an instrumented Bedrock call.

botocore does not send through httpx, so :mod:`tokentrace.instrumentation._http` never sees Bedrock
traffic. botocore's retry loop (``Endpoint._send_request``) runs, per attempt: sign the request,
emit ``before-send``, send it over urllib3, parse it, emit ``response-received``, emit
``needs-retry`` (the retry handler of the ``standard``, ``legacy`` or ``adaptive`` mode returns a
delay) and ``time.sleep`` that delay before the next attempt.

Why botocore's event system rather than wrapping ``Endpoint._send`` / ``_needs_retry``:

* ``before-send`` and ``response-received`` are public, documented events that have fired once per
  HTTP attempt since 2018; ``response-received`` was added precisely "to introspect the HTTP
  response or exception received without the needs-retry event affecting the logic". They give all
  we need: the signed request (credential), the status, headers (request id, retry hints), the
  parsed AWS error code (``ThrottlingException``...) or the exception (``ReadTimeoutError``...).
  ``Endpoint``'s private methods have changed signature across botocore releases; events have not.
* The handlers are registered on the event emitter of each ``bedrock-runtime`` client the first
  time it makes an instrumented call (:func:`watch`), not globally: an S3 or STS client, or any
  client that never made an inference call, has no handler of ours and pays nothing at all. On a
  watched client, a request outside an instrumented call pays one context-variable read per event.
* ``before-send`` is registered *last* on the general ``before-send`` node, so it runs after
  adaptive mode's client-side rate limiter (a ``before-send`` handler that may block): that wait
  counts as waiting between attempts, not as the next attempt's duration.

The wait before the next attempt is measured, not read: no event reports the delay the retry
handler chose (``Endpoint._needs_retry`` sleeps after the handlers return), so it is the time from
one attempt's ``response-received`` to the next attempt's ``before-send`` — botocore's sleep (and
adaptive mode's token-bucket wait) plus re-signing the request, tens of microseconds. That is the
time the application actually lost, which is also what the httpx hook measures.

Bedrock sends no rate-limit headroom headers (nothing like ``x-ratelimit-remaining-*``), so Bedrock
attempts carry status, error code, duration, waits, request id and retry hints (``retry-after``,
``x-amz-retry-after`` in milliseconds, which botocore's standard mode honours) but no
``tokentrace.ratelimit.*`` values. Installed once however many instrumentors use it (reference
counted, like :mod:`~tokentrace.instrumentation._http`); uninstalling removes every handler.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

from tokentrace.core import ratelimits
from tokentrace.core.attempts import CURRENT_CALL, Attempt, api_key_alias, begin_attempt
from tokentrace.core.recorder import error_type_of
from tokentrace.core.safety import report

# The general node, registered last: after every more specific handler and after adaptive mode's
# rate limiter (registered on ``before-send`` at client creation).
SEND_EVENT = "before-send"
RECEIVED_EVENT = "response-received.bedrock-runtime"
_SEND_ID = "tokentrace-attempt-start"
_RECEIVED_ID = "tokentrace-attempt-end"
_AMZ_RETRY_AFTER = "x-amz-retry-after"  # milliseconds (botocore.retries.standard.ExponentialBackoff)

_lock = threading.Lock()
_users = 0
_watched: weakref.WeakSet[Any] = weakref.WeakSet()  # client emitters our handlers are registered on


def credential_alias(headers: Any) -> str | None:
    """The credential a signed request used, by alias. A SigV4 ``Authorization`` header differs on
    every request (date, signature), so the alias is of its access key id (``Credential=AKID/...``);
    a Bedrock API key (``Authorization: Bearer ...``) is aliased like any other API key."""
    value = headers.get("Authorization") if headers is not None else None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str) or not value:
        return None
    if value.startswith("AWS4-"):
        start = value.find("Credential=")
        if start < 0:
            return None
        access_key = value[start + len("Credential=") :].split("/", 1)[0].strip()
        return api_key_alias({"authorization": access_key}) if access_key else None
    return api_key_alias({"authorization": value})


def _error_code(parsed: Any) -> str | None:
    """The AWS error code botocore parsed (``x-amzn-ErrorType`` or the body), as ``error.type``."""
    error = parsed.get("Error") if isinstance(parsed, dict) else None
    code = error.get("Code") if isinstance(error, dict) else None
    if isinstance(code, str) and code:
        return code[0].upper() + code[1:]
    return None


def _amz_retry_after_s(headers: Any) -> float | None:
    value = headers.get(_AMZ_RETRY_AFTER)
    if value is None:
        return None
    try:
        return max(0.0, int(str(value).strip()) / 1000)
    except ValueError:
        return None


def read_attempt(attempt: Attempt, response_dict: Any, parsed: Any, exception: BaseException | None) -> None:
    """Fill in one attempt from ``response-received``'s arguments.

    Not :func:`~tokentrace.core.attempts.end_attempt`: that parses every provider's rate-limit
    headers, some 40 lookups in botocore's case-insensitive ``HeadersDict`` (~40 µs), for headers
    Bedrock never sends. They are parsed only if a header name mentions ``ratelimit``.
    """
    attempt.ended = time.perf_counter()
    if exception is not None or not isinstance(response_dict, dict):
        attempt.error_type = error_type_of(exception if exception is not None else RuntimeError("no response"))
        return  # the same name the call's error.type has (botocore.exceptions.ReadTimeoutError...)
    status = response_dict.get("status_code")
    attempt.status = status if isinstance(status, int) else None
    headers = response_dict.get("headers")
    if headers is None:
        return
    attempt.request_id = headers.get("x-amzn-requestid") or ratelimits.request_id(headers)
    if any("ratelimit" in name.lower() for name in headers):
        attempt.limits = ratelimits.rate_limits(headers)
    if attempt.status is not None and attempt.status >= 400:
        attempt.error_type = _error_code(parsed) or str(attempt.status)
        attempt.retry_after_s = ratelimits.retry_after_s(headers)
        if attempt.retry_after_s is None:
            attempt.retry_after_s = _amz_retry_after_s(headers)


def _on_send(request: Any = None, **kwargs: Any) -> None:
    """``before-send``: the attempt starts. Always returns None (a value would replace the HTTP response)."""
    call = CURRENT_CALL.get()
    if call is None:
        return
    try:
        attempt = begin_attempt()
        attempt.key_alias = credential_alias(getattr(request, "headers", None))
        call.attempts.append(attempt)
    except Exception:
        report("starting an HTTP attempt")


def _on_received(
    response_dict: Any = None, parsed_response: Any = None, exception: BaseException | None = None, **kwargs: Any
) -> None:
    """``response-received``: the attempt ended (a response, or the exception that replaced it)."""
    _end_open_attempt(response_dict, parsed_response, exception)


def abandon(error: BaseException) -> None:
    """End the current call's open attempt with ``error`` when the call raised before
    ``response-received`` fired (a ``KeyboardInterrupt`` mid-request, another handler's failure)."""
    _end_open_attempt(None, None, error)


def _end_open_attempt(response_dict: Any, parsed: Any, exception: BaseException | None) -> None:
    call = CURRENT_CALL.get()
    if call is None:
        return
    try:
        attempts = call.attempts
        if attempts and not attempts[-1].ended:
            read_attempt(attempts[-1], response_dict, parsed, exception)
    except Exception:
        report("reading an HTTP attempt")


def watch(client: Any) -> None:
    """Register the handlers on ``client``'s event emitter (once per client, while installed)."""
    if not _users:
        return
    events = client.meta.events
    if events in _watched:
        return
    with _lock:
        if not _users or events in _watched:
            return
        events.register_last(SEND_EVENT, _on_send, unique_id=_SEND_ID)
        events.register_first(RECEIVED_EVENT, _on_received, unique_id=_RECEIVED_ID)
        _watched.add(events)


def watching(client: Any) -> bool:
    """Whether ``client`` carries our handlers (tests, diagnostics)."""
    try:
        return client.meta.events in _watched
    except Exception:
        return False


def install() -> None:
    """Allow :func:`watch` to register handlers (reference counted)."""
    global _users
    with _lock:
        _users += 1


def uninstall() -> None:
    """Drop one user; the last one removes our handlers from every watched client."""
    global _users
    with _lock:
        _users = max(0, _users - 1)
        if _users:
            return
        for events in list(_watched):
            try:
                events.unregister(SEND_EVENT, unique_id=_SEND_ID)
                events.unregister(RECEIVED_EVENT, unique_id=_RECEIVED_ID)
            except Exception:
                report("removing the botocore attempt hook")
        _watched.clear()
