"""Node autoscaling: the autoscaler's node groups follow the pools, autoscaled nodes configure themselves from
the very scripts the SSH path runs, and the join secrets stay secret (docs/autoscaling.md)."""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

from components.k3s import userdata
from components.k3s.config import NODE_FACT_KEYS
from components.services.autoscaler import group_locations, shares
from config.model import LOCATION_LABEL, Cluster
from providers.hetzner import CLUSTER_CONFIG_FILE, SERVER_TYPES
from tests import validators
from config import load
from tests.conftest import SECRET_KEYS, base_raw, k3s_config, run_raw, script_param, stack_run
from tools.mockrun import Run, Secret, _fake_id

RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET = "kubernetes:core/v1:Secret"
CMD = "command:remote:Command"


def autoscaler_values(run: Run) -> dict:
    return validators.plain(run.named("cluster-autoscaler", RELEASE).inputs["values"])


def env_secret(run: Run) -> Secret:
    data = run.named("cluster-autoscaler-env", SECRET).inputs["stringData"]
    assert isinstance(data, Secret), "the autoscaler's environment (cloud token, join token) must be secret"
    return data


def files_secret(run: Run) -> dict[str, str]:
    data = run.named("cluster-autoscaler-files", SECRET).inputs["stringData"]
    assert isinstance(data, Secret), "the node groups' cloud-init carries the agent join token"
    return {key: validators.plain(value) for key, value in data.value.items()}


def node_configs(run: Run) -> dict[str, dict]:
    return json.loads(files_secret(run)[CLUSTER_CONFIG_FILE])["nodeConfigs"]


def setup_files(cloud_init: str) -> dict[str, str]:
    """The files the user data writes, decoded, by path."""
    doc = yaml.safe_load(cloud_init)
    return {f["path"]: userdata.unpacked(f["content"]) if f.get("encoding") else f["content"]
            for f in doc["write_files"]}


def setup_script(cloud_init: str, step: str) -> str:
    return setup_files(cloud_init)[f"{userdata.SETUP_DIR}/{step}"]


@lru_cache(maxsize=None)
def spread(**cluster) -> Run:
    """An autoscaled general pool over three locations, plus a tainted autoscaled pool of another server type."""
    return run_raw(base_raw(profile="staging", layers={"dataPlane": False}, cluster={"location": "fsn1", "pools": [
        {"name": "general", "locations": ["fsn1", "nbg1", "hel1"], "autoscaling": {"min": 3, "max": 8}},
        {"name": "batch", "role": "general", "serverType": "ccx33", "taints": ["adplatform.io/batch=true:NoSchedule"],
         "labels": {"adplatform.io/workload": "batch"}, "autoscaling": {"min": 0, "max": 3}}], **cluster}))


# --- the node groups follow the pools ---------------------------------------------------------------

def test_production_general_pool_keeps_five_nodes_and_may_add_five(production):
    general = [n for n in production.of_type("hcloud:index/server:Server") if "-general-" in n.inputs["name"]]
    assert len(general) == 5, "the floor (autoscaling.min) is Pulumi-managed"
    [group] = autoscaler_values(production)["autoscalingGroups"]
    assert group == {"name": "adp-production-general-fsn1", "minSize": 0, "maxSize": 5,
                     "instanceType": SERVER_TYPES["dedicated-large"], "region": "fsn1"}
    assert autoscaler_values(production)["cloudProvider"] == "hetzner"


def test_groups_split_the_extra_nodes_over_the_pools_locations():
    groups = {g["name"]: g for g in autoscaler_values(spread())["autoscalingGroups"]}
    assert {name: (g["region"], g["maxSize"], g["instanceType"]) for name, g in groups.items()} == {
        "adp-test-general-fsn1": ("fsn1", 2, SERVER_TYPES["medium"]),
        "adp-test-general-nbg1": ("nbg1", 2, SERVER_TYPES["medium"]),
        "adp-test-general-hel1": ("hel1", 1, SERVER_TYPES["medium"]),
        "adp-test-batch-fsn1": ("fsn1", 3, "ccx33")}
    assert all(g["minSize"] == 0 for g in groups.values()), "the floor is Pulumi's nodes, not group members"


