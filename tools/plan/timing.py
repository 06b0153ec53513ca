"""Estimated duration of a first `pulumi up`: the critical path of the plan's dependency graph.

Each resource takes a typical create time from the duration model below; a resource starts when
everything it depends on (its dependencies and its provider) has finished; a component finishes
when its last child does. The longest weighted chain is the critical path: no amount of parallelism
deploys the stack faster. The serial time (the sum of all durations) divided by the critical path is
the parallelism the graph allows. Linear in the number of resources and edges.

The model is deliberately coarse: it is for comparing plans (what did this change do to the deploy
time?) and for naming the chain to shorten, not a promise to the minute. Values are seconds: typical
provisioning times of the cloud objects, the waits our scripts do (cloud-init, apt lock, K3s
/readyz) and Helm's wait for ready workloads. They have not been calibrated against a real
`pulumi up` of this program yet; when you run one, compare with `pulumi up`'s per-resource
timings and adjust the numbers here (the plan-diff then shows every stack's new estimate).
"""

from __future__ import annotations

from typing import Any, Callable

# Where each figure comes from, one comment per figure: "measured" (a published measurement, cited), "documented"
# (an upstream statement, cited) or "estimate" (our reasoning, to be replaced by a calibrated figure). None has been
# calibrated against a `pulumi up` of this program yet (module docstring).
# By resource type. Cloud API objects are quick; servers wait until they run; Helm waits for ready.
DURATIONS: dict[str, int] = {
    # Hetzner Cloud: an "action" (create, attach) is polled by the provider until done; a plain API object is one
    # synchronous call (docs.hetzner.cloud, "Actions").
    "hcloud:index/server:Server": 45,           # estimate: create action + boot to "running" (the provider waits);
    #   a stock image boots "in a few seconds" (cgamesplay.com/post/2024/hetzner-ephemeral-devserver), plus the
    #   create action's polling and the public IPv4/network attachment
    "hcloud:index/loadBalancer:LoadBalancer": 15,  # estimate: one create action, polled to completion
    "hcloud:index/loadBalancerNetwork:LoadBalancerNetwork": 10,  # estimate: attach_to_network action, polled
    "hcloud:index/loadBalancerService:LoadBalancerService": 5,  # estimate: add_service action
    "hcloud:index/loadBalancerTarget:LoadBalancerTarget": 5,  # estimate: add_target action
    "hcloud:index/network:Network": 2,          # estimate: one synchronous call, no action
    "hcloud:index/networkSubnet:NetworkSubnet": 3,  # estimate: add_subnet action on the network
    "hcloud:index/firewall:Firewall": 3,        # estimate: create + apply_to_resources actions
    "hcloud:index/placementGroup:PlacementGroup": 1,  # estimate: one synchronous call
    "hcloud:index/sshKey:SshKey": 1,            # estimate: one synchronous call
    "random:index/randomPassword:RandomPassword": 0,  # documented: computed by the provider locally, no API
    # estimate: install + Helm's wait for an operator (image pull, leader election, webhook ready). cert-manager,
    # the commonest, gives its own readiness check (startupapicheck) 1m by default (cert-manager chart values,
    # startupapicheck.timeout), and users raise it to 5m on slow clusters (github.com/NVIDIA/aicr/pull/51).
    "kubernetes:helm.sh/v3:Release": 90,
    "kubernetes:yaml/v2:ConfigFile": 20,        # estimate: a release manifest: CRDs established, workloads ready
}
COMMAND = "command:remote:Command"
# Remote commands by name prefix (the scripts wait for very different things).
COMMANDS: tuple[tuple[str, int], ...] = (
    # estimate: providers/base.py ssh_connection's first contact, SSH connect + cat of one file (as kubeconfig). The
    # wait for a fresh machine's sshd stays priced with the machine, as it was when tuning made the first contact.
    ("host-key-", 3),
    # estimate: components/host/scripts/tune.sh: cloud-init and apt-lock wait (wait_for_boot), sysctl + systemd
    # units, and on a fresh image `apt-get install unattended-upgrades` (the longest part)
    ("tune-", 40),
    # The K3s install is split in two (issue 22); together they are the 80 s the single install was modelled at.
    # estimate: components/k3s/scripts/stage.sh, on every node in parallel after tuning: the pinned installer, the
    # release's sha256 file and the binary (tens of MB: Alpine's k3s 1.35 package is a 58.8 MiB download,
    # pkgs.alpinelinux.org/package/edge/community/armv7/k3s) from GitHub at data-centre bandwidth, then the
    # installer's unit and symlinks; nothing starts
    ("stage-k3s-", 20),
    # estimate: components/k3s/scripts/install.sh on a staged node: config written, K3s started (it unpacks its
    # embedded tools on first start), then (servers) the /readyz wait, which for a joining server includes its etcd
    # learner's catch-up; a single server's node is Ready "maybe 30 seconds" after the install script
    # (github.com/u1i/k3s-quickstart)
    ("k3s-", 60),
    ("kubeconfig", 3),    # estimate: SSH connect + cat of one file
)
# Helm releases by chart, where a chart is far from the default.
CHARTS: dict[str, int] = {
    # measured: `time cilium status --wait` took 1m42s on a 3-node K3s cluster (github.com/cilium/cilium/issues/
    # 23978); agents on every node of ours pull the image too, and nodes turn Ready only after it
    "cilium": 150,
    "hcloud-cloud-controller-manager": 45,  # estimate: one small host-network Deployment: no CNI wait, one image
    "openbao": 150,       # estimate: OrderedReady: three servers one after another, each joining raft and unsealing
    "vault": 150,         # estimate: as openbao (its upstream): the same OrderedReady raft join
    # measured: GitLab's migrations Job alone took 3m41s to 11m59s, 6m13s typical (gitlab.com/gitlab-org/
    # gitlab-foss/-/issues/64998); GitLab's docs install with `--timeout 600s` (docs.gitlab.com/charts/installation/
    # deployment) and Helm's 5m default is "insufficient" for a first install (gitlab.com/gitlab-org/
    # gitlab-environment-toolkit/-/issues/445); then webservice/Sidekiq start
    "gitlab": 600,
    "kube-prometheus-stack": 180,  # estimate: operator, then Prometheus x2 and Alertmanager x3 with volumes
    "airflow": 300,       # estimate: the migration job, then scheduler/API server (GitLab's pattern, a smaller schema)
}
# An operator's resource with a `pulumi.com/waitFor` annotation (components/layer.py wait_for): pulumi-kubernetes
# waits until the operator reports it ready, so the operator's whole rollout is the resource's create time.
AWAITED: dict[str, int] = {
    "kubernetes:cert-manager.io/v1:Certificate": 10,  # estimate: a CA issuer signs at once; one controller reconcile
    "kubernetes:cert-manager.io/v1:Issuer": 5,        # estimate: a CA issuer is Ready once its key pair Secret exists
    "kubernetes:cert-manager.io/v1:ClusterIssuer": 5,  # estimate: as the Issuer
    # estimate: the operator renders its chart, the brokers start with their volumes and form the controller raft
    # group, then the operator's post-install configuration; a first Redpanda start on a fresh volume is seconds
    "kubernetes:cluster.redpanda.com/v1alpha2:Redpanda": 240,
    "kubernetes:dragonflydb.io/v1alpha1:Dragonfly": 60,  # estimate: pods start (one image), the operator picks a master
    # estimate: per member (AWAITED_PER_MEMBER): ScyllaDB adds nodes to a ring one at a time (docs.scylladb.com,
    # "Add a New Node": bootstrap one node at a time), each a pod start plus its join of a fresh, empty ring
    "kubernetes:scylla.scylladb.com/v1:ScyllaCluster": 120,
    "kubernetes:scylla.scylladb.com/v1alpha1:NodeConfig": 90,  # estimate: the operator's tuning pods, nodes in parallel
    # estimate: per instance (AWAITED_PER_MEMBER): CloudNativePG creates the next instance only once every one before
    # it is ready (reconcileMissingInstance, internal/controller/cluster_create.go at v1.30.0), each as a Job (initdb,
    # or pg_basebackup of a still-empty primary: seconds) then the instance pod. Per instance: two new cloud volumes
    # (data, WAL) created and attached (~20 s: two Hetzner actions each), the PostgreSQL image pulled on a node without
    # it (~20 s), the Job's pod and the instance's start to its readiness probe (~10 s each). CloudNativePG's e2e suite
    # allows a whole new cluster 600 s (tests/utils/timeouts/timeouts.go at v1.30.0): an upper bound, not a figure
    "kubernetes:postgresql.cnpg.io/v1:Cluster": 60,
    # estimate: applied with the Cluster, awaited until the primary applied it (components/data/postgres.py): 60 + 30 +
    # 5. The primary's bootstrap (the Cluster's first instance, above); up to one retry interval of the primary's
    # instance manager (databaseReconciliationInterval, 30 s, internal/management/controller/database_controller.go
    # at v1.30.0: its first pass may find the primary not yet recorded or the owner role not yet created); one
    # reconcile (CREATE DATABASE and its extensions), which sets status.applied. Not after the replicas: they join
    # while the consumers install, and the Cluster, still priced per instance, ends the deploy no earlier.
    "kubernetes:postgresql.cnpg.io/v1:Database": 95,
    # estimate: per replica of a shard (AWAITED_PER_MEMBER): on a new installation the Altinity operator reconciles
    # all shards at once ("full fan-out") but a shard's hosts one after another, each host's StatefulSet awaited
    # until Ready (reconcileShardWithHosts, pkg/controller/chi/worker-reconciler-chi.go and .../chk/, branch 0.26.0). Per
    # host: its cloud volume created and attached (~20 s), the image pulled on a node without it (~20 s), the pod's
    # start to its readiness probe (~20 s)
    "kubernetes:clickhouse.altinity.com/v1:ClickHouseInstallation": 60,
    "kubernetes:clickhouse-keeper.altinity.com/v1:ClickHouseKeeperInstallation": 60,  # estimate: as a server host
}


