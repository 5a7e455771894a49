"""Click options made from the table of settings (etl.config.settings.SYNC_OPTIONS).

Every ``sync`` option, and the ``--db``/``--source-timezone`` other commands share, is a click
option built here from its table entry: flag, type, range, choices and help text, with the
environment variable and default appended as ``[env: ...; default: ...]``. Defaults stay
``None`` on the click side: ``build_settings`` needs to know what was given, and applies the
environment, the config file and the defaults in that order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from etl.config.options import Option
from etl.config.settings import OPTIONS, SYNC_OPTIONS

F = TypeVar("F", bound=Callable[..., Any])


class FiniteRange(click.FloatRange):
    """A ``FloatRange`` that also refuses ``nan`` and ``inf`` (a NaN passes every comparison,
    so a plain range lets it through)."""

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def _shown(default: Any) -> str | None:
    """A default as --help shows it; None for "nothing to show" (unset, or a flag)."""
    if default is None or isinstance(default, bool):
        return None
    if isinstance(default, Path):
        return str(default) if default.is_absolute() else f"./{default}"
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


class NonEmptyPath(click.Path):
    """A ``click.Path`` that refuses an empty value: ``--db ''`` would otherwise become ``.``,
    the current folder, and the run would lock and write beside it."""

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value == "":
            self.fail("an empty path names no file.", param, ctx)
        return super().convert(value, param, ctx)


class PathOrUrl(NonEmptyPath):
    """A ``NonEmptyPath`` that passes a URL of one of ``schemes`` (``s3://...``) on as text,
    for the settings to check."""

    def __init__(self, *args: Any, schemes: tuple[str, ...], **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.spec = Option(schemes=schemes)

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        if self.spec.is_url(value):
            return value
        return super().convert(value, param, ctx)


def help_text(spec: Option) -> str:
    """``spec.help`` plus ``[env: VAR; default: VALUE]`` where there is either."""
    extra = [f"env: {', '.join(spec.envs)}"] if spec.envs else []
    shown = spec.shown_default or _shown(spec.default)
    if shown:
        extra.append(f"default: {shown}")
    return spec.help + (f"  [{'; '.join(extra)}]" if extra else "")


def _int(bound: float | None) -> int | None:
    return None if bound is None else int(bound)


def _type(spec: Option) -> click.ParamType | None:
    """The click type that parses the flag: the range it checks is ``low..high`` (a ``cap`` is
    left to Settings, which refuses an absurd value in its own words)."""
    if spec.choices:
        return click.Choice(list(spec.choices))
    if spec.kind is Path and spec.schemes:
        return PathOrUrl(file_okay=not spec.folder, dir_okay=spec.folder, path_type=Path,
                         schemes=spec.schemes)
    if spec.kind is Path:
        return NonEmptyPath(file_okay=not spec.folder, dir_okay=spec.folder, path_type=Path)
    if spec.kind is int:
        return click.IntRange(_int(spec.low), _int(spec.high))
    if spec.kind is float:
        return click.FloatRange(spec.low, spec.high)
    return None


def setting_option(spec: Option) -> Callable[[F], F]:
    """The click option of one table entry (``--page-size``; ``--no-auth`` for its spelling)."""
    decls = [f"--{spec.key}", spec.name]
    if spec.kind is bool:
        return click.option(*decls, is_flag=True, default=None, help=help_text(spec))
    # A path's environment variable goes through click's Path type like the flag (a folder given
    # for a file is refused there); other values are read by build_settings, in its own words.
    envvar = spec.env if spec.kind is Path else None
    return click.option(*decls, type=_type(spec), default=None, metavar=spec.metavar,
                        multiple=spec.multiple, envvar=envvar, help=help_text(spec))


def sync_options(f: F) -> F:
    """Every option of ``swr-etl sync``, in table order."""
    for spec in reversed(SYNC_OPTIONS):
        f = setting_option(spec)(f)
    return f


DB_OPTION = setting_option(OPTIONS["db"])
SOURCE_TIMEZONE_OPTION = setting_option(OPTIONS["source_timezone"])


# export's bounds of each request to a bucket: the settings sync has, said as they apply there
# (etl.publish.storage.S3Options).
_BUCKET_BOUNDS = {
    "timeout": "Seconds to connect to an s3:// export's store, and the longest one request to it "
               "may make no progress.  [default: 30]",
    "max_attempts": "Attempts per request to an s3:// export's store.  [default: 3]",
}


def S3_OPTIONS(f: F) -> F:  # noqa: N802  (used as a decorator, like the constants above)
    """``export``'s options for a bucket: endpoint, region, and the bounds of each request
    (``sync`` has them all already)."""
    for name, text in reversed(_BUCKET_BOUNDS.items()):
        spec = OPTIONS[name]
        f = click.option(f"--{spec.key}", name, type=_type(spec), default=None,
                         metavar=spec.metavar, help=text)(f)
    for name in ("s3_region", "s3_endpoint"):
        f = setting_option(OPTIONS[name])(f)
    return f
