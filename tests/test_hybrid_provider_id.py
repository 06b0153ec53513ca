"""No stack provider's cloud controller manager deletes or shutdown-taints another provider's node (issue 19).

The stack provider's CCM runs for the whole cluster. Its node lifecycle controller (k8s.io/cloud-provider v0.36
controllers/nodelifecycle/node_lifecycle_controller.go MonitorNodes) asks, for every NotReady Node, whether its
instance exists: `false` deletes the Node, an error skips it, `true` goes on to InstanceShutdown (true: the
node.cloudprovider.kubernetes.io/shutdown taint). A Node without spec.providerID is looked up by its name, which
another provider's machine never has: Hetzner's and Azure's CCMs then answer `false` and delete the Node at its
next reboot. So every node of a secondary part registers (K3s kubelet-arg provider-id) with its own provider's ID,
which the stack provider's CCM fails to resolve (an error: skipped) or leaves alone.

The functions below restate, per CCM at its pinned version (components/charts.py), what its InstancesV2 does
with a Node's provider ID; each names the upstream code path it restates."""

from __future__ import annotations

import re
from urllib.parse import urlparse

import pytest

from providers import baremetal, hetzner
from providers.base import provider_id
from tests.conftest import k3s_config
from tests.test_hybrid import aws_primary, azure_primary, clouds, run  # noqa: F401  (module fixtures)
from tools import mockrun

DELETED = "deleted when NotReady"  # InstanceExists (false, nil)
SKIPPED = "skipped"  # InstanceExists returned an error
LOOKED_UP = "looked up in its own cloud"
LEFT_ALONE = "assumed to exist, never shut down"


def hcloud_ccm(provider_id: str, robot_support: bool = False) -> str:
    """hcloud-cloud-controller-manager v1.35.0 hcloud/instances.go lookupServer (InstanceExists, InstanceShutdown).
    No provider ID: serverCache.ByName(node.Name) among the project's cloud servers (and Robot's, with Robot support);
    none found is (nil, nil), so InstanceExists is (false, nil). Otherwise internal/providerid ToServerID: a prefix
    other than hrobot://, hcloud://bm-, hcloud:// is an UnkownPrefixError, a non-numeric id "unable to parse server
    id"; a Robot id without Robot support errMissingRobotClient; with it, getRobotServerByID (nil, nil: deleted)."""
    if not provider_id:
        return DELETED  # another provider's machine is no cloud server of that name
    for prefix, cloud in (("hrobot://", False), ("hcloud://bm-", False), ("hcloud://", True)):
        if provider_id.startswith(prefix):
            if not provider_id[len(prefix):].isdigit():
                return SKIPPED
            return LOOKED_UP if cloud or robot_support else SKIPPED
    return SKIPPED


def aws_ccm(provider_id: str) -> str:
    """cloud-provider-aws v1.35.0 pkg/providers/v1/instances_v2.go InstanceExists: no provider ID, getProviderID ->
    InstanceID(node name) -> getInstanceByNodeName, no instance with that private DNS name: InstanceNotFound, an error.
    Otherwise aws.go InstanceExistsByProviderID -> instances.go MapToAWSInstanceID: without `aws://` the ID is taken
    for a bare instance id under `aws:///`; a scheme other than aws, or a last path token that is no i-... id, errs."""
    if not provider_id:
        return SKIPPED
    url = urlparse(provider_id if provider_id.startswith("aws://") else "aws:///" + provider_id)
    token = url.path.strip("/").split("/")[-1]
    if url.scheme != "aws" or not re.fullmatch(r"i-[0-9a-z]{8}(?:[0-9a-z]{9})?", token):
        return SKIPPED
    return LOOKED_UP


# cloud-provider-azure v1.36.0 pkg/provider/azure_wrap.go azureNodeProviderIDRE
AZURE_NODE = re.compile(r"^azure:///subscriptions/(?:.*)/resourceGroups/(?:.*)/providers/Microsoft.Compute/(?:.*)")
# ... and azure_standard.go providerIDRE: the VM name a standalone VM's provider ID resolves to (the node name)
AZURE_VM_NAME = re.compile(r".*/subscriptions/(?:.*)/Microsoft.Compute/virtualMachines/(.+)$")


def azure_ccm(provider_id: str) -> str:
    """cloud-provider-azure v1.36.0 pkg/provider/azure_instances_v2.go InstanceExists: no provider ID,
    GetInstanceProviderID(node name) finds no VM of that name: InstanceNotFound, answered (false, nil). Otherwise
    azure_instances_v1.go InstanceExistsByProviderID: an ID not matching azureNodeProviderIDRE is an unmanaged node,
    assumed to exist (IsNodeUnmanagedByProviderID); InstanceShutdownByProviderID then fails GetNodeNameByProviderID
    (not in the VM set: an error, no taint)."""
    if not provider_id:
        return DELETED
    return LOOKED_UP if AZURE_NODE.match(provider_id) else LEFT_ALONE


def registered_provider_id(run: mockrun.Run, node: str) -> str:
    """The provider ID `node`'s kubelet registers with from its K3s config ('' without one)."""
    found = [arg.split("=", 1)[1] for arg in k3s_config(run, node)["kubelet-arg"] if arg.startswith("provider-id=")]
    assert len(found) <= 1, found
    return found[0] if found else ""


