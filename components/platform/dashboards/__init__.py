"""Our own small Grafana dashboards for the data stores, as data: one per store, loaded by Grafana's sidecar.

Why our own rather than grafana.com imports: they load offline (Grafana needs no egress to grafana.com),
they query the metric names and labels our monitors really produce, and a chart or vendor update cannot
change them under us. Each dashboard has the same first row for every store (CPU, memory, volume use,
restarts: from cAdvisor, the kubelet and kube-state-metrics, so it works even when a store's own exporter is
down) and then a few panels from the store's own metrics, with names as each project exports them:

- ScyllaDB: scylla_* on 9180 (ScyllaDB's metrics reference; latency histograms in microseconds);
- Redpanda: redpanda_* of /public_metrics (Redpanda's public metrics reference);
- ClickHouse: chi_clickhouse_* of the Altinity operator's exporter (its grafana-dashboard/ JSON), which
  labels each server `hostname` and re-labels its own `namespace` as `exported_namespace`;
- DragonflyDB: dragonfly_* of the admin port's /metrics;
- PostgreSQL: cnpg_* of CloudNativePG's instance exporter (default monitoring queries);
- SeaweedFS: SeaweedFS_* (weed/stats/metrics.go of the seaweedfs repository).

`namespace` is the namespace of the scraped pod (the Prometheus Operator's target label); ClickHouse's
server metrics come through the operator's exporter in another namespace, so its queries select by metric
name only (one ClickHouse installation per cluster).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

PROMETHEUS_UID = "prometheus"  # the default datasource's uid (monitoring.py provisions it)
DATASOURCE = {"type": "prometheus", "uid": PROMETHEUS_UID}
FOLDER = "Data stores"
RATE = "$__rate_interval"  # Grafana's window for rate(): at least four scrape intervals


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"  # Grafana unit id
    description: str = ""


@dataclass(frozen=True)
class StoreDashboard:
    uid: str
    title: str
    panels: tuple[Panel, ...] = field(default_factory=tuple)


def _q(expr: str, legend: str = "") -> tuple[Query, ...]:
    return (Query(expr, legend),)


def pod_panels(namespace: str) -> tuple[Panel, ...]:
    """What every store's pods use, whatever the store exports."""
    ns = f'namespace="{namespace}"'
    return (
        Panel("CPU (cores)", _q(
            f'sum by (pod) (rate(container_cpu_usage_seconds_total{{{ns}, container!=""}}[{RATE}]))', "{{pod}}")),
        Panel("Memory (working set)", _q(f'sum by (pod) (container_memory_working_set_bytes{{{ns}, container!=""}})',
                                         "{{pod}}"), "bytes",
              "What the kernel counts against the memory limit."),
        Panel("Volume use", _q(f"max by (persistentvolumeclaim) (kubelet_volume_stats_used_bytes{{{ns}}} / "
                               f"kubelet_volume_stats_capacity_bytes{{{ns}}})", "{{persistentvolumeclaim}}"),
              "percentunit", "Share of each volume in use: grow the volume (storageSize) before it fills."),
        Panel("Container restarts (1h)", _q(
            f"sum by (pod) (increase(kube_pod_container_status_restarts_total{{{ns}}}[1h]))", "{{pod}}")),
    )


def _histogram_p99(metric: str, selector: str, by: str) -> str:
    return f"histogram_quantile(0.99, sum by (le, {by}) (rate({metric}_bucket{{{selector}}}[{RATE}])))"


def scylladb(namespace: str) -> StoreDashboard:
    ns = f'namespace="{namespace}"'
    return StoreDashboard("adp-scylladb", "ScyllaDB", (
        Panel("CQL requests/s", _q(f"sum by (instance) (rate(scylla_transport_requests_served{{{ns}}}[{RATE}]))",
                                   "{{instance}}"), "reqps"),
        Panel("Coordinator latency p99", (
            Query(_histogram_p99("scylla_storage_proxy_coordinator_read_latency", ns, "instance"), "read {{instance}}"),
            Query(_histogram_p99("scylla_storage_proxy_coordinator_write_latency", ns, "instance"),
                  "write {{instance}}"),
        ), "µs"),
        Panel("Reactor utilization", _q(f"avg by (instance) (scylla_reactor_utilization{{{ns}}})", "{{instance}}"),
              "percent", "Busy share of the shards' reactors: near 100 % the node is CPU bound."),
        Panel("Row cache hit ratio", _q(
            f"sum by (instance) (rate(scylla_cache_row_hits{{{ns}}}[{RATE}])) / (sum by (instance) "
            f"(rate(scylla_cache_row_hits{{{ns}}}[{RATE}])) + sum by (instance) "
            f"(rate(scylla_cache_row_misses{{{ns}}}[{RATE}])))", "{{instance}}"), "percentunit"),
        Panel("Compactions running", _q(f"sum by (instance) (scylla_compaction_manager_compactions{{{ns}}})",
                                        "{{instance}}")),
    ))


