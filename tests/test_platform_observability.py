"""Logs and traces: Loki fed by a collector on every node, OpenTelemetry collectors in front of Tempo, all on
the data plane's object store, sized per environment, and gone when switched off."""

from __future__ import annotations

import json

import pytest
import yaml

from components import charts
from components.platform import logs, traces
from components.platform.context import LOKI_URL, OTLP_GATEWAY_HOST, TEMPO_URL
from config.platform import retention_hours
from tests import validators, variants
from tests.conftest import base_raw
from tests.stores import (PDB, RELEASE, SECRET, chart_of, config_problems, policy, ports, stack_config, stack_taints,
                          string_data, tolerates)
from tools import mockrun
from tools.mockrun import Run

NS = "kubernetes:core/v1:Namespace"
SERVICE = "kubernetes:core/v1:Service"
GRAFANA_COMMUNITY = "https://grafana-community.github.io/helm-charts"
OTEL_CHARTS = "https://open-telemetry.github.io/opentelemetry-helm-charts"
STACKS = ("production", "staging")


@pytest.fixture(params=STACKS)
def run(request) -> Run:
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def switched_off() -> Run:
    """Staging with both switched off (a run shared with test_platform_dataeng: tests/variants.py)."""
    return variants.staging_data_on()


@pytest.fixture(scope="module")
def external() -> Run:
    """Staging on the provider's S3 (HTTPS, virtual-hosted buckets `<prefix>-<purpose>`; shared: tests/variants.py)."""
    return variants.staging_external()


def values(run: Run, release: str) -> dict:
    return run.named(release, RELEASE).inputs["values"]


def tempo_config(run: Run) -> dict:
    return yaml.safe_load(values(run, "tempo")["config"])


def bucket(run: Run, purpose: str) -> str:
    return run.outputs["dataPlane"]["objectStorage"]["endpoint"]["buckets"][purpose]


def seaweed_keys(run: Run, consumer: str) -> dict[str, str]:
    """The keys of the consumer's own identity in the object store (what it alone must be handed)."""
    config = json.loads(string_data(run.named("seaweedfs-s3-config", SECRET))["seaweedfs_s3_config"])
    [keys] = next(i["credentials"] for i in config["identities"] if i["name"] == consumer)
    return {"AWS_ACCESS_KEY_ID": keys["accessKey"], "AWS_SECRET_ACCESS_KEY": keys["secretKey"]}


# --- catalog ------------------------------------------------------------------------------------------------
def test_charts_and_images_are_pinned_from_the_catalog(production):
    assert chart_of(production, "loki") == ("loki", "18.11.0", GRAFANA_COMMUNITY, "logging", False)
    assert chart_of(production, "tempo") == ("tempo", "2.2.4", GRAFANA_COMMUNITY, "tracing", False)
    for release, namespace in (("otel-gateway", "tracing"), ("otel-agent", "tracing"),
                               ("log-collector", "log-collector")):
        assert chart_of(production, release) == ("opentelemetry-collector", "0.170.0", OTEL_CHARTS, namespace, False)
        assert values(production, release)["image"] == {"repository": "otel/opentelemetry-collector-k8s",
                                                        "tag": "0.158.0"}
    assert values(production, "loki")["loki"]["image"] == {"tag": charts.LOKI_VERSION} == {"tag": "3.7.6"}
    assert values(production, "tempo")["tempo"]["tag"] == charts.TEMPO_VERSION == "2.10.8"
    assert {charts.CHARTS[c].version for c in ("loki", "tempo", "opentelemetry-collector")} == \
        {"18.11.0", "2.2.4", "0.170.0"}