def _scylla_members(spec: dict[str, Any]) -> int:
    """A ScyllaCluster's nodes: the members of its datacenter's racks."""
    racks = (spec.get("datacenter") or {}).get("racks") or []
    return sum(int(rack.get("members") or 0) for rack in racks if isinstance(rack, dict))


def _clickhouse_replicas(spec: dict[str, Any]) -> int:
    """The most replicas of a shard among a ClickHouse (or Keeper) installation's clusters: the hosts reconciled one
    after another."""
    clusters = (spec.get("configuration") or {}).get("clusters") or []
    return max((int((c.get("layout") or {}).get("replicasCount") or 1) for c in clusters if isinstance(c, dict)),
               default=1)


# Operator resources whose members start one after another: the figure above is per member.
AWAITED_PER_MEMBER: dict[str, Callable[[dict[str, Any]], int]] = {
    "kubernetes:scylla.scylladb.com/v1:ScyllaCluster": _scylla_members,
    "kubernetes:postgresql.cnpg.io/v1:Cluster": lambda spec: int(spec.get("instances") or 0),  # CloudNativePG
    "kubernetes:clickhouse.altinity.com/v1:ClickHouseInstallation": _clickhouse_replicas,
    "kubernetes:clickhouse-keeper.altinity.com/v1:ClickHouseKeeperInstallation": _clickhouse_replicas,
}
# measured: GitLab's migrations Job, 6m13s typical (gitlab.com/gitlab-org/gitlab-foss/-/issues/64998, as in CHARTS)
GITLAB_MIGRATIONS = 373
# measured: GitLab's Rails "takes nearly 1 minute to start", "roughly 50 seconds" for one component
# (gitlab.com/gitlab-org/gitlab/-/issues/213992)
GITLAB_RAILS_BOOT = 60
# Jobs by name prefix: pulumi-kubernetes waits for a Job to complete, so a Job takes its pod's whole run.
JOBS: tuple[tuple[str, int], ...] = (
    # measured: GITLAB_RAILS_BOOT; these toolbox Jobs (components/platform/toolbox_job.py) exec `gitlab-rails runner`
    # in the toolbox pod, which boots Rails once, after their own pod started
    ("oauth-bootstrap", GITLAB_RAILS_BOOT),
    ("runner-bootstrap", GITLAB_RAILS_BOOT),  # measured: as oauth-bootstrap, the same toolbox `gitlab-rails runner`
)
JOB = "kubernetes:batch/v1:Job"
HELM_CHARTS = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")
DATABASE = "kubernetes:postgresql.cnpg.io/v1:Database"
DRAGONFLY = "kubernetes:dragonflydb.io/v1alpha1:Dragonfly"


