"""Settings: one frozen dataclass, built once at the edge (flags > env > config file > defaults).

Library functions take a ``Settings`` (and a ``requests.Session``) and never read ``os.environ``.
Secrets live in ``Credentials``, whose ``repr`` never shows them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from etl.errors import ConfigError

DEFAULT_REGION = "cn-north-4"


def endpoint_for_region(region: str) -> str:
    """SWR API base URL of a region (API-NOTES: eu-west-101 lives under .myhuaweicloud.eu)."""
    suffix = "myhuaweicloud.eu" if region.startswith("eu-west-1") else "myhuaweicloud.com"
    return f"https://swr-api.{region}.{suffix}"


def iam_endpoint_for_region(region: str) -> str:
    suffix = "myhuaweicloud.eu" if region.startswith("eu-west-1") else "myhuaweicloud.com"
    return f"https://iam.{region}.{suffix}"


@dataclass(frozen=True)
class Credentials:
    """Which credential source is in use, and its values. ``repr`` masks every secret."""

    kind: str = "none"  # none | token | aksk | password
    token: str | None = field(default=None, repr=False)
    ak: str | None = field(default=None, repr=False)
    sk: str | None = field(default=None, repr=False)
    project_id: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    domain_name: str | None = None
    iam_endpoint: str | None = None

    SOURCES = {
        "none": "no credentials",
        "token": "SWR_AUTH_TOKEN",
        "aksk": "HUAWEICLOUD_SDK_AK/HUAWEICLOUD_SDK_SK",
        "password": "HUAWEICLOUD_USERNAME/HUAWEICLOUD_PASSWORD/HUAWEICLOUD_DOMAIN_NAME",
    }

    @property
    def source(self) -> str:
        """Human name of the credential source, safe to print."""
        return self.SOURCES[self.kind]

    def secrets(self) -> list[str]:
        """Every secret value held, for masking in logs and tests."""
        return [s for s in (self.token, self.ak, self.sk, self.password) if s]

    def __repr__(self) -> str:  # dataclass repr=False fields are already hidden; be explicit
        return f"Credentials(kind={self.kind!r}, source={self.source!r})"


MISSING_CREDENTIALS = (
    "no credentials: set one of SWR_AUTH_TOKEN; HUAWEICLOUD_SDK_AK + HUAWEICLOUD_SDK_SK "
    "(AK/SK signing, recommended); or HUAWEICLOUD_USERNAME + HUAWEICLOUD_PASSWORD + "
    "HUAWEICLOUD_DOMAIN_NAME (IAM token)"
)


def credentials_from_env(env: Mapping[str, str]) -> Credentials:
    """Pick the first complete credential source (CONTRACT.md order: token, AK/SK, password)."""
    if env.get("SWR_AUTH_TOKEN"):
        return Credentials(kind="token", token=env["SWR_AUTH_TOKEN"])
    ak, sk = env.get("HUAWEICLOUD_SDK_AK"), env.get("HUAWEICLOUD_SDK_SK")
    if ak or sk:
        if not (ak and sk):
            raise ConfigError("HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK must be set together")
        return Credentials(
            kind="aksk", ak=ak, sk=sk, project_id=env.get("HUAWEICLOUD_SDK_PROJECT_ID") or None
        )
    user = env.get("HUAWEICLOUD_USERNAME")
    pw = env.get("HUAWEICLOUD_PASSWORD")
    domain = env.get("HUAWEICLOUD_DOMAIN_NAME")
    if user or pw or domain:
        if not (user and pw and domain):
            raise ConfigError(
                "IAM login needs HUAWEICLOUD_USERNAME, HUAWEICLOUD_PASSWORD and "
                "HUAWEICLOUD_DOMAIN_NAME together"
            )
        return Credentials(
            kind="password",
            username=user,
            password=pw,
            domain_name=domain,
            iam_endpoint=env.get("HUAWEICLOUD_IAM_ENDPOINT") or None,
        )
    return Credentials()


@dataclass(frozen=True)
class Settings:
    """Everything one run needs. Built by ``build_settings``; never mutated."""

    endpoint: str = endpoint_for_region(DEFAULT_REGION)
    region: str = DEFAULT_REGION
    db: Path = Path("swr.db")
    namespace: str | None = None
    image_name: str | None = None
    page_size: int = 100
    concurrency: int = 4
    max_attempts: int | None = None  # an extra cap; retrying is bounded by retry_window
    timeout: float = 30.0  # one whole request, wall clock
    source_timezone: str = "UTC"
    export_dir: Path | None = None
    format: str = "parquet"
    metrics_file: Path | None = None
    healthcheck_url: str | None = None
    dry_run: bool = False
    max_rescans: int = 2
    verify: str = "auto"  # how a pass is proven complete: one of VERIFY_MODES
    max_rps: float | None = None
    max_reject_ratio: float = 0.05
    keep_raw_runs: int = 30
    retry_budget: int = 100
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    busy_timeout: float = 30.0
    ca_bundle: Path | None = None
    deadline: float = 3600.0  # the whole run, wall clock
    retry_window: float = 120.0  # per request: how long to keep retrying
    max_body_mb: float = 64.0  # one response body, after decompression
    max_rows: int = 5_000_000  # a larger reported total is refused
    credentials: Credentials = field(default_factory=Credentials)
    # Tests, the demo and the simulator may allow open (unauthenticated) access explicitly.
    allow_anonymous: bool = False
    # The "now" a run records (demo time travel); None means the real clock.
    now_override: str | None = None

    @property
    def filtered(self) -> bool:
        return bool(self.namespace or self.image_name)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


# --verify: how a pass is proven complete (README "Completeness and rescans"; the ledger's
# runs.proof records which proof held, etl.extract.paging.PROOFS).
VERIFY_MODES = ("auto", "ids", "full")

# option name -> (environment variable or None). Flags beat env, env beats the config file.
ENV_VARS: dict[str, str] = {
    "endpoint": "SWR_ENDPOINT",
    "region": "SWR_REGION",
    "db": "SWR_ETL_DB",
    "deadline": "SWR_ETL_DEADLINE",
}

# Every number is finite and within its range (a NaN passes every comparison, so it would switch
# a check off silently; 1e20 seconds overflows the clock). An open upper bound still means "fits
# in a SQLite INTEGER".
_RANGES: dict[str, tuple[float, float | None]] = {
    "page_size": (1, 1000),
    "concurrency": (1, 16),
    "max_attempts": (1, 1000),
    "timeout": (0.001, 86400),
    "max_rescans": (0, 20),
    "max_rps": (0.001, 1_000_000),
    "max_reject_ratio": (0.0, 1.0),
    "keep_raw_runs": (0, 1_000_000),
    "retry_budget": (0, 1_000_000),
    "busy_timeout": (0.0, 86400),
    "deadline": (0.001, 7 * 86400),
    "retry_window": (0.0, 7 * 86400),
    "max_body_mb": (0.001, 4096),
    "max_rows": (1, 2**63 - 1),
}
_INT64_MAX = 2**63 - 1


def _check_number(name: str, v: Any) -> None:
    """Refuse a non-finite or out-of-range number (exit 2), naming the option and its range."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return
    option = name.replace("_", "-")
    if isinstance(v, float) and not math.isfinite(v):
        raise ConfigError(f"{option} must be a finite number, got {v}")
    lo, hi = _RANGES.get(name, (-_INT64_MAX, None))
    hi = _INT64_MAX if hi is None else hi
    if v < lo or v > hi:
        raise ConfigError(f"{option} must be {lo}..{hi}, got {v}")


