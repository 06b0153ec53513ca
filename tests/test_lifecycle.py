"""Node lifecycle: a node is drained, its etcd member removed and its Node deleted before its machine goes.

The Pulumi side is checked on the recorded production program (what runs on delete, on which node, and
what it waits for); the drain script itself is run with stub `k3s` and `systemctl` commands, so its
order of calls and its skip/fail paths are observed, not read.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from components.k3s.lifecycle import (DRAIN_TIMEOUT_SECONDS, ETCD_TIMEOUT_SECONDS, GUARD, UNREPORTED_POD_SKIP_SECONDS,
                                      drain_script, reachable_server)
from components.k3s.resize import DRAIN_SERVER
from tests.conftest import base_raw, script_param, stack_run
from tests.runs import UP_TO_K3S, raw_config
from tests.stubs import run_with_stubs, with_fake_clock
from tests.test_resize import drive
from tools import mockrun
from tools.mockrun import Run, Secret

CMD = "command:remote:Command"
SERVER = "hcloud:index/server:Server"


def drains(run: Run) -> dict[str, object]:
    return {r.name.removeprefix("drain-"): r for r in run.of_type(CMD) if r.name.startswith("drain-")}


def test_every_node_has_a_drain_that_runs_on_delete_on_the_node_itself(production):
    servers = {r.name: r for r in production.of_type(SERVER)}
    found = drains(production)
    assert set(found) == set(servers), "each server's node is drained before the server goes"
    for name, drain in found.items():
        assert drain.inputs["create"] == "cat >/dev/null", "creating the command drains nothing"
        assert drain.inputs["delete"] == "bash -s", "deleting it runs its script (stdin)"
        assert servers[name].urn in drain.dependencies, "Pulumi deletes the drain before the server"
        assert drain.inputs["connection"] == production.named(f"k3s-{name}", CMD).inputs["connection"], \
            "it runs on the node that leaves (its K3s is stopped last)"
        stdin = drain.inputs["stdin"]
        assert isinstance(stdin, Secret), "the script carries the service account token"
        assert script_param(stdin.value, "NODE_NAME") == f"adp-production-{name}"


def test_a_replaced_server_replaces_its_drain_first(production):
    """Servers are replaced delete-before-replace (a K3s node name exists once); the drain's trigger is the
    server's id, and only the trigger replaces the drain, so Pulumi deletes (runs) the drain before the
    server is deleted, and never drains a node because another one changed."""
    for name, drain in drains(production).items():
        server = production.named(name, SERVER)
        assert server.options["deleteBeforeReplace"] is True
        assert drain.options["deleteBeforeReplace"] is True
        assert "triggers" in drain.options["replaceOnChanges"]
        assert drain.inputs["triggers"] == [mockrun._fake_id(name)], "the server's id, nothing else"


@pytest.mark.parametrize("stack", ["staging-aws", "staging-gcp", "staging-azure"])
def test_cloud_servers_are_replaced_delete_before_replace(stack):
    run = stack_run(stack)
    machines = [r for r in run.resources if r.type in ("aws:ec2/instance:Instance", "gcp:compute/instance:Instance",
                                                        "azure-native:compute:VirtualMachine")]
    assert machines and all(m.options["deleteBeforeReplace"] is True for m in machines)
    found = drains(run)
    assert set(found) == {m.name for m in machines}
    for machine in machines:  # Azure servers' `server` is a remote command: the VM's id is the trigger
        assert found[machine.name].inputs["triggers"] == [mockrun._fake_id(machine.name)]


def test_existing_hosts_drain_only_when_they_leave_the_config():
    """Bare metal: a host's firewall command is re-run (a new id) when its script changes; that must not
    drain the node. The trigger is the host's private address."""
    run = stack_run("production-baremetal")
    hosts = {n.removeprefix("adp-production-baremetal-"): v for n, v in run.outputs["nodes"].items()}
    found = drains(run)
    assert found and {name: d.inputs["triggers"] for name, d in found.items()} == {
        name: [hosts[name]["privateIp"]] for name in found}


