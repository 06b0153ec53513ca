"""Disaster recovery: Redpanda's backup path, every store's restore from config, and the whole-cluster-loss
runbook (docs/disaster-recovery.md)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from components.data import redpanda_backup
from components.recovery import STORES, cluster_set
from config import ConfigError, load
from config.data import DataPlane
from tests import validators, variants
from tests.conftest import SECRET_KEYS, base_raw, run_raw
from tests.stores import SECRET, string_data

JOB = "kubernetes:batch/v1:Job"
CRONJOB = "kubernetes:batch/v1:CronJob"
USER = "kubernetes:cluster.redpanda.com/v1alpha2:User"
RESTORE = "kubernetes:velero.io/v1:Restore"
PG_CLUSTER = "kubernetes:postgresql.cnpg.io/v1:Cluster"
DRAGONFLY = "kubernetes:dragonflydb.io/v1alpha1:Dragonfly"

@pytest.fixture(scope="module")
def restoring():
    """Every store restored from its own backup (variants.STORE_RESTORES; a run shared with other files)."""
    return variants.data_variant()


def _env(container: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def _deps(run, resource) -> set[str]:
    return {run.by_urn(u).name for u in resource.dependencies}


# --- Redpanda's backup path ---------------------------------------------------------------------------------

def test_redpanda_exports_on_a_schedule_with_rpk_then_uploads_with_its_own_keys(production):
    job = production.named("redpanda-backup", CRONJOB).inputs
    assert job["metadata"]["namespace"] == "redpanda"
    assert job["spec"]["schedule"] == "0 */6 * * *" and job["spec"]["concurrencyPolicy"] == "Forbid"
    # each finished pod holds a broker-sized volume until it goes
    assert job["spec"]["successfulJobsHistoryLimit"] == job["spec"]["failedJobsHistoryLimit"] == 1
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [export], [upload] = pod["initContainers"], pod["containers"]
    assert export["image"] == "docker.redpanda.com/redpandadata/redpanda:v26.2.1"  # the brokers' own rpk
    assert export["command"] == ["/bin/bash", "/scripts/redpanda-export.sh"]
    rpk = _env(export)
    assert rpk["RPK_TLS_ENABLED"] == "true"
    assert not [k for k in rpk if k.startswith("RPK_ADMIN")]  # the Admin API is for superusers only
    assert rpk["RPK_BROKERS"].split(",")[0] == "redpanda-0.redpanda.redpanda.svc.cluster.local:9093"
    assert rpk["RPK_PASS"] == {"secretKeyRef": {"name": "redpanda-backup-user", "key": "password"}}
    assert upload["command"] == ["/bin/bash", "/scripts/redpanda-upload.sh"]
    s3 = _env(upload)
    assert (s3["S3_BUCKET"], s3["S3_PREFIX"], s3["KEEP"]) == ("adp-production-backups", "production/data/redpanda",
                                                               "28")
    assert s3["S3_ACCESS_KEY"] == {"secretKeyRef": {"name": "redpanda-backup-s3", "key": "ACCESS_KEY_ID"}}
    # backupCredentials.redpanda: its own pair, held by no other writer
    keys = string_data(production.named("redpanda-backup-s3", SECRET))
    assert keys == {"ACCESS_KEY_ID": "offline-placeholder-redpanda-access-key",
                    "SECRET_ACCESS_KEY": "offline-placeholder-redpanda-secret-key"}
    assert "offline-placeholder" not in json.dumps(job)
    assert pod["automountServiceAccountToken"] is False and pod["securityContext"]["runAsNonRoot"] is True
    assert {"redpanda-backup-s3", "redpanda-backup-scripts", "redpanda-cluster"} <= _deps(
        production, production.named("redpanda-backup", CRONJOB))
    scripts = production.named("redpanda-backup-scripts", "kubernetes:core/v1:ConfigMap").inputs["data"]
    assert set(scripts) == set(redpanda_backup.SCRIPT_FILES)
    assert not production.of_type(JOB) or "redpanda-restore" not in {r.name for r in production.of_type(JOB)}


def test_the_export_user_may_only_read(production):
    user = production.named("redpanda-backup-user", USER).inputs
    assert user["metadata"]["name"] == "redpanda-backup"
    operations = {op for acl in user["spec"]["authorization"]["acls"] for op in acl["operations"]}
    assert operations == {"Read", "Describe", "DescribeConfigs"}
    assert "redpanda-restore-user" not in {r.name for r in production.of_type(USER)}, "only while restoring"


def test_redpanda_scripts_pass_shellcheck():
    paths = [str(redpanda_backup.SCRIPTS / name) for name in redpanda_backup.SCRIPT_FILES]
    result = subprocess.run([str(validators.BIN / "shellcheck"), "-x", "--shell=bash", "--severity=style", *paths],
                            capture_output=True, text=True, check=False, cwd=redpanda_backup.SCRIPTS)
    assert result.stdout + result.stderr == ""


def test_the_import_refuses_a_name_that_is_not_an_export(tmp_path: Path):
    env = {"PATH": "/usr/bin:/bin", "WORK": str(tmp_path), "BACKUP": "../../etc", "S3_ENDPOINT": "https://s3",
           "S3_REGION": "r", "S3_BUCKET": "b", "S3_PREFIX": "p", "S3_ACCESS_KEY": "a", "S3_SECRET_KEY": "s"}
    result = subprocess.run(["bash", str(redpanda_backup.SCRIPTS / "redpanda-download.sh")], env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "BACKUP must be an export name" in result.stderr


# --- restore from config ------------------------------------------------------------------------------------

def test_nothing_is_restored_unless_asked_for(production):
    assert production.named("postgres-cluster", PG_CLUSTER).inputs["spec"]["bootstrap"] == {
        "initdb": {"dataChecksums": True}}
    assert "externalClusters" not in production.named("postgres-cluster", PG_CLUSTER).inputs["spec"]
    assert not production.of_type(RESTORE)
    assert not [r for r in production.of_type(JOB) if "restore" in r.name]


def test_postgres_bootstraps_from_the_barman_archive_and_archives_under_a_new_name(restoring):
    spec = restoring.named("postgres-cluster", PG_CLUSTER).inputs["spec"]
    assert spec["bootstrap"] == {"recovery": {"source": "backup", "recoveryTarget": {
        "backupID": "20261120T020012", "targetTime": "2026-11-20T14:30:00Z"}}}
    assert spec["externalClusters"] == [{"name": "backup", "plugin": {
        "name": "barman-cloud.cloudnative-pg.io",
        "parameters": {"barmanObjectName": "postgres-backups", "serverName": "postgres"}}}]
    assert spec["plugins"][0]["parameters"] == {"barmanObjectName": "postgres-backups", "serverName": "postgres-2"}


def test_pulumi_waits_for_the_recovery_as_long_as_a_restore_takes(restoring, production):
    # A recovery replays the base backup and the WAL since: an hour before `pulumi up` gives up; a new cluster 15 min.
    def awaited(run):
        return run.named("postgres-cluster", PG_CLUSTER).inputs["metadata"]["annotations"]
    assert awaited(restoring) == {"pulumi.com/waitFor": "condition=Ready", "pulumi.com/timeoutSeconds": "3600"}
    assert awaited(production)["pulumi.com/timeoutSeconds"] == "900"


def test_each_postgres_database_waits_as_long_as_its_primarys_recovery(restoring, production):
    # A Database is awaited from the Cluster's creation until the primary applied it: the primary's recovery first.
    for run, seconds in ((restoring, "3600"), (production, "900")):
        for database in (r for r in run.resources if r.type == "kubernetes:postgresql.cnpg.io/v1:Database"):
            assert database.inputs["metadata"]["annotations"]["pulumi.com/timeoutSeconds"] == seconds, database.name


def test_clickhouse_restores_the_named_backup_once(restoring):
    job = restoring.named("clickhouse-restore", JOB)
    assert job.inputs["metadata"]["name"] == "clickhouse-restore-full-20261120t010000z"
    [container] = job.inputs["spec"]["template"]["spec"]["containers"]
    assert _env(container)["RESTORE"] == "full-20261120T010000Z"
    assert container["command"] == ["/bin/bash", "/scripts/create-remote.sh"]
    assert job.inputs["spec"]["backoffLimit"] == 0
    assert "clickhouse-installation" in _deps(restoring, job)
    # every replica gets the Replicated tables of the schema the restore creates
    sidecar = restoring.named("clickhouse-installation").inputs["spec"]["templates"]["podTemplates"][0]["spec"][
        "containers"]
    assert any(_env(c).get("RESTORE_SCHEMA_ON_CLUSTER") == "analytics" for c in sidecar)


def test_clickhouse_restore_script_refuses_a_foreign_name(tmp_path: Path):
    script = Path(redpanda_backup.__file__).parent / "clickhouse" / "create-remote.sh"
    env = {"PATH": "/usr/bin:/bin", "SHARDS": "h", "DOMAIN": "d", "API_PORT": "1", "API_USERNAME": "u",
           "API_PASSWORD": "p", "RESTORE": "x; rm -rf /"}
    result = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "RESTORE must be a backup name" in result.stderr


def test_scylladb_restores_schema_then_tables_after_manager_has_credentials(restoring):
    job = restoring.named("scylla-restore", JOB)
    [container] = job.inputs["spec"]["template"]["spec"]["containers"]
    env = _env(container)
    assert (env["SNAPSHOT_TAG"], env["LOCATION"], env["CLUSTER"]) == (
        "sm_20261120030000UTC", "s3:adp-test-backups", "scylla/scylla")
    assert job.inputs["metadata"]["namespace"] == "scylla-manager"
    assert "scylla-manager-credentials" in _deps(restoring, job)
    script = restoring.named("scylla-restore-scripts").inputs["data"]["restore.sh"]
    assert script.index("restore --restore-schema") < script.index("restore --restore-tables")


def test_scylladb_keyspaces_come_from_the_snapshot_then_get_their_grants(restoring, production):
    """Manager's schema restore runs the snapshot's CREATE KEYSPACE as is: the bootstrap must not have created
    the keyspaces; their replication and the application's grants follow the restore."""
    assert "CREATE KEYSPACE IF NOT EXISTS ads" in production.named("scylla-bootstrap-scripts").inputs["data"][
        "keyspaces.cql"]
    assert restoring.named("scylla-bootstrap-scripts").inputs["data"]["keyspaces.cql"] == ""
    after = restoring.named("scylla-keyspaces-scripts").inputs["data"]["keyspaces.cql"]
    # The keyspaces' replication and the consumers' grants (test_store_users.py) come with the second run: the same
    # CQL the bootstrap runs on a new cluster.
    assert after.startswith("CREATE KEYSPACE IF NOT EXISTS ads") and "ALTER KEYSPACE ads WITH replication" in after
    assert "scylla-restore" in _deps(restoring, restoring.named("scylla-keyspaces", JOB))


