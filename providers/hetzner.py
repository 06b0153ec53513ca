"""Hetzner Cloud: private network, firewall, placement groups, servers, API load balancer, CCM.

Hetzner firewalls filter public interfaces only; traffic on the private network between our
servers is not filtered, which is how "everything between nodes" stays open and private.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pulumi
import pulumi_hcloud as hcloud
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.charts import HCLOUD_CCM, HCLOUD_CSI
from components.k3s.resize import output_path
from providers import power_off
from components.helm import release
from components.layer import EXCLUDE_FROM_BACKUP
from config import LoadedConfig, Problem
from config.errors import problem
from config.model import Cluster, pool_locations, taint_fields
from providers import cloud
from providers.base import (AdmittedPeers, AUTOSCALER_FILES_DIR, PORTS, ApiEndpoints, ClientAddress, ClusterPort, ClusterProfile, PeerAddress, PROVIDER_LABEL, Credential, Infrastructure, Node,
                            NodeGroupRequest, NodeGroups, NodeSpec, ProviderInfrastructure, ServerCatalog, Storage,
                            assemble, check_locations, csi_storage, holds_default_class, first_server_api, located_settings,
                            node_group_name, node_specs, provider_id, resolve_server_type, rule_sources,
                            secondary_controller_placement, secondary_part, ssh_connection, zone_topology)

NAME = "hetzner"
DEFAULT_LOCATION = "fsn1"
IMAGE = "ubuntu-24.04"
SSH_USER = "root"  # Hetzner's images log in as root with the server's SSH keys
API_LB_TYPE = "lb11"
PRIVATE_NETWORK_MTU = 1450
SPREAD_GROUP_MAX = 10  # Hetzner limit of servers per spread placement group
STORAGE_CLASS = "hcloud-volumes"
PROVISIONER = "csi.hetzner.cloud"
# The CSI driver encrypts each volume with LUKS using this Secret's passphrase (hcloud-csi docs).
ENCRYPTION_SECRET = "hcloud-volume-encryption"
GATEWAY_LB_TYPE = "lb11"
# The gateway's balancer prefixes each connection with a PROXY header (CCM v1.35 annotation LBSvcProxyProtocol).
# The CCM then reports its addresses with ipMode Proxy, so Cilium (1.18.1+) sends in-cluster clients of the
# public names (cert-manager's HTTP-01 self-check, OIDC callers) through the balancer, which adds the header.
GATEWAY_CLIENT_ADDRESS = ClientAddress(
    proxy_protocol=True, annotations={"load-balancer.hetzner.cloud/uses-proxyprotocol": "true"},
    why="the Hetzner load balancer sends PROXY protocol headers")
# Set by the CCM (v1.21+) on cloud servers; a hybrid cluster's bare-metal nodes carry `robot` (providers/hybrid.py):
# the CSI chart keeps its node plugin off `robot` nodes, and with enableProvidedByTopology the driver reports the
# key as volume topology (hetznercloud/csi-driver docs/kubernetes/README.md "Integration with Root Servers").
PROVIDED_BY_LABEL = "instance.hetzner.cloud/provided-by"
CLOUD_VOLUMES_ONLY = ({"matchLabelExpressions": [{"key": PROVIDED_BY_LABEL, "values": ["cloud"]}]},)
# The topology every node plugin reports (its server's location, from the metadata service) and every volume gets
# (its location): hetznercloud/csi-driver v2.22.1 internal/driver/driver.go TopologySegmentLocation, node.go
# NodeGetInfo. Only nodes running the node plugin carry it, so a secondary part's classes name it (_install_csi).
LOCATION_TOPOLOGY_KEY = "csi.hetzner.cloud/location"
# Labels the cluster autoscaler's Hetzner provider puts on a node group's template node that differ per group
# (hetzner_cloud_provider.go nodeGroupLabel, hetzner_node_group.go buildNodeGroupLabels at 1.36.1).
AUTOSCALER_GROUP_LABELS = ("hcloud/node-group", LOCATION_TOPOLOGY_KEY)
# A secondary part's driver token (no Hetzner CCM runs there to create `hcloud`): a Secret of its own, named only by
# the chart's controller.hcloudToken.existingSecret (the controller's HCLOUD_TOKEN; the node plugin reads no token).
CSI_TOKEN_SECRET = {"name": "hcloud-csi-token", "key": "token"}
STACK_LABEL = "adplatform.io/stack"  # on everything a stack creates in the (possibly shared) project
NETWORK_ZONES = {"fsn1": "eu-central", "nbg1": "eu-central", "hel1": "eu-central",
                 "ash": "us-east", "hil": "us-west", "sin": "ap-southeast"}
# topology.kubernetes.io/zone of a cloud server as Hetzner's CCM names it: the API no longer reports datacenters
# (changelog 2025-12-16, "Phasing out datacenters"), so the CCM maps each location that had one to that datacenter's
# name and any newer location to its own name (hcloud-cloud-controller-manager PR 1159); region is the location.
# Nodes the CCM does not initialise (Hetzner pools of another provider's stack) register with the same words.
CCM_ZONES = {"fsn1": "fsn1-dc14", "nbg1": "nbg1-dc3", "hel1": "hel1-dc2", "ash": "ash-dc1", "hil": "hil-dc1",
             "sin": "sin-dc1"}
# Server types as dated data: which exist, what they have, where Hetzner does not sell them, and the size
# classes (config/catalog.py) mapped onto them.
CATALOG = ServerCatalog.load(Path(__file__).with_name("hetzner_server_types.yaml"))
POWER_OFF_INPUTS = power_off.POWER_OFF_INPUTS["hcloud:index/server:Server"]
SERVER_TYPES = CATALOG.sizes


# The API token the hcloud provider and the cloud controller manager use (_hcloud_token).
CREDENTIALS = (Credential("hcloud:token", env=("HCLOUD_TOKEN",), required=True),)


def cloud_provider_id(server_id: str) -> str:
    """hcloud://<server id>, as Hetzner's CCM writes a cloud server's (hcloud-cloud-controller-manager v1.35.0
    internal/providerid FromCloudServerID)."""
    return provider_id("hcloud", str(int(server_id)))


class Hetzner:
    name = NAME
    server_types = SERVER_TYPES
    catalog = CATALOG
    credentials = CREDENTIALS
    zonal_node_groups = False  # a pool's locations are always known (its own or the cluster's)
    internet_peering = True  # the servers' public IPv4 is on their own interface: K3s can register with it
    # Its public API balancer (cluster.apiLoadBalancer.public) admits every address: Hetzner load balancers cannot be
    # firewalled. So nodes of other providers can join through it (providers/hybrid.py join_endpoint).
    public_api_balancer_admits_peers = True
    kms_seal = None  # Hetzner Cloud has no key management service: the unseal key stays in the cluster
    # As a hybrid cluster's secondary (providers/hybrid.py pool_roles) it installs its own CSI driver and classes on
    # its own nodes, with the token in a Secret of its own (HetznerInfrastructure._install_csi): it may host stores.
    secondary_storage = True
    # As the provider a control plane moves to, its CCM can serve the gateway's LoadBalancer Service from its part
    # (ControlPlaneMove.gateway_balancer, providers/hybrid.py gateway_handover): the service controller alone, under a
    # lease of its own (HetznerInfrastructure._install_ccm).
    gateway_handover_to = True

    def validate(self, loaded: LoadedConfig) -> list[Problem]:
        cluster = loaded.config.cluster
        found = check_locations(cluster, NETWORK_ZONES.__contains__, f"a Hetzner location ({', '.join(NETWORK_ZONES)})")
        found += CATALOG.check(cluster)
        pods, network = ipaddress.ip_network(cluster.pod_cidr), ipaddress.ip_network(cluster.network_cidr)
        if pods.version != network.version or not pods.subnet_of(network):
            found.append(problem("cluster.podCidr", f"must lie inside cluster.networkCidr ({cluster.network_cidr}): "
                                 "Hetzner routes pod traffic through the private network", cluster.pod_cidr))
        return found + _zone_problems(cluster) + _node_group_names(loaded)

    def create(self, loaded: LoadedConfig, over_internet: bool = False) -> Infrastructure:
        """`over_internet` changes nothing here: a Hetzner server's public address is on its own interface."""
        return HetznerInfrastructure("hetzner", loaded).infrastructure


