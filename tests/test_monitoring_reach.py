"""What the monitoring namespace (Prometheus and the internet-facing Grafana) may reach (issue 20 finding 7).

Every NetworkPolicy of the recorded production run is evaluated against the monitoring namespace's real labels:
a rule that admits it must name Prometheus' or Grafana's pods and ports; Grafana only reaches the datasources
its provisioned URLs point at; the platform layer's client admissions leave monitoring out.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from components.services.namespaces import (GRAFANA_POD_LABELS, PROMETHEUS_POD_LABELS, NamespaceSpec, Peer,
                                           policies, prometheus_peer)
from config.catalog import MONITORING_NAMESPACE
from tests.netpol import selects

NS = "kubernetes:core/v1:Namespace"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
MONITOR_TYPES = ("kubernetes:monitoring.coreos.com/v1:PodMonitor", "kubernetes:monitoring.coreos.com/v1:ServiceMonitor")


def monitoring_admissions(run) -> list[tuple[str, str, dict[str, Any], tuple[int, ...]]]:
    """(target namespace, policy, the admitted pods' selector, ports) for every ingress rule that admits pods of
    the monitoring namespace."""
    monitoring = next(r for r in run.of_type(NS) if r.inputs["metadata"]["name"] == MONITORING_NAMESPACE)
    labels = {**monitoring.inputs["metadata"].get("labels", {}), "kubernetes.io/metadata.name": MONITORING_NAMESPACE}
    found = []
    for policy in run.of_type(NETPOL):
        meta, spec = policy.inputs["metadata"], policy.inputs["spec"]
        if meta["namespace"] == MONITORING_NAMESPACE:
            continue  # inside the namespace
        for rule in spec.get("ingress", []):
            for peer in rule.get("from", []):
                if "ipBlock" in peer:
                    continue
                if "namespaceSelector" not in peer:
                    continue  # pods of the policy's own namespace
                if selects(peer["namespaceSelector"], labels):
                    ports = tuple(p["port"] for p in rule.get("ports", []))
                    found.append((meta["namespace"], meta["name"], peer.get("podSelector", {}), ports))
    return found


def monitor_ports(run) -> dict[str, set[int | str]]:
    """Target namespace -> the ports its PodMonitors/ServiceMonitors in the run scrape (numbers or names)."""
    ports: dict[str, set[int | str]] = {}
    for kind in MONITOR_TYPES:
        for monitor in run.of_type(kind):
            spec = monitor.inputs["spec"]
            namespaces = spec.get("namespaceSelector", {}).get("matchNames") or [monitor.inputs["metadata"]["namespace"]]
            for endpoint in spec.get("podMetricsEndpoints", []) + spec.get("endpoints", []):
                for key in ("port", "targetPort", "portNumber"):
                    if key in endpoint:
                        for ns in namespaces:
                            ports.setdefault(ns, set()).add(endpoint[key])
    return ports


def grafana_datasource_ports(run) -> dict[str, set[int]]:
    """Namespace -> ports Grafana's provisioned datasources query (from the release's values)."""
    release = run.named("kube-prometheus-stack", "kubernetes:helm.sh/v3:Release")
    grafana = release.inputs["values"]["grafana"]
    sources = grafana.get("additionalDataSources", []) + grafana.get("datasources", {}).get(
        "datasources.yaml", {}).get("datasources", [])
    ports: dict[str, set[int]] = {}
    for source in sources:
        url = urlsplit(source["url"])
        namespace = url.hostname.split(".")[1]  # <service>.<namespace>.svc.<domain>
        ports.setdefault(namespace, set()).add(url.port)
    return ports


@pytest.fixture(scope="module")
def admissions(production):
    return monitoring_admissions(production)


def test_every_admission_of_monitoring_names_prometheus_or_grafana_pods_and_ports(admissions):
    assert admissions, "the production run admits Prometheus somewhere (the walk found nothing)"
    loose = [(ns, name, pods, ports) for ns, name, pods, ports in admissions
             if pods not in ({"matchLabels": PROMETHEUS_POD_LABELS}, {"matchLabels": GRAFANA_POD_LABELS}) or not ports]
    assert not loose, f"rules admitting the whole monitoring namespace (or every port): {loose}"


def test_grafana_reaches_only_its_datasources(production, admissions):
    datasources = grafana_datasource_ports(production)
    grafana = {(ns, ports) for ns, _, pods, ports in admissions if pods == {"matchLabels": GRAFANA_POD_LABELS}}
    assert grafana, "Grafana is admitted where its Loki/Tempo datasources run"
    for ns, ports in grafana:
        assert set(ports) <= datasources.get(ns, set()), f"Grafana admitted to {ns} on {ports}: no datasource there"
    # Every datasource outside monitoring is reachable (else Grafana's Explore breaks).
    admitted = {ns for ns, _ in grafana}
    assert {ns for ns in datasources if ns != MONITORING_NAMESPACE} <= admitted


def test_every_namespace_prometheus_scrapes_admits_prometheus(production, admissions):
    """Narrowing to Prometheus' pods must not lose a scrape: each namespace our monitors in the run scrape
    admits Prometheus. (Their ports are names resolved by charts the run does not render, so the port numbers
    are checked per module in the tests of each layer, not derived here.)"""
    # kube-system: Cilium serves its metrics on the hosts, reached through monitoring's node egress.
    scraped = set(monitor_ports(production)) - {MONITORING_NAMESPACE, "kube-system"}
    admitted = {ns for ns, _, pods, _ in admissions if pods == {"matchLabels": PROMETHEUS_POD_LABELS}}
    assert scraped and scraped <= admitted, f"scraped but Prometheus not admitted: {scraped - admitted}"


@pytest.mark.parametrize("namespace, port", [("redpanda", 9644), ("openbao", 8200), ("kubeflow", 8888)])
def test_admin_and_api_ports_are_reached_by_prometheus_alone(admissions, namespace, port):
    """Redpanda's Admin API, OpenBao's API and Kubeflow Pipelines' API serve their metrics on the same port: only
    Prometheus' pods are admitted there; Grafana (internet-facing) is not."""
    who = [pods for ns, _, pods, ports in admissions if ns == namespace and port in ports]
    assert who == [{"matchLabels": PROMETHEUS_POD_LABELS}]


def test_peer_renders_the_pod_selector_with_the_namespace():
    rendered = policies(NamespaceSpec("x", "restricted", "why", ingress_from=(prometheus_peer((9090,)),)), "10.0.0.0/16")
    assert rendered["allow-from-monitoring"]["ingress"] == [{
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": MONITORING_NAMESPACE}},
                  "podSelector": {"matchLabels": PROMETHEUS_POD_LABELS}}],
        "ports": [{"protocol": "TCP", "port": 9090}]}]


def test_two_peers_with_one_policy_name_are_refused():
    spec = NamespaceSpec("x", "restricted", "why", ingress_from=(Peer("monitoring", (1,)), Peer("monitoring", (2,))))
    with pytest.raises(ValueError, match="allow-from-monitoring"):
        policies(spec, "10.0.0.0/16")


def test_a_prometheus_peer_without_ports_is_refused():
    with pytest.raises(ValueError, match="metrics ports"):
        prometheus_peer(())
