"""The ``swr-etl`` command line: a thin shell over the library (nothing else imports it)."""

from etl.cli.app import cli, console_main, main

__all__ = ["cli", "console_main", "main"]
