"""Provider health for Bedrock: every HTTP attempt botocore sends inside one call, made visible.

Real boto3/botocore clients (their own retry modes, backoff and HTTP stack) call the local Bedrock
server, which fails the first N requests of a call on purpose (429 ``ThrottlingException``, 429
``ModelNotReadyException``, 500/503, a reset connection, a stall past ``read_timeout``) with
Bedrock's own error bodies and headers. The exported span, its attempt events and the health metrics
must account for each attempt while the application sees exactly what it sees uninstrumented.

botocore sleeps between attempts in ``botocore.endpoint`` (``time.sleep(delay)`` after the
``needs-retry`` handlers chose ``delay``). Most tests replace that module's ``time`` with a spy that
records each sleep and shortens it (standard and legacy modes back off up to 1-2 s at random per
retry), so the recorded ``wait_before_next`` can be compared with what botocore actually slept;
:func:`test_retry_hint_is_recorded_and_honoured` keeps botocore's real sleep.
"""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

import boto3
import botocore.endpoint
import botocore.exceptions
import pytest
from botocore.config import Config
from opentelemetry.trace import StatusCode

from tests.providers.servers.bedrock import AWS_MESSAGES, BedrockServer
from tokentrace.core import attempts as at
from tokentrace.core import semconv
from tokentrace.core.safety import internal_errors
from tokentrace.instrumentation import _botocore_http
from tokentrace.instrumentation.bedrock import BedrockInstrumentor

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "Are you healthy?"}]}]
INVOKE_BODY = json.dumps(
    {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 32,
        "messages": [{"role": "user", "content": "Are you healthy?"}],
    }
)
OPERATIONS = ["converse", "converse_stream", "invoke_model", "invoke_model_with_response_stream"]
MODES = ["standard", "legacy"]
ACCESS_KEY = "AKIDHEALTHCHECK01"
SLEEP_CAP = 0.02  # the spy's longest real sleep
SIGNING_SLACK = 0.1  # what a wait may exceed botocore's sleep by (re-signing, handlers; a loaded CI box)


@pytest.fixture(scope="module")
def server() -> Any:
    with BedrockServer() as running:
        yield running


@pytest.fixture
def traced(server: BedrockServer, instrument_with: Any) -> Any:
    server.reset()
    return instrument_with(BedrockInstrumentor)


class SleepSpy:
    """Stands in for ``botocore.endpoint.time``: records what botocore asked to sleep and slept."""

    def __init__(self) -> None:
        self.requested: list[float] = []
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.requested.append(seconds)
        started = time.perf_counter()
        time.sleep(min(seconds, SLEEP_CAP))
        self.slept.append(time.perf_counter() - started)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> SleepSpy:
    spy = SleepSpy()
    monkeypatch.setattr(botocore.endpoint, "time", SimpleNamespace(sleep=spy.sleep))
    return spy


def make(server: BedrockServer, mode: str = "standard", retries: int = 2, access_key: str = ACCESS_KEY, **config: Any):
    """A real bedrock-runtime client; ``retries`` is botocore's ``max_attempts`` (retries after the first)."""
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key="test-secret",
        config=Config(retries={"mode": mode, "max_attempts": retries}, **config),
    )


def _scrub(result: dict[str, Any]) -> dict[str, Any]:
    """A result minus its per-request ids and the stream/body objects (read separately)."""
    kept = {k: v for k, v in result.items() if k not in ("ResponseMetadata", "stream", "body")}
    metadata = result.get("ResponseMetadata", {})
    kept["RetryAttempts"] = metadata.get("RetryAttempts")
    return kept


