"""Estimated monthly cost of a plan, from dated price tables kept as data (tools/plan/prices/).

One YAML file per provider says how to read its billable resources (which input holds the type,
the location, the pool) and what each type costs per month in each region, with the date and the
source of the prices. Nothing is guessed: a type, region or billable resource the table does not
know is listed under `unknown` and left out of the total.
"""

from __future__ import annotations

from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Any

import yaml

PRICES = Path(__file__).resolve().parent / "prices"
SHARED = "(shared)"


@cache
def table(provider: str) -> dict[str, Any] | None:
    path = PRICES / f"{provider}.yaml"
    return yaml.safe_load(path.read_text()) if path.exists() else None


def _at(inputs: Any, path: list[Any]) -> Any:
    for step in path:
        if isinstance(inputs, dict):
            inputs = inputs.get(step)
        elif isinstance(inputs, list) and isinstance(step, int) and step < len(inputs):
            inputs = inputs[step]
        else:
            return None
    return inputs


def servers(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan's servers with pool, role, type and location, read the way the price table says."""
    prices = table(plan.get("provider") or "") or {}
    spec = prices.get("servers")
    if not spec:
        return []
    rows = []
    for r in plan["resources"]:
        if r["type"] == spec["resource"]:
            rows.append({"name": _at(r["inputs"], spec["name"]) or r["name"], "urn": r["urn"],
                         "pool": _at(r["inputs"], spec["pool"]) or "(no pool)", "role": _at(r["inputs"], spec["role"]),
                         "k3s": _at(r["inputs"], spec["k3s"]), "type": _at(r["inputs"], spec["size"]),
                         "location": _at(r["inputs"], spec["location"]), "protect": r["protect"]})
    return rows


def _region(prices: dict[str, Any], location: Any) -> str | None:
    return (prices.get("regions") or {}).get(location)


def estimate(plan: dict[str, Any]) -> dict[str, Any]:
    provider = plan.get("provider") or ""
    prices = table(provider)
    if prices is None:
        return {"currency": None, "total": None, "pools": {}, "items": [], "unknown": [
            f"no price table for provider {provider!r} (tools/plan/prices/{provider}.yaml)"]}
    items: list[dict[str, Any]] = []
    unknown: list[str] = []
    pool_of = {s["urn"]: s["pool"] for s in plan.get("servers") or servers(plan)}
    for r in plan["resources"]:
        if not r["custom"] or not r["type"].startswith(prices["namespace"]):
            continue
        spec = _spec_for(prices, r["type"])
        if spec is None:
            if r["type"] not in prices.get("free", []) and not r["type"].startswith("pulumi:providers:"):
                unknown.append(f"{r['type']} {r['name']} is billable but not in the {provider} price table")
            continue
        location = _at(r["inputs"], spec.get("location", ["location"]))
        region = _region(prices, location)
        pool = pool_of.get(r["urn"], SHARED)
        if region is None:
            unknown.append(f"{r['name']}: no {provider} prices for location {location!r}")
            continue
        for label, monthly in _charges(spec, r["inputs"], region, unknown, r["name"]):
            items.append({"resource": r["name"], "what": label, "pool": pool, "monthly": monthly})
    pools: dict[str, float] = defaultdict(float)
    for item in items:
        pools[item["pool"]] += item["monthly"]
    return {"currency": prices["currency"], "source": prices["source"], "priceDate": str(prices["date"]),
            "note": prices.get("note", ""), "items": items, "unknown": unknown,
            "pools": {pool: round(total, 2) for pool, total in pools.items()},
            "total": round(sum(item["monthly"] for item in items), 2)}


def _spec_for(prices: dict[str, Any], type_: str) -> dict[str, Any] | None:
    if prices.get("servers", {}).get("resource") == type_:
        return prices["servers"]
    return next((spec for spec in prices.get("priced", []) if spec["resource"] == type_), None)


def _charges(spec: dict[str, Any], inputs: dict[str, Any], region: str, unknown: list[str],
             name: str) -> list[tuple[str, float]]:
    charges = []
    if "size" in spec:
        size = _at(inputs, spec["size"])
        price = (spec["prices"].get(region) or {}).get(size)
        if price is None:
            unknown.append(f"{name}: {spec['what']} type {size!r} has no {region} price")
            return []
        charges.append((f"{spec['what']} {size}", float(price)))
    if "perUnit" in spec:
        amount = _at(inputs, spec["perUnit"]["input"])
        if amount is None:
            unknown.append(f"{name}: {spec['what']} has no {spec['perUnit']['input'][-1]} to price")
            return charges
        units = float(amount)
        charges.append((f"{spec['what']} {units:g} {spec['perUnit']['unit']}",
                        units * float(spec["perUnit"]["price"][region])))
    for extra in spec.get("extras", []):
        switch = _at(inputs, extra["when"])
        if switch if switch is not None else extra.get("default", False):
            charges.append((extra["what"], float(extra["price"][region])))
    return charges
