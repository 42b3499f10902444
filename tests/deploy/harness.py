"""The real OpenTelemetry Collector and Jaeger v2 as subprocesses, on free ports, with the shipped configs.

The binaries come from ``deploy/build-go-tools`` (``TOKENTRACE_TEST_OTELCOL`` / ``TOKENTRACE_TEST_JAEGER``
point at them); without them every test here is skipped. Each program runs one of the files in
``examples/deploy/`` unchanged: those files take their addresses from ``${env:NAME:-default}``
references, and the test sets the environment to free loopback ports, so what is tested is what is
documented. The gateway's shipped ``gateway.yaml`` is loaded and only its deployment-specific keys
(ports, queue directory, backend endpoint, token file) are replaced (:func:`gateway_config`).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.gateway.backend import free_port
from tests.gateway.process import ChildProcess, merge

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "examples" / "deploy"
OTELCOL_ENV = "TOKENTRACE_TEST_OTELCOL"
JAEGER_ENV = "TOKENTRACE_TEST_JAEGER"
TOKEN = "deploy-test-token"


def binary(variable: str) -> str | None:
    path = os.environ.get(variable)
    return path if path and os.access(path, os.X_OK) else None


requires_binaries = pytest.mark.skipif(
    not (binary(OTELCOL_ENV) and binary(JAEGER_ENV)),
    reason=f"needs the real Collector and Jaeger: run deploy/build-go-tools and set {OTELCOL_ENV} and {JAEGER_ENV}",
)


class GoProcess(ChildProcess):
    """A Collector-style program (the Collector or Jaeger): started with ``--config`` files and an
    environment, ready when its health_check answers 200; stderr lines kept in ``lines``."""

    name = "process"

    def __init__(self, executable: str, configs: list[str], env: Mapping[str, str], directory: Path) -> None:
        self.executable = executable
        self.configs = configs
        self.env = {**os.environ, **env}
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.lines: list[str] = []
        self.process: subprocess.Popen[str] | None = None
        self.health_port = free_port()
        self.metrics_port = free_port()

    def command(self) -> list[str]:
        return [self.executable, *(arg for config in self.configs for arg in ("--config", config))]

    def start(self, timeout_s: float = 30) -> GoProcess:
        self.lines = []
        self.process = subprocess.Popen(
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            cwd=self.directory,
        )
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.process.returncode}:\n" + self.log())
            if self.healthy():
                return self
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"{self.name} not healthy after {timeout_s} s:\n" + self.log())

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            self.lines.append(line)

    def log(self) -> str:
        return "".join(self.lines[-60:])

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/", timeout=1) as response:
                return response.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def metric(self, name: str) -> float:
        """The sum of a metric's samples from its own Prometheus endpoint (0 when absent)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " ")
        )

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)


class Collector(GoProcess):
    """``otelcol-tokentrace --config examples/deploy/<config>`` with the config's env references on free ports."""

    name = "collector"

    def __init__(self, config: str, directory: Path, *, extra_configs: list[str] = (), **env: str) -> None:
        self.grpc_port, self.http_port = free_port(), free_port()
        super().__init__(binary(OTELCOL_ENV) or "otelcol", [str(DEPLOY / config), *extra_configs], {}, directory)
        self.env.update(
            OTELCOL_OTLP_GRPC_ENDPOINT=f"127.0.0.1:{self.grpc_port}",
            OTELCOL_OTLP_HTTP_ENDPOINT=f"127.0.0.1:{self.http_port}",
            OTELCOL_HEALTH_ENDPOINT=f"127.0.0.1:{self.health_port}",
            OTELCOL_METRICS_HOST="127.0.0.1",
            OTELCOL_METRICS_PORT=str(self.metrics_port),
            TOKENTRACE_GATEWAY_TOKEN=TOKEN,
            **env,
        )

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


