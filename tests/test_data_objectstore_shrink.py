"""A shrinking object store empties each volume server it removes first, one at a time (components/data/
objectstore_shrink.py): the chart's StatefulSet (`podManagementPolicy: Parallel`) would delete them all at once, a
file's two copies (replication 001) possibly with them. The release carries the before_update hook; its body runs
with a fake runner, its script against a stub `k3s` whose `weed shell` answers like SeaweedFS 4.44's."""

from __future__ import annotations

import pulumi.resource_hooks
import pytest

from components.data.objectstore_shrink import (EVACUATE_TIMEOUT_SECONDS, HOOK, SSH_TIMEOUT_SECONDS, STEP,
                                                EvacuateError, departing_script, departing_servers, departure_step,
                                                empty_before_departure, evacuate_leaving, evacuate_script,
                                                evacuation_hooks, leaving_servers)
from components.k3s.depart import BeforeDeparture
from components.k3s.lifecycle import ACCOUNT
from components.k3s.resize import SERVER_CA, token_script
from tests import validators
from tests.conftest import script_param
from tests.stubs import run_with_stubs
from tests.test_resize import drive
from tools.mockrun import Run

RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJub2RlLWxpZmVjeWNsZSJ9.c2lnbmF0dXJl"
MASTERS = ["seaweedfs-master-0", "seaweedfs-master-1", "seaweedfs-master-2"]


def inputs(volumes: int | float, masters: int = 3) -> dict:
    return {"chart": "seaweedfs", "values": {"master": {"replicas": masters}, "volume": {"replicas": volumes}}}


# --- the recorded program -----------------------------------------------------------------------------

@pytest.mark.parametrize("stack", ["production", "staging"])
def test_the_release_carries_the_evacuation_hook(stack, request):
    run: Run = request.getfixturevalue(stack)
    release = run.named("seaweedfs", RELEASE_TYPE)
    assert release.options.get("hooks") == {"before_update": [HOOK]}


