"""The Azure provider: resource group, VNet, NSG from PORTS, zonal VMs, disks, image, identity, API LB,
cloud-provider-azure and the Azure Disk CSI driver."""

from __future__ import annotations

import base64
import json
from collections import Counter, defaultdict
from typing import Any

import pytest

from components.charts import AZURE_CCM, AZURE_DISK_CSI
from config.catalog import SIZES
from providers import azure, cloud
from tests.cloud_stacks import (autoscaled_general, FAKE_USER_DATA, NodeGroupRun, assert_block_storage,
                                assert_local_traffic_policy, config_problems, run_node_groups, stack_fixtures)
from tests.conftest import base_raw, k3s_config
from tools import mockrun

VM = "azure-native:compute:VirtualMachine"
RULE = "azure-native:network:SecurityRule"
NIC = "azure-native:network:NetworkInterface"
LB = "azure-native:network:LoadBalancer"
RELEASE = "kubernetes:helm.sh/v3:Release"
LOCATION = {"azure-native:location": "westeurope"}
PINNED = "Canonical:ubuntu-24_04-lts:server:24.04.202611010"
ADMIN = "203.0.113.0/24"


# The staging stack file, and the production profile with a pinned image, a public API load balancer
# and a pool pinned to zone 2.
staging, production = stack_fixtures("staging-azure", "azure", LOCATION, {
    "image": PINNED, "apiLoadBalancer": {"public": True}, "pools": [{"name": "stateful", "location": "2"}]})


def by_pool(run: mockrun.Run) -> Counter:
    return Counter(r.inputs["tags"]["adplatform-pool"] for r in run.of_type(VM))


def rules(run: mockrun.Run) -> list[dict]:
    return [r.inputs for r in run.of_type(RULE)]


# --- network -----------------------------------------------------------------------------------------

def test_resource_group_vnet_and_subnet(staging):
    group = staging.named("resource-group")
    assert group.inputs["resourceGroupName"] == "adp-staging-azure" and group.inputs["location"] == "westeurope"
    vnet = staging.named("vnet")
    # cluster.networkCidr (10.0.0.0/8) holds the pod range: the VNet is the /16 around the subnet.
    assert vnet.inputs["addressSpace"]["addressPrefixes"] == ["10.0.0.0/16"]
    assert "subnets" not in vnet.inputs, "subnets are their own resources"
    subnet = staging.named("subnet")
    assert subnet.inputs["addressPrefix"] == "10.0.1.0/24" and subnet.inputs["subnetName"] == "nodes"
    assert subnet.inputs["networkSecurityGroup"]["id"] and staging.named("nsg").urn in subnet.dependencies
    assert subnet.inputs["defaultOutboundAccess"] is False


def test_only_80_and_443_are_open_to_the_world(staging):
    world = [r for r in rules(staging) if {"0.0.0.0/0", "::/0"} & set(r["sourceAddressPrefixes"])]
    assert {(r["protocol"], r["destinationPortRange"]) for r in world} == {("Tcp", "80"), ("Tcp", "443")}
    for r in rules(staging):
        assert r["direction"] == "Inbound" and r["access"] == "Allow"


def test_admin_ports_only_from_admin_cidrs(staging):
    admin = {(r["protocol"], r["destinationPortRange"]): r["sourceAddressPrefixes"] for r in rules(staging)
             if r["securityRuleName"].startswith("admin-")}
    assert admin == {("Tcp", "22"): [ADMIN], ("Tcp", "6443"): [ADMIN], ("Icmp", "*"): [ADMIN]}


def test_members_reach_each_other_and_the_ccm_keeps_its_priorities(staging):
    (vnet_rule,) = [r for r in rules(staging) if r["securityRuleName"] == "cluster-network-any"]
    assert vnet_rule["sourceAddressPrefixes"] == ["10.0.0.0/16"] and vnet_rule["protocol"] == "*"
    priorities = [r["priority"] for r in rules(staging)]
    assert len(set(priorities)) == len(priorities) and max(priorities) < 500, "the CCM numbers its rules from 500"
    assert "securityRules" not in staging.named("nsg").inputs, "inline rules would remove the CCM's"


