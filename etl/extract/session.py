"""The session every outbound call goes through, and the bounds it carries.

``BoundedSession`` is a ``requests.Session`` that never reads ``~/.netrc`` (requests'
``trust_env`` would add its credentials to unauthenticated requests and to redirect targets) and
that carries the run's ``Limits``: ``--timeout`` per exchange, ``--max-body-mb`` per body and the
run's ``Deadline``. The proxies and CA-bundle variables ``trust_env`` also reads are taken
explicitly (``send_env``). ``etl.extract.transport.exchange`` enforces the limits;
``etl.extract.scan.make_session`` builds the session of a scan from ``Settings``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests
from requests.utils import get_environ_proxies

from etl.extract.throttle import Deadline


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
