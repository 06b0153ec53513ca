"""The shared Gateway API gateway (Cilium's implementation): HTTPS only, plain HTTP redirected.

One Gateway behind one cloud load balancer serves every hostname of the stack. With a DNS-01
provider it has one wildcard listener `*.<domain>` with one certificate for `<domain>` and
`*.<domain>`; without one (HTTP-01 cannot issue wildcards) one listener and one certificate per
`clusterServices.gateway.hostnames` label. Its port-80 listener only redirects to HTTPS and carries
cert-manager's HTTP-01 challenge routes, whose exact hostname and path win over the redirect.

Later layers attach an `HTTPRoute` with `GatewayRef.parent_refs(label)` and hostname
`GatewayRef.hostname(label)`, from any namespace this platform created.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.services.context import ServicesContext
from components.services.namespaces import LAYER_LABEL, Namespaces, NamespaceSpec

if TYPE_CHECKING:
    from components.services.certs import Certs

NAME = "shared"
NAMESPACE = "gateway"
GATEWAY_CLASS = "cilium"  # created by the Cilium chart (components/k3s/cilium.py)
HTTP_LISTENER = "http"
WILDCARD_LISTENER = "https"
GROUP = "gateway.networking.k8s.io"
ROUTE_KINDS = ("HTTPRoute", "GRPCRoute")


@dataclass
class GatewayRef:
    name: str
    namespace: str
    ready: list[pulumi.Resource] = field(default_factory=list)
    domain: str = ""
    # HTTPS listener (section) name by the hostname it serves; `*.<domain>` with DNS-01.
    https_listeners: dict[str, str] = field(default_factory=dict)

    def hostname(self, label: str) -> str:
        return f"{label}.{self.domain}"

    def section_name(self, label: str) -> str:
        """The HTTPS listener serving `<label>.<domain>`; KeyError names the config key to extend."""
        host = self.hostname(label)
        # A label is one DNS label, so the wildcard listener (and its certificate) covers it.
        section = self.https_listeners.get(host) or self.https_listeners.get(f"*.{self.domain}")
        if section is not None:
            return section
        raise KeyError(f"{host} has no HTTPS listener on the shared gateway: add {label!r} to "
                       "clusterServices.gateway.hostnames, or configure clusterServices.tls.dns01")

    def parent_refs(self, label: str) -> list[dict[str, str]]:
        """`spec.parentRefs` of an HTTPRoute serving `<label>.<domain>` over HTTPS."""
        return [{"group": GROUP, "kind": "Gateway", "name": self.name, "namespace": self.namespace,
                 "sectionName": self.section_name(label)}]


def namespaces(ctx: ServicesContext) -> list[NamespaceSpec]:
    # `gateway=True`: cert-manager's HTTP-01 solver pods run here and Cilium's Envoy must reach them.
    return [NamespaceSpec(
        name=NAMESPACE, pss="restricted", gateway=True,
        why="the shared Gateway (its Envoy runs in Cilium's agents) and cert-manager's HTTP-01 solver pods, "
            "which run non-root with RuntimeDefault seccomp")]


# --- what the gateway serves ------------------------------------------------------------------------

@dataclass(frozen=True)
class Tls:
    """One HTTPS listener and the certificate it presents."""

    listener: str
    hostname: str  # the listener's hostname
    dns_names: tuple[str, ...]  # the certificate's names
    name: str  # the Certificate's name; its Secret is `<name>-tls`

    @property
    def secret(self) -> str:
        return f"{self.name}-tls"


def tls_plan(domain: str, hostnames: Sequence[str], wildcard: bool) -> list[Tls]:
    if wildcard:
        return [Tls(WILDCARD_LISTENER, f"*.{domain}", (domain, f"*.{domain}"), "gateway-wildcard")]
    return [Tls(f"https-{label}", f"{label}.{domain}", (f"{label}.{domain}",), f"gateway-{label}")
            for label in hostnames]


def certificate_spec(tls: Tls, issuer: str) -> dict[str, Any]:
    return {
        "secretName": tls.secret,
        "dnsNames": list(tls.dns_names),
        "issuerRef": {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": issuer},
        # A fresh key on every renewal, so a leaked key is only good until the next one.
        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
    }


# Routes from the platform's own namespaces (every one carries the layer label); not from
# namespaces created by hand or by charts.
PLATFORM_NAMESPACES = {"from": "Selector", "selector": {"matchExpressions": [
    {"key": LAYER_LABEL, "operator": "Exists"}]}}


def https_listener(tls: Tls) -> dict[str, Any]:
    return {
        "name": tls.listener, "hostname": tls.hostname, "port": 443, "protocol": "HTTPS",
        "tls": {"mode": "Terminate", "certificateRefs": [{"group": "", "kind": "Secret", "name": tls.secret}]},
        "allowedRoutes": {"namespaces": PLATFORM_NAMESPACES, "kinds": [{"group": GROUP, "kind": k} for k in ROUTE_KINDS]},
    }


def http_listener() -> dict[str, Any]:
    # Only this namespace's routes: the redirect and the HTTP-01 challenge routes. Nothing is served in clear text.
    return {"name": HTTP_LISTENER, "port": 80, "protocol": "HTTP",
            "allowedRoutes": {"namespaces": {"from": "Same"}, "kinds": [{"group": GROUP, "kind": "HTTPRoute"}]}}


def gateway_spec(plan: Sequence[Tls], load_balancer_annotations: dict[str, str]) -> dict[str, Any]:
    spec: dict[str, Any] = {"gatewayClassName": GATEWAY_CLASS,
                            "listeners": [http_listener(), *(https_listener(t) for t in plan)]}
    if load_balancer_annotations:
        # Cilium copies these onto the gateway's LoadBalancer Service: the cloud's CCM reads them there.
        spec["infrastructure"] = {"annotations": dict(load_balancer_annotations)}
    return spec


def redirect_spec() -> dict[str, Any]:
    """Every plain-HTTP request to https:// on 443 (the scheme's port), with a permanent redirect."""
    return {"parentRefs": [{"group": GROUP, "kind": "Gateway", "name": NAME, "sectionName": HTTP_LISTENER}],
            "rules": [{"filters": [{"type": "RequestRedirect",
                                    "requestRedirect": {"scheme": "https", "statusCode": 301}}]}]}


