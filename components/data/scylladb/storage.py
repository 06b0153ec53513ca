"""Where ScyllaDB keeps its data, and the node preparation that goes with it.

Local path (`dataPlane.scylladb.storage: auto` on a provider whose disks are local NVMe): on Hetzner the
NVMe is the root disk, so there is nothing to put in a RAID. The operator's NodeConfig creates a loop
device backed by a (sparse) image file on it, formats it XFS and mounts it with `prjquota`; the ScyllaDB
Local CSI Driver then provisions each PersistentVolume as a directory with an XFS project quota
(scylla-operator v1.21.1 docs/source/deploy-scylladb/before-you-deploy/configure-nodes.md "Loop device",
docs/source/understand/storage.md). ScyllaDB runs in production mode on it.

Network path (`storage: network`, or a provider without local NVMe): the provider's block storage through
its XFS StorageClass (`ctx.xfs_storage_class`: the CSI driver formats the volume XFS), in production mode.
Only where the provider offers no XFS class does ScyllaDB get the default class, whose volumes are ext4,
where appending AIO blocks: ScyllaDB's iotune refuses such a data directory outside developer mode (seastar
src/core/fsqual.cc, scylladb dist/common/scripts/scylla_io_setup: "may not be on XFS ... enable developer
mode"), so that last resort runs ScyllaDB in developer mode and says so.

Either way a NodeConfig tunes the ScyllaDB nodes (the operator runs perftune: IRQ affinity, NIC queues,
disks, clocksource). The host tuning (components/host/profiles.py, role scylladb) owns the sysctls, the CPU
governor and THP, so the NodeConfig sets no sysctls: the two never write the same knob. fs.file-max and
fs.nr_open, which the operator docs also list, are already at their maximum through systemd.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import charts
from components.data.context import DataContext, wait_for
from components.data.placement import Placement

LOCAL_STORAGE_CLASS = "scylladb-local-xfs"  # the name the operator's docs and the Manager chart use
CSI_DRIVER = "local.csi.scylladb.com"
CSI_NAMESPACE = "local-csi-driver"
CSI_APP = "local-csi-driver"
NODE_CONFIG = "scylladb-nodes"
VOLUMES_DIR = "/var/lib/persistent-volumes"  # the XFS mount; the driver makes one directory per volume
LOOP_NAME = "persistent-volumes"
LOOP_IMAGE = "/var/lib/persistent-volumes.img"
LOOP_DEVICE = f"/dev/loops/{LOOP_NAME}"  # NodeConfig symlinks its loop devices under /dev/loops/
# XFS metadata and the project-quota bookkeeping take a few percent: the filesystem must still offer the
# full claim, or the driver's reported capacity is below the request and the pod never schedules.
LOOP_OVERHEAD = 0.05
LOOP_SLACK_GIB = 1
NODE_SETUP_TIMEOUT_SECONDS = 1200
KUBELET_DIR = "/var/lib/kubelet"  # K3s runs the kubelet with the upstream default root directory
CSI_RESOURCES = {
    "local-csi-driver": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
    "csi-driver-registrar": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
    "liveness-probe": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
    "csi-provisioner": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
}


@dataclass(frozen=True)
class Storage:
    local: bool  # the NodeConfig loop device + the local CSI driver
    storage_class: str
    developer_mode: bool
    why: str


def choose(ctx: DataContext) -> Storage:
    """Local NVMe, else the provider's XFS class, else (no XFS class) its default class in developer mode."""
    if ctx.settings.scylladb.storage == "auto" and ctx.local_nvme:
        return Storage(True, LOCAL_STORAGE_CLASS, developer_mode=False,
                       why="local NVMe: an XFS loop device on each node's disk (NodeConfig) and the local CSI driver")
    reason = "dataPlane.scylladb.storage is 'network'" if ctx.settings.scylladb.storage == "network" else \
        "the provider's disks are not local NVMe"
    if ctx.xfs_storage_class:
        return Storage(False, ctx.xfs_storage_class, developer_mode=False,
                       why=f"{reason}: the provider's block storage formatted XFS ({ctx.xfs_storage_class!r})")
    return Storage(False, ctx.storage_class, developer_mode=True,
                   why=f"{reason}, and the provider offers no XFS StorageClass: the CSI class {ctx.storage_class!r} "
                       "formats ext4, which ScyllaDB accepts only in developer mode (iotune's AIO check)")


