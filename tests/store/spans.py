"""Spans with known values, for store and report tests."""

from __future__ import annotations

import itertools
from typing import Any

from tokentrace.processor.model import STATUS_ERROR, STATUS_UNSET, SpanData

_ids = itertools.count(1)
BASE_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z


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
    **attributes: Any,
) -> SpanData:
    """One LLM call span; keyword ``attributes`` use ``__`` for ``.`` (``tokentrace__tenant``)."""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
    }
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
    )