def _database_key(resource: dict[str, Any]) -> Any:
    """A CloudNativePG Database by the database it makes (what a release's values name)."""
    return (resource["inputs"].get("spec") or {}).get("name")


def _dragonfly_key(resource: dict[str, Any]) -> Any:
    """A Dragonfly instance by its Service's host, <name>.<namespace> (the operator names the Service after it)."""
    metadata = resource["inputs"].get("metadata") or {}
    return f"{metadata.get('name')}.{metadata.get('namespace')}"


# Stores a release may install before: type -> (the key a store is found by, the key of a value naming one).
STORES: dict[str, tuple[Callable[[dict[str, Any]], Any], Callable[[Any], Any]]] = {
    DATABASE: (_database_key, lambda value: value),
    DRAGONFLY: (_dragonfly_key, lambda host: ".".join(str(host).split(".")[:2])),
}
# Charts that install before stores they use are ready and wait for them themselves (components/platform/gitlab.py
# INSTALLS_BEFORE): per store, (its type, where the release's values name it, the seconds of the chart's work that can
# only start once it serves). Such a release is ready no earlier than its start plus its figure above, and no earlier
# than each of those stores ready plus its part.
# The migrations Job, then webservice's Rails boot.
GITLAB_AFTER_STORE = GITLAB_MIGRATIONS + GITLAB_RAILS_BOOT
AFTER_STORES: dict[str, tuple[tuple[str, tuple[str, ...], int], ...]] = {
    "gitlab": (
        # The migrations Job and the pods wait for the database themselves (wait-for-deps)
        (DATABASE, ("global", "psql", "database"), GITLAB_AFTER_STORE),
        # Redis: nothing of the chart waits for it, and the migrations' seeding may use it (a failed run is retried:
        # the Job's backoffLimit); counted as the whole migrations plus a Rails boot after Redis serves, the most it
        # can hold GitLab back
        (DRAGONFLY, ("global", "redis", "host"), GITLAB_AFTER_STORE),
    ),
}
# Jobs that start with a release and wait for part of it themselves (components/platform/toolbox_job.py: the toolbox
# Jobs wait for GitLab's migrations Job, named in their env): per chart, (the env key naming the Job awaited,
# `<release>-...`; the env key naming the release's namespace; the seconds of the release's work it waits for, from
# the release's start or, for a release in AFTER_STORES, from its stores ready). Such a Job ends no earlier than that
# plus its own run (JOBS).
AFTER_RELEASE: dict[str, tuple[str, str, int]] = {
    "gitlab": ("MIGRATIONS_JOB", "GITLAB_NAMESPACE", GITLAB_MIGRATIONS),
}
DEFAULT_JOB = 20          # estimate: another Job of ours: its pod starts (one small image) and runs a short script
DEFAULT_COMMAND = 30      # estimate: another script of ours: SSH connect + a short idempotent script
DEFAULT_KUBERNETES = 3    # estimate: a plain Kubernetes object: one API call, no readiness to wait for
DEFAULT_CUSTOM = 10       # estimate: any other cloud resource: a create call plus a short action poll
DEFAULT_AWAITED = 60      # estimate: another operator resource Pulumi waits on: its pods start and report ready