def observe(client: Any, operation: str) -> Any:
    """What the application observes of one call: its result, events and bytes, or its exception."""
    try:
        if operation == "converse":
            return ("ok", _scrub(client.converse(modelId=HAIKU, messages=MESSAGES)))
        if operation == "converse_stream":
            response = client.converse_stream(modelId=HAIKU, messages=MESSAGES)
            return ("ok", _scrub(response), list(response["stream"]))
        if operation == "invoke_model":
            response = client.invoke_model(modelId=HAIKU, body=INVOKE_BODY)
            return ("ok", _scrub(response), response["body"].read())
        response = client.invoke_model_with_response_stream(modelId=HAIKU, body=INVOKE_BODY)
        return ("ok", _scrub(response), list(response["body"]))
    except botocore.exceptions.ClientError as error:
        metadata = error.response.get("ResponseMetadata", {})
        retry = (metadata.get("RetryAttempts"), metadata.get("MaxAttemptsReached"))
        return ("raised", type(error), str(error), error.response.get("Error"), retry)
    except botocore.exceptions.BotoCoreError as error:
        return ("raised", type(error))


def events(span: Any) -> list[dict[str, Any]]:
    return [dict(e.attributes) for e in span.events if e.name == at.EVENT_ATTEMPT]


def request_ids(count: int) -> list[str]:
    """The ``x-amzn-RequestId`` the server sent to its first ``count`` requests since its reset."""
    return [f"req-{n:04d}" for n in range(1, count + 1)]


def assert_waits(attempts: list[dict[str, Any]], sleeps: SleepSpy) -> list[float]:
    """Each retried attempt's wait is botocore's sleep plus re-signing the request; the last has none."""
    waits = [e[at.EVENT_WAIT_BEFORE_NEXT] for e in attempts[:-1]]
    assert at.EVENT_WAIT_BEFORE_NEXT not in attempts[-1]
    assert len(sleeps.slept) == len(waits)
    for wait, slept in zip(waits, sleeps.slept, strict=True):
        assert slept <= wait <= slept + SIGNING_SLACK
    return waits


def assert_totals(span: Any, attempts: list[dict[str, Any]], waits: list[float]) -> None:
    a = dict(span.attributes)
    assert a[at.ATTEMPTS] == len(attempts)
    assert a[at.RETRY_WAIT] == pytest.approx(sum(waits))
    failed = [e[at.EVENT_ATTEMPT_DURATION] for e in attempts if at.ERROR_TYPE in e]
    assert a[at.FAILED_ATTEMPTS_DURATION] == pytest.approx(sum(failed))
    assert all(e[at.EVENT_ATTEMPT_DURATION] > 0 for e in attempts)
    # the call's duration is still the whole call the application waited for
    assert (span.end_time - span.start_time) / 1e9 >= a[at.RETRY_WAIT] + a[at.FAILED_ATTEMPTS_DURATION]


def status_classes(telemetry: Any) -> dict[str, int]:
    points = telemetry.metrics()[semconv.METRIC_PROVIDER_ATTEMPTS]
    counted: dict[str, int] = {}
    for point in points:
        key = dict(point.attributes)[semconv.HTTP_STATUS_CLASS]
        counted[key] = counted.get(key, 0) + point.value
    return counted


def same_as_uninstrumented(server: BedrockServer, traced: Any, client: Any, operation: str, seen: Any, **fail: Any):
    traced.uninstrument()
    server.reset()
    if fail:
        server.fail_next(**fail)
    assert observe(client, operation) == seen


# -- retried failures ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("operation", OPERATIONS)
def test_throttled_twice_then_success_is_three_attempts(
    server: BedrockServer, traced: Any, telemetry: Any, sleeps: SleepSpy, operation: str, mode: str
) -> None:
    client = make(server, mode)
    fail = {"status": 429, "code": "ThrottlingException", "times": 2}
    server.fail_next(**fail)
    seen = observe(client, operation)
    assert seen[0] == "ok" and seen[1]["RetryAttempts"] == 2
    span = telemetry.span()
    a = dict(span.attributes)
    assert span.status.status_code is StatusCode.UNSET and semconv.ERROR_TYPE not in a
    attempts = events(span)
    assert [e[at.EVENT_ATTEMPT_NUMBER] for e in attempts] == [1, 2, 3]
    assert [e.get(at.STATUS_CODE) for e in attempts] == [429, 429, 200]
    assert [e.get(at.ERROR_TYPE) for e in attempts] == ["ThrottlingException", "ThrottlingException", None]
    assert [e[at.REQUEST_ID] for e in attempts] == request_ids(3)
    assert all(at.EVENT_RETRY_AFTER not in e for e in attempts)  # Bedrock sent no retry hint
    assert a[at.REQUEST_ID] == a[semconv.AWS_REQUEST_ID] == "req-0003"  # the attempt that answered
    assert not [k for k in a if k.startswith(at.RATELIMIT_PREFIX)]  # Bedrock sends no headroom headers
    waits = assert_waits(attempts, sleeps)
    assert_totals(span, attempts, waits)
    assert status_classes(telemetry) == {"4xx": 2, "2xx": 1}
    (wait,) = telemetry.metrics()[semconv.METRIC_PROVIDER_RETRY_WAIT]
    assert wait.count == 2 and wait.sum == pytest.approx(sum(waits))
    same_as_uninstrumented(server, traced, client, operation, seen, **fail)


