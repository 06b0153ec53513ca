"""Velero: pinned chart and images, S3-compatible storage location, credentials only as a secret,
file-system backups on every node, the schedule from config and the restore path."""

from __future__ import annotations

import json

import pytest

from components.charts import VELERO
from components.k3s.config import EtcdBackup
from components.services.backups import storage_location
from config import ConfigError, load
from tests import validators
from tests.test_deploy_order import reaches
from tests.conftest import ROOT, SECRET_KEYS, base_raw, run_raw
from tests.netpol import PROMETHEUS_PEER
from tests.runs import k3s_config
from tools.mockrun import Secret

RELEASE = "kubernetes:helm.sh/v3:Release"
SCHEDULE = "kubernetes:velero.io/v1:Schedule"
RESTORE = "kubernetes:velero.io/v1:Restore"


@pytest.fixture(scope="module")
def restoring():
    """A cluster being restored, on its own Velero schedule, with server-side encryption: the restore and schedule
    reach Velero's objects, the encryption every writer's upload settings; independent, so one run for both."""
    raw = base_raw()
    backups = raw["clusterServices"]["backups"]
    backups["s3"]["serverSideEncryption"] = "AES256"
    backups.update(veleroSchedule="30 1 * * *", veleroTtl="168h",
                   restore={"backup": "cluster-20261120020012", "excludeNamespaces": ["velero"]})
    return run_raw(raw)


def _deps(run, resource):
    return {run.by_urn(u).name for u in resource.dependencies}


def test_velero_chart_and_images_pinned(production):
    velero = production.named("velero", RELEASE)
    assert (velero.inputs["chart"], velero.inputs["version"]) == ("velero", "12.1.0") == (VELERO.chart, VELERO.version)
    assert velero.inputs["repositoryOpts"]["repo"] == "https://vmware-tanzu.github.io/helm-charts"
    values = velero.inputs["values"]
    assert values["image"] == {"repository": "docker.io/velero/velero", "tag": "v1.18.1", "pullPolicy": "IfNotPresent"}
    (plugin,) = values["initContainers"]
    assert plugin["image"] == "docker.io/velero/velero-plugin-for-aws:v1.14.2"
    assert plugin["volumeMounts"] == [{"mountPath": "/target", "name": "plugins"}]
    assert values["kubectl"]["image"]["tag"] == "v1.36.4"
    assert velero.inputs["namespace"] == "velero" and velero.inputs["createNamespace"] is False


def test_storage_location_is_the_s3_compatible_bucket(production):
    config = production.named("velero", RELEASE).inputs["values"]["configuration"]
    (location,) = config["backupStorageLocation"]
    assert location["provider"] == "aws" and location["bucket"] == "adp-production-backups"
    assert location["prefix"] == "production/velero" and location["default"] is True
    assert location["config"] == {"region": "fsn1", "s3Url": "https://fsn1.your-objectstorage.com",
                                  "s3ForcePathStyle": "true", "checksumAlgorithm": ""}


def test_volumes_backed_up_by_the_node_agent_not_snapshots(production):
    values = production.named("velero", RELEASE).inputs["values"]
    assert values["snapshotsEnabled"] is False and values["configuration"]["volumeSnapshotLocation"] == []
    assert values["deployNodeAgent"] is True and values["configuration"]["uploaderType"] == "kopia"
    assert values["configuration"]["defaultVolumesToFsBackup"] is True
    assert {"key": "adplatform.io/dedicated", "operator": "Exists", "effect": "NoSchedule"} in \
        values["nodeAgent"]["tolerations"], "database pools' volumes are backed up too"


def test_every_container_has_requests_and_a_memory_limit(production):
    values = production.named("velero", RELEASE).inputs["values"]
    for resources in (values["resources"], values["nodeAgent"]["resources"], values["initContainers"][0]["resources"],
                      values["upgradeJobResources"]):
        assert resources["requests"]["cpu"] and resources["requests"]["memory"] and resources["limits"]["memory"]
    assert values["metrics"]["enabled"] and values["metrics"]["serviceMonitor"]["enabled"]