def test_rule_priorities_do_not_move_when_admin_cidrs_change():
    one = {r["name"]: r["priority"] for r in azure.nsg_rules([ADMIN])}
    two = {r["name"]: r["priority"] for r in azure.nsg_rules([ADMIN, "198.51.100.0/24", "2001:db8::/48"])}
    assert all(two[name] == priority for name, priority in one.items())
    assert two["admin-tcp-22-ipv6"] == two["admin-tcp-22-ipv4"] + 1


# --- VMs ---------------------------------------------------------------------------------------------

def test_vm_count_per_pool_and_zone_spread(staging, production):
    assert by_pool(staging) == {"control-plane": 3, "general": 2, "scylladb": 1, "redpanda": 1, "clickhouse": 1,
                                "stateful": 1}
    assert by_pool(production) == {"control-plane": 3, "general": 5, "scylladb": 3, "redpanda": 3, "clickhouse": 3,
                                   "stateful": 3}
    zones = defaultdict(set)
    for r in production.of_type(VM):
        zones[r.inputs["tags"]["adplatform-pool"]].add(tuple(r.inputs["zones"]))
    assert zones["control-plane"] == {("1",), ("2",), ("3",)} and zones["scylladb"] == {("1",), ("2",), ("3",)}
    assert zones["stateful"] == {("2",)}, "a pool pinned to a zone stays there"
    for r in production.of_type(VM):  # each VM's public IP lives in the VM's zone
        ip = production.named(f"{r.name}-ip")
        assert ip.inputs["zones"] == r.inputs["zones"]


def test_os_disks_are_encrypted_premium_and_sized_per_class(staging, production):
    for run in (staging, production):
        for r in run.of_type(VM):
            assert r.inputs["securityProfile"]["encryptionAtHost"] is True
            disk = r.inputs["storageProfile"]["osDisk"]
            assert disk["managedDisk"]["storageAccountType"] == "Premium_LRS"
            assert disk["deleteOption"] == "Delete" and disk["createOption"] == "FromImage"
    sizes = {r.inputs["tags"]["adplatform-pool"]: r.inputs["storageProfile"]["osDisk"]["diskSizeGB"]
             for r in production.of_type(VM)}
    assert sizes["control-plane"] == cloud.ROOT_DISK_GB["dedicated-medium"]
    assert sizes["scylladb"] == cloud.ROOT_DISK_GB["dedicated-xlarge"]


def test_vm_sizes_per_class(staging, production):
    assert set(azure.SERVER_TYPES) == set(SIZES)
    assert {r.inputs["hardwareProfile"]["vmSize"] for r in staging.of_type(VM)} <= {"Standard_B2ls_v2",
                                                                                     "Standard_B4ls_v2"}
    prod = {r.inputs["tags"]["adplatform-pool"]: r.inputs["hardwareProfile"]["vmSize"] for r in production.of_type(VM)}
    assert prod["control-plane"] == "Standard_D4s_v5" and prod["scylladb"] == "Standard_D16s_v5"


def test_ubuntu_2404_from_canonical_and_the_override(staging, production):
    for r in staging.of_type(VM):
        assert r.inputs["storageProfile"]["imageReference"] == {
            "publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"}
    for r in production.of_type(VM):
        assert r.inputs["storageProfile"]["imageReference"]["version"] == "24.04.202611010"
        assert {"osProfile", "storageProfile.imageReference"} <= set(r.options["ignoreChanges"])
    gallery = "/subscriptions/x/resourceGroups/images/providers/Microsoft.Compute/galleries/g/images/ubuntu/versions/1.0.0"
    assert azure.image_reference(gallery) == {"id": gallery}


def test_vm_names_are_node_names_and_ssh_goes_to_the_ubuntu_user(staging):
    vm = staging.named("control-plane-1", VM)
    assert vm.inputs["vmName"] == "adp-staging-azure-control-plane-1" == k3s_config(staging, "control-plane-1")["node-name"]
    linux = vm.inputs["osProfile"]["linuxConfiguration"]
    assert vm.inputs["osProfile"]["adminUsername"] == "ubuntu" and linux["disablePasswordAuthentication"] is True
    assert [k["path"] for k in linux["ssh"]["publicKeys"]] == ["/home/ubuntu/.ssh/authorized_keys"]
    tune = staging.named("tune-control-plane-1", "command:remote:Command")
    assert tune.inputs["connection"].value["user"] == "ubuntu" and tune.inputs["create"] == "sudo -n bash -s"


