"""The K3s cluster: HA servers with embedded etcd, agent pools, Cilium, the kubeconfig and provider.

Order: every node is tuned, then stages K3s (downloads the installer and binary, starts nothing), in
parallel; the initialising server (control-plane-1, lifecycle.py initialiser) initialises etcd; the other servers
join one at a time (etcd admits one learner at a time); agents join in parallel once the first server answers,
alongside the other servers' joins (once a control-plane move prepares its flip, one at a time after the last
server: the flip reconfigures every agent). Once control-plane-1 is gone (a control-plane move removed it) every server
joins. A join only writes the node's configuration and starts K3s: the downloads stay out of
the serial chain. Cilium and the provider's add-ons are installed through
the kubeconfig of the first server (lifecycle.py servers_in_order).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pulumi
import pulumi_command as command
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.charts import CILIUM
from components.helm import release
from components.host import HostTuning
from components.k3s.cilium import cilium_values, gateway_api_crds
from components.k3s.config import (API_PORT, ApiServerOidc, EtcdBackup, NodeAddresses, cpu_manager_policy, dump,
                                   etcd_restore_commands, etcd_snapshot_config, install_script_url, node_config,
                                   server_files, server_url)
from components.k3s.lifecycle import NodeLifecycle, initialiser, reachable_server, servers_in_order
from components.k3s.resize import DRAIN_SERVER
from components.remote import run_script
from components.shell import content_hash, render
from config.model import Cluster
from providers.base import Infrastructure, Node, NodeSpec

SCRIPTS = Path(__file__).parent / "scripts"
TEMPLATE = SCRIPTS / "install.sh"
STAGE_TEMPLATE = SCRIPTS / "stage.sh"
K3S_LIB = SCRIPTS / "k3s-lib.sh"  # the staging helpers both scripts share
# Where staging keeps the pinned installer (root only): the join re-runs it without downloading.
STAGED_INSTALLER = "/var/lib/adplatform/k3s/install.sh"
REDACTED = "<redacted>"
# Stands for the K3s version in the trigger: a version change alone must not re-run the script
# (the system-upgrade-controller rolls running nodes; new nodes install the configured version).
ANY_VERSION = "<configured-version>"


def _staging(spec: NodeSpec, node_name: str, version: str, installer_sha256: str | None) -> dict[str, str]:
    """What staging needs (k3s-lib.sh): no secret. `installer_sha256`: cluster.k3sInstallerSha256 ("": unchecked)."""
    return {"K3S_VERSION": version, "K3S_ROLE": spec.k3s_role, "NODE_NAME": node_name,
            "INSTALL_SCRIPT_URL": install_script_url(version), "STAGED_INSTALLER": STAGED_INSTALLER,
            "INSTALLER_SHA256": installer_sha256 or ""}


def stage_script(spec: NodeSpec, node_name: str, version: str, installer_sha256: str | None = None) -> str:
    """The K3s staging of one node over SSH (K3sCluster): download, verify, write the unit, start nothing."""
    return render(STAGE_TEMPLATE, _staging(spec, node_name, version, installer_sha256), libs=[K3S_LIB])


def install_script(spec: NodeSpec, node_name: str, version: str, config_yaml: str,
                   existing_cluster_probe: str = "", installer_sha256: str | None = None,
                   join_config_yaml: str = "", *, join_url: str, agent_token: str) -> str:
    """The K3s install of one node, over SSH (K3sCluster) or at first boot (userdata.py), which stages K3s first
    where stage_script did not. `node_name` is only logged (the node's name is in its config).
    The initialising server's (`existing_cluster_probe` set): `join_config_yaml` is its config as a joining server,
    which it takes when it has no etcd data while the cluster already answers at the probe (its machine replaced).
    `join_url`: where a joining node joins (server_url; "" for the initialising server), and where it reads the
    servers' version with `agent_token` (k3s-lib.sh join_version): it never starts a kubelet newer than them."""
    if bool(existing_cluster_probe) != bool(join_config_yaml):
        raise ValueError("the initialising server's install needs both the cluster probe and its join config")
    return render(TEMPLATE, {
        "EXISTING_CLUSTER_PROBE": existing_cluster_probe,
        "JOIN_URL": join_url,
        "AGENT_TOKEN": agent_token,
        # Only the initialising server's script carries it (read only after its probe): every other node's script,
        # and so its K3s install's trigger, stays as it was.
        **({"K3S_JOIN_CONFIG": join_config_yaml} if existing_cluster_probe else {}),
        **_staging(spec, node_name, version, installer_sha256),
        "CPU_MANAGER_POLICY": cpu_manager_policy(spec),
        "K3S_CONFIG": config_yaml,
        **server_files(spec.k3s_role),
    }, libs=[K3S_LIB])


# The Kubernetes provider's cluster identity (its `clusterIdentifier`), the same in every stack and every config.
# pulumi-kubernetes otherwise plans a replacement of the provider, and so of every Kubernetes resource of the stack
# (each deleted before it is created again under its fixed name; a protected one fails the preview), whenever the
# kubeconfig is unknown in a preview: here whenever control-plane-1's K3s install is re-run (its trigger holds the
# etcd S3 keys, the OIDC flags, the tls-san of every server), as the kubeconfig is read after it; and whenever the
# kubeconfig's active cluster changes, its server address included (DiffConfig, provider/pkg/provider/provider.go).
# With the identifier set and unchanged it replaces nothing, only a changed identifier replaces; adding it is an
# update only where the kubeconfig is known and unchanged (docs/lifecycle.md, "The Kubernetes provider keeps
# its cluster").
# A constant, not the stack's name: the identifier is only ever compared with this provider's previous value in the
# same stack's state, so a name adds nothing, and `pulumi stack rename` would then replace every Kubernetes resource.
# Nothing the control plane's config holds may enter it (unknown in a preview, a change replaces everything).
# Its value is the one control-plane moves have set since `move` came (stacks mid-move keep it unchanged).
# The price: a cluster created anew under the same state (every server lost) is not detected (docs say so).
CLUSTER_IDENTIFIER = "adplatform-k3s"


def agents_in_order(agents: Sequence[Node], pools: Sequence[str]) -> list[Node]:
    """The agents pool by pool in the config's order (`cluster.pools`), each pool's by index: an order that stays the
    same when the flip puts another provider's part first (the order of infra.agents follows the parts)."""
    rank = {pool: i for i, pool in enumerate(pools)}
    return sorted(agents, key=lambda n: (rank.get(n.spec.pool, len(rank)), n.spec.pool, n.spec.index))


class K3sCluster(pulumi.ComponentResource):
    kubeconfig: pulumi.Output[str]
    agent_token: pulumi.Output[str]  # secret
    provider: k8s.Provider
    api_endpoint: pulumi.Output[str]
    ready: list[pulumi.Resource]
    etcd_restore: list[str] | None  # the etcd disaster-recovery runbook (no secrets); None without backups

    def __init__(self, name: str, cluster: Cluster, infra: Infrastructure, tuning: HostTuning,
                 opts: pulumi.ResourceOptions | None = None, etcd_backup: EtcdBackup | None = None,
                 protect: bool = False, oidc: ApiServerOidc | None = None):
        """`protect`: production profiles; the join tokens are then protected (a new token locks every
        node out of a running cluster until each is reconfigured)."""
        super().__init__("adplatform:k3s:K3sCluster", name, None, opts)
        self._cluster = cluster
        self._infra = infra
        self._etcd_backup = etcd_backup
        self._oidc = oidc  # kubectl logs in with GitLab (platform.sso): the API server flags
        # Agents are drained for an in-place resize, and nodes leaving over the internet depart, from here, whichever
        # provider they run on (resize.py, depart.py): the first server, or the first that answers SSH
        # (cluster.unreachableNodes).
        runner = reachable_server(infra.servers, cluster.unreachable_nodes).connection
        DRAIN_SERVER.use(runner.host, runner.user, runner.host_key)  # its pinned key (docs/security.md)
        first, *others = servers_in_order(infra.servers)
        self.etcd_restore = None if etcd_backup is None else etcd_restore_commands(
            etcd_backup, first.hostname, [n.hostname for n in others])
        self._token = random.RandomPassword("server-token", length=48, special=False,
                                            opts=pulumi.ResourceOptions(parent=self, protect=protect))
        self._agent_token = random.RandomPassword("agent-token", length=48, special=False,
                                                  opts=pulumi.ResourceOptions(parent=self, protect=protect))
        # What a node the cluster autoscaler creates joins with (components/k3s/userdata.py): agents only.
        self.agent_token: pulumi.Output[str] = pulumi.Output.secret(self._agent_token.result)
        self.installs: dict[str, command.remote.Command] = {}
        # Every node downloads K3s right after its tuning, in parallel (issue 22): the serial joins below start it.
        # The Kubernetes Node names of the nodes this program run has (their hostnames: node_config's node-name).
        self.node_names = tuple(node.hostname for node in infra.nodes)
        self.stages = {node.name: self._stage(node, tuning) for node in infra.nodes}

        # Only the server that initialised the cluster is rendered without `server:`; once it is gone, all join.
        self.installs[first.name] = self._install(first, tuning, join=first is not initialiser(infra.servers),
                                                  after=[])
        previous = self.installs[first.name]
        for node in others:
            previous = self.installs[node.name] = self._install(node, tuning, join=True, after=[previous])
        move = cluster.control_plane.move
        if move is None or not move.prepare_flip:
            for node in infra.agents:
                # After the first server only, in parallel with the other servers' etcd joins (issue 22): an agent
                # registers through the fixed registration address (the API load balancer, whose health check sends
                # it to the servers that answer), then its client-side load balancer learns every server from the
                # `kubernetes` Service's endpoints as they join (docs.k3s.io/architecture, "How Agent Node
                # Registration Works"). Agents hold no etcd member, so the one-learner-at-a-time rule is not theirs.
                # Every install on a first deploy runs the configured version, so no agent is newer than a server.
                self.installs[node.name] = self._install(node, tuning, join=True, after=[self.installs[first.name]])
        else:
            # From the flip's preparing step on (cluster.controlPlane.move.prepareFlip, kept set through the flip) the
            # agents' installs form one chain (agents_in_order), after the last server's. The flip changes every
            # agent's join address and kubelet flags in one update (docs/providers.md, "Not supported yet", item 4):
            # restarted together, every node of a pool would drop off at once, and a failing one would not stop the
            # others. Chained, one agent restarts at a time, against servers that have all taken their new
            # configuration, and the first failure stops the rest. Only an install whose trigger changed runs: the
            # preparing step reconfigures no agent, so the chain costs deploy time in the flip alone. A move's member
            # steps change no agent either (joins go through the balancer): they, first deploys and every other
            # update keep the agents parallel (issue 22).
            for node in agents_in_order(infra.agents, [p.name for p in cluster.pools]):
                previous = self.installs[node.name] = self._install(node, tuning, join=True, after=[previous])

        self.api_endpoint = pulumi.Output.concat("https://", infra.api_public_endpoint, f":{API_PORT}")
        self.kubeconfig = self._read_kubeconfig(first)
        self.provider = k8s.Provider("k8s", kubeconfig=self.kubeconfig, cluster_identifier=CLUSTER_IDENTIFIER,
                                     opts=pulumi.ResourceOptions(parent=self))
        self.ready = self._cluster_network(list(self.installs.values()))
        # Drain before delete: every node leaves the cluster before its machine goes (lifecycle.py).
        self.lifecycle = NodeLifecycle("node-lifecycle", infra.nodes, self.installs,
                                       {n.name: infra.join_endpoint_of(n.name) for n in infra.nodes},
                                       self.kubeconfig, self.provider, pulumi.ResourceOptions(parent=self),
                                       admitted_by=infra.admitted_by, unreachable=cluster.unreachable_nodes)
        self.register_outputs({"api_endpoint": self.api_endpoint, "kubeconfig": self.kubeconfig})

    def _stage(self, node: Node, tuning: HostTuning) -> command.remote.Command:
        # After tuning: the installer may install packages (SELinux policy) and must not race tuning's apt work.
        # The trigger leaves the version (and its installer's pin) out, as the install's does: a version change alone
        # stages nothing.
        script = stage_script(node.spec, node.hostname, self._cluster.k3s_version,
                              self._cluster.k3s_installer_sha256)
        trigger = content_hash(stage_script(node.spec, node.hostname, ANY_VERSION))
        return run_script(f"stage-k3s-{node.name}", node, script, trigger, parent=self,
                          depends_on=[tuning.ready[node.name]])

    def _install(self, node: Node, tuning: HostTuning, *, join: bool,
                 after: Sequence[pulumi.Resource]) -> command.remote.Command:
        infra, cluster, backup = self._infra, self._cluster, self._etcd_backup
        is_server = node.spec.k3s_role == "server"
        snapshots = backup if is_server else None

        def config_yaml(token: str, agent_token: str, s3_access: str, s3_secret: str, private_ip: str,
                        public_ip: str, endpoint: str, sans: list[str], provider_id: str, joins: bool = join) -> str:
            return dump(node_config(
                node.spec, node.hostname, NodeAddresses(private_ip, public_ip),
                token_key="token", token=token if is_server else agent_token,
                agent_token=agent_token if is_server else None,
                join_endpoint=endpoint if joins else None, tls_sans=sans, pod_cidr=cluster.pod_cidr,
                service_cidr=cluster.service_cidr, profile=infra.profile_of(node.name), cluster_profile=infra.cluster,
                etcd_snapshots=etcd_snapshot_config(snapshots, s3_access, s3_secret, cluster.control_plane.count)
                if snapshots else None,
                oidc=self._oidc if is_server else None, provider_id=provider_id or None))

        def probe(endpoint: str, private_ip: str) -> str:
            # The initialising server must not start a second cluster if it is ever rebuilt empty
            # while the others still serve: it checks the API endpoint first (when that is not itself).
            return f"{server_url(endpoint)}/cacerts" if not join and endpoint != private_ip else ""

        def script_of(version: str, token: str, agent_token: str, s3_access: str, s3_secret: str,
                      private_ip: str, public_ip: str, endpoint: str, sans: list[str], provider_id: str) -> str:
            settings = (token, agent_token, s3_access, s3_secret, private_ip, public_ip, endpoint, sans, provider_id)
            guard = probe(endpoint, private_ip)
            # Rebuilt empty while the others serve, it joins them at the endpoint it probed, as the other servers do.
            rejoin = config_yaml(*settings, joins=True) if guard else ""
            return install_script(node.spec, node.hostname, version, config_yaml(*settings), guard,
                                  cluster.k3s_installer_sha256 if version != ANY_VERSION else None, rejoin,
                                  join_url=server_url(endpoint) if join else "", agent_token=agent_token)

        s3_access = snapshots.access_key if snapshots else ""
        s3_secret = snapshots.secret_key if snapshots else ""
        inputs = (node.private_ip, node.public_ip, infra.join_endpoint_of(node.name), infra.tls_sans,
                  node.provider_id or "")
        script = pulumi.Output.all(self._token.result, self._agent_token.result, s3_access, s3_secret,
                                   *inputs).apply(lambda v: script_of(cluster.k3s_version, *v))
        # The trigger hashes the same script with the join tokens redacted (generated once, never
        # rotated) and the version left out: it changes when the node's configuration does, rotated
        # S3 keys included, never with the version alone (the system-upgrade-controller upgrades
        # running nodes). It is unsecreted so previews show when a node is reconfigured: a SHA-256 over
        # the whole file, it cannot be reversed into the (high-entropy) S3 keys it covers.
        trigger = pulumi.Output.unsecret(pulumi.Output.all(s3_access, s3_secret, *inputs).apply(
            lambda v: content_hash(script_of(ANY_VERSION, REDACTED, REDACTED, *v))))
        # Over the internet every peer rule first (infra.peer_rules): a node reaches the others only through them, and
        # a rule's update drains the nodes it drops (components/k3s/depart.py) before the cluster's nodes and
        # everything installed on the cluster update.
        return run_script(f"k3s-{node.name}", node, script, trigger, parent=self, secret=True,
                          depends_on=[tuning.ready[node.name], self.stages[node.name], *after, *infra.peer_rules])

    def _read_kubeconfig(self, first: Node) -> pulumi.Output[str]:
        read = command.remote.Command(
            # The file is root's (mode 0600): SSH users other than root read it through sudo.
            "kubeconfig", connection=first.connection,
            create="cat /etc/rancher/k3s/k3s.yaml" if first.connection.user in (None, "root")
            else "sudo -n cat /etc/rancher/k3s/k3s.yaml",
            logging=command.remote.Logging.NONE,
            triggers=[self.installs[first.name].id],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.installs[first.name]],
                                        additional_secret_outputs=["stdout"]))
        endpoint = self.api_endpoint
        return pulumi.Output.secret(pulumi.Output.all(read.stdout, endpoint).apply(
            lambda v: v[0].replace(f"https://127.0.0.1:{API_PORT}", v[1])))

    def _cluster_network(self, installs: list[pulumi.Resource]) -> list[pulumi.Resource]:
        values = cilium_values(len(self._infra.nodes), self._infra.cluster.cilium_values,
                               self._infra.cluster.client_address)
        # Before Cilium: its operator enables the Gateway API controller only if the CRDs exist at start.
        crds = gateway_api_crds(self.provider, installs[:1], self)
        cilium = release("cilium", CILIUM, values,
                         pulumi.ResourceOptions(parent=self, provider=self.provider,
                                                depends_on=[*installs[:1], *crds]),
                         atomic=False)
        ready: list[pulumi.Resource] = [*crds, cilium]
        if self._infra.install_addons is not None:
            after = [*installs[:1], cilium] if self._infra.cluster.addons_need_cni else installs[:1]
            ready += self._infra.install_addons(self.provider, after, self)
        return ready
