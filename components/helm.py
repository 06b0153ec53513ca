"""Helm releases from the chart catalog, so every release is pinned the same way."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.charts import Chart


def release(name: str, chart: Chart, values: dict[str, Any], opts: pulumi.ResourceOptions,
            namespace: str | None = None, atomic: bool = True,
            create_namespace: bool | None = None, timeout: int = 900) -> k8s.helm.v3.Release:
    """`atomic` rolls a failed install back; off for releases whose rollback would do more harm (the CNI).

    `timeout`: seconds Helm waits for the release's workloads to be ready (Pulumi's `timeout`); longer only for
    a release that also waits on something it does not create (GitLab: its database).

    `create_namespace` False when the namespace is our own object (labels, policies): see
    components/services/namespaces.py. By default Helm creates any namespace but kube-system.
    """
    ns = namespace or chart.namespace
    # An OCI registry is no chart repository: Helm takes the chart as `oci://<registry path>/<chart>`
    # and no repository options (pulumi-kubernetes Release docs, "OCI registries").
    oci = chart.repo.startswith("oci://")
    return k8s.helm.v3.Release(
        name,
        name=name,
        chart=f"{chart.repo.rstrip('/')}/{chart.chart}" if oci else chart.chart,
        version=chart.version,
        repository_opts=None if oci else k8s.helm.v3.RepositoryOptsArgs(repo=chart.repo),
        namespace=ns,
        create_namespace=ns != "kube-system" if create_namespace is None else create_namespace,
        values=values,
        atomic=atomic,
        cleanup_on_fail=True,
        max_history=10,
        timeout=timeout,
        opts=opts,
    )
