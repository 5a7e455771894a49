"""The ``swr-etl`` click group, its global options, and what every sub-command does first.

Every command accepts the global options (``-v``, ``-q``, ``--log-format``, ``--config``) before or
after its name. Before a command's body runs, the config file (if any) is read, once, and logging
is set up; ``settings_from`` then builds the command's ``Settings`` from its flags, the environment
and that same parsed file. Sub-commands register with ``@command`` (etl.cli.commands).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click

from etl import __version__
from etl.config.settings import Settings
from etl.errors import EXIT_CODES

log = logging.getLogger("etl.cli")

_GLOBAL_KEY = "etl.global"  # root context meta: the global options, wherever they were given
_CONFIG_KEY = "etl.config"  # root context meta: the parsed config file, minus logging options


def _store(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    opts = ctx.find_root().meta.setdefault(_GLOBAL_KEY, {})
    source = ctx.get_parameter_source(param.name or "")
    # A value given explicitly (anywhere) beats a default given elsewhere.
    if source is not None and source.name != "DEFAULT":
        opts[param.name] = value
        opts.setdefault("_explicit", set()).add(param.name)
    else:
        opts.setdefault(param.name, value)
    return value


def global_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add -v/-q/--log-format/--config to a command or the group."""
    options = [
        click.option("-v", "--verbose", count=True, expose_value=False, callback=_store,
                     is_eager=True, help="More output: -v shows each page fetched (debug)."),
        click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_store,
                     is_eager=True, help="Only errors; nothing on success."),
        click.option("--log-format", type=click.Choice(["text", "json"]), expose_value=False,
                     callback=_store, is_eager=True, default="text", show_default=True,
                     help="text for people, json lines for machines (stderr)."),
        click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                     expose_value=False, callback=_store, is_eager=True, envvar="SWR_ETL_CONFIG",
                     help="TOML file holding any option (flags > env > file > defaults). "
                          "[env: SWR_ETL_CONFIG]"),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def globals_of(ctx: click.Context) -> dict[str, Any]:
    return dict(ctx.find_root().meta.get(_GLOBAL_KEY, {}))


def quiet(ctx: click.Context) -> bool:
    return bool(globals_of(ctx).get("quiet"))


def _setup(ctx: click.Context) -> None:
    """Read the config file (once per invocation), then set up logging."""
    from etl.logs import setup_logging

    meta = ctx.find_root().meta
    g = meta.setdefault(_GLOBAL_KEY, {})
    if g.get("config_path") is not None:
        from etl.config.file import load_config_file, logging_options, without_logging_options

        config = load_config_file(g["config_path"])
        # -v/-q/--log-format may also come from the config file; flags still win.
        explicit = g.get("_explicit", set())
        if explicit & {"verbose", "quiet"}:  # -v or -q on the command line settles verbosity
            explicit = explicit | {"verbose", "quiet"}
        for key, value in logging_options(config).items():
            if key not in explicit:
                g[key] = value
        meta[_CONFIG_KEY] = without_logging_options(config)
    setup_logging(g.get("verbose") or 0, bool(g.get("quiet")), g.get("log_format") or "text")


def settings_from(ctx: click.Context, flags: dict[str, Any], *,
                  need_credentials: bool = False) -> Settings:
    """Build Settings from this command's flags, the environment and the config file."""
    from etl.config.credentials import aws_secrets, pg_secrets
    from etl.config.regions import unknown_region_warning
    from etl.config.settings import build_settings
    from etl.config.urls import object_store_warnings, plaintext_warnings
    from etl.logs import register_secrets

    config = ctx.find_root().meta.get(_CONFIG_KEY, {})
    given = {k: v for k, v in flags.items() if v is not None and v != ()}
    settings = build_settings(given, os.environ, config, need_credentials=need_credentials)
    register_secrets(settings.credentials.secrets())
    register_secrets(aws_secrets(os.environ))  # read by the AWS SDK itself, for s3:// exports
    register_secrets(pg_secrets(os.environ))  # read by libpq itself, for a postgresql:// --db
    for source in settings.sources:  # each [[sources]] table's own credentials
        register_secrets(source.credentials.secrets() if source.credentials else [])
    if need_credentials:  # only a command that will send them
        for source in settings.source_list():
            for warning in plaintext_warnings(settings.for_source(source)):
                log.warning(warning)
            if source.name == source.region:  # an endpoint derived from the region's name
                unknown = unknown_region_warning(source.region, source.endpoint)
                if unknown:
                    log.warning(unknown)
    for warning in object_store_warnings(settings):  # only with an s3:// destination
        log.warning(warning)
    return settings


class Stopped(Exception):  # noqa: N818  (a carrier, not an error of its own)
    """Carries a ``KeyboardInterrupt`` (Ctrl-C, or SIGTERM as ``Terminated``) past click, whose
    own handling of it writes a blank line to stderr: not a JSON object in json mode."""


def exit_codes_epilog(codes: Iterable[int]) -> str:
    """The "Exit codes" paragraph of a --help, each code with its meaning from the one table
    (``etl.errors.EXIT_CODES``); click's ``\\b`` marker keeps it from being rewrapped into one
    paragraph."""
    return "\b\nExit codes:\n" + "\n".join(f"  {code:<4} {EXIT_CODES[code]}" for code in codes)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             epilog=exit_codes_epilog(EXIT_CODES))
@click.version_option(__version__, "--version", prog_name="swr-etl")
@global_options
def cli() -> None:
    """Mirror Huawei Cloud SWR's official image list into SQLite, export snapshots, report trends.

    Credentials (first match wins): SWR_AUTH_TOKEN; HUAWEICLOUD_SDK_AK + HUAWEICLOUD_SDK_SK
    (+ HUAWEICLOUD_SDK_PROJECT_ID); HUAWEICLOUD_USERNAME + HUAWEICLOUD_PASSWORD +
    HUAWEICLOUD_DOMAIN_NAME (+ HUAWEICLOUD_IAM_ENDPOINT).
    """


def command(name: str, *, exit_codes: Iterable[int], sqlite_memstatus: bool = True,
            **kw: Any) -> Callable[[Callable[..., Any]], click.Command]:
    """Register a sub-command of ``cli`` with the global options, the config file read and
    logging set up before its body; its --help ends with ``exit_codes`` and their meanings (a
    bug, exit 1, is possible anywhere and listed in the top-level help).

    ``sqlite_memstatus=False``: SQLite's process-wide allocation statistics are turned off
    before its body (``etl.store.memstatus``), for the commands whose SQLite work is large
    enough to pay for ctypes' import (a few ms)."""
    kw.setdefault("epilog", exit_codes_epilog(exit_codes))

    def deco(f: Callable[..., Any]) -> click.Command:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                if not sqlite_memstatus:
                    from etl.store.memstatus import memstatus_off

                    memstatus_off()
                _setup(click.get_current_context())
                return f(*args, **kwargs)
            except KeyboardInterrupt as exc:
                raise Stopped() from exc

        return cli.command(name, **kw)(global_options(click.pass_context(wrapper)))

    return deco
