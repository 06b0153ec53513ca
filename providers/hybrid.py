"""Hybrid clusters: pools on several providers, one K3s cluster (docs/providers.md, "Hybrid clusters").

A pool may name its own `provider`; the stack's `provider` is the default and always runs the control plane, the
API endpoint and the cluster add-ons (CCM, CSI, load balancers), except control-plane members moving to another
provider over the internet (cluster.controlPlane.move: that provider's part runs them, control_plane_move_problems;
after the flip, the original members left run on the former stack provider's part: flip_problems). Each provider creates its part (network,
firewall, servers or existing hosts) from the config cut down to its own pools (`part`), validates only those,
and the parts' nodes become one Infrastructure: the layers above see pools and nodes, never providers.

Providers couple in the ways COUPLINGS lists, each private or encrypted, never open: Hetzner Cloud with bare
metal on Hetzner dedicated servers over a Robot vSwitch joined to the cloud network (a subnet of type vswitch,
providers/hetzner.py). Any other pair of providers that both peer over the internet (`internet_peering`: Hetzner,
AWS, GCP, Azure) couples over the public internet (INTERNET): every node registers with its public address, Cilium tunnels
pod traffic and encrypts it and the agents' node traffic (WireGuard; the control plane's own traffic, K3s and etcd, is
TLS: Cilium leaves control-plane nodes out of node encryption, so the host metrics scrapes to and from them are plain TCP),
and each provider's firewall admits exactly the cluster's node addresses on exactly CLUSTER_PORTS. No pair needs code of its own; other pairs are refused.

The API path over the internet survives losing any one server: Cilium uses each node's local API endpoint
(components/k3s/cilium.py NODE_LOCAL_API), a joined node's K3s follows every server through its client-side load
balancer, and with several servers nodes join at the stack provider's public API balancer (join_endpoint,
internet_problems), except that provider's own servers where its public balancer does not serve its own backends
(GCP: server_join_endpoints). Autoscaled pools are refused: the firewalls admit nodes by address, known only for the
nodes Pulumi creates.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import dataclass
from typing import Mapping, Sequence, TypeVar

import pulumi
from pydantic.alias_generators import to_camel

import providers
from config import LoadedConfig, Problem
from config.baremetal import Host
from config.catalog import DATABASE_ROLES, PROVIDERS, STORE_ROLES
from config.data import Movable
from config.errors import NAMESPACE, problem
from config.model import CONTROL_PLANE, ApiLoadBalancer, ControlPlane, StackConfig, node_name, pool_provider
from config.rules import role_pools
from providers import cloud, hetzner
from providers.base import (CLUSTER_PORTS, AddonInstaller, AdmittedPeers, ClusterPort, Infrastructure, Node,
                            PeerAddress, Storage, check_credentials, default_seal, holds_data, node_specs)
from providers.hetzner import NETWORK_ZONES, PROVIDED_BY_LABEL, network_location
from providers.previous_run import PreviousRun

SCYLLADB_NODE_ROLES = (STORE_ROLES["scylladb"], "converged")  # the nodes ScyllaDB runs on (components/data/placement.py)
T = TypeVar("T")  # a peer: a CIDR (a private coupling) or a PeerAddress (over the internet)


@dataclass(frozen=True)
class Coupling:
    """How a secondary provider's nodes reach the stack provider's network."""

    how: str  # for errors and docs
    # The MTU of the link between the providers' nodes: Cilium's device MTU for the whole cluster is the smallest
    # link any node uses (Cilium subtracts the VXLAN and WireGuard overheads from it).
    mtu: int
    # Labels the stack provider's add-ons need on the secondary's nodes (e.g. to keep a CSI node plugin off).
    node_labels: Mapping[str, str]
    # The pool roles the secondary may run: the stack provider's volumes do not attach there (its StorageClasses
    # are limited to its own nodes), so only roles whose data needs no such volume.
    roles: tuple[str, ...]
    over_internet: bool = False  # nodes reach each other on public addresses (INTERNET)


# (stack provider, pool provider) -> coupling. Hetzner documents an MTU of 1400 for a vSwitch's VLAN interface on
# the dedicated servers and for the cloud network's traffic to it ("Connect dedicated servers (vSwitch)").
COUPLINGS = {
    ("hetzner", "baremetal"): Coupling(
        "a Hetzner Robot vSwitch joined to the Hetzner Cloud network (bareMetal.vswitch, bareMetal.subnetCidr)",
        mtu=1400, node_labels={PROVIDED_BY_LABEL: "robot"},
        # ScyllaDB keeps its data on the hosts' own disks (local NVMe, components/data/scylladb/storage.py);
        # general pools run stateless work (claims go to the cloud nodes by the classes' allowedTopologies).
        roles=("general", "scylladb")),
}


# Any pair of providers that both peer over the internet. 1500: what an internet path carries (Cilium subtracts the
# VXLAN and WireGuard overheads). Stateless pools only, unless the pool's provider installs its own block storage as
# a secondary (`secondary_storage`: Hetzner, AWS, GCP, Azure; pool_roles): the stack provider's volumes do not attach
# there.
INTERNET = Coupling("the public internet (both providers peer over it: the nodes register with their public "
                    "addresses, WireGuard encrypts, each firewall admits exactly the cluster's nodes)",
                    mtu=1500, node_labels={}, roles=("general",), over_internet=True)


def coupling(stack_provider: str, pool_provider: str) -> Coupling | None:
    """How a pool on `pool_provider` couples with the stack's provider; None if it cannot."""
    if (stack_provider, pool_provider) in COUPLINGS:
        return COUPLINGS[(stack_provider, pool_provider)]
    return INTERNET if _peers_over_internet(stack_provider) and _peers_over_internet(pool_provider) else None


def pool_roles(stack_provider: str, pool_provider: str) -> tuple[str, ...]:
    """The roles a pool on `pool_provider` may have in a stack on `stack_provider`: its coupling's, and the database
    roles too over the internet where that provider installs its own CSI driver and classes on its own nodes as a
    secondary part (combine: install_storage; docs/providers.md "Storage per provider")."""
    link = coupling(stack_provider, pool_provider)
    if link.over_internet and _secondary_storage(pool_provider):
        return (*link.roles, *DATABASE_ROLES)
    return link.roles


def _peers_over_internet(name: str) -> bool:
    return _provider_flag(name, "internet_peering")


def providers_used(cfg: StackConfig) -> list[str]:
    """The stack's provider first, then every other pool provider in config order, then the provider control-plane
    members move to (cluster.controlPlane.move)."""
    used = [cfg.provider]
    for pool in cfg.cluster.pools:
        if pool_provider(pool, cfg) not in used:
            used.append(pool.provider)
    cp = cfg.cluster.control_plane
    if cp.move is not None and cp.move.provider not in used:
        used.append(cp.move.provider)
    # After the flip the original members left run on the stack's former provider (ControlPlaneMove.flipped_from).
    if cp.original_provider and cp.members(cp.original_provider) and cp.original_provider not in used:
        used.append(cp.original_provider)
    return used


def part(loaded: LoadedConfig, name: str) -> LoadedConfig:
    """The config as provider `name` sees it: its own pools only, and its own default location and image
    (`own_defaults`). A secondary provider has no control plane, no API load balancer and none of the stack
    provider's location or image; bare-metal hosts of a hybrid cluster live in bareMetal.subnetCidr."""
    cfg = loaded.config
    cluster = cfg.cluster
    update: dict = {"pools": [p for p in cluster.pools if pool_provider(p, cfg) == name], **own_defaults(cfg, name)}
    if name == cfg.provider and cluster.control_plane.original_provider:
        # After the flip the stack provider's members are the move's (its locations), the originals another part's.
        update.update(control_plane=_moved_members(cluster.control_plane, name))
    elif name != cfg.provider:
        update.update(control_plane=_moved_members(cluster.control_plane, name),
                      api_load_balancer=_part_balancer(cfg, name))
        if name == "baremetal" and cfg.bare_metal is not None and cfg.bare_metal.subnet_cidr:
            update["subnet_cidr"] = cfg.bare_metal.subnet_cidr
    scoped = cfg.model_copy(update={"provider": name, "cluster": cluster.model_copy(update=update)})
    return dataclasses.replace(loaded, config=scoped)


