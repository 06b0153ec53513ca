"""What the stack's config says a live cluster must have, derived the way the program derives it."""

from __future__ import annotations

import providers
from components.services.autoscaler import placed_groups
from config.model import StackConfig
from config.rules import drilled_stores
from providers.base import node_group_name


def node_groups(cfg: StackConfig) -> list[str]:
    """The node groups the autoscaler must know, placed as the program places them (components/services/autoscaler.py
    `placed_groups`). Where a provider gives an unpinned pool one group per zone it chose (zonal_node_groups), the
    zones are not in the config: the pool's groups are expected as `<pool>-*` (checks.is_group)."""
    if not cfg.layers.cluster_services:
        return []
    zonal = providers.get(cfg.provider).zonal_node_groups
    found: list[str] = []
    for pool, location, _ in placed_groups(cfg.cluster):
        name = f"{pool.name}-*" if location is None and zonal else node_group_name(pool, location)
        if name not in found:
            found.append(name)
    return found


def drill_cronjobs(cfg: StackConfig) -> list[str]:
    """The restore drills' CronJobs in dr-drills (components/data/drills.py: `drill-<store>`)."""
    return [f"drill-{store}" for store in drilled_stores(cfg)]