def loop_size(storage_size: str) -> str:
    """The loop image for one ScyllaDB volume of `storage_size` (Gi or Ti), with room for XFS itself."""
    match = re.fullmatch(r"(\d+)(Gi|Ti)", storage_size)
    if not match:
        raise ValueError(f"storage size {storage_size!r} is not in Gi or Ti")
    gib = int(match.group(1)) * (1024 if match.group(2) == "Ti" else 1)
    return f"{math.ceil(gib * (1 + LOOP_OVERHEAD)) + LOOP_SLACK_GIB}Gi"


# --- NodeConfig -------------------------------------------------------------------------------------------

def node_config_spec(where: Placement, storage: Storage, storage_size: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "placement": {"nodeSelector": where.node_selector, "tolerations": where.tolerations},
        # perftune's IRQ and NIC tuning is node-wide: only on nodes that ScyllaDB has to itself. Converged
        # nodes (compact profile) also run the other databases and the platform.
        "disableOptimizations": where.role == "converged",
    }
    if storage.local:
        spec["localDiskSetup"] = {
            "loopDevices": [{"name": LOOP_NAME, "imagePath": LOOP_IMAGE, "size": loop_size(storage_size)}],
            "filesystems": [{"device": LOOP_DEVICE, "type": "xfs"}],
            # prjquota: the driver enforces each volume's size with XFS project quotas. discard: blocks
            # ScyllaDB frees (compacted SSTables) go back to the disk instead of staying in the image file.
            "mounts": [{"device": LOOP_DEVICE, "mountPoint": VOLUMES_DIR,
                        "unsupportedOptions": ["prjquota", "discard"]}],
        }
    return spec


def install_node_config(ctx: DataContext, storage: Storage, after: Sequence[pulumi.Resource]) -> pulumi.Resource:
    where = ctx.placements["scylladb"]
    # The driver's hostPath (the XFS mount) exists only once the node setup is done.
    return ctx.custom_resource(
        "scylla-node-config", "scylla.scylladb.com/v1alpha1", "NodeConfig", NODE_CONFIG, None,
        node_config_spec(where, storage, ctx.settings.scylladb.storage_size), ctx.labels("scylladb", "node-config"),
        after, annotations=wait_for("condition=Available", NODE_SETUP_TIMEOUT_SECONDS))


# --- the ScyllaDB Local CSI Driver ------------------------------------------------------------------------
# Written from scylladb/local-csi-driver v1.0.1 deploy/kubernetes/local-csi-driver/ with our placement
# (the ScyllaDB nodes, exactly their taints, instead of `operator: Exists`) and resources.

