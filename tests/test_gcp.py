"""The GCP provider: network, firewall from PORTS, instances, disks, image, API load balancers, PD CSI, ServiceLB."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pulumi
import pytest
import yaml

from components.charts import GCP_PD_CSI, GCP_PD_CSI_IMAGE, GCP_PD_CSI_VERSION
from config.catalog import SIZES
from policy import rules as policy
from providers import gcp, get, previous_run
from providers.base import PORTS
from config import ConfigError, load
from tests.runs import SECRET_KEYS, UP_TO_K3S, raw_config
from tests.cloud_stacks import (run_cloud, autoscaled_general, FAKE_USER_DATA, NodeGroupRun, assert_block_storage,
                                assert_local_traffic_policy, config_problems, run_node_groups, stack_fixtures)
from tests import validators
from tests.conftest import ROOT, base_raw, k3s_config
from tools import mockrun
from tools.mockrun import FAKE_UBUNTU_GCE_IMAGE

INSTANCE = "gcp:compute/instance:Instance"
FIREWALL = "gcp:compute/firewall:Firewall"
PROVIDER = {"gcp:project": "adp-test", "gcp:region": "europe-west3"}
PINNED_IMAGE = "projects/ubuntu-os-cloud/global/images/ubuntu-2404-noble-amd64-v20260901"


# The staging stack file, and the production profile with a pinned image, a public API load balancer
# and a pool pinned to a zone.
staging, production = stack_fixtures("staging-gcp", "gcp", PROVIDER, {
    "image": PINNED_IMAGE, "apiLoadBalancer": {"public": True},
    "pools": [{"name": "stateful", "location": "europe-west3-b"}]})


def by_pool(run: mockrun.Run) -> Counter:
    return Counter(r.inputs["labels"]["adplatform-pool"] for r in run.of_type(INSTANCE))


def firewalls(run: mockrun.Run) -> dict[str, mockrun.Resource]:
    return {r.name: r for r in run.of_type(FIREWALL)}


# --- network and firewall ------------------------------------------------------------------------------

def test_dedicated_network_with_a_regional_subnetwork(staging):
    network = staging.named("network", "gcp:compute/network:Network").inputs
    assert network["autoCreateSubnetworks"] is False
    subnet = staging.named("subnet", "gcp:compute/subnetwork:Subnetwork").inputs
    assert (subnet["ipCidrRange"], subnet["region"], subnet["project"]) == ("10.0.1.0/24", "europe-west3",
                                                                             "adplatform-staging")
    proxies = staging.named("api-proxy-subnet", "gcp:compute/subnetwork:Subnetwork").inputs
    assert (proxies["ipCidrRange"], proxies["purpose"]) == ("10.0.2.0/24", "REGIONAL_MANAGED_PROXY")


def test_only_80_and_443_are_open_to_the_world(staging):
    world = set()
    for rule in staging.of_type(FIREWALL):
        if {"0.0.0.0/0", "::/0"} & set(rule.inputs.get("sourceRanges", [])):
            world |= {(a["protocol"], port) for a in rule.inputs["allows"] for port in a.get("ports", ["all"])}
    assert world == {("tcp", "80"), ("tcp", "443")}


def test_admin_ports_only_from_admin_cidrs(staging):
    rules = firewalls(staging)
    expected = {(p.protocol, p.port) for p in PORTS if p.source == "admin"}
    admin = {(a["protocol"], (a.get("ports") or [None])[0]): r.inputs["sourceRanges"] for r in rules.values()
             if r.name.endswith("-v4") for a in r.inputs["allows"] if a["protocol"] != "tcp" or a["ports"][0] not in ("80", "443")}
    assert set(admin) == expected
    assert all(sources == ["203.0.113.0/24"] for sources in admin.values())
    for rule in rules.values():
        assert rule.inputs["direction"] == "INGRESS" and rule.inputs["targetTags"], "rules apply to tagged nodes"
    # 6443 from elsewhere: only Google's health checkers and the internal load balancer's proxies.
    assert rules["adp-staging-gcp-in-api-health-checks"].inputs["sourceRanges"] == ["130.211.0.0/22", "35.191.0.0/16"]
    assert rules["adp-staging-gcp-in-api-health-checks"].inputs["targetTags"] == ["adp-staging-gcp-server"]
    assert rules["adp-staging-gcp-in-api-proxies"].inputs["sourceRanges"] == ["10.0.2.0/24"]


def test_members_reach_each_other_on_every_port(staging):
    members = firewalls(staging)["adp-staging-gcp-in-members"].inputs
    assert members["allows"] == [{"protocol": "all"}]
    assert members["sourceTags"] == members["targetTags"] == ["adp-staging-gcp-node"]
    assert "sourceRanges" not in members


def test_policy_accepts_health_checkers_only_on_gcp_firewalls(staging):
    rule = firewalls(staging)["adp-staging-gcp-in-api-health-checks"]
    settings = policy.Settings(admin_cidrs=("203.0.113.0/24",))
    assert policy.check(policy.Subject(rule.urn, FIREWALL, rule.name, rule.inputs), settings) == []
    aws_rule = {"ipProtocol": "tcp", "fromPort": 6443, "toPort": 6443, "cidrIpv4": "35.191.0.0/16"}
    assert policy.check(policy.Subject("urn:x", "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "x",
                                       aws_rule), settings), "the probers are trusted on GCP only"


# --- instances ------------------------------------------------------------------------------------------

def test_instance_count_per_pool_and_zone_spread(staging):
    assert by_pool(staging) == {"control-plane": 3, "general": 2, "scylladb": 1, "redpanda": 1, "clickhouse": 1,
                                "stateful": 1}
    zones = {r.name: r.inputs["zone"] for r in staging.of_type(INSTANCE)}
    assert {zones[f"control-plane-{i}"] for i in (1, 2, 3)} == {"europe-west3-a", "europe-west3-b", "europe-west3-c"}
    assert (zones["general-1"], zones["general-2"]) == ("europe-west3-a", "europe-west3-b"), "zones sorted by name"


def test_pinned_pool_stays_in_its_zone(production):
    assert {r.inputs["zone"] for r in production.of_type(INSTANCE)
            if r.inputs["labels"]["adplatform-pool"] == "stateful"} == {"europe-west3-b"}


def test_boot_disks_sized_per_class_with_shielded_vm(staging, production):
    sizes = {r.name: r.inputs["bootDisk"]["initializeParams"]["size"] for r in staging.of_type(INSTANCE)}
    assert sizes["control-plane-1"] == 40 and sizes["general-1"] == 60
    for run in (staging, production):
        for r in run.of_type(INSTANCE):
            assert r.inputs["bootDisk"]["initializeParams"]["type"] == "pd-balanced"  # encrypted at rest by Google
            assert r.inputs["shieldedInstanceConfig"] == {"enableSecureBoot": True, "enableVtpm": True,
                                                          "enableIntegrityMonitoring": True}


def test_machine_types_per_size_class(staging, production):
    assert set(get("gcp").server_types) == set(SIZES)
    assert {r.inputs["machineType"] for r in staging.of_type(INSTANCE)} <= {"e2-medium", "e2-standard-4"}
    assert all(r.inputs["machineType"].startswith("n2-standard-") for r in production.of_type(INSTANCE))


def test_ubuntu_image_family_and_override(staging, production):
    images = {r.inputs["bootDisk"]["initializeParams"]["image"] for r in staging.of_type(INSTANCE)}
    assert images == {FAKE_UBUNTU_GCE_IMAGE}, "resolved from ubuntu-os-cloud's ubuntu-2404-lts-amd64 family"
    assert {r.inputs["bootDisk"]["initializeParams"]["image"] for r in production.of_type(INSTANCE)} == {PINNED_IMAGE}
    for r in staging.of_type(INSTANCE):
        assert r.options["ignoreChanges"] == ["bootDisk.initializeParams.image"]


def test_ssh_keys_for_the_default_user_only(staging):
    for r in staging.of_type(INSTANCE):
        metadata = r.inputs["metadata"]
        assert metadata["ssh-keys"].startswith("ubuntu:ssh-ed25519 ")
        assert metadata["block-project-ssh-keys"] == "TRUE" and metadata["enable-oslogin"] == "FALSE"


def test_nodes_service_account_has_only_the_disk_permissions(staging):
    account = staging.named("nodes", "gcp:serviceaccount/account:Account")  # OpenBao's seal has its own (seal tests)
    for r in staging.of_type(INSTANCE):
        assert r.inputs["serviceAccount"]["email"].startswith(account.inputs["accountId"] + "@")
    role = staging.named("pd-csi-attach", "gcp:projects/iAMCustomRole:IAMCustomRole").inputs
    assert role["permissions"] == list(gcp.PD_CSI_PERMISSIONS)
    members = staging.of_type("gcp:projects/iAMMember:IAMMember")
    project_roles = {r.inputs["role"] for r in members}
    # The autoscaler's role too (staging autoscales its general pool): every grant holds under a condition.
    assert project_roles == {"projects/adplatform-staging/roles/adp_staging_gcp_pd_csi_volumes",
                             "projects/adplatform-staging/roles/adp_staging_gcp_pd_csi",
                             "projects/adplatform-staging/roles/adp_staging_gcp_autoscaler"}
    assert all(r.inputs.get("condition") for r in members)
    assert "roles/editor" not in project_roles
    (act_as,) = staging.of_type("gcp:serviceaccount/iAMMember:IAMMember")
    assert act_as.inputs["role"] == "roles/iam.serviceAccountUser"


def test_nodes_volume_rights_are_the_drivers_calls_and_no_image_or_storage_pool_right(staging):
    """No predefined role (compute.storageAdmin also creates, deletes and shares every image of the project): a custom
    role with what the PD CSI driver calls for volumes, expansion, attach and snapshots, and nothing on images,
    storage pools, resource policies or IAM policies."""
    members = staging.of_type("gcp:projects/iAMMember:IAMMember")
    assert not [r.inputs["role"] for r in members if r.inputs["role"].startswith("roles/")]
    role = staging.named("pd-csi-volumes", "gcp:projects/iAMCustomRole:IAMCustomRole").inputs
    granted = {p for r in staging.of_type("gcp:projects/iAMCustomRole:IAMCustomRole") for p in r.inputs["permissions"]}
    assert not {p for p in granted if p.split(".")[1] in ("images", "storagePools", "resourcePolicies")}
    assert not {p for p in granted if p.endswith(".setIamPolicy")}
    assert {"compute.disks.create", "compute.disks.delete", "compute.disks.resize", "compute.disks.use",
            "compute.disks.createSnapshot", "compute.snapshots.create", "compute.snapshots.useReadOnly",
            "compute.zoneOperations.get", "compute.globalOperations.get"} <= set(role["permissions"])
    binding = {r.name: r.inputs for r in members}["nodes-pd-csi-volumes"]
    assert binding["role"] == "projects/adplatform-staging/roles/adp_staging_gcp_pd_csi_volumes"
    assert binding["condition"]["expression"] == gcp.csi_disks_condition(gcp.volume_name_prefix("staging-gcp"))


def test_k3s_keeps_its_cloud_controller_and_servicelb(staging):
    cfg = k3s_config(staging, "control-plane-1")
    assert "disable-cloud-controller" not in cfg
    assert "servicelb" not in cfg["disable"] and "local-storage" in cfg["disable"]
    assert not any(a.startswith("cloud-provider=") for a in cfg["kubelet-arg"])
    assert "svccontroller.k3s.cattle.io/enablelb=true" in k3s_config(staging, "general-1")["node-label"], \
        "ServiceLB serves the gateway from the general pool only"
    assert "svccontroller.k3s.cattle.io/enablelb=true" not in k3s_config(staging, "scylladb-1")["node-label"]


# --- API load balancers ---------------------------------------------------------------------------------

def test_internal_proxy_load_balancer_for_the_api(staging):
    (rule,) = staging.of_type("gcp:compute/forwardingRule:ForwardingRule")
    assert rule.inputs["loadBalancingScheme"] == "INTERNAL_MANAGED" and rule.inputs["portRange"] == "6443"
    (backend,) = staging.of_type("gcp:compute/regionBackendService:RegionBackendService")
    assert backend.inputs["loadBalancingScheme"] == "INTERNAL_MANAGED" and backend.inputs["portName"] == "kube-apiserver"
    groups = staging.of_type("gcp:compute/instanceGroup:InstanceGroup")
    assert sorted(g.inputs["zone"] for g in groups) == ["europe-west3-a", "europe-west3-b", "europe-west3-c"]
    assert sum(len(g.inputs["instances"]) for g in groups) == 3
    assert len(backend.inputs["backends"]) == 3
    (health,) = staging.of_type("gcp:compute/regionHealthCheck:RegionHealthCheck")
    assert health.inputs["tcpHealthCheck"]["port"] == 6443
    assert k3s_config(staging, "general-1")["server"] == "https://10.0.1.250:6443"


def test_public_api_load_balancer_is_a_passthrough_behind_the_admin_rule(production):
    rules = {r.name: r.inputs for r in production.of_type("gcp:compute/forwardingRule:ForwardingRule")}
    assert rules["api-public"]["loadBalancingScheme"] == "EXTERNAL" and rules["api-public"]["ports"] == ["6443"]
    assert production.outputs["apiEndpoint"].startswith("https://203.0.113.")
    # External passthrough load balancers probe from their own ranges, not only the proxies' (GCP
    # "Firewall rules"): without them every backend of the public one is unhealthy.
    probes = firewalls(production)["adp-production-gcp-in-api-health-checks"].inputs
    assert set(probes["sourceRanges"]) == {"35.191.0.0/16", "130.211.0.0/22", "209.85.152.0/22", "209.85.204.0/22"}
    assert probes["allows"] == [{"protocol": "tcp", "ports": ["6443"]}] and probes["targetTags"] == [
        "adp-production-gcp-server"]


# --- storage --------------------------------------------------------------------------------------------

def test_pd_csi_driver_default_storage_class_and_its_xfs_twin(staging, production):
    driver = staging.named("gcp-pd-csi", "kubernetes:kustomize/v2:Directory")
    # Our kustomization, named relative to the project root (where `pulumi up` runs).
    assert driver.inputs["directory"] == gcp.PD_CSI_KUSTOMIZATION
    assert (ROOT / "Pulumi.yaml").is_file() and (ROOT / gcp.PD_CSI_KUSTOMIZATION / "kustomization.yaml").is_file()
    namespace = staging.named("gce-pd-csi-driver", "kubernetes:core/v1:Namespace")
    assert namespace.urn in driver.dependencies
    for run, reclaim in ((staging, "Delete"), (production, "Retain")):
        params = assert_block_storage(run, "pd-balanced", "pd.csi.storage.gke.io", reclaim=reclaim,
                                      driver="gcp-pd-csi")
        assert params["type"] == "pd-balanced"


def test_pd_csi_kustomization_runs_the_pinned_release_driver():
    """The upstream overlay alone would run driver v1.17.4 (its images/stable-master at the tag); ours takes
    that overlay at the catalog's tag as its only base and sets the driver image's tag to the same version.
    Kustomize files take no variables, so this keeps them equal to components/charts.py."""
    kustomization = yaml.safe_load((ROOT / gcp.PD_CSI_KUSTOMIZATION / "kustomization.yaml").read_text())
    assert GCP_PD_CSI.directory == ("https://github.com/kubernetes-sigs/gcp-compute-persistent-disk-csi-driver"
                                    f"//deploy/kubernetes/overlays/noauth?ref={GCP_PD_CSI_VERSION}")
    assert kustomization["resources"] == [GCP_PD_CSI.directory]
    # Only the tag changes: the registry path is the one the overlay already names (no newName, no digest).
    assert kustomization["images"] == [{"name": GCP_PD_CSI_IMAGE, "newTag": GCP_PD_CSI_VERSION}]
    assert GCP_PD_CSI_IMAGE == "registry.k8s.io/cloud-provider-gcp/gcp-compute-persistent-disk-csi-driver"
    assert GCP_PD_CSI_VERSION == GCP_PD_CSI.version
    # Nothing else changed but the controller's credentials (below): the overlay's own namespace
    # (gce-pd-csi-driver) is the one we create.
    assert set(kustomization) == {"apiVersion", "kind", "resources", "images", "patches"}


def test_pd_csi_controller_has_no_key_file_left_in_any_container():
    """At v1.26.4 upstream's noauth overlay deletes the `cloud-sa-volume` volume but strips its mount and the
    GOOGLE_APPLICATION_CREDENTIALS variable from `gce-pd-driver` only; the base's `taint-controller` container
    keeps both (deploy/kubernetes/base/controller/controller.yaml at the tag). A mount of a missing volume makes
    the API server refuse the controller Deployment, so no volume would ever be provisioned: our patch strips the
    same from `taint-controller`, which then uses the node's service account like the driver."""
    kustomization = yaml.safe_load((ROOT / gcp.PD_CSI_KUSTOMIZATION / "kustomization.yaml").read_text())
    [patch] = kustomization["patches"]
    assert patch["target"] == {"kind": "Deployment", "name": "csi-gce-pd-controller"}
    [container] = yaml.safe_load(patch["patch"])["spec"]["template"]["spec"]["containers"]
    assert container == {
        "name": "taint-controller",
        "env": [{"name": "GOOGLE_APPLICATION_CREDENTIALS", "$patch": "delete"}],
        # `mountPath` is the merge key of volumeMounts: the mount of the deleted volume.
        "volumeMounts": [{"mountPath": "/etc/cloud-sa", "$patch": "delete"}]}


