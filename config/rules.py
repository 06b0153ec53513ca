"""Cross-field rules: checks that need more than one value of the validated config."""

from __future__ import annotations

import ipaddress
from collections import Counter

from config.catalog import DATABASE_ROLES, PLATFORM_HOSTNAMES, PROVIDERS, ROLES, STORE_ROLES
from config.data import DRILLED_STORES
from config.errors import Problem, problem
from config.ads import problems as ad_services_problems
from config.model import ControlPlane, Layers, Pool, StackConfig, pool_provider
from config.platform import NEEDS, SSO_TOOLS
from config.profiles import Profile
from config.services import BACKUP_PURPOSES, etcd_s3_retention
from policy.rules import world_covered


MAX_ETCD_SNAPSHOTS_IN_S3 = 1000  # one ListObjectsV2 page


def check(cfg: StackConfig, profile: Profile, secrets: set[str] = frozenset()) -> list[Problem]:
    """`secrets`: the optional secret keys (config/load.py OPTIONAL_SECRETS) the stack sets."""
    found = [*_pool_names(cfg), *_networks(cfg), *_admin_cidrs(cfg, profile), *_replication(cfg, profile),
             *_host_names(cfg), *_layers(cfg), *_quorum(cfg, profile), *_locations(cfg, profile),
             *_autoscaling(cfg), *_unreachable(cfg), *cfg.data_plane.backup_age_problems()]
    if cfg.bare_metal is not None and "baremetal" not in {cfg.provider, *(p.provider for p in cfg.cluster.pools)}:
        found.append(problem("bareMetal", f"is only read with provider: baremetal (the stack's provider is "
                             f"{cfg.provider!r}) or on pools with provider: baremetal (none here); remove it", "set"))
    if cfg.bare_metal is not None and cfg.provider == "baremetal" and not cfg.bare_metal.load_balancer_addresses:
        # Only where bare metal is the stack's provider: in a hybrid cluster the stack provider's balancers serve.
        found.append(problem("bareMetal.loadBalancerAddresses", "must list at least one IPv4 block for LoadBalancer "
                             "Services (the gateway needs one)", []))
    if cfg.layers.cluster_services:
        found += _cluster_services(cfg, profile, secrets)
    if cfg.layers.cluster_services and cfg.layers.data_plane:  # a layer is skipped with the one below it
        found += _data_plane(cfg, profile, secrets)
        found += _drills(cfg, secrets)
        if cfg.layers.platform:
            found += _platform(cfg, profile, secrets)
        if cfg.layers.ad_services:
            found += ad_services_problems(cfg, secrets)
    return found


def _layers(cfg: StackConfig) -> list[Problem]:
    """A layer that is on while a layer it runs on is off: refused, naming what to switch."""
    found = []
    for layer in Layers.NEEDS:
        missing = cfg.layers.missing(layer) if getattr(cfg.layers, layer) else []
        if missing:
            key, off = f"layers.{_camel(layer)}", ", ".join(f"layers.{_camel(m)}" for m in missing)
            found.append(problem(key, f"must be false while the layers it runs on are off ({off}); switch {key} "
                                 "off too, or those layers on", True))
    return found


def role_pools(cfg: StackConfig, role: str) -> list[Pool | ControlPlane]:
    """The pools a store of `role` runs on: the role's own, or every converged one (control plane included)."""
    own = [p for p in cfg.cluster.active_pools if p.role == role]
    if own:
        return own
    cp = cfg.cluster.control_plane
    return [*([cp] if cp.role == "converged" else []), *(p for p in cfg.cluster.active_pools if p.role == "converged")]


def role_nodes(cfg: StackConfig, role: str) -> int:
    """Nodes a store of `role` can run on (see _role_pools)."""
    return sum(p.count for p in role_pools(cfg, role))


def _restores(cfg: StackConfig) -> list[Problem]:
    """A store's `restore` reads its backups: from the stores' backup target (clusterServices.backups.s3, else
    the in-cluster object store; components/data DataPlane._backup_targets), Dragonfly's from Velero."""
    data, backups = cfg.data_plane, cfg.cluster_services.backups
    target = (backups.enabled and backups.s3 is not None) or data.object_storage.enabled
    found = []
    for store in RESTORABLE_STORES:
        settings = getattr(data, store)
        if settings.restore is None:
            continue
        key = f"dataPlane.{_camel(store)}.restore"
        if not settings.enabled:
            found.append(problem(key, f"needs dataPlane.{_camel(store)}.enabled: true (nothing to restore into)",
                                 settings.restore.model_dump(by_alias=True)))
        elif store == "dragonfly" and not backups.enabled:
            found.append(problem(key, "restores from a Velero backup: needs clusterServices.backups.enabled",
                                 settings.restore.model_dump(by_alias=True)))
        elif store != "dragonfly" and not target:
            found.append(problem(key, "has no backups to read: needs clusterServices.backups (enabled, s3) or "
                                 "dataPlane.objectStorage", settings.restore.model_dump(by_alias=True)))
    return found


