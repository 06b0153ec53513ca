"""The offline plan as plain data: built once from a mock run, then reported, drawn, diffed and saved.

Everything here works on JSON-able dicts so that a plan read back from `build/plan/<stack>.json`
(for example the plan of another git ref) is handled exactly like a fresh one.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from typing import Any

from config.catalog import ROLES
import providers
from policy import rules
from tools.mockrun import Resource, Run, Secret
from tools.plan import capacity, cost, limits, placement, timing

MASK = "[secret]"
FORMAT = 1  # bumped when the JSON layout changes incompatibly


def secret_digests(value: Any, path: str = "") -> dict[str, str]:
    """path -> short digest of each secret, so plan-diff sees a change inside a masked value.
    Offline every secret is a placeholder or a mock result, so the digest reveals nothing real."""
    if isinstance(value, Secret):
        return {path or ".": hashlib.sha256(json.dumps(value.value, sort_keys=True, default=str).encode())
                .hexdigest()[:12]}
    found: dict[str, str] = {}
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for key, item in items:
        found.update(secret_digests(item, f"{path}.{key}" if path else str(key)))
    return found


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
    for resource in resources:
        chain = []  # walk up to a resource whose layer is known (or the stack), then fill in downwards
        node: Resource | None = resource
        while node is not None and node.urn not in found:
            chain.append(node)
            node = by_urn.get(node.parent)
        layer = found[node.urn] if node is not None else "stack"
        for item in reversed(chain):
            if layer == "stack" and item.type.startswith("adplatform:"):
                layer = item.type.split(":")[1]
            found[item.urn] = layer
    return found


def build(run: Run) -> dict[str, Any]:
    layer_of = layers(run.resources)
    resources = [{
        "urn": r.urn, "type": r.type, "name": r.name, "layer": layer_of[r.urn], "custom": r.custom,
        "parent": r.parent, "dependencies": sorted(set(r.dependencies)), "provider": r.provider, "protect": r.protect,
        "inputs": mask(r.inputs), "secretDigests": secret_digests(r.inputs),
        # What decides replace or update, and the hooks that run around an update (plan-diff's Nodes section).
        "options": {k: r.options[k] for k in ("ignoreChanges", "replaceOnChanges", "deleteBeforeReplace", "hooks")
                    if r.options.get(k) not in (None, {})},
    } for r in sorted(run.resources, key=lambda r: r.urn)]  # registration order varies between runs
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
    order = {name: i for i, name in enumerate(plan["outputs"].get("nodes") or {})}  # config order
    plan["servers"] = sorted(cost.servers(plan) or _nodes(plan), key=lambda s: (order.get(s["name"], len(order)),
                                                                                  s["name"]))
    plan["pools"] = placement.pools(run.stack, run.config)  # labels and taints: where workloads can run
    plan["charts"] = charts(plan)
    plan["cost"] = cost.estimate(plan)
    # Where the HPA-scaled workloads run, at the max: the policy pack's capacity rule reads it (policy.json).
    plan["capacity"] = capacity.groups(plan)
    plan["deployTime"] = timing.estimate(plan)
    # Over every stack file, this run's config in place of its own file: limits shared by all stacks.
    plan["limits"] = limits.summary(limits.run_facts(run.stack, run.config))
    plan["warnings"] = warnings(plan)
    return plan


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Servers from the `nodes` output, for providers without a price table (or existing hosts):
    pool, role and K3s role, without a type or location to price."""
    return [{"name": name, "urn": None, "pool": node.get("pool"), "role": node.get("role"), "k3s": node.get("k3s"),
             "type": "-", "location": "-", "protect": "-"}
            for name, node in (plan["outputs"].get("nodes") or {}).items()]


def layer_edges(plan: dict[str, Any]) -> Counter:
    """(layer, layer it waits on) -> number of dependencies between them."""
    layer = {r["urn"]: r["layer"] for r in plan["resources"]}
    edges: Counter = Counter()
    for r in plan["resources"]:
        for dep in r["dependencies"]:
            if dep in layer and layer[dep] != r["layer"]:
                edges[(r["layer"], layer[dep])] += 1
    return edges


