"""Authentication for SWR calls, as ``requests.auth.AuthBase`` objects the extractor plugs in.

Three credential kinds (``etl.config.settings.Credentials.kind``), chosen by ``build_auth``:

- ``token``: a ready IAM token sent as ``X-Auth-Token`` (``TokenAuth``).
- ``password``: an IAM password login, ``POST <iam>/v3/auth/tokens``; the token is cached,
  refreshed a few minutes before it expires and on demand (``refresh()``) after a 401
  (``IamPasswordAuth``).
- ``aksk``: every request signed with the vendor's ``SDK-HMAC-SHA256`` signer from the optional
  ``huaweicloudsdkcore`` package (``AkSkAuth``).

Auth objects run on every attempt (the extractor prepares a new request per attempt), so a retried
request gets a fresh signature or a fresh token. Auth failures are never retried here: more than
five failed AK/SK authentications in a row lock the key for 5 minutes
(docs/how-it-works/swr-api.md, "AK/SK signing"). No secret value ever reaches a log line, an
error message or a ``repr``. The IAM login is a bounded exchange (``etl.extract.transport``): its
wall clock, its body size and the run's deadline are capped, and a redirect that would take the
password to another origin is refused (exit 3).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import requests
from requests.auth import AuthBase

from etl.config.settings import MISSING_CREDENTIALS, Credentials, Settings, iam_endpoint_for_region
from etl.errors import AuthError, ConfigError, UpstreamError
from etl.extract.failures import HttpFailure, NoTimeLeft, RedirectRefused, TlsSetup, TooLarge
from etl.extract.retry import parse_error_body
from etl.extract.session import Limits, limits_of
from etl.extract.transport import Answer, exchange
from etl.logs import register_secrets

log = logging.getLogger("etl.auth")

# IAM tokens live 24 h (docs/how-it-works/swr-api.md, "Token"); assume that when the
# response does not say.
DEFAULT_TOKEN_LIFETIME = 24 * 3600.0
# Log in again this long before the token expires, so no request carries a token about to die.
REFRESH_MARGIN = 300.0

AKSK_INSTALL_HINT = (
    "AK/SK signing (HUAWEICLOUD_SDK_AK/HUAWEICLOUD_SDK_SK) needs the optional package "
    "huaweicloudsdkcore: install swr-etl with its [aksk] extra "
    "(from a checkout: pip install -e '.[aksk]')"
)


def build_auth(settings: Settings, session: requests.Session) -> AuthBase | None:
    """Choose the auth object for ``settings.credentials``.

    Returns None only when there are no credentials and ``settings.allow_anonymous`` is set.

    Raises:
        ConfigError: no credentials (and anonymous access not allowed), or AK/SK without the
            ``huaweicloudsdkcore`` package.
    """
    creds = settings.credentials
    if creds.kind == "token" and creds.token:
        return TokenAuth(creds.token)
    if creds.kind == "aksk" and creds.ak and creds.sk:
        return AkSkAuth(creds.ak, creds.sk, project_id=creds.project_id)
    if creds.kind == "password" and creds.username and creds.password and creds.domain_name:
        return IamPasswordAuth(
            session,
            iam_base=creds.iam_endpoint or iam_endpoint_for_region(settings.region),
            credentials=creds,
            project_name=settings.region,
            timeout=settings.timeout,
        )
    if creds.kind == "none" and settings.allow_anonymous:
        return None
    raise ConfigError(MISSING_CREDENTIALS)


# ---------------------------------------------------------------------------------------- token


class TokenAuth(AuthBase):
    """Send a fixed IAM token as ``X-Auth-Token``."""

    def __init__(self, token: str) -> None:
        self._token = token
        register_secrets([token])

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["X-Auth-Token"] = self._token
        return r

    def __repr__(self) -> str:
        return "TokenAuth(source='SWR_AUTH_TOKEN')"


# ------------------------------------------------------------------------------------ IAM login


def _no_auth(r: requests.PreparedRequest) -> requests.PreparedRequest:
    """Override any ``session.auth`` for the login request itself (no recursion, no token)."""
    return r


def iam_tokens_url(base: str) -> str:
    """``<base>/v3/auth/tokens``; a trailing ``/`` or ``/v3`` on the base is accepted."""
    base = base.rstrip("/")
    if base.endswith("/v3"):
        base = base[: -len("/v3")]
    return f"{base}/v3/auth/tokens"


def _parse_time(value: Any) -> float | None:
    """IAM's ``2026-11-28T03:00:00.123000Z`` (any fraction, ``Z`` or offset) -> epoch seconds."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    if "." in text:  # fromisoformat on 3.10 wants exactly 3 or 6 fractional digits
        head, _, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits):]
        text = f"{head}.{(digits + '000000')[:6]}{zone}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def api_error_text(answer: Answer) -> str:
    """``code: message (request id …)`` of an IAM or gateway error answer (``parse_error_body``);
    without a recognisable message, the start of the body or the HTTP reason."""
    err = parse_error_body(answer.body)
    message = err.message or _snippet(answer.body) or answer.reason or "no message"
    text = f"{err.code}: {message}" if err.code else message
    request_id = answer.headers.get("X-Request-Id")
    return f"{text} (request id {request_id})" if request_id else text


