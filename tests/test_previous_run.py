"""The previous run's record (providers/previous_run.py): what a run exports, what the next run reads back, and the
checks and hooks that use it: over the public internet one edit must not both add and remove nodes, and the hooks
reach a leaving node or a server resizing itself with the host key the previous run pinned."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from components.k3s import resize
from components.k3s.depart import departure_hooks
from providers.previous_run import RECORDED_KEYS
from components.k3s.resize import UNPINNED, DrainServer, ResizeTarget, _run_on, where_scripts_run
from config import ConfigError
from providers import previous_run
from tests.test_hybrid_drain import HCLOUD_NEW, HCLOUD_OLD
from tests.test_hybrid import (CP_MOVE_STACK, EDGE, FIXED_GENERAL, UP_TO_SERVICES, control_plane_migration,
                               internet_config, internet_raw)
from tests.test_resize import drive
from tools import mockrun

STACK = "production-internet"


def _pools(general: int, edge: int) -> dict[str, Any]:
    values = {**internet_raw(), "layers": UP_TO_SERVICES}
    values["cluster"] = {**values["cluster"], "pools": [{**FIXED_GENERAL, "count": general}, {**EDGE, "count": edge}]}
    return values


def _run(values: dict[str, Any], previous: mockrun.Run | None = None) -> mockrun.Run:
    config, secret = internet_config(values)
    return mockrun.run(mockrun.after(previous, config) if previous else config, secret, STACK)


@pytest.fixture(scope="module")
def first() -> mockrun.Run:
    """A cluster over the internet (Hetzner + an AWS pool) on its first deploy: no record to read."""
    return _run(_pools(5, 2))


def test_each_run_records_every_node_its_address_and_pinned_key_and_nothing_secret(first):
    record = first.outputs[previous_run.OUTPUT]["nodes"]
    prefix = f"adp-{STACK}-"
    nodes = {host.removeprefix(prefix): node for host, node in first.outputs["nodes"].items()}
    assert set(record) == set(nodes) and {"control-plane-3", "general-5", "edge-2"} <= set(record)
    assert {name: entry["address"] for name, entry in record.items()} == {n: v["publicIp"] for n, v in nodes.items()}
    # The key each node's host-key step read (the mocks' fake key for that step), as its connection pins it.
    assert record["edge-1"]["hostKey"] == " ".join(mockrun.fake_host_key("host-key-edge-1").split()[:2])
    assert all(entry["hostKey"].startswith("ssh-ed25519 ") for entry in record.values())
    assert previous_run.OUTPUT not in first.secret_outputs, "names, addresses and public keys: not secret"


def test_an_edit_over_the_internet_that_adds_and_removes_nodes_is_refused_before_anything_is_created(first):
    with pytest.raises(ConfigError) as raised:
        _run(_pools(4, 3), previous=first)
    message = str(raised.value)
    assert "adplatform:cluster.pools[edge].count and adplatform:cluster.pools[general].count must not both add " \
           "and remove nodes in one `pulumi up`" in message
    assert "first add" in message and "then remove" in message, "it names the two steps, adding first"
    assert "got 'adds edge-3; removes general-5'" in message
    assert not [r for r in mockrun.last_monitor.recorded if r.type != "pulumi:pulumi:Stack"], "nothing was created"


def test_the_same_change_in_two_steps_adding_first_goes_through(first):
    added = _run(_pools(5, 3), previous=first)
    assert "edge-3" in added.outputs[previous_run.OUTPUT]["nodes"]
    removed = _run(_pools(4, 3), previous=added)
    assert "general-5" not in removed.outputs[previous_run.OUTPUT]["nodes"]


def test_the_previous_runs_are_read_as_this_stacks_own_outputs(monkeypatch):
    """The engine's readStackOutputs with this stack's fully qualified name; only the record is kept."""
    asked = []
    outputs = {"kubeconfig": "a secret the record never keeps",
               previous_run.OUTPUT: {"nodes": {"edge-1": {"address": "198.51.100.9", "hostKey": "ssh-ed25519 AAAA"}}}}

    def invoke(token, props, *args, **kwargs):
        asked.append((token, props))
        return _Result({"name": props["name"], "outputs": outputs, "secretOutputNames": ["kubeconfig"]})
    monkeypatch.setattr(pulumi.runtime, "invoke", invoke)
    monkeypatch.setattr(pulumi, "get_organization", lambda: "acme")
    monkeypatch.setattr(pulumi, "get_project", lambda: "adplatform")
    monkeypatch.setattr(pulumi, "get_stack", lambda: "production")
    previous = previous_run.read(required=True)
    assert asked == [("pulumi:pulumi:readStackOutputs", {"name": "acme/adplatform/production"})]
    assert previous.recorded and previous.host_keys() == {"198.51.100.9": "ssh-ed25519 AAAA"}
    assert "secret" not in repr(previous)


class _Result:
    def __init__(self, value: Any):
        self.value = value


def test_a_stack_without_outputs_has_no_record_and_a_failed_read_fails_only_where_a_check_needs_it(monkeypatch):
    assert previous_run.parse({}) == previous_run.PreviousRun() and not previous_run.parse(None).recorded

    def fails(*args, **kwargs):
        raise Exception("bad stack reference, project was set")
    monkeypatch.setattr(pulumi.runtime, "invoke", fails)
    with pytest.raises(previous_run.PreviousRunError, match="pulumi state upgrade"):
        previous_run.read(required=True)
    assert previous_run.read(required=False) == previous_run.PreviousRun()


# --- the hooks: the previous run's pinned keys instead of none ------------------------------------------------------

@pytest.fixture
def recorded():
    RECORDED_KEYS.use({"198.51.100.3": "ssh-ed25519 LEAVING", "198.51.100.8": "ssh-ed25519 SERVER"})
    yield RECORDED_KEYS
    RECORDED_KEYS.use({})


def test_a_server_resizing_itself_is_reached_with_the_key_the_previous_run_pinned(monkeypatch, recorded):
    calls = []

    async def fake_ssh(host, user, key, script, timeout=0, attempts=30, *, host_key):
        calls.append((host, host_key))
        return ""
    monkeypatch.setattr(resize, "ssh_run", fake_ssh)
    server = ResizeTarget("adp-production-control-plane-2", "control-plane", (("serverType",),))
    where = where_scripts_run(server, server=True, own_address=lambda o: o["ipv4Address"], user="root",
                              drain_server=DrainServer())
    drive(_run_on(where, "KEY", {"ipv4Address": "198.51.100.8"})("true"))
    drive(_run_on(where, "KEY", {"ipv4Address": "198.51.100.99"})("true"))
    assert calls == [("198.51.100.8", "ssh-ed25519 SERVER"), ("198.51.100.99", UNPINNED)], \
        "its recorded key; an address the previous run did not record: unpinned, as before"


def test_a_leaving_node_is_stopped_with_the_key_the_previous_run_pinned(monkeypatch, recorded):
    monkeypatch.setattr(pulumi.resource_hooks, "register_resource_hook", lambda hook: None)
    keys = []

    async def ssh_run(host, user, key, script, timeout=0, attempts=30, *, host_key):
        keys.append((host, host_key))
        if "readonly PHASE=out" in script:
            return "departed\tadp-production-internet-control-plane-4\taws\tTrue\n"
        return "token" if "token" in script else ""
    monkeypatch.setattr(resize, "ssh_run", ssh_run)
    [hook] = departure_hooks(["adp-production-internet-control-plane-1"], "KEY", {"aws": "ubuntu"},
                             DrainServer("203.0.113.1", "root", "ssh-ed25519 FIRST")).before_update
    drive(hook.callback(pulumi.resource_hooks.ResourceHookArgs("urn", "id", "firewall-peers",
                                                               "hcloud:index/firewall:Firewall",
                                                               new_inputs=HCLOUD_NEW, old_inputs=HCLOUD_OLD)))
    assert ("198.51.100.3", "ssh-ed25519 LEAVING") in keys, "stop-k3s.sh on the leaving node: its recorded key"
    assert {key for host, key in keys if host == "203.0.113.1"} == {"ssh-ed25519 FIRST"}, "the first server's"


def test_a_cluster_on_one_provider_is_not_checked_against_the_previous_run():
    """Only a cluster over the internet drains leaving nodes before its rules admit new ones; elsewhere an edit may
    add and remove at once (the record differs from the config here in both directions)."""
    ghost = {"nodes": {"ghost-1": {"address": "192.0.2.1", "hostKey": "ssh-ed25519 AAAA"}}}
    values, secret = mockrun.stack_config("staging")
    # Executed, never read from the run cache: RECORDED_KEYS is the program's side effect in this process, which a
    # recorded run (a warm cache) does not repeat.
    run = mockrun.execute({**values, mockrun.PREVIOUS_RUN: ghost}, secret, "staging")
    assert "ghost-1" not in run.outputs[previous_run.OUTPUT]["nodes"]
    assert RECORDED_KEYS.keys.get("192.0.2.1") == "ssh-ed25519 AAAA", "its keys still serve the hooks"
    RECORDED_KEYS.use({})


def test_a_control_plane_move_that_adds_and_removes_a_member_in_one_edit_is_refused():
    """From `added: 1` straight to `added: 2, removed: 1` (valid in one stack file: added is removed or one more):
    control-plane-5 would join on AWS while control-plane-3 leaves, so the move's two steps are named."""
    steps = dict(control_plane_migration())
    added = mockrun.run(*internet_config(steps["control-plane-4 added on aws"]), CP_MOVE_STACK)
    config, secret = internet_config(steps["control-plane-5 added on aws"])
    with pytest.raises(ConfigError, match=r"adplatform:cluster.controlPlane.move must not both add and remove nodes"
                                          r".*got 'adds control-plane-5; removes control-plane-3'"):
        mockrun.run(mockrun.after(added, config), secret, CP_MOVE_STACK)
