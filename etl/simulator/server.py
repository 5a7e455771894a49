"""The HTTP side of the simulator: a threading HTTP/1.1 server on loopback, its request log,
and fault and drift injection.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from etl.errors import ConfigError
from etl.simulator.auth import AuthState, Refusal, SimClock
from etl.simulator.dataset import Dataset
from etl.simulator.scenario import Drift, Fault, Scenario
from etl.simulator.wire import RequestRecord, content_range, error_body, mask_headers, retry_after

REPOS_PATH = "/v2/manage/dockerhub/repos"
IAM_PATH = "/v3/auth/tokens"
DEFAULT_LIMIT = 100  # API-NOTES: sibling APIs document limit default 100, maximum 1000
MAX_LIMIT = 1000


@dataclass
class _Outcome:
    """What the handler decided to send."""

    status: int | None
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    truncate: bool = False


class Simulator:
    """A simulated SWR endpoint on 127.0.0.1; use as a context manager (or start()/close())."""

    def __init__(self, images: int = 180, seed: int = 42,
                 scenario: Scenario | Mapping[str, Any] | str | Path | None = None, *,
                 host: str = "127.0.0.1", port: int = 0, dataset: Dataset | None = None,
                 today: Any = None, prerender: bool = False, history: bool = False) -> None:
        self.dataset = dataset if dataset is not None else Dataset(images, seed, today=today)
        self.scenario = Scenario.coerce(scenario)
        if prerender:  # render every row's JSON now rather than during the first scan
            self.dataset.prerender(self.scenario.render_format)
        self.clock = SimClock()
        self.auth = AuthState(self.scenario, self.clock)
        self.host, self.port = host, port
        self._lock = threading.Lock()
        self._log: list[RequestRecord] = []
        self._seq = 0
        self._n = 0
        self._fault_hits: list[int] = [0] * len(self.scenario.faults)
        self._fault_opened: list[float | None] = [None] * len(self.scenario.faults)
        self._drift_hits: list[int] = [0] * len(self.scenario.drift)
        self._t0: float | None = None  # simulator clock at the scenario's first repos request
        # history: the listing each repos request was served from (tests of what a scan
        # proves): request number -> (dataset version, rows)
        self._history: dict[int, tuple[int, list[dict[str, object]]]] | None = (
            {} if history else None)
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()
        self.cpu_seconds = 0.0  # CPU time spent parsing, handling and answering (benchmarks)
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------ lifecycle

    def start(self) -> Simulator:
        if self._server is not None:
            return self
        handler = type("SimHandler", (_Handler,), {"sim": self})
        try:
            server = ThreadingHTTPServer((self.host, self.port), handler)
        except OSError as exc:
            raise ConfigError(f"simulator cannot listen on {self.host}:{self.port}: "
                              f"{exc.strerror}") from exc
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, name="swr-simulator",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._lock:  # idle keep-alive connections would otherwise outlive the server
            conns, self._connections = list(self._connections), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------------------------ control

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the request log, oldest first."""
        with self._lock:
            return list(self._log)

    def repos_requests(self) -> list[RequestRecord]:
        return [r for r in self.requests if r.n]

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    def listing(self) -> list[dict[str, object]]:
        """The current full listing as a complete scan would return it (no ``total_range``)."""
        return self.dataset.rows(self.scenario.render_format)

    def issue_token(self, ttl: float | None = None) -> str:
        """A valid ``X-Auth-Token`` (token and iam modes)."""
        return self.auth.issue(ttl)[0]

    def set_scenario(self, scenario: Scenario | Mapping[str, Any] | str | Path | None) -> None:
        """Replace the scenario; request counters, fault and drift hits, time windows, the
        listing history and AK locks reset."""
        new = Scenario.coerce(scenario)
        with self._lock:
            self.scenario = new
            self._n = 0
            self._fault_hits = [0] * len(new.faults)
            self._fault_opened = [None] * len(new.faults)
            self._drift_hits = [0] * len(new.drift)
            self._t0 = None
            if self._history is not None:
                self._history = {}
        self.auth.reset(new)

    def listing_at(self, n: int) -> list[dict[str, object]]:
        """The listing (as ``listing()``) that repos request ``n`` of the current scenario was
        served from: after the drift due before it. Needs ``Simulator(history=True)``."""
        with self._lock:
            if self._history is None:
                raise ValueError("listing_at needs Simulator(history=True)")
            if n not in self._history:
                raise ValueError(f"no repos request {n} was served yet")
            return [dict(r) for r in self._history[n][1]]

    # ------------------------------------------------------------------------------ internals

    def _next_repos_request(self) -> tuple[int, list[Fault], Scenario]:
        """Count a repos request, apply due drift, and pick the faults that hit it."""
        with self._lock:
            self._n += 1
            n, sc = self._n, self.scenario
            now = self.clock.now()
            if self._t0 is None:
                self._t0 = now
            elapsed = now - self._t0
            for k, d in enumerate(sc.drift):
                if d.matches(n, self._drift_hits[k]):
                    self._drift_hits[k] += 1
                    DRIFTS[d.kind](self.dataset, d)
            if self._history is not None:
                last = self._history.get(n - 1)
                version = self.dataset.version
                self._history[n] = (last if last is not None and last[0] == version
                                    else (version, self.listing()))
            hit = []
            for k, f in enumerate(sc.faults):
                if f.matches(n, self._fault_hits[k], elapsed, self._fault_opened[k]):
                    self._fault_hits[k] += 1
                    if self._fault_opened[k] is None:
                        self._fault_opened[k] = elapsed
                    hit.append(f)
            return n, hit, sc

    def _record(self, rec: RequestRecord) -> None:
        with self._lock:
            self._log.append(rec)

    def _next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq


