"""AWS: VPC across availability zones, security groups from PORTS, EC2 instances, API NLB, CCM and EBS CSI.

Location: `aws:region` (the provider's own config, or AWS_REGION) is the region; a `location` in the
stack config is an availability zone of it (eu-central-1a) and pins those nodes there. Unpinned
pools spread round-robin over the region's first three zones. Each zone used gets a public subnet:
zone letter N (a=0) uses the N-th block of cluster.subnetCidr's size after it, inside a /16 VPC.

Pods ride Cilium's VXLAN tunnel between instance addresses (no VPC routes, no source/dest-check
changes); the node security group allows everything between its members and only PORTS from outside.
The AWS cloud controller manager (chart: kubernetes/cloud-provider-aws) initialises nodes and turns
LoadBalancer Services into NLBs; the EBS CSI driver provides encrypted gp3 volumes.

Autoscaled pools (docs/autoscaling.md): an Auto Scaling group per node group request, from a launch template
with the agents' settings, discovered by the cluster autoscaler through its tags; the autoscaler runs on the
control plane with the control-plane role's Auto Scaling rights, limited to this cluster's groups by tag.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import ipaddress
import json
import re
from typing import Sequence

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.charts import AWS_CCM, AWS_EBS_CSI
from components.helm import release
from components.layer import EXCLUDE_FROM_BACKUP
from components.k3s.resize import output_path
from providers import power_off
from config import LoadedConfig, Problem
from config.errors import problem
from config.model import Cluster, StackConfig, node_location
from providers import cloud
from providers.base import (AdmittedPeers, ApiEndpoints, ClientAddress, ClusterPort, ClusterProfile, Credential,
                            Infrastructure, Node, NodeGroupRequest, NodeGroups, NodeSpec, PeerAddress, PeerQuota,
                            ProviderInfrastructure, Storage, assemble, check_locations, check_server_type_names,
                            csi_storage, holds_default_class, first_server_api, node_specs, resolve_server_type,
                            CONTROL_PLANE_SELECTOR, PROVIDER_LABEL, Seal,
                            secondary_controller_placement, secondary_part, ssh_connection, zone_topology)

NAME = "aws"
REGION_ENV = ("AWS_REGION", "AWS_DEFAULT_REGION")  # what the AWS provider reads when aws:region is unset
# Ubuntu 24.04 LTS as Canonical publishes it: its AWS account and AMI naming (Ubuntu's "Find Ubuntu
# images on AWS" docs; also published under the SSM parameter
# /aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id).
CANONICAL_OWNER = "099720109477"
UBUNTU_AMI_NAME = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"
SPREAD_ZONES = 3
VPC_PREFIX = 16  # the largest VPC CIDR AWS accepts
ROOT_VOLUME_TYPE = "gp3"
STORAGE_CLASS = "ebs-gp3"
EBS_PROVISIONER = "ebs.csi.aws.com"
# The zone the EBS CSI node plugin reports as its volumes' topology (aws-ebs-csi-driver v1.64.0 pkg/driver/driver.go
# ZoneTopologyKey, "topology." + driver name + "/zone"): only nodes running that plugin carry it.
EBS_ZONE_KEY = "topology.ebs.csi.aws.com/zone"
# The Secret the chart's controller reads static AWS credentials from (chart 2.64.0 values.yaml awsAccessSecret: its
# defaults, so the values leave it out; templates/controller.yaml, optional keys): the controller of a hybrid
# cluster's secondary AWS part, which has no instance role to use.
EBS_CSI_SECRET = {"name": "aws-secret", "keyId": "key_id", "accessKey": "access_key"}
API_PORT = 6443
# PROXY protocol v2 on the gateway NLB's target groups. The CCM (cloud-provider-aws v1.35) reads
# `aws-load-balancer-proxy-protocol` only for Classic ELBs; for an NLB it takes target group attributes.
# Client IP preservation off: the header carries the client, and a node reaching the public names through
# the NLB is no longer routed back to itself with its own source address (NLB hairpinning).
GATEWAY_CLIENT_ADDRESS = ClientAddress(
    proxy_protocol=True,
    annotations={"service.beta.kubernetes.io/aws-load-balancer-target-group-attributes":
                 "preserve_client_ip.enabled=false,proxy_protocol_v2.enabled=true"},
    why="the NLB's target groups send PROXY protocol v2 headers")
# Size classes -> instance types (x86_64, matching the amd64 AMI). Burstable T3 for the shared
# classes; general-purpose M7i (non-burstable, a dedicated hyperthread per vCPU, 4 GiB per vCPU) for
# every dedicated class. Databases that want local NVMe (i4i, i7ie) are set per pool with serverType.
# An EC2 instance type: family (generation, attributes) "." size, e.g. m7i.xlarge, c7gd.2xlarge, u-6tb1.metal.
SERVER_TYPE_NAME = re.compile(r"[a-z][a-z0-9-]*[0-9][a-z0-9-]*\.[a-z0-9]+")
POWER_OFF_INPUTS = power_off.POWER_OFF_INPUTS["aws:ec2/instance:Instance"]
SERVER_TYPES = {
    "small": "t3.medium",          # 2 vCPU, 4 GiB
    "medium": "t3.xlarge",         # 4 vCPU, 16 GiB (T3 has no 4 vCPU / 8 GiB size)
    "dedicated-medium": "m7i.xlarge",    # 4 vCPU, 16 GiB
    "dedicated-large": "m7i.2xlarge",    # 8 vCPU, 32 GiB
    "dedicated-xlarge": "m7i.4xlarge",   # 16 vCPU, 64 GiB
    "dedicated-2xlarge": "m7i.8xlarge",  # 32 vCPU, 128 GiB
}
# The CCM's permissions: the control-plane policy of cloud-provider-aws v1.35.0 docs/prerequisites.md,
# less what this cluster never asks of it: routes (Cilium tunnels, --configure-cloud-routes=false),
# volumes (the EBS CSI driver has its own AWS-managed policy) and Auto Scaling (the cluster autoscaler's
# policy below holds those rights; the CCM's NLB targets are instances, not groups); plus what that list misses:
# elasticloadbalancing:DescribeTargetGroupAttributes, which the CCM calls before it sets the gateway's
# target-group attributes (pkg/providers/v1/aws_loadbalancer.go reconcileTargetGroupsAttributes): without it every
# sync of the gateway's Service fails, and its NLB never sends the PROXY headers the gateway's listeners require.
CCM_ACTIONS = sorted({
    "ec2:DescribeInstances", "ec2:DescribeRegions", "ec2:DescribeRouteTables", "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets", "ec2:DescribeVpcs", "ec2:DescribeAvailabilityZones", "ec2:DescribeInstanceTopology",
    "ec2:CreateSecurityGroup", "ec2:CreateTags", "ec2:DeleteSecurityGroup", "ec2:AuthorizeSecurityGroupIngress",
    "ec2:RevokeSecurityGroupIngress", "ec2:ModifyInstanceAttribute",
    "elasticloadbalancing:AddTags", "elasticloadbalancing:AttachLoadBalancerToSubnets",
    "elasticloadbalancing:ApplySecurityGroupsToLoadBalancer", "elasticloadbalancing:CreateLoadBalancer",
    "elasticloadbalancing:CreateLoadBalancerPolicy", "elasticloadbalancing:CreateLoadBalancerListeners",
    "elasticloadbalancing:ConfigureHealthCheck", "elasticloadbalancing:DeleteLoadBalancer",
    "elasticloadbalancing:DeleteLoadBalancerListeners", "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeLoadBalancerAttributes", "elasticloadbalancing:DetachLoadBalancerFromSubnets",
    "elasticloadbalancing:DeregisterInstancesFromLoadBalancer", "elasticloadbalancing:ModifyLoadBalancerAttributes",
    "elasticloadbalancing:RegisterInstancesWithLoadBalancer",
    "elasticloadbalancing:SetLoadBalancerPoliciesForBackendServer", "elasticloadbalancing:CreateListener",
    "elasticloadbalancing:CreateTargetGroup", "elasticloadbalancing:DeleteListener",
    "elasticloadbalancing:DeleteTargetGroup", "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeLoadBalancerPolicies", "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth", "elasticloadbalancing:ModifyListener",
    "elasticloadbalancing:ModifyTargetGroup", "elasticloadbalancing:ModifyTargetGroupAttributes",
    "elasticloadbalancing:DescribeTargetGroupAttributes",
    "elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets",
    "elasticloadbalancing:SetLoadBalancerPoliciesOfListener", "iam:CreateServiceLinkedRole", "kms:DescribeKey",
})
# AWS-maintained policy for the EBS CSI driver, scoped to volumes and snapshots tagged
# ebs.csi.aws.com/cluster=true (the driver tags everything it creates so). Unlike V1 (a service-role
# policy under `service-role/`), V2 is a plain AWS managed policy at the root path: AWS Managed Policy
# reference, AmazonEBSCSIDriverPolicyV2 (created 2026-04-16). aws-ebs-csi-driver's docs/install.md
# prints it with `service-role/`, which IAM answers with NoSuchEntity.
EBS_CSI_POLICY = "arn:aws:iam::aws:policy/AmazonEBSCSIDriverPolicyV2"
# The instance's own zone and id come from cloud-init's instance data, so the CCM finds the instance by provider ID
# whatever the node is named (cloud-provider-aws v1.35.0 instances_v2.go: a node without providerID must otherwise
# be named like its private DNS name).
PROVIDER_ID_COMMAND = cloud.provider_id_command("aws", "aws:///%s/%s", [
    "$(cloud-init query v1.availability_zone)", "$(cloud-init query v1.instance_id)"])
# What every node's cloud-init runs first at boot: the Pulumi-managed instances' and the autoscaled nodes'.
BOOT_COMMANDS = (PROVIDER_ID_COMMAND,)
# A node joining a cluster over the public internet registers with its public address (cloud.public_address_command),
# from instance metadata (IMDSv2: a session token first; `public-ipv4`, the address translated at the internet
# gateway).
_IMDS = "http://169.254.169.254/latest"
PUBLIC_ADDRESS_COMMAND = cloud.public_address_command(
    f'"$(curl -sf -H "X-aws-ec2-metadata-token: $(curl -sf -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" '
    f'{_IMDS}/api/token)" {_IMDS}/meta-data/public-ipv4)"')
# Amazon VPC quotas: 60 inbound rules per security group by default, counted separately for IPv4 and IPv6 rules; a
# rule naming a security group counts for both. Peer rules (_admit_peers) are IPv4, one per port and peer.
INBOUND_RULES_PER_GROUP = 60


def inbound_ipv4_rules(cfg: StackConfig, peer_rules: Sequence[tuple[ClusterPort, Sequence[str]]]) -> int:
    """The most inbound IPv4 rules one of the part's security groups holds (the quota is per group): the nodes'
    group's (PORTS from IPv4 sources, the members rule, one per peer and port; the CCM adds its load balancers' rules
    on top, in a stack provider's part) or the public API balancer's (api_balancer_ipv4_rules)."""
    own = sum(not rule.ipv6 for rule in cloud.ingress_rules(cfg.admin_cidrs))
    nodes = own + 1 + sum(len(peers) for _port, peers in peer_rules)
    return max(nodes, api_balancer_ipv4_rules(cfg, peer_rules))


def api_balancer_ipv4_rules(cfg: StackConfig, peer_rules: Sequence[tuple[ClusterPort, Sequence[str]]]) -> int:
    """The public API balancer's security group's inbound IPv4 rules: one per IPv4 admin CIDR and one per peer of the
    API port (AwsInfrastructure._admit_balancer_peer); none without that balancer."""
    balancer = cfg.cluster.api_load_balancer
    if not (balancer.enabled and balancer.public):
        return 0
    admins = sum(ipaddress.ip_network(cidr).version == 4 for cidr in cfg.admin_cidrs)
    return admins + sum(len(peers) for port, peers in peer_rules if _is_api_port(port))


def _is_api_port(port: ClusterPort) -> bool:
    return (port.protocol, port.port) == ("tcp", str(API_PORT))


# Auto-discovery (cluster-autoscaler 1.35 cloudprovider/aws/README.md "Auto-Discovery Setup"): the autoscaler
# scales the groups carrying both tag keys (the chart's autoDiscovery.tags default); the second tells this
# cluster's groups from another's in the same account, and the IAM condition below keys on it.
AUTOSCALER_ENABLED_TAG = "k8s.io/cluster-autoscaler/enabled"
AUTOSCALER_CLUSTER_TAG = "k8s.io/cluster-autoscaler/{cluster}"
# Scale from zero: the labels and taints of a group's future nodes, as group tags (same README).
NODE_TEMPLATE_LABEL_TAG = "k8s.io/cluster-autoscaler/node-template/label/"
NODE_TEMPLATE_TAINT_TAG = "k8s.io/cluster-autoscaler/node-template/taint/"
# The autoscaler's rights (same README, "Full Cluster Autoscaler Features Policy": auto-discovery and the
# dynamic instance type list), less what this cluster never uses: eks:DescribeNodegroup (EKS managed node
# groups only) and autoscaling:DescribeLaunchConfigurations (the groups use launch templates). The two actions
# that change capacity apply only to groups tagged with this cluster's AUTOSCALER_CLUSTER_TAG.
AUTOSCALER_DESCRIBE_ACTIONS = sorted({
    "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeScalingActivities", "ec2:DescribeImages", "ec2:DescribeInstanceTypes",
    "ec2:DescribeLaunchTemplateVersions", "ec2:GetInstanceTypesFromInstanceRequirements",
})
AUTOSCALER_SCALE_ACTIONS = ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"]


def aws_region() -> str | None:
    return cloud.provider_setting("aws", "region", REGION_ENV)


def vpc_cidr(cluster: Cluster) -> str:
    """cluster.networkCidr when AWS accepts it as a VPC (/16../28), else the /16 around subnetCidr."""
    network = ipaddress.ip_network(cluster.network_cidr)
    if network.prefixlen >= VPC_PREFIX:
        return str(network)
    return str(ipaddress.ip_network(cluster.subnet_cidr).supernet(new_prefix=VPC_PREFIX))


def zone_subnet(cluster: Cluster, zone: str) -> str:
    """The zone's subnet: by zone letter, so adding a zone never renumbers another zone's subnet."""
    first = ipaddress.ip_network(cluster.subnet_cidr)
    index = ord(zone[-1]) - ord("a")
    return str(ipaddress.ip_network((int(first.network_address) + index * first.num_addresses, first.prefixlen)))


def autoscaler_policy(cluster_name: str) -> dict:
    """The cluster autoscaler's IAM policy: read everything it must see, change only this cluster's groups."""
    owned = AUTOSCALER_CLUSTER_TAG.format(cluster=cluster_name)
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": AUTOSCALER_DESCRIBE_ACTIONS, "Resource": "*"},
        {"Effect": "Allow", "Action": AUTOSCALER_SCALE_ACTIONS, "Resource": "*",
         "Condition": {"StringEquals": {f"aws:ResourceTag/{owned}": "owned"}}},
    ]}


def group_tags(cluster_name: str, template: cloud.NodeTemplate) -> dict[str, str]:
    """An Auto Scaling group's autoscaler tags: discovery by this cluster, and its nodes' labels and taints."""
    return {AUTOSCALER_ENABLED_TAG: "true", AUTOSCALER_CLUSTER_TAG.format(cluster=cluster_name): "owned",
            **{f"{NODE_TEMPLATE_LABEL_TAG}{key}": value for key, value in template.labels.items()},
            **{f"{NODE_TEMPLATE_TAINT_TAG}{key}": f"{value}:{effect}" for key, value, effect in template.taints}}


def autoscaler_values(region: str, cluster_name: str) -> dict:
    """cluster-autoscaler chart values for AWS (chart 9.59.0 values.yaml, templates/deployment.yaml): groups by
    auto-discovery, credentials from the control plane's instance role (IMDS, hop limit 2 there)."""
    return {
        "cloudProvider": "aws",
        "awsRegion": region,
        "autoDiscovery": {"clusterName": cluster_name,
                          "tags": [AUTOSCALER_ENABLED_TAG, AUTOSCALER_CLUSTER_TAG.format(cluster=cluster_name)]},
        # The instance role with the Auto Scaling rights is the control plane's only.
        "nodeSelector": CONTROL_PLANE_SELECTOR,
        "tolerations": _CONTROL_PLANE_TOLERATIONS,
    }