def test_credentials_only_in_a_secret(production):
    secret = production.named("velero-s3-credentials", "kubernetes:core/v1:Secret")
    data = secret.inputs["stringData"]
    assert isinstance(data, Secret)
    # Velero's own pair (backupCredentials.velero), not the shared one nor another purpose's
    assert data.value["cloud"] == ("[default]\naws_access_key_id=offline-placeholder-velero-access-key\n"
                           "aws_secret_access_key=offline-placeholder-velero-secret-key\n")
    values = production.named("velero", RELEASE).inputs["values"]
    assert values["credentials"] == {"useSecret": True, "existingSecret": "velero-s3"}
    assert "offline-placeholder" not in str(values)
    assert "velero-s3-credentials" in _deps(production, production.named("velero", RELEASE))


def test_schedule_from_config_after_the_release(production):
    schedule = production.named("velero-schedule", SCHEDULE)
    spec = schedule.inputs["spec"]
    assert spec["schedule"] == "0 2 * * *" and spec["template"]["ttl"] == "720h"
    assert spec["template"]["includedNamespaces"] == ["*"] and spec["template"]["storageLocation"] == "default"
    assert spec["template"]["defaultVolumesToFsBackup"] is True
    assert "velero" in _deps(production, schedule)
    assert not production.of_type(RESTORE), "no restore unless asked for"


def test_namespace_reaches_only_s3_outside(production):
    policies = {r.inputs["metadata"]["name"]: r.inputs["spec"]
                for r in production.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
                if r.inputs["metadata"]["namespace"] == "velero"}
    assert policies["allow-egress-internet"]["egress"][0]["ports"] == [{"protocol": "TCP", "port": 443}]
    assert "allow-api-server-webhooks" not in policies


def test_prometheus_may_scrape_the_monitors_the_chart_renders(production):
    """The chart's ServiceMonitor (server) and PodMonitor (node-agent) target `http-monitoring`, 8085 on both
    (velero-12.1.0 templates/deployment.yaml, node-agent-daemonset.yaml); the namespace is default-deny."""
    metrics = production.named("velero", RELEASE).inputs["values"]["metrics"]
    assert metrics["serviceMonitor"]["enabled"] and metrics["nodeAgentPodMonitor"]["enabled"]
    [policy] = [r.inputs["spec"] for r in production.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
                if r.inputs["metadata"] == {"name": "allow-from-monitoring", "namespace": "velero"}]
    assert policy["podSelector"] == {} and policy["ingress"] == [{
        "from": [PROMETHEUS_PEER], "ports": [{"protocol": "TCP", "port": 8085}]}]


def test_staging_without_backups_installs_no_velero(staging):
    assert not [r for r in staging.resources if "velero" in r.name]


def test_restore_path_renders_from_config(restoring):
    restore = restoring.named("velero-restore", RESTORE)
    assert restore.inputs["metadata"]["name"] == "restore-cluster-20261120020012"
    assert restore.inputs["spec"] == {"backupName": "cluster-20261120020012", "includedNamespaces": ["*"],
                                      "excludedNamespaces": ["velero", "openbao"], "restorePVs": True,
                                      "existingResourcePolicy": "none", "labelSelector": {"matchExpressions": [
                                          {"key": "owner", "operator": "NotIn", "values": ["helm"]}]}}
    assert "velero" in _deps(restoring, restore)
    spec = restoring.named("velero-schedule", SCHEDULE).inputs["spec"]
    assert spec["schedule"] == "30 1 * * *" and spec["template"]["ttl"] == "168h"


@pytest.mark.parametrize("backups, key", [
    ({"enabled": False}, "clusterServices.backups.enabled"),
    ({"s3": None}, "clusterServices.backups.s3"),
    ({"veleroTtl": "30d"}, "clusterServices.backups.veleroTtl"),
    ({"etcdRetention": 0}, "clusterServices.backups.etcdRetention"),
    # three servers keep 3 x 334 in S3: more than the etcd drill's one listing of 1000 sees
    ({"etcdRetention": 334}, "clusterServices.backups.etcdRetention"),
])
def test_backup_config_errors_name_the_key(backups, key):
    raw = base_raw()
    raw["clusterServices"]["backups"].update(backups)
    with pytest.raises(ConfigError) as err:
        load("production", raw, SECRET_KEYS)
    assert any(key in str(p) for p in err.value.problems), err.value.problems


