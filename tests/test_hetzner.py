"""The Hetzner provider: network, firewall, placement, servers, API load balancer, protection."""

from __future__ import annotations

from collections import Counter
from functools import lru_cache

import pulumi
import pytest
import yaml

from components.charts import HCLOUD_CSI
from config import ConfigError
from providers import cloud, get
from providers.hetzner import CATALOG, SERVER_TYPES, md5_fingerprint
from providers.base import PORTS, csi_storage
from tests.cloud_stacks import STORAGE_CLASS, assert_block_storage, run_alone
from tests.conftest import UP_TO_K3S, VALID_KEY, base_raw, k3s_config, run_raw
from tools import mockrun
from tools.mockrun import Resource, Run, Secret

SERVER = "hcloud:index/server:Server"


@lru_cache(maxsize=None)
def without_api_balancer() -> Run:
    """Production with the API load balancer off and a pool of 25 (one run for the tests that vary config), up to
    K3s: the tests read servers, placement groups and the K3s config."""
    return run_raw(base_raw(cluster={"apiLoadBalancer": {"enabled": False}, "pools": [{"name": "general", "count": 25}]},
                            layers=UP_TO_K3S))


REORDERED_POOLS = [{"name": "alpha", "role": "general", "count": 2}, {"name": "beta", "role": "general", "count": 2}]


@lru_cache(maxsize=None)
def _pools_in_order(reverse: bool) -> Run:
    """Staging up to K3s with two extra pools, listed in one order or the other, and the general pool on a type the
    catalog lists that no size class maps to (ccx13): one pair of runs for the naming and the server type tests."""
    pools = [*REORDERED_POOLS, {"name": "general", "serverType": "ccx13"}]
    return run_raw(base_raw(profile="staging", cluster={"pools": pools[::-1] if reverse else pools}, layers=UP_TO_K3S))


def servers_by_pool(run):
    return Counter(r.inputs["labels"]["adplatform.io/pool"] for r in run.of_type(SERVER))


def test_production_server_counts(production):
    assert servers_by_pool(production) == {"control-plane": 3, "general": 5, "scylladb": 3, "redpanda": 3,
                                           "clickhouse": 3, "stateful": 3}


def test_staging_has_production_shape_smaller(production, staging):
    assert set(servers_by_pool(staging)) == set(servers_by_pool(production))
    assert servers_by_pool(staging)["control-plane"] == 3
    types = {r.inputs["serverType"] for r in staging.of_type(SERVER)}
    assert not any(CATALOG.types[t].dedicated_cpu for t in types), "staging stays on cheaper shared-vCPU servers"


def test_every_hetzner_stack_orders_servers_hetzner_sells_where_they_go(production, staging):
    # The CX line cannot be ordered in any location since mid-2026: a stack on it fails at `pulumi up`.
    for run in (production, staging):
        for r in run.of_type(SERVER):
            assert CATALOG.unorderable(r.inputs["serverType"], r.inputs["location"]) is None, r.name


def test_size_classes_map_to_types_with_the_class_resources():
    from config.catalog import SIZES
    for size, wanted in SIZES.items():
        got = CATALOG.types[SERVER_TYPES[size]]
        assert (got.cores, got.memory_gb) == (wanted.vcpus, wanted.memory_gb), size
        assert got.dedicated_cpu == wanted.dedicated_cpu, size
        assert got.unorderable_at == frozenset(), f"{size}: Hetzner is known not to sell {SERVER_TYPES[size]} somewhere"


def test_server_type_catalog_is_dated_and_sourced():
    data = yaml.safe_load(CATALOG.path.read_text())
    assert data["date"] and data["source"].startswith("https://")
    assert CATALOG.types["cx33"].unorderable_at is None, "CX: not orderable in any location (2026)"


def test_unknown_server_type_is_refused_before_any_resource():
    raw = base_raw(profile="staging", cluster={"controlPlane": {"serverType": "cx99"},
                                               "pools": [{"name": "general", "serverType": "ccx99"}]})
    with pytest.raises(ConfigError) as err:
        run_raw(raw)
    assert mockrun.last_monitor.recorded == [], "nothing is created before the config is valid"
    found = {p.path: str(p) for p in err.value.problems}
    assert set(found) == {"cluster.controlPlane.serverType", "cluster.pools[general].serverType"}
    text = found["cluster.pools[general].serverType"]
    assert text.startswith("adplatform:cluster.pools[general].serverType must be a hetzner server type")
    assert "'ccx99'" in text and "cpx32" in text and "ccx63" in text and "hetzner_server_types.yaml" in text


