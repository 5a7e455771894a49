"""The CLI shell: global options anywhere, one-line errors, documented exit codes."""

from __future__ import annotations

import subprocess
import sys

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


def test_missing_credentials_lists_the_three_options(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    for var in ("SWR_AUTH_TOKEN", "HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK",
                "HUAWEICLOUD_USERNAME", "HUAWEICLOUD_PASSWORD", "HUAWEICLOUD_DOMAIN_NAME"):
        monkeypatch.delenv(var, raising=False)
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
