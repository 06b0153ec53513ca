"""The data plane as a whole: config rules, placement and sizing, backup target, outputs, what never appears."""

from __future__ import annotations

import json

import pytest

from components.data.placement import Resources, node_budget, placement, sized
from config import load
from tests.conftest import SECRET_KEYS, base_raw, run_raw
from tests.stores import config_problems as problems
from tools.mockrun import Secret

STORES = ("scylladb", "redpanda", "clickhouse", "dragonfly", "postgres", "objectStorage")
EXTERNAL = {"endpoint": "https://fsn1.your-objectstorage.com", "region": "fsn1", "bucketPrefix": "adp-prod"}


def _data_types(run) -> set[str]:
    plane = next(r for r in run.resources if r.type == "adplatform:data:DataPlane")
    below = {plane.urn}
    for r in run.resources:  # parents are registered before their children
        if r.parent in below:
            below.add(r.urn)
    return {r.type for r in run.resources if r.urn in below and r.urn != plane.urn}


# --- config ----------------------------------------------------------------------------------------------
def test_a_store_without_nodes_for_its_role_is_refused_in_staging_too():
    raw = base_raw(profile="staging", cluster={"pools": [{"name": "clickhouse", "count": 0}]})
    [msg] = problems(raw)
    assert msg.startswith("adplatform:cluster.pools must give the clickhouse role at least 1 nodes in the staging")
    assert "dataPlane.clickhouse" in msg and "enabled: false" in msg
    raw["dataPlane"] = {"clickhouse": {"enabled": False}}
    raw["layers"] = {"adServices": False}  # analytics and reporting use ClickHouse
    load("test", raw, SECRET_KEYS)


def test_the_stateful_role_lists_every_store_that_needs_it():
    [msg] = problems(base_raw(cluster={"pools": [{"name": "stateful", "count": 0}]}))
    assert "at least 3 nodes in the production profile" in msg
    assert "dataPlane.dragonfly, dataPlane.postgres, dataPlane.objectStorage" in msg


def test_external_object_storage_needs_its_location_and_secrets():
    found = problems(base_raw(dataPlane={"objectStorage": {"backend": "external"}}))
    assert any(p.startswith("adplatform:dataPlane.objectStorage.external must be set when backend is 'external'")
               for p in found)
    assert any(p.startswith("adplatform:objectStorageAccessKeyId must be set with --secret") for p in found)
    assert any(p.startswith("adplatform:objectStorageSecretAccessKey must be set with --secret") for p in found)


def test_external_settings_with_the_in_cluster_backend_are_refused():
    [msg] = problems(base_raw(dataPlane={"objectStorage": {"external": EXTERNAL}}))
    assert "only read with backend: external" in msg and "'seaweedfs'" in msg


def test_object_storage_backends_are_named_and_minio_is_explained():
    [msg] = problems(base_raw(dataPlane={"objectStorage": {"backend": "minio"}}))
    assert "dataPlane.objectStorage.backend must be one of seaweedfs, external" in msg and "MinIO" in msg


def test_a_pool_without_size_class_needs_explicit_store_resources():
    raw = base_raw(cluster={"pools": [{"name": "bigscylla", "role": "scylladb", "count": 3, "serverType": "ccx63"},
                                      {"name": "scylladb", "count": 0}]})
    [msg] = problems(raw)
    assert msg.startswith("adplatform:dataPlane.scylladb must set cpu and memory: its pools ['bigscylla']")
    raw["dataPlane"] = {"scylladb": {"cpu": "44", "memory": "180Gi"}}
    load("test", raw, SECRET_KEYS)


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("storageSize", "100GB", "must be a volume size in Gi or Ti"),
    ("cpu", "lots", "must be a CPU quantity of whole millicores"),
])
def test_store_sizes_are_validated(key, value, expected):
    [msg] = problems(base_raw(dataPlane={"postgres": {key: value}}))
    assert msg.startswith(f"adplatform:dataPlane.postgres.{key} {expected}")


def test_secrets_in_plain_text_are_refused():
    raw = base_raw(dataPlane={"objectStorage": {"backend": "external", "external": EXTERNAL}},
                   objectStorageAccessKeyId="AKIA", objectStorageSecretAccessKey="plain")
    found = problems(raw, SECRET_KEYS)
    assert any(p.startswith("adplatform:objectStorageSecretAccessKey must be stored as a secret") for p in found)


