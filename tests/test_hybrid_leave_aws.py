"""Leaving AWS for Hetzner Cloud, the whole sequence (docs/providers.md, "Leaving AWS for Hetzner Cloud: the full
sequence"): an AWS stack's control plane moves to Hetzner Cloud one member at a time, the gateway's balancer is handed
over, the flip is prepared, the stack's provider becomes Hetzner (the flip), the last original members and the AWS
pool go. Every step is a whole-program run up to the cluster services, shared through the run cache."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.conftest import UP_TO_SERVICES
from tests.runs import node_labels
from tests.runs import config_plan, k3s_config
from tests.test_hybrid import (COMMAND, _agent_installs_chain, _balancer, _internet_problems, _members,
                               _server_installs_chain, internet_config, member_walk_problems, primary_raw, run_internet)
from tools import mockrun

STACK = "staging-internet"
HETZNER_LOCATIONS = ["fsn1", "nbg1", "hel1"]  # one network zone (eu-central): the new members' locations
EDGE_AWS = {"name": "edge", "role": "general", "count": 2, "provider": "aws",  # `provider` stated: it stays AWS's
            "locations": ["eu-central-1a", "eu-central-1b"]}
STAGING_POOLS = ("general", "scylladb", "redpanda", "clickhouse", "stateful")  # the staging profile's (config/profiles.py)
RELEASE = "kubernetes:helm.sh/v3:Release"
EXCLUDE = "node.kubernetes.io/exclude-from-external-load-balancers"

ON_AWS, HANDED_OVER, PREPARED, FLIPPED = ("control plane on aws", "gateway balancer on hetzner",
                                          "hetzner API balancer in every certificate", "hetzner the stack's provider")
LAST_REMOVED, POOLS_DRAINED = "control-plane-1 removed", "aws pools drained"


def _move(values: dict[str, Any], **move: Any) -> dict[str, Any]:
    values = copy.deepcopy(values)
    values["cluster"]["controlPlane"]["move"].update(move)
    return values


def leaving_aws() -> list[tuple[str, dict[str, Any]]]:
    """The stack-file edits of docs/providers.md "Leaving AWS for Hetzner Cloud: the full sequence", from an AWS stack
    (3 members, a stateless pool on each provider) to Hetzner Cloud."""
    start = primary_raw("aws", location="eu-central-1a", firewallQuotas={"aws": 200})
    start["cluster"]["pools"].append(dict(EDGE_AWS))
    start["clusterServices"] = {**start.get("clusterServices", {}), "secrets": {"seal": {"type": "static"}}}
    start["layers"] = dict(UP_TO_SERVICES)
    steps = [(ON_AWS, start)]
    moving = copy.deepcopy(start)
    moving["cluster"]["controlPlane"] = {"move": {"provider": "hetzner", "locations": HETZNER_LOCATIONS,
                                                  "added": 0, "removed": 0}}
    for step, (added, removed) in (("control-plane-4 added on hetzner", (1, 0)), ("control-plane-3 removed", (1, 1)),
                                   ("control-plane-5 added on hetzner", (2, 1)), ("control-plane-2 removed", (2, 2))):
        moving = _move(moving, added=added, removed=removed)
        steps.append((step, moving))
    handed = _move(moving, gatewayBalancer="new")
    steps.append((HANDED_OVER, handed))
    prepared = _move(handed, prepareFlip=True)
    prepared["cluster"]["providers"] = {"aws": {"location": prepared["cluster"].pop("location")},
                                        "hetzner": {"location": "fsn1"}}
    prepared["clusterServices"]["defaultStorageProvider"] = "hetzner"  # new claims on Hetzner volumes from here on
    steps.append((PREPARED, prepared))
    flipped = _move(prepared, flippedFrom="aws")
    flipped["provider"] = "hetzner"
    # The profile's pools name no provider: they stay AWS's (the same machines), stated with the flip.
    flipped["cluster"]["pools"] += [{"name": name, "provider": "aws"} for name in STAGING_POOLS]
    steps.append((FLIPPED, flipped))
    added = _move(flipped, added=3)
    steps.append(("control-plane-6 added on hetzner", added))
    last = _move(added, removed=3)
    steps.append((LAST_REMOVED, last))
    # The AWS pools drained and removed (their stores moved before: "Moving pools to another provider"): the edge
    # pool's entry dropped, the profile's pools, which a stack file cannot drop, at count 0.
    drained = copy.deepcopy(last)
    drained["cluster"]["pools"] = [p for p in drained["cluster"]["pools"] if p["name"] != EDGE_AWS["name"]]
    for pool in drained["cluster"]["pools"]:
        if pool.get("provider") == "aws":
            pool["count"] = 0
    steps.append((POOLS_DRAINED, drained))
    return steps


@pytest.fixture(scope="module")
def walk() -> list[tuple[str, mockrun.Run]]:
    return [(step, run_internet(values, stack=STACK)) for step, values in leaving_aws()]


def _at(walk: list[tuple[str, mockrun.Run]], step: str) -> mockrun.Run:
    return dict(walk)[step]


def _around(walk: list[tuple[str, mockrun.Run]], step: str) -> tuple[mockrun.Run, mockrun.Run]:
    """The run before `step` and `step`'s."""
    names = [name for name, _ in walk]
    i = names.index(step)
    return walk[i - 1][1], walk[i][1]


