"""Resize in place: the node is drained before a change that powers its server off, and uncordoned after.

The hook body (components/k3s/resize.py) is driven directly with the old/new inputs and a fake runner;
the resize script runs against a stub `k3s`; the SSH runner runs a fake `ssh`; the recorded programs
show every server resource of every provider bound to the hooks.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
import yaml

from components.k3s.lifecycle import DRAIN_TIMEOUT_SECONDS
from components.k3s.resize import (READY_TIMEOUT_SECONDS, SERVER_CA, DrainServer, PoolTurns, ResizeError,
                                   UNPINNED, ResizeHooks, ResizeTarget, _run_on, resize_script, ssh_run, token_script,
                                   where_scripts_run)
from tests import validators
from tests.conftest import script_param, stack_run
from tests.stubs import kubectl_calls, run_with_stubs, with_fake_clock
from tools.plan import cost

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJub2RlLWxpZmVjeWNsZSJ9.c2lnbmF0dXJl"
HETZNER = ResizeTarget("adp-production-scylladb-1", "scylladb", (("serverType",), ("publicNets",)))
# An ed25519 host key (the wire form check_host_key requires), as a host-key step reads it.
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGyQ5iLrXL0W1eJqkqG9y5WnA2s8pC3qvGfQe1cW9r7H"
OLD = {"serverType": "ccx33", "publicNets": [{"ipv4Enabled": True}], "labels": {"a": "1"}}


class FakeRunner:
    """Records each script it is given; answers the token script with a token."""

    def __init__(self, calls: list[tuple[str, str, str]], node: str = "n", fail_on: str | None = None,
                 wait: asyncio.Event | None = None):
        self.calls, self.node, self.fail_on, self.wait = calls, node, fail_on, wait

    async def __call__(self, script: str) -> str:
        step = "token" if script == token_script() else script_param(script, "PHASE")
        self.calls.append((self.node, step, script))
        if self.wait is not None and step == "drain":
            await self.wait.wait()
        if step == self.fail_on:
            raise ResizeError("exit 1: draining did not finish within 600s")
        return TOKEN + "\n" if step == "token" else ""


def drive(coroutine):
    """Run a coroutine on a loop of its own (asyncio.run would unset the loop the mock runs use)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def hooks(target: ResizeTarget = HETZNER, turns: PoolTurns | None = None) -> ResizeHooks:
    return ResizeHooks(target, turns or PoolTurns())


@pytest.mark.parametrize("new", [dict(OLD), {**OLD, "labels": {"a": "2"}, "firewallIds": [7]}])
def test_an_update_that_does_not_power_the_server_off_runs_nothing(new):
    calls: list = []
    h = hooks()
    drive(h.before(OLD, new, FakeRunner(calls)))
    drive(h.after(OLD, new, FakeRunner(calls)))
    assert calls == []


@pytest.mark.parametrize("new", [{**OLD, "serverType": "ccx43"}, {**OLD, "publicNets": [{"ipv4Enabled": False}]}])
def test_a_power_off_change_drains_first_and_uncordons_after(new):
    calls: list = []
    h = hooks()
    run = FakeRunner(calls)
    drive(h.before(OLD, new, run))
    assert [c[1] for c in calls] == ["token", "drain"], "the token is read, then the node drained"
    drain = calls[1][2]
    assert script_param(drain, "NODE_NAME") == HETZNER.node
    kubeconfig = yaml.safe_load(script_param(drain, "KUBECONFIG_YAML"))
    assert kubeconfig["users"][0]["user"]["token"] == TOKEN, "the token read on the server, stripped"
    assert kubeconfig["clusters"][0]["cluster"] == {"server": "https://127.0.0.1:6443",
                                                    "certificate-authority": SERVER_CA}, "the server's own API"
    assert script_param(drain, "DRAIN_TIMEOUT") == str(DRAIN_TIMEOUT_SECONDS)
    drive(h.after(OLD, new, run))
    assert [c[1] for c in calls] == ["token", "drain", "return"], "the token is kept, not read again"
    assert script_param(calls[2][2], "READY_TIMEOUT") == str(READY_TIMEOUT_SECONDS)


