"""The secret store's consistent backups: raft snapshots taken through OpenBao's API by a CronJob logged in with a
role that may read the snapshot and nothing else, uploaded with the CronJob's own S3 keys to its own prefix,
pruned to the retention, and watched by a BackupStale alert."""

from __future__ import annotations

import pytest

from components import charts
from components.services import secrets, secrets_backup
from config import ConfigError, load
from tests import validators
from tests.conftest import SECRET_KEYS, UP_TO_SERVICES, base_raw
from tools.mockrun import Secret

CRONJOB = "kubernetes:batch/v1:CronJob"
SECRET = "kubernetes:core/v1:Secret"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"
RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"


def plain(value):
    return value.value if isinstance(value, Secret) else value


def cronjob(run):
    return run.named("openbao-snapshot", CRONJOB).inputs


def pod(run):
    return cronjob(run)["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def env(container) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_a_cronjob_snapshots_openbao_on_the_configured_schedule(production):
    spec = cronjob(production)["spec"]
    assert cronjob(production)["metadata"]["namespace"] == "openbao"
    assert spec["schedule"] == "15 */6 * * *" and spec["concurrencyPolicy"] == "Forbid"
    [snapshot], [upload] = pod(production)["initContainers"], pod(production)["containers"]
    assert snapshot["image"] == f"quay.io/openbao/openbao:{charts.OPENBAO_VERSION}"
    assert snapshot["command"] == ["/bin/sh", "/scripts/secrets-snapshot.sh"]
    assert upload["image"] == charts.CLICKHOUSE_BACKUP_IMAGE
    assert env(upload)["KEEP"] == "28"
    scripts = production.named("openbao-snapshot-scripts", CONFIGMAP).inputs["data"]
    assert "operator raft snapshot save" in scripts["secrets-snapshot.sh"]


def test_the_schedule_and_retention_come_from_config():
    from tests.conftest import run_raw
    # The snapshot CronJob is the cluster services' (the layers above add nothing to it): a run up to them.
    raw = base_raw(layers=UP_TO_SERVICES)
    raw["clusterServices"]["backups"].update(secretsSchedule="0 3 * * *", secretsRetention=7)
    run = run_raw(raw)
    assert cronjob(run)["spec"]["schedule"] == "0 3 * * *"
    assert env(pod(run)["containers"][0])["KEEP"] == "7"


@pytest.mark.parametrize("backups, key", [
    ({"secretsSchedule": "0 25 * * *"}, "adplatform:clusterServices.backups.secretsSchedule"),
    ({"secretsSchedule": "daily"}, "adplatform:clusterServices.backups.secretsSchedule"),
    ({"secretsRetention": 0}, "adplatform:clusterServices.backups.secretsRetention"),
    ({"secretsRetention": 1000}, "adplatform:clusterServices.backups.secretsRetention"),
])
def test_bad_snapshot_schedule_or_retention_is_refused_naming_the_key(backups, key):
    raw = base_raw()
    raw["clusterServices"]["backups"].update(backups)
    with pytest.raises(ConfigError) as err:
        load("production", raw, SECRET_KEYS)
    assert any(str(p).startswith(key) for p in err.value.problems), err.value.problems


def test_the_upload_uses_its_own_keys_on_its_own_prefix_encrypted_when_asked(production):
    [upload] = pod(production)["containers"]
    values = env(upload)
    assert values["S3_PREFIX"] == "production/secrets" and values["S3_BUCKET"] == "adp-production-backups"
    assert values["S3_ACCESS_KEY"] == {"secretKeyRef": {"name": "openbao-snapshot-s3", "key": "ACCESS_KEY_ID"}}
    keys = production.named("openbao-snapshot-s3", SECRET).inputs
    key_id = plain(plain(keys["stringData"])["ACCESS_KEY_ID"])
    assert key_id.endswith("-secrets-access-key")  # backupCredentials.secrets, no other purpose's pair
    assert keys["metadata"]["labels"]["velero.io/exclude-from-backup"] == "true"
    # No other Secret holds these keys.
    holders = [r.name for r in production.of_type(SECRET) if key_id in str(plain(r.inputs.get("stringData")))]
    assert holders == ["openbao-snapshot-s3"]
    # the snapshot container never sees the S3 keys; the upload container never the store's token
    [snapshot] = pod(production)["initContainers"]
    assert not any(k.startswith("S3_") for k in env(snapshot))
    assert not any(m["name"] == "token" for m in upload["volumeMounts"])
    assert "x-amz-server-side-encryption" in production.named("openbao-snapshot-scripts", CONFIGMAP).inputs[
        "data"]["redpanda-s3.sh"]


def test_the_snapshot_role_reads_the_snapshot_and_nothing_else():
    assert secrets.SNAPSHOT_POLICY.strip() == 'path "sys/storage/raft/snapshot" { capabilities = ["read"] }'
    backend = secrets.BACKENDS["openbao"]
    policy, role = secrets.snapshot_requests(backend, True)
    assert policy.path == "sys/policies/acl/raft-snapshot" and policy.data == {"policy": secrets.SNAPSHOT_POLICY}
    assert role.path == "auth/kubernetes/role/raft-snapshot"
    assert role.data["bound_service_account_names"] == ["openbao-snapshot"]
    assert role.data["bound_service_account_namespaces"] == ["openbao"]
    assert role.data["token_policies"] == ["raft-snapshot"]
    # Without snapshots the role and policy are removed, not left behind.
    assert all(r.delete for r in secrets.snapshot_requests(backend, False))


def test_the_configure_job_writes_the_snapshot_role(production):
    script = production.named("openbao-configure", CONFIGMAP).inputs["data"]["configure.sh"]
    assert "bao write sys/policies/acl/raft-snapshot -" in script
    assert "bao write auth/kubernetes/role/raft-snapshot -" in script


def test_the_job_logs_in_as_its_own_account_with_no_root_or_admin_token(production):
    spec = pod(production)
    assert spec["serviceAccountName"] == "openbao-snapshot" and spec["automountServiceAccountToken"] is False
    [snapshot] = spec["initContainers"]
    values = env(snapshot)
    assert values["LOGIN_ROLE"] == "raft-snapshot"
    assert not {"BAO_TOKEN", "VAULT_TOKEN"} & set(values)
    [token] = [v for v in spec["volumes"] if v["name"] == "token"]
    assert token["projected"]["sources"][0]["serviceAccountToken"]["audience"] == "openbao"
    account = production.named("openbao-snapshot", "kubernetes:core/v1:ServiceAccount").inputs
    assert account["metadata"]["namespace"] == "openbao"


def test_the_scripts_pass_shellcheck(production):
    data = production.named("openbao-snapshot-scripts", CONFIGMAP).inputs["data"]
    assert validators.shellcheck({name.removesuffix(".sh"): text for name, text in data.items()}) == ""


def test_only_the_snapshot_pods_reach_s3(production):
    policy = production.named("netpol-openbao-allow-egress-internet-snapshot",
                              "kubernetes:networking.k8s.io/v1:NetworkPolicy").inputs["spec"]
    pod_labels = cronjob(production)["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"] == pod_labels
    assert [p["port"] for rule in policy["egress"] for p in rule["ports"]] == [443]


def test_a_stale_snapshot_alerts(production):
    groups = production.named("drill-alerts", RULE).inputs["spec"]["groups"]
    [stale] = [r for g in groups for r in g["rules"]
               if r["alert"] == "BackupStale" and r["labels"]["store"] == "secrets"]
    assert 'namespace="openbao", cronjob="openbao-snapshot"' in stale["expr"]
    assert f"> {2 * 6 * 3600}" in stale["expr"]


def test_no_snapshots_without_off_cluster_backups():
    from tests.conftest import run_raw
    raw = base_raw(profile="staging")
    raw["clusterServices"]["backups"] = {"enabled": False}
    raw["dataPlane"] = {**raw.get("dataPlane", {}), "drills": {"enabled": False}}
    run = run_raw({**raw, "layers": UP_TO_SERVICES})  # the CronJob would be the cluster services'
    assert not [r for r in run.of_type(CRONJOB) if r.name == "openbao-snapshot"]
    assert "bao delete auth/kubernetes/role/raft-snapshot" in run.named(
        "openbao-configure", CONFIGMAP).inputs["data"]["configure.sh"]
    assert secrets_backup.PURPOSE == "secrets"