def own_defaults(cfg: StackConfig, name: str) -> dict[str, str | None]:
    """Provider `name`'s default location and image: its `cluster.providers` entry's, else for the stack's provider
    `cluster.location` and `cluster.image`, else none (the provider's own default). Each key on its own: an entry
    stating only an image leaves the stack provider `cluster.location`."""
    own = cfg.cluster.providers.get(name)
    stack = cfg.provider == name
    return {key: (getattr(own, key) if own is not None else None) or (getattr(cfg.cluster, key) if stack else None)
            for key in DEFAULTED}


DEFAULTED = ("location", "image")  # the Cluster keys a `cluster.providers` entry states per provider


def _part_balancer(cfg: StackConfig, name: str) -> ApiLoadBalancer:
    """A secondary part's API balancer: none (the stack provider's fronts the cluster), but on the provider the control
    plane moves to once its flip is prepared (ControlPlaneMove.prepare_flip): the balancer the stack's config asks for,
    built by that provider as if it were the stack's (its `_api_endpoints`) over the members there. Its addresses join
    the part's certificate names, and so every server's (_all_sans); no node joins at it (over_internet: the stack
    provider's balancer stays the join address)."""
    cp = cfg.cluster.control_plane
    if cp.move is not None and cp.move.provider == name and cp.move.prepare_flip:
        return cfg.cluster.api_load_balancer
    # After the flip the former stack provider keeps its balancer over the original members it still runs: it stays
    # in every server's certificate (no server restarts for it at the flip) and goes with the last of them.
    if cp.original_provider == name and cp.members(name):
        return cfg.cluster.api_load_balancer
    return ApiLoadBalancer(enabled=False)


def _moved_members(control_plane: ControlPlane, name: str) -> ControlPlane:
    """The control plane as secondary provider `name` sees it: none, or the members moving to it
    (ControlPlane.members), in the move's locations, of the size class (a server type names the stack provider's)."""
    move = control_plane.move
    if move is not None and move.provider == name:
        return control_plane.model_copy(update={"location": None, "locations": move.locations, "server_type": None})
    if control_plane.original_provider == name:  # after the flip: the original members left, as before it
        return control_plane
    return control_plane.model_copy(
        update={"count": 0, "location": None, "locations": None, "server_type": None, "move": None})


# --- validation ------------------------------------------------------------------------------------

def credential_problems(cfg: StackConfig) -> list[Problem]:
    """The credentials of every pool provider other than the stack's (program.py checks the stack provider's)."""
    return [p for name in providers_used(cfg)[1:] for p in check_credentials(providers.get(name).credentials)]


def validate(loaded: LoadedConfig) -> list[Problem]:
    """Each provider checks its own pools; a hybrid cluster's providers must couple privately."""
    return [*defaults_problems(loaded.config), *_checked(loaded)]


def _checked(loaded: LoadedConfig) -> list[Problem]:
    cfg = loaded.config
    moving = control_plane_move_problems(cfg)
    if moving:
        return moving
    used = providers_used(cfg)
    if len(used) == 1:
        return [*storage_provider_problems(cfg), *default_storage_problems(cfg), *_part_problems(loaded, cfg.provider)]
    found = [problem(f"cluster.pools[{pool.name}].provider",
                     f"must be {cfg.provider!r} (the stack's provider) or a provider it couples with "
                     f"({_couplings(cfg.provider)})", pool.provider)
             for pool in cfg.cluster.pools
             if pool.provider not in (None, cfg.provider) and coupling(cfg.provider, pool.provider) is None]
    for pool in cfg.cluster.pools:
        link = None if pool.provider in (None, cfg.provider) else coupling(cfg.provider, pool.provider)
        roles = () if link is None else pool_roles(cfg.provider, pool.provider)
        if link is not None and pool.role not in roles:
            found.append(problem(f"cluster.pools[{pool.name}].role", f"must be one of {', '.join(roles)} "
                                 f"on provider {pool.provider}: the {cfg.provider} volumes do not attach there",
                                 pool.role))
        elif link is not None and pool.role == "scylladb" and cfg.data_plane.scylladb.storage != "auto":
            found.append(problem("dataPlane.scylladb.storage", f"must be auto with the scylladb pool on provider "
                                 f"{pool.provider}: its data lives on the hosts' own disks",
                                 cfg.data_plane.scylladb.storage))
    if any((cfg.provider, name) == ("hetzner", "baremetal") for name in used):
        found += _vswitch(cfg) + _robot_topology(cfg)
    if not found:
        found += store_storage_problems(cfg) + storage_provider_problems(cfg)
    if not found:  # every pool couples: the peers are known
        found += internet_problems(cfg) + peer_quota_problems(loaded)
    found += move_seal_problems(cfg) + default_storage_problems(cfg)
    for name in used:
        found += _part_problems(loaded, name)
    return found


def _part_problems(loaded: LoadedConfig, name: str) -> list[Problem]:
    """Provider `name`'s problems with its part (`part`), in the stack file's keys, in their key and their message
    (a problem may name another of the part's keys: Hetzner's zone check names the first location): the control
    plane's locations on the provider its members move to are cluster.controlPlane.move.locations (_moved_members),
    and a location or image a `cluster.providers` entry states is that entry's (own_defaults)."""
    cfg = loaded.config
    renamed = []
    move = cfg.cluster.control_plane.move
    if move is not None and move.provider == name:
        renamed.append(("cluster.controlPlane.locations", "cluster.controlPlane.move.locations"))
    own = cfg.cluster.providers.get(name)
    renamed += [(f"cluster.{key}", f"cluster.providers.{name}.{key}") for key in DEFAULTED
                if own is not None and getattr(own, key) is not None]
    found = providers.get(name).validate(part(loaded, name))
    for old, new in renamed:
        found = [dataclasses.replace(p, path=new + p.path.removeprefix(old), message=p.message.replace(old, new))
                 if p.path == old or p.path.startswith(old + "[") else p for p in found]
    return found


def defaults_problems(cfg: StackConfig) -> list[Problem]:
    """The `cluster.providers` entries (own_defaults): each names a provider the stack's nodes run on, the stack
    provider's does not state what `cluster.location`/`cluster.image` state too, and while a flip is prepared
    (ControlPlaneMove.prepare_flip) these two are unset: they are the stack provider's alone, so the flip would hand
    them to the new provider and re-create the old one's unlocated servers in its default location or image."""
    used = providers_used(cfg)
    entries = cfg.cluster.providers
    found = [problem(f"cluster.providers.{name}", f"must name a provider this stack's nodes run on "
                     f"({', '.join(used)}): an entry for another would do nothing", name)
             for name in entries if name not in used]
    stack = entries.get(cfg.provider)
    found += [problem(f"cluster.providers.{cfg.provider}.{key}", f"must not be set together with cluster.{key}: both "
                      f"state the default {key} of the stack's provider ({cfg.provider}); keep one",
                      getattr(stack, key))
              for key in DEFAULTED if stack is not None and getattr(stack, key) and getattr(cfg.cluster, key)]
    move = cfg.cluster.control_plane.move
    if move is not None and move.prepare_flip:
        found += [problem(f"cluster.{key}", f"must not be set while cluster.controlPlane.move.prepareFlip is set: it "
                          f"is the default {key} of the stack's provider ({cfg.provider}) alone, so making "
                          f"{move.provider} the stack's would re-create {cfg.provider}'s servers that name no location "
                          f"of their own with another {key}; state it as cluster.providers.{cfg.provider}.{key} "
                          f"(and cluster.providers.{move.provider}.{key} if its servers need one)",
                          getattr(cfg.cluster, key))
                  for key in DEFAULTED if getattr(cfg.cluster, key)]
    return found


