"""Translate spans from other GenAI instrumentations to the current GenAI conventions (v1.41).

Dialects understood, each marked on the span as ``tokentrace.normalised_from``:

``openinference``
    Arize OpenInference: ``llm.token_count.*``, ``llm.model_name`` / ``embedding.model_name``,
    ``llm.provider`` / ``llm.system``, ``llm.input_messages.N.message.*`` /
    ``llm.output_messages.N.message.*``, ``llm.invocation_parameters`` (JSON),
    ``openinference.span.kind``.
``openlit``
    OpenLIT: ``gen_ai.usage.cost``, ``gen_ai.server.time_to_first_token``, the span attribute
    ``gen_ai.client.token.usage`` (total tokens), ``gen_ai.usage.*_tokens_details.*``,
    ``gen_ai.sdk.version``, ``telemetry.sdk.name = "openlit"``.
``openllmetry``
    Traceloop OpenLLMetry: ``llm.request.type``, ``llm.usage.total_tokens``,
    ``gen_ai.prompt.N.*`` / ``gen_ai.completion.N.*``, ``gen_ai.is_streaming``,
    ``gen_ai.usage.cache_read_input_tokens`` / ``cache_creation_input_tokens``,
    ``gen_ai.usage.reasoning_tokens``, ``llm.frequency_penalty`` and friends.
``semconv-legacy``
    Older releases of the conventions themselves: ``gen_ai.system``,
    ``gen_ai.usage.prompt_tokens`` / ``completion_tokens``, ``gen_ai.openai.request.*`` /
    ``gen_ai.openai.response.*``.

Dialects overlap (OpenLLMetry and OpenLIT both emit ``gen_ai.usage.total_tokens``, both inherited
``gen_ai.usage.prompt_tokens`` from old conventions), so the translation table is one table applied to
every span; the dialect only decides the mark, chosen in the order above (most specific first).

Rules:

* An attribute that already has its current name is never overwritten; the foreign value is
  only used to fill a gap.
* Originals are kept unless ``drop_originals=True``, which drops the foreign names that were
  translated (or have a current equivalent). Kept regardless: ``gen_ai.system`` (a deprecated name of
  the conventions themselves that many backends still key on) and names with no current equivalent
  (``KEPT_ORIGINALS``, audio token counts, OpenInference's ``input.value`` / ``output.value``).
* ``gen_ai.system`` next to ``gen_ai.provider.name`` alone is not foreign: current instrumentations
  (tokentrace included) emit both on the stability opt-in, so such spans are left unmarked.
* Total-token attributes (there is no current total name) only fill a missing count:
  ``output = total - input`` (or the reverse); for embeddings, ``input = total``.
* Cost computed by another instrumentation (OpenLIT's ``gen_ai.usage.cost``, US dollars) becomes
  ``gen_ai.usage.cost.amount`` / ``currency = "USD"`` with ``gen_ai.usage.cost.source =
  "instrumentation"``: it is neither the provider's bill nor tokentrace's own price table
  (``local`` / ``price_file``), and a later cost stage may prefer its own figure.
* Messages become ``gen_ai.input.messages`` / ``gen_ai.output.messages`` JSON in the conventions'
  shape: ``[{"role": .., "parts": [{"type": "text", "content": ..}, ..]}]`` with tool calls as
  ``tool_call`` parts and tool results as ``tool_call_response`` parts; output messages carry
  ``finish_reason`` when the source recorded one.

Collapsing duplicates: stacked wrappers (OpenInference over tokentrace, an SDK's own span under a
framework's) record one call twice. When an inference span (chat / text_completion / embeddings /
generate_content) has as its *direct parent* another inference span of the same trace with the same
operation, a shared model name (request or response) and overlapping time, and at least one of the
two is a CLIENT span, one span is kept: the conventions-native one (no ``normalised_from`` mark)
if only one is, else the outer one. Attributes the kept span lacks are copied from the other
(both already normalised; the kept span keeps its own ``normalised_from`` mark and lists the
dropped spans' instrumentation scopes in ``tokentrace.collapsed_from``), the other is dropped and
its children are re-parented to the kept span (``parent_span_id``; when the kept span is the inner
one it takes over the dropped span's parent).
This only sees one batch at a time: the SDK's ``BatchSpanProcessor`` exports a trace's spans
together in practice, but two wrappers whose spans land in different export batches (a batch
boundary between them, a ``SimpleSpanProcessor`` exporting spans one at a time, or a gateway
receiving them from different processes) are not collapsed.

Cost: a span with no foreign name costs one ``frozenset.isdisjoint`` over its keys (``TRIGGER_KEYS``:
the exact foreign names plus the index-0 keys of the flattened message families, which always start
at 0); prefixes are scanned only on spans that matched. The collapse check costs one operation lookup
per span and one set test per batch: unless some inference span's parent id is another inference
span's id, nothing can collapse and the keyed pass is skipped. (A memo of the trigger test per key
tuple, as redact keeps, was measured slower: building and hashing the tuple costs more than the test.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from tokentrace.core import semconv
from tokentrace.processor.model import SpanData
from tokentrace.processor.stages import PassThroughTiming

NORMALISED_FROM = "tokentrace.normalised_from"
COLLAPSED_FROM = "tokentrace.collapsed_from"  # scope names of the duplicate spans merged into this one
COST_SOURCE_INSTRUMENTATION = "instrumentation"
SPAN_KIND_CLIENT = 2  # opentelemetry.trace.SpanKind.CLIENT.value, the value SpanData.kind carries

OPENINFERENCE = "openinference"
OPENLIT = "openlit"
OPENLLMETRY = "openllmetry"
SEMCONV_LEGACY = "semconv-legacy"
_DIALECT_ORDER = (OPENINFERENCE, OPENLIT, OPENLLMETRY, SEMCONV_LEGACY)

# ---- foreign names ---------------------------------------------------------------------------

# Semantic-conventions releases before v1.37 (and instrumentations that copied them).
SYSTEM = semconv.SYSTEM
LEGACY_PROMPT_TOKENS = "gen_ai.usage.prompt_tokens"
LEGACY_COMPLETION_TOKENS = "gen_ai.usage.completion_tokens"
LEGACY_OPENAI_REQUEST_SERVICE_TIER = "gen_ai.openai.request.service_tier"
LEGACY_OPENAI_RESPONSE_SERVICE_TIER = "gen_ai.openai.response.service_tier"
LEGACY_OPENAI_SYSTEM_FINGERPRINT = "gen_ai.openai.response.system_fingerprint"
LEGACY_OPENAI_REQUEST_SEED = "gen_ai.openai.request.seed"
LEGACY_OPENAI_RESPONSE_FORMAT = "gen_ai.openai.request.response_format"

# OpenLLMetry (opentelemetry-semantic-conventions-ai).
OLL_REQUEST_TYPE = "llm.request.type"
OLL_TOTAL_TOKENS = "llm.usage.total_tokens"
OLL_CACHE_READ = "gen_ai.usage.cache_read_input_tokens"
OLL_CACHE_CREATION = "gen_ai.usage.cache_creation_input_tokens"
OLL_REASONING_TOKENS = "gen_ai.usage.reasoning_tokens"  # also OpenLIT
OLL_LLM_REASONING_TOKENS = "llm.usage.reasoning_tokens"
OLL_IS_STREAMING = "gen_ai.is_streaming"
OLL_LLM_IS_STREAMING = "llm.is_streaming"
OLL_SYSTEM_FINGERPRINT = "gen_ai.openai.system_fingerprint"
OLL_FREQUENCY_PENALTY = "llm.frequency_penalty"
OLL_PRESENCE_PENALTY = "llm.presence_penalty"
OLL_TOP_K = "llm.top_k"
OLL_STOP_SEQUENCES = "llm.chat.stop_sequences"
OLL_FINISH_REASON = "gen_ai.response.finish_reason"
OLL_LLM_FINISH_REASON = "llm.response.finish_reason"
OLL_MAX_COMPLETION_TOKENS = "gen_ai.request.max_completion_tokens"
OLL_REQUEST_N = "gen_ai.request.n"  # also OpenLIT
OLL_API_BASE = "gen_ai.openai.api_base"
OLL_PROMPT_PREFIX = "gen_ai.prompt."
OLL_COMPLETION_PREFIX = "gen_ai.completion."
TOTAL_TOKENS = "gen_ai.usage.total_tokens"  # OpenLLMetry and OpenLIT

# OpenLIT.
OPENLIT_COST = "gen_ai.usage.cost"
OPENLIT_TTFT = "gen_ai.server.time_to_first_token"
OPENLIT_TBT = "gen_ai.server.time_per_output_token"
OPENLIT_TOTAL_TOKENS = "gen_ai.client.token.usage"  # a metric name OpenLIT also sets on spans
OPENLIT_CACHE_READ = "gen_ai.usage.prompt_tokens_details.cached_tokens"
OPENLIT_CACHE_WRITE = "gen_ai.usage.prompt_tokens_details.cache_creation_tokens"
OPENLIT_REASONING = "gen_ai.usage.completion_tokens_details.reasoning_tokens"
OPENLIT_SDK_VERSION = "gen_ai.sdk.version"
OPENLIT_APPLICATION_NAME = "gen_ai.application_name"
OPENLIT_ENVIRONMENT = "gen_ai.environment"
OPENLIT_ENDPOINT = "gen_ai.endpoint"
TELEMETRY_SDK_NAME = "telemetry.sdk.name"

# OpenInference (openinference-semantic-conventions).
OI_SPAN_KIND = "openinference.span.kind"
OI_MODEL_NAME = "llm.model_name"
OI_EMBEDDING_MODEL_NAME = "embedding.model_name"
OI_PROVIDER = "llm.provider"
OI_SYSTEM = "llm.system"
OI_INVOCATION_PARAMETERS = "llm.invocation_parameters"
OI_EMBEDDING_INVOCATION_PARAMETERS = "embedding.invocation_parameters"
OI_PROMPT_TOKENS = "llm.token_count.prompt"
OI_COMPLETION_TOKENS = "llm.token_count.completion"
OI_TOTAL_TOKENS = "llm.token_count.total"
OI_CACHE_READ = "llm.token_count.prompt_details.cache_read"
OI_CACHE_WRITE = "llm.token_count.prompt_details.cache_write"
OI_REASONING = "llm.token_count.completion_details.reasoning"
OI_FINISH_REASON = "llm.finish_reason"
OI_INPUT_PREFIX = "llm.input_messages."
OI_OUTPUT_PREFIX = "llm.output_messages."
OI_PROMPTS_PREFIX = "llm.prompts."

# ---- tables ----------------------------------------------------------------------------------

# Foreign name -> current name, by dialect. Filled in this order, so where two foreign names have
# the same current name the first present wins. The cache-creation target is resolved per build
# (its name is versioned).
_CACHE_CREATION = "<cache_creation>"
_RENAMES_BY_DIALECT: dict[str, dict[str, str]] = {
    SEMCONV_LEGACY: {
        LEGACY_PROMPT_TOKENS: semconv.USAGE_INPUT_TOKENS,
        LEGACY_COMPLETION_TOKENS: semconv.USAGE_OUTPUT_TOKENS,
        LEGACY_OPENAI_REQUEST_SERVICE_TIER: semconv.OPENAI_REQUEST_SERVICE_TIER,
        LEGACY_OPENAI_RESPONSE_SERVICE_TIER: semconv.OPENAI_RESPONSE_SERVICE_TIER,
        LEGACY_OPENAI_SYSTEM_FINGERPRINT: semconv.OPENAI_RESPONSE_SYSTEM_FINGERPRINT,
        LEGACY_OPENAI_REQUEST_SEED: semconv.REQUEST_SEED,
    },
    OPENLLMETRY: {
        OLL_CACHE_READ: semconv.USAGE_CACHE_READ_INPUT_TOKENS,
        OLL_CACHE_CREATION: _CACHE_CREATION,
        OLL_REASONING_TOKENS: semconv.USAGE_REASONING_OUTPUT_TOKENS,
        OLL_LLM_REASONING_TOKENS: semconv.USAGE_REASONING_OUTPUT_TOKENS,
        OLL_IS_STREAMING: semconv.REQUEST_STREAM,
        OLL_LLM_IS_STREAMING: semconv.REQUEST_STREAM,
        OLL_SYSTEM_FINGERPRINT: semconv.OPENAI_RESPONSE_SYSTEM_FINGERPRINT,
        OLL_FREQUENCY_PENALTY: semconv.REQUEST_FREQUENCY_PENALTY,
        OLL_PRESENCE_PENALTY: semconv.REQUEST_PRESENCE_PENALTY,
        OLL_TOP_K: semconv.REQUEST_TOP_K,
        OLL_MAX_COMPLETION_TOKENS: semconv.REQUEST_MAX_TOKENS,
        OLL_REQUEST_N: semconv.REQUEST_CHOICE_COUNT,
    },
    OPENLIT: {
        OPENLIT_CACHE_READ: semconv.USAGE_CACHE_READ_INPUT_TOKENS,
        OPENLIT_CACHE_WRITE: _CACHE_CREATION,
        OPENLIT_REASONING: semconv.USAGE_REASONING_OUTPUT_TOKENS,
    },
    OPENINFERENCE: {
        OI_PROMPT_TOKENS: semconv.USAGE_INPUT_TOKENS,
        OI_COMPLETION_TOKENS: semconv.USAGE_OUTPUT_TOKENS,
        OI_CACHE_READ: semconv.USAGE_CACHE_READ_INPUT_TOKENS,
        OI_CACHE_WRITE: _CACHE_CREATION,
        OI_REASONING: semconv.USAGE_REASONING_OUTPUT_TOKENS,
    },
}

# Foreign names handled by code rather than the rename table (value conversion or several sources).
_SPECIAL_BY_DIALECT: dict[str, tuple[str, ...]] = {
    SEMCONV_LEGACY: (SYSTEM, LEGACY_OPENAI_RESPONSE_FORMAT),
    OPENLLMETRY: (
        OLL_REQUEST_TYPE,
        OLL_TOTAL_TOKENS,
        OLL_STOP_SEQUENCES,
        OLL_FINISH_REASON,
        OLL_LLM_FINISH_REASON,
        OLL_API_BASE,
        TOTAL_TOKENS,
    ),
    OPENLIT: (
        OPENLIT_COST,
        OPENLIT_TTFT,
        OPENLIT_TBT,
        OPENLIT_TOTAL_TOKENS,
        OPENLIT_SDK_VERSION,
        OPENLIT_APPLICATION_NAME,
        OPENLIT_ENVIRONMENT,
        OPENLIT_ENDPOINT,
    ),
    OPENINFERENCE: (
        OI_SPAN_KIND,
        OI_MODEL_NAME,
        OI_EMBEDDING_MODEL_NAME,
        OI_PROVIDER,
        OI_SYSTEM,
        OI_INVOCATION_PARAMETERS,
        OI_EMBEDDING_INVOCATION_PARAMETERS,
        OI_TOTAL_TOKENS,
        OI_FINISH_REASON,
    ),
}

# Indexed families start at 0, so their first keys are enough to trigger the slow path.
_INDEXED_TRIGGERS_BY_DIALECT: dict[str, tuple[str, ...]] = {
    OPENLLMETRY: (
        "gen_ai.prompt.0.role",
        "gen_ai.prompt.0.content",
        "gen_ai.completion.0.role",
        "gen_ai.completion.0.content",
        "gen_ai.completion.0.finish_reason",
    ),
    OPENINFERENCE: (
        "llm.input_messages.0.message.role",
        "llm.input_messages.0.message.content",
        "llm.output_messages.0.message.role",
        "llm.output_messages.0.message.content",
        "llm.prompts.0.prompt.text",
    ),
}

# The same tables by foreign name: name -> (current name, dialect) / name -> dialect.
_RENAMES: dict[str, tuple[str, str]] = {
    foreign: (target, dialect)
    for dialect, renames in _RENAMES_BY_DIALECT.items()
    for foreign, target in renames.items()
}
_SPECIAL: dict[str, str] = {key: dialect for dialect, keys in _SPECIAL_BY_DIALECT.items() for key in keys}
_INDEXED_TRIGGERS: dict[str, str] = {
    key: dialect for dialect, keys in _INDEXED_TRIGGERS_BY_DIALECT.items() for key in keys
}

# Foreign names kept even with drop_originals: no current equivalent (or, for gen_ai.system, still read).
KEPT_ORIGINALS = frozenset(
    {
        SYSTEM,
        OPENLIT_TBT,
        OPENLIT_SDK_VERSION,
        OPENLIT_APPLICATION_NAME,
        OPENLIT_ENVIRONMENT,
        OPENLIT_ENDPOINT,
    }
)

# Every key whose presence means "this span needs a look": one set intersection on the hot path.
TRIGGER_KEYS: frozenset[str] = frozenset(_RENAMES) | frozenset(_SPECIAL) | frozenset(_INDEXED_TRIGGERS)
_KEY_DIALECT: dict[str, str] = {**{k: d for k, (_, d) in _RENAMES.items()}, **_SPECIAL, **_INDEXED_TRIGGERS}
_PREFIX_FAMILIES = (
    (OLL_PROMPT_PREFIX, OPENLLMETRY),
    (OLL_COMPLETION_PREFIX, OPENLLMETRY),
    (OI_INPUT_PREFIX, OPENINFERENCE),
    (OI_OUTPUT_PREFIX, OPENINFERENCE),
    (OI_PROMPTS_PREFIX, OPENINFERENCE),
)

# Provider values of every dialect (compared lower-cased) -> gen_ai.provider.name.
PROVIDER_VALUES: dict[str, str] = {
    "openai": "openai",
    "azureopenai": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "azure.openai": "azure.ai.openai",
    "az.ai.openai": "azure.ai.openai",
    "azure.ai.openai": "azure.ai.openai",
    "azure": "azure.ai.openai",
    "azure.ai.inference": "azure.ai.inference",
    "az.ai.inference": "azure.ai.inference",
    "anthropic": "anthropic",
    "cohere": "cohere",
    "mistralai": "mistral_ai",
    "mistral_ai": "mistral_ai",
    "mistral": "mistral_ai",
    "groq": "groq",
    "deepseek": "deepseek",
    "perplexity": "perplexity",
    "xai": "x_ai",
    "x_ai": "x_ai",
    "aws": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "aws.bedrock": "aws.bedrock",
    "aws_bedrock": "aws.bedrock",
    "vertexai": "gcp.vertex_ai",
    "vertex_ai": "gcp.vertex_ai",
    "vertex ai": "gcp.vertex_ai",
    "gcp.vertex_ai": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "gcp.gemini": "gcp.gemini",
    "google": "gcp.gen_ai",
    "gcp.gen_ai": "gcp.gen_ai",
    "watsonx": "ibm.watsonx.ai",
    "ibm": "ibm.watsonx.ai",
    "ibm.watson.ai": "ibm.watsonx.ai",
    "ibm.watsonx.ai": "ibm.watsonx.ai",
}

_REQUEST_TYPES = {"chat": "chat", "completion": "text_completion", "embedding": "embeddings"}
_OI_KINDS = {"EMBEDDING": "embeddings", "TOOL": "execute_tool", "AGENT": "invoke_agent"}
_RESPONSE_FORMATS = {"text": "text", "json_object": "json", "json_schema": "json", "json": "json"}
INFERENCE_OPERATIONS = frozenset({"chat", "text_completion", "embeddings", "generate_content"})

# llm.invocation_parameters key -> (current name, converter)
_INVOCATION_PARAMETERS: dict[str, str] = {
    "temperature": semconv.REQUEST_TEMPERATURE,
    "top_p": semconv.REQUEST_TOP_P,
    "top_k": semconv.REQUEST_TOP_K,
    "max_tokens": semconv.REQUEST_MAX_TOKENS,
    "max_completion_tokens": semconv.REQUEST_MAX_TOKENS,
    "max_output_tokens": semconv.REQUEST_MAX_TOKENS,
    "frequency_penalty": semconv.REQUEST_FREQUENCY_PENALTY,
    "presence_penalty": semconv.REQUEST_PRESENCE_PENALTY,
    "seed": semconv.REQUEST_SEED,
    "n": semconv.REQUEST_CHOICE_COUNT,
    "stop": semconv.REQUEST_STOP_SEQUENCES,
    "stream": semconv.REQUEST_STREAM,
    "service_tier": semconv.OPENAI_REQUEST_SERVICE_TIER,
    "encoding_format": semconv.REQUEST_ENCODING_FORMATS,
    "response_format": semconv.OUTPUT_TYPE,
}


# ---- config ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    enabled: bool = True
    drop_originals: bool = False
    collapse_duplicates: bool = True

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> Config:
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"normalise: unknown option(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}"
            )
        values: dict[str, bool] = {}
        for key, value in data.items():
            values[key] = _as_bool(key, value)
        return cls(**values)


def _as_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
    raise ValueError(f"normalise: option {key!r} must be a boolean, got {value!r}")


# ---- the stage -------------------------------------------------------------------------------


class NormaliseStage(PassThroughTiming):
    name = "normalise"

    def __init__(self, config: Config | None = None, names: semconv.VersionedNames | None = None) -> None:
        self.config = config or Config()
        names = names or semconv.names_from_environment()
        cache_creation = names.usage_cache_creation_input_tokens
        self._renames = tuple(
            (foreign, cache_creation if target == _CACHE_CREATION else target)
            for foreign, (target, _) in _RENAMES.items()
        )

    # Hot path: one disjointness test per span.
    def process(self, batch: list[SpanData]) -> list[SpanData]:
        if not self.config.enabled:
            return batch
        triggers = TRIGGER_KEYS
        for span in batch:
            if not triggers.isdisjoint(span.attributes):
                try:
                    self.normalise(span)
                except Exception:  # a span we cannot understand passes through as it is
                    pass
        if self.config.collapse_duplicates and len(batch) > 1:
            try:
                return collapse_duplicates(batch)
            except Exception:
                return batch
        return batch

    def normalise(self, span: SpanData) -> str | None:
        """Translate one span in place; returns the dialect it was marked with (None: nothing foreign)."""
        attrs = span.attributes
        consumed: list[str] = [key for key in attrs if key in TRIGGER_KEYS]
        dialects = {_KEY_DIALECT[key] for key in consumed}
        families: dict[str, list[str]] = {}
        for key in attrs:
            for prefix, dialect in _PREFIX_FAMILIES:
                if key.startswith(prefix):
                    families.setdefault(prefix, []).append(key)
                    dialects.add(dialect)
                    break
        if attrs.get(TELEMETRY_SDK_NAME) == "openlit":
            dialects.add(OPENLIT)
        if not dialects:
            return None

        wrote = False

        def fill(key: str, value: Any) -> None:
            nonlocal wrote
            if value is not None and key not in attrs:
                span.set(key, value)
                wrote = True

        for foreign, target in self._renames:
            if foreign in attrs:
                fill(target, attrs[foreign])

        # Provider.
        provider = (
            _provider(attrs.get(OI_PROVIDER), attrs.get(OI_SYSTEM))
            or _provider(attrs.get(OI_SYSTEM), None)
            or _provider(attrs.get(SYSTEM), None)
        )
        fill(semconv.PROVIDER_NAME, provider)

        # Operation.
        operation = _REQUEST_TYPES.get(str(attrs.get(OLL_REQUEST_TYPE, "")).lower())
        oi_kind = attrs.get(OI_SPAN_KIND)
        if operation is None and isinstance(oi_kind, str):
            kind = oi_kind.upper()
            if kind == "LLM":
                operation = "text_completion" if OI_PROMPTS_PREFIX in families else "chat"
            else:
                operation = _OI_KINDS.get(kind)
        fill(semconv.OPERATION_NAME, operation)

        # Request parameters from OpenInference's JSON.
        for key in (OI_INVOCATION_PARAMETERS, OI_EMBEDDING_INVOCATION_PARAMETERS):
            params = _json(attrs.get(key))
            if isinstance(params, dict):
                self._invocation_parameters(span, params, fill)

        # Models.
        model = attrs.get(OI_MODEL_NAME) or attrs.get(OI_EMBEDDING_MODEL_NAME)
        if isinstance(model, str) and model:
            fill(semconv.RESPONSE_MODEL, model)
            fill(semconv.REQUEST_MODEL, model)

        # Output type and stop sequences.
        response_format = attrs.get(LEGACY_OPENAI_RESPONSE_FORMAT)
        if isinstance(response_format, str):
            fill(semconv.OUTPUT_TYPE, _RESPONSE_FORMATS.get(response_format.lower()))
        fill(semconv.REQUEST_STOP_SEQUENCES, _string_list(attrs.get(OLL_STOP_SEQUENCES)))

        # Server address and port from OpenLLMetry's base URL (OpenLIT's gen_ai.endpoint is not a URL).
        api_base = attrs.get(OLL_API_BASE)
        if isinstance(api_base, str) and semconv.SERVER_ADDRESS not in attrs:
            try:
                url = urlsplit(api_base)
                port = url.port or {"https": 443, "http": 80}.get(url.scheme)
            except ValueError:
                url, port = None, None
            if url is not None and url.hostname:
                fill(semconv.SERVER_ADDRESS, url.hostname)
                fill(semconv.SERVER_PORT, port)

        # Messages.
        inputs = outputs = None
        if OLL_PROMPT_PREFIX in families:
            inputs = _messages(_indexed(attrs, families[OLL_PROMPT_PREFIX], OLL_PROMPT_PREFIX), "")
        elif OI_INPUT_PREFIX in families:
            inputs = _messages(_indexed(attrs, families[OI_INPUT_PREFIX], OI_INPUT_PREFIX), "message.")
        elif OI_PROMPTS_PREFIX in families:
            prompts = _indexed(attrs, families[OI_PROMPTS_PREFIX], OI_PROMPTS_PREFIX)
            inputs = [
                {"role": "user", "parts": [{"type": "text", "content": item["prompt.text"]}]}
                for _, item in prompts
                if isinstance(item.get("prompt.text"), str)
            ]
        if OLL_COMPLETION_PREFIX in families:
            outputs = _messages(_indexed(attrs, families[OLL_COMPLETION_PREFIX], OLL_COMPLETION_PREFIX), "")
        elif OI_OUTPUT_PREFIX in families:
            outputs = _messages(_indexed(attrs, families[OI_OUTPUT_PREFIX], OI_OUTPUT_PREFIX), "message.")
        finish_reasons = _finish_reasons(attrs, outputs)
        if outputs:
            single = finish_reasons[0] if len(finish_reasons) == 1 else None
            for index, message in enumerate(outputs):
                if "finish_reason" not in message:
                    reason = finish_reasons[index] if index < len(finish_reasons) else single
                    if reason:
                        message["finish_reason"] = reason
        if inputs:
            fill(semconv.INPUT_MESSAGES, json.dumps(inputs, ensure_ascii=False))
        if outputs:
            fill(semconv.OUTPUT_MESSAGES, json.dumps(outputs, ensure_ascii=False))
        if finish_reasons:
            fill(semconv.RESPONSE_FINISH_REASONS, finish_reasons)

        # Cost computed by another instrumentation.
        cost = attrs.get(OPENLIT_COST)
        if isinstance(cost, (int, float)) and not isinstance(cost, bool) and semconv.USAGE_COST_AMOUNT not in attrs:
            span.set(semconv.USAGE_COST_AMOUNT, float(cost))
            fill(semconv.USAGE_COST_CURRENCY, "USD")
            fill(semconv.USAGE_COST_SOURCE, COST_SOURCE_INSTRUMENTATION)

        # Time to first chunk (streams only; OpenLIT writes 0 or the duration otherwise).
        ttft = attrs.get(OPENLIT_TTFT)
        if (
            isinstance(ttft, (int, float))
            and not isinstance(ttft, bool)
            and ttft > 0
            and attrs.get(semconv.REQUEST_STREAM) is True
        ):
            fill(semconv.RESPONSE_TIME_TO_FIRST_CHUNK, float(ttft))

        # Totals only fill a missing count.
        total = _first_int(attrs, (OI_TOTAL_TOKENS, OLL_TOTAL_TOKENS, TOTAL_TOKENS, OPENLIT_TOTAL_TOKENS))
        if total is not None:
            input_tokens = _int(attrs.get(semconv.USAGE_INPUT_TOKENS))
            output_tokens = _int(attrs.get(semconv.USAGE_OUTPUT_TOKENS))
            if input_tokens is None and output_tokens is None:
                if attrs.get(semconv.OPERATION_NAME) == "embeddings":
                    fill(semconv.USAGE_INPUT_TOKENS, total)
            elif input_tokens is None and output_tokens is not None and total >= output_tokens:
                fill(semconv.USAGE_INPUT_TOKENS, total - output_tokens)
            elif (
                output_tokens is None
                and input_tokens is not None
                and total >= input_tokens
                and attrs.get(semconv.OPERATION_NAME) != "embeddings"
            ):
                fill(semconv.USAGE_OUTPUT_TOKENS, total - input_tokens)

        if not wrote and all(key == SYSTEM for key in consumed) and not families:
            return None  # gen_ai.system beside gen_ai.provider.name: a current span on the opt-in, not legacy
        dialect = next(d for d in _DIALECT_ORDER if d in dialects)
        if self.config.drop_originals:
            for key in consumed:
                if key not in KEPT_ORIGINALS:
                    span.pop(key)
            for keys in families.values():
                for key in keys:
                    span.pop(key)
        span.set(NORMALISED_FROM, dialect)
        return dialect

    @staticmethod
    def _invocation_parameters(span: SpanData, params: dict[str, Any], fill: Any) -> None:
        model = params.get("model")
        if isinstance(model, str) and model:
            fill(semconv.REQUEST_MODEL, model)
        for key, target in _INVOCATION_PARAMETERS.items():
            value = params.get(key)
            if value is None:
                continue
            if target == semconv.REQUEST_STOP_SEQUENCES:
                value = _string_list(value)
            elif target == semconv.REQUEST_ENCODING_FORMATS:
                value = [value] if isinstance(value, str) else _string_list(value)
            elif target == semconv.OUTPUT_TYPE:
                kind = value.get("type") if isinstance(value, dict) else value
                value = _RESPONSE_FORMATS.get(kind.lower()) if isinstance(kind, str) else None
            elif target == semconv.REQUEST_STREAM:
                value = value if isinstance(value, bool) else None
            elif isinstance(value, bool) or not isinstance(value, (int, float, str)):
                continue
            fill(target, value)


def build(config: Config | None = None) -> NormaliseStage:
    return NormaliseStage(config or Config())


# ---- helpers ---------------------------------------------------------------------------------


def _provider(value: Any, system: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    key = value.strip().lower()
    if key == "azure" and isinstance(system, str) and system.lower() not in ("openai", ""):
        return "azure.ai.inference"
    if key == "google" and isinstance(system, str) and system.lower() in ("vertexai", "vertex_ai"):
        return "gcp.vertex_ai"
    mapped = PROVIDER_VALUES.get(key)
    if mapped is None and isinstance(system, str):
        mapped = PROVIDER_VALUES.get(system.strip().lower())
    return mapped or key


def _json(value: Any) -> Any:
    if not isinstance(value, str):
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _first_int(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = _int(attrs.get(key))
        if value is not None:
            return value
    return None


def _string_list(value: Any) -> list[str] | None:
    if isinstance(value, str):
        parsed = _json(value) if value.startswith("[") else None
        return [str(v) for v in parsed] if isinstance(parsed, list) else [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _indexed(attrs: Mapping[str, Any], keys: list[str], prefix: str) -> list[tuple[int, dict[str, Any]]]:
    """``prefix + "N.rest"`` keys grouped by N (in order): ``[(N, {"rest": value})]``."""
    groups: dict[int, dict[str, Any]] = {}
    cut = len(prefix)
    for key in keys:
        index, _, rest = key[cut:].partition(".")
        if index.isdigit() and rest:
            groups.setdefault(int(index), {})[rest] = attrs[key]
    return sorted(groups.items())


def _messages(groups: list[tuple[int, dict[str, Any]]], inner: str) -> list[dict[str, Any]]:
    """Flattened messages (OpenLLMetry ``N.role``, OpenInference ``N.message.role``) in the conventions' shape."""
    out: list[dict[str, Any]] = []
    for _, fields_ in groups:
        role = fields_.get(inner + "role")
        message: dict[str, Any] = {"role": role if isinstance(role, str) and role else "user", "parts": []}
        parts: list[dict[str, Any]] = message["parts"]
        content = fields_.get(inner + "content")
        tool_call_id = fields_.get(inner + "tool_call_id")
        if message["role"] == "tool" and content is not None:
            part: dict[str, Any] = {"type": "tool_call_response", "response": content}
            if tool_call_id:
                part["id"] = tool_call_id
            parts.append(part)
        elif isinstance(content, str) and content:
            parsed = _json(content) if content.startswith("[") else None
            if isinstance(parsed, list) and parsed and all(isinstance(p, dict) for p in parsed):
                parts.extend(_content_parts(parsed))
            else:
                parts.append({"type": "text", "content": content})
        # OpenInference multi-part contents: message.contents.M.message_content.type / text
        contents: dict[int, dict[str, Any]] = {}
        calls: dict[int, dict[str, Any]] = {}
        for key, value in fields_.items():
            if key.startswith(inner + "contents."):
                index, _, rest = key[len(inner) + 9 :].partition(".")
                if index.isdigit():
                    contents.setdefault(int(index), {})[rest] = value
            elif key.startswith(inner + "tool_calls."):
                index, _, rest = key[len(inner) + 11 :].partition(".")
                if index.isdigit():
                    calls.setdefault(int(index), {})[rest.removeprefix("tool_call.")] = value
        for _, item in sorted(contents.items()):
            text = item.get("message_content.text")
            if isinstance(text, str):
                parts.append({"type": "text", "content": text})
        for _, call in sorted(calls.items()):
            name = call.get("function.name", call.get("name"))
            if not name:
                continue
            arguments = call.get("function.arguments", call.get("arguments"))
            parsed_args = _json(arguments)
            part = {"type": "tool_call", "name": name}
            part["arguments"] = parsed_args if parsed_args is not None else arguments
            if call.get("id"):
                part["id"] = call["id"]
            parts.append(part)
        reason = fields_.get("finish_reason")
        if isinstance(reason, str) and reason:
            message["finish_reason"] = reason
        out.append(message)
    return out


