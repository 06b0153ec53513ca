"""Cross-field rules: checks that need more than one value of the validated config."""

from __future__ import annotations

import ipaddress
from collections import Counter

from config.catalog import DATABASE_ROLES, ROLES
from config.errors import Problem, problem
from config.model import StackConfig
from config.profiles import Profile

_WORLD = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


def check(cfg: StackConfig, profile: Profile) -> list[Problem]:
    return [*_pool_names(cfg), *_networks(cfg), *_admin_cidrs(cfg, profile), *_replication(cfg, profile)]


def _pool_names(cfg: StackConfig) -> list[Problem]:
    counts = Counter(p.name for p in cfg.cluster.pools)
    return [problem("cluster.pools", f"must have unique names; {name!r} appears {n} times", name)
            for name, n in counts.items() if n > 1]


def _networks(cfg: StackConfig) -> list[Problem]:
    c = cfg.cluster
    nets = {key: ipaddress.ip_network(getattr(c, attr)) for key, attr in (
        ("cluster.subnetCidr", "subnet_cidr"), ("cluster.podCidr", "pod_cidr"), ("cluster.serviceCidr", "service_cidr"))}
    found = []
    keys = list(nets)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            if nets[a].overlaps(nets[b]):
                found.append(problem(b, f"must not overlap {a} ({nets[a]})", str(nets[b])))
    subnet, network = nets["cluster.subnetCidr"], ipaddress.ip_network(c.network_cidr)
    if subnet.version != network.version or not subnet.subnet_of(network):
        found.append(problem("cluster.subnetCidr", f"must lie inside cluster.networkCidr ({c.network_cidr})", c.subnet_cidr))
    return found


def _admin_cidrs(cfg: StackConfig, profile: Profile) -> list[Problem]:
    if not profile.strict:
        return []
    return [problem("adminCidrs", f"must not open SSH and the Kubernetes API to the whole internet in the "
                    f"{profile.name} profile; list your office, VPN or CI runner networks", cidr)
            for cidr in cfg.admin_cidrs if ipaddress.ip_network(cidr) in _WORLD]


def _replication(cfg: StackConfig, profile: Profile) -> list[Problem]:
    """In strict profiles every database role needs as many nodes as its replicas."""
    if not profile.strict:
        return []
    found = []
    pools = cfg.cluster.active_pools
    converged = sum(p.count for p in pools if p.role == "converged")
    if cfg.cluster.control_plane.role == "converged":
        converged += cfg.cluster.control_plane.count
    for pool in pools:
        role = ROLES[pool.role]
        if pool.role != "converged" and converged == 0 and pool.count < role.min_nodes:
            found.append(problem(f"cluster.pools[{pool.name}].count",
                                 f"must be at least {role.min_nodes} in the {profile.name} profile ({role.why})",
                                 pool.count))
    if cfg.layers.data_plane:
        for role_name in DATABASE_ROLES:
            nodes = converged + sum(p.count for p in pools if p.role == role_name)
            if nodes == 0:
                found.append(problem("cluster.pools", f"must give the {role_name} role at least "
                                     f"{ROLES[role_name].min_nodes} nodes in the {profile.name} profile "
                                     f"(a pool with role {role_name!r} or 'converged'), or set layers.dataPlane: false",
                                     [p.name for p in pools]))
        if 0 < converged < ROLES["converged"].min_nodes:
            found.append(problem("cluster.pools", f"must give converged nodes at least "
                                 f"{ROLES['converged'].min_nodes} members ({ROLES['converged'].why})", converged))
    return found