def test_a_known_type_the_catalog_lists_is_accepted():
    run = _pools_in_order(reverse=False)
    assert "ccx13" not in SERVER_TYPES.values(), "a type only the catalog lists, not one a size class maps to"
    assert {r.inputs["serverType"] for r in run.of_type(SERVER) if r.name.startswith("general-")} == {"ccx13"}


def test_database_servers_are_dedicated_vcpu(production):
    for r in production.of_type(SERVER):
        assert r.inputs["serverType"].startswith("ccx"), r.name


def test_firewall_opens_only_80_443_to_the_world(production):
    (fw,) = production.of_type("hcloud:index/firewall:Firewall")
    world = {(r["protocol"], r.get("port")) for r in fw.inputs["rules"] if "0.0.0.0/0" in r["sourceIps"]}
    assert world == {("tcp", "80"), ("tcp", "443")}
    for rule in fw.inputs["rules"]:
        assert rule["direction"] == "in"
        if rule.get("port") in ("22", "6443"):
            assert rule["sourceIps"] == ["203.0.113.0/24"]
    assert {(r["protocol"], r.get("port")) for r in fw.inputs["rules"]} == {(p.protocol, p.port) for p in PORTS}


def test_every_server_has_firewall_network_placement_and_ubuntu(production):
    (fw,) = production.of_type("hcloud:index/firewall:Firewall")
    for r in production.of_type(SERVER):
        assert r.inputs["image"] == "ubuntu-24.04"
        assert len(r.inputs["firewallIds"]) == 1
        assert len(r.inputs["networks"]) == 1
        assert r.inputs["placementGroupId"]
        assert any("networkSubnet" in d for d in r.dependencies), "servers attach only after the subnet exists"


def test_spread_placement_group_per_pool(production):
    groups = production.of_type("hcloud:index/placementGroup:PlacementGroup")
    assert {g.inputs["type"] for g in groups} == {"spread"}
    servers = production.of_type("hcloud:index/server:Server")
    # One per pool and per location of a pool that spans several (the control plane: fsn1, nbg1, hel1).
    assert len(groups) == len({(s.inputs["labels"]["adplatform.io/pool"], s.inputs["location"]) for s in servers})


def test_large_pool_splits_placement_groups_at_ten():
    general = [g for g in without_api_balancer().of_type("hcloud:index/placementGroup:PlacementGroup")
               if g.inputs["labels"]["adplatform.io/pool"] == "general"]
    assert len(general) == 3


def test_production_protects_servers_and_network_staging_does_not(production, staging):
    for r in production.of_type(SERVER):
        assert r.protect and r.inputs["deleteProtection"] and r.inputs["rebuildProtection"]
    assert production.named("network").protect
    for r in staging.of_type(SERVER):
        assert not r.protect and not r.inputs["deleteProtection"]


def test_ssh_key_or_image_changes_never_replace_servers(production):
    for r in production.of_type(SERVER):
        assert {"sshKeys", "image"} <= set(r.options["ignoreChanges"])


def test_server_names_are_stable_when_pools_are_reordered():
    first, second = _pools_in_order(reverse=False), _pools_in_order(reverse=True)
    urns = lambda run: {r.urn: r.inputs["name"] for r in run.of_type(SERVER)}  # noqa: E731
    assert urns(first) == urns(second)
    assert "adp-test-alpha-2" in urns(first).values()


def test_ssh_keys_named_by_content(production):
    (key,) = production.of_type("hcloud:index/sshKey:SshKey")
    assert key.name == f"ssh-{cloud.key_digest(key.inputs['publicKey'])}", "adding or re-ordering keys renames none"
    assert key.inputs["name"] == f"adp-production-{cloud.key_digest(VALID_KEY)}"
    assert key.inputs["labels"] == {"adplatform.io/stack": "production"}, "the first stack in a project owns its key"


# --- two stacks in one project: Hetzner refuses a second key with the same fingerprint ---------------

GET_SSH_KEYS = "hcloud:index/getSshKeys:getSshKeys"