def control_plane_move_problems(cfg: StackConfig) -> list[Problem]:
    """Control-plane members moving to another provider (cluster.controlPlane.move), one per `pulumi up`: the
    cluster keeps `count` or `count + 1` etcd members throughout (never below `count`: a member is added before one
    is removed), on a provider whose members reach each other over the public internet, and the stack provider keeps
    a server behind its API balancer, which fronts only its own (hcloud LoadBalancerTarget type server; AWS NLB targets
    are instances or addresses in reach of its VPC), so the last original member stays until the flip makes the new
    provider the stack's (flip_problems)."""
    cp = cfg.cluster.control_plane
    move, key = cp.move, "cluster.controlPlane.move"
    if move is None:
        return []
    if move.flipped_from is not None or move.provider == cfg.provider:
        return flip_problems(cfg)
    link = coupling(cfg.provider, move.provider)
    if link is None or not link.over_internet:
        peers = [name for name in PROVIDERS if name != cfg.provider and coupling(cfg.provider, name) is INTERNET]
        return [problem(f"{key}.provider", f"must be a provider {cfg.provider} couples with over the public internet "
                        f"({', '.join(peers) or 'none'}): K3s servers on two providers talk etcd to each other, which "
                        "only that coupling's firewalls admit", move.provider)]
    found = _member_count_problems(cfg, flipped=False)
    if move.prepare_flip and not move.added:
        found.append(problem(f"{key}.prepareFlip", f"must be false while no member runs on {move.provider} "
                             f"({key}.added is 0): {move.provider}'s API balancer is built over the members there",
                             move.prepare_flip))
    if move.gateway_balancer == "new":
        found += gateway_handover_problems(cfg)
    return found


def _member_count_problems(cfg: StackConfig, flipped: bool) -> list[Problem]:
    """At least 3 members; `removed` at most `count - 1` before the flip (the old provider's balancer fronts its own
    servers only), at most `count` after it; `added` equal to `removed` or one more: the cluster keeps `count` or
    `count + 1` etcd members throughout."""
    cp = cfg.cluster.control_plane
    move, key = cp.move, "cluster.controlPlane.move"
    found = []
    if cp.count < 3:
        found.append(problem("cluster.controlPlane.count", "must be at least 3 while members move "
                             f"({key}): one server would become two etcd members, and losing either stops the cluster",
                             cp.count))
    if not flipped and move.removed > cp.count - 1:
        found.append(problem(f"{key}.removed", f"must be at most {cp.count - 1} (cluster.controlPlane.count - 1): "
                             f"{cfg.provider}'s API balancer fronts only {cfg.provider}'s servers, so the last original "
                             f"member stays until {move.provider} becomes the stack's provider (the flip, built from "
                             "aws to hetzner only: docs/providers.md \"Leaving AWS for Hetzner Cloud\")", move.removed))
    if flipped and move.removed > cp.count:
        found.append(problem(f"{key}.removed", f"must be at most {cp.count} (cluster.controlPlane.count): the original "
                             "members are all removed then", move.removed))
    if move.added - move.removed not in (0, 1):
        found.append(problem(f"{key}.added", f"must be {key}.removed ({move.removed}) or one more: each `pulumi up` "
                             f"adds one member on {move.provider} or then removes one original, so the cluster keeps "
                             f"{cp.count} or {cp.count + 1} etcd members", move.added))
    return found


def _flip_pairs() -> list[tuple[str, str]]:
    """(old, new) providers the gateway's balancer can be handed between (gateway_handover_problems), and so the flip
    is built for (the new one's CCM, serving the gateway already, then serves it as the stack's): AWS to Hetzner."""
    return [(a, b) for a in PROVIDERS for b in PROVIDERS if a != b
            and _provider_flag(a, "gateway_handover_from") and _provider_flag(b, "gateway_handover_to")]


def flip_problems(cfg: StackConfig) -> list[Problem]:
    """The flip: `provider` becomes the move's provider and `cluster.controlPlane.move.flippedFrom` names the former
    stack provider, whose original members left and pools run on as a secondary part (docs/providers.md "Leaving AWS
    for Hetzner Cloud: the full sequence"). Allowed only with what makes it safe (items 1-7 of "Not supported yet"):
    - a pair the gateway handover is built for (item 5), the handover taken (`gatewayBalancer: new`) and kept: the
      new provider's CCM, already serving the gateway, becomes the stack's; the old one's goes;
    - `prepareFlip` kept (item 3: the new balancer already in every certificate; item 4: agents chained);
    - the default StorageClass's provider stated (item 6; default_storage_problems), the seal stated (item 7;
      move_seal_problems), and each provider's location stated in `cluster.providers` (item 7; defaults_problems
      refuses `cluster.location`): nothing the stack provider alone decided changes with it;
    - members on the new provider (its balancer fronts them); then the originals may all go (`removed` up to `count`).
    """
    cp = cfg.cluster.control_plane
    move, key = cp.move, "cluster.controlPlane.move"
    pairs = _flip_pairs()
    built = ", ".join(f"{a} to {b}" for a, b in pairs)
    if move.flipped_from is None:
        return [problem(f"{key}.provider", f"must name another provider than the stack's ({cfg.provider}), or, making "
                        f"it the stack's (the flip), {key}.flippedFrom must name the stack's provider before it: "
                        f"built from {built} only (docs/providers.md, \"Leaving AWS for Hetzner Cloud: the full "
                        "sequence\")", move.provider)]
    if move.provider != cfg.provider:
        return [problem(f"{key}.flippedFrom", f"must be unset until provider is {key}.provider ({move.provider}): it "
                        "names where the original members run once the stack's provider is the new one",
                        move.flipped_from)]
    if (move.flipped_from, move.provider) not in pairs:
        return [problem(f"{key}.flippedFrom", f"must be a provider the flip to {move.provider} is built from: the "
                        f"flip is built from {built} only (docs/providers.md, \"Not supported yet\", item 5)",
                        move.flipped_from)]
    found = _member_count_problems(cfg, flipped=True)
    why = "the flip needs it (docs/providers.md, \"Leaving AWS for Hetzner Cloud: the full sequence\")"
    if not move.prepare_flip:
        found.append(problem(f"{key}.prepareFlip", f"must be true, set in the step before the flip and kept until the "
                             f"move is over: {move.provider}'s balancer must be in every server's certificate before "
                             f"any join address changes, and the agents restart one at a time; {why}",
                             move.prepare_flip))
    if move.gateway_balancer != "new":
        found.append(problem(f"{key}.gatewayBalancer", f"must be new, taken in a step before the flip and kept: "
                             f"{move.provider}'s cloud controller already serves the gateway, {move.flipped_from}'s "
                             f"serves no balancer, so only one serves it when the stack's CCM changes; {why}",
                             move.gateway_balancer))
    if not move.added:
        found.append(problem(f"{key}.added", f"must be at least 1: {move.provider}'s API balancer, the stack's after "
                             f"the flip, fronts the members there; {why}", move.added))
    # A pool naming no provider is the stack provider's: at the flip it would move, every node replaced at once.
    found += [problem(f"cluster.pools[{pool.name}].provider", f"must be set while {key}.flippedFrom is set: a pool "
                      f"naming no provider is the stack's, so at the flip its nodes would all be replaced by "
                      f"{move.provider} servers at once; state {move.flipped_from} for the pools that stay there (no "
                      f"change) and {move.provider} for new ones; {why}")
              for pool in cfg.cluster.active_pools if pool.provider is None]
    found += [problem(f"cluster.providers.{name}.location", f"must be set for the flip: unset, each provider's "
                      f"default location depends on which one is the stack's; state the one its servers run in; {why}")
              for name in (move.flipped_from, move.provider) if name in providers_used(cfg)
              and (cfg.cluster.providers.get(name) is None or cfg.cluster.providers[name].location is None)]
    return found