class HetznerInfrastructure(ProviderInfrastructure):
    """Everything Hetzner-side for one stack."""

    def __init__(self, name: str, loaded: LoadedConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("HetznerInfrastructure", name, loaded, opts)
        cfg = loaded.config
        self._labels = {STACK_LABEL: loaded.stack}
        location = network_location(cfg.cluster)
        self._location = location

        ssh_keys = self._ssh_keys(cfg.ssh_public_keys)
        self._ssh_key_ids = ssh_keys
        self.network, self.subnet = self._network(NETWORK_ZONES[location])
        self.vswitch_subnet = self._vswitch_subnet(NETWORK_ZONES[location])
        self.firewall = self._firewall(cfg.admin_cidrs)
        specs = node_specs(loaded)
        self._specs = specs
        # Another provider's CCM runs for the cluster (a hybrid's secondary part): the servers name themselves.
        self._secondary = secondary_part(loaded)
        # How many locations each pool spans (its `locations`) and its first: one spread group per location.
        self._spans = {pool: len({s.location for s in specs if s.pool == pool}) for pool in {s.pool for s in specs}}
        self._first = {s.pool: s.location for s in specs if s.index == 0}
        groups = self._placement_groups(specs)
        self._spread_groups = groups
        nodes = [self._server(spec, ssh_keys, groups) for spec in specs]
        self._nodes = nodes
        # Nodes of other providers join (a vSwitch, or the internet: _admit_peers); the CSI driver must know.
        self._foreign_nodes = self.vswitch_subnet is not None
        self.infrastructure = assemble(
            nodes, self._api_endpoints([n for n in nodes if n.spec.k3s_role == "server"]),
            ClusterProfile(
                # The Hetzner CCM provides load balancers and the CSI driver volumes.
                k3s_disable=("servicelb", "traefik", "local-storage"),
                external_cloud_provider=True,
                # The CCM's route controller programs pod CIDRs into the private network, so pods
                # route natively (no tunnel overhead) across the Hetzner network.
                # Not masqueraded: everything inside the private network, pods included. The private
                # interface's MTU is 1450; Cilium subtracts the WireGuard overhead from it.
                cilium_values={"routingMode": "native", "ipv4NativeRoutingCIDR": cfg.cluster.network_cidr,
                               "MTU": PRIVATE_NETWORK_MTU},
                # The CCM turns a LoadBalancer Service into a Hetzner load balancer in the stack's
                # location that reaches the nodes over the private network.
                load_balancer_annotations={
                    "load-balancer.hetzner.cloud/location": location,
                    "load-balancer.hetzner.cloud/type": GATEWAY_LB_TYPE,
                    "load-balancer.hetzner.cloud/use-private-ip": "true",
                    # Attached to the private network (HCLOUD_NETWORK), the balancer's private address would be
                    # listed in the Service's status too (hcloud CCM v1.35.0 hcloud/load_balancers.go: private
                    # ingress on by default), and from there in the Gateway's addresses, which external-dns publishes:
                    # public names resolving, some of the time, to an address nobody outside can reach.
                    "load-balancer.hetzner.cloud/disable-private-ingress": "true",
                },
                local_nvme=True,  # every Hetzner Cloud server's disk is local NVMe (volumes are network)
                client_address=GATEWAY_CLIENT_ADDRESS,
            ),
            install_addons=self._install_ccm,
            install_storage=self._install_csi,
            install_node_groups=self._install_node_groups,
            admit_peers=self._admit_peers,
        )
        self.register_outputs({"network_id": self.network.id, "firewall_id": self.firewall.id})

    def _ssh_keys(self, public_keys: Sequence[str]) -> list[pulumi.Input[str]]:
        """The ids of the project's SSH keys holding `public_keys`.

        Hetzner refuses a second key with the same fingerprint in a project (uniqueness_error), and stacks
        sharing a project (production, staging) carry the same keys. So a key already in the project that
        this stack did not create (another stack's, or uploaded by hand) is used, not created; a key this
        stack created (labelled with its stack) stays declared, or Pulumi would delete it. The lookup lists
        the project's keys, so an empty project is no error. Keys matter only when a server is created
        (servers ignore later changes to them), so another stack deleting a key used here breaks nothing:
        this stack's next `up` creates its own. docs/providers.md says more.
        """
        uploaded = {key.fingerprint: key for key in hcloud.get_ssh_keys().ssh_keys}
        ids: list[pulumi.Input[str]] = []
        for key in public_keys:
            found = uploaded.get(md5_fingerprint(key))
            if found is not None and (found.labels or {}).get(STACK_LABEL) != self._loaded.stack:
                ids.append(str(found.id))
                continue
            # Named by content, so adding or re-ordering keys touches no existing key.
            ids.append(hcloud.SshKey(f"ssh-{cloud.key_digest(key)}", name=f"{self._prefix}-{cloud.key_digest(key)}",
                                     public_key=key, labels=self._labels, opts=self._opts()).id)
        return ids

    def _network(self, zone: str) -> tuple[hcloud.Network, hcloud.NetworkSubnet]:
        cluster = self._loaded.config.cluster
        network = hcloud.Network("network", name=self._prefix, ip_range=cluster.network_cidr,
                                 delete_protection=self._protect, labels=self._labels, opts=self._opts(protect=True))
        subnet = hcloud.NetworkSubnet("subnet", network_id=network.id.apply(int), type="cloud",
                                      network_zone=zone, ip_range=cluster.subnet_cidr,
                                      opts=self._opts(protect=True))
        return network, subnet

    def _vswitch_subnet(self, zone: str) -> hcloud.NetworkSubnet | None:
        """A hybrid cluster with pools on Hetzner dedicated servers (providers/hybrid.py): their Robot vSwitch
        joins the cloud network as a subnet of type vswitch, so cloud and dedicated servers reach each other on
        private addresses (bareMetal.subnetCidr, inside cluster.networkCidr). None without one (config/rules.py
        reads bareMetal only where a pool runs on bare metal)."""
        bare = self._loaded.config.bare_metal
        if bare is None or bare.vswitch is None:
            return None
        return hcloud.NetworkSubnet("subnet-vswitch", network_id=self.network.id.apply(int), type="vswitch",
                                    network_zone=zone, ip_range=bare.subnet_cidr, vswitch_id=bare.vswitch.id,
                                    opts=self._opts(protect=True))

    def _firewall(self, admin_cidrs: Sequence[str]) -> hcloud.Firewall:
        rules = [hcloud.FirewallRuleArgs(direction="in", protocol=rule.protocol, port=rule.port,
                                         source_ips=rule_sources(rule, admin_cidrs), description=rule.description)
                 for rule in PORTS]
        return hcloud.Firewall("firewall", name=self._prefix, rules=rules, labels=self._labels, opts=self._opts())

    def _admit_peers(self, rules: Sequence[tuple[ClusterPort, Sequence[PeerAddress]]],
                     hooks: pulumi.ResourceHookBinding) -> AdmittedPeers:
        """A second firewall on every server of the stack with `rules` (a cluster over the public internet,
        providers/hybrid.py): a server takes several firewalls and Hetzner admits what any of them admits, so the
        PORTS firewall stays as it is. Created after every provider's nodes, whose addresses it names.
        One firewall names every peer (a server takes at most a few firewalls): `hooks` drain a leaving node before
        its update drops it. The attachment, which a leaving Hetzner server leaves, is updated after the firewall
        (it waits for the firewall's id, known once the firewall's update is done). No resource admits one node
        alone."""
        firewall = hcloud.Firewall("firewall-peers", name=f"{self._prefix}-peers", labels=self._labels, rules=[
            hcloud.FirewallRuleArgs(direction="in", protocol=port.protocol, port=port.port,
                                    source_ips=[peer.cidr for peer in peers], description=port.rule_description)
            for port, peers in rules], opts=self._opts(hooks=hooks))
        self._foreign_nodes = True  # the cluster has nodes without Hetzner Cloud volumes (_install_csi)
        attachment = hcloud.FirewallAttachment("firewall-peers", firewall_id=firewall.id.apply(int),
                                               server_ids=[n.server.id.apply(int) for n in self._nodes],
                                               opts=self._opts())
        return AdmittedPeers(rules=(firewall, attachment))

    def _placement_groups(self, specs: list[NodeSpec]) -> dict[str, hcloud.PlacementGroup]:
        groups: dict[str, hcloud.PlacementGroup] = {}
        for spec in specs:
            suffix = self._group_suffix(spec)
            if suffix not in groups:
                groups[suffix] = hcloud.PlacementGroup(
                    f"spread-{suffix}", name=f"{self._prefix}-{suffix}", type="spread",
                    labels={**self._labels, "adplatform.io/pool": spec.pool}, opts=self._opts())
        return groups

    def _group_suffix(self, spec: NodeSpec) -> str:
        """A spread group per pool, per location of a pool that spans several, per SPREAD_GROUP_MAX servers
        of one location. The pool's first location keeps the pool's own group (`<pool>`, `<pool>-1`, ...), so
        spreading a pool over more locations moves no existing server out of its group."""
        spans = self._spans.get(spec.pool, 1)
        batch = (spec.index // spans) // SPREAD_GROUP_MAX
        other = spec.location != self._first.get(spec.pool)
        return "-".join([spec.pool, *([spec.location or self._location] if other else []),
                         *([str(batch)] if batch else [])])

    def _server(self, spec: NodeSpec, ssh_keys: list[pulumi.Input[str]],
                groups: dict[str, hcloud.PlacementGroup]) -> Node:
        hostname = f"{self._prefix}-{spec.name}"
        location = spec.location or self._location
        # As Hetzner's CCM names them (the kubelet registers with them where that CCM does not run).
        spec = dataclasses.replace(spec, region=location, zone=CCM_ZONES.get(location, location))
        group = groups[self._group_suffix(spec)]
        server = hcloud.Server(
            spec.name,
            name=hostname,
            server_type=resolve_server_type(spec, SERVER_TYPES),
            image=self._loaded.config.cluster.image or IMAGE,
            location=location,
            ssh_keys=ssh_keys,
            placement_group_id=group.id.apply(int),
            firewall_ids=[self.firewall.id.apply(int)],
            networks=[hcloud.ServerNetworkArgs(network_id=self.network.id.apply(int))],
            public_nets=[hcloud.ServerPublicNetArgs(ipv4_enabled=True, ipv6_enabled=True)],
            labels={**self._labels, "adplatform.io/pool": spec.pool, "adplatform.io/role": spec.workload_role,
                    "adplatform.io/k3s": spec.k3s_role},
            delete_protection=self._protect,
            rebuild_protection=self._protect,
            shutdown_before_deletion=True,
            opts=self._opts(
                protect=True,
                hooks=self._resize_hooks(spec, hostname, POWER_OFF_INPUTS, output_path("ipv4Address"), SSH_USER),
                depends_on=[self.subnet],  # a server can only join the network once the subnet exists
                delete_before_replace=True,  # K3s node names are unique: the old node drains and goes first
                # Hetzner replaces a server when its SSH keys or image change; new keys reach
                # existing servers by remote command instead, and image bumps apply to new servers.
                ignore_changes=["sshKeys", "image"],
            ),
        )
        private_ip = server.networks.apply(lambda nets: nets[0].ip if nets and nets[0].ip else "")
        return Node(spec=spec, hostname=hostname, public_ip=server.ipv4_address, private_ip=private_ip,
                    connection=ssh_connection(self._loaded, spec.name, server.ipv4_address, SSH_USER, parent=self,
                                              machine=server),
                    server=server, machine=server,
                    # On the stack's part Hetzner's CCM sets it when it initialises the node.
                    provider_id=server.id.apply(cloud_provider_id) if self._secondary else None)

    def _api_endpoints(self, servers: list[Node]) -> ApiEndpoints:
        lb_cfg = self._loaded.config.cluster.api_load_balancer
        if not lb_cfg.enabled:
            return first_server_api(servers)
        lb = hcloud.LoadBalancer("api-lb", name=f"{self._prefix}-api", load_balancer_type=API_LB_TYPE,
                                 location=self._location, delete_protection=self._protect,
                                 labels=self._labels, opts=self._opts())
        attachment = hcloud.LoadBalancerNetwork(
            "api-lb-network", load_balancer_id=lb.id.apply(int), subnet_id=self.subnet.id,
            # Hetzner load balancers cannot be firewalled: keep the API off the internet unless asked.
            enable_public_interface=lb_cfg.public, opts=self._opts())
        hcloud.LoadBalancerService(
            "api-lb-6443", load_balancer_id=lb.id, protocol="tcp", listen_port=6443, destination_port=6443,
            health_check=hcloud.LoadBalancerServiceHealthCheckArgs(protocol="tcp", port=6443, interval=10,
                                                                   timeout=5, retries=3),
            opts=self._opts())
        for node in servers:
            hcloud.LoadBalancerTarget(f"api-lb-{node.name}", load_balancer_id=lb.id.apply(int), type="server",
                                      server_id=node.server.id.apply(int), use_private_ip=True,
                                      opts=self._opts(depends_on=[attachment]))
        if not lb_cfg.public:
            return ApiEndpoints(private=attachment.ip, public=servers[0].public_ip, balancers=(attachment.ip,))
        return ApiEndpoints(private=attachment.ip, public=lb.ipv4, balancers=(attachment.ip, lb.ipv4))

    def _install_ccm(self, provider: k8s.Provider, depends_on: Sequence[pulumi.Resource],
                     parent: pulumi.Resource) -> list[pulumi.Resource]:
        """The hcloud cloud controller manager: initialises nodes (external cloud provider), routes pod CIDRs. On a
        secondary part (installed only where the gateway's Service is handed to it: providers/hybrid.py
        gateway_handover) it serves that Service's balancer and nothing else (gateway_ccm_values)."""
        token = _hcloud_token()
        opts = pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=list(depends_on))
        # The chart's env reads `hcloud` (token; network with `networking`): one hcloud CCM runs in a cluster at most.
        secret = k8s.core.v1.Secret(
            "hcloud", metadata=k8s.meta.v1.ObjectMetaArgs(name="hcloud", namespace=HCLOUD_CCM.namespace,
                                                          labels=EXCLUDE_FROM_BACKUP),
            string_data={"token": token, "network": self.network.id}, type="Opaque", opts=opts)
        ha = 2 if self._loaded.profile.strict else 1
        values = {
            "replicaCount": ha,
            # Hetzner nodes only: with HCLOUD_NETWORK set (networking) it exits at start on a machine the Hetzner
            # metadata service does not know (hcloud/cloud.go, the attached-network check), and a cluster spanning
            # providers (after a flip: AWS servers too) has others its tolerations admit.
            "nodeSelector": {PROVIDER_LABEL: NAME},
            # On a secondary part the network is its own: the balancer reaches its servers' private addresses.
            "networking": {"enabled": True, "clusterCIDR": self._loaded.config.cluster.pod_cidr},
            **(gateway_ccm_values() if self._secondary else {}),  # its replicaCount replaces the profile's
        }
        ccm = release("hcloud-ccm", HCLOUD_CCM, values,
                      pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[secret])))
        return [secret, ccm]


    def _install_node_groups(self, requests: Sequence[NodeGroupRequest], provider: k8s.Provider,
                             depends_on: Sequence[pulumi.Resource], parent: pulumi.Resource) -> NodeGroups:
        """The autoscaler's `hetzner` cloud provider (kubernetes/autoscaler cluster-autoscaler-1.36.1,
        cloudprovider/hetzner README.md, hetzner_manager.go, hetzner_node_group.go): it creates the servers
        itself, so there is no cloud resource here. Its servers join the stack's network and firewall, with the
        labels of Pulumi's servers; docs/autoscaling.md says what differs (no delete protection, ...)."""
        groups = [HetznerNodeGroup(group_name(self._loaded.stack, r.name), r, resolve_server_type(r.pool, SERVER_TYPES),
                                   r.location or self._location, self._placement_group(r)) for r in requests]
        image = self._loaded.config.cluster.image or IMAGE
        config = pulumi.Output.all(*(g.request.user_data for g in groups), *(g.placement for g in groups)).apply(
            lambda values: cluster_config(groups, image, values[:len(groups)], values[len(groups):],
                                          self._server_labels))
        return NodeGroups(
            resources=[],
            autoscaler_values={"cloudProvider": "hetzner", "autoscalingGroups": [g.chart_group for g in groups],
                               # A pool's groups in several locations are balanced only if "similar": their
                               # template nodes also differ in the group's id and the CSI location
                               # (cluster-autoscaler 1.36.1 hetzner_node_group.go buildNodeGroupLabels), and by
                               # default only the standard zone labels are ignored. The chart repeats a flag for keys
                               # that differ after a `_` (chart 9.59.0 deployment.yaml: `mustRegexFind "^[^_]+"`).
                               "extraArgs": {f"balancing-ignore-label_{i}": label
                                             for i, label in enumerate(AUTOSCALER_GROUP_LABELS)},
                               # A file, not HCLOUD_CLUSTER_CONFIG: every group's cloud-init in one environment
                               # variable passes Linux's 128 KiB cap at about five groups (the pod fails to start).
                               "extraEnv": {"HCLOUD_CLUSTER_CONFIG_FILE": CLUSTER_CONFIG_PATH}},
            secret_files={CLUSTER_CONFIG_FILE: pulumi.Output.secret(config)},
            secret_env={
                "HCLOUD_TOKEN": _hcloud_token(),  # the CCM's token: the project's servers, networks, firewalls
                "HCLOUD_NETWORK": self.network.id,
                "HCLOUD_FIREWALL": self.firewall.id,
                # A server created without an SSH key gets a root password mailed to the project owner; with
                # one, it gets none. The admin keys reach the image's default user through the user data.
                "HCLOUD_SSH_KEY": self._ssh_key_ids[0],
                "HCLOUD_PUBLIC_IPV4": "true",  # as Pulumi's servers: the nodes reach the internet directly
                "HCLOUD_PUBLIC_IPV6": "true",
            })

    def _server_labels(self, request: NodeGroupRequest) -> dict[str, str]:
        """The Hetzner labels of Pulumi's servers of the pool (see _server)."""
        return {**self._labels, "adplatform.io/pool": request.pool.name, "adplatform.io/role": request.pool.role,
                "adplatform.io/k3s": "agent"}

    def _placement_group(self, request: NodeGroupRequest) -> pulumi.Output[str] | None:
        """The spread group of the pool's Pulumi servers in the group's location, if the autoscaler's servers
        still fit it: a spread group holds SPREAD_GROUP_MAX servers (the autoscaler refuses to start when a
        group's maxSize exceeds that, and Hetzner refuses an 11th server). Otherwise none: the servers are
        placed without spreading (docs/autoscaling.md)."""
        here = [s for s in self._specs if s.pool == request.pool.name and s.location == request.location]
        if not here or min(len(here), SPREAD_GROUP_MAX) + request.max_size > SPREAD_GROUP_MAX:
            return None
        return self._spread_groups[self._group_suffix(here[0])].name

    def _install_csi(self, provider: k8s.Provider, depends_on: Sequence[pulumi.Resource],
                     parent: pulumi.Resource) -> Storage:
        """Hetzner Cloud volumes through the CSI driver: encrypted (LUKS), expandable, the default class and
        its XFS twin (providers/base.py csi_storage).

        The driver reads the `hcloud` secret the CCM add-on created. Production keeps a volume when its
        claim is deleted (reclaim Retain); the encryption passphrase is protected with it: losing it
        loses every volume's data.

        A secondary part (another provider's stack, no Hetzner CCM): the driver runs on Hetzner nodes only, reads the
        stack's token from a Secret of its own (_csi_token), and its classes, not the default, name only the Hetzner
        nodes' locations (LOCATION_TOPOLOGY_KEY), so no pod with a Hetzner claim is scheduled where it cannot attach.
        """
        opts = pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=list(depends_on))
        passphrase = random.RandomPassword("volume-encryption-passphrase", length=64, special=False,
                                           opts=pulumi.ResourceOptions(parent=parent, protect=self._protect))
        secret = k8s.core.v1.Secret(
            "hcloud-volume-encryption",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=ENCRYPTION_SECRET, namespace=HCLOUD_CSI.namespace,
                                                labels=EXCLUDE_FROM_BACKUP),
            string_data={"encryption-passphrase": passphrase.result}, type="Opaque",
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(protect=self._protect)))
        # Nodes without Hetzner Cloud volumes are in the cluster (a secondary part: the stack provider's).
        hybrid = self._foreign_nodes and not self._secondary
        token = [self._csi_token(opts)] if self._secondary else []
        # A volume's location comes from its claim's topology (WaitForFirstConsumer); the default applies to none, and
        # on a secondary part is one of its nodes' (the part has no cluster.location of its own).
        location = self._nodes[0].spec.region if self._secondary else self._location
        csi = release("hcloud-csi", HCLOUD_CSI, csi_values(location, self._loaded.profile.strict,
                                                           self._loaded.stack, provided_by_topology=hybrid,
                                                           secondary=self._secondary),
                      pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=token)))
        # XFS: the driver formats LUKS-encrypted volumes with the requested fstype too (hetznercloud/csi-driver
        # v2.22.1 docs/kubernetes/explanation/filesystems.md, internal/volumes/mount.go Publish).
        return csi_storage(STORAGE_CLASS, PROVISIONER, {
            "csi.storage.k8s.io/node-publish-secret-name": ENCRYPTION_SECRET,
            "csi.storage.k8s.io/node-publish-secret-namespace": HCLOUD_CSI.namespace,
        }, retain=self._protect, driver=[*token, secret, csi], opts=opts,
            allowed_topologies=self._volume_topology(hybrid), default=holds_default_class(self._loaded))

    def _volume_topology(self, hybrid: bool) -> Sequence[dict] | None:
        """The classes' allowedTopologies: none on a Hetzner-only cluster; cloud servers (not the vSwitch's Robot
        servers, nor other providers' nodes) where the stack is Hetzner's; the Hetzner nodes' locations where
        Hetzner is a secondary (no Robot server is there: the vSwitch couples to a Hetzner stack only)."""
        if self._secondary:
            return zone_topology(LOCATION_TOPOLOGY_KEY, [node.spec.region for node in self._nodes])
        return CLOUD_VOLUMES_ONLY if hybrid else None

    def _csi_token(self, opts: pulumi.ResourceOptions) -> k8s.core.v1.Secret:
        """The driver's token on a secondary part: the stack's hcloud token (the one the hcloud provider uses; Hetzner
        API tokens reach their whole project, docs/providers.md), in a Secret only the chart's controller names."""
        return k8s.core.v1.Secret(
            "hcloud-csi-token",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=CSI_TOKEN_SECRET["name"], namespace=HCLOUD_CSI.namespace,
                                                labels=EXCLUDE_FROM_BACKUP),
            string_data={CSI_TOKEN_SECRET["key"]: _hcloud_token()}, type="Opaque", opts=opts)


