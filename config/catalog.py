"""Facts the configuration is validated against: pool roles and size classes.

Roles say what a pool is for; the host tuning profile, the taint and the number of nodes
the role's replication needs all follow from the role. Size classes are provider-neutral;
each provider maps every class to one of its server types (see providers/).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Role:
    description: str
    dedicated: bool  # tainted so that only the role's workloads (which tolerate it) land here
    database: bool  # host tuning and the static CPU manager for pinned, Guaranteed-QoS pods
    min_nodes: int  # nodes the role needs in a strict (production-grade) profile
    why: str  # the reason for min_nodes, quoted in validation errors


ROLES: dict[str, Role] = {
    "general": Role("platform and ad services (stateless and light stateful)", False, False, 2,
                    "every HA workload runs at least 2 replicas on distinct nodes"),
    "scylladb": Role("ScyllaDB only (vendor: dedicated nodes, CPU pinning, XFS)", True, True, 3,
                     "replication factor 3 puts one replica per rack and node"),
    "redpanda": Role("Redpanda brokers only (never shares nodes with ScyllaDB)", True, True, 3,
                     "topic replication factor 3 needs 3 brokers on distinct nodes"),
    "clickhouse": Role("ClickHouse servers and ClickHouse Keeper", True, True, 3,
                       "ClickHouse Keeper needs a quorum of 3"),
    "stateful": Role("PostgreSQL (CloudNativePG), DragonflyDB and object storage", True, True, 3,
                     "a 3-instance PostgreSQL cluster and 3-way object storage need 3 nodes"),
    "converged": Role("everything, databases spread 3-wide (compact profile)", False, True, 3,
                      "each database spreads its 3 replicas across distinct nodes"),
}

# Roles whose replicas the data plane places; a strict profile must give each of them enough
# nodes, either on a pool of that role or on converged pools.
DATABASE_ROLES = ("scylladb", "redpanda", "clickhouse", "stateful")
# The role whose nodes each data store runs on (dataPlane.<store> in the config).
STORE_ROLES = {"scylladb": "scylladb", "redpanda": "redpanda", "clickhouse": "clickhouse",
               "dragonfly": "stateful", "postgres": "stateful", "object_storage": "stateful"}
# Namespaces whose volumes hold live database files: Velero skips them (a file copy of a running
# database is not a consistent backup); their stores back up with their own tools (components/data).
# DragonflyDB's snapshot volumes and the object store's volumes are left to Velero.
LIVE_DATABASE_NAMESPACES = ("scylla", "scylla-manager", "redpanda", "clickhouse", "postgres")
# Where the platform layer's Prometheus runs: stores let it scrape their metrics ports.
MONITORING_NAMESPACE = "monitoring"


@dataclass(frozen=True)
class Size:
    vcpus: int
    memory_gb: int
    dedicated_cpu: bool


SIZES: dict[str, Size] = {
    "small": Size(2, 4, False),
    "medium": Size(4, 8, False),
    "dedicated-medium": Size(4, 16, True),
    "dedicated-large": Size(8, 32, True),
    "dedicated-xlarge": Size(16, 64, True),
    "dedicated-2xlarge": Size(32, 128, True),
}

# Providers implemented behind providers.get(); the config accepts exactly these.
PROVIDERS = ("hetzner", "aws", "gcp", "azure", "baremetal")

# Hosts under the stack's domain that the platform serves through the shared gateway. Without a
# DNS-01 provider each gets its own HTTPS listener and HTTP-01 certificate (HTTP-01 issues no
# wildcard); later layers route only hostnames listed here (config: clusterServices.gateway.hostnames).
# (Kubeflow Pipelines' UI has no login of its own: it is routed only behind the single sign-on's oauth2-proxy,
# components/platform/kubeflow.py; without SSO it is reached with kubectl port-forward.)
PLATFORM_HOSTNAMES = ("gitlab", "registry", "grafana", "airflow", "jupyter", "mlflow", "kubeflow", "ads", "rtb",
                      "api")

# Push-to-deploy (templates/gitlab-ci, components/platform/gitlab_runner.py, components/ads): GitLab CI jobs
# run in CI_NAMESPACE; deploy jobs run as DEPLOYER_SERVICE_ACCOUNT (KUBERNETES_SERVICE_ACCOUNT_OVERWRITE),
# which may only roll the Deployments of the team namespaces to a new image of their SERVICE_CONTAINER.
# Each stack's runner carries its environment as a tag, so `tags: [staging]` deploys to the staging cluster.
CI_NAMESPACE = "ci"
DEPLOYER_SERVICE_ACCOUNT = "deployer"
SERVICE_CONTAINER = "app"
ENVIRONMENTS = ("production", "staging")  # runner tags: production-grade profiles run "production"