def _coerce(name: str, value: Any, target: Any) -> Any:
    """Convert a config-file or env value to the field's type, or raise ConfigError."""
    if value is None:
        return None
    try:
        if name in {"db", "export_dir", "metrics_file", "ca_bundle"}:
            return Path(os.path.expanduser(str(value)))
        if isinstance(target, bool) or name in {"dry_run", "allow_anonymous"}:
            if isinstance(value, bool):
                return value
            return str(value).strip().lower() in {"1", "true", "yes", "on"}
        if name == "max_attempts" or (isinstance(target, int) and not isinstance(target, bool)):
            if isinstance(value, bool) or (isinstance(value, float) and not (
                    value.is_integer() and abs(value) <= _INT64_MAX)):
                raise ValueError(value)
            return int(value)
        if isinstance(target, float) or name in {"max_rps"}:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        return str(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(f"invalid value for {name.replace('_', '-')}: {value!r}") from exc


def build_settings(
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    config: Mapping[str, Any] | None = None,
    *,
    need_credentials: bool = False,
) -> Settings:
    """Merge flags > env > config file > defaults into a validated ``Settings``.

    ``flags`` holds only options the user actually gave (``None`` means "not given").
    """
    defaults = Settings()
    config = dict(config or {})
    values: dict[str, Any] = {}
    known = {f.name for f in dataclasses.fields(Settings)} - {"credentials"}
    from_file = _config_settings(config, known)
    for name in known:
        default = getattr(defaults, name)
        value: Any = None
        for source in (flags.get(name), env.get(ENV_VARS.get(name, "")) or None,
                       from_file.get(name)):
            if source is not None:
                value = source
                break
        if value is None:
            continue
        values[name] = _coerce(name, value, default)
    for name, v in values.items():
        _check_number(name, v)
    if "endpoint" not in values and "region" in values:
        values["endpoint"] = endpoint_for_region(values["region"])
    if "endpoint" in values:
        values["endpoint"] = check_url("endpoint", str(values["endpoint"])).rstrip("/")
    if values.get("healthcheck_url"):
        _refuse_userinfo("healthcheck-url", str(values["healthcheck_url"]))
    if values.get("format", "parquet") not in {"csv", "parquet"}:
        raise ConfigError(f"format must be csv or parquet, got {values['format']!r}")
    if values.get("verify", defaults.verify) not in VERIFY_MODES:
        # Said plainly: `verify = false` is what turns TLS verification off elsewhere.
        raise ConfigError(f"verify must be one of {', '.join(VERIFY_MODES)} (the completeness "
                          f"proof; TLS is always verified), got {values['verify']!r}")
    if values.get("source_timezone"):
        _check_timezone(values["source_timezone"])
    cred_env = {**{k.upper(): str(v) for k, v in config.items()
                   if k.upper() in _CONFIG_SECRET_KEYS_UPPER}, **env}
    creds = credentials_from_env(cred_env)
    if creds.iam_endpoint:
        _refuse_userinfo("HUAWEICLOUD_IAM_ENDPOINT", creds.iam_endpoint)
    if need_credentials and creds.kind == "none" and not values.get("allow_anonymous"):
        raise ConfigError(MISSING_CREDENTIALS)
    return Settings(**values, credentials=creds)


# Settings fields that are not user options: a config file may not set them (tests, the demo's
# time travel and the simulator set them in code). A file spells anonymous access as the
# command line does: ``no-auth = true``.
INTERNAL_SETTINGS = frozenset({"allow_anonymous", "now_override", "backoff_base", "backoff_cap"})
_CONFIG_ALIASES = {"no_auth": "allow_anonymous"}
_CONFIG_HINTS = {"allow_anonymous": " (write no-auth = true)"}


def _config_settings(config: Mapping[str, Any], known: set[str]) -> dict[str, Any]:
    """The config file's settings by field name; credential keys are read separately.

    Raises:
        ConfigError: a key that is no user option (unknown or internal), or one given twice.
    """
    out: dict[str, Any] = {}
    for key, value in config.items():
        norm = key.replace("-", "_")
        if norm in _CONFIG_SECRET_KEYS:
            continue
        name = _CONFIG_ALIASES.get(norm, norm)
        if name not in known or (name in INTERNAL_SETTINGS and norm not in _CONFIG_ALIASES):
            raise ConfigError(f"unknown setting in config file: {key}{_CONFIG_HINTS.get(norm, '')}")
        if name in out:
            raise ConfigError(f"setting given twice in config file: {key}")
        out[name] = value
    return out


def _redacted(url: str) -> str:
    """``url`` with anything before an ``@`` in its authority replaced by ``***``."""
    return re.sub(r"(//)[^/?#]*@", r"\1***@", url)


def _refuse_userinfo(option: str, url: str) -> None:
    """Credentials never ride in a URL: it is logged, stored (``runs.endpoint``) and shown."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port that is no number)
    except ValueError as exc:
        raise ConfigError(f"{option} is not a valid URL: {_redacted(url)!r}") from exc
    if "@" in parts.netloc:
        raise ConfigError(
            f"{option} must not contain a user name or password ({_redacted(url)}): give "
            "credentials in the environment (SWR_AUTH_TOKEN, HUAWEICLOUD_SDK_AK/SK, ...)")


def check_url(option: str, url: str) -> str:
    """An http(s) URL with a host and no credentials in it; returns ``url``.

    Raises:
        ConfigError: naming ``option``; a password in the URL is never repeated.
    """
    _refuse_userinfo(option, url)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{option} must be an http(s) URL, got {_redacted(url)!r}")
    return url


def _is_loopback(host: str | None) -> bool:
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


# Credential keys a (private) config file may hold, by their environment names.
_CONFIG_SECRET_KEYS_UPPER = {
    "SWR_AUTH_TOKEN",
    "HUAWEICLOUD_SDK_AK",
    "HUAWEICLOUD_SDK_SK",
    "HUAWEICLOUD_SDK_PROJECT_ID",
    "HUAWEICLOUD_USERNAME",
    "HUAWEICLOUD_PASSWORD",
    "HUAWEICLOUD_DOMAIN_NAME",
    "HUAWEICLOUD_IAM_ENDPOINT",
}
_CONFIG_SECRET_KEYS = _CONFIG_SECRET_KEYS_UPPER | {k.lower() for k in _CONFIG_SECRET_KEYS_UPPER}


def _check_timezone(name: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown time zone: {name!r}") from exc