def _data_plane(cfg: StackConfig, profile: Profile, secrets: set[str]) -> list[Problem]:
    data = cfg.data_plane
    found = _restores(cfg)
    for role in DATABASE_ROLES:
        stores = [_camel(s) for s, r in STORE_ROLES.items() if r == role and getattr(data, s).enabled]
        if stores and role_nodes(cfg, role) == 0:
            least = ROLES[role].min_nodes if profile.strict else 1
            found.append(problem("cluster.pools", f"must give the {role} role at least {least} nodes in the "
                                 f"{profile.name} profile (a pool with role {role!r} or 'converged') for "
                                 f"{', '.join(f'dataPlane.{s}' for s in stores)}; or disable those stores "
                                 "(enabled: false) or the layer (layers.dataPlane, platform and adServices: false)",
                                 [p.name for p in cfg.cluster.active_pools]))
    for store, role in STORE_ROLES.items():
        settings = getattr(data, store)
        unsized = [p.name for p in role_pools(cfg, role) if p.size is None]
        if settings.enabled and unsized and (settings.cpu is None or settings.memory is None):
            found.append(problem(f"dataPlane.{_camel(store)}", f"must set cpu and memory: its pools {unsized} set a "
                                 "serverType without a size class, so its resources cannot be derived"))
    storage = data.object_storage
    if storage.enabled and storage.backend == "external":
        if storage.external is None:
            found.append(problem("dataPlane.objectStorage.external", "must be set when backend is 'external': "
                                 "endpoint, region and bucketPrefix of the provider's S3"))
        for key in ("objectStorageAccessKeyId", "objectStorageSecretAccessKey"):
            if key not in secrets:
                found.append(problem(key, "must be set with --secret when dataPlane.objectStorage.backend is "
                                     f"'external' (pulumi config set --secret adplatform:{key} ...)"))
        if storage.storage_provider is not None:  # nothing of ours holds its data in the cluster: nothing moves
            found.append(problem("dataPlane.objectStorage.storageProvider", "is only read with backend: seaweedfs (it "
                                 "moves the in-cluster store's volumes; backend 'external' runs nothing in the "
                                 "cluster): remove it", storage.storage_provider))
    elif storage.external is not None:
        found.append(problem("dataPlane.objectStorage.external", "is only read with backend: external; "
                             f"remove it or set the backend (now {storage.backend!r})"))
    return found


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
    return found + _network_room(cfg, nets["cluster.podCidr"], subnet)


# K3s' controller manager gives each node a block of this prefix from the pod CIDR (kube-controller-manager's
# node-cidr-mask-size-ipv4/-ipv6 defaults; components/k3s/config.py sets neither). A node without one gets no pods.
NODE_CIDR_MASK = {4: 24, 6: 64}
SUBNET_RESERVED = 5  # addresses a provider keeps in each subnet: AWS and Azure five (network, gateway, DNS, ...)
LOAD_BALANCER_ADDRESSES = 8  # room in cluster.subnetCidr for the load balancers' private addresses


def most_nodes(cfg: StackConfig) -> int:
    """Every node the cluster may have at once: the Pulumi-managed ones (both sides of a move) and what the
    autoscaler may add."""
    c = cfg.cluster
    return len(c.node_names(cfg.provider)) + sum(p.autoscaling.extra for p in c.autoscaled_pools)