# --- protection -----------------------------------------------------------------------------------------

def test_production_protects_instances_and_network(production, staging):
    for r in production.of_type(INSTANCE):
        assert r.protect and r.inputs["deletionProtection"] is True
    assert production.named("network", "gcp:compute/network:Network").protect
    assert production.named("subnet", "gcp:compute/subnetwork:Subnetwork").protect
    assert not any(r.protect for r in staging.of_type(INSTANCE))
    # The API addresses: in every node's K3s config and Cilium (internal), in kubeconfigs (public).
    assert {r.name: r.protect for r in production.of_type("gcp:compute/address:Address")} == {
        "api-internal": True, "api-public": True}
    assert not staging.named("api-internal", "gcp:compute/address:Address").protect


# --- validation -----------------------------------------------------------------------------------------

def _problems(raw: dict[str, Any], settings: dict[str, str] = PROVIDER) -> list[str]:
    return config_problems(raw, settings)


def _problems_or_none(raw: dict[str, Any]) -> list[str]:
    """The config errors, or none when the config is valid (the run then completes)."""
    try:
        run_cloud(raw, PROVIDER)
    except ConfigError as err:
        return [str(p) for p in err.problems]
    return []


def test_project_and_region_must_be_set():
    msgs = _problems(base_raw(provider="gcp"), settings={})
    assert [m.split(" (")[0] for m in msgs] == ["gcp:project must be set to the stack's Google Cloud project id",
                                               "gcp:region must be set to the stack's Google Cloud region"]


