"""The one retry policy of the extractor: what is transient, what is final, how long to wait.

Facts are data here (docs/how-it-works/swr-api.md, "Status codes and errors" and "Throttling and
``Retry-After``"): which HTTP status and SWR error code is worth another attempt, which means
"stop now" and with which ``etl.errors`` leaf. The policy wraps tenacity: exponential backoff
with full jitter and a cap, ``Retry-After`` honoured (seconds or an HTTP date). Retrying is
bounded by time, not by a count: each request may retry for
``retry_window`` seconds (a 60 s outage of the API is ridden out with the defaults), never past
the run's ``Deadline``; ``max_attempts``, when given, is an extra cap; the run's retry budget is
shared by every request. This module also holds the one reader of API error bodies, used for SWR
answers and the IAM login alike.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type

from etl.errors import AuthError, BadRequestError, EtlError, NotFoundError, UpstreamError
from etl.extract.throttle import Clock, Deadline, Limiter, Sleep
from etl.logs import mask

T = TypeVar("T")
log = logging.getLogger("etl.extract")

# (status, SWR error code) answers that are worth another attempt although the status is 4xx.
TRANSIENT_CODES: dict[tuple[int, str], str] = {
    (409, "SVCSTG.SWR.4090023"): "system busy",
    (403, "SVCSTG.SWR.4031032"): "too many requests",
    (403, "SVCSTG.SWR.4031042"): "too many requests",
}
# Statuses that are transient whatever the body says (429: gateway throttling APIG.0308).
TRANSIENT_STATUS = frozenset({429})
# Answers that mean "slow down": they pause every worker, not just the one that got them.
THROTTLING_STATUS = frozenset({429})
# Final statuses and the error leaf each becomes (other 4xx: UpstreamError).
FINAL_STATUS: dict[int, type[EtlError]] = {
    400: BadRequestError,
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
}
# A Retry-After longer than this is clipped: a nightly job must finish the same night.
RETRY_AFTER_MAX = 600.0


@dataclass(frozen=True)
class ApiErrorBody:
    """The code and message of an SWR/API-gateway error body (either may be empty)."""

    code: str = ""
    message: str = ""


# Where an error body keeps its code and message, first match wins (the SWR and API-gateway
# shapes; IAM uses keystone's ``{"error": {...}}``). A key present but empty does not hide the next.
ERROR_CODE_KEYS = ("errorCode", "error_code", "code")
ERROR_MESSAGE_KEYS = ("errorMessage", "error_msg", "message")


def parse_error_body(text: str | bytes | None) -> ApiErrorBody:
    """Read an error body in any shape SWR, the API gateway or IAM use; unknown shapes give ''.

    Shapes: ``[{"errorCode", "errorMessage"}]``, ``{"errors": [...]}``,
    ``{"errorCode", "errorMessage"}``, the gateway's ``{"error_code", "error_msg"}`` and IAM's
    ``{"error": {"code", "message"}}``. The one parser for every error body the tool reads.
    """
    if not text:
        return ApiErrorBody()
    try:
        data: Any = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: deep nesting
        return ApiErrorBody()
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        data = data["error"]
    elif isinstance(data, dict) and isinstance(data.get("errors"), list):
        data = data["errors"]
    if isinstance(data, list):
        data = data[0] if data and isinstance(data[0], dict) else {}
    if not isinstance(data, dict):
        return ApiErrorBody()
    code = next((data[k] for k in ERROR_CODE_KEYS if data.get(k) not in (None, "")), "")
    message = next((data[k] for k in ERROR_MESSAGE_KEYS if data.get(k) not in (None, "")), "")
    return ApiErrorBody(code=_scalar_text(code), message=_scalar_text(message))


def _scalar_text(value: Any) -> str:
    """A code or message as text; nested structures are not a code or a message."""
    return str(value) if isinstance(value, str | int | float) and not isinstance(
        value, bool) else ""


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (seconds or HTTP date); 0/past/garbage: None."""
    if not value:
        return None
    value = value.strip()
    seconds: float | None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        # TypeError/IndexError: older Pythons' answers to garbage; OverflowError: a year too
        # large for the C library ("1 Jan 99999999999"), which must not become a traceback.
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if seconds != seconds or seconds <= 0:  # NaN, zero or past: fall back to backoff
        return None
    return min(seconds, RETRY_AFTER_MAX)


