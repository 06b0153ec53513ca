"""What a change does to the cluster's nodes (plan-diff's "Nodes" section): which servers are drained and
removed, drained and replaced, or drained, resized in place and uncordoned, in the order Pulumi takes them.

The order is read from the plan, not re-derived: each node's `drain-<node>` command depends on the
previous node's drain of its pool (components/k3s/lifecycle.py), and Pulumi deletes a resource only after
everything that depends on it, so a drain runs after the drains that depend on it.

Which input changes replace a server is the provider's knowledge (its schema's ForceNew / create-only
properties); the pinned Python SDKs do not carry it, so REPLACED_BY keeps it, with the source. Inputs the
program lists in `ignore_changes` (recorded in the plan) never replace. Which inputs a provider changes in
place by powering the server off is providers/power_off.py, the list the resize hooks act on
(components/k3s/resize.py); a server recorded with those hooks is drained first and uncordoned after.
"""

from __future__ import annotations

from typing import Any

from providers.power_off import POWER_OFF_INPUTS
from tools.plan import cost

DRAIN_TYPE = "command:remote:Command"
DRAIN_PREFIX = "drain-"

# Server inputs (Pulumi names; a path covers what is under it) whose change makes the provider recreate
# the server. Only top-level and the nested paths this program sets are listed.
REPLACED_BY: dict[str, tuple[str, ...]] = {
    # terraform-provider-hcloud internal/server/resource.go: image, location, datacenter, user_data,
    # ssh_keys are ForceNew (server_type, placement_group_id, networks, firewalls update in place).
    "hcloud:index/server:Server": ("image", "location", "datacenter", "userData", "sshKeys"),
    # terraform-provider-aws internal/service/ec2/ec2_instance.go: ForceNew ami, availability_zone,
    # subnet_id, associate_public_ip_address, key_name, private_ip, placement_group, host_id,
    # ebs_block_device, ephemeral_block_device, launch_template, root_block_device encrypted/kms_key_id
    # (instance_type updates in place, stopping the instance).
    "aws:ec2/instance:Instance": ("ami", "availabilityZone", "subnetId", "associatePublicIpAddress", "keyName",
                                  "privateIp", "placementGroup", "hostId", "ebsBlockDevices",
                                  "ephemeralBlockDevices", "launchTemplate", "rootBlockDevice.encrypted",
                                  "rootBlockDevice.kmsKeyId"),
    # terraform-provider-google compute instance: name, zone, project, boot_disk (its initialize_params),
    # hostname are ForceNew (machine_type updates in place with allow_stopping_for_update). Not yet
    # re-checked against the provider source at the pinned version (pulumi_gcp 10.2.0).
    "gcp:compute/instance:Instance": ("name", "zone", "project", "bootDisk", "hostname"),
    # azure-native: a VM is addressed by resource group and name (the URL), location and zones are
    # create-only (vmSize updates in place, the VM restarts). Not yet re-checked against the provider's
    # metadata at the pinned version (pulumi_azure_native 3.29.0).
    "azure-native:compute:VirtualMachine": ("vmName", "resourceGroupName", "location", "zones"),
}

ACTIONS = {
    "remove": "drain, then remove",
    "replace": "drain, replace (delete before create)",
    "resize": "drain (hook), resize in place, uncordon",
    # A plan recorded before the resize hooks (or a server without them): nothing drains the node.
    "resize-undrained": "resize in place WITHOUT automatic drain (see docs/lifecycle.md)",
}
RESIZE_HOOK = "before_update"


def _covers(prefix: str, path: str) -> bool:
    """Whether `path` (a changed input, `a.b[0].c`) is `prefix` or under it."""
    return path == prefix or path.startswith((prefix + ".", prefix + "["))


def _server_spec(plan: dict[str, Any] | None) -> dict[str, Any]:
    return (cost.table((plan or {}).get("provider") or "") or {}).get("servers") or {}


def _servers(plan: dict[str, Any] | None, resource_type: str | None) -> dict[str, dict[str, Any]]:
    """node name (the server resource's name, as in `drain-<node>`) -> server resource."""
    return {r["name"]: r for r in (plan or {}).get("resources", []) if r["type"] == resource_type}


