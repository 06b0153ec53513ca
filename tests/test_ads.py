"""The ad services in production and staging: every service's objects, their selectors, autoscaling and budgets,
network policies against real pods and stores, env wiring against the data plane's outputs, routes, telemetry."""

from __future__ import annotations

import json

import pytest

from components.ads.context import HOT_PATH_CLASS, SERVICE_PORT
from components.ads.stores import REDPANDA_CA_DIR, REDPANDA_CA_SECRET, credential_secret
from components.data import clickhouse, dragonfly, redpanda, scylladb
from components.data.scylladb import cluster as scylla_cluster
from components.services import gateway
from config.catalog import SERVICE_CONTAINER
from tests import validators, variants
from tests.conftest import script_param, stack_run
from tests.netpol import PROMETHEUS_PEER
from tests.stores import NETPOL, PDB, SECRET, stack_config, string_data
from tools.mockrun import Run

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
CNP = "kubernetes:cilium.io/v2:CiliumNetworkPolicy"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"
PRIORITY = "kubernetes:scheduling.k8s.io/v1:PriorityClass"
STACKS = ["production", "staging"]
SERVICES = ["ad-serving", "bidding", "analytics-ingestion", "campaign-management", "reporting", "audience-targeting",
            "api-gateway", "ml-inference"]
HOT_PATH = {"ad-serving", "bidding", "ml-inference"}
PUBLIC = {"ad-serving": "ads", "bidding": "rtb", "api-gateway": "api"}
# The data plane's own names for the Secret holding a consumer's login (its modules' functions, not literals here).
SOURCE_SECRETS = {"scylladb": scylladb.user_secret, "dragonfly": dragonfly.user_secret,
                  "redpanda": redpanda.user_secret, "clickhouse": clickhouse.users.user_secret}


def ads_config(run: Run):
    return stack_config(run).ad_services


def obj(run: Run, type_: str, svc: str) -> dict:
    return run.named(f"ads-{svc}", type_).inputs


def ads_objects(run: Run, type_: str) -> list:
    return [r for r in run.of_type(type_) if "adplatform:ads:" in r.urn]


def pod(run: Run, svc: str) -> dict:
    return obj(run, DEPLOYMENT, svc)["spec"]["template"]


def app(run: Run, svc: str) -> dict:
    [container] = pod(run, svc)["spec"]["containers"]
    return container


def env_of(run: Run, svc: str) -> dict[str, dict]:
    return {e["name"]: e for e in app(run, svc)["env"]}


def endpoint(run: Run, store: str) -> dict:
    return run.outputs["dataPlane"][store]["endpoint"]


def ports(rule: dict) -> list[int]:
    return sorted(int(p["port"]) for p in rule["ports"])


# --- every service, every object ---------------------------------------------------------------------------
def test_the_profiles_declare_the_eight_services():
    for stack in STACKS:
        assert sorted(ads_config(stack_run(stack)).enabled) == sorted(SERVICES)
        assert set(stack_run(stack).outputs["adServices"]) == set(SERVICES)


@pytest.mark.parametrize("stack", STACKS)
def test_every_service_gets_its_objects_with_one_set_of_labels(stack):
    run = stack_run(stack)
    for svc in SERVICES:
        deployment = obj(run, DEPLOYMENT, svc)
        labels = deployment["spec"]["selector"]["matchLabels"]
        assert labels == {"app.kubernetes.io/name": svc, "app.kubernetes.io/part-of": "adplatform"}
        assert deployment["metadata"] == {**deployment["metadata"], "name": svc, "namespace": "ads"}
        assert deployment["spec"]["template"]["metadata"]["labels"] == labels
        service = obj(run, SERVICE, svc)
        assert service["metadata"]["name"] == svc and service["spec"]["selector"] == labels
        policy = obj(run, NETPOL, svc)
        assert policy["spec"]["podSelector"]["matchLabels"] == labels
        assert policy["metadata"]["namespace"] == "ads"
        monitor = run.named(f"ads-{svc}-metrics", MONITOR).inputs
        # A ServiceMonitor selects Services: ours by the pods' labels, which the Service carries too.
        assert monitor["spec"]["selector"]["matchLabels"] == labels
        assert labels.items() <= service["metadata"]["labels"].items()
        [endpoint_] = monitor["spec"]["endpoints"]
        assert endpoint_["port"] in {p["name"] for p in service["spec"]["ports"]}
        assert endpoint_["path"] == "/metrics"
        hpa = obj(run, HPA, svc)["spec"]
        assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": svc}
        if stack == "production":
            assert obj(run, PDB, svc)["spec"]["selector"]["matchLabels"] == labels