def test_an_unpinned_gcp_pool_gets_a_managed_instance_group_in_every_spread_zone():
    """A MIG is zonal: one group would have put every autoscaled node of staging-gcp's general pool in zone a."""
    run = stack_run("staging-gcp")
    migs = run.of_type("gcp:compute/instanceGroupManager:InstanceGroupManager")
    assert sorted(m.inputs["zone"] for m in migs) == ["europe-west3-a", "europe-west3-b", "europe-west3-c"]
    assert [g["maxSize"] for g in autoscaler_values(run)["autoscalingGroups"]] == [1, 1, 1], "max 5 - min 2"


def test_an_unpinned_aws_pool_gets_one_single_zone_auto_scaling_group_per_spread_zone():
    run = stack_run("staging-aws")
    zones = {mockrun_id: r.inputs["availabilityZone"] for r in run.of_type("aws:ec2/subnet:Subnet")
             for mockrun_id in [_fake_id(r.name)]}
    groups = [g.inputs["vpcZoneIdentifiers"] for g in run.of_type("aws:autoscaling/group:Group")]
    assert all(len(subnets) == 1 for subnets in groups), "AZRebalance would terminate nodes of a multi-zone group"
    assert sorted(zones[s] for [s] in groups) == ["eu-central-1a", "eu-central-1b", "eu-central-1c"]


def test_an_unpinned_azure_pool_keeps_one_scale_set_over_the_spread_zones():
    [vmss] = stack_run("staging-azure").of_type("azure-native:compute:VirtualMachineScaleSet")
    assert vmss.inputs["zones"] == ["1", "2", "3"] and "zoneBalance" not in vmss.inputs, \
        "a scale set never deletes running nodes to rebalance zones unless zoneBalance is set"


def test_pinned_and_cluster_located_pools_ignore_the_providers_spread():
    cluster = Cluster.model_validate({"location": None, "pools": [
        {"name": "general", "role": "general", "autoscaling": {"min": 0, "max": 3}},
        {"name": "pinned", "role": "general", "locations": ["z2"], "autoscaling": {"min": 0, "max": 3}},
        {"name": "single", "role": "general", "location": "z3", "autoscaling": {"min": 0, "max": 3}}]})
    spread_zones = ("z1", "z2", "z3")
    assert {p.name: group_locations(p, cluster, spread_zones) for p in cluster.autoscaled_pools} == {
        "general": ["z1", "z2", "z3"], "pinned": ["z2"], "single": ["z3"]}
    assert group_locations(cluster.autoscaled_pools[0], cluster, (None,)) == [None], "the provider's default"


def test_a_pools_groups_in_several_locations_count_as_similar_for_balancing(production):
    """The autoscaler balances only groups whose labels match but for the standard zone labels; our groups carry
    their location in adplatform.io/location (cluster-autoscaler 1.36.1 nodegroupset BasicIgnoredLabels)."""
    assert autoscaler_values(production)["extraArgs"]["balancing-ignore-label"] == LOCATION_LABEL


@pytest.mark.parametrize("extra, parts, expected", [(5, 1, [5]), (5, 3, [2, 2, 1]), (2, 3, [1, 1, 0]), (0, 2, [0, 0])])
def test_shares_sum_to_the_extra_nodes(extra, parts, expected):
    assert shares(extra, parts) == expected and sum(shares(extra, parts)) == extra


def test_group_labels_and_taints_are_what_its_nodes_register_with():
    run = spread()
    configs = node_configs(run)
    batch = configs["adp-test-batch-fsn1"]
    assert batch["labels"] == {"adplatform.io/pool": "batch", "adplatform.io/role": "general",
                               "adplatform.io/workload": "batch", "adplatform.io/location": "fsn1",
                               "adplatform.io/provider": "hetzner"}
    assert batch["taints"] == [{"key": "adplatform.io/batch", "value": "true", "effect": "NoSchedule"}]
    for name, group in configs.items():
        k3s = yaml.safe_load(script_param(setup_script(group["cloudInit"], "k3s-install.sh"), "K3S_CONFIG"))
        assert k3s["node-label"] == [f"{k}={v}" for k, v in sorted(group["labels"].items())], name
        assert k3s["node-taint"] == [f"{t['key']}={t['value']}:{t['effect']}" for t in group["taints"]], name
    assert configs["adp-test-general-hel1"]["labels"]["adplatform.io/location"] == "hel1"


