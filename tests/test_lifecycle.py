"""Instrumenting, uninstrumenting, coexisting with other instrumentations, zero-code startup through
``opentelemetry-instrument``, no network at import, and the wheel's layout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
import zipfile
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import openai
import pytest
import wrapt

import tokentrace
from tokentrace.core import semconv
from tokentrace.core.instrumentor import resolve_class
from tokentrace.instrumentation.openai import _METHODS, OpenAIInstrumentor

MODEL = "gpt-4o-mini"
BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": f"{text} [{uuid.uuid4().hex[:8]}]"}]


def attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def patched_methods() -> dict[tuple[type, str], Any]:
    """Every (class, method) tokentrace wraps on this SDK version, with what is there now."""
    found = {}
    for module, class_name, method, _, _ in _METHODS:
        cls = resolve_class(module, class_name, method)
        if cls is not None:
            found[(cls, method)] = vars(cls)[method]
    return found


# wrapt 2 no longer derives FunctionWrapper from the public ObjectProxy; either kind is a wrapper.
_PROXY_TYPES = tuple(
    {t for t in (wrapt.FunctionWrapper, wrapt.ObjectProxy, getattr(wrapt, "BaseObjectProxy", None)) if t}
)


_LIBRARY_OF = {
    "tokentrace_openai": "openai",
    "tokentrace_anthropic": "anthropic",
    "tokentrace_google_genai": "google.genai",
    "tokentrace_bedrock": "botocore",
    "tokentrace_mistralai": "mistralai",
    "tokentrace_cohere": "cohere",
    "tokentrace_ollama": "ollama",
    "tokentrace_groq": "groq",
    "tokentrace_litellm": "litellm",
}


def installed_instrumentors() -> list[str]:
    """The entry points tokentrace.instrument() should report: those whose library is importable here."""
    import importlib.util

    group = entry_points(group="opentelemetry_instrumentor")
    names = sorted(ep.name for ep in group if ep.name.startswith("tokentrace_"))
    assert set(names) == set(_LIBRARY_OF), "a new instrumentor needs its library named here"

    def importable(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            return False

    return [name for name in names if importable(_LIBRARY_OF[name])]


def is_proxy(value: Any) -> bool:
    return isinstance(value, _PROXY_TYPES)


def test_instrumenting_twice_gives_one_span(client: Any, instrument: Any, telemetry: Any) -> None:
    instrumentor = instrument()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    OpenAIInstrumentor().instrument(tracer_provider=telemetry.tracer_provider)  # the same singleton
    assert tokentrace.instrument(tracer_provider=telemetry.tracer_provider) == installed_instrumentors()
    create = vars(openai.resources.chat.completions.Completions)["create"]
    assert is_proxy(create)
    assert not is_proxy(create.__wrapped__)  # wrapped once, not stacked
    client.chat.completions.create(model=MODEL, messages=user("once"))
    assert len(telemetry.spans()) == 1


def test_uninstrument_restores_originals(client: Any, instrument: Any, telemetry: Any) -> None:
    originals = patched_methods()
    assert originals
    assert not any(is_proxy(v) for v in originals.values())
    instrumentor = instrument()
    instrumented = patched_methods()
    assert all(is_proxy(v) for v in instrumented.values())
    client.chat.completions.create(model=MODEL, messages=user("before"))
    assert len(telemetry.spans()) == 1

    instrumentor.uninstrument()
    restored = patched_methods()
    for key, original in originals.items():
        assert restored[key] is original, key
    assert not is_proxy(openai.resources.chat.completions.Completions.create)
    client.chat.completions.create(model=MODEL, messages=user("after"))
    client.embeddings.create(model="text-embedding-3-small", input="after")
    assert len(telemetry.spans()) == 1  # nothing new

    instrument()  # and it can come back
    client.chat.completions.create(model=MODEL, messages=user("again"))
    assert len(telemetry.spans()) == 2


def test_tokentrace_instrument(client: Any, telemetry: Any) -> None:
    try:
        done = tokentrace.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
        assert done == installed_instrumentors()
        result = client.chat.completions.create(model=MODEL, messages=user("one call"))
        span = telemetry.span()
        assert attrs(span)[semconv.RESPONSE_ID] == result.id
        assert attrs(span)[semconv.USAGE_COST_AMOUNT] > 0
        assert semconv.METRIC_OPERATION_DURATION in telemetry.metrics()
    finally:
        tokentrace.uninstrument()
    assert not is_proxy(vars(openai.resources.chat.completions.Completions)["create"])
    client.chat.completions.create(model=MODEL, messages=user("after uninstrument"))
    assert len(telemetry.spans()) == 1


# -- another OpenAI instrumentation ----------------------------------------------------------------


@pytest.fixture
def both(telemetry: Any) -> Iterator[Any]:
    """``both(order)`` instruments tokentrace and the OpenTelemetry contrib OpenAI instrumentation."""
    contrib = pytest.importorskip("opentelemetry.instrumentation.openai_v2")
    # Stacking on wrappers an earlier test failed to remove would test nothing (and can hang).
    assert not any(is_proxy(v) for v in patched_methods().values()), "OpenAI is still instrumented"
    ours = OpenAIInstrumentor()
    theirs = contrib.OpenAIInstrumentor()
    done: list[Any] = []
    kwargs = {"tracer_provider": telemetry.tracer_provider, "meter_provider": telemetry.meter_provider}

    def _instrument(order: str) -> None:
        for instrumentor in (ours, theirs) if order == "tokentrace-first" else (theirs, ours):
            instrumentor.instrument(**kwargs)
            done.append(instrumentor)

    yield _instrument
    for instrumentor in reversed(done):  # the outermost wrapper comes off first
        instrumentor.uninstrument()
    assert not is_proxy(vars(openai.resources.chat.completions.Completions)["create"])


@pytest.mark.parametrize("order", ["tokentrace-first", "tokentrace-last"])
def test_other_openai_instrumentation(
    client: Any, both: Any, telemetry: Any, order: str, caplog: pytest.LogCaptureFixture
) -> None:
    both(order)
    result = client.chat.completions.create(model=MODEL, messages=user("two instrumentations"))
    span = telemetry.span()
    a = attrs(span)
    assert span.name == "chat gpt-4o-mini"
    assert a[semconv.USAGE_INPUT_TOKENS] == result.usage.prompt_tokens
    assert a[semconv.USAGE_OUTPUT_TOKENS] == result.usage.completion_tokens
    assert a[semconv.USAGE_COST_AMOUNT] > 0
    assert a[semconv.USAGE_COST_CURRENCY] == "USD"

    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=user("streamed"), stream=True, stream_options={"include_usage": True}
        )
    )
    client.embeddings.create(model="text-embedding-3-small", input="two instrumentations")
    spans = telemetry.spans()
    assert len(spans) == 3, [s.name for s in spans]
    assert [s.name for s in spans] == [
        "chat gpt-4o-mini",
        "chat gpt-4o-mini",
        "embeddings text-embedding-3-small",
    ]
    for span in spans:
        assert attrs(span)[semconv.USAGE_COST_AMOUNT] > 0
    assert attrs(spans[1])[semconv.USAGE_OUTPUT_TOKENS] == chunks[-1].usage.completion_tokens
    if order == "tokentrace-first":
        # The contrib span is the outer one; tokentrace enriched it instead of opening a second.
        assert all(attrs(s).get(semconv.ENRICHED_FOREIGN_SPAN) is True for s in spans)
    else:
        assert all(s.instrumentation_scope.name.startswith("tokentrace") for s in spans)


# -- zero-code startup -----------------------------------------------------------------------------

APP = """\
import os
import sys