def test_static_public_and_private_addresses(staging):
    ip = staging.named("general-1-ip")
    assert ip.inputs["publicIPAllocationMethod"] == "Static" and ip.inputs["sku"]["name"] == "Standard"
    nic = staging.named("general-1-nic", NIC)
    config = nic.inputs["ipConfigurations"][0]
    assert config["publicIPAddress"]["id"] and config["subnet"]["id"]
    assert "loadBalancerBackendAddressPools" not in config, "agents are not API backends"
    node = staging.outputs["nodes"]["adp-staging-azure-general-1"]
    assert node["publicIp"].startswith("198.51.100.") and node["privateIp"].startswith("10.0.1.")


def test_k3s_runs_with_the_external_cloud_provider(staging):
    cfg = k3s_config(staging, "control-plane-1")
    assert "cloud-provider=external" in cfg["kubelet-arg"] and cfg["disable-cloud-controller"] is True
    assert "local-storage" in cfg["disable"]
    values = staging.named("cilium", RELEASE).inputs["values"]
    assert values["routingMode"] == "tunnel" and values["tunnelProtocol"] == "vxlan"


def test_production_protects_vms_network_and_addresses(production, staging):
    for name in ("resource-group", "vnet", "subnet", "control-plane-1", "control-plane-1-nic", "control-plane-1-ip"):
        assert production.named(name).protect, name
        assert not staging.named(name).protect, name


# --- identity ----------------------------------------------------------------------------------------

def test_cluster_identity_has_a_custom_role_on_the_resource_group_only(staging):
    identity = staging.named("cluster-identity")
    role = staging.named("cluster-role")
    group = staging.named("resource-group")
    assert role.inputs["assignableScopes"] == [role.inputs["scope"]] and group.urn in role.dependencies
    actions = role.inputs["permissions"][0]["actions"]
    assert "Microsoft.Compute/disks/write" in actions and "Microsoft.Network/loadBalancers/write" in actions
    assert not any(a.endswith("*") or a.startswith(("Microsoft.Authorization", "Microsoft.Storage")) for a in actions)
    assert not any("routeTables" in a for a in actions), "no route table: Cilium tunnels"
    assert set(azure.SCALE_SET_NODE_ACTIONS) <= set(actions), \
        "staging-azure autoscales: the CCM reads scale set nodes and the disk driver attaches to them"
    assert "Microsoft.Compute/virtualMachineScaleSets/write" not in actions, "scaling is the autoscaler's alone"
    assignment = staging.named("cluster-role-assignment")
    assert assignment.inputs["principalType"] == "ServicePrincipal" and identity.urn in assignment.dependencies



def test_only_the_servers_carry_identities_agents_none(staging, production):
    # Instance metadata has no hop limit: a VM's identity is every host-network pod's on it. The CCM, the disk
    # controller and the autoscaler run on the servers; nothing on an agent calls Azure's API.
    for run in (staging, production):  # both autoscale their general pool
        vms = run.of_type(VM)
        assert {vm.inputs["tags"]["adplatform-k3s"] for vm in vms} == {"server", "agent"}
        for vm in vms:
            if vm.inputs["tags"]["adplatform-k3s"] == "agent":
                # Said explicitly: an update removes the cluster identity earlier versions put on every VM.
                assert vm.inputs["identity"] == {"type": "None"}, vm.name
                continue
            names = ["cluster-identity", "autoscaler-identity"]
            assert vm.inputs["identity"] == {"type": "UserAssigned", "userAssignedIdentities": [
                mockrun._fake_id(name) for name in names]}, vm.name  # resource ids: the mocks' digests of the names


