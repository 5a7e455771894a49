"""The fault matrix: every fault the simulator can inject x page sizes x concurrency 1 and 4.

Each case runs a real ``run_sync`` against the simulated endpoint into a database that already
holds a previous good run (taken the simulated day before), then checks the outcome:

- faults the extractor must ride out: the database equals the simulator's final listing exactly
  (``images`` whole rows, removals marked, this run's snapshots = the listing);
- documented failures (final HTTP errors, an API that ignores ``offset``, retries exhausted, the
  retry budget used up): the documented exception and exit code, the previous ``images`` and
  ``image_snapshots`` byte-for-byte as before, and a ``failed`` runs row with a one-line error;
- a listing that never settles: exit 6 (``partial``), what was seen loaded, nothing marked removed.

Every complete run records how its scan was proven (``runs.proof``); failed and partial ones
record none. A hypothesis test at the end drives random drift schedules through whole runs.

The matrix runs on both engines. On PostgreSQL each case gets a fresh database copied from a
template holding the baseline run (``CREATE DATABASE … TEMPLATE``); by default one page size and
concurrency per fault runs there (``PG_DEFAULT``), the whole matrix under ``-m slow``.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etl.config.settings import Credentials, Settings
from etl.config.sources import Source
from etl.errors import (
    AuthError,
    BadRequestError,
    ConfigError,
    EtlError,
    NotFoundError,
    UpstreamError,
)
from etl.extract.retry import RetryBudgetExhausted
from etl.run.pipeline import SyncResult, replay_run, run_sync
from etl.simulator import Dataset, Simulator
from tests.helpers import q, table_rows

IMAGES = 90
SEED = 7
TODAY = date(2026, 11, 20)
PREV_AT = "2026-11-20T03:00:00Z"
NOW = "2026-11-21T03:00:00Z"
IAM_USER = {"domain": "acme", "name": "etl-bot", "password": "s3cret-pw"}

# (label, settings overrides): page size 7, 50, and 1000 with a server cap of 40 below it.
PAGE_CONFIGS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("ps7", {"page_size": 7}, {}),
    ("ps50", {"page_size": 50}, {}),
    ("ps1000-cap40", {"page_size": 1000}, {"max_page_size": 40}),
]
CONCURRENCY = [1, 4]


@dataclass(frozen=True)
class Case:
    """One fault: the scenario keys it adds, what the run must end in, settings it needs."""

    name: str
    scenario: dict[str, Any]
    expect: str = "ok"  # ok | bump | fail | partial
    error: type[EtlError] | None = None
    exit_code: int = 0
    message: str = ""  # a fragment the one-line error must contain
    settings: dict[str, Any] = field(default_factory=dict)
    iam: bool = False
    concurrency: tuple[int, ...] = (1, 4)


def status(http: int, *, at: int = 2, times: int = 2, **kw: Any) -> dict[str, Any]:
    return {"faults": [{"kind": "status", "status": http, "at": at, "times": times, **kw}]}


def fault(kind: str, *, at: int = 2, times: int = 1, **kw: Any) -> dict[str, Any]:
    return {"faults": [{"kind": kind, "at": at, "times": times, **kw}]}


def drift(kind: str, **kw: Any) -> dict[str, Any]:
    return {"drift": [{"kind": kind, "count": 1, **kw}]}


CASES: list[Case] = [
    # transient statuses and codes (docs/how-it-works/swr-api.md, "Which answers are worth
    # another attempt")
    *[Case(f"http{s}", status(s)) for s in (500, 502, 503, 504)],
    Case("429", status(429)),
    Case("429-retry-after-seconds", status(429, times=1, retry_after="0.2")),
    Case("429-retry-after-http-date", status(429, times=1, retry_after="http-date:+1")),
    Case("409-system-busy", status(409, code="SVCSTG.SWR.4090023")),
    Case("403-4031032", status(403, code="SVCSTG.SWR.4031032")),
    Case("403-4031042", status(403, code="SVCSTG.SWR.4031042")),
    # every error body shape
    *[Case(f"503-shape-{shape}", status(503, shape=shape)) for shape in
      ("list", "errors", "top", "apig")],
    Case("periodic-503", {"faults": [{"kind": "status", "status": 503, "every": 3}]}),
    # transport faults
    Case("drop", fault("drop", times=2)),
    Case("truncate", fault("truncate", times=2)),
    Case("no-content-range", fault("no-header", times=3)),
    Case("no-content-range-at-all", {"content_range": "none"}),
    Case("first-last-content-range", {"content_range": "first-last"}),
    Case("latency", {"latency_ms": 5}),
    Case("delay-spike", fault("delay", delay_ms=150, times=2)),
    Case("delay-past-timeout", fault("delay", delay_ms=1200), settings={"timeout": 0.4}),
    # an outage measured in seconds, not requests, ridden out by retrying
    Case("outage-0.3s", {"faults": [{"kind": "status", "status": 503, "at": 2, "for_s": 0.3}]},
         settings={"max_attempts": 200, "retry_budget": 2000}),
    # the listing moves during the scan: a rescan settles it
    Case("drift-insert-front", drift("insert_front", at=2)),
    Case("drift-delete", drift("delete", at=2)),
    Case("drift-delete-front", drift("delete", at=2, where="front")),
    Case("drift-reorder", drift("reorder", at=2, count=5)),
    Case("drift-bump", drift("bump", at=2, count=20), expect="bump"),
    # the same total, the same number of distinct ids, other images: only the proof's second
    # read sees these (issue 14): rows already read replaced by new ones at the front ...
    Case("drift-replace-front", drift("replace", at=2, count=3, position=1)),
    # ... or inside a page already read, or as late as the last page and the second read
    Case("drift-replace-inside", drift("replace", at=2, count=2, position=3, to=5)),
    Case("drift-replace-late", {"drift": [{"kind": "replace", "at": 3, "count": 2, "position": 0},
                                          {"kind": "replace", "at": 4, "count": 2,
                                           "where": "end", "to": 1}]}),
    # a row moved from a page not read yet into one already read
    Case("drift-move", drift("move", at=2, count=1, position=60, to=2)),
    Case("drift-combined", {"drift": [
        {"kind": "replace", "at": 2, "count": 2}, {"kind": "move", "at": 2, "count": 2},
        {"kind": "reorder", "at": 2, "count": 3}, {"kind": "bump", "at": 3, "count": 10}]},
        expect="bump"),
    # --verify full: counts that moved mid-scan are read again, the load is exact
    Case("drift-bump-verify-full", drift("bump", at=2, count=20), settings={"verify": "full"}),
    # IAM tokens that expire mid-scan: refreshed once, the request retried
    Case("iam-token-expires", {**fault("expire-token", at=2)}, iam=True),
    # Twice: under concurrency 4 a worker's post-refresh retry can meet the second expiry.
    Case("iam-token-expires-twice", {"faults": [{"kind": "expire-token", "at": 2},
                                                {"kind": "expire-token", "at": 11}]}, iam=True),
    # documented failures: previous state intact
    Case("500-forever", {"faults": [{"kind": "status", "status": 500, "every": 1}]},
         expect="fail", error=UpstreamError, exit_code=4,
         message="the API stayed unavailable after 3 attempt(s)", settings={"max_attempts": 3}),
    Case("drop-forever", {"faults": [{"kind": "drop", "every": 1}]},
         expect="fail", error=UpstreamError, exit_code=4,
         message="connection failed", settings={"max_attempts": 3}),
    Case("outage-longer-than-the-retries", {"faults": [
        {"kind": "status", "status": 503, "from_s": 0, "for_s": 3600}]},
         expect="fail", error=UpstreamError, exit_code=4,
         message="the API stayed unavailable after 3 attempt(s)", settings={"max_attempts": 3}),
    Case("400-invalid-parameter", status(400, at=2, times=1, code="SVCSTG.SWR.4000014"),
         expect="fail", error=BadRequestError, exit_code=4,
         message="the API rejected the request"),
    Case("401-refused", status(401, at=2, times=1), expect="fail", error=AuthError,
         exit_code=3, message="authentication failed"),
    Case("403-other", status(403, at=2, times=1, code="SVCSTG.SWR.4030001"), expect="fail",
         error=AuthError, exit_code=3, message="permission refused"),
    Case("404-not-in-region", status(404, at=2, times=1), expect="fail", error=NotFoundError,
         exit_code=4, message="endpoint not found in this region"),
    Case("ignored-offset", {"ignore_offset": True}, expect="fail", error=UpstreamError,
         exit_code=4, message="the API ignores the offset parameter"),
    Case("retry-budget-exhausted", status(503, at=2, times=2),
         expect="fail", error=RetryBudgetExhausted, exit_code=4,
         message="retry budget of 1 retries for this run exhausted",
         settings={"retry_budget": 1}),
    # a listing that never settles: exit 6, what was seen is loaded, nothing marked removed
    Case("never-settling-drift", {"drift": [{"kind": "insert_front", "every": 1}]},
         expect="partial", exit_code=6),
]

MATRIX = [(case, label, overrides, scenario, conc)
          for case in CASES
          for label, overrides, scenario in PAGE_CONFIGS
          for conc in CONCURRENCY if conc in case.concurrency]


def test_matrix_size(capsys: pytest.CaptureFixture[str]) -> None:
    kinds = {f["kind"] for c in CASES for f in c.scenario.get("faults", [])}
    kinds |= {d["kind"] for c in CASES for d in c.scenario.get("drift", [])}
    # every fault and drift kind the simulator knows is in the matrix
    from etl.simulator.scenario import DRIFT_KINDS, ERROR_SHAPES, FAULT_KINDS

    assert kinds == set(FAULT_KINDS) | set(DRIFT_KINDS)
    shapes = {f.get("shape") for c in CASES for f in c.scenario.get("faults", [])}
    assert set(ERROR_SHAPES) <= shapes
    timed = [c.name for c in CASES for f in c.scenario.get("faults", []) if "for_s" in f]
    assert timed == ["outage-0.3s", "outage-longer-than-the-retries"]
    with capsys.disabled():
        print(f"\nfault matrix: {len(MATRIX)} cases ({len(CASES)} faults x "
              f"{len(PAGE_CONFIGS)} page sizes x concurrency 1 and 4)")
    assert len(MATRIX) == sum(len(PAGE_CONFIGS) * len(c.concurrency) for c in CASES)


# ------------------------------------------------------------------------------------ helpers


def normalise(row: dict[str, Any]) -> tuple[Any, ...]:
    """A listing row as the images table stores it (``last_updated`` as UTC ``...Z`` text)."""
    lu = str(row["last_updated"])
    return (row["id"], row["namespace"], row["name"], row["user"], row["description"],
            row["star_count"], row["pull_count"], row["collection_id"],
            lu.replace(" ", "T") + "Z")


IMAGE_COLS = ('id, namespace, name, "user", description, star_count, pull_count, collection_id, '
              "last_updated")


def state(db: Path | str) -> dict[str, list[tuple[Any, ...]]]:
    """Everything a failed run must leave exactly as it was."""
    return {
        "images": q(db, "SELECT * FROM images ORDER BY id"),
        "snapshots": q(db, "SELECT * FROM image_snapshots ORDER BY run_id, image_id"),
        "rejects": table_rows(db, "rejects"),
        "quality_issues": table_rows(db, "quality_issues"),
        "runs": q(db, "SELECT * FROM runs ORDER BY run_id"),
    }


def make_sim(scenario: dict[str, Any]) -> Simulator:
    return Simulator(images=IMAGES, seed=SEED, scenario=scenario, today=TODAY)


def named(sim: Simulator) -> tuple[Source, ...]:
    """The simulator as one named source: each case's simulator listens on a port of its own,
    and a source named by host:port would start a new history each time (a user whose endpoint
    moves keeps its history the same way, by naming the source)."""
    return (Source("simulator", sim.url, "cn-north-4"),)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database holding one good run of the simulated listing, a simulated day earlier."""
    db = tmp_path_factory.mktemp("baseline") / "swr.db"
    baseline_run(db)
    return db


