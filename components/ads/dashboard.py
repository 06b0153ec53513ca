"""A Grafana dashboard per ad service: request rate, errors, latency, CPU, memory and replicas.

Grafana's dashboard sidecar loads every ConfigMap labelled `grafana_dashboard: "1"` (components/platform/
context.py DASHBOARD_LABEL) from every namespace, so the dashboard lives next to its service. The request
panels read the RED metrics every ad service exports (README, "Ad services": `http_requests_total{status}`
and the histogram `http_request_duration_seconds`, the names the placeholder podinfo exports too,
pkg/api/http/metrics.go at 6.14.1); CPU and memory come from the kubelet's cAdvisor metrics and replicas
from kube-state-metrics, which the monitoring stack scrapes. The Prometheus target labels `namespace` and
`service` are those the Prometheus Operator sets for a ServiceMonitor's targets.
"""

from __future__ import annotations

import json
from typing import Any

from config.catalog import SERVICE_CONTAINER

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "5m"


def _panel(index: int, title: str, unit: str, targets: list[tuple[str, str]], kind: str = "timeseries") -> dict[str, Any]:
    width = 12
    return {
        "id": index + 1, "type": kind, "title": title, "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": width, "x": (index % 2) * width, "y": (index // 2) * 8},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
                    for i, (expr, legend) in enumerate(targets)],
    }


def panels(name: str, namespace: str) -> list[dict[str, Any]]:
    svc = f'namespace="{namespace}", service="{name}"'
    # Pods of a Deployment are <name>-<ReplicaSet hash>-<suffix>: exactly this service's, not a longer name's.
    pods = f'namespace="{namespace}", container="{SERVICE_CONTAINER}", pod=~"{name}-[a-z0-9]+-[a-z0-9]+"'
    requests = f"rate(http_requests_total{{{svc}}}[{RATE}])"
    latency = f"sum by (le) (rate(http_request_duration_seconds_bucket{{{svc}}}[{RATE}]))"
    return [
        _panel(0, "Requests per second by status", "reqps", [(f"sum by (status) ({requests})", "{{status}}")]),
        _panel(1, "Error ratio (5xx)", "percentunit", [(
            f'sum(rate(http_requests_total{{{svc}, status=~"5.."}}[{RATE}])) / sum({requests})', "5xx")]),
        _panel(2, "Latency", "s", [(f"histogram_quantile({q}, {latency})", f"p{int(q * 100)}")
                                   for q in (0.5, 0.9, 0.99)]),
        _panel(3, "CPU (cores) by pod", "short", [(
            f"sum by (pod) (rate(container_cpu_usage_seconds_total{{{pods}}}[{RATE}]))", "{{pod}}")]),
        _panel(4, "Memory (working set) by pod", "bytes", [(
            f"sum by (pod) (container_memory_working_set_bytes{{{pods}}})", "{{pod}}")]),
        _panel(5, "Replicas", "short", [
            (f'kube_deployment_status_replicas_available{{namespace="{namespace}", deployment="{name}"}}', "available"),
            (f'kube_horizontalpodautoscaler_status_desired_replicas{{namespace="{namespace}", '
             f'horizontalpodautoscaler="{name}"}}', "desired"),
            (f'kube_horizontalpodautoscaler_spec_max_replicas{{namespace="{namespace}", '
             f'horizontalpodautoscaler="{name}"}}', "max")]),
    ]


def dashboard(name: str, namespace: str) -> dict[str, Any]:
    return {
        "uid": f"ads-{name}"[:40],  # Grafana's limit on a dashboard uid
        "title": f"Ad service: {name}",
        "tags": ["adplatform", "ad-services"],
        "timezone": "utc",
        "schemaVersion": 39,
        "editable": False,  # provisioned: edits belong in this file
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus",
                                 "label": "Prometheus", "current": {}, "hide": 0}]},
        "panels": panels(name, namespace),
    }


def dashboard_json(name: str, namespace: str) -> str:
    return json.dumps(dashboard(name, namespace), indent=1, sort_keys=True)
