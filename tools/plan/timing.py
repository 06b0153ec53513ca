"""Estimated duration of a first `pulumi up`: the critical path of the plan's dependency graph.

Each resource takes a typical create time from the duration model below; a resource starts when
everything it depends on (its dependencies and its provider) has finished; a component finishes
when its last child does. The longest weighted chain is the critical path: no amount of parallelism
deploys the stack faster. The serial time (the sum of all durations) divided by the critical path is
the parallelism the graph allows. Linear in the number of resources and edges.

The model is deliberately coarse: it is for comparing plans (what did this change do to the deploy
time?) and for naming the chain to shorten, not a promise to the minute. Values are seconds: typical
provisioning times of the cloud objects, the waits our scripts do (cloud-init, apt lock, K3s
/readyz) and Helm's wait for ready workloads. They have not been calibrated against a real
`pulumi up` of this program yet; when you run one, compare with `pulumi up`'s per-resource
timings and adjust the numbers here (the plan-diff then shows every stack's new estimate).
"""

from __future__ import annotations

from typing import Any

# By resource type. Cloud API objects are quick; servers wait until they run; Helm waits for ready.
DURATIONS: dict[str, int] = {
    # Uncalibrated estimates (module docstring), each with its reasoning. Hetzner Cloud actions (create,
    # attach) are polled by the provider until done; plain API objects are one synchronous call.
    "hcloud:index/server:Server": 45,           # create action + boot to status "running" (the provider waits)
    "hcloud:index/loadBalancer:LoadBalancer": 15,  # create action, polled to completion
    "hcloud:index/loadBalancerNetwork:LoadBalancerNetwork": 10,  # attach_to_network action, polled
    "hcloud:index/loadBalancerService:LoadBalancerService": 5,  # add_service action
    "hcloud:index/loadBalancerTarget:LoadBalancerTarget": 5,  # add_target action
    "hcloud:index/network:Network": 2,          # one synchronous call, no action
    "hcloud:index/networkSubnet:NetworkSubnet": 3,  # add_subnet action on the network
    "hcloud:index/firewall:Firewall": 3,        # create + apply_to_resources actions
    "hcloud:index/placementGroup:PlacementGroup": 1,  # one synchronous call
    "hcloud:index/sshKey:SshKey": 1,            # one synchronous call
    "random:index/randomPassword:RandomPassword": 0,  # computed by the provider locally, no API
    "kubernetes:helm.sh/v3:Release": 90,        # install + Helm's wait: image pulls + readiness of an operator
    "kubernetes:yaml/v2:ConfigFile": 20,        # a release manifest: CRDs established, workloads ready
}
# Remote commands by name prefix (the scripts wait for very different things).
COMMANDS: tuple[tuple[str, int], ...] = (
    ("tune-", 40),        # cloud-init wait, apt lock wait, sysctl + systemd units
    ("k3s-", 80),         # installer download, K3s start, /readyz wait
    ("kubeconfig", 3),    # SSH connect + cat of one file
)
# Helm releases by chart, where a chart is far from the default.
CHARTS: dict[str, int] = {
    "cilium": 150,        # agents on every node + operator; nodes turn Ready only after it
    "hcloud-cloud-controller-manager": 45,  # one small host-network Deployment: no CNI wait, one image
    "openbao": 150,       # OrderedReady: three servers one after another, each joining raft and unsealing
    "vault": 150,         # as openbao (its upstream): the same OrderedReady raft join
    "gitlab": 600,        # database migrations on a first install, then webservice/Sidekiq start
    "kube-prometheus-stack": 180,  # operator, then Prometheus x2 and Alertmanager x3 with volumes
    "airflow": 300,       # the migration job, then scheduler/API server
}
HELM_CHARTS = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")
DEFAULT_COMMAND = 30      # another script of ours: SSH connect + a short idempotent script
DEFAULT_KUBERNETES = 3    # a plain Kubernetes object: one API call, no readiness to wait for
DEFAULT_CUSTOM = 10       # any other cloud resource: a create call plus a short action poll


