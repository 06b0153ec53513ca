"""What the stack's config says a live cluster must have, derived the way the program derives it."""

from __future__ import annotations

from components.services.autoscaler import shares
from config.model import StackConfig, pool_locations
from config.rules import drilled_stores
from providers.base import node_group_name


def node_groups(cfg: StackConfig) -> list[str]:
    """The node groups the autoscaler must know (components/services/autoscaler.py `requests`: one per autoscaled
    pool and location with a share of its extra nodes)."""
    if not cfg.layers.cluster_services:
        return []
    found = []
    for pool in cfg.cluster.autoscaled_pools:
        locations = pool_locations(pool, cfg.cluster)
        found += [node_group_name(pool, location)
                  for location, share in zip(locations, shares(pool.autoscaling.extra, len(locations))) if share]
    return found


def drill_cronjobs(cfg: StackConfig) -> list[str]:
    """The restore drills' CronJobs in dr-drills (components/data/drills.py: `drill-<store>`)."""
    return [f"drill-{store}" for store in drilled_stores(cfg)]
