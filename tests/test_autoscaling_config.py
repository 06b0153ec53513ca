"""Pool autoscaling config: refused where nodes cannot be created or removed safely, named with the value."""

from __future__ import annotations

import copy

import pytest

from config import ConfigError, load
from tests.conftest import SECRET_KEYS, base_raw
from tests.test_baremetal import raw as baremetal_raw


def problems(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load("test", raw, SECRET_KEYS)
    return [str(p) for p in err.value.problems]


def with_pools(*pools: dict, **overrides) -> dict:
    return base_raw(cluster={"pools": list(pools)}, **overrides)


def test_autoscaled_pool_keeps_min_nodes_and_may_add_the_rest():
    cluster = load("test", with_pools({"name": "general", "autoscaling": {"min": 3, "max": 7}}), SECRET_KEYS).config.cluster
    general = next(p for p in cluster.pools if p.name == "general")
    assert general.count == 3 and general.autoscaling.extra == 4
    assert [p.name for p in cluster.autoscaled_pools] == ["general"]


def test_min_above_max_is_refused():
    assert problems(with_pools({"name": "general", "autoscaling": {"min": 5, "max": 3}})) == [
        "adplatform:cluster.pools[general].autoscaling must have 0 <= min <= max and 1 <= max <= 100 "
        "(given min 5, max 3), got {'min': 5, 'max': 3}"]


def test_count_other_than_min_is_refused():
    [found] = problems(with_pools({"name": "general", "count": 3, "autoscaling": {"min": 5, "max": 6}}))
    assert found.startswith("adplatform:cluster.pools[general] count (3) must not differ from autoscaling.min (5)")


@pytest.mark.parametrize("pool", ["scylladb", "redpanda", "clickhouse", "stateful"])
def test_database_pools_never_autoscale(pool):
    assert problems(with_pools({"name": pool, "autoscaling": {"min": 3, "max": 6}})) == [
        f"adplatform:cluster.pools[{pool}].autoscaling must not be set on a pool of the database role {pool!r}: its "
        "data is tied to its nodes, which the autoscaler would remove; give the pool a fixed count (autoscaling is "
        "accepted for roles general), got {'min': 3, 'max': 6}"]


def test_converged_pools_never_autoscale():
    raw = base_raw(profile="compact", cluster={"pools": [{"name": "extra", "role": "converged",
                                                         "autoscaling": {"min": 0, "max": 2}}]})
    assert any(p.startswith("adplatform:cluster.pools[extra].autoscaling must not be set on a pool of the database "
                            "role 'converged'") for p in problems(raw))


def test_bare_metal_refuses_autoscaling():
    raw = baremetal_raw()
    raw["cluster"] = copy.deepcopy(raw["cluster"])
    raw["cluster"].setdefault("pools", []).append({"name": "burst", "role": "general", "autoscaling": {"min": 0, "max": 2}})
    assert "adplatform:cluster.pools[burst].autoscaling must not be set with provider: baremetal (no API creates a " \
           "host); give the pool a fixed count (autoscaling is accepted on hetzner, aws, gcp, azure), got " \
           "{'min': 0, 'max': 2}" in problems(raw)


def test_scale_down_settings_default_and_are_validated():
    cfg = load("test", base_raw(), SECRET_KEYS).config.cluster_services.autoscaler
    assert (cfg.scale_down_delay_after_add, cfg.scale_down_unneeded_time, cfg.scale_down_utilization_threshold) == \
        ("10m", "10m", 0.5)
    raw = base_raw()
    raw["clusterServices"]["autoscaler"] = {"scaleDownDelayAfterAdd": "ten minutes", "scaleDownUnneededTime": "0m",
                                            "scaleDownUtilizationThreshold": 1.5}
    found = problems(raw)
    assert "adplatform:clusterServices.autoscaler.scaleDownDelayAfterAdd must be a positive Go duration in " \
           "hours/minutes/seconds such as 10m or 1h30m, got 'ten minutes'" in found
    assert any(p.startswith("adplatform:clusterServices.autoscaler.scaleDownUnneededTime must be a positive Go "
                            "duration") and p.endswith("got '0m'") for p in found)
    assert "adplatform:clusterServices.autoscaler.scaleDownUtilizationThreshold must be a share of a node's " \
           "allocatable resources above 0 and at most 1, such as 0.5, got 1.5" in found


def test_a_stack_count_on_an_autoscaled_profile_pool_fixes_its_size():
    """Production's general pool autoscales by default; a stack that sets its count gets exactly that many."""
    cluster = load("test", with_pools({"name": "general", "count": 7}), SECRET_KEYS).config.cluster
    general = next(p for p in cluster.pools if p.name == "general")
    assert general.count == 7 and general.autoscaling is None
    default = next(p for p in load("test", base_raw(), SECRET_KEYS).config.cluster.pools if p.name == "general")
    assert (default.count, default.autoscaling.min, default.autoscaling.max) == (5, 5, 10)


def test_hetzner_node_group_names_must_leave_room_for_server_names():
    from tests.conftest import run_raw
    pool = {"name": "burst-for-campaigns", "role": "general", "autoscaling": {"min": 0, "max": 2}}
    with pytest.raises(ConfigError) as err:
        run_raw(base_raw(profile="staging", cluster={"location": "fsn1", "pools": [pool]}), stack="staging-europe-central")
    assert [str(p) for p in err.value.problems] == [
        "adplatform:cluster.pools[burst-for-campaigns].autoscaling needs shorter names: the "
        "autoscaler's node groups ['adp-staging-europe-central-burst-for-campaigns-fsn1'] "
        "(adp-<stack>-<pool>-<location>) must be at most 46 characters, so that their servers' names stay DNS "
        "labels; shorten the pool's (or the stack's) name, got {'min': 0, 'max': 2}"]


def test_pools_off_the_stack_provider_never_autoscale():
    """Hybrid stacks: a bare-metal pool cannot grow, and node groups are the stack provider's only."""
    from tests.test_hybrid import STACK
    raw = base_raw(cluster=copy.deepcopy(STACK["adplatform:cluster"]), bareMetal=copy.deepcopy(STACK["adplatform:bareMetal"]))
    raw["cluster"]["pools"].append({"name": "burst", "role": "general", "provider": "baremetal",
                                    "autoscaling": {"min": 0, "max": 2}})
    assert any(p.startswith("adplatform:cluster.pools[burst].autoscaling must not be set with provider: baremetal")
               for p in problems(raw))
    raw["cluster"]["pools"][-1]["provider"] = "aws"
    assert any(p.startswith("adplatform:cluster.pools[burst].autoscaling must not be set on a pool of provider 'aws': "
                            "only pools on the stack's provider (hetzner) autoscale") for p in problems(raw))