def _content_parts(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type")
        if kind in ("text", "input_text", "output_text") and isinstance(item.get("text"), str):
            parts.append({"type": "text", "content": item["text"]})
        elif kind == "image_url":
            url = item.get("image_url")
            url = url.get("url") if isinstance(url, dict) else url
            parts.append({"type": "uri", "modality": "image", "uri": url})
        else:
            parts.append({"type": str(kind or "unknown"), "content": item})
    return parts


def _finish_reasons(attrs: Mapping[str, Any], outputs: list[dict[str, Any]] | None) -> list[str]:
    from_messages = [m["finish_reason"] for m in outputs or () if m.get("finish_reason")]
    if from_messages:
        return from_messages
    for key in (OI_FINISH_REASON, OLL_FINISH_REASON, OLL_LLM_FINISH_REASON):
        value = attrs.get(key)
        if isinstance(value, str) and value:
            return [value]
        listed = _string_list(value) if value is not None else None
        if listed:
            return listed
    return []


# ---- collapsing stacked wrappers -------------------------------------------------------------


def _models(span: SpanData) -> set[str]:
    attrs = span.attributes
    models = (attrs.get(semconv.REQUEST_MODEL), attrs.get(semconv.RESPONSE_MODEL))
    return {m for m in models if isinstance(m, str) and m}


def _duplicates(parent: SpanData, child: SpanData) -> bool:
    if parent.trace_id != child.trace_id:
        return False
    if parent.attributes.get(semconv.OPERATION_NAME) != child.attributes.get(semconv.OPERATION_NAME):
        return False
    if SPAN_KIND_CLIENT not in (parent.kind, child.kind):
        return False
    if not (child.start_ns < parent.end_ns and parent.start_ns < child.end_ns):
        return False
    return not _models(parent).isdisjoint(_models(child))


def _may_nest(inference: list[SpanData]) -> bool:
    """Whether an inference span's parent id is an inference span's id (of any trace): without such a
    pair nothing collapses, and the usual batch (inference spans under HTTP or agent spans) is done after
    one set test instead of a keyed lookup per span."""
    try:
        return not {span.span_id for span in inference}.isdisjoint([span.parent_span_id for span in inference])
    except TypeError:  # an unhashable id: the full pass decides, as it always has
        return True


def collapse_duplicates(batch: list[SpanData]) -> list[SpanData]:
    """Drop the inner or outer span of each stacked-wrapper pair in ``batch`` (see the module docstring)."""
    inference = [span for span in batch if span.attributes.get(semconv.OPERATION_NAME) in INFERENCE_OPERATIONS]
    if len(inference) < 2 or not _may_nest(inference):
        return batch
    by_id: dict[tuple[int, int], SpanData] = {}
    nested = False
    for span in inference:
        by_id[(span.trace_id, span.span_id)] = span
        nested = nested or span.parent_span_id is not None
    if len(by_id) < 2 or not nested:
        return batch
    replaced: dict[tuple[int, int], SpanData] = {}  # dropped span -> the span that absorbed it

    def resolve(key: tuple[int, int]) -> SpanData | None:
        span = by_id.get(key)
        seen = set()
        while key in replaced and key not in seen:  # malformed input (repeated ids) may chain in a loop
            seen.add(key)
            span = replaced[key]
            key = (span.trace_id, span.span_id)
        return span

    for span in batch:
        child_key = (span.trace_id, span.span_id)
        if child_key not in by_id or child_key in replaced or span.parent_span_id is None or span.is_remote_parent:
            continue
        parent = resolve((span.trace_id, span.parent_span_id))
        child = span
        if parent is None or parent is child or not _duplicates(parent, child):
            continue
        if (parent.trace_id, parent.span_id) == child_key:  # two spans sharing one id: not a wrapper pair
            continue
        parent_native = NORMALISED_FROM not in parent.attributes
        child_native = NORMALISED_FROM not in child.attributes
        if child_native and not parent_native:
            kept, dropped = child, parent
            child.parent_span_id = parent.parent_span_id
            child.is_remote_parent = parent.is_remote_parent
            child.changed = True
        else:
            kept, dropped = parent, child
        for key, value in dropped.attributes.items():
            if key not in kept.attributes and key != NORMALISED_FROM and key != COLLAPSED_FROM:
                kept.set(key, value)
        collapsed = list(kept.attributes.get(COLLAPSED_FROM, ()))
        collapsed.extend(dropped.attributes.get(COLLAPSED_FROM, ()))
        collapsed.append(dropped.scope_name or dropped.name)
        kept.set(COLLAPSED_FROM, collapsed)
        replaced[(dropped.trace_id, dropped.span_id)] = kept
    if not replaced:
        return batch
    out: list[SpanData] = []
    for span in batch:
        if (span.trace_id, span.span_id) in replaced:
            continue
        if span.parent_span_id is not None:
            parent_key = (span.trace_id, span.parent_span_id)
            if parent_key in replaced:
                new_parent = resolve(parent_key)
                if new_parent is not None and new_parent is not span:
                    span.parent_span_id = new_parent.span_id
                    span.changed = True
        out.append(span)
    return out
