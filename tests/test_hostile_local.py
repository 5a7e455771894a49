"""Hostile hosts and local files: planted symlinks, absurd numbers, escape sequences from servers,
one exit-code rule, and a ledger that records every failure.

Each case states what a user sees (exit code and the one line on stderr) and what the files and
the database hold afterwards. Servers are the built-in simulator or stand-ins on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click
import pytest
from prometheus_client.parser import text_string_to_metric_families

import etl.logs
from etl.atomic import create_new, write_text_atomic
from etl.config import SYNC_OPTIONS, Credentials, Settings, build_settings
from etl.config import plaintext_warnings as warnings_for
from etl.config.file import MAX_CONFIG_BYTES, load_config_file
from etl.errors import (
    ConfigError,
    EtlError,
    LockedError,
    QualityError,
    Terminated,
    UpstreamError,
    exit_code_of,
)
from etl.run.metrics import RunFigures, write_metrics
from etl.run.pipeline import run_sync
from etl.store.database import RunLock, lock_path_for
from etl.store.ledger import format_runs_table, freshness, list_runs
from tests.fixtures.report_db import add_image, add_run, new_db
from tests.helpers import FakeScan, cli, q, rows

T0 = "2026-11-20T03:00:00Z"
pytestmark = pytest.mark.usefixtures("clean_env")
# Everything a terminal could act on: C0 controls but newline, DEL, C1 controls.
RAW_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")
HOSTILE = "bad \x1b]0;pwned\x07 \x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\ \x9b31m\x07"


def report_db(path: Path) -> Path:
    conn = new_db(path)
    add_image(conn, 1, "nginx")
    add_run(conn, 1, "2026-11-01", counts={1: 100})
    add_run(conn, 2, "2026-11-02", counts={1: 150})
    conn.close()
    return path


# ==================================================================================== 1. files


def test_planted_lock_symlink_is_refused_and_its_target_untouched(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    db = tmp_path / "swr.db"
    (tmp_path / "swr.db.lock").symlink_to(victim)
    code, _, err = cli(["sync", "--no-auth", "--endpoint", "http://127.0.0.1:9", "--db", str(db)],
                       capsys)
    assert code == 2
    assert err == (f"swr-etl: error: lock file {tmp_path}/swr.db.lock is a symbolic link; "
                   "refusing to follow it (remove it and run again)\n")
    assert victim.read_text() == "precious\n"
    assert not db.exists()


def test_a_fifo_at_the_lock_path_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "swr.db.lock")
    with pytest.raises(ConfigError, match=r"lock file .*swr\.db\.lock is not a regular file"):
        RunLock(tmp_path / "swr.db").acquire()


def test_two_paths_to_one_database_share_one_lock(tmp_path: Path) -> None:
    real = tmp_path / "data" / "swr.db"
    real.parent.mkdir()
    real.touch()
    (tmp_path / "link1.db").symlink_to(real)
    (tmp_path / "other").symlink_to(real.parent, target_is_directory=True)
    paths = [tmp_path / "link1.db", tmp_path / "other" / "swr.db", real]
    assert {lock_path_for(p) for p in paths} == {real.parent / "swr.db.lock"}
    first = RunLock(paths[0])
    first.acquire()
    try:
        for path in paths[1:]:
            with pytest.raises(LockedError, match=f"another run holds the lock for {path} "
                                                  rf"\(pid {os.getpid()}\)"):
                RunLock(path).acquire()
    finally:
        first.release()
    assert not (tmp_path / "link1.db.lock").exists()


def test_export_refuses_a_symlinked_partition_folder_and_deletes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = report_db(tmp_path / "swr.db")
    victim = tmp_path / "victim"
    victim.mkdir()
    for name in ("images.parquet", "images.csv", ".images.keep.tmp", "notes.txt"):
        (victim / name).write_text(name)
    out = tmp_path / "exports"
    source = out / "source=cn-north-4"
    source.mkdir(parents=True)
    (source / "snapshot_date=2026-11-01").symlink_to(victim, target_is_directory=True)
    code, stdout, err = cli(["export", "--db", str(db), "--out", str(out), "--all"], capsys)
    assert code == 2
    assert err == (f"swr-etl: error: export folder {source}/snapshot_date=2026-11-01 is a "
                   "symbolic link; refusing to write through it (nothing was written or "
                   "deleted; remove the link)\n")
    assert stdout == ""
    assert sorted(p.name for p in victim.iterdir()) == [
        ".images.keep.tmp", "images.csv", "images.parquet", "notes.txt"]
    assert all((victim / p).read_text() == p for p in os.listdir(victim))
    # refused before any partition was written, the unaffected date included
    assert sorted(p.name for p in source.iterdir()) == ["snapshot_date=2026-11-01"]
    # a symlinked source level is refused the same way
    (source / "snapshot_date=2026-11-01").unlink()
    source.rmdir()
    source.symlink_to(victim, target_is_directory=True)
    code, _stdout, err = cli(["export", "--db", str(db), "--out", str(out), "--all"], capsys)
    assert (code, err) == (2, f"swr-etl: error: export folder {source} is a symbolic link; "
                              "refusing to write through it (nothing was written or deleted; "
                              "remove the link)\n")
    assert sorted(p.name for p in victim.iterdir()) == [
        ".images.keep.tmp", "images.csv", "images.parquet", "notes.txt"]


def test_export_temp_files_are_created_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    planted = tmp_path / ".images.parquet.0123456789ab.tmp"
    planted.symlink_to(victim)
    with pytest.raises(FileExistsError):
        create_new(planted)
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize("writer", ["text", "metrics"])
def test_outputs_replace_a_planted_symlink_instead_of_writing_through_it(
        tmp_path: Path, writer: str) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    target = tmp_path / ("report.md" if writer == "text" else "swr_etl.prom")
    target.symlink_to(victim)
    if writer == "text":
        write_text_atomic(target, "# report\n")
        assert target.read_text() == "# report\n"
    else:
        write_metrics(target, tmp_path / "none.db", RunFigures(finished=1.0, duration=0.5,
                                                               exit_code=0))
        assert "swr_etl_last_run_status 0" in target.read_text()
    assert not target.is_symlink() and target.is_file()
    assert victim.read_text() == "precious\n"


def test_report_output_symlink_is_replaced(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    db = report_db(tmp_path / "swr.db")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "report.json"
    out.symlink_to(victim)
    code, _, err = cli(["report", "--db", str(db), "--out", str(out)], capsys)
    assert code == 0, err
    assert not out.is_symlink()
    assert json.loads(out.read_text())["window_days"] == 30
    assert victim.read_text() == "precious\n"


def test_demo_removes_planted_symlinks_without_touching_their_targets(tmp_path: Path) -> None:
    from etl.demo import run_demo

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious\n")
    victim_file = tmp_path / "victim.html"
    victim_file.write_text("precious\n")
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "exports").symlink_to(victim, target_is_directory=True)
    (demo / "report.html").symlink_to(victim_file)
    (demo / "swr.db.lock").symlink_to(victim_file)
    result = run_demo(demo, days=2, images=10, interactive=False)
    assert result.runs_ok == 2
    assert not (demo / "exports").is_symlink() and (demo / "exports").is_dir()
    assert not (demo / "report.html").is_symlink()
    assert [p.name for p in victim.iterdir()] == ["keep.txt"]
    assert victim_file.read_text() == "precious\n"


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666, 0o622])
def test_config_writable_by_group_or_others_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: int) -> None:
    config = tmp_path / "swr-etl.toml"
    config.write_text('endpoint = "https://swr.evil.example"\n')
    config.chmod(mode)
    code, _, err = cli(["runs", "--config", str(config), "--db", str(tmp_path / "x.db")], capsys)
    assert code == 2
    assert err == (f"swr-etl: error: config file {config} is writable by group/others "
                   f"(mode {mode:04o}): whoever can change it can send your credentials "
                   f"elsewhere; run `chmod go-w {config}`\n")


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o640, 0o400])
def test_config_not_writable_by_others_is_read(tmp_path: Path, mode: int) -> None:
    config = tmp_path / "swr-etl.toml"
    config.write_text("page-size = 7\n")
    config.chmod(mode)
    assert load_config_file(config) == {"page-size": 7}


# =================================================================================== 2. values

SYNC = ["sync", "--no-auth", "--endpoint", "http://127.0.0.1:9"]


@pytest.mark.parametrize("args,message", [
    (SYNC + ["--timeout", "nan"], "timeout must be a finite number, got nan"),
    (SYNC + ["--timeout", "1e20"], "timeout must be 0.001..86400, got 1e+20"),
    (SYNC + ["--timeout", "inf"], "timeout must be a finite number, got inf"),
    (SYNC + ["--busy-timeout", "nan"], "busy-timeout must be a finite number, got nan"),
    (SYNC + ["--busy-timeout", "1e12"], "busy-timeout must be 0.0..86400, got 1000000000000.0"),
    (SYNC + ["--max-reject-ratio", "nan"], "max-reject-ratio must be a finite number, got nan"),
    (SYNC + ["--max-rps", "inf"], "max-rps must be a finite number, got inf"),
    (SYNC + ["--max-attempts", "100000000000000000000"],
     "max-attempts must be 1..1000, got 100000000000000000000"),
    (SYNC + ["--keep-raw-runs", "100000000000000000000"],
     "keep-raw-runs must be 0..1000000, got 100000000000000000000"),
    (SYNC + ["--retry-budget", "9223372036854775808"],
     "retry-budget must be 0..1000000, got 9223372036854775808"),
    (["report", "--out", "r.json", "--days", "1000000"],
     "Invalid value for '--days': 1000000 is not in the range 1<=x<=36500."),
    (["report", "--out", "r.json", "--days", "1e6"],
     "Invalid value for '--days': '1e6' is not a valid integer range."),
    (["report", "--out", "r.json", "--top", "100000000000000000000"],
     "Invalid value for '--top': 100000000000000000000 is not in the range 1<=x<=10000."),
    (["runs", "--limit", "1e20"], "Invalid value for '--limit': '1e20' is not a valid integer "
                                  "range."),
    (["runs", "--limit", "100000000000000000000"],
     "Invalid value for '--limit': 100000000000000000000 is not in the range 1<=x<=1000000."),
    (["status", "--max-age", "nan"], "Invalid value for '--max-age': 'nan' is not a finite "
                                     "number."),
    (["status", "--max-age", "inf"],
     "Invalid value for '--max-age': inf is not in the range 0<=x<=876000.0."),
    (["replay", "100000000000000000000"],
     "Invalid value for 'RUN_ID': 100000000000000000000 is not in the range "
     "1<=x<=9223372036854775807."),
])
def test_absurd_numbers_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch, args: list[str],
                                         message: str) -> None:
    monkeypatch.chdir(tmp_path)
    db = report_db(tmp_path / "swr.db")
    before = db.read_bytes()
    code, _, err = cli([*args, "--db", str(db)], capsys)
    assert (code, err) == (2, f"swr-etl: error: {message}\n")
    assert db.read_bytes() == before  # nothing opened for writing, no run recorded
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("text,message", [
    ("timeout = nan\n", "timeout must be a finite number, got nan"),
    ("timeout = inf\n", "timeout must be a finite number, got inf"),
    ("busy-timeout = -inf\n", "busy-timeout must be a finite number, got -inf"),
    ("max-reject-ratio = nan\n", "max-reject-ratio must be a finite number, got nan"),
    ("page-size = inf\n", "invalid value for page-size: inf"),
    ("keep-raw-runs = 1e300\n", "invalid value for keep-raw-runs: 1e+300"),
    ("retry-budget = 9223372036854775807\n",
     "retry-budget must be 0..1000000, got 9223372036854775807"),
    ("max-rescans = 1e3\n", "max-rescans must be 0..20, got 1000"),
    ("page-size = 5\npage_size = 6\n", "setting given twice in config file: page_size"),
])
def test_absurd_numbers_in_the_config_file(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(text)
    config.chmod(0o600)
    with pytest.raises(ConfigError) as exc:
        build_settings({}, {}, load_config_file(config))
    assert (str(exc.value), exc.value.exit_code) == (message, 2)


def test_env_numbers_are_checked_too() -> None:
    with pytest.raises(ConfigError, match="^busy-timeout must be a finite number, got nan$"):
        build_settings({"busy_timeout": "nan"}, {}, {})


def test_config_dev_zero_is_refused_without_reading_it(capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    code, _, err = cli(["runs", "--config", "/dev/zero", "--db", str(tmp_path / "x.db")], capsys)
    assert (code, err) == (2, "swr-etl: error: config file /dev/zero is not a regular file\n")


def test_config_fifo_is_refused_instead_of_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "swr-etl.toml"
    os.mkfifo(fifo)
    # A subprocess, so a regression shows as a timeout instead of hanging the test session.
    out = subprocess.run([sys.executable, "-m", "etl", "runs", "--config", str(fifo), "--db",
                          str(tmp_path / "x.db")], capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stderr) == (
        2, f"swr-etl: error: config file {fifo} is not a regular file\n")


def test_oversized_config_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    with open(config, "w") as fh:
        fh.write("# padding\n" * (MAX_CONFIG_BYTES // 10 + 1))
    config.chmod(0o600)
    with pytest.raises(ConfigError, match=f"^config file {config} is larger than 1 MiB; is it "
                                          "the right file[?]$"):
        load_config_file(config)


@pytest.mark.parametrize("key", ["now_override", "now-override", "allow_anonymous",
                                 "allow-anonymous", "backoff_base", "backoff-cap", "credentials"])
def test_internal_settings_are_not_accepted_from_a_file(tmp_path: Path, key: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f"{key} = true\n")
    config.chmod(0o600)
    hint = " (write no-auth = true)" if "anonymous" in key else ""
    with pytest.raises(ConfigError) as exc:
        build_settings({}, {}, load_config_file(config))
    assert str(exc.value) == f"unknown setting in config file: {key}{hint}"


@pytest.mark.parametrize("key", ["no-auth", "no_auth"])
def test_no_auth_is_spelled_as_on_the_command_line(tmp_path: Path, key: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f"{key} = true\n")
    config.chmod(0o600)
    settings = build_settings({}, {}, load_config_file(config), need_credentials=True)
    assert (settings.allow_anonymous, settings.credentials.kind) == (True, "none")


def test_every_key_a_config_file_accepts_is_a_sync_option() -> None:
    """The file takes what the command line takes, nothing internal: every user option of the
    settings table is a sync flag, and the fields that are no option are exactly the internal
    ones (refused from a file, see above)."""
    from etl.cli.app import cli as group

    options = {p.name for p in group.commands["sync"].params if isinstance(p, click.Option)}
    accepted = {o.name for o in SYNC_OPTIONS}
    assert accepted <= options, f"no sync flag for {sorted(accepted - options)}"
    assert set(Settings.__dataclass_fields__) - accepted == {
        "backoff_base", "backoff_cap", "credentials", "now_override", "sources"}
    assert {"allow_anonymous"} <= accepted  # as --no-auth / no-auth, its one spelling


@pytest.mark.parametrize("where", ["flag", "env", "config"])
@pytest.mark.parametrize("url", ["http://user:pw-s3cr3t@127.0.0.1:9",
                                 "https://pw-s3cr3t@swr.example.com",
                                 "https://user:pw-s3cr3t@swr.example.com:8443/base"])
def test_credentials_in_the_endpoint_are_refused_before_anything_is_stored(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        where: str, url: str) -> None:
    db = tmp_path / "swr.db"
    args = ["sync", "--no-auth", "--db", str(db)]
    if where == "flag":
        args += ["--endpoint", url]
    elif where == "env":
        monkeypatch.setenv("SWR_ENDPOINT", url)
    else:
        config = tmp_path / "c.toml"
        config.write_text(f'endpoint = "{url}"\n')
        config.chmod(0o600)
        args += ["--config", str(config)]
    code, _, err = cli(args, capsys)
    assert code == 2
    redacted = re.sub(r"//[^@]*@", "//***@", url)
    assert err == (f"swr-etl: error: endpoint must not contain a user name or password "
                   f"({redacted}): give credentials in the environment (SWR_AUTH_TOKEN, "
                   "HUAWEICLOUD_SDK_AK/SK, ...)\n")
    assert "s3cr3t" not in err
    assert not db.exists()


@pytest.mark.parametrize("env,option", [
    ({"HUAWEICLOUD_USERNAME": "u", "HUAWEICLOUD_PASSWORD": "p4ssw0rd-x",
      "HUAWEICLOUD_DOMAIN_NAME": "d", "HUAWEICLOUD_IAM_ENDPOINT": "https://u:p4ss@iam.example"},
     "HUAWEICLOUD_IAM_ENDPOINT"),
    ({"SWR_AUTH_TOKEN": "tok-12345"}, "healthcheck-url"),
])
def test_credentials_in_iam_and_healthcheck_urls_are_refused(env: dict[str, str],
                                                             option: str) -> None:
    flags = {"healthcheck_url": "https://u:p4ss@hc.example/ping"} if option.startswith(
        "health") else {}
    with pytest.raises(ConfigError) as exc:
        build_settings(flags, env, {}, need_credentials=True)
    assert str(exc.value).startswith(f"{option} must not contain a user name or password "
                                     "(https://***@")
    assert "p4ss" not in str(exc.value)


def test_unparseable_endpoint_is_a_usage_error(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    code, _, err = cli(["sync", "--no-auth", "--endpoint", "http://[::1", "--db",
                        str(tmp_path / "swr.db")], capsys)
    assert (code, err) == (2, "swr-etl: error: endpoint is not a valid URL: 'http://[::1'\n")


PASSWORD = Credentials(kind="password", username="u", password="p", domain_name="d",
                       iam_endpoint="http://iam.example.com")


@pytest.mark.parametrize("creds,endpoint,expected", [
    (Credentials(kind="token", token="t"), "http://swr.example.com",
     ["the token (SWR_AUTH_TOKEN) would go over plain http to swr.example.com: anyone on the "
      "network path can read it; use https"]),
    (Credentials(kind="aksk", ak="a", sk="s"), "http://10.1.2.3:8080",
     ["AK/SK-signed requests (replayable, the AK visible) would go over plain http to "
      "10.1.2.3: anyone on the network path can read it; use https"]),
    (PASSWORD, "https://swr.example.com",
     ["the IAM password (HUAWEICLOUD_PASSWORD) would go over plain http to iam.example.com: "
      "anyone on the network path can read it; use https"]),
    (PASSWORD, "http://swr.example.com",
     ["the IAM token would go over plain http to swr.example.com: anyone on the network path "
      "can read it; use https",
      "the IAM password (HUAWEICLOUD_PASSWORD) would go over plain http to iam.example.com: "
      "anyone on the network path can read it; use https"]),
    (Credentials(kind="token", token="t"), "https://swr.example.com", []),
    (Credentials(kind="token", token="t"), "http://127.0.0.1:8080", []),
    (Credentials(kind="token", token="t"), "http://127.8.9.10", []),
    (Credentials(kind="token", token="t"), "http://[::1]:8080", []),
    (Credentials(kind="token", token="t"), "http://localhost:8080", []),
    (Credentials(), "http://swr.example.com", []),
])
def test_plaintext_warnings(creds: Credentials, endpoint: str, expected: list[str]) -> None:
    assert warnings_for(Settings(endpoint=endpoint, credentials=creds)) == expected


def test_sync_warns_once_before_sending_a_token_over_http(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        scan_queue: list[FakeScan]) -> None:
    monkeypatch.setenv("SWR_AUTH_TOKEN", "tok-abcdef")
    scan_queue.append(FakeScan(rows(range(1, 4))))
    code, out, err = cli(["sync", "--endpoint", "http://swr.example.com", "--db",
                          str(tmp_path / "swr.db")], capsys)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if " WARNING " in line]
    assert len(warnings) == 1
    assert warnings[0].endswith(" WARNING the token (SWR_AUTH_TOKEN) would go over plain http to "
                                "swr.example.com: anyone on the network path can read it; use "
                                "https")
    assert "tok-abcdef" not in err
    assert q(tmp_path / "swr.db", "SELECT endpoint FROM runs") == [("http://swr.example.com",)]


# ========================================================================== 3. terminal output


def no_raw_controls(text: str) -> bool:
    return RAW_CONTROL.search(text) is None


def test_server_escape_sequences_never_reach_the_terminal(
        simulator: Callable[..., Any], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    sim = simulator(images=30, scenario={"faults": [
        {"at": 1, "kind": "status", "status": 400, "code": "SVCSTG.SWR.4000001",
         "message": HOSTILE}]})
    db = str(tmp_path / "swr.db")
    code, out, err = cli(["sync", "--no-auth", "--endpoint", sim.url, "--db", db], capsys)
    assert code == 4
    final = err.splitlines()[-1]
    assert final.startswith("swr-etl: error: the API rejected the request: ")
    assert "pwned" in final and "31m" in final  # the message is there, inert
    assert no_raw_controls(err) and no_raw_controls(out)
    # the ledger keeps what the server said; every view of it for a terminal escapes it
    assert "\x9b31m" in q(Path(db), "SELECT error FROM runs")[0][0]  # a raw C1 CSI
    for args in (["status", "--db", db], ["runs", "--db", db], ["runs", "--db", db, "--json"]):
        code, out, err = cli(args, capsys)
        assert code in (0, 8), err
        assert no_raw_controls(out) and no_raw_controls(err), args
        assert "the API rejected th" in out  # (the runs table cuts a long error in the middle)


def test_runs_table_and_status_escape_every_stored_text(tmp_path: Path) -> None:
    db = tmp_path / "swr.db"
    conn = new_db(db)
    conn.execute("INSERT INTO runs (run_id, started_at, finished_at, status, error) VALUES "
                 "(1, '2026-11-20T03:00:00Z\x1b[2J', '2026-11-20T03:00:01\x9dZ', 'failed', ?)",
                 (HOSTILE,))
    conn.close()
    table = format_runs_table(list_runs(db))
    assert no_raw_controls(table)
    assert "2026-11-20T03:00:00Z\\x1b[2J" in table and "bad \\x1b]0;pwned\\x07" in table
    ok, message, code = freshness(db, now=datetime(2026, 11, 21, tzinfo=timezone.utc))
    assert (ok, code) == (False, 8)
    assert no_raw_controls(message)
    assert message.splitlines()[1].startswith(
        "last run:     1 failed at 2026-11-20T03:00:01\\x9dZ: bad \\x1b]0;pwned\\x07 ")


def test_final_error_line_escapes_controls_and_masks_secrets() -> None:
    etl.logs.register_secrets(["s3cr3t-token-value"])
    etl.logs.remember_format("text")
    assert etl.logs.error_line("boom \x1b]0;x\x07 s3cr3t-token-value \x85", 4) == (
        "swr-etl: error: boom \\x1b]0;x\\x07 *** \\x85")


# ==================================================================== 4. one exit-code rule


@pytest.mark.parametrize("exc,code", [
    (Terminated("terminated by signal SIGTERM"), 143),
    (KeyboardInterrupt(), 130),
    (UpstreamError("down"), 4),
    (QualityError("too many"), 7),
    (EtlError("custom", exit_code=3), 3),
    (ZeroDivisionError(), 1),
])
def test_exit_code_of(exc: BaseException, code: int) -> None:
    assert exit_code_of(exc) == code


def test_ops_uses_the_same_rule() -> None:
    import etl.run.hooks

    assert etl.run.hooks.exit_code_of is exit_code_of and etl.run.hooks.Terminated is Terminated


def test_sigterm_is_143_in_the_ledger_the_metrics_and_the_process(
        simulator: Callable[..., Any], tmp_path: Path) -> None:
    sim = simulator(images=400, scenario={"latency_ms": 150})
    db, metrics = tmp_path / "swr.db", tmp_path / "swr_etl.prom"
    proc = subprocess.Popen(
        [sys.executable, "-m", "etl", "sync", "--no-auth", "--endpoint", sim.url, "--db",
         str(db), "--page-size", "10", "--concurrency", "1", "--metrics-file", str(metrics)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until the run row is there and pages flow
            if len([r for r in sim.requests if "repos" in r.path]) >= 2:
                break
            try:  # poll, blocking briefly instead of spinning on a shared CPU
                proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                continue
            raise AssertionError(f"the sync ended early: {proc.communicate()}")
        else:
            raise AssertionError("the sync never got going")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        # The request in flight at the kill ends in a BrokenPipe the server prints to stderr:
        # let that happen now, not inside a later test's captured stderr.
        sim.close()
        for thread in threading.enumerate():
            if "process_request_thread" in thread.name:
                thread.join(timeout=30)
    assert proc.returncode == 143, err
    assert err.splitlines()[-1] == "swr-etl: error: terminated by signal SIGTERM"
    assert q(db, "SELECT status, exit_code, error FROM runs") == [
        ("failed", 143, "terminated by signal SIGTERM")]
    status = {s.name: s.value for f in text_string_to_metric_families(metrics.read_text())
              for s in f.samples}["swr_etl_last_run_status"]
    assert status == 143.0
    assert q(db, "SELECT count(*) FROM images") == [(0,)]


# ============================================================== 5. every failure is recorded


SETTINGS = dict(endpoint="http://127.0.0.1:9", allow_anonymous=True)


@pytest.mark.parametrize("scan,code,error", [
    # the API fails, and the figures to record hold a total beyond SQLite INTEGER
    (lambda: FakeScan(rows(range(1, 4)), fail=UpstreamError("the API went away"), total=2**70), 4,
     "the API went away"),
    # a bug in the middle of a run
    (lambda: FakeScan(rows(range(1, 4)), fail=ZeroDivisionError("division by zero")), 1,
     "internal error: ZeroDivisionError: division by zero at helpers.py:"),
    # the run completes, but writing its figures fails (total beyond SQLite INTEGER)
    (lambda: FakeScan(rows(range(1, 4)), total=2**64), 1,
     "internal error: OverflowError: Python int too large to convert to SQLite INTEGER at "),
    # SIGTERM and Ctrl-C unwinding through the run
    (lambda: FakeScan(rows(range(1, 4)), fail=Terminated("terminated by signal SIGTERM")), 143,
     "terminated by signal SIGTERM"),
    (lambda: FakeScan(rows(range(1, 4)), fail=KeyboardInterrupt()), 130, "interrupted"),
])
def test_every_failure_leaves_the_run_failed_with_its_code(
        tmp_path: Path, scan_queue: list[FakeScan], scan: Callable[[], FakeScan], code: int,
        error: str) -> None:
    scan_queue.append(scan())
    with pytest.raises(BaseException) as exc:
        run_sync(Settings(db=tmp_path / "swr.db", **SETTINGS), now=T0)  # type: ignore[arg-type]
    assert exit_code_of(exc.value) == code
    ((status, exit_code, message, finished, loaded),) = q(
        tmp_path / "swr.db", "SELECT status, exit_code, error, finished_at, rows_loaded FROM runs")
    assert (status, exit_code, finished, loaded) == ("failed", code, T0, 0)
    assert message.startswith(error)
    assert q(tmp_path / "swr.db", "SELECT count(*) FROM images") == [(0,)]


def test_failure_figures_that_fit_are_kept(tmp_path: Path, scan_queue: list[FakeScan]) -> None:
    scan_queue.append(FakeScan(rows(range(1, 4)), fail=UpstreamError("gone"), total=3))
    with pytest.raises(UpstreamError):
        run_sync(Settings(db=tmp_path / "swr.db", **SETTINGS), now=T0)  # type: ignore[arg-type]
    assert q(tmp_path / "swr.db", "SELECT total_reported, requests, pages FROM runs") == [
        (3, 1, 1)]


# ======================================================================== 6. JSON logs


def json_lines(err: str) -> list[dict[str, Any]]:
    """Each stderr line as one JSON object (a line that is none fails the test, shown)."""
    records = []
    for line in err.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON object: {line!r} in {err!r}") from None
    return records


def test_json_mode_failed_run_every_line_is_json(tmp_path: Path, scan_queue: list[FakeScan],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    scan_queue.append(FakeScan(rows(range(1, 4)),
                               fail=UpstreamError("the API went \x1b]0;away\x07")))
    code, _, err = cli(["sync", "--no-auth", "--endpoint", "http://127.0.0.1:9", "--db",
                        str(tmp_path / "swr.db"), "--log-format", "json"], capsys)
    assert code == 4
    records = json_lines(err)
    assert no_raw_controls(err)
    failed = [r for r in records if r["message"].startswith("run 1 failed")]
    assert [(r["level"], r["run_id"]) for r in failed] == [("error", 1)]
    last = records[-1]
    assert {k: last[k] for k in ("level", "event", "message", "exit_code", "logger")} == {
        "level": "error", "event": "error", "message": "the API went \x1b]0;away\x07",
        "exit_code": 4, "logger": "etl.cli"}


def test_json_mode_partial_run_logs_a_warning(tmp_path: Path, scan_queue: list[FakeScan],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    scan_queue.append(FakeScan(rows(range(1, 4)), complete=False))
    code, out, err = cli(["sync", "--no-auth", "--endpoint", "http://127.0.0.1:9", "--db",
                          str(tmp_path / "swr.db"), "--log-format", "json"], capsys)
    assert code == 6
    summary = [r for r in json_lines(err) if r["message"].startswith("run 1 partial")]
    assert [r["level"] for r in summary] == ["warning"]


@pytest.mark.parametrize("args", [
    ["--log-format", "json", "sync", "--bogus"],
    ["sync", "--log-format=json", "--page-size", "0"],
    ["sync", "--log-format", "json", "--config", "/dev/zero"],
])
def test_json_mode_usage_errors_are_json_too(args: list[str],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(args, capsys)
    assert code == 2
    (record,) = json_lines(err)
    assert (record["level"], record["exit_code"], record["event"]) == ("error", 2, "error")


def test_text_mode_keeps_the_plain_final_line(tmp_path: Path, scan_queue: list[FakeScan],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    scan_queue.append(FakeScan(rows(range(1, 4)), fail=UpstreamError("gone")))
    code, _, err = cli(["sync", "--no-auth", "--endpoint", "http://127.0.0.1:9", "--db",
                        str(tmp_path / "swr.db")], capsys)
    assert code == 4
    lines = err.splitlines()
    assert lines[-1] == "swr-etl: error: gone"
    assert lines[-2].endswith(" ERROR   [run 1] run 1 failed: gone")


# ===================================================================== 7. clock skew in status


@pytest.mark.parametrize("ahead,fresh,line", [
    (timedelta(minutes=2), True, "last success: {when} (run 1), age 0 min"),
    (timedelta(hours=30), False, "last success: {when} (run 1), 30.0 h in the future "
                                 "(clock skew?)"),
    (timedelta(days=400), False, "last success: {when} (run 1), 400.0 days in the future "
                                 "(clock skew?)"),
])
def test_a_success_in_the_future_is_not_fresh(tmp_path: Path, ahead: timedelta, fresh: bool,
                                              line: str) -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
    when = (now + ahead).strftime("%Y-%m-%dT%H:%M:%SZ")
    conn = new_db(tmp_path / "swr.db")
    conn.execute("INSERT INTO runs (run_id, started_at, finished_at, status) VALUES "
                 "(1, ?, ?, 'success')", (when, when))
    conn.close()
    ok, message, code = freshness(tmp_path / "swr.db", max_age_hours=26, now=now)
    assert (ok, code) == (fresh, 0 if fresh else 8)
    lines = message.splitlines()
    assert lines[0] == line.format(when=when)
    assert lines[-1] == ("status:       fresh (max age 26 h)" if fresh else
                         "status:       STALE: last success is stamped in the future; check "
                         "the clocks of this host and of the host running sync")


@pytest.mark.parametrize("stop,code,message", [
    (Terminated("terminated by signal SIGTERM"), 143, "terminated by signal SIGTERM"),
    (KeyboardInterrupt(), 130, "interrupted"),
])
def test_json_mode_stopped_run_every_line_is_json(
        tmp_path: Path, scan_queue: list[FakeScan], capsys: pytest.CaptureFixture[str],
        stop: BaseException, code: int, message: str) -> None:
    scan_queue.append(FakeScan(rows(range(1, 4)), fail=stop))
    got, _, err = cli(["sync", "--no-auth", "--endpoint", "http://127.0.0.1:9", "--db",
                       str(tmp_path / "swr.db"), "--log-format", "json"], capsys)
    assert got == code
    last = json_lines(err)[-1]  # no blank line either
    assert (last["message"], last["exit_code"], last["level"]) == (message, code, "error")
