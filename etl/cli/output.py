"""Where a command's human output goes, so that each line is shown once.

A run's summary line is always logged (stderr, at the level of its outcome: that is what log
files, the journal and level-based alerting see). It is also printed on stdout for scripts that
read it there, unless stdout and stderr are one and the same file, pipe or terminal (an
interactive shell, cron's ``>> log 2>&1``, systemd's journal, ``2>&1 | jq``): there the stdout
copy would only repeat the log line. ``-q`` silences both.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

import click

from etl.logs import printable


def _identity(stream: TextIO) -> tuple[int, int] | None:
    """(device, inode) of what ``stream`` writes to, or None when it has no file descriptor
    (a test's capture buffer, a closed stream)."""
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return None
    return st.st_dev, st.st_ino


def same_destination(out: TextIO, err: TextIO) -> bool:
    """True when ``out`` and ``err`` write to one file, pipe or terminal."""
    a, b = _identity(out), _identity(err)
    return a is not None and a == b


def echo_summary(line: str, *, quiet: bool) -> None:
    """Print a run's summary line on stdout, unless ``quiet`` or the log line already carried
    it to the same place (see the module docstring)."""
    if quiet or same_destination(sys.stdout, sys.stderr):
        return
    click.echo(printable(line))
