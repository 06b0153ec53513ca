"""Whether the pools that HPA-scaled workloads (the ad services) run on can hold them at their max.

For each place such a workload runs (the pool its nodeSelector pins it to, or every untainted pool), the plan
adds up what those pools hold with every autoscaled pool at its `autoscaling.max` (nodes x the vCPUs and memory of
their size class or catalog server type) and what else is scheduled there: the CPU and memory requests the plan's
recorded inputs give every other Deployment, StatefulSet, DaemonSet and Helm release admitted to those pools,
times the replicas set next to them. It is an estimate: requests a chart sets by default (not in our values)
are not seen, a node agent counts once, not once per node, and no system reservation is taken off the nodes.

The result is the policy pack's config for its stack rule (policy/rules.py capacity_problems), which compares
it with the HPAs and Deployments of the preview itself; the plan runs the same rule over its own resources.
"""

from __future__ import annotations

from typing import Any

from policy import rules
from tools.plan import placement


def _subjects(plan: dict[str, Any]) -> list[rules.Subject]:
    return [rules.Subject(r["urn"], r["type"], r["name"], r["inputs"]) for r in plan["resources"]]


def requests(inputs: Any) -> tuple[float, float]:
    """(CPU millicores, memory MiB) requested by what `inputs` describes: every `resources.requests` times the
    nearest `replicas`/`replicaCount` above it (1 where none is set); switched-off parts (`enabled: false`) skipped."""
    cpu = memory = 0.0

    def visit(value: Any, replicas: int) -> None:
        nonlocal cpu, memory
        value = placement._decoded(value)
        if isinstance(value, list):
            for item in value:
                visit(item, replicas)
            return
        if not isinstance(value, dict) or value.get("enabled") is False:
            return
        here = value.get("replicas", value.get("replicaCount"))
        replicas = here if isinstance(here, int) and not isinstance(here, bool) else replicas
        wanted = (value.get("resources") or {}).get("requests") if isinstance(value.get("resources"), dict) else None
        if isinstance(wanted, dict):
            cpu += replicas * rules.quantity(wanted.get("cpu", 0)) * 1000
            memory += replicas * rules.quantity(wanted.get("memory", 0)) / 2 ** 20
        for key, item in value.items():
            if key != "resources":
                visit(item, replicas)

    visit(inputs, 1)
    return cpu, memory


def _members(key: str, pools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if key == rules.UNPINNED:
        return [p for p in pools if not p["taints"]]
    return [p for p in pools if p["name"] == key]


def groups(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Where each HPA-scaled workload runs -> that place's capacity at the max and what else runs there.
    Places with a node of unknown size (a cloud type name without a catalog) are left out (see `unknown`)."""
    pools = plan.get("pools") or []
    scaled = rules.scaled_workloads(_subjects(plan))
    targets = {tuple(w.name.split("/", 1)) for w in scaled}
    found: dict[str, dict[str, Any]] = {}
    for key in sorted({w.pool for w in scaled}):
        members = _members(key, pools)
        if not members or any(p.get("size") is None for p in members):
            continue
        names = {p["name"] for p in members}
        other_cpu = other_memory = 0.0
        for r in plan["resources"]:
            meta = r["inputs"].get("metadata") or {}
            if r["type"] not in placement.WORKLOAD_TYPES or (meta.get("namespace"), meta.get("name")) in targets:
                continue
            main, _agents = placement.placement(r["inputs"], pools)
            if names & set(main):
                cpu, memory = requests(r["inputs"])
                other_cpu, other_memory = other_cpu + cpu, other_memory + memory
        found[key] = {"pools": [p["name"] for p in members], "maxNodes": sum(p["maxNodes"] for p in members),
                      "cpuMillis": sum(p["maxNodes"] * p["size"]["vcpus"] * 1000 for p in members),
                      "memoryMiB": sum(p["maxNodes"] * p["size"]["memoryGiB"] * 1024 for p in members),
                      "otherCpuMillis": round(other_cpu), "otherMemoryMiB": round(other_memory)}
    return found


def unknown(plan: dict[str, Any]) -> list[str]:
    """Places of scaled workloads whose capacity the plan cannot tell."""
    pools = plan.get("pools") or []
    known = plan.get("capacity") or {}
    return [f"capacity of {key} not checked: a pool there has no size class or catalog server type"
            for key in sorted({w.pool for w in rules.scaled_workloads(_subjects(plan))})
            if key not in known and _members(key, pools)]


def problems(plan: dict[str, Any]) -> list[str]:
    return rules.capacity_problems(rules.scaled_workloads(_subjects(plan)), plan.get("capacity") or {})


__all__ = ["groups", "problems", "requests", "unknown"]
