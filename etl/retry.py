"""The one retry policy of the extractor: what is transient, what is final, how long to wait.

Facts are data here (API-NOTES, "Errors and throttling"): which HTTP status and SWR error code is
worth another attempt, which means "stop now" and with which ``etl.errors`` leaf. The policy wraps
tenacity: exponential backoff with full jitter and a cap, ``Retry-After`` honoured (seconds or an
HTTP date), ``max_attempts`` per request and a retry budget shared by the whole run.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from etl.errors import AuthError, BadRequestError, EtlError, NotFoundError, UpstreamError
from etl.logs import mask
from etl.throttle import Limiter, Sleep

T = TypeVar("T")

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


def parse_error_body(text: str | bytes | None) -> ApiErrorBody:
    """Read an error body in any of the four shapes API-NOTES lists; unknown shapes give ''.

    Shapes: ``[{"errorCode", "errorMessage"}]``, ``{"errors": [...]}``,
    ``{"errorCode", "errorMessage"}`` and the gateway's ``{"error_code", "error_msg"}``
    (also IAM's ``{"error": {"code", "message"}}``).
    """
    if not text:
        return ApiErrorBody()
    try:
        data: Any = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: deep nesting
        return ApiErrorBody()
    if isinstance(data, dict) and isinstance(data.get("errors"), list):
        data = data["errors"]
    if isinstance(data, list):
        data = data[0] if data and isinstance(data[0], dict) else {}
    if not isinstance(data, dict):
        return ApiErrorBody()
    if isinstance(data.get("error"), dict):
        data = data["error"]
    code = data.get("errorCode", data.get("error_code", data.get("code", "")))
    message = data.get("errorMessage", data.get("error_msg", data.get("message", "")))
    return ApiErrorBody(code=str(code or ""), message=str(message or ""))


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
        except (TypeError, ValueError, IndexError):
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
    ) -> None:
        super().__init__(detail)
        self.cause = cause
        self.detail = detail
        self.retry_after = retry_after
        self.throttling = throttling


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
    if (status, body.code) in TRANSIENT_CODES:
        return Transient(f"http_{status}", detail, retry_after=wait, throttling=True)
    if status in TRANSIENT_STATUS or status >= 500:
        return Transient(
            f"http_{status}", detail, retry_after=wait, throttling=status in THROTTLING_STATUS
        )
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
    once. Throttling answers and ``Retry-After`` pause the shared ``Limiter`` so every worker
    waits, not just the one that was told.
    """

    def __init__(
        self,
        *,
        max_attempts: int,
        backoff_base: float,
        backoff_cap: float,
        budget: int,
        limiter: Limiter,
        sleep: Sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.budget = budget
        self.limiter = limiter
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self.retries = 0
        self.causes: Counter[str] = Counter()
        self.waits: list[float] = []

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**(attempt-1))]."""
        ceiling = min(self.backoff_cap, self.backoff_base * (2 ** max(0, attempt - 1)))
        with self._lock:
            return self._rng.uniform(0, ceiling)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if not isinstance(exc, Transient):  # retry= only lets Transient through
            return self.backoff(state.attempt_number)
        delay = exc.retry_after if exc.retry_after is not None else self.backoff(
            state.attempt_number
        )
        if exc.retry_after is not None or exc.throttling:
            # Slow the whole scan down, not just this worker.
            self.limiter.pause_for(delay)
        with self._lock:
            self.waits.append(delay)
        return delay

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        cause = exc.cause if isinstance(exc, Transient) else "unknown"
        with self._lock:
            if self.retries >= self.budget:
                raise RetryBudgetExhausted(
                    f"retry budget of {self.budget} retries for this run exhausted; "
                    f"last failure: {exc}"
                ) from exc
            self.retries += 1
            self.causes[cause] += 1

    def call(self, fn: Callable[[int], T]) -> T:
        """Run ``fn(attempt_number)`` under the policy; exhausted transients -> UpstreamError."""
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(Transient),
            before_sleep=self._before_sleep,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return fn(attempt.retry_state.attempt_number)
        except Transient as exc:
            raise UpstreamError(
                f"the API stayed unavailable after {self.max_attempts} attempt(s): {exc.detail}"
            ) from exc
        raise AssertionError("unreachable")  # pragma: no cover


def make_policy(settings: Any, limiter: Limiter, sleep: Sleep,
                rng: random.Random | None = None) -> RetryPolicy:
    """The policy for one scan, from ``Settings`` fields."""
    return RetryPolicy(
        max_attempts=settings.max_attempts,
        backoff_base=settings.backoff_base,
        backoff_cap=settings.backoff_cap,
        budget=settings.retry_budget,
        limiter=limiter,
        sleep=sleep,
        rng=rng,
    )

