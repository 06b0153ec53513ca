"""The provider interface: what every server provider gives the layers above it.

A provider turns the validated config into servers and returns `Node` values plus the few
facts the cluster layer needs (API endpoints, K3s flags, provider add-ons). Nothing above
`providers/` knows which provider it runs on.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Mapping, Protocol, Sequence

import pulumi
import pulumi_command as command
from pulumi.runtime import config as runtime_config
import pulumi_kubernetes as k8s

import yaml
from components.host_metrics import CILIUM_AGENT_PORT, CILIUM_OPERATOR_PORT, HUBBLE_METRICS_PORT, NODE_EXPORTER_PORT
from config import LoadedConfig, Problem
from config.load import is_secret
from config.catalog import DATABASE_ROLES, SIZES
from config.errors import problem
from config.model_base import check_host_key
from providers.previous_run import RECORDED_KEYS
from config.model import CONTROL_PLANE, Cluster, ControlPlane, Pool, StackConfig, node_location, node_name
from policy.rules import PEER_MARK

K3sRole = Literal["server", "agent"]


@dataclass(frozen=True)
class NodeSpec:
    """One server to create, derived from the config alone (no provider calls)."""

    name: str  # stable: <pool>-<index>, so re-ordering pools in config replaces nothing
    pool: str
    index: int
    k3s_role: K3sRole
    workload_role: str  # a config.catalog.ROLES key: decides host tuning and kubelet flags
    size: str | None
    server_type: str | None
    location: str | None
    labels: dict[str, str]
    taints: tuple[str, ...]
    # Where the provider put the node, in the words its cloud controller manager would use for
    # topology.kubernetes.io/region and /zone: the kubelet registers with them where no CCM initialises the node
    # (components/k3s/config.py topology_labels). Set by the provider's Infrastructure; None: unknown (the zone is
    # then the configured location, if any).
    region: str | None = None
    zone: str | None = None


@dataclass(frozen=True)
class Node:
    spec: NodeSpec
    hostname: str
    public_ip: pulumi.Output[str]
    private_ip: pulumi.Output[str]
    connection: command.remote.ConnectionArgs
    server: pulumi.Resource  # what remote commands on this node depend on
    # The cloud machine itself (its id changes only when it is replaced); None for an existing host that
    # Pulumi never replaces (bare metal). components/k3s/lifecycle.py drains the node when it changes.
    machine: pulumi.Resource | None = None
    # The provider ID the kubelet registers with (kubelet-arg provider-id, components/k3s/config.py), where neither a
    # cloud controller manager nor a boot command sets one: a hybrid cluster's secondary parts (PROVIDER_ID below).
    provider_id: pulumi.Output[str] | None = None

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class ClientAddress:
    """How the gateway's load balancer hands the client's address to the gateway (Envoy in Cilium's agents),
    which passes it on as X-Forwarded-For: ad serving needs it for geo-targeting and fraud checks.

    `proxy_protocol`: the load balancer prefixes every connection with a PROXY header (turned on by
    `annotations` on the gateway's LoadBalancer Service), and Cilium's Gateway listeners then accept only
    such connections (`gatewayAPI.enableProxyProtocol` is global): set it only where the balancer sends them.
    Otherwise the gateway Service keeps the client's source address with `externalTrafficPolicy: Local`:
    the balancer then health-checks the Service's healthCheckNodePort and sends only to nodes that answer.
    """

    proxy_protocol: bool
    annotations: Mapping[str, str] = field(default_factory=dict)
    why: str = ""


# Where the balancer cannot send PROXY headers: traffic stays on the node it arrives at.
LOCAL_TRAFFIC = ClientAddress(proxy_protocol=False, why="externalTrafficPolicy Local keeps the source address")


# The instance metadata service of AWS, GCP and Azure (one address, plain HTTP), as a NetworkPolicy egress block.
INSTANCE_METADATA: tuple[str, tuple[int, ...]] = ("169.254.169.254/32", (80,))


@dataclass(frozen=True)
class ClusterProfile:
    """Provider facts the K3s/Cilium layer needs."""

    k3s_disable: tuple[str, ...]  # bundled K3s components the provider replaces
    external_cloud_provider: bool  # a cloud controller manager initialises the nodes
    cilium_values: dict  # merged over the provider-neutral Cilium values (e.g. routing mode)
    # Annotations a `LoadBalancer` Service needs on this provider (the gateway's public entry).
    load_balancer_annotations: dict[str, str] = field(default_factory=dict)
    # The servers' own disks are local NVMe (not network block storage): stores that want local
    # storage (ScyllaDB) carve an XFS volume from them instead of using the CSI storage class.
    local_nvme: bool = False
    # The add-ons are Cilium resources (LB IPAM pools, ...): install them once Cilium runs (its
    # operator registers the CRDs), not only once the API answers.
    addons_need_cni: bool = False
    client_address: ClientAddress = LOCAL_TRAFFIC
    # Shell commands an autoscaled node's cloud-init runs first at every boot (idempotent), for what only the
    # machine knows: e.g. AWS writes the kubelet's provider ID from instance data (aws.py PROVIDER_ID_COMMAND).
    # Where a cloud controller sets the provider ID itself (Hetzner), none.
    node_boot_commands: tuple[str, ...] = ()
    # The provider's add-ons that call its API from a pod (the cluster autoscaler) take the credentials of the node
    # they run on from the instance metadata service (AWS instance role, GCP service account, Azure managed identity):
    # their namespace must reach INSTANCE_METADATA, which every other namespace's egress excludes.
    credentials_from_instance_metadata: bool = False
    # The provider compresses the whole user data document itself (AWS: gzip, for EC2's 16 KiB): the node's scripts go
    # in it as text, which that one gzip shrinks far better than scripts already compressed and base64-encoded one by
    # one (components/k3s/userdata.py); elsewhere each script is compressed on its own.
    compresses_user_data: bool = False

    @property
    def gateway_annotations(self) -> dict[str, str]:
        """The gateway's LoadBalancer Service annotations: the provider's, and those that carry client addresses."""
        return {**self.load_balancer_annotations, **self.client_address.annotations}


# Installs provider add-ons (cloud controller manager, ...) once the cluster API answers.
AddonInstaller = Callable[[k8s.Provider, Sequence[pulumi.Resource], pulumi.Resource], list[pulumi.Resource]]


@dataclass(frozen=True)
class Storage:
    """The provider's block storage as the cluster sees it."""

    default_class: str  # the default StorageClass (expandable; production keeps a released volume)
    resources: list[pulumi.Resource]  # what a workload with a PVC must wait for
    # The same block storage formatted XFS (csi.storage.k8s.io/fstype: xfs), for stores whose vendors
    # require it (ScyllaDB refuses ext4 outside developer mode); None where the provider has none.
    xfs_class: str | None = None
    # A hybrid cluster (providers/hybrid.py): pool -> its nodes' own classes (default, xfs) where they are not the
    # two above (another provider's block storage, attachable only on that provider's nodes).
    pool_classes: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)
    # Class -> the same volumes deleted with their claim, where that class keeps released volumes (production): a
    # scratch volume (a backup job's download, a restore drill's copy) claimed from a Retain class would leave a
    # paid volume behind every run.
    scratch_classes: Mapping[str, str] = field(default_factory=dict)

    def scratch_of(self, storage_class: str) -> str:
        """The class for volumes gone with their pod, of the same provider and topology as `storage_class`."""
        return self.scratch_classes.get(storage_class, storage_class)

    def classes_of(self, pools: Sequence[str]) -> tuple[str, str | None]:
        """The (default, xfs) classes a workload on `pools` claims: theirs when they share one provider's (a hybrid
        cluster's validation refuses a store whose pools do not), else the stack provider's."""
        own = {self.pool_classes.get(p, (self.default_class, self.xfs_class)) for p in pools}
        return own.pop() if len(own) == 1 else (self.default_class, self.xfs_class)


def holds_default_class(loaded: LoadedConfig) -> bool:
    """Whether this part's block storage is the cluster's default StorageClass (one default only): the provider
    `clusterServices.defaultStorageProvider` names, else the stack provider's, never a secondary part's."""
    chosen = loaded.config.cluster_services.default_storage_provider
    return loaded.config.provider == chosen if chosen else not secondary_part(loaded)


def holds_data(specs: Sequence[NodeSpec]) -> bool:
    """Whether any of these nodes runs a database role (a hybrid cluster's secondary installs its storage only then)."""
    return any(spec.workload_role in DATABASE_ROLES for spec in specs)


def zone_topology(key: str, zones: Sequence[str]) -> tuple[dict, ...]:
    """StorageClass allowedTopologies: only nodes whose CSI node plugin reports one of `zones` under `key` (the
    driver's own zone key: no other provider's node carries it)."""
    return ({"matchLabelExpressions": [{"key": key, "values": sorted(set(zones))}]},)


# Installs the provider's CSI driver and its StorageClasses (cluster-services layer).
StorageInstaller = Callable[[k8s.Provider, Sequence[pulumi.Resource], pulumi.Resource], Storage]

DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
# Read by the CSI external-provisioner and handed to the driver as the volume's filesystem (every
# driver here formats ext4 without it).
FSTYPE_PARAMETER = "csi.storage.k8s.io/fstype"


def csi_storage(name: str, provisioner: str, parameters: Mapping[str, pulumi.Input[str]], *, retain: bool,
                driver: Sequence[pulumi.Resource], opts: pulumi.ResourceOptions,
                default_aliases: Sequence[pulumi.Alias] = (),
                allowed_topologies: Sequence[Mapping[str, object]] | None = None, default: bool = True) -> Storage:
    """A CSI driver's block storage as two StorageClasses: `name`, the cluster default, and `<name>-xfs`,
    the same volumes formatted XFS (not default).

    Both carry the driver's `parameters` (volume type, encryption), allow volume expansion, bind when
    the first pod is scheduled (a zonal volume is created where its pod runs) and keep a released
    volume when `retain` (production). They differ only in name, the default annotation and fstype.
    `driver` is what provisions them (the CSI release, its secrets): the classes wait for it, and a
    workload with a claim waits for all of it (Storage.resources). `allowed_topologies` (a hybrid cluster): the
    nodes the volumes can attach to; the scheduler places a pod with such a claim only there. `default`: False for
    a hybrid cluster's secondary provider (the stack provider's class is the cluster default; one default only).
    """
    xfs = f"{name}-xfs"
    after = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=list(driver)))
    classes = [
        _storage_class(name, provisioner, dict(parameters), retain, default=default,
                       allowed_topologies=allowed_topologies,
                       opts=pulumi.ResourceOptions.merge(after, pulumi.ResourceOptions(aliases=list(default_aliases)))),
        _storage_class(xfs, provisioner, {**parameters, FSTYPE_PARAMETER: "xfs"}, retain, default=False,
                       allowed_topologies=allowed_topologies, opts=after),
    ]
    scratch = {}
    if retain:  # `<name>-scratch`: the same volumes, deleted with their claim (Storage.scratch_classes)
        scratch = {name: f"{name}-scratch"}
        classes.append(_storage_class(scratch[name], provisioner, dict(parameters), False, default=False,
                                      allowed_topologies=allowed_topologies, opts=after))
    return Storage(default_class=name, resources=[*driver, *classes], xfs_class=xfs, scratch_classes=scratch)