# --- Loki -----------------------------------------------------------------------------------------------------
def test_loki_is_monolithic_on_the_logs_bucket_of_the_object_store(run):
    loki = values(run, "loki")
    assert loki["deploymentMode"] == "Monolithic"
    # The simple-scalable targets default to 3 replicas each: zeroed, or the chart refuses the mix.
    assert {loki[t]["replicas"] for t in ("write", "read", "backend")} == {0}
    storage = loki["loki"]["storage"]
    assert storage["type"] == "s3" and storage["bucketNames"] == {"chunks": bucket(run, "logs")} == {"chunks": "logs"}
    assert storage["s3"] == {"endpoint": "http://s3.seaweedfs.svc:8333", "region": "us-east-1",
                             "s3ForcePathStyle": True, "insecure": True}
    [schema] = loki["loki"]["schemaConfig"]["configs"]
    assert (schema["schema"], schema["store"], schema["object_store"]) == ("v13", "tsdb", "s3")
    assert loki["loki"]["auth_enabled"] is False  # single tenant: Grafana and the collector send no tenant id
    for off in ("gateway", "chunksCache", "resultsCache", "lokiCanary", "test", "ruler"):
        assert loki[off]["enabled"] is False, off
    assert loki["monitoring"]["serviceMonitor"]["enabled"] is True
    # The Service the chart names `loki` (release contains the chart name) on the API port is what others use.
    assert LOKI_URL == "http://loki.logging.svc.cluster.local:3100"


@pytest.mark.parametrize(("release", "secret", "env_from"), [
    ("loki", "loki-s3", lambda v: v["singleBinary"]["extraEnvFrom"]),
    ("tempo", "tempo-s3", lambda v: v["tempo"]["extraEnvFrom"]),
])
def test_object_store_keys_reach_loki_and_tempo_only_through_a_secret(run, release, secret, env_from):
    namespace = {"loki": "logging", "tempo": "tracing"}[release]
    obj = run.named(secret, SECRET)
    assert obj.inputs["metadata"] == {"name": secret, "namespace": namespace}
    keys = string_data(obj)  # asserts every value reached the engine as a secret
    assert keys == seaweed_keys(run, {"loki": "logs", "tempo": "traces"}[release])
    release_values = values(run, release)
    assert env_from(release_values) == [{"secretRef": {"name": secret}}]
    rendered = json.dumps(validators.plain(release_values))
    assert not [k for k in keys.values() if k in rendered], "a key is in the Helm values"


def test_retention_comes_from_the_config(run):
    cfg = stack_config(run).platform
    loki = values(run, "loki")["loki"]
    assert loki["limits_config"]["retention_period"] == f"{retention_hours(cfg.logs.retention)}h" == "720h"
    assert loki["compactor"]["retention_enabled"] is True and loki["compactor"]["delete_request_store"] == "s3"
    block_retention = tempo_config(run)["compactor"]["compaction"]["block_retention"]
    assert block_retention == f"{retention_hours(cfg.traces.retention)}h" == "168h"


def test_logs_retention_below_a_day_is_refused_naming_the_key():
    problems = config_problems(base_raw(platform={"logs": {"retention": "12h"}}))
    assert any(p.startswith("adplatform:platform.logs.retention must be at least 24h") for p in problems), problems


