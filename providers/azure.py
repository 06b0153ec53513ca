"""Azure: resource group, VNet, NSG from PORTS, zonal VMs with a managed identity, API load balancer,
cloud-provider-azure (CCM) and the Azure Disk CSI driver.

Location: `azure-native:location` (the provider's own config) is the region; a `location` in the
stack config is an availability zone of it ("1", "2" or "3") and pins those nodes there. Unpinned
pools spread round-robin over the three zones (providers/cloud.py). Pods ride Cilium's VXLAN tunnel
between VM addresses: no route table, no IP forwarding on the NICs.

Disks: every managed disk is encrypted at rest by Azure with platform-managed keys (always on, it
cannot be turned off); the VMs also enable *encryption at host*, which extends that encryption to
the host-side caches of the OS and data disks (and temp disks, which the chosen sizes do not have).
It needs the subscription feature once: `az feature register --namespace Microsoft.Compute --name
EncryptionAtHost` (then `az provider register -n Microsoft.Compute`). Customer-managed keys (a disk
encryption set in Key Vault) are not used.

Credentials in the cluster: one user-assigned managed identity on the K3s server VMs only, holding a custom role
limited to the stack's resource group and to the actions the CCM and the disk driver's controller document. Both run
on the control plane only and read the rendered `azure.json` from the Secret kube-system/azure-cloud-provider. Agents
(VMs and scale set instances) carry no identity: instance metadata has no hop limit, so whatever identity a VM
carries is every host-network pod's there, and nothing on an agent calls Azure's API (the cloud node manager and the
disk node plugin read instance metadata, which needs no identity; the kubelet runs with cloud-provider=external).

Autoscaled pools (docs/autoscaling.md): a Uniform VM scale set per node group request, with the VMs' settings.
The CCM and the disk driver then run with vmType `vmss` (scale set instances and standalone VMs); the cloud node
manager gives scale set instances the provider ID the autoscaler expects. The autoscaler has its own identity,
on the control-plane VMs only, with a custom role on the stack's resource group; the scale sets carry none.
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import json
import re
from pathlib import Path
from typing import Sequence

import pulumi
import pulumi_azure_native.authorization as authorization
import pulumi_azure_native.compute as compute
import pulumi_azure_native.managedidentity as managedidentity
import pulumi_azure_native.network as network
import pulumi_azure_native.resources as resources
import pulumi_kubernetes as k8s

from components.charts import AZURE_CCM, AZURE_DISK_CSI
from components.helm import release
from components.remote import run_script
from components.shell import content_hash, render
from providers import power_off
from config import LoadedConfig, Problem
from config.errors import problem
from config.model import Cluster, StackConfig
from providers import cloud
from providers.base import (AdmittedPeers, CLUSTER_PORTS, ApiEndpoints, ClusterPort, ClusterProfile, Credential,
                            Infrastructure, Node, NodeGroupRequest, NodeGroups, NodeSpec, PeerAddress, PeerQuota,
                            ProviderInfrastructure, CONTROL_PLANE_SELECTOR, PROVIDER_LABEL, Storage, assemble,
                            check_locations,
                            check_server_type_names, csi_storage, holds_default_class, first_server_api, holds_data, node_specs,
                            provider_id, resolve_server_type, secondary_controller_placement, secondary_part,
                            ssh_connection, zone_topology)

NAME = "azure"
ZONES = ("1", "2", "3")  # Azure names a region's availability zones 1..3
# Ubuntu 24.04 LTS as Canonical publishes it in the Azure Marketplace (URN
# Canonical:ubuntu-24_04-lts:server:latest, Gen2 x64; Ubuntu's "Find Ubuntu images on Azure" docs).
# Azure resolves `latest` when a VM is created; `cluster.image` pins a version or another image.
UBUNTU = {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"}
_URN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*:[A-Za-z0-9][A-Za-z0-9._-]*:[A-Za-z0-9][A-Za-z0-9._-]*:"
                  r"(latest|\d+\.\d+\.\d+)$")
_IMAGE_ID = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/"
                       r"(images/[^/]+|galleries/[^/]+/images/[^/]+(/versions/[^/]+)?)$", re.I)
VNET_PREFIX = 16  # the VNet when cluster.networkCidr would swallow the pod and service ranges
OS_DISK_TYPE = "Premium_LRS"  # zonal SSD; every size below supports premium storage
DATA_DISK_TYPE = "Premium_LRS"  # zonal: WaitForFirstConsumer creates a volume in its pod's zone
STORAGE_CLASS = "azure-disk-premium"
DISK_PROVISIONER = "disk.csi.azure.com"
# The zone key the disk driver's node plugin reports (pkg/azuredisk/azuredisk.go: topology.<driver name>/zone), with
# the value <location>-<zone> (cloud-provider-azure azure_zones.go GetZone/makeZone, from instance metadata), as
# azure_topology names it; no other provider's node carries this key.
DISK_ZONE_KEY = "topology.disk.csi.azure.com/zone"
CLOUD_CONFIG_SECRET = "azure-cloud-provider"  # the name both the CCM and the disk driver read by default
API_PORT = 6443
# Size classes -> VM sizes (x64, Gen2 like the image). Burstable Bsv2 for the shared classes (the
# counterpart of Hetzner's shared vCPU); Dsv5 (non-burstable, 4 GiB per vCPU, premium storage) for
# every dedicated class. Databases wanting local NVMe (Lsv3) set serverType on their pool.
# An Azure VM size: tier "_" family, vCPUs, features ["_" version], e.g. Standard_D8s_v5, Standard_B2ls_v2.
SERVER_TYPE_NAME = re.compile(r"(Standard|Basic)_[A-Za-z0-9]+(_[A-Za-z0-9]+)*")
POWER_OFF_INPUTS = power_off.POWER_OFF_INPUTS["azure-native:compute:VirtualMachine"]
SERVER_TYPES = {
    "small": "Standard_B2ls_v2",        # 2 vCPU, 4 GiB
    "medium": "Standard_B4ls_v2",       # 4 vCPU, 8 GiB
    "dedicated-medium": "Standard_D4s_v5",    # 4 vCPU, 16 GiB
    "dedicated-large": "Standard_D8s_v5",     # 8 vCPU, 32 GiB
    "dedicated-xlarge": "Standard_D16s_v5",   # 16 vCPU, 64 GiB
    "dedicated-2xlarge": "Standard_D32s_v5",  # 32 vCPU, 128 GiB
}
# The Azure Disk CSI controller's actions on standalone VMs (azuredisk-csi-driver v1.34.5 docs/driver-parameters.md,
# "required permissions for CSI driver controller"): create, resize and delete disks (polling DiskOperations), attach
# and detach them by updating the VM (pkg/provider azure_controller_standard.go: a PUT of the data disk list only, so
# none of the "additional resources" rows), polling that update (locations/operations), the resource group. Not its
# scale set rows (SCALE_SET_NODE_ACTIONS), nor snapshots and disk encryption sets, which only a cluster identity
# keeps (DISK_EXTRA_ACTIONS). A hybrid cluster's secondary Azure part gets exactly these (_disk_identity).
DISK_CSI_ACTIONS = sorted({
    "Microsoft.Compute/disks/read", "Microsoft.Compute/disks/write", "Microsoft.Compute/disks/delete",
    "Microsoft.Compute/locations/DiskOperations/read",
    "Microsoft.Compute/virtualMachines/read", "Microsoft.Compute/virtualMachines/write",
    "Microsoft.Compute/locations/operations/read",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
})
# The rest of the disk driver's list an Azure stack's cluster identity holds: snapshots, encryption sets.
DISK_EXTRA_ACTIONS = ("Microsoft.Compute/diskEncryptionSets/read", "Microsoft.Compute/snapshots/read",
                      "Microsoft.Compute/snapshots/write", "Microsoft.Compute/snapshots/delete")
# The custom role of the cluster identity, assignable only in the stack's resource group. From
# cloud-provider-azure's "Azure Permissions" (documentation branch, content/en/topics/azure-permissions.md)
# less what this cluster never asks of it: route tables (Cilium tunnels), storage accounts (no Azure
# Files), VM scale sets (SCALE_SET_NODE_ACTIONS below, only with autoscaled pools) and private link
# services; plus the disk driver's list (DISK_CSI_ACTIONS, DISK_EXTRA_ACTIONS) and the VNet join that IP-based LB
# backend pools need.
CLUSTER_ACTIONS = sorted({
    # LoadBalancer Services: load balancers, their public IPs, NSG rules for their ports
    "Microsoft.Network/loadBalancers/read", "Microsoft.Network/loadBalancers/write",
    "Microsoft.Network/loadBalancers/delete", "Microsoft.Network/loadBalancers/backendAddressPools/read",
    "Microsoft.Network/loadBalancers/backendAddressPools/write",
    "Microsoft.Network/loadBalancers/backendAddressPools/delete",
    "Microsoft.Network/publicIPAddresses/read", "Microsoft.Network/publicIPAddresses/write",
    "Microsoft.Network/publicIPAddresses/delete", "Microsoft.Network/publicIPAddresses/join/action",
    "Microsoft.Network/networkSecurityGroups/read", "Microsoft.Network/networkSecurityGroups/write",
    "Microsoft.Network/networkSecurityGroups/join/action",
    "Microsoft.Network/networkInterfaces/read",
    "Microsoft.Network/virtualNetworks/read", "Microsoft.Network/virtualNetworks/subnets/read",
    "Microsoft.Network/virtualNetworks/subnets/join/action",
    "Microsoft.Network/virtualNetworks/joinLoadBalancer/action",
    # Nodes (zones, sizes, addresses)
    "Microsoft.Compute/virtualMachines/read", "Microsoft.Compute/locations/vmSizes/read",
    # Volumes, their snapshots, attach/detach
    *DISK_CSI_ACTIONS, *DISK_EXTRA_ACTIONS,
})
# With scale set nodes (vm_type "vmss"), the CCM and the disk driver also read scale sets, their instances and
# those instances' addresses, and attach disks to instances (virtualmachines/write): the scale set rows of the
# same "Azure Permissions" list (AKS's cluster identity table), less adding scale sets to load balancer pools
# (virtualMachineScaleSets/write, /delete): our Service load balancers take node IPs
# (loadBalancerBackendPoolConfigurationType).
SCALE_SET_NODE_ACTIONS = sorted({
    "Microsoft.Compute/virtualMachineScaleSets/read", "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read",
    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/instanceView/read",
    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/write",
    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/networkInterfaces/read",
    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/networkInterfaces/ipconfigurations/publicipaddresses/read",
})
# The cluster autoscaler's custom role, assignable only in the stack's resource group: what its VMSS cloud
# provider calls (cluster-autoscaler 1.35 cloudprovider/azure: scale sets list/get/createOrUpdate of the
# capacity, deleteInstances, their VMs with instance views, standalone VMs listed to tell them apart, the
# operations it polls) and the subnet join a scale-out's new NICs need. No identity assignment: the scale sets carry
# no identity (_scale_set). Its README grants Contributor on the subscription instead.
AUTOSCALER_ACTIONS = sorted({
    "Microsoft.Compute/virtualMachineScaleSets/read", "Microsoft.Compute/virtualMachineScaleSets/write",
    "Microsoft.Compute/virtualMachineScaleSets/delete/action",
    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read",
    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/instanceView/read",
    "Microsoft.Compute/virtualMachines/read", "Microsoft.Compute/locations/operations/read",
    "Microsoft.Network/virtualNetworks/subnets/join/action",
})
# Scale from zero: a scale set's future nodes' labels and taints as tags (cluster-autoscaler 1.35
# cloudprovider/azure/README.md "Scaling a VMSS node group to and from 0"): Azure tag names hold no '/', so
# '/' is written '_' and a '_' of the key "~2".
NODE_TEMPLATE_LABEL_TAG = "k8s.io_cluster-autoscaler_node-template_label_"
NODE_TEMPLATE_TAINT_TAG = "k8s.io_cluster-autoscaler_node-template_taint_"
NSG_PRIORITY = 100  # our rules: 100..299; the CCM numbers its Service rules from 500 up
# Peer rules (a cluster over the public internet, _admit_peers): one per cluster port, at this priority plus the
# port's place in CLUSTER_PORTS (unique and stable), after the PORTS rules and the cluster network's (200).
PEER_PRIORITY = NSG_PRIORITY + 110
# Azure networking limits (Resource Manager): "IP addresses and ranges specified for source or destination in a
# security group": 4,000, counted for sources and destinations separately (our NSG: sources only).
NSG_SOURCE_PREFIXES = 4000
API_ADDRESS_TEMPLATE = Path(__file__).parent / "scripts" / "api-address.sh"


def api_address(subnet: str) -> str:
    """The internal API load balancer's fixed address: the subnet's last usable one (Azure keeps the
    first four and the last; VMs are numbered from the bottom)."""
    return str(ipaddress.ip_network(subnet)[-2])


def api_address_script(address: str) -> str:
    """The exact script each K3s server runs when the internal API load balancer exists (pure)."""
    return render(API_ADDRESS_TEMPLATE, {"API_ADDRESS": address})


def azure_location() -> str | None:
    return cloud.provider_setting("azure-native", "location")


def azure_region(location: str) -> str:
    """The canonical (lowercase, no spaces) location, as instance metadata and cloud-provider-azure's zones name it."""
    return location.lower().replace(" ", "")