def test_location_must_be_a_zone_of_the_region():
    (msg,) = _problems(base_raw(provider="gcp", cluster={"controlPlane": {"location": "us-central1-a"}}))
    assert msg == ("adplatform:cluster.controlPlane.location must be a zone of gcp:region europe-west3 "
                   "(europe-west3-a, europe-west3-b, ...), got 'us-central1-a'")


def test_subnet_must_leave_room_for_the_proxy_only_subnet():
    # staging: 12 nodes, which a /27 holds (config/rules.py _network_room); the proxy-only subnet does not fit
    (msg,) = _problems(base_raw(provider="gcp", profile="staging", cluster={"subnetCidr": "10.0.1.0/27"}))
    assert msg.startswith("adplatform:cluster.subnetCidr must be at most /26 on GCP with "
                          "cluster.apiLoadBalancer.enabled")


def test_more_pools_than_one_iam_condition_names_are_refused():
    """The nodes' attach right names each pool's machines in one condition (gcp.pool_prefixes), and IAM takes at most
    12 logical operators in one: a twelfth pool would fail when the binding is applied, after servers exist."""
    base = len(load("test", base_raw(provider="gcp"), SECRET_KEYS).config.cluster.pools)  # the profile's; ours add
    eleven = [{"name": f"pool{i}", "role": "general", "count": 2} for i in range(11 - base)]
    lower = UP_TO_K3S  # the provider's check alone matters here
    assert not [p for p in _problems_or_none(base_raw(provider="gcp", layers=lower, cluster={"pools": eleven}))
                if "pools must" in p]
    twelve = [*eleven, {"name": "pool-twelve", "role": "general", "count": 2}]
    problems = _problems(base_raw(provider="gcp", layers=lower, cluster={"pools": twelve}))
    assert any(p.startswith("adplatform:cluster.pools must be at most 11 pools on GCP") and p.endswith("got 12")
               for p in problems), problems


