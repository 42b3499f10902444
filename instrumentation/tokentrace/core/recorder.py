"""The GenAI call recorder: the one place a call becomes a span, metrics, cost and content.

Provider modules describe a call (:class:`~tokentrace.core.call.GenAICall`); the recorder starts
the span with the attributes samplers need, and at the end, exactly once, fills usage (reported or
estimated), cost, content and timing, records the metrics and ends the span. Every step is guarded:
a failure here is logged and the application's result is untouched.
"""

from __future__ import annotations

import json
import time
from typing import Any

from opentelemetry import trace
from opentelemetry.metrics import MeterProvider, get_meter
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider

from tokentrace.core import semconv
from tokentrace.core.attempts import API_KEY_ALIAS, AttemptSummary, describe_attempts, status_class
from tokentrace.core.background import background
from tokentrace.core.call import GenAICall
from tokentrace.core.instruments import create_health_instruments, create_instruments
from tokentrace.core.pricing import CATALOGUE_MISSES, CURRENCY, Cost, PriceBook
from tokentrace.core.safety import report, swallow
from tokentrace.core.settings import Settings
from tokentrace.core.tokens import TokenEstimator, shared_estimator
from tokentrace.version import __version__

SCHEMA_URL = "https://opentelemetry.io/schemas/1.41.0"
CONTENT_EVENT_NAME = "gen_ai.client.inference.operation.details"


def error_type_of(error: BaseException) -> str:
    """A low-cardinality ``error.type``: the exception's fully qualified class name."""
    cls = type(error)
    module = cls.__module__
    if module in ("builtins", "") or module is None:
        return cls.__qualname__
    # openai._exceptions.RateLimitError is exported as openai.RateLimitError.
    top = module.split(".", 1)[0]
    return f"{top}.{cls.__qualname__}" if module.startswith(f"{top}._") else f"{module}.{cls.__qualname__}"


