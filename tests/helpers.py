"""What many test modules need, written once: a fake clock, database and CLI shortcuts, API rows,
a stand-in for the extractor's scan, a loopback HTTP stub server, and logging put back as it was.

Plain functions and classes live here (test modules import them); the fixtures built on them
(``stubs``, ``clean_env``, ``cert``, the logging reset every test gets) are in tests/conftest.py.
"""

from __future__ import annotations

import json
import logging
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

import pytest

from etl.errors import UpstreamError
from etl.extract.scan import Page, ScanStats

T0 = "2026-11-20T03:00:00Z"

# Two rows of the official image list as the API sends them.
ROWS = [
    {"id": 11, "user": "swr_official", "name": "nginx", "namespace": "library",
     "description": "web server", "star_count": 5, "pull_count": 1000, "collection_id": 0,
     "last_updated": "2026-11-01 10:00:00", "total_range": 2},
    {"id": 12, "user": "swr_official", "name": "redis", "namespace": "library",
     "description": "cache", "star_count": 3, "pull_count": 900, "collection_id": 0,
     "last_updated": "2026-11-02 11:30:00", "total_range": 2},
]


# ------------------------------------------------------------------------------------- time


class FakeClock:
    """A monotonic clock that only moves when slept on: pass it as ``clock=`` and its ``sleep``
    as ``sleep=``; ``sleeps`` lists every wait asked for."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


# ------------------------------------------------------------------- the database, the CLI


def fresh_python(script: str, *args: str, env: dict[str, str] | None = None,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a new interpreter (what a module imports, or a process-wide setting,
    is seen there as a user's process sees it), with ``args`` as its ``sys.argv[1:]``."""
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def q(db: Path | str | sqlite3.Connection, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """The rows of one query, on an open connection or a database file (opened and closed), or
    a ``postgresql://`` URL's schema (the query as written for SQLite: ``?`` placeholders)."""
    if isinstance(db, sqlite3.Connection):
        return db.execute(sql, params).fetchall()
    from etl.store.dialect import is_postgres_url

    if is_postgres_url(db):
        from etl.store.pg import connect

        conn, _schema = connect(str(db))
        with conn:
            text = sql.replace("%", "%%").replace("?", "%s") if params else sql
            return [tuple(r) for r in conn.execute(text, params or None).fetchall()]
    with closing(sqlite3.connect(db, timeout=10)) as conn:
        return conn.execute(sql, params).fetchall()


def table_rows(db: Path | str, table: str, *,
               skip: Iterable[str] = ()) -> list[tuple[Any, ...]]:
    """Every row of ``table`` on either engine, sorted (a table without a key has no order of
    its own on PostgreSQL, and no rowid), the columns named by the database, ``skip`` left out."""
    from etl.store.dialect import is_postgres_url

    if is_postgres_url(db):
        names = [c for (c,) in q(db, "SELECT column_name FROM information_schema.columns WHERE "
                                     "table_name = ? AND table_schema = current_schema() "
                                     "ORDER BY ordinal_position", table)]
    else:
        names = [c[1] for c in q(db, f"PRAGMA table_info({table})")]
    columns = ", ".join(f'"{c}"' for c in names if c not in set(skip))
    return sorted(q(db, f"SELECT {columns} FROM {table}"),
                  key=lambda r: [(v is None, str(v)) for v in r])


class CliRun(NamedTuple):
    code: int
    out: str
    err: str


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> CliRun:
    """Run ``swr-etl ARGS`` in-process: its exit code, stdout and stderr."""
    from etl.cli.app import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return CliRun(int(exc.value.code or 0), out.out, out.err)


def rows(ids: Iterable[int], pulls: int = 100, ns: str = "library",
         when: str = "2026-11-01 10:00:00") -> list[dict[str, Any]]:
    """Whole API rows for ``ids``: image ``i`` is ``img<i>`` with ``pulls + i`` pulls."""
    return [{"id": i, "namespace": ns, "name": f"img{i}", "user": "u", "description": f"d{i}",
             "star_count": 2, "pull_count": pulls + i, "collection_id": 0,
             "last_updated": when} for i in ids]


class FakeScan:
    """A stand-in for the extractor's scan (etl.extract.scan.Scan), for ``run_sync(pages=...)``
    and the ``scan_queue`` fixture: the pages of each pass in turn (a later pass is a rescan).

    ``fail_at_page`` raises an ``UpstreamError`` before that page; ``fail`` is raised after the
    last page; ``total`` overrides the reported total.
    """

    def __init__(self, *passes: list[Any], page_size: int = 100, complete: bool = True,
                 fail_at_page: int | None = None, retries: int = 0,
                 fail: BaseException | None = None, total: int | None = None) -> None:
        self.passes = passes
        self.page_size = page_size
        self.stats = ScanStats(complete=complete, retries=retries,
                               incomplete_reason=None if complete else "the total changed (5 -> 6)")
        self.fail_at_page = fail_at_page
        self.fail = fail
        self.total = total

    def __iter__(self) -> Iterator[Page]:
        for pass_no, data in enumerate(self.passes):
            seen: set[int] = set()
            self.stats.rescans = pass_no
            self.stats.total_reported = len(data) if self.total is None else self.total
            for off in range(0, max(len(data), 1), self.page_size):
                if self.fail_at_page is not None and self.stats.pages == self.fail_at_page:
                    raise UpstreamError("GET /v2/manage/dockerhub/repos: HTTP 503 after 5 attempts")
                chunk = data[off:off + self.page_size]
                ids = [r["id"] for r in chunk if isinstance(r, dict) and "id" in r]
                dups = tuple(i for i in ids if i in seen)
                seen.update(ids)
                self.stats.requests += 1
                self.stats.pages += 1
                self.stats.rows_seen = off + len(chunk)
                yield Page(pass_no, off, chunk, json.dumps(chunk).encode(),
                           f"{off}-{len(chunk)}/{len(data)}", T0, dups)
        if self.fail is not None:
            raise self.fail


# ------------------------------------------------------------------------ loopback stub server


@dataclass
class Seen:
    """One request as it reached a stub."""

    method: str
    target: str  # the request target exactly as sent (absolute through a proxy)
    headers: dict[str, str]
    body: bytes

    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.target).query))

    @property
    def path(self) -> str:
        return urlsplit(self.target).path


