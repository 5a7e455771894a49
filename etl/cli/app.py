"""The ``swr-etl`` command line: a thin shell over the library.

Every command accepts the global options (``-v``, ``-q``, ``--log-format``, ``--config``) before or
after its name. ``main`` turns every ``EtlError`` into one line on stderr and its exit code; no
traceback ever reaches a user (a bug is reported as exit 1 with one line; ``-v`` logs the trace).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from etl import __version__
from etl.errors import EXIT_CODES, ConfigError, EtlError, Terminated, exit_code_of

log = logging.getLogger("etl.cli")

_GLOBAL_KEY = "etl.global"


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


def _setup(ctx: click.Context) -> dict[str, Any]:
    from etl.logs import setup_logging

    g = globals_of(ctx)
    if g.get("config_path") is not None:
        # -v/-q/--log-format may also come from the config file; flags still win.
        from etl.config.file import load_config_file, logging_options

        meta = ctx.find_root().meta.setdefault(_GLOBAL_KEY, {})
        explicit = g.get("_explicit", set())
        if explicit & {"verbose", "quiet"}:  # -v or -q on the command line settles verbosity
            explicit = explicit | {"verbose", "quiet"}
        for key, value in logging_options(load_config_file(g["config_path"])).items():
            if key not in explicit:
                meta[key] = value
        g = globals_of(ctx)
    setup_logging(g.get("verbose") or 0, bool(g.get("quiet")), g.get("log_format") or "text")
    return g


def settings_from(ctx: click.Context, flags: dict[str, Any], *, need_credentials: bool = False):
    """Build Settings from this command's flags, the environment and the config file."""
    from etl.config.file import load_config_file, without_logging_options
    from etl.config.settings import build_settings
    from etl.logs import register_secrets

    g = globals_of(ctx)
    config_path = g.get("config_path")
    config = without_logging_options(load_config_file(config_path)) if config_path else {}
    given = {k: v for k, v in flags.items() if v is not None and v != ()}
    settings = build_settings(given, os.environ, config, need_credentials=need_credentials)
    register_secrets(settings.credentials.secrets())
    if need_credentials:  # only a command that will send them
        from etl.config.settings import plaintext_warnings

        for warning in plaintext_warnings(settings):
            log.warning(warning)
    return settings


class _Stopped(Exception):  # noqa: N818  (a carrier, not an error of its own)
    """Carries a ``KeyboardInterrupt`` (Ctrl-C, or SIGTERM as ``Terminated``) past click, whose
    own handling of it writes a blank line to stderr: not a JSON object in json mode."""


def command(name: str, **kw: Any) -> Callable[[Callable[..., Any]], click.Command]:
    """Register a sub-command with the global options and logging set up before its body."""

    def deco(f: Callable[..., Any]) -> click.Command:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                _setup(click.get_current_context())
                return f(*args, **kwargs)
            except KeyboardInterrupt as exc:
                raise _Stopped() from exc

        return cli.command(name, **kw)(global_options(click.pass_context(wrapper)))

    return deco


EPILOG = "Exit codes: " + "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items())


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             epilog=EPILOG)
@click.version_option(__version__, "--version", prog_name="swr-etl")
@global_options
def cli() -> None:
    """Mirror Huawei Cloud SWR's official image list into SQLite, export snapshots, report trends.

    Credentials (first match wins): SWR_AUTH_TOKEN; HUAWEICLOUD_SDK_AK + HUAWEICLOUD_SDK_SK
    (+ HUAWEICLOUD_SDK_PROJECT_ID); HUAWEICLOUD_USERNAME + HUAWEICLOUD_PASSWORD +
    HUAWEICLOUD_DOMAIN_NAME (+ HUAWEICLOUD_IAM_ENDPOINT).
    """


from etl.cli import commands  # noqa: E402,F401  (registers the sub-commands on ``cli``)


def _fail(message: str, code: int) -> int:
    from etl.logs import error_line

    click.echo(error_line(message.replace("\r", " ").replace("\n", " "), code), err=True)
    return code


def _stop_message(exc: BaseException | None) -> str:
    if isinstance(exc, Terminated):
        return str(exc) or "terminated"
    return "interrupted"


def _format_asked(args: list[str]) -> str:
    """``--log-format`` as given on the command line (the last one wins), read before click
    parses, so even a usage error is reported in the format asked for."""
    fmt = "text"
    for i, arg in enumerate(args):
        if arg == "--log-format" and i + 1 < len(args):
            fmt = args[i + 1]
        elif arg.startswith("--log-format="):
            fmt = arg.split("=", 1)[1]
    return fmt


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI and exit with the documented code."""
    from etl.logs import remember_format

    remember_format(_format_asked(sys.argv[1:] if argv is None else list(argv)))
    try:
        rv = cli.main(args=argv, prog_name="swr-etl", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except _Stopped as exc:
        code = _fail(_stop_message(exc.__cause__), exit_code_of(exc.__cause__ or exc))
    except click.exceptions.Abort as exc:  # click turns KeyboardInterrupt into Abort
        cause = exc.__cause__
        code = _fail(_stop_message(cause) if cause is not None else "aborted",
                     exit_code_of(cause) if cause is not None else 130)
    except click.ClickException as exc:
        msg = exc.format_message().replace("\n", " ")
        code = _fail(msg, exc.exit_code if exc.exit_code != 1 else 2)
    except EtlError as exc:
        code = _fail(exc.message, exit_code_of(exc))
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM during a sync (etl.errors.Terminated)
        code = _fail(str(exc) or "interrupted", exit_code_of(exc))
    except BrokenPipeError:
        code = 0
    except Exception as exc:  # a bug: one line for the user, the trace at debug
        log.debug("internal error", exc_info=True)
        code = _fail(f"internal error: {type(exc).__name__}: {exc} (run with -v for details)",
                     exit_code_of(exc))
    sys.stdout.flush()
    sys.exit(code)


def console_main() -> None:
    """Console-script entry: ``main``, then leave without tearing pandas and pyarrow down.

    Interpreter teardown of those modules costs ~0.2 s of a nightly run that takes ~1 s. By the
    time ``main`` exits every database connection is closed and every file is renamed into
    place; so when no other non-daemon thread is alive, flush the streams and end the process
    at once.
    """
    try:
        main()
    except SystemExit as exc:
        # Daemon threads (idle HTTP helpers, an abandoned dripping request) never hold an exit.
        others = [t for t in threading.enumerate()
                  if t is not threading.current_thread() and not t.daemon]
        if not isinstance(exc.code, int) or others:
            raise
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(exc.code)


__all__ = ["cli", "main", "command", "settings_from", "ConfigError"]