import openai

client = openai.OpenAI(base_url=os.environ["SIM_BASE_URL"], api_key="sk-test", max_retries=0)
result = client.chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "hello from a plain app"}]
)
print("app got", result.id, file=sys.stderr)
print("tokentrace imported:", "tokentrace" in sys.modules, file=sys.stderr)
"""


def console_spans(stdout: str) -> list[dict[str, Any]]:
    """The span objects ``ConsoleSpanExporter`` printed (indented JSON, one after another)."""
    decoder = json.JSONDecoder()
    spans, index = [], 0
    while True:
        start = stdout.find("{", index)
        if start < 0:
            return spans
        value, index = decoder.raw_decode(stdout, start)
        spans.append(value)


def run_instrumented_app(tmp_path: Path, simulator: Any, **env: str) -> tuple[list[dict[str, Any]], str]:
    app = tmp_path / "app.py"
    app.write_text(APP)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment.update(
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        SIM_BASE_URL=simulator.base_url,
        OTEL_SERVICE_NAME="tokentrace-lifecycle-test",
        **env,
    )
    launcher = BIN / "opentelemetry-instrument"
    if not launcher.exists():
        pytest.skip("opentelemetry-instrument is not installed next to this Python")
    completed = subprocess.run(
        [
            str(launcher),
            "--traces_exporter",
            "console",
            "--metrics_exporter",
            "none",
            "--logs_exporter",
            "none",
            "python",
            str(app),
        ],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "app got chatcmpl-sim" in completed.stderr
    return console_spans(completed.stdout), completed.stderr


def test_opentelemetry_instrument_launcher(tmp_path: Path, simulator: Any) -> None:
    spans, stderr = run_instrumented_app(tmp_path, simulator)
    chat = [s for s in spans if s["name"] == "chat gpt-4o-mini"]
    assert len(chat) == 1, [s["name"] for s in spans]  # also with the contrib instrumentation installed
    span = chat[0]
    assert span["kind"] == "SpanKind.CLIENT"
    assert span["resource"]["attributes"]["service.name"] == "tokentrace-lifecycle-test"
    assert span["attributes"][semconv.USAGE_COST_AMOUNT] > 0
    assert span["attributes"][semconv.PROVIDER_NAME] == "openai"
    assert span["attributes"][semconv.USAGE_INPUT_TOKENS] > 0
    assert "tokentrace imported: True" in stderr  # by the launcher: the app never imports it


def test_opentelemetry_instrument_launcher_disabled(tmp_path: Path, simulator: Any) -> None:
    # Every tokentrace instrumentor is switched off, and the contrib OpenAI instrumentation (entry
    # point "openai") too, so that any GenAI span here could only be ours.
    ours = [ep.name for ep in entry_points(group="opentelemetry_instrumentor") if ep.name.startswith("tokentrace_")]
    assert "tokentrace_openai" in ours
    spans, stderr = run_instrumented_app(
        tmp_path, simulator, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=",".join([*ours, "openai"])
    )
    assert not [s for s in spans if s["name"] == "chat gpt-4o-mini"]
    assert not [s for s in spans if semconv.USAGE_COST_AMOUNT in s.get("attributes", {})]
    assert "tokentrace imported: False" in stderr


# -- no network, no eager imports ------------------------------------------------------------------

GUARD = """\
import json
import socket
import sys
import threading

