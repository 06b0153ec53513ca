"""DragonflyDB: the operator, a primary with replicas (placement, sizing, maxmemory), auth, snapshots, metrics."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache

import pytest

from components import charts
from components.data import dragonfly
from components.data.placement import Resources
from config import ConfigError, load
from config.catalog import SIZES
from config.model import ROLE_LABEL
from tests import variants
from tests.conftest import SECRET_KEYS, base_raw, stack_run
from tests.stores import (RELEASE, SECRET, assert_operator_ha, assert_spread_over_nodes, chart_of,
                          expected_tolerations, policy, pools, ports, refused_memory, stack_config, string_data)

DRAGONFLY = "kubernetes:dragonflydb.io/v1alpha1:Dragonfly"
MIB = 1024 * 1024


def df(run) -> dict:
    return run.named("dragonfly", DRAGONFLY).inputs


def flags(run) -> dict[str, str]:
    return dict(a.removeprefix("--").split("=", 1) for a in df(run)["spec"]["args"])


# --- the operator ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("stack", ["production", "staging"])
def test_operator_is_the_pinned_oci_chart(stack):
    run = stack_run(stack)
    # An OCI chart: the full reference as the chart, no repository (components/helm.py).
    assert chart_of(run, "dragonfly-operator") == (
        "oci://ghcr.io/dragonflydb/dragonfly-operator/helm/dragonfly-operator", "v1.6.1", None,
        "dragonfly-operator", False)
    assert charts.CHARTS["dragonfly-operator"].version == "v1.6.1"
    values = run.named("dragonfly-operator", RELEASE).inputs["values"]
    assert values["manager"]["image"]["tag"] == "v1.6.1"
    assert values["crds"] == {"install": True, "keep": True}
    assert "tolerations" not in values["manager"] and "nodeSelector" not in values["manager"]


def test_operator_runs_two_replicas_with_a_budget_in_production_one_in_staging(production, staging):
    # charts/dragonfly-operator/templates/_helpers.tpl selectorLabels at v1.6.1
    labels = {"app.kubernetes.io/name": "dragonfly-operator", "app.kubernetes.io/instance": "dragonfly-operator"}
    assert labels == dragonfly.OPERATOR_LABELS
    assert_operator_ha(production, staging, "dragonfly-operator", "dragonfly-operator", labels)
    values = production.named("dragonfly-operator", RELEASE).inputs["values"]
    assert_spread_over_nodes(values["manager"]["affinity"], labels)  # the chart reads manager.affinity


# --- instances -------------------------------------------------------------------------------------------
def test_production_runs_a_primary_and_two_replicas_staging_one(production, staging):
    assert df(production)["spec"]["replicas"] == 3
    assert df(staging)["spec"]["replicas"] == 1
    assert production.outputs["dataPlane"]["dragonfly"]["shape"]["replication"] == 3
    assert staging.outputs["dataPlane"]["dragonfly"]["shape"]["replication"] == 1


def test_the_operators_budget_keeps_the_primary_and_a_replica(production, staging):
    spec = df(production)["spec"]
    assert spec["pdb"] == {"minAvailable": 2}  # of 3: a drain takes one, the primary and a replica stay
    assert spec["enableReplicationReadinessGate"] is True  # a syncing replica does not count as available
    # One instance: the operator renders no PDB (resources.go), so none is asked for.
    assert "pdb" not in df(staging)["spec"]


@pytest.mark.parametrize("stack", ["production", "staging"])
def test_instances_run_on_exactly_the_stateful_pool_one_per_node(stack):
    run = stack_run(stack)
    spec = df(run)["spec"]
    own = pools(run, "stateful")
    taints = sorted({t for p in own for t in p.node_taints})
    assert taints == ["adplatform.io/dedicated=stateful:NoSchedule"]
    assert spec["tolerations"] == expected_tolerations(taints)
    assert spec["nodeSelector"] == {ROLE_LABEL: own[0].node_labels[ROLE_LABEL]}
    anti = spec["affinity"]["podAntiAffinity"]
    if stack == "production":
        [term] = anti["requiredDuringSchedulingIgnoredDuringExecution"]
    else:
        [preferred] = anti["preferredDuringSchedulingIgnoredDuringExecution"]
        term = preferred["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == dragonfly.POD_LABELS


@pytest.mark.parametrize("stack", ["production", "staging"])
def test_resources_are_guaranteed_and_maxmemory_leaves_headroom(stack):
    run = stack_run(stack)
    res = df(run)["spec"]["resources"]
    assert res["requests"] == res["limits"]
    cpu, memory = res["limits"]["cpu"], res["limits"]["memory"]
    assert cpu.isdigit()
    size = SIZES[pools(run, "stateful")[0].size]
    mib = Resources(cpu, memory).memory_mib
    assert int(cpu) < size.vcpus and mib < size.memory_gb * 1024 * 0.5  # it shares the pool with PostgreSQL
    args = flags(run)
    assert args["proactor_threads"] == cpu  # one thread per pinned core
    assert int(args["maxmemory"]) == int(mib * 0.8) * MIB  # DragonflyDB's own 80% share of the container
    assert int(args["maxmemory"]) >= int(cpu) * 256 * MIB  # its per-thread minimum
    shape = run.outputs["dataPlane"]["dragonfly"]["shape"]
    assert (shape["cpu"], shape["memory"]) == (cpu, memory)


@pytest.mark.parametrize("stack", ["production", "staging"])
def test_snapshots_on_schedule_to_a_volume_of_each_instance(stack):
    run = stack_run(stack)
    settings = stack_config(run).data_plane.dragonfly
    snapshot = df(run)["spec"]["snapshot"]
    assert snapshot["cron"] == settings.snapshot_schedule == "*/15 * * * *"
    assert snapshot["persistentVolumeClaimSpec"] == {
        "accessModes": ["ReadWriteOnce"], "storageClassName": run.outputs["storageClass"],
        "resources": {"requests": {"storage": settings.storage_size}}}
    assert settings.storage_size == {"production": "50Gi", "staging": "10Gi"}[stack]
    assert flags(run)["dbfilename"] == "dump"  # one rolling snapshot, not a new file every 15 minutes
    # Snapshots stay on the instances' volumes: no S3 target for DragonflyDB.
    assert "backup" not in run.outputs["dataPlane"]["dragonfly"]["shape"]


def test_image_is_pinned(production):
    spec = df(production)["spec"]
    assert spec["image"] == "docker.dragonflydb.io/dragonflydb/dragonfly:v1.39.0"
    assert charts.DRAGONFLY_VERSION == "v1.39.0" and spec["imagePullPolicy"] == "IfNotPresent"


# --- security --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stack", ["production", "staging"])
def test_the_ad_services_instance_takes_an_acl_file_and_no_shared_password(stack):
    run = stack_run(stack)
    spec = df(run)["spec"]
    assert spec["aclFromSecret"] == {"name": "dragonfly-acl", "key": "dragonfly.acl"} and "authentication" not in spec
    secret = run.named("dragonfly-acl", SECRET)
    assert secret.inputs["metadata"]["namespace"] == "dragonfly"
    assert string_data(secret)["dragonfly.acl"].startswith("user default off ")
    # A changed file rolls the instances (DragonflyDB reads it at start): the annotation follows its digest.
    digest = hashlib.sha256(string_data(secret)["dragonfly.acl"].encode()).hexdigest()
    assert spec["podMetadata"] == {"annotations": {dragonfly.ACL_DIGEST_ANNOTATION: digest}}
    generator = run.named("dragonfly-bidding-password", "random:index/randomPassword:RandomPassword")
    assert generator.protect == (stack == "production")
    assert run.named("dragonfly", DRAGONFLY).protect == (stack == "production")
    assert "offline-" not in json.dumps(df(run))


def test_pods_meet_the_restricted_pod_security_level(production):
    ns = production.named("ns-dragonfly", "kubernetes:core/v1:Namespace").inputs["metadata"]["labels"]
    assert ns["pod-security.kubernetes.io/enforce"] == "restricted"
    spec = df(production)["spec"]
    assert spec["podSecurityContext"]["runAsNonRoot"] is True
    assert spec["podSecurityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["containerSecurityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert spec["containerSecurityContext"]["allowPrivilegeEscalation"] is False
    op = production.named("ns-dragonfly-operator", "kubernetes:core/v1:Namespace").inputs["metadata"]["labels"]
    assert op["pod-security.kubernetes.io/enforce"] == "restricted"
    values = production.named("dragonfly-operator", RELEASE).inputs["values"]
    assert values["podSecurityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_clients_reach_the_redis_port_and_only_the_operator_and_prometheus_the_admin_port(production):
    [rule] = policy(production, "dragonfly", "allow-from-teams")["ingress"]
    assert ports(rule) == [6379]
    with pytest.raises(KeyError):  # the platform's only consumer (GitLab) has an instance of its own
        policy(production, "dragonfly", "allow-from-platform")
    [rule] = policy(production, "dragonfly", "allow-from-monitoring")["ingress"]
    assert ports(rule) == [9999]
    [rule] = policy(production, "dragonfly", "allow-from-dragonfly-operator")["ingress"]
    assert ports(rule) == [9999] and rule["from"][0]["podSelector"]["matchLabels"] == dragonfly.OPERATOR_LABELS
    [rule] = policy(production, "dragonfly-operator", "allow-to-dragonfly")["egress"]
    assert ports(rule) == [9999]
    assert df(production)["spec"]["networkPolicyEnabled"] is False  # one place decides: the namespace policies


# --- metrics and the endpoint ------------------------------------------------------------------------------
def test_prometheus_scrapes_the_admin_port(production):
    monitor = production.named("dragonfly-metrics", "kubernetes:monitoring.coreos.com/v1:PodMonitor").inputs
    assert monitor["metadata"]["namespace"] == "dragonfly"
    assert monitor["spec"]["selector"]["matchLabels"] == dragonfly.POD_LABELS
    assert monitor["spec"]["podMetricsEndpoints"] == [{"port": "admin", "path": "/metrics", "interval": "30s"}]


def test_endpoint_points_writes_at_the_primary_and_reads_at_every_instance(production):
    endpoint = production.outputs["dataPlane"]["dragonfly"]["endpoint"]
    assert endpoint["host"] == "dragonfly.dragonfly.svc.cluster.local"  # the operator's primary Service
    assert endpoint["readHost"] == "dragonfly-read.dragonfly.svc.cluster.local" and endpoint["port"] == 6379
    assert endpoint["users"]["bidding"] == {"secret": "dragonfly-user-bidding", "namespace": "dragonfly",
                                            "keys": ["username", "password"]}
    assert endpoint["podLabels"] == dragonfly.POD_LABELS
    read = production.named("dragonfly-read", "kubernetes:core/v1:Service").inputs["spec"]
    assert read["selector"] == dragonfly.POD_LABELS and "role" not in read["selector"]
    assert [(p["port"], p["targetPort"]) for p in read["ports"]] == [(6379, 6379)]


# --- config ----------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _variant():
    """2 CPUs, 6Gi and hourly snapshots (a run shared with other files: tests/variants.py)."""
    return variants.data_variant()


def test_configured_resources_and_schedule_drive_threads_maxmemory_and_snapshots():
    run = _variant()
    spec = df(run)["spec"]
    assert spec["resources"]["limits"] == {"cpu": "2", "memory": "6Gi"}
    assert flags(run)["proactor_threads"] == "2" and int(flags(run)["maxmemory"]) == int(6 * 1024 * 0.8) * MIB
    assert spec["snapshot"]["cron"] == "0 * * * *"


@pytest.mark.parametrize(("settings", "expected"), [
    ({"cpu": "500m"}, "adplatform:dataPlane.dragonfly.cpu must be a whole number of CPUs"),
    ({"cpu": "8", "memory": "2Gi"}, "adplatform:dataPlane.dragonfly memory 2Gi is too small for cpu 8"),
    ({"snapshotSchedule": "every hour"}, "adplatform:dataPlane.dragonfly.snapshotSchedule must be a 5-field cron"),
])
def test_config_errors_name_the_key(settings, expected):
    with pytest.raises(ConfigError) as exc:
        load("test", base_raw(dataPlane={"dragonfly": settings}), SECRET_KEYS)
    assert any(str(p).startswith(expected) for p in exc.value.problems), exc.value.problems


def test_too_little_memory_from_the_pool_is_refused_with_the_keys_to_set():
    assert refused_memory("dragonfly", "4", "1Gi") == (
        "adplatform:dataPlane.dragonfly gets cpu 4 and memory 1Gi from its pools ['dragonfly']: DragonflyDB needs "
        "256Mi of maxmemory (80% of the memory) per thread, so at least 1280Mi; set dataPlane.dragonfly.cpu and "
        "memory")
