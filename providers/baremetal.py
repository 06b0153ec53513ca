"""Existing servers reached by SSH (provider `baremetal`): nothing is provisioned.

The hosts come from `bareMetal.hosts` (config/baremetal.py). Each gets the same firewall as the
cloud providers, enforced on the host by an idempotent nftables remote command rendered from PORTS
(providers/scripts/firewall.sh), before anything else runs there. Volumes are node-local (K3s
local-path); `LoadBalancer` Services get an address from `bareMetal.loadBalancerAddresses` through
Cilium LB IPAM, announced on the LAN by Cilium's L2 announcements (ARP) from one node at a time.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections import Counter
from pathlib import Path
from typing import Sequence

import pulumi
import pulumi_command as command
import pulumi_kubernetes as k8s

from components.shell import content_hash, render
from config import LoadedConfig, Problem
from config.baremetal import BareMetal, Host, block_addresses
from config.catalog import SIZES
from config.errors import problem
from config.model import CONTROL_PLANE, ROLE_LABEL
from providers.base import (PORTS, WORLD_CIDRS, ClusterPort, ClusterProfile, Infrastructure, Node, NodeSpec, PortRule,
                            ProviderInfrastructure, Storage, assemble, first_server_api, located_settings, node_specs,
                            provider_id, rule_sources, secondary_part, server_type_settings, ssh_connection)

NAME = "baremetal"
FIREWALL_TEMPLATE = Path(__file__).parent / "scripts" / "firewall.sh"
FIREWALL_TABLE = "adplatform"
# Sizes do not pick hardware here: a pool's size class states what its hosts offer (the data plane
# sizes its stores from it), so set each pool's `size` to match the hosts listed for it.
SERVER_TYPES = {size: "existing-host" for size in SIZES}
LOCAL_PATH = "local-path"  # K3s' bundled local-path provisioner and its (default) class
LOCAL_PATH_RETAIN = "local-path-retain"
LB_POOL = "gateway-addresses"
L2_POLICY = "gateway-addresses"
# The nodes that answer ARP for a service address carry its north/south traffic: the platform's own
# nodes, never a dedicated database node.
ANNOUNCING_ROLES = ("general", "converged")
# Cilium's agents renew one Lease per announced Service every leaseRenewDeadline (5 s by default):
# QPS ~ services / 5 s. 20/40 leaves room for ~100 announced Services next to the agents' other API
# traffic (Cilium docs, network/l2-announcements.rst, "Sizing client rate limit"; default 10/20).
CLIENT_RATE_LIMIT = {"qps": 20, "burst": 40}
# The hosts' topology.kubernetes.io/region where bareMetal.region is unset (non-production profiles only), and
# each host's zone where its `zone` is unset: one failure domain, named apart from every cloud's regions.
DEFAULT_REGION = "baremetal"


class BareMetalProvider:
    name = NAME
    server_types = SERVER_TYPES
    credentials = ()  # the hosts are reached with adplatform:sshPrivateKey only
    zonal_node_groups = False  # nothing autoscales on bare metal
    kms_seal = None  # no key management service: the unseal key stays in the cluster (docs/security.md)

    def validate(self, loaded: LoadedConfig) -> list[Problem]:
        cfg = loaded.config
        if cfg.bare_metal is None:
            return [problem("bareMetal", "must be set for provider baremetal: hosts (publicAddress, privateAddress, "
                            "sshUser, pool) and loadBalancerAddresses")]
        return [*_unused_keys(loaded), *_hosts_fill_pools(loaded, cfg.bare_metal), *_topology(loaded, cfg.bare_metal),
                *_unique_addresses(cfg.bare_metal), *_addresses_in_networks(loaded, cfg.bare_metal)]

    def create(self, loaded: LoadedConfig, peers: Sequence[tuple[ClusterPort, Sequence[str]]] = ()) -> Infrastructure:
        """`peers`: in a hybrid cluster, what the hosts admit from the other providers' nodes (providers/hybrid.py)."""
        return BareMetalInfrastructure("baremetal", loaded, peers=peers).infrastructure


# --- validation ------------------------------------------------------------------------------------

