"""PodMonitors for Cilium's agents, operator and Hubble, which the K3s layer installs before any monitoring CRD.

Cilium's chart could render its own ServiceMonitors, but it is installed with the cluster, before the
Prometheus Operator CRDs exist (monitoring_crds.py), and the agent's metrics Service is only rendered
together with the chart's ServiceMonitor. So Cilium only serves its metrics (`prometheus.enabled`,
`operator.prometheus.enabled`, `hubble.metrics.enabled` in components/k3s/cilium.py) and these PodMonitors,
created once the CRDs exist, scrape the pods' `prometheus` ports and the agents' `hubble-metrics` port.

Both run in the hosts' network namespace: their targets are node addresses, which Prometheus reaches
through its namespace's node egress (components/platform/monitoring.py); kube-system has no
default-deny policy of ours, and host-network pods are not subject to NetworkPolicies anyway.
"""

from __future__ import annotations

from typing import Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.charts import CILIUM
from components.host_metrics import CILIUM_AGENT_PORT, CILIUM_OPERATOR_PORT, HUBBLE_METRICS_PORT
from components.services.context import ServicesContext
from components.services.namespaces import NamespaceSpec, Namespaces

NAMESPACE = CILIUM.namespace
PORTS = (CILIUM_AGENT_PORT, CILIUM_OPERATOR_PORT, HUBBLE_METRICS_PORT)  # host ports: components/host_metrics.py
# Pod labels the chart sets (templates/cilium-agent/daemonset.yaml, cilium-operator/deployment.yaml).
AGENT = {"k8s-app": "cilium"}
OPERATOR = {"io.cilium/app": "operator", "name": "cilium-operator"}
# Monitor name -> (pods, their named container port). Hubble's metrics come from the agents themselves.
MONITORS = {
    "cilium-agent": (AGENT, "prometheus"),
    "cilium-operator": (OPERATOR, "prometheus"),
    "hubble": (AGENT, "hubble-metrics"),
}


def namespaces(ctx: ServicesContext) -> list[NamespaceSpec]:
    return []  # kube-system belongs to K3s


def monitor_spec(selector: dict[str, str], port: str) -> dict[str, Any]:
    return {
        "selector": {"matchLabels": selector},
        "namespaceSelector": {"matchNames": [NAMESPACE]},
        # honorLabels as in the chart's own ServiceMonitors: the agent labels its series itself.
        "podMetricsEndpoints": [{"port": port, "path": "/metrics", "interval": "30s",
                                 "honorLabels": True,
                                 # One target per node: name it by the node, not its address.
                                 "relabelings": [{"sourceLabels": ["__meta_kubernetes_pod_node_name"],
                                                  "targetLabel": "node"}]}],
    }


def install(ctx: ServicesContext, spaces: Namespaces, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    """`after`: the monitoring CRDs (and the cluster, which runs Cilium)."""
    return [k8s.apiextensions.CustomResource(
        f"{name}-pod-monitor", api_version="monitoring.coreos.com/v1", kind="PodMonitor",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=NAMESPACE, labels=ctx.labels(name)),
        spec=monitor_spec(selector, port), opts=ctx.opts(after)) for name, (selector, port) in MONITORS.items()]
