"""Node autoscaling: the Kubernetes Cluster Autoscaler and the provider's node groups (docs/autoscaling.md).

An autoscaled pool keeps `autoscaling.min` Pulumi-managed nodes (its floor, tuned and joined over SSH); the
autoscaler adds up to `autoscaling.max - min` more through one node group per location of the pool, and
removes them when they are idle. Those nodes configure themselves from cloud-init user data built from the
same scripts as the SSH path (components/k3s/userdata.py).

- **Node groups**: one `NodeGroupRequest` per (autoscaled pool, location of the pool), with min size 0 and
  that location's share of the extra nodes (the shares sum to exactly `max - min`); the provider
  (`Infrastructure.install_node_groups`) turns them into its own mechanism and the chart values to drive it.
- **Secrets** (cloud tokens, the node groups' user data with the agent join token): only in the Secret the
  autoscaler reads its environment from (`envFromSecret`) or the Secret mounted as its files (what outgrows an
  environment variable, e.g. Hetzner's cluster config), never in the chart's values.
- **Scale-down is safe**: the autoscaler drains a node by eviction (PodDisruptionBudgets hold), never removes a
  node running pods with local storage, removes one running kube-system pods without a disruption budget only
  after an hour (cluster-autoscaler 1.36.1 `blocking-system-pod-distruption-timeout`), waits
  `clusterServices.autoscaler` delays, and
  only touches node groups: the Pulumi-managed floor and the database pools (never autoscaled: config/rules.py)
  are not its to remove.
- **Placement**: on the control-plane nodes (tolerating their taint), which it never scales away; 2 replicas
  with leader election, a PodDisruptionBudget and one replica per node in production-grade profiles.
- **Network**: the Kubernetes API and the provider's API (HTTPS to the internet); Prometheus scrapes :8085.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.charts import CLUSTER_AUTOSCALER, CLUSTER_AUTOSCALER_IMAGE
from components.digest import mapping_text, plain_marker
from components.helm import release
from components.k3s import K3sCluster
from components.k3s.config import node_labels
from components.k3s.userdata import JoinSettings, user_data
from components.layer import EXCLUDE_FROM_BACKUP
from components.scheduling import pod_anti_affinity, toleration
from components.services.context import ServicesContext
from components.services.namespaces import (RESTRICTED_CONTAINER_SECURITY, RESTRICTED_POD_SECURITY, NamespaceSpec,
                                            Namespaces, prometheus_peer)
from components.services.upgrades import CONTROL_PLANE_LABEL
from config.model import LOCATION_LABEL, Cluster, Pool, StackConfig, pool_locations
from config.services import Autoscaler
from providers.base import (AUTOSCALER_FILES_DIR, INSTANCE_METADATA, ClusterProfile, Infrastructure, NodeGroupRequest,
                            NodeGroups, group_spec, node_group_name)

NAMESPACE = CLUSTER_AUTOSCALER.namespace
NAME = "cluster-autoscaler"  # the chart's fullnameOverride and nameOverride: provider-neutral object names
SECRET = "cluster-autoscaler-env"
FILES_SECRET = "cluster-autoscaler-files"  # NodeGroups.secret_files, mounted in AUTOSCALER_FILES_DIR
FILES_VOLUME = "adplatform-files"  # the chart's extraVolumeSecrets key: the pod's volume name
METRICS_PORT = 8085  # the chart's service.servicePort, the autoscaler's --address
HTTPS = 443  # the cloud provider's API
NONROOT = 65532  # the image is distroless/static:nonroot (cluster-autoscaler/Dockerfile)
EXPANDER = "least-waste"  # of the groups that fit the pending pods, the one leaving the least idle CPU/memory
RESOURCES = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
CONFIG_ANNOTATION = "adplatform.io/config-sha256"  # the chart's podAnnotations: restarts the pods on a new config


def enabled(cluster: Cluster, infra: Infrastructure) -> bool:
    """Some pool autoscales and the provider can create machines (bare metal cannot: refused in config)."""
    return bool(cluster.autoscaled_pools) and infra.install_node_groups is not None


def namespaces(ctx: ServicesContext, on: bool, profile: ClusterProfile) -> list[NamespaceSpec]:
    """`profile`: the stack provider's, whose API the autoscaler calls from the control plane."""
    if not on:
        return []
    return [NamespaceSpec(
        name=NAMESPACE, pss="restricted", why="the cluster autoscaler only calls APIs",
        egress_world=(HTTPS,),  # the provider's API (e.g. api.hetzner.cloud) creates and deletes servers
        # Where its credentials are the node's, from the instance metadata service (AWS, GCP, Azure): without it the
        # autoscaler cannot authenticate and exits at start (cluster-autoscaler 1.36.1 aws_cloud_provider.go
        # BuildAWS, gce_cloud_provider.go BuildGCE: Fatalf when the manager cannot be created).
        egress_blocks=(INSTANCE_METADATA,) if profile.credentials_from_instance_metadata else (),
        ingress_from=(prometheus_peer((METRICS_PORT,)),))]


