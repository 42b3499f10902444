"""``tokentrace gateway`` configuration: file, environment and flags, validated with the key's path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokentrace.gateway.config import (
    Authenticator,
    ConfigError,
    GatewayConfig,
    build_engine_settings,
    from_args,
    load,
)
from tokentrace.gateway.server import main
from tokentrace.gateway.settings import EngineSettings

FULL = """
receivers:
  grpc: {host: 0.0.0.0, port: 14317, max_message_bytes: 8388608, max_workers: 4,
         tls: {cert_file: /c.pem, key_file: /k.pem, client_ca_file: /ca.pem}}
  http: {port: 14318, max_body_bytes: 1048576, header_timeout_s: 5, body_timeout_s: 20, max_connections: 64}
auth: {bearer_tokens: [a, b]}
admin: {host: 0.0.0.0, port: 13134}
telemetry: {otlp_endpoint: "http://collector:4317", interval_s: 15, otlp_headers: {x-key: v}}
logging: {level: debug, format: text}
shutdown_timeout_s: 12
engine:
  queue: {directory: /var/lib/q, fsync: always}
  exporter: {endpoint: "backend:4317", protocol: grpc, headers: {x-api-key: k}}
  pipeline: {pipeline: [normalise, enrich]}
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    return str(path)


def test_defaults_are_local_and_safe() -> None:
    config = load(None, environ={})
    assert config == GatewayConfig()
    assert (config.receivers.grpc.host, config.receivers.grpc.port) == ("127.0.0.1", 4317)
    assert (config.receivers.http.port, config.admin.port) == (4318, 13133)
    assert config.receivers.http.max_body_bytes == config.receivers.grpc.max_message_bytes == 16 * 1024 * 1024
    assert not Authenticator(config.auth.tokens()).enabled
    assert not config.receivers.http.tls.enabled


def test_a_full_file(tmp_path: Path) -> None:
    config = load(write(tmp_path, FULL), environ={})
    assert config.receivers.grpc.tls.client_ca_file == "/ca.pem"
    assert config.receivers.grpc.max_workers == 4
    assert config.receivers.http.header_timeout_s == 5.0 and isinstance(config.receivers.http.header_timeout_s, float)
    assert config.auth.bearer_tokens == ("a", "b")
    assert config.telemetry.otlp_headers == {"x-key": "v"}
    assert (config.logging.level, config.logging.format, config.shutdown_timeout_s) == ("debug", "text", 12.0)
    settings = build_engine_settings(config)
    assert isinstance(settings, EngineSettings)
    assert (settings.queue.directory, settings.exporter.headers) == ("/var/lib/q", {"x-api-key": "k"})
    assert settings.pipeline == {"pipeline": ["normalise", "enrich"]}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("receivers:\n  http:\n    prot: 1\n", "receivers.http.prot: unknown key; known keys here: body_timeout_s"),
        ("recievers: {}\n", "recievers: unknown key"),
        ("receivers:\n  grpc:\n    port: abc\n", "receivers.grpc.port: expected an integer, got 'abc'"),
        ("receivers:\n  grpc:\n    port: 70000\n", "receivers.grpc.port: expected a port number"),
        ("receivers:\n  http:\n    header_timeout_s: -1\n", "receivers.http.header_timeout_s: must be > 0"),
        ("receivers:\n  http:\n    enabled: yes please\n", "receivers.http.enabled: expected a boolean"),
        ("receivers:\n  http: [1, 2]\n", "receivers.http: expected a mapping, got a list"),
        (
            "receivers:\n  http:\n    tls: {cert_file: /c.pem}\n",
            "receivers.http.tls: cert_file and key_file go together",
        ),
        ("auth:\n  bearer_tokens: [a, 3, {x: 1}]\n", "auth.bearer_tokens[2]: expected a string, got a mapping"),
        ("telemetry:\n  otlp_protocol: thrift\n", "otlp_protocol: expected 'grpc' or 'http/protobuf'"),
        ("telemetry:\n  temporality: sometimes\n", "telemetry.temporality: expected 'cumulative' or 'delta'"),
        ("logging:\n  level: loud\n", "logging.level: expected debug, info"),
        ("- a\n- b\n", "expected a mapping at the top level, got a list"),
        ("receivers: {grpc: {port: 1}\n", "not valid YAML"),
    ],
)
def test_bad_files_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, text), environ={})
    assert message in str(caught.value)


def test_engine_errors_come_back_with_their_key(tmp_path: Path) -> None:
    config = load(write(tmp_path, "engine:\n  queue: {fsync: sometimes}\n"), environ={})
    with pytest.raises(ConfigError, match=r"engine: queue.fsync: expected one of"):
        build_engine_settings(config)
    config = load(write(tmp_path, "engine:\n  exporter: {endpointt: x}\n"), environ={})
    with pytest.raises(ConfigError, match=r"engine: exporter: unknown setting\(s\) \['endpointt'\]"):
        build_engine_settings(config)


def test_missing_file_and_token_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read it"):
        load(str(tmp_path / "nope.yaml"), environ={})
    with pytest.raises(ConfigError, match=r"auth\.bearer_tokens_file: cannot read it"):
        load(None, environ={"TOKENTRACE_GATEWAY_AUTH__BEARER_TOKENS_FILE": str(tmp_path / "none")})


