"""Round-trip tests of the test event-stream encoder against botocore's own parser."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from tests.providers.servers import aws_eventstream as es


def _parse(data: bytes, step: int) -> list:
    buffer = EventStreamBuffer()
    messages = []
    for start in range(0, len(data), step):
        buffer.add_data(data[start : start + step])
        messages.extend(buffer)
    return messages


@pytest.mark.parametrize("step", [1, 5, 64, 1 << 20])
def test_roundtrip_event_exception_error(step: int) -> None:
    data = (
        es.event("messageStart", {"role": "assistant"})
        + es.exception("throttlingException", "slow down")
        + es.error("InternalFailure", "boom")
        + es.chunk_event({"type": "message_stop"})
    )
    first, second, third, fourth = _parse(data, step)
    assert first.headers == {
        ":event-type": "messageStart",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    assert json.loads(first.payload) == {"role": "assistant"}
    assert first.to_response_dict()["status_code"] == 200
    assert second.headers[":exception-type"] == "throttlingException"
    assert json.loads(second.payload) == {"message": "slow down"}
    assert second.to_response_dict()["status_code"] == 400
    assert third.headers == {":error-code": "InternalFailure", ":error-message": "boom", ":message-type": "error"}
    assert third.payload == b""
    assert json.loads(base64.b64decode(json.loads(fourth.payload)["bytes"])) == {"type": "message_stop"}
    # Prelude fields as botocore decoded them match the bytes we produced.
    assert first.prelude.total_length == len(es.event("messageStart", {"role": "assistant"}))


def test_roundtrip_every_header_type() -> None:
    headers = {
        "t": True,
        "f": False,
        "b": es.Byte(-3),
        "s": es.Short(300),
        "i": -70000,
        "l": es.Long(1 << 40),
        "raw": b"\x00\xff",
        "str": "héllo",
        "ts": es.Timestamp(1_700_000_000_000),
        "u": uuid.UUID(int=5),
    }
    (message,) = _parse(es.encode_message(headers, b"payload"), 3)
    expected = dict(headers, u=uuid.UUID(int=5).bytes)
    assert message.headers == expected
    assert message.payload == b"payload"


def test_corrupted_message_crc_is_rejected_by_botocore() -> None:
    data = bytearray(es.event("x", {"a": 1}))
    data[-5] ^= 0xFF  # flip a payload byte: the message CRC no longer matches
    with pytest.raises(ChecksumMismatch):
        _parse(bytes(data), 1 << 20)


def test_corrupted_prelude_crc_is_rejected_by_botocore() -> None:
    data = bytearray(es.event("x", {"a": 1}))
    data[9] ^= 0xFF  # inside the prelude CRC
    with pytest.raises(ChecksumMismatch):
        _parse(bytes(data), 1 << 20)
