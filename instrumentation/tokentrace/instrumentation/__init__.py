"""Auto-instrumentation for LLM client libraries.

:func:`instrument` is the one call for code: it instruments every library tokentrace supports
that is installed (found through the same ``opentelemetry_instrumentor`` entry points the
``opentelemetry-instrument`` launcher uses), and skips the rest.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Any

logger = logging.getLogger("tokentrace")

ENTRY_POINT_GROUP = "opentelemetry_instrumentor"
ENTRY_POINT_PREFIX = "tokentrace_"


def _our_instrumentors() -> list[Any]:
    found = []
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name.startswith(ENTRY_POINT_PREFIX):
            found.append(entry_point)
    return sorted(found, key=lambda ep: ep.name)


def instrument(**kwargs: Any) -> list[str]:
    """Instrument every installed library tokentrace supports; return the entry-point names done.

    Keyword arguments (``tracer_provider``, ``meter_provider``, ``logger_provider``) are passed to
    each instrumentor; without them the global providers are used, as everywhere in OpenTelemetry.
    """
    from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts

    done = []
    for entry_point in _our_instrumentors():
        try:
            conflict = get_dist_dependency_conflicts(entry_point.dist) if entry_point.dist else None
            if conflict:
                logger.debug("tokentrace: skipping %s: %s", entry_point.name, conflict)
                continue
            instrumentor = entry_point.load()()
            if instrumentor.is_instrumented_by_opentelemetry:
                done.append(entry_point.name)
                continue
            conflict = instrumentor._check_dependency_conflicts()
            if conflict:
                logger.debug("tokentrace: skipping %s: %s", entry_point.name, conflict)
                continue
            instrumentor.instrument(**kwargs)
            done.append(entry_point.name)
        except Exception:
            logger.warning("tokentrace: could not instrument %s", entry_point.name, exc_info=True)
    return done


def flush(timeout: float = 5.0) -> bool:
    """Wait until metrics of calls that already ended are recorded (they are recorded off the
    application's thread); True when done within ``timeout`` seconds."""
    from tokentrace.core.background import background

    return background.flush(timeout)


def uninstrument() -> None:
    """Undo :func:`instrument`: original methods back, no more spans."""
    for entry_point in _our_instrumentors():
        try:
            instrumentor = entry_point.load()()
            if instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.uninstrument()
        except Exception:
            logger.warning("tokentrace: could not uninstrument %s", entry_point.name, exc_info=True)
