"""The exporters' retry decisions: backoff, Retry-After, timeouts, connection failures."""

from __future__ import annotations

import email.utils
import random
import time

import pytest

from tests.gateway.backend import FakeBackend, free_port, genai_request
from tokentrace.gateway.export import HttpExporter, _retry_after, backoff_delays, build_exporter
from tokentrace.gateway.queue import KIND_TRACES
from tokentrace.gateway.settings import ExporterSettings


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap():
    delays = backoff_delays(0.5, 4.0, random.Random(1))
    values = [next(delays) for _ in range(8)]
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    for value, ceiling in zip(values, ceilings, strict=True):
        assert 0.25 <= value <= ceiling
    assert len(set(values)) == len(values)  # jittered


def test_retry_after_in_seconds_or_as_a_date():
    assert _retry_after("3") == 3.0
    assert _retry_after(" 0.5 ") == 0.5
    assert _retry_after(None) is None and _retry_after("soon") is None
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= _retry_after(when) <= 31
    assert _retry_after(email.utils.formatdate(time.time() - 30, usegmt=True)) == 0.0


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_outcomes_against_the_backend(protocol):
    with FakeBackend() as backend:
        endpoint = backend.grpc_endpoint if protocol == "grpc" else backend.http_endpoint
        exporter = build_exporter(ExporterSettings(endpoint=endpoint, protocol=protocol, timeout_s=0.3))
        payload = genai_request(1, 2, seed=1).SerializeToString()
        assert exporter.send(KIND_TRACES, payload).status == "ok"
        backend.fail_next(1, "unavailable", retry_after_s=2)
        outcome = exporter.send(KIND_TRACES, payload)
        assert (outcome.status, outcome.retry_after_s) == ("retry", 2.0)
        backend.fail_next(1, "invalid")
        assert exporter.send(KIND_TRACES, payload).status == "drop"
        backend.delay_s = 1.0  # slower than the timeout: retryable
        outcome = exporter.send(KIND_TRACES, payload)
        assert outcome.status == "retry", outcome
        backend.delay_s = 0.0
        backend.stop()
        assert exporter.send(KIND_TRACES, payload).status == "retry"  # connection refused
        exporter.close()


def test_http_endpoint_paths_and_scheme():
    exporter = HttpExporter(ExporterSettings(endpoint="collector:4318/", protocol="http", traces_path="/otlp/t"))
    assert exporter.urls["traces"] == "http://collector:4318/otlp/t"
    assert exporter.urls["logs"] == "http://collector:4318/v1/logs"
    exporter.close()


def test_missing_endpoint_is_a_configuration_error():
    with pytest.raises(ValueError):
        build_exporter(ExporterSettings(endpoint=""))


def test_unreachable_grpc_backend_is_retryable():
    exporter = build_exporter(ExporterSettings(endpoint=f"127.0.0.1:{free_port()}", timeout_s=0.5))
    assert exporter.send(KIND_TRACES, b"").status == "retry"
    exporter.close()