def azure_topology(location: str, zone: str) -> dict[str, str]:
    """A VM's region and zone as cloud-provider-azure labels a zonal VM: the canonical location, and
    `<location>-<zone>` (docs/topics/availability-zones.md, "Node labels")."""
    region = azure_region(location)
    return {"region": region, "zone": f"{region}-{zone}"}


def vnet_cidr(cluster: Cluster) -> str:
    """cluster.networkCidr unless it holds the pod or service range (they ride the tunnel and must not be
    VNet addresses), else the /16 around cluster.subnetCidr."""
    network = ipaddress.ip_network(cluster.network_cidr)
    if not any(network.overlaps(ipaddress.ip_network(c)) for c in (cluster.pod_cidr, cluster.service_cidr)):
        return str(network)
    subnet = ipaddress.ip_network(cluster.subnet_cidr)
    return str(subnet.supernet(new_prefix=VNET_PREFIX) if subnet.prefixlen > VNET_PREFIX else subnet)


def image_reference(image: str | None) -> dict[str, str]:
    """compute.ImageReference fields: Canonical's Ubuntu 24.04, a URN override, or an image resource id."""
    if image is None:
        return dict(UBUNTU)
    if image.startswith("/"):
        return {"id": image}
    publisher, offer, sku, version = image.split(":")
    return {"publisher": publisher, "offer": offer, "sku": sku, "version": version}


def check_image(image: str | None) -> list[Problem]:
    if image is None or _URN.match(image) or _IMAGE_ID.match(image):
        return []
    return [problem("cluster.image", "must be an Azure image URN Publisher:Offer:Sku:Version (e.g. "
                    "Canonical:ubuntu-24_04-lts:server:24.04.202611010, or :latest) or the resource id of an image "
                    "or gallery image version (/subscriptions/.../providers/Microsoft.Compute/...)", image)]