def _storage_class(name: str, provisioner: str, parameters: dict[str, pulumi.Input[str]], retain: bool, *,
                   default: bool, opts: pulumi.ResourceOptions,
                   allowed_topologies: Sequence[Mapping[str, object]] | None = None) -> k8s.storage.v1.StorageClass:
    return k8s.storage.v1.StorageClass(
        f"storage-class-{name}",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=name,
                                            annotations={DEFAULT_CLASS_ANNOTATION: "true"} if default else None),
        provisioner=provisioner,
        parameters=parameters,
        allow_volume_expansion=True,
        volume_binding_mode="WaitForFirstConsumer",
        reclaim_policy="Retain" if retain else "Delete",
        allowed_topologies=list(allowed_topologies) if allowed_topologies else None,
        opts=opts)


@dataclass(frozen=True)
class NodeGroupRequest:
    """One node group the cluster autoscaler scales (docs/autoscaling.md): the nodes an autoscaled pool may add
    in one location beyond its Pulumi-managed floor. The autoscaler creates and deletes these machines, so they
    are not in Pulumi's state; each configures itself at first boot from `user_data`."""

    name: str  # `<pool>-<location>`: unique in the cluster, a DNS label (the provider's group name derives from it)
    pool: Pool  # the autoscaled pool (labels, taints, size, server type)
    location: str | None  # the pool's location (zone) this group creates nodes in; None: the provider's default
    min_size: int  # always 0: the floor is Pulumi-managed nodes, not group members
    max_size: int  # this location's share of pool.autoscaling.extra
    # cloud-init user data (a secret: it carries the agent join token): the same host tuning and K3s agent
    # install the SSH path runs (components/k3s/userdata.py), with the node's labels and taints.
    user_data: pulumi.Output[str]
    spec: NodeSpec  # the node this group's machines are (group_spec): server type, disk, labels, taints
    # The labels and taints the group's nodes register with (exactly the K3s config's node-label/node-taint,
    # location included), for the autoscaler's template of a node it has not created yet (scale from zero).
    node_labels: Mapping[str, str] = field(default_factory=dict)
    node_taints: tuple[str, ...] = ()  # "key[=value]:Effect" (config.model.taint_fields splits one)


