"""Request side: a ``bedrock-runtime`` API call's parameters as a :class:`GenAICall`.

botocore clients are generated at run time, so there is no ``converse`` method to wrap; every
operation goes through ``BaseClient._make_api_call(operation_name, api_params)`` and this module
decides from those two positional arguments (and the client's service name) whether the call is one
of ours. Anything else (S3, DynamoDB, Bedrock's control plane) passes through after one set lookup
and one string comparison.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from tokentrace.core import semconv
from tokentrace.core.call import GenAICall
from tokentrace.instrumentation.bedrock import _content

PROVIDER = "aws.bedrock"
SERVICE = "bedrock-runtime"
CONVERSE = "Converse"
CONVERSE_STREAM = "ConverseStream"
INVOKE_MODEL = "InvokeModel"
INVOKE_MODEL_STREAM = "InvokeModelWithResponseStream"
OPERATIONS = frozenset({CONVERSE, CONVERSE_STREAM, INVOKE_MODEL, INVOKE_MODEL_STREAM})
STREAMING = frozenset({CONVERSE_STREAM, INVOKE_MODEL_STREAM})

_DEFAULT_PORTS = {"https": 443, "http": 80}


class Endpoint(NamedTuple):
    address: str | None
    port: int | None


@functools.lru_cache(maxsize=64)
def endpoint_of(url: str | None) -> Endpoint:
    """``server.address``/``server.port`` of a client's endpoint URL (parsed once per URL)."""
    if not url:
        return Endpoint(None, None)
    parts = urlsplit(url)
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        port = None
    return Endpoint(parts.hostname, port)


