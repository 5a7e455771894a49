"""Unattended-run hooks: metrics file, healthcheck pings, progress display, run_observed, sync."""

from __future__ import annotations

import io
import logging
import os
import pty
import re
import socket
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from etl.cli.app import main
from etl.cli.progress import ProgressDisplay, format_progress
from etl.config.settings import Settings
from etl.errors import LockedError, UpstreamError
from etl.run.healthcheck import Healthcheck
from etl.run.hooks import run_observed
from etl.run.metrics import METRICS, RunFigures, read_database_figures, render, write_metrics
from etl.store.schema import MIGRATIONS
from tests.helpers import Seen, Stub, answer

# ------------------------------------------------------------------------------------ helpers


@dataclass(frozen=True)
class FakeResult:
    run_id: int | None = 7
    status: str = "success"
    exit_code: int = 0
    rows: int = 181
    new: int = 1
    changed: int = 3
    removed: int = 0
    rejected: int = 2
    requests: int = 3
    retries: int = 1
    seconds: float = 1.5

    def summary_line(self) -> str:
        return f"run {self.run_id}: {self.status}, {self.rows} images"


def make_db(path: Path, runs: list[dict[str, Any]], images: int = 0) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[1])
    for run in runs:
        conn.execute(f"INSERT INTO runs ({', '.join(run)}) VALUES ({', '.join('?' * len(run))})",
                     tuple(run.values()))
    for i in range(images):
        conn.execute("INSERT INTO images (id, namespace, name, first_seen_at, last_seen_at, "
                     "first_seen_run, last_seen_run, removed_at) VALUES (?, 'library', ?, "
                     "'2026-11-26T03:00:00Z', '2026-11-26T03:00:00Z', 1, 1, ?)",
                     (i, f"img{i}", "2026-11-26T03:00:00Z" if i == 0 else None))
    conn.commit()
    conn.close()
    return path


SUCCESS_RUN = {"run_id": 1, "started_at": "2026-11-26T03:00:00Z",
               "finished_at": "2026-11-26T03:00:10Z", "status": "success", "requests": 3,
               "retries": 1}
SUCCESS_TS = 1795662010.0  # 2026-11-26T03:00:10Z


def add_run(db: Path, run: dict[str, Any]) -> None:
    conn = sqlite3.connect(db)
    conn.execute(f"INSERT INTO runs ({', '.join(run)}) VALUES ({', '.join('?' * len(run))})",
                 tuple(run.values()))
    conn.commit()
    conn.close()


def families(text: str) -> dict[str, tuple[str, float]]:
    """Parse with the Prometheus text parser: sample name -> (family type, value)."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            out[sample.name] = (fam.type, sample.value)
    return out


@dataclass
class Pings:
    """A healthchecks.io stand-in on 127.0.0.1: the check's URL and every request it got."""

    stub: Stub

    @property
    def url(self) -> str:
        return f"{self.stub.url}/ping/abc-123"

    @property
    def calls(self) -> list[Seen]:
        return self.stub.seen

    def paths(self) -> list[str]:
        return self.stub.paths()


def pings_answering(stubs: Callable[..., Stub], status: int) -> Pings:
    return Pings(stubs(lambda h, seen: answer(h, status, b"OK")))


@pytest.fixture
def pings(stubs: Callable[..., Stub]) -> Pings:
    return pings_answering(stubs, 200)


@pytest.fixture
def dead_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there any more: connection refused
    return f"http://127.0.0.1:{port}/ping/abc-123"


# ------------------------------------------------------------------------------------ metrics


def test_metrics_text_parses_with_help_and_type(tmp_path: Path) -> None:
    db = make_db(tmp_path / "swr.db", [SUCCESS_RUN, {**SUCCESS_RUN, "run_id": 2, "requests": 4,
                                                     "retries": 0, "status": "failed",
                                                     "finished_at": "2026-11-27T03:00:10Z"}],
                 images=5)
    text = render(RunFigures(finished=1795748410.25, duration=9.5, exit_code=0, rejected=2,
                             requests=4, retries=0, images=180), read_database_figures(db))
    for name, (kind, _) in METRICS.items():
        sample = name + "_total" if kind == "counter" else name
        assert f"# HELP {sample} " in text and f"# TYPE {sample} {kind}\n" in text
    assert families(text) == {
        "swr_etl_last_run_timestamp_seconds": ("gauge", 1795748410.25),
        "swr_etl_last_success_timestamp_seconds": ("gauge", SUCCESS_TS),
        "swr_etl_last_run_duration_seconds": ("gauge", 9.5),
        "swr_etl_last_run_status": ("gauge", 0.0),
        "swr_etl_last_run_success": ("gauge", 1.0),
        "swr_etl_images": ("gauge", 4.0),  # from the database: one of five is removed
        "swr_etl_rows_rejected": ("gauge", 2.0),
        "swr_etl_last_run_requests": ("gauge", 4.0),
        "swr_etl_last_run_retries": ("gauge", 0.0),
        "swr_etl_requests_total": ("counter", 7.0),  # summed over the ledger
        "swr_etl_retries_total": ("counter", 1.0),
    }