def _network_room(cfg: StackConfig, pods: ipaddress.IPv4Network | ipaddress.IPv6Network,
                  subnet: ipaddress.IPv4Network | ipaddress.IPv6Network) -> list[Problem]:
    nodes, c, found = most_nodes(cfg), cfg.cluster, []
    widest = NODE_CIDR_MASK[pods.version] - (nodes - 1).bit_length()  # a /24 per node: 2^bits of them fit
    if pods.prefixlen > widest:
        found.append(problem("cluster.podCidr", f"must hold a /{NODE_CIDR_MASK[pods.version]} for each of the "
                             f"{nodes} nodes the cluster may have (autoscaled pools at their max): a /{widest} or "
                             f"wider, e.g. {pods.supernet(new_prefix=widest)}", c.pod_cidr))
    need = nodes + LOAD_BALANCER_ADDRESSES
    if subnet.num_addresses - SUBNET_RESERVED < need:
        found.append(problem("cluster.subnetCidr", f"must hold an address for each of the {nodes} nodes the cluster "
                             f"may have (autoscaled pools at their max) and {LOAD_BALANCER_ADDRESSES} for load "
                             f"balancers, {need}, besides the {SUBNET_RESERVED} a provider may keep: a /{subnet.prefixlen}"
                             f" has {subnet.num_addresses}", c.subnet_cidr))
    return found


MAX_DNS_NAME = 253


def _host_names(cfg: StackConfig) -> list[Problem]:
    """Every name served under the domain (<label>.<domain>) must be a DNS name: at most 253 characters."""
    labels = {*PLATFORM_HOSTNAMES, *cfg.cluster_services.gateway.hostnames,
              *(s.host for s in cfg.ad_services.services.values() if s.host)}
    longest = max(sorted(labels), key=len)  # the first in order of the longest: the same message every run
    if len(longest) + 1 + len(cfg.domain) <= MAX_DNS_NAME:
        return []
    return [problem("domain", f"must leave room for the hosts served under it: {longest}.<domain> must be at most "
                    f"{MAX_DNS_NAME} characters, so the domain at most {MAX_DNS_NAME - 1 - len(longest)}", cfg.domain)]


def _admin_cidrs(cfg: StackConfig, profile: Profile) -> list[Problem]:
    if not profile.strict:
        return []
    covered = world_covered(cfg.admin_cidrs)
    if not covered:
        return []
    return [problem("adminCidrs", f"must not open SSH and the Kubernetes API to the whole internet in the "
                    f"{profile.name} profile (together these cover every public {' and '.join(covered)} address); "
                    "list your office, VPN or CI runner networks", list(cfg.admin_cidrs))]


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
        if 0 < converged < ROLES["converged"].min_nodes:
            found.append(problem("cluster.pools", f"must give converged nodes at least "
                                 f"{ROLES['converged'].min_nodes} members ({ROLES['converged'].why})", converged))
    return found


HA_CONTROL_PLANE = 3


def _quorum(cfg: StackConfig, profile: Profile) -> list[Problem]:
    """Production-grade stacks keep etcd's quorum through the loss (or the replacement) of one server.

    Pulumi gives the program no previous state, so a shrink cannot be refused by its size; instead the
    drain commands remove etcd members one at a time (components/k3s/lifecycle.py), and a count below
    HA_CONTROL_PLANE is refused where one server's drain would stop the API.
    """
    count = cfg.cluster.control_plane.count
    if not profile.strict or count >= HA_CONTROL_PLANE:
        return []
    return [problem("cluster.controlPlane.count", f"must be at least {HA_CONTROL_PLANE} in the {profile.name} "
                    f"profile: with {count} server(s) etcd loses its quorum, and the API stops, whenever one "
                    "server is lost, replaced or drained", count)]


def _locations(cfg: StackConfig, profile: Profile) -> list[Problem]:
    """`location` and `locations` exclude each other; a strict control plane keeps its quorum when one of
    its locations is lost (no location holds a majority of the servers)."""
    pools = [("cluster.controlPlane", cfg.cluster.control_plane), *((f"cluster.pools[{p.name}]", p)
                                                                   for p in cfg.cluster.pools)]
    found = [problem(f"{key}.locations", f"must not be set together with {key}.location (one location, or "
                     "several round-robin)", pool.locations) for key, pool in pools if pool.location and pool.locations]
    cp = cfg.cluster.control_plane
    if profile.strict and cp.locations and len(cp.locations) > 1:
        busiest = max(len(range(i, cp.count, len(cp.locations))) for i in range(len(cp.locations)))
        if busiest > (cp.count - 1) // 2:
            found.append(problem("cluster.controlPlane.locations", f"must spread the {cp.count} servers so that "
                                 f"losing one location keeps etcd's quorum (the busiest would hold {busiest}); use "
                                 "at least as many locations as servers, or one location", cp.locations))
    for pool in cfg.cluster.pools:
        spans = len(pool.locations or [])
        if pool.role != "scylladb" or spans < 2 or pool.count == 0:
            continue
        # ScyllaDB runs one rack per location, each as large as the smallest location (scylladb/cluster.py):
        # uneven locations leave nodes idle, and fewer than 3 racks lower the replication factor below 3.
        if pool.count % spans:
            found.append(problem(f"cluster.pools[{pool.name}].count", f"must be a multiple of its {spans} locations "
                                 "(ScyllaDB runs one equal rack per location; the rest would stay idle)", pool.count))
        if profile.strict and spans < 3:
            found.append(problem(f"cluster.pools[{pool.name}].locations", "must list at least 3 locations (or one): "
                                 "ScyllaDB's replication factor is its number of racks, one per location",
                                 pool.locations))
    return found


