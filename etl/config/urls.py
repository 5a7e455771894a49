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


_DEFAULT_PORTS = {"http": 80, "https": 443}


def port_of(url: str) -> int | None:
    """The port a URL is sent to: its own, else its scheme's default (None for another scheme).

    Raises:
        ValueError: the URL's port is not a number from 0 to 65535.
    """
    parts = urlsplit(url)  # the scheme comes back in lower case
    return parts.port or _DEFAULT_PORTS.get(parts.scheme)


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
    if host.isascii():
        # As the idna codec takes an ASCII name, without importing it (~1.5 ms, most commands'
        # only use of it): every label but a final empty one (a trailing dot) 1..63 long.
        *labels, last = host.split(".")
        if not all(0 < len(label) < 64 for label in labels) or len(last) > 63:
            return f"host name {host!r} has an empty or over-long label"
        ascii_host = host
    else:
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


# ------------------------------------------------------------------------- object storage

S3_SCHEME = "s3"
# Bucket names every S3-compatible store accepts (AWS S3's rules, which Huawei Cloud OBS and
# MinIO share): 3-63 lower-case letters, digits, dots and hyphens, a letter or digit at each
# end, no empty label, no dot beside a hyphen (OBS refuses those too).
_BUCKET = re.compile(r"[a-z0-9](?:[a-z0-9.-]{1,61})[a-z0-9]")
_BUCKET_RULES = ("3-63 lower-case letters, digits, dots and hyphens, starting and ending with a "
                 "letter or digit, no '..', '.-' or '-.', not an IP address")
S3_CREDENTIAL_VARS = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or an AWS profile)"


def _bucket_problem(bucket: str) -> bool:
    import ipaddress

    if not _BUCKET.fullmatch(bucket) or any(s in bucket for s in ("..", ".-", "-.")):
        return True
    try:
        ipaddress.IPv4Address(bucket)
    except ValueError:
        return bucket.startswith("xn--")
    return True


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b")`` (no slash at either end of the prefix)."""
    parts = urlsplit(url)
    return parts.netloc, parts.path.strip("/")


def check_s3_url(param: str, url: str) -> str:
    """``url`` as ``s3://bucket`` or ``s3://bucket/prefix`` (no trailing slash), refused when it
    carries credentials, a query or fragment, an invalid bucket name or an odd prefix.

    Raises:
        ConfigError: naming ``param``; credentials in the URL are never repeated.
    """
    # An AWS secret key may hold a "/", which ends the authority early: so any "@" is taken
    # for credentials, and such a URL is never repeated, not even redacted.
    if "@" in url:
        raise ConfigError(f"{param} must not contain credentials (an '@' in an s3:// URL; the "
                          f"URL is not repeated): give them in {S3_CREDENTIAL_VARS}", param=param)
    shown = redacted(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"{param} is not a valid s3:// URL: {shown!r}", param=param) from exc
    if parts.scheme != S3_SCHEME or not url[len("s3:"):].startswith("//"):
        raise ConfigError(f"{param} must be a folder or s3://BUCKET/PREFIX, got {shown!r}",
                          param=param)
    if "?" in url or "#" in url:
        raise ConfigError(f"{param} must be s3://BUCKET/PREFIX without a query or fragment, "
                          f"got {shown!r}", param=param)
    bucket, prefix = split_s3_url(url)
    if _bucket_problem(bucket):
        raise ConfigError(f"{param} names no valid bucket ({_BUCKET_RULES}): {bucket!r} in "
                          f"{shown!r}", param=param)
    if prefix and any(seg in ("", ".", "..") for seg in prefix.split("/")):
        raise ConfigError(f"{param} has an empty, '.' or '..' folder in its prefix: {shown!r}",
                          param=param)
    return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"


def export_destination(param: str, value: object) -> object:
    """A folder (a ``Path``, kept) or an ``s3://`` URL (checked, as text)."""
    return check_s3_url(param, value) if isinstance(value, str) else value


def s3_endpoint_url(param: str, url: str) -> str:
    """An S3-compatible endpoint: an http(s) base URL with no path (buckets are addressed
    below it)."""
    url = base_url(param, url)
    if urlsplit(url).path not in ("", "/"):
        raise ConfigError(f"{param} must be a base URL without a path (the bucket goes in the "
                          f"s3:// URL), got {redacted(url)!r}", param=param)
    return url


def object_store_warnings(settings: Settings) -> list[str]:
    """An export to a bucket through a plain-http endpoint on another host (loopback exempt):
    the signed requests (the access key id visible, replayable) and the data travel in clear."""
    endpoint = settings.s3_endpoint
    if not isinstance(settings.export_dir, str) or endpoint is None:
        return []
    parts = urlsplit(endpoint)
    if parts.scheme != "http" or _is_loopback(parts.hostname):
        return []
    return [f"S3 requests signed with AWS_ACCESS_KEY_ID (replayable, the key id visible) and the "
            f"export would go over plain http to {parts.hostname}: anyone on the network path "
            "can read them; use https"]


# ------------------------------------------------------------------ a PostgreSQL database URL

POSTGRES_SCHEMES = ("postgresql", "postgres")
PG_PASSWORD_SOURCES = "PGPASSWORD, a ~/.pgpass file (PGPASSFILE) or a pg_service.conf entry"


def check_pg_url(param: str, url: str) -> str:
    """``url`` as a ``postgresql://[user@]host[:port]/dbname[?params]`` URL, kept as text.

    A password in it is refused: a ``--db`` value shows in process lists, cron mail, shell history
    and our own messages, so it comes from libpq's own sources instead. The URL is then not
    repeated, not even redacted.

    Raises:
        ConfigError: naming ``param``.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port that is not a number raises here, not at connect time
    except ValueError as exc:
        raise ConfigError(f"{param} is not a valid postgresql:// URL: {redacted(url)!r}",
                          param=param) from exc
    query_keys = {pair.split("=", 1)[0].lower() for pair in parts.query.split("&") if pair}
    if parts.password is not None or "password" in query_keys:
        raise ConfigError(f"{param} must not contain a password (the URL is not repeated): give "
                          f"it in {PG_PASSWORD_SOURCES}", param=param)
    if parts.scheme.lower() not in POSTGRES_SCHEMES or not url.split(":", 1)[1].startswith("//"):
        raise ConfigError(f"{param} must be a file or postgresql://USER@HOST:PORT/DBNAME, got "
                          f"{redacted(url)!r}", param=param)
    if parts.fragment:
        raise ConfigError(f"{param} must not have a #fragment, got {redacted(url)!r}", param=param)
    return url


def database_location(param: str, value: object) -> object:
    """A SQLite file (a ``Path``, kept) or a ``postgresql://`` URL (checked, as text)."""
    return check_pg_url(param, value) if isinstance(value, str) else value