def _snippet(body: bytes) -> str:
    text = body[:800].decode("utf-8", "replace").strip()
    return "".join(ch if ch.isprintable() else " " for ch in text)[:200]


class IamPasswordAuth(AuthBase):
    """Log in to IAM with a password, send the token as ``X-Auth-Token``, refresh it when due.

    Thread-safe: the extractor's workers share one object; one login runs at a time, and a worker
    whose 401 came from a token another worker has already replaced does not log in again.

    A login is exactly one request and is never retried here: 401/403 raise ``AuthError`` (a
    retried wrong password would only lock the user), network errors and 5xx raise
    ``UpstreamError``. The extractor decides whether a failed request (and so its login) is
    attempted again.
    """

    def __init__(
        self,
        session: requests.Session,
        *,
        iam_base: str,
        credentials: Credentials,
        project_name: str,
        timeout: float = 30.0,
        refresh_margin: float = REFRESH_MARGIN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self.url = iam_tokens_url(iam_base)
        self._creds = credentials
        self._project_name = project_name
        self._timeout = timeout
        self._margin = refresh_margin
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0  # clock() value after which we log in again
        self.generation = 0  # logins so far
        self._used = threading.local()  # generation of the token this thread last sent

    def __repr__(self) -> str:
        return f"IamPasswordAuth(url={self.url!r}, source={self._creds.source!r})"

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                if self._token is not None:
                    log.debug("IAM token due for refresh; logging in again",
                              extra={"event": "auth_refresh"})
                self._login()
            token, generation = self._token, self.generation
        self._used.generation = generation
        r.headers["X-Auth-Token"] = str(token)
        return r

    def refresh(self) -> bool:
        """Replace the token after a 401 (the extractor calls this once). True: a fresh token.

        If another thread already logged in since this thread's request was prepared, its token
        is the fresh one and no second login is made.
        """
        used = getattr(self._used, "generation", None)
        with self._lock:
            if used is not None and used < self.generation:
                return True
            log.info("IAM token refused; logging in again", extra={"event": "auth_refresh"})
            self._login()
            return True

    def _login(self) -> None:
        """One ``POST /v3/auth/tokens``; caller holds the lock."""
        creds = self._creds
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": creds.username,
                            "password": creds.password,
                            "domain": {"name": creds.domain_name},
                        }
                    },
                },
                "scope": {"project": {"name": self._project_name}},
            }
        }
        started = self._clock()
        answer = self._post(body)
        if answer.status in (401, 403):
            raise AuthError(
                f"IAM refused the login (HTTP {answer.status}) for credentials from "
                f"{creds.source}: {api_error_text(answer)}"
            )
        if answer.status in (400, 404):
            raise ConfigError(
                f"IAM login at {self.url} failed (HTTP {answer.status}): "
                f"{api_error_text(answer)} — check HUAWEICLOUD_IAM_ENDPOINT, "
                "HUAWEICLOUD_DOMAIN_NAME and the region"
            )
        if not 200 <= answer.status < 300:
            raise UpstreamError(
                f"IAM login at {self.url} failed (HTTP {answer.status}): {api_error_text(answer)}"
            )
        token = answer.headers.get("X-Subject-Token")
        if not token:
            raise UpstreamError(f"IAM login at {self.url} returned no X-Subject-Token header")
        register_secrets([token])
        lifetime = self._lifetime(answer.body)
        self._token = token
        self._refresh_at = started + lifetime - min(self._margin, lifetime / 10)
        self.generation += 1
        log.info("IAM token obtained", extra={"event": "auth_login",
                                              "token_lifetime_s": round(lifetime)})

    def _post(self, body: dict[str, Any]) -> Answer:
        """The one login request, bounded like every other call (wall clock, size, deadline).

        Only a redirect to the same scheme, host and port is followed (307/308 re-post the
        body there): the password never goes to another origin.
        """
        session = self._session
        # The run's size cap and deadline (a BoundedSession's), with the login's own timeout.
        limits = dataclasses.replace(limits_of(session, Limits()), timeout=self._timeout)

        def build(url: str) -> requests.PreparedRequest:
            return session.prepare_request(requests.Request(
                "POST", url, json=body, auth=_no_auth, headers={"Accept": "application/json"}))

        where = f"IAM login at {self.url}"
        source = f"(credentials from {self._creds.source})"
        try:
            # nocatalog: IAM leaves the (large) service catalog out of the body (IAM API docs).
            return exchange(session, build, f"{self.url}?nocatalog=true", limits=limits)
        except RedirectRefused as exc:
            raise AuthError(f"{where}: {exc.reason} {source}") from None
        except NoTimeLeft as exc:
            if limits.deadline is not None:
                raise limits.deadline.exceeded(f"during the {where}") from None
            raise UpstreamError(f"{where} failed: {exc.reason} {source}") from None
        except TooLarge:
            raise UpstreamError(f"{where} failed: answer larger than --max-body-mb {source}") \
                from None
        except TlsSetup as exc:
            raise ConfigError(f"cannot set up TLS for {where}: {exc.reason}") from None
        except HttpFailure as exc:
            raise UpstreamError(f"{where} failed: {exc.reason} {source}") from None

    @staticmethod
    def _lifetime(body: bytes) -> float:
        """Seconds the token lives: ``expires_at - issued_at`` (immune to clock skew), else 24 h."""
        try:
            tok = json.loads(body).get("token") or {}
        except (ValueError, AttributeError, RecursionError):
            tok = {}
        expires = _parse_time(tok.get("expires_at")) if isinstance(tok, dict) else None
        if expires is None:
            return DEFAULT_TOKEN_LIFETIME
        issued = _parse_time(tok.get("issued_at"))
        lifetime = expires - (issued if issued is not None else time.time())
        return lifetime if lifetime > 0 else DEFAULT_TOKEN_LIFETIME


