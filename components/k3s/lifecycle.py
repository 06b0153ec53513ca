"""Node lifecycle: a node leaves the cluster before its machine goes.

Every path that removes a node (a pool's count goes down, a pool is removed) or replaces it (a change
the provider can only make by recreating the server) runs the node's drain first: cordon, drain with
pod disruption budgets honoured and a bounded timeout, for a server the removal of its etcd member,
the deletion of its Node object; only then is the machine deleted (components/k3s/scripts/drain.sh).

How: one `command.remote.Command` per node, `drain-<node>`, whose `create` does nothing and whose
`delete` is the drain script, run on the node itself (on the first K3s server not listed, for a node listed in
`cluster.unreachableNodes`: its machine is dead, docs/lifecycle.md). It depends on the node's server, so Pulumi
deletes it (runs the drain) before the server, and its trigger is the machine's id, so a server that is
replaced delete-before-replace (the providers' servers are, a node name cannot exist twice) takes its
drain command down first: Pulumi deletes the dependents whose inputs would be replaced before the
replaced resource (the engine's dependent replacements), and `replace_on_changes=["triggers"]` makes
the whole trigger list count.

Why not resource hooks (`pulumi.ResourceHook`, `ResourceHookBinding(before_delete=...)`) for removal: a
delete hook runs on `pulumi destroy` only with `--run-program`, while a delete-time command is recorded with
its script in state, runs on `pulumi destroy` as it is, and its inputs (script, ordering, trigger) are what
the tests check. An in-place resize has no such graph position (a command on the node runs after the
server's update), so resize.py uses update hooks.

Over the public internet (providers/hybrid.py) a drain also depends on the firewall rules that admit its node
alone (`admitted_by`: AWS's), so they are deleted after it; rules naming several nodes are updated earlier, in the
forward pass, and drain leaving nodes with their own hooks first (components/k3s/depart.py).

Ordering inside a pool: each node's drain command depends on the previous node's, so a pool that
shrinks drains its nodes one at a time, highest index first; for the control plane that removes one
etcd member at a time, so etcd keeps its quorum through a shrink.

`pulumi destroy`: the guard ConfigMap depends on every drain command, so destroy deletes it first;
each drain then finds it gone and skips (draining a cluster that is going away only waits), as it
does when the API does not answer.

The drain authenticates as the `adplatform-node-lifecycle` service account (nodes, evictions, the
guard; nothing else): its long-lived token is read once on the first server and kept in state as a
secret, inside the drain command's stdin.
"""

from __future__ import annotations

import base64
from itertools import groupby
from pathlib import Path
from typing import Mapping, Sequence

import pulumi
import pulumi_command as command
import pulumi_kubernetes as k8s
import yaml

from components import yamltext
from components.k3s.config import API_PORT
from components.remote import run_script, shell_command
from components.shell import content_hash, render
from config.model import CONTROL_PLANE
from providers.base import Node

