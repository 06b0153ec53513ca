"""Optional Linkerd mesh: mTLS between the pods of the meshed application namespaces.

Cilium's WireGuard already encrypts every packet between nodes (components/k3s/cilium.py); the mesh
adds workload identity (mTLS with per-pod certificates), which also covers pods on the same node.

Identity without hand-made certificates, as Linkerd documents it ("Automatically Rotating Control
Plane TLS Credentials"): cert-manager creates a self-signed trust anchor and, from it, the identity
issuer Linkerd signs proxy certificates with; trust-manager copies the anchor's public certificate
into the `linkerd-identity-trust-roots` ConfigMap the control plane and the proxy injector read
(with `identity.externalCA` the chart no longer writes it, and the PEM only exists in the cluster,
so it cannot be a Helm value). The proxies are set up by the Linkerd CNI plugin, not by the
`proxy-init` container, which needs NET_ADMIN/NET_RAW: the application namespaces enforce the
`restricted` Pod Security level, which forbids both.
"""

from __future__ import annotations

from typing import Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import charts, helm
from components.services.certs import Certs
from components.services.context import ServicesContext
from components.services.namespaces import Namespaces, NamespaceSpec, Peer

NAMESPACE = "linkerd"
CNI_NAMESPACE = "linkerd-cni"
TRUST_MANAGER_NAMESPACE = "trust-manager"

# Control plane ports the proxies of meshed pods dial (chart templates identity.yaml, destination.yaml).
IDENTITY_PORT = 8080
DESTINATION_PORT = 8086
POLICY_PORT = 8090
CONTROL_PLANE_PORTS = (IDENTITY_PORT, DESTINATION_PORT, POLICY_PORT)
# Admission webhooks the API server calls: proxy injector and sp-validator (8443), policy validator (9443).
WEBHOOK_PORTS = (8443, 9443)
TRUST_MANAGER_WEBHOOK_PORT = 6443

# Names Linkerd expects (chart templates identity.yaml, proxy-injector.yaml).
TRUST_ROOTS = "linkerd-identity-trust-roots"
IDENTITY_ISSUER = "linkerd-identity-issuer"
TRUST_ANCHOR = "linkerd-trust-anchor"
ROOT_ISSUER = "linkerd-trust-root-issuer"

# Where Cilium writes its CNI config and binaries (its chart defaults, not overridden in
# components/k3s/cilium.py): linkerd-cni chains itself into the same conflist.
CNI_CONF_DIR = "/etc/cni/net.d"
CNI_BIN_DIR = "/opt/cni/bin"

# The anchor lives as long as the cluster would reasonably: replacing it means restarting every
# meshed pod with both anchors in the bundle (a manual runbook), so it must never rotate by surprise.
ANCHOR_DURATION = "87600h0m0s"  # 10 years
ANCHOR_RENEW_BEFORE = "8760h0m0s"
# The identity issuer rotates on its own: the identity controller reloads the Secret.
ISSUER_DURATION = "48h0m0s"
ISSUER_RENEW_BEFORE = "25h0m0s"


def enabled(ctx: ServicesContext) -> bool:
    return ctx.settings.mesh.linkerd


def meshed(ctx: ServicesContext) -> list[str]:
    return list(ctx.settings.mesh.namespaces) if enabled(ctx) else []


def meshed_namespace_peers(ctx: ServicesContext) -> dict[str, tuple[Peer, ...]]:
    """Egress each meshed namespace needs: its proxies fetch certificates, endpoints and policy."""
    return {ns: (Peer(NAMESPACE, CONTROL_PLANE_PORTS),) for ns in meshed(ctx)}


