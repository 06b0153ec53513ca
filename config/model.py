"""The typed stack configuration: one pydantic model for the whole stack.

Field validators check one value; cross-field rules live in config/rules.py. Keys are camelCase in
the stack files (pydantic aliases) and snake_case in Python.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, Field, StringConstraints, field_validator, model_validator

from components.charts import K3S_RELEASES, K3S_VERSION
from config.catalog import PROVIDERS, ROLES, SIZES
from config.ssh import MAX_PUBLIC_KEY, check_public_key
from config.model_base import UNKNOWN_KEYS, Model as _Model, check_cidr, check_dns_name, check_token, one_of, optional
from config.baremetal import BareMetal
from config.ads import AdServices
from config.data import DataPlane
from config.platform import Platform
from config.services import ClusterServices

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"  # at most 63 characters
_QUALIFIED_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_PREFIX = rf"{_DNS_LABEL}(\.{_DNS_LABEL})*"
_LABEL_KEY = re.compile(rf"^({_PREFIX}/)?{_QUALIFIED_NAME}$")
_LABEL_VALUE = re.compile(rf"^({_QUALIFIED_NAME})?$")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_TAINT = re.compile(rf"^(?P<key>({_PREFIX}/)?{_QUALIFIED_NAME})(=(?P<value>{_QUALIFIED_NAME}))?:(?P<effect>[A-Za-z]+)$")
K3S_VERSION_RE = re.compile(r"^v1\.\d+\.\d+\+k3s\d+$")
_POOL_NAME = re.compile(r"^[a-z]([a-z0-9-]{0,18}[a-z0-9])?$")
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,254}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SERVER_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# The kubelet may only set labels in these kubernetes.io namespaces on its own Node
# (NodeRestriction admission); anything else under kubernetes.io / k8s.io stops K3s joining.
_KUBELET_LABEL_PREFIXES = ("node.kubernetes.io/", "kubelet.kubernetes.io/")
_KUBELET_LABEL_KEYS = ("topology.kubernetes.io/zone", "topology.kubernetes.io/region")

DEDICATED_TAINT_KEY = "adplatform.io/dedicated"
POOL_LABEL = "adplatform.io/pool"
# The node's configured location (a Hetzner location, a cloud zone, a bare-metal site): exact on every provider,
# where topology.kubernetes.io/zone is the CCM's word (Hetzner's names the datacenter, fsn1-dc14).
LOCATION_LABEL = "adplatform.io/location"
ROLE_LABEL = "adplatform.io/role"
CONTROL_PLANE = "control-plane"
CONTROL_PLANE_TAINT = "CriticalAddonsOnly=true:NoExecute"  # K3s' documented taint for servers


def check_taint(taint: str) -> str:
    match = _TAINT.match(taint)
    if not match:
        raise ValueError("must be a taint 'key[=value]:Effect' (key and value: Kubernetes label syntax)")
    if match["effect"] not in TAINT_EFFECTS:
        raise ValueError(f"must end in one of the effects {', '.join(TAINT_EFFECTS)}")
    return taint


def taint_parts(taint: str) -> tuple[str, str, str]:
    """A valid taint as (key, value, effect); the value is "" when the taint has none."""
    match = _TAINT.match(check_taint(taint))
    assert match is not None  # check_taint raised otherwise
    return match["key"], match["value"] or "", match["effect"]


def taint_fields(taint: str) -> dict[str, str]:
    """A validated taint as a Kubernetes Taint object's fields (key, value, effect; value "" when absent)."""
    key, value, effect = taint_parts(taint)
    return {"key": key, "value": value, "effect": effect}


def check_labels(labels: dict[str, str]) -> dict[str, str]:
    for key, value in labels.items():
        if not _LABEL_KEY.match(key):
            raise ValueError(f"label key {key!r} must be [prefix/]name in Kubernetes label syntax")
        if not _LABEL_VALUE.match(value):
            raise ValueError(f"label value {value!r} of {key!r} must be at most 63 characters [A-Za-z0-9-_.]")
        domain = key.split("/", 1)[0] if "/" in key else ""
        if len(domain) > 253:
            raise ValueError(f"label key {key!r}: its prefix must be at most 253 characters")
        restricted = domain.endswith("kubernetes.io") or domain.endswith("k8s.io")
        if restricted and not (key.startswith(_KUBELET_LABEL_PREFIXES) or key in _KUBELET_LABEL_KEYS):
            raise ValueError(f"label {key!r} is in a kubernetes.io/k8s.io namespace the kubelet may not set "
                             f"on itself (allowed: {', '.join(_KUBELET_LABEL_PREFIXES + _KUBELET_LABEL_KEYS)})")
    return labels


