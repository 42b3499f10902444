"""The embedded default store: spans in a local DuckDB file that ``tokentrace report`` reads.

Used when no OTLP backend is configured (and, on request, next to one). The schema is documented
in ``docs/store.md`` and :mod:`tokentrace.store.schema`.
"""

from tokentrace.store.schema import SCHEMA_VERSION, default_path
from tokentrace.store.writer import StoreWriter

__all__ = ["SCHEMA_VERSION", "StoreWriter", "default_path"]