def group_spec(name: str, pool: Pool, location: str | None, stack_provider: str) -> NodeSpec:
    """The NodeSpec every node of one node group shares: its pool's role, size, labels and taints in `location`,
    as node_specs() describes the pool's Pulumi-managed nodes (server type, disk and tags follow from it). Index 0:
    the pool's per-index facts (location round-robin) do not apply; the group fixes the location."""
    return NodeSpec(name, pool.name, 0, "agent", pool.role, pool.size, pool.server_type, location,
                    pool_labels(pool, stack_provider), pool.node_taints)


def node_group_name(pool: Pool, location: str | None) -> str:
    """NodeGroupRequest.name of a pool's group in `location`."""
    return f"{pool.name}-{location}" if location else pool.name


@dataclass(frozen=True)
class NodeGroups:
    """What a provider made of the node group requests."""

    resources: list[pulumi.Resource]  # cloud resources (launch templates, ASGs, MIGs, VMSSs; none on Hetzner)
    # The cluster-autoscaler chart's values for this provider (cloudProvider, autoDiscovery or autoscalingGroups,
    # extraEnv, ...), merged over the provider-neutral values (components/services/autoscaler.py). Secrets go in
    # `secret_env`, never here.
    autoscaler_values: dict
    # Environment variables the autoscaler reads from a Secret the autoscaler component creates (name -> value),
    # e.g. the Hetzner token. Small values only: Linux caps one environment variable at 128 KiB (MAX_ARG_STRLEN).
    secret_env: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    # Files (name -> content) the autoscaler component puts in a second Secret, mounted read-only in
    # AUTOSCALER_FILES_DIR: for what may outgrow an environment variable (the Hetzner node groups' cloud-init).
    secret_files: dict[str, pulumi.Input[str]] = field(default_factory=dict)


# Where the autoscaler's container finds NodeGroups.secret_files (a provider names a file as f"{DIR}/{name}").
AUTOSCALER_FILES_DIR = "/etc/adplatform/autoscaler"


# Creates the provider's node groups for the autoscaled pools once the cluster API answers (the autoscaler is
# then installed with the values they return). Providers that cannot create machines (bare metal) have none.
NodeGroupInstaller = Callable[[Sequence[NodeGroupRequest], k8s.Provider, Sequence[pulumi.Resource],
                               pulumi.Resource], NodeGroups]


@dataclass(frozen=True)
class PeerAddress:
    """A cluster node as a firewall on the public internet sees it (providers/hybrid.py): its name, for stable
    rule names, and its public address as a single-address CIDR."""

    name: str
    cidr: pulumi.Output[str]


@dataclass(frozen=True)
class PeerQuota:
    """A provider's documented default limit that admitting peers counts against (`admit_peers`): providers/hybrid.py
    refuses a config whose peers would exceed it before any resource exists, instead of the cloud refusing rules in
    the middle of an update."""

    limit: int
    counted: str  # what counts against it, for the error: "inbound IPv4 rules of one security group (...)"
    # How many the provider's part would use: from its config (admin CIDRs: its own rules count too) and the peer
    # rules (providers/hybrid.py peer_rules, the peers named by node).
    used: Callable[[StackConfig, Sequence[tuple["ClusterPort", Sequence[str]]]], int]


# Admits exactly the given peers on exactly the given cluster ports through the provider's firewall (a cluster
# whose nodes reach each other over the public internet). A rule resource that names several peers is updated when
# one of them leaves, in Pulumi's forward pass, before that node's drain (a delete, at the end): it takes the hooks
# given (components/k3s/depart.py), which drain the leaving nodes first. Returns, by node name, the resources that
# admit that node alone: they are deleted with it, and its drain command depends on them, so Pulumi deletes the
# drain (runs it) first (providers/hybrid.py over_internet, components/k3s/lifecycle.py).
@dataclass(frozen=True)
class AdmittedPeers:
    """What a provider's PeerAdmitter created: every rule admitting peers (each node's K3s install waits for all of
    them: over the internet a node reaches its peers only through them) and, by node name, the rules that admit that
    node alone (its drain command depends on them, so it runs before they go)."""

    rules: tuple[pulumi.Resource, ...] = ()
    alone: Mapping[str, Sequence[pulumi.Resource]] = field(default_factory=dict)


PeerAdmitter = Callable[[Sequence[tuple["ClusterPort", Sequence[PeerAddress]]], pulumi.ResourceHookBinding],
                        AdmittedPeers]


@dataclass(frozen=True)
class Seal:
    """An auto-unseal key outside the cluster (the provider's key management service, or an external transit engine)
    and the one credential allowed to use it: encrypt and decrypt with that key alone (docs/security.md,
    "Unsealing"). The secret store renders OpenBao's
    `seal "<type>"` stanza from `settings`, plus `file_settings` (attribute -> key of `credentials`, given as the path
    where that key is mounted), and puts `credentials` in a Secret of its own namespace only, excluded from backups;
    `env` are environment variables of the servers read from that Secret (variable -> key of `credentials`)."""

    type: str  # OpenBao's seal name (built into OpenBao 2.6; cloud ones plugins from 2.7): awskms, gcpckms, transit
    settings: Mapping[str, pulumi.Input[str]]  # the stanza's attributes, nothing secret in them (a ConfigMap)
    credentials: Mapping[str, pulumi.Input[str]]  # the credential's Secret: key -> value
    env: Mapping[str, str] = field(default_factory=dict)
    file_settings: Mapping[str, str] = field(default_factory=dict)
    resources: tuple[pulumi.Resource, ...] = ()  # the key and the credential: the servers wait for them