def test_autoscaled_servers_land_in_the_stacks_network_firewall_and_labels(staging):
    env = env_secret(staging).value
    # The mocks' ids: the network and firewall resources' (tools/mockrun.py _fake_id).
    assert env["HCLOUD_NETWORK"] == _fake_id("network") and env["HCLOUD_FIREWALL"] == _fake_id("firewall")
    ccm = validators.plain(staging.named("hcloud", SECRET).inputs["stringData"])
    assert env["HCLOUD_TOKEN"] == ccm["token"], "the CCM's token"
    assert env["HCLOUD_SSH_KEY"] and env["HCLOUD_PUBLIC_IPV4"] == env["HCLOUD_PUBLIC_IPV6"] == "true"
    [group] = node_configs(staging).values()
    pulumi_server = staging.named("general-1", "hcloud:index/server:Server").inputs["labels"]
    assert group["serverLabels"] == pulumi_server
    spread_group = staging.named("spread-general", "hcloud:index/placementGroup:PlacementGroup")
    assert group["placementGroup"] == spread_group.inputs["name"], "2 Pulumi + 2 autoscaled servers fit one group"


# Linux refuses to start a process with one environment string over MAX_ARG_STRLEN (32 pages: 128 KiB), and the API
# server refuses a Secret whose data exceeds 1 MiB (MaxSecretSize).
MAX_ENV_VALUE = 128 * 1024
MAX_SECRET_DATA = 1024 * 1024


def many_groups() -> Run:
    """Twelve Hetzner node groups: four autoscaled pools over three locations each."""
    pools = [{"name": f"work{i}", "role": "general", "locations": ["fsn1", "nbg1", "hel1"],
              "labels": {"adplatform.io/workload": f"work{i}"}, "autoscaling": {"min": 0, "max": 3}}
             for i in range(4)]
    return run_raw(base_raw(profile="staging", layers={"dataPlane": False},
                            cluster={"location": "fsn1", "pools": [{"name": "general"}, *pools]}))


def test_many_node_groups_cloud_init_reaches_the_autoscaler_as_a_mounted_file():
    run = many_groups()
    files = files_secret(run)
    assert len(json.loads(files[CLUSTER_CONFIG_FILE])["nodeConfigs"]) == 12
    assert sum(len(v.encode()) for v in files.values()) <= MAX_SECRET_DATA
    env = env_secret(run).value
    assert all(len(str(validators.plain(v)).encode()) < MAX_ENV_VALUE for v in env.values())
    assert not [k for k in env if k.startswith("HCLOUD_CLUSTER_CONFIG")], "no cloud-init in the environment"
    values = autoscaler_values(run)
    [mount] = values["extraVolumeSecrets"].values()
    assert mount["name"] == "cluster-autoscaler-files"
    assert values["extraEnv"]["HCLOUD_CLUSTER_CONFIG_FILE"] == f"{mount['mountPath']}/{CLUSTER_CONFIG_FILE}"


def test_a_group_that_would_overflow_its_spread_group_gets_none():
    # general-fsn1: 1 Pulumi server + 2 autoscaled fit; batch has no Pulumi server, hence no spread group.
    configs = node_configs(spread())
    assert configs["adp-test-general-fsn1"]["placementGroup"] == "adp-test-general"
    assert "placementGroup" not in configs["adp-test-batch-fsn1"]


# --- a pool whose nodes are all the autoscaler's (min 0) is maintained like the others -----------------------

BATCH_TAINT = {"key": "adplatform.io/batch", "operator": "Equal", "value": "true", "effect": "NoSchedule"}


def test_kured_reboots_the_nodes_of_a_tainted_pool_without_pulumi_nodes():
    """spread()'s batch pool has autoscaling.min 0: every node it ever has is the autoscaler's."""
    tolerations = validators.plain(spread().named("kured", RELEASE).inputs["values"])["tolerations"]
    assert BATCH_TAINT in tolerations


def test_upgrade_plan_reaches_the_nodes_of_a_tainted_pool_without_pulumi_nodes():
    spec = spread().named("upgrade-plan-agent-plan", "kubernetes:upgrade.cattle.io/v1:Plan").inputs["spec"]
    assert BATCH_TAINT in spec["tolerations"]


def test_an_ad_service_may_run_on_a_pool_the_autoscaler_grows_from_zero():
    from components.ads import plan as ads_plan
    from tests.test_ads_config import ads

    raw = base_raw(**ads({"bidding": {"pool": "batch"}}), cluster={"pools": [  # merged into the profile's by name
        {"name": "batch", "role": "general", "taints": ["adplatform.io/batch=true:NoSchedule"],
         "autoscaling": {"min": 0, "max": 3}}]})
    cfg = load("test", raw, SECRET_KEYS).config
    bidding = cfg.ad_services.services["bidding"]
    placed = ads_plan("bidding", bidding, cfg.ad_services, cfg, {s: None for s in bidding.stores}, None, None)
    assert placed.node_selector == {"adplatform.io/pool": "batch"}, "pending pods there make the autoscaler add nodes"
    assert placed.tolerations == (BATCH_TAINT,)


