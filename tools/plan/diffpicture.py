"""The plan-diff picture (build/plan/<stack>.diff.svg): the head's architecture with what the change
adds or changes outlined (pools, stores, services, hostnames), what it removes listed under the
title, and the cost and deploy-time deltas."""

from __future__ import annotations

from typing import Any

from tools.plan import architecture
from tools.plan.timing import minutes


def _keys(plan: dict[str, Any] | None) -> set[str]:
    if not plan:
        return set()
    f = architecture.facts(plan)
    return ({f"pool:{p['name']}" for p in f["pools"]} | {f"store:{s}" for s in f["stores"]}
            | {f"service:{s['name']}" for s in f["services"]} | {f"host:{r['hostname']}" for r in f["routes"]})


def _owners(plan: dict[str, Any]) -> dict[str, str]:
    """urn -> the picture's element it belongs to: a server's pool, a store's or an ad service's resources."""
    owner = {s["urn"]: f"pool:{s['pool']}" for s in plan.get("servers") or [] if s.get("urn")}
    for unit in architecture.workloads(plan):
        if unit["category"] == "stores":
            owner[unit["urn"]] = f"store:{unit['name']}"
        elif unit["category"] == "ad services":
            owner[unit["urn"]] = f"service:{unit['name']}"
    return owner


def marks(base: dict[str, Any] | None, head: dict[str, Any], d: dict[str, Any]) -> dict[str, str]:
    """Element key -> added or changed, for the head's picture."""
    found = {key: "added" for key in _keys(head) - _keys(base)}
    owners = {**_owners(base or {"resources": [], "outputs": {}, "servers": []}), **_owners(head)}
    for row in (*d["added"], *d["removed"], *d["changed"]):
        key = owners.get(row["urn"])
        if key and key not in found:
            found[key] = "changed"
    return found


def svg(base: dict[str, Any] | None, head: dict[str, Any], d: dict[str, Any], base_ref: str) -> str:
    cost, time, cur = d["cost"], d["deployTime"], d["currency"] or ""
    money = ("cost unknown" if cost["delta"] is None else
             f"cost {cost['base']:,.2f} -> {cost['head']:,.2f} {cur}/month ({cost['delta']:+,.2f})")
    delta = time["delta"] or 0
    removed = sorted(_keys(base) - _keys(head))
    extra = [("sub", f"against {base_ref}: {len(d['added'])} resources to add, {len(d['changed'])} to change, "
                     f"{len(d['removed'])} to remove; {money}; first deploy {minutes(time['base'])} -> "
                     f"{minutes(time['head'])} ({'+' if delta >= 0 else '-'}{minutes(abs(delta))})"),
             ("sub", "outlined: green added, orange changed" + (f"; removed: {', '.join(removed)}" if removed else ""))]
    return architecture.svg(head, marks(base, head, d), extra)