def test_pools_drain_one_node_at_a_time_highest_index_first(production):
    """Each drain depends on the previous node's: deletes run in reverse, one at a time per pool, so a
    shrinking control plane loses one etcd member at a time and a pool's disruption budgets see one node."""
    found = drains(production)
    for pool, count in (("control-plane", 3), ("general", 5), ("scylladb", 3)):
        for index in range(2, count + 1):
            later, earlier = found[f"{pool}-{index}"], found[f"{pool}-{index - 1}"]
            assert earlier.urn in later.dependencies
    assert found["general-1"].urn not in found["scylladb-2"].dependencies, "pools drain independently"


@pytest.fixture(scope="module")
def unreachable_run() -> tuple[Run, str]:
    """Production up to K3s with control-plane-1 (the first server) and general-2 dead (cluster.unreachableNodes), and
    the address the resize and departure hooks reach their server at (resize.py DRAIN_SERVER). Executed here, not
    read from the run cache: the K3s layer names that server while the program runs."""
    raw = base_raw(layers=UP_TO_K3S, cluster={"unreachableNodes": ["control-plane-1", "general-2"]})
    return mockrun.execute(*raw_config(raw), "test"), drive(DRAIN_SERVER.host.future())


@pytest.fixture(scope="module")
def unreachable(unreachable_run) -> Run:
    return unreachable_run[0]


def test_an_unreachable_nodes_drain_runs_on_the_first_server_not_listed(unreachable_run, production):
    """A dead machine cannot run its own drain: the drain command moves to a live server (an update: its trigger is
    still the machine's id, so nothing is drained by the move), and `pulumi up --replace` then takes the node out
    from there instead of failing on the dead machine's SSH. The agents' resize drains and the departures over the
    internet run on that server too."""
    unreachable, hooks_host = unreachable_run
    found, before = drains(unreachable), drains(production)
    runner = unreachable.named("k3s-control-plane-2", CMD)
    assert hooks_host == runner.inputs["connection"].value["host"]
    for name in ("control-plane-1", "general-2"):
        drain = found[name]
        assert drain.inputs["connection"] == runner.inputs["connection"]
        assert drain.inputs["triggers"] == before[name].inputs["triggers"], "moved in place, not replaced"
        assert {runner.urn, unreachable.named("control-plane-2", SERVER).urn} <= set(drain.dependencies)
        assert unreachable.named(name, SERVER).urn in drain.dependencies, "still deleted before its own machine"
        script = drain.inputs["stdin"].value
        assert script_param(script, "ON_NODE") == "false"
        assert script_param(script, "NODE_NAME") == f"adp-test-{name}"
        assert script_param(script, "API_SERVER") == "https://10.0.1.254:6443"
    for name in set(found) - {"control-plane-1", "general-2"}:
        assert found[name].inputs["connection"] == unreachable.named(f"k3s-{name}", CMD).inputs["connection"]
        assert script_param(found[name].inputs["stdin"].value, "ON_NODE") == "true"


def test_resize_and_departure_scripts_run_on_the_first_server_not_listed():
    """The agents' resize drains and the departures over the internet run on one server (resize.py DRAIN_SERVER): the
    first one that answers SSH, like the unreachable nodes' drains."""
    servers = [FakeNode("server", name) for name in ("control-plane-1", "control-plane-2", "control-plane-3")]
    agents = [FakeNode("agent", "general-1")]
    assert reachable_server([*agents, *servers], []) is servers[0]
    assert reachable_server([*agents, *servers], ["control-plane-1", "general-1"]) is servers[1]
    assert reachable_server(servers, ["control-plane-2"]) is servers[0]


