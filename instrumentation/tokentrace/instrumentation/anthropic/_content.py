"""Anthropic message content in the GenAI conventions' JSON shapes, and plain text for estimates.

Called only when content capture is on or a token estimate is needed (the response had no usage),
never on the common path. Blocks may be dicts (request params) or SDK models (responses).
"""

from __future__ import annotations

from typing import Any

# Anthropic stop_reason -> the conventions' output message finish_reason.
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_call",
    "refusal": "content_filter",
}


def get(obj: Any, key: str, default: Any = None) -> Any:
    """A field of a dict or of an SDK model, read the same way."""
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def snapshot(value: Any) -> Any:
    """A shallow copy of a request list, so the application's later changes do not leak in."""
    return list(value) if isinstance(value, (list, tuple)) else value


def _blocks(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content) if isinstance(content, (list, tuple)) else []


def block_texts(content: Any) -> list[str]:
    """The text a block list contributes to a token estimate (text, thinking, tool inputs/results)."""
    texts: list[str] = []
    for block in _blocks(content):
        kind = get(block, "type")
        if kind == "text":
            texts.append(str(get(block, "text") or ""))
        elif kind == "thinking":
            texts.append(str(get(block, "thinking") or ""))
        elif kind in ("tool_use", "server_tool_use"):
            texts.append(f"{get(block, 'name') or ''} {get(block, 'input') or ''}")
        elif kind == "tool_result":
            texts.extend(block_texts(get(block, "content")))
    return texts


def input_texts(messages: Any, system: Any) -> list[str]:
    """One string per prompt message (system first), for the chat token estimate."""
    texts = [" ".join(block_texts(system))] if system else []
    for message in messages if isinstance(messages, (list, tuple)) else ():
        texts.append(" ".join(block_texts(get(message, "content"))))
    return texts


def parts(content: Any) -> list[dict[str, Any]]:
    """Content blocks as the conventions' message parts."""
    result: list[dict[str, Any]] = []
    for block in _blocks(content):
        kind = get(block, "type")
        if kind == "text":
            result.append({"type": "text", "content": get(block, "text")})
        elif kind in ("thinking", "redacted_thinking"):
            result.append({"type": "reasoning", "content": get(block, "thinking") or ""})
        elif kind in ("tool_use", "server_tool_use"):
            result.append(
                {
                    "type": "tool_call",
                    "id": get(block, "id"),
                    "name": get(block, "name"),
                    "arguments": get(block, "input"),
                }
            )
        elif kind == "tool_result":
            response = get(block, "content")
            if not isinstance(response, str):
                response = "".join(block_texts(response))
            result.append({"type": "tool_call_response", "id": get(block, "tool_use_id"), "response": response})
        elif kind == "image":
            result.append({"type": "blob", "modality": "image"})
        elif kind:
            result.append({"type": str(kind)})
    return result


def input_messages(messages: Any) -> list[dict[str, Any]]:
    return [
        {"role": str(get(message, "role") or "user"), "parts": parts(get(message, "content"))}
        for message in (messages if isinstance(messages, (list, tuple)) else ())
    ]


def system_instructions(system: Any) -> list[dict[str, Any]] | None:
    return parts(system) or None


def tool_definitions(tools: Any) -> list[dict[str, Any]] | None:
    definitions = []
    for tool in tools if isinstance(tools, (list, tuple)) else ():
        entry: dict[str, Any] = {"type": "function", "name": get(tool, "name")}
        if get(tool, "description"):
            entry["description"] = get(tool, "description")
        if get(tool, "input_schema") is not None:
            entry["parameters"] = get(tool, "input_schema")
        definitions.append(entry)
    return definitions or None


def output_message(content: Any, stop_reason: Any) -> dict[str, Any]:
    reason = _FINISH_REASONS.get(str(stop_reason), "stop" if stop_reason is None else str(stop_reason))
    return {"role": "assistant", "parts": parts(content), "finish_reason": reason}