def _zone_pattern(region: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(region)}[a-z]$")


def _aws_name(name: str, limit: int = 32) -> str:
    """Load balancer and target group names (at most 32 characters) and other limited names (`limit`): long ones
    keep a hash suffix."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    return f"{name[:limit - 7].rstrip('-')}-{digest}"


# What OpenBao's awskms seal does with its key (OpenBao docs, configuration/seal/awskms: "permissions on the KMS key").
SEAL_ACTIONS = ("kms:Encrypt", "kms:Decrypt", "kms:DescribeKey")
IAM_USER_NAME_LIMIT = 64


def seal_policy(key_arn: str) -> str:
    """The seal user's one policy: SEAL_ACTIONS on the seal key alone."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": list(SEAL_ACTIONS), "Resource": key_arn}]})


# Keys of the AWS provider's config that hold credentials (pulumi_aws config: secretKey, token); the provider may
# also take them from its environment, a profile or SSO, so none is required here.
CREDENTIALS = (Credential("aws:secretKey"), Credential("aws:token"))


class Aws:
    name = NAME
    server_types = SERVER_TYPES
    credentials = CREDENTIALS
    zonal_node_groups = True  # one Auto Scaling group per zone (aws.py: AZRebalance would evict undrained)
    internet_peering = True  # PUBLIC_ADDRESS_COMMAND puts the public address where K3s can register with it
    # Its public API balancer's security group admits every cluster node's address on 6443 when pools join over the
    # internet (AwsInfrastructure._admit_balancer_peer): nodes of other providers join through it.
    public_api_balancer_admits_peers = True
    # As a hybrid cluster's secondary (providers/hybrid.py pool_roles) it installs its own EBS CSI driver and classes
    # on its own nodes, with a credential of its own (AwsInfrastructure._ebs_csi_credential): it may host stores.
    secondary_storage = True
    # Its CCM can stop serving LoadBalancer Services and leave the balancers it built in place, forwarding, while a
    # control plane moving away hands the gateway's Service to the new provider's (ControlPlaneMove.gateway_balancer,
    # providers/hybrid.py gateway_handover): without its `service` controller (ccm_values).
    gateway_handover_from = True
    peer_quota = PeerQuota(INBOUND_RULES_PER_GROUP, "inbound IPv4 rules of the nodes' security group (the default "
                           "Amazon VPC quota 'Inbound or outbound rules per security group'; the public API "
                           "balancer's group holds fewer)", inbound_ipv4_rules)
    kms_seal = "awskms"  # OpenBao unseals with a KMS key (AwsInfrastructure._install_seal)

    def validate(self, loaded: LoadedConfig) -> list[Problem]:
        cluster = loaded.config.cluster
        found: list[Problem] = []
        region = aws_region()
        if not region:
            found.append(problem("aws:region", "must be set to the stack's AWS region (pulumi config set aws:region "
                                 "eu-central-1, or export AWS_REGION): the AWS provider and the cluster use it"))
        else:
            pattern = _zone_pattern(region)
            found += check_locations(cluster, lambda z: bool(pattern.match(z)),
                                     f"an availability zone of aws:region {region} ({region}a, {region}b, ...)")
        vpc = vpc_cidr(cluster)
        found += cloud.check_network(cluster, vpc, "AWS VPC")
        last = zone_subnet(cluster, "z")  # zone letters run a..z: the highest block must fit in the VPC
        if ipaddress.ip_network(cluster.subnet_cidr).prefixlen > 28:
            found.append(problem("cluster.subnetCidr", "must be at most /28 on AWS (the smallest subnet AWS accepts)",
                                 cluster.subnet_cidr))
        elif not ipaddress.ip_network(last).subnet_of(ipaddress.ip_network(vpc)):
            found.append(problem("cluster.subnetCidr", f"must leave room for one subnet of its size per zone letter "
                                 f"(a..z) inside the VPC {vpc}; e.g. 10.0.1.0/24 in 10.0.0.0/16", cluster.subnet_cidr))
        found += check_server_type_names(cluster, SERVER_TYPE_NAME,
                                         "an EC2 instance type such as m7i.xlarge or t3.medium")
        return found

    def create(self, loaded: LoadedConfig, over_internet: bool = False) -> Infrastructure:
        """`over_internet`: the nodes join a cluster over the public internet (PUBLIC_ADDRESS_COMMAND)."""
        return AwsInfrastructure("aws", loaded, over_internet=over_internet).infrastructure


