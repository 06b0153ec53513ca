"""external-dns: the DNS records of every public hostname, written from the cluster (no record by hand).

What it publishes: the hostnames of the HTTPRoutes and GRPCRoutes attached to the shared gateway (sources
`gateway-httproute`, `gateway-grpcroute`), pointing at the gateway's address (its status, i.e. the cloud load
balancer). No `service` source: no Service here carries a hostname, and it would need read access to every
Service, Pod and Node.

Where: `clusterServices.dns`, else the zone and credentials of `clusterServices.tls.dns01` (config/services.py
ClusterServices.dns_records). One secret `dnsApiToken` serves both: cert-manager writes TXT challenges and
external-dns writes records in the same zone, and Cloudflare tokens and Hetzner Cloud tokens scope by zone or
project, not by record type, so a second token would grant nothing less. Each namespace holds its own copy
(a Secret cannot be read across namespaces). Hetzner: the token belongs to a Cloud project that holds only the
DNS zone, never the servers' project (a Cloud token has all rights within its project).

Ownership: the TXT registry with `txtOwnerId` = `adplatform-<stack>`; external-dns changes and deletes only
records whose TXT says this stack created them, so records made by hand or by another stack in the same zone
are never touched. `policy: sync` (default) deletes this stack's record of a hostname that is gone, so no name
keeps pointing at a released load-balancer address; `upsert-only` never deletes. `domainFilters`: the stack's
domain only.

Availability: one replica (the chart has no replica count: external-dns has no leader election, two would
race). While it is down the records keep resolving from the DNS provider; only changes wait.

Without a provider nothing is installed; the stack output `dns` lists the records to create by hand.
"""

from __future__ import annotations

from typing import Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.charts import EXTERNAL_DNS, HETZNER_DNS_WEBHOOK_IMAGE
from components.helm import release
from components.services import certs
from components.services.context import ServicesContext
from components.services.namespaces import (RESTRICTED_CONTAINER_SECURITY, RESTRICTED_POD_SECURITY, Namespaces,
                                           NamespaceSpec, prometheus_peer)
from config.services import Dns

