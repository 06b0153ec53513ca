"""Typed connection info the data plane hands the platform and the ad services.

Hosts are in-cluster DNS names; credentials live in Kubernetes Secrets in the store's namespace.
Consumers in other namespaces get their own copy (`Credentials.copy_to`): Secrets are namespaced,
and a copy made from the same generated Outputs stays in step when the password is rotated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.layer import Credentials
from config.data import BUCKET_OWNERS
from config.load import S3Keys


@dataclass(frozen=True)
class S3Location:
    """A bucket (and prefix) in S3-compatible storage, with credentials (keys ACCESS_KEY_ID, SECRET_ACCESS_KEY)."""

    endpoint: str  # URL: https://... outside the cluster, http://<svc>.<ns>.svc:<port> inside
    region: str
    bucket: str
    prefix: str  # no leading or trailing slash; "" for the bucket root
    access_key_id: pulumi.Output[str]
    secret_access_key: pulumi.Output[str]
    in_cluster: bool  # the in-cluster store: a backup there does not survive the cluster
    sse: str | None = None  # what the writer asks the store for (clusterServices.backups.s3.serverSideEncryption)

    def url(self, *parts: str) -> str:
        path = "/".join(p.strip("/") for p in (self.prefix, *parts) if p)
        return f"s3://{self.bucket}/{path}" if path else f"s3://{self.bucket}"

    def under(self, *parts: str) -> "S3Location":
        prefix = "/".join(p.strip("/") for p in (self.prefix, *parts) if p)
        return dataclasses.replace(self, prefix=prefix)

    def secret(self, resource_name: str, name: str, namespace: str, opts: pulumi.ResourceOptions,
               id_key: str = "ACCESS_KEY_ID", secret_key: str = "SECRET_ACCESS_KEY") -> k8s.core.v1.Secret:
        """The credentials as a Secret in the namespace of the workload that writes here."""
        return k8s.core.v1.Secret(
            resource_name, metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace), type="Opaque",
            string_data={id_key: pulumi.Output.secret(self.access_key_id),
                         secret_key: pulumi.Output.secret(self.secret_access_key)},
            opts=opts)


@dataclass(frozen=True)
class BackupTargets:
    """Where the stores back up: one S3 service, each store in its own bucket or prefix with its own keys."""

    endpoint: str  # the S3 service's URL (S3Location.endpoint of every store)
    in_cluster: bool  # the in-cluster object store: a backup there does not survive the cluster
    stores: dict[str, S3Location]  # store (config/services.py BACKUP_PURPOSES) -> its location and keys
    # K3s' etcd snapshots (components/k3s), with the drills' read-only keys: the data plane only ever reads them
    # (the etcd restore drill). None: no off-cluster S3, or no drills key pair.
    etcd: S3Location | None = None

    def of(self, store: str) -> S3Location:
        return self.stores[store]


@dataclass(frozen=True)
class ObjectStoreEndpoint:
    url: str  # S3 API endpoint
    region: str
    buckets: dict[str, str]  # purpose (config/data.py BUCKET_PURPOSES) -> bucket name
    identities: dict[str, S3Keys]  # consumer (config/data.py BUCKET_OWNERS) -> its keys
    in_cluster: bool
    path_style: bool  # SeaweedFS: path-style addressing (no per-bucket DNS names)
    ready: Sequence[pulumi.Resource] = ()

    def keys(self, consumer: str) -> S3Keys:
        """The consumer's own keys: in the cluster they reach only its buckets (objectstore.py s3_config)."""
        return self.identities[consumer]

    def bucket(self, purpose: str, prefix: str = "") -> S3Location:
        """The purpose's bucket with the keys of the one consumer that owns it."""
        keys = self.keys(owner(purpose))
        return S3Location(self.url, self.region, self.buckets[purpose], prefix, keys.access_key_id,
                          keys.secret_access_key, self.in_cluster)


def owner(purpose: str) -> str:
    return next(consumer for consumer, purposes in BUCKET_OWNERS.items() if purpose in purposes)


@dataclass(frozen=True)
class ScyllaEndpoint:
    hosts: list[str]  # CQL contact points
    port: int  # CQL (9042)
    datacenter: str  # for DC-aware load balancing in drivers
    keyspaces: list[str]
    replication_factor: int
    users: dict[str, Credentials]  # consumer -> its own role (keys: username, password), granted its keyspace
    namespace: str
    pod_labels: dict[str, str]  # what a consumer's egress NetworkPolicy selects
    ready: Sequence[pulumi.Resource] = ()