def test_gateway_keeps_client_addresses_with_local_traffic_policy(staging):
    # K3s' ServiceLB sends no PROXY header.
    assert_local_traffic_policy(staging)


def test_node_disk_rights_reach_only_the_drivers_volumes_and_this_stacks_instances(staging):
    members = {r.name: r.inputs for r in staging.of_type("gcp:projects/iAMMember:IAMMember")}
    storage = members["nodes-pd-csi-volumes"]["condition"]["expression"]
    prefix = gcp.volume_name_prefix("staging-gcp")
    assert storage == gcp.csi_disks_condition(prefix)
    assert f'resource.name.extract("/disks/{{name}}").startsWith("{prefix}-")' in storage
    assert f'resource.name.extract("/snapshots/{{name}}").startsWith("{prefix}-")' in storage
    assert '"pvc-"' not in storage and '"snapshot-"' not in storage, "another stack's default-named volumes are out"
    attach = members["nodes-pd-csi-attach"]["condition"]["expression"]
    assert all(admits(attach, "Instance", r.inputs["name"]) for r in staging.of_type(INSTANCE))
    for r in staging.of_type(INSTANCE):
        assert not r.inputs["name"].startswith(prefix), "boot disks (named after instances) are out"


# The CEL the conditions are written in (providers/gcp.py _named_condition): `||` of a resource type test and
# name prefixes.
_TERM = re.compile(r'resource\.type != "compute\.googleapis\.com/(?P<kind>\w+)"'
                   r'|resource\.name\.extract\("/(?P<collection>\w+)/\{name\}"\)\.startsWith\("(?P<prefix>[^"]+)"\)')
