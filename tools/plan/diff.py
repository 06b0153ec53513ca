"""`python -m tools.plan.diff BASE [--stack S ...]`: the plan of the working tree against the plan at a
git ref: resources added, removed and changed (by input), cost delta, deploy-time delta.

What a merge request shows when no cloud credentials are available (make plan-diff BASE=<ref>).
The base tree is exported from git into a temporary directory and planned there with *this*
tree's planner (tools/ and policy/ are copied over it), so both sides are measured the same way.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from config import ConfigError
from tools.mockrun import ROOT, stacks
from tools.plan.__main__ import DEFAULT_OUT, exit_process, plan_stack, write
from tools.plan import diffpicture, nodes
from tools.plan.cost import exchange_text
from tools.plan.timing import minutes

MAX_PATHS = 8  # changed input paths listed per resource
_MISSING = object()


def _leaves(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        found: dict[str, Any] = {}
        for key, item in value.items():
            found.update(_leaves(item, f"{path}.{key}" if path else str(key)))
        return found or {path: {}}
    if isinstance(value, list):
        found = {}
        for index, item in enumerate(value):
            found.update(_leaves(item, f"{path}[{index}]"))
        return found or {path: []}
    return {path: value}


def changed_inputs(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    old, new = _leaves(before), _leaves(after)
    return sorted(p for p in old.keys() | new.keys() if old.get(p, _MISSING) != new.get(p, _MISSING))


def diff_plans(base: dict[str, Any] | None, head: dict[str, Any] | None) -> dict[str, Any]:
    """Either side may be None: a stack that exists on one side only."""
    old = {r["urn"]: r for r in (base or {}).get("resources", [])}
    new = {r["urn"]: r for r in (head or {}).get("resources", [])}
    changed = []
    for urn in sorted(old.keys() & new.keys()):
        paths = changed_inputs(old[urn]["inputs"], new[urn]["inputs"])
        paths += [f"{p} (secret)" for p in changed_inputs(old[urn].get("secretDigests", {}),
                                                          new[urn].get("secretDigests", {}))]
        if old[urn]["protect"] != new[urn]["protect"]:
            paths.append(f"(protect {old[urn]['protect']} -> {new[urn]['protect']})")
        paths += _edges(old[urn], new[urn])
        if paths:
            changed.append({"urn": urn, "type": new[urn]["type"], "name": new[urn]["name"], "inputs": paths})
    found = {
        "added": [{"urn": u, "type": new[u]["type"], "name": new[u]["name"]} for u in sorted(new.keys() - old.keys())],
        "removed": [{"urn": u, "type": old[u]["type"], "name": old[u]["name"]} for u in sorted(old.keys() - new.keys())],
        "changed": changed,
        "cost": _delta(base, head, lambda p: p["cost"].get("total")),
        # The month with every autoscaled pool at its max (the floor's total where nothing autoscales).
        "costMax": _delta(base, head, _max_cost),
        "autoscaling": _bounds(base, head),
        "costBy": {key: _breakdown(base, head, key) for key in ("layers", "pools")},
        "currency": ((head or base or {}).get("cost") or {}).get("currency"),
        # A hybrid cluster's other currencies: the rate either side converted at.
        "exchange": (((head or {}).get("cost") or {}).get("exchange")
                     or ((base or {}).get("cost") or {}).get("exchange")),
        "deployTime": _delta(base, head, lambda p: p["deployTime"]["criticalPathSeconds"]),
        # None on a side whose plan has no such figure (older program code).
        "k3sReady": _delta(base, head, lambda p: p["deployTime"].get("k3sReadySeconds")),
        "warnings": {"new": sorted(set((head or {}).get("warnings", [])) - set((base or {}).get("warnings", []))),
                     "gone": sorted(set((base or {}).get("warnings", [])) - set((head or {}).get("warnings", [])))},
    }
    found["nodes"] = nodes.changes(base, head, found)
    head_cost = (head or {}).get("cost") or {}
    if head_cost.get("moving"):  # the head is a step of a store's move (cost.py `moving`)
        found["moving"] = {"moving": head_cost["moving"], "movedTotal": head_cost.get("movedTotal")}
    return found


# A resource gaining or losing more dependencies than this is described by the first few and a count: over the
# internet every K3s install depends on every peer rule, a hundred AWS rules per node in production-sized clusters.
DEPENDENCIES_NAMED = 8


def _names(urns: set[str]) -> str:
    names = sorted(u.rsplit("::", 1)[-1] for u in urns)
    if len(names) <= DEPENDENCIES_NAMED:
        return ", ".join(names)
    return f"{', '.join(names[:DEPENDENCIES_NAMED])} and {len(names) - DEPENDENCIES_NAMED} more"


def _edges(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dependency and provider changes: they reorder or replace a resource without touching inputs."""
    found = []
    before, after = set(old["dependencies"]), set(new["dependencies"])
    if before != after:
        found.append("(dependencies" + (f" +{_names(after - before)}" if after - before else "")
                     + (f" -{_names(before - after)}" if before - after else "") + ")")
    old_provider, new_provider = old["provider"].rsplit("::", 1)[0], new["provider"].rsplit("::", 1)[0]
    if old_provider != new_provider:
        found.append(f"(provider {old_provider.rsplit('::', 1)[-1] or 'default'} -> "
                     f"{new_provider.rsplit('::', 1)[-1] or 'default'})")
    return found


