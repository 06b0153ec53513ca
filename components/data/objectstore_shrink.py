"""Volume servers leave the in-cluster object store emptied, one at a time, before their StatefulSet shrinks.

SeaweedFS runs one volume server per node of its pools (objectstore.py `shape`), in the chart's StatefulSet
`seaweedfs-volume` with `podManagementPolicy: Parallel` (chart 4.44.0 values.yaml). Lowering those pools' node count
lowers `volume.replicas`, and the release's update makes Kubernetes delete the highest ordinals all at once: with
replication `001` a file's two copies may both sit on servers that go, and the file with them (the claims stay, but
nothing serves them).

So the release carries a `before_update` hook (evacuation_hooks): when the update lowers `volume.replicas` (old and
new inputs are the hook's arguments; any other update does nothing), it empties each server that goes, highest
ordinal first, one at a time: `weed shell` in a Ready master pod runs `volumeServer.evacuate -apply` (which moves
each volume to a server that has no copy of it yet, weed/shell/command_volume_server_evacuate.go at 4.44), checks
with `volume.list` that the server holds no volume any more (retrying when one grew on it meanwhile), and then
`volumeServer.leave` so that nothing grows on it before it goes (scripts/seaweedfs-evacuate.sh). A failure fails the
hook, which aborts the release's update (the engine's rule for `before_*` hooks): every server stays, and the next
`pulumi up` tries again. A server already emptied stays out of the cluster until its pod restarts (`leave` holds until
then; its liveness probe does not restart it: objectstore.py values) but holds nothing: the master no longer knows it,
and the next run finds nothing to empty there (the script waits a few heartbeats first, for a pod that is only
starting), provided no volume of the cluster lacks a copy (a `volume.fix.replication` report): a server unknown
because it went down unemptied may hold the other copy, and the update is aborted instead. `pulumi preview` runs no
hooks.

The node a shrink removes (drained after the release's update) need not host one of the highest ordinals: the hook
also empties every other server on a node this program run no longer has (evacuate_leaving's `keep`), which on
storage bound to that node could not start elsewhere and would take its copies with it.

Over the public internet, the nodes a shrink removes leave before the release updates (the peer rules' departure
hooks, components/k3s/depart.py, drain them in Pulumi's forward pass, before the release): their servers would be
evicted unemptied. So the object store registers a step those hooks run before any drain (departure_step, in
depart.py's BEFORE_DEPARTURE): it reads the live StatefulSet's count and the servers on the leaving nodes
(scripts/seaweedfs-departing.sh) and empties the servers that go, then the others on leaving nodes, as above; the
release's hook then finds them emptied (docs/providers.md).

Where and as whom: like the node hooks (components/k3s/resize.py, depart.py), over SSH on the cluster's first K3s
server (resize.py DRAIN_SERVER) as the node-lifecycle service account, to which `exec_role` grants `pods/exec` on the
master pods of this namespace only (its ClusterRole already reads pods). Each server gets a script run of its own,
bounded by EVACUATE_TIMEOUT_SECONDS: moving a full server's volumes takes a while.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.k3s.depart import BEFORE_DEPARTURE, BeforeDeparture, DepartureStep
from components.k3s.lifecycle import ACCOUNT, KUBE_LIB, NAMESPACE as LIFECYCLE_NAMESPACE
from components.k3s.resize import (DRAIN_SERVER, NODE_NAME, TOKEN, DrainServer, Reach, Runner, _at, _run_on,
                                   on_server_kubeconfig, token_script)
from components.shell import render

EVACUATE_TEMPLATE = Path(__file__).parent / "scripts" / "seaweedfs-evacuate.sh"
DEPARTING_TEMPLATE = Path(__file__).parent / "scripts" / "seaweedfs-departing.sh"
STEP = "emptying the SeaweedFS volume servers that go or whose nodes leave"
VOLUME_PORT = 8080  # the chart's volume.port (values.yaml at 4.44.0): part of the address a server registers with
# How long emptying one server may take: moving up to its whole `storageSize` to the others.
EVACUATE_TIMEOUT_SECONDS = 4 * 3600
SSH_TIMEOUT_SECONDS = EVACUATE_TIMEOUT_SECONDS + 300  # one script: the evacuation, the checks, the connection
HOOK = "seaweedfs-evacuate-volume-servers"


class EvacuateError(Exception):
    """Emptying a leaving volume server failed: the engine aborts the release's update, which keeps every server."""


def _count(inputs: Mapping[str, Any] | None, component: str) -> int | None:
    """`<component>.replicas` of the release's values (None where absent); the engine may hand numbers as floats."""
    value = _at(inputs, ("values", component, "replicas"))
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 0:
        raise EvacuateError(f"the seaweedfs release's {component}.replicas is {value!r}, not a count")
    return int(value)


