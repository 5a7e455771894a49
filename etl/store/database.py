"""Opening the database safely: the run lock, the file check, and the connection settings.

Order matters: the file is checked first, before anything is created beside it: it must be a
SQLite database (``check_database_file``) and, unless empty, one of ours or one the user lets
us adopt (``etl.store.read.check_ours``). Then the lock on ``<db>.lock`` is taken (exclusive,
non-blocking ``flock``; the kernel releases it if the process dies), the file checked once
more, and the connection opened in autocommit mode with WAL, ``synchronous=NORMAL`` and the
busy timeout (a new file with 16 KiB pages).
"""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
import stat
from pathlib import Path

from etl.errors import ConfigError, DatabaseBusyError, LockedError

SQLITE_MAGIC = b"SQLite format 3\x00"
# The page size of a database swr-etl creates (SQLite's default is 4 KiB). A run writes ~90 MB
# per 200,000 images (snapshots and their indexes, the page bodies, the images on a first run);
# at 16 KiB a page, the final checkpoint copies a quarter as many pages from the WAL (0.22-0.25 s
# -> 0.15-0.18 s) and the chunk merges walk shallower trees (~0.2 s less on the writer in a
# second sync), measured. A file that already has content keeps its own size: SQLite applies
# the pragma only to an empty database (docs/operators/upgrading.md: converting an old one).
PAGE_SIZE = 16384
# The one sentence for a file that is not SQLite, whichever command met it (a writer or a reader:
# none of them changes the file).
NOT_SQLITE = "{db} is not a SQLite database (left untouched)"


def is_sqlite_file(db: Path) -> bool:
    """False when ``db`` has content and it does not start with SQLite's header (an empty file
    is a database SQLite has yet to write)."""
    with open(db, "rb") as f:
        head = f.read(len(SQLITE_MAGIC))
    return not head or head == SQLITE_MAGIC


def lock_path_for(db: Path) -> Path:
    """``<db>.lock`` beside the *real* database file: two paths or symlinks naming one database
    share one lock."""
    real = Path(os.path.realpath(db))
    return real.with_name(real.name + ".lock")


# The lock file is opened, never followed: a symlink planted at ``<db>.lock`` (pointing at a file
# the user can write) would otherwise be truncated and overwritten with our pid.
_LOCK_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def check_database_file(db: Path | str) -> None:
    """Refuse, without modifying it, a path that is not (or cannot be) a writable SQLite file.

    Raises:
        ConfigError: a folder, a file whose header is not SQLite's, or a read-only file.
    """
    db = Path(db)
    if db.is_dir():
        raise ConfigError(f"database path {db} is a folder, not a SQLite file")
    if not db.exists():
        return
    if not db.is_file():  # a FIFO would block the read below; a device is no database
        raise ConfigError(f"database path {db} is not a regular file")
    try:
        sqlite = is_sqlite_file(db)
    except OSError as exc:
        raise ConfigError(f"cannot read database {db}: {exc.strerror}") from exc
    if not sqlite:
        raise ConfigError(NOT_SQLITE.format(db=db))
    if not os.access(db, os.W_OK):
        raise ConfigError(f"database {db} is read-only")


class RunLock:
    """Exclusive, non-blocking ``flock`` on ``<db>.lock``; released by the kernel on death."""

    def __init__(self, db: Path) -> None:
        self.path = lock_path_for(db)
        self.db = db
        self.fd: int | None = None

    def acquire(self) -> None:
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create folder {folder}: {exc.strerror}") from exc
        try:
            fd = os.open(self.path, _LOCK_FLAGS, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ConfigError(
                    f"lock file {self.path} is a symbolic link; refusing to follow it "
                    "(remove it and run again)") from exc
            raise ConfigError(
                f"cannot write beside database {self.db} (read-only location?): {exc.strerror}"
            ) from exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or device planted in its place
            os.close(fd)
            raise ConfigError(f"lock file {self.path} is not a regular file; remove it and "
                              "run again")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise LockedError(f"another run holds the lock for {self.db}{who}") from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


def connect(db: Path, *, busy_timeout: float = 30.0) -> sqlite3.Connection:
    """Open the database in autocommit mode (we issue BEGIN ourselves), WAL, synchronous=NORMAL.

    Raises:
        ConfigError: SQLite cannot open or write it (not a database, read-only location).
    """
    try:
        conn = sqlite3.connect(str(db), isolation_level=None, timeout=busy_timeout,
                               check_same_thread=False)
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot open database {db}: {exc}") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # before WAL: it writes the header
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise ConfigError(f"cannot switch database {db} to WAL mode (got {mode})")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA cache_size = -16384")  # 16 MiB: 64 MiB cost 50 MiB RSS, no speed
        # Temporary storage in files, each behind a cache: the load's chunk table (a chunk is
        # under 8 MiB, so it stays in memory) and statement journals. A sort larger than the
        # page cache (building the name index after a new database's first load) spills to a
        # file instead of growing the heap: 1M rows, +16 instead of +93 MiB, measured.
        conn.execute("PRAGMA temp_store = FILE")
        conn.execute("PRAGMA temp.cache_size = -8192")
    except sqlite3.OperationalError as exc:
        conn.close()
        if "locked" in str(exc) or "busy" in str(exc):
            raise DatabaseBusyError(f"database {db} is busy: {exc}") from exc
        raise ConfigError(f"cannot use database {db}: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ConfigError(f"cannot use database {db}: {exc}") from exc
    return conn


def write_error(db: Path, exc: sqlite3.OperationalError) -> Exception:
    """The EtlError a SQLite error while writing means for this run: another writer past the
    busy timeout, a full disk or an I/O error, a read-only file (else ``exc`` itself). The
    environment, not a bug, so not an internal error."""
    msg = str(exc)
    if "disk is full" in msg or "disk I/O error" in msg:
        return ConfigError(f"cannot write database {db}: {msg}; nothing of this run was loaded")
    if "locked" in msg or "busy" in msg:
        return DatabaseBusyError(
            f"another writer held database {db} past the busy timeout; nothing of this run "
            "was loaded"
        )
    if "readonly" in msg or "read-only" in msg:
        return ConfigError(f"database {db} is read-only: {msg}")
    return exc


__all__ = ["NOT_SQLITE", "RunLock", "check_database_file", "connect", "is_sqlite_file",
           "lock_path_for", "write_error", "SQLITE_MAGIC"]
