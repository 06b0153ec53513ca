"""The policy pack: each rule directly (pass and fail), the CrossGuard wiring, and every stack's plan."""

from __future__ import annotations

import pytest
import yaml

from policy import rules
from policy.rules import Secret, Settings, Subject
from tests.conftest import ROOT
from tests.runs import stack_plan
from tools import mockrun
from tools.plan import model

PROD = "urn:pulumi:production::adplatform::"
STAGING = "urn:pulumi:staging::adplatform::"


def subject(type_: str, props: dict, protect: bool = False, urn: str = PROD) -> Subject:
    return Subject(f"{urn}{type_}::thing", type_, "thing", props, protect)


def messages(rule: str, s: Subject, settings: Settings = Settings()) -> list[str]:
    return [v.message for v in rules.check(s, settings) if v.rule == rule]


def hcloud_fw(*rules_: tuple[str, str, list[str]]) -> Subject:
    return subject("hcloud:index/firewall:Firewall", {"rules": [
        {"direction": "in", "protocol": proto, "port": port, "sourceIps": sources}
        for proto, port, sources in rules_]})


# --- network exposure -----------------------------------------------------------------------------

@pytest.mark.parametrize("fw, expected", [
    (hcloud_fw(("tcp", "443", ["0.0.0.0/0", "::/0"]), ("tcp", "80", ["0.0.0.0/0"])), []),
    (hcloud_fw(("icmp", None, ["0.0.0.0/0"])), []),
    (hcloud_fw(("tcp", "22", ["0.0.0.0/0"])), ["22 (SSH)"]),
    (hcloud_fw(("tcp", "9042", ["::/0"])), ["9042 (ScyllaDB CQL)"]),
    (hcloud_fw(("tcp", "any", ["0.0.0.0/0"])), ["22 (SSH)", "5432 (PostgreSQL)"]),
    (hcloud_fw(("tcp", "80-443", ["0.0.0.0/0"])), ["80-443"]),
    (hcloud_fw(("tcp", "22", ["203.0.113.0/24"])), []),
    (subject("aws:ec2/securityGroup:SecurityGroup", {"ingress": [
        {"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]}]}), ["6443 (Kubernetes API)"]),
    (subject("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
             {"ipProtocol": "tcp", "fromPort": 6379, "toPort": 6379, "cidrIpv6": "::/0"}), ["6379"]),
    (subject("gcp:compute/firewall:Firewall", {"sourceRanges": ["0.0.0.0/0"],
                                               "allows": [{"protocol": "tcp", "ports": ["443", "22"]}]}), ["22 (SSH)"]),
    (subject("azure-native:network:NetworkSecurityGroup", {"securityRules": [
        {"direction": "Inbound", "access": "Allow", "protocol": "Tcp", "sourceAddressPrefix": "Internet",
         "destinationPortRange": "5432"}]}), ["5432 (PostgreSQL)"]),
    (subject("azure-native:network:NetworkSecurityGroup", {"securityRules": [
        {"direction": "Inbound", "access": "Deny", "protocol": "*", "sourceAddressPrefix": "*",
         "destinationPortRange": "*"}]}), []),
])
def test_no_world_open_ports(fw, expected):
    found = messages("no-world-open-ports", fw)
    assert len(found) == (1 if expected else 0), found
    for fragment in expected:
        assert fragment in found[0]


def test_admin_ports_only_from_admin_cidrs():
    settings = Settings(admin_cidrs=("203.0.113.0/24",))
    ok = hcloud_fw(("tcp", "22", ["203.0.113.0/25"]), ("tcp", "6443", ["10.0.0.0/8"]))
    assert messages("admin-ports-from-admin-cidrs", ok, settings) == []
    bad = hcloud_fw(("tcp", "6443", ["198.51.100.7/32"]))
    [message] = messages("admin-ports-from-admin-cidrs", bad, settings)
    assert "198.51.100.7/32" in message and "6443 (Kubernetes API)" in message and "203.0.113.0/24" in message
    assert messages("admin-ports-from-admin-cidrs", bad, Settings()) == [], "not configured: not applicable"


PEER = "cluster peers: kubelet"


@pytest.mark.parametrize("fw", [
    subject("hcloud:index/firewall:Firewall", {"rules": [
        {"direction": "in", "protocol": "tcp", "port": "10250", "sourceIps": ["198.51.100.7/32", "2001:db8::7/128"],
         "description": PEER}]}),
    subject("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", {
        "ipProtocol": "tcp", "fromPort": 6443, "toPort": 6443, "cidrIpv4": "198.51.100.7/32", "description": PEER}),
    subject("gcp:compute/firewall:Firewall", {"sourceRanges": ["198.51.100.7/32"], "description": PEER,
                                              "allows": [{"protocol": "tcp", "ports": ["2379-2380"]}]}),
    subject("azure-native:network:SecurityRule", {
        "direction": "Inbound", "access": "Allow", "protocol": "Tcp", "sourceAddressPrefixes": ["198.51.100.7/32"],
        "destinationPortRange": "10250", "description": PEER}),
])
def test_a_hybrid_clusters_peer_rules_admit_single_nodes_on_cluster_ports(fw):
    """Over the internet every node's public address reaches the API, etcd and the kubelet of the others: in rules
    marked as the cluster peers' (every provider's firewall kind), one host per source."""
    assert messages("admin-ports-from-admin-cidrs", fw, Settings(admin_cidrs=("203.0.113.0/24",))) == []


@pytest.mark.parametrize("rules, flagged", [
    ([("tcp", "10250", ["198.51.100.0/24"], PEER)], "198.51.100.0/24"),  # a range is no node
    ([("tcp", "22", ["198.51.100.7/32"], PEER)], "22 (SSH)"),  # nodes never log in to each other
    ([("tcp", "10250", ["198.51.100.7/32"], "kubelet")], "198.51.100.7/32"),  # not marked
    ([("tcp", "10250", ["198.51.100.7/32"], "kubelet, cluster peers: x")], "198.51.100.7/32"),  # mark not leading
])
def test_peer_rules_vouch_for_nothing_else(rules, flagged):
    fw = subject("hcloud:index/firewall:Firewall", {"rules": [
        {"direction": "in", "protocol": proto, "port": port, "sourceIps": sources, "description": description}
        for proto, port, sources, description in rules]})
    [message] = messages("admin-ports-from-admin-cidrs", fw, Settings(admin_cidrs=("203.0.113.0/24",)))
    assert flagged in message and "cluster peers: " in message


# --- charts and images ----------------------------------------------------------------------------

@pytest.mark.parametrize("version, ok", [("1.20.0", True), ("v0.20.1", True), ("1.2.3-rc.1", True),
                                         ("", False), ("^1.2.0", False), ("1.x", False), ("~1.2", False)])
def test_helm_charts_pinned(version, ok):
    release = subject("kubernetes:helm.sh/v3:Release", {"chart": "cilium", "version": version})
    assert (messages("helm-charts-pinned", release) == []) is ok


@pytest.mark.parametrize("image, ok", [
    ("quay.io/cilium/cilium:v1.20.0", True), ("registry:5000/team/app@sha256:" + "a" * 64, True),
    ("nginx", False), ("nginx:latest", False), ("registry:5000/team/app", False),
])
def test_images_pinned_in_objects(image, ok):
    pod = subject("kubernetes:core/v1:Pod", {"spec": {"containers": [{"name": "c", "image": image}]}})
    assert (messages("images-pinned", pod) == []) is ok


def test_images_pinned_in_helm_values():
    release = subject("kubernetes:helm.sh/v3:Release", {"chart": "x", "version": "1.0.0", "values": {
        "image": {"repository": "ghcr.io/x/y", "tag": "latest"},
        "sidecar": {"image": {"repository": "ghcr.io/x/z"}},  # no tag: the chart's pinned appVersion
    }})
    [message] = messages("images-pinned", release)
    assert "values.image" in message and "latest" in message


def test_retired_components_are_refused():
    nginx = subject("kubernetes:helm.sh/v3:Release", {"chart": "ingress-nginx", "version": "4.15.1",
                                                      "repositoryOpts": {"repo": "https://kubernetes.github.io/ingress-nginx"}})
    bitnami = subject("kubernetes:helm.sh/v3:Release", {"chart": "oci://registry-1.docker.io/bitnamicharts/redis",
                                                        "version": "20.0.0"})
    minio = subject("kubernetes:apps/v1:Deployment", {"spec": {"template": {"spec": {"containers": [
        {"name": "m", "image": "quay.io/minio/minio:RELEASE.2025-01-01T00-00-00Z"}]}}}})
    assert "Gateway API" in messages("no-retired-components", nginx)[0]
    assert "Bitnami" in messages("no-retired-components", bitnami)[0]
    assert "MinIO" in messages("no-retired-components", minio)[0]
    cilium = subject("kubernetes:helm.sh/v3:Release", {"chart": "cilium", "version": "1.20.0",
                                                       "repositoryOpts": {"repo": "https://helm.cilium.io"}})
    assert messages("no-retired-components", cilium) == []


# --- workloads ------------------------------------------------------------------------------------

def test_workloads_need_requests_and_memory_limits():
    def deployment(resources):
        return subject("kubernetes:apps/v1:Deployment", {"spec": {"template": {"spec": {
            "initContainers": [{"name": "init", "image": "a:1", "resources": resources}],
            "containers": [{"name": "app", "image": "a:1", "resources": resources}]}}}})

    full = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "128Mi"}}
    assert messages("workloads-have-resources", deployment(full)) == []
    found = messages("workloads-have-resources", deployment({"requests": {"cpu": "1"}}))
    assert found == ["container 'init' has no requests.memory, limits.memory",
                     "container 'app' has no requests.memory, limits.memory"]
    cron = subject("kubernetes:batch/v1:CronJob", {"spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "job", "image": "a:1"}]}}}}}})
    assert messages("workloads-have-resources", cron) == ["container 'job' has no requests.cpu, requests.memory, "
                                                          "limits.memory"]


def test_production_stateful_resources_are_protected():
    server = "hcloud:index/server:Server"
    assert messages("production-stateful-protected", subject(server, {}, protect=False))
    assert messages("production-stateful-protected", subject(server, {}, protect=True)) == []
    assert messages("production-stateful-protected", subject(server, {}, urn=STAGING)) == []
    assert messages("production-stateful-protected", subject(server, {}, urn=STAGING), Settings(production=True))
    cluster = subject("kubernetes:postgresql.cnpg.io/v1:Cluster", {})
    assert messages("production-stateful-protected", cluster)
    assert messages("production-stateful-protected", subject("hcloud:index/firewall:Firewall", {})) == []


# --- secrets --------------------------------------------------------------------------------------

@pytest.mark.parametrize("props, expected", [
    ({"password": "hunter2hunter2"}, "looks like a credential"),
    ({"env": [{"name": "X", "value": "AKIAABCDEFGHIJKLMNOP"}]}, "an AWS access key id"),
    ({"key": "-----BEGIN OPENSSH PRIVATE KEY-----\nabc"}, "a private key"),
    ({"runnerToken": "glrt-abcdefghijklmnopqrstuvwxyz"}, "a GitLab token"),
    ({"password": Secret("hunter2hunter2")}, None),
    ({"existingSecret": "gitlab-root-password"}, None),
    ({"passwordSecretName": "db-app"}, None),
    ({"tokenSecretRef": {"name": "x", "key": "token"}}, None),
    ({"password": ""}, None),
])
def test_no_plaintext_secrets(props, expected):
    found = messages("no-plaintext-secrets", subject("kubernetes:core/v1:ConfigMap", props))
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and expected in found[0]


def test_kubernetes_secret_data_must_be_secret():
    plain = subject("kubernetes:core/v1:Secret", {"stringData": {"network": "12345"}})
    assert "not marked secret" in messages("no-plaintext-secrets", plain)[0]
    marked = subject("kubernetes:core/v1:Secret", {"stringData": Secret({"network": "12345"})})
    assert messages("no-plaintext-secrets", marked) == []


# --- CrossGuard wiring ----------------------------------------------------------------------------

def test_pack_exposes_every_rule_as_a_mandatory_resource_policy():
    from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy

    *policies, fit = rules.policies()
    assert [p.name for p in policies] == [r.name for r in rules.RULES]
    assert len({p.name for p in policies}) == len(policies)
    assert all(isinstance(p, ResourceValidationPolicy) and p.enforcement_level == EnforcementLevel.MANDATORY
               for p in policies)
    # The capacity rule sees the whole stack and warns: its figures are estimates (tools/plan/capacity.py).
    assert isinstance(fit, StackValidationPolicy) and fit.name == rules.CAPACITY_RULE
    assert fit.enforcement_level == EnforcementLevel.ADVISORY


def test_pack_adapter_reports_through_crossguard_arguments():
    from pulumi_policy import PolicyResourceOptions

    [policy] = [p for p in rules.policies() if p.name == "admin-ports-from-admin-cidrs"]

    class Args:  # the attributes ResourceValidationArgs gives a validate callback
        urn, resource_type, name = PROD + "fw", "hcloud:index/firewall:Firewall", "fw"
        props = {"rules": [{"direction": "in", "protocol": "tcp", "port": "22", "sourceIps": ["198.51.100.1/32"]}]}
        opts = PolicyResourceOptions(protect=False, ignore_changes=[], delete_before_replace=None, aliases=[],
                                     additional_secret_outputs=[], custom_timeouts=None, parent=None)

        def get_config(self):
            return {"adminCidrs": ["203.0.113.0/24"]}

    reported: list[str] = []
    policy.validate(Args(), reported.append)
    assert len(reported) == 1 and "198.51.100.1/32" in reported[0]


def test_engine_secrets_stay_marked_for_the_rules():
    from pulumi_policy.deserialize import SPECIAL_SECRET_SIG, SPECIAL_SIG_KEY, deserialize_properties

    wire = {"stringData": {SPECIAL_SIG_KEY: SPECIAL_SECRET_SIG, "value": {"token": "abc"}}, "type": "Opaque"}
    props = deserialize_properties(rules.mark_secrets(wire))
    assert rules.is_secret(props["stringData"]) and props["type"] == "Opaque"
    s = Subject(PROD + "s", "kubernetes:core/v1:Secret", "s", props)
    assert messages("no-plaintext-secrets", s) == []


def test_pack_files_are_runnable_by_the_cli():
    manifest = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    assert manifest["runtime"]["name"] == "python"
    assert (ROOT / "policy" / manifest["runtime"]["options"]["virtualenv"]).resolve() == (ROOT / ".venv").resolve()
    main = (ROOT / "policy" / "__main__.py").read_text()
    assert "from rules import" in main and "PolicyPack(" in main
    compile(main, "policy/__main__.py", "exec")


# --- every stack ----------------------------------------------------------------------------------

@pytest.mark.parametrize("stack", mockrun.stacks())
def test_every_stack_passes_the_policy_pack(stack):
    plan = stack_plan(stack)
    assert plan["policy"]["violations"] == []
    assert plan["policy"]["settings"]["adminCidrs"], "the admin CIDR rule ran with the stack's CIDRs"


def test_the_policy_catches_a_regression_in_a_real_plan(production):
    """Guards the guard: an unprotected production server in a real run is reported."""
    server = production.of_type("hcloud:index/server:Server")[0]
    s = Subject(server.urn, server.type, server.name, server.inputs, protect=False)
    assert rules.check(s, model.policy_settings(production))


# --- engine-shaped input (review findings) --------------------------------------------------------

def test_aws_ports_arrive_as_floats_and_minus_one_means_all():
    group = subject("aws:ec2/securityGroup:SecurityGroup", {"ingress": [
        {"protocol": "tcp", "fromPort": 22.0, "toPort": 22.0, "cidrBlocks": ["0.0.0.0/0"]},
        {"protocol": "tcp", "fromPort": 443.0, "toPort": 443.0, "cidrBlocks": ["0.0.0.0/0"]},
        {"protocol": "udp", "fromPort": -1.0, "toPort": -1.0, "cidrBlocks": ["10.0.0.0/8"]},
        {"protocol": "icmp", "fromPort": -1.0, "toPort": -1.0, "cidrBlocks": ["0.0.0.0/0"]}]})
    [message] = messages("no-world-open-ports", group)
    assert "ingress[0] opens tcp/22" in message
    assert rules.ingress_rules(group)[2].ports == (0, 65535)


def test_values_unknown_during_preview_do_not_stop_a_rule():
    from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

    props = unknown_checking_proxy({"name": UNKNOWN_STRING_VALUE, "rules": [
        {"direction": "in", "protocol": "tcp", "port": "5432", "sourceIps": ["0.0.0.0/0", UNKNOWN_STRING_VALUE]}],
        "labels": {"password": "hunter2hunter2", "id": UNKNOWN_STRING_VALUE}})
    s = Subject(PROD + "fw", "hcloud:index/firewall:Firewall", "fw", props)
    assert "5432 (PostgreSQL)" in messages("no-world-open-ports", s)[0]
    assert messages("no-plaintext-secrets", s) == ["labels.password looks like a credential and is not marked secret"]


def test_azure_any_protocol_keeps_its_port_and_service_tags_are_internal():
    nsg = subject("azure-native:network:NetworkSecurityGroup", {"securityRules": [
        {"direction": "Inbound", "access": "Allow", "protocol": "*", "sourceAddressPrefix": "Internet",
         "destinationPortRange": "443"},
        {"direction": "Inbound", "access": "Allow", "protocol": "Tcp", "sourceAddressPrefix": "VirtualNetwork",
         "destinationPortRange": "6443"}]})
    assert messages("no-world-open-ports", nsg) == []
    assert messages("admin-ports-from-admin-cidrs", nsg, Settings(admin_cidrs=("203.0.113.0/24",))) == []


def test_disabled_gcp_firewall_and_local_chart_are_not_reported():
    fw = subject("gcp:compute/firewall:Firewall", {"disabled": True, "sourceRanges": ["0.0.0.0/0"],
                                                   "allows": [{"protocol": "tcp", "ports": ["22"]}]})
    assert messages("no-world-open-ports", fw) == []
    local = subject("kubernetes:helm.sh/v3:Release", {"chart": "./charts/adserver"})
    assert messages("helm-charts-pinned", local) == []


@pytest.mark.parametrize("props, flagged", [
    ({"tls": {"caSecret": "platform-ca"}}, False),
    ({"imagePullSecret": "registry-credentials"}, False),
    ({"auth": {"passwordSecretKey": "postgres-password"}}, False),
    ({"clientSecret": "Zx8_kq2LmN0pQrStUv"}, True),
    ({"env": [{"name": "DB_PASSWORD", "value": "hunter2hunter2"}]}, True),
    ({"env": [{"name": "DB_PASSWORD", "value": Secret("hunter2hunter2")}]}, False),
    ({"env": [{"name": "DB_HOST", "value": "postgres-rw.data.svc"}]}, False),
])
def test_secret_heuristics_tell_names_from_values(props, flagged):
    found = messages("no-plaintext-secrets", subject("kubernetes:apps/v1:Deployment", props))
    assert bool(found) is flagged, found


def test_limits_alone_imply_requests():
    pod = subject("kubernetes:core/v1:Pod", {"spec": {"containers": [
        {"name": "db", "image": "a:1", "resources": {"limits": {"cpu": "2", "memory": "4Gi"}}}]}})
    assert messages("workloads-have-resources", pod) == []


@pytest.mark.parametrize("image", ["quay.io/minio/operator:v7.1.1", "minio/mc:RELEASE.2025-08-13T08-35-41Z",
                                   "docker.io/bitnamilegacy/redis:7.4.2"])
def test_every_minio_and_bitnami_image_is_retired(image):
    pod = subject("kubernetes:core/v1:Pod", {"spec": {"containers": [{"name": "c", "image": image}]}})
    assert messages("no-retired-components", pod)


# --- whole-internet coverage (policy/rules.py world_covered, shared with config/rules.py) ------------------

@pytest.mark.parametrize("fw, expected", [
    (hcloud_fw(("tcp", "22", ["0.0.0.0/1", "128.0.0.0/1"])), "22 (SSH)"),
    (hcloud_fw(("tcp", "22", ["0.0.0.0/1"]), ("tcp", "22", ["128.0.0.0/1"])), "22 (SSH)"),  # split over two rules
    (hcloud_fw(("tcp", "6443", ["::/1", "8000::/1"])), "6443 (Kubernetes API)"),
    (hcloud_fw(("tcp", "5432", [*(f"{a}.0.0.0/8" for a in range(256) if a != 10)])), "5432 (PostgreSQL)"),
])
def test_the_world_check_sees_address_space_coverage_not_only_a_slash_zero(fw, expected):
    """Two /1 halves (or every public /8 bar the private one) open a port to the whole internet."""
    found = messages("no-world-open-ports", fw)
    assert found and all(expected in m and "to the world" in m for m in found), found


def test_partial_coverage_is_not_the_world():
    assert rules.world_covered(["0.0.0.0/1", "128.0.0.0/2"]) == []
    assert rules.world_covered(["0.0.0.0/1", "128.0.0.0/1", "::/1"]) == ["IPv4"]
    split_ports = hcloud_fw(("tcp", "22", ["0.0.0.0/1"]), ("tcp", "80", ["128.0.0.0/1"]))
    assert messages("no-world-open-ports", split_ports) == [], "each port admits only half the internet"


def test_admin_cidrs_that_span_the_internet_vouch_for_no_one():
    settings = Settings(admin_cidrs=("0.0.0.0/1", "128.0.0.0/1"))
    [message] = messages("admin-ports-from-admin-cidrs", hcloud_fw(("tcp", "22", ["0.0.0.0/1"])), settings)
    assert "together cover the whole IPv4 internet" in message


def test_each_secret_pattern_s_needles_are_its_literal_start():
    """The substring prefilter passes over a string only when no pattern can match it: every needle is text its
    pattern's matches begin with (after a word boundary), so each pattern has needles, in its own text."""
    from policy.rules import SECRET_VALUE_NEEDLES, SECRET_VALUE_PATTERNS
    assert SECRET_VALUE_NEEDLES.keys() == SECRET_VALUE_PATTERNS.keys()
    for what, pattern in SECRET_VALUE_PATTERNS.items():
        start = pattern.pattern.removeprefix(r"\b").removeprefix("-----BEGIN [A-Z ]*")
        # each alternative of a leading group (?:a|b), or the one literal start
        alternatives = start[3:].split(")")[0].split("|") if start.startswith("(?:") else [start]
        assert all(any(a.startswith(n) for n in SECRET_VALUE_NEEDLES[what]) for a in alternatives), what


def test_secret_value_prefilter_answers_like_each_pattern_in_turn():
    """The one-pass check names the same finding as trying SECRET_VALUE_PATTERNS in order (the first that
    matches), and none where none does."""
    from policy.rules import SECRET_VALUE_PATTERNS, _secret_value
    samples = ["", "plain text", "AKIA" + "A" * 16, "github_pat_" + "a" * 22, "x glpat-" + "a" * 20, "ghp_" + "a" * 20 + " AKIA" + "B" * 16,
               "-----BEGIN OPENSSH PRIVATE KEY-----\nglrt-" + "b" * 24, "xoxb-0123456789", "AKIA" + "a" * 16]
    for value in samples:
        first = next((what for what, pattern in SECRET_VALUE_PATTERNS.items() if pattern.search(value)), None)
        assert _secret_value(value) == first, value