def _autoscaling(cfg: StackConfig) -> list[Problem]:
    """Only pools whose nodes hold no data autoscale (the autoscaler deletes idle nodes, and a database's
    replicas and volumes are tied to theirs), and only where an API can create a machine (not bare metal)."""
    found = []
    for pool in cfg.cluster.pools:
        if pool.autoscaling is None:
            continue
        key, given = f"cluster.pools[{pool.name}].autoscaling", pool.autoscaling.model_dump()
        if ROLES[pool.role].database:
            stateless = ", ".join(r for r, role in ROLES.items() if not role.database)
            found.append(problem(key, f"must not be set on a pool of the database role {pool.role!r}: its data is "
                                 "tied to its nodes, which the autoscaler would remove; give the pool a fixed count "
                                 f"(autoscaling is accepted for roles {stateless})", given))
        elif pool_provider(pool, cfg) == "baremetal":
            clouds = ", ".join(p for p in PROVIDERS if p != "baremetal")
            found.append(problem(key, "must not be set with provider: baremetal (no API creates a host); give the "
                                 f"pool a fixed count (autoscaling is accepted on {clouds})", given))
        elif pool.provider not in (None, cfg.provider):
            # The autoscaler's node groups are the stack provider's (components/services/autoscaler.py).
            found.append(problem(key, f"must not be set on a pool of provider {pool.provider!r}: only pools on the "
                                 f"stack's provider ({cfg.provider}) autoscale", given))
    return found


def _unreachable(cfg: StackConfig) -> list[Problem]:
    """`cluster.unreachableNodes` names Pulumi-managed nodes, each once, and leaves a K3s server to drain them from
    (components/k3s/lifecycle.py)."""
    listed = cfg.cluster.unreachable_nodes
    names = cfg.cluster.node_names(cfg.provider)
    found = []
    for i, name in enumerate(listed):
        if name not in names:
            found.append(problem(f"cluster.unreachableNodes[{i}]", "must name a Pulumi-managed node of this stack "
                                 f"({', '.join(names)}); a node the autoscaler added is removed by the autoscaler, and a node a "
                                 "lower count removes leaves the list in the same change", name))
        elif name in listed[:i]:
            found.append(problem(f"cluster.unreachableNodes[{i}]", f"must not repeat [{listed.index(name)}]", name))
    servers = cfg.cluster.server_names(cfg.provider)
    if servers and set(servers) <= set(listed):
        found.append(problem("cluster.unreachableNodes", "must leave at least one K3s server out: the drains of the "
                             f"listed nodes run on the first server not listed (servers: {', '.join(servers)}); with "
                             "every server lost, restore the cluster instead (docs/disaster-recovery.md)", listed))
    return found