def test_nested_inputs_count_azure_vm_size():
    target = ResizeTarget("adp-staging-azure-general-1", "general", (("hardwareProfile", "vmSize"),))
    calls: list = []
    drive(hooks(target).before({"hardwareProfile": {"vmSize": "Standard_D4s_v5"}},
                                     {"hardwareProfile": {"vmSize": "Standard_D8s_v5"}}, FakeRunner(calls)))
    assert [c[1] for c in calls] == ["token", "drain"]


@pytest.mark.parametrize("stack", ["staging", "staging-aws", "staging-gcp", "staging-azure"])
def test_each_provider_binds_its_size_input_to_the_hooks(stack):
    """The input plan-diff reads as a server's size (tools/plan/prices) is one the hooks act on."""
    from importlib import import_module
    spec = cost.table(stack_run(stack).config["adplatform:provider"])["servers"]
    module = import_module(f"providers.{stack_run(stack).config['adplatform:provider']}")
    assert tuple(spec["size"]) in module.POWER_OFF_INPUTS


def test_one_node_at_a_time_per_pool():
    async def scenario() -> list[tuple[str, str]]:
        turns, calls = PoolTurns(), []
        new = {**OLD, "serverType": "ccx43"}
        first = ResizeHooks(HETZNER, turns)
        second = ResizeHooks(ResizeTarget("adp-production-scylladb-2", "scylladb", HETZNER.power_off_inputs), turns)
        other = ResizeHooks(ResizeTarget("adp-production-general-1", "general", HETZNER.power_off_inputs), turns)
        await first.before(OLD, new, FakeRunner(calls, "scylladb-1"))
        waiting = asyncio.create_task(second.before(OLD, new, FakeRunner(calls, "scylladb-2")))
        await other.before(OLD, new, FakeRunner(calls, "general-1"))  # another pool does not wait
        await asyncio.sleep(0.05)
        assert not any(node == "scylladb-2" for node, *_ in calls), "scylladb-2 waits for scylladb-1's return"
        await first.after(OLD, new, FakeRunner(calls, "scylladb-1"))
        await waiting
        return [(node, step) for node, step, _ in calls]

    order = drive(scenario())
    assert order.index(("scylladb-1", "return")) < order.index(("scylladb-2", "drain"))
    assert order.index(("general-1", "drain")) < order.index(("scylladb-1", "return"))


def test_a_node_waiting_too_long_for_its_pool_fails_clearly():
    async def scenario() -> None:
        turns = PoolTurns(timeout=0.05)
        new = {**OLD, "serverType": "ccx43"}
        await ResizeHooks(HETZNER, turns).before(OLD, new, FakeRunner([]))  # its update never returns
        second = ResizeTarget("adp-production-scylladb-2", "scylladb", HETZNER.power_off_inputs)
        await ResizeHooks(second, turns).before(OLD, new, FakeRunner([]))

    with pytest.raises(ResizeError, match=r"adp-production-scylladb-2 was not resized: another node of pool "
                                          r"scylladb"):
        drive(scenario())


def test_a_failed_drain_aborts_the_update_and_frees_the_pool():
    async def scenario() -> list[str]:
        turns, calls = PoolTurns(timeout=0.05), []
        new = {**OLD, "serverType": "ccx43"}
        with pytest.raises(ResizeError) as failed:
            await ResizeHooks(HETZNER, turns).before(OLD, new, FakeRunner(calls, fail_on="drain"))
        message = str(failed.value)
        assert message.startswith("resize of adp-production-scylladb-1 (serverType changed")
        assert "aborted: draining it first failed" in message and "within 600s" in message
        second = ResizeTarget("adp-production-scylladb-2", "scylladb", HETZNER.power_off_inputs)
        await ResizeHooks(second, turns).before(OLD, new, FakeRunner(calls, "scylladb-2"))  # not blocked
        return [step for _, step, _ in calls]

    assert drive(scenario()) == ["token", "drain", "token", "drain"]


