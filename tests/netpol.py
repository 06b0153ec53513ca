"""What the NetworkPolicy tests share: a label-selector matcher and who, in the monitoring namespace, is admitted.

The pod labels are written out here rather than imported from the program: they are what the pods really carry
(prometheus-operator labels the Prometheus StatefulSet's pods app.kubernetes.io/name=prometheus; the grafana
chart's selectorLabels give app.kubernetes.io/name=grafana), so a selector that drifts from them fails a test.
"""

from __future__ import annotations

from typing import Any

PROMETHEUS_PODS = {"app.kubernetes.io/name": "prometheus"}
GRAFANA_PODS = {"app.kubernetes.io/name": "grafana"}
# The one peer a metrics port admits: Prometheus' pods, not the rest of the monitoring namespace (Grafana).
PROMETHEUS_PEER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                   "podSelector": {"matchLabels": PROMETHEUS_PODS}}


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector against labels (an empty selector selects everything)."""
    selector = selector or {}
    assert set(selector) <= {"matchLabels", "matchExpressions"}, f"not a label selector: {selector}"
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        value, present = labels.get(expr["key"]), expr["key"] in labels
        ok = {"In": present and value in expr.get("values", []),
              "NotIn": not present or value not in expr.get("values", []),
              "Exists": present, "DoesNotExist": not present}[expr["operator"]]
        if not ok:
            return False
    return True
