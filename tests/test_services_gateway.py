"""cert-manager, the Let's Encrypt ClusterIssuers and the shared Gateway API gateway (issue 5)."""

from __future__ import annotations

from functools import lru_cache

import pytest

from components.charts import CERT_MANAGER, GATEWAY_API, GATEWAY_API_VERSION
from components.services import certs, gateway
from components.services.namespaces import LAYER_LABEL
from config import ConfigError, load
from config.catalog import PLATFORM_HOSTNAMES
from config.services import Dns01
from tests.conftest import SECRET_KEYS, UP_TO_SERVICES, base_raw, run_raw
from tests.netpol import PROMETHEUS_PEER
from tools.mockrun import Run, Secret
from tools.plan import model

RELEASE = "kubernetes:helm.sh/v3:Release"
CONFIG_FILE = "kubernetes:yaml/v2:ConfigFile"
ISSUER = "kubernetes:cert-manager.io/v1:ClusterIssuer"
CERTIFICATE = "kubernetes:cert-manager.io/v1:Certificate"
GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
DOMAIN = "ads.example.com"


def of_services(run: Run, type_: str) -> list:
    """This layer's public-TLS cert-manager objects: not the private CAs of the data plane (Redpanda's, and the ad
    services' copy of it) nor of the secret store (OpenBao's CA, its certificate and the team namespaces' copies)."""
    return [r for r in run.of_type(type_) if "adplatform:services:ClusterServices$" in r.urn
            and not r.name.startswith("openbao-")]


def deps(run: Run, name: str, type_: str | None = None) -> set[str]:
    return {run.by_urn(u).name for u in run.named(name, type_).dependencies}


def services(**tls) -> dict:
    raw = base_raw()
    raw["clusterServices"] = {**raw["clusterServices"], "tls": {"acmeEmail": "ops@example.com", **tls}}
    return raw


@lru_cache(maxsize=None)
def cloudflare() -> Run:
    """The same config as test_services_dns's cloudflare_dns01 (the run cache runs it once for both)."""
    raw = services(dns01={"provider": "cloudflare", "zone": "example.com"})
    raw["dnsApiToken"] = "dns-test-token"
    return run_raw({**raw, "layers": UP_TO_SERVICES})  # the tests of a variant read this layer only


@lru_cache(maxsize=None)
def rfc2136_staging_issuer() -> Run:
    raw = services(issuer="letsencrypt-staging", dns01={
        "provider": "rfc2136", "zone": "example.com", "nameserver": "ns1.example.net:5353", "tsigKeyName": "acme"})
    raw["dnsApiToken"] = "tsig-test-secret"
    return run_raw({**raw, "layers": UP_TO_SERVICES})


# --- install order and pinned versions --------------------------------------------------------------

def test_gateway_api_crds_pinned_to_cilium_1_20s_release_and_applied_before_cilium(production):
    assert GATEWAY_API_VERSION == "v1.6.1" and len(GATEWAY_API.urls) == 1
    crds = production.named("gateway-api-standard-install", CONFIG_FILE)
    assert crds.inputs["file"] == ("https://github.com/kubernetes-sigs/gateway-api/releases/download/"
                                   "v1.6.1/standard-install.yaml")
    assert "k3s-control-plane-1" in deps(production, crds.name, CONFIG_FILE)
    assert crds.name in deps(production, "cilium", RELEASE), "Cilium's operator needs the CRDs when it starts"


def test_cilium_serves_the_gateway_api_through_a_load_balancer_that_sends_proxy_headers(production):
    values = production.named("cilium", RELEASE).inputs["values"]
    # Hetzner's balancer prefixes connections with a PROXY header: the listeners expect it, so Envoy sees the
    # client's address and appends it to X-Forwarded-For; no client-sent X-Forwarded-For entry is trusted.
    assert values["gatewayAPI"] == {"enabled": True, "hostNetwork": {"enabled": False},
                                    "gatewayClass": {"create": "true"}, "enableProxyProtocol": True,
                                    "externalTrafficPolicy": "Cluster", "xffNumTrustedHops": 0}
    assert values["kubeProxyReplacement"] is True, "Cilium's Gateway API needs the kube-proxy replacement"


