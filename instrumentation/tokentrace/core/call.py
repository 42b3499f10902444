"""One GenAI call in flight: the data a provider module fills in, read by the recorder at the end."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.trace import Span

from tokentrace.core.usage import Usage

AttributeValue = Any


class GenAICall:
    """Fields of one call. Provider modules set them; :class:`~tokentrace.core.recorder.Recorder`
    turns them into a span, metrics, cost and content exactly once.

    Text needed only for token estimates is gathered cheaply (``output_text`` is a list of chunk
    strings) and the prompt's text is produced lazily by ``input_text`` so calls whose usage is
    reported never pay for it.
    """

    __slots__ = (
        "_ended",
        "_lock",
        "attempts",
        "attributes",
        "before_end",
        "billed_usage",
        "chunk_count",
        "chunk_intervals",
        "error_type",
        "finish_reasons",
        "first_chunk_at",
        "input_messages",
        "input_text",
        "last_chunk_at",
        "merge_into",
        "no_list_price_reason",
        "operation",
        "output_messages",
        "output_text",
        "owns_span",
        "price_model",
        "provider",
        "provider_state",
        "reported_cost",
        "request_model",
        "response_id",
        "response_model",
        "server_address",
        "server_port",
        "span",
        "start_attributes",
        "started_at",
        "stream",
        "system_instructions",
        "tool_definitions",
        "usage",
    )

    def __init__(
        self,
        operation: str,
        provider: str,
        request_model: str | None,
        *,
        server_address: str | None = None,
        server_port: int | None = None,
        stream: bool = False,
        start_attributes: dict[str, AttributeValue] | None = None,
    ) -> None:
        self.operation = operation
        self.provider = provider
        self.request_model = request_model
        self.server_address = server_address
        self.server_port = server_port
        self.stream = stream
        self.start_attributes: dict[str, AttributeValue] = start_attributes or {}
        self.attributes: dict[str, AttributeValue] = {}
        self.response_model: str | None = None
        self.response_id: str | None = None
        self.finish_reasons: list[str] = []
        self.usage = Usage()
        # What the provider billed, where that differs from the tokens processed (Cohere's billed
        # units): the cost is computed from it; None prices ``usage``.
        self.billed_usage: Usage | None = None
        # tokentrace.cost.unavailable_reason to give instead of "not in catalogue" when neither the
        # catalogue nor the price file prices the model (a self-hosted server: no list price exists).
        self.no_list_price_reason: str | None = None
        self.output_text: list[str] = []
        self.input_text: Callable[[], list[str]] | None = None
        self.input_messages: Callable[[], list[dict[str, Any]]] | None = None
        self.output_messages: list[dict[str, Any]] | None = None
        self.system_instructions: Callable[[], list[dict[str, Any]] | None] | None = None
        self.tool_definitions: Callable[[], list[dict[str, Any]] | None] | None = None
        self.error_type: str | None = None
        self.before_end: Callable[[], None] | None = None
        self.provider_state: Any = None  # whatever a provider module needs between start and end
        # The model id to look the price up by, where it differs from the reported one (Bedrock: the
        # request's inference-profile id carries the price tier, ``global.`` vs regional, while the
        # body reports the bare model name); None prices ``response_model or request_model``.
        self.price_model: str | None = None
        # The cost the provider (or a router library such as LiteLLM) itself reported, in USD: it
        # becomes gen_ai.usage.cost.amount with source "provider"; genai-prices' figure is kept beside it.
        self.reported_cost: float | None = None
        # The outer call of a router library this call runs inside (see core.invoke._ROUTER_CALL): set,
        # this call opens no span and records nothing itself; its provider-level detail is merged
        # into the outer call when it ends.
        self.merge_into: GenAICall | None = None
        self.attempts: list[Any] = []  # core.attempts.Attempt per HTTP request the SDK sent for this call
        self.span: Span | None = None
        self.owns_span = True
        self.started_at = time.perf_counter()
        self.first_chunk_at: float | None = None
        self.last_chunk_at: float | None = None
        self.chunk_count = 0
        self.chunk_intervals: list[float] = []
        self._ended = False
        self._lock = threading.Lock()

    def mark_chunk(self) -> None:
        """Note a streamed chunk's arrival; kept to a clock read and an append."""
        now = time.perf_counter()
        if self.first_chunk_at is None:
            self.first_chunk_at = now
        else:
            self.chunk_intervals.append(now - self.last_chunk_at)  # type: ignore[operator]
        self.last_chunk_at = now
        self.chunk_count += 1

    def claim_end(self) -> bool:
        """True for exactly one caller, however many exit paths race to end the call."""
        with self._lock:
            if self._ended:
                return False
            self._ended = True
            return True

    @property
    def ended(self) -> bool:
        return self._ended