def namespaces(ctx: ServicesContext) -> list[NamespaceSpec]:
    if not enabled(ctx):
        return []
    return [
        NamespaceSpec(
            name=NAMESPACE, pss="restricted",
            why="Linkerd control plane; with the CNI plugin no pod needs NET_ADMIN (no proxy-init)",
            webhooks=WEBHOOK_PORTS,
            ingress_from=tuple(Peer(ns, CONTROL_PLANE_PORTS) for ns in meshed(ctx)),
            # What the chart's own namespace template sets: trust-manager's Bundle targets it, and
            # the injector's webhook must not act on the control plane's own pods.
            labels={"linkerd.io/is-control-plane": "true", "linkerd.io/control-plane-ns": NAMESPACE,
                    "config.linkerd.io/admission-webhooks": "disabled"},
            annotations={"linkerd.io/inject": "disabled"}),
        NamespaceSpec(
            name=CNI_NAMESPACE, pss="privileged",
            why="linkerd-cni DaemonSet runs as root with hostPath mounts to install its CNI plugin on every node",
            labels={"linkerd.io/cni-resource": "true", "config.linkerd.io/admission-webhooks": "disabled"}),
        NamespaceSpec(
            name=TRUST_MANAGER_NAMESPACE, pss="restricted",
            why="trust-manager: non-root controller that copies CA certificates into ConfigMaps",
            webhooks=(TRUST_MANAGER_WEBHOOK_PORT,)),
    ]


# --- values ------------------------------------------------------------------------------------------

def _res(cpu: str, memory: str, memory_limit: str) -> dict[str, Any]:
    """Linkerd's resource format (partials/_resources.tpl): {cpu: {request}, memory: {request, limit}}."""
    return {"cpu": {"request": cpu}, "memory": {"request": memory, "limit": memory_limit}}


def control_plane_values(ctx: ServicesContext) -> dict[str, Any]:
    controller = _res("100m", "50Mi", "250Mi")
    values: dict[str, Any] = {
        "identity": {"externalCA": True, "issuer": {"scheme": "kubernetes.io/tls"}},
        "cniEnabled": True,
        # The heartbeat CronJob reports to versioncheck.linkerd.io: no internet egress from here.
        "disableHeartBeat": True,
        "controllerResources": controller,
        "destinationResources": controller,
        "identityResources": _res("100m", "10Mi", "250Mi"),
        "heartbeatResources": controller,
        "proxyInjectorResources": controller,
        "spValidatorResources": controller,
        "policyController": {"resources": _res("100m", "50Mi", "250Mi")},
        "proxy": {
            # Every injected proxy (also in the team namespaces' quota) and the network validator.
            "resources": _res("100m", "20Mi", "250Mi"),
            # `restricted` requires dropping all capabilities; the chart sets none by default.
            "capabilities": {"drop": ["ALL"]},
            # A regular sidecar, which waits before it exits where a pod asks (components/ads/service.py
            # PROXY_WAIT_ANNOTATION): the chart refuses a wait together with a native sidecar (partials/proxy).
            "nativeSidecar": False,
        },
    }
    if ctx.ha:
        values.update(ha_values(ctx))
    return values