@pytest.mark.parametrize("stack", STACKS)
def test_autoscaler_bounds_come_from_config_and_the_budget_never_blocks(stack):
    run = stack_run(stack)
    cfg = ads_config(run)
    budgets = {r.name for r in ads_objects(run, PDB)}
    for svc in SERVICES:
        hpa = obj(run, HPA, svc)["spec"]
        want = cfg.services[svc]
        assert (hpa["minReplicas"], hpa["maxReplicas"]) == (want.min_replicas, want.max_replicas)
        assert hpa["minReplicas"] <= hpa["maxReplicas"]
        # The first rollout starts at the autoscaler's minimum; afterwards the autoscaler owns the count.
        assert obj(run, DEPLOYMENT, svc)["spec"]["replicas"] == hpa["minReplicas"]
        [cpu] = hpa["metrics"]
        assert cpu["resource"]["name"] == "cpu" and cpu["resource"]["target"]["type"] == "Utilization"
        assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
        if hpa["minReplicas"] >= 2:
            pdb = obj(run, PDB, svc)["spec"]
            # One pod at a time: the budget's floor (replicas - 1, the issue's "minAvailable below minReplicas")
            # lets a drain evict one pod even at minReplicas, and never the last one serving.
            assert pdb["maxUnavailable"] == 1 and "minAvailable" not in pdb
            assert hpa["minReplicas"] - pdb["maxUnavailable"] >= 1
            assert pdb["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
        else:
            assert f"ads-{svc}" not in budgets  # a single replica: no budget
    if stack == "staging":
        assert budgets == set()


def test_production_runs_every_service_highly_available_and_the_hot_path_wider(production, staging):
    for svc in SERVICES:
        minimum = obj(production, HPA, svc)["spec"]["minReplicas"]
        assert minimum >= (3 if svc in HOT_PATH else 2), svc
        assert obj(staging, HPA, svc)["spec"]["minReplicas"] == 1
        assert obj(staging, HPA, svc)["spec"]["maxReplicas"] <= 2


@pytest.mark.parametrize("stack", STACKS)
def test_hot_path_services_run_with_their_own_priority_class(stack):
    run = stack_run(stack)
    [klass] = ads_objects(run, PRIORITY)
    assert klass.inputs["metadata"]["name"] == HOT_PATH_CLASS
    assert 0 < klass.inputs["value"] < 1_000_000_000  # above ordinary pods, below the system classes
    # Queue priority without eviction: the platform's pods on the same nodes have no class of their own yet.
    assert klass.inputs["preemptionPolicy"] == "Never" and klass.inputs["globalDefault"] is False
    for svc in SERVICES:
        spec = pod(run, svc)["spec"]
        assert spec.get("priorityClassName") == (HOT_PATH_CLASS if svc in HOT_PATH else None), svc


# --- the pod --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stack", STACKS)
def test_the_container_is_ci_owned_pinned_restricted_and_probed(stack):
    run = stack_run(stack)
    for svc in SERVICES:
        deployment = run.named(f"ads-{svc}", DEPLOYMENT)
        # CI's deploy job runs `kubectl set image deployment/<service> app=<image>`: Pulumi must not undo it.
        assert deployment.options["ignoreChanges"] == ["spec.template.spec.containers[0].image", "spec.replicas"]
        container = app(run, svc)
        assert container["name"] == SERVICE_CONTAINER == "app"
        image = container["image"]
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
        assert image == "ghcr.io/stefanprodan/podinfo:6.14.1"  # the placeholder until a team's image exists
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]} and security["runAsNonRoot"] is True
        pod_security = pod(run, svc)["spec"]["securityContext"]
        assert pod_security["runAsNonRoot"] is True and pod_security["runAsUser"] > 0
        assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        resources = container["resources"]
        assert set(resources["requests"]) == {"cpu", "memory"} and set(resources["limits"]) == {"memory"}
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
        assert pod(run, svc)["spec"]["automountServiceAccountToken"] is False
        strategy = obj(run, DEPLOYMENT, svc)["spec"]["strategy"]["rollingUpdate"]
        assert strategy["maxUnavailable"] == 0  # a rollout never drops below the replicas serving traffic