class Transient(Exception):
    """One failed attempt worth retrying. Internal: never leaves the extractor."""

    def __init__(
        self,
        cause: str,
        detail: str,
        *,
        retry_after: float | None = None,
        throttling: bool = False,
        brief: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.cause = cause
        self.detail = detail
        self.retry_after = retry_after
        self.throttling = throttling
        # What an operator needs to recognise the outage, e.g. "HTTP 503 SVCSTG.SWR.5000001".
        self.brief = brief or cause


def describe(
    method: str, path: str, status: int | None, body: ApiErrorBody, request_id: str | None
) -> str:
    """``GET /path: HTTP 503 SVCSTG.SWR.5000001 "message" (X-Request-Id abc)``, masked."""
    parts = [f"{method} {path}:"]
    if status is not None:
        parts.append(f"HTTP {status}")
    if body.code:
        parts.append(body.code)
    if body.message:
        parts.append(json.dumps(body.message, ensure_ascii=False))
    if request_id:
        parts.append(f"(X-Request-Id {request_id})")
    return mask(" ".join(parts))


def classify(
    status: int, body: ApiErrorBody, *, method: str, path: str, request_id: str | None,
    retry_after: str | None = None,
) -> Transient | EtlError:
    """Turn a non-2xx answer into a ``Transient`` (retry it) or a final ``EtlError`` leaf."""
    detail = describe(method, path, status, body, request_id)
    wait = parse_retry_after(retry_after)
    brief = mask(" ".join(p for p in (f"HTTP {status}", body.code) if p))
    if (status, body.code) in TRANSIENT_CODES:
        return Transient(f"http_{status}", detail, retry_after=wait, throttling=True, brief=brief)
    if status in TRANSIENT_STATUS or status >= 500:
        return Transient(f"http_{status}", detail, retry_after=wait,
                         throttling=status in THROTTLING_STATUS, brief=brief)
    leaf = FINAL_STATUS.get(status)
    if leaf is NotFoundError:
        return NotFoundError(f"endpoint not found in this region: {detail}")
    if leaf is BadRequestError:
        return BadRequestError(f"the API rejected the request: {detail}")
    if leaf is AuthError:
        what = "authentication failed" if status == 401 else "permission refused"
        return AuthError(f"{what}: {detail}")
    return UpstreamError(f"unexpected answer from the API: {detail}")


class RetryBudgetExhausted(UpstreamError):
    """The run used up ``settings.retry_budget``."""


class RetryPolicy:
    """The one policy: ``call(fn)`` runs ``fn`` until it returns, fails finally, or gives up.

    ``fn`` signals a retryable failure by raising ``Transient``; anything else propagates at
    once. A request is retried while the next wait still ends within ``window`` seconds of its
    first attempt and before the run's ``deadline`` (and, when ``max_attempts`` is given, while
    attempts remain). Throttling answers and ``Retry-After`` pause the shared ``Limiter`` so
    every worker waits, not just the one that was told. The first failure of an outage is logged
    once at warning level, whichever worker meets it; each wait at debug level.
    """

    def __init__(
        self,
        *,
        max_attempts: int | None,
        backoff_base: float,
        backoff_cap: float,
        budget: int,
        limiter: Limiter,
        sleep: Sleep,
        window: float = 120.0,
        deadline: Deadline | None = None,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.max_attempts = None if max_attempts is None else max(1, max_attempts)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.budget = budget
        self.window = window
        self.deadline = deadline
        self.limiter = limiter
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._outage_since: float | None = None
        self.retries = 0
        self.causes: Counter[str] = Counter()
        self.outages = 0

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**(attempt-1))]."""
        ceiling = min(self.backoff_cap, self.backoff_base * (2 ** min(64, max(0, attempt - 1))))
        with self._lock:
            return self._rng.uniform(0, ceiling)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Transient) and exc.retry_after is not None:
            return exc.retry_after
        return self.backoff(state.attempt_number)

    def _stopper(self, started: float, why: dict[str, str]) -> Callable[[RetryCallState], bool]:
        """Stop when the attempt cap, the window or the deadline (``Deadline.allows_wait``)
        leaves no room for the wait."""

        def stop(state: RetryCallState) -> bool:
            wait = state.upcoming_sleep
            if self.max_attempts is not None and state.attempt_number >= self.max_attempts:
                why["stop"] = "attempts"
            elif self.deadline is not None and not self.deadline.allows_wait(wait):
                why["stop"] = "deadline"
            elif self._clock() - started + wait > self.window:
                why["stop"] = "window"
            else:
                return False
            why["wait"] = f"{wait:.0f}"
            return True

        return stop

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        cause = exc.cause if isinstance(exc, Transient) else "unknown"
        delay = state.upcoming_sleep
        with self._lock:
            if self.retries >= self.budget:
                raise RetryBudgetExhausted(
                    f"retry budget of {self.budget} retries for this run exhausted; "
                    f"last failure: {exc}"
                ) from exc
            self.retries += 1
            self.causes[cause] += 1
            first_of_outage = self._outage_since is None
            if first_of_outage:
                self._outage_since = self._clock()
                self.outages += 1
        if isinstance(exc, Transient) and (exc.retry_after is not None or exc.throttling):
            # Slow the whole scan down, not just this worker.
            self.limiter.pause_for(delay)
        if first_of_outage:
            brief = exc.brief if isinstance(exc, Transient) else cause
            left = self.window if self.deadline is None else min(
                self.window, self.deadline.remaining())
            log.warning("API unavailable (%s), retrying for up to %.0f s", brief, left,
                        extra={"event": "outage", "cause": cause})
        log.debug("attempt %d failed (%s): %s; retrying in %.1f s", state.attempt_number, cause,
                  exc, delay, extra={"event": "retry", "cause": cause,
                                     "attempt": state.attempt_number,
                                     "wait_s": round(delay, 3)})

    def _recovered(self) -> None:
        with self._lock:
            since, self._outage_since = self._outage_since, None
        if since is not None:
            log.debug("API available again after %.1f s", self._clock() - since,
                      extra={"event": "outage_over"})

    def call(self, fn: Callable[[int], T]) -> T:
        """Run ``fn(attempt_number)`` under the policy; exhausted transients -> UpstreamError."""
        started = self._clock()
        why: dict[str, str] = {}
        retrying = Retrying(
            stop=self._stopper(started, why),
            wait=self._wait,
            retry=retry_if_exception_type(Transient),
            before_sleep=self._before_sleep,
            sleep=self._sleep,
            reraise=True,
        )
        attempts = 0
        try:
            for attempt in retrying:
                succeeded = False
                with attempt:  # a failure is recorded by tenacity, not raised here
                    attempts = attempt.retry_state.attempt_number
                    result = fn(attempts)
                    succeeded = True
                if succeeded:
                    if self._outage_since is not None:
                        self._recovered()
                    return result
        except Transient as exc:
            raise self._gave_up(exc, attempts, self._clock() - started, why) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _gave_up(self, exc: Transient, attempts: int, spent: float,
                 why: dict[str, str]) -> UpstreamError:
        """The error for a request that stayed transient, saying which bound ended it."""
        stop, wait = why.get("stop", "attempts"), why.get("wait", "?")
        if stop == "deadline" and self.deadline is not None:
            return self.deadline.exceeded(
                f"while the API was failing (attempt {attempts}: {exc.detail})")
        head = f"the API stayed unavailable after {attempts} attempt(s)"
        if stop == "window":
            if exc.retry_after is not None:
                head += (f" (it asked to retry after {wait} s, beyond --retry-window "
                         f"{self.window:g} s)")
            else:
                head += f" over {spent:.0f} s (--retry-window {self.window:g} s)"
        return UpstreamError(f"{head}: {exc.detail}")


def make_policy(settings: Any, limiter: Limiter, sleep: Sleep,
                rng: random.Random | None = None, *, clock: Clock = time.monotonic,
                deadline: Deadline | None = None) -> RetryPolicy:
    """The policy for one scan, from ``Settings`` fields."""
    return RetryPolicy(
        max_attempts=settings.max_attempts,
        backoff_base=settings.backoff_base,
        backoff_cap=settings.backoff_cap,
        budget=settings.retry_budget,
        window=settings.retry_window,
        deadline=deadline,
        limiter=limiter,
        sleep=sleep,
        clock=clock,
        rng=rng,
    )