def redpanda(namespace: str) -> StoreDashboard:
    ns = f'namespace="{namespace}"'
    return StoreDashboard("adp-redpanda", "Redpanda", (
        Panel("Produce / consume throughput", _q(
            f"sum by (redpanda_request) (rate(redpanda_kafka_request_bytes_total{{{ns}}}[{RATE}]))",
            "{{redpanda_request}}"), "Bps"),
        Panel("Kafka request latency p99", _q(
            _histogram_p99("redpanda_kafka_request_latency_seconds", ns, "redpanda_request"), "{{redpanda_request}}"),
            "s"),
        Panel("Under-replicated replicas", _q(f"sum(redpanda_kafka_under_replicated_replicas{{{ns}}})", "replicas"),
              description="Replicas behind their leader: above 0 for long, a broker is slow or gone."),
        Panel("Unavailable partitions", _q(f"max(redpanda_cluster_unavailable_partitions{{{ns}}})", "partitions"),
              description="Partitions without a leader: producers to them fail."),
    ))


def clickhouse(namespace: str) -> StoreDashboard:
    return StoreDashboard("adp-clickhouse", "ClickHouse", (
        Panel("Queries/s", (
            Query(f"sum by (hostname) (rate(chi_clickhouse_event_Query[{RATE}]))", "all {{hostname}}"),
            Query(f"sum by (hostname) (rate(chi_clickhouse_event_FailedQuery[{RATE}]))", "failed {{hostname}}"),
        ), "qps"),
        Panel("Inserted rows/s", _q(f"sum by (hostname) (rate(chi_clickhouse_event_InsertedRows[{RATE}]))",
                                    "{{hostname}}"), "rowsps"),
        Panel("Memory tracked", _q("max by (hostname) (chi_clickhouse_metric_MemoryTracking)", "{{hostname}}"),
              "bytes", "Memory ClickHouse accounts for queries, merges and caches."),
        Panel("Replication delay", _q("max by (hostname) (chi_clickhouse_metric_ReplicasMaxAbsoluteDelay)",
                                      "{{hostname}}"), "s"),
        Panel("Read-only replicas", _q("sum(chi_clickhouse_metric_ReadonlyReplica)", "replicas"),
              description="Replicated tables that lost Keeper: inserts into them fail."),
    ))


def dragonfly(namespace: str) -> StoreDashboard:
    ns = f'namespace="{namespace}"'
    return StoreDashboard("adp-dragonfly", "DragonflyDB", (
        Panel("Commands/s", _q(f"sum by (pod) (rate(dragonfly_commands_processed_total{{{ns}}}[{RATE}]))", "{{pod}}"),
              "ops"),
        Panel("Memory used / maxmemory", (
            Query(f"max by (pod) (dragonfly_memory_used_bytes{{{ns}}})", "used {{pod}}"),
            Query(f"max by (pod) (dragonfly_memory_max_bytes{{{ns}}})", "max {{pod}}"),
        ), "bytes"),
        Panel("Connected clients", _q(f"sum by (pod) (dragonfly_connected_clients{{{ns}}})", "{{pod}}")),
        Panel("Keyspace hit ratio", _q(
            f"sum by (pod) (rate(dragonfly_keyspace_hits_total{{{ns}}}[{RATE}])) / (sum by (pod) "
            f"(rate(dragonfly_keyspace_hits_total{{{ns}}}[{RATE}])) + sum by (pod) "
            f"(rate(dragonfly_keyspace_misses_total{{{ns}}}[{RATE}])))", "{{pod}}"), "percentunit"),
    ))


def postgres(namespace: str) -> StoreDashboard:
    ns = f'namespace="{namespace}"'
    return StoreDashboard("adp-postgres", "PostgreSQL (CloudNativePG)", (
        Panel("Exporter up", _q(f"min by (pod) (cnpg_collector_up{{{ns}}})", "{{pod}}"),
              description="1 while the instance answers its exporter's queries."),
        Panel("Connections", _q(f"sum by (pod, state) (cnpg_backends_total{{{ns}}})", "{{pod}} {{state}}")),
        Panel("Transactions/s", (
            Query(f"sum by (datname) (rate(cnpg_pg_stat_database_xact_commit{{{ns}}}[{RATE}]))", "commit {{datname}}"),
            Query(f"sum by (datname) (rate(cnpg_pg_stat_database_xact_rollback{{{ns}}}[{RATE}]))",
                  "rollback {{datname}}"),
        ), "ops"),
        Panel("Database size", _q(f"max by (datname) (cnpg_pg_database_size_bytes{{{ns}}})", "{{datname}}"), "bytes"),
        Panel("Replication lag", _q(f"max by (pod) (cnpg_pg_replication_lag{{{ns}}})", "{{pod}}"), "s"),
    ))