def gateway_handover_problems(cfg: StackConfig) -> list[Problem]:
    """`cluster.controlPlane.move.gatewayBalancer: new` (gateway_handover) needs a stack provider whose CCM can stop
    serving balancers and keep the one it built (`gateway_handover_from`; Azure's chart 1.36.0 fixes its
    --controllers and takes no extra argument; GCP and bare metal have no CCM: K3s' ServiceLB serves there), a new
    provider whose CCM can serve the gateway from a secondary part (`gateway_handover_to`), and nodes there to
    target."""
    move, key = cfg.cluster.control_plane.move, "cluster.controlPlane.move.gatewayBalancer"
    pairs = [f"{a} to {b}" for a, b in _flip_pairs()]
    if not (_provider_flag(cfg.provider, "gateway_handover_from")
            and _provider_flag(move.provider, "gateway_handover_to")):
        return [problem(key, f"must be old moving from {cfg.provider} to {move.provider}: handing the gateway's "
                        f"balancer over needs {cfg.provider}'s cloud controller to stop serving balancers while "
                        f"{move.provider}'s serves the gateway from its part, built for {', '.join(pairs)} only "
                        "(docs/providers.md, \"Not supported yet\", item 5)", move.gateway_balancer)]
    if not (cfg.cluster.control_plane.members(move.provider)
            or any(pool_provider(pool, cfg) == move.provider and pool.count for pool in cfg.cluster.active_pools)):
        return [problem(key, f"must be old while no node runs on {move.provider}: its balancer targets the nodes "
                        "there", move.gateway_balancer)]
    return []


def _provider_flag(name: str, flag: str) -> bool:
    return bool(getattr(providers.get(name), flag, False))


def move_seal_problems(cfg: StackConfig) -> list[Problem]:
    """OpenBao's seal must not depend on which provider is the stack's while the control plane moves: unset, it is
    the stack provider's key service (default_seal), and making the move's provider the stack's (the move's last
    step) would change the running OpenBao's seal, which is a migration (docs/security.md), not a config change. Where
    the two providers' defaults differ, the seal in effect must be stated (the same seal: nothing changes)."""
    secrets, move = cfg.cluster_services.secrets, cfg.cluster.control_plane.move
    if move is None or secrets.seal.type is not None or secrets.backend != "openbao":
        return []
    before = move.flipped_from or cfg.provider  # after the flip, the provider whose seal OpenBao started with
    here, there = (providers.get(name).kms_seal or "static" for name in (before, move.provider))
    if here == there:
        return []
    in_effect = default_seal(secrets.backend, here != "static")
    return [problem("clusterServices.secrets.seal.type",
                    f"must be set while the control plane moves to {move.provider} (cluster.controlPlane.move): unset, "
                    f"OpenBao's seal follows the stack's provider ({here} on {cfg.provider}, {there} on "
                    f"{move.provider}), and making {move.provider} the stack's provider would change the running "
                    f"OpenBao's seal, a migration; set the seal in effect, {in_effect} (nothing changes; "
                    "docs/security.md)")]


def _secondary_storage(name: str) -> bool:
    return _provider_flag(name, "secondary_storage")


def _block_storage(cfg: StackConfig, pool_provider: str | None) -> str:
    """Whose volumes a pool's store claims: its provider's where that provider installs its own as a secondary,
    else the stack provider's (bare metal next to Hetzner Cloud keeps ScyllaDB on its own disks)."""
    name = pool_provider or cfg.provider
    return name if _secondary_storage(name) else cfg.provider


def store_storage_problems(cfg: StackConfig) -> list[Problem]:
    """A store's pods share one StorageClass (one volume claim template), and a class is one provider's volumes:
    a store's own pools must all claim the same provider's (docs/providers.md, "Storage per provider").

    Except a Movable store (config/data.py) while it moves between providers: `dataPlane.<store>.storageProvider`
    names whose volumes its new instances claim (storage_provider_problems; components/data/placement.py
    volume_pools), its pools may then claim two providers' volumes (the old and the new, no third), and its instances,
    replaced one at a time, each get a claim of that class and copy the data from the others:
    - PostgreSQL: CloudNativePG's webhook lets the class change on a running Cluster (it checks only that sizes do not
      shrink: validateStorageConfigurationChange, internal/webhook/v1/cluster_webhook.go at v1.30.0), existing
      instances keep their claims (the operator reconciles only their size and attributes class: reconcileExistingPVCs,
      pkg/reconciler/persistentvolumeclaim/existing.go) and a new instance's claims take the spec's class (Build,
      .../build.go); it is recreated by pg_basebackup from the primary.
    - DragonflyDB: the operator keeps an existing StatefulSet's volumeClaimTemplates (it copies them from the live one
      and only warns, ImmutableField: reconcileResources, internal/controller/dragonfly_instance.go at v1.6.1) but
      creates a missing StatefulSet from the spec, so one deleted with --cascade=orphan comes back with the new class
      over the running pods; a pod deleted with its claim returns with a claim of the new class and, having no role,
      is made a replica that full-syncs from the primary (dragonfly_pod_lifecycle_controller.go).
    - The object store (SeaweedFS chart 4.44.0): its masters, volume servers and filers are chart StatefulSets whose
      claim templates take the values' class (templates/{master,volume,filer}/*-statefulset.yaml); one deleted with
      --cascade=orphan is recreated by the next release upgrade over the running pods. A volume server is emptied
      first (`weed shell` volumeServer.evacuate, the other servers keep both copies), a filer with an empty store
      copies the whole namespace from a peer (weed/filer/meta_aggregator.go "starting full metadata sync"), and a
      master discards its raft state at every start (weed/server/raft_server.go, resumeState off)."""
    found = []
    for store, role in STORE_ROLES.items():
        owners = {p.name: _block_storage(cfg, p.provider) for p in cfg.cluster.active_pools if p.role == role}
        settings, kinds = getattr(cfg.data_plane, store), ", ".join(sorted(set(owners.values())))
        moving = cfg.data_plane.storage_provider(store)
        if not settings.enabled or len(set(owners.values())) < (3 if moving else 2):
            continue
        if moving:  # a move is from one provider's volumes to another's: a third provider's pool would hold none
            why = (f"on at most two providers' volumes while it moves ({_storage_provider_key(store)}: the old and the "
                   f"new; {kinds} given)")
        else:
            how = (f"; while {settings.title} moves between providers set {_storage_provider_key(store)} to the "
                   "provider its new instances claim volumes on" if isinstance(settings, Movable) else "")
            why = (f"on providers whose volumes attach to all of them: one store claims one provider's StorageClass "
                   f"({kinds} volumes attach only to their own provider's nodes){how} (docs/providers.md, \"Moving "
                   "pools to another provider\")")
        found.append(problem("cluster.pools", f"must put the {role} pools, where {store} keeps its volumes, {why}",
                             ", ".join(f"{name}: {owner}" for name, owner in owners.items())))
    return found


# The fewest instances a store moves with: each is replaced in turn while the others hold the data, and with fewer a
# replacement would leave one copy (PostgreSQL's primary alone, DragonflyDB's master alone, an object whose second copy
# is on the server being emptied with nowhere else to go).
MOVING_INSTANCES = 3


def storage_provider_problems(cfg: StackConfig) -> list[Problem]:
    """A moving store's `storageProvider` names a provider whose volumes the store's pools claim: new instances get
    that provider's classes, which attach only to its own nodes (components/data/placement.py volume_pools); and
    those pools hold a node for each of at least MOVING_INSTANCES instances (one instance per node), which is where
    the moved instances run."""
    found = []
    for store, role in STORE_ROLES.items():
        chosen = cfg.data_plane.storage_provider(store)
        if chosen is None:
            continue
        title, key = getattr(cfg.data_plane, store).title, _storage_provider_key(store)
        owners = [(p.count, _block_storage(cfg, pool_provider(p, cfg))) for p in role_pools(cfg, role)]
        offered = sorted({owner for _, owner in owners})
        there = sum(count for count, owner in owners if owner == chosen)
        if chosen not in offered:
            found.append(problem(key, f"must be one of the providers whose volumes {title}'s pools claim "
                                 f"({', '.join(offered)}): new instances claim that provider's volumes, which attach "
                                 "only to its nodes", chosen))
        elif there < MOVING_INSTANCES:
            found.append(problem(key, f"needs {title}'s pools on {chosen} to hold at least {MOVING_INSTANCES} nodes, "
                                 f"one per instance, {there} given: its instances move one at a time onto them while "
                                 f"the others keep the data, and with fewer than {MOVING_INSTANCES} each replacement "
                                 "leaves a single copy (add nodes to those pools before the move)", chosen))
    return found


