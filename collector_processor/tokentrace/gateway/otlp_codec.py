"""OTLP at the gateway's edges: protobuf spans to :class:`SpanData` and back, and OTLP/JSON to protobuf.

Protobuf in: each span becomes an :class:`OtlpSpan` whose ``origin`` is the received protobuf span and
whose ``group`` is the ``ScopeSpans`` (inside its ``ResourceSpans``) it came in, so resource, scope and
schema URLs are never decoded into Python and come back out byte-identical. Attributes are decoded by
hand from ``AnyValue`` (no ``MessageToDict``: it is ten times slower and turns ints into strings).

Protobuf out: a span no stage changed is written back as received. A changed span is edited in place:
only the attributes that differ from what was decoded are re-encoded, the original ``KeyValue``s of
the rest are kept. When every span of a request passed, the request itself is serialised.

OTLP/JSON in: per the OTLP spec, not plain proto3 JSON: trace and span ids are hex (not base64), enums
may be ints or names, 64-bit ints may be strings or numbers, keys are lowerCamelCase (the proto names
are accepted too) and unknown keys are ignored. The decoder walks the message descriptors once to build
converters, turns the parsed JSON into constructor keyword arguments and lets the C protobuf runtime
build the whole message in one call. Anything malformed raises ``ValueError``.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from tokentrace.processor.model import STATUS_ERROR, SpanData

try:  # orjson is several times faster than json on large bodies; optional
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
    _JSON_ERRORS: tuple[type[Exception], ...] = (orjson.JSONDecodeError, UnicodeDecodeError)
except ImportError:  # pragma: no cover - exercised only without orjson
    import json

    _loads = json.loads
    _JSON_ERRORS = (ValueError, UnicodeDecodeError)

IS_REMOTE_KNOWN = 0x100  # SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
IS_REMOTE = 0x200  # SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
REQUESTS = {
    "traces": ExportTraceServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "logs": ExportLogsServiceRequest,
}


@dataclass(slots=True)
class OtlpSpan(SpanData):
    """A :class:`SpanData` decoded from OTLP: ``origin`` is the protobuf ``Span``."""

    group: Any = None  # the ScopeSpans it arrived in (its ResourceSpans via _Group)
    decoded: dict[str, Any] | None = None  # the attributes as decoded, to find what stages changed
    fields: tuple[Any, ...] = ()  # (parent, name, kind, start, end, status code, status message) as decoded


@dataclass(slots=True, eq=False)
class Group:
    """Where a span came from: its ``ResourceSpans`` and ``ScopeSpans`` (resource and scope ride along)."""

    resource_spans: Any
    scope_spans: Any
    resource_key: int  # identity of the ResourceSpans, to regroup spans of one resource
    resource_head: bytes | None = None  # ResourceSpans.resource, encoded once
    resource_tail: bytes = b""  # ResourceSpans.schema_url
    scope_head: bytes | None = None  # ScopeSpans.scope
    scope_tail: bytes = b""  # ScopeSpans.schema_url

    def heads(self) -> None:
        source = self.resource_spans
        self.resource_head = _field(1, source.resource.SerializeToString()) if source.HasField("resource") else b""
        self.resource_tail = _field(3, source.schema_url.encode()) if source.schema_url else b""
        scope = self.scope_spans
        self.scope_head = _field(1, scope.scope.SerializeToString()) if scope.HasField("scope") else b""
        self.scope_tail = _field(3, scope.schema_url.encode()) if scope.schema_url else b""


# --- AnyValue <-> Python ----------------------------------------------------------------------------


def _array(value: Any) -> list[Any]:
    return [decode_value(item) for item in value.array_value.values]


def _kvlist(value: Any) -> dict[str, Any]:
    return {kv.key: decode_value(kv.value) for kv in value.kvlist_value.values}


_GETTERS: dict[str | None, Callable[[Any], Any]] = {
    "string_value": lambda v: v.string_value,
    "bool_value": lambda v: v.bool_value,
    "int_value": lambda v: v.int_value,
    "double_value": lambda v: v.double_value,
    "array_value": _array,
    "kvlist_value": _kvlist,
    "bytes_value": lambda v: v.bytes_value,
    "string_value_strindex": lambda v: None,  # a profiles dictionary index: meaningless on a span
    None: lambda v: None,
}


def decode_value(value: Any) -> Any:
    """An ``AnyValue`` as a Python value: str, bool, int, float, bytes, list, dict or None (empty)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    return _GETTERS[kind](value)


