"""Config of the data plane: one block per store, all on by default, shaped by the profile.

Replica counts are not configured: each store runs as many replicas as its node pool has nodes
(at most what its quorum needs), so adding nodes to a pool is how a store grows. Sizes, schedules
and retention are here; the profiles (config/profiles.py) give production and staging their values.
"""

from __future__ import annotations

import re

from pydantic import field_validator, model_validator

from config.model_base import Model, check_token, one_of
from config.platform import NEEDS
from config.quantity import Cpu, Memory, memory_mib, whole_cores
from config.cron import check_ranges
from config.services import check_cron, check_s3_endpoint

OBJECT_STORAGE_BACKENDS = ("seaweedfs", "external")
SCYLLA_STORAGE = ("auto", "network")
# What the object store holds: one bucket per purpose (later layers look them up by purpose), each purpose owned
# by exactly one consumer. GitLab keeps each object type in its own bucket ("A different bucket is needed for
# each, otherwise performing a restore from backup doesn't function properly": its chart's
# doc/advanced/external-object-storage): `gitlab` holds CI artifacts; its backups and their restore scratch space
# live with its objects (one s3cmd config reads them all). Each store that backs up here (no
# clusterServices.backups.s3) has its own bucket.
BACKUP_BUCKETS = {"postgres": "postgres-backups", "clickhouse": "clickhouse-backups", "scylladb": "scylladb-backups"}
# Consumer -> the purposes only it reads and writes: the platform components' (config/platform.py NEEDS) and the
# stores' backups. The in-cluster store gives each consumer its own identity, limited to these buckets.
BUCKET_OWNERS: dict[str, tuple[str, ...]] = {
    **{name: needs.buckets for name, needs in NEEDS.items() if needs.buckets},
    **{store: (bucket,) for store, bucket in BACKUP_BUCKETS.items()}}
BUCKET_PURPOSES = tuple(purpose for purposes in BUCKET_OWNERS.values() for purpose in purposes)
_RETENTION = re.compile(r"^[1-9]\d*[dwm]$")
_BUCKET_PREFIX = re.compile(r"^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$")