def test_the_controllers_using_the_cluster_identity_run_on_the_servers_only(staging, production):
    for run in (staging, production):
        disk = run.named("azuredisk-csi", RELEASE).inputs["values"]
        ccm = run.named("azure-ccm", RELEASE).inputs["values"]
        for controller in (disk["controller"], ccm["cloudControllerManager"]):
            assert controller["nodeSelector"] == {"node-role.kubernetes.io/control-plane": "true"}, "K3s' server label"
            # Dedicated servers carry K3s' CriticalAddonsOnly (NoExecute): tolerated whatever its effect.
            assert {"key": "CriticalAddonsOnly", "operator": "Exists"} in controller["tolerations"]
        # The node plugin and the node manager run everywhere with no identity: they read instance metadata only.
        assert "nodeSelector" not in disk["linux"] and ccm["cloudNodeManager"] == {"enabled": True}


# --- API load balancers --------------------------------------------------------------------------------

def test_internal_api_load_balancer_fronts_the_servers(staging):
    (lb,) = staging.of_type(LB)
    frontend = lb.inputs["frontendIPConfigurations"][0]
    assert lb.inputs["sku"]["name"] == "Standard" and frontend["subnet"]["id"]
    assert frontend["privateIPAllocationMethod"] == "Static" and frontend["privateIPAddress"] == "10.0.1.254"
    (rule,) = lb.inputs["loadBalancingRules"]
    assert rule["frontendPort"] == rule["backendPort"] == 6443 and rule["protocol"] == "Tcp"
    assert rule["enableFloatingIP"] is True, "servers hold the address on lo: no hairpin through the balancer"
    assert rule["probe"]["id"].endswith("/loadBalancers/adp-staging-azure-api/probes/api")
    assert lb.inputs["probes"][0]["port"] == 6443
    in_pool = {r.name for r in staging.of_type(NIC) if r.inputs["ipConfigurations"][0].get("loadBalancerBackendAddressPools")}
    assert in_pool == {"control-plane-1-nic", "control-plane-2-nic", "control-plane-3-nic"}
    assert k3s_config(staging, "general-1")["server"] == "https://10.0.1.254:6443", "nodes join through it"


def test_servers_hold_the_api_address_on_lo_while_k3s_runs(staging):
    commands = {r.name: r for r in staging.of_type("command:remote:Command")}
    assert {n for n in commands if n.startswith("api-address-")} == {
        "api-address-control-plane-1", "api-address-control-plane-2", "api-address-control-plane-3"}
    address = commands["api-address-control-plane-2"]
    assert address.inputs["stdin"] == azure.api_address_script("10.0.1.254")
    assert "WantedBy=k3s.service" in address.inputs["stdin"] and "BindsTo=k3s.service" in address.inputs["stdin"]
    # Before K3s is installed there (the unit must be enabled when k3s.service first starts).
    assert address.urn in commands["k3s-control-plane-2"].dependencies
    assert staging.named("control-plane-2", VM).urn in address.dependencies


def test_public_api_load_balancer_for_the_deployer(production):
    public = production.named("api-public-lb", LB)
    assert "publicIPAddress" in public.inputs["frontendIPConfigurations"][0]
    assert public.inputs["loadBalancingRules"][0]["enableFloatingIP"] is False
    pools = production.named("control-plane-1-nic").inputs["ipConfigurations"][0]["loadBalancerBackendAddressPools"]
    assert len(pools) == 2
    address = production.outputs["apiEndpoint"].removeprefix("https://").removesuffix(":6443")
    assert address in k3s_config(production, "control-plane-1")["tls-san"]
    assert address == mockrun._fake_ip("api-public-ip", "198.51.100.0/24")


# --- cluster layer -------------------------------------------------------------------------------------

def cloud_config(run: mockrun.Run) -> dict:
    secret = run.named("azure-cloud-provider", "kubernetes:core/v1:Secret")
    data = secret.inputs["stringData"]
    assert isinstance(data, mockrun.Secret)
    return json.loads(data.value["cloud-config"])


