"""What the application can observe of an SDK result, for comparing traced and untraced runs."""

from __future__ import annotations

from typing import Any

# Fields that differ between two identical requests (ids carry the simulator's request counter, the
# prompt cache reports the second identical prompt as cached); everything else must match exactly.
_VOLATILE_KEYS = frozenset({"id", "item_id", "call_id", "created", "created_at", "completed_at", "cached_tokens"})


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items() if k not in _VOLATILE_KEYS}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def fingerprint(item: Any) -> dict[str, Any]:
    """A result, chunk or event as the application sees it, minus per-request ids and timestamps."""
    return {"class": type(item).__name__, "data": _scrub(item.model_dump(mode="json", warnings=False))}
