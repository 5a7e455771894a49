"""Logging, set up once by the CLI: text for people, JSON lines for machines, always on stderr.

Every record passes a masking filter that replaces known secret values with ``***`` before any
handler formats it, and each formatter masks its finished output again, so no credential reaches a
log line at any verbosity. Text lines never carry control characters (a hostile image description
cannot move the cursor of whoever reads the cron mail); JSON lines are one object per line.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any


class RunIdVar:
    """The id of the run in progress, stamped on every record (JSON key ``run_id``).

    A ``ContextVar`` look-alike (``get``/``set``/``reset``) that also remembers the value
    process-wide, so records logged from worker threads (which start with an empty context) still
    carry the run id. One process runs one sync at a time, so the fallback is unambiguous.
    """

    def __init__(self) -> None:
        self._var: contextvars.ContextVar[int | None] = contextvars.ContextVar(
            "current_run_id", default=None
        )
        self._process: int | None = None

    def get(self) -> int | None:
        value = self._var.get()
        return value if value is not None else self._process

    def set(self, value: int | None) -> contextvars.Token[int | None]:
        self._process = value
        return self._var.set(value)

    def reset(self, token: contextvars.Token[int | None]) -> None:
        self._var.reset(token)
        self._process = self._var.get()


current_run_id = RunIdVar()

_SECRETS: set[str] = set()
_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
# C0 and C1 control characters (and DEL): never written raw into a text log line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_C1_IN_JSON = re.compile(r"[\x7f-\x9f]")
_OUR_HANDLER = "_swr_etl_handler"


def register_secrets(values: Iterable[str | None]) -> None:
    """Remember secret values so the masking filter can hide them anywhere in a record."""
    for v in values:
        if v and len(v) >= 4:
            _SECRETS.add(v)
            # A secret that JSON or repr() would escape must also be found in escaped form
            # (a dict logged with %r, a value inside a JSON line).
            for escaped in (json.dumps(v, ensure_ascii=False)[1:-1], repr(v)[1:-1],
                            json.dumps(repr(v)[1:-1], ensure_ascii=False)[1:-1]):
                if escaped != v:
                    _SECRETS.add(escaped)


def mask(text: str) -> str:
    """Replace every registered secret in ``text`` with ``***`` (longest secrets first)."""
    for s in sorted(_SECRETS, key=len, reverse=True):
        if s in text:
            text = text.replace(s, "***")
    return text


_MAX_DEPTH = 16
_MAX_TEXT = 10_000


def _flat_text(value: Any) -> str:
    """A bounded, masked one-string rendering of any value (deep or hostile ones included)."""
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__ (or one recursing without end) must not kill a log
        text = f"<unprintable {type(value).__name__}>"
    return _clip(mask(text))


def _clip(text: str) -> str:
    """Bound a string's length (after masking, so no secret is cut into an unmasked prefix)."""
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + f"… ({len(text)} chars)"


