"""The previous run: what the stack's last `pulumi up` recorded about its nodes, read back at the start of this one.

Some Day-2 checks need a fact the config of this run cannot give: which nodes the cluster had before this edit (a
cluster over the public internet must not gain and lose nodes in one edit, providers/hybrid.py churn_problems), and
the SSH host key each node had pinned (a hook reaching a node whose key-read step is gone or not yet done,
RECORDED_KEYS). Each run exports them as the stack output `previousRun` (OUTPUT: node names,
SSH addresses and host public keys, nothing secret) and the next run reads its own stack's outputs back.

How the read works (docs/lifecycle.md, "The previous run"): the engine's built-in `pulumi:pulumi:readStackOutputs`
invoke (the one behind stack references) with this stack's fully qualified name returns the root stack resource's
outputs from the backend's latest checkpoint, on Pulumi Cloud and the self-managed (file, S3, ...) backends alike.
While this very update runs that checkpoint still holds the previous run's outputs: the engine keeps the root stack's
old outputs through the update and writes the new ones only at its end, and not at all for outputs a failed run did
not register (pulumi/pulumi #15754, CLI v3.112). A stack never deployed has no outputs: the first run finds no record.
The invoke is synchronous, so the program has the record before it creates any resource and can refuse an edit then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import pulumi

OUTPUT = "previousRun"
GCP_LEGACY = "gcpLegacyVolumeNames"  # in the record of a stack with GCP nodes: gcp_legacy_volume_names's answer
READ_STACK_OUTPUTS = "pulumi:pulumi:readStackOutputs"  # the engine's built-in provider (pkg/resource/deploy/builtins.go)


class PreviousRunError(pulumi.RunError):
    """The stack's own outputs could not be read back."""


@dataclass(frozen=True)
class RecordedNode:
    address: str  # where the program's SSH connection reached it (over the internet: its public address)
    host_key: str | None  # its pinned ed25519 host public key (None: not read yet when the run recorded it)


@dataclass(frozen=True)
class PreviousRun:
    """The record of the last run that exported one; `nodes` by config node name (config/model.py node_name)."""

    nodes: Mapping[str, RecordedNode] = field(default_factory=dict)
    recorded: bool = False  # False: no record (a first deploy, or a stack last deployed before the record existed)
    deployed: bool = False  # the stack has outputs: deployed before, by this program with or without the record
    gcp_legacy_volume_names: bool | None = None  # what that run used (GCP stacks only)

    def host_keys(self) -> dict[str, str]:
        """Each recorded node's pinned host key by its SSH address."""
        return {node.address: node.host_key for node in self.nodes.values() if node.address and node.host_key}


@dataclass
class RecordedKeys:
    """The SSH host keys the previous run pinned, by address (`previousRun` read back, PreviousRun.host_keys). A leaving
    node is still in that record, and a server resizing itself had its key read by an earlier run: the hooks reach both
    with the key their own key-read step read, without waiting for that step (components/k3s/resize.py); a dead machine
    keeps its connection's key without being dialled (providers/base.py ssh_connection)."""

    keys: dict[str, str] = field(default_factory=dict)

    def use(self, keys: Mapping[str, str]) -> None:
        self.keys = dict(keys)

    def key_for(self, host: str, default: str | None = None) -> str | None:
        """The key the previous run pinned for the host at `host`, else `default`."""
        return self.keys.get(host, default)


RECORDED_KEYS = RecordedKeys()  # the deploying process's record: one program run per process


def stack_name() -> str:
    """This stack's fully qualified name: Pulumi Cloud requires <org>/<project>/<stack>; the self-managed backends
    take it too, with the constant organization `organization` (a backend made before CLI v3.61 needs
    `pulumi state upgrade` first)."""
    return f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"


def parse(outputs: Mapping[str, Any] | None) -> PreviousRun:
    """The record in a stack's outputs (none there: no record)."""
    record = (outputs or {}).get(OUTPUT)
    if not isinstance(record, Mapping) or not isinstance(record.get("nodes"), Mapping):
        return PreviousRun(deployed=bool(outputs))
    nodes = {name: RecordedNode(str(node.get("address") or ""), node.get("hostKey") or None)
             for name, node in record["nodes"].items() if isinstance(node, Mapping)}
    legacy = record.get(GCP_LEGACY)
    return PreviousRun(nodes, recorded=True, deployed=True,
                       gcp_legacy_volume_names=legacy if isinstance(legacy, bool) else None)


def gcp_legacy_volume_names(configured: bool | None, previous: PreviousRun) -> bool:
    """Whether a GCP stack's nodes also reach the PD CSI sidecars' default `pvc-`/`snapshot-` names
    (adplatform:gcp.legacyVolumeNames; providers/gcp.py csi_disks_condition): as configured; unset, as the previous
    run had it, and for a stack deployed before the record (outputs but no record: its volumes carry the default
    names) true, for a new stack false. Kept in the record, so an old stack stays so until configured false."""
    if configured is not None:
        return configured
    if previous.recorded:
        return bool(previous.gcp_legacy_volume_names)
    return previous.deployed


def read(required: bool) -> PreviousRun:
    """The previous run's record, read from this stack's last checkpoint before any resource is created. Only the
    record is kept: the other outputs (secrets among them) are dropped here. `required`: a check needs it (a cluster
    over the internet), so a failed read fails the run; otherwise it is only the hooks' pinned keys, and a failed read
    leaves them as before (unpinned: RECORDED_KEYS) with a warning."""
    name = stack_name()
    try:
        result = pulumi.runtime.invoke(READ_STACK_OUTPUTS, {"name": name})
    except Exception as e:
        why = (f"could not read this stack's own outputs ({name}), which hold the previous run's record ({OUTPUT}): "
               f"{e}. On a self-managed backend created before Pulumi CLI v3.61 run `pulumi state upgrade` once; "
               "docs/lifecycle.md, \"The previous run\"")
        if required:
            raise PreviousRunError(why) from None
        pulumi.log.warn(why)
        return PreviousRun()
    value = result.value if result is not None else None
    return parse(value.get("outputs") if isinstance(value, Mapping) else None)


def record(nodes: Sequence[Any], gcp_legacy: bool | None = None) -> pulumi.Output[dict[str, Any]]:
    """The `previousRun` output of this run: each node's name, SSH address and pinned host key (providers/base.py
    Node.connection). It resolves once every node's key is read, so a run that fails before has no new record."""
    entries = {node.name: pulumi.Output.all(node.connection.host, node.connection.host_key).apply(
        lambda pair: {"address": pair[0], "hostKey": pair[1]}) for node in nodes}
    extra = {} if gcp_legacy is None else {GCP_LEGACY: gcp_legacy}
    return pulumi.Output.all(**entries).apply(lambda done: {"nodes": dict(done), **extra}) if entries \
        else pulumi.Output.from_input({"nodes": {}, **extra})