def decode_attributes(key_values: Iterable[Any]) -> dict[str, Any]:
    out = {}
    for kv in key_values:
        value = kv.value
        kind = value.WhichOneof("value")
        out[kv.key] = value.string_value if kind == "string_value" else _GETTERS[kind](value)
    return out


# Span attributes from the span's wire bytes. Iterating ``span.attributes`` makes upb create a Python
# object per KeyValue and per AnyValue (about 1 µs an attribute). Instead the span is serialised (C) and
# parsed again as a message declaring only ``repeated bytes attributes = 9`` (C), which hands over each
# entry's bytes; most entries recur byte for byte across spans (operation, provider, model, server,
# small counts), so each distinct entry is decoded once and looked up after, and the dict is built in C.
# Entries holding lists are cached apart and copied on every hit (a stage may change the list it gets);
# other lists and maps, and long values (content, unique anyway), are decoded every time.
_ENTRY_CACHE_LIMIT = 16_384
_ENTRY_MAX_BYTES = 256
_scalar_entries: dict[bytes, tuple[str, Any]] = {}
_list_entries: dict[bytes, tuple[str, list[Any]]] = {}
_SCALARS = (str, int, float, bool, bytes, type(None))


def _attributes_only_span() -> Any:
    """A message class reading a ``Span``'s bytes as just its attribute entries (field 9, raw)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    file = descriptor_pb2.FileDescriptorProto(
        name="tokentrace/gateway/span_attributes.proto", package="tokentrace.gateway", syntax="proto3"
    )
    message = file.message_type.add(name="SpanAttributes")
    message.field.add(
        name="attributes",
        number=9,  # opentelemetry.proto.trace.v1.Span.attributes
        type=descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tokentrace.gateway.SpanAttributes"))


_SpanAttributes = _attributes_only_span()


def _entry(entry: bytes) -> tuple[str, Any]:
    """One ``KeyValue``'s bytes as (key, value); cached when it may recur and its value can be shared."""
    listed = _list_entries.get(entry)
    if listed is not None:
        return listed[0], list(listed[1])
    kv = KeyValue.FromString(entry)
    key = kv.key
    value = decode_value(kv.value)
    kind = type(value)
    if len(entry) <= _ENTRY_MAX_BYTES:
        if kind in _SCALARS:
            if len(_scalar_entries) >= _ENTRY_CACHE_LIMIT:
                _scalar_entries.clear()  # unique values (response ids) fill it in time; the rest come back
            _scalar_entries[entry] = (key, value)
        elif kind is list and all(type(item) in _SCALARS for item in value):
            if len(_list_entries) >= _ENTRY_CACHE_LIMIT:
                _list_entries.clear()
            _list_entries[entry] = (key, list(value))
    return key, value


def span_attributes(data: bytes) -> dict[str, Any]:
    """The attributes of a serialised ``Span``: ``decode_attributes(span.attributes)``, faster."""
    entries = _SpanAttributes.FromString(data).attributes
    pairs = list(map(_scalar_entries.get, entries))
    if None in pairs:
        for index, pair in enumerate(pairs):
            if pair is None:
                pairs[index] = _entry(entries[index])
    return dict(pairs)


