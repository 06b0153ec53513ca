"""The plan as a terminal report."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from tools.plan import cost as cost_model
from tools.plan import model
from tools.plan.timing import minutes


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return str(value)


def money(amount: float | None, currency: str | None) -> str:
    return "unknown" if amount is None else f"{amount:,.2f} {currency}"


def render(plan: dict[str, Any]) -> str:
    out = [f"Offline plan of stack '{plan['stack']}'  (provider {plan['provider']}, profile {plan['profile']}, "
           f"K3s {plan['k3sVersion']})", ""]
    out += _resources(plan) + [""] + _servers(plan) + [""] + _data_plane(plan) + _platform(plan) + _charts(plan) + [""] + _cost(plan) + [""]
    out += _time(plan) + [""] + _limits(plan) + _outputs(plan) + [""]
    warnings = plan["warnings"]
    out.append(f"Warnings ({len(warnings)}):" if warnings else "Warnings: none")
    out += [f"  ! {w}" for w in warnings]
    return "\n".join(out)


def _resources(plan: dict[str, Any]) -> list[str]:
    by_layer: dict[str, Counter] = defaultdict(Counter)
    for r in plan["resources"]:
        by_layer[r["layer"]][r["type"]] += 1
    out = [f"Resources: {len(plan['resources'])}"]
    for layer in model.layer_order(plan):
        types = by_layer[layer]
        out.append(f"  {layer} ({sum(types.values())})")
        out += [f"    {n:>3}  {t}" for t, n in sorted(types.items())]
    return out


def _servers(plan: dict[str, Any]) -> list[str]:
    costs = plan["cost"].get("pools", {})
    out = ["Servers by pool:"]
    for pool, rows in _pools(plan).items():
        first = rows[0]
        types = ",".join(sorted({str(r["type"]) for r in rows}))
        locations = ",".join(dict.fromkeys(str(r["location"]) for r in rows))  # a pool may span several, in order
        out.append(f"  {pool:<14} {len(rows):>2} x {types:<8} {locations:<5} role={first['role']!s:<10} "
                   f"k3s={first['k3s']!s:<6} protect={first['protect']!s:<5} "
                   + _pool_price(rows, costs.get(pool), plan["cost"].get("currency")))
    return out


def _pools(plan: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Pool -> its servers in plan order, and the existing hosts (cost.hosts) of the pools on them: in place of their
    rows from the nodes output (a bare-metal stack), or next to the pool before them in config order (a hybrid
    cluster, whose plan lists its cloud servers only)."""
    hosts = cost_model.hosts(plan)
    held = {host["pool"]: [h for h in hosts if h["pool"] == host["pool"]] for host in hosts}
    pools: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in plan["servers"]:
        pools[s["pool"]] = held.get(s["pool"]) or pools[s["pool"]] + [s]
    names = list(pools)
    config_order = [p["name"] for p in plan.get("pools") or []]
    for pool, rows in held.items():
        if pool not in pools:
            before = config_order[:config_order.index(pool)] if pool in config_order else config_order
            at = max((names.index(p) + 1 for p in before if p in names), default=len(names))
            names.insert(at, pool)
            pools[pool] = rows
    return {name: pools[name] for name in names}


def _pool_price(rows: list[dict[str, Any]], amount: float | None, currency: str | None) -> str:
    """What the pool costs a month; for existing hosts, those whose config states no price named as such."""
    unpriced = sum(1 for row in rows if "monthly" in row and row["monthly"] is None)
    if unpriced == len(rows):
        return "unpriced: no monthly price in config"
    text = f"{money(amount, currency):>14}/month"
    return text + (f" (+ {unpriced} host(s) unpriced: no monthly price in config)" if unpriced else "")


def _data_plane(plan: dict[str, Any]) -> list[str]:
    """Each store's shape: where staging's single replicas and production's quorums show side by side."""
    stores = plan["outputs"].get("dataPlane") or {}
    if not stores:
        return []
    out = ["Data plane:"]
    for store, info in stores.items():
        shape = info.get("shape") or {}
        if shape.get("backend") == "external":
            out.append(f"  {store:<14} external S3 {shape.get('endpoint')}")
            continue
        out.append(f"  {store:<14} replication {shape.get('replication')!s:<2} on {shape.get('nodes')} node(s) "
                   f"{','.join(shape.get('pools') or []):<12} cpu={shape.get('cpu')!s:<6} memory={shape.get('memory')!s:<9} "
                   f"storage={shape.get('storage')!s:<6}"
                   + (f" backup={shape['backup'] or 'off'}" if "backup" in shape else ""))
    return out + [""]


def _platform(plan: dict[str, Any]) -> list[str]:
    """Which platform components this stack runs (staging turns the heavy ones off) and where they answer."""
    components = plan["outputs"].get("platform") or {}
    if not components:
        return []
    out = ["Platform:"]
    for name, info in components.items():
        urls = " ".join((info.get("urls") or {}).values())
        out.append(f"  {name:<14} {'on ' if info.get('enabled') else 'off'} {urls}".rstrip())
    return out + [""]


def _charts(plan: dict[str, Any]) -> list[str]:
    out = ["Helm charts:"]
    out += [f"  {c['chart']:<34} {c['version'] or 'UNPINNED':<10} {c['repo']}  -> {c['namespace']}"
            for c in plan["charts"]]
    return out


