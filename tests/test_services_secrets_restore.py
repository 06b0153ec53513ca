"""The secret store's restore switch (clusterServices.secrets.restore): a Job installs a raft snapshot from S3 once
the servers are up and the configure Job has written its role, logged in as a role that may call the one restore
path; the configure Job then runs again; Velero's restore of the same namespace is refused alongside."""

from __future__ import annotations

import os
import subprocess

import pytest

from components import charts
from components.services import secrets
from config import ConfigError, load
from tests import validators
from tests.conftest import SECRET_KEYS, UP_TO_SERVICES, base_raw, run_raw
from tests.test_deploy_order import reaches

JOB = "kubernetes:batch/v1:Job"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
RELEASE = "kubernetes:helm.sh/v3:Release"


def restore_raw(restore: dict | None = None) -> dict:
    raw = base_raw()
    raw["clusterServices"].setdefault("secrets", {})["restore"] = restore or {"snapshot": "latest"}
    return raw


def run_services(raw: dict):
    """The run of `raw` up to the cluster services: the restore Job, the store and Velero are theirs (the layers
    above add nothing any test here reads)."""
    return run_raw({**raw, "layers": UP_TO_SERVICES})


@pytest.fixture(scope="module")
def restoring():
    return run_services(restore_raw())


def env(container) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def job(run):
    return run.named("openbao-restore", JOB)


def test_the_restore_job_runs_after_the_servers_and_the_configure_job_then_configure_runs_again(restoring):
    restore = job(restoring)
    assert restore.inputs["metadata"]["name"] == "openbao-restore-latest"
    assert restore.inputs["metadata"]["namespace"] == "openbao"
    before = reaches(restoring, "openbao-restore", JOB)
    assert {"openbao", "openbao-configure", "openbao-snapshot-s3"} <= before
    # The snapshot brings back its own roles: the configure Job writes the current ones again, after it.
    assert "openbao-restore" in reaches(restoring, "openbao-reconfigure", JOB)
    assert restoring.named("openbao-reconfigure", JOB).inputs["spec"] == \
        restoring.named("openbao-configure", JOB).inputs["spec"]
    # Once per name: a new image or script never restores the store a second time.
    assert restore.options["ignoreChanges"] == ["spec"]


def test_the_snapshot_schedule_starts_after_the_restore(restoring, production):
    # On a fresh cluster the first snapshot is of the restored store, and a failed restore stops the run before any
    # snapshot of the empty store pushes the good ones out of the retention.
    assert "openbao-restore" in reaches(restoring, "openbao-snapshot", "kubernetes:batch/v1:CronJob")
    assert "openbao-restore" not in reaches(production, "openbao-snapshot", "kubernetes:batch/v1:CronJob")