# --- autoscaled nodes run the SSH path's scripts ----------------------------------------------------

def test_user_data_runs_exactly_the_ssh_paths_tuning_script(staging):
    [group] = node_configs(staging).values()
    ssh_path = validators.plain(staging.named("tune-general-1", CMD).inputs["stdin"])
    assert setup_script(group["cloudInit"], "tune.sh") == ssh_path


def test_user_data_joins_with_the_ssh_paths_k3s_config_but_the_node_facts(staging):
    [group] = node_configs(staging).values()
    install = setup_script(group["cloudInit"], "k3s-install.sh")
    autoscaled = yaml.safe_load(script_param(install, "K3S_CONFIG"))
    pulumi_managed = k3s_config(staging, "general-1")
    assert autoscaled == {k: v for k, v in pulumi_managed.items() if k not in NODE_FACT_KEYS}
    assert autoscaled["token"] == pulumi_managed["token"], "the agent token"
    server_token = k3s_config(staging, "control-plane-1")["token"]
    assert server_token != autoscaled["token"] and server_token not in group["cloudInit"]
    # The rest of the install script is the SSH path's too.
    ssh_install = validators.plain(staging.named("k3s-general-1", CMD).inputs["stdin"])
    assert install.split("main() {", 1)[1] == ssh_install.split("main() {", 1)[1]


def test_node_facts_then_tuning_then_k3s_in_one_unit_after_the_providers_boot_commands(staging):
    [group] = node_configs(staging).values()
    doc = yaml.safe_load(group["cloudInit"])
    unit = setup_files(group["cloudInit"])[f"/etc/systemd/system/{userdata.SETUP_UNIT}"]
    starts = [line.split()[-1].rsplit("/", 1)[1] for line in unit.splitlines() if line.startswith("ExecStart=")]
    assert starts == ["node-facts.sh", "tune.sh", "k3s-install.sh"]
    assert "After=cloud-final.service" in unit, "wait_for_boot inside the scripts would wait on cloud-init itself"
    assert doc["runcmd"][-1] == ["systemctl", "start", "--no-block", userdata.SETUP_UNIT]
    assert doc["ssh_authorized_keys"] == [yaml.safe_load(Path("Pulumi.staging.yaml").read_text())["config"][
        "adplatform:sshPublicKeys"][0]]


def test_boot_commands_of_the_provider_run_first():
    from components.k3s.userdata import JoinSettings, group_spec, render_user_data
    from config.model import Pool
    from providers.base import ClusterProfile
    profile = ClusterProfile(k3s_disable=(), external_cloud_provider=True, cilium_values={},
                             node_boot_commands=("echo provider-id",))
    join = JoinSettings("v1.36.4+k3s1", "10.0.1.2", "token", profile, "10.244.0.0/16", "10.96.0.0/16", (), "hetzner")
    pool = Pool(name="general", role="general", autoscaling={"min": 0, "max": 2})
    doc = yaml.safe_load(render_user_data(group_spec("general", pool, None, "hetzner"), join, "token", "10.0.1.2"))
    assert doc["bootcmd"] == [["sh", "-c", "echo provider-id"]]


def test_user_data_scripts_pass_shellcheck(staging):
    [group] = node_configs(staging).values()
    scripts = {step: setup_script(group["cloudInit"], step) for step in userdata.STEPS}
    assert validators.shellcheck(scripts) == ""


def test_every_autoscaled_pools_user_data_is_valid_cloud_init(staging):
    documents = {k: v for k, v in validators.cloud_init_documents(staging).items() if CLUSTER_CONFIG_FILE in k}
    assert documents, "the autoscaled pool's user data is checked by test_artifacts' cloud-init check"
    for name, document in documents.items():
        assert validators.cloud_init_problems(document) == [], name


FAKE_TOOLS = {
    "hostname": "echo adp-staging-general-nbg1-5f3a",
    "getent": 'echo "10.0.0.2   STREAM $2"',
    "curl": "exit 0",
    "ip": 'echo "10.0.0.2 via 10.0.0.1 dev enp7s0 src 10.0.1.7 uid 0"',
}


