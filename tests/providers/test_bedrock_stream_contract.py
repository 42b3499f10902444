"""The stream contract for Bedrock's event streams (``converse_stream``'s ``response["stream"]`` and
``invoke_model_with_response_stream``'s ``response["body"]``, botocore ``EventStream`` objects).

Each case runs one way of opening a stream with one way of leaving it twice against the local server:
instrumented, then after ``uninstrument()`` as the baseline. The application must observe the same
events, the same exceptions and the same object behaviour (``next()`` and ``with`` fail the same way:
an EventStream is an iterable with ``close()``, not an iterator or a context manager); the instrumented
run must produce exactly one span, ended once, with the right ``tokentrace.stream.end_reason`` and
``tokentrace.stream.chunks``.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import botocore.eventstream
import botocore.exceptions
import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from tests.providers.servers import bedrock as srv
from tests.providers.servers.bedrock import BedrockServer, make_client
from tests.providers.stream_exits import AppError, take_first
from tokentrace.core import semconv
from tokentrace.core.safety import internal_errors
from tokentrace.instrumentation.bedrock import BedrockInstrumentor

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
LLAMA = "meta.llama3-8b-instruct-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "Stream to me."}]}]


@dataclass(frozen=True)
class Method:
    id: str
    model: str
    open: Callable[[Any, str], Any]  # (client, model) -> the EventStream the app iterates
    operation: str = "chat"
    failed_chunks: int = 2  # events the app sees before the exception event


def _converse(client: Any, model: str) -> Any:
    return client.converse_stream(modelId=model, messages=MESSAGES)["stream"]


def _invoke(client: Any, model: str) -> Any:
    body = {"messages": [{"role": "user", "content": "Stream to me."}], "max_tokens": 20}
    if "llama" in model:
        body = {"prompt": "Stream to me.", "max_gen_len": 20}
    return client.invoke_model_with_response_stream(modelId=model, body=json.dumps(body))["body"]


METHODS = [
    Method("converse_stream", HAIKU, _converse),
    Method("invoke_stream.anthropic", HAIKU, _invoke),
    Method("invoke_stream.llama", LLAMA, _invoke, operation="text_completion"),
]

# exit path -> tokentrace.stream.end_reason
END_REASONS = {
    "exhaust": "completed",
    "reiterate": "completed",
    "break_gc": "abandoned",
    "close": "closed",
    "closing_early": "closed",
    "app_error": "closed",
    "app_error_gc": "abandoned",
    "server_error": "error",
    "never_iterated_gc": "abandoned",
    "close_before_iterating": "closed",
    "next": "closed",
    "with": "closed",
}


@dataclass
class Outcome:
    items: list[Any] = field(default_factory=list)
    error: BaseException | None = None
    raised: AppError | None = None
    current_spans: list[Any] = field(default_factory=list)
    is_event_stream: bool = False
    second_close: Callable[[], Any] | None = None

    def see(self, item: Any) -> None:
        self.items.append(item)
        self.current_spans.append(trace.get_current_span())


def drive(method: Method, exit_path: str, client: Any) -> Outcome:
    out = Outcome()
    model = f"{method.model}~midstream-error" if exit_path == "server_error" else method.model
    stream = method.open(client, model)
    out.is_event_stream = isinstance(stream, botocore.eventstream.EventStream)
    out.current_spans.append(trace.get_current_span())
    if exit_path in ("break_gc", "never_iterated_gc", "app_error_gc"):
        item = None
        try:
            if exit_path != "never_iterated_gc":
                for item in stream:
                    out.see(item)
                    if exit_path == "app_error_gc":
                        out.raised = AppError("the application's own bug")
                        raise out.raised
                    break
        except AppError as error:
            out.error = error
        del stream, item
        gc.collect()
        out.second_close = gc.collect
        return out
    try:
        if exit_path == "exhaust":
            for item in stream:
                out.see(item)
        elif exit_path == "reiterate":  # break, then carry on with a new loop over the same stream
            for item in stream:
                out.see(item)
                break
            for item in stream:
                out.see(item)
        elif exit_path == "close":
            for item in stream:
                out.see(item)
                break
            stream.close()
        elif exit_path in ("closing_early", "app_error"):
            with contextlib.closing(stream) as entered:
                take_first(entered, out, exit_path)
        elif exit_path == "server_error":
            for item in stream:
                out.see(item)
        elif exit_path == "close_before_iterating":
            stream.close()
            for item in stream:
                out.see(item)
        elif exit_path == "next":
            try:
                next(stream)
            finally:
                stream.close()
        elif exit_path == "with":
            try:
                with stream:
                    pass
            finally:
                stream.close()
        else:  # pragma: no cover - a typo in the matrix
            raise AssertionError(exit_path)
    except (AppError, TypeError, botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        out.error = error
    out.current_spans.append(trace.get_current_span())
    out.second_close = stream.close
    return out


@pytest.fixture(scope="module")
def server() -> Any:
    with BedrockServer() as running:
        yield running


def _expected_chunks(method: Method, exit_path: str, traced: Outcome) -> int:
    if exit_path in ("break_gc", "close", "closing_early", "app_error", "app_error_gc"):
        return 1
    if exit_path in ("never_iterated_gc", "close_before_iterating", "next", "with"):
        return 0
    if exit_path == "server_error":
        return method.failed_chunks
    return len(traced.items)


@pytest.mark.parametrize("exit_path", list(END_REASONS))
@pytest.mark.parametrize("method", METHODS, ids=[m.id for m in METHODS])
def test_stream_contract(
    method: Method,
    exit_path: str,
    server: BedrockServer,
    telemetry: Any,
    instrument_with: Any,
    span_ends: list[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.reset()
    instrumentor = instrument_with(BedrockInstrumentor)
    app_tracer = telemetry.tracer_provider.get_tracer("app")
    errors_before = sum(internal_errors.values())
    caplog.set_level(logging.WARNING)
    client = make_client(server)
    with app_tracer.start_as_current_span("app") as app_span:
        traced = drive(method, exit_path, client)
        settled = (len(telemetry.spans()), len(span_ends))
        traced.second_close()  # a second close creates nothing and raises nothing
        assert (len(telemetry.spans()), len(span_ends)) == settled

    instrumentor.uninstrument()
    with app_tracer.start_as_current_span("app"):
        baseline = drive(method, exit_path, client)
        baseline.second_close()

    # The application could not tell the difference.
    assert traced.items == baseline.items
    assert type(traced.error) is type(baseline.error)
    assert str(traced.error) == str(baseline.error)
    assert traced.is_event_stream and baseline.is_event_stream
    if traced.error is not None:
        assert type(traced.error.__context__) is type(baseline.error.__context__)
    if exit_path in ("app_error", "app_error_gc"):
        assert traced.error is traced.raised
    if exit_path in ("next", "with"):
        assert isinstance(traced.error, TypeError)
    if exit_path == "server_error":
        assert isinstance(traced.error, botocore.exceptions.EventStreamError)
    if exit_path in ("exhaust", "reiterate"):
        reply = server.replies[0]
        if method.id == "converse_stream":
            assert len(traced.items) == len(srv.converse_stream_events(reply, None))
        else:
            compact = [json.dumps(c, separators=(",", ":")).encode() for c in srv.invoke_stream_chunks(reply)]
            assert traced.items == [{"chunk": {"bytes": data}} for data in compact]
    assert all(span is app_span for span in traced.current_spans)

    # Exactly one span, ended exactly once, a child of the application's span.
    spans = [s for s in telemetry.spans() if s.name != "app"]
    assert len(spans) == 1, [s.name for s in telemetry.spans()]
    span = spans[0]
    assert span.name == f"{method.operation} {method.model}" + (
        "~midstream-error" if exit_path == "server_error" else ""
    )
    assert [s.context.span_id for s in span_ends] == [span.context.span_id]
    assert span.parent is not None and span.parent.span_id == app_span.get_span_context().span_id
    attributes = dict(span.attributes)
    assert attributes[semconv.STREAM_END_REASON] == END_REASONS[exit_path]
    assert attributes[semconv.STREAM_CHUNKS] == _expected_chunks(method, exit_path, traced)
    if exit_path == "server_error":
        assert span.status.status_code is StatusCode.ERROR
        assert attributes[semconv.ERROR_TYPE] == "ModelStreamErrorException"
    else:
        assert span.status.status_code is StatusCode.UNSET
        assert semconv.ERROR_TYPE not in attributes
    if END_REASONS[exit_path] == "completed":
        reply = server.replies[0]
        assert attributes[semconv.USAGE_SOURCE] == "reported"
        assert attributes[semconv.USAGE_INPUT_TOKENS] == reply.input_tokens + (reply.cache_read or 0) + (
            reply.cache_write or 0
        )
        assert attributes[semconv.USAGE_OUTPUT_TOKENS] == reply.output_tokens
    assert sum(internal_errors.values()) == errors_before, dict(internal_errors)
    assert not [r for r in caplog.records if "ended span" in r.getMessage()]
    assert srv.family_of(method.model)  # the server chose the family from the model id


def test_iterators_are_independent_generators(server: BedrockServer, telemetry: Any, instrument_with: Any) -> None:
    """``iter()`` of an EventStream gives a new generator each time, over the same events."""
    instrument_with(BedrockInstrumentor)
    stream = _converse(make_client(server), HAIKU)
    first, second = iter(stream), iter(stream)
    assert first is not second and first is not stream
    one = next(first)
    two = next(second)
    assert one != two  # both draw from the one underlying event sequence
    rest = list(first)
    assert len(rest) + 2 == telemetry.span().attributes[semconv.STREAM_CHUNKS]


def test_a_live_generator_keeps_the_span_open(server: BedrockServer, telemetry: Any, instrument_with: Any) -> None:
    """The app may drop the response and keep only ``iter(stream)``: the span is not abandoned under it."""
    instrument_with(BedrockInstrumentor)
    response = make_client(server).converse_stream(modelId=HAIKU, messages=MESSAGES)
    events = iter(response["stream"])
    first = next(events)
    del response
    gc.collect()
    assert telemetry.spans() == []
    rest = list(events)
    attributes = telemetry.span().attributes
    assert attributes[semconv.STREAM_END_REASON] == "completed"
    assert attributes[semconv.STREAM_CHUNKS] == 1 + len(rest)
    assert first == {"messageStart": {"role": "assistant"}}


@pytest.mark.parametrize("model", [HAIKU, "amazon.nova-lite-v1:0", LLAMA])
def test_unfinished_stream_is_estimated_from_the_text_seen(
    model: str, server: BedrockServer, telemetry: Any, instrument_with: Any
) -> None:
    """Closed before Bedrock's invocation metrics arrive: output tokens are estimated from the text
    the app received (text deltas are parsed lazily, at the end, for exactly this case)."""
    server.reset()
    from tokentrace.core.tokens import shared_estimator

    instrument_with(BedrockInstrumentor)
    body = {"prompt": "hi"} if "llama" in model else {"messages": [{"role": "user", "content": "hi"}]}
    stream = make_client(server).invoke_model_with_response_stream(modelId=model, body=json.dumps(body))["body"]
    texts = []
    for event in stream:
        payload = json.loads(event["chunk"]["bytes"])
        delta = payload.get("delta") or payload.get("contentBlockDelta", {}).get("delta") or {}
        text = delta.get("text") or payload.get("generation")
        if text:
            texts.append(text)
        if len(texts) == 4:
            break
    stream.close()
    attributes = telemetry.span().attributes
    assert attributes[semconv.STREAM_END_REASON] == "closed"
    if model == HAIKU:
        # Anthropic's message_start already reported the input: the core records that exact half and,
        # with usage partly known, estimates nothing (no output count rather than a mixed one).
        (reply,) = server.replies
        assert attributes[semconv.USAGE_SOURCE] == "reported"
        assert attributes[semconv.USAGE_INPUT_TOKENS] == reply.input_tokens + reply.cache_read + reply.cache_write
        assert semconv.USAGE_OUTPUT_TOKENS not in attributes
        return
    assert attributes[semconv.USAGE_SOURCE] == "estimated"
    assert attributes[semconv.USAGE_OUTPUT_TOKENS] == shared_estimator.count_text(model, texts)
