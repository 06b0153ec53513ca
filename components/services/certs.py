"""cert-manager and the Let's Encrypt ClusterIssuers.

Both issuers exist in every stack (`letsencrypt-staging` to rehearse without Let's Encrypt's rate
limits, `letsencrypt-production` for browsers); `clusterServices.tls.issuer` picks the one the shared
gateway's certificates use. Each issuer answers challenges with HTTP-01 through the shared gateway's
port-80 listener, and with DNS-01 for names in the configured DNS zone (the only way to a wildcard).

Order: the Gateway API CRDs (K3s layer) and the Prometheus Operator CRDs (its ServiceMonitor) -> the cert-manager release (its CRDs, webhook) -> the DNS
credentials and the ClusterIssuers -> certificates (gateway.py and later layers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.charts import CERT_MANAGER
from components.helm import release
from components.services import gateway
from components.services.context import ServicesContext
from components.services.namespaces import Namespaces, NamespaceSpec, prometheus_peer
from config.services import Dns01

NAMESPACE = CERT_MANAGER.namespace
WEBHOOK_PORT = 10250  # the chart's webhook.securePort: the API server calls the pods on it
METRICS_PORT = 9402  # http-metrics of the controller, webhook and cainjector (chart v1.21.1 deployments)
ACME_SERVERS = {
    "letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
    "letsencrypt-production": "https://acme-v02.api.letsencrypt.org/directory",
}
# DNS-01 self-checks over DNS-over-HTTPS: port 443, which the namespace may already reach, instead
# of UDP 53 to every zone's authoritative servers, which its policy does not open.
DOH_RESOLVERS = ("https://1.1.1.1/dns-query", "https://8.8.8.8/dns-query")
DNS01_SECRET = "dns01-credentials"
RFC2136_DEFAULT_PORT = 53


@dataclass
class Certs:
    issuer: str  # the ClusterIssuer the shared gateway's certificates use
    ready: list[pulumi.Resource] = field(default_factory=list)
    # cert-manager itself (CRDs, webhook): what a workload's own Issuers and Certificates wait for. The ACME
    # ClusterIssuers in `ready` sign the gateway's certificates only (gateway.py); no later layer names them.
    manager: list[pulumi.Resource] = field(default_factory=list)
    issuers: tuple[str, ...] = ()  # every ClusterIssuer created
    wildcard: bool = False  # a DNS-01 solver is configured: wildcard certificates can be issued


# --- private CAs -----------------------------------------------------------------------------------
# In-cluster TLS (Redpanda's listeners, OpenBao's API) is signed by a private CA per service: a self-signed
# root Issuer signs the CA Certificate, and a ClusterIssuer signs with it. cert-manager's CA issuer writes
# ca.crt into every Secret it issues, so a client in another namespace gets the CA by asking the same issuer
# for a certificate of its own. A ClusterIssuer reads its CA Secret from cert-manager's namespace.
# Replacing a CA means every client trusting old and new for a while (a manual runbook): never by surprise.
CA_DURATION = "87600h0m0s"  # 10 years
CA_RENEW_BEFORE = "8760h0m0s"


def ca_manifests(root_issuer: str, ca_secret: str, cluster_issuer: str, common_name: str,
                 secret_labels: dict[str, str] | None = None) -> list[tuple[str, str, str | None, dict[str, Any]]]:
    """(kind, name, namespace, spec) in creation order: the self-signed root Issuer, the CA Certificate it signs
    (`secret_labels` on its Secret), and the ClusterIssuer that signs with that CA."""
    issuer = {"name": root_issuer, "kind": "Issuer", "group": "cert-manager.io"}
    template = {"secretTemplate": {"labels": secret_labels}} if secret_labels else {}
    return [
        ("Issuer", root_issuer, NAMESPACE, {"selfSigned": {}}),
        ("Certificate", ca_secret, NAMESPACE, {
            "secretName": ca_secret, "isCA": True, "commonName": common_name,
            "duration": CA_DURATION, "renewBefore": CA_RENEW_BEFORE, "issuerRef": issuer,
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"}, **template}),
        ("ClusterIssuer", cluster_issuer, None, {"ca": {"secretName": ca_secret}}),
    ]


# --- namespace ------------------------------------------------------------------------------------

def rfc2136_port(nameserver: str) -> int:
    """The port of `host:port`, `[v6]:port`, or 53 when none is given."""
    host_port = nameserver.rsplit("]", 1)[-1] if nameserver.startswith("[") else nameserver
    _, sep, port = host_port.rpartition(":")
    return int(port) if sep and port.isdigit() else RFC2136_DEFAULT_PORT


def egress_ports(dns01: Dns01 | None) -> tuple[int, ...]:
    # 443: the ACME API, DNS provider APIs and the DoH self-check. 80: the HTTP-01 self-check, which
    # fetches the challenge through the public gateway before Let's Encrypt is asked to.
    ports = {443, 80}
    if dns01 is not None and dns01.provider == "rfc2136" and dns01.nameserver:
        ports.add(rfc2136_port(dns01.nameserver))
    return tuple(sorted(ports))


def namespaces(ctx: ServicesContext) -> list[NamespaceSpec]:
    return [NamespaceSpec(
        name=NAMESPACE, pss="restricted",
        why="cert-manager's controller, webhook and cainjector run non-root, RuntimeDefault seccomp, no capabilities",
        webhooks=(WEBHOOK_PORT,), egress_world=egress_ports(ctx.settings.tls.dns01),
        ingress_from=(prometheus_peer((METRICS_PORT,)),))]


# --- chart values ---------------------------------------------------------------------------------

RESOURCES = {
    # The controller caches Certificates, Secrets and (with the Gateway API on) Gateways and routes.
    "controller": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
    "webhook": {"requests": {"cpu": "20m", "memory": "48Mi"}, "limits": {"memory": "128Mi"}},
    # The cainjector watches every webhook configuration, APIService and CRD.
    "cainjector": {"requests": {"cpu": "20m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
    "startupapicheck": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
}
# Pods per component in HA profiles: the webhook is on the admission path of every cert-manager
# object; the controller and cainjector elect a leader, a second replica only shortens fail-over.
HA_REPLICAS = {"controller": 2, "webhook": 3, "cainjector": 2}


def spread(component: str) -> dict[str, Any]:
    """Replicas on distinct nodes; a rolling update's surge pod (another pod-template-hash) still fits."""
    return {"topologySpreadConstraints": [{
        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
        # Tainted database and control-plane nodes never run these pods: they are no spreading domain.
        "nodeTaintsPolicy": "Honor",
        "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "cert-manager",
                                          "app.kubernetes.io/component": component}},
        "matchLabelKeys": ["pod-template-hash"],
    }]}


