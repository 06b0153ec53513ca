"""Restore drills (components/data/drills.py): per drilled store a canary writer and a drill CronJob that restores
the latest backup into the scratch namespace dr-drills with read-only backup keys, checks and tears it down; alerts
on failed or stale drills and stale backups; the Grafana dashboard; the scratch namespace's isolation; config."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from components.data import drills, postgres
from config.cron import longest_gap_seconds
from tests import validators
from tests.conftest import base_raw, run_raw
from tests.netpol import selects
from tests.stores import NETPOL, SECRET, config_problems, string_data
from tools.mockrun import Run

NS = "dr-drills"
CRONJOB = "kubernetes:batch/v1:CronJob"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"
WEEK, DAY = 7 * 86400, 86400


def in_namespace(run: Run, namespace: str, type_: str | None = None) -> list:
    return [r for r in run.resources if r.inputs.get("metadata", {}).get("namespace") == namespace
            and (type_ is None or r.type == type_)]


def scratch_manifest(run: Run, store: str) -> dict:
    data = run.named("drill-scripts", CONFIGMAP).inputs["data"]
    return yaml.safe_load(data[f"{store}.yaml"])


def env(cronjob) -> dict[str, str]:
    container = cronjob.inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


# --- the PostgreSQL drill ----------------------------------------------------------------------------------
def test_postgres_drill_restores_the_latest_backup_into_a_scratch_cluster_weekly(production):
    job = production.named("drill-postgres", CRONJOB).inputs
    assert job["metadata"]["namespace"] == NS and job["spec"]["schedule"] == "0 4 * * 0"  # weekly by default
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    assert job["spec"]["jobTemplate"]["spec"]["backoffLimit"] == 0  # a failed drill is reported, not retried
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == drills.SERVICE_ACCOUNT
    assert pod["containers"][0]["command"] == ["/bin/bash", "/drill/drill.sh"]
    assert pod["containers"][0]["image"].split(":")[-1] not in ("", "latest")
    variables = env(production.named("drill-postgres", CRONJOB))
    assert variables["MANIFEST"] == "/drill/postgres.yaml" and variables["READY"] == "condition=Ready"
    assert variables["RESOURCE"] == "clusters.postgresql.cnpg.io/drill-postgres"
    assert variables["CANARY_DATABASE"] == postgres.CANARY and variables["MAX_AGE_SECONDS"] == str(26 * 3600)

    scripts = production.named("drill-scripts", CONFIGMAP).inputs["data"]
    assert scripts["drill.sh"] == drills.SCRIPT.read_text()
    cluster = scratch_manifest(production, "postgres")
    validators.validate_kubernetes("kubernetes:postgresql.cnpg.io/v1:Cluster", cluster)  # the CRD's fields only
    spec = cluster["spec"]
    assert cluster["metadata"]["namespace"] == NS and spec["instances"] == 1
    assert spec["bootstrap"] == {"recovery": {"source": "origin"}}
    origin = spec["externalClusters"][0]
    assert origin["name"] == "origin" and origin["plugin"]["name"] == postgres.PLUGIN
    # the production cluster's backups (its serverName folder), through the drills' own ObjectStore
    assert origin["plugin"]["parameters"] == {"barmanObjectName": drills.PG_OBJECT_STORE, "serverName": "postgres"}
    assert "plugins" not in spec and "backup" not in spec  # it never archives: it cannot write to the backups
    assert spec["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}  # its own small resources
    assert spec["storage"]["size"] == "120Gi"  # production's data (100Gi) and WAL (20Gi) volumes together
    assert spec["inheritedMetadata"]["annotations"] == {postgres.VELERO_EXCLUDE: "pgdata"}  # no backup of a copy


def test_drills_read_the_backups_with_the_read_only_pair_never_a_writers(production):
    keys = string_data(production.named("drill-backup-s3", SECRET))
    assert keys == {"ACCESS_KEY_ID": "offline-placeholder-drills-access-key",  # tools/mockrun.py's drills pair
                    "ACCESS_SECRET_KEY": "offline-placeholder-drills-secret-key"}
    store = production.named("drill-postgres-object-store").inputs
    source = production.named("postgres-object-store").inputs["spec"]["configuration"]
    config = store["spec"]["configuration"]
    assert store["metadata"]["namespace"] == NS
    assert (config["destinationPath"], config["endpointURL"]) == (source["destinationPath"], source["endpointURL"])
    assert config["s3Credentials"]["accessKeyId"] == {"name": drills.S3_SECRET, "key": "ACCESS_KEY_ID"}
    assert "retentionPolicy" not in store["spec"]  # it would delete backups
    # no Secret in the scratch namespace holds a writer's key or a store's login
    for secret in in_namespace(production, NS, SECRET):
        values = " ".join(string_data(secret).values())
        assert "-postgres-" not in values and "-velero-" not in values and "-etcd-" not in values, secret.name
    assert [s.name for s in in_namespace(production, NS, SECRET)] == ["drill-backup-s3"]
    # a key that opens the backups never sits inside them
    assert production.named("drill-backup-s3").inputs["metadata"]["labels"]["velero.io/exclude-from-backup"] == "true"


def test_canary_is_written_hourly_by_a_role_that_owns_only_the_canary_database(production):
    job = production.named("drill-canary-postgres", CRONJOB).inputs
    assert job["metadata"]["namespace"] == postgres.NAMESPACE and job["spec"]["schedule"] == drills.CANARY_SCHEDULE
    variables = env(production.named("drill-canary-postgres", CRONJOB))
    assert variables["PGUSER"] == {"secretKeyRef": {"name": postgres.CANARY_SECRET, "key": "username"}}
    assert variables["PGDATABASE"] == postgres.CANARY and variables["PGSSLMODE"] == "verify-full"
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    sql = production.named("drill-canary-postgres", CONFIGMAP).inputs["data"]["canary.sql"]
    assert "INSERT INTO canary" in sql and "DELETE FROM canary" in sql
    roles = {r["name"]: r for r in production.named("postgres-cluster").inputs["spec"]["managed"]["roles"]}
    role = roles[postgres.CANARY]
    assert role["login"] and not (role["superuser"] or role["createdb"] or role["createrole"] or role["replication"])
    assert role["passwordSecret"] == {"name": postgres.CANARY_SECRET}
    database = production.named("postgres-database-drill_canary").inputs["spec"]
    assert (database["name"], database["owner"]) == (postgres.CANARY, postgres.CANARY)
    # the canary is the drills' own: no consumer of the data plane is handed it
    assert postgres.CANARY not in production.outputs["dataPlane"]["postgres"]["endpoint"]["databases"]


# --- isolation ---------------------------------------------------------------------------------------------
def test_scratch_namespace_reaches_only_dns_the_api_and_the_backups(production):
    policies = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in in_namespace(production, NS, NETPOL)}
    assert "default-deny" in policies
    egress = {name for name, spec in policies.items() if "egress" in spec}
    assert egress == {"allow-dns", "allow-same-namespace", "allow-kubernetes-api", "allow-egress-internet"}
    world = policies["allow-egress-internet"]["egress"][0]
    assert [p["port"] for p in world["ports"]] == [443]  # the backups' S3 endpoint
    assert "10.0.0.0/8" in world["to"][0]["ipBlock"]["except"]  # never the cluster's own addresses
    ingress = {name: spec for name, spec in policies.items() if "ingress" in spec and name != "allow-same-namespace"}
    assert list(ingress) == ["allow-from-cnpg-system"]  # the operator runs the scratch cluster, nobody else
    peer = ingress["allow-from-cnpg-system"]["ingress"][0]["from"][0]
    assert selects(peer["podSelector"], dict(postgres.OPERATOR_SELECTOR))
    # and the operator's namespace may reach only the scratch cluster's pods there
    out = production.named("netpol-cnpg-system-allow-to-dr-drills", NETPOL).inputs["spec"]["egress"][0]
    assert selects(out["to"][0]["podSelector"], {"cnpg.io/cluster": "drill-postgres"})
    assert not selects(out["to"][0]["podSelector"], {"cnpg.io/cluster": "postgres"})


def test_drill_jobs_may_act_in_the_scratch_namespace_only(production):
    role = production.named("drill-role", "kubernetes:rbac.authorization.k8s.io/v1:Role").inputs
    assert role["metadata"]["namespace"] == NS
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert resources == {"clusters", "pods", "pods/exec"}  # no Secrets, nothing cluster-wide
    assert not production.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding") or all(
        NS not in json.dumps(b.inputs.get("subjects", [])) for b in
        production.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"))


def test_scratch_namespace_has_a_quota_for_its_restores(production):
    quota = production.named("drill-quota", "kubernetes:core/v1:ResourceQuota").inputs
    hard = quota["metadata"]["namespace"] == NS and quota["spec"]["hard"]
    assert hard["requests.storage"] == "120Gi" and hard["services.loadbalancers"] == "0"
    assert hard["requests.cpu"] == "2" and hard["pods"] == "4"


def test_no_drills_without_off_cluster_backups(staging):
    """Staging backs up into the in-cluster object store only: nothing there would survive the cluster."""
    assert not in_namespace(staging, NS)
    assert not [r for r in staging.resources if r.name.startswith("drill-")]
    roles = staging.named("postgres-cluster").inputs["spec"]["managed"]["roles"]
    assert postgres.CANARY not in {r["name"] for r in roles}


# --- alerts and dashboard ----------------------------------------------------------------------------------
def rules(run: Run) -> dict[str, dict]:
    spec = run.named("drill-alerts", "kubernetes:monitoring.coreos.com/v1:PrometheusRule").inputs["spec"]
    return {(r["alert"], r["labels"].get("store", "")): r for g in spec["groups"] for r in g["rules"]}


def test_alerts_on_failed_and_stale_drills_and_stale_backups(production):
    found = rules(production)
    failed = found[("RestoreDrillFailed", "")]
    assert "kube_cronjob_status_last_successful_time" in failed["expr"] and failed["labels"]["severity"] == "critical"
    assert f'namespace="{NS}"' in failed["expr"] and "kube_cronjob_status_active" in failed["expr"]
    stale = found[("RestoreDrillStale", "")]
    assert f"> {2 * WEEK}" in stale["expr"]  # two weekly periods
    postgres_backup = found[("BackupStale", "postgres")]
    assert postgres_backup["expr"] == ('time() - max(barman_cloud_cloudnative_pg_io_last_available_backup_timestamp'
                                       f'{{namespace="postgres"}}) > {2 * DAY}')
    velero = found[("BackupStale", "velero")]
    assert velero["expr"] == f'time() - velero_backup_last_successful_timestamp{{schedule="cluster"}} > {2 * DAY}'
    # every store that backs up, drilled or not
    assert found[("BackupStale", "scylladb")]["expr"] == \
        f'time() - max(scylla_manager_scheduler_last_success{{type="backup"}}) > {2 * DAY}'
    clickhouse = found[("BackupStale", "clickhouse")]["expr"]
    assert "clickhouse_backup_last_create_remote_status == 1" in clickhouse  # a failed upload is no backup


def test_stale_thresholds_follow_the_configured_schedules():
    raw = base_raw(dataPlane={"drills": {"schedule": "0 3 1 * *"}, "postgres": {"backupSchedule": "0 */6 * * *"}})
    found = rules(run_raw(raw))
    assert f"> {2 * 31 * DAY}" in found[("RestoreDrillStale", "")]["expr"]  # monthly: the longest month
    assert found[("BackupStale", "postgres")]["expr"].endswith(f"> {2 * 6 * 3600}")


def test_dashboard_shows_last_drill_duration_and_backup_age(production):
    board = json.loads(production.named("dashboard-restore-drills", CONFIGMAP).inputs["data"]["restore-drills.json"])
    panels = {p["title"]: [t["expr"] for t in p["targets"]] for p in board["panels"]}
    assert any("kube_cronjob_status_last_successful_time" in e for e in panels["Since the last successful drill"])
    assert any("kube_job_status_completion_time" in e and "kube_job_status_start_time" in e
               for e in panels["Restore drill duration"])
    ages = {t["legendFormat"]: t["expr"] for p in board["panels"] if p["title"] == "Backup age" for t in p["targets"]}
    assert set(ages) == {"postgres", "scylladb", "clickhouse", "velero"}
    assert ages["postgres"] in rules(production)[("BackupStale", "postgres")]["expr"]  # the alert's own series


# --- config ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("drills_config, expected", [
    ({"schedule": "weekly"}, "adplatform:dataPlane.drills.schedule must be a 5-field cron expression"),
    ({"schedule": "0 25 * * 0"}, "adplatform:dataPlane.drills.schedule its hour field '25' is outside 0-23"),
    ({"schedule": "0 4 31 2 *"}, "adplatform:dataPlane.drills.schedule never runs"),
    ({"skip": ["mysql"]}, "adplatform:dataPlane.drills.skip 'mysql' is not a drilled store; accepted: postgres"),
    ({"maxDataAgeHours": 0}, "adplatform:dataPlane.drills.maxDataAgeHours must be between 1 and 744"),
])
def test_drill_settings_errors_name_key_value_and_accepted(drills_config, expected):
    found = config_problems(base_raw(dataPlane={"drills": drills_config}))
    assert any(p.startswith(expected) for p in found), found


def test_drills_need_their_own_read_only_pair():
    raw = base_raw()
    del raw["backupCredentials"]["drills"]
    found = config_problems(raw)
    assert any(p.startswith("adplatform:backupCredentials.drills must be set while restore drills run") for p in found)
    raw["dataPlane"] = {"drills": {"enabled": False}}  # or no drills
    run = run_raw(raw)
    assert not [r for r in run.resources if r.name.startswith("drill-")]


def test_drills_enabled_without_off_cluster_backups_is_refused():
    raw = base_raw(profile="staging", dataPlane={"drills": {"enabled": True}})
    raw["clusterServices"] = {"tls": {"acmeEmail": "ops@example.com"}, "backups": {"enabled": False}}
    found = config_problems(raw)
    assert any(p.startswith("adplatform:dataPlane.drills.enabled needs backups outside the cluster") for p in found)


def test_a_store_can_opt_out():
    run = run_raw(base_raw(dataPlane={"drills": {"skip": ["postgres"]}}))
    assert not [r for r in run.resources if r.name.startswith("drill-")]
    assert postgres.CANARY not in {r["name"] for r in run.named("postgres-cluster").inputs["spec"]["managed"]["roles"]}


def test_cron_gaps():
    assert longest_gap_seconds("0 4 * * 0") == WEEK
    assert longest_gap_seconds("0 4 * * 7") == WEEK  # 7 is Sunday too
    assert longest_gap_seconds("*/15 * * * *") == 900
    assert longest_gap_seconds("0 2 1,15 * *") == 17 * DAY  # the 15th to the 1st of a 31-day month
    # both day fields restricted: either matches (cron's rule), so Mondays and the 1st
    assert longest_gap_seconds("0 0 1 * 1", start=dt.date(2026, 1, 1), days=60) == 7 * DAY


# --- the drill script --------------------------------------------------------------------------------------
FAKE_KUBECTL = """#!/usr/bin/env bash
printf '%s\\n' "$*" >>"$CALLS"
case "$*" in
  *"FROM canary"*) printf '%s\\n' "$CANARY" ;;
  *checksum_failures*) printf '%s\\n' "$CHECKSUM_FAILURES" ;;
  wait*) exit "${WAIT_RC:-0}" ;;