def encode_value(value: Any) -> AnyValue:
    """A Python value as an ``AnyValue``; anything unknown becomes its ``str``."""
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        if -(2**63) <= value < 2**63:
            return AnyValue(int_value=value)
        return AnyValue(string_value=str(value))
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, (bytes, bytearray)):
        return AnyValue(bytes_value=bytes(value))
    if isinstance(value, (list, tuple)):
        return AnyValue(array_value=ArrayValue(values=[encode_value(item) for item in value]))
    if isinstance(value, dict):
        return AnyValue(
            kvlist_value=KeyValueList(values=[KeyValue(key=str(k), value=encode_value(v)) for k, v in value.items()])
        )
    if value is None:
        return AnyValue()
    return AnyValue(string_value=str(value))


# --- protobuf request <-> SpanData ------------------------------------------------------------------


@dataclass(slots=True)
class Decoded:
    spans: list[OtlpSpan]
    rejected: int = 0
    error_message: str = ""


def decode_request(request: ExportTraceServiceRequest) -> Decoded:
    """Every valid span of ``request``; invalid ones (bad id lengths, zero ids) are counted, not raised."""
    spans: list[OtlpSpan] = []
    rejected = 0
    first_error = ""
    from_bytes = int.from_bytes
    for resource_spans in request.resource_spans:
        resource = decode_attributes(resource_spans.resource.attributes)
        resource_key = id(resource_spans)
        for scope_spans in resource_spans.scope_spans:
            group = Group(resource_spans, scope_spans, resource_key)
            scope_name = scope_spans.scope.name
            for span in scope_spans.spans:
                trace_id = span.trace_id
                span_id = span.span_id
                parent = span.parent_span_id
                if len(trace_id) != 16 or len(span_id) != 8 or (parent and len(parent) != 8):
                    rejected += 1
                    if not first_error:
                        first_error = (
                            f"span {span.name!r}: trace_id must be 16 bytes, span_id and parent_span_id 8 "
                            f"(got {len(trace_id)}, {len(span_id)}, {len(parent)})"
                        )
                    continue
                trace_int = from_bytes(trace_id, "big")
                span_int = from_bytes(span_id, "big")
                if not trace_int or not span_int:
                    rejected += 1
                    if not first_error:
                        first_error = f"span {span.name!r}: trace_id and span_id must not be all zeros"
                    continue
                try:
                    attributes = span_attributes(span.SerializeToString())
                except DecodeError:  # pragma: no cover - upb reads back what it wrote
                    attributes = decode_attributes(span.attributes)
                status = span.status
                fields = (
                    from_bytes(parent, "big") if parent else None,
                    span.name,
                    span.kind,
                    span.start_time_unix_nano,
                    span.end_time_unix_nano,
                    status.code,
                    status.message,
                )
                spans.append(
                    OtlpSpan(
                        trace_int,
                        span_int,
                        fields[0],
                        fields[1],
                        fields[2],
                        fields[3],
                        fields[4],
                        attributes,
                        resource,
                        scope_name,
                        fields[5],
                        fields[6],
                        bool(span.flags & IS_REMOTE),
                        span,
                        False,
                        group,
                        attributes.copy(),
                        fields,
                    )
                )
    message = f"{rejected} invalid span(s) rejected; first: {first_error}" if rejected else ""
    return Decoded(spans, rejected, message)


def apply_changes(data: OtlpSpan) -> Any:
    """Write what stages changed back into ``data.origin`` (in place) and return it."""
    span = data.origin
    if not data.changed:
        return span
    attributes = data.attributes
    decoded = data.decoded or {}
    missing = _MISSING
    modified = False
    added = []
    for key, value in attributes.items():
        before = decoded.get(key, missing)
        if before is value:
            continue
        if before is missing:
            added.append(KeyValue(key=key, value=encode_value(value)))
        else:
            modified = True
    if not modified and len(attributes) - len(added) != len(decoded):
        modified = True  # a key was removed
    if modified:  # rebuild the list: keep the original KeyValue of every untouched key, in order
        kept = [kv for kv in span.attributes if decoded.get(kv.key, missing) is attributes.get(kv.key, missing)]
        changed = [
            KeyValue(key=key, value=encode_value(value))
            for key, value in attributes.items()
            if decoded.get(key, missing) is not value and key in decoded
        ]
        del span.attributes[:]
        span.attributes.extend(kept)
        span.attributes.extend(changed)
    if added:
        span.attributes.extend(added)
    data.decoded = dict(attributes)  # a second write-back (a span released later) starts from here
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


