"""Redpanda: the operator, the brokers (placement, sizing, production mode, TLS/SASL), users, Console, the endpoint."""

from __future__ import annotations

import json
from functools import lru_cache

import pytest

from components import charts
from components.data import redpanda
from components.data.placement import Resources
from components.host.profiles import BASELINE_SYSCTLS, PROFILES, THP_MODE
from config import ConfigError, load
from config.catalog import SIZES
from config.consumers import store_consumers
from config.model import ROLE_LABEL
from tests import validators, variants
from tests.conftest import SECRET_KEYS, base_raw, stack_run
from tests.stores import (NETPOL, RELEASE, SECRET, assert_operator_ha, assert_spread_over_nodes, chart_of,
                          expected_tolerations, policy, pools, ports, refused_memory, stack_config, string_data)

CLUSTER = "kubernetes:cluster.redpanda.com/v1alpha2:Redpanda"
USER = "kubernetes:cluster.redpanda.com/v1alpha2:User"
CONSOLE = "kubernetes:cluster.redpanda.com/v1alpha2:Console"


# --- helpers ---------------------------------------------------------------------------------------------
def spec(run) -> dict:
    return run.named("redpanda-cluster", CLUSTER).inputs["spec"]["clusterSpec"]


# --- the operator ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("stack", ["production", "staging"])
def test_operator_chart_is_the_pinned_vendor_operator(stack):
    run = stack_run(stack)
    # createNamespace False: our Namespace object (labels, policies) owns it
    assert chart_of(run, "redpanda-operator") == (
        "operator", "26.2.2", "https://charts.redpanda.com", "redpanda-operator", False)
    assert charts.CHARTS["operator"] is charts.REDPANDA_OPERATOR
    values = run.named("redpanda-operator", RELEASE).inputs["values"]
    assert values["crds"] == {"enabled": True}
    assert values["image"]["tag"] == "v26.2.2" and values["telemetry"] == {"enabled": False}
    assert "tolerations" not in values and "nodeSelector" not in values  # general nodes, never a database pool


def test_operator_runs_two_replicas_with_a_budget_in_production_one_in_staging(production, staging):
    labels = {"app.kubernetes.io/name": "operator", "app.kubernetes.io/instance": "redpanda-operator"}
    assert labels == redpanda.OPERATOR_LABELS  # operator/chart/helpers.go SelectorLabels
    assert_operator_ha(production, staging, "redpanda-operator", "redpanda-operator", labels)
    assert_spread_over_nodes(production.named("redpanda-operator", RELEASE).inputs["values"]["affinity"], labels)


# --- brokers ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("stack", "brokers"), [("production", 3), ("staging", 1)])
def test_brokers_and_topic_replication_follow_the_pool(stack, brokers):
    run = stack_run(stack)
    cluster = spec(run)
    assert cluster["statefulset"]["replicas"] == brokers
    assert cluster["config"]["cluster"]["default_topic_replications"] == brokers
    assert cluster["config"]["cluster"]["internal_topic_replication_factor"] == brokers
    retention = stack_config(run).data_plane.redpanda.retention_hours
    assert cluster["config"]["cluster"]["log_retention_ms"] == retention * 3600 * 1000
    assert run.outputs["dataPlane"]["redpanda"]["shape"]["replication"] == brokers


@pytest.mark.parametrize("stack", ["production", "staging"])
def test_brokers_run_on_exactly_the_redpanda_pool_one_per_node(stack):
    run = stack_run(stack)
    own = pools(run, "redpanda")
    assert own, "the profile gives Redpanda its own pool"
    taints = sorted({t for p in own for t in p.node_taints})
    assert taints == ["adplatform.io/dedicated=redpanda:NoSchedule"]
    pod = spec(run)["statefulset"]["podTemplate"]["spec"]
    assert pod["tolerations"] == expected_tolerations(taints)
    assert "tolerations" not in spec(run) and "nodeSelector" not in spec(run)  # nothing cluster-wide
    assert pod["nodeSelector"] == {ROLE_LABEL: own[0].node_labels[ROLE_LABEL]}
    [term] = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == redpanda.BROKER_LABELS


