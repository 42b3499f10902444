"""Fuzzing the receivers (hypothesis) in front of the real engine: malformed bodies, encodings and
content types get a 2xx/4xx answer, never a 5xx or a crash, and the receivers keep serving."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

hypothesis = pytest.importorskip("hypothesis")  # in the test extra; skipped where it is missing
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.gateway.backend import FakeBackend  # noqa: E402
from tests.gateway.test_receivers_http import Client, otlp_json, trace_request  # noqa: E402
from tokentrace.gateway.config import Authenticator, GrpcSettings, HttpSettings  # noqa: E402
from tokentrace.gateway.engine import Gateway  # noqa: E402
from tokentrace.gateway.receivers_grpc import GrpcReceiver  # noqa: E402
from tokentrace.gateway.receivers_http import HttpReceiver  # noqa: E402
from tokentrace.gateway.settings import EngineSettings  # noqa: E402

EXAMPLES = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
VALID = trace_request(3).SerializeToString()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HttpReceiver, GrpcReceiver, FakeBackend]]:
    directory: Path = tmp_path_factory.mktemp("fuzz-queue")
    with FakeBackend() as backend:
        engine = Gateway(
            EngineSettings.from_mapping(
                {
                    "queue": {"directory": str(directory), "fsync": "never"},
                    "exporter": {"endpoint": backend.grpc_endpoint, "initial_backoff_s": 0.05},
                    "pipeline": {"pipeline": ["normalise", "enrich", "flags", "redact"]},
                }
            )
        )
        engine.start()
        http = HttpReceiver(HttpSettings(port=0, max_body_bytes=256 * 1024), engine, Authenticator(()))
        grpc_receiver = GrpcReceiver(GrpcSettings(port=0, max_message_bytes=256 * 1024), engine, Authenticator(()))
        http.start()
        grpc_receiver.start()
        try:
            yield http, grpc_receiver, backend
        finally:
            http.stop()
            grpc_receiver.stop(0)
            engine.shutdown(2)


def mutate(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for position, value in flips:
        if out:
            out[position % len(out)] = value
    return bytes(out)


def _encode(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(body)
    if encoding == "deflate":
        return zlib.compress(body)
    return body


def _still_serving(client: Client) -> None:
    status, _, _ = client.post("/v1/traces", VALID)
    assert status == 200


ANSWERS = {200, 400, 413, 415}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "resourceSpans",
                    "scopeSpans",
                    "spans",
                    "traceId",
                    "spanId",
                    "parentSpanId",
                    "name",
                    "kind",
                    "attributes",
                    "key",
                    "value",
                    "stringValue",
                    "intValue",
                    "arrayValue",
                    "values",
                    "kvlistValue",
                    "startTimeUnixNano",
                    "status",
                    "code",
                    "events",
                    "links",
                    "resource",
                    "droppedAttributesCount",
                    "flags",
                    "doubleValue",
                    "bytesValue",
                    "x",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=25,
)


@EXAMPLES
@given(
    body=st.binary(max_size=3000),
    media=st.sampled_from(["application/x-protobuf", "application/json"]),
    encoding=st.sampled_from(["", "gzip", "deflate"]),
    path=st.sampled_from(["/v1/traces", "/v1/metrics", "/v1/logs"]),
    compress_validly=st.booleans(),
)
def test_http_random_bodies(
    stack: Any, body: bytes, media: str, encoding: str, path: str, compress_validly: bool
) -> None:
    client = Client(stack[0].port)
    payload = _encode(body, encoding) if compress_validly else body
    headers = {"Content-Encoding": encoding} if encoding else {}
    status, _, _ = client.post(path, payload, media, headers)
    assert status in ANSWERS


@EXAMPLES
@given(
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
    truncate=st.integers(0, len(VALID)),
)
def test_http_mutated_protobuf(stack: Any, flips: list[tuple[int, int]], truncate: int) -> None:
    client = Client(stack[0].port)
    status, _, _ = client.post("/v1/traces", mutate(VALID, flips)[:truncate] or b"\x0a")
    assert status in ANSWERS


@EXAMPLES
@given(value=json_values)
def test_http_random_json_structures(stack: Any, value: Any) -> None:
    client = Client(stack[0].port)
    body = json.dumps(
        {"resourceSpans": [{"scopeSpans": [{"spans": [value]}]}]} if isinstance(value, dict) else value
    ).encode()
    status, _, _ = client.post("/v1/traces", body, "application/json")
    assert status in ANSWERS


@EXAMPLES
@given(flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(32, 126)), min_size=1, max_size=6))
def test_http_mutated_json(stack: Any, flips: list[tuple[int, int]]) -> None:
    client = Client(stack[0].port)
    status, _, _ = client.post("/v1/traces", mutate(otlp_json(trace_request(2)), flips), "application/json")
    assert status in ANSWERS


@EXAMPLES
@given(
    body=st.binary(max_size=3000),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
    mutate_valid=st.booleans(),
)
def test_grpc_random_and_mutated_messages(
    stack: Any, body: bytes, flips: list[tuple[int, int]], mutate_valid: bool
) -> None:
    message = mutate(VALID, flips) if mutate_valid else body
    with grpc.insecure_channel(f"127.0.0.1:{stack[1].port}") as channel:
        call = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        try:
            call(message, timeout=10)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())


def test_receivers_still_serve_after_fuzzing(stack: Any) -> None:
    _still_serving(Client(stack[0].port))
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{stack[1].port}") as channel:
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(trace_request(1), timeout=10)