_COLLECTIONS = {"Instance": "instances", "InstanceGroupManager": "instanceGroupManagers"}


def admits(expression: str, kind: str, name: str) -> bool:
    """Whether an IAM condition of that grammar holds for the Compute resource `kind` named `name`."""
    held = []
    for term in expression.split(" || "):
        match = _TERM.fullmatch(term)
        assert match, f"not the conditions' grammar: {term}"
        held.append(match["kind"] != kind if match["kind"] else
                    match["collection"] == _COLLECTIONS[kind] and name.startswith(match["prefix"]))
    return any(held)


def machine_names(run: mockrun.Run) -> dict[str, list[str]]:
    """The Instance and InstanceGroupManager names of a run: its nodes, its groups and an instance each group
    creates (<group>-<4 characters>, GCE's managed instance names)."""
    migs = [r.inputs["name"] for r in run.of_type(MIG)]
    return {"Instance": [r.inputs["name"] for r in run.of_type(INSTANCE)] + [f"{mig}-x7k2" for mig in migs],
            "InstanceGroupManager": migs}


def conditions(run: mockrun.Run) -> dict[str, str]:
    members = {r.name: r.inputs for r in run.of_type("gcp:projects/iAMMember:IAMMember")}
    return {"Instance": members["nodes-pd-csi-attach"]["condition"]["expression"],
            "InstanceGroupManager": members["nodes-autoscaler"]["condition"]["expression"]}


def test_name_conditions_leave_out_a_stack_whose_name_extends_this_ones(staging):
    """Stack `staging` run on GCP (stack file `staging` is Hetzner; the same config as staging-gcp here) names its
    machines adp-staging-...; every name of stack `staging-gcp` (adp-staging-gcp-...) begins so too. Its nodes'
    attach and autoscaler rights hold for its own instances and groups, and for none of staging-gcp's."""
    sibling = mockrun.run(*mockrun.stack_config("staging-gcp"), stack="staging")
    own, theirs = machine_names(sibling), machine_names(staging)
    assert own["InstanceGroupManager"] and theirs["InstanceGroupManager"], "both autoscale a pool"
    for kind, condition in conditions(sibling).items():
        assert all(admits(condition, kind, name) for name in own[kind]), (condition, own[kind])
        assert not [name for name in theirs[kind] if admits(condition, kind, name)], condition
    for kind, condition in conditions(staging).items():
        assert all(admits(condition, kind, name) for name in theirs[kind])
        assert not [name for name in own[kind] if admits(condition, kind, name)]


def test_server_type_of_another_providers_shape_is_refused_before_any_resource():
    msgs = _problems(base_raw(provider="gcp", cluster={"controlPlane": {"serverType": "Standard_D8s_v5"},
                                                       "pools": [{"name": "general", "serverType": "n2-standard-8"}]}))
    assert msgs == ["adplatform:cluster.controlPlane.serverType must be a Compute Engine machine type such as "
                    "n2-standard-8 or e2-medium, got 'Standard_D8s_v5'"]


# --- autoscaled node groups (docs/autoscaling.md) -------------------------------------------------------

MIG = "gcp:compute/instanceGroupManager:InstanceGroupManager"
TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"