class _Missing:
    pass


_MISSING = _Missing()


def encode_spans(
    spans: list[OtlpSpan],
    request: ExportTraceServiceRequest | None = None,
    total: int | None = None,
) -> bytes:
    """A serialised ``ExportTraceServiceRequest`` carrying ``spans`` (changes applied) with their resource
    and scope. When ``spans`` are exactly the ``total`` spans decoded from ``request`` and none changed, the
    request itself is serialised.

    Otherwise the request is written on the wire directly: each span as its original bytes, followed by
    the attributes stages added (protobuf appends repeated fields when it parses), which needs neither a
    copy of the span nor a protobuf object per attribute. A span with attributes modified or removed, or
    other fields changed, is rebuilt in place first (:func:`apply_changes`).
    """
    if (
        request is not None
        and total is not None
        and len(spans) == total
        and not any(d.changed for d in spans)
        and _all_from(spans, request)
    ):
        return request.SerializeToString()
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
                [scope_group.scope_head, *[_SPAN_TAG + _varint(len(b)) + b for b in encoded], scope_group.scope_tail]
            )
            parts.append(_SCOPE_SPANS_TAG + _varint(len(body)) + body)
        parts.append(group.resource_tail)
        body = b"".join(parts)
        out.append(_RESOURCE_SPANS_TAG + _varint(len(body)) + body)
    return b"".join(out)


def span_bytes(data: OtlpSpan) -> bytes:
    """A changed span's wire bytes: the original plus appended attributes when stages only added some."""
    span = data.origin
    if (
        data.parent_span_id,
        data.name,
        data.kind,
        data.start_ns,
        data.end_ns,
        data.status_code,
        data.status_message,
    ) != data.fields:
        return apply_changes(data).SerializeToString()
    decoded = data.decoded or {}
    attributes = data.attributes
    if len(attributes) <= len(decoded):  # nothing added: something modified or removed
        return apply_changes(data).SerializeToString()
    added = []
    missing = _MISSING
    for key, value in attributes.items():
        before = decoded.get(key, missing)
        if before is value:
            continue
        if before is missing:
            added.append(_attribute_bytes(key, value))
        else:
            return apply_changes(data).SerializeToString()
    if len(attributes) - len(added) != len(decoded):  # a key was removed too
        return apply_changes(data).SerializeToString()
    return span.SerializeToString() + b"".join(added)


_SPAN_TAG = b"\x12"  # ScopeSpans.spans = 2
_SCOPE_SPANS_TAG = b"\x12"  # ResourceSpans.scope_spans = 2
_RESOURCE_SPANS_TAG = b"\x0a"  # ExportTraceServiceRequest.resource_spans = 1
_ATTRIBUTE_TAG = b"\x4a"  # Span.attributes = 9
_DOUBLE = struct.Struct("<d")
_SMALL = [bytes((n,)) for n in range(128)]
_key_heads: dict[str, bytes] = {}


def _varint(value: int) -> bytes:
    if value < 128:
        return _SMALL[value]
    out = bytearray()
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _key_head(key: str) -> bytes:
    head = _key_heads.get(key)
    if head is None:
        raw = key.encode() if key.isascii() else key.encode("utf-8", "replace")
        head = b"\x0a" + _varint(len(raw)) + raw
        if len(_key_heads) < _CACHE_LIMIT:
            _key_heads[key] = head
    return head