def test_backups_need_both_s3_keys():
    raw = base_raw()
    del raw["backupCredentials"]["velero"]["secretAccessKey"]
    with pytest.raises(ConfigError) as err:
        load("production", raw, SECRET_KEYS)
    assert any(str(p).startswith("adplatform:backupCredentials.velero must set secretAccessKey")
               for p in err.value.problems), err.value.problems


def test_the_repository_password_is_generated_and_kept_out_of_the_backups(production, staging):
    """kopia encrypts volume backups with the repository password: ours (generated, protected in production),
    in the Secret Velero reads, which no backup contains (its key would travel with what it protects)."""
    secret = production.named("velero-repository-password", "kubernetes:core/v1:Secret").inputs
    assert secret["metadata"]["name"] == "velero-repo-credentials" and secret["metadata"]["namespace"] == "velero"
    assert secret["metadata"]["labels"]["velero.io/exclude-from-backup"] == "true"
    data = secret["stringData"]
    assert isinstance(data, Secret) or isinstance(data["repository-password"], Secret)
    value = data.value["repository-password"] if isinstance(data, Secret) else data["repository-password"].value
    assert value != "static-passw0rd" and len(value) == 48  # not Velero's built-in default
    password = production.named("velero-repository-password", "random:index/randomPassword:RandomPassword")
    assert password.protect is True
    assert "velero-repository-password" in _deps(production, production.named("velero", RELEASE))
    s3 = production.named("velero-s3-credentials", "kubernetes:core/v1:Secret").inputs["metadata"]
    assert s3["labels"]["velero.io/exclude-from-backup"] == "true"


def test_secrets_that_unlock_others_stay_out_of_every_backup(production):
    """The Hetzner token, the volume-encryption passphrase and the OpenBao unseal key are in Pulumi state and
    recreated by it, never in a Velero backup next to the data they unlock."""
    for name in ("hcloud", "hcloud-volume-encryption", "openbao-unseal-key"):
        labels = production.named(name, "kubernetes:core/v1:Secret").inputs["metadata"].get("labels") or {}
        assert labels.get("velero.io/exclude-from-backup") == "true", name


def test_a_purpose_may_have_its_own_bucket():
    """Where keys reach every bucket of a project (Hetzner), a bucket per purpose in its own project is what
    separates them: clusterServices.backups.s3.buckets moves one purpose, the others stay in `bucket`."""
    raw = base_raw()
    raw["clusterServices"]["backups"]["s3"]["buckets"] = {"etcd": "adp-etcd", "velero": "adp-velero"}
    loaded = load("production", raw, SECRET_KEYS)
    etcd = EtcdBackup.from_config(loaded.config.cluster_services.backups, "production", loaded.secrets)
    assert etcd.bucket == "adp-etcd" and etcd.access_key is loaded.secrets.backup_credentials["etcd"].access_key_id
    assert storage_location(loaded.config.cluster_services.backups, "production")["bucket"] == "adp-velero"
    assert loaded.config.cluster_services.backups.s3.bucket_for("postgres") == "adp-test-backups"
    raw["clusterServices"]["backups"]["s3"]["buckets"] = {"etc": "adp-etcd"}
    with pytest.raises(ConfigError) as err:
        load("production", raw, SECRET_KEYS)
    assert any(str(p).startswith("adplatform:clusterServices.backups.s3.buckets must map backup purposes (etcd, "
                                 "velero, secrets, postgres, clickhouse, scylladb, redpanda) to buckets, got 'etc'")
               for p in err.value.problems), err.value.problems


