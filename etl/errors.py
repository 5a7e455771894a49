"""The one exception tree of swr-etl.

The library raises these and never prints or exits; the CLI turns an ``EtlError`` into a single
line on stderr and the documented exit code (``EXIT_CODES`` below; docs/operators/exit-codes.md
says what to do about each). Each leaf knows its code and also inherits a built-in where one fits,
so callers can catch ``ValueError`` etc.
"""

from __future__ import annotations


class EtlError(Exception):
    """Base of every error a user can cause or the API can throw."""

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class InternalError(EtlError, RuntimeError):
    """A bug: exit 1."""

    exit_code = 1


class ConfigError(EtlError, ValueError):
    """Usage or configuration error: bad option, missing credentials, unusable database file.

    ``param`` is the library parameter the error is about (``page_size``), if any. The message
    names it that way, before any value it quotes, so a front end can name it as its users
    write it instead (``renamed``): the command line and the config file say ``page-size``.
    """

    exit_code = 2

    def __init__(self, message: str, *, param: str | None = None,
                 exit_code: int | None = None) -> None:
        super().__init__(message, exit_code=exit_code)
        self.param = param

    def renamed(self, name: str) -> ConfigError:
        """This error naming its parameter ``name`` (the first mention is the parameter)."""
        if not self.param or self.param == name or self.param not in self.message:
            return self
        return ConfigError(self.message.replace(self.param, name, 1), param=name,
                           exit_code=self.exit_code)


class AuthError(EtlError, PermissionError):
    """The API refused our credentials or permissions (401, 403 non-throttling)."""

    exit_code = 3


class UpstreamError(EtlError, ConnectionError):
    """The API stayed unavailable or returned unusable data after all retries."""

    exit_code = 4


class NotFoundError(UpstreamError):
    """404: the endpoint does not exist in this region."""


class BadRequestError(UpstreamError):
    """400: the API rejected our parameters; carries the API's own message."""


class LockedError(EtlError, BlockingIOError):
    """Another run holds the lock for this database."""

    exit_code = 5


class QualityError(EtlError):
    """Too many rejected rows: nothing of this run was loaded."""

    exit_code = 7


class DatabaseBusyError(EtlError, TimeoutError):
    """Another writer held the database past our busy timeout; nothing of this run was loaded."""

    exit_code = 5


class Terminated(KeyboardInterrupt):
    """SIGTERM during a run (systemd stop or timeout, a Kubernetes deadline, ``kill``).

    Unwinds like Ctrl-C (a ``BaseException``, so no retry loop swallows it); ``etl.run.hooks``
    installs the handler that raises it.
    """

    exit_code = 143  # 128 + SIGTERM, the shell's convention


def exit_code_of(exc: BaseException) -> int:
    """The one rule for the exit code an exception ends a run with.

    The ledger (``runs.exit_code``), the metrics file, the healthcheck ping and the process all
    use it, so they can never disagree: an ``EtlError`` carries its own code, SIGTERM is 143,
    Ctrl-C (SIGINT) 130, anything else is a bug (1).
    """
    if isinstance(exc, EtlError | Terminated):
        return int(exc.exit_code)
    if isinstance(exc, KeyboardInterrupt):
        return 130  # 128 + SIGINT
    return 1


EXIT_CODES: dict[int, str] = {
    0: "success (sync, replay: a complete, consistent scan was loaded; status: fresh)",
    1: "internal error (a bug)",
    2: "usage or configuration error (bad option, missing credentials, unusable database file)",
    3: "authentication or permission refused by the API",
    4: "the API stayed unavailable or returned unusable data; nothing of this run was loaded",
    5: "another run holds the lock for this database",
    6: "incomplete: the listing kept changing; what was seen was loaded, nothing marked removed",
    7: "data-quality threshold exceeded; nothing of this run was loaded",
    8: "stale (status only): the latest successful run is older than --max-age, or there is none",
    130: "interrupted by Ctrl-C (SIGINT); nothing of the run was loaded",
    143: "stopped by SIGTERM; nothing of the run was loaded",
}
"""Every exit code and its meaning: the one table each command's --help, the top-level help and
the documentation's exit-code page are printed from."""
