"""Message content in the GenAI conventions' JSON shapes, and the plain text used for estimates.

Only called when content capture is on or a token estimate is needed, never on the common path.
"""

from __future__ import annotations

import json
from typing import Any


def snapshot(value: Any) -> Any:
    """A shallow copy of a request list, so later mutation by the application doesn't leak in."""
    return list(value) if isinstance(value, list) else value


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _text_of(content: Any) -> str:
    """Text of a message's content: a string, or a list of parts of which text parts count."""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            else:
                text = _get(part, "text")
                if isinstance(text, str):
                    texts.append(text)
        return "".join(texts)
    return ""


def _parts_of(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    if isinstance(content, (list, tuple)):
        for part in content:
            kind = _get(part, "type")
            text = _get(part, "text")
            if isinstance(text, str):
                parts.append({"type": "text", "content": text})
            elif kind in ("image_url", "input_image"):
                parts.append({"type": "uri", "modality": "image", "uri": str(_get(_get(part, "image_url"), "url", ""))})
            elif kind:
                parts.append({"type": str(kind)})
    return parts


def _arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def chat_message_texts(messages: Any) -> list[str]:
    texts: list[str] = []
    for message in messages or ():
        text = _text_of(_get(message, "content"))
        for tool_call in _get(message, "tool_calls") or ():
            function = _get(tool_call, "function")
            text += str(_get(function, "name", "")) + str(_get(function, "arguments", ""))
        texts.append(text)
    return texts


def chat_input_messages(messages: Any) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for message in messages or ():
        role = _get(message, "role", "user")
        parts: list[dict[str, Any]] = []
        if role == "tool":
            parts.append(
                {
                    "type": "tool_call_response",
                    "id": _get(message, "tool_call_id"),
                    "response": _text_of(_get(message, "content")),
                }
            )
        else:
            parts.extend(_parts_of(_get(message, "content")))
        for tool_call in _get(message, "tool_calls") or ():
            function = _get(tool_call, "function")
            parts.append(
                {
                    "type": "tool_call",
                    "id": _get(tool_call, "id"),
                    "name": _get(function, "name"),
                    "arguments": _arguments(_get(function, "arguments")),
                }
            )
        result.append({"role": role, "parts": parts})
    return result


def chat_output_message(message: Any, finish_reason: Any) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    content = _get(message, "content")
    if isinstance(content, str) and content:
        parts.append({"type": "text", "content": content})
    refusal = _get(message, "refusal")
    if isinstance(refusal, str) and refusal:
        parts.append({"type": "refusal", "content": refusal})
    for tool_call in _get(message, "tool_calls") or ():
        function = _get(tool_call, "function")
        parts.append(
            {
                "type": "tool_call",
                "id": _get(tool_call, "id"),
                "name": _get(function, "name"),
                "arguments": _arguments(_get(function, "arguments")),
            }
        )
    return {"role": "assistant", "parts": parts, "finish_reason": finish_reason or "stop"}


def tool_definitions(tools: Any) -> list[dict[str, Any]]:
    result = []
    for tool in tools or ():
        function = _get(tool, "function")
        if function is not None:  # Chat Completions shape
            result.append(
                {
                    "type": _get(tool, "type", "function"),
                    "name": _get(function, "name"),
                    "description": _get(function, "description"),
                    "parameters": _get(function, "parameters"),
                }
            )
        else:  # Responses shape
            result.append(
                {
                    "type": _get(tool, "type", "function"),
                    "name": _get(tool, "name"),
                    "description": _get(tool, "description"),
                    "parameters": _get(tool, "parameters"),
                }
            )
    return result


def plain_texts(value: Any) -> list[str]:
    """Texts of a string or a list of strings; token-id lists don't count as text."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [item for item in value if isinstance(item, str)]
    return []


def responses_input_texts(items: Any, instructions: Any) -> list[str]:
    texts = [instructions] if isinstance(instructions, str) else []
    if isinstance(items, str):
        return [*texts, items]
    for item in items or ():
        texts.append(_text_of(_get(item, "content")) or str(_get(item, "output", "") or ""))
    return texts


def responses_input_messages(items: Any) -> list[dict[str, Any]]:
    if isinstance(items, str):
        return [{"role": "user", "parts": [{"type": "text", "content": items}]}]
    result = []
    for item in items or ():
        kind = _get(item, "type")
        if kind == "function_call_output":
            result.append(
                {
                    "role": "tool",
                    "parts": [
                        {"type": "tool_call_response", "id": _get(item, "call_id"), "response": _get(item, "output")}
                    ],
                }
            )
        elif kind == "function_call":
            result.append(
                {
                    "role": "assistant",
                    "parts": [
                        {
                            "type": "tool_call",
                            "id": _get(item, "call_id"),
                            "name": _get(item, "name"),
                            "arguments": _arguments(_get(item, "arguments")),
                        }
                    ],
                }
            )
        else:
            result.append({"role": _get(item, "role", "user"), "parts": _parts_of(_get(item, "content"))})
    return result


def responses_output_messages(output: Any, finish_reason: str) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for item in output or ():
        kind = _get(item, "type")
        if kind == "message":
            for part in _get(item, "content") or ():
                if _get(part, "type") == "output_text":
                    parts.append({"type": "text", "content": _get(part, "text")})
                elif _get(part, "type") == "refusal":
                    parts.append({"type": "refusal", "content": _get(part, "refusal")})
        elif kind == "function_call":
            parts.append(
                {
                    "type": "tool_call",
                    "id": _get(item, "call_id"),
                    "name": _get(item, "name"),
                    "arguments": _arguments(_get(item, "arguments")),
                }
            )
        elif kind == "reasoning":
            for summary in _get(item, "summary") or ():
                parts.append({"type": "reasoning", "content": _get(summary, "text")})
    return [{"role": "assistant", "parts": parts, "finish_reason": finish_reason}]