def test_every_step_is_valid_and_passes_the_policy_pack():
    for step, values in leaving_aws():
        plan = config_plan(*internet_config(values), STACK)
        assert plan["policy"]["violations"] == [], step


def test_etcd_keeps_its_quorum_one_member_change_per_step(walk):
    members = [(step, _members(run)) for step, run in walk]
    assert member_walk_problems(members) == []
    assert [len(each) for _, each in members] == [3, 4, 3, 4, 3, 3, 3, 3, 4, 3, 3]
    providers = [sorted(each.values()) for _, each in members]
    assert providers[0] == ["aws"] * 3 and providers[-1] == ["hetzner"] * 3
    assert providers[-2] == ["hetzner"] * 3  # control-plane-1, the last original member, gone after the flip


K8S_PROVIDER = "pulumi:providers:kubernetes"


def _kubernetes_urns(run: mockrun.Run) -> set[str]:
    return {r.urn for r in run.resources if r.type.startswith("kubernetes:")}


def test_the_flip_replaces_no_kubernetes_resource(walk):
    # Item 1: the kubeconfig's server becomes the Hetzner API balancer; the provider keeps its clusterIdentifier, so
    # pulumi-kubernetes updates it and replaces nothing. The same URNs, but for the add-ons the flip hands over: the
    # AWS CCM goes, and the two CSI drivers swap credentials (Hetzner's driver uses the stack's token Secret as the
    # stack's, the EBS driver an access key of its own as a secondary: no instance role is left).
    before, flipped = _around(walk, FLIPPED)
    provider = {run.named("k8s", K8S_PROVIDER).inputs["clusterIdentifier"] for run in (before, flipped)}
    assert len(provider) == 1
    gone = {r.name for r in before.resources if r.urn in _kubernetes_urns(before) - _kubernetes_urns(flipped)}
    new = {r.name for r in flipped.resources if r.urn in _kubernetes_urns(flipped) - _kubernetes_urns(before)}
    assert (gone, new) == ({"aws-ccm", "hcloud-csi-token"}, {"aws-ebs-csi-credential"})
    # The deployer's endpoint (the kubeconfig's server) is the Hetzner balancer from the flip on.
    assert _balancer(before).endswith(".amazonaws.com") and not _balancer(flipped).endswith(".amazonaws.com")
    assert _balancer(flipped) == _balancer(walk[-1][1])


def test_the_flip_keeps_control_plane_1_the_initialiser_and_joins_everyone_else_at_the_hetzner_balancer(walk):
    # Item 2: the Hetzner part comes first now, control-plane-1 stays the server rendered without `server:`.
    before, flipped = _around(walk, FLIPPED)
    assert "server" not in k3s_config(flipped, "control-plane-1")
    assert _server_installs_chain(flipped) == ["k3s-control-plane-1", "k3s-control-plane-4", "k3s-control-plane-5"]
    hetzner = _balancer(flipped)
    for name in _members(flipped).keys() - {"control-plane-1"} | {"hz-1", "edge-1", "general-1"}:
        assert k3s_config(before, name)["server"] != k3s_config(flipped, name)["server"], name
        assert hetzner in k3s_config(flipped, name)["server"], name
    # Item 3: both balancers in every certificate through the flip: no server restarts for a name it lacks.
    aws = _balancer(before)
    for name in _members(flipped):
        assert {aws, hetzner} <= set(k3s_config(flipped, name)["tls-san"]), name
    # Once control-plane-1 goes no server initialises, and AWS's balancer (over its members only) goes with it.
    last = _at(walk, LAST_REMOVED)
    assert all("server" in k3s_config(last, name) for name in _members(last))
    assert not last.of_type("aws:lb/loadBalancer:LoadBalancer") and flipped.of_type("aws:lb/loadBalancer:LoadBalancer")


