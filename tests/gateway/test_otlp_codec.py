"""The OTLP codec: protobuf spans <-> SpanData, write-back of changes, and the OTLP/JSON decoder."""

from __future__ import annotations

import base64
import json

import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.gateway.backend import genai_request
from tokentrace.gateway.otlp_codec import decode_request, encode_spans, parse_request
from tokentrace.gateway.otlp_json import decode_json
from tokentrace.gateway.otlp_values import decode_value, encode_value

ID_KEYS = {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}


def _any(value):
    return encode_value(value)


def rich_request() -> ExportTraceServiceRequest:
    """Every AnyValue kind, events, links, status, flags, trace state, dropped counts, two resources."""
    request = genai_request(2, 3, seed=7)
    span = request.resource_spans[0].scope_spans[1].spans[0]
    span.attributes.extend(
        [
            common_pb2.KeyValue(key="list.int", value=_any([1, 2, 3])),
            common_pb2.KeyValue(key="list.mixed", value=_any(["a", 1, 2.5, True])),
            common_pb2.KeyValue(key="kv", value=_any({"a": 1, "nested": {"b": [b"\x00\x01"]}})),
            common_pb2.KeyValue(key="blob", value=_any(b"\x00\xffbytes")),
            common_pb2.KeyValue(key="empty", value=common_pb2.AnyValue()),
            common_pb2.KeyValue(key="big", value=_any(-(2**63))),
            common_pb2.KeyValue(key="nan", value=_any(float("nan"))),
            common_pb2.KeyValue(key="inf", value=_any(float("-inf"))),
        ]
    )
    span.trace_state = "vendor=abc"
    span.dropped_attributes_count = 3
    span.events.add(
        time_unix_nano=123,
        name="gen_ai.content.prompt",
        attributes=[common_pb2.KeyValue(key="x", value=_any("y"))],
        dropped_attributes_count=1,
    )
    span.links.add(
        trace_id=b"\x01" * 16,
        span_id=b"\x02" * 8,
        trace_state="a=b",
        flags=0x301,
        attributes=[common_pb2.KeyValue(key="l", value=_any(5))],
    )
    span.status.code = trace_pb2.Status.STATUS_CODE_ERROR
    span.status.message = "boom"
    other = request.resource_spans.add()
    other.resource.attributes.add(key="service.name", value=_any("other"))
    other.resource.dropped_attributes_count = 2
    scope = other.scope_spans.add(schema_url="https://example/scope")
    scope.scope.name = "lib"
    scope.scope.version = "1"
    scope.scope.attributes.add(key="scope.attr", value=_any(True))
    scope.spans.add(
        trace_id=b"\x03" * 16,
        span_id=b"\x04" * 8,
        name="lonely",
        kind=4,
        flags=0x300,
        parent_span_id=b"\x05" * 8,
        start_time_unix_nano=2**63 + 5,
        end_time_unix_nano=2**64 - 1,
    )
    return request


def otlp_json(message, *, integers_for_enums: bool = True, proto_names: bool = False) -> str:
    """OTLP/JSON as the spec writes it: hex ids (json_format writes base64)."""
    data = json_format.MessageToDict(
        message, use_integers_for_enums=integers_for_enums, preserving_proto_field_name=proto_names
    )

    def fix(node):
        if isinstance(node, dict):
            return {
                key: (base64.b64decode(value).hex() if key in ID_KEYS and isinstance(value, str) else fix(value))
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [fix(item) for item in node]
        return node

    return json.dumps(fix(data))


# --- protobuf <-> SpanData ----------------------------------------------------------------------------


def test_decode_reads_every_field():
    request = rich_request()
    decoded = decode_request(request)
    assert decoded.rejected == 0
    assert len(decoded.spans) == 2 * 3 + 1
    span = decoded.spans[2]  # first chat span of the first trace
    pb = request.resource_spans[0].scope_spans[1].spans[0]
    assert trace_pb2.Span.FromString(span.origin.SerializeToString()) == pb  # every field kept
    assert span.trace_id == int.from_bytes(pb.trace_id, "big")
    assert span.span_id == int.from_bytes(pb.span_id, "big")
    assert span.parent_span_id == int.from_bytes(pb.parent_span_id, "big")
    assert (span.name, span.kind, span.start_ns, span.end_ns) == (
        pb.name,
        3,
        pb.start_time_unix_nano,
        pb.end_time_unix_nano,
    )
    assert (span.status_code, span.status_message) == (2, "boom")
    assert span.scope_name == "opentelemetry.instrumentation.openai_v2"
    assert span.resource["service.name"] == "support-bot"
    attributes = span.attributes
    assert attributes["gen_ai.usage.input_tokens"] == pb.attributes[8].value.int_value
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)  # arrays as the SDK holds them
    assert attributes["gen_ai.request.temperature"] == 0.2
    assert attributes["list.mixed"] == ("a", 1, 2.5, True)
    assert attributes["kv"] == {"a": 1, "nested": {"b": [b"\x00\x01"]}}
    assert attributes["blob"] == b"\x00\xffbytes"
    assert attributes["empty"] is None
    assert attributes["big"] == -(2**63)
    assert not span.is_remote_parent  # flags 0x101: remote-ness known, not remote
    lonely = decoded.spans[-1]
    assert lonely.is_remote_parent and lonely.is_local_root
    assert lonely.resource == {"service.name": "other"}


