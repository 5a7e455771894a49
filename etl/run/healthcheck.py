"""Dead-man's-switch pings for ``sync --healthcheck-url`` (the healthchecks.io convention).

``URL/start`` when a run begins, ``URL`` when it succeeds, ``URL/<exit code>`` when it fails
(healthchecks.io reads a non-zero number as a failure with that exit status). Every ping of one run
carries the same ``rid`` query parameter so the server can pair start and end. A ping that fails is
logged as a warning and otherwise ignored: monitoring must never fail the job it watches, nor
change its exit code. The ping URL is a capability (anyone holding it can ping), so logs name only
its scheme and host, and a redirect to another origin is not followed. Each ping is one bounded
exchange (``etl.extract.transport``): ``timeout`` seconds of wall clock in all, however slowly the
server
answers, and its body is never read.
"""

from __future__ import annotations

import logging
import uuid
from urllib.parse import urlsplit, urlunsplit

import requests

from etl import __version__
from etl.errors import ConfigError
from etl.extract import BoundedSession, HttpFailure, Limits, exchange
from etl.logs import mask

log = logging.getLogger("etl.healthcheck")

DEFAULT_TIMEOUT = 5.0
# healthchecks.io accepts up to 100 kB of request body and shows it beside the ping.
_MAX_BODY = 10_000


def check_url(url: str) -> str:
    """Validate a healthcheck URL (http/https with a host); return it without a trailing slash."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError("healthcheck-url must be an http(s) URL such as https://hc-ping.com/<uuid>")
    return url


def safe_target(url: str) -> str:
    """What a log line may say about a ping URL: scheme and host only."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…"


class Healthcheck:
    """Pings one check for one run. ``start()``, then ``success()`` or ``failure(code)``."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        run_key: str | None = None,
    ) -> None:
        self.url = check_url(url)
        self.timeout = timeout
        self._own_session = session is None
        self.session = session or BoundedSession()
        self.run_key = run_key or str(uuid.uuid4())
        self.sent: list[str] = []  # suffixes pinged successfully, for the caller and tests

    def _url(self, suffix: str) -> str:
        parts = urlsplit(self.url)
        path = parts.path.rstrip("/") + (f"/{suffix}" if suffix else "")
        query = "&".join(q for q in (parts.query, f"rid={self.run_key}") if q)
        return urlunsplit((parts.scheme, parts.netloc, path or "/", query, ""))

    def ping(self, suffix: str = "", body: str = "") -> bool:
        """POST one ping; True if the server answered 2xx. Never raises."""
        what = suffix or "success"
        data = mask(body)[:_MAX_BODY].encode("utf-8")
        headers = {"User-Agent": f"swr-etl/{__version__}",
                   "Content-Type": "text/plain; charset=utf-8"}

        def build(url: str) -> requests.PreparedRequest:
            return self.session.prepare_request(
                requests.Request("POST", url, data=data, headers=headers))

        try:
            resp = exchange(self.session, build, self._url(suffix),
                            limits=Limits(timeout=self.timeout), read_body=False)
        except HttpFailure as exc:
            log.warning("healthcheck ping %s to %s failed: %s (the run is not affected)",
                        what, safe_target(self.url), exc.reason,
                        extra={"event": "healthcheck_failed"})
            return False
        if not 200 <= resp.status < 300:
            log.warning("healthcheck ping %s to %s answered HTTP %s (the run is not affected)",
                        what, safe_target(self.url), resp.status,
                        extra={"event": "healthcheck_failed"})
            return False
        log.debug("healthcheck ping %s sent", what, extra={"event": "healthcheck"})
        self.sent.append(suffix)
        return True

    def start(self) -> bool:
        return self.ping("start")

    def success(self, body: str = "") -> bool:
        return self.ping("", body)

    def failure(self, exit_code: int, body: str = "") -> bool:
        return self.ping(str(int(exit_code)) if exit_code else "fail", body)

    def close(self) -> None:
        """Release the connection pool (only a session this object created)."""
        if self._own_session:
            self.session.close()
