"""ScyllaDB: the operator, the nodes (NodeConfig, local XFS vs CSI), the ScyllaCluster (racks, placement,
sizing, production mode), authentication and the keyspace Job, Scylla Manager (backups, repairs), the endpoint."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from components import charts
from components.data.placement import Resources, sized
from components.data.scylladb import bootstrap, cluster, storage
from components.host.profiles import BASELINE_SYSCTLS, PROFILES
from config import ConfigError, load
from config.catalog import SIZES
from config.model import ROLE_LABEL
from tests import validators, variants
from tests.conftest import SECRET_KEYS, base_raw, k3s_config, stack_run
from tests.stores import (RELEASE, SECRET, assert_spread_over_nodes, chart_of, expected_tolerations, policy, pools,
                          ports, refused_memory, stack_config, string_data)
from tools.mockrun import Secret

SCYLLA = "kubernetes:scylla.scylladb.com/v1:ScyllaCluster"
NODE_CONFIG = "kubernetes:scylla.scylladb.com/v1alpha1:NodeConfig"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
JOB = "kubernetes:batch/v1:Job"
NAMESPACE = "kubernetes:core/v1:Namespace"
PASSWORD = "random:index/randomPassword:RandomPassword"
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
SCRIPTS = Path(__file__).resolve().parent.parent / "components" / "data" / "scylladb" / "scripts"


# --- helpers ---------------------------------------------------------------------------------------------
def network_run():
    """Production on Hetzner with ScyllaDB on the CSI volumes instead of the local NVMe (its pools over three
    locations: a run shared with other files)."""
    return variants.spanning_variant()


def spec(run) -> dict:
    return run.named("scylla-cluster", SCYLLA).inputs["spec"]


def scylla_pools(run):
    return pools(run, "scylladb")


def job_container(run, name: str) -> dict:
    return run.named(name, JOB).inputs["spec"]["template"]["spec"]["containers"][0]


def config_map_data(run, name: str) -> dict:
    return run.named(name, CONFIG_MAP).inputs["data"]


# --- the operator ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("stack", ["production", "staging"])
def test_operator_chart_and_crds_are_pinned_to_the_release(stack):
    run = stack_run(stack)
    rel = run.named("scylla-operator", RELEASE).inputs
    assert chart_of(run, "scylla-operator") == (
        "scylla-operator", "v1.21.1", "https://scylla-operator-charts.storage.googleapis.com/stable", "scylla-operator",
        False)
    assert charts.CHARTS["scylla-operator"] is charts.SCYLLA_OPERATOR
    assert rel["values"]["image"] == {"repository": "docker.io/scylladb", "tag": "1.21.1", "pullPolicy": "IfNotPresent"}
    assert rel["values"]["webhook"] == {"createSelfSignedCertificate": True}  # cert-manager issues the webhook's cert
    crds = sorted((r for r in run.resources if r.name.startswith("scylla-operator-crds-")), key=lambda r: r.name)
    urls = {r.inputs["file"] for r in crds}
    assert urls == set(charts.SCYLLA_OPERATOR_CRDS.urls) and len(urls) == 11
    assert all("/scylla-operator/v1.21.1/pkg/api/scylla/" in u for u in urls)
    assert {r.protect for r in crds} == {stack == "production"}
    release_deps = {run.by_urn(u).name for u in run.named("scylla-operator", RELEASE).dependencies}
    assert {r.name for r in crds} <= release_deps, "the CRDs are applied before Helm looks for them"
    assert not [r for r in run.of_type(RELEASE) if r.inputs["chart"] == "scylla"], "the cluster is our own CR"


def test_operator_and_webhook_are_ha_in_production_single_in_staging(production, staging):
    prod = production.named("scylla-operator", RELEASE).inputs["values"]
    assert prod["replicas"] == prod["webhookServerReplicas"] == 2  # > 1: the chart adds both PDBs
    stage = staging.named("scylla-operator", RELEASE).inputs["values"]
    assert stage["replicas"] == stage["webhookServerReplicas"] == 1  # 1: the chart adds none (drains go on)
    for values in (prod, stage):
        # templates/_helpers.tpl selectorLabels; webhookserver.deployment.yaml labels
        assert_spread_over_nodes(values["affinity"], {"app.kubernetes.io/name": "scylla-operator",
                                                      "app.kubernetes.io/instance": "scylla-operator"})
        assert_spread_over_nodes(values["webhookServerAffinity"], {"app.kubernetes.io/name": "webhook-server",
                                                                   "app.kubernetes.io/instance": "webhook-server"})
        # the general nodes: no tolerations, no database pool
        placement_keys = {"tolerations", "nodeSelector", "webhookServerTolerations", "webhookServerNodeSelector"}
        assert not placement_keys & set(values)
        for key in ("resources", "webhookServerResources"):
            assert values[key]["requests"]["cpu"] and values[key]["limits"]["memory"]


# --- racks, placement, sizing ------------------------------------------------------------------------------
@pytest.mark.parametrize(("nodes", "members", "rf"), [
    (1, [1, 0, 0], 1), (2, [1, 1, 0], 2), (3, [1, 1, 1], 3), (4, [1, 1, 1], 3), (5, [1, 1, 1], 3),
    (6, [2, 2, 2], 3), (7, [2, 2, 2], 3), (9, [3, 3, 3], 3)])
def test_three_racks_of_equal_size_below_three_nodes_some_empty(nodes, members, rf):
    """Each rack with members holds a full replica: equal racks keep the data per node equal; extra nodes are
    spares. Below 3 nodes the remaining racks stay, at 0 members, and hold no replica."""
    assert cluster.racks(SimpleNamespace(nodes=nodes, spans_locations=False)) == members
    assert cluster.replication_factor(SimpleNamespace(nodes=nodes, spans_locations=False)) == rf


def rack_removal_refusals(old: list[int], new: list[int]) -> list[str]:
    """What scylla-operator v1.21.1's webhook refuses on an update (pkg/api/scylla/validation/cluster_validation.go
    ValidateScyllaClusterSpecUpdate): a rack, named rack<i> by us, gone from the spec while it still had members."""
    return [f"rack{i + 1}" for i, members in enumerate(old) if i >= len(new) and members]


@pytest.mark.parametrize("before", range(1, 10))
@pytest.mark.parametrize("after", range(1, 10))
def test_changing_the_node_count_never_removes_a_rack_with_members(before, after):
    """The operator refuses to drop a rack that still has members; the program cannot know the earlier count, so
    every count renders the same racks and a shrink scales a rack down (to 0) instead of dropping it."""
    old, new = (cluster.racks(SimpleNamespace(nodes=n, spans_locations=False)) for n in (before, after))
    assert rack_removal_refusals(old, new) == []


@pytest.mark.parametrize(("stack", "racks", "rf"), [("production", [1, 1, 1], 3), ("staging", [1, 0, 0], 1)])
def test_racks_members_and_replication_follow_the_pool(stack, racks, rf):
    run = stack_run(stack)
    dc = spec(run)["datacenter"]
    assert dc["name"] == "dc1"
    assert [r["members"] for r in dc["racks"]] == racks and sum(racks) == sum(p.count for p in scylla_pools(run))
    assert [r["name"] for r in dc["racks"]] == [f"rack{i + 1}" for i in range(len(racks))]
    cql = config_map_data(run, "scylla-bootstrap-scripts")["keyspaces.cql"]
    assert ("CREATE KEYSPACE IF NOT EXISTS ads WITH replication = "
            f"{{'class': 'NetworkTopologyStrategy', 'dc1': {rf}}};") in cql
    assert f"ALTER KEYSPACE ads WITH replication = {{'class': 'NetworkTopologyStrategy', 'dc1': {rf}}};" in cql
    assert 'GRANT MODIFY ON KEYSPACE ads TO "bidding";' in cql and "GRANT ALL" not in cql
    out = run.outputs["dataPlane"]["scylladb"]
    assert out["endpoint"]["replicationFactor"] == out["shape"]["replication"] == rf == len([n for n in racks if n])


@pytest.mark.parametrize(("stack", "required"), [("production", True), ("staging", False)])
def test_members_run_on_the_scylladb_pool_one_per_node(stack, required):
    run = stack_run(stack)
    own = scylla_pools(run)
    taints = {t for p in own for t in p.node_taints}
    assert taints == {"adplatform.io/dedicated=scylladb:NoSchedule"}
    for rack in spec(run)["datacenter"]["racks"]:
        placement = rack["placement"]
        assert placement["tolerations"] == expected_tolerations(sorted(taints))
        [term] = placement["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert term == {"matchExpressions": [{"key": ROLE_LABEL, "operator": "In", "values": ["scylladb"]}]}
        anti = placement["podAntiAffinity"]
        if required:
            [term] = anti["requiredDuringSchedulingIgnoredDuringExecution"]
        else:
            term = anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
        assert term["topologyKey"] == "kubernetes.io/hostname"
        # across racks: every ScyllaDB pod of the cluster, whatever its rack
        assert term["labelSelector"]["matchLabels"] == {"app.kubernetes.io/name": "scylla", "scylla/cluster": "scylla"}
        # ... of the scheduled pod's own type: the operator copies this placement onto its cleanup Jobs, whose
        # pods carry the cluster labels too; members must not repel them (scylladb/scylla-operator#1347)
        assert term["matchLabelKeys"] == ["scylla-operator.scylladb.com/pod-type"]
        assert "scylla-operator.scylladb.com/pod-type" not in term["labelSelector"]["matchLabels"]  # API rule


@pytest.mark.parametrize(("stack", "cpus"), [("production", "12"), ("staging", "2")])
def test_resources_are_guaranteed_whole_cpus_sized_from_the_pool(stack, cpus):
    run = stack_run(stack)
    [pool] = scylla_pools(run)
    size = SIZES[pool.size]
    expected = sized(SimpleNamespace(size=size, shared_by=1, pools=(pool.name,)), 0.85)
    for rack in spec(run)["datacenter"]["racks"]:
        res, agent = rack["resources"], rack["agentResources"]
        assert res["requests"] == res["limits"] == {"cpu": cpus, "memory": expected.memory}
        assert res["limits"]["cpu"] == expected.cpu  # whole CPUs: the static CPU manager pins them
        assert agent["requests"] == agent["limits"], "one Burstable container makes the pod Burstable"
        shards = int(cpus)
        assert Resources(cpus, expected.memory).memory_mib >= shards * 1024 + 1536  # 1 GiB per shard + reserve


def test_static_cpu_manager_runs_on_the_scylladb_nodes(production):
    config = k3s_config(production, "scylladb-1")
    assert "cpu-manager-policy=static" in config["kubelet-arg"]


def test_too_little_memory_for_the_shards_is_refused():
    """Production mode refuses less than 1 GiB per shard; the error names the keys that fix it."""
    assert refused_memory("scylladb", "8", "6Gi") == (
        "adplatform:dataPlane.scylladb gets cpu 8 and memory 6Gi from its pools ['scylladb']: ScyllaDB in production "
        "mode needs 1024Mi per shard and 1536Mi besides, so at least 9728Mi; set dataPlane.scylladb.cpu and memory")


# --- storage -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("stack", "size", "image"), [("production", "250Gi", "264Gi"), ("staging", "40Gi", "43Gi")])
def test_local_nvme_gets_an_xfs_loop_device_and_the_local_csi_driver(stack, size, image):
    run = stack_run(stack)
    spec_ = spec(run)
    assert spec_["developerMode"] is False and spec_["automaticOrphanedNodeCleanup"] is True
    for rack in spec_["datacenter"]["racks"]:
        assert rack["storage"] == {"storageClassName": "scylladb-local-xfs", "capacity": size}
    node = run.named("scylla-node-config", NODE_CONFIG).inputs
    disks = node["spec"]["localDiskSetup"]
    assert disks["loopDevices"] == [{"name": "persistent-volumes", "imagePath": "/var/lib/persistent-volumes.img",
                                     "size": image}]
    assert disks["filesystems"] == [{"device": "/dev/loops/persistent-volumes", "type": "xfs"}]
    [mount] = disks["mounts"]
    assert mount["mountPoint"] == storage.VOLUMES_DIR and "prjquota" in mount["unsupportedOptions"]
    assert node["metadata"]["annotations"]["pulumi.com/waitFor"] == "condition=Available"
    sc = run.named("scylla-local-xfs", "kubernetes:storage.k8s.io/v1:StorageClass").inputs
    assert (sc["provisioner"], sc["volumeBindingMode"], sc["parameters"]) == (
        "local.csi.scylladb.com", "WaitForFirstConsumer", {"csi.storage.k8s.io/fstype": "xfs"})
    pod = run.named("scylla-local-csi-daemonset", "kubernetes:apps/v1:DaemonSet").inputs["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux", ROLE_LABEL: "scylladb"}
    assert pod["tolerations"] == expected_tolerations(["adplatform.io/dedicated=scylladb:NoSchedule"])
    driver = pod["containers"][0]
    assert driver["image"] == "docker.io/scylladb/local-csi-driver:1.0.1"
    assert f"--volumes-dir={storage.VOLUMES_DIR}" in driver["args"]
    assert {v["hostPath"]["path"] for v in pod["volumes"] if v["name"] == "volumes-dir"} == {mount["mountPoint"]}
    assert all(re.search(r":v\d+\.\d+\.\d+@sha256:", c["image"]) for c in pod["containers"][1:])
    daemonset = run.named("scylla-local-csi-daemonset", "kubernetes:apps/v1:DaemonSet")
    deps = {run.by_urn(u).name for u in daemonset.dependencies}
    assert "scylla-node-config" in deps, "the hostPath exists once the NodeConfig has mounted it"


def test_the_local_image_fits_the_servers_disk():
    assert storage.loop_size("250Gi") == "264Gi" and storage.loop_size("1Ti") == "1077Gi"
    with pytest.raises(ValueError):
        storage.loop_size("100G")


def xfs_class(run) -> str | None:
    """The provider's StorageClass whose CSI driver formats volumes XFS, if this run has one."""
    found = [sc.inputs["metadata"]["name"] for sc in run.of_type(STORAGE_CLASS)
             if (sc.inputs.get("parameters") or {}).get("csi.storage.k8s.io/fstype") == "xfs"
             and sc.inputs["metadata"]["name"] != storage.LOCAL_STORAGE_CLASS]
    assert len(found) <= 1, found
    return found[0] if found else None