# The lease the gateway's hcloud CCM elects its leader with, beside the stack provider's CCM (gateway_ccm_values).
GATEWAY_CCM_LEASE = "hcloud-gateway-controller-manager"
GATEWAY_CCM_SECURE_PORT = 10268  # beside the stack provider's CCM on the same host network (gateway_ccm_values)


def gateway_ccm_values() -> dict:
    """hcloud CCM chart 1.35.0 values for the CCM of a secondary part that serves the gateway's Service while the
    stack provider's CCM runs too (ControlPlaneMove.gateway_balancer `new`).

    - `--controllers=service` (k8s.io/cloud-provider v0.36 alias of the service-lb controller): the stack provider's
      CCM keeps initialising nodes and watching their instances; this one neither initialises nor deletes any node,
      nor programs routes. Its balancer targets the nodes the service controller hands it: this part's, labelled
      `exclude-from-external-load-balancers=false` during the handover (providers/hybrid.py gateway_handover).
    - A lease of its own: every CCM built on k8s.io/cloud-provider elects its leader on the Lease
      kube-system/cloud-controller-manager by default (options.go ResourceName), and the stack provider's holds it
      (the AWS chart's DaemonSet elects; the hcloud chart passes --leader-elect=false only with one replica), so this
      one would wait for it forever.
    - On this provider's own nodes (the chart's nodeSelector and additionalTolerations), as the part's CSI
      controller: no server of the stack's runs here, and the pod calls only the Hetzner API.
    - One replica whatever the profile: the chart runs it on the host network (with `networking`), where its
      ports are host ports, so two replicas need two Hetzner nodes, which a handover with one moved member lacks
      (an atomic release would wait for the second and roll back). A restart only delays the balancer's updates.
    - Its own secure port: the AWS CCM's DaemonSet runs on every control-plane node, moved Hetzner members included,
      on the host network at k8s.io/cloud-provider's default 10258 (options.go BindPort): the same port here would
      fail with "address already in use"."""
    placement = secondary_controller_placement(NAME)
    return {"replicaCount": 1,
            "args": {"controllers": "service", "leader-elect-resource-name": GATEWAY_CCM_LEASE,
                     "secure-port": str(GATEWAY_CCM_SECURE_PORT)},
            "nodeSelector": placement["nodeSelector"], "additionalTolerations": placement["tolerations"]}