def test_compact_clusters_spread_brokers_over_the_converged_nodes():
    run = stack_run("production-baremetal")  # the compact profile: 5 converged, untainted servers
    cluster = spec(run)
    pod = cluster["statefulset"]["podTemplate"]["spec"]
    assert cluster["statefulset"]["replicas"] == 3
    assert pod["nodeSelector"] == {ROLE_LABEL: "converged"}
    taints = {t for p in pools(run, "converged") for t in p.node_taints}
    assert pod["tolerations"] == expected_tolerations(sorted(taints)) == []


@pytest.mark.parametrize("stack", ["production", "staging"])
def test_resources_are_guaranteed_whole_cpus_sized_from_the_pool(stack):
    run = stack_run(stack)
    cluster = spec(run)
    res = cluster["resources"]
    assert res["requests"] == res["limits"]
    cpu, memory = res["limits"]["cpu"], res["limits"]["memory"]
    assert cpu.isdigit() and int(cpu) >= 1
    size = SIZES[pools(run, "redpanda")[0].size]
    assert int(cpu) <= size.vcpus - 1 and Resources(cpu, memory).memory_mib < size.memory_gb * 1024
    # Every helper container of the broker pods is Guaranteed too, or the pod loses pinned cores.
    pod = cluster["statefulset"]["podTemplate"]["spec"]
    for container in [*pod["containers"], *pod["initContainers"]]:
        assert container["resources"]["requests"] == container["resources"]["limits"], container["name"]
    assert {c["name"] for c in pod["initContainers"]} == {"tuning", "redpanda-configurator"}
    shape = run.outputs["dataPlane"]["redpanda"]["shape"]
    assert (shape["cpu"], shape["memory"]) == (cpu, memory)


def test_redpanda_starts_with_the_cores_and_memory_it_is_given(production):
    cluster = spec(production)
    limits = cluster["resources"]["limits"]
    flags = dict(f.split("=", 1) for f in cluster["statefulset"]["additionalRedpandaCmdFlags"])
    assert flags["--smp"] == limits["cpu"]
    assert flags["--memory"] == f"{int(Resources(limits['cpu'], limits['memory']).memory_mib * 0.9)}M"
    assert flags["--reserve-memory"] == "0M"
    assert int(flags["--memory"][:-1]) >= 2048 * int(limits["cpu"])  # the vendor's 2 GiB per core


@pytest.mark.parametrize("stack", ["production", "staging"])
def test_storage_is_a_persistent_volume_of_the_configured_size(stack):
    run = stack_run(stack)
    volume = spec(run)["storage"]["persistentVolume"]
    assert volume == {"enabled": True, "size": stack_config(run).data_plane.redpanda.storage_size,
                      "storageClass": run.outputs["storageClass"] + "-xfs"}, "Redpanda wants XFS data directories"
    assert volume["size"] == {"production": "500Gi", "staging": "50Gi"}[stack]
    # Deleting the cluster keeps the data; a broker the operator decommissioned on a scale-down leaves no volume
    # behind, or a later scale-up would hand it to a new broker that crashloops on the old identity (K8S-843).
    assert spec(run)["statefulset"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain",
                                                                                "whenScaled": "Delete"}


def test_the_chart_budget_keeps_a_broker_quorum(production, staging):
    # charts/redpanda values.yaml statefulset.budget: the chart's PodDisruptionBudget over the brokers.
    for run in (production, staging):
        assert spec(run)["statefulset"]["budget"] == {"maxUnavailable": 1}
    assert spec(production)["statefulset"]["replicas"] - 1 >= 2  # a drain leaves a majority of 3


def test_production_mode_with_host_tuners_but_not_the_thp_tuner(production):
    cluster = spec(production)
    assert cluster["config"]["node"] == {"developer_mode": False}
    assert cluster["tuning"]["apply_host_tuners"] is True and cluster["tuning"]["tune_aio_events"] is True
    assert cluster["config"]["rpk"]["tune_transparent_hugepages"] is False
    # The host tuning owns THP (madvise) and swappiness; the Redpanda pool's profile leaves rpk the rest.
    assert THP_MODE == "madvise" and BASELINE_SYSCTLS["vm.swappiness"] == "1"
    assert cluster["config"]["rpk"]["tune_swappiness"] is False
    assert PROFILES["redpanda"].sysctls == {} and PROFILES["redpanda"].cpu_governor == ""
    assert not PROFILES["redpanda"].fstrim  # rpk's fstrim tuner installs the timer