def _mask_value(value: Any, depth: int = 0) -> Any:
    """Mask strings inside a value (str, list, tuple, dict), keeping its shape up to a depth;
    anything nested deeper is rendered as one bounded string, so no value can make logging
    recurse without end."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict | list | tuple | set) and depth >= _MAX_DEPTH:
        return _flat_text(value)
    if isinstance(value, dict):
        return {mask(str(k)): _mask_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_mask_value(v, depth + 1) for v in value]
    return value


_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match[str]) -> str:
    ch = m.group(0)
    return _NAMED_ESCAPES.get(ch, f"\\x{ord(ch):02x}")


def printable(text: str) -> str:
    """``text`` safe for a terminal: C0 and C1 controls and DEL written as ``\\x1b``-style
    escapes (a server's error message or image name can carry OSC titles, hyperlinks, BEL)."""
    return _CONTROL.sub(_escape, text)


class MaskSecrets(logging.Filter):
    """Mask secrets in the message, its arguments and every extra field; stamp the run id."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Formatting happens here, once, so the formatters never meet the raw arguments:
        # a malformed call or a hostile value degrades to a plain message instead of raising
        # out of a log call (filters run outside logging's own error handling).
        try:
            message = record.getMessage()
        except Exception:
            msg = record.msg if isinstance(record.msg, str) else _flat_text(record.msg)
            message = f"{msg} (unformattable log arguments)"
        record.msg = _clip(mask(message) if _SECRETS else message)
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _RESERVED:
                setattr(record, key, _mask_value(value))
        if getattr(record, "run_id", None) is None:
            record.run_id = current_run_id.get()
        return True


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {
        k: v for k, v in vars(record).items() if k not in _RESERVED and k not in {"run_id", "event"}
    }


def _show_traces() -> bool:
    """Tracebacks are for -v (debug) runs only."""
    return logging.getLogger("etl").isEnabledFor(logging.DEBUG)


def _timestamp(record: logging.LogRecord, fmt: str) -> str:
    return datetime.fromtimestamp(record.created, timezone.utc).strftime(fmt)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, run_id, event, message, logger, fields."""

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, object] = {
            "timestamp": _timestamp(record, "%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname.lower(),
            "run_id": getattr(record, "run_id", None),
            "event": getattr(record, "event", None) or record.name.rsplit(".", 1)[-1],
            "message": record.getMessage(),
            "logger": record.name,
        }
        for key, value in _fields(record).items():
            obj.setdefault(key, value)
        if record.exc_info:
            trace = self.formatException(record.exc_info)
            obj["exception"] = trace.splitlines()[-1]
            if _show_traces():
                obj["traceback"] = trace
        line = _json_text(_mask_value(obj))
        # json.dumps escapes C0 controls; escape DEL and C1 too so the line is inert on a tty.
        return _C1_IN_JSON.sub(lambda m: f"\\u{ord(m.group(0)):04x}", mask(line))


def _json_text(value: object) -> str:
    try:
        return json.dumps(value, default=str, ensure_ascii=False)
    except (RecursionError, ValueError, TypeError):
        return json.dumps(_flat_text(value), ensure_ascii=False)


def _text_value(value: object) -> str:
    text = value if isinstance(value, str) else _json_text(value)
    if text == "" or any(c in text for c in ' ="'):
        text = json.dumps(text, ensure_ascii=False)
    return text


class TextFormatter(logging.Formatter):
    """``2026-11-27T03:00:01Z INFO    [run 12] message key=value``: no control characters."""

    def format(self, record: logging.LogRecord) -> str:
        ts = _timestamp(record, "%Y-%m-%dT%H:%M:%SZ")
        run = getattr(record, "run_id", None)
        prefix = f"{ts} {record.levelname:<7} " + (f"[run {run}] " if run is not None else "")
        extra = " ".join(f"{k}={_text_value(v)}" for k, v in _fields(record).items())
        line = printable(mask(record.getMessage() + (f" {extra}" if extra else "")))
        if record.exc_info:
            trace = mask(self.formatException(record.exc_info)).splitlines()
            if _show_traces():  # -v: the trace continues on indented lines, free of controls
                line += "".join("\n    " + printable(t) for t in trace)
            elif trace:  # otherwise only its last line: no traceback reaches a user
                line += " (" + printable(trace[-1]) + ")"
        return prefix + line


class StderrHandler(logging.Handler):
    """Writes each formatted record to whatever ``sys.stderr`` is at that moment.

    Binding the stream at setup would keep writing into a stream that was since replaced (a
    test's captured stderr, a closed pipe); looking it up per record always reaches the live one.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except RecursionError:  # pragma: no cover  (as logging.StreamHandler does)
            raise
        except Exception:
            self.handleError(record)


def _our_handlers(logger: logging.Logger) -> list[logging.Handler]:
    return [h for h in logger.handlers if getattr(h, _OUR_HANDLER, False)]


_STATE = {"format": "text"}


def remember_format(fmt: str) -> None:
    """Note the log format asked for before logging is set up (for ``error_line``)."""
    _STATE["format"] = "json" if fmt == "json" else "text"


def error_line(message: str, exit_code: int) -> str:
    """The last line a failed command writes on stderr, in the current log format.

    Text: ``swr-etl: error: <message>``; json: one object like every other log line, with level
    ``error``, event ``error`` and the ``exit_code``. Secrets are masked and control characters
    escaped either way, so neither a credential nor a server's escape sequence reaches the
    terminal.
    """
    if _STATE["format"] != "json":
        return "swr-etl: error: " + printable(mask(message))
    record = logging.makeLogRecord({
        "name": "etl.cli", "levelno": logging.ERROR, "levelname": "ERROR", "msg": message,
        "event": "error", "exit_code": exit_code})
    MaskSecrets().filter(record)
    return JsonFormatter().format(record)


def setup_logging(verbose: int = 0, quiet: bool = False, fmt: str = "text") -> None:
    """Configure logging once: level from -v/-q, one stderr handler, format text or json.

    The handler sits on the root logger so warnings from libraries (urllib3, …) are formatted and
    masked like ours; ``-v`` shows the tool's debug lines (one per page), ``-vv`` libraries' too.
    ``-q`` shows errors only. Handlers installed by others (pytest's capture) are left alone.
    """
    remember_format(fmt)
    level = logging.ERROR if quiet else (logging.DEBUG if verbose >= 1 else logging.INFO)
    root = logging.getLogger()
    etl = logging.getLogger("etl")
    for logger in (root, etl):
        for h in _our_handlers(logger):
            logger.removeHandler(h)
    handler = StderrHandler()
    setattr(handler, _OUR_HANDLER, True)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(MaskSecrets())
    handler.setLevel(level)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose >= 2 else max(level, logging.WARNING))
    etl.setLevel(level)
    etl.propagate = True
