"""Credentials: which source is in use and its values; ``repr`` never shows a secret.

Read from the environment (or a private config file, by the same names); the first complete
source wins: a token, then AK/SK, then IAM user name and password (docs/operators/credentials.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from etl.config.urls import check_url
from etl.errors import ConfigError

# Every environment variable a credential is read from; a private config file may hold them too.
CREDENTIAL_VARS = frozenset({
    "SWR_AUTH_TOKEN",
    "HUAWEICLOUD_SDK_AK",
    "HUAWEICLOUD_SDK_SK",
    "HUAWEICLOUD_SDK_PROJECT_ID",
    "HUAWEICLOUD_USERNAME",
    "HUAWEICLOUD_PASSWORD",
    "HUAWEICLOUD_DOMAIN_NAME",
    "HUAWEICLOUD_IAM_ENDPOINT",
})

# The AWS SDK reads these itself for an s3:// export; their values are masked wherever they
# could appear (an SDK error quoting a key id, a log line at debug).
AWS_SECRET_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                   "AWS_SECURITY_TOKEN")


def aws_secrets(env: Mapping[str, str]) -> list[str]:
    """The AWS credential values in ``env``, for ``etl.logs.register_secrets``."""
    return [env[name] for name in AWS_SECRET_VARS if env.get(name)]


# libpq reads a postgresql:// database's password itself (never from the --db URL): the value
# is registered so no message or log line can carry it.
PG_SECRET_VARS = ("PGPASSWORD",)


def pg_secrets(env: Mapping[str, str]) -> list[str]:
    """The PostgreSQL password in ``env``, for ``etl.logs.register_secrets``."""
    return [env[name] for name in PG_SECRET_VARS if env.get(name)]

MISSING_CREDENTIALS = (
    "no credentials: set one of SWR_AUTH_TOKEN; HUAWEICLOUD_SDK_AK + HUAWEICLOUD_SDK_SK "
    "(AK/SK signing, recommended); or HUAWEICLOUD_USERNAME + HUAWEICLOUD_PASSWORD + "
    "HUAWEICLOUD_DOMAIN_NAME (IAM token)"
)


@dataclass(frozen=True)
class Credentials:
    """Which credential source is in use, and its values. ``repr`` masks every secret.

    Raises:
        ConfigError: an unknown ``kind``, or an ``iam_endpoint`` that is no valid http(s) base
            URL or holds a user name or password (naming the parameter: ``iam_endpoint must not
            contain ...``).
    """

    kind: str = "none"  # one of SOURCES
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

    def __post_init__(self) -> None:
        if self.kind not in self.SOURCES:
            raise ConfigError(f"kind must be one of {', '.join(self.SOURCES)}, got {self.kind!r}",
                              param="kind")
        if self.iam_endpoint:  # a bad one is a configuration error now, not at the first login
            check_url("iam_endpoint", self.iam_endpoint)

    @property
    def source(self) -> str:
        """Human name of the credential source, safe to print."""
        return self.SOURCES[self.kind]

    def secrets(self) -> list[str]:
        """Every secret value held, for masking in logs and tests."""
        return [s for s in (self.token, self.ak, self.sk, self.password) if s]

    def __repr__(self) -> str:  # dataclass repr=False fields are already hidden; be explicit
        return f"Credentials(kind={self.kind!r}, source={self.source!r})"


def credentials_from_env(env: Mapping[str, str]) -> Credentials:
    """Pick the first complete credential source: token, then AK/SK, then IAM password.

    Raises:
        ConfigError: a source given in part, or a user name or password in
            ``HUAWEICLOUD_IAM_ENDPOINT``.
    """
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
        try:
            return Credentials(kind="password", username=user, password=pw, domain_name=domain,
                               iam_endpoint=env.get("HUAWEICLOUD_IAM_ENDPOINT") or None)
        except ConfigError as exc:
            raise exc.renamed("HUAWEICLOUD_IAM_ENDPOINT") from None
    return Credentials()
