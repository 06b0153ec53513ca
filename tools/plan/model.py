"""The offline plan as plain data: built once from a mock run, then reported, drawn, diffed and saved.

Everything here works on JSON-able dicts so that a plan read back from `build/plan/<stack>.json`
(for example the plan of another git ref) is handled exactly like a fresh one.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from config.catalog import ROLES
from policy import rules
from tools.mockrun import Resource, Run, Secret
from tools.plan import cost, timing

MASK = "[secret]"
FORMAT = 1  # bumped when the JSON layout changes incompatibly


def mask(value: Any) -> Any:
    """The value with every secret replaced by [secret]."""
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, dict):
        return {k: mask(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask(v) for v in value]
    return value


def layers(resources: list[Resource]) -> dict[str, str]:
    """urn -> layer: the `adplatform:<layer>:<Name>` component highest in the parent chain."""
    by_urn = {r.urn: r for r in resources}
    found: dict[str, str] = {}

    def layer(urn: str) -> str:
        if urn in found:
            return found[urn]
        resource = by_urn.get(urn)
        if resource is None:
            return "stack"
        above = layer(resource.parent) if resource.parent in by_urn else "stack"
        own = resource.type.split(":")[1] if resource.type.startswith("adplatform:") else "stack"
        found[urn] = above if above != "stack" else own
        return found[urn]

    for r in resources:
        layer(r.urn)
    return found


def build(run: Run) -> dict[str, Any]:
    layer_of = layers(run.resources)
    resources = [{
        "urn": r.urn, "type": r.type, "name": r.name, "layer": layer_of[r.urn], "custom": r.custom,
        "parent": r.parent, "dependencies": r.dependencies, "provider": r.provider, "protect": r.protect,
        "inputs": mask(r.inputs),
    } for r in run.resources]
    settings = policy_settings(run)
    violations = rules.evaluate((rules.Subject(r.urn, r.type, r.name, r.inputs, r.protect) for r in run.resources),
                                settings)
    plan: dict[str, Any] = {
        "format": FORMAT,
        "stack": run.stack,
        "provider": run.outputs.get("provider"),
        "profile": run.outputs.get("profile"),
        "k3sVersion": run.outputs.get("k3sVersion"),
        "config": mask(run.config),
        "resources": resources,
        "outputs": {k: MASK if k in run.secret_outputs else mask(v) for k, v in sorted(run.outputs.items())},
        "policy": {"settings": {"adminCidrs": list(settings.admin_cidrs), "production": settings.production},
                   "violations": [{"rule": v.rule, "urn": v.urn, "message": v.message} for v in violations]},
    }
    plan["servers"] = cost.servers(plan)
    plan["charts"] = charts(plan)
    plan["cost"] = cost.estimate(plan)
    plan["deployTime"] = timing.estimate(plan)
    plan["warnings"] = warnings(plan)
    return plan


def policy_settings(run: Run) -> rules.Settings:
    """The policy pack's settings for this stack: its admin CIDRs and whether it is production."""
    cidrs = run.config.get("adplatform:adminCidrs") or []
    return rules.Settings(admin_cidrs=tuple(cidrs), production=run.outputs.get("profile") == "production")


def charts(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"release": r["inputs"].get("name"), "chart": r["inputs"].get("chart"),
             "version": r["inputs"].get("version"), "repo": (r["inputs"].get("repositoryOpts") or {}).get("repo"),
             "namespace": r["inputs"].get("namespace"), "layer": r["layer"]}
            for r in plan["resources"] if r["type"] in rules.HELM_TYPES]


def warnings(plan: dict[str, Any]) -> list[str]:
    found = [f"policy {v['rule']}: {rules.name_of(v['urn'])}: {v['message']}"
             for v in plan["policy"]["violations"]]
    found += _small_roles(plan)
    found += [f"cost: {item}" for item in plan["cost"]["unknown"]]
    return found


def _small_roles(plan: dict[str, Any]) -> list[str]:
    """Roles whose replication needs more nodes than the stack gives them (fine for staging, not HA)."""
    nodes = plan["outputs"].get("nodes")
    if not isinstance(nodes, dict):
        return []
    counts = Counter(node.get("role") for node in nodes.values())
    return [f"role {role} has {counts[role]} node(s) but needs {ROLES[role].min_nodes}: {ROLES[role].why}"
            for role in sorted(counts) if role in ROLES and counts[role] < ROLES[role].min_nodes]