# --- security --------------------------------------------------------------------------------------------
def test_every_listener_is_tls_and_clients_authenticate(production):
    cluster = spec(production)
    listeners = cluster["listeners"]
    assert set(listeners) == {"admin", "kafka", "schemaRegistry", "http", "rpc"}
    for name, listener in listeners.items():
        assert listener["tls"] == {"enabled": True, "cert": "default", "requireClientAuth": False}, name
    assert listeners["kafka"]["authenticationMethod"] == "sasl"
    assert listeners["schemaRegistry"]["authenticationMethod"] == listeners["http"]["authenticationMethod"] == \
        "http_basic"
    # The brokers' certificate from the data plane's CA (its ClusterIssuer), with the internal DNS names the chart
    # adds only on request once an issuerRef is given (charts/redpanda/certs.go at operator/v26.2.2).
    assert cluster["tls"] == {"enabled": True, "certs": {"default": {
        "caEnabled": True, "issuerRef": {"name": redpanda.CA_ISSUER, "kind": "ClusterIssuer"},
        "applyInternalDNSNames": True}}}
    assert cluster["external"] == {"enabled": False}
    sasl = cluster["auth"]["sasl"]
    assert sasl["enabled"] is True and sasl["mechanism"] == "SCRAM-SHA-512"
    assert sasl["secretRef"] == "redpanda-superusers" and sasl["users"] == []  # no password in the resource
    assert sasl["bootstrapUser"]["secretKeyRef"] == {"name": "redpanda-bootstrap-user", "key": "password"}


def containers(value):
    """Every container (a dict with an image and a command or env) anywhere in rendered inputs."""
    if isinstance(value, dict):
        if "image" in value and ("env" in value or "command" in value):
            yield value
        for item in value.values():
            yield from containers(item)
    elif isinstance(value, list):
        for item in value:
            yield from containers(item)


def admin_callers(run) -> dict[str, dict]:
    """Containers of ours pointed at the cluster's Admin API (rpk's admin hosts or a URL on its port), by name."""
    found = {}
    for resource in run.resources:
        if resource.type == CLUSTER:
            continue  # the chart's own pods: test_the_admin_api_asks_a_superusers_login
        for c in containers(resource.inputs):
            env = {e["name"]: e.get("value", "") for e in c.get("env", [])}
            text = json.dumps([env, c.get("command"), c.get("args")])
            if f".{redpanda.NAMESPACE}.svc.cluster.local:{redpanda.ADMIN_PORT}" in text:
                found[f"{resource.name}/{c['name']}"] = c
    return found


@pytest.mark.parametrize("stack", ["production", "staging"])
def test_the_admin_api_asks_a_superusers_login(stack):
    """Redpanda's Admin API serves superusers only once `admin_api_require_auth` is on; the operator, the chart's
    sidecar and configurator and the Console then log in as the bootstrap user, from its own Secret (the chart and
    operator read that property from `config.cluster`: charts/redpanda render_state.go at operator/v26.2.2)."""
    cluster = spec(stack_run(stack))
    assert cluster["config"]["cluster"]["admin_api_require_auth"] is True
    sasl = cluster["auth"]["sasl"]
    assert sasl["enabled"] is True  # the chart gives the pods RPK_USER/RPK_PASS only with SASL on
    assert sasl["bootstrapUser"]["secretKeyRef"] == {"name": redpanda.BOOTSTRAP_SECRET, "key": "password"}
    assert redpanda.BOOTSTRAP_SECRET != sasl["secretRef"]  # the operator's login is not the people's superuser
    assert "basicAuth" not in json.dumps(cluster["monitoring"])  # /public_metrics asks no login