esac
"""


def run_drill(tmp_path: Path, canary: str, checksum_failures: str = "0", wait_rc: int = 0):
    fake = tmp_path / "bin" / "kubectl"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text(FAKE_KUBECTL)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    calls = tmp_path / "calls"
    calls.write_text("")
    result = subprocess.run(["bash", str(drills.SCRIPT)], capture_output=True, text=True, timeout=60, env={
        **os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}", "CALLS": str(calls), "CANARY": canary,
        "CHECKSUM_FAILURES": checksum_failures, "WAIT_RC": str(wait_rc),
        "STORE": "postgres", "NAMESPACE": NS, "MANIFEST": "/drill/postgres.yaml",
        "RESOURCE": "clusters.postgresql.cnpg.io/drill-postgres", "READY": "condition=Ready",
        "TIMEOUT_SECONDS": "60", "MAX_AGE_SECONDS": "3600", "SCRATCH_POD": "drill-postgres-1",
        "CANARY_DATABASE": "drill_canary"})
    return result, calls.read_text().splitlines()


def now() -> int:
    return int(dt.datetime.now(dt.timezone.utc).timestamp())


def test_drill_script_passes_shellcheck():
    assert validators.shellcheck({"drill": drills.SCRIPT.read_text()}) == ""


def test_drill_passes_with_a_recent_canary_and_tears_down(tmp_path):
    result, calls = run_drill(tmp_path, str(now() - 600))
    assert result.returncode == 0, result.stderr
    assert "passed" in result.stderr
    assert calls[0].startswith("delete --namespace dr-drills --filename /drill/postgres.yaml")  # leftovers first
    assert calls[1] == "apply --namespace dr-drills --filename /drill/postgres.yaml"
    assert calls[2].startswith("wait --namespace dr-drills --for=condition=Ready --timeout=60s")
    assert any(c.startswith("exec --namespace dr-drills drill-postgres-1 --container postgres -- psql") for c in calls)
    assert calls[-1].startswith("delete --namespace dr-drills --filename /drill/postgres.yaml")


@pytest.mark.parametrize("canary_age, failures, wait_rc, message", [
    (7200, "0", 0, "misses recent writes"),  # older than MAX_AGE_SECONDS (3600)
    (None, "0", 0, "no canary in the restored copy"),
    (60, "3", 0, "3 data checksum failures"),
    (60, "0", 1, ""),  # the restore never became ready
])
def test_drill_fails_and_still_tears_down(tmp_path, canary_age, failures, wait_rc, message):
    canary = "0" if canary_age is None else str(now() - canary_age)
    result, calls = run_drill(tmp_path, canary, failures, wait_rc)
    assert result.returncode != 0
    assert message in result.stderr
    assert calls[-1].startswith("delete --namespace dr-drills --filename /drill/postgres.yaml")