def test_the_lifecycle_account_may_exec_into_the_masters_only(production):
    """The hook's script runs as the node-lifecycle account, whose ClusterRole reads pods but execs nowhere: a Role
    in the store's namespace adds `pods/exec` on its master pods alone, and the release waits for it."""
    role = production.named("seaweedfs-evacuate", "kubernetes:rbac.authorization.k8s.io/v1:Role").inputs
    assert role["metadata"] == {"name": ACCOUNT, "namespace": "seaweedfs"}
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods/exec"], "resourceNames": MASTERS,
                              "verbs": ["get", "create"]},
                             {"apiGroups": ["apps"], "resources": ["statefulsets"],
                              "resourceNames": ["seaweedfs-volume"], "verbs": ["get"]}]
    binding = production.named("seaweedfs-evacuate", "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding")
    assert binding.inputs["roleRef"]["name"] == ACCOUNT and binding.inputs["roleRef"]["kind"] == "Role"
    assert binding.inputs["subjects"] == [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": "kube-system"}]
    release = production.named("seaweedfs", RELEASE_TYPE)
    assert binding.urn in release.dependencies


def test_a_server_that_left_is_not_restarted_back_into_the_cluster_by_its_liveness_probe(production):
    """`volumeServer.leave` holds until the server restarts. The chart's liveness probe asks /healthz, which answers
    503 once the server stops heartbeating (SeaweedFS 4.44 volume_server_handlers_admin.go): 4 failures (6 min) would
    restart it, and it would join the master again, empty, the first target of the next server's evacuation, whose
    copies the StatefulSet's shrink then deletes with it. Liveness asks /status, which answers while the HTTP server
    runs; readiness keeps /healthz, so a server that left is not Ready."""
    volume = production.named("seaweedfs", RELEASE_TYPE).inputs["values"]["volume"]
    assert volume["livenessProbe"] == {"httpGet": {"path": "/status"}}
    assert "readinessProbe" not in volume, "the chart's /healthz readiness"


# --- the hook body ---------------------------------------------------------------------------------------

class FakeRunner:
    def __init__(self, fail_on: str | None = None):
        self.scripts: list[str] = []
        self.fail_on = fail_on

    async def __call__(self, script: str) -> str:
        if script == token_script():
            self.scripts.append("token")
            return TOKEN + "\n"
        self.scripts.append(script)
        if self.fail_on and script_param(script, "SERVER") == self.fail_on:
            raise RuntimeError("exit 1: weed shell volumeServer.evacuate failed")
        return ""

    def servers(self) -> list[str]:
        return [script_param(s, "SERVER") for s in self.scripts if s not in ("token", "departing")]


def test_a_shrink_from_six_to_three_empties_servers_five_four_three_in_that_order():
    run = FakeRunner()
    assert leaving_servers(inputs(6), inputs(3), "seaweedfs") == \
        ["seaweedfs-volume-5", "seaweedfs-volume-4", "seaweedfs-volume-3"]
    drive(evacuate_leaving(inputs(6), inputs(3), run, "seaweedfs", "seaweedfs"))
    assert run.scripts[0] == "token"
    assert run.servers() == ["seaweedfs-volume-5", "seaweedfs-volume-4", "seaweedfs-volume-3"], \
        "one script run each, highest ordinal first"
    script = run.scripts[1]
    assert script_param(script, "ADDRESS") == "seaweedfs-volume-5.seaweedfs-volume.seaweedfs:8080"
    assert script_param(script, "MASTERS").split() == MASTERS
    assert SERVER_CA in script_param(script, "KUBECONFIG_YAML")


def test_the_engine_may_hand_the_counts_as_floats():
    assert leaving_servers(inputs(4.0), inputs(3.0), "seaweedfs") == ["seaweedfs-volume-3"]


@pytest.mark.parametrize("old,new", [(inputs(3), inputs(3)), (inputs(3), inputs(6)), (None, inputs(3)),
                                     ({"values": {}}, inputs(3)), (inputs(3, masters=3), inputs(3, masters=1))])
def test_an_update_that_does_not_lower_the_count_runs_nothing(old, new):
    run = FakeRunner()
    assert drive(evacuate_leaving(old, new, run, "seaweedfs", "seaweedfs")) == []
    assert run.scripts == []


def test_a_failed_evacuation_fails_the_update_and_empties_no_further_server():
    """A before_update hook that raises aborts the release's update: the StatefulSet keeps every server."""
    run = FakeRunner(fail_on="seaweedfs-volume-4")
    with pytest.raises(EvacuateError, match="every server is kept: emptying seaweedfs-volume-4 first failed"):
        drive(evacuate_leaving(inputs(6), inputs(3), run, "seaweedfs", "seaweedfs"))
    assert run.servers() == ["seaweedfs-volume-5", "seaweedfs-volume-4"]


def test_the_hook_never_runs_in_a_preview_and_each_run_may_take_a_servers_evacuation(monkeypatch):
    monkeypatch.setattr(pulumi.resource_hooks, "register_resource_hook", lambda hook: None)
    [hook] = evacuation_hooks("key", "seaweedfs", "seaweedfs").before_update
    assert hook.name == HOOK and not (hook.opts and hook.opts.on_dry_run)
    assert SSH_TIMEOUT_SECONDS > EVACUATE_TIMEOUT_SECONDS


@pytest.mark.parametrize("count", ["3; reboot", -1, True, 2.5])
def test_only_counts_are_read_from_the_inputs(count):
    with pytest.raises(EvacuateError, match="volume.replicas"):
        leaving_servers(inputs(6), {"values": {"volume": {"replicas": count}}}, "seaweedfs")


def test_only_pod_names_and_a_token_reach_the_script():
    with pytest.raises(ValueError):
        evacuate_script("seaweedfs-volume-5; reboot", MASTERS, "seaweedfs", "seaweedfs", TOKEN)
    with pytest.raises(ValueError):
        evacuate_script("seaweedfs-volume-5", ["$(reboot)"], "seaweedfs", "seaweedfs", TOKEN)
    with pytest.raises(ValueError):
        evacuate_script("seaweedfs-volume-5", MASTERS, "seaweedfs x", "seaweedfs", TOKEN)
    with pytest.raises(EvacuateError):
        evacuate_script("seaweedfs-volume-5", MASTERS, "seaweedfs", "seaweedfs", "not a token\n")


# --- the script, against a stub k3s ------------------------------------------------------------------------

ADDRESS = "seaweedfs-volume-5.seaweedfs-volume.seaweedfs:8080"
# `k3s kubectl ...`: records each call (and what a weed shell reads); answers like the API and SeaweedFS 4.44 would.
# HELD: how many volume.list calls still show a volume on the server; EVACUATE_ERROR: evacuate's error line.
STUB_K3S = r"""#!/usr/bin/env bash
args=" $* "
args=${args/ --kubeconfig * --request-timeout=20s / }
args=${args/ --kubeconfig * exec / exec }
call=${args# kubectl }
printf '%s\n' "${call% }" >>"$CALLS"
case "$args" in
  *" get pod -n seaweedfs seaweedfs-volume-"*) [ -n "${NO_POD:-}" ] || echo "pod/seaweedfs-volume-5"; exit 0 ;;
  *" get pod -n seaweedfs seaweedfs-master-0 "*) echo "${MASTER0_READY:-True}"; exit 0 ;;
  *" get pod -n seaweedfs seaweedfs-master-"*) echo True; exit 0 ;;
  *" exec "*" -- weed shell "*)
    commands=$(cat)
    printf 'shell: %s\n' "$commands" >>"$CALLS"
    case "$commands" in
      *volumeServer.evacuate*)
        if [ -n "${UNKNOWN:-}" ]; then echo "error: $ADDRESS is not found in this cluster" >&2; exit 0; fi
        echo "moving volume 7 from $ADDRESS"
        [ -z "${EVACUATE_ERROR:-}" ] || echo "error: $EVACUATE_ERROR" ;;
      *volume.list*)
        echo "Topology volumeSizeLimit:1024 MB hdd(volume:9/0 active:9 free:0 remote:0)"
        n=$(cat "$CALLS.held" 2>/dev/null || echo "${HELD:-0}")
        if [ "$n" -gt 0 ]; then
          echo "      DataNode $ADDRESS hdd(volume:1/0 active:1 free:0 remote:0)"
          echo "          volume id:7 size:1024 collection:\"\" file_count:3 replica_placement:1"
        fi
        echo "{Size:9 FileCount:3 DeletedFileCount:0 DeletedBytes:0} "
        if [ -n "${DUPLICATE:-}" ]; then
          echo "WARNING: 1 volume id(s) exist in more than one collection. Verify before any destructive operation:"
          echo "  volume 3 in collections: \"\" (default), logs"
        fi
        echo $((n > 0 ? n - 1 : 0)) >"$CALLS.held" ;;
      *volume.fix.replication*)
        echo 'Running in simulation mode. Use "-apply" option to apply the changes.'
        [ -z "${UNDER:-}" ] || echo "volume 7 replication 001, but under replicated +1" ;;
    esac
    exit 0 ;;
esac
exit 0
"""


STUB_SLEEP = 'printf "sleep %s\\n" "$*" >>"$CALLS"\n'


def run_evacuate(tmp_path, **env: str) -> tuple[int, list[str], str]:
    script = evacuate_script("seaweedfs-volume-5", MASTERS, "seaweedfs", "seaweedfs", TOKEN)
    return run_with_stubs(tmp_path, script, {"k3s": STUB_K3S, "sleep": STUB_SLEEP}, ADDRESS=ADDRESS, **env)


def shell_commands(calls: list[str]) -> list[str]:
    return [c.removeprefix("shell: ") for c in calls if c.startswith("shell: ")]


def test_the_server_is_emptied_checked_and_leaves(tmp_path):
    code, calls, err = run_evacuate(tmp_path, MASTER0_READY="False")
    assert code == 0, err
    assert shell_commands(calls) == [f"lock; volumeServer.evacuate -node {ADDRESS} -apply; unlock",
                                     f"volume.list -dataNode {ADDRESS}",
                                     f"lock; volumeServer.leave -node {ADDRESS} -apply; unlock"]
    assert "exec -i -n seaweedfs seaweedfs-master-1 -c seaweedfs -- weed shell" in calls, "a Ready master"
    assert TOKEN not in err


def test_a_volume_that_grew_meanwhile_is_evacuated_again(tmp_path):
    code, calls, err = run_evacuate(tmp_path, HELD="1")
    assert code == 0, err
    assert [c.split()[1] for c in shell_commands(calls)] == \
        ["volumeServer.evacuate", "-dataNode", "volumeServer.evacuate", "-dataNode", "volumeServer.leave"]


def test_a_failed_evacuation_fails_the_script_and_the_server_does_not_leave(tmp_path):
    """weed shell exits 0 whatever its commands do: the script reads the error line."""
    code, calls, err = run_evacuate(tmp_path, EVACUATE_ERROR="failed to move volume 7 from " + ADDRESS)
    assert code != 0 and "every volume server" in err and "failed to move volume 7" in err
    assert not any("volumeServer.leave" in c for c in shell_commands(calls))


def test_a_server_that_keeps_volumes_fails_the_script(tmp_path):
    code, calls, err = run_evacuate(tmp_path, HELD="9")
    assert code != 0 and "still holds volumes after 3 evacuations" in err
    assert not any("volumeServer.leave" in c for c in shell_commands(calls))


def test_a_server_without_a_pod_has_nothing_to_empty_when_no_volume_lacks_a_copy(tmp_path):
    code, calls, err = run_evacuate(tmp_path, NO_POD="1")
    assert code == 0, err
    assert shell_commands(calls) == ["volume.fix.replication"]


def test_a_server_without_a_pod_whose_volumes_lack_a_copy_fails_the_update(tmp_path):
    """Its pod gone (deleted, not yet recreated), its disk may hold the only other copy of a volume: the StatefulSet
    must not delete it, as for a server the master does not know."""
    code, calls, err = run_evacuate(tmp_path, NO_POD="1", UNDER="1")
    assert code != 0 and "has no pod, and 1 volumes lack a copy" in err and "every" in err
    assert not any("volumeServer" in c for c in shell_commands(calls))


def test_the_evacuation_script_lints():
    script = evacuate_script("seaweedfs-volume-5", MASTERS, "seaweedfs", "seaweedfs", TOKEN)
    assert script_param(script, "EVACUATE_TIMEOUT") == str(EVACUATE_TIMEOUT_SECONDS)
    assert validators.shellcheck({"seaweedfs-evacuate": script}) == ""


def test_a_server_that_left_in_an_earlier_aborted_run_does_not_block_the_next(tmp_path):
    """An update stopped at a later server after this one was emptied and left: its pod still runs, but the master no
    longer knows it (`leave` stops its heartbeats until a restart), and evacuate answers "not found". The next run
    waits a few heartbeats (a pod only starting would register) and then finds nothing to empty, instead of failing
    every `pulumi up` until someone restarts the pod."""
    code, calls, err = run_evacuate(tmp_path, UNKNOWN="1")
    assert code == 0, err
    assert [c.split()[1] for c in shell_commands(calls)[:2]] == ["volumeServer.evacuate", "volumeServer.evacuate"]
    assert shell_commands(calls)[2:] == ["volume.fix.replication"], "no volume lacks a copy"
    assert "sleep 15" in calls and "nothing to empty" in err


def test_a_server_emptied_before_its_node_left_passes_whatever_its_pods_phase(tmp_path):
    """Emptied before its node left (departure_step), then evicted by the drain: its pod is Pending, the master no
    longer knows it, and no volume lacks a copy: the release's hook goes on to the next server."""
    code, calls, err = run_evacuate(tmp_path, UNKNOWN="1", MASTER0_READY="True")
    assert code == 0, err
    assert "volume.fix.replication" in shell_commands(calls)


def test_a_server_gone_with_copies_on_its_disk_fails_the_update(tmp_path):
    """Unknown to the master because its pod went down unemptied (evicted, its node lost): volumes lack their copy,
    which may be on its disk; the StatefulSet must not delete it."""
    code, calls, err = run_evacuate(tmp_path, UNKNOWN="1", UNDER="1")
    assert code != 0 and "1 volumes lack a copy" in err and "every volume server is kept" in err


def test_the_duplicate_volume_id_warning_is_not_a_volume_the_server_holds(tmp_path):
    """volume.list ends with a cluster-wide warning listing duplicated ids ("  volume 3 in collections: ..."),
    whichever server holds them: an emptied server still leaves."""
    code, calls, err = run_evacuate(tmp_path, DUPLICATE="1")
    assert code == 0, err
    assert shell_commands(calls)[-1] == f"lock; volumeServer.leave -node {ADDRESS} -apply; unlock"


# --- before nodes leave a cluster over the internet -----------------------------------------------------------

class DepartingRunner(FakeRunner):
    """The first K3s server: seaweedfs-departing.sh reports `report`; evacuations are recorded."""

    def __init__(self, report: str, fail_on: str | None = None):
        super().__init__(fail_on)
        self.report = report

    async def __call__(self, script: str) -> str:
        if "readonly STATEFULSET=" in script:
            self.scripts.append("departing")
            return self.report
        return await super().__call__(script)


def test_before_nodes_leave_the_servers_that_go_and_those_on_leaving_nodes_are_emptied_first():
    """6 servers shrink to 4 while the nodes of servers 1 and 4 leave: 5 and 4 go (highest first, as the release's
    hook would), then 1, which stays but whose node leaves: its drain would otherwise take its copies out of reach.
    Each leaves the master's topology once empty, so no copy moves onto a server that goes or whose node leaves."""
    run = DepartingRunner("replicas\t6\non\tseaweedfs-volume-1\non\tseaweedfs-volume-4\n")
    steps = BeforeDeparture()
    empty_before_departure("seaweedfs", "seaweedfs", 4, 3, steps)
    drive(steps.run(["198.51.100.3"], ["node-a"], TOKEN, lambda timeout: run))
    assert steps.steps[STEP][1] == SSH_TIMEOUT_SECONDS, "each script may take a server's evacuation"
    assert run.scripts[0] == "departing"
    assert run.servers() == ["seaweedfs-volume-5", "seaweedfs-volume-4", "seaweedfs-volume-1"]
    assert list(steps.steps) == [STEP]


def test_a_shrink_within_one_provider_also_empties_the_server_on_the_leaving_node():
    """4 servers shrink to 3 with their pool's node 2 of 4 leaving (its drain comes after the release's update): the
    hook empties server 3, which the StatefulSet deletes, and server 1, which runs on the leaving node. On storage
    bound to that node (bare metal's local-path) server 1 could not start elsewhere, and its copies would go with
    the node."""
    run = DepartingRunner("replicas\t4\non\tseaweedfs-volume-1\n")
    keep = ["adp-p-stateful-1", "adp-p-stateful-3", "adp-p-stateful-4"]
    drive(evacuate_leaving(inputs(4), inputs(3), run, "seaweedfs", "seaweedfs", keep))
    assert run.scripts[:2] == ["token", "departing"]
    assert run.servers() == ["seaweedfs-volume-3", "seaweedfs-volume-1"]


def test_the_hook_asks_for_the_nodes_this_run_does_not_keep(tmp_path):
    """The release's hook has no addresses: every Node not among this run's nodes is leaving."""
    stub = r"""#!/usr/bin/env bash
args=" $* "
case "$args" in
  *" get statefulset "*) printf 4 ;;
  *" get nodes "*) printf 'adp-p-stateful-1\nadp-p-stateful-2\nadp-p-stateful-3\nadp-p-stateful-4\n' ;;
  *" get pods "*) printf 'seaweedfs-volume-0\tadp-p-stateful-1\nseaweedfs-volume-1\tadp-p-stateful-2\n' ;;
esac
"""
    out: list[str] = []
    script = departing_script("seaweedfs", "seaweedfs", None, ["adp-p-stateful-1", "adp-p-stateful-3",
                                                                "adp-p-stateful-4"], TOKEN)
    code, _, err = run_with_stubs(tmp_path, script, {"k3s": stub}, stdout=out)
    assert code == 0, err
    assert out == ["replicas\t4", "on\tseaweedfs-volume-1"]
    assert validators.shellcheck({"seaweedfs-departing": script}) == ""


def test_the_live_count_is_read_so_a_retry_after_the_release_shrank_empties_no_server_twice():
    assert departing_servers("replicas\t4\n", 4, "seaweedfs") == []
    assert departing_servers("", 4, "seaweedfs") == [], "no StatefulSet yet: nothing runs"
    assert departing_servers("replicas\t3\non\tseaweedfs-volume-10\non\tseaweedfs-volume-2\n", 4, "seaweedfs") \
        == ["seaweedfs-volume-10", "seaweedfs-volume-2"], "by ordinal, not by name"


@pytest.mark.parametrize("report", ["replicas\t6; reboot\n", "on\t$(reboot)\n"])
def test_only_a_count_and_pod_names_are_read_from_the_report(report):
    with pytest.raises(EvacuateError):
        departing_servers(report, 4, "seaweedfs")


def test_a_failed_evacuation_before_departure_empties_no_further_server():
    run = DepartingRunner("replicas\t6\n", fail_on="seaweedfs-volume-5")
    with pytest.raises(RuntimeError):
        drive(departure_step("seaweedfs", "seaweedfs", 4, 3)(["198.51.100.3"], [], TOKEN, run))
    assert run.servers() == ["seaweedfs-volume-5"]


def test_the_departing_script_reads_the_live_count_and_the_servers_on_leaving_nodes(tmp_path):
    stub = r"""#!/usr/bin/env bash
args=" $* "
printf '%s\n' "${args#* --request-timeout=20s }" >>"$CALLS"
case "$args" in
  *" get statefulset "*) printf 6 ;;
  *" get nodes "*) printf 'node-a\t10.0.0.1 198.51.100.1\nnode-b\t10.0.0.2 198.51.100.2\nnode-c\t198.51.100.3\n' ;;
  *" get pods "*) printf 'seaweedfs-volume-0\tnode-a\nseaweedfs-volume-1\tnode-b\nseaweedfs-volume-2\tnode-c\n' ;;
esac
"""
    out: list[str] = []
    script = departing_script("seaweedfs", "seaweedfs", ["198.51.100.2", "198.51.100.3"], ["node-c"], TOKEN)
    code, calls, err = run_with_stubs(tmp_path, script, {"k3s": stub}, stdout=out)
    assert code == 0, err
    assert out == ["replicas\t6", "on\tseaweedfs-volume-1"], "node-c is kept, node-a keeps its address"
    assert "get statefulset -n seaweedfs seaweedfs-volume --ignore-not-found -o jsonpath={.spec.replicas} " in calls
    assert validators.shellcheck({"seaweedfs-departing": script}) == ""
    with pytest.raises(ValueError):
        departing_script("seaweedfs", "seaweedfs", ["198.51.100.2; reboot"], [], TOKEN)
    with pytest.raises(ValueError):
        departing_script("seaweedfs", "seaweedfs", [], ["$(reboot)"], TOKEN)


def test_the_program_registers_the_step_before_nodes_depart_and_gives_the_hook_every_node_it_keeps(monkeypatch):
    """The registry lives in the deploying process: the program, run here (not from the run cache), fills it. The
    release's hook gets the Node names of the run's nodes (K3sCluster.node_names): the hostnames K3s registers."""
    from components.data import objectstore
    from components.k3s import depart
    from tools import mockrun
    monkeypatch.setattr(mockrun, "cache", None)
    monkeypatch.setattr(depart.BEFORE_DEPARTURE, "steps", {})
    kept: list[tuple[str, ...]] = []

    def hooks(private_key, namespace, release, keep=()):
        kept.append(tuple(keep))
        return evacuation_hooks(private_key, namespace, release, keep)
    monkeypatch.setattr(objectstore, "evacuation_hooks", hooks)
    run = mockrun.run(*mockrun.stack_config("staging"), "staging")
    assert list(depart.BEFORE_DEPARTURE.steps) == [STEP]
    names = {script_param(validators.plain(r.inputs["stdin"]), "NODE_NAME")
             for r in run.of_type("command:remote:Command") if r.name.startswith("k3s-")}
    assert len(kept) == 1 and set(kept[0]) == names and len(names) == len(run.outputs["nodes"])
