"""The simulator: a threading HTTP/1.1 server on loopback, its request log, and the bookkeeping
of a scenario's faults and drift (which repos request each one hits). The answers themselves are
``etl.simulator.handler``'s.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Mapping
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from etl.errors import ConfigError
from etl.simulator.auth import AuthState, SimClock
from etl.simulator.dataset import Dataset
from etl.simulator.handler import Handler
from etl.simulator.scenario import Drift, Fault, Scenario
from etl.simulator.wire import RequestRecord


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
        handler = type("SimHandler", (Handler,), {"sim": self})
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

    def _count_cpu(self, seconds: float) -> None:
        with self._lock:
            self.cpu_seconds += seconds

    def _track(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)

    def _untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)


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
