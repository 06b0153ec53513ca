"""Hetzner Cloud as a hybrid cluster's secondary provider outside eu-central (providers/hetzner.py network_location):
the secondary part's config has no cluster.location (providers/hybrid.py part), so its private network takes its
network zone from its pools' locations. Hetzner attaches a server only to a subnet of its location's network zone
(ash: us-east), so a subnet in the default location's zone (eu-central) would fail every server at `pulumi up`."""

from __future__ import annotations

from typing import Any

from tests.runs import UP_TO_K3S
from tests.test_hybrid import HZ, _internet_problems, primary_raw, run_internet

SUBNET = "hcloud:index/networkSubnet:NetworkSubnet"
SERVER = "hcloud:index/server:Server"


def aws_with_hetzner(*locations: str) -> dict[str, Any]:
    """Staging on AWS (eu-central-1) with its two Hetzner agents in `locations`."""
    values = primary_raw("aws", location="eu-central-1a", firewallQuotas={"aws": 100})
    values["cluster"]["pools"] = [dict(HZ, locations=list(locations))]
    return values


def test_a_hetzner_pool_in_ash_behind_an_aws_stack_gets_a_us_east_subnet():
    run = run_internet({**aws_with_hetzner("ash"), "layers": UP_TO_K3S}, stack="staging-internet")
    assert [r.inputs["networkZone"] for r in run.of_type(SUBNET)] == ["us-east"]
    assert {r.name: r.inputs["location"] for r in run.of_type(SERVER)} == {"hz-1": "ash", "hz-2": "ash"}


def test_a_hetzner_pool_spanning_two_network_zones_is_refused_naming_the_location():
    found = _internet_problems(aws_with_hetzner("ash", "fsn1"))
    assert any(p.startswith("adplatform:cluster.pools[hz].locations[1] must be a location of network zone us-east "
                            "(ash), the zone of cluster.pools[hz].locations[0] (ash)") and "fsn1" in p
               for p in found), found


def test_a_control_plane_move_into_hetzner_across_two_network_zones_names_the_move_keys_only():
    """The moving members' locations are cluster.controlPlane.move.locations in the stack file (the Hetzner part sees
    them as its control plane's `locations`): the message names that key for the location refused and for the one
    whose zone it must share, with the value given and the zone's locations accepted."""
    values = primary_raw("gcp", controlPlane={"move": {"provider": "hetzner", "locations": ["fsn1", "ash"],
                                                       "added": 1}})
    [found] = [p for p in _internet_problems(values) if "network zone" in p]
    assert found.startswith("adplatform:cluster.controlPlane.move.locations[1] must be a location of network zone "
                            "eu-central (")
    assert "the zone of cluster.controlPlane.move.locations[0] (fsn1)" in found and found.endswith("got 'ash'")
    assert "cluster.controlPlane.locations" not in found
