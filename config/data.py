"""Config of the data plane: one block per store, all on by default, shaped by the profile.

Replica counts are not configured: each store runs as many replicas as its node pool has nodes
(at most what its quorum needs), so adding nodes to a pool is how a store grows. Sizes, schedules
and retention are here; the profiles (config/profiles.py) give production and staging their values.
"""

from __future__ import annotations

import re
from typing import Callable, ClassVar

from pydantic import field_validator, model_validator

from config.catalog import PROVIDERS
from config.model_base import Model, check_dns_subdomain, check_token, one_of, optional
from config.platform import NEEDS
from config.quantity import Cpu, Memory, check_volume_size, memory_mib, whole_cores
from config.cron import longest_gap_seconds
from config.errors import Problem, problem
from config.services import check_cron, check_s3_endpoint

OBJECT_STORAGE_BACKENDS = ("seaweedfs", "external")
SCYLLA_STORAGE = ("auto", "network")
# What the object store holds: one bucket per purpose (later layers look them up by purpose), each purpose owned
# by exactly one consumer. GitLab keeps each object type in its own bucket ("A different bucket is needed for
# each, otherwise performing a restore from backup doesn't function properly": its chart's
# doc/advanced/external-object-storage): `gitlab` holds CI artifacts; its backups and their restore scratch space
# live with its objects (one s3cmd config reads them all). Each store that backs up here (no
# clusterServices.backups.s3) has its own bucket.
BACKUP_BUCKETS = {"postgres": "postgres-backups", "clickhouse": "clickhouse-backups", "scylladb": "scylladb-backups",
                  "redpanda": "redpanda-backups"}
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



class Store(Model):
    enabled: bool = True
    # Override the resources sized from the pool's size class (config/catalog.py SIZES): whole CPUs
    # for stores that pin CPUs, and memory, e.g. cpu: "6", memory: "24Gi".
    cpu: Cpu | None = None
    memory: Memory | None = None
    storage_size: str = "100Gi"

    _v_size = field_validator("storage_size")(check_volume_size)


class Movable(Model):
    """A store whose instances can move one at a time onto another provider's volumes (docs/providers.md, "Moving
    pools to another provider"): while its pools span two providers with their own volumes, `storageProvider` says
    whose volumes new instances claim, one of its pools' (providers/hybrid.py storage_provider_problems). Existing
    instances keep the volumes they have until each is replaced. Only stores where a replaced instance gets a claim of
    the spec's class and the data is copied into it from the others are Movable: by their operators (PostgreSQL,
    DragonflyDB), or by SeaweedFS's own shell and filers (the object store: docs/providers.md, "The object store to
    another provider")."""

    title: ClassVar[str]  # the store's name in errors
    storage_provider: str | None = None

    _v_provider = field_validator("storage_provider")(optional(one_of(PROVIDERS, what="the providers")))


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


# --- restore from a chosen backup (docs/disaster-recovery.md) ----------------------------------------------
# Each store's `restore` block brings it back from a named backup when the store is (re)created. The names are
# what the store's own backup tool calls its backups; each reaches a CR field or a script parameter, so each is
# held to its tool's exact grammar here (and quoted where it reaches a shell).
_BARMAN_BACKUP_ID = re.compile(r"\d{8}T\d{6}")  # barman-cloud backup ids: 20261120T020012
# RFC 3339 with an explicit offset: CloudNativePG's recoveryTarget.targetTime; without one PostgreSQL would read
# it in the server's time zone.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")
_SERVER_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# components/data/clickhouse/create-remote.sh names every backup full-<UTC timestamp>
_CLICKHOUSE_BACKUP = re.compile(r"full-\d{8}T\d{6}Z")
# Scylla Manager snapshot tags: sm_<UTC yyyymmddhhmmss>UTC (scylla-manager pkg/util/backupspec SnapshotTagAt)
_SCYLLA_SNAPSHOT_TAG = re.compile(r"sm_\d{14}UTC")
# components/data/redpanda_backup.py names every export by its UTC start time
_REDPANDA_BACKUP = re.compile(r"\d{8}T\d{6}Z")


def _grammar(pattern: re.Pattern[str], example: str, what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"must be {what}, such as {example}")
        return value
    return check


