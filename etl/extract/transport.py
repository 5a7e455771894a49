"""Bounded HTTP exchanges: every call swr-etl makes (SWR pages, the IAM login, healthcheck pings).

What a hostile or broken server can no longer do here:

- **Take credentials elsewhere.** requests never follows a redirect for us. ``exchange`` follows
  a 3xx only when scheme, host and port stay the same (at most ``MAX_REDIRECTS`` hops): every
  header we send (``X-Auth-Token``, the AK/SK signature) and the IAM login body are meant for that
  origin, and requests strips only ``Authorization`` on a host change. ``~/.netrc`` is never read
  (``etl.extract.session.BoundedSession``).
- **Flood memory.** Bodies are streamed and read in chunks *after* decompression, up to a byte cap:
  urllib3 2 inflates only as far as each read asks, so a gzip bomb costs no more than the cap.
- **Stall.** One exchange (connect, headers, body, redirect hops) has one wall-clock budget. It
  runs in a (reused, daemon) helper thread so the caller gets control back when the budget is
  spent, even while a server drips its headers a byte at a time (urllib3's timeouts bound one
  socket read, not a request); once headers are in, the socket is shut down so the helper ends.

Failures are ``etl.extract.failures.HttpFailure`` leaves carrying one line for people (never a
URL's query or a secret); callers turn them into ``etl.errors`` leaves, each in its own words.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.structures import CaseInsensitiveDict

from etl.extract.failures import (
    Cancelled,
    NoTimeLeft,
    RedirectRefused,
    TimedOut,
    TooLarge,
    failure_from,
    origin,
    server_of,
)
from etl.extract.session import Limits, send_env_of

MAX_REDIRECTS = 5
READ_CHUNK = 64 * 1024
# An error answer is read only for its code and message: a few kB at most (API error shapes).
ERROR_BODY_BYTES = 64 * 1024
# How often a waiting caller looks at its cancel event (only matters for abandoned scans).
_CANCEL_POLL = 0.05


@dataclass(frozen=True)
class Answer:
    """A complete answer: status, headers and the body as read (capped)."""

    status: int
    reason: str
    headers: CaseInsensitiveDict[str]
    body: bytes
    url: str


def _same_origin(a: str, b: str) -> bool:
    pb = urlsplit(b)
    if pb.username is not None or pb.password is not None:
        return False  # requests would turn user:password@ into Authorization
    return server_of(a) == server_of(b)


def redirect_refusal(status: int, current: str, target: str) -> str | None:
    """Why a redirect from ``current`` to ``target`` must not be followed, or None."""
    if _same_origin(current, target):
        return None
    cur, new = urlsplit(current).scheme.lower(), urlsplit(target).scheme.lower()
    if cur == "https" and new != "https":
        return (f"HTTP {status} redirect from https to {new or '?'}:// ({origin(target)}) not "
                "followed: credentials are never sent unencrypted")
    return (f"HTTP {status} redirect to another server ({origin(target)}) not followed: "
            "credentials are sent only to the configured endpoint")


def exchange(
    session: requests.Session,
    build: Callable[[str], requests.PreparedRequest],
    url: str,
    *,
    limits: Limits,
    env: dict[str, Any] | None = None,
    read_body: bool = True,
    cancel: threading.Event | None = None,
) -> Answer:
    """Send ``build(url)``, follow same-origin redirects, read the answer within ``limits``.

    ``build`` prepares the request for a URL (auth runs there, so every hop is signed afresh);
    it runs before the clock starts, so an IAM login it triggers does not eat this budget. A 2xx
    body is read up to ``limits.max_bytes`` (beyond: ``TooLarge``); any other body up to
    ``ERROR_BODY_BYTES`` (beyond: cut, it is only read for its error code); with
    ``read_body=False`` nothing is read.

    Raises:
        HttpFailure: a leaf saying what went wrong.
    """
    prepared = build(url)
    budget = limits.budget()
    cut_by_deadline = budget < limits.timeout
    if budget <= 0:
        raise NoTimeLeft("no time left to send it")
    ends = time.monotonic() + budget
    send_env = env if env is not None else send_env_of(session, url)
    for hop in range(MAX_REDIRECTS + 1):
        answer = _hop(session, prepared, send_env, ends=ends, budget=budget,
                      cut_by_deadline=cut_by_deadline, max_bytes=limits.max_bytes,
                      read_body=read_body, cancel=cancel)
        location = answer.headers.get("Location") if 300 <= answer.status < 400 else None
        if not location:
            return answer
        current = str(prepared.url)
        try:
            target = urljoin(current, location.strip())
            refusal = redirect_refusal(answer.status, current, target)
        except ValueError:  # e.g. "http://[::1": not a URL anyone can follow
            raise RedirectRefused(f"HTTP {answer.status} redirect to an unreadable Location; "
                                  "not followed", answer.status) from None
        if refusal is not None:
            raise RedirectRefused(refusal, answer.status)
        if hop == MAX_REDIRECTS:
            raise RedirectRefused(f"more than {MAX_REDIRECTS} redirects", answer.status)
        prepared = build(target)
    raise AssertionError("unreachable")  # pragma: no cover


class _Helpers:
    """Daemon threads that run exchanges, reused: handing a request to an idle one costs ~20 µs,
    starting a thread ~400 µs (measured), which a fast endpoint would feel on every page.

    Daemon threads because an abandoned exchange (a server still dripping) must never hold the
    process at exit; that is also why this is not a ``ThreadPoolExecutor`` (whose workers are
    joined at exit). A thread idle for ``IDLE`` seconds ends.
    """

    IDLE = 30.0

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # idle threads nobody has claimed for a job yet

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            claimed = self._idle > 0
            if claimed:
                self._idle -= 1
        self._jobs.put(job)
        if not claimed:
            threading.Thread(target=self._work, name="swr-http", daemon=True).start()

    def _work(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self.IDLE)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # more idle threads than claimed jobs: one may go
                        self._idle -= 1
                        return
                continue  # this thread was claimed: its job is on its way
            job()  # never raises: _InFlight.run keeps what went wrong for the caller
            with self._lock:
                self._idle += 1


_HELPERS = _Helpers()


def _hop(session: requests.Session, prepared: requests.PreparedRequest, env: dict[str, Any], *,
         ends: float, budget: float, cut_by_deadline: bool, max_bytes: int, read_body: bool,
         cancel: threading.Event | None) -> Answer:
    """One request of an exchange (the first, or a redirect hop), run by a helper thread while
    this thread waits until it is answered, ``ends`` passes or ``cancel`` is set."""
    call = _InFlight(session, prepared, env, ends=ends, max_bytes=max_bytes, read_body=read_body)
    _HELPERS.submit(call.run)
    out_of_time = (NoTimeLeft(f"no complete answer in the {budget:.1f} s that were left")
                   if cut_by_deadline
                   else TimedOut(f"no complete answer within {budget:g} s"))
    while True:
        left = ends - time.monotonic()
        if call.done.wait(max(0.0, min(left, _CANCEL_POLL if cancel is not None else left))):
            break
        if cancel is not None and cancel.is_set():
            call.abandon()
            raise Cancelled("cancelled")
        if time.monotonic() >= ends:
            call.abandon()
            raise out_of_time
    if call.error is not None:
        failure = failure_from(call.error, str(prepared.url), budget)
        raise out_of_time if isinstance(failure, TimedOut) else failure
    assert call.answer is not None  # set whenever error is not
    return call.answer


class _InFlight:
    """One request/response in a helper thread; ``abandon()`` ends it from outside."""

    def __init__(self, session: requests.Session, prepared: requests.PreparedRequest,
                 env: dict[str, Any], *, ends: float, max_bytes: int, read_body: bool) -> None:
        self.session, self.prepared, self.env = session, prepared, env
        self.ends, self.max_bytes, self.read_body = ends, max_bytes, read_body
        self.done = threading.Event()
        self.answer: Answer | None = None
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._resp: requests.Response | None = None
        self._abandoned = False

    def run(self) -> None:
        try:
            seconds = self.ends - time.monotonic()
            if self._abandoned or seconds <= 0:
                return  # the caller gave up before a helper thread got to it
            seconds = max(0.001, seconds)
            resp = self.session.send(self.prepared, stream=True, timeout=(seconds, seconds),
                                     allow_redirects=False, **self.env)
            with self._lock:
                self._resp = resp
                abandoned = self._abandoned
            try:
                if abandoned:
                    return
                body = b""
                if self.read_body and not 300 <= resp.status_code < 400:
                    ok = 200 <= resp.status_code < 300
                    body = _read(resp, self.max_bytes if ok else ERROR_BODY_BYTES, strict=ok)
                self.answer = Answer(resp.status_code, str(resp.reason or ""), resp.headers, body,
                                     str(self.prepared.url))
            finally:
                resp.close()
        except BaseException as exc:  # handed to the waiting caller, which raises it
            self.error = exc
        finally:
            self.done.set()

    def abandon(self) -> None:
        """Stop caring; wake a read blocked on the socket so the helper thread ends."""
        with self._lock:
            self._abandoned = True
            resp = self._resp
        raw = getattr(resp, "raw", None)
        if raw is not None:
            try:
                raw.shutdown()
            except (ValueError, OSError, AttributeError, NotImplementedError):
                pass  # already closed, or a stand-in response without a socket


def _read(resp: requests.Response, cap: int, *, strict: bool) -> bytes:
    """Read at most ``cap`` decoded bytes; one more than that is ``TooLarge`` when ``strict``."""
    too_large = TooLarge(f"body larger than {cap} bytes", cap)
    raw = resp.raw
    if raw is None or not hasattr(raw, "read"):
        # Adapters that answer from memory (test stand-ins) have no stream to bound.
        body = resp.content or b""
        if strict and len(body) > cap:
            raise too_large
        return body[:cap]
    declared = resp.headers.get("Content-Length", "")
    if (strict and declared.isdigit() and len(declared) < 30 and int(declared) > cap
            and not resp.headers.get("Content-Encoding")):
        raise too_large  # say no before reading a byte
    buf = bytearray()
    while len(buf) <= cap:
        chunk = raw.read(min(READ_CHUNK, cap + 1 - len(buf)), decode_content=True)
        if not chunk:
            break
        buf += chunk
    if len(buf) > cap:
        if strict:
            raise too_large
        del buf[cap:]
    return bytes(buf)
