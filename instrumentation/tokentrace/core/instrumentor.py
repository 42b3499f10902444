"""What every library's instrumentor shares: one recorder, a table of methods to wrap, undo.

A provider module lists ``(module, class, method, wrapper)`` targets; this base resolves each
against the installed SDK version (a method the version lacks is skipped, not an error), wraps it
with ``wrapt`` once, and unwraps exactly what it wrapped. Entry points name the subclass
(``tokentrace_<library>``), so the ``opentelemetry-instrument`` launcher and
:func:`tokentrace.instrument` both find it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection, Iterable
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap
from wrapt import wrap_function_wrapper

from tokentrace.core.recorder import Recorder
from tokentrace.core.settings import Settings

# (module, class, method name, wrapper(wrapped, instance, args, kwargs))
Target = tuple[str, str, str, Callable[..., Any]]


def resolve_class(module_name: str, class_name: str, method: str) -> Any | None:
    """The class whose own ``__dict__`` defines ``method``, or None where this SDK version lacks it."""
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    cls = module
    for part in class_name.split("."):
        cls = getattr(cls, part, None)
        if cls is None:
            return None
    if method not in vars(cls):
        return None
    return cls


def make_recorder(scope: str, kwargs: dict[str, Any]) -> Recorder:
    """The recorder an instrumentor's ``_instrument(**kwargs)`` asks for (providers and settings
    from the caller, else the globals and the environment)."""
    recorder = Recorder(
        scope,
        tracer_provider=kwargs.get("tracer_provider"),
        meter_provider=kwargs.get("meter_provider"),
        logger_provider=kwargs.get("logger_provider"),
        settings=kwargs.get("settings") or Settings.from_environment(),
    )
    if recorder.settings.estimate_tokens:
        recorder.estimator.prefetch()
    return recorder


class LibraryInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Base of the per-library instrumentors (singletons: instrumenting twice is a no-op).

    Subclasses set ``SCOPE`` and ``INSTRUMENTS`` and implement :meth:`targets`.
    """

    SCOPE: str = "tokentrace"
    INSTRUMENTS: tuple[str, ...] = ()

    def instrumentation_dependencies(self) -> Collection[str]:
        return self.INSTRUMENTS

    def targets(self, recorder: Recorder) -> Iterable[Target]:
        raise NotImplementedError

    def _instrument(self, **kwargs: Any) -> None:
        recorder = make_recorder(self.SCOPE, kwargs)
        self.recorder = recorder
        if recorder.settings.http_attempts:
            from tokentrace.instrumentation import _http

            _http.install()
            self._http_installed = True
        self._patched: list[tuple[Any, str]] = []
        seen: set[tuple[int, str]] = set()
        for module_name, class_name, method, wrapper in self.targets(recorder):
            cls = resolve_class(module_name, class_name, method)
            if cls is None:
                continue
            key = (id(cls), method)
            if key in seen:  # the same class reached through another module (a re-export)
                continue
            seen.add(key)
            wrap_function_wrapper(cls, method, wrapper)
            self._patched.append((cls, method))

    def _uninstrument(self, **kwargs: Any) -> None:
        for cls, method in getattr(self, "_patched", ()):
            unwrap(cls, method)
        self._patched = []
        if getattr(self, "_http_installed", False):
            from tokentrace.instrumentation import _http

            _http.uninstall()
            self._http_installed = False