def test_values_reaching_the_script_are_validated_and_quoted():
    with pytest.raises(ValueError, match="not a Kubernetes node name"):
        ResizeTarget("adp;reboot", "p", (("serverType",),))
    with pytest.raises(ResizeError, match="not a service account token"):
        resize_script(HETZNER, "drain", "x'; rm -rf / #")
    script = resize_script(HETZNER, "drain", TOKEN)
    assert f"readonly NODE_NAME={HETZNER.node}" in script and "readonly PHASE=drain" in script
    back = resize_script(HETZNER, "return", TOKEN)
    assert validators.shellcheck({"resize-drain": script, "resize-return": back}) == ""


# --- the resize script, against a stub k3s ----------------------------------------------------------

STUB_K3S = r"""#!/usr/bin/env bash
printf '%s\n' "$*" >>"$CALLS"
case " $* " in
  *" get node "*"--ignore-not-found -o name "*) [ "${NODE:-present}" = present ] && echo node/n; exit 0 ;;
  *" get node "*"Ready"*) echo "${READY:-True}"; exit 0 ;;
  *" drain "*) exit "${DRAIN_RC:-0}" ;;
esac
exit 0
"""


def run_resize(tmp_path: Path, phase: str, **env: str) -> tuple[int, list[str], str]:
    script = resize_script(HETZNER, phase, TOKEN).replace(
        f"readonly READY_TIMEOUT={READY_TIMEOUT_SECONDS}", "readonly READY_TIMEOUT=0")
    code, calls, err = run_with_stubs(tmp_path, script, {"k3s": STUB_K3S}, **env)
    return code, kubectl_calls(calls), err


def test_resize_drain_cordons_and_drains_keeping_the_node_and_its_etcd_member(tmp_path):
    code, calls, err = run_resize(tmp_path, "drain")
    assert code == 0, err
    node = HETZNER.node
    assert calls == [f"get node {node} --ignore-not-found -o name", f"cordon {node}",
                     f"drain {node} --ignore-daemonsets --delete-emptydir-data --timeout={DRAIN_TIMEOUT_SECONDS}s"]
    assert TOKEN not in err, "the token is never logged"


def test_a_blocked_resize_drain_uncordons_and_fails(tmp_path):
    code, calls, err = run_resize(tmp_path, "drain", DRAIN_RC="1")
    assert code != 0 and "PodDisruptionBudget" in err and "aborted" in err
    assert calls[-1] == f"uncordon {HETZNER.node}", "the server keeps running as it is: back in service"


def test_return_waits_for_ready_then_uncordons(tmp_path):
    code, calls, err = run_resize(tmp_path, "return")
    assert code == 0, err
    assert calls[-1] == f"uncordon {HETZNER.node}"


def test_a_node_that_does_not_come_back_ready_stays_cordoned(tmp_path):
    code, calls, err = run_resize(tmp_path, "return", READY="False")
    assert code != 0 and "not Ready" in err
    assert not any(c.startswith("uncordon") for c in calls)


def test_the_ready_wait_ends_at_its_timeout_in_wall_clock_time(tmp_path):
    """Each read may take its 20 s request timeout: counting only the 5 s pauses made READY_TIMEOUT last five times
    as long, past the resize's SSH budget. Here each pass costs 25 s on a fake clock."""
    script = with_fake_clock(resize_script(HETZNER, "return", TOKEN), 25)
    code, calls, err = run_with_stubs(tmp_path, script, {"k3s": STUB_K3S}, READY="False")
    assert code == 1 and f"not Ready {READY_TIMEOUT_SECONDS}s after its resize" in err
    reads = sum("Ready" in c for c in calls)
    assert reads <= READY_TIMEOUT_SECONDS // 25 + 2, f"{reads} reads of 25 s each"