def duration(resource: dict[str, Any]) -> int:
    type_ = resource["type"]
    if type_ in HELM_CHARTS:  # also helm.sh/v4 Chart: a component whose children mocks never see
        return CHARTS.get(str(resource["inputs"].get("chart")), DURATIONS["kubernetes:helm.sh/v3:Release"])
    if not resource["custom"] or type_.startswith("pulumi:providers:"):
        return 0
    if type_ == COMMAND:
        return next((s for prefix, s in COMMANDS if resource["name"].startswith(prefix)), DEFAULT_COMMAND)
    if type_ == JOB:
        return next((s for prefix, s in JOBS if resource["name"].startswith(prefix)), DEFAULT_JOB)
    if type_ in DURATIONS:
        return DURATIONS[type_]
    if type_.startswith("kubernetes:") and "pulumi.com/waitFor" in _annotations(resource):
        seconds = AWAITED.get(type_, DEFAULT_AWAITED)
        return seconds * _members(resource) if type_ in AWAITED_PER_MEMBER else seconds
    return DEFAULT_KUBERNETES if type_.startswith("kubernetes:") else DEFAULT_CUSTOM


def _annotations(resource: dict[str, Any]) -> dict[str, Any]:
    metadata = resource["inputs"].get("metadata")
    return (metadata.get("annotations") or {}) if isinstance(metadata, dict) else {}