@pytest.mark.parametrize("listed, key, says", [
    (["general-9"], "cluster.unreachableNodes[0]", "must name a Pulumi-managed node of this stack"),
    (["general-2", "general-2"], "cluster.unreachableNodes[1]", "must not repeat [0]"),
    (["control-plane-1", "control-plane-2", "control-plane-3"], "cluster.unreachableNodes",
     "must leave at least one K3s server out"),
])
def test_unreachable_nodes_must_be_nodes_of_the_stack_and_leave_a_server(listed, key, says):
    from tests.test_config import one_problem
    msg = one_problem(base_raw(cluster={"unreachableNodes": listed}))
    assert msg.startswith(f"adplatform:{key} {says}")
    given = listed[-1] if key.endswith("]") else listed
    assert msg.endswith(f"got {given!r}")


def test_a_node_a_lower_count_removes_is_taken_off_the_list_in_the_same_change():
    """Removing a dead node (docs/lifecycle.md "A dead machine") lowers its pool's count: the error says to drop its
    entry with it (its drain is deleted from the server recorded by the previous run)."""
    from tests.test_config import one_problem
    msg = one_problem(base_raw(cluster={"unreachableNodes": ["general-5"], "pools": [{"name": "general", "count": 4}]}))
    assert msg.startswith("adplatform:cluster.unreachableNodes[0] must name a Pulumi-managed node of this stack")
    assert "a node a lower count removes leaves the list in the same change" in msg and msg.endswith("got 'general-5'")


def test_servers_remove_their_etcd_member_agents_do_not(production):
    found = drains(production)
    assert script_param(found["control-plane-2"].inputs["stdin"].value, "ETCD_MEMBER") == "true"
    assert script_param(found["control-plane-2"].inputs["stdin"].value, "K3S_SERVICE") == "k3s"
    assert script_param(found["scylladb-1"].inputs["stdin"].value, "ETCD_MEMBER") == "false"
    assert script_param(found["scylladb-1"].inputs["stdin"].value, "K3S_SERVICE") == "k3s-agent"


def test_drain_reaches_the_api_privately_with_its_own_service_account(production):
    script = drains(production)["general-1"].inputs["stdin"].value
    assert script_param(script, "API_SERVER") == "https://10.0.1.254:6443", "the private API load balancer"
    cluster = yaml.safe_load(script_param(script, "KUBECONFIG_YAML"))["clusters"][0]["cluster"]
    assert cluster["server"] == "https://10.0.1.254:6443" and base64.b64decode(cluster["certificate-authority-data"])
    read = production.named("node-lifecycle-token", CMD)
    assert read.inputs["connection"].value == production.named("k3s-control-plane-1", CMD).inputs["connection"].value
    assert "stdout" in read.options["additionalSecretOutputs"]
    role = production.named("node-lifecycle", "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")
    granted = {(res, verb) for rule in role.inputs["rules"] for res in rule["resources"] for verb in rule["verbs"]}
    assert ("pods/eviction", "create") in granted and ("nodes", "delete") in granted
    assert not any(verb in ("*", "escalate", "bind") or res in ("secrets", "*") for res, verb in granted)
    assert ("pods", "delete") not in granted, "pods leave by eviction only: disruption budgets apply"


def test_destroy_deletes_the_guard_before_any_drain(production):
    guard = production.named("node-lifecycle-guard", "kubernetes:core/v1:ConfigMap")
    assert guard.inputs["metadata"]["name"] == GUARD
    assert {d.urn for d in drains(production).values()} <= set(guard.dependencies)


# --- the drain script, run against stub k3s/systemctl ---------------------------------------------