def nsg_rules(admin_cidrs: Sequence[str]) -> list[dict]:
    """PORTS as NSG rules: one per port rule and address family (an NSG rule holds one family), with
    priorities fixed by the rule's place in PORTS, so changing adminCidrs updates rules in place."""
    return [{"name": f"{r.rule.source}-{r.rule.protocol}-{r.span or 'any'}-ipv{6 if r.ipv6 else 4}",
             "priority": NSG_PRIORITY + 10 * r.index + r.ipv6,
             "protocol": r.rule.protocol.capitalize(), "destination_port_range": r.span or "*",
             "source_address_prefixes": list(r.sources), "description": r.rule.description}
            for r in cloud.family_rules(admin_cidrs)]


def nsg_source_prefixes(cfg: StackConfig, peer_rules: Sequence[tuple[ClusterPort, Sequence[str]]]) -> int:
    """The source addresses and ranges the nodes' NSG names: its PORTS rules', the cluster network, every peer rule's
    (the CCM adds its Services' on top, in a stack provider's part)."""
    own = sum(len(rule["source_address_prefixes"]) for rule in nsg_rules(cfg.admin_cidrs)) + 1
    return own + sum(len(peers) for _port, peers in peer_rules)


def vm_type(cluster: Cluster) -> str:
    """cloud-provider-azure's vmType: `standard` for standalone VMs only; `vmss` once scale sets hold nodes (it
    serves standalone VMs too, and gives scale set instances their provider ID .../virtualMachineScaleSets/<name>/
    virtualMachines/<id>: pkg/provider/azure_instances.go, azure_vmss.go)."""
    return "vmss" if cluster.autoscaled_pools else "standard"


def cluster_actions(cluster: Cluster) -> list[str]:
    """The cluster identity's actions: the VMs', and the scale set instances' where pools autoscale."""
    return sorted({*CLUSTER_ACTIONS, *(SCALE_SET_NODE_ACTIONS if vm_type(cluster) == "vmss" else ())})


def disk_driver_config(*, tenant_id: str, subscription_id: str, resource_group: str, location: str,
                       identity_client_id: str, vm_type: str) -> dict:
    """The azure.json keys the disk driver reads (cloud-provider-azure pkg/provider/config/azure.go,
    pkg/azclient/auth_conf.go, arm_conf.go, as vendored by azuredisk-csi-driver v1.34.5): where its disks live, how it
    finds VMs (vm_type; an unset vmType means `vmss`), and a user-assigned managed identity, so no client secret.
    With useInstanceMetadata the node plugin reads its zone and VM size from the instance metadata service."""
    return {
        "cloud": "AzurePublicCloud",
        "tenantId": tenant_id,
        "subscriptionId": subscription_id,
        "resourceGroup": resource_group,
        "location": location,
        "vmType": vm_type,
        "useManagedIdentityExtension": True,
        "userAssignedIdentityID": identity_client_id,
        "useInstanceMetadata": True,
        "cloudProviderBackoff": True,
    }


def cloud_provider_config(*, tenant_id: str, subscription_id: str, resource_group: str, location: str, vnet: str,
                          subnet: str, security_group: str, identity_client_id: str, vm_type: str) -> str:
    """azure.json for the CCM and the disk driver: the driver's keys, and the CCM's network: VMs (and scale sets, see
    vm_type), Standard SKU, no route table."""
    return json.dumps({
        **disk_driver_config(tenant_id=tenant_id, subscription_id=subscription_id, resource_group=resource_group,
                             location=location, identity_client_id=identity_client_id, vm_type=vm_type),
        "vnetName": vnet,
        "vnetResourceGroup": resource_group,
        "subnetName": subnet,
        "securityGroupName": security_group,  # the CCM adds each Service's port rules to the nodes' NSG
        "securityGroupResourceGroup": resource_group,
        "loadBalancerSku": "standard",
        # Node IPs join the Service load balancers' pools: the CCM never writes the NICs Pulumi owns.
        "loadBalancerBackendPoolConfigurationType": "nodeIP",
    }, indent=2, sort_keys=True)


# Keys of the azure-native provider's config that hold credentials (pulumi_azure_native config); the Azure CLI
# login or a managed identity work without them.
CREDENTIALS = (Credential("azure-native:clientSecret"), Credential("azure-native:clientCertificatePassword"),
               Credential("azure-native:oidcToken"), Credential("azure-native:oidcRequestToken"))


class Azure:
    name = NAME
    server_types = SERVER_TYPES
    credentials = CREDENTIALS
    zonal_node_groups = False  # one scale set over the zones
    # The VMs' public IPs are known before the VMs: each puts its own on `lo` from custom data (_vm).
    internet_peering = True
    # Its public API balancer (a Standard load balancer, which passes the client's address through) reaches the
    # servers through the nodes' NSG, whose peer rule on 6443 names every cluster node (_admit_peers): nodes of other
    # providers join through it. A joining server is no target yet (its 6443 fails the health probe).
    public_api_balancer_admits_peers = True
    # As a hybrid cluster's secondary (providers/hybrid.py pool_roles) it installs its own disk driver, cloud-config and
    # classes on its own nodes, with an identity holding only the driver's rights (_install_disk_csi, _disk_identity):
    # it may host stores. No Azure CCM is needed: the driver finds a standalone VM by the node's name (= the VM name).
    secondary_storage = True
    peer_quota = PeerQuota(NSG_SOURCE_PREFIXES, "source addresses and ranges in the nodes' network security group "
                           "(Azure's networking limit)", nsg_source_prefixes)
    # No Key Vault seal (docs/security.md, "Azure: no Key Vault seal, and why"): a client secret needs an Entra ID
    # application (no SDK for it here); a managed identity on the VMs would be every host-network pod's there (IMDS);
    # workload identity needs a public service-account issuer K3s does not publish. Use `transit` or `static`.
    kms_seal = None

    def validate(self, loaded: LoadedConfig) -> list[Problem]:
        cluster = loaded.config.cluster
        found: list[Problem] = []
        if not azure_location():
            found.append(problem("azure-native:location", "must be set to the stack's Azure region (pulumi config set "
                                 "azure-native:location westeurope): the Azure provider and the cluster use it"))
        found += check_locations(cluster, lambda z: z in ZONES, f"an availability zone of the region ({', '.join(ZONES)})")
        found += check_image(cluster.image)
        vnet = vnet_cidr(cluster)
        found += cloud.check_network(cluster, vnet, "Azure VNet")
        if not ipaddress.ip_network(cluster.subnet_cidr).subnet_of(ipaddress.ip_network(vnet)):
            found.append(problem("cluster.subnetCidr", f"must lie inside the VNet {vnet}", cluster.subnet_cidr))
        found += check_server_type_names(cluster, SERVER_TYPE_NAME, "an Azure VM size such as Standard_D8s_v5")
        return found

    def create(self, loaded: LoadedConfig, over_internet: bool = False) -> Infrastructure:
        """`over_internet`: the nodes join a cluster over the public internet (public_address_custom_data)."""
        return AzureInfrastructure("azure", loaded, over_internet=over_internet).infrastructure


