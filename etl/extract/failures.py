"""What went wrong with one exchange: the ``HttpFailure`` leaves, and naming what requests,
urllib3 or ssl raised as one of them.

Each leaf carries one line for people (a server named by ``host:port`` and the operating system's
reason, never a URL's query or a secret), whether another attempt may do better (``transient``)
and the kind of failure for the retry statistics (``cause``). Callers (the scan, the IAM login,
the healthcheck pings) turn a leaf into an ``etl.errors`` leaf, each in its own words.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import ClassVar
from urllib.parse import urlsplit

import requests
import urllib3

from etl.config.urls import port_of

# OpenSSL's reasons when the peer answered a TLS ClientHello with something that is not TLS
# (typically "HTTP/1.1 400 ..." from a plain-HTTP server): not a certificate problem.
NOT_TLS_REASONS = frozenset({
    "WRONG_VERSION_NUMBER", "HTTP_REQUEST", "UNKNOWN_PROTOCOL", "PACKET_LENGTH_TOO_LONG",
    "RECORD_LAYER_FAILURE", "UNEXPECTED_RECORD", "RECORD_TOO_LARGE",
})


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


# ------------------------------------------------------------------------- naming the failure


def origin(url: str) -> str:
    """``host:port`` of a URL (default port filled in), safe for messages: no user, path, query."""
    parts = urlsplit(url)
    host = _host_text(parts.hostname or "?")
    try:
        port = port_of(url)
    except ValueError:
        port = None
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port else host


def server_of(url: str) -> tuple[str, str]:
    """The server a URL is sent to: its scheme and ``origin``. Two URLs with the same server are
    one origin to a redirect (credentials may follow) and one budget of requests in flight to a
    run of several sources."""
    return urlsplit(url).scheme, origin(url)  # urlsplit gives the scheme in lower case


def _host_text(text: str) -> str:
    return "".join(ch if ch.isprintable() and not ch.isspace() else "?" for ch in text)[:255]


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


def failure_from(exc: BaseException, url: str, budget: float) -> BaseException:
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