Cidr = Annotated[str, AfterValidator(check_cidr)]
Taint = Annotated[str, AfterValidator(check_taint)]

SshPublicKey = Annotated[str, StringConstraints(max_length=MAX_PUBLIC_KEY), AfterValidator(check_public_key)]


def _check_size(size: str | None) -> str | None:
    if size is not None and size not in SIZES:
        raise ValueError(f"must be one of the size classes {', '.join(SIZES)}")
    return size


def _check_server_type(server_type: str | None) -> str | None:
    if server_type is not None and not _SERVER_TYPE.match(server_type):
        raise ValueError("must be a provider server type name such as ccx33")
    return server_type


def _check_locations(locations: list[str] | None) -> list[str] | None:
    if locations is not None and (not locations or len(set(locations)) != len(locations)):
        raise ValueError("must list one or more distinct locations (nodes go round-robin over them by index)")
    return locations


GATEWAY_BALANCERS = ("old", "new")  # ControlPlaneMove.gateway_balancer


class ControlPlaneMove(_Model):
    """Control-plane members moving to another provider, one per `pulumi up` (docs/providers.md, "Moving the control
    plane to another provider"). Members keep their names: the `count` original ones, control-plane-1..count, run on
    the stack's provider, the last `removed` of them drained and gone (highest first, as a shrinking pool); `added`
    new ones, control-plane-<count+1>.., run on `provider`, joined over the public internet. Between steps the cluster
    has `count` or `count + 1` etcd members (providers/hybrid.py control_plane_move_problems). The first step is
    `added: 1`; `added: 0` (no new member) is where an abandoned move goes back to before `move` is dropped."""

    provider: str
    locations: list[str] | None = None  # the new members' locations on `provider`, round-robin (as ControlPlane's)
    added: Annotated[int, Field(ge=0)] = 1  # 0: no new member (an abandoned move's last step before dropping it)
    removed: Annotated[int, Field(ge=0)] = 0
    # The flip's preparing step (docs/providers.md, "Not supported yet", item 3): `provider`'s own API balancer
    # over the members there, named in every server's certificate beside the stack provider's, before any node's
    # join address changes (providers/hybrid.py part). No join address changes with it.
    prepare_flip: bool = False
    # Which cloud controller serves the gateway's LoadBalancer Service (docs/providers.md, "Not supported yet", item
    # 5): `old`, the stack provider's, as without a move; `new`, `provider`'s, from its part, while the stack
    # provider's stops serving balancers and leaves its own in place, forwarding (providers/hybrid.py
    # gateway_handover). Only one CCM may serve the Service: each would build a balancer of its own for it.
    gateway_balancer: str = "old"
    # The flip (docs/providers.md, "Leaving AWS for Hetzner Cloud: the full sequence"): the stack's `provider` is now
    # `provider`, and the original members that remain (control-plane-1..count-removed) run on `flipped_from`, the
    # stack's provider before the flip, as a secondary part. Set in the flip's step together with `provider`, kept
    # until `move` is dropped (providers/hybrid.py control_plane_move_problems, flip_problems).
    flipped_from: str | None = None

    _v_provider = field_validator("provider")(one_of(PROVIDERS, what="the providers"))
    _v_flipped_from = field_validator("flipped_from")(optional(one_of(PROVIDERS, what="the providers")))
    _v_gateway_balancer = field_validator("gateway_balancer")(one_of(
        GATEWAY_BALANCERS, why="(whose cloud controller serves the gateway's load balancer)"))
    _v_locations = field_validator("locations")(_check_locations)