def test_network_storage_runs_production_mode_on_the_providers_xfs_class():
    """`storage: network` on Hetzner: the provider's XFS class (hcloud-volumes-xfs) in production mode; only a
    provider without one leaves ScyllaDB on ext4, which iotune accepts in developer mode alone."""
    run = network_run()
    spec_ = spec(run)
    xfs = xfs_class(run)
    expected = (xfs, False) if xfs else ("hcloud-volumes", True)
    for rack in spec_["datacenter"]["racks"]:
        assert rack["storage"] == {"storageClassName": expected[0], "capacity": "250Gi"}
    assert spec_["developerMode"] is expected[1] and spec_["automaticOrphanedNodeCleanup"] is False
    if xfs:  # the claims are made once the class exists (providers/base.py csi_storage names the resource)
        deps = {run.by_urn(u).name for u in run.named("scylla-cluster", SCYLLA).dependencies}
        assert f"storage-class-{xfs}" in deps
    node = run.named("scylla-node-config", NODE_CONFIG).inputs["spec"]
    assert "localDiskSetup" not in node and node["disableOptimizations"] is False  # perftune still runs
    assert not [r for r in run.resources if "local-csi" in r.name]
    assert "local-csi-driver" not in {r.inputs["metadata"]["name"] for r in run.of_type(NAMESPACE)}
    cql = config_map_data(run, "scylla-bootstrap-scripts")["keyspaces.cql"]
    # No service is given the second keyspace here: no role is granted anything on it.
    assert "CREATE KEYSPACE IF NOT EXISTS bidding" in cql and "ON KEYSPACE bidding TO" not in cql
    assert spec_["backups"][0]["retention"] == 14