# --- the SSH runner, against a fake ssh -------------------------------------------------------------

FAKE_SSH = r"""#!/usr/bin/env bash
printf '%s\n' "$@" >"$OUT/argv"
for ((i = 1; i <= $#; i++)); do if [ "${!i}" = -i ]; then j=$((i + 1)); stat -c %a "${!j}" >"$OUT/mode"; cp "${!j}" "$OUT/key"; fi; done
for a in "$@"; do case "$a" in UserKnownHostsFile=/*) f=${a#*=}; stat -c %a "$f" >"$OUT/kh-mode"; cp "$f" "$OUT/known_hosts"; echo "${f%/*}" >"$OUT/kh-dir";; esac; done
[ -z "${MISMATCH:-}" ] || { echo "Host key verification failed." >&2; exit 255; }
cat >"$OUT/stdin"
echo output
"""


def test_ssh_runner_feeds_the_script_on_stdin_with_a_private_key_file(tmp_path, monkeypatch):
    fake_ssh_on_path(tmp_path, monkeypatch)
    out = drive(ssh_run("198.51.100.7", "ubuntu", "KEY", "echo hi\n", host_key=HOST_KEY))
    assert out == "output\n"
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv[-4:] == ["ubuntu", "--", "198.51.100.7", "sudo -n bash -s"], "the host is never read as an option"
    assert "BatchMode=yes" in argv and "ConnectionAttempts=30" in argv, "patient by default (a resized machine)"
    assert (tmp_path / "mode").read_text().strip() == "600" and (tmp_path / "key").read_text() == "KEY\n"
    drive(ssh_run("198.51.100.7", "ubuntu", "KEY", "echo hi\n", 60, attempts=2, host_key=HOST_KEY))
    assert "ConnectionAttempts=2" in (tmp_path / "argv").read_text().splitlines(), "a short try where asked"
    assert (tmp_path / "stdin").read_text() == "echo hi\n", "the script (and its token) never in argv"