def test_dragonfly_volumes_come_back_before_the_instances_start(restoring):
    restore = restoring.named("dragonfly-restore", RESTORE)
    assert restore.inputs["spec"] == {
        "backupName": "cluster-20261120020012", "includedNamespaces": ["dragonfly"], "excludedNamespaces": [],
        "restorePVs": True, "existingResourcePolicy": "none",
        "labelSelector": {"matchExpressions": [{"key": "owner", "operator": "NotIn", "values": ["helm"]}]},
        "includedResources": ["persistentvolumeclaims", "persistentvolumes", "pods"]}
    assert restore.inputs["metadata"]["namespace"] == "velero"
    assert "velero" in _deps(restoring, restore)
    assert "dragonfly-restore" in _deps(restoring, restoring.named("dragonfly", DRAGONFLY))


def test_redpanda_imports_the_named_export_with_a_user_that_may_write(restoring):
    job = restoring.named("redpanda-restore", JOB)
    assert job.inputs["metadata"]["name"] == "redpanda-restore-20261120t030000z"
    pod = job.inputs["spec"]["template"]["spec"]
    [download], [imported] = pod["initContainers"], pod["containers"]
    assert _env(download)["BACKUP"] == _env(imported)["BACKUP"] == "20261120T030000Z"
    assert _env(imported)["RPK_USER"] == {"secretKeyRef": {"name": "redpanda-restore-user", "key": "username"}}
    user = restoring.named("redpanda-restore-user", USER).inputs["spec"]
    operations = {op for acl in user["authorization"]["acls"] for op in acl["operations"]}
    assert "Write" in operations and "Create" in operations and "Alter" not in operations


