"""Namespaces with Pod Security Standards labels and default-deny network policies, plus team quotas.

Each module of a layer declares the namespace it needs as a `NamespaceSpec` (the Pod Security level
and why, the webhook ports the API server calls, what it must reach); this module turns the specs
into objects. Every namespace gets: default-deny for ingress and egress, DNS, traffic inside the
namespace, the Kubernetes API, and exactly the extra peers its spec lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Sequence

import pulumi
import pulumi_kubernetes as k8s

from config.catalog import MONITORING_NAMESPACE
from config.model import Cluster
from config.services import Team

PodSecurity = Literal["restricted", "baseline", "privileged"]
API_PORT = 6443
# Addresses outside the cluster: the internet minus private ranges (nodes, pods and services are in them)
# and link-local, where clouds serve instance metadata (169.254.169.254): the node's cloud credentials
# (AWS instance role, Azure managed identity, GCP service account) stay out of reach of pods, but for the cluster
# autoscaler's, which runs on the control plane as those credentials (ClusterProfile.credentials_from_instance_metadata).
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16")
LAYER_LABEL = "adplatform.io/layer"
# What the `restricted` Pod Security level demands of a pod and its containers, for charts whose
# defaults fall short (pass these where a chart takes explicit security contexts).
RESTRICTED_POD_SECURITY = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                 "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
TEAM_LAYER = "teams"
# The monitoring namespace holds Prometheus and the internet-facing Grafana. Only Prometheus scrapes, so a
# namespace admits Prometheus' pods (the operator's own pod-selector label, prometheus-operator v0.93.1
# pkg/prometheus/server/statefulset.go) to its metrics ports, and Grafana's pods (the grafana chart's
# selectorLabels) only where Grafana queries a datasource (Loki, Tempo). Nothing in `monitoring` reaches an
# admin or application API (OpenBao, Kubeflow Pipelines, Redpanda Admin) from Grafana.
PROMETHEUS_POD_LABELS = {"app.kubernetes.io/name": "prometheus"}
GRAFANA_POD_LABELS = {"app.kubernetes.io/name": "grafana"}
# Alertmanager's pods: the operator's selector labels, which a CR's podMetadata cannot override (prometheus-operator
# v0.93 pkg/alertmanager/operator.go makeSelectorLabels). The only pods of `monitoring` that send alerts out.
ALERTMANAGER_POD_LABELS = {"app.kubernetes.io/name": "alertmanager"}


@dataclass(frozen=True)
class Peer:
    """Another namespace (optionally only some of its pods) on some ports (empty: any port).

    With `namespace_labels`, every namespace carrying those labels (`namespace` then only names the
    policy), e.g. all team namespaces: {LAYER_LABEL: TEAM_LAYER}. With `all_namespaces`, every namespace
    (Prometheus scraping, log and trace shippers).
    """

    namespace: str
    ports: tuple[int, ...] = ()
    pod_labels: dict[str, str] = field(default_factory=dict)
    namespace_labels: dict[str, str] = field(default_factory=dict)
    all_namespaces: bool = False
    name: str = ""  # names the policy (allow-from-<name>) when two peers share a namespace; default: namespace
    except_namespaces: tuple[str, ...] = ()  # with namespace_labels: these namespaces are not selected

    @property
    def policy_suffix(self) -> str:
        return self.name or self.namespace


def prometheus_peer(ports: Sequence[int]) -> Peer:
    """Prometheus scrapes these metrics ports (its pods only, not the rest of the monitoring namespace)."""
    if not ports:
        raise ValueError("a Prometheus peer names its metrics ports (an empty list would admit every port)")
    return Peer(MONITORING_NAMESPACE, tuple(ports), pod_labels=dict(PROMETHEUS_POD_LABELS))


def platform_peer(ports: Sequence[int], layer_label: str) -> Peer:
    """Every namespace of the platform layer but monitoring: Prometheus is admitted to metrics ports only and
    Grafana to its datasources only, never to a store's or service's client ports."""
    return Peer("platform", tuple(ports), namespace_labels={LAYER_LABEL: layer_label},
                except_namespaces=(MONITORING_NAMESPACE,))


def grafana_peer(ports: Sequence[int]) -> Peer:
    """Grafana queries a datasource on these ports (its pods only)."""
    if not ports:
        raise ValueError("a Grafana peer names its datasource ports (an empty list would admit every port)")
    return Peer(MONITORING_NAMESPACE, tuple(ports), pod_labels=dict(GRAFANA_POD_LABELS), name="grafana")


@dataclass(frozen=True)
class PodsEgress:
    """Some pods of a namespace (by their labels) reach addresses outside the cluster on these TCP ports: the one
    workload that needs the internet gets it, not every pod beside it (policy allow-egress-internet-<name>)."""

    name: str
    pod_labels: dict[str, str]
    ports: tuple[int, ...]

    def __post_init__(self) -> None:
        # Either would open more than this workload's ports: every pod of the namespace, or every port.
        if not self.pod_labels or not self.ports:
            raise ValueError(f"internet egress {self.name!r} names its pods' labels and ports, got "
                             f"{self.pod_labels} and {self.ports} (the whole namespace: use egress_world)")


@dataclass(frozen=True)
class NamespaceSpec:
    name: str
    pss: PodSecurity
    why: str  # why this Pod Security level: kept as an annotation, so `kubectl describe ns` explains it
    layer: str = "cluster-services"
    webhooks: tuple[int, ...] = ()  # pod ports the API server calls (admission/conversion webhooks)
    egress_world: tuple[int, ...] = ()  # TCP ports on addresses outside the cluster (ACME, S3, DNS APIs)
    egress_world_pods: tuple[PodsEgress, ...] = ()  # the same, for some pods of the namespace only
    # TCP ports on given addresses, private ones included (which egress_world excludes): a server of the user's
    # own network, named by its IP address (CIDR -> ports).
    egress_blocks: tuple[tuple[str, tuple[int, ...]], ...] = ()
    ingress_from: tuple[Peer, ...] = ()
    egress_to: tuple[Peer, ...] = ()
    egress_nodes: tuple[int, ...] = ()  # TCP ports on the nodes' own addresses (kubelet, node exporter)
    # Pods of the namespace reach each other freely; off where each workload's own NetworkPolicy says
    # who may call it (team namespaces: the ad services declare their callers).
    same_namespace: bool = True
    gateway: bool = False  # serves HTTPRoutes of the shared gateway (Cilium's envoy reaches its pods)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class Namespaces:
    names: dict[str, str]  # namespace name -> its Pod Security level
    objects: dict[str, k8s.core.v1.Namespace]
    ready: list[pulumi.Resource]
    by_name: dict[str, list[pulumi.Resource]] = field(default_factory=dict)  # each namespace and its policies

    def __getitem__(self, name: str) -> k8s.core.v1.Namespace:
        return self.objects[name]

    def ready_for(self, names: Sequence[str]) -> list[pulumi.Resource]:
        """What workloads in these namespaces wait for (not every namespace's policies: short
        dependency lists keep the program fast, and say what each workload really needs)."""
        return [r for name in names for r in self.by_name[name]]


def pss_labels(level: PodSecurity, kubernetes_minor: str) -> dict[str, str]:
    """Enforce the level; audit and warn at `restricted` so what a relaxed namespace allows stays visible."""
    return {
        "pod-security.kubernetes.io/enforce": level,
        "pod-security.kubernetes.io/enforce-version": kubernetes_minor,
        "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/audit-version": kubernetes_minor,
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/warn-version": kubernetes_minor,
    }


def kubernetes_minor(k3s_version: str) -> str:
    return ".".join(k3s_version.split("+")[0].split(".")[:2])  # v1.36.4+k3s1 -> v1.36


def _ports(ports: Sequence[int], protocol: str = "TCP") -> list[dict[str, Any]]:
    return [{"protocol": protocol, "port": p} for p in ports]


def _peer(peer: Peer) -> dict[str, Any]:
    labels = {} if peer.all_namespaces else peer.namespace_labels or {"kubernetes.io/metadata.name": peer.namespace}
    selector: dict[str, Any] = {"namespaceSelector": {"matchLabels": dict(labels)} if labels else {}}
    if peer.except_namespaces:
        selector["namespaceSelector"]["matchExpressions"] = [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": list(peer.except_namespaces)}]
    if peer.pod_labels:
        selector["podSelector"] = {"matchLabels": dict(peer.pod_labels)}
    return selector


def _rule(peer_key: str, peers: list[dict[str, Any]], ports: Sequence[int]) -> dict[str, Any]:
    rule: dict[str, Any] = {peer_key: peers}
    if ports:
        rule["ports"] = _ports(ports)
    return rule


def _internet_policy(pod_selector: dict[str, Any], ports: Sequence[int]) -> dict[str, Any]:
    """The selected pods reach addresses outside the cluster (not PRIVATE_RANGES) on these TCP ports."""
    return {"podSelector": pod_selector, "policyTypes": ["Egress"],
            "egress": [_rule("to", [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_RANGES)}}], ports)]}


def policies(spec: NamespaceSpec, nodes_cidr: str) -> dict[str, dict[str, Any]]:
    """NetworkPolicy specs by name. `nodes_cidr` holds every node's private address (the API servers').

    Cilium matches node addresses in ipBlock rules because the cluster runs it with
    `policyCIDRMatchMode: nodes` (components/k3s/cilium.py).
    """
    everything: dict[str, Any] = {}
    specs: dict[str, dict[str, Any]] = {
        "default-deny": {"podSelector": everything, "policyTypes": ["Ingress", "Egress"]},
        "allow-dns": {"podSelector": everything, "policyTypes": ["Egress"], "egress": [{
            "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": _ports([53], "UDP") + _ports([53])}]},
        "allow-same-namespace": {"podSelector": everything, "policyTypes": ["Ingress", "Egress"],
                                 "ingress": [{"from": [{"podSelector": everything}]}],
                                 "egress": [{"to": [{"podSelector": everything}]}]},
        "allow-kubernetes-api": {"podSelector": everything, "policyTypes": ["Egress"],
                                 "egress": [_rule("to", [{"ipBlock": {"cidr": nodes_cidr}}], [API_PORT])]},
    }
    if not spec.same_namespace:
        del specs["allow-same-namespace"]
    if spec.egress_nodes:
        specs["allow-egress-nodes"] = {
            "podSelector": everything, "policyTypes": ["Egress"],
            "egress": [_rule("to", [{"ipBlock": {"cidr": nodes_cidr}}], spec.egress_nodes)]}
    if spec.webhooks:
        specs["allow-api-server-webhooks"] = {
            "podSelector": everything, "policyTypes": ["Ingress"],
            "ingress": [_rule("from", [{"ipBlock": {"cidr": nodes_cidr}}], spec.webhooks)]}
    if spec.egress_world:
        specs["allow-egress-internet"] = _internet_policy(everything, spec.egress_world)
    for pods in spec.egress_world_pods:
        name = f"allow-egress-internet-{pods.name}"
        if name in specs:
            raise ValueError(f"namespace {spec.name}: two internet egresses make the policy {name}")
        specs[name] = _internet_policy({"matchLabels": dict(pods.pod_labels)}, pods.ports)
    if spec.egress_blocks:
        specs["allow-egress-addresses"] = {
            "podSelector": everything, "policyTypes": ["Egress"],
            "egress": [_rule("to", [{"ipBlock": {"cidr": cidr}}], ports) for cidr, ports in spec.egress_blocks]}
    for direction, peers, key in (("from", spec.ingress_from, "ingress"), ("to", spec.egress_to, "egress")):
        for peer in peers:
            name = f"allow-{direction}-{peer.policy_suffix}"
            if name in specs:  # a second peer would silently replace the first policy
                raise ValueError(f"namespace {spec.name}: two peers make the policy {name}; give one a `name`")
            specs[name] = {"podSelector": everything, "policyTypes": ["Ingress" if key == "ingress" else "Egress"],
                           key: [_rule(direction, [_peer(peer)], peer.ports)]}
    return specs


def gateway_policy(namespace: str) -> dict[str, Any]:
    """Cilium's gateway proxies with the reserved `ingress` identity, which a NetworkPolicy cannot name."""
    return {
        "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "allow-from-gateway", "namespace": namespace},
        "spec": {"endpointSelector": {}, "ingress": [{"fromEntities": ["ingress"]}]},
    }