def test_environment_overrides_the_file_and_flags_override_both(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    environ = {
        "TOKENTRACE_GATEWAY_CONFIG": path,
        "TOKENTRACE_GATEWAY_RECEIVERS__HTTP__PORT": "24318",
        "TOKENTRACE_GATEWAY_RECEIVERS__GRPC__PORT": "24317",
        "TOKENTRACE_GATEWAY_RECEIVERS__HTTP__HOST": "::1",
        "TOKENTRACE_GATEWAY_AUTH__BEARER_TOKENS": "x, y",
        "TOKENTRACE_GATEWAY_ENGINE__EXPORTER__ENDPOINT": "other:4317",
        "TOKENTRACE_GATEWAY_TELEMETRY__INTERVAL_S": "2.5",
        "TOKENTRACE_GATEWAY_LOGGING__LEVEL": "warning",
        "UNRELATED": "1",
    }
    config, check = from_args(["--grpc-port", "34317", "--log-level", "error"], environ)
    assert not check
    assert config.receivers.http.port == 24318  # environment over the file
    assert config.receivers.grpc.port == 34317  # flag over the environment
    assert config.receivers.http.host == "::1"
    assert config.receivers.http.max_body_bytes == 1048576  # from the file, untouched
    assert config.auth.bearer_tokens == ("x", "y")
    assert build_engine_settings(config).exporter.endpoint == "other:4317"
    assert build_engine_settings(config).queue.directory == "/var/lib/q"
    assert config.telemetry.interval_s == 2.5
    assert config.logging.level == "error"


def test_bad_environment_values_name_the_variable_path() -> None:
    with pytest.raises(ConfigError, match=r"receivers\.http\.port: expected an integer, got 'many'"):
        load(None, environ={"TOKENTRACE_GATEWAY_RECEIVERS__HTTP__PORT": "many"})
    with pytest.raises(ConfigError, match=r"receivers\.htp: unknown key"):
        load(None, environ={"TOKENTRACE_GATEWAY_RECEIVERS__HTP__PORT": "1"})


def test_tokens_file(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("# one per line\nfirst\n\n  second  \n")
    config = load(
        None,
        environ={
            "TOKENTRACE_GATEWAY_AUTH__BEARER_TOKENS_FILE": str(tokens),
            "TOKENTRACE_GATEWAY_AUTH__BEARER_TOKENS": "third",
        },
    )
    authenticator = Authenticator(config.auth.tokens())
    assert authenticator.enabled
    for token in ("first", "second", "third"):
        assert authenticator.allows(f"Bearer {token}")
    for header in (None, "", "Bearer", "Bearer fourth", "Basic first", "first", "Bearer first x"):
        assert not authenticator.allows(header), header


def test_check_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", write(tmp_path, FULL), "--check"]) == 0
    assert capsys.readouterr().out == "configuration OK\n"
    assert main(["--config", write(tmp_path, "engine:\n  pipeline: {pipeline: [enrich, nope]}\n"), "--check"]) == 2
    assert "unknown stage" in capsys.readouterr().err
    assert main(["--config", write(tmp_path, "admin: {port: x}\n"), "--check"]) == 2
    assert "admin.port: expected an integer" in capsys.readouterr().err


EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "deploy"


def test_the_deploy_examples_are_valid_configurations(tmp_path: Path) -> None:
    import yaml

    from tokentrace.processor.config import build_pipeline

    no_tokens_file = {"TOKENTRACE_GATEWAY_AUTH__BEARER_TOKENS_FILE": ""}
    config_map = next(
        doc
        for doc in yaml.safe_load_all((EXAMPLES / "kubernetes" / "gateway.yaml").read_text())
        if doc["kind"] == "ConfigMap"
    )
    embedded = tmp_path / "embedded.yaml"
    for path, text in [(EXAMPLES / "gateway.yaml", None), (embedded, config_map["data"]["gateway.yaml"])]:
        if text is not None:
            path.write_text(text)
        settings = build_engine_settings(load(str(path), environ=no_tokens_file))
        build_pipeline(settings.pipeline)
    for name in ("collector-loadbalancer-static.yaml", "collector-loadbalancer-k8s.yaml"):
        collector = yaml.safe_load((EXAMPLES / name).read_text())
        loadbalancing = collector["exporters"]["loadbalancing"]
        assert loadbalancing["routing_key"] == "traceID"
        assert "otlp" in loadbalancing["protocol"]
        assert collector["service"]["pipelines"]["traces"]["exporters"] == ["loadbalancing"]


def test_shutdown_delay_may_be_zero_but_not_negative(tmp_path: Path) -> None:
    assert load(None, environ={}).shutdown_delay_s == 0
    assert load(write(tmp_path, "shutdown_delay_s: 5\n"), environ={}).shutdown_delay_s == 5.0
    with pytest.raises(ConfigError, match="shutdown_delay_s: must be >= 0"):
        load(write(tmp_path, "shutdown_delay_s: -1\n"), environ={})


@pytest.mark.parametrize("temporality", ["delta", "cumulative"])
def test_metric_temporality_reaches_the_otlp_exporter(tmp_path: Path, temporality: str) -> None:
    from opentelemetry.sdk.metrics import Counter, Histogram
    from opentelemetry.sdk.metrics.export import AggregationTemporality

    from tokentrace.gateway.telemetry import meter_provider

    config = load(
        write(tmp_path, f"telemetry: {{otlp_endpoint: 'http://127.0.0.1:9', temporality: {temporality}}}\n"), environ={}
    )
    provider = meter_provider(config.telemetry)
    try:
        (reader,) = provider._metric_readers
        wanted = AggregationTemporality.DELTA if temporality == "delta" else AggregationTemporality.CUMULATIVE
        assert reader._exporter._preferred_temporality[Counter] == wanted
        assert reader._exporter._preferred_temporality[Histogram] == wanted
    finally:
        provider.shutdown(timeout_millis=1000)
