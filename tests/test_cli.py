"""The CLI shell: global options anywhere, one-line errors, documented exit codes."""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest

from etl import __version__
from etl.cli.app import main
from tests.helpers import fresh_python


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """main() in this process points logging at the test's captured stderr; undo that."""
    loggers = [logging.getLogger(), logging.getLogger("etl")]
    saved = [(list(lg.handlers), lg.level, lg.propagate) for lg in loggers]
    yield
    for lg, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate


def run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "etl", *args], capture_output=True, text=True,
                          env=env, timeout=60)


def test_version() -> None:
    out = run(["--version"])
    assert out.returncode == 0
    assert out.stdout.strip() == f"swr-etl, version {__version__}"


@pytest.mark.parametrize("args,needle", [
    (["sync", "--bogus"], "No such option '--bogus'"),
    (["sync", "--page-size", "0"], "Invalid value for '--page-size'"),
    (["sync", "--concurrency", "abc"], "Invalid value for '--concurrency'"),
    (["nosuchcommand"], "No such command 'nosuchcommand'"),
    (["export"], "Missing option '--out'"),
])
def test_bad_input_exits_2_with_one_line(args: list[str], needle: str) -> None:
    out = run(args, env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("swr-etl: error: ")
    assert needle in lines[0]
    assert "Traceback" not in out.stderr


@pytest.mark.usefixtures("clean_env")
def test_missing_credentials_lists_the_three_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["sync", "--db", "/nonexistent/never-created.db"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    for var in ("SWR_AUTH_TOKEN", "HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_USERNAME"):
        assert var in err


@pytest.mark.parametrize("before", [True, False])
def test_global_options_before_or_after_the_command(before: bool) -> None:
    opts = ["-q", "--log-format", "json"]
    args = [*opts, "runs", "--help"] if before else ["runs", *opts, "--help"]
    out = run(args)
    assert out.returncode == 0
    assert "--log-format" in out.stdout


def test_every_command_has_help() -> None:
    from etl.cli.app import cli

    for name in cli.commands:
        out = run([name, "--help"])
        assert out.returncode == 0, name
        assert "Usage: swr-etl " + name in out.stdout


def test_every_sync_option_is_in_the_table_once_and_in_its_help() -> None:
    """``sync``'s flags are the table of settings, in its order, each with its help text, env
    var and default; nothing written a second time by hand."""
    from etl.cli.app import cli
    from etl.cli.options import help_text
    from etl.config import SYNC_OPTIONS

    keys = [spec.key for spec in SYNC_OPTIONS]
    assert len(keys) == len(set(keys)) == 31  # 28 + --adopt, --s3-endpoint, --s3-region
    params = {p.name: p for p in cli.commands["sync"].params if isinstance(p, click.Option)}
    for spec in SYNC_OPTIONS:
        assert params[spec.name].opts == [f"--{spec.key}"]
        assert params[spec.name].help == help_text(spec)
    out = run(["sync", "--help"])
    assert out.returncode == 0
    shown = re.findall(r"^  (--[a-z0-9-]+)", out.stdout, re.MULTILINE)
    assert [flag for flag in shown if flag not in {"--log-format", "--config", "--help"}] == [
        f"--{key}" for key in keys]
    text = " ".join(out.stdout.split())
    for needle in ("Rows per request, 1..1000. [default: 100] [1<=x<=1000]",
                   "[env: SWR_ETL_DEADLINE; default: 3600] [0.001<=x<=604800]",
                   "[env: SWR_ETL_DB; default: ./swr.db]",
                   "[default: none, retries are bounded by --retry-window] [x>=1]",
                   "--no-auth Send no credentials"):
        assert needle in text


@pytest.mark.parametrize("args", [["--help"], ["sync", "--help"], ["runs", "--db", "DB"],
                                  ["status", "--db", "DB"]])
def test_start_up_needs_no_heavy_library(tmp_path: Path, args: list[str]) -> None:
    """--help and the reading commands answer without pandas, pyarrow, requests or sqlite-utils
    (each costs a noticeable part of a second to import), nor the load and the analytic SQL
    (tens of milliseconds of a command that should take less than 0.1 s)."""
    heavy = ("pandas", "pyarrow", "numpy", "requests", "urllib3", "sqlite_utils", "matplotlib",
             "etl.store.load", "etl.store.trends")
    script = ("import sys\nfrom etl.cli.app import main\n"
              "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
              f"print('loaded:', sorted(m for m in {heavy!r} if m in sys.modules), "
              "file=sys.stderr)")
    args = [str(tmp_path / "swr.db") if a == "DB" else a for a in args]
    out = fresh_python(script, *args)
    assert out.stderr.splitlines()[-1] == "loaded: []", out.stderr


def test_a_sync_of_utc_data_never_imports_pandas(tmp_path: Path, simulator: Any) -> None:
    """pandas is ~0.15-0.2 s of a sync's GIL time: a sync into a new database and a second one
    load none of it, while pyarrow still converts to and from pandas in the same process once
    something imports it. Nor do they load sqlite-utils (the schema is plain SQL; its import
    held up a new database's first request ~0.1 s), zoneinfo (UTC needs no zone) or the
    metrics module (no --metrics-file), a few ms each of a nightly run."""
    sim = simulator(images=2500)
    db = tmp_path / "swr.db"
    script = (
        "import sys\nfrom etl.cli.app import main\n"
        "for _ in range(2):\n"
        "    try:\n        main(sys.argv[1:])\n    except SystemExit as e:\n"
        "        assert not e.code, e.code\n"
        "print('loaded:', [m for m in ('pandas', 'sqlite_utils', 'zoneinfo', 'etl.run.metrics') "
        "if m in sys.modules], file=sys.stderr)\n"
        "import pandas, pyarrow\n"
        "frame = pyarrow.table({'a': [1, None]}).to_pandas()\n"
        "print('after:', str(frame['a'].dtype), pyarrow.array(pandas.Series(['x'])).type, "
        "file=sys.stderr)\n")
    out = fresh_python(script, "-q", "sync", "--endpoint", sim.url, "--db", str(db),
                       "--no-auth", "--page-size", "100", timeout=120)
    assert out.stderr.splitlines()[-2:] == [
        "loaded: []", "after: float64 large_string"], out.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT run_id) FROM image_snapshots"
                            ).fetchone() == (5000, 2)