def _unused_keys(loaded: LoadedConfig) -> list[Problem]:
    """Keys that would do nothing on existing hosts: refused rather than silently ignored."""
    cluster = loaded.config.cluster
    found = []
    if cluster.api_load_balancer.enabled:
        found.append(problem("cluster.apiLoadBalancer.enabled", "must be false for provider baremetal: no load "
                             "balancer is provisioned; nodes join at the first control-plane host's private "
                             "address", True))
    if cluster.image is not None:
        found.append(problem("cluster.image", "is not used by provider baremetal (the hosts are installed "
                             "already: Ubuntu 24.04 LTS); remove it", cluster.image))
    chosen = [*located_settings(cluster), *server_type_settings(cluster)]
    found += [problem(key, "is not used by provider baremetal (the hosts exist already); remove it", value)
              for key, value in chosen if value is not None]
    return found


def _slots(loaded: LoadedConfig) -> dict[str, int]:
    """Hosts each pool needs: control-plane count, then every pool's count."""
    cluster = loaded.config.cluster
    return {CONTROL_PLANE: cluster.control_plane.count, **{p.name: p.count for p in cluster.pools}}


def _hosts_fill_pools(loaded: LoadedConfig, bare: BareMetal) -> list[Problem]:
    slots = _slots(loaded)
    found = [problem(f"bareMetal.hosts[{i}].pool", f"must be {CONTROL_PLANE!r} or a pool of cluster.pools "
                     f"({', '.join(sorted(set(slots) - {CONTROL_PLANE}))})", host.pool)
             for i, host in enumerate(bare.hosts) if host.pool not in slots]
    listed = Counter(host.pool for host in bare.hosts)
    for pool, wanted in slots.items():
        key = "cluster.controlPlane.count" if pool == CONTROL_PLANE else f"cluster.pools[{pool}].count"
        if listed[pool] != wanted:
            found.append(problem("bareMetal.hosts", f"must list exactly {wanted} host(s) with pool {pool!r} "
                                 f"({key} is {wanted})", listed[pool]))
    return found


def _topology(loaded: LoadedConfig, bare: BareMetal) -> list[Problem]:
    """Production-grade profiles spread replicas over zones: where the hosts are only the operator knows (no CCM runs
    for them, and a guess would let a store put every replica in one room)."""
    if not loaded.profile.strict:
        return []
    why = f"in profile {loaded.profile.name}: the stores spread replicas over zones"
    found = [] if bare.region else [problem("bareMetal.region", f"must be set {why} and regions "
                                            "(topology.kubernetes.io/region: the hosts' site, e.g. fsn1)")]
    return found + [problem(f"bareMetal.hosts[{i}].zone", f"must be set {why} (topology.kubernetes.io/zone: the "
                            "host's failure domain, a rack, room or datacenter, e.g. fsn1-dc14)")
                    for i, host in enumerate(bare.hosts) if not host.zone]


def placed(spec: NodeSpec, bare: BareMetal, host: Host) -> NodeSpec:
    """The host's node with its region and zone from config (defaults: DEFAULT_REGION, one zone)."""
    region = bare.region or DEFAULT_REGION
    return dataclasses.replace(spec, region=region, zone=host.zone or region)


def _unique_addresses(bare: BareMetal) -> list[Problem]:
    found = []
    for attr, key in (("public_address", "publicAddress"), ("private_address", "privateAddress")):
        seen: dict[str, int] = {}
        for i, host in enumerate(bare.hosts):
            address = getattr(host, attr)
            if address in seen:
                found.append(problem(f"bareMetal.hosts[{i}].{key}", f"must be unique; bareMetal.hosts[{seen[address]}] "
                                     "has it too", address))
            seen.setdefault(address, i)
    return found


def _addresses_in_networks(loaded: LoadedConfig, bare: BareMetal) -> list[Problem]:
    cluster = loaded.config.cluster
    subnet = ipaddress.ip_network(cluster.subnet_cidr)
    inner = {"cluster.podCidr": ipaddress.ip_network(cluster.pod_cidr),
             "cluster.serviceCidr": ipaddress.ip_network(cluster.service_cidr)}
    found = [problem(f"bareMetal.hosts[{i}].privateAddress", f"must lie inside cluster.subnetCidr ({subnet}): "
                     "the nodes talk to each other (and the firewall trusts them) on that network",
                     host.private_address)
             for i, host in enumerate(bare.hosts) if ipaddress.ip_address(host.private_address) not in subnet]
    hosts = {ipaddress.ip_address(a) for h in bare.hosts for a in (h.public_address, h.private_address)}
    for i, block in enumerate(bare.load_balancer_addresses):
        first, last = block_addresses(block)
        key = f"bareMetal.loadBalancerAddresses[{i}]"
        for name, net in inner.items():
            if net.version == 4 and int(first) <= int(net[-1]) and int(net[0]) <= int(last):
                found.append(problem(key, f"must not overlap {name} ({net})", block))
        taken = sorted(str(a) for a in hosts if a.version == 4 and int(first) <= int(a) <= int(last))
        if taken:
            found.append(problem(key, f"must hold only free addresses; hosts use {', '.join(taken)}", block))
    return found