def team_spec(team: Team, mesh_peers: tuple[Peer, ...] | None) -> NamespaceSpec:
    """`mesh_peers`: what the namespace's proxies must reach when it is meshed (None: not meshed)."""
    return NamespaceSpec(
        # No namespace-wide gateway policy: each public workload admits the gateway itself (components/ads).
        name=team.name, pss="restricted", layer=TEAM_LAYER, gateway=False, same_namespace=False,
        why="team workloads: non-root, no privilege escalation, RuntimeDefault seccomp; each workload's own "
            "NetworkPolicy names its callers",
        egress_to=mesh_peers or (),
        annotations={"linkerd.io/inject": "enabled"} if mesh_peers is not None else {})


# Every quota'd namespace (teams, CI jobs, Spark jobs) publishes through the shared gateway only: no Service of
# its own gets a cloud load balancer or a port on every node. (Kubernetes' quota names are plural:
# `services.loadbalancers`; an unknown name is accepted and limits nothing.) externalIPs are refused for every
# namespace by the API server's DenyServiceExternalIPs plugin (components/k3s/config.py).
NO_OWN_ENTRY_POINTS = {"services.loadbalancers": "0", "services.nodeports": "0"}


def quota(team: Team) -> dict[str, Any]:
    return {"hard": {"requests.cpu": team.requests_cpu, "requests.memory": team.requests_memory,
                     "limits.memory": team.limits_memory, "pods": str(team.pods), **NO_OWN_ENTRY_POINTS}}