@pytest.fixture(scope="module")
def groups() -> NodeGroupRun:
    """staging-gcp's installer asked for groups in zones b and c, as the autoscaler component would ask; the
    general pool is tainted for this run, to see the taint in the template."""
    return run_node_groups("staging-gcp", lambda pool: ["europe-west3-b", "europe-west3-c"], overrides=autoscaled_general(
        labels={"svccontroller.k3s.cattle.io/enablelb": "true"}))


def test_one_zonal_managed_instance_group_per_request(groups):
    migs = {r.inputs["name"]: r for r in groups.of_type(MIG)}
    assert {name: mig.inputs["zone"] for name, mig in migs.items()} == {
        "adp-staging-gcp-general-europe-west3-b": "europe-west3-b",
        "adp-staging-gcp-general-europe-west3-c": "europe-west3-c"}
    for mig in migs.values():
        assert mig.inputs["targetSize"] == 0 and "targetSize" in mig.options["ignoreChanges"], \
            "the autoscaler owns the size: Pulumi starts it at 0 and never resets it"
        assert mig.inputs["updatePolicy"]["type"] == "OPPORTUNISTIC", "a new template never replaces running nodes"
        assert mig.inputs["baseInstanceName"] == mig.inputs["name"]


def test_instance_template_has_the_agents_settings_and_the_secret_user_data(groups, staging):
    (template, _) = groups.of_type(TEMPLATE)
    agent = staging.named("general-1", INSTANCE).inputs
    t = template.inputs
    assert t["machineType"] == agent["machineType"]
    (disk,) = t["disks"]
    assert disk["boot"] and disk["sourceImage"] == FAKE_UBUNTU_GCE_IMAGE
    assert disk["diskSizeGb"] == agent["bootDisk"]["initializeParams"]["size"] and disk["diskType"] == "pd-balanced"
    assert t["tags"] == agent["tags"], "the node firewall rules apply to autoscaled nodes too"
    assert t["serviceAccount"] == agent["serviceAccount"]
    assert t["shieldedInstanceConfig"] == agent["shieldedInstanceConfig"]
    assert t["labels"]["adplatform-stack"] == "staging-gcp" and t["labels"]["adplatform-pool"] == "general"
    assert t["networkInterfaces"][0]["accessConfigs"], "a public address: nodes go out directly"
    metadata = t["metadata"]
    assert isinstance(metadata, mockrun.Secret), "the join token in the metadata stays secret in state"
    assert metadata.value["user-data"] == FAKE_USER_DATA, "user-data: what Ubuntu's cloud-init reads on GCE"
    assert metadata.value["ssh-keys"] == agent["metadata"]["ssh-keys"]


def test_autoscaler_values_name_exactly_the_groups_created(groups):
    values = groups.values
    assert values["cloudProvider"] == "gce"
    created = {(r.inputs["zone"], r.inputs["name"]) for r in groups.of_type(MIG)}
    named = {}
    for group in values["autoscalingGroups"]:
        project, zone, name = gcp_mig_url_parts(group["name"])
        assert project == "adplatform-staging" and group["minSize"] == 0
        named[(zone, name)] = group["maxSize"]
    assert set(named) == created
    assert sorted(named.values()) == sorted(r.max_size for r in groups.requests)


def gcp_mig_url_parts(url: str) -> tuple[str, str, str]:
    """What the autoscaler's ParseMigUrl takes (cluster-autoscaler 1.35 gce_url.go)."""
    match = re.fullmatch(r"https://www\.googleapis\.com/compute/v1/projects/([^/]+)/zones/([^/]+)/instanceGroups/([^/]+)",
                         url)
    assert match, url
    return match[1], match[2], match[3]


def test_empty_groups_describe_their_nodes_labels_and_taints(groups):
    for template in groups.of_type(TEMPLATE):
        env = yaml.safe_load(template.inputs["metadata"].value["kube-env"])["AUTOSCALER_ENV_VARS"]
        parts = dict(part.split("=", 1) for part in env.split(";"))
        labels = dict(item.split("=", 1) for item in parts["node_labels"].split(","))
        assert labels["adplatform.io/pool"] == "general" and labels["adplatform.io/role"] == "general"
        assert labels["svccontroller.k3s.cattle.io/enablelb"] == "true", "the stack's own pool labels too"
        assert parts["node_taints"] == "adplatform.io/burst=true:NoSchedule" and parts["os"] == "linux"


def test_autoscaler_rights_are_a_custom_role_on_this_stacks_groups(groups):
    role = groups.named("autoscaler", "gcp:projects/iAMCustomRole:IAMCustomRole").inputs
    assert role["permissions"] == gcp.AUTOSCALER_PERMISSIONS
    assert "compute.instances.delete" not in role["permissions"] and "compute.instances.create" not in role["permissions"]
    grant = groups.named("nodes-autoscaler", "gcp:projects/iAMMember:IAMMember").inputs
    assert grant["role"] == "projects/adplatform-staging/roles/adp_staging_gcp_autoscaler"
    assert grant["condition"]["expression"] == (
        'resource.type != "compute.googleapis.com/InstanceGroupManager"'
        ' || resource.name.extract("/instanceGroupManagers/{name}").startsWith("adp-staging-gcp-general-")')
    assert all(admits(grant["condition"]["expression"], "InstanceGroupManager", r.inputs["name"])
               for r in groups.of_type(MIG))


