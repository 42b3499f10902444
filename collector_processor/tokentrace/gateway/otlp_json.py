"""OTLP/JSON to protobuf, per the OTLP specification rather than plain proto3 JSON.

Trace and span ids are hex (not base64), enums may be ints or names, 64-bit ints may be strings or
numbers, keys are lowerCamelCase (the proto names are accepted too) and unknown keys are ignored. The
decoder walks the message descriptors once to build converters, turns the parsed JSON into constructor
keyword arguments and lets the C protobuf runtime build the whole message in one call. Anything
malformed raises ``ValueError``.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from tokentrace.gateway.otlp_codec import REQUESTS

try:  # orjson is several times faster than json on large bodies; optional
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
    _JSON_ERRORS: tuple[type[Exception], ...] = (orjson.JSONDecodeError, UnicodeDecodeError)
except ImportError:  # pragma: no cover - exercised only without orjson
    import json

    _loads = json.loads
    _JSON_ERRORS = (ValueError, UnicodeDecodeError)

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