@pytest.mark.parametrize("mode", [*MODES, "adaptive"])
@pytest.mark.parametrize(
    ("status", "code"),
    [(503, "ServiceUnavailableException"), (500, "InternalServerException"), (429, "ModelNotReadyException")],
)
def test_server_errors_then_success(
    server: BedrockServer, traced: Any, telemetry: Any, sleeps: SleepSpy, status: int, code: str, mode: str
) -> None:
    client = make(server, mode)
    fail = {"status": status, "code": code, "times": 2}
    server.fail_next(**fail)
    seen = observe(client, "converse")
    assert seen[1]["RetryAttempts"] == 2
    span = telemetry.span()
    attempts = events(span)
    assert [e.get(at.STATUS_CODE) for e in attempts] == [status, status, 200]
    assert [e.get(at.ERROR_TYPE) for e in attempts] == [code, code, None]
    waits = assert_waits(attempts, sleeps)
    assert_totals(span, attempts, waits)
    assert status_classes(telemetry) == {f"{status // 100}xx": 2, "2xx": 1}
    points = telemetry.metrics()[semconv.METRIC_PROVIDER_ATTEMPTS]
    failed = [p for p in points if dict(p.attributes).get(semconv.ERROR_TYPE) == code]
    assert sum(p.value for p in failed) == 2
    assert all(dict(p.attributes)[semconv.PROVIDER_NAME] == "aws.bedrock" for p in points)
    same_as_uninstrumented(server, traced, client, "converse", seen, **fail)


def test_retry_hint_is_recorded_and_honoured(server: BedrockServer, traced: Any, telemetry: Any) -> None:
    """botocore's real sleep: standard mode waits at least ``x-amz-retry-after`` (milliseconds)."""
    client = make(server, "standard", retries=1)
    server.fail_next(429, "ThrottlingException", retry_after_ms=300)
    assert observe(client, "converse")[1]["RetryAttempts"] == 1
    attempts = events(telemetry.span())
    assert attempts[0][at.EVENT_RETRY_AFTER] == pytest.approx(0.3)
    assert attempts[0][at.EVENT_WAIT_BEFORE_NEXT] >= 0.3
    assert at.EVENT_RETRY_AFTER not in attempts[1]


def test_retry_after_header_in_seconds_is_recorded(
    server: BedrockServer, traced: Any, telemetry: Any, sleeps: SleepSpy
) -> None:
    client = make(server, "legacy", retries=1)
    server.fail_next(503, "ServiceUnavailableException", retry_after_s=2)
    observe(client, "converse_stream")
    attempts = events(telemetry.span())
    assert attempts[0][at.EVENT_RETRY_AFTER] == 2.0 and attempts[0][at.STATUS_CODE] == 503