def test_every_node_registers_with_the_gce_provider_id(staging, groups):
    """The autoscaler maps nodes to MIGs by gce://<project>/<zone>/<instance> and errors on K3s' own k3s://<node>:
    every node's cloud-init writes it, the Pulumi-managed instances' and (node_boot_commands) the autoscaled ones'."""
    assert groups.profile.node_boot_commands == gcp.BOOT_COMMANDS
    (command,) = gcp.BOOT_COMMANDS
    assert "provider-id=gce://%s/%s/%s" in command and "computeMetadata/v1/project/project-id" in command
    assert "computeMetadata/v1/instance/name" in command and "cloud-init query v1.availability_zone" in command
    for r in staging.of_type(INSTANCE):
        doc = yaml.safe_load(r.inputs["metadata"]["user-data"])
        assert [c for _, _, c in doc["bootcmd"]] == [command]


def test_node_boot_commands_pass_shellcheck():
    """The provider-ID boot commands run under `sh -c` on every AWS and GCP node before K3s starts."""
    from providers import aws
    scripts = {name: f"#!/bin/sh\n{command}\n" for name, command in
               (("aws-provider-id", aws.PROVIDER_ID_COMMAND), ("gce-provider-id", gcp.PROVIDER_ID_COMMAND))}
    assert validators.shellcheck(scripts) == ""


# --- PD CSI volume names per stack -----------------------------------------------------------------------

_VOLUME_TERM = re.compile(r'resource\.name\.extract\("/(?P<collection>disks|snapshots)/\{name\}"\)'
                          r'\.startsWith\("(?P<prefix>[^"]+)"\)')
UID = "0b5f3c9e-7d1a-4e2b-9c8f-1a2b3c4d5e6f"  # a Kubernetes UID: 36 characters


def volume_admits(expression: str, collection: str, name: str) -> bool:
    """Whether the volume grant (gcp.csi_disks_condition) holds for the disk or snapshot `name`."""
    return any(m["collection"] == collection and name.startswith(m["prefix"])
               for m in _VOLUME_TERM.finditer(expression))


def controller(args_by_container: dict[str, list[str]]) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "csi-gce-pd-controller"},
            "spec": {"template": {"spec": {"containers": [
                {"name": name, "args": args} for name, args in args_by_container.items()]}}}}


def transformed(prefix: str, props: dict, type_: str = "kubernetes:apps/v1:Deployment") -> dict | None:
    result = gcp.volume_name_args(prefix)(pulumi.ResourceTransformArgs(True, type_, "x", props,
                                                                        pulumi.ResourceOptions()))
    return result.props if result else None


def test_the_sidecars_name_volumes_and_snapshots_with_the_stacks_prefix():
    """The overlay's controller (v1.26.4 base/controller/controller.yaml: containers csi-provisioner, csi-attacher,
    csi-snapshotter, gce-pd-driver) names what it makes with the stack's prefix, not `pvc`/`snapshot`."""
    prefix = gcp.volume_name_prefix("staging-gcp")
    props = transformed(prefix, controller({"csi-provisioner": ["--v=5"], "csi-attacher": ["--v=5"],
                                            "csi-snapshotter": ["--v=5"], "gce-pd-driver": ["--v=5"]}))
    args = {c["name"]: c["args"] for c in props["spec"]["template"]["spec"]["containers"]}
    assert args == {"csi-provisioner": ["--v=5", f"--volume-name-prefix={prefix}"], "csi-attacher": ["--v=5"],
                    "csi-snapshotter": ["--v=5", f"--snapshot-name-prefix={prefix}"], "gce-pd-driver": ["--v=5"]}
    assert transformed(prefix, {"metadata": {"name": "csi-gce-pd-node"}}, "kubernetes:apps/v1:DaemonSet") is None


def test_a_controller_without_its_sidecars_fails_rather_than_making_default_names():
    with pytest.raises(ValueError, match="csi-snapshotter"):
        transformed("adp-x-00000000", controller({"csi-provisioner": []}))


def test_the_driver_and_the_grant_take_the_same_prefix(staging):
    """One prefix (gcp.volume_name_prefix) in the sidecars' args and the nodes' grant: what the driver makes, the
    nodes may use."""
    prefix = gcp.volume_name_prefix("staging-gcp")
    assert re.fullmatch(r"adp-staging-gcp-[0-9a-f]{8}", prefix)
    grant = {r.name: r.inputs for r in staging.of_type("gcp:projects/iAMMember:IAMMember")}["nodes-pd-csi-volumes"]
    props = transformed(prefix, controller({"csi-provisioner": [], "csi-snapshotter": []}))
    disk = f"{props['spec']['template']['spec']['containers'][0]['args'][0].split('=')[1]}-{UID}"
    snapshot = f"{props['spec']['template']['spec']['containers'][1]['args'][0].split('=')[1]}-{UID}"
    assert volume_admits(grant["condition"]["expression"], "disks", disk)
    assert volume_admits(grant["condition"]["expression"], "snapshots", snapshot)
    assert len(disk) <= 63


