"""Bounded HTTP exchanges: every call swr-etl makes (SWR pages, the IAM login, healthcheck pings).

What a hostile or broken server can no longer do here:

- **Take credentials elsewhere.** requests never follows a redirect for us. ``exchange`` follows
  a 3xx only when scheme, host and port stay the same (at most ``MAX_REDIRECTS`` hops): every
  header we send (``X-Auth-Token``, the AK/SK signature) and the IAM login body are meant for that
  origin, and requests strips only ``Authorization`` on a host change. ``BoundedSession`` never
  reads ``~/.netrc`` (requests' ``trust_env`` would add its credentials to unauthenticated
  requests); the proxies and CA-bundle variables ``trust_env`` also reads are taken explicitly.
- **Flood memory.** Bodies are streamed and read in chunks *after* decompression, up to a byte cap:
  urllib3 2 inflates only as far as each read asks, so a gzip bomb costs no more than the cap.
- **Stall.** One exchange (connect, headers, body, redirect hops) has one wall-clock budget. It
  runs in a (reused, daemon) helper thread so the caller gets control back when the budget is
  spent, even while a server drips its headers a byte at a time (urllib3's timeouts bound one
  socket read, not a request); once headers are in, the socket is shut down so the helper ends.

Failures are ``HttpFailure`` leaves carrying one line for people (never a URL's query or a
secret); callers turn them into ``etl.errors`` leaves, each in its own words.
"""

from __future__ import annotations

import os
import queue
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.structures import CaseInsensitiveDict
from requests.utils import get_environ_proxies

from etl.extract.throttle import Deadline

MAX_REDIRECTS = 5
READ_CHUNK = 64 * 1024
# An error answer is read only for its code and message: a few kB at most (API error shapes).
ERROR_BODY_BYTES = 64 * 1024
# How often a waiting caller looks at its cancel event (only matters for abandoned scans).
_CANCEL_POLL = 0.05
_DEFAULT_PORTS = {"http": 80, "https": 443}
# OpenSSL's reasons when the peer answered a TLS ClientHello with something that is not TLS
# (typically "HTTP/1.1 400 ..." from a plain-HTTP server): not a certificate problem.
NOT_TLS_REASONS = frozenset({
    "WRONG_VERSION_NUMBER", "HTTP_REQUEST", "UNKNOWN_PROTOCOL", "PACKET_LENGTH_TOO_LONG",
    "RECORD_LAYER_FAILURE", "UNEXPECTED_RECORD", "RECORD_TOO_LARGE",
})


# ------------------------------------------------------------------------------------ failures


class HttpFailure(Exception):
    """One exchange failed. ``reason`` is one line for people; ``transient`` says whether
    another attempt may do better; ``cause`` names the kind for retry statistics."""

    transient: ClassVar[bool] = False
    cause: ClassVar[str] = "http"

    def __init_subclass__(cls, *, transient: bool = False, cause: str = "http") -> None:
        super().__init_subclass__()
        cls.transient, cls.cause = transient, cause

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Transient: another attempt may do better (the retry policy decides how long to keep trying).
class Unreachable(HttpFailure, transient=True, cause="connection"):
    """No connection: DNS failure, refused, connect timeout, unreachable network or proxy."""


class Dropped(HttpFailure, transient=True, cause="connection"):
    """The connection was lost before a complete answer arrived."""


class Truncated(HttpFailure, transient=True, cause="truncated"):
    """The body ended early or could not be decoded (bad gzip)."""


class TimedOut(HttpFailure, transient=True, cause="timeout"):
    """The exchange did not complete within its own wall-clock budget (``--timeout``)."""


# Final: the same request would fail the same way.
class NotTls(HttpFailure):
    """An ``https://`` URL answered in something other than TLS (usually plain HTTP)."""


class TlsRefused(HttpFailure):
    """TLS verification (or the handshake) failed."""


class TlsSetup(HttpFailure):
    """The CA bundle cannot be used (``--ca-bundle``/``REQUESTS_CA_BUNDLE`` names no file)."""