def layer_order(plan: dict[str, Any]) -> list[str]:
    """Layers in dependency order (a layer after the layers it waits on), ties by name."""
    edges = layer_edges(plan)
    remaining = sorted({r["layer"] for r in plan["resources"]})
    placed: list[str] = []
    while remaining:
        ready = [l for l in remaining if not any(src == l and dst in remaining for src, dst in edges)]
        pick = ready[0] if ready else remaining[0]  # a cycle between layers: fall back to name order
        placed.append(pick)
        remaining.remove(pick)
    return placed


def policy_settings(run: Run) -> rules.Settings:
    """The policy pack's settings for this stack: its admin CIDRs. Whether it is production is left to
    the pack's own rule (the stack name), so a `production*` stack on a laxer profile is still held
    to production's protection."""
    cidrs = run.config.get("adplatform:adminCidrs") or []
    return rules.Settings(admin_cidrs=tuple(cidrs))


def charts(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"release": r["inputs"].get("name"), "chart": r["inputs"].get("chart"),
             "version": r["inputs"].get("version"), "repo": (r["inputs"].get("repositoryOpts") or {}).get("repo"),
             "namespace": r["inputs"].get("namespace"), "layer": r["layer"]}
            for r in plan["resources"] if r["type"] in rules.HELM_TYPES]


def warnings(plan: dict[str, Any]) -> list[str]:
    found = [f"policy {v['rule']}: {rules.name_of(v['urn'])}: {v['message']}"
             for v in plan["policy"]["violations"]]
    found += _small_roles(plan)
    found += _ingress_targets(plan)
    found += _unorderable(plan)
    found += [f"cost: {item}" for item in plan["cost"]["unknown"]]
    found += [f"capacity: {item}" for item in capacity.problems(plan) + capacity.unknown(plan)]
    found += (plan.get("limits") or {}).get("warnings", [])
    return found


def _unorderable(plan: dict[str, Any]) -> list[str]:
    """Servers of a type the provider is known not to sell where they are placed (providers' dated
    catalogs): `pulumi up` would fail creating them."""
    lookup = getattr(providers, "catalog", None)  # plan-diff runs this planner over older program code too
    known = lookup(plan.get("provider") or "") if lookup else None
    if known is None:
        return []
    servers: dict[str, list[str]] = defaultdict(list)
    for server in plan["servers"]:
        reason = known.unorderable(server["type"], server["location"])
        if reason:
            servers[reason].append(server["name"])
    return [f"{reason}; servers: {', '.join(names)}" for reason, names in servers.items()]


# Fewer nodes than this behind the gateway's balancer: every request of the platform passes one machine.
MIN_BALANCER_TARGETS = 2


def _ingress_targets(plan: dict[str, Any]) -> list[str]:
    """A cluster over several providers whose gateway balancer (the stack provider's cloud controller's) reaches fewer
    than MIN_BALANCER_TARGETS nodes: pools moved off the stack provider leave it its control plane alone
    (docs/providers.md "Load balancer targets"). Runs of older program code (plan-diff against a git ref) name no
    targets: nothing to say."""
    nodes = plan["outputs"].get("nodes")
    if not isinstance(nodes, dict) or all(n.get("loadBalancerTarget", True) for n in nodes.values()):
        return []
    targets = sorted(name for name, n in nodes.items() if n.get("loadBalancerTarget"))
    if len(targets) >= MIN_BALANCER_TARGETS:
        return []
    provider = plan.get("provider")
    return [f"ingress: the gateway's load balancer ({provider}'s) reaches only {', '.join(targets) or 'no node'}, of "
            f"{len(nodes)} nodes (the others are another provider's): keep a pool on {provider} until the control "
            "plane's provider can change (docs/providers.md, \"Load balancer targets\")"]


def _small_roles(plan: dict[str, Any]) -> list[str]:
    """Roles whose replication needs more nodes than the stack gives them (fine for staging, not HA)."""
    nodes = plan["outputs"].get("nodes")
    if not isinstance(nodes, dict):
        return []
    counts = Counter(node.get("role") for node in nodes.values())
    return [f"role {role} has {counts[role]} node(s) but needs {ROLES[role].min_nodes}: {ROLES[role].why}"
            for role in sorted(counts) if role in ROLES and counts[role] < ROLES[role].min_nodes]