STUB_K3S = r"""#!/usr/bin/env bash
printf '%s\n' "$*" >>"$CALLS"
args=" $* "
# FAIL_FIRST=<pattern>: the first call matching it fails (one lost request through the API balancer).
if [ -n "${FAIL_FIRST:-}" ] && [[ "$args" == *" $FAIL_FIRST "* ]] && [ ! -e "$CALLS.failed" ]; then
  touch "$CALLS.failed"
  exit 1
fi
case "$args" in
  *" get configmap "*)
    # API=down: nothing answers; API=<kubectl's error>: that error, from an API server that answered.
    case "${API:-up}" in
      up) ;;
      down) echo "The connection to the server 10.0.1.254:6443 was refused" >&2; exit 1 ;;
      *) printf '%s\n' "$API" >&2; exit 1 ;;
    esac
    [ "${GUARD:-present}" = present ] && echo configmap/guard
    exit 0 ;;
  *" get node "*"--ignore-not-found -o name "*)
    [ "${NODE:-present}" = present ] && echo node/n
    exit 0 ;;
  *" get node "*'jsonpath={.status.conditions[?(@.type=="Ready")].status}'*) echo "${READY-True}"; exit 0 ;;
  *" get node "*"jsonpath="*) echo "${REMOVED-removed-member}"; exit 0 ;;
  *" get nodes -l node-role.kubernetes.io/etcd=true "*)
    for i in $(seq 1 "${MEMBERS:-3}"); do echo "node/server-$i"; done
    exit 0 ;;
  *" drain "*) exit "${DRAIN_RC:-0}" ;;
esac
exit 0
"""


class FakeNode:
    def __init__(self, role: str, name: str = "n"):
        from providers.base import NodeSpec
        self.spec = NodeSpec(name, "p", 0, role, "general", None, None, None, {}, ())
        self.hostname = f"adp-test-{name}"

    @property
    def name(self) -> str:
        return self.spec.name


# The script's retries wait with sleep: recorded, not slept.
STUB_SLEEP = 'printf "sleep %s\\n" "$*" >>"$CALLS"\n'


def run_drain(tmp_path: Path, role: str = "agent", on_node: bool = True, **env: str) -> tuple[int, list[str], str]:
    script = drain_script(FakeNode(role), "10.0.1.254", "b2ZmbGluZQ==", "secret-token-value", on_node=on_node)
    return run_with_stubs(tmp_path, script, {"k3s": STUB_K3S, "systemctl": 'printf "systemctl %s\\n" "$*" >>"$CALLS"\n',
                                             "sleep": STUB_SLEEP}, **env)


def test_drain_script_order_for_a_server(tmp_path):
    code, calls, err = run_drain(tmp_path, role="server")
    assert code == 0, err
    steps = [c.split()[0] if c.startswith("systemctl") else next(
        w for w in c.split() if w in ("get", "cordon", "drain", "annotate", "delete")) for c in calls]
    assert steps == ["get", "get", "cordon", "get", "drain", "get", "annotate", "get", "delete", "systemctl"]
    drain = next(c for c in calls if " drain " in f" {c} ")
    assert "--ignore-daemonsets" in drain and "--delete-emptydir-data" in drain
    assert f"--timeout={DRAIN_TIMEOUT_SECONDS}s" in drain
    assert "--skip-wait-for-delete-timeout" not in drain, "a Ready node's pods end gracefully"
    assert "--disable-eviction" not in drain and "--force" not in drain
    assert any("etcd.k3s.cattle.io/remove=true" in c for c in calls)
    assert calls[-1] == "systemctl disable --now k3s"
    assert "secret-token-value" not in err, "the token is never logged"


def test_drain_script_for_an_agent_skips_etcd(tmp_path):
    code, calls, _ = run_drain(tmp_path, role="agent")
    assert code == 0
    assert not any("annotate" in c for c in calls)
    assert any(c.startswith("delete node") or " delete node " in f" {c} " for c in calls)
    assert calls[-1] == "systemctl disable --now k3s-agent"


@pytest.mark.parametrize("env, why", [({"GUARD": "absent"}, "destroy"), ({"API": "down"}, "does not answer")])
def test_drain_script_skips_on_destroy_and_without_an_api(tmp_path, env, why):
    code, calls, err = run_drain(tmp_path, role="server", **env)
    assert code == 0 and why in err
    assert not any(w in c for c in calls for w in (" drain ", "cordon", "annotate", "delete"))
    if env.get("API") == "down":
        assert sum(" get configmap " in f" {c} " for c in calls) == 3, "three tries before the API counts as gone"


