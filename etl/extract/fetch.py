"""One page request of a scan: its attempts, each built, signed, sent and its answer judged.

``PageFetcher.fetch(offset, limit)`` asks ``GET /v2/manage/dockerhub/repos`` for one page under
the one retry policy (``etl.extract.retry``). Every attempt prepares a new request, so auth (a
token, an AK/SK signature) runs per attempt, and goes out as one bounded exchange
(``etl.extract.transport``: same-origin redirects only, a byte cap, a wall clock per request and
the run's deadline). A 401 may refresh the credentials, a bounded number of times per scan. The
answer becomes a ``Fetched`` page, a ``Transient`` failure the policy retries, or the
``etl.errors`` leaf that ends the run.
"""

from __future__ import annotations

import logging
import threading
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from requests.auth import AuthBase

from etl.config.settings import Settings
from etl.errors import AuthError, ConfigError, EtlError, UpstreamError
from etl.extract.contentrange import parse_content_range
from etl.extract.failures import (
    Cancelled,
    HttpFailure,
    NoTimeLeft,
    TimedOut,
    TlsRefused,
    TlsSetup,
    TooLarge,
)
from etl.extract.response import decode_rows, page_total
from etl.extract.retry import RetryPolicy, Transient, classify, parse_error_body
from etl.extract.session import Limits, send_env_of
from etl.extract.throttle import Limiter
from etl.extract.transport import Answer, exchange

log = logging.getLogger("etl.extract")

REPOS_PATH = "/v2/manage/dockerhub/repos"

# A 401 mid-scan refreshes the credentials once per token (docs/how-it-works/swr-api.md,
# "Token"). A token that served requests and is then refused expired (or was revoked): refresh
# again. A token refused before it served anything means the credentials are bad: fail. At most
# this many refreshes in one scan, so nothing can storm the IAM endpoint.
MAX_REFRESHES_PER_SCAN = 5


class Stopped(Exception):
    """The scan ended (finished, failed or abandoned): leftover workers stop at once."""