def _attribute_bytes(key: str, value: Any) -> bytes:
    """``Span.attributes`` entry (tag included) for one key and value.

    Stages add the same few keys to every span, often with the same string values (currency, pricing
    model, flags), so string entries are cached whole and doubles from a per-key prefix."""
    kind = type(value)
    if kind is str:
        cached = _string_entries.get((key, value))
        if cached is not None:
            return cached
        raw = value.encode() if value.isascii() else value.encode("utf-8", "replace")  # lone surrogates
        any_value = b"\x0a" + _varint(len(raw)) + raw
    elif kind is float:
        prefix = _double_prefixes.get(key)
        if prefix is None:
            head = _key_head(key)
            prefix = _ATTRIBUTE_TAG + _varint(len(head) + 11) + head + b"\x12\x09\x21"
            if len(_double_prefixes) < _CACHE_LIMIT:
                _double_prefixes[key] = prefix
        return prefix + _DOUBLE.pack(value)
    elif kind is bool:
        any_value = b"\x10\x01" if value else b"\x10\x00"
    elif kind is int and -(2**63) <= value < 2**63:
        any_value = b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
    else:
        any_value = encode_value(value).SerializeToString()
    head = _key_head(key)
    body = head + b"\x12" + _varint(len(any_value)) + any_value
    entry = _ATTRIBUTE_TAG + _varint(len(body)) + body
    if kind is str and len(value) <= 128 and len(_string_entries) < _CACHE_LIMIT:
        _string_entries[(key, value)] = entry
    return entry


_CACHE_LIMIT = 16_384
_string_entries: dict[tuple[str, str], bytes] = {}
_double_prefixes: dict[str, bytes] = {}


def _all_from(spans: list[OtlpSpan], request: ExportTraceServiceRequest) -> bool:
    """Whether every span's group belongs to ``request`` (checked by walking the request's groups)."""
    keys = {id(resource_spans) for resource_spans in request.resource_spans}
    return all(data.group.resource_key in keys for data in spans)


def count_spans(request: ExportTraceServiceRequest) -> int:
    return sum(len(scope_spans.spans) for rs in request.resource_spans for scope_spans in rs.scope_spans)


def parse_request(body: bytes, signal: str = "traces") -> Any:
    """A protobuf body as its Export*ServiceRequest; ``ValueError`` when it does not parse."""
    try:
        return REQUESTS[signal].FromString(body)
    except (DecodeError, RuntimeError, TypeError) as exc:
        raise ValueError(f"undecodable OTLP protobuf: {exc}") from exc


# --- OTLP/JSON -> protobuf --------------------------------------------------------------------------

_HEX_ID_FIELDS = frozenset({"trace_id", "span_id", "parent_span_id"})
_INT64_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_SFIXED64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_FIXED64,
    }
)
_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _to_int(where: str, low: int, high: int) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if type(value) is int:
            number = value
        elif isinstance(value, str):
            try:
                number = int(value)
            except ValueError:
                try:
                    as_float = float(value)
                except ValueError:
                    raise ValueError(f"{where}: not an integer: {value!r}") from None
                if not as_float.is_integer():
                    raise ValueError(f"{where}: not an integer: {value!r}") from None
                number = int(as_float)
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        else:
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        if not low <= number <= high:
            raise ValueError(f"{where}: {number} out of range")
        return number

    return convert


def _to_double(where: str) -> Callable[[Any], float]:
    specials = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}

    def convert(value: Any) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            if value in specials:
                return specials[value]
            try:
                number = float(value)
            except ValueError:
                raise ValueError(f"{where}: not a number: {value!r}") from None
            if math.isnan(number) or math.isinf(number):
                raise ValueError(f"{where}: not a number: {value!r}")
            return number
        raise ValueError(f"{where}: expected a number, got {value!r}")

    return convert


