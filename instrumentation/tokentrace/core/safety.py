"""The one rule of instrumentation: nothing of ours may reach the application.

Every hook runs behind :func:`swallow`; failures are logged once per place at WARNING (then at
DEBUG) and counted, so a bug in tokentrace shows up in logs and tests without ever changing a result
or an exception the application sees.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger("tokentrace")

internal_errors: Counter[str] = Counter()
"""How often each hook failed in this process; tests read it to prove a fault was contained."""


def report(where: str) -> None:
    """Log the exception being handled without letting it propagate."""
    internal_errors[where] += 1
    level = logging.WARNING if internal_errors[where] == 1 else logging.DEBUG
    logger.log(level, "tokentrace: internal error in %s (the application is unaffected)", where, exc_info=True)


@contextmanager
def swallow(where: str) -> Iterator[None]:
    """Run a block of our own code, turning any ``Exception`` into a logged report."""
    try:
        yield
    except Exception:
        report(where)
