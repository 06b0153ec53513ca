"""The whole-cluster-loss runbook: the stack-file changes and checks that bring the platform back from backups,
exported as the stack output `disasterRecovery` (docs/disaster-recovery.md explains each step).

Order, and why:
1. a new cluster with the cluster services only, and Velero restoring the namespaces it backs up (platform,
   ads, the in-cluster object store) before anything of Pulumi's exists in them: Velero fills the volumes through
   the pods it restores, and the releases later adopt the objects (`existingResourcePolicy: none` leaves them);
   Dragonfly's namespace waits for its own restore, which the Dragonfly resource waits for; OpenBao comes back from
   its newest raft snapshot (clusterServices.secrets.restore), its namespace left out of Velero's restore;
2. the data plane, every store restoring from its own backup (Velero's schedule leaves the live databases out:
   a file copy of a running database is no backup). The object store comes first (the stores wait for it when
   it holds their backups); then the stores, which depend on nothing but it;
3. the platform, whose state now exists (PostgreSQL databases, object storage buckets, restored volumes);
4. the ad services, which read the stores and the platform.
The restore switches can stay set afterwards: each restore is named after its backup and runs once; PostgreSQL
ignores `bootstrap` on a cluster that exists.

When the servers survive and only the cluster state is lost, the `etcdRestore` output is the shorter path.
"""

from __future__ import annotations

from typing import Any

from config.errors import NAMESPACE
from config.model import StackConfig

# Placeholders the operator replaces with the backup chosen (docs/disaster-recovery.md: how to list them).
VELERO_BACKUP = "<velero backup, e.g. cluster-20261120020012>"
# Stores in the order they come back: the object store first (it may hold the others' backups). Each: what to set
# (its restore switch; PostgreSQL also a new archive, config/data.py Postgres) and the check that it is back.
STORES: tuple[tuple[str, dict[str, Any], str], ...] = (
    ("objectStorage", {}, "kubectl -n seaweedfs rollout status statefulset/seaweedfs-filer --timeout=30m"),
    ("postgres", {"dataPlane.postgres.restore": {
        "fromServer": "postgres", "targetTime": "<RFC 3339 time, or leave out for the end of the archive>"},
        "dataPlane.postgres.backupServerName": "<a new name, e.g. postgres-2>"},
     "kubectl -n postgres wait cluster/postgres --for=condition=Ready --timeout=2h"),
    ("clickhouse", {"dataPlane.clickhouse.restore": {"backup": "<full-yyyymmddThhmmssZ>"}},
     "kubectl -n clickhouse wait job -l app.kubernetes.io/component=restore --for=condition=complete --timeout=8h"),
    ("scylladb", {"dataPlane.scylladb.restore": {"snapshotTag": "<sm_yyyymmddhhmmssUTC>"}},
     "kubectl -n scylla-manager wait job -l app.kubernetes.io/component=scylla-restore --for=condition=complete "
     "--timeout=8h"),
    ("redpanda", {"dataPlane.redpanda.restore": {"backup": "<yyyymmddThhmmssZ>"}},
     "kubectl -n redpanda wait job -l app.kubernetes.io/component=restore --for=condition=complete --timeout=6h"),
    ("dragonfly", {"dataPlane.dragonfly.restore": {"backup": VELERO_BACKUP}},
     "kubectl -n dragonfly wait dragonfly/dragonfly --for=jsonpath='{.status.phase}'=Ready --timeout=1h"),
)


def store_steps(cfg: StackConfig) -> list[dict[str, Any]]:
    """The enabled stores in restore order, each with its switch and check."""
    steps = []
    for store, settings, check in STORES:
        config = getattr(cfg.data_plane, "object_storage" if store == "objectStorage" else store)
        if not config.enabled or (store == "objectStorage" and config.backend != "seaweedfs"):
            continue  # an external object store outlives the cluster
        steps.append({"store": store, "check": check,
                      **({"set": {f"{NAMESPACE}:{k}": v for k, v in settings.items()}} if settings else {})})
    return steps


def secrets_from_snapshot(cfg: StackConfig) -> bool:
    """The secret store comes back from its newest raft snapshot (consistent, at most secretsSchedule old) rather than
    Velero's file copy of its live raft volumes (a day old, and not necessarily consistent): OpenBao with snapshots
    in S3 (config/rules.py _secrets_restore: Vault has no restore Job)."""
    backups = cfg.cluster_services.backups
    return cfg.cluster_services.secrets.backend == "openbao" and backups.enabled and backups.s3 is not None


def cluster_set(cfg: StackConfig) -> dict[str, Any]:
    """The first step's restores: Velero's of the namespaces it backs up but Dragonfly's (the stores step restores
    it) and, when it comes from its snapshot, the secret store's (one source per restore)."""
    from_snapshot = secrets_from_snapshot(cfg)
    excluded = ["dragonfly", *([cfg.cluster_services.secrets.backend] if from_snapshot else [])]
    return {f"{NAMESPACE}:clusterServices.backups.restore": {"backup": VELERO_BACKUP, "excludeNamespaces": excluded},
            **({f"{NAMESPACE}:clusterServices.secrets.restore": {"snapshot": "latest"}} if from_snapshot else {})}


def runbook(cfg: StackConfig, stack: str) -> list[dict[str, Any]]:
    """The steps, in order: what to set (config keys as `pulumi config set --path` takes them), what to run, and
    what must hold before the next."""
    layers = f"{NAMESPACE}:layers"
    secrets_check = ["kubectl -n openbao wait job/openbao-restore-latest --for=condition=complete --timeout=70m  "
                     "# the secret store's snapshot restored"] if secrets_from_snapshot(cfg) else []
    return [
        {"step": "cluster", "set": {
            f"{layers}.dataPlane": False, f"{layers}.platform": False, f"{layers}.adServices": False,
            **cluster_set(cfg)},
         # The first up makes the new cluster and points the Kubernetes provider at it, whose constant
         # clusterIdentifier keeps it (and the state's objects) in place; the refresh drops the objects the new
         # cluster lacks, and the second up creates them (docs/lifecycle.md, "A new cluster under the same stack").
         "run": f"pulumi up --stack {stack} && pulumi refresh --stack {stack} && pulumi up --stack {stack}",
         "checks": ["kubectl get nodes  # every node Ready",
                    "kubectl -n velero get backupstoragelocations  # PHASE Available: the old backups are listed",
                    "kubectl -n velero get restores  # PHASE Completed", *secrets_check]},
        {"step": "stores", "set": {f"{layers}.dataPlane": True}, "stores": store_steps(cfg),
         "run": f"pulumi up --stack {stack}",
         "checks": ["each store's check, in this order"]},
        {"step": "platform", "set": {f"{layers}.platform": True}, "run": f"pulumi up --stack {stack}",
         "checks": [f"make verify STACK={stack}"]},
        {"step": "adServices", "set": {f"{layers}.adServices": True}, "run": f"pulumi up --stack {stack}",
         "checks": [f"make verify STACK={stack}"]},
    ]
