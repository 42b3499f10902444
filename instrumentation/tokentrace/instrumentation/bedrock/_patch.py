"""The one wrapper: around ``botocore.client.BaseClient._make_api_call``.

Every botocore client method (``client.converse(...)``) is generated at run time and calls
``self._make_api_call(operation_name, api_params)``; wrapping that one method covers every client
created before or after instrumenting, and sits *outside* botocore's retry loop (retries happen in
``_make_request`` → ``Endpoint.make_request``), so an app call retried three times is one span; each
HTTP attempt inside it is recorded by :mod:`tokentrace.instrumentation._botocore_http`, whose event
handlers the wrapper registers on a client the first time it makes a traced call.
Calls of other services and other Bedrock operations pass straight through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tokentrace.core.call import GenAICall
from tokentrace.core.invoke import run_sync
from tokentrace.core.recorder import Recorder
from tokentrace.core.safety import report
from tokentrace.core.wrapping import MULTI_PROVIDER_INSTRUMENTATIONS, past_other_instrumentations
from tokentrace.instrumentation import _botocore_http
from tokentrace.instrumentation.bedrock import _requests, _responses
from tokentrace.instrumentation.bedrock._stream import TracedEventStream

# Other GenAI instrumentations wrapping the same method: when one sits inside ours we call past it
# for Bedrock inference calls only, so each call yields one span (its other AWS calls are untouched).
_OTHER_INSTRUMENTATIONS = (
    "opentelemetry.instrumentation.botocore",
    "openinference.instrumentation.bedrock",
    *MULTI_PROVIDER_INSTRUMENTATIONS,
)


class _State:
    """What ``handle`` needs of the request: the operation and the settings read at instrument time."""

    __slots__ = ("capture", "operation")

    def __init__(self, operation: str, capture: bool) -> None:
        self.operation = operation
        self.capture = capture


class BedrockTracer:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.capture = recorder.settings.capture_content.enabled

    def describe(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]):
        found = _requests.bedrock_operation(instance, args, kwargs)
        if found is None:
            return None
        operation, params = found
        stream = operation in _requests.STREAMING
        if operation in (_requests.CONVERSE, _requests.CONVERSE_STREAM):
            call = _requests.describe_converse(instance, params, stream, self.capture)
        else:
            call = _requests.describe_invoke(instance, params, stream, self.capture)
        call.provider_state = _State(operation, self.capture)
        return call, kwargs

    def handle(self, call: GenAICall, result: Any) -> Any:
        state: _State = call.provider_state
        operation = state.operation
        if not isinstance(result, dict):
            self.recorder.finish(call)
            return result
        if operation == _requests.CONVERSE:
            _responses.apply_converse(call, result, state.capture)
            self.recorder.finish(call)
        elif operation == _requests.INVOKE_MODEL:
            error = _responses.apply_invoke(call, result, state.capture)
            if error is not None and call.error_type is None:
                call.error_type = _responses.aws_error_type(error)
            self.recorder.finish(call, error)
        else:
            key = "stream" if operation == _requests.CONVERSE_STREAM else "body"
            stream = result.get(key)
            _responses.read_metadata(call, result)
            if stream is None:
                self.recorder.finish(call)
                return result
            observer = (
                _responses.converse_stream_observer(call, state.capture)
                if key == "stream"
                else _responses.invoke_stream_observer(call, state.capture)
            )
            result[key] = TracedEventStream(stream, call, self.recorder, observer, _responses.aws_error_type)
        return result

    def wrapper(self) -> Callable[..., Any]:
        recorder = self.recorder
        describe = self.describe
        handle = self.handle
        operations = _requests.OPERATIONS

        def traced_make_api_call(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            try:
                ours = (args[0] if args else kwargs.get("operation_name")) in operations
            except Exception:  # an unhashable operation name: not ours, and botocore will say so
                ours = False
            if not ours:
                return wrapped(*args, **kwargs)
            calls: list[GenAICall] = []

            def describe_and_keep(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]):
                described = describe(instance, args, kwargs)
                if described is not None:
                    calls.append(described[0])
                    try:
                        _botocore_http.watch(instance)  # this client's HTTP attempts, from now on
                    except Exception:
                        report("watching botocore's HTTP attempts")
                return described

            def send(*send_args: Any, **send_kwargs: Any) -> Any:
                # Past other GenAI instrumentations only for a call we trace (else theirs is the only one).
                target = past_other_instrumentations(wrapped, _OTHER_INSTRUMENTATIONS) if calls else wrapped
                try:
                    return target(*send_args, **send_kwargs)
                except BaseException as error:
                    if calls:
                        _botocore_http.abandon(error)
                        if isinstance(error, Exception):
                            _classify(calls[0], error)
                    raise

            return run_sync(recorder, describe_and_keep, send, instance, args, kwargs, handle)

        return traced_make_api_call


def _classify(call: GenAICall, error: BaseException) -> None:
    try:
        call.error_type = _responses.aws_error_type(error)
    except Exception:
        report("classifying an AWS error")