Behaviour = Callable[["StubHandler", Seen], None]


class StubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: Stub

    def log_message(self, *args: object) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.lock:
            self.server.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass  # the client is gone: nothing left to flush

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        seen = Seen(self.command, self.path, dict(self.headers),
                    self.rfile.read(length) if length else b"")
        with self.server.lock:
            self.server.seen.append(seen)
        try:
            self.server.behaviour(self, seen)
        except OSError:
            self.close_connection = True  # the client hung up: some tests want exactly that

    do_GET = do_POST = _handle


class Stub(ThreadingHTTPServer):
    """A server on 127.0.0.1 (never another address) whose answers come from
    ``behaviour(handler, seen)``; ``seen`` lists every request in arrival order."""

    daemon_threads = True

    def __init__(self, behaviour: Behaviour, *, context: ssl.SSLContext | None = None,
                 listen: bool = True) -> None:
        super().__init__(("127.0.0.1", 0), StubHandler, bind_and_activate=False)
        self.server_bind()
        self.behaviour = behaviour
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.connections: set[socket.socket] = set()
        self.scheme = "https" if context else "http"
        if context is not None:
            self.socket = context.wrap_socket(self.socket, server_side=True)
        self._thread: threading.Thread | None = None
        if listen:
            self.go_live()

    def go_live(self) -> None:
        """Start listening (until then, connections are refused: the API is down)."""
        self.server_activate()
        self._thread = threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def paths(self) -> list[str]:
        """The path of every request so far, without its query."""
        with self.lock:
            return [s.path for s in self.seen]

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients hanging up mid-answer, failed TLS handshakes: expected in these tests

    def close(self) -> None:
        """Stop serving and end every open connection, so no handler thread (a keep-alive
        connection waiting for its next request, a drip) outlives the stub."""
        self.closing.set()
        if self._thread is not None:
            self.shutdown()
        with self.lock:
            open_connections = list(self.connections)
        for conn in open_connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the client
        self.server_close()


@contextmanager
def serving(behaviour: Behaviour, **kw: Any) -> Iterator[Stub]:
    """A ``Stub`` for the ``with`` block (the ``stubs`` fixture closes its own at teardown)."""
    stub = Stub(behaviour, **kw)
    try:
        yield stub
    finally:
        stub.close()


def answer(h: StubHandler, status: int, body: bytes = b"",
           headers: tuple[tuple[str, str], ...] = ()) -> None:
    """Send one whole answer (a Content-Length unless the headers frame the body otherwise)."""
    h.send_response(status)
    names = {k.lower() for k, _ in headers}
    for k, v in headers:
        h.send_header(k, v)
    if "content-length" not in names and "transfer-encoding" not in names:
        h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def listing(data: list[dict[str, Any]] = ROWS) -> Behaviour:
    """The official image list, paged by offset/limit with a Content-Range header."""

    def behave(h: StubHandler, seen: Seen) -> None:
        query = seen.query()
        offset, limit = int(query.get("offset", 0)), int(query.get("limit", 100))
        page = data[offset:offset + limit]
        headers = [("Content-Type", "application/json")]
        if page:
            headers.append(("Content-Range", f"{offset}-{len(page)}/{len(data)}"))
        answer(h, 200, json.dumps(page).encode(), tuple(headers))

    return behave


# ----------------------------------------------------------------------------------- logging


@contextmanager
def logging_restored() -> Iterator[None]:
    """Logging as it was before the block: ``main()`` installs its stderr handler on the root
    logger, sets levels and remembers the log format; none of that may leak into the next test."""
    from etl import logs

    saved = [(lg, list(lg.handlers), lg.level, lg.propagate)
             for lg in (logging.getLogger(), logging.getLogger("etl"))]
    try:
        yield
    finally:
        for lg, handlers, level, propagate in saved:
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate = propagate
        logs.remember_format("text")


def copy_to_postgres(source: sqlite3.Connection, target: Any) -> None:
    """Every row of a SQLite swr-etl database into a PostgreSQL one (psycopg connection) whose
    schema ``etl.store.pg_schema.ensure_schema`` made: same tables, same columns."""
    from psycopg import sql

    from etl.store.pg_schema import by_dependency

    for table, _ddl in by_dependency(source):
        columns = [c[1] for c in source.execute(f"PRAGMA table_info({table})")]
        insert = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join(sql.Placeholder() * len(columns)))
        with target.cursor() as cur:
            cur.executemany(insert, source.execute(f"SELECT * FROM {table}").fetchall())


def spy_on_ranks_aside(monkeypatch: pytest.MonkeyPatch,
                       before: Callable[[list[tuple[Any, ...]]], None] | None = None
                       ) -> list[Any]:
    """Record what each call of the report's second connection (``_ranks_aside``) returns, in
    the list returned; ``before(runs)`` runs first (a commit meanwhile, say)."""
    from etl.publish import report

    got: list[Any] = []
    real = report._ranks_aside

    def spy(aside: Any, runs: list[tuple[Any, ...]], *args: Any) -> Any:
        if before is not None:
            before(runs)
        got.append(real(aside, runs, *args))
        return got[-1]

    monkeypatch.setattr(report, "_ranks_aside", spy)
    return got
