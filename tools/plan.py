"""Offline plan: what `pulumi up` on a stack would create, without credentials or the Pulumi CLI.

Runs the program in-process under mocks (tools/mockrun.py) with the stack file's config; secrets
that only a real stack holds are placeholders, shown as [secret].

    python -m tools.plan [STACK]
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from typing import Any

from config import ConfigError
from tools.mockrun import Resource, Run, Secret, run_stack, stacks


def layer_of(run: Run, resource: Resource) -> str:
    """The layer is the `adplatform:<layer>:<Name>` component at the top of the parent chain."""
    by_urn = {r.urn: r for r in run.resources}
    node, layer = resource, "stack"
    while node is not None:
        if node.type.startswith("adplatform:"):
            layer = node.type.split(":")[1]
        node = by_urn.get(node.parent)
    return layer


def _short(value: Any) -> str:
    if isinstance(value, Secret):
        return "[secret]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return str(value)


def servers(run: Run) -> list[dict[str, Any]]:
    rows = []
    for r in run.of_type("hcloud:index/server:Server"):
        labels = r.inputs.get("labels", {})
        rows.append({"name": r.inputs.get("name"), "pool": labels.get("adplatform.io/pool"),
                     "role": labels.get("adplatform.io/role"), "k3s": labels.get("adplatform.io/k3s"),
                     "type": r.inputs.get("serverType"), "location": r.inputs.get("location"),
                     "protect": r.protect})
    return rows


def charts(run: Run) -> list[dict[str, Any]]:
    return [{"release": r.inputs.get("name"), "chart": r.inputs.get("chart"), "version": r.inputs.get("version"),
             "repo": (r.inputs.get("repositoryOpts") or {}).get("repo"), "namespace": r.inputs.get("namespace")}
            for r in run.of_type("kubernetes:helm.sh/v3:Release")]


def warnings(run: Run) -> list[str]:
    found = []
    for chart in charts(run):
        if not chart["version"]:
            found.append(f"chart {chart['chart']} is not pinned to a version")
    for fw in run.of_type("hcloud:index/firewall:Firewall"):
        for rule in fw.inputs.get("rules", []):
            if "0.0.0.0/0" in rule.get("sourceIps", []) and rule.get("port") not in ("80", "443"):
                found.append(f"port {rule.get('protocol')}/{rule.get('port')} is open to the world")
    return found


def report(run: Run) -> str:
    out = [f"Offline plan of stack '{run.stack}'  (provider {run.outputs.get('provider')}, "
           f"profile {run.outputs.get('profile')}, K3s {run.outputs.get('k3sVersion')})", ""]
    by_layer: dict[str, Counter] = defaultdict(Counter)
    for r in run.resources:
        by_layer[layer_of(run, r)][r.type] += 1
    out.append(f"Resources: {len(run.resources)}")
    for layer, types in by_layer.items():
        out.append(f"  {layer} ({sum(types.values())})")
        out += [f"    {n:>3}  {t}" for t, n in sorted(types.items())]
    out += ["", "Servers by pool:"]
    pools: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in servers(run):
        pools[s["pool"]].append(s)
    for pool, rows in pools.items():
        first = rows[0]
        out.append(f"  {pool:<14} {len(rows):>2} x {first['type']:<8} {first['location']:<5} role={first['role']:<10} "
                   f"k3s={first['k3s']:<6} protect={first['protect']}")
    out += ["", "Helm charts:"]
    out += [f"  {c['chart']:<34} {c['version']:<10} {c['repo']}  -> {c['namespace']}" for c in charts(run)]
    out += ["", "Outputs:"]
    for key, value in sorted(run.outputs.items()):
        shown = "[secret]" if key in run.secret_outputs else _short(value)
        out.append(f"  {key}: {shown[:160]}")
    problems = warnings(run)
    out += ["", "Warnings:" if problems else "Warnings: none"]
    out += [f"  ! {w}" for w in problems]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    stack = argv[0] if argv else "production"
    if stack not in stacks():
        print(f"no stack file Pulumi.{stack}.yaml (stacks: {', '.join(stacks())})", file=sys.stderr)
        return 2
    try:
        run = run_stack(stack)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(report(run))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