def test_restored_objects_match_their_schemas(restoring):
    names = {"postgres-cluster", "dragonfly-restore", "redpanda-restore-user", "redpanda-restore", "clickhouse-restore",
             "scylla-restore"}
    for resource in validators.kubernetes_objects(restoring):
        if resource.name in names:
            validators.validate_kubernetes(resource.type, resource.inputs)


@pytest.mark.parametrize("store, value, key, accepted", [
    ("postgres", {"backupServerName": "p2", "restore": {"backupId": "latest"}}, "restore.backupId", "barman backup id"),
    ("postgres", {"backupServerName": "p2", "restore": {"targetTime": "2026-11-20 14:30"}}, "restore.targetTime",
     "RFC 3339"),
    ("postgres", {"restore": {}}, "", "must archive under a new server name"),
    ("clickhouse", {"restore": {"backup": "full-2026"}}, "restore.backup", "full-<UTC time>"),
    ("scylladb", {"restore": {"snapshotTag": "sm_2026'; DROP"}}, "restore.snapshotTag", "sm_<yyyymmddhhmmss>UTC"),
    ("dragonfly", {"restore": {"backup": "Cluster_1"}}, "restore.backup", "Kubernetes name"),
    ("redpanda", {"restore": {"backup": "$(id)"}}, "restore.backup", "<UTC time>"),
])
def test_restore_switches_refuse_what_their_tool_would_not_name(store, value, key, accepted):
    with pytest.raises(ConfigError) as err:
        load("production", base_raw(dataPlane={store: value}), SECRET_KEYS)
    path = f"adplatform:dataPlane.{store}{'.' + key if key else ''}"
    assert any(str(p).startswith(path) and accepted in str(p) for p in err.value.problems), err.value.problems