def _to_str(where: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {type(value).__name__}")
        return value

    return convert


def _to_bool(where: str) -> Callable[[Any], bool]:
    def convert(value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false, got {value!r}")
        return value

    return convert


def _to_hex_id(where: str) -> Callable[[Any], bytes]:
    def convert(value: Any) -> bytes:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a hex string, got {type(value).__name__}")
        try:
            return bytes.fromhex(value)
        except ValueError:
            raise ValueError(f"{where}: not a hex id: {value!r}") from None

    return convert


def _to_base64(where: str) -> Callable[[Any], bytes]:
    def convert(value: Any) -> bytes:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a base64 string, got {type(value).__name__}")
        text = value.replace("-", "+").replace("_", "/")
        text += "=" * (-len(text) % 4)
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{where}: not base64: {value!r}") from None

    return convert


def _to_enum(where: str, field: FieldDescriptor) -> Callable[[Any], int]:
    by_name = {value.name: value.number for value in field.enum_type.values}
    as_int = _to_int(where, -(2**31), 2**31 - 1)

    def convert(value: Any) -> int:
        if isinstance(value, str):
            number = by_name.get(value)
            if number is None:
                raise ValueError(f"{where}: unknown enum value {value!r}")
            return number
        return as_int(value)

    return convert


class _MessageConverter:
    """Turns a JSON object into keyword arguments for one message type (built lazily, once per type)."""

    _cache: dict[str, _MessageConverter] = {}

    def __init__(self, descriptor: Descriptor) -> None:
        self.descriptor = descriptor
        self.name = descriptor.name
        self.fields: dict[str, tuple[str, Callable[[Any], Any], bool]] | None = None

    @classmethod
    def of(cls, descriptor: Descriptor) -> _MessageConverter:
        converter = cls._cache.get(descriptor.full_name)
        if converter is None:
            converter = cls._cache[descriptor.full_name] = cls(descriptor)
        return converter

    def _compile(self) -> dict[str, tuple[str, Callable[[Any], Any], bool]]:
        fields = {}
        for field in self.descriptor.fields:
            where = f"{self.name}.{field.json_name}"
            convert = self._scalar(field, where)
            repeated = field.is_repeated
            fields[field.json_name] = fields[field.name] = (field.name, convert, repeated)
        self.fields = fields
        return fields

    def _scalar(self, field: FieldDescriptor, where: str) -> Callable[[Any], Any]:
        kind = field.type
        if kind == FieldDescriptor.TYPE_MESSAGE:
            return _MessageConverter.of(field.message_type)
        if kind == FieldDescriptor.TYPE_STRING:
            return _to_str(where)
        if kind == FieldDescriptor.TYPE_BOOL:
            return _to_bool(where)
        if kind == FieldDescriptor.TYPE_BYTES:
            return _to_hex_id(where) if field.name in _HEX_ID_FIELDS else _to_base64(where)
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return _to_double(where)
        if kind == FieldDescriptor.TYPE_ENUM:
            return _to_enum(where, field)
        if kind in _INT_RANGES:
            return _to_int(where, *_INT_RANGES[kind])
        raise TypeError(f"unsupported field type {kind} for {where}")  # pragma: no cover - not in OTLP

    def __call__(self, obj: Any) -> dict[str, Any]:
        if not isinstance(obj, dict):
            raise ValueError(f"{self.name}: expected an object, got {type(obj).__name__}")
        fields = self.fields or self._compile()
        kwargs: dict[str, Any] = {}
        for key, value in obj.items():
            spec = fields.get(key)
            if spec is None or value is None:  # unknown keys are ignored (OTLP spec); null means default
                continue
            name, convert, repeated = spec
            if repeated:
                if not isinstance(value, list):
                    raise ValueError(f"{self.name}.{key}: expected a list, got {type(value).__name__}")
                kwargs[name] = [convert(item) for item in value]
            else:
                kwargs[name] = convert(value)
        return kwargs


def decode_json(body: bytes | str, signal: str = "traces") -> Any:
    """An OTLP/JSON body as its Export*ServiceRequest; ``ValueError`` for anything malformed."""
    try:
        obj = _loads(body)
    except _JSON_ERRORS as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    except (TypeError, RecursionError) as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    request_cls = REQUESTS[signal]
    try:
        kwargs = _MessageConverter.of(request_cls.DESCRIPTOR)(obj)
        return request_cls(**kwargs)
    except ValueError:
        raise
    except RecursionError as exc:
        raise ValueError("OTLP/JSON nested too deeply") from exc
    except (TypeError, AttributeError, OverflowError, KeyError) as exc:
        raise ValueError(f"invalid OTLP/JSON: {exc}") from exc
