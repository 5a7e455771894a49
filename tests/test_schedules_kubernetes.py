"""The Kubernetes recipe in schedules/kubernetes/: the base CronJob and its kustomize variants
(bucket: exports to S3; postgres: the database on a PostgreSQL server, no volume) parse, build
and say what docs/operators/scheduling.md and docs/operators/postgres.md promise.

No cluster runs here. The variants are built by a small model of kustomize's strategic merge (the
fields they touch), checked against the real ``kustomize build`` (or ``kubectl kustomize``)
wherever one is installed."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

SCHEDULES = Path(__file__).resolve().parent.parent / "schedules"
KUBE = SCHEDULES / "kubernetes"
VARIANTS = ["base", "bucket", "postgres"]
CRONJOB = ("CronJob", "swr-etl")
# Variables whose values are credentials or capabilities: they must come from a Secret.
SECRET_ENV = {"HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK", "HUAWEICLOUD_SDK_PROJECT_ID",
              "SWR_ETL_HEALTHCHECK_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
              "PGPASSWORD"}


# --------------------------------------------------------------------------------- Kubernetes


def manifests() -> dict[str, dict[str, Any]]:
    docs = list(yaml.safe_load_all((KUBE / "base" / "cronjob.yaml").read_text()))
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




# -------------------------------------------------------------------- the variants, as built

# kustomize's strategic-merge keys for the lists the variants patch (from the Kubernetes API's
# patchMergeKey): an item replaces, extends or ($patch: delete) removes the item with its key.
MERGE_KEYS = {"containers": "name", "env": "name", "volumes": "name",
              "volumeMounts": "mountPath"}


def strategic_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """What kustomize makes of a patch, for the fields the variants touch: maps merged, lists of
    MERGE_KEYS merged item by item, any other list (args) replaced whole."""
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = strategic_merge(merged[key], value)
        elif key in MERGE_KEYS and isinstance(merged.get(key), list):
            merged[key] = merge_list(merged[key], value, MERGE_KEYS[key])
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def merge_list(items: list[Any], patch: list[Any], key: str) -> list[Any]:
    by_key = {item[key]: item for item in items}
    for item in patch:
        if item.get("$patch") == "delete":
            del by_key[item[key]]  # KeyError: a delete that finds nothing is a broken patch
        else:
            by_key[item[key]] = strategic_merge(by_key.get(item[key], {}), item)
    return list(by_key.values())


def build(folder: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The objects a kustomization makes, by (kind, name): its resources (files, or other
    kustomizations' folders), then its patches in order."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    docs: dict[tuple[str, str], dict[str, Any]] = {}
    for resource in kustomization.get("resources", []):
        path = (folder / resource).resolve()
        if path.is_dir():
            docs.update(build(path))
        else:
            docs.update({(d["kind"], d["metadata"]["name"]): d
                         for d in yaml.safe_load_all(path.read_text()) if d})
    for entry in kustomization.get("patches", []):
        patch = yaml.safe_load((folder / entry["path"]).read_text())
        target = (patch["kind"], patch["metadata"]["name"])
        assert target in docs, f"{folder.name}/{entry['path']} patches nothing"
        if patch.get("$patch") == "delete":
            del docs[target]
        else:
            docs[target] = strategic_merge(docs[target], patch)
    return docs


def pod_of(docs: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    pod: dict[str, Any] = docs[CRONJOB]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return pod


def test_every_variant_folder_is_checked() -> None:
    assert sorted(p.parent.name for p in KUBE.glob("*/kustomization.yaml")) == sorted(VARIANTS)


def test_no_variant_lives_inside_the_folder_it_builds_on() -> None:
    """kustomize refuses a base whose folder contains the overlay that uses it ("cycle
    detected"), and a resource file outside the kustomization's own folder ("security; file …
    is not in or below …"): `kubectl apply -k` would fail before sending anything."""
    for variant in VARIANTS:
        folder = KUBE / variant
        for resource in yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"]:
            path = (folder / resource).resolve()
            if path.is_dir():
                assert (path / "kustomization.yaml").is_file(), (variant, resource)
                assert not folder.is_relative_to(path), (variant, resource)
            else:
                assert path.is_relative_to(folder), (variant, resource)


KUSTOMIZE = (["kustomize", "build"] if shutil.which("kustomize")
             else ["kubectl", "kustomize"] if shutil.which("kubectl") else None)


def normal(value: Any) -> Any:
    """``value`` with the merge-keyed lists sorted: kustomize puts an added item first, the
    model last, and the order of env entries or volumes means nothing."""
    if isinstance(value, dict):
        return {k: normal(v) if k not in MERGE_KEYS else
                sorted((normal(i) for i in v), key=lambda i: i[MERGE_KEYS[k]])
                for k, v in value.items()}
    return [normal(v) for v in value] if isinstance(value, list) else value


@pytest.mark.skipif(KUSTOMIZE is None, reason="neither kustomize nor kubectl is installed")
@pytest.mark.parametrize("variant", VARIANTS)
def test_kustomize_builds_each_variant_as_the_model_does(variant: str) -> None:
    assert KUSTOMIZE is not None
    out = subprocess.run([*KUSTOMIZE, str(KUBE / variant)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    real = {(d["kind"], d["metadata"]["name"]): normal(d)
            for d in yaml.safe_load_all(out.stdout) if d}
    assert real == {key: normal(doc) for key, doc in build(KUBE / variant).items()}


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_keeps_the_base_job_and_its_safeguards(variant: str) -> None:
    """One run at a time, the same retry decisions, the same locked-down pod, the healthcheck
    pings: a variant changes where data goes, nothing else."""
    base, built = build(KUBE / "base")[CRONJOB], build(KUBE / variant)[CRONJOB]
    assert built["spec"]["concurrencyPolicy"] == "Forbid"
    for key in ("schedule", "timeZone", "startingDeadlineSeconds"):
        assert built["spec"][key] == base["spec"][key]
    job, base_job = built["spec"]["jobTemplate"]["spec"], base["spec"]["jobTemplate"]["spec"]
    assert job["podFailurePolicy"] == base_job["podFailurePolicy"]
    pod, base_pod = pod_of(build(KUBE / variant)), pod_of(build(KUBE / "base"))
    assert pod["securityContext"] == base_pod["securityContext"]
    (container,), (base_container,) = pod["containers"], base_pod["containers"]
    for key in ("image", "securityContext", "resources"):
        assert container[key] == base_container[key]
    args = container["args"]
    assert args[0] == "sync"
    assert args[args.index("--healthcheck-url") + 1] == "$(SWR_ETL_HEALTHCHECK_URL)"
    assert args[args.index("--log-format") + 1] == "json"


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_takes_credentials_only_from_secrets(variant: str) -> None:
    (container,) = pod_of(build(KUBE / variant))["containers"]
    for entry in container["env"]:
        if entry["name"] in SECRET_ENV:
            assert set(entry) == {"name", "valueFrom"}, entry["name"]
            assert set(entry["valueFrom"]) == {"secretKeyRef"}, entry["name"]
        else:
            assert "://" not in entry["value"] or urlsplit(entry["value"]).password is None
    assert not any("@" in arg or "PASSWORD" in arg for arg in container["args"])


def test_the_bucket_variant_exports_to_s3_with_credentials_from_a_secret() -> None:
    from etl.config.urls import check_s3_url

    base_kustomization = yaml.safe_load((KUBE / "base" / "kustomization.yaml").read_text())
    assert base_kustomization["resources"] == ["cronjob.yaml"]
    kustomization = yaml.safe_load((KUBE / "bucket" / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["../base"]
    assert kustomization["patches"] == [{"path": "export-to-bucket.yaml"}]
    built = build(KUBE / "bucket")
    assert set(built) == set(build(KUBE / "base"))  # the PVC stays: the database is on it
    (container,) = pod_of(built)["containers"]
    (base_container,) = pod_of(build(KUBE / "base"))["containers"]
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
    patch_text = (KUBE / "bucket" / "export-to-bucket.yaml").read_text()
    assert "volumes" not in patch_text and "volumeMounts" not in patch_text
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/data", "/tmp"}


def test_the_postgres_variant_has_no_volume_claim() -> None:
    built = build(KUBE / "postgres")
    assert set(built) == {CRONJOB}  # the base's PersistentVolumeClaim is not created
    pod = pod_of(built)
    assert not any("persistentVolumeClaim" in volume for volume in pod["volumes"])
    (container,) = pod["containers"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert set(mounts) == {"/tmp", "/etc/swr-etl/postgres"}
    assert {m["name"] for m in mounts.values()} == {v["name"] for v in pod["volumes"]}
    assert mounts["/etc/swr-etl/postgres"]["readOnly"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/etc/swr-etl/postgres"]["name"]] == {
        "name": "postgres-ca", "configMap": {"name": "swr-etl-postgres-ca"}}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]


def test_the_postgres_variant_names_its_database_without_a_password() -> None:
    from psycopg.conninfo import conninfo_to_dict

    from etl.store.dialect import is_postgres_url, pg_target

    (container,) = pod_of(build(KUBE / "postgres"))["containers"]
    (bucket_container,) = pod_of(build(KUBE / "bucket"))["containers"]
    # the bucket variant's arguments, export included, without --db: SWR_ETL_DB names it
    bucket_args = bucket_container["args"]
    at = bucket_args.index("--db")
    assert container["args"] == bucket_args[:at] + bucket_args[at + 2:]
    env = {e["name"]: e for e in container["env"]}
    assert set(env) >= {e["name"] for e in bucket_container["env"]}  # nothing of bucket's lost
    url = env["SWR_ETL_DB"]["value"]
    parts = urlsplit(url)
    assert is_postgres_url(url) and (parts.username, parts.password) == ("swr_etl", None)
    conninfo, schema = pg_target(url)
    assert schema == "swr_etl"
    assert "password" not in conninfo_to_dict(conninfo)  # libpq accepts the rest as it is
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "swr-etl-postgres",
                                                             "key": "PGPASSWORD"}
    # TLS that checks the server's name, against the CA the ConfigMap mounts
    assert env["PGSSLMODE"]["value"] == "verify-full"
    assert env["PGSSLROOTCERT"]["value"] == "/etc/swr-etl/postgres/ca.crt"
    comments = (KUBE / "postgres" / "kustomization.yaml").read_text()
    assert "create configmap swr-etl-postgres-ca --from-file=ca.crt=" in comments
    assert "create secret generic swr-etl-postgres --from-literal=PGPASSWORD=" in comments
