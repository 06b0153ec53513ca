"""Object storage: SeaweedFS on the stateful nodes (production quorum, staging single node), or provider S3."""

from __future__ import annotations

import hashlib
import json

import pytest

from components import charts
from components.digest import marker
from components.data import objectstore
from components.data.context import SHARES, DataContext
from components.data.placement import placement, sized
from config import load
from config.data import BUCKET_OWNERS, BUCKET_PURPOSES
from config.platform import NEEDS
from tests import variants
from tests.conftest import SECRET_KEYS, base_raw
from tests.stores import SECRET, config_problems, policy, ports, stack_config, string_data
from tools.mockrun import Run

STACKS = ("production", "staging")
TAINT = {"key": "adplatform.io/dedicated", "operator": "Equal", "value": "stateful", "effect": "NoSchedule"}
EXTERNAL, OBJECT_KEYS = variants.EXTERNAL_S3, variants.OBJECT_KEYS


@pytest.fixture(params=STACKS)
def run(request) -> Run:
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def external() -> Run:
    """Staging on the provider's S3 with no off-cluster backup location: each store backs up to
    `<prefix>-<store>-backups` (a variant shared with other files: tests/variants.py)."""
    return variants.staging_external()


def seaweed(run: Run) -> dict:
    return run.named("seaweedfs", "kubernetes:helm.sh/v3:Release").inputs["values"]


# --- versions ---------------------------------------------------------------------------------------------
def test_chart_and_image_are_pinned_from_the_catalog(run):
    release = run.named("seaweedfs", "kubernetes:helm.sh/v3:Release").inputs
    chart = charts.SEAWEEDFS
    assert (release["chart"], release["version"], release["repositoryOpts"]["repo"]) == \
        (chart.chart, chart.version, chart.repo) == \
        ("seaweedfs", "4.44.0", "https://seaweedfs.github.io/seaweedfs/helm")
    assert release["namespace"] == "seaweedfs" and release["createNamespace"] is False
    assert seaweed(run)["image"] == {"registry": "docker.io", "repository": "chrislusf/seaweedfs", "tag": "4.44"}


# --- shape ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("stack", "counts", "replication"), [
    ("production", {"master": 3, "volume": 3, "filer": 3}, "001"),
    ("staging", {"master": 1, "volume": 1, "filer": 1}, "000"),
])
def test_raft_masters_one_volume_server_per_node_and_copies_on_distinct_nodes(stack, counts, replication, request):
    run = request.getfixturevalue(stack)
    values = seaweed(run)
    assert {c: values[c]["replicas"] for c in counts} == counts
    assert values["volume"]["replicas"] == placement(stack_config(run), "stateful").nodes
    # 001: a second copy on another volume server, so another node (one server per node, required
    # anti-affinity); staging's single server can hold one copy only.
    assert values["global"]["seaweedfs"] == {"enableReplication": True, "replicationPlacement": replication,
                                             "monitoring": {"enabled": True}}


def test_a_two_node_pool_still_runs_an_odd_raft():
    where = placement(load("test", base_raw(profile="staging", cluster={"pools": [{"name": "stateful", "count": 2}]}),
                           SECRET_KEYS).config, "stateful")
    assert objectstore.shape(where) == objectstore.Shape(masters=1, volumes=2, filers=2, replication="001")