def _members(resource: dict[str, Any]) -> int:
    """The members of an AWAITED_PER_MEMBER resource (at least one)."""
    spec = resource["inputs"].get("spec")
    return max(1, AWAITED_PER_MEMBER[resource["type"]](spec if isinstance(spec, dict) else {}))


def _provider_urn(reference: str) -> str:
    return reference.rsplit("::", 1)[0] if reference else ""


def _after_stores(resources: dict[str, dict[str, Any]]) -> dict[str, list[tuple[str, int]]]:
    """Release urn -> [(a store's urn, the seconds after it: AFTER_STORES)] for the charts that wait for theirs."""
    stores = {(r["type"], STORES[r["type"]][0](r)): urn for urn, r in resources.items() if r["type"] in STORES}
    found: dict[str, list[tuple[str, int]]] = {}
    for urn, r in resources.items():
        rules = AFTER_STORES.get(str(r["inputs"].get("chart")), ()) if r["type"] in HELM_CHARTS else ()
        for type_, path, seconds in rules:
            store = stores.get((type_, STORES[type_][1](_at(r["inputs"].get("values") or {}, path))))
            if store is not None:
                found.setdefault(urn, []).append((store, seconds))
    return found


def _after_releases(resources: dict[str, dict[str, Any]], waits_for: dict[str, list[str]],
                    stores: dict[str, list[tuple[str, int]]]) -> dict[str, list[tuple[str, int]]]:
    """Job urn -> [(a urn, the seconds after it)] for the Jobs that wait for part of a release themselves
    (AFTER_RELEASE): after what the release waits for (its start) and after its stores (AFTER_STORES)."""
    releases = [(r, AFTER_RELEASE[str(r["inputs"].get("chart"))]) for r in resources.values()
                if r["type"] in HELM_CHARTS and str(r["inputs"].get("chart")) in AFTER_RELEASE]
    found: dict[str, list[tuple[str, int]]] = {}
    for urn, r in resources.items():
        if r["type"] != JOB or not releases:
            continue
        env = _env(r)
        for release, (job_key, namespace_key, seconds) in releases:
            name, namespace = release["inputs"].get("name"), release["inputs"].get("namespace")
            if env.get(namespace_key) == namespace and str(env.get(job_key, "")).startswith(f"{name}-"):
                part = seconds + duration(r)
                found.setdefault(urn, []).extend(
                    [(p, part) for p in waits_for[release["urn"]]] +
                    [(store, part) for store, _ in stores.get(release["urn"], ())])
    return found


