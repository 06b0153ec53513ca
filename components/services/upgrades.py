"""K3s upgrades without downtime: the system-upgrade-controller and one Plan per node kind.

Changing `cluster.k3sVersion` changes the Plans' version; the controller then upgrades the servers
one at a time (cordoned, etcd keeps its quorum) and, once they are done, the agents a few at a time
(drained, so PodDisruptionBudgets hold). The install scripts never re-run the installer on a node
that already runs K3s (components/k3s/scripts/install.sh), so the Plans are the only upgrade path.

The controller comes from its release manifests (there is no upstream chart). They create the
`system-upgrade` namespace themselves, labelled `enforce: privileged` (the upgrade jobs run
privileged in the host's namespaces), so it is not declared as a NamespaceSpec: two owners of one
Namespace would delete it under each other. Its default-deny policies are still ours, built by
namespaces.policies from a spec, and the controller container gets requests and limits through a
transform of the manifest's Deployment.
"""

from __future__ import annotations

from typing import Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.charts import SYSTEM_UPGRADE_CONTROLLER, SYSTEM_UPGRADE_JOB_KUBECTL_IMAGE
from components.scheduling import toleration
from components.services.context import ServicesContext
from components.services.namespaces import NamespaceSpec, Namespaces, policies
from config.model import CONTROL_PLANE_TAINT
from config.services import WEEKDAYS, Reboots

NAMESPACE = "system-upgrade"
# Created by the release manifest, bound there to its ClusterRoles system-upgrade-controller and
# system-upgrade-controller-drainer (v0.20.1 manifests/clusterrolebinding.yaml).
SERVICE_ACCOUNT = "system-upgrade"
SERVER_PLAN = "server-plan"
AGENT_PLAN = "agent-plan"
UPGRADE_IMAGE = "rancher/k3s-upgrade"
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
# The manifest's ConfigMap the controller reads its environment from (envFrom), once, when it starts (v0.20.1
# manifests/system-upgrade-controller.yaml default-controller-env; pkg/upgrade/job/job.go KubectlImage).
CONTROLLER_ENV = "default-controller-env"
KUBECTL_IMAGE_ANNOTATION = "adplatform.io/job-kubectl-image"  # on the pod template: a new image restarts the controller
CONTROLLER_RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
# Agents: how long eviction may wait on PodDisruptionBudgets before the drain gives up (and the job
# retries): long enough for a database replica to hand over, short of the job's 900 s deadline.
DRAIN_TIMEOUT = "600s"


def server_window(reboots: Reboots) -> dict[str, Any] | None:
    """The server plan's window (Plan spec.window): outside the reboot window (config/services.py
    Reboots.upgrade_window says why and how far), every day, in its time zone; None (any time) without reboots. The
    controller reads it with kured's own timewindow package (v0.20.1 TimeWindowSpec.Contains), so both agree on what
    a window over midnight is."""
    if not reboots.enabled:
        return None
    start, end = reboots.upgrade_window
    return {"days": list(WEEKDAYS), "startTime": start, "endTime": end, "timeZone": reboots.time_zone}


def namespaces(ctx: ServicesContext) -> list[NamespaceSpec]:
    return []  # the release manifest owns the namespace (see the module docstring)


def policy_spec() -> NamespaceSpec:
    """Only the Kubernetes API: the upgrade jobs run on the host network, the controller watches Plans."""
    return NamespaceSpec(name=NAMESPACE, pss="privileged",
                         why="K3s upgrade jobs replace the k3s binary on the host (privileged, host PID)")


def image_tag(k3s_version: str) -> str:
    """The k3s-upgrade image tag of a K3s release: '+' is not allowed in tags (v1.36.4+k3s1 -> v1.36.4-k3s1)."""
    return k3s_version.replace("+", "-")


def agent_taints(ctx: ServicesContext) -> list[str]:
    """Every taint an agent pool's nodes carry (dedicated roles and custom taints), each once; autoscaled pools'
    included, whose nodes may all be the autoscaler's (min 0): they too are upgraded and rebooted."""
    return sorted({t for pool in ctx.cluster.node_pools for t in pool.node_taints})


def server_plan(version: str, reboots: Reboots) -> dict[str, Any]:
    window = server_window(reboots)
    return {
        **({"window": window} if window else {}),
        "concurrency": 1,  # one etcd member down at a time keeps the quorum
        "cordon": True,
        "nodeSelector": {"matchExpressions": [{"key": CONTROL_PLANE_LABEL, "operator": "In", "values": ["true"]}]},
        "serviceAccountName": SERVICE_ACCOUNT,
        "tolerations": [toleration(CONTROL_PLANE_TAINT)],
        "upgrade": {"image": f"{UPGRADE_IMAGE}:{image_tag(version)}"},
        "version": version,
    }


