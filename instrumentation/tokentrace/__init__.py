"""tokentrace: every LLM call visible, costed and governable through OpenTelemetry.

The ``tokentrace`` import namespace spans two source roots (``instrumentation/`` and
``collector_processor/``); ``extend_path`` lets an editable install see both halves the way a
wheel, which merges them into one folder, does.
"""

from __future__ import annotations

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

from tokentrace.instrumentation import flush, instrument, uninstrument
from tokentrace.version import __version__

__all__ = ["__version__", "flush", "instrument", "uninstrument"]
