"""OTLP attribute values to Python and back, and span attribute entries on the wire.

``decode_value``/``encode_value`` convert one ``AnyValue`` (by hand: ``MessageToDict`` is ten times
slower and turns ints into strings).

The gateway's hot path does not go through ``AnyValue`` objects at all. It receives each span's
attributes as the raw bytes of their ``KeyValue`` entries (see :mod:`tokentrace.gateway.otlp_codec`),
and most entries recur byte for byte across spans: operation, provider, model, server, finish reasons,
small counts. :func:`entry` decodes each distinct entry once and :func:`attribute_pairs` looks the rest
up, so a span's attribute dict is built in C from cached pairs. Keys whose values never repeat (response
ids, large token counts) would only churn the cache: once a key has filled its share of the cache it is
marked volatile and its entries are decoded every time (short strings by slicing, see
:func:`_string_entry`). Arrays come out as tuples, as the SDK holds them, so a cached one is shared
safely; maps and long values are never cached.

On the way out, :func:`attribute_entry` writes one ``Span.attributes`` entry for a key and value
without building protobuf objects; the few keys stages add to every span are cached as prefixes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

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


def attribute_value(value: Any) -> Any:
    """An attribute's ``AnyValue`` as the SDK holds it: :func:`decode_value`, but an array as a tuple
    (values inside maps stay plain lists)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "array_value":
        return tuple(_array(value))
    return _GETTERS[kind](value)


def decode_attributes(key_values: Iterable[Any]) -> dict[str, Any]:
    """Attributes (``KeyValue`` messages) as the SDK holds them (see :func:`attribute_value`)."""
    return {kv.key: attribute_value(kv.value) for kv in key_values}


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


# --- KeyValue entry bytes -> (key, value) -------------------------------------------------------------

ENTRY_CACHE_LIMIT = 32_768  # cached entries; ~8 MiB at most
KEY_SHARE_LIMIT = 4_096  # distinct entries one key may cache before it counts as volatile
ENTRY_MAX_BYTES = 256
_scalar_entries: dict[bytes, tuple[str, Any]] = {}
_cached_per_key: dict[str, int] = {}
_volatile_keys: set[str] = set()
_SCALARS = (str, int, float, bool, bytes, type(None))


def entry(data: bytes) -> tuple[str, Any]:
    """One ``KeyValue``'s bytes as (key, value), cached when it may recur and its value can be shared:
    scalars, and arrays of scalars (as tuples, as the SDK holds them, so no span can change another's).

    Raises ``google.protobuf.message.DecodeError`` when the bytes are not a ``KeyValue``."""
    pair = _string_entry(data)
    if pair is None:
        kv = KeyValue.FromString(data)
        pair = kv.key, attribute_value(kv.value)
    key = pair[0]
    if len(data) <= ENTRY_MAX_BYTES and key not in _volatile_keys:
        value = pair[1]
        if type(value) in _SCALARS or (type(value) is tuple and all(type(item) in _SCALARS for item in value)):
            _remember(key)
            _scalar_entries[data] = pair
    return pair


def _string_entry(data: bytes) -> tuple[str, str] | None:
    """(key, value) of a ``KeyValue`` laid out as every SDK writes a short string attribute (key, then a
    value holding only ``string_value``, lengths under 128), read by slicing; None for anything else,
    which the protobuf runtime then decodes. Unique strings (response ids) are decoded on every span,
    and this is 3-4 times faster than building two messages for them."""
    size = len(data)
    if size < 6 or data[0] != 0x0A:
        return None
    key_end = 2 + data[1]
    if data[1] > 127 or key_end + 4 > size or data[key_end] != 0x12 or data[key_end + 2] != 0x0A:
        return None
    value_size = data[key_end + 1]
    text_size = data[key_end + 3]
    if value_size > 127 or text_size > 127 or value_size != text_size + 2 or key_end + 4 + text_size != size:
        return None
    try:
        return data[2:key_end].decode(), data[key_end + 4 :].decode()
    except UnicodeDecodeError:  # not valid UTF-8: the runtime's error, from the runtime
        return None


