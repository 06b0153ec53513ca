"""The AWS provider: VPC across zones, security groups from PORTS, instances, disks, AMI, API NLB, CCM, EBS CSI."""

from __future__ import annotations

import base64
import gzip
import json
from collections import Counter
from typing import Any

import pytest
import yaml

from components.charts import AWS_CCM, AWS_EBS_CSI
from config.catalog import SIZES
from config.model import Cluster
from providers import aws, get
from providers.base import PORTS
from tests.cloud_stacks import (AWS_PRODUCTION_CLUSTER, AWS_REGION, autoscaled_general, FAKE_USER_DATA, NodeGroupRun,
                                assert_block_storage, config_problems, gateway_client_address, run_node_groups, stack_fixtures)
from tests.conftest import base_raw, k3s_config
from tools import mockrun
from tools.mockrun import FAKE_UBUNTU_AMI

INSTANCE = "aws:ec2/instance:Instance"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
RELEASE = "kubernetes:helm.sh/v3:Release"
REGION = AWS_REGION
PINNED_IMAGE = AWS_PRODUCTION_CLUSTER["image"]


# The staging stack file, and the production profile with a pinned AMI, a public API NLB and one pool
# pinned to a zone.
staging, production = stack_fixtures("staging-aws", "aws", REGION, AWS_PRODUCTION_CLUSTER)


def by_pool(run: mockrun.Run) -> Counter:
    return Counter(r.inputs["tags"]["adplatform.io/pool"] for r in run.of_type(INSTANCE))


def node_group(run: mockrun.Run) -> mockrun.Resource:
    return run.named("nodes", "aws:ec2/securityGroup:SecurityGroup")


# --- network -----------------------------------------------------------------------------------------

def test_vpc_with_a_public_subnet_per_zone(staging):
    vpc = staging.named("vpc", "aws:ec2/vpc:Vpc")
    assert vpc.inputs["cidrBlock"] == "10.0.0.0/16", "a /16 around cluster.subnetCidr (AWS allows no /8)"
    subnets = {r.inputs["availabilityZone"]: r for r in staging.of_type("aws:ec2/subnet:Subnet")}
    assert {z: s.inputs["cidrBlock"] for z, s in subnets.items()} == {
        "eu-central-1a": "10.0.1.0/24", "eu-central-1b": "10.0.2.0/24", "eu-central-1c": "10.0.3.0/24"}
    for subnet in subnets.values():
        assert subnet.inputs["mapPublicIpOnLaunch"] is True
        assert subnet.inputs["tags"]["kubernetes.io/role/elb"] == "1", "the CCM puts public NLBs here"
        assert subnet.inputs["tags"]["kubernetes.io/cluster/adp-staging-aws"] == "owned"
    (table,) = staging.of_type("aws:ec2/routeTable:RouteTable")
    (gateway,) = staging.of_type("aws:ec2/internetGateway:InternetGateway")
    (route,) = table.inputs["routes"]
    assert route["cidrBlock"] == "0.0.0.0/0" and gateway.urn in table.dependencies
    associations = staging.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
    assert len(associations) == 3 and all(a.inputs["routeTableId"] for a in associations)


def test_zone_subnets_follow_the_zone_letter():
    c = Cluster()
    assert [aws.zone_subnet(c, f"us-east-1{z}") for z in "acf"] == ["10.0.1.0/24", "10.0.3.0/24", "10.0.6.0/24"]
    assert aws.vpc_cidr(Cluster(networkCidr="10.8.0.0/16", subnetCidr="10.8.4.0/24")) == "10.8.0.0/16"


# --- firewall ------------------------------------------------------------------------------------------

def test_only_80_and_443_are_open_to_the_world(staging):
    group = node_group(staging)
    node_rules = [r for r in staging.of_type(INGRESS) if r.name.startswith("nodes-in-")]
    world = {(r.inputs["ipProtocol"], r.inputs["fromPort"]) for r in node_rules
             if r.inputs.get("cidrIpv4") == "0.0.0.0/0" or r.inputs.get("cidrIpv6") == "::/0"}
    assert world == {("tcp", 80), ("tcp", 443)}
    assert "ingress" not in group.inputs, "separate rule resources: Pulumi never revokes the CCM's own rules"


