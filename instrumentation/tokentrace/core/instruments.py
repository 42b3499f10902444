"""The GenAI metric instruments, created one way for the instrumentation and the processor.

Both record the same metrics (the processor for spans our instrumentation did not measure), so a
backend sees one set of names, units and bucket boundaries whichever produced a point.
"""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.metrics import Histogram, Meter

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
            semconv.METRIC_OPERATION_DURATION, unit="s", description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=semconv.DURATION_BUCKETS,
        ),
        tokens=meter.create_histogram(
            semconv.METRIC_TOKEN_USAGE, unit="{token}", description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=semconv.TOKEN_BUCKETS,
        ),
        time_to_first_chunk=meter.create_histogram(
            semconv.METRIC_TIME_TO_FIRST_CHUNK, unit="s",
            description="Time to receive the first chunk of a streamed response.",
            explicit_bucket_boundaries_advisory=semconv.DURATION_BUCKETS,
        ),
        time_per_output_chunk=meter.create_histogram(
            semconv.METRIC_TIME_PER_OUTPUT_CHUNK, unit="s",
            description="Time per output chunk, recorded for each chunk received after the first one.",
            explicit_bucket_boundaries_advisory=semconv.TIME_PER_CHUNK_BUCKETS,
        ),
        cost=meter.create_histogram(
            semconv.METRIC_COST, unit=CURRENCY, description="Cost of GenAI operations in US dollars.",
            explicit_bucket_boundaries_advisory=semconv.COST_BUCKETS,
        ),
    )
