"""Reading the TOML config file (``--config``): any option, plus credentials when private.

Keys are the long option names with ``-`` or ``_`` (``page-size = 500``), at the top level or in a
``[swr-etl]`` / ``[sync]`` table. Credential keys (``HUAWEICLOUD_SDK_AK`` …, upper or lower case)
are accepted only when the file is private to its owner (``chmod 600``): a secret in a
group- or world-readable file is refused with a one-line error naming the fix. A file that group
or others can write is refused whatever it holds (it could point ``endpoint`` elsewhere), and
only a regular file of at most 1 MiB is read (``/dev/zero`` or a FIFO are refused, not read).
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

from etl.config.credentials import CREDENTIAL_VARS
from etl.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_TABLES = {"swr-etl", "swr_etl", "sync"}


def secret_keys(config: dict[str, Any]) -> list[str]:
    """Credential keys present in a flattened config (sorted, as written in the file)."""
    return sorted(k for k in config if k.upper() in CREDENTIAL_VARS)


def check_private(path: Path, keys: list[str], mode: int | None = None) -> None:
    """Refuse credentials in a file that group or others can read (or write).

    ``mode`` is the file's permission bits when the caller already has them (from the open
    file, so the check applies to the very file read).

    Raises:
        ConfigError: with the exact ``chmod 600`` fix.
    """
    if not keys or os.name == "nt":  # POSIX modes only; Windows uses ACLs
        return
    if mode is None:
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


def check_not_writable(path: Path, mode: int) -> None:
    """Refuse a file that group or others can write: it may set ``endpoint``, and the
    credentials from the environment would follow it wherever it points.

    Raises:
        ConfigError: with the ``chmod go-w`` fix.
    """
    if os.name != "nt" and mode & 0o022:
        raise ConfigError(
            f"config file {path} is writable by group/others (mode {mode:04o}): whoever can "
            f"change it can send your credentials elsewhere; run `chmod go-w {path}`"
        )


# A settings file is a few hundred bytes; reading stops well before /dev/zero could fill memory.
MAX_CONFIG_BYTES = 1 << 20


def _read(path: Path) -> tuple[bytes, int]:
    """The file's bytes (at most ``MAX_CONFIG_BYTES``) and permission bits, from one open file.

    Opened non-blocking, so a FIFO is refused instead of waiting for a writer forever.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(path)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"config file {path} is not a regular file")
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path} is larger than {MAX_CONFIG_BYTES >> 20} MiB; "
                          "is it the right file?")
    return data, stat.S_IMODE(info.st_mode)


def load_config_file(path: Path) -> dict[str, Any]:
    """Parse a TOML config file into a flat dict of settings (keys as in the CLI, - or _).

    Raises:
        ConfigError: missing, unreadable, oversized or not a regular file, invalid TOML,
            writable by group/others, or credentials in a file that is not private to its owner.
    """
    path = Path(path)
    try:
        raw, mode = _read(path)
        data = tomllib.loads(raw.decode("utf-8"))
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
    check_private(path, secret_keys(flat), mode)
    check_not_writable(path, mode)
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