@pytest.mark.parametrize("chosen,threads", [(None, 1), ("2", 2)])
def test_the_command_line_starts_no_idle_blas_threads(chosen: str | None, threads: int) -> None:
    """``swr-etl`` asks numpy's OpenBLAS for one thread before anything imports numpy: its
    default, a spinning worker per core, took 70-90 ms of CPU per run from the page fetchers.
    A number the user chose is kept. Counted from /proc, in a fresh process, with ``main``
    replaced by what a sync does first with numpy: import it."""
    if os.cpu_count() is None or os.cpu_count() < 2 or not Path("/proc/self/task").is_dir():
        pytest.skip("needs Linux and two cores to tell one BLAS thread from the default")
    script = (
        "import os, sys\nimport etl.cli.app as app\n"
        "def main():\n"
        "    import numpy\n"
        "    print(len(os.listdir('/proc/self/task')), os.environ['OPENBLAS_NUM_THREADS'],\n"
        "          flush=True)\n"
        "    sys.exit(0)\n"
        "app.main = main\napp.console_main()\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    if chosen is not None:
        env["OPENBLAS_NUM_THREADS"] = chosen
    out = fresh_python(script, env=env)
    assert out.stdout.split() == [str(threads), chosen or "1"], out.stderr
    # Without it, numpy alone would have started more: the test can tell the two apart.
    default = fresh_python("import os, numpy\nprint(len(os.listdir('/proc/self/task')))",
                           env={k: v for k, v in env.items() if k != "OPENBLAS_NUM_THREADS"})
    assert int(default.stdout) > 1, default.stderr


# ------------------------------------------------- configuration errors touch nothing (exit 2)

AKSK_ENV = {"HUAWEICLOUD_SDK_AK": "AKEXAMPLE0000000001", "HUAWEICLOUD_SDK_SK": "SKEXAMPLE"}


@pytest.mark.parametrize("args,message", [
    (["--source-timezone", ""], "unknown time zone: ''"),
    (["--endpoint", "http://[::1"], "endpoint is not a valid URL: 'http://[::1'"),
    (["--endpoint", "http://exa mple.com"],
     "endpoint is not a valid URL: 'http://exa mple.com' (host name 'exa mple.com' is not a "
     "valid name)"),
    (["--endpoint", "https://127.0.0.1:0"],
     "endpoint is not a valid URL: 'https://127.0.0.1:0' (port 0)"),
    (["--endpoint", "http://127.0.0.1:9/?x=1"],
     "endpoint must be a base URL without a query or fragment, got 'http://127.0.0.1:9/?x=1'"),
    (["--db", ""], "Invalid value for '--db': an empty path names no file."),
    (["--ca-bundle", "missing.pem"], "cannot set up TLS for http://127.0.0.1:9: Could not find "
                                     "a suitable TLS CA certificate bundle, invalid path: "
                                     "missing.pem"),
    (["aksk-extra-missing"],
     "AK/SK signing (HUAWEICLOUD_SDK_AK/HUAWEICLOUD_SDK_SK) needs the optional package "
     "huaweicloudsdkcore: install swr-etl with its [aksk] extra "
     "(from a checkout: pip install -e '.[aksk]')"),
])
def test_configuration_errors_touch_nothing(args: list[str], message: str, tmp_path: Path,
                                            clean_env: pytest.MonkeyPatch, stubs: Any,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 2 with one line before the lock, the database, the metrics file or a ping: no file
    is created anywhere (``--db ''`` once locked the folder above the current one)."""
    from tests.test_ops import pings_answering

    pings = pings_answering(stubs, 200)
    monkeypatch = clean_env
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for name, value in AKSK_ENV.items():
        monkeypatch.setenv(name, value)
    if args == ["aksk-extra-missing"]:  # as if installed without the [aksk] extra
        for name in [m for m in sys.modules if m.startswith("huaweicloudsdkcore")]:
            monkeypatch.setitem(sys.modules, name, None)
        monkeypatch.setitem(sys.modules, "huaweicloudsdkcore", None)
        args = []
    with pytest.raises(SystemExit) as exc:
        main(["sync", "--db", "swr.db", "--endpoint", "http://127.0.0.1:9",
              "--metrics-file", "swr.prom", "--healthcheck-url", pings.url, *args])
    assert exc.value.code == 2
    assert capsys.readouterr().err.splitlines() == [f"swr-etl: error: {message}"]
    assert [p.name for p in tmp_path.rglob("*") if p.name != "home"] == ["work"]
    assert pings.calls == []


@pytest.mark.parametrize("args", [
    ["sync", "--no-auth", "--endpoint", "http://127.0.0.1:9"], ["replay", "1"],
    ["export", "--out", "out"], ["report", "--out", "r.json"], ["runs"], ["status"]])
def test_one_wording_for_a_file_that_is_not_sqlite(args: list[str], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    Path("notes.db").write_bytes(b"my notes, not a database\n" * 40)
    with pytest.raises(SystemExit) as exc:
        main([*args, "--db", "notes.db"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "swr-etl: error: notes.db is not a SQLite database (left untouched)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


# ----------------------------------------------------------------------------------- output


def test_bare_command_prints_the_help_and_exits_2() -> None:
    out = run([])
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert lines[0] == "Usage: swr-etl [OPTIONS] COMMAND [ARGS]..."
    assert "Commands:" in lines and len(lines) > 20  # the help as it reads, not one long line
    assert not any(line.startswith("swr-etl: error:") for line in lines)


def sync_args(sim_url: str, db: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "etl", "sync", "--db", str(db), "--endpoint", sim_url,
            "--no-auth", *extra]


def test_summary_once_where_stdout_and_stderr_meet(simulator: Any, tmp_path: Path) -> None:
    """A terminal, cron's ``>> log 2>&1``, the journal: one summary line, the log line."""
    sim = simulator(images=5)
    with open(tmp_path / "sync.log", "w") as log:
        proc = subprocess.run(sync_args(sim.url, tmp_path / "swr.db"), stdout=log,
                              stderr=subprocess.STDOUT, timeout=120)
    assert proc.returncode == 0
    lines = (tmp_path / "sync.log").read_text().splitlines()
    summaries = [line for line in lines if "run 1 success: 5 rows" in line]
    assert len(summaries) == 1 and " INFO " in summaries[0], lines


def test_summary_on_stdout_for_scripts_when_streams_differ(simulator: Any,
                                                          tmp_path: Path) -> None:
    sim = simulator(images=5)
    proc = subprocess.run(sync_args(sim.url, tmp_path / "swr.db"), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0
    assert re.fullmatch(r"run 1 success: 5 rows \(5 new, 0 changed, 0 removed, 0 rejected\) in "
                        r"\d+ requests, 0 retries, [\d.]+ s\n", proc.stdout)
    assert "run 1 success: 5 rows" in proc.stderr  # and the log line, where logs go


def test_json_logs_with_stdout_joined_are_json_lines_only(simulator: Any,
                                                          tmp_path: Path) -> None:
    """``swr-etl sync --log-format json 2>&1 | jq`` never meets a plain-text line."""
    sim = simulator(images=5)
    proc = subprocess.run(sync_args(sim.url, tmp_path / "swr.db", "--log-format", "json"),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=120)
    assert proc.returncode == 0
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["message"] for r in records if "success" in r["message"]][0].startswith(
        "run 1 success: 5 rows")


def test_quiet_status_prints_nothing(tmp_path: Path) -> None:
    from tests.fixtures.report_db import build_trend_db

    db = build_trend_db(tmp_path / "swr.db")
    out = run(["status", "-q", "--db", str(db)])
    assert (out.returncode, out.stdout, out.stderr) == (8, "", "")  # its runs are from 2026-11
    loud = run(["status", "--db", str(db)])
    assert loud.returncode == 8 and loud.stdout.startswith("last success: ")


def test_report_to_stdout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    from tests.fixtures.report_db import build_trend_db

    db = build_trend_db(tmp_path / "swr.db")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["report", "--db", str(db), "--out", "-", "--format", "json"])
    assert exc.value.code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["window_days"] == 30 and report["totals"]["images"] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["swr.db"]  # no file named "-"
    with pytest.raises(SystemExit) as exc:
        main(["report", "--db", str(db), "--out", "-"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "swr-etl: error: --out - (stdout) needs --format html, md or json"]


# ------------------------------------------------------------------------------------- help


def test_every_option_of_every_command_has_help() -> None:
    from etl.cli.app import cli

    for name, command in [("", cli), *cli.commands.items()]:
        for param in command.get_params(click.Context(command)):
            if isinstance(param, click.Option):
                assert param.help, f"swr-etl {name} {param.opts[0]} has no help text"


def exit_code_lines(help_text: str) -> dict[int, str]:
    section = help_text.split("Exit codes:\n", 1)[1]
    return {int(m[1]): m[2] for m in re.finditer(r"^ +(\d+) +(.+)$", section, re.MULTILINE)}


@pytest.mark.parametrize("command,codes", [
    ("sync", [0, 2, 3, 4, 5, 6, 7, 130, 143]), ("status", [0, 2, 8]), ("runs", [0, 2]),
    ("replay", [0, 2, 5, 6, 7, 130, 143]),
])
def test_each_command_lists_its_exit_codes(command: str, codes: list[int]) -> None:
    from etl.errors import EXIT_CODES

    out = run([command, "--help"])
    assert out.returncode == 0
    assert exit_code_lines(out.stdout) == {code: EXIT_CODES[code] for code in codes}


def test_top_level_help_lists_every_exit_code() -> None:
    from etl.errors import EXIT_CODES

    out = run(["--help"])
    assert exit_code_lines(out.stdout) == EXIT_CODES
    assert {1, 8, 130, 143} <= set(EXIT_CODES)


def test_sync_without_a_terminal_draws_nothing_and_never_imports_tqdm(simulator: Any,
                                                                      tmp_path: Path) -> None:
    """Cron mail and log files get log lines only: no carriage return, no escape sequence, and
    the progress library is not even imported."""
    sim = simulator(images=30)
    script = ("import sys\nfrom etl.cli.app import main\n"
              "try:\n    main(sys.argv[1:])\nexcept SystemExit as exc:\n    code = exc.code\n"
              "print('exit', code, 'tqdm' in sys.modules, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", script, "sync", "--db", str(tmp_path / "s.db"),
                           "--endpoint", sim.url, "--no-auth", "--page-size", "10"],
                          capture_output=True, text=True, timeout=120)
    *logged, last = proc.stderr.splitlines()
    assert last == "exit 0 False"
    assert "\r" not in proc.stderr and "\x1b" not in proc.stderr
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (INFO|WARNING) ", line)
               for line in logged), logged