# The seals that keep the unseal key outside the cluster (clusterServices.secrets.seal.type).
AUTO_SEALS = ("kms", "transit")
# Creates the stack's seal key and its credential (cluster-services layer), named after the secret store (`name`).
SealInstaller = Callable[[str], Seal]


@dataclass(frozen=True)
class Infrastructure:
    nodes: list[Node]
    api_private_endpoint: pulumi.Output[str]  # nodes join here (LB or first server); Cilium uses NODE_LOCAL_API
    api_public_endpoint: pulumi.Output[str]  # the deployer (pulumi, kubectl) reaches the API here
    tls_sans: pulumi.Output[list[str]]
    cluster: ClusterProfile
    install_addons: AddonInstaller | None = None
    install_storage: StorageInstaller | None = None
    install_node_groups: NodeGroupInstaller | None = None
    # The locations the node groups of an autoscaled pool without locations of its own span, one group each (the
    # autoscaler's groups are per location: components/services/autoscaler.py requests). (None,): one group in
    # the provider's default, which may itself span several zones (providers/azure.py).
    unpinned_group_locations: tuple[str | None, ...] = (None,)
    # A hybrid cluster (providers/hybrid.py): node name -> the profile of the provider the node runs on, where
    # that differs from `cluster` (the stack provider's). The K3s layer configures each node with its own.
    node_profiles: Mapping[str, ClusterProfile] = field(default_factory=dict)
    # Providers whose nodes can join a cluster over the public internet (providers/hybrid.py INTERNET): opens the
    # provider's firewall to the other nodes' public addresses on the cluster's ports. None: it cannot.
    admit_peers: PeerAdmitter | None = None
    # The provider's key management service as OpenBao's auto-unseal (Provider.kms_seal); None: it has none.
    install_seal: SealInstaller | None = None
    # Node name -> where that node joins (and its drain reaches the API), where that differs from
    # `api_private_endpoint`: over the internet, the servers of a provider whose public balancer does not serve its
    # own backends join at its private one (Provider.servers_join_privately, providers/hybrid.py server_join_endpoints).
    join_endpoints: Mapping[str, pulumi.Output[str]] = field(default_factory=dict)
    # Node name -> the firewall resources that admit that node alone (over the internet, PeerAdmitter): its drain
    # depends on them, so it runs before they go.
    admitted_by: Mapping[str, Sequence[pulumi.Resource]] = field(default_factory=dict)
    # Every firewall resource admitting the cluster's peers over the internet (PeerAdmitter): every K3s install waits
    # for them, so a node joins only once every provider admits it, and a peer rule's update (with its departure
    # hook, components/k3s/depart.py) is done before anything that depends on the cluster updates.
    peer_rules: Sequence[pulumi.Resource] = ()

    def profile_of(self, node_name: str) -> ClusterProfile:
        return self.node_profiles.get(node_name, self.cluster)

    def join_endpoint_of(self, node_name: str) -> pulumi.Output[str]:
        return self.join_endpoints.get(node_name, self.api_private_endpoint)

    @property
    def servers(self) -> list[Node]:
        return [n for n in self.nodes if n.spec.k3s_role == "server"]

    @property
    def agents(self) -> list[Node]:
        return [n for n in self.nodes if n.spec.k3s_role == "agent"]


@dataclass(frozen=True)
class ApiEndpoints:
    """Where the Kubernetes API answers."""

    private: pulumi.Output[str]  # the nodes and Cilium
    public: pulumi.Output[str]  # the deployer (pulumi, kubectl)
    balancers: tuple[pulumi.Input[str], ...] = ()  # the load balancers' addresses or DNS names (certificate SANs)


def first_server_api(servers: Sequence[Node]) -> ApiEndpoints:
    """No load balancer: everyone uses the first server (the one that initialises the cluster). A hybrid
    cluster's secondary provider has no servers: the stack provider's API is the cluster's (providers/hybrid.py),
    so its own endpoints stay empty and unused."""
    if not servers:
        return ApiEndpoints(private=pulumi.Output.from_input(""), public=pulumi.Output.from_input(""))
    return ApiEndpoints(private=servers[0].private_ip, public=servers[0].public_ip)


def assemble(nodes: list[Node], api: ApiEndpoints, cluster: ClusterProfile, *,
             install_addons: AddonInstaller | None = None,
             install_storage: StorageInstaller | None = None,
             install_node_groups: NodeGroupInstaller | None = None,
             unpinned_group_locations: Sequence[str | None] = (None,),
             admit_peers: PeerAdmitter | None = None,
             install_seal: SealInstaller | None = None) -> Infrastructure:
    """The Infrastructure of `nodes`; the API certificate names every address the API is reached at:
    the load balancers and each server's public and private address."""
    servers = [n for n in nodes if n.spec.k3s_role == "server"]
    addresses = [*api.balancers, *[n.public_ip for n in servers], *[n.private_ip for n in servers]]
    sans = pulumi.Output.all(*addresses).apply(lambda values: sorted({v for v in values if v}))
    return Infrastructure(nodes=nodes, api_private_endpoint=api.private, api_public_endpoint=api.public,
                          tls_sans=sans, cluster=cluster, install_addons=install_addons,
                          install_storage=install_storage, install_node_groups=install_node_groups,
                          unpinned_group_locations=tuple(unpinned_group_locations), admit_peers=admit_peers,
                          install_seal=install_seal)


