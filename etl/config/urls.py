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


# A DNS name as a client can resolve it: dot-separated labels of letters, digits, hyphens (and
# underscores, which private zones use), none empty or longer than 63 characters.
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")


def _host_problem(host: str) -> str | None:
    """Why ``host`` (as ``urlsplit`` gives it: lower case, no brackets) can name no server, or
    None. Checked here so a typo is a configuration error before anything is opened, not a
    failure of the HTTP library in the middle of a run."""
    if ":" in host:  # only an IPv6 literal has a colon in the host part
        import ipaddress

        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return f"{host!r} is no IPv6 address"
        return None
    try:
        ascii_host = host.encode("idna").decode("ascii")  # an internationalised name, as sent
    except UnicodeError:
        return f"host name {host!r} has an empty or over-long label"
    if not _HOST_NAME.fullmatch(ascii_host) or len(ascii_host.rstrip(".")) > 253:
        return f"host name {host!r} is not a valid name"
    return None


def check_url(param: str, url: str) -> str:
    """An http(s) URL with a valid host, a port in 1..65535 (if given), no credentials and no
    query or fragment (paths are appended to it); returns ``url``.

    Raises:
        ConfigError: naming ``param``; a password in the URL is never repeated.
    """
    refuse_userinfo(param, url)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{param} must be an http(s) URL, got {redacted(url)!r}", param=param)
    problem = _host_problem(parts.hostname) or ("port 0" if parts.port == 0 else None)
    if problem:
        raise ConfigError(f"{param} is not a valid URL: {redacted(url)!r} ({problem})",
                          param=param)
    if "?" in url or "#" in url:
        raise ConfigError(f"{param} must be a base URL without a query or fragment, got "
                          f"{redacted(url)!r}", param=param)
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