@pytest.mark.parametrize(("ours", "theirs"), [("staging", "staging-gcp"), ("production", "production-gcp"),
                                              ("a" * 40, "a" * 40 + "-b"), ("team_x", "team-x")])
def test_two_stacks_grants_admit_none_of_each_others_volumes(ours, theirs):
    """Stacks in one project: neither's grant holds for the other's disks or snapshots, also where one stack's name
    extends the other's, both are cut to the same length, or fold to the same GCE name."""
    for a, b in ((ours, theirs), (theirs, ours)):
        condition = gcp.csi_disks_condition(gcp.volume_name_prefix(a))
        for collection in ("disks", "snapshots"):
            assert volume_admits(condition, collection, f"{gcp.volume_name_prefix(a)}-{UID}")
            assert not volume_admits(condition, collection, f"{gcp.volume_name_prefix(b)}-{UID}"), (a, b)
            assert not volume_admits(condition, collection, f"pvc-{UID}")
            assert not volume_admits(condition, collection, f"snapshot-{UID}")


@pytest.mark.parametrize("stack", ["dev", "staging-gcp", "x" * 200, "Prod_EU.West-3", "9-lives", "a-" * 30])
def test_every_stack_name_gives_a_valid_bounded_prefix(stack):
    """GCE names (RFC 1035, at most 63 characters) of `<prefix>-<36-character UID>`: the prefix at most 26."""
    prefix = gcp.volume_name_prefix(stack)
    assert len(prefix) <= gcp.VOLUME_PREFIX_MAX == 26
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", f"{prefix}-{UID}") and len(f"{prefix}-{UID}") <= 63


def test_legacy_volume_names_admit_the_default_names_too():
    """A stack made before per-stack names keeps its pvc-/snapshot- volumes usable while the flag is set."""
    raw = base_raw(provider="gcp", layers=UP_TO_K3S, gcp={"legacyVolumeNames": True})
    assert load("test", raw, SECRET_KEYS).config.gcp.legacy_volume_names is True
    # Unset: decided from the previous run's record (test_an_existing_gcp_stack_keeps_its_volumes_without_a_manual_step).
    assert load("test", base_raw(provider="gcp"), SECRET_KEYS).config.gcp.legacy_volume_names is None
    prefix = gcp.volume_name_prefix("old")
    legacy = gcp.csi_disks_condition(prefix, legacy=True)
    for collection, default in (("disks", "pvc"), ("snapshots", "snapshot")):
        assert volume_admits(legacy, collection, f"{default}-{UID}")
        assert volume_admits(legacy, collection, f"{prefix}-{UID}")
    assert not volume_admits(legacy, "disks", f"snapshot-{UID}")


def test_the_volume_grant_stays_within_the_operator_limit():
    """IAM takes at most 12 logical operators in one condition, the legacy names included."""
    for legacy in (False, True):
        expression = gcp.csi_disks_condition(gcp.volume_name_prefix("x" * 80), legacy)
        assert expression.count("&&") + expression.count("||") <= gcp.MAX_CONDITION_OPERATORS


@pytest.mark.parametrize("configured, previous, expected", [
    (None, previous_run.PreviousRun(), False),  # a new stack: secure by default
    (None, previous_run.PreviousRun(deployed=True), True),  # deployed before the record: default-named volumes
    (None, previous_run.PreviousRun(recorded=True, deployed=True, gcp_legacy_volume_names=True), True),  # kept
    (None, previous_run.PreviousRun(recorded=True, deployed=True), False),  # recorded without GCP: prefixed since
    (False, previous_run.PreviousRun(deployed=True), False),  # its volumes moved: the user turns it off
    (True, previous_run.PreviousRun(), True),
])
def test_legacy_volume_names_follow_the_config_else_the_previous_run(configured, previous, expected):
    assert previous_run.gcp_legacy_volume_names(configured, previous) is expected


def _volume_grant(run: mockrun.Run) -> str:
    members = {r.name: r.inputs for r in run.of_type("gcp:projects/iAMMember:IAMMember")}
    return members["nodes-pd-csi-volumes"]["condition"]["expression"]


def test_an_existing_gcp_stack_keeps_its_volumes_without_a_manual_step():
    """A GCP stack deployed before per-stack names has outputs but no `previousRun`: its first run keeps admitting the
    sidecars' default names (its volumes carry them) and records that, so later runs keep them too; a new stack never
    admits them. Without this, its first `pulumi up` after the upgrade cut its nodes off their volumes."""
    values, *rest = raw_config(base_raw(provider="gcp", layers=UP_TO_K3S))
    values = {**values, **PROVIDER}
    old = mockrun.execute({**values, mockrun.PREVIOUS_RUN: mockrun.BEFORE_THE_RECORD}, *rest, "test")
    assert volume_admits(_volume_grant(old), "disks", f"pvc-{UID}")
    assert old.outputs["previousRun"]["gcpLegacyVolumeNames"] is True
    later = mockrun.execute(mockrun.after(old, values), *rest, "test")
    assert volume_admits(_volume_grant(later), "disks", f"pvc-{UID}")
    new = mockrun.execute(values, *rest, "test")
    assert not volume_admits(_volume_grant(new), "disks", f"pvc-{UID}")
    assert new.outputs["previousRun"]["gcpLegacyVolumeNames"] is False
