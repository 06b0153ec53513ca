"""Pools over several locations: round-robin by index, stable names, one spread group per location, and the
production control plane in three Hetzner locations so losing one keeps etcd's quorum."""

from __future__ import annotations

import pytest

from config import ConfigError, load
from providers.base import node_specs
from tests.conftest import SECRET_KEYS, base_raw, run_raw
from tests.runs import stack_plan
from tools import mockrun

SERVER = "hcloud:index/server:Server"
GROUP = "hcloud:index/placementGroup:PlacementGroup"
ZONE = ["fsn1", "nbg1", "hel1"]


def specs(**cluster) -> dict[str, str | None]:
    loaded = load("test", base_raw(cluster=cluster), SECRET_KEYS)
    return {s.name: s.location for s in node_specs(loaded)}


def problems(**cluster) -> list[str]:
    with pytest.raises(ConfigError) as err:
        run_raw(base_raw(cluster=cluster))
    assert mockrun.last_monitor.recorded == [], "nothing is created before the config is valid"
    return [str(p) for p in err.value.problems]


def test_production_control_plane_spans_three_locations(production):
    servers = {r.name: r for r in production.of_type(SERVER)}
    assert [servers[f"control-plane-{i}"].inputs["location"] for i in (1, 2, 3)] == ZONE
    assert {servers[f"general-{i}"].inputs["location"] for i in range(1, 6)} == {"fsn1"}, "pools stay in fsn1"
    api_lb = production.named("api-lb", "hcloud:index/loadBalancer:LoadBalancer")
    assert api_lb.inputs["location"] == "fsn1"
    targets = {r.name for r in production.of_type("hcloud:index/loadBalancerTarget:LoadBalancerTarget")}
    assert {f"api-lb-control-plane-{i}" for i in (1, 2, 3)} <= targets, "the API balancer reaches every location"


def test_one_spread_group_per_location_first_location_keeps_the_pools_group(production):
    group_of = {r.name: next(d.split("::")[-1] for d in r.dependencies if "placementGroup" in d)
                for r in production.of_type(SERVER)}
    assert group_of["control-plane-1"] == "spread-control-plane", "an existing server keeps its group"
    assert group_of["control-plane-2"] == "spread-control-plane-nbg1"
    assert group_of["control-plane-3"] == "spread-control-plane-hel1"
    assert group_of["general-4"] == "spread-general"


def test_round_robin_by_index_and_names_never_change():
    five = specs(controlPlane={"count": 5, "locations": ZONE})
    assert [five[f"control-plane-{i}"] for i in range(1, 6)] == ["fsn1", "nbg1", "hel1", "fsn1", "nbg1"]


def test_swapping_one_location_moves_only_its_nodes():
    """nbg1 closed to new servers: its entry becomes hel1; only the nodes in that entry are replaced."""
    one = specs(pools=[{"name": "general", "role": "general", "count": 4, "locations": ["fsn1", "nbg1"]}])
    two = specs(pools=[{"name": "general", "role": "general", "count": 4, "locations": ["fsn1", "hel1"]}])
    assert {n for n in one if one[n] != two[n]} == {"general-2", "general-4"}
    assert set(one) == set(two), "no node is renamed"


def test_locations_must_share_a_network_zone():
    found = problems(controlPlane={"locations": ["fsn1", "nbg1", "ash"]})
    assert any(p.startswith("adplatform:cluster.controlPlane.locations[2] must be a location of network zone "
                            "eu-central (fsn1, nbg1, hel1)") for p in found), found


def test_unknown_location_names_its_entry():
    found = problems(controlPlane={"locations": ["fsn1", "nbg9", "hel1"]})
    assert any(p.startswith("adplatform:cluster.controlPlane.locations[1] must be a Hetzner location") and
               "nbg9" in p for p in found), found


def test_location_and_locations_exclude_each_other():
    found = problems(controlPlane={"location": "fsn1", "locations": ZONE})
    assert any(p.startswith("adplatform:cluster.controlPlane.locations must not be set together with "
                            "cluster.controlPlane.location") for p in found), found


def test_locations_are_distinct():
    found = problems(controlPlane={"locations": ["fsn1", "fsn1", "hel1"]})
    assert any(p.startswith("adplatform:cluster.controlPlane.locations must list one or more distinct locations")
               for p in found), found


def test_production_refuses_a_location_holding_a_majority_of_servers():
    found = problems(controlPlane={"count": 3, "locations": ["fsn1", "nbg1"]})
    assert any(p.startswith("adplatform:cluster.controlPlane.locations must spread the 3 servers so that losing "
                            "one location keeps etcd's quorum (the busiest would hold 2)") for p in found), found
    assert specs(controlPlane={"count": 5, "locations": ZONE})  # 2/2/1: any one location lost leaves 3 of 5


def test_plan_shows_each_pools_locations(production):
    from tools.plan import model, report
    lines = report.render(stack_plan("production")).splitlines()
    control_plane = next(line for line in lines if line.strip().startswith("control-plane "))
    assert "fsn1,nbg1,hel1" in control_plane
    general = next(line for line in lines if line.strip().startswith("general "))
    assert " fsn1 " in general and "nbg1" not in general


def test_scylladb_over_locations_needs_equal_racks_and_three_of_them_in_production():
    uneven = problems(pools=[{"name": "scylladb", "locations": ["fsn1", "nbg1"]}])  # 3 nodes over 2 locations
    assert ("adplatform:cluster.pools[scylladb].count must be a multiple of its 2 locations (ScyllaDB runs one "
            "equal rack per location; the rest would stay idle), got 3") in uneven
    assert any(p.startswith("adplatform:cluster.pools[scylladb].locations must list at least 3 locations (or one)")
               for p in uneven), uneven
    load("test", base_raw(cluster={"pools": [{"name": "scylladb", "locations": ZONE}]}), SECRET_KEYS)  # accepted
