"""The rules of a setting, written once: type, default, range, choices, help, env var, spelling.

``Settings`` (etl.config.settings) declares each field with ``option(...)`` (a user option: a
flag of ``swr-etl sync``, a config-file key, perhaps an environment variable) or ``internal(...)``
(set in code only: tests, the demo's time travel). ``table`` reads those fields back as
``Option``s, and everything else reads that table:

* ``Settings.__post_init__`` checks each value (``check``) and names the parameter in its error
  (``page_size must be 1..1000, got 0``);
* ``build_settings`` converts the text of environment variables and the config file
  (``coerce``) and names the option as users write it (``page-size``);
* the command line builds its click options from it (etl.cli.options), and the command
  reference in the docs is generated from those.

Standard library only: the command line imports this to start.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etl.errors import ConfigError
from etl.integers import INT64_MAX

_SPEC = "etl.option"

# A rule beyond type, range and choices: (parameter name, value) -> the value to keep; raises
# ConfigError naming the parameter.
Rule = Callable[[str, Any], Any]


@dataclass(frozen=True)
class Option:
    """One setting. ``help`` is empty for an internal one (no flag, no config key, no env var)."""

    help: str = ""
    env: str | None = None  # environment variable; a flag beats it, it beats the config file
    # Standard variables of other tools read, in this order, when ``env`` is unset
    # (AWS_ENDPOINT_URL for an S3 endpoint): users already have them set.
    env_also: tuple[str, ...] = ()
    low: float | None = None  # smallest value
    # Largest value: the flag checks it as it is parsed and --help shows it.
    high: float | None = None
    # A ceiling far beyond any real use, against absurd values (1e20 seconds overflows the
    # clock): checked with the other settings, so the message is ``timeout must be 0.001..86400,
    # got 1e+20`` whichever way the value came.
    cap: float | None = None
    choices: tuple[str, ...] = ()
    hint: str = ""  # said after the choices when a value is refused
    metavar: str | None = None
    spelling: str | None = None  # flag and config-file key, when not the name with dashes
    shown_default: str | None = None  # what --help says the default is, when not the value
    folder: bool = False  # a Path that names a folder, not a file
    multiple: bool = False  # may be given several times (one value per source)
    # A Path that may also be a URL of these schemes (``s3``): kept as text, checked by ``rule``.
    schemes: tuple[str, ...] = ()
    rule: Rule | None = None
    # Filled in from the Settings field by ``table``:
    name: str = ""
    kind: type = str
    default: Any = None

    @property
    def user(self) -> bool:
        """A user option: a ``sync`` flag and a config-file key."""
        return bool(self.help)

    @property
    def key(self) -> str:
        """How users write it: ``page-size`` (``--page-size``, ``page-size = 500``)."""
        return self.spelling or self.name.replace("_", "-")

    @property
    def envs(self) -> tuple[str, ...]:
        """The environment variables read, first set wins."""
        return ((self.env,) if self.env else ()) + self.env_also

    def is_url(self, value: Any) -> bool:
        """``value`` is text naming one of ``schemes`` (``s3:...``), not a local path."""
        return (bool(self.schemes) and isinstance(value, str) and ":" in value
                and value.split(":", 1)[0].lower() in self.schemes)

    @property
    def bounds(self) -> tuple[float, float]:
        """The range a value must lie in. An open end still means "fits in a SQLite INTEGER"."""
        low = -INT64_MAX if self.low is None else self.low
        high = self.high if self.high is not None else self.cap
        return low, INT64_MAX if high is None else high


def option(default: Any, help: str, **rules: Any) -> Any:
    """A ``Settings`` field that users set (``help`` is its --help text)."""
    return field(default=default, metadata={_SPEC: Option(help=help, **rules)})


def internal(default: Any = None, *, factory: Callable[[], Any] | None = None,
             **rules: Any) -> Any:
    """A ``Settings`` field set in code only, checked like the others."""
    if factory is not None:
        return field(default_factory=factory, metadata={_SPEC: Option(**rules)})
    return field(default=default, metadata={_SPEC: Option(**rules)})


def table(cls: type) -> dict[str, Option]:
    """Every field of the dataclass ``cls`` as an ``Option``, by name, in field order."""
    hints = typing.get_type_hints(cls)
    out: dict[str, Option] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        kinds = [t for t in typing.get_args(hints[f.name]) if t is not type(None)]
        if typing.get_origin(hints[f.name]) is tuple:  # a tuple of values: checked as a tuple
            kinds = [tuple]
        out[f.name] = dataclasses.replace(f.metadata.get(_SPEC, Option()), name=f.name,
                                          kind=kinds[0] if kinds else hints[f.name],
                                          default=default)
    return out


# ------------------------------------------------------------------------------- checking


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# kind -> (what it must be, for the message; does a value have it; the value to keep)
_KINDS: dict[type, tuple[str, Callable[[Any], bool], Callable[[Any], Any]]] = {
    int: ("an integer", _is_int, lambda v: v),
    float: ("a number", lambda v: _is_int(v) or isinstance(v, float), float),
    bool: ("true or false", lambda v: isinstance(v, bool), lambda v: v),
    str: ("text", lambda v: isinstance(v, str), lambda v: v),
    Path: ("a path", lambda v: isinstance(v, str | os.PathLike),
           lambda v: v if isinstance(v, Path) else Path(v)),
}


def _either(choices: tuple[str, ...]) -> str:
    return " or ".join(choices) if len(choices) == 2 else "one of " + ", ".join(choices)


def check(spec: Option, value: Any) -> Any:
    """``value`` checked against ``spec``; returns what to keep (an int given for a float
    becomes a float, a str given for a Path a Path).

    Raises:
        ConfigError: naming the parameter, e.g. ``page_size must be 1..1000, got 0``.
    """
    name = spec.name
    if value is None and spec.default is None:
        return None
    what, fits, keep = _KINDS.get(spec.kind) or (
        spec.kind.__name__, lambda v: isinstance(v, spec.kind), lambda v: v)
    if not fits(value):
        raise ConfigError(f"{name} must be {what}, got {value!r}", param=name)
    if spec.kind in (int, float):
        # A NaN passes every comparison, so it would switch a check off silently.
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value}", param=name)
        low, high = spec.bounds
        if not low <= value <= high:
            raise ConfigError(f"{name} must be {low}..{high}, got {value}", param=name)
    if spec.choices and value not in spec.choices:
        raise ConfigError(f"{name} must be {_either(spec.choices)}{spec.hint}, got {value!r}",
                          param=name)
    kept = value if spec.is_url(value) else keep(value)
    return spec.rule(name, kept) if spec.rule is not None else kept


# ------------------------------------------------------------- text from env and config file

_TRUE_WORDS = {"1", "true", "yes", "on"}


def _to_bool(v: Any) -> bool:
    return v if isinstance(v, bool) else str(v).strip().lower() in _TRUE_WORDS


def _to_int(v: Any) -> int:
    if isinstance(v, bool) or (isinstance(v, float) and not (
            v.is_integer() and abs(v) <= INT64_MAX)):
        raise ValueError(v)
    return int(v)


def _to_float(v: Any) -> float:
    if isinstance(v, bool):
        raise ValueError(v)
    return float(v)


def _to_path(v: Any) -> Path:
    if str(v) == "":  # Path("") is the current folder: never what an empty value meant
        raise ValueError(v)
    return Path(os.path.expanduser(str(v)))


_CONVERT: dict[type, Callable[[Any], Any]] = {
    Path: _to_path,
    bool: _to_bool,
    int: _to_int,
    float: _to_float,
    str: str,
}


def coerce(spec: Option, value: Any) -> Any:
    """A value from a flag, an environment variable or the config file, as ``spec.kind``.

    Raises:
        ConfigError: naming the parameter: ``invalid value for page_size: 'many'``.
    """
    if spec.is_url(value):
        return str(value)
    try:
        return _CONVERT[spec.kind](value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(f"invalid value for {spec.name}: {value!r}", param=spec.name) from exc
