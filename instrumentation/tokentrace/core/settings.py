"""Settings read once from the environment, so hot paths never touch ``os.environ``.

OpenTelemetry's own variables keep their meaning (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``,
``OTEL_SEMCONV_STABILITY_OPT_IN``); tokentrace's additions all start with ``TOKENTRACE_``.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from tokentrace.core import semconv

CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
EMIT_LEGACY_SYSTEM_ENV = "TOKENTRACE_EMIT_GEN_AI_SYSTEM"
INCLUDE_STREAM_USAGE_ENV = "TOKENTRACE_STREAM_INCLUDE_USAGE"
ESTIMATE_TOKENS_ENV = "TOKENTRACE_ESTIMATE_TOKENS"
PRICES_FILE_ENV = "TOKENTRACE_PRICES_FILE"
CONTENT_MAX_LENGTH_ENV = "TOKENTRACE_CONTENT_MAX_LENGTH"
METRICS_IN_BACKGROUND_ENV = "TOKENTRACE_METRICS_IN_BACKGROUND"
TIME_PER_CHUNK_METRIC_ENV = "TOKENTRACE_TIME_PER_CHUNK_METRIC"
HTTP_ATTEMPTS_ENV = "TOKENTRACE_HTTP_ATTEMPTS"  # retries, waits, rate-limit headroom per call

_TRUE = {"1", "true", "yes", "on"}


class ContentCapture(enum.Enum):
    """Where message content goes; the conventions' four modes."""

    NO_CONTENT = "NO_CONTENT"
    SPAN_ONLY = "SPAN_ONLY"
    EVENT_ONLY = "EVENT_ONLY"
    SPAN_AND_EVENT = "SPAN_AND_EVENT"

    @property
    def on_span(self) -> bool:
        return self in (ContentCapture.SPAN_ONLY, ContentCapture.SPAN_AND_EVENT)

    @property
    def on_event(self) -> bool:
        return self in (ContentCapture.EVENT_ONLY, ContentCapture.SPAN_AND_EVENT)

    @property
    def enabled(self) -> bool:
        return self is not ContentCapture.NO_CONTENT

    @classmethod
    def parse(cls, raw: str | None) -> ContentCapture:
        """Accept the four modes and the legacy boolean (``true`` meant "on the span")."""
        value = (raw or "").strip()
        if not value:
            return cls.NO_CONTENT
        upper = value.upper()
        if upper in cls.__members__:
            return cls[upper]
        if value.lower() in _TRUE:
            return cls.SPAN_ONLY
        return cls.NO_CONTENT


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    return raw.strip().lower() in _TRUE


@dataclass(frozen=True)
class Settings:
    """Everything configurable about instrumentation; see the README's settings table."""

    capture_content: ContentCapture = ContentCapture.NO_CONTENT
    names: semconv.VersionedNames = semconv.RELEASED
    emit_legacy_system: bool = False
    stream_include_usage: bool = False
    estimate_tokens: bool = True
    prices_file: str | None = None
    content_max_length: int | None = None
    metrics_in_background: bool = True
    time_per_chunk_metric: bool = True
    http_attempts: bool = True
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        max_length = env.get(CONTENT_MAX_LENGTH_ENV, "").strip()
        return cls(
            capture_content=ContentCapture.parse(env.get(CAPTURE_CONTENT_ENV)),
            names=semconv.names_from_environment(dict(env)),
            emit_legacy_system=_flag(env, EMIT_LEGACY_SYSTEM_ENV, False),
            stream_include_usage=_flag(env, INCLUDE_STREAM_USAGE_ENV, False),
            estimate_tokens=_flag(env, ESTIMATE_TOKENS_ENV, True),
            prices_file=env.get(PRICES_FILE_ENV) or None,
            content_max_length=int(max_length) if max_length.isdigit() else None,
            metrics_in_background=_flag(env, METRICS_IN_BACKGROUND_ENV, True),
            time_per_chunk_metric=_flag(env, TIME_PER_CHUNK_METRIC_ENV, True),
            http_attempts=_flag(env, HTTP_ATTEMPTS_ENV, True),
        )