@pytest.mark.parametrize("error", [
    "Unable to connect to the server: dial tcp 10.0.1.254:6443: i/o timeout",
    "Unable to connect to the server: net/http: TLS handshake timeout",
    # The server's own failures: etcd without a quorum while a destroy takes the servers away (kubectl prints
    # "Error from server (<Reason>)" for every API error, refusals included).
    'Error from server (InternalError): an error on the server ("") has prevented the request from succeeding',
    "Error from server (Timeout): the server was unable to return a response in the time allotted",
    "Error from server (ServiceUnavailable): the server is currently unable to handle the request",
])
def test_an_api_that_never_answers_skips_the_drain(tmp_path, error):
    code, calls, err = run_drain(tmp_path, role="server", API=error)
    assert code == 0 and "does not answer" in err and error in err
    assert not any(" drain " in f" {c} " for c in calls)


@pytest.mark.parametrize("error, advice", [
    ("error: You must be logged in to the server (Unauthorized)", "Secret kube-system/adplatform-node-lifecycle-token"),
    ('Error from server (Forbidden): configmaps "adplatform-node-lifecycle-guard" is forbidden: User '
     '"system:serviceaccount:kube-system:adplatform-node-lifecycle" cannot get resource "configmaps"',
     "ClusterRole adplatform-node-lifecycle"),
    ("Unable to connect to the server: tls: failed to verify certificate: x509: certificate signed by unknown "
     "authority", "x509/certificate"),
])
def test_an_api_that_answers_with_an_error_fails_the_drain_and_keeps_the_machine(tmp_path, error, advice):
    """A revoked token, missing RBAC or another CA is no dead cluster: skipping would delete the machine undrained."""
    code, calls, err = run_drain(tmp_path, role="server", API=error)
    assert code == 1, err
    assert "does not answer" not in err and "refused the node-lifecycle account" in err
    assert error in err and advice in err, "kubectl's error and what to fix"
    assert sum(" get configmap " in f" {c} " for c in calls) == 3, "an answer may be passing (a server restarting)"
    assert not any(w in c for c in calls for w in (" drain ", "cordon", "annotate", "delete"))
    assert not any(c.startswith("systemctl") for c in calls)


@pytest.mark.parametrize("lost", ["get configmap", "delete node"])
def test_one_lost_api_request_neither_skips_nor_fails_a_servers_drain(tmp_path, lost):
    """Through the balancer one request may land on a server restarting, or on the departing server once its etcd
    member is gone (its port still takes TCP checks): the guard read and the Node's deletion are tried again."""
    code, calls, err = run_drain(tmp_path, role="server", FAIL_FIRST=lost)
    assert code == 0, err
    assert any(" drain " in f" {c} " for c in calls), "drained, not skipped"
    assert sum(f" {lost} " in f" {c} " for c in calls) == 2 and "sleep 10" in calls
    assert calls[-1] == "systemctl disable --now k3s"


def test_the_last_etcd_member_is_not_removed(tmp_path):
    """Replacing a one-server control plane: removing the only member would fail (and end etcd)."""
    code, calls, err = run_drain(tmp_path, role="server", MEMBERS="1")
    assert code == 0 and "only etcd member" in err
    assert not any("annotate" in c for c in calls)
    assert calls[-1] == "systemctl disable --now k3s"


def test_the_etcd_wait_ends_at_its_timeout_in_wall_clock_time(tmp_path):
    """Each read of the removal may take its 20 s request timeout: counting only the 5 s pauses made ETCD_TIMEOUT=120
    last ~600 s, past Pulumi's DELETE_TIMEOUT budget. Here each pass costs 25 s on a fake clock."""
    script = with_fake_clock(drain_script(FakeNode("server"), "10.0.1.254", "b2ZmbGluZQ==", "secret-token-value"), 25)
    code, calls, err = run_with_stubs(tmp_path, script, {"k3s": STUB_K3S, "systemctl": "exit 0\n"}, REMOVED="")
    assert code == 1 and f"not removed within {ETCD_TIMEOUT_SECONDS}s" in err
    reads = sum("removed-node-name" in c for c in calls)
    assert reads <= ETCD_TIMEOUT_SECONDS // 25 + 2, f"{reads} reads of 25 s each"
    assert not any(" delete node " in f" {c} " for c in calls), "the machine is kept"