def test_adaptive_modes_rate_limiter_wait_counts_as_waiting_not_as_the_attempt(
    server: BedrockServer, traced: Any, telemetry: Any, sleeps: SleepSpy
) -> None:
    """After a throttle, adaptive mode's client-side token bucket blocks in a ``before-send`` handler
    (about 2 s at its minimum rate) on top of the backoff sleep: our attempt starts after it."""
    client = make(server, "adaptive", retries=1)
    server.fail_next(429, "ThrottlingException")
    observe(client, "converse")
    span = telemetry.span()
    first, second = events(span)
    (slept,) = sleeps.slept
    assert first[at.EVENT_WAIT_BEFORE_NEXT] > slept + 0.5  # the limiter's wait is in the wait ...
    assert second[at.EVENT_ATTEMPT_DURATION] < 0.5  # ... not in the attempt it delayed
    assert_totals(span, [first, second], [first[at.EVENT_WAIT_BEFORE_NEXT]])


# -- transport failures ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_reset_connection_then_success(
    server: BedrockServer, traced: Any, telemetry: Any, sleeps: SleepSpy, mode: str
) -> None:
    client = make(server, mode)
    server.fail_next(0, "", kind="drop")
    seen = observe(client, "invoke_model")
    span = telemetry.span()
    attempts = events(span)
    assert len(attempts) == 2
    assert at.STATUS_CODE not in attempts[0] and at.REQUEST_ID not in attempts[0]
    assert attempts[0][at.ERROR_TYPE] in (
        "botocore.exceptions.ConnectionClosedError",
        "botocore.exceptions.ProtocolError",
        "botocore.exceptions.EndpointConnectionError",
    )
    assert attempts[1][at.STATUS_CODE] == 200
    assert_totals(span, attempts, assert_waits(attempts, sleeps))
    assert status_classes(telemetry) == {"none": 1, "2xx": 1}
    same_as_uninstrumented(server, traced, client, "invoke_model", seen, status=0, code="", kind="drop")


@pytest.mark.parametrize("operation", ["converse", "converse_stream"])
def test_stall_past_read_timeout_then_success(
    server: BedrockServer, traced: Any, telemetry: Any, sleeps: SleepSpy, operation: str
) -> None:
    client = make(server, "standard", read_timeout=0.3)
    server.fail_next(0, "", kind="stall", stall_s=1.5)
    observe(client, operation)
    attempts = events(telemetry.span())
    assert len(attempts) == 2
    assert attempts[0][at.ERROR_TYPE] == "botocore.exceptions.ReadTimeoutError"
    assert 0.29 <= attempts[0][at.EVENT_ATTEMPT_DURATION] < 1.5  # the client's timeout, not the server's stall
    assert attempts[1][at.STATUS_CODE] == 200


# -- retries exhausted -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("operation", ["converse", "invoke_model_with_response_stream"])
def test_exhausted_retries_keep_the_apps_client_error_and_every_attempt(
    server: BedrockServer, traced: Any, telemetry: Any, sleeps: SleepSpy, operation: str, mode: str
) -> None:
    client = make(server, mode, retries=3)
    fail = {"status": 429, "code": "ThrottlingException", "times": 9}
    server.fail_next(**fail)
    seen = observe(client, operation)
    _, cls, message, error, (retries, reached) = seen
    assert cls is client.exceptions.ThrottlingException and issubclass(cls, botocore.exceptions.ClientError)
    assert error == {"Message": AWS_MESSAGES["ThrottlingException"], "Code": "ThrottlingException"}
    assert "reached max retries: 3" in message and retries == 3 and reached is True
    span = telemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "ThrottlingException"
    assert span.attributes[at.ATTEMPTS] == retries + 1 == 4
    attempts = events(span)
    assert [e[at.STATUS_CODE] for e in attempts] == [429] * 4
    assert [e[at.REQUEST_ID] for e in attempts] == request_ids(4)
    assert span.attributes[at.REQUEST_ID] == "req-0004"
    assert_totals(span, attempts, assert_waits(attempts, sleeps))
    assert status_classes(telemetry) == {"4xx": 4}
    same_as_uninstrumented(server, traced, client, operation, seen, **fail)


# -- one attempt -----------------------------------------------------------------------------------------------


