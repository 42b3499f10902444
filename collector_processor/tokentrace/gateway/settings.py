"""The engine's settings: queue, exporter and pipeline, each a frozen dataclass validated on creation.

``EngineSettings.from_mapping`` reads the ``engine`` section of the gateway's YAML::

    queue: {directory: /var/lib/tokentrace/queue, fsync: "interval:200", max_bytes: 1073741824}
    exporter: {endpoint: "https://backend:4317", protocol: grpc, headers: {x-api-key: ...}, compression: gzip}
    store: {path: /var/lib/tokentrace/spans.duckdb, keep_local: true, retention_days: 30}
    pipeline: {pipeline: [normalise, enrich, flags, redact, span_metrics, sample], sample: {probability: 0.1}}
    poll_interval_s: 0.25

Without a ``pipeline`` section the processor's own configuration applies (``TOKENTRACE_PROCESSOR_CONFIG``,
``TOKENTRACE_PIPELINE``, ``TOKENTRACE_<STAGE>__<KEY>``), the same as in-process. Without an exporter
endpoint (or with ``protocol: store``) spans go to the embedded local store, as in-process; ``store``
says where and for how long, and ``keep_local: true`` keeps that copy next to a backend.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MIB = 1024 * 1024
FSYNC_POLICIES = ("always", "never", "interval:<ms>")


def _unknown(cls: type, data: Mapping[str, Any], where: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {unknown}; known: {sorted(known)}")


def _positive(where: str, value: Any, *, integer: bool = False, zero: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    if not isinstance(value, kinds) or isinstance(value, bool) or value < 0 or (value == 0 and not zero):
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{where}: expected {kind} {'>= 0' if zero else '> 0'}, got {value!r}")


@dataclass(frozen=True)
class QueueSettings:
    """The persistent queue between the pipeline and the exporter.

    ``fsync``: ``always`` (an acknowledged batch survives power loss), ``interval:<ms>`` (survives the
    process being killed; at most that much is lost on power loss), ``never`` (the OS decides).
    ``max_bytes`` bounds what waits on disk, ``max_memory_bytes`` what is held in memory in flight;
    past either the gateway refuses new data (``Overloaded``, a retryable answer) and never drops.
    ``max_unsettled_batches`` bounds how far export may run ahead of a batch still being retried: the
    most batches a crash can make the backend receive twice.
    """

    directory: str = "./tokentrace-queue"
    fsync: str = "interval:200"
    max_bytes: int = 1024 * MIB
    max_memory_bytes: int = 64 * MIB
    segment_bytes: int = 16 * MIB
    max_unsettled_batches: int = 32

    def __post_init__(self) -> None:
        if not isinstance(self.directory, str) or not self.directory:
            raise ValueError("queue.directory: expected a path")
        self.fsync_interval_s  # noqa: B018 - validates
        _positive("queue.max_bytes", self.max_bytes, integer=True)
        _positive("queue.max_memory_bytes", self.max_memory_bytes, integer=True)
        _positive("queue.segment_bytes", self.segment_bytes, integer=True)
        _positive("queue.max_unsettled_batches", self.max_unsettled_batches, integer=True)

    @property
    def fsync_interval_s(self) -> float | None:
        """0 for ``always``, None for ``never``, else the interval in seconds."""
        policy = self.fsync.strip().lower() if isinstance(self.fsync, str) else ""
        if policy == "always":
            return 0.0
        if policy == "never":
            return None
        if policy.startswith("interval:"):
            try:
                ms = float(policy.partition(":")[2])
            except ValueError:
                ms = -1
            if ms > 0:
                return ms / 1000
        raise ValueError(f"queue.fsync: expected one of {FSYNC_POLICIES}, got {self.fsync!r}")


EXPORTER_PROTOCOLS = ("grpc", "http", "store")


@dataclass(frozen=True)
class ExporterSettings:
    """Where the gateway sends: an OTLP backend over gRPC or HTTP (protobuf), or the local store.

    No ``endpoint`` means the embedded store (``protocol: store`` says so explicitly), the same
    default as in-process: a gateway without a backend keeps what it accepted rather than refusing
    to start.

    ``endpoint``: ``host:port`` or ``http(s)://host:port`` for gRPC (``https`` or ``ca_file`` means
    TLS); the base URL for HTTP (``/v1/traces`` etc. are appended unless ``traces_path`` etc. are
    given). Retries: exponential backoff from ``initial_backoff_s`` to ``max_backoff_s`` with full
    jitter, honouring the backend's RetryInfo / Retry-After; ``max_elapsed_s`` None retries a batch
    for as long as it takes (nothing acknowledged is dropped for a retryable error).
    """

    endpoint: str = ""
    protocol: str = "grpc"  # grpc | http | store
    headers: dict[str, str] = field(default_factory=dict)
    compression: str = "gzip"  # gzip | none
    timeout_s: float = 10.0
    insecure: bool = False  # TLS: skip verifying the server (HTTP) / plaintext (gRPC with https endpoint)
    ca_file: str = ""
    client_cert_file: str = ""
    client_key_file: str = ""
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_elapsed_s: float | None = None
    concurrency: int = 2
    traces_path: str = "/v1/traces"
    metrics_path: str = "/v1/metrics"
    logs_path: str = "/v1/logs"

    def __post_init__(self) -> None:
        if not isinstance(self.endpoint, str):
            raise ValueError("exporter.endpoint: expected a string")
        if self.protocol not in EXPORTER_PROTOCOLS:
            raise ValueError(f"exporter.protocol: expected 'grpc', 'http' or 'store', got {self.protocol!r}")
        if self.protocol == "store" and self.endpoint:
            raise ValueError(
                f"exporter.endpoint is {self.endpoint!r} but exporter.protocol is 'store' (no backend): remove the "
                "endpoint, or set protocol to 'grpc' or 'http' and store.keep_local: true to keep a local copy too"
            )
        if self.compression not in ("gzip", "none"):
            raise ValueError(f"exporter.compression: expected 'gzip' or 'none', got {self.compression!r}")
        if not isinstance(self.headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.headers.items()
        ):
            raise ValueError("exporter.headers: expected a mapping of strings to strings")
        _positive("exporter.timeout_s", self.timeout_s)
        _positive("exporter.initial_backoff_s", self.initial_backoff_s)
        _positive("exporter.max_backoff_s", self.max_backoff_s)
        if self.max_elapsed_s is not None:
            _positive("exporter.max_elapsed_s", self.max_elapsed_s)
        _positive("exporter.concurrency", self.concurrency, integer=True)
        if not isinstance(self.insecure, bool):
            raise ValueError("exporter.insecure: expected true or false")
        if bool(self.client_cert_file) != bool(self.client_key_file):
            raise ValueError("exporter.client_cert_file and client_key_file go together")

    @property
    def has_backend(self) -> bool:
        """Whether spans go to an OTLP backend (else to the local store only)."""
        return bool(self.endpoint) and self.protocol != "store"


@dataclass(frozen=True)
class StoreSettings:
    """The embedded local store (DuckDB, read by ``tokentrace report``): where spans go without a backend.

    ``path``: the file; empty means ``TOKENTRACE_STORE_PATH``, else ``./tokentrace.duckdb`` (the
    gateway's working directory), where ``tokentrace report`` looks. ``keep_local``: with a backend,
    also write every span here (a batch counts as delivered once both have it). ``retention_days``
    / ``max_rows`` bound the file (None: unbounded). ``timeout_s``: how long one write waits for
    another process (an app, ``tokentrace report``) to let go of the file before the batch is retried.
    """

    path: str = ""
    keep_local: bool = False
    retention_days: float | None = 30.0
    max_rows: int | None = 5_000_000
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.path, str):
            raise ValueError("store.path: expected a file path")
        if not isinstance(self.keep_local, bool):
            raise ValueError(f"store.keep_local: expected true or false, got {self.keep_local!r}")
        if self.retention_days is not None:
            _positive("store.retention_days", self.retention_days)
        if self.max_rows is not None:
            _positive("store.max_rows", self.max_rows, integer=True)
        _positive("store.timeout_s", self.timeout_s)

    def resolved_path(self) -> str:
        from tokentrace.store.schema import default_path

        return self.path or str(default_path())


@dataclass(frozen=True)
class EngineSettings:
    queue: QueueSettings = field(default_factory=QueueSettings)
    exporter: ExporterSettings = field(default_factory=ExporterSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    pipeline: dict[str, Any] | None = None  # processor config mapping; None: from TOKENTRACE_* / the file
    poll_interval_s: float = 0.25  # how often held spans (tail sampling) are polled
    max_batch_spans: int = 0  # informational for receivers; 0 = no limit

    def __post_init__(self) -> None:
        if not isinstance(self.queue, QueueSettings):
            raise ValueError("queue: expected a mapping")
        if not isinstance(self.exporter, ExporterSettings):
            raise ValueError("exporter: expected a mapping")
        if not isinstance(self.store, StoreSettings):
            raise ValueError("store: expected a mapping")
        if self.pipeline is not None and not isinstance(self.pipeline, Mapping):
            raise ValueError("pipeline: expected a mapping (the processor configuration)")
        _positive("poll_interval_s", self.poll_interval_s)
        _positive("max_batch_spans", self.max_batch_spans, integer=True, zero=True)

    @property
    def destination(self) -> str:
        """``store`` (no backend), ``backend``, or ``backend+store`` (``store.keep_local``)."""
        if not self.exporter.has_backend:
            return "store"
        return "backend+store" if self.store.keep_local else "backend"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> EngineSettings:
        """From plain YAML data; unknown keys and wrong types raise ``ValueError`` naming the key."""
        data = dict(data or {})
        _unknown(cls, data, "engine")
        values: dict[str, Any] = {}
        for name, section in (("queue", QueueSettings), ("exporter", ExporterSettings), ("store", StoreSettings)):
            raw = data.pop(name, None) or {}
            if not isinstance(raw, Mapping):
                raise ValueError(f"{name}: expected a mapping")
            _unknown(section, raw, name)
            values[name] = section(**_coerce(section, dict(raw), name))
        values.update(data)
        return cls(**values)


def _coerce(cls: type, raw: dict[str, Any], where: str) -> dict[str, Any]:
    """YAML/env values are close to right: ints where floats are expected are fine, dicts are copied."""
    hints = typing.get_type_hints(cls)
    for key, value in list(raw.items()):
        hint = hints.get(key)
        if hint is float and isinstance(value, int) and not isinstance(value, bool):
            raw[key] = float(value)
        elif isinstance(value, Mapping):
            raw[key] = {str(k): str(v) for k, v in value.items()}
        elif hint is str and value is None:
            raw[key] = ""
    return raw


def from_mapping(data: Mapping[str, Any] | None) -> EngineSettings:
    return EngineSettings.from_mapping(data)
