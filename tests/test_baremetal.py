"""The bare-metal provider: existing hosts, the nftables firewall from PORTS, local storage, LB IPAM + L2."""

from __future__ import annotations

import copy
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from config import ConfigError
from providers import baremetal
from providers.base import PORTS
from tests import validators
from tests.cloud_stacks import assert_local_traffic_policy
from tests.conftest import ROOT, base_raw, k3s_config, node_labels, nodes_without_topology, run_raw, script_param, stack_run
from tools import mockrun

COMMAND = "command:remote:Command"
ADMIN = "203.0.113.0/24"
STACK = yaml.safe_load((ROOT / "Pulumi.production-baremetal.yaml").read_text())["config"]
HOSTS = STACK["adplatform:bareMetal"]["hosts"]


@pytest.fixture(scope="module")
def production() -> mockrun.Run:
    return stack_run("production-baremetal")


def raw(**overrides: Any) -> dict[str, Any]:
    """The production-baremetal stack as a raw config, with overrides."""
    values = base_raw(provider="baremetal", profile="compact", domain=STACK["adplatform:domain"],
                      cluster=copy.deepcopy(STACK["adplatform:cluster"]),
                      bareMetal=copy.deepcopy(STACK["adplatform:bareMetal"]))
    values.update(overrides)
    return values


