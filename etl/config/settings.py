"""Settings: one frozen dataclass that checks itself, and the one table of ``sync`` options.

Each field is declared once, with everything known about it: type, default, range or choices,
help text, environment variable, how users spell it (etl.config.options). ``Settings(...)``
refuses a bad value with a ``ConfigError`` naming the parameter (``page_size must be 1..1000,
got 0``) and derives what follows from others (the endpoint from the region).
``build_settings`` merges flags > env > config file > defaults at the edge and names options as
users write them (``page-size must be 1..1000, got 0``).

Library functions take a ``Settings`` (and a ``requests.Session``) and never read ``os.environ``.
Secrets live in ``Credentials``, whose ``repr`` never shows them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from etl.config.credentials import (
    CREDENTIAL_VARS,
    MISSING_CREDENTIALS,
    Credentials,
    credentials_from_env,
)
from etl.config.options import Option, check, coerce, internal, option, table
from etl.config.regions import ALL, KNOWN_REGIONS, region_domain, region_names, source_name
from etl.config.sources import Source, check_unique, sources_from_config
from etl.config.urls import (
    POSTGRES_SCHEMES,
    S3_SCHEME,
    base_url,
    database_location,
    export_destination,
    refuse_userinfo,
    s3_endpoint_url,
)
from etl.errors import ConfigError
from etl.integers import INT64_MAX
from etl.zones import zone_of

DEFAULT_REGION = "cn-north-4"
_DAY = 86400
_REGION_NAME = re.compile(r"[a-z][a-z0-9-]*[a-z0-9]")
_domain = region_domain  # docs/how-it-works/swr-api.md, "Regional endpoints"


def regions_rule(param: str, value: str) -> str:
    """``value`` as a comma-separated list of region names (or ``all``), spaces removed."""
    names = region_names(value)
    if not names or any(not _REGION_NAME.fullmatch(n) for n in names):
        raise ConfigError(f"{param} must be region names separated by commas, or all; got "
                          f"{value!r}", param=param)
    return ALL if names == KNOWN_REGIONS and value.strip() == ALL else ",".join(names)


def base_urls(param: str, value: str) -> str:
    """``value`` as comma-separated base URLs, each checked (``base_url``)."""
    urls = [u.strip() for u in value.split(",") if u.strip()] or [value]  # "" says why
    return ",".join(dict.fromkeys(base_url(param, u) for u in urls))


def _region_endpoints(region: str) -> str:
    return ",".join(base_url("endpoint", endpoint_for_region(n)) for n in region_names(region))


def endpoint_for_region(region: str) -> str:
    """SWR API base URL of a region."""
    return f"https://swr-api.{region}.{_domain(region)}"


def iam_endpoint_for_region(region: str) -> str:
    """IAM base URL of a region (where a user name and password are exchanged for a token)."""
    return f"https://iam.{region}.{_domain(region)}"


def known_zone(param: str, name: str) -> str:
    """``name`` if it is an IANA time zone (``etl.zones.zone_of``), else a ConfigError."""
    try:
        zone_of(name)
    except ValueError as exc:
        raise ConfigError(f"unknown time zone: {name!r}", param=param) from exc
    return name


@dataclass(frozen=True)
class Settings:
    """Everything one run needs; checked when made, never mutated.

    ``endpoint`` left out means the region's own endpoint. ``replace`` keeps it following the
    region; an endpoint given explicitly stays as given.
    """

    # Several endpoints (repeated, or comma-separated in the environment) are several sources.
    endpoint: str = option(None, "SWR API base URL; repeat it for several sources.",
                           env="SWR_ENDPOINT", metavar="URL", shown_default="from --region",
                           rule=base_urls, multiple=True)
    region: str = option(DEFAULT_REGION, "Region(s): NAME, a comma-separated list, or all; sets "
                         "https://swr-api.NAME.myhuaweicloud.com (.myhuaweicloud.eu for "
                         "eu-west-101).", env="SWR_REGION", metavar="NAME[,NAME...]",
                         rule=regions_rule)
    # A SQLite file, or postgresql://USER@HOST:PORT/DBNAME[?schema=NAME] (kept as checked text).
    db: Path | str = option(Path("swr.db"), "SQLite database file, or a postgresql:// URL.",
                            env="SWR_ETL_DB", schemes=POSTGRES_SCHEMES, rule=database_location,
                            metavar="PATH|URL")
    # Without it, a non-empty SQLite file that swr-etl did not make is refused (left untouched).
    adopt: bool = option(False, "Use a SQLite database another application made: add swr-etl's "
                                "tables to it and switch it to WAL mode.")
    namespace: str | None = option(None, "Filter passed to the API.", metavar="NS")
    image_name: str | None = option(None, "Filter passed to the API.", metavar="NAME")
    page_size: int = option(100, "Rows per request, 1..1000.", low=1, high=1000)
    concurrency: int = option(4, "Page fetches in flight once the total is known (per server in a "
                                 "run of several sources), 1..16.",
                              low=1, high=16)
    max_attempts: int | None = option(
        None, "Cap on attempts per request (1: never retry).", low=1, cap=1000,
        shown_default="none, retries are bounded by --retry-window")
    timeout: float = option(30.0, "Seconds for one whole request: connect, headers and body.",
                            low=0.001, cap=_DAY)
    source_timezone: str = option("UTC", "Zone assumed for last_updated values without one.",
                                  metavar="TZ", rule=known_zone)
    # A folder, or s3://BUCKET/PREFIX (kept as checked text): etl.publish.storage writes either.
    export_dir: Path | str | None = option(
        None, "After a successful load, export snapshots here: a folder or s3://BUCKET/PREFIX.",
        folder=True, schemes=(S3_SCHEME,), rule=export_destination, metavar="DIR|URL")
    format: str = option("parquet", "Export format with --export-dir.", choices=("csv", "parquet"))
    # Object storage: the endpoint and region of an s3:// export. Credentials come only from
    # the AWS SDK's own chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profiles): never here.
    s3_endpoint: str | None = option(
        None, "S3-compatible endpoint of an s3:// export (Huawei Cloud OBS, MinIO, ...).",
        env="SWR_ETL_S3_ENDPOINT", env_also=("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        metavar="URL", shown_default="AWS S3", rule=s3_endpoint_url)
    s3_region: str | None = option(
        None, "Region of an s3:// export's bucket.", env="AWS_REGION",
        env_also=("AWS_DEFAULT_REGION",), metavar="NAME",
        shown_default="from an OBS endpoint's host name, else the AWS SDK's")
    metrics_file: Path | None = option(None, "Write Prometheus text-format metrics here "
                                             "(atomically).")
    healthcheck_url: str | None = option(
        None, "Ping URL/start, then URL on success or URL/<exit code> on failure.",
        metavar="URL", rule=refuse_userinfo)
    dry_run: bool = option(False, "Fetch and transform, write nothing, print the summary.")
    max_rescans: int = option(2, "Rescans when the listing moves during a scan.", low=0, high=20)
    # How a pass is proven complete (docs/how-it-works/extractor.md, "Completeness and rescans";
    # the ledger's runs.proof records which proof held). Said plainly when refused: `verify =
    # false` is what turns TLS verification off in other tools.
    verify: str = option(
        "auto", "Completeness proof: ids reads the listing a second time and compares ids; full "
        "compares every value too; auto does ids up to 2,000 rows and re-reads only the first "
        "1,000 rows of a larger listing.", choices=("auto", "ids", "full"),
        hint=" (the completeness proof; TLS is always verified)")
    max_rps: float | None = option(None, "Cap on requests per second across all workers.",
                                   low=0.001, cap=1_000_000)
    max_reject_ratio: float = option(
        0.05, "Above this share of rejected rows nothing is loaded (exit 7).", low=0.0, high=1.0)
    keep_raw_runs: int = option(30, "Keep raw page bodies of this many recent runs for replay.",
                                low=0, cap=1_000_000)
    retry_budget: int = option(100, "Retries allowed in one run across all requests.", low=0,
                               cap=1_000_000)
    backoff_base: float = internal(0.5, low=0.0)  # the backoff curve (etl.extract.retry)
    backoff_cap: float = internal(30.0, low=0.0)
    busy_timeout: float = option(30.0, "Seconds to wait for another writer of the database.",
                                 low=0.0, cap=_DAY)
    ca_bundle: Path | None = option(None, "CA bundle for a private CA (verification stays on).")
    deadline: float = option(
        3600.0, "Seconds the whole run may take; a source still reading past it fails (exit 4) "
        "and loads nothing.",
        env="SWR_ETL_DEADLINE", low=0.001, high=7 * _DAY)
    retry_window: float = option(
        120.0, "Seconds one request keeps being retried while the API is unavailable.", low=0.0,
        high=7 * _DAY)
    max_body_mb: float = option(
        64.0, "Largest response body read, in MiB after decompression; a larger page is unusable "
        "(exit 4).", low=0.001, high=4096)
    max_rows: int = option(5_000_000, "A reported total above this is refused (exit 4).", low=1,
                           high=INT64_MAX)
    credentials: Credentials = internal(factory=Credentials)
    # Tests, the demo and the simulator may allow open (unauthenticated) access explicitly.
    allow_anonymous: bool = option(False, "Send no credentials (the built-in simulator in open "
                                          "mode).", spelling="no-auth")
    # The "now" a run records (demo time travel); None means the real clock.
    now_override: str | None = internal(None)
    # The config file's [[sources]] tables (etl.config.sources); empty: the sources are the
    # regions or endpoints above.
    sources: tuple[Source, ...] = internal(factory=tuple)

    def __post_init__(self) -> None:
        for spec in OPTIONS.values():
            value = getattr(self, spec.name)
            kept = check(spec, value)
            if kept is not value:
                object.__setattr__(self, spec.name, kept)
        if self.endpoint is None:
            object.__setattr__(self, "endpoint", _region_endpoints(self.region))

    @property
    def filtered(self) -> bool:
        return bool(self.namespace or self.image_name)

    def source_list(self) -> tuple[Source, ...]:
        """The sources this run reads: the config's ``[[sources]]``, else one per endpoint
        given, else one per region (named by the region)."""
        if self.sources:
            return self.sources
        names = region_names(self.region)
        if self.endpoint == _region_endpoints(self.region):
            return check_unique([Source(n, endpoint_for_region(n), n) for n in names])
        return check_unique([Source(source_name(url), url, names[0])
                             for url in self.endpoint.split(",")])

    def for_source(self, source: Source) -> Settings:
        """The settings of one source's scan: its endpoint, region and credentials."""
        return dataclasses.replace(
            self, endpoint=source.endpoint, region=source.region, sources=(source,),
            credentials=source.credentials or self.credentials)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes``, checked again; a derived endpoint follows a new region."""
        if ("region" in changes and "endpoint" not in changes
                and self.endpoint == endpoint_for_region(self.region)):
            changes["endpoint"] = None
        return dataclasses.replace(self, **changes)


# Every field's rules, by name; the user options among them are the flags of `swr-etl sync` and
# the keys of a config file, in this order.
OPTIONS: dict[str, Option] = table(Settings)
SYNC_OPTIONS: tuple[Option, ...] = tuple(o for o in OPTIONS.values() if o.user)

# Config-file keys (dashes written as underscores) -> option.
_BY_KEY = {o.key.replace("-", "_"): o for o in SYNC_OPTIONS}
_SECRET_KEYS = CREDENTIAL_VARS | {k.lower() for k in CREDENTIAL_VARS}


def build_settings(
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    config: Mapping[str, Any] | None = None,
    *,
    need_credentials: bool = False,
) -> Settings:
    """Merge flags > env > config file > defaults into checked ``Settings``.

    ``flags`` holds only options the user actually gave (``None`` means "not given"). Errors
    name options as users write them: ``page-size``, not ``page_size``.

    Raises:
        ConfigError: a bad value, an unknown or doubled config key, incomplete or missing
            credentials.
    """
    try:
        return _build(flags, env, dict(config or {}), need_credentials)
    except ConfigError as exc:
        spec = OPTIONS.get(exc.param or "")
        renamed = exc.renamed(spec.key) if spec is not None and spec.user else exc
        if renamed is exc:
            raise
        raise renamed from exc


def _build(flags: Mapping[str, Any], env: Mapping[str, str], config: dict[str, Any],
           need_credentials: bool) -> Settings:
    tables = config.pop("sources", None)
    from_file = _config_settings(config)
    values: dict[str, Any] = {}
    for spec in SYNC_OPTIONS:
        from_env = next((env[name] for name in spec.envs if env.get(name)), None)
        for value in (flags.get(spec.name), from_env, from_file.get(spec.name)):
            if spec.multiple and isinstance(value, list | tuple):  # one value per source
                value = ",".join(str(v) for v in value) or None
            if value is not None:
                values[spec.name] = coerce(spec, value)
                break
    settings = Settings(**values)
    if tables is not None:
        settings = settings.replace(sources=sources_from_config(
            tables, env, default_region=region_names(settings.region)[0],
            region_endpoint=endpoint_for_region))
    creds = credentials_from_env({**{k.upper(): str(v) for k, v in config.items()
                                     if k.upper() in CREDENTIAL_VARS}, **env})
    uses_default = any(s.credentials is None for s in settings.source_list())
    if need_credentials and uses_default and creds.kind == "none" and not settings.allow_anonymous:
        raise ConfigError(MISSING_CREDENTIALS)
    return settings.replace(credentials=creds)


def _config_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config file's settings by field name; credential keys are read separately.

    Raises:
        ConfigError: a key that is no user option (unknown or internal), or one given twice.
    """
    out: dict[str, Any] = {}
    for key, value in config.items():
        norm = key.replace("-", "_")
        if norm in _SECRET_KEYS:
            continue
        spec = _BY_KEY.get(norm)
        if spec is None:
            raise ConfigError(f"unknown setting in config file: {key}{_spelling_hint(norm)}")
        if spec.name in out:
            raise ConfigError(f"setting given twice in config file: {key}")
        out[spec.name] = value
    return out


def _spelling_hint(name: str) -> str:
    """For a field whose option is spelled otherwise: how to write it (``no-auth = true``)."""
    spec = OPTIONS.get(name)
    if spec is None or not spec.user:
        return ""
    return f" (write {spec.key} = {'true' if spec.kind is bool else '...'})"