class AzureInfrastructure(ProviderInfrastructure):
    """Everything Azure-side for one stack."""

    def __init__(self, name: str, loaded: LoadedConfig, opts: pulumi.ResourceOptions | None = None, *,
                 over_internet: bool = False):
        super().__init__("AzureInfrastructure", name, loaded, opts)
        cfg = loaded.config
        self._over_internet = over_internet
        # Azure tag names cannot hold '/', hence not the Kubernetes-style label keys.
        self._tags = {"adplatform-stack": loaded.stack}
        self._location = azure_location() or ""
        self._client = authorization.get_client_config_output()

        specs = node_specs(loaded)
        spread = cloud.spread(ZONES)
        self.zones = {spec.name: cloud.zone_of(spec, spread) for spec in specs}
        self.image = image_reference(cfg.cluster.image)
        # A cluster over the internet spans providers: the disk driver and classes stay on this provider's nodes.
        # A secondary part (no K3s servers here, or only control-plane members moving here: secondary_part): no CCM,
        # and an identity only where the disk driver runs.
        self._hybrid = over_internet
        self._secondary = secondary_part(loaded)

        self.resource_group = resources.ResourceGroup(
            "resource-group", resource_group_name=self._prefix, location=self._location, tags=self._tags,
            opts=self._opts(protect=True))
        vnet = vnet_cidr(cfg.cluster)
        self.nsg = self._security_group(cfg.admin_cidrs, vnet)
        self.vnet, self.subnet = self._network(vnet, cfg.cluster.subnet_cidr)
        # The CCM's and disk controller's identity; on a stack's part only the servers carry it (_vm_identities).
        self.identity = self._disk_identity() if self._secondary else self._identity()
        # The autoscaler's own identity exists with autoscaled pools; only the control-plane VMs carry it.
        self.autoscaler_identity = self._autoscaler_identity() if cfg.cluster.autoscaled_pools else None
        servers = [s for s in specs if s.k3s_role == "server"]
        api_pools, lb_endpoints = self._api_load_balancers(servers)
        nodes = [self._vm(spec, api_pools if spec.k3s_role == "server" else []) for spec in specs]
        first = first_server_api([n for n in nodes if n.spec.k3s_role == "server"])  # none in a hybrid's part
        api = ApiEndpoints(private=lb_endpoints.get("internal", first.private),
                           public=lb_endpoints.get("public", first.public), balancers=tuple(lb_endpoints.values()))
        self.infrastructure = assemble(
            nodes, api,
            ClusterProfile(
                # The CCM provides Service load balancers, the disk driver volumes.
                k3s_disable=("servicelb", "traefik", "local-storage"),
                external_cloud_provider=True,
                # VXLAN between VM addresses: the VNet routes no pod addresses (no route table).
                cilium_values={"routingMode": "tunnel", "tunnelProtocol": "vxlan"},
                # The CCM turns the gateway's Service into a Standard public load balancer (no annotation needed).
                load_balancer_annotations={},
                local_nvme=False,  # managed (network) disks; Lsv3 local NVMe is opt-in per pool
                # None: the cloud node manager sets every node's provider ID from instance metadata (vm_type).
                node_boot_commands=(),
                credentials_from_instance_metadata=True,  # the autoscaler: its user-assigned managed identity
            ),
            install_addons=self._install_ccm,
            install_storage=self._install_disk_csi,
            install_node_groups=self._install_node_groups,
            admit_peers=self._admit_peers,
        )
        self.register_outputs({"resource_group": self.resource_group.name, "vnet_id": self.vnet.id})

    def _rg(self) -> dict:
        return {"resource_group_name": self.resource_group.name, "location": self._location}

    # --- network -----------------------------------------------------------------------------------

    def _security_group(self, admin_cidrs: Sequence[str], vnet: str) -> network.NetworkSecurityGroup:
        """The nodes' NSG (on their subnet). Rules are separate resources, not inline: the CCM adds its
        Service rules to this group, and inline rules would make Pulumi remove them."""
        nsg = network.NetworkSecurityGroup(
            "nsg", network_security_group_name=f"{self._prefix}-nodes", tags=self._tags, **self._rg(),
            opts=self._opts())
        rules = [*nsg_rules(admin_cidrs), {
            # Azure's default AllowVnetInBound (65000) admits the VNet too; stated here, above the CCM's rules.
            "name": "cluster-network-any", "priority": NSG_PRIORITY + 100, "protocol": "*",
            "destination_port_range": "*", "source_address_prefixes": [vnet],
            "description": "everything between cluster members (the private network)"}]
        for rule in rules:
            network.SecurityRule(
                f"nsg-{rule['name']}", security_rule_name=rule["name"], network_security_group_name=nsg.name,
                resource_group_name=self.resource_group.name, direction="Inbound", access="Allow",
                priority=rule["priority"], protocol=rule["protocol"], source_port_range="*",
                destination_address_prefix="*", destination_port_range=rule["destination_port_range"],
                source_address_prefixes=rule["source_address_prefixes"], description=rule["description"],
                opts=self._opts())
        return nsg

    def _admit_peers(self, rules: Sequence[tuple[ClusterPort, Sequence[PeerAddress]]],
                     hooks: pulumi.ResourceHookBinding) -> AdmittedPeers:
        """One NSG rule per cluster port from exactly its peers' addresses (a cluster over the public internet,
        providers/hybrid.py), at a priority fixed by the port (PEER_PRIORITY); the NSG guards the nodes' subnet.
        A rule names every peer of its port: `hooks` drain a leaving node before an update drops it; no rule admits
        one node alone."""
        created = []
        for port, peers in rules:
            name = f"peers-{port.protocol}-{port.port or 'any'}"
            created.append(network.SecurityRule(
                f"nsg-{name}", security_rule_name=name, network_security_group_name=self.nsg.name,
                resource_group_name=self.resource_group.name, direction="Inbound", access="Allow",
                priority=PEER_PRIORITY + CLUSTER_PORTS.index(port), protocol=port.protocol.capitalize(),
                source_port_range="*", destination_address_prefix="*", destination_port_range=port.port or "*",
                source_address_prefixes=[peer.cidr for peer in peers], description=port.rule_description,
                opts=self._opts(hooks=hooks)))
        return AdmittedPeers(rules=tuple(created))

    def _network(self, vnet: str, subnet: str) -> tuple[network.VirtualNetwork, network.Subnet]:
        # The subnet is its own resource (a VNet's inline subnets and separate ones do not mix).
        vnet_resource = network.VirtualNetwork(
            "vnet", virtual_network_name=self._prefix, address_space=network.AddressSpaceArgs(address_prefixes=[vnet]),
            tags=self._tags, **self._rg(), opts=self._opts(protect=True))
        subnet_resource = network.Subnet(
            "subnet", subnet_name="nodes", virtual_network_name=vnet_resource.name,
            resource_group_name=self.resource_group.name, address_prefix=subnet,
            network_security_group=network.NetworkSecurityGroupArgs(id=self.nsg.id),
            # Outbound only through each VM's own public IP (Azure retires implicit default outbound access).
            default_outbound_access=False, opts=self._opts(protect=True))
        return vnet_resource, subnet_resource

    # --- identity ----------------------------------------------------------------------------------

    def _identity(self) -> managedidentity.UserAssignedIdentity:
        """The VMs' identity, for the CCM and the disk driver: a custom role on the resource group only."""
        return self._scoped_identity("cluster", cluster_actions(self._loaded.config.cluster),
                                     "Cloud controller manager and Azure Disk CSI driver of an adplatform cluster",
                                     "adplatform cluster identity (CCM, disk CSI)")

    def _disk_identity(self) -> managedidentity.UserAssignedIdentity | None:
        """A secondary part's identity, for the disk driver alone (DISK_CSI_ACTIONS, no CCM rights), where its pools
        hold data (the driver runs only then: providers/hybrid.py combine); stateless pools get none."""
        if not holds_data(node_specs(self._loaded)):
            return None
        return self._scoped_identity("disk-csi", DISK_CSI_ACTIONS,
                                     "Azure Disk CSI driver of an adplatform cluster's Azure pools",
                                     "adplatform Azure Disk CSI driver")

    def _autoscaler_identity(self) -> managedidentity.UserAssignedIdentity:
        """The cluster autoscaler's identity: only the scale set rights, on the resource group only."""
        return self._scoped_identity("autoscaler", AUTOSCALER_ACTIONS,
                                     "Cluster autoscaler of an adplatform cluster: its VM scale sets",
                                     "adplatform cluster autoscaler")

    def _scoped_identity(self, name: str, actions: Sequence[str], role_description: str,
                         assignment_description: str) -> managedidentity.UserAssignedIdentity:
        """A user-assigned identity holding a custom role of `actions`, assignable and assigned on the stack's
        resource group only (resources `<name>-identity`, `<name>-role`, `<name>-role-assignment`)."""
        identity = managedidentity.UserAssignedIdentity(
            f"{name}-identity", resource_name_=f"{self._prefix}-{name}", tags=self._tags, **self._rg(),
            opts=self._opts())
        role = authorization.RoleDefinition(
            f"{name}-role", scope=self.resource_group.id, assignable_scopes=[self.resource_group.id],
            # Custom role names are unique per tenant: the subscription tells stacks of the same name apart.
            role_name=self._client.subscription_id.apply(
                lambda sub: f"adplatform {self._loaded.stack} {name} ({sub[:8]})"),
            description=role_description,
            permissions=[authorization.PermissionArgs(actions=list(actions))], role_type="CustomRole",
            opts=self._opts())
        authorization.RoleAssignment(
            f"{name}-role-assignment", scope=self.resource_group.id, role_definition_id=role.id,
            principal_id=identity.principal_id, principal_type="ServicePrincipal",
            description=assignment_description, opts=self._opts())
        return identity

    # --- API load balancers ------------------------------------------------------------------------

    def _lb_id(self, lb_name: str, kind: str, child: str) -> pulumi.Output[str]:
        """A load balancer's own sub-resource id (rules refer to frontends, pools and probes by id)."""
        return pulumi.Output.concat("/subscriptions/", self._client.subscription_id, "/resourceGroups/",
                                    self.resource_group.name, "/providers/Microsoft.Network/loadBalancers/",
                                    lb_name, f"/{kind}/{child}")

    def _api_load_balancers(self, servers: Sequence[NodeSpec]) -> tuple[list[pulumi.Output[str]], dict]:
        """Standard load balancers for 6443: internal (the nodes join through it; Cilium uses the node-local API)
        and, when `public`, a public one for the deployer (and, over the internet, for every node to join at). The
        NSG's rules still apply to it, as a Standard load balancer keeps the client address: 6443 from the admin
        CIDRs, and over the internet from each cluster node (_admit_peers)."""
        lb_cfg = self._loaded.config.cluster.api_load_balancer
        if not lb_cfg.enabled or not servers:
            return [], {}
        pools, endpoints = [], {}
        # Floating IP: the servers carry the frontend address on lo (api_address_script), so a server's
        # own flows to it stay local; an internal load balancer drops a flow it sends back to its source.
        internal = self._api_lb("api", network.FrontendIPConfigurationArgs(
            name="api", subnet=network.SubnetArgs(id=self.subnet.id), private_ip_allocation_method="Static",
            private_ip_address=api_address(self._loaded.config.cluster.subnet_cidr), zones=list(ZONES)),
            floating_ip=True)
        pools.append(internal.backend_address_pools.apply(lambda p: p[0].id))
        endpoints["internal"] = internal.frontend_ip_configurations.apply(lambda f: f[0].private_ip_address or "")
        if lb_cfg.public:
            ip = network.PublicIPAddress(
                "api-public-ip", public_ip_address_name=f"{self._prefix}-api", public_ip_allocation_method="Static",
                public_ip_address_version="IPv4", zones=list(ZONES),
                sku=network.PublicIPAddressSkuArgs(name="Standard", tier="Regional"), tags=self._tags, **self._rg(),
                opts=self._opts(protect=True))
            public = self._api_lb("api-public", network.FrontendIPConfigurationArgs(
                name="api", public_ip_address=network.PublicIPAddressArgs(id=ip.id)))
            pools.append(public.backend_address_pools.apply(lambda p: p[0].id))
            endpoints["public"] = ip.ip_address.apply(lambda a: a or "")
        return pools, endpoints

    def _api_lb(self, name: str, frontend: network.FrontendIPConfigurationArgs,
                floating_ip: bool = False) -> network.LoadBalancer:
        lb_name = f"{self._prefix}-{name}"
        return network.LoadBalancer(
            f"{name}-lb", load_balancer_name=lb_name, sku=network.LoadBalancerSkuArgs(name="Standard", tier="Regional"),
            frontend_ip_configurations=[frontend],
            backend_address_pools=[network.BackendAddressPoolArgs(name="control-plane")],
            probes=[network.ProbeArgs(name="api", protocol="Tcp", port=API_PORT, interval_in_seconds=5,
                                      number_of_probes=2, probe_threshold=2)],
            load_balancing_rules=[network.LoadBalancingRuleArgs(
                name="api", protocol="Tcp", frontend_port=API_PORT, backend_port=API_PORT,
                frontend_ip_configuration=network.SubResourceArgs(
                    id=self._lb_id(lb_name, "frontendIPConfigurations", "api")),
                backend_address_pool=network.SubResourceArgs(
                    id=self._lb_id(lb_name, "backendAddressPools", "control-plane")),
                probe=network.SubResourceArgs(id=self._lb_id(lb_name, "probes", "api")),
                # Watches are long-lived: 30 min idle (the maximum), and a reset instead of a silent drop.
                idle_timeout_in_minutes=30, enable_tcp_reset=True, enable_floating_ip=floating_ip,
                # The VMs go out through their own public IPs, not through this frontend.
                disable_outbound_snat=True)],
            tags=self._tags, **self._rg(), opts=self._opts())

    # --- VMs ---------------------------------------------------------------------------------------

    def _node_tags(self, spec: NodeSpec) -> dict[str, str]:
        return {**self._tags, "adplatform-pool": spec.pool, "adplatform-role": spec.workload_role,
                "adplatform-k3s": spec.k3s_role}

    def _linux_configuration(self) -> compute.LinuxConfigurationArgs:
        return compute.LinuxConfigurationArgs(
            disable_password_authentication=True,
            ssh=compute.SshConfigurationArgs(public_keys=[
                compute.SshPublicKeyArgs(key_data=key, path=f"/home/{cloud.SSH_USER}/.ssh/authorized_keys")
                for key in self._loaded.config.ssh_public_keys]))

    def _vm_identities(self, spec: NodeSpec) -> list[pulumi.Output[str]]:
        """The identities a VM carries: only what runs there uses. On a stack's part the CCM and the disk controller
        (the cluster identity) and the autoscaler run on the servers only (ccm_values, disk_csi_values,
        autoscaler_values), and no agent calls Azure's API, so agents get none: instance metadata has no hop limit,
        and a VM's identity would be every host-network pod's on it. A secondary part's disk controller runs on its
        agents (secondary_controller_placement): there every VM carries the disk driver's identity."""
        server = spec.k3s_role == "server"
        ids = [self.identity.id] if self.identity and (server or self._secondary) else []
        return [*ids, *([self.autoscaler_identity.id] if self.autoscaler_identity and server else [])]

    def _identity_args(self, spec: NodeSpec) -> compute.VirtualMachineIdentityArgs:
        """_vm_identities, or type None where a VM carries none: said explicitly, so a VM that held an identity before
        (every VM had the cluster identity) has it removed on update rather than kept or left referencing a deleted
        identity ("The type 'None' will remove any identities")."""
        ids = self._vm_identities(spec)
        if not ids:
            return compute.VirtualMachineIdentityArgs(type=compute.ResourceIdentityType.NONE)
        return compute.VirtualMachineIdentityArgs(type=compute.ResourceIdentityType.USER_ASSIGNED,
                                                  user_assigned_identities=ids)

    def _vm(self, spec: NodeSpec, lb_pools: list[pulumi.Output[str]]) -> Node:
        hostname = f"{self._prefix}-{spec.name}"
        zone = self.zones[spec.name]
        spec = dataclasses.replace(spec, **azure_topology(self._location, zone))
        tags = self._node_tags(spec)
        ip = network.PublicIPAddress(
            f"{spec.name}-ip", public_ip_address_name=f"{hostname}-ip", public_ip_allocation_method="Static",
            public_ip_address_version="IPv4", zones=[zone],
            sku=network.PublicIPAddressSkuArgs(name="Standard", tier="Regional"), tags=tags, **self._rg(),
            opts=self._opts(protect=True))
        nic = network.NetworkInterface(
            f"{spec.name}-nic", network_interface_name=f"{hostname}-nic",
            ip_configurations=[network.NetworkInterfaceIPConfigurationArgs(
                name="primary", primary=True, subnet=network.SubnetArgs(id=self.subnet.id),
                private_ip_allocation_method="Dynamic", public_ip_address=network.PublicIPAddressArgs(id=ip.id),
                load_balancer_backend_address_pools=[network.BackendAddressPoolArgs(id=p) for p in lb_pools] or None)],
            tags=tags, **self._rg(), opts=self._opts(protect=True))
        vm = compute.VirtualMachine(
            spec.name,
            # The Kubernetes node name: cloud-provider-azure finds a standalone VM by the node's name.
            vm_name=hostname,
            zones=[zone],
            hardware_profile=compute.HardwareProfileArgs(vm_size=resolve_server_type(spec, SERVER_TYPES)),
            storage_profile=compute.StorageProfileArgs(
                image_reference=compute.ImageReferenceArgs(**self.image),
                os_disk=compute.OSDiskArgs(
                    name=f"{hostname}-os", create_option="FromImage", caching="ReadWrite",
                    disk_size_gb=cloud.root_disk_gb(spec), delete_option="Delete",
                    managed_disk=compute.ManagedDiskParametersArgs(storage_account_type=OS_DISK_TYPE))),
            os_profile=compute.OSProfileArgs(computer_name=hostname, admin_username=cloud.SSH_USER,
                                             linux_configuration=self._linux_configuration(),
                                             custom_data=self._public_address_data(ip) if self._over_internet else None),
            network_profile=compute.NetworkProfileArgs(network_interfaces=[
                compute.NetworkInterfaceReferenceArgs(id=nic.id, primary=True)]),
            security_profile=ENCRYPTION_AT_HOST,
            identity=self._identity_args(spec),
            diagnostics_profile=BOOT_DIAGNOSTICS,
            tags=tags, **self._rg(),
            opts=self._opts(
                protect=True, depends_on=[self.subnet],
                # The VM's outputs carry no address: its public IP resource's (resolved before the VM updates).
                hooks=self._resize_hooks(spec, hostname, POWER_OFF_INPUTS, lambda _outputs: ip.ip_address,
                                         cloud.SSH_USER),
                delete_before_replace=True,  # K3s node names are unique: the old node drains and goes first
                # Azure cannot change a VM's admin keys or image in place: new keys reach running VMs by
                # remote command, image bumps (and `latest`) apply to new VMs only.
                ignore_changes=["osProfile", "storageProfile.imageReference"]))
        public_ip = ip.ip_address.apply(lambda a: a or "")
        private_ip = nic.ip_configurations.apply(lambda c: (c[0].private_ip_address or "") if c else "")
        node = Node(spec=spec, hostname=hostname, public_ip=public_ip, private_ip=private_ip,
                    connection=ssh_connection(self._loaded, spec.name, public_ip, cloud.SSH_USER,
                                              parent=self, machine=vm),
                    server=vm, machine=vm,
                    # On the stack's part the cloud node manager sets it from instance metadata.
                    provider_id=self._vm_provider_id(hostname) if self._secondary else None)
        if not lb_pools:
            return node
        # A backend of the internal API load balancer: its address on lo before K3s starts (floating IP).
        script = api_address_script(api_address(self._loaded.config.cluster.subnet_cidr))
        address = run_script(f"api-address-{spec.name}", node, script, content_hash(script), parent=self)
        return dataclasses.replace(node, server=address)

    def _vm_provider_id(self, vm_name: str) -> pulumi.Output[str]:
        """A standalone VM's provider ID as cloud-provider-azure v1.36.0 writes it: `azure://` and the VM's resource
        id with the resource group in lowercase (azure_standard.go GetInstanceIDByNodeName,
        ConvertResourceGroupNameToLower), built from its parts: the VM resource's own `id` is the API's spelling."""
        return pulumi.Output.all(self._client.subscription_id, self.resource_group.name).apply(
            lambda v: provider_id("azure", f"/subscriptions/{v[0]}/resourceGroups/{v[1].lower()}"
                                           f"/providers/Microsoft.Compute/virtualMachines/{vm_name}"))

    def _public_address_data(self, ip: network.PublicIPAddress) -> pulumi.Output[str]:
        """Custom data (cloud-init) putting the VM's public address on `lo` at every boot, for K3s to register with
        (cloud.public_address_command). From the static IP resource, not IMDS: the instance metadata leaves a
        Standard SKU public IP out (Azure IMDS docs, "Retrieve public IP address"), and the address exists before
        the VM. Set at creation only (osProfile is ignored afterwards); the address never changes."""
        return ip.ip_address.apply(lambda address: base64.b64encode(cloud.cloud_config(
            self._loaded.config.ssh_public_keys,
            boot_commands=(cloud.public_address_command(cloud.literal_address(address or "")),)).encode()).decode())

    # --- autoscaled node groups ----------------------------------------------------------------------

    def _install_node_groups(self, requests: Sequence[NodeGroupRequest], provider: k8s.Provider,
                             depends_on: Sequence[pulumi.Resource], parent: pulumi.Resource) -> NodeGroups:
        """A VM scale set per request; the autoscaler authenticates with its managed identity (no secret)."""
        identity = self.autoscaler_identity
        if requests and identity is None:  # the constructor creates it whenever the config autoscales a pool
            raise ValueError("node groups requested for a cluster without autoscaled pools")
        opts = self._opts(depends_on=list(depends_on))
        sets = [self._scale_set(request, opts) for request in requests]
        values = autoscaler_values(
            groups=[(f"{self._prefix}-{r.name}", r.max_size) for r in requests], resource_group=self.resource_group.name,
            subscription_id=self._client.subscription_id, identity_client_id=identity.client_id if identity else "")
        return NodeGroups(resources=sets, autoscaler_values=values)

    def _scale_set(self, request: NodeGroupRequest, opts: pulumi.ResourceOptions) -> compute.VirtualMachineScaleSet:
        """A Uniform scale set with the VMs' settings (image, size, OS disk, SSH keys, subnet with the NSG, a
        Standard public IP per instance for outbound, encryption at host; no identity, like the agent VMs:
        _vm_identities) and the request's user data as custom data. The autoscaler owns its capacity; Pulumi its
        model."""
        spec = request.spec
        name = f"{self._prefix}-{request.name}"
        return compute.VirtualMachineScaleSet(
            f"group-{request.name}", vm_scale_set_name=name, orchestration_mode=compute.OrchestrationMode.UNIFORM,
            # An unpinned pool keeps one scale set over the spread zones (Infrastructure.unpinned_group_locations
            # stays (None,)): a scale set places new instances across its zones and, with zoneBalance unset, never
            # deletes running ones to even them out, so no node leaves undrained (unlike an AWS group's
            # AZRebalance). The cost: scale-up cannot aim at one zone; autoscaled pools hold no zonal database
            # volumes (config/rules.py), so their pods rarely need one (docs/autoscaling.md).
            zones=[request.location] if request.location else list(cloud.spread(ZONES)),
            sku=compute.SkuArgs(name=resolve_server_type(spec, SERVER_TYPES), tier="Standard", capacity=0),
            # Manual: a model change reaches new instances only; running nodes are the autoscaler's to remove.
            upgrade_policy=compute.UpgradePolicyArgs(mode=compute.UpgradeMode.MANUAL),
            overprovision=False,  # extra instances would boot, join K3s and be deleted again
            # None, said explicitly: scale sets created before carried the cluster identity, which an update removes.
            identity=compute.VirtualMachineScaleSetIdentityArgs(type=compute.ResourceIdentityType.NONE),
            virtual_machine_profile=compute.VirtualMachineScaleSetVMProfileArgs(
                os_profile=compute.VirtualMachineScaleSetOSProfileArgs(
                    computer_name_prefix=f"{name[:57]}-", admin_username=cloud.SSH_USER,
                    linux_configuration=self._linux_configuration(),
                    # Custom data (cloud-init reads it on Azure): never returned by the API, a secret in state.
                    custom_data=request.user_data.apply(lambda text: base64.b64encode(text.encode()).decode())),
                storage_profile=compute.VirtualMachineScaleSetStorageProfileArgs(
                    image_reference=compute.ImageReferenceArgs(**self.image),
                    os_disk=compute.VirtualMachineScaleSetOSDiskArgs(
                        create_option="FromImage", caching="ReadWrite", disk_size_gb=cloud.root_disk_gb(spec),
                        delete_option="Delete", managed_disk=compute.VirtualMachineScaleSetManagedDiskParametersArgs(
                            storage_account_type=OS_DISK_TYPE))),
                network_profile=compute.VirtualMachineScaleSetNetworkProfileArgs(network_interface_configurations=[
                    compute.VirtualMachineScaleSetNetworkConfigurationArgs(
                        name="primary", primary=True, ip_configurations=[compute.VirtualMachineScaleSetIPConfigurationArgs(
                            name="primary", primary=True, subnet=compute.ApiEntityReferenceArgs(id=self.subnet.id),
                            public_ip_address_configuration=compute.VirtualMachineScaleSetPublicIPAddressConfigurationArgs(
                                name="public", public_ip_address_version="IPv4",
                                sku=compute.PublicIPAddressSkuArgs(name="Standard", tier="Regional")))])]),
                security_profile=ENCRYPTION_AT_HOST,
                diagnostics_profile=BOOT_DIAGNOSTICS),
            tags={**self._node_tags(spec), **node_template_tags(cloud.node_template(request))}, **self._rg(),
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
                depends_on=[self.subnet], ignore_changes=["sku.capacity"])))

    # --- cluster layer -----------------------------------------------------------------------------

    def _cloud_config(self) -> pulumi.Output[str]:
        """azure.json: the CCM's and the disk driver's on a stack's part; the disk driver's keys alone on a secondary
        part (no CCM runs there; standalone VMs, as only the stack provider's pools autoscale)."""
        ids = pulumi.Output.all(self._client.tenant_id, self._client.subscription_id, self.resource_group.name,
                                self.identity.client_id, self.vnet.name, self.subnet.name, self.nsg.name)

        def render(v: list) -> str:
            # Canonical: the disk node plugin reports a zone only if it starts with `<location>-` (pkg/azureutils
            # IsValidAvailabilityZone), and instance metadata names it `westeurope-1`, never `West Europe-1`.
            driver = dict(tenant_id=v[0], subscription_id=v[1], resource_group=v[2],
                          location=azure_region(self._location),
                          identity_client_id=v[3], vm_type=vm_type(self._loaded.config.cluster))
            if self._secondary:
                return json.dumps(disk_driver_config(**driver), indent=2, sort_keys=True)
            return cloud_provider_config(**driver, vnet=v[4], subnet=v[5] or "nodes", security_group=v[6])
        return pulumi.Output.secret(ids.apply(render))

    def _cloud_config_secret(self, opts: pulumi.ResourceOptions) -> k8s.core.v1.Secret:
        """kube-system/azure-cloud-provider (CLOUD_CONFIG_SECRET): azure.json, holding no credential (a managed
        identity). Only the disk driver's service accounts and the CCM's (on a stack's part) are granted to read it,
        by their charts' RBAC."""
        return k8s.core.v1.Secret(
            CLOUD_CONFIG_SECRET, metadata=k8s.meta.v1.ObjectMetaArgs(name=CLOUD_CONFIG_SECRET,
                                                                     namespace=AZURE_DISK_CSI.namespace),
            string_data={"cloud-config": self._cloud_config()}, type="Opaque", opts=opts)

    def _install_ccm(self, provider: k8s.Provider, depends_on: Sequence[pulumi.Resource],
                     parent: pulumi.Resource) -> list[pulumi.Resource]:
        """cloud-provider-azure: the node manager initialises nodes, the CCM serves LoadBalancer Services."""
        opts = pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=list(depends_on))
        secret = self._cloud_config_secret(opts)
        ccm = release("azure-ccm", AZURE_CCM, ccm_values(self._prefix, self._loaded.config.cluster.pod_cidr,
                                                         self._loaded.profile.strict),
                      pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[secret])))
        return [secret, ccm]

    def _install_disk_csi(self, provider: k8s.Provider, depends_on: Sequence[pulumi.Resource],
                          parent: pulumi.Resource) -> Storage:
        """Azure managed disks through the CSI driver: encrypted at rest, expandable, the default class and
        its XFS twin. Production keeps a disk when its claim is deleted (reclaim Retain).

        Reads the azure-cloud-provider Secret the CCM add-on created, or on a secondary part (no CCM) its own. In a
        cluster spanning providers the driver runs on Azure nodes only and the classes name only their zones
        (DISK_ZONE_KEY), so no pod with an Azure Disk claim is scheduled where the disk cannot attach; a secondary
        part's classes are not the default.
        """
        opts = pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=list(depends_on))
        config = [self._cloud_config_secret(opts)] if self._secondary else []
        csi = release("azuredisk-csi", AZURE_DISK_CSI,
                      disk_csi_values(self._loaded.profile.strict, vm_type(self._loaded.config.cluster),
                                      hybrid=self._hybrid, secondary=self._secondary),
                      pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=config)))
        zones = [azure_topology(self._location, zone)["zone"] for zone in self.zones.values()]
        # The class's first resource name was storage-class-azure-disk: the alias keeps that object.
        return csi_storage(STORAGE_CLASS, DISK_PROVISIONER, storage_class_parameters(self._loaded.stack),
                           retain=self._protect, driver=[*config, csi], opts=opts,
                           default_aliases=[pulumi.Alias(name="storage-class-azure-disk")],
                           allowed_topologies=zone_topology(DISK_ZONE_KEY, zones) if self._hybrid else None,
                           default=holds_default_class(self._loaded))