def test_at_the_flip_the_agents_restart_one_at_a_time_after_the_servers(walk):
    # Item 4: every agent's join address changes; prepareFlip, kept, chains their installs after the last server's.
    flipped = _at(walk, FLIPPED)
    agents = _agent_installs_chain(flipped)
    assert agents[:2] == ["k3s-general-1", "k3s-general-2"] and set(agents) >= {"k3s-hz-1", "k3s-edge-2"}
    first = {flipped.by_urn(d).name for d in flipped.named(agents[0], COMMAND).dependencies}
    assert _server_installs_chain(flipped)[-1] in first


def _ccms(run: mockrun.Run) -> dict[str, dict]:
    return {r.name: r.inputs["values"] for r in run.of_type(RELEASE) if r.name.endswith("-ccm")}


def test_after_the_flip_the_hcloud_ccm_is_the_stacks_and_no_aws_ccm_runs(walk):
    # Item 5: the hcloud CCM, serving the gateway since the handover, runs every controller under the default lease;
    # the AWS part is a secondary: no CCM (its nodes carry their aws:// provider IDs, which the hcloud CCM skips).
    handed, flipped = _at(walk, HANDED_OVER), _at(walk, FLIPPED)
    assert set(_ccms(handed)) == {"aws-ccm", "hcloud-ccm"}
    assert _ccms(handed)["hcloud-ccm"]["args"]["controllers"] == "service"
    assert set(_ccms(flipped)) == {"hcloud-ccm"}
    values = _ccms(flipped)["hcloud-ccm"]
    assert "controllers" not in values.get("args", {}) and "leader-elect-resource-name" not in values.get("args", {})
    # On Hetzner nodes only: with its network set it exits at start on a machine Hetzner's metadata does not know, and
    # after the flip AWS servers and agents are nodes its tolerations admit.
    assert values["nodeSelector"] == {"adplatform.io/provider": "hetzner"}
    # Before the flip the AWS CCM ran on AWS servers only, not on the Hetzner members (no instance role there).
    assert _ccms(handed)["aws-ccm"]["nodeSelector"] == {"node-role.kubernetes.io/control-plane": "true",
                                                         "adplatform.io/provider": "aws"}
    assert not flipped.of_type("aws:iam/instanceProfile:InstanceProfile")  # no CCM or EBS rights on the instances
    # An empty profile, not an absent one: terraform-provider-aws keeps an absent Optional+Computed value, and only
    # "" makes the update disassociate control-plane-1's profile.
    assert flipped.named("control-plane-1", "aws:ec2/instance:Instance").inputs["iamInstanceProfile"] == ""


GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"


def test_the_gateways_balancer_per_step(walk):
    # AWS's NLB until the handover; Hetzner's from it on, targeting the Hetzner nodes only, unchanged by the flip.
    prefix = f"adp-{STACK}-"
    for step, run in walk:
        annotations = run.named("gateway-shared", GATEWAY).inputs["spec"]["infrastructure"]["annotations"]
        targets = {name.removeprefix(prefix) for name, node in run.outputs["nodes"].items() if node["loadBalancerTarget"]}
        providers = {node_labels(run, name)["adplatform.io/provider"] for name in targets}
        hetzner = step in [name for name, _ in walk][[name for name, _ in walk].index(HANDED_OVER):]
        assert any(key.startswith("load-balancer.hetzner.cloud/") for key in annotations) == hetzner, step
        assert any(key.startswith("service.beta.kubernetes.io/aws-") for key in annotations) != hetzner, step
        assert providers == {"hetzner" if hetzner else "aws"}, step
    before, flipped = _around(walk, FLIPPED)
    assert before.named("gateway-shared", GATEWAY).inputs == flipped.named("gateway-shared", GATEWAY).inputs


STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"


def _default_classes(run: mockrun.Run) -> set[str]:
    return {r.name for r in run.of_type(STORAGE_CLASS)
            if (r.inputs["metadata"].get("annotations") or {}).get(DEFAULT_CLASS) == "true"}


def test_the_ebs_driver_stays_while_aws_runs_nodes_and_the_default_class_stays_hetzners(walk):
    # Item 6: the AWS volumes may still be bound after the flip, whatever its pools hold: the EBS driver and classes
    # stay while AWS runs nodes, on a credential of their own (with stateless pools alone too: the next test); the
    # default class, stated Hetzner's when the flip was prepared, stays.
    for step in (PREPARED, FLIPPED, LAST_REMOVED, POOLS_DRAINED):
        run = _at(walk, step)
        assert ("aws-ebs-csi" in {r.name for r in run.of_type(RELEASE)}) == (step != POOLS_DRAINED), step
        assert _default_classes(run) == {"storage-class-hcloud-volumes"}, step
    # With no AWS node left its volumes could attach nowhere: the driver, its credential and classes go.
    drained = _at(walk, POOLS_DRAINED)
    assert not any(r.name.startswith(("storage-class-ebs", "aws-ebs-csi")) for r in drained.resources)
    flipped = _at(walk, FLIPPED)
    assert flipped.named("aws-ebs-csi-credential", "kubernetes:core/v1:Secret")
    assert {r.name for r in flipped.of_type(STORAGE_CLASS)} == {r.name for r in _at(walk, PREPARED).of_type(
        STORAGE_CLASS)}