def test_clouds_without_local_nvme_run_production_mode_on_their_xfs_class():
    """AWS (like GCP and Azure: providers/base.py csi_storage) has network disks only: `storage: auto` takes its
    XFS class, and ScyllaDB stays out of developer mode."""
    run = stack_run("staging-aws")
    spec_ = spec(run)
    assert xfs_class(run) == f"{run.outputs['storageClass']}-xfs"
    assert {r["storage"]["storageClassName"] for r in spec_["datacenter"]["racks"]} == {xfs_class(run)}
    assert spec_["developerMode"] is False


@pytest.mark.parametrize(("setting", "nvme", "xfs", "expected"), [
    ("auto", True, "cloud-xfs", (True, "scylladb-local-xfs", False)),  # local NVMe wins
    ("auto", False, "cloud-xfs", (False, "cloud-xfs", False)),  # AWS, GCP, Azure
    ("network", True, "cloud-xfs", (False, "cloud-xfs", False)),  # Hetzner asked for network volumes
    ("network", True, None, (False, "cloud", True)),  # no XFS class: ext4, developer mode, a warning
    ("auto", False, None, (False, "cloud", True)),
])
def test_storage_choice_keeps_developer_mode_for_providers_without_xfs(setting, nvme, xfs, expected):
    ctx = SimpleNamespace(settings=SimpleNamespace(scylladb=SimpleNamespace(storage=setting)), local_nvme=nvme,
                          storage_class="cloud", xfs_storage_class=xfs)
    chosen = storage.choose(ctx)
    assert (chosen.local, chosen.storage_class, chosen.developer_mode) == expected
    assert ("developer mode" in chosen.why) is expected[2]  # what the warning tells the operator