def test_metrics_text_is_what_prometheus_client_writes(tmp_path: Path) -> None:
    """The file is prometheus_client's own exposition of these families, byte for byte (its
    number format and escaping, not a hand-made imitation), whatever the run's outcome."""
    from prometheus_client import CollectorRegistry, generate_latest

    class Parsed:
        def __init__(self, text: str) -> None:
            self.families = list(text_string_to_metric_families(text))

        def collect(self) -> list[Any]:
            return self.families

    db = make_db(tmp_path / "swr.db", [SUCCESS_RUN], images=3)
    for figures in (RunFigures(finished=1795748410.25, duration=9.5, exit_code=0, rejected=2,
                               requests=4, retries=0, images=180),
                    RunFigures(finished=100.0, duration=1.0, exit_code=143)):
        text = render(figures, read_database_figures(db))
        registry = CollectorRegistry(auto_describe=True)
        registry.register(Parsed(text))  # type: ignore[arg-type]
        assert generate_latest(registry).decode() == text


def test_prometheus_client_and_tqdm_are_dependencies_not_extras() -> None:
    """--metrics-file and the progress line work in a plain install, without the test extra."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    required = {re.split(r"[<>=;\[ ]", dep, maxsplit=1)[0].lower()
                for dep in project["project"]["dependencies"]}
    assert {"prometheus-client", "tqdm"} <= required


def test_metrics_without_a_database_leave_unknowns_out(tmp_path: Path) -> None:
    figures = RunFigures(finished=100.0, duration=1.0, exit_code=3)
    text = render(figures, read_database_figures(tmp_path / "x"))
    assert families(text) == {
        "swr_etl_last_run_timestamp_seconds": ("gauge", 100.0),
        "swr_etl_last_run_duration_seconds": ("gauge", 1.0),
        "swr_etl_last_run_status": ("gauge", 3.0),
        "swr_etl_last_run_success": ("gauge", 0.0),
    }
    assert not (tmp_path / "x").exists()


def test_metrics_file_written_atomically(tmp_path: Path) -> None:
    target = tmp_path / "swr_etl.prom"
    target.write_text("old")
    write_metrics(target, tmp_path / "none.db", RunFigures(finished=5.0, duration=1.0,
                                                           exit_code=0))
    assert families(target.read_text())["swr_etl_last_run_status"] == ("gauge", 0.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["swr_etl.prom"]  # no temp file left
    assert target.stat().st_mode & 0o777 == 0o644


def test_last_success_survives_a_failed_run(tmp_path: Path) -> None:
    db = make_db(tmp_path / "swr.db", [SUCCESS_RUN])
    metrics = tmp_path / "swr_etl.prom"
    settings = Settings(db=db, metrics_file=metrics)
    clock = iter([1000.0, 1012.5, 2000.0, 2003.0]).__next__

    run_observed(settings, lambda: FakeResult(), clock=clock)
    first = families(metrics.read_text())
    assert first["swr_etl_last_success_timestamp_seconds"] == ("gauge", SUCCESS_TS)
    assert first["swr_etl_last_run_duration_seconds"] == ("gauge", 12.5)
    assert first["swr_etl_rows_rejected"] == ("gauge", 2.0)

    def failing() -> FakeResult:
        # The pipeline writes its failed ledger row before raising.
        add_run(db, {"run_id": 2, "started_at": "2026-11-27T03:00:00Z", "status": "failed",
                     "finished_at": "2026-11-27T03:00:03Z", "requests": 5, "retries": 4,
                     "rows_rejected": 0})
        raise UpstreamError("SWR API unavailable after 5 attempts")

    with pytest.raises(UpstreamError):
        run_observed(settings, failing, clock=clock)
    after = families(metrics.read_text())
    assert after["swr_etl_last_success_timestamp_seconds"] == ("gauge", SUCCESS_TS)
    assert after["swr_etl_last_run_timestamp_seconds"] == ("gauge", 2003.0)
    assert after["swr_etl_last_run_status"] == ("gauge", 4.0)
    assert after["swr_etl_last_run_success"] == ("gauge", 0.0)
    assert after["swr_etl_last_run_requests"] == ("gauge", 5.0)  # from the failed run's row
    assert after["swr_etl_requests_total"] == ("counter", 8.0)


# -------------------------------------------------------------------------------- healthcheck


def test_pings_start_then_success_with_one_run_key(pings: Pings, tmp_path: Path) -> None:
    settings = Settings(db=tmp_path / "swr.db", healthcheck_url=pings.url)
    result = run_observed(settings, lambda: FakeResult())
    assert result == FakeResult()
    assert pings.paths() == ["/ping/abc-123/start", "/ping/abc-123"]
    rids = {seen.query()["rid"] for seen in pings.calls}
    assert len(rids) == 1
    assert pings.calls[1].body.decode() == "run 7: success, 181 images"
    assert not (tmp_path / "swr.db").exists()  # the hooks never create the database


def test_pings_exit_code_on_failure_and_reraises_the_same_error(pings: Pings,
                                                               tmp_path: Path) -> None:
    settings = Settings(db=tmp_path / "swr.db", healthcheck_url=pings.url,
                        metrics_file=tmp_path / "m.prom")
    error = LockedError("another run holds the lock for swr.db (pid 42)")

    def run() -> FakeResult:
        raise error

    with pytest.raises(LockedError) as exc:
        run_observed(settings, run)
    assert exc.value is error
    assert pings.paths() == ["/ping/abc-123/start", "/ping/abc-123/5"]
    assert pings.calls[1].body.decode() == "exit 5: another run holds the lock for swr.db (pid 42)"
    assert families((tmp_path / "m.prom").read_text())["swr_etl_last_run_status"] == ("gauge", 5)


def test_incomplete_run_pings_6_and_a_bug_pings_1(pings: Pings, tmp_path: Path) -> None:
    settings = Settings(db=tmp_path / "swr.db", healthcheck_url=pings.url)
    assert run_observed(settings, lambda: FakeResult(exit_code=6)).exit_code == 6

    def buggy() -> FakeResult:
        raise KeyError("oops")

    with pytest.raises(KeyError):
        run_observed(settings, buggy)
    assert pings.paths()[1::2] == ["/ping/abc-123/6", "/ping/abc-123/1"]


def test_dead_healthcheck_server_changes_nothing(dead_url: str, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(db=tmp_path / "swr.db", healthcheck_url=dead_url,
                        metrics_file=tmp_path / "m.prom")
    with caplog.at_level(logging.WARNING, logger="etl"):
        assert run_observed(settings, lambda: FakeResult(exit_code=6)).exit_code == 6
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    port = urlsplit(dead_url).port
    assert warnings == [
        f"healthcheck ping start to http://127.0.0.1:{port}/… failed: cannot connect to "
        f"127.0.0.1:{port}: Connection refused (the run is not affected)",
        f"healthcheck ping 6 to http://127.0.0.1:{port}/… failed: cannot connect to "
        f"127.0.0.1:{port}: Connection refused (the run is not affected)",
    ]
    assert all("abc-123" not in m for m in warnings)  # the ping URL is a capability
    assert families((tmp_path / "m.prom").read_text())["swr_etl_last_run_status"] == ("gauge", 6)


def test_healthcheck_http_error_is_a_warning(stubs: Callable[..., Stub]) -> None:
    p = pings_answering(stubs, 500)
    hc = Healthcheck(p.url, run_key="fixed")
    assert hc.start() is False
    assert hc.success() is False
    assert p.calls[0].query() == {"rid": "fixed"}


def test_healthcheck_url_keeps_its_query() -> None:
    hc = Healthcheck("https://hc-ping.com/KEY/nightly-sync?create=1", run_key="r1")
    assert hc._url("start") == "https://hc-ping.com/KEY/nightly-sync/start?create=1&rid=r1"
    assert hc._url("") == "https://hc-ping.com/KEY/nightly-sync?create=1&rid=r1"


def test_dry_run_neither_pings_nor_writes(pings: Pings, tmp_path: Path) -> None:
    settings = Settings(db=tmp_path / "swr.db", healthcheck_url=pings.url,
                        metrics_file=tmp_path / "m.prom", dry_run=True)
    run_observed(settings, lambda: FakeResult())
    assert pings.calls == [] and not (tmp_path / "m.prom").exists()


def test_missing_metrics_folder_fails_before_running(pings: Pings, tmp_path: Path) -> None:
    from etl.errors import ConfigError

    settings = Settings(db=tmp_path / "swr.db", healthcheck_url=pings.url,
                        metrics_file=tmp_path / "nope" / "m.prom")
    ran: list[int] = []
    with pytest.raises(ConfigError, match="^metrics-file folder does not exist: "):
        run_observed(settings, lambda: ran.append(1) or FakeResult())
    assert ran == [] and pings.calls == []


# ----------------------------------------------------------------------------------- progress


EVENTS = [{"pages_done": 1, "pages_total": None, "rows_loaded": 100},
          {"pages_done": 1, "pages_total": 2, "rows_loaded": 100},
          {"pages_done": 2, "pages_total": 2, "rows_loaded": 1181}]


def test_format_progress() -> None:
    assert [format_progress(e) for e in EVENTS] == [
        "pages 1  100 rows", "pages 1/2 (50%)  100 rows", "pages 2/2 (100%)  1,181 rows"]
    # once the total is known: rows/s and the time left; never before
    assert format_progress(EVENTS[1], rate=1234.4, remaining="01:05") == (
        "pages 1/2 (50%)  100 rows  1,234 rows/s  ETA 01:05")
    assert format_progress(EVENTS[0], rate=1234.4, remaining="01:05") == "pages 1  100 rows"


def test_progress_absent_when_not_a_terminal() -> None:
    stream = io.StringIO()
    with ProgressDisplay(stream, env={"TERM": "xterm"}) as progress:
        assert progress.enabled is False and progress.callback is None
        for e in EVENTS:
            progress(e)
    assert stream.getvalue() == ""


def read_all(fd: int, deadline: float = 5.0) -> bytes:
    """Read what the pty holds without blocking past a deadline."""
    import select

    data = b""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if not ready:
            if data:
                break
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize("env,escapes", [({"TERM": "xterm"}, True),
                                         ({"TERM": "xterm", "NO_COLOR": "1"}, False)])
def test_progress_present_on_a_pty(env: dict[str, str], escapes: bool) -> None:
    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, "w", closefd=False) as stream:
            with ProgressDisplay(stream, env=env) as progress:
                assert progress.enabled
                for e in EVENTS:
                    progress(e)
                shown = read_all(master).decode()
        erased = read_all(master).decode()
    finally:
        os.close(master)
        os.close(slave)
    # the first state and the final one are always drawn
    assert "swr-etl\x1b[0m pages 1  100 rows" in shown if escapes else (
        "\rswr-etl pages 1  100 rows" in shown)
    final = shown.rsplit("\r", 1)[1].replace("\x1b[36m", "").replace("\x1b[0m", "")
    assert re.fullmatch(r"swr-etl pages 2/2 \(100%\)  1,181 rows  [\d,]+ rows/s  ETA 00:00",
                        final), final
    assert ("\x1b[" in shown + erased) is escapes  # NO_COLOR: no escape sequence at all
    assert erased.startswith("\r" + " " * len(final))  # the line is removed at the end
    assert "\n" not in shown + erased


def test_progress_off_for_dumb_terminals_and_quiet_runs() -> None:
    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, "w", closefd=False) as stream:
            assert ProgressDisplay(stream, env={"TERM": "dumb"}).enabled is False
            assert ProgressDisplay(stream, env={"TERM": "xterm"}, active=False).enabled is False
            assert ProgressDisplay(stream, env={"TERM": "xterm"}).enabled is True
    finally:
        os.close(master)
        os.close(slave)


def test_log_lines_erase_the_progress_line() -> None:
    master, slave = pty.openpty()
    logger = logging.getLogger("etl.test_progress")
    logger.setLevel(logging.INFO)  # whatever an earlier test left on the "etl" logger
    handler = logging.StreamHandler()
    try:
        with os.fdopen(slave, "w", closefd=False) as stream:
            handler.stream = stream
            logging.getLogger("etl").addHandler(handler)
            with ProgressDisplay(stream, env={"TERM": "xterm", "NO_COLOR": "1"}) as progress:
                progress(EVENTS[0])
                logger.warning("page 2 retried")
            out = read_all(master).decode()
    finally:
        logging.getLogger("etl").removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        os.close(master)
        os.close(slave)
    # progress, then blanks over it and a carriage return, then the log line on a clean line
    assert out.startswith("\rswr-etl pages 1  100 rows\r" + " " * 25 + "\rpage 2 retried")
    assert handler.filters == []


# --------------------------------------------------------------------------- sync, end to end


def test_sync_command_wraps_the_pipeline(pings: Pings, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    import etl.run.pipeline

    calls: list[dict[str, Any]] = []

    def fake_run_sync(settings: Settings, **kw: Any) -> FakeResult:
        calls.append({"db": settings.db, **kw})
        return FakeResult(exit_code=6, status="partial")

    monkeypatch.setattr(etl.run.pipeline, "run_sync", fake_run_sync)
    metrics = tmp_path / "swr_etl.prom"
    with pytest.raises(SystemExit) as exc:
        main(["sync", "--no-auth", "--db", str(tmp_path / "swr.db"), "--metrics-file",
              str(metrics), "--healthcheck-url", pings.url])
    assert exc.value.code == 6
    assert calls == [{"db": tmp_path / "swr.db", "on_progress": None}]
    assert capsys.readouterr().out == "run 7: partial, 181 images\n"
    assert pings.paths() == ["/ping/abc-123/start", "/ping/abc-123/6"]
    assert families(metrics.read_text())["swr_etl_last_run_status"] == ("gauge", 6.0)


def test_sigterm_during_a_run_is_reported(pings: Pings, tmp_path: Path) -> None:
    """systemd/Kubernetes stop a job with SIGTERM: it still writes metrics and pings /143."""
    import signal

    from etl.run.hooks import Terminated

    settings = Settings(db=tmp_path / "swr.db", healthcheck_url=pings.url,
                        metrics_file=tmp_path / "m.prom")
    before = signal.getsignal(signal.SIGTERM)

    def run() -> FakeResult:
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 10  # the handler runs at the next bytecode boundary
        while time.monotonic() < deadline:
            pass
        raise AssertionError("SIGTERM did not interrupt the run")

    with pytest.raises(Terminated, match="^terminated by signal SIGTERM$"):
        run_observed(settings, run)
    assert pings.paths() == ["/ping/abc-123/start", "/ping/abc-123/143"]
    assert families((tmp_path / "m.prom").read_text())["swr_etl_last_run_status"] == (
        "gauge", 143.0)
    assert signal.getsignal(signal.SIGTERM) is before  # restored


def test_sync_command_exits_143_when_terminated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import etl.run.pipeline
    from etl.run.hooks import Terminated

    def fake_run_sync(settings: Settings, **kw: Any) -> FakeResult:
        raise Terminated("terminated by signal SIGTERM")

    monkeypatch.setattr(etl.run.pipeline, "run_sync", fake_run_sync)
    with pytest.raises(SystemExit) as exc:
        main(["sync", "--no-auth", "--db", str(tmp_path / "swr.db"), "--metrics-file",
              str(tmp_path / "m.prom")])
    assert exc.value.code == 143
    assert capsys.readouterr().err.splitlines()[-1] == (
        "swr-etl: error: terminated by signal SIGTERM")
    assert families((tmp_path / "m.prom").read_text())["swr_etl_last_run_status"] == (
        "gauge", 143.0)


@pytest.mark.parametrize("url", ["hc-ping.com/abc", "ftp://hc-ping.com/abc", "https:///abc"])
def test_bad_healthcheck_url_fails_before_running(tmp_path: Path, url: str) -> None:
    from etl.errors import ConfigError

    ran: list[int] = []
    with pytest.raises(ConfigError) as exc:
        run_observed(Settings(db=tmp_path / "swr.db", healthcheck_url=url),
                     lambda: ran.append(1) or FakeResult())
    assert str(exc.value) == (
        "healthcheck-url must be an http(s) URL such as https://hc-ping.com/<uuid>")
    assert exc.value.exit_code == 2 and ran == []