class AwsInfrastructure(ProviderInfrastructure):
    """Everything AWS-side for one stack."""

    def __init__(self, name: str, loaded: LoadedConfig, opts: pulumi.ResourceOptions | None = None, *,
                 over_internet: bool = False):
        super().__init__("AwsInfrastructure", name, loaded, opts)
        cfg = loaded.config
        self._boot = (*BOOT_COMMANDS, *((PUBLIC_ADDRESS_COMMAND,) if over_internet else ()))
        self._cluster_tag = f"kubernetes.io/cluster/{self._prefix}"  # the CCM's cluster ownership tag
        self._tags = {"adplatform.io/stack": loaded.stack, self._cluster_tag: "owned"}
        self._region = aws_region() or ""
        self._vpc_cidr = vpc_cidr(cfg.cluster)
        self._public_api_group: aws.ec2.SecurityGroup | None = None  # the public API balancer's (_api_endpoints)

        specs = node_specs(loaded)
        # A cluster over the internet spans providers: the EBS driver and classes stay on this provider's nodes.
        # A secondary part (no K3s servers here, or only control-plane members moving here: secondary_part): no CCM,
        # no instance role, not the default class.
        self._hybrid = over_internet
        self._secondary = secondary_part(loaded)
        available = aws.get_availability_zones(
            state="available", filters=[aws.GetAvailabilityZonesFilterArgs(
                name="opt-in-status", values=["opt-in-not-required"])]).names  # no Local/Wavelength zones
        self._spread = cloud.spread(available, SPREAD_ZONES)
        self.zones = {spec.name: cloud.zone_of(spec, self._spread) for spec in specs}

        self.vpc, self.subnets = self._network(sorted(set(self.zones.values()) | self._autoscaled_zones(cfg.cluster)))
        self.security_group = self._security_group(cfg.admin_cidrs)
        self._key_pair = self._key_pairs(cfg.ssh_public_keys)
        self.image = cfg.cluster.image or self._ubuntu_ami()
        # A secondary part runs no CCM, no EBS controller on an instance role, no autoscaler: no role at all.
        profiles = {"server": None, "agent": None} if self._secondary else self._instance_profiles()
        nodes = [self._instance(spec, self._key_pair, profiles) for spec in specs]
        self._nodes = nodes
        self.infrastructure = assemble(
            nodes, self._api_endpoints([n for n in nodes if n.spec.k3s_role == "server"]),
            ClusterProfile(
                # The AWS CCM provides Service load balancers, the EBS CSI driver volumes.
                k3s_disable=("servicelb", "traefik", "local-storage"),
                external_cloud_provider=True,
                # VXLAN between instance addresses: pod CIDRs need no VPC routes (the CCM's route
                # controller is off) and the node security group's member rule carries the tunnel.
                cilium_values={"routingMode": "tunnel", "tunnelProtocol": "vxlan"},
                # The CCM turns the gateway's Service into an internet-facing NLB over every zone's subnet.
                load_balancer_annotations={
                    "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
                    "service.beta.kubernetes.io/aws-load-balancer-cross-zone-load-balancing-enabled": "true",
                    "service.beta.kubernetes.io/aws-load-balancer-additional-resource-tags":
                        f"adplatform.io/stack={loaded.stack}",
                },
                local_nvme=False,  # EBS root volumes; instance-store types are opt-in per pool
                compresses_user_data=True,  # the launch templates gzip it (install_node_groups)
                client_address=GATEWAY_CLIENT_ADDRESS,
                node_boot_commands=BOOT_COMMANDS,
                credentials_from_instance_metadata=True,  # the autoscaler: the control plane's instance role
            ),
            install_addons=self._install_ccm,
            install_storage=self._install_ebs_csi,
            install_node_groups=self._install_node_groups,
            install_seal=self._install_seal,
            # One Auto Scaling group per zone, never one over several: its AZRebalance would terminate nodes to
            # even out zones without draining them (cluster-autoscaler-1.36.1 cloudprovider/aws README "Common
            # Notes and Gotchas"), and a pending pod bound to a zonal EBS volume needs a group in that zone.
            unpinned_group_locations=self._spread,
            admit_peers=self._admit_peers,
        )
        self.register_outputs({"vpc_id": self.vpc.id, "security_group_id": self.security_group.id})

    def _named(self, name: str, **extra: str) -> dict[str, str]:
        return {**self._tags, "Name": f"{self._prefix}-{name}", **extra}

    def _node_tags(self, spec: NodeSpec) -> dict[str, str]:
        return self._named(spec.name, **{"adplatform.io/pool": spec.pool, "adplatform.io/role": spec.workload_role,
                                         "adplatform.io/k3s": spec.k3s_role})

    def _group_zones(self, location: str | None) -> list[str]:
        """A node group's zones: its own, or for an unpinned pool the zones its Pulumi-managed nodes spread over
        (the group balances its instances across them)."""
        return [location] if location else list(self._spread)

    def _autoscaled_zones(self, cluster: Cluster) -> set[str]:
        """Zones the autoscaled pools' groups may use: each needs its subnet even where no other node runs."""
        return {zone for pool in cluster.autoscaled_pools for i in range(len(pool.locations or [None]))
                for zone in self._group_zones(node_location(pool, i, cluster))}

    # --- network -----------------------------------------------------------------------------------

    def _network(self, zones: list[str]) -> tuple[aws.ec2.Vpc, dict[str, aws.ec2.Subnet]]:
        vpc = aws.ec2.Vpc("vpc", cidr_block=self._vpc_cidr, enable_dns_support=True, enable_dns_hostnames=True,
                          tags=self._named("vpc"), opts=self._opts(protect=True))
        gateway = aws.ec2.InternetGateway("internet-gateway", vpc_id=vpc.id, tags=self._named("igw"),
                                          opts=self._opts())
        routes = aws.ec2.RouteTable("route-table", vpc_id=vpc.id, tags=self._named("public"), routes=[
            aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=gateway.id)], opts=self._opts())
        subnets = {}
        for zone in zones:
            subnets[zone] = aws.ec2.Subnet(
                f"subnet-{zone}", vpc_id=vpc.id, availability_zone=zone,
                cidr_block=zone_subnet(self._loaded.config.cluster, zone), map_public_ip_on_launch=True,
                # The CCM places internet-facing load balancers in subnets with the elb role tag.
                tags=self._named(zone, **{"kubernetes.io/role/elb": "1"}), opts=self._opts(protect=True))
            aws.ec2.RouteTableAssociation(f"route-table-{zone}", subnet_id=subnets[zone].id, route_table_id=routes.id,
                                          opts=self._opts())
        return vpc, subnets

    def _security_group(self, admin_cidrs: Sequence[str]) -> aws.ec2.SecurityGroup:
        """The nodes' one security group (the CCM adds its NLB rules to the group with the cluster tag).

        Rules are separate resources, not inline: inline rules would make Pulumi revoke the CCM's.
        """
        group = aws.ec2.SecurityGroup("nodes", vpc_id=self.vpc.id, description=f"{self._prefix} cluster nodes",
                                      tags=self._named("nodes"), opts=self._opts())
        for rule in cloud.ingress_rules(admin_cidrs):
            low, high = rule.ports if rule.ports else (-1, -1)
            aws.vpc.SecurityGroupIngressRule(
                f"nodes-in-{rule.name}", security_group_id=group.id,
                ip_protocol="icmpv6" if rule.protocol == "icmp" and rule.ipv6 else rule.protocol,
                from_port=low, to_port=high, description=rule.description,
                cidr_ipv6=rule.cidr if rule.ipv6 else None, cidr_ipv4=None if rule.ipv6 else rule.cidr,
                opts=self._opts())
        # Everything between cluster members (VXLAN, WireGuard, etcd, kubelet, NodePorts), nothing else.
        aws.vpc.SecurityGroupIngressRule("nodes-in-members", security_group_id=group.id, ip_protocol="-1",
                                         referenced_security_group_id=group.id,
                                         description="all traffic between cluster members", opts=self._opts())
        for family, cidr in (("ipv4", "0.0.0.0/0"), ("ipv6", "::/0")):
            aws.vpc.SecurityGroupEgressRule(f"nodes-out-{family}", security_group_id=group.id, ip_protocol="-1",
                                            cidr_ipv4=cidr if family == "ipv4" else None,
                                            cidr_ipv6=cidr if family == "ipv6" else None,
                                            description="outbound: packages, images, APIs", opts=self._opts())
        return group

    def _admit_peers(self, rules: Sequence[tuple[ClusterPort, Sequence[PeerAddress]]],
                     hooks: pulumi.ResourceHookBinding) -> AdmittedPeers:
        """One ingress rule of the nodes' group per cluster port and peer address (a cluster over the public
        internet, providers/hybrid.py), named by port and peer node so adding a node adds its rules only. Each counts
        against the group's rule quota (INBOUND_RULES_PER_GROUP, checked in config by providers/hybrid.py).
        The API port's peers are the public API balancer's too (_admit_balancer_peer).
        Every rule admits one node alone and is deleted with it, after its drain (returned by node name): no rule is
        updated when a node leaves, so `hooks` bind to none."""
        found: dict[str, list[pulumi.Resource]] = {}
        for port, peers in rules:
            low, high = cloud.port_range(port) or (-1, -1)
            ports = "" if port.port is None else f"-{port.port}"
            for peer in peers:
                found.setdefault(peer.name, []).append(aws.vpc.SecurityGroupIngressRule(
                    f"nodes-in-peer-{port.protocol}{ports}-{peer.name}", security_group_id=self.security_group.id,
                    ip_protocol=port.protocol, from_port=low, to_port=high, cidr_ipv4=peer.cidr,
                    description=port.rule_description, opts=self._opts()))
            for peer in peers if _is_api_port(port) else ():
                found[peer.name] += self._admit_balancer_peer(port, peer)
        return AdmittedPeers(rules=tuple(r for each in found.values() for r in each), alone=found)

    def _admit_balancer_peer(self, port: ClusterPort, peer: PeerAddress) -> list[pulumi.Resource]:
        """The public API balancer admits each peer's address on 6443 besides the admin CIDRs, so every node may join
        through it (providers/hybrid.py join_endpoint). An NLB's security group filters on the client's address; the
        balancer then reaches the servers from its own (client IP preservation off), which the nodes' group admits
        from the balancer's group (_nlb). No public balancer: nothing to admit."""
        if self._public_api_group is None:
            return []
        return [aws.vpc.SecurityGroupIngressRule(
            f"api-public-lb-in-peer-{peer.name}", security_group_id=self._public_api_group.id, ip_protocol="tcp",
            from_port=API_PORT, to_port=API_PORT, cidr_ipv4=peer.cidr, description=port.rule_description,
            opts=self._opts())]

    # --- instances ---------------------------------------------------------------------------------

    def _key_pairs(self, public_keys: Sequence[str]) -> aws.ec2.KeyPair:
        """One EC2 key pair per key; an instance names one, cloud-init installs all of them."""
        pairs = [aws.ec2.KeyPair(f"ssh-{cloud.key_digest(key)}", key_name=f"{self._prefix}-{cloud.key_digest(key)}",
                                 public_key=key, tags=self._tags, opts=self._opts()) for key in public_keys]
        return pairs[0]

    def _ubuntu_ami(self) -> str:
        ami = aws.ec2.get_ami(owners=[CANONICAL_OWNER], most_recent=True, filters=[
            aws.ec2.GetAmiFilterArgs(name="name", values=[UBUNTU_AMI_NAME]),
            aws.ec2.GetAmiFilterArgs(name="architecture", values=["x86_64"]),
            aws.ec2.GetAmiFilterArgs(name="virtualization-type", values=["hvm"]),
            aws.ec2.GetAmiFilterArgs(name="root-device-type", values=["ebs"]),
        ])
        return ami.id

    def _install_seal(self, name: str) -> Seal:
        """OpenBao's auto-unseal key (KMS, rotated yearly by AWS; protected in production: without it the store's
        data is lost) and an IAM user whose access key may encrypt, decrypt and describe that key and nothing else.
        A user, not the instance role: a role on the nodes would be every pod's there."""
        key = aws.kms.Key(f"{name}-seal", description=f"{self._prefix} {name} auto-unseal", key_usage="ENCRYPT_DECRYPT",
                          enable_key_rotation=True, deletion_window_in_days=30, tags=self._tags,
                          opts=self._opts(protect=True))
        user = aws.iam.User(f"{name}-seal", name=_aws_name(f"{self._prefix}-{name}-seal", IAM_USER_NAME_LIMIT),
                            tags=self._tags, opts=self._opts())
        policy = aws.iam.UserPolicy(f"{name}-seal", user=user.name, policy=key.arn.apply(seal_policy),
                                    opts=self._opts())
        access = aws.iam.AccessKey(f"{name}-seal", user=user.name, opts=self._opts())
        return Seal("awskms", settings={"region": self._region, "kms_key_id": key.arn},
                    credentials={"access-key-id": access.id, "secret-access-key": access.secret},
                    env={"AWS_ACCESS_KEY_ID": "access-key-id", "AWS_SECRET_ACCESS_KEY": "secret-access-key"},
                    resources=(key, user, policy, access))

    def _instance_profiles(self) -> dict[str, aws.iam.InstanceProfile | None]:
        """Control plane: the CCM's and the EBS CSI controller's permissions (both run only there).
        Agents: no instance profile at all; the EBS node plugin reads what it needs from the node object."""
        assume = json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
        role = aws.iam.Role("control-plane-role", assume_role_policy=assume, tags=self._tags,
                            description=f"{self._prefix} control plane: cloud controller manager, EBS CSI controller",
                            opts=self._opts())
        aws.iam.RolePolicy("control-plane-ccm", role=role.id, policy=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": CCM_ACTIONS, "Resource": "*"}]}),
            opts=self._opts())
        aws.iam.RolePolicyAttachment("control-plane-ebs-csi", role=role.name, policy_arn=EBS_CSI_POLICY,
                                     opts=self._opts())
        profile = aws.iam.InstanceProfile("control-plane-profile", role=role.name, tags=self._tags, opts=self._opts())
        self._control_plane_role = role
        return {"server": profile, "agent": None}

    def _instance(self, spec: NodeSpec, key_pair: aws.ec2.KeyPair,
                  profiles: dict[str, aws.iam.InstanceProfile | None]) -> Node:
        hostname = f"{self._prefix}-{spec.name}"
        zone = self.zones[spec.name]
        spec = dataclasses.replace(spec, region=self._region, zone=zone)  # as the AWS CCM names them
        server = spec.k3s_role == "server"
        profile = profiles[spec.k3s_role]
        instance = aws.ec2.Instance(
            spec.name,
            ami=self.image,
            instance_type=resolve_server_type(spec, SERVER_TYPES),
            subnet_id=self.subnets[zone].id,
            vpc_security_group_ids=[self.security_group.id],
            associate_public_ip_address=True,
            key_name=key_pair.key_name,
            # "" rather than None for no profile: the attribute is Optional+Computed in terraform-provider-aws, so an
            # absent input keeps the old profile in state, and only "" makes an update disassociate it (the flip:
            # control-plane-1 loses the CCM's role in place).
            iam_instance_profile=profile.name if profile else "",
            user_data=cloud.cloud_config(self._loaded.config.ssh_public_keys, boot_commands=self._boot),
            root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
                volume_size=cloud.root_disk_gb(spec), volume_type=ROOT_VOLUME_TYPE, encrypted=True,
                delete_on_termination=True, tags=self._named(f"{spec.name}-root")),
            metadata_options=aws.ec2.InstanceMetadataOptionsArgs(**metadata_options(profile is not None)),
            disable_api_termination=self._protect,
            tags=self._node_tags(spec),
            opts=self._opts(
                protect=True,
                hooks=self._resize_hooks(spec, hostname, POWER_OFF_INPUTS, output_path("publicIp"), cloud.SSH_USER),
                depends_on=[self.subnets[zone]],
                delete_before_replace=True,  # K3s node names are unique: the old node drains and goes first
                # A new AMI or key list reaches new instances only: changing either would replace or
                # restart running nodes (new keys reach existing ones by remote command).
                ignore_changes=["ami", "userData", "keyName"],
            ),
        )
        return Node(spec=spec, hostname=hostname, public_ip=instance.public_ip, private_ip=instance.private_ip,
                    connection=ssh_connection(self._loaded, spec.name, instance.public_ip, cloud.SSH_USER, parent=self,
                                              machine=instance),
                    server=instance, machine=instance)

    # --- autoscaled node groups ----------------------------------------------------------------------

    def _install_node_groups(self, requests: Sequence[NodeGroupRequest], provider: k8s.Provider,
                             depends_on: Sequence[pulumi.Resource], parent: pulumi.Resource) -> NodeGroups:
        """An Auto Scaling group per request, and the autoscaler's rights on the control-plane role."""
        opts = self._opts(depends_on=list(depends_on))
        # The launch template sizes the AMI's own root device (Canonical's Ubuntu: /dev/sda1; cluster.image may differ).
        root_device = aws.ec2.get_ami_output(filters=[aws.ec2.GetAmiFilterArgs(
            name="image-id", values=[self.image])]).root_device_name
        resources: list[pulumi.Resource] = [aws.iam.RolePolicy(
            "control-plane-autoscaler", role=self._control_plane_role.id,
            policy=json.dumps(autoscaler_policy(self._prefix)), opts=opts)]
        for request in requests:
            resources += self._node_group(request, root_device, opts)
        return NodeGroups(resources=resources, autoscaler_values=autoscaler_values(self._region, self._prefix))

    def _node_group(self, request: NodeGroupRequest, root_device: pulumi.Output[str],
                    opts: pulumi.ResourceOptions) -> list[pulumi.Resource]:
        """A launch template with the agents' settings (AMI, security group, key, IMDSv2 with hop limit 1 and no
        instance profile, encrypted gp3 root volume) and the request's user data, and its Auto Scaling group.
        The autoscaler owns the group's desired capacity; Pulumi its bounds."""
        spec = request.spec
        template = aws.ec2.LaunchTemplate(
            f"group-{request.name}", name=f"{self._prefix}-{request.name}", image_id=self.image,
            instance_type=resolve_server_type(spec, SERVER_TYPES), key_name=self._key_pair.key_name,
            vpc_security_group_ids=[self.security_group.id],  # public IPs: the subnets map one on launch
            # base64 of a secret stays secret: the join token never shows in plain text in state. Gzipped: EC2 takes
            # 16 KB of user data before base64 and cloud-init reads gzip itself (its user data formats: compressed
            # content); the document holds its scripts as text for it (ClusterProfile.compresses_user_data).
            user_data=request.user_data.apply(
                lambda text: base64.b64encode(gzip.compress(text.encode(), mtime=0)).decode()),
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(**metadata_options(role=False)),
            block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name=root_device, ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    volume_size=cloud.root_disk_gb(spec), volume_type=ROOT_VOLUME_TYPE, encrypted="true",
                    delete_on_termination="true"))],
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type="instance", tags=self._node_tags(spec)),
                aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type="volume",
                                                           tags=self._named(f"{request.name}-root"))],
            update_default_version=True, tags=self._tags, opts=opts)
        tags = {**self._named(request.name), **group_tags(self._prefix, cloud.node_template(request))}
        group = aws.autoscaling.Group(
            f"group-{request.name}", name=f"{self._prefix}-{request.name}", min_size=request.min_size,
            max_size=request.max_size, vpc_zone_identifiers=[self.subnets[z].id for z in self._group_zones(request.location)],
            # New instances take the newest template version; running ones stay until the autoscaler removes them.
            launch_template=aws.autoscaling.GroupLaunchTemplateArgs(id=template.id, version="$Latest"),
            tags=[aws.autoscaling.GroupTagArgs(key=k, value=v, propagate_at_launch=False) for k, v in tags.items()],
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(ignore_changes=["desiredCapacity"])))
        return [template, group]

    # --- Kubernetes API load balancer ----------------------------------------------------------------

    def _api_endpoints(self, servers: list[Node]) -> ApiEndpoints:
        lb_cfg = self._loaded.config.cluster.api_load_balancer
        if not lb_cfg.enabled:
            return first_server_api(servers)
        # Internal: the nodes join through it (Cilium uses each node's local endpoint), sources limited to the VPC.
        internal, _group = self._nlb("api", servers, internal=True, sources=[self._vpc_cidr])
        if not lb_cfg.public:
            return ApiEndpoints(private=internal.dns_name, public=servers[0].public_ip, balancers=(internal.dns_name,))
        # Public: a second NLB whose security group admits the admin CIDRs, and over the internet the cluster's nodes
        # (_admit_balancer_peer).
        public, self._public_api_group = self._nlb("api-public", servers, internal=False,
                                                   sources=self._loaded.config.admin_cidrs)
        return ApiEndpoints(private=internal.dns_name, public=public.dns_name,
                            balancers=(internal.dns_name, public.dns_name))

    def _nlb(self, name: str, servers: list[Node], *, internal: bool, sources: Sequence[str]
             ) -> tuple[aws.lb.LoadBalancer, aws.ec2.SecurityGroup]:
        """A TCP NLB for 6443 with its own security group (returned too); the nodes admit 6443 from that group only.

        Client IPs are not preserved: a server that joins through the NLB may be routed to itself, which
        fails with client IP preservation (NLB hairpinning), and the NLB's group then stands for all clients.
        """
        group = aws.ec2.SecurityGroup(f"{name}-lb", vpc_id=self.vpc.id, description=f"{self._prefix} {name} NLB",
                                      tags={"adplatform.io/stack": self._loaded.stack, "Name": f"{self._prefix}-{name}"},
                                      opts=self._opts())
        for cidr in sources:
            v6 = ipaddress.ip_network(cidr).version == 6
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-lb-in-{cloud.cidr_slug(cidr)}", security_group_id=group.id,
                ip_protocol="tcp", from_port=API_PORT, to_port=API_PORT, description="Kubernetes API",
                cidr_ipv4=None if v6 else cidr, cidr_ipv6=cidr if v6 else None, opts=self._opts())
        aws.vpc.SecurityGroupEgressRule(f"{name}-lb-out", security_group_id=group.id, ip_protocol="tcp",
                                        from_port=API_PORT, to_port=API_PORT,
                                        referenced_security_group_id=self.security_group.id,
                                        description="to the API servers (traffic and health checks)", opts=self._opts())
        aws.vpc.SecurityGroupIngressRule(f"nodes-in-{name}-lb", security_group_id=self.security_group.id,
                                         ip_protocol="tcp", from_port=API_PORT, to_port=API_PORT,
                                         referenced_security_group_id=group.id,
                                         description=f"Kubernetes API through the {name} NLB", opts=self._opts())
        lb = aws.lb.LoadBalancer(
            name, name=_aws_name(f"{self._prefix}-{name}"), load_balancer_type="network", internal=internal,
            subnets=[s.id for s in self.subnets.values()], security_groups=[group.id],
            enable_cross_zone_load_balancing=True, enable_deletion_protection=self._protect,
            tags=self._tags, opts=self._opts())
        targets = aws.lb.TargetGroup(
            f"{name}-6443", name=_aws_name(f"{self._prefix}-{name}-6443"), port=API_PORT, protocol="TCP",
            target_type="instance", vpc_id=self.vpc.id, preserve_client_ip="false",
            health_check=aws.lb.TargetGroupHealthCheckArgs(protocol="TCP", port="traffic-port", interval=10,
                                                           healthy_threshold=3, unhealthy_threshold=3),
            tags=self._tags, opts=self._opts())
        aws.lb.Listener(f"{name}-6443", load_balancer_arn=lb.arn, port=API_PORT, protocol="TCP",
                        default_actions=[aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=targets.arn)],
                        tags=self._tags, opts=self._opts())
        for node in servers:
            aws.lb.TargetGroupAttachment(f"{name}-{node.name}", target_group_arn=targets.arn, target_id=node.server.id,
                                         port=API_PORT, opts=self._opts())
        return lb, group

    # --- cluster add-ons -----------------------------------------------------------------------------

    def _install_ccm(self, provider: k8s.Provider, depends_on: Sequence[pulumi.Resource],
                     parent: pulumi.Resource) -> list[pulumi.Resource]:
        """The AWS cloud controller manager: node initialisation (provider ID, zones, addresses), NLBs (unless the
        gateway's Service is handed to the provider the control plane moves to: ControlPlaneMove.gateway_balancer)."""
        opts = pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=list(depends_on))
        move = self._loaded.config.cluster.control_plane.move
        serves = move is None or move.gateway_balancer == "old"
        return [release("aws-ccm", AWS_CCM, ccm_values(self._prefix, serve_balancers=serves), opts)]

    def _install_ebs_csi(self, provider: k8s.Provider, depends_on: Sequence[pulumi.Resource],
                         parent: pulumi.Resource) -> Storage:
        """EBS gp3 volumes through the CSI driver: encrypted (EBS encryption, the account's aws/ebs key),
        expandable, the default class and its XFS twin; production keeps a volume when its claim is deleted.

        In a cluster spanning providers the driver runs on AWS nodes only and the classes name only their zones
        (EBS_ZONE_KEY), so no pod with an EBS claim is scheduled where the volume cannot attach; a secondary part's
        controller uses an access key of its own (_ebs_csi_credential) and its classes are not the default."""
        opts = pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=list(depends_on))
        credential = self._ebs_csi_credential(opts) if self._secondary else []
        csi = release("aws-ebs-csi", AWS_EBS_CSI, ebs_csi_values(
            self._region, self._prefix, self._loaded.stack, self._loaded.profile.strict,
            hybrid=self._hybrid, secondary=self._secondary),
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=credential)))
        # fstype ext4 or xfs (aws-ebs-csi-driver helm-chart-aws-ebs-csi-driver-2.64.0 docs/parameters.md).
        return csi_storage(STORAGE_CLASS, EBS_PROVISIONER,
                           {"type": "gp3", "encrypted": "true", "csi.storage.k8s.io/fstype": "ext4"},
                           retain=self._protect, driver=[*credential, csi], opts=opts,
                           allowed_topologies=zone_topology(EBS_ZONE_KEY, list(self.zones.values()))
                           if self._hybrid else None, default=holds_default_class(self._loaded))

    def _ebs_csi_credential(self, opts: pulumi.ResourceOptions) -> list[pulumi.Resource]:
        """The EBS CSI controller's rights on a secondary part: exactly the control-plane role's (EBS_CSI_POLICY,
        _instance_profiles), on an IAM user of its own whose key only the controller reads (EBS_CSI_SECRET). Not an
        instance role on the agents: a role there would need IMDS hop limit 2 for the controller's pod network,
        which would hand the role to every pod on them (metadata_options)."""
        user = aws.iam.User("ebs-csi", name=_aws_name(f"{self._prefix}-ebs-csi", IAM_USER_NAME_LIMIT),
                            tags=self._tags, opts=self._opts())
        policy = aws.iam.UserPolicyAttachment("ebs-csi", user=user.name, policy_arn=EBS_CSI_POLICY, opts=self._opts())
        access = aws.iam.AccessKey("ebs-csi", user=user.name, opts=self._opts())
        secret = k8s.core.v1.Secret(
            "aws-ebs-csi-credential",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=EBS_CSI_SECRET["name"], namespace=AWS_EBS_CSI.namespace,
                                                labels=EXCLUDE_FROM_BACKUP),
            string_data={EBS_CSI_SECRET["keyId"]: access.id, EBS_CSI_SECRET["accessKey"]: access.secret},
            type="Opaque", opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[policy])))
        return [user, policy, access, secret]