def leaving_servers(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, release: str) -> list[str]:
    """The volume server pods an update of the release removes, in the order they are emptied: highest first."""
    before, after = _count(old, "volume"), _count(new, "volume")
    if before is None or after is None:
        return []
    return _removed(release, before, after)


def _removed(release: str, before: int, after: int) -> list[str]:
    """The volume server pods a StatefulSet going from `before` to `after` replicas deletes: highest first."""
    return [f"{release}-volume-{i}" for i in range(before - 1, after - 1, -1)]


def _check(names: Sequence[str], token: str, what: str, kinds: str, servers: str) -> None:
    """What a script of ours embeds: Kubernetes names (`kinds` says which) and the node-lifecycle token."""
    bad = [name for name in names if not NODE_NAME.fullmatch(name)]
    if bad:
        raise ValueError(f"volume server {what}: {bad} are not {kinds}")
    if not TOKEN.fullmatch(token):
        raise EvacuateError(f"the node-lifecycle token read to empty the {servers} volume servers is not a service "
                            "account token")


def master_pods(release: str, count: int) -> list[str]:
    return [f"{release}-master-{i}" for i in range(count)]


def evacuate_script(server: str, masters: Sequence[str], namespace: str, release: str, token: str) -> str:
    if not masters:
        raise ValueError("volume server evacuation: no master")
    _check((server, *masters, namespace, release), token, "evacuation", "pod or namespace names", "leaving")
    return render(EVACUATE_TEMPLATE, {
        "NAMESPACE": namespace, "SERVER": server, "MASTERS": " ".join(masters),
        # The address the server registers with: the chart starts it with -ip=<pod>.<release>-volume.<namespace>
        # (templates/volume/volume-statefulset.yaml) and -port=volume.port; `weed shell` names servers so.
        "ADDRESS": f"{server}.{release}-volume.{namespace}:{VOLUME_PORT}",
        "KUBECONFIG_YAML": on_server_kubeconfig(token),
        "EVACUATE_TIMEOUT": EVACUATE_TIMEOUT_SECONDS,
    }, libs=[KUBE_LIB])


async def evacuate_leaving(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, run: Runner,
                           namespace: str, release: str, keep: Sequence[str] = ()) -> list[str]:
    """The hook body: empty each server the update removes, then (with `keep`, the Node names this program run has)
    each other server on a node that is not among them, one script run each; the servers emptied.

    A lower count comes with fewer nodes, and the node that goes (its drain runs after this update) need not host
    one of the highest ordinals: its server's pod is evicted, and on storage bound to its node (bare metal's
    local-path, a pool over several locations' zonal volumes) it cannot start elsewhere, its copies gone with the
    node. Emptied first, it holds nothing when its node goes (docs/data-plane.md says how it starts again)."""
    leaving = leaving_servers(old, new, release)
    if not leaving:
        return []
    masters = master_pods(release, _count(old, "master") or 1)
    done: list[str] = []
    try:
        token = (await run(token_script())).strip()
        if keep:
            report = await run(departing_script(namespace, release, None, keep, token))
            leaving = departing_servers(report, _count(new, "volume") or 0, release) or leaving
        for server in leaving:
            await run(evacuate_script(server, masters, namespace, release, token))
            done.append(server)
    except Exception as e:
        left = [s for s in leaving if s not in done]
        raise EvacuateError(
            f"the object store's update that removes the volume servers {', '.join(leaving)} is aborted, so every "
            f"server is kept: emptying {left[0]} first failed: {e}") from e
    return done


def evacuation_hooks(private_key: pulumi.Input[str], namespace: str, release: str, keep: Sequence[str] = (),
                     drain_server: DrainServer = DRAIN_SERVER) -> pulumi.ResourceHookBinding:
    """The hook of the SeaweedFS release (see the module docstring); its scripts run on `drain_server`. `keep`: the
    Node names of this program run's nodes (evacuate_leaving)."""
    def where(_outputs: Mapping[str, Any] | None) -> Reach:
        return drain_server.reach("empty the leaving SeaweedFS volume servers from",
                                  "and empty them (weed shell volumeServer.evacuate) before lowering their count")

    async def before(args: pulumi.ResourceHookArgs) -> None:
        await evacuate_leaving(args.old_inputs, args.new_inputs,
                               _run_on(where, private_key, args.old_outputs, SSH_TIMEOUT_SECONDS), namespace, release,
                               keep)

    return pulumi.ResourceHookBinding(before_update=[pulumi.ResourceHook(HOOK, before)])


# --- before nodes leave a cluster over the internet ---------------------------------------------------------