def _storage_provider_key(store: str) -> str:
    return f"dataPlane.{to_camel(store)}.storageProvider"


def combined_storage(primary: Infrastructure, secondaries: Sequence[Infrastructure],
                     default: Infrastructure | None = None):
    """The cluster's storage over several providers: the stack provider's classes, and those of each secondary in
    `secondaries` (the ones whose provider has `secondary_storage`: Hetzner, AWS, GCP, Azure), each with its CSI driver
    on its own nodes. The classes of `default` (clusterServices.defaultStorageProvider: a secondary in `secondaries`),
    else the stack provider's, are the cluster's default; every other part's pools claim their own part's classes
    (Storage.pool_classes)."""
    own = [(infra, infra.install_storage) for infra in secondaries if infra.install_storage is not None]
    if primary.install_storage is None or not own:
        return primary.install_storage

    def install(provider, depends_on, parent) -> Storage:
        parts = [(primary, primary.install_storage(provider, depends_on, parent)),
                 *((infra, installer(provider, depends_on, parent)) for infra, installer in own)]
        chosen = next((storage for infra, storage in parts if infra is default), parts[0][1])
        classes = {n.spec.pool: (storage.default_class, storage.xfs_class)
                   for infra, storage in parts if storage is not chosen for n in infra.nodes}
        scratch = {name: each for _, storage in parts for name, each in storage.scratch_classes.items()}
        return dataclasses.replace(chosen, resources=[r for _, storage in parts for r in storage.resources],
                                   pool_classes=classes, scratch_classes=scratch)
    return install


def default_storage_problems(cfg: StackConfig) -> list[Problem]:
    """`clusterServices.defaultStorageProvider` names a provider whose volumes the cluster has: the stack's, or a
    secondary's that installs its own (secondary_storage). And it is stated once a control-plane move prepares its
    flip: unset, the default StorageClass follows the stack provider, so making the move's provider the stack's would
    move every new claim that names no class (and the platform's charts' volumes) to it (docs/providers.md "Not
    supported yet", item 6)."""
    chosen, move = cfg.cluster_services.default_storage_provider, cfg.cluster.control_plane.move
    key = "clusterServices.defaultStorageProvider"
    if chosen is None:
        if move is None or not (move.prepare_flip or move.flipped_from):
            return []
        return [problem(key, f"must be set while the flip to {move.provider} is prepared "
                        "(cluster.controlPlane.move.prepareFlip): unset, the default StorageClass follows the stack's "
                        f"provider, and making {move.provider} the stack's would put every new claim naming no class "
                        f"on {move.provider}'s volumes; set {cfg.provider} to keep it (nothing changes), or "
                        f"{move.provider} to move it")]
    offered = [name for i, name in enumerate(providers_used(cfg)) if i == 0 or _secondary_storage(name)]
    if chosen in offered:
        return []
    return [problem(key, f"must be one of the providers whose volumes the cluster has ({', '.join(offered)}): the "
                    "default StorageClass is one of their classes", chosen)]


def joins_over_internet(cfg: StackConfig) -> bool:
    """Whether some pool (or a moving control plane) joins the cluster over the public internet (INTERNET)."""
    return any(coupling(cfg.provider, name).over_internet for name in providers_used(cfg)[1:])


def _joins_through_balancer(cfg: StackConfig) -> bool:
    """Nodes on the internet can join at the stack provider's public API balancer (health-checked over every server):
    the provider's `admit_peers` lets every node through it (Provider.public_api_balancer_admits_peers)."""
    balancer = cfg.cluster.api_load_balancer
    return balancer.enabled and balancer.public and _balancer_admits_peers(cfg.provider)


def _balancer_admits_peers(name: str) -> bool:
    return bool(getattr(providers.get(name), "public_api_balancer_admits_peers", False))


def _servers_join_privately(name: str) -> bool:
    return bool(getattr(providers.get(name), "servers_join_privately", False))


def internet_problems(cfg: StackConfig) -> list[Problem]:
    """A cluster over the public internet: an API path that survives losing any one server, and only nodes whose
    addresses the firewalls can name."""
    if not joins_over_internet(cfg):
        return []
    found = []
    servers = cfg.cluster.control_plane.servers
    if servers > 1 and not _joins_through_balancer(cfg):
        open_to_peers = [name for name in PROVIDERS if _balancer_admits_peers(name)]
        found.append(problem(
            "cluster.apiLoadBalancer.public", f"must be true (with apiLoadBalancer.enabled) on a stack provider whose "
            f"public API balancer the other providers' nodes reach ({', '.join(open_to_peers)}) when pools join over "
            f"the public internet with {servers} K3s servers: those nodes join at the balancer, which answers while "
            "any server does (the first server's address would not; the balancer admits every cluster node on 6443, "
            "the API still asks for credentials); or run one K3s server (cluster.controlPlane.count: 1)",
            f"{cfg.cluster.api_load_balancer.public} on provider {cfg.provider}"))
    # The firewalls admit each node by its address (over_internet); a node the cluster autoscaler creates has an
    # address nobody knows beforehand, and the providers offer no fixed range for them (Hetzner assigns each server
    # a public IPv4 of its own), so the other providers' firewalls would shut it out.
    found += [problem(f"cluster.pools[{pool.name}].autoscaling", "must not be set while pools join over the public "
                      "internet: each provider's firewall admits the cluster's nodes by their addresses, and the "
                      "addresses of the servers the autoscaler would create are not known beforehand; give the pool "
                      "a fixed count", f"min {pool.autoscaling.min}, max {pool.autoscaling.max}")
              for pool in cfg.cluster.pools if pool.autoscaling is not None and pool.provider in (None, cfg.provider)]
    return found


def churn_problems(cfg: StackConfig, previous: PreviousRun) -> list[Problem]:
    """Over the public internet, one edit must not both add and remove nodes. A peer rule's update drops the leaving
    nodes' addresses and admits the new ones at once, and its hook takes the leaving nodes out first
    (components/k3s/depart.py): their pods can only go to nodes already in the cluster, so a drain that needs the
    new capacity (a disruption budget, a store's replicas) blocks and fails every run. In two steps the new nodes
    join first. `previous`: the last run's record (providers/previous_run.py); none (a first deploy) checks nothing."""
    if not previous.recorded or not joins_over_internet(cfg):
        return []
    now, before = cfg.cluster.node_names(cfg.provider), set(previous.nodes)
    added, removed = [n for n in now if n not in before], sorted(before.difference(now))
    if not added or not removed:
        return []
    keys = sorted({_key_of(cfg, name) for name in (*added, *removed)})
    return [problem(" and ".join(f"{NAMESPACE}:{key}" for key in keys), "must not both add and remove nodes in one `pulumi up` while the cluster runs "
                    "over the public internet: the leaving nodes are drained before the new ones join, so a drain "
                    "that needs the new capacity would fail every run. Make it two edits: first add (raise the "
                    "count, or cluster.controlPlane.move.added) and run `pulumi up`, then remove (lower the count, or "
                    "cluster.controlPlane.move.removed) and run `pulumi up` again (docs/lifecycle.md, \"The previous "
                    "run\")", f"adds {', '.join(added)}; removes {', '.join(removed)}")]


def renumbered_problems(cfg: StackConfig, previous: PreviousRun) -> list[Problem]:
    """`cluster.controlPlane.firstMember` above 1 names members a finished move left (control-plane-4.. once the
    originals are gone), which must be running: the previous run's record lists the first of them. On a first deploy
    (no record) no member would be rendered as the initialiser (components/k3s/lifecycle.py `initialiser`: only
    control-plane-1 starts a cluster), and every server would wait to join a cluster nobody starts."""
    cp = cfg.cluster.control_plane
    first = node_name(CONTROL_PLANE, cp.first_member - 1)
    if cp.first_member == 1 or first in previous.nodes:
        return []
    return [problem("cluster.controlPlane.firstMember", f"must be 1 unless the stack runs {first} (its previous run's "
                    f"record lists {', '.join(n for n in previous.nodes if n.startswith(CONTROL_PLANE)) or 'no member'}"
                    "): it names the members a finished control-plane move left, and on a first deploy no member "
                    "would start the cluster (only control-plane-1 does)", cp.first_member)]


