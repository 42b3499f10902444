"""Every attribute and metric name tokentrace emits, in one table.

Names change as the GenAI conventions evolve; keeping them here means following a new version is
a switch (``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``) rather than a hunt through
provider modules. The default set is the last released one (semantic-conventions v1.41).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

# Released GenAI attribute names (v1.41).
OPERATION_NAME = "gen_ai.operation.name"
PROVIDER_NAME = "gen_ai.provider.name"
SYSTEM = "gen_ai.system"  # deprecated; emitted only on opt-in
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_TOP_P = "gen_ai.request.top_p"
REQUEST_TOP_K = "gen_ai.request.top_k"
REQUEST_FREQUENCY_PENALTY = "gen_ai.request.frequency_penalty"
REQUEST_PRESENCE_PENALTY = "gen_ai.request.presence_penalty"
REQUEST_STOP_SEQUENCES = "gen_ai.request.stop_sequences"
REQUEST_SEED = "gen_ai.request.seed"
REQUEST_CHOICE_COUNT = "gen_ai.request.choice.count"
REQUEST_ENCODING_FORMATS = "gen_ai.request.encoding_formats"
REQUEST_STREAM = "gen_ai.request.stream"
OUTPUT_TYPE = "gen_ai.output.type"
CONVERSATION_ID = "gen_ai.conversation.id"
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
EMBEDDINGS_DIMENSION_COUNT = "gen_ai.embeddings.dimension.count"
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
TOOL_DEFINITIONS = "gen_ai.tool.definitions"
TOKEN_TYPE = "gen_ai.token.type"

SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"

# OpenAI-specific attributes of the conventions.
OPENAI_API_TYPE = "openai.api.type"
OPENAI_REQUEST_SERVICE_TIER = "openai.request.service_tier"
OPENAI_RESPONSE_SERVICE_TIER = "openai.response.service_tier"
OPENAI_RESPONSE_SYSTEM_FINGERPRINT = "openai.response.system_fingerprint"

# AWS attributes of the conventions (aws registry), set by the Bedrock instrumentation.
AWS_BEDROCK_GUARDRAIL_ID = "aws.bedrock.guardrail.id"
AWS_REQUEST_ID = "aws.request_id"

# Cost, in the shape of the open semantic-convention proposal.
USAGE_COST_AMOUNT = "gen_ai.usage.cost.amount"
USAGE_COST_CURRENCY = "gen_ai.usage.cost.currency"
USAGE_COST_SOURCE = "gen_ai.usage.cost.source"

# tokentrace's own attributes.
USAGE_SOURCE = "tokentrace.usage.source"
COST_INPUT = "tokentrace.cost.input"
COST_OUTPUT = "tokentrace.cost.output"
COST_PRICING_VERSION = "tokentrace.cost.pricing_version"
COST_PRICING_MODEL = "tokentrace.cost.pricing_model"
COST_UNAVAILABLE_REASON = "tokentrace.cost.unavailable_reason"
STREAM_CHUNKS = "tokentrace.stream.chunks"
STREAM_END_REASON = "tokentrace.stream.end_reason"
ENRICHED_FOREIGN_SPAN = "tokentrace.enriched"
# With a provider-reported cost (gen_ai.usage.cost.source = "provider"), genai-prices' own figure for
# the same usage, so the two can be compared; absent when genai-prices has no price for the model.
COST_LOCAL_AMOUNT = "tokentrace.cost.local_amount"
# The instrumentation scope of an inner SDK call (e.g. the openai SDK under LiteLLM) whose
# provider-level detail (response model, id, usage, server) was merged into this router span.
MERGED_FROM = "tokentrace.merged_from"

# Cohere bills "billed units", which can differ from the tokens the model processed (usage.tokens):
# the billed counts are kept as their own attributes and are what the cost is computed from.
COHERE_BILLED_INPUT_TOKENS = "tokentrace.cohere.billed_units.input_tokens"
COHERE_BILLED_OUTPUT_TOKENS = "tokentrace.cohere.billed_units.output_tokens"
COHERE_BILLED_SEARCH_UNITS = "tokentrace.cohere.billed_units.search_units"
COHERE_BILLED_CLASSIFICATIONS = "tokentrace.cohere.billed_units.classifications"

# Ollama's server-side timings of a call (seconds; Ollama reports nanoseconds): where the time of a
# local model went (loading the model, reading the prompt, generating).
OLLAMA_TOTAL_DURATION = "tokentrace.ollama.total_duration"
OLLAMA_LOAD_DURATION = "tokentrace.ollama.load_duration"
OLLAMA_PROMPT_EVAL_DURATION = "tokentrace.ollama.prompt_eval_duration"
OLLAMA_EVAL_DURATION = "tokentrace.ollama.eval_duration"

# LiteLLM (a router): what LiteLLM itself knows about a call besides the provider's response.
LITELLM_PROVIDER = "tokentrace.litellm.provider"  # LiteLLM's custom_llm_provider ("anthropic", "azure", ...)
LITELLM_API_BASE = "tokentrace.litellm.api_base"  # the endpoint LiteLLM called
LITELLM_MODEL_GROUP = "tokentrace.litellm.model_group"  # the Router's model group (metadata.model_group)
LITELLM_MODEL_ID = "tokentrace.litellm.model_id"  # the Router deployment's model_info.id
LITELLM_CALL_ID = "tokentrace.litellm.call_id"  # litellm_call_id, to join LiteLLM's own logs
LITELLM_CACHE_HIT = "tokentrace.litellm.cache_hit"  # answered from LiteLLM's cache

# Values.
USAGE_SOURCE_REPORTED = "reported"
USAGE_SOURCE_ESTIMATED = "estimated"
COST_SOURCE_LOCAL = "local"
COST_SOURCE_PRICE_FILE = "price_file"
COST_SOURCE_PROVIDER = "provider"  # the provider or router library reported the call's cost itself
# tokentrace.cost.unavailable_reason for a self-hosted model server (Ollama): there is no list
# price to look up; a cost comes only from the user's price file (TOKENTRACE_PRICES_FILE).
COST_UNAVAILABLE_LOCAL_MODEL = "no_list_price_local_model"
TOKEN_TYPE_INPUT = "input"
TOKEN_TYPE_OUTPUT = "output"

# Metric names.
METRIC_TOKEN_USAGE = "gen_ai.client.token.usage"
METRIC_OPERATION_DURATION = "gen_ai.client.operation.duration"
METRIC_TIME_TO_FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"
METRIC_TIME_PER_OUTPUT_CHUNK = "gen_ai.client.operation.time_per_output_chunk"
METRIC_COST = "tokentrace.gen_ai.client.cost"
# Provider health (core/attempts.py): HTTP attempts behind each call, retry waits, rate-limit headroom.
METRIC_PROVIDER_ATTEMPTS = "tokentrace.provider.attempts"
METRIC_PROVIDER_RETRY_WAIT = "tokentrace.provider.retry_wait"
METRIC_RATELIMIT_REMAINING = "tokentrace.ratelimit.remaining"
METRIC_RATELIMIT_LIMIT = "tokentrace.ratelimit.limit"
METRIC_RATELIMIT_HEADROOM = "tokentrace.ratelimit.headroom"
METRIC_STREAM_TOKENS_PER_SECOND = "tokentrace.stream.output_tokens_per_second"
HTTP_STATUS_CLASS = "tokentrace.http.status_class"  # 2xx, 4xx, 5xx, or none (no response)
RATELIMIT_BUCKET = "tokentrace.ratelimit.bucket"  # requests, tokens, input_tokens, ...

# Bucket boundaries advised by the conventions.
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
)
TIME_PER_CHUNK_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
TOKENS_PER_SECOND_BUCKETS = (1, 5, 10, 20, 40, 60, 80, 100, 150, 200, 300, 500, 1000)
COST_BUCKETS = (0.00001, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)

OPT_IN_ENV = "OTEL_SEMCONV_STABILITY_OPT_IN"
LATEST_EXPERIMENTAL = "gen_ai_latest_experimental"


@dataclass(frozen=True)
class VersionedNames:
    """The names that differ between the released conventions and the development ones."""

    usage_cache_creation_input_tokens: str = "gen_ai.usage.cache_creation.input_tokens"
    latest_experimental: bool = False


RELEASED = VersionedNames()
DEVELOPMENT = replace(
    RELEASED,
    usage_cache_creation_input_tokens="gen_ai.usage.cache_write.input_tokens",
    latest_experimental=True,
)


def names_from_environment(environ: dict[str, str] | None = None) -> VersionedNames:
    """Pick the name set the way every OpenTelemetry instrumentation reads the opt-in variable."""
    value = (environ if environ is not None else os.environ).get(OPT_IN_ENV, "")
    options = {part.strip().lower() for part in value.split(",")}
    return DEVELOPMENT if LATEST_EXPERIMENTAL in options else RELEASED


# --- tokentrace span processor: flags, tail sampling, trace roll-ups -------------------------
# (the flagged policy reads FLAGS, FLAG_PREFIX and PII_DETECTED, defined with the stages below)
SAMPLING_THRESHOLD = "tokentrace.sampling.threshold"  # OTEP 235 ``th`` (hex) the span was kept with
SAMPLING_REASON = "tokentrace.sampling.reason"  # the policy that kept the trace
TRACE_COST_AMOUNT = "tokentrace.trace.cost.amount"
TRACE_USAGE_INPUT_TOKENS = "tokentrace.trace.usage.input_tokens"
TRACE_USAGE_OUTPUT_TOKENS = "tokentrace.trace.usage.output_tokens"
TRACE_LLM_CALLS = "tokentrace.trace.llm_calls"
METRIC_SAMPLING_TRACES = "tokentrace.sampling.traces"
METRIC_SAMPLING_OVERFLOW = "tokentrace.sampling.overflow"
METRIC_SAMPLING_LATE_SPANS = "tokentrace.sampling.late_spans"
SAMPLING_DECISION = "decision"
# span_metrics' grouped metrics (by provider, model, operation, template, tenant, error type)
METRIC_LLM_REQUESTS = "tokentrace.llm.requests"
METRIC_LLM_ERRORS = "tokentrace.llm.errors"
METRIC_LLM_DURATION = "tokentrace.llm.duration"
METRIC_LLM_TIME_TO_FIRST_CHUNK = "tokentrace.llm.time_to_first_chunk"
METRIC_LLM_TOKENS = "tokentrace.llm.tokens"
METRIC_LLM_COST = "tokentrace.llm.cost"
METRIC_LLM_SERIES_OVERFLOW = "tokentrace.llm.series_overflow"  # attribute of METRIC_SAMPLING_TRACES: kept | dropped


# --------------------------------------------------------------------------------------------------
# Span-processor stages (collector_processor/tokentrace/processor/stages): enrich, flags, redact.
# --------------------------------------------------------------------------------------------------

# enrich
PROMPT_FINGERPRINT = "tokentrace.prompt.fingerprint"
PROMPT_FINGERPRINT_SOURCE = "tokentrace.prompt.fingerprint_source"  # "content" or "metadata"
ATTRIBUTION_TENANT = "tokentrace.tenant"
ATTRIBUTION_USER = "tokentrace.user"
ATTRIBUTION_FEATURE = "tokentrace.feature"
FINGERPRINT_SOURCE_CONTENT = "content"
FINGERPRINT_SOURCE_METADATA = "metadata"

# flags: ``tokentrace.flag.<name>`` = true for each raised flag, and all names in ``tokentrace.flags``
FLAGS = "tokentrace.flags"
FLAG_PREFIX = "tokentrace.flag."
FLAG_EMPTY = "empty"
FLAG_TOO_SHORT = "too_short"
FLAG_REFUSAL = "refusal"
FLAG_TRUNCATED = "truncated"
FLAG_BOILERPLATE = "boilerplate"
FLAG_TOOL_ERROR = "tool_error"
FLAG_PII = "pii"

# redact
PII_DETECTED = "tokentrace.pii.detected"
PII_TYPES = "tokentrace.pii.types"