class ProviderInfrastructure(pulumi.ComponentResource):
    """Base of each provider's component: every resource it creates is its child, named from the stack."""

    infrastructure: Infrastructure

    def __init__(self, type_name: str, name: str, loaded: LoadedConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"adplatform:providers:{type_name}", name, None, opts)
        self._loaded = loaded
        self._prefix = f"adp-{loaded.stack}"  # provider-side names: stacks share an account or project
        self._protect = loaded.profile.protect

    def _opts(self, protect: bool = False, **kwargs) -> pulumi.ResourceOptions:
        """Child options; `protect=True` marks stateful resources, protected in protected profiles only."""
        return pulumi.ResourceOptions(parent=self, protect=protect and self._protect, **kwargs)

    def _resize_hooks(self, spec: NodeSpec, hostname: str, power_off_inputs: Sequence[Sequence[str]],
                      own_address: Callable[[Mapping | None], pulumi.Input[str]],
                      user: str) -> pulumi.ResourceHookBinding:
        """The hooks that drain a server's node before an in-place change powers it off and return it after
        (components/k3s/resize.py). `power_off_inputs`: the server resource's inputs (engine names, paths)
        the provider changes by stopping the machine; `own_address`: the node's SSH address from the
        server's outputs."""
        from components.k3s.resize import ResizeTarget, resize_hooks  # the K3s layer imports this module

        return resize_hooks(ResizeTarget(hostname, spec.pool, tuple(tuple(p) for p in power_off_inputs)),
                            server=spec.k3s_role == "server", own_address=own_address, user=user,
                            private_key=self._loaded.secrets.ssh_private_key)


@dataclass(frozen=True)
class Credential:
    """A credential of a provider's own SDK config (`hcloud:token`): never plain text in the stack file."""

    key: str  # namespace:key, as `pulumi config set --secret` takes it
    env: tuple[str, ...] = ()  # environment variables the SDK reads instead
    required: bool = False  # the program cannot run without it (the SDK's other sources do not reach our code)


def check_credentials(credentials: Sequence[Credential]) -> list[Problem]:
    """With the config validation, before any resource: each credential set in the stack is a secret, and each
    required one is set (in the stack or the environment). The messages never repeat a credential's value."""
    found = []
    for cred in credentials:
        value = runtime_config.get_config(cred.key)
        if value and not is_secret(cred.key):
            found.append(problem(cred.key, f"must be stored as a secret (pulumi config set --secret {cred.key} ...), "
                                 "it is in plain text in the stack file"))
        elif not value and cred.required and not any(os.environ.get(name) for name in cred.env):
            alternative = f" (or export {' or '.join(cred.env)})" if cred.env else ""
            found.append(problem(cred.key, f"must be set: pulumi config set --secret {cred.key} <value>{alternative}"))
    return found


def check_seal(loaded: LoadedConfig, kms_seal: str | None) -> list[Problem]:
    """clusterServices.secrets.seal asks for what the stack's provider and secrets backend can do."""
    secrets = loaded.config.cluster_services.secrets
    seal = secrets.seal
    key = "clusterServices.secrets.seal"
    found: list[Problem] = []
    if seal.type == "kms" and kms_seal is None:
        found.append(problem(f"{key}.type", f"must be static or transit on provider {loaded.config.provider}: it "
                             "offers no key management service OpenBao can unseal with (kms: aws, gcp; "
                             "docs/security.md)", "kms"))
    if seal.type in AUTO_SEALS and secrets.backend != "openbao":
        found.append(problem(f"{key}.type", "must be left unset with clusterServices.secrets.backend vault (unsealed "
                             f"by hand with Shamir keys); {seal.type} needs backend openbao", seal.type))
    if seal.type == "transit" and seal.transit is None:
        found.append(problem(f"{key}.transit", "must be set with seal type transit: address, keyName and tlsCa of "
                             "the external OpenBao/Vault transit engine (mountPath, namespace, disableRenewal "
                             "optional; docs/security.md)"))
    if seal.transit is not None and seal.type != "transit":
        found.append(problem(f"{key}.transit", f"is only read with {key}.type transit (the type is "
                             f"{seal_type(loaded, kms_seal is not None)}); set the type or remove it", "set"))
    if seal.type == "transit" and loaded.secrets.seal_token is None:
        found.append(problem("secretsSealToken", "must be set with seal type transit: pulumi config set --secret "
                             "adplatform:secretsSealToken <token> (a periodic orphan token allowed to update "
                             "<mountPath>/encrypt/<keyName> and <mountPath>/decrypt/<keyName>)"))
    if seal.migrate_from_static and seal_type(loaded, kms_seal is not None) not in AUTO_SEALS:
        found.append(problem(f"{key}.migrateFromStatic", "must be false unless the seal is kms or transit (it keeps "
                             "the static seal beside the new seal while OpenBao migrates)", True))
    return found


def seal_type(loaded: LoadedConfig, offers_kms: bool) -> str:
    """The seal in effect: the configured one, else the provider's KMS for OpenBao where there is one."""
    secrets = loaded.config.cluster_services.secrets
    if secrets.seal.type is not None:
        return secrets.seal.type
    return default_seal(secrets.backend, offers_kms)


def default_seal(backend: str, offers_kms: bool) -> str:
    """The seal of a stack that sets no clusterServices.secrets.seal.type: it follows the stack provider (its KMS)."""
    return "kms" if offers_kms and backend == "openbao" else "static"


class Provider(Protocol):
    name: str
    server_types: dict[str, str]  # size class -> provider server type, one entry per SIZES key
    credentials: tuple[Credential, ...]  # the SDK config keys that hold credentials (check_credentials)
    # An autoscaled pool with no location gets one node group per zone the provider spreads nodes over
    # (Infrastructure.unpinned_group_locations), named `<pool>-<zone>`; False: one group named `<pool>`.
    zonal_node_groups: bool
    # Its nodes can join another provider's cluster over the public internet, or host such nodes: its
    # Infrastructure has `admit_peers`, and `create` takes `over_internet` (providers/hybrid.py INTERNET).
    internet_peering: bool
    # The MTU of its nodes' network interface toward other providers' nodes over the internet (absent: 1500, what an
    # internet path carries; providers/hybrid.py takes the smallest of a cluster's providers for Cilium's MTU).
    internet_mtu: int
    # Where admitting peers counts against a documented limit of its firewall (absent: none checked).
    peer_quota: PeerQuota | None
    # Nodes of other providers can reach its public API balancer (cluster.apiLoadBalancer.public) and join through it
    # (providers/hybrid.py): it admits every address (Hetzner), or its `admit_peers` admits every cluster node's on the
    # API port (AWS: the balancer's security group; Azure and GCP: the nodes' NSG or VPC firewall, which see the
    # client's address). Absent or False: other providers' nodes cannot join there.
    public_api_balancer_admits_peers: bool
    # Its own K3s servers cannot join at its public API balancer, so over the internet they join at its private one
    # (Infrastructure.api_private_endpoint, reachable inside its network) while every other node joins at the public
    # one (GCP: providers/gcp.py says why). Absent or False: every node joins at the public balancer.
    servers_join_privately: bool
    # As a hybrid cluster's secondary (no K3s servers of its own) it installs its own CSI driver and classes on its own
    # nodes, so its pools may host stores (providers/hybrid.py pool_roles; Hetzner, AWS, GCP, Azure). Absent or False:
    # stateless pools only there.
    secondary_storage: bool
    # OpenBao's seal type for the provider's key management service (Infrastructure.install_seal); None: it has none,
    # and the secret store keeps its unseal key in the cluster (clusterServices.secrets.seal).
    kms_seal: str | None

    def validate(self, loaded: LoadedConfig) -> list[Problem]:
        """Provider-specific config checks (locations, zones), run before any resource exists."""

    def create(self, loaded: LoadedConfig) -> Infrastructure:
        """Create networks, firewall and servers; return the nodes."""