def test_admin_ports_only_from_admin_cidrs(staging):
    admin = [r for r in staging.of_type(INGRESS) if r.name.startswith("nodes-in-") and r.inputs.get("fromPort") in (22, 6443, -1)
             and (r.inputs.get("cidrIpv4") or r.inputs.get("cidrIpv6"))]
    assert {(r.inputs["ipProtocol"], r.inputs["fromPort"]) for r in admin} == {("tcp", 22), ("tcp", 6443), ("icmp", -1)}
    assert {r.inputs.get("cidrIpv4") for r in admin} == {"203.0.113.0/24"}
    expected = {(p.protocol, int(p.port) if p.port else -1) for p in PORTS}
    cidr_rules = {(r.inputs["ipProtocol"], r.inputs["fromPort"]) for r in staging.of_type(INGRESS)
                  if r.name.startswith("nodes-in-") and (r.inputs.get("cidrIpv4") or r.inputs.get("cidrIpv6"))}
    assert cidr_rules == expected, "exactly the PORTS specification, nothing else from addresses"


def test_members_reach_each_other_on_every_port(staging):
    group = node_group(staging)
    members = staging.named("nodes-in-members", INGRESS)
    assert members.inputs["ipProtocol"] == "-1"
    assert members.inputs["referencedSecurityGroupId"] == members.inputs["securityGroupId"]
    assert group.inputs["tags"]["kubernetes.io/cluster/adp-staging-aws"] == "owned", "the CCM's node group"


# --- instances ------------------------------------------------------------------------------------------

def test_instance_count_per_pool_and_zone_spread(staging):
    assert by_pool(staging) == {"control-plane": 3, "general": 2, "scylladb": 1, "redpanda": 1, "clickhouse": 1,
                                "stateful": 1}
    zone_of_subnet = {r.urn: r.inputs["availabilityZone"] for r in staging.of_type("aws:ec2/subnet:Subnet")}
    zones = {}
    for instance in staging.of_type(INSTANCE):
        subnet = next(d for d in instance.dependencies if "aws:ec2/subnet:Subnet" in d)
        zones[instance.name] = zone_of_subnet[subnet]
    assert {zones[f"control-plane-{i}"] for i in (1, 2, 3)} == {"eu-central-1a", "eu-central-1b", "eu-central-1c"}
    assert (zones["general-1"], zones["general-2"]) == ("eu-central-1a", "eu-central-1b")


def test_pinned_pool_stays_in_its_zone(production):
    subnet = production.named("subnet-eu-central-1b", "aws:ec2/subnet:Subnet")
    for instance in production.of_type(INSTANCE):
        if instance.inputs["tags"]["adplatform.io/pool"] == "stateful":
            assert subnet.urn in instance.dependencies


def test_root_disks_are_encrypted_gp3_sized_per_class(staging, production):
    for run in (staging, production):
        for r in run.of_type(INSTANCE):
            disk = r.inputs["rootBlockDevice"]
            assert disk["encrypted"] is True and disk["volumeType"] == "gp3"
    sizes = {r.name: r.inputs["rootBlockDevice"]["volumeSize"] for r in staging.of_type(INSTANCE)}
    assert sizes["control-plane-1"] == 40 and sizes["general-1"] == 60  # small, medium
    assert {r.inputs["rootBlockDevice"]["volumeSize"] for r in production.of_type(INSTANCE)
            if r.inputs["tags"]["adplatform.io/pool"] == "scylladb"} == {150}  # dedicated-xlarge


def test_instance_types_per_size_class(staging, production):
    assert set(get("aws").server_types) == set(SIZES)
    assert {r.inputs["instanceType"] for r in staging.of_type(INSTANCE)} <= {"t3.medium", "t3.xlarge"}
    assert all(r.inputs["instanceType"].startswith("m7i.") for r in production.of_type(INSTANCE)), \
        "dedicated classes: non-burstable instances"