def _cost(plan: dict[str, Any]) -> list[str]:
    cost = plan["cost"]
    if cost.get("total") is None:
        return ["Estimated cost: unknown (" + "; ".join(cost["unknown"]) + ")"]
    total = money(cost["total"], cost["currency"])
    if cost.get("totalMax") is not None:  # autoscaled pools: from every pool at its floor to every one at its max
        total = f"{cost['total']:,.2f} .. {money(cost['totalMax'], cost['currency'])}"
    out = [f"Estimated cost: {total} per month (prices of {cost['priceDate']}, {cost['note']})"]
    out += _providers(cost)
    out += _moving(cost)
    if cost.get("autoscaling"):
        out.append("  autoscaled pools (nodes min..max, one node, month min..max):")
        out += [f"    {name:<14} {p['min']:>3}..{p['max']:<3} {money(p['nodeMonthly'], cost['currency']):>14}/node "
                f"{p['monthly']['min']:>10,.2f} .. {money(p['monthly']['max'], cost['currency'])}"
                for name, p in cost["autoscaling"].items()]
    for title, key in (("by pool (at the floor)" if cost.get("autoscaling") else "by pool", "pools"),
                       ("by layer", "layers")):
        out.append(f"  {title}:")
        out += [f"    {name:<14} {money(amount, cost['currency']):>14}" + (_billed(cost, name) if key == "pools" else "")
                for name, amount in sorted(cost.get(key, {}).items(), key=lambda kv: (-kv[1], kv[0]))]
    if cost.get("unpriced"):
        out.append(f"  not priced ({len(cost['unpriced'])}):")
        out += [f"    {u['what']}: {u['reason']}" for u in cost["unpriced"]]
    if cost["unknown"]:
        out.append(f"  not included ({len(cost['unknown'])}): see warnings")
    return out


def _providers(cost: dict[str, Any]) -> list[str]:
    """A hybrid cluster: what each provider bills in its own currency, and the rate that converts it."""
    if not cost.get("providers"):
        return []
    exchange = cost.get("exchange")
    rates = f"; converted at {cost_model.exchange_text(exchange)}" if exchange else ""
    out = [f"  by provider (each in the currency it bills{rates}):"]
    for name, row in cost["providers"].items():
        line = f"    {name:<14} {money(row['billed'], row['currency']):>14}"
        if row["currency"] != cost["currency"]:
            line += f" = {money(row['monthly'], cost['currency'])}"
        out.append(f"{line}  ({row['basis']})")
    return out


def _moving(cost: dict[str, Any]) -> list[str]:
    """A step of a store's move to another provider: its volumes where they are, and once every instance moved."""
    if not cost.get("moving"):
        return []
    out = ["  volumes of stores moving to another provider (dataPlane.<store>.storageProvider), priced where they are "
           "as this step is applied: the program replaces no instance, each keeps its volumes until it is replaced "
           "(docs/providers.md \"Moving pools to another provider\"):"]
    for move in cost["moving"]:
        now, moved = move["now"], move["moved"]
        out.append(f"    {move['resource']}: {move['what']}: {_side(now)}" + (
            f"; {_side(moved)} once every instance is replaced" if "reason" not in move else f" ({move['reason']})"))
    if cost.get("movedTotal") is not None:
        out.append(f"  once every moving instance is replaced: {money(cost['movedTotal'], cost['currency'])} per month")
    return out


def _side(side: dict[str, Any]) -> str:
    return f"{money(side['billed'], side['currency'])} on {side['provider']} ({side['class']})"


def _billed(cost: dict[str, Any], pool: str) -> str:
    """`  (x USD billed by aws)` for a hybrid cluster's pool another provider bills in another currency."""
    return "".join(f"  ({money(row['pools'][pool], row['currency'])} billed by {name})"
                   for name, row in (cost.get("providers") or {}).items()
                   if row["currency"] != cost["currency"] and pool in row["pools"])


def _time(plan: dict[str, Any]) -> list[str]:
    t = plan["deployTime"]
    out = [f"Estimated first deploy: {minutes(t['criticalPathSeconds'])} on the critical path "
           f"(serial {minutes(t['serialSeconds'])}, parallelism x{t['parallelism']})"]
    if t.get("k3sReadySeconds") is not None:  # (a plan of older program code has no such figure)
        out.append(f"  K3s running on every node after {minutes(t['k3sReadySeconds'])} (the last node's K3s install)")
    out.append("  critical path:")
    out += [f"    {step['seconds']:>4}s  {step['name']}  ({step['type']})"
            + (f"  its part after {step['after']}" if "after" in step else "") for step in t["criticalPath"]]
    return out


def _limits(plan: dict[str, Any]) -> list[str]:
    """Let's Encrypt certificates and ScyllaDB's free tier, counted over every stack file."""
    found = plan.get("limits")
    if not found:
        return []
    out = ["Let's Encrypt certificates on a full re-create (production issuer counts; limit 50/week per registered domain):"]
    for stack, info in found["stacks"].items():
        kind = "wildcard" if info["wildcard"] else "per host"
        out.append(f"  {stack:<22} {info['certificates']:>2} {kind:<8} {info['issuer']:<22} -> "
                   f"{info['countedCertificates']:>2} counted under {info['registeredDomain']}")
    out += [f"  {domain}: {count} counted" for domain, count in found["certificatesPerRegisteredDomain"].items()]
    scylla = found["scylladb"]
    free = scylla["freeTier"]
    out.append(f"ScyllaDB over all stacks: {scylla['vcpus']} vCPUs, {scylla['storageGiB']} GiB "
               f"(free tier per organisation: {free['vcpus']} vCPUs, {free['storageGiB']} GiB)")
    return out + [""]


def _outputs(plan: dict[str, Any]) -> list[str]:
    out = ["Outputs:"]
    for key, value in plan["outputs"].items():
        text = _short(value)
        out.append(f"  {key}: {text[:150]}{'...' if len(text) > 150 else ''}")
    return out