# Disk encryption beyond Azure's always-on platform-managed keys: the host caches too (module doc).
ENCRYPTION_AT_HOST = compute.SecurityProfileArgs(encryption_at_host=True)
BOOT_DIAGNOSTICS = compute.DiagnosticsProfileArgs(
    boot_diagnostics=compute.BootDiagnosticsArgs(enabled=True))  # serial console, managed storage


def _tag_key(key: str) -> str:
    return key.replace("_", "~2").replace("/", "_")


def node_template_tags(template: cloud.NodeTemplate) -> dict[str, str]:
    """A scale set's labels and taints tags for scale from zero (NODE_TEMPLATE_LABEL_TAG)."""
    return {**{f"{NODE_TEMPLATE_LABEL_TAG}{_tag_key(k)}": v for k, v in template.labels.items()},
            **{f"{NODE_TEMPLATE_TAINT_TAG}{_tag_key(k)}": f"{v}:{effect}" for k, v, effect in template.taints}}


def autoscaler_values(*, groups: Sequence[tuple[str, int]], resource_group: pulumi.Input[str],
                      subscription_id: pulumi.Input[str], identity_client_id: pulumi.Input[str]) -> dict:
    """cluster-autoscaler chart values for Azure (chart 9.59.0 values.yaml, templates/deployment.yaml and
    secret.yaml): scale sets by name (--nodes=min:max:<vmss>), the autoscaler's user-assigned managed identity
    (ARM_USE_MANAGED_IDENTITY_EXTENSION, ARM_USER_ASSIGNED_IDENTITY_ID): no client secret anywhere."""
    return {
        "cloudProvider": "azure",
        "azureVMType": "vmss",
        "azureResourceGroup": resource_group,
        "azureSubscriptionID": subscription_id,
        "azureUseManagedIdentityExtension": True,
        "azureUserAssignedIdentityID": identity_client_id,
        "autoscalingGroups": cloud.autoscaling_groups(groups),
        # Only the control-plane VMs carry the autoscaler's identity.
        "nodeSelector": CONTROL_PLANE_SELECTOR,
        "tolerations": _ON_CONTROL_PLANE,
    }