def _action(server: dict[str, Any], paths: list[str]) -> tuple[str, list[str]] | None:
    """replace or resize (with the inputs that decide it) for a changed server, None for other changes."""
    ignored = (server.get("options") or {}).get("ignoreChanges") or []
    forced = [*REPLACED_BY.get(server["type"], ()), *((server.get("options") or {}).get("replaceOnChanges") or [])]
    live = [p for p in paths if not any(_covers(i, p) for i in ignored)]
    replacing = [p for p in live if any(_covers(f, p) for f in forced)]
    if replacing:
        return "replace", replacing
    powering_off = [".".join(path) for path in POWER_OFF_INPUTS.get(server["type"], ())]
    resizing = [p for p in live if any(_covers(i, p) for i in powering_off)]
    if not resizing:
        return None
    hooked = ((server.get("options") or {}).get("hooks") or {}).get(RESIZE_HOOK)
    return ("resize" if hooked else "resize-undrained"), resizing


def changes(base: dict[str, Any] | None, head: dict[str, Any] | None, d: dict[str, Any]) -> list[dict[str, Any]]:
    """[{node, action, inputs}] for the servers the change removes, replaces or resizes, in drain order."""
    spec = _server_spec(head) or _server_spec(base)
    old, new = _servers(base, spec.get("resource")), _servers(head, spec.get("resource"))
    changed = {row["urn"]: row["inputs"] for row in d["changed"]}
    found: dict[str, dict[str, Any]] = {}
    for name, server in old.items():
        if name not in new:
            found[name] = {"node": name, "action": "remove", "inputs": []}
        elif server["urn"] in changed:
            action = _action(new[name], changed[server["urn"]])
            if action:
                found[name] = {"node": name, "action": action[0], "inputs": action[1]}
    return [found[name] for name in drain_order(base, head, list(found))]


def _drain_edges(plan: dict[str, Any] | None) -> dict[str, set[str]]:
    """node -> the nodes whose drains its drain depends on (recorded dependencies)."""
    drains = {r["urn"]: r["name"][len(DRAIN_PREFIX):] for r in (plan or {}).get("resources", [])
              if r["type"] == DRAIN_TYPE and r["name"].startswith(DRAIN_PREFIX)}
    return {drains[r["urn"]]: {drains[dep] for dep in r["dependencies"] if dep in drains}
            for r in (plan or {}).get("resources", []) if r["urn"] in drains}


def drain_order(base: dict[str, Any] | None, head: dict[str, Any] | None, nodes: list[str]) -> list[str]:
    """`nodes` in the order Pulumi deletes their drains: a drain after every drain that depends on it
    (transitively, through nodes not in `nodes` too). Between unrelated drains (other pools, which
    Pulumi may run in parallel) the node registered first goes first: pool by pool, in config order."""
    edges = _drain_edges(base)
    for node, deps in _drain_edges(head).items():
        edges.setdefault(node, set()).update(deps)
    rank: dict[str, int] = {}
    for plan in (base, head):
        for server in (plan or {}).get("servers") or []:  # in config order
            rank.setdefault(server["urn"].rsplit("::", 1)[-1] if server.get("urn") else server["name"], len(rank))
    remaining = set(edges) | set(nodes)
    ordered: list[str] = []
    while remaining:
        # Ready: no remaining drain depends on it.
        ready = [n for n in remaining if not any(n in edges.get(m, ()) for m in remaining if m != n)]
        pick = min(ready or remaining, key=lambda n: (rank.get(n, len(rank)), n))  # a cycle: config order
        ordered.append(pick)
        remaining.discard(pick)
    wanted = set(nodes)
    return [n for n in ordered if n in wanted]


def render(rows: list[dict[str, Any]]) -> list[str]:
    """The "Nodes" section's lines (none when no node is touched)."""
    if not rows:
        return []
    out = ["Nodes (in the order Pulumi drains them: one at a time within a pool, highest index first):"]
    for row in rows:
        why = f" ({', '.join(f'`{p}`' for p in row['inputs'])})" if row["inputs"] else ""
        warn = "**warning**: " if row["action"] == "resize-undrained" else ""
        out.append(f"- `{row['node']}`: {warn}{ACTIONS[row['action']]}{why}")
    return [*out, ""]