def component_values(ctx: ServicesContext, component: str) -> dict[str, Any]:
    replicas = ctx.replicas(HA_REPLICAS[component])
    values: dict[str, Any] = {"replicaCount": replicas, "resources": RESOURCES[component],
                              "podDisruptionBudget": {"enabled": replicas > 1}}
    if replicas > 1:
        values["podDisruptionBudget"]["maxUnavailable"] = 1
        values.update(spread(component))
    return values


def chart_values(ctx: ServicesContext) -> dict[str, Any]:
    values: dict[str, Any] = {
        # CRDs from the chart, kept when the release is uninstalled: deleting them would delete
        # every Certificate and issuer in the cluster.
        "crds": {"enabled": True, "keep": True},
        **component_values(ctx, "controller"),
        "config": {
            "apiVersion": "controller.config.cert-manager.io/v1alpha1", "kind": "ControllerConfiguration",
            # The HTTP-01 solver creates an HTTPRoute on the shared gateway (needs the Gateway API CRDs).
            "gatewayAPI": {"enabled": True},
        },
        # Metrics on :9402 of the controller, webhook and cainjector; the chart's one ServiceMonitor selects
        # all three Services (v1.21.1 templates/servicemonitor.yaml). Its CRD is installed before this
        # release (monitoring_crds.py). Not the PodMonitor: the chart refuses both at once.
        "prometheus": {"enabled": True, "servicemonitor": {"enabled": True}},
        "webhook": component_values(ctx, "webhook"),
        "cainjector": component_values(ctx, "cainjector"),
        "startupapicheck": {"resources": RESOURCES["startupapicheck"]},
    }
    if ctx.settings.tls.dns01 is not None:
        values["dns01RecursiveNameservers"] = ",".join(DOH_RESOLVERS)
        values["dns01RecursiveNameserversOnly"] = True
    return values