class Recorder:
    """Turns :class:`GenAICall` objects into telemetry; one per instrumented library."""

    def __init__(
        self,
        scope: str,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        logger_provider: Any | None = None,
        settings: Settings | None = None,
        price_book: PriceBook | None = None,
        estimator: TokenEstimator | None = None,
    ) -> None:
        self.settings = settings or Settings.from_environment()
        self.scope = scope
        self.tracer = trace.get_tracer(scope, __version__, tracer_provider, schema_url=SCHEMA_URL)
        meter = get_meter(scope, __version__, meter_provider, schema_url=SCHEMA_URL)
        instruments = create_instruments(meter)
        self._health = create_health_instruments(meter)
        self._duration = instruments.duration
        self._tokens = instruments.tokens
        self._ttfc = instruments.time_to_first_chunk
        self._per_chunk = instruments.time_per_output_chunk
        self._cost = instruments.cost
        self.prices = price_book if price_book is not None else PriceBook(self.settings.prices_file)
        self.estimator = estimator if estimator is not None else shared_estimator
        self._event_logger = None
        if self.settings.capture_content.on_event:
            from opentelemetry._logs import get_logger

            self._event_logger = get_logger(scope, __version__, logger_provider, schema_url=SCHEMA_URL)

    # -- start --------------------------------------------------------------------------------

    def start(self, call: GenAICall) -> None:
        """Start the call's span with every attribute a head sampler may need."""
        attributes: dict[str, Any] = {
            semconv.OPERATION_NAME: call.operation,
            semconv.PROVIDER_NAME: call.provider,
        }
        if self.settings.emit_legacy_system:
            attributes[semconv.SYSTEM] = call.provider
        if call.request_model:
            attributes[semconv.REQUEST_MODEL] = call.request_model
        if call.server_address:
            attributes[semconv.SERVER_ADDRESS] = call.server_address
            if call.server_port is not None:
                attributes[semconv.SERVER_PORT] = call.server_port
        attributes.update(call.start_attributes)
        name = f"{call.operation} {call.request_model}" if call.request_model else call.operation
        call.span = self.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)

    def adopt(self, call: GenAICall, span: Any) -> None:
        """Record onto a span another instrumentation already opened for this very call."""
        call.span = span
        call.owns_span = False
        with swallow("marking an adopted span"):
            span.set_attribute(semconv.ENRICHED_FOREIGN_SPAN, True)

    # -- end ----------------------------------------------------------------------------------

    def finish(self, call: GenAICall, error: BaseException | None = None, end_reason: str | None = None) -> None:
        """End the call once; later calls (other exit paths of a stream) are no-ops.

        Each step is its own ``try``: a failure in one (say, pricing) still lets the others run and
        the span end. Plain ``try`` blocks rather than a context manager keep this path cheap.
        """
        outer = call.merge_into
        if outer is not None:  # an inner call of a router library: its detail goes to the outer call
            if call.claim_end() and error is None:
                with swallow("merging into the outer call"):
                    self._merge(call, outer)
            return
        if call.span is None or not call.claim_end():
            return
        ended_at = time.perf_counter()
        span = call.span
        try:
            if error is not None and call.error_type is None:
                call.error_type = error_type_of(error)
            if call.before_end is not None:
                try:
                    call.before_end()
                except Exception:
                    report("finishing stream accumulation")
            try:
                self._fill_usage(call)
            except Exception:
                report("estimating tokens")
            cost = None
            try:
                cost = self._price(call)
            except Exception:
                report("pricing")
            try:
                self._set_attributes(call, span, cost, end_reason, ended_at)
            except Exception:
                report("setting response attributes")
            attempts = None
            if call.attempts:
                with swallow("recording HTTP attempts"):
                    attempts = describe_attempts(call.attempts)
                    self._record_attempts(attempts, span)
            if self.settings.capture_content.enabled:
                with swallow("capturing content"):
                    self._capture_content(call, span)
            if error is not None:
                with swallow("recording the error"):
                    span.set_status(Status(StatusCode.ERROR, str(error)[:512] or call.error_type))
                    span.set_attribute(semconv.ERROR_TYPE, call.error_type or "_OTHER")
            try:
                if self.settings.metrics_in_background:
                    background.submit(self._record_metrics, call, cost, ended_at, attempts)
                else:
                    self._record_metrics(call, cost, ended_at, attempts)
            except Exception:
                report("recording metrics")
        finally:
            if call.owns_span:
                self._end_span(span)

    def _merge(self, inner: GenAICall, outer: GenAICall) -> None:
        """Give the router's outer call what only the inner SDK call knows, exactly.

        The inner call saw the provider's own response (dated model name, response id, usage with
        cache details, the server it reached); the outer call records it on its one span, with one
        set of metrics. A failed attempt merges nothing (the router retries or raises itself), and a
        call that ends after the outer one (a stream the router dropped) is too late to matter.
        """
        if outer.ended:
            return
        if inner.response_model:
            outer.response_model = inner.response_model
        if inner.response_id:
            outer.response_id = inner.response_id
        if inner.finish_reasons:
            outer.finish_reasons = list(inner.finish_reasons)
        if inner.usage.known:
            outer.usage = inner.usage
        if inner.billed_usage is not None:
            outer.billed_usage = inner.billed_usage
        if inner.reported_cost is not None:
            outer.reported_cost = inner.reported_cost
        if inner.price_model is not None:
            outer.price_model = inner.price_model
        if inner.no_list_price_reason is not None:
            outer.no_list_price_reason = inner.no_list_price_reason
        attributes = outer.attributes
        if inner.server_address:
            outer.server_address, outer.server_port = inner.server_address, inner.server_port
            attributes[semconv.SERVER_ADDRESS] = inner.server_address
            if inner.server_port is not None:
                attributes[semconv.SERVER_PORT] = inner.server_port
        for key, value in inner.start_attributes.items():
            if key not in outer.start_attributes:
                attributes.setdefault(key, value)
        attributes.update(inner.attributes)
        attributes[semconv.MERGED_FROM] = self.scope

    def _end_span(self, span: Any) -> None:
        try:
            span.end()
        except Exception:
            report("ending the span")

    def _fill_usage(self, call: GenAICall) -> None:
        usage = call.usage
        if usage.known or not self.settings.estimate_tokens:
            return
        if call.error_type is not None and not call.output_text:
            return  # a call that failed before producing anything was not billed for its prompt
        model = call.response_model or call.request_model
        estimated = False
        if call.output_text:
            usage.output_tokens = self.estimator.count_text(model, call.output_text)
            estimated = usage.output_tokens is not None
        if call.input_text is not None:
            texts = call.input_text()
            if call.operation == "chat":
                usage.input_tokens = self.estimator.count_messages(model, texts)
            else:
                usage.input_tokens = self.estimator.count_text(model, texts)
            estimated = estimated or usage.input_tokens is not None
        if estimated:
            usage.source = semconv.USAGE_SOURCE_ESTIMATED

    def _price(self, call: GenAICall) -> Cost | None:
        model = call.price_model or call.response_model or call.request_model
        billed = call.billed_usage
        result = self.prices.cost(call.provider, model, billed if billed is not None and billed.known else call.usage)
        if call.reported_cost is not None:
            return self._reported_cost(call, result)
        if isinstance(result, str):
            if call.no_list_price_reason is not None and result in CATALOGUE_MISSES:
                result = call.no_list_price_reason
            call.attributes[semconv.COST_UNAVAILABLE_REASON] = result
            return None
        return result

    @staticmethod
    def _reported_cost(call: GenAICall, local: Cost | str) -> Cost:
        """The provider's own figure is the cost (it is what was billed or budgeted); genai-prices'
        figure for the same usage is kept as ``tokentrace.cost.local_amount``. The provider gives no
        input/output split, so none is recorded."""
        known = isinstance(local, Cost)
        if known:
            call.attributes[semconv.COST_LOCAL_AMOUNT] = local.total
        return Cost(
            total=float(call.reported_cost),  # type: ignore[arg-type]
            input=None,
            output=None,
            source=semconv.COST_SOURCE_PROVIDER,
            pricing_model=local.pricing_model if known else (call.response_model or call.request_model or ""),
            pricing_version=local.pricing_version if known else "",
        )

    def _set_attributes(
        self, call: GenAICall, span: Any, cost: Cost | None, end_reason: str | None, ended_at: float
    ) -> None:
        attributes = call.attributes
        if call.response_model:
            attributes[semconv.RESPONSE_MODEL] = call.response_model
        if call.response_id:
            attributes[semconv.RESPONSE_ID] = call.response_id
        if call.finish_reasons:
            attributes[semconv.RESPONSE_FINISH_REASONS] = call.finish_reasons
        usage = call.usage
        if usage.input_tokens is not None:
            attributes[semconv.USAGE_INPUT_TOKENS] = usage.input_tokens
        if usage.output_tokens is not None:
            attributes[semconv.USAGE_OUTPUT_TOKENS] = usage.output_tokens
        if usage.cache_read_input_tokens is not None:
            attributes[semconv.USAGE_CACHE_READ_INPUT_TOKENS] = usage.cache_read_input_tokens
        if usage.cache_creation_input_tokens is not None:
            attributes[self.settings.names.usage_cache_creation_input_tokens] = usage.cache_creation_input_tokens
        if usage.reasoning_output_tokens is not None:
            attributes[semconv.USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning_output_tokens
        if usage.known:
            attributes[semconv.USAGE_SOURCE] = usage.source
        if cost is not None:
            attributes[semconv.USAGE_COST_AMOUNT] = cost.total
            attributes[semconv.USAGE_COST_CURRENCY] = CURRENCY
            attributes[semconv.USAGE_COST_SOURCE] = cost.source
            if cost.input is not None:  # None: a provider-reported total without a split
                attributes[semconv.COST_INPUT] = cost.input
                attributes[semconv.COST_OUTPUT] = cost.output
            attributes[semconv.COST_PRICING_MODEL] = cost.pricing_model
            if cost.pricing_version:
                attributes[semconv.COST_PRICING_VERSION] = cost.pricing_version
        if call.stream:
            attributes[semconv.STREAM_CHUNKS] = call.chunk_count
            if call.first_chunk_at is not None:
                attributes[semconv.RESPONSE_TIME_TO_FIRST_CHUNK] = call.first_chunk_at - call.started_at
            if end_reason:
                attributes[semconv.STREAM_END_REASON] = end_reason
        span.set_attributes(attributes)

    def _capture_content(self, call: GenAICall, span: Any) -> None:
        mode = self.settings.capture_content
        limit = self.settings.content_max_length
        fields: dict[str, Any] = {}
        if call.system_instructions is not None:
            value = call.system_instructions()
            if value:
                fields[semconv.SYSTEM_INSTRUCTIONS] = value
        if call.input_messages is not None:
            fields[semconv.INPUT_MESSAGES] = call.input_messages()
        if call.output_messages is not None:
            fields[semconv.OUTPUT_MESSAGES] = call.output_messages
        if call.tool_definitions is not None:
            value = call.tool_definitions()
            if value:
                fields[semconv.TOOL_DEFINITIONS] = value
        if not fields:
            return
        if mode.on_span:
            for key, value in fields.items():
                text = json.dumps(value, ensure_ascii=False, default=str)
                span.set_attribute(key, text[:limit] if limit else text)
        if mode.on_event and self._event_logger is not None:
            self._emit_content_event(call, span, fields)

    def _emit_content_event(self, call: GenAICall, span: Any, fields: dict[str, Any]) -> None:
        from opentelemetry._logs import LogRecord

        attributes = {
            semconv.OPERATION_NAME: call.operation,
            semconv.PROVIDER_NAME: call.provider,
            **{key: json.dumps(value, ensure_ascii=False, default=str) for key, value in fields.items()},
        }
        if call.request_model:
            attributes[semconv.REQUEST_MODEL] = call.request_model
        context = trace.set_span_in_context(span)
        self._event_logger.emit(  # type: ignore[union-attr]
            LogRecord(event_name=CONTENT_EVENT_NAME, attributes=attributes, context=context)
        )

    @staticmethod
    def _record_attempts(summary: AttemptSummary, span: Any) -> None:
        """Totals, request id and rate-limit headroom on the span; an event per attempt when retried."""
        span.set_attributes(summary.attributes)
        for name, attributes, timestamp in summary.events:
            span.add_event(name, attributes, timestamp)

    def _record_health(self, call: GenAICall, summary: AttemptSummary | None) -> None:
        """Provider-health metrics (core/attempts.py): attempts by status, retry waits, headroom gauges,
        and output tokens per second of streams."""
        base: dict[str, Any] = {semconv.PROVIDER_NAME: call.provider}
        model = call.request_model or call.response_model
        if model:
            base[semconv.REQUEST_MODEL] = model
        health = self._health
        if summary is not None:
            for attempt in call.attempts:
                labels = {**base, semconv.HTTP_STATUS_CLASS: status_class(attempt)}
                if attempt.status is not None:
                    labels["http.response.status_code"] = attempt.status
                if attempt.error_type is not None:
                    labels[semconv.ERROR_TYPE] = attempt.error_type
                health.attempts.add(1, labels)
            for wait in summary.waits:
                health.retry_wait.record(wait, base)
            for bucket, values in summary.limits.items():
                labels = {**base, semconv.RATELIMIT_BUCKET: bucket}
                if summary.key_alias:
                    labels[API_KEY_ALIAS] = summary.key_alias
                if values.remaining is not None:
                    health.ratelimit_remaining.set(values.remaining, labels)
                if values.limit is not None:
                    health.ratelimit_limit.set(values.limit, labels)
                if values.headroom is not None:
                    health.ratelimit_headroom.set(values.headroom, labels)
        output = call.usage.output_tokens
        if call.first_chunk_at is not None and call.last_chunk_at is not None and output:
            elapsed = call.last_chunk_at - call.first_chunk_at
            if elapsed > 0:
                health.output_tokens_per_second.record(output / elapsed, base)

    def _record_metrics(
        self, call: GenAICall, cost: Cost | None, ended_at: float, attempts: AttemptSummary | None = None
    ) -> None:
        with swallow("recording provider-health metrics"):
            self._record_health(call, attempts)
        attributes: dict[str, Any] = {
            semconv.OPERATION_NAME: call.operation,
            semconv.PROVIDER_NAME: call.provider,
        }
        if call.request_model:
            attributes[semconv.REQUEST_MODEL] = call.request_model
        if call.response_model:
            attributes[semconv.RESPONSE_MODEL] = call.response_model
        if call.server_address:
            attributes[semconv.SERVER_ADDRESS] = call.server_address
            if call.server_port is not None:
                attributes[semconv.SERVER_PORT] = call.server_port
        if call.error_type:
            attributes[semconv.ERROR_TYPE] = call.error_type
        if cost is not None:
            self._cost.record(cost.total, attributes)
        if not call.owns_span:
            return  # the span's own instrumentation records the conventions' metrics
        self._duration.record(ended_at - call.started_at, attributes)
        if call.first_chunk_at is not None:
            self._ttfc.record(call.first_chunk_at - call.started_at, attributes)
            if self.settings.time_per_chunk_metric:  # one SDK record per chunk: the costliest metric
                record = self._per_chunk.record
                for interval in call.chunk_intervals:
                    record(interval, attributes)
        usage = call.usage
        if usage.input_tokens is not None:
            self._tokens.record(usage.input_tokens, {**attributes, semconv.TOKEN_TYPE: semconv.TOKEN_TYPE_INPUT})
        if usage.output_tokens is not None:
            self._tokens.record(usage.output_tokens, {**attributes, semconv.TOKEN_TYPE: semconv.TOKEN_TYPE_OUTPUT})