def bedrock_operation(instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[str, Any] | None:
    """``(operation_name, api_params)`` when this ``_make_api_call`` is a Bedrock inference call."""
    operation = args[0] if args else kwargs.get("operation_name")
    if operation not in OPERATIONS:
        return None
    if instance.meta.service_model.service_name != SERVICE:
        return None
    params = args[1] if len(args) > 1 else kwargs.get("api_params")
    return operation, params if isinstance(params, Mapping) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _string_list(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _put(attributes: dict[str, Any], name: str, value: Any) -> None:
    if value is not None:
        attributes[name] = value


def _guardrail(attributes: dict[str, Any], identifier: Any) -> None:
    if isinstance(identifier, str) and identifier:
        attributes[semconv.AWS_BEDROCK_GUARDRAIL_ID] = identifier


def price_model_of(model_id: str) -> str:
    """The id genai-prices knows a Bedrock model by: the resource id of a foundation-model or
    (system) inference-profile ARN, else the id as given. Profile prefixes (``us.``, ``eu.``,
    ``global.``) are kept: they select the price tier. Application inference profiles have opaque ids
    and stay unpriced (``model_not_in_catalogue``)."""
    if model_id.startswith("arn:") and "/" in model_id:
        return model_id.rsplit("/", 1)[1]
    return model_id


def _new_call(operation: str, instance: Any, model: Any, stream: bool, attributes: dict[str, Any]) -> GenAICall:
    endpoint = endpoint_of(getattr(instance.meta, "endpoint_url", None))
    model_id = model if isinstance(model, str) and model else None
    call = GenAICall(
        operation,
        PROVIDER,
        model_id,
        server_address=endpoint.address,
        server_port=endpoint.port,
        stream=stream,
        start_attributes=attributes,
    )
    if model_id is not None:
        # Priced by the request's id even when the body names the model (Anthropic's ``model``):
        # only the request's id says which Bedrock price tier (regional, global profile) applies.
        call.price_model = price_model_of(model_id)
    return call


def describe_converse(instance: Any, params: Mapping[str, Any], stream: bool, capture: bool) -> GenAICall:
    attributes: dict[str, Any] = {semconv.REQUEST_STREAM: stream}
    config = params.get("inferenceConfig")
    if isinstance(config, Mapping):
        _put(attributes, semconv.REQUEST_MAX_TOKENS, _int(config.get("maxTokens")))
        _put(attributes, semconv.REQUEST_TEMPERATURE, _number(config.get("temperature")))
        _put(attributes, semconv.REQUEST_TOP_P, _number(config.get("topP")))
        _put(attributes, semconv.REQUEST_STOP_SEQUENCES, _string_list(config.get("stopSequences")))
    extra = params.get("additionalModelRequestFields")
    if isinstance(extra, Mapping):
        _put(attributes, semconv.REQUEST_TOP_K, _number(extra.get("top_k")))
    guardrail = params.get("guardrailConfig")
    if isinstance(guardrail, Mapping):
        _guardrail(attributes, guardrail.get("guardrailIdentifier"))
    output = params.get("outputConfig")
    if isinstance(output, Mapping) and output.get("textFormat"):
        attributes[semconv.OUTPUT_TYPE] = "json"
    call = _new_call("chat", instance, params.get("modelId"), stream, attributes)
    messages = params.get("messages")
    system = params.get("system")
    call.input_text = lambda: _content.converse_texts(messages, system)
    if capture:
        call.input_messages = lambda: _content.converse_messages(messages)
        call.system_instructions = lambda: _content.converse_system(system)
        tools = params.get("toolConfig")
        call.tool_definitions = lambda: _content.converse_tools(tools)
    return call


def is_embedding_model(model_id: Any) -> bool:
    """Titan/Cohere/Nova embedding models all carry ``embed`` in their ids (and profile ARNs)."""
    return isinstance(model_id, str) and "embed" in model_id.lower()


def parse_body(body: Any) -> Mapping[str, Any] | None:
    """The JSON request body when the app passed bytes or a string (a file-like body is left unread)."""
    if isinstance(body, (bytes, bytearray, str)):
        try:
            parsed = json.loads(body)
        except ValueError:
            return None
        return parsed if isinstance(parsed, Mapping) else None
    return None


def describe_invoke(instance: Any, params: Mapping[str, Any], stream: bool, capture: bool) -> GenAICall:
    model_id = params.get("modelId")
    body = parse_body(params.get("body"))
    attributes: dict[str, Any] = {}
    _guardrail(attributes, params.get("guardrailIdentifier"))
    if is_embedding_model(model_id):
        operation = "embeddings"
        if body is not None:
            _put(attributes, semconv.EMBEDDINGS_DIMENSION_COUNT, _int(body.get("dimensions")))
            formats = _string_list(body.get("embedding_types") or body.get("embeddingTypes"))
            _put(attributes, semconv.REQUEST_ENCODING_FORMATS, formats)
    else:
        attributes[semconv.REQUEST_STREAM] = stream
        operation = "chat" if body is not None and "messages" in body else "text_completion"
        if body is not None:
            _sampling_attributes(body, attributes)
    call = _new_call(operation, instance, model_id, stream, attributes)
    if body is not None:
        call.input_text = lambda: _content.invoke_texts(body)
        if capture and operation != "embeddings":
            call.input_messages = lambda: _content.invoke_messages(body)
            call.system_instructions = lambda: _content.invoke_system(body)
    return call


def _sampling_attributes(body: Mapping[str, Any], attributes: dict[str, Any]) -> None:
    """Sampling parameters in every family's spelling (Anthropic/Llama/Mistral/Cohere snake_case,
    Titan ``textGenerationConfig``, Nova ``inferenceConfig``)."""
    sources: list[Mapping[str, Any]] = [body]
    for nested in ("textGenerationConfig", "inferenceConfig"):
        if isinstance(body.get(nested), Mapping):
            sources.append(body[nested])
    for source in sources:
        max_tokens = (
            source.get("max_tokens")
            or source.get("max_gen_len")
            or source.get("maxTokenCount")
            or source.get("maxTokens")
            or source.get("max_new_tokens")
        )
        _put(attributes, semconv.REQUEST_MAX_TOKENS, _int(max_tokens))
        _put(attributes, semconv.REQUEST_TEMPERATURE, _number(source.get("temperature")))
        _put(attributes, semconv.REQUEST_TOP_P, _number(source.get("top_p", source.get("topP", source.get("p")))))
        _put(attributes, semconv.REQUEST_TOP_K, _number(source.get("top_k", source.get("topK", source.get("k")))))
        stops = source.get("stop_sequences", source.get("stopSequences", source.get("stop")))
        _put(attributes, semconv.REQUEST_STOP_SEQUENCES, _string_list(stops))
