"""Bedrock message content in the GenAI conventions' JSON shapes, and plain text for estimates.

Only called when content capture is on or a token estimate is needed, never on the common path.
Converse messages are ``{"role", "content": [{"text"}, {"image"}, {"toolUse"}, {"toolResult"}, ...]}``;
InvokeModel bodies follow the model's native format (Anthropic/Nova ``messages``, or a ``prompt`` /
``inputText`` string).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _converse_parts(content: Any) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if not isinstance(content, list):
        return parts
    for block in content:
        if not isinstance(block, Mapping):
            continue
        if isinstance(block.get("text"), str):
            parts.append({"type": "text", "content": block["text"]})
        elif isinstance(block.get("toolUse"), Mapping):
            use = block["toolUse"]
            parts.append(
                {
                    "type": "tool_call",
                    "id": use.get("toolUseId"),
                    "name": use.get("name"),
                    "arguments": use.get("input"),
                }
            )
        elif isinstance(block.get("toolResult"), Mapping):
            result = block["toolResult"]
            parts.append(
                {"type": "tool_call_response", "id": result.get("toolUseId"), "response": result.get("content")}
            )
        elif block.get("type") == "tool_use":  # Anthropic native
            parts.append(
                {"type": "tool_call", "id": block.get("id"), "name": block.get("name"), "arguments": block.get("input")}
            )
        elif block.get("type") == "tool_result":
            parts.append(
                {"type": "tool_call_response", "id": block.get("tool_use_id"), "response": block.get("content")}
            )
        else:
            kind = block.get("type") or next(iter(block), None)
            if kind:
                parts.append({"type": str(kind)})
    return parts


def _texts_of(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    texts: list[str] = []
    if isinstance(content, list):
        for block in content:
            if isinstance(block, Mapping) and isinstance(block.get("text"), str):
                texts.append(block["text"])
    return texts


def converse_texts(messages: Any, system: Any) -> list[str]:
    texts = _texts_of(system)
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, Mapping):
                texts.extend(_texts_of(message.get("content")))
    return texts


def converse_messages(messages: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, Mapping):
                out.append({"role": message.get("role"), "parts": _converse_parts(message.get("content"))})
    return out


def converse_system(system: Any) -> list[dict[str, Any]] | None:
    texts = _texts_of(system)
    return [{"type": "text", "content": text} for text in texts] or None


def converse_tools(tool_config: Any) -> list[dict[str, Any]] | None:
    if not isinstance(tool_config, Mapping) or not isinstance(tool_config.get("tools"), list):
        return None
    tools = []
    for tool in tool_config["tools"]:
        spec = tool.get("toolSpec") if isinstance(tool, Mapping) else None
        if isinstance(spec, Mapping):
            schema = spec.get("inputSchema")
            tools.append(
                {
                    "type": "function",
                    "name": spec.get("name"),
                    "description": spec.get("description"),
                    "parameters": schema.get("json") if isinstance(schema, Mapping) else None,
                }
            )
    return tools or None


def output_message(content: Any, finish_reason: str | None) -> list[dict[str, Any]]:
    return [{"role": "assistant", "parts": _converse_parts(content), "finish_reason": finish_reason or "stop"}]


def text_output_message(texts: list[str], finish_reason: str | None) -> list[dict[str, Any]]:
    return output_message("".join(texts) or [], finish_reason)


# -- InvokeModel bodies -------------------------------------------------------------------------------


def invoke_texts(body: Mapping[str, Any]) -> list[str]:
    if isinstance(body.get("messages"), list):
        return converse_texts(body["messages"], body.get("system"))
    for key in ("prompt", "inputText", "message"):
        if isinstance(body.get(key), str):
            return [body[key]]
    if isinstance(body.get("texts"), list):
        return [t for t in body["texts"] if isinstance(t, str)]
    return []


def invoke_messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    if isinstance(body.get("messages"), list):
        return converse_messages(body["messages"])
    return [{"role": "user", "parts": [{"type": "text", "content": text}]} for text in invoke_texts(body)]


def invoke_system(body: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    return converse_system(body.get("system"))