def test_no_job_of_ours_calls_the_admin_api_as_it_holds_no_superuser(production):
    """Every caller of the Admin API must log in as a superuser, and a superuser passes every Kafka ACL: so the
    backup export, the import and the drill canary (read-only or write-only users, each from its own Secret) stay off
    it, and their scripts make no Admin API call (users and cluster config are Pulumi's)."""
    callers = admin_callers(production)
    assert callers == {}, sorted(callers)
    scripts = production.named("redpanda-backup-scripts", "kubernetes:core/v1:ConfigMap").inputs["data"]
    for name, text in scripts.items():
        for admin_command in ("rpk security user", "rpk cluster config", "rpk redpanda admin", "rpk cluster health",
                              f":{redpanda.ADMIN_PORT}"):
            assert admin_command not in text, (name, admin_command)


CERT_MANAGER_API = "kubernetes:cert-manager.io/v1:"


@pytest.mark.parametrize("stack", ["production", "staging"])
def test_the_listeners_ca_is_the_data_planes_and_the_cluster_waits_for_it(stack):
    """Self-signed root -> CA Certificate (in cert-manager's namespace, where a ClusterIssuer reads its Secret) ->
    the ClusterIssuer the brokers' certificate and the consumers' CA copies come from."""
    run = stack_run(stack)
    root = run.named("redpanda-ca-issuer", CERT_MANAGER_API + "Issuer").inputs
    ca = run.named("redpanda-ca-certificate", CERT_MANAGER_API + "Certificate")
    issuer = run.named("redpanda-ca-clusterissuer", CERT_MANAGER_API + "ClusterIssuer")
    namespace = charts.CERT_MANAGER.namespace
    assert root["metadata"]["namespace"] == namespace and root["spec"] == {"selfSigned": {}}
    assert ca.inputs["metadata"]["namespace"] == namespace and ca.inputs["spec"]["isCA"] is True
    assert ca.inputs["spec"]["issuerRef"] == {"name": root["metadata"]["name"], "kind": "Issuer",
                                              "group": "cert-manager.io"}
    assert "namespace" not in issuer.inputs["metadata"] or not issuer.inputs["metadata"]["namespace"]
    assert issuer.inputs["metadata"]["name"] == redpanda.CA_ISSUER
    assert issuer.inputs["spec"] == {"ca": {"secretName": ca.inputs["spec"]["secretName"]}}
    assert issuer.urn in run.named("redpanda-cluster").dependencies  # no broker certificate without its issuer
    assert run.outputs["dataPlane"]["redpanda"]["endpoint"]["caIssuer"] == redpanda.CA_ISSUER
    from tests import validators, variants
    for r in (run.named("redpanda-ca-issuer"), ca, issuer):
        validators.validate_kubernetes(r.type, r.inputs)


@pytest.mark.parametrize("stack", ["production", "staging"])
def test_credentials_are_generated_secret_and_protected_in_production(stack):
    run = stack_run(stack)
    users = string_data(run.named("redpanda-superusers", SECRET))
    assert set(users) == {"users.txt"}  # every key of this Secret is read as a users file
    name, password, mechanism = users["users.txt"].split(":")
    assert (name, mechanism) == ("admin", "SCRAM-SHA-512") and len(password) == 32
    assert set(string_data(run.named("redpanda-bootstrap-user", SECRET))) == {"password"}
    app = string_data(run.named("redpanda-user-bidding", SECRET))
    assert app["username"] == "bidding" and len(app["password"]) == 32
    for secret in ("redpanda-superusers", "redpanda-bootstrap-user", "redpanda-user-bidding"):
        assert run.named(secret, SECRET).inputs["metadata"]["namespace"] == "redpanda"
    generated = [r for r in run.of_type("random:index/randomPassword:RandomPassword") if r.name.startswith("redpanda-")]
    consumers = [c.name for c in store_consumers(stack_config(run))["redpanda"]]
    # superuser, bootstrap, one per consumer, and the backup export's reader (redpanda_backup.py)
    assert len(generated) == 3 + len(consumers) and all(r.protect == (stack == "production") for r in generated)
    assert run.named("redpanda-cluster", CLUSTER).protect == (stack == "production")
    assert "password" not in json.dumps(spec(run)).replace('"key": "password"', "")


