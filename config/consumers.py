"""Who uses each data store, derived once from the stack config: the one list the data plane creates a user
per consumer from (components/data), and the ad services and the platform take their own credential from.

A consumer is an enabled ad service that lists the store (adServices.services.<name>.stores) or an enabled
platform component that needs it (config/platform.py NEEDS). PostgreSQL is not here: its consumers are the
databases of dataPlane.postgres.databases, one owner role each (components/data/postgres.py); object storage
has its own identities (config/data.py BUCKET_OWNERS).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from config.platform import NEEDS

if TYPE_CHECKING:
    from config.model import StackConfig

def redpanda_prefix(consumer: str) -> str:
    """What a consumer's Redpanda topics, consumer groups and transactional ids are named: `<consumer>.<anything>`
    (the dot ends the prefix, so `bidding.` never matches `bidding-v2.`; components/data/redpanda.py ACLs)."""
    return f"{consumer}."


# Stores that give each consumer a user of its own (the rest: see the module's docstring).
USER_STORES = ("scylladb", "redpanda", "clickhouse", "dragonfly")
ADS, PLATFORM = "ads", "platform"  # the layer a consumer belongs to


@dataclass(frozen=True)
class Consumer:
    """One user of one store."""

    name: str  # the ad service's or platform component's name: also its user/role name in the store
    layer: str  # ADS (internet-facing ad services, one team namespace) or PLATFORM
    keyspace: str | None = None  # ScyllaDB: the keyspace it is granted (adServices.services.<name>.keyspace)
    reads: tuple[str, ...] = ()  # other consumers of the same store whose data it may read (readsFrom)


def keyspace_of(cfg: "StackConfig", service: str) -> str | None:
    """The ScyllaDB keyspace an ad service uses: its own `keyspace`, else the first configured one."""
    svc = cfg.ad_services.services[service]
    if "scylladb" not in svc.stores:
        return None
    return svc.keyspace or (cfg.data_plane.scylladb.keyspaces[0] if cfg.data_plane.scylladb.keyspaces else None)


def store_consumers(cfg: "StackConfig") -> dict[str, tuple[Consumer, ...]]:
    """Store (USER_STORES) -> its consumers, ad services first (in config order), then platform components."""
    found: dict[str, list[Consumer]] = {store: [] for store in USER_STORES}
    if cfg.layers.ad_services:
        services = cfg.ad_services.enabled
        for name, svc in services.items():
            for store in svc.stores:
                if store in found:
                    reads = tuple(other for other in svc.reads_from
                                  if other in services and store in services[other].stores)
                    found[store].append(Consumer(name, ADS, keyspace_of(cfg, name) if store == "scylladb" else None,
                                                 reads))
    if cfg.layers.platform:
        for name, needs in NEEDS.items():
            if getattr(cfg.platform, name).enabled:
                found.update({store: [*found[store], Consumer(name, PLATFORM)]
                              for store in needs.stores if store in found})
    return {store: tuple(consumers) for store, consumers in found.items()}


__all__ = ["ADS", "PLATFORM", "USER_STORES", "Consumer", "keyspace_of", "store_consumers"]