def _project_holding(monkeypatch, key: str, stack: str | None, key_id: int = 4711) -> None:
    """The Hetzner project (as the mocked lookup lists it) already holds `key`, created by `stack`."""
    uploaded = {"id": key_id, "name": "someone's key", "fingerprint": md5_fingerprint(key), "publicKey": key,
                "labels": {"adplatform.io/stack": stack} if stack else {}}
    monkeypatch.setitem(mockrun.CALL_RESULTS, GET_SSH_KEYS, lambda args: {"sshKeys": [uploaded]})


def test_fingerprint_is_the_one_hetzner_keeps():
    # `ssh-keygen -l -E md5` of VALID_KEY; Hetzner's API lists keys by this MD5 fingerprint.
    assert md5_fingerprint(VALID_KEY) == "42:b5:17:ff:67:38:e7:73:de:0f:c5:7d:8c:cc:2e:61"


def test_a_second_stack_in_the_project_uses_the_key_the_first_uploaded(monkeypatch):
    _project_holding(monkeypatch, VALID_KEY, stack="production")
    staging = run_raw(base_raw(profile="staging", layers=UP_TO_K3S), stack="staging")
    assert not staging.of_type("hcloud:index/sshKey:SshKey"), "a second key with that fingerprint is refused"
    assert {tuple(r.inputs["sshKeys"]) for r in staging.of_type(SERVER)} == {("4711",)}


def test_a_key_uploaded_by_hand_is_used_not_duplicated(monkeypatch):
    _project_holding(monkeypatch, VALID_KEY, stack=None, key_id=99)
    run = run_raw(base_raw(profile="staging", layers=UP_TO_K3S))
    assert not run.of_type("hcloud:index/sshKey:SshKey")
    assert {tuple(r.inputs["sshKeys"]) for r in run.of_type(SERVER)} == {("99",)}


def test_a_stack_keeps_declaring_the_key_it_created(monkeypatch):
    # The lookup finds this stack's own key on every later `up`: it must stay declared, or Pulumi deletes it.
    _project_holding(monkeypatch, VALID_KEY, stack="test")
    other = VALID_KEY.replace("r7H", "r8H")
    run = run_raw(base_raw(profile="staging", sshPublicKeys=[VALID_KEY, other], layers=UP_TO_K3S))
    keys = run.of_type("hcloud:index/sshKey:SshKey")
    assert sorted(k.inputs["publicKey"] for k in keys) == sorted([VALID_KEY, other])
    assert all(len(r.inputs["sshKeys"]) == 2 for r in run.of_type(SERVER))


def test_api_load_balancer_is_private_with_health_check(production):
    (attachment,) = production.of_type("hcloud:index/loadBalancerNetwork:LoadBalancerNetwork")
    assert attachment.inputs["enablePublicInterface"] is False
    (service,) = production.of_type("hcloud:index/loadBalancerService:LoadBalancerService")
    assert service.inputs["listenPort"] == 6443 and service.inputs["destinationPort"] == 6443
    assert service.inputs["healthCheck"]["protocol"] == "tcp" and service.inputs["healthCheck"]["port"] == 6443
    targets = production.of_type("hcloud:index/loadBalancerTarget:LoadBalancerTarget")
    assert len(targets) == 3 and all(t.inputs["usePrivateIp"] for t in targets)


def test_api_load_balancer_can_be_turned_off():
    run = without_api_balancer()
    assert not run.of_type("hcloud:index/loadBalancer:LoadBalancer")
    assert k3s_config(run, "general-1")["server"] == f"https://{run.outputs['nodes']['adp-test-control-plane-1']['privateIp']}:6443"


def test_every_size_class_maps_to_a_hetzner_type():
    from config.catalog import SIZES
    assert set(get("hetzner").server_types) == set(SIZES)


def test_ccm_secret_and_release(production):
    secret = production.named("hcloud", "kubernetes:core/v1:Secret")
    assert secret.inputs["metadata"]["name"] == "hcloud"
    assert type(secret.inputs["stringData"]).__name__ == "Secret", "the hcloud token must stay secret"
    ccm = production.named("hcloud-ccm", "kubernetes:helm.sh/v3:Release")
    assert ccm.inputs["values"]["networking"] == {"enabled": True, "clusterCIDR": "10.244.0.0/16"}
    assert ccm.inputs["values"]["replicaCount"] == 2


# --- storage (CSI) and load balancers for Services --------------------------------------------------

