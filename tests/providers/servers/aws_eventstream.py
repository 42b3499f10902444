"""Encoder for the AWS event-stream binary framing (``application/vnd.amazon.eventstream``).

Used by the local test servers to answer streaming AWS operations (Bedrock ``ConverseStream``,
``InvokeModelWithResponseStream``) with the exact bytes AWS sends, so the real botocore parser
(``botocore.eventstream.EventStreamBuffer`` + the event-stream response parser) decodes them.

Message layout (all integers big-endian)::

    prelude:  total_length:u32  headers_length:u32  prelude_crc:u32 (CRC32 of the first 8 bytes)
    headers:  repeated [name_len:u8 name:utf8 type:u8 value]
    payload:  raw bytes (JSON for Bedrock)
    trailer:  message_crc:u32 (CRC32 of everything before it)
"""

from __future__ import annotations

import base64
import json
import struct
import uuid
from binascii import crc32
from collections.abc import Mapping
from typing import Any

EVENTSTREAM_CONTENT_TYPE = "application/vnd.amazon.eventstream"

# Header value type tags (see botocore.eventstream.EventStreamHeaderParser._HEADER_TYPE_MAP).
_TRUE, _FALSE, _BYTE, _SHORT, _INT, _LONG, _BYTES, _STRING, _TIMESTAMP, _UUID = range(10)


class Timestamp(int):
    """Milliseconds since the epoch, encoded with the timestamp header type (8)."""


class Byte(int):
    """A value encoded with the signed 8-bit header type (2)."""


class Short(int):
    """A value encoded with the signed 16-bit header type (3)."""


class Long(int):
    """A value encoded with the signed 64-bit header type (5); plain ``int`` uses 32-bit (4)."""


def _encode_header_value(value: Any) -> bytes:
    if value is True:
        return bytes([_TRUE])
    if value is False:
        return bytes([_FALSE])
    if isinstance(value, Timestamp):
        return struct.pack("!Bq", _TIMESTAMP, value)
    if isinstance(value, Byte):
        return struct.pack("!Bb", _BYTE, value)
    if isinstance(value, Short):
        return struct.pack("!Bh", _SHORT, value)
    if isinstance(value, Long):
        return struct.pack("!Bq", _LONG, value)
    if isinstance(value, int):
        return struct.pack("!Bi", _INT, value)
    if isinstance(value, uuid.UUID):
        return bytes([_UUID]) + value.bytes
    if isinstance(value, (bytes, bytearray)):
        return struct.pack("!BH", _BYTES, len(value)) + bytes(value)
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return struct.pack("!BH", _STRING, len(raw)) + raw
    raise TypeError(f"unsupported event-stream header value: {value!r}")


def encode_headers(headers: Mapping[str, Any]) -> bytes:
    """Encode the header block (order preserved, names up to 255 bytes)."""
    out = bytearray()
    for name, value in headers.items():
        raw_name = name.encode("utf-8")
        if len(raw_name) > 255:
            raise ValueError("event-stream header names are at most 255 bytes")
        out += struct.pack("!B", len(raw_name)) + raw_name + _encode_header_value(value)
    return bytes(out)


def encode_message(headers: Mapping[str, Any], payload: bytes = b"") -> bytes:
    """Encode one complete event-stream message with both CRCs."""
    header_bytes = encode_headers(headers)
    total_length = 12 + len(header_bytes) + len(payload) + 4
    head = struct.pack("!II", total_length, len(header_bytes))
    prelude = head + struct.pack("!I", crc32(head) & 0xFFFFFFFF)
    body = prelude + header_bytes + payload
    return body + struct.pack("!I", crc32(body) & 0xFFFFFFFF)


def _json_payload(payload: Any) -> bytes:
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def event(event_type: str, payload: Any, content_type: str = "application/json") -> bytes:
    """An ``:message-type: event`` message, e.g. ``event("messageStart", {"role": "assistant"})``."""
    return encode_message(
        {":event-type": event_type, ":content-type": content_type, ":message-type": "event"},
        _json_payload(payload),
    )


def exception(exception_type: str, message: str, content_type: str = "application/json") -> bytes:
    """An ``:message-type: exception`` message (modelled error, e.g. ``modelStreamErrorException``).

    botocore turns it into ``botocore.exceptions.EventStreamError`` raised from the iteration, with
    ``response["Error"]["Code"] == exception_type``.
    """
    return encode_message(
        {":exception-type": exception_type, ":content-type": content_type, ":message-type": "exception"},
        _json_payload({"message": message}),
    )


def error(error_code: str, message: str) -> bytes:
    """An ``:message-type: error`` message (unmodelled service error)."""
    return encode_message(
        {":error-code": error_code, ":error-message": message, ":message-type": "error"},
    )


def chunk_event(body: Any) -> bytes:
    """An InvokeModelWithResponseStream ``chunk`` event: ``{"bytes": base64(json(body))}``."""
    return event("chunk", {"bytes": base64.b64encode(_json_payload(body)).decode("ascii")})
