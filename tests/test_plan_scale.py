"""tools/plan/scale.py, the benchmark of a large cluster's plan (issue 22: 500 servers in under a minute)."""

from __future__ import annotations

import pytest

from tools.plan.limits import config_of
from tools.plan.scale import MAX_POOL, STACK, bulk_pools, grown


@pytest.mark.parametrize("servers", [1, 99, 100, 101, 480, 1000])
def test_bulk_pools_hold_the_servers_asked_for_in_pools_the_config_accepts(servers):
    pools = bulk_pools(servers)
    assert sum(p["count"] for p in pools) == servers
    assert all(0 < p["count"] <= MAX_POOL for p in pools)
    assert len({p["name"] for p in pools}) == len(pools)


def test_the_grown_stack_is_a_valid_config_of_exactly_that_many_servers():
    cluster = config_of(STACK, *grown(500)).cluster
    assert cluster.control_plane.count + sum(p.count for p in cluster.pools) == 500
    own = config_of(STACK, *grown(0)).cluster
    assert {p.name for p in own.pools} <= {p.name for p in cluster.pools}, "the stack's own pools are kept"