def seaweedfs(namespace: str) -> StoreDashboard:
    ns = f'namespace="{namespace}"'
    return StoreDashboard("adp-seaweedfs", "SeaweedFS (object storage)", (
        Panel("S3 requests/s", (
            Query(f"sum by (type) (rate(SeaweedFS_s3_request_total{{{ns}}}[{RATE}]))", "{{type}}"),
            Query(f'sum by (type) (rate(SeaweedFS_s3_request_total{{{ns}, code=~"5.."}}[{RATE}]))', "5xx {{type}}"),
        ), "reqps"),
        Panel("S3 latency p99", _q(_histogram_p99("SeaweedFS_s3_request_seconds", ns, "type"), "{{type}}"), "s"),
        Panel("Data on volume servers", _q(f"sum by (pod) (SeaweedFS_volumeServer_total_disk_size{{{ns}}})",
                                           "{{pod}}"), "bytes"),
        Panel("Volumes", _q(f"sum by (pod) (SeaweedFS_volumeServer_volumes{{{ns}}})", "{{pod}}")),
    ))


# DataEndpoints attribute -> the dashboard of that store, given the namespace its pods run in.
STORES = {"scylladb": scylladb, "redpanda": redpanda, "clickhouse": clickhouse, "dragonfly": dragonfly,
          "postgres": postgres, "object_storage": seaweedfs}

PANEL_HEIGHT, PANEL_WIDTH, COLUMNS = 8, 12, 2


def _panel(panel: Panel, index: int) -> dict[str, Any]:
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": PANEL_HEIGHT, "w": PANEL_WIDTH, "x": (index % COLUMNS) * PANEL_WIDTH,
                    "y": (index // COLUMNS) * PANEL_HEIGHT},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": [{"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": q.expr, "legendFormat": q.legend}
                    for i, q in enumerate(panel.queries)],
    }


def drills(namespace: str, backup_age: dict[str, str]) -> StoreDashboard:
    """The restore drills (components/data/drills.py): kube-state-metrics' CronJob and Job series of the drills'
    namespace, and each store's backup age (`backup_age`: store -> PromQL of the seconds since its last backup,
    the same expressions the BackupStale alerts use)."""
    ns = f'namespace="{namespace}"'
    return StoreDashboard("adp-restore-drills", "Restore drills", (
        Panel("Since the last successful drill", _q(
            f"time() - kube_cronjob_status_last_successful_time{{{ns}}}", "{{cronjob}}"), "s",
            "Alerts (RestoreDrillStale) after two schedule periods."),
        Panel("Restore drill duration", _q(
            f"(kube_job_status_completion_time{{{ns}}} - kube_job_status_start_time{{{ns}}}) * on (namespace, job_name) "
            f'group_left (owner_name) kube_job_owner{{{ns}, owner_kind="CronJob"}}', "{{owner_name}}"), "s",
            "Restore, checks and teardown of each finished drill: the measured restore time (RTO) of its store."),
        Panel("Failed drill Jobs kept", _q(
            f"sum by (owner_name) (kube_job_status_failed{{{ns}}} * on (namespace, job_name) group_left (owner_name) "
            f'kube_job_owner{{{ns}, owner_kind="CronJob"}})', "{{owner_name}}"),
            description="Failed drill Jobs still kept (the last one per store): kubectl -n dr-drills logs job/<name>."),
        Panel("Backup age", tuple(Query(expr, store) for store, expr in sorted(backup_age.items())), "s",
              "Seconds since each store's last successful backup (alerts, BackupStale, after two backup periods)."),
    ))


def model(store: str, namespace: str) -> dict[str, Any]:
    """The Grafana dashboard JSON model of `store` (a STORES key) whose pods run in `namespace`."""
    board = STORES[store](namespace)
    return _model(board, (*pod_panels(namespace), *board.panels))


def _model(board: StoreDashboard, panels: tuple[Panel, ...]) -> dict[str, Any]:
    return {
        "uid": board.uid,
        "title": board.title,
        "tags": ["adplatform", "data-plane"],
        "timezone": "utc",
        "editable": False,  # provisioned: changes belong in this file
        "refresh": "1m",
        "time": {"from": "now-6h", "to": "now"},
        "schemaVersion": 39,
        "version": 1,
        "panels": [_panel(p, i) for i, p in enumerate(panels)],
    }


def render(store: str, namespace: str) -> str:
    return _json(model(store, namespace))


def render_drills(namespace: str, backup_age: dict[str, str]) -> str:
    board = drills(namespace, backup_age)
    return _json(_model(board, board.panels))


def _json(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=1, sort_keys=True, ensure_ascii=False)


__all__ = ["DATASOURCE", "FOLDER", "PROMETHEUS_UID", "STORES", "drills", "model", "pod_panels", "render",
           "render_drills"]