def _env(resource: dict[str, Any]) -> dict[str, Any]:
    """A Job's first container's environment, by name."""
    template = ((resource["inputs"].get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = template.get("containers") or [{}]
    return {e.get("name"): e.get("value") for e in containers[0].get("env") or [] if isinstance(e, dict)}


def _at(values: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        values = values.get(key) if isinstance(values, dict) else None
    return values


def schedule(plan: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, int], dict[str, str | None]]:
    """(resources by urn, finish second of each, the predecessor it waited on last) of a first deploy."""
    resources = {r["urn"]: r for r in plan["resources"]}
    waits_for: dict[str, list[str]] = {urn: [] for urn in resources}
    for r in plan["resources"]:
        preds = [*r["dependencies"], _provider_urn(r["provider"])]
        waits_for[r["urn"]] += [p for p in preds if p in resources]
        if r["parent"] in resources and not resources[r["parent"]]["custom"]:
            waits_for[r["parent"]].append(r["urn"])  # a component is done when its children are
    # Not a dependency (the release starts without it) but an end it cannot beat: ordered after it all the same.
    after_stores = _after_stores(resources)
    after_stores.update(_after_releases(resources, waits_for, after_stores))

    finish: dict[str, int] = {}
    via: dict[str, str | None] = {}
    order = {urn: [*preds, *(store for store, _ in after_stores.get(urn, ()))] for urn, preds in waits_for.items()}
    for urn in _topological(order):
        before = max(waits_for[urn], key=lambda p: finish[p], default=None)
        via[urn] = before
        finish[urn] = (finish[before] if before else 0) + duration(resources[urn])
        for store, seconds in after_stores.get(urn, ()):
            if finish[store] + seconds > finish[urn]:
                via[urn], finish[urn] = store, finish[store] + seconds
    return resources, finish, via


# The K3s install of each node (components/k3s: `k3s-<node>`, the remote command that starts K3s and, on a server,
# waits for its API server's /readyz): once the last has finished, every server and agent has joined.
K3S_INSTALL_PREFIX = "k3s-"


def k3s_ready(resources: dict[str, dict[str, Any]], finish: dict[str, int]) -> int | None:
    """When the last node's K3s install finishes: servers to K3s Ready on every node (issue 22's second figure)."""
    ends = [finish[urn] for urn, r in resources.items()
            if r["type"] == COMMAND and r["name"].startswith(K3S_INSTALL_PREFIX)]
    return max(ends) if ends else None


def estimate(plan: dict[str, Any]) -> dict[str, Any]:
    resources, finish, via = schedule(plan)
    serial = sum(duration(r) for r in resources.values())
    if not finish:
        return {"criticalPathSeconds": 0, "serialSeconds": 0, "parallelism": 1.0, "criticalPath": [],
                "k3sReadySeconds": None}
    chain = [step(resources, finish, via, urn) for urn in critical_chain(resources, finish, via)]
    critical = max(finish.values())
    return {"criticalPathSeconds": critical, "serialSeconds": serial,
            "parallelism": round(serial / critical, 1) if critical else 1.0, "criticalPath": chain,
            "k3sReadySeconds": k3s_ready(resources, finish)}


def step(resources: dict[str, dict[str, Any]], finish: dict[str, int], via: dict[str, str | None],
          urn: str) -> dict[str, Any]:
    """One step of the critical path: its own duration, or, for a release that waited on a store at the end
    (AFTER_STORES) or a Job on part of a release (AFTER_RELEASE), the part after what it waited on and that."""
    r = resources[urn]
    before = via[urn]
    if before is not None and before not in _dependencies(r):
        return {"name": r["name"], "type": r["type"], "seconds": finish[urn] - finish[before],
                "after": resources[before]["name"]}
    return {"name": r["name"], "type": r["type"], "seconds": duration(r)}


def _dependencies(resource: dict[str, Any]) -> set[str]:
    return {*resource["dependencies"], _provider_urn(resource["provider"])}


def critical_chain(resources: dict[str, dict[str, Any]], finish: dict[str, int],
                   via: dict[str, str | None]) -> list[str]:
    """Urns of the resources that take time on the longest chain, first to last."""
    end: str | None = max(finish, key=lambda u: finish[u]) if finish else None
    chain = []
    while end is not None:
        if duration(resources[end]):
            chain.append(end)
        end = via[end]
    return chain[::-1]


def _topological(waits_for: dict[str, list[str]]) -> list[str]:
    """Kahn's algorithm; a cycle would be a program bug, so it fails loudly."""
    pending = {urn: len(preds) for urn, preds in waits_for.items()}
    unblocks: dict[str, list[str]] = {urn: [] for urn in waits_for}
    for urn, preds in waits_for.items():
        for pred in preds:
            unblocks[pred].append(urn)
    ready = [urn for urn, n in pending.items() if n == 0]
    order = []
    while ready:
        urn = ready.pop()
        order.append(urn)
        for nxt in unblocks[urn]:
            pending[nxt] -= 1
            if pending[nxt] == 0:
                ready.append(nxt)
    if len(order) != len(waits_for):
        raise ValueError(f"dependency cycle among {sorted(u for u, n in pending.items() if n)[:5]}")
    return order


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