def test_unchanged_request_is_serialised_byte_identical():
    request = rich_request()
    original = request.SerializeToString()
    decoded = decode_request(request)
    assert encode_spans(decoded.spans, decoded) == original
    # through the general (regrouping) path too
    rebuilt = ExportTraceServiceRequest.FromString(encode_spans(decoded.spans))
    assert rebuilt == ExportTraceServiceRequest.FromString(original)


def test_changed_spans_are_rebuilt_and_the_rest_untouched():
    request = rich_request()
    before = ExportTraceServiceRequest()
    before.CopyFrom(request)
    decoded = decode_request(request)
    chat = decoded.spans[2]
    chat.set("tokentrace.cost.amount", 0.25)  # added
    chat.set("gen_ai.request.model", "gpt-4o")  # modified
    chat.pop("server.port")  # removed
    chat.parent_span_id = None
    chat.status_code, chat.status_message = 1, ""
    chat.changed = True
    sampled_out = decoded.spans[3]
    passed = [span for span in decoded.spans if span is not sampled_out]
    out = ExportTraceServiceRequest.FromString(encode_spans(passed, decoded))
    spans = [span for rs in out.resource_spans for ss in rs.scope_spans for span in ss.spans]
    assert len(spans) == len(passed)
    assert sampled_out.origin.span_id not in [span.span_id for span in spans]
    rebuilt = next(span for span in spans if span.span_id == chat.origin.span_id)
    attributes = {kv.key: decode_value(kv.value) for kv in rebuilt.attributes}
    assert attributes["tokentrace.cost.amount"] == 0.25
    assert attributes["gen_ai.request.model"] == "gpt-4o"
    assert "server.port" not in attributes
    assert attributes["kv"] == {"a": 1, "nested": {"b": [b"\x00\x01"]}}
    assert rebuilt.parent_span_id == b""
    assert rebuilt.status.code == 1 and rebuilt.status.message == ""
    assert len(rebuilt.events) == 1 and len(rebuilt.links) == 1 and rebuilt.trace_state == "vendor=abc"
    original_spans = {span.span_id: span for rs in before.resource_spans for ss in rs.scope_spans for span in ss.spans}
    for span in spans:
        if span.span_id != chat.origin.span_id:
            assert span.SerializeToString() == original_spans[span.span_id].SerializeToString()
    # resources and scopes ride along unchanged
    assert out.resource_spans[1].resource == before.resource_spans[1].resource
    assert out.resource_spans[1].scope_spans[0].scope == before.resource_spans[1].scope_spans[0].scope
    assert out.resource_spans[1].scope_spans[0].schema_url == "https://example/scope"
    assert out.resource_spans[0].schema_url == before.resource_spans[0].schema_url


def test_spans_from_several_requests_regroup_by_resource_and_scope():
    first, second = genai_request(1, 2, seed=1), genai_request(1, 2, seed=2, service="other")
    spans = decode_request(first).spans + decode_request(second).spans
    out = ExportTraceServiceRequest.FromString(encode_spans(spans))
    assert [rs.resource.attributes[0].value.string_value for rs in out.resource_spans] == ["support-bot", "other"]
    assert [len(rs.scope_spans) for rs in out.resource_spans] == [2, 2]


