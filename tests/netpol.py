"""What the NetworkPolicy tests share: a label-selector matcher and who, in the monitoring namespace, is admitted.

The pod labels are written out here rather than imported from the program: they are what the pods really carry
(prometheus-operator labels the Prometheus StatefulSet's pods app.kubernetes.io/name=prometheus; the grafana
chart's selectorLabels give app.kubernetes.io/name=grafana), so a selector that drifts from them fails a test.
"""

from __future__ import annotations

from typing import Any, Iterable

PROMETHEUS_PODS = {"app.kubernetes.io/name": "prometheus"}
GRAFANA_PODS = {"app.kubernetes.io/name": "grafana"}
# prometheus-operator v0.93 pkg/alertmanager/operator.go makeSelectorLabels, for the chart's Alertmanager CR.
ALERTMANAGER_PODS = {"app.kubernetes.io/name": "alertmanager", "app.kubernetes.io/managed-by": "prometheus-operator",
                     "app.kubernetes.io/instance": "kube-prometheus-stack-alertmanager",
                     "alertmanager": "kube-prometheus-stack-alertmanager"}
# kube-prometheus-stack 88.5.3 _helpers.tpl kube-prometheus-stack.prometheus-operator.labels.
OPERATOR_PODS = {"app": "kube-prometheus-stack-operator", "release": "kube-prometheus-stack",
                 "app.kubernetes.io/name": "kube-prometheus-stack-prometheus-operator",
                 "app.kubernetes.io/component": "prometheus-operator"}
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


def internet_ports(specs: Iterable[dict[str, Any]], pods: dict[str, str]) -> set[int | str]:
    """The TCP ports on which these NetworkPolicy specs let pods labelled `pods` reach any public address
    (a rule to 0.0.0.0/0, or to anywhere); "any" for such a rule without ports."""
    found: set[int | str] = set()
    for spec in specs:
        if "Egress" not in spec.get("policyTypes", ()) or not selects(spec["podSelector"], pods):
            continue
        for rule in spec.get("egress", []):
            if "to" in rule and not any(peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0" for peer in rule["to"]):
                continue
            found |= {p["port"] for p in rule["ports"]} if rule.get("ports") else {"any"}
    return found


def namespace_policies(run: Any, namespace: str) -> list[dict[str, Any]]:
    """The specs of every NetworkPolicy a run renders in `namespace`."""
    return [r.inputs["spec"] for r in run.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
            if r.inputs["metadata"]["namespace"] == namespace]
