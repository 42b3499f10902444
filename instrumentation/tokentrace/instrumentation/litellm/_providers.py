"""Which provider a LiteLLM call reaches: LiteLLM's ``custom_llm_provider`` names, mapped to
``gen_ai.provider.name``.

At the start of a call the provider comes from the ``custom_llm_provider`` argument or the model's
``provider/`` prefix (a set lookup); only a bare model name asks LiteLLM's own resolver, whose answer
is cached per model because it costs tens of microseconds. The response's ``_hidden_params`` confirm
(or correct) it at the end.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

# LiteLLM provider -> gen_ai.provider.name (the conventions' well-known values where one exists);
# any other LiteLLM provider keeps LiteLLM's own name.
PROVIDER_NAMES: dict[str, str] = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "chatgpt": "openai",
    "anthropic": "anthropic",
    "anthropic_text": "anthropic",
    "azure": "azure.ai.openai",
    "azure_text": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "vertex_ai": "gcp.vertex_ai",
    "vertex_ai_beta": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "groq": "groq",
    "mistral": "mistral_ai",
    "codestral": "mistral_ai",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "ollama": "ollama",
    "ollama_chat": "ollama",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "perplexity": "perplexity",
    "together_ai": "together",
    "openrouter": "openrouter",
    "fireworks_ai": "fireworks",
    "cerebras": "cerebras",
    "watsonx": "ibm.watsonx.ai",
}
UNKNOWN_PROVIDER = "litellm"  # LiteLLM could not say either: the router itself is what we know

_CACHE_LIMIT = 1024
_resolved: dict[str, str | None] = {}
_lock = threading.Lock()
_known: frozenset[str] | None = None


def provider_name(litellm_provider: str | None) -> str:
    """``gen_ai.provider.name`` for a LiteLLM provider name."""
    if not litellm_provider:
        return UNKNOWN_PROVIDER
    return PROVIDER_NAMES.get(litellm_provider, litellm_provider)


def _known_providers() -> frozenset[str]:
    global _known
    if _known is None:
        import litellm

        _known = frozenset(str(getattr(p, "value", p)) for p in getattr(litellm, "provider_list", ()))
    return _known


def _ask_litellm(model: str) -> str | None:
    cached = _resolved.get(model, "")
    if cached != "":
        return cached
    import litellm

    try:
        provider: str | None = litellm.get_llm_provider(model=model)[1]
    except Exception:  # LiteLLM cannot tell from the name alone (it raises BadRequestError)
        provider = None
    with _lock:
        if len(_resolved) >= _CACHE_LIMIT:
            _resolved.clear()
        _resolved[model] = provider
    return provider


def litellm_provider(model: Any, custom_llm_provider: Any) -> str | None:
    """LiteLLM's provider name for a request, as LiteLLM will route it."""
    if isinstance(custom_llm_provider, str) and custom_llm_provider:
        return custom_llm_provider
    if not isinstance(model, str) or not model:
        return None
    prefix, slash, _ = model.partition("/")
    if slash and prefix in _known_providers():
        return prefix
    return _ask_litellm(model)


def server_of(api_base: Any) -> tuple[str | None, int | None]:
    """``server.address`` / ``server.port`` of an ``api_base`` URL."""
    if not isinstance(api_base, str) or not api_base:
        return None, None
    try:
        parts = urlsplit(api_base)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None, None
    return parts.hostname, port
