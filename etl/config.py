"""Reading the TOML config file (``--config``): any option, plus credentials when private.

Keys are the long option names with ``-`` or ``_`` (``page-size = 500``), at the top level or in a
``[swr-etl]`` / ``[sync]`` table. Credential keys (``HUAWEICLOUD_SDK_AK`` …, upper or lower case)
are accepted only when the file is private to its owner (``chmod 600``): a secret in a
group- or world-readable file is refused with a one-line error naming the fix.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

from etl.errors import ConfigError
from etl.settings import _CONFIG_SECRET_KEYS_UPPER

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_TABLES = {"swr-etl", "swr_etl", "sync"}


def secret_keys(config: dict[str, Any]) -> list[str]:
    """Credential keys present in a flattened config (sorted, as written in the file)."""
    return sorted(k for k in config if k.upper() in _CONFIG_SECRET_KEYS_UPPER)


def check_private(path: Path, keys: list[str]) -> None:
    """Refuse credentials in a file that group or others can read (or write).

    Raises:
        ConfigError: with the exact ``chmod 600`` fix.
    """
    if not keys or os.name == "nt":  # POSIX modes only; Windows uses ACLs
        return
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError as exc:
        raise ConfigError(f"cannot stat config file {path}: {exc.strerror}") from exc
    if mode & 0o077:
        raise ConfigError(
            f"config file {path} holds credentials ({', '.join(keys)}) but is accessible by "
            f"group/others (mode {mode:04o}): run `chmod 600 {path}` or move the credentials "
            "to the environment"
        )


def load_config_file(path: Path) -> dict[str, Any]:
    """Parse a TOML config file into a flat dict of settings (keys as in the CLI, - or _).

    Raises:
        ConfigError: missing or unreadable file, invalid TOML, or credentials in a file that is
            not private to its owner.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"config file is a directory: {path}") from exc
    except PermissionError as exc:
        raise ConfigError(f"cannot read config file {path}: permission denied") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        # The decoder's message names line and column; it never echoes values.
        raise ConfigError(f"invalid TOML in config file {path}: {exc}") from exc
    # Allow a [swr-etl] or [sync] table as well as top-level keys.
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key in _TABLES:
            flat.update(value)
        elif isinstance(value, dict):
            raise ConfigError(
                f"unknown table [{key}] in config file {path} "
                f"(use top-level keys or a [swr-etl] table)"
            )
        else:
            flat[key] = value
    check_private(path, secret_keys(flat))
    return flat


# Global (logging) options a config file may also hold; cli applies them unless given as flags.
_LOGGING_KEYS = ("verbose", "quiet", "log_format")


def logging_options(config: dict[str, Any]) -> dict[str, Any]:
    """The validated ``verbose``/``quiet``/``log_format`` values of a config file, if any."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        norm = key.replace("-", "_")
        if norm not in _LOGGING_KEYS:
            continue
        if norm == "log_format" and value not in ("text", "json"):
            raise ConfigError(f"log-format must be text or json, got {value!r}")
        if norm == "quiet" and not isinstance(value, bool):
            raise ConfigError(f"quiet must be true or false, got {value!r}")
        if norm == "verbose":
            if isinstance(value, bool):
                value = int(value)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"verbose must be true, false or a level >= 0, got {value!r}")
        out[norm] = value
    return out


def without_logging_options(config: dict[str, Any]) -> dict[str, Any]:
    """The config minus the logging keys (what ``build_settings`` receives)."""
    return {k: v for k, v in config.items() if k.replace("-", "_") not in _LOGGING_KEYS}