# --- the firewall, rendered from PORTS -----------------------------------------------------------

def _nft_port_rule(rule: PortRule | ClusterPort, sources: Sequence[str]) -> list[str]:
    """nftables lines for one PortRule (one per address family that has sources)."""
    match = f"{rule.protocol} dport {rule.port}" if rule.port else None
    comment = f'comment "{rule.description}"'
    if list(sources) == list(WORLD_CIDRS):  # everyone, both families
        what = match or "meta l4proto { icmp, ipv6-icmp }"
        return [f"{what} accept {comment}"]
    lines = []
    for family, proto in (("ip", "icmp"), ("ip6", "ipv6-icmp")):
        nets = [s for s in sources if ipaddress.ip_network(s).version == (4 if family == "ip" else 6)]
        if nets:
            lines.append(f"{family} saddr {{ {', '.join(nets)} }} {match or f'meta l4proto {proto}'} accept {comment}")
    return lines


def nft_ruleset(admin_cidrs: Sequence[str], private_cidrs: Sequence[str],
                peers: Sequence[tuple[ClusterPort, Sequence[str]]] = ()) -> str:
    """The whole `inet adplatform` table: input filtered, everything else left to K3s and Cilium."""
    rules = [
        'iif "lo" accept',
        'ct state established,related accept comment "replies, and the SSH session that applies these rules"',
        "ct state invalid drop",
        # IPv6 needs neighbour discovery (link-local, hop limit 255) or the host loses its v6 reachability.
        "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } "
        'ip6 hoplimit 255 accept comment "IPv6 neighbour discovery"',
        # DHCP replies only from the host's own link. DHCPv4 needs no rule: clients (systemd-networkd, dhclient,
        # dhcpcd) take offers and acks on packet sockets, ahead of this hook, and a renewal's unicast reply is
        # `established`; an open 67->68 rule would only let any address on the internet feed the client's UDP
        # socket. DHCPv6 replies come from a link-local address, which no router forwards.
        'ip6 saddr fe80::/10 udp sport 547 udp dport 546 accept comment "DHCPv6 replies from the link"',
    ]
    for family in (4, 6):
        nets = [c for c in private_cidrs if ipaddress.ip_network(c).version == family]
        if nets:
            rules.append(f"{'ip' if family == 4 else 'ip6'} saddr {{ {', '.join(nets)} }} accept "
                         'comment "the private network and pods: everything between cluster members"')
    for rule in PORTS:
        rules += _nft_port_rule(rule, rule_sources(rule, admin_cidrs))
    for port, sources in peers:  # a hybrid cluster: the other providers' nodes, on the cluster's ports only
        rules += _nft_port_rule(port, sources)
    body = "\n".join(f"    {line}" for line in rules)
    return (f"#!/usr/sbin/nft -f\n"
            f"# Managed by adplatform (Pulumi), rendered from providers/base.py PORTS: changes are overwritten.\n"
            f"# The first two lines make the replacement atomic and repeatable (the table exists, then is rebuilt).\n"
            f"table inet {FIREWALL_TABLE}\n"
            f"delete table inet {FIREWALL_TABLE}\n"
            f"table inet {FIREWALL_TABLE} {{\n"
            f"  chain input {{\n"
            f"    type filter hook input priority filter; policy drop;\n"
            f"{body}\n"
            f"  }}\n"
            f"}}")


def ssh_sources(admin_cidrs: Sequence[str], private_cidrs: Sequence[str]) -> list[str]:
    """Every source the rules let reach SSH: the deployer must be among them."""
    ssh = next(r for r in PORTS if r.protocol == "tcp" and r.port == "22")
    return [*rule_sources(ssh, admin_cidrs), *private_cidrs]