def _env(run, name: str) -> list[dict]:
    """Every env entry `name` in the run's Kubernetes objects (the ClickHouse pod template's sidecar)."""
    found = []

    def walk(value):
        if isinstance(value, dict):
            if value.get("name") == name and "value" in value:
                found.append(value)
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
    for r in run.resources:
        walk(r.inputs)
    return found


def test_server_side_encryption_reaches_every_backup_writer(restoring, production):
    """serverSideEncryption asks the store to encrypt what Velero and each store's agent upload; unset (the
    default: not every S3-compatible store accepts the header), none of them sends it."""
    encrypted = restoring
    bsl = encrypted.named("velero", RELEASE).inputs["values"]["configuration"]["backupStorageLocation"][0]
    assert bsl["config"]["serverSideEncryption"] == "AES256"
    barman = encrypted.named("postgres-object-store").inputs["spec"]["configuration"]
    assert barman["data"]["encryption"] == barman["wal"]["encryption"] == "AES256"
    # the secret store's snapshot upload, clickhouse-backup's sidecar and the Redpanda export's upload container
    assert [e["value"] for e in _env(encrypted, "S3_SSE")] == ["AES256", "AES256", "AES256"]
    snapshot = encrypted.named("openbao-snapshot", "kubernetes:batch/v1:CronJob").inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert {"name": "S3_SSE", "value": "AES256"} in snapshot["containers"][0]["env"]
    upload = encrypted.named("redpanda-backup").inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert {"name": "S3_SSE", "value": "AES256"} in upload[0]["env"]
    agent = encrypted.named("scylla-agent-config", "kubernetes:core/v1:Secret").inputs["stringData"]
    agent = agent.value if isinstance(agent, Secret) else {k: v.value for k, v in agent.items()}
    assert json.loads(agent["scylla-manager-agent.yaml"])["s3"]["server_side_encryption"] == "AES256"
    plain = production.named("velero", RELEASE).inputs["values"]["configuration"]["backupStorageLocation"][0]
    assert "serverSideEncryption" not in plain["config"] and not _env(production, "S3_SSE")
    assert "encryption" not in production.named("postgres-object-store").inputs["spec"]["configuration"]["data"]


def _security_encryption_section() -> str:
    text = (ROOT / "docs" / "security.md").read_text()
    start = text.index("## What is encrypted, with what key, and where the key lives")
    return text[start:text.index("\n## ", start + 1)]


def test_security_doc_says_what_server_side_encryption_reaches(restoring):
    """docs/security.md's encryption table matches what the writers send: Velero's serverSideEncryption reaches only
    its AWS plugin's uploads (Velero v1.18's unified repository passes kopia no encryption option), the Redpanda
    export sends the header too, and K3s' etcd snapshots never do (no such flag): the bucket's default encryption."""
    section = _security_encryption_section()
    rows = {line.split("|")[1].strip(): line for line in section.splitlines() if line.startswith("| ")}
    assert "does not reach kopia" in rows["Velero volume backups (kopia)"]
    assert "Redpanda exports" in rows["PostgreSQL, ClickHouse, ScyllaDB backups, Redpanda exports"]
    assert "only by the bucket's default encryption" in rows["etcd snapshots"]
    server = k3s_config(restoring, "control-plane-1")
    s3_flags = [k for k in server if k.startswith("etcd-s3")]
    assert "etcd-s3-bucket" in s3_flags and not [k for k in s3_flags if "sse" in k or "encrypt" in k]
    assert "scripts/redpanda-s3.sh" in section and "none of the four" in section and "none of the three" not in section
    assert "x-amz-server-side-encryption" in (ROOT / "components/data/scripts/redpanda-s3.sh").read_text()


def test_server_side_encryption_accepts_only_what_every_writer_supports():
    raw = base_raw()
    raw["clusterServices"]["backups"]["s3"]["serverSideEncryption"] = "aws:kms"
    with pytest.raises(ConfigError) as err:
        load("production", raw, SECRET_KEYS)
    assert any(str(p).startswith("adplatform:clusterServices.backups.s3.serverSideEncryption must be one of AES256")
               for p in err.value.problems), err.value.problems


