"""ClickHouse: the Altinity operator, Keeper (3 in production, 1 on staging), shards × replicas on the
clickhouse pool, passwords only by reference, nightly backups to S3 with retention, metrics and PDBs."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from components import charts
from components.data.clickhouse import backup, installation, topology, users
from components.data.context import SHARES
from components.data.endpoints import S3Location
from components.data.placement import placement, sized
from components.digest import marker
from config import ConfigError, load
from providers import hetzner
from tests import validators
from tests.conftest import SECRET_KEYS, base_raw, run_raw
from tests.stores import SECRET, policy, ports, stack_config, string_data
from tools.mockrun import Run

STACKS = ("production", "staging")
RELEASE = "kubernetes:helm.sh/v3:Release"
CHI = "kubernetes:clickhouse.altinity.com/v1:ClickHouseInstallation"
CHK = "kubernetes:clickhouse-keeper.altinity.com/v1:ClickHouseKeeperInstallation"
CRONJOB = "kubernetes:batch/v1:CronJob"
PODMONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
TAINT = {"key": "adplatform.io/dedicated", "operator": "Equal", "value": "clickhouse", "effect": "NoSchedule"}
SERVER_OVERRIDE = {"cpu": "2", "memory": "4Gi"}  # dataPlane.clickhouse.cpu/memory in a variant (fits a staging node)
BACKUP_ENDPOINT_WITH_PORT = "https://s3.backup.example.com:8443"
SCRIPT = Path(backup.__file__).with_name("create-remote.sh")


@pytest.fixture(params=STACKS)
def run(request) -> Run:
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def two_shards() -> Run:
    """Production with 2 shards on the 3 clickhouse nodes (6 servers, 2 on some nodes), backing up to an S3
    endpoint on a port of its own."""
    services = base_raw()["clusterServices"]
    backups = {"s3": {**services["backups"]["s3"], "endpoint": BACKUP_ENDPOINT_WITH_PORT}}
    return run_raw(base_raw(clusterServices={**services, "backups": backups},
                            dataPlane={"clickhouse": {"shards": 2, "backupRetention": 14,
                                                      "backupSchedule": "30 2 * * *"}}), stack="production")


# --- helpers ---------------------------------------------------------------------------------------------
def chi(run: Run) -> dict:
    return run.named("clickhouse-installation", CHI).inputs["spec"]


def chk(run: Run) -> dict:
    return run.named("clickhouse-keeper", CHK).inputs["spec"]


def server_pod(run: Run) -> dict:
    (template,) = chi(run)["templates"]["podTemplates"]
    return template


def keeper_pod(run: Run) -> dict:
    (template,) = chk(run)["templates"]["podTemplates"]
    return template


def containers(template: dict) -> dict[str, dict]:
    return {c["name"]: c for c in template["spec"]["containers"]}


def env(container: dict) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def deps(run: Run, name: str, type_: str) -> set[str]:
    return {run.by_urn(u).name for u in run.named(name, type_).dependencies}


def secret_data(run: Run, name: str) -> dict[str, str]:
    return string_data(run.named(name, SECRET))  # asserts every value reached the engine as a secret


def leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item)
    else:
        yield value


# --- operator ------------------------------------------------------------------------------------------
def test_operator_chart_pinned_and_watching_only_its_namespace(run):
    release = run.named("clickhouse-operator", RELEASE).inputs
    assert (release["chart"], release["version"]) == ("altinity-clickhouse-operator", "0.27.3") == \
        (charts.CLICKHOUSE_OPERATOR.chart, charts.CLICKHOUSE_OPERATOR.version)
    assert release["repositoryOpts"]["repo"] == "https://helm.altinity.com"
    assert release["namespace"] == "clickhouse-operator" and release["createNamespace"] is False
    values = release["values"]
    assert values["operator"]["image"]["tag"] == values["metrics"]["image"]["tag"] == "0.27.3"
    assert values["configs"]["files"]["config.yaml"]["watch"]["namespaces"] == {"include": ["clickhouse"]}
    # The chart's CRD hook runs bitnami/kubectl:latest; CRDs come from the release tag instead.
    assert values["crdHook"] == {"enabled": False} and "bitnami" not in json.dumps(values)
    crds = [r for r in run.of_type("kubernetes:yaml/v2:ConfigFile") if r.name.startswith("clickhouse-operator-crds")]
    assert sorted(r.inputs["file"] for r in crds) == sorted(charts.CLICKHOUSE_OPERATOR_CRDS.urls)
    assert all("/release-0.27.3/deploy/helm/clickhouse-operator/crds/" in r.inputs["file"] for r in crds)
    assert {r.name for r in crds} <= deps(run, "clickhouse-operator", RELEASE)
    assert all(r.protect == (run.stack == "production") for r in crds), "deleting a CRD deletes every database"


def test_operator_logs_in_with_a_generated_password(run):
    values = run.named("clickhouse-operator", RELEASE).inputs["values"]
    assert values["secret"] == {"create": False}, "not the chart's published default password"
    assert values["fullnameOverride"] == "clickhouse-operator"  # config.yaml reads the Secret named so
    login = run.named("clickhouse-operator-login", SECRET).inputs
    assert (login["metadata"]["name"], login["metadata"]["namespace"]) == ("clickhouse-operator", "clickhouse-operator")
    data = secret_data(run, "clickhouse-operator-login")
    assert data["username"] == "clickhouse_operator" and len(data["password"]) == 32
    assert "clickhouse-operator-login" in deps(run, "clickhouse-operator", RELEASE)


def test_operator_runs_restricted_on_general_nodes(run):
    values = run.named("clickhouse-operator", RELEASE).inputs["values"]
    assert values["podSecurityContext"]["runAsNonRoot"] is True and values["podSecurityContext"]["runAsUser"] == 65534
    for part in ("operator", "metrics"):
        assert values[part]["containerSecurityContext"]["capabilities"] == {"drop": ["ALL"]}
        resources = values[part]["resources"]
        assert resources["requests"]["cpu"] and resources["requests"]["memory"] and resources["limits"]["memory"]
    assert "tolerations" not in values and "nodeSelector" not in values


# --- Keeper and the installation --------------------------------------------------------------------------
@pytest.mark.parametrize("stack, count", [("production", 3), ("staging", 1)])
def test_keeper_quorum_and_replicas_per_shard(stack, count, request):
    run = request.getfixturevalue(stack)
    (keeper_cluster,) = chk(run)["configuration"]["clusters"]
    assert keeper_cluster["layout"] == {"replicasCount": count}
    (cluster,) = chi(run)["configuration"]["clusters"]
    assert cluster["name"] == "analytics"
    assert cluster["layout"] == {"shardsCount": 1, "replicasCount": count}
    assert count == placement(stack_config(run), "clickhouse").nodes, "one replica and one Keeper per node"


@pytest.mark.parametrize("nodes, keepers", [(1, 1), (2, 1), (3, 3), (5, 3)])
def test_keeper_ensemble_is_odd(nodes, keepers):
    assert topology.keeper_count(nodes) == keepers  # 2 Keepers would survive no loss, unlike 1 or 3


def test_shards_times_replicas(two_shards):
    (cluster,) = chi(two_shards)["configuration"]["clusters"]
    assert cluster["layout"] == {"shardsCount": 2, "replicasCount": 3}
    # 6 servers on 3 nodes: two per node, each half of the server's share of a node.
    where = placement(stack_config(two_shards), "clickhouse")
    expected = sized(where, SHARES["clickhouse"] / 2, whole_cpus=False)
    server = containers(server_pod(two_shards))["clickhouse"]
    assert server["resources"] == expected.spec()
    job = two_shards.named("clickhouse-backup", CRONJOB).inputs["spec"]
    assert job["schedule"] == "30 2 * * *"
    shards = env(job["jobTemplate"]["spec"]["template"]["spec"]["containers"][0])["SHARDS"]
    assert shards == ("chi-adplatform-analytics-0-0,chi-adplatform-analytics-0-1,chi-adplatform-analytics-0-2 "
                      "chi-adplatform-analytics-1-0,chi-adplatform-analytics-1-1,chi-adplatform-analytics-1-2")
    assert env(containers(server_pod(two_shards))["clickhouse-backup"])["BACKUPS_TO_KEEP_REMOTE"] == "14"


def test_backups_leave_the_cluster_on_the_endpoints_port(two_shards):
    assert env(containers(server_pod(two_shards))["clickhouse-backup"])["S3_ENDPOINT"] == BACKUP_ENDPOINT_WITH_PORT
    egress = policy(two_shards, "clickhouse", "allow-egress-internet")["egress"][0]
    assert ports(egress) == [8443], "the port the endpoint names, not 443"


def test_installation_uses_the_keeper(run):
    nodes = chi(run)["configuration"]["zookeeper"]["nodes"]
    # The CHK's Service is keeper-<name> (the operator's patternCRServiceName), client port 2181.
    assert nodes == [{"host": "keeper-adplatform.clickhouse.svc", "port": 2181}]
    assert run.named("clickhouse-keeper", CHK).inputs["metadata"]["name"] == "adplatform"
    assert "clickhouse-keeper" in deps(run, "clickhouse-installation", CHI)


def test_images_pinned(run):
    version = charts.CLICKHOUSE_VERSION
    assert containers(server_pod(run))["clickhouse"]["image"] == f"docker.io/clickhouse/clickhouse-server:{version}"
    assert containers(keeper_pod(run))["clickhouse-keeper"]["image"] == \
        f"docker.io/clickhouse/clickhouse-keeper:{version}"
    assert containers(server_pod(run))["clickhouse-backup"]["image"] == \
        f"docker.io/altinity/clickhouse-backup:{charts.CLICKHOUSE_BACKUP_VERSION}"
    assert version == "26.3.21.7" and charts.CLICKHOUSE_BACKUP_VERSION == "2.8.0"


def test_pods_tolerate_exactly_the_pool_taints_and_select_its_nodes(run):
    where = placement(stack_config(run), "clickhouse")
    assert where.taints == ("adplatform.io/dedicated=clickhouse:NoSchedule",)
    for template in (server_pod(run), keeper_pod(run)):
        assert template["spec"]["tolerations"] == [TAINT]
        assert template["spec"]["nodeSelector"] == {"adplatform.io/role": "clickhouse"}


def test_replicas_and_keepers_on_distinct_nodes(production, staging):
    # Production: required (the operator renders ShardAntiAffinity as a required anti-affinity term).
    assert server_pod(production)["podDistribution"] == [
        {"type": "ShardAntiAffinity", "scope": "ClickHouseInstallation", "topologyKey": "kubernetes.io/hostname"}]
    keeper = keeper_pod(production)["spec"]["affinity"]["podAntiAffinity"]
    (term,) = keeper["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term == {"labelSelector": {"matchLabels": {"clickhouse-keeper.altinity.com/chk": "adplatform"}},
                    "topologyKey": "kubernetes.io/hostname"}
    # Staging: preferred only.
    assert "podDistribution" not in server_pod(staging)
    for template in (server_pod(staging), keeper_pod(staging)):
        terms = template["spec"]["affinity"]["podAntiAffinity"]
        assert list(terms) == ["preferredDuringSchedulingIgnoredDuringExecution"]


def test_resources_requests_equal_limits_sized_from_the_pool(run):
    where = placement(stack_config(run), "clickhouse")
    server, sidecar = containers(server_pod(run))["clickhouse"], containers(server_pod(run))["clickhouse-backup"]
    keeper = containers(keeper_pod(run))["clickhouse-keeper"]
    assert server["resources"] == sized(where, SHARES["clickhouse"], whole_cpus=False).spec()
    assert keeper["resources"] == sized(where, SHARES["clickhouse-keeper"], whole_cpus=False).spec()
    assert sidecar["resources"] == sized(where, SHARES["clickhouse-backup"], whole_cpus=False, min_cpu=0.1,
                                         min_memory_mib=256).spec()
    for container in (server, sidecar, keeper):
        assert container["resources"]["requests"] == container["resources"]["limits"], "Guaranteed QoS"
    if run.stack == "production":  # dedicated-large: 8 vCPU, 32 GB
        assert server["resources"]["limits"] == {"cpu": "4899m", "memory": "19290Mi"}


def test_storage_class_sizes_and_retention(run):
    expected_class = hetzner.STORAGE_CLASS  # the provider's default class, which the CSI driver provisions
    (data,) = chi(run)["templates"]["volumeClaimTemplates"]
    (keeper_data,) = chk(run)["templates"]["volumeClaimTemplates"]
    size = {"production": "500Gi", "staging": "50Gi"}[run.stack]
    assert data["spec"] == {"storageClassName": expected_class, "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": size}}}
    assert keeper_data["spec"]["resources"] == {"requests": {"storage": "20Gi"}}
    assert keeper_data["spec"]["storageClassName"] == expected_class
    retain = "Retain" if run.stack == "production" else "Delete"
    assert data["reclaimPolicy"] == keeper_data["reclaimPolicy"] == retain
    assert chi(run)["configuration"]["clusters"][0]["templates"]["dataVolumeClaimTemplate"] == data["name"]


def test_server_file_logs_stay_small_and_keeper_checks_its_volume(run):
    # The operator's logger config: level debug, 10 files of 1000M in the container's own filesystem
    # (config/chi/config.d/01-clickhouse-02-logger.xml). Ours wins (rendered later) and keeps < 1G.
    settings = chi(run)["configuration"]["settings"]
    assert settings["logger/level"] == "information"
    assert int(settings["logger/size"].removesuffix("M")) * (int(settings["logger/count"]) + 1) * 2 <= 1000
    # As in the operator's default Keeper container: the entrypoint checks the volume it mounts there.
    keeper = containers(keeper_pod(run))["clickhouse-keeper"]
    assert env(keeper)["CLICKHOUSE_DATA_DIR"] == "/var/lib/clickhouse-keeper"


def test_pods_meet_the_restricted_pod_security_level(run):
    for template in (server_pod(run), keeper_pod(run)):
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 101
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    labels = run.named("ns-clickhouse", "kubernetes:core/v1:Namespace").inputs["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


# --- users and secrets ----------------------------------------------------------------------------------
def test_users_have_no_plaintext_password_in_the_installation(run):
    users = chi(run)["configuration"]["users"]
    passwords = {k: v for k, v in users.items() if "password" in k}
    drilled = any(r.name == "drill-clickhouse" for r in run.resources)  # the restore drills' canary writer
    assert set(passwords) == {"default/password_sha256_hex", "admin/password_sha256_hex", "backup/password_sha256_hex",
                              "analytics-ingestion/password_sha256_hex", "reporting/password_sha256_hex",
                              *(["drill_canary/password_sha256_hex"] if drilled else [])}
    for key, value in passwords.items():
        user = key.split("/")[0]
        assert value == {"valueFrom": {"secretKeyRef": {"name": "clickhouse-server-auth", "key": user}}}
    auth = secret_data(run, "clickhouse-server-auth")
    credentials = [secret_data(run, name)["password"] for name in ("clickhouse-admin", "clickhouse-user-reporting",
                                                                     "clickhouse-backup")]
    spec_values = set(map(str, leaves(chi(run)))) | set(map(str, leaves(chk(run))))
    assert not spec_values & {*credentials, *auth.values()}, "no password or hash in the CRs"
    # The hashes ClickHouse checks are the sha256 of the passwords clients get.
    assert auth["admin"] == hashlib.sha256(secret_data(run, "clickhouse-admin")["password"].encode()).hexdigest()
    assert auth["reporting"] == hashlib.sha256(
        secret_data(run, "clickhouse-user-reporting")["password"].encode()).hexdigest()
    assert auth["backup"] == hashlib.sha256(secret_data(run, "clickhouse-backup")["password"].encode()).hexdigest()
    if drilled:
        assert auth["drill_canary"] == hashlib.sha256(
            secret_data(run, "clickhouse-drill-canary")["password"].encode()).hexdigest()


def test_a_replaced_password_rolls_the_servers(run):
    """The servers read the hashes from environment variables, at start only: the pod template carries a plain digest
    of the auth Secret, so replacing one consumer's password changes the template and the operator rolls the
    servers; the digest is domain-separated, never a hash ClickHouse would take as a password's."""
    auth = secret_data(run, "clickhouse-server-auth")
    annotations = server_pod(run)["metadata"]["annotations"]
    expected = marker("clickhouse-server-auth", users.auth_text(auth))
    assert annotations == {"adplatform.io/auth-digest": expected}
    replaced = {**auth, "reporting": hashlib.sha256(b"a new password").hexdigest()}
    assert marker("clickhouse-server-auth", users.auth_text(replaced)) != expected
    assert users.auth_text(dict(reversed(auth.items()))) == users.auth_text(auth)  # the order of the keys is no change
    assert expected not in auth.values() and expected not in {hashlib.sha256(v.encode()).hexdigest() for v in auth.values()}


