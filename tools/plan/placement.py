"""Where things run: the pools (labels, taints) and, per workload, the pools its scheduling admits.

The placement is read from what the program sets, not restated: node selectors, node affinity on
node labels and tolerations in the recorded inputs of Deployments, StatefulSets, DaemonSets, the
operators' custom resources and Helm values (where some charts take them as JSON strings). A pod
scope without a selector runs on every pool whose taints it tolerates, which for most workloads
means the general (untainted) pools. A scope that tolerates every taint and selects no pool is a
node agent (a DaemonSet such as the log collector) and is listed apart, not in every pool box.
"""

from __future__ import annotations

import json
from typing import Any

SCHEDULING_KEYS = ("nodeSelector", "tolerations", "affinity", "nodeAffinity", "placement")
WORKLOAD_TYPES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart", "kubernetes:apps/v1:Deployment",
                  "kubernetes:apps/v1:StatefulSet", "kubernetes:apps/v1:DaemonSet")
# Labels every node carries (K3s and the kubelet set them); selectors on them match every pool.
WELL_KNOWN = {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
CONTROL_PLANE_ROLE_LABEL = "node-role.kubernetes.io/control-plane"


def _taint(text: str) -> dict[str, str]:
    """`key[=value]:Effect` (validated by the config) as a taint."""
    head, effect = text.rsplit(":", 1)
    key, _, value = head.partition("=")
    return {"key": key, "value": value, "effect": effect}


def node_size(spec: Any, provider: str) -> dict[str, int] | None:
    """vCPUs and memory (GiB) of one node of a pool or the control plane: its size class, or its server type in the
    provider's catalog (Hetzner keeps one); None where neither tells (a cloud type name without a catalog)."""
    from config.catalog import SIZES  # late: the planner also reads plans of older program code
    if spec.server_type is None:
        size = SIZES[spec.size or "medium"]  # providers' resolve_server_type: medium by default
        return {"vcpus": size.vcpus, "memoryGiB": size.memory_gb}
    import providers
    catalog = providers.catalog(provider)
    known = catalog.types.get(spec.server_type) if catalog is not None else None
    return None if known is None else {"vcpus": known.cores, "memoryGiB": known.memory_gb}


def _node_template(pool: Any, cfg: Any) -> dict[str, Any]:
    """The server type and first location of a pool's nodes: what prices a node the autoscaler adds to a pool
    that has none in the plan yet (autoscaling.min 0)."""
    import providers
    from config.model import node_location
    server_type = pool.server_type or providers.get(cfg.provider).server_types[pool.size or "medium"]
    return {"serverType": server_type, "location": node_location(pool, 0, cfg.cluster)}


def pools_of(cfg: Any) -> list[dict[str, Any]]:
    """The validated config's pools in config order, the control plane first, with labels and taints, their node
    size, and how many nodes: `nodes` Pulumi keeps, `maxNodes` with what the cluster autoscaler may add
    (`autoscaling`: {min, max} of an autoscaled pool, which is listed even while it has no node)."""
    cp = cfg.cluster.control_plane
    # Every member, a move's included (ControlPlane.servers); `count` where the config model predates moves: `make
    # plan-diff` runs this planner over older trees' programs (tools/plan/diff.py export_tree).
    servers = getattr(cp, "servers", cp.count)
    found = [{"name": "control-plane", "role": cp.role, "server": True,
              "labels": {**cp.node_labels, CONTROL_PLANE_ROLE_LABEL: "true"},
              "taints": [_taint(t) for t in cp.taints], "nodes": servers, "maxNodes": servers, "autoscaling": None,
              "size": node_size(cp, cfg.provider)}]
    autoscaled = {p.name for p in cfg.cluster.autoscaled_pools}
    for p in cfg.cluster.pools:
        if p.count == 0 and p.name not in autoscaled:
            continue
        scaling = {"min": p.autoscaling.min, "max": p.autoscaling.max} if p.name in autoscaled else None
        found.append({"name": p.name, "role": p.role, "server": False, "labels": dict(p.node_labels),
                      "taints": [_taint(t) for t in p.node_taints], "nodes": p.count,
                      "maxNodes": scaling["max"] if scaling else p.count, "autoscaling": scaling,
                      "size": node_size(p, cfg.provider), **_node_template(p, cfg)})
    return found


def pools(stack: str, config: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan's `pools` from a run's config (secrets wrapped); [] where the config cannot be read
    this way (a plan-diff base from before these helpers)."""
    from tools.plan import limits  # late: limits imports the program's components
    try:
        secret = {k for k, v in config.items() if type(v).__name__ == "Secret"}
        values = {k: getattr(v, "value", v) if k in secret else v for k, v in config.items()}
        return pools_of(limits.config_of(stack, values, secret))
    except Exception:  # noqa: BLE001 (the picture then falls back to the servers' pools)
        return []


def _decoded(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def scopes(inputs: Any) -> list[dict[str, Any]]:
    """Every dict in `inputs` that carries pod scheduling (a pod spec, a chart component's values)."""
    found: list[dict[str, Any]] = []
    todo = [inputs]
    while todo:
        value = _decoded(todo.pop())
        if isinstance(value, dict):
            if any(k in value for k in SCHEDULING_KEYS):
                found.append({k: _decoded(value.get(k)) for k in SCHEDULING_KEYS if k in value})
            todo += [v for k, v in value.items() if k not in SCHEDULING_KEYS or k == "placement"]
        elif isinstance(value, list):
            todo += value
    return found


def _expressions(scope: dict[str, Any]) -> list[dict[str, Any]]:
    """Required node-affinity expressions of a scope (ANDed; the first term is what we set)."""
    affinity = scope.get("nodeAffinity") or (scope.get("affinity") or {}).get("nodeAffinity") or {}
    if not isinstance(affinity, dict):
        return []
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    terms = required.get("nodeSelectorTerms") or [] if isinstance(required, dict) else []
    return list((terms[0] or {}).get("matchExpressions") or []) if terms else []


def _selector(scope: dict[str, Any]) -> tuple[dict[str, str], list[dict[str, Any]]]:
    selector = scope.get("nodeSelector")
    if not isinstance(selector, dict):  # CloudNativePG: affinity.nodeSelector; a label selector elsewhere
        selector = (scope.get("affinity") or {}).get("nodeSelector") if isinstance(scope.get("affinity"), dict) else None
    selector = selector if isinstance(selector, dict) else {}
    labels = {k: str(v) for k, v in selector.items() if k != "matchExpressions"}
    return labels, [*_expressions(scope), *(selector.get("matchExpressions") or [])]


def _tolerations(scope: dict[str, Any]) -> list[dict[str, Any]]:
    found = scope.get("tolerations")
    if found is None and isinstance(scope.get("affinity"), dict):
        found = scope["affinity"].get("tolerations")
    return [t for t in found or [] if isinstance(t, dict)]


def _tolerates(tolerations: list[dict[str, Any]], taint: dict[str, str]) -> bool:
    for t in tolerations:
        if t.get("effect") not in (None, "", taint["effect"]):
            continue
        if t.get("operator") == "Exists" and t.get("key") in (None, "", taint["key"]):
            return True
        if t.get("key") == taint["key"] and str(t.get("value", "")) == taint["value"]:
            return True
    return False


def _matches(labels: dict[str, str], selector: dict[str, str], expressions: list[dict[str, Any]]) -> bool:
    have = {**WELL_KNOWN, **labels}
    if any(have.get(k) != v for k, v in selector.items()):
        return False
    for e in expressions:
        key, op, values = e.get("key"), e.get("operator"), [str(v) for v in e.get("values") or []]
        ok = {"In": have.get(key) in values, "NotIn": have.get(key) not in values,
              "Exists": key in have, "DoesNotExist": key not in have}.get(op, False)
        if not ok:
            return False
    return True


def admitted(scope: dict[str, Any], pools: list[dict[str, Any]]) -> list[str]:
    """Pools a scope's pods may land on: selector matched and every taint tolerated."""
    selector, expressions = _selector(scope)
    tolerations = _tolerations(scope)
    return [p["name"] for p in pools if _matches(p["labels"], selector, expressions)
            and all(_tolerates(tolerations, t) for t in p["taints"])]


def is_agent(scope: dict[str, Any], pools: list[dict[str, Any]]) -> bool:
    """A scope that selects nothing and tolerates (nearly) every taint: a per-node agent."""
    selector, expressions = _selector(scope)
    tainted = [p for p in pools if p["taints"] and not p["server"]]
    return not selector and not expressions and bool(tainted) and all(
        _tolerates(_tolerations(scope), t) for p in tainted for t in p["taints"])


def placement(inputs: Any, pools: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(pools the workload's pods run on, pools its node agents run on), both in pool order."""
    main: set[str] = set()
    agents: set[str] = set()
    placed = False
    for scope in scopes(inputs):
        selector, expressions = _selector(scope)
        if is_agent(scope, pools):
            agents.update(admitted(scope, pools))
        elif selector or expressions or _tolerations(scope):
            main.update(admitted(scope, pools))
            placed = True
    if not placed:  # no scheduling of its own: wherever nothing keeps it away
        main.update(admitted({}, pools))
    order = [p["name"] for p in pools]
    return [n for n in order if n in main], [n for n in order if n in agents]
