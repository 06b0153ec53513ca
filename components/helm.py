"""Helm releases from the chart catalog, so every release is pinned the same way."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.charts import Chart


def release(name: str, chart: Chart, values: dict[str, Any], opts: pulumi.ResourceOptions,
            namespace: str | None = None, atomic: bool = True) -> k8s.helm.v3.Release:
    """`atomic` rolls a failed install back; off for releases whose rollback would do more harm (the CNI)."""
    return k8s.helm.v3.Release(
        name,
        name=name,
        chart=chart.chart,
        version=chart.version,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=chart.repo),
        namespace=namespace or chart.namespace,
        create_namespace=(namespace or chart.namespace) != "kube-system",
        values=values,
        atomic=atomic,
        cleanup_on_fail=True,
        max_history=10,
        timeout=900,
        opts=opts,
    )
