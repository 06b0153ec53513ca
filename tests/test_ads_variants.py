"""The ad services with the switches the profiles leave off: a dedicated pool, the
team's own images from a private registry, a separate metrics port, services disabled, monitoring and traces off,
the namespace meshed by Linkerd. One whole-program run of production with all of them (module-scoped)."""

from __future__ import annotations

import base64
import json

import pytest

from components.ads import PULL_SECRET
from tests.netpol import PROMETHEUS_PEER
from tests.stores import NETPOL, SECRET, string_data
from components.ads.context import MESH_INBOUND_PORT
from tests.test_ads import (CNP, CONFIGMAP, DEPLOYMENT, MONITOR, ROUTE, SERVICE, ads_objects, app, env_of, obj,
                            pod, ports)
from tests import variants

TOKEN = variants.REGISTRY_TOKEN_VALUE
TAINT = variants.HOT_PATH_TAINT
OVERRIDES = variants.ADS_OVERRIDES


@pytest.fixture(scope="module")
def variant():
    """Production with OVERRIDES, the registry token and Linkerd on `ads` (the shared production variant)."""
    return variants.production_variant()


def test_a_hot_path_service_runs_on_its_own_pool(variant):
    spec = pod(variant, "bidding")["spec"]
    assert spec["nodeSelector"] == {"adplatform.io/pool": "hot"}
    assert spec["tolerations"] == [{"key": "adplatform.io/dedicated", "operator": "Equal", "value": "hot-path",
                                    "effect": "NoSchedule"}]
    assert "nodeSelector" not in pod(variant, "ad-serving")["spec"]  # the others stay on the general nodes


def test_the_teams_images_come_from_the_registry_with_a_pull_secret(variant):
    assert app(variant, "bidding")["image"] == "registry.ads.example.com/ads/bidding:1.4.2"
    assert app(variant, "ad-serving")["image"] == "registry.ads.example.com/ads/ad-serving@sha256:" + "ab" * 32
    [pull] = [r for r in ads_objects(variant, SECRET) if r.inputs["metadata"]["name"] == PULL_SECRET]
    assert pull.inputs["type"] == "kubernetes.io/dockerconfigjson"
    auths = json.loads(string_data(pull)[".dockerconfigjson"])["auths"]  # string_data asserts it is secret
    assert auths["registry.ads.example.com"]["auth"] == base64.b64encode(f"ads-deploy:{TOKEN}".encode()).decode()
    assert TOKEN not in json.dumps([r.inputs for r in variant.resources if r is not pull], default=repr)
    for svc in ("bidding", "ad-serving", "ml-inference"):
        assert pod(variant, svc)["spec"]["imagePullSecrets"] == [{"name": PULL_SECRET}]


