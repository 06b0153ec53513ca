"""The ClickHouseKeeperInstallation and the ClickHouseInstallation specs (pure data, built from the topology).

Fields as the CRDs at release-0.27.3 define them (deploy/helm/clickhouse-operator/crds/). What the
operator does with them, per its sources at that tag:

- Pod placement: our pod templates select the pool's nodes and tolerate exactly its taints. Replicas
  of one shard never share a node: `podDistribution: ShardAntiAffinity` renders a *required* pod
  anti-affinity on the shard label (pkg/model/common/affinity/pod-anti-affinity.go); Keeper nodes
  get a required anti-affinity on their installation's label. Profiles that are not HA prefer
  spreading instead of requiring it.
- PodDisruptionBudgets: the operator creates one per cluster, `maxUnavailable: pdbMaxUnavailable`
  (pkg/model/common/creator/pdb.go, for CHI and CHK alike). We set pdbManaged/pdbMaxUnavailable
  explicitly to its defaults: one pod at a time, which keeps Keeper's quorum (2 of 3) and all but
  one replica of every shard.
- Containers named `clickhouse` / `clickhouse-keeper` replace the operator's defaults (which run the
  `latest` image); it adds its ports, probes and config mounts to them (pkg/model/*/creator/container.go,
  pkg/model/common/creator/stateful-set-application.go), but not the environment of its default Keeper
  container: CLICKHOUSE_DATA_DIR is set here as the operator sets it (pkg/model/chk/creator/container.go).
- Logging: the operator's server config logs at `debug` into 10 files of 1000M under /var/log in the
  container (config/chi/config.d/01-clickhouse-02-logger.xml), i.e. up to ~20G of node disk outside any
  volume. `configuration.settings` (rendered after it, so it wins) logs at `information` and keeps 3 files
  of 100M; the console log, which the cluster's log shipper reads, stays on.
- Volumes: the data volume template is mounted at /var/lib/clickhouse (/var/lib/clickhouse-keeper)
  in every container of the pod, the backup sidecar included (pkg/model/chi/volume/volume.go).
  `reclaimPolicy: Retain` keeps the volumes when the installation is deleted.
"""

from __future__ import annotations

from typing import Any

from components.charts import CLICKHOUSE_VERSION
from components.data.clickhouse.topology import (CLUSTER, HTTP_PORT, KEEPER_CLUSTER, KEEPER_METRICS_PORT,
                                                 KEEPER_POD_LABELS, KEEPER_PORT, NAMESPACE, NATIVE_PORT,
                                                 SERVER_POD_LABELS, Topology, keeper_service)
from components.data.placement import Placement, Resources
from components.scheduling import HOSTNAME_TOPOLOGY, pod_anti_affinity, zone_spread
from components.services.namespaces import RESTRICTED_CONTAINER_SECURITY, RESTRICTED_POD_SECURITY

SERVER_IMAGE = f"docker.io/clickhouse/clickhouse-server:{CLICKHOUSE_VERSION}"
KEEPER_IMAGE = f"docker.io/clickhouse/clickhouse-keeper:{CLICKHOUSE_VERSION}"
CLICKHOUSE_UID = 101  # the `clickhouse` user of both images; the volumes are made writable for its group
POD_SECURITY = {**RESTRICTED_POD_SECURITY, "runAsUser": CLICKHOUSE_UID, "runAsGroup": CLICKHOUSE_UID,
                "fsGroup": CLICKHOUSE_UID, "fsGroupChangePolicy": "OnRootMismatch"}
SERVER_TEMPLATE, DATA_TEMPLATE, SERVICE_TEMPLATE = "clickhouse", "data", "cluster-service"
KEEPER_TEMPLATE, KEEPER_DATA_TEMPLATE = "keeper", "keeper-data"
KEEPER_DATA_DIR = "/var/lib/clickhouse-keeper"  # where the operator mounts Keeper's volume; its entrypoint checks it
SERVER_LOGGER = {"logger/level": "information", "logger/size": "100M", "logger/count": "3"}
# Keeper serves Prometheus metrics once these settings are on (docs/chk-examples/02-extended-3-nodes.yaml).
KEEPER_SETTINGS = {
    "prometheus/endpoint": "/metrics",
    "prometheus/port": str(KEEPER_METRICS_PORT),
    "prometheus/metrics": "true",
    "prometheus/events": "true",
    "prometheus/asynchronous_metrics": "true",
}


def disruption_budget() -> dict[str, Any]:
    """The operator's PodDisruptionBudget of a cluster: one pod down at a time."""
    return {"pdbManaged": "true", "pdbMaxUnavailable": 1}


def volume_claim(name: str, storage_class: str, size: str, retain: bool) -> dict[str, Any]:
    return {"name": name, "reclaimPolicy": "Retain" if retain else "Delete",
            "spec": {"storageClassName": storage_class, "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": size}}}}


def _container(name: str, image: str, resources: Resources, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": image, "imagePullPolicy": "IfNotPresent", "resources": resources.spec(),
            "securityContext": dict(RESTRICTED_CONTAINER_SECURITY), **extra}


