"""OTLP trace requests at the gateway's edges: protobuf bytes to :class:`SpanData` and back.

In: the request's bytes are parsed once (C) with a *lite* schema: the OTLP messages with the same
field numbers, but a span's attributes declared as ``repeated bytes`` and resources, scopes, events and
links left as bytes or undeclared. The runtime then hands over each attribute entry's bytes without
creating two protobuf objects per attribute (most entries are cache hits in
:func:`~tokentrace.gateway.otlp_values.attribute_pairs`), and every field the lite schema leaves out is
kept by the parser as an unknown field and written back unchanged. Resource attributes and scope names
are decoded once per ``ResourceSpans``/``ScopeSpans``. Each span becomes an :class:`OtlpSpan` whose
``origin`` is its lite protobuf span and whose ``group`` says where it came from, so resources and
scopes come back out byte-identical.

Out: when every span of a request passed unchanged, the request's own bytes are the output. Otherwise
the request is written on the wire directly: each span as its bytes, followed by the attributes stages
added (protobuf appends repeated fields when it parses). A span with attributes modified or removed, or
other fields changed, is edited in place first (:func:`apply_changes`).

The lite parse does not look inside what it keeps as bytes; the receivers parse every request with
the full schema first (:func:`parse_request`), which is what rejects undecodable data with a 400.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from tokentrace.gateway.otlp_values import (
    attribute_entry,
    attribute_pairs,
    decode_attributes,
    key_value_bytes,
    length_delimited,
    varint,
)
from tokentrace.processor.model import STATUS_ERROR, SpanData

IS_REMOTE_KNOWN = 0x100  # SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
IS_REMOTE = 0x200  # SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
REQUESTS = {
    "traces": ExportTraceServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "logs": ExportLogsServiceRequest,
}


def parse_request(body: bytes, signal: str = "traces") -> Any:
    """A protobuf body as its Export*ServiceRequest; ``ValueError`` when it does not parse."""
    try:
        return REQUESTS[signal].FromString(body)
    except (DecodeError, RuntimeError, TypeError) as exc:
        raise ValueError(f"undecodable OTLP protobuf: {exc}") from exc


def count_spans(request: ExportTraceServiceRequest) -> int:
    return sum(len(scope_spans.spans) for rs in request.resource_spans for scope_spans in rs.scope_spans)


# --- the lite schema ----------------------------------------------------------------------------------


def _lite_request_class() -> Any:
    """``ExportTraceServiceRequest`` as the gateway reads it (field numbers from the OTLP protos)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    proto = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="tokentrace/gateway/lite_trace.proto", package="tokentrace.gateway.lite", syntax="proto3"
    )

    def message(name: str, *fields: tuple[str, int, int, str | None, bool]) -> None:
        declared = file.message_type.add(name=name)
        for field_name, number, kind, type_name, repeated in fields:
            field = declared.field.add(
                name=field_name,
                number=number,
                type=kind,
                label=proto.LABEL_REPEATED if repeated else proto.LABEL_OPTIONAL,
            )
            if type_name:
                field.type_name = f".tokentrace.gateway.lite.{type_name}"

    message("Status", ("message", 2, proto.TYPE_STRING, None, False), ("code", 3, proto.TYPE_INT32, None, False))
    message(
        "Span",
        ("trace_id", 1, proto.TYPE_BYTES, None, False),
        ("span_id", 2, proto.TYPE_BYTES, None, False),
        ("parent_span_id", 4, proto.TYPE_BYTES, None, False),
        ("name", 5, proto.TYPE_STRING, None, False),
        ("kind", 6, proto.TYPE_INT32, None, False),  # an enum on the wire: same varint
        ("start_time_unix_nano", 7, proto.TYPE_FIXED64, None, False),
        ("end_time_unix_nano", 8, proto.TYPE_FIXED64, None, False),
        ("attributes", 9, proto.TYPE_BYTES, None, True),  # KeyValue entries, raw
        ("events", 11, proto.TYPE_BYTES, None, True),  # Event messages, raw (the store reads attempt events)
        ("status", 15, proto.TYPE_MESSAGE, "Status", False),
        ("flags", 16, proto.TYPE_FIXED32, None, False),
    )
    message(
        "ScopeSpans",
        ("scope", 1, proto.TYPE_BYTES, None, False),  # InstrumentationScope, raw
        ("spans", 2, proto.TYPE_MESSAGE, "Span", True),
        ("schema_url", 3, proto.TYPE_STRING, None, False),
    )
    message(
        "ResourceSpans",
        ("resource", 1, proto.TYPE_BYTES, None, False),  # Resource, raw
        ("scope_spans", 2, proto.TYPE_MESSAGE, "ScopeSpans", True),
        ("schema_url", 3, proto.TYPE_STRING, None, False),
    )
    message("Request", ("resource_spans", 1, proto.TYPE_MESSAGE, "ResourceSpans", True))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tokentrace.gateway.lite.Request"))