def test_cloud_config_for_vms_and_scale_sets_with_the_managed_identity(staging):
    cfg = cloud_config(staging)
    assert cfg["vmType"] == "vmss", "staging-azure autoscales a pool: scale set instances are nodes too"
    assert staging.named("azuredisk-csi", RELEASE).inputs["values"]["controller"]["vmType"] == "vmss"
    assert cfg["loadBalancerSku"] == "standard"
    assert cfg["useManagedIdentityExtension"] is True
    assert cfg["userAssignedIdentityID"] == mockrun._azure_uuid("client-cluster-identity")
    assert cfg["subscriptionId"] == mockrun.FAKE_AZURE_SUBSCRIPTION and cfg["tenantId"] == mockrun.FAKE_AZURE_TENANT
    assert (cfg["resourceGroup"], cfg["vnetName"], cfg["subnetName"], cfg["securityGroupName"]) == (
        "adp-staging-azure", "adp-staging-azure", "nodes", "adp-staging-azure-nodes")
    assert cfg["location"] == "westeurope" and "routeTableName" not in cfg
    assert cfg["loadBalancerBackendPoolConfigurationType"] == "nodeIP", "the CCM never writes Pulumi's NICs"
    assert "aadClientSecret" not in cfg


def test_cloud_controller_manager(staging, production):
    ccm = staging.named("azure-ccm", RELEASE).inputs
    assert (ccm["chart"], ccm["version"], ccm["namespace"]) == (AZURE_CCM.chart, AZURE_CCM.version, "kube-system")
    values = ccm["values"]["cloudControllerManager"]
    assert values["cloudConfig"] == "" and values["cloudConfigSecretName"] == "azure-cloud-provider"
    assert values["allocateNodeCidrs"] == "false" and values["configureCloudRoutes"] == "false"
    assert values["clusterCIDR"] == "10.244.0.0/16"
    assert values["nodeSelector"] == {"node-role.kubernetes.io/control-plane": "true"}, "K3s' server label"
    assert {"key": "CriticalAddonsOnly", "operator": "Exists"} in values["tolerations"]
    assert values["replicas"] == 1
    assert production.named("azure-ccm", RELEASE).inputs["values"]["cloudControllerManager"]["replicas"] == 2
    secret = staging.named("azure-cloud-provider", "kubernetes:core/v1:Secret")
    assert secret.urn in staging.named("azure-ccm", RELEASE).dependencies


def test_disk_csi_default_storage_class_and_its_xfs_twin(staging, production):
    for run, reclaim in ((staging, "Delete"), (production, "Retain")):
        params = assert_block_storage(run, "azure-disk-premium", "disk.csi.azure.com", reclaim=reclaim,
                                      driver="azuredisk-csi")
        assert params["skuName"] == "Premium_LRS"
        assert params["networkAccessPolicy"] == "DenyAll", "no SAS export of a volume's data"
    renamed_from = lambda name: [a for a in staging.named(name).options["aliases"] if a]  # noqa: E731
    assert renamed_from("storage-class-azure-disk-premium") == ["storage-class-azure-disk"], \
        "the default class keeps its first resource name: a rename must not delete and re-create it"
    assert renamed_from("storage-class-azure-disk-premium-xfs") == []
    csi = staging.named("azuredisk-csi", RELEASE)
    assert csi.inputs["version"] == AZURE_DISK_CSI.version
    assert csi.inputs["values"]["controller"]["cloudConfigSecretName"] == "azure-cloud-provider"
    assert csi.inputs["values"]["windows"] == {"enabled": False}
    assert staging.named("azure-cloud-provider", "kubernetes:core/v1:Secret").urn in csi.dependencies, \
        "the driver reads the cloud config the CCM add-on writes"
    assert staging.outputs["storageClass"] == "azure-disk-premium"


# --- validation ----------------------------------------------------------------------------------------

def _problems(raw: dict[str, Any], settings: dict[str, str] = LOCATION) -> list[str]:
    return config_problems(raw, settings)


def test_location_must_be_set():
    found = _problems(base_raw(provider="azure"), settings={})
    assert found == ["azure-native:location must be set to the stack's Azure region (pulumi config set "
                     "azure-native:location westeurope): the Azure provider and the cluster use it"]


