"""The first deploy's ordering (issue 22): each resource waits for what it needs at apply time, not for a whole
layer below it. Checked on the recorded production run: the waits removed stay removed, the real ones stay."""

from __future__ import annotations

from tools.mockrun import Run

RELEASE = "kubernetes:helm.sh/v3:Release"
NAMESPACE = "kubernetes:core/v1:Namespace"
STORAGE = {"hcloud-csi", "storage-class-hcloud-volumes", "storage-class-hcloud-volumes-xfs"}


def deps(run: Run, name: str, type_: str) -> set[str]:
    return {run.by_urn(u).name for u in run.named(name, type_).dependencies}


def test_monitoring_crds_wait_for_nothing_but_the_cluster_api(production):
    # A chart of CRDs only: no pods (no CNI needed), no volumes, no namespace of ours. Its provider is built from
    # the kubeconfig, read after the first server answers /readyz, so the API is there when it applies.
    assert deps(production, "prometheus-operator-crds", RELEASE) == set()
    provider = production.by_urn(production.named("prometheus-operator-crds", RELEASE).provider.rsplit("::", 1)[0])
    assert provider.name == "k8s"


def test_cert_manager_waits_for_network_policies_and_crds_not_storage(production):
    got = deps(production, "cert-manager", RELEASE)
    assert not got & STORAGE  # no PVCs: the CSI driver and storage classes are not its business
    # Real: the pod network (its pods), its namespace's policies, the ServiceMonitor's CRD, the Gateway API CRDs.
    assert {"cilium", "ns-cert-manager", "netpol-cert-manager-default-deny",
            "netpol-cert-manager-allow-api-server-webhooks", "prometheus-operator-crds",
            "gateway-api-standard-install"} <= got


def test_issuers_still_wait_for_cert_manager(production):
    assert "cert-manager" in deps(production, "cluster-issuer-letsencrypt-production",
                                  "kubernetes:cert-manager.io/v1:ClusterIssuer")


def test_upper_layers_namespaces_wait_for_the_cluster_not_the_cluster_services(production):
    # A namespace and its policies need the API and Cilium (CiliumNetworkPolicy is Cilium's CRD), not
    # cert-manager, issuers, storage or the monitoring CRDs.
    for ns in ("ns-cnpg-system", "ns-gitlab"):
        got = deps(production, ns, NAMESPACE)
        assert "cilium" in got
        assert not got & {"cert-manager", "cluster-issuer-letsencrypt-production", "prometheus-operator-crds",
                          *STORAGE}


def test_workloads_of_upper_layers_still_wait_for_the_cluster_services(production):
    # The stores and platform releases still need what they render: certificates, monitors, volumes.
    for name in ("cloudnative-pg", "gitlab"):
        assert {"cert-manager", "prometheus-operator-crds", "storage-class-hcloud-volumes",
                "cluster-issuer-letsencrypt-production"} <= deps(production, name, RELEASE)
    assert {"cloudnative-pg", "cert-manager"} <= deps(production, "plugin-barman-cloud", RELEASE)
