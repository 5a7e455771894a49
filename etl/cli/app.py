"""The ``swr-etl`` entry points: run the click group and turn every outcome into an exit code.

``main`` turns every ``EtlError`` into one line on stderr and its exit code; no traceback ever
reaches a user (a bug is reported as exit 1 with one line; ``-v`` logs the trace). The group and
its global options live in etl.cli.group; the sub-commands in etl.cli.commands, imported here so
they are registered on it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

import click

from etl.cli import commands  # noqa: F401  (registers the sub-commands on ``cli``)
from etl.cli.group import Stopped, cli
from etl.errors import EtlError, Terminated, exit_code_of

log = logging.getLogger("etl.cli")


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
    except click.exceptions.NoArgsIsHelpError as exc:
        # Bare `swr-etl` (no arguments at all, so no --log-format json either): the help, as
        # it reads, on stderr, and the usage error's exit code.
        click.echo(exc.ctx.get_help(), err=True)
        code = 2
    except Stopped as exc:
        code = _fail(_stop_message(exc.__cause__), exit_code_of(exc.__cause__ or exc))
    except click.exceptions.Abort as exc:  # click turns KeyboardInterrupt into Abort
        cause = exc.__cause__
        code = _fail(_stop_message(cause) if cause is not None else "aborted",
                     exit_code_of(cause if cause is not None else KeyboardInterrupt()))
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


# What a process started as ``swr-etl`` sets before numpy loads, where the environment does not.
BLAS_THREADS = {"OPENBLAS_NUM_THREADS": "1"}


def one_blas_thread() -> None:
    """Ask numpy's OpenBLAS for one thread, unless the user chose a number or numpy is loaded.

    At import, OpenBLAS starts a worker thread per core that spins waiting for work, and no
    command gives it any: swr-etl's numpy work is element-wise, with no BLAS call. On two cores
    that was 70-90 ms of CPU per run (a 180-row sync: 0.45 -> 0.34 s of CPU), taken from the
    page fetchers and, on a small machine, from whatever serves or shares it. Only a process
    started as ``swr-etl`` is changed; a library caller's environment is its own.
    """
    if "numpy" not in sys.modules:
        for name, value in BLAS_THREADS.items():
            os.environ.setdefault(name, value)


def console_main() -> None:
    """Console-script entry: ``main``, then leave without tearing pandas and pyarrow down.

    Interpreter teardown of those modules costs ~0.2 s of a nightly run that takes ~1 s. By the
    time ``main`` exits every database connection is closed and every file is renamed into
    place; so when no other non-daemon thread is alive, flush the streams and end the process
    at once.
    """
    one_blas_thread()
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


__all__ = ["BLAS_THREADS", "cli", "console_main", "main", "one_blas_thread"]