def test_node_facts_script_writes_the_machines_name_and_private_address(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool, body in FAKE_TOOLS.items():
        (bin_dir / tool).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / tool).chmod(0o755)
    drop_in = tmp_path / "config.yaml.d" / "10-node.yaml"
    script = userdata.facts_script("10.0.0.2").replace(userdata.NODE_FACTS_DROP_IN, str(drop_in))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    subprocess.run(["bash", "-c", script], env=env, check=True, capture_output=True, text=True)
    assert yaml.safe_load(drop_in.read_text()) == {"node-name": "adp-staging-general-nbg1-5f3a", "node-ip": "10.0.1.7"}


# --- secrets stay secret ----------------------------------------------------------------------------

def test_join_and_cloud_secrets_are_only_in_the_secret(staging):
    values = json.dumps(autoscaler_values(staging))
    agent_token = k3s_config(staging, "general-1")["token"]
    hcloud_token = env_secret(staging).value["HCLOUD_TOKEN"]
    for secret in (agent_token, hcloud_token, "nodeConfigs", "#cloud-config"):
        assert secret not in values
    assert autoscaler_values(staging)["envFromSecret"] == "cluster-autoscaler-env"


def test_user_data_output_is_secret():
    """The Output itself (every provider's machine input receives it), not only the Secret holding it."""
    import asyncio

    from components.k3s.userdata import JoinSettings, group_spec, user_data
    from config.model import Pool
    from providers.base import ClusterProfile
    from concurrent.futures import ThreadPoolExecutor

    def is_secret() -> bool:  # on a thread of its own: its event loop leaves the tests' untouched
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            join = JoinSettings("v1.36.4+k3s1", "10.0.1.2", "agent-token", ClusterProfile(
                k3s_disable=(), external_cloud_provider=True, cilium_values={}), "10.244.0.0/16", "10.96.0.0/16", (), "hetzner")
            output = user_data(group_spec("general", Pool(name="general", role="general",
                                                          autoscaling={"min": 0, "max": 1}), None, "hetzner"), join)
            return loop.run_until_complete(output.is_secret())
        finally:
            loop.close()

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(is_secret).result(), "the user data carries the agent token"


# --- placement and safety in production -------------------------------------------------------------