@dataclass(frozen=True)
class HetznerNodeGroup:
    """One autoscaler node group: servers of one type in one location."""

    name: str  # <stack prefix>-<request name>: unique in a project shared by stacks (the autoscaler's group id)
    request: NodeGroupRequest
    server_type: str
    location: str
    placement: pulumi.Output[str] | None

    @property
    def chart_group(self) -> dict:
        """The chart's autoscalingGroups entry: --nodes=<min>:<max>:<type>:<region>:<name> for hetzner."""
        return {"name": self.name, "minSize": self.request.min_size, "maxSize": self.request.max_size,
                "instanceType": self.server_type, "region": self.location}


# The autoscaler names a server `<group>-<random hex of up to 16>` (hetzner_node_group.go newNodeName), and a
# server name is its node's name and hostname (a DNS label of at most 63 characters).
MAX_GROUP_NAME = 63 - 17


def group_name(stack: str, request_name: str) -> str:
    """The autoscaler's node group of a request: stacks sharing a project never take each other's servers."""
    return f"adp-{stack}-{request_name}"


def network_location(cluster: Cluster) -> str:
    """The location that gives the private network its zone and the API and gateway balancers and unlocated servers
    their place: cluster.location, else DEFAULT_LOCATION, unless the locations the config names are in another
    network zone (a hybrid's secondary part, whose config has no cluster.location: Hetzner pools of an AWS stack in
    ash), then the first of them. A server attaches only to a subnet of its location's network zone."""
    if cluster.location:
        return cluster.location
    named = [location for _, location in located_settings(cluster) if location in NETWORK_ZONES]
    if named and NETWORK_ZONES[named[0]] != NETWORK_ZONES[DEFAULT_LOCATION]:
        return named[0]
    return DEFAULT_LOCATION