@pytest.mark.parametrize("stack", ["production", "staging"])
def test_node_config_tunes_the_scylladb_nodes_without_fighting_host_tuning(stack):
    run = stack_run(stack)
    node = run.named("scylla-node-config", NODE_CONFIG).inputs
    assert "namespace" not in node["metadata"]  # cluster-scoped
    placement = node["spec"]["placement"]
    assert placement == {"nodeSelector": {ROLE_LABEL: "scylladb"},
                         "tolerations": expected_tolerations(["adplatform.io/dedicated=scylladb:NoSchedule"])}
    assert node["spec"]["disableOptimizations"] is False  # perftune: IRQs, NIC queues, disks, clocksource
    # The host tuning owns the sysctls (and the governor, THP): the NodeConfig writes none of them.
    assert "sysctls" not in node["spec"]
    host = {**BASELINE_SYSCTLS, **PROFILES["scylladb"].sysctls}
    assert host["fs.aio-max-nr"] == "30000000" and host["vm.swappiness"] == "1"
    assert PROFILES["scylladb"].clocksource == "", "perftune --tune-clock sets the clocksource"


def test_converged_nodes_get_disks_but_no_node_wide_perftune():
    run = stack_run("production-baremetal")
    node = run.named("scylla-node-config", NODE_CONFIG).inputs["spec"]
    assert node["placement"]["nodeSelector"] == {ROLE_LABEL: "converged"} and node["disableOptimizations"] is True
    assert "localDiskSetup" in node
    assert [r["members"] for r in spec(run)["datacenter"]["racks"]] == [1, 1, 1]  # 5 converged nodes: 2 spare