def test_the_flip_keeps_mtu_seal_and_every_machine(walk):
    # Item 7: no machine replaced or moved (every pool states its provider, each provider its location), the same
    # Cilium MTU and OpenBao seal.
    before, flipped = _around(walk, FLIPPED)
    machines = ("aws:ec2/instance:Instance", "hcloud:index/server:Server")
    for kind in machines:
        assert {r.urn for r in before.of_type(kind)} == {r.urn for r in flipped.of_type(kind)}, kind
    for old in before.of_type("hcloud:index/server:Server"):
        new = flipped.by_urn(old.urn)
        assert (old.inputs["location"], old.inputs["image"], old.inputs["serverType"]) == (
            new.inputs["location"], new.inputs["image"], new.inputs["serverType"]), old.name
    for old in before.of_type("aws:ec2/instance:Instance"):
        new = flipped.by_urn(old.urn)
        assert {k: v for k, v in old.inputs.items() if k not in ("iamInstanceProfile", "metadataOptions")} == {
            k: v for k, v in new.inputs.items() if k not in ("iamInstanceProfile", "metadataOptions")}, old.name
    cilium = [run.named("cilium", RELEASE).inputs["values"] for run in (before, flipped)]
    assert cilium[0]["MTU"] == cilium[1]["MTU"] == 1450
    openbao = [run.named("openbao", RELEASE).inputs["values"] for run in (before, flipped)]
    assert openbao[0] == openbao[1]


def _flip(**edit: Any) -> dict[str, Any]:
    values = copy.deepcopy(dict(leaving_aws())[FLIPPED])
    values["cluster"]["controlPlane"]["move"].update(edit)
    return values


@pytest.mark.parametrize("values, key, message", [
    (_flip(prepareFlip=False), "cluster.controlPlane.move.prepareFlip", "must be true"),
    (_flip(gatewayBalancer="old"), "cluster.controlPlane.move.gatewayBalancer", "must be new"),
    (_flip(flippedFrom=None), "cluster.controlPlane.move.provider", "must name another provider than the stack's "
     "(hetzner), or, making it the stack's (the flip), cluster.controlPlane.move.flippedFrom must name"),
    (_flip(added=0, removed=0), "cluster.controlPlane.move.added", "must be at least 1"),
    (_flip(removed=4, added=4), "cluster.controlPlane.move.removed", "must be at most 3"),
])
def test_a_flip_without_its_prerequisites_is_refused_naming_the_key(values, key, message):
    found = _internet_problems(values)
    assert any(p.startswith(f"adplatform:{key} {message}") for p in found), found


def test_a_flip_needs_every_pool_to_state_its_provider_and_each_provider_its_location():
    values = _flip()
    values["cluster"]["pools"] = [p for p in values["cluster"]["pools"] if p.get("name") != "general"
                                  or "provider" not in p or p.get("provider") != "aws"]
    del values["cluster"]["providers"]["hetzner"]
    found = _internet_problems(values)
    assert any(p.startswith("adplatform:cluster.pools[general].provider must be set while "
                            "cluster.controlPlane.move.flippedFrom is set") for p in found), found
    assert any(p.startswith("adplatform:cluster.providers.hetzner.location must be set for the flip") for p in found)


def test_a_flip_other_than_aws_to_hetzner_is_refused():
    # Hetzner to AWS: no gateway handover exists that way (item 5), so neither does the flip.
    from tests.test_hybrid import control_plane_migration
    values = copy.deepcopy(control_plane_migration()[-1][1])
    values["provider"] = "aws"
    values["cluster"]["controlPlane"]["move"]["flippedFrom"] = "hetzner"
    found = _internet_problems(values)
    assert any(p.startswith("adplatform:cluster.controlPlane.move.flippedFrom must be a provider the flip to aws is "
                            "built from: the flip is built from aws to hetzner only") for p in found), found


def test_flipped_from_before_the_flip_is_refused():
    values = copy.deepcopy(dict(leaving_aws())[PREPARED])
    values["cluster"]["controlPlane"]["move"]["flippedFrom"] = "aws"
    assert any(p.startswith("adplatform:cluster.controlPlane.move.flippedFrom must be unset until provider is "
                            "cluster.controlPlane.move.provider (hetzner)") for p in _internet_problems(values))