def storage_class_parameters(stack: str) -> dict[str, str]:
    """azuredisk-csi-driver v1.34.5 docs/driver-parameters.md (fsType ext4 by default, xfs accepted).
    Encryption at rest is Azure's, always on; the disks cannot be exported (no SAS URI, no public
    access to their data)."""
    return {"skuName": DATA_DISK_TYPE, "networkAccessPolicy": "DenyAll", "publicNetworkAccess": "Disabled",
            "tags": f"adplatform-stack={stack}"}


# K3s labels its servers control-plane=true (the charts' default selectors expect ""): base.CONTROL_PLANE_SELECTOR.
_ON_CONTROL_PLANE = [
    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "CriticalAddonsOnly", "operator": "Exists"},  # K3s' taint on dedicated servers
]
_CONTROL_PLANE_TOLERATIONS = [
    *_ON_CONTROL_PLANE,
    # The node manager, not this controller, initialises nodes; the controller may start first.
    {"key": "node.cloudprovider.kubernetes.io/uninitialized", "operator": "Exists", "effect": "NoSchedule"},
]


def ccm_values(cluster_name: str, pod_cidr: str, ha: bool) -> dict:
    """cloud-provider-azure chart 1.36.0 values (helm/cloud-provider-azure/values.yaml). The chart picks
    the CCM/node-manager image matching the cluster's Kubernetes minor (v1.36.0 for 1.36)."""
    return {
        "infra": {"clusterName": cluster_name},  # names the Service load balancer and tags what the CCM owns
        "cloudControllerManager": {
            # azure.json from the Secret (--cloud-config must stay empty then; "Dynamically reloading
            # cloud controller manager" in the project's configuration docs).
            "cloudConfig": "",
            "cloudConfigSecretName": CLOUD_CONFIG_SECRET,
            "enableDynamicReloading": "true",
            "allocateNodeCidrs": "false",  # K3s allocates the nodes' pod CIDRs
            "configureCloudRoutes": "false",  # Cilium tunnels: no route table
            "clusterCIDR": pod_cidr,
            "replicas": 2 if ha else 1,
            "nodeSelector": CONTROL_PLANE_SELECTOR,
            "tolerations": _CONTROL_PLANE_TOLERATIONS,
        },
        "cloudNodeManager": {"enabled": True},
    }