# --- production mode, versions, disruption budget -----------------------------------------------------------
@pytest.mark.parametrize("stack", ["production", "staging"])
def test_versions_are_pinned(stack):
    spec_ = spec(stack_run(stack))
    assert (spec_["version"], spec_["repository"]) == ("2026.1.11", "docker.io/scylladb/scylla")
    assert spec_["agentRepository"] == "docker.io/scylladb/scylla-manager-agent"
    assert re.fullmatch(r"3\.10\.1@sha256:[0-9a-f]{64}", spec_["agentVersion"]), "the agent pinned by digest"
    assert charts.SCYLLADB_VERSION.startswith("2026.1.") and charts.SCYLLA_MANAGER_VERSION.startswith("3.10.")


def test_disruption_budget_is_the_operators_one_member_at_a_time(production):
    """The operator creates PDB `<cluster>` with maxUnavailable 1 per datacenter (scylla-operator v1.21.1
    pkg/controller/scylladbdatacenter/resource.go MakePodDisruptionBudget): with a member per node and RF 3,
    a drain keeps 2 of 3 replicas (QUORUM). We add none of our own."""
    racks = spec(production)["datacenter"]["racks"]
    assert sum(r["members"] for r in racks) == 3 and len(racks) == 3
    assert not [r for r in production.of_type("kubernetes:policy/v1:PodDisruptionBudget")
                if r.inputs["metadata"].get("namespace") == "scylla"]


def test_cluster_waits_until_available_and_is_protected_in_production(production, staging):
    prod = production.named("scylla-cluster", SCYLLA)
    assert prod.protect and not staging.named("scylla-cluster", SCYLLA).protect
    assert prod.inputs["metadata"]["annotations"]["pulumi.com/waitFor"] == "condition=Available"
    deps = {production.by_urn(u).name for u in prod.dependencies}
    assert {"scylla-operator", "scylla-config", "scylla-agent-config", "scylla-node-config", "scylla-local-xfs"} <= deps


# --- authentication and the keyspace Job ---------------------------------------------------------------------
def test_sha512_crypt_matches_the_specification():
    # Drepper, "Unix crypt using SHA-256 and SHA-512", test vectors
    assert bootstrap.sha512_crypt("Hello world!", "saltstring") == (
        "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1")
    assert bootstrap.sha512_crypt("Hello world!", "saltstringsaltstring", rounds=10000) == (
        "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/"
        "YTBmSK6H9qs/y3RnOaw5v.")


@pytest.mark.parametrize("stack", ["production", "staging"])
def test_scylla_starts_with_password_auth_and_our_superuser_never_cassandra(stack):
    run = stack_run(stack)
    data = run.named("scylla-config", CONFIG_MAP).inputs["data"]
    assert isinstance(data, Secret) or isinstance(data["scylla.yaml"], Secret)
    config = yaml.safe_load(data.value["scylla.yaml"] if isinstance(data, Secret) else data["scylla.yaml"].value)
    assert config["authenticator"] == "PasswordAuthenticator" and config["authorizer"] == "CassandraAuthorizer"
    assert config["auth_superuser_name"] == "adplatform_admin"
    admin = string_data(run.named("scylla-admin-credentials", SECRET))
    assert admin["username"] == "adplatform_admin"
    salted = config["auth_superuser_salted_password"]
    match = re.fullmatch(r"\$6\$([^$]{1,16})\$[./0-9A-Za-z]{86}", salted)
    assert match and bootstrap.sha512_crypt(admin["password"], match.group(1)) == salted
    for rack in spec(run)["datacenter"]["racks"]:
        assert rack["scyllaConfig"] == "scylla-config"