# --- objects --------------------------------------------------------------------------------------

def _custom(ctx: ServicesContext, name: str, kind: str, api_version: str, obj_name: str, spec: dict[str, Any],
            depends_on: Sequence[pulumi.Resource]) -> k8s.apiextensions.CustomResource:
    return k8s.apiextensions.CustomResource(
        name, api_version=api_version, kind=kind,
        metadata=k8s.meta.v1.ObjectMetaArgs(name=obj_name, namespace=NAMESPACE, labels=ctx.labels("gateway")),
        spec=spec, opts=ctx.opts(depends_on))


def install(ctx: ServicesContext, spaces: Namespaces, certs: Certs, after: Sequence[pulumi.Resource]) -> GatewayRef:
    plan = tls_plan(ctx.domain, ctx.settings.gateway.hostnames, certs.wildcard)
    base = [*after, spaces[NAMESPACE]]
    gw = _custom(ctx, "gateway-shared", "Gateway", f"{GROUP}/v1", NAME,
                 gateway_spec(plan, ctx.load_balancer_annotations), base)
    # After the gateway: HTTP-01 challenges are answered through its port-80 listener.
    certificates = [_custom(ctx, f"certificate-{t.name}", "Certificate", "cert-manager.io/v1", t.name,
                            certificate_spec(t, certs.issuer), [*base, *certs.ready, gw])
                    for t in plan]
    redirect = _custom(ctx, "gateway-https-redirect", "HTTPRoute", f"{GROUP}/v1", "https-redirect",
                       redirect_spec(), [gw])
    return GatewayRef(NAME, NAMESPACE, ready=[*certificates, gw, redirect], domain=ctx.domain,
                      https_listeners={t.hostname: t.listener for t in plan})
