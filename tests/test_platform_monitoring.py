"""Monitoring: kube-prometheus-stack's Prometheus (HA, storage, retention, selectors), Alertmanager (replicas,
configuration from config with secret receivers), Grafana (datasources following logs/traces, admin Secret,
route, dashboards), node-exporter on every node, K3s specifics, network policies and object schemas."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
import yaml

from components import charts
from components.platform import dashboards, monitoring
from components.platform.context import (ALERTMANAGER_URL, DASHBOARD_LABEL, LOKI_URL, PROMETHEUS_URL,
                                         TEMPO_URL, PlatformContext)
from components.services import namespaces
from components.services.namespaces import prometheus_peer
from config.model import CONTROL_PLANE_TAINT
from config.platform import AlertReceiver, Alerting, Logs, Platform, Traces
from tests import validators, variants
from tests.variants import PAGER_KEY, SLACK_URL
from tests.conftest import SECRET_KEYS, base_raw
from tests.netpol import ALERTMANAGER_PODS, GRAFANA_PODS, OPERATOR_PODS, PROMETHEUS_PODS, internet_ports, selects
from tests.stores import (RELEASE, SECRET, chart_of, config_problems, policy, ports, stack_config, string_data,
                          tolerates)
from tools.mockrun import Run

NS = "kubernetes:core/v1:Namespace"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"
HTTPROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
CNP = "kubernetes:cilium.io/v2:CiliumNetworkPolicy"
PASSWORD = "random:index/randomPassword:RandomPassword"
STORE_KEYS = {"scylladb": "scylladb", "redpanda": "redpanda", "clickhouse": "clickhouse", "dragonfly": "dragonfly",
              "postgres": "postgres", "object_storage": "objectStorage"}


@pytest.fixture(scope="module")
def quiet() -> Run:
    """Production without logs, traces, ScyllaDB and ClickHouse, with two alert receivers and their secrets
    (the ad services, which use those stores, are off; a variant shared with test_platform_dataeng)."""
    return variants.production_quiet()


def values(run: Run) -> dict:
    return validators.plain(run.named(monitoring.RELEASE, RELEASE).inputs["values"])


def grafana(run: Run) -> dict:
    return values(run)["grafana"]


def datasources(run: Run) -> dict[str, dict]:
    return {d["name"]: d for d in grafana(run)["additionalDataSources"]}


def alertmanager_config(run: Run) -> dict:
    secret = run.named("alertmanager-config", SECRET)
    assert secret.inputs["metadata"] == {"name": "alertmanager-config", "namespace": "monitoring",
                                         "labels": secret.inputs["metadata"]["labels"]}
    return yaml.safe_load(string_data(secret)["alertmanager.yaml"])


def visible(run: Run) -> str:
    """Every input of every resource as the state shows it without decryption (secrets as [secret])."""
    return json.dumps([r.inputs for r in run.resources], default=repr)


# --- the chart -------------------------------------------------------------------------------------------
def test_the_chart_is_the_pinned_kube_prometheus_stack_without_its_crds(production):
    assert chart_of(production, monitoring.RELEASE) == (
        "kube-prometheus-stack", "88.5.3", "https://prometheus-community.github.io/helm-charts", "monitoring", False)
    assert charts.CHARTS["kube-prometheus-stack"] is charts.KUBE_PROMETHEUS_STACK
    # The services layer installs the operator's CRDs (prometheus-operator-crds 31.0.1 = operator v0.93.1).
    assert values(production)["crds"] == {"enabled": False}
    assert production.named("prometheus-operator-crds", RELEASE).inputs["version"] == "31.0.1"


def test_the_release_is_protected_in_production_only(production, staging):
    assert production.named(monitoring.RELEASE, RELEASE).protect is True
    assert staging.named(monitoring.RELEASE, RELEASE).protect is False


# --- Prometheus ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("stack", "replicas", "retention", "storage", "cap"), [
    ("production", 2, "15d", "100Gi", "85GiB"),
    ("staging", 1, "3d", "20Gi", "17GiB"),
])
def test_prometheus_replicas_volume_and_retention_follow_the_profile(request, stack, replicas, retention, storage, cap):
    run = request.getfixturevalue(stack)
    settings = stack_config(run).platform.monitoring
    assert (settings.retention, settings.storage_size) == (retention, storage)
    spec = values(run)["prometheus"]["prometheusSpec"]
    assert spec["replicas"] == replicas
    assert spec["retention"] == retention and spec["retentionSize"] == cap
    assert spec["storageSpec"]["volumeClaimTemplate"]["spec"] == {
        "storageClassName": run.outputs["storageClass"], "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": storage}}}
    assert spec["externalLabels"] == {"cluster": stack}, "notifications say which stack fired"


def test_retention_size_leaves_headroom_on_the_volume():
    assert monitoring.retention_size("100Gi") == "85GiB"
    assert monitoring.retention_size("1Ti") == "870GiB"


def test_prometheus_replicas_spread_over_nodes_with_a_budget_in_production(production, staging):
    prod = values(production)["prometheus"]
    assert prod["prometheusSpec"]["podAntiAffinity"] == "hard"
    assert prod["podDisruptionBudget"] == {"enabled": True, "minAvailable": 1}
    stage = values(staging)["prometheus"]
    assert stage["prometheusSpec"]["podAntiAffinity"] == "soft"
    assert stage["podDisruptionBudget"]["enabled"] is False, "minAvailable 1 of 1 would block every drain"


def test_prometheus_selects_monitors_and_rules_of_every_namespace_whatever_their_labels(production):
    spec = values(production)["prometheus"]["prometheusSpec"]
    for kind in ("serviceMonitor", "podMonitor", "probe", "scrapeConfig", "rule"):
        # NilUsesHelmValues would select only objects labelled release=kube-prometheus-stack.
        assert spec[f"{kind}SelectorNilUsesHelmValues"] is False, kind
        assert spec[f"{kind}Selector"] == {} and spec[f"{kind}NamespaceSelector"] == {}, kind
    # The data stores' monitors carry no `release` label and live in their own namespaces.
    scylla = production.named("scylla-service-monitor", "kubernetes:monitoring.coreos.com/v1:ServiceMonitor")
    assert scylla.inputs["metadata"]["namespace"] == "scylla"
    assert "release" not in scylla.inputs["metadata"]["labels"]


# --- Alertmanager ----------------------------------------------------------------------------------------
def test_alertmanager_runs_three_replicas_with_a_budget_in_production_one_in_staging(production, staging):
    prod = values(production)["alertmanager"]
    assert prod["alertmanagerSpec"]["replicas"] == 3 and prod["alertmanagerSpec"]["podAntiAffinity"] == "hard"
    assert prod["podDisruptionBudget"] == {"enabled": True, "minAvailable": 2}
    stage = values(staging)["alertmanager"]
    assert stage["alertmanagerSpec"]["replicas"] == 1 and stage["podDisruptionBudget"]["enabled"] is False


def test_alertmanager_reads_our_secret_with_sane_defaults(production):
    spec = values(production)["alertmanager"]["alertmanagerSpec"]
    assert spec["useExistingSecret"] is True and spec["configSecret"] == "alertmanager-config"
    assert "config" not in values(production)["alertmanager"], "no configuration in the Helm values"
    config = alertmanager_config(production)
    route = config["route"]
    assert route["receiver"] == "null", "without receivers alerts stay in Alertmanager's UI"
    assert route["group_by"] == ["namespace", "alertname"] and route["repeat_interval"] == "12h"
    assert {"receiver": "null", "matchers": ['alertname = "Watchdog"']} in route["routes"]
    assert config["receivers"] == [{"name": "null"}]
    assert {"source_matchers": ['severity = "critical"'], "target_matchers": ['severity =~ "warning|info"'],
            "equal": ["namespace", "alertname"]} in config["inhibit_rules"]


def test_alerting_is_built_from_config_with_the_receivers_secrets_kept_secret(quiet):
    config = alertmanager_config(quiet)
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["ops-slack"]["slack_configs"] == [{"api_url": SLACK_URL, "send_resolved": True,
                                                        "channel": "#alerts"}]
    assert receivers["oncall"]["pagerduty_configs"] == [{"routing_key": PAGER_KEY, "send_resolved": True}]
    route = config["route"]
    assert route["receiver"] == "ops-slack"
    assert route["routes"][0] == {"receiver": "oncall", "continue": True,
                                  "matchers": ['severity="critical"', 'namespace=~"ads|postgres"']}
    # Neither the URL nor the key is readable anywhere without decrypting state.
    shown = visible(quiet)
    assert SLACK_URL not in shown and PAGER_KEY not in shown
    assert SLACK_URL not in json.dumps(values(quiet))


def monitoring_policies(run: Run) -> list[dict]:
    return [r.inputs["spec"] for r in run.of_type(NETPOL) if r.inputs["metadata"]["namespace"] == "monitoring"]


def test_receivers_reach_https_outside_the_cluster_only_when_configured(production, staging, quiet):
    # Production has receivers here and, like its profile, logs people in to Grafana with GitLab (platform.sso).
    assert stack_config(quiet).platform.sso.enabled is True
    policies = monitoring_policies(quiet)
    assert internet_ports(policies, ALERTMANAGER_PODS) == {443}
    assert internet_ports(policies, GRAFANA_PODS) == {443}
    assert internet_ports(policies, PROMETHEUS_PODS) == set()
    assert internet_ports(policies, OPERATOR_PODS) == set()
    # Without receivers, Alertmanager stays inside; Grafana still reaches GitLab's public address.
    assert internet_ports(monitoring_policies(production), ALERTMANAGER_PODS) == set()
    assert internet_ports(monitoring_policies(production), GRAFANA_PODS) == {443}
    assert stack_config(staging).platform.sso.enabled is False
    assert not [r for r in staging.resources if r.name.startswith("netpol-monitoring-allow-egress-internet")]


def _namespace_policies(receivers: bool, sso: bool) -> list[dict]:
    """The monitoring namespace's policies for a context with or without alert receivers and Grafana's SSO client."""
    alerting = Alerting(receivers=[AlertReceiver(name="oncall", type="pagerduty")] if receivers else [])
    ctx = SimpleNamespace(settings=SimpleNamespace(monitoring=SimpleNamespace(alerting=alerting)),
                          sso={"grafana": object()} if sso else {}, monitoring=prometheus_peer)
    ctx.sso_egress_world = lambda consumer: PlatformContext.sso_egress_world(ctx, consumer)
    [spec] = [s for s in monitoring.namespaces(ctx) if s.name == "monitoring"]
    return list(namespaces.policies(spec, "10.0.0.0/16").values())


@pytest.mark.parametrize("receivers", [True, False])
@pytest.mark.parametrize("sso", [True, False])
def test_only_alertmanager_and_grafana_with_sso_reach_the_internet(receivers, sso):
    """Grafana is internet-facing: it may open connections out only for the GitLab login, and Prometheus, the
    operator and kube-state-metrics never; Alertmanager reaches its receivers whether or not Grafana logs in."""
    policies = _namespace_policies(receivers, sso)
    assert internet_ports(policies, ALERTMANAGER_PODS) == ({443} if receivers else set())
    assert internet_ports(policies, GRAFANA_PODS) == ({443} if sso else set())
    for pods in (PROMETHEUS_PODS, OPERATOR_PODS, {"app.kubernetes.io/name": "kube-state-metrics"}):
        assert internet_ports(policies, pods) == set(), pods


@pytest.mark.parametrize("url", ["http://hooks.example.com/alerts", "https://hooks.example.com:8443/alerts",
                                 "alert-bridge.ops.svc:8080/hook", "https:///no-host", "https://[::1/x"])
@pytest.mark.parametrize("kind", ["slack", "webhook"])
def test_a_receiver_url_monitoring_cannot_reach_fails_naming_the_key_not_the_url(kind, url):
    """`monitoring` leaves the cluster on 443 only (allow-egress-internet): anything else would be dropped
    silently when an alert fires."""
    alerting = Alerting(receivers=[AlertReceiver(name="ops", type=kind)], default_receiver="ops")
    with pytest.raises(ValueError) as refused:
        monitoring.alertmanager_config(alerting, {"ops": url})
    assert str(refused.value).startswith("alertingSecrets.ops must be an https:// URL on port 443")
    assert url not in str(refused.value)
    good = "https://hooks.example.com:443/alerts"
    [_, built] = monitoring.alertmanager_config(alerting, {"ops": good})["receivers"]
    assert good in json.dumps(built)
    # A PagerDuty routing key is not a URL: Alertmanager posts it to events.pagerduty.com (443).
    pager = Alerting(receivers=[AlertReceiver(name="pager", type="pagerduty")])
    assert monitoring.alertmanager_config(pager, {"pager": "R0UT1NGKEY"})["receivers"][1]["name"] == "pager"


@pytest.mark.parametrize(("alerting", "secrets", "expected"), [
    ({"receivers": [{"name": "oncall", "type": "pagerduty"}], "routes": [{"receiver": "pager", "matchers": ['a="b"']}]},
     {"oncall": "key"}, "adplatform:platform.monitoring.alerting.routes[0].receiver must name one of the receivers "
                        "(oncall), got 'pager'"),
    ({"receivers": [{"name": "oncall", "type": "pagerduty"}]}, {},
     "adplatform:alertingSecrets.oncall must be set with --secret: the pagerduty URL or key of receiver 'oncall'"),
    ({"receivers": [{"name": "null", "type": "webhook"}]}, {"null": "https://x.example.com"},
     "adplatform:platform.monitoring.alerting.receivers[0].name must not be 'null'"),
    ({"receivers": [{"name": "hook", "type": "webhook", "channel": "#x"}]}, {"hook": "https://x.example.com"},
     "adplatform:platform.monitoring.alerting.receivers[0].channel is only read for slack receivers"),
    ({"receivers": [{"name": "hook", "type": "webhook"}], "defaultReceiver": "slack"},
     {"hook": "https://x.example.com"},
     "adplatform:platform.monitoring.alerting.defaultReceiver must name one of the receivers (hook), got 'slack'"),
])
def test_alerting_config_errors_name_the_key(alerting, secrets, expected):
    raw = base_raw(platform={"monitoring": {"alerting": alerting}})
    keys = set(SECRET_KEYS)
    if secrets:
        raw["alertingSecrets"] = secrets
        keys.add("alertingSecrets")
    found = config_problems(raw, keys)
    assert any(message.startswith(expected) for message in found), found


# --- Grafana ---------------------------------------------------------------------------------------------
def test_grafana_datasources_point_at_the_real_services(production):
    # The operator's governing Services (pkg/prometheus/server/statefulset.go, pkg/alertmanager/statefulset.go).
    assert PROMETHEUS_URL == "http://prometheus-operated.monitoring.svc.cluster.local:9090"
    assert ALERTMANAGER_URL == "http://alertmanager-operated.monitoring.svc.cluster.local:9093"
    sidecar = grafana(production)["sidecar"]["datasources"]
    assert (sidecar["url"], sidecar["uid"], sidecar["isDefaultDatasource"]) == (PROMETHEUS_URL, "prometheus", True)
    assert sidecar["alertmanager"]["url"] == ALERTMANAGER_URL and sidecar["alertmanager"]["enabled"] is True
    found = datasources(production)
    assert set(found) == {"Loki", "Tempo"}, "production runs logs and Tempo"
    assert found["Loki"]["url"] == LOKI_URL and found["Tempo"]["url"] == TEMPO_URL
    # Logs -> traces, traces -> logs, exemplars -> traces.
    assert {f["datasourceUid"] for f in found["Loki"]["jsonData"]["derivedFields"]} == {"tempo"}
    assert all(f["url"] == "$${__value.raw}" for f in found["Loki"]["jsonData"]["derivedFields"]), \
        "provisioning expands $VAR: the literal needs $$"
    assert found["Tempo"]["jsonData"]["tracesToLogsV2"]["datasourceUid"] == "loki"
    assert sidecar["exemplarTraceIdDestinations"]["datasourceUid"] == "tempo"
    # Prometheus keeps the exemplars that link opens (a feature flag in Prometheus 3, v3.14 in this chart).
    assert values(production)["prometheus"]["prometheusSpec"]["enableFeatures"] == ["exemplar-storage"]


def test_datasources_follow_the_logs_and_traces_switches(quiet):
    assert datasources(quiet) == {}, "no Loki or Tempo when platform.logs and platform.traces are off"
    assert "exemplarTraceIdDestinations" not in grafana(quiet)["sidecar"]["datasources"]
    assert "enableFeatures" not in values(quiet)["prometheus"]["prometheusSpec"], "no traces: no exemplar store"
    assert grafana(quiet)["prune"] is True, "a switched-off datasource is removed from Grafana too"


def _settings(logs: bool, traces: bool, backend: str) -> SimpleNamespace:
    """What the datasource functions read of a PlatformContext."""
    platform = Platform.model_construct(logs=Logs(enabled=logs),
                                        traces=Traces.model_construct(enabled=traces, backend=backend, retention="7d"))
    return SimpleNamespace(settings=platform)


@pytest.mark.parametrize(("logs", "traces", "backend", "expected"), [
    (True, True, "tempo", {"Loki": LOKI_URL, "Tempo": TEMPO_URL}),
    (True, False, "tempo", {"Loki": LOKI_URL}),
    (False, True, "tempo", {"Tempo": TEMPO_URL}),
    (False, False, "tempo", {}),
])
def test_each_datasource_and_link_appears_only_with_what_it_points_at(logs, traces, backend, expected):
    ctx = _settings(logs, traces, backend)
    found = {d["name"]: d for d in monitoring.additional_datasources(ctx)}
    assert {name: d["url"] for name, d in found.items()} == expected
    trace_uid = backend if traces else None
    if "Loki" in found:
        derived = found["Loki"]["jsonData"].get("derivedFields", [])
        assert {f["datasourceUid"] for f in derived} == ({trace_uid} if trace_uid else set())
    if "Tempo" in found:
        links = found["Tempo"]["jsonData"].get("tracesToLogsV2")
        assert (links["datasourceUid"] if links else None) == ("loki" if logs else None)
    exemplars = monitoring.datasource_sidecar(ctx).get("exemplarTraceIdDestinations")
    assert (exemplars["datasourceUid"] if exemplars else None) == trace_uid


@pytest.mark.parametrize("stack", ["production", "staging"])
def test_grafana_admin_password_is_generated_into_a_secret_only(request, stack):
    run = request.getfixturevalue(stack)
    admin = grafana(run)["admin"]
    assert admin == {"existingSecret": "grafana-admin", "userKey": "admin-user", "passwordKey": "admin-password"}
    assert "adminPassword" not in grafana(run)
    secret = run.named("grafana-admin", SECRET)
    assert secret.inputs["metadata"]["namespace"] == "monitoring"
    data = string_data(secret)
    assert data["admin-user"] == "admin" and len(data["admin-password"]) == 32
    assert data["admin-password"] not in visible(run)
    assert run.named("grafana-admin-password", PASSWORD).protect == (stack == "production")


def test_grafana_is_served_at_its_hostname_on_the_shared_gateway(production):
    route = production.named("grafana-route", HTTPROUTE).inputs
    assert route["metadata"]["namespace"] == "monitoring"
    assert route["spec"]["hostnames"] == ["grafana.ads.example.com"]
    [parent] = route["spec"]["parentRefs"]
    assert (parent["name"], parent["namespace"]) == ("shared", "gateway")
    assert route["spec"]["rules"][-1]["backendRefs"] == [{"name": "grafana", "port": 80}]
    assert grafana(production)["fullnameOverride"] == "grafana", "the Service the route points at"
    assert grafana(production)["grafana.ini"]["server"]["root_url"] == "https://grafana.ads.example.com"
    assert production.outputs["platform"]["monitoring"]["urls"] == {"grafana": "https://grafana.ads.example.com"}
    assert [r.inputs["metadata"]["namespace"] for r in production.of_type(CNP)
            if r.name == "netpol-monitoring-allow-from-gateway"] == ["monitoring"]


def test_grafana_keeps_its_database_on_one_volume(production, staging):
    for run in (production, staging):
        values_ = grafana(run)
        assert values_["replicas"] == 1 and values_["deploymentStrategy"] == {"type": "Recreate"}
        persistence = values_["persistence"]
        assert persistence["enabled"] is True and persistence["storageClassName"] == run.outputs["storageClass"]
        assert persistence["annotations"] == {"helm.sh/resource-policy": "keep"}


def test_grafana_sidecar_loads_labelled_config_maps_of_every_namespace_and_no_secrets(production):
    dashboards_ = grafana(production)["sidecar"]["dashboards"]
    assert (dashboards_["label"], dashboards_["labelValue"]) == DASHBOARD_LABEL
    assert dashboards_["searchNamespace"] == "ALL" and dashboards_["resource"] == "configmap"
    assert grafana(production)["defaultDashboardsEnabled"] is True, "the chart's cluster and node dashboards"
    role = production.named("grafana-dashboard-reader", "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")
    assert role.inputs["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "watch", "list"]}]
    assert grafana(production)["rbac"] == {"useExistingClusterRole": "grafana-dashboard-reader"}


def test_the_ad_services_dashboards_are_found_by_the_sidecar(production):
    """The ads layer ships one dashboard ConfigMap per service in its team namespace (context.py DASHBOARD_LABEL)."""
    sidecar = grafana(production)["sidecar"]["dashboards"]
    boards = [r.inputs["metadata"] for r in production.of_type(CONFIGMAP) if r.inputs["metadata"]["namespace"] == "ads"
              and r.inputs["metadata"].get("labels", {}).get(sidecar["label"]) == sidecar["labelValue"]]
    services = {r.name for r in production.of_type("adplatform:ads:Service")}
    assert len(boards) == len(services) == 8
    # Another namespace: the sidecar must watch every namespace, through a ClusterRoleBinding (the chart binds
    # our ClusterRole cluster-wide unless rbac.namespaced, which would confine it to `monitoring`).
    assert sidecar["searchNamespace"] == "ALL" and not grafana(production)["rbac"].get("namespaced")


def _dashboards(run: Run) -> dict[str, dict]:
    """The store dashboards (the restore drills' own board: tests/test_data_drills.py)."""
    label, value = DASHBOARD_LABEL
    return {r.name: r.inputs for r in run.of_type(CONFIGMAP)
            if r.inputs["metadata"].get("labels", {}).get(label) == value
            and r.inputs["metadata"]["namespace"] == "monitoring" and r.name != "dashboard-restore-drills"}


def test_a_dashboard_exists_exactly_for_each_enabled_store(production, quiet):
    for run in (production, quiet):
        data = stack_config(run).data_plane
        enabled = {store for store in STORE_KEYS if getattr(data, store).enabled
                   and (store != "object_storage" or data.object_storage.backend != "external")}
        expected = {f"dashboard-{s.replace('_', '-')}" for s in enabled}
        assert set(_dashboards(run)) == expected
    assert {"dashboard-scylladb", "dashboard-clickhouse"} & set(_dashboards(quiet)) == set()
    assert len(_dashboards(production)) == 6


def test_store_dashboards_are_valid_json_querying_their_namespace(production):
    boards = _dashboards(production)
    uids = set()
    for name, inputs in boards.items():
        [(key, text)] = inputs["data"].items()
        model = json.loads(text)
        uids.add(model["uid"])
        assert inputs["metadata"]["annotations"] == {"grafana_folder": "Data stores"}
        exprs = [t["expr"] for p in model["panels"] for t in p["targets"]]
        assert all(t["datasource"] == {"type": "prometheus", "uid": "prometheus"}
                   for p in model["panels"] for t in p["targets"])
        namespace = {"dashboard-scylladb": "scylla", "dashboard-redpanda": "redpanda",
                     "dashboard-clickhouse": "clickhouse", "dashboard-dragonfly": "dragonfly",
                     "dashboard-postgres": "postgres", "dashboard-object-storage": "seaweedfs"}[name]
        assert f'container_memory_working_set_bytes{{namespace="{namespace}", container!=""}}' in " ".join(exprs)
        assert len(exprs) > len(dashboards.pod_panels(namespace)), f"{name}: the store's own metrics too"
    assert len(uids) == len(boards)


@pytest.mark.parametrize("store", sorted(dashboards.STORES))
def test_dashboard_panels_do_not_overlap(store):
    model = dashboards.model(store, "ns")
    cells = set()
    for panel in model["panels"]:
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, panel["title"]
                cells.add((x, y))
    assert len({p["id"] for p in model["panels"]}) == len(model["panels"])


# --- exporters, K3s --------------------------------------------------------------------------------------
@pytest.mark.parametrize("stack", ["production", "staging"])
def test_node_exporter_runs_on_every_node_in_its_own_privileged_namespace(request, stack):
    run = request.getfixturevalue(stack)
    cluster = stack_config(run).cluster
    taints = {t for p in cluster.active_pools for t in p.node_taints} | set(cluster.control_plane.taints)
    assert "adplatform.io/dedicated=scylladb:NoSchedule" in taints
    if stack == "production":
        assert CONTROL_PLANE_TAINT in taints
    exporter = values(run)["prometheus-node-exporter"]
    assert all(tolerates(exporter["tolerations"], t) for t in taints), exporter["tolerations"]
    assert not tolerates([{"key": "other", "operator": "Exists"}], "x=y:NoSchedule"), "the matcher can fail"
    assert exporter["namespaceOverride"] == "node-exporter"
    assert exporter["service"]["listenOnAllInterfaces"] is False, "listens on the node's private address only"
    spaces = {r.inputs["metadata"]["name"]: r.inputs["metadata"] for r in run.of_type(NS)}
    exporter_ns, monitoring_ns = spaces["node-exporter"], spaces["monitoring"]
    assert exporter_ns["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert "hostPath" in exporter_ns["annotations"]["adplatform.io/pod-security-why"]
    assert monitoring_ns["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert exporter_ns["labels"]["adplatform.io/layer"] == monitoring_ns["labels"]["adplatform.io/layer"] == "platform"


def test_k3s_components_without_their_own_endpoint_are_not_scraped(production):
    v = values(production)
    for component in ("kubeControllerManager", "kubeScheduler", "kubeEtcd", "kubeProxy"):
        assert v[component] == {"enabled": False}, component
    assert v["kubeApiServer"]["enabled"] and v["coreDns"]["enabled"] and v["kubeStateMetrics"]["enabled"]
    drops = v["kubelet"]["serviceMonitor"]["metricRelabelings"]
    assert {"action": "drop", "sourceLabels": ["__name__"], "regex": "(apiserver|etcd)_.+"} in drops
    assert re.fullmatch(drops[1]["regex"], "apiserver_request_total") and not re.fullmatch(drops[1]["regex"],
                                                                                            "kubelet_running_pods")


def test_monitoring_reaches_every_namespace_and_the_nodes_scrape_ports(production):
    everywhere = policy(production, "monitoring", "allow-to-all-namespaces")["egress"][0]
    assert everywhere == {"to": [{"namespaceSelector": {}}]}
    nodes = policy(production, "monitoring", "allow-egress-nodes")["egress"][0]
    assert ports(nodes) == [9100, 9962, 9963, 9965, 10250], "node-exporter, Cilium agent, operator, Hubble, kubelet"
    webhook = policy(production, "monitoring", "allow-api-server-webhooks")["ingress"][0]
    assert ports(webhook) == [10250]
    names = {r.name for r in production.resources if r.name.startswith("netpol-monitoring-allow-from-")}
    assert names == {"netpol-monitoring-allow-from-gateway", "netpol-monitoring-allow-from-metrics-adapter"}, \
        "reached by the gateway, the metrics adapter (tests/test_ads_scaling.py: its pods, on 9090) and the API server"


@pytest.mark.parametrize("stack", ["production", "staging"])
def test_every_container_has_requests_and_a_memory_limit(request, stack):
    v = values(request.getfixturevalue(stack))
    found = {
        "prometheus": v["prometheus"]["prometheusSpec"]["resources"],
        "alertmanager": v["alertmanager"]["alertmanagerSpec"]["resources"],
        "operator": v["prometheusOperator"]["resources"],
        "config-reloader": v["prometheusOperator"]["prometheusConfigReloader"]["resources"],
        "webhook-jobs": v["prometheusOperator"]["admissionWebhooks"]["patch"]["resources"],
        "kube-state-metrics": v["kube-state-metrics"]["resources"],
        "node-exporter": v["prometheus-node-exporter"]["resources"],
        "grafana": v["grafana"]["resources"],
        "grafana-sidecar": v["grafana"]["sidecar"]["resources"],
    }
    assert set(found) == set(monitoring.SIZES)
    for name, resources in found.items():
        assert set(resources["requests"]) == {"cpu", "memory"} and "memory" in resources["limits"], name
    assert v["grafana"]["initChownData"] == {"enabled": False}, "a root init container would break restricted"


# --- network paths, both ends (every namespace is default-deny in and out) --------------------------------
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
MONITOR_KINDS = ("kubernetes:monitoring.coreos.com/v1:ServiceMonitor", "kubernetes:monitoring.coreos.com/v1:PodMonitor")
# Monitors charts render, with the port they scrape, read at the pinned tags: velero-12.1.0
# (templates/servicemonitor.yaml, podmonitor.yaml -> http-monitoring 8085), loki-18.11.0
# (monitoring/servicemonitor.yaml -> http-metrics 3100), tempo-2.2.4 (servicemonitor.yaml -> tempo-prom-metrics
# 3200), opentelemetry-collector-0.170.0 (ports.metrics 8888), cert-manager v1.21.1 (servicemonitor.yaml ->
# http-metrics 9402 of controller, webhook, cainjector), external-secrets 2.9.0 (servicemonitor.yaml -> metrics
# 8080 of controller, webhook, cert-controller), openbao-0.29.2 (prometheus-servicemonitor.yaml -> http 8200).
CHART_MONITORS = {"velero": ("velero", 8085), "loki": ("logging", 3100), "tempo": ("tracing", 3200),
                  "otel-gateway": ("tracing", 8888), "otel-agent": ("tracing", 8888),
                  "log-collector": ("log-collector", 8888), "cert-manager": ("cert-manager", 9402),
                  "external-secrets": ("external-secrets", 8080), "openbao": ("openbao", 8200)}
MONITOR_SWITCHES = re.compile(r"^(serviceMonitor|servicemonitor|podMonitor|nodeAgentPodMonitor)$")


def _namespace_labels(run: Run, name: str) -> dict[str, str]:
    """A namespace's labels as the API server shows them (it adds kubernetes.io/metadata.name)."""
    found = [r.inputs["metadata"].get("labels", {}) for r in run.of_type(NS) if r.inputs["metadata"]["name"] == name]
    return {**(found[0] if found else {}), "kubernetes.io/metadata.name": name}


def allowed(run: Run, direction: str, namespace: str, peer: str, port: int | None,
            pods: dict[str, str] | None = None, peer_pods: dict[str, str] | None = None) -> bool:
    """Whether the policies of `namespace` let TCP `port` (None: some port) through from (Ingress) or to (Egress)
    namespace `peer`. `pods` and `peer_pods` are the labels of the pods at either end; where one is None the
    check is namespace-level for that end (pod selectors are taken as matching). A namespace without a
    default-deny policy (kube-system) lets everything through."""
    key, peers = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    specs = [r.inputs["spec"] for r in run.of_type(NETPOL) if r.inputs["metadata"]["namespace"] == namespace]
    if not any(s["podSelector"] == {} and direction in s["policyTypes"] and key not in s for s in specs):
        return True
    labels = _namespace_labels(run, peer)

    def pods_match(selector: dict | None, which: dict[str, str] | None) -> bool:
        return which is None or selects(selector, which)

    for spec in specs:
        if not pods_match(spec["podSelector"], pods):
            continue
        for rule in spec.get(key, []):
            if port is not None and "ports" in rule and not any(
                    p["port"] == port and p.get("protocol", "TCP") == "TCP" for p in rule["ports"]):
                continue
            for found in rule[peers]:
                if "namespaceSelector" in found and selects(found["namespaceSelector"], labels) and pods_match(
                        found.get("podSelector"), peer_pods):
                    return True
                if set(found) == {"podSelector"} and peer == namespace and pods_match(found["podSelector"], peer_pods):
                    return True
    return False


def reaches(run: Run, source: str, target: str, port: int | None, pods: dict[str, str] | None = None) -> bool:
    """Whether `source` (its pods labelled `pods`, None: namespace-level) reaches `target` on `port`."""
    return allowed(run, "Egress", source, target, port, pods=pods) and allowed(
        run, "Ingress", target, source, port, peer_pods=pods)


def chart_monitors(run: Run) -> dict[str, str]:
    """Release -> namespace, for every release whose values switch on a ServiceMonitor or PodMonitor."""
    def on(node) -> bool:
        if isinstance(node, dict):
            for k, v in node.items():
                if MONITOR_SWITCHES.match(k) and isinstance(v, dict) and (v.get("enabled") or v.get("create")):
                    return True
                if k == "podMonitorEnabled" and v is True or on(v):
                    return True
        return False

    def seaweedfs(values: dict) -> bool:  # seaweedfs 4.44 templates/master/master-servicemonitor.yaml etc.
        return bool(values.get("global", {}).get("seaweedfs", {}).get("monitoring", {}).get("enabled"))
    found = {}
    for r in run.of_type(RELEASE):
        values_ = validators.plain(r.inputs["values"])
        if on(values_) or seaweedfs(values_):
            found[r.name] = r.inputs["namespace"]
    return found


def test_the_path_checker_can_say_no(production):
    assert not reaches(production, "monitoring", "logging", 9095), "Loki's gRPC is not open to monitoring"
    # Pod-level: the metrics ports admit Prometheus' pods, not the rest of monitoring (Grafana, or any other pod).
    assert reaches(production, "monitoring", "velero", 8085, PROMETHEUS_PODS)
    assert not reaches(production, "monitoring", "velero", 8085, GRAFANA_PODS)
    assert not reaches(production, "monitoring", "velero", 8085, {"app.kubernetes.io/name": "kube-state-metrics"})
    # The platform layer's client ports (MLflow's) leave monitoring out, whichever of its pods calls.
    assert reaches(production, "airflow", "mlflow", 5000)
    assert not allowed(production, "Ingress", "mlflow", "monitoring", 5000, peer_pods=GRAFANA_PODS)
    assert not reaches(production, "ads", "logging", 3100), "ads may not push to Loki"
    assert not allowed(production, "Ingress", "velero", "ads", 8085)
    assert allowed(production, "Ingress", "kube-system", "monitoring", 9153), "kube-system has no default-deny"


def test_grafana_and_the_shippers_reach_loki_and_tempo(production):
    assert reaches(production, "monitoring", "logging", 3100, GRAFANA_PODS)  # Grafana's Loki datasource, LOKI_URL
    assert reaches(production, "monitoring", "tracing", 3200, GRAFANA_PODS)  # Grafana's Tempo datasource, TEMPO_URL
    assert reaches(production, "log-collector", "logging", 3100)  # the node collectors push OTLP to Loki
    assert reaches(production, "ads", "tracing", 4317)  # the ad services' OTEL_EXPORTER_OTLP_ENDPOINT
    for namespace in ("logging", "tracing"):  # chunks and blocks on the in-cluster object store
        assert reaches(production, namespace, "seaweedfs", 8333), namespace


def test_prometheus_reaches_every_monitor_of_the_program(production):
    """Each ServiceMonitor/PodMonitor the program or its charts create sits in a namespace that admits
    Prometheus (namespace monitoring); for the chart monitors read at their tags, on the port they scrape."""
    targets = {r.inputs["metadata"]["namespace"] for t in MONITOR_KINDS for r in production.of_type(t)}
    releases = chart_monitors(production)
    assert set(CHART_MONITORS) <= set(releases), "the switch finder misses monitors it must see"
    targets |= set(releases.values())
    targets |= {r.inputs["metadata"]["namespace"] for r in production.of_type("kubernetes:cluster.redpanda.com/v1alpha2:Redpanda")
                if r.inputs["spec"]["clusterSpec"].get("monitoring", {}).get("enabled")}
    assert {"ads", "scylla", "velero", "gitlab", "cnpg-system", "redpanda", "seaweedfs", "kube-system"} <= targets
    assert not [ns for ns in sorted(targets) if not reaches(production, "monitoring", ns, None, PROMETHEUS_PODS)]
    for release, (namespace, port) in CHART_MONITORS.items():
        assert releases[release] == namespace and reaches(production, "monitoring", namespace, port,
                                                          PROMETHEUS_PODS), release


PODMONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"


def test_cilium_agents_operator_and_hubble_are_scraped_on_the_nodes(production):
    """Cilium comes before the monitoring CRDs, so its chart renders no monitor: ours select its pods' `prometheus`
    ports (9962 agent, 9963 operator) and the agents' `hubble-metrics` port (9965), all host-network, reached
    through monitoring's node egress."""
    values = production.named("cilium", RELEASE).inputs["values"]
    assert values["prometheus"] == {"enabled": True} and values["operator"]["prometheus"] == {"enabled": True}
    assert values["hubble"]["metrics"]["enabled"] and values["hubble"]["metrics"]["port"] == 9965
    agent = {"k8s-app": "cilium"}
    for name, selector, port in (("cilium-agent", agent, "prometheus"),
                                 ("cilium-operator", {"io.cilium/app": "operator", "name": "cilium-operator"},
                                  "prometheus"),
                                 ("hubble", agent, "hubble-metrics")):
        monitor = production.named(f"{name}-pod-monitor", PODMONITOR)
        assert monitor.inputs["metadata"]["namespace"] == "kube-system"
        assert monitor.inputs["spec"]["selector"] == {"matchLabels": selector}
        assert [e["port"] for e in monitor.inputs["spec"]["podMetricsEndpoints"]] == [port]
        after = {production.by_urn(u).name for u in monitor.dependencies}
        assert "prometheus-operator-crds" in after, name
    nodes = policy(production, "monitoring", "allow-egress-nodes")["egress"][0]
    assert {9962, 9963, 9965} <= set(ports(nodes))


# --- schemas ---------------------------------------------------------------------------------------------
def test_our_objects_match_the_cluster_schema(production, quiet):
    for run in (production, quiet):
        mine = [r for r in validators.kubernetes_objects(run)
                if (r.inputs.get("metadata") or {}).get("namespace") in ("monitoring", "node-exporter")
                or r.name in ("ns-monitoring", "ns-node-exporter", "grafana-dashboard-reader")]
        assert len(mine) > 10
        for obj in mine:
            validators.validate_kubernetes(obj.type, obj.inputs)
    bad = dict(production.named("grafana-route", HTTPROUTE).inputs)
    bad["spec"] = {**bad["spec"], "hostnames": "grafana.ads.example.com"}
    with pytest.raises(Exception):
        validators.validate_kubernetes(HTTPROUTE, bad)