def _cluster_services(cfg: StackConfig, profile: Profile, secrets: set[str]) -> list[Problem]:
    svc = cfg.cluster_services
    found = []
    if svc.tls.acme_email is None:
        found.append(problem("clusterServices.tls.acmeEmail", "must be set: Let's Encrypt registers the ACME "
                             "account with it and sends certificate expiry notices there"))
    found += _dns01(svc.tls.dns01, secrets)
    if svc.dns is not None and svc.dns.enabled:
        found += _dns01(svc.dns, secrets, key="clusterServices.dns", what="external-dns provider")
    zone = svc.tls.dns01.zone if svc.tls.dns01 else None
    if zone is not None and cfg.domain != zone and not cfg.domain.endswith(f".{zone}"):
        found.append(problem("clusterServices.tls.dns01.zone", f"must be the DNS zone of domain {cfg.domain!r} "
                             "(the domain itself or a parent of it), or the wildcard certificate is never issued", zone))
    if len(svc.gateway.hostnames) > MAX_LISTENER_HOSTNAMES:
        found.append(problem("clusterServices.gateway.hostnames", f"must list at most {MAX_LISTENER_HOSTNAMES} "
                             "hostnames (a Gateway holds 64 listeners, one is HTTP); configure tls.dns01 for a "
                             "wildcard listener instead", len(svc.gateway.hostnames)))
    backups = svc.backups
    if profile.strict and not backups.enabled:
        found.append(problem("clusterServices.backups.enabled", f"must be true in the {profile.name} profile "
                             "(etcd snapshots and Velero backups are the disaster-recovery path)", False))
    if backups.enabled:
        if backups.s3 is None:
            found.append(problem("clusterServices.backups.s3", "must be set when backups are enabled: endpoint, "
                                 "region and bucket of S3-compatible storage outside the cluster"))
        found += _backup_credentials(cfg, profile, secrets)
        # S3 keeps etcdRetention per server (components/k3s/config.py etcd_snapshot_config), and the etcd drill finds
        # the newest snapshot in one listing of at most 1000 objects (components/data/drills.py etcd-download.sh).
        servers = cfg.cluster.control_plane.count
        if etcd_s3_retention(backups.etcd_retention, servers) > MAX_ETCD_SNAPSHOTS_IN_S3:
            found.append(problem("clusterServices.backups.etcdRetention", f"must be at most "
                                 f"{MAX_ETCD_SNAPSHOTS_IN_S3 // servers} with {servers} servers: S3 keeps that many "
                                 f"snapshots per server, at most {MAX_ETCD_SNAPSHOTS_IN_S3} in all (one S3 listing)",
                                 backups.etcd_retention))
    found += _secrets_restore(cfg)
    if profile.strict and svc.secrets.replicas < 3:
        found.append(problem("clusterServices.secrets.replicas", f"must be at least 3 in the {profile.name} "
                             "profile (raft keeps a quorum when one node is lost)", svc.secrets.replicas))
    untainted = schedulable_nodes(cfg)
    if profile.strict and svc.secrets.replicas > untainted:
        found.append(problem("clusterServices.secrets.replicas", f"must not exceed the {untainted} nodes without "
                             "taints: raft voters run one per node", svc.secrets.replicas))
    if svc.mesh.linkerd and not svc.mesh.namespaces:
        found.append(problem("clusterServices.mesh.namespaces", "must list at least one namespace when "
                             "clusterServices.mesh.linkerd is true", []))
    team_names = [t.name for t in svc.teams]
    if svc.mesh.linkerd:
        found += [problem("clusterServices.mesh.namespaces", f"must name team namespaces (clusterServices.teams: "
                          f"{', '.join(team_names) or 'none'}): only those are labelled for injection", name)
                  for name in svc.mesh.namespaces if name not in team_names]
    teams = Counter(team_names)
    found += [problem("clusterServices.teams", f"must have unique names; {name!r} appears {n} times", name)
              for name, n in teams.items() if n > 1]
    return found


def _secrets_restore(cfg: StackConfig) -> list[Problem]:
    """clusterServices.secrets.restore installs a raft snapshot from the backups' S3 through OpenBao's own API, as a
    Job logged in through Kubernetes auth (components/services/secrets_restore.py). One source of truth per restore:
    Velero's restore of the same namespace would start the store on its (older, file-copied) raft volumes, which
    the snapshot then overwrites, so both at once are refused."""
    svc = cfg.cluster_services
    restore = svc.secrets.restore
    if restore is None:
        return []
    key, given = "clusterServices.secrets.restore", restore.model_dump(by_alias=True)
    if svc.secrets.backend != "openbao":
        return [problem(key, f"needs clusterServices.secrets.backend openbao, got {svc.secrets.backend!r}: Vault "
                        "starts sealed and without the Kubernetes login the restore Job uses; restore Vault by hand "
                        "(docs/disaster-recovery.md, secret store)", given)]
    if not (svc.backups.enabled and svc.backups.s3 is not None):
        return [problem(key, "has no snapshots to read: needs clusterServices.backups.enabled and "
                        "clusterServices.backups.s3 (where the snapshot CronJob uploads them)", given)]
    velero = svc.backups.restore
    if velero is not None and velero.restores(svc.secrets.backend):
        return [problem(key, f"must not be set while clusterServices.backups.restore also restores the namespace "
                        f"{svc.secrets.backend!r} (one source per restore: add {svc.secrets.backend!r} to "
                        "clusterServices.backups.restore.excludeNamespaces to restore the store from its snapshot, "
                        "or unset clusterServices.secrets.restore to keep Velero's copy)", given)]
    return []


