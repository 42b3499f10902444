"""The real OpenTelemetry Collector and Jaeger v2 around one tokentrace gateway, with the shipped configs.

* app (openai SDK + tokentrace, OTLP/gRPC) -> Collector (``collector-gateway.yaml``) -> gateway
  (``gateway.yaml``) -> Jaeger (``jaeger.yaml``);
* the same with a Collector on both sides: ... -> gateway -> Collector (``collector-backend.yaml``) -> Jaeger.

Read back through Jaeger's query API (v3): every trace the shipped sampling policies keep is there whole,
with the GenAI attributes, tokens, cost, flags and trace roll-ups equal to what the application did, and
every dropped trace is absent. Also: each shipped Collector configuration is accepted by the real
Collector (``validate``), the Kubernetes one included.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.deploy.checks import check_kept
from tests.deploy.harness import (
    DEPLOY,
    OTELCOL_ENV,
    Collector,
    Jaeger,
    binary,
    gateway_config,
    requires_binaries,
    sampling,
)
from tests.deploy.workload import App, expected_kept
from tests.gateway.process import GatewayProcess
from tokentrace.demo.simulator import Simulator

pytestmark = requires_binaries

REQUESTS = 28
# The shipped policies (errors, flags, cost >= 0.05 USD, probability 0.1) as they are; a shorter wait
# before deciding, and a latency threshold a 1.2 s call crosses (the shipped 5 s would slow the test).
SAMPLE_OVERRIDES = {"decision_wait_s": 3.0, "latency_threshold_s": 1.0}


@pytest.mark.parametrize("topology", ["collector-gateway-jaeger", "collector-gateway-collector-jaeger"])
def test_traces_in_jaeger_are_what_the_app_did(tmp_path: Path, topology: str) -> None:
    service = f"deploy-{topology}"
    with Jaeger(tmp_path / "jaeger") as jaeger:
        backend: Collector | None = None
        endpoint = jaeger.grpc_endpoint
        if topology == "collector-gateway-collector-jaeger":
            backend = Collector(
                "collector-backend.yaml", tmp_path / "backend", BACKEND_OTLP_ENDPOINT=f"127.0.0.1:{jaeger.grpc_port}"
            ).start()
            endpoint = f"http://{backend.grpc_endpoint}"
        try:
            config = gateway_config(tmp_path / "gateway", endpoint, **SAMPLE_OVERRIDES)
            gateway = GatewayProcess(tmp_path / "gateway", config=config).start()
            try:
                collector = Collector(
                    "collector-gateway.yaml",
                    tmp_path / "collector",
                    TOKENTRACE_GATEWAY_ENDPOINT=f"127.0.0.1:{gateway.ports['grpc']}",
                ).start()
                try:
                    with Simulator(seed=3) as simulator:
                        app = App(collector.grpc_endpoint, service, simulator, seed=11)
                        try:
                            app.run(REQUESTS)
                        finally:
                            app.close()
                    assert app.exporter.failed == 0
                    # SIGTERM: the Collector drains its queue into the gateway ...
                    assert collector.stop() == 0, collector.log()
                finally:
                    collector.kill()
                # ... and the gateway decides every trace it holds and drains to the next hop
                assert gateway.stop() == 0
            finally:
                gateway.kill()
            if backend is not None:
                assert backend.stop() == 0, backend.log()
                # the debug exporter logged what went through
                assert any("Traces" in line and "spans" in line for line in backend.lines), backend.log()
        finally:
            if backend is not None:
                backend.kill()
        kept = expected_kept(app, sampling(config))
        stored = jaeger.wait_for(service, len(kept))
    assert 0 < len(kept) < REQUESTS
    assert {"error", "flagged", "latency", "cost", "probabilistic"} <= set(kept.values()), kept
    check_kept(app, stored, kept, service)
    # the gateway authenticated the Collector with the token from its token file
    started = next(record for record in gateway.logs if record.get("message") == "gateway started")
    assert started["auth"] == "bearer"


@pytest.mark.parametrize(
    "config",
    [
        "collector-gateway.yaml",
        "collector-backend.yaml",
        "collector-loadbalancer-static.yaml",
        "collector-loadbalancer-k8s.yaml",
    ],
)
def test_shipped_collector_configs_are_valid(tmp_path: Path, config: str) -> None:
    # the k8s resolver needs a cluster to be created; a kubeconfig naming an unreachable one is enough
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: x}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    result = subprocess.run(
        [str(binary(OTELCOL_ENV)), "validate", "--config", str(DEPLOY / config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "KUBECONFIG": str(kubeconfig), "TOKENTRACE_GATEWAY_TOKEN": "t"},
    )
    assert result.returncode == 0, result.stderr