def test_admin_and_services_only_from_the_pod_network_default_locked(run):
    users = chi(run)["configuration"]["users"]
    pod_cidr = stack_config(run).cluster.pod_cidr
    assert users["admin/networks/ip"] == users["reporting/networks/ip"] == [pod_cidr]
    assert users["admin/access_management"] == 1 and "reporting/access_management" not in users
    # `default` keeps the operator's own network rule (this installation's pods) and gets a password
    # nobody is given; shards authenticate distributed queries with the interserver secret instead.
    assert "default/networks/ip" not in users and "default/password_sha256_hex" in users
    (cluster,) = chi(run)["configuration"]["clusters"]
    assert cluster["secret"] == {"valueFrom": {"secretKeyRef": {"name": "clickhouse-server-auth",
                                                                "key": "interserver"}}}
    assert len(secret_data(run, "clickhouse-server-auth")["interserver"]) == 32


def test_passwords_generated_secret_and_protected_in_production(run):
    names = {"clickhouse-admin-password", "clickhouse-reporting-password", "clickhouse-default-password",
             "clickhouse-backup-password", "clickhouse-interserver-secret", "clickhouse-operator-password",
             "clickhouse-backup-api-password"}
    generated = {r.name: r for r in run.of_type("random:index/randomPassword:RandomPassword") if r.name in names}
    assert set(generated) == names
    assert all(r.protect == (run.stack == "production") for r in generated.values())
    for name in ("clickhouse-server-auth", "clickhouse-admin", "clickhouse-user-reporting", "clickhouse-backup",
                 "clickhouse-backup-s3", "clickhouse-operator-login"):
        secret_data(run, name)  # asserts the values are secret