@pytest.mark.parametrize(
    ("trace_id", "span_id", "parent"),
    [
        (b"\x01" * 15, b"\x01" * 8, b""),
        (b"\x01" * 16, b"\x01" * 7, b""),
        (b"\x01" * 16, b"\x01" * 8, b"\x01" * 4),
        (b"\x00" * 16, b"\x01" * 8, b""),
        (b"\x01" * 16, b"\x00" * 8, b""),
    ],
)
def test_invalid_ids_are_rejected_with_a_message(trace_id, span_id, parent):
    request = genai_request(1, 2, seed=3)
    request.resource_spans[0].scope_spans[0].spans.add(
        trace_id=trace_id, span_id=span_id, parent_span_id=parent, name="bad"
    )
    decoded = decode_request(request)
    assert len(decoded.spans) == 2
    assert decoded.rejected == 1
    assert "'bad'" in decoded.error_message


def test_encode_value_round_trips_python_values():
    for value in ["s", True, False, 0, -5, 2**63 - 1, 1.5, b"\x00", [1, "a"], {"k": [1, {"z": None}]}, None]:
        assert decode_value(encode_value(value)) == value
    assert decode_value(encode_value(2**70)) == str(2**70)  # beyond int64: kept as text
    assert decode_value(encode_value((1, 2))) == [1, 2]


# --- OTLP/JSON ------------------------------------------------------------------------------------------

SPEC_EXAMPLE = """{
  "resourceSpans": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
    "scopeSpans": [{
      "scope": {"name": "my.library", "version": "1.0.0",
                "attributes": [{"key": "my.scope.attribute", "value": {"stringValue": "some scope attribute"}}]},
      "spans": [{
        "traceId": "5B8EFFF798038103D269B633813FC60C",
        "spanId": "EEE19B7EC3C1B174",
        "parentSpanId": "EEE19B7EC3C1B173",
        "name": "I'm a server span",
        "startTimeUnixNano": "1544712660000000000",
        "endTimeUnixNano": "1544712661000000000",
        "kind": 2,
        "attributes": [
          {"key": "my.span.attr", "value": {"stringValue": "some value"}},
          {"key": "int", "value": {"intValue": "42"}},
          {"key": "double", "value": {"doubleValue": 1.5}},
          {"key": "bool", "value": {"boolValue": true}},
          {"key": "array", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": 7}]}}},
          {"key": "map", "value": {"kvlistValue": {"values": [{"key": "k", "value": {"stringValue": "v"}}]}}},
          {"key": "bytes", "value": {"bytesValue": "AAH/"}}
        ],
        "status": {"code": 2, "message": "failed"}
      }]
    }]
  }]
}"""


