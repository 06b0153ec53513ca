"""The ad services scale beyond CPU: requests per second and a Redpanda consumer group's lag reach their HPAs
through prometheus-adapter, which serves exactly those metrics (issue 17).

The adapter's rules are read back from its Helm release and matched against each HPA the way the adapter
matches a request: the HPA's metric name against the rule's `name.as`, its namespace against the rule's series
query, its selector labels against the labels the query groups by; and the series the rules read against what
really exists (the image contract's counter, Redpanda's lag once its cluster config lists `consumer_lag`).
"""

from __future__ import annotations

import re

import pytest

from components.platform import metrics_adapter
from config.catalog import MONITORING_NAMESPACE
from tests import validators
from tests.netpol import PROMETHEUS_PODS, selects
from tests.stores import NETPOL, RELEASE
from tests.test_ads import HPA, obj
from tests.test_ads_config import only, problems_of
from tests.test_ads_variants import variant  # noqa: F401 (the fixture)
from tests.test_data_redpanda import spec as redpanda_spec
from tools import mockrun

NS = "kubernetes:core/v1:Namespace"
OVERRIDES = {"adServices": {"services": {
    "bidding": {"requestsPerSecond": "200"},
    "analytics-ingestion": {"consumerLag": {"group": "analytics-ingestion.events", "averageValue": "1000"}},
}}}


# test_plan_autoscaling's pool: the general pool autoscaling. The custom metrics change what the HPAs scale on, the
# autoscaled pool only the nodes, so one run carries both and serves both modules (the run cache shares it).
AUTOSCALED_BOUNDS = {"min": 5, "max": 10}


def scaled_production() -> mockrun.Run:
    """Production with OVERRIDES' custom metrics and the general pool autoscaling within AUTOSCALED_BOUNDS."""
    values, secret = mockrun.stack_config("production")
    values.update({f"adplatform:{k}": v for k, v in OVERRIDES.items()})
    values["adplatform:cluster"] = {**values.get("adplatform:cluster", {}), "pools": [
        {"name": "general", "role": "general", "autoscaling": AUTOSCALED_BOUNDS}]}
    return mockrun.run(values, secret, "production")


@pytest.fixture(scope="module")
def scaled():
    return scaled_production()


def adapter_values(run) -> dict:
    return run.named(metrics_adapter.RELEASE, RELEASE).inputs["values"]


def series_name(query: str) -> str:
    return query.split("{", 1)[0]


def series_matchers(query: str) -> dict[str, tuple[str, str]]:
    """label -> (operator, value) of a series selector such as metric{a=~"x|y",b!=""}."""
    body = query.split("{", 1)[1].rstrip("}")
    return {m[0]: (m[1], m[2]) for m in re.findall(r'(\w+)(=~|!=|=)"([^"]*)"', body)}


def serves_pods_metric(values: dict, name: str, namespace: str) -> bool:
    for rule in values["rules"]["custom"]:
        op, value = series_matchers(rule["seriesQuery"]).get("namespace", ("!=", ""))
        in_scope = re.fullmatch(value, namespace) if op == "=~" else (namespace == value if op == "=" else True)
        if rule["name"]["as"] == name and in_scope and rule["resources"]["overrides"]["pod"] == {"resource": "pod"}:
            return True
    return False


def serves_external_metric(values: dict, name: str, labels: dict[str, str]) -> bool:
    for rule in values["rules"]["external"]:
        grouped = re.search(r"by \(([^)]*)\)", rule["metricsQuery"]).group(1).split(",")
        if rule["name"]["as"] == name and set(labels) <= {g.strip() for g in grouped} \
                and rule["resources"].get("namespaced") is False:  # the series live in Redpanda's namespace
            return True
    return False


# --- the HPAs name what the adapter serves ----------------------------------------------------------------
def test_requests_per_second_reaches_the_hpa_as_a_metric_the_adapter_serves(scaled):
    metrics = obj(scaled, HPA, "bidding")["spec"]["metrics"]
    assert [m["type"] for m in metrics] == ["Resource", "Pods"]
    pods = metrics[1]["pods"]
    assert pods["target"] == {"type": "AverageValue", "averageValue": "200"}
    assert serves_pods_metric(adapter_values(scaled), pods["metric"]["name"], "ads")
    assert not serves_pods_metric(adapter_values(scaled), pods["metric"]["name"], "gitlab")  # team namespaces only
    # Services without the setting keep CPU alone.
    assert [m["type"] for m in obj(scaled, HPA, "ad-serving")["spec"]["metrics"]] == ["Resource"]


