"""Message content in the GenAI conventions' JSON shapes, from google-genai's ``contents``, ``Part``s,
``system_instruction`` and ``tools``.

Only called when content capture is on, at the end of the call. The SDK accepts many shapes for
``contents`` (a string, a ``Part``, a ``Content``, dicts of either, or a list mixing them; loose parts
form one user turn, as the SDK sends them); each is read here without the SDK's private helpers.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

_CONTENT_FILTER_REASONS = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
    }
)


def snapshot(value: Any) -> Any:
    """A shallow copy of a request list, so later mutation (AFC appends turns) doesn't leak in."""
    return list(value) if isinstance(value, list) else value


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def _is_content(item: Any) -> bool:
    """A turn (``Content`` or its dict), as opposed to a single part."""
    return _get(item, "parts") is not None and not isinstance(item, str)


def _modality(mime_type: Any) -> str:
    return mime_type.split("/", 1)[0] if isinstance(mime_type, str) and "/" in mime_type else "file"


def part(item: Any) -> dict[str, Any] | None:
    """One part in the conventions' shape (text, reasoning, tool_call, tool_call_response, blob, uri)."""
    if isinstance(item, str):
        return {"type": "text", "content": item}
    text = _get(item, "text")
    if isinstance(text, str):
        return {"type": "reasoning" if _get(item, "thought") else "text", "content": text}
    call = _get(item, "function_call")
    if call is not None:
        return {
            "type": "tool_call",
            "id": _get(call, "id"),
            "name": _get(call, "name"),
            "arguments": _get(call, "args"),
        }
    response = _get(item, "function_response")
    if response is not None:
        return {
            "type": "tool_call_response",
            "id": _get(response, "id"),
            "name": _get(response, "name"),
            "response": _get(response, "response"),
        }
    inline = _get(item, "inline_data")
    if inline is not None:
        mime = _get(inline, "mime_type")
        data = _get(inline, "data")
        if isinstance(data, (bytes, bytearray)):
            data = base64.b64encode(bytes(data)).decode("ascii")
        return {"type": "blob", "mime_type": mime, "modality": _modality(mime), "content": data}
    file_data = _get(item, "file_data")
    if file_data is not None:
        mime = _get(file_data, "mime_type")
        return {"type": "uri", "mime_type": mime, "modality": _modality(mime), "uri": _get(file_data, "file_uri")}
    code = _get(item, "executable_code")
    if code is not None:
        return {"type": "executable_code", "language": str(_get(code, "language")), "content": _get(code, "code")}
    result = _get(item, "code_execution_result")
    if result is not None:
        return {"type": "code_execution_result", "content": _get(result, "output")}
    if isinstance(item, Mapping) or hasattr(item, "model_fields"):
        return None  # an empty part or a kind without a conventions' shape
    return {"type": type(item).__name__}  # e.g. a PIL image or an uploaded File object


def _parts(items: Any) -> list[dict[str, Any]]:
    parts = []
    for item in items or ():
        converted = part(item)
        if converted is not None:
            parts.append(converted)
    return parts


def _role(role: Any, parts: list[dict[str, Any]]) -> str:
    if role == "model":
        return "assistant"
    if parts and all(p["type"] == "tool_call_response" for p in parts):
        return "tool"
    return "user" if role in (None, "user") else str(role)


def input_messages(contents: Any) -> list[dict[str, Any]]:
    if contents is None:
        return []
    items = contents if isinstance(contents, (list, tuple)) else [contents]
    messages: list[dict[str, Any]] = []
    loose: list[Any] = []

    def flush() -> None:
        if loose:
            parts = _parts(loose)
            messages.append({"role": _role("user", parts), "parts": parts})
            loose.clear()

    for item in items:
        if _is_content(item):
            flush()
            parts = _parts(_get(item, "parts"))
            messages.append({"role": _role(_get(item, "role"), parts), "parts": parts})
        else:
            loose.append(item)
    flush()
    return messages


def system_instructions(system: Any) -> list[dict[str, Any]]:
    if _is_content(system):
        return _parts(_get(system, "parts"))
    if isinstance(system, (list, tuple)):
        return _parts(system)
    return _parts([system])


def _schema(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json", exclude_none=True)
    return value


def tool_definitions(tools: Any) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for tool in tools or ():
        if callable(tool) and not hasattr(tool, "model_fields"):  # a Python function for automatic calling
            result.append(
                {
                    "type": "function",
                    "name": getattr(tool, "__name__", None),
                    "description": (getattr(tool, "__doc__", None) or "").strip() or None,
                }
            )
            continue
        declarations = _get(tool, "function_declarations")
        for declaration in declarations or ():
            parameters = _get(declaration, "parameters_json_schema") or _get(declaration, "parameters")
            result.append(
                {
                    "type": "function",
                    "name": _get(declaration, "name"),
                    "description": _get(declaration, "description"),
                    "parameters": _schema(parameters),
                }
            )
        fields = tool.keys() if isinstance(tool, Mapping) else getattr(type(tool), "model_fields", {})
        for name in fields:  # built-in tools: google_search, code_execution, url_context, ...
            if name != "function_declarations" and _get(tool, name) is not None:
                result.append({"type": name})
    return result


def output_finish_reason(reason: Any, parts: list[dict[str, Any]]) -> str:
    """The conventions' finish reason of an output message (``stop``, ``length``, ``content_filter``,
    ``tool_call``, ``error``); the span's ``gen_ai.response.finish_reasons`` keep Gemini's own."""
    raw = str(getattr(reason, "value", reason) or "")
    if any(p["type"] == "tool_call" for p in parts):
        return "tool_call"
    if raw == "STOP":
        return "stop"
    if raw == "MAX_TOKENS":
        return "length"
    if raw in _CONTENT_FILTER_REASONS:
        return "content_filter"
    return "error" if raw else "stop"


def _merge_text(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adjacent text (or reasoning) fragments of a stream as one part."""
    merged: list[dict[str, Any]] = []
    for item in parts:
        if merged and item["type"] in ("text", "reasoning") and merged[-1]["type"] == item["type"]:
            merged[-1] = {**merged[-1], "content": merged[-1]["content"] + item["content"]}
        else:
            merged.append(item)
    return merged


def output_message(raw_parts: Any, reason: Any) -> dict[str, Any]:
    parts = _merge_text(_parts(raw_parts))
    return {"role": "assistant", "parts": parts, "finish_reason": output_finish_reason(reason, parts)}


def output_messages(candidates: Any) -> list[dict[str, Any]]:
    return [
        output_message(_get(_get(candidate, "content"), "parts"), _get(candidate, "finish_reason"))
        for candidate in candidates or ()
    ]