# AWS servers only: while the control plane moves, other providers' members are servers too, without the instance role.
_AWS_SERVERS = {**CONTROL_PLANE_SELECTOR, PROVIDER_LABEL: NAME}
_CONTROL_PLANE_TOLERATIONS = [
    {"key": "CriticalAddonsOnly", "operator": "Exists"},  # dedicated servers (config: controlPlane.dedicated)
    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
]


def metadata_options(role: bool) -> dict:
    """IMDSv2 only. A hop limit of 2 lets pods on the control plane (the EBS CSI controller, the autoscaler) reach
    the instance `role`; nodes without one (agents, a secondary part's servers) keep 1, so no pod there can read
    instance data (user data included)."""
    return {"http_endpoint": "enabled", "http_tokens": "required", "http_put_response_hop_limit": 2 if role else 1}


def ccm_values(cluster_name: str, *, serve_balancers: bool = True) -> dict:
    """aws-cloud-controller-manager chart values (chart 0.0.11 values.yaml): one replica per server.
    `serve_balancers` False: without the service controller (k8s.io/cloud-provider v0.35 names.ServiceLBController,
    alias `service`; `*` is every controller on by default): no Service's balancer is built, changed or deleted, so
    the NLBs it built stay as they are, forwarding to the instances they target."""
    controllers = [] if serve_balancers else ["--controllers=*,-service"]
    return {
        "args": ["--v=2", "--cloud-provider=aws", f"--cluster-name={cluster_name}",
                 # Pod CIDRs come from K3s and ride Cilium's tunnel: no VPC routes to manage.
                 "--configure-cloud-routes=false", *controllers],
        # The chart's default selector value "" misses K3s' "true"; its tolerations miss CriticalAddonsOnly. AWS servers
        # only: while the control plane moves, other providers' members are servers too, without the instance role.
        "nodeSelector": _AWS_SERVERS,
        "tolerations": [{"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true",
                         "effect": "NoSchedule"}, {"key": "node.kubernetes.io/not-ready", "operator": "Exists"},
                        *_CONTROL_PLANE_TOLERATIONS],
        # Host network: runs before any node is initialised, and reaches IMDS like the host.
        "hostNetworking": True,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
    }


