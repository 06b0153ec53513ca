"""PodMonitors for what the operator's exporter does not cover: Keeper's own Prometheus endpoint and the
backup sidecars' metrics (last backup's time, size and outcome). The servers' metrics come from the
operator's metrics exporter, scraped through the chart's ServiceMonitor (operator.py).

PodMonitor fields per the Prometheus Operator's API (monitoring.coreos.com/v1, v0.93): `port` names a
container port; `basicAuth` reads a Secret in the monitor's namespace.
"""

from __future__ import annotations

from typing import Any, Sequence

import pulumi

from components.data.clickhouse.topology import KEEPER_POD_LABELS, NAMESPACE, SERVER_POD_LABELS
from components.data.clickhouse.users import BACKUP_SECRET
from components.data.context import DataContext

INTERVAL = "30s"


def keeper_monitor() -> dict[str, Any]:
    return {"selector": {"matchLabels": dict(KEEPER_POD_LABELS)},
            "podMetricsEndpoints": [{"port": "metrics", "path": "/metrics", "interval": INTERVAL}]}


def backup_monitor() -> dict[str, Any]:
    """The sidecar's API protects /metrics with the same login as the API (pkg/server basicAuthMiddleware)."""
    login = {"username": {"name": BACKUP_SECRET, "key": "api-username"},
             "password": {"name": BACKUP_SECRET, "key": "api-password"}}
    return {"selector": {"matchLabels": dict(SERVER_POD_LABELS)},
            "podMetricsEndpoints": [{"port": "backup-api", "path": "/metrics", "interval": INTERVAL,
                                     "basicAuth": login}]}


def install(ctx: DataContext, backup: bool, depends_on: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    monitors = {"clickhouse-keeper": keeper_monitor(), **({"clickhouse-backup": backup_monitor()} if backup else {})}
    return [ctx.custom_resource(f"podmonitor-{name}", "monitoring.coreos.com/v1", "PodMonitor", name, NAMESPACE, spec,
                                ctx.labels(name, "metrics"), depends_on) for name, spec in monitors.items()]