LiteRequest = _lite_request_class()


# --- protobuf -> SpanData ---------------------------------------------------------------------------


@dataclass(slots=True)
class OtlpSpan(SpanData):
    """A :class:`SpanData` decoded from OTLP: ``origin`` is its lite protobuf span."""

    group: Any = None  # the Group it arrived in


@dataclass(slots=True, eq=False)
class Group:
    """Where a span came from: its ``ResourceSpans`` and ``ScopeSpans`` (lite), encoded once when needed."""

    resource_spans: Any
    scope_spans: Any
    resource_key: int  # identity of the ResourceSpans, to regroup spans of one resource
    resource_head: bytes | None = None  # ResourceSpans.resource, on the wire
    resource_tail: bytes = b""  # ResourceSpans.schema_url
    scope_head: bytes | None = None  # ScopeSpans.scope
    scope_tail: bytes = b""  # ScopeSpans.schema_url

    def heads(self) -> None:
        source = self.resource_spans
        self.resource_head = length_delimited(1, source.resource) if source.resource else b""
        self.resource_tail = length_delimited(3, source.schema_url.encode()) if source.schema_url else b""
        scope = self.scope_spans
        self.scope_head = length_delimited(1, scope.scope) if scope.scope else b""
        self.scope_tail = length_delimited(3, scope.schema_url.encode()) if scope.schema_url else b""


@dataclass(slots=True)
class Decoded:
    spans: list[OtlpSpan]
    rejected: int = 0
    error_message: str = ""
    body: bytes = b""  # the request's bytes: the output when every span passes unchanged


def decode_request(request: ExportTraceServiceRequest | bytes) -> Decoded:
    """Every valid span of ``request`` (a message or its bytes); invalid ones (bad id lengths, zero ids,
    undecodable attributes) are counted, not raised."""
    body = request if isinstance(request, bytes) else request.SerializeToString()
    try:
        return _decode(body)
    except DecodeError as exc:  # pragma: no cover - the receivers parsed it with the full schema first
        raise ValueError(f"undecodable OTLP protobuf: {exc}") from exc


def _decode(body: bytes) -> Decoded:
    lite = LiteRequest.FromString(body)
    spans: list[OtlpSpan] = []
    append = spans.append
    rejected = 0
    first_error = ""
    from_bytes = int.from_bytes
    for resource_spans in lite.resource_spans:
        resource = decode_attributes(Resource.FromString(resource_spans.resource).attributes)
        resource_key = id(resource_spans)
        for scope_spans in resource_spans.scope_spans:
            group = Group(resource_spans, scope_spans, resource_key)
            scope_name = InstrumentationScope.FromString(scope_spans.scope).name
            for span in scope_spans.spans:
                trace_id = span.trace_id
                span_id = span.span_id
                parent = span.parent_span_id
                problem = ""
                if len(trace_id) != 16 or len(span_id) != 8 or (parent and len(parent) != 8):
                    problem = (
                        f"trace_id must be 16 bytes, span_id and parent_span_id 8 "
                        f"(got {len(trace_id)}, {len(span_id)}, {len(parent)})"
                    )
                else:
                    trace_int = from_bytes(trace_id, "big")
                    span_int = from_bytes(span_id, "big")
                    if not trace_int or not span_int:
                        problem = "trace_id and span_id must not be all zeros"
                    else:
                        try:
                            attributes = dict(attribute_pairs(span.attributes))
                        except DecodeError:
                            problem = "an attribute is not a valid KeyValue"
                if problem:
                    rejected += 1
                    if not first_error:
                        first_error = f"span {span.name!r}: {problem}"
                    continue
                status = span.status
                append(
                    OtlpSpan(
                        trace_int,
                        span_int,
                        from_bytes(parent, "big") if parent else None,
                        span.name,
                        span.kind,
                        span.start_time_unix_nano,
                        span.end_time_unix_nano,
                        attributes,
                        resource,
                        scope_name,
                        status.code,
                        status.message,
                        bool(span.flags & IS_REMOTE),
                        span,
                        False,
                        group,
                    )
                )
    message = f"{rejected} invalid span(s) rejected; first: {first_error}" if rejected else ""
    return Decoded(spans, rejected, message, body)


# --- SpanData -> protobuf ---------------------------------------------------------------------------


def _same(before: Any, after: Any) -> bool:
    """Whether a stage left an attribute as it was decoded (the same object, or an equal one of the same
    type: values are decoded again from the span's bytes when it is written out)."""
    return before is after or (type(before) is type(after) and before == after)


_MISSING = object()