def test_the_hpas_with_custom_metrics_are_valid_kubernetes_objects(scaled):
    for svc in ("bidding", "analytics-ingestion"):  # Pods and External metric sources (autoscaling/v2 schema)
        validators.validate_kubernetes(HPA, validators.plain(obj(scaled, HPA, svc)))


def test_the_request_rate_is_computed_from_the_counter_the_services_expose(scaled):
    [rule] = adapter_values(scaled)["rules"]["custom"]
    assert series_name(rule["seriesQuery"]) == "http_requests_total"  # the image contract (docs/ad-services.md)
    assert re.fullmatch(rule["name"]["matches"], "http_requests_total")
    assert rule["metricsQuery"].startswith("sum(rate(<<.Series>>{<<.LabelMatchers>>}[")
    assert "by (<<.GroupBy>>)" in rule["metricsQuery"]  # one value per pod
    assert adapter_values(scaled)["rules"]["default"] is False  # not every *_total of every namespace


def test_consumer_lag_reaches_the_hpa_as_redpandas_own_metric(scaled):
    metrics = obj(scaled, HPA, "analytics-ingestion")["spec"]["metrics"]
    assert [m["type"] for m in metrics] == ["Resource", "External"]
    external = metrics[1]["external"]
    assert external["target"] == {"type": "AverageValue", "averageValue": "1000"}
    assert external["metric"]["selector"] == {"matchLabels": {"redpanda_group": "analytics-ingestion.events"}}
    assert serves_external_metric(adapter_values(scaled), external["metric"]["name"],
                                  external["metric"]["selector"]["matchLabels"])
    [rule] = adapter_values(scaled)["rules"]["external"]
    # Redpanda's public metric (docs: public-metrics-reference, consumer group metrics; label redpanda_group) ...
    assert series_name(rule["seriesQuery"]) == "redpanda_kafka_consumer_group_lag_sum"
    # ... which Redpanda publishes only when its cluster config lists consumer_lag.
    assert "consumer_lag" in redpanda_spec(scaled)["config"]["cluster"]["enable_consumer_group_metrics"]


# --- the adapter: HA, narrow, and only where monitoring is --------------------------------------------------
def test_the_adapter_is_ha_in_production_and_single_in_staging(scaled, staging):
    values = adapter_values(scaled)
    assert values["replicas"] == 2
    assert values["podDisruptionBudget"] == {"enabled": True, "maxUnavailable": 1}
    [spread] = values["topologySpreadConstraints"]
    assert spread["whenUnsatisfiable"] == "DoNotSchedule"
    assert spread["labelSelector"]["matchLabels"] == metrics_adapter.POD_LABELS
    single = adapter_values(staging)
    assert single["replicas"] == 1 and single["podDisruptionBudget"]["enabled"] is False


def test_the_adapter_serves_no_resource_metrics_and_verifies_its_certificate(scaled):
    values = adapter_values(scaled)
    assert "resource" not in values["rules"]  # K3s' metrics-server keeps metrics.k8s.io
    assert values["certManager"] == {"enabled": True}  # no insecureSkipTLSVerify on the APIServices
    assert values["rbac"] == {"create": False}


def test_the_adapters_rbac_reads_pods_and_namespaces_only(scaled):
    [reader] = [r for r in scaled.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")
                if r.inputs["metadata"]["name"] == "prometheus-adapter-reader"]
    assert reader.inputs["rules"] == [{"apiGroups": [""], "resources": ["pods", "namespaces"],
                                       "verbs": ["get", "list", "watch"]}]
    bindings = {r.inputs["roleRef"]["name"] for r in scaled.of_type(
        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding")
        if r.inputs["subjects"][0]["name"] == metrics_adapter.RELEASE}
    assert bindings == {"prometheus-adapter-reader", "system:auth-delegator"}


def test_the_adapters_network_reach(scaled):
    policies = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in scaled.of_type(NETPOL)
                if r.inputs["metadata"]["namespace"] == metrics_adapter.NAMESPACE}
    # In: the API server (node addresses) on the adapter's port, nothing else from outside.
    [webhook] = policies["allow-api-server-webhooks"]["ingress"]
    assert [p["port"] for p in webhook["ports"]] == [metrics_adapter.PORT]
    assert not [n for n in policies if n.startswith("allow-from-")]
    # Out: Prometheus' pods on 9090 only.
    [egress] = policies["allow-to-prometheus"]["egress"]
    [peer] = egress["to"]
    assert selects(peer["podSelector"], PROMETHEUS_PODS) and [p["port"] for p in egress["ports"]] == [9090]
    # Monitoring admits the adapter's pods there, and only them.
    admitted = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in scaled.of_type(NETPOL)
                if r.inputs["metadata"]["namespace"] == MONITORING_NAMESPACE}["allow-from-metrics-adapter"]
    [rule] = admitted["ingress"]
    assert rule["from"][0]["podSelector"]["matchLabels"] == metrics_adapter.POD_LABELS
    assert [p["port"] for p in rule["ports"]] == [9090]