def test_spec_example_decodes():
    request = decode_json(SPEC_EXAMPLE.encode())
    span = request.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id == bytes.fromhex("5B8EFFF798038103D269B633813FC60C")
    assert span.span_id == bytes.fromhex("EEE19B7EC3C1B174")
    assert span.parent_span_id == bytes.fromhex("EEE19B7EC3C1B173")
    assert span.kind == trace_pb2.Span.SPAN_KIND_SERVER
    assert span.start_time_unix_nano == 1544712660000000000
    assert span.status.code == trace_pb2.Status.STATUS_CODE_ERROR and span.status.message == "failed"
    attributes = {kv.key: decode_value(kv.value) for kv in span.attributes}
    assert attributes == {
        "my.span.attr": "some value",
        "int": 42,
        "double": 1.5,
        "bool": True,
        "array": ["a", 7],
        "map": {"k": "v"},
        "bytes": b"\x00\x01\xff",
    }
    assert request.resource_spans[0].scope_spans[0].scope.attributes[0].value.string_value == "some scope attribute"
    # json_format on the same payload (after turning the hex ids into the base64 it expects) agrees
    data = json.loads(SPEC_EXAMPLE)
    raw = data["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    for key in ("traceId", "spanId", "parentSpanId"):
        raw[key] = base64.b64encode(bytes.fromhex(raw[key])).decode()
    assert json_format.Parse(json.dumps(data), ExportTraceServiceRequest()) == request


@pytest.mark.parametrize("integers_for_enums", [True, False])
@pytest.mark.parametrize("proto_names", [False, True])
def test_json_decoder_equals_json_format(integers_for_enums, proto_names):
    request = rich_request()
    request.resource_spans[0].scope_spans[1].spans[0].attributes.pop(-2)  # NaN != NaN in message equality
    body = otlp_json(request, integers_for_enums=integers_for_enums, proto_names=proto_names)
    decoded = decode_json(body.encode())
    assert decoded == request
    # and json_format.Parse of the same payload with base64 ids gives the same message
    reference = json_format.Parse(
        json_format.MessageToJson(request, preserving_proto_field_name=proto_names), ExportTraceServiceRequest()
    )
    assert decoded == reference


def test_json_numbers_in_every_accepted_form():
    body = json.dumps(
        {
            "resourceSpans": [
                {
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": "01" * 16,
                                    "spanId": "02" * 8,
                                    "startTimeUnixNano": 1544712660000000000,
                                    "endTimeUnixNano": "1.5446e18",
                                    "kind": "SPAN_KIND_CLIENT",
                                    "droppedAttributesCount": "3",
                                    "attributes": [
                                        {"key": "d", "value": {"doubleValue": "NaN"}},
                                        {"key": "i", "value": {"intValue": 5.0}},
                                        {"key": "e", "value": {"doubleValue": "-Infinity"}},
                                    ],
                                    "status": {"code": "STATUS_CODE_OK"},
                                    "unknownField": {"x": 1},
                                    "events": None,
                                }
                            ]
                        }
                    ]
                }
            ]
        }
    )
    span = decode_json(body).resource_spans[0].scope_spans[0].spans[0]
    assert span.start_time_unix_nano == 1544712660000000000
    assert span.end_time_unix_nano == 1544600000000000000
    assert span.kind == 3 and span.status.code == 1 and span.dropped_attributes_count == 3
    values = {kv.key: decode_value(kv.value) for kv in span.attributes}
    assert values["i"] == 5 and values["e"] == float("-inf") and values["d"] != values["d"]


def test_json_passthrough_signals_decode():
    metrics = json.dumps(
        {
            "resourceMetrics": [
                {
                    "scopeMetrics": [
                        {
                            "metrics": [
                                {
                                    "name": "m",
                                    "sum": {
                                        "dataPoints": [
                                            {
                                                "asInt": "3",
                                                "timeUnixNano": "10",
                                                "exemplars": [
                                                    {"traceId": "01" * 16, "spanId": "02" * 8, "asDouble": 1.0}
                                                ],
                                            }
                                        ],
                                        "aggregationTemporality": 2,
                                        "isMonotonic": True,
                                    },
                                }
                            ]
                        }
                    ]
                }
            ]
        }
    )
    message = decode_json(metrics, "metrics")
    assert isinstance(message, ExportMetricsServiceRequest)
    point = message.resource_metrics[0].scope_metrics[0].metrics[0].sum.data_points[0]
    assert point.as_int == 3 and point.exemplars[0].trace_id == b"\x01" * 16
    logs = json.dumps(
        {
            "resourceLogs": [
                {
                    "scopeLogs": [
                        {"logRecords": [{"body": {"stringValue": "hi"}, "severityNumber": 9, "traceId": "ab" * 16}]}
                    ]
                }
            ]
        }
    )
    record = decode_json(logs, "logs").resource_logs[0].scope_logs[0].log_records[0]
    assert isinstance(decode_json(logs, "logs"), ExportLogsServiceRequest)
    assert record.body.string_value == "hi" and record.trace_id == b"\xab" * 16


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'"x"',
        b'{"resourceSpans": {}}',
        b'{"resourceSpans": [1]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 5}]}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": "SPAN_KIND_NOPE"}]}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "-1"}]}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": 1.5}]}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 3}]}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"flags": 4294967296}]}]}]}',
        b'{"resourceSpans": [{"resource": {"attributes": [{"key": "b", "value": {"boolValue": "true"}}]}}]}',
        b'{"resourceSpans": [{"resource": {"attributes": [{"key": "b", "value": {"bytesValue": "!!"}}]}}]}',
        b'{"resourceSpans": [{"resource": {"attributes": [{"key": "b", "value": {"doubleValue": "x"}}]}}]}',
        b"\xff\xfe",
    ],
)
def test_malformed_json_raises_value_error(body):
    with pytest.raises(ValueError):
        decode_json(body)


