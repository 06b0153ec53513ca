"""Cilium values: eBPF networking with kube-proxy replacement, WireGuard, Hubble and the Gateway API."""

from __future__ import annotations

from typing import Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.charts import GATEWAY_API
from components.host_metrics import HUBBLE_METRICS_PORT
from providers.base import ClientAddress

# Where every node reaches the Kubernetes API without depending on any one server or balancer: on a K3s server
# its own kube-apiserver (bound to loopback on the supervisor port + 1, 6444), on an agent K3s' client-side load
# balancer (--lb-server-port, default 6444), which follows every server in the `kubernetes` endpoints and keeps
# the list across restarts (k3s pkg/daemons/control/server.go, pkg/agent/loadbalancer). Both serve the servers'
# certificate, which names 127.0.0.1. Every Cilium pod that talks to the API runs in the host's network (agent,
# operator, certgen jobs), where 127.0.0.1 is the node.
NODE_LOCAL_API = ("127.0.0.1", 6444)
# The chart's default certificate method (`helm`) issues Hubble's mTLS certificates once, valid 365 days, and
# never again: relay then loses every agent. The CronJob method re-issues them on this schedule (the chart's
# default for that method: midnight on the first day of every fourth month), well inside their validity.
HUBBLE_CERT_RENEWAL = {"method": "cronJob", "schedule": "0 0 1 */4 *"}


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def cilium_values(node_count: int, provider_values: dict[str, Any],
                  client_address: ClientAddress) -> dict[str, Any]:
    """Provider-neutral values; the provider adds routing specifics (e.g. native routing)."""
    base: dict[str, Any] = {
        "kubeProxyReplacement": True,
        # Without kube-proxy Cilium cannot reach the API through the service IP: the node-local endpoint, so losing
        # a server (or the balancer) never cuts a node's datapath off the API.
        "k8sServiceHost": NODE_LOCAL_API[0],
        "k8sServicePort": NODE_LOCAL_API[1],
        # Pod CIDRs come from the nodes' spec.podCIDR, allocated by K3s from its cluster-cidr.
        "ipam": {"mode": "kubernetes"},
        "routingMode": "tunnel",
        "tunnelProtocol": "vxlan",
        "bpf": {"masquerade": True},
        # ipBlock rules of NetworkPolicies match node addresses too: the API server and webhook
        # callers are nodes (components/services/namespaces.py).
        "policyCIDRMatchMode": "nodes",
        # Service load balancing at the socket only for host processes: a mesh proxy in a pod (Linkerd)
        # must see the ClusterIP it routes by (Linkerd docs, "Cluster configuration: Cilium").
        "socketLB": {"hostNamespaceOnly": True},
        # Keep other CNI plugins' configs (linkerd-cni chains itself after Cilium).
        "cni": {"exclusive": False},
        "encryption": {"enabled": True, "type": "wireguard"},
        "operator": {"replicas": min(2, node_count), "rollOutPods": True,
                     "prometheus": {"enabled": True}},
        "rollOutCiliumPods": True,
        "prometheus": {"enabled": True},
        "hubble": {
            "enabled": True,
            # Scraped by our PodMonitor (components/services/cilium_metrics.py), not the chart's ServiceMonitor.
            "metrics": {"enabled": ["dns", "drop", "tcp", "flow", "port-distribution", "icmp", "httpV2"],
                        "port": HUBBLE_METRICS_PORT},
            "tls": {"auto": dict(HUBBLE_CERT_RENEWAL)},
            "relay": {"enabled": True, "replicas": min(2, node_count)},
            "ui": {"enabled": True},
        },
        "gatewayAPI": gateway_api_values(client_address),
    }
    merged = deep_merge(base, provider_values)
    if merged.get("routingMode") == "native":
        merged.pop("tunnelProtocol", None)
    return merged


def gateway_api_values(client_address: ClientAddress) -> dict[str, Any]:
    """Cilium's Gateway API controller: each Gateway gets a LoadBalancer Service the cloud's CCM serves.

    The client's address reaches the services as X-Forwarded-For (Cilium's listeners use the connection's
    remote address and append it) either from the PROXY header the provider's balancer sends, or as the
    packet's own source address where traffic stays on the node it arrives at (providers/base.py ClientAddress).
    """
    return {
        "enabled": True,
        # Listeners behind a cloud load balancer, not bound on every node's ports 80/443.
        "hostNetwork": {"enabled": False},
        # The CRDs are applied before Cilium (gateway_api_crds), so the class never depends on Helm's lookup.
        "gatewayClass": {"create": "true"},
        # Global to every Gateway listener: with it on, a connection without a PROXY header is refused.
        "enableProxyProtocol": client_address.proxy_protocol,
        # PROXY protocol: every node accepts the gateway's traffic (the header carries the client), so every
        # balancer target passes its health check. Otherwise Local: no SNAT to another node, so the source
        # address is the client's; the balancer probes the healthCheckNodePort (Cilium answers it).
        "externalTrafficPolicy": "Cluster" if client_address.proxy_protocol else "Local",
        # No hop in front of the gateway adds X-Forwarded-For (the balancers are TCP): trust none a client sends.
        "xffNumTrustedHops": 0,
    }


def gateway_api_crds(provider: k8s.Provider, after: Sequence[pulumi.Resource],
                     parent: pulumi.Resource) -> list[pulumi.Resource]:
    """The Gateway API CRDs, applied in release order once the API server answers.

    Cilium's operator looks for them only when it starts (missing ones leave its gateway controller
    off until a restart), and cert-manager's Gateway API support refuses to start without them.
    """
    applied: list[pulumi.Resource] = []
    previous = list(after)
    for url in GATEWAY_API.urls:
        stem = url.rsplit("/", 1)[-1].removesuffix(".yaml")
        crds = k8s.yaml.v2.ConfigFile(f"{GATEWAY_API.name}-{stem}", file=url,
                                      opts=pulumi.ResourceOptions(parent=parent, provider=provider,
                                                                  depends_on=previous))
        applied.append(crds)
        previous = [crds]
    return applied