def firewall_script(admin_cidrs: Sequence[str], private_cidrs: Sequence[str],
                    peers: Sequence[tuple[ClusterPort, Sequence[str]]] = ()) -> str:
    """The exact script each host runs (pure: used by tests and shellcheck)."""
    return render(FIREWALL_TEMPLATE, {
        "RULESET": nft_ruleset(admin_cidrs, private_cidrs, peers),
        "SSH_SOURCES": " ".join(ssh_sources(admin_cidrs, private_cidrs)),
    })


def firewall_command(user: str | None) -> str:
    """`bash -s` as root, else through sudo; the script gets the SSH client address (sudo drops SSH_CLIENT)."""
    env = 'ADP_SSH_CLIENT="$SSH_CLIENT"'
    return f"{env} bash -s" if user in (None, "root") else f"sudo -n env {env} bash -s"


# A host's provider ID in another provider's cluster: a scheme no cloud controller manager claims, so the stack
# provider's fails to resolve it and skips the node (never deletes or taints it), whatever it is configured with.
# Not `hrobot://<server number>`: Hetzner's CCM refuses that only while its Robot support is off (lookupServer:
# errMissingRobotClient); turned on, it would look the number up in Robot and delete the node if it is not found.
HOST_SCHEME = "baremetal"


def host_provider_id(hostname: str) -> str:
    return provider_id(HOST_SCHEME, hostname)


# --- the infrastructure ----------------------------------------------------------------------------

class BareMetalInfrastructure(ProviderInfrastructure):
    """The existing hosts as nodes, each firewalled before anything else runs on it."""

    def __init__(self, name: str, loaded: LoadedConfig, opts: pulumi.ResourceOptions | None = None, *,
                 peers: Sequence[tuple[ClusterPort, Sequence[str]]] = ()):
        super().__init__("BareMetalInfrastructure", name, loaded, opts)
        cfg = loaded.config
        assert cfg.bare_metal is not None  # validate() refused the config otherwise
        self._bare = cfg.bare_metal
        cluster = cfg.cluster
        # Pods reach their own node's host-network services (kubelet, metrics) from pod addresses.
        self._private_cidrs = [cluster.subnet_cidr, cluster.pod_cidr]
        self.script = firewall_script(cfg.admin_cidrs, self._private_cidrs, peers)

        # Another provider's CCM runs for the cluster (a hybrid's secondary part): the hosts name themselves.
        self._secondary = secondary_part(loaded)
        hosts = _hosts_by_slot(self._bare.hosts)
        nodes = [self._node(placed(spec, self._bare, host), host)
                 for spec, host in ((s, hosts[(s.pool, s.index)]) for s in node_specs(loaded))]
        self.infrastructure = assemble(
            # No load balancer: the first server's addresses (validate() requires apiLoadBalancer off).
            nodes, first_server_api([n for n in nodes if n.spec.k3s_role == "server"]),
            ClusterProfile(
                # K3s' local-path provisioner gives the volumes; Cilium replaces servicelb.
                k3s_disable=("servicelb", "traefik"),
                external_cloud_provider=False,
                cilium_values=cilium_values(cluster.subnet_cidr),
                load_balancer_annotations={},
                local_nvme=self._bare.local_nvme,
                # The LB IPAM pool and L2 policy are Cilium resources: their CRDs exist once Cilium runs.
                addons_need_cni=True,
            ),
            install_addons=self._install_lb_ipam,
            install_storage=self._install_storage,
        )
        self.register_outputs({"hosts": len(nodes)})

    def _node(self, spec: NodeSpec, host: Host) -> Node:
        hostname = f"{self._prefix}-{spec.name}"
        connection = ssh_connection(self._loaded, spec.name, host.public_address, host.ssh_user,
                                    parent=self, host_key=host.host_key)
        firewall = command.remote.Command(
            f"firewall-{spec.name}",
            connection=connection,
            create=firewall_command(host.ssh_user),
            stdin=self.script,
            triggers=[content_hash(self.script)],
            logging=command.remote.Logging.STDOUT_AND_STDERR,
            # Existing hosts: the firewall stays on `pulumi destroy` (opening a host is never the safe default).
            opts=self._opts())
        return Node(spec=spec, hostname=hostname, public_ip=pulumi.Output.from_input(host.public_address),
                    private_ip=pulumi.Output.from_input(host.private_address), connection=connection,
                    server=firewall,
                    # On a bare-metal stack K3s' own cloud controller sets k3s://<node name>.
                    provider_id=pulumi.Output.from_input(host_provider_id(hostname)) if self._secondary else None)

    def _install_lb_ipam(self, provider: k8s.Provider, depends_on: Sequence[pulumi.Resource],
                         parent: pulumi.Resource) -> list[pulumi.Resource]:
        """The address pool LoadBalancer Services draw from, and which nodes answer ARP for them."""
        opts = pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=list(depends_on))
        pool = k8s.apiextensions.CustomResource(
            "lb-ipam-pool", api_version="cilium.io/v2", kind="CiliumLoadBalancerIPPool",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=LB_POOL),
            spec=lb_pool_spec(self._bare.load_balancer_addresses), opts=opts)
        policy = k8s.apiextensions.CustomResource(
            "l2-announcement-policy", api_version="cilium.io/v2alpha1", kind="CiliumL2AnnouncementPolicy",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=L2_POLICY),
            spec=l2_policy_spec(self._bare.load_balancer_interfaces), opts=opts)
        return [pool, policy]

    def _install_storage(self, provider: k8s.Provider, depends_on: Sequence[pulumi.Resource],
                         parent: pulumi.Resource) -> Storage:
        """K3s' local-path volumes. Production keeps a volume's directory when its claim is deleted."""
        if not self._loaded.profile.protect:
            return Storage(default_class=LOCAL_PATH, resources=[])
        storage_class = k8s.storage.v1.StorageClass(
            "storage-class-local-path-retain",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=LOCAL_PATH_RETAIN),
            provisioner="rancher.io/local-path",  # the provisioner K3s bundles (local-storage)
            volume_binding_mode="WaitForFirstConsumer",  # the volume lives on the node the pod lands on
            reclaim_policy="Retain",
            opts=pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=list(depends_on)))
        # Scratch volumes (backup downloads, drill copies) on K3s' own class, whose directories go with their claim.
        return Storage(default_class=LOCAL_PATH_RETAIN, resources=[storage_class],
                       scratch_classes={LOCAL_PATH_RETAIN: LOCAL_PATH})