def _key_of(cfg: StackConfig, node: str) -> str:
    """The config key that decides whether `node` exists: its pool's, or the control plane's."""
    pool = node.rsplit("-", 1)[0]
    if pool != CONTROL_PLANE:
        return f"cluster.pools[{pool}].count"
    return "cluster.controlPlane.move" if cfg.cluster.control_plane.move is not None else "cluster.controlPlane.count"


def peer_quota_problems(loaded: LoadedConfig) -> list[Problem]:
    """Over the public internet, each provider's firewall names every node per cluster port (over_internet): refused
    where that would pass the provider's documented default limit (PeerQuota), before the cloud refuses the rules
    in the middle of an update."""
    cfg = loaded.config
    used = providers_used(cfg)
    limited = [name for name in PROVIDERS if getattr(providers.get(name), "peer_quota", None) is not None]
    found = [problem(f"cluster.firewallQuotas.{name}", f"must name a provider whose firewall limit a cluster over the "
                     f"public internet is checked against ({', '.join(limited)})", name)
             for name in cfg.cluster.firewall_quotas if name not in limited]
    if found or not joins_over_internet(cfg):
        return found
    specs = {name: node_specs(part(loaded, name)) for name in used}
    everyone = [spec.name for each in specs.values() for spec in each]
    servers = [spec.name for each in specs.values() for spec in each if spec.k3s_role == "server"]
    for name in (n for n in used if n in limited):
        quota = providers.get(name).peer_quota
        limit = cfg.cluster.firewall_quotas.get(name, quota.limit)
        rules = peer_rules(any(s.k3s_role == "server" for s in specs[name]), everyone, servers)
        count = quota.used(part(loaded, name).config, rules)
        if count > limit:
            found.append(problem("cluster.pools", f"must hold fewer nodes in a cluster over the public internet: "
                                 f"admitting all {len(everyone)} nodes ({len(servers)} K3s servers) on the cluster "
                                 f"ports takes {count} {quota.counted} on provider {name}, above its limit of {limit} "
                                 f"(the documented default {quota.limit}; where your quota is higher, set "
                                 f"cluster.firewallQuotas.{name})", f"{len(everyone)} nodes"))
    return found


def _couplings(stack_provider: str) -> str:
    pairs = [f"{pool}: {c.how}" for (stack, pool), c in COUPLINGS.items() if stack == stack_provider]
    if _peers_over_internet(stack_provider):
        peers = [name for name in PROVIDERS if name != stack_provider and _peers_over_internet(name)
                 and (stack_provider, name) not in COUPLINGS]
        pairs.append(f"{', '.join(peers)}: {INTERNET.how}")
    return "; ".join(pairs) or "none"


def _vswitch(cfg: StackConfig) -> list[Problem]:
    """Bare metal next to Hetzner Cloud: the hosts' vSwitch subnet lies in the cloud network, apart from the
    cloud servers' subnet and the pod and service ranges."""
    bare = cfg.bare_metal
    if bare is None:
        return [problem("bareMetal", "must be set for pools with provider baremetal: hosts (publicAddress, "
                        "privateAddress, sshUser, pool), vswitch.id and subnetCidr")]
    found = []
    if bare.vswitch is None:
        found.append(problem("bareMetal.vswitch.id", "must be set: the Robot vSwitch of the dedicated servers, "
                             "joined to the Hetzner Cloud network (the cluster's nodes talk privately)"))
    if bare.subnet_cidr is None:
        return [*found, problem("bareMetal.subnetCidr", "must be set: the vSwitch subnet of cluster.networkCidr "
                                "the hosts' privateAddress lie in, e.g. 10.0.2.0/24")]
    subnet, network = ipaddress.ip_network(bare.subnet_cidr), ipaddress.ip_network(cfg.cluster.network_cidr)
    if subnet.version != network.version or not subnet.subnet_of(network):
        found.append(problem("bareMetal.subnetCidr", f"must lie inside cluster.networkCidr ({network}): Hetzner "
                             "joins a vSwitch to the cloud network as one of its subnets", bare.subnet_cidr))
    for key in ("subnetCidr", "podCidr", "serviceCidr"):
        other = ipaddress.ip_network(getattr(cfg.cluster, _snake(key)))
        if subnet.overlaps(other):
            found.append(problem("bareMetal.subnetCidr", f"must not overlap cluster.{key} ({other})", bare.subnet_cidr))
    return found


def _robot_topology(cfg: StackConfig) -> list[Problem]:
    """Dedicated servers next to Hetzner Cloud: their region and zone in the words Hetzner's CCM uses for Robot
    servers (the lowercase location, fsn1, and datacenter, fsn1-dc14), so the cloud nodes' and the hosts' labels
    name the same places the same way (no CCM runs for the hosts: the kubelet sets what config says)."""
    bare = cfg.bare_metal
    if bare is None:
        return []
    # The vSwitch joins the cloud network, so the servers are in a location of its network zone.
    network_zone = NETWORK_ZONES.get(network_location(cfg.cluster))
    locations = [name for name, zone in NETWORK_ZONES.items() if zone == network_zone]
    found = []
    if bare.region is not None and bare.region not in locations:
        found.append(problem("bareMetal.region", f"must be the Hetzner location of the dedicated servers, in lowercase, "
                             f"one of the cloud network's zone {network_zone} ({', '.join(locations)})", bare.region))
    region = bare.region if bare.region in locations else "<location>"
    found += [problem(f"bareMetal.hosts[{i}].zone", f"must be the server's Robot datacenter in lowercase, "
                      f"{region}-dc<number> (e.g. fsn1-dc14), matching bareMetal.region", host.zone)
              for i, host in enumerate(bare.hosts)
              if host.zone is not None and not re.fullmatch(rf"{re.escape(bare.region or '')}-dc[0-9]+", host.zone)]
    return found


def _snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


# --- the cluster's peers and ports -----------------------------------------------------------------

def peer_rules(has_servers: bool, node_sources: Sequence[T], server_sources: Sequence[T]
               ) -> list[tuple[ClusterPort, tuple[T, ...]]]:
    """What one provider's firewall admits from the other providers' nodes: CLUSTER_PORTS, each from exactly
    the peers it names (`node_sources`: every other node; `server_sources`: the other K3s servers), and ports
    only servers listen on only where this provider runs servers. A port without peers gets no rule.

    The host metrics ports (source "unencrypted", providers/base.py) carry plain TCP only to or from a K3s server
    (Cilium leaves control-plane nodes out of node encryption): every node sends it to a server, a server (where the
    control plane is not dedicated, Prometheus may run there) to any node; between two agents it is inside WireGuard."""
    rules = []
    for port in CLUSTER_PORTS:
        sources = tuple(node_sources if port.source == "nodes" or (port.source == "unencrypted" and has_servers)
                        else server_sources)
        if sources and (port.to == "nodes" or has_servers):
            rules.append((port, sources))
    return rules


# --- composition -----------------------------------------------------------------------------------

