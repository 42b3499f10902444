"""Request side: turn a ``google.genai`` model method's arguments into a :class:`GenAICall`.

The SDK's methods are keyword-only (``model``, ``contents``, ``config``); ``config`` is either a
``types.GenerateContentConfig`` / ``EmbedContentConfig`` or the equivalent dict, so every read goes
through :func:`field`. Only values the application set are recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tokentrace.core import semconv
from tokentrace.core.call import GenAICall
from tokentrace.instrumentation.google_genai import _content

PROVIDER_GEMINI = "gcp.gemini"  # the Gemini Developer API (API key)
PROVIDER_VERTEX = "gcp.vertex_ai"  # Vertex AI (``Client(vertexai=True)``)

OPERATION_GENERATE = "generate_content"
OPERATION_EMBEDDINGS = "embeddings"

_DEFAULT_PORTS = {"https": 443, "http": 80}
# Prefixes the SDK accepts in ``model`` that are addressing, not the model's name.
_MODEL_PREFIXES = ("models/", "publishers/google/models/", "google/")
_OUTPUT_TYPES = {"application/json": "json", "text/plain": "text", "text/x.enum": "text"}


def field(obj: Any, name: str) -> Any:
    """``obj.name`` for SDK models, ``obj[name]`` for the dicts the SDK accepts in their place."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


@dataclass(frozen=True)
class Endpoint:
    provider: str
    address: str | None
    port: int | None


_endpoints: dict[tuple[bool, str], Endpoint] = {}


def endpoint_of(models: Any) -> Endpoint:
    """Provider and server of a ``Models``/``AsyncModels`` object, from its API client (cached per URL)."""
    api_client = getattr(models, "_api_client", None)
    vertex = bool(getattr(api_client, "vertexai", False))
    options = getattr(api_client, "_http_options", None)
    base_url = field(options, "base_url") or ""
    key = (vertex, base_url)
    endpoint = _endpoints.get(key)
    if endpoint is None:
        address: str | None = None
        port: int | None = None
        try:
            parts = urlsplit(base_url)
            address = parts.hostname
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        except ValueError:
            pass
        endpoint = Endpoint(PROVIDER_VERTEX if vertex else PROVIDER_GEMINI, address, port if address else None)
        if len(_endpoints) < 256:
            _endpoints[key] = endpoint
    return endpoint


def model_name(model: Any) -> str | None:
    """The model's name as pricing and dashboards know it: ``models/gemini-2.5-flash`` and
    ``projects/p/locations/l/publishers/google/models/gemini-2.5-flash`` are ``gemini-2.5-flash``."""
    if not isinstance(model, str) or not model:
        return None
    if model.startswith("projects/") and "/models/" in model:
        return model.rsplit("/models/", 1)[1]
    for prefix in _MODEL_PREFIXES:
        if model.startswith(prefix):
            return model[len(prefix) :]
    return model


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _generation_attributes(config: Any, attributes: dict[str, Any]) -> None:
    for key, name in (
        ("temperature", semconv.REQUEST_TEMPERATURE),
        ("top_p", semconv.REQUEST_TOP_P),
        ("top_k", semconv.REQUEST_TOP_K),
        ("frequency_penalty", semconv.REQUEST_FREQUENCY_PENALTY),
        ("presence_penalty", semconv.REQUEST_PRESENCE_PENALTY),
    ):
        value = _number(field(config, key))
        if value is not None:
            attributes[name] = value
    max_tokens = _int(field(config, "max_output_tokens"))
    if max_tokens is not None:
        attributes[semconv.REQUEST_MAX_TOKENS] = max_tokens
    seed = _int(field(config, "seed"))
    if seed is not None:
        attributes[semconv.REQUEST_SEED] = seed
    count = _int(field(config, "candidate_count"))
    if count is not None and count != 1:
        attributes[semconv.REQUEST_CHOICE_COUNT] = count
    stop = field(config, "stop_sequences")
    if isinstance(stop, (list, tuple)) and stop and all(isinstance(s, str) for s in stop):
        attributes[semconv.REQUEST_STOP_SEQUENCES] = list(stop)
    mime = field(config, "response_mime_type")
    if isinstance(mime, str):
        output_type = _OUTPUT_TYPES.get(mime)
        if output_type:
            attributes[semconv.OUTPUT_TYPE] = output_type
    elif field(config, "response_schema") is not None or field(config, "response_json_schema") is not None:
        attributes[semconv.OUTPUT_TYPE] = "json"


def _new_call(
    operation: str, endpoint: Endpoint, kwargs: Mapping[str, Any], stream: bool, attributes: dict[str, Any]
) -> GenAICall:
    return GenAICall(
        operation,
        endpoint.provider,
        model_name(kwargs.get("model")),
        server_address=endpoint.address,
        server_port=endpoint.port,
        stream=stream,
        start_attributes=attributes,
    )


def describe_generate(endpoint: Endpoint, kwargs: Mapping[str, Any], *, stream: bool, capture: bool) -> GenAICall:
    config = kwargs.get("config")
    attributes: dict[str, Any] = {semconv.REQUEST_STREAM: stream}
    if config is not None:
        _generation_attributes(config, attributes)
    call = _new_call(OPERATION_GENERATE, endpoint, kwargs, stream, attributes)
    if capture:
        contents = _content.snapshot(kwargs.get("contents"))
        call.input_messages = lambda: _content.input_messages(contents)
        system = field(config, "system_instruction")
        if system is not None:
            call.system_instructions = lambda: _content.system_instructions(system)
        tools = field(config, "tools")
        if tools:
            call.tool_definitions = lambda: _content.tool_definitions(tools)
    return call


def describe_embed(endpoint: Endpoint, kwargs: Mapping[str, Any], *, stream: bool, capture: bool) -> GenAICall:
    attributes: dict[str, Any] = {}
    dimensions = _int(field(kwargs.get("config"), "output_dimensionality"))
    if dimensions is not None:
        attributes[semconv.EMBEDDINGS_DIMENSION_COUNT] = dimensions
    return _new_call(OPERATION_EMBEDDINGS, endpoint, kwargs, False, attributes)