def test_disruption_budgets_keep_the_raft_majority(production, staging):
    budgets = {r.inputs["metadata"]["name"]: r.inputs["spec"]
               for r in production.of_type("kubernetes:policy/v1:PodDisruptionBudget")
               if r.inputs["metadata"]["namespace"] == "seaweedfs"}
    assert budgets["seaweedfs-master"]["minAvailable"] == 2  # 2 of 3 masters: quorum
    assert budgets["seaweedfs-volume"]["maxUnavailable"] == 1  # every file keeps its other copy
    # Servers emptied and left before their nodes leave (objectstore_shrink.py departure_step) are not Ready: their
    # drain must not wait for a healthy budget; the others' budget stays.
    assert budgets["seaweedfs-volume"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert "unhealthyPodEvictionPolicy" not in budgets["seaweedfs-master"]
    assert budgets["seaweedfs-filer"]["maxUnavailable"] == 1
    for component in ("master", "volume", "filer"):
        assert budgets[f"seaweedfs-{component}"]["selector"]["matchLabels"] == {
            "app.kubernetes.io/name": "seaweedfs", "app.kubernetes.io/instance": "seaweedfs",
            "app.kubernetes.io/component": component}
    # A budget on staging's single replicas would block draining its only stateful node.
    assert not [r for r in staging.of_type("kubernetes:policy/v1:PodDisruptionBudget")
                if r.inputs["metadata"]["namespace"] == "seaweedfs"]


def test_a_disruption_budget_names_exactly_one_limit():
    # minAvailable and maxUnavailable together are refused by the API server; neither is a budget of nothing.
    for limits in ({}, {"min_available": 1, "max_unavailable": 1}):
        with pytest.raises(ValueError, match="exactly one of min_available and max_unavailable"):
            DataContext.disruption_budget(None, "x-pdb", "x", "seaweedfs", {"app": "x"}, {}, **limits)


# --- placement, sizing, storage ---------------------------------------------------------------------------
def test_every_component_selects_the_stateful_nodes_and_tolerates_exactly_their_taint(run):
    assert placement(stack_config(run), "stateful").taints == ("adplatform.io/dedicated=stateful:NoSchedule",)
    required = run.stack == "production"
    for component in objectstore.COMPONENTS:
        values = seaweed(run)[component]
        # The chart renders these strings with `tpl`: they must parse as the YAML (JSON) of the fields.
        assert json.loads(values["nodeSelector"]) == {"adplatform.io/role": "stateful"}
        assert json.loads(values["tolerations"]) == [TAINT]
        anti = json.loads(values["affinity"])["podAntiAffinity"]
        key = "requiredDuringSchedulingIgnoredDuringExecution" if required else \
            "preferredDuringSchedulingIgnoredDuringExecution"
        assert list(anti) == [key]


def test_resources_are_guaranteed_and_sized_from_the_stateful_pool(run):
    where = placement(stack_config(run), "stateful")
    volume = sized(where, SHARES["seaweedfs"], whole_cpus=False)
    values = seaweed(run)
    assert values["volume"]["resources"]["requests"] == {"cpu": volume.cpu, "memory": volume.memory}
    for component in objectstore.COMPONENTS:
        resources = values[component]["resources"]
        assert resources["requests"] == resources["limits"], component
    # Everything SeaweedFS, PostgreSQL and DragonflyDB take stays within the stateful role's budget.
    assert SHARES["seaweedfs"] + SHARES["seaweedfs-filer"] + SHARES["seaweedfs-master"] + SHARES["postgres"] + \
        SHARES["postgres-backup"] + SHARES["dragonfly"] <= 1


def test_data_lives_on_volumes_of_the_storage_class(run):
    values = seaweed(run)
    size = stack_config(run).data_plane.object_storage.storage_size
    assert size == {"production": "500Gi", "staging": "50Gi"}[run.stack]
    assert values["volume"]["dataDirs"] == [{"name": "data", "type": "persistentVolumeClaim", "size": size,
                                              "storageClass": "hcloud-volumes", "maxVolumes": 0}]
    for component in ("master", "filer"):  # raft state and the filer's leveldb metadata
        data = values[component]["data"]
        assert data["type"] == "persistentVolumeClaim" and data["storageClass"] == "hcloud-volumes"


def test_pods_meet_restricted_pod_security(run):
    labels = run.named("ns-seaweedfs", "kubernetes:core/v1:Namespace").inputs["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    values = seaweed(run)
    for component in objectstore.COMPONENTS:
        pod, container = values[component]["podSecurityContext"], values[component]["containerSecurityContext"]
        assert pod["enabled"] and pod["runAsNonRoot"] and pod["runAsUser"] == 1000
        assert container["enabled"] and container["allowPrivilegeEscalation"] is False
        assert container["capabilities"] == {"drop": ["ALL"]}
        assert values[component].get("logs", {}).get("type", "") not in ("hostPath", "emptyDir")  # stderr
    assert values["volume"]["resizeHook"] == {"enabled": False}  # its Job has no security context


# --- S3: auth, buckets, service, network ------------------------------------------------------------------
def test_s3_auth_uses_generated_keys_kept_secret(run):
    s3 = seaweed(run)["filer"]["s3"]
    assert s3["enabled"] and s3["port"] == 8333 and s3["enableAuth"] is True
    secret = run.named("seaweedfs-s3-config", "kubernetes:core/v1:Secret").inputs
    assert secret["metadata"]["name"] == s3["existingConfigSecret"]
    identities = {i["name"]: i for i in identities_file(run)}
    assert set(identities) == set(BUCKET_OWNERS)
    for consumer, identity in identities.items():
        [keys] = identity["credentials"]
        # The offline mock's RandomPassword results: 32 and 40 characters from pulumi_random.
        assert keys["accessKey"] == f"offline-seaweedfs-{consumer}-access-key-xxxxxxxxxxxxxxxxxxxxxxxxxxxxx"[:32]
        assert keys["secretKey"] == f"offline-seaweedfs-{consumer}-secret-key-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"[:40]
        for name in (f"seaweedfs-{consumer}-access-key", f"seaweedfs-{consumer}-secret-key"):
            password = run.named(name, "random:index/randomPassword:RandomPassword")
            assert password.protect is (run.stack == "production")
    assert seaweed(run)["s3"] == {"enabled": False}


def identities_file(run: Run) -> list[dict]:
    return json.loads(string_data(run.named("seaweedfs-s3-config", SECRET))["seaweedfs_s3_config"])["identities"]


def test_a_replaced_key_rolls_the_filers_that_serve_s3(run):
    """The filers read the identities file only when they start and the chart's checksum/s3config is a Helm
    lookup (evaluated only on an upgrade): the filer pods carry a plain digest of the file in the release's
    values, so a replaced key (pulumi up --replace of seaweedfs-<consumer>-secret-key) changes the values and the
    filers restart with it. The digest is domain-separated and reveals no key."""
    text = string_data(run.named("seaweedfs-s3-config", SECRET))["seaweedfs_s3_config"]
    annotations = seaweed(run)["filer"]["podAnnotations"]
    digest = annotations[objectstore.IDENTITIES_ANNOTATION]
    assert isinstance(digest, str) and digest == marker("seaweedfs-s3-identities", text)  # plain, not a Secret
    assert digest != hashlib.sha256(text.encode()).hexdigest()
    keys = {i["name"]: (c["accessKey"], c["secretKey"]) for i in identities_file(run) for c in i["credentials"]}
    buckets = {p: p for p in BUCKET_PURPOSES}
    assert objectstore.s3_config(keys, buckets) == text  # the digest covers exactly what the filers read
    replaced = {**keys, "logs": (keys["logs"][0], "a-new-secret-key-of-forty-characters-xxx")}
    assert marker("seaweedfs-s3-identities", objectstore.s3_config(replaced, buckets)) != digest


def test_each_consumer_may_touch_only_its_own_buckets(run):
    """One identity per consumer, no admin: every action names one of the consumer's own buckets, so Kubeflow
    user code or internet-facing MLflow cannot overwrite GitLab's registry or read another's backups."""
    identities = {i["name"]: i["actions"] for i in identities_file(run)}
    for consumer, actions in identities.items():
        assert sorted(actions) == sorted(f"{a}:{b}" for b in BUCKET_OWNERS[consumer]
                                         for a in ("Read", "Write", "List", "Tagging")), consumer
        assert all(":" in a for a in actions) and not any(a.startswith("Admin") for a in actions)
    writers = {name for name, actions in identities.items() if "Write:registry" in actions}
    assert writers == {"gitlab"}, "the registry CI deploys from is writable by GitLab alone"
    keys = [c["accessKey"] for i in identities_file(run) for c in i["credentials"]]
    assert len(keys) == len(set(keys)), "no two consumers share a key"


def test_every_bucket_has_exactly_one_owner():
    owners = [p for purposes in BUCKET_OWNERS.values() for p in purposes]
    assert sorted(owners) == sorted(set(owners)) == sorted(BUCKET_PURPOSES)
    # the platform components' buckets come from what each needs (config/platform.py NEEDS), one place
    assert {name: needs.buckets for name, needs in NEEDS.items() if needs.buckets}.items() <= BUCKET_OWNERS.items()


def test_a_bucket_for_every_purpose(run):
    buckets = [b["name"] for b in seaweed(run)["filer"]["s3"]["createBuckets"]]
    assert sorted(buckets) == sorted(BUCKET_PURPOSES)
    assert {"postgres-backups", "clickhouse-backups", "scylladb-backups", "gitlab", "registry", "logs", "traces",
            "airflow-logs", "mlflow-artifacts", "ml-artifacts"} <= set(buckets)


def test_the_s3_service_keeps_each_client_on_one_filer(run):
    service = run.named("seaweedfs-s3-service", "kubernetes:core/v1:Service").inputs
    assert service["metadata"] == {"name": "s3", "namespace": "seaweedfs", "labels": service["metadata"]["labels"]}
    assert service["spec"]["sessionAffinity"] == "ClientIP"
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "filer"
    assert [p["port"] for p in service["spec"]["ports"]] == [8333]


def test_only_the_platform_the_data_stores_and_prometheus_get_in(run):
    platform = policy(run, "seaweedfs", "allow-from-platform")["ingress"][0]
    assert ports(platform) == [8333]
    assert platform["from"][0]["namespaceSelector"]["matchLabels"] == {"adplatform.io/layer": "platform"}
    stores = policy(run, "seaweedfs", "allow-from-data-plane")["ingress"][0]
    assert ports(stores) == [8333]
    assert stores["from"][0]["namespaceSelector"]["matchLabels"] == {"adplatform.io/layer": "data-plane"}
    assert ports(policy(run, "seaweedfs", "allow-from-monitoring")["ingress"][0]) == [9327]
    names = {r.name for r in run.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")}
    assert "netpol-seaweedfs-allow-from-teams" not in names
    assert "netpol-seaweedfs-allow-egress-internet" not in names


def test_production_protects_the_store(production, staging):
    assert production.named("seaweedfs", "kubernetes:helm.sh/v3:Release").protect is True
    assert staging.named("seaweedfs", "kubernetes:helm.sh/v3:Release").protect is False


def test_the_endpoint_in_the_stack_output_holds_no_key(run):
    endpoint = run.outputs["dataPlane"]["objectStorage"]["endpoint"]
    assert endpoint == {"url": "http://s3.seaweedfs.svc:8333", "region": "us-east-1",
                        "buckets": {p: p for p in BUCKET_PURPOSES}, "inCluster": True, "pathStyle": True}


# --- provider S3 ------------------------------------------------------------------------------------------
def test_external_backend_runs_no_seaweedfs_and_names_the_provider_buckets(external):
    assert not [r for r in external.resources if r.type == "kubernetes:helm.sh/v3:Release" and r.name == "seaweedfs"]
    assert not [r for r in external.resources if r.name.startswith(("ns-seaweedfs", "seaweedfs-"))]
    endpoint = external.outputs["dataPlane"]["objectStorage"]["endpoint"]
    assert endpoint == {"url": "https://fsn1.your-objectstorage.com", "region": "fsn1", "inCluster": False,
                        "pathStyle": False, "buckets": {p: f"adp-stage-{p}" for p in BUCKET_PURPOSES}}
    # PostgreSQL backs up into its own bucket at the provider with the stack's keys, over HTTPS.
    config = external.named("postgres-object-store").inputs["spec"]["configuration"]
    assert config["destinationPath"] == "s3://adp-stage-postgres-backups/postgres"
    assert config["endpointURL"] == "https://fsn1.your-objectstorage.com"
    assert string_data(external.named("postgres-backup-s3", SECRET)) == {"ACCESS_KEY_ID": "stage-object-key",
                                                             "ACCESS_SECRET_KEY": "stage-object-secret"}
    names = {r.name for r in external.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")}
    assert "netpol-postgres-allow-egress-internet" in names and "netpol-postgres-allow-to-seaweedfs" not in names


@pytest.mark.parametrize(("storage", "secrets", "expected"), [
    ({"backend": "external"}, OBJECT_KEYS,
     "adplatform:dataPlane.objectStorage.external must be set when backend is 'external'"),
    ({"backend": "external", "external": EXTERNAL}, {"objectStorageAccessKeyId": "k"},
     "adplatform:objectStorageSecretAccessKey must be set with --secret"),
    ({"backend": "external", "external": {**EXTERNAL, "endpoint": "http://s3.example.com"}}, OBJECT_KEYS,
     "adplatform:dataPlane.objectStorage.external.endpoint must be an https:// S3 endpoint URL"),
    ({"backend": "external", "external": {**EXTERNAL, "bucketPrefix": "Adp_Prod"}}, OBJECT_KEYS,
     "adplatform:dataPlane.objectStorage.external.bucketPrefix must be 3-32 characters"),
    ({"backend": "minio"}, {}, "adplatform:dataPlane.objectStorage.backend must be one of seaweedfs, external"),
])
def test_object_storage_config_errors_name_the_key(storage, secrets, expected):
    found = config_problems(base_raw(dataPlane={"objectStorage": storage}, **secrets), SECRET_KEYS | set(secrets))
    assert any(p.startswith(expected) for p in found), found
