"""Assertions shared by the deployment tests: what Jaeger holds against what the application did."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

from tests.deploy.harness import JaegerSpan
from tests.deploy.workload import App


def chat_spans(spans: list[Any]) -> list[Any]:
    """The application's chat spans of one trace, in the order the calls were made."""
    return sorted(
        (span for span in spans if (span.attributes or {}).get("gen_ai.operation.name") == "chat"),
        key=lambda span: span.start_time,
    )


def check_trace(app: App, trace_id: str, stored: list[JaegerSpan], reason: str, service: str) -> None:
    """One kept trace in Jaeger: complete, each span once, GenAI attributes, tokens, cost, flags and the
    trace roll-ups equal to what the application did, and the sampling reason the settings predict."""
    emitted = app.spans()[trace_id]
    request = app.requests[trace_id]
    by_id = {span.span_id: span for span in stored}
    assert len(by_id) == len(stored), f"trace {trace_id}: a span stored twice"
    assert set(by_id) == {f"{span.context.span_id:016x}" for span in emitted}, f"trace {trace_id} incomplete"
    for span in stored:
        assert span.resource.get("service.name") == service
        got_reason = span.attributes.get("tokentrace.sampling.reason")
        assert got_reason == reason, (trace_id, span.name, got_reason, reason)
    for app_span in emitted:  # everything the application recorded arrives unchanged
        got = by_id[f"{app_span.context.span_id:016x}"]
        assert got.name == app_span.name
        assert got.failed == (app_span.status.status_code is StatusCode.ERROR)
        sent = {key: list(value) if isinstance(value, tuple) else value for key, value in app_span.attributes.items()}
        changed = {
            key: (value, got.attributes.get(key)) for key, value in sent.items() if got.attributes.get(key) != value
        }
        assert not changed, (app_span.name, changed)
    calls = chat_spans(emitted)
    assert len(calls) == len(request.calls)
    for call, app_span in zip(request.calls, calls, strict=True):
        got = by_id[f"{app_span.context.span_id:016x}"].attributes
        assert got["gen_ai.operation.name"] == "chat"
        assert got["gen_ai.provider.name"] == "openai"
        assert got["gen_ai.request.model"] == call.model
        if call.failed:
            assert got["error.type"] == "openai.InternalServerError"  # the simulator's 500
            assert got["tokentrace.cost.unavailable_reason"] == "usage_unknown"
            assert "gen_ai.usage.input_tokens" not in got and "gen_ai.usage.cost.amount" not in got
            continue
        assert got["gen_ai.response.model"].startswith(call.model)
        assert got["gen_ai.usage.input_tokens"] == call.input_tokens
        assert got["gen_ai.usage.output_tokens"] == call.output_tokens
        assert got["gen_ai.usage.cost.amount"] == pytest.approx(call.cost, abs=1e-9)
        assert got["gen_ai.usage.cost.currency"] == "USD"
        assert got["gen_ai.response.finish_reasons"] == [call.finish_reason]
        assert got["tokentrace.prompt.fingerprint"]
        if call.kind == "truncated":
            assert call.finish_reason == "length"
            assert got["tokentrace.flags"] == ["truncated"] and got["tokentrace.flag.truncated"] is True
        else:
            assert "tokentrace.flags" not in got
    root = next(span for span in stored if not span.parent_span_id)
    costs = [call.cost for call in request.calls if call.cost is not None]
    assert root.attributes["tokentrace.trace.llm_calls"] == len(request.calls)
    assert root.attributes["tokentrace.trace.usage.input_tokens"] == sum(c.input_tokens or 0 for c in request.calls)
    assert root.attributes["tokentrace.trace.usage.output_tokens"] == sum(c.output_tokens or 0 for c in request.calls)
    assert root.attributes["tokentrace.trace.cost.amount"] == pytest.approx(sum(costs), abs=1e-9)


def check_kept(app: App, stored: Mapping[str, list[JaegerSpan]], kept: Mapping[str, str], service: str) -> None:
    """Jaeger holds exactly the kept traces (the dropped ones are absent), each as :func:`check_trace` says."""
    missing = sorted(set(kept) - set(stored))
    unexpected = sorted(set(stored) - set(kept))
    assert not missing and not unexpected, f"missing kept traces {missing}; traces that should be dropped {unexpected}"
    for trace_id, reason in kept.items():
        check_trace(app, trace_id, list(stored[trace_id]), reason, service)