def test_zone_image_and_network_are_checked():
    found = _problems(base_raw(provider="azure", cluster={
        "image": "ubuntu-24.04", "podCidr": "10.245.128.0/17", "subnetCidr": "10.245.1.0/24",
        "pools": [{"name": "general", "location": "westeurope-1"}]}))
    assert "adplatform:cluster.pools[general].location must be an availability zone of the region (1, 2, 3), " \
           "got 'westeurope-1'" in found
    assert any(p.startswith("adplatform:cluster.image must be an Azure image URN Publisher:Offer:Sku:Version") for p in found)
    assert any(p.startswith("adplatform:cluster.podCidr must not overlap the Azure VNet network 10.245.0.0/16") for p in found)


def test_gateway_keeps_client_addresses_with_local_traffic_policy(staging):
    # Azure's public Standard load balancer sends no PROXY header (only Private Link Service can).
    assert_local_traffic_policy(staging)


def test_server_type_of_another_providers_shape_is_refused_before_any_resource():
    msgs = _problems(base_raw(provider="azure", cluster={"pools": [{"name": "general", "serverType": "m7i.xlarge"},
                                                                   {"name": "stateful", "serverType": "Standard_E8s_v5"}]}))
    assert msgs == ["adplatform:cluster.pools[general].serverType must be an Azure VM size such as Standard_D8s_v5, "
                    "got 'm7i.xlarge'"]


def test_every_mapped_type_has_its_providers_shape():
    from providers import aws, azure, gcp
    for module in (aws, gcp, azure):
        assert all(module.SERVER_TYPE_NAME.fullmatch(t) for t in module.SERVER_TYPES.values()), module.__name__


# --- autoscaled node groups (docs/autoscaling.md) -------------------------------------------------------

VMSS = "azure-native:compute:VirtualMachineScaleSet"


@pytest.fixture(scope="module")
def groups() -> NodeGroupRun:
    """staging-azure's installer asked for a group in zone 2 and one for the unpinned spread, as the autoscaler
    component would ask; the general pool is tainted for this run, to see the taint tags."""
    return run_node_groups("staging-azure", lambda pool: ["2", None], overrides=autoscaled_general())


def test_one_uniform_scale_set_per_request_from_zero(groups):
    sets = {r.inputs["vmScaleSetName"]: r for r in groups.of_type(VMSS)}
    assert set(sets) == {"adp-staging-azure-general-2", "adp-staging-azure-general"}
    assert sets["adp-staging-azure-general-2"].inputs["zones"] == ["2"]
    assert sets["adp-staging-azure-general"].inputs["zones"] == ["1", "2", "3"], "unpinned: the VMs' spread"
    for vmss in sets.values():
        i = vmss.inputs
        assert i["orchestrationMode"] == "Uniform" and i["upgradePolicy"] == {"mode": "Manual"}
        assert i["sku"]["capacity"] == 0 and "sku.capacity" in vmss.options["ignoreChanges"], \
            "the autoscaler owns the capacity: Pulumi starts it at 0 and never resets it"
        assert i["overprovision"] is False
        assert i["resourceGroupName"] == "adp-staging-azure" and i["tags"]["adplatform-stack"] == "staging-azure"


def test_scale_sets_have_the_vms_settings_and_the_secret_custom_data(groups, staging):
    vmss = groups.named("group-general-2", VMSS).inputs
    vm = staging.named("general-1", VM).inputs
    assert isinstance(vmss["virtualMachineProfile"], mockrun.Secret), "the join token stays secret in state"
    profile = vmss["virtualMachineProfile"].value
    assert vmss["sku"]["name"] == vm["hardwareProfile"]["vmSize"]
    assert profile["storageProfile"]["imageReference"] == vm["storageProfile"]["imageReference"]
    os_disk, vm_disk = profile["storageProfile"]["osDisk"], vm["storageProfile"]["osDisk"]
    assert (os_disk["diskSizeGB"], os_disk["managedDisk"]) == (vm_disk["diskSizeGB"], vm_disk["managedDisk"])
    assert profile["securityProfile"] == vm["securityProfile"] == {"encryptionAtHost": True}
    assert profile["osProfile"]["linuxConfiguration"] == vm["osProfile"]["linuxConfiguration"]
    assert profile["osProfile"]["adminUsername"] == "ubuntu"
    assert vmss["identity"] == {"type": "None"}, "agents carry no identity (and an update removes the old one)"
    (nic,) = profile["networkProfile"]["networkInterfaceConfigurations"]
    (ip,) = nic["ipConfigurations"]
    assert ip["subnet"]["id"] == vm_subnet(staging), "the VMs' subnet, with the nodes' NSG"
    assert ip["publicIPAddressConfiguration"]["sku"] == {"name": "Standard", "tier": "Regional"}, \
        "outbound through the instance's own address: the subnet has no default outbound access"
    assert base64.b64decode(profile["osProfile"]["customData"]).decode() == FAKE_USER_DATA


