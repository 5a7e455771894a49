"""No credential ever leaks: not to stdout/stderr at debug level (text or JSON), the database,
exports, reports, the metrics file, nor the recorded cassettes.

Every secret is a marker containing ``MARKER-<random>``. The commands run through the CLI
(``etl.cli.app.main``; a few as real ``python -m etl`` subprocesses) at ``-v`` in both log formats,
the syncs against the built-in simulator in the matching auth mode (and once more with wrong
credentials); then every byte they produced is searched for the markers and for the IAM tokens
the simulator issued.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import logging_restored

ROOT = Path(__file__).resolve().parent.parent
MARK = uuid.uuid4().hex[:10]
NEEDLE = f"MARKER-{MARK}"  # every secret below contains it, nothing else does


def secret(kind: str) -> str:
    return f"SECRET-{kind}-{NEEDLE}"


TOKEN, AK, SK, PASSWORD = secret("TOKEN"), secret("AK"), secret("SK"), secret("PASSWORD")
# An s3:// export's credentials, read by the AWS SDK from the standard variables.
AWS_ENV = {"AWS_ACCESS_KEY_ID": secret("AWSKEYID"), "AWS_SECRET_ACCESS_KEY": secret("AWSSECRET"),
           "AWS_SESSION_TOKEN": secret("AWSSESSION"), "AWS_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true"}
USER, DOMAIN = "etl-reader", "acme-account"

# command -> the library function it needs (not landed yet => that part is skipped, by name)
NEEDS: dict[str, tuple[str, str]] = {
    "sync": ("etl.run.pipeline", "run_sync"),
    "export": ("etl.publish.export", "export_snapshots"),
    "report": ("etl.publish.report", "write_report"),
    "runs": ("etl.store.ledger", "list_runs"),
    "status": ("etl.store.ledger", "freshness"),
    "replay": ("etl.run.pipeline", "replay_run"),
}
MODES = ("token", "aksk", "password")
FORMATS = ("text", "json")


def missing(command: str) -> str | None:
    """Why ``command`` cannot run yet, or None."""
    module, name = NEEDS[command]
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("etl"):
            return f"`swr-etl {command}` needs {module}.{name}, and {module} does not exist yet"
        raise
    if not hasattr(mod, name):
        return f"`swr-etl {command}` needs {module}.{name}, which does not exist yet"
    return None


def simulator_missing() -> str | None:
    try:
        from etl.simulator import Simulator  # noqa: F401
    except ImportError as exc:
        return f"etl.simulator.Simulator is not importable yet ({exc})"
    return None


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SWR_", "HUAWEICLOUD_"))}
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def creds_env(mode: str, *, wrong: bool = False) -> dict[str, str]:
    bad = "-WRONG" if wrong else ""
    if mode == "token":
        return {"SWR_AUTH_TOKEN": TOKEN + bad}
    if mode == "aksk":
        return {"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK + bad}
    return {"HUAWEICLOUD_USERNAME": USER, "HUAWEICLOUD_PASSWORD": PASSWORD + bad,
            "HUAWEICLOUD_DOMAIN_NAME": DOMAIN}


def scenario(mode: str) -> dict[str, Any]:
    if mode == "token":
        return {"auth": "token", "tokens": [TOKEN]}
    if mode == "aksk":
        return {"auth": "aksk", "aksk": {AK: SK}}
    return {"auth": "iam", "iam_users": [{"domain": DOMAIN, "name": USER, "password": PASSWORD}]}


@dataclass
class Transcript:
    work: Path
    runs: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    expected: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # command -> precise reason
    iam_tokens: list[str] = field(default_factory=list)  # tokens the simulator issued
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per command (printed)
    objects: dict[str, bytes] = field(default_factory=dict)  # what the s3:// exports stored


# Runs that also go through a real interpreter (``python -m etl``): the rest run in-process
# through ``etl.cli.app.main`` (same code path, minus ~1-5 s of imports per run on a loaded CI box).
SUBPROCESS = {"sync-password-json", "sync-token-text-wrong"}


def run(t: Transcript, label: str, args: list[str], env: dict[str, str], expect: int) -> None:
    t.expected[label] = expect
    started = time.monotonic()
    if label in SUBPROCESS:
        t.runs[label] = subprocess.run([sys.executable, "-m", "etl", *args], capture_output=True,
                                       text=True, env=env, timeout=120, cwd=t.work)
    else:
        t.runs[label] = run_in_process(args, env)
    t.seconds[label] = time.monotonic() - started


def run_in_process(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``etl.cli.app.main(args)`` with exactly ``env``, its stdout/stderr captured."""
    import contextlib
    import io

    from etl import logs
    from etl.cli.app import main

    saved_env = dict(os.environ)
    # Forget secrets registered by earlier runs: each run must mask what it knows by itself.
    logs._SECRETS.clear()
    out, err = io.StringIO(), io.StringIO()
    code: Any = 0
    try:
        os.environ.clear()
        os.environ.update(env)
        with logging_restored(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(args)
            except SystemExit as exc:
                code = exc.code
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(args, int(code or 0), out.getvalue(), err.getvalue())


def object_store(request: pytest.FixtureRequest, t: Transcript) -> Any:
    """The test S3 server, or None (and the reason in ``t.skipped``) where it cannot start."""
    try:
        return request.getfixturevalue("s3_server")
    except pytest.skip.Exception as exc:
        t.skipped["export-s3"] = f"no S3 server for the s3:// exports: {exc}"
        return None


def aws_env(t: Transcript, server: Any) -> dict[str, str]:
    """The AWS variables of an s3:// export to ``server``; no AWS config file is read."""
    absent = t.work / "no-aws-config"
    return {**AWS_ENV, "SWR_ETL_S3_ENDPOINT": server.endpoint_url,
            "AWS_CONFIG_FILE": str(absent / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(absent / "credentials")}


@pytest.fixture(scope="module")
def transcript(tmp_path_factory: pytest.TempPathFactory,
               request: pytest.FixtureRequest) -> Iterator[Transcript]:
    t = Transcript(work=tmp_path_factory.mktemp("secrets"))
    s3 = object_store(request, t)
    bucket = f"secrets-{MARK.lower()}"
    if s3 is not None:
        s3.create_bucket(bucket)
    db = t.work / "swr.db"
    (t.work / "metrics").mkdir()
    for command in NEEDS:
        reason = missing(command)
        if reason:
            t.skipped[command] = reason
    sim_reason = simulator_missing()
    if sim_reason and "sync" not in t.skipped:
        t.skipped["sync"] = f"`swr-etl sync` needs the simulator: {sim_reason}"
    all_creds = {**creds_env("aksk"), **creds_env("password"), **creds_env("token"),
                 "HUAWEICLOUD_SDK_PROJECT_ID": "proj-1"}

    if "sync" not in t.skipped:
        from etl.simulator import Simulator

        with Simulator(images=25, seed=7, scenario=scenario("token")) as sim:
            for fmt in FORMATS:
                for mode in MODES:
                    sim.set_scenario(scenario(mode))
                    common = ["sync", "-v", "--log-format", fmt, "--endpoint", sim.url,
                              "--db", str(db), "--page-size", "10", "--max-attempts", "2",
                              "--metrics-file", str(t.work / "metrics" / f"{fmt}-{mode}.prom")]
                    env = {**clean_env(), "HUAWEICLOUD_IAM_ENDPOINT": sim.url}
                    ok_args = [*common, "--export-dir", str(t.work / "sync-exports"),
                               "--format", "csv"]
                    run(t, f"sync-{mode}-{fmt}", ok_args, {**env, **creds_env(mode)}, 0)
                    run(t, f"sync-{mode}-{fmt}-wrong", common,
                        {**env, **creds_env(mode, wrong=True)}, 3)
                    if mode == "password":  # the IAM tokens the simulator handed out
                        t.iam_tokens += [tok for tok in sim.auth._tokens if tok != TOKEN]
            if s3 is not None:  # a sync exporting to a bucket, at debug in both formats
                for fmt in FORMATS:
                    sim.set_scenario(scenario("token"))
                    run(t, f"sync-s3-{fmt}", [
                        "sync", "-v", "--log-format", fmt, "--endpoint", sim.url, "--db",
                        str(db), "--export-dir", f"s3://{bucket}/sync-{fmt}"],
                        {**clean_env(), **creds_env("token"), **aws_env(t, s3)}, 0)
            # (asserted in test_syncs_really_ran_at_debug_in_both_formats)

    if "sync" in t.skipped:  # the read-side commands need the database the syncs write
        for command in ("export", "report", "runs", "status", "replay"):
            t.skipped.setdefault(command, f"`swr-etl {command}` needs the database written by "
                                          f"the syncs, which were skipped: {t.skipped['sync']}")
    for fmt in FORMATS:
        env = {**clean_env(), **all_creds}
        base = ["-v", "--log-format", fmt, "--db", str(db)]
        if "export" not in t.skipped:
            run(t, f"export-{fmt}", ["export", *base, "--out", str(t.work / "exports"),
                                     "--format", "parquet" if fmt == "text" else "csv"], env, 0)
        if "export" not in t.skipped and s3 is not None:
            s3_env = {**env, **aws_env(t, s3)}
            run(t, f"export-s3-{fmt}", ["export", *base, "--out", f"s3://{bucket}/x-{fmt}"],
                s3_env, 0)
            # a failing store: its error line must not quote a credential either
            run(t, f"export-s3-missing-{fmt}", ["export", *base, "--out",
                                                f"s3://{bucket}-gone/x"], s3_env, 2)
        if "report" not in t.skipped:
            for ext in ("html", "json", "md"):
                run(t, f"report-{ext}-{fmt}",
                    ["report", *base, "--out", str(t.work / "reports" / f"{fmt}.{ext}")], env, 0)
        if "runs" not in t.skipped:
            run(t, f"runs-{fmt}", ["runs", *base, "--json"], env, 0)
            run(t, f"runs-table-{fmt}", ["runs", *base], env, 0)
        if "status" not in t.skipped:
            run(t, f"status-{fmt}", ["status", *base], env, 0)
        if "replay" not in t.skipped:
            run(t, f"replay-{fmt}", ["replay", "1", *base], env, 0)
    print("\n" + "\n".join(f"{sec:6.2f} s  {label}" for label, sec in t.seconds.items()))
    if s3 is not None:
        client = s3.client()
        listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        t.objects = {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
                     for o in listed}
        s3.delete_bucket(bucket)
    yield t


def _labels(t: Transcript, command: str) -> list[str]:
    return [label for label in t.runs if label.split("-", 1)[0] == command]


@pytest.mark.parametrize("command", list(NEEDS))
def test_command_output_never_shows_a_secret(transcript: Transcript, command: str) -> None:
    if command in transcript.skipped:
        pytest.skip(transcript.skipped[command])
    labels = _labels(transcript, command)
    assert labels, f"no run of {command} recorded"
    for label in labels:
        out = transcript.runs[label]
        assert out.returncode == transcript.expected[label], (label, out.stderr[-2000:])
        for stream in (out.stdout, out.stderr):
            assert NEEDLE not in stream, (label, stream)
            for tok in transcript.iam_tokens:
                assert tok not in stream, (label, "IAM token leaked")
        assert "Traceback" not in out.stderr, (label, out.stderr)


def test_syncs_really_ran_at_debug_in_both_formats(transcript: Transcript) -> None:
    if "sync" in transcript.skipped:
        pytest.skip(transcript.skipped["sync"])
    import json

    assert transcript.iam_tokens, "the IAM syncs obtained no token: nothing to look for"
    for mode in MODES:
        text = transcript.runs[f"sync-{mode}-text"].stderr
        assert " DEBUG " in text, (mode, text[-2000:])
        lines = [ln for ln in transcript.runs[f"sync-{mode}-json"].stderr.splitlines() if ln]
        levels = {json.loads(ln)["level"] for ln in lines}
        assert "debug" in levels, (mode, lines[-5:])
        # the wrong-credential run ends with one error line, exit 3 (checked above)
        wrong = transcript.runs[f"sync-{mode}-text-wrong"].stderr.strip().splitlines()[-1]
        assert wrong.startswith("swr-etl: error: "), wrong
        if mode == "password":
            assert ("IAM refused the login (HTTP 401) for credentials from "
                    "HUAWEICLOUD_USERNAME/HUAWEICLOUD_PASSWORD/HUAWEICLOUD_DOMAIN_NAME") in wrong
        else:
            assert "authentication failed" in wrong, wrong


def test_no_secret_in_any_file_written(transcript: Transcript) -> None:
    files = [p for p in transcript.work.rglob("*") if p.is_file()]
    if "sync" not in transcript.skipped:
        db = transcript.work / "swr.db"
        assert db in files
        assert (transcript.work / "metrics" / "json-aksk.prom").exists()
    needles = [NEEDLE.encode(), *[tok.encode() for tok in transcript.iam_tokens]]
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"secret found in {path.relative_to(transcript.work)}"
    # the database stores raw pages compressed: look inside the compressed blobs too
    if "sync" not in transcript.skipped:
        _check_db_blobs(transcript.work / "swr.db", needles)


def _check_db_blobs(db: Path, needles: list[bytes]) -> None:
    import sqlite3
    import zlib

    conn = sqlite3.connect(db)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    data = value if isinstance(value, bytes) else str(value).encode()
                    if isinstance(value, bytes):
                        try:
                            data = data + zlib.decompress(value, zlib.MAX_WBITS | 32)
                        except zlib.error:
                            pass
                    for needle in needles:
                        assert needle not in data, f"secret found in table {table}"
    finally:
        conn.close()


def test_cassettes_hold_no_credentials() -> None:
    """Recorded cassettes: auth headers filtered, no login body, no marker-like secrets."""
    cassettes = sorted((ROOT / "cassettes").rglob("*.y*ml"))
    if not cassettes:
        pytest.skip("cassettes/ holds no recorded cassette yet (nothing to check)")
    import yaml

    sensitive = {"x-auth-token", "authorization", "x-subject-token"}
    for path in cassettes:
        text = path.read_text(encoding="utf-8")
        assert "MARKER" not in text, path
        data = yaml.safe_load(text) or {}
        for inter in data.get("interactions", []):
            req, resp = inter.get("request", {}), inter.get("response", {})
            for headers in (req.get("headers") or {}, resp.get("headers") or {}):
                for key, values in headers.items():
                    if key.lower() in sensitive:
                        for v in values if isinstance(values, list) else [values]:
                            assert "Signature=" not in str(v) and len(str(v)) <= 16, (
                                f"{path.name}: unfiltered {key} header")
            body = str(req.get("body") or "")
            assert '"password"' not in body, f"{path.name}: an IAM login body was recorded"


def test_settings_reprs_mask_every_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from etl.config.settings import build_settings, credentials_from_env

    for mode in MODES:
        env = {**creds_env(mode), "HUAWEICLOUD_SDK_PROJECT_ID": "proj-1"}
        settings = build_settings({}, env, {})
        assert settings.credentials.kind == mode
        for text in (repr(settings), str(settings), repr(credentials_from_env(env)),
                     f"{settings!r:}"):
            assert NEEDLE not in text, text


def test_no_secret_in_any_object_stored(transcript: Transcript) -> None:
    """The s3:// exports (by ``export`` and by ``sync``) hold no credential of any kind."""
    if "export-s3" in transcript.skipped:
        pytest.skip(transcript.skipped["export-s3"])
    keys = sorted(transcript.objects)
    assert [k for k in keys if k.endswith("_manifest.json")] == [
        f"{p}/_manifest.json" for p in ("sync-json", "sync-text", "x-json", "x-text")]
    for key, data in transcript.objects.items():
        assert NEEDLE.encode() not in data, f"secret found in object {key}"
        for tok in transcript.iam_tokens:
            assert tok.encode() not in data, f"IAM token found in object {key}"