def test_csi_driver_gives_encrypted_expandable_classes_default_and_xfs(production, staging):
    for run, reclaim in ((production, "Retain"), (staging, "Delete")):
        # Production keeps a volume when its claim is deleted; the XFS twin is LUKS-encrypted the same way.
        params = assert_block_storage(run, "hcloud-volumes", "csi.hetzner.cloud", reclaim=reclaim, driver="hcloud-csi")
        secret = run.named("hcloud-volume-encryption", "kubernetes:core/v1:Secret")
        assert params["csi.storage.k8s.io/node-publish-secret-name"] == secret.inputs["metadata"]["name"]
        assert params["csi.storage.k8s.io/node-publish-secret-namespace"] == secret.inputs["metadata"]["namespace"]
        data = secret.inputs["stringData"]
        assert isinstance(data, Secret) and "encryption-passphrase" in data.value
        for name in ("storage-class-hcloud-volumes", "storage-class-hcloud-volumes-xfs"):
            assert secret.urn in run.named(name, STORAGE_CLASS).dependencies, "no volume before its passphrase"
    assert production.named("volume-encryption-passphrase", "random:index/randomPassword:RandomPassword").protect, \
        "losing the passphrase loses every volume: production protects it"
    assert production.named("hcloud-volume-encryption", "kubernetes:core/v1:Secret").protect


def test_csi_driver_values(production, staging):
    prod = production.named("hcloud-csi", "kubernetes:helm.sh/v3:Release").inputs
    assert prod["version"] == HCLOUD_CSI.version and prod["namespace"] == "kube-system"
    values = prod["values"]
    assert values["controller"]["replicaCount"] == 2 and values["controller"]["podDisruptionBudget"]["create"]
    anti = values["controller"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["topologyKey"] == "kubernetes.io/hostname"
    assert values["controller"]["hcloudVolumeDefaultLocation"] == "fsn1"
    assert values["node"]["tolerations"] == [{"operator": "Exists"}], "volumes attach on tainted database pools too"
    assert values["storageClasses"] == [], "the chart's own class would compete with our encrypted default"
    staging_values = staging.named("hcloud-csi", "kubernetes:helm.sh/v3:Release").inputs["values"]
    assert staging_values["controller"]["replicaCount"] == 1
    ccm_secret = production.named("hcloud", "kubernetes:core/v1:Secret")
    assert ccm_secret.urn in production.named("hcloud-csi", "kubernetes:helm.sh/v3:Release").dependencies, \
        "the driver reads the hcloud token secret the CCM add-on creates"


def test_k3s_local_storage_is_off_where_the_csi_driver_provides_volumes(production):
    assert "local-storage" in k3s_config(production, "control-plane-1")["disable"]


def test_volumes_are_created_in_the_stack_location(staging):
    csi = staging.named("hcloud-csi", "kubernetes:helm.sh/v3:Release")
    assert csi.inputs["values"]["controller"]["hcloudVolumeDefaultLocation"] == "nbg1", "staging's cluster.location"


def test_csi_storage_returns_the_default_class_and_its_xfs_twin():
    """The construction every CSI provider shares (providers/base.py csi_storage), on its own."""
    def build():
        driver = pulumi.CustomResource("test:index:Driver", "driver")
        return driver, csi_storage("fast", "csi.example.com", {"type": "ssd", "csi.storage.k8s.io/fstype": "ext4"},
                                   retain=True, driver=[driver], opts=pulumi.ResourceOptions())
    (driver, storage), recorded = run_alone(build)
    assert (storage.default_class, storage.xfs_class) == ("fast", "fast-xfs")
    assert storage.resources[0] is driver and len(storage.resources) == 4, "a claim waits for driver and classes"
    classes: dict[str, Resource] = {r.inputs["metadata"]["name"]: r for r in recorded if r.type == STORAGE_CLASS}
    assert classes["fast"].inputs["parameters"] == {"type": "ssd", "csi.storage.k8s.io/fstype": "ext4"}
    assert classes["fast-xfs"].inputs["parameters"] == {"type": "ssd", "csi.storage.k8s.io/fstype": "xfs"}
    assert {n: r.inputs["reclaimPolicy"] for n, r in classes.items()} == {
        "fast": "Retain", "fast-xfs": "Retain", "fast-scratch": "Delete"}  # scratch volumes go with their claim
    assert storage.scratch_of("fast") == "fast-scratch" and storage.scratch_of("other") == "other"