def duration(resource: dict[str, Any]) -> int:
    type_ = resource["type"]
    if type_ in HELM_CHARTS:  # also helm.sh/v4 Chart: a component whose children mocks never see
        return CHARTS.get(str(resource["inputs"].get("chart")), DURATIONS["kubernetes:helm.sh/v3:Release"])
    if not resource["custom"] or type_.startswith("pulumi:providers:"):
        return 0
    if type_ == "command:remote:Command":
        return next((s for prefix, s in COMMANDS if resource["name"].startswith(prefix)), DEFAULT_COMMAND)
    if type_ in DURATIONS:
        return DURATIONS[type_]
    return DEFAULT_KUBERNETES if type_.startswith("kubernetes:") else DEFAULT_CUSTOM


def _provider_urn(reference: str) -> str:
    return reference.rsplit("::", 1)[0] if reference else ""


def schedule(plan: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, int], dict[str, str | None]]:
    """(resources by urn, finish second of each, the predecessor it waited on last) of a first deploy."""
    resources = {r["urn"]: r for r in plan["resources"]}
    waits_for: dict[str, list[str]] = {urn: [] for urn in resources}
    for r in plan["resources"]:
        preds = [*r["dependencies"], _provider_urn(r["provider"])]
        waits_for[r["urn"]] += [p for p in preds if p in resources]
        if r["parent"] in resources and not resources[r["parent"]]["custom"]:
            waits_for[r["parent"]].append(r["urn"])  # a component is done when its children are

    finish: dict[str, int] = {}
    via: dict[str, str | None] = {}
    for urn in _topological(waits_for):
        before = max(waits_for[urn], key=lambda p: finish[p], default=None)
        via[urn] = before
        finish[urn] = (finish[before] if before else 0) + duration(resources[urn])
    return resources, finish, via


def estimate(plan: dict[str, Any]) -> dict[str, Any]:
    resources, finish, via = schedule(plan)
    serial = sum(duration(r) for r in resources.values())
    if not finish:
        return {"criticalPathSeconds": 0, "serialSeconds": 0, "parallelism": 1.0, "criticalPath": []}
    chain = [{"name": resources[urn]["name"], "type": resources[urn]["type"], "seconds": duration(resources[urn])}
             for urn in critical_chain(resources, finish, via)]
    critical = max(finish.values())
    return {"criticalPathSeconds": critical, "serialSeconds": serial,
            "parallelism": round(serial / critical, 1) if critical else 1.0, "criticalPath": chain}


def critical_chain(resources: dict[str, dict[str, Any]], finish: dict[str, int],
                   via: dict[str, str | None]) -> list[str]:
    """Urns of the resources that take time on the longest chain, first to last."""
    end: str | None = max(finish, key=lambda u: finish[u]) if finish else None
    chain = []
    while end is not None:
        if duration(resources[end]):
            chain.append(end)
        end = via[end]
    return chain[::-1]


def _topological(waits_for: dict[str, list[str]]) -> list[str]:
    """Kahn's algorithm; a cycle would be a program bug, so it fails loudly."""
    pending = {urn: len(preds) for urn, preds in waits_for.items()}
    unblocks: dict[str, list[str]] = {urn: [] for urn in waits_for}
    for urn, preds in waits_for.items():
        for pred in preds:
            unblocks[pred].append(urn)
    ready = [urn for urn, n in pending.items() if n == 0]
    order = []
    while ready:
        urn = ready.pop()
        order.append(urn)
        for nxt in unblocks[urn]:
            pending[nxt] -= 1
            if pending[nxt] == 0:
                ready.append(nxt)
    if len(order) != len(waits_for):
        raise ValueError(f"dependency cycle among {sorted(u for u, n in pending.items() if n)[:5]}")
    return order


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