def test_cert_manager_release_pinned_with_chart_crds_kept_and_gateway_api_on(production):
    rel = production.named("cert-manager", RELEASE)
    assert (rel.inputs["chart"], rel.inputs["version"], rel.inputs["repositoryOpts"]["repo"]) == (
        "cert-manager", "v1.21.1", "https://charts.jetstack.io") == (
        CERT_MANAGER.chart, CERT_MANAGER.version, CERT_MANAGER.repo)
    assert rel.inputs["namespace"] == "cert-manager" and rel.inputs["createNamespace"] is False
    values = rel.inputs["values"]
    assert values["crds"] == {"enabled": True, "keep": True}
    assert values["config"]["gatewayAPI"] == {"enabled": True}
    assert values["config"]["kind"] == "ControllerConfiguration"
    assert "dns01RecursiveNameservers" not in values


def test_cert_manager_is_scraped_once_the_monitoring_crds_exist(production):
    """The chart's one ServiceMonitor (controller, webhook, cainjector on http-metrics 9402, v1.21.1
    templates/servicemonitor.yaml) is rendered in cert-manager's namespace, which admits Prometheus' pods on 9402."""
    values = production.named("cert-manager", RELEASE).inputs["values"]
    assert values["prometheus"] == {"enabled": True, "servicemonitor": {"enabled": True}}
    assert "podmonitor" not in values["prometheus"], "the chart refuses both monitors at once"
    assert "prometheus-operator-crds" in deps(production, "cert-manager", RELEASE), "Helm refuses unknown kinds"
    ingress = production.named("netpol-cert-manager-allow-from-monitoring", NETPOL).inputs["spec"]["ingress"]
    assert ingress == [{"from": [PROMETHEUS_PEER], "ports": [{"protocol": "TCP", "port": 9402}]}]


def test_cert_manager_installs_after_the_crds_cilium_and_its_namespace_policies(production):
    before = deps(production, "cert-manager", RELEASE)
    assert {"gateway-api-standard-install", "cilium", "ns-cert-manager",
            "netpol-cert-manager-default-deny", "netpol-cert-manager-allow-kubernetes-api"} <= before


def test_issuers_and_certificates_wait_for_cert_manager(production):
    for name in certs.ACME_SERVERS:
        assert "cert-manager" in deps(production, f"cluster-issuer-{name}", ISSUER)
    for cert in of_services(production, CERTIFICATE):
        assert {"cluster-issuer-letsencrypt-production", "cluster-issuer-letsencrypt-staging",
                "gateway-shared", "ns-gateway"} <= deps(production, cert.name, CERTIFICATE)
    assert "gateway-api-standard-install" in deps(production, "gateway-shared", GATEWAY)
    assert "gateway-shared" in deps(production, "gateway-https-redirect", ROUTE)


# --- cert-manager: HA, resources, namespace -------------------------------------------------------------

def test_cert_manager_is_highly_available_in_production(production):
    values = production.named("cert-manager", RELEASE).inputs["values"]
    components = {"controller": values, "webhook": values["webhook"], "cainjector": values["cainjector"]}
    assert {k: v["replicaCount"] for k, v in components.items()} == {"controller": 2, "webhook": 3, "cainjector": 2}
    for component, v in components.items():
        assert v["podDisruptionBudget"] == {"enabled": True, "maxUnavailable": 1}
        (spread,) = v["topologySpreadConstraints"]
        assert spread["topologyKey"] == "kubernetes.io/hostname" and spread["whenUnsatisfiable"] == "DoNotSchedule"
        assert spread["nodeTaintsPolicy"] == "Honor" and spread["matchLabelKeys"] == ["pod-template-hash"]
        assert spread["labelSelector"]["matchLabels"] == {"app.kubernetes.io/instance": "cert-manager",
                                                          "app.kubernetes.io/component": component}


