"""Spans with known values, for store and report tests."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace import Event

from tokentrace.processor.model import STATUS_ERROR, STATUS_UNSET, SpanData

_ids = itertools.count(1)
BASE_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z


@dataclass
class Origin:
    """What the in-process exporter's ``ReadableSpan`` gives the store besides attributes: its events."""

    events: tuple[Event, ...]


def attempt_events(*outcomes: int | str, start_ns: int = BASE_NS) -> tuple[Event, ...]:
    """``tokentrace.http.attempt`` events as the recorder writes them: an int is an HTTP status (>= 400
    failed, with ``error.type`` the status), a str a transport error type."""
    events = []
    for number, outcome in enumerate(outcomes, start=1):
        attributes: dict[str, Any] = {"tokentrace.http.attempt.number": number, "tokentrace.http.attempt.duration": 0.1}
        if isinstance(outcome, int):
            attributes["http.response.status_code"] = outcome
            if outcome >= 400:
                attributes["error.type"] = str(outcome)
        else:
            attributes["error.type"] = outcome
        if number < len(outcomes):
            attributes["tokentrace.http.wait_before_next"] = 0.05
        events.append(Event("tokentrace.http.attempt", attributes, start_ns + number))
    return tuple(events)


def health(
    attempts: int,
    retry_wait: float = 0.0,
    failed: float = 0.0,
    request_id: str | None = None,
    alias: str | None = None,
    **buckets: tuple[float, float],
) -> dict[str, Any]:
    """The provider-health attributes of a call span; ``buckets`` name=(limit, remaining)."""
    attributes: dict[str, Any] = {
        "tokentrace.http.attempts": attempts,
        "tokentrace.http.retry_wait": retry_wait,
        "tokentrace.http.failed_attempts.duration": failed,
    }
    if request_id:
        attributes["tokentrace.request_id"] = request_id
    if alias:
        attributes["tokentrace.api_key.alias"] = alias
    for bucket, (limit, remaining) in buckets.items():
        attributes[f"tokentrace.ratelimit.{bucket}.limit"] = limit
        attributes[f"tokentrace.ratelimit.{bucket}.remaining"] = remaining
        attributes[f"tokentrace.ratelimit.{bucket}.reset"] = 1.5
    return attributes


def llm_span(
    *,
    start_s: float = 0.0,
    duration_s: float = 1.0,
    model: str = "gpt-4o-mini",
    provider: str = "openai",
    cost: float | None = 0.001,
    input_tokens: int | None = 100,
    output_tokens: int | None = 20,
    error_type: str | None = None,
    service: str = "svc",
    start_ns: int | None = None,
    response_model: str | None = "",
    extra: dict[str, Any] | None = None,
    events: Sequence[Event] | None = None,
    **attributes: Any,
) -> SpanData:
    """One LLM call span; keyword ``attributes`` use ``__`` for ``.`` (``tokentrace__tenant``), ``extra``
    ones are added as named. ``response_model`` defaults to ``model`` (None: no response model).
    ``events`` given: the span comes with an origin holding them, like a ``ReadableSpan``."""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
    }
    if response_model is not None:
        attrs["gen_ai.response.model"] = response_model or model
    if input_tokens is not None:
        attrs["gen_ai.usage.input_tokens"] = input_tokens
    if output_tokens is not None:
        attrs["gen_ai.usage.output_tokens"] = output_tokens
    if cost is not None:
        attrs["gen_ai.usage.cost.amount"] = cost
    if error_type is not None:
        attrs["error.type"] = error_type
    for key, value in attributes.items():
        attrs[key.replace("__", ".")] = value
    attrs.update(extra or {})
    start = start_ns if start_ns is not None else BASE_NS + int(start_s * 1e9)
    n = next(_ids)
    return SpanData(
        trace_id=n,
        span_id=n,
        parent_span_id=None,
        name=f"chat {model}",
        kind=3,
        start_ns=start,
        end_ns=start + round(duration_s * 1e9),
        attributes=attrs,
        resource={"service.name": service},
        status_code=STATUS_ERROR if error_type else STATUS_UNSET,
        origin=Origin(tuple(events)) if events is not None else None,
    )