def agent_plan(version: str, concurrency: int, taints: Sequence[str]) -> dict[str, Any]:
    image = f"{UPGRADE_IMAGE}:{image_tag(version)}"
    return {
        "concurrency": concurrency,
        "nodeSelector": {"matchExpressions": [{"key": CONTROL_PLANE_LABEL, "operator": "DoesNotExist"}]},
        "serviceAccountName": SERVICE_ACCOUNT,
        # Waits until the server plan is complete: agents never run a newer K3s than the servers.
        "prepare": {"image": image, "args": ["prepare", SERVER_PLAN]},
        # Eviction honours PodDisruptionBudgets; emptyDir data is scratch by definition.
        "drain": {"force": True, "ignoreDaemonSets": True, "deleteEmptydirData": True, "timeout": DRAIN_TIMEOUT},
        "tolerations": [toleration(t) for t in taints],
        "upgrade": {"image": image},
        "version": version,
    }


def resource_limits(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
    """Requests and a memory limit on the controller container, which the manifest leaves unset."""
    props = args.props
    if args.type_ != "kubernetes:apps/v1:Deployment" or (props.get("metadata") or {}).get("name") != \
            "system-upgrade-controller":
        return None
    spec = props["spec"]["template"]["spec"]
    containers = [{**c, "resources": CONTROLLER_RESOURCES} for c in spec["containers"]]
    template = {**props["spec"]["template"], "spec": {**spec, "containers": containers}}
    return pulumi.ResourceTransformResult(props={**props, "spec": {**props["spec"], "template": template}},
                                          opts=args.opts)


def job_kubectl_image(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
    """The upgrade jobs' kubectl (charts.SYSTEM_UPGRADE_JOB_KUBECTL_IMAGE) in the controller's environment, and on
    its pod template, since the controller reads that environment only when it starts."""
    props = args.props
    name = (props.get("metadata") or {}).get("name")
    if args.type_ == "kubernetes:core/v1:ConfigMap" and name == CONTROLLER_ENV:
        data = {**(props.get("data") or {}), "SYSTEM_UPGRADE_JOB_KUBECTL_IMAGE": SYSTEM_UPGRADE_JOB_KUBECTL_IMAGE}
        return pulumi.ResourceTransformResult(props={**props, "data": data}, opts=args.opts)
    if args.type_ == "kubernetes:apps/v1:Deployment" and name == "system-upgrade-controller":
        template = props["spec"]["template"]
        metadata = template.get("metadata") or {}
        annotations = {**(metadata.get("annotations") or {}), KUBECTL_IMAGE_ANNOTATION: SYSTEM_UPGRADE_JOB_KUBECTL_IMAGE}
        template = {**template, "metadata": {**metadata, "annotations": annotations}}
        return pulumi.ResourceTransformResult(props={**props, "spec": {**props["spec"], "template": template}},
                                              opts=args.opts)
    return None


def install(ctx: ServicesContext, spaces: Namespaces, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    crds_url, controller_url = SYSTEM_UPGRADE_CONTROLLER.urls
    crds = k8s.yaml.v2.ConfigFile("system-upgrade-controller-crds", file=crds_url, opts=ctx.opts(after))
    controller = k8s.yaml.v2.ConfigFile(
        "system-upgrade-controller", file=controller_url,
        opts=ctx.opts([*after, crds], transforms=[resource_limits, job_kubectl_image]))
    netpols = [k8s.networking.v1.NetworkPolicy(
        f"netpol-{NAMESPACE}-{name}", metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=NAMESPACE),
        spec=spec, opts=ctx.opts([controller]))
        for name, spec in policies(policy_spec(), ctx.cluster.subnet_cidr).items()]

    version = ctx.cluster.k3s_version
    plans = [_plan(ctx, SERVER_PLAN, server_plan(version, ctx.settings.reboots), [crds, controller])]
    plans.append(_plan(ctx, AGENT_PLAN, agent_plan(version, ctx.settings.upgrades.agent_concurrency,
                                                   agent_taints(ctx)), [crds, controller, plans[0]]))
    return [crds, controller, *netpols, *plans]


def _plan(ctx: ServicesContext, name: str, spec: dict[str, Any],
          depends_on: Sequence[pulumi.Resource]) -> k8s.apiextensions.CustomResource:
    return k8s.apiextensions.CustomResource(
        f"upgrade-plan-{name}", api_version="upgrade.cattle.io/v1", kind="Plan",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=NAMESPACE, labels=ctx.labels("k3s-upgrade")),
        spec=spec, opts=ctx.opts(depends_on))