def test_database_resources_protected_in_production(production, staging):
    for name, type_ in (("clickhouse-installation", CHI), ("clickhouse-keeper", CHK)):
        assert production.named(name, type_).protect is True
        assert staging.named(name, type_).protect is False


def test_pulumi_waits_until_the_operator_has_reconciled_keeper_and_the_servers(production, two_shards):
    """`pulumi up`, the restore Job and the consumers start only once every pod of both installations serves: the
    operator reports status.status Completed; allowed up to its own 300 s per host, hosts one after another."""
    for run, servers in ((production, 3), (two_shards, 6)):
        for name, type_, hosts in (("clickhouse-keeper", CHK, 3), ("clickhouse-installation", CHI, servers)):
            annotations = run.named(name, type_).inputs["metadata"]["annotations"]
            assert annotations == {"pulumi.com/waitFor": "jsonpath={.status.status}=Completed",
                                   "pulumi.com/timeoutSeconds": str(hosts * 300 + 300)}
    assert "clickhouse-installation" in deps(production, "clickhouse-backup", CRONJOB)


# --- backups --------------------------------------------------------------------------------------------
def test_backup_target_schedule_and_retention(run):
    sidecar = env(containers(server_pod(run))["clickhouse-backup"])
    if run.stack == "production":  # the off-cluster bucket under <stack>/data/clickhouse
        assert sidecar["S3_ENDPOINT"] == "https://fsn1.your-objectstorage.com"
        assert sidecar["S3_BUCKET"] == "adp-production-backups"
        assert sidecar["S3_PATH"] == "production/data/clickhouse/shard-{shard}"
        assert sidecar["S3_FORCE_PATH_STYLE"] == "false"
    else:  # its own bucket of the in-cluster object store, path-style
        assert sidecar["S3_ENDPOINT"].startswith("http://") and ".seaweedfs.svc:8333" in sidecar["S3_ENDPOINT"]
        assert sidecar["S3_BUCKET"] == "clickhouse-backups" and sidecar["S3_PATH"] == "clickhouse/shard-{shard}"
        assert sidecar["S3_FORCE_PATH_STYLE"] == "true"
    assert sidecar["BACKUPS_TO_KEEP_REMOTE"] == "7" and sidecar["BACKUPS_TO_KEEP_LOCAL"] == "-1"
    assert sidecar["S3_ACCESS_KEY"] == {"secretKeyRef": {"name": "clickhouse-backup-s3", "key": "ACCESS_KEY_ID"}}
    assert sidecar["S3_SECRET_KEY"] == {"secretKeyRef": {"name": "clickhouse-backup-s3", "key": "SECRET_ACCESS_KEY"}}
    s3 = secret_data(run, "clickhouse-backup-s3")
    assert set(s3) == {"ACCESS_KEY_ID", "SECRET_ACCESS_KEY"} and all(s3.values())
    job = run.named("clickhouse-backup", CRONJOB).inputs["spec"]
    assert job["schedule"] == "0 1 * * *" and job["concurrencyPolicy"] == "Forbid" and job["timeZone"] == "Etc/UTC"
    assert "clickhouse-installation" in deps(run, "clickhouse-backup", CRONJOB)