def test_deeply_nested_json_raises_value_error():
    value = '{"stringValue": "x"}'
    for _ in range(3000):
        value = '{"arrayValue": {"values": [' + value + "]}}"
    body = '{"resourceSpans": [{"resource": {"attributes": [{"key": "k", "value": ' + value + "}]}}]}"
    with pytest.raises(ValueError):
        decode_json(body.encode())


# --- fuzz -----------------------------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=30,
)
FIELD_NAMES = [
    "resourceSpans",
    "scopeSpans",
    "spans",
    "resource",
    "scope",
    "attributes",
    "key",
    "value",
    "stringValue",
    "intValue",
    "doubleValue",
    "boolValue",
    "arrayValue",
    "kvlistValue",
    "bytesValue",
    "values",
    "traceId",
    "spanId",
    "parentSpanId",
    "name",
    "kind",
    "startTimeUnixNano",
    "status",
    "code",
    "events",
    "links",
    "flags",
    "droppedAttributesCount",
    "schemaUrl",
    "timeUnixNano",
]
otlp_shaped = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**65), max_value=2**65)
    | st.floats()
    | st.text(max_size=34)
    | st.sampled_from(["01" * 16, "02" * 8, "SPAN_KIND_SERVER", "NaN", "AAH/", "123"]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(FIELD_NAMES), children, max_size=5)
    ),
    max_leaves=40,
)


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_protobuf_bytes_only_value_error(data):
    try:
        request = parse_request(data)
    except ValueError:
        return
    decoded = decode_request(request)  # whatever parsed must decode without raising
    encode_spans(decoded.spans)


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_json_bytes_only_value_error(data):
    try:
        decode_json(data)
    except ValueError:
        pass


@FUZZ
@given(otlp_shaped)
def test_fuzz_otlp_shaped_json_only_value_error(value):
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [value]}]}]}).encode()
    try:
        request = decode_json(body)
    except ValueError:
        return
    decoded = decode_request(request)
    encode_spans(decoded.spans)


@FUZZ
@given(json_values)
def test_fuzz_any_json_only_value_error(value):
    try:
        decode_json(json.dumps(value).encode())
    except ValueError:
        pass


any_values = st.deferred(
    lambda: (
        st.builds(lambda v: common_pb2.AnyValue(string_value=v), st.text(max_size=10))
        | st.builds(lambda v: common_pb2.AnyValue(int_value=v), st.integers(min_value=-(2**63), max_value=2**63 - 1))
        | st.builds(lambda v: common_pb2.AnyValue(double_value=v), st.floats(allow_nan=False))
        | st.builds(lambda v: common_pb2.AnyValue(bool_value=v), st.booleans())
        | st.builds(lambda v: common_pb2.AnyValue(bytes_value=v), st.binary(max_size=8))
        | st.builds(
            lambda vs: common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=vs)),
            st.lists(any_values, max_size=3),
        )
    )
)
pb_spans = st.builds(
    lambda tid, sid, name, kind, start, attrs: trace_pb2.Span(
        trace_id=tid,
        span_id=sid,
        name=name,
        kind=kind,
        start_time_unix_nano=start,
        attributes=[common_pb2.KeyValue(key=f"k{i}", value=v) for i, v in enumerate(attrs)],
    ),
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=8, max_size=8),
    st.text(max_size=10),
    st.integers(0, 5),
    st.integers(0, 2**64 - 1),
    st.lists(any_values, max_size=4),
)


@FUZZ
@given(st.lists(pb_spans, min_size=1, max_size=4))
def test_fuzz_json_round_trip_equals_protobuf(spans):
    request = ExportTraceServiceRequest(
        resource_spans=[trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=spans)])]
    )
    assert decode_json(otlp_json(request).encode()) == request
    decoded = decode_request(request)
    assert ExportTraceServiceRequest.FromString(encode_spans(decoded.spans)).ByteSize() <= request.ByteSize()
