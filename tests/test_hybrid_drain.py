"""Over the public internet a leaving node is drained before any firewall rule stops admitting it (issue 19).

Pulumi updates resources in its forward pass and deletes the ones the program no longer has at the end, a resource
before the ones it depends on. A rule admitting one node alone (AWS) is deleted at the end: the node's drain command
depends on it, so the drain runs first. A rule naming several nodes (Hetzner, GCP, Azure) is updated in the forward
pass, before every delete: its before_update hook takes the nodes it stops admitting out of the cluster first
(components/k3s/depart.py). The recorded programs show both; the hook body runs with a fake runner and its script
against a stub `k3s`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pulumi.resource_hooks
import pytest

from components.k3s import resize
from components.k3s.depart import (PROBE_ATTEMPTS, PROBE_SSH_TIMEOUT_SECONDS, STOP_SSH_TIMEOUT_SECONDS,
                                   UNREPORTED_POD_SKIP_SECONDS, BeforeDeparture, Departures, DepartError, Leaving,
                                   depart_script, departure_hooks, dropped_addresses, stop_script)
from components.k3s.lifecycle import DRAIN_TIMEOUT_SECONDS, ETCD_TIMEOUT_SECONDS
from components.k3s.resize import SERVER_CA, SSH_TIMEOUT_SECONDS, UNPINNED, DrainServer, token_script
from tests.test_resize import HOST_KEY as FIRST_KEY
from providers.hybrid import ssh_logins
from providers.previous_run import RECORDED_KEYS
from providers.base import PROVIDER_LABEL
from tests import validators
from tests.conftest import node_labels, script_param
from tests.test_hybrid import (AWS_SETTINGS, CLOUDS_SETTINGS, GCP_FIREWALL, NSG_RULE, SG_RULE, UP_TO_SERVICES,
                               clouds_raw, internet_raw, run_internet)
from tests.test_resize import drive
from tests.stubs import kubectl_calls, run_with_stubs
from tools import mockrun

COMMAND = "command:remote:Command"
HCLOUD_FIREWALL = "hcloud:index/firewall:Firewall"
DEPART_HOOKS = {"before_update": ["depart-leaving-nodes"]}
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJub2RlLWxpZmVjeWNsZSJ9.c2lnbmF0dXJl"
KEEP = ("adp-production-internet-control-plane-1", "adp-production-internet-general-1")
LOGINS = {"hetzner": "root", "aws": "ubuntu"}
LEAVING = "adp-production-internet-control-plane-4"


@pytest.fixture(scope="module")
def internet() -> mockrun.Run:
    """Hetzner Cloud with a stateless pool on AWS (tests/test_hybrid.py's, cached)."""
    return run_internet({**internet_raw(), "layers": UP_TO_SERVICES}, stack="production-internet")


@pytest.fixture(scope="module")
def clouds() -> mockrun.Run:
    """Hetzner Cloud with a pool on GCP and one on Azure (tests/test_hybrid.py's, cached)."""
    return run_internet({**clouds_raw(), "layers": UP_TO_SERVICES}, stack="production-internet",
                        settings=CLOUDS_SETTINGS)


def _nodes(run: mockrun.Run) -> list[str]:
    prefix = f"adp-{run.stack}-"
    return [host.removeprefix(prefix) for host in run.outputs["nodes"]]


# --- the recorded programs ---------------------------------------------------------------------------

def test_a_leaving_node_is_drained_before_the_rules_that_admit_it_alone_are_deleted(internet):
    """AWS names each peer in rules of its own (the nodes' group, and the public API balancer's on 6443): deleted
    with the node at the end of the update. Its drain command depends on every one of them, so Pulumi deletes the
    drain (runs drain.sh, while the node still reaches its peers and the API) before any of them."""
    rules = internet.of_type(SG_RULE)
    for node in _nodes(internet):
        own = {r.urn for r in rules if r.name.startswith(("nodes-in-peer-", "api-public-lb-in-peer-"))
               and r.name.endswith(f"-{node}")}
        assert len(own) >= 4, f"{node}: the AWS rules naming it (one per cluster port its agents listen on)"
        drain = internet.named(f"drain-{node}", COMMAND)
        assert own <= set(drain.dependencies), f"{node}'s drain runs before its rules go"


def test_rules_naming_several_nodes_take_the_leaving_nodes_out_before_their_update(internet, clouds):
    """Hetzner's peer firewall, GCP's peer firewalls and Azure's peer NSG rules name every peer in one list, which
    an update shortens in Pulumi's forward pass, before any delete: each carries the departure hook."""
    shared = [internet.named("firewall-peers", HCLOUD_FIREWALL), clouds.named("firewall-peers", HCLOUD_FIREWALL),
              *(r for r in clouds.of_type(GCP_FIREWALL) if "in-peers" in r.name),
              *(r for r in clouds.of_type(NSG_RULE) if r.name.startswith("nsg-peers-"))]
    assert len(shared) >= 2 + 2 * 4
    assert all(r.options.get("hooks") == DEPART_HOOKS for r in shared), [r.name for r in shared]
    # A rule admitting one node alone is never updated when a node leaves: ordered by the drain's dependencies.
    assert not any(r.options.get("hooks") for r in internet.of_type(SG_RULE))


def _peer_rules(run: mockrun.Run) -> set[str]:
    """Every firewall resource admitting the cluster's peers: Hetzner's peer firewall and its attachment, AWS's rules
    per peer, GCP's and Azure's rules per port."""
    return {r.urn for r in run.resources
            if r.name in ("firewall-peers",) or r.name.startswith(("nodes-in-peer-", "api-public-lb-in-peer-"))
            or (r.type == GCP_FIREWALL and "in-peers" in r.name) or (r.type == NSG_RULE and r.name.startswith("nsg-peers-"))}


@pytest.mark.parametrize("fixture", ["internet", "clouds"])
def test_every_k3s_install_waits_for_every_peer_rule(fixture, request):
    """A node joins over the internet only once every provider's firewall admits it, and a peer rule's update (its
    departure hook drains the nodes it drops) is done before any node is reconfigured and before anything installed
    on the cluster updates (it all depends on the first server's install): e.g. the object store's release, whose own
    shrink hook must not race the departures."""
    run: mockrun.Run = request.getfixturevalue(fixture)
    rules = _peer_rules(run)
    assert len(rules) >= (4 if fixture == "clouds" else 20), sorted(rules)
    installs = [r for r in run.of_type(COMMAND) if r.name.startswith("k3s-")]
    assert len(installs) == len(_nodes(run))
    for install in installs:
        missing = rules - set(install.dependencies)
        assert not missing, f"{install.name} may start before {sorted(missing)[:3]}"


# --- the hook body -----------------------------------------------------------------------------------

class FakeRunner:
    """The first K3s server: `out` is what depart.sh PHASE=out prints (the nodes it took out)."""

    def __init__(self, calls: list[str], fail: bool = False, wait: asyncio.Event | None = None, out: str = ""):
        self.calls, self.fail, self.wait, self.out = calls, fail, wait, out

    async def __call__(self, script: str) -> str:
        if script == token_script():
            self.calls.append("token")
            return TOKEN + "\n"
        self.calls.append(script)
        if self.wait is not None:
            await self.wait.wait()
        if self.fail:
            raise RuntimeError("exit 1: draining did not finish within 600s")
        return self.out if script_param(script, "PHASE") == "out" else ""


def on_no_node(address: str, user: str, patient: bool):
    raise AssertionError(f"no leaving node is reached over SSH ({user}@{address})")


HCLOUD_OLD = {"rules": [{"port": "6443", "sourceIps": ["198.51.100.1/32", "198.51.100.2/32", "198.51.100.3/32"]},
                        {"port": "2379-2380", "sourceIps": ["198.51.100.1/32", "198.51.100.3/32"]}]}
HCLOUD_NEW = {"rules": [{"port": "6443", "sourceIps": ["198.51.100.1/32", "198.51.100.2/32"]},
                        {"port": "2379-2380", "sourceIps": ["198.51.100.1/32"]}]}


@pytest.mark.parametrize("old,new", [
    (HCLOUD_OLD, HCLOUD_NEW),
    ({"sourceRanges": ["198.51.100.1/32", "198.51.100.3/32"], "targetTags": ["n"]},
     {"sourceRanges": ["198.51.100.1/32"], "targetTags": ["n"]}),
    ({"sourceAddressPrefixes": ["198.51.100.3/32", "198.51.100.1/32"], "priority": 210},
     {"sourceAddressPrefixes": ["198.51.100.1/32"], "priority": 210}),
])
def test_the_addresses_an_update_drops_whatever_the_provider_calls_its_list(old, new):
    assert dropped_addresses(old, new) == ["198.51.100.3"]


def test_an_update_that_drops_an_address_takes_that_node_out_first():
    calls: list[str] = []
    drive(Departures(KEEP).before(HCLOUD_OLD, HCLOUD_NEW, FakeRunner(calls), on_no_node))
    assert calls[0] == "token" and len(calls) == 2
    script = calls[1]
    assert script_param(script, "ADDRESSES") == "198.51.100.3"
    assert script_param(script, "KEEP").split() == list(KEEP), "a node the program keeps never leaves"
    assert "https://127.0.0.1:6443" in script_param(script, "KUBECONFIG_YAML")
    assert SERVER_CA in script_param(script, "KUBECONFIG_YAML")


def test_each_dropped_address_departs_in_a_script_run_of_its_own():
    """Each SSH run is bounded (resize.SSH_TIMEOUT_SECONDS): it fits one node's drain and etcd member removal, not
    several nodes' in a row, so a rule dropping several nodes takes them out one run each."""
    calls: list[str] = []
    new = {"rules": [{"port": "6443", "sourceIps": ["198.51.100.1/32"]}]}
    drive(Departures(KEEP).before(HCLOUD_OLD, new, FakeRunner(calls), on_no_node))
    scripts = [c for c in calls if c != "token"]
    assert [script_param(c, "ADDRESSES") for c in scripts] == ["198.51.100.2", "198.51.100.3"]
    assert SSH_TIMEOUT_SECONDS >= DRAIN_TIMEOUT_SECONDS + ETCD_TIMEOUT_SECONDS + 60


@pytest.mark.parametrize("new", [HCLOUD_OLD, {"rules": [*HCLOUD_OLD["rules"], {"sourceIps": ["198.51.100.9/32"]}]}])
def test_an_update_that_drops_nobody_runs_nothing(new):
    calls: list[str] = []
    drive(Departures(KEEP).before(HCLOUD_OLD, new, FakeRunner(calls), on_no_node))
    assert calls == []


def test_several_rules_dropping_the_same_node_take_it_out_once():
    """One rule per port and per provider drop the same node, their hooks at once: one departure."""
    calls: list[str] = []
    departures = Departures(KEEP)

    async def both():
        gate = asyncio.Event()
        first = asyncio.ensure_future(departures.before(HCLOUD_OLD, HCLOUD_NEW, FakeRunner(calls, wait=gate),
                                                        on_no_node))
        second = asyncio.ensure_future(departures.before({"sourceRanges": ["198.51.100.3/32"]}, {"sourceRanges": []},
                                                         FakeRunner(calls), on_no_node))
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(first, second)
    drive(both())
    assert [c for c in calls if c != "token"] and len([c for c in calls if c != "token"]) == 1


def test_a_failed_departure_aborts_every_rules_update_of_the_run_and_the_next_run_tries_again():
    """The first failure aborts the update already; the other rules dropping the node (one per port and provider)
    fail at once instead of each waiting out the blocked drain again. The next `pulumi up` is a new run."""
    calls: list[str] = []
    departures = Departures(KEEP)
    with pytest.raises(DepartError, match="stops admitting 198.51.100.3 is aborted"):
        drive(departures.before(HCLOUD_OLD, HCLOUD_NEW, FakeRunner(calls, fail=True), on_no_node))
    with pytest.raises(DepartError, match="stops admitting 198.51.100.3 is aborted.*did not finish"):
        drive(departures.before({"sourceRanges": ["198.51.100.3/32"]}, {"sourceRanges": []}, FakeRunner(calls),
                                on_no_node))
    assert len([c for c in calls if c != "token"]) == 1, "the other rule's hook does not drain again"
    drive(Departures(KEEP).before(HCLOUD_OLD, HCLOUD_NEW, FakeRunner(calls), on_no_node))
    assert len([c for c in calls if c != "token"]) == 2, "the node was not out: the next run tries again"


def test_the_steps_registered_before_departure_run_before_any_node_is_drained():
    """A store whose servers must be emptied before their nodes go (the object store) registers a step; it runs once,
    with the leaving addresses and the kept nodes, after the token is read and before the first drain."""
    calls: list = []
    steps = BeforeDeparture()

    async def step(addresses, keep, token, run):
        calls.append(("step", tuple(addresses), tuple(keep), token))
    steps.add("emptying the store", step, 100)
    new = {"rules": [{"port": "6443", "sourceIps": ["198.51.100.1/32"]}]}
    drive(Departures(KEEP, steps=steps).before(HCLOUD_OLD, new, FakeRunner(calls), on_no_node))
    assert calls[0] == "token"
    assert calls[1] == ("step", ("198.51.100.2", "198.51.100.3"), KEEP, TOKEN)
    assert [script_param(c, "ADDRESSES") for c in calls[2:]] == ["198.51.100.2", "198.51.100.3"]


def test_a_failed_step_before_departure_drains_no_node_and_aborts_the_rules_update():
    calls: list = []
    steps = BeforeDeparture()

    async def step(addresses, keep, token, run):
        raise RuntimeError("volumeServer.evacuate failed")
    steps.add("emptying the store", step, 100)
    with pytest.raises(DepartError, match="emptying the store before the nodes leave failed: volumeServer.evacuate"):
        drive(Departures(KEEP, steps=steps).before(HCLOUD_OLD, HCLOUD_NEW, FakeRunner(calls), on_no_node))
    assert calls == ["token"], "no node drained"


class FakeNodes:
    """The leaving nodes' SSH: records (address, user, script) in the shared call list."""

    def __init__(self, calls: list, fail: bool = False):
        self.calls, self.fail = calls, fail

    def __call__(self, address: str, user: str, patient: bool = True):
        async def run(script: str) -> str:
            self.calls.append((address, user, script, patient))
            if self.fail:
                raise RuntimeError("ssh: connect to host 198.51.100.3 port 22: Connection timed out")
            return ""
        return run


def _steps(calls: list) -> list[str]:
    return ["token" if c == "token" else f"stop on {c[1]}@{c[0]}" if isinstance(c, tuple)
            else f"{script_param(c, 'PHASE')} {script_param(c, 'ADDRESSES') or script_param(c, 'NODES')}"
            for c in calls]


def test_a_leaving_nodes_k3s_is_stopped_on_the_node_itself_before_its_node_is_deleted():
    """After its drain and etcd member removal (PHASE=out, on the first server), K3s is stopped and disabled on the
    leaving node, over SSH at the address the rule drops, as its provider's login; only then is its Node deleted
    (PHASE=forget): a removed server's K3s that starts again joins etcd anew (its tombstone), a starting kubelet
    registers the deleted Node again, and the machine goes only at the end of the update."""
    calls: list = []
    out = f"node/{LEAVING} cordoned\ndeparted\t{LEAVING}\thetzner\tTrue\n"
    drive(Departures(KEEP, LOGINS).before(HCLOUD_OLD, HCLOUD_NEW, FakeRunner(calls, out=out), FakeNodes(calls)))
    assert _steps(calls) == ["token", "out 198.51.100.3", "stop on root@198.51.100.3", f"forget {LEAVING}"]
    assert calls[2][2] == stop_script(LEAVING)
    assert script_param(calls[2][2], "NODE_NAME") == LEAVING


def test_a_leaving_node_on_another_provider_is_reached_as_that_providers_login():
    calls: list = []
    out = f"departed\t{LEAVING}\taws\tTrue\n"
    drive(Departures(KEEP, LOGINS).before(HCLOUD_OLD, HCLOUD_NEW, FakeRunner(calls, out=out), FakeNodes(calls)))
    assert "stop on ubuntu@198.51.100.3" in _steps(calls)


@pytest.mark.parametrize("answers", [False, True])
def test_a_node_whose_kubelet_is_not_ready_gets_one_short_try_and_is_removed_either_way(answers):
    """Not Ready after its drain: its machine down or cut off, or K3s stopped by hand. One short try (not the patient
    connection a Ready node gets): a kubelet that only stopped reporting has K3s stopped, so it cannot register the
    Node again; a dead machine does not fail the hook (it would on every run). Its Node is deleted either way."""
    calls: list = []
    out = f"departed\t{LEAVING}\thetzner\tUnknown\n"
    drive(Departures(KEEP, LOGINS).before(HCLOUD_OLD, HCLOUD_NEW, FakeRunner(calls, out=out),
                                          FakeNodes(calls, fail=not answers)))
    assert _steps(calls) == ["token", "out 198.51.100.3", "stop on root@198.51.100.3", f"forget {LEAVING}"]
    assert calls[2][3] is False, "one short try"


def test_a_ready_node_is_reached_patiently():
    calls: list = []
    out = f"departed\t{LEAVING}\thetzner\tTrue\n"
    drive(Departures(KEEP, LOGINS).before(HCLOUD_OLD, HCLOUD_NEW, FakeRunner(calls, out=out), FakeNodes(calls)))
    assert calls[2][3] is True


@pytest.mark.parametrize("out, nodes, why", [
    (f"departed\t{LEAVING}\thetzner\tTrue\n", "fail", "stopping K3s on .* as root.*failed.*Connection timed out.*by hand"),
    (f"departed\t{LEAVING}\tgcp\tTrue\n", "ok", "provider label 'gcp', whose SSH login is unknown"),
])
def test_a_node_whose_k3s_cannot_be_stopped_keeps_its_node_and_the_rule_keeps_admitting_it(out, nodes, why):
    calls: list = []
    with pytest.raises(DepartError, match=f"stops admitting 198.51.100.3 is aborted.*{why}"):
        drive(Departures(KEEP, LOGINS).before(HCLOUD_OLD, HCLOUD_NEW, FakeRunner(calls, out=out),
                                              FakeNodes(calls, fail=nodes == "fail")))
    assert not any(step.startswith("forget") for step in _steps(calls)), "its Node is not deleted"


@pytest.mark.parametrize("ready, bound", [("True", (STOP_SSH_TIMEOUT_SECONDS, "stop", 30)),
                                          ("Unknown", (PROBE_SSH_TIMEOUT_SECONDS, "stop", PROBE_ATTEMPTS))])
def test_the_hook_stops_k3s_on_the_leaving_node_with_the_stacks_key(monkeypatch, ready, bound):
    """The bound hook: depart.sh on the first K3s server, stop-k3s.sh on the leaving node at the dropped address as
    its provider's login, each with the stack's SSH key (the one every node's connection carries), bounded."""
    monkeypatch.setattr(pulumi.resource_hooks, "register_resource_hook", lambda hook: None)
    runs, keys = [], []

    async def ssh_run(host, user, key, script, timeout=SSH_TIMEOUT_SECONDS, attempts=30, *, host_key):
        keys.append(host_key)
        runs.append((host, user, key, timeout, "stop" if script.startswith(stop_script(LEAVING)[:40])
                     and "STOP_TIMEOUT" in script else script, attempts))
        if script == token_script():
            return TOKEN
        return f"departed\t{LEAVING}\taws\t{ready}\n" if "readonly PHASE=out" in script else ""
    monkeypatch.setattr(resize, "ssh_run", ssh_run)
    # Its own steps: a program run in this process fills the global registry (BEFORE_DEPARTURE); and no recorded host
    # keys: a program run earlier in this process (another test's) leaves its previous run's record in RECORDED_KEYS.
    monkeypatch.setattr(RECORDED_KEYS, "keys", {})
    steps = BeforeDeparture()

    async def step(addresses, keep, token, run):
        await run("the step's script")
    steps.add("emptying the store", step, 4 * 3600)
    [hook] = departure_hooks(KEEP, "the-stack-key", LOGINS, DrainServer("203.0.113.1", "root", FIRST_KEY),
                              steps).before_update
    drive(hook.callback(pulumi.resource_hooks.ResourceHookArgs("urn", "id", "firewall-peers", HCLOUD_FIREWALL,
                                                               new_inputs=HCLOUD_NEW, old_inputs=HCLOUD_OLD)))
    where = [(host, user, key) for host, user, key, *_ in runs]
    assert where == [("203.0.113.1", "root", "the-stack-key")] * 3 + [("198.51.100.3", "ubuntu", "the-stack-key")] + [
        ("203.0.113.1", "root", "the-stack-key")]
    assert runs[1][3:] == (4 * 3600, "the step's script", 30), "a step's scripts run with the bound it names"
    assert runs[2][3] == SSH_TIMEOUT_SECONDS
    assert runs[3][3:] == bound, "a Ready node patiently, one that is not with one short try"
    assert keys == [FIRST_KEY] * 3 + [UNPINNED, FIRST_KEY], "the first server's pinned key; the leaving node's: none"


def test_the_hook_never_runs_in_a_preview(monkeypatch):
    """The engine runs a hook in a dry run (`pulumi preview`, the preview of `pulumi up`) only when it was registered
    with on_dry_run (pulumi ResourceHookOptions, default False): a preview never drains anything."""
    monkeypatch.setattr(pulumi.resource_hooks, "register_resource_hook", lambda hook: None)
    [hook] = departure_hooks(KEEP, "key", LOGINS).before_update
    assert hook.name == "depart-leaving-nodes" and not (hook.opts and hook.opts.on_dry_run)
    assert pulumi.resource_hooks.ResourceHookOptions().on_dry_run is False


def test_only_addresses_and_node_names_reach_the_script():
    with pytest.raises(ValueError):
        depart_script(["198.51.100.3; reboot"], KEEP, TOKEN)
    with pytest.raises(ValueError):
        depart_script(["198.51.100.3"], ["x $(reboot)"], TOKEN)
    with pytest.raises(DepartError):
        depart_script(["198.51.100.3"], KEEP, "not a token\n")
    with pytest.raises(ValueError):
        depart_script([], KEEP, TOKEN, phase="forget", nodes=["x $(reboot)"])
    with pytest.raises(ValueError):
        stop_script("x; reboot")
    with pytest.raises(ValueError):  # what the first server prints names a node before it reaches a script
        Leaving.parse("departed\tx $(reboot)\thetzner\tTrue\n")


def test_each_provider_s_nodes_are_reached_as_the_login_their_connection_uses(internet):
    """The leaving node is no longer in the program: it is reached as its provider's login, the user the program's
    connections to that provider's nodes use (recorded: every drain command's connection)."""
    logins = ssh_logins(SimpleNamespace(bare_metal=None))
    users = {r.name.removeprefix("drain-"): r.inputs["connection"].value["user"]
             for r in internet.of_type(COMMAND)
             if r.name.startswith("drain-")}
    providers = {node: node_labels(internet, node)[PROVIDER_LABEL] for node in users}
    assert set(providers.values()) == {"hetzner", "aws"}
    assert all(user == logins[providers[node]] for node, user in users.items()), users


@pytest.mark.parametrize("users, login", [(["admin", "admin"], "admin"), (["admin", "root"], "root"), ([], "root")])
def test_a_leaving_bare_metal_host_is_reached_as_the_login_the_listed_hosts_share(users, login):
    """Its bareMetal.hosts entry is gone with it: the one login the listed hosts share, else the default."""
    hosts = [SimpleNamespace(ssh_user=user) for user in users]
    assert ssh_logins(SimpleNamespace(bare_metal=SimpleNamespace(hosts=hosts)))["baremetal"] == login


# --- the scripts, against a stub k3s and systemctl ---------------------------------------------------

STUB_K3S = r"""#!/usr/bin/env bash
printf '%s\n' "$*" >>"$CALLS"
case " $* " in
  *" get nodes -o jsonpath="*) printf '%s\n' "${LISTING:-}"; exit 0 ;;
  *" get nodes -l node-role.kubernetes.io/etcd=true -o name "*) printf 'node/a\nnode/b\nnode/c\nnode/d\n'; exit 0 ;;
  *" get node "*"adplatform"*) printf '%s\t%s\t%s\n' "${PROVIDER-hetzner}" "${READY:-True}" "${ETCD:-}"; exit 0 ;;
  *" get node "*"removed-node-name"*) echo removed; exit 0 ;;
  *" get node "*"-o jsonpath={.status.conditions"*) echo "${READY_BEFORE-True}"; exit 0 ;;
  # kubectl prints its progress on stdout, as the real one does
  *" cordon "*) printf 'node/%s cordoned\n' "${*: -1}"; exit 0 ;;
  *" drain "*) printf 'evicting pod default/app-1\n'; exit "${DRAIN_RC:-0}" ;;
  *" annotate node "*) echo "node/x annotated"; exit 0 ;;
esac
exit 0
"""
LISTING = ("adp-production-internet-control-plane-1\t198.51.100.1\n"
           "adp-production-internet-control-plane-4\t198.51.100.3\n"
           "adp-production-internet-general-1\t198.51.100.2")


def run_depart(tmp_path: Path, addresses: list[str], out: list[str] | None = None, phase: str = "out",
               nodes: tuple[str, ...] = (), **env: str) -> tuple[int, list[str], str]:
    code, calls, err = run_with_stubs(tmp_path, depart_script(addresses, KEEP, TOKEN, phase=phase, nodes=nodes),
                                      {"k3s": STUB_K3S}, stdout=out, **{"LISTING": LISTING, **env})
    return code, kubectl_calls(calls), err


def test_a_leaving_etcd_member_is_drained_and_its_member_removed_but_its_node_kept_until_k3s_stops(tmp_path):
    """PHASE=out: cordon, drain, the member's removal while it still runs (a two-member etcd keeps its quorum only
    so); the Node stays until its K3s is stopped (PHASE=forget). It reports the node's provider and readiness."""
    out: list[str] = []
    code, calls, err = run_depart(tmp_path, ["198.51.100.3"], out, ETCD="true", PROVIDER="aws")
    assert code == 0, err
    assert [c for c in calls if c.startswith(("cordon", "drain"))] == [f"cordon {LEAVING}",
                          f"drain {LEAVING} --ignore-daemonsets --delete-emptydir-data --timeout={DRAIN_TIMEOUT_SECONDS}s"]
    assert f"annotate node {LEAVING} --overwrite etcd.k3s.cattle.io/remove=true" in calls
    assert not any(c.startswith("delete") for c in calls), "the Node outlives the departure's first phase"
    assert out == [f"departed\t{LEAVING}\taws\tTrue"], "kubectl's own lines go to stderr"
    assert not any("control-plane-1" in c or "general-1" in c for c in calls), "nobody else is touched"
    assert TOKEN not in err


def test_a_server_without_the_provider_label_still_has_its_etcd_member_removed(tmp_path):
    """kubectl prints an absent label as an empty field between two tabs: its member is removed all the same, and the
    report names no provider (the hook then knows no login: it keeps the Node and says to stop K3s by hand)."""
    out: list[str] = []
    code, calls, err = run_depart(tmp_path, ["198.51.100.3"], out, PROVIDER="", ETCD="true")
    assert code == 0, err
    assert f"annotate node {LEAVING} --overwrite etcd.k3s.cattle.io/remove=true" in calls
    assert out == [f"departed\t{LEAVING}\t\tTrue"]
    assert Leaving.parse(out[0]) == [Leaving(LEAVING, "", True)]


@pytest.mark.parametrize("ready, skipped", [("True", False), ("False", True), ("Unknown", True), ("", True)])
def test_a_node_that_does_not_report_has_its_unconfirmed_pods_skipped_after_their_deletion_time(tmp_path, ready,
                                                                                                  skipped):
    """A leaving node whose machine is down never confirms its pods' deletion: without the skip its drain would wait out
    DRAIN_TIMEOUT_SECONDS and fail the rule's update on every run (lowering the count could never remove it). A Ready
    node's drain waits for every pod's graceful end (a long termination grace period must not be cut short)."""
    code, calls, err = run_depart(tmp_path, ["198.51.100.3"], READY_BEFORE=ready, READY=ready or "Unknown")
    assert code == 0, err
    drain = next(c for c in calls if c.startswith("drain "))
    flag = f"--skip-wait-for-delete-timeout={UNREPORTED_POD_SKIP_SECONDS}"
    assert (flag in drain.split()) == skipped, drain
    assert drain.startswith(f"drain {LEAVING} --ignore-daemonsets --delete-emptydir-data"), "evictions, never forced"


def test_the_second_phase_deletes_the_nodes_it_is_given_and_nothing_else(tmp_path):
    code, calls, err = run_depart(tmp_path, [], phase="forget", nodes=(LEAVING,))
    assert code == 0, err
    assert calls == [f"delete node {LEAVING} --ignore-not-found"]


def test_a_node_the_program_keeps_never_leaves_even_if_its_address_goes(tmp_path):
    """A node replaced under its own name (a new address) was drained by its own drain command already."""
    out: list[str] = []
    code, calls, err = run_depart(tmp_path, ["198.51.100.1", "198.51.100.2"], out)
    assert code == 0, err
    assert calls == ["get nodes -o jsonpath={range .items[*]}{.metadata.name}{\"\\t\"}"
                     "{.status.addresses[*].address}{\"\\n\"}{end}"]
    assert out == []


def test_a_node_whose_ccm_keeps_its_private_address_as_internal_ip_leaves_by_its_public_one(tmp_path):
    """The stack provider's CCM initialises its own nodes: their public node-ip is one of the cloud's ExternalIPs, so
    the Node keeps the cloud's private InternalIP (k8s.io/cloud-provider GetNodeAddressesFromNodeIP). The rules name
    the public address: the node still leaves, and a node whose address merely begins with the dropped one stays."""
    kept, other = "adp-production-internet-control-plane-1", "adp-production-internet-general-9"
    listing = (f"{kept}\t10.0.1.2 198.51.100.1 {kept}\n{LEAVING}\t10.0.1.4 198.51.100.3 {LEAVING}\n"
               f"{other}\t10.0.1.9 198.51.100.30 {other}")
    out: list[str] = []
    code, calls, err = run_depart(tmp_path, ["198.51.100.3"], out, LISTING=listing)
    assert code == 0, err
    assert f"cordon {LEAVING}" in calls and [line.split("\t")[1] for line in out] == [LEAVING]
    assert not any("general-9" in c or "control-plane-1" in c for c in calls), "nobody else is touched"


def test_a_blocked_departure_fails_before_the_member_or_the_node_goes(tmp_path):
    out: list[str] = []
    code, calls, err = run_depart(tmp_path, ["198.51.100.3"], out, ETCD="true", DRAIN_RC="1")
    assert code != 0 and "PodDisruptionBudget" in err and "still admits it" in err
    assert not any(c.startswith(("annotate", "delete")) for c in calls)
    assert out == [], "nothing is reported taken out: K3s is not stopped"


STUB_SYSTEMCTL = r"""#!/usr/bin/env bash
printf 'systemctl %s\n' "$*" >>"$CALLS"
case "$1" in
  # No unit file matched: nothing printed with --no-legend, and exit 1 (systemd since 246, systemd PR 15191).
  list-unit-files) [ "$3" = "${INSTALLED:-k3s-agent.service}" ] || exit 1; echo "$3 enabled enabled"; exit 0 ;;
  is-active) [ -n "${STILL_ACTIVE:-}" ]; exit $? ;;
esac
exit 0
"""


@pytest.mark.parametrize("installed", ["k3s.service", "k3s-agent.service"])
def test_k3s_is_stopped_and_disabled_whichever_unit_the_node_has(tmp_path, installed):
    """A server's k3s or an agent's k3s-agent: disabled with --now, so neither runs nor starts on a reboot; running
    it again (a retried departure) does the same, which systemd accepts for a unit already stopped and disabled."""
    code, calls, err = run_with_stubs(tmp_path, stop_script(LEAVING), {"systemctl": STUB_SYSTEMCTL},
                                      INSTALLED=installed)
    assert code == 0, err
    assert [c for c in calls if "disable" in c] == [f"systemctl disable --now {installed}"]
    assert "stopped and disabled" in err


def test_k3s_still_running_fails_the_stop(tmp_path):
    code, _, err = run_with_stubs(tmp_path, stop_script(LEAVING), {"systemctl": STUB_SYSTEMCTL}, STILL_ACTIVE="1")
    assert code != 0 and "still runs" in err


def test_the_departure_scripts_lint():
    script = depart_script(["198.51.100.3"], KEEP, TOKEN)
    assert script_param(script, "ETCD_TIMEOUT") == str(ETCD_TIMEOUT_SECONDS)
    assert validators.shellcheck({"depart": script, "depart-forget": depart_script([], KEEP, TOKEN, phase="forget",
                                                                                   nodes=[LEAVING]),
                                  "stop-k3s": stop_script(LEAVING)}) == ""