SCRIPTS = Path(__file__).parent / "scripts"
DRAIN_TEMPLATE = SCRIPTS / "drain.sh"
KUBE_LIB = SCRIPTS / "kube-lib.sh"  # the lifecycle account's kubectl and etcd member removal (drain, resize, depart)
TOKEN_TEMPLATE = SCRIPTS / "lifecycle-token.sh"
NAMESPACE = "kube-system"
ACCOUNT = "adplatform-node-lifecycle"
TOKEN_SECRET = f"{ACCOUNT}-token"
GUARD = "adplatform-node-lifecycle-guard"  # ConfigMap: present while the stack exists
DRAIN_TIMEOUT_SECONDS = 600  # kubectl drain --timeout: how long disruption budgets may hold a drain
ETCD_TIMEOUT_SECONDS = 120  # how long K3s may take to remove a server's etcd member
# A node that is not Ready (machine down, or cut off) never confirms its pods' deletion: its drain skips an evicted pod
# once the pod's deletion time is this far past (kubectl drain --skip-wait-for-delete-timeout, kube-lib.sh drain_node),
# instead of waiting out DRAIN_TIMEOUT_SECONDS on every run. A Ready node's drain waits for every pod's graceful end.
UNREPORTED_POD_SKIP_SECONDS = 60
# Pulumi's own deadline for a drain command's delete: drain.sh's worst case, each wait on the wall clock. Its API
# calls take at most REQUEST_TIMEOUT_SECONDS each (kube-lib.sh kube): the guard read and the Node's deletion 3 tries
# 10 s apart (drain.sh API_TRIES, API_RETRY_SECONDS: 80 s each), the node read, cordon, Ready read, member count and
# annotation (100 s), and the etcd wait's last pass past its deadline (a read and a 5 s pause). With the drain and the
# etcd wait: 600 + 120 + 285 s = 16.75 min, within the 21 min below (the SSH connection and K3s' stop take the rest).
REQUEST_TIMEOUT_SECONDS = 20
GUARD_OR_DELETE_SECONDS = 3 * REQUEST_TIMEOUT_SECONDS + 2 * 10
API_CALLS_SECONDS = 2 * GUARD_OR_DELETE_SECONDS + 5 * REQUEST_TIMEOUT_SECONDS + REQUEST_TIMEOUT_SECONDS + 5
DELETE_TIMEOUT = f"{(DRAIN_TIMEOUT_SECONDS + ETCD_TIMEOUT_SECONDS + API_CALLS_SECONDS) // 60 + 5}m"
# The create (and update) of a drain command: read the script from stdin and do nothing with it.
KEEP_SCRIPT = "cat >/dev/null"


def drain_trigger(node: Node) -> pulumi.Output[str]:
    """What replaces (and so first runs) a node's drain: its machine's id, which changes only when the
    machine is replaced; an existing host's private address (a new address is another host). Never the id
    of a remote command: re-running one (a changed firewall script) must not drain the node."""
    if node.machine is not None:
        return node.machine.id
    return pulumi.Output.from_input(node.private_ip)


def initialiser(nodes: Sequence[Node]) -> Node | None:
    """The K3s server that initialised the cluster, if it is still among `nodes`: control-plane-1, by identity, not by
    its place in the Infrastructure (a hybrid cluster's parts may come in another order). It is the only server K3s
    ever started without `server:` (a first deploy creates it first: node_specs puts the control plane first, index 0
    first, and the stack provider's part first), and the last original member a control-plane move removes
    (ControlPlaneMove.removed takes the highest first). Once it is gone no server initialises: a server started
    without `server:` would start a second cluster, so every remaining and new server joins. Members a move adds are
    numbered after `count` (control-plane-<count+1>..), so none of them is ever taken for it."""
    return next((n for n in nodes if n.spec.k3s_role == "server" and n.spec.pool == CONTROL_PLANE
                 and n.spec.index == 0), None)


def servers_in_order(nodes: Sequence[Node]) -> list[Node]:
    """The K3s servers among `nodes`, the initialiser first (where it still exists), the others in their order: the
    order they join in, and the first one is where the kubeconfig is read and cluster-wide scripts run."""
    servers = [n for n in nodes if n.spec.k3s_role == "server"]
    first = initialiser(servers)
    return servers if first is None else [first, *(n for n in servers if n is not first)]


def reachable_server(nodes: Sequence[Node], unreachable: Sequence[str]) -> Node:
    """The first K3s server (servers_in_order) not listed in cluster.unreachableNodes (config/rules.py keeps one out of
    the list): where the drains of unreachable nodes, and the agents' resize and departure scripts, run."""
    return next(n for n in servers_in_order(nodes) if n.name not in unreachable)


def k3s_service(node: Node) -> str:
    return "k3s" if node.spec.k3s_role == "server" else "k3s-agent"


def lifecycle_kubeconfig(server: str, ca: Mapping[str, str], token: str) -> str:
    """The node-lifecycle service account's kubeconfig, which drain.sh and resize.sh write to a 0600 file for their
    run only. `ca`: {"certificate-authority-data": base64} or {"certificate-authority": a file on the node}."""
    return yamltext.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": {"server": server, **ca}}],
        "users": [{"name": "node-lifecycle", "user": {"token": token}}],
        "contexts": [{"name": "node-lifecycle", "context": {"cluster": "cluster", "user": "node-lifecycle"}}],
        "current-context": "node-lifecycle"}, sort_keys=False)