def test_replicas_spread_over_nodes_required_in_production(production, staging):
    for run, when in ((production, "DoNotSchedule"), (staging, "ScheduleAnyway")):
        for svc in SERVICES:
            [spread] = pod(run, svc)["spec"]["topologySpreadConstraints"]
            assert spread["topologyKey"] == "kubernetes.io/hostname" and spread["maxSkew"] == 1
            assert spread["whenUnsatisfiable"] == when
            assert spread["labelSelector"]["matchLabels"] == obj(run, DEPLOYMENT, svc)["spec"]["selector"]["matchLabels"]
            # Tainted database nodes are no domain the spread must fill; only the current revision counts.
            assert spread["nodeTaintsPolicy"] == "Honor" and spread["matchLabelKeys"] == ["pod-template-hash"]


# --- network policies -----------------------------------------------------------------------------------------
def _callers(run: Run) -> dict[str, list[str]]:
    return {svc: list(ads_config(run).services[svc].callers) for svc in SERVICES}


@pytest.mark.parametrize("stack", STACKS)
def test_a_service_admits_only_its_declared_callers_which_may_reach_it(stack):
    run = stack_run(stack)
    callers = _callers(run)
    assert callers["ml-inference"] == ["ad-serving", "bidding"]
    assert set(callers["reporting"]) == {"api-gateway"}
    labels = {svc: obj(run, DEPLOYMENT, svc)["spec"]["template"]["metadata"]["labels"] for svc in SERVICES}
    port = {svc: app(run, svc)["ports"][0]["containerPort"] for svc in SERVICES}
    for svc in SERVICES:
        spec = obj(run, NETPOL, svc)["spec"]
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        # Callers are peers of this namespace (a pod selector only); Prometheus comes from monitoring.
        from_pods = [r for r in spec["ingress"] if any(set(p) == {"podSelector"} for p in r["from"])]
        if callers[svc]:
            [rule] = from_pods
            # Each peer is a real pod label set of a declared caller, on the service's own container port.
            assert [p["podSelector"]["matchLabels"] for p in rule["from"]] == [labels[c] for c in callers[svc]]
            assert all("namespaceSelector" not in p for p in rule["from"])  # the same namespace only
            assert ports(rule) == [port[svc]]
        else:
            assert from_pods == []
        # Prometheus scrapes the metrics port, and nothing else comes from another namespace.
        [rule] = [r for r in spec["ingress"] if r not in from_pods]
        assert rule["from"] == [PROMETHEUS_PEER]  # Prometheus' pods only, not Grafana beside them
        assert ports(rule) == [port[svc]]  # /metrics on the HTTP port (the placeholder's)
        # The other direction: every caller may send to it (team namespaces allow nothing by default).
        for caller in callers[svc]:
            egress = obj(run, NETPOL, caller)["spec"]["egress"]
            assert {"to": [{"podSelector": {"matchLabels": labels[svc]}}],
                    "ports": [{"protocol": "TCP", "port": port[svc]}]} in egress, (caller, svc)
    # Nobody may call a service that declares no callers (api-gateway is reached through the gateway only).
    for svc in ("api-gateway", "ad-serving", "bidding", "analytics-ingestion"):
        assert all(labels[svc] != t["podSelector"]["matchLabels"]
                   for other in SERVICES for rule in obj(run, NETPOL, other)["spec"].get("egress", [])
                   for t in rule["to"] if "podSelector" in t and "namespaceSelector" not in t)


def test_the_team_namespace_itself_allows_no_traffic_between_pods(production):
    """Without the namespace-wide allow, the per-service policies above are what lets services talk."""
    names = {r.name for r in production.of_type(NETPOL) if r.inputs["metadata"]["namespace"] == "ads"}
    assert "netpol-ads-allow-same-namespace" not in names and "netpol-ads-default-deny" in names