class PostgresRestore(Model):
    """Bootstrap the PostgreSQL cluster from the barman object store (CloudNativePG `bootstrap.recovery`): the
    base backup `backupId` (default: the latest before `targetTime`, else the latest), WAL replayed up to
    `targetTime` (default: the end of the archive). `fromServer`: the server name the backups were archived
    under. Only a cluster being created bootstraps: an existing one ignores it."""

    from_server: str = "postgres"
    backup_id: str | None = None
    target_time: str | None = None

    _v_server = field_validator("from_server")(_grammar(_SERVER_NAME, "postgres", "a barman server name (a DNS label)"))
    _v_backup = field_validator("backup_id")(optional(_grammar(_BARMAN_BACKUP_ID, "20261120T020012",
                                                               "a barman backup id (yyyymmddThhmmss)")))
    _v_time = field_validator("target_time")(optional(_grammar(
        _RFC3339, "2026-11-20T14:30:00Z", "an RFC 3339 time with its offset (Z or +hh:mm)")))


class ClickHouseRestore(Model):
    """Restore every shard from the remote backup `backup` (clickhouse-backup restore_remote: schema and data)."""

    backup: str
    _v_backup = field_validator("backup")(_grammar(_CLICKHOUSE_BACKUP, "full-20261120T010000Z",
                                                   "a backup name of the clickhouse-backup CronJob (full-<UTC time>)"))


class ScyllaRestore(Model):
    """Restore the schema, then the tables, of the Scylla Manager snapshot `snapshotTag` (sctool restore)."""

    snapshot_tag: str
    _v_tag = field_validator("snapshot_tag")(_grammar(_SCYLLA_SNAPSHOT_TAG, "sm_20261120030000UTC",
                                                      "a Scylla Manager snapshot tag (sm_<yyyymmddhhmmss>UTC)"))


class DragonflyRestore(Model):
    """Restore the instances' snapshot volumes from the Velero backup `backup` before the instances start
    (they load the snapshot at start)."""

    backup: str
    _v_backup = field_validator("backup")(check_dns_subdomain)


class RedpandaRestore(Model):
    """Replay the export `backup` (topics with their configs, ACLs, schemas, then the records) into the cluster."""

    backup: str
    _v_backup = field_validator("backup")(_grammar(_REDPANDA_BACKUP, "20261120T030000Z",
                                                   "an export name of the Redpanda backup CronJob (<UTC time>)"))


# The restore drills' canary keyspace and role (components/data/scylladb/bootstrap.py CANARY): no configured keyspace.
SCYLLA_CANARY_KEYSPACE = "drill_canary"


class ScyllaDB(PinnedStore):
    # auto: local NVMe (an XFS volume the operator's NodeConfig prepares) where the provider's disks are
    # local NVMe, the CSI storage class otherwise.
    storage: str = "auto"
    keyspaces: list[str] = ["ads"]  # created with NetworkTopologyStrategy, replication = the rack count
    backup_schedule: str = "0 3 * * *"
    backup_retention: int = 7  # backups Scylla Manager keeps
    repair_schedule: str = "0 5 * * 0"
    restore: ScyllaRestore | None = None

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
            if value == SCYLLA_CANARY_KEYSPACE:
                raise ValueError(f"keyspace {value!r} is the restore drills' canary (docs/restore-drills.md)")
        if len(set(values)) != len(values):
            raise ValueError("must not repeat a keyspace")
        return values


class Redpanda(PinnedStore):
    # Redpanda Console (web UI). Never routed through the shared gateway: the community edition has no
    # login, so it is reached with `kubectl port-forward` only (README).
    console: bool = True
    retention_hours: int = 168  # default topic retention (log_retention_ms)
    # Full exports to the backup bucket (components/data/redpanda_backup.py): topics, configs, ACLs, schemas.
    backup_schedule: str = "0 */6 * * *"
    backup_retention: int = 28  # exports kept
    restore: RedpandaRestore | None = None

    _v_cron = field_validator("backup_schedule")(check_cron)

    @field_validator("backup_retention")
    @classmethod
    def _backup_retention(cls, value: int) -> int:
        if not 1 <= value <= 1000:
            raise ValueError("must be between 1 and 1000 (exports kept)")
        return value

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
    restore: ClickHouseRestore | None = None

    _v_keeper = field_validator("keeper_storage_size")(check_volume_size)
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


class Dragonfly(PinnedStore, Movable):
    title: ClassVar[str] = "DragonflyDB"
    snapshot_schedule: str = "*/15 * * * *"  # snapshots to each instance's volume (a rolling, single file set)
    restore: DragonflyRestore | None = None
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