def test_only_the_handover_and_the_flip_reconfigure_agents(walk):
    # Agents join through the balancer: a member step changes no agent's K3s configuration (no restart). The handover
    # relabels every node (its balancer targets); the flip changes every node's join address and kubelet flags.
    prefix = f"adp-{STACK}-"
    for (_, before), (step, run) in zip(walk, walk[1:]):
        agents = [host.removeprefix(prefix) for host in run.outputs["nodes"]
                  if not host.removeprefix(prefix).startswith("control-plane-")]
        changed = {name for name in agents if k3s_config(before, name) != k3s_config(run, name)}
        assert changed == (set(agents) if step in (HANDED_OVER, FLIPPED) else set()), step


def _move_dropped() -> dict[str, Any]:
    """The last edit: the move, finished, dropped; `firstMember` names the members it left (control-plane-4..6), in
    the locations the move gave them."""
    values = copy.deepcopy(dict(leaving_aws())[POOLS_DRAINED])
    values["cluster"]["controlPlane"] = {"firstMember": 4, "locations": HETZNER_LOCATIONS}
    return values


def test_the_finished_move_is_dropped_without_changing_a_machine_or_a_k3s_configuration(walk):
    drained = _at(walk, POOLS_DRAINED)
    config, secret = internet_config(_move_dropped())
    dropped = mockrun.run(mockrun.after(drained, config), secret, STACK)
    assert _members(dropped) == _members(drained) == {f"control-plane-{i}": "hetzner" for i in (4, 5, 6)}
    assert {r.urn for r in dropped.resources} == {r.urn for r in drained.resources}
    for r in drained.resources:
        if r.type in ("hcloud:index/server:Server", "aws:ec2/instance:Instance", "hcloud:index/placementGroup:PlacementGroup"):
            assert dropped.by_urn(r.urn).inputs == r.inputs, r.name
    for name in _members(drained).keys() | {"hz-1", "hz-2"}:
        assert k3s_config(dropped, name) == k3s_config(drained, name), name
    # No longer prepared for a flip: the agents join in parallel again.
    assert _agents_parallel(dropped)


def _agents_parallel(run: mockrun.Run) -> bool:
    """Whether the Hetzner agents' installs no longer wait for each other (no chain)."""
    hz = [r for r in run.of_type(COMMAND) if r.name in ("k3s-hz-1", "k3s-hz-2")]
    return all(not any(run.by_urn(d).name.startswith("k3s-hz-") for d in r.dependencies) for r in hz)


def test_a_first_member_the_stack_does_not_run_is_refused():
    # A first deploy (no previous run): no member would initialise the cluster.
    found = _internet_problems(_move_dropped())
    assert any(p.startswith("adplatform:cluster.controlPlane.firstMember must be 1 unless the stack runs "
                            "control-plane-4 (its previous run's record lists no member)") for p in found), found


def test_after_the_flip_aws_stateless_pools_keep_the_ebs_driver():
    # Item 6's gap: a secondary installs its driver for database pools or the default class only; the former stack
    # provider keeps it for the volumes still bound there (the platform's, claims that named no class), whatever its
    # pools hold now.
    values = copy.deepcopy(dict(leaving_aws())[FLIPPED])
    for pool in values["cluster"]["pools"]:
        if pool["name"] in STAGING_POOLS and pool["name"] != "general":
            pool["count"] = 0
    run = run_internet(values, stack=STACK)
    assert "aws-ebs-csi" in {r.name for r in run.of_type(RELEASE)}
    assert {"storage-class-ebs-gp3", "storage-class-ebs-gp3-xfs"} <= {r.name for r in run.of_type(STORAGE_CLASS)}
    assert _default_classes(run) == {"storage-class-hcloud-volumes"}


@pytest.mark.parametrize("key, message", [
    ("seal", "adplatform:clusterServices.secrets.seal.type must be set while the control plane moves to hetzner"),
    ("defaultStorageProvider", "adplatform:clusterServices.defaultStorageProvider must be set while the flip to "
                               "hetzner is prepared"),
])
def test_a_flip_needs_the_seal_and_the_default_storage_provider_stated(key, message):
    # Unset, each follows the stack's provider, which the flip changes (items 6 and 7).
    values = _flip()
    if key == "seal":
        del values["clusterServices"]["secrets"]
    else:
        del values["clusterServices"][key]
    found = _internet_problems(values)
    assert any(p.startswith(message) for p in found), found