def _remember(key: str) -> None:
    """Count one more cached entry for ``key``; start over when the cache is full."""
    count = _cached_per_key.get(key, 0) + 1
    if count >= KEY_SHARE_LIMIT:
        if len(_volatile_keys) >= KEY_SHARE_LIMIT:  # a flood of distinct keys: forget, relearn
            _volatile_keys.clear()
        _volatile_keys.add(key)
    _cached_per_key[key] = count
    if len(_scalar_entries) >= ENTRY_CACHE_LIMIT:
        _scalar_entries.clear()
        _cached_per_key.clear()


def attribute_pairs(entries: Iterable[bytes]) -> list[tuple[str, Any]]:
    """(key, value) of each entry, in order: ``dict()`` of it is the span's attributes."""
    entries = list(entries)  # one bytes object per entry, made once
    pairs = list(map(_scalar_entries.get, entries))
    misses = pairs.count(None)
    if misses:  # found in C rather than by walking every pair
        index = -1
        for _ in range(misses):
            index = pairs.index(None, index + 1)
            pairs[index] = entry(entries[index])
    return pairs  # type: ignore[return-value]


# --- (key, value) -> Span.attributes entry bytes --------------------------------------------------------

ATTRIBUTE_TAG = b"\x4a"  # Span.attributes = 9
_DOUBLE = struct.Struct("<d")
_SMALL = [bytes((n,)) for n in range(128)]
_CACHE_LIMIT = 16_384
_key_heads: dict[str, bytes] = {}
_string_entries: dict[tuple[str, str], bytes] = {}
_double_prefixes: dict[str, bytes] = {}


def varint(value: int) -> bytes:
    if value < 128:
        return _SMALL[value]
    out = bytearray()
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def length_delimited(number: int, payload: bytes) -> bytes:
    """Field ``number`` holding ``payload`` (bytes, string or message) on the wire."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def _key_head(key: str) -> bytes:
    head = _key_heads.get(key)
    if head is None:
        raw = key.encode() if key.isascii() else key.encode("utf-8", "replace")
        head = b"\x0a" + varint(len(raw)) + raw
        if len(_key_heads) < _CACHE_LIMIT:
            _key_heads[key] = head
    return head


def attribute_entry(key: str, value: Any) -> bytes:
    """``Span.attributes`` entry (tag included) for one key and value.

    Stages add the same few keys to every span, often with the same string values (currency, pricing
    model, flags), so string entries are cached whole and doubles from a per-key prefix."""
    kind = type(value)
    if kind is str:
        cached = _string_entries.get((key, value))
        if cached is not None:
            return cached
        raw = value.encode() if value.isascii() else value.encode("utf-8", "replace")  # lone surrogates
        any_value = b"\x0a" + varint(len(raw)) + raw
    elif kind is float:
        prefix = _double_prefixes.get(key)
        if prefix is None:
            head = _key_head(key)
            prefix = ATTRIBUTE_TAG + varint(len(head) + 11) + head + b"\x12\x09\x21"
            if len(_double_prefixes) < _CACHE_LIMIT:
                _double_prefixes[key] = prefix
        return prefix + _DOUBLE.pack(value)
    elif kind is bool:
        any_value = b"\x10\x01" if value else b"\x10\x00"
    elif kind is int and -(2**63) <= value < 2**63:
        any_value = b"\x18" + varint(value & 0xFFFFFFFFFFFFFFFF)
    else:
        any_value = encode_value(value).SerializeToString()
    head = _key_head(key)
    body = head + b"\x12" + varint(len(any_value)) + any_value
    encoded = ATTRIBUTE_TAG + varint(len(body)) + body
    if kind is str and len(value) <= 128 and len(_string_entries) < _CACHE_LIMIT:
        _string_entries[(key, value)] = encoded
    return encoded


def key_value_bytes(key: str, value: Any) -> bytes:
    """The ``KeyValue`` message bytes of one attribute (:func:`attribute_entry` without the span's tag)."""
    return KeyValue(key=key, value=encode_value(value)).SerializeToString()