def ha_values(ctx: ServicesContext) -> dict[str, Any]:
    """The chart's values-ha.yaml; replicas capped by the nodes (anti-affinity is required per host)."""
    return {
        "controllerReplicas": ctx.replicas(3),
        "enablePodAntiAffinity": True,
        "enablePodDisruptionBudget": True,
        "controller": {"podDisruptionBudget": {"maxUnavailable": 1}},
        "deploymentStrategy": {"rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}},
        # A pod created while the injector is down must fail, not start outside the mesh.
        "webhookFailurePolicy": "Fail",
        "highAvailability": True,
    }


def cni_values() -> dict[str, Any]:
    return {
        "destCNINetDir": CNI_CONF_DIR,
        "destCNIBinDir": CNI_BIN_DIR,
        "resources": _res("50m", "32Mi", "128Mi"),
        # Restarts pods whose network validator found the chain missing (pods created while a
        # node's plugin was still being installed).
        "repairController": {"enabled": True, "resources": _res("10m", "32Mi", "128Mi")},
    }


def trust_manager_values(ctx: ServicesContext) -> dict[str, Any]:
    values: dict[str, Any] = {
        "crds": {"enabled": True},
        "replicaCount": ctx.replicas(2),
        # Reads Secrets only in the trust namespace and writes only to the Linkerd namespace.
        "app": {"trust": {"namespace": NAMESPACE}, "targetNamespaces": [NAMESPACE]},
        # The public CA package is not needed for a private trust anchor (and is another image).
        "defaultPackage": {"enabled": False},
        "resources": {"requests": {"cpu": "25m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
    }
    if ctx.ha:
        values["podDisruptionBudget"] = {"enabled": True, "minAvailable": 1}
        values["topologySpreadConstraints"] = [{
            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app": "trust-manager"}}}]
    return values


# --- certificates ----------------------------------------------------------------------------------

def _cert_manager(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "cert-manager.io/v1", "kind": kind,
            "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec}


def _private_key() -> dict[str, Any]:
    # Linkerd needs ECDSA P-256; rotationPolicy explicit, as the Linkerd docs insist (default changed in 1.18).
    return {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"}


def identity_manifests() -> list[dict[str, Any]]:
    """Trust anchor (self-signed) -> CA Issuer -> identity issuer, in the order they depend on each other."""
    return [
        _cert_manager("Issuer", ROOT_ISSUER, {"selfSigned": {}}),
        _cert_manager("Certificate", TRUST_ANCHOR, {
            "secretName": TRUST_ANCHOR, "isCA": True, "commonName": "root.linkerd.cluster.local",
            "duration": ANCHOR_DURATION, "renewBefore": ANCHOR_RENEW_BEFORE, "privateKey": _private_key(),
            "issuerRef": {"name": ROOT_ISSUER, "kind": "Issuer", "group": "cert-manager.io"}}),
        _cert_manager("Issuer", TRUST_ANCHOR, {"ca": {"secretName": TRUST_ANCHOR}}),
        _cert_manager("Certificate", IDENTITY_ISSUER, {
            "secretName": IDENTITY_ISSUER, "isCA": True, "commonName": "identity.linkerd.cluster.local",
            "duration": ISSUER_DURATION, "renewBefore": ISSUER_RENEW_BEFORE, "privateKey": _private_key(),
            "issuerRef": {"name": TRUST_ANCHOR, "kind": "Issuer", "group": "cert-manager.io"}}),
    ]


def trust_bundle() -> dict[str, Any]:
    """The anchor's public certificate into the ConfigMap Linkerd reads (the Bundle's name is the ConfigMap's)."""
    return {"apiVersion": "trust.cert-manager.io/v1alpha1", "kind": "Bundle",
            "metadata": {"name": TRUST_ROOTS},
            "spec": {"sources": [{"secret": {"name": TRUST_ANCHOR, "key": "tls.crt"}}],
                     "target": {"configMap": {"key": "ca-bundle.crt"},
                                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}}}}}


def _custom(name: str, manifest: dict[str, Any], opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
    return k8s.apiextensions.CustomResource(
        name, api_version=manifest["apiVersion"], kind=manifest["kind"], metadata=manifest["metadata"],
        spec=manifest["spec"], opts=opts)


def _identity(ctx: ServicesContext, depends: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    created: list[pulumi.Resource] = []
    for manifest in identity_manifests():
        kind = manifest["kind"].lower()
        created.append(_custom(f"linkerd-{kind}-{manifest['metadata']['name']}", manifest,
                               ctx.opts([*depends, *created])))
    return created


# --- install ---------------------------------------------------------------------------------------

def install(ctx: ServicesContext, spaces: Namespaces, certs: Certs,
            after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    if not enabled(ctx):
        return []
    ns, cni_ns, tm_ns = spaces[NAMESPACE], spaces[CNI_NAMESPACE], spaces[TRUST_MANAGER_NAMESPACE]
    # cert-manager (its CRDs and webhook) must answer before any Issuer/Certificate is created.
    cert_manager = [*after, *certs.ready]

    identity = _identity(ctx, [*cert_manager, ns])
    trust_manager = helm.release("trust-manager", charts.TRUST_MANAGER, trust_manager_values(ctx),
                                 ctx.opts([*cert_manager, tm_ns, ns]), create_namespace=False)
    bundle = _custom("linkerd-trust-roots", trust_bundle(), ctx.opts([trust_manager, *identity]))

    crds = helm.release("linkerd-crds", charts.LINKERD_CRDS, {"installGatewayAPI": False},
                        ctx.opts([*after, ns]), create_namespace=False)
    cni = helm.release("linkerd-cni", charts.LINKERD_CNI, cni_values(), ctx.opts([*after, cni_ns]),
                       create_namespace=False)
    control_plane = helm.release(
        "linkerd-control-plane", charts.LINKERD_CONTROL_PLANE, control_plane_values(ctx),
        ctx.opts([crds, cni, bundle, *identity, ns]), create_namespace=False)
    return [*identity, trust_manager, bundle, crds, cni, control_plane]