def backup_purposes(cfg: StackConfig) -> list[str]:
    """Who writes to clusterServices.backups.s3 in this stack: the etcd snapshots, Velero, each enabled store
    that backs up."""
    data = cfg.data_plane if cfg.layers.data_plane else None
    return [p for p in BACKUP_PURPOSES if p not in STORE_PURPOSES or (data is not None and getattr(data, p).enabled)]


def shared_backup_purposes(cfg: StackConfig, secrets: set[str]) -> list[str]:
    """The purposes that fall back to the shared pair backupAccessKeyId/backupSecretAccessKey."""
    return [p for p in backup_purposes(cfg) if f"backupCredentials.{p}" not in secrets]


def _backup_credentials(cfg: StackConfig, profile: Profile, secrets: set[str]) -> list[Problem]:
    """One key pair per purpose, each handed only to its writer. Outside production, purposes without their
    own pair share backupAccessKeyId/backupSecretAccessKey (the program warns); production refuses that."""
    shared = shared_backup_purposes(cfg, secrets)
    if not shared:
        return []
    if profile.strict:
        return [problem("backupCredentials", f"must hold a key pair for every backup purpose in the {profile.name} "
                        "profile, each scoped to its own bucket or prefix (docs/security.md); missing: "
                        f"{', '.join(shared)} (pulumi config set --secret --path "
                        "'adplatform:backupCredentials.<purpose>.accessKeyId' ..., and .secretAccessKey)")]
    return [problem(key, f"must be set with --secret when clusterServices.backups.enabled is true and "
                    f"backupCredentials has no pair for {', '.join(shared)} (pulumi config set --secret "
                    f"adplatform:{key} ...)")
            for key in ("backupAccessKeyId", "backupSecretAccessKey") if key not in secrets]


def drilled_stores(cfg: StackConfig) -> tuple[str, ...]:
    """The stores whose restore is drilled (components/data/drills.py): dataPlane.drills on (by default wherever
    backups go off the cluster: a backup in the cluster does not survive it), the store enabled, not skipped."""
    drills, backups = cfg.data_plane.drills, cfg.cluster_services.backups
    off_cluster = backups.enabled and backups.s3 is not None
    if drills.enabled is False or not off_cluster or not cfg.layers.data_plane:
        return ()
    # etcd is always there (K3s' embedded datastore) and snapshots to the same off-cluster S3 (components/k3s); so is
    # Velero (backups.enabled, above).
    return tuple(s for s in DRILLED_STORES if (s in ("etcd", "velero") or getattr(cfg.data_plane, s).enabled)
                 and s not in drills.skip)


def _drills(cfg: StackConfig, secrets: set[str]) -> list[Problem]:
    backups = cfg.cluster_services.backups
    if cfg.data_plane.drills.enabled and not (backups.enabled and backups.s3 is not None):
        return [problem("dataPlane.drills.enabled", "needs backups outside the cluster (clusterServices.backups.enabled "
                        "and clusterServices.backups.s3): the drills restore those; set it false or leave it unset",
                        True)]
    if drilled_stores(cfg) and "backupCredentials.drills" not in secrets:
        return [problem("backupCredentials.drills", "must be set while restore drills run (dataPlane.drills, on by "
                        "default with clusterServices.backups.s3): a key pair that may only list and read the stores' "
                        "backups (docs/restore-drills.md), set with --secret --path "
                        "'adplatform:backupCredentials.drills.accessKeyId' (and .secretAccessKey); or set "
                        "dataPlane.drills.enabled: false")]
    return []


MAX_LISTENER_HOSTNAMES = 63
STORE_PURPOSES = ("postgres", "clickhouse", "scylladb", "redpanda")  # BACKUP_PURPOSES that are dataPlane stores
RESTORABLE_STORES = ("scylladb", "redpanda", "clickhouse", "dragonfly", "postgres")  # each has `restore`
RUNNER_TOKEN = "gitlabRunnerToken"
ALERTING_SECRETS = "alertingSecrets"