# Every node says which provider runs it (the stack's, or its pool's `provider`): stores and services spread
# over or prefer providers by it, and StorageClasses of one provider's volumes are limited to its nodes.
PROVIDER_LABEL = "adplatform.io/provider"
CONTROL_PLANE_SELECTOR = {"node-role.kubernetes.io/control-plane": "true"}  # K3s labels its servers so


def secondary_controller_placement(provider: str) -> dict:
    """Where a hybrid cluster's secondary part runs its CSI controller (the chart's controller nodeSelector and
    tolerations): on that provider's own nodes, whose API the controller calls for its volumes, since no K3s server
    runs there; any of its pools, the database pools' NoSchedule taints included."""
    return {"nodeSelector": {PROVIDER_LABEL: provider}, "tolerations": [{"operator": "Exists", "effect": "NoSchedule"}]}


def pool_labels(pool: Pool, stack_provider: str) -> dict[str, str]:
    """The labels every node of `pool` registers with (its K3s node-label, apart from its location's)."""
    return {**pool.node_labels, PROVIDER_LABEL: pool.provider or stack_provider}


def secondary_part(loaded: LoadedConfig) -> bool:
    """Whether `loaded` is a hybrid cluster's secondary part (providers/hybrid.py part): no K3s server of its own, or
    only control-plane members moving to it (ControlPlane.move). Either way the stack provider runs the cluster's API
    balancer and add-ons, so this part runs no CCM and its machines get no CCM rights: its nodes, servers included,
    are given what the secondary's own CSI driver needs and nothing more."""
    cfg = loaded.config
    cp = cfg.cluster.control_plane
    # After the flip the move's provider is the stack's and the originals' is not; before it, the move's is not.
    moved_here = cp.original_provider == cfg.provider if cp.original_provider is not None \
        else cp.move is not None and cp.move.provider == cfg.provider
    return moved_here or not cp.members(cfg.provider)


# A Node's spec.providerID, set only when it registers (the API server then refuses any change but from ""). The stack
# provider's CCM runs for the whole cluster, and its node lifecycle controller (k8s.io/cloud-provider
# controllers/nodelifecycle MonitorNodes) DELETES a NotReady Node whose instance its cloud reports missing and skips
# one its lookup fails for. A Node without provider ID is looked up by name: hcloud CCM 1.35 lookupServer finds no
# cloud server and cloud-provider-azure 1.36 InstanceExists no VM of that name, so both report "missing" and delete
# another provider's node whenever it goes NotReady (a reboot). Every secondary part's node therefore registers with
# its own provider's ID, which each primary CCM fails to resolve or leaves alone (docs/providers.md "Provider IDs").
PROVIDER_ID = re.compile(r"[a-z][a-z0-9+.-]*://[A-Za-z0-9._~/()-]+")


def provider_id(scheme: str, path: str) -> str:
    """`<scheme>://<path>` checked for grammar: it reaches the K3s config and the kubelet's command line."""
    value = f"{scheme}://{path}"
    if not PROVIDER_ID.fullmatch(value):
        raise ValueError(f"not a provider ID ({PROVIDER_ID.pattern}): {value!r}")
    return value


def node_specs(loaded: LoadedConfig) -> list[NodeSpec]:
    """Every server the config asks for: control plane first, then pools in config order."""
    cfg = loaded.config
    cluster = cfg.cluster
    cp = cluster.control_plane
    members = cp.members(cfg.provider)  # a part's own: a moving control plane's are on two providers
    specs = [NodeSpec(node_name(CONTROL_PLANE, i), CONTROL_PLANE, i, "server", cp.role, cp.size, cp.server_type,
                      node_location(cp, i - members.start, cluster), {**cp.node_labels, PROVIDER_LABEL: cfg.provider},
                      cp.taints)
             for i in members]
    for pool in cluster.active_pools:
        labels = pool_labels(pool, cfg.provider)
        specs += [NodeSpec(node_name(pool.name, i), pool.name, i, "agent", pool.role, pool.size, pool.server_type,
                           node_location(pool, i, cluster), labels, pool.node_taints)
                  for i in range(pool.count)]
    return specs


def located_settings(cluster: Cluster) -> list[tuple[str, str | None]]:
    """(config key path, value) of every `location` (and `locations` entry) the config may set."""
    pools: list[tuple[str, ControlPlane | Pool]] = [("cluster.controlPlane", cluster.control_plane),
                                                    *((f"cluster.pools[{p.name}]", p) for p in cluster.pools)]
    located = [("cluster.location", cluster.location)]
    for key, pool in pools:
        located.append((f"{key}.location", pool.location))
        located += [(f"{key}.locations[{i}]", loc) for i, loc in enumerate(pool.locations or [])]
    return located


def check_locations(cluster: Cluster, accepts: Callable[[str], bool], accepted: str) -> list[Problem]:
    """Each `location` set must be one the provider `accepts` (`accepted` says which, for the error)."""
    return [problem(key, f"must be {accepted}", value) for key, value in located_settings(cluster)
            if value is not None and not accepts(value)]