def test_backup_job_calls_one_replica_per_shard_through_the_api(run):
    pod = run.named("clickhouse-backup", CRONJOB).inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    variables = env(container)
    replicas = placement(stack_config(run), "clickhouse").replicas(3)
    assert variables["SHARDS"] == ",".join(f"chi-adplatform-analytics-0-{r}" for r in range(replicas))
    assert variables["DOMAIN"] == "clickhouse.svc" and variables["API_PORT"] == "7171"
    assert variables["API_PASSWORD"] == {"secretKeyRef": {"name": "clickhouse-backup", "key": "api-password"}}
    assert container["command"] == ["/bin/bash", "/scripts/create-remote.sh"]
    script = run.named("clickhouse-backup-script", "kubernetes:core/v1:ConfigMap").inputs["data"]
    assert script == {"create-remote.sh": SCRIPT.read_text()}
    assert pod["automountServiceAccountToken"] is False and "tolerations" not in pod


def test_backup_script_passes_shellcheck():
    assert validators.shellcheck({"create-remote": SCRIPT.read_text()}) == ""


class _FakeBackupApi(http.server.BaseHTTPRequestHandler):
    """Sidecars on *.localhost: `down-*` do not answer, the others accept create_remote and then report
    `statuses[host]` (success or error)."""

    statuses: dict[str, str] = {}
    calls: list[tuple[str, str, str]] = []

    def _reply(self) -> None:
        host = self.headers["Host"].split(".")[0]
        self.calls.append((self.command, host, self.path))
        if self.headers.get("Authorization") != "Basic YXBpOnMzY3IzdA==":  # api:s3cr3t
            self.send_response(401)
            self.end_headers()
            return
        if host.startswith("down"):
            self.send_response(503)
            self.end_headers()
            return
        body = {"status": self.statuses.get(host, "success"), "operation_id": f"op-{host}"}
        if self.path.startswith("/backup/create_remote"):
            body = {"status": "acknowledged", "operation": "create_remote", "operation_id": f"op-{host}"}
        self.send_response(201 if self.command == "POST" else 200)
        self.end_headers()
        self.wfile.write(json.dumps(body).encode() + b"\n")

    do_GET = do_POST = _reply

    def log_message(self, *args: Any) -> None:
        pass