def create(loaded: LoadedConfig) -> Infrastructure:
    """Every provider's part, and one Infrastructure over all their nodes."""
    cfg = loaded.config
    used = providers_used(cfg)
    links = [coupling(cfg.provider, name) for name in used[1:]]
    internet = any(link.over_internet for link in links)
    # Over the internet the stack provider's nodes register with their public addresses too.
    primary = (providers.get(cfg.provider).create(part(loaded, cfg.provider), over_internet=True) if internet
               else providers.get(cfg.provider).create(part(loaded, cfg.provider)))
    if len(used) == 1:
        return primary
    # The stack provider's servers and agents all live in its subnet, the one network a private coupling routes
    # to the secondaries' agents (COUPLINGS).
    cloud = (cfg.cluster.subnet_cidr,)
    secondaries = [providers.get(name).create(part(loaded, name), over_internet=True) if link.over_internet
                   else providers.get(name).create(part(loaded, name), peers=peer_rules(False, cloud, cloud))
                   for name, link in zip(used[1:], links)]
    combined = combine(primary, secondaries, link_mtu(used, links), [link.node_labels for link in links])
    move = cfg.cluster.control_plane.move
    if move is not None and move.gateway_balancer == "new" and move.flipped_from is None:
        # After the flip the new provider's CCM serves the gateway as the stack's, the old one's runs no more.
        combined = gateway_handover(combined, primary, secondaries[used.index(move.provider) - 1])
    # Secondaries without storage of their own (bare metal) leave their pools the stack provider's classes (pool_roles
    # keeps data off them); one with stateless pools only needs none (no driver, no credential).
    # The secondary holding the default class (clusterServices.defaultStorageProvider) installs its storage regardless.
    chosen = cfg.cluster_services.default_storage_provider
    default = next((infra for infra, name in zip(secondaries, used[1:]) if name == chosen), None)
    # After the flip the former stack provider's volumes may still be bound (the platform's, a store's, claims
    # naming no class before the flip): its driver and classes stay while it runs any node (item 6); with none
    # left they could attach nowhere.
    former = cfg.cluster.control_plane.original_provider
    combined = dataclasses.replace(combined, install_storage=combined_storage(
        primary, [infra for infra, name in zip(secondaries, used[1:]) if _secondary_storage(name)
                  and (holds_data([n.spec for n in infra.nodes]) or infra is default or (name == former and infra.nodes))], default))
    if not internet:
        return combined
    return over_internet(combined, [primary, *(s for s, link in zip(secondaries, links) if link.over_internet)],
                         balanced=_joins_through_balancer(cfg), servers_private=_servers_join_privately(cfg.provider),
                         private_key=loaded.secrets.ssh_private_key, logins=ssh_logins(cfg))


def ssh_logins(cfg: StackConfig) -> dict[str, str]:
    """Who logs in over SSH on each provider's machines, by provider name (a Node's adplatform.io/provider label): a
    node that leaves over the internet has its K3s stopped on it (components/k3s/depart.py), when the program no
    longer has its connection. The clouds' images have one login each; existing hosts have their own
    (bareMetal.hosts[].sshUser): a leaving host, no longer listed, is reached as the one login the listed hosts
    share, else as the default (root)."""
    logins = {name: cloud.SSH_USER for name in PROVIDERS}
    logins[hetzner.NAME] = hetzner.SSH_USER
    users = {host.ssh_user for host in cfg.bare_metal.hosts} if cfg.bare_metal is not None else set()
    logins["baremetal"] = users.pop() if len(users) == 1 else Host.model_fields["ssh_user"].default
    return logins


def over_internet(infra: Infrastructure, parts: Sequence[Infrastructure], balanced: bool,
                  servers_private: bool = False, *, private_key: pulumi.Input[str],
                  logins: Mapping[str, str]) -> Infrastructure:
    """The cluster with nodes that reach each other over the public internet (INTERNET).

    Every node registers with its public address (K3s node-ip and a server's advertise-address are the node's
    cluster address, Node.private_ip), so Cilium's tunnel and WireGuard peers and the K3s supervisor reach it
    from any provider. Each part's firewall then admits exactly every node's public address on exactly
    CLUSTER_PORTS (nodes of the same provider included: they talk over public addresses too).

    The nodes join at (and drains run against) `join_endpoint`, the stack provider's servers at
    `server_join_endpoints` where `servers_private` (Provider.servers_join_privately). Once joined, a node's K3s
    reaches the API through its client-side load balancer, which follows every server, and Cilium through the
    node-local endpoint (components/k3s/cilium.py): neither depends on the join address.

    A node that leaves is drained before any rule stops admitting it (admit_everyone).
    """
    nodes = [dataclasses.replace(n, private_ip=n.public_ip) for n in infra.nodes]
    admitted = admit_everyone(nodes, parts, private_key, logins)
    # parts[0], the stack provider's: its servers alone sit behind its private balancer (members moving to another
    # provider join at the public one).
    return dataclasses.replace(infra, nodes=nodes, api_private_endpoint=join_endpoint(infra, nodes, balanced),
                               join_endpoints=server_join_endpoints(parts[0], balanced and servers_private),
                               admitted_by=admitted.alone, peer_rules=admitted.rules)


def admit_everyone(nodes: Sequence[Node], parts: Sequence[Infrastructure], private_key: pulumi.Input[str],
                   logins: Mapping[str, str]) -> AdmittedPeers:
    """Each part's firewall admits every node (peer_rules); returns every rule (each K3s install waits for them:
    Infrastructure.peer_rules) and, by node name, the rules that admit that node alone, which its drain command
    depends on (Infrastructure.admitted_by). Rules that name several nodes are updated when one leaves, before its
    drain command runs: they take the departure hooks (components/k3s/depart.py), which take the nodes the update
    stops admitting out of the cluster first."""
    from components.k3s.depart import departure_hooks  # the K3s layer imports the providers
    hooks = departure_hooks([n.hostname for n in nodes], private_key, logins)
    everyone = [PeerAddress(n.name, n.public_ip.apply(_single)) for n in nodes]
    servers = [peer for peer, n in zip(everyone, nodes) if n.spec.k3s_role == "server"]
    every: list[pulumi.Resource] = []
    alone: dict[str, list[pulumi.Resource]] = {}
    for each in parts:
        has_servers = any(n.spec.k3s_role == "server" for n in each.nodes)
        admitted = each.admit_peers(peer_rules(has_servers, everyone, servers), hooks)
        every += admitted.rules
        for name, rules in admitted.alone.items():
            alone.setdefault(name, []).extend(rules)
    return AdmittedPeers(rules=tuple(every), alone=alone)


def join_endpoint(infra: Infrastructure, nodes: Sequence[Node], balanced: bool) -> pulumi.Output[str]:
    """Where nodes on the internet join: the stack provider's public API balancer, which answers while any server
    does (`balanced`: internet_problems requires it with several servers), else the one server's public address
    (the stack provider's private balancer is out of the other providers' reach)."""
    if balanced:
        return infra.api_public_endpoint
    return next(n for n in nodes if n.spec.k3s_role == "server").public_ip


def server_join_endpoints(infra: Infrastructure, private: bool) -> dict[str, pulumi.Output[str]]:
    """Where the stack provider's servers join instead (Infrastructure.join_endpoints), when `private`: its private
    API balancer (`infra` as the provider built it, before over_internet), which its servers reach inside its network,
    while the public one does not serve its own backends (GCP's passthrough: providers/gcp.py). The other providers'
    nodes have no servers here, and join at the public balancer."""
    return {n.name: infra.api_private_endpoint for n in infra.servers} if private else {}


def _single(address: str) -> str:
    return f"{address}/{ipaddress.ip_address(address).max_prefixlen}"


# Labels every secondary part's node registers with (control-plane members moving there included): the stack
# provider's CCM builds the Service load balancers (the shared gateway's) over the cluster's nodes, and another
# provider's machine can never be its target. The well-known label makes k8s.io/cloud-provider's service controller
# (v0.35/v0.36 controllers/service nodeIncludedPredicate) leave the node out before any CCM sees it. Without it,
# hcloud CCM 1.35 skips the node with an UnknownProviderIDPrefix warning event on every sync, the AWS CCM 1.35 skips
# it only if its provider ID fails to parse as an instance id, and the Azure CCM 1.36's node-IP backend pools add
# its address (docs/providers.md "Load balancer targets"). The kubelet may set it on itself: node.kubernetes.io/
# is a kubelet label namespace (k8s.io/kubelet well-known labels; NodeRestriction admits it).
SECONDARY_NODE_LABELS = {"node.kubernetes.io/exclude-from-external-load-balancers": "true"}


