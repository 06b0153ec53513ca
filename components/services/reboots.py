"""Kernel-update reboots: kured drains and reboots, one node at a time, the nodes that need it.

unattended-upgrades installs kernel and library updates on every node and writes /var/run/reboot-required
when one only takes effect after a reboot (Ubuntu's update-notifier hook). kured, a DaemonSet on every
node, watches that file and, inside the maintenance window of `clusterServices.reboots` (days, start, end,
time zone), takes the cluster-wide lock, cordons and drains its node, reboots it, and uncordons it and
releases the lock once it is back.

- **One node at a time, never two database nodes.** The lock is a single annotation on kured's own
  DaemonSet, held by at most `concurrency` nodes; with concurrency 1 exactly one node of the whole cluster
  (control plane, general and database pools alike) is drained or rebooting at any moment, so two
  database nodes (two replicas of one store) can never be down together through kured.
  No lock TTL: a node that does not come back keeps the lock, and nothing else reboots until someone looks.
  The lock is held a few minutes past the uncordon, so a store's replica on the rebooted node can rejoin
  before the next node's drain asks its disruption budget.
- **Drains honour PodDisruptionBudgets** (kured drains by eviction, as `kubectl drain`; its built-in
  `Force` only lets it delete pods no controller owns), bounded by the node lifecycle's drain timeout. A
  drain that times out is not forced: kured uncordons the node, releases the lock and tries again in a
  later period, inside the window.
- **Every node**: the DaemonSet tolerates the control plane's taint and every pool's taints, so database
  nodes are rebooted too (without a toleration a tainted node would never get kured, and never reboot).
- **Pod Security `privileged`**: kured runs in the host's PID namespace and enters PID 1's mount namespace
  to run `systemctl reboot`. Its network: the Kubernetes API only (and Prometheus scraping its metrics).

Metrics: the chart's ServiceMonitor (`kured_reboot_required` per node), created after the Prometheus
Operator CRDs, which this layer installs before any release that renders a monitor (monitoring_crds.py).
"""

from __future__ import annotations

from typing import Any, Sequence

import pulumi

from components.charts import KURED, KURED_IMAGE
from components.helm import release
from components.k3s.lifecycle import DRAIN_TIMEOUT_SECONDS
from components.scheduling import toleration
from components.services.context import ServicesContext
from components.services.namespaces import NamespaceSpec, Namespaces, prometheus_peer
from components.services.upgrades import agent_taints
from config.services import Reboots

NAMESPACE = KURED.namespace
METRICS_PORT = 8080  # the chart's configuration.metricsPort (the `metrics` container port)
SENTINEL = "/var/run/reboot-required"  # written by Ubuntu's unattended-upgrades when an update needs a reboot
# Nodes rebooted at once: the single cluster lock (see the module docstring). Never raise it: it is what keeps
# two database nodes from going down together.
CONCURRENCY = 1
PERIOD = "5m"  # how often each node checks the sentinel and the window (kured's default, 1h, wastes a window)
LOCK_RELEASE_DELAY = "5m"  # hold the lock after the uncordon: the rebooted node's replicas rejoin first
RESOURCES = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}}


def namespaces(ctx: ServicesContext) -> list[NamespaceSpec]:
    if not ctx.settings.reboots.enabled:
        return []
    return [NamespaceSpec(
        name=NAMESPACE, pss="privileged", same_namespace=False,  # the pods meet only through the API's lock
        why="kured runs in the host PID namespace, privileged, to reboot its node (systemctl in PID 1's mounts)",
        ingress_from=(prometheus_peer((METRICS_PORT,)),))]


def node_taints(ctx: ServicesContext) -> list[str]:
    """Every taint a node of the cluster carries: the control plane's and each pool's, each once."""
    return sorted({*ctx.cluster.control_plane.taints, *agent_taints(ctx)})


def configuration(reboots: Reboots) -> dict[str, Any]:
    """The chart's `configuration` (kured's flags), kubereboot/charts kured-6.1.0 values.yaml."""
    return {
        "rebootSentinel": SENTINEL,
        "useRebootSentinelHostPath": True,  # mount the sentinel's directory read-only
        "rebootDays": list(reboots.days),
        "startTime": reboots.start,
        "endTime": reboots.end,
        "timeZone": reboots.time_zone,
        "period": PERIOD,
        "concurrency": CONCURRENCY,
        "lockTtl": 0,  # never expire the lock (see the module docstring)
        "lockReleaseDelay": LOCK_RELEASE_DELAY,
        "drainTimeout": f"{DRAIN_TIMEOUT_SECONDS}s",
        "forceReboot": False,  # a drain that fails (a budget holds) is retried, never forced
        "metricsPort": METRICS_PORT,
    }


def values(ctx: ServicesContext) -> dict[str, Any]:
    repository, tag = KURED_IMAGE
    return {
        "image": {"repository": repository, "tag": tag},
        "configuration": configuration(ctx.settings.reboots),
        "tolerations": [toleration(t) for t in node_taints(ctx)],
        "resources": RESOURCES,
        "metrics": {"create": True},
    }


def install(ctx: ServicesContext, spaces: Namespaces, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    """`after`: the cluster and the monitoring CRDs (the chart renders a ServiceMonitor)."""
    if not ctx.settings.reboots.enabled:
        return []
    return [release("kured", KURED, values(ctx), ctx.opts([*after, *spaces.ready_for([NAMESPACE])]),
                    namespace=NAMESPACE, create_namespace=False)]