# --- issuers --------------------------------------------------------------------------------------

def http01_solver() -> dict[str, Any]:
    """The challenge route attaches to the gateway's port-80 listener (cert-manager creates it in the
    Certificate's namespace, so certificates for the shared gateway live in the gateway's namespace)."""
    return {"http01": {"gatewayHTTPRoute": {"parentRefs": [{
        "group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway.NAME,
        "namespace": gateway.NAMESPACE, "sectionName": gateway.HTTP_LISTENER}]}}}


def dns01_provider(dns01: Dns01) -> dict[str, Any]:
    def ref(key: str) -> dict[str, str]:
        return {"name": DNS01_SECRET, "key": key}

    if dns01.provider == "cloudflare":
        return {"cloudflare": {"apiTokenSecretRef": ref("api-token")}}
    if dns01.provider == "route53":
        return {"route53": {"region": dns01.region, "hostedZoneID": dns01.hosted_zone_id,
                            "accessKeyIDSecretRef": ref("access-key-id"),
                            "secretAccessKeySecretRef": ref("secret-access-key")}}
    # RFC 2136 updates over TCP: the namespace's internet egress policy opens TCP only.
    return {"rfc2136": {"nameserver": dns01.nameserver, "tsigKeyName": dns01.tsig_key_name,
                        "tsigAlgorithm": dns01.tsig_algorithm, "tsigSecretSecretRef": ref("tsig-secret"),
                        "protocol": "TCP"}}


def solvers(dns01: Dns01 | None) -> list[dict[str, Any]]:
    """cert-manager picks the most specific selector: names in the DNS zone go DNS-01, the rest HTTP-01."""
    found = [http01_solver()]
    if dns01 is not None:
        found.insert(0, {"selector": {"dnsZones": [dns01.zone]}, "dns01": dns01_provider(dns01)})
    return found


def issuer_spec(name: str, email: str, dns01: Dns01 | None) -> dict[str, Any]:
    return {"acme": {"email": email, "server": ACME_SERVERS[name],
                     # The ACME account key cert-manager generates on first use.
                     "privateKeySecretRef": {"name": f"{name}-account-key"},
                     "solvers": solvers(dns01)}}


def dns01_credentials(ctx: ServicesContext, dns01: Dns01) -> dict[str, pulumi.Input[str]]:
    token = ctx.secrets.dns_api_token
    if token is None:
        raise ValueError("dnsApiToken is required with clusterServices.tls.dns01 (config/rules.py checks it)")
    if dns01.provider == "cloudflare":
        return {"api-token": token}
    if dns01.provider == "route53":
        return {"access-key-id": pulumi.Output.secret(dns01.access_key_id or ""), "secret-access-key": token}
    return {"tsig-secret": token}


def install(ctx: ServicesContext, spaces: Namespaces, after: Sequence[pulumi.Resource]) -> Certs:
    tls = ctx.settings.tls
    chart = release("cert-manager", CERT_MANAGER, chart_values(ctx),
                    ctx.opts([*after, *spaces.ready_for([NAMESPACE])]), namespace=NAMESPACE,
                    create_namespace=False)
    ready: list[pulumi.Resource] = [chart]
    issuer_deps: list[pulumi.Resource] = [chart]
    if tls.dns01 is not None:
        secret = k8s.core.v1.Secret(
            "cert-manager-dns01-credentials",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=DNS01_SECRET, namespace=NAMESPACE,
                                                labels=ctx.labels("cert-manager")),
            type="Opaque", string_data=dns01_credentials(ctx, tls.dns01), opts=ctx.opts([chart]))
        ready.append(secret)
        issuer_deps.append(secret)
    for name in ACME_SERVERS:
        ready.append(k8s.apiextensions.CustomResource(
            f"cluster-issuer-{name}", api_version="cert-manager.io/v1", kind="ClusterIssuer",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=name, labels=ctx.labels("cert-manager")),
            spec=issuer_spec(name, tls.acme_email or "", tls.dns01), opts=ctx.opts(issuer_deps)))
    return Certs(issuer=tls.issuer, ready=ready, manager=[chart], issuers=tuple(ACME_SERVERS),
                 wildcard=tls.dns01 is not None)