def test_the_job_downloads_then_restores_as_its_own_least_privileged_role(restoring):
    spec = job(restoring).inputs["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "openbao-restore" and spec["automountServiceAccountToken"] is False
    [download], [install] = spec["initContainers"], spec["containers"]
    assert download["image"] == charts.CLICKHOUSE_BACKUP_IMAGE and env(download)["SNAPSHOT"] == "latest"
    assert env(download)["S3_PREFIX"] == "test/secrets"
    assert install["image"] == f"quay.io/openbao/openbao:{charts.OPENBAO_VERSION}"
    values = env(install)
    assert values["LOGIN_ROLE"] == "raft-restore" and values["FORCE"] == "false"
    assert not {"BAO_TOKEN", "VAULT_TOKEN"} & set(values), "no root or admin token"
    assert not any(k.startswith("S3_") for k in values), "the restore container never sees the S3 keys"
    assert not any(m["name"] == "token" for m in download["volumeMounts"]), "nor the download the store's token"
    script = restoring.named("openbao-configure", CONFIGMAP).inputs["data"]["configure.sh"]
    assert "bao write sys/policies/acl/raft-restore -" in script
    assert "bao write auth/kubernetes/role/raft-restore -" in script


def test_the_restore_role_updates_the_one_restore_path_and_exists_only_while_set():
    backend = secrets.BACKENDS["openbao"]
    from config.services import SecretsRestore
    policy, role = secrets.restore_requests(backend, SecretsRestore(snapshot="latest"))
    assert policy.data["policy"].strip() == 'path "sys/storage/raft/snapshot" { capabilities = ["update"] }'
    assert role.data["bound_service_account_names"] == ["openbao-restore"]
    assert role.data["bound_service_account_namespaces"] == ["openbao"] and role.data["token_policies"] == [
        "raft-restore"]
    forced, _ = secrets.restore_requests(backend, SecretsRestore(snapshot="latest", force=True))
    assert forced.data["policy"].strip() == 'path "sys/storage/raft/snapshot-force" { capabilities = ["update"] }'
    assert all(r.delete for r in secrets.restore_requests(backend, None))


def test_without_the_switch_nothing_restores_and_the_role_is_removed(production):
    assert not [r for r in production.of_type(JOB) if r.name in ("openbao-restore", "openbao-reconfigure")]
    assert "bao delete auth/kubernetes/role/raft-restore" in production.named(
        "openbao-configure", CONFIGMAP).inputs["data"]["configure.sh"]


def test_a_named_snapshot_and_force_reach_the_job():
    run = run_services(restore_raw({"snapshot": "20261120T061500Z", "force": True}))
    restore = job(run).inputs
    assert restore["metadata"]["name"] == "openbao-restore-20261120t061500z"
    spec = restore["spec"]["template"]["spec"]
    assert env(spec["initContainers"][0])["SNAPSHOT"] == "20261120T061500Z"
    assert env(spec["containers"][0])["FORCE"] == "true"


def test_only_the_snapshot_and_restore_pods_reach_s3(restoring):
    policy = restoring.named("netpol-openbao-allow-egress-internet-restore", NETPOL).inputs["spec"]
    assert policy["podSelector"]["matchLabels"] == job(restoring).inputs["spec"]["template"]["metadata"]["labels"]
    assert [p["port"] for rule in policy["egress"] for p in rule["ports"]] == [443]


def test_the_scripts_pass_shellcheck(restoring):
    data = restoring.named("openbao-restore-scripts", CONFIGMAP).inputs["data"]
    assert set(data) == {"secrets-login.sh", "secrets-download.sh", "secrets-restore.sh", "redpanda-s3.sh"}
    assert validators.shellcheck({name.removesuffix(".sh"): text for name, text in data.items()}) == ""


@pytest.mark.parametrize("force, restore_call", [("false", "operator raft snapshot restore {snap}"),
                                                 ("true", "operator raft snapshot restore -force {snap}")])
def test_the_restore_installs_the_snapshot_then_waits_until_it_is_in(tmp_path, force, restore_call):
    """OpenBao answers before it has installed the snapshot (in the background): the Job succeeds only once its own
    token is unknown to the store (403), which the restored state, older than the token, makes it."""
    calls, scripts, work = tmp_path / "calls", tmp_path / "scripts", tmp_path / "work"
    scripts.mkdir()
    work.mkdir()
    for name in ("secrets-login.sh", "secrets-restore.sh"):
        (scripts / name).write_text((secrets.SCRIPTS / name).read_text())
    (work / "name").write_text("20261120T061500Z\n")
    stub = tmp_path / "bao"
    # the second lookup finds the token gone
    stub.write_text('#!/bin/sh\necho "$*" >> "$CALLS"\n'
                    'case "$*" in *login*) echo s.stub ;; "token lookup") '
                    'if [ "$(grep -c "token lookup" "$CALLS")" -ge 2 ]; then echo "Code: 403. Errors:" >&2; exit 2; fi'
                    ' ;; esac\n')
    stub.chmod(0o755)
    # sleep records its pause instead of taking it: the wait between lookups is asserted, not spent.
    sleeps = tmp_path / "sleeps"
    (tmp_path / "sleep").write_text('#!/bin/sh\necho "$*" >> "$SLEEPS"\n')
    (tmp_path / "sleep").chmod(0o755)
    result = subprocess.run(["sh", str(scripts / "secrets-restore.sh")], capture_output=True, text=True, env={
        "PATH": f"{tmp_path}:{os.environ['PATH']}", "CALLS": str(calls), "SLEEPS": str(sleeps), "CLI": "bao",
        "AUTH_MOUNT": "kubernetes",
        "LOGIN_ROLE": "raft-restore", "TOKEN_FILE": "/token", "WAIT_SECONDS": "30", "WORK": str(work), "FORCE": force})
    assert result.returncode == 0, result.stderr
    lines = calls.read_text().splitlines()
    assert lines[1] == restore_call.format(snap=work / "snapshot.snap")
    assert lines[2:] == ["token lookup", "token lookup"]
    assert sleeps.read_text().splitlines() == ["5"], "one pause between the two lookups"
    assert "restored snapshot 20261120T061500Z.snap" in result.stdout


def _problems(raw) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load("production", raw, SECRET_KEYS)
    return [str(p) for p in err.value.problems]


@pytest.mark.parametrize("restore, said", [
    ({"snapshot": "yesterday"}, "'latest' or a snapshot name"),
    ({"snapshot": "20261120T061500Z; rm -rf /"}, "'latest' or a snapshot name"),
    ({"snapshot": "latest", "force": "maybe"}, "force"),
])
def test_a_bad_snapshot_is_refused_naming_the_key(restore, said):
    problems = _problems(restore_raw(restore))
    assert any(p.startswith("adplatform:clusterServices.secrets.restore") and said in p for p in problems), problems


def test_a_velero_restore_of_the_same_namespace_is_refused_alongside():
    raw = restore_raw()
    raw["clusterServices"]["backups"]["restore"] = {"backup": "cluster-20261120020012"}
    [problem] = [p for p in _problems(raw) if p.startswith("adplatform:clusterServices.secrets.restore")]
    assert "clusterServices.backups.restore also restores the namespace 'openbao'" in problem
    assert "excludeNamespaces" in problem


def test_a_velero_restore_leaving_the_store_out_goes_with_the_snapshot_restore():
    raw = restore_raw()
    raw["clusterServices"]["backups"]["restore"] = {"backup": "cluster-20261120020012",
                                                    "excludeNamespaces": ["openbao", "dragonfly"]}
    run = run_services(raw)
    assert "velero-restore" not in reaches(run, "openbao", RELEASE)
    assert job(run).inputs["metadata"]["name"] == "openbao-restore-latest"


def test_a_restore_of_vault_is_refused_naming_the_key():
    raw = restore_raw()
    raw["clusterServices"]["secrets"]["backend"] = "vault"
    assert any(p.startswith("adplatform:clusterServices.secrets.restore") and "needs clusterServices.secrets.backend "
               "openbao" in p for p in _problems(raw))


def test_a_restore_without_snapshots_is_refused_naming_the_key():
    raw = base_raw(profile="staging")
    raw["clusterServices"]["backups"] = {"enabled": False}
    raw["clusterServices"]["secrets"] = {"restore": {"snapshot": "latest"}}
    raw["dataPlane"] = {"drills": {"enabled": False}}
    assert any(p.startswith("adplatform:clusterServices.secrets.restore") and "has no snapshots to read" in p
               for p in _problems(raw))