def _hosts_by_slot(hosts: Sequence[Host]) -> dict[tuple[str, int], Host]:
    """(pool, index) -> host, hosts filling each pool's slots in the order listed."""
    seen: Counter[str] = Counter()
    slots = {}
    for host in hosts:
        slots[(host.pool, seen[host.pool])] = host
        seen[host.pool] += 1
    return slots


def cilium_values(private_cidr: str) -> dict:
    """Cilium answers ARP for Service addresses (L2 announcements) and serves externalIPs."""
    return {
        # Needs kube-proxy replacement (on for every provider, components/k3s/cilium.py), which also serves
        # Services' externalIPs: Cilium 1.18 made that unconditional with it and removed `externalIPs.enabled`
        # (cilium/cilium#39581; the 1.20 chart has no such value), so there is nothing to switch on here.
        "l2announcements": {"enabled": True},
        "k8sClientRateLimit": CLIENT_RATE_LIMIT,
        # NodePorts are served in eBPF before the nftables input chain sees a packet: offer them on
        # the private network only, so the hosts' public addresses expose 80/443 (via the LB
        # addresses) and what the firewall admits, nothing else (Cilium 1.16+ `nodePort.addresses`).
        "nodePort": {"addresses": [private_cidr]},
    }


def lb_pool_spec(blocks: Sequence[str]) -> dict:
    """CiliumLoadBalancerIPPool spec: every LoadBalancer Service may draw from these blocks."""
    def block(text: str) -> dict[str, str]:
        if "-" in text:
            start, stop = (part.strip() for part in text.split("-", 1))
            return {"start": start, "stop": stop}
        return {"cidr": text}
    return {"blocks": [block(b) for b in blocks]}


def l2_policy_spec(interfaces: Sequence[str]) -> dict:
    """CiliumL2AnnouncementPolicy spec: LB IPAM addresses, announced from the platform's own nodes."""
    spec: dict = {
        "loadBalancerIPs": True,
        "externalIPs": True,
        "nodeSelector": {"matchExpressions": [{"key": ROLE_LABEL, "operator": "In", "values": list(ANNOUNCING_ROLES)}]},
    }
    if interfaces:
        spec["interfaces"] = list(interfaces)
    return spec