def test_each_service_user_produces_and_consumes_but_administers_nothing(production):
    user = production.named("redpanda-user-bidding-acls", USER).inputs
    assert user["metadata"] == {**user["metadata"], "name": "bidding", "namespace": "redpanda"}
    auth = user["spec"]["authentication"]
    assert auth["password"]["valueFrom"]["secretKeyRef"] == {"name": "redpanda-user-bidding", "key": "password"}
    assert auth["type"] == "SCRAM-SHA-512" and auth["syncCredentials"] is True
    ops = {acl["resource"]["type"]: set(acl["operations"]) for acl in user["spec"]["authorization"]["acls"]}
    assert ops["topic"] >= {"Read", "Write"} and "Delete" not in ops["topic"] and "Alter" not in ops["topic"]
    assert ops["cluster"] == {"IdempotentWrite"}  # cluster Describe would list every user's ACLs
    cluster = production.named("redpanda-cluster", CLUSTER)
    assert cluster.urn in production.named("redpanda-user-bidding-acls", USER).dependencies
    # The CRD refuses to move a User to another cluster ("ClusterSource is immutable"): that replaces the user.
    options = production.named("redpanda-user-bidding-acls", USER).options
    assert options["replaceOnChanges"] == ["spec.cluster"] and options["deleteBeforeReplace"] is True
    assert cluster.options["replaceOnChanges"] == [], "the brokers are never replaced on a field change"


def test_namespaces_admit_clients_prometheus_and_the_operator_only(production):
    ns = production.named("ns-redpanda", "kubernetes:core/v1:Namespace").inputs["metadata"]["labels"]
    assert ns["pod-security.kubernetes.io/enforce"] == "privileged"  # the host tuners
    op_ns = production.named("ns-redpanda-operator", "kubernetes:core/v1:Namespace").inputs["metadata"]["labels"]
    assert op_ns["pod-security.kubernetes.io/enforce"] == "baseline"
    for peer in ("teams", "platform"):
        [rule] = policy(production, "redpanda", f"allow-from-{peer}")["ingress"]
        assert ports(rule) == [8081, 8082, 9093]
    [rule] = policy(production, "redpanda", "allow-from-monitoring")["ingress"]
    assert ports(rule) == [9644]  # metrics only
    [rule] = policy(production, "redpanda", "allow-from-redpanda-operator")["ingress"]
    assert ports(rule) == [8081, 8082, 9093, 9644]
    [rule] = policy(production, "redpanda-operator", "allow-to-redpanda")["egress"]
    assert rule["to"][0]["podSelector"]["matchLabels"] == redpanda.BROKER_LABELS
    names = {r.name for r in production.of_type(NETPOL)}
    # Outside the cluster: only HTTPS to the backup S3 (the export job's uploads), no telemetry
    [rule] = policy(production, "redpanda", "allow-egress-internet")["egress"]
    assert ports(rule) == [443]
    assert not [r for r in production.resources if r.name == "netpol-redpanda-allow-from-gateway"]


# --- monitoring, Console, images ---------------------------------------------------------------------------
def test_metrics_through_the_charts_service_monitor_with_verified_tls(production):
    monitoring = spec(production)["monitoring"]
    assert monitoring["enabled"] is True
    assert monitoring["tlsConfig"] == {"ca": {"secret": {"name": "redpanda-default-cert", "key": "ca.crt"}},
                                       "serverName": "redpanda.redpanda.svc.cluster.local"}


def test_console_is_our_own_resource_connected_to_the_cluster_and_never_routed_through_the_gateway(production):
    """`clusterSpec.console` is deprecated at operator v26.2.2 (its Console would be an object nobody owns once
    migrated): the cluster's is opted out of (the redpanda chart's default is on) and we declare the Console."""
    assert spec(production)["console"] == {"enabled": False}
    [console] = production.of_type(CONSOLE)
    assert console.inputs["metadata"]["namespace"] == "redpanda"
    validators.validate_kubernetes(CONSOLE, console.inputs)  # the CRD schema we keep (tests/crd_schemas/)
    console_spec = console.inputs["spec"]
    assert console_spec["cluster"] == {"clusterRef": {"name": "redpanda"}}  # SASL/TLS derived from the cluster
    assert console_spec["image"]["tag"] == charts.REDPANDA_CONSOLE_VERSION == "v3.9.0"
    assert console_spec["resources"]["limits"]["memory"] and console_spec["replicaCount"] == 1
    assert production.named("redpanda-cluster", CLUSTER).urn in console.dependencies
    routes = [r for r in production.of_type("kubernetes:gateway.networking.k8s.io/v1:HTTPRoute")
              if "redpanda" in json.dumps(r.inputs)]
    assert routes == []