def problems(values: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as err:
        run_raw(values)
    assert mockrun.last_monitor.recorded == [], "a config error must stop the program before any resource"
    return [str(p) for p in err.value.problems]


@lru_cache(maxsize=None)
def _staging() -> mockrun.Run:
    # Smallest useful variant: one server (sudo user), one agent, a named announcing interface.
    hosts = [{"publicAddress": "198.51.100.21", "privateAddress": "10.0.1.21", "sshUser": "ubuntu",
              "pool": "control-plane"},
             {"publicAddress": "198.51.100.22", "privateAddress": "10.0.1.22", "pool": "general"}]
    pools = [{"name": "general", "count": 1}] + [{"name": n, "count": 0} for n in
                                                ("scylladb", "redpanda", "clickhouse", "stateful")]
    return run_raw(base_raw(
        provider="baremetal", profile="staging", layers={"dataPlane": False},
        cluster={"controlPlane": {"count": 1}, "apiLoadBalancer": {"enabled": False}, "pools": pools},
        bareMetal={"hosts": hosts, "loadBalancerAddresses": ["198.51.100.240-198.51.100.245"],
                   "loadBalancerInterfaces": ["^enp1s0$"], "localNvme": False}))


# --- nothing provisioned, hosts become nodes ---------------------------------------------------------

def test_no_cloud_resources(production):
    clouds = ("hcloud:", "aws:", "gcp:", "azure-native:")
    assert [r.type for r in production.resources if r.type.startswith(clouds)] == []


def test_every_host_is_a_node_in_its_pool(production):
    nodes = production.outputs["nodes"]
    assert {(n["pool"], n["publicIp"], n["privateIp"]) for n in nodes.values()} == {
        (h["pool"] if h["pool"] == "control-plane" else "workers", h["publicAddress"], h["privateAddress"]) for h in HOSTS}
    assert sorted(n["k3s"] for n in nodes.values()) == ["agent"] * 2 + ["server"] * 3
    assert "adp-production-baremetal-control-plane-1" in nodes


def test_hosts_fill_their_pool_in_the_order_listed(production):
    cfg = k3s_config(production, "control-plane-2")
    assert cfg["node-ip"] == "10.0.1.12" and cfg["node-external-ip"] == "198.51.100.12"
    # No load balancer: every node joins through the first server's private address.
    assert k3s_config(production, "workers-1")["server"] == "https://10.0.1.11:6443"
    assert production.outputs["apiEndpoint"] == "https://198.51.100.11:6443"


def test_ssh_as_each_hosts_user(production):
    connections = {r.name: r.inputs["connection"] for r in production.of_type(COMMAND) if r.name.startswith("tune-")}
    assert all(isinstance(c, mockrun.Secret) for c in connections.values()), "it holds sshPrivateKey"
    assert connections["tune-control-plane-1"].value["user"] == "root"
    assert connections["tune-workers-1"].value["user"] == "ubuntu"
    assert connections["tune-workers-1"].value["host"] == "198.51.100.14"


def test_tls_sans_cover_every_server_address(production):
    sans = k3s_config(production, "control-plane-1")["tls-san"]
    assert set(sans) == {a for h in HOSTS if h["pool"] == "control-plane" for a in (h["publicAddress"], h["privateAddress"])}


# --- the firewall ------------------------------------------------------------------------------------

def firewalls(run: mockrun.Run) -> dict[str, mockrun.Resource]:
    return {r.name.removeprefix("firewall-"): r for r in run.of_type(COMMAND) if r.name.startswith("firewall-")}


def test_one_firewall_per_host_before_anything_else_runs_there(production):
    walls = firewalls(production)
    assert set(walls) == {"control-plane-1", "control-plane-2", "control-plane-3", "workers-1", "workers-2"}
    for node, wall in walls.items():
        for step in ("tune", "k3s"):
            assert wall.urn in production.named(f"{step}-{node}", COMMAND).dependencies, f"{step}-{node}"


def test_firewall_command_passes_the_ssh_client_through_sudo(production):
    walls = firewalls(production)
    assert walls["control-plane-1"].inputs["create"] == 'ADP_SSH_CLIENT="$SSH_CLIENT" bash -s'
    assert walls["workers-1"].inputs["create"] == 'sudo -n env ADP_SSH_CLIENT="$SSH_CLIENT" bash -s'
    stdin = walls["workers-1"].inputs["stdin"]
    assert stdin == baremetal.firewall_script([ADMIN], ["10.0.1.0/24", "10.244.0.0/16"])
    assert walls["workers-1"].inputs["triggers"] == walls["control-plane-1"].inputs["triggers"]


def ruleset(run: mockrun.Run) -> list[str]:
    script = next(iter(firewalls(run).values())).inputs["stdin"]
    return [line.strip() for line in script_param(script, "RULESET").splitlines()]


def test_world_reaches_only_80_and_443(production):
    lines = ruleset(production)
    unrestricted = [l for l in lines if " accept" in l and "saddr" not in l]
    # Accepted from anywhere: 80 and 443, and protocol plumbing: loopback, replies, IPv6 neighbour
    # discovery. No DHCPv4 rule: a world-open 67->68 let any address reach the DHCP client's socket.
    assert {l for l in unrestricted if "dport" in l or "l4proto" in l} == {
        'tcp dport 80 accept comment "HTTP to the gateway (redirects to HTTPS)"',
        'tcp dport 443 accept comment "HTTPS to the gateway"'}
    assert {l.split(" accept")[0] for l in unrestricted} == {
        'iif "lo"', "ct state established,related", 'tcp dport 80', 'tcp dport 443',
        "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } ip6 hoplimit 255"}


def test_admin_cidrs_reach_ssh_api_and_icmp_the_private_network_everything(production):
    lines = ruleset(production)
    assert f"ip saddr {{ {ADMIN} }} tcp dport 22 accept comment \"SSH for remote commands\"" in lines
    assert f"ip saddr {{ {ADMIN} }} tcp dport 6443 accept comment \"Kubernetes API\"" in lines
    assert any(l.startswith(f"ip saddr {{ {ADMIN} }} meta l4proto icmp accept") for l in lines)
    assert any(l.startswith("ip saddr { 10.0.1.0/24, 10.244.0.0/16 } accept") for l in lines)
    ported = {(p.protocol, p.port) for p in PORTS}
    assert ported == {("tcp", "80"), ("tcp", "443"), ("tcp", "22"), ("tcp", "6443"), ("icmp", None)}


def test_input_is_dropped_unless_accepted_and_only_our_table_changes(production):
    lines = ruleset(production)
    assert "type filter hook input priority filter; policy drop;" in lines
    assert lines.index('iif "lo" accept') < lines.index("ct state invalid drop")
    # Atomic and repeatable: make sure the table exists, delete it, build it, all in one nft transaction.
    assert lines[3:6] == ["table inet adplatform", "delete table inet adplatform", "table inet adplatform {"]
    assert not any("flush ruleset" in l or "forward" in l for l in lines), "K3s' and Cilium's tables stay"


def test_ipv6_admin_cidrs_get_ip6_rules():
    text = baremetal.nft_ruleset([ADMIN, "2001:db8::/48"], ["10.0.1.0/24"])
    assert 'ip6 saddr { 2001:db8::/48 } tcp dport 22 accept comment "SSH for remote commands"' in text
    assert "ip6 saddr { 2001:db8::/48 } meta l4proto ipv6-icmp accept" in text
    assert "nd-neighbor-solicit" in text, "IPv6 keeps neighbour discovery"


def test_firewall_script_checks_applies_and_persists(production):
    script = next(iter(firewalls(production).values())).inputs["stdin"]
    assert script.index('nft -c -f "$candidate"') < script.index('nft -f "$RULES_FILE"'), "validated before applied"
    assert script_param(script, "SSH_SOURCES") == f"{ADMIN} 10.0.1.0/24 10.244.0.0/16"
    assert "Before=network-pre.target" in script and "WantedBy=sysinit.target" in script
    assert validators.shellcheck({"firewall": script}) == ""


def _run_script(tmp_path: Path, client: str | None) -> subprocess.CompletedProcess:
    """The rendered script with stub commands: an `nft` that refuses the check, so nothing is written."""
    stubs = tmp_path / "bin"
    stubs.mkdir(exist_ok=True)
    for name, body in (("nft", 'echo "nft $*" >&2; exit 3'), ("systemctl", "exit 3"), ("cloud-init", "exit 0"),
                       ("apt-get", 'echo "apt-get must not run" >&2; exit 9')):
        (stubs / name).write_text(f"#!/bin/sh\n{body}\n")
        (stubs / name).chmod(0o755)
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "HOME": str(tmp_path)}
    if client is not None:
        env["ADP_SSH_CLIENT"] = client
    script = baremetal.firewall_script([ADMIN], ["10.0.1.0/24"])
    return subprocess.run(["bash", "-s"], input=script, capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize("client, refused", [
    (None, "the deployer's address is unknown"),
    ("192.0.2.7 50022 22", "192.0.2.7 is not in adminCidrs"),
    ("203.0.113.9 50022 22", None),
    ("::ffff:10.0.1.5 50022 22", None),  # IPv4 client on a dual-stack socket
])
def test_firewall_never_locks_out_the_deployer(tmp_path, client, refused):
    result = _run_script(tmp_path, client)
    if refused:
        assert result.returncode == 1 and refused in result.stderr
        assert "nft -c" not in result.stderr, "nothing ran before the refusal"
    else:  # past the guard: stops at the stub's `nft -c` check, before any file is written
        assert result.returncode == 3 and "nft -c -f" in result.stderr, result.stderr


# --- cluster layer: Cilium L2 announcements, LB IPAM, storage ------------------------------------------

def test_cilium_announces_service_addresses(production):
    values = production.named("cilium", "kubernetes:helm.sh/v3:Release").inputs["values"]
    assert values["l2announcements"] == {"enabled": True}
    # kube-proxy replacement serves externalIPs (and L2 announcements need it); the chart's old
    # `externalIPs.enabled` switch was removed in Cilium 1.18 and would be an ignored value.
    assert values["kubeProxyReplacement"] is True, "L2 announcements and externalIPs need kube-proxy replacement"
    assert "externalIPs" not in values
    assert values["k8sClientRateLimit"]["qps"] >= 10 and values["k8sClientRateLimit"]["burst"] > \
        values["k8sClientRateLimit"]["qps"]
    assert values["nodePort"] == {"addresses": ["10.0.1.0/24"]}, "no NodePorts on the public addresses"


def test_lb_ipam_pool_and_l2_policy(production):
    pool = production.named("lb-ipam-pool")
    assert pool.inputs["apiVersion"] == "cilium.io/v2" and pool.inputs["kind"] == "CiliumLoadBalancerIPPool"
    assert pool.inputs["spec"] == {"blocks": [{"cidr": "198.51.100.240/29"}]}
    policy = production.named("l2-announcement-policy")
    assert policy.inputs["kind"] == "CiliumL2AnnouncementPolicy"
    spec = policy.inputs["spec"]
    assert spec["loadBalancerIPs"] is True and "interfaces" not in spec
    assert spec["nodeSelector"]["matchExpressions"] == [
        {"key": "adplatform.io/role", "operator": "In", "values": ["general", "converged"]}]
    cilium = production.named("cilium", "kubernetes:helm.sh/v3:Release")
    for cr in (pool, policy):
        assert cilium.urn in cr.dependencies, "Cilium's operator registers the CRDs: the CRs wait for it"


def test_ranges_and_interfaces_from_config():
    run = _staging()
    assert run.named("lb-ipam-pool").inputs["spec"]["blocks"] == [{"start": "198.51.100.240", "stop": "198.51.100.245"}]
    assert run.named("l2-announcement-policy").inputs["spec"]["interfaces"] == ["^enp1s0$"]


def test_k3s_keeps_local_storage_and_its_own_cloud_controller(production):
    cfg = k3s_config(production, "control-plane-1")
    assert "local-storage" not in cfg["disable"] and {"servicelb", "traefik"} <= set(cfg["disable"])
    assert "disable-cloud-controller" not in cfg
    assert not any("cloud-provider=external" in a for a in cfg["kubelet-arg"])


def test_production_volumes_are_kept_when_their_claim_goes(production):
    sc = production.named("storage-class-local-path-retain", "kubernetes:storage.k8s.io/v1:StorageClass")
    assert sc.inputs["provisioner"] == "rancher.io/local-path"
    assert sc.inputs["reclaimPolicy"] == "Retain" and sc.inputs["volumeBindingMode"] == "WaitForFirstConsumer"
    assert production.outputs["storageClass"] == "local-path-retain"
    assert _staging().outputs["storageClass"] == "local-path", "staging uses K3s' own class"
    # local-path makes directories, not filesystems: the provider offers no XFS class (Storage.xfs_class None).
    assert not [r.name for r in production.of_type("kubernetes:storage.k8s.io/v1:StorageClass")
                if r.name.startswith("storage-class-") and r.name.endswith("-xfs")]


def test_kubeconfig_is_read_through_sudo_for_non_root_users(production):
    assert production.named("kubeconfig", COMMAND).inputs["create"] == "cat /etc/rancher/k3s/k3s.yaml"
    assert _staging().named("kubeconfig", COMMAND).inputs["create"] == "sudo -n cat /etc/rancher/k3s/k3s.yaml"


# --- topology: no CCM runs for the hosts, the kubelet registers where config says they are ---------------

def test_every_host_registers_with_its_region_zone_and_provider(production):
    assert nodes_without_topology(production) == {}
    names = ["control-plane-1", "control-plane-2", "control-plane-3", "workers-1", "workers-2"]  # in HOSTS order
    for name, host in zip(names, HOSTS):
        labels = node_labels(production, name)
        assert (labels["topology.kubernetes.io/region"], labels["topology.kubernetes.io/zone"],
                labels["adplatform.io/provider"]) == ("dc-berlin", host["zone"], "baremetal"), name


def test_outside_production_grade_profiles_the_hosts_default_to_one_region_and_zone():
    labels = node_labels(_staging(), "general-1")
    assert labels["topology.kubernetes.io/region"] == labels["topology.kubernetes.io/zone"] == "baremetal"


def test_production_grade_profiles_require_region_and_every_hosts_zone():
    values = raw()
    del values["bareMetal"]["region"]
    del values["bareMetal"]["hosts"][3]["zone"]
    found = problems(values)
    assert any(p.startswith("adplatform:bareMetal.region must be set in profile compact: the stores spread replicas "
                            "over zones") for p in found), found
    assert [p.split(" ", 1)[0] for p in found if ".zone " in p] == ["adplatform:bareMetal.hosts[3].zone"]


@pytest.mark.parametrize("key, value", [("region", "Berlin DC"), ("zone", "rack-"), ("zone", "r" * 64)])
def test_region_and_zone_must_be_label_values(key, value):
    values = raw()
    (values["bareMetal"] if key == "region" else values["bareMetal"]["hosts"][1])[key] = value
    path = "bareMetal.region" if key == "region" else "bareMetal.hosts[1].zone"
    assert any(p.startswith(f"adplatform:{path} must be a Kubernetes label value: 1-63 characters") and repr(value) in p
               for p in problems(values)), problems(values)


def test_every_size_class_maps():
    from config.catalog import SIZES
    assert set(baremetal.SERVER_TYPES) == set(SIZES)


# --- validation ----------------------------------------------------------------------------------------

def test_bare_metal_block_is_required():
    values = raw()
    del values["bareMetal"]
    assert problems(values) == ["adplatform:bareMetal must be set for provider baremetal: hosts (publicAddress, "
                                "privateAddress, sshUser, pool) and loadBalancerAddresses"]


def test_hosts_must_fill_every_pool_exactly():
    values = raw()
    values["bareMetal"]["hosts"] = values["bareMetal"]["hosts"][:4] + [dict(HOSTS[4], pool="gpu")]
    found = problems(values)
    assert "adplatform:bareMetal.hosts[4].pool must be 'control-plane' or a pool of cluster.pools (workers), " \
           "got 'gpu'" in found
    assert "adplatform:bareMetal.hosts must list exactly 2 host(s) with pool 'workers' " \
           "(cluster.pools[workers].count is 2), got 1" in found


def test_addresses_must_be_unique_valid_and_private_inside_the_subnet():
    values = raw()
    hosts = values["bareMetal"]["hosts"]
    hosts[1]["publicAddress"] = hosts[0]["publicAddress"]
    hosts[2]["privateAddress"] = "192.168.7.3"
    found = problems(values)
    assert "adplatform:bareMetal.hosts[1].publicAddress must be unique; bareMetal.hosts[0] has it too, " \
           "got '198.51.100.11'" in found
    assert "adplatform:bareMetal.hosts[2].privateAddress must lie inside cluster.subnetCidr (10.0.1.0/24): the " \
           "nodes talk to each other (and the firewall trusts them) on that network, got '192.168.7.3'" in found
    values = raw()
    values["bareMetal"]["hosts"][0]["privateAddress"] = "10.0.1.300"
    values["bareMetal"]["hosts"][1]["sshUser"] = "Root!"
    found = problems(values)
    assert found[0].startswith("adplatform:bareMetal.hosts[0].privateAddress must be an IP address")
    assert found[1].startswith("adplatform:bareMetal.hosts[1].sshUser must be a Linux user name")


@pytest.mark.parametrize("block, message", [
    ("2001:db8::/64", "must be an IPv4 CIDR"),
    ("198.51.100.250-198.51.100.240", "start <= stop"),
    # Cilium's pool block takes a `cidr` with its prefix length: a bare address is refused showing the fix
    ("198.51.100.240", "must be an IPv4 CIDR with its prefix length or a range, e.g. 198.51.100.240/32"),
    ("198.51.100.8/29", "must hold only free addresses; hosts use 198.51.100.11, 198.51.100.12"),
    ("10.244.9.0/24", "must not overlap cluster.podCidr (10.244.0.0/16)"),
])
def test_load_balancer_addresses(block, message):
    found = problems(raw(bareMetal=dict(STACK["adplatform:bareMetal"], loadBalancerAddresses=[block])))
    assert found[0].startswith("adplatform:bareMetal.loadBalancerAddresses[0] ") and message in found[0], found


def test_keys_that_do_nothing_on_existing_hosts_are_refused():
    found = problems(raw(cluster={"apiLoadBalancer": {"enabled": True}, "image": "ubuntu-24.04",
                                  "subnetCidr": "10.0.1.0/24", "pools": [{"name": "workers", "location": "fsn1"}]}))
    assert found[0].startswith("adplatform:cluster.apiLoadBalancer.enabled must be false for provider baremetal")
    assert "nodes join at the first control-plane host's private address" in found[0]
    assert "Cilium" not in found[0], "Cilium reaches the API on each node (components/k3s/cilium.py NODE_LOCAL_API)"
    assert any(p.startswith("adplatform:cluster.image is not used by provider baremetal") for p in found)
    assert "adplatform:cluster.pools[workers].location is not used by provider baremetal (the hosts exist " \
           "already); remove it, got 'fsn1'" in found



def test_gateway_keeps_client_addresses_with_local_traffic_policy(production):
    # Cilium's L2 announcements: clients reach the announcing node directly, no balancer in between.
    assert_local_traffic_policy(production)


def test_dhcp_replies_are_accepted_only_from_the_link(production):
    dhcp = [l for l in ruleset(production) if "dport 68" in l or "dport 546" in l]
    assert dhcp == ['ip6 saddr fe80::/10 udp sport 547 udp dport 546 accept comment "DHCPv6 replies from the link"']


def test_a_bare_address_as_the_hosts_subnet_is_refused_showing_the_fix():
    found = problems(raw(bareMetal=dict(STACK["adplatform:bareMetal"], subnetCidr="10.0.1.0")))
    assert "adplatform:bareMetal.subnetCidr must be a network in CIDR notation with its prefix length, e.g. " \
           "10.0.1.0/32 for this one address, got '10.0.1.0'" in found, found