def ebs_csi_values(region: str, cluster_id: str, stack: str, ha: bool, *, hybrid: bool = False,
                   secondary: bool = False) -> dict:
    """aws-ebs-csi-driver chart values (chart 2.64.0 values.yaml). `hybrid`: the cluster spans providers, so the
    node plugin runs on AWS nodes only; `secondary`: AWS is not the stack's provider (no CCM, no K3s servers here)."""
    values = {
        "controller": {
            "region": region,  # not looked up through IMDS
            "replicaCount": 2 if ha else 1,
            # The controller's AWS credentials are the control plane's instance role: AWS servers only (while the
            # control plane moves, other providers' members are servers too, without it).
            "nodeSelector": _AWS_SERVERS,
            "tolerations": _CONTROL_PLANE_TOLERATIONS,
            "podDisruptionBudget": {"enabled": ha},
            "k8sTagClusterId": cluster_id,
            "extraVolumeTags": {"adplatform.io/stack": stack},
            "resources": {"requests": {"cpu": "10m", "memory": "40Mi"}, "limits": {"memory": "256Mi"}},
        },
        "node": {
            # Zone and instance id from the node object the CCM initialised, not from IMDS (which the
            # agents' hop limit keeps from pods).
            "metadataSources": "kubernetes",
            "tolerateAllTaints": True,  # volumes attach on tainted database pools too
            "enableWindows": False,
        },
        # Our own StorageClass (above): encrypted, reclaim policy per environment.
        "storageClasses": [],
        "defaultStorageClass": {"enabled": False},
        "helmTester": {"enabled": False},
    }
    if hybrid:
        values["node"]["nodeSelector"] = {PROVIDER_LABEL: NAME}  # EBS volumes attach to EC2 instances only
    if secondary:
        # No K3s server runs on AWS here: the controller runs on the AWS agents (any of their pools) with its own
        # key, from the Secret EBS_CSI_SECRET names (the chart's default awsAccessSecret: AWS_ACCESS_KEY_ID/...)
        values["controller"].update(secondary_controller_placement(NAME))
        # No AWS CCM sets the node's providerID, which the `kubernetes` source parses for the instance id
        # (v1.64.0 pkg/cloud/metadata/k8s.go parseProviderID): the plugin asks IMDS for instance id and zone, from
        # the host's network (node.hostNetwork) so the agents' hop limit of 1 still keeps IMDS from pods.
        values["node"].update(metadataSources="imds", hostNetwork=True)
    return values