def test_bundled_images_are_pinned(production):
    cluster = spec(production)
    assert cluster["image"] == {"repository": "docker.redpanda.com/redpandadata/redpanda", "tag": "v26.2.1"}
    assert cluster["statefulset"]["sideCars"]["image"]["tag"] == charts.REDPANDA_OPERATOR_VERSION
    assert cluster["statefulset"]["initContainerImage"] == {"repository": "busybox", "tag": "1.37.0"}
    assert ":latest" not in json.dumps(cluster) and '"latest"' not in json.dumps(cluster)


def test_backups_without_enterprise_features(production):
    """Tiered storage (object storage) is an enterprise feature: the backup is the export job's, under the
    store's own prefix."""
    assert production.outputs["dataPlane"]["redpanda"]["shape"]["backup"] == \
        "s3://adp-production-backups/production/data/redpanda"
    assert "tiered" not in spec(production)["storage"] and "tiered" not in json.dumps(spec(production))
    assert not any(k.startswith("cloud_storage") for k in spec(production)["config"]["cluster"])


# --- the endpoint ----------------------------------------------------------------------------------------
def test_endpoint_names_brokers_registry_and_secrets_without_values(production, staging):
    endpoint = production.outputs["dataPlane"]["redpanda"]["endpoint"]
    assert endpoint["brokers"] == [f"redpanda-{i}.redpanda.redpanda.svc.cluster.local:9093" for i in range(3)]
    assert endpoint["schemaRegistry"] == "https://redpanda.redpanda.svc.cluster.local:8081"
    assert endpoint["saslMechanism"] == "SCRAM-SHA-512" and endpoint["caSecret"] == "redpanda-default-cert"
    assert endpoint["users"]["bidding"] == {"secret": "redpanda-user-bidding", "namespace": "redpanda",
                                            "keys": ["username", "password"]}
    assert endpoint["ports"] == [9093, 8081, 8082] and endpoint["podLabels"] == redpanda.BROKER_LABELS
    assert len(staging.outputs["dataPlane"]["redpanda"]["endpoint"]["brokers"]) == 1
    assert "offline-" not in json.dumps(endpoint)


# --- config ----------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _variant():
    """The console off and 24 h retention (a run shared with other files: tests/variants.py)."""
    return variants.data_variant()


def test_console_can_be_turned_off_and_retention_follows_config():
    cluster = spec(_variant())
    assert cluster["console"] == {"enabled": False} and _variant().of_type(CONSOLE) == []
    assert cluster["config"]["cluster"]["log_retention_ms"] == 24 * 3600 * 1000


@pytest.mark.parametrize(("settings", "expected"), [
    ({"cpu": "2500m"}, "adplatform:dataPlane.redpanda.cpu must be a whole number of CPUs"),
    ({"cpu": "4", "memory": "8Gi"}, "adplatform:dataPlane.redpanda memory 8Gi is too small for cpu 4"),
    ({"retentionHours": 0}, "adplatform:dataPlane.redpanda.retentionHours must be between 1 and 87600"),
])
def test_config_errors_name_the_key(settings, expected):
    with pytest.raises(ConfigError) as exc:
        load("test", base_raw(dataPlane={"redpanda": settings}), SECRET_KEYS)
    assert any(str(p).startswith(expected) for p in exc.value.problems), exc.value.problems
    load("test", base_raw(dataPlane={"redpanda": {"cpu": "4", "memory": "10Gi"}}), SECRET_KEYS)


def test_too_little_memory_from_the_pool_is_refused_with_the_keys_to_set():
    # (the pool's own share never gets here: context.resources gives fewer cores; a configured pair is
    # checked in config/data.py)
    assert refused_memory("redpanda", "4", "6Gi") == (
        "adplatform:dataPlane.redpanda gets cpu 4 and memory 6Gi from its pools ['redpanda']: Redpanda needs 2Gi per "
        "core of the 90% it is given, so at least 9103Mi; set dataPlane.redpanda.cpu and memory")