STORE_EGRESS = {  # store -> (namespace, pod labels, ports) from the data plane's modules
    "scylladb": (scylladb.NAMESPACE, scylla_cluster.POD_LABELS, sorted(scylladb.CLIENT_PORTS)),
    "dragonfly": (dragonfly.NAMESPACE, dragonfly.POD_LABELS, [dragonfly.PORT]),
    "redpanda": (redpanda.NAMESPACE, redpanda.BROKER_LABELS, sorted(redpanda.CLIENT_PORTS)),
    "clickhouse": (clickhouse.NAMESPACE, clickhouse.SERVER_POD_LABELS, sorted((clickhouse.HTTP_PORT,
                                                                              clickhouse.NATIVE_PORT))),
}
STORE_NAMESPACE_POLICY = {"scylladb": "scylla", "dragonfly": "dragonfly", "redpanda": "redpanda",
                          "clickhouse": "clickhouse"}


@pytest.mark.parametrize("stack", STACKS)
def test_store_egress_matches_the_store_pods_and_what_their_namespace_admits(stack):
    run = stack_run(stack)
    cfg = ads_config(run)
    for svc in SERVICES:
        egress = obj(run, NETPOL, svc)["spec"].get("egress", [])
        to_stores = {rule["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]: rule
                     for rule in egress if "namespaceSelector" in rule["to"][0]}
        for store in cfg.services[svc].stores:
            namespace, labels, want_ports = STORE_EGRESS[store]
            out = endpoint(run, store)
            assert (namespace, labels) == (out["namespace"], out["podLabels"])  # the module and its endpoint agree
            rule = to_stores.pop(namespace)
            assert rule["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                                   "podSelector": {"matchLabels": labels}}]
            assert ports(rule) == want_ports
            # The store's namespace admits team namespaces on each of these ports.
            admitted = run.named(f"netpol-{STORE_NAMESPACE_POLICY[store]}-allow-from-teams", NETPOL).inputs["spec"]
            assert set(want_ports) <= set(ports(admitted["ingress"][0]))
        # Left: the trace collector only (traces are on in both stacks).
        assert list(to_stores) == ["tracing"], (svc, list(to_stores))
        assert ports(to_stores["tracing"]) == [4317]


# --- env wiring -----------------------------------------------------------------------------------------------
def _ref(entry: dict) -> tuple[str, str]:
    ref = entry["valueFrom"]["secretKeyRef"]
    return ref["name"], ref["key"]


def own(svc: str, e: dict) -> str:
    """The Secret in the services' namespace with `svc`'s own login to the store of endpoint `e`."""
    store = next(s for s in SOURCE_SECRETS if e["users"][svc]["secret"] == SOURCE_SECRETS[s](svc))
    return credential_secret(svc, store)


@pytest.mark.parametrize("stack", STACKS)
def test_env_points_at_the_data_planes_outputs_and_secret_names(stack):
    run = stack_run(stack)
    cfg = ads_config(run)
    for svc in SERVICES:
        env = env_of(run, svc)
        stores = cfg.services[svc].stores
        value = {k: e.get("value") for k, e in env.items()}
        if "scylladb" in stores:
            e = endpoint(run, "scylladb")
            assert value["SCYLLA_CONTACT_POINTS"] == ",".join(e["hosts"]) and value["SCYLLA_PORT"] == str(e["port"])
            assert value["SCYLLA_LOCAL_DATACENTER"] == e["datacenter"] and value["SCYLLA_KEYSPACE"] in e["keyspaces"]
            assert _ref(env["SCYLLA_USERNAME"]) == (own(svc, e), "username")
            assert _ref(env["SCYLLA_PASSWORD"]) == (own(svc, e), "password")
        if "dragonfly" in stores:
            e = endpoint(run, "dragonfly")
            assert value["DRAGONFLY_ADDRESS"] == f"{e['host']}:{e['port']}"
            assert value["DRAGONFLY_HOST"] == e["host"] and value["DRAGONFLY_READ_HOST"] == e["readHost"]
            assert _ref(env["DRAGONFLY_PASSWORD"]) == (own(svc, e), "password")
        if "redpanda" in stores:
            e = endpoint(run, "redpanda")
            assert value["KAFKA_BOOTSTRAP_SERVERS"].split(",") == e["brokers"]
            assert value["KAFKA_SASL_MECHANISM"] == e["saslMechanism"] == "SCRAM-SHA-512"
            assert value["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
            assert value["KAFKA_SCHEMA_REGISTRY_URL"] == e["schemaRegistry"]
            assert _ref(env["KAFKA_SASL_USERNAME"]) == (own(svc, e), "username")
            assert _ref(env["KAFKA_SASL_PASSWORD"]) == (own(svc, e), "password")
        if "clickhouse" in stores:
            e = endpoint(run, "clickhouse")
            assert value["CLICKHOUSE_HOST"] == e["host"] and value["CLICKHOUSE_CLUSTER"] == e["cluster"]
            assert (value["CLICKHOUSE_HTTP_PORT"], value["CLICKHOUSE_NATIVE_PORT"]) == (str(e["httpPort"]),
                                                                                         str(e["nativePort"]))
            assert _ref(env["CLICKHOUSE_PASSWORD"]) == (own(svc, e), "password")
        prefixes = {"scylladb": "SCYLLA_", "dragonfly": "DRAGONFLY_", "redpanda": "KAFKA_", "clickhouse": "CLICKHOUSE_"}
        for store, prefix in prefixes.items():  # nothing of a store the service does not declare
            assert (store in stores) == any(k.startswith(prefix) for k in env), (svc, store)


@pytest.mark.parametrize("stack", STACKS)
def test_each_service_gets_a_copy_of_its_own_login_only(stack):
    """Per store, each service's own user (never a login shared with the other services), copied once."""
    run = stack_run(stack)
    copies = {r.inputs["metadata"]["name"]: r for r in run.of_type(SECRET) if r.inputs["metadata"]["namespace"] == "ads"}
    for name, svc in ads_config(run).enabled.items():
        for store in svc.stores:
            e = endpoint(run, store)
            source_name = SOURCE_SECRETS[store](name)
            assert e["users"][name]["secret"] == source_name
            [source] = [r for r in run.of_type(SECRET) if r.inputs["metadata"]["name"] == source_name
                        and r.inputs["metadata"]["namespace"] == e["namespace"]]
            copy = copies[credential_secret(name, store)]
            assert string_data(copy) == string_data(source)  # asserts every value stayed secret, too
            assert string_data(copy)["username"] == name
    # Every Secret an ad service reads exists in its namespace with the key it asks for, and is its own.
    for svc in SERVICES:
        for entry in env_of(run, svc).values():
            if "valueFrom" in entry:
                name, key = _ref(entry)
                assert key in string_data(copies[name]), (svc, name, key)
                assert name.startswith(f"{svc}-"), (svc, name)


@pytest.mark.parametrize("stack", STACKS)
def test_credentials_reach_pods_only_through_secret_refs(stack):
    run = stack_run(stack)
    for svc in SERVICES:
        for name, entry in env_of(run, svc).items():
            if any(word in name for word in ("PASSWORD", "USERNAME", "_USER")):
                assert set(entry) == {"name", "valueFrom"}, (svc, name)
            else:
                assert isinstance(entry.get("value"), str), (svc, name)
    text = json.dumps(run.outputs["adServices"])
    assert "offline-" not in text and "password" not in text.lower()


CERTIFICATE = "kubernetes:cert-manager.io/v1:Certificate"
CLUSTER_ISSUER = "kubernetes:cert-manager.io/v1:ClusterIssuer"


@pytest.mark.parametrize("stack", STACKS)
def test_redpanda_clients_trust_the_ca_that_signs_the_brokers(stack):
    """The namespace's CA file comes from a Certificate of its own, issued by the ClusterIssuer whose CA also signs
    the brokers' certificate: no read of the redpanda namespace's Secrets, nothing unknown on a first preview."""
    run = stack_run(stack)
    issuer_name = endpoint(run, "redpanda")["caIssuer"]
    [cert] = [r for r in ads_objects(run, CERTIFICATE) if r.inputs["metadata"]["name"] == REDPANDA_CA_SECRET]
    spec = cert.inputs["spec"]
    assert cert.inputs["metadata"]["namespace"] == "ads" and spec["secretName"] == REDPANDA_CA_SECRET
    assert spec["issuerRef"] == {"name": issuer_name, "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert cert.inputs["metadata"]["annotations"]["pulumi.com/waitFor"] == "condition=Ready"
    # That issuer signs with the data plane's CA, and the brokers' certificate comes from the same issuer.
    [issuer] = [r for r in run.of_type(CLUSTER_ISSUER) if r.inputs["metadata"]["name"] == issuer_name]
    [ca] = [r for r in run.of_type(CERTIFICATE)
            if r.inputs["spec"]["secretName"] == issuer.inputs["spec"]["ca"]["secretName"]
            and r.inputs["metadata"]["namespace"] == "cert-manager"]
    assert ca.inputs["spec"]["isCA"] is True
    tls = run.named("redpanda-cluster").inputs["spec"]["clusterSpec"]["tls"]["certs"]["default"]
    assert tls["issuerRef"] == {"name": issuer_name, "kind": "ClusterIssuer"}
    assert [r for r in run.resources if r.name == "ads-redpanda-ca-source"] == []  # no Secret.get any more
    for svc, cfg in ads_config(run).enabled.items():
        volumes = {v["name"]: v for v in pod(run, svc)["spec"]["volumes"]}
        deployment = run.named(f"ads-{svc}", DEPLOYMENT)
        if "redpanda" not in cfg.stores:
            assert "redpanda-ca" not in volumes
            continue
        # Only ca.crt reaches the pod; the client key stays in the Secret.
        assert volumes["redpanda-ca"]["secret"] == {"secretName": REDPANDA_CA_SECRET,
                                                    "items": [{"key": "ca.crt", "path": "ca.crt"}]}
        [mount] = [m for m in app(run, svc)["volumeMounts"] if m["name"] == "redpanda-ca"]
        assert mount["readOnly"] is True and mount["mountPath"] == REDPANDA_CA_DIR
        assert env_of(run, svc)["KAFKA_SSL_CA_LOCATION"]["value"] == f"{REDPANDA_CA_DIR}/ca.crt"
        assert cert.urn in deployment.dependencies  # pods start with the CA file in place
    assert endpoint(run, "redpanda")["caSecret"] == redpanda.CA_SECRET


# --- routes ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stack", STACKS)
def test_public_services_are_routed_on_the_gateway_with_tls_private_ones_not(stack):
    run = stack_run(stack)
    domain = stack_config(run).domain
    routes = {r.inputs["metadata"]["name"]: r.inputs for r in ads_objects(run, ROUTE)}
    assert set(routes) == set(PUBLIC)
    for svc, host in PUBLIC.items():
        spec = routes[svc]["spec"]
        assert spec["hostnames"] == [f"{host}.{domain}"]
        # The HTTPS listener of that host on the shared gateway: TLS terminates there.
        assert spec["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway.NAME,
                                       "namespace": gateway.NAMESPACE, "sectionName": f"https-{host}"}]
        [rule] = spec["rules"]
        assert rule["backendRefs"] == [{"name": svc, "port": SERVICE_PORT}]
        assert SERVICE_PORT in [p["port"] for p in obj(run, SERVICE, svc)["spec"]["ports"]]
        # The placeholder test server answers only its info document publicly (no /env, /panic, ...).
        assert rule["matches"] == [{"path": {"type": "Exact", "value": "/"}, "method": "GET"}]
        assert run.outputs["adServices"][svc]["url"] == f"https://{host}.{domain}"
        listeners = [l["name"] for l in run.named("gateway-shared").inputs["spec"]["listeners"]]
        assert f"https-{host}" in listeners
    cnps = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in ads_objects(run, CNP)}
    assert set(cnps) == {f"{svc}-from-gateway" for svc in PUBLIC}
    for svc in PUBLIC:
        spec = cnps[f"{svc}-from-gateway"]
        assert spec["endpointSelector"]["matchLabels"] == obj(run, DEPLOYMENT, svc)["spec"]["selector"]["matchLabels"]
        assert spec["ingress"] == [{"fromEntities": ["ingress"], "toPorts": [{"ports": [
            {"port": str(int(app(run, svc)["ports"][0]["containerPort"])), "protocol": "TCP"}]}]}]
    for svc in set(SERVICES) - set(PUBLIC):
        assert run.outputs["adServices"][svc]["url"] is None


# --- telemetry ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stack", STACKS)
def test_dashboards_and_trace_export_follow_the_platform(stack):
    run = stack_run(stack)
    for svc in SERVICES:
        [dash] = [r for r in ads_objects(run, CONFIGMAP) if r.inputs["metadata"]["name"] == f"{svc}-dashboard"]
        assert dash.inputs["metadata"]["labels"]["grafana_dashboard"] == "1"
        [document] = dash.inputs["data"].values()
        board = json.loads(document)
        text = json.dumps(board)
        titles = " ".join(p["title"] for p in board["panels"]).lower()
        for word in ("requests", "error", "latency", "cpu", "memory", "replicas"):
            assert word in titles, (svc, word)
        assert f'service=\\"{svc}\\"' in text and f'deployment=\\"{svc}\\"' in text
        env = env_of(run, svc)
        assert env["OTEL_SERVICE_NAME"]["value"] == svc
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://otel-gateway.tracing.svc.cluster.local:4317"


@pytest.mark.parametrize("stack", STACKS)
def test_every_ad_services_object_matches_the_kubernetes_schema(stack):
    objects = [r for r in validators.kubernetes_objects(stack_run(stack)) if "adplatform:ads:" in r.urn]
    assert len(objects) >= 8 * 7
    for o in objects:
        validators.validate_kubernetes(o.type, o.inputs)


def test_summary_says_where_each_service_runs(production):
    summary = production.outputs["adServices"]
    assert summary["bidding"]["replicas"] == {"min": 3, "max": 10}
    assert summary["bidding"]["stores"] == ["dragonfly", "scylladb", "redpanda"]
    assert summary["reporting"]["internalUrl"] == "http://reporting.ads.svc.cluster.local:80"
    assert "adServices" not in production.secret_outputs


# --- io_uring runtimes (Glommio) ------------------------------------------------------------------------------
IO_URING_PROFILE = {"type": "Localhost", "localhostProfile": "profiles/adplatform-io-uring.json"}


@pytest.fixture(scope="module")
def io_uring_run() -> Run:
    """Staging with bidding on an io_uring runtime (a run shared with test_platform_gitlab: tests/variants.py)."""
    return variants.staging_gitlab()


@pytest.mark.parametrize("stack", STACKS)
def test_default_services_keep_runtime_default_seccomp(stack):
    run = stack_run(stack)
    for svc in SERVICES:
        assert pod(run, svc)["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, svc
        assert app(run, svc)["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, svc


def test_an_io_uring_service_runs_under_the_nodes_profile_and_stays_restricted(io_uring_run):
    spec = pod(io_uring_run, "bidding")["spec"]
    container = app(io_uring_run, "bidding")
    # Pod and container agree: a container-level RuntimeDefault would override the pod's profile.
    assert spec["securityContext"]["seccompProfile"] == IO_URING_PROFILE
    assert container["securityContext"]["seccompProfile"] == IO_URING_PROFILE
    # Pod Security `restricted`: Localhost with a named profile is allowed; the rest of the context is unchanged.
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}
    assert security["runAsNonRoot"] is True and security["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] > 0
    assert not {"hostNetwork", "hostPID", "hostIPC"} & set(spec)
    validators.validate_kubernetes(DEPLOYMENT, validators.plain(obj(io_uring_run, DEPLOYMENT, "bidding")))
    for svc in set(SERVICES) - {"bidding"}:
        assert app(io_uring_run, svc)["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, svc


def test_every_node_of_the_run_installs_the_profile_the_service_names(io_uring_run):
    """The kubelet resolves localhostProfile under <root-dir>/seccomp; a node without the file cannot start the pod."""
    path = f"/var/lib/kubelet/seccomp/{IO_URING_PROFILE['localhostProfile']}"
    tunes = [c for c in io_uring_run.of_type("command:remote:Command") if c.name.startswith("tune-")]
    assert tunes
    for cmd in tunes:
        script = validators.plain(cmd.inputs["stdin"])
        assert script_param(script, "SECCOMP_PROFILE_PATH") == path, cmd.name
        assert json.loads(script_param(script, "SECCOMP_PROFILE"))["defaultAction"] == "SCMP_ACT_ALLOW", cmd.name