def test_a_restore_needs_backups_to_read():
    raw = base_raw(profile="staging", dataPlane={"clickhouse": {"restore": {"backup": "full-20261120T010000Z"}},
                                                 "objectStorage": {"enabled": False}})
    raw["clusterServices"] = {"backups": {"enabled": False}}
    with pytest.raises(ConfigError) as err:
        load("staging", raw, SECRET_KEYS)
    assert any(str(p).startswith("adplatform:dataPlane.clickhouse.restore has no backups to read")
               for p in err.value.problems), err.value.problems


# --- the whole-cluster-loss runbook -------------------------------------------------------------------------

def test_runbook_brings_back_cluster_then_stores_then_platform_then_ads(production):
    steps = production.outputs["disasterRecovery"]
    assert [s["step"] for s in steps] == ["cluster", "stores", "platform", "adServices"]
    first = steps[0]["set"]
    assert first["adplatform:layers.dataPlane"] is False and first["adplatform:layers.platform"] is False
    # The secret store from its consistent raft snapshot, so Velero leaves its namespace out (one source per restore).
    assert first["adplatform:clusterServices.backups.restore"]["excludeNamespaces"] == ["dragonfly", "openbao"]
    assert first["adplatform:clusterServices.secrets.restore"] == {"snapshot": "latest"}
    assert any("job/openbao-restore-latest" in check for check in steps[0]["checks"])
    assert steps[1]["set"] == {"adplatform:layers.dataPlane": True}
    assert steps[2]["set"] == {"adplatform:layers.platform": True}
    assert "disasterRecovery" not in production.secret_outputs


