"""The retry policy and the answer classification, on a fake clock."""

from __future__ import annotations

import dataclasses
import logging
import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest

from etl.errors import AuthError, BadRequestError, NotFoundError, UpstreamError
from etl.extract.retry import (
    ApiErrorBody,
    RetryPolicy,
    Transient,
    classify,
    parse_error_body,
    parse_retry_after,
)
from etl.extract.throttle import Limiter
from tests.helpers import FakeClock

PATH = "/v2/manage/dockerhub/repos?offset=0&limit=100"


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
    clock = FakeClock(1000.0)
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
    clock = FakeClock(1000.0)
    policy = make_policy(clock)
    calls, fn = failing(1, Transient("http_429", "slow down", retry_after=4.0, throttling=True))
    assert policy.call(fn) == "ok"  # type: ignore[arg-type]
    assert clock.sleeps == [4.0]
    assert policy.limiter.pauses == 1


def test_throttling_without_retry_after_pauses_everyone_for_the_backoff() -> None:
    clock = FakeClock(1000.0)
    policy = make_policy(clock)
    _, fn = failing(1, Transient("http_429", "slow down", throttling=True))
    policy.limiter.pause_for(0)  # no-op
    start = clock.now
    # The limiter pause is set from the same delay the worker sleeps.
    policy.call(fn)  # type: ignore[arg-type]
    assert policy.limiter.pauses == 1
    assert clock.now - start == pytest.approx(clock.sleeps[0])


def test_exhausted_attempts_become_upstream_error_with_detail() -> None:
    clock = FakeClock(1000.0)
    policy = make_policy(clock, attempts=3)
    calls, fn = failing(99, Transient("http_503", 'GET /p: HTTP 503 "down"'))
    with pytest.raises(UpstreamError) as info:
        policy.call(fn)  # type: ignore[arg-type]
    assert str(info.value) == (
        'the API stayed unavailable after 3 attempt(s): GET /p: HTTP 503 "down"')
    assert info.value.exit_code == 4
    assert calls == [1, 2, 3]


def test_final_errors_are_not_retried() -> None:
    clock = FakeClock(1000.0)
    policy = make_policy(clock)
    calls, fn = failing(99, AuthError("nope"))
    with pytest.raises(AuthError):
        policy.call(fn)  # type: ignore[arg-type]
    assert calls == [1] and clock.sleeps == [] and policy.retries == 0


def test_retry_budget_is_shared_by_the_run() -> None:
    clock = FakeClock(1000.0)
    policy = make_policy(clock, attempts=5, budget=3)
    _, fn = failing(2, Transient("timeout", "t"))
    assert policy.call(fn) == "ok"  # type: ignore[arg-type]
    calls, fn2 = failing(99, Transient("connection", "GET /p: connection failed"))
    with pytest.raises(UpstreamError, match=r"^retry budget of 3 retries for this run exhausted"):
        policy.call(fn2)  # type: ignore[arg-type]
    assert calls == [1, 2]  # one retry left in the budget, then it stopped
    assert policy.retries == 3


def test_limiter_token_bucket_spaces_requests() -> None:
    clock = FakeClock(1000.0)
    limiter = Limiter(2.0, sleep=clock.sleep, clock=clock)
    for _ in range(6):
        limiter.acquire()
    # a burst of 2 (one second's worth), then one every 0.5 s
    assert clock.now - 1000.0 == pytest.approx(2.0)


# -- retrying by time (--retry-window, --deadline) ------------------------------------------


@pytest.mark.parametrize("body,expected", [
    # one parser for SWR and IAM: the nested IAM object first, then the errors list, then the
    # top level; a present-but-empty key does not hide the next one
    ('{"error": {"code": 401, "message": "wrong password"}, "errors": [{"errorCode": "X"}]}',
     ApiErrorBody("401", "wrong password")),
    ('{"errorCode": "", "error_code": "APIG.0201", "error_msg": "Backend unavailable"}',
     ApiErrorBody("APIG.0201", "Backend unavailable")),
    ('{"errorCode": "SVCSTG.SWR.5000001", "error_code": "APIG.0201", "errorMessage": "m"}',
     ApiErrorBody("SVCSTG.SWR.5000001", "m")),
    ('{"errorCode": ["not", "a", "code"], "errorMessage": {"nested": 1}}', ApiErrorBody()),
])
def test_parse_error_body_precedence(body: str, expected: ApiErrorBody) -> None:
    assert parse_error_body(body) == expected