def test_no_adapter_where_monitoring_is_off(variant):
    """test_ads_variants' run (the run cache shares it): production with monitoring off, the ad services on."""
    run = variant
    assert run.config["adplatform:platform"]["monitoring"]["enabled"] is False
    assert run.named("ad-services", "adplatform:ads:AdServices"), "the HPAs' layer is there, the adapter is not"
    assert not [r for r in run.of_type(RELEASE) if r.inputs["name"] == metrics_adapter.RELEASE]
    assert metrics_adapter.NAMESPACE not in {r.inputs["metadata"]["name"] for r in run.of_type(NS)}


# --- config: a custom metric needs what serves it ---------------------------------------------------------
def test_a_custom_metric_without_monitoring_is_refused_naming_the_key():
    off = {"platform": {"monitoring": {"enabled": False}}}
    found = problems_of(**off, adServices={"services": {"bidding": {"requestsPerSecond": "200"}}})
    assert "needs platform.monitoring" in only(found, "adServices.services.bidding.requestsPerSecond")
    found = problems_of(**off, adServices={"services": {"analytics-ingestion": {
        "consumerLag": {"group": "ingest", "averageValue": "1000"}}}})
    assert "needs platform.monitoring" in only(found, "adServices.services.analytics-ingestion.consumerLag")
    # With monitoring on (the profile's default) both are accepted: the `scaled` run above is that config.


def test_consumer_lag_needs_redpanda_and_a_label_safe_group():
    found = problems_of(adServices={"services": {"reporting": {"consumerLag": {"group": "r", "averageValue": "10"}}}})
    assert "needs 'redpanda' in the service's stores" in only(found, "adServices.services.reporting.consumerLag")
    found = problems_of(adServices={"services": {"analytics-ingestion": {
        "consumerLag": {"group": "bad group!", "averageValue": "10"}}}})
    key = "adServices.services.analytics-ingestion.consumerLag.group"
    assert "usable as a Kubernetes label value" in only(found, key)
    # Its Redpanda user may join only the service's own groups (`<service>.`): another name is refused to it, or is
    # another service's lag.
    for group in ("analytics-ingestion", "bidding.events", "analytics-ingestion-v2.events"):
        found = problems_of(adServices={"services": {"analytics-ingestion": {
            "consumerLag": {"group": group, "averageValue": "10"}}}})
        assert "must start with 'analytics-ingestion.'" in only(found, key), group
    found = problems_of(adServices={"services": {"bidding": {"podsMetric": {"name": "x", "averageValue": "1"}}}})
    assert "requestsPerSecond" in only(found, "adServices.services.bidding")  # the old key names its successors


# The keys of prometheus-adapter 5.3.0's values.yaml (prometheus-community/helm-charts tag prometheus-adapter-5.3.0)
# that our values set, with the nested keys read there: a key the chart does not read would be silently ignored.
CHART_KEYS = {"replicas": None, "prometheus": {"url", "port", "path"}, "listenPort": None,
              "rules": {"default", "custom", "existing", "external", "resource"}, "rbac": {"create"},
              "serviceAccount": {"create"}, "certManager": {"enabled"}, "podSecurityContext": None,
              "securityContext": None, "resources": None, "topologySpreadConstraints": None,
              "podDisruptionBudget": {"enabled", "minAvailable", "maxUnavailable", "unhealthyPodEvictionPolicy"}}


def test_the_adapter_values_are_keys_the_chart_reads(scaled):
    values = adapter_values(scaled)
    assert set(values) <= set(CHART_KEYS)
    for key, nested in CHART_KEYS.items():
        if nested is not None and key in values:
            assert set(values[key]) <= nested, key