def _delta(base: dict[str, Any] | None, head: dict[str, Any] | None, get: Any) -> dict[str, Any]:
    before = get(base) if base else 0
    after = get(head) if head else 0
    delta = None if before is None or after is None else round(after - before, 2)
    return {"base": before, "head": after, "delta": delta}


def _max_cost(plan: dict[str, Any]) -> float | None:
    cost = plan.get("cost") or {}
    return cost.get("totalMax") if cost.get("totalMax") is not None else cost.get("total")


def _bounds(base: dict[str, Any] | None, head: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Autoscaled pools whose node bounds or monthly range changed: pool -> base and head ({min, max, monthly}
    or None where the pool does not autoscale on that side)."""
    old = ((base or {}).get("cost") or {}).get("autoscaling") or {}
    new = ((head or {}).get("cost") or {}).get("autoscaling") or {}
    keep = ("min", "max", "monthly")
    return {name: {"base": {k: old[name][k] for k in keep} if name in old else None,
                   "head": {k: new[name][k] for k in keep} if name in new else None}
            for name in sorted(old.keys() | new.keys())
            if {k: (old.get(name) or {}).get(k) for k in keep} != {k: (new.get(name) or {}).get(k) for k in keep}}


def _range(side: dict[str, Any] | None, cur: str) -> str:
    if side is None:
        return "not autoscaled"
    return (f"{side['min']}..{side['max']} nodes, {side['monthly']['min']:,.2f} .. {side['monthly']['max']:,.2f} "
            f"{cur}/month")


def _breakdown(base: dict[str, Any] | None, head: dict[str, Any] | None, key: str) -> dict[str, dict[str, Any]]:
    """Per layer or pool: base -> head monthly cost, only where it changed (a plan older than the
    per-layer figures has none: its side reads 0)."""
    old = ((base or {}).get("cost") or {}).get(key) or {}
    new = ((head or {}).get("cost") or {}).get(key) or {}
    return {name: {"base": old.get(name, 0), "head": new.get(name, 0),
                   "delta": round(new.get(name, 0) - old.get(name, 0), 2)}
            for name in sorted(old.keys() | new.keys()) if old.get(name, 0) != new.get(name, 0)}


def _moving(moving: dict[str, Any] | None, cur: str) -> list[str]:
    """The head is a step of a store's move: whose volumes are priced on the old provider, and the total once moved."""
    if not moving:
        return []
    held = {(move["now"]["provider"], move["moved"]["provider"]) for move in moving["moving"] if "reason" not in move}
    names = ", ".join(f"`{name}`" for name in dict.fromkeys(move["resource"] for move in moving["moving"]))
    where = "; ".join(f"on {old} until each instance is replaced onto {new}" for old, new in sorted(held))
    line = f"- volumes of moving stores ({names}) priced {where or 'as the plan states'}"
    if moving.get("movedTotal") is not None:
        line += f"; once all are replaced: {moving['movedTotal']:,.2f} {cur}/month"
    return [line]


def render(stack: str, base_ref: str, d: dict[str, Any]) -> str:
    cur = d["currency"] or ""
    cost, time = d["cost"], d["deployTime"]
    at_max = d.get("costMax") or cost
    k3s = d.get("k3sReady") or {}
    if not (d["added"] or d["removed"] or d["changed"] or cost["delta"] or time["delta"] or at_max["delta"]
            or k3s.get("delta") or d.get("autoscaling") or d["warnings"]["new"] or d["warnings"]["gone"]):
        return f"### Stack `{stack}`: no change against `{base_ref}`\n"
    money = ("unknown" if cost["delta"] is None else
             f"{cost['base']:,.2f} -> {cost['head']:,.2f} {cur}/month ({cost['delta']:+,.2f})")
    if d.get("exchange") and cost["delta"] is not None:
        money += f", converted at {exchange_text(d['exchange'])}"
    out = [f"### Stack `{stack}` against `{base_ref}`", "",
           f"- resources: **{len(d['added'])} to add, {len(d['changed'])} to change, {len(d['removed'])} to remove**",
           f"- estimated cost: {money}",
           f"- first deploy (critical path): {minutes(time['base'])} -> {minutes(time['head'])} "
           f"({'+' if time['delta'] >= 0 else '-'}{minutes(abs(time['delta']))})"]
    if at_max != cost:  # autoscaled pools on either side: the top of the range too
        out.insert(4, "- estimated cost with autoscaled pools at their max: " + (
            "unknown" if at_max["delta"] is None else
            f"{at_max['base']:,.2f} -> {at_max['head']:,.2f} {cur}/month ({at_max['delta']:+,.2f})"))
    for key, title in (("layers", "layer"), ("pools", "pool")):
        out += [f"  - {title} {name}: {row['base']:,.2f} -> {row['head']:,.2f} {cur}/month ({row['delta']:+,.2f})"
                for name, row in d.get("costBy", {}).get(key, {}).items()]
    out += [f"  - autoscaled pool {name}: {_range(row['base'], cur)} -> {_range(row['head'], cur)}"
            for name, row in (d.get("autoscaling") or {}).items()]
    out += _moving(d.get("moving"), cur)
    if k3s.get("delta"):  # only where it moved: the servers' joins, the nodes' tuning or staging changed
        out.append(f"- K3s running on every node: {minutes(k3s['base'])} -> {minutes(k3s['head'])} "
                   f"({'+' if k3s['delta'] >= 0 else '-'}{minutes(abs(k3s['delta']))})")
    out.append("")
    out += nodes.render(d.get("nodes") or [])
    for title, rows in (("Added", d["added"]), ("Removed", d["removed"])):
        if rows:
            out += [f"{title}:", *[f"- `{r['name']}` ({r['type']})" for r in rows], ""]
    if d["changed"]:
        out.append("Changed:")
        for r in d["changed"]:
            shown = ", ".join(f"`{p}`" for p in r["inputs"][:MAX_PATHS])
            more = f" and {len(r['inputs']) - MAX_PATHS} more" if len(r["inputs"]) > MAX_PATHS else ""
            out.append(f"- `{r['name']}` ({r['type']}): {shown}{more}")
        out.append("")
    for title, rows in (("New warnings", d["warnings"]["new"]), ("Resolved warnings", d["warnings"]["gone"])):
        if rows:
            out += [f"{title}:", *[f"- {w}" for w in rows], ""]
    return "\n".join(out)


def _git(*args: str, **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=False, capture_output=True, **kwargs)


def export_tree(ref: str, into: Path) -> None:
    """The tree at `ref`, with this tree's planner copied over it."""
    if _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").returncode != 0:
        raise SystemExit(f"plan-diff: {ref!r} is not a commit in this repository (BASE=<branch, tag or sha>)")
    archive = _git("archive", "--format=tar", ref)
    if archive.returncode != 0:
        raise SystemExit(f"plan-diff: git archive {ref} failed: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    for folder in ("tools", "policy"):
        shutil.rmtree(into / folder, ignore_errors=True)
        shutil.copytree(ROOT / folder, into / folder, ignore=shutil.ignore_patterns("__pycache__", "node_modules"))


def plan_in(tree: Path, stack: str) -> dict[str, Any] | None:
    """The plan of `stack` in another tree (a separate process: the Pulumi runtime is global)."""
    if not (tree / f"Pulumi.{stack}.yaml").exists():
        return None
    out = tree / "build" / "plan"
    result = subprocess.run([sys.executable, "-m", "tools.plan", stack, "--out", str(out), "--quiet"],
                            cwd=tree, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"plan-diff: planning {stack} at the base failed:\n{result.stderr.strip()[-2000:]}")
    return json.loads((out / f"{stack}.json").read_text())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.plan.diff", description=__doc__)
    parser.add_argument("base", help="git ref to compare against (branch, tag or commit)")
    parser.add_argument("--stack", action="append", help="only these stacks (default: every stack on either side)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT / "diff.md")
    args = parser.parse_args(argv)
    sections = []
    with tempfile.TemporaryDirectory(prefix="plan-diff-") as tmp:
        tree = Path(tmp)
        export_tree(args.base, tree)
        base_stacks = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in tree.glob("Pulumi.*.yaml"))
        unknown = [s for s in args.stack or [] if s not in stacks() and s not in base_stacks]
        if unknown:
            print(f"plan-diff: no Pulumi.{unknown[0]}.yaml in the working tree or at {args.base}", file=sys.stderr)
            return 2
        for stack in args.stack or sorted(set(stacks()) | set(base_stacks)):
            try:
                head = plan_stack(stack) if stack in stacks() else None
            except ConfigError as exc:
                print(f"plan-diff: stack {stack} does not validate:\n{exc}", file=sys.stderr)
                return 1
            base = plan_in(tree, stack)
            changes = diff_plans(base, head)
            sections.append(render(stack, args.base, changes))
            if head is not None:  # the head's report (<stack>.html) and the picture of the change, next to diff.md
                write(head, args.out.parent)
                (args.out.parent / f"{stack}.diff.svg").write_text(diffpicture.svg(base, head, changes, args.base))
    text = f"## Offline plan diff against `{args.base}`\n\n" + "\n".join(sections)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    exit_process(main(sys.argv[1:]))