def baseline_run(db: Path | str) -> None:
    """One good run of the simulated listing, a simulated day earlier."""
    with make_sim({}) as sim:
        result = run_sync(Settings(endpoint=sim.url, db=db, allow_anonymous=True,
                                   page_size=100, concurrency=1, sources=named(sim)), now=PREV_AT)
    assert (result.status, result.rows) == ("success", IMAGES)


@pytest.fixture(scope="module")
def pg_baseline(pg_cluster: Any) -> Iterator[Callable[[], Any]]:
    """PostgreSQL's baseline: a database holding the baseline run, kept as the template each
    case's database is copied from (``database()``: a context manager giving a fresh copy)."""
    with pg_cluster.database() as url:
        baseline_run(url)
        template = url.rsplit("/", 1)[1]
        yield lambda: pg_cluster.database(template=template)


@contextmanager
def fresh_copy(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A copy of the baseline database on ``engine``, for one test."""
    if engine == "postgres":
        with request.getfixturevalue("pg_baseline")() as url:
            yield url
        return
    db = tmp_path / "swr.db"
    shutil.copyfile(request.getfixturevalue("baseline"), db)
    yield db


def settings_for(sim: Simulator, db: Path | str, case: Case, overrides: dict[str, Any],
                 conc: int) -> Settings:
    values: dict[str, Any] = dict(
        endpoint=sim.url, sources=named(sim), db=db, allow_anonymous=True, concurrency=conc,
        max_attempts=5,
        backoff_base=0.01, backoff_cap=0.05, timeout=5.0, busy_timeout=2.0, **overrides)
    if case.iam:
        values.update(allow_anonymous=False, credentials=Credentials(
            kind="password", username=IAM_USER["name"], password=IAM_USER["password"],
            domain_name=IAM_USER["domain"], iam_endpoint=sim.url))
    values.update(case.settings)
    return Settings(**values)


# ----------------------------------------------------------------------------------- the matrix


# The PostgreSQL cases of the default run: every fault once, at one page size and concurrency.
PG_DEFAULT = ("ps50", 4)


def _on(engine: str, label: str, conc: int) -> Any:
    return [pytest.mark.slow] if engine == "postgres" and (label, conc) != PG_DEFAULT else []


@pytest.mark.parametrize(
    "case,label,overrides,server,conc,engine",
    [pytest.param(*m, engine, marks=_on(engine, m[1], m[4]),
                  id=f"{m[0].name}-{m[1]}-c{m[4]}-{engine}")
     for m in MATRIX for engine in ("sqlite", "postgres")])
def test_fault(case: Case, label: str, overrides: dict[str, Any], server: dict[str, Any],
               conc: int, engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    with fresh_copy(engine, request, tmp_path) as db:
        one_fault(case, overrides, server, conc, db)


def one_fault(case: Case, overrides: dict[str, Any], server: dict[str, Any], conc: int,
              db: Path | str) -> None:
    before = state(db)
    scenario = {**server, **case.scenario}
    if case.iam:
        scenario.update(auth="iam", iam_users=[IAM_USER])
    with make_sim({}) as sim:
        sim.dataset.advance_day()  # counts move, images come and go since the previous run
        pre = {r["id"]: normalise(r) for r in sim.listing()}
        sim.set_scenario(scenario)
        settings = settings_for(sim, db, case, overrides, conc)
        if case.expect == "fail":
            assert case.error is not None
            with pytest.raises(case.error) as exc_info:
                run_sync(settings, now=NOW)
            check_failed(db, before, exc_info.value, case)
            return
        result = run_sync(settings, now=NOW)
        listing = sim.listing()
    if case.expect == "partial":
        check_partial(db, before, result, listing)
    else:
        check_loaded(db, before, result, listing, pre if case.expect == "bump" else None,
                     settings.verify)


def check_loaded(db: Path | str, before: dict[str, list[tuple[Any, ...]]], result: SyncResult,
                 listing: list[dict[str, Any]], pre: dict[int, tuple[Any, ...]] | None,
                 verify: str = "auto") -> None:
    """The database equals the final listing (a bump mid-scan may leave the older value)."""
    assert (result.status, result.exit_code, result.complete) == ("success", 0, True)
    run = result.run_id
    want = {r["id"]: normalise(r) for r in listing}
    current = q(db, f"SELECT {IMAGE_COLS} FROM images WHERE removed_at IS NULL ORDER BY id")
    if pre is None:
        assert current == sorted(want.values())
    else:  # each row is the value before or after the bump, never anything else
        assert [r[0] for r in current] == sorted(want)
        for row in current:
            assert row in (want[row[0]], pre.get(row[0])), row
    # bookkeeping: seen by this run, first seen where it was first seen, removals marked
    prev = {r[0]: r for r in before["images"]}
    for row in q(db, "SELECT * FROM images ORDER BY id"):
        image_id, first_at, last_at, first_run, last_run, removed = (row[0], *row[9:14])
        if image_id in want:
            assert (last_at, last_run, removed) == (NOW, run, None), row
            old = prev.get(image_id)
            assert (first_at, first_run) == ((old[9], old[11]) if old else (NOW, run)), row
        else:  # listed by the previous run, gone now: marked removed, otherwise as it was
            assert prev[image_id][:13] == row[:13]
            assert removed == NOW
    snaps = q(db, "SELECT image_id, star_count, pull_count, last_updated FROM image_snapshots"
                  " WHERE run_id = ? ORDER BY image_id", run)
    images_now = {r[0]: r for r in current}
    assert snaps == [(i, images_now[i][5], images_now[i][6], images_now[i][8])
                     for i in sorted(want)]
    # the previous run's snapshots are untouched
    assert q(db, "SELECT * FROM image_snapshots WHERE run_id <> ? ORDER BY run_id, image_id",
             run) == before["snapshots"]
    (status, rows_loaded, error, code, proof), = q(
        db, "SELECT status, rows_loaded, error, exit_code, proof FROM runs WHERE run_id = ?",
        run)
    # 90 images never come in one page here: the listing was read twice
    assert (status, rows_loaded, error, code) == ("success", len(want), None, 0)
    assert proof == ("full" if verify == "full" else "double-read")
    assert result.rows == len(want)


def check_failed(db: Path | str, before: dict[str, list[tuple[Any, ...]]], exc: EtlError,
                 case: Case) -> None:
    after = state(db)
    for table in ("images", "snapshots", "rejects", "quality_issues"):
        assert after[table] == before[table], table
    assert after["runs"][:-1] == before["runs"]
    assert exc.exit_code == case.exit_code
    assert case.message in exc.message
    assert "\n" not in exc.message
    (status, error, code, rows_loaded, proof), = q(
        db, "SELECT status, error, exit_code, rows_loaded, proof FROM runs "
            "ORDER BY run_id DESC LIMIT 1")
    assert (status, error, code, rows_loaded, proof) == (
        "failed", exc.message, case.exit_code, 0, None)


def check_partial(db: Path | str, before: dict[str, list[tuple[Any, ...]]], result: SyncResult,
                  listing: list[dict[str, Any]]) -> None:
    """Exit 6: what was seen is loaded (as listed), nothing else changed, nothing removed."""
    assert (result.status, result.exit_code, result.complete) == ("partial", 6, False)
    assert result.incomplete_reason
    run = result.run_id
    prev = {r[0]: r for r in before["images"]}
    seen = q(db, "SELECT * FROM images WHERE last_seen_run = ? ORDER BY id", run)
    assert seen, "a partial run loads what it saw"
    for row in q(db, "SELECT * FROM images WHERE last_seen_run <> ? ORDER BY id", run):
        assert row == prev[row[0]]  # not seen: byte-for-byte as before, not marked removed
    assert all(row[13] is None for row in seen)
    want = {r["id"]: normalise(r) for r in listing}  # insert_front never changes a value
    assert [row[:9] for row in seen] == [want[row[0]] for row in seen]
    assert q(db, "SELECT COUNT(*) FROM images WHERE removed_at IS NOT NULL") == [
        (sum(1 for r in before["images"] if r[13] is not None),)]
    snaps = q(db, "SELECT image_id, star_count, pull_count, last_updated FROM image_snapshots"
                  " WHERE run_id = ? ORDER BY image_id", run)
    assert snaps == [(r[0], r[5], r[6], r[8]) for r in seen]
    (status, rows_loaded, code, complete, proof), = q(
        db, "SELECT status, rows_loaded, exit_code, complete, proof FROM runs WHERE run_id = ?",
        run)
    assert (status, rows_loaded, code, complete, proof) == ("partial", len(seen), 6, 0, None)
    assert result.rows == len(seen)



# ------------------------------------------------------------------------------- disk full


def test_disk_full_rolls_back_and_keeps_the_previous_state(
        baseline: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLITE_FULL mid-load (a full disk, simulated with ``max_page_count``): nothing half."""
    import etl.store.load

    db = tmp_path / "swr.db"
    shutil.copyfile(baseline, db)
    before = state(db)
    real_connect = etl.store.load.connect

    def full_disk_connect(path: Path, **kw: Any) -> sqlite3.Connection:
        conn = real_connect(path, **kw)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 1}")
        return conn

    monkeypatch.setattr(etl.store.load, "connect", full_disk_connect)
    with make_sim({}) as sim:
        sim.dataset.advance_day()
        for _ in range(3):  # enough new rows that the load cannot fit in one more page
            sim.dataset.insert_front(40)
        with pytest.raises(ConfigError) as exc_info:
            run_sync(settings_for(sim, db, Case("disk-full", {}), {"page_size": 50}, 1),
                     now=NOW)
    assert exc_info.value.exit_code == 2
    assert str(exc_info.value) == (
        f"cannot write database {db}: database or disk is full; nothing of this run was loaded")
    after = state(db)
    for table in ("images", "snapshots", "rejects", "quality_issues"):
        assert after[table] == before[table], table
    assert after["runs"][:-1] == before["runs"]
    (status, error), = q(db, "SELECT status, error FROM runs ORDER BY run_id DESC LIMIT 1")
    assert status == "failed" and "database or disk is full" in error
    assert q(db, "PRAGMA integrity_check") == [("ok",)]