def drain_script(node: Node, api_endpoint: str, ca_data: str, token: str, *, on_node: bool = True) -> str:
    """drain.sh for `node`, run on the node itself, or (`on_node` False: the node is unreachable) on another server."""
    server = f"https://{api_endpoint}:{API_PORT}"
    return render(DRAIN_TEMPLATE, {
        "NODE_NAME": node.hostname,
        "ON_NODE": on_node,
        "ETCD_MEMBER": node.spec.k3s_role == "server",
        "K3S_SERVICE": k3s_service(node),
        "API_SERVER": server,
        "KUBECONFIG_YAML": lifecycle_kubeconfig(server, {"certificate-authority-data": ca_data}, token),
        "DRAIN_TIMEOUT": DRAIN_TIMEOUT_SECONDS,
        "SKIP_WAIT": UNREPORTED_POD_SKIP_SECONDS,
        "ETCD_TIMEOUT": ETCD_TIMEOUT_SECONDS,
        "GUARD_NAMESPACE": NAMESPACE,
        "GUARD_NAME": GUARD,
        "ACCOUNT": ACCOUNT,  # named in its advice when the API refuses the account
        "TOKEN_SECRET": TOKEN_SECRET,
    }, libs=[KUBE_LIB])


def cluster_ca(kubeconfig: str) -> str:
    """The API server's CA (base64 PEM) from K3s' admin kubeconfig."""
    ca = yaml.safe_load(kubeconfig)["clusters"][0]["cluster"]["certificate-authority-data"]
    base64.b64decode(ca, validate=True)  # only base64 reaches the script
    return ca


# What `kubectl drain` and the etcd member removal need (kubectl's drain: list the node's pods, get the
# DaemonSets it ignores, create evictions; cordon/annotate patch the Node, the end deletes it).
RULES = [
    k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["nodes"], verbs=["get", "list", "patch", "delete"]),
    k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["pods"], verbs=["get", "list"]),
    k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["pods/eviction"], verbs=["create"]),
    k8s.rbac.v1.PolicyRuleArgs(api_groups=["apps"], resources=["daemonsets"], verbs=["get"]),
]


