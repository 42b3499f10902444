"""The gateway's configuration: one YAML file, ``TOKENTRACE_GATEWAY_*`` environment variables, flags.

Precedence, lowest first: defaults, the file (``--config FILE`` or ``TOKENTRACE_GATEWAY_CONFIG``),
environment variables, command-line flags. Every layer is validated the same way: an unknown key or
a value of the wrong type is an error naming the key's path (``receivers.http.port: expected an
integer, got 'abc'``), never silently ignored, because a typo in a gateway's config otherwise
shows up only as lost data or an open endpoint.

```yaml
receivers:
  grpc: {host: 0.0.0.0, port: 4317, max_message_bytes: 16777216}
  http: {host: 0.0.0.0, port: 4318, max_body_bytes: 16777216, header_timeout_s: 10, body_timeout_s: 30}
auth: {bearer_tokens_file: /etc/tokentrace/tokens}      # one token a line; or bearer_tokens: [...]
admin: {host: 0.0.0.0, port: 13133}                     # /health, /ready, /metrics
telemetry: {otlp_endpoint: "http://otel-collector:4317", interval_s: 60}
logging: {level: info, format: json}
engine:                                                 # handed to the engine (EngineSettings)
  queue: {directory: /var/lib/tokentrace/queue}
  exporter: {endpoint: "https://backend:4317", protocol: grpc}   # no endpoint: the local store only
  store: {path: /var/lib/tokentrace/spans.duckdb, keep_local: true}  # `tokentrace report --store` reads it
  pipeline: {pipeline: [normalise, enrich, flags, redact, sample]}
```

Environment variables name a key by its path, sections joined with ``__``:
``TOKENTRACE_GATEWAY_RECEIVERS__HTTP__PORT=14318``, ``TOKENTRACE_GATEWAY_ENGINE__EXPORTER__ENDPOINT=...``.
Values are read as YAML (``0.5`` is a number, ``[a, b]`` a list). ``TOKENTRACE_GATEWAY_AUTH__BEARER_TOKENS``
may also be a comma-separated list.
"""

from __future__ import annotations

import argparse
import dataclasses
import hmac
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_ENV = "TOKENTRACE_GATEWAY_CONFIG"
ENV_PREFIX = "TOKENTRACE_GATEWAY_"
MIB = 1024 * 1024


class ConfigError(ValueError):
    """The gateway configuration is invalid; the message names the key and says why."""


# --- settings ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsSettings:
    """Server TLS. With ``client_ca_file`` clients must present a certificate signed by it (mTLS)."""

    cert_file: str = ""
    key_file: str = ""
    client_ca_file: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.cert_file)


@dataclass(frozen=True)
class GrpcSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 4317
    max_message_bytes: int = 16 * MIB  # after decompression; over it: RESOURCE_EXHAUSTED
    max_workers: int = 16  # threads running Export calls
    max_concurrent_rpcs: int = 256  # past it grpc refuses with RESOURCE_EXHAUSTED
    tls: TlsSettings = field(default_factory=TlsSettings)


@dataclass(frozen=True)
class HttpSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 4318
    max_body_bytes: int = 16 * MIB  # after decompression (and before it); over it: 413
    header_timeout_s: float = 10.0  # request line + headers, from the first byte
    body_timeout_s: float = 30.0  # the whole body
    idle_timeout_s: float = 60.0  # a kept-alive connection waiting for its next request
    max_connections: int = 256  # past it new connections get 503 and are closed
    tls: TlsSettings = field(default_factory=TlsSettings)


@dataclass(frozen=True)
class ReceiversSettings:
    grpc: GrpcSettings = field(default_factory=GrpcSettings)
    http: HttpSettings = field(default_factory=HttpSettings)