def _selects(selector: dict, labels: dict[str, str]) -> bool:
    """A LabelSelector's matchExpressions as Kubernetes applies them (NotIn also selects objects without the key)."""
    for expression in selector["matchExpressions"]:
        value = labels.get(expression["key"])
        if expression["operator"] == "NotIn" and value in expression["values"]:
            return False
        if expression["operator"] == "In" and value not in expression["values"]:
            return False
    return True


def test_a_restore_leaves_helms_release_records_out_and_everything_else_in(restoring):
    """A restored Helm release record (a Secret labelled owner=helm) makes Pulumi's Release for that chart fail
    ("cannot re-use a name that is still in use"): the platform's in its later step, the cluster services' when the
    restore races their install. Helm's install adopts the restored objects instead (its ownership annotations)."""
    selector = restoring.named("velero-restore", RESTORE).inputs["spec"]["labelSelector"]
    record = {"owner": "helm", "name": "gitlab", "status": "deployed", "version": "1"}
    assert not _selects(selector, record)
    assert _selects(selector, {}), "objects without labels (claims, most Secrets) are restored"
    assert _selects(selector, {"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/instance": "gitlab"}), \
        "the charts' own objects are restored (and adopted)"
    assert _selects(selector, {"owner": "platform-team"})


def test_the_secrets_store_starts_on_its_restored_volumes(restoring):
    """Installed beside Velero, OpenBao's release would race the cluster restore for its claims, and started on empty
    volumes it initialises itself anew (every secret written by hand lost): its namespace is restored on its own,
    waited for until complete, before its release; the cluster restore leaves it out."""
    own = restoring.named("velero-restore-openbao", RESTORE)
    assert own.inputs["metadata"]["name"] == "restore-cluster-20261120020012-openbao"
    assert own.inputs["spec"]["includedNamespaces"] == ["openbao"] and own.inputs["spec"]["restorePVs"] is True
    assert own.inputs["metadata"]["annotations"]["pulumi.com/waitFor"] == "jsonpath={.status.phase}=Completed"
    assert "velero" in _deps(restoring, own)
    assert "velero-restore-openbao" in reaches(restoring, "openbao", RELEASE)
    assert "openbao" in restoring.named("velero-restore", RESTORE).inputs["spec"]["excludedNamespaces"]
    # What the restored pods mount and no backup holds exists first: without it they never start, Velero (which
    # fills a volume through the pod's init container) never completes, and the wait fails `pulumi up`.
    server = validators.plain(restoring.named("openbao", RELEASE).inputs["values"])["server"]
    mounted = {v["name"] for v in server["extraVolumes"] if v["type"] == "secret"} | \
        {e["secretName"] for e in server.get("extraSecretEnvironmentVars", [])}
    assert "openbao-tls" in mounted and "openbao-unseal-key" in mounted
    created = {r.inputs["metadata"]["name"]: r.name for r in restoring.resources
               if r.type in ("kubernetes:core/v1:Secret", "kubernetes:cert-manager.io/v1:Certificate")
               and r.inputs.get("metadata", {}).get("namespace") == "openbao"}
    assert mounted <= set(created), "every Secret the pods mount is the program's"
    assert {created[name] for name in mounted} <= reaches(restoring, "velero-restore-openbao", RESTORE)


def test_a_restore_that_leaves_the_secrets_store_out_restores_nothing_of_it_first():
    raw = base_raw()
    raw["clusterServices"]["backups"]["restore"] = {"backup": "cluster-20261120020012", "excludeNamespaces": ["openbao"]}
    run = run_raw(raw)
    assert not [r for r in run.of_type(RESTORE) if r.name == "velero-restore-openbao"]
    assert "velero-restore" not in reaches(run, "openbao", RELEASE)


def test_without_a_restore_the_secrets_store_waits_for_no_restore(production):
    assert not production.of_type(RESTORE)
    assert not {n for n in reaches(production, "openbao", RELEASE) if n.startswith("velero")}
