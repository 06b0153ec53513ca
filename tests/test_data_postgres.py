"""PostgreSQL: CloudNativePG operator + barman-cloud plugin, the shared Cluster, its databases and backups."""

from __future__ import annotations

import pytest

from components import charts
from components.data import postgres
from components.data.context import SHARES
from components.data.placement import placement, sized
from tests.conftest import base_raw, stack_run
from tests.stores import (SECRET, assert_operator_ha, assert_spread_over_nodes, config_problems, policy, ports,
                          stack_config, string_data)
from tools.mockrun import Run

STACKS = ("production", "staging")
TAINT = {"key": "adplatform.io/dedicated", "operator": "Equal", "value": "stateful", "effect": "NoSchedule"}


@pytest.fixture(params=STACKS)
def run(request) -> Run:
    return request.getfixturevalue(request.param)


def cluster(run: Run) -> dict:
    return run.named("postgres-cluster", "kubernetes:postgresql.cnpg.io/v1:Cluster").inputs["spec"]


def values(run: Run, release: str) -> dict:
    return run.named(release, "kubernetes:helm.sh/v3:Release").inputs["values"]


# --- versions ---------------------------------------------------------------------------------------------
def test_operator_plugin_and_postgres_versions_are_pinned_from_the_catalog(run):
    for name, chart in (("cloudnative-pg", charts.CLOUDNATIVE_PG), ("plugin-barman-cloud", charts.BARMAN_CLOUD)):
        release = run.named(name, "kubernetes:helm.sh/v3:Release").inputs
        assert (release["chart"], release["version"], release["repositoryOpts"]["repo"]) == \
            (chart.chart, chart.version, chart.repo)
        assert release["namespace"] == "cnpg-system" and release["createNamespace"] is False
    assert (charts.CLOUDNATIVE_PG.version, charts.CNPG_VERSION) == ("0.29.0", "1.30.0")
    assert (charts.BARMAN_CLOUD.version, charts.BARMAN_CLOUD_VERSION) == ("0.7.0", "v0.13.0")
    assert values(run, "cloudnative-pg")["image"]["tag"] == charts.CNPG_VERSION
    plugin = values(run, "plugin-barman-cloud")
    assert plugin["image"]["tag"] == plugin["sidecarImage"]["tag"] == charts.BARMAN_CLOUD_VERSION
    image = cluster(run)["imageName"]
    assert image == charts.POSTGRES_IMAGE
    assert image.startswith("ghcr.io/cloudnative-pg/postgresql:18.") and "@sha256:" in image


# --- shape: instances, quorum, disruption budgets ---------------------------------------------------------
def test_production_runs_three_synchronous_instances_and_staging_one(production, staging):
    prod, stage = cluster(production), cluster(staging)
    assert prod["instances"] == 3 and stage["instances"] == 1
    # A commit waits for one standby in production; a lone instance has none to wait for.
    assert prod["postgresql"]["synchronous"] == {"method": "any", "number": 1, "dataDurability": "required"}
    assert "synchronous" not in stage["postgresql"]
    assert prod["primaryUpdateMethod"] == "switchover" and stage["primaryUpdateMethod"] == "restart"


def test_one_instance_per_node_required_in_production_preferred_in_staging(production, staging):
    for run, kind in ((production, "required"), (staging, "preferred")):
        affinity = cluster(run)["affinity"]
        assert affinity["enablePodAntiAffinity"] is True
        assert affinity["podAntiAffinityType"] == kind
        assert affinity["topologyKey"] == "kubernetes.io/hostname"


def test_disruption_budgets_keep_the_primary_and_a_replica(production, staging):
    # The operator creates `postgres-primary` (minAvailable 1) and `postgres` (minAvailable instances-2)
    # when enablePDB is on (pkg/specs/poddisruptionbudget.go, v1.30.0); a single instance must have
    # none, or its node can never be drained (docs/src/kubernetes_upgrade.md).
    assert cluster(production)["enablePDB"] is True
    assert cluster(staging)["enablePDB"] is False
    # The operator itself: 2 leader-elected replicas, our PDB in production (the chart ships none), spread
    # over the general nodes where it can (preferred: a required rule stalls the rolling update on 2 nodes).
    assert_operator_ha(production, staging, "cloudnative-pg", "cnpg-system", postgres.OPERATOR_SELECTOR)
    assert_spread_over_nodes(values(production, "cloudnative-pg")["affinity"], postgres.OPERATOR_SELECTOR)