def _zone_problems(cluster: Cluster) -> list[Problem]:
    """A private network spans one network zone: every location named must be in the first one's zone."""
    named = [(key, location) for key, location in located_settings(cluster) if location in NETWORK_ZONES]
    if not named:
        return []
    first_key, first = named[0]
    zone = NETWORK_ZONES[first]
    same = ", ".join(name for name, other in NETWORK_ZONES.items() if other == zone)
    return [problem(key, f"must be a location of network zone {zone} ({same}), the zone of {first_key} ({first}): "
                    "the cluster's private network spans one Hetzner network zone, and a server attaches only to a "
                    "subnet of its location's zone", location)
            for key, location in named if NETWORK_ZONES[location] != zone]


def _node_group_names(loaded: LoadedConfig) -> list[Problem]:
    cluster = loaded.config.cluster
    found = []
    for pool in cluster.autoscaled_pools:
        long = [name for location in pool_locations(pool, cluster)
                if len(name := group_name(loaded.stack, node_group_name(pool, location)))
                > MAX_GROUP_NAME]
        if long:
            found.append(problem(f"cluster.pools[{pool.name}].autoscaling", f"needs shorter names: the autoscaler's "
                                 f"node groups {long} (adp-<stack>-<pool>-<location>) must be at most "
                                 f"{MAX_GROUP_NAME} characters, so that their servers' names stay DNS labels; "
                                 "shorten the pool's (or the stack's) name", pool.autoscaling.model_dump()))
    return found


