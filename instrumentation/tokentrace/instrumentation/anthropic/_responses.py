"""Response side: usage, ids and stop reasons from a Message or from a stream's raw events.

Anthropic reports ``input_tokens`` WITHOUT the cached part; the conventions count it in, so
``gen_ai.usage.input_tokens = input_tokens + cache_read_input_tokens + cache_creation_input_tokens``
and the two cache counts are also recorded on their own.

In a stream, ``message_start`` carries the input counts and a placeholder ``output_tokens`` (often
1); ``message_delta`` carries the final, cumulative ``output_tokens`` (and, from newer API versions,
cumulative input counts too). The observer therefore REPLACES counts with the latest event's values
and takes output tokens only from ``message_delta``: adding them up would count output twice.
"""

from __future__ import annotations

from typing import Any

from tokentrace.core import semconv
from tokentrace.core.call import GenAICall
from tokentrace.core.usage import Usage
from tokentrace.instrumentation.anthropic import _content

get = _content.get


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class UsageCounts:
    """Anthropic's own counts, as reported so far (None = not reported)."""

    __slots__ = ("cache_creation", "cache_read", "input", "output", "thinking")

    def __init__(self) -> None:
        self.input: int | None = None
        self.cache_read: int | None = None
        self.cache_creation: int | None = None
        self.output: int | None = None
        self.thinking: int | None = None

    def read_input(self, usage: Any) -> None:
        """Input-side counts; a field a later event leaves out (None) keeps the earlier value."""
        value = _int(get(usage, "input_tokens"))
        if value is not None:
            self.input = value
        value = _int(get(usage, "cache_read_input_tokens"))
        if value is not None:
            self.cache_read = value
        value = _int(get(usage, "cache_creation_input_tokens"))
        if value is not None:
            self.cache_creation = value

    def read_output(self, usage: Any) -> None:
        value = _int(get(usage, "output_tokens"))
        if value is not None:
            self.output = value
        thinking = _int(get(get(usage, "output_tokens_details"), "thinking_tokens"))
        if thinking is not None:
            self.thinking = thinking

    def apply(self, usage: Usage) -> None:
        """Into the conventions' accounting (input includes both cache counts)."""
        if self.input is not None:
            usage.input_tokens = self.input + (self.cache_read or 0) + (self.cache_creation or 0)
        usage.output_tokens = self.output
        usage.cache_read_input_tokens = self.cache_read
        usage.cache_creation_input_tokens = self.cache_creation
        usage.reasoning_output_tokens = self.thinking
        usage.source = semconv.USAGE_SOURCE_REPORTED


def apply_message(call: GenAICall, message: Any, capture: bool) -> None:
    """A complete Message (or BetaMessage / ParsedMessage)."""
    call.response_id = get(message, "id")
    call.response_model = get(message, "model")
    stop_reason = get(message, "stop_reason")
    if isinstance(stop_reason, str):
        call.finish_reasons = [stop_reason]
    usage = get(message, "usage")
    if usage is not None:
        counts = UsageCounts()
        counts.read_input(usage)
        counts.read_output(usage)
        counts.apply(call.usage)
    content = get(message, "content")
    if capture:
        call.output_messages = [_content.output_message(content, stop_reason)]
    if not call.usage.known:
        call.output_text.extend(_content.block_texts(content))


class StreamReader:
    """Reads a stream's raw events (``RawMessageStreamEvent``); one per traced stream.

    Per event: a type check and a few field reads. Usage and (for capture) the output message are
    assembled once, in :meth:`finish`, which the recorder calls before ending the span.
    """

    __slots__ = ("blocks", "call", "capture", "counts", "got_delta", "stop_reason")

    def __init__(self, call: GenAICall, capture: bool) -> None:
        self.call = call
        self.capture = capture
        self.counts = UsageCounts()
        self.got_delta = False
        self.stop_reason: str | None = None
        self.blocks: dict[int, dict[str, Any]] = {}
        call.before_end = self.finish

    def observe(self, call: GenAICall, event: Any) -> None:
        kind = event.type
        if kind == "content_block_delta":
            delta = event.delta
            delta_type = delta.type
            if delta_type == "text_delta":
                text = delta.text
            elif delta_type == "input_json_delta":
                text = delta.partial_json
            elif delta_type == "thinking_delta":
                text = delta.thinking
            else:
                return
            call.output_text.append(text)
            if self.capture:
                block = self.blocks.get(event.index)
                if block is not None:
                    block["chunks"].append(text)
        elif kind == "message_start":
            message = event.message
            call.response_id = message.id
            call.response_model = message.model
            self.counts.read_input(message.usage)  # its output_tokens is a placeholder: ignored
        elif kind == "message_delta":
            self.got_delta = True
            usage = event.usage
            if usage is not None:
                self.counts.read_input(usage)
                self.counts.read_output(usage)
            reason = getattr(event.delta, "stop_reason", None)
            if reason:
                self.stop_reason = reason
                call.finish_reasons = [reason]
        elif kind == "content_block_start" and self.capture:
            block = event.content_block
            self.blocks[event.index] = {"block": block, "chunks": []}

    def finish(self) -> None:
        if self.counts.input is not None or self.got_delta:
            self.counts.apply(self.call.usage)
        if self.capture:
            self.call.output_messages = [_content.output_message(self._content(), self.stop_reason)]

    def _content(self) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = []
        for _, entry in sorted(self.blocks.items()):
            block, text = entry["block"], "".join(entry["chunks"])
            kind = get(block, "type")
            if kind == "text":
                content.append({"type": "text", "text": text})
            elif kind == "thinking":
                content.append({"type": "thinking", "thinking": text})
            elif kind in ("tool_use", "server_tool_use"):
                content.append(
                    {"type": kind, "id": get(block, "id"), "name": get(block, "name"), "input": _json_or_text(text)}
                )
            else:
                content.append({"type": kind})
        return content


def _json_or_text(text: str) -> Any:
    import json

    try:
        return json.loads(text) if text else {}
    except ValueError:
        return text