# --- placement and sizing ---------------------------------------------------------------------------------
def test_instances_select_the_stateful_nodes_and_tolerate_exactly_their_taint(run):
    where = placement(stack_config(run), "stateful")
    assert where.taints == ("adplatform.io/dedicated=stateful:NoSchedule",)  # from the stack's pools
    affinity = cluster(run)["affinity"]
    assert affinity["nodeSelector"] == {"adplatform.io/role": "stateful"}
    assert affinity["tolerations"] == [TAINT]
    # The operators run on the general nodes: no toleration of any database pool.
    for release in ("cloudnative-pg", "plugin-barman-cloud"):
        assert not values(run, release).get("tolerations")


def test_resources_are_guaranteed_and_sized_from_the_stateful_pool(run):
    where = placement(stack_config(run), "stateful")
    expected = sized(where, SHARES["postgres"], whole_cpus=False)
    resources = cluster(run)["resources"]
    assert resources["requests"] == resources["limits"] == {"cpu": expected.cpu, "memory": expected.memory}
    # The barman-cloud sidecar too: every container's requests == limits keeps the pods Guaranteed.
    sidecar = run.named("postgres-object-store").inputs["spec"]["instanceSidecarConfiguration"]["resources"]
    assert sidecar["requests"] == sidecar["limits"]
    shared_buffers = int(cluster(run)["postgresql"]["parameters"]["shared_buffers"].removesuffix("MB"))
    assert shared_buffers == expected.memory_mib // 4


def test_data_and_wal_on_separate_volumes_of_the_storage_class(run):
    settings = stack_config(run).data_plane.postgres
    spec = cluster(run)
    assert spec["storage"] == {"size": settings.storage_size, "storageClass": "hcloud-volumes"}
    assert spec["walStorage"] == {"size": settings.wal_storage_size, "storageClass": "hcloud-volumes"}
    sizes = {"production": ("100Gi", "20Gi"), "staging": ("20Gi", "5Gi")}[run.stack]
    assert (spec["storage"]["size"], spec["walStorage"]["size"]) == sizes


# --- databases and roles ----------------------------------------------------------------------------------
def test_each_database_has_its_own_owner_role_and_generated_password(run):
    wanted = stack_config(run).data_plane.postgres.databases
    assert wanted == ["gitlab", "airflow", "mlflow", "jupyterhub"]
    roles = {r["name"]: r for r in cluster(run)["managed"]["roles"]}
    assert set(roles) == set(wanted)
    passwords = set()
    for db in wanted:
        role = roles[db]
        assert role["login"] is True and role["superuser"] is False and role["createrole"] is False
        assert role["passwordSecret"] == {"name": f"postgres-{db}"}
        secret = run.named(f"postgres-{db}-credentials", "kubernetes:core/v1:Secret").inputs
        assert secret["type"] == "kubernetes.io/basic-auth"
        assert secret["metadata"]["name"] == f"postgres-{db}" and secret["metadata"]["namespace"] == "postgres"
        assert secret["metadata"]["labels"]["cnpg.io/reload"] == "true"
        data = string_data(run.named(f"postgres-{db}-credentials", SECRET))  # asserts the values are secret
        assert data["username"] == db and len(data["password"]) == 32
        passwords.add(data["password"])
        database = run.named(f"postgres-database-{db}", "kubernetes:postgresql.cnpg.io/v1:Database").inputs["spec"]
        assert (database["name"], database["owner"], database["cluster"]) == (db, db, {"name": "postgres"})
        assert database["databaseReclaimPolicy"] == "retain"
    assert len(passwords) == len(wanted)  # one password each, never shared
    gitlab = run.named("postgres-database-gitlab").inputs["spec"]
    assert {e["name"] for e in gitlab["extensions"]} == {"pg_trgm", "btree_gist"}


