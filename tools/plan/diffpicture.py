"""The plan-diff picture (build/plan/<stack>.diff.svg): the head's architecture with what the change
adds or changes outlined (pools, stores, services, hostnames), what it removes listed under the
title, the nodes it drains and removes, drains and replaces, or resizes without a drain listed in their
pool's box (one colour per kind, in drain order, as tools/plan/nodes.py finds them), and the cost and
deploy-time deltas."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tools.plan import architecture, nodes
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


def _label(row: dict[str, Any]) -> str:
    """`replace: control-plane-2 (location)`: the kind, the node, the inputs that decide it."""
    return f"{row['action']}: {row['node']}" + (f" ({', '.join(row['inputs'])})" if row["inputs"] else "")


def node_notes(base: dict[str, Any] | None, head: dict[str, Any],
               d: dict[str, Any]) -> tuple[dict[str, list[tuple[str, str]]], list[tuple[str, str]]]:
    """Pool key -> (class, label) lines of its nodes that the change drains, replaces or resizes, in drain
    order; and the lines of such nodes whose pool is gone from the head's picture (listed under the title)."""
    pool_of = {s["urn"].rsplit("::", 1)[-1]: s["pool"]  # node name (the server resource's name) -> pool
               for plan in (base, head) for s in (plan or {}).get("servers") or [] if s.get("urn")}
    shown = {p["name"] for p in architecture.pools(head)}
    notes: dict[str, list[tuple[str, str]]] = defaultdict(list)
    gone = []
    for row in d.get("nodes") or []:
        pool, line = pool_of.get(row["node"]), (f"node-{row['action']}", _label(row))
        if pool in shown:
            notes[f"pool:{pool}"].append(line)
        else:
            gone.append((line[0], f"{line[1]} (pool {pool or 'unknown'}, removed)"))
    return dict(notes), gone


def _legend(d: dict[str, Any]) -> list[tuple[str, str]]:
    """One line per kind of node change present, in its colour, saying what Pulumi will do."""
    kinds = [k for k in nodes.ACTIONS if any(row["action"] == k for row in d.get("nodes") or [])]
    if not kinds:
        return []
    return [("sub", "nodes, listed in their pool's box in the order Pulumi drains them:"),
            *((f"node-{k}", f"{k}: {nodes.ACTIONS[k]}") for k in kinds)]


def svg(base: dict[str, Any] | None, head: dict[str, Any], d: dict[str, Any], base_ref: str) -> str:
    cost, time, cur = d["cost"], d["deployTime"], d["currency"] or ""
    money = ("cost unknown" if cost["delta"] is None else
             f"cost {cost['base']:,.2f} -> {cost['head']:,.2f} {cur}/month ({cost['delta']:+,.2f})")
    delta = time["delta"] or 0
    removed = sorted(_keys(base) - _keys(head))
    extra = [("sub", f"against {base_ref}: {len(d['added'])} resources to add, {len(d['changed'])} to change, "
                     f"{len(d['removed'])} to remove; {money}; first deploy {minutes(time['base'])} -> "
                     f"{minutes(time['head'])} ({'+' if delta >= 0 else '-'}{minutes(abs(delta))})"),
             ("sub", "outlined: green added, orange changed, purple a node replaced"
                     + (f"; removed: {', '.join(removed)}" if removed else ""))]
    notes, gone = node_notes(base, head, d)
    # A pool whose node is replaced says so by its outline too: its node goes away and comes back new.
    replaced = {key: "replaced" for key, lines in notes.items() if any(cls == "node-replace" for cls, _ in lines)}
    return architecture.svg(head, {**marks(base, head, d), **replaced}, [*extra, *_legend(d), *gone], notes)