def vm_subnet(run: mockrun.Run) -> str:
    (nic, *_) = run.of_type(NIC)
    return nic.inputs["ipConfigurations"][0]["subnet"]["id"]


def test_autoscaler_values_name_exactly_the_scale_sets_and_use_its_managed_identity(groups):
    values = groups.values
    assert (values["cloudProvider"], values["azureVMType"]) == ("azure", "vmss")
    assert {g["name"]: g["maxSize"] for g in values["autoscalingGroups"]} == {
        r.inputs["vmScaleSetName"]: next(q.max_size for q in groups.requests if r.name == f"group-{q.name}")
        for r in groups.of_type(VMSS)}
    assert all(g["minSize"] == 0 for g in values["autoscalingGroups"])
    assert values["azureResourceGroup"] == "adp-staging-azure"
    assert values["azureSubscriptionID"] == mockrun.FAKE_AZURE_SUBSCRIPTION
    assert values["azureUseManagedIdentityExtension"] is True
    assert values["azureUserAssignedIdentityID"] == mockrun._azure_uuid("client-autoscaler-identity")
    assert not any("Secret" in key for key in values) and groups.groups.secret_env == {}, "no client secret"
    assert values["nodeSelector"] == {"node-role.kubernetes.io/control-plane": "true"}, "where its identity is"


def test_autoscaler_role_is_scale_sets_only_on_the_resource_group(groups):
    role = groups.named("autoscaler-role", "azure-native:authorization:RoleDefinition").inputs
    assert role["assignableScopes"] == [role["scope"]]
    actions = role["permissions"][0]["actions"]
    assert actions == azure.AUTOSCALER_ACTIONS
    assert "Microsoft.Compute/virtualMachineScaleSets/write" in actions
    assert not any(a.startswith("Microsoft.ManagedIdentity") for a in actions), "the scale sets carry no identity"
    assert not any(a.endswith("*") or a.startswith("Microsoft.Authorization") for a in actions)
    assert not [a for a in actions if a.startswith("Microsoft.Compute/virtualMachines/") and not a.endswith("/read")], \
        "standalone VMs (the Pulumi-managed floor) are only read"
    assignment = groups.named("autoscaler-role-assignment", "azure-native:authorization:RoleAssignment").inputs
    assert assignment["scope"] == role["scope"]


def test_empty_scale_sets_describe_their_nodes_labels_and_taints(groups):
    tags = groups.named("group-general-2", VMSS).inputs["tags"]
    assert tags["k8s.io_cluster-autoscaler_node-template_label_adplatform.io_pool"] == "general"
    assert tags["k8s.io_cluster-autoscaler_node-template_label_adplatform.io_location"] == "2"
    assert tags["k8s.io_cluster-autoscaler_node-template_taint_adplatform.io_burst"] == "true:NoSchedule"
    assert not [k for k in tags if "/" in k], "Azure tag names hold no '/'"
    assert azure.node_template_tags(cloud.NodeTemplate({"a_b/c": "v"}, ())) == {
        "k8s.io_cluster-autoscaler_node-template_label_a~2b_c": "v"}


def test_scale_set_nodes_get_their_provider_id_from_the_node_manager(groups):
    assert groups.profile.node_boot_commands == (), "cloud-node-manager (vmType vmss) sets it from IMDS"
