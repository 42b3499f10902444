"""The one span shape every stage sees, and its converters at the edges.

Stages read and change plain Python values (a dict of attributes, ints for ids and times), so the
same stage code runs on spans from the in-process SDK and, in the gateway, on decoded OTLP. Each
edge converts once on the way in and once on the way out; unchanged fields (events, links, the
instrumentation scope) ride along untouched in ``origin``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STATUS_UNSET = 0
STATUS_OK = 1
STATUS_ERROR = 2


@dataclass(slots=True)
class SpanData:
    """A finished span, mutable while it passes through the pipeline."""

    trace_id: int
    span_id: int
    parent_span_id: int | None
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    resource: dict[str, Any] = field(default_factory=dict)
    scope_name: str = ""
    status_code: int = STATUS_UNSET
    status_message: str = ""
    is_remote_parent: bool = False
    origin: Any = None  # the edge's own object, for fields stages never touch
    changed: bool = False  # set by a stage that changed the span, so the edge rebuilds only those

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    @property
    def is_local_root(self) -> bool:
        """The first span of this trace in this process: no parent, or a parent from elsewhere."""
        return self.parent_span_id is None or self.is_remote_parent

    def set(self, key: str, value: Any) -> None:
        self.attributes[key] = value
        self.changed = True

    def pop(self, key: str) -> Any:
        if key in self.attributes:
            self.changed = True
            return self.attributes.pop(key)
        return None


def from_readable(span: Any) -> SpanData:
    """An SDK ``ReadableSpan`` as :class:`SpanData` (attributes copied: the span is frozen)."""
    context = span.context
    parent = span.parent
    status = span.status
    resource = span.resource
    scope = span.instrumentation_scope
    return SpanData(
        trace_id=context.trace_id,
        span_id=context.span_id,
        parent_span_id=parent.span_id if parent is not None else None,
        name=span.name,
        kind=span.kind.value,
        start_ns=span.start_time or 0,
        end_ns=span.end_time or 0,
        attributes=dict(span.attributes or {}),
        resource=dict(resource.attributes) if resource is not None else {},
        scope_name=scope.name if scope is not None else "",
        status_code=status.status_code.value,
        status_message=status.description or "",
        is_remote_parent=bool(parent is not None and parent.is_remote),
        origin=span,
    )


def to_readable(data: SpanData) -> Any:
    """Back to a ``ReadableSpan`` for the application's exporter; the original when nothing changed."""
    span = data.origin
    if not data.changed and span is not None:
        return span
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode

    parent = span.parent
    original_parent_id = parent.span_id if parent is not None else None
    if data.parent_span_id != original_parent_id:  # a stage re-parented it (a collapsed wrapper span)
        parent = (
            None
            if data.parent_span_id is None
            else SpanContext(
                data.trace_id,
                data.parent_span_id,
                is_remote=data.is_remote_parent,
                trace_flags=span.context.trace_flags,
                trace_state=span.context.trace_state,
            )
        )
    return ReadableSpan(
        name=data.name,
        context=span.context,
        parent=parent,
        resource=span.resource,
        attributes=data.attributes,
        events=span.events,
        links=span.links,
        kind=SpanKind(data.kind),
        status=Status(StatusCode(data.status_code), data.status_message or None)
        if data.status_code == STATUS_ERROR
        else Status(StatusCode(data.status_code)),
        start_time=data.start_ns,
        end_time=data.end_ns,
        instrumentation_scope=span.instrumentation_scope,
    )
