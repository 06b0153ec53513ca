"""The ScyllaCluster (scylla.scylladb.com/v1) and what it reads: scylla.yaml, the Manager agent's config.

Racks: always 3, of equal size once the pool has 3 nodes (3 nodes: 3 racks of 1; 6 nodes: 3 of 2; 4 nodes: 3 of 1
and a spare node); below that, one member in each of the first racks and none in the rest (staging's single node:
1, 0, 0). A pool spanning several locations gets one rack per location instead, pinned there, of the fewest nodes
any location has (so losing a location loses one replica). Keyspaces replicate once per rack with members
(NetworkTopologyStrategy with RF = those racks), so every such rack holds a full copy and losing a node loses one
replica. Every member selects
the ScyllaDB role's nodes, tolerates exactly their taints and refuses to share a node with another
member (required anti-affinity in production-grade profiles).

Guaranteed QoS, so the static CPU manager (the database nodes' kubelets, components/k3s/config.py) gives
ScyllaDB exclusive cores: whole CPUs, requests == limits on the ScyllaDB container and on the Manager agent
sidecar (the operator's own sidecars already set them: scylla-operator v1.21.1
pkg/controller/scylladbdatacenter/resource.go). The operator creates one PodDisruptionBudget per
cluster, named after it, `maxUnavailable: 1` (resource.go MakePodDisruptionBudget): a drain takes one
member at a time, which RF 3 survives.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pulumi

from components import charts
from components.data.context import DataContext
from components.data.endpoints import S3Location
from components.data.placement import Placement, Resources
from components.data.scylladb.storage import Storage
from components.scheduling import pod_anti_affinity
from config.model import LOCATION_LABEL

CLUSTER = "scylla"
DATACENTER = "dc1"  # immutable once created (the operator's webhook refuses a rename)
RACKS = 3  # every single-location cluster has rack1..rack3, some perhaps at 0 members (racks())
SCYLLA_CONFIG = "scylla-config"  # ConfigMap with scylla.yaml (rack.scyllaConfig)
AGENT_CONFIG = "scylla-agent-config"  # Secret with scylla-manager-agent.yaml (rack.scyllaAgentConfig)
# What the operator labels ScyllaDB pods and Services with (pkg/naming/labels.go ClusterLabels).
POD_LABELS = {"app.kubernetes.io/name": "scylla", "scylla/cluster": CLUSTER}
MEMBER_SERVICE_LABELS = {**POD_LABELS, "scylla-operator.scylladb.com/scylla-service-type": "member"}
# ScyllaDB pods carry pod-type scylladb-node, the cleanup Jobs' pods cleanup-job (naming/constants.go).
POD_TYPE_LABEL = "scylla-operator.scylladb.com/pod-type"
SCRAPE_INTERVAL = "30s"
READY_TIMEOUT_SECONDS = 3600  # members join one at a time, each running iotune first


def racks(where: Placement) -> list[int]:
    """Members per rack: RACKS racks, at most one member per node; min(3, nodes) of them hold members.

    Always the same racks, whatever the node count: the operator's webhook refuses to remove a rack that still
    has members (scylla-operator v1.21.1 cluster_validation.go ValidateScyllaClusterSpecUpdate), and this program
    sees only the current config, not what the cluster had. With a fixed set of racks, going from 3 nodes to 2
    sets rack3 to 0 members (the operator decommissions that member) instead of dropping rack3; going back up
    fills it again. Equal racks because each rack with members holds a full replica (RF = those racks): a rack
    of one node beside racks of two would store twice as much per node. Nodes beyond a multiple of the rack
    count stay free, the place a lost member's replacement starts while its own node is gone (with local
    storage it cannot wait). Spanning locations, the racks are the locations (changing them: docs/data-plane.md)."""
    if where.spans_locations:
        return [min(n for _, n in where.locations)] * len(where.locations)
    nodes = max(1, where.nodes)
    if nodes < RACKS:
        return [1] * nodes + [0] * (RACKS - nodes)
    return [nodes // RACKS] * RACKS


def rack_affinity(where: Placement, index: int) -> dict[str, Any]:
    """The role's nodes, and where the pool spans locations, only those of the rack's own location (by the
    label the kubelet sets from the config, components/k3s/config.py topology_labels: exact on every provider)."""
    if not where.spans_locations:
        return where.node_affinity
    location = where.locations[index][0]
    affinity = copy.deepcopy(where.node_affinity)
    for term in affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]:
        term["matchExpressions"].append({"key": LOCATION_LABEL, "operator": "In", "values": [location]})
    return affinity


def replication_factor(where: Placement) -> int:
    """One replica per rack that has members (a rack at 0 members holds none)."""
    return sum(1 for members in racks(where) if members)


def agent_resources(ctx: DataContext) -> Resources:
    """The Manager agent uploads backups (rclone buffers): requests == limits keeps the pod Guaranteed."""
    return Resources("200m", "512Mi") if ctx.ha else Resources("100m", "256Mi")


def member_anti_affinity(required: bool) -> dict[str, Any]:
    """One member per node, across racks. The operator gives its cleanup Jobs the cluster labels too and copies
    each rack's placement, this rule included, onto them (scylla-operator v1.21.1 pkg/controller/
    scylladbdatacenter/resource.go MakeJobs): on the cluster labels alone a cleanup pod and a member repel
    each other, and with a member on every ScyllaDB node the cleanup Job never schedules (scylladb/
    scylla-operator#1347). matchLabelKeys adds the scheduled pod's own pod-type to the selector: members
    repel members, cleanup pods only other cleanup pods."""
    affinity = pod_anti_affinity(POD_LABELS, required=required)
    terms = affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or [
        weighted["podAffinityTerm"] for weighted in affinity["preferredDuringSchedulingIgnoredDuringExecution"]]
    for term in terms:
        term["matchLabelKeys"] = [POD_TYPE_LABEL]
    return affinity


def rack_spec(ctx: DataContext, index: int, members: int, storage: Storage, resources: Resources,
              with_agent_config: bool) -> dict[str, Any]:
    where = ctx.placements["scylladb"]
    rack: dict[str, Any] = {
        "name": f"rack{index + 1}",
        "members": members,
        "storage": {"storageClassName": storage.storage_class, "capacity": ctx.settings.scylladb.storage_size},
        "resources": resources.spec(),
        "agentResources": agent_resources(ctx).spec(),
        "scyllaConfig": SCYLLA_CONFIG,
        "placement": {
            "nodeAffinity": rack_affinity(where, index),
            "tolerations": where.tolerations,
            "podAntiAffinity": member_anti_affinity(required=ctx.ha),
        },
    }
    if with_agent_config:
        rack["scyllaAgentConfig"] = AGENT_CONFIG
    return rack


def backup_location(backup: S3Location) -> str:
    """Scylla Manager takes a bucket only (`[dc:]provider:bucket`, scylla-manager v3.10.1
    backupspec/location.go): it writes under backup/{meta,schema,sst}/cluster/<id>/ in that bucket, so the
    data plane's prefix cannot apply here."""
    return f"s3:{backup.bucket}"


def tasks(ctx: DataContext) -> dict[str, Any]:
    """Backups and repairs as ScyllaCluster tasks: v1.21 turns each into a ScyllaDBManagerTask and syncs it
    with the global Scylla Manager (docs/source/understand/manager.md)."""
    settings = ctx.settings.scylladb
    spec: dict[str, Any] = {"repairs": [{"name": "weekly-repair", "cron": settings.repair_schedule, "timezone": "UTC"}]}
    if ctx.backup is not None:
        spec["backups"] = [{"name": "daily-backup", "location": [backup_location(ctx.backup.of("scylladb"))],
                            "cron": settings.backup_schedule, "timezone": "UTC",
                            "retention": settings.backup_retention}]
    return spec


def cluster_spec(ctx: DataContext, storage: Storage, resources: Resources) -> dict[str, Any]:
    """`resources`: each member's (pinned_resources, checked before anything is created)."""
    members = racks(ctx.placements["scylladb"])
    return {
        "version": charts.SCYLLADB_VERSION,
        "repository": "docker.io/scylladb/scylla",
        "agentVersion": charts.SCYLLA_MANAGER_AGENT_TAG,  # the operator joins repository:version, digest and all
        "agentRepository": "docker.io/scylladb/scylla-manager-agent",
        "developerMode": storage.developer_mode,
        # A node lost with its local volume leaves an orphaned claim: the operator removes it, so the
        # member's replacement bootstraps on another node instead of waiting for the lost disk.
        "automaticOrphanedNodeCleanup": storage.local,
        "datacenter": {"name": DATACENTER, "racks": [
            rack_spec(ctx, i, n, storage, resources, with_agent_config=ctx.backup is not None)
            for i, n in enumerate(members)]},
        **tasks(ctx),
    }


# --- configuration files --------------------------------------------------------------------------------

def scylla_yaml(superuser: str, salted_password: str) -> str:
    """Merged by the operator over its managed scylla.yaml (networking, seeds and TLS stay its own)."""
    return json.dumps({
        "authenticator": "PasswordAuthenticator",
        "authorizer": "CassandraAuthorizer",
        "auth_superuser_name": superuser,
        "auth_superuser_salted_password": salted_password,
    }, indent=2) + "\n"


def s3_provider(endpoint: str) -> str:
    """rclone's provider: AWS for AWS endpoints, else the generic S3 dialect (Hetzner, SeaweedFS)."""
    return "AWS" if ".amazonaws.com" in endpoint else "Other"


def agent_config(backup: S3Location) -> pulumi.Output[str]:
    """The agents' S3 settings (scylla-manager v3.10.1 dist/etc/scylla-manager-agent.yaml, pkg/rclone
    S3Options): path-style addressing except on AWS (SeaweedFS has no per-bucket DNS names)."""
    def render(keys: list[str]) -> str:
        s3: dict[str, str] = {"provider": s3_provider(backup.endpoint), "endpoint": backup.endpoint,
                              "region": backup.region, "access_key_id": keys[0], "secret_access_key": keys[1]}
        if s3["provider"] != "AWS":
            s3["force_path_style"] = "true"
        if backup.sse:
            s3["server_side_encryption"] = backup.sse  # pkg/rclone S3Options at v3.10.1
        return json.dumps({"s3": s3}, indent=2) + "\n"
    return pulumi.Output.secret(pulumi.Output.all(backup.access_key_id, backup.secret_access_key).apply(render))


def service_monitor_spec() -> dict[str, Any]:
    """ScyllaDB's metrics (9180) and the Manager agent's (5090) from every member Service, labelled with
    cluster and dc as the ScyllaDB Monitoring dashboards expect (the operator's own ServiceMonitor for
    ScyllaDBMonitoring: assets/monitoring/prometheus/v1/scylladb.servicemonitor.yaml)."""
    relabel = [
        {"sourceLabels": ["__meta_kubernetes_service_label_scylla_cluster"], "targetLabel": "cluster"},
        {"sourceLabels": ["__meta_kubernetes_service_label_scylla_datacenter"], "targetLabel": "dc"},
        {"sourceLabels": ["__address__"], "regex": "(.*):.+", "targetLabel": "instance", "replacement": "${1}"},
    ]
    return {
        "selector": {"matchLabels": MEMBER_SERVICE_LABELS},
        "jobLabel": "scylla/cluster",
        "endpoints": [{"port": port, "interval": SCRAPE_INTERVAL, "relabelings": relabel}
                      for port in ("prometheus", "agent-prometheus")],
    }
