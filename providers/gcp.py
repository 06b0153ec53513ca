"""GCP: VPC network + regional subnetwork, firewall rules from PORTS, Compute Engine instances, API
load balancer, the Persistent Disk CSI driver.

Location: `gcp:region` (the provider's own config, or GOOGLE_REGION) is the region and `gcp:project`
the project; a `location` in the stack config is a zone of the region (europe-west3-a) and pins those
nodes there. Unpinned pools spread round-robin over the region's first three zones (one regional
subnetwork spans them all).

No cloud controller manager: kubernetes/cloud-provider-gcp publishes no Helm chart, so K3s keeps its
embedded cloud controller and with it ServiceLB. A `LoadBalancer` Service (the gateway's) is served on
ports 80/443 of the nodes that run ServiceLB's pods (every untainted node, or only the nodes labelled
`svccontroller.k3s.cattle.io/enablelb: "true"` once any node carries it); its status lists those
nodes' public addresses, which DNS points at. Pods ride Cilium's VXLAN tunnel between instance
addresses, so no VPC routes or IP forwarding are needed.

Without a CCM, K3s' embedded cloud controller would give each node the provider ID k3s://<node>; every node's
cloud-init writes gce://<project>/<zone>/<instance> instead (BOOT_COMMANDS), the form the cluster autoscaler
maps to its managed instance groups. Autoscaled pools (docs/autoscaling.md): a zonal managed instance group per
node group request, from an instance template with the agents' settings.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import ipaddress
import re
from itertools import groupby
from typing import Sequence

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from components import yamltext
from components.charts import GCP_PD_CSI
from components.k3s.resize import output_path
from providers import power_off
from config import LoadedConfig, Problem
from config.errors import problem
from config.model import CONTROL_PLANE, Cluster
from providers import cloud
from providers.base import (AdmittedPeers, ApiEndpoints, ClusterPort, ClusterProfile, Credential, Infrastructure, Node,
                            NodeGroupRequest, NodeGroups, NodeSpec, PeerAddress, PeerQuota, ProviderInfrastructure,
                            Storage, assemble, check_locations,
                            check_server_type_names, csi_storage, holds_default_class, first_server_api, node_specs, resolve_server_type,
                            secondary_part,
                            Seal, ssh_connection, zone_topology)

NAME = "gcp"
# What the Google provider reads when gcp:project / gcp:region are unset (pulumi-gcp installation docs).
PROJECT_ENV = ("GOOGLE_PROJECT", "GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT")
REGION_ENV = ("GOOGLE_REGION", "GCLOUD_REGION", "CLOUDSDK_COMPUTE_REGION")
# Canonical's Ubuntu 24.04 LTS image family in its public image project (Ubuntu on GCE docs); the
# family resolves to the newest image at creation, pinned in state from then on.
UBUNTU_IMAGE_PROJECT = "ubuntu-os-cloud"
UBUNTU_IMAGE_FAMILY = "ubuntu-2404-lts-amd64"
SPREAD_ZONES = 3
BOOT_DISK_TYPE = "pd-balanced"
STORAGE_CLASS = "pd-balanced"
PD_PROVISIONER = "pd.csi.storage.gke.io"
API_PORT = 6443
PROXY_SUBNET_MAX_PREFIX = 26  # the smallest proxy-only subnet GCP accepts
# Google's health-check probers differ by load balancer (Cloud Load Balancing "Firewall rules" and
# "Health checks overview", probe IP ranges): proxy load balancers (the internal API one) probe from
# 35.191.0.0/16 and 130.211.0.0/22; external passthrough Network Load Balancers (the public API one)
# from 35.191.0.0/16, 209.85.152.0/22 and 209.85.204.0/22 (Kubernetes' GCE provider opens the union for
# its L4 load balancers: kube-controller-manager --cloud-provider-gce-lb-src-cidrs).
PROXY_HEALTH_CHECK_RANGES = ("35.191.0.0/16", "130.211.0.0/22")
PASSTHROUGH_HEALTH_CHECK_RANGES = ("35.191.0.0/16", "209.85.152.0/22", "209.85.204.0/22")
# Size classes -> machine types (x86_64). E2 for the shared classes; N2 for the dedicated ones, a
# dedicated hyperthread per vCPU and 4 GB per vCPU. N2 rather than N4/C4: those take Hyperdisk only,
# and the PD CSI class here is pd-balanced.
# A Compute Engine machine type: series-shape[-vCPUs[-memory]], e.g. n2-standard-8, e2-medium, n2-custom-4-8192.
SERVER_TYPE_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)+")
POWER_OFF_INPUTS = power_off.POWER_OFF_INPUTS["gcp:compute/instance:Instance"]
SERVER_TYPES = {
    "small": "e2-medium",           # 2 vCPU (shared core, burst), 4 GB
    "medium": "e2-standard-4",      # 4 vCPU, 16 GB
    "dedicated-medium": "n2-standard-4",   # 4 vCPU, 16 GB
    "dedicated-large": "n2-standard-8",    # 8 vCPU, 32 GB
    "dedicated-xlarge": "n2-standard-16",  # 16 vCPU, 64 GB
    "dedicated-2xlarge": "n2-standard-32",  # 32 vCPU, 128 GB
}
# The PD CSI driver runs as the nodes' service account (the `noauth` overlay). Upstream's setup
# (gcp-compute-persistent-disk-csi-driver v1.26.4 deploy/setup-project.sh, deploy/common.sh get_needed_roles)
# grants roles/editor, roles/compute.storageAdmin and its custom role (this tuple, the file
# deploy/gcp-compute-persistent-disk-csi-driver-custom-role.yaml): attach/detach on instances, bound to this
# stack's instances below.
PD_CSI_PERMISSIONS = ("compute.instances.get", "compute.instances.attachDisk", "compute.instances.detachDisk",
                      "compute.disks.get")
# Instead of editor and storageAdmin (which also creates, deletes and shares every image of the project, and its
# storage pools and resource policies), what the v1.26.4 controller calls (pkg/gce-cloud-provider/compute/
# gce-compute.go) for zonal pd-balanced volumes with labels, expansion and VolumeSnapshots of the default
# `snapshots` type: disks get/insert/delete/resize/update/setLabels and list (ListVolumes, the label cleanup),
# attach needs `use` on the disk (`useReadOnly` for read-only attach and clones), a snapshot needs
# `createSnapshot` on its disk and the snapshot rights (restore: `useReadOnly`), the zones and disk types it
# picks a zone from, and the zone and global operations it waits on. Left out: images (snapshot-type `images`,
# and ListSnapshots, which lists images too: pre-provisioned VolumeSnapshotContents fail), regional disks
# (replication-type regional-pd: regionDisks, regionOperations), storage pools, resource policies and tags.
PD_CSI_VOLUME_PERMISSIONS = sorted({
    "compute.disks.get", "compute.disks.list", "compute.disks.create", "compute.disks.delete", "compute.disks.resize",
    "compute.disks.update", "compute.disks.setLabels", "compute.disks.use", "compute.disks.useReadOnly",
    "compute.disks.createSnapshot",
    "compute.snapshots.get", "compute.snapshots.list", "compute.snapshots.create", "compute.snapshots.delete",
    "compute.snapshots.setLabels", "compute.snapshots.useReadOnly",
    "compute.zones.list", "compute.diskTypes.list", "compute.zoneOperations.get", "compute.globalOperations.get",
})
# The driver names a disk or snapshot as the CSI request does (v1.26.4 pkg/gce-pd-csi-driver/controller.go: req.Name),
# and the sidecars name them `<prefix>-<UID of the claim or VolumeSnapshot>`, the UID untruncated (external-provisioner
# v6.0.0 --volume-name-prefix, default `pvc`, pkg/controller/controller.go makeVolumeName; external-snapshotter v8.2.1
# --snapshot-name-prefix, default `snapshot`, pkg/sidecar-controller/csi_handler.go makeSnapshotName; the overlay's
# sidecar tags). Those defaults are every stack's: a stack's nodes, granted `pvc-`, could attach, snapshot or delete
# another stack's volumes in the same project. So both sidecars take the stack's prefix (volume_name_prefix) and the
# nodes' disk rights are narrowed to it by an IAM condition on resource names (IAM Conditions support
# compute.googleapis.com/Disk, Snapshot and Instance): the account can no longer delete or snapshot the boot disks
# (named after their instances), another stack's volumes or any other disk of the project, and attaches only to this
# stack's instances. `adplatform:gcp.legacyVolumeNames` also admits the defaults, for volumes made before.
LEGACY_DISK_PREFIX = "pvc"
LEGACY_SNAPSHOT_PREFIX = "snapshot"
# GCE names take at most 63 characters and a Kubernetes UID has 36, after `<prefix>-`.
VOLUME_PREFIX_MAX = 63 - 1 - 36
_VOLUME_PREFIX_HASH = 8  # hex digits of the stack name's SHA-256 ending every prefix
PD_CSI_CONTROLLER = "csi-gce-pd-controller"  # the overlay's controller Deployment (v1.26.4 base/controller)
# Its sidecar containers (the same file) and the flag each takes the name prefix in.
PD_CSI_NAME_FLAGS = {"csi-provisioner": "--volume-name-prefix", "csi-snapshotter": "--snapshot-name-prefix"}
# The metadata server (Compute Engine "About VM metadata"): the instance's name and its project's id; the zone
# from cloud-init's instance data. cluster-autoscaler 1.35 gce_cloud_provider.go GceRefFromProviderId reads
# gce://<project-id>/<zone>/<name> and errors on any other provider ID (K3s' k3s://<node>).
_METADATA = "curl -fsS --retry 5 -H Metadata-Flavor:Google http://metadata.google.internal/computeMetadata/v1"
PROVIDER_ID_COMMAND = cloud.provider_id_command("gce", "gce://%s/%s/%s", [
    f"$({_METADATA}/project/project-id)", "$(cloud-init query v1.availability_zone)",
    f"$({_METADATA}/instance/name)"])
BOOT_COMMANDS = (PROVIDER_ID_COMMAND,)
# A node joining a cluster over the public internet registers with its public address (cloud.public_address_command):
# the external address of the first interface's first access config (Compute Engine "About VM metadata"), which
# GCE translates at its edge.
PUBLIC_ADDRESS_COMMAND = cloud.public_address_command(
    f'"$({_METADATA}/instance/network-interfaces/0/access-configs/0/external-ip)"')
# VPC quotas and limits ("Per firewall rule"): at most 5,000 source IP ranges in one VPC firewall rule. A peer rule
# (_admit_peers) names every cluster node's address.
SOURCE_RANGES_PER_RULE = 5000
# What the cluster autoscaler's GCE cloud provider calls (cluster-autoscaler 1.35 autoscaling_gce_client.go),
# as Compute Engine IAM permissions: the managed instance groups (get, list, listManagedInstances; resize,
# createInstances and deleteInstances are `update`), their instance groups, instances and templates, the machine
# and disk types, zones, regions and reservations it sizes template nodes from, and the zone operations it
# waits on. Instead of roles/compute.instanceAdmin.v1, which could also create, stop or delete any instance.
AUTOSCALER_PERMISSIONS = sorted({
    "compute.instanceGroupManagers.get", "compute.instanceGroupManagers.list", "compute.instanceGroupManagers.update",
    "compute.instanceGroups.list", "compute.instances.list", "compute.instanceTemplates.get",
    "compute.machineTypes.get", "compute.machineTypes.list", "compute.diskTypes.list", "compute.zones.list",
    "compute.regions.get", "compute.reservations.list", "compute.zoneOperations.get",
})
COMPUTE_API = "https://www.googleapis.com/compute/v1"


def volume_name_prefix(stack: str) -> str:
    """The name prefix of this stack's PD CSI disks and snapshots: `adp-<stack>` cut to fit, then `-` and 8 hex digits
    of the stack name's hash, at most VOLUME_PREFIX_MAX characters, an RFC 1035 label. The hash keeps stacks apart
    whose names gcp_name folds or cuts alike, and makes a prefix end where no other stack's continues: stack
    `staging`'s `adp-staging-<hash>-` does not begin `adp-staging-gcp-<hash>-...` (hex digits, then `-`, where the
    other name has `gcp-`)."""
    digest = hashlib.sha256(stack.encode()).hexdigest()[:_VOLUME_PREFIX_HASH]
    return f"{gcp_name('adp', stack, limit=VOLUME_PREFIX_MAX - 1 - _VOLUME_PREFIX_HASH)}-{digest}"


def csi_disks_condition(prefix: str, legacy: bool = False) -> str:
    """CEL: PD_CSI_VOLUME_PERMISSIONS' disk and snapshot rights on this stack's volumes and snapshots only (`prefix`,
    and with `legacy` the sidecars' default names too); its lists and its reads of zones, disk types and operations
    stay (they name no disk or snapshot). 3 logical operators, 5 with `legacy` (MAX_CONDITION_OPERATORS)."""
    disks = [prefix, *((LEGACY_DISK_PREFIX,) if legacy else ())]
    snapshots = [prefix, *((LEGACY_SNAPSHOT_PREFIX,) if legacy else ())]
    return " || ".join([
        '(resource.type != "compute.googleapis.com/Disk" && resource.type != "compute.googleapis.com/Snapshot")',
        *(f'resource.name.extract("/disks/{{name}}").startsWith("{p}-")' for p in disks),
        *(f'resource.name.extract("/snapshots/{{name}}").startsWith("{p}-")' for p in snapshots)])


def volume_name_args(prefix: str) -> pulumi.ResourceTransform:
    """A transform of the PD CSI overlay: its controller's provisioner and snapshotter name volumes and snapshots
    with `prefix` (volume_name_prefix). Fails when the Deployment lacks either sidecar (an upstream rename): the
    driver would then make default names, which the nodes' grant refuses."""
    def transform(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
        props = args.props
        if args.type_ != "kubernetes:apps/v1:Deployment" or (props.get("metadata") or {}).get("name") != \
                PD_CSI_CONTROLLER:
            return None
        spec = props["spec"]["template"]["spec"]
        missing = set(PD_CSI_NAME_FLAGS) - {c["name"] for c in spec["containers"]}
        if missing:
            raise ValueError(f"{PD_CSI_CONTROLLER} has no container {', '.join(sorted(missing))} to name volumes "
                             f"with {prefix}: check the pinned overlay ({GCP_PD_CSI.directory})")
        containers = [{**c, "args": [*c.get("args", []), f"{PD_CSI_NAME_FLAGS[c['name']]}={prefix}"]}
                      if c["name"] in PD_CSI_NAME_FLAGS else c for c in spec["containers"]]
        template = {**props["spec"]["template"], "spec": {**spec, "containers": containers}}
        return pulumi.ResourceTransformResult(props={**props, "spec": {**props["spec"], "template": template}},
                                              opts=args.opts)

    return transform


def _named_condition(kind: str, collection: str, prefixes: Sequence[str]) -> str:
    """CEL: a permission on resources of `kind` whose name begins with one of `prefixes`, and on every other kind
    (lists, reads)."""
    name = f'resource.name.extract("/{collection}/{{name}}")'
    return " || ".join([f'resource.type != "compute.googleapis.com/{kind}"',
                        *(f'{name}.startsWith("{prefix}")' for prefix in prefixes)])


# IAM Conditions' limit on logical operators (&&, ||) in one condition expression (Google Cloud, IAM quotas and limits).
MAX_CONDITION_OPERATORS = 12


def pool_prefixes(stack_prefix: str, pools: Sequence[str]) -> list[str]:
    """Where this stack's names of `pools`' machines and groups begin: `<stack prefix>-<pool>-` (Pulumi-managed nodes
    <pool>-<n>, groups <pool>-<zone>, their instances <group>-<4 characters>). Not `<stack prefix>-`: a stack name
    may contain '-' (and gcp_name turns '_' and '.' into '-'; GCE names have no other separator), so stack
    `staging`'s `adp-staging-` would also match every name of stack `staging-gcp`. IAM conditions on names offer
    startsWith, endsWith, extract and ==, so autoscaled instances' random suffixes leave a prefix: one that only a
    sibling stack named `<stack>-<pool>...` shares."""
    return sorted({gcp_name(stack_prefix, pool) + "-" for pool in pools})


def stack_instances_condition(prefixes: Sequence[str]) -> str:
    """CEL: attach/detach on this stack's instances only (pool_prefixes)."""
    return _named_condition("Instance", "instances", prefixes)


def stack_groups_condition(prefixes: Sequence[str]) -> str:
    """CEL: the autoscaler's rights on this stack's managed instance groups only (pool_prefixes)."""
    return _named_condition("InstanceGroupManager", "instanceGroupManagers", prefixes)


def mig_url(project: str, zone: str, name: str) -> str:
    """A zonal MIG as the autoscaler's --nodes take it (cluster-autoscaler 1.35 gce_url.go ParseMigUrl:
    https://.../projects/<project>/zones/<zone>/instanceGroups/<name>)."""
    return f"{COMPUTE_API}/projects/{project}/zones/{zone}/instanceGroups/{name}"


def kube_env(template: cloud.NodeTemplate) -> str:
    """The instance template's `kube-env` metadata, from which the autoscaler builds a node of an empty group
    (cluster-autoscaler 1.35 gce kube_env.go, templates.go: AUTOSCALER_ENV_VARS, `;`-separated, node_labels and
    node_taints as `,`-separated key=value[:effect] lists; label and taint syntax admits neither separator)."""
    labels = ",".join(f"{k}={v}" for k, v in template.labels.items())
    taints = ",".join(f"{k}={v}:{effect}" for k, v, effect in template.taints)
    return yamltext.safe_dump({"AUTOSCALER_ENV_VARS": f"node_labels={labels};node_taints={taints};os=linux"})


def autoscaler_values(groups: Sequence[tuple[str, int]]) -> dict:
    """cluster-autoscaler chart values for GCE (chart 9.59.0 values.yaml, templates/deployment.yaml: one
    --nodes=min:max:<MIG URL> per autoscalingGroups entry). Credentials: the node's service account, through the
    metadata server."""
    return {"cloudProvider": "gce", "autoscalingGroups": cloud.autoscaling_groups(groups)}


# Our kustomization: upstream's `noauth` overlay (GCP_PD_CSI.directory) with the driver image pinned to
# GCP_PD_CSI_VERSION. Relative to the project root (where Pulumi.yaml is), which is the working directory
# of the program and of the Kubernetes provider that runs kustomize; an absolute path would differ per
# checkout and show up as a change of the component's input.
PD_CSI_KUSTOMIZATION = "providers/kustomize/gcp-pd-csi"
# The same driver on GCP nodes only (PROVIDER_LABEL), for a cluster that spans providers.
PD_CSI_HYBRID_KUSTOMIZATION = "providers/kustomize/gcp-pd-csi-hybrid"
# The zone the PD CSI node plugin reports, from the metadata server (v1.26.4 pkg/constants/constants.go
# TopologyKeyZone; node.go NodeGetInfo): only nodes running that plugin carry it.
PD_ZONE_KEY = "topology.gke.io/zone"


SHIELDED = {"enable_secure_boot": True, "enable_vtpm": True, "enable_integrity_monitoring": True}


def gcp_project() -> str | None:
    return cloud.provider_setting("gcp", "project", PROJECT_ENV)


def gcp_region() -> str | None:
    return cloud.provider_setting("gcp", "region", REGION_ENV)


def gcp_name(*parts: str, limit: int = 63) -> str:
    """GCE names, network tags and label values: lower-case letters, digits and '-'."""
    name = re.sub(r"[^a-z0-9-]", "-", "-".join(parts).lower()).strip("-")
    return name[:limit].rstrip("-")


def health_check_ranges(public: bool) -> list[str]:
    """Where the API load balancers' health checks come from: the internal proxy's probers, and the
    external passthrough's when the public load balancer exists."""
    return sorted({*PROXY_HEALTH_CHECK_RANGES, *(PASSTHROUGH_HEALTH_CHECK_RANGES if public else ())})


def proxy_subnet(cluster: Cluster) -> str:
    """The proxy-only subnet of the internal API load balancer: the block after cluster.subnetCidr."""
    first = ipaddress.ip_network(cluster.subnet_cidr)
    return str(ipaddress.ip_network((int(first.network_address) + first.num_addresses, first.prefixlen)))


# What OpenBao's gcpckms seal needs on its key (OpenBao docs, configuration/seal/gcpckms: "minimum permissions").
SEAL_PERMISSIONS = ("cloudkms.cryptoKeyVersions.useToEncrypt", "cloudkms.cryptoKeyVersions.useToDecrypt",
                    "cloudkms.cryptoKeys.get")
SEAL_ROTATION = "7776000s"  # 90 days; OpenBao decrypts with the version that encrypted (old ones stay enabled)

# Keys of the Google provider's config that hold credentials (pulumi_gcp config: credentials, accessToken);
# application-default credentials work without them.
CREDENTIALS = (Credential("gcp:credentials"), Credential("gcp:accessToken"))


class Gcp:
    name = NAME
    server_types = SERVER_TYPES
    credentials = CREDENTIALS
    zonal_node_groups = True  # managed instance groups are zonal
    internet_peering = True  # PUBLIC_ADDRESS_COMMAND puts the public address where K3s can register with it
    # The VPC's MTU (_network sets none: pulumi_gcp 10.2.0 compute.Network `mtu`, "The default value is 1460 bytes"),
    # its instances' interface MTU: in a cluster over the internet Cilium's MTU must not exceed it, or full-size
    # WireGuard packets leave the GCP nodes above what their interface carries.
    internet_mtu = 1460
    # Other providers' nodes join at its public API balancer: it is passthrough, so the servers see each client's own
    # address, and the VPC firewall's peer rule on 6443 (_admit_peers) names every cluster node's.
    public_api_balancer_admits_peers = True
    # Its servers do not: the guest environment puts a passthrough forwarding rule's address on each of its backends
    # as a local address, so a K3s server joining through it would reach its own API server, not yet running. They
    # join at the internal proxy balancer inside the VPC instead (_internal_proxy_lb), as on a GCP-only stack.
    servers_join_privately = True
    # As a hybrid cluster's secondary (providers/hybrid.py pool_roles) it installs its own PD CSI driver and classes
    # on its own nodes, which run as the nodes' service account with the driver's rights: it may host stores.
    secondary_storage = True
    # Each peer rule names every node: the largest rule's source ranges.
    peer_quota = PeerQuota(SOURCE_RANGES_PER_RULE, "source IP ranges in one VPC firewall rule (GCP's limit)",
                           lambda _cfg, rules: max((len(peers) for _port, peers in rules), default=0))
    kms_seal = "gcpckms"  # OpenBao unseals with a Cloud KMS key (GcpInfrastructure._install_seal)

    def validate(self, loaded: LoadedConfig) -> list[Problem]:
        cluster = loaded.config.cluster
        found: list[Problem] = []
        if not gcp_project():
            found.append(problem("gcp:project", "must be set to the stack's Google Cloud project id (pulumi config "
                                 "set gcp:project my-project, or export GOOGLE_PROJECT)"))
        region = gcp_region()
        if not region:
            found.append(problem("gcp:region", "must be set to the stack's Google Cloud region (pulumi config set "
                                 "gcp:region europe-west3, or export GOOGLE_REGION)"))
        else:
            pattern = re.compile(rf"^{re.escape(region)}-[a-z]$")
            found += check_locations(cluster, lambda z: bool(pattern.match(z)),
                                     f"a zone of gcp:region {region} ({region}-a, {region}-b, ...)")
        found += cloud.check_network(cluster, cluster.subnet_cidr, "GCP subnetwork")
        if cluster.api_load_balancer.enabled:
            if ipaddress.ip_network(cluster.subnet_cidr).prefixlen > PROXY_SUBNET_MAX_PREFIX:
                found.append(problem("cluster.subnetCidr", f"must be at most /{PROXY_SUBNET_MAX_PREFIX} on GCP with "
                                     "cluster.apiLoadBalancer.enabled: the block after it, of the same size, becomes "
                                     "the load balancer's proxy-only subnet", cluster.subnet_cidr))
            else:
                found += cloud.check_network(cluster, proxy_subnet(cluster), "GCP proxy-only subnet")
        found += check_server_type_names(cluster, SERVER_TYPE_NAME,
                                         "a Compute Engine machine type such as n2-standard-8 or e2-medium")
        # The nodes' attach right names one prefix per pool (pool_prefixes), `||`-joined with the resource-type test:
        # IAM refuses a condition of more than MAX_CONDITION_OPERATORS logical operators when the binding is applied.
        if len(cluster.pools) + 1 > MAX_CONDITION_OPERATORS:
            found.append(problem("cluster.pools", f"must be at most {MAX_CONDITION_OPERATORS - 1} pools on GCP: the "
                                 "nodes' disk-attach right names each pool's machines in one IAM condition, which "
                                 f"takes at most {MAX_CONDITION_OPERATORS} logical operators", len(cluster.pools)))
        return found

    def create(self, loaded: LoadedConfig, over_internet: bool = False) -> Infrastructure:
        """`over_internet`: the nodes join a cluster over the public internet (PUBLIC_ADDRESS_COMMAND)."""
        return GcpInfrastructure("gcp", loaded, over_internet=over_internet).infrastructure


class GcpInfrastructure(ProviderInfrastructure):
    """Everything GCP-side for one stack."""

    def __init__(self, name: str, loaded: LoadedConfig, opts: pulumi.ResourceOptions | None = None, *,
                 over_internet: bool = False):
        super().__init__("GcpInfrastructure", name, loaded, opts)
        cfg = loaded.config
        self._boot = (*BOOT_COMMANDS, *((PUBLIC_ADDRESS_COMMAND,) if over_internet else ()))
        self._prefix = gcp_name("adp", loaded.stack)  # GCE names: lower case, digits and '-'
        self._labels = {"adplatform-stack": gcp_name(loaded.stack)}
        self._volume_prefix = volume_name_prefix(loaded.stack)
        self._project = gcp_project() or ""
        self._region = gcp_region() or ""
        self.node_tag = gcp_name(self._prefix, "node")
        self.server_tag = gcp_name(self._prefix, "server")

        specs = node_specs(loaded)
        # A cluster over the internet spans providers: the PD driver and classes stay on this provider's nodes.
        # A secondary part (no K3s servers here, or only control-plane members moving here: secondary_part), whose
        # classes are not the default.
        self._hybrid = over_internet
        self._secondary = secondary_part(loaded)
        available = gcp.compute.get_zones(region=self._region, status="UP").names
        self._spread = cloud.spread(available, SPREAD_ZONES)
        self.zones = {spec.name: cloud.zone_of(spec, self._spread) for spec in specs}

        self.network, self.subnet = self._network()
        self.firewalls = self._firewall(cfg.admin_cidrs)
        self.service_account = self._service_account()
        self.image = cfg.cluster.image or self._ubuntu_image()
        nodes = [self._instance(spec) for spec in specs]
        self.infrastructure = assemble(
            nodes, self._api_endpoints([n for n in nodes if n.spec.k3s_role == "server"]),
            ClusterProfile(
                # ServiceLB stays (K3s' embedded cloud controller serves LoadBalancer Services, see above);
                # the PD CSI driver provides volumes.
                k3s_disable=("traefik", "local-storage"),
                external_cloud_provider=False,
                cilium_values={"routingMode": "tunnel", "tunnelProtocol": "vxlan"},
                load_balancer_annotations={},
                local_nvme=False,  # persistent-disk boot disks; local SSD is not attached
                node_boot_commands=BOOT_COMMANDS,
                credentials_from_instance_metadata=True,  # the autoscaler: the nodes' service account
            ),
            install_addons=None,
            install_storage=self._install_pd_csi,
            install_node_groups=self._install_node_groups,
            install_seal=self._install_seal,
            # A managed instance group is zonal: an unpinned pool's groups, like its nodes, span the spread zones.
            unpinned_group_locations=self._spread,
            admit_peers=self._admit_peers,
        )
        self.register_outputs({"network_id": self.network.id, "subnetwork_id": self.subnet.id})

    # --- network and firewall ------------------------------------------------------------------------

    def _network(self) -> tuple[gcp.compute.Network, gcp.compute.Subnetwork]:
        network = gcp.compute.Network("network", name=self._prefix, project=self._project,
                                      auto_create_subnetworks=False, routing_mode="REGIONAL",
                                      opts=self._opts(protect=True))
        subnet = gcp.compute.Subnetwork("subnet", name=self._prefix, project=self._project, region=self._region,
                                        network=network.id, ip_cidr_range=self._loaded.config.cluster.subnet_cidr,
                                        private_ip_google_access=True, opts=self._opts(protect=True))
        return network, subnet

    def _firewall(self, admin_cidrs: Sequence[str]) -> list[gcp.compute.Firewall]:
        """One rule per PORTS entry and address family (GCP rules take one family), plus the members rule.

        Rules apply to the instances with the node tag; VPC firewalls deny all other ingress.
        """
        rules = []
        for r in cloud.family_rules(admin_cidrs):
            protocol = r.rule.protocol
            name = gcp_name(self._prefix, "in", protocol, r.span or "", "v6" if r.ipv6 else "v4")
            rules.append(gcp.compute.Firewall(
                name, name=name, project=self._project, network=self.network.id, direction="INGRESS",
                description=r.rule.description, source_ranges=list(r.sources), target_tags=[self.node_tag],
                # IPv6 rules name ICMPv6 by number (GCP firewall protocols: names or IP protocol numbers).
                allows=[gcp.compute.FirewallAllowArgs(protocol="58" if protocol == "icmp" and r.ipv6 else protocol,
                                                      ports=[r.span] if r.span else None)],
                opts=self._opts()))
        # Everything between cluster members (VXLAN, WireGuard, etcd, kubelet, NodePorts), nothing else.
        name = gcp_name(self._prefix, "in-members")
        rules.append(gcp.compute.Firewall(
            name, name=name, project=self._project, network=self.network.id, direction="INGRESS",
            description="all traffic between cluster members", source_tags=[self.node_tag],
            target_tags=[self.node_tag], allows=[gcp.compute.FirewallAllowArgs(protocol="all")], opts=self._opts()))
        return rules

    def _admit_peers(self, rules: Sequence[tuple[ClusterPort, Sequence[PeerAddress]]],
                     hooks: pulumi.ResourceHookBinding) -> AdmittedPeers:
        """One ingress rule per cluster port from exactly its peers' addresses, to this stack's nodes (the node
        tag; a cluster over the public internet, providers/hybrid.py). Peers are IPv4 (the public addresses).
        A rule names every peer of its port: `hooks` drain a leaving node before an update drops it; no rule admits
        one node alone."""
        created = []
        for port, peers in rules:
            name = gcp_name(self._prefix, "in-peers", port.protocol, port.port or "")
            created.append(gcp.compute.Firewall(
                name, name=name, project=self._project, network=self.network.id, direction="INGRESS",
                description=port.rule_description, source_ranges=[peer.cidr for peer in peers], target_tags=[self.node_tag],
                allows=[gcp.compute.FirewallAllowArgs(protocol=port.protocol,
                                                      ports=[port.port] if port.port else None)],
                opts=self._opts(hooks=hooks)))
        return AdmittedPeers(rules=tuple(created))

    # --- identity and instances ----------------------------------------------------------------------

    def _service_account(self) -> gcp.serviceaccount.Account:
        """The nodes' service account: only what the PD CSI driver needs (it runs as this account)."""
        account = gcp.serviceaccount.Account(
            "nodes", account_id=gcp_name(self._prefix, "nodes", limit=30), project=self._project,
            display_name=f"{self._prefix} cluster nodes (PD CSI driver)", opts=self._opts())
        member = account.email.apply(lambda email: f"serviceAccount:{email}")
        role = gcp.projects.IAMCustomRole(
            "pd-csi-attach", project=self._project, role_id=gcp_name(self._prefix, "pd-csi").replace("-", "_"),
            title=f"{self._prefix} PD CSI attach/detach", permissions=list(PD_CSI_PERMISSIONS), opts=self._opts())
        gcp.projects.IAMMember("nodes-pd-csi-attach", project=self._project, role=role.name, member=member,
                               condition=gcp.projects.IAMMemberConditionArgs(
                                   title="this stack's instances",
                                   expression=stack_instances_condition(self._instance_prefixes())),
                               opts=self._opts())
        volumes = gcp.projects.IAMCustomRole(
            "pd-csi-volumes", project=self._project,
            role_id=gcp_name(self._prefix, "pd-csi-volumes").replace("-", "_"),
            title=f"{self._prefix} PD CSI volumes and snapshots", permissions=PD_CSI_VOLUME_PERMISSIONS,
            opts=self._opts())
        gcp.projects.IAMMember("nodes-pd-csi-volumes", project=self._project, role=volumes.name, member=member,
                               condition=gcp.projects.IAMMemberConditionArgs(
                                   title="this stack's PD CSI volumes",
                                   expression=csi_disks_condition(
                                       self._volume_prefix, self._loaded.config.gcp.legacy_volume_names)),
                               opts=self._opts())
        # Attaching a disk to an instance acts as the instance's service account: this one only.
        gcp.serviceaccount.IAMMember("nodes-act-as-self", service_account_id=account.name,
                                     role="roles/iam.serviceAccountUser", member=member, opts=self._opts())
        return account

    def _instance_prefixes(self) -> list[str]:
        """Where the names of every machine of this stack begin: the control plane's and each pool's, autoscaled
        pools' groups included (their floor may be zero)."""
        cluster = self._loaded.config.cluster
        return pool_prefixes(self._prefix, [CONTROL_PLANE, *(pool.name for pool in cluster.pools)])

    def _install_seal(self, name: str) -> Seal:
        """OpenBao's auto-unseal key (Cloud KMS in the stack's region, a new version every SEAL_ROTATION; protected
        in production: without it the store's data is lost) and a service account of its own whose key may use and
        describe that crypto key and nothing else (a custom role bound on the key). Not the nodes' account: that one
        is every pod's on the node."""
        ring = gcp.kms.KeyRing(f"{name}-seal", name=gcp_name(self._prefix, name, "seal"), location=self._region,
                               project=self._project, opts=self._opts(protect=True))
        key = gcp.kms.CryptoKey(f"{name}-seal", name=gcp_name(name, "seal"), key_ring=ring.id,
                                purpose="ENCRYPT_DECRYPT", rotation_period=SEAL_ROTATION,
                                labels=self._labels, opts=self._opts(protect=True))
        account = gcp.serviceaccount.Account(
            f"{name}-seal", account_id=gcp_name(self._prefix, name, "seal", limit=30), project=self._project,
            display_name=f"{self._prefix} {name} auto-unseal", opts=self._opts())
        role = gcp.projects.IAMCustomRole(
            f"{name}-seal", project=self._project, role_id=gcp_name(self._prefix, name, "seal").replace("-", "_"),
            title=f"{self._prefix} {name} auto-unseal", permissions=list(SEAL_PERMISSIONS), opts=self._opts())
        binding = gcp.kms.CryptoKeyIAMMember(
            f"{name}-seal", crypto_key_id=key.id, role=role.name,
            member=account.email.apply(lambda email: f"serviceAccount:{email}"), opts=self._opts())
        credential = gcp.serviceaccount.Key(f"{name}-seal", service_account_id=account.name, opts=self._opts())
        return Seal("gcpckms", settings={"project": self._project, "region": self._region, "key_ring": ring.name,
                                         "crypto_key": key.name},
                    # The key's private_key is the credentials JSON, base64-encoded.
                    credentials={"credentials.json": credential.private_key.apply(
                        lambda encoded: base64.b64decode(encoded).decode())},
                    file_settings={"credentials": "credentials.json"},
                    resources=(ring, key, account, role, binding, credential))

    def _service_account_settings(self) -> dict:
        return {"email": self.service_account.email, "scopes": ["cloud-platform"]}  # IAM decides

    def _ubuntu_image(self) -> str:
        return gcp.compute.get_image(family=UBUNTU_IMAGE_FAMILY, project=UBUNTU_IMAGE_PROJECT).self_link

    def _node_labels(self, spec: NodeSpec) -> dict[str, str]:
        return {**self._labels, "adplatform-pool": gcp_name(spec.pool), "adplatform-role": gcp_name(spec.workload_role),
                "adplatform-k3s": spec.k3s_role}

    def _node_tags(self, spec: NodeSpec) -> list[str]:
        return [self.node_tag, *([self.server_tag] if spec.k3s_role == "server" else [])]

    def _ssh_metadata(self) -> dict[str, str]:
        """Metadata keys for the default user; project-wide keys and OS Login stay out."""
        keys = "\n".join(f"{cloud.SSH_USER}:{key}" for key in self._loaded.config.ssh_public_keys)
        return {"ssh-keys": keys, "block-project-ssh-keys": "TRUE", "enable-oslogin": "FALSE"}

    def _instance(self, spec: NodeSpec) -> Node:
        hostname = gcp_name(self._prefix, spec.name)
        spec = dataclasses.replace(spec, region=self._region, zone=self.zones[spec.name])  # as the GCP CCM names them
        labels = self._node_labels(spec)
        instance = gcp.compute.Instance(
            spec.name,
            name=hostname,
            project=self._project,
            zone=self.zones[spec.name],
            machine_type=resolve_server_type(spec, SERVER_TYPES),
            boot_disk=gcp.compute.InstanceBootDiskArgs(
                auto_delete=True,
                # Encrypted at rest by Google (every persistent disk is; no switch to turn it off).
                initialize_params=gcp.compute.InstanceBootDiskInitializeParamsArgs(
                    image=self.image, size=cloud.root_disk_gb(spec), type=BOOT_DISK_TYPE, labels=labels)),
            network_interfaces=[gcp.compute.InstanceNetworkInterfaceArgs(
                subnetwork=self.subnet.id,
                access_configs=[gcp.compute.InstanceNetworkInterfaceAccessConfigArgs(network_tier="PREMIUM")])],
            # cloud-init (Ubuntu's GCE datasource reads `user-data`) writes the provider ID at boot, before K3s.
            metadata={**self._ssh_metadata(), "user-data": cloud.cloud_config(
                self._loaded.config.ssh_public_keys, boot_commands=self._boot)},
            tags=self._node_tags(spec),
            service_account=gcp.compute.InstanceServiceAccountArgs(**self._service_account_settings()),
            shielded_instance_config=gcp.compute.InstanceShieldedInstanceConfigArgs(**SHIELDED),
            labels=labels,
            deletion_protection=self._protect,
            allow_stopping_for_update=True,
            opts=self._opts(
                protect=True,
                hooks=self._resize_hooks(spec, hostname, POWER_OFF_INPUTS,
                                         output_path("networkInterfaces", 0, "accessConfigs", 0, "natIp"),
                                         cloud.SSH_USER),
                depends_on=[self.subnet],
                delete_before_replace=True,  # K3s node names are unique: the old node drains and goes first
                # The image family moves on; a newer image reaches new instances only.
                ignore_changes=["bootDisk.initializeParams.image"],
            ),
        )
        private_ip = instance.network_interfaces.apply(lambda nics: nics[0].network_ip or "")
        public_ip = instance.network_interfaces.apply(
            lambda nics: (nics[0].access_configs[0].nat_ip if nics[0].access_configs else "") or "")
        return Node(spec=spec, hostname=hostname, public_ip=public_ip, private_ip=private_ip,
                    connection=ssh_connection(self._loaded, spec.name, public_ip, cloud.SSH_USER,
                                              parent=self, machine=instance),
                    server=instance, machine=instance)

    # --- autoscaled node groups ----------------------------------------------------------------------

    @staticmethod
    def _group_zone(location: str | None) -> str:
        """A group's zone: every request names one (unpinned pools get one group per spread zone through
        unpinned_group_locations); the autoscaler's GCE provider takes zonal groups only."""
        if location is None:
            raise ValueError("a GCP node group request needs a zone (Infrastructure.unpinned_group_locations)")
        return location

    def _install_node_groups(self, requests: Sequence[NodeGroupRequest], provider: k8s.Provider,
                             depends_on: Sequence[pulumi.Resource], parent: pulumi.Resource) -> NodeGroups:
        """A managed instance group per request, and the autoscaler's rights on this stack's groups.

        The autoscaler authenticates as the node it runs on, through the metadata server: every node shares one
        service account, so the custom role is the nodes' (as the PD CSI driver's rights are), limited by an IAM
        condition to the MIGs named after this stack. A dedicated control-plane account would narrow who holds it
        further, but changing a running instance's service account stops it (docs/autoscaling.md)."""
        opts = self._opts(depends_on=list(depends_on))
        member = self.service_account.email.apply(lambda email: f"serviceAccount:{email}")
        role = gcp.projects.IAMCustomRole(
            "autoscaler", project=self._project, role_id=gcp_name(self._prefix, "autoscaler").replace("-", "_"),
            title=f"{self._prefix} cluster autoscaler", permissions=AUTOSCALER_PERMISSIONS, opts=opts)
        grant = gcp.projects.IAMMember(
            "nodes-autoscaler", project=self._project, role=role.name, member=member,
            condition=gcp.projects.IAMMemberConditionArgs(title="this stack's instance groups",
                                                          expression=stack_groups_condition(pool_prefixes(
                                                              self._prefix, [r.pool.name for r in requests]))),
            opts=opts)
        resources: list[pulumi.Resource] = [role, grant]
        groups = []
        for request in requests:
            template, mig = self._node_group(request, opts)
            resources += [template, mig]
            groups.append((mig_url(self._project, self._group_zone(request.location),
                                   gcp_name(self._prefix, request.name)), request.max_size))
        return NodeGroups(resources=resources, autoscaler_values=autoscaler_values(groups))

    def _node_group(self, request: NodeGroupRequest, opts: pulumi.ResourceOptions
                    ) -> tuple[gcp.compute.InstanceTemplate, gcp.compute.InstanceGroupManager]:
        """An instance template with the agents' settings (image, machine type, boot disk, subnetwork with a
        public address, network tag, service account, shielded VM, SSH metadata) and the request's user data, and
        its zonal managed instance group, whose size the autoscaler owns."""
        spec = request.spec
        labels = self._node_labels(spec)
        name = gcp_name(self._prefix, request.name)
        template = gcp.compute.InstanceTemplate(
            f"group-{request.name}",
            # Templates are immutable: a change creates a new one (prefix + suffix), the group moves to it.
            name_prefix=f"{gcp_name(name, limit=36)}-", project=self._project,
            machine_type=resolve_server_type(spec, SERVER_TYPES),
            disks=[gcp.compute.InstanceTemplateDiskArgs(
                boot=True, auto_delete=True, source_image=self.image, disk_size_gb=cloud.root_disk_gb(spec),
                disk_type=BOOT_DISK_TYPE, labels=labels)],  # encrypted at rest by Google, like every disk
            network_interfaces=[gcp.compute.InstanceTemplateNetworkInterfaceArgs(
                subnetwork=self.subnet.id,
                access_configs=[gcp.compute.InstanceTemplateNetworkInterfaceAccessConfigArgs(network_tier="PREMIUM")])],
            # user-data: secret (the join token); kube-env: what the autoscaler knows of a node before one exists.
            metadata={**self._ssh_metadata(), "user-data": request.user_data,
                      "kube-env": kube_env(cloud.node_template(request))},
            tags=self._node_tags(spec),
            service_account=gcp.compute.InstanceTemplateServiceAccountArgs(**self._service_account_settings()),
            shielded_instance_config=gcp.compute.InstanceTemplateShieldedInstanceConfigArgs(**SHIELDED),
            labels=labels, opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[self.subnet])))
        mig = gcp.compute.InstanceGroupManager(
            f"group-{request.name}", name=name, project=self._project, zone=self._group_zone(request.location),
            # Instances are named <prefix>-<group>-xxxx: the nodes' PD CSI condition (this stack's instances) holds.
            base_instance_name=name,
            versions=[gcp.compute.InstanceGroupManagerVersionArgs(name="primary", instance_template=template.self_link)],
            # A new template reaches new instances only: running nodes are the autoscaler's to remove (drained).
            update_policy=gcp.compute.InstanceGroupManagerUpdatePolicyArgs(type="OPPORTUNISTIC", minimal_action="REPLACE"),
            target_size=0, wait_for_instances=False,
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(ignore_changes=["targetSize"])))
        return template, mig

    # --- Kubernetes API load balancer ----------------------------------------------------------------

    def _api_endpoints(self, servers: list[Node]) -> ApiEndpoints:
        lb_cfg = self._loaded.config.cluster.api_load_balancer
        if not lb_cfg.enabled:
            return first_server_api(servers)
        groups = self._server_groups(servers)
        health = gcp.compute.RegionHealthCheck(
            "api-health", name=gcp_name(self._prefix, "api"), project=self._project, region=self._region,
            tcp_health_check=gcp.compute.RegionHealthCheckTcpHealthCheckArgs(port=API_PORT),
            check_interval_sec=5, timeout_sec=5, healthy_threshold=2, unhealthy_threshold=3, opts=self._opts())
        name = gcp_name(self._prefix, "in-api-health-checks")
        gcp.compute.Firewall(
            name, name=name, project=self._project, network=self.network.id, direction="INGRESS",
            description="Google load-balancer health checks of the Kubernetes API",
            source_ranges=health_check_ranges(lb_cfg.public), target_tags=[self.server_tag],
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=[str(API_PORT)])], opts=self._opts())
        internal_ip = self._internal_proxy_lb(groups, health)
        if not lb_cfg.public:
            return ApiEndpoints(private=internal_ip, public=servers[0].public_ip, balancers=(internal_ip,))
        public_ip = self._external_passthrough_lb(groups, health)
        return ApiEndpoints(private=internal_ip, public=public_ip, balancers=(internal_ip, public_ip))

    def _server_groups(self, servers: list[Node]) -> list[gcp.compute.InstanceGroup]:
        """Unmanaged instance groups, one per zone holding API servers (backends are zonal groups)."""
        groups = []
        for zone, members in groupby(sorted(servers, key=lambda n: self.zones[n.name]), key=lambda n: self.zones[n.name]):
            groups.append(gcp.compute.InstanceGroup(
                f"api-{zone}", name=gcp_name(self._prefix, "api", zone), project=self._project, zone=zone,
                network=self.network.id, instances=[n.server.self_link for n in members],
                named_ports=[gcp.compute.InstanceGroupNamedPortArgs(name="kube-apiserver", port=API_PORT)],
                opts=self._opts()))
        return groups

    def _internal_proxy_lb(self, groups: list[gcp.compute.InstanceGroup],
                           health: gcp.compute.RegionHealthCheck) -> pulumi.Output[str]:
        """Regional internal proxy Network Load Balancer on 6443 (what the nodes join through).

        A proxy, not a passthrough balancer: a passthrough backend that connects to the load balancer's
        address is answered by itself (Google's guest agent routes that address locally), so a server
        joining through it would reach its own, not yet running, API server.
        """
        cluster = self._loaded.config.cluster
        proxies = gcp.compute.Subnetwork(
            "api-proxy-subnet", name=gcp_name(self._prefix, "proxy-only"), project=self._project, region=self._region,
            network=self.network.id, ip_cidr_range=proxy_subnet(cluster), purpose="REGIONAL_MANAGED_PROXY",
            role="ACTIVE", opts=self._opts())
        name = gcp_name(self._prefix, "in-api-proxies")
        gcp.compute.Firewall(
            name, name=name, project=self._project, network=self.network.id, direction="INGRESS",
            description="Kubernetes API through the internal load balancer's proxies",
            source_ranges=[proxy_subnet(cluster)], target_tags=[self.server_tag],
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=[str(API_PORT)])], opts=self._opts())
        backend = gcp.compute.RegionBackendService(
            "api-internal", name=gcp_name(self._prefix, "api-internal"), project=self._project, region=self._region,
            load_balancing_scheme="INTERNAL_MANAGED", protocol="TCP", port_name="kube-apiserver",
            health_checks=health.id, timeout_sec=86400,  # long-lived watches
            backends=[gcp.compute.RegionBackendServiceBackendArgs(
                group=g.self_link, balancing_mode="CONNECTION", max_connections_per_instance=10000,
                capacity_scaler=1.0) for g in groups], opts=self._opts())
        proxy = gcp.compute.RegionTargetTcpProxy("api-internal", name=gcp_name(self._prefix, "api-internal"),
                                                 project=self._project, region=self._region,
                                                 backend_service=backend.id, opts=self._opts())
        # The nodes' K3s join at this address (over the internet, the GCP servers: Gcp.servers_join_privately):
        # production never loses it.
        address = gcp.compute.Address("api-internal", name=gcp_name(self._prefix, "api-internal"),
                                      project=self._project, region=self._region, address_type="INTERNAL",
                                      subnetwork=self.subnet.id, opts=self._opts(protect=True))
        gcp.compute.ForwardingRule(
            "api-internal", name=gcp_name(self._prefix, "api-internal"), project=self._project, region=self._region,
            load_balancing_scheme="INTERNAL_MANAGED", target=proxy.id, ip_address=address.address, ip_protocol="TCP",
            port_range=str(API_PORT), network=self.network.id, subnetwork=self.subnet.id,
            opts=self._opts(depends_on=[proxies]))
        return address.address

    def _external_passthrough_lb(self, groups: list[gcp.compute.InstanceGroup],
                                 health: gcp.compute.RegionHealthCheck) -> pulumi.Output[str]:
        """Regional external passthrough NLB on 6443 for the deployer, and over the internet for the other providers'
        nodes to join at: client addresses reach the servers, so the firewall rules on 6443 (the admin CIDRs', and
        over the internet the cluster nodes', _admit_peers) still decide who gets in."""
        backend = gcp.compute.RegionBackendService(
            "api-public", name=gcp_name(self._prefix, "api-public"), project=self._project, region=self._region,
            load_balancing_scheme="EXTERNAL", protocol="TCP", health_checks=health.id,
            backends=[gcp.compute.RegionBackendServiceBackendArgs(group=g.self_link, balancing_mode="CONNECTION")
                      for g in groups], opts=self._opts())
        address = gcp.compute.Address("api-public", name=gcp_name(self._prefix, "api-public"), project=self._project,
                                      region=self._region, address_type="EXTERNAL", network_tier="PREMIUM",
                                      opts=self._opts(protect=True))  # in kubeconfigs and the API certificate
        gcp.compute.ForwardingRule(
            "api-public", name=gcp_name(self._prefix, "api-public"), project=self._project, region=self._region,
            load_balancing_scheme="EXTERNAL", backend_service=backend.id, ip_address=address.address,
            ip_protocol="TCP", ports=[str(API_PORT)], opts=self._opts())
        return address.address

    # --- cluster add-ons -----------------------------------------------------------------------------

    def _install_pd_csi(self, provider: k8s.Provider, depends_on: Sequence[pulumi.Resource],
                        parent: pulumi.Resource) -> Storage:
        """Persistent Disk volumes (pd-balanced) through the PD CSI driver's upstream `noauth` overlay,
        wrapped by our kustomization so the driver image is the pinned release's (the overlay alone runs
        v1.17.4): encrypted at rest by Google, expandable, the default class and its XFS twin; production
        keeps a volume when its claim is deleted."""
        opts = pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=list(depends_on))
        # The overlay expects its namespace to exist (upstream deploy-driver.sh creates it). Its node
        # plugin is privileged (mounts, udev), hence the privileged Pod Security level.
        namespace = k8s.core.v1.Namespace(
            "gce-pd-csi-driver", metadata=k8s.meta.v1.ObjectMetaArgs(
                name=GCP_PD_CSI.namespace, labels={"pod-security.kubernetes.io/enforce": "privileged"}),
            opts=opts)
        # Spanning providers: on GCP nodes only, which run as the nodes' service account with exactly the driver's
        # rights (_service_account) on a secondary part too; the node plugin reads project, zone and instance from
        # the metadata server, so it needs no GCP CCM (none runs on a secondary).
        driver = k8s.kustomize.v2.Directory(
            "gcp-pd-csi", directory=PD_CSI_HYBRID_KUSTOMIZATION if self._hybrid else PD_CSI_KUSTOMIZATION,
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
                depends_on=[namespace], transforms=[volume_name_args(self._volume_prefix)])))
        # ext4 or xfs: the driver image ships both (gcp-compute-persistent-disk-csi-driver v1.26.4 Dockerfile,
        # docs/kubernetes/user-guides/basic.md); Google encrypts every disk at rest.
        return csi_storage(STORAGE_CLASS, PD_PROVISIONER, {"type": "pd-balanced", "csi.storage.k8s.io/fstype": "ext4"},
                           retain=self._protect, driver=[namespace, driver], opts=opts,
                           allowed_topologies=zone_topology(PD_ZONE_KEY, list(self.zones.values()))
                           if self._hybrid else None, default=holds_default_class(self._loaded))
