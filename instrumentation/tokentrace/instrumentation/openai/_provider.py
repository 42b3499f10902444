"""Which provider and server an OpenAI client talks to.

The OpenAI SDK is also the client for Azure OpenAI and for many OpenAI-compatible services, so the
provider comes from the client class and base URL. The answer is cached per client object: the
base URL is fixed for a client's life and parsing it on every call would cost more than the call's
other bookkeeping.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass
from urllib.parse import urlsplit

PROVIDER_HOSTS_ENV = "TOKENTRACE_OPENAI_PROVIDER_HOSTS"

# Host suffix -> gen_ai.provider.name. Well-known values of the conventions where one exists.
_HOST_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("api.openai.com", "openai"),
    ("openai.azure.com", "azure.ai.openai"),
    ("cognitiveservices.azure.com", "azure.ai.openai"),
    ("services.ai.azure.com", "azure.ai.inference"),
    ("api.groq.com", "groq"),
    ("api.deepseek.com", "deepseek"),
    ("api.together.xyz", "together"),
    ("api.together.ai", "together"),
    ("openrouter.ai", "openrouter"),
    ("api.mistral.ai", "mistral_ai"),
    ("api.x.ai", "x_ai"),
    ("api.perplexity.ai", "perplexity"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
    ("aiplatform.googleapis.com", "gcp.vertex_ai"),
    ("api.fireworks.ai", "fireworks"),
    ("api.cerebras.ai", "cerebras"),
    ("api.cohere.ai", "cohere"),
    ("api.cohere.com", "cohere"),
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_OLLAMA_PORT = 11434


@dataclass(frozen=True)
class Endpoint:
    provider: str
    address: str | None
    port: int | None


def _user_hosts() -> tuple[tuple[str, str], ...]:
    """``TOKENTRACE_OPENAI_PROVIDER_HOSTS="llm.internal=vllm,gpu-box:8000=vllm"`` names self-hosted servers."""
    raw = os.environ.get(PROVIDER_HOSTS_ENV, "")
    pairs = []
    for item in raw.split(","):
        host, _, provider = item.partition("=")
        if host.strip() and provider.strip():
            pairs.append((host.strip().lower(), provider.strip()))
    return tuple(pairs)


def endpoint_for_url(url: str, *, azure_client: bool = False, user_hosts: tuple[tuple[str, str], ...] = ()) -> Endpoint:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower() or None
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        port = None
    provider = "azure.ai.openai" if azure_client else None
    if provider is None and host:
        host_port = f"{host}:{port}"
        for pattern, name in user_hosts:
            if pattern in (host, host_port) or host.endswith("." + pattern):
                provider = name
                break
    if provider is None and host:
        for suffix, name in _HOST_SUFFIXES:
            if host == suffix or host.endswith("." + suffix):
                provider = name
                break
    if provider is None and port == _OLLAMA_PORT:
        provider = "ollama"
    return Endpoint(provider or "openai", host, port)


class EndpointCache:
    """Per-client memo of :func:`endpoint_for_url`."""

    def __init__(self) -> None:
        self._by_client: weakref.WeakKeyDictionary[object, tuple[str, Endpoint]] = weakref.WeakKeyDictionary()
        self._user_hosts = _user_hosts()

    def lookup(self, client: object) -> Endpoint:
        base_url = str(getattr(client, "base_url", "") or "")
        try:
            cached = self._by_client.get(client)
        except TypeError:
            cached = None
        if cached is not None and cached[0] == base_url:
            return cached[1]
        azure = any(cls.__name__ in ("AzureOpenAI", "AsyncAzureOpenAI") for cls in type(client).__mro__)
        endpoint = endpoint_for_url(base_url, azure_client=azure, user_hosts=self._user_hosts)
        try:
            self._by_client[client] = (base_url, endpoint)
        except TypeError:
            pass
        return endpoint
