"""Edits to a recorded plan that stand in for a config change to the servers (a pool's count, a server's
location or type), so plan-diff tests need no new whole-program run."""

from __future__ import annotations

import json
from typing import Any

SERVER = "hcloud:index/server:Server"


def copy(plan: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(plan))


def drop(plan: dict[str, Any], *node_names: str) -> None:
    """A pool count reduced: the nodes' servers and drains (and the rest of their resources) gone."""
    def gone(name: str) -> bool:
        return any(name == n or name.endswith("-" + n) for n in node_names)
    plan["resources"] = [r for r in plan["resources"] if not gone(r["name"])]
    plan["servers"] = [s for s in plan["servers"] if not gone((s.get("urn") or s["name"]).rsplit("::", 1)[-1])]


def server(plan: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in plan["resources"] if r["name"] == name and r["type"] == SERVER)