class ControlPlane(_Model):
    count: int = 3
    size: str | None = None
    server_type: str | None = None  # overrides size with a provider-specific type
    location: str | None = None
    # Several locations (zones) of one network zone or region: node i runs in locations[i % len]. Replacing
    # one entry replaces only the nodes in it; names never change (components/k3s/lifecycle.py drains them).
    locations: list[str] | None = None
    dedicated: bool = True  # tainted so only cluster-critical add-ons run on the servers
    role: str = "general"  # tuning and placement role when the servers also run workloads
    labels: dict[str, str] = {}
    move: ControlPlaneMove | None = None  # members on another provider while the control plane moves there
    # The first member's number, control-plane-<firstMember>: 1, but once a move that removed every original member is
    # dropped (docs/providers.md "Leaving AWS for Hetzner Cloud: the full sequence"): its members are numbered after
    # `count` (control-plane-4..6 for 3), and `firstMember: 4` names the same ones without the move. Never a first
    # deploy's: no member would initialise the cluster (providers/hybrid.py renumbered_problems).
    first_member: Annotated[int, Field(ge=1)] = 1

    _v_size = field_validator("size")(_check_size)
    _v_type = field_validator("server_type")(_check_server_type)
    _v_labels = field_validator("labels")(check_labels)
    _v_location = field_validator("location")(optional(check_token))
    _v_locations = field_validator("locations")(_check_locations)

    def members(self, provider: str) -> range:
        """The indices of the members running on `provider` (the stack's, or a part's: providers/hybrid.py part):
        the new ones on the move's provider, else the original ones still there (ControlPlaneMove; after the flip
        those run on `flipped_from`)."""
        move, start = self.move, self.first_member - 1
        if move is not None and provider == move.provider:
            return range(start + self.count, start + self.count + move.added)
        return range(start, start + self.count - (move.removed if move else 0))

    @property
    def original_provider(self) -> str | None:
        """Where the original members run after the flip (ControlPlaneMove.flipped_from); None before it (the
        stack's provider) or without a move."""
        return self.move.flipped_from if self.move is not None else None

    @property
    def servers(self) -> int:
        """How many K3s servers (etcd members) the cluster has: `count`, one more while a member moves."""
        return self.count + (self.move.added - self.move.removed if self.move else 0)

    @field_validator("count")
    @classmethod
    def _odd(cls, count: int) -> int:
        if count < 1 or count % 2 == 0 or count > 7:
            raise ValueError("must be odd (1, 3, 5 or 7) so embedded etcd keeps a quorum")
        return count

    @field_validator("role")
    @classmethod
    def _role(cls, role: str) -> str:
        if role not in ("general", "converged"):
            raise ValueError("must be 'general' or 'converged' (control-plane servers never host dedicated database roles)")
        return role

    @property
    def taints(self) -> tuple[str, ...]:
        return (CONTROL_PLANE_TAINT,) if self.dedicated else ()

    @property
    def node_labels(self) -> dict[str, str]:
        return {POOL_LABEL: CONTROL_PLANE, ROLE_LABEL: self.role, **self.labels}


MAX_POOL_NODES = 100


def node_name(pool: str, index: int) -> str:
    """A Pulumi-managed node's name: its pool's and its 1-based position (the machine's and the K3s node's name
    carry it, with the stack's prefix)."""
    return f"{pool}-{index + 1}"


class Autoscaling(_Model):
    """Node autoscaling of a pool (docs/autoscaling.md). Pulumi creates and keeps `min` nodes, the pool's floor
    (tuned and joined over SSH like every node; the pool's `count` is `min`); the cluster autoscaler adds up to
    `max - min` more through the provider's node groups (configured by cloud-init, components/k3s/userdata.py)
    and removes them when idle. `min: 0` is a pool that scales to zero."""

    min: int
    max: int

    @model_validator(mode="after")
    def _bounds(self) -> "Autoscaling":
        if not 0 <= self.min <= self.max or not 1 <= self.max <= MAX_POOL_NODES:
            raise ValueError(f"must have 0 <= min <= max and 1 <= max <= {MAX_POOL_NODES} "
                             f"(given min {self.min}, max {self.max})")
        return self

    @property
    def extra(self) -> int:
        """The nodes the autoscaler may add beyond the Pulumi-managed floor."""
        return self.max - self.min