# Containers that declare nothing get these, so the quota (which needs requests) admits them.
LIMIT_RANGE = {"limits": [{"type": "Container", "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                           "default": {"memory": "512Mi"}, "max": {"memory": "32Gi"}}]}


class NamespaceContext(Protocol):
    """What creating namespaces needs of a layer's context (ServicesContext, DataContext)."""

    cluster: Cluster

    def opts(self, depends_on: Sequence[pulumi.Resource] = (), **kwargs) -> pulumi.ResourceOptions: ...


def install(ctx: NamespaceContext, specs: Sequence[NamespaceSpec], after: Sequence[pulumi.Resource],
            mesh_peers: dict[str, tuple[Peer, ...]] | None = None, teams: Sequence[Team] = ()) -> Namespaces:
    """`mesh_peers`: meshed namespace -> the control-plane peers its proxies need (mesh.py);
    `teams`: team namespaces to create too (the cluster-services layer owns them)."""
    minor = kubernetes_minor(ctx.cluster.k3s_version)
    meshed = mesh_peers or {}
    teams = {t.name: t for t in teams}
    all_specs = [*specs, *(team_spec(t, meshed.get(t.name)) for t in teams.values())]
    names = [s.name for s in all_specs]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"namespaces declared twice: {duplicated}")

    objects: dict[str, k8s.core.v1.Namespace] = {}
    ready: list[pulumi.Resource] = []
    by_name: dict[str, list[pulumi.Resource]] = {}
    for spec in all_specs:
        ns = k8s.core.v1.Namespace(
            f"ns-{spec.name}",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=spec.name,
                labels={**pss_labels(spec.pss, minor), LAYER_LABEL: spec.layer, **spec.labels},
                annotations={"adplatform.io/pod-security-why": spec.why, **spec.annotations}),
            opts=ctx.opts(after))
        objects[spec.name] = ns
        children: list[pulumi.Resource] = []
        child_opts = ctx.opts([ns])
        for name, policy in policies(spec, ctx.cluster.subnet_cidr).items():
            children.append(k8s.networking.v1.NetworkPolicy(
                f"netpol-{spec.name}-{name}", metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=spec.name),
                spec=policy, opts=child_opts))
        if spec.gateway:
            manifest = gateway_policy(spec.name)
            children.append(k8s.apiextensions.CustomResource(
                f"netpol-{spec.name}-allow-from-gateway", api_version=manifest["apiVersion"], kind=manifest["kind"],
                metadata=manifest["metadata"], spec=manifest["spec"], opts=child_opts))
        if spec.name in teams:
            children.append(k8s.core.v1.ResourceQuota(
                f"quota-{spec.name}", metadata=k8s.meta.v1.ObjectMetaArgs(name="team-quota", namespace=spec.name),
                spec=quota(teams[spec.name]), opts=child_opts))
            children.append(k8s.core.v1.LimitRange(
                f"limits-{spec.name}", metadata=k8s.meta.v1.ObjectMetaArgs(name="container-defaults", namespace=spec.name),
                spec=LIMIT_RANGE, opts=child_opts))
        ready += [ns, *children]
        by_name[spec.name] = [ns, *children]
    return Namespaces(names={s.name: s.pss for s in all_specs}, objects=objects, ready=ready, by_name=by_name)