class _Unauthorized(Exception):
    """A 401: not retried by the policy; the scan may refresh the auth once."""

    def __init__(self, error: AuthError, generation: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.generation = generation


@dataclass(frozen=True)
class Fetched:
    """One usable answer: the page's rows, raw body and the total it reported."""

    offset: int
    limit: int
    status: int
    attempt: int
    rows: list[Any]
    body: bytes
    content_range: str | None
    total: int | None
    fetched_at: str


class Counters(Protocol):
    """The live figures a fetcher adds to (``etl.extract.scan.ScanStats``)."""

    requests: int
    bytes: int


@dataclass(eq=False)
class PageFetcher:
    """Fetches pages of the official image list for one scan; shared by its worker threads.

    ``counters`` are updated under ``lock``; ``stop`` set means the scan is over: attempts not
    yet sent raise ``Stopped`` and a waiting exchange is abandoned.
    """

    session: requests.Session
    settings: Settings
    auth: AuthBase | None
    policy: RetryPolicy
    limiter: Limiter
    limits: Limits
    counters: Counters
    lock: threading.Lock
    stop: threading.Event
    # Requests in flight to this scan's server across the sources of a run (None: this scan's
    # workers alone bound them): the --concurrency budget shared by the sources on one server.
    slots: threading.Semaphore | None = None

    def __post_init__(self) -> None:
        self._refresh_lock = threading.Lock()
        self._auth_generation = 0
        self._refreshes = 0
        self._served: set[int] = set()  # auth generations that got a 2xx answer
        self.url = self.settings.endpoint.rstrip("/") + REPOS_PATH
        self.path = urlsplit(self.url).path  # shown in messages: any base path included
        # Proxies / CA bundle from the environment, resolved once (not per page: it walks
        # os.environ, which costs more than the request on a fast endpoint).
        self._send_env = send_env_of(self.session, self.url)

    def fetch(self, offset: int, limit: int) -> Fetched:
        """One page, under the retry policy; a 401 refreshes the auth (bounded) if it can."""
        while True:
            try:
                return self.policy.call(lambda attempt: self._attempt(offset, limit, attempt))
            except _Unauthorized as exc:
                self._refresh_after(exc)

    def _refresh_after(self, exc: _Unauthorized) -> None:
        """Refresh the credentials a 401 refused, or raise its ``AuthError`` when that cannot
        help (no refresh, a token refused before it served anything, the refreshes used up)."""
        refresh = getattr(self.auth, "refresh", None)
        if not callable(refresh):
            raise exc.error from None
        with self._refresh_lock:
            # Another worker may already have refreshed since this request was sent: then just
            # send it again with the newer credentials.
            if self._auth_generation != exc.generation:
                return
            # Refused with the newest credentials: refresh if they are the first ones or have
            # served requests since they were issued.
            stale = exc.generation == 0 or exc.generation in self._served
            if not stale or self._refreshes >= MAX_REFRESHES_PER_SCAN:
                raise exc.error from None
            log.info("401 from the API: refreshing credentials")
            if not refresh():
                raise exc.error from None
            self._auth_generation += 1
            self._refreshes += 1

    def _params(self, offset: int, limit: int) -> dict[str, str | int]:
        params: dict[str, str | int] = {}
        if self.settings.namespace:
            params["namespace"] = self.settings.namespace
        if self.settings.image_name:
            params["image_name"] = self.settings.image_name
        # Always both: sibling SWR list calls send Content-Range only when both are given
        # (docs/how-it-works/swr-api.md, "The call").
        params["offset"] = offset
        params["limit"] = limit
        return params

    def _attempt(self, offset: int, limit: int, attempt: int) -> Fetched:
        """Build, prepare (auth runs here) and send ONE request; judge the answer."""
        where = f"{self.path}?offset={offset}&limit={limit}"
        if self.stop.is_set():
            raise Stopped(where)
        self.limiter.acquire()
        if self.stop.is_set():
            raise Stopped(where)
        generation = self._auth_generation
        url = requests.Request("GET", self.url, params=self._params(offset, limit)).prepare().url
        with self.lock:
            self.counters.requests += 1
        try:
            with self.slots or nullcontext():
                answer = exchange(self.session, self._prepare, str(url), limits=self.limits,
                                  env=self._send_env, cancel=self.stop)
        except Cancelled:
            raise Stopped(where) from None
        except HttpFailure as exc:
            raise self._failed(exc, where) from exc
        with self.lock:
            self.counters.bytes += len(answer.body)
        rows, total = self._judge(answer, offset, limit, attempt, where, generation)
        log.debug(
            "page offset=%d limit=%d rows=%d status=%d attempt=%d total=%s bytes=%d",
            offset, limit, len(rows), answer.status, attempt, total, len(answer.body),
            extra={"event": "page"},
        )
        return Fetched(
            offset=offset, limit=limit, status=answer.status, attempt=attempt, rows=rows,
            body=answer.body, content_range=answer.headers.get("Content-Range"), total=total,
            fetched_at=self._now(),
        )

    def _judge(self, answer: Answer, offset: int, limit: int, attempt: int, where: str,
               generation: int) -> tuple[list[Any], int | None]:
        """The rows and total of an answer, or the failure it means (raised)."""
        body, status, headers = answer.body, answer.status, answer.headers
        request_id = headers.get("X-Request-Id")
        if not 200 <= status < 300:
            log.debug("page offset=%d limit=%d status=%d attempt=%d failed", offset, limit,
                      status, attempt)
        if status == 401:
            err = classify(401, parse_error_body(body), method="GET", path=where,
                           request_id=request_id)
            raise _Unauthorized(err if isinstance(err, AuthError) else AuthError(str(err)),
                                generation)
        if not 200 <= status < 300:
            raise classify(status, parse_error_body(body), method="GET", path=where,
                           request_id=request_id, retry_after=headers.get("Retry-After"))
        self._served.add(generation)
        rows = decode_rows(body, where, status, request_id)
        if len(rows) > limit:
            raise Transient("too_many_rows", f"GET {where}: HTTP {status} with {len(rows)} rows, "
                            f"more than the limit of {limit} asked for (unusable answer)")
        total = page_total(parse_content_range(headers.get("Content-Range")), rows, where)
        if total is not None and total > self.settings.max_rows:
            raise UpstreamError(
                f"GET {where}: the API reported a total of {_count_text(total)} rows, above "
                f"--max-rows {self.settings.max_rows}; refusing to page on")
        return rows, total

    def _prepare(self, url: str) -> requests.PreparedRequest:
        """A fresh request for ``url`` (a page, or a same-origin redirect of it); auth runs here."""
        return self.session.prepare_request(requests.Request("GET", url, auth=self.auth))

    def _failed(self, exc: HttpFailure, where: str) -> Transient | EtlError:
        """What a failed exchange means for the SWR call: retry it, or which error ends it."""
        if exc.transient:
            reason = exc.reason
            if isinstance(exc, TimedOut):  # the option to look at, when the API is only slow
                reason = f"no complete answer within --timeout {self.settings.timeout:g} s"
            return Transient(exc.cause, f"GET {where}: {reason}", brief=reason)
        deadline = self.limits.deadline
        if isinstance(exc, NoTimeLeft) and deadline is not None:
            return deadline.exceeded(f"during GET {where} ({exc.reason})")
        words = _FINAL_WORDS.get(type(exc), "GET {where}: {reason}").format(
            where=where, reason=exc.reason, endpoint=self.settings.endpoint,
            mb=self.settings.max_body_mb)
        return ConfigError(words) if isinstance(exc, TlsSetup) else UpstreamError(words)

    def _now(self) -> str:
        if self.settings.now_override:
            return self.settings.now_override
        return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# How a final (not retried) transport failure of the SWR call reads; others: "GET …: <reason>".
_FINAL_WORDS: dict[type[HttpFailure], str] = {
    TlsRefused: "TLS verification failed for {endpoint}: SSLError (check --ca-bundle)",
    TlsSetup: "cannot set up TLS for {endpoint}: {reason}",
    TooLarge: ("GET {where}: response body larger than --max-body-mb {mb:g} (MiB, after "
               "decompression); read no further, not retried"),
}


def _count_text(n: int) -> str:
    """A reported count for a message: absurd ones are not printed digit by digit."""
    return str(n) if n < 2**63 else f"beyond 64-bit integers ({len(str(n))} digits)"