class Postgres(Store, Movable):
    title: ClassVar[str] = "PostgreSQL"
    wal_storage_size: str = "20Gi"
    backup_schedule: str = "0 2 * * *"
    backup_retention: str = "30d"  # barman retention policy: <n>d, <n>w or <n>m
    # One database, owner role and generated password per consumer (GitLab, Airflow, MLflow, JupyterHub).
    databases: list[str] = ["gitlab", "airflow", "mlflow", "jupyterhub"]
    # The barman server name the cluster archives WAL and base backups under. A restored cluster must archive
    # under a new one: CloudNativePG refuses to archive into a non-empty archive (its WAL archive check).
    backup_server_name: str = "postgres"
    restore: PostgresRestore | None = None

    _v_server = field_validator("backup_server_name")(_grammar(_SERVER_NAME, "postgres-2",
                                                               "a barman server name (a DNS label)"))
    _v_wal = field_validator("wal_storage_size")(check_volume_size)
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

    @model_validator(mode="after")
    def _new_archive(self) -> "Postgres":
        if self.restore is not None and self.restore.from_server == self.backup_server_name:
            raise ValueError(f"restore.fromServer and backupServerName are both {self.backup_server_name!r}: a "
                             "restored cluster must archive under a new server name (set backupServerName, e.g. "
                             f"{self.backup_server_name}-2), CloudNativePG refuses to archive into the backup it "
                             "restores from")
        return self


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


class ObjectStorage(Store, Movable):
    title: ClassVar[str] = "SeaweedFS"
    backend: str = "seaweedfs"
    external: ExternalObjectStorage | None = None
    storage_size: str = "500Gi"  # per volume server

    _v_backend = field_validator("backend")(staticmethod(one_of(OBJECT_STORAGE_BACKENDS, why="(MinIO is not offered: "
                                                                   "its community edition is unmaintained)")))


# Stores whose latest backup the restore drills restore and check (components/data/drills.py DRILLS; the rest
# are listed with the reason in docs/restore-drills.md). A store added there is added here.
DRILLED_STORES = ("postgres", "redpanda", "clickhouse", "etcd",  # etcd: K3s' snapshots (not a dataPlane store)
                  "scylladb", "velero",  # velero: the cluster's objects (clusterServices.backups), etcd's canary
                  "dragonfly")  # its snapshot volume, through Velero's file-system backup
# Drills that run on their own day unless `schedules` says otherwise: a ClickHouse restore downloads every shard's
# backup, so it does not share Sunday's S3 bandwidth and node room with the PostgreSQL and Redpanda drills.
STAGGERED_SCHEDULES = {"clickhouse": "0 4 * * 1", "etcd": "0 4 * * 2",  # weekly, Monday / Tuesday 04:00 UTC
                       "scylladb": "0 4 * * 3",  # weekly, Wednesday 04:00 UTC: its own day as well
                       "velero": "0 4 * * 4",  # weekly, Thursday 04:00 UTC
                       "dragonfly": "0 4 * * 5"}  # weekly, Friday 04:00 UTC


class Drills(Model):
    """Restore drills (components/data/drills.py): on `schedule`, each drilled store's latest off-cluster backup
    is restored into the scratch namespace dr-drills, checked for the canary and torn down."""

    enabled: bool | None = None  # None: on wherever backups go off the cluster (clusterServices.backups.s3)
    schedule: str = "0 4 * * 0"  # weekly, Sunday 04:00 UTC: after every nightly backup, off business hours
    # Per store, instead of `schedule` (STAGGERED_SCHEDULES: the defaults of stores that run on their own day).
    schedules: dict[str, str] = {}
    skip: list[str] = []  # stores not drilled (per-store opt-out)
    # The newest canary in the restored copy may be this old: a backup cadence of a day plus the canary's hour.
    max_data_age_hours: int = 26

    _v_cron = field_validator("schedule")(check_cron)

    @field_validator("schedules")
    @classmethod
    def _schedules(cls, values: dict[str, str]) -> dict[str, str]:
        for store, cron in values.items():
            if store not in DRILLED_STORES:
                raise ValueError(f"{store!r} is not a drilled store; accepted: {', '.join(DRILLED_STORES)}")
            try:
                check_cron(cron)
            except ValueError as e:
                raise ValueError(f"{store}: {cron!r} {e}") from None
        return values

    def schedule_of(self, store: str) -> str:
        """The store's drill cron: its own, else its staggered default, else `schedule`."""
        return self.schedules.get(store, STAGGERED_SCHEDULES.get(store, self.schedule))

    @field_validator("skip")
    @classmethod
    def _skip(cls, values: list[str]) -> list[str]:
        unknown = [v for v in values if v not in DRILLED_STORES]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not a drilled store; accepted: {', '.join(DRILLED_STORES)}")
        if "etcd" in values and "velero" not in values:
            raise ValueError("'etcd' without 'velero': the Velero drill restores etcd's canary ConfigMap "
                             "(dr-drills/drill-canary); skip both or neither")
        return values

    @field_validator("max_data_age_hours")
    @classmethod
    def _age(cls, value: int) -> int:
        if not 1 <= value <= 24 * 31:
            raise ValueError("must be between 1 and 744 hours (31 days)")
        return value


