"""The OTLP/gRPC receiver against real grpcio clients: every status code the OTLP spec names."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2
from grpc_status import rpc_status
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from tests.gateway.backend import Certificates
from tests.gateway.test_receivers_http import StubEngine, logs_request, trace_request
from tokentrace.gateway.config import Authenticator, GrpcSettings, TlsSettings
from tokentrace.gateway.receivers_grpc import GrpcReceiver
from tokentrace.gateway.telemetry import ReceiverCounters

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LIMIT = 1024 * 1024


def start_receiver(engine: Any, tokens: tuple[bytes, ...] = (), **settings: Any) -> GrpcReceiver:
    settings.setdefault("max_message_bytes", LIMIT)
    receiver = GrpcReceiver(
        GrpcSettings(host="127.0.0.1", port=0, **settings), engine, Authenticator(tokens), ReceiverCounters()
    )
    receiver.start()
    return receiver


@pytest.fixture
def engine() -> StubEngine:
    return StubEngine()


@pytest.fixture
def receiver(engine: StubEngine) -> Iterator[GrpcReceiver]:
    receiver = start_receiver(engine)
    yield receiver
    receiver.stop(0)


@pytest.fixture
def channel(receiver: GrpcReceiver) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(
        f"127.0.0.1:{receiver.port}", options=[("grpc.max_send_message_length", 512 * 1024 * 1024)]
    ) as channel:
        yield channel


def raw_export(channel: grpc.Channel, body: bytes, **kwargs: Any) -> bytes:
    """An Export call with raw bytes as the request: what a buggy or hostile client can send."""
    return channel.unary_unary(TRACE_EXPORT)(body, timeout=10, **kwargs)


def test_traces_are_ingested(channel: grpc.Channel, engine: StubEngine) -> None:
    request = trace_request(3)
    response = trace_service_pb2_grpc.TraceServiceStub(channel).Export(request, timeout=10)
    assert not response.HasField("partial_success")
    assert engine.traces == [request]


@pytest.mark.parametrize("compression", [grpc.Compression.Gzip, grpc.Compression.Deflate])
def test_compressed_requests(channel: grpc.Channel, engine: StubEngine, compression: grpc.Compression) -> None:
    request = trace_request(5)
    trace_service_pb2_grpc.TraceServiceStub(channel).Export(request, timeout=10, compression=compression)
    assert engine.traces == [request]


def test_partial_success_reports_rejected_spans(channel: grpc.Channel, engine: StubEngine) -> None:
    engine.reject = 2
    response = trace_service_pb2_grpc.TraceServiceStub(channel).Export(trace_request(3), timeout=10)
    assert (response.partial_success.rejected_spans, response.partial_success.error_message) == (
        2,
        "rejected by policy",
    )


def test_metrics_and_logs_pass_through_untouched(channel: grpc.Channel, engine: StubEngine) -> None:
    metrics = metrics_service_pb2.ExportMetricsServiceRequest(
        resource_metrics=[{"scope_metrics": [{"metrics": [{"name": "m", "sum": {"data_points": [{"as_int": 1}]}}]}]}]
    )
    metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(metrics, timeout=10)
    logs_service_pb2_grpc.LogsServiceStub(channel).Export(logs_request(), timeout=10, compression=grpc.Compression.Gzip)
    assert engine.passthrough == [
        ("metrics", metrics.SerializeToString(), "application/x-protobuf"),
        ("logs", logs_request().SerializeToString(), "application/x-protobuf"),
    ]


def test_garbage_is_invalid_argument(channel: grpc.Channel, engine: StubEngine) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        raw_export(channel, b"\xff\xff\xff\xff\xff")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "undecodable" in caught.value.details()
    assert not engine.traces


def test_over_the_size_limit_is_resource_exhausted(channel: grpc.Channel, engine: StubEngine) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(trace_request(1, name="x" * (LIMIT + 10)), timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert not engine.traces


def test_gzip_bomb_is_resource_exhausted(channel: grpc.Channel, engine: StubEngine) -> None:
    """A small compressed message that inflates past the limit: grpc checks the decompressed size."""
    with pytest.raises(grpc.RpcError) as caught:
        # 64 MiB of zeros in one string field: about 64 KiB on the wire with gzip, 64x over the limit inflated
        big = trace_request(1, name="\x00" * (64 * 1024 * 1024))
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(big, timeout=30, compression=grpc.Compression.Gzip)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert not engine.traces


def test_overload_is_unavailable_with_retry_info(channel: grpc.Channel, engine: StubEngine) -> None:
    engine.overloaded_for = 2.5
    with pytest.raises(grpc.RpcError) as caught:
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(trace_request(1), timeout=10)
    error = caught.value
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    status = rpc_status.from_call(error)  # the standard google.rpc.Status trailer
    assert status.code == code_pb2.UNAVAILABLE
    retry = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(retry)
    assert (retry.retry_delay.seconds, retry.retry_delay.nanos) == (2, 500_000_000)
    trailers = dict(error.trailing_metadata())
    assert error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"]) == retry
    with pytest.raises(grpc.RpcError) as caught:
        logs_service_pb2_grpc.LogsServiceStub(channel).Export(logs_request(), timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_an_engine_failure_is_retryable_unavailable(channel: grpc.Channel, engine: StubEngine) -> None:
    engine.crash = RuntimeError("disk on fire")
    with pytest.raises(grpc.RpcError) as caught:
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(trace_request(1), timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "disk on fire" not in caught.value.details()  # internals stay in the gateway's log


def test_unauthenticated(engine: StubEngine) -> None:
    receiver = start_receiver(engine, tokens=(b"s3cret",))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{receiver.port}") as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            for metadata in [(), (("authorization", "Bearer nope"),), (("authorization", "s3cret"),)]:
                with pytest.raises(grpc.RpcError) as caught:
                    stub.Export(trace_request(1), timeout=10, metadata=metadata)
                assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as caught:
                logs_service_pb2_grpc.LogsServiceStub(channel).Export(logs_request(), timeout=10)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert not engine.traces and not engine.passthrough
            stub.Export(trace_request(1), timeout=10, metadata=(("authorization", "Bearer s3cret"),))
            assert len(engine.traces) == 1
    finally:
        receiver.stop(0)


@pytest.fixture(scope="module")
def certificates() -> Certificates:
    return Certificates()


def test_tls(engine: StubEngine, certificates: Certificates) -> None:
    receiver = start_receiver(engine, tls=TlsSettings(certificates.server_cert_path, certificates.server_key_path))
    try:
        credentials = grpc.ssl_channel_credentials(Certificates.read(certificates.ca_path))
        with grpc.secure_channel(f"localhost:{receiver.port}", credentials) as channel:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(trace_request(1), timeout=10)
        with grpc.insecure_channel(f"127.0.0.1:{receiver.port}") as channel, pytest.raises(grpc.RpcError):
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(trace_request(1), timeout=3)
        assert len(engine.traces) == 1
    finally:
        receiver.stop(0)


def test_mutual_tls(engine: StubEngine, certificates: Certificates) -> None:
    tls = TlsSettings(certificates.server_cert_path, certificates.server_key_path, certificates.ca_path)
    receiver = start_receiver(engine, tls=tls)
    try:
        ca = Certificates.read(certificates.ca_path)
        with (
            grpc.secure_channel(f"localhost:{receiver.port}", grpc.ssl_channel_credentials(ca)) as channel,
            pytest.raises(grpc.RpcError) as caught,
        ):
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(trace_request(1), timeout=3)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # handshake refused
        credentials = grpc.ssl_channel_credentials(
            ca, Certificates.read(certificates.client_key_path), Certificates.read(certificates.client_cert_path)
        )
        with grpc.secure_channel(f"localhost:{receiver.port}", credentials) as channel:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(trace_request(1), timeout=10)
        assert len(engine.traces) == 1
    finally:
        receiver.stop(0)


def test_counters_record_outcomes(receiver: GrpcReceiver, channel: grpc.Channel) -> None:
    trace_service_pb2_grpc.TraceServiceStub(channel).Export(trace_request(1), timeout=10)
    with pytest.raises(grpc.RpcError):
        raw_export(channel, b"\xff\xff")
    assert receiver.counters.get("grpc", "traces", "OK") == 1
    assert receiver.counters.get("grpc", "traces", "INVALID_ARGUMENT") == 1


def test_other_methods_are_unimplemented(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Other")(b"", timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
