"""What a URL in the settings may be, and which URLs would carry a secret in clear text.

Credentials never ride in a URL: the endpoint is logged, stored (``runs.endpoint``) and shown.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from etl.errors import ConfigError

if TYPE_CHECKING:
    from etl.config.settings import Settings


def redacted(url: str) -> str:
    """``url`` with anything before an ``@`` in its authority replaced by ``***``."""
    return re.sub(r"(//)[^/?#]*@", r"\1***@", url)


def refuse_userinfo(param: str, url: str) -> str:
    """``url``, unless it holds a user name or password or cannot be parsed.

    Raises:
        ConfigError: naming ``param``; a password in the URL is never repeated.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port that is no number)
    except ValueError as exc:
        raise ConfigError(f"{param} is not a valid URL: {redacted(url)!r}", param=param) from exc
    if "@" in parts.netloc:
        raise ConfigError(
            f"{param} must not contain a user name or password ({redacted(url)}): give "
            "credentials in the environment (SWR_AUTH_TOKEN, HUAWEICLOUD_SDK_AK/SK, ...)",
            param=param)
    return url


def check_url(param: str, url: str) -> str:
    """An http(s) URL with a host and no credentials in it; returns ``url``.

    Raises:
        ConfigError: naming ``param``; a password in the URL is never repeated.
    """
    refuse_userinfo(param, url)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{param} must be an http(s) URL, got {redacted(url)!r}", param=param)
    return url


def base_url(param: str, url: str) -> str:
    """``check_url``, then without a trailing ``/`` (paths are appended to it)."""
    return check_url(param, url).rstrip("/")


def _is_loopback(host: str | None) -> bool:
    import ipaddress  # here: --help and the reading commands never need it

    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plaintext_warnings(settings: Settings) -> list[str]:
    """What secret would cross the network unencrypted with these settings (loopback exempt).

    One line per exposure, for the CLI to log as a warning before the run; the run goes on (a
    private http gateway may be deliberate).
    """
    creds = settings.credentials
    exposed: list[tuple[str, str]] = []  # (url, what travels)
    if creds.kind == "token":
        exposed.append((settings.endpoint, "the token (SWR_AUTH_TOKEN)"))
    elif creds.kind == "aksk":
        exposed.append((settings.endpoint, "AK/SK-signed requests (replayable, the AK visible)"))
    elif creds.kind == "password":
        exposed.append((settings.endpoint, "the IAM token"))
        if creds.iam_endpoint:
            exposed.append((creds.iam_endpoint, "the IAM password (HUAWEICLOUD_PASSWORD)"))
    out = []
    for url, what in exposed:
        parts = urlsplit(url)
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            out.append(f"{what} would go over plain http to {parts.hostname}: anyone on the "
                       "network path can read it; use https")
    return out
