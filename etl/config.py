"""Reading the TOML config file (``--config``): any option, plus credentials when private."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from etl.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def load_config_file(path: Path) -> dict[str, Any]:
    """Parse a TOML config file into a flat dict of settings (keys as in the CLI, - or _)."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    # Allow a [swr-etl] or [sync] table as well as top-level keys.
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key in {"swr-etl", "swr_etl", "sync"}:
            flat.update(value)
        else:
            flat[key] = value
    return flat
