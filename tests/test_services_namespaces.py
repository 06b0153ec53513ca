"""Namespaces of the cluster-services layer: Pod Security labels, default-deny policies, team quotas."""

from __future__ import annotations

import pytest

from components.services import namespaces
from components.services.namespaces import NamespaceSpec, Peer
from config.services import Team
from tests import variants
from tests.conftest import stack_run
from tests.netpol import internet_ports

NS = "kubernetes:core/v1:Namespace"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
QUOTA = "kubernetes:core/v1:ResourceQuota"
LIMITS = "kubernetes:core/v1:LimitRange"
CNP = "kubernetes:cilium.io/v2:CiliumNetworkPolicy"


def _namespaces(run):
    return {r.inputs["metadata"]["name"]: r for r in run.of_type(NS)}


def _policies(run, namespace):
    return {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in run.of_type(NETPOL)
            if r.inputs["metadata"]["namespace"] == namespace}


@pytest.mark.parametrize("stack", ["production", "staging"])
def test_every_namespace_enforces_a_pod_security_level_pinned_to_the_cluster_version(stack):
    run = stack_run(stack)
    spaces = _namespaces(run)
    assert spaces, "the cluster-services layer creates its namespaces"
    for name, ns in spaces.items():
        labels = ns.inputs["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] in ("restricted", "baseline", "privileged"), name
        assert labels["pod-security.kubernetes.io/enforce-version"] == "v1.36", name
        # Whatever is enforced, audit and warn report what `restricted` would refuse.
        assert labels["pod-security.kubernetes.io/warn"] == "restricted"
        assert labels["pod-security.kubernetes.io/audit"] == "restricted"
        if labels["pod-security.kubernetes.io/enforce"] != "restricted":
            assert ns.inputs["metadata"]["annotations"]["adplatform.io/pod-security-why"], \
                f"{name} relaxes Pod Security and must say why"


@pytest.mark.parametrize("stack", ["production", "staging"])
def test_every_namespace_denies_by_default_and_allows_only_dns_api_and_itself(stack):
    run = stack_run(stack)
    for name in _namespaces(run):
        policies = _policies(run, name)
        deny = policies["default-deny"]
        assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, name
        dns = policies["allow-dns"]["egress"][0]
        assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
        assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
        api = policies["allow-kubernetes-api"]["egress"][0]
        assert api["to"] == [{"ipBlock": {"cidr": "10.0.1.0/24"}}] and api["ports"] == [{"protocol": "TCP", "port": 6443}]
        for policy in policies.values():
            for rule in policy.get("ingress", []) + policy.get("egress", []):
                for peer in rule.get("from", []) + rule.get("to", []):
                    assert peer.get("ipBlock", {}).get("cidr") != "0.0.0.0/0" or "except" in peer["ipBlock"], \
                        f"{name}: internet egress must exclude the private ranges"


def test_policies_follow_the_spec():
    spec = NamespaceSpec("demo", "restricted", "test", webhooks=(10250,), egress_world=(443,),
                         ingress_from=(Peer("monitoring", (9402,)),), egress_to=(Peer("openbao", (8200,), {"app": "bao"}),))
    policies = namespaces.policies(spec, "10.0.1.0/24")
    assert policies["allow-api-server-webhooks"]["ingress"] == [
        {"from": [{"ipBlock": {"cidr": "10.0.1.0/24"}}], "ports": [{"protocol": "TCP", "port": 10250}]}]
    world = policies["allow-egress-internet"]["egress"][0]
    assert world["to"][0]["ipBlock"]["except"] == list(namespaces.PRIVATE_RANGES)
    assert "169.254.0.0/16" in namespaces.PRIVATE_RANGES, "pods must not reach the clouds' instance metadata"
    assert world["ports"] == [{"protocol": "TCP", "port": 443}]
    assert policies["allow-from-monitoring"]["ingress"][0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert policies["allow-to-openbao"]["egress"][0]["to"][0]["podSelector"] == {"matchLabels": {"app": "bao"}}
    bare = namespaces.policies(NamespaceSpec("bare", "restricted", "test"), "10.0.1.0/24")
    assert set(bare) == {"default-deny", "allow-dns", "allow-same-namespace", "allow-kubernetes-api"}
    scraper = namespaces.policies(NamespaceSpec("scraper", "restricted", "test", same_namespace=False,
                                                egress_nodes=(10250,),
                                                egress_to=(namespaces.Peer("all", (9090,), all_namespaces=True),)),
                                  "10.0.1.0/24")
    assert "allow-same-namespace" not in scraper
    assert scraper["allow-egress-nodes"]["egress"] == [{"to": [{"ipBlock": {"cidr": "10.0.1.0/24"}}],
                                                        "ports": [{"protocol": "TCP", "port": 10250}]}]
    assert scraper["allow-to-all"]["egress"][0]["to"] == [{"namespaceSelector": {}}], "every namespace"


def test_internet_egress_can_be_given_to_some_pods_only():
    """One workload's way out does not open it to its neighbours: each entry is its own policy over its pods."""
    spec = NamespaceSpec("demo", "restricted", "test", egress_world_pods=(
        namespaces.PodsEgress("sender", {"app": "sender"}, (443,)),
        namespaces.PodsEgress("mailer", {"app": "mailer"}, (587, 465))))
    policies = namespaces.policies(spec, "10.0.1.0/24")
    assert "allow-egress-internet" not in policies, "no namespace-wide way out"
    assert internet_ports(policies.values(), {"app": "sender"}) == {443}
    assert internet_ports(policies.values(), {"app": "mailer"}) == {465, 587}
    assert internet_ports(policies.values(), {"app": "web"}) == set()
    assert policies["allow-egress-internet-sender"]["egress"][0]["to"] == [
        {"ipBlock": {"cidr": "0.0.0.0/0", "except": list(namespaces.PRIVATE_RANGES)}}]


@pytest.mark.parametrize(("labels", "ports"), [({}, (443,)), ({"app": "sender"}, ())])
def test_pod_scoped_internet_egress_names_its_pods_and_ports(labels, ports):
    with pytest.raises(ValueError, match="internet egress 'sender'"):
        namespaces.PodsEgress("sender", labels, ports)


def test_two_pod_scoped_internet_egresses_may_not_share_a_name():
    twice = (namespaces.PodsEgress("x", {"app": "a"}, (443,)), namespaces.PodsEgress("x", {"app": "b"}, (443,)))
    with pytest.raises(ValueError, match="namespace demo: two internet egresses make the policy allow-egress-internet-x"):
        namespaces.policies(NamespaceSpec("demo", "restricted", "test", egress_world_pods=twice), "10.0.1.0/24")


def test_team_namespaces_are_restricted_with_quota_and_defaults(production, staging):
    for run, cpu, memory in ((production, "32", "64Gi"), (staging, "8", "16Gi")):
        spaces = _namespaces(run)
        for team in ("ads",):
            policies = {r.inputs["metadata"]["name"] for r in run.of_type(NETPOL)
                        if r.inputs["metadata"]["namespace"] == team}
            assert "allow-same-namespace" not in policies, "each ad service's own policy names its callers"
            labels = spaces[team].inputs["metadata"]["labels"]
            assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
            assert labels["adplatform.io/layer"] == "teams"
            quota = next(r for r in run.of_type(QUOTA) if r.inputs["metadata"]["namespace"] == team)
            hard = quota.inputs["spec"]["hard"]
            assert hard["requests.cpu"] == cpu and hard["requests.memory"] == memory
            assert hard["services.loadbalancers"] == "0", "teams publish through the shared gateway, not their own LBs"
            limits = next(r for r in run.of_type(LIMITS) if r.inputs["metadata"]["namespace"] == team)
            default = limits.inputs["spec"]["limits"][0]
            assert default["defaultRequest"]["cpu"] and default["default"]["memory"], \
                "containers without resources still get requests, so the quota admits them"
            gateway = [r for r in run.of_type(CNP) if r.inputs["metadata"]["namespace"] == team
                       and r.inputs["metadata"]["name"] == "allow-from-gateway"]
            assert gateway == [], "no namespace-wide gateway access: each public service admits the gateway itself"


def test_namespace_objects_wait_for_the_cluster_and_policies_for_their_namespace(production):
    ns = next(r for r in production.of_type(NS) if r.inputs["metadata"]["name"] == "ads")
    cilium = production.named("cilium", "kubernetes:helm.sh/v3:Release")
    assert cilium.urn in ns.dependencies
    for policy in production.of_type(NETPOL):
        if policy.inputs["metadata"]["namespace"] == "ads":
            assert ns.urn in policy.dependencies


def test_teams_from_config_replace_the_profile_teams():
    run = variants.services_variant()  # teams bidding (requests 64 CPUs) and analytics; a run shared with other files
    spaces = _namespaces(run)
    assert "bidding" in spaces and "ads" not in spaces and "ci" not in spaces
    quota = next(r for r in run.of_type(QUOTA) if r.inputs["metadata"]["namespace"] == "bidding")
    assert quota.inputs["spec"]["hard"]["requests.cpu"] == "64"


def test_a_namespace_declared_twice_is_refused():
    with pytest.raises(ValueError, match="declared twice"):
        namespaces.install(_FakeCtx(), [NamespaceSpec("ads", "restricted", "x")], after=[], teams=[Team(name="ads")])


class _FakeCtx:
    """Just enough context for install() to reach its duplicate check (which runs before any resource)."""

    class cluster:  # noqa: N801
        k3s_version = "v1.36.4+k3s1"


# Kubernetes' ResourceQuota names (core/v1 ResourceName constants and `count/<resource>.<group>`). The API accepts
# any qualified name, so a misspelt one (`services.loadbalancer`) is stored and limits nothing.
QUOTA_NAMES = {"pods", "services", "services.loadbalancers", "services.nodeports", "secrets", "configmaps",
               "persistentvolumeclaims", "replicationcontrollers", "resourcequotas", "requests.cpu", "requests.memory",
               "requests.storage", "requests.ephemeral-storage", "limits.cpu", "limits.memory",
               "limits.ephemeral-storage", "cpu", "memory", "ephemeral-storage"}


@pytest.mark.parametrize("stack", ["production", "staging"])
def test_every_quota_names_resources_kubernetes_counts(stack):
    for quota in stack_run(stack).of_type(QUOTA):
        unknown = {k for k in quota.inputs["spec"]["hard"] if k not in QUOTA_NAMES and not k.startswith("count/")}
        assert not unknown, f"{quota.name}: {unknown} limit nothing"


@pytest.mark.parametrize("stack", ["production", "staging"])
def test_no_quotad_namespace_may_open_its_own_load_balancer_or_node_port(stack):
    quotas = stack_run(stack).of_type(QUOTA)
    assert "ads" in {q.inputs["metadata"]["namespace"] for q in quotas}
    for quota in quotas:
        hard = quota.inputs["spec"]["hard"]
        assert hard["services.loadbalancers"] == hard["services.nodeports"] == "0", quota.name