class Pool(_Model):
    name: str
    role: str
    count: int  # with `autoscaling`: taken from autoscaling.min (a different count is refused)
    size: str | None = None
    server_type: str | None = None
    location: str | None = None
    locations: list[str] | None = None  # as ControlPlane.locations
    labels: dict[str, str] = {}
    taints: list[Taint] | None = None  # None: the role's default taint
    autoscaling: Autoscaling | None = None  # None: exactly `count` nodes, all Pulumi-managed
    # The provider of this pool's servers (a hybrid cluster, providers/hybrid.py); None: the stack's `provider`.
    # The control plane runs on the stack's provider (but members moving away: ControlPlane.move).
    provider: str | None = None

    _v_size = field_validator("size")(_check_size)
    _v_type = field_validator("server_type")(_check_server_type)
    _v_labels = field_validator("labels")(check_labels)
    _v_location = field_validator("location")(optional(check_token))
    _v_locations = field_validator("locations")(_check_locations)

    @model_validator(mode="before")
    @classmethod
    def _floor(cls, data: Any) -> Any:
        """An autoscaled pool's Pulumi-managed nodes are its `autoscaling.min`: `count` follows it."""
        scaling = data.get("autoscaling") if isinstance(data, dict) else None
        if not isinstance(scaling, dict) or not isinstance(scaling.get("min"), int):
            return data
        if "count" in data and data["count"] != scaling["min"]:
            raise ValueError(f"count ({data['count']}) must not differ from autoscaling.min ({scaling['min']}): "
                             "an autoscaled pool keeps autoscaling.min nodes; remove count")
        return {**data, "count": scaling["min"]}

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _POOL_NAME.match(name) or name == CONTROL_PLANE:
            raise ValueError("must be 1-20 characters of a-z, 0-9 and '-', start with a letter, "
                             f"and not be {CONTROL_PLANE!r}")
        return name

    _v_role = field_validator("role")(staticmethod(one_of(ROLES, what="the roles")))
    _v_provider = field_validator("provider")(optional(one_of(PROVIDERS, what="the providers")))

    @field_validator("count")
    @classmethod
    def _count(cls, count: int) -> int:
        if count < 0 or count > MAX_POOL_NODES:
            raise ValueError(f"must be between 0 (pool removed) and {MAX_POOL_NODES}")
        return count

    @property
    def node_taints(self) -> tuple[str, ...]:
        if self.taints is not None:
            return tuple(self.taints)
        return (f"{DEDICATED_TAINT_KEY}={self.role}:NoSchedule",) if ROLES[self.role].dedicated else ()

    @property
    def node_labels(self) -> dict[str, str]:
        return {POOL_LABEL: self.name, ROLE_LABEL: self.role, **self.labels}


class ApiLoadBalancer(_Model):
    enabled: bool = True
    # Cloud load balancers often cannot be firewalled: a public one exposes 6443 to the world.
    public: bool = False


def _check_image(image: str | None) -> str | None:
    if image is not None and not _IMAGE.fullmatch(image):
        raise ValueError("must be the provider's image name, id, path or URN (e.g. ubuntu-24.04, ami-0abc..., "
                         "projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64, "
                         "Canonical:ubuntu-24_04-lts:server:latest): 1-255 characters, no spaces")
    return image


class ProviderDefaults(_Model):
    """One provider's own default location and image in a stack (`cluster.providers.<name>`): its nodes' where
    neither the pool nor the control plane names a location. `cluster.location` and `cluster.image` are the stack
    provider's only; another provider's part never sees them (providers/hybrid.py part), so a provider's entry here
    holds whichever provider is the stack's: a flip (docs/providers.md "Not supported yet", item 7) moves no node."""

    location: str | None = None
    image: str | None = None

    _v_location = field_validator("location")(optional(check_token))
    _v_image = field_validator("image")(_check_image)