LOCAL = {"127.0.0.1", "::1", "localhost"}
attempts = []
real_connect = socket.socket.connect
real_connect_ex = socket.socket.connect_ex
real_getaddrinfo = socket.getaddrinfo


def host_of(address):
    return address[0] if isinstance(address, tuple) else address


def connect(self, address):
    if self.family != socket.AF_UNIX and host_of(address) not in LOCAL:
        attempts.append(repr(address))
        raise OSError("network is off in this test")
    return real_connect(self, address)


def connect_ex(self, address):
    if self.family != socket.AF_UNIX and host_of(address) not in LOCAL:
        attempts.append(repr(address))
        return 111
    return real_connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    if host not in LOCAL and host is not None:
        attempts.append(str(host))
        raise socket.gaierror("network is off in this test")
    return real_getaddrinfo(host, *args, **kwargs)


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
socket.getaddrinfo = getaddrinfo

import tokentrace

from tokentrace.core.tokens import shared_estimator

report = {"openai_after_import": "openai" in sys.modules}
report["instrumented"] = tokentrace.instrument()
for thread in threading.enumerate():
    if thread.name.startswith("tokentrace"):
        thread.join(60)
report["estimate"] = shared_estimator.count_text("gpt-4o-mini", ["hello world"])
tokentrace.uninstrument()
report["attempts"] = attempts
print(json.dumps(report))
"""


def test_import_and_instrument_do_no_network(tmp_path: Path) -> None:
    script = tmp_path / "guard.py"
    script.write_text(GUARD)
    completed = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["openai_after_import"] is False
    assert report["instrumented"] == installed_instrumentors()
    assert report["attempts"] == []
    assert report["estimate"] == 2  # encodings came from TIKTOKEN_CACHE_DIR, not the network


def test_importing_tokentrace_does_not_import_openai() -> None:
    code = textwrap.dedent(
        """
        import sys
        import tokentrace
        import tokentrace.instrumentation
        import tokentrace.core.recorder
        heavy = [m for m in ("openai", "tiktoken", "genai_prices", "yaml") if m in sys.modules]
        print(",".join(heavy))
        """
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert completed.stdout.strip() == ""


# -- packaging -------------------------------------------------------------------------------------


def _hatchling_available() -> bool:
    try:
        import hatchling  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.packaging
def test_wheel_layout(tmp_path: Path) -> None:
    out = tmp_path / "wheel"
    command = [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(out)]
    if _hatchling_available():
        command.append("--no-build-isolation")  # no index needed when the backend is already here
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr
    [wheel] = list(out.glob("tokentrace-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        top = {name.split("/", 1)[0] for name in names}
        dist_info = [t for t in top if t.endswith(".dist-info")]
        assert len(dist_info) == 1
        assert top == {"tokentrace", dist_info[0]}
        assert "tokentrace/__init__.py" in names
        assert "tokentrace/instrumentation/__init__.py" in names
        assert "tokentrace/instrumentation/openai/__init__.py" in names
        assert "tokentrace/core/recorder.py" in names
        assert "tokentrace/processor/__init__.py" in names
        assert not [n for n in names if n.startswith("tokentrace/") and ("tests/" in n or "__pycache__" in n)]
        entry_points = archive.read(f"{dist_info[0]}/entry_points.txt").decode()
    assert "[opentelemetry_instrumentor]" in entry_points
    assert "tokentrace_openai = tokentrace.instrumentation.openai:OpenAIInstrumentor" in entry_points