# The autoscaler's ClusterConfig as a file (HCLOUD_CLUSTER_CONFIG_FILE, cluster-autoscaler-1.36.1
# cloudprovider/hetzner hetzner_manager.go newManager: read with os.ReadFile, plain JSON, not base64).
CLUSTER_CONFIG_FILE = "hcloud-cluster-config.json"
CLUSTER_CONFIG_PATH = f"{AUTOSCALER_FILES_DIR}/{CLUSTER_CONFIG_FILE}"


def cluster_config(groups: Sequence[HetznerNodeGroup], image: str, user_data: Sequence[str],
                   placements: Sequence[str | None], server_labels) -> str:
    """The HCLOUD_CLUSTER_CONFIG_FILE document: JSON of the autoscaler's ClusterConfig (hetzner_manager.go; Go
    matches the field names case-insensitively). `labels` and `taints` describe a node not created yet (scale from zero):
    exactly what the user data's K3s config registers; `serverLabels` are the server's Hetzner labels."""
    node_configs = {}
    for group, cloud_init, placement in zip(groups, user_data, placements):
        node_configs[group.name] = {
            "cloudInit": cloud_init,
            "labels": dict(group.request.node_labels),
            "taints": [taint_fields(t) for t in group.request.node_taints],
            "serverLabels": server_labels(group.request),
            **({"placementGroup": placement} if placement else {}),
        }
    # The default image name exists for both architectures; a custom image (id or snapshot) only for x86.
    arches = {"amd64": image, **({"arm64": image} if image == IMAGE else {})}
    document = {"imagesForArch": arches, "nodeConfigs": node_configs}
    return json.dumps(document, sort_keys=True)


