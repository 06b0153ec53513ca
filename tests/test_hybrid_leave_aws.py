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
from tests.test_hybrid import _internet_problems, _members, member_walk_problems, primary_raw, run_internet
from tools import mockrun
from tools.plan import model

STACK = "staging-internet"
HETZNER_LOCATIONS = ["fsn1", "nbg1", "hel1"]  # one network zone (eu-central): the new members' locations
EDGE_AWS = {"name": "edge", "role": "general", "count": 2, "provider": "aws",  # `provider` stated: it stays AWS's
            "locations": ["eu-central-1a", "eu-central-1b"]}
STAGING_POOLS = ("general", "scylladb", "redpanda", "clickhouse", "stateful")  # the staging profile's (config/profiles.py)
RELEASE = "kubernetes:helm.sh/v3:Release"
EXCLUDE = "node.kubernetes.io/exclude-from-external-load-balancers"

ON_AWS, HANDED_OVER, PREPARED, FLIPPED = ("control plane on aws", "gateway balancer on hetzner",
                                          "hetzner API balancer in every certificate", "hetzner the stack's provider")
LAST_REMOVED, POOLS_DRAINED, AWS_GONE = "control-plane-1 removed", "aws pools drained", "nothing left on aws"


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
    # Nothing runs on AWS any more: its part goes (its network, security group, EBS driver and credential).
    gone = copy.deepcopy(drained)
    for pool in gone["cluster"]["pools"]:
        if pool.get("provider") == "aws":
            pool["provider"] = "hetzner"
    del gone["cluster"]["providers"]["aws"]
    steps.append((AWS_GONE, gone))
    return steps


@pytest.fixture(scope="module")
def walk() -> list[tuple[str, mockrun.Run]]:
    return [(step, run_internet(values, stack=STACK)) for step, values in leaving_aws()]