def check_server_type_names(cluster: Cluster, grammar: re.Pattern[str], accepted: str) -> list[Problem]:
    """Each `serverType` set must have the shape of the provider's type names (`accepted` gives examples).

    For providers without a catalog of their types (AWS, GCP, Azure sell hundreds, per region): a name of
    another provider's shape (`ccx33` on AWS) is known to be wrong offline; whether a well-formed name is
    sold in the region only the provider's API knows."""
    return [problem(key, f"must be {accepted}", value) for key, value in server_type_settings(cluster)
            if value is not None and not grammar.fullmatch(value)]


def server_type_settings(cluster: Cluster) -> list[tuple[str, str | None]]:
    """(config key path, value) of every `serverType` the config may set."""
    return [("cluster.controlPlane.serverType", cluster.control_plane.server_type),
            *[(f"cluster.pools[{p.name}].serverType", p.server_type) for p in cluster.pools]]


@dataclass(frozen=True)
class ServerType:
    cores: int
    memory_gb: int
    disk_gb: int  # the server's own disk
    dedicated_cpu: bool
    unorderable_at: frozenset[str] | None  # locations the provider is known not to sell it at; None: all


@dataclass(frozen=True)
class ServerCatalog:
    """A provider's server types kept as dated data (a YAML file next to the provider): the types this
    program knows, what each has, where the provider is known not to sell it, and the size classes
    mapped onto them. Stock changes without notice, so the file says when and where it was read."""

    provider: str
    path: Path
    date: str
    sizes: dict[str, str]  # size class -> server type
    types: dict[str, ServerType]

    @classmethod
    def load(cls, path: Path) -> ServerCatalog:
        data = yaml.safe_load(path.read_text())
        types = {name: ServerType(t["cores"], t["memoryGb"], t["diskGb"], t["dedicatedCpu"],
                                  None if t["unorderableAt"] == "all" else frozenset(t["unorderableAt"]))
                 for name, t in data["types"].items()}
        unknown = {size: name for size, name in data["sizes"].items() if name not in types}
        if unknown:
            raise AssertionError(f"{path.name}: size classes map to types it does not list: {unknown}")
        return cls(data["provider"], path, str(data["date"]), dict(data["sizes"]), types)

    def check(self, cluster: Cluster) -> list[Problem]:
        """Each `serverType` set must be one of the catalog's types."""
        accepted = (f"a {self.provider} server type this program knows ({', '.join(sorted(self.types))}; "
                    f"providers/{self.path.name}, as of {self.date})")
        return [problem(key, f"must be {accepted}", value) for key, value in server_type_settings(cluster)
                if value is not None and value not in self.types]

    def unorderable(self, server_type: str, location: str) -> str | None:
        """Why `server_type` cannot be ordered at `location`, if the catalog knows it cannot."""
        known = self.types.get(server_type)
        if known is None or (known.unorderable_at is not None and location not in known.unorderable_at):
            return None
        where = "anywhere" if known.unorderable_at is None else f"at {location}"
        return (f"{self.provider} server type {server_type} is known not to be orderable {where} "
                f"(providers/{self.path.name}, as of {self.date}): choose another serverType or size")


def resolve_server_type(spec: NodeSpec, server_types: dict[str, str]) -> str:
    if spec.server_type:
        return spec.server_type
    return server_types[spec.size or "medium"]


def check_size_mapping(provider_name: str, server_types: dict[str, str]) -> None:
    missing = set(SIZES) - set(server_types)
    if missing:
        raise AssertionError(f"provider {provider_name} maps no server type for sizes {sorted(missing)}")


@dataclass(frozen=True)
class PortRule:
    """One inbound rule of the firewall every provider enforces (see PORTS)."""

    protocol: Literal["tcp", "udp", "icmp"]
    port: str | None  # "443" or a range "2379-2380"; None for icmp
    source: Literal["world", "admin"]
    description: str


# Public interfaces only: traffic between nodes stays on the private network, where every
# provider allows it between cluster members (see each provider for how).
PORTS: tuple[PortRule, ...] = (
    PortRule("tcp", "80", "world", "HTTP to the gateway (redirects to HTTPS)"),
    PortRule("tcp", "443", "world", "HTTPS to the gateway"),
    PortRule("tcp", "22", "admin", "SSH for remote commands"),
    PortRule("tcp", "6443", "admin", "Kubernetes API"),
    PortRule("icmp", None, "admin", "ping and path-MTU diagnostics"),
)
WORLD_CIDRS = ("0.0.0.0/0", "::/0")


@dataclass(frozen=True)
class ClusterPort:
    """Traffic between cluster members that crosses from one provider's network to another's (a hybrid cluster,
    providers/hybrid.py): what each provider's firewall admits from the other providers' nodes, and nothing more."""

    protocol: Literal["tcp", "udp", "icmp"]
    port: str | None
    to: Literal["nodes", "servers"]  # which of this provider's nodes listen (servers: K3s servers only)
    # Whose addresses may send it (servers: the other providers' K3s servers). "unencrypted": traffic that reaches
    # the port itself only to or from a K3s server, elsewhere inside WireGuard (the metrics ports below): every node
    # where this provider runs servers, else the servers alone (providers/hybrid.py peer_rules).
    source: Literal["nodes", "servers", "unencrypted"]
    description: str

    @property
    def rule_description(self) -> str:
        """The firewall rule's description: marked as the cluster peers' rule, which the policy pack admits only
        with single-host sources (policy/rules.py PEER_MARK)."""
        return f"{PEER_MARK}{self.description}"