def load_balancer_target(node: Node) -> bool:
    """Whether the stack provider's cloud load balancers (the gateway's) may send traffic to `node`: every node but a
    secondary part's (SECONDARY_NODE_LABELS)."""
    return not SECONDARY_NODE_LABELS.items() <= node.spec.labels.items()


def combine(primary: Infrastructure, secondaries: Sequence[Infrastructure], mtu: int,
            node_labels: Sequence[Mapping[str, str]]) -> Infrastructure:
    """The stack provider's Infrastructure with the secondaries' nodes (each with its coupling's `node_labels` and
    SECONDARY_NODE_LABELS): each node keeps its own provider's profile (kubelet flags: only nodes a cloud controller
    initialises are `cloud-provider=external`)."""
    nodes = [*primary.nodes, *(_labelled(n, {**labels, **SECONDARY_NODE_LABELS})
                               for infra, labels in zip(secondaries, node_labels) for n in infra.nodes)]
    # Only the stack provider's add-ons run (its CCM among them): a secondary's kubelet waiting for its own
    # provider's CCM would stay tainted uninitialised.
    profiles = {n.name: dataclasses.replace(infra.cluster, external_cloud_provider=False)
                for infra in secondaries for n in infra.nodes}
    profile = dataclasses.replace(
        primary.cluster, cilium_values=cilium_values(primary.cluster.cilium_values, parts_mtu([primary, *secondaries],
                                                                                            mtu)),
        local_nvme=_scylladb_disks_local([primary, *secondaries]))
    return dataclasses.replace(primary, nodes=nodes, cluster=profile, node_profiles=profiles,
                               tls_sans=_all_sans([primary, *secondaries]))


def _all_sans(parts: Sequence[Infrastructure]) -> pulumi.Output[list[str]]:
    """The API certificate's names: the stack provider's, and the addresses of servers on other providers (control-plane
    members moving there, ControlPlaneMove), which agents' client-side load balancers reach directly."""
    if not any(infra.servers for infra in parts[1:]):
        return parts[0].tls_sans
    return pulumi.Output.all(*(infra.tls_sans for infra in parts)).apply(
        lambda names: sorted({name for each in names for name in each}))


def _scylladb_disks_local(parts: Sequence[Infrastructure]) -> bool:
    """ClusterProfile.local_nvme of the whole cluster: whether the disks of the nodes ScyllaDB runs on (its own role,
    or converged nodes) are local NVMe, the only store that uses them. The parts running those nodes decide: a pool
    on another provider that runs no ScyllaDB (stateless work, a stateful pool moving over) must not turn ScyllaDB's
    local volumes into network ones, which would delete its local CSI driver and class under the running cluster."""
    hosting = [infra for infra in parts if any(n.spec.workload_role in SCYLLADB_NODE_ROLES for n in infra.nodes)]
    return all(infra.cluster.local_nvme for infra in hosting or parts)


def gateway_handover(infra: Infrastructure, primary: Infrastructure, new: Infrastructure) -> Infrastructure:
    """The gateway's LoadBalancer Service served by the CCM of `new`, the part the control plane moves to
    (ControlPlaneMove.gateway_balancer `new`; docs/providers.md "Not supported yet", item 5), while the stack
    provider's CCM runs without its service controller (its `gateway_handover_from` switch), so its balancer stays,
    forwarding to the nodes it targets, until it is deleted by hand:
    - `new`'s add-ons are installed after the stack provider's: its CCM, serving Services alone (its
      `gateway_handover_to`).
    - The Service carries `new`'s annotations (Cilium copies the Gateway's onto it): its balancer's place and type.
      Cilium's listeners accept PROXY headers or none, for every balancer at once (ClientAddress), so both providers'
      balancers must agree while both forward.
    - The service controller (k8s.io/cloud-provider >= v0.34 nodeIncludedPredicate) hands a CCM the nodes whose
      `exclude-from-external-load-balancers` is absent or false: `new`'s nodes get false (their K3s node-label, which
      K3s applies over the Node's labels when it restarts: a changed value replaces the old), the stack provider's
      get true (another provider's CCM fails their provider IDs or, Azure's, would add their addresses)."""
    if new.cluster.client_address.proxy_protocol != primary.cluster.client_address.proxy_protocol:
        raise ValueError("the gateway's two balancers must agree on PROXY protocol while both forward")
    key = next(iter(SECONDARY_NODE_LABELS))
    ours = {n.name for n in new.nodes}
    nodes = [_labelled(n, {key: "false" if n.name in ours else "true"}) for n in infra.nodes]
    cluster = dataclasses.replace(infra.cluster, load_balancer_annotations=new.cluster.load_balancer_annotations,
                                  client_address=new.cluster.client_address)
    return dataclasses.replace(infra, nodes=nodes, cluster=cluster,
                               install_addons=_installed_after(infra.install_addons, new.install_addons))


def _installed_after(first: AddonInstaller | None, then: AddonInstaller | None) -> AddonInstaller | None:
    """Both parts' add-on installers, as one (the K3s layer calls one)."""
    if first is None or then is None:
        return first or then

    def install(provider, depends_on, parent):
        return [*first(provider, depends_on, parent), *then(provider, depends_on, parent)]
    return install


def _labelled(node: Node, labels: Mapping[str, str]) -> Node:
    return dataclasses.replace(node, spec=dataclasses.replace(node.spec, labels={**node.spec.labels, **labels}))


def link_mtu(used: Sequence[str], links: Sequence[Coupling]) -> int:
    """The smallest MTU any node's path to another provider's nodes has: each coupling's, and over the internet each
    provider's interface MTU there (Provider.internet_mtu: GCP's VPC carries 1460)."""
    mtus = [link.mtu for link in links]
    if any(link.over_internet for link in links):
        mtus += [getattr(providers.get(name), "internet_mtu", INTERNET.mtu) for name in used]
    return min(mtus)


def parts_mtu(parts: Sequence[Infrastructure], link_mtu: int) -> int:
    """Cilium's MTU for the whole cluster: the smallest of the links' and of every part's own network's (its Cilium
    `MTU`: Hetzner's private network carries 1450), whichever provider is the stack's. Not the stack provider's alone:
    making another provider the stack's (a control-plane move's last step) would then change it on every node (an
    AWS stack's is the internet's 1500, a Hetzner stack's 1450), and Hetzner's nodes still reach each other on its
    network. The smallest is safe on every path; no single-provider stack comes here."""
    own = [infra.cluster.cilium_values["MTU"] for infra in parts if "MTU" in infra.cluster.cilium_values]
    return min([link_mtu, *own])


def cilium_values(stack_values: dict, link_mtu: int) -> dict:
    """The stack provider's Cilium values for a cluster spanning providers.

    Tunnel routing: the stack provider's native routes (Hetzner's CCM programs pod CIDRs into the cloud network)
    do not reach the other provider's nodes. WireGuard encrypts pod traffic (on everywhere, components/k3s/cilium.py)
    and here node traffic too (`encryption.nodeEncryption`; Cilium leaves control-plane nodes out by default).
    The MTU is the smallest of the stack network's and the coupling link's: Cilium derives the pod MTU from it,
    less the VXLAN and WireGuard overheads.
    """
    kept = {k: v for k, v in stack_values.items() if k not in ("routingMode", "ipv4NativeRoutingCIDR", "MTU")}
    mtu = min(link_mtu, stack_values.get("MTU", link_mtu))
    return {**kept, "routingMode": "tunnel", "tunnelProtocol": "vxlan", "MTU": mtu,
            "encryption": {"enabled": True, "type": "wireguard", "nodeEncryption": True}}


__all__ = ["COUPLINGS", "INTERNET", "SECONDARY_NODE_LABELS", "Coupling", "cilium_values", "combine", "coupling", "create",
           "load_balancer_target", "over_internet", "combined_storage", "control_plane_move_problems", "flip_problems", "renumbered_problems", "pool_roles", "storage_provider_problems",
           "store_storage_problems",
           "credential_problems", "admit_everyone", "internet_problems", "join_endpoint", "part", "peer_quota_problems",
           "peer_rules", "providers_used", "server_join_endpoints", "validate", "defaults_problems", "own_defaults"]