def test_cert_manager_runs_single_replicas_without_budgets_in_staging(staging):
    values = staging.named("cert-manager", RELEASE).inputs["values"]
    for v in (values, values["webhook"], values["cainjector"]):
        assert v["replicaCount"] == 1 and v["podDisruptionBudget"] == {"enabled": False}
        assert "topologySpreadConstraints" not in v


def test_every_cert_manager_container_requests_cpu_and_memory_with_a_memory_limit(production):
    values = production.named("cert-manager", RELEASE).inputs["values"]
    for v in (values, values["webhook"], values["cainjector"], values["startupapicheck"]):
        assert set(v["resources"]["requests"]) == {"cpu", "memory"} and "memory" in v["resources"]["limits"]


def test_cert_manager_namespace_admits_the_webhook_and_reaches_acme(production):
    webhook = production.named("netpol-cert-manager-allow-api-server-webhooks", NETPOL).inputs["spec"]
    assert webhook["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 10250}]
    internet = production.named("netpol-cert-manager-allow-egress-internet", NETPOL).inputs["spec"]
    assert [p["port"] for p in internet["egress"][0]["ports"]] == [80, 443]
    assert production.named("ns-cert-manager").inputs["metadata"]["labels"][
        "pod-security.kubernetes.io/enforce"] == "restricted"
    # HTTP-01 solver pods run in the gateway's namespace and Envoy must reach them.
    assert production.named("netpol-gateway-allow-from-gateway").inputs["spec"]["ingress"] == [
        {"fromEntities": ["ingress"]}]


# --- issuers -------------------------------------------------------------------------------------------

def test_both_issuers_register_the_acme_email_and_solve_http01_on_the_gateway(production):
    issuers = {r.inputs["metadata"]["name"]: r.inputs["spec"]["acme"] for r in of_services(production, ISSUER)}
    assert issuers["letsencrypt-production"]["server"] == "https://acme-v02.api.letsencrypt.org/directory"
    assert issuers["letsencrypt-staging"]["server"] == "https://acme-staging-v02.api.letsencrypt.org/directory"
    for name, acme in issuers.items():
        assert acme["email"] == "ops@example.com"
        assert acme["privateKeySecretRef"] == {"name": f"{name}-account-key"}
        assert acme["solvers"] == [{"http01": {"gatewayHTTPRoute": {"parentRefs": [{
            "group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "shared", "namespace": "gateway",
            "sectionName": "http"}]}}}]
    assert production.outputs["clusterIssuer"] == "letsencrypt-production"


def test_dns01_cloudflare_issuer_reads_a_secret_token_and_self_checks_over_https():
    run = cloudflare()
    (secret,) = [r for r in run.of_type("kubernetes:core/v1:Secret") if r.name == "cert-manager-dns01-credentials"]
    assert isinstance(secret.inputs["stringData"], Secret)
    assert secret.inputs["stringData"].value == {"api-token": "dns-test-token"}
    assert secret.inputs["metadata"]["namespace"] == "cert-manager", "ClusterIssuers read secrets from there"
    for issuer in of_services(run, ISSUER):
        dns, http = issuer.inputs["spec"]["acme"]["solvers"]
        assert dns == {"selector": {"dnsZones": ["example.com"]}, "dns01": {"cloudflare": {
            "apiTokenSecretRef": {"name": "dns01-credentials", "key": "api-token"}}}}
        assert "http01" in http, "names outside the zone still validate over HTTP-01"
        assert "cert-manager-dns01-credentials" in deps(run, issuer.name, ISSUER)
    values = run.named("cert-manager", RELEASE).inputs["values"]
    assert values["dns01RecursiveNameservers"] == "https://1.1.1.1/dns-query,https://8.8.8.8/dns-query"
    assert values["dns01RecursiveNameserversOnly"] is True


def test_rfc2136_updates_over_tcp_to_the_nameservers_port_and_staging_issuer_is_used():
    run = rfc2136_staging_issuer()
    dns = run.named("cluster-issuer-letsencrypt-production", ISSUER).inputs["spec"]["acme"]["solvers"][0]["dns01"]
    assert dns == {"rfc2136": {"nameserver": "ns1.example.net:5353", "tsigKeyName": "acme",
                               "tsigAlgorithm": "HMACSHA512", "protocol": "TCP",
                               "tsigSecretSecretRef": {"name": "dns01-credentials", "key": "tsig-secret"}}}
    internet = run.named("netpol-cert-manager-allow-egress-internet", NETPOL).inputs["spec"]
    assert [p["port"] for p in internet["egress"][0]["ports"]] == [80, 443, 5353]
    (cert,) = of_services(run, CERTIFICATE)
    assert cert.inputs["spec"]["issuerRef"]["name"] == "letsencrypt-staging"
    assert len(of_services(run, ISSUER)) == 2, "both issuers exist whichever one the gateway uses"


def test_route53_keys_stay_in_the_secret():
    dns01 = Dns01(provider="route53", zone="example.com", hosted_zone_id="Z123", region="eu-central-1",
                  access_key_id="AKIAIOSFODNN7EXAMPLE")
    assert certs.dns01_provider(dns01) == {"route53": {
        "region": "eu-central-1", "hostedZoneID": "Z123",
        "accessKeyIDSecretRef": {"name": "dns01-credentials", "key": "access-key-id"},
        "secretAccessKeySecretRef": {"name": "dns01-credentials", "key": "secret-access-key"}}}


@pytest.mark.parametrize("nameserver, port", [("ns1.example.net", 53), ("10.1.2.3:5353", 5353),
                                              ("[2001:db8::1]:54", 54), ("[2001:db8::1]", 53)])
def test_rfc2136_nameserver_port(nameserver, port):
    assert certs.rfc2136_port(nameserver) == port


def test_tls_config_errors_name_the_key():
    raw = base_raw()
    raw["clusterServices"] = {**raw["clusterServices"], "tls": {}}
    with pytest.raises(ConfigError) as err:
        load("test", raw, SECRET_KEYS)
    assert any(str(p).startswith("adplatform:clusterServices.tls.acmeEmail must be set") for p in err.value.problems)
    with pytest.raises(ConfigError) as err:
        load("test", services(issuer="letsencrypt"), SECRET_KEYS)
    assert str(err.value.problems[0]).startswith(
        "adplatform:clusterServices.tls.issuer must be one of letsencrypt-production, letsencrypt-staging")


# --- the gateway ------------------------------------------------------------------------------------------

def listeners(run: Run) -> dict[str, dict]:
    return {item["name"]: item for item in run.named("gateway-shared", GATEWAY).inputs["spec"]["listeners"]}


def test_without_dns01_one_https_listener_and_certificate_per_hostname(production):
    found = listeners(production)
    assert set(found) == {"http"} | {f"https-{label}" for label in PLATFORM_HOSTNAMES}
    certificates = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in of_services(production, CERTIFICATE)}
    assert set(certificates) == {f"gateway-{label}" for label in PLATFORM_HOSTNAMES}
    for label in PLATFORM_HOSTNAMES:
        listener, spec = found[f"https-{label}"], certificates[f"gateway-{label}"]
        assert listener["hostname"] == spec["dnsNames"][0] == f"{label}.{DOMAIN}" and len(spec["dnsNames"]) == 1
        assert listener["port"] == 443 and listener["protocol"] == "HTTPS"
        assert listener["tls"] == {"mode": "Terminate", "certificateRefs": [
            {"group": "", "kind": "Secret", "name": spec["secretName"]}]}
        assert spec["issuerRef"] == {"group": "cert-manager.io", "kind": "ClusterIssuer",
                                     "name": "letsencrypt-production"}
        assert spec["privateKey"]["rotationPolicy"] == "Always"