def departing_script(namespace: str, release: str, addresses: Sequence[str] | None, keep: Sequence[str],
                     token: str) -> str:
    """seaweedfs-departing.sh: the live volume server count and the servers on leaving nodes: those with `addresses`
    (not in `keep`), or, with `addresses` None, every node not in `keep`."""
    for address in addresses or ():
        ipaddress.ip_address(address)  # only addresses reach the script
    _check((namespace, release, *keep), token, "departure", "namespace, release or node names", "departing")
    return render(DEPARTING_TEMPLATE, {
        "NAMESPACE": namespace, "STATEFULSET": f"{release}-volume",
        "SELECTOR": f"app.kubernetes.io/instance={release},app.kubernetes.io/component=volume",
        "LEAVING_BY": "absence" if addresses is None else "addresses", "ADDRESSES": " ".join(addresses or ()),
        "KEEP": " ".join(keep), "KUBECONFIG_YAML": on_server_kubeconfig(token),
    }, libs=[KUBE_LIB])


def departing_servers(report: str, wanted: int, release: str) -> list[str]:
    """The servers to empty before nodes leave, in order: those the shrink deletes (the live count down to `wanted`,
    highest first, as the release's hook would), then the others on leaving nodes, highest first. All of them leave
    the master's topology one after the other (a left server is no target: the master forgot it), so a copy moved
    onto one still to be emptied moves on with it, and the last ones move only onto servers that stay on nodes that
    stay."""
    live, on_leaving = None, set()
    for line in report.splitlines():
        mark, _, value = line.partition("\t")
        if mark == "replicas":
            if not value.isdigit():
                raise EvacuateError(f"the live {release}-volume StatefulSet has replicas {value!r}, not a count")
            live = int(value)
        elif mark == "on":
            if not NODE_NAME.fullmatch(value):
                raise EvacuateError(f"{value!r} is not a volume server pod name")
            on_leaving.add(value)
    going = _removed(release, live or 0, wanted)

    def ordinal(pod: str) -> int:
        tail = pod.rsplit("-", 1)[-1]
        return int(tail) if tail.isdigit() else -1
    return going + sorted(on_leaving - set(going), key=ordinal, reverse=True)


def departure_step(namespace: str, release: str, wanted: int, masters: int) -> DepartureStep:
    """The step the departure hooks run before draining any node (components/k3s/depart.py BeforeDeparture): empty,
    one script run each, the servers departing_servers names. Draining first would evict the servers of leaving nodes
    (their pods then stay Pending: every other node hosts one) before anything moved their copies, and the release's
    hook could no longer reach them."""
    async def step(addresses: Sequence[str], keep: Sequence[str], token: str, run: Runner) -> None:
        servers = departing_servers(await run(departing_script(namespace, release, addresses, keep, token)),
                                    wanted, release)
        for server in servers:
            pulumi.log.info(f"emptying SeaweedFS volume server {server} before nodes leave")
            await run(evacuate_script(server, master_pods(release, masters), namespace, release, token))
    return step


def empty_before_departure(namespace: str, release: str, wanted: int, masters: int,
                           steps: BeforeDeparture = BEFORE_DEPARTURE) -> None:
    """Register departure_step for this program run (only clusters over the internet have departure hooks)."""
    steps.add(STEP, departure_step(namespace, release, wanted, masters), SSH_TIMEOUT_SECONDS)


def exec_role(namespace: str, release: str, masters: int,
              opts: pulumi.ResourceOptions) -> list[pulumi.Resource]:
    """`pods/exec` on the master pods of `namespace` for the node-lifecycle account, which the hook's script uses
    (and `get` on the volume StatefulSet, which departing_script reads):
    kubectl's exec is a WebSocket upgrade (an HTTP GET) authorized as `get`, and from Kubernetes 1.35 also as `create`
    (KEP-4006, AuthorizePodWebsocketUpgradeCreatePermission); SPDY exec as `create`."""
    role = k8s.rbac.v1.Role(
        "seaweedfs-evacuate",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=ACCOUNT, namespace=namespace),
        rules=[k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["pods/exec"],
                                          resource_names=master_pods(release, masters), verbs=["get", "create"]),
               # departing_script reads the live volume server count before nodes leave.
               k8s.rbac.v1.PolicyRuleArgs(api_groups=["apps"], resources=["statefulsets"],
                                          resource_names=[f"{release}-volume"], verbs=["get"])],
        opts=opts)
    binding = k8s.rbac.v1.RoleBinding(
        "seaweedfs-evacuate",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=ACCOUNT, namespace=namespace),
        role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="Role", name=ACCOUNT),
        subjects=[k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=ACCOUNT, namespace=LIFECYCLE_NAMESPACE)],
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[role])))
    return [role, binding]