def test_ubuntu_ami_from_canonical_lookup_and_override(staging, production):
    assert {r.inputs["ami"] for r in staging.of_type(INSTANCE)} == {FAKE_UBUNTU_AMI}, \
        "resolved by Canonical's owner id and the noble server name (the mock answers only that query)"
    assert {r.inputs["ami"] for r in production.of_type(INSTANCE)} == {PINNED_IMAGE}
    for r in staging.of_type(INSTANCE):
        assert {"ami", "userData"} <= set(r.options["ignoreChanges"]), "new images and keys never replace nodes"


def test_imds_v2_and_instance_roles(staging):
    for r in staging.of_type(INSTANCE):
        server = r.inputs["tags"]["adplatform.io/k3s"] == "server"
        assert r.inputs["metadataOptions"]["httpTokens"] == "required"
        assert r.inputs["metadataOptions"]["httpPutResponseHopLimit"] == (2 if server else 1), \
            "only control-plane pods (the EBS CSI controller) may reach the instance role"
        # No profile is "" (an absent input would keep an old profile in state: aws.py).
        assert bool(r.inputs.get("iamInstanceProfile")) == server, "agents carry no AWS credentials at all"
    policy = json.loads(staging.named("control-plane-ccm", "aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    actions = policy["Statement"][0]["Action"]
    assert "elasticloadbalancing:CreateLoadBalancer" in actions
    assert not [a for a in actions if a in ("ec2:CreateRoute", "ec2:DeleteRoute", "ec2:AttachVolume", "ec2:DeleteVolume")]
    ebs = staging.named("control-plane-ebs-csi", "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert ebs.inputs["policyArn"] == aws.EBS_CSI_POLICY


# Every Network Load Balancer call cloud-provider-aws v1.35.0 makes (pkg/providers/v1/aws_loadbalancer.go and aws.go:
# `c.elbv2.<Call>`), read at the tag: the gateway's Service is an NLB with target-group attributes, which takes the
# Describe before the Modify (reconcileTargetGroupsAttributes); a call missing from the policy fails every sync.
CCM_NLB_CALLS = ("CreateListener", "CreateLoadBalancer", "CreateTargetGroup", "DeleteListener", "DeleteLoadBalancer",
                 "DeleteTargetGroup", "DeregisterTargets", "DescribeListeners", "DescribeLoadBalancerAttributes",
                 "DescribeLoadBalancers", "DescribeTargetGroupAttributes", "DescribeTargetGroups",
                 "DescribeTargetHealth", "ModifyListener", "ModifyLoadBalancerAttributes", "ModifyTargetGroup",
                 "ModifyTargetGroupAttributes", "RegisterTargets")


def test_the_ccm_may_make_every_load_balancer_call_it_makes_for_the_gateway(staging):
    policy = json.loads(staging.named("control-plane-ccm", "aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    actions = set(policy["Statement"][0]["Action"])
    assert "service.beta.kubernetes.io/aws-load-balancer-target-group-attributes" in \
        aws.GATEWAY_CLIENT_ADDRESS.annotations, "the calls below include the attributes' reconciliation"
    assert {f"elasticloadbalancing:{call}" for call in CCM_NLB_CALLS} <= actions


def test_ebs_csi_policy_is_the_arn_aws_publishes(staging):
    # AWS Managed Policy reference, AmazonEBSCSIDriverPolicyV2 (read 2026-11): type "AWS managed policy",
    # ARN at the root path. Only V1 (a service-role policy) lives under `service-role/`; attaching V2 by
    # that path fails with NoSuchEntity.
    ebs = staging.named("control-plane-ebs-csi", "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert ebs.inputs["policyArn"] == "arn:aws:iam::aws:policy/AmazonEBSCSIDriverPolicyV2"


def test_cloud_init_installs_every_key_and_the_provider_id(staging):
    data = staging.named("general-1", INSTANCE).inputs["userData"]
    doc = yaml.safe_load(data)
    assert data.startswith("#cloud-config\n")
    assert doc["ssh_authorized_keys"] == [base_raw()["sshPublicKeys"][0].replace("test@example.com", "ops@example.com")]
    ((shell, flag, command),) = doc["bootcmd"]
    assert (shell, flag) == ("sh", "-c")
    assert "/etc/rancher/k3s/config.yaml.d/" in command and "kubelet-arg+:" in command, \
        "a K3s drop-in appends the provider ID to the kubelet arguments the install script writes"
    assert "provider-id=aws:///%s/%s" in command
    assert '"$(cloud-init query v1.availability_zone)" "$(cloud-init query v1.instance_id)"' in command


def test_k3s_runs_with_the_external_cloud_provider(staging):
    cfg = k3s_config(staging, "control-plane-1")
    assert cfg["disable-cloud-controller"] is True
    assert "cloud-provider=external" in cfg["kubelet-arg"]
    assert {"servicelb", "local-storage"} <= set(cfg["disable"])


def test_ssh_as_the_ubuntu_user(staging):
    tune = staging.named("tune-control-plane-1", "command:remote:Command")
    connection = tune.inputs["connection"]
    assert getattr(connection, "value", connection)["user"] == "ubuntu"


# --- API load balancer ----------------------------------------------------------------------------------

def test_internal_api_nlb_fronts_the_servers(staging):
    (lb,) = staging.of_type("aws:lb/loadBalancer:LoadBalancer")
    assert lb.inputs["internal"] is True and lb.inputs["loadBalancerType"] == "network"
    assert len(lb.inputs["subnets"]) == 3
    (group,) = staging.of_type("aws:lb/targetGroup:TargetGroup")
    assert group.inputs["port"] == 6443 and group.inputs["preserveClientIp"] == "false"
    assert group.inputs["healthCheck"]["protocol"] == "TCP"
    assert len(staging.of_type("aws:lb/targetGroupAttachment:TargetGroupAttachment")) == 3
    lb_in = staging.named("nodes-in-api-lb", INGRESS)
    assert lb_in.inputs["fromPort"] == 6443 and lb_in.inputs["referencedSecurityGroupId"], \
        "the nodes admit 6443 from the NLB's security group, not from an address range"
    assert k3s_config(staging, "general-1")["server"].startswith("https://internal-adp-staging-aws-api-")


def test_public_api_nlb_admits_only_admin_cidrs(production):
    balancers = {r.name: r for r in production.of_type("aws:lb/loadBalancer:LoadBalancer")}
    assert balancers["api"].inputs["internal"] is True and balancers["api-public"].inputs["internal"] is False
    public_in = [r for r in production.of_type(INGRESS) if r.name.startswith("api-public-lb-in-")]
    assert [(r.inputs.get("cidrIpv4"), r.inputs["fromPort"]) for r in public_in] == [("203.0.113.0/24", 6443)]
    assert production.outputs["apiEndpoint"].startswith("https://adp-production-aws-api-public-")


# --- cluster add-ons ------------------------------------------------------------------------------------

def test_cloud_controller_manager(staging):
    ccm = staging.named("aws-ccm", RELEASE).inputs
    assert (ccm["chart"], ccm["version"], ccm["repositoryOpts"]["repo"]) == (AWS_CCM.chart, AWS_CCM.version, AWS_CCM.repo)
    values = ccm["values"]
    # K3s labels servers 'true'; AWS servers only (a moving control plane's other members have no instance role).
    assert values["nodeSelector"] == {"node-role.kubernetes.io/control-plane": "true", "adplatform.io/provider": "aws"}
    assert {"key": "CriticalAddonsOnly", "operator": "Exists"} in values["tolerations"]
    assert values["hostNetworking"] is True
    assert "--configure-cloud-routes=false" in values["args"], "pods ride Cilium's tunnel, not VPC routes"


def test_ebs_csi_default_storage_class_and_its_xfs_twin(staging, production):
    for run, reclaim in ((staging, "Delete"), (production, "Retain")):
        params = assert_block_storage(run, "ebs-gp3", "ebs.csi.aws.com", reclaim=reclaim, driver="aws-ebs-csi")
        assert params["encrypted"] == "true" and params["type"] == "gp3", "encrypted gp3, XFS ones too"
    csi = staging.named("aws-ebs-csi", RELEASE)
    assert csi.inputs["version"] == AWS_EBS_CSI.version
    values = csi.inputs["values"]
    assert values["controller"]["region"] == "eu-central-1"
    assert values["controller"]["nodeSelector"] == {"node-role.kubernetes.io/control-plane": "true",
                                                    "adplatform.io/provider": "aws"}
    assert values["node"]["metadataSources"] == "kubernetes" and values["node"]["tolerateAllTaints"] is True
    assert values["storageClasses"] == [] and values["defaultStorageClass"] == {"enabled": False}
    assert production.named("aws-ebs-csi", RELEASE).inputs["values"]["controller"]["replicaCount"] == 2


def test_gateway_gets_an_nlb(staging):
    gateway = staging.named("gateway-shared")
    annotations = gateway.inputs["spec"]["infrastructure"]["annotations"]
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-type"] == "nlb"


def test_gateway_nlb_sends_proxy_protocol_v2_and_the_listeners_expect_it(staging):
    values, annotations = gateway_client_address(staging)
    # cloud-provider-aws v1.35 applies PROXY protocol to an NLB only through target group attributes (its
    # `aws-load-balancer-proxy-protocol` annotation is read for Classic ELBs alone).
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-target-group-attributes"] == (
        "preserve_client_ip.enabled=false,proxy_protocol_v2.enabled=true")
    assert "service.beta.kubernetes.io/aws-load-balancer-proxy-protocol" not in annotations
    assert values["enableProxyProtocol"] is True and values["externalTrafficPolicy"] == "Cluster"
    assert values["xffNumTrustedHops"] == 0


# --- protection -----------------------------------------------------------------------------------------

def test_production_protects_instances_and_network(production, staging):
    for r in production.of_type(INSTANCE):
        assert r.protect and r.inputs["disableApiTermination"] is True
    assert production.named("vpc", "aws:ec2/vpc:Vpc").protect
    assert all(r.protect for r in production.of_type("aws:ec2/subnet:Subnet"))
    assert all(lb.inputs["enableDeletionProtection"] for lb in production.of_type("aws:lb/loadBalancer:LoadBalancer"))
    assert not any(r.protect for r in staging.of_type(INSTANCE))


# --- validation -----------------------------------------------------------------------------------------

def _problems(raw: dict[str, Any], settings: dict[str, str] = REGION) -> list[str]:
    return config_problems(raw, settings)


def test_region_must_be_set():
    (msg,) = _problems(base_raw(provider="aws"), settings={})
    assert msg.startswith("aws:region must be set to the stack's AWS region (pulumi config set aws:region")


def test_location_must_be_a_zone_of_the_region():
    msgs = _problems(base_raw(provider="aws", cluster={"location": "us-east-1a",
                                                       "pools": [{"name": "general", "location": "eu-central-1"}]}))
    assert msgs == [
        "adplatform:cluster.location must be an availability zone of aws:region eu-central-1 "
        "(eu-central-1a, eu-central-1b, ...), got 'us-east-1a'",
        "adplatform:cluster.pools[general].location must be an availability zone of aws:region eu-central-1 "
        "(eu-central-1a, eu-central-1b, ...), got 'eu-central-1'"]


def test_pods_must_not_overlap_the_vpc():
    (msg,) = _problems(base_raw(provider="aws", cluster={"networkCidr": "10.0.0.0/16", "subnetCidr": "10.0.1.0/24",
                                                         "podCidr": "10.0.128.0/17"}))
    assert msg.startswith("adplatform:cluster.podCidr must not overlap the AWS VPC network 10.0.0.0/16")


def test_server_type_of_another_providers_shape_is_refused_before_any_resource():
    msgs = _problems(base_raw(provider="aws", cluster={"pools": [{"name": "general", "serverType": "ccx33"},
                                                                 {"name": "stateful", "serverType": "m7i.2xlarge"}]}))
    assert msgs == ["adplatform:cluster.pools[general].serverType must be an EC2 instance type such as m7i.xlarge "
                    "or t3.medium, got 'ccx33'"]


# --- autoscaled node groups (docs/autoscaling.md) -------------------------------------------------------

ASG = "aws:autoscaling/group:Group"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"


@pytest.fixture(scope="module")
def groups() -> NodeGroupRun:
    """staging-aws's installer asked for groups in zones b and c, as the autoscaler component would ask; the
    stack's general pool is tainted for this run, to see the taint tags."""
    return run_node_groups("staging-aws", lambda pool: ["eu-central-1b", "eu-central-1c"], overrides=autoscaled_general())


def test_one_auto_scaling_group_per_request_in_its_zones(groups):
    asgs = {r.inputs["name"]: r for r in groups.of_type(ASG)}
    subnet_ids = {r.inputs["availabilityZone"]: mockrun._fake_id(r.name) for r in groups.of_type("aws:ec2/subnet:Subnet")}
    assert {name: asg.inputs["vpcZoneIdentifiers"] for name, asg in asgs.items()} == {
        "adp-staging-aws-general-eu-central-1b": [subnet_ids["eu-central-1b"]],
        "adp-staging-aws-general-eu-central-1c": [subnet_ids["eu-central-1c"]]}, \
        "one zone per group: a multi-zone group's AZRebalance would terminate nodes undrained"
    for request in groups.requests:
        asg = asgs[f"adp-staging-aws-{request.name}"]
        assert (asg.inputs["minSize"], asg.inputs["maxSize"]) == (0, request.max_size), \
            "from 0 (the floor is Pulumi-managed nodes) to the request's share"
        assert "desiredCapacity" not in asg.inputs and "desiredCapacity" in asg.options["ignoreChanges"], \
            "the autoscaler owns the desired capacity: Pulumi neither sets nor resets it"
        assert asg.inputs["launchTemplate"]["version"] == "$Latest"
    assert sum(r.max_size for r in groups.requests) == 3, "the pool's max - min, split over the groups"


def test_launch_template_has_the_agents_settings_and_the_secret_user_data(groups, staging):
    (template, _) = [t for t in groups.of_type(LAUNCH_TEMPLATE)]
    agent = staging.named("general-1", INSTANCE).inputs
    assert template.inputs["imageId"] == agent["ami"] == FAKE_UBUNTU_AMI
    assert template.inputs["instanceType"] == agent["instanceType"] == "t3.xlarge"
    assert template.inputs["keyName"] == agent["keyName"]
    assert "iamInstanceProfile" not in template.inputs, "agents carry no AWS credentials"
    assert template.inputs["metadataOptions"] == {"httpEndpoint": "enabled", "httpTokens": "required",
                                                  "httpPutResponseHopLimit": 1} == agent["metadataOptions"]
    (disk,) = template.inputs["blockDeviceMappings"]
    assert disk["deviceName"] == "/dev/sda1", "the AMI's root device, so the settings resize it, not add a disk"
    assert disk["ebs"] == {"volumeSize": agent["rootBlockDevice"]["volumeSize"], "volumeType": "gp3",
                           "encrypted": "true", "deleteOnTermination": "true"}
    (group_sg,) = template.inputs["vpcSecurityGroupIds"]
    assert [group_sg] == agent["vpcSecurityGroupIds"]
    user_data = template.inputs["userData"]
    assert isinstance(user_data, mockrun.Secret), "the join token stays secret in state"
    assert gzip.decompress(base64.b64decode(user_data.value)).decode() == FAKE_USER_DATA
    tags = {t["resourceType"]: t["tags"] for t in template.inputs["tagSpecifications"]}
    assert tags["instance"]["adplatform.io/pool"] == "general" and tags["instance"]["adplatform.io/k3s"] == "agent"
    assert tags["instance"]["kubernetes.io/cluster/adp-staging-aws"] == "owned", "the CCM's ownership tag"
    assert tags["volume"]["adplatform.io/stack"] == "staging-aws"


def test_groups_are_discovered_by_tags_and_describe_their_nodes_for_scale_from_zero(groups):
    values = groups.values
    assert values["cloudProvider"] == "aws" and values["awsRegion"] == "eu-central-1"
    assert values["autoDiscovery"]["clusterName"] == "adp-staging-aws"
    for asg in groups.of_type(ASG):
        tags = {t["key"]: t["value"] for t in asg.inputs["tags"]}
        assert all(not t["propagateAtLaunch"] for t in asg.inputs["tags"]), "instances get the template's tags"
        assert set(values["autoDiscovery"]["tags"]) <= set(tags), "every group the autoscaler discovers is ours"
        assert tags["k8s.io/cluster-autoscaler/node-template/label/adplatform.io/pool"] == "general"
        assert tags["k8s.io/cluster-autoscaler/node-template/label/adplatform.io/role"] == "general"
        assert tags["k8s.io/cluster-autoscaler/node-template/taint/adplatform.io/burst"] == "true:NoSchedule"
        assert tags["adplatform.io/stack"] == "staging-aws"
    pinned = {t["key"]: t["value"] for t in groups.named("group-general-eu-central-1b", ASG).inputs["tags"]}
    assert pinned["k8s.io/cluster-autoscaler/node-template/label/adplatform.io/location"] == "eu-central-1b"


def test_autoscaler_may_change_only_this_clusters_groups_from_the_control_plane(groups):
    policy = json.loads(groups.named("control-plane-autoscaler", "aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    describe, scale = policy["Statement"]
    assert "Condition" not in describe and all(":Describe" in a or ":Get" in a for a in describe["Action"])
    assert scale["Action"] == ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"]
    assert scale["Condition"] == {"StringEquals": {"aws:ResourceTag/k8s.io/cluster-autoscaler/adp-staging-aws": "owned"}}
    role = groups.named("control-plane-role", "aws:iam/role:Role")
    assert groups.named("control-plane-autoscaler", "aws:iam/rolePolicy:RolePolicy").parent == role.parent
    assert groups.values["nodeSelector"] == {"node-role.kubernetes.io/control-plane": "true"}, \
        "the autoscaler runs where the instance role holds its rights"


def test_autoscaled_nodes_write_the_provider_id_the_instances_do(staging, groups):
    """The autoscaler finds a node's group by its provider ID aws:///<zone>/<instance id>: autoscaled nodes' cloud-init
    runs the profile's boot commands, the same the Pulumi-managed instances run."""
    data = yaml.safe_load(staging.named("general-1", INSTANCE).inputs["userData"])
    assert [c for _, _, c in data["bootcmd"]] == list(groups.profile.node_boot_commands) == [aws.PROVIDER_ID_COMMAND]


def test_a_pinned_autoscaled_pool_gets_its_zones_subnet_without_other_nodes_there():
    run = run_node_groups("staging-aws", lambda pool: [pool.location], overrides={"adplatform:cluster": {
        "location": "eu-central-1a", "pools": [{"name": "general", "autoscaling": None, "count": 2},
                                               {"name": "burst", "role": "general", "size": "medium",
                                                "location": "eu-central-1c", "autoscaling": {"min": 0, "max": 2}}]}})
    assert {r.inputs["availabilityZone"] for r in run.of_type("aws:ec2/subnet:Subnet")} == {"eu-central-1a",
                                                                                          "eu-central-1c"}
    (asg,) = run.of_type(ASG)
    assert asg.inputs["maxSize"] == 2 and asg.inputs["name"] == "adp-staging-aws-burst-eu-central-1c"
