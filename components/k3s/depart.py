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
  takes the nodes with those addresses that the program no longer has out of the cluster first, one at a time, as
  the node-lifecycle account on the cluster's first K3s server (resize.py DRAIN_SERVER): scripts/depart.sh PHASE=out
  cordons and drains the node and removes its etcd member (a server); scripts/stop-k3s.sh then stops and disables
  K3s on the leaving node itself; depart.sh PHASE=forget deletes its Node. A failed step fails the hook, which aborts
  the rule's update (the engine's rule for `before_*` hooks): the rule keeps admitting the node, and the next
  `pulumi up` tries again (each step finds what is done done). The node's drain command still runs at the end and
  finds the Node gone.

Why K3s is stopped in between: the leaving node's machine goes only at the end of the update, and its K3s must not
start again before. At the pinned K3s (components/charts.py K3S_VERSION), a server whose etcd member was removed
closes its etcd and writes a tombstone (pkg/daemons/executor embed.go, on rafthttp.ErrMemberRemoved) but keeps
running; on its next start (a crash restarted by systemd, a reboot) it backs its database up and joins the cluster
again as a new member (pkg/etcd Register: the tombstone). A running kubelet never registers its Node again
(pkg/kubelet registerWithAPIServer returns once registrationCompleted), a starting one does. So K3s is stopped
after the member removal (stopping a member first would take a two-member etcd, a single server moving to another
provider, below its quorum, and no member could be removed any more) and before the Node is deleted, and disabled
so a reboot does not start it. The stop runs over SSH on the node at the address the rule drops (every provider's
connection host is the node's public address, its node-ip over the internet), as its provider's login user
(`logins`: the adplatform.io/provider label of its Node picks it) with the stack's SSH key, as the program's
remote commands on that node did. A node whose kubelet was not Ready after its drain (the machine down or cut off,
or K3s stopped by hand) gets one short try (PROBE_ATTEMPTS connections): stopped if it answers, left as it is if not,
since a machine that cannot be reached would fail the hook for ever.

Before the first departure of a run the hook runs the steps other layers registered (BEFORE_DEPARTURE): a store
whose servers must be emptied before their nodes are drained (the object store's volume servers,
components/data/objectstore_shrink.py) adds one; a failed step drains nothing and aborts the rule's update.

Several rules drop the same node (one per port, one per provider): the hooks share one Departures per program run,
which takes each address out once, one departure at a time (an etcd member at a time). `pulumi preview` runs no
hooks. The hooks are bound only over the internet: no other stack has peer rules.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator, Mapping, Sequence

import pulumi

from components.k3s.lifecycle import DRAIN_TIMEOUT_SECONDS, ETCD_TIMEOUT_SECONDS, KUBE_LIB, UNREPORTED_POD_SKIP_SECONDS
from components.k3s.resize import (DRAIN_SERVER, NODE_NAME, RECORDED, SSH_ATTEMPTS, TOKEN, DrainServer, Reach,
                                   Runner, _run_on, on_server_kubeconfig, token_script)
from components.shell import render

DEPART_TEMPLATE = Path(__file__).parent / "scripts" / "depart.sh"
STOP_TEMPLATE = Path(__file__).parent / "scripts" / "stop-k3s.sh"
STOP_TIMEOUT_SECONDS = 180  # systemctl disable --now of K3s (its unit stops K3s alone; pod containers keep running)
# One SSH run of stop-k3s.sh, connection included (ssh_run tries to connect for up to 300 s).
STOP_SSH_TIMEOUT_SECONDS = 2 * STOP_TIMEOUT_SECONDS + 300
# A leaving node that was not Ready after its drain (its machine down, cut off, or K3s stopped by hand) gets one short
# try: two connection attempts of 10 s, then the stop itself.
PROBE_ATTEMPTS = 2
PROBE_SSH_TIMEOUT_SECONDS = STOP_TIMEOUT_SECONDS + 10 * PROBE_ATTEMPTS + 10
STOP_BY_HAND = "systemctl disable --now k3s k3s-agent"  # what the messages tell an operator to run on a leaving node


# Runs scripts on the leaving node at `address` as `user` (its provider's login), with the stack's SSH key; `patient`
# False: one short try (PROBE_ATTEMPTS) for a node that may well be down.
NodeRunner = Callable[[str, str, bool], Runner]
# A step a higher layer needs done before nodes depart: (the addresses that leave, the node names the program keeps,
# the node-lifecycle token, a runner on the cluster's first K3s server). It raises to keep every node.
DepartureStep = Callable[[Sequence[str], Sequence[str], str, Runner], Awaitable[None]]


@dataclass
class BeforeDeparture:
    """The steps that run before any node of a program run departs, in the order they were added. The K3s layer
    knows nothing of what runs on the nodes: a store whose servers must be emptied before their nodes are drained
    (components/data/objectstore_shrink.py) adds its step while the program runs; the hooks read them when they fire,
    after the whole program has run. Each step names how long one of its script runs may take over SSH."""

    steps: dict[str, tuple[DepartureStep, float]] = field(default_factory=dict)

    def add(self, name: str, step: DepartureStep, ssh_timeout: float) -> None:
        self.steps[name] = (step, ssh_timeout)

    async def run(self, addresses: Sequence[str], keep: Sequence[str], token: str,
                  runner: Callable[[float], Runner]) -> None:
        """`runner(timeout)`: scripts on the cluster's first K3s server, each bounded by `timeout`."""
        for name, (step, timeout) in self.steps.items():
            try:
                await step(addresses, keep, token, runner(timeout))
            except Exception as e:
                raise DepartError(f"{name} before the nodes leave failed: {e}") from e


BEFORE_DEPARTURE = BeforeDeparture()  # the deploying process's steps: one program run per process


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


def _node_names(names: Sequence[str]) -> str:
    bad = [name for name in names if not NODE_NAME.fullmatch(name)]
    if bad:
        raise ValueError(f"departure hooks: {bad} are not Kubernetes node names")
    return " ".join(names)


def depart_script(addresses: Sequence[str], keep: Sequence[str], token: str, *, phase: str = "out",
                  nodes: Sequence[str] = ()) -> str:
    """depart.sh: PHASE=out takes the nodes with `addresses` (but `keep`) out; PHASE=forget deletes `nodes`."""
    if phase not in ("out", "forget"):
        raise ValueError(f"departure phase must be out or forget, got {phase!r}")
    for address in addresses:
        ipaddress.ip_address(address)  # only addresses reach the script
    if not TOKEN.fullmatch(token):
        raise DepartError("the node-lifecycle token read to drain leaving nodes is not a service account token")
    return render(DEPART_TEMPLATE, {
        "PHASE": phase, "ADDRESSES": " ".join(addresses), "KEEP": _node_names(keep), "NODES": _node_names(nodes),
        "KUBECONFIG_YAML": on_server_kubeconfig(token),
        "DRAIN_TIMEOUT": DRAIN_TIMEOUT_SECONDS, "ETCD_TIMEOUT": ETCD_TIMEOUT_SECONDS,
        "SKIP_WAIT": UNREPORTED_POD_SKIP_SECONDS,
    }, libs=[KUBE_LIB])


def stop_script(node: str) -> str:
    return render(STOP_TEMPLATE, {"NODE_NAME": _node_names([node]), "STOP_TIMEOUT": STOP_TIMEOUT_SECONDS})


REPORT = "departed"  # the first field of depart.sh's report lines


@dataclass(frozen=True)
class Leaving:
    """A node depart.sh PHASE=out took out (one line of its stdout): name, provider label, kubelet Ready."""

    name: str
    provider: str
    ready: bool

    @classmethod
    def parse(cls, stdout: str) -> list["Leaving"]:
        """The report lines (`departed<TAB>name<TAB>provider<TAB>ready`) among whatever else reached stdout."""
        found = []
        for line in stdout.splitlines():
            mark, _, rest = line.partition("\t")
            if mark != REPORT:
                continue
            name, provider, ready = (rest.split("\t") + ["", ""])[:3]
            _node_names([name])
            found.append(cls(name, provider, ready == "True"))
        return found


@dataclass
class Departures:
    """The leaving nodes of one program run: `keep`, the node names the program has; each dropped address is taken
    out once (`done`), one departure at a time. An address whose departure failed (`failed`: why) fails every other
    rule's hook of the run at once: the first failure already aborts the update, and each retry would wait out a
    blocked drain again (DRAIN_TIMEOUT_SECONDS per rule: a rule per port and provider); the next run tries again."""

    keep: tuple[str, ...]
    # The SSH login of each provider's nodes (the adplatform.io/provider label's value -> user), for stop-k3s.sh.
    logins: Mapping[str, str] = field(default_factory=dict)
    steps: BeforeDeparture = field(default_factory=BeforeDeparture)
    done: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)
    _lock: asyncio.Lock | None = None

    async def before(self, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, run: Runner,
                     run_on_node: NodeRunner, run_for: Callable[[float], Runner] | None = None) -> None:
        """`run`: a script on the cluster's first K3s server; `run_on_node(address, user)`: on a leaving node;
        `run_for(timeout)`: on the first server with another bound, for the steps (default: `run`)."""
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
                await self.steps.run(todo, self.keep, token, run_for or (lambda _timeout: run))
                # One script per address: each run is bounded by the SSH timeout, which fits one node's drain and
                # etcd member removal (SSH_TIMEOUT_SECONDS), not several nodes' in a row.
                for address in todo:
                    await self._depart(address, token, run, run_on_node)
                    self.done.add(address)
            except Exception as e:
                left = [a for a in todo if a not in self.done]
                message = (f"the firewall update that stops admitting {', '.join(todo)} is aborted: taking the "
                           f"leaving nodes out of the cluster first failed: {e}")
                self.failed.update(dict.fromkeys(left, message))
                raise DepartError(message) from e

    async def _depart(self, address: str, token: str, run: Runner, run_on_node: NodeRunner) -> None:
        leaving = Leaving.parse(await run(depart_script([address], self.keep, token)))
        for node in leaving:
            if not node.ready:
                await self._stop_if_it_answers(node, address, run_on_node)
                continue
            user = self.logins.get(node.provider)
            if user is None:
                raise DepartError(f"{node.name} ({address}) has provider label {node.provider!r}, whose SSH login is "
                                  f"unknown (known: {', '.join(sorted(self.logins))}): stop and disable K3s on it by "
                                  f"hand ({STOP_BY_HAND}), then run pulumi up again")
            try:
                await run_on_node(address, user, True)(stop_script(node.name))
            except Exception as e:
                raise DepartError(f"stopping K3s on {node.name} ({address}, as {user}) failed: {e}. If the machine "
                                  f"is gone or cannot be reached, stop and disable K3s on it by hand ({STOP_BY_HAND}) "
                                  f"or power it off; its Node then turns NotReady and "
                                  f"the next pulumi up takes it out without reaching it") from e
        if leaving:
            await run(depart_script([], self.keep, token, phase="forget", nodes=[n.name for n in leaving]))

    async def _stop_if_it_answers(self, node: Leaving, address: str, run_on_node: NodeRunner) -> None:
        """A node not Ready after its drain: its machine down or cut off, or K3s stopped by hand. If it answers after
        all (a kubelet that only stopped reporting), its K3s is stopped and disabled as for a Ready node, so it cannot
        register its Node again before the machine goes; if not, it is left as it is: waiting for a dead machine would
        fail the hook on every run."""
        user = self.logins.get(node.provider)
        if user is None:
            pulumi.log.info(f"{node.name} ({address}) was not Ready after its drain and its provider label "
                            f"{node.provider!r} names no known SSH login: it is not reached")
            return
        try:
            await run_on_node(address, user, False)(stop_script(node.name))
        except Exception as e:  # down or unreachable: nothing runs there to stop, or nothing we can reach
            pulumi.log.info(f"{node.name} ({address}) was not Ready after its drain and does not answer ({e}): its "
                            f"Node is deleted; if the machine comes back before it is deleted, stop K3s on it "
                            f"({STOP_BY_HAND})")