def _nodes(run: mockrun.Run, pool: str) -> list[str]:
    return sorted(r.name.removeprefix("k3s-") for r in run.resources
                  if r.type == "command:remote:Command" and re.fullmatch(rf"k3s-{pool}-\d+", r.name))


# --- production-hybrid: dedicated servers next to Hetzner Cloud --------------------------------------------------

def test_dedicated_servers_register_with_an_id_hetzners_ccm_cannot_resolve_with_or_without_robot(run):
    scylla = _nodes(run, "scylladb")
    assert scylla == ["scylladb-1", "scylladb-2", "scylladb-3"]
    for node in scylla:
        registered = registered_provider_id(run, node)
        assert registered == f"baremetal://adp-production-hybrid-{node}"
        # Before: no provider ID, looked up by name among the cloud servers, not found, deleted on its next reboot.
        assert hcloud_ccm(registered) == SKIPPED
        # Not hrobot://: turning Robot support on would make Hetzner's CCM look the number up (and delete the node
        # when it names no server of the account); an unknown scheme stays an error.
        assert hcloud_ccm(registered, robot_support=True) == SKIPPED
        assert hcloud_ccm("hrobot://123") == SKIPPED and hcloud_ccm("hrobot://123", robot_support=True) == LOOKED_UP


def test_the_stack_providers_own_nodes_keep_the_id_their_ccm_sets(run):
    # Hetzner's CCM sets its cloud servers' provider ID when it initialises them: their K3s config is unchanged.
    for node in ("control-plane-1", "general-1"):
        assert registered_provider_id(run, node) == ""
        assert "cloud-provider=external" in k3s_config(run, node)["kubelet-arg"]


# --- over the public internet ------------------------------------------------------------------------------------

def test_azure_vms_next_to_hetzner_register_with_the_id_azures_ccm_writes(clouds):
    for node in _nodes(clouds, "az"):
        registered = registered_provider_id(clouds, node)
        hostname = f"adp-production-internet-{node}"
        assert registered == (f"azure:///subscriptions/{mockrun.FAKE_AZURE_SUBSCRIPTION}/resourceGroups/"
                              f"adp-production-internet/providers/Microsoft.Compute/virtualMachines/{hostname}")
        assert AZURE_NODE.match(registered) and AZURE_VM_NAME.match(registered).group(1) == hostname
        assert hcloud_ccm(registered) == SKIPPED and aws_ccm(registered) == SKIPPED


def test_gcp_nodes_keep_their_boot_written_id_which_hetzners_ccm_cannot_resolve(clouds):
    # cloud-init writes gce://<project>/<zone>/<instance> at boot (providers/gcp.py PROVIDER_ID_COMMAND): no second one.
    assert all(registered_provider_id(clouds, node) == "" for node in _nodes(clouds, "gce"))
    assert hcloud_ccm("gce://adp-test/europe-west3-a/adp-production-internet-gce-1") == SKIPPED


def test_hetzner_servers_next_to_azure_register_with_their_server_id_which_azure_leaves_alone(azure_primary):
    hz = _nodes(azure_primary, "hz")
    assert hz == ["hz-1", "hz-2"]
    for node in hz:
        registered = registered_provider_id(azure_primary, node)
        # The hcloud.Server's id (the mocks' id for a resource named like the node spec).
        assert registered == f"hcloud://{mockrun._fake_id(node)}"
        assert azure_ccm(registered) == LEFT_ALONE  # before: "" -> no VM of that name -> deleted
        assert azure_ccm("") == DELETED
    # The Azure nodes' provider ID comes from Azure's cloud node manager, as on any Azure stack.
    assert registered_provider_id(azure_primary, "control-plane-1") == ""


def test_hetzner_servers_next_to_aws_register_with_their_server_id_which_awss_ccm_cannot_resolve(aws_primary):
    for node in _nodes(aws_primary, "hz"):
        registered = registered_provider_id(aws_primary, node)
        assert registered == f"hcloud://{mockrun._fake_id(node)}"
        assert aws_ccm(registered) == SKIPPED
    assert aws_ccm("aws:///eu-central-1a/i-0123456789abcdef0") == LOOKED_UP  # the rule tells its own IDs apart
    assert registered_provider_id(aws_primary, "control-plane-1") == ""  # its cloud-init writes aws:///<zone>/<id>


# --- the values reaching the K3s config and the kubelet's command line -------------------------------------------

@pytest.mark.parametrize("scheme, path", [("baremetal", "a b"), ("baremetal", "x'y"), ("baremetal", "x\ny"),
                                          ("baremetal", ""), ("Bad", "x"), ("hcloud", "1;reboot")])
def test_a_provider_id_outside_the_grammar_is_refused(scheme, path):
    with pytest.raises(ValueError, match="not a provider ID"):
        provider_id(scheme, path)


def test_a_hetzner_server_id_must_be_a_number():
    assert hetzner.cloud_provider_id("12345") == "hcloud://12345"
    with pytest.raises(ValueError):
        hetzner.cloud_provider_id("12345x")
    assert baremetal.host_provider_id("adp-x-scylladb-1") == "baremetal://adp-x-scylladb-1"
