"""The extractor: the only module that speaks HTTP to SWR's official image list.

``scan_official_images`` pages through ``GET /v2/manage/dockerhub/repos`` by contract (offset and
limit always sent, advance by rows received, stop on the reported total), fetches pages in
parallel once the total is known, proves each pass complete (distinct ids == total, total
unchanged, then a second read compared id for id: ``etl.extract.paging.PassCheck``) and rescans
when the
listing moves. Retries follow the one policy in ``etl.extract.retry``; every attempt prepares a new
request so auth (token, signing) runs per attempt. Every request goes through
``etl.extract.transport.exchange``: no cross-origin redirects, a byte cap, a wall clock per request
and
the run's deadline.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase

from etl import __version__
from etl.config.settings import Settings
from etl.errors import (
    AuthError,
    BadRequestError,
    ConfigError,
    EtlError,
    InternalError,
    UpstreamError,
)
from etl.extract.contentrange import parse_content_range
from etl.extract.paging import CHECK_PAGE_SIZE, PagePlanner, PassCheck, PassLedger, head_reason
from etl.extract.response import decode_rows, page_total, signature
from etl.extract.retry import RetryPolicy, Transient, classify, make_policy, parse_error_body
from etl.extract.throttle import Clock, Deadline, Limiter, Sleep
from etl.extract.transport import (
    BoundedSession,
    Cancelled,
    HttpFailure,
    Limits,
    NoTimeLeft,
    TimedOut,
    TlsRefused,
    TlsSetup,
    TooLarge,
    exchange,
    limits_of,
    send_env_of,
)

log = logging.getLogger("etl.extract")

REPOS_PATH = "/v2/manage/dockerhub/repos"
# Without any total (no header, no total_range) stop at the first empty page, but never send
# more than this many page requests in one pass: no input may loop forever.
MAX_PAGES_WITHOUT_TOTAL = 100_000
# Page requests a pass may send beyond one per row of the first reported total (re-plans).
EXTRA_PAGES_PER_PASS = 64
# --verify auto reads a listing of up to this many rows twice (one or two requests at
# CHECK_PAGE_SIZE); a larger one only has its first CHECK_PAGE_SIZE rows read again: reading
# 200,000 rows twice cost ~40 % more time (measured), against the performance targets.
AUTO_DOUBLE_READ_ROWS = 2000


def make_session(settings: Settings, *, deadline: Deadline | None = None) -> BoundedSession:
    """A session for the SWR API: User-Agent, TLS verification, pool size, the run's bounds.

    TLS verification is always on; ``settings.ca_bundle`` replaces the default CA store.
    Retries are ours (``etl.extract.retry``), so the adapter itself never retries. The session
    carries
    ``Limits``: ``--timeout`` per request, ``--max-body-mb`` per body and the run's ``Deadline``
    (``--deadline``, counted from now unless one is passed in), shared by the IAM login.
    """
    session = BoundedSession(limits_for(settings, deadline or Deadline(settings.deadline)))
    session.headers["User-Agent"] = f"swr-etl/{__version__}"
    session.headers["Accept"] = "application/json"
    session.verify = str(settings.ca_bundle) if settings.ca_bundle else True
    pool = max(10, settings.concurrency * 2)
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def limits_for(settings: Settings, deadline: Deadline | None) -> Limits:
    """The ``Limits`` of ``settings`` (``max_body_mb`` is in MiB)."""
    return Limits(timeout=settings.timeout, max_bytes=int(settings.max_body_mb * 2**20),
                  deadline=deadline)


@dataclass(frozen=True)
class Page:
    """One fetched page. A higher ``pass_no`` than before means: discard earlier passes."""

    pass_no: int
    offset: int
    rows: list[Any]
    body: bytes
    content_range: str | None
    fetched_at: str
    duplicate_ids: tuple[Any, ...] = ()
    total: int | None = None  # the total this page reported (header, else body's total_range)


@dataclass
class ScanStats:
    """What a scan did. Work counters (requests, retries, pages, bytes) cover every pass;
    ``total_reported`` and ``rows_seen`` describe the last pass."""

    requests: int = 0
    retries: int = 0
    retry_causes: dict[str, int] = field(default_factory=dict)
    pages: int = 0
    rescans: int = 0
    total_reported: int | None = None
    rows_seen: int = 0
    bytes: int = 0
    duration_s: float = 0.0
    complete: bool = False
    incomplete_reason: str | None = None
    proof: str | None = None  # how the last pass was proven complete (etl.extract.paging.PROOFS)


@dataclass(frozen=True)
class _Fetched:
    offset: int
    limit: int
    status: int
    attempt: int
    rows: list[Any]
    body: bytes
    content_range: str | None
    total: int | None
    fetched_at: str


# A 401 mid-scan refreshes the credentials (API-NOTES: "On a 401, refresh once, then fail"). A
# token that served requests and is then refused expired (or was revoked): refresh again. A token
# refused before it served anything means the credentials are bad: fail. At most this many
# refreshes in one scan, so nothing can storm the IAM endpoint.
MAX_REFRESHES_PER_SCAN = 5


class _Stopped(Exception):
    """The scan ended (finished, failed or abandoned): leftover workers stop at once."""


class _Unauthorized(Exception):
    """A 401: not retried by the policy; the scan may refresh the auth once."""

    def __init__(self, error: AuthError, generation: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.generation = generation


class Scan:
    """An iterable of ``Page`` (offset order within a pass) plus ``stats``. Iterate once."""

    def __init__(
        self,
        session: requests.Session,
        settings: Settings,
        *,
        auth: AuthBase | None,
        sleep: Sleep,
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self.session = session
        self.settings = settings
        self.auth = auth
        self.stats = ScanStats()
        self._clock = clock
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._auth_generation = 0
        self._refreshes = 0
        self._served: set[int] = set()  # auth generations that got a 2xx answer
        self._started = False
        self._page_budget = MAX_PAGES_WITHOUT_TOTAL
        self._pass_requests = 0
        self._stop = threading.Event()
        if sleep is time.sleep:
            # Real waits end early when the scan is over, so no worker outlives it by a backoff.
            def sleep(seconds: float) -> None:
                if self._stop.wait(seconds):
                    raise _Stopped("scan over")
        self.limits = limits_of(session, limits_for(settings, Deadline(settings.deadline,
                                                                        clock=clock)))
        self.deadline = self.limits.deadline
        self.limiter = Limiter(settings.max_rps, sleep=sleep, clock=clock, deadline=self.deadline)
        self.policy: RetryPolicy = make_policy(settings, self.limiter, sleep, rng, clock=clock,
                                               deadline=self.deadline)
        self.url = settings.endpoint.rstrip("/") + REPOS_PATH
        self._path = urlsplit(self.url).path  # shown in messages: any base path included
        # Proxies / CA bundle from the environment, resolved once (not per page: it walks
        # os.environ, which costs more than the request on a fast endpoint).
        self._send_env = send_env_of(session, self.url)

    def __iter__(self) -> Iterator[Page]:
        if self._started:
            raise InternalError("a Scan can be iterated only once")
        self._started = True
        return self._run()

    # -- the scan -----------------------------------------------------------------------------

    def _run(self) -> Iterator[Page]:
        started = self._clock()
        try:
            pass_no = 0
            values = self.settings.verify == "full"
            while True:
                ledger = PassLedger(pass_no, digests={} if values else None)
                responses, page_size = yield from self._pass(ledger)
                reason = ledger.incomplete_reason()
                proof = None
                if reason is None:
                    proof, reason = self._prove(ledger, responses, page_size)
                self.stats.total_reported = ledger.last_total
                self.stats.rows_seen = ledger.rows_seen
                if reason is None:
                    self.stats.complete, self.stats.incomplete_reason = True, None
                    self.stats.proof = proof
                    break
                if pass_no >= self.settings.max_rescans:
                    self.stats.complete, self.stats.incomplete_reason = False, reason
                    log.warning("scan incomplete after %d rescan(s): %s", pass_no, reason)
                    break
                log.info("rescanning (pass %d): %s", pass_no + 1, reason)
                pass_no += 1
                self.stats.rescans = pass_no
        finally:
            self.stats.duration_s = self._clock() - started
            self.stats.retries = self.policy.retries
            self.stats.retry_causes = dict(self.policy.causes)

    def _pass(self, ledger: PassLedger) -> Generator[Page, None, tuple[int, int]]:
        """One pass over the listing; stops early when it moved and a rescan is still allowed.

        Returns the number of responses the pass used and the page size it ended with (lower
        than asked when the server caps it).
        """
        planner = PagePlanner(self.settings.page_size)
        self._pass_requests = 0
        self._page_budget = MAX_PAGES_WITHOUT_TOTAL
        can_rescan = ledger.pass_no < self.settings.max_rescans
        seen: dict[int, int] = {}  # hash of a page's content -> the offset it came from
        responses = 0
        with closing(self._responses(planner)) as fetches:
            for fetched in fetches:
                responses += 1
                sig = signature(fetched.rows)
                earlier = seen.setdefault(hash(sig), fetched.offset) if sig else fetched.offset
                if earlier != fetched.offset:
                    self._check_ignored_offset(fetched, earlier, sig)
                if fetched.rows:
                    yield self._page(ledger, fetched)
                if ledger.moved and can_rescan:
                    break
        return responses, planner.page_size

    def _responses(self, planner: PagePlanner) -> Generator[_Fetched, None, None]:
        """The planner's pages in offset order: the first alone (it tells the total and any page
        size cap), the rest by ``--concurrency`` workers through a bounded window. Each page is
        accepted when the caller asks for the next one; closing stops at once."""
        fetched = self._next_sequential(planner)
        if fetched is None:
            return
        if fetched.total is not None:
            self._page_budget = fetched.total + EXTRA_PAGES_PER_PASS
        workers = self.settings.concurrency if fetched.total is not None else 1
        executor = ThreadPoolExecutor(workers, "swr-page") if workers > 1 else None
        futures: dict[int, Future[_Fetched]] = {}
        try:
            while fetched is not None:
                yield fetched
                dropped = planner.accept(fetched.offset, len(fetched.rows), fetched.total)
                for off, _ in dropped:
                    future = futures.pop(off, None)
                    if future is not None:
                        future.cancel()
                if executor is None:
                    fetched = self._next_sequential(planner)
                else:
                    fetched = self._next_parallel(planner, executor, futures)
        finally:
            for future in futures.values():
                future.cancel()
            if executor is not None:
                # Requests still running belong to dropped plans or an abandoned scan.
                self._stop.set()
                executor.shutdown(wait=True, cancel_futures=True)
                self._stop.clear()

    # -- the completeness proof ---------------------------------------------------------------

    def _prove(self, ledger: PassLedger, responses: int,
               page_size: int) -> tuple[str, str | None]:
        """How a pass whose count held is proven (``etl.extract.paging.PROOFS``), and why it cannot
        stand after all (None: it stands).

        Distinct ids equal to an unchanged total do not prove a pass: rows deleted behind the
        scan and as many inserted ahead of it keep both. One response is a snapshot by itself;
        otherwise the listing is read again (``--verify``): all of it, or with ``auto`` and a
        listing above AUTO_DOUBLE_READ_ROWS, its first CHECK_PAGE_SIZE rows.
        """
        if responses == 1:
            return "one-page", None
        verify = self.settings.verify
        if verify == "full":
            proof = "full"
        elif verify == "auto" and ledger.rows_seen > AUTO_DOUBLE_READ_ROWS:
            proof = "head"
        else:
            proof = "double-read"
        # The largest page, unless the server capped the pass's pages (keep the cap).
        limit = page_size if page_size < self.settings.page_size else CHECK_PAGE_SIZE
        try:
            return proof, self._check(ledger, limit, head=proof == "head")
        except BadRequestError:
            if limit <= page_size:
                raise
            # The pass's page size was accepted: an API that refuses the larger one is read
            # again at the pass's size rather than failing the run.
            log.warning("the API refused limit=%d for the completeness check; reading again "
                        "at limit=%d", limit, page_size)
            return proof, self._check(ledger, page_size, head=proof == "head")

    def _check(self, ledger: PassLedger, limit: int, *, head: bool) -> str | None:
        """Read the listing again at ``limit`` rows per request (only the first page with
        ``head``) and compare it with the pass; stops at the first page that differs."""
        self._pass_requests = 0
        self._page_budget = MAX_PAGES_WITHOUT_TOTAL
        before = self.stats.requests
        if head:
            first = self._fetch(0, limit)
            reason = head_reason(ledger, first.rows, first.total)
        else:
            check = PassCheck(ledger, values=self.settings.verify == "full")
            reason = None
            with closing(self._responses(PagePlanner(limit))) as fetches:
                for fetched in fetches:
                    reason = check.record(fetched.rows, fetched.total)
                    if reason is not None:
                        break
            reason = reason or check.finish()
        log.debug("completeness check: %d request(s) at limit=%d: %s",
                  self.stats.requests - before, limit, reason or "the listing matches the pass")
        return reason

    def _page(self, ledger: PassLedger, f: _Fetched) -> Page:
        dup = ledger.record(f.rows, f.total)
        with self._lock:
            self.stats.pages += 1
            # Live figures for progress displays; final values are set when the pass ends.
            if f.total is not None:
                self.stats.total_reported = f.total
            self.stats.retries = self.policy.retries
            self.stats.retry_causes = dict(self.policy.causes)
        return Page(
            pass_no=ledger.pass_no,
            offset=f.offset,
            rows=f.rows,
            body=f.body,
            content_range=f.content_range,
            fetched_at=f.fetched_at,
            duplicate_ids=tuple(dup),
            total=f.total,
        )

    def _next_sequential(self, planner: PagePlanner) -> _Fetched | None:
        item = planner.plan()
        return None if item is None else self._fetch(*item)

    def _next_parallel(
        self,
        planner: PagePlanner,
        executor: ThreadPoolExecutor,
        futures: dict[int, Future[_Fetched]],
    ) -> _Fetched | None:
        # A bounded window of planned pages keeps memory small whatever the listing size. Four
        # pages per worker: at 2 the workers stalled while the consumer wrote a chunk (measured:
        # concurrency 4 vs 1 at 50 ms latency went from 2.9x to 3.2x); ~12 MB at 1000-row pages.
        window = max(2, self.settings.concurrency * 4)
        while len(planner.pending) < window:
            item = planner.plan()
            if item is None:
                break
            futures[item[0]] = executor.submit(self._fetch, *item)
        if planner.done() or not planner.pending:
            return None
        offset = planner.pending[0][0]
        future = futures.pop(offset)
        return future.result()

    def _check_ignored_offset(self, fetched: _Fetched, earlier: int,
                              sig: tuple[Any, ...]) -> None:
        """The same page came back for two offsets: ask the earlier offset again to tell drift
        (rows inserted exactly one page's worth) from a server that ignores ``offset``, which
        would otherwise loop or duplicate rows."""
        again = self._fetch(earlier, fetched.limit)
        if signature(again.rows) == sig:
            raise UpstreamError(
                f"the API ignores the offset parameter: GET {self._path} with offset="
                f"{fetched.offset} returned the same {len(sig)} rows as offset={earlier}; "
                "refusing to loop or duplicate rows"
            )

    # -- one request --------------------------------------------------------------------------

    def _fetch(self, offset: int, limit: int) -> _Fetched:
        """One page, under the retry policy; a 401 refreshes the auth (bounded) if it can."""
        with self._lock:
            self._pass_requests += 1
            if self._pass_requests > self._page_budget:
                raise UpstreamError(
                    f"gave up: {self._page_budget} page requests in one pass did not cover the "
                    f"listing of GET {self._path} (the API keeps moving or never ends)"
                )
        refresh = getattr(self.auth, "refresh", None)
        while True:
            try:
                return self.policy.call(lambda attempt: self._attempt(offset, limit, attempt))
            except _Unauthorized as exc:
                if not callable(refresh):
                    raise exc.error from None
                with self._refresh_lock:
                    # Another worker may already have refreshed since this request was sent:
                    # then just send it again with the newer credentials.
                    if self._auth_generation == exc.generation:
                        # Refused with the newest credentials: refresh if they are the first
                        # ones or have served requests since they were issued.
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
        # Always both: sibling SWR APIs only send Content-Range when both are given (API-NOTES).
        params["offset"] = offset
        params["limit"] = limit
        return params

    def _attempt(self, offset: int, limit: int, attempt: int) -> _Fetched:
        """Build, prepare (auth runs here) and send ONE request; classify the answer."""
        where = f"{self._path}?offset={offset}&limit={limit}"
        if self._stop.is_set():
            raise _Stopped(where)
        self.limiter.acquire()
        if self._stop.is_set():
            raise _Stopped(where)
        generation = self._auth_generation
        url = requests.Request("GET", self.url, params=self._params(offset, limit)).prepare().url
        with self._lock:
            self.stats.requests += 1
        try:
            answer = exchange(self.session, self._prepare, str(url), limits=self.limits,
                              env=self._send_env, cancel=self._stop)
        except Cancelled:
            raise _Stopped(where) from None
        except HttpFailure as exc:
            raise self._failed(exc, where) from exc
        body, status, headers = answer.body, answer.status, answer.headers
        with self._lock:
            self.stats.bytes += len(body)
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
        raw_range = headers.get("Content-Range")
        total = page_total(parse_content_range(raw_range), rows, where)
        if total is not None and total > self.settings.max_rows:
            raise UpstreamError(
                f"GET {where}: the API reported a total of {_count(total)} rows, above "
                f"--max-rows {self.settings.max_rows}; refusing to page on")
        log.debug(
            "page offset=%d limit=%d rows=%d status=%d attempt=%d total=%s bytes=%d",
            offset, limit, len(rows), status, attempt, total, len(body),
            extra={"event": "page"},
        )
        return _Fetched(
            offset=offset, limit=limit, status=status, attempt=attempt, rows=rows,
            body=body, content_range=raw_range, total=total, fetched_at=self._now(),
        )

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
        if isinstance(exc, NoTimeLeft) and self.deadline is not None:
            return self.deadline.exceeded(f"during GET {where} ({exc.reason})")
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


def _count(n: int) -> str:
    """A reported count for a message: absurd ones are not printed digit by digit."""
    return str(n) if n < 2**63 else f"beyond 64-bit integers ({len(str(n))} digits)"


def scan_official_images(
    session: requests.Session,
    settings: Settings,
    *,
    auth: AuthBase | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> Scan:
    """Scan the official image list; iterate the result for pages, then read ``.stats``.

    Nothing is fetched until iteration starts. Raises (while iterating) ``AuthError`` (exit 3),
    ``NotFoundError``/``BadRequestError``/``UpstreamError`` (exit 4).
    """
    return Scan(session, settings, auth=auth, sleep=sleep, clock=clock, rng=rng)