# drift kind -> how it changes the dataset
DRIFTS: dict[str, Callable[[Dataset, Drift], object]] = {
    "insert_front": lambda ds, d: ds.insert_front(d.count),
    "delete": lambda ds, d: ds.delete(d.count, where=d.where, position=d.position),
    "reorder": lambda ds, d: ds.reorder(d.count),
    "bump": lambda ds, d: ds.bump(d.count),
    "replace": lambda ds, d: ds.replace(d.count, where=d.where, position=d.position,
                                        to=d.to or 0),
    "move": lambda ds, d: ds.move(d.count, position=d.position, to=d.to),
}


def _int_param(query: dict[str, str], name: str, default: int) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a scan reuses one connection
    # Headers and body go out in two writes; with Nagle on, the client's delayed ACK adds ~40 ms
    # to every response.
    disable_nagle_algorithm = True
    server_version = "swr-simulator"
    timeout = 60  # an idle keep-alive connection's thread ends after this
    sim: Simulator

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # the request log replaces stderr access lines

    def handle_one_request(self) -> None:
        cpu0 = time.thread_time()
        try:
            super().handle_one_request()
        finally:
            spent = time.thread_time() - cpu0
            with self.sim._lock:
                self.sim.cpu_seconds += spent

    def setup(self) -> None:
        super().setup()
        with self.sim._lock:
            self.sim._connections.add(self.connection)

    def finish(self) -> None:
        with self.sim._lock:
            self.sim._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """Protocol-level errors (bad request line, unsupported method) as JSON with a request id,
        like every other response."""
        rid = uuid.uuid4().hex
        body = json.dumps(error_body("top", f"SVCSTG.SWR.{code}0000",
                                     message or self.responses.get(code, ("error",))[0],
                                     rid)).encode()
        self.close_connection = True
        self.send_response(code, message)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Request-Id", rid)
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    def _handle(self, method: str) -> None:
        sim = self.sim
        started = time.time()
        seq = sim._next_seq()
        rid = uuid.uuid4().hex
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.send_error(400, "Content-Length is not an integer")
            return
        body = self.rfile.read(length) if length > 0 else b""
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        scenario = sim.scenario
        if scenario.latency_ms > 0:
            time.sleep(scenario.latency_ms / 1000)
        n = 0
        fault_kinds: tuple[str, ...] = ()
        path = parts.path.rstrip("/") or "/"
        if method == "GET" and path == REPOS_PATH:
            n, faults, scenario = sim._next_repos_request()
            fault_kinds = tuple(f.kind for f in faults)
            out = self._repos(scenario, faults, query, parts, body, rid)
        elif method == "POST" and path == IAM_PATH and scenario.auth == "iam":
            status, extra, obj = sim.auth.iam_login(body)
            out = _Outcome(status, json.dumps(obj).encode(), tuple(extra.items()))
        else:
            out = self._error(scenario.error_shape, 404, "SVCSTG.SWR.4040083",
                              f"The URL {parts.path} does not exist", rid)
        # Logged before the response goes out, so a client that has its answer sees the record.
        headers = {k: v for k, v in self.headers.items()}
        sim._record(RequestRecord(seq, n, method, parts.path, mask_headers(query),
                                  mask_headers(headers),
                                  out.status, started, time.time(), rid, fault_kinds))
        self._send(out, rid)

    def _error(self, shape: str, status: int, code: str, message: str, rid: str,
               extra: tuple[tuple[str, str], ...] = ()) -> _Outcome:
        body = json.dumps(error_body(shape, code, message, rid), ensure_ascii=False).encode()
        return _Outcome(status, body, extra)

    def _repos(self, sc: Scenario, faults: list[Fault], query: dict[str, str], parts: Any,
               body: bytes, rid: str) -> _Outcome:
        sim = self.sim
        no_header = truncate = False
        for f in faults:
            if f.kind == "expire-token":
                sim.auth.expire_all()
            elif f.kind == "delay":
                time.sleep(f.delay_ms / 1000)
            elif f.kind == "no-header":
                no_header = True
            elif f.kind == "truncate":
                truncate = True
        for f in faults:
            if f.kind == "drop":
                return _Outcome(None)
            if f.kind == "status":
                extra: tuple[tuple[str, str], ...] = ()
                if f.retry_after is not None:
                    extra = (("Retry-After", retry_after(f.retry_after)),)
                return self._error(f.shape or "list", f.status, f.code or "", f.message or "",
                                   rid, extra)
        raw_path = parts.path + ("?" + parts.query if parts.query else "")
        received = _Caseless({k: v for k, v in self.headers.items()})
        refusal: Refusal | None = sim.auth.check("GET", raw_path, received, body)
        if refusal is not None:
            return self._error(refusal.shape, refusal.status, refusal.code, refusal.message, rid)
        offset = _int_param(query, "offset", 0)
        limit = _int_param(query, "limit", DEFAULT_LIMIT)
        if offset is None or offset < 0:
            return self._error(sc.error_shape, 400, "SVCSTG.SWR.4000014",
                               f"Invalid parameter: offset must be a non-negative integer, "
                               f"got {query.get('offset')!r}", rid)
        if limit is None:
            return self._error(sc.error_shape, 400, "SVCSTG.SWR.4000014",
                               f"Invalid parameter: limit must be an integer, "
                               f"got {query.get('limit')!r}", rid)
        if not 1 <= limit <= MAX_LIMIT:
            return self._error(sc.error_shape, 400, "SVCSTG.SWR.4000056",
                               f"Invalid page size: limit must be 1..{MAX_LIMIT}, got {limit}", rid)
        if sc.ignore_offset:
            offset = 0
        page = sim.dataset.page(offset, min(limit, sc.max_page_size),
                                query.get("namespace") or None, query.get("image_name") or None,
                                sc.render_format)
        headers: list[tuple[str, str]] = []
        if sc.content_range != "none" and not no_header:
            headers.append(("Content-Range", content_range(sc.content_range, offset, page.count,
                                                            page.total)))
        return _Outcome(200, page.body, tuple(headers), truncate)

    def _send(self, out: _Outcome, rid: str) -> None:
        if out.status is None:  # drop: close the connection without a response
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.send_response(out.status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(out.body)))
        self.send_header("X-Request-Id", rid)
        for k, v in out.headers:
            self.send_header(k, v)
        if out.truncate:
            self.send_header("Connection", "close")
        self.end_headers()
        try:
            if out.truncate:
                self.wfile.write(out.body[: len(out.body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            else:
                self.wfile.write(out.body)
        except OSError:
            self.close_connection = True


class _Caseless(dict[str, str]):
    """Header lookup by any case (the auth checks ask for canonical names)."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        super().__init__({k.lower(): v for k, v in headers.items()})

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)
