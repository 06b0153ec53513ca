"""Estimated monthly cost of a plan, from dated price tables kept as data (tools/plan/prices/).

One YAML file per provider says how to read its billable resources (which input holds the type,
the location, the pool) and what each type costs per month in each region, with the date and the
source of the prices. Beyond the provider resources it prices what the cluster itself makes the cloud
create: the block storage its claims ask for (tools/plan/storage.py), the load balancers the cloud
controller makes for LoadBalancer Services (the gateway), and on bare metal each host's configured monthly
price. Nothing is guessed: a type, region or billable resource the table does not know is listed under
`unknown` and left out of the total; what is deliberately not priced (usage-based charges, volumes that
exist only while a job runs, hosts without a price) is listed under `unpriced` with the reason.

A hybrid cluster's pools on another provider (and the volumes of that provider's CSI driver) are priced from
that provider's table in its currency, then converted into the stack's currency at the dated, sourced exchange
rate of prices/exchange-rates.yaml: the plan shows each provider's subtotal in its own currency, the rate and
its date, and one total.

While a store moves onto another provider's volumes (`dataPlane.<store>.storageProvider`, config/data.py Movable) its
spec names the new provider's class, but the program replaces no instance: each keeps its volumes on the old provider
until it is replaced by hand (docs/providers.md "Moving pools to another provider"). Such a step's volumes are priced
there, and the estimate lists them under `moving` with what they cost once every instance is replaced (`movedTotal`).
"""

from __future__ import annotations

import importlib
from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Any

from pydantic.alias_generators import to_camel

from config.catalog import STORE_ROLES
from tools import yamlread
from tools.plan import placement, storage

PRICES = Path(__file__).resolve().parent / "prices"
EXCHANGE_RATES = PRICES / "exchange-rates.yaml"
SHARED = "(shared)"
HOURS_PER_MONTH = 730  # what AWS, GCP and Azure use to turn hourly prices into monthly ones
GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
SERVICE = "kubernetes:core/v1:Service"
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"


@cache
def table(provider: str) -> dict[str, Any] | None:
    path = PRICES / f"{provider}.yaml"
    return yamlread.safe_load(path.read_text()) if path.exists() else None


def _at(inputs: Any, path: list[Any]) -> Any:
    for step in path:
        if isinstance(inputs, dict):
            inputs = inputs.get(step)
        elif isinstance(inputs, list) and isinstance(step, int) and step < len(inputs):
            inputs = inputs[step]
        else:
            return None
    return inputs


@cache
def exchange_rates() -> dict[str, Any]:
    return yamlread.safe_load(EXCHANGE_RATES.read_text())


def rate(source: str, target: str) -> float | None:
    """What one unit of `source` is in `target` at the table's reference rates (quoted per one unit of its base
    currency, as the ECB quotes per euro), or None when the table has no rate for either."""
    if source == target:
        return 1.0
    rates = exchange_rates()
    per_base = {rates["base"]: 1.0, **{code: float(value) for code, value in rates["perBase"].items()}}
    if source not in per_base or target not in per_base:
        return None
    return per_base[target] / per_base[source]


