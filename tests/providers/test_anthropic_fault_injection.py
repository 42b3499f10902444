"""Fault injection: each of our Anthropic hooks raises, and the application cannot tell.

For every hook (request description, result reader, chunk observer, stream finish, content
capture, pricing, the SDK-span hand-over, the stream-helper patch) the hook is made to raise; the
application must see exactly what an uninstrumented run sees, and the fault must be counted in
``tokentrace.core.safety.internal_errors``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from observed import fingerprint

from tests.providers import test_anthropic_support as support
from tests.providers.test_anthropic_support import MESSAGES, MODEL, WEATHER_TOOL, make_client
from tokentrace.core.pricing import PriceBook
from tokentrace.core.safety import internal_errors
from tokentrace.instrumentation.anthropic import _content, _native, _patch, _requests, _responses

sim = support.sim
traced = support.traced
CAPTURE = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"}


class Boom(RuntimeError):
    """Our bug."""


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise Boom("tokentrace bug")


def _create(client: Any) -> list[Any]:
    return [fingerprint(client.messages.create(model=MODEL, max_tokens=200, messages=MESSAGES, tools=[WEATHER_TOOL]))]


def _stream(client: Any) -> list[Any]:
    return [
        fingerprint(e)
        for e in client.messages.create(
            model=MODEL, max_tokens=200, messages=[{"role": "user", "content": "hi"}], stream=True
        )
    ]


def _helper(client: Any) -> list[Any]:
    with client.messages.stream(model=MODEL, max_tokens=200, messages=[{"role": "user", "content": "hey"}]) as stream:
        text = list(stream.text_stream)
        return [*text, fingerprint(stream.get_final_message())]


def _error(client: Any) -> list[Any]:
    try:
        client.messages.create(model="error-429-claude", max_tokens=200, messages=MESSAGES)
    except Exception as error:
        return [type(error).__name__, error.status_code, error.body["error"]]  # type: ignore[attr-defined]
    return []


# (id, object, attribute, where the fault is counted, how the app calls, settings)
CASES: list[tuple[str, Any, str, str, Callable[[Any], list[Any]], dict[str, str]]] = [
    ("describe", _requests, "describe", "describing the request", _create, {}),
    ("describe-stream", _requests, "describe", "describing the request", _stream, {}),
    ("describe-helper", _requests, "describe", "describing the request", _helper, {}),
    ("apply", _responses, "apply_message", "reading the response", _create, {}),
    ("observe", _responses.StreamReader, "observe", "reading a stream chunk", _stream, {}),
    ("observe-helper", _responses.StreamReader, "observe", "reading a stream chunk", _helper, {}),
    ("finish", _responses.StreamReader, "finish", "finishing stream accumulation", _stream, {}),
    ("capture-input", _content, "input_messages", "capturing content", _create, CAPTURE),
    ("capture-output", _content, "output_message", "reading the response", _create, CAPTURE),
    ("pricing", PriceBook, "cost", "pricing", _create, {}),
    ("pricing-stream", PriceBook, "cost", "pricing", _stream, {}),
    ("helper-patch", _patch, "_request_attribute", "tracing a stream helper", _helper, {}),
    ("error-path", _requests, "describe", "describing the request", _error, {}),
]


@pytest.mark.parametrize("sdk", ["off", "on"])
@pytest.mark.parametrize(
    ("target", "attribute", "where", "run", "env"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_fault_is_contained(sim, traced, telemetry, monkeypatch, sdk, target, attribute, where, run, env) -> None:
    otel = {"tracer_provider": telemetry.tracer_provider} if sdk == "on" else False
    client = make_client(sim, otel=otel)
    baseline = run(client)  # uninstrumented
    telemetry.exporter.clear()
    instrumentor = traced(**env)
    monkeypatch.setattr(target, attribute, _boom)
    before = internal_errors[where]
    observed = run(client)
    assert observed == baseline
    assert internal_errors[where] > before
    monkeypatch.undo()
    instrumentor.uninstrument()
    # Whatever happened, nothing of ours is left open or duplicated: at most one span per call.
    assert len([s for s in telemetry.spans() if s.instrumentation_scope.name.startswith("tokentrace")]) <= 1


@pytest.mark.parametrize("how", ["create", "stream"])
def test_hand_over_fault_leaves_one_span(sim, traced, telemetry, monkeypatch, how) -> None:
    """The hand-over failing: the SDK goes on without a span of its own; ours is still complete."""
    client = make_client(sim, otel={"tracer_provider": telemetry.tracer_provider})
    baseline = (_create if how == "create" else _stream)(client)
    telemetry.exporter.clear()
    traced()
    monkeypatch.setattr(_native, "SdkSpanView", _boom)
    before = internal_errors["handing the span to the SDK"]
    assert (_create if how == "create" else _stream)(client) == baseline
    assert internal_errors["handing the span to the SDK"] > before
    span = telemetry.span()
    assert span.instrumentation_scope.name == "tokentrace.instrumentation.anthropic"
    assert span.attributes["gen_ai.usage.output_tokens"] > 0
