"""The stack provider's load balancers target only its own nodes in a hybrid cluster (issue 19).

The stack provider's CCM builds every Service load balancer (the shared gateway's) over the nodes k8s.io/cloud-provider's
service controller hands it. Another provider's machine can never be such a target, and the CCMs do not agree on what
they do with one (docs/providers.md "Load balancer targets"): hcloud CCM 1.35 skips it with a warning event on every
sync, the AWS CCM 1.35 skips it only when its provider ID does not parse as an EC2 instance id, and the Azure CCM 1.36
(node-IP backend pools) adds its address. So every node of a secondary part registers with the well-known
node.kubernetes.io/exclude-from-external-load-balancers label, and the service controller leaves it out before any CCM
sees it; the stack provider's own nodes never carry it.

The functions below restate the upstream code paths they name, at the pinned versions."""

from __future__ import annotations

from typing import Any

import pytest

from providers.base import PROVIDER_LABEL
from tests.conftest import node_labels
from tests.test_hybrid import (CP_MOVE_STACK, aws_primary, azure_primary, clouds, control_plane_migration,  # noqa: F401
                               internet, run, run_internet)
from tools import mockrun

EXCLUDE = "node.kubernetes.io/exclude-from-external-load-balancers"


def go_parse_bool(value: str) -> bool | None:
    """Go strconv.ParseBool: None where it returns an error."""
    return {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
            "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}.get(value)


def given_to_the_ccm(labels: dict[str, str]) -> bool:
    """k8s.io/cloud-provider v0.35.6/v0.36 controllers/service/controller.go nodeIncludedPredicate (one of the
    stableNodeSetPredicates ensureLoadBalancer and the node sync list nodes with): a node with the label is left out
    unless its value parses as false; an unparsable value leaves it out too."""
    if EXCLUDE not in labels:
        return True
    parsed = go_parse_bool(labels[EXCLUDE])
    return parsed is False


def kubelet_may_set(key: str) -> bool:
    """k8s.io/kubelet pkg/apis/well_known_labels.go IsKubeletLabel (the kubelet refuses to start with any other label
    of the kubernetes.io or k8s.io domains in --node-labels; NodeRestriction admits the same set): the
    kubelet.kubernetes.io and node.kubernetes.io namespaces and their subdomains, and a fixed list."""
    fixed = {"kubernetes.io/hostname", "topology.kubernetes.io/zone", "topology.kubernetes.io/region",
             "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region",
             "beta.kubernetes.io/instance-type", "node.kubernetes.io/instance-type", "kubernetes.io/os",
             "kubernetes.io/arch", "beta.kubernetes.io/os", "beta.kubernetes.io/arch"}
    return key in fixed or _in_domains(key, ("kubelet.kubernetes.io", "node.kubernetes.io"))


def _in_domains(key: str, domains: tuple[str, ...]) -> bool:
    """Whether the label key's prefix is one of `domains` or a subdomain of one."""
    prefix = key.split("/", 1)[0] if "/" in key else ""
    return any(prefix == d or prefix.endswith("." + d) for d in domains)


def _restricted(key: str) -> bool:
    return _in_domains(key, ("kubernetes.io", "k8s.io"))


def nodes(run: mockrun.Run) -> dict[str, dict[str, str]]:
    """node name (control-plane-1, edge-1, ...) -> the labels it registers with."""
    names = [r.name.removeprefix("k3s-") for r in run.of_type("command:remote:Command") if r.name.startswith("k3s-")]
    return {name: node_labels(run, name) for name in names}


def balancer_targets(run: mockrun.Run) -> dict[str, str]:
    """The nodes the service controller hands the stack provider's CCM, with the provider each runs on."""
    return {name: labels[PROVIDER_LABEL] for name, labels in nodes(run).items() if given_to_the_ccm(labels)}


@pytest.mark.parametrize("fixture, stack_provider, secondaries", [
    ("run", "hetzner", {"baremetal"}),  # production-hybrid: dedicated servers over the vSwitch
    ("internet", "hetzner", {"aws"}),
    ("clouds", "hetzner", {"gcp", "azure"}),
    ("aws_primary", "aws", {"hetzner"}),
    ("azure_primary", "azure", {"hetzner"}),
])
def test_the_stack_providers_balancers_get_exactly_its_own_nodes(request, fixture, stack_provider, secondaries):
    labelled = nodes(request.getfixturevalue(fixture))
    providers = {name: labels[PROVIDER_LABEL] for name, labels in labelled.items()}
    assert set(providers.values()) == {stack_provider, *secondaries}
    own = {name for name, provider in providers.items() if provider == stack_provider}
    assert set(balancer_targets(request.getfixturevalue(fixture))) == own
    # The value the service controller reads as "exclude", not merely a present key.
    assert {labels[EXCLUDE] for name, labels in labelled.items() if name not in own} == {"true"}


def test_control_plane_members_moving_to_another_provider_are_no_targets_of_the_stack_providers_balancers():
    step, values = control_plane_migration()[1]  # control-plane-4 added on AWS
    moving = run_internet(values, stack=CP_MOVE_STACK)
    labelled = nodes(moving)
    assert labelled["control-plane-4"][PROVIDER_LABEL] == "aws"
    assert not given_to_the_ccm(labelled["control-plane-4"])
    assert {n for n in balancer_targets(moving) if n.startswith("control-plane-")} == {
        "control-plane-1", "control-plane-2", "control-plane-3"}


def test_a_single_provider_stack_leaves_every_node_a_balancer_target(production):
    assert all(EXCLUDE not in labels for labels in nodes(production).values())


@pytest.mark.parametrize("fixture", ["run", "internet", "aws_primary", "azure_primary"])
def test_every_kubernetes_label_a_node_registers_with_is_one_its_kubelet_may_set(request, fixture):
    # The kubelet exits on a kubernetes.io / k8s.io label outside its own set: the node would never join.
    labels = {key for each in nodes(request.getfixturevalue(fixture)).values() for key in each}
    assert EXCLUDE in labels
    assert sorted(key for key in labels if _restricted(key) and not kubelet_may_set(key)) == []


def test_the_restated_predicate_follows_go_parse_bool():
    cases: dict[str, Any] = {"true": False, "True": False, "1": False, "false": True, "0": True, "yes": False, "": False}
    assert {value: given_to_the_ccm({EXCLUDE: value}) for value in cases} == cases
    assert given_to_the_ccm({PROVIDER_LABEL: "hetzner"})