def test_fields_the_operator_makes_immutable_replace_the_object(run):
    """CloudNativePG 1.30's CRDs refuse to change a Database's name or cluster and a ScheduledBackup's cluster
    (CEL `self == oldSelf`): a change must replace the object (deleted first: the new one has the same name)."""
    objects = [(r, ["spec.name", "spec.cluster"])
               for r in run.of_type("kubernetes:postgresql.cnpg.io/v1:Database")]
    objects.append((run.named("postgres-scheduled-backup", "kubernetes:postgresql.cnpg.io/v1:ScheduledBackup"),
                    ["spec.cluster"]))
    assert len(objects) > 2
    for resource, paths in objects:
        assert resource.options["replaceOnChanges"] == paths, resource.name
        assert resource.options["deleteBeforeReplace"] is True, resource.name
    # The cluster itself (a database whose deletion deletes its data) is never replaced on a field change.
    assert run.named("postgres-cluster").options["replaceOnChanges"] == []


def test_superuser_access_is_disabled(run):
    assert cluster(run)["enableSuperuserAccess"] is False
    assert "superuserSecret" not in cluster(run)


# --- backups ----------------------------------------------------------------------------------------------
def test_wal_archiving_and_base_backups_go_through_the_barman_cloud_plugin(run):
    assert cluster(run)["plugins"] == [{"name": "barman-cloud.cloudnative-pg.io", "isWALArchiver": True,
                                        "parameters": {"barmanObjectName": "postgres-backups"}}]
    assert "backup" not in cluster(run)  # the in-tree barmanObjectStore is removed in 1.31
    scheduled = run.named("postgres-scheduled-backup",
                          "kubernetes:postgresql.cnpg.io/v1:ScheduledBackup").inputs["spec"]
    assert scheduled["method"] == "plugin"
    assert scheduled["pluginConfiguration"] == {"name": "barman-cloud.cloudnative-pg.io"}
    assert scheduled["cluster"] == {"name": "postgres"}
    settings = stack_config(run).data_plane.postgres
    assert scheduled["schedule"] == "0 " + settings.backup_schedule == "0 0 2 * * *"  # seconds field first
    store = run.named("postgres-object-store", "kubernetes:barmancloud.cnpg.io/v1:ObjectStore").inputs["spec"]
    assert store["retentionPolicy"] == settings.backup_retention == "30d"
    # Velero's nightly file copy skips the live data and WAL volumes (CloudNativePG's volume names).
    assert cluster(run)["inheritedMetadata"]["annotations"] == \
        {"backup.velero.io/backup-volumes-excludes": "pgdata,pg-wal"}


@pytest.mark.parametrize(("stack", "path", "endpoint"), [
    ("production", "s3://adp-production-backups/production/data/postgres", "https://fsn1.your-objectstorage.com"),
    ("staging", "s3://postgres-backups/postgres", "http://s3.seaweedfs.svc:8333"),
])
def test_backups_go_to_external_s3_in_production_and_the_in_cluster_bucket_in_staging(stack, path, endpoint):
    run = stack_run(stack)
    config = run.named("postgres-object-store").inputs["spec"]["configuration"]
    assert config["destinationPath"] == path and config["endpointURL"] == endpoint
    credentials = config["s3Credentials"]
    secret = run.named("postgres-backup-s3", "kubernetes:core/v1:Secret").inputs
    assert secret["metadata"] == {"name": credentials["accessKeyId"]["name"], "namespace": "postgres"}
    keys = string_data(run.named("postgres-backup-s3", SECRET))  # the keys reach the engine as secrets
    assert set(keys) == {credentials["accessKeyId"]["key"], credentials["secretAccessKey"]["key"]}
    assert all(keys.values())
    env = {e["name"]: e["value"] for e in run.named("postgres-object-store").inputs["spec"]
           ["instanceSidecarConfiguration"]["env"]}
    assert env["AWS_REQUEST_CHECKSUM_CALCULATION"] == "when_required"


def test_the_cron_gains_a_seconds_field():
    assert postgres.cron("30 1 * * 0") == "0 30 1 * * 0"