def test_a_real_image_is_routed_whole(variant):
    routes = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in ads_objects(variant, ROUTE)}
    assert routes["bidding"]["rules"][0]["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    # api-gateway still runs the placeholder: only its info document is public.
    assert routes["api-gateway"]["rules"][0]["matches"][0]["path"] == {"type": "Exact", "value": "/"}


def test_a_separate_metrics_port_is_scraped_and_admitted_alone(variant):
    assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in app(variant, "bidding")["ports"]
    assert {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"} in \
        obj(variant, SERVICE, "bidding")["spec"]["ports"]
    assert variant.named("ads-bidding-metrics", MONITOR).inputs["spec"]["endpoints"][0]["port"] == "metrics"
    ingress = obj(variant, NETPOL, "bidding")["spec"]["ingress"]
    [scrape] = [r for r in ingress if "namespaceSelector" in r["from"][0]]
    assert ports(scrape) == [9090]


def test_disabled_services_leave_no_objects_and_no_peers(variant):
    for svc in ("reporting", "analytics-ingestion"):
        assert not [r for r in variant.resources if r.name.startswith(f"ads-{svc}")]
        assert svc not in variant.outputs["adServices"]
    assert "ADS_REPORTING_URL" not in env_of(variant, "api-gateway")
    assert "ADS_CAMPAIGN_MANAGEMENT_URL" in env_of(variant, "api-gateway")
    egress = obj(variant, NETPOL, "api-gateway")["spec"]["egress"]
    targets = [t["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for rule in egress for t in rule["to"]]
    assert sorted(targets) == ["audience-targeting", "campaign-management"]
    # No service uses ClickHouse any more: its credentials are not copied into the namespace.
    names = {r.inputs["metadata"]["name"] for r in ads_objects(variant, SECRET)}
    assert not {n for n in names if n.endswith("-clickhouse")} and "bidding-dragonfly" in names


def test_without_monitoring_and_traces_no_dashboards_and_no_trace_export(variant):
    assert ads_objects(variant, CONFIGMAP) == []
    for svc in ("bidding", "api-gateway"):
        assert not [k for k in env_of(variant, svc) if k.startswith("OTEL_")]
        egress = obj(variant, NETPOL, svc)["spec"].get("egress", [])
        assert all(t.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                   != "tracing" for rule in egress for t in rule["to"])
    assert env_of(variant, "api-gateway")["LOG_LEVEL"] == {"name": "LOG_LEVEL", "value": "debug"}


def test_deployments_in_the_variant_stay_valid(variant):
    from tests import validators
    for o in validators.kubernetes_objects(variant):
        if "adplatform:ads:" in o.urn:
            validators.validate_kubernetes(o.type, o.inputs)
    assert len(ads_objects(variant, DEPLOYMENT)) == 6


def test_meshed_calls_pass_the_policies_on_linkerds_inbound_port(variant):
    """Between meshed pods the caller's proxy dials the callee on 4143, not on the service's port: both ends'
    policies must name it. Prometheus and the gateway are not meshed and keep dialling the container ports."""
    assert MESH_INBOUND_PORT == 4143
    assert variant.named("ns-ads").inputs["metadata"]["annotations"]["linkerd.io/inject"] == "enabled"
    callee = obj(variant, NETPOL, "ml-inference")["spec"]
    # Callers are pods of the namespace (podSelector alone); Prometheus' pods come from monitoring.
    [from_callers] = [r for r in callee["ingress"] if set(r["from"][0]) == {"podSelector"}]
    assert ports(from_callers) == sorted([app(variant, "ml-inference")["ports"][0]["containerPort"], 4143])
    [scrape] = [r for r in callee["ingress"] if r["from"] == [PROMETHEUS_PEER]]
    assert 4143 not in ports(scrape)
    caller = obj(variant, NETPOL, "bidding")["spec"]
    [to_callee] = [r for r in caller["egress"]
                   if r["to"][0].get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
                   == "ml-inference" and "namespaceSelector" not in r["to"][0]]
    assert 4143 in ports(to_callee)
    gateway = [r.inputs["spec"] for r in ads_objects(variant, CNP) if r.inputs["metadata"]["name"] == "bidding-from-gateway"]
    assert [p["port"] for p in gateway[0]["ingress"][0]["toPorts"][0]["ports"]] == ["9898"]


def test_meshed_pods_proxies_outlast_the_apps_prestop(variant, production):
    """Linkerd's proxy refuses new requests once it gets SIGTERM, when the app's preStop starts: in a meshed namespace
    it waits past the app's preStop and shutdown (within the grace period), so a rollout drops no request."""
    from components.ads import service
    template = obj(variant, DEPLOYMENT, "bidding")["spec"]["template"]
    wait = int(template["metadata"]["annotations"]["config.alpha.linkerd.io/proxy-wait-before-exit-seconds"])
    assert service.PRE_STOP_SECONDS < wait < template["spec"]["terminationGracePeriodSeconds"]
    unmeshed = obj(production, DEPLOYMENT, "bidding")["spec"]["template"]
    assert "annotations" not in unmeshed["metadata"], "no Linkerd settings where no proxy runs"
