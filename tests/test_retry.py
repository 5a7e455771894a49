"""The retry policy and the answer classification, on a fake clock."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from etl.errors import AuthError, BadRequestError, NotFoundError, UpstreamError
from etl.retry import (
    ApiErrorBody,
    RetryPolicy,
    Transient,
    classify,
    parse_error_body,
    parse_retry_after,
)
from etl.throttle import Limiter

PATH = "/v2/manage/dockerhub/repos?offset=0&limit=100"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.mark.parametrize("body,expected", [
    ('[{"errorCode": "SVCSTG.SWR.4000014", "errorMessage": "Invalid parameter"}]',
     ApiErrorBody("SVCSTG.SWR.4000014", "Invalid parameter")),
    ('{"errors": [{"errorCode": "SVCSTG.SWR.4010000", "errorMessage": "Unauthorized"}]}',
     ApiErrorBody("SVCSTG.SWR.4010000", "Unauthorized")),
    ('{"errorCode": "SVCSTG.SWR.4040083", "errorMessage": "The URL does not exist"}',
     ApiErrorBody("SVCSTG.SWR.4040083", "The URL does not exist")),
    ('{"error_code": "APIG.0308", "error_msg": "The request is throttled."}',
     ApiErrorBody("APIG.0308", "The request is throttled.")),
    ('{"error": {"code": "1101", "message": "token expired"}}',
     ApiErrorBody("1101", "token expired")),
    ("<html>Bad Gateway</html>", ApiErrorBody()),
    ("", ApiErrorBody()),
    ("[]", ApiErrorBody()),
    ('"just a string"', ApiErrorBody()),
])
def test_parse_error_body_shapes(body: str, expected: ApiErrorBody) -> None:
    assert parse_error_body(body) == expected


def test_parse_retry_after() -> None:
    now = datetime(2026, 11, 27, 3, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("0") is None  # 0 -> backoff instead
    assert parse_retry_after("-3") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("100000") == 600.0  # clipped
    ahead = format_datetime(now + timedelta(seconds=7), usegmt=True)
    assert parse_retry_after(ahead, now=now) == 7.0
    past = format_datetime(now - timedelta(seconds=7), usegmt=True)
    assert parse_retry_after(past, now=now) is None


@pytest.mark.parametrize("status,code,kind,throttling", [
    (500, "SVCSTG.SWR.5000001", "transient", False),
    (502, "", "transient", False),
    (503, "", "transient", False),
    (504, "", "transient", False),
    (429, "APIG.0308", "transient", True),
    (409, "SVCSTG.SWR.4090023", "transient", True),
    (403, "SVCSTG.SWR.4031032", "transient", True),
    (403, "SVCSTG.SWR.4031042", "transient", True),
    (400, "SVCSTG.SWR.4000014", BadRequestError, None),
    (401, "SVCSTG.SWR.4010000", AuthError, None),
    (401, "APIG.0301", AuthError, None),
    (403, "SVCSTG.SWR.4030000", AuthError, None),
    (404, "SVCSTG.SWR.4040083", NotFoundError, None),
    (409, "SVCSTG.SWR.4090001", UpstreamError, None),
])
def test_classification_table(status: int, code: str, kind: object, throttling: bool) -> None:
    out = classify(status, ApiErrorBody(code, "msg"), method="GET", path=PATH, request_id="r-1")
    if kind == "transient":
        assert isinstance(out, Transient)
        assert out.cause == f"http_{status}"
        assert out.throttling is throttling
    else:
        assert type(out) is kind


def test_final_messages_carry_code_message_request_id_and_path() -> None:
    out = classify(404, ApiErrorBody("SVCSTG.SWR.4040083", "The URL does not exist"),
                   method="GET", path=PATH, request_id="req-404")
    assert isinstance(out, NotFoundError)
    assert out.exit_code == 4
    assert str(out) == (
        'endpoint not found in this region: GET /v2/manage/dockerhub/repos?offset=0&limit=100: '
        'HTTP 404 SVCSTG.SWR.4040083 "The URL does not exist" (X-Request-Id req-404)')
    bad = classify(400, ApiErrorBody("SVCSTG.SWR.4000056", "Invalid page size"), method="GET",
                   path=PATH, request_id=None)
    assert str(bad) == ('the API rejected the request: GET /v2/manage/dockerhub/repos?offset=0&'
                        'limit=100: HTTP 400 SVCSTG.SWR.4000056 "Invalid page size"')
    auth = classify(401, ApiErrorBody("SVCSTG.SWR.4010000", "Authentication failed"),
                    method="GET", path=PATH, request_id="x")
    assert auth.exit_code == 3
    assert str(auth).startswith("authentication failed: GET /v2/manage/dockerhub/repos")


def make_policy(clock: FakeClock, *, attempts: int = 5, budget: int = 100,
                base: float = 0.5, cap: float = 30.0) -> RetryPolicy:
    return RetryPolicy(max_attempts=attempts, backoff_base=base, backoff_cap=cap, budget=budget,
                       limiter=Limiter(sleep=clock.sleep, clock=clock), sleep=clock.sleep,
                       rng=random.Random(7))


def failing(times: int, exc: Exception) -> tuple[list[int], object]:
    calls: list[int] = []

    def fn(attempt: int) -> str:
        calls.append(attempt)
        if len(calls) <= times:
            raise exc
        return "ok"
    return calls, fn


def test_backoff_full_jitter_bounded_by_exponential_ceiling_and_cap() -> None:
    clock = FakeClock()
    policy = make_policy(clock, attempts=10, base=0.5, cap=3.0)
    calls, fn = failing(9, Transient("http_503", "boom"))
    assert policy.call(fn) == "ok"  # type: ignore[arg-type]
    assert calls == list(range(1, 11))
    ceilings = [min(3.0, 0.5 * 2 ** i) for i in range(9)]
    assert len(clock.sleeps) == 9
    assert all(0 <= s <= c for s, c in zip(clock.sleeps, ceilings, strict=True))
    assert len(set(clock.sleeps)) == 9  # jittered, not constant
    assert policy.retries == 9 and dict(policy.causes) == {"http_503": 9}


def test_retry_after_is_honoured_and_pauses_the_shared_limiter() -> None:
    clock = FakeClock()
    policy = make_policy(clock)
    calls, fn = failing(1, Transient("http_429", "slow down", retry_after=4.0, throttling=True))
    assert policy.call(fn) == "ok"  # type: ignore[arg-type]
    assert clock.sleeps == [4.0]
    assert policy.limiter.pauses == 1


def test_throttling_without_retry_after_pauses_everyone_for_the_backoff() -> None:
    clock = FakeClock()
    policy = make_policy(clock)
    _, fn = failing(1, Transient("http_429", "slow down", throttling=True))
    policy.limiter.pause_for(0)  # no-op
    start = clock.now
    # The limiter pause is set from the same delay the worker sleeps.
    policy.call(fn)  # type: ignore[arg-type]
    assert policy.limiter.pauses == 1
    assert clock.now - start == pytest.approx(clock.sleeps[0])


def test_exhausted_attempts_become_upstream_error_with_detail() -> None:
    clock = FakeClock()
    policy = make_policy(clock, attempts=3)
    calls, fn = failing(99, Transient("http_503", 'GET /p: HTTP 503 "down"'))
    with pytest.raises(UpstreamError) as info:
        policy.call(fn)  # type: ignore[arg-type]
    assert str(info.value) == (
        'the API stayed unavailable after 3 attempt(s): GET /p: HTTP 503 "down"')
    assert info.value.exit_code == 4
    assert calls == [1, 2, 3]


def test_final_errors_are_not_retried() -> None:
    clock = FakeClock()
    policy = make_policy(clock)
    calls, fn = failing(99, AuthError("nope"))
    with pytest.raises(AuthError):
        policy.call(fn)  # type: ignore[arg-type]
    assert calls == [1] and clock.sleeps == [] and policy.retries == 0


def test_retry_budget_is_shared_by_the_run() -> None:
    clock = FakeClock()
    policy = make_policy(clock, attempts=5, budget=3)
    _, fn = failing(2, Transient("timeout", "t"))
    assert policy.call(fn) == "ok"  # type: ignore[arg-type]
    calls, fn2 = failing(99, Transient("connection", "GET /p: connection failed"))
    with pytest.raises(UpstreamError, match=r"^retry budget of 3 retries for this run exhausted"):
        policy.call(fn2)  # type: ignore[arg-type]
    assert calls == [1, 2]  # one retry left in the budget, then it stopped
    assert policy.retries == 3


def test_limiter_token_bucket_spaces_requests() -> None:
    clock = FakeClock()
    limiter = Limiter(2.0, sleep=clock.sleep, clock=clock)
    for _ in range(6):
        limiter.acquire()
    # a burst of 2 (one second's worth), then one every 0.5 s
    assert clock.now - 1000.0 == pytest.approx(2.0)