def test_the_new_cluster_step_refreshes_between_two_ups(production):
    """The Kubernetes provider keeps its constant clusterIdentifier, so the up that makes the new cluster under the
    old state creates no Kubernetes object: the state still lists them. A refresh after it (the provider now reads the
    new cluster) drops them, and a second up creates them, Velero and its restore included."""
    assert production.outputs["disasterRecovery"][0]["run"] == \
        "pulumi up --stack production && pulumi refresh --stack production && pulumi up --stack production"


def test_runbook_names_every_store_object_storage_first(production):
    stores = production.outputs["disasterRecovery"][1]["stores"]
    assert [s["store"] for s in stores] == [store for store, *_ in STORES] == [
        "objectStorage", "postgres", "clickhouse", "scylladb", "redpanda", "dragonfly"]
    # every store the config knows, none forgotten when one is added
    from config.catalog import STORE_ROLES
    assert {s["store"] for s in stores} == {DataPlane.model_fields[name].alias for name in STORE_ROLES}
    keys = {s["store"]: set(s.get("set", {})) for s in stores}
    for store in ("postgres", "clickhouse", "scylladb", "redpanda", "dragonfly"):
        assert f"adplatform:dataPlane.{store}.restore" in keys[store] and stores[[s["store"] for s in stores].index(store)][
            "check"].startswith("kubectl ")
    assert "adplatform:dataPlane.postgres.backupServerName" in keys["postgres"]


def test_runbook_follows_the_stores_a_stack_runs():
    run = run_raw(base_raw(dataPlane={"redpanda": {"enabled": False}, "dragonfly": {"enabled": False}}))
    stores = [s["store"] for s in run.outputs["disasterRecovery"][1]["stores"]]
    assert "redpanda" not in stores and "dragonfly" not in stores and stores[0] == "objectStorage"


def test_the_runbooks_first_step_is_a_valid_config():
    """Set as the runbook says, the first step passes config validation (no Velero and snapshot restore of one store)."""
    raw = base_raw()
    for key, value in cluster_set(load("production", raw, SECRET_KEYS).config).items():
        *path, leaf = key.removeprefix("adplatform:").split(".")
        node = raw
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = dict(value)
    raw["clusterServices"]["backups"]["restore"]["backup"] = "cluster-20261120020012"
    assert load("production", raw, SECRET_KEYS).config.cluster_services.secrets.restore is not None


def test_no_runbook_without_backups(staging):
    assert "disasterRecovery" not in staging.outputs


def test_plan_diff_hands_an_older_tree_only_the_backup_purposes_it_knows(monkeypatch):
    """plan-diff plans older trees with this mockrun: a tree from before Redpanda's backups would refuse
    backupCredentials.redpanda as an unknown purpose."""
    from config import services
    from tools import mockrun
    placeholders = mockrun.FEATURE_SECRETS[("adplatform:clusterServices", "backups", "s3")]["adplatform:backupCredentials"]
    assert "redpanda" in mockrun._known_purposes(placeholders)
    monkeypatch.setattr(services, "BACKUP_PURPOSES", ("etcd", "velero", "postgres", "clickhouse", "scylladb"))
    monkeypatch.setattr(services, "BACKUP_READERS", ())
    assert set(mockrun._known_purposes(placeholders)) == {"etcd", "velero", "postgres", "clickhouse", "scylladb"}


def test_staging_exports_redpanda_to_its_own_in_cluster_bucket(staging):
    pod = staging.named("redpanda-backup", CRONJOB).inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    s3 = _env(pod["containers"][0])
    assert (s3["S3_BUCKET"], s3["S3_PREFIX"]) == ("redpanda-backups", "redpanda")
    assert s3["S3_ENDPOINT"].startswith("http://") and ".seaweedfs.svc" in s3["S3_ENDPOINT"]