@pytest.mark.parametrize("stack", ["production", "staging"])
def test_bootstrap_job_runs_cqlsh_restricted_with_credentials_from_secrets(stack):
    run = stack_run(stack)
    job = run.named("scylla-bootstrap", JOB).inputs
    assert re.fullmatch(r"scylla-bootstrap-[0-9a-f]{10}", job["metadata"]["name"])
    assert job["metadata"]["namespace"] == "scylla"
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 65534
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "tolerations" not in pod and "nodeSelector" not in pod  # general nodes
    container = pod["containers"][0]
    assert container["image"] == "docker.io/scylladb/scylla:2026.1.11"
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["readOnlyRootFilesystem"] is True
    assert "args" not in container and container["command"] == ["/bin/bash", "/etc/scylla-bootstrap/bootstrap.sh"]
    env = {e["name"]: e for e in container["env"]}
    for name in ("ADMIN_PASSWORD", "ROLE_PASSWORD_0", "MANAGER_PASSWORD", "ADMIN_USERNAME"):
        assert "value" not in env[name] and env[name]["valueFrom"]["secretKeyRef"]["key"] in ("password", "username")
    assert env["CQL_HOST"]["value"] == "scylla-client.scylla.svc" and env["CQL_PORT"]["value"] == "9042"
    files = config_map_data(run, "scylla-bootstrap-scripts")
    assert files["bootstrap.sh"] == (SCRIPTS / "bootstrap.sh").read_text()
    assert job["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] == \
        run.named("scylla-bootstrap-scripts", CONFIG_MAP).inputs["metadata"]["name"]
    deps = {run.by_urn(u).name for u in run.named("scylla-bootstrap", JOB).dependencies}
    assert {"scylla-cluster", "scylla-admin-credentials", "scylla-user-bidding"} <= deps


def test_bootstrap_job_name_changes_with_what_it_does(production, staging):
    """Production (RF 3) and staging (RF 1) render different CQL: a change runs a new Job."""
    name = lambda run: run.named("scylla-bootstrap", JOB).inputs["metadata"]["name"]  # noqa: E731
    assert name(production) != name(staging) != name(network_run())
    assert bootstrap.content_hash("a", "b") != bootstrap.content_hash("a", "c")


def test_scripts_pass_shellcheck():
    scripts = {p.stem: p.read_text() for p in SCRIPTS.glob("*.sh")}
    assert set(scripts) == {"bootstrap", "manager-credentials", "restore", "scylladb-drill-download", "scylladb-canary"}
    assert validators.shellcheck(scripts) == ""


def test_generated_passwords_are_secret_and_protected_in_production(production, staging):
    names = {"scylla-admin-password", "scylla-bidding-password", "scylla-manager-role-password",
             "scylla-admin-password-salt"}
    for run, protect in ((production, True), (staging, False)):
        found = {r.name: r for r in run.of_type(PASSWORD) if r.name in names}
        assert set(found) == names and {r.protect for r in found.values()} == {protect}
        assert found["scylla-admin-password"].inputs["special"] is False  # safe inside CQL and YAML quotes
        for secret in ("scylla-admin-credentials", "scylla-user-bidding", "scylla-manager-role-credentials",
                       "scylla-manager-cql-credentials", "scylla-agent-config"):
            string_data(run.named(secret, SECRET))  # asserts every value reached the engine as a secret


# --- Scylla Manager: backups and repairs --------------------------------------------------------------------
@pytest.mark.parametrize("stack", ["production", "staging"])
def test_manager_chart_and_its_small_database(stack):
    run = stack_run(stack)
    rel = run.named("scylla-manager", RELEASE).inputs
    assert (rel["chart"], rel["version"], rel["namespace"], rel["createNamespace"]) == (
        "scylla-manager", "v1.21.1", "scylla-manager", False)
    values = rel["values"]
    # The chart pins both images by digest; our tags replace its tags, so they keep a digest (the chart's).
    digest = r"3\.10\.1@sha256:[0-9a-f]{64}"
    assert re.fullmatch(digest, values["image"]["tag"]) and values["serviceMonitor"] == {"create": True}
    db = values["scylla"]
    assert db["fullnameOverride"] == "scylla-manager-cluster" and db["developerMode"] is True
    assert db["annotations"] == {"scylla-operator.scylladb.com/disable-global-scylladb-manager-integration": "true"}
    assert db["scyllaImage"]["tag"] == "2026.1.11" and re.fullmatch(digest, db["agentImage"]["tag"])
    assert db["agentImage"]["tag"] == spec(run)["agentVersion"], "one agent image for both clusters"
    [rack] = db["racks"]
    assert rack["members"] == 1 and rack["storage"] == {"capacity": "10Gi", "storageClassName": "hcloud-volumes"}
    assert rack["resources"]["requests"] == rack["resources"]["limits"]
    assert "placement" not in rack  # the general nodes: no core of the production cluster taken


@pytest.mark.parametrize(("stack", "bucket"), [("production", "adp-production-backups"),
                                                    ("staging", "scylladb-backups")])
def test_backups_and_repairs_are_manager_tasks_on_the_configured_schedules(stack, bucket):
    run = stack_run(stack)
    settings = stack_config(run).data_plane.scylladb
    spec_ = spec(run)
    [backup] = spec_["backups"]
    assert backup["location"] == [f"s3:{bucket}"]  # Manager takes a bucket, no prefix (backupspec/location.go)
    assert (backup["cron"], backup["retention"], backup["timezone"]) == (settings.backup_schedule, 7, "UTC")
    assert backup["cron"] == "0 3 * * *"
    [repair] = spec_["repairs"]
    assert (repair["cron"], repair["timezone"]) == (settings.repair_schedule, "UTC") == ("0 5 * * 0", "UTC")
    for rack in spec_["datacenter"]["racks"]:
        assert rack["scyllaAgentConfig"] == "scylla-agent-config"


def test_agents_reach_the_external_bucket_in_production(production):
    secret = production.named("scylla-agent-config", SECRET)
    agent = json.loads(string_data(secret)["scylla-manager-agent.yaml"])["s3"]
    assert agent == {"provider": "Other", "endpoint": "https://fsn1.your-objectstorage.com", "region": "fsn1",
                     "access_key_id": "offline-placeholder-scylladb-access-key",  # its own pair
                     "secret_access_key": "offline-placeholder-scylladb-secret-key", "force_path_style": "true"}
    egress = policy(production, "scylla", "allow-egress-internet")["egress"][0]
    assert ports(egress) == [443]


def test_agents_reach_the_in_cluster_store_path_style_in_staging(staging):
    agent = json.loads(string_data(staging.named("scylla-agent-config", SECRET))["scylla-manager-agent.yaml"])["s3"]
    assert re.fullmatch(r"http://[a-z0-9-]+\.seaweedfs\.svc:8333", agent["endpoint"])
    assert agent["force_path_style"] == "true" and agent["provider"] == "Other"
    egress = policy(staging, "scylla", "allow-to-seaweedfs")["egress"][0]
    assert ports(egress) == [8333]
    assert egress["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "seaweedfs"}


@pytest.mark.parametrize("stack", ["production", "staging"])
def test_manager_gets_a_login_only_cql_role_for_schema_backups(stack):
    run = stack_run(stack)
    creds = string_data(run.named("scylla-manager-cql-credentials", SECRET))
    role = string_data(run.named("scylla-manager-role-credentials", SECRET))
    assert creds == role and creds["username"] == "scylla_manager"
    cql = config_map_data(run, "scylla-bootstrap-scripts")["keyspaces.cql"]
    assert "scylla_manager" not in cql, "the Manager role gets no permission on the data"
    job = run.named("scylla-manager-credentials", JOB).inputs
    assert job["metadata"]["namespace"] == "scylla-manager"
    container = job["spec"]["template"]["spec"]["containers"][0]
    manager_tag = run.named("scylla-manager", RELEASE).inputs["values"]["image"]["tag"]
    assert container["image"] == f"docker.io/scylladb/scylla-manager:{manager_tag}" and "@sha256:" in manager_tag
    env = {e["name"]: e for e in container["env"]}
    assert env["CLUSTER"]["value"] == "scylla/scylla"
    assert env["SCYLLA_MANAGER_API_URL"]["value"] == "http://scylla-manager.scylla-manager.svc/api/v1"
    assert env["CQL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "scylla-manager-cql-credentials",
                                                                "key": "password"}
    deps = {run.by_urn(u).name for u in run.named("scylla-manager-credentials", JOB).dependencies}
    assert {"scylla-manager", "scylla-cluster", "scylla-bootstrap"} <= deps


# --- namespaces, policies, metrics -----------------------------------------------------------------------------
@pytest.mark.parametrize("stack", ["production", "staging"])
def test_namespaces_and_their_pod_security_levels(stack):
    run = stack_run(stack)
    levels = {r.inputs["metadata"]["name"]: r.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
              for r in run.of_type(NAMESPACE)}
    assert levels["scylla-operator"] == "baseline"
    assert levels["scylla"] == levels["scylla-manager"] == levels["local-csi-driver"] == "privileged"
    assert "scylla-operator-node-tuning" not in levels  # the operator creates and owns it


@pytest.mark.parametrize("stack", ["production", "staging"])
def test_network_policies_let_in_exactly_the_peers(stack):
    run = stack_run(stack)
    assert ports(policy(run, "scylla", "allow-from-teams")["ingress"][0]) == [9042, 19042]
    assert ports(policy(run, "scylla", "allow-from-platform")["ingress"][0]) == [9042, 19042]
    assert ports(policy(run, "scylla", "allow-from-monitoring")["ingress"][0]) == [5090, 9180]
    assert ports(policy(run, "scylla", "allow-from-scylla-operator")["ingress"][0]) == [10001]
    assert ports(policy(run, "scylla", "allow-from-scylla-manager")["ingress"][0]) == [9042, 10001, 19042]
    assert ports(policy(run, "scylla-manager", "allow-to-scylla")["egress"][0]) == [9042, 10001, 19042]
    assert ports(policy(run, "scylla-operator", "allow-to-scylla")["egress"][0]) == [10001]
    assert ports(policy(run, "scylla-operator", "allow-to-scylla-manager")["egress"][0]) == [5080, 10001]
    assert ports(policy(run, "scylla-manager", "allow-from-scylla-operator")["ingress"][0]) == [5080, 10001]
    assert ports(policy(run, "scylla-operator", "allow-api-server-webhooks")["ingress"][0]) == [5000]
    teams = policy(run, "scylla", "allow-from-teams")["ingress"][0]["from"][0]
    assert teams["namespaceSelector"]["matchLabels"] == {"adplatform.io/layer": "teams"}


@pytest.mark.parametrize("stack", ["production", "staging"])
def test_metrics_are_scraped_from_every_member(stack):
    monitor = stack_run(stack).named("scylla-service-monitor", "kubernetes:monitoring.coreos.com/v1:ServiceMonitor")
    spec_ = monitor.inputs["spec"]
    assert monitor.inputs["metadata"]["namespace"] == "scylla"
    assert spec_["selector"]["matchLabels"] == {"app.kubernetes.io/name": "scylla", "scylla/cluster": "scylla",
                                                "scylla-operator.scylladb.com/scylla-service-type": "member"}
    assert [e["port"] for e in spec_["endpoints"]] == ["prometheus", "agent-prometheus"]  # 9180 and 5090


# --- the endpoint ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("stack", "rf"), [("production", 3), ("staging", 1)])
def test_endpoint_in_the_stack_output_has_no_secret(stack, rf):
    run = stack_run(stack)
    out = run.outputs["dataPlane"]["scylladb"]["endpoint"]
    assert {k: out[k] for k in ("hosts", "port", "datacenter", "keyspaces", "replicationFactor", "namespace",
                                "podLabels")} == {
        "hosts": ["scylla-client.scylla.svc"], "port": 9042, "datacenter": "dc1", "keyspaces": ["ads"],
        "replicationFactor": rf, "namespace": "scylla",
        "podLabels": {"app.kubernetes.io/name": "scylla", "scylla/cluster": "scylla"}}
    assert out["users"]["bidding"] == {"secret": "scylla-user-bidding", "namespace": "scylla",
                                       "keys": ["username", "password"]}
    assert "offline-" not in json.dumps(out)
    assert string_data(run.named("scylla-user-bidding", SECRET))["username"] == "bidding"


# --- config errors ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("scylladb", "key", "expected"), [
    ({"backupRetention": 0}, "dataPlane.scylladb.backupRetention", "between 1 and 1000"),
    ({"keyspaces": ["system_ads"]}, "dataPlane.scylladb.keyspaces", "belong to ScyllaDB"),
    ({"keyspaces": ["ads", "ads"]}, "dataPlane.scylladb.keyspaces", "must not repeat"),
    ({"keyspaces": ["drill_canary"]}, "dataPlane.scylladb.keyspaces", "is the restore drills' canary"),
    ({"storage": "nvme"}, "dataPlane.scylladb.storage", "auto, network"),
    ({"repairSchedule": "weekly"}, "dataPlane.scylladb.repairSchedule", "cron"),
    # whole CPUs for the static CPU manager, and 1 GiB per shard plus the reserve (production mode)
    ({"cpu": "2500m"}, "dataPlane.scylladb.cpu", "whole number of CPUs"),
    ({"cpu": "8", "memory": "8Gi"}, "dataPlane.scylladb", "memory 8Gi is too small for cpu 8: ScyllaDB in production "
                                                         "mode needs 1024Mi per shard and 1536Mi besides, so at least "
                                                         "9728Mi"),
])
def test_config_errors_name_the_key(scylladb, key, expected):
    with pytest.raises(ConfigError) as err:
        load("production", base_raw(dataPlane={"scylladb": scylladb}), SECRET_KEYS)
    assert any(key in str(p) and expected in str(p) for p in err.value.problems), err.value.problems
    load("production", base_raw(dataPlane={"scylladb": {"cpu": "8", "memory": "9728Mi"}}), SECRET_KEYS)