# --- placement and sizing --------------------------------------------------------------------------------
def test_each_store_runs_on_its_role_and_tolerates_exactly_its_taint():
    cfg = load("test", base_raw(), SECRET_KEYS).config
    where = placement(cfg, "scylladb")
    assert where.node_selector == {"adplatform.io/role": "scylladb"}
    assert where.tolerations == [{"key": "adplatform.io/dedicated", "operator": "Equal", "value": "scylladb",
                                  "effect": "NoSchedule"}]
    assert where.nodes == 3 and where.replicas(3) == 3 and where.replicas(5) == 3


def test_custom_pool_taints_are_tolerated_as_written():
    cfg = load("test", base_raw(cluster={"pools": [{"name": "redpanda", "taints": ["events:NoExecute"]}]}),
               SECRET_KEYS).config
    assert placement(cfg, "redpanda").tolerations == [{"key": "events", "operator": "Exists", "effect": "NoExecute"}]


def test_converged_nodes_share_their_budget_between_every_role():
    cfg = load("test", base_raw(profile="compact"), SECRET_KEYS).config
    where = placement(cfg, "scylladb")
    assert where.role == "converged" and where.pools == ("control-plane", "workers") and where.nodes == 5
    assert where.tolerations == []  # compact servers run workloads untainted
    cpu, mib = node_budget(where)
    assert cpu == pytest.approx((32 - 1) / 5) and mib == int((128 * 1024 * 0.93 - 2916) / 5)


def test_the_budget_fits_what_the_kubelet_allocates_on_a_database_node():
    from components.k3s.config import KUBELET_DATABASE
    reserved = " ".join(KUBELET_DATABASE)
    assert "kube-reserved=cpu=500m,memory=1Gi" in reserved and "system-reserved=cpu=500m,memory=1Gi" in reserved
    cfg = load("test", base_raw(profile="staging"), SECRET_KEYS).config
    cpu, mib = node_budget(placement(cfg, "scylladb"))  # medium: 4 vCPU, 8 GB
    allocatable_mib = 8 * 1024 * 0.93 - 2048 - 100
    assert cpu <= 4 - 1 and mib <= allocatable_mib - 512, "room for the per-node agents"


def test_resources_are_guaranteed_and_whole_cpus_when_pinned():
    cfg = load("test", base_raw(), SECRET_KEYS).config
    where = placement(cfg, "scylladb")  # dedicated-xlarge: 16 vCPU, 64 GB
    pinned = sized(where, 0.85)
    assert pinned.cpu == str(int((16 - 1) * 0.85))
    assert pinned.spec()["requests"] == pinned.spec()["limits"]
    assert sized(where, 0.85, whole_cpus=False).cpu.endswith("m")
    assert sized(where, 0.5, cpu="4", memory="8Gi") == Resources("4", "8Gi")


# --- the layer in the program ----------------------------------------------------------------------------
def test_plan_shows_staging_single_replicas_against_production_quorums(production, staging):
    prod, stage = production.outputs["dataPlane"], staging.outputs["dataPlane"]
    assert set(prod) == set(stage) == set(STORES)
    for store in STORES:
        assert prod[store]["shape"]["replication"] == 3, store
        assert stage[store]["shape"]["replication"] == 1, store


def test_production_backs_up_outside_the_cluster_and_staging_inside(production, staging):
    for store in ("clickhouse", "postgres", "redpanda"):
        assert production.outputs["dataPlane"][store]["shape"]["backup"] == \
            f"s3://adp-production-backups/production/data/{store}"
        assert staging.outputs["dataPlane"][store]["shape"]["backup"] == f"s3://{store}-backups/{store}"
    # Scylla Manager writes its own layout (backup/meta/cluster/<id>/...) at the bucket root.
    assert production.outputs["dataPlane"]["scylladb"]["shape"]["backup"] == "s3://adp-production-backups/backup"
    assert staging.outputs["dataPlane"]["scylladb"]["shape"]["backup"] == "s3://scylladb-backups/backup"
    for run in (production, staging):  # its snapshot volumes are in Velero's backups
        assert "backup" not in run.outputs["dataPlane"]["dragonfly"]["shape"]


