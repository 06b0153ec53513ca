"""Over the public internet, a node that leaves is drained before any firewall rule stops admitting it.

In a cluster whose providers peer over the internet (providers/hybrid.py over_internet) every provider's firewall
admits exactly the cluster's node addresses. When a node leaves (a pool's count lowered, a control-plane member
removed), Pulumi changes two kinds of rule resources, at different times:

- a rule that admits that node alone (AWS: a security group rule per peer and port, and the public API balancer's)
  is deleted, like the node's drain command, at the end of the update, in reverse dependency order: the drain
  command depends on those rules (Infrastructure.admitted_by, components/k3s/lifecycle.py), so it runs first.
- a rule that names several nodes (Hetzner's peer firewall, GCP's firewall per port, Azure's NSG rule per port) is
  updated in Pulumi's forward pass, before any delete, and nothing in the graph can order an update after a
  delete. Unchecked, the leaving node loses its peers while it still runs pods: its kubelet no longer reaches the
  API servers (6443 on the stack provider's servers), nor its pods the other nodes (VXLAN and WireGuard), nor an
  etcd member its peers (2379-2380), and the drain itself, run on the node against the public API balancer, finds
  no API behind GCP's and Azure's balancers (which keep the client address, so their rule on 6443 applies) and
  then skips (drain.sh: "the API does not answer"), leaving the pods unevicted and the etcd member in place.
  Such a rule therefore carries `before_update` hooks (departure_hooks): when its update drops addresses, the hook
  takes the nodes with those addresses that the program no longer has out of the cluster first (scripts/depart.sh:
  cordon, drain, etcd member removal, Node deletion), one at a time, from the cluster's first K3s server
  (resize.py DRAIN_SERVER) as the node-lifecycle account. A failed drain fails the hook, which aborts the rule's
  update (the engine's rule for `before_*` hooks): the rule keeps admitting the node, and the next `pulumi up`
  tries again. The node's drain command still runs at the end and finds the Node gone.

Several rules drop the same node (one per port, one per provider): the hooks share one Departures per program run,
which takes each address out once, one departure at a time (an etcd member at a time). `pulumi preview` runs no
hooks. The hooks are bound only over the internet: no other stack has peer rules.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import pulumi

from components.k3s.lifecycle import DRAIN_TIMEOUT_SECONDS, ETCD_TIMEOUT_SECONDS, KUBE_LIB
from components.k3s.resize import (DRAIN_SERVER, NODE_NAME, TOKEN, DrainServer, Runner, _run_on, on_server_kubeconfig,
                                   token_script)
from components.shell import render

DEPART_TEMPLATE = Path(__file__).parent / "scripts" / "depart.sh"


class DepartError(Exception):
    """Taking a leaving node out failed: the engine aborts the rule's update, which keeps admitting it."""


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for each in value.values():
            yield from _strings(each)
    elif isinstance(value, (list, tuple)):
        for each in value:
            yield from _strings(each)


def _single_addresses(inputs: Mapping[str, Any] | None) -> set[str]:
    """Every single-address CIDR among a rule's inputs (its peers: providers/hybrid.py PeerAddress), as an address."""
    found = set()
    for text in _strings(inputs or {}):
        try:
            network = ipaddress.ip_network(text)
        except ValueError:
            continue
        if network.num_addresses == 1:
            found.add(str(network.network_address))
    return found


def dropped_addresses(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[str]:
    """The peers a rule's update stops admitting: the single addresses of its old inputs that its new ones lack.
    Whatever the provider calls the list (hcloud rules[].sourceIps, GCP sourceRanges, Azure sourceAddressPrefixes)."""
    return sorted(_single_addresses(old) - _single_addresses(new))


def depart_script(addresses: Sequence[str], keep: Sequence[str], token: str) -> str:
    for address in addresses:
        ipaddress.ip_address(address)  # only addresses reach the script
    bad = [name for name in keep if not NODE_NAME.fullmatch(name)]
    if bad:
        raise ValueError(f"departure hooks: {bad} are not Kubernetes node names")
    if not TOKEN.fullmatch(token):
        raise DepartError("the node-lifecycle token read to drain leaving nodes is not a service account token")
    return render(DEPART_TEMPLATE, {
        "ADDRESSES": " ".join(addresses), "KEEP": " ".join(keep),
        "KUBECONFIG_YAML": on_server_kubeconfig(token),
        "DRAIN_TIMEOUT": DRAIN_TIMEOUT_SECONDS, "ETCD_TIMEOUT": ETCD_TIMEOUT_SECONDS,
    }, libs=[KUBE_LIB])


@dataclass
class Departures:
    """The leaving nodes of one program run: `keep`, the node names the program has; each dropped address is taken
    out once (`done`), one departure at a time. An address whose departure failed (`failed`: why) fails every other
    rule's hook of the run at once: the first failure already aborts the update, and each retry would wait out a
    blocked drain again (DRAIN_TIMEOUT_SECONDS per rule: a rule per port and provider); the next run tries again."""

    keep: tuple[str, ...]
    done: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)
    _lock: asyncio.Lock | None = None

    async def before(self, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, run: Runner) -> None:
        if not dropped_addresses(old, new):
            return
        if self._lock is None:  # created on the loop the hooks run on
            self._lock = asyncio.Lock()
        async with self._lock:
            todo = [a for a in dropped_addresses(old, new) if a not in self.done]
            if not todo:
                return
            for address in todo:
                if address in self.failed:
                    raise DepartError(self.failed[address])
            try:
                token = (await run(token_script())).strip()
                # One script per address: each run is bounded by the SSH timeout, which fits one node's drain and
                # etcd member removal (SSH_TIMEOUT_SECONDS), not several nodes' in a row.
                for address in todo:
                    await run(depart_script([address], self.keep, token))
                    self.done.add(address)
            except Exception as e:
                left = [a for a in todo if a not in self.done]
                message = (f"the firewall update that stops admitting {', '.join(todo)} is aborted: taking the "
                           f"leaving nodes out of the cluster first failed: {e}")
                self.failed.update(dict.fromkeys(left, message))
                raise DepartError(message) from e


def departure_hooks(keep: Sequence[str], private_key: pulumi.Input[str],
                    drain_server: DrainServer = DRAIN_SERVER) -> pulumi.ResourceHookBinding:
    """The hooks of every peer rule that names several nodes, for one program run whose nodes are `keep` (their
    hostnames, the Kubernetes Node names); the scripts run on `drain_server`."""
    departures = Departures(tuple(keep))

    def where(_outputs: Mapping[str, Any] | None) -> tuple[pulumi.Input[str], pulumi.Input[str]]:
        return drain_server.reach("take leaving nodes out of the cluster from",
                                  "(kubectl drain) before lowering a count over the public internet")

    async def before(args: pulumi.ResourceHookArgs) -> None:
        await departures.before(args.old_inputs, args.new_inputs, _run_on(where, private_key, args.old_outputs))

    return pulumi.ResourceHookBinding(before_update=[pulumi.ResourceHook("depart-leaving-nodes", before)])
