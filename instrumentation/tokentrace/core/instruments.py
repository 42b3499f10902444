"""The GenAI metric instruments, created one way for the instrumentation and the processor.

Both record the same metrics (the processor for spans our instrumentation did not measure), so a
backend sees one set of names, units and bucket boundaries whichever produced a point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.metrics import Counter, Histogram, Meter

from tokentrace.core import semconv

CURRENCY = "USD"


@dataclass(frozen=True)
class GenAIInstruments:
    duration: Histogram
    tokens: Histogram
    time_to_first_chunk: Histogram
    time_per_output_chunk: Histogram
    cost: Histogram


def create_instruments(meter: Meter) -> GenAIInstruments:
    return GenAIInstruments(
        duration=meter.create_histogram(
            semconv.METRIC_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=semconv.DURATION_BUCKETS,
        ),
        tokens=meter.create_histogram(
            semconv.METRIC_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=semconv.TOKEN_BUCKETS,
        ),
        time_to_first_chunk=meter.create_histogram(
            semconv.METRIC_TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time to receive the first chunk of a streamed response.",
            explicit_bucket_boundaries_advisory=semconv.DURATION_BUCKETS,
        ),
        time_per_output_chunk=meter.create_histogram(
            semconv.METRIC_TIME_PER_OUTPUT_CHUNK,
            unit="s",
            description="Time per output chunk, recorded for each chunk received after the first one.",
            explicit_bucket_boundaries_advisory=semconv.TIME_PER_CHUNK_BUCKETS,
        ),
        cost=meter.create_histogram(
            semconv.METRIC_COST,
            unit=CURRENCY,
            description="Cost of GenAI operations in US dollars.",
            explicit_bucket_boundaries_advisory=semconv.COST_BUCKETS,
        ),
    )


@dataclass(frozen=True)
class HealthInstruments:
    """Provider health: what the SDK's retries hide, and how close the rate limits are."""

    attempts: Counter
    retry_wait: Histogram
    ratelimit_remaining: Any
    ratelimit_limit: Any
    ratelimit_headroom: Any
    output_tokens_per_second: Histogram


def create_health_instruments(meter: Meter) -> HealthInstruments:
    return HealthInstruments(
        attempts=meter.create_counter(
            semconv.METRIC_PROVIDER_ATTEMPTS,
            unit="{attempt}",
            description="HTTP attempts SDKs made for LLM calls, by provider, model, status and error type.",
        ),
        retry_wait=meter.create_histogram(
            semconv.METRIC_PROVIDER_RETRY_WAIT,
            unit="s",
            description="Time an LLM call spent waiting to retry.",
            explicit_bucket_boundaries_advisory=semconv.DURATION_BUCKETS,
        ),
        ratelimit_remaining=meter.create_gauge(
            semconv.METRIC_RATELIMIT_REMAINING,
            unit="1",
            description="Rate-limit units left in the window, from the provider's latest response headers.",
        ),
        ratelimit_limit=meter.create_gauge(
            semconv.METRIC_RATELIMIT_LIMIT,
            unit="1",
            description="Rate-limit size of the window.",
        ),
        ratelimit_headroom=meter.create_gauge(
            semconv.METRIC_RATELIMIT_HEADROOM,
            unit="1",
            description="Share of the rate limit still available (0-1).",
        ),
        output_tokens_per_second=meter.create_histogram(
            semconv.METRIC_STREAM_TOKENS_PER_SECOND,
            unit="{token}/s",
            description="Output tokens per second of streamed responses, first chunk to last.",
            explicit_bucket_boundaries_advisory=semconv.TOKENS_PER_SECOND_BUCKETS,
        ),
    )