def test_the_delete_timeout_counts_the_scripts_own_request_timeout():
    """DELETE_TIMEOUT adds up drain.sh's worst case from kube-lib.sh's per-request bound: they must agree."""
    from components.k3s.lifecycle import DELETE_TIMEOUT, KUBE_LIB, REQUEST_TIMEOUT_SECONDS
    assert f"--request-timeout={REQUEST_TIMEOUT_SECONDS}s" in KUBE_LIB.read_text()
    # 12 requests, four 10 s pauses between tries, the etcd wait's last 5 s pause.
    worst = DRAIN_TIMEOUT_SECONDS + ETCD_TIMEOUT_SECONDS + 12 * REQUEST_TIMEOUT_SECONDS + 4 * 10 + 5
    assert int(DELETE_TIMEOUT.rstrip("m")) * 60 > worst


def test_drain_script_is_idempotent_when_the_node_is_gone(tmp_path):
    code, calls, _ = run_drain(tmp_path, NODE="absent")
    assert code == 0
    assert not any("cordon" in c or " drain " in f" {c} " for c in calls)
    assert calls[-1] == "systemctl disable --now k3s-agent", "a reboot of a host that stays starts no K3s"


def test_the_drain_succeeds_when_its_departure_stopped_k3s_and_deleted_the_node_already(tmp_path):
    """Over the internet the departure hook (depart.py) stopped and disabled K3s and deleted the Node before the
    drain command runs at the end: systemctl then has nothing to do (or fails on a unit gone); the drain succeeds."""
    script = drain_script(FakeNode("server"), "10.0.1.254", "b2ZmbGluZQ==", "secret-token-value")
    code, calls, err = run_with_stubs(tmp_path, script, {"k3s": STUB_K3S, "systemctl": "exit 5\n"}, NODE="absent")
    assert code == 0, err
    assert "not in the cluster" in err


@pytest.mark.parametrize("ready", ["False", "Unknown", ""])
def test_a_node_that_does_not_report_has_its_unconfirmed_pods_skipped(tmp_path, ready):
    """A dead machine's kubelet never confirms a pod's deletion: without the skip the drain waits out its timeout and
    fails on every run, and the machine is never replaced."""
    code, calls, err = run_drain(tmp_path, role="server", READY=ready)
    assert code == 0, err
    drain = next(c for c in calls if " drain " in f" {c} ")
    assert f"--skip-wait-for-delete-timeout={UNREPORTED_POD_SKIP_SECONDS}" in drain
    assert "--disable-eviction" not in drain and "--force" not in drain, "still evictions: budgets apply"


@pytest.mark.parametrize("role, service", [("server", "k3s"), ("agent", "k3s-agent")])
def test_a_drain_run_from_another_server_never_stops_k3s_there(tmp_path, role, service):
    """An unreachable node's drain runs on a server (cluster.unreachableNodes): stopping K3s there would take that
    server out instead; the node is taken out through the API only, and the log says K3s on it still runs."""
    for node in ("present", "absent"):
        (tmp_path / node).mkdir()
        code, calls, err = run_drain(tmp_path / node, role=role, on_node=False, NODE=node, READY="Unknown")
        assert code == 0, err
        assert not any(c.startswith("systemctl") for c in calls)
        assert "its K3s is not stopped on it" in err and f"systemctl disable --now {service}" in err
        taken_out = any(" drain " in f" {c} " for c in calls) and any(" delete node " in f" {c} " for c in calls)
        assert taken_out is (node == "present")


def test_a_blocked_drain_keeps_the_machine(tmp_path):
    code, calls, err = run_drain(tmp_path, role="server", DRAIN_RC="1")
    assert code != 0, "a failed delete stops Pulumi before it deletes the server"
    assert "PodDisruptionBudget" in err
    assert not any("annotate" in c or c.startswith("systemctl") or " delete " in f" {c} " for c in calls)