def servers(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan's servers with pool, role, type and location, read the way each provider's price table says: the
    stack provider's, then a hybrid cluster's pools on other providers."""
    rows = []
    for prices in _tables(plan.get("provider") or ""):
        spec = prices.get("servers")
        for r in plan["resources"] if spec else []:
            if r["type"] == spec["resource"]:
                rows.append({"name": _at(r["inputs"], spec["name"]) or r["name"], "urn": r["urn"],
                             "pool": _at(r["inputs"], spec["pool"]) or "(no pool)",
                             "role": _at(r["inputs"], spec["role"]), "k3s": _at(r["inputs"], spec["k3s"]),
                             "type": _at(r["inputs"], spec["size"]),
                             "location": _location(prices, plan, spec, r["inputs"]), "protect": r["protect"]})
    return rows


def _region(prices: dict[str, Any], location: Any) -> str | None:
    return (prices.get("regions") or {}).get(location)


def _location(prices: dict[str, Any], plan: dict[str, Any], spec: dict[str, Any], inputs: dict[str, Any]) -> Any:
    """The resource's own location input, or the stack's region from provider config (aws:region) for
    resources that have none."""
    if "location" in spec or "regionConfig" not in prices:
        return _at(inputs, spec.get("location", ["location"]))
    return (plan.get("config") or {}).get(prices["regionConfig"])


def _stack_region(prices: dict[str, Any], plan: dict[str, Any]) -> str | None:
    """Where the cluster's own volumes and load balancers go: the region of its first server."""
    if "regionConfig" in prices:
        return _region(prices, (plan.get("config") or {}).get(prices["regionConfig"]))
    return next((region for s in plan.get("servers") or [] if (region := _region(prices, s["location"]))), None)


def estimate(plan: dict[str, Any]) -> dict[str, Any]:
    provider = plan.get("provider") or ""
    prices = table(provider)
    if prices is None:
        return {"currency": None, "total": None, "totalMax": None, "autoscaling": {}, "pools": {}, "layers": {},
                "items": [], "unpriced": [], "unknown": [
            f"no price table for provider {provider!r} (tools/plan/prices/{provider}.yaml)"]}
    items: list[dict[str, Any]] = []
    unpriced: list[dict[str, str]] = []
    unknown: list[str] = []
    _resources(plan, prices, items, unknown)
    region = _stack_region(prices, plan)
    moving: list[dict[str, Any]] = []
    _volumes(plan, prices, region, items, unpriced, unknown, moving)
    _service_load_balancers(plan, prices, region, items, unpriced, unknown)
    # A hybrid stack's pools on existing hosts (providers/hybrid.py) are priced as bare metal is: by their config.
    if prices.get("hostPrices"):
        _hosts(plan, prices, items, unpriced)
    else:
        _hosts(plan, table("baremetal") or {}, items, unpriced, billed_by="baremetal")
    unpriced += [{"what": what, "reason": reason} for what, reason in (prices.get("unpriced") or {}).items()]
    items = _converted(items, prices["currency"], unknown)
    pools = _sum(items, "pool")
    total = round(sum(item["monthly"] for item in items), 2)
    scaling = autoscaling(plan, prices, items, pools, unknown)
    found = {"currency": prices["currency"], "source": prices["source"], "priceDate": str(prices["date"]),
             "note": prices.get("note", ""), "items": items, "unpriced": unpriced, "unknown": unknown,
             "pools": pools, "layers": _sum(items, "layer"), "total": total,
             "autoscaling": scaling,
             # With autoscaled pools the month costs between `total` (every pool at its floor, what Pulumi creates)
             # and this (every autoscaled pool at its max).
             "totalMax": round(total + sum(p["addedMonthly"] for p in scaling.values()), 2) if scaling else None}
    if any("billedBy" in item for item in items):  # a hybrid cluster: a single provider's plan stays as it was
        found.update(_by_provider(provider, prices, items))
    if moving:  # only a step of a move: every other plan stays as it was
        found.update(_moved(moving, prices["currency"], total))
    return found


def _moved(moving: list[dict[str, Any]], currency: str, total: float) -> dict[str, Any]:
    """The moving stores' volumes, and the total once each of their instances is replaced (None without a rate)."""
    def converted(side: dict[str, Any]) -> float | None:
        factor = rate(side["currency"], currency) if side.get("billed") is not None else None
        return None if factor is None else side["billed"] * factor
    changes = [(converted(move["now"]), converted(move["moved"])) for move in moving]
    known = all(now is not None and moved is not None for now, moved in changes)
    return {"moving": moving,
            "movedTotal": round(total + sum(moved - now for now, moved in changes), 2) if known else None}


def _converted(items: list[dict[str, Any]], currency: str, unknown: list[str]) -> list[dict[str, Any]]:
    """Every item in the stack's currency. An item another provider bills (`billedBy`) keeps what it costs in that
    provider's currency (`billed`, `currency`) and its `monthly` becomes the stack currency at the exchange rate;
    one with no rate is named under `unknown`, never summed unconverted."""
    kept = []
    for item in items:
        if "billedBy" not in item:
            kept.append(item)
            continue
        source = table(item["billedBy"])["currency"]
        factor = rate(source, currency)
        if factor is None:
            unknown.append(f"{item['resource']}: {item['what']} is billed by {item['billedBy']} in {source}, and "
                           f"tools/plan/prices/exchange-rates.yaml has no {source} to {currency} rate")
            continue
        kept.append({**item, "currency": source, "billed": item["monthly"], "monthly": item["monthly"] * factor})
    return kept


def exchange_text(exchange: dict[str, Any]) -> str:
    """`the EUR reference rate of 2025-12-31: 1 EUR = 1.1750 USD`: the rate a plan converted at, and its date."""
    return (f"the {exchange['base']} reference rate of {exchange['date']}: "
            + ", ".join(f"1 {exchange['base']} = {per:.4f} {code}" for code, per in exchange["perBase"].items()))


def _basis(prices: dict[str, Any]) -> str:
    """Where a provider's figures come from: its dated table, or the config for existing hosts."""
    return (f"as {prices['hostPrices']}.hosts[].monthlyPrice states" if prices.get("hostPrices")
            else f"prices of {prices['date']}")


def _by_provider(provider: str, prices: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    """Per provider: what it bills a month in its own currency, per pool too; and the exchange rates used."""
    providers: dict[str, dict[str, Any]] = {}
    for item in sorted(items, key=lambda item: (item.get("billedBy", provider) != provider, item.get("billedBy", ""))):
        name = item.get("billedBy", provider)
        row = providers.setdefault(name, {"currency": item.get("currency", prices["currency"]),
                                          "basis": _basis(table(name)), "billed": 0.0, "monthly": 0.0,
                                          "pools": defaultdict(float)})
        row["billed"] += item.get("billed", item["monthly"])
        row["monthly"] += item["monthly"]
        row["pools"][item["pool"]] += item.get("billed", item["monthly"])
    for row in providers.values():
        row.update(billed=round(row["billed"], 2), monthly=round(row["monthly"], 2),
                   pools={pool: round(amount, 2) for pool, amount in row["pools"].items()})
    currencies = sorted({row["currency"] for row in providers.values()} - {prices["currency"]})
    rates = exchange_rates()
    return {"providers": providers,
            "exchange": {"base": rates["base"], "date": str(rates["date"]), "source": rates["source"],
                         "perBase": {code: float(rates["perBase"][code]) for code in currencies
                                     if code in rates["perBase"]}} if currencies else None}


def autoscaling(plan: dict[str, Any], prices: dict[str, Any], items: list[dict[str, Any]], pools: dict[str, float],
                unknown: list[str]) -> dict[str, dict[str, Any]]:
    """Per autoscaled pool: its node bounds and monthly cost from the floor (what Pulumi creates) to the max. A node
    the autoscaler adds costs what one of the pool's servers in the plan costs (the same type and location: the
    node group's template); a pool with no server yet (min 0) is priced from the table by its type and location,
    and listed as unknown where the table needs more than that (a cloud server's disk)."""
    name_of = {r["urn"]: r["name"] for r in plan["resources"]}
    found: dict[str, dict[str, Any]] = {}
    for pool in plan.get("pools") or []:
        bounds = pool.get("autoscaling")
        if not bounds:
            continue
        servers = [name_of.get(s["urn"]) for s in plan.get("servers") or [] if s["pool"] == pool["name"]]
        priced = [sum(i["monthly"] for i in items if i["resource"] == name) for name in servers if name]
        if not priced:
            priced = _template_price(plan, prices, pool)
        if not priced:
            unknown.append(f"pool {pool['name']}: no server of it in the plan to price the up to {bounds['max']} "
                           "nodes the cluster autoscaler may add")
            continue
        node = sum(priced) / len(priced)
        added = (bounds["max"] - pool["nodes"]) * node
        floor = pools.get(pool["name"], 0.0)
        found[pool["name"]] = {"min": bounds["min"], "max": bounds["max"], "nodeMonthly": round(node, 2),
                               "addedMonthly": round(added, 2),
                               "monthly": {"min": round(floor, 2), "max": round(floor + added, 2)}}
    return found


def _template_price(plan: dict[str, Any], prices: dict[str, Any], pool: dict[str, Any]) -> list[float]:
    """[monthly price of one node] from the pool's server type and location alone, or [] when that is not enough."""
    spec = prices.get("servers")
    if not spec or not pool.get("serverType"):
        return []
    inputs: dict[str, Any] = {}
    for path, value in ((spec["size"], pool["serverType"]), (spec.get("location", ["location"]), pool["location"])):
        node = inputs
        for step in path[:-1]:
            node = node.setdefault(step, {})
        node[path[-1]] = value
    missing: list[str] = []
    charges = _charges(spec, inputs, _region(prices, _location(prices, plan, spec, inputs)), missing, pool["name"],
                       prices)
    return [sum(monthly for _, monthly in charges)] if charges and not missing else []


def _sum(items: list[dict[str, Any]], key: str) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for item in items:
        totals[item[key]] += item["monthly"]
    return {name: round(total, 2) for name, total in totals.items()}


def _resources(plan: dict[str, Any], prices: dict[str, Any], items: list[dict[str, Any]], unknown: list[str]) -> None:
    """The provider resources the program creates (servers, their disks and addresses, load balancers): each priced
    from the table of the provider that bills it, in that provider's currency (a hybrid cluster's pools on another
    provider are marked `billedBy` it, and converted later)."""
    provider = plan["provider"]
    pool_of = {s["urn"]: s["pool"] for s in plan.get("servers") or servers(plan)}
    for r in plan["resources"]:
        owner = next((t for t in _tables(provider) if r["custom"] and r["type"].startswith(t["namespace"])), None)
        if owner is None:
            continue
        spec = _spec_for(owner, r["type"])
        if spec is None:
            if r["type"] not in owner.get("free", []) and not r["type"].startswith("pulumi:providers:"):
                unknown.append(f"{r['type']} {r['name']} is billable but not in the {owner['provider']} price table")
            continue
        location = _location(owner, plan, spec, r["inputs"])
        region = _region(owner, location)
        if region is None:
            unknown.append(f"{r['name']}: no {owner['provider']} prices for location {location!r}")
            continue
        for label, monthly in _charges(spec, r["inputs"], region, unknown, r["name"], owner):
            items.append(_billed({"resource": r["name"], "what": label, "pool": pool_of.get(r["urn"], SHARED),
                                  "layer": r["layer"], "monthly": monthly}, owner, provider))


def _billed(item: dict[str, Any], owner: dict[str, Any], provider: str) -> dict[str, Any]:
    """The item, marked as billed by `owner` when that is not the stack's provider."""
    return item if owner["provider"] == provider else {**item, "billedBy": owner["provider"]}


def _tables(provider: str) -> tuple[dict[str, Any], ...]:
    """The stack provider's price table first, then the other providers' (a hybrid cluster's pools)."""
    own = table(provider)
    return ((own,) if own is not None else ()) + _other_tables(provider)


@cache
def _other_tables(provider: str) -> tuple[dict[str, Any], ...]:
    """The price tables of the providers other than `provider` (a hybrid cluster's pools), each with its name. A
    provider's table has a resource `namespace`; the exchange rates next to them have none."""
    return tuple({**found, "provider": path.stem} for path in sorted(PRICES.glob("*.yaml"))
                 if path.stem != provider and "namespace" in (found := table(path.stem) or {}))


def _storage_classes(plan: dict[str, Any], prices: dict[str, Any]) -> dict[str | None, dict[str, Any]]:
    """StorageClass name -> {provisioner, parameters}; None -> the default class."""
    classes: dict[str | None, dict[str, Any]] = {
        name: {"provisioner": provisioner, "parameters": {}}
        for name, provisioner in ((prices.get("storage") or {}).get("builtinClasses") or {}).items()}
    for r in plan["resources"]:
        if r["type"] == STORAGE_CLASS:
            metadata = r["inputs"].get("metadata") or {}
            found = {"provisioner": r["inputs"].get("provisioner"), "parameters": r["inputs"].get("parameters") or {}}
            classes[metadata.get("name")] = found
            if (metadata.get("annotations") or {}).get(DEFAULT_CLASS) == "true":
                classes[None] = found
    return classes


def _volumes(plan: dict[str, Any], prices: dict[str, Any], region: str | None, items: list[dict[str, Any]],
             unpriced: list[dict[str, str]], unknown: list[str], moving: list[dict[str, Any]]) -> None:
    """Block storage the cluster claims, per GB-month of the class's backing disk; replicas multiply. A moving
    store's claims are priced where its instances' volumes are (_located)."""
    spec = prices.get("storage") or {}
    classes = _storage_classes(plan, prices)
    pools_of_role = defaultdict(set)
    for s in plan.get("servers") or []:
        pools_of_role[s["role"]].add(s["pool"])
    moves = _moves(plan)
    for claim in storage.claims(plan):
        if moves:
            claim = _located(plan, claim, classes, prices, moves, moving)
        label = f"{claim['count']} x {claim['gb']:g} GiB {claim['what']}" if claim["gb"] is not None else claim["what"]
        where = f"{claim['resource']}: {label}"
        storage_class = classes.get(claim["class"])
        if claim.get("transient"):
            unpriced.append({"what": where, "reason": claim["transient"]})
        elif claim["gb"] is None:
            unknown.append(f"{where}: {claim['reason']}")
        elif storage_class is None:
            unknown.append(f"{where}: storage class {claim['class']!r} is not created by the program")
        elif storage_class["provisioner"] in (spec.get("local") or {}):
            unpriced.append({"what": where, "reason": f"{claim['class']}: {spec['local'][storage_class['provisioner']]}"})
        else:
            # A hybrid cluster's class of another provider's CSI driver: its disks, in that provider's region.
            owner = _disk_owner(prices, storage_class["provisioner"])
            where_region = region if owner is prices else _stack_region(owner, plan)
            monthly = _volume_price(owner.get("storage") or {}, storage_class, where_region, claim["gb"])
            if monthly is None:
                unknown.append(f"{where}: no {where_region} price for {storage_class['provisioner']} "
                               f"{storage_class['parameters']} volumes")
                continue
            # A moving store's old volumes: on the role's pools of the provider holding them.
            mine = owner is not prices or "movingFrom" in claim
            pools = _pools_of(plan, owner, claim["role"]) if mine else pools_of_role.get(claim["role"])
            pools = pools or set()
            items.append(_billed({"resource": claim["resource"],
                                  "what": f"volumes {label} ({claim['class'] or 'default'})",
                                  "pool": next(iter(pools)) if len(pools) == 1 else SHARED, "layer": claim["layer"],
                                  "monthly": claim["count"] * monthly}, owner, plan["provider"]))


def _moves(plan: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """(role, provider) -> the other providers still holding nodes of the role, for each store moving onto that
    provider's volumes (dataPlane.<store>.storageProvider) while its role's pools keep nodes elsewhere: where its
    instances' old volumes are. Once the old pools are gone (count 0) the store has moved, and this is empty."""
    data_plane = (plan.get("config") or {}).get("adplatform:dataPlane")
    if not isinstance(data_plane, dict):
        return {}
    provider_of = _pool_providers(plan)
    found: dict[tuple[str, str], set[str]] = {}
    for store, role in STORE_ROLES.items():
        settings = data_plane.get(to_camel(store))
        chosen = settings.get("storageProvider") if isinstance(settings, dict) else None
        held = {provider_of.get(p["name"]) for p in plan.get("pools") or [] if p["role"] == role and p["nodes"]}
        elsewhere = held - {chosen, None}
        if chosen and elsewhere:
            found[(role, chosen)] = elsewhere
    return found


def _pool_providers(plan: dict[str, Any]) -> dict[str, str]:
    """Pool -> the provider whose servers it is (the price table whose server resource they are)."""
    type_of = {r["urn"]: r["type"] for r in plan["resources"]}
    provider_of_type = {t["servers"]["resource"]: t["provider"] for t in _tables(plan.get("provider") or "")
                        if t.get("servers")}
    return {s["pool"]: provider_of_type[type_of[s["urn"]]] for s in plan.get("servers") or []
            if type_of.get(s["urn"]) in provider_of_type}


def _located(plan: dict[str, Any], claim: dict[str, Any], classes: dict[str | None, dict[str, Any]],
             prices: dict[str, Any], moves: dict[tuple[str, str], set[str]],
             moving: list[dict[str, Any]]) -> dict[str, Any]:
    """The claim as priced: a moving store's (its pods on the pools of a role whose store moves onto the provider of
    the claim's class) with the class its instances' volumes have until each is replaced, the old provider's
    counterpart of the spec's (same name pattern: providers' STORAGE_CLASS, `-xfs`). The move is recorded in
    `moving`, with why the claim stays priced at the spec's class where the plan cannot tell the old one."""
    storage_class = classes.get(claim["class"])
    if storage_class is None or claim["gb"] is None or claim.get("transient"):
        return claim
    new = _disk_owner(prices, storage_class["provisioner"])["provider"]
    inputs = next(r["inputs"] for r in plan["resources"] if r["urn"] == claim["urn"])
    role_of = {p["name"]: p["role"] for p in plan.get("pools") or []}
    roles = {role_of[name] for name in placement.placement(inputs, plan.get("pools") or [])[0]}
    old = moves.get((roles.pop(), new)) if len(roles) == 1 else None
    if not old:
        return claim
    move = {"resource": claim["resource"], "what": f"{claim['count']} x {claim['gb']:g} GiB {claim['what']}",
            "moved": _priced_class(plan, prices, claim, new, claim["class"], storage_class)}
    old_provider = next(iter(old))  # the provider holding them, where only one does
    former = _former_class(claim["class"], new, old_provider) if len(old) == 1 else None
    if former is None or former not in classes:
        why = (f"its pods run on pools of {len(old) + 1} providers" if len(old) > 1
               else f"the plan has no {old_provider} class matching {claim['class']}")
        moving.append({**move, "now": move["moved"], "reason": f"priced at {claim['class']} on {new}: the plan "
                       f"cannot tell where its instances' volumes are ({why})"})
        return claim
    moving.append({**move, "now": _priced_class(plan, prices, claim, old_provider, former, classes[former])})
    return {**claim, "class": former, "what": f"{claim['what']}, on {old_provider} until replaced",
            "movingFrom": old_provider}


def _former_class(name: str | None, new: str, old: str) -> str | None:
    """The old provider's class the store claimed before its move: the counterpart of `name`, new's class (the
    providers' STORAGE_CLASS, or its `-xfs` variant: providers/base.py csi_storage)."""
    bases = [getattr(importlib.import_module(f"providers.{provider}"), "STORAGE_CLASS", None) for provider in (new, old)]
    if name is None or None in bases or not name.startswith(bases[0]):
        return None
    return bases[1] + name[len(bases[0]):]


def _priced_class(plan: dict[str, Any], prices: dict[str, Any], claim: dict[str, Any], provider: str,
                  name: str | None, storage_class: dict[str, Any]) -> dict[str, Any]:
    """The claim's volumes in class `name` of `provider`: what that provider bills a month, in its currency."""
    owner = _disk_owner(prices, storage_class["provisioner"])
    one = _volume_price(owner.get("storage") or {}, storage_class, _stack_region(owner, plan), claim["gb"])
    return {"provider": provider, "class": name, "currency": owner["currency"],
            "billed": None if one is None else round(claim["count"] * one, 2)}


def _pools_of(plan: dict[str, Any], owner: dict[str, Any], role: str) -> set[str]:
    """The pools of `role` whose servers `owner`'s provider bills: where its CSI driver's volumes attach."""
    theirs = {r["urn"] for r in plan["resources"] if r["type"] == (owner.get("servers") or {}).get("resource")}
    return {s["pool"] for s in plan.get("servers") or [] if s["role"] == role and s["urn"] in theirs}


def _disk_owner(prices: dict[str, Any], provisioner: str) -> dict[str, Any]:
    """The price table of the provider whose CSI driver `provisioner` is: the stack's own, else another provider's
    that prices it, else the stack's (which then names it unknown)."""
    if provisioner in ((prices.get("storage") or {}).get("provisioners") or {}):
        return prices
    return next((other for other in _other_tables(prices["provider"])
                 if provisioner in ((other.get("storage") or {}).get("provisioners") or {})), prices)


def _volume_price(spec: dict[str, Any], storage_class: dict[str, Any], region: str | None, gb: float) -> float | None:
    """Monthly price of one volume: per GB, or the smallest size tier that holds it (Azure's managed disks)."""
    provisioner = (spec.get("provisioners") or {}).get(storage_class["provisioner"])
    if provisioner is None or region is None:
        return None
    price = (provisioner.get("prices") or {}).get(region)
    if isinstance(price, dict):
        price = price.get(storage_class["parameters"].get(provisioner.get("typeParameter")))
    if isinstance(price, list):  # [[largest GiB of the tier, monthly price], ...], smallest first
        return next((float(monthly) for largest, monthly in price if gb <= largest), None)
    return None if price is None else gb * float(price)


def _service_load_balancers(plan: dict[str, Any], prices: dict[str, Any], region: str | None,
                            items: list[dict[str, Any]], unpriced: list[dict[str, str]], unknown: list[str]) -> None:
    """LoadBalancer Services are not provider resources in the plan: the cloud controller makes one load
    balancer for each (a Gateway's is a LoadBalancer Service Cilium creates)."""
    spec = prices.get("serviceLoadBalancers") or {}
    for r in plan["resources"]:
        service_type = (r["inputs"].get("spec") or {}).get("type")
        if not (r["type"] == GATEWAY or (r["type"] == SERVICE and service_type == "LoadBalancer")):
            continue
        what = f"load balancer of {r['type'].rsplit(':', 1)[-1]} {r['name']}"
        if "free" in spec:
            unpriced.append({"what": what, "reason": spec["free"]})
            continue
        annotations = {**(_at(r["inputs"], ["spec", "infrastructure", "annotations"]) or {}),
                       **(_at(r["inputs"], ["metadata", "annotations"]) or {})}
        where = _region(prices, annotations.get(spec.get("locationAnnotation"))) or region
        inputs = {"type": annotations.get(spec.get("typeAnnotation"), spec.get("defaultType"))}
        for label, monthly in _charges({**spec, "size": ["type"]}, inputs, where, unknown, r["name"], prices):
            items.append({"resource": r["name"], "what": label, "pool": SHARED, "layer": r["layer"], "monthly": monthly})


def _hosts(plan: dict[str, Any], prices: dict[str, Any], items: list[dict[str, Any]],
           unpriced: list[dict[str, str]], billed_by: str | None = None) -> None:
    """Existing servers: the monthly price each host's config states (bareMetal.hosts[].monthlyPrice); in a hybrid
    cluster of another stack provider they are `billed_by` bare metal, in its table's currency."""
    key = prices.get("hostPrices")
    if not key:
        return
    for index, host in enumerate(_configured_hosts(plan, key)):
        what = f"host {host.get('publicAddress')} ({host.get('pool')})"
        if host.get("monthlyPrice") is None:
            unpriced.append({"what": what, "reason": f"no {key}.hosts[{index}].monthlyPrice in the stack config"})
        else:
            item = {"resource": host.get("publicAddress"), "what": "host", "pool": host.get("pool"),
                    "layer": "providers", "monthly": float(host["monthlyPrice"])}
            items.append({**item, "billedBy": billed_by} if billed_by else item)


def _configured_hosts(plan: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return ((plan.get("config") or {}).get(key) or {}).get("hosts") or []


def hosts(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The existing hosts (bareMetal.hosts: a bare-metal stack's, or a hybrid cluster's pools on dedicated servers) as
    rows like `servers`': pool, role and K3s role of their pool's nodes, the pool's size as the config gives it (a host
    has no type), zone or else the site's region, and `monthly`, the price the config states (None without one)."""
    key = (table("baremetal") or {}).get("hostPrices")
    if not key:
        return []
    region = ((plan.get("config") or {}).get(key) or {}).get("region")
    node_of = {node.get("pool"): node for node in (plan["outputs"].get("nodes") or {}).values()}  # one role per pool
    sizes = {pool["name"]: pool.get("size") for pool in plan.get("pools") or []}
    rows = []
    for host in _configured_hosts(plan, key):
        pool, node = host.get("pool"), node_of.get(host.get("pool")) or {}
        size = sizes.get(pool)
        rows.append({"name": host.get("publicAddress"), "urn": None, "pool": pool, "role": node.get("role"),
                     "k3s": node.get("k3s"),
                     "type": f"host {size['vcpus']}vCPU/{size['memoryGiB']}GiB" if size else "host",
                     "location": host.get("zone") or region or "-", "protect": "-",
                     "monthly": None if host.get("monthlyPrice") is None else float(host["monthlyPrice"])})
    return rows


def _spec_for(prices: dict[str, Any], type_: str) -> dict[str, Any] | None:
    if prices.get("servers", {}).get("resource") == type_:
        return prices["servers"]
    return next((spec for spec in prices.get("priced", []) if spec["resource"] == type_), None)


def _monthly(part: dict[str, Any], price: Any) -> float:
    """Prices marked `hourly: true` are per hour (AWS, GCP, Azure list them so)."""
    return float(price) * (HOURS_PER_MONTH if part.get("hourly") else 1) * part.get("count", 1)


def _charges(spec: dict[str, Any], inputs: dict[str, Any], region: str | None, unknown: list[str],
             name: str, prices: dict[str, Any]) -> list[tuple[str, float]]:
    charges = []
    if "size" in spec:
        size = _at(inputs, spec["size"])
        price = ((spec.get("prices") or {}).get(region) or {}).get(size) if "price" not in spec else spec["price"].get(region)
        if price is None:
            unknown.append(f"{name}: {spec['what']} type {size!r} has no {region} price")
            return []
        charges.append((f"{spec['what']} {size}" if size else spec["what"], _monthly(spec, price)))
    if "perUnit" in spec:
        amount = _at(inputs, spec["perUnit"]["input"])
        if amount is None:
            unknown.append(f"{name}: {spec['what']} has no {spec['perUnit']['input'][-1]} to price")
            return charges
        units = float(amount)
        # A server's own disk: priced like a volume of that CSI driver (`disk`) and disk type (`parameters`).
        disk = {"provisioner": spec["perUnit"].get("disk"), "parameters": spec["perUnit"].get("parameters") or {}}
        price = (_volume_price(prices.get("storage") or {}, disk, region, units) if "disk" in spec["perUnit"]
                 else units * float(spec["perUnit"]["price"][region]))
        if price is None:
            unknown.append(f"{name}: {spec['what']} {units:g} {spec['perUnit']['unit']} has no {region} price")
            return charges
        charges.append((f"{spec['what']} {units:g} {spec['perUnit']['unit']}", price))
    for extra in spec.get("extras", []):
        switch = _at(inputs, extra["when"]) if "when" in extra else True
        if switch if switch is not None else extra.get("default", False):
            charges.append((extra["what"], _monthly(extra, extra["price"][region])))
    return charges
