"""Hybrid clusters (providers/hybrid.py): pools on several providers, one K3s cluster.

The recorded run of Pulumi.production-hybrid.yaml (Hetzner Cloud + bare-metal ScyllaDB hosts on a vSwitch) and
config variants of it: validation per provider, composition, the firewall between providers, node labels and
profiles, storage topology, and the plan's cost next to all-cloud production."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any, Callable, TypeVar

import pytest
import yaml

from providers import aws, azure, cloud, gcp, hybrid
from config.model import CONTROL_PLANE_TAINT
from policy.rules import PEER_MARK
from providers.base import CLUSTER_PORTS, PROVIDER_LABEL

# The host ports Prometheus scrapes (components/host_metrics.py), which reach a K3s server, or leave one, outside
# WireGuard (Cilium opts control-plane nodes out of node encryption): the peer rules' ports and descriptions.
METRICS_RULES = (("9100", "node-exporter metrics (Prometheus, to and from K3s servers)"),
                 ("9962-9963", "Cilium agent and operator metrics (Prometheus, to and from K3s servers)"),
                 ("9965", "Hubble metrics (Prometheus, to and from K3s servers)"))
METRICS_PORTS = {("tcp", port) for port, _ in METRICS_RULES}
from tests.test_baremetal import problems  # the whole program, refused before any resource
from tests.conftest import (ROOT, UP_TO_SERVICES, base_raw, k3s_config, node_labels, nodes_without_topology, run_raw,
                            script_param, stack_run)
from tests.runs import UP_TO_K3S, stack_plan
from tools import mockrun
from tools.plan import model

STACK = yaml.safe_load((ROOT / "Pulumi.production-hybrid.yaml").read_text())["config"]
CLOUD_SUBNET = "10.0.1.0/24"  # cluster.subnetCidr (the default): every Hetzner Cloud server of the stack
COMMAND = "command:remote:Command"


@pytest.fixture(scope="module")
def run() -> mockrun.Run:
    return stack_run("production-hybrid")


def raw(**overrides: Any) -> dict[str, Any]:
    """The production-hybrid stack as a raw config, with overrides."""
    values = base_raw(cluster=copy.deepcopy(STACK["adplatform:cluster"]),
                      bareMetal=copy.deepcopy(STACK["adplatform:bareMetal"]))
    values.update(overrides)
    return values


def _pool(values: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in values["cluster"]["pools"] if p["name"] == name)


# --- config ---------------------------------------------------------------------------------------

def test_an_unknown_pool_provider_is_refused_naming_the_key():
    values = raw()
    _pool(values, "scylladb")["provider"] = "ovh"
    found = problems(values)
    assert any(p.startswith("adplatform:cluster.pools[scylladb].provider must be one of the providers hetzner, aws")
               and "'ovh'" in p for p in found), found


def test_a_provider_that_cannot_couple_is_refused_naming_what_is_accepted():
    # Bare metal couples with Hetzner Cloud only (its vSwitch) and does not peer over the internet: on an AWS stack
    # the error names the pairs that work.
    values = raw(provider="aws")
    found = problems(values)
    assert any(p.startswith("adplatform:cluster.pools[scylladb].provider must be 'aws' (the stack's provider) or a "
                            "provider it couples with (hetzner, gcp, azure: the public internet")
               and "'baremetal'" in p for p in found), found


def test_the_credentials_of_every_pool_provider_are_checked(monkeypatch):
    monkeypatch.setattr(hybrid, "providers_used", lambda cfg: ["hetzner", "aws"])
    found = []
    monkeypatch.setattr(hybrid, "check_credentials", lambda creds: found.extend(c.key for c in creds) or [])
    hybrid.credential_problems(None)
    from providers import aws
    assert found == [c.key for c in aws.CREDENTIALS] and found


def test_bare_metal_pools_need_their_hosts():
    values = raw()
    values["bareMetal"]["hosts"] = values["bareMetal"]["hosts"][:2]
    assert "adplatform:bareMetal.hosts must list exactly 3 host(s) with pool 'scylladb' " \
           "(cluster.pools[scylladb].count is 3), got 2" in problems(values)


def test_control_plane_hosts_are_refused_on_a_secondary_provider():
    values = raw()
    values["bareMetal"]["hosts"].append({"publicAddress": "198.51.100.30", "privateAddress": "10.0.2.30",
                                         "pool": "control-plane"})
    found = problems(values)
    # The control plane stays on the stack's provider: the bare-metal part has no slot for it.
    assert any(p.startswith("adplatform:bareMetal.hosts must list exactly 0 host(s) with pool 'control-plane'")
               for p in found), found


@pytest.mark.parametrize("edit, key, message", [
    (lambda b: b.pop("vswitch"), "bareMetal.vswitch.id", "must be set: the Robot vSwitch"),
    (lambda b: b.pop("subnetCidr"), "bareMetal.subnetCidr", "must be set: the vSwitch subnet"),
    (lambda b: b.update(subnetCidr="192.168.0.0/24"), "bareMetal.subnetCidr", "must lie inside cluster.networkCidr"),
    (lambda b: b.update(subnetCidr="10.0.1.0/25"), "bareMetal.subnetCidr", "must not overlap cluster.subnetCidr"),
    (lambda b: b.update(subnetCidr="10.244.0.0/24"), "bareMetal.subnetCidr", "must not overlap cluster.podCidr"),
])
def test_the_vswitch_coupling_is_checked(edit, key, message):
    values = raw()
    edit(values["bareMetal"])
    found = problems(values)
    assert any(p.startswith(f"adplatform:{key} {message}") for p in found), found


def test_hosts_must_lie_in_the_vswitch_subnet():
    values = raw()
    values["bareMetal"]["hosts"][0]["privateAddress"] = "10.0.1.21"
    assert any(p.startswith("adplatform:bareMetal.hosts[0].privateAddress must lie inside cluster.subnetCidr "
                            "(10.0.2.0/24)") for p in problems(values))


def test_roles_whose_volumes_cannot_attach_are_refused_on_bare_metal():
    values = raw()
    values["cluster"]["pools"].append({"name": "redpanda", "provider": "baremetal"})
    found = problems(values)
    assert "adplatform:cluster.pools[redpanda].role must be one of general, scylladb on provider baremetal: the " \
           "hetzner volumes do not attach there, got 'redpanda'" in found, found


def test_bare_metal_settings_on_a_stack_without_bare_metal_pools_are_refused():
    values = raw()
    _pool(values, "scylladb").pop("provider")
    assert any(p.startswith("adplatform:bareMetal is only read with provider: baremetal") for p in problems(values))


# --- composition ----------------------------------------------------------------------------------

def test_one_cluster_over_both_providers(run):
    nodes = run.outputs["nodes"]
    servers = {n.name for n in run.resources if n.type == "hcloud:index/server:Server"}
    assert not any(name.startswith("scylladb") for name in servers)
    assert {n["pool"] for n in nodes.values()} >= {"control-plane", "general", "scylladb"}
    scylla = {h: n for h, n in nodes.items() if n["pool"] == "scylladb"}
    hosts = [h for h in STACK["adplatform:bareMetal"]["hosts"]]
    assert sorted(n["privateIp"] for n in scylla.values()) == sorted(h["privateAddress"] for h in hosts)
    assert all(n["k3s"] == "agent" for n in scylla.values())
    # The gateway's balancer (Hetzner's CCM) reaches the cloud servers, never the dedicated hosts.
    assert {(n["provider"], n["loadBalancerTarget"]) for n in nodes.values()} == {("hetzner", True),
                                                                                   ("baremetal", False)}
    assert all(n["provider"] == "baremetal" for n in scylla.values())
    # One cluster: only the first Hetzner server initialises it; the hosts join through the private API balancer.
    installs = [r.name.removeprefix("k3s-") for r in run.resources if r.type == COMMAND and r.name.startswith("k3s-")
                and r.name.removeprefix("k3s-") in {h.removeprefix("adp-production-hybrid-") for h in nodes}]
    assert len(installs) == len(nodes)
    assert [n for n in installs if k3s_config(run, n).get("cluster-init")] == ["control-plane-1"]
    joined = k3s_config(run, "scylladb-1")["server"]
    assert joined == k3s_config(run, "general-1")["server"]
    assert run.outputs["provider"] == "hetzner"


def test_the_vswitch_joins_the_cloud_network(run):
    subnet = run.named("subnet-vswitch", "hcloud:index/networkSubnet:NetworkSubnet").inputs
    network = run.named("subnet", "hcloud:index/networkSubnet:NetworkSubnet").inputs["networkId"]
    assert subnet == {"type": "vswitch", "vswitchId": 40000, "networkZone": "eu-central", "ipRange": "10.0.2.0/24",
                      "networkId": network}


def test_each_node_carries_its_provider_and_its_own_kubelet_flags(run):
    scylla, general = k3s_config(run, "scylladb-1"), k3s_config(run, "general-1")
    assert f"{PROVIDER_LABEL}=baremetal" in scylla["node-label"]
    assert f"{PROVIDER_LABEL}=hetzner" in general["node-label"]
    assert f"{PROVIDER_LABEL}=hetzner" in k3s_config(run, "control-plane-1")["node-label"]
    # The hcloud CCM initialises cloud servers only: a bare-metal kubelet waiting for it would stay tainted.
    assert "cloud-provider=external" in general["kubelet-arg"]
    assert "cloud-provider=external" not in scylla["kubelet-arg"]
    # The CSI chart keeps its node plugin off `robot` nodes (there are no Hetzner Cloud volumes to mount).
    assert "instance.hetzner.cloud/provided-by=robot" in scylla["node-label"]
    assert not any(label.startswith("instance.hetzner.cloud/") for label in general["node-label"])


def test_every_node_registers_its_region_zone_and_provider_the_dedicated_servers_from_config(run):
    assert nodes_without_topology(run) == {}
    zones = [h["zone"] for h in STACK["adplatform:bareMetal"]["hosts"]]
    assert [(labels["topology.kubernetes.io/region"], labels["topology.kubernetes.io/zone"]) for labels in
            (node_labels(run, f"scylladb-{i}") for i in (1, 2, 3))] == [("fsn1", zone) for zone in zones]


@pytest.mark.parametrize("edit, key, message", [
    (lambda b: b.update(region="ash"), "bareMetal.region",
     "must be the Hetzner location of the dedicated servers, in lowercase, one of the cloud network's zone "
     "eu-central (fsn1, nbg1, hel1), got 'ash'"),
    (lambda b: b["hosts"][2].update(zone="rack-3"), "bareMetal.hosts[2].zone",
     "must be the server's Robot datacenter in lowercase, fsn1-dc<number> (e.g. fsn1-dc14), matching bareMetal.region"),
    (lambda b: b["hosts"][0].update(zone="nbg1-dc3"), "bareMetal.hosts[0].zone", "must be the server's Robot datacenter"),
])
def test_dedicated_servers_name_their_place_as_hetzners_ccm_would(edit, key, message):
    values = raw()
    edit(values["bareMetal"])
    assert any(p.startswith(f"adplatform:{key} {message}") for p in problems(values)), problems(values)


def test_every_node_of_a_single_provider_stack_carries_the_provider_label(production):
    assert f"{PROVIDER_LABEL}=hetzner" in k3s_config(production, "scylladb-1")["node-label"]


def test_cilium_tunnels_and_encrypts_between_providers_at_the_vswitch_mtu(run, production):
    values = run.named("cilium", "kubernetes:helm.sh/v3:Release").inputs["values"]
    assert values["routingMode"] == "tunnel" and values["tunnelProtocol"] == "vxlan"
    assert "ipv4NativeRoutingCIDR" not in values
    assert values["encryption"] == {"enabled": True, "type": "wireguard", "nodeEncryption": True}
    assert values["MTU"] == 1400  # the vSwitch's, below the cloud network's 1450
    # All-cloud production keeps Hetzner's native routing over its private network.
    single = production.named("cilium", "kubernetes:helm.sh/v3:Release").inputs["values"]
    assert single["routingMode"] == "native" and single["MTU"] == 1450


# --- the firewall between providers ---------------------------------------------------------------

def _ruleset(run: mockrun.Run) -> list[str]:
    script = run.named("firewall-scylladb-1", COMMAND).inputs["stdin"]
    return [line.strip() for line in script_param(script, "RULESET").splitlines()]


def test_bare_metal_admits_exactly_the_cloud_nodes_on_exactly_the_cluster_ports(run):
    from_cloud = [line for line in _ruleset(run) if CLOUD_SUBNET in line]
    assert from_cloud == [
        f"ip saddr {{ {CLOUD_SUBNET} }} tcp dport 10250 accept comment \"kubelet (API server: logs, exec; metrics)\"",
        f"ip saddr {{ {CLOUD_SUBNET} }} udp dport 51871 accept comment \"Cilium WireGuard (pod and node traffic, encrypted)\"",
        f"ip saddr {{ {CLOUD_SUBNET} }} tcp dport 4240 accept comment \"Cilium health checks\"",
        f"ip saddr {{ {CLOUD_SUBNET} }} meta l4proto icmp accept comment \"Cilium health pings\"",
        *(f"ip saddr {{ {CLOUD_SUBNET} }} tcp dport {port} accept comment \"{what}\"" for port, what in METRICS_RULES),
    ]
    # The hosts' own network and the pods stay trusted as on any bare-metal stack; VXLAN never leaves WireGuard.
    assert 'ip saddr { 10.0.2.0/24, 10.244.0.0/16 } accept comment "the private network and pods: everything ' \
           'between cluster members"' in _ruleset(run)
    assert not any("8472" in line or "2379" in line for line in _ruleset(run))


def test_peer_rules_name_exactly_the_peers_each_port_needs():
    rules = {(p.protocol, p.port): sources for p, sources in hybrid.peer_rules(True, ("192.0.2.0/28",), ("192.0.2.1/32",))}
    assert rules == {("tcp", "6443"): ("192.0.2.0/28",), ("tcp", "10250"): ("192.0.2.0/28",),
                     ("tcp", "2379-2380"): ("192.0.2.1/32",), ("udp", "51871"): ("192.0.2.0/28",),
                     ("tcp", "4240"): ("192.0.2.0/28",), ("icmp", None): ("192.0.2.0/28",),
                     # Where servers run, every node scrapes their host metrics in plain TCP.
                     **{port: ("192.0.2.0/28",) for port in METRICS_PORTS}}
    agents_only = {(p.protocol, p.port): sources
                   for p, sources in hybrid.peer_rules(False, ("192.0.2.0/28",), ("192.0.2.1/32",))}
    assert agents_only.keys() == {(p.protocol, p.port) for p in CLUSTER_PORTS if p.to == "nodes"}
    # Elsewhere only a server sends it (Prometheus there); between two agents it is inside WireGuard.
    assert {port: agents_only[port] for port in METRICS_PORTS} == {port: ("192.0.2.1/32",) for port in METRICS_PORTS}
    assert hybrid.peer_rules(True, (), ()) == []  # no peers, no rule


# --- storage --------------------------------------------------------------------------------------

def test_cloud_volumes_are_only_scheduled_on_cloud_nodes(run, production):
    for name in ("storage-class-hcloud-volumes", "storage-class-hcloud-volumes-xfs"):
        sc = run.named(name, "kubernetes:storage.k8s.io/v1:StorageClass").inputs
        assert sc["allowedTopologies"] == [{"matchLabelExpressions": [
            {"key": "instance.hetzner.cloud/provided-by", "values": ["cloud"]}]}]
    csi = run.named("hcloud-csi", "kubernetes:helm.sh/v3:Release").inputs["values"]
    assert csi["global"] == {"enableProvidedByTopology": True}
    single = production
    assert "allowedTopologies" not in single.named("storage-class-hcloud-volumes",
                                                   "kubernetes:storage.k8s.io/v1:StorageClass").inputs
    assert "global" not in single.named("hcloud-csi", "kubernetes:helm.sh/v3:Release").inputs["values"]


def test_scylladb_on_bare_metal_keeps_its_data_on_the_local_disks(run):
    from tests.test_data_scylladb import spec
    assert {rack["storage"]["storageClassName"] for rack in spec(run)["datacenter"]["racks"]} == {"scylladb-local-xfs"}
    assert spec(run)["developerMode"] is False


# --- plan -----------------------------------------------------------------------------------------

def test_the_plan_prices_the_dedicated_servers_next_to_all_cloud_production(run, production):
    hybrid_cost = model.build(run)["cost"]
    cloud_cost = stack_plan("production")["cost"]
    assert hybrid_cost["unknown"] == [] and hybrid_cost["pools"]["scylladb"] == pytest.approx(3 * 104.0, abs=0.01)
    assert hybrid_cost["total"] < cloud_cost["total"]
    assert not any("host" in u["what"] for u in hybrid_cost["unpriced"])


# --- provider migration (docs/providers.md "Moving pools to another provider") --------------------

METAL_HOSTS = [{"publicAddress": f"198.51.100.{30 + i}", "privateAddress": f"10.0.2.{30 + i}", "pool": "scylladb-metal",
                "zone": f"fsn1-dc{14 + i}", "monthlyPrice": 104.0} for i in range(3)]
BARE_METAL = {"vswitch": {"id": 40000}, "subnetCidr": "10.0.2.0/24", "region": "fsn1", "hosts": METAL_HOSTS}


def migration() -> list[tuple[str, dict[str, Any]]]:
    """ScyllaDB from the Hetzner Cloud pool to dedicated servers, as the stack-file edits the docs show."""
    start = base_raw(cluster={"location": "fsn1", "controlPlane": {"locations": ["fsn1", "nbg1", "hel1"]}})
    added = copy.deepcopy(start)
    added["bareMetal"] = copy.deepcopy(BARE_METAL)
    added["cluster"]["pools"] = [{"name": "scylladb-metal", "role": "scylladb", "count": 3, "provider": "baremetal",
                                  "size": "dedicated-xlarge"}]
    removed = copy.deepcopy(added)
    removed["cluster"]["pools"].append({"name": "scylladb", "count": 0})
    return [("all cloud", start), ("pools added on the new provider", added), ("old pools removed", removed)]


Pools = dict[tuple[str, str], int]  # (role, pool) -> nodes


def _pools(run: mockrun.Run) -> Pools:
    from collections import Counter
    return dict(Counter((node["role"], node["pool"]) for node in run.outputs["nodes"].values()))


def walk_problems(steps: list[tuple[str, Pools]]) -> list[str]:
    """What a migration must never do: a store role below its replication minimum at any step, or one step that
    both adds nodes of a role and removes some (the data would have no moment on both: re-replication needs the
    new nodes first, the old ones may go only after), or a change of the K3s servers (etcd quorum)."""
    from config.catalog import ROLES
    found = []
    for step, pools in steps:
        for role in {r for r, _ in pools}:
            nodes = sum(n for (r, _), n in pools.items() if r == role)
            if role in ROLES and nodes < ROLES[role].min_nodes:
                found.append(f"{step}: {role} has {nodes} nodes, below {ROLES[role].min_nodes}")
    for (_, before), (step, after) in zip(steps, steps[1:]):
        for role in {r for r, _ in [*before, *after]}:
            keys = {k for k in [*before, *after] if k[0] == role}
            grew = any(after.get(k, 0) > before.get(k, 0) for k in keys)
            shrank = any(after.get(k, 0) < before.get(k, 0) for k in keys)
            if grew and shrank:
                found.append(f"{step}: {role} gains and loses nodes in one step")
        if before.get(("general", "control-plane")) != after.get(("general", "control-plane")):
            found.append(f"{step}: the K3s servers change")
    return found


def test_the_migration_walks_through_valid_stacks_and_never_drops_below_replication():
    # Every intermediate stack synthesizes (run_raw raises a ConfigError otherwise: the config rules, replication
    # minimums and the hybrid coupling included).
    runs = [(step, run_raw(values, stack="production-hybrid")) for step, values in migration()]
    steps = [(step, _pools(run)) for step, run in runs]
    assert walk_problems(steps) == []
    placed = [{pool for (role, pool) in pools if role == "scylladb"} for _, pools in steps]
    assert placed == [{"scylladb"}, {"scylladb", "scylladb-metal"}, {"scylladb-metal"}]


def test_the_walk_refuses_a_swap_in_one_step_and_a_replica_short_pool():
    cloud, metal = ("scylladb", "scylladb"), ("scylladb", "scylladb-metal")
    swap = [("before", {cloud: 3}), ("swapped", {metal: 3})]
    assert walk_problems(swap) == ["swapped: scylladb gains and loses nodes in one step"]
    short = [("before", {cloud: 3}), ("added", {cloud: 3, metal: 2}), ("removed", {metal: 2})]
    assert walk_problems(short) == ["removed: scylladb has 2 nodes, below 3"]


# --- a pool on another cloud, over the public internet (INTERNET) ----------------------------------

AWS_SETTINGS = {"aws:region": "eu-central-1", "hcloud:token": "test-token"}


def internet_config(values: dict[str, Any], settings: dict[str, str] = AWS_SETTINGS) -> tuple[dict[str, Any], set[str]]:
    """The config values and secret keys a cluster over the internet runs with (the other providers' settings)."""
    from tests.conftest import SECRET_KEYS, lower_layers
    config = {**{f"adplatform:{k}": v for k, v in lower_layers(values).items()}, **settings}
    return config, {f"adplatform:{k}" for k in SECRET_KEYS} | {"hcloud:token"}


def run_internet(values: dict[str, Any], stack: str = "test", settings: dict[str, str] = AWS_SETTINGS) -> mockrun.Run:
    return mockrun.run(*internet_config(values, settings), stack)

EDGE = {"name": "edge", "role": "general", "count": 2, "provider": "aws", "locations": ["eu-central-1a", "eu-central-1b"]}
SG_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"


# What a cluster over the internet with 3 K3s servers states (internet_problems): the nodes join at the public API
# balancer, and the general pool has a fixed count (the firewalls name every node by its address).
OVER_INTERNET = {"location": "fsn1", "apiLoadBalancer": {"enabled": True, "public": True}}
FIXED_GENERAL = {"name": "general", "autoscaling": None, "count": 5}


def internet_raw() -> dict[str, Any]:
    """Production on Hetzner Cloud with a stateless pool on AWS (no bare metal). Its 22 nodes take more security group
    rules than AWS' default quota: the account's raised quota is stated."""
    return base_raw(cluster={**OVER_INTERNET, "pools": [dict(FIXED_GENERAL), dict(EDGE)],
                             "firewallQuotas": {"aws": 120}})


@pytest.fixture(scope="module")
def internet() -> mockrun.Run:
    """Without the data plane: the tests read nodes, K3s, Cilium, firewalls and the storage classes (cluster services)."""
    return run_internet({**internet_raw(), "layers": UP_TO_SERVICES}, stack="production-internet")


def _addresses(run: mockrun.Run) -> dict[str, str]:
    """node name (control-plane-1, edge-1, ...) -> its public address."""
    prefix = f"adp-{run.stack}-"
    return {host.removeprefix(prefix): node["publicIp"] for host, node in run.outputs["nodes"].items()}


def test_the_other_cloud_builds_its_own_part_and_its_nodes_join_one_cluster(internet):
    assert {r.name for r in internet.resources if r.type == "aws:ec2/instance:Instance"} == {"edge-1", "edge-2"}
    assert not any(r.name.startswith("edge") for r in internet.resources if r.type == "hcloud:index/server:Server")


def _balancer(run: mockrun.Run) -> str:
    """The public API balancer's address (the deployer's endpoint, stack output apiEndpoint)."""
    return run.outputs["apiEndpoint"].removeprefix("https://").removesuffix(":6443")


def test_losing_the_first_server_leaves_every_node_an_api_path(internet):
    """Nothing on the nodes names the first server alone: joins (and drains) go through the public balancer, which
    answers while any server does, and Cilium through each node's local endpoint (the K3s server's own API server,
    an agent's client-side load balancer over every server)."""
    first, balancer = _addresses(internet)["control-plane-1"], _balancer(internet)
    assert balancer != first
    joined = ("control-plane-2", "control-plane-3", "general-1", "edge-1", "edge-2")
    assert {k3s_config(internet, n)["server"] for n in joined} == {f"https://{balancer}:6443"}
    assert balancer in k3s_config(internet, "control-plane-1")["tls-san"]  # the certificate names the balancer
    values = internet.named("cilium", "kubernetes:helm.sh/v3:Release").inputs["values"]
    assert (values["k8sServiceHost"], values["k8sServicePort"]) == ("127.0.0.1", 6444)
    drains = [r.inputs["stdin"].value for r in internet.of_type(COMMAND) if r.name.startswith("drain-")]
    assert drains and all(f"https://{balancer}:6443" in d and f"https://{first}:6443" not in d for d in drains)


def test_several_servers_over_the_internet_need_a_public_balancer_every_node_reaches():
    values = internet_raw()
    values["cluster"]["apiLoadBalancer"] = {"enabled": True, "public": False}
    found = _internet_problems(values)
    assert any(p.startswith("adplatform:cluster.apiLoadBalancer.public must be true (with apiLoadBalancer.enabled) "
                            "on a stack provider whose public API balancer the other providers' nodes reach (hetzner, aws, "
                            "gcp, azure)")
               and p.endswith("got 'False on provider hetzner'") for p in found), found
    values["cluster"]["controlPlane"] = {"count": 1}  # one server: its address is the API's, with or without
    assert not any("apiLoadBalancer" in p for p in _internet_problems(values))


def test_an_autoscaled_pool_of_the_stack_provider_is_refused_over_the_internet():
    values = internet_raw()
    values["cluster"]["pools"][0] = {"name": "general", "autoscaling": {"min": 5, "max": 10}}
    found = _internet_problems(values)
    assert ("adplatform:cluster.pools[general].autoscaling must not be set while pools join over the public internet: "
            "each provider's firewall admits the cluster's nodes by their addresses, and the addresses of the servers "
            "the autoscaler would create are not known beforehand; give the pool a fixed count, got 'min 5, max 10'"
            in found), found


def test_every_node_registers_with_its_public_address(internet):
    addresses = _addresses(internet)
    for node in ("control-plane-1", "general-1", "edge-1"):
        config = k3s_config(internet, node)
        assert config["node-ip"] == addresses[node] == config["node-external-ip"], node
    assert k3s_config(internet, "control-plane-1")["advertise-address"] == addresses["control-plane-1"]
    # AWS translates the public address at its gateway: the instances put it on loopback, where the kubelet finds it.
    user_data = internet.named("edge-1", "aws:ec2/instance:Instance").inputs["userData"]
    assert "meta-data/public-ipv4" in user_data and 'ip address replace "$address/32" dev lo' in user_data


def test_cilium_tunnels_and_encrypts_over_the_internet(internet):
    values = internet.named("cilium", "kubernetes:helm.sh/v3:Release").inputs["values"]
    assert values["routingMode"] == "tunnel" and values["tunnelProtocol"] == "vxlan"
    assert values["encryption"] == {"enabled": True, "type": "wireguard", "nodeEncryption": True}
    assert values["MTU"] == 1450  # the Hetzner network's, below the internet's 1500


def test_the_hetzner_firewall_admits_exactly_the_cluster_nodes_on_exactly_the_cluster_ports(internet):
    addresses = _addresses(internet)
    everyone = sorted(f"{a}/32" for a in addresses.values())
    servers = sorted(f"{a}/32" for n, a in addresses.items() if n.startswith("control-plane"))
    firewall = internet.named("firewall-peers", "hcloud:index/firewall:Firewall").inputs
    rules = {(r["protocol"], r.get("port")): sorted(r["sourceIps"]) for r in firewall["rules"]}
    assert rules == {("tcp", "6443"): everyone, ("tcp", "10250"): everyone, ("tcp", "2379-2380"): servers,
                     ("udp", "51871"): everyone, ("tcp", "4240"): everyone, ("icmp", None): everyone,
                     **{port: everyone for port in METRICS_PORTS}}
    attached = internet.named("firewall-peers", "hcloud:index/firewallAttachment:FirewallAttachment").inputs
    assert len(attached["serverIds"]) == len([r for r in internet.resources if r.type == "hcloud:index/server:Server"])
    # The public firewall is unchanged: nothing new from 0.0.0.0/0.
    public = internet.named("firewall", "hcloud:index/firewall:Firewall").inputs["rules"]
    assert {r.get("port") for r in public if "0.0.0.0/0" in r["sourceIps"]} == {"80", "443"}


def test_the_aws_security_group_admits_exactly_the_cluster_nodes_on_the_agents_ports(internet):
    addresses = _addresses(internet)
    peers = [r.inputs for r in internet.resources if r.type == SG_RULE and r.name.startswith("nodes-in-peer-")]
    found = sorted((r["ipProtocol"], r["fromPort"], r["toPort"], r["cidrIpv4"]) for r in peers)
    # AWS runs no K3s server here: no API or etcd rule; every node of both providers on the agents' ports, the
    # servers alone on the host metrics ports.
    expected = sorted([*((protocol, low, high, f"{a}/32") for protocol, low, high in
                         (("tcp", 10250, 10250), ("udp", 51871, 51871), ("tcp", 4240, 4240), ("icmp", -1, -1))
                         for a in addresses.values()),
                       *(("tcp", low, high, f"{a}/32") for low, high in ((9100, 9100), (9962, 9963), (9965, 9965))
                         for n, a in addresses.items() if n.startswith("control-plane"))])
    assert found == expected
    assert not any(r.get("cidrIpv4") == "0.0.0.0/0" and r["fromPort"] not in (80, 443)
                   for r in (x.inputs for x in internet.resources if x.type == SG_RULE))


def test_the_aws_nodes_carry_provider_and_zone_labels_and_no_cloud_provider_flag(internet):
    edge = k3s_config(internet, "edge-1")
    assert f"{PROVIDER_LABEL}=aws" in edge["node-label"]
    assert "topology.kubernetes.io/zone=eu-central-1a" in edge["node-label"]
    # No AWS CCM names the region either: the kubelet sets it as that CCM would (the stack's aws:region).
    assert "topology.kubernetes.io/region=eu-central-1" in edge["node-label"]
    assert nodes_without_topology(internet) == {}
    # No AWS CCM runs (the stack's add-ons are Hetzner's): a kubelet waiting for one would stay tainted.
    assert "cloud-provider=external" not in edge["kubelet-arg"]
    assert "cloud-provider=external" in k3s_config(internet, "general-1")["kubelet-arg"]


def test_hetzner_volumes_stay_on_hetzner_nodes_and_no_aws_add_on_is_installed(internet):
    sc = internet.named("storage-class-hcloud-volumes", "kubernetes:storage.k8s.io/v1:StorageClass").inputs
    assert sc["allowedTopologies"] == [{"matchLabelExpressions": [
        {"key": "instance.hetzner.cloud/provided-by", "values": ["cloud"]}]}]
    csi = internet.named("hcloud-csi", "kubernetes:helm.sh/v3:Release").inputs["values"]
    assert csi["node"]["nodeSelector"] == {PROVIDER_LABEL: "hetzner"}
    releases = {r.name for r in internet.resources if r.type == "kubernetes:helm.sh/v3:Release"}
    assert not releases & {"aws-ccm", "aws-ebs-csi"}


def _internet_problems(values: dict[str, Any], settings: dict[str, str] = AWS_SETTINGS) -> list[str]:
    from config import ConfigError
    with pytest.raises(ConfigError) as err:
        run_internet(values, settings=settings)
    assert mockrun.last_monitor.recorded == [], "nothing is created before the config is valid"
    return [str(p) for p in err.value.problems]


def test_converged_pools_on_the_other_cloud_are_refused_naming_the_accepted_roles():
    values = internet_raw()
    values["cluster"]["pools"].append({"name": "mixed", "role": "converged", "count": 3, "provider": "aws"})
    found = _internet_problems(values)
    assert any(p.startswith("adplatform:cluster.pools[mixed].role must be one of general, scylladb, redpanda, "
                            "clickhouse, stateful on provider aws: the hetzner volumes do not attach there")
               and p.endswith("'converged'") for p in found), found


def test_a_store_whose_pools_claim_two_providers_volumes_is_refused():
    # One store, one StorageClass: a second redpanda pool on AWS next to production's on Hetzner Cloud.
    values = internet_raw()
    values["cluster"]["pools"].append({"name": "redpanda-aws", "role": "redpanda", "count": 3, "size": "dedicated-large", "provider": "aws"})
    found = _internet_problems(values)
    assert any(p.startswith("adplatform:cluster.pools must put the redpanda pools, where redpanda keeps its volumes, "
                            "on providers whose volumes attach to all of them")
               and "'redpanda: hetzner, redpanda-aws: aws'" in p for p in found), found


def test_an_autoscaled_pool_on_the_other_cloud_is_refused():
    values = internet_raw()
    values["cluster"]["pools"][1]["autoscaling"] = {"min": 2, "max": 4}
    values["cluster"]["pools"][1].pop("count")
    found = _internet_problems(values)
    # (config/rules.py: only the stack's provider autoscales; the firewalls could not name such nodes either)
    assert any(p.startswith("adplatform:cluster.pools[edge].autoscaling must not be set on a pool of provider 'aws'")
               for p in found), found


# --- pools on GCP and Azure, over the public internet (one run with both) ---------------------------

CLOUDS_SETTINGS = {"hcloud:token": "test-token", "gcp:project": "adp-test", "gcp:region": "europe-west3",
                   "azure-native:location": "westeurope"}
GCE = {"name": "gce", "role": "general", "count": 2, "provider": "gcp", "locations": ["europe-west3-a", "europe-west3-b"]}
AZ = {"name": "az", "role": "general", "count": 2, "provider": "azure", "locations": ["1", "2"]}
GCP_FIREWALL = "gcp:compute/firewall:Firewall"
NSG_RULE = "azure-native:network:SecurityRule"
AGENT_PORTS = {("tcp", "10250"), ("udp", "51871"), ("tcp", "4240"), ("icmp", None)}  # no K3s server there


def clouds_raw() -> dict[str, Any]:
    """Production on Hetzner Cloud with a stateless pool on GCP and one on Azure."""
    return base_raw(cluster={**OVER_INTERNET, "pools": [dict(FIXED_GENERAL), dict(GCE), dict(AZ)]})


@pytest.fixture(scope="module")
def clouds() -> mockrun.Run:
    """Without the data plane: the tests read nodes, K3s, firewalls and the cluster services' releases."""
    return run_internet({**clouds_raw(), "layers": UP_TO_SERVICES}, stack="production-internet",
                        settings=CLOUDS_SETTINGS)


def _everyone(run: mockrun.Run) -> list[str]:
    return sorted(f"{a}/32" for a in _addresses(run).values())


def _servers(run: mockrun.Run) -> list[str]:
    return sorted(f"{a}/32" for n, a in _addresses(run).items() if n.startswith("control-plane"))


def test_gcp_and_azure_build_their_own_parts_and_their_nodes_register_with_public_addresses(clouds):
    assert {r.name for r in clouds.of_type("gcp:compute/instance:Instance")} == {"gce-1", "gce-2"}
    assert {r.name for r in clouds.of_type("azure-native:compute:VirtualMachine")} == {"az-1", "az-2"}
    addresses = _addresses(clouds)
    for node in ("gce-1", "az-2", "general-1"):
        config = k3s_config(clouds, node)
        assert config["node-ip"] == addresses[node] == config["node-external-ip"], node
        assert config["server"] == f"https://{_balancer(clouds)}:6443", node  # the public balancer


def test_gcp_and_azure_nodes_register_region_and_zone_as_their_ccms_name_them(clouds):
    assert nodes_without_topology(clouds) == {}
    topology = {node: (labels["topology.kubernetes.io/region"], labels["topology.kubernetes.io/zone"])
                for node in ("gce-1", "gce-2", "az-1", "az-2") for labels in [node_labels(clouds, node)]}
    # Azure's CCM names a zonal VM's zone <location>-<zone>, never the bare zone number.
    assert topology == {"gce-1": ("europe-west3", "europe-west3-a"), "gce-2": ("europe-west3", "europe-west3-b"),
                        "az-1": ("westeurope", "westeurope-1"), "az-2": ("westeurope", "westeurope-2")}


def test_gcp_nodes_put_their_public_address_on_loopback_from_the_metadata_server(clouds):
    user_data = clouds.named("gce-1", "gcp:compute/instance:Instance").inputs["metadata"]["user-data"]
    boot = [" ".join(c) for c in yaml.safe_load(user_data)["bootcmd"]]
    assert any("Metadata-Flavor:Google http://metadata.google.internal/computeMetadata/v1/instance/network-interfaces/"
               "0/access-configs/0/external-ip" in c and c.endswith(cloud.LOOPBACK_ADDRESS) for c in boot), boot
    assert any("provider-id=gce://" in c for c in boot)  # still written


def test_azure_nodes_put_their_static_public_address_on_loopback_from_custom_data(clouds):
    # Not from IMDS: it leaves Standard SKU public IPs out. The address is the VM's own, quoted.
    address = _addresses(clouds)["az-1"]
    custom = clouds.named("az-1", "azure-native:compute:VirtualMachine").inputs["osProfile"]["customData"]
    boot = yaml.safe_load(base64.b64decode(custom).decode())["bootcmd"]
    assert boot == [["sh", "-c", f"address={address} && {cloud.LOOPBACK_ADDRESS}"]]


def test_the_gcp_firewall_admits_exactly_the_cluster_nodes_on_the_agents_ports(clouds):
    peers = [r.inputs for r in clouds.of_type(GCP_FIREWALL) if "-in-peers-" in r.inputs["name"]]
    rules = {(r["allows"][0]["protocol"], (r["allows"][0].get("ports") or [None])[0]): sorted(r["sourceRanges"])
             for r in peers}
    assert rules == {**{port: _everyone(clouds) for port in AGENT_PORTS},
                     **{port: _servers(clouds) for port in METRICS_PORTS}}  # no server here: they alone
    assert all(r["targetTags"] == ["adp-production-internet-node"] and r["direction"] == "INGRESS" for r in peers)


def test_the_azure_nsg_admits_exactly_the_cluster_nodes_on_the_agents_ports_at_unique_priorities(clouds):
    peers = [r.inputs for r in clouds.of_type(NSG_RULE) if r.name.startswith("nsg-peers-")]
    rules = {(r["protocol"].lower(), None if r["destinationPortRange"] == "*" else r["destinationPortRange"]):
             sorted(r["sourceAddressPrefixes"]) for r in peers}
    assert rules == {**{port: _everyone(clouds) for port in AGENT_PORTS},
                     **{port: _servers(clouds) for port in METRICS_PORTS}}  # no server here: they alone
    assert all(r["access"] == "Allow" and r["direction"] == "Inbound" for r in peers)
    priorities = [r.inputs["priority"] for r in clouds.of_type(NSG_RULE)]
    assert len(priorities) == len(set(priorities)) and max(priorities) < 300  # below the CCM's (500 up)


def test_the_hetzner_firewall_admits_the_gcp_and_azure_nodes(clouds):
    firewall = clouds.named("firewall-peers", "hcloud:index/firewall:Firewall").inputs
    rules = {(r["protocol"], r.get("port")): sorted(r["sourceIps"]) for r in firewall["rules"]}
    assert rules[("udp", "51871")] == rules[("tcp", "10250")] == _everyone(clouds)
    addresses = _addresses(clouds)
    assert {f"{addresses[n]}/32" for n in ("gce-1", "gce-2", "az-1", "az-2")} <= set(rules[("tcp", "6443")])


def test_gcp_and_azure_nodes_carry_provider_and_zone_labels_and_no_cloud_provider_flag(clouds):
    for node, provider, zone in (("gce-1", "gcp", "europe-west3-a"), ("az-2", "azure", "westeurope-2")):
        config = k3s_config(clouds, node)
        assert f"{PROVIDER_LABEL}={provider}" in config["node-label"], node
        assert f"topology.kubernetes.io/zone={zone}" in config["node-label"], node
        assert "cloud-provider=external" not in config.get("kubelet-arg", []), node
    releases = {r.name for r in clouds.of_type("kubernetes:helm.sh/v3:Release")}
    assert not releases & {"azure-ccm", "azuredisk-csi"}
    assert not clouds.of_type("kubernetes:kustomize/v2:Directory")  # stateless pools only: no PD CSI driver


def test_a_stateless_azure_part_gets_no_identity_and_no_cloud_rights(clouds):
    # No disk driver runs for stateless pools, and no CCM for a secondary: nothing there uses Azure's API.
    vms = [r.inputs for r in clouds.of_type("azure-native:compute:VirtualMachine")]
    # Said explicitly: a VM of an earlier version of the stack held the cluster identity, which an update must remove.
    assert vms and all(vm["identity"] == {"type": "None"} for vm in vms)
    assert not clouds.of_type("azure-native:authorization:RoleDefinition")
    assert not clouds.of_type("azure-native:managedidentity:UserAssignedIdentity")


def test_a_converged_pool_on_azure_is_refused_naming_the_accepted_roles():
    values = clouds_raw()
    values["cluster"]["pools"].append({"name": "mixed", "role": "converged", "count": 3, "provider": "azure"})
    found = _internet_problems(values, CLOUDS_SETTINGS)
    assert any(p.startswith("adplatform:cluster.pools[mixed].role must be one of general, scylladb, redpanda, "
                            "clickhouse, stateful on provider azure: the hetzner volumes do not attach there")
               and p.endswith("'converged'") for p in found), found


# --- the firewalls' documented limits ---------------------------------------------------------------

def test_more_peers_than_the_aws_security_group_holds_are_refused_naming_the_numbers():
    values = internet_raw()
    # production's 22 nodes: 4 agent ports x 22 peers + 3 host metrics ports x 3 servers + the group's own 6
    del values["cluster"]["firewallQuotas"]
    found = _internet_problems(values)
    assert any(p.startswith("adplatform:cluster.pools must hold fewer nodes in a cluster over the public internet: "
                            "admitting all 22 nodes (3 K3s servers) on the cluster ports takes 103 inbound IPv4 rules "
                            "of the nodes' security group") and "on provider aws, above its limit of 60 (the "
               "documented default 60; where your quota is higher, set cluster.firewallQuotas.aws)" in p
               and "'22 nodes'" in p for p in found), found


def test_a_firewall_quota_for_a_provider_without_one_is_refused():
    values = internet_raw()
    values["cluster"]["firewallQuotas"] = {"hetzner": 100}
    found = _internet_problems(values)
    assert any(p.startswith("adplatform:cluster.firewallQuotas.hetzner must name a provider whose firewall limit a "
                            "cluster over the public internet is checked against (aws, gcp, azure)") for p in found), found


def _aws_part(admin_cidrs: list[str], public_balancer: bool) -> Any:
    """What the AWS quota reads of a part's config: adminCidrs and the API balancer."""
    balancer = type("Balancer", (), {"enabled": True, "public": public_balancer})()
    return type("Cfg", (), {"admin_cidrs": admin_cidrs,
                            "cluster": type("Cluster", (), {"api_load_balancer": balancer})()})()


def test_the_aws_count_is_the_groups_inbound_ipv4_rules():
    cfg = _aws_part(["203.0.113.0/24", "2001:db8::/32"], public_balancer=False)
    rules = hybrid.peer_rules(False, [f"n{i}" for i in range(10)], ["n0"])
    # PORTS from IPv4 sources (80, 443 from 0.0.0.0/0; SSH, 6443, ICMP from the IPv4 admin CIDR), the members
    # rule, 4 agent ports x 10 peers, 3 host metrics ports x the 1 server.
    own = sum(not r.ipv6 for r in cloud.ingress_rules(cfg.admin_cidrs))
    assert aws.inbound_ipv4_rules(cfg, rules) == own + 1 + 40 + 3
    assert aws.Aws.peer_quota.limit == 60


def test_the_gcp_and_azure_limits_count_what_their_docs_limit():
    rules = [(CLUSTER_PORTS[0], ["a", "b", "c"]), (CLUSTER_PORTS[2], ["a"])]
    assert gcp.Gcp.peer_quota.used(None, rules) == 3 and gcp.Gcp.peer_quota.limit == 5000  # ranges in one rule
    cfg = type("Cfg", (), {"admin_cidrs": ["203.0.113.0/24"]})()
    own = sum(len(r["source_address_prefixes"]) for r in azure.nsg_rules(cfg.admin_cidrs)) + 1  # + the VNet
    assert azure.Azure.peer_quota.used(cfg, rules) == own + 4 and azure.Azure.peer_quota.limit == 4000


# --- GCP as the stack's provider, with a pool on AWS ------------------------------------------------

def test_a_gcp_stack_with_an_aws_pool_admits_servers_ports_and_registers_its_own_nodes_publicly():
    # The stack provider's nodes register with their public addresses too: GCE's K3s servers put theirs on lo.
    # One K3s server and no public balancer (staging's): every node joins at the server's public address.
    values = base_raw(provider="gcp", profile="staging", cluster={"controlPlane": {"count": 1},
                                                                  "pools": [dict(EDGE, count=1, locations=None)]})
    run = run_internet({**values, "layers": UP_TO_SERVICES}, stack="staging-internet",  # nodes and firewalls only
                       settings={**CLOUDS_SETTINGS, **AWS_SETTINGS})
    user_data = run.named("control-plane-1", "gcp:compute/instance:Instance").inputs["metadata"]["user-data"]
    assert any(" ".join(c).endswith(cloud.LOOPBACK_ADDRESS) for c in yaml.safe_load(user_data)["bootcmd"])
    addresses = {host.removeprefix("adp-staging-internet-"): node["publicIp"]
                 for host, node in run.outputs["nodes"].items()}
    everyone = sorted(f"{a}/32" for a in addresses.values())
    servers = sorted(f"{a}/32" for n, a in addresses.items() if n.startswith("control-plane"))
    peers = [r.inputs for r in run.of_type(GCP_FIREWALL) if "-in-peers-" in r.inputs["name"]]
    rules = {(r["allows"][0]["protocol"], (r["allows"][0].get("ports") or [None])[0]): sorted(r["sourceRanges"])
             for r in peers}
    assert rules == {**{port: everyone for port in AGENT_PORTS | METRICS_PORTS}, ("tcp", "6443"): everyone,
                     ("tcp", "2379-2380"): servers}


# --- three K3s servers on an AWS or Azure stack, with a pool on Hetzner over the internet ------------------

HZ = {"name": "hz", "role": "general", "count": 2, "provider": "hetzner", "locations": ["fsn1", "nbg1"]}
PUBLIC_BALANCER = {"enabled": True, "public": True}
SG_EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"


def primary_raw(provider: str, **cluster: Any) -> dict[str, Any]:
    """Staging (3 K3s servers, 6 agents) on `provider` with its public API balancer and 2 agents on Hetzner Cloud."""
    return base_raw(provider=provider, profile="staging",
                    cluster={"apiLoadBalancer": dict(PUBLIC_BALANCER), "pools": [dict(HZ)], **cluster})


@pytest.fixture(scope="module")
def aws_primary() -> mockrun.Run:
    # 11 nodes take 64 rules in the nodes' security group: above the default 60, so the raised quota is stated.
    values = primary_raw("aws", location="eu-central-1a", firewallQuotas={"aws": 100})
    return run_internet({**values, "layers": UP_TO_SERVICES}, stack="staging-internet")


@pytest.fixture(scope="module")
def azure_primary() -> mockrun.Run:
    return run_internet({**primary_raw("azure"), "layers": UP_TO_SERVICES}, stack="staging-internet",
                        settings={"azure-native:location": "westeurope", "hcloud:token": "test-token"})


def _joins_at_the_public_balancer(run: mockrun.Run) -> None:
    addresses, balancer = _addresses(run), _balancer(run)
    assert len([n for n in addresses if n.startswith("control-plane-")]) == 3
    assert balancer and balancer != addresses["control-plane-1"]
    joined = [n for n in addresses if n != "control-plane-1"]
    assert {"control-plane-2", "control-plane-3", "general-1", "hz-1", "hz-2"} <= set(joined)
    assert {n: k3s_config(run, n)["server"] for n in joined} == {n: f"https://{balancer}:6443" for n in joined}
    assert balancer in k3s_config(run, "control-plane-1")["tls-san"]


def test_an_aws_stack_over_the_internet_runs_three_servers_and_every_node_joins_at_its_public_nlb(aws_primary):
    _joins_at_the_public_balancer(aws_primary)
    nlb = aws_primary.named("api-public", "aws:lb/loadBalancer:LoadBalancer").inputs
    assert nlb["internal"] is False and nlb["loadBalancerType"] == "network"


def test_the_aws_public_nlb_admits_exactly_the_admin_cidrs_and_every_node_on_6443(aws_primary):
    # The NLB's security group filters on the client's address; nothing else in it admits anyone.
    group = aws_primary.named("api-public-lb-out", SG_EGRESS).inputs["securityGroupId"]
    rules = [r for r in aws_primary.of_type(SG_RULE) if r.inputs["securityGroupId"] == group]
    assert {(r.inputs["ipProtocol"], r.inputs["fromPort"], r.inputs["toPort"]) for r in rules} == {("tcp", 6443, 6443)}
    assert sorted(r.inputs["cidrIpv4"] for r in rules) == sorted(["203.0.113.0/24", *_everyone(aws_primary)])
    peers = [r.inputs for r in rules if r.name.startswith("api-public-lb-in-peer-")]
    assert len(peers) == 11 and all(p["description"].startswith(PEER_MARK) for p in peers)
    # The servers admit the balancer's group (client IP preservation off), the nodes' group every node on 6443.
    from_nlb = aws_primary.named("nodes-in-api-public-lb", SG_RULE).inputs
    assert from_nlb["referencedSecurityGroupId"] == group and from_nlb["fromPort"] == 6443


def test_an_azure_stack_over_the_internet_runs_three_servers_and_every_node_joins_at_its_public_balancer(
        azure_primary):
    _joins_at_the_public_balancer(azure_primary)
    address = azure_primary.named("api-public-ip", "azure-native:network:PublicIPAddress").inputs
    assert address["publicIPAllocationMethod"] == "Static"


def test_the_azure_nsg_admits_exactly_the_admin_cidrs_and_every_node_on_6443(azure_primary):
    # A Standard load balancer passes the client's address: the NSG on the nodes' subnet decides who reaches 6443.
    def covers_api(rule: dict) -> bool:
        ports = rule["destinationPortRange"]
        low, _, high = ports.partition("-")
        return rule["protocol"] in ("Tcp", "*") and (ports == "*" or int(low) <= 6443 <= int(high or low))
    rules = [r.inputs for r in azure_primary.of_type(NSG_RULE) if covers_api(r.inputs)]
    assert all(r["access"] == "Allow" and r["direction"] == "Inbound" for r in rules)
    sources = sorted(p for r in rules for p in r["sourceAddressPrefixes"])
    # ... and the VNet's private range (the cluster network's own rule), which no address on the internet has.
    vnet = azure_primary.named("vnet", "azure-native:network:VirtualNetwork").inputs["addressSpace"]["addressPrefixes"]
    assert sources == sorted(["203.0.113.0/24", *_everyone(azure_primary), *vnet])
    peers = next(r for r in rules if r["securityRuleName"] == "peers-tcp-6443")
    assert peers["description"].startswith(PEER_MARK)


def test_an_azure_stacks_disk_driver_and_classes_stay_on_its_own_nodes_and_its_class_is_the_default(azure_primary):
    # The Hetzner nodes have no Azure VM to attach to and no managed identity for the controller to use.
    values = _disk_driver(azure_primary)["values"]
    assert values["linux"]["nodeSelector"] == {PROVIDER_LABEL: "azure"}
    # The controller on the Azure servers, the only VMs carrying its identity, dedicated ones included.
    assert values["controller"]["nodeSelector"] == {PROVIDER_LABEL: "azure",
                                                    "node-role.kubernetes.io/control-plane": "true"}
    key, rest = CONTROL_PLANE_TAINT.split("=")
    value, effect = rest.split(":")
    assert any(t.get("key") == key and t.get("operator") == "Exists" and t.get("effect", effect) == effect
               for t in values["controller"].get("tolerations", [])), values["controller"].get("tolerations")
    premium = _class(azure_primary, "azure-disk-premium")
    assert premium["allowedTopologies"] == [{"matchLabelExpressions": [{
        "key": "topology.disk.csi.azure.com/zone", "values": ["westeurope-1", "westeurope-2", "westeurope-3"]}]}]
    assert premium["metadata"]["annotations"][DEFAULT_CLASS] == "true"
    assert json.loads(azure_primary.named(azure.CLOUD_CONFIG_SECRET, "kubernetes:core/v1:Secret").inputs[
        "stringData"].value["cloud-config"])["securityGroupName"]  # the CCM's azure.json, as before


@pytest.mark.parametrize("which", ["aws_primary", "azure_primary", "gcp_primary"])
def test_the_policy_pack_passes_on_stacks_with_three_servers_over_the_internet(which, request):
    assert model.build(request.getfixturevalue(which))["policy"]["violations"] == []


def test_the_aws_balancers_security_group_counts_against_the_quota_too():
    cfg = _aws_part(["203.0.113.0/24", "198.51.100.0/24", "2001:db8::/32"], public_balancer=True)
    rules = hybrid.peer_rules(True, [f"n{i}" for i in range(10)], ["n0", "n1", "n2"])
    assert aws.api_balancer_ipv4_rules(cfg, rules) == 2 + 10  # the IPv4 admin CIDRs, every node on 6443
    nodes = sum(not r.ipv6 for r in cloud.ingress_rules(cfg.admin_cidrs)) + 1 + sum(len(p) for _port, p in rules)
    assert aws.inbound_ipv4_rules(cfg, rules) == max(nodes, 12) == nodes  # the nodes' group is the fuller one
    assert aws.api_balancer_ipv4_rules(_aws_part(cfg.admin_cidrs, public_balancer=False), rules) == 0


# --- three K3s servers on a GCP stack, with a pool on Hetzner over the internet -----------------------------
# GCP's public balancer is passthrough and does not serve its own backends (providers/gcp.py): the GCP servers join at
# the internal proxy balancer, as on a GCP-only stack; every other node at the public balancer.

GCP_FORWARDING_RULE = "gcp:compute/forwardingRule:ForwardingRule"


@pytest.fixture(scope="module")
def gcp_primary() -> mockrun.Run:
    return run_internet({**primary_raw("gcp"), "layers": UP_TO_SERVICES}, stack="staging-internet",
                        settings=CLOUDS_SETTINGS)


def _gcp_balancers(run: mockrun.Run) -> tuple[str, str]:
    """(internal, public): the addresses of GCP's API forwarding rules."""
    internal, public = (run.named(name, GCP_FORWARDING_RULE).inputs for name in ("api-internal", "api-public"))
    assert (internal["loadBalancingScheme"], public["loadBalancingScheme"]) == ("INTERNAL_MANAGED", "EXTERNAL")
    return internal["ipAddress"], public["ipAddress"]


def test_a_gcp_stack_over_the_internet_joins_its_servers_at_the_internal_balancer_and_other_nodes_at_the_public(
        gcp_primary):
    internal, public = _gcp_balancers(gcp_primary)
    assert internal and public and internal != public and public == _balancer(gcp_primary)
    servers = {n: k3s_config(gcp_primary, n) for n in ("control-plane-1", "control-plane-2", "control-plane-3")}
    first = servers.pop("control-plane-1")
    assert first.get("cluster-init") is True and "server" not in first  # the first server still starts the cluster
    assert {n: c["server"] for n, c in servers.items()} == {n: f"https://{internal}:6443" for n in servers}
    agents = [n for n in _addresses(gcp_primary) if not n.startswith("control-plane-")]
    assert {"general-1", "hz-1", "hz-2"} <= set(agents)  # GCP's own agents and Hetzner's
    assert {n: k3s_config(gcp_primary, n)["server"] for n in agents} == {n: f"https://{public}:6443" for n in agents}
    assert {internal, public} <= set(first["tls-san"])  # the certificate names both
    # The first server probes the internal balancer before it would start a second cluster.
    script = gcp_primary.named("k3s-control-plane-1", COMMAND).inputs["stdin"].value
    assert script_param(script, "EXISTING_CLUSTER_PROBE") == f"https://{internal}:6443/cacerts"


def test_gcp_drains_reach_the_api_where_each_node_joined(gcp_primary):
    internal, public = _gcp_balancers(gcp_primary)
    drains = {r.name.removeprefix("drain-"): r.inputs["stdin"].value
              for r in gcp_primary.of_type(COMMAND) if r.name.startswith("drain-")}
    for node, script in drains.items():
        joined, other = (internal, public) if node.startswith("control-plane-") else (public, internal)
        assert f"https://{joined}:6443" in script and f"https://{other}:6443" not in script, node
    assert {"control-plane-1", "hz-1"} <= set(drains)


def test_the_gcp_firewall_admits_every_node_on_6443_and_the_servers_on_etcd(gcp_primary):
    # The public balancer is passthrough: its backends see each joining node's own address, which the peer rule on
    # 6443 names, Hetzner's nodes included.
    addresses = _addresses(gcp_primary)
    servers = sorted(f"{a}/32" for n, a in addresses.items() if n.startswith("control-plane-"))
    peers = [r.inputs for r in gcp_primary.of_type(GCP_FIREWALL) if "-in-peers-" in r.inputs["name"]]
    rules = {(r["allows"][0]["protocol"], (r["allows"][0].get("ports") or [None])[0]): sorted(r["sourceRanges"])
             for r in peers}
    assert rules == {**{port: _everyone(gcp_primary) for port in AGENT_PORTS | METRICS_PORTS},
                     ("tcp", "6443"): _everyone(gcp_primary),
                     ("tcp", "2379-2380"): servers}
    assert {f"{addresses[n]}/32" for n in ("hz-1", "hz-2")} <= set(rules[("tcp", "6443")])
    assert all(r["targetTags"] == ["adp-staging-internet-node"] for r in peers)
    # ... and the servers, the balancers' backends, carry that tag.
    tags = gcp_primary.named("control-plane-2", "gcp:compute/instance:Instance").inputs["tags"]
    assert "adp-staging-internet-node" in tags


def test_a_gcp_stack_with_several_servers_over_the_internet_needs_its_public_balancer():
    values = primary_raw("gcp", apiLoadBalancer={"enabled": True, "public": False})
    found = _internet_problems(values, CLOUDS_SETTINGS)
    assert any(p.startswith("adplatform:cluster.apiLoadBalancer.public must be true (with apiLoadBalancer.enabled) "
                            "on a stack provider whose public API balancer the other providers' nodes reach (hetzner, "
                            "aws, gcp, azure) when pools join over the public internet with 3 K3s servers")
               and p.endswith("got 'False on provider gcp'") for p in found), found


# --- Hetzner Cloud as the other provider (an AWS stack with a pool on Hetzner) -----------------------

def test_hetzner_nodes_of_another_providers_cluster_register_region_and_zone_as_hetzners_ccm_names_them():
    # No Hetzner CCM initialises them (only the stack provider's add-ons run): the kubelet sets what it would.
    hetzner_pool = {"name": "hz", "role": "general", "count": 2, "provider": "hetzner", "locations": ["fsn1", "nbg1"]}
    # The server's part admits every node on the host metrics ports too: above AWS' default 60 rules.
    values = base_raw(provider="aws", profile="staging", cluster={
        "location": "eu-central-1a", "controlPlane": {"count": 1}, "firewallQuotas": {"aws": 100},
        "pools": [{"name": "general", "autoscaling": None, "count": 1}, hetzner_pool]})
    run = run_internet({**values, "layers": UP_TO_SERVICES}, stack="staging-internet")
    assert nodes_without_topology(run) == {}
    labels = {n: node_labels(run, n) for n in ("hz-1", "hz-2")}
    where = {n: (each["topology.kubernetes.io/region"], each["topology.kubernetes.io/zone"]) for n, each in labels.items()}
    assert where == {"hz-1": ("fsn1", "fsn1-dc14"), "hz-2": ("nbg1", "nbg1-dc3")}
    assert "cloud-provider=external" not in k3s_config(run, "hz-1")["kubelet-arg"]


# --- storage per provider: AWS and GCP pools with data, over the public internet ----------------------

STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"


def storage_raw() -> dict[str, Any]:
    """Production on Hetzner Cloud with its stateful pool (PostgreSQL, DragonflyDB, the object store) on AWS."""
    values = internet_raw()
    values["cluster"]["pools"].append({"name": "stateful", "provider": "aws",
                                       "locations": ["eu-central-1a", "eu-central-1b", "eu-central-1c"]})
    values["cluster"]["firewallQuotas"] = {"aws": 200}
    return values


@pytest.fixture(scope="module")
def stores_on_aws() -> mockrun.Run:
    return run_internet(storage_raw(), stack="production-internet")


def _class(run: mockrun.Run, name: str) -> dict[str, Any]:
    return run.named(f"storage-class-{name}", STORAGE_CLASS).inputs


def test_the_aws_pools_run_their_own_ebs_driver_on_aws_nodes_only(stores_on_aws):
    values = stores_on_aws.named("aws-ebs-csi", "kubernetes:helm.sh/v3:Release").inputs["values"]
    assert values["node"]["nodeSelector"] == values["controller"]["nodeSelector"] == {PROVIDER_LABEL: "aws"}
    # No AWS CCM sets a providerID: the node plugin asks IMDS, from the host network (agents' hop limit 1).
    assert (values["node"]["metadataSources"], values["node"]["hostNetwork"]) == ("imds", True)
    # The controller's key: the Secret the chart reads by default (awsAccessSecret: aws-secret, key_id, access_key),
    # holding an access key of a user with exactly the EBS policy.
    secret = stores_on_aws.named("aws-ebs-csi-credential", "kubernetes:core/v1:Secret").inputs
    assert "awsAccessSecret" not in values and secret["metadata"]["name"] == "aws-secret"
    assert set(secret["stringData"].value) == {"key_id", "access_key"}  # kept secret
    assert secret["metadata"]["namespace"] == "kube-system"
    policies = [r.inputs for r in stores_on_aws.of_type("aws:iam/userPolicyAttachment:UserPolicyAttachment")]
    assert [p["policyArn"] for p in policies] == [aws.EBS_CSI_POLICY]
    agents = [r.inputs for r in stores_on_aws.of_type("aws:ec2/instance:Instance")]
    assert agents and all(not a.get("iamInstanceProfile") for a in agents)  # no role any pod could borrow
    # nor one for the CCM, the autoscaler or an EBS controller on an instance profile, none of which runs there
    assert not stores_on_aws.of_type("aws:iam/role:Role") and not stores_on_aws.of_type(
        "aws:iam/instanceProfile:InstanceProfile")


def test_each_providers_classes_name_only_its_own_nodes_and_the_stacks_stay_the_default(stores_on_aws):
    ebs, ebs_xfs = _class(stores_on_aws, "ebs-gp3"), _class(stores_on_aws, "ebs-gp3-xfs")
    zones = ["eu-central-1a", "eu-central-1b", "eu-central-1c"]  # edge's two and stateful's three
    expected = [{"matchLabelExpressions": [{"key": "topology.ebs.csi.aws.com/zone", "values": zones}]}]
    assert ebs["allowedTopologies"] == ebs_xfs["allowedTopologies"] == expected
    assert not (ebs["metadata"].get("annotations") or {}).get(DEFAULT_CLASS)
    hcloud = _class(stores_on_aws, "hcloud-volumes")
    assert hcloud["metadata"]["annotations"][DEFAULT_CLASS] == "true"
    assert hcloud["allowedTopologies"] == [{"matchLabelExpressions": [
        {"key": "instance.hetzner.cloud/provided-by", "values": ["cloud"]}]}]
    defaults = [r for r in stores_on_aws.of_type(STORAGE_CLASS)
                if (r.inputs["metadata"].get("annotations") or {}).get(DEFAULT_CLASS) == "true"]
    assert len(defaults) == 1


def test_a_store_on_the_aws_pool_claims_ebs_and_stores_on_hetzner_keep_hetzner_volumes(stores_on_aws):
    postgres = next(r.inputs for r in stores_on_aws.of_type("kubernetes:postgresql.cnpg.io/v1:Cluster"))
    assert postgres["spec"]["storage"]["storageClass"] == "ebs-gp3"
    assert postgres["spec"]["walStorage"]["storageClass"] == "ebs-gp3"
    redpanda = next(r.inputs for r in stores_on_aws.resources if r.type.endswith(":Redpanda"))
    # Redpanda's pool is on Hetzner Cloud; Scylla Manager's database on the general nodes.
    assert redpanda["spec"]["clusterSpec"]["storage"]["persistentVolume"]["storageClass"] == "hcloud-volumes-xfs"
    manager = stores_on_aws.named("scylla-manager", "kubernetes:helm.sh/v3:Release").inputs["values"]
    assert manager["scylla"]["racks"][0]["storage"]["storageClassName"] == "hcloud-volumes"


@pytest.fixture(scope="module")
def stores_on_clouds() -> mockrun.Run:
    """clouds_raw with ClickHouse on GCP and Redpanda on Azure (production's pools moved there), up to the data plane.
    The Azure nodes stay in zones 1 and 2, so a class naming every zone of the region would show; the region is given
    by its display name, which the driver's azure.json and zones must not repeat."""
    values = clouds_raw()
    values["cluster"]["pools"] += [
        {"name": "clickhouse", "provider": "gcp", "locations": ["europe-west3-a", "europe-west3-b"]},
        {"name": "redpanda", "provider": "azure", "locations": ["1", "2"]}]
    return run_internet({**values, "layers": {"platform": False, "adServices": False}}, stack="production-internet",
                        settings={**CLOUDS_SETTINGS, "azure-native:location": "West Europe"})


def test_the_gcp_pools_run_the_pinned_pd_driver_and_classes_name_only_their_zones(stores_on_clouds):
    driver = stores_on_clouds.named("gcp-pd-csi", "kubernetes:kustomize/v2:Directory").inputs
    assert driver["directory"] == gcp.PD_CSI_HYBRID_KUSTOMIZATION
    pd = _class(stores_on_clouds, "pd-balanced")
    assert pd["allowedTopologies"] == [{"matchLabelExpressions": [
        {"key": "topology.gke.io/zone", "values": ["europe-west3-a", "europe-west3-b"]}]}]
    assert not (pd["metadata"].get("annotations") or {}).get(DEFAULT_CLASS)


def _disk_driver(run: mockrun.Run) -> dict[str, Any]:
    return run.named("azuredisk-csi", "kubernetes:helm.sh/v3:Release").inputs


def test_the_azure_pools_run_their_own_disk_driver_on_azure_nodes_only(stores_on_clouds):
    release = _disk_driver(stores_on_clouds)
    values = release["values"]
    assert values["controller"]["nodeSelector"] == values["linux"]["nodeSelector"] == {PROVIDER_LABEL: "azure"}
    # No K3s server on Azure: the controller runs on the (tainted) Azure database pool, not the control plane.
    assert values["controller"]["tolerations"] == [{"operator": "Exists", "effect": "NoSchedule"}]
    assert values["controller"]["vmType"] == "standard"  # a VM found by its node's name; no scale sets here
    assert release["namespace"] == "kube-system" and values["windows"] == {"enabled": False}
    releases = {r.name for r in stores_on_clouds.of_type("kubernetes:helm.sh/v3:Release")}
    assert "azure-ccm" not in releases  # no Azure CCM runs, and the driver needs none
    # The VM name is the Kubernetes node name, which the controller attaches by (vmType standard).
    vm = stores_on_clouds.named("redpanda-1", "azure-native:compute:VirtualMachine").inputs
    assert vm["vmName"] == k3s_config(stores_on_clouds, "redpanda-1")["node-name"]


def test_the_azure_cloud_config_holds_no_secret_and_only_the_driver_reads_it(stores_on_clouds):
    secret = stores_on_clouds.named(azure.CLOUD_CONFIG_SECRET, "kubernetes:core/v1:Secret").inputs
    config = json.loads(secret["stringData"].value["cloud-config"])  # kept secret all the same
    assert set(config) == {"cloud", "tenantId", "subscriptionId", "resourceGroup", "location", "vmType",
                           "useManagedIdentityExtension", "userAssignedIdentityID", "useInstanceMetadata",
                           "cloudProviderBackoff"}  # no aadClientSecret, no CCM network settings
    assert config["useManagedIdentityExtension"] is True and config["userAssignedIdentityID"]
    # The canonical location: the node plugin reports a zone only if it starts with `<location>-` (westeurope-1).
    assert (config["resourceGroup"], config["location"], config["vmType"]) == (
        "adp-production-internet", "westeurope", "standard")
    values = _disk_driver(stores_on_clouds)["values"]
    assert secret["metadata"] == {"name": "azure-cloud-provider", "namespace": "kube-system"}
    for part in ("controller", "node"):
        assert (values[part]["cloudConfigSecretName"], values[part]["cloudConfigSecretNamespace"]) == (
            "azure-cloud-provider", "kube-system")
    # Nothing else in the program names it: only the driver's service accounts (its chart's RBAC) read it.
    naming = {r.name for r in stores_on_clouds.resources if r.type.startswith("kubernetes:")
              and "azure-cloud-provider" in json.dumps(r.inputs, default=str)}
    assert naming == {"azure-cloud-provider", "azuredisk-csi"}


DISK_DRIVER_ACTIONS = {
    "Microsoft.Compute/disks/read", "Microsoft.Compute/disks/write", "Microsoft.Compute/disks/delete",
    "Microsoft.Compute/locations/DiskOperations/read", "Microsoft.Compute/virtualMachines/read",
    "Microsoft.Compute/virtualMachines/write", "Microsoft.Compute/locations/operations/read",
    "Microsoft.Resources/subscriptions/resourceGroups/read"}


def test_the_azure_identity_holds_exactly_the_disk_drivers_actions_on_its_resource_group(stores_on_clouds):
    roles = [r.inputs for r in stores_on_clouds.of_type("azure-native:authorization:RoleDefinition")]
    assert len(roles) == 1  # no CCM identity, no autoscaler's
    assert [set(p["actions"]) for p in roles[0]["permissions"]] == [DISK_DRIVER_ACTIONS]
    role = stores_on_clouds.named("disk-csi-role", "azure-native:authorization:RoleDefinition")
    group = stores_on_clouds.named("resource-group", "azure-native:resources:ResourceGroup")
    assignment = stores_on_clouds.named("disk-csi-role-assignment", "azure-native:authorization:RoleAssignment")
    assert role.inputs["assignableScopes"] == [role.inputs["scope"]] == [assignment.inputs["scope"]]
    assert group.urn in role.dependencies and group.urn in assignment.dependencies  # the Azure part's group only
    # Every Azure VM carries it (the controller runs on any of them, with the host network's IMDS), and nothing else.
    vms = [r.inputs for r in stores_on_clouds.of_type("azure-native:compute:VirtualMachine")]
    assert vms and all(vm["identity"]["userAssignedIdentities"] == [mockrun._fake_id("disk-csi-identity")]
                       for vm in vms)


def test_the_azure_classes_name_only_the_azure_zones_and_are_not_default(stores_on_clouds):
    expected = [{"matchLabelExpressions": [{"key": "topology.disk.csi.azure.com/zone",
                                            "values": ["westeurope-1", "westeurope-2"]}]}]
    classes = {n: _class(stores_on_clouds, n) for n in ("azure-disk-premium", "azure-disk-premium-xfs",
                                                         "azure-disk-premium-scratch")}
    for name, each in classes.items():
        assert each["provisioner"] == "disk.csi.azure.com", name
        assert each["allowedTopologies"] == expected, name
        assert not (each["metadata"].get("annotations") or {}).get(DEFAULT_CLASS), name
    assert classes["azure-disk-premium-scratch"]["reclaimPolicy"] == "Delete"  # production's twin of a Retain class
    assert classes["azure-disk-premium"]["reclaimPolicy"] == "Retain"
    defaults = [r.name for r in stores_on_clouds.of_type(STORAGE_CLASS)
                if (r.inputs["metadata"].get("annotations") or {}).get(DEFAULT_CLASS) == "true"]
    assert defaults == ["storage-class-hcloud-volumes"]


def test_a_store_on_the_azure_pool_claims_the_azure_class(stores_on_clouds):
    redpanda = next(r.inputs for r in stores_on_clouds.resources if r.type.endswith(":Redpanda"))
    assert redpanda["spec"]["clusterSpec"]["storage"]["persistentVolume"]["storageClass"] == "azure-disk-premium-xfs"


def test_the_hybrid_pd_kustomization_pins_controller_and_node_plugin_to_gcp_nodes():
    kustomization = yaml.safe_load((ROOT / gcp.PD_CSI_HYBRID_KUSTOMIZATION / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["../gcp-pd-csi"]  # the pinned driver, nothing else
    pinned = {p["target"]["name"]: yaml.safe_load(p["patch"])["spec"]["template"]["spec"]
              for p in kustomization["patches"]}
    assert {name: spec["nodeSelector"] for name, spec in pinned.items()} == {
        "csi-gce-pd-controller": {PROVIDER_LABEL: "gcp"}, "csi-gce-pd-node": {PROVIDER_LABEL: "gcp"}}


def test_a_store_pool_on_gcp_gets_the_gcp_class():
    from providers.base import Storage
    storage = Storage("hcloud-volumes", [], "hcloud-volumes-xfs",
                      pool_classes={"redpanda-gce": ("pd-balanced", "pd-balanced-xfs")})
    assert storage.classes_of(["redpanda-gce"]) == ("pd-balanced", "pd-balanced-xfs")
    assert storage.classes_of(["general", "gce"]) == ("hcloud-volumes", "hcloud-volumes-xfs")


@pytest.mark.parametrize("which", ["stores_on_aws", "stores_on_clouds"])
def test_the_policy_pack_passes_with_stores_on_other_clouds(which, request):
    # Every rule, the peers' firewall rules (single nodes on the cluster ports), the EBS and Azure Disk values and
    # Secrets included.
    assert model.build(request.getfixturevalue(which))["policy"]["violations"] == []


# --- PostgreSQL, DragonflyDB and the object store moved between providers with network volumes --------------------
# (dataPlane.<store>.storageProvider)

STATEFUL_AWS = {"name": "stateful-aws", "role": "stateful", "count": 3, "size": "dedicated-large", "provider": "aws",
                "locations": ["eu-central-1a", "eu-central-1b", "eu-central-1c"]}
MOVING = {"storageProvider": "aws"}
# The stores on the stateful pools, each moving with its own key (config/data.py Movable): store -> (key, title).
STATEFUL_STORES = {"postgres": ("postgres", "PostgreSQL"), "dragonfly": ("dragonfly", "DragonflyDB"),
                   "object_storage": ("objectStorage", "SeaweedFS")}
DRAGONFLY = "kubernetes:dragonflydb.io/v1alpha1:Dragonfly"


def too_few_to_move(provider: str, given: int) -> list[str]:
    """The refusal of each stateful store's move onto `provider` whose pools there hold `given` < 3 nodes."""
    return sorted(
        f"adplatform:dataPlane.{key}.storageProvider needs {title}'s pools on {provider} to hold at least 3 nodes, one "
        f"per instance, {given} given: its instances move one at a time onto them while the others keep the data, and "
        "with fewer than 3 each replacement leaves a single copy (add nodes to those pools before the move), "
        f"got '{provider}'" for key, title in STATEFUL_STORES.values())


STATEFUL_STACK = "production-internet"  # the stack name the stateful move's steps run under (docs: their plan-diffs)


def stateful_migration() -> list[tuple[str, dict[str, Any]]]:
    """PostgreSQL, DragonflyDB and the in-cluster object store from the Hetzner Cloud stateful pool to one on AWS, as
    the stack-file edits the docs show: the instances are replaced one at a time between the second and the third
    (kubectl cnpg destroy/promote; DragonflyDB's StatefulSet orphan-deleted, then each pod deleted with its claim;
    SeaweedFS's StatefulSets orphan-deleted before the second, then each volume server evacuated and replaced with its
    claim, each filer and master replaced with its claim)."""
    start = base_raw(cluster={**OVER_INTERNET, "pools": [dict(FIXED_GENERAL)]})
    added = copy.deepcopy(start)
    added["cluster"]["pools"].append(dict(STATEFUL_AWS))
    added["cluster"]["firewallQuotas"] = {"aws": 200}
    added["dataPlane"] = {key: dict(MOVING) for key, _ in STATEFUL_STORES.values()}
    removed = copy.deepcopy(added)
    removed["cluster"]["pools"].append({"name": "stateful", "count": 0})
    return [("all on hetzner", start), ("aws pool added, new instances on aws", added), ("old pool removed", removed)]


@pytest.fixture(scope="module")
def stateful_moves() -> list[tuple[str, mockrun.Run]]:
    return [(step, run_internet(values, stack=STATEFUL_STACK)) for step, values in stateful_migration()]


def _postgres(run: mockrun.Run) -> dict[str, Any]:
    return run.named("postgres-cluster", "kubernetes:postgresql.cnpg.io/v1:Cluster").inputs["spec"]


def _dragonfly(run: mockrun.Run) -> dict[str, Any]:
    return run.named("dragonfly", DRAGONFLY).inputs["spec"]


def _admitted(run: mockrun.Run, selector: dict[str, str]) -> set[str]:
    """The nodes (pool-ordinal) whose labels a node selector admits."""
    prefix = f"adp-{run.stack}-"
    labels = {host.removeprefix(prefix): node_labels(run, host.removeprefix(prefix)) for host in run.outputs["nodes"]}
    return {name for name, node in labels.items() if selector.items() <= node.items()}


def test_a_pool_on_another_provider_without_scylladb_keeps_scylladb_on_its_local_nvme(stateful_moves):
    # The cluster's local NVMe is decided by the providers ScyllaDB runs on: an AWS pool of other work must not turn its
    # local volumes into EBS ones, which would delete the local CSI driver and class under the running cluster.
    def scylla_storage(run: mockrun.Run) -> tuple[set[str], set[str]]:
        racks = run.named("scylla-cluster", "kubernetes:scylla.scylladb.com/v1:ScyllaCluster").inputs["spec"][
            "datacenter"]["racks"]
        classes = {r.inputs["metadata"]["name"] for r in run.of_type("kubernetes:storage.k8s.io/v1:StorageClass")}
        return {rack["storage"]["storageClassName"] for rack in racks}, classes
    (before, classes_before), (after, classes_after) = (scylla_storage(run) for _, run in stateful_moves[:2])
    assert before == after == {"scylladb-local-xfs"}
    assert "scylladb-local-xfs" in classes_before & classes_after


BOTH_STATEFUL_POOLS = {f"stateful-{i}" for i in (1, 2, 3)} | {f"stateful-aws-{i}" for i in (1, 2, 3)}


def test_a_postgres_move_stack_claims_the_chosen_providers_volumes_and_runs_on_both_pools(stateful_moves):
    _, moving = stateful_moves[1]
    spec = _postgres(moving)
    assert (spec["storage"]["storageClass"], spec["walStorage"]["storageClass"]) == ("ebs-gp3", "ebs-gp3")
    assert spec["instances"] == 3
    # The instances select the role, which both pools' nodes carry: a replaced instance may land on either, and its
    # new EBS claim binds only on an AWS node (the class's allowedTopologies, WaitForFirstConsumer).
    assert _admitted(moving, spec["affinity"]["nodeSelector"]) == BOTH_STATEFUL_POOLS
    ebs = _class(moving, "ebs-gp3")
    assert ebs["volumeBindingMode"] == "WaitForFirstConsumer"
    assert ebs["allowedTopologies"][0]["matchLabelExpressions"][0]["key"] == "topology.ebs.csi.aws.com/zone"


def test_a_dragonfly_move_stack_claims_the_chosen_providers_volumes_and_runs_on_both_pools(stateful_moves):
    # The operator builds the StatefulSet's claim template from this spec once the old StatefulSet is orphan-deleted
    # (docs/providers.md "DragonflyDB to another provider"): every pod deleted with its claim comes back on EBS.
    _, moving = stateful_moves[1]
    spec = _dragonfly(moving)
    claim = spec["snapshot"]["persistentVolumeClaimSpec"]
    assert (claim["storageClassName"], claim["accessModes"]) == ("ebs-gp3", ["ReadWriteOnce"])
    assert _admitted(moving, spec["nodeSelector"]) == BOTH_STATEFUL_POOLS


def test_the_stateful_move_walks_through_valid_stacks_and_never_drops_below_replication(stateful_moves):
    # Every stack synthesizes (a ConfigError otherwise); the stateful role never below 3 nodes nor swapped in one step.
    assert walk_problems([(step, _pools(run)) for step, run in stateful_moves]) == []
    classes = [(_postgres(run)["instances"], _postgres(run)["storage"]["storageClass"]) for _, run in stateful_moves]
    assert classes == [(3, "hcloud-volumes"), (3, "ebs-gp3"), (3, "ebs-gp3")]
    # Its PodDisruptionBudgets stay on (the operator's: the primary's and the replicas' at instances - 2).
    assert all(_postgres(run)["enablePDB"] for _, run in stateful_moves)
    # DragonflyDB: a primary and two replicas throughout, so deleting one pod at a time leaves the primary and a
    # synced replica; a replaced replica counts as ready only once it has synced (the readiness gate the docs' `kubectl
    # wait` waits for), and a drain never takes more than one.
    dragonfly = [_dragonfly(run) for _, run in stateful_moves]
    assert [(d["replicas"], d["snapshot"]["persistentVolumeClaimSpec"]["storageClassName"]) for d in dragonfly] == [
        (3, "hcloud-volumes"), (3, "ebs-gp3"), (3, "ebs-gp3")]
    assert all(d["enableReplicationReadinessGate"] and d["pdb"] == {"minAvailable": 2} for d in dragonfly)
    # The object store: 3 volume servers keeping 2 copies of every file (001), 3 masters and 3 filers throughout, each
    # component's claims of one class per step; its disruption budgets stay (a raft majority, one server at a time).
    seaweed = [_seaweedfs(run) for _, run in stateful_moves]
    assert [(v["volume"]["replicas"], v["master"]["replicas"], v["filer"]["replicas"],
             v["global"]["seaweedfs"]["replicationPlacement"]) for v in seaweed] == [(3, 3, 3, "001")] * 3
    assert [_seaweedfs_classes(v) for v in seaweed] == [{"hcloud-volumes"}, {"ebs-gp3"}, {"ebs-gp3"}]
    assert all(_seaweedfs_budgets(run) == {"master": {"minAvailable": 2},
                                           "volume": {"maxUnavailable": 1, "unhealthyPodEvictionPolicy": "AlwaysAllow"},
                                           "filer": {"maxUnavailable": 1}} for _, run in stateful_moves)


def _seaweedfs(run: mockrun.Run) -> dict[str, Any]:
    return run.named("seaweedfs", "kubernetes:helm.sh/v3:Release").inputs["values"]


def _seaweedfs_classes(values: dict[str, Any]) -> set[str]:
    """The classes of the claims in the masters', volume servers' and filers' claim templates."""
    return {values["master"]["data"]["storageClass"], values["filer"]["data"]["storageClass"],
            *(d["storageClass"] for d in values["volume"]["dataDirs"])}


def _seaweedfs_budgets(run: mockrun.Run) -> dict[str, dict[str, int]]:
    return {component: {k: v for k, v in run.named(f"seaweedfs-{component}-pdb",
                                                     "kubernetes:policy/v1:PodDisruptionBudget").inputs["spec"].items()
                        if k != "selector"} for component in ("master", "volume", "filer")}


def test_an_object_store_move_claims_the_chosen_providers_volumes_with_one_server_per_node_there(stateful_moves):
    # Six stateful nodes while both pools run, but 3 volume servers: one per AWS node, where each emptied old server
    # returns with its new EBS claim (one server per node); 6 would leave it no node, and the StatefulSet would lose
    # 3 servers at once (their copies with them) when the old pool goes.
    _, moving = stateful_moves[1]
    values = _seaweedfs(moving)
    assert _seaweedfs_classes(values) == {"ebs-gp3"}
    assert values["volume"]["replicas"] == 3
    for component in ("master", "volume", "filer"):
        assert _admitted(moving, json.loads(values[component]["nodeSelector"])) == BOTH_STATEFUL_POOLS, component
        assert json.loads(values[component]["affinity"])["podAntiAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"], component  # one pod of each per node


@pytest.mark.parametrize("store, wrong", [("postgres", "gcp"), ("dragonfly", "azure"), ("object_storage", "gcp")])
def test_a_storage_provider_must_name_a_provider_of_its_stores_pools(store, wrong):
    key, title = STATEFUL_STORES[store]
    _, moving = stateful_migration()[1]
    moving["dataPlane"][key]["storageProvider"] = wrong
    found = _internet_problems(moving)
    assert (f"adplatform:dataPlane.{key}.storageProvider must be one of the providers whose volumes {title}'s "
            "pools claim (aws, hetzner): new instances claim that provider's volumes, which attach only to its nodes"
            f", got '{wrong}'") in found, found
    assert len(found) == 1, found  # the other stores' keys stand
    start = stateful_migration()[0][1]
    start["dataPlane"] = {key: dict(MOVING)}  # a single-provider stack too
    assert any(p.startswith(f"adplatform:dataPlane.{key}.storageProvider must be one of the providers whose volumes "
                            f"{title}'s pools claim (hetzner): ") and p.endswith(", got 'aws'")
               for p in _internet_problems(start)), start


def test_a_stateful_split_without_each_stores_key_is_still_refused_naming_it():
    _, moving = stateful_migration()[1]
    for store, (key, title) in STATEFUL_STORES.items():
        unset = copy.deepcopy(moving)
        unset["dataPlane"][key] = {}
        found = _internet_problems(unset)
        assert [p for p in found if p.startswith(f"adplatform:cluster.pools must put the stateful pools, where {store} "
                                                 "keeps its volumes")
                and f"while {title} moves between providers set dataPlane.{key}.storageProvider" in p
                and "Moving pools to another provider" in p] and len(found) == 1, found


def test_a_storage_provider_is_refused_where_its_pools_there_hold_fewer_than_three_nodes():
    # One instance per node: with 2 nodes on AWS the move would end on 2 instances, each replacement leaving one copy.
    # (Production refuses such pools anyway: a staging-sized stack, whose stateful pool is 1 node.)
    _, moving = stateful_migration()[1]
    moving["profile"] = "staging"
    moving["cluster"]["pools"][-1].update(count=2, locations=["eu-central-1a", "eu-central-1b"])
    found = _internet_problems(moving)
    assert sorted(found) == too_few_to_move("aws", 2), found


def test_a_moving_store_on_a_third_providers_volumes_is_refused():
    # storageProvider lifts the one-class rule for a move between two providers (the old volumes and the new): a third
    # provider's pool under the same store is still refused, naming the pools, for each moving store.
    _, moving = stateful_migration()[1]
    moving["cluster"]["pools"].append({"name": "stateful-gcp", "role": "stateful", "count": 3, "size": "dedicated-large",
                                       "provider": "gcp",
                                       "locations": ["europe-west3-a", "europe-west3-b", "europe-west3-c"]})
    moving["cluster"]["firewallQuotas"]["gcp"] = 200
    found = _internet_problems(moving, settings={**AWS_SETTINGS, **CLOUDS_SETTINGS})
    for store in STATEFUL_STORES:
        assert [p for p in found if p.startswith(f"adplatform:cluster.pools must put the stateful pools, where {store} "
                                                 "keeps its volumes, on at most two providers' volumes while it moves")
                and "aws, gcp, hetzner" in p and "stateful-gcp: gcp" in p], found


# --- control-plane members moved to another provider, one per `pulumi up` (cluster.controlPlane.move) ---------------

AWS_ZONES = ["eu-central-1a", "eu-central-1b", "eu-central-1c"]
CP_MOVE_STACK = "production-internet"  # the stack name the control-plane move's steps run under (docs: plan-diffs)


def _moved(added: int, removed: int) -> dict[str, Any]:
    return {"provider": "aws", "locations": list(AWS_ZONES), "added": added, "removed": removed}


def control_plane_migration() -> list[tuple[str, dict[str, Any]]]:
    """The control plane from Hetzner Cloud to AWS, as the stack-file edits the docs show, once the pools have moved
    (here: a stateless pool on each; the layers above cluster services change nothing and are off): a member is added
    on AWS, then an original one drained and removed (highest first), and again; the last original member stays (the
    Hetzner balancer fronts only Hetzner servers: control_plane_move_problems)."""
    start = base_raw(cluster={**OVER_INTERNET, "pools": [dict(FIXED_GENERAL), dict(EDGE)],
                              "firewallQuotas": {"aws": 200}}, layers=dict(UP_TO_SERVICES))
    start["clusterServices"]["secrets"] = {"seal": {"type": "static"}}  # stated while moving: move_seal_problems
    steps = [("control plane on hetzner", start)]
    for step, (added, removed) in (("control-plane-4 added on aws", (1, 0)), ("control-plane-3 removed", (1, 1)),
                                   ("control-plane-5 added on aws", (2, 1)), ("control-plane-2 removed", (2, 2))):
        values = copy.deepcopy(start)
        values["cluster"]["controlPlane"] = {"move": _moved(added, removed)}
        steps.append((step, values))
    # The flip's preparing step (docs/providers.md "Not supported yet", item 3): AWS's API balancer, in every
    # server's certificate, before any join address changes.
    # cluster.location is the stack provider's alone: stated as Hetzner's own while the flip is prepared
    # (hybrid.defaults_problems), so that the flip keeps it; the same location, nothing changes.
    prepared = copy.deepcopy(steps[-1][1])
    prepared["cluster"]["controlPlane"]["move"]["prepareFlip"] = True
    prepared["cluster"]["providers"] = {"hetzner": {"location": prepared["cluster"].pop("location")}}
    # Stated from then on (item 6): the default StorageClass stays Hetzner's whichever provider is the stack's.
    prepared["clusterServices"]["defaultStorageProvider"] = "hetzner"
    steps.append((PREPARED, prepared))
    return steps


T = TypeVar("T")  # a step's stack values, run or plan
PREPARED = "aws API balancer in every certificate"  # control_plane_migration's last step


def _member_steps(steps: list[tuple[str, T]]) -> list[tuple[str, T]]:
    """The steps of control_plane_migration that add or remove a member (all but the flip's preparing one)."""
    return [(step, each) for step, each in steps if step != PREPARED]


@pytest.fixture(scope="module")
def control_plane_moves() -> list[tuple[str, mockrun.Run]]:
    return [(step, run_internet(values, stack=CP_MOVE_STACK)) for step, values in control_plane_migration()]


Members = dict[str, str]  # K3s server (control-plane-<n>) -> the provider it runs on


def _members(run: mockrun.Run) -> Members:
    prefix = f"adp-{run.stack}-"
    names = [host.removeprefix(prefix) for host, node in run.outputs["nodes"].items() if node["role"] == "general"]
    return {n: node_labels(run, n)[PROVIDER_LABEL] for n in names if n.startswith("control-plane-")}


def member_walk_problems(steps: list[tuple[str, Members]], minimum: int = 3) -> list[str]:
    """What a control-plane move must never do: fewer than `minimum` etcd members at any step, a step that changes more
    than one member (adds and removes, or two of either: a replaced member must be in before another goes), or a removal
    that leaves fewer than a quorum of the members before it."""
    found = [f"{step}: {len(members)} etcd members, below {minimum}" for step, members in steps if len(members) < minimum]
    for (_, before), (step, after) in zip(steps, steps[1:]):
        added, removed = after.keys() - before.keys(), before.keys() - after.keys()
        moved = {n for n in before.keys() & after.keys() if before[n] != after[n]}
        if len(added) + len(removed) + 2 * len(moved) > 1:
            found.append(f"{step}: changes {sorted(added | removed | moved)} at once")
        if removed and len(after) < len(before) // 2 + 1:
            found.append(f"{step}: leaves {len(after)} of {len(before)} etcd members, below their quorum")
    return found


def test_the_control_plane_move_walks_valid_stacks_one_member_at_a_time(control_plane_moves):
    # Every stack synthesizes (a ConfigError otherwise) and passes the policy pack.
    members = [(step, _members(run)) for step, run in control_plane_moves]
    assert member_walk_problems(members) == []
    assert [dict(sorted(m.items())) for _, m in members] == [
        {"control-plane-1": "hetzner", "control-plane-2": "hetzner", "control-plane-3": "hetzner"},
        {"control-plane-1": "hetzner", "control-plane-2": "hetzner", "control-plane-3": "hetzner",
         "control-plane-4": "aws"},
        {"control-plane-1": "hetzner", "control-plane-2": "hetzner", "control-plane-4": "aws"},
        {"control-plane-1": "hetzner", "control-plane-2": "hetzner", "control-plane-4": "aws", "control-plane-5": "aws"},
        {"control-plane-1": "hetzner", "control-plane-4": "aws", "control-plane-5": "aws"},
        {"control-plane-1": "hetzner", "control-plane-4": "aws", "control-plane-5": "aws"}]  # the flip prepared
    for (step, run), (_, each) in zip(control_plane_moves, members):
        plan = model.build(run)
        assert plan["policy"]["violations"] == [], step
        control_plane = next(p for p in plan["pools"] if p["name"] == "control-plane")
        assert control_plane["nodes"] == len(each), step  # the plan counts the members on both providers
    # The pools never change while the members move.
    pools = [{k: n for k, n in _pools(run).items() if k[1] != "control-plane"} for _, run in control_plane_moves]
    assert all(each == pools[0] for each in pools)


def test_the_member_walk_refuses_two_changes_in_one_step_and_too_few_members():
    three = {"control-plane-1": "hetzner", "control-plane-2": "hetzner", "control-plane-3": "hetzner"}
    swapped = {"control-plane-1": "hetzner", "control-plane-2": "hetzner", "control-plane-4": "aws"}
    assert member_walk_problems([("before", three), ("swapped", swapped)]) == [
        "swapped: changes ['control-plane-3', 'control-plane-4'] at once"]
    two = {"control-plane-1": "hetzner", "control-plane-2": "hetzner"}
    assert member_walk_problems([("before", three), ("removed", two)]) == ["removed: 2 etcd members, below 3"]
    moved_in_place = {**three, "control-plane-3": "aws"}
    assert member_walk_problems([("before", three), ("moved", moved_in_place)]) == [
        "moved: changes ['control-plane-3'] at once"]


# What each K3s server sets for itself; everything else in a server's config is the cluster's, the same on every server.
NODE_OWN_KEYS = ("node-name", "node-ip", "node-external-ip", "advertise-address", "node-label", "kubelet-arg")


def assert_same_server_flags(run: mockrun.Run, moved: str, original: str) -> None:
    """A member on another provider runs the cluster's server flags (bundled components disabled, no K3s cloud
    controller beside the stack's CCM, secrets encryption, etcd snapshots to S3, API server hardening): only its own
    name, addresses, labels and kubelet flags differ (components/k3s/config.py node_config `cluster_profile`)."""
    def cluster_wide(name: str) -> dict[str, Any]:
        return {k: v for k, v in k3s_config(run, name).items() if k not in NODE_OWN_KEYS}
    assert cluster_wide(moved) == cluster_wide(original)


def test_a_moved_member_runs_on_aws_joins_at_the_public_balancer_and_the_certificate_names_it(control_plane_moves):
    _, run = control_plane_moves[1]
    instances = {r.name for r in run.resources if r.type == "aws:ec2/instance:Instance"}
    assert instances == {"edge-1", "edge-2", "control-plane-4"}
    assert not any(r.name == "control-plane-4" for r in run.resources if r.type == "hcloud:index/server:Server")
    addresses, balancer = _addresses(run), _balancer(run)
    config = k3s_config(run, "control-plane-4")
    assert config["server"] == f"https://{balancer}:6443"  # it joins the running cluster: no second cluster
    assert (config["node-ip"], config["advertise-address"]) == (addresses["control-plane-4"],) * 2
    assert config["node-taint"] == [CONTROL_PLANE_TAINT]
    assert "cloud-provider=external" not in " ".join(config.get("kubelet-arg", []))  # no AWS CCM initialises it
    assert node_labels(run, "control-plane-4")["topology.kubernetes.io/zone"] == "eu-central-1a"
    assert_same_server_flags(run, "control-plane-4", "control-plane-2")
    # Every server's certificate names every server's address, the new member's among them.
    for name in ("control-plane-1", "control-plane-2", "control-plane-4"):
        assert addresses["control-plane-4"] in k3s_config(run, name)["tls-san"], name
    # control-plane-1 still initialised the cluster: its configuration (and so its K3s) is untouched by the move.
    before = control_plane_moves[0][1]
    first = {k: v for k, v in k3s_config(run, "control-plane-1").items() if k != "tls-san"}
    assert "server" not in first and first == {k: v for k, v in k3s_config(before, "control-plane-1").items()
                                               if k != "tls-san"}


def test_both_firewalls_admit_etcd_between_the_servers_of_both_providers(control_plane_moves):
    _, run = control_plane_moves[3]  # two members on each provider
    addresses = _addresses(run)
    servers = sorted(f"{a}/32" for n, a in addresses.items() if n.startswith("control-plane-"))
    assert len(servers) == 4
    firewall = run.named("firewall-peers", "hcloud:index/firewall:Firewall").inputs
    hetzner = {(r["protocol"], r.get("port")): sorted(r["sourceIps"]) for r in firewall["rules"]}
    assert hetzner[("tcp", "2379-2380")] == servers
    peers = [r.inputs for r in run.of_type(SG_RULE) if r.name.startswith("nodes-in-peer-")]
    aws_etcd = sorted(r["cidrIpv4"] for r in peers if (r["fromPort"], r["toPort"]) == (2379, 2380))
    aws_api = sorted(r["cidrIpv4"] for r in peers if r["fromPort"] == 6443)
    assert aws_etcd == servers and aws_api == _everyone(run)


def test_a_removed_member_is_drained_and_its_etcd_member_removed_before_its_machine_goes(control_plane_moves):
    (_, before), (_, after) = control_plane_moves[1:3]
    assert before.named("drain-control-plane-3", COMMAND) and not [
        r for r in after.resources if r.name in ("drain-control-plane-3", "control-plane-3")]
    drain = before.named("drain-control-plane-3", COMMAND)
    server = before.named("control-plane-3", "hcloud:index/server:Server")
    assert server.urn in drain.dependencies  # deleted first: the drain (and etcd member removal) runs before
    assert script_param(drain.inputs["stdin"].value, "ETCD_MEMBER") == "true"


def test_a_member_move_changes_no_agent_and_only_the_servers_certificate_names(control_plane_moves):
    # Joins go through the balancer, so adding or removing a member changes no agent's K3s configuration, and of the
    # kept servers' only the certificate names (a restart of each server's K3s, one at a time as the joins are chained).
    for (_, before), (step, after) in zip(control_plane_moves, control_plane_moves[1:]):
        for name in ("general-1", "edge-1"):
            assert k3s_config(before, name) == k3s_config(after, name), (step, name)
        for name in (n for n in ("control-plane-1", "control-plane-2") if n in _members(after)):
            old, new = k3s_config(before, name), k3s_config(after, name)
            assert old.pop("tls-san") != new.pop("tls-san") and old == new, (step, name)


AWS_BALANCER = "aws:lb/loadBalancer:LoadBalancer"


def _server_installs_chain(run: mockrun.Run) -> list[str]:
    """The K3s servers' installs in the order their dependencies chain them (each after exactly the one before);
    fails where two would run at once."""
    return _installs_chain(run, lambda name: name.startswith("k3s-control-plane-"))


def _agent_installs_chain(run: mockrun.Run) -> list[str]:
    """The K3s agents' installs in the order their dependencies chain them; fails where two would run at once."""
    return _installs_chain(run, lambda name: name.startswith("k3s-") and not name.startswith("k3s-control-plane-"))


def _installs_chain(run: mockrun.Run, chosen: Callable[[str], bool]) -> list[str]:
    """The `chosen` K3s installs in the order their dependencies chain them (each after exactly the one before of
    them); fails where two would run at once."""
    installs = {r.urn: r for r in run.of_type(COMMAND) if chosen(r.name)}
    after = {r.name: [installs[d].name for d in r.dependencies if d in installs] for r in installs.values()}
    first = [name for name, before in after.items() if not before]
    assert len(first) == 1 and all(len(before) <= 1 for before in after.values()), after
    chain = first
    while follower := [name for name, before in after.items() if before == [chain[-1]]]:
        chain += follower
    assert sorted(chain) == sorted(after), after  # one chain through every chosen install
    return chain


def _agents_in_config_order() -> list[str]:
    """control_plane_migration's agents' installs, pool by pool as its cluster.pools lists them (the profile's, then
    edge on AWS), each pool's by index."""
    pools = {"general": 5, "scylladb": 3, "redpanda": 3, "clickhouse": 3, "stateful": 3, "edge": 2}
    return [f"k3s-{pool}-{i}" for pool, count in pools.items() for i in range(1, count + 1)]


def test_once_the_flip_is_prepared_agents_restart_one_at_a_time_pool_by_pool_after_the_servers(control_plane_moves):
    # docs/providers.md "Not supported yet", item 4: the flip changes every agent's join address and kubelet flags in
    # one update. From its preparing step on (prepareFlip, kept set through the flip) the agents' installs form one
    # chain, pool by pool in the config's order, each pool's by index, after the last server's: a reconfigured agent
    # restarts alone, against servers that all have their new configuration, and a failure stops the others.
    (step, prepared) = control_plane_moves[-1]
    assert step == PREPARED
    agents = _agents_in_config_order()
    assert _agent_installs_chain(prepared) == agents
    first_agent = {prepared.by_urn(d).name for d in prepared.named(agents[0], COMMAND).dependencies}
    assert _server_installs_chain(prepared)[-1] in first_agent
    # Before it (first deploys, a move's member steps, which change no agent) they stay parallel, after the first
    # server only (issue 22).
    for step, run in _member_steps(control_plane_moves):
        for agent in agents:
            installs = {run_name for d in run.named(agent, COMMAND).dependencies
                        if (run_name := run.by_urn(d).name).startswith("k3s-")}
            assert installs == {"k3s-control-plane-1"}, (step, agent)


def test_preparing_the_flip_builds_the_new_providers_balancer_into_every_certificate_and_moves_no_join(
        control_plane_moves):
    # docs/providers.md "Not supported yet", item 3: the new provider's API balancer, over its members, named (beside
    # the old one) in every server's certificate before any node's join address changes.
    (_, before), (step, prepared) = control_plane_moves[-2:]
    assert step == PREPARED and not before.of_type(AWS_BALANCER)
    balancers = {r.name: r for r in prepared.of_type(AWS_BALANCER)}
    assert set(balancers) == {"api", "api-public"}  # AWS's own, as the stack's config asks (apiLoadBalancer.public)
    targets = [r.inputs for r in prepared.of_type("aws:lb/targetGroupAttachment:TargetGroupAttachment")]
    instances = {r.urn: r.name for r in prepared.of_type("aws:ec2/instance:Instance")}
    assert sorted(instances[next(d for d in r.dependencies if d in instances)] for r in prepared.of_type(
        "aws:lb/targetGroupAttachment:TargetGroupAttachment")) == sorted(["control-plane-4", "control-plane-5"] * 2)
    assert len(targets) == 4  # both balancers over the members on AWS alone
    # An NLB's DNS name (the mocks' as AWS's: [internal-]<name>-<id>.elb.<region>.amazonaws.com).
    new = [f"{'internal-' if r.inputs['internal'] else ''}{r.inputs['name']}-" for r in balancers.values()]
    old = _balancer(prepared)
    assert old == _balancer(before) and old in k3s_config(before, "control-plane-1")["tls-san"]
    servers = list(_members(prepared))
    for name in servers:
        sans = k3s_config(prepared, name)["tls-san"]
        assert old in sans and all(any(s.startswith(n) and s.endswith(".amazonaws.com") for s in sans)
                                   for n in new), (name, sans)
    # No join address changes: agents keep their whole configuration (their K3s is not restarted), servers their
    # `server:` (only the certificate names change), and the deployer's endpoint stays the old balancer.
    for name in _addresses(prepared):
        old_config, new_config = k3s_config(before, name), k3s_config(prepared, name)
        assert old_config.get("server") == new_config.get("server"), name
        if name not in servers:
            assert old_config == new_config, name
        else:
            assert old_config.pop("tls-san") != new_config.pop("tls-san") and old_config == new_config, name
    # The servers restart with their new certificate one at a time: their installs are chained.
    assert _server_installs_chain(prepared) == ["k3s-control-plane-1", "k3s-control-plane-4", "k3s-control-plane-5"]
    assert model.build(prepared)["policy"]["violations"] == []


def test_a_prepared_flip_states_whose_volumes_are_the_default_class():
    # docs/providers.md "Not supported yet", item 6: unset, the default class follows the stack provider, so the flip
    # would silently move every new claim naming no class to AWS.
    values = copy.deepcopy(control_plane_migration()[-1][1])
    del values["clusterServices"]["defaultStorageProvider"]
    assert _internet_problems(values) == [
        "adplatform:clusterServices.defaultStorageProvider must be set while the flip to aws is prepared "
        "(cluster.controlPlane.move.prepareFlip): unset, the default StorageClass follows the stack's provider, and "
        "making aws the stack's would put every new claim naming no class on aws's volumes; set hetzner to keep it "
        "(nothing changes), or aws to move it"]


@pytest.mark.parametrize("chosen", ["gcp", "baremetal"])
def test_the_default_class_is_one_of_the_clusters_own(chosen):
    values = copy.deepcopy(control_plane_migration()[-1][1])
    values["clusterServices"]["defaultStorageProvider"] = chosen
    assert _internet_problems(values) == [
        "adplatform:clusterServices.defaultStorageProvider must be one of the providers whose volumes the cluster has "
        f"(hetzner, aws): the default StorageClass is one of their classes, got '{chosen}'"]


@pytest.mark.parametrize("move, count, key, message", [
    ({**_moved(0, 0), "prepareFlip": True}, 3, "cluster.controlPlane.move.prepareFlip",
     "must be false while no member runs on aws (cluster.controlPlane.move.added is 0): aws's API balancer is built "
     "over the members there, got True"),
    (_moved(2, 0), 3, "cluster.controlPlane.move.added",
     "must be cluster.controlPlane.move.removed (0) or one more: each `pulumi up` adds one member on aws or then "
     "removes one original, so the cluster keeps 3 or 4 etcd members, got 2"),
    (_moved(1, 2), 3, "cluster.controlPlane.move.added", "must be cluster.controlPlane.move.removed (2) or one more"),
    (_moved(3, 3), 3, "cluster.controlPlane.move.removed",
     "must be at most 2 (cluster.controlPlane.count - 1): hetzner's API balancer fronts only hetzner's servers, so the "
     "last original member stays until aws becomes the stack's provider (the flip, built from aws to hetzner only"),
    ({**_moved(1, 0), "provider": "hetzner"}, 3, "cluster.controlPlane.move.provider",
     "must name another provider than the stack's (hetzner), or, making it the stack's (the flip), "
     "cluster.controlPlane.move.flippedFrom must name the stack's provider before it: built from aws to hetzner only"),
    ({**_moved(1, 0), "provider": "baremetal"}, 3, "cluster.controlPlane.move.provider",
     "must be a provider hetzner couples with over the public internet (aws, gcp, azure): K3s servers on two providers "
     "talk etcd to each other, which only that coupling's firewalls admit, got 'baremetal'"),
    (_moved(1, 0), 1, "cluster.controlPlane.count", "must be at least 3 while members move"),
    ({**_moved(1, 0), "locations": ["fsn1"]}, 3, "cluster.controlPlane.move.locations[0]",
     "must be an availability zone of aws:region eu-central-1"),
])
def test_an_unsafe_control_plane_move_is_refused_naming_the_key(move, count, key, message):
    values = copy.deepcopy(control_plane_migration()[0][1])
    values["cluster"]["controlPlane"] = {"count": count, "move": move}
    if count < 3:
        values["profile"] = "staging"  # production refuses one server by itself (config/rules.py)
    found = _internet_problems(values)
    assert any(p.startswith(f"adplatform:{key} {message}") for p in found), found


def test_a_member_moving_off_gcp_joins_at_the_public_balancer_its_servers_stay_on_the_internal():
    # GCP's servers join at its internal balancer (servers_join_privately), out of another provider's reach: a member on
    # Hetzner joins, and its drain reaches the API, at the public one.
    values = primary_raw("gcp", controlPlane={"move": {"provider": "hetzner", "locations": ["fsn1"], "added": 1}})
    values["clusterServices"]["secrets"] = {"seal": {"type": "kms"}}  # stated while moving: move_seal_problems
    run = run_internet({**values, "layers": UP_TO_SERVICES}, stack="staging-internet", settings=CLOUDS_SETTINGS)
    internal, public = _gcp_balancers(run)
    assert k3s_config(run, "control-plane-2")["server"] == f"https://{internal}:6443"
    assert k3s_config(run, "control-plane-4")["server"] == f"https://{public}:6443"
    assert node_labels(run, "control-plane-4")[PROVIDER_LABEL] == "hetzner"
    drain = run.named("drain-control-plane-4", COMMAND).inputs["stdin"].value
    assert f"https://{public}:6443" in drain and f"https://{internal}:6443" not in drain


@pytest.mark.parametrize("provider, zones, machine", [
    ("gcp", ["europe-west3-a", "europe-west3-b", "europe-west3-c"], "gcp:compute/instance:Instance"),
    ("azure", ["1", "2", "3"], "azure-native:compute:VirtualMachine")])
def test_members_move_to_gcp_and_azure_too_and_their_firewalls_admit_etcd_from_every_server(provider, zones, machine):
    values = copy.deepcopy(control_plane_migration()[0][1])
    values["cluster"]["controlPlane"] = {"move": {"provider": provider, "locations": zones, "added": 1}}
    values["cluster"]["firewallQuotas"] = {"aws": 200, provider: 400}
    run = run_internet(values, stack=CP_MOVE_STACK, settings={**AWS_SETTINGS, **CLOUDS_SETTINGS})
    assert "control-plane-4" in {r.name for r in run.of_type(machine)}
    assert k3s_config(run, "control-plane-4")["server"] == f"https://{_balancer(run)}:6443"
    assert_same_server_flags(run, "control-plane-4", "control-plane-2")  # GCP's own would leave ServiceLB on
    servers = sorted(f"{a}/32" for n, a in _addresses(run).items() if n.startswith("control-plane-"))
    if provider == "gcp":
        etcd = [r.inputs for r in run.of_type(GCP_FIREWALL) if "-in-peers-" in r.inputs["name"]
                and r.inputs["allows"][0].get("ports") == ["2379-2380"]]
        assert [sorted(r["sourceRanges"]) for r in etcd] == [servers]
    else:
        etcd = [r.inputs for r in run.of_type(NSG_RULE) if r.inputs.get("destinationPortRange") == "2379-2380"]
        assert [sorted(r["sourceAddressPrefixes"]) for r in etcd] == [servers]
    assert model.build(run)["policy"]["violations"] == []


MOVE_ZONES = {"aws": AWS_ZONES, "gcp": ["europe-west3-a", "europe-west3-b", "europe-west3-c"], "azure": ["1", "2", "3"]}


def _move_with_stores(provider: str) -> mockrun.Run:
    """control-plane-4 added on `provider`, where a stateful pool runs too (its CSI driver and classes installed)."""
    values = copy.deepcopy(control_plane_migration()[0][1])
    values["cluster"]["controlPlane"] = {"move": {"provider": provider, "locations": MOVE_ZONES[provider], "added": 1}}
    values["cluster"]["pools"].append({"name": "stateful", "provider": provider, "locations": MOVE_ZONES[provider]})
    values["cluster"]["firewallQuotas"] = {"aws": 200, provider: 400}
    return run_internet(values, stack=CP_MOVE_STACK, settings={**AWS_SETTINGS, **CLOUDS_SETTINGS})


@pytest.mark.parametrize("provider", ["aws", "gcp", "azure"])
def test_members_moving_to_a_cloud_get_a_secondary_parts_rights_and_its_classes_are_not_the_default(provider):
    # No CCM runs for the move's provider (the stack provider's add-ons run the cluster), so its servers get what that
    # provider's secondary nodes get: the CSI driver's rights (its own credential) and nothing for a CCM.
    run = _move_with_stores(provider)
    defaults = [r.name for r in run.of_type(STORAGE_CLASS)
                if (r.inputs["metadata"].get("annotations") or {}).get(DEFAULT_CLASS) == "true"]
    assert defaults == ["storage-class-hcloud-volumes"]  # one default: the stack provider's
    if provider == "aws":
        member = run.named("control-plane-4", "aws:ec2/instance:Instance").inputs
        assert not member.get("iamInstanceProfile") and member["metadataOptions"]["httpPutResponseHopLimit"] == 1
        assert not run.of_type("aws:iam/role:Role") and not run.of_type("aws:iam/rolePolicy:RolePolicy")
        values = run.named("aws-ebs-csi", "kubernetes:helm.sh/v3:Release").inputs["values"]
        assert values["controller"]["nodeSelector"] == {PROVIDER_LABEL: "aws"}  # with its own key, not on Hetzner
        assert run.named("aws-ebs-csi-credential", "kubernetes:core/v1:Secret")
    elif provider == "azure":
        roles = [r.inputs for r in run.of_type("azure-native:authorization:RoleDefinition")]
        assert [set(p["actions"]) for role in roles for p in role["permissions"]] == [DISK_DRIVER_ACTIONS]
        secret = run.named(azure.CLOUD_CONFIG_SECRET, "kubernetes:core/v1:Secret").inputs
        assert "vnetName" not in json.loads(secret["stringData"].value["cloud-config"])  # the disk driver's alone
    else:
        roles = [r.inputs["permissions"] for r in run.of_type("gcp:projects/iAMCustomRole:IAMCustomRole")]
        assert roles == [list(gcp.PD_CSI_PERMISSIONS), gcp.PD_CSI_VOLUME_PERMISSIONS]  # attach, volumes: no CCM's


def test_the_kubernetes_provider_names_one_cluster_before_and_through_the_move(control_plane_moves):
    # pulumi-kubernetes replaces its provider, and with it every Kubernetes resource of the stack, when the kubeconfig's
    # server changes or is unknown in a preview (every member step re-runs control-plane-1's install), unless a
    # clusterIdentifier is set and unchanged (components/k3s CLUSTER_IDENTIFIER): the stack has it before the first
    # step, and it is the value stacks that started a move earlier (with `added: 0`) hold.
    identifiers = [run.of_type("pulumi:providers:kubernetes")[0].inputs.get("clusterIdentifier")
                   for _, run in control_plane_moves]
    assert identifiers == ["adplatform-k3s"] * len(control_plane_moves)


# --- the MTU over the internet: the smallest interface of any provider ---------------------------------------------

def test_a_gcp_part_lowers_the_clusters_mtu_to_its_vpcs():
    """Cilium's MTU is the link's (it subtracts the VXLAN and WireGuard overheads): set, it replaces Cilium's own
    detection, so over the internet it must not exceed any provider's interface. GCP's VPC carries 1460."""
    assert hybrid.link_mtu(["aws", "gcp"], [hybrid.INTERNET]) == 1460
    assert hybrid.link_mtu(["aws", "azure"], [hybrid.INTERNET]) == 1500
    vswitch = hybrid.COUPLINGS[("hetzner", "baremetal")]
    assert hybrid.link_mtu(["hetzner", "baremetal"], [vswitch]) == 1400, "a private coupling: its own MTU"
    gce = {"name": "gce", "role": "general", "count": 1, "provider": "gcp", "location": "europe-west3-a"}
    values = base_raw(provider="aws", profile="staging", cluster={
        "location": "eu-central-1a", "controlPlane": {"count": 1}, "firewallQuotas": {"aws": 100},
        "pools": [{"name": "general", "autoscaling": None, "count": 1}, gce]})
    run = run_internet({**values, "layers": UP_TO_K3S}, stack="staging-internet",
                       settings={**AWS_SETTINGS, **CLOUDS_SETTINGS})
    assert run.named("cilium", "kubernetes:helm.sh/v3:Release").inputs["values"]["MTU"] == 1460