# The drills' canary writers' schedule (components/data/drills.py): hourly, so the newest canary in a backup is at
# most CANARY_PERIOD_HOURS older than the backup itself.
CANARY_SCHEDULE = "30 * * * *"
CANARY_PERIOD_HOURS = longest_gap_seconds(CANARY_SCHEDULE) // 3600
# Drilled dataPlane stores whose restored copy is as old as their newest backup (`backupSchedule`). PostgreSQL's
# drill replays the WAL archive up to its newest segment, so its base-backup schedule does not bound the canary's age.
SNAPSHOT_STORES = ("clickhouse", "scylladb", "redpanda")


def data_age_problem(max_age_hours: int, key: str, cron: str) -> Problem | None:
    """Why a drill restoring backups taken on `cron` (the config key `key`) would fail on every run with
    maxDataAgeHours `max_age_hours`: just before the next backup, the newest one is the schedule's longest gap old
    (over two years of its runs: months and weekdays included) and its newest canary up to the canary's period older.
    Whole hours, rounded up. None when the schedule keeps within it."""
    try:
        gap_hours = -(-longest_gap_seconds(cron) // 3600)
    except ValueError as e:  # check_cron refuses schedules that never run; kept so this never escapes unnamed
        return problem(key, str(e), cron)
    need = gap_hours + CANARY_PERIOD_HOURS
    if need <= max_age_hours:
        return None
    return problem(key, f"leaves a restored canary up to {need} h old ({gap_hours} h between its backups plus the "
                   f"canary's {CANARY_PERIOD_HOURS} h), more than dataPlane.drills.maxDataAgeHours ({max_age_hours}), "
                   f"so that drill would fail every run; accepted: a backupSchedule at most "
                   f"{max_age_hours - CANARY_PERIOD_HOURS} h apart, maxDataAgeHours of at least {need}, the store in "
                   "dataPlane.drills.skip, or dataPlane.drills.enabled: false", cron)


class DataPlane(Model):
    scylladb: ScyllaDB = ScyllaDB()
    redpanda: Redpanda = Redpanda()
    clickhouse: ClickHouse = ClickHouse()
    dragonfly: Dragonfly = Dragonfly()
    postgres: Postgres = Postgres()
    object_storage: ObjectStorage = ObjectStorage()
    drills: Drills = Drills()

    def backup_age_problems(self) -> list[Problem]:
        """The drills fail when the newest canary is older than maxDataAgeHours: a store backed up less often could
        never pass. Checked wherever drills may run (enabled, or unset: on with off-cluster backups); by
        config/rules.py, so each problem names its store's backupSchedule rather than the whole dataPlane."""
        drills = self.drills
        if drills.enabled is False:
            return []
        found = [data_age_problem(drills.max_data_age_hours, f"dataPlane.{store}.backupSchedule",
                                  getattr(self, store).backup_schedule)
                 for store in SNAPSHOT_STORES if getattr(self, store).enabled and store not in drills.skip]
        return [p for p in found if p]

    def storage_provider(self, store: str) -> str | None:
        """Whose volumes a moving store's new instances claim (Movable.storage_provider); None when it is not moving
        or cannot move."""
        settings = getattr(self, store)
        return settings.storage_provider if isinstance(settings, Movable) else None


__all__ = ["BACKUP_BUCKETS", "BUCKET_OWNERS", "DRILLED_STORES", "Drills", "BUCKET_PURPOSES", "ClickHouse",
           "ClickHouseRestore", "DataPlane", "Dragonfly", "DragonflyRestore", "Movable", "PostgresRestore", "RedpandaRestore",
           "ScyllaRestore",
           "ExternalObjectStorage", "ObjectStorage",
           "PinnedStore", "Postgres", "Redpanda", "ScyllaDB", "Store"]
