"""A real third-party OTLP backend: Arize Phoenix, offline on 127.0.0.1, read back through its REST API.

OpenTelemetry SDK exporter → ``tokentrace gateway`` (subprocess) → ``phoenix serve`` (subprocess), over
OTLP/HTTP and OTLP/gRPC; the spans Phoenix stored carry the gateway's enrichment (cost, prompt
fingerprint, flags) with the values the in-process pipeline computes for the same spans.

Phoenix pins dependencies the rest of the suite cannot share (older ``anthropic`` and ``google-genai``),
so it lives in its own virtual environment: set ``TOKENTRACE_TEST_PHOENIX_PYTHON`` to that
environment's ``python`` (``python -m venv /opt/phoenix && /opt/phoenix/bin/pip install arize-phoenix``).
Without it (and without ``phoenix`` importable here) the test is skipped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter

from tests.gateway.process import GatewayProcess
from tests.gateway.test_e2e import emit, expected_spans, sender

PHOENIX_PYTHON_ENV = "TOKENTRACE_TEST_PHOENIX_PYTHON"
PROJECT = "tokentrace-gateway-e2e"
CHECKED = (
    "gen_ai.usage.cost.amount",
    "gen_ai.usage.cost.currency",
    "tokentrace.cost.input",
    "tokentrace.cost.output",
    "tokentrace.prompt.fingerprint",
    "tokentrace.prompt.fingerprint_source",
    "tokentrace.flags",
    "tokentrace.flag.truncated",
    "gen_ai.usage.input_tokens",
)


def _phoenix_python() -> str | None:
    configured = os.environ.get(PHOENIX_PYTHON_ENV)
    if configured:
        return configured
    if importlib.util.find_spec("phoenix") is not None and importlib.util.find_spec("phoenix.server") is not None:
        return sys.executable
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Phoenix:
    def __init__(self, python: str, directory: Path) -> None:
        self.http_port = _free_port()
        self.grpc_port = _free_port()
        self.log = (directory / "phoenix.log").open("w")
        env = {
            **os.environ,
            "PHOENIX_WORKING_DIR": str(directory),
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(self.http_port),
            "PHOENIX_GRPC_PORT": str(self.grpc_port),
            "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
            "PHOENIX_TELEMETRY_ENABLED": "false",
        }
        self.process = subprocess.Popen(
            [python, "-m", "phoenix.server.main", "serve"],
            cwd=directory,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"phoenix exited: {(directory / 'phoenix.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise AssertionError("phoenix did not start in 120 s")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def spans(self, project: str) -> list[dict[str, Any]]:
        url = f"{self.url}/v1/projects/{urllib.parse.quote(project)}/spans?limit=1000"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())["data"]
        except urllib.error.HTTPError as error:
            if error.code == 404:  # the project appears with its first span
                return []
            raise

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.log.close()


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phoenix]:
    python = _phoenix_python()
    if python is None:
        pytest.skip(f"Arize Phoenix not installed (set {PHOENIX_PYTHON_ENV} to a python with arize-phoenix)")
    server = Phoenix(python, tmp_path_factory.mktemp("phoenix"))
    yield server
    server.stop()


def flatten(attributes: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Phoenix may return dotted attributes nested (``{"gen_ai": {"usage": ...}}``): back to dotted keys."""
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _wait_for(phoenix: Phoenix, project: str, count: int, timeout_s: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    spans: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        spans = phoenix.spans(project)
        if len(spans) >= count:
            return spans
        time.sleep(0.5)
    raise AssertionError(f"phoenix has {len(spans)} spans in {project!r}, expected {count}")


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_enriched_spans_arrive_in_phoenix(phoenix: Phoenix, tmp_path: Path, protocol: str) -> None:
    project = f"{PROJECT}-{protocol}"
    endpoint = phoenix.url if protocol == "http" else f"http://127.0.0.1:{phoenix.grpc_port}"
    config = {"engine": {"exporter": {"endpoint": endpoint, "protocol": protocol}}}
    gateway = GatewayProcess(tmp_path, None, protocol=protocol, config=config).start()
    try:
        # Phoenix files spans under the project named by this resource attribute
        provider = sender(
            GrpcSpanExporter(endpoint=gateway.grpc_endpoint, insecure=True), **{"openinference.project.name": project}
        )
        emit(provider)
        assert provider.force_flush(10_000)
        provider.shutdown()
        try:
            stored = _wait_for(phoenix, project, 8)
        except AssertionError as error:
            stored = phoenix.spans(project)
            seen = [(span["name"], span["context"]) for span in stored]
            _, metrics = gateway.admin("/metrics")
            exported = [line for line in metrics.decode().splitlines() if line.startswith("tokentrace_gateway_ex")]
            raise AssertionError(f"{error}; stored {seen}; gateway {exported}") from None
    finally:
        assert gateway.stop() == 0
    expected = [(name, attributes) for name, attributes in expected_spans() if name.startswith("chat")]
    got = sorted(
        ((span["name"], flatten(span["attributes"])) for span in stored if span["name"].startswith("chat")),
        key=lambda item: json.dumps([item[0], sorted((k, str(v)) for k, v in item[1].items())]),
    )
    expected = sorted(expected, key=lambda item: json.dumps([item[0], sorted((k, str(v)) for k, v in item[1].items())]))
    assert len(got) == len(expected) == 6
    for (name, attributes), (expected_name, expected_attributes) in zip(got, expected, strict=True):
        assert name == expected_name
        for key in CHECKED:
            if key in expected_attributes:
                value = attributes.get(key)
                want = expected_attributes[key]
                if isinstance(want, float):
                    assert value == pytest.approx(want, rel=1e-9), key
                else:
                    assert value == (list(want) if isinstance(want, tuple) else want), key
    assert any(attributes.get("tokentrace.flags") == ["truncated"] for _, attributes in got)
    assert all(attributes.get("gen_ai.usage.cost.amount", 0) > 0 for _, attributes in got)