def default_policy(clock: FakeClock, seed: int = 7, **kw: object) -> RetryPolicy:
    """The policy exactly as a default run builds it (Settings() defaults), on a fake clock."""
    from etl.config.settings import Settings
    from etl.extract.retry import make_policy

    settings = Settings(**kw)  # type: ignore[arg-type]
    limiter = Limiter(sleep=clock.sleep, clock=clock)
    return make_policy(settings, limiter, clock.sleep, random.Random(seed), clock=clock)


def outage(clock: FakeClock, seconds: float) -> tuple[list[float], object]:
    """A request that fails (HTTP 503) until ``seconds`` of fake time have passed."""
    start = clock.now
    calls: list[float] = []

    def fn(attempt: int) -> str:
        calls.append(clock.now - start)
        if clock.now - start < seconds:
            raise Transient("http_503", "GET /p: HTTP 503", brief="HTTP 503")
        return "ok"
    return calls, fn


@pytest.mark.parametrize("seed", range(20))
def test_a_60_s_outage_is_ridden_out_with_the_defaults(seed: int) -> None:
    clock = FakeClock(1000.0)
    policy = default_policy(clock, seed)
    calls, fn = outage(clock, 60.0)
    assert policy.call(fn) == "ok"  # type: ignore[arg-type]
    assert calls[-1] >= 60.0 and calls[-2] < 60.0
    assert all(w <= 30.0 for w in clock.sleeps)  # backoff_cap
    assert calls[-1] <= 120.0


@pytest.mark.parametrize("seed", range(20))
def test_a_permanent_outage_gives_up_within_the_window(seed: int) -> None:
    clock = FakeClock(1000.0)
    policy = default_policy(clock, seed)
    calls, fn = outage(clock, float("inf"))
    with pytest.raises(UpstreamError) as info:
        policy.call(fn)  # type: ignore[arg-type]
    spent = clock.now - 1000.0
    # It stops only when the next wait (at most backoff_cap 30 s) would end past 120 s.
    assert 90.0 < spent <= 120.0
    assert str(info.value) == (f"the API stayed unavailable after {len(calls)} attempt(s) over "
                               f"{spent:.0f} s (--retry-window 120 s): GET /p: HTTP 503")


def test_max_attempts_is_an_extra_cap_and_1_means_one_attempt() -> None:
    clock = FakeClock(1000.0)
    calls, fn = outage(clock, float("inf"))
    with pytest.raises(UpstreamError, match=r"^the API stayed unavailable after 1 attempt\(s\): "):
        default_policy(clock, max_attempts=1).call(fn)  # type: ignore[arg-type]
    assert len(calls) == 1 and clock.sleeps == []


def test_retry_after_beyond_the_window_gives_up_at_once() -> None:
    clock = FakeClock(1000.0)
    policy = default_policy(clock)
    calls, fn = failing(99, Transient("http_429", "GET /p: HTTP 429", retry_after=600.0,
                                      throttling=True))
    with pytest.raises(UpstreamError) as info:
        policy.call(fn)  # type: ignore[arg-type]
    assert calls == [1] and clock.sleeps == [] and policy.limiter.pauses == 0
    assert str(info.value) == ("the API stayed unavailable after 1 attempt(s) (it asked to retry "
                               "after 600 s, beyond --retry-window 120 s): GET /p: HTTP 429")


def test_retry_after_waits_add_up_to_no_more_than_the_window() -> None:
    clock = FakeClock(1000.0)
    policy = default_policy(clock)
    calls, fn = failing(99, Transient("http_429", "GET /p: HTTP 429", retry_after=50.0,
                                      throttling=True))
    with pytest.raises(UpstreamError):
        policy.call(fn)  # type: ignore[arg-type]
    assert clock.sleeps == [50.0, 50.0] and len(calls) == 3  # a third wait would end at 150 s