def test_the_data_plane_output_holds_no_secret(production, staging):
    for run in (production, staging):
        assert "dataPlane" not in run.secret_outputs
        text = json.dumps(run.outputs["dataPlane"])
        assert "offline-" not in text and "password\": \"" not in text


def test_no_bitnami_or_minio_anywhere(production, staging):
    for run in (production, staging):
        for r in run.resources:
            text = json.dumps(r.inputs, default=lambda v: v.value if isinstance(v, Secret) else str(v)).lower()
            assert "bitnami" not in text, r.name
            # Allowed: Kubeflow Pipelines' fixed name for its S3 credentials Secret (`mlpipeline-minio-artifact`, in
            # its code and manifests; it holds our object store's keys) and GitLab's switch turning its MinIO off.
            allowed = text.replace("mlpipeline-minio-artifact", "").replace('"minio": {"enabled": false}', "")
            assert "minio" not in allowed, r.name


def test_turning_the_layer_off_removes_every_store():
    run = run_raw(base_raw(layers={"dataPlane": False}))
    assert not [r for r in run.resources if r.type == "adplatform:data:DataPlane"]
    assert "dataPlane" not in run.outputs


DATABASE_KINDS = ("scylla.scylladb.com/v1:ScyllaCluster", "cluster.redpanda.com/v1alpha2:Redpanda",
                  "clickhouse.altinity.com/v1:ClickHouseInstallation",
                  "clickhouse-keeper.altinity.com/v1:ClickHouseKeeperInstallation", "postgresql.cnpg.io/v1:Cluster")


def test_velero_skips_exactly_the_namespaces_of_live_databases(production):
    from config.catalog import LIVE_DATABASE_NAMESPACES
    [schedule] = production.of_type("kubernetes:velero.io/v1:Schedule")
    assert schedule.inputs["spec"]["template"]["excludedNamespaces"] == list(LIVE_DATABASE_NAMESPACES)
    databases = {r.inputs["metadata"]["namespace"] for kind in DATABASE_KINDS
                 for r in production.of_type(f"kubernetes:{kind}")}
    assert databases and databases <= set(LIVE_DATABASE_NAMESPACES), "a database Velero would copy file by file"
    namespaces = {r.inputs["metadata"]["name"] for r in production.of_type("kubernetes:core/v1:Namespace")}
    assert set(LIVE_DATABASE_NAMESPACES) <= namespaces
    # DragonflyDB's snapshots and the object store's volumes are files at rest: Velero takes them off-cluster.
    assert "dragonfly" not in LIVE_DATABASE_NAMESPACES and "seaweedfs" not in LIVE_DATABASE_NAMESPACES


def test_a_database_pool_too_small_for_its_pinned_store_is_refused_before_anything_exists():
    from config import ConfigError
    from tools import mockrun
    raw = base_raw(profile="staging", cluster={"pools": [{"name": "scylladb", "size": "small"}]})
    with pytest.raises(ConfigError) as exc:
        run_raw(raw)
    [msg] = [str(p) for p in exc.value.problems]
    assert msg.startswith("adplatform:dataPlane.scylladb gets cpu 1 and memory 1024Mi from its pools ['scylladb']: "
                          "ScyllaDB in production mode needs")
    assert msg.endswith("set dataPlane.scylladb.cpu and memory")
    assert mockrun.last_monitor.recorded == [], "refused before the first resource"


def test_a_consumer_copy_of_credentials_stays_secret_and_renames_keys():
    import pulumi
    from components.data.endpoints import Credentials
    from tests.cloud_stacks import run_alone

    def build():
        creds = Credentials("postgres-gitlab", "postgres", {"username": pulumi.Output.from_input("gitlab"),
                                                            "password": pulumi.Output.secret("s3cr3t")})
        return creds.copy_to("gitlab-db", "gitlab", pulumi.ResourceOptions(), rename={"password": "psql-password"})

    _, registered = run_alone(build)
    [copy] = registered
    assert copy.type == "kubernetes:core/v1:Secret"
    assert copy.inputs["metadata"] == {"name": "postgres-gitlab", "namespace": "gitlab"}
    data = copy.inputs["stringData"]
    assert isinstance(data, Secret) or all(isinstance(v, Secret) for v in data.values()), "no value in plain text"
    values = data.value if isinstance(data, Secret) else {k: v.value for k, v in data.items()}
    assert values == {"username": "gitlab", "psql-password": "s3cr3t"}