def _pod_spec(where: Placement, containers: list[dict[str, Any]], affinity: dict[str, Any] | None,
              pod_labels: dict[str, str]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "nodeSelector": where.node_selector,
        "tolerations": where.tolerations,
        # Servers (and Keepers) even over zones: a lost location keeps the other replicas and Keeper's quorum.
        "topologySpreadConstraints": zone_spread(pod_labels, required=where.spans_locations),
        # No Service environment variables: a Service named like a clickhouse-backup setting
        # (CLICKHOUSE_PORT from a `clickhouse` Service) would override it.
        "enableServiceLinks": False,
        "securityContext": POD_SECURITY,
        "containers": containers,
    }
    if affinity:
        spec["affinity"] = affinity
    return spec


def keeper_spec(t: Topology, where: Placement, ha: bool, storage_class: str, storage_size: str,
                retain: bool, labels: dict[str, str]) -> dict[str, Any]:
    container = _container("clickhouse-keeper", KEEPER_IMAGE, t.keeper,
                           env=[{"name": "CLICKHOUSE_DATA_DIR", "value": KEEPER_DATA_DIR}],
                           ports=[{"name": "metrics", "containerPort": KEEPER_METRICS_PORT}])
    return {
        "defaults": {"templates": {"podTemplate": KEEPER_TEMPLATE, "dataVolumeClaimTemplate": KEEPER_DATA_TEMPLATE}},
        "configuration": {
            "clusters": [{"name": KEEPER_CLUSTER, "layout": {"replicasCount": t.keepers}, **disruption_budget()}],
            "settings": dict(KEEPER_SETTINGS),
        },
        "templates": {
            "podTemplates": [{
                "name": KEEPER_TEMPLATE,
                "metadata": {"labels": dict(labels)},
                "spec": _pod_spec(where, [container],
                                  {"podAntiAffinity": pod_anti_affinity(KEEPER_POD_LABELS, required=ha)},
                                  KEEPER_POD_LABELS),
            }],
            "volumeClaimTemplates": [volume_claim(KEEPER_DATA_TEMPLATE, storage_class, storage_size, retain)],
        },
    }


def keeper_nodes() -> list[dict[str, Any]]:
    """`configuration.zookeeper.nodes`: the Keeper installation's Service
    (docs/chk-examples/01-chi-simple-with-keeper.yaml)."""
    return [{"host": f"{keeper_service()}.{NAMESPACE}.svc", "port": KEEPER_PORT}]


def server_pod_template(t: Topology, where: Placement, ha: bool, sidecars: list[dict[str, Any]],
                        labels: dict[str, str], annotations: dict[str, Any]) -> dict[str, Any]:
    """`annotations`: on every server pod (the operator copies the template's metadata, pkg/model/common/creator/
    stateful-set.go createPodTemplateSpec): a changed one rolls the servers."""
    template: dict[str, Any] = {"name": SERVER_TEMPLATE,
                                "metadata": {"labels": dict(labels), "annotations": dict(annotations)}}
    if ha:
        # Scope: the term also matches the installation's labels, not only the shard's name (pkg/model/
        # common/affinity/labels.go newMatchLabels), so another installation's shard 0 never counts.
        template["podDistribution"] = [{"type": "ShardAntiAffinity", "scope": "ClickHouseInstallation",
                                        "topologyKey": HOSTNAME_TOPOLOGY}]
        affinity = None
    else:
        affinity = {"podAntiAffinity": pod_anti_affinity(SERVER_POD_LABELS, required=False)}
    server = _container("clickhouse", SERVER_IMAGE, t.server)
    template["spec"] = _pod_spec(where, [server, *sidecars], affinity, SERVER_POD_LABELS)
    return template


def cluster_service_template() -> dict[str, Any]:
    """A ClusterIP Service over the cluster's ready servers: the clients' single address."""
    return {"name": SERVICE_TEMPLATE, "spec": {"type": "ClusterIP", "ports": [
        {"name": "http", "port": HTTP_PORT, "targetPort": HTTP_PORT},
        {"name": "tcp", "port": NATIVE_PORT, "targetPort": NATIVE_PORT}]}}


def installation_spec(t: Topology, where: Placement, ha: bool, storage_class: str, storage_size: str,
                      retain: bool, users: dict[str, Any], interserver: dict[str, Any],
                      sidecars: list[dict[str, Any]], labels: dict[str, str],
                      pod_annotations: dict[str, Any]) -> dict[str, Any]:
    return {
        "configuration": {
            "zookeeper": {"nodes": keeper_nodes()},
            "users": users,
            "settings": dict(SERVER_LOGGER),
            "clusters": [{
                "name": CLUSTER,
                "layout": {"shardsCount": t.shards, "replicasCount": t.replicas},
                "templates": {"podTemplate": SERVER_TEMPLATE, "dataVolumeClaimTemplate": DATA_TEMPLATE,
                              "clusterServiceTemplate": SERVICE_TEMPLATE},
                "secret": interserver,
                **disruption_budget(),
            }],
        },
        "templates": {
            "podTemplates": [server_pod_template(t, where, ha, sidecars, labels, pod_annotations)],
            "volumeClaimTemplates": [volume_claim(DATA_TEMPLATE, storage_class, storage_size, retain)],
            "serviceTemplates": [cluster_service_template()],
        },
    }