def fake_ssh_on_path(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(FAKE_SSH)
    (bin_dir / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("OUT", str(tmp_path))


def test_ssh_runner_accepts_only_the_pinned_host_key(tmp_path, monkeypatch):
    """The hooks' ssh checks the host key like the program's remote commands: a private known_hosts of exactly the
    pinned key for that address (OpenSSH's [host]:port form off port 22), removed after the run."""
    fake_ssh_on_path(tmp_path, monkeypatch)
    drive(ssh_run("198.51.100.7", "root", "KEY", "true", host_key=HOST_KEY + " root@old-name"))
    argv = (tmp_path / "argv").read_text().splitlines()
    assert "StrictHostKeyChecking=yes" in argv and "StrictHostKeyChecking=no" not in argv
    assert "UserKnownHostsFile=/dev/null" not in argv and "GlobalKnownHostsFile=/dev/null" in argv
    assert "HostKeyAlgorithms=ssh-ed25519" in argv
    assert (tmp_path / "known_hosts").read_text() == f"198.51.100.7 {HOST_KEY}\n"
    assert (tmp_path / "kh-mode").read_text().strip() == "600"
    assert not os.path.exists((tmp_path / "kh-dir").read_text().strip()), "the temporary directory is removed"
    drive(ssh_run("198.51.100.7", "root", "KEY", "true", host_key=HOST_KEY, port=2222))
    assert (tmp_path / "known_hosts").read_text() == f"[198.51.100.7]:2222 {HOST_KEY}\n"
    assert "-p" in (argv := (tmp_path / "argv").read_text().splitlines()) and argv[argv.index("-p") + 1] == "2222"


def test_a_host_key_mismatch_or_a_missing_key_fails_clearly(tmp_path, monkeypatch):
    fake_ssh_on_path(tmp_path, monkeypatch)
    monkeypatch.setenv("MISMATCH", "1")
    with pytest.raises(ResizeError, match=r"did not present its pinned SSH host key.*re-pin it \(docs/security.md"):
        drive(ssh_run("198.51.100.7", "root", "KEY", "true", host_key=HOST_KEY))
    monkeypatch.delenv("MISMATCH")
    (tmp_path / "argv").unlink()
    for missing in (None, ""):
        with pytest.raises(ResizeError, match="no pinned SSH host key is known for 198.51.100.7"):
            drive(ssh_run("198.51.100.7", "root", "KEY", "true", host_key=missing))
    with pytest.raises(ResizeError, match="pinned SSH host key of 198.51.100.7 is unusable"):
        drive(ssh_run("198.51.100.7", "root", "KEY", "true", host_key="ssh-rsa AAAA"))
    assert not (tmp_path / "argv").exists(), "nothing connects without a usable key"


def test_ssh_runner_errors_are_clear(tmp_path, monkeypatch):
    with pytest.raises(ResizeError, match="no usable SSH address"):
        drive(ssh_run("-oProxyCommand=x", "root", "KEY", "", host_key=HOST_KEY))
    monkeypatch.setenv("PATH", str(tmp_path))  # no ssh
    with pytest.raises(ResizeError, match=r"no OpenSSH client \(ssh\)"):
        drive(ssh_run("198.51.100.7", "root", "KEY", "", host_key=HOST_KEY))


def test_an_agent_is_drained_from_the_clusters_first_server_as_that_servers_user(monkeypatch):
    """A hybrid pool's agent (here on AWS, whose user is ubuntu) has no K3s server of its own provider: its
    scripts run on the cluster's first server (Hetzner, root), not on a server of the agent's provider."""
    agent = ResizeTarget("adp-production-aws-general-1", "aws-general", (("instanceType",),))
    first = DrainServer()
    first.use("203.0.113.10", "root", HOST_KEY)
    calls = []

    async def fake_ssh(host, user, key, script, timeout=0, attempts=30, *, host_key):
        calls.append((host, user, key, host_key))
        return ""
    monkeypatch.setattr("components.k3s.resize.ssh_run", fake_ssh)
    where = where_scripts_run(agent, server=False, own_address=lambda o: o["publicIp"], user="ubuntu",
                              drain_server=first)
    drive(_run_on(where, "KEY", {"publicIp": "198.51.100.7"})("true"))
    assert calls == [("203.0.113.10", "root", "KEY", HOST_KEY)], "with the first server's pinned key"
    server = where_scripts_run(HETZNER, server=True, own_address=lambda o: o["ipv4Address"], user="root",
                               drain_server=DrainServer())
    drive(_run_on(server, "KEY", {"ipv4Address": "198.51.100.8"})("true"))
    assert calls[-1] == ("198.51.100.8", "root", "KEY", UNPINNED), "a server drains itself (not yet pinned)"


def test_an_agent_with_no_known_server_fails_its_hook_clearly():
    agent = ResizeTarget("adp-production-general-1", "general", (("serverType",),))
    where = where_scripts_run(agent, server=False, own_address=lambda o: "", user="root", drain_server=DrainServer())
    with pytest.raises(ResizeError, match="no K3s server is known to drain adp-production-general-1 from"):
        where(None)


# --- the recorded programs --------------------------------------------------------------------------

@pytest.mark.parametrize("stack", ["production", "staging-aws", "staging-gcp", "staging-azure"])
def test_every_server_resource_is_bound_to_the_resize_hooks(stack):
    run = stack_run(stack)
    resource = cost.table(run.config["adplatform:provider"])["servers"]["resource"]
    servers = run.of_type(resource)
    assert servers
    for server in servers:
        hostname = next(v for k, v in server.inputs.items() if k in ("name", "vmName")) \
            if resource != "aws:ec2/instance:Instance" else f"adp-{stack}-{server.name}"
        assert server.options["hooks"] == {"before_update": [f"resize-drain-{hostname}"],
                                           "after_update": [f"resize-return-{hostname}"]}, server.name