class NodeLifecycle(pulumi.ComponentResource):
    """One drain command per node (see the module docstring); `drains` by node name."""

    drains: dict[str, command.remote.Command]

    def __init__(self, name: str, nodes: list[Node], joined: Mapping[str, pulumi.Resource],
                 join_endpoints: Mapping[str, pulumi.Input[str]], kubeconfig: pulumi.Output[str],
                 provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None,
                 admitted_by: Mapping[str, Sequence[pulumi.Resource]] | None = None,
                 unreachable: Sequence[str] = ()):
        """`joined`: each node's K3s install (the drain command exists once the node is in the cluster);
        `join_endpoints`: where each node joined (Infrastructure.join_endpoint_of), the API its drain reaches;
        `admitted_by`: the firewall rules that admit a node alone (Infrastructure.admitted_by), which its drain
        depends on so that Pulumi deletes (runs) the drain before them (components/k3s/depart.py);
        `unreachable`: the nodes whose drain runs on the first server not among them (cluster.unreachableNodes)."""
        super().__init__("adplatform:k3s:NodeLifecycle", name, None, opts)
        first = servers_in_order(nodes)[0]
        token = self._token(first, joined[first.name], provider)
        ca = kubeconfig.apply(cluster_ca)
        runner = reachable_server(nodes, unreachable)
        self.drains = {}
        for _, pool in groupby(nodes, key=lambda n: n.spec.pool):
            previous: list[pulumi.Resource] = []
            for node in pool:
                on = runner if node.name in unreachable else node
                drain = self._drain(node, on, join_endpoints[on.name], ca, token,
                                    [joined[node.name], *previous, *(admitted_by or {}).get(node.name, ()),
                                     *((on.server, joined[on.name]) if on is not node else ())])
                self.drains[node.name] = drain
                previous = [drain]
        for name in unreachable:
            pulumi.log.warn(f"cluster.unreachableNodes: the drain of {name} runs on {runner.name}, and K3s is not "
                            f"stopped on {name}; remove it from the list once its machine is replaced or removed")
        self.guard = k8s.core.v1.ConfigMap(
            "node-lifecycle-guard",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=GUARD, namespace=NAMESPACE),
            data={"purpose": "While this exists, a node leaving the stack is drained first (adplatform "
                             "components/k3s/lifecycle.py); pulumi destroy deletes it before the nodes."},
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=list(self.drains.values())))
        self.register_outputs({})

    def _token(self, first: Node, joined: pulumi.Resource, provider: k8s.Provider) -> pulumi.Output[str]:
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[joined])
        account = k8s.core.v1.ServiceAccount(
            "node-lifecycle", metadata=k8s.meta.v1.ObjectMetaArgs(name=ACCOUNT, namespace=NAMESPACE), opts=k8s_opts)
        role = k8s.rbac.v1.ClusterRole("node-lifecycle", metadata=k8s.meta.v1.ObjectMetaArgs(name=ACCOUNT),
                                       rules=RULES, opts=k8s_opts)
        subject = k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=ACCOUNT, namespace=NAMESPACE)
        binding = k8s.rbac.v1.ClusterRoleBinding(
            "node-lifecycle", metadata=k8s.meta.v1.ObjectMetaArgs(name=ACCOUNT),
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=ACCOUNT),
            subjects=[subject], opts=k8s_opts)
        # The guard is read in kube-system only, by name.
        guard_role = k8s.rbac.v1.Role(
            "node-lifecycle-guard", metadata=k8s.meta.v1.ObjectMetaArgs(name=ACCOUNT, namespace=NAMESPACE),
            rules=[k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["configmaps"], resource_names=[GUARD],
                                              verbs=["get"])], opts=k8s_opts)
        guard_binding = k8s.rbac.v1.RoleBinding(
            "node-lifecycle-guard", metadata=k8s.meta.v1.ObjectMetaArgs(name=ACCOUNT, namespace=NAMESPACE),
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="Role", name=ACCOUNT),
            subjects=[subject], opts=k8s_opts)
        # A long-lived token (the drain may run years later): the token controller fills this Secret.
        secret = k8s.core.v1.Secret(
            "node-lifecycle-token",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=TOKEN_SECRET, namespace=NAMESPACE,
                                                annotations={"kubernetes.io/service-account.name": ACCOUNT}),
            type="kubernetes.io/service-account-token",
            opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=[account])))
        script = render(TOKEN_TEMPLATE, {"NAMESPACE": NAMESPACE, "SECRET_NAME": TOKEN_SECRET})
        # Re-read when the Secret is recreated (a new token).
        trigger = pulumi.Output.concat(content_hash(script), ":", secret.id)
        read = run_script("node-lifecycle-token", first, script, trigger, parent=self, secret=True,
                          depends_on=[secret, role, binding, guard_role, guard_binding])
        return pulumi.Output.secret(read.stdout)

    def _drain(self, node: Node, on: Node, endpoint: pulumi.Input[str], ca: pulumi.Output[str],
               token: pulumi.Output[str], after: list[pulumi.Resource]) -> command.remote.Command:
        """`node`'s drain command, run `on` the node itself or (an unreachable node) on a server. Moving it between
        the two is an update (create's KEEP_SCRIPT runs again), so the next delete runs where it now says."""
        script = pulumi.Output.all(endpoint, ca, token).apply(lambda v: drain_script(node, *v, on_node=on is node))
        return command.remote.Command(
            f"drain-{node.name}",
            connection=on.connection,
            create=KEEP_SCRIPT,
            delete=shell_command(on.connection.user),
            stdin=pulumi.Output.secret(script),  # the token
            triggers=[drain_trigger(node)],
            logging=command.remote.Logging.STDERR,
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[node.server, *after], additional_secret_outputs=["stdout"],
                replace_on_changes=["triggers"], delete_before_replace=True,
                custom_timeouts=pulumi.CustomTimeouts(delete=DELETE_TIMEOUT)),
        )
