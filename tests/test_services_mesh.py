"""Encryption in transit: Cilium WireGuard everywhere, the optional Linkerd mesh with cert-manager identity."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from components import charts
from components.services import mesh
from policy import rules
from tests import validators
from tests import variants
from tests.conftest import base_raw, run_raw, stack_run
from tools import mockrun
from tools.mockrun import Resource, Run
from tools.plan import model

RELEASE = "kubernetes:helm.sh/v3:Release"
NAMESPACE = "kubernetes:core/v1:Namespace"
ISSUER = "kubernetes:cert-manager.io/v1:Issuer"
CERTIFICATE = "kubernetes:cert-manager.io/v1:Certificate"
BUNDLE = "kubernetes:trust.cert-manager.io/v1alpha1:Bundle"
MESH_CHARTS = {charts.LINKERD_CRDS, charts.LINKERD_CONTROL_PLANE, charts.LINKERD_CNI, charts.TRUST_MANAGER}


@pytest.fixture(scope="module")
def meshed() -> Run:
    """Production with Linkerd on `ads` (the shared production variant, tests/variants.py)."""
    return variants.production_variant()


def release(run: Run, name: str) -> Resource:
    return run.named(name, RELEASE)


def values(run: Run, name: str) -> dict:
    return validators.plain(release(run, name).inputs["values"])


def depends_on(run: Run, resource: Resource, other: Resource) -> bool:
    """Directly or through the chain of dependencies (Pulumi waits for the whole chain)."""
    seen, todo = set(), list(resource.dependencies)
    while todo:
        urn = todo.pop()
        if urn == other.urn:
            return True
        if urn not in seen:
            seen.add(urn)
            todo += next((r.dependencies for r in run.resources if r.urn == urn), [])
    return False


def spec_of(run: Run, type_: str, name: str) -> dict:
    found = [r for r in run.of_type(type_) if r.inputs["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {type_} named {name}"
    return found[0].inputs


# --- Cilium WireGuard: on by default, whatever the mesh -------------------------------------------

@pytest.mark.parametrize("stack", mockrun.stacks())
def test_cilium_encrypts_traffic_between_nodes_with_wireguard_in_every_stack(stack):
    cilium = [r for r in stack_run(stack).of_type(RELEASE) if r.inputs["chart"] == "cilium"]
    assert len(cilium) == 1
    encryption = validators.plain(cilium[0].inputs["values"])["encryption"]
    # A hybrid cluster also encrypts node-to-node traffic (host network): its nodes meet over a vSwitch
    # (test_hybrid.py); elsewhere the provider's private network carries it.
    hybrid = {"nodeEncryption": True} if stack == "production-hybrid" else {}
    assert encryption == {"enabled": True, "type": "wireguard", **hybrid}


# --- Linkerd off (the default) --------------------------------------------------------------------

@pytest.mark.parametrize("stack", ["production", "staging"])
def test_without_linkerd_nothing_of_the_mesh_exists(stack):
    run = stack_run(stack)
    mesh_charts = {c.chart for c in MESH_CHARTS}
    assert [r.name for r in run.of_type(RELEASE) if r.inputs["chart"] in mesh_charts] == []
    assert [r.name for r in run.resources if "linkerd" in r.name or "trust-manager" in r.name] == []
    assert run.of_type(BUNDLE) == []
    for ns in run.of_type(NAMESPACE):
        assert "linkerd.io/inject" not in (ns.inputs["metadata"].get("annotations") or {})


# --- charts ---------------------------------------------------------------------------------------

def test_mesh_charts_are_pinned_from_the_catalog(meshed):
    for name, chart in [("linkerd-crds", charts.LINKERD_CRDS), ("linkerd-control-plane", charts.LINKERD_CONTROL_PLANE),
                        ("linkerd-cni", charts.LINKERD_CNI), ("trust-manager", charts.TRUST_MANAGER)]:
        inputs = release(meshed, name).inputs
        assert (inputs["chart"], inputs["version"], inputs["repositoryOpts"]["repo"], inputs["namespace"]) == \
            (chart.chart, chart.version, chart.repo, chart.namespace)
        assert inputs["createNamespace"] is False, "the namespace is ours (Pod Security labels, policies)"


def test_linkerd_charts_are_one_edge_release_from_the_edge_repository():
    linkerd = [charts.LINKERD_CRDS, charts.LINKERD_CONTROL_PLANE, charts.LINKERD_CNI]
    assert {c.repo for c in linkerd} == {"https://helm.linkerd.io/edge"}
    assert len({c.version for c in linkerd}) == 1, "CRDs, CNI and control plane from the same edge release"
    # edge-YY.M.N is published as chart version YYYY.M.N
    assert re.fullmatch(r"20\d\d\.(1[0-2]|[1-9])\.\d+", charts.LINKERD_CONTROL_PLANE.version)


def test_linkerd_leaves_the_gateway_api_crds_to_the_cluster_layer(meshed):
    assert values(meshed, "linkerd-crds") == {"installGatewayAPI": False}


# --- control plane values -------------------------------------------------------------------------

def test_identity_comes_from_cert_manager_not_from_helm_values(meshed):
    v = values(meshed, "linkerd-control-plane")
    assert v["identity"] == {"externalCA": True, "issuer": {"scheme": "kubernetes.io/tls"}}
    assert "identityTrustAnchorsPEM" not in v, "the anchor is read from the trust-manager ConfigMap"
    assert "tls" not in v["identity"]["issuer"], "no issuer key in Helm values or Pulumi state"


def test_proxies_are_set_up_by_the_cni_plugin_and_fit_restricted_namespaces(meshed):
    v = values(meshed, "linkerd-control-plane")
    assert v["cniEnabled"] is True
    assert v["proxy"]["capabilities"] == {"drop": ["ALL"]}
    # A regular sidecar: the ad services' proxies wait before they exit, which the chart refuses with a native one.
    assert v["proxy"]["nativeSidecar"] is False
    assert v["proxy"]["resources"]["memory"]["limit"] and v["proxy"]["resources"]["cpu"]["request"]
    assert v["disableHeartBeat"] is True, "no egress to versioncheck.linkerd.io"


def test_production_control_plane_is_highly_available(meshed):
    v = values(meshed, "linkerd-control-plane")
    assert v["controllerReplicas"] == 3
    assert v["enablePodAntiAffinity"] is True
    assert v["enablePodDisruptionBudget"] is True
    assert v["controller"]["podDisruptionBudget"] == {"maxUnavailable": 1}
    assert v["webhookFailurePolicy"] == "Fail"
    assert v["highAvailability"] is True
    tm = values(meshed, "trust-manager")
    assert tm["replicaCount"] == 2 and tm["podDisruptionBudget"]["enabled"] is True


def test_ha_replicas_never_exceed_the_nodes_the_required_anti_affinity_can_use():
    ctx = SimpleNamespace(ha=True, replicas=lambda n: min(n, 2))
    assert mesh.control_plane_values(ctx)["controllerReplicas"] == 2


def test_non_ha_profiles_run_one_replica_without_disruption_budgets():
    ctx = SimpleNamespace(ha=False, replicas=lambda n: 1)
    v = mesh.control_plane_values(ctx)
    for key in ("controllerReplicas", "enablePodAntiAffinity", "enablePodDisruptionBudget", "webhookFailurePolicy"):
        assert key not in v, f"{key} left at the chart default outside HA profiles"
    tm = mesh.trust_manager_values(ctx)
    assert tm["replicaCount"] == 1 and "podDisruptionBudget" not in tm


def test_every_configured_container_has_requests_and_a_memory_limit(meshed):
    v = values(meshed, "linkerd-control-plane")
    blocks = [v[k] for k in ("controllerResources", "destinationResources", "identityResources",
                             "heartbeatResources", "proxyInjectorResources", "spValidatorResources")]
    blocks += [v["policyController"]["resources"], v["proxy"]["resources"]]
    cni = values(meshed, "linkerd-cni")
    blocks += [cni["resources"], cni["repairController"]["resources"]]
    for block in blocks:
        assert block["cpu"]["request"] and block["memory"]["request"] and block["memory"]["limit"]


def test_cni_plugin_chains_into_ciliums_cni_directories(meshed):
    cni = values(meshed, "linkerd-cni")
    assert (cni["destCNINetDir"], cni["destCNIBinDir"]) == ("/etc/cni/net.d", "/opt/cni/bin")
    assert cni["repairController"]["enabled"] is True


# --- identity: trust anchor -> CA issuer -> identity issuer -> trust bundle -----------------------

def test_certificate_chain_from_self_signed_anchor_to_identity_issuer(meshed):
    root = spec_of(meshed, ISSUER, "linkerd-trust-root-issuer")
    assert root["spec"] == {"selfSigned": {}}
    anchor = spec_of(meshed, CERTIFICATE, "linkerd-trust-anchor")
    assert anchor["spec"]["isCA"] is True
    assert anchor["spec"]["issuerRef"]["name"] == root["metadata"]["name"]
    ca = spec_of(meshed, ISSUER, "linkerd-trust-anchor")
    assert ca["spec"] == {"ca": {"secretName": anchor["spec"]["secretName"]}}
    issuer = spec_of(meshed, CERTIFICATE, "linkerd-identity-issuer")
    assert issuer["spec"]["issuerRef"] == {"name": ca["metadata"]["name"], "kind": "Issuer", "group": "cert-manager.io"}
    assert issuer["spec"]["isCA"] is True, "the identity issuer signs the proxies' certificates"
    assert issuer["spec"]["secretName"] == "linkerd-identity-issuer", "the Secret name Linkerd mounts"
    for cert in (anchor, issuer):
        assert cert["metadata"]["namespace"] == "linkerd"
        assert cert["spec"]["privateKey"] == {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"}


def test_identity_issuer_rotates_often_and_the_anchor_does_not(meshed):
    anchor = spec_of(meshed, CERTIFICATE, "linkerd-trust-anchor")["spec"]
    issuer = spec_of(meshed, CERTIFICATE, "linkerd-identity-issuer")["spec"]
    hours = lambda d: int(d.split("h")[0])  # noqa: E731
    assert hours(issuer["duration"]) == 48 and hours(issuer["renewBefore"]) < hours(issuer["duration"])
    assert hours(anchor["duration"]) >= 5 * 8760, "replacing the anchor is a manual, mesh-wide restart"


def test_trust_bundle_copies_the_anchor_certificate_into_the_configmap_linkerd_reads(meshed):
    bundle = meshed.of_type(BUNDLE)
    assert len(bundle) == 1
    spec = bundle[0].inputs
    assert spec["metadata"] == {"name": "linkerd-identity-trust-roots"}
    anchor = spec_of(meshed, CERTIFICATE, "linkerd-trust-anchor")
    assert spec["spec"]["sources"] == [{"secret": {"name": anchor["spec"]["secretName"], "key": "tls.crt"}}]
    assert spec["spec"]["target"]["configMap"] == {"key": "ca-bundle.crt"}
    assert spec["spec"]["target"]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "linkerd"}}
    tm = values(meshed, "trust-manager")["app"]
    assert tm == {"trust": {"namespace": "linkerd"}, "targetNamespaces": ["linkerd"]}


# --- install order --------------------------------------------------------------------------------

def test_install_order(meshed):
    control_plane = release(meshed, "linkerd-control-plane")
    crds, cni, trust_manager = (release(meshed, n) for n in ("linkerd-crds", "linkerd-cni", "trust-manager"))
    bundle = meshed.of_type(BUNDLE)[0]
    identity_issuer = meshed.named("linkerd-certificate-linkerd-identity-issuer", CERTIFICATE)
    anchor = meshed.named("linkerd-certificate-linkerd-trust-anchor", CERTIFICATE)
    ca = meshed.named("linkerd-issuer-linkerd-trust-anchor", ISSUER)
    for before in (crds, cni, bundle, identity_issuer, anchor):
        assert depends_on(meshed, control_plane, before), before.name
    assert depends_on(meshed, identity_issuer, ca) and depends_on(meshed, ca, anchor)
    assert depends_on(meshed, bundle, trust_manager) and depends_on(meshed, bundle, anchor)


def test_cert_manager_is_installed_before_any_certificate(meshed):
    cert_manager = [r for r in meshed.of_type(RELEASE) if r.inputs["chart"] == charts.CERT_MANAGER.chart]
    assert len(cert_manager) == 1
    for resource in [*meshed.of_type(ISSUER), *meshed.of_type(CERTIFICATE), release(meshed, "trust-manager")]:
        if resource.inputs.get("metadata", {}).get("namespace", "linkerd") == "linkerd":
            assert depends_on(meshed, resource, cert_manager[0]), resource.name


def test_everything_waits_for_the_namespaces_it_lives_in(meshed):
    namespaces = {n: meshed.named(f"ns-{n}", NAMESPACE) for n in ("linkerd", "linkerd-cni", "trust-manager")}
    assert depends_on(meshed, release(meshed, "linkerd-control-plane"), namespaces["linkerd"])
    assert depends_on(meshed, release(meshed, "linkerd-cni"), namespaces["linkerd-cni"])
    assert depends_on(meshed, release(meshed, "trust-manager"), namespaces["trust-manager"])


# --- namespaces and network policies --------------------------------------------------------------

def _labels(run: Run, name: str) -> dict:
    return run.named(f"ns-{name}", NAMESPACE).inputs["metadata"]["labels"]


def test_meshed_namespace_gets_the_injection_annotation_and_others_do_not(meshed):
    assert meshed.named("ns-ads", NAMESPACE).inputs["metadata"]["annotations"]["linkerd.io/inject"] == "enabled"
    assert "linkerd.io/inject" not in meshed.named("ns-gateway", NAMESPACE).inputs["metadata"]["annotations"]


def test_pod_security_levels(meshed):
    enforce = "pod-security.kubernetes.io/enforce"
    assert _labels(meshed, "linkerd")[enforce] == "restricted"
    assert _labels(meshed, "trust-manager")[enforce] == "restricted"
    assert _labels(meshed, "linkerd-cni")[enforce] == "privileged", "hostPath CNI install as root"
    assert _labels(meshed, "ads")[enforce] == "restricted", "meshed apps stay restricted thanks to the CNI plugin"
    assert _labels(meshed, "linkerd")["linkerd.io/is-control-plane"] == "true"
    assert _labels(meshed, "linkerd")["config.linkerd.io/admission-webhooks"] == "disabled"


def _policy(run: Run, namespace: str, name: str) -> dict:
    return run.named(f"netpol-{namespace}-{name}", "kubernetes:networking.k8s.io/v1:NetworkPolicy").inputs["spec"]


def test_control_plane_accepts_meshed_namespaces_on_its_grpc_ports_and_the_api_server_on_webhooks(meshed):
    rule = _policy(meshed, "linkerd", "allow-from-ads")["ingress"][0]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ads"}}}]
    assert sorted(p["port"] for p in rule["ports"]) == [8080, 8086, 8090]
    webhooks = _policy(meshed, "linkerd", "allow-api-server-webhooks")["ingress"][0]
    assert sorted(p["port"] for p in webhooks["ports"]) == [8443, 9443]
    tm = _policy(meshed, "trust-manager", "allow-api-server-webhooks")["ingress"][0]
    assert [p["port"] for p in tm["ports"]] == [6443]


def test_meshed_team_namespaces_may_reach_the_control_plane_and_others_may_not(meshed):
    rule = _policy(meshed, "ads", "allow-to-linkerd")["egress"][0]
    assert rule["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "linkerd"}}}]
    assert sorted(p["port"] for p in rule["ports"]) == [8080, 8086, 8090]
    assert not [r for r in meshed.resources if r.name == "netpol-ci-allow-to-linkerd"], "ci is not meshed"


def test_meshed_namespace_peers_name_the_control_plane_ports():
    ctx = SimpleNamespace(settings=SimpleNamespace(mesh=SimpleNamespace(linkerd=True, namespaces=["ads", "bid"])))
    peers = mesh.meshed_namespace_peers(ctx)
    assert set(peers) == {"ads", "bid"}
    assert peers["ads"][0].namespace == "linkerd" and peers["ads"][0].ports == (8080, 8086, 8090)
    off = SimpleNamespace(settings=SimpleNamespace(mesh=SimpleNamespace(linkerd=False, namespaces=["ads"])))
    assert mesh.meshed_namespace_peers(off) == {} and mesh.namespaces(off) == []


# --- validators and policy over the meshed run ----------------------------------------------------

def test_mesh_objects_match_their_schemas(meshed):
    mine = [r for r in validators.kubernetes_objects(meshed)
            if "linkerd" in r.name or "trust-manager" in r.name or r.type == BUNDLE]
    assert {r.type for r in mine} >= {ISSUER, CERTIFICATE, BUNDLE, NAMESPACE}
    for obj in mine:
        validators.validate_kubernetes(obj.type, obj.inputs)


def test_issuer_schema_rejects_an_unknown_issuer_type():
    bad = {"apiVersion": "cert-manager.io/v1", "kind": "Issuer", "metadata": {"name": "x", "namespace": "linkerd"},
           "spec": {"ca": {"secretName": "x"}, "selfSigned": {}}}
    with pytest.raises(Exception):
        validators.validate_kubernetes(ISSUER, bad)


def test_the_meshed_run_passes_the_policy_pack(meshed):
    assert model.build(meshed)["policy"]["violations"] == []
    settings = model.policy_settings(meshed)
    for name in ("linkerd-crds", "linkerd-control-plane", "linkerd-cni", "trust-manager"):
        r = release(meshed, name)
        assert rules.check(rules.Subject(r.urn, r.type, r.name, r.inputs), settings) == []