def _run_script(shards: str, statuses: dict[str, str]) -> tuple[subprocess.CompletedProcess, list]:
    _FakeBackupApi.statuses, _FakeBackupApi.calls = statuses, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeBackupApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = subprocess.run(
            ["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60,
            env={**os.environ, "SHARDS": shards, "DOMAIN": "localhost", "API_PORT": str(server.server_port),
                 "API_USERNAME": "api", "API_PASSWORD": "s3cr3t", "POLL_SECONDS": "0", "MAX_MISSES": "2"})
    finally:
        server.shutdown()
    return result, list(_FakeBackupApi.calls)


def test_backup_script_backs_up_each_shard_on_its_first_live_replica():
    result, calls = _run_script("down-0,up-0 up-1,up-2", {})
    assert result.returncode == 0, result.stderr
    started = sorted(host for method, host, path in calls if method == "POST")
    assert started == ["up-0", "up-1"], "one replica per shard, skipping the one that does not answer"
    assert all(path.startswith("/backup/create_remote?name=full-") for method, _, path in calls if method == "POST")
    assert "s3cr3t" not in result.stdout + result.stderr


def test_backup_script_fails_when_a_shard_fails():
    result, _ = _run_script("up-0 up-1", {"up-1": "error"})
    assert result.returncode == 1 and "up-1" in result.stderr
    result, calls = _run_script("down-0,down-1", {})
    assert result.returncode == 1 and "no replica answers" in result.stderr
    assert not [c for c in calls if c[0] == "POST"]


def test_backup_env_for_an_in_cluster_store_without_a_prefix():
    location = S3Location("http://s3.seaweedfs.svc:8333", "us-east-1", "backups", "", None, None, in_cluster=True)
    variables = env({"env": backup.sidecar_env(location.under("clickhouse"), keep=3)})
    assert variables["S3_PATH"] == "clickhouse/shard-{shard}" and variables["S3_FORCE_PATH_STYLE"] == "true"
    assert variables["BACKUPS_TO_KEEP_REMOTE"] == "3"


@pytest.fixture(scope="module")
def no_backups() -> Run:
    """Staging without an object store and without off-cluster backups (nothing to back up to), with the
    servers' cpu and memory set in the config."""
    raw = base_raw(profile="staging", clusterServices={"tls": {"acmeEmail": "ops@example.com"}},
                   dataPlane={"objectStorage": {"enabled": False}, "clickhouse": SERVER_OVERRIDE},
                   layers={"platform": False})  # logs and traces keep their data in the object store
    raw.pop("backupCredentials")
    return run_raw(raw, stack="staging")


def test_no_backup_target_means_no_sidecar_job_or_backup_user(no_backups):
    assert set(containers(server_pod(no_backups))) == {"clickhouse"}
    assert not [r for r in no_backups.of_type(CRONJOB) if r.name == "clickhouse-backup"]
    assert "backup/password_sha256_hex" not in chi(no_backups)["configuration"]["users"]
    assert [r.name for r in no_backups.of_type(PODMONITOR) if r.name.startswith("podmonitor-clickhouse")] == \
        ["podmonitor-clickhouse-keeper"]


def test_configured_cpu_and_memory_size_the_server_only(no_backups, staging):
    """dataPlane.clickhouse.cpu/memory are the server's; Keeper keeps its share of the node (it would
    otherwise ask for as much again, and the pod would not fit beside the server)."""
    server = containers(server_pod(no_backups))["clickhouse"]["resources"]
    assert server["requests"] == server["limits"] == SERVER_OVERRIDE
    keeper = containers(keeper_pod(no_backups))["clickhouse-keeper"]["resources"]
    assert keeper == containers(keeper_pod(staging))["clickhouse-keeper"]["resources"]
    assert keeper["limits"] == sized(placement(stack_config(no_backups), "clickhouse"), SHARES["clickhouse-keeper"],
                                     whole_cpus=False).spec()["limits"] != SERVER_OVERRIDE


# --- disruption budgets, network, metrics, endpoint --------------------------------------------------------
def test_disruption_budgets_keep_quorum_and_a_replica_per_shard(run):
    # The operator creates one PDB per cluster with maxUnavailable = pdbMaxUnavailable
    # (pkg/model/common/creator/pdb.go): 1 keeps 2 of 3 Keepers and 2 of 3 replicas of every shard.
    (keeper_cluster,) = chk(run)["configuration"]["clusters"]
    (cluster,) = chi(run)["configuration"]["clusters"]
    for budgeted in (keeper_cluster, cluster):
        assert (budgeted["pdbManaged"], budgeted["pdbMaxUnavailable"]) == ("true", 1)
    keepers = keeper_cluster["layout"]["replicasCount"]
    if run.stack == "production":
        assert keepers - keeper_cluster["pdbMaxUnavailable"] > keepers // 2, "quorum survives a drain"
        assert cluster["layout"]["replicasCount"] - cluster["pdbMaxUnavailable"] >= 1


def test_network_policies(run):
    def allowed(namespace: str, name: str, direction: str = "ingress") -> list[int]:
        return ports(policy(run, namespace, name)[direction][0])

    teams = policy(run, "clickhouse", "allow-from-teams")["ingress"][0]
    assert teams["from"] == [{"namespaceSelector": {"matchLabels": {"adplatform.io/layer": "teams"}}}]
    assert ports(teams) == [8123, 9000]
    assert allowed("clickhouse", "allow-from-platform") == [8123, 9000]
    assert allowed("clickhouse", "allow-from-monitoring") == [7000, 7171]
    # The operator: HTTP to every server, and the ZooKeeper protocol to Keeper, where it creates the
    # cluster's root path on each reconcile (worker-zk-integration.go ensureZkPath).
    assert allowed("clickhouse", "allow-from-clickhouse-operator") == [2181, 8123]
    assert allowed("clickhouse-operator", "allow-to-clickhouse", "egress") == [2181, 8123]
    assert allowed("clickhouse-operator", "allow-from-monitoring") == [8888, 9999]
    if run.stack == "production":  # backups leave the cluster over HTTPS
        assert allowed("clickhouse", "allow-egress-internet", "egress") == [443]
    else:  # ...or go to the in-cluster object store
        assert allowed("clickhouse", "allow-to-seaweedfs", "egress") == [8333]


def test_metrics_scraped(run):
    values = run.named("clickhouse-operator", RELEASE).inputs["values"]
    assert values["metrics"]["enabled"] is True and values["serviceMonitor"]["enabled"] is True
    assert chk(run)["configuration"]["settings"]["prometheus/port"] == "7000"
    assert containers(keeper_pod(run))["clickhouse-keeper"]["ports"] == [{"name": "metrics", "containerPort": 7000}]
    keeper = run.named("podmonitor-clickhouse-keeper", PODMONITOR).inputs["spec"]
    assert keeper["selector"] == {"matchLabels": {"clickhouse-keeper.altinity.com/chk": "adplatform"}}
    assert keeper["podMetricsEndpoints"][0]["port"] == "metrics"
    sidecar = run.named("podmonitor-clickhouse-backup", PODMONITOR).inputs["spec"]
    (endpoint,) = sidecar["podMetricsEndpoints"]
    assert endpoint["port"] == "backup-api" and endpoint["basicAuth"]["password"] == \
        {"name": "clickhouse-backup", "key": "api-password"}


def test_endpoint_in_the_stack_output(run):
    summary = run.outputs["dataPlane"]["clickhouse"]
    endpoint = summary.get("endpoint", summary)
    assert endpoint == {
        "host": "cluster-adplatform-analytics.clickhouse.svc", "httpPort": 8123, "nativePort": 9000,
        "cluster": "analytics", "namespace": "clickhouse",
        "users": {name: {"secret": f"clickhouse-user-{name}", "namespace": "clickhouse",
                         "keys": ["username", "password"]} for name in ("analytics-ingestion", "reporting")},
        "podLabels": {"clickhouse.altinity.com/chi": "adplatform"}}
    assert "offline-" not in json.dumps(run.outputs["dataPlane"]), "no generated value in the output"
    # The client Service comes from our cluster service template.
    (service,) = chi(run)["templates"]["serviceTemplates"]
    assert service["name"] == chi(run)["configuration"]["clusters"][0]["templates"]["clusterServiceTemplate"]
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [("http", 8123), ("tcp", 9000)]
    assert topology.cluster_service() == endpoint["host"].split(".")[0]


# --- config errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("settings, message", [
    ({"backupRetention": 0}, "dataPlane.clickhouse.backupRetention must be at least 1"),
    ({"shards": 0}, "dataPlane.clickhouse.shards must be between 1 and 64"),
    ({"keeperStorageSize": "20G"}, "dataPlane.clickhouse.keeperStorageSize"),
])
def test_config_errors(settings, message):
    with pytest.raises(ConfigError) as err:
        load("test", base_raw(dataPlane={"clickhouse": settings}), SECRET_KEYS)
    (problem,) = [str(p) for p in err.value.problems]
    assert message in problem and "got" in problem


def test_installation_specs_match_their_schemas(run):
    for name, type_ in (("clickhouse-installation", CHI), ("clickhouse-keeper", CHK)):
        validators.validate_kubernetes(type_, run.named(name, type_).inputs)
    bad = dict(run.named("clickhouse-installation", CHI).inputs)
    bad["spec"] = {**bad["spec"], "configuration": {**bad["spec"]["configuration"], "zookeper": {}}}
    with pytest.raises(Exception, match="zookeper"):
        validators.validate_kubernetes(CHI, bad)
    assert installation.keeper_nodes()[0]["port"] == topology.KEEPER_PORT
