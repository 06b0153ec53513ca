"""The Prometheus Operator's CRDs, installed with the cluster services so that every later layer can
ship its ServiceMonitors/PodMonitors/PrometheusRules with it, before monitoring itself exists.

The platform layer's kube-prometheus-stack then runs with `crds.enabled: false` (one owner per CRD).
"""

from __future__ import annotations

from typing import Sequence

import pulumi

from components.charts import PROMETHEUS_OPERATOR_CRDS
from components.helm import release
from components.services.context import ServicesContext
from components.services.namespaces import NamespaceSpec, Namespaces


def namespaces(ctx: ServicesContext) -> list[NamespaceSpec]:
    return []  # cluster-scoped objects only; the release record lives in kube-system


def install(ctx: ServicesContext, spaces: Namespaces, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    # CRDs are never rolled back by Helm, and deleting them deletes every monitor: keep them on uninstall.
    return [release("prometheus-operator-crds", PROMETHEUS_OPERATOR_CRDS,
                    {"crds": {"annotations": {"helm.sh/resource-policy": "keep"}}}, ctx.opts(after))]