def test_a_single_attempt_has_totals_request_id_and_key_alias_but_no_events(
    server: BedrockServer, traced: Any, telemetry: Any
) -> None:
    client = make(server)
    result = client.converse(modelId=HAIKU, messages=MESSAGES)
    client.converse(modelId=HAIKU, messages=MESSAGES)
    other_key = make(server, access_key="AKIDANOTHERKEY0002")
    other_key.converse(modelId=HAIKU, messages=MESSAGES)
    first, second, third = telemetry.spans()
    a = dict(first.attributes)
    assert a[at.ATTEMPTS] == 1 and a[at.RETRY_WAIT] == 0 and a[at.FAILED_ATTEMPTS_DURATION] == 0
    assert events(first) == []
    assert a[at.REQUEST_ID] == result["ResponseMetadata"]["RequestId"] == "req-0001"
    assert not [k for k in a if k.startswith(at.RATELIMIT_PREFIX)]
    # the access key id's alias: the same for every request it signs (SigV4 headers differ each time)
    alias = a[at.API_KEY_ALIAS]
    assert alias.startswith("key-") and ACCESS_KEY not in alias
    assert second.attributes[at.API_KEY_ALIAS] == alias
    assert third.attributes[at.API_KEY_ALIAS] not in (alias, None)
    assert status_classes(telemetry) == {"2xx": 3}
    assert semconv.METRIC_PROVIDER_RETRY_WAIT not in telemetry.metrics()


def test_credential_alias_from_botocores_real_signers() -> None:
    """SigV4 headers differ on every request (date, signature): the alias is the access key id's.
    A Bedrock API key (``AWS_BEARER_TOKEN_BEDROCK``: ``Authorization: Bearer``, HTTPS only, so not
    against the local server) gets the alias scheme of every other provider's API key."""
    from botocore.auth import BearerAuth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from botocore.tokens import FrozenAuthToken

    url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse"
    aliases = set()
    for body in (b"{}", b'{"x": 1}'):
        request = AWSRequest(method="POST", url=url, data=body)
        SigV4Auth(Credentials(ACCESS_KEY, "secret"), "bedrock", "us-east-1").add_auth(request)
        assert request.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=" + ACCESS_KEY)
        aliases.add(_botocore_http.credential_alias(request.headers))
    assert aliases == {at.api_key_alias({"authorization": ACCESS_KEY})}
    request = AWSRequest(method="POST", url=url, data=b"{}")
    BearerAuth(FrozenAuthToken("bedrock-api-key-123")).add_auth(request)
    assert _botocore_http.credential_alias(request.headers) == at.api_key_alias(
        {"authorization": "Bearer bedrock-api-key-123"}
    )
    assert _botocore_http.credential_alias(AWSRequest(method="POST", url=url).headers) is None


def test_rate_limit_headers_would_be_read_if_bedrock_sent_them() -> None:
    """Bedrock sends none today; a response that had them (a proxy, a future Bedrock) is parsed."""
    from botocore.awsrequest import HeadersDict

    headers = HeadersDict({"x-amzn-RequestId": "r1", "x-ratelimit-limit-requests": "60"})
    headers["x-ratelimit-remaining-requests"] = "12"
    attempt = at.begin_attempt()
    _botocore_http.read_attempt(attempt, {"status_code": 200, "headers": headers}, {}, None)
    assert (attempt.status, attempt.request_id, attempt.error_type) == (200, "r1", None)
    assert attempt.limits["requests"].headroom == pytest.approx(12 / 60)
    attempt = at.begin_attempt()
    _botocore_http.read_attempt(
        attempt, {"status_code": 200, "headers": HeadersDict({"x-amzn-RequestId": "r2"})}, {}, None
    )
    assert attempt.limits == {}


# -- what is not ours ------------------------------------------------------------------------------------------


