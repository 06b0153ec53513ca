"""Restore drills (components/data/drills.py): per drilled store a canary writer and a drill CronJob that restores
the latest backup into the scratch namespace dr-drills with read-only backup keys, checks and tears it down; alerts
on failed or stale drills and stale backups; the Grafana dashboard; the scratch namespace's isolation; config."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import re
import stat
import subprocess
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml

from components import charts
from components.data import drills, postgres, redpanda, redpanda_backup
from components.data.clickhouse import backup as clickhouse_backup
from components.data.scylladb import bootstrap as scylladb_bootstrap
from components.services.namespaces import RESTRICTED_CONTAINER_SECURITY, RESTRICTED_POD_SECURITY
from config.cron import longest_gap_seconds
from config.quantity import cpu_millis, memory_mib
from tests import validators, variants
from tests.conftest import base_raw, run_raw, stack_run
from tests.netpol import selects
from tests.stores import NETPOL, SECRET, config_problems, string_data
from tools.mockrun import Run

NS = "dr-drills"
USER = "kubernetes:cluster.redpanda.com/v1alpha2:User"
TOPIC = "kubernetes:cluster.redpanda.com/v1alpha2:Topic"
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
    # PostgreSQL's data and WAL (120Gi); Redpanda's downloaded export and the broker replaying it (2 x 500Gi)
    # one ClickHouse shard restored at a time (500Gi) and etcd's snapshot with its restored datastore (16Gi)
    # and the ScyllaDB node's data volume (10Gi: the canary table only)
    assert hard["requests.storage"] == "1646Gi" and hard["services.loadbalancers"] == "0"
    # five scratch instances with their drivers, and the Velero and DragonflyDB drivers (their Restores are in Velero's)
    assert hard["requests.cpu"] == "12" and hard["pods"] == "22" and hard["persistentvolumeclaims"] == "10"


# What Velero v1.18.1 puts first in a pod it restores volumes into (pkg/restore/actions/pod_volume_restore_action.go,
# no plugin ConfigMap): restore-wait with requests == limits of 100m CPU and 128Mi, and the securityContext of the
# pod's first container as it was backed up (production's).
VELERO_RESTORE_WAIT_RESOURCES = {"cpu": "100m", "memory": "128Mi"}


def reclaim_policies(run: Run) -> dict[str, str]:
    return {c.inputs["metadata"]["name"]: c.inputs.get("reclaimPolicy", "Delete")
            for c in run.of_type("kubernetes:storage.k8s.io/v1:StorageClass")}


def _claimed_classes(value, found: list[str]) -> list[str]:
    """Every storage class a scratch volume (an ephemeral volume's claim template) or a drill's CNPG Cluster names."""
    if isinstance(value, dict):
        if "ephemeral" in value:
            found.append(value["ephemeral"]["volumeClaimTemplate"]["spec"]["storageClassName"])
        for item in value.values():
            _claimed_classes(item, found)
    elif isinstance(value, list):
        for item in value:
            _claimed_classes(item, found)
    return found


@pytest.mark.parametrize("stack", ["production", "production-baremetal"])
def test_scratch_volumes_are_deleted_with_their_claim(stack):
    """Production's classes keep released volumes; a scratch volume (a drill's copy, a backup job's download), made
    every week or every few hours, must not: each would stay behind as a paid volume."""
    run = stack_run(stack)
    policies = reclaim_policies(run)
    found = []
    for r in run.resources:
        if r.type in ("kubernetes:batch/v1:CronJob", "kubernetes:batch/v1:Job", "kubernetes:core/v1:ConfigMap"):
            _claimed_classes(r.inputs, found)
            data = r.inputs.get("data") if r.type.endswith("ConfigMap") else None
            for text in data.values() if isinstance(data, dict) else ():
                for doc in yaml.safe_load_all(text) if isinstance(text, str) and "ephemeral" in text else ():
                    _claimed_classes(doc, found)
    scratch = [n for n in found if n]
    assert len(scratch) >= 4, scratch  # the drills' copies and Redpanda's export download
    # local-path (bare metal) is K3s' own class, created by K3s with Delete
    assert all(policies.get(n, "Delete" if n == "local-path" else "missing") == "Delete" for n in scratch), (
        scratch, policies)
    pg = yaml.safe_load(run.named("drill-scripts", CONFIGMAP).inputs["data"]["postgres.yaml"])
    assert policies.get(pg["spec"]["storage"]["storageClass"], "Delete") == "Delete"
    defaults = [n for n, c in policies.items() if c == "Retain"]
    assert defaults, "production keeps released volumes of its stores"


def test_a_retaining_class_gets_a_scratch_twin_and_a_deleting_one_needs_none(production, staging):
    classes = {c.inputs["metadata"]["name"]: c.inputs for c in
               production.of_type("kubernetes:storage.k8s.io/v1:StorageClass")}
    default, scratch = classes["hcloud-volumes"], classes["hcloud-volumes-scratch"]
    assert (default["reclaimPolicy"], scratch["reclaimPolicy"]) == ("Retain", "Delete")
    assert not (scratch["metadata"].get("annotations") or {}), "never the default class"
    for key in ("provisioner", "parameters", "volumeBindingMode", "allowedTopologies"):
        assert scratch.get(key) == default.get(key), key
    assert not [c for c in staging.of_type("kubernetes:storage.k8s.io/v1:StorageClass")
                if c.inputs["metadata"]["name"].endswith("-scratch")]


def test_dragonflys_restored_pod_is_admitted_restricted_and_within_quota(production):
    """The pod Velero creates in dr-drills-dragonfly (restore-wait, then the modifier's container) passes the
    namespace's `restricted` Pod Security level and fits its quota: a pod's request is the larger of its init
    containers' and the sum of its containers' (Kubernetes' quota and scheduler)."""
    dragonfly = production.named("dragonfly", "kubernetes:dragonflydb.io/v1alpha1:Dragonfly").inputs["spec"]
    restore_wait = {"name": "restore-wait", "securityContext": dragonfly["containerSecurityContext"],
                    "resources": {"requests": VELERO_RESTORE_WAIT_RESOURCES, "limits": VELERO_RESTORE_WAIT_RESOURCES}}
    [text] = production.named("drill-dragonfly-modifier", CONFIGMAP).inputs["data"].values()
    patch = json.loads(yaml.safe_load(text)["resourceModifierRules"][0]["mergePatches"][0]["patchData"])
    pod = merge_patch({"spec": {"securityContext": dragonfly["podSecurityContext"], "initContainers": [restore_wait],
                                "containers": [{"name": "dragonfly"}]}}, patch)["spec"]
    target, = [n.inputs for n in production.of_type("kubernetes:core/v1:Namespace")
               if n.inputs["metadata"]["name"] == "dr-drills-dragonfly"]
    assert target["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for container in pod["initContainers"] + pod["containers"]:
        context = {**pod["securityContext"], **container["securityContext"]}
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert context["runAsNonRoot"] is True and context["seccompProfile"] == {"type": "RuntimeDefault"}
    hard = production.named("drill-dragonfly-quota", "kubernetes:core/v1:ResourceQuota").inputs["spec"]["hard"]
    for kind in ("requests", "limits"):
        for resource, unit in (("cpu", cpu_millis), ("memory", memory_mib)):
            if f"{kind}.{resource}" not in hard:
                continue
            need = max(max(unit(c["resources"][kind][resource]) for c in pod["initContainers"]),
                       sum(unit(c["resources"][kind][resource]) for c in pod["containers"]))
            assert need <= unit(hard[f"{kind}.{resource}"]), (kind, resource)


def test_dragonflys_scratch_namespace_admits_exactly_one_restored_pod(production):
    """The restored pod asks for production's Dragonfly memory; the quota admits that pod and its claim, nothing
    more; anything else that declared nothing would get the namespace's container defaults."""
    quota = production.named("drill-dragonfly-quota", "kubernetes:core/v1:ResourceQuota").inputs
    assert quota["metadata"]["namespace"] == "dr-drills-dragonfly"
    dragonfly = production.named("dragonfly", "kubernetes:dragonflydb.io/v1alpha1:Dragonfly").inputs["spec"]
    memory = dragonfly["resources"]["requests"]["memory"]
    storage = dragonfly["snapshot"]["persistentVolumeClaimSpec"]["resources"]["requests"]["storage"]
    assert quota["spec"]["hard"] == {"pods": "1", "persistentvolumeclaims": "1", "requests.cpu": "1",
                                     "requests.memory": memory, "limits.memory": memory, "requests.storage": storage,
                                     "services.loadbalancers": "0", "services.nodeports": "0"}
    limits = production.named("drill-dragonfly-limits", "kubernetes:core/v1:LimitRange").inputs
    assert limits["metadata"]["namespace"] == "dr-drills-dragonfly"
    assert limits["spec"]["limits"][0]["defaultRequest"] == {"cpu": "100m", "memory": "128Mi"}


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
    stale = found[("RestoreDrillStale", "postgres")]
    assert f"> {2 * WEEK}" in stale["expr"]  # two weekly periods
    assert 'cronjob="drill-postgres"' in stale["expr"]  # each drill against its own schedule
    postgres_backup = found[("BackupStale", "postgres")]
    barman = 'barman_cloud_cloudnative_pg_io_last_available_backup_timestamp{namespace="postgres"}'
    assert postgres_backup["expr"] == (f'time() - max({barman}) > {2 * DAY} or (absent_over_time({barman}[{2 * DAY}s]) '
                                       f'and on () (time() - kube_namespace_created{{namespace="postgres"}} > {2 * DAY}))')
    velero = found[("BackupStale", "velero")]
    assert velero["expr"].startswith(
        f'time() - max(velero_backup_last_successful_timestamp{{schedule="cluster"}}) > {2 * DAY} or (')
    # every store that backs up, drilled or not
    assert found[("BackupStale", "scylladb")]["expr"].startswith(
        f'time() - max(scylla_manager_scheduler_last_success{{type="backup"}}) > {2 * DAY} or (')


def test_clickhouse_backup_age_is_its_cronjobs_last_success(production):
    """clickhouse-backup's own last_create_remote_status is 0 after a failure and 2 after a restart (v2.8.0
    pkg/server/metrics/metrics.go): an age counted only where it is 1 went quiet exactly when backups failed. The
    CronJob fails when any shard was not backed up (create-remote.sh), so its last success is the backup's."""
    expr = rules(production)[("BackupStale", "clickhouse")]["expr"]
    job = 'namespace="clickhouse", cronjob="clickhouse-backup"'
    assert expr.startswith(f"time() - kube_cronjob_status_last_successful_time{{{job}}} > {2 * DAY} or (")
    assert "clickhouse_backup_last_create_remote" not in expr
    assert f"time() - kube_cronjob_created{{{job}}} > {2 * DAY} unless on (namespace, cronjob) " \
           f"kube_cronjob_status_last_successful_time{{{job}}}" in expr  # never succeeded, two periods after creation
    assert clickhouse_backup.CRONJOB == "clickhouse-backup"
    assert "exit \"$failed\"" in clickhouse_backup.SCRIPT.read_text()


@pytest.mark.parametrize("store", ["postgres", "scylladb", "clickhouse", "redpanda", "velero"])
def test_a_stale_backup_alert_fires_when_its_series_is_missing(production, store):
    """A store that never backed up, or an exporter restarted since its last success (Scylla Manager and Velero keep
    the time in memory only), has no series: `time() - x > s` alone is empty, the alert silent."""
    found = rules(production)[("BackupStale", store)]
    stale = int(found["expr"].split(" > ", 1)[1].split(" ")[0])
    age, missing = found["expr"].split(f" > {stale} or (", 1)
    assert missing.endswith(")") and " or " not in missing
    selector = re.search(r"(\w+\{[^}]*\})", age).group(1)
    if "kube_cronjob" in selector:  # the CronJob never succeeded, yet exists longer than the threshold
        job = selector[selector.index("{"):]
        assert missing == (f"time() - kube_cronjob_created{job} > {stale} unless on (namespace, cronjob) "
                           f"kube_cronjob_status_last_successful_time{job})")
    else:  # the series absent for the whole threshold, in a namespace older than that (a new stack is not stale)
        assert missing.startswith(f"absent_over_time({selector}[{stale}s]) and on () "
                                  f"(time() - kube_namespace_created{{namespace=")
        assert missing.endswith(f"}} > {stale}))")


def test_stale_thresholds_follow_the_configured_schedules():
    run = variants.data_variant()  # drills monthly, ClickHouse's daily, PostgreSQL backed up every 6 h
    found = rules(run)
    assert f"> {2 * 31 * DAY}" in found[("RestoreDrillStale", "postgres")]["expr"]  # monthly: the longest month
    assert f"> {2 * DAY} " in found[("RestoreDrillStale", "clickhouse")]["expr"]  # its own, daily
    assert run.named("drill-clickhouse", CRONJOB).inputs["spec"]["schedule"] == "0 5 * * *"
    assert run.named("drill-postgres", CRONJOB).inputs["spec"]["schedule"] == "0 3 1 * *"
    assert f" > {2 * 6 * 3600} or (absent_over_time(" in found[("BackupStale", "postgres")]["expr"]


def test_dashboard_shows_last_drill_duration_and_backup_age(production):
    board = json.loads(production.named("dashboard-restore-drills", CONFIGMAP).inputs["data"]["restore-drills.json"])
    panels = {p["title"]: [t["expr"] for t in p["targets"]] for p in board["panels"]}
    assert any("kube_cronjob_status_last_successful_time" in e for e in panels["Since the last successful drill"])
    assert any("kube_job_status_completion_time" in e and "kube_job_status_start_time" in e
               for e in panels["Restore drill duration"])
    ages = {t["legendFormat"]: t["expr"] for p in board["panels"] if p["title"] == "Backup age" for t in p["targets"]}
    assert set(ages) == {"postgres", "scylladb", "clickhouse", "redpanda", "velero", "secrets"}
    assert ages["postgres"] in rules(production)[("BackupStale", "postgres")]["expr"]  # the alert's own series


# --- config ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("drills_config, expected", [
    ({"schedule": "weekly"}, "adplatform:dataPlane.drills.schedule must be a 5-field cron expression"),
    ({"schedule": "0 25 * * 0"}, "adplatform:dataPlane.drills.schedule its hour field '25' is outside 0-23"),
    ({"schedule": "0 4 31 2 *"}, "adplatform:dataPlane.drills.schedule never runs"),
    ({"skip": ["mysql"]},
     "adplatform:dataPlane.drills.skip 'mysql' is not a drilled store; accepted: postgres, redpanda, clickhouse"),
    ({"schedules": {"clickhouse": "0 25 * * 1"}},
     "adplatform:dataPlane.drills.schedules clickhouse: '0 25 * * 1' its hour field '25' is outside 0-23"),
    ({"schedules": {"clickhouse": "weekly"}},
     "adplatform:dataPlane.drills.schedules clickhouse: 'weekly' must be a 5-field cron expression"),
    ({"schedules": {"mysql": "0 4 * * 2"}},
     "adplatform:dataPlane.drills.schedules 'mysql' is not a drilled store; accepted: postgres, redpanda, "
     "clickhouse"),
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


def test_a_backup_schedule_the_drills_data_age_cannot_meet_is_refused():
    """A weekly backup makes every drill of that store fail (its newest canary can be 169 h old, maxDataAgeHours is
    26): refused before anything exists, naming the schedule's key once, its value and what would be accepted."""
    found = config_problems(base_raw(dataPlane={"redpanda": {"backupSchedule": "0 4 * * 0"}}))
    assert found == ["adplatform:dataPlane.redpanda.backupSchedule leaves a restored canary up to 169 h old (168 h "
                     "between its backups plus the canary's 1 h), more than dataPlane.drills.maxDataAgeHours (26), so "
                     "that drill would fail every run; accepted: a backupSchedule at most 25 h apart, maxDataAgeHours "
                     "of at least 169, the store in dataPlane.drills.skip, or dataPlane.drills.enabled: false, "
                     "got '0 4 * * 0'"], found
    # irregular schedules by their longest gap: 1st and 15th of the month is 17 days at the end of a 31-day month
    found = config_problems(base_raw(dataPlane={"clickhouse": {"backupSchedule": "0 2 1,15 * *"}}))
    assert any(p.startswith("adplatform:dataPlane.clickhouse.backupSchedule leaves a restored canary up to 409 h old "
                            "(408 h") and p.endswith("got '0 2 1,15 * *'") for p in found), found


def test_an_out_of_range_backup_schedule_is_one_problem_naming_one_key():
    """The reviewer's '61 3 * * *' came out as 'adplatform:dataPlane adplatform:dataPlane.scylladb.backupSchedule
    ..., got {<the whole dataPlane>}': now the schedule's own key, its value, once."""
    found = config_problems(base_raw(dataPlane={"scylladb": {"backupSchedule": "61 3 * * *"}}))
    assert found == ["adplatform:dataPlane.scylladb.backupSchedule its minute field '61' is outside 0-59, "
                     "got '61 3 * * *'"], found


@pytest.mark.parametrize("data_plane", [
    {"redpanda": {"backupSchedule": "0 4 * * 0"}, "drills": {"maxDataAgeHours": 169}},  # the age allows it
    {"redpanda": {"backupSchedule": "0 4 * * 0"}, "drills": {"skip": ["redpanda"]}},  # not drilled
    {"redpanda": {"backupSchedule": "0 4 * * 0"}, "drills": {"enabled": False}},
    {"scylladb": {"backupSchedule": "0 3 * * *"}, "drills": {"maxDataAgeHours": 25}},  # daily + the canary's hour
    {"postgres": {"backupSchedule": "0 2 * * 0"}},  # weekly base backups: PostgreSQL's drill replays the WAL past its base backup
])
def test_backup_schedules_the_drills_can_meet_are_accepted(data_plane):
    from config import load
    from tests.conftest import SECRET_KEYS
    load("test", base_raw(dataPlane=data_plane), SECRET_KEYS)


# One run serves every opt-out test: five stores skipped, ClickHouse's drill kept (it shows a skip removes only the
# skipped stores' drills). Each test asserts on its own store.
SKIPPED = ["postgres", "redpanda", "etcd", "scylladb", "velero", "dragonfly"]


def skipped_run():
    return run_raw(base_raw(dataPlane={"drills": {"skip": list(SKIPPED)}}))


def test_a_store_can_opt_out():
    run = skipped_run()
    assert run.named("drill-clickhouse", CRONJOB), "the stores not skipped keep their drills"
    assert not [r for r in run.resources if r.name.startswith("drill-") and "postgres" in r.name]
    assert postgres.CANARY not in {r["name"] for r in run.named("postgres-cluster").inputs["spec"]["managed"]["roles"]}
    assert "postgres.yaml" not in run.named("drill-scripts", CONFIGMAP).inputs["data"]
    run = run_raw(base_raw(dataPlane={"drills": {"skip": ["postgres", "redpanda", "clickhouse", "etcd", "scylladb",
                                                                     "velero", "dragonfly"]}}))
    assert not [r for r in run.resources if r.name.startswith("drill-")]


def test_skipping_redpanda_leaves_no_canary_user_or_topic():
    run = skipped_run()
    assert not [r for r in run.resources if r.name.startswith("drill-") and "redpanda" in r.name]
    assert not [r for r in run.of_type(USER) if r.inputs["metadata"]["name"] == drills.RP_CANARY]
    assert run.named("drill-clickhouse", CRONJOB)


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


def drill_script(tmp_path: Path, fake_kubectl: str, **env: str):
    """components/data/drill.sh run against a fake `kubectl` (every call appended to $CALLS), with the drill's
    common settings and `env`: (the process result, the kubectl calls in order)."""
    bin_dir = fake_bin(tmp_path, "kubectl", fake_kubectl)
    calls = tmp_path / "calls"
    calls.write_text("")
    result = subprocess.run(["bash", str(drills.SCRIPT)], capture_output=True, text=True, timeout=60, env={
        **os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(calls), "NAMESPACE": NS,
        "READY": "condition=Ready", "TIMEOUT_SECONDS": "60", "MAX_AGE_SECONDS": "3600", **env})
    return result, calls.read_text().splitlines()


def run_drill(tmp_path: Path, canary: str, checksum_failures: str = "0", wait_rc: int = 0):
    return drill_script(tmp_path, FAKE_KUBECTL, CANARY=canary, CHECKSUM_FAILURES=checksum_failures,
                        WAIT_RC=str(wait_rc), STORE="postgres", MANIFEST="/drill/postgres.yaml",
                        RESOURCE="clusters.postgresql.cnpg.io/drill-postgres", SCRATCH_POD="drill-postgres-1",
                        CANARY_DATABASE="drill_canary")


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


# --- the Redpanda drill -------------------------------------------------------------------------------------
def scratch_pod(run: Run) -> dict:
    return scratch_manifest(run, "redpanda")


def test_redpanda_drill_replays_the_latest_export_into_a_scratch_broker(production):
    job = production.named("drill-redpanda", CRONJOB).inputs
    assert job["metadata"]["namespace"] == NS and job["spec"]["schedule"] == "0 4 * * 0"
    spec = job["spec"]["jobTemplate"]["spec"]
    assert spec["backoffLimit"] == 0
    # the download's and the replay's budgets (each the export's own) and the teardown's
    assert spec["activeDeadlineSeconds"] == 2 * redpanda_backup.JOB_DEADLINE_SECONDS + 900
    variables = env(production.named("drill-redpanda", CRONJOB))
    assert (variables["RESOURCE"], variables["READY"]) == ("pod/drill-redpanda", "condition=Ready")
    assert variables["SCRATCH_POD"] == "drill-redpanda" and variables["MANIFEST"] == "/drill/redpanda.yaml"

    pod = scratch_pod(production)
    validators.validate_kubernetes("kubernetes:core/v1:Pod", pod)
    assert pod["metadata"]["namespace"] == NS and pod["spec"]["automountServiceAccountToken"] is False
    broker = pod["spec"]["containers"][0]
    # the production brokers' pinned image, one broker in dev-container mode, no operator
    assert broker["image"] == f"docker.redpanda.com/redpandadata/redpanda:{charts.REDPANDA_VERSION}"
    assert broker["command"][:3] == ["rpk", "redpanda", "start"]
    assert {"--mode=dev-container", "--smp=1", "--memory=1G"} <= set(broker["command"])
    # every listener on loopback: nothing but the drill's exec reaches it (the admin API: the kubelet's probe)
    addresses = [f.split("=", 1)[1] for f in broker["command"] if f.endswith(tuple("0123456789")) and "-addr=" in f]
    assert len(addresses) == 5 and all(a.startswith("127.0.0.1:") for a in addresses)
    assert broker["readinessProbe"]["httpGet"] == {"path": "/v1/status/ready", "port": redpanda.ADMIN_PORT}
    assert broker["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}  # its own small resources
    broker_env = {e["name"]: e["value"] for e in broker["env"]}
    assert broker_env["RPK_BROKERS"] == "127.0.0.1:9092" and broker_env["REPLICAS"] == "1"
    assert not [k for k in broker_env if k.startswith(("RPK_USER", "RPK_PASS", "RPK_SASL", "RPK_TLS"))]
    # the init container downloads the newest finished export, reading with the drills' pair only
    download = pod["spec"]["initContainers"][0]
    assert download["command"] == ["/bin/bash", "/scripts/redpanda-download.sh"]
    down_env = {e["name"]: e.get("value", e.get("valueFrom")) for e in download["env"]}
    assert down_env["BACKUP"] == "latest"
    assert down_env["S3_ACCESS_KEY"] == {"secretKeyRef": {"name": drills.S3_SECRET, "key": "ACCESS_KEY_ID"}}
    assert down_env["S3_SECRET_KEY"] == {"secretKeyRef": {"name": drills.S3_SECRET, "key": "ACCESS_SECRET_KEY"}}
    # where the export CronJob uploads
    export = production.named("redpanda-backup", CRONJOB).inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    upload = {e["name"]: e.get("value") for e in export["containers"][0]["env"]}
    assert all(down_env[k] == upload[k] for k in ("S3_ENDPOINT", "S3_REGION", "S3_BUCKET", "S3_PREFIX"))
    # the scripts it runs are the backup's own (one copy), and the drill's check
    scripts = production.named("drill-redpanda-scripts", CONFIGMAP).inputs
    assert scripts["metadata"]["namespace"] == NS
    assert scripts["data"] == {name: (redpanda_backup.SCRIPTS / name).read_text() for name in drills.RP_SCRIPT_FILES}
    assert "redpanda-drill-check.sh" in scripts["data"] and "redpanda-export.sh" not in scripts["data"]
    # no backup of a scratch copy, and dr-drills' Pod Security level (restricted) admits it
    assert all("ephemeral" in v or "emptyDir" in v or "configMap" in v for v in pod["spec"]["volumes"])
    assert pod["spec"]["securityContext"].items() >= RESTRICTED_POD_SECURITY.items()
    assert all(c["securityContext"].items() >= RESTRICTED_CONTAINER_SECURITY.items()
               for c in [*pod["spec"]["initContainers"], *pod["spec"]["containers"]])


def test_redpanda_canary_is_written_hourly_by_a_user_allowed_only_on_the_canary_topic(production):
    job = production.named("drill-canary-redpanda", CRONJOB).inputs
    assert job["metadata"]["namespace"] == redpanda.NAMESPACE and job["spec"]["schedule"] == drills.CANARY_SCHEDULE
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and "serviceAccountName" not in pod
    variables = env(production.named("drill-canary-redpanda", CRONJOB))
    assert variables["RPK_USER"] == {"secretKeyRef": {"name": drills.RP_CANARY_SECRET, "key": "username"}}
    assert variables["RPK_TLS_ENABLED"] == "true" and variables["CANARY_TOPIC"] == drills.RP_CANARY
    script = production.named("drill-canary-redpanda", CONFIGMAP).inputs["data"]["redpanda-canary.sh"]
    assert script == (redpanda_backup.SCRIPTS / "redpanda-canary.sh").read_text()

    user = production.named("drill-canary-user", USER)
    validators.validate_kubernetes(USER, user.inputs)
    assert user.inputs["metadata"]["name"] == drills.RP_CANARY
    acls = user.inputs["spec"]["authorization"]["acls"]
    # the canary topic by its literal name, Write and Describe; IdempotentWrite as every producer; nothing else
    assert acls == [{"type": "allow", "resource": {"type": "topic", "name": "drill-canary", "patternType": "literal"},
                     "operations": ["Write", "Describe"]},
                    {"type": "allow", "resource": {"type": "cluster", "name": ""}, "operations": ["IdempotentWrite"]}]
    secret = string_data(production.named("drill-canary-credentials", SECRET))
    assert secret["username"] == drills.RP_CANARY and len(secret["password"]) == 32
    topic = production.named("drill-canary-redpanda-topic", TOPIC)
    validators.validate_kubernetes(TOPIC, topic.inputs)
    assert topic.inputs["metadata"] == {**topic.inputs["metadata"], "name": "drill-canary", "namespace": "redpanda"}
    assert topic.inputs["spec"]["partitions"] == 1
    assert topic.inputs["spec"]["additionalConfig"]["retention.ms"] == str(drills.CANARY_RETENTION_DAYS * 86400000)
    # the export copies every topic not named _*: the canary is in every export
    assert not drills.RP_CANARY.startswith("_")
    canary_job = production.named("drill-canary-redpanda", CRONJOB)
    assert {topic.urn, user.urn} <= set(canary_job.dependencies)
    # the scratch namespace holds no Redpanda login
    assert [s.name for s in in_namespace(production, NS, SECRET)] == ["drill-backup-s3"]


def test_redpanda_drill_may_create_and_delete_pods_in_the_scratch_namespace_only(production):
    role = production.named("drill-role", "kubernetes:rbac.authorization.k8s.io/v1:Role").inputs
    pods = [r for r in role["rules"] if r["resources"] == ["pods"]]
    assert {v for r in pods for v in r["verbs"]} == {"get", "list", "watch", "create", "patch", "delete"}
    assert not [r for r in role["rules"] if "secrets" in r["resources"] or "*" in r["verbs"]]


def test_redpanda_backup_age_alerts_and_shows_on_the_dashboard(production):
    found = rules(production)
    stale = found[("BackupStale", "redpanda")]["expr"]
    # the export CronJob's last success (kube-state-metrics), two six-hourly periods
    assert stale.startswith('time() - kube_cronjob_status_last_successful_time{namespace="redpanda", '
                            f'cronjob="redpanda-backup"}} > {2 * 6 * 3600} or (')
    board = json.loads(production.named("dashboard-restore-drills", CONFIGMAP).inputs["data"]["restore-drills.json"])
    ages = {t["legendFormat"]: t["expr"] for p in board["panels"] if p["title"] == "Backup age" for t in p["targets"]}
    assert ages["redpanda"] in stale
    # the drill panels cover every CronJob of dr-drills, drill-redpanda with them
    assert all(f'namespace="{NS}"' in t["expr"] for p in board["panels"] if p["title"] != "Backup age"
               for t in p["targets"])


def test_staging_has_no_redpanda_canary(staging):
    assert not [r for r in staging.of_type(USER) if r.inputs["metadata"]["name"] == drills.RP_CANARY]
    assert not [r for r in staging.of_type(TOPIC)]


def test_every_redpanda_script_passes_shellcheck():
    # The standalone scripts (each Job's); a node script rendered with lib.sh (the object store's shrink hook) is
    # checked as a template (tests/test_host_tuning.py) and rendered (tests/test_data_objectstore_shrink.py).
    paths = sorted(str(p) for p in redpanda_backup.SCRIPTS.glob("*.sh") if "\nsource lib.sh\n" not in p.read_text())
    assert any(p.endswith("redpanda-drill-check.sh") for p in paths) and any(p.endswith("redpanda-canary.sh")
                                                                             for p in paths)
    result = subprocess.run([str(validators.BIN / "shellcheck"), "-x", "--shell=bash", "--severity=style", *paths],
                            capture_output=True, text=True, check=False, cwd=redpanda_backup.SCRIPTS)
    assert result.stdout + result.stderr == ""


# The scratch broker, faked: `rpk topic create/list/produce/consume` against files under $BROKER.
FAKE_RPK = r"""#!/usr/bin/env bash
printf '%s\n' "$*" >>"$CALLS"
case "$1 $2" in
  "topic create")
    topic="$3"; shift 3
    while (($#)); do [[ "$1" == --partitions ]] && printf '%s\n' "$2" >"$BROKER/$topic.partitions"; shift; done ;;
  "topic list")
    echo "NAME PARTITIONS REPLICAS"
    for f in "$BROKER"/*.partitions; do [[ -e "$f" ]] || continue; t="${f##*/}"
      printf '%s %s 1\n' "${t%.partitions}" "$(cat "$f")"; done ;;
  "topic produce") cat >>"$BROKER/$3.records" ;;
  "topic consume") [[ "$3" == drill-canary ]] && cat "$BROKER/canary-values" ;;
esac
"""


def fake_bin(tmp_path: Path, name: str, text: str) -> Path:
    fake = tmp_path / "bin" / name
    fake.parent.mkdir(exist_ok=True)
    fake.write_text(text)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return fake.parent


def export(tmp_path: Path, topics: str, name: str = "20261201T000000Z") -> Path:
    work = tmp_path / "work"
    (work / name / "configs").mkdir(parents=True)
    (work / "name").write_text(f"{name}\n")
    (work / name / "topics.tsv").write_text(topics)
    for line in topics.splitlines():
        topic, partitions, _ = line.split("\t")
        (work / name / "configs" / topic).write_text("retention.ms=1000\n" if topic == "drill-canary" else "")
        (work / name / "records" / topic).mkdir(parents=True)
        for p in range(int(partitions)):
            (work / name / "records" / topic / str(p)).write_bytes(b"x")
    return work


def run_check(tmp_path: Path, work: Path, canaries: str, lose_a_partition: bool = False):
    broker = tmp_path / "broker"
    broker.mkdir(exist_ok=True)
    (broker / "canary-values").write_text(canaries)
    calls = tmp_path / "calls"
    calls.write_text("")
    bin_dir = fake_bin(tmp_path, "rpk", FAKE_RPK)
    if lose_a_partition:  # a broker that creates every topic with one partition fewer than asked
        (bin_dir / "rpk").write_text(FAKE_RPK.replace('printf \'%s\\n\' "$2" >', 'printf \'%s\\n\' "$(($2 - 1))" >'))
    result = subprocess.run(["bash", str(redpanda_backup.SCRIPTS / "redpanda-drill-check.sh")], capture_output=True,
                            text=True, timeout=60, env={
                                **os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(calls),
                                "BROKER": str(broker), "WORK": str(work), "CANARY_TOPIC": "drill-canary",
                                "REPLICAS": "1"})
    return result, calls.read_text().splitlines()


TOPICS = "_schemas\t1\t3\nbidding.bids\t3\t3\ndrill-canary\t1\t3\n"


def test_redpanda_check_replays_the_export_checks_its_manifest_and_prints_the_newest_canary(tmp_path):
    work = export(tmp_path, TOPICS)
    result, calls = run_check(tmp_path, work, "1764547200\n1764550800\nnot-a-time\n1764543600\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "1764550800\n"  # the newest canary only: stdout is drill.sh's answer
    # one broker: every topic created with one replica, its exported configs kept
    assert "topic create bidding.bids --partitions 3 --replicas 1" in calls
    assert "topic create drill-canary --partitions 1 --replicas 1 --topic-config retention.ms=1000" in calls
    assert not [c for c in calls if c.startswith("topic create _schemas")]
    produced = [c for c in calls if c.startswith("topic produce")]
    assert produced[0].startswith("topic produce _schemas")  # schemas first
    assert len(produced) == 5  # every exported partition replayed
    assert "2 topics restored with their partitions" in result.stderr


def test_redpanda_check_fails_when_the_restored_topics_differ_from_the_manifest(tmp_path):
    work = export(tmp_path, TOPICS)
    result, _ = run_check(tmp_path, work, "1764550800\n", lose_a_partition=True)
    assert result.returncode == 1 and result.stdout == ""
    assert "differ from its manifest" in result.stderr


def test_redpanda_check_prints_nothing_without_a_canary_and_refuses_a_foreign_name(tmp_path):
    work = export(tmp_path, TOPICS)
    result, _ = run_check(tmp_path, work, "")
    assert result.returncode == 0 and result.stdout == ""  # drill.sh: "no canary in the restored copy"
    (work / "name").write_text("../../etc\n")
    result, calls = run_check(tmp_path, work, "")
    assert result.returncode == 2 and "must be an export name" in result.stderr and calls == []


FAKE_CURL = r"""#!/usr/bin/env bash
cat >/dev/null  # the keys (--config -), read as curl does: the writer never sees a closed pipe
url="${*: -1}"
out=""
while (($#)); do [[ "$1" == --output ]] && out="$2"; shift; done
case "$url" in
  *list-type=2*)
    for name in 20261130T000000Z 20261201T000000Z 20261201T060000Z; do printf '<Prefix>p/%s/</Prefix>' "$name"; done ;;
  */20261201T060000Z/files.txt) exit 22 ;;  # still uploading: files.txt comes last
  */files.txt) printf 'topics.tsv\n' >"$out" ;;
  *) printf '%s\n' "$url" >"$out" ;;
esac
"""


def test_download_of_latest_takes_the_newest_finished_export(tmp_path):
    bin_dir = fake_bin(tmp_path, "curl", FAKE_CURL)
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run(["bash", str(redpanda_backup.SCRIPTS / "redpanda-download.sh")], capture_output=True,
                            text=True, timeout=60, env={
                                "PATH": f"{bin_dir}:/usr/bin:/bin", "WORK": str(work), "BACKUP": "latest",
                                "S3_ENDPOINT": "https://s3", "S3_REGION": "r", "S3_BUCKET": "b", "S3_PREFIX": "p",
                                "S3_ACCESS_KEY": "a", "S3_SECRET_KEY": "s"})
    assert result.returncode == 0, result.stderr
    assert (work / "name").read_text() == "20261201T000000Z\n"  # not the one still uploading
    assert (work / "20261201T000000Z" / "topics.tsv").read_text() == "https://s3/b/p/20261201T000000Z/topics.tsv\n"


def test_drill_runs_the_redpanda_check_inside_the_scratch_broker(tmp_path):
    fake = FAKE_KUBECTL.replace('  wait*)', '  *redpanda-drill-check.sh*) printf \'%s\\n\' "$CANARY" ;;\n  wait*)')
    result, lines = drill_script(tmp_path, fake, CANARY=str(now() - 600), STORE="redpanda",
                                 MANIFEST="/drill/redpanda.yaml", RESOURCE="pod/drill-redpanda",
                                 SCRATCH_POD="drill-redpanda")
    assert result.returncode == 0, result.stderr
    assert ("exec --namespace dr-drills drill-redpanda --container redpanda -- /bin/bash "
            "/scripts/redpanda-drill-check.sh") in lines
    assert lines[-1].startswith("delete --namespace dr-drills --filename /drill/redpanda.yaml")


# --- the ClickHouse drill ------------------------------------------------------------------------------------
def ch_sidecar_env(run: Run) -> dict:
    chi = run.named("clickhouse-installation").inputs["spec"]
    pod = chi["templates"]["podTemplates"][0]["spec"]
    sidecar = next(c for c in pod["containers"] if c["name"] == "clickhouse-backup")
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in sidecar["env"]}


def test_clickhouse_drill_restores_every_shard_into_a_scratch_server_a_day_after_the_others(production):
    job = production.named("drill-clickhouse", CRONJOB).inputs
    assert job["metadata"]["namespace"] == NS
    assert job["spec"]["schedule"] == "0 4 * * 1"  # weekly, staggered: Monday, the others Sunday
    assert production.named("drill-postgres", CRONJOB).inputs["spec"]["schedule"] == "0 4 * * 0"
    variables = env(production.named("drill-clickhouse", CRONJOB))
    shards = int(production.named("clickhouse-installation").inputs["spec"]["configuration"]["clusters"][0]["layout"][
        "shardsCount"])
    assert variables["SHARDS"] == " ".join(str(s) for s in range(shards))
    assert variables["RESOURCE"] == "pod/drill-clickhouse" and variables["CANARY_DATABASE"] == "drill_canary"
    # the path the sidecars upload to, {shard} filled in per shard by check_clickhouse
    assert variables["BACKUP_PATH"] == ch_sidecar_env(production)["S3_PATH"] and "{shard}" in variables["BACKUP_PATH"]
    deadline = job["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"]
    assert deadline >= shards * drills.CH_SHARD_SECONDS  # every shard's restore fits

    pod = scratch_manifest(production, "clickhouse")
    validators.validate_kubernetes("kubernetes:core/v1:Pod", pod)
    assert pod["metadata"]["namespace"] == NS and pod["spec"]["automountServiceAccountToken"] is False
    server, reader = pod["spec"]["containers"]
    assert server["image"] == f"docker.io/clickhouse/clickhouse-server:{charts.CLICKHOUSE_VERSION}"
    assert server["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}  # its own small resources
    assert reader["image"] == f"docker.io/altinity/clickhouse-backup:{charts.CLICKHOUSE_BACKUP_VERSION}"
    reader_env = {e["name"]: e.get("value", e.get("valueFrom")) for e in reader["env"]}
    # the drills' read-only pair, nothing of production; never deletes a remote backup
    secrets = {v["secretKeyRef"]["name"] for c in pod["spec"]["containers"] for v in
               (e.get("valueFrom") for e in c.get("env", [])) if v}
    assert secrets == {drills.S3_SECRET}
    assert reader_env["S3_ACCESS_KEY"] == {"secretKeyRef": {"name": drills.S3_SECRET, "key": "ACCESS_KEY_ID"}}
    assert reader_env["S3_SECRET_KEY"] == {"secretKeyRef": {"name": drills.S3_SECRET, "key": "ACCESS_SECRET_KEY"}}
    assert reader_env["BACKUPS_TO_KEEP_REMOTE"] == "0" and reader_env["API_ENABLE_METRICS"] == "false"
    production_env = ch_sidecar_env(production)
    assert all(reader_env[k] == production_env[k] for k in ("S3_ENDPOINT", "S3_REGION", "S3_BUCKET", "S3_PATH",
                                                          "REMOTE_STORAGE", "S3_FORCE_PATH_STYLE"))
    assert reader_env["API_LISTEN"].startswith("127.0.0.1:") and reader_env["CLICKHOUSE_HOST"] == "127.0.0.1"
    # the scratch server: loopback only, one-node Keeper in-process, the operator's macros and cluster name
    config = production.named("drill-clickhouse-config", CONFIGMAP).inputs
    assert config["metadata"]["namespace"] == NS
    server_xml = config["data"]["drill.xml"]
    assert "<listen_host>127.0.0.1</listen_host>" in server_xml and "<keeper_server>" in server_xml
    assert all(f"<{m}>" in server_xml for m in ("installation", "cluster", "shard", "replica", "all-sharded-shard"))
    assert "<remote_servers><analytics><shard><replica>" in server_xml
    ElementTree.fromstring(server_xml), ElementTree.fromstring(config["data"]["users.xml"])  # well-formed
    assert '<networks replace="replace"><ip>::1</ip><ip>127.0.0.1</ip></networks>' in config["data"]["users.xml"]
    mounts = {m["mountPath"] for m in server["volumeMounts"]}
    assert {"/etc/clickhouse-server/config.d", "/etc/clickhouse-server/users.d", "/var/lib/clickhouse"} <= mounts
    assert "/var/lib/clickhouse" in {m["mountPath"] for m in reader["volumeMounts"]}  # it reads the server's parts
    data = next(v for v in pod["spec"]["volumes"] if v["name"] == "data")
    assert "ephemeral" in data  # gone with the pod; no Velero backup of a scratch copy
    assert pod["spec"]["securityContext"].items() >= RESTRICTED_POD_SECURITY.items()
    assert all(c["securityContext"].items() >= RESTRICTED_CONTAINER_SECURITY.items() for c in (server, reader))
    assert not in_namespace(production, NS, "kubernetes:core/v1:Service")


def test_clickhouse_canary_user_may_only_create_and_insert_in_its_own_database(production):
    chi = production.named("clickhouse-installation").inputs["spec"]["configuration"]["users"]
    assert chi["drill_canary/grants/query"] == ["GRANT CREATE DATABASE, CREATE TABLE, INSERT ON drill_canary.*"]
    assert chi["drill_canary/password_sha256_hex"] == {
        "valueFrom": {"secretKeyRef": {"name": "clickhouse-server-auth", "key": "drill_canary"}}}
    secret = string_data(production.named("clickhouse-drill-canary", SECRET))
    assert secret["username"] == "drill_canary" and len(secret["password"]) >= 24
    job = production.named("drill-canary-clickhouse", CRONJOB).inputs
    assert job["metadata"]["namespace"] == "clickhouse" and job["spec"]["schedule"] == drills.CANARY_SCHEDULE
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    variables = env(production.named("drill-canary-clickhouse", CRONJOB))
    assert variables["CLICKHOUSE_PASSWORD"] == {"secretKeyRef": {"name": "clickhouse-drill-canary", "key": "password"}}
    assert variables["RETENTION_DAYS"] == str(drills.CANARY_RETENTION_DAYS)
    script = production.named("drill-canary-clickhouse", CONFIGMAP).inputs["data"]["clickhouse-canary.sh"]
    assert script == drills.CH_CANARY.read_text()
    # the scratch namespace holds no ClickHouse login
    assert [s.name for s in in_namespace(production, NS, SECRET)] == ["drill-backup-s3"]


def test_staging_has_no_clickhouse_canary(staging):
    assert "drill_canary/grants/query" not in staging.named("clickhouse-installation").inputs["spec"][
        "configuration"]["users"]
    assert not [r for r in staging.resources if r.name == "clickhouse-drill-canary"]


FAKE_CH_CLIENT = r"""#!/usr/bin/env bash
printf '%s\n' "$*" >>"$CALLS"
host="$2"
[[ " $DOWN " == *" ${host%%.*} "* ]] && exit 210
exit 0
"""


def run_canary(tmp_path: Path, down: str = ""):
    bin_dir = fake_bin(tmp_path, "clickhouse-client", FAKE_CH_CLIENT)
    calls = tmp_path / "calls"
    calls.write_text("")
    result = subprocess.run(["bash", str(drills.CH_CANARY)], capture_output=True, text=True, timeout=60, env={
        **os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(calls), "DOWN": down,
        "SHARDS": "s0r0,s0r1 s1r0,s1r1", "DOMAIN": "clickhouse.svc", "PORT": "9000",
        "CANARY_DATABASE": "drill_canary", "RETENTION_DAYS": "45", "CLICKHOUSE_USER": "drill_canary",
        "CLICKHOUSE_PASSWORD": "pw"})
    return result, calls.read_text()


def test_clickhouse_canary_creates_the_table_on_every_replica_and_writes_once_per_shard(tmp_path):
    result, calls = run_canary(tmp_path, down="s0r0")
    assert result.returncode == 0, result.stderr
    inserts = [line for line in calls.splitlines() if "INSERT INTO drill_canary.canary" in line]
    assert [line.split()[1] for line in inserts] == ["s0r1.clickhouse.svc", "s1r0.clickhouse.svc"]
    # the Keeper path is the shard's, so the replicas of a shard are one table; no ON CLUSTER, the password not in args
    assert "ReplicatedMergeTree('/clickhouse/tables/{shard}/drill_canary/canary', '{replica}')" in calls
    assert "ON CLUSTER" not in calls and "pw" not in calls
    assert calls.count("CREATE TABLE IF NOT EXISTS") == 3  # every replica that answers


def test_clickhouse_canary_fails_when_a_shard_gets_none(tmp_path):
    result, _ = run_canary(tmp_path, down="s1r0 s1r1")
    assert result.returncode == 1 and "shard of s1r0: no canary written" in result.stderr


def test_clickhouse_canary_script_passes_shellcheck():
    assert validators.shellcheck({"canary": drills.CH_CANARY.read_text()}) == ""


# The scratch pod, faked: clickhouse-backup's `list remote` and the server's answers.
FAKE_CH_KUBECTL = r"""#!/usr/bin/env bash
printf '%s\n' "$*" >>"$CALLS"
case "$*" in
  *"list remote"*)
    printf 'full-20261130T010000Z   2026-11-30 01:20:00   remote      1.2GiB   tar, regular\n'
    printf 'full-20261201T010000Z   2026-12-01 01:20:00   remote      1.3GiB   tar, regular\n'
    printf 'full-20261202T010000Z   2026-12-02 01:00:00   remote      ???      broken (can not find metadata.json)\n' ;;
  *"FROM system.tables"*) printf 'CHECK TABLE `ads_bidding`.`bids` SETTINGS x\nCHECK TABLE `drill_canary`.`canary`\n' ;;
  *"CHECK TABLE"*bids*) printf '%s\n' "$BIDS_OK" ;;
  *"CHECK TABLE"*) printf '1\n' ;;
  *"FROM drill_canary.canary"*) printf '%s\n' "$CANARY" ;;
esac
exit 0
"""


def run_ch_drill(tmp_path: Path, canary: int, bids_ok: str = "1"):
    return drill_script(tmp_path, FAKE_CH_KUBECTL, CANARY=str(canary), BIDS_OK=bids_ok, STORE="clickhouse",
                        MANIFEST="/drill/clickhouse.yaml", RESOURCE="pod/drill-clickhouse",
                        SCRATCH_POD="drill-clickhouse", SHARDS="0 1", BACKUP_PATH="p/shard-{shard}",
                        CANARY_DATABASE="drill_canary")


def test_clickhouse_drill_restores_each_shards_newest_complete_backup_and_checks_its_tables(tmp_path):
    result, calls = run_ch_drill(tmp_path, now() - 600)
    assert result.returncode == 0, result.stderr
    prefix = "exec --namespace dr-drills drill-clickhouse --container clickhouse-backup -- env"
    # the newest complete backup (not the broken one still uploading), shard by shard, over the previous one
    assert f"{prefix} S3_PATH=p/shard-0 clickhouse-backup restore_remote --rm full-20261201T010000Z" in calls
    assert f"{prefix} S3_PATH=p/shard-1 clickhouse-backup restore_remote --rm full-20261201T010000Z" in calls
    assert f"{prefix} S3_PATH=p/shard-0 clickhouse-backup delete local full-20261201T010000Z" in calls
    checks = [c for c in calls if "-- clickhouse-client --host 127.0.0.1 --query CHECK TABLE" in c]
    assert len(checks) == 4  # every MergeTree table, every shard
    assert calls[-1].startswith("delete --namespace dr-drills --filename /drill/clickhouse.yaml")


def test_clickhouse_drill_fails_on_damaged_parts_or_an_old_canary(tmp_path):
    result, calls = run_ch_drill(tmp_path, now() - 600, bids_ok="0")
    assert result.returncode == 1 and "found damaged parts" in result.stderr
    assert calls[-1].startswith("delete --namespace dr-drills --filename /drill/clickhouse.yaml")  # torn down
    result, _ = run_ch_drill(tmp_path, now() - 7200)
    assert result.returncode == 1 and "misses recent writes" in result.stderr


# --- etcd (K3s' snapshots) ---------------------------------------------------------------------------------------
def test_etcd_drill_restores_the_newest_snapshot_into_a_throwaway_etcd_on_tuesdays(production):
    job = production.named("drill-etcd", CRONJOB).inputs
    assert job["metadata"]["namespace"] == NS and job["spec"]["schedule"] == "0 4 * * 2"  # a day after ClickHouse
    assert env(production.named("drill-etcd", CRONJOB))["CANARY_KEY"] == "/registry/configmaps/dr-drills/drill-canary"
    pod = scratch_manifest(production, "etcd")
    assert pod["kind"] == "Pod" and pod["metadata"]["namespace"] == NS
    download, restore = pod["spec"]["initContainers"]
    server = pod["spec"]["containers"][0]
    s3 = {e["name"]: e.get("value", e.get("valueFrom")) for e in download["env"]}
    # where K3s puts them (components/k3s/config.py: etcd-s3-bucket and etcd-s3-folder), read with the drills' key
    assert s3["S3_BUCKET"] == "adp-production-backups" and s3["S3_PREFIX"] == "production/etcd"
    assert s3["S3_SECRET_KEY"] == {"secretKeyRef": {"name": "drill-backup-s3", "key": "ACCESS_SECRET_KEY"}}
    assert restore["image"] == server["image"] == charts.ETCD_IMAGE and charts.ETCD_IMAGE.endswith(":v3.6.12")
    assert restore["command"][:4] == ["etcdutl", "snapshot", "restore", "/work/snapshot.db"]
    # clients and peers on loopback only; the probe runs inside the pod
    assert [a for a in server["command"] if "urls" in a] == [
        "--listen-client-urls=http://127.0.0.1:2379", "--advertise-client-urls=http://127.0.0.1:2379",
        "--listen-peer-urls=http://127.0.0.1:2380"]
    assert server["readinessProbe"]["exec"]["command"][0] == "etcdctl"
    assert pod["spec"]["automountServiceAccountToken"] is False
    validators.validate_kubernetes("kubernetes:core/v1:Pod", pod)


def test_etcd_canary_is_patched_hourly_by_an_account_that_reaches_only_the_canary(production):
    job = production.named("drill-canary-etcd", CRONJOB).inputs
    assert job["metadata"]["namespace"] == NS and job["spec"]["schedule"] == drills.CANARY_SCHEDULE
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "drill-canary"
    role = production.named("drill-canary-etcd", "kubernetes:rbac.authorization.k8s.io/v1:Role").inputs
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["drill-canary"],
                              "verbs": ["get", "patch"]}]
    canary = production.named("drill-canary-etcd", CONFIGMAP)
    assert canary.inputs["metadata"]["namespace"] == NS and "data" not in canary.inputs


def test_no_etcd_drill_when_skipped():
    run = skipped_run()
    assert not [r for r in run.resources if r.name.startswith("drill-") and "etcd" in r.name]
    assert "etcd.yaml" not in run.named("drill-scripts", CONFIGMAP).inputs["data"]


FAKE_ETCD_CURL = r"""#!/usr/bin/env bash
cat >/dev/null
url="${*: -1}"
out=""
while (($#)); do [[ "$1" == --output ]] && out="$2"; shift; done
case "$url" in
  *list-type=2*)
    printf '<Contents><Key>p/etcd-snapshot-server-1-1764590400.zip</Key></Contents>'
    printf '<Contents><Key>p/etcd-snapshot-ctrl-a-2-1764633600.zip</Key></Contents>'
    printf '<Contents><Key>p/on-demand-server-1-1764700000</Key></Contents>'
    printf '<CommonPrefixes><Prefix>p/.metadata/</Prefix></CommonPrefixes>' ;;
  *) cp "$SNAPSHOT_ZIP" "$out" ;;
esac
"""


def test_etcd_download_takes_the_newest_scheduled_snapshot_of_any_server_and_unzips_it(tmp_path):
    import zipfile
    bin_dir = fake_bin(tmp_path, "curl", FAKE_ETCD_CURL)
    archive = tmp_path / "snap.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("etcd-snapshot-ctrl-a-2-1764633600", b"bolt db")
    work, log = tmp_path / "work", tmp_path / "termination-log"
    work.mkdir()
    result = subprocess.run(["bash", str(redpanda_backup.SCRIPTS / "etcd-download.sh")], capture_output=True,
                            text=True, timeout=60, env={
                                "PATH": f"{bin_dir}:/usr/bin:/bin", "WORK": str(work), "SNAPSHOT_ZIP": str(archive),
                                "TERMINATION_LOG": str(log), "S3_ENDPOINT": "https://s3", "S3_REGION": "r",
                                "S3_BUCKET": "b", "S3_PREFIX": "p", "S3_ACCESS_KEY": "a", "S3_SECRET_KEY": "s"})
    assert result.returncode == 0, result.stderr
    # the newest by its Unix time (not by node name), a scheduled one; unzipped for etcdutl
    assert log.read_text() == "etcd-snapshot-ctrl-a-2-1764633600.zip"
    assert (work / "snapshot.db").read_bytes() == b"bolt db"


FAKE_ETCD_KUBECTL = r"""#!/usr/bin/env bash
printf '%s\n' "$*" >>"$CALLS"
case "$*" in
  *jsonpath=*) printf '%s' "$SNAPSHOT" ;;
  *"namespaces/kube-system --keys-only"*) [[ -n "$FOREIGN" ]] || printf '/registry/namespaces/kube-system\n' ;;
  *"--print-value-only"*) [[ -z "$CANARY" ]] || printf 'k8s\0\n\x0cConfigMap\x12\x0awritten-at\x12\x1adrill-canary@%s\x1a\x00' "$CANARY" ;;
esac
exit 0
"""


def run_etcd_drill(tmp_path: Path, canary: str, snapshot: str = "etcd-snapshot-s-1-1764633600.zip", foreign=""):
    return drill_script(tmp_path, FAKE_ETCD_KUBECTL, CANARY=canary, SNAPSHOT=snapshot, FOREIGN=foreign, STORE="etcd",
                        MANIFEST="/drill/etcd.yaml", RESOURCE="pod/drill-etcd", SCRATCH_POD="drill-etcd",
                        CANARY_KEY=drills.ETCD_CANARY_KEY, CANARY_MARKER=drills.ETCD_CANARY_MARKER)


def test_etcd_drill_finds_the_canary_in_the_restored_protobuf_and_tears_down(tmp_path):
    result, calls = run_etcd_drill(tmp_path, str(now() - 600))
    assert result.returncode == 0, result.stderr
    assert "restored etcd-snapshot-s-1-1764633600.zip: taken" in result.stderr
    assert ("exec --namespace dr-drills drill-etcd --container etcd -- etcdctl get "
            "/registry/configmaps/dr-drills/drill-canary --print-value-only") in calls
    assert calls[-1].startswith("delete --namespace dr-drills --filename /drill/etcd.yaml")


@pytest.mark.parametrize("canary, snapshot, foreign, message", [
    ("old", "etcd-snapshot-s-1-1764633600.zip", "", "misses recent writes"),
    ("", "etcd-snapshot-s-1-1764633600.zip", "", "no canary in the restored copy"),
    ("recent", "", "", "the download named no snapshot"),
    ("recent", "etcd-snapshot-s-1-1764633600.zip", "yes", "no kube-system Namespace"),
])
def test_etcd_drill_fails_without_a_recent_canary_a_snapshot_or_the_cluster_s_objects(
        tmp_path, canary, snapshot, foreign, message):
    value = {"old": str(now() - 7200), "recent": str(now() - 600), "": ""}[canary]
    result, calls = run_etcd_drill(tmp_path, value, snapshot, foreign)
    assert result.returncode == 1 and message in result.stderr
    assert calls[-1].startswith("delete --namespace dr-drills --filename /drill/etcd.yaml")


def test_etcd_canary_patches_its_configmap_with_the_marker_and_time(tmp_path):
    bin_dir = fake_bin(tmp_path, "kubectl", 'printf \'%s\\n\' "$*" >>"$CALLS"\n')
    calls = tmp_path / "calls"
    result = subprocess.run(["bash", str(redpanda_backup.SCRIPTS / "etcd-canary.sh")], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
                                             "CALLS": str(calls), "NAMESPACE": NS, "CANARY_CONFIGMAP": "drill-canary",
                                             "CANARY_KEY": "written-at", "CANARY_MARKER": "drill-canary@"})
    assert result.returncode == 0, result.stderr
    call = calls.read_text().strip()
    assert call.startswith("patch configmap drill-canary --namespace dr-drills --type merge --patch ")
    written = json.loads(call.split("--patch ", 1)[1])["data"]["written-at"]
    assert written.startswith("drill-canary@") and abs(int(written.split("@")[1]) - now()) < 60


# --- ScyllaDB: the drill's download, read-only, from Scylla Manager's layout (docs/restore-drills.md)
SCYLLA_DOWNLOAD = scylladb_bootstrap.SCRIPTS / "scylladb-drill-download.sh"
# S3, faked: objects are files under $S3ROOT/<bucket>/<key>; ListObjectsV2 answers every key under the prefix
# (in two pages when there are more than PAGE), GET copies the object to --output. Every request is logged.
FAKE_S3_CURL = r"""#!/usr/bin/env bash
cat >/dev/null
url="${*: -1}"
out=""
while (($#)); do [[ "$1" == --output ]] && out="$2"; shift; done
printf '%s\n' "$url" >>"$REQUESTS"
path="${url#https://s3/}"
case "$path" in
  b\?list-type=2*)
    prefix="$(sed -e 's/.*prefix=\([^&]*\).*/\1/' -e 's/%2F/\//g' <<<"$path")"
    start=0
    [[ "$path" == *continuation-token=* ]] && start="$PAGE"
    printf '<ListBucketResult>'
    (cd "$S3ROOT/b" && find . -type f | sed 's|^\./||' | sort | grep "^${prefix}" || true) |
      tail -n +"$((start + 1))" | head -n "$PAGE" | sed 's|.*|<Key>&</Key>|' | tr -d '\n'
    total="$(cd "$S3ROOT/b" && find . -type f | sed 's|^\./||' | grep -c "^${prefix}" || true)"
    if ((start == 0 && total > PAGE)); then
      printf '<IsTruncated>true</IsTruncated><NextContinuationToken>a+b/c=</NextContinuationToken>'
    fi
    printf '</ListBucketResult>' ;;
  b/*)
    [[ -f "$S3ROOT/$path" ]] || exit 22
    cp "$S3ROOT/$path" "$out" ;;
  *) exit 22 ;;
esac
"""
CLUSTER_ID = "3e99d4a8-67d2-45fe-87fb-87b1b90ea2dc"
TASK_ID = "f70117d8-c10e-4e90-9606-2587936b3757"
NODES = {"01c9349e-89e6-4ceb-a727-4f27f9f2acce": "r1", "427be6b6-0773-465c-b1a6-4ed2265500fe": "r2"}
VERSION = "f34b6ff0f8f711eb9fcf000000000000"


def put(root: Path, key: str, data: bytes) -> None:
    path = root / "b" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def manager_snapshot(root: Path, tag: str, files: dict[str, list[str]], tmp_nodes: tuple[str, ...] = ()) -> None:
    """One Manager snapshot as v3.10.1 writes it: each node's gzipped manifest (Go's compact JSON, FilesMeta in
    declaration order; `.tmp` while its node uploads) and the snapshot's schema file."""
    for node, rack in NODES.items():
        index = [{"keyspace": "other", "table": "t", "replication_type": "vnodes", "version": "0" * 32,
                  "files": ["me-1-big-Data.db"], "size": 1, "scylla_manifests": []},
                 {"keyspace": "drill_canary", "table": "canary", "replication_type": "tablets", "version": VERSION,
                  "files": files[node], "size": 2, "scylla_manifests": []}]
        manifest = {"version": "v2", "cluster_name": "scylla", "index": index, "rack": rack, "dc": "dc1",
                    "cluster_id": CLUSTER_ID, "node_id": node, "task_id": TASK_ID, "snapshot_tag": tag}
        suffix = ".tmp" if node in tmp_nodes else ""
        put(root, f"backup/meta/cluster/{CLUSTER_ID}/dc/dc1/node/{node}/task_{TASK_ID}_tag_{tag}_manifest.json.gz"
                  f"{suffix}", gzip.compress(json.dumps(manifest, separators=(",", ":")).encode()))
    put(root, f"backup/schema/cluster/{CLUSTER_ID}/task_{TASK_ID}_tag_{tag}_schema_with_internals.json.gz",
        gzip.compress(json.dumps([{"keyspace": "drill_canary", "type": "table", "name": "canary",
                                   "cql_stmt": f"CREATE TABLE drill_canary.canary -- {tag}"}]).encode()))


def sstable(root: Path, node: str, name: str) -> None:
    put(root, f"backup/sst/cluster/{CLUSTER_ID}/dc/dc1/node/{node}/keyspace/drill_canary/table/canary/{VERSION}/{name}",
        f"{node}/{name}".encode())


def run_scylla_download(tmp_path: Path, page: int = 1000):
    bin_dir = fake_bin(tmp_path, "curl", FAKE_S3_CURL)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    requests = tmp_path / "requests"
    requests.write_text("")
    result = subprocess.run(["bash", str(SCYLLA_DOWNLOAD)], capture_output=True, text=True, timeout=60, env={
        "PATH": f"{bin_dir}:/usr/bin:/bin", "WORK": str(work), "KEYSPACE": "drill_canary", "TABLE": "canary",
        "S3ROOT": str(tmp_path / "s3"), "REQUESTS": str(requests), "PAGE": str(page),
        "S3_ENDPOINT": "https://s3", "S3_REGION": "r", "S3_BUCKET": "b", "S3_ACCESS_KEY": "a", "S3_SECRET_KEY": "s"})
    return result, work, requests.read_text().splitlines()


def test_scylla_download_takes_the_newest_snapshot_every_node_finished(tmp_path):
    root = tmp_path / "s3"
    (first, second), old, new, uploading = NODES, "sm_20261130030000UTC", "sm_20261201030000UTC", "sm_20261202030000UTC"
    manager_snapshot(root, old, {first: ["me-1-big-Data.db"], second: ["me-1-big-Data.db"]})
    manager_snapshot(root, new, {first: ["me-2-big-Data.db", "me-2-big-TOC.txt"], second: ["me-3-big-Data.db"]})
    # the newest: one node still uploading (its manifest is .tmp): not complete
    manager_snapshot(root, uploading, {first: ["me-4-big-Data.db"], second: ["me-4-big-Data.db"]},
                     tmp_nodes=(second,))
    for node, name in [(first, "me-2-big-Data.db"), (first, "me-2-big-TOC.txt"), (second, "me-3-big-Data.db"),
                       (first, "me-1-big-Data.db"), (first, "me-4-big-Data.db")]:
        sstable(root, node, name)
    result, work, _ = run_scylla_download(tmp_path, page=3)  # the listings span pages
    assert result.returncode == 0, result.stderr
    assert (work / "snapshot").read_text() == f"{new}\n"
    assert new in gzip.decompress((work / "schema.json.gz").read_bytes()).decode()
    assert sorted(p.name for p in (work / "nodes" / first).iterdir()) == ["me-2-big-Data.db", "me-2-big-TOC.txt"]
    assert [p.name for p in (work / "nodes" / second).iterdir()] == ["me-3-big-Data.db"]
    assert (work / "nodes" / second / "me-3-big-Data.db").read_text() == f"{second}/me-3-big-Data.db"


def test_scylla_download_takes_an_sstable_as_its_snapshot_saw_it(tmp_path):
    """A later snapshot that replaced an SSTable of the same name left the older copy as <name>.sm_<its tag>: the
    snapshot restored takes the copy with the smallest tag after its own, not the newest."""
    root = tmp_path / "s3"
    first, second = NODES
    tag = "sm_20261201030000UTC"
    manager_snapshot(root, tag, {first: ["me-5-big-Data.db"], second: []})
    sstable(root, first, "me-5-big-Data.db")  # the newest version
    sstable(root, first, "me-5-big-Data.db.sm_20261130030000UTC")  # older than our snapshot: not ours
    sstable(root, first, "me-5-big-Data.db.sm_20261203030000UTC")
    sstable(root, first, "me-5-big-Data.db.sm_20261202030000UTC")  # ours: the first replacement after it
    result, work, _ = run_scylla_download(tmp_path)
    assert result.returncode == 0, result.stderr
    assert (work / "nodes" / first / "me-5-big-Data.db").read_text() == f"{first}/me-5-big-Data.db.sm_20261202030000UTC"


def test_scylla_download_fails_without_a_complete_snapshot_or_the_table(tmp_path):
    root = tmp_path / "s3"
    first, second = NODES
    manager_snapshot(root, "sm_20261201030000UTC", {first: ["me-1-big-Data.db"], second: []}, tmp_nodes=(first,))
    result, work, _ = run_scylla_download(tmp_path)
    assert result.returncode == 1
    assert "no complete snapshot" in result.stderr
    assert not (work / "nodes").exists()


def test_scylla_download_only_lists_and_reads(tmp_path):
    """Every request is a GET of the bucket's listing or of an object under backup/: the read-only key suffices."""
    root = tmp_path / "s3"
    first, second = NODES
    manager_snapshot(root, "sm_20261201030000UTC", {first: ["me-1-big-Data.db"], second: ["me-1-big-Data.db"]})
    sstable(root, first, "me-1-big-Data.db")
    sstable(root, second, "me-1-big-Data.db")
    result, _, requests = run_scylla_download(tmp_path)
    assert result.returncode == 0, result.stderr
    assert requests and all(r.startswith(("https://s3/b?list-type=2&prefix=backup%2F", "https://s3/b/backup/"))
                            for r in requests)
    script = SCYLLA_DOWNLOAD.read_text()
    assert "-X" not in script and "--upload-file" not in script and "DELETE" not in script


@pytest.mark.parametrize("keyspace", ["drill canary", "x;rm", "Canary"])
def test_scylla_download_refuses_a_keyspace_that_is_no_identifier(tmp_path, keyspace):
    bin_dir = fake_bin(tmp_path, "curl", FAKE_S3_CURL)
    result = subprocess.run(["bash", str(SCYLLA_DOWNLOAD)], capture_output=True, text=True, timeout=60, env={
        "PATH": f"{bin_dir}:/usr/bin:/bin", "WORK": str(tmp_path), "KEYSPACE": keyspace, "TABLE": "canary",
        "S3_ENDPOINT": "https://s3", "S3_REGION": "r", "S3_BUCKET": "b", "S3_ACCESS_KEY": "a", "S3_SECRET_KEY": "s"})
    assert result.returncode == 2
    assert f"got '{keyspace}'" in result.stderr


# --- ScyllaDB: the canary writer, the scratch node, check_scylladb -------------------------------------------
def scylla_bootstrap_files(run: Run) -> dict[str, str]:
    return run.named("scylla-bootstrap-scripts", CONFIGMAP).inputs["data"]


def test_scylladb_canary_role_may_only_modify_the_canary_table(production):
    files = scylla_bootstrap_files(production)
    cql = files["keyspaces.cql"]
    # the keyspace replicated like the others, the table's rows expiring after the retention, one grant: MODIFY
    assert ("CREATE KEYSPACE IF NOT EXISTS drill_canary WITH replication = "
            "{'class': 'NetworkTopologyStrategy', 'dc1': 3};") in cql
    ttl = drills.CANARY_RETENTION_DAYS * 86400
    assert ("CREATE TABLE IF NOT EXISTS drill_canary.canary (written_at timestamp PRIMARY KEY) "
            f"WITH default_time_to_live = {ttl};") in cql
    assert f"ALTER TABLE drill_canary.canary WITH default_time_to_live = {ttl};" in cql
    grants = [line for line in cql.splitlines() if '"drill_canary"' in line]
    assert grants == ['GRANT MODIFY ON TABLE drill_canary.canary TO "drill_canary";']
    # a login role of the bootstrap, its password from its own Secret, never from a consumer's
    roles = files["roles.txt"].splitlines()
    index = roles.index("drill_canary")
    job_env = env_of(production.named("scylla-bootstrap", "kubernetes:batch/v1:Job").inputs["spec"]["template"])
    assert job_env[f"ROLE_PASSWORD_{index}"] == {"secretKeyRef": {"name": "scylla-drill-canary", "key": "password"}}
    secret = production.named("scylla-drill-canary", SECRET).inputs
    assert secret["metadata"]["namespace"] == "scylla"
    values = string_data(production.named("scylla-drill-canary", SECRET))
    assert values["username"] == "drill_canary" and len(values["password"]) >= 24
    assert production.named("scylla-drill-canary-password", "random:index/randomPassword:RandomPassword")


def env_of(template: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in template["spec"]["containers"][0]["env"]}


def test_scylladb_canary_is_written_hourly_in_the_scylla_namespace(production):
    job = production.named("drill-canary-scylladb", CRONJOB).inputs
    validators.validate_kubernetes(CRONJOB, job)
    assert job["metadata"]["namespace"] == "scylla" and job["spec"]["schedule"] == drills.CANARY_SCHEDULE
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"].items() >= RESTRICTED_POD_SECURITY.items()
    [container] = pod["containers"]
    assert container["securityContext"].items() >= RESTRICTED_CONTAINER_SECURITY.items()
    assert container["image"] == f"docker.io/scylladb/scylla:{charts.SCYLLADB_VERSION}"
    assert container["command"] == ["/bin/bash", "/canary/scylladb-canary.sh"] and "args" not in container
    variables = env(production.named("drill-canary-scylladb", CRONJOB))
    # the password only from the Secret, through the environment (the script hands it to cqlsh in a file)
    assert variables["CANARY_PASSWORD"] == {"secretKeyRef": {"name": "scylla-drill-canary", "key": "password"}}
    assert variables["CQL_HOST"] == "scylla-client.scylla.svc" and variables["CANARY_KEYSPACE"] == "drill_canary"
    script = production.named("drill-canary-scylladb", CONFIGMAP).inputs["data"]["scylladb-canary.sh"]
    assert script == (scylladb_bootstrap.SCRIPTS / "scylladb-canary.sh").read_text()


def test_staging_has_no_scylladb_canary(staging):
    files = scylla_bootstrap_files(staging)
    assert "drill_canary" not in files["keyspaces.cql"] and "drill_canary" not in files["roles.txt"]
    assert not [r for r in staging.resources if "drill-canary" in r.name]


def test_skipping_scylladb_leaves_no_canary_role():
    run = skipped_run()
    assert "drill_canary" not in scylla_bootstrap_files(run)["roles.txt"]
    assert not [r for r in run.resources if "scylla" in r.name and "drill" in r.name]
    assert "scylladb.yaml" not in run.named("drill-scripts", CONFIGMAP).inputs["data"]


FAKE_CQLSH = r"""#!/usr/bin/env bash
printf '%s\n' "$*" >>"$CALLS"
while (($#)); do [[ "$1" == --credentials ]] && cat "$2" >>"$CREDENTIALS" && stat -c %a "$2" >>"$CREDENTIALS"; shift; done
"""


def test_scylladb_canary_inserts_one_row_with_the_password_in_a_file_only(tmp_path):
    bin_dir = fake_bin(tmp_path, "cqlsh", FAKE_CQLSH)
    calls, credentials = tmp_path / "calls", tmp_path / "credentials"
    calls.write_text(""), credentials.write_text("")
    result = subprocess.run(["bash", str(scylladb_bootstrap.SCRIPTS / "scylladb-canary.sh")], capture_output=True,
                            text=True, timeout=60, env={
        **os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(calls), "CREDENTIALS": str(credentials),
        "CQL_HOST": "scylla-client.scylla.svc", "CQL_PORT": "9042", "CANARY_KEYSPACE": "drill_canary",
        "CANARY_TABLE": "canary", "CANARY_USERNAME": "drill_canary", "CANARY_PASSWORD": "s3cret'pw"})
    assert result.returncode == 0, result.stderr
    [call] = calls.read_text().splitlines()
    assert "INSERT INTO drill_canary.canary (written_at) VALUES (toTimestamp(now()))" in call
    assert call.endswith("scylla-client.scylla.svc 9042") and "s3cret" not in call
    assert credentials.read_text() == "[plain_text_auth]\nusername = drill_canary\npassword = s3cret'pw\n600\n"


def test_scylladb_drill_loads_the_backup_into_a_small_loopback_node_on_wednesdays(production):
    job = production.named("drill-scylladb", CRONJOB).inputs
    assert job["metadata"]["namespace"] == NS and job["spec"]["schedule"] == "0 4 * * 3"  # its own day
    variables = env(production.named("drill-scylladb", CRONJOB))
    assert variables["RESOURCE"] == "pod/drill-scylladb" and variables["SCRATCH_POD"] == "drill-scylladb"
    # our own definition, one replica in the scratch node's DC; the table exactly as the bootstrap creates it
    assert variables["CANARY_SCHEMA"] == (
        "CREATE KEYSPACE IF NOT EXISTS drill_canary WITH replication = "
        "{'class': 'NetworkTopologyStrategy', 'datacenter1': 1}; "
        + scylladb_bootstrap.canary_table_cql(drills.CANARY_RETENTION_DAYS * 86400))
    assert scylladb_bootstrap.canary_table_cql(drills.CANARY_RETENTION_DAYS * 86400) in \
        scylla_bootstrap_files(production)["keyspaces.cql"]
    pod = scratch_manifest(production, "scylladb")
    validators.validate_kubernetes("kubernetes:core/v1:Pod", pod)
    spec = pod["spec"]
    assert pod["metadata"]["namespace"] == NS and spec["automountServiceAccountToken"] is False
    [server] = spec["containers"]
    assert server["image"] == f"docker.io/scylladb/scylla:{charts.SCYLLADB_VERSION}"
    args = server["command"]
    assert args[0] == "/usr/bin/scylla" and "--developer-mode=1" in args and "--overprovisioned" in args
    assert args[args.index("--smp") + 1] == "1"
    for flag in ("--listen-address", "--rpc-address", "--api-address", "--prometheus-address"):
        assert args[args.index(flag) + 1] == "127.0.0.1"
    assert server["resources"]["requests"] == server["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}
    # restricted, like every pod of dr-drills: non-root, no capabilities
    assert spec["securityContext"].items() >= RESTRICTED_POD_SECURITY.items()
    [download] = spec["initContainers"]
    assert all(c["securityContext"].items() >= RESTRICTED_CONTAINER_SECURITY.items() for c in (server, download))
    # the download: the read-only pair only, the canary table only
    download_env = {e["name"]: e.get("value", e.get("valueFrom")) for e in download["env"]}
    refs = [v["secretKeyRef"]["name"] for v in download_env.values() if isinstance(v, dict)]
    assert refs == [drills.S3_SECRET, drills.S3_SECRET]
    assert download_env["KEYSPACE"] == "drill_canary" and download_env["TABLE"] == "canary"
    assert download["command"] == ["/bin/bash", "/scripts/scylladb-drill-download.sh"]
    scripts = production.named("drill-scylladb-scripts", CONFIGMAP).inputs
    assert scripts["metadata"]["namespace"] == NS
    assert scripts["data"]["scylladb-drill-download.sh"] == SCYLLA_DOWNLOAD.read_text()
    data = next(v for v in spec["volumes"] if v["name"] == "data")
    assert "ephemeral" in data  # gone with the pod
    assert not in_namespace(production, NS, "kubernetes:core/v1:Service")
    assert [s.name for s in in_namespace(production, NS, SECRET)] == ["drill-backup-s3"]  # no ScyllaDB login


# The scratch node, faked: its table directory, the downloaded node directories and the canary's answer.
FAKE_SC_KUBECTL = r"""#!/usr/bin/env bash
printf '%s\n' "$*" >>"$CALLS"
case "$*" in
  *" find /var/lib/scylla/data/drill_canary "*) printf '/var/lib/scylla/data/drill_canary/canary-%s\n' "$TABLE_ID" ;;
  *" ls /work/nodes") printf '%s\n' $NODES ;;
  *"toUnixTimestamp(written_at)"*)  # cqlsh's table: the newest canary between older ones, or none
    printf 'Disabled Query paging.\n\n system.tounixtimestamp(written_at)\n------------\n'
    if [[ "$CANARY" == none ]]; then printf '\n(0 rows)\n'; exit 0; fi
    printf ' 1700000000000\n %s\n 1700003600000\n\n(3 rows)\n' "$CANARY" ;;
esac
exit 0
"""


def run_sc_drill(tmp_path: Path, canary: str, nodes: str = " ".join(NODES), table_id: str = VERSION):
    return drill_script(tmp_path, FAKE_SC_KUBECTL, CANARY=canary, NODES=nodes, TABLE_ID=table_id, STORE="scylladb",
                        MANIFEST="/drill/scylladb.yaml", RESOURCE="pod/drill-scylladb", SCRATCH_POD="drill-scylladb",
                        WORK="/work", CANARY_KEYSPACE="drill_canary", CANARY_TABLE="canary",
                        CANARY_SCHEMA="CREATE KEYSPACE x; CREATE TABLE y;")


def test_scylladb_drill_loads_every_nodes_sstables_and_reads_the_canary(tmp_path):
    result, calls = run_sc_drill(tmp_path, str((now() - 600) * 1000))
    assert result.returncode == 0, result.stderr
    prefix = "exec --namespace dr-drills drill-scylladb --container scylladb --"
    table = f"/var/lib/scylla/data/drill_canary/canary-{VERSION}"
    assert f"{prefix} cqlsh 127.0.0.1 --no-color -e CREATE KEYSPACE x; CREATE TABLE y;" in calls
    loads = [c for c in calls if " cp " in c or " nodetool " in c]
    first, second = NODES
    # node by node: its files into the table's upload directory, then loaded and streamed
    assert loads == [f"{prefix} cp -r /work/nodes/{first}/. {table}/upload/",
                     f"{prefix} nodetool refresh drill_canary canary --load-and-stream",
                     f"{prefix} cp -r /work/nodes/{second}/. {table}/upload/",
                     f"{prefix} nodetool refresh drill_canary canary --load-and-stream"]
    assert calls.index(loads[-1]) < next(i for i, c in enumerate(calls) if "toUnixTimestamp(written_at)" in c)
    assert calls[-1].startswith("delete --namespace dr-drills --filename /drill/scylladb.yaml")


# The canary's age in seconds when the drill runs (None: no canary row), not a timestamp: parameters are fixed at
# collection, and each xdist worker collects at its own time (their test ids must match).
@pytest.mark.parametrize(("canary_age", "nodes", "table_id", "message"), [
    (7200, " ".join(NODES), VERSION, "misses recent writes"),
    (None, " ".join(NODES), VERSION, "no canary in the restored copy"),
    (0, "", VERSION, "the download holds no node's SSTables"),
    (0, "../etc", VERSION, "refusing the node directory '../etc'"),
    (0, " ".join(NODES), "x y", "no single data directory"),
])
def test_scylladb_drill_fails_without_a_recent_canary_or_loaded_files(tmp_path, canary_age, nodes, table_id, message):
    canary = "none" if canary_age is None else str((now() - canary_age) * 1000)
    result, calls = run_sc_drill(tmp_path, canary, nodes, table_id)
    assert result.returncode == 1 and message in result.stderr
    assert calls[-1].startswith("delete --namespace dr-drills --filename /drill/scylladb.yaml")  # torn down


# --- the Velero drill ---------------------------------------------------------------------------------------
VAP = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
VAP_BINDING = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding"
ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
DRILL_USER = "system:serviceaccount:dr-drills:drill"


class _Obj(dict):
    """A JSON object as CEL sees it: fields by attribute (a missing one is an evaluation error), maps by key."""

    def __getattr__(self, key):
        if key not in self:
            raise KeyError(f"no such key: {key}")
        return _wrap(self[key])


def _wrap(value):
    return _Obj(value) if isinstance(value, dict) else value


def _has(obj, path: str) -> bool:
    for key in path.split("."):
        if not isinstance(obj, dict) or key not in obj:
            return False
        obj = obj[key]
    return True


def _cel_to_python(expr: str) -> str:
    """The subset of CEL the policy uses (has, size, in, ==, &&, ||, !, list literals, x.all(v, p) without nesting),
    translated to Python: no CEL library is installed, and every construct outside the subset is refused."""
    import re
    out = re.sub(r"\bhas\(([\w.]+)\)", lambda m: f"_has({m.group(1).split('.', 1)[0]}, '{m.group(1).split('.', 1)[1]}')",
                 expr)
    while ".all(" in out:
        at = out.index(".all(")
        start = at
        while start > 0 and (out[start - 1].isalnum() or out[start - 1] in "._"):
            start -= 1
        receiver = out[start:at]
        depth, i = 1, at + len(".all(")
        while depth:
            depth += {"(": 1, ")": -1}.get(out[i], 0)
            i += 1
        var, body = out[at + len(".all("):i - 1].split(", ", 1)
        assert ".all(" not in body, "nested all() is outside the translated subset"
        out = f"{out[:start]}all(({body}) for {var} in {receiver}){out[i:]}"
    out = re.sub(r"\bsize\(", "len(", out)
    out = out.replace("&&", " and ").replace("||", " or ").replace("false", "False").replace("true", "True")
    out = re.sub(r"!(?!=)", " not ", out)
    assert not re.search(r"[?:]|\bmatches\b|\bexists\b|\bfilter\b|\bmap\(", re.sub(r"'[^']*'", "''", out)), out
    return out


def cel(expr: str, obj: dict, username: str = DRILL_USER) -> bool:
    """The expression's value for `object` (an evaluation error, as for the API server: not admitted)."""
    # one namespace for everything: all()'s generator sees only globals
    scope = {"__builtins__": {"all": all, "len": len}, "object": _wrap(obj),
             "request": _wrap({"userInfo": {"username": username}}), "_has": _has}
    try:
        return bool(eval(_cel_to_python(expr), scope))  # noqa: S307
    except (KeyError, TypeError):
        return False


def admitted(policy: dict, restore: dict, username: str = DRILL_USER) -> bool:
    if not all(cel(c["expression"], restore, username) for c in policy["matchConditions"]):
        return True  # not the drill's: this policy does not apply
    return all(cel(v["expression"], restore, username) for v in policy["validations"])


def test_velero_policy_admits_only_the_drills_confined_restore(production):
    policy = production.named("drill-velero-policy", VAP).inputs
    binding = production.named("drill-velero-policy", VAP_BINDING).inputs
    validators.validate_kubernetes(VAP, policy)
    validators.validate_kubernetes(VAP_BINDING, binding)
    assert binding["spec"] == {"policyName": "restore-drill-velero", "validationActions": ["Deny"]}
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    assert spec["matchConstraints"]["resourceRules"] == [{"apiGroups": ["velero.io"], "apiVersions": ["*"],
                                                          "operations": ["CREATE", "UPDATE"],
                                                          "resources": ["restores"]}]
    restore = scratch_manifest(production, "velero")
    validators.validate_kubernetes("kubernetes:velero.io/v1:Restore", restore)
    assert admitted(spec, restore)  # the drill's own
    spec_of = restore["spec"]
    denied = {
        "no mapping": {k: v for k, v in spec_of.items() if k != "namespaceMapping"},
        "mapped into production": {**spec_of, "namespaceMapping": {"dr-drills": "kube-system"}},
        "an unmapped namespace": {**spec_of, "includedNamespaces": ["dr-drills", "postgres"]},
        "another namespace, mapped": {**spec_of, "includedNamespaces": ["postgres"],
                                      "namespaceMapping": {"postgres": "dr-drills-velero"}},
        "every namespace": {k: v for k, v in spec_of.items() if k != "includedNamespaces"},
        "every namespace by star": {**spec_of, "includedNamespaces": ["*"], "namespaceMapping": {"*": "dr-drills-velero"}},
        "cluster resources": {**spec_of, "includeClusterResources": True},
        "cluster resources by default": {k: v for k, v in spec_of.items() if k != "includeClusterResources"},
        "every kind": {k: v for k, v in spec_of.items() if k != "includedResources"},
        "secrets": {**spec_of, "includedResources": ["configmaps", "secrets"]},
        "a resource modifier": {**spec_of, "resourceModifier": {"kind": "ConfigMap", "name": "rewrite"}},
        "hooks": {**spec_of, "hooks": {"resources": [{"name": "x", "postHooks": [{"exec": {"command": ["sh"]}}]}]}},
    }
    for why, changed in denied.items():
        assert not admitted(spec, {**restore, "spec": changed}), why
    # anyone else's Restores are not this policy's (Velero's own restore-from-config among them)
    assert admitted(spec, {**restore, "spec": denied["no mapping"]}, username="system:serviceaccount:velero:velero")


def test_cel_translation_refuses_what_it_does_not_know():
    with pytest.raises(AssertionError):
        _cel_to_python("object.spec.x.exists(v, v == 'a')")
    assert not cel("object.spec.missing == 1", {"spec": {}})  # an evaluation error is no admission


def test_velero_drill_may_only_create_read_and_delete_its_restores(production):
    roles = {r.inputs["metadata"]["namespace"]: r.inputs["rules"] for r in production.of_type(ROLE)
             if r.inputs["metadata"]["name"] == "drill-velero"}
    # kubectl wait lists and watches the one Restore it waits for; no Backups, Schedules or Secrets
    assert roles == {"velero": [{"apiGroups": ["velero.io"], "resources": ["restores"],
                                 "verbs": ["create", "get", "list", "watch", "delete"]}],
                     "dr-drills-velero": [{"apiGroups": [""], "resources": ["configmaps"],
                                           "verbs": ["get", "list", "delete"]}]}
    bindings = [b.inputs for b in production.of_type(ROLE_BINDING) if b.inputs["metadata"]["name"] == "drill-velero"]
    assert {b["metadata"]["namespace"] for b in bindings} == {"velero", "dr-drills-velero"}
    assert all(b["subjects"] == [{"kind": "ServiceAccount", "name": "drill", "namespace": NS}] for b in bindings)
    target, = [n.inputs for n in production.of_type("kubernetes:core/v1:Namespace")
               if n.inputs["metadata"]["name"] == "dr-drills-velero"]
    assert target["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_velero_drill_restores_the_canary_from_the_newest_scheduled_backup_on_thursdays(production):
    job = production.named("drill-velero", CRONJOB).inputs
    assert job["metadata"]["namespace"] == NS and job["spec"]["schedule"] == "0 4 * * 4"
    variables = env(production.named("drill-velero", CRONJOB))
    assert variables["NAMESPACE"] == "velero" and variables["TARGET"] == "dr-drills-velero"
    assert variables["READY"] == "jsonpath={.status.phase}=Completed"
    restore = scratch_manifest(production, "velero")
    assert restore["metadata"] == {"name": "drill-velero", "namespace": "velero",
                                   "labels": restore["metadata"]["labels"]}
    assert restore["spec"]["scheduleName"] == "cluster"  # Velero takes the schedule's newest successful backup
    assert restore["spec"]["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "canary"
    # the canary it restores: etcd's ConfigMap in dr-drills, patched hourly and in every Velero backup
    assert production.named("drill-canary-etcd", CONFIGMAP).inputs["metadata"]["namespace"] == NS
    assert "dr-drills" not in production.named("velero-schedule").inputs["spec"]["template"]["excludedNamespaces"]
    assert f"> {2 * WEEK}" in rules(production)[("RestoreDrillStale", "velero")]["expr"]


def test_no_velero_drill_when_skipped():
    run = skipped_run()
    assert not run.of_type(VAP) and not run.of_type(VAP_BINDING)
    assert not [r for r in run.resources if "velero" in r.name and r.name.startswith(("drill-", "dr-drills"))]


def test_skipping_etcd_keeps_velero_skipped_too():
    found = config_problems(base_raw(dataPlane={"drills": {"skip": ["etcd"]}}))
    assert any(p.startswith("adplatform:dataPlane.drills.skip 'etcd' without 'velero': the Velero drill restores "
                            "etcd's canary") for p in found), found


FAKE_VELERO_KUBECTL = """#!/usr/bin/env bash
printf '%s\\n' "$*" >>"$CALLS"
case "$*" in
  *status.phase*) printf '%s' "$PHASE" ;;
  "get restore"*) printf 'cluster-20261203040000' ;;
  *restore-name}*) printf '%s' "$RESTORED_BY" ;;
  *go-template*) printf '%s' "$CANARY" ;;
esac
"""


def run_velero_drill(tmp_path: Path, canary: str, restored_by: str = "drill-velero", phase: str = "Completed"):
    return drill_script(tmp_path, FAKE_VELERO_KUBECTL, CANARY=canary, RESTORED_BY=restored_by, PHASE=phase,
                        POLL_SECONDS="0", TIMEOUT_SECONDS="1",
                        STORE="velero", NAMESPACE="velero", MANIFEST="/drill/velero.yaml",
                        RESOURCE="restores.velero.io/drill-velero", READY="jsonpath={.status.phase}=Completed",
                        TARGET="dr-drills-velero", RESTORE="drill-velero", CANARY_CONFIGMAP="drill-canary",
                        CANARY_KEY="written-at", CANARY_MARKER="drill-canary@")


CLEAN_RESTORED = "delete configmap --namespace dr-drills-velero --selector velero.io/restore-name=drill-velero"


def test_velero_drill_reads_the_restored_canary_and_removes_it_and_the_restore(tmp_path):
    result, calls = run_velero_drill(tmp_path, f"drill-canary@{now() - 600}")
    assert result.returncode == 0, result.stderr
    assert "restored from backup cluster-20261203040000" in result.stderr and "passed" in result.stderr
    assert calls[0].startswith(CLEAN_RESTORED)  # a previous drill's leftovers, then its Restore
    assert calls[1].startswith("delete --namespace velero --filename /drill/velero.yaml")
    assert calls[2] == "apply --namespace velero --filename /drill/velero.yaml"
    assert calls[3] == "get restore --namespace velero drill-velero --output jsonpath={.status.phase}"
    assert any(c.startswith("get configmap --namespace dr-drills-velero drill-canary") for c in calls)
    assert calls[-2].startswith(CLEAN_RESTORED) and calls[-1].startswith("delete --namespace velero --filename")


@pytest.mark.parametrize("canary_age, restored_by, phase, message", [
    (7200, "drill-velero", "Completed", "misses recent writes"),
    (60, "", "Completed", "no canary ConfigMap restored by drill-velero"),  # nothing restored (or another's copy)
    (None, "drill-velero", "Completed", "the restored canary holds no time"),
    (60, "drill-velero", "InProgress", "the Restore is still 'InProgress' after 1s"),  # never completed
    (60, "drill-velero", "FailedValidation", "the Restore ended FailedValidation"),  # at once: e.g. no backup yet
    (60, "drill-velero", "PartiallyFailed", "the Restore ended PartiallyFailed"),
])
def test_velero_drill_fails_and_still_cleans_up(tmp_path, canary_age, restored_by, phase, message):
    canary = "" if canary_age is None else f"drill-canary@{now() - canary_age}"
    result, calls = run_velero_drill(tmp_path, canary, restored_by, phase)
    assert result.returncode != 0 and message in result.stderr
    if phase not in ("Completed", "InProgress"):  # an ended Restore is read once, not polled to the timeout
        assert sum(c.endswith("jsonpath={.status.phase}") for c in calls) == 1
    assert calls[-2].startswith(CLEAN_RESTORED) and calls[-1].startswith("delete --namespace velero --filename")


# --- the DragonflyDB drill (Velero's file-system restore) -----------------------------------------------------
def test_dragonfly_drill_restores_the_first_instances_pod_and_volume_on_fridays(production):
    job = production.named("drill-dragonfly", CRONJOB).inputs
    validators.validate_kubernetes(CRONJOB, job)
    assert job["metadata"]["namespace"] == NS and job["spec"]["schedule"] == "0 4 * * 5"
    variables = env(production.named("drill-dragonfly", CRONJOB))
    assert variables["NAMESPACE"] == "velero" and variables["TARGET"] == "dr-drills-dragonfly"
    assert variables["CANARY_KEY"] == "drill-canary:written-at"
    restore = scratch_manifest(production, "dragonfly")
    validators.validate_kubernetes("kubernetes:velero.io/v1:Restore", restore)
    spec = restore["spec"]
    assert spec["scheduleName"] == "cluster"  # dragonfly is not a live database's namespace: its volume is backed up
    assert "dragonfly" not in production.named("velero-schedule").inputs["spec"]["template"]["excludedNamespaces"]
    # a PodVolumeRestore needs claims and volumes included; false would skip the volume and keep production's name
    assert spec["includedResources"] == ["persistentvolumeclaims", "persistentvolumes", "pods"]
    assert "includeClusterResources" not in spec
    assert spec["labelSelector"] == {"matchLabels": {"statefulset.kubernetes.io/pod-name": "dragonfly-0"}}
    assert spec["resourceModifier"] == {"kind": "ConfigMap", "name": "drill-dragonfly-modifier"}
    assert f"> {2 * WEEK}" in rules(production)[("RestoreDrillStale", "dragonfly")]["expr"]


def test_dragonfly_modifier_replaces_every_production_reference_in_the_restored_pod(production):
    modifier = production.named("drill-dragonfly-modifier", CONFIGMAP).inputs
    assert modifier["metadata"]["namespace"] == "velero"  # the drill may not write there
    [text] = modifier["data"].values()  # Velero reads a modifier ConfigMap's one key
    config = yaml.safe_load(text)
    assert config["version"] == "v1"
    rule, claim_rule = config["resourceModifierRules"]
    assert rule["conditions"] == {"groupResource": "pods", "namespaces": ["dragonfly"],
                                  "resourceNameRegex": "^dragonfly-0$"}  # matched before the namespace mapping
    # The restored claim is provisioned on the class that deletes its volume with it (production's keeps them).
    assert claim_rule["conditions"] == {"groupResource": "persistentvolumeclaims", "namespaces": ["dragonfly"],
                                        "resourceNameRegex": "^df-dragonfly-0$"}
    [claim_patch] = claim_rule["mergePatches"]
    scratch = json.loads(claim_patch["patchData"])["spec"]["storageClassName"]
    assert reclaim_policies(production)[scratch] == "Delete"
    [merge] = rule["mergePatches"]
    patch = json.loads(merge["patchData"])
    # what Velero restores (the operator's pod, after Velero put restore-wait first), merged as RFC 7386 says
    pod = {"metadata": {"labels": {"app": "dragonfly", "role": "master", "statefulset.kubernetes.io/pod-name":
                                   "dragonfly-0"}},
           "spec": {"initContainers": [{"name": "restore-wait", "volumeMounts": [{"name": "df"}]}],
                    "containers": [{"name": "dragonfly", "args": ["--aclfile=/var/lib/dragonfly/dragonfly.acl"],
                                    "env": [{"name": "DFLY_requirepass", "valueFrom": {"secretKeyRef": {}}}]}],
                    "volumes": [{"name": "df", "persistentVolumeClaim": {"claimName": "df-dragonfly-0"}},
                                {"name": "dragonfly-acl", "secret": {"secretName": "dragonfly-acl"}},
                                {"name": "liveness", "configMap": {"name": "dragonfly-liveness"}}],
                    "readinessGates": [{"conditionType": "dragonflydb.io/replication-ready"}],
                    "nodeSelector": {"x": "y"}}}
    merged = merge_patch(pod, patch)
    text = json.dumps(merged["spec"])
    assert "secret" not in text.lower() and "acl" not in text and "configMap" not in text
    assert merged["spec"]["initContainers"] == pod["spec"]["initContainers"]  # restore-wait still fills df
    assert [v["name"] for v in merged["spec"]["volumes"]] == ["df"]
    [container] = merged["spec"]["containers"]
    assert "--bind=127.0.0.1" in container["args"] and "--dbfilename=dump" in container["args"]
    assert container["volumeMounts"] == [{"name": "df", "mountPath": "/dragonfly/snapshots"}]
    assert "readinessGates" not in merged["spec"] and "nodeSelector" not in merged["spec"]
    assert merged["metadata"]["labels"] == {"statefulset.kubernetes.io/pod-name": "dragonfly-0"}
    assert merged["spec"]["automountServiceAccountToken"] is False


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def test_policy_admits_exactly_the_dragonfly_drills_restore(production):
    spec = production.named("drill-velero-policy", VAP).inputs["spec"]
    restore = scratch_manifest(production, "dragonfly")
    assert admitted(spec, restore)
    assert admitted(spec, scratch_manifest(production, "velero"))  # the Velero drill's constraints are intact
    s = restore["spec"]
    denied = {
        "another modifier": {**s, "resourceModifier": {"kind": "ConfigMap", "name": "rewrite"}},
        "no modifier": {k: v for k, v in s.items() if k != "resourceModifier"},
        "another namespace mapping": {**s, "namespaceMapping": {"dragonfly": "kube-system"}},
        "a second mapping": {**s, "namespaceMapping": {"dragonfly": "dr-drills-dragonfly", "postgres": "x"}},
        "another namespace": {**s, "includedNamespaces": ["dragonfly", "postgres"]},
        "secrets": {**s, "includedResources": [*s["includedResources"], "secrets"]},
        "every kind": {k: v for k, v in s.items() if k != "includedResources"},
        "cluster resources": {**s, "includeClusterResources": True},
        "every pod": {**s, "labelSelector": {"matchLabels": {"app": "dragonfly"}}},
        "or selectors": {**s, "orLabelSelectors": [{"matchLabels": {"app": "x"}}]},
        "hooks": {**s, "hooks": {"resources": [{"name": "x"}]}},
    }
    for why, changed in denied.items():
        assert not admitted(spec, {**restore, "spec": changed}), why
    assert not admitted(spec, {**restore, "metadata": {**restore["metadata"], "name": "other"}})  # only its names
    # the Velero drill's Restore may not borrow the modifier
    velero = scratch_manifest(production, "velero")
    assert not admitted(spec, {**velero, "spec": {**velero["spec"], "resourceModifier": s["resourceModifier"]}})


def test_dragonfly_drill_may_act_only_on_what_its_restore_created(production):
    roles = {r.inputs["metadata"]["namespace"]: r.inputs["rules"] for r in production.of_type(ROLE)
             if r.inputs["metadata"]["name"] == "drill-dragonfly"}
    assert set(roles) == {"velero", "dr-drills-dragonfly"}
    assert {r for rule in roles["dr-drills-dragonfly"] for r in rule["resources"]} == {
        "pods", "pods/exec", "persistentvolumeclaims"}  # no Secrets, no ConfigMaps (the modifier is in velero)
    assert roles["velero"] == [{"apiGroups": ["velero.io"], "resources": ["restores"],
                                "verbs": ["create", "get", "list", "watch", "delete"]}]


def test_dragonfly_canary_user_may_only_set_its_key(production):
    acl = string_data(production.named("dragonfly-acl", SECRET))["dragonfly.acl"]
    line = next(line for line in acl.splitlines() if line.startswith("user drill-canary "))
    assert line.endswith("resetkeys ~drill-canary:written-at resetchannels -@all +set")
    job = production.named("drill-canary-dragonfly", CRONJOB).inputs
    assert job["metadata"]["namespace"] == "dragonfly" and job["spec"]["schedule"] == drills.CANARY_SCHEDULE
    variables = env(production.named("drill-canary-dragonfly", CRONJOB))
    assert variables["REDISCLI_AUTH"] == {"secretKeyRef": {"name": "dragonfly-drill-canary", "key": "password"}}
    script = production.named("drill-canary-dragonfly", CONFIGMAP).inputs["data"]["dragonfly-canary.sh"]
    assert validators.shellcheck({"canary": script}) == ""


FAKE_DF_KUBECTL = """#!/usr/bin/env bash
printf '%s\\n' "$*" >>"$CALLS"
case "$*" in
  *status.phase*) printf '%s' "$PHASE" ;;
  *spec.backupName*) printf 'cluster-20261205040000' ;;
  *DBSIZE*) printf '42\\n' ;;
  *GET*) printf '%s\\n' "$CANARY" ;;
  wait*) exit "${WAIT_RC:-0}" ;;
esac
"""
DF_TEARDOWN = ("delete pods,persistentvolumeclaims --namespace dr-drills-dragonfly "
               "--selector velero.io/restore-name=drill-dragonfly")


def run_df_drill(tmp_path: Path, canary: str, phase: str = "Completed", wait_rc: int = 0):
    return drill_script(tmp_path, FAKE_DF_KUBECTL, CANARY=canary, PHASE=phase, WAIT_RC=str(wait_rc),
                        POLL_SECONDS="0", STORE="dragonfly", NAMESPACE="velero", MANIFEST="/drill/dragonfly.yaml",
                        RESOURCE="restores.velero.io/drill-dragonfly", TIMEOUT_SECONDS="1",
                        TARGET="dr-drills-dragonfly", RESTORE="drill-dragonfly", SCRATCH_POD="dragonfly-0",
                        LOAD_TIMEOUT_SECONDS="60", CANARY_KEY="drill-canary:written-at")


def test_dragonfly_drill_reads_the_canary_from_the_restored_snapshot_and_tears_down(tmp_path):
    result, calls = run_df_drill(tmp_path, str(now() - 600))
    assert result.returncode == 0, result.stderr
    assert "restored from backup cluster-20261205040000: 42 keys loaded" in result.stderr
    assert calls[0].startswith(DF_TEARDOWN) and calls[2] == "apply --namespace velero --filename /drill/dragonfly.yaml"
    assert any(c.startswith("wait --namespace dr-drills-dragonfly --for=condition=Ready --timeout=60s "
                            "pod/dragonfly-0") for c in calls)
    assert ("exec --namespace dr-drills-dragonfly dragonfly-0 --container dragonfly -- redis-cli -h 127.0.0.1 --raw "
            "GET drill-canary:written-at") in calls
    assert calls[-2].startswith(DF_TEARDOWN) and calls[-1].startswith("delete --namespace velero --filename")


@pytest.mark.parametrize("canary_age, phase, wait_rc, message", [
    (60, "PartiallyFailed", 0, "the Restore ended PartiallyFailed"),
    (60, "Failed", 0, "the Restore ended Failed"),
    (60, "FailedValidation", 0, "the Restore ended FailedValidation"),  # e.g. no backup of the schedule yet
    (60, "InProgress", 0, "the Restore is still 'InProgress'"),  # timed out
    (60, "Completed", 1, ""),  # the snapshot never loaded
    (None, "Completed", 0, "holds no canary time"),
    (7200, "Completed", 0, "misses recent writes"),
])
def test_dragonfly_drill_fails_and_still_tears_down(tmp_path, canary_age, phase, wait_rc, message):
    canary = "" if canary_age is None else str(now() - canary_age)
    result, calls = run_df_drill(tmp_path, canary, phase, wait_rc)
    assert result.returncode != 0 and message in result.stderr
    assert calls[-2].startswith(DF_TEARDOWN) and calls[-1].startswith("delete --namespace velero --filename")