def md5_fingerprint(public_key: str) -> str:
    """The fingerprint Hetzner keeps for an SSH key (and refuses twice in a project): the MD5 of the key's
    decoded body as colon-separated hex, what `ssh-keygen -l -E md5` prints."""
    digest = hashlib.md5(base64.b64decode(public_key.split()[1]), usedforsecurity=False).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


_CSI_SIDECAR = {"requests": {"cpu": "10m", "memory": "20Mi"}, "limits": {"memory": "80Mi"}}
_CSI_DRIVER = {"requests": {"cpu": "10m", "memory": "40Mi"}, "limits": {"memory": "128Mi"}}


def csi_values(location: str, ha: bool, stack: str, provided_by_topology: bool = False, *,
               secondary: bool = False) -> dict:
    """hcloud-csi chart 2.22.1 values (chart/values.yaml). `provided_by_topology` (a hybrid cluster on a Hetzner
    stack): the driver reports PROVIDED_BY_LABEL as topology and pins each new volume to cloud nodes (chart 2.11+
    `global.enableProvidedByTopology`; once on, it stays on). `secondary`: Hetzner is not the stack's provider (no
    Hetzner CCM, no K3s server here); the location topology alone keeps volumes on Hetzner nodes (_volume_topology)."""
    controller_containers = ("csiAttacher", "csiResizer", "csiProvisioner", "livenessProbe")
    values = {
        "controller": {
            "replicaCount": 2 if ha else 1,
            "hcloudVolumeDefaultLocation": location,
            "volumeExtraLabels": {STACK_LABEL: stack},
            "priorityClassName": "system-cluster-critical",
            "podDisruptionBudget": {"create": ha, "minAvailable": 1, "maxUnavailable": ""},
            "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "hcloud-csi",
                                                  "app.kubernetes.io/component": "controller"}},
                "topologyKey": "kubernetes.io/hostname"}]}} if ha else {},
            "resources": {**{c: _CSI_SIDECAR for c in controller_containers}, "hcloudCSIDriver": _CSI_DRIVER},
        },
        "node": {
            "priorityClassName": "system-node-critical",
            # Volumes attach wherever their pods run, dedicated database pools included.
            "tolerations": [{"operator": "Exists"}],
            "resources": {"csiNodeDriverRegistrar": _CSI_SIDECAR, "livenessProbe": _CSI_SIDECAR,
                          "hcloudCSIDriver": _CSI_DRIVER},
        },
        "metrics": {"enabled": True},
        # Our own StorageClass (providers/hetzner.py): encrypted, reclaim policy per environment.
        "storageClasses": [],
    }
    if provided_by_topology:
        values["global"] = {"enableProvidedByTopology": True}
    if provided_by_topology or secondary:
        # The node plugin only where Hetzner Cloud volumes can attach: our provider label is on every node from
        # registration (the CCM's provided-by only on Hetzner's own), so other clouds' nodes never run it.
        values["node"]["nodeSelector"] = {PROVIDER_LABEL: NAME}
    if secondary:
        # The controller on Hetzner nodes too: the machines that hold the Hetzner token are Hetzner's (a node of
        # another provider, or the stack's servers, never run a pod with it); its token from CSI_TOKEN_SECRET (the
        # chart's default, `hcloud`, is the CCM's, which no secondary has).
        values["controller"].update(secondary_controller_placement(NAME),
                                    hcloudToken={"existingSecret": dict(CSI_TOKEN_SECRET)})
    return values


def _hcloud_token() -> pulumi.Output[str]:
    """The same token the hcloud provider uses (hcloud:token or HCLOUD_TOKEN), kept secret."""
    token = pulumi.Config("hcloud").get_secret("token")
    if token is not None:
        return token
    env = os.environ.get("HCLOUD_TOKEN")
    if env:
        return pulumi.Output.secret(env)
    raise pulumi.RunError("hcloud:token is not set: run `pulumi config set --secret hcloud:token <token>` "
                          "(or export HCLOUD_TOKEN); the cloud controller manager needs it")