def _platform(cfg: StackConfig, profile: Profile, secrets: set[str]) -> list[Problem]:
    """What each enabled platform component needs (config/platform.py NEEDS) must be on; its secrets set."""
    platform, data = cfg.platform, cfg.data_plane
    routed = set(cfg.cluster_services.gateway.hostnames)
    wildcard = cfg.cluster_services.tls.dns01 is not None
    found = []
    for name, needs in NEEDS.items():
        if not getattr(platform, name).enabled:
            continue
        key = f"platform.{name}.enabled"
        for store in needs.stores:
            if not getattr(data, store).enabled:
                found.append(problem(key, f"needs dataPlane.{_camel(store)}.enabled (platform.{name} keeps its data "
                                     f"there); enable the store or set platform.{name}.enabled: false", True))
        if needs.database and data.postgres.enabled and needs.database not in data.postgres.databases:
            found.append(problem("dataPlane.postgres.databases", f"must include {needs.database!r}: platform.{name} "
                                 "keeps its metadata in that PostgreSQL database", data.postgres.databases))
        missing = [h for h in needs.hostnames if h not in routed]
        if missing and not wildcard:
            found.append(problem("clusterServices.gateway.hostnames", f"must include {missing} for platform.{name} "
                                 "(each host gets its own HTTPS listener and certificate without tls.dns01)",
                                 sorted(routed)))
    if platform.sso.enabled and not platform.gitlab.enabled:
        found.append(problem("platform.sso.enabled", "needs platform.gitlab.enabled: this stack's GitLab is the identity "
                             "provider every tool and kubectl log in with (set platform.sso.enabled: false to keep "
                             "each tool's own login)", True))
    if platform.sso.enabled:
        found += _sso_groups(cfg)
    teams = [t.name for t in cfg.cluster_services.teams]
    for i, binding in enumerate(platform.sso.kubectl.bindings):
        if binding.namespace is not None and binding.namespace not in teams:
            found.append(problem(f"platform.sso.kubectl.bindings[{i}].namespace", "must be a team namespace "
                                 f"(clusterServices.teams: {', '.join(teams) or 'none configured'}): GitLab groups get "
                                 "rights in the namespaces their teams deploy to", binding.namespace))
    runner = platform.gitlab.runner
    if runner.enabled:
        found += _runner(runner, platform.gitlab.enabled, profile.environment, secrets)
    if platform.monitoring.enabled:
        found += _alerting(platform.monitoring.alerting, secrets)
    return found


def _sso_groups(cfg: StackConfig) -> list[Problem]:
    """Every tool that logs in with GitLab names at least one group: with none, oauth2-proxy (MLflow, Kubeflow
    Pipelines) and Grafana let every GitLab account in (oauth2-proxy v7.15.3 Authorize and Grafana's
    isGroupMember allow all when no group is set); no tool is meant to be open. OpenBao's login (the openbao
    secrets backend) binds the admins' groups only."""
    sso, found = cfg.platform.sso, []
    for tool, component in SSO_TOOLS.items():
        if getattr(cfg.platform, component).enabled and not sso.allowed(tool):
            found.append(problem("platform.sso.admins", f"and platform.sso.users.{tool} name no GitLab group, so "
                                 f"{tool} (platform.{component}) would let every GitLab account in: list at least "
                                 f"one group path (such as platform-admins) in either, or set "
                                 f"platform.{component}.enabled: false", sso.admins))
    if not sso.admins and cfg.cluster_services.secrets.backend == "openbao":
        found.append(problem("platform.sso.admins", "must list at least one GitLab group path (such as "
                             "platform-admins): OpenBao's GitLab login (clusterServices.secrets.backend: openbao) "
                             "lets in only these groups' members", sso.admins))
    return found


def _runner(runner, own_gitlab: bool, environment: str, secrets: set[str]) -> list[Problem]:
    """Where the runner's token comes from: the program creates it in this stack's own GitLab
    (components/platform/runner_bootstrap.py), the stack named in `registration` exports it, or the secret."""
    own = own_gitlab and runner.url is None
    registration = runner.registration.stack if runner.registration else None
    found = []
    if RUNNER_TOKEN not in secrets and not own and registration is None:
        found.append(problem(RUNNER_TOKEN, "must be set with --secret when platform.gitlab.runner registers with "
                             "another stack's GitLab (platform.gitlab.runner.url, or platform.gitlab.enabled: "
                             "false) and names no platform.gitlab.runner.registration.stack: create an instance "
                             "runner there (Admin > CI/CD > Runners, its token starts glrt-), then pulumi config set "
                             f"--secret adplatform:{RUNNER_TOKEN} <token>"))
    if not own_gitlab and runner.url is None:
        found.append(problem("platform.gitlab.runner.url", "must name the GitLab to register with (https://...) "
                             "when this stack runs no GitLab (platform.gitlab.enabled: false)"))
    if registration is not None and own:
        found.append(problem("platform.gitlab.runner.registration.stack", "is for a stack whose runner registers "
                             "with another stack's GitLab; this stack creates its runner in its own GitLab: remove "
                             "it", registration))
    if registration is not None and RUNNER_TOKEN in secrets:
        found.append(problem("platform.gitlab.runner.registration.stack", f"and the secret {RUNNER_TOKEN} both "
                             "give the runner's token: remove one", registration))
    if runner.downstream and not own:
        found.append(problem("platform.gitlab.runner.downstream", "creates runners in this stack's own GitLab: "
                             "it needs platform.gitlab.enabled and no platform.gitlab.runner.url",
                             list(runner.downstream)))
    if runner.downstream and RUNNER_TOKEN in secrets:
        found.append(problem("platform.gitlab.runner.downstream", f"needs the runner bootstrap, which the secret "
                             f"{RUNNER_TOKEN} turns off: remove the secret or the list", list(runner.downstream)))
    for env in runner.downstream_runners:
        if env not in runner.downstream:
            found.append(problem(f"platform.gitlab.runner.downstreamRunners.{env}", "sets the flags of a runner "
                                 "this stack does not create: list the environment in platform.gitlab.runner."
                                 "downstream too, or remove the entry", list(runner.downstream)))
    if environment in runner.downstream:
        found.append(problem("platform.gitlab.runner.downstream", f"must not list this stack's own environment "
                             f"{environment!r} (its runner is created anyway)", list(runner.downstream)))
    return found