def departure_hooks(keep: Sequence[str], private_key: pulumi.Input[str], logins: Mapping[str, str],
                    drain_server: DrainServer = DRAIN_SERVER,
                    steps: BeforeDeparture = BEFORE_DEPARTURE) -> pulumi.ResourceHookBinding:
    """The hooks of every peer rule that names several nodes, for one program run whose nodes are `keep` (their
    hostnames, the Kubernetes Node names); the scripts run on `drain_server`, but stop-k3s.sh, which runs on the
    leaving node as `logins[<its provider>]`; `steps` run before the first node departs."""
    departures = Departures(tuple(keep), dict(logins), steps)

    def on_node(address: str, user: str, patient: bool) -> Runner:
        timeout, attempts = (STOP_SSH_TIMEOUT_SECONDS, SSH_ATTEMPTS) if patient else (PROBE_SSH_TIMEOUT_SECONDS,
                                                                                      PROBE_ATTEMPTS)
        # The leaving node's key-read step is no longer in the program: the key the previous run recorded for it.
        return _run_on(lambda _outputs: Reach(address, user, RECORDED), private_key, None, timeout, attempts)

    def where(_outputs: Mapping[str, Any] | None) -> Reach:
        return drain_server.reach("take leaving nodes out of the cluster from",
                                  "(kubectl drain) before lowering a count over the public internet")

    async def before(args: pulumi.ResourceHookArgs) -> None:
        await departures.before(args.old_inputs, args.new_inputs, _run_on(where, private_key, args.old_outputs),
                                on_node, lambda timeout: _run_on(where, private_key, args.old_outputs, timeout))

    return pulumi.ResourceHookBinding(before_update=[pulumi.ResourceHook("depart-leaving-nodes", before)])
