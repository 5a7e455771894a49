"""Writing an output file atomically, durably, and never through a planted link.

Every file the tool writes for others to read (the metrics file, export partitions and their
manifest, reports, so the demo's outputs too) goes through ``atomic_file``:

* the bytes go to a new hidden temp file in the same folder (same filesystem, so the rename is
  atomic; readers such as pyarrow.dataset skip dot-files), created with ``O_EXCL | O_NOFOLLOW``:
  whatever sits at that name, a planted symlink included, makes the open fail instead of being
  written through;
* the file is flushed to disk before it is renamed over the target, and the folder after it, so
  a crash or power cut leaves the old file or the new one, never a torn or empty one;
* the rename replaces a symlink planted at the target itself: its target is never touched.

Standard library only: every layer may use it.
"""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

# O_EXCL fails on anything already at the name (a symlink included); O_NOFOLLOW says so
# explicitly. Mode 0o666 minus the umask: the file gets the same permissions as any new file.
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# A filesystem that cannot sync a folder (some network and FUSE mounts) says so with these:
# the file itself was synced, which is what it can offer.
_NO_FOLDER_SYNC = {errno.EINVAL, errno.ENOTSUP, errno.EACCES, errno.EBADF}


def temp_path(final: Path) -> Path:
    """A hidden, unique temp name beside ``final``: ``.<name>.<12 hex>.tmp``."""
    return final.parent / f".{final.name}.{uuid.uuid4().hex[:12]}.tmp"


def create_new(path: Path) -> BinaryIO:
    """Open a new file at ``path`` for binary writing; fails if anything exists there.

    Raises:
        FileExistsError: something (a file, a folder, a symlink) is already at ``path``.
    """
    return os.fdopen(os.open(path, _CREATE_FLAGS, 0o666), "wb")


@contextmanager
def atomic_file(path: Path, *, mode: int | None = None) -> Iterator[BinaryIO]:
    """Write ``path`` through a temp file: yields the open temp file; when the block ends
    normally it is synced and renamed over ``path``; when it raises, it is removed.

    ``mode``: permission bits to set (e.g. 0o644 for a file another user's collector reads);
    default: those of any new file (0o666 minus the umask).
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        with create_new(tmp) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
            if mode is not None:
                os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def write_text_atomic(path: Path, text: str, *, mode: int | None = None) -> None:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` with ``atomic_file``."""
    with atomic_file(path, mode=mode) as f:
        f.write(text.encode("utf-8"))


def _sync_folder(folder: Path) -> None:
    """Flush the folder's entry for the renamed file (the rename is durable only then)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in _NO_FOLDER_SYNC:
            return
        raise
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _NO_FOLDER_SYNC:
            raise
    finally:
        os.close(fd)
