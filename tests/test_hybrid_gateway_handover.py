"""The gateway's balancer handed from the stack provider's CCM to the CCM of the provider the control plane moves to
(cluster.controlPlane.move.gatewayBalancer; docs/providers.md "Not supported yet", item 5): one CCM serves the
gateway's LoadBalancer Service at a time, the old balancer stays in place, forwarding, and the new one targets the
new provider's nodes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.conftest import UP_TO_SERVICES
from tests.runs import node_labels
from tests.test_hybrid import _internet_problems, control_plane_migration, primary_raw, run_internet
from tools.plan import model

RELEASE = "kubernetes:helm.sh/v3:Release"
GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
EXCLUDE = "node.kubernetes.io/exclude-from-external-load-balancers"


def _aws_moving_to_hetzner(balancer: str | None) -> dict[str, Any]:
    """An AWS stack (2 agents on Hetzner Cloud) with a control-plane member added on Hetzner."""
    values = primary_raw("aws", location="eu-central-1a", firewallQuotas={"aws": 200})
    move = {"provider": "hetzner", "locations": ["fsn1"], "added": 1}
    if balancer is not None:
        move["gatewayBalancer"] = balancer
    values["cluster"]["controlPlane"] = {"move": move}
    values["clusterServices"] = {**values.get("clusterServices", {}), "secrets": {"seal": {"type": "static"}}}
    return {**values, "layers": UP_TO_SERVICES}


@pytest.fixture(scope="module")
def old():
    return run_internet(_aws_moving_to_hetzner(None), stack="staging-internet")


@pytest.fixture(scope="module")
def new():
    return run_internet(_aws_moving_to_hetzner("new"), stack="staging-internet")


def _releases(run) -> dict[str, dict]:
    return {r.name: r.inputs["values"] for r in run.of_type(RELEASE) if r.name.endswith("-ccm")}


def _gateway_annotations(run) -> dict[str, str]:
    return run.named("gateway-shared", GATEWAY).inputs["spec"]["infrastructure"]["annotations"]


def test_by_default_the_stack_providers_ccm_alone_serves_the_gateway(old):
    releases = _releases(old)
    assert set(releases) == {"aws-ccm"}
    assert not any(arg.startswith("--controllers") for arg in releases["aws-ccm"]["args"])
    assert any(key.startswith("service.beta.kubernetes.io/aws-") for key in _gateway_annotations(old))
    assert node_labels(old, "hz-1")[EXCLUDE] == "true" and EXCLUDE not in node_labels(old, "control-plane-1")


def test_new_turns_the_old_ccms_service_controller_off_and_the_new_one_serves_only_services(new):
    releases = _releases(new)
    assert set(releases) == {"aws-ccm", "hcloud-ccm"}
    # The AWS CCM keeps every controller but the service controller: its NLB is neither changed nor deleted.
    assert releases["aws-ccm"]["args"][-1] == "--controllers=*,-service"
    hcloud = releases["hcloud-ccm"]
    # The hcloud CCM runs the service controller alone, under a lease the AWS CCM does not hold, on Hetzner nodes.
    assert hcloud["args"] == {"controllers": "service",
                              "leader-elect-resource-name": "hcloud-gateway-controller-manager",
                              # The AWS CCM's DaemonSet holds 10258 on the moved Hetzner members' host network.
                              "secure-port": "10268"}
    # One replica: on the host network two need two Hetzner nodes, which one moved member does not give.
    assert hcloud["replicaCount"] == 1
    assert hcloud["nodeSelector"] == {"adplatform.io/provider": "hetzner"}
    # Its token and the Hetzner part's network (the balancer reaches the servers' private addresses).
    secret = new.named("hcloud", "kubernetes:core/v1:Secret")
    assert secret.inputs["metadata"]["namespace"] == "kube-system" and hcloud["networking"]["enabled"] is True


def test_new_gives_the_gateway_service_the_new_providers_annotations(new):
    annotations = _gateway_annotations(new)
    assert annotations["load-balancer.hetzner.cloud/location"] == "fsn1"
    assert annotations["load-balancer.hetzner.cloud/uses-proxyprotocol"] == "true"
    assert not any(key.startswith("service.beta.kubernetes.io/aws-") for key in annotations)
    # Both balancers send PROXY headers while both forward: Cilium's listeners keep accepting them.
    cilium = new.named("cilium", RELEASE).inputs["values"]["gatewayAPI"]
    assert cilium["enableProxyProtocol"] is True


def test_new_makes_the_new_providers_nodes_the_balancer_targets(new):
    assert {node_labels(new, n)[EXCLUDE] for n in ("hz-1", "hz-2", "control-plane-4")} == {"false"}
    assert {node_labels(new, n)[EXCLUDE] for n in ("control-plane-1", "general-1")} == {"true"}
    prefix = f"adp-{new.stack}-"
    targets = {name.removeprefix(prefix) for name, node in new.outputs["nodes"].items() if node["loadBalancerTarget"]}
    assert targets == {"hz-1", "hz-2", "control-plane-4"}
    assert model.build(new)["policy"]["violations"] == []


@pytest.mark.parametrize("change, message", [
    (lambda v: v["cluster"]["controlPlane"]["move"].update(gatewayBalancer="both"),
     "must be one of old, new (whose cloud controller serves the gateway's load balancer)"),
])
def test_a_bad_gateway_balancer_is_refused_naming_the_key(change, message):
    values = _aws_moving_to_hetzner("new")
    change(values)
    found = _internet_problems(values)
    assert any(p.startswith(f"adplatform:cluster.controlPlane.move.gatewayBalancer {message}") for p in found), found


def test_new_is_refused_where_the_ccms_cannot_hand_the_balancer_over():
    # Hetzner to AWS: the AWS CCM is not installed on a secondary part (no credential of its own for it yet).
    values = copy.deepcopy(control_plane_migration()[1][1])
    values["cluster"]["controlPlane"]["move"]["gatewayBalancer"] = "new"
    found = _internet_problems(values)
    assert any(p.startswith("adplatform:cluster.controlPlane.move.gatewayBalancer must be old moving from hetzner to "
                            "aws: handing the gateway's balancer over needs hetzner's cloud controller to stop "
                            "serving balancers while aws's serves the gateway from its part, built for aws to hetzner "
                            "only") and p.endswith("got 'new'") for p in found), found


def test_new_is_refused_while_no_node_runs_on_the_new_provider():
    values = _aws_moving_to_hetzner("new")
    values["cluster"]["pools"] = [p for p in values["cluster"]["pools"] if p.get("provider") != "hetzner"]
    values["cluster"]["controlPlane"]["move"].update(added=0)
    found = _internet_problems(values)
    assert any(p.startswith("adplatform:cluster.controlPlane.move.gatewayBalancer must be old while no node runs on "
                            "hetzner: its balancer targets the nodes there") for p in found), found


def test_the_gateway_ccm_runs_one_replica_whatever_the_profile():
    # Production's profile gives the hcloud CCM 2 replicas; on the host network they need two Hetzner nodes, which a
    # handover with one moved member lacks: its values override the profile's (providers/hetzner.py merges them last).
    from providers import hetzner
    assert hetzner.gateway_ccm_values()["replicaCount"] == 1