class TooLarge(HttpFailure):
    """A 2xx body larger than the byte cap; nothing more was read."""

    def __init__(self, reason: str, limit: int) -> None:
        super().__init__(reason)
        self.limit = limit


class RedirectRefused(HttpFailure):
    """A redirect that would leave the origin (or too many hops); not followed."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.status = status


class NoTimeLeft(HttpFailure):
    """The run's deadline left no time for this exchange (or ran out during it)."""


class Cancelled(HttpFailure):
    """The caller's cancel event was set while waiting (an abandoned scan)."""


# --------------------------------------------------------------------------------- the session


@dataclass(frozen=True)
class Limits:
    """The bounds of every exchange of one run."""

    timeout: float = 30.0  # one exchange, wall clock
    max_bytes: int = 64 * 1024 * 1024  # a 2xx body, after decompression
    deadline: Deadline | None = None  # the whole run

    def budget(self) -> float:
        """Seconds the next exchange may take: its own timeout, cut to the run's deadline."""
        if self.deadline is None:
            return self.timeout
        return min(self.timeout, self.deadline.remaining())


class BoundedSession(requests.Session):
    """A ``requests.Session`` that never reads ``~/.netrc`` and carries the run's ``Limits``."""

    def __init__(self, limits: Limits | None = None) -> None:
        super().__init__()
        # trust_env would add ~/.netrc credentials to any request without auth (and to redirect
        # targets). What else it reads -- proxies, REQUESTS_CA_BUNDLE -- send_env() reads itself.
        self.trust_env = False
        self.limits = limits or Limits()

    def resolve_redirects(self, resp: requests.Response, req: requests.PreparedRequest,
                          *args: Any, **kwargs: Any) -> Iterator[Any]:
        """Never: ``exchange`` decides about redirects. (Even with ``allow_redirects=False``
        requests walks this to precompute ``Response.next``, reading the 3xx body whole --
        unbounded -- so it must not run at all.)"""
        return iter(())

    def send_env(self, url: str) -> dict[str, Any]:
        """``proxies`` and ``verify`` for ``url`` from the environment, as requests would take
        them: ``HTTP(S)_PROXY``/``ALL_PROXY`` unless ``NO_PROXY`` matches; the CA bundle of
        ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` unless the session names its own (an empty
        value never turns verification off)."""
        proxies = dict(self.proxies)
        for scheme, proxy in get_environ_proxies(url).items():
            proxies.setdefault(scheme, proxy)
        verify: Any = self.verify
        if verify is True or verify is None:
            verify = (os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
                      or True)
        return {"proxies": proxies, "verify": verify}


def limits_of(session: requests.Session, fallback: Limits) -> Limits:
    """The session's limits, or ``fallback`` for a plain ``requests.Session``."""
    return session.limits if isinstance(session, BoundedSession) else fallback


def send_env_of(session: requests.Session, url: str) -> dict[str, Any]:
    """``BoundedSession.send_env`` for a bounded session; a plain one resolves its own."""
    if isinstance(session, BoundedSession):
        return session.send_env(url)
    merged = session.merge_environment_settings(url, {}, None, session.verify, None)
    return {k: merged[k] for k in ("proxies", "verify", "cert") if k in merged}


# ---------------------------------------------------------------------------------- exchanges


@dataclass(frozen=True)
class Answer:
    """A complete answer: status, headers and the body as read (capped)."""

    status: int
    reason: str
    headers: CaseInsensitiveDict[str]
    body: bytes
    url: str


def origin(url: str) -> str:
    """``host:port`` of a URL (default port filled in), safe for messages: no user, path, query."""
    parts = urlsplit(url)
    host = _printable(parts.hostname or "?")
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        port = None
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port else host


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() and not ch.isspace() else "?" for ch in text)[:255]