# ------------------------------------------------------------------ the proof, whole runs


EQUAL_COUNT_DRIFT = st.fixed_dictionaries({
    "kind": st.sampled_from(["replace", "move", "reorder"]),
    "at": st.integers(1, 10), "count": st.integers(1, 3),
    "position": st.none() | st.integers(0, IMAGES), "to": st.none() | st.integers(0, IMAGES)})


@pytest.fixture(scope="module")
def drifting() -> Iterator[Simulator]:
    with Simulator(images=0, history=True) as sim:
        yield sim


@settings(max_examples=30, deadline=None)
@given(schedule=st.lists(EQUAL_COUNT_DRIFT, max_size=4), page_size=st.sampled_from([20, 40]),
       concurrency=st.sampled_from([1, 4]))
def test_a_run_recorded_complete_holds_exactly_the_listing_at_one_moment(
        drifting: Simulator, baseline: Path, tmp_path_factory: pytest.TempPathFactory,
        schedule: list[dict[str, Any]], page_size: int, concurrency: int) -> None:
    """Whatever the drift that keeps the total, a run recorded success and complete holds
    exactly the listing its last pass and second read were served from; removals follow it."""
    sim = drifting
    sim.dataset = Dataset(IMAGES, SEED, today=TODAY)
    sim.dataset.advance_day()
    sim.set_scenario({"drift": schedule})
    sim.clear_requests()
    db = tmp_path_factory.mktemp("property") / "swr.db"
    shutil.copyfile(baseline, db)
    result = run_sync(settings_for(sim, db, Case("property", {}), {"page_size": page_size},
                                   concurrency), now=NOW)
    (status, complete, proof), = q(db, "SELECT status, complete, proof FROM runs "
                                       "WHERE run_id = ?", result.run_id)
    if not result.complete:
        assert (status, complete, proof) == ("partial", 0, None)
        return
    assert (status, complete, proof) == ("success", 1, "double-read")
    log = sim.repos_requests()
    moment = max(r.n for r in log if r.query["offset"] == "0")
    listed = sorted(r["id"] for r in sim.listing_at(moment))
    assert [i for i, in q(db, "SELECT id FROM images WHERE removed_at IS NULL ORDER BY id")
            ] == listed
    assert [i for i, in q(db, "SELECT image_id FROM image_snapshots WHERE run_id = ? "
                              "ORDER BY image_id", result.run_id)] == listed
    if moment == log[-1].n:  # the second read was one request: the listing as the run ended
        assert listed == sorted(r["id"] for r in sim.listing())


def test_a_replay_keeps_the_proof_of_the_run_it_reloads(baseline: Path, tmp_path: Path) -> None:
    db = tmp_path / "swr.db"
    shutil.copyfile(baseline, db)
    (run_id, proof), = q(db, "SELECT run_id, proof FROM runs")
    assert proof == "one-page"  # 90 images at page size 100
    result = replay_run(Settings(db=db), run_id)
    assert q(db, "SELECT run_id, replay_of, status, proof FROM runs ORDER BY run_id") == [
        (run_id, None, "success", "one-page"), (result.run_id, run_id, "success", "one-page")]
