"""``tokentrace report``: the questions teams ask of their LLM calls, answered from the store.

:func:`~tokentrace.report.queries.build_report` returns plain data (what ``--json`` prints);
:mod:`~tokentrace.report.terminal` and :mod:`~tokentrace.report.html` render it.
"""

from tokentrace.report.queries import Filters, build_report

__all__ = ["Filters", "build_report"]