PROVISIONER_RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["persistentvolumes"],
     "verbs": ["get", "list", "watch", "create", "delete", "patch"]},
    {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get", "list", "watch", "update"]},
    {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["list", "watch", "create", "update", "patch"]},
    {"apiGroups": ["snapshot.storage.k8s.io"], "resources": ["volumesnapshots"], "verbs": ["get", "list"]},
    {"apiGroups": ["snapshot.storage.k8s.io"], "resources": ["volumesnapshotcontents"], "verbs": ["get", "list"]},
    {"apiGroups": ["storage.k8s.io"], "resources": ["csinodes"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["storage.k8s.io"], "resources": ["csistoragecapacities"],
     "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
    # Walking up the owner chain for CSIStorageCapacity (a StatefulSet's pod, a Deployment's ReplicaSet).
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
    {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["get"]},
]


def _env_field(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def csi_daemonset_spec(where: Placement) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": CSI_APP}
    plugin = {"name": "plugin-dir", "mountPath": "/csi"}
    socket = "--csi-address=/csi/csi.sock"
    containers = [
        {"name": "local-csi-driver", "image": charts.SCYLLADB_LOCAL_CSI_DRIVER_IMAGE, "imagePullPolicy": "IfNotPresent",
         # Mounts and XFS quotas on the host: the driver is privileged (upstream manifest).
         "securityContext": {"privileged": True},
         "args": ["--listen=/csi/csi.sock", "--node-name=$(NODE_NAME)", f"--volumes-dir={VOLUMES_DIR}", "--v=2"],
         "env": [_env_field("NODE_NAME", "spec.nodeName")],
         "volumeMounts": [{"name": "kubelet-dir", "mountPath": KUBELET_DIR, "mountPropagation": "Bidirectional"},
                          plugin, {"name": "volumes-dir", "mountPath": VOLUMES_DIR}],
         "ports": [{"name": "healthz", "containerPort": 9809, "protocol": "TCP"}],
         "livenessProbe": {"httpGet": {"path": "/healthz", "port": "healthz"}, "initialDelaySeconds": 10,
                           "timeoutSeconds": 3, "periodSeconds": 2, "failureThreshold": 5}},
        {"name": "csi-driver-registrar", "image": charts.CSI_NODE_DRIVER_REGISTRAR_IMAGE,
         "imagePullPolicy": "IfNotPresent",
         "args": [socket, f"--kubelet-registration-path={KUBELET_DIR}/plugins/{CSI_DRIVER}/csi.sock"],
         "volumeMounts": [plugin, {"name": "registration-dir", "mountPath": "/registration"}]},
        {"name": "liveness-probe", "image": charts.CSI_LIVENESS_PROBE_IMAGE, "imagePullPolicy": "IfNotPresent",
         "args": [socket, "--health-port=9809", "--v=2"], "volumeMounts": [plugin]},
        {"name": "csi-provisioner", "image": charts.CSI_PROVISIONER_IMAGE, "imagePullPolicy": "IfNotPresent",
         "args": [socket, "--v=2", "--node-deployment", "--immediate-topology=false", "--enable-capacity",
                  "--capacity-ownerref-level=0", "--capacity-poll-interval=30s", "--default-fstype=xfs"],
         "env": [_env_field("NAMESPACE", "metadata.namespace"), _env_field("POD_NAME", "metadata.name"),
                 _env_field("NODE_NAME", "spec.nodeName")],
         "volumeMounts": [plugin]},
    ]
    for container in containers:
        container["resources"] = CSI_RESOURCES[container["name"]]
    return {
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "nodeSelector": {"kubernetes.io/os": "linux", **where.node_selector},
                "tolerations": where.tolerations,
                "serviceAccountName": CSI_APP,
                "containers": containers,
                "volumes": [
                    {"name": "kubelet-dir", "hostPath": {"path": KUBELET_DIR, "type": "Directory"}},
                    {"name": "plugin-dir", "hostPath": {"path": f"{KUBELET_DIR}/plugins/{CSI_DRIVER}/",
                                                        "type": "DirectoryOrCreate"}},
                    {"name": "registration-dir", "hostPath": {"path": f"{KUBELET_DIR}/plugins_registry/",
                                                              "type": "Directory"}},
                    {"name": "volumes-dir", "hostPath": {"path": VOLUMES_DIR, "type": "Directory"}},
                ],
            },
        },
    }


def install_local_csi(ctx: DataContext, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    """The driver's objects; the StorageClass last (nothing binds a claim before the driver runs)."""
    labels = ctx.labels(CSI_APP, "storage")
    opts = ctx.opts(after)
    account = k8s.core.v1.ServiceAccount(
        "scylla-local-csi-account", metadata=k8s.meta.v1.ObjectMetaArgs(name=CSI_APP, namespace=CSI_NAMESPACE,
                                                                          labels=labels), opts=opts)
    role = k8s.rbac.v1.ClusterRole(
        "scylla-local-csi-provisioner", metadata=k8s.meta.v1.ObjectMetaArgs(name="scylladb:csi-external-provisioner",
                                                                              labels=labels),
        rules=PROVISIONER_RULES, opts=opts)
    binding = k8s.rbac.v1.ClusterRoleBinding(
        "scylla-local-csi-provisioner", metadata=k8s.meta.v1.ObjectMetaArgs(name="scylladb:csi-external-provisioner",
                                                                              labels=labels),
        subjects=[{"kind": "ServiceAccount", "name": CSI_APP, "namespace": CSI_NAMESPACE}],
        role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                  "name": "scylladb:csi-external-provisioner"},
        opts=ctx.opts([*after, role, account]))
    driver = k8s.storage.v1.CSIDriver(
        "scylla-local-csi-driver", metadata=k8s.meta.v1.ObjectMetaArgs(name=CSI_DRIVER, labels=labels),
        spec={"attachRequired": False, "storageCapacity": True}, opts=opts)
    daemonset = k8s.apps.v1.DaemonSet(
        "scylla-local-csi-daemonset", metadata=k8s.meta.v1.ObjectMetaArgs(name=CSI_APP, namespace=CSI_NAMESPACE,
                                                                            labels=labels),
        spec=csi_daemonset_spec(ctx.placements["scylladb"]), opts=ctx.opts([*after, account, binding, driver]))
    storage_class = k8s.storage.v1.StorageClass(
        "scylla-local-xfs", metadata=k8s.meta.v1.ObjectMetaArgs(name=LOCAL_STORAGE_CLASS, labels=labels),
        provisioner=CSI_DRIVER, volume_binding_mode="WaitForFirstConsumer",  # the volume is on the pod's node
        parameters={"csi.storage.k8s.io/fstype": "xfs"}, opts=ctx.opts([*after, daemonset]))
    return [account, role, binding, driver, daemonset, storage_class]