# Prometheus' scrapes of the processes in the hosts' network (components/host_metrics.py) from its pods: Cilium
# sends a pod's packets to another node's address unencapsulated and masqueraded to its node's address (tunnel mode:
# snat_v4_needs_masquerade, bpf/lib/nat.h), WireGuard-encrypted only with node encryption on both ends, which Cilium
# turns off from and to control-plane nodes (the node-role.kubernetes.io/control-plane label K3s servers carry; its
# node-encryption-opt-out-labels default, Documentation/security/network/encryption-wireguard.rst, "Node-to-Node
# Encryption"), so that a worker whose WireGuard key changed still reaches the API to publish its new key. Such
# scrapes to and from the servers arrive in plain TCP on the port itself, from the scraping pod's node: these ports
# are admitted from exactly the peers that can send them (source "unencrypted"; docs/providers.md, "Metrics of
# the K3s servers over the internet").
# From K3s' inbound rules (docs.k3s.io, "Inbound Rules for K3s Nodes") with Cilium in place of flannel, and
# Cilium's (docs.cilium.io, "Firewall Rules"). Cilium encapsulates pod traffic (VXLAN) before WireGuard encrypts
# it (cilium/cilium#29000), so the tunnel port never leaves WireGuard and is not listed; traffic from pods
# arrives decrypted from the pod network, which every provider trusts already.
WIREGUARD_PORT = "51871"  # Cilium's WireGuard endpoint (Documentation/security/network/encryption-wireguard.rst)
CLUSTER_PORTS: tuple[ClusterPort, ...] = (
    ClusterPort("tcp", "6443", "servers", "nodes", "K3s supervisor and Kubernetes API (joins, kubelets, Cilium)"),
    ClusterPort("tcp", "10250", "nodes", "nodes", "kubelet (API server: logs, exec; metrics)"),
    ClusterPort("tcp", "2379-2380", "servers", "servers", "embedded etcd between K3s servers"),
    ClusterPort("udp", WIREGUARD_PORT, "nodes", "nodes", "Cilium WireGuard (pod and node traffic, encrypted)"),
    ClusterPort("tcp", "4240", "nodes", "nodes", "Cilium health checks"),
    ClusterPort("icmp", None, "nodes", "nodes", "Cilium health pings"),
    *(ClusterPort("tcp", port, "nodes", "unencrypted", what) for port, what in (
        (str(NODE_EXPORTER_PORT), "node-exporter metrics (Prometheus, to and from K3s servers)"),
        (f"{CILIUM_AGENT_PORT}-{CILIUM_OPERATOR_PORT}", "Cilium agent and operator metrics (Prometheus, to and from "
                                                        "K3s servers)"),
        (str(HUBBLE_METRICS_PORT), "Hubble metrics (Prometheus, to and from K3s servers)"))),
)


def rule_sources(rule: PortRule, admin_cidrs: Sequence[str]) -> list[str]:
    return list(WORLD_CIDRS) if rule.source == "world" else list(admin_cidrs)


# What the host-key step runs on a node's first contact: its ed25519 host public key, read once first boot is over
# (cloud-init done, where it runs): sshd answers before then, and an image's own first-boot agent may still replace
# the keys (Google's guest agent `set_host_keys`), which would leave the read key stale for every later command.
READ_HOST_KEY = ("if command -v cloud-init >/dev/null 2>&1; then timeout 900 cloud-init status --wait >/dev/null 2>&1; fi; "
                 "cat /etc/ssh/ssh_host_ed25519_key.pub")


def _connection(host: pulumi.Input[str], user: str, private_key: pulumi.Input[str],
                host_key: pulumi.Input[str] | None) -> command.remote.ConnectionArgs:
    # dial_error_limit: fresh servers take a minute before sshd answers.
    return command.remote.ConnectionArgs(host=host, user=user, private_key=private_key, host_key=host_key,
                                         dial_error_limit=60, per_dial_timeout=10)


def _pinned_key(name: str, stdout: str) -> str:
    try:
        return check_host_key(stdout)
    except ValueError as e:
        # RunError: Pulumi reports it as a message, without a Python traceback.
        raise pulumi.RunError(f"host key of node {name}: {READ_HOST_KEY!r} printed {stdout.strip()[:120]!r}: {e}; "
                              "see docs/security.md, \"SSH host keys\"") from None


def ssh_connection(loaded: LoadedConfig, name: str, host: pulumi.Input[str], user: str, *,
                   parent: pulumi.Resource, machine: pulumi.Resource | None = None,
                   host_key: str | None = None) -> command.remote.ConnectionArgs:
    """The one SSH connection of node `name`, pinned to its host key: every remote command on the node uses it
    (with the stack's `sshPrivateKey`).

    `host_key` (validated config, bare metal): verified from the first connection. Otherwise trust on first use:
    the `host-key-<name>` command reads the key once, right after the machine is created (or on the first
    `pulumi up` after this step was added), and every later connection must present that key. It is re-read
    only when `machine` is replaced (its id is the trigger): a host rebuilt outside Pulumi then fails to connect
    (docs/security.md, "SSH host keys", says how to re-pin).

    A node listed in `cluster.unreachableNodes` (a dead machine) is never dialled for its key: its connection keeps
    the key the previous run pinned at this address (providers/previous_run.py), or none where that run pinned none,
    which is what its commands recorded, so they show no change; its machine's replacement (a new address) connects
    unpinned until the node leaves the list and its key is read."""
    private_key = loaded.secrets.ssh_private_key
    if host_key is None and name in loaded.config.cluster.unreachable_nodes:
        recorded = pulumi.Output.from_input(host).apply(RECORDED_KEYS.key_for)
        return _connection(host, user, private_key, recorded)
    if host_key is None:
        read = command.remote.Command(
            f"host-key-{name}", connection=_connection(host, user, private_key, None), create=READ_HOST_KEY,
            triggers=[machine.id] if isinstance(machine, pulumi.CustomResource) else None,
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[machine] if machine is not None else None))
        host_key = read.stdout.apply(lambda out: _pinned_key(name, out))
    return _connection(host, user, private_key, host_key)


__all__ = ["AddonInstaller", "ApiEndpoints", "CLUSTER_PORTS", "ClusterPort", "ClusterProfile", "CONTROL_PLANE_SELECTOR", "PROVIDER_LABEL",
           "Credential", "check_credentials", "check_seal", "default_seal", "seal_type", "AUTO_SEALS", "Seal", "SealInstaller",
           "FSTYPE_PARAMETER", "zone_topology",
           "Infrastructure", "Node", "NodeGroupInstaller", "PeerAddress", "PeerAdmitter", "PeerQuota", "NodeGroupRequest",
           "NodeGroups", "NodeSpec", "PROVIDER_ID", "provider_id",
           "group_spec", "node_group_name", "pool_labels", "PORTS", "PortRule", "Provider", "ProviderInfrastructure",
           "ServerCatalog", "ServerType", "Storage", "StorageInstaller", "assemble", "check_locations",
           "check_server_type_names", "csi_storage", "first_server_api", "located_settings", "node_location",
           "node_specs", "resolve_server_type", "rule_sources", "server_type_settings", "ssh_connection", "READ_HOST_KEY"]