@dataclass(frozen=True)
class AuthSettings:
    """Bearer tokens for the OTLP endpoints; none configured means auth is off."""

    bearer_tokens: tuple[str, ...] = ()
    bearer_tokens_file: str = ""  # one token per line; blank lines and ``#`` comments skipped

    def tokens(self) -> tuple[bytes, ...]:
        tokens = [token for token in self.bearer_tokens if token]
        if self.bearer_tokens_file:
            text = Path(self.bearer_tokens_file).read_text(encoding="utf-8")
            tokens.extend(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
        return tuple(token.encode("utf-8") for token in tokens)


class Authenticator:
    """Checks ``Authorization: Bearer <token>`` in constant time against the configured tokens."""

    def __init__(self, tokens: Sequence[bytes]) -> None:
        self._tokens = tuple(tokens)

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def allows(self, authorization: str | bytes | None) -> bool:
        if not self._tokens:
            return True
        if not authorization:
            return False
        if isinstance(authorization, str):
            authorization = authorization.encode("utf-8", "replace")
        scheme, _, token = authorization.strip().partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        token = token.strip()
        # compare against every token, so timing says nothing about which (or whether one) matched
        matched = False
        for candidate in self._tokens:
            matched |= hmac.compare_digest(candidate, token)
        return matched


@dataclass(frozen=True)
class AdminSettings:
    """``/health``, ``/ready`` and the Prometheus ``/metrics``: open (no auth), so keep it internal."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 13133


@dataclass(frozen=True)
class TelemetrySettings:
    """The gateway's own metrics as OTLP, through the OpenTelemetry SDK (off without an endpoint)."""

    otlp_endpoint: str = ""
    otlp_protocol: str = "grpc"  # grpc | http/protobuf
    otlp_headers: dict[str, str] = field(default_factory=dict)
    interval_s: float = 60.0
    service_name: str = "tokentrace-gateway"
    temporality: str = "cumulative"  # cumulative | delta (span metrics and self-telemetry counters)

    def validate(self, path: str) -> None:
        if self.otlp_protocol not in ("grpc", "http/protobuf"):
            raise ConfigError(f"{path}.otlp_protocol: expected 'grpc' or 'http/protobuf', got {self.otlp_protocol!r}")
        if self.temporality not in ("cumulative", "delta"):
            raise ConfigError(f"{path}.temporality: expected 'cumulative' or 'delta', got {self.temporality!r}")
        if self.interval_s <= 0:
            raise ConfigError(f"{path}.interval_s: must be > 0")


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "info"
    format: str = "json"  # json | text

    def validate(self, path: str) -> None:
        if self.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigError(f"{path}.level: expected debug, info, warning, error or critical, got {self.level!r}")
        if self.format not in ("json", "text"):
            raise ConfigError(f"{path}.format: expected 'json' or 'text', got {self.format!r}")


@dataclass(frozen=True)
class GatewayConfig:
    receivers: ReceiversSettings = field(default_factory=ReceiversSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    shutdown_timeout_s: float = 30.0  # how long SIGTERM waits for the queue to drain
    # after SIGTERM, /ready is 503 but the receivers keep serving this long, so load balancers and the
    # Collector's resolver take the gateway out before it stops listening (0: stop at once)
    shutdown_delay_s: float = 0.0
    engine: dict[str, Any] = field(default_factory=dict)  # the engine's own settings, validated by it


# --- validation -------------------------------------------------------------------------------------

_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}


def _coerce(value: Any, hint: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, path)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(hint):
            if option is type(None):
                if value is None:
                    return None
                continue
            try:
                return _coerce(value, option, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{path}: unexpected value {value!r}")
    if origin is tuple or origin is list:
        if isinstance(value, str):  # "a,b" from an environment variable
            value = [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {_show(value)}")
        (item_hint, *_) = typing.get_args(hint) or (Any,)
        items = [_coerce(item, item_hint, f"{path}[{index}]") for index, item in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {_show(value)}")
        _, value_hint = typing.get_args(hint) or (str, Any)
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"{path}: keys must be strings, got {_show(key)}")
            out[key] = _coerce(item, value_hint, f"{path}.{key}")
        return out
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected a boolean (true/false), got {_show(value)}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected an integer, got {_show(value)}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{path}: expected a number, got {_show(value)}")
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):  # port-like values in YAML
            return str(value)
        raise ConfigError(f"{path}: expected a string, got {_show(value)}")
    raise ConfigError(f"{path}: unsupported setting type {hint!r}")  # pragma: no cover - a bug of ours


def _show(value: Any) -> str:
    kind = {dict: "a mapping", list: "a list", type(None): "nothing (null)"}.get(type(value))
    return kind or f"{value!r}"


def from_mapping(cls: type, data: Any, path: str = "") -> Any:
    """An instance of the settings dataclass ``cls`` from plain data; errors name the key's path."""
    where = path or "(top level)"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {_show(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [key for key in data if key not in fields]
    if unknown:
        key = unknown[0]
        raise ConfigError(f"{_join(path, str(key))}: unknown key; known keys here: {', '.join(sorted(fields))}")
    values = {key: _coerce(value, hints[key], _join(path, key)) for key, value in data.items()}
    instance = cls(**values)
    validate = getattr(instance, "validate", None)
    if validate is not None:
        validate(where)
    _check_ranges(instance, path)
    return instance


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check_ranges(instance: Any, path: str) -> None:
    for f in dataclasses.fields(instance):
        value = getattr(instance, f.name)
        name = _join(path, f.name)
        if f.name == "port" and not 0 <= value <= 65535:
            raise ConfigError(f"{name}: expected a port number 0-65535 (0 picks a free one), got {value}")
        if (
            f.name != "shutdown_delay_s"
            and f.name.endswith(("_bytes", "_s", "_workers", "_rpcs", "_connections"))
            and isinstance(value, (int, float))
            and value <= 0
        ):
            raise ConfigError(f"{name}: must be > 0, got {value}")
    if getattr(instance, "shutdown_delay_s", 0) < 0:
        raise ConfigError(f"{_join(path, 'shutdown_delay_s')}: must be >= 0")
    if isinstance(instance, TlsSettings) and bool(instance.cert_file) != bool(instance.key_file):
        raise ConfigError(f"{path}: cert_file and key_file go together")
    if isinstance(instance, TlsSettings) and instance.client_ca_file and not instance.cert_file:
        raise ConfigError(f"{path}.client_ca_file: needs cert_file and key_file")


# --- layers -----------------------------------------------------------------------------------------


def _read_file(path: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {_show(data)}")
    return data


def _set_path(data: dict[str, Any], keys: Sequence[str], value: Any, origin: str) -> None:
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"{origin}: {'.'.join(keys)} goes inside {key!r}, which is not a mapping")
        node = child
    node[keys[-1]] = value


def _environment_layer(environ: Mapping[str, str]) -> list[tuple[list[str], Any, str]]:
    import yaml

    out = []
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        keys = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if not all(keys):
            raise ConfigError(f"{name}: empty key in the variable's name")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        structured = keys[-1] in ("bearer_tokens", "otlp_headers") or keys[0] == "engine"
        if isinstance(value, (dict, list)) and not structured:
            value = raw  # a value like "[::1]" is a string here; lists/mappings only where expected
        out.append((keys, value, name))
    return out


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {key: _deep_copy(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_deep_copy(value) for value in data]
    return data


def load(
    path: str | None = None, environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> GatewayConfig:
    """The effective configuration: the file, then ``TOKENTRACE_GATEWAY_*``, then ``overrides``.

    ``overrides`` maps dotted key paths (``receivers.http.port``) to values (the command-line flags).
    """
    env = os.environ if environ is None else environ
    path = path or env.get(CONFIG_ENV) or None
    data = _deep_copy(_read_file(path)) if path else {}
    for keys, value, name in _environment_layer(env):
        _set_path(data, keys, value, name)
    for dotted, value in (overrides or {}).items():
        _set_path(data, dotted.split("."), value, f"--{dotted}")
    config = from_mapping(GatewayConfig, data)
    _check_auth_tokens(config)
    return config


def _check_auth_tokens(config: GatewayConfig) -> None:
    try:
        config.auth.tokens()
    except OSError as exc:
        raise ConfigError(f"auth.bearer_tokens_file: cannot read it ({exc.strerror or exc})") from exc


def build_engine_settings(config: GatewayConfig) -> Any:
    """The engine's ``EngineSettings`` from the ``engine`` section (the engine validates its own keys)."""
    from tokentrace.gateway import settings as engine_settings

    data = _deep_copy(config.engine)
    builder = getattr(engine_settings, "from_mapping", None) or getattr(
        engine_settings.EngineSettings, "from_mapping", None
    )
    try:
        if builder is not None:
            return builder(data)
        return engine_settings.EngineSettings(**data)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"engine: {exc}") from exc


# --- command line -----------------------------------------------------------------------------------

# flag -> dotted key path; a flag given on the command line wins over the file and the environment
FLAGS: dict[str, tuple[str, type, str]] = {
    "--grpc-host": ("receivers.grpc.host", str, "OTLP/gRPC listen address"),
    "--grpc-port": ("receivers.grpc.port", int, "OTLP/gRPC port (default 4317)"),
    "--http-host": ("receivers.http.host", str, "OTLP/HTTP listen address"),
    "--http-port": ("receivers.http.port", int, "OTLP/HTTP port (default 4318)"),
    "--admin-host": ("admin.host", str, "health/ready/metrics listen address"),
    "--admin-port": ("admin.port", int, "health/ready/metrics port (default 13133)"),
    "--log-level": ("logging.level", str, "debug, info, warning, error"),
    "--log-format": ("logging.format", str, "json (default) or text"),
}


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(
        prog="tokentrace gateway",
        description="Receive OTLP (gRPC :4317, HTTP :4318), run the tokentrace processor pipeline, "
        "queue durably and forward to any OTLP backend, or without one keep the spans in the local store "
        "that `tokentrace report` reads.",
    )
    parse.add_argument("--config", metavar="FILE", help=f"YAML configuration file (or ${CONFIG_ENV})")
    parse.add_argument("--check", action="store_true", help="validate the configuration and exit")
    for flag, (_, kind, help_text) in FLAGS.items():
        parse.add_argument(flag, type=kind, default=None, help=help_text)
    return parse


def from_args(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> tuple[GatewayConfig, bool]:
    """The configuration from command-line arguments; returns it and whether ``--check`` was given."""
    args = parser().parse_args(list(argv))
    overrides = {}
    for flag, (dotted, _, _) in FLAGS.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None:
            overrides[dotted] = value
    return load(args.config, environ, overrides), bool(args.check)
