"""``tokentrace gateway`` as a subprocess on free ports, shared by the gateway and deployment tests.

The gateway runs as the command users run (``python -m tokentrace.cli gateway --config FILE``); the
configuration is the test defaults below (loopback, free ports, a queue in the test's directory, fast
retries) with the caller's settings merged over them.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from tests.gateway.backend import FakeBackend

PIPELINE = {"pipeline": ["normalise", "enrich", "flags"]}


class ChildProcess:
    """A program the tests run as a subprocess: stopped by a signal (it drains first), killed if it does
    not exit, and always gone after ``with``. Subclasses set ``process`` in ``start``."""

    process: subprocess.Popen[str] | None = None

    def start(self, timeout_s: float = 30) -> ChildProcess:
        raise NotImplementedError

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30) -> int:
        """Send ``sig`` (SIGTERM: drain and exit) and wait for the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout_s)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> ChildProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop()


class GatewayProcess(ChildProcess):
    """``tokentrace gateway`` in a subprocess on free ports; its JSON log lines are kept in ``logs``."""

    def __init__(
        self,
        directory: Path,
        backend: FakeBackend | None = None,
        *,
        protocol: str = "grpc",
        config: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        endpoint = ""
        if backend is not None:
            endpoint = backend.grpc_endpoint if protocol == "grpc" else backend.http_endpoint
        data: dict[str, Any] = {
            "receivers": {"grpc": {"host": "127.0.0.1", "port": 0}, "http": {"host": "127.0.0.1", "port": 0}},
            "admin": {"host": "127.0.0.1", "port": 0},
            "shutdown_timeout_s": 10,
            "engine": {
                "queue": {"directory": str(directory / "queue"), "fsync": "always"},
                "exporter": {
                    "endpoint": endpoint,
                    "protocol": protocol,
                    "initial_backoff_s": 0.05,
                    "max_backoff_s": 0.2,
                },
                "pipeline": copy.deepcopy(PIPELINE),  # merge below edits in place
                "poll_interval_s": 0.05,
            },
        }
        merge(data, copy.deepcopy(config or {}))
        self.config_path = directory / "gateway.yaml"
        self.config_path.write_text(yaml.safe_dump(data))
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.logs: list[dict[str, Any]] = []
        self.stderr_lines: list[str] = []
        self.process: subprocess.Popen[str] | None = None
        self.ports: dict[str, int] = {}

    def start(self, timeout_s: float = 30) -> GatewayProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tokentrace.cli", "gateway", "--config", str(self.config_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            cwd=self.directory,
        )
        started = threading.Event()

        def read() -> None:
            assert self.process is not None and self.process.stderr is not None
            for line in self.process.stderr:
                self.stderr_lines.append(line)
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                self.logs.append(record)
                if record.get("message") == "gateway started":
                    self.ports = {key: record[f"{key}_port"] for key in ("grpc", "http", "admin")}
                    started.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout_s
        while not started.wait(0.1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError("gateway did not start:\n" + "".join(self.stderr_lines))
        return self

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['grpc']}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    def admin(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['admin']}{path}", timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()


def merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