def test_the_deadline_caps_every_wait() -> None:
    from etl.extract.throttle import Deadline, DeadlineExceeded

    clock = FakeClock(1000.0)
    deadline = Deadline(10.0, clock=clock)
    policy = RetryPolicy(max_attempts=None, window=120.0, backoff_base=4.0, backoff_cap=4.0,
                         budget=100, limiter=Limiter(sleep=clock.sleep, clock=clock),
                         sleep=clock.sleep, clock=clock, deadline=deadline,
                         rng=random.Random(3))
    calls, fn = outage(clock, float("inf"))
    with pytest.raises(DeadlineExceeded) as info:
        policy.call(fn)  # type: ignore[arg-type]
    assert info.value.exit_code == 4
    assert clock.now - 1000.0 < 10.0  # it never slept into the deadline
    assert str(info.value) == (
        f"gave up: the run deadline (--deadline 10 s) ran out while the API was failing "
        f"(attempt {len(calls)}: GET /p: HTTP 503)")


def test_a_pause_longer_than_the_deadline_fails_at_once() -> None:
    from etl.extract.throttle import Deadline, DeadlineExceeded

    clock = FakeClock(1000.0)
    limiter = Limiter(sleep=clock.sleep, clock=clock, deadline=Deadline(5.0, clock=clock))
    limiter.pause_for(30.0)
    with pytest.raises(DeadlineExceeded, match=r"^gave up: the run deadline \(--deadline 5 s\) "
                                               r"ran out while every request waited out a 30 s"):
        limiter.acquire()
    assert clock.sleeps == []