@dataclass(frozen=True)
class RedpandaEndpoint:
    brokers: list[str]  # host:port of the Kafka API (TLS)
    schema_registry: str  # https URL
    sasl_mechanism: str  # SCRAM-SHA-512
    users: dict[str, Credentials]  # consumer -> its own SASL user (keys: username, password)
    ca_secret: str  # Secret in `namespace` with ca.crt of the listeners' TLS (for the namespace's own use)
    # ClusterIssuer of the listeners' CA: a consumer in another namespace gets ca.crt in the Secret of a
    # cert-manager Certificate it requests from this issuer (never by reading `ca_secret`).
    ca_issuer: str
    namespace: str
    pod_labels: dict[str, str]
    ports: tuple[int, ...]  # every port a client uses (Kafka, schema registry, HTTP proxy)
    ready: Sequence[pulumi.Resource] = ()


@dataclass(frozen=True)
class ClickHouseEndpoint:
    host: str
    http_port: int  # 8123
    native_port: int  # 9000
    cluster: str  # the cluster name for ON CLUSTER / Distributed tables
    users: dict[str, Credentials]  # consumer -> its own user (keys: username, password), granted its database
    namespace: str
    pod_labels: dict[str, str]
    ready: Sequence[pulumi.Resource] = ()


@dataclass(frozen=True)
class DragonflyEndpoint:
    """One DragonflyDB instance: the ad services' (ACL users), with each platform consumer's own in `dedicated`."""

    host: str  # the primary (writes); replicas serve reads through `read_host`
    read_host: str
    port: int  # 6379 (Redis protocol)
    users: dict[str, Credentials]  # consumer -> its own login (keys: username, password)
    namespace: str
    pod_labels: dict[str, str]
    dedicated: dict[str, "DragonflyEndpoint"] = dataclasses.field(default_factory=dict)  # platform consumer -> its
    ready: Sequence[pulumi.Resource] = ()

    def serving(self, consumer: str) -> "DragonflyEndpoint":
        """The instance `consumer` connects to: its own, or the ad services' shared one (its ACL user)."""
        return self.dedicated.get(consumer, self)


@dataclass(frozen=True)
class Database:
    name: str
    owner: str
    credentials: Credentials  # keys: username, password (CNPG basic-auth Secret)
    ready: Sequence[pulumi.Resource] = ()  # it is applied on the running primary (components/data/postgres.py)


@dataclass(frozen=True)
class PostgresEndpoint:
    host: str  # read-write service (the primary)
    read_host: str  # read-only service (replicas)
    port: int
    databases: dict[str, Database]  # consumer (gitlab, airflow, ...) -> its database
    ca_secret: str  # Secret in `namespace` with the server CA (ca.crt): clients verify TLS
    namespace: str
    pod_labels: dict[str, str]
    ready: Sequence[pulumi.Resource] = ()  # the whole cluster: every instance ready, every database applied

    def serving(self, consumer: str) -> "PostgresEndpoint":
        """What `consumer` waits for: its own database on the primary, not the replicas still joining, nor the other
        consumers' databases. The Cluster's readiness (HA) stays in `ready`, which `pulumi up` still awaits."""
        database = self.databases.get(consumer)
        return dataclasses.replace(self, ready=database.ready) if database is not None else self


@dataclass(frozen=True)
class DrillsEndpoint:
    """The restore drills (drills.py): which stores are drilled and where their Jobs run (monitoring's dashboard)."""

    namespace: str
    stores: tuple[str, ...]
    backup_age: dict[str, str]  # store (or velero) -> PromQL: seconds since its last successful backup
    ready: Sequence[pulumi.Resource] = ()


@dataclass
class DataEndpoints:
    """What the DataPlane exposes: None for a disabled store."""

    object_storage: ObjectStoreEndpoint | None = None
    scylladb: ScyllaEndpoint | None = None
    redpanda: RedpandaEndpoint | None = None
    clickhouse: ClickHouseEndpoint | None = None
    dragonfly: DragonflyEndpoint | None = None
    postgres: PostgresEndpoint | None = None
    drills: DrillsEndpoint | None = None  # not a store: the drills of the stores above
