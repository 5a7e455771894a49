"""The CLI shell: global options anywhere, one-line errors, documented exit codes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from etl import __version__
from etl.cli.app import main


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
    assert len(keys) == len(set(keys)) == 28
    params = {p.name: p for p in cli.commands["sync"].params if isinstance(p, click.Option)}
    for spec in SYNC_OPTIONS:
        assert params[spec.name].opts == [f"--{spec.key}"]
        assert params[spec.name].help == help_text(spec)
    out = run(["sync", "--help"])
    assert out.returncode == 0
    shown = re.findall(r"^  (--[a-z-]+)", out.stdout, re.MULTILINE)
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
    (each costs a noticeable part of a second to import)."""
    heavy = ("pandas", "pyarrow", "numpy", "requests", "urllib3", "sqlite_utils", "matplotlib")
    script = ("import sys\nfrom etl.cli.app import main\n"
              "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
              f"print('loaded:', sorted(m for m in {heavy!r} if m in sys.modules), "
              "file=sys.stderr)")
    args = [str(tmp_path / "swr.db") if a == "DB" else a for a in args]
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                         timeout=60)
    assert out.stderr.splitlines()[-1] == "loaded: []", out.stderr