class Jaeger(GoProcess):
    """Jaeger v2 with ``examples/deploy/jaeger.yaml`` (memory storage), read back through its API v3."""

    name = "jaeger"

    def __init__(self, directory: Path) -> None:
        self.grpc_port, self.http_port = free_port(), free_port()
        self.query_port, self.query_grpc_port = free_port(), free_port()
        super().__init__(binary(JAEGER_ENV) or "jaeger", [str(DEPLOY / "jaeger.yaml")], {}, directory)
        self.env.update(
            JAEGER_OTLP_GRPC_ENDPOINT=f"127.0.0.1:{self.grpc_port}",
            JAEGER_OTLP_HTTP_ENDPOINT=f"127.0.0.1:{self.http_port}",
            JAEGER_QUERY_HTTP_ENDPOINT=f"127.0.0.1:{self.query_port}",
            JAEGER_QUERY_GRPC_ENDPOINT=f"127.0.0.1:{self.query_grpc_port}",
            JAEGER_HEALTH_ENDPOINT=f"127.0.0.1:{self.health_port}",
            JAEGER_METRICS_HOST="127.0.0.1",
            JAEGER_METRICS_PORT=str(self.metrics_port),
        )

    def healthy(self) -> bool:
        # healthcheckv2 answers 200 once every component reports OK; the query port opens last
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/status", timeout=1) as response:
                ok = response.status == 200
            with urllib.request.urlopen(f"http://127.0.0.1:{self.query_port}/api/v3/services", timeout=1):
                return ok
        except (OSError, urllib.error.URLError):
            return False

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.query_port}{path}{query}", timeout=10) as response:
            return json.loads(response.read())

    def services(self) -> list[str]:
        return sorted(self.get("/api/v3/services").get("services") or [])

    def traces(self, service: str) -> dict[str, list[JaegerSpan]]:
        """Every span Jaeger holds for ``service`` (last hour), by trace id (hex), through ``/api/v3/traces``."""
        now = datetime.now(UTC)
        try:
            answer = self.get(
                "/api/v3/traces",
                **{
                    "query.service_name": service,
                    "query.start_time_min": (now - timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
                    "query.start_time_max": (now + timedelta(minutes=5)).isoformat().replace("+00:00", "Z"),
                    "query.num_traces": "10000",
                },
            )
        except urllib.error.HTTPError as error:
            if error.code == 404:  # "trace not found": nothing stored for the service yet
                return {}
            raise
        out: dict[str, list[JaegerSpan]] = {}
        for resource_spans in answer["result"]["resourceSpans"]:
            resource = attributes(resource_spans.get("resource", {}).get("attributes", []))
            for scope_spans in resource_spans.get("scopeSpans", []):
                for span in scope_spans.get("spans", []):
                    item = JaegerSpan(
                        trace_id=span["traceId"],
                        span_id=span["spanId"],
                        parent_span_id=span.get("parentSpanId", ""),
                        name=span["name"],
                        attributes=attributes(span.get("attributes", [])),
                        status_code=span.get("status", {}).get("code", 0),
                        resource=resource,
                    )
                    out.setdefault(item.trace_id, []).append(item)
        return out

    def wait_for(self, service: str, traces: int, timeout_s: float = 20) -> dict[str, list[JaegerSpan]]:
        """Poll until at least ``traces`` traces are stored and the span count has settled (or, with fewer,
        until it has not moved for 2 s: the senders are stopped by then), then return them."""
        deadline = time.monotonic() + timeout_s
        counts: list[int] = []
        while True:
            found = self.traces(service)
            counts.append(sum(len(spans) for spans in found.values()))
            settled = len(counts) > 1 and counts[-1] == counts[-2]
            quiet = len(counts) > 4 and len(set(counts[-5:])) == 1
            if (len(found) >= traces and settled) or quiet or time.monotonic() > deadline:
                return found
            time.sleep(0.5)


@dataclass
class JaegerSpan:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    attributes: dict[str, Any] = field(default_factory=dict)
    status_code: Any = 0
    resource: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status_code in (2, "STATUS_CODE_ERROR")


def _value(value: Mapping[str, Any]) -> Any:
    """An OTLP/JSON AnyValue as Python (int64 arrives as a string in OTLP/JSON)."""
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [_value(item) for item in value["arrayValue"].get("values", [])]
    return None


def attributes(items: list[Mapping[str, Any]]) -> dict[str, Any]:
    return {item["key"]: _value(item.get("value", {})) for item in items}


# --- the gateway, from the shipped gateway.yaml --------------------------------------------------------------


def shipped_gateway() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "gateway.yaml").read_text())


def gateway_config(directory: Path, endpoint: str, *, grpc_port: int = 0, **sample: Any) -> dict[str, Any]:
    """``examples/deploy/gateway.yaml`` with its deployment-specific keys set for this machine.

    Kept from the file: the pipeline (stages and sampling policies), logging, exporter options.
    Replaced: listen addresses (loopback, free ports), the queue directory, the backend endpoint (plaintext
    on loopback, without the example's API key header), the token file, drain timings; ``grpc_port`` fixes
    the OTLP/gRPC port (0: any free one) for a gateway that restarts behind a static list; ``sample`` overrides
    individual sampling settings (the shipped 10 s ``decision_wait_s`` would make the tests wait).
    """
    directory.mkdir(parents=True, exist_ok=True)
    tokens = directory / "tokens"
    tokens.write_text(f"# the Collector's token\n{TOKEN}\n")
    config = shipped_gateway()
    merge(
        config,
        {
            "receivers": {"grpc": {"host": "127.0.0.1", "port": grpc_port}, "http": {"host": "127.0.0.1", "port": 0}},
            "admin": {"host": "127.0.0.1", "port": 0},
            "auth": {"bearer_tokens_file": str(tokens)},
            "shutdown_timeout_s": 15,
            "shutdown_delay_s": 0,
            "engine": {
                "queue": {"directory": str(directory / "queue")},
                "exporter": {"endpoint": endpoint, "initial_backoff_s": 0.05, "max_backoff_s": 0.5},
                "poll_interval_s": 0.05,
                "pipeline": {"sample": sample},
            },
        },
    )
    config["engine"]["exporter"]["headers"] = {}  # the example's API key is for a hosted backend
    return config


def sampling(config: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(config["engine"]["pipeline"]["sample"])
