"""The fast attribute decoder (entry bytes -> entry cache) against the plain one, value for value."""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.gateway.backend import genai_request
from tokentrace.gateway import otlp_values
from tokentrace.gateway.otlp_codec import decode_request
from tokentrace.gateway.otlp_values import attribute_pairs, decode_attributes, encode_value

scalars = st.one_of(
    st.text(max_size=40),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.binary(max_size=20),
    st.none(),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=4),
    st.dictionaries(st.text(max_size=8), scalars, max_size=3),
    st.text(min_size=300, max_size=400),  # longer than the cache takes
)


def span_attributes(span: trace_pb2.Span) -> dict[str, object]:
    """What the gateway decodes from the span's attribute entries."""
    return dict(attribute_pairs([kv.SerializeToString() for kv in span.attributes]))


def span_with(attributes: list[tuple[str, object]]) -> trace_pb2.Span:
    return trace_pb2.Span(
        trace_id=b"\x01" * 16,
        span_id=b"\x02" * 8,
        name="chat",
        start_time_unix_nano=1,
        end_time_unix_nano=2,
        flags=0x301,
        status=trace_pb2.Status(code=2, message="boom"),
        attributes=[common_pb2.KeyValue(key=key, value=encode_value(value)) for key, value in attributes],
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "gen_ai.x", "ü", ""]), values), max_size=8))
def test_same_as_the_plain_decoder_twice_over(attributes: list[tuple[str, object]]) -> None:
    span = span_with(attributes)
    expected = decode_attributes(span.attributes)
    for _ in range(2):  # the second time from the cache
        got = span_attributes(span)
        assert got == expected
        assert list(got) == list(expected)  # same key order, duplicates resolved the same way
        assert [type(v) for v in got.values()] == [type(v) for v in expected.values()]


def test_arrays_are_tuples_so_a_cached_one_is_shared_safely() -> None:
    span = span_with([("gen_ai.response.finish_reasons", ["stop"]), ("nested", {"k": [1, 2]})])
    for _ in range(3):  # decoded, then twice from the cache
        got = span_attributes(span)
        assert got["gen_ai.response.finish_reasons"] == ("stop",)  # as the SDK holds arrays
        assert got["nested"] == {"k": [1, 2]}  # inside a map: plain JSON-like values


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=140), st.text(max_size=140))
def test_string_entries_read_by_slicing_match_the_runtime(key: str, text: str) -> None:
    data = common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=text)).SerializeToString()
    pair = otlp_values._string_entry(data)
    kv = common_pb2.KeyValue.FromString(data)
    assert pair is None or pair == (kv.key, kv.value.string_value)
    if key and len(key.encode()) < 128 and len(text.encode()) < 126:  # proto3 leaves an empty key out
        assert pair == (key, text)  # the layout every SDK writes is read without the runtime


@pytest.mark.parametrize(
    "value",
    [common_pb2.AnyValue(), common_pb2.AnyValue(int_value=5), common_pb2.AnyValue(bytes_value=b"\x0a\x01a")],
)
def test_other_values_are_left_to_the_runtime(value: common_pb2.AnyValue) -> None:
    assert otlp_values._string_entry(common_pb2.KeyValue(key="k", value=value).SerializeToString()) is None


def test_a_string_that_is_not_utf8_is_the_runtimes_error() -> None:
    data = b"\x0a\x01k\x12\x03\x0a\x01\xff"  # key "k", string_value of one invalid byte
    assert otlp_values._string_entry(data) is None
    with pytest.raises(DecodeError):
        otlp_values.entry(data)


def test_the_cache_stays_bounded(monkeypatch) -> None:
    monkeypatch.setattr(otlp_values, "ENTRY_CACHE_LIMIT", 10)
    for index in range(50):
        span_attributes(span_with([(f"key.{index % 7}", f"id-{index}")]))
    assert len(otlp_values._scalar_entries) <= 10


def test_a_key_whose_values_never_repeat_stops_filling_the_cache(monkeypatch) -> None:
    monkeypatch.setattr(otlp_values, "KEY_SHARE_LIMIT", 8)
    monkeypatch.setattr(otlp_values, "_volatile_keys", set())
    model = span_with([("gen_ai.request.model", "gpt-4o-mini")])
    span_attributes(model)
    for index in range(100):
        got = span_attributes(span_with([("gen_ai.response.id", f"chatcmpl-{index}")]))
        assert got == {"gen_ai.response.id": f"chatcmpl-{index}"}  # still decoded, every time
    cached_ids = [pair for pair in otlp_values._scalar_entries.values() if pair[0] == "gen_ai.response.id"]
    assert len(cached_ids) <= 8
    assert "gen_ai.response.id" in otlp_values._volatile_keys
    entry = model.attributes[0].SerializeToString()
    assert otlp_values._scalar_entries[entry] == ("gen_ai.request.model", "gpt-4o-mini")  # the rest stays


def test_an_entry_that_is_not_a_key_value_rejects_its_span() -> None:
    request = genai_request(1, 2, seed=5)
    body = bytearray(request.SerializeToString())
    good = request.resource_spans[0].scope_spans[1].spans[0].attributes[0].SerializeToString()
    at = bytes(body).index(good)
    body[at] = 0xFF  # an invalid tag inside the first attribute entry of the chat span
    decoded = decode_request(bytes(body))
    assert decoded.rejected == 1 and "not a valid KeyValue" in decoded.error_message
    assert len(decoded.spans) == 1


def test_decode_request_matches_the_plain_decoder() -> None:
    request = genai_request(8, 4, seed=3, error=True)
    spans = [span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]
    decoded = decode_request(request).spans
    assert [d.attributes for d in decoded] == [decode_attributes(span.attributes) for span in spans]
    assert all(type(d.attributes["gen_ai.response.finish_reasons"]) is tuple for d in decoded if d.kind == 3)