def test_one_warning_per_outage_and_one_debug_line_per_wait(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(1000.0)
    policy = default_policy(clock)
    caplog.set_level(logging.DEBUG, logger="etl.extract")
    down = Transient("http_503", "GET /p: HTTP 503", brief="HTTP 503 X.1")

    def other_worker(attempt: int) -> str:
        if attempt == 1:  # meets the outage another worker already reported
            raise down
        return "b"

    def first_worker(attempt: int) -> str:
        if attempt == 1:
            raise down
        return policy.call(other_worker)

    assert policy.call(first_worker) == "b"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["API unavailable (HTTP 503 X.1), retrying for up to 120 s"]
    waits = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert waits == [f"attempt 1 failed (http_503): GET /p: HTTP 503; retrying in {s:.1f} s"
                     for s in clock.sleeps]
    assert len(waits) == 2
    # Once it answered, the next failure is a new outage: one more line.
    policy.call(failing(1, down)[1])  # type: ignore[arg-type]
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2
    assert policy.outages == 2


# -- rules the mutation campaign found unpinned (docs/development/mutation.md) ---------------


@pytest.mark.parametrize("value,expected", [
    ("1", 1.0), ("0.5", 0.5), ("600", 600.0), ("601", 600.0), ("nan", None), ("inf", 600.0),
    # HTTP dates: GMT, "-0000" (RFC 5322: UTC, no zone known; Python gives a naive datetime),
    # numeric offsets, which move the instant
    ("Fri, 27 Nov 2026 03:00:07 GMT", 7.0), ("Fri, 27 Nov 2026 03:00:07 -0000", 7.0),
    ("Fri, 27 Nov 2026 03:00:07 +0000", 7.0), ("Fri, 27 Nov 2026 05:00:07 +0200", 7.0),
    ("Fri, 27 Nov 2026 02:00:07 -0100", 7.0), ("Fri, 27 Nov 2026 03:00:00 GMT", None),
    # dates no calendar holds are garbage, never a traceback
    ("Fri, 27 Nov 2026 25:00:00 GMT", None), ("Fri, 1 Jan 99999999999 00:00:00 GMT", None),
    ("Fri, 27 Nov 2026 03:00:07 +9999", None), ("", None), ("   ", None),
])
def test_retry_after_values(value: str, expected: float | None) -> None:
    now = datetime(2026, 11, 27, 3, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after(value, now=now) == expected


class Ceiling(random.Random):
    """Full jitter's largest draw, so a test sees the ceiling itself."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_backoff_ceiling_doubles_from_the_base_up_to_the_cap() -> None:
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=None, backoff_base=0.5, backoff_cap=30.0, budget=100,
                         limiter=Limiter(sleep=clock.sleep, clock=clock), sleep=clock.sleep,
                         clock=clock, rng=Ceiling())
    assert [policy.backoff(n) for n in range(1, 10)] == [
        0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    # the exponent is clamped, so a huge attempt number still gives the cap, not an overflow
    assert policy.backoff(10**6) == 30.0
    huge = RetryPolicy(max_attempts=None, backoff_base=1.0, backoff_cap=float("inf"), budget=1,
                       limiter=policy.limiter, sleep=clock.sleep, rng=Ceiling())
    assert huge.backoff(10**6) == 2.0**64


def test_a_policy_without_a_generator_of_its_own_still_jitters() -> None:
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=None, backoff_base=1.0, backoff_cap=8.0, budget=1,
                         limiter=Limiter(sleep=clock.sleep, clock=clock), sleep=clock.sleep)
    draws = [policy.backoff(4) for _ in range(50)]
    assert all(0.0 <= d <= 8.0 for d in draws) and len(set(draws)) > 1
    assert policy.window == 120.0  # the class default is the product's --retry-window default


@pytest.mark.parametrize("exc,pauses", [
    (Transient("http_503", "down"), 0),  # one worker's bad luck: only it waits
    (Transient("timeout", "slow"), 0),
    (Transient("http_503", "down", retry_after=2.0), 1),  # the server said when: everyone waits
    (Transient("http_429", "slow down", throttling=True), 1),
])
def test_which_failures_pause_every_worker(exc: Transient, pauses: int) -> None:
    clock = FakeClock()
    policy = make_policy(clock)
    assert policy.call(failing(1, exc)[1]) == "ok"  # type: ignore[arg-type]
    assert policy.limiter.pauses == pauses
    assert Transient("x", "y").throttling is False


def test_a_wait_that_ends_exactly_at_the_window_is_taken() -> None:
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=None, window=10.0, backoff_base=1.0, backoff_cap=1.0,
                         budget=100, limiter=Limiter(sleep=clock.sleep, clock=clock),
                         sleep=clock.sleep, clock=clock)
    calls, fn = failing(1, Transient("http_503", "down", retry_after=10.0))
    assert policy.call(fn) == "ok"  # type: ignore[arg-type]
    assert clock.sleeps == [10.0] and calls == [1, 2]


def test_a_wait_that_ends_exactly_at_the_deadline_is_not_taken() -> None:
    from etl.extract.throttle import Deadline, DeadlineExceeded

    clock = FakeClock()
    policy = RetryPolicy(max_attempts=None, window=120.0, backoff_base=1.0, backoff_cap=1.0,
                         budget=100, limiter=Limiter(sleep=clock.sleep, clock=clock),
                         sleep=clock.sleep, clock=clock, deadline=Deadline(10.0, clock=clock))
    calls, fn = failing(1, Transient("http_503", "down", retry_after=10.0))
    with pytest.raises(DeadlineExceeded):
        policy.call(fn)  # type: ignore[arg-type]
    assert clock.sleeps == [] and calls == [1]


def test_a_wait_that_leaves_no_room_for_its_attempt_is_not_taken() -> None:
    """Waiting 9.5 of the 10 s left would send the next request with half a second to go: the
    run says the API was failing instead of timing out that request."""
    from etl.extract.throttle import ATTEMPT_ROOM_S, Deadline, DeadlineExceeded

    def attempt(wait: float) -> tuple[list[int], Any]:
        clock = FakeClock()
        policy = RetryPolicy(max_attempts=None, window=120.0, backoff_base=1.0,
                             backoff_cap=1.0, budget=100,
                             limiter=Limiter(sleep=clock.sleep, clock=clock), sleep=clock.sleep,
                             clock=clock, deadline=Deadline(10.0, clock=clock))
        calls, fn = failing(1, Transient("http_503", "down", retry_after=wait))
        try:
            return calls, policy.call(fn)  # type: ignore[arg-type]
        except DeadlineExceeded as exc:
            return calls, exc

    calls, got = attempt(10.0 - ATTEMPT_ROOM_S / 2)
    assert calls == [1] and str(got) == ("gave up: the run deadline (--deadline 10 s) ran out "
                                         "while the API was failing (attempt 1: down)")
    assert attempt(10.0 - ATTEMPT_ROOM_S * 2) == ([1, 2], "ok")  # room for it: the wait is taken


def test_a_pause_that_leaves_no_room_for_the_request_fails_at_once() -> None:
    """The shared pause follows the same rule as a retry's wait (``Deadline.allows_wait``)."""
    from etl.extract.throttle import ATTEMPT_ROOM_S, Deadline, DeadlineExceeded

    clock = FakeClock()
    limiter = Limiter(sleep=clock.sleep, clock=clock, deadline=Deadline(10.0, clock=clock))
    limiter.pause_for(10.0 - ATTEMPT_ROOM_S / 2)
    with pytest.raises(DeadlineExceeded, match="while every request waited out a 10 s pause"):
        limiter.acquire()
    assert clock.sleeps == []
    limiter = Limiter(sleep=clock.sleep, clock=clock, deadline=Deadline(10.0, clock=clock))
    limiter.pause_for(10.0 - ATTEMPT_ROOM_S * 2)
    limiter.acquire()
    assert clock.sleeps == [10.0 - ATTEMPT_ROOM_S * 2]


def test_a_deadline_far_away_leaves_the_window_to_end_the_retries() -> None:
    from etl.extract.throttle import Deadline

    clock = FakeClock()
    policy = RetryPolicy(max_attempts=None, window=5.0, backoff_base=1.0, backoff_cap=1.0,
                         budget=100, limiter=Limiter(sleep=clock.sleep, clock=clock),
                         sleep=clock.sleep, clock=clock, deadline=Deadline(1000.0, clock=clock),
                         rng=Ceiling())
    calls, fn = outage(clock, float("inf"))
    with pytest.raises(UpstreamError) as info:
        policy.call(fn)  # type: ignore[arg-type]
    assert type(info.value) is UpstreamError
    assert str(info.value) == ("the API stayed unavailable after 6 attempt(s) over 5 s "
                               "(--retry-window 5 s): GET /p: HTTP 503")


def test_recovery_is_logged_with_the_outage_length(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(start=1000.0)  # not 0: the length is a difference of two clock readings
    policy = RetryPolicy(max_attempts=None, backoff_base=2.0, backoff_cap=2.0, budget=100,
                         limiter=Limiter(sleep=clock.sleep, clock=clock), sleep=clock.sleep,
                         clock=clock, rng=Ceiling())
    caplog.set_level(logging.DEBUG, logger="etl.extract")
    assert policy.call(failing(2, Transient("http_503", "down"))[1]) == "ok"  # type: ignore
    assert policy.call(failing(0, Transient("http_503", "down"))[1]) == "ok"  # type: ignore
    messages = [r.getMessage() for r in caplog.records]
    assert [m for m in messages if m.startswith("API available")] == [
        "API available again after 4.0 s"]
    waits = [r for r in caplog.records if getattr(r, "event", "") == "retry"]
    assert [(r.attempt, r.wait_s) for r in waits] == [(1, 2.0), (2, 2.0)]  # type: ignore


def test_wait_s_is_rounded_to_milliseconds(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    policy = make_policy(clock)
    caplog.set_level(logging.DEBUG, logger="etl.extract")
    policy.call(failing(1, Transient("http_503", "down", retry_after=1.23456))[1])  # type: ignore
    assert [getattr(r, "wait_s", None) for r in caplog.records
            if getattr(r, "event", "") == "retry"] == [1.235]


@pytest.mark.parametrize("status,kind", [
    (499, UpstreamError), (500, Transient), (599, Transient), (418, UpstreamError),
])
def test_5xx_is_transient_and_other_unknown_statuses_are_final(status: int, kind: type) -> None:
    out = classify(status, ApiErrorBody(), method="GET", path=PATH, request_id=None)
    assert type(out) is kind


def test_messages_keep_their_own_script_and_the_first_error_wins() -> None:
    from etl.extract.retry import describe

    assert describe("GET", "/p", 409, ApiErrorBody("C", "系统繁忙"), None) == (
        'GET /p: HTTP 409 C "系统繁忙"')
    assert parse_error_body('[{"errorCode": "A", "errorMessage": "first"}, '
                            '{"errorCode": "B", "errorMessage": "second"}]') == ApiErrorBody(
        "A", "first")
    assert parse_error_body('[{"errorCode": "A"}, "not an object"]') == ApiErrorBody("A", "")
    assert parse_error_body('["not an object", {"errorCode": "B"}]') == ApiErrorBody()
    assert parse_error_body("[" * 100_000) == ApiErrorBody()  # nesting too deep to decode
    with pytest.raises(dataclasses.FrozenInstanceError):
        ApiErrorBody("A").code = "B"  # type: ignore[misc]