class Cluster(_Model):
    k3s_version: str = Field(K3S_VERSION, alias="k3sVersion")
    # The sha256 of install.sh at k3sVersion's tag, which every node checks before it runs the installer (the
    # installer checks the binary against the release's sha256sum file in turn). Unset: the installer is trusted by
    # its tag alone (docs/hardening.md "Supply chain"). Change it together with k3sVersion.
    k3s_installer_sha256: str | None = Field(None, alias="k3sInstallerSha256")
    location: str | None = None  # default for the control plane and pools; the provider's default otherwise
    # The server image, overriding the provider's own resolution of Ubuntu 24.04 LTS (a Hetzner image
    # name, an AMI id, a GCP image or family path, an Azure image URN): pin it for reproducible nodes.
    image: str | None = None
    # Each provider's own default location and image, whether it is the stack's or a pool's (providers/hybrid.py
    # placement_problems checks the names).
    providers: dict[str, ProviderDefaults] = {}
    # The private network spans the pod CIDR so that providers with native routing (Hetzner: the
    # CCM programs one route per node podCIDR) carry pod traffic over the private network.
    network_cidr: str = "10.0.0.0/8"
    subnet_cidr: str = "10.0.1.0/24"  # the servers and load balancers
    pod_cidr: str = "10.244.0.0/16"  # K3s cluster-cidr; Cilium uses the node podCIDRs K3s allocates from it
    service_cidr: str = "10.43.0.0/16"
    control_plane: ControlPlane = ControlPlane()
    api_load_balancer: ApiLoadBalancer = ApiLoadBalancer()
    pools: list[Pool] = []
    # A cluster over the public internet is checked against each provider's documented default firewall limit
    # (providers/hybrid.py peer_quota_problems); where the account's quota was raised: provider name -> its limit.
    firewall_quotas: dict[str, Annotated[int, Field(gt=0)]] = {}
    # Nodes whose machine no longer answers SSH (a dead machine): their drain runs from the first K3s server that is
    # not listed, so `pulumi up --replace` (or a lower count) takes them out (components/k3s/lifecycle.py).
    unreachable_nodes: list[str] = []

    _v_cidrs = field_validator("network_cidr", "subnet_cidr", "pod_cidr", "service_cidr")(check_cidr)
    _v_location = field_validator("location")(optional(check_token))

    _v_image = field_validator("image")(_check_image)

    @field_validator("k3s_installer_sha256")
    @classmethod
    def _k3s_installer_sha256(cls, digest: str | None) -> str | None:
        if digest is not None and not _SHA256.fullmatch(digest):
            raise ValueError("must be the sha256 of install.sh at cluster.k3sVersion's tag, 64 lowercase hex "
                             "characters (curl -sfL https://raw.githubusercontent.com/k3s-io/k3s/<tag>/install.sh "
                             "| sha256sum)")
        return digest

    @field_validator("k3s_version")
    @classmethod
    def _k3s_version(cls, version: str) -> str:
        if not K3S_VERSION_RE.fullmatch(version):
            raise ValueError(f"must be a K3s release of the form v1.X.Y+k3sN, e.g. {K3S_VERSION}")
        if version not in K3S_RELEASES:
            raise ValueError(f"must be a K3s release that exists (known: {', '.join(K3S_RELEASES)}; a newer one is "
                             "added to components/charts.py K3S_RELEASES once its release notes are published)")
        return version

    def server_names(self, provider: str) -> list[str]:
        """The K3s servers' names (`provider`: the stack's): the control-plane members on every provider."""
        cp = self.control_plane
        if cp.move is None:
            return [node_name(CONTROL_PLANE, i) for i in cp.members(provider)]
        # The original members (on the stack's provider, after the flip on ControlPlaneMove.flipped_from) and the new.
        members = {*cp.members(cp.original_provider or provider), *cp.members(cp.move.provider)}
        return [node_name(CONTROL_PLANE, i) for i in sorted(members)]

    def node_names(self, provider: str) -> list[str]:
        """Every Pulumi-managed node's name (providers/base.py node_specs names them so): servers, then pools'."""
        return [*self.server_names(provider),
                *(node_name(pool.name, i) for pool in self.active_pools for i in range(pool.count))]

    @property
    def active_pools(self) -> list[Pool]:
        """Pools with Pulumi-managed nodes (count > 0)."""
        return [p for p in self.pools if p.count > 0]

    @property
    def autoscaled_pools(self) -> list[Pool]:
        """Pools the cluster autoscaler may grow (autoscaling.max above the floor); a min-0 pool may have no node yet."""
        return [p for p in self.pools if p.autoscaling is not None and p.autoscaling.extra > 0]

    @property
    def node_pools(self) -> list[Pool]:
        """Pools that have or may get nodes: Pulumi-managed ones and autoscaled ones (an autoscaled pool with
        `autoscaling.min: 0` has none until the autoscaler adds them). What must reach every node (tolerations of
        kured and the upgrade plans) or may be placed on a pool iterates these, not active_pools."""
        return [p for p in self.pools if p.count > 0 or p in self.autoscaled_pools]