def _alerting(alerting, secrets: set[str]) -> list[Problem]:
    names = [r.name for r in alerting.receivers]
    found = [problem("platform.monitoring.alerting.receivers", f"must have unique names; {n!r} appears twice", n)
             for n, count in Counter(names).items() if count > 1]
    null = "null"  # components/platform/monitoring.py NULL_RECEIVER: the receiver that drops what it gets
    found += [problem(f"platform.monitoring.alerting.receivers[{i}].name", "must not be 'null': Alertmanager's "
                      "built-in receiver that discards alerts has that name", r.name)
              for i, r in enumerate(alerting.receivers) if r.name == null]
    found += [problem(f"platform.monitoring.alerting.receivers[{i}].channel", f"is only read for slack receivers "
                      f"(receiver {r.name!r} is a {r.type} receiver); remove it", r.channel)
              for i, r in enumerate(alerting.receivers) if r.channel is not None and r.type != "slack"]
    for i, route in enumerate(alerting.routes):
        if route.receiver not in names:
            found.append(problem(f"platform.monitoring.alerting.routes[{i}].receiver", "must name one of the "
                                 f"receivers ({', '.join(names) or 'none configured'})", route.receiver))
    if alerting.default_receiver is not None and alerting.default_receiver not in names:
        found.append(problem("platform.monitoring.alerting.defaultReceiver", "must name one of the receivers "
                             f"({', '.join(names) or 'none configured'})", alerting.default_receiver))
    for receiver in alerting.receivers:
        if f"{ALERTING_SECRETS}.{receiver.name}" not in secrets:
            found.append(problem(f"{ALERTING_SECRETS}.{receiver.name}", f"must be set with --secret: the "
                                 f"{receiver.type} URL or key of receiver {receiver.name!r} (pulumi config set "
                                 f"--secret --path 'adplatform:{ALERTING_SECRETS}.{receiver.name}' ...)"))
    return found


def _camel(name: str) -> str:
    return "".join(w.capitalize() if i else w for i, w in enumerate(name.split("_")))


def schedulable_nodes(cfg: StackConfig) -> int:
    """Nodes without taints: where the platform's own services (not the databases) run."""
    cp = cfg.cluster.control_plane
    return (0 if cp.taints else cp.count) + sum(p.count for p in cfg.cluster.active_pools if not p.node_taints)


_DNS01_FIELDS = {"route53": ("hosted_zone_id", "region", "access_key_id"),
                 "rfc2136": ("nameserver", "tsig_key_name"), "cloudflare": (), "hetzner": ()}


def _dns01(dns01, secrets: set[str], key: str = "clusterServices.tls.dns01",
           what: str = "DNS-01 solver") -> list[Problem]:
    if dns01 is None:
        return []
    found = []
    for attr in _DNS01_FIELDS[dns01.provider]:
        if getattr(dns01, attr) is None:
            found.append(problem(f"{key}.{_camel(attr)}", f"must be set for the {dns01.provider} {what}"))
    if "dnsApiToken" not in secrets:
        found.append(problem("dnsApiToken", f"must be set with --secret for the {dns01.provider} {what} "
                             "(pulumi config set --secret adplatform:dnsApiToken ...)"))
    return found