# ----------------------------------------------------------------------------------------- AK/SK


def _load_signer() -> tuple[Any, Any, Any]:
    """Import the vendor signer lazily: it is the optional ``aksk`` extra."""
    try:
        from huaweicloudsdkcore.auth.credentials import BasicCredentials
        from huaweicloudsdkcore.sdk_request import SdkRequest
        from huaweicloudsdkcore.signer.signer import Signer
    except ImportError as exc:
        raise ConfigError(AKSK_INSTALL_HINT) from exc
    return Signer, BasicCredentials, SdkRequest


def _encode_path(path: str) -> str:
    """The path as the signer canonicalises it (each segment ``quote(safe='~')``)."""
    return "/".join(quote(seg, safe="~") for seg in unquote(path or "/").split("/"))


class AkSkAuth(AuthBase):
    """Sign every request with ``SDK-HMAC-SHA256`` (the vendor's signer), fresh each attempt.

    The URL that goes on the wire is rebuilt from what the signer signed (path and canonical,
    sorted, ``%20``-encoded query), so the server's canonical request matches ours byte for byte.
    """

    def __init__(self, ak: str, sk: str, *, project_id: str | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        signer_cls, creds_cls, self._request_cls = _load_signer()
        self._signer = signer_cls(creds_cls(ak=ak, sk=sk, project_id=project_id))
        self._project_id = project_id
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        register_secrets([ak, sk])

    def __repr__(self) -> str:
        return "AkSkAuth(source='HUAWEICLOUD_SDK_AK/HUAWEICLOUD_SDK_SK')"

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        url = urlsplit(r.url or "")
        host = url.netloc.rsplit("@", 1)[-1]
        headers: dict[str, str] = {
            "Host": host,
            # A fresh date on every attempt: the gateway refuses a date more than 15 min away
            # from its clock (docs/how-it-works/swr-api.md, "AK/SK signing").
            "X-Sdk-Date": self._clock().strftime("%Y%m%dT%H%M%SZ"),
        }
        if self._project_id:
            headers["X-Project-Id"] = self._project_id
        if r.headers.get("Content-Type"):
            headers["Content-Type"] = str(r.headers["Content-Type"])
        body = r.body.encode() if isinstance(r.body, str) else r.body
        sdk_request = self._request_cls(
            method=r.method or "GET",
            schema=url.scheme,
            host=host,
            resource_path=_encode_path(url.path),
            query_params=parse_qsl(url.query, keep_blank_values=True),
            header_params=headers,
            body=body or None,
        )
        signed = self._signer.sign(sdk_request)
        # Send the signed URI exactly as signed (the signer set .uri from its canonical query).
        r.url = f"{url.scheme}://{url.netloc}{signed.uri}"
        for name, value in signed.header_params.items():
            r.headers[name] = value
        return r
