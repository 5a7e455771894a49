"""One request limiter shared by every page worker of a scan, and the run's deadline.

Two things hold requests back: a *pause* (a throttling answer or a ``Retry-After`` stops ALL
workers until the time passes, not just the one that was told), and an optional token bucket
(``settings.max_rps``; the API gateway's default quota is 200 requests per second per API).
Neither may hold a run past its ``Deadline`` (``--deadline``): a pause that would end after it
fails the run at once instead of sleeping into a certain failure. Sleep and clock are injected so
tests can run on a fake clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from etl.errors import UpstreamError

Sleep = Callable[[float], None]
Clock = Callable[[], float]


# A wait that would leave less than this of the run's deadline is not taken: the request after
# it could hardly be answered in time, and the run would end "during GET ... (no complete answer
# in the 0.0 s that were left)" instead of saying why it waited (the API failing, or pausing it).
ATTEMPT_ROOM_S = 1.0


class DeadlineExceeded(UpstreamError):
    """The run's deadline (``--deadline``) ran out: exit 4, nothing of the run is loaded."""


class Deadline:
    """The wall-clock budget of one run: every request's timeout and every wait is cut to it."""

    def __init__(self, seconds: float, *, clock: Clock = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._ends = clock() + seconds

    def remaining(self) -> float:
        """Seconds left (0 once it has passed)."""
        return max(0.0, self._ends - self._clock())

    def allows_wait(self, seconds: float) -> bool:
        """Whether waiting ``seconds`` still leaves ``ATTEMPT_ROOM_S`` for the request after it:
        the one rule for every wait the deadline cuts (a retry's backoff, a shared pause)."""
        return seconds + ATTEMPT_ROOM_S < self.remaining()

    def exceeded(self, doing: str) -> DeadlineExceeded:
        """The error to raise when ``doing`` (e.g. ``"GET /path"``) cannot fit in what is left."""
        return DeadlineExceeded(
            f"gave up: the run deadline (--deadline {self.seconds:g} s) ran out {doing}")


class Limiter:
    """Gate every request of a scan: honour the shared pause, then the rate limit."""

    def __init__(
        self,
        max_rps: float | None = None,
        *,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        deadline: Deadline | None = None,
    ) -> None:
        self._sleep = sleep
        self._deadline = deadline
        self._clock = clock
        self._lock = threading.Lock()
        self._paused_until = 0.0
        self._rate = max_rps
        # Token bucket: start full with one second's worth (at least one token).
        self._capacity = max(1.0, max_rps or 1.0)
        self._tokens = self._capacity
        self._refilled_at = clock()
        self.pauses = 0

    def pause_for(self, seconds: float) -> None:
        """Hold every worker back for ``seconds`` from now (extends, never shortens a pause)."""
        if seconds <= 0:
            return
        with self._lock:
            until = self._clock() + seconds
            if until > self._paused_until:
                self._paused_until = until
                self.pauses += 1

    def paused_for(self) -> float:
        """Seconds left in the current pause (0 when not paused)."""
        with self._lock:
            return max(0.0, self._paused_until - self._clock())

    def acquire(self) -> None:
        """Block until a request may be sent.

        Raises:
            DeadlineExceeded: the shared pause leaves no room before the run's deadline.
        """
        while True:
            wait = self.paused_for()
            if wait <= 0:
                break
            if self._deadline is not None and not self._deadline.allows_wait(wait):
                raise self._deadline.exceeded(
                    f"while every request waited out a {wait:.0f} s pause the API asked for")
            self._sleep(wait)
        if self._rate is None:
            return
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(
                    self._capacity, self._tokens + (now - self._refilled_at) * self._rate
                )
                self._refilled_at = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                wait = (1.0 - self._tokens) / self._rate
            self._sleep(wait)