def _fields_changed(data: OtlpSpan) -> bool:
    """Whether a stage changed any of the span's fields other than its attributes."""
    span = data.origin
    parent = data.parent_span_id
    status = span.status
    return (
        span.parent_span_id != (b"" if parent is None else parent.to_bytes(8, "big"))
        or span.name != data.name
        or span.kind != data.kind
        or span.start_time_unix_nano != data.start_ns
        or span.end_time_unix_nano != data.end_ns
        or status.code != data.status_code
        or status.message != data.status_message
    )


def apply_changes(data: OtlpSpan) -> Any:
    """Write what stages changed back into ``data.origin`` (in place) and return it."""
    span = data.origin
    if not data.changed:
        return span
    attributes = data.attributes
    entries = list(span.attributes)
    pairs = attribute_pairs(entries)
    decoded = dict(pairs)
    missing = _MISSING
    kept = [
        raw for raw, (key, _) in zip(entries, pairs, strict=True) if _same(decoded[key], attributes.get(key, missing))
    ]
    rewritten = [
        key_value_bytes(key, value) for key, value in attributes.items() if not _same(decoded.get(key, missing), value)
    ]
    if len(kept) != len(entries) or rewritten:
        del span.attributes[:]
        span.attributes.extend(kept)
        span.attributes.extend(rewritten)
    parent = data.parent_span_id
    span.parent_span_id = b"" if parent is None else parent.to_bytes(8, "big")
    if span.name != data.name:
        span.name = data.name
    if span.kind != data.kind:
        span.kind = data.kind
    span.start_time_unix_nano = data.start_ns
    span.end_time_unix_nano = data.end_ns
    status = span.status
    if status.code != data.status_code:
        status.code = data.status_code
    message = data.status_message if data.status_code == STATUS_ERROR else ""
    if status.message != message:
        status.message = message
    data.changed = False
    return span


def encode_spans(spans: list[OtlpSpan], source: Decoded | None = None) -> bytes:
    """A serialised ``ExportTraceServiceRequest`` carrying ``spans`` (changes applied) with their resource
    and scope: ``source``'s own bytes when ``spans`` are all of its spans, none changed or rejected."""
    if (
        source is not None
        and not source.rejected
        and len(spans) == len(source.spans)
        and not any(d.changed for d in spans)
        and all(a is b for a, b in zip(spans, source.spans, strict=True))
    ):
        return source.body
    resources: dict[int, dict[int, list[bytes]]] = {}
    groups: dict[int, Group] = {}
    for data in spans:
        group: Group = data.group
        scope_key = id(group.scope_spans)
        by_scope = resources.get(group.resource_key)
        if by_scope is None:
            by_scope = resources[group.resource_key] = {}
        encoded = by_scope.get(scope_key)
        if encoded is None:
            encoded = by_scope[scope_key] = []
            groups[scope_key] = group
            if group.resource_head is None:
                group.heads()
        encoded.append(span_bytes(data) if data.changed else data.origin.SerializeToString())
    out = []
    for by_scope in resources.values():
        parts = []
        group = groups[next(iter(by_scope))]
        parts.append(group.resource_head)
        for scope_key, encoded in by_scope.items():
            scope_group = groups[scope_key]
            body = b"".join(
                [scope_group.scope_head, *[_SPAN_TAG + varint(len(b)) + b for b in encoded], scope_group.scope_tail]
            )
            parts.append(_SCOPE_SPANS_TAG + varint(len(body)) + body)
        parts.append(group.resource_tail)
        body = b"".join(parts)
        out.append(_RESOURCE_SPANS_TAG + varint(len(body)) + body)
    return b"".join(out)


def span_bytes(data: OtlpSpan) -> bytes:
    """A changed span's wire bytes: the original plus appended attributes when stages only added some."""
    span = data.origin
    attributes = data.attributes
    entries = span.attributes
    if len(attributes) <= len(entries) or _fields_changed(data):  # nothing added, or more than that
        return apply_changes(data).SerializeToString()
    decoded = dict(attribute_pairs(entries))
    added = []
    missing = _MISSING
    for key, value in attributes.items():
        before = decoded.get(key, missing)
        if before is missing:
            added.append(attribute_entry(key, value))
        elif not _same(before, value):
            return apply_changes(data).SerializeToString()
    if len(attributes) - len(added) != len(decoded):  # a key was removed too
        return apply_changes(data).SerializeToString()
    return span.SerializeToString() + b"".join(added)


_SPAN_TAG = b"\x12"  # ScopeSpans.spans = 2
_SCOPE_SPANS_TAG = b"\x12"  # ResourceSpans.scope_spans = 2
_RESOURCE_SPANS_TAG = b"\x0a"  # ExportTraceServiceRequest.resource_spans = 1