def _same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    if pb.username is not None or pb.password is not None:
        return False  # requests would turn user:password@ into Authorization
    return (pa.scheme.lower(), origin(a)) == (pb.scheme.lower(), origin(b))


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
        answer = _one(session, prepared, send_env, ends=ends, budget=budget,
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
            job()  # never raises: _Call.run keeps what went wrong for the caller
            with self._lock:
                self._idle += 1


_HELPERS = _Helpers()


def _one(session: requests.Session, prepared: requests.PreparedRequest, env: dict[str, Any], *,
         ends: float, budget: float, cut_by_deadline: bool, max_bytes: int, read_body: bool,
         cancel: threading.Event | None) -> Answer:
    call = _Call(session, prepared, env, ends=ends, max_bytes=max_bytes, read_body=read_body)
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
        failure = _failure(call.error, str(prepared.url), budget)
        raise out_of_time if isinstance(failure, TimedOut) else failure
    assert call.answer is not None  # set whenever error is not
    return call.answer


class _Call:
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


# ------------------------------------------------------------------------- naming the failure


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: urllib3's ``reason``, exception ``args``, causes, contexts."""
    seen: set[int] = set()
    todo = [exc]
    while todo and len(seen) < 32:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        reason = getattr(e, "reason", None)
        todo += [a for a in (reason, *e.args, e.__cause__, e.__context__)
                 if isinstance(a, BaseException)]


def _os_reason(exc: BaseException) -> str | None:
    """The operating system's words for the innermost socket error, if there is one."""
    for e in _chain(exc):
        if isinstance(e, ssl.SSLError):
            continue
        if isinstance(e, OSError) and e.strerror:
            return str(e.strerror)
    return None


def _failure(exc: BaseException, url: str, budget: float) -> BaseException:
    """Turn what ``session.send``/reading raised into an ``HttpFailure`` leaf (or re-raise)."""
    if isinstance(exc, HttpFailure):
        return exc
    where = origin(url)
    for e in _chain(exc):
        if isinstance(e, ssl.SSLError) and not isinstance(e, ssl.SSLCertVerificationError):
            if getattr(e, "reason", None) in NOT_TLS_REASONS:
                return NotTls(f"cannot connect to {where}: the server did not speak TLS "
                              "(is the URL meant to be http://?)")
    if isinstance(exc, requests.exceptions.SSLError | urllib3.exceptions.SSLError):
        return TlsRefused(f"TLS failed with {where}: {type(exc).__name__}")
    if isinstance(exc, requests.exceptions.ProxyError):
        reason = _os_reason(exc) or type(exc).__name__
        return Unreachable(f"cannot connect through the proxy for {where}: {reason}")
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return Unreachable(f"cannot connect to {where}: timed out after {budget:g} s")
    if isinstance(exc, requests.exceptions.ReadTimeout | urllib3.exceptions.ReadTimeoutError):
        # The socket's own timeout is the same budget: say it as the wall clock would.
        return TimedOut(f"no complete answer within {budget:g} s")
    if isinstance(exc, requests.exceptions.ChunkedEncodingError
                  | requests.exceptions.ContentDecodingError | urllib3.exceptions.DecodeError):
        return Truncated(f"truncated or undecodable response body from {where}")
    if isinstance(exc, urllib3.exceptions.ProtocolError):
        why = _os_reason(exc) or "the connection closed early"
        return Truncated(f"truncated response body from {where} ({why})")
    if isinstance(exc, requests.ConnectionError):
        new_conn = any(isinstance(e, urllib3.exceptions.NewConnectionError) for e in _chain(exc))
        os_reason = _os_reason(exc)
        if new_conn:
            return Unreachable(f"cannot connect to {where}: {os_reason or 'no connection'}")
        return Dropped(f"connection failed: {where} dropped it before a complete answer "
                       f"({os_reason or _last_words(exc)})")
    if isinstance(exc, requests.RequestException):
        return HttpFailure(f"request to {where} failed ({type(exc).__name__})")
    if isinstance(exc, OSError):
        # requests opens the CA bundle itself: a missing file surfaces as a bare OSError.
        return TlsSetup(str(exc))
    return exc  # a bug: let it surface as one


def _last_words(exc: BaseException) -> str:
    """The innermost exception's message, e.g. "Remote end closed connection without response"."""
    inner = list(_chain(exc))[-1]
    text = str(inner).strip() or type(inner).__name__
    return _printable_text(text)[:200]


def _printable_text(text: str) -> str:
    return "".join(ch if ch.isprintable() else " " for ch in text)
