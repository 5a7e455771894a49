"""Logging, set up once by the CLI: text for people, JSON lines for machines, always on stderr.

Every record passes a masking filter that replaces known secret values with ``***`` before any
handler formats it, so no credential reaches a log line at any verbosity.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterable
from datetime import datetime, timezone

# The id of the run in progress, stamped on every record (JSON key "run_id").
current_run_id: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "current_run_id", default=None
)

_SECRETS: set[str] = set()
_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def register_secrets(values: Iterable[str | None]) -> None:
    """Remember secret values so the masking filter can hide them anywhere in a record."""
    for v in values:
        if v and len(v) >= 4:
            _SECRETS.add(v)


def mask(text: str) -> str:
    """Replace every registered secret in ``text`` with ``***``."""
    for s in _SECRETS:
        if s in text:
            text = text.replace(s, "***")
    return text


class MaskSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            record.msg = mask(record.getMessage())
            record.args = None
            for key, value in list(vars(record).items()):
                if key not in _RESERVED and isinstance(value, str):
                    setattr(record, key, mask(value))
        record.run_id = current_run_id.get()
        return True


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {
        k: v for k, v in vars(record).items() if k not in _RESERVED and k not in {"run_id", "event"}
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, run_id, event, message, logger, fields."""

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%S.%fZ"
            ),
            "level": record.levelname.lower(),
            "run_id": getattr(record, "run_id", None),
            "event": getattr(record, "event", None) or record.name.rsplit(".", 1)[-1],
            "message": record.getMessage(),
            "logger": record.name,
        }
        obj.update(_fields(record))
        if record.exc_info and record.levelno >= logging.DEBUG:
            obj["exception"] = mask(self.formatException(record.exc_info).splitlines()[-1])
        return mask(json.dumps(obj, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """``2026-11-27T03:00:01Z INFO [run 12] message key=value``: no control characters."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        run = getattr(record, "run_id", None)
        prefix = f"{ts} {record.levelname:<7} " + (f"[run {run}] " if run is not None else "")
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = prefix + record.getMessage() + (f" {extra}" if extra else "")
        return mask(line.replace("\r", "\\r").replace("\n", "\\n"))


def setup_logging(verbose: int = 0, quiet: bool = False, fmt: str = "text") -> None:
    """Configure the ``etl`` logger once: level from -v/-q, one stderr handler."""
    level = logging.ERROR if quiet else (logging.DEBUG if verbose >= 1 else logging.INFO)
    logger = logging.getLogger("etl")
    for h in list(logger.handlers):
        logger.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(MaskSecrets())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