def test_other_botocore_traffic_records_nothing_and_carries_no_handler(
    server: BedrockServer, traced: Any, telemetry: Any
) -> None:
    client = make(server)
    s3 = boto3.client(
        "s3", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    with pytest.raises(botocore.exceptions.ClientError):
        s3.list_buckets()
    assert not _botocore_http.watching(client)  # no instrumented call yet: no handler
    client.converse(modelId=HAIKU, messages=MESSAGES)
    assert _botocore_http.watching(client) and not _botocore_http.watching(s3)
    with pytest.raises(botocore.exceptions.ClientError):  # a bedrock-runtime operation we do not trace
        client.apply_guardrail(guardrailIdentifier="g", guardrailVersion="1", source="INPUT", content=[])
    with pytest.raises(botocore.exceptions.ClientError):
        s3.list_buckets()
    (span,) = telemetry.spans()
    assert span.attributes[at.ATTEMPTS] == 1
    assert status_classes(telemetry) == {"2xx": 1}


def test_switched_off_by_setting(server: BedrockServer, instrument_with: Any, telemetry: Any) -> None:
    server.reset()
    instrument_with(BedrockInstrumentor, TOKENTRACE_HTTP_ATTEMPTS="false")
    client = make(server)
    server.fail_next(429, "ThrottlingException")
    client.converse(modelId=HAIKU, messages=MESSAGES)
    span = telemetry.span()
    assert at.ATTEMPTS not in span.attributes and events(span) == []
    assert not _botocore_http.watching(client)


def test_uninstrument_removes_the_handlers_reference_counted(server: BedrockServer, traced: Any) -> None:
    client = make(server)
    client.converse(modelId=HAIKU, messages=MESSAGES)

    def ours(events: Any) -> set[str]:
        fired = events.emit("before-send.bedrock-runtime.Converse", request=None)
        fired += events.emit("response-received.bedrock-runtime.Converse", response_dict=None, exception=None)
        return {getattr(handler, "__name__", "") for handler, _ in fired} & {"_on_send", "_on_received"}

    assert ours(client.meta.events) == {"_on_send", "_on_received"}
    _botocore_http.install()  # a second user
    try:
        traced.uninstrument()
        assert _botocore_http.watching(client)  # still in use
    finally:
        _botocore_http.uninstall()
    assert not _botocore_http.watching(client) and ours(client.meta.events) == set()


# -- faults ----------------------------------------------------------------------------------------------------


class Injected(RuntimeError):
    pass


def boom(*args: Any, **kwargs: Any) -> Any:
    raise Injected("injected into the botocore attempt hook")


@pytest.mark.parametrize(
    ("target", "where"),
    [
        ("read_attempt", "reading an HTTP attempt"),
        ("begin_attempt", "starting an HTTP attempt"),
        ("credential_alias", "starting an HTTP attempt"),
        ("watch", "watching botocore's HTTP attempts"),
    ],
)
def test_a_fault_in_the_hook_never_reaches_the_app(
    server: BedrockServer,
    traced: Any,
    telemetry: Any,
    sleeps: SleepSpy,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    where: str,
) -> None:
    client = make(server)
    fail = {"status": 429, "code": "ThrottlingException", "times": 1}
    before = internal_errors[where]
    monkeypatch.setattr(_botocore_http, target, boom)
    server.fail_next(**fail)
    seen = observe(client, "converse_stream")
    assert internal_errors[where] >= before + 1
    span = telemetry.span()
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes[semconv.USAGE_OUTPUT_TOKENS] > 0  # the call itself is still recorded
    same_as_uninstrumented(server, traced, client, "converse_stream", seen, **fail)


class Interrupted(BaseException):
    """Stands for a KeyboardInterrupt arriving while botocore handles a response."""


def test_an_attempt_cut_short_by_a_base_exception_is_ended(server: BedrockServer, traced: Any, telemetry: Any) -> None:
    client = make(server)

    def interrupt(**kwargs: Any) -> None:  # runs before our response-received handler (more specific event)
        raise Interrupted

    client.meta.events.register("response-received.bedrock-runtime.Converse", interrupt)
    with pytest.raises(Interrupted):
        client.converse(modelId=HAIKU, messages=MESSAGES)
    span = telemetry.span()
    (attempt,) = events(span)
    assert attempt[at.ERROR_TYPE] == f"{__name__}.Interrupted" and attempt[at.EVENT_ATTEMPT_DURATION] > 0