# Memory the thread-per-core stores need per pinned CPU. Redpanda: at least 2 GiB per core for the broker
# (redpanda chart values.yaml, resources.memory), which the chart's explicit resource mode hands 90% of the
# container (charts/redpanda/values.go RedpandaResources.memory: --memory, --reserve-memory 0). DragonflyDB:
# 256 MiB of maxmemory per proactor thread or it exits at start ("There are N threads, so X are required"),
# and we give it 80% of the container (its own default when it sizes itself: "Setting maxmemory to 0.8x").
# Seastar keeps this much memory outside its shards; ScyllaDB's production mode refuses less than 1 GiB
# per shard (scylladb main.cc verify_adequate_memory_per_shard).
SCYLLA_RESERVE_MIB = 1536
SCYLLA_MIB_PER_SHARD = 1024
REDPANDA_MIB_PER_CORE = 2048
REDPANDA_MEMORY_FRACTION = 0.9
DRAGONFLY_MIB_PER_THREAD = 256
DRAGONFLY_MAXMEMORY_FRACTION = 0.8
def min_memory_mib(per_cpu_mib: int, fraction: float, cpus: int) -> int:
    """The smallest container memory that leaves `per_cpu_mib` per CPU in the store's `fraction` of it."""
    return -(-cpus * per_cpu_mib * 10 // int(fraction * 10))  # ceil, exact for fractions of tenths


def _whole_cpus(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"[1-9]\d*", str(value)):
        raise ValueError("must be a whole number of CPUs such as 4: the store runs one thread per core and the "
                         "kubelet's static CPU manager pins whole cores")
    return value


def _check_gibibytes(value: str) -> str:
    if not re.match(r"^\d+(Gi|Ti)$", str(value)):
        raise ValueError("must be a volume size in Gi or Ti, such as 100Gi")
    return value


class Store(Model):
    enabled: bool = True
    # Override the resources sized from the pool's size class (config/catalog.py SIZES): whole CPUs
    # for stores that pin CPUs, and memory, e.g. cpu: "6", memory: "24Gi".
    cpu: Cpu | None = None
    memory: Memory | None = None
    storage_size: str = "100Gi"

    _v_size = field_validator("storage_size")(_check_gibibytes)


class PinnedStore(Store):
    """A thread-per-core store: whole CPUs (the kubelet's static CPU manager pins them), and a configured
    memory that feeds every one of them (checked here; the pool's own share in components/data/context.py)."""

    _v_cpu = field_validator("cpu")(_whole_cpus)

    def memory_floor(self, cores: int) -> tuple[int, str]:
        """The least container memory (MiB) for `cores`, and the store's rule behind it."""
        raise NotImplementedError

    @model_validator(mode="after")
    def _memory_per_core(self) -> "PinnedStore":
        if self.cpu and self.memory:
            need, rule = self.memory_floor(whole_cores(self.cpu))
            if memory_mib(self.memory) < need:
                raise ValueError(f"memory {self.memory} is too small for cpu {self.cpu}: {rule}, so at least {need}Mi")
        return self


class ScyllaDB(PinnedStore):
    # auto: local NVMe (an XFS volume the operator's NodeConfig prepares) where the provider's disks are
    # local NVMe, the CSI storage class otherwise.
    storage: str = "auto"
    keyspaces: list[str] = ["ads"]  # created with NetworkTopologyStrategy, replication = the rack count
    backup_schedule: str = "0 3 * * *"
    backup_retention: int = 7  # backups Scylla Manager keeps
    repair_schedule: str = "0 5 * * 0"

    _v_storage = field_validator("storage")(staticmethod(one_of(SCYLLA_STORAGE)))
    _v_cron = field_validator("backup_schedule", "repair_schedule")(check_cron)

    def memory_floor(self, cores: int) -> tuple[int, str]:
        return (SCYLLA_RESERVE_MIB + cores * SCYLLA_MIB_PER_SHARD,
                f"ScyllaDB in production mode needs {SCYLLA_MIB_PER_SHARD}Mi per shard and {SCYLLA_RESERVE_MIB}Mi "
                "besides")

    @field_validator("backup_retention")
    @classmethod
    def _retention(cls, value: int) -> int:
        if not 1 <= value <= 1000:
            raise ValueError("must be between 1 and 1000 (backups kept)")
        return value

    @field_validator("keyspaces")
    @classmethod
    def _keyspaces(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.match(r"^[a-z][a-z0-9_]{0,47}$", value):
                raise ValueError(f"keyspace {value!r} must be 1-48 characters of a-z, 0-9 and '_', starting with a letter")
            if value.startswith("system"):
                raise ValueError(f"keyspace {value!r}: names starting with 'system' belong to ScyllaDB")
        if len(set(values)) != len(values):
            raise ValueError("must not repeat a keyspace")
        return values


class Redpanda(PinnedStore):
    # Redpanda Console (web UI). Never routed through the shared gateway: the community edition has no
    # login, so it is reached with `kubectl port-forward` only (README).
    console: bool = True
    retention_hours: int = 168  # default topic retention (log_retention_ms)

    @field_validator("retention_hours")
    @classmethod
    def _retention_hours(cls, value: int) -> int:
        if not 1 <= value <= 24 * 365 * 10:
            raise ValueError("must be between 1 and 87600 hours (10 years)")
        return value

    def memory_floor(self, cores: int) -> tuple[int, str]:
        return (min_memory_mib(REDPANDA_MIB_PER_CORE, REDPANDA_MEMORY_FRACTION, cores),
                "Redpanda needs 2Gi per core of the 90% it is given")


class ClickHouse(Store):
    shards: int = 1
    keeper_storage_size: str = "20Gi"
    backup_schedule: str = "0 1 * * *"
    backup_retention: int = 7  # remote backups kept

    _v_keeper = field_validator("keeper_storage_size")(_check_gibibytes)
    _v_cron = field_validator("backup_schedule")(check_cron)

    @field_validator("shards")
    @classmethod
    def _shards(cls, value: int) -> int:
        if not 1 <= value <= 64:
            raise ValueError("must be between 1 and 64")
        return value

    @field_validator("backup_retention")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value < 1:  # clickhouse-backup reads 0 as "keep every backup"
            raise ValueError("must be at least 1 (the number of remote backups kept per shard)")
        return value


class Dragonfly(PinnedStore):
    snapshot_schedule: str = "*/15 * * * *"  # snapshots to each instance's volume (a rolling, single file set)
    _v_cron = field_validator("snapshot_schedule")(check_cron)

    def memory_floor(self, cores: int) -> tuple[int, str]:
        return (min_memory_mib(DRAGONFLY_MIB_PER_THREAD, DRAGONFLY_MAXMEMORY_FRACTION, cores),
                "DragonflyDB needs 256Mi of maxmemory (80% of the memory) per thread")


# Names a configured database (its owner role, and the Secret `postgres-<name>` components/data/postgres.py
# writes) must not take: PostgreSQL's own databases, the roles CloudNativePG refuses as managed roles
# (postgres, streaming_replica), initdb's default database/owner `app`, and the suffixes of the Secrets the
# operator creates for the cluster (<cluster>-app, -superuser, -ca, -server, -replication: CloudNativePG docs,
# "Certificates" and "Connecting from an application"), which a database Secret of that name would overwrite.
POSTGRES_RESERVED = frozenset({"postgres", "template0", "template1", "streaming_replica", "app", "superuser", "ca",
                               "server", "replication", "drill_canary"})  # the last: the drills' canary (drills.py)


class Postgres(Store):
    wal_storage_size: str = "20Gi"
    backup_schedule: str = "0 2 * * *"
    backup_retention: str = "30d"  # barman retention policy: <n>d, <n>w or <n>m
    # One database, owner role and generated password per consumer (GitLab, Airflow, MLflow, JupyterHub).
    databases: list[str] = ["gitlab", "airflow", "mlflow", "jupyterhub"]

    _v_wal = field_validator("wal_storage_size")(_check_gibibytes)
    _v_cron = field_validator("backup_schedule")(check_cron)

    @field_validator("backup_retention")
    @classmethod
    def _retention(cls, value: str) -> str:
        if not _RETENTION.match(value):
            raise ValueError("must be a retention such as 30d, 4w or 3m")
        return value

    @field_validator("databases")
    @classmethod
    def _databases(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.match(r"^[a-z][a-z0-9_]{0,62}$", value):
                raise ValueError(f"database {value!r} must be 1-63 characters of a-z, 0-9 and '_', starting with a letter")
        taken = sorted(set(values) & POSTGRES_RESERVED)
        if taken:
            raise ValueError(f"database {taken[0]!r} is a name PostgreSQL or CloudNativePG keeps for itself "
                             f"(reserved: {', '.join(sorted(POSTGRES_RESERVED))})")
        if len(set(values)) != len(values):
            raise ValueError("must not repeat a database")
        return values


class ExternalObjectStorage(Model):
    """Provider-native S3 (Hetzner Object Storage, AWS S3, GCS interoperability). The buckets
    `<bucketPrefix>-<purpose>` must exist; the credentials are the secrets objectStorageAccessKeyId
    and objectStorageSecretAccessKey."""

    endpoint: str
    region: str
    bucket_prefix: str

    _v_endpoint = field_validator("endpoint")(check_s3_endpoint)
    _v_region = field_validator("region")(check_token)

    @field_validator("bucket_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _BUCKET_PREFIX.match(value):
            raise ValueError("must be 3-32 characters of a-z, 0-9 and '-' (bucket names are <prefix>-<purpose>)")
        return value


class ObjectStorage(Store):
    backend: str = "seaweedfs"
    external: ExternalObjectStorage | None = None
    storage_size: str = "500Gi"  # per volume server

    _v_backend = field_validator("backend")(staticmethod(one_of(OBJECT_STORAGE_BACKENDS, why="(MinIO is not offered: "
                                                                   "its community edition is unmaintained)")))


# Stores whose latest backup the restore drills restore and check (components/data/drills.py DRILLS; the rest
# are listed with the reason in docs/restore-drills.md). A store added there is added here.
DRILLED_STORES = ("postgres",)


class Drills(Model):
    """Restore drills (components/data/drills.py): on `schedule`, each drilled store's latest off-cluster backup
    is restored into the scratch namespace dr-drills, checked for the canary and torn down."""

    enabled: bool | None = None  # None: on wherever backups go off the cluster (clusterServices.backups.s3)
    schedule: str = "0 4 * * 0"  # weekly, Sunday 04:00 UTC: after every nightly backup, off business hours
    skip: list[str] = []  # stores not drilled (per-store opt-out)
    # The newest canary in the restored copy may be this old: a backup cadence of a day plus the canary's hour.
    max_data_age_hours: int = 26

    _v_cron = field_validator("schedule")(check_cron)
    _v_ranges = field_validator("schedule")(check_ranges)

    @field_validator("skip")
    @classmethod
    def _skip(cls, values: list[str]) -> list[str]:
        unknown = [v for v in values if v not in DRILLED_STORES]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not a drilled store; accepted: {', '.join(DRILLED_STORES)}")
        return values

    @field_validator("max_data_age_hours")
    @classmethod
    def _age(cls, value: int) -> int:
        if not 1 <= value <= 24 * 31:
            raise ValueError("must be between 1 and 744 hours (31 days)")
        return value


class DataPlane(Model):
    scylladb: ScyllaDB = ScyllaDB()
    redpanda: Redpanda = Redpanda()
    clickhouse: ClickHouse = ClickHouse()
    dragonfly: Dragonfly = Dragonfly()
    postgres: Postgres = Postgres()
    object_storage: ObjectStorage = ObjectStorage()
    drills: Drills = Drills()


__all__ = ["BACKUP_BUCKETS", "BUCKET_OWNERS", "DRILLED_STORES", "Drills", "BUCKET_PURPOSES", "ClickHouse", "DataPlane", "Dragonfly",
           "ExternalObjectStorage", "ObjectStorage",
           "PinnedStore", "Postgres", "Redpanda", "ScyllaDB", "Store"]