# --- quorum ----------------------------------------------------------------------------------------

def test_production_refuses_a_control_plane_without_quorum_to_spare():
    from tests.test_config import one_problem
    msg = one_problem(base_raw(cluster={"controlPlane": {"count": 1}}))
    assert msg.startswith("adplatform:cluster.controlPlane.count must be at least 3 in the production profile")
    assert msg.endswith("got 1")


def test_staging_may_run_one_server():
    from config import load
    from tests.test_config import SECRET
    loaded = load("test", base_raw(profile="staging", cluster={"controlPlane": {"count": 1}}), SECRET)
    assert loaded.config.cluster.control_plane.count == 1


def _by_host(run: Run) -> dict[str, list[tuple[str, object]]]:
    """Each SSH address's remote commands with the host key their connection pins."""
    found: dict[str, list[tuple[str, object]]] = {}
    for r in run.of_type(CMD):
        connection = r.inputs["connection"]
        connection = connection.value if isinstance(connection, Secret) else connection
        key = connection.get("hostKey")
        found.setdefault(connection["host"], []).append((r.name, key.value if isinstance(key, Secret) else key))
    return found


def test_a_dead_machine_is_never_dialled_for_its_host_key(unreachable):
    """A node listed in cluster.unreachableNodes gets no key-read step (it would dial the dead machine for ten
    minutes and fail the run): its commands keep what they recorded. With no previous record (the first run that
    pins keys), that is no key at all, as before pinning, so they show no change."""
    record = unreachable.outputs["previousRun"]["nodes"]
    assert not [r.name for r in unreachable.of_type(CMD) if r.name in ("host-key-general-2", "host-key-control-plane-1")]
    assert unreachable.named("host-key-general-1", CMD), "every other node still reads its key"
    by_host = _by_host(unreachable)
    for dead in ("general-2", "control-plane-1"):
        commands = by_host[record[dead]["address"]]
        assert commands and all(key is None for _, key in commands), (dead, commands)
    live = by_host[record["general-1"]["address"]]
    assert live and all(key for name, key in live if not name.startswith("host-key-")), live


def test_a_dead_machine_keeps_the_host_key_the_previous_run_pinned_for_it(unreachable):
    """Once a run has recorded its key, a node that dies afterwards keeps that key in its connection (not dialled): its
    commands' connections are unchanged from the run before, so nothing of it runs again."""
    raw = base_raw(layers=UP_TO_K3S, cluster={"unreachableNodes": ["control-plane-1", "general-2"]})
    values, *rest = raw_config(raw)
    previous = {"nodes": {name: {**node, "hostKey": node["hostKey"] or f"ssh-ed25519 {name}"}
                          for name, node in unreachable.outputs["previousRun"]["nodes"].items()}}
    later = mockrun.execute({**values, mockrun.PREVIOUS_RUN: previous}, *rest, "test")
    address = previous["nodes"]["general-2"]["address"]
    commands = _by_host(later)[address]
    assert commands and all(key == "ssh-ed25519 general-2" for _, key in commands), commands
    assert not [r.name for r in later.of_type(CMD) if r.name == "host-key-general-2"]


def test_a_dead_machine_with_no_readable_record_stops_the_run_instead_of_dialling_it(monkeypatch):
    """Without the record its commands' pinned key is unknown: going on would change their connection and re-run them
    against the dead machine (60 dial attempts each). So listing a node makes the read required."""
    import pulumi
    from providers import previous_run

    def fails(*args, **kwargs):
        raise Exception("bad stack reference, project was set")
    monkeypatch.setattr(pulumi.runtime, "invoke", fails)
    raw = base_raw(layers=UP_TO_K3S, cluster={"unreachableNodes": ["general-2"]})
    with pytest.raises(Exception, match="pulumi state upgrade") as e:
        mockrun.execute(*raw_config(raw), "test")
    assert isinstance(e.value, previous_run.PreviousRunError) or "PreviousRunError" in repr(e.value)