def join_settings(cfg: StackConfig, infra: Infrastructure, cluster: K3sCluster) -> JoinSettings:
    return JoinSettings(k3s_version=cfg.cluster.k3s_version,
                        k3s_installer_sha256=cfg.cluster.k3s_installer_sha256, api_endpoint=infra.api_private_endpoint,
                        agent_token=cluster.agent_token, profile=infra.cluster, pod_cidr=cfg.cluster.pod_cidr,
                        service_cidr=cfg.cluster.service_cidr, admin_keys=tuple(cfg.ssh_public_keys),
                        provider=cfg.provider)


def shares(extra: int, parts: int) -> list[int]:
    """`extra` split over `parts` as evenly as possible, the first parts taking the remainder."""
    return [extra // parts + (1 if i < extra % parts else 0) for i in range(parts)]


def group_locations(pool: Pool, cluster: Cluster, unpinned: Sequence[str | None]) -> list[str | None]:
    """The locations of a pool's node groups: the pool's, or where the provider spreads unpinned nodes
    (Infrastructure.unpinned_group_locations) when neither the pool nor the cluster names one."""
    locations = pool_locations(pool, cluster)
    return list(unpinned) if locations == [None] else locations


def placed_groups(cluster: Cluster, unpinned: Sequence[str | None] = (None,)) -> list[tuple[Pool, str | None, int]]:
    """(pool, location, max size) of every node group: one per autoscaled pool and location with a share of
    its extra nodes (make verify expects the same groups: tools/verify/expected.py)."""
    found = []
    for pool in cluster.autoscaled_pools:
        locations = group_locations(pool, cluster, unpinned)
        # Fewer extra nodes than locations: the first locations take them, the others get no group.
        found += [(pool, location, share)
                  for location, share in zip(locations, shares(pool.autoscaling.extra, len(locations))) if share]
    return found


def requests(cluster: Cluster, join: JoinSettings, unpinned: Sequence[str | None] = (None,)) -> list[NodeGroupRequest]:
    """One node group request per placed group (placed_groups)."""
    found = []
    for pool, location, share in placed_groups(cluster, unpinned):
        name = node_group_name(pool, location)
        spec = group_spec(name, pool, location, join.provider)
        found.append(NodeGroupRequest(
            name=name, pool=pool, location=location, min_size=0, max_size=share, user_data=user_data(spec, join),
            spec=spec, node_labels=node_labels(spec, join.profile), node_taints=tuple(spec.taints)))
    return found


def neutral_values(ctx: ServicesContext, settings: Autoscaler) -> dict[str, Any]:
    """The chart values every provider shares (kubernetes/autoscaler cluster-autoscaler-chart-9.59.0 values.yaml)."""
    repository, tag = CLUSTER_AUTOSCALER_IMAGE
    replicas = ctx.replicas(2)
    pod_labels = {"app.kubernetes.io/instance": NAME, "app.kubernetes.io/name": NAME}
    return {
        "fullnameOverride": NAME,
        "nameOverride": NAME,
        "image": {"repository": repository, "tag": tag},
        "replicaCount": replicas,
        "extraArgs": {
            "leader-elect": True,  # one active replica; the other takes over within the lease
            "expander": EXPANDER,
            "balance-similar-node-groups": True,  # a pool's groups in several locations grow evenly
            # ... which needs them "similar": equal labels but the standard zone labels, and ours names the location.
            "balancing-ignore-label": LOCATION_LABEL,
            "skip-nodes-with-system-pods": True,
            "skip-nodes-with-local-storage": True,
            "scale-down-delay-after-add": settings.scale_down_delay_after_add,
            "scale-down-unneeded-time": settings.scale_down_unneeded_time,
            "scale-down-utilization-threshold": settings.scale_down_utilization_threshold,
        },
        "envFromSecret": SECRET,
        "priorityClassName": "system-cluster-critical",
        "podDisruptionBudget": {"maxUnavailable": 1},
        # The control plane is never scaled down, so the autoscaler never removes the node it runs on.
        "nodeSelector": {CONTROL_PLANE_LABEL: "true"},
        "tolerations": [toleration(t) for t in ctx.cluster.control_plane.taints],
        "affinity": {"podAntiAffinity": pod_anti_affinity(pod_labels)} if replicas > 1 else {},
        "resources": RESOURCES,
        "securityContext": {**RESTRICTED_POD_SECURITY, "runAsUser": NONROOT, "runAsGroup": NONROOT},
        "containerSecurityContext": {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": True},
        # The Prometheus Operator CRDs are installed by this layer (monitoring_crds.py); the monitor lives with
        # the autoscaler (the chart's default namespace, monitoring, exists only with the platform layer).
        "serviceMonitor": {"enabled": True, "namespace": NAMESPACE, "interval": "30s"},
    }


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` over `base`, maps merged key by key (as Helm merges values)."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@dataclass(frozen=True)
class NodeAutoscaling:
    groups: list[NodeGroupRequest]
    node_groups: NodeGroups
    ready: list[pulumi.Resource]


def install(ctx: ServicesContext, spaces: Namespaces, infra: Infrastructure, join: JoinSettings,
            after: Sequence[pulumi.Resource]) -> NodeAutoscaling:
    """`after`: the cluster and the monitoring CRDs (the chart renders a ServiceMonitor)."""
    assert infra.install_node_groups is not None
    groups = requests(ctx.cluster, join, infra.unpinned_group_locations)
    made = infra.install_node_groups(groups, ctx.k8s, list(after), ctx.parent)
    opts = ctx.opts([*after, *spaces.ready_for([NAMESPACE])])
    secrets = [_secret(SECRET, made.secret_env, opts)]
    values = merged(neutral_values(ctx, ctx.settings.autoscaler), made.autoscaler_values)
    if made.secret_files:
        # A Secret of its own: envFromSecret would also turn a file's key into an environment variable.
        secrets.append(_secret(FILES_SECRET, made.secret_files, opts))
        values = merged(values, files_values())
    values = merged(values, {"podAnnotations": {CONFIG_ANNOTATION: config_digest(made)}})
    chart = release("cluster-autoscaler", CLUSTER_AUTOSCALER, values,
                    pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[*secrets, *made.resources])),
                    namespace=NAMESPACE, create_namespace=False)
    return NodeAutoscaling(groups=groups, node_groups=made, ready=[*made.resources, *secrets, chart])


def config_digest(made: NodeGroups) -> pulumi.Output[str]:
    """A plain digest of the autoscaler's environment and files: it reads both only when it starts (Hetzner's
    cluster config, cluster-autoscaler 1.36.1 hetzner_manager.go newManager), so a change of them (a new K3s version,
    tuning or join token in the node groups' cloud-init, a rotated cloud token) must restart its pods, or nodes it
    creates later would boot the old config. Domain-separated and over 64-character random tokens: it reveals
    nothing of them (left secret, it would hide every change of the release's values from previews)."""
    contents = pulumi.Output.from_input({"env": dict(made.secret_env), "files": dict(made.secret_files)})
    return plain_marker("autoscaler-config", contents.apply(mapping_text))


def files_values() -> dict[str, Any]:
    """The files Secret mounted read-only in AUTOSCALER_FILES_DIR (chart 9.59.0 values.yaml extraVolumeSecrets:
    volume name -> {name: the Secret, mountPath})."""
    return {"extraVolumeSecrets": {FILES_VOLUME: {"name": FILES_SECRET, "mountPath": AUTOSCALER_FILES_DIR}}}


def _secret(name: str, data: dict[str, pulumi.Input[str]], opts: pulumi.ResourceOptions) -> k8s.core.v1.Secret:
    return k8s.core.v1.Secret(
        name, metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=NAMESPACE, labels=EXCLUDE_FROM_BACKUP),
        string_data={key: pulumi.Output.secret(value) for key, value in data.items()}, type="Opaque", opts=opts)