_CSI_SIDECAR = {"requests": {"cpu": "10m", "memory": "20Mi"}, "limits": {"memory": "128Mi"}}


def disk_csi_values(ha: bool, vm_type: str = "standard", *, hybrid: bool = False, secondary: bool = False) -> dict:
    """azuredisk-csi-driver chart 1.34.5 values (charts/v1.34.5/azuredisk-csi-driver/values.yaml). The controller
    authenticates with the managed identity in azure.json, which only the servers carry (_vm_identities): it runs on
    them (the chart's default nodeSelector is empty, so it would land on any agent). The node plugin calls no Azure
    API: NodeGetInfo reads zone and VM size from instance metadata (useInstanceMetadata; v1.34.5 pkg/azuredisk/
    nodeserver.go, cloud-provider-azure GetZone and InstanceType for the local VM), falling back to node labels, and
    staging and mounting take the LUN from the attach. `hybrid`: the cluster spans providers, so controller and node
    plugin run on Azure nodes only (both on the host network, the chart's default, for instance metadata);
    `secondary`: Azure is not the stack's provider (no K3s servers here)."""
    values = {
        "controller": {
            "replicas": 2 if ha else 1,
            "cloudConfigSecretName": CLOUD_CONFIG_SECRET,
            "cloudConfigSecretNamespace": "kube-system",
            "vmType": vm_type,  # as azure.json's
            "nodeSelector": CONTROL_PLANE_SELECTOR,
            # Dedicated servers' CriticalAddonsOnly is NoExecute: the chart's default tolerations (NoSchedule) miss it.
            "tolerations": list(_ON_CONTROL_PLANE),
            "resources": {c: _CSI_SIDECAR for c in ("csiProvisioner", "csiAttacher", "csiResizer", "livenessProbe")}
            | {"azuredisk": {"requests": {"cpu": "10m", "memory": "40Mi"}, "limits": {"memory": "500Mi"}}},
        },
        "node": {"cloudConfigSecretName": CLOUD_CONFIG_SECRET, "cloudConfigSecretNamespace": "kube-system"},
        # Volumes attach wherever their pods run: the chart's node DaemonSet tolerates every taint.
        "linux": {"enabled": True, "kubelet": "/var/lib/kubelet"},  # K3s' kubelet root dir
        "windows": {"enabled": False},
        "snapshot": {"enabled": False},
    }
    if hybrid:
        on_azure = {PROVIDER_LABEL: NAME}  # Azure disks attach to Azure VMs only
        # The controller on Azure's servers (a stack's part holds at least one: secondary_part).
        values["controller"]["nodeSelector"] = {**CONTROL_PLANE_SELECTOR, **on_azure}
        values["linux"]["nodeSelector"] = on_azure
    if secondary:
        # No K3s server runs on Azure here: the controller runs on the Azure agents, database pools' taints included.
        values["controller"].update(secondary_controller_placement(NAME))
    return values