NAMESPACE = EXTERNAL_DNS.namespace
SECRET = "external-dns-credentials"
METRICS_PORT = 7979  # the chart's service.port (external-dns' --metrics-address)
SOURCES = ("gateway-httproute", "gateway-grpcroute")  # the route kinds the shared gateway admits
HTTPS = 443
RESOURCES = {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
# cert-manager's TSIG algorithm names (config) -> external-dns' --rfc2136-tsig-secret-alg (provider/rfc2136).
TSIG_ALGORITHMS = {"HMACSHA1": "hmac-sha1", "HMACSHA256": "hmac-sha256", "HMACSHA512": "hmac-sha512"}


def owner_id(stack: str) -> str:
    return f"adplatform-{stack}"


def egress_ports(dns: Dns) -> tuple[int, ...]:
    """The provider's API over HTTPS; RFC 2136 updates go over TCP to the nameserver's port."""
    if dns.provider == "rfc2136" and dns.nameserver:
        return tuple(sorted({HTTPS, certs.rfc2136_port(dns.nameserver)}))
    return (HTTPS,)


def namespaces(ctx: ServicesContext) -> list[NamespaceSpec]:
    dns = ctx.settings.dns_records()
    if dns is None:
        return []
    return [NamespaceSpec(
        name=NAMESPACE, pss="restricted",
        why="external-dns (and the Hetzner webhook) run non-root, read-only root, no capabilities",
        egress_world=egress_ports(dns), ingress_from=(prometheus_peer((METRICS_PORT,)),))]


# --- values ---------------------------------------------------------------------------------------

def _secret_env(name: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": SECRET, "key": key}}}


def credentials(ctx: ServicesContext, dns: Dns) -> dict[str, pulumi.Input[str]]:
    """The Secret's keys: the same credential cert-manager gets (certs.dns01_credentials), plus Hetzner's."""
    if dns.provider == "hetzner":
        token = ctx.secrets.dns_api_token
        if token is None:  # config/rules.py refuses the stack before this
            raise ValueError("dnsApiToken is required with clusterServices.dns (config/rules.py checks it)")
        return {"api-token": token}
    return certs.dns01_credentials(ctx, dns)


def rfc2136_host(nameserver: str) -> str:
    """The host of `host`, `host:port` or `[v6]:port` (external-dns takes the port as its own flag)."""
    if nameserver.startswith("["):
        return nameserver[1:].split("]", 1)[0]
    host, sep, port = nameserver.rpartition(":")
    return host if sep and port.isdigit() and ":" not in host else nameserver


def provider_values(dns: Dns) -> dict[str, Any]:
    """`provider`, `env` and `extraArgs` of the chart for one provider; credentials only from the Secret."""
    if dns.provider == "cloudflare":
        return {"provider": {"name": "cloudflare"}, "env": [_secret_env("CF_API_TOKEN", "api-token")],
                "extraArgs": {}}
    if dns.provider == "route53":
        return {"provider": {"name": "aws"},
                "env": [_secret_env("AWS_ACCESS_KEY_ID", "access-key-id"),
                        _secret_env("AWS_SECRET_ACCESS_KEY", "secret-access-key"),
                        {"name": "AWS_REGION", "value": dns.region}],
                "extraArgs": {"zone-id-filter": dns.hosted_zone_id, "aws-zone-type": "public"}}
    if dns.provider == "rfc2136":
        if dns.tsig_algorithm not in TSIG_ALGORITHMS:
            raise ValueError(f"adplatform:clusterServices.dns.tsigAlgorithm: external-dns accepts "
                             f"{', '.join(TSIG_ALGORITHMS)}, got {dns.tsig_algorithm!r}")
        # Every flag is also read from EXTERNAL_DNS_<FLAG> (kingpin DefaultEnvars): the TSIG secret stays
        # out of the pod's arguments.
        return {"provider": {"name": "rfc2136"},
                "env": [_secret_env("EXTERNAL_DNS_RFC2136_TSIG_SECRET", "tsig-secret")],
                "extraArgs": {"rfc2136-host": rfc2136_host(dns.nameserver or ""), "rfc2136-port": str(certs.rfc2136_port(dns.nameserver or "")),
                              "rfc2136-zone": dns.zone, "rfc2136-tsig-keyname": dns.tsig_key_name,
                              "rfc2136-tsig-secret-alg": TSIG_ALGORITHMS[dns.tsig_algorithm],
                              "rfc2136-tsig-axfr": True}}
    repository, tag = HETZNER_DNS_WEBHOOK_IMAGE
    return {"provider": {"name": "webhook", "webhook": {
        "image": {"repository": repository, "tag": tag},
        "env": [_secret_env("HETZNER_API_KEY", "api-token")],
        # The webhook's health endpoints on its metrics port (the chart names it http-webhook, 8080).
        "livenessProbe": {"httpGet": {"path": "/health", "port": "http-webhook"}},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http-webhook"}},
        "resources": RESOURCES, "securityContext": RESTRICTED_CONTAINER_SECURITY | {"readOnlyRootFilesystem": True},
    }}, "env": [], "extraArgs": {}}


def values(ctx: ServicesContext, dns: Dns) -> dict[str, Any]:
    return {
        **provider_values(dns),
        "sources": list(SOURCES),
        "policy": dns.policy,
        "registry": "txt",
        "txtOwnerId": owner_id(ctx.stack),
        # The ownership TXT record next to each record, named by type (a-, aaaa-, cname-): a CNAME (a load
        # balancer's hostname on AWS) cannot share its name with a TXT record.
        "txtPrefix": "extdns-%{record_type}.",
        "domainFilters": [ctx.domain],
        "serviceMonitor": {"enabled": True},
        "resources": RESOURCES,
        "podSecurityContext": {**RESTRICTED_POD_SECURITY, "fsGroup": 65534},
        "securityContext": {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": True},
    }


def install(ctx: ServicesContext, spaces: Namespaces, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    """After the gateway (`after`): it publishes the gateway's address, which the routes point to."""
    dns = ctx.settings.dns_records()
    if dns is None:
        return []
    base = [*after, *spaces.ready_for([NAMESPACE])]
    secret = k8s.core.v1.Secret(
        "external-dns-credentials",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=SECRET, namespace=NAMESPACE, labels=ctx.labels("external-dns")),
        type="Opaque", string_data=credentials(ctx, dns), opts=ctx.opts(base))
    chart = release("external-dns", EXTERNAL_DNS, values(ctx, dns), ctx.opts([*base, secret]),
                    namespace=NAMESPACE, create_namespace=False)
    return [secret, chart]


def records(domain: str, hostnames: Sequence[str], dns: Dns | None) -> dict[str, Any]:
    """The stack output `dns`: who writes the records, and which names point at the gateway's address."""
    managed = None if dns is None else f"external-dns ({dns.provider}, policy {dns.policy})"
    return {"managedBy": managed or "you: create these records (A/AAAA, or CNAME to the load balancer's "
                                    "hostname) pointing at the gateway's address",
            "records": sorted(hostnames), "domain": domain}