def test_production_runs_two_leader_elected_replicas_on_the_control_plane_with_a_budget(production):
    values = autoscaler_values(production)
    assert values["replicaCount"] == 2 and values["extraArgs"]["leader-elect"] is True
    assert values["podDisruptionBudget"] == {"maxUnavailable": 1}
    assert values["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert values["nodeSelector"] == {"node-role.kubernetes.io/control-plane": "true"}
    assert {"key": "CriticalAddonsOnly", "operator": "Equal", "value": "true", "effect": "NoExecute"} in \
        values["tolerations"]
    assert values["priorityClassName"] == "system-cluster-critical"


def test_scale_down_is_conservative_and_configurable(production):
    args = autoscaler_values(production)["extraArgs"]
    assert args["skip-nodes-with-system-pods"] is True and args["skip-nodes-with-local-storage"] is True
    assert args["expander"] == "least-waste" and args["balance-similar-node-groups"] is True
    assert (args["scale-down-delay-after-add"], args["scale-down-unneeded-time"],
            args["scale-down-utilization-threshold"]) == ("10m", "10m", 0.5)


NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


def _egress_addresses(run: Run) -> list[dict]:
    """The autoscaler namespace's egress rules to given addresses (none: no such policy)."""
    found = [r for r in run.of_type(NETPOL) if r.name == "netpol-cluster-autoscaler-allow-egress-addresses"]
    return validators.plain(found[0].inputs["spec"])["egress"] if found else []


@pytest.mark.parametrize("stack", ["staging-aws", "staging-gcp", "staging-azure"])
def test_on_the_clouds_the_autoscaler_reaches_the_instance_metadata_service_and_nothing_else_does(stack):
    """Its credentials are the control plane's (AWS instance role, GCP service account, Azure managed identity),
    fetched from 169.254.169.254 on port 80, which every namespace's internet egress excludes: without this rule it
    cannot authenticate and exits at start."""
    run = stack_run(stack)
    assert _egress_addresses(run) == [{"to": [{"ipBlock": {"cidr": "169.254.169.254/32"}}],
                                       "ports": [{"protocol": "TCP", "port": 80}]}]
    others = [r.inputs["metadata"]["namespace"] for r in run.of_type(NETPOL)
              if "169.254.169.254" in json.dumps(validators.plain(r.inputs["spec"]))
              and r.inputs["metadata"]["namespace"] != "cluster-autoscaler"]
    assert not others, f"only the autoscaler may reach the node's credentials: {others}"


def test_on_hetzner_the_autoscaler_needs_no_instance_metadata(production):
    """Its credentials are the token in its Secret."""
    assert _egress_addresses(production) == []


def test_a_new_node_group_config_restarts_the_autoscaler():
    """The Hetzner provider reads its cluster config (every group's cloud-init) and environment once, at start: the
    pods carry a digest of both, so a new K3s version, tuning or token reaches the nodes it creates next."""
    def digest(run: Run) -> str:
        return autoscaler_values(run)["podAnnotations"]["adplatform.io/config-sha256"]

    assert isinstance(digest(spread()), str) and len(digest(spread())) == 64, \
        "a plain digest: a secret one would hide every change of the release's values from previews"
    assert digest(spread(k3sVersion="v1.36.3+k3s1")) != digest(spread())


def test_a_hetzner_pools_groups_in_several_locations_are_similar_despite_the_providers_group_labels():
    """The Hetzner template node carries hcloud/node-group and csi.hetzner.cloud/location, different per group
    (cluster-autoscaler 1.36.1 hetzner_node_group.go): both are ignored when balancing, each its own flag."""
    args = autoscaler_values(spread())["extraArgs"]
    ignored = {value for key, value in args.items() if key.split("_", 1)[0] == "balancing-ignore-label"}
    assert ignored == {LOCATION_LABEL, "hcloud/node-group", "csi.hetzner.cloud/location"}


def test_no_autoscaler_where_no_pool_autoscales():
    run = stack_run("production-baremetal")
    assert not [r for r in run.of_type(RELEASE) if r.name == "cluster-autoscaler"]


# --- user data sizes ------------------------------------------------------------------------------------------------
# What each cloud accepts as user data (bytes, before base64): AWS EC2 16 KB (RunInstances UserData, "limited to 16
# KB"), Hetzner 32 KiB (Create a Server: user_data), GCP 256 KB per metadata value, Azure 64 KB customData (base64 of
# at most 65535 bytes, so about 48 KB raw). The rendered scripts are compressed (userdata.ENCODING) to stay below AWS's.
USER_DATA_LIMITS = {"staging-aws": 16 * 1024, "staging": 32 * 1024, "staging-gcp": 256 * 1024,
                    "staging-azure": 48 * 1024}


def _group_user_data(stack: str) -> list[bytes]:
    run = stack_run(stack)
    if stack == "staging-aws":
        return [base64.b64decode(validators.plain(r.inputs["userData"]))
                for r in run.of_type("aws:ec2/launchTemplate:LaunchTemplate")]
    if stack == "staging-gcp":
        return [validators.plain(r.inputs["metadata"])["user-data"].encode()
                for r in run.of_type("gcp:compute/instanceTemplate:InstanceTemplate")]
    if stack == "staging-azure":
        return [base64.b64decode(validators.plain(r.inputs["virtualMachineProfile"])["osProfile"]["customData"])
                for r in run.of_type("azure-native:compute:VirtualMachineScaleSet")]
    return [node["cloudInit"].encode() for node in node_configs(run).values()]


@pytest.mark.parametrize("stack", sorted(USER_DATA_LIMITS))
def test_autoscaled_nodes_user_data_fits_the_providers_limit(stack):
    found = _group_user_data(stack)
    assert found, f"{stack} autoscales a pool: its node groups carry user data"
    for data in found:
        document = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data  # AWS: gzipped (providers/aws.py)
        assert document.startswith(b"#cloud-config") and len(data) <= USER_DATA_LIMITS[stack], (stack, len(data))


@pytest.mark.parametrize("stack, encodings", [("staging-aws", {None}), ("staging", {"gz+b64"})])
def test_scripts_go_in_as_text_only_where_the_provider_gzips_the_whole_document(stack, encodings):
    # AWS gzips the document (16 KiB): text compresses there far better than scripts gzipped and base64-encoded one
    # by one (16.5 KiB, over the limit, before this); Hetzner sends the document as it is (32 KiB): each script packed.
    for data in _group_user_data(stack):
        document = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        files = yaml.safe_load(document.decode())["write_files"]
        scripts = [f for f in files if f["path"].endswith(".sh")]
        assert len(scripts) == 3 and {f.get("encoding") for f in scripts} == encodings, stack
