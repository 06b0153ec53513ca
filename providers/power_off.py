"""Server inputs each provider changes in place by stopping the machine (a resize), by server resource type.

The providers bind the resize hooks to these (components/k3s/resize.py: drain before, uncordon after) and
plan-diff names such a change "drain (hook), resize in place, uncordon" (tools/plan/nodes.py). Paths are the
engine's input names. Kept free of the cloud SDKs so the planner reads it without importing them.
"""

from __future__ import annotations

POWER_OFF_INPUTS: dict[str, tuple[tuple[str, ...], ...]] = {
    # terraform-provider-hcloud internal/server/resource.go, resourceServerUpdate: server_type powers the
    # server off and changes its type; public_net powers it off to swap primary IPs.
    "hcloud:index/server:Server": (("serverType",), ("publicNets",)),
    # pulumi_aws ec2.Instance: "Updates to [instance_type] will trigger a stop/start of the EC2 instance"
    # (userData would too; the program ignores its changes).
    "aws:ec2/instance:Instance": (("instanceType",),),
    # pulumi_gcp compute.Instance: machine_type, service_account and shielded_instance_config are updated by
    # stopping the instance (allow_stopping_for_update, which the program sets).
    "gcp:compute/instance:Instance": (("machineType",), ("serviceAccount",), ("shieldedInstanceConfig",)),
    # Azure resizes a running VM by restarting it (hardwareProfile.vmSize).
    "azure-native:compute:VirtualMachine": (("hardwareProfile", "vmSize"),),
}