# --- network ----------------------------------------------------------------------------------------------
def test_network_peers_are_explicit(production, staging):
    def allowed(run: Run, namespace: str, name: str, direction: str = "ingress") -> list[int]:
        return ports(policy(run, namespace, name)[direction][0])

    for run in (production, staging):
        operator = policy(run, "postgres", "allow-from-cnpg-system")["ingress"][0]
        assert ports(operator) == [5432, 8000]
        assert operator["from"][0]["podSelector"]["matchLabels"] == postgres.OPERATOR_SELECTOR
        to_cluster = policy(run, "cnpg-system", "allow-to-postgres")["egress"][0]
        assert ports(to_cluster) == [5432, 8000]
        assert to_cluster["to"][0]["podSelector"]["matchLabels"] == {"cnpg.io/cluster": "postgres"}
        assert allowed(run, "cnpg-system", "allow-api-server-webhooks") == [9443]
        platform = policy(run, "postgres", "allow-from-platform")["ingress"][0]
        assert ports(platform) == [5432]
        assert platform["from"][0]["namespaceSelector"]["matchLabels"] == {"adplatform.io/layer": "platform"}
        assert allowed(run, "postgres", "allow-from-monitoring") == [9187]
        names = {r.name for r in run.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")}
        assert "netpol-postgres-allow-from-teams" not in names  # the ad services have no database here
    # Backups: HTTPS to the external store in production, the in-cluster S3 port in staging.
    assert allowed(production, "postgres", "allow-egress-internet", "egress") == [443]
    assert allowed(staging, "postgres", "allow-to-seaweedfs", "egress") == [8333]
    names = {r.name for r in staging.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")}
    assert "netpol-postgres-allow-egress-internet" not in names


def test_namespaces_enforce_restricted_pod_security(run):
    for name in ("postgres", "cnpg-system"):
        labels = run.named(f"ns-{name}", "kubernetes:core/v1:Namespace").inputs["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        assert labels["adplatform.io/layer"] == "data-plane"


# --- metrics, protection, output --------------------------------------------------------------------------
def test_metrics_are_scraped_through_a_pod_monitor_of_our_own(run):
    monitor = run.named("postgres-pod-monitor", "kubernetes:monitoring.coreos.com/v1:PodMonitor").inputs
    assert monitor["metadata"]["namespace"] == "postgres"
    assert monitor["spec"]["selector"]["matchLabels"] == {"cnpg.io/cluster": "postgres"}
    assert monitor["spec"]["podMetricsEndpoints"] == [{"port": "metrics"}]
    assert "monitoring" not in cluster(run)  # enablePodMonitor is deprecated in CloudNativePG 1.30
    assert values(run, "cloudnative-pg")["monitoring"]["podMonitorEnabled"] is True


def test_production_protects_the_cluster_databases_and_passwords(production, staging):
    for run, protected in ((production, True), (staging, False)):
        assert run.named("postgres-cluster").protect is protected
        for db in ("gitlab", "airflow", "mlflow", "jupyterhub"):
            assert run.named(f"postgres-database-{db}").protect is protected
            password = run.named(f"postgres-{db}-password", "random:index/randomPassword:RandomPassword")
            assert password.protect is protected


def test_the_endpoint_names_hosts_and_secrets_but_no_credential(run):
    endpoint = run.outputs["dataPlane"]["postgres"]["endpoint"]
    assert endpoint["host"] == "postgres-rw.postgres.svc" and endpoint["readHost"] == "postgres-ro.postgres.svc"
    assert endpoint["port"] == 5432 and endpoint["caSecret"] == "postgres-ca"
    assert endpoint["podLabels"] == {"cnpg.io/cluster": "postgres"}
    gitlab = endpoint["databases"]["gitlab"]
    assert gitlab == {"name": "gitlab", "owner": "gitlab",
                      "credentials": {"secret": "postgres-gitlab", "namespace": "postgres",
                                      "keys": ["username", "password"]}}


# --- config errors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("postgres_cfg", "expected"), [
    ({"backupRetention": "30 days"}, "adplatform:dataPlane.postgres.backupRetention must be a retention such as 30d"),
    ({"backupSchedule": "daily"}, "adplatform:dataPlane.postgres.backupSchedule must be a 5-field cron expression"),
    ({"databases": ["GitLab"]}, "adplatform:dataPlane.postgres.databases database 'GitLab' must be 1-63 characters"),
    ({"databases": ["gitlab", "gitlab"]}, "adplatform:dataPlane.postgres.databases must not repeat a database"),
    ({"walStorageSize": "20GB"}, "adplatform:dataPlane.postgres.walStorageSize must be a volume size in Gi or Ti"),
])
def test_invalid_postgres_settings_are_refused_before_anything_runs(postgres_cfg, expected):
    [msg] = config_problems(base_raw(dataPlane={"postgres": postgres_cfg}))
    assert msg.startswith(expected), msg
