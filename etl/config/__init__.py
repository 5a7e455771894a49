"""Settings of a run, their one table of options, and credentials.

A foundation: standard library only, importable by every layer. The TOML config file
(etl.config.file) is read by the command line only, so it is not imported here.
"""

from etl.config.credentials import MISSING_CREDENTIALS, Credentials, credentials_from_env
from etl.config.options import Option
from etl.config.settings import (
    DEFAULT_REGION,
    OPTIONS,
    SYNC_OPTIONS,
    Settings,
    build_settings,
    endpoint_for_region,
    iam_endpoint_for_region,
)
from etl.config.urls import plaintext_warnings

__all__ = [
    "DEFAULT_REGION",
    "MISSING_CREDENTIALS",
    "OPTIONS",
    "SYNC_OPTIONS",
    "Credentials",
    "Option",
    "Settings",
    "build_settings",
    "credentials_from_env",
    "endpoint_for_region",
    "iam_endpoint_for_region",
    "plaintext_warnings",
]