def test_loki_replicates_writes_over_three_replicas_in_production_one_in_staging(production, staging):
    prod, stag = values(production, "loki"), values(staging, "loki")
    assert prod["singleBinary"]["replicas"] == 3 and prod["loki"]["commonConfig"]["replication_factor"] == 3
    assert stag["singleBinary"]["replicas"] == 1 and stag["loki"]["commonConfig"]["replication_factor"] == 1
    # The chart renders the budget only with more than one replica (templates/_pdb.tpl).
    assert prod["singleBinary"]["podDisruptionBudget"] == {"maxUnavailable": 1}
    assert prod["memberlist"]["service"]["publishNotReadyAddresses"] is True  # the ring forms before readiness
    [term] = prod["singleBinary"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term == {"labelSelector": {"matchLabels": logs.LOKI_LABELS}, "topologyKey": "kubernetes.io/hostname"}
    assert logs.LOKI_LABELS == {"app.kubernetes.io/name": "loki", "app.kubernetes.io/instance": "loki",
                                "app.kubernetes.io/component": "single-binary"}
    for run in (production, staging):
        binary = values(run, "loki")["singleBinary"]
        assert binary["persistence"]["enabled"] is True  # the WAL survives a restart
        assert binary["persistence"]["storageClass"] == run.outputs["storageClass"]
        assert binary["resources"]["limits"]["memory"] and binary["resources"]["requests"]["cpu"]


# --- the log collector ----------------------------------------------------------------------------------------
def test_the_log_collector_runs_on_every_node_whatever_its_taints(run):
    collector = values(run, "log-collector")
    assert collector["mode"] == "daemonset"
    taints = stack_taints(run)
    # The stack has tainted pools (databases; production's dedicated control plane): not a vacuous check.
    assert "adplatform.io/dedicated=scylladb:NoSchedule" in taints
    assert ("CriticalAddonsOnly=true:NoExecute" in taints) is (run.stack == "production")
    assert not [t for t in taints if not tolerates(collector["tolerations"], t)]
    assert not [t for t in taints if not tolerates(values(run, "otel-agent")["tolerations"], t)]


def test_the_log_collector_tails_pod_logs_and_pushes_to_loki(run):
    collector = values(run, "log-collector")
    presets = collector["presets"]
    assert presets["logsCollection"] == {"enabled": True, "storeCheckpoints": True}
    assert presets["kubernetesAttributes"]["enabled"] is True
    config = collector["alternateConfig"]
    [exporter] = config["exporters"].values()
    assert exporter["endpoint"] == f"{LOKI_URL}/otlp"
    assert exporter["sending_queue"]["storage"] == "file_storage"  # a Loki outage queues on the node's disk
    pipeline = config["service"]["pipelines"]["logs"]
    assert pipeline["receivers"] == ["filelog"]
    assert pipeline["processors"] == ["memory_limiter", "k8s_attributes", "batch"]
    assert pipeline["exporters"] == list(config["exporters"])
    assert collector["resources"]["limits"]["memory"]


def test_only_the_log_collector_namespace_is_privileged_and_says_why(run):
    spaces = {r.inputs["metadata"]["name"]: r.inputs["metadata"] for r in run.of_type(NS)}
    enforce = "pod-security.kubernetes.io/enforce"
    assert spaces["logging"]["labels"][enforce] == "restricted"
    assert spaces["tracing"]["labels"][enforce] == "restricted"
    assert spaces["log-collector"]["labels"][enforce] == "privileged"
    assert "hostPath" in spaces["log-collector"]["annotations"]["adplatform.io/pod-security-why"]
    security = values(run, "log-collector")["securityContext"]
    assert security["capabilities"] == {"drop": ["ALL"]} and security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True


def test_loki_admits_the_collector_and_monitoring_and_reaches_the_object_store(run):
    from_collector = policy(run, "logging", "allow-from-log-collector")["ingress"][0]
    assert ports(from_collector) == [3100]
    assert ports(policy(run, "logging", "allow-from-monitoring")["ingress"][0]) == [3100]
    to_loki = policy(run, "log-collector", "allow-to-logging")["egress"][0]
    assert ports(to_loki) == [3100] and to_loki["to"][0]["podSelector"]["matchLabels"] == logs.LOKI_LABELS
    assert ports(policy(run, "logging", "allow-to-seaweedfs")["egress"][0]) == [8333]
    assert ports(policy(run, "log-collector", "allow-from-monitoring")["ingress"][0]) == [8888]


# --- collectors for traces ----------------------------------------------------------------------------------
def test_the_gateway_is_the_otlp_service_workloads_are_given_and_exports_to_tempo(run):
    gateway = values(run, "otel-gateway")
    assert gateway["mode"] == "deployment"
    # The chart names the Service after fullnameOverride: the host workloads send to.
    assert OTLP_GATEWAY_HOST == f"{gateway['fullnameOverride']}.tracing.svc.cluster.local"
    closed = {name for name, port in gateway["ports"].items() if port.get("enabled") is False}
    assert closed == {"jaeger-compact", "jaeger-thrift", "jaeger-grpc", "zipkin"}  # OTLP stays open (chart default)
    config = gateway["alternateConfig"]
    receivers = config["receivers"]["otlp"]["protocols"]
    assert receivers["grpc"]["endpoint"].endswith(":4317") and receivers["http"]["endpoint"].endswith(":4318")
    [exporter] = config["exporters"].values()
    # Tempo's Service (release `tempo`) on the port its distributor's OTLP receiver listens on.
    assert exporter["endpoint"] == "tempo.tracing.svc.cluster.local:4317"
    assert tempo_config(run)["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert TEMPO_URL == "http://tempo.tracing.svc.cluster.local:3200"
    pipeline = config["service"]["pipelines"]["traces"]
    assert pipeline["processors"] == ["memory_limiter", "k8s_attributes", "batch"]
    assert gateway["presets"]["kubernetesAttributes"]["enabled"] is True
    assert gateway["serviceMonitor"]["enabled"] is True


def test_the_gateway_runs_two_replicas_with_a_budget_in_production_one_in_staging(production, staging):
    prod, stag = values(production, "otel-gateway"), values(staging, "otel-gateway")
    assert prod["replicaCount"] == 2 and prod["podDisruptionBudget"] == {"enabled": True, "minAvailable": 1}
    assert stag["replicaCount"] == 1 and stag["podDisruptionBudget"] == {"enabled": False}
    [term] = prod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == traces.GATEWAY_LABELS


def test_the_agent_forwards_to_the_gateway_without_host_ports(run):
    agent = values(run, "otel-agent")
    assert agent["mode"] == "daemonset" and agent["service"] == {"enabled": True}
    [exporter] = agent["alternateConfig"]["exporters"].values()
    assert exporter["endpoint"] == f"{OTLP_GATEWAY_HOST}:4317"
    assert agent["ports"]["otlp"]["hostPort"] == 0 and agent["ports"]["otlp-http"]["hostPort"] == 0
    for name in ("jaeger-compact", "jaeger-thrift", "jaeger-grpc", "zipkin"):
        assert agent["ports"][name] == {"enabled": False}


# --- Tempo ------------------------------------------------------------------------------------------------------
def test_tempo_keeps_traces_in_the_traces_bucket(run):
    config = tempo_config(run)
    trace = config["storage"]["trace"]
    assert trace["backend"] == "s3"
    assert trace["s3"] == {"bucket": bucket(run, "traces"), "endpoint": "s3.seaweedfs.svc:8333",
                           "region": "us-east-1", "insecure": True, "forcepathstyle": True}
    assert "access_key" not in trace["s3"] and "secret_key" not in trace["s3"]
    assert values(run, "tempo")["persistence"]["enabled"] is True  # WAL and ring tokens


def test_tempo_never_reports_usage(run):
    """Our `config` replaces the chart's, so the chart's `tempo.reportingEnabled` (read only by its default
    config) would do nothing: the setting must be in the config Tempo reads."""
    assert tempo_config(run)["usage_report"] == {"reporting_enabled": False}
    assert "reportingEnabled" not in values(run, "tempo")["tempo"]


def test_tempo_replicas_form_one_ring_with_three_copies_in_production(production, staging):
    for run, replicas, copies in ((production, 3, 3), (staging, 1, 1)):
        config = tempo_config(run)
        assert values(run, "tempo")["replicas"] == replicas
        assert config["target"] == "scalable-single-binary"
        assert config["ingester"]["lifecycler"]["ring"]["replication_factor"] == copies
        assert config["memberlist"]["join_members"] == ["dns+tempo-headless.tracing.svc.cluster.local:7946"]
        frontends = config["querier"]["frontend_worker"]["frontend_address"]
        assert frontends == "tempo-headless.tracing.svc.cluster.local:9095"
        headless = run.named("tempo-headless", SERVICE).inputs
        assert headless["metadata"]["name"] == "tempo-headless"
        assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
        assert headless["spec"]["selector"] == traces.TEMPO_LABELS
        assert sorted(p["port"] for p in headless["spec"]["ports"]) == [7946, 9095]
    pdb = production.named("tempo-pdb", PDB).inputs
    assert pdb["metadata"]["namespace"] == "tracing" and pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == traces.TEMPO_LABELS
    assert not [r for r in staging.of_type(PDB) if r.name == "tempo-pdb"]  # 1 of 1 would block every drain


def test_tracing_admits_otlp_from_team_and_platform_namespaces_only(run):
    teams = policy(run, "tracing", "allow-from-teams")["ingress"][0]
    assert ports(teams) == [4317, 4318]
    assert teams["from"][0]["namespaceSelector"]["matchLabels"] == {"adplatform.io/layer": "teams"}
    platform = policy(run, "tracing", "allow-from-platform")["ingress"][0]
    assert ports(platform) == [4317, 4318]
    assert platform["from"][0]["namespaceSelector"]["matchLabels"] == {"adplatform.io/layer": "platform"}
    assert ports(policy(run, "tracing", "allow-from-monitoring")["ingress"][0]) == [3200, 8888]
    assert ports(policy(run, "tracing", "allow-to-seaweedfs")["egress"][0]) == [8333]


def test_pods_meet_restricted_pod_security(run):
    tempo = values(run, "tempo")
    assert tempo["securityContext"]["runAsNonRoot"] is True
    assert tempo["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert tempo["tempo"]["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert tempo["tempo"]["securityContext"]["allowPrivilegeEscalation"] is False
    for release in ("otel-gateway", "otel-agent"):
        collector = values(run, release)
        assert collector["podSecurityContext"]["runAsNonRoot"] is True
        assert collector["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_jaeger_is_not_offered():
    problems = config_problems(base_raw(platform={"traces": {"backend": "jaeger"}}))
    assert any(p.startswith("adplatform:platform.traces.backend must be one of tempo") for p in problems), problems


# --- switches, errors, other storage --------------------------------------------------------------------------
def test_switching_logs_and_traces_off_removes_their_releases_and_namespaces(switched_off, staging):
    mine = {"loki", "log-collector", "tempo", "otel-gateway", "otel-agent"}
    assert mine <= {r.name for r in staging.of_type(RELEASE)}
    assert not mine & {r.name for r in switched_off.of_type(RELEASE)}
    spaces = {r.inputs["metadata"]["name"] for r in switched_off.of_type(NS)}
    assert not {"logging", "log-collector", "tracing"} & spaces
    assert not [r for r in switched_off.resources if r.name in ("loki-s3", "tempo-s3", "tempo-headless", "tempo-pdb")]
    summary = switched_off.outputs["platform"]
    assert summary["logs"]["enabled"] is False and summary["traces"]["enabled"] is False


def test_logs_and_traces_without_object_storage_are_refused_naming_both_keys():
    raw = base_raw(profile="staging", clusterServices={"tls": {"acmeEmail": "ops@example.com"}},
                   dataPlane={"objectStorage": {"enabled": False}})
    problems = config_problems(raw)
    for name in ("logs", "traces"):
        assert (f"adplatform:platform.{name}.enabled needs dataPlane.objectStorage.enabled (platform.{name} keeps "
                f"its data there); enable the store or set platform.{name}.enabled: false, got True") in problems


def test_provider_s3_is_reached_over_https_with_the_stack_keys(external):
    loki = values(external, "loki")["loki"]["storage"]
    assert loki["bucketNames"] == {"chunks": "adp-stage-logs"}
    assert loki["s3"] == {"endpoint": "https://fsn1.your-objectstorage.com", "region": "fsn1",
                          "s3ForcePathStyle": False, "insecure": False}
    s3 = tempo_config(external)["storage"]["trace"]["s3"]
    assert s3 == {"bucket": "adp-stage-traces", "endpoint": "fsn1.your-objectstorage.com", "region": "fsn1",
                  "insecure": False, "forcepathstyle": False}
    expected = {"AWS_ACCESS_KEY_ID": "stage-object-key", "AWS_SECRET_ACCESS_KEY": "stage-object-secret"}
    assert string_data(external.named("loki-s3", SECRET)) == expected
    assert string_data(external.named("tempo-s3", SECRET)) == expected
    for namespace in ("logging", "tracing"):
        assert ports(policy(external, namespace, "allow-egress-internet")["egress"][0]) == [443]
    names = {r.name for r in external.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")}
    assert not {"netpol-logging-allow-to-seaweedfs", "netpol-tracing-allow-to-seaweedfs"} & names


def test_our_objects_match_the_cluster_schema(run):
    ours = [r for r in validators.kubernetes_objects(run)
            if r.name in ("loki-s3", "tempo-s3", "tempo-headless", "tempo-pdb")
            or r.name in ("ns-logging", "ns-log-collector", "ns-tracing")
            or r.name.startswith(("netpol-logging-", "netpol-log-collector-", "netpol-tracing-"))]
    assert len(ours) >= 12
    for resource in ours:
        validators.validate_kubernetes(resource.type, resource.inputs)