class Layers(_Model):
    """Switches for the layers above the cluster. A layer that is on needs every layer in NEEDS on: a contradiction
    is refused (config/rules.py), never reduced silently."""

    cluster_services: bool = True
    data_plane: bool = True
    platform: bool = True
    ad_services: bool = True

    # layer -> the layers it runs on (directly; program.py builds each from what these hand it)
    NEEDS: ClassVar[dict[str, tuple[str, ...]]] = {
        "data_plane": ("cluster_services",), "platform": ("data_plane",), "ad_services": ("data_plane",)}

    def missing(self, layer: str) -> list[str]:
        """The layers `layer` needs, directly or through another, that are off."""
        needed, todo = [], list(self.NEEDS.get(layer, ()))
        while todo:
            below = todo.pop(0)
            if below not in needed:
                needed.append(below)
                todo.extend(self.NEEDS.get(below, ()))
        return [below for below in needed if not getattr(self, below)]


class Gcp(_Model):
    """GCP-only settings (`adplatform:gcp`), read with provider gcp or GCP pools (providers/gcp.py)."""
    # Which PD CSI disks and snapshots the nodes may use: false, only those named with the stack's prefix
    # (providers/gcp.py volume_name_prefix); true, also the sidecars' default `pvc-`/`snapshot-` names that volumes
    # of a stack made before per-stack names carry, which every such stack's nodes in the project may then reach.
    # Unset: decided from the previous run's record (providers/previous_run.py gcp_legacy_volume_names): false for a
    # new stack (secure by default), true for one deployed before per-stack names, kept until set to false after its
    # volumes moved (docs/security.md "GCP volume names").
    legacy_volume_names: bool | None = None


class StackConfig(_Model):
    provider: str
    profile: str
    domain: str
    admin_cidrs: list[Cidr]
    ssh_public_keys: list[SshPublicKey]
    cluster: Cluster = Cluster()
    layers: Layers = Layers()
    cluster_services: ClusterServices = ClusterServices()
    data_plane: DataPlane = DataPlane()
    platform: Platform = Platform()
    ad_services: AdServices = AdServices()
    bare_metal: BareMetal | None = None  # provider baremetal: the existing hosts (config/baremetal.py)
    gcp: Gcp = Gcp()

    @field_validator("domain")
    @classmethod
    def _domain(cls, domain: str) -> str:
        return check_dns_name(domain)

    @field_validator("admin_cidrs")
    @classmethod
    def _admin_cidrs(cls, cidrs: list[str]) -> list[str]:
        if not cidrs:
            raise ValueError("must list at least one CIDR allowed to reach SSH and the Kubernetes API")
        return cidrs

    @field_validator("ssh_public_keys")
    @classmethod
    def _ssh_keys(cls, keys: list[str]) -> list[str]:
        if not keys:
            raise ValueError("must list at least one SSH public key (ssh-ed25519 ...)")
        return keys


def pool_provider(pool: ControlPlane | Pool, cfg: StackConfig) -> str:
    """The provider of a pool's nodes: its own `provider`, else the stack's (the control plane's is the stack's, but
    for members moving away: ControlPlane.members, providers/hybrid.py)."""
    return (pool.provider if isinstance(pool, Pool) else None) or cfg.provider


def pool_locations(pool: Pool, cluster: Cluster) -> list[str | None]:
    """The locations a pool's nodes run in, in config order: its `locations`, else its or the cluster's one
    (None: the provider's default)."""
    return list(pool.locations) if pool.locations else [node_location(pool, 0, cluster)]


def node_location(pool: ControlPlane | Pool, index: int, cluster: Cluster) -> str | None:
    """Where node `index` of `pool` runs: round-robin over the pool's `locations` by index (names never
    change; replacing one entry moves only its nodes), else the pool's or the cluster's `location`."""
    if pool.locations:
        return pool.locations[index % len(pool.locations)]
    return pool.location or cluster.location
