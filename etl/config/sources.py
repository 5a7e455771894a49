"""Sources: which SWR endpoints one run reads, each named, each with its own credentials.

A source comes from ``--region a,b,c`` (or ``all``), from a repeated ``--endpoint`` (or a
comma-separated ``SWR_ENDPOINT``), or from a ``[[sources]]`` table of the config file::

    [[sources]]
    name = "europe"                # optional: default the region, or host:port of the endpoint
    region = "eu-west-101"         # or: endpoint = "https://swr-api.example.com"
    ak_env = "EU_AK"               # names of environment variables, never the secrets
    sk_env = "EU_SK"

A table without credential variables uses the default credentials of the environment
(``SWR_AUTH_TOKEN``, ``HUAWEICLOUD_SDK_AK``/``SK``, ...). Credentials go only to their own
source's host: each source is scanned with its own session and auth object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from etl.config.credentials import Credentials, credentials_from_env
from etl.config.regions import source_name
from etl.config.urls import base_url
from etl.errors import ConfigError

# [[sources]] key -> the default credential variable it stands in for (facts as data).
CREDENTIAL_KEYS: dict[str, str] = {
    "token_env": "SWR_AUTH_TOKEN",
    "ak_env": "HUAWEICLOUD_SDK_AK",
    "sk_env": "HUAWEICLOUD_SDK_SK",
    "project_id_env": "HUAWEICLOUD_SDK_PROJECT_ID",
    "username_env": "HUAWEICLOUD_USERNAME",
    "password_env": "HUAWEICLOUD_PASSWORD",
    "domain_env": "HUAWEICLOUD_DOMAIN_NAME",
}
_PLAIN_KEYS = ("name", "region", "endpoint", "iam_endpoint")
SOURCE_KEYS = frozenset(_PLAIN_KEYS) | frozenset(CREDENTIAL_KEYS)


@dataclass(frozen=True)
class Source:
    """One endpoint read with one set of credentials (``None``: the default ones).

    ``region`` is the region whose IAM issues a password login's token and scopes it (for an
    explicit endpoint: ``--region``'s first name, as for one endpoint before).
    """

    name: str
    endpoint: str
    region: str
    credentials: Credentials | None = None

    def __repr__(self) -> str:  # Credentials' repr masks secrets; say which kind only
        kind = "default" if self.credentials is None else self.credentials.kind
        return f"Source(name={self.name!r}, endpoint={self.endpoint!r}, credentials={kind})"


def check_unique(sources: Sequence[Source]) -> tuple[Source, ...]:
    """``sources`` as a tuple, unless two share a name (their rows would mix).

    Raises:
        ConfigError: naming the source given twice.
    """
    seen: set[str] = set()
    for src in sources:
        if src.name in seen:
            raise ConfigError(f"source {src.name} is given twice: give each source its own name")
        seen.add(src.name)
    return tuple(sources)


def _credentials(name: str, table: Mapping[str, Any], env: Mapping[str, str]
                 ) -> Credentials | None:
    """The credentials a table names by environment variable, or None (the default ones).

    Raises:
        ConfigError: a named variable that is not set, or credentials given in part.
    """
    named = {key: str(table[key]) for key in CREDENTIAL_KEYS if table.get(key)}
    if not named:
        return None
    values: dict[str, str] = {}
    for key, var in named.items():
        if not env.get(var):
            raise ConfigError(f"source {name}: {key} names {var}, which is not set")
        values[CREDENTIAL_KEYS[key]] = env[var]
    if table.get("iam_endpoint"):
        values["HUAWEICLOUD_IAM_ENDPOINT"] = str(table["iam_endpoint"])
    try:
        return credentials_from_env(values)
    except ConfigError as exc:
        raise ConfigError(f"source {name}: {exc.message}") from exc


def sources_from_config(tables: Any, env: Mapping[str, str], *, default_region: str,
                        region_endpoint: Any) -> tuple[Source, ...]:
    """The ``[[sources]]`` tables of a config file as sources.

    ``region_endpoint`` maps a region name to its endpoint (``endpoint_for_region``).

    Raises:
        ConfigError: not a list of tables, an unknown key, neither or both of ``region`` and
            ``endpoint``, a bad URL, a credential variable not set, a name given twice.
    """
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError("sources in the config file must be [[sources]] tables")
    out = []
    for n, table in enumerate(tables, 1):
        unknown = sorted(set(table) - SOURCE_KEYS)
        if unknown:
            raise ConfigError(f"[[sources]] table {n}: unknown key {unknown[0]} (known: "
                              f"{', '.join(sorted(SOURCE_KEYS))})")
        region, endpoint = table.get("region"), table.get("endpoint")
        if bool(region) == bool(endpoint):
            raise ConfigError(f"[[sources]] table {n}: give region or endpoint (one of them)")
        url = base_url("endpoint", str(endpoint or region_endpoint(str(region))))
        name = str(table.get("name") or region or source_name(url))
        out.append(Source(name=name, endpoint=url, region=str(region or default_region),
                          credentials=_credentials(name, table, env)))
    if not out:
        raise ConfigError("[[sources]] in the config file holds no source")
    return check_unique(out)