def test_with_dns01_one_wildcard_listener_and_certificate():
    run = cloudflare()
    assert set(listeners(run)) == {"http", "https"}
    assert listeners(run)["https"]["hostname"] == f"*.{DOMAIN}"
    (cert,) = of_services(run, CERTIFICATE)
    assert cert.inputs["spec"]["dnsNames"] == [DOMAIN, f"*.{DOMAIN}"]
    assert listeners(run)["https"]["tls"]["certificateRefs"][0]["name"] == cert.inputs["spec"]["secretName"]


def test_plain_http_only_redirects_and_carries_challenges(production):
    http = listeners(production)["http"]
    assert http["port"] == 80 and http["protocol"] == "HTTP" and "hostname" not in http
    assert http["allowedRoutes"]["namespaces"] == {"from": "Same"}, "no other namespace may serve clear text"
    redirect = production.named("gateway-https-redirect", ROUTE).inputs
    assert redirect["metadata"]["namespace"] == "gateway"
    assert redirect["spec"]["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                              "name": "shared", "sectionName": "http"}]
    # No hostnames and no matches: it catches everything the more specific challenge routes do not.
    assert "hostnames" not in redirect["spec"]
    assert redirect["spec"]["rules"] == [{"filters": [{"type": "RequestRedirect", "requestRedirect": {
        "scheme": "https", "statusCode": 301}}]}]


def test_https_listeners_accept_routes_from_platform_namespaces_only(production):
    for name, listener in listeners(production).items():
        if name != "http":
            assert listener["allowedRoutes"]["namespaces"] == {"from": "Selector", "selector": {
                "matchExpressions": [{"key": LAYER_LABEL, "operator": "Exists"}]}}


def test_gateway_asks_the_cloud_for_its_load_balancer(production):
    spec = production.named("gateway-shared", GATEWAY).inputs["spec"]
    assert spec["gatewayClassName"] == "cilium"
    annotations = spec["infrastructure"]["annotations"]
    assert annotations["load-balancer.hetzner.cloud/location"] == "fsn1"
    assert annotations["load-balancer.hetzner.cloud/use-private-ip"] == "true"
    # Its private address stays out of the Service's status, and so out of the Gateway's addresses external-dns
    # publishes (the hcloud CCM lists it there by default).
    assert annotations["load-balancer.hetzner.cloud/disable-private-ingress"] == "true"
    # Switched on together with the listeners' PROXY protocol (above): one without the other breaks every request.
    assert annotations["load-balancer.hetzner.cloud/uses-proxyprotocol"] == "true"
    assert production.outputs["gateway"] == {"name": "shared", "namespace": "gateway"}


def test_gateway_ref_tells_later_layers_where_to_attach():
    per_host = gateway.GatewayRef("shared", "gateway", domain=DOMAIN, https_listeners={
        t.hostname: t.listener for t in gateway.tls_plan(DOMAIN, ["grafana"], wildcard=False)})
    assert per_host.parent_refs("grafana") == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                                "name": "shared", "namespace": "gateway",
                                                "sectionName": "https-grafana"}]
    with pytest.raises(KeyError, match="clusterServices.gateway.hostnames"):
        per_host.section_name("gitlab")
    wildcard = gateway.GatewayRef("shared", "gateway", domain=DOMAIN, https_listeners={
        t.hostname: t.listener for t in gateway.tls_plan(DOMAIN, ["grafana"], wildcard=True)})
    assert wildcard.section_name("anything") == "https"
    assert wildcard.hostname("grafana") == f"grafana.{DOMAIN}"


def test_a_dns01_stack_passes_the_policy_pack():
    # (up to the cluster services, where DNS-01 changes anything: the wildcard listener and certificate, the issuers)
    assert model.build(cloudflare())["policy"]["violations"] == []
