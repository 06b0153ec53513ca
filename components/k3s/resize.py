"""Drain a node before its server is resized in place, and return it after.

A server type change (Hetzner `serverType`, AWS `instanceType`, GCP `machineType`, Azure
`hardwareProfile.vmSize`, and the few other inputs a provider changes by stopping the machine) is an
in-place update: the provider powers the server off, changes it and powers it on. Nothing in the
program's resource graph can run before that update (a command needs the server's address, so it
depends on the server and runs after it; docs/lifecycle.md), so this uses the SDK's resource hooks,
bound to every server resource (`ResourceOptions(hooks=resize_hooks(...))`):

- `before_update`: when an input that powers the server off changes (the old and new inputs are the
  hook's arguments; any other update does nothing), take the pool's turn, read the node-lifecycle
  service account's token (scripts/lifecycle-token.sh) and cordon + drain the node with pod disruption
  budgets honoured and a bounded timeout (scripts/resize.sh, PHASE=drain). The Node object and the
  etcd member stay: the same machine comes back. A failed drain uncordons the node and fails the hook,
  which aborts the server's update (the engine's rule for `before_*` hooks).
- `after_update`: wait until the Node is Ready, uncordon it (PHASE=return), give up the pool's turn.

Where: the scripts run over SSH (the deployer's OpenSSH client) on a K3s server, which has the API on
127.0.0.1 and K3s' CA and admin kubeconfig: the node itself when it is a server, otherwise the
cluster's first server (DRAIN_SERVER, named by the K3s layer), whatever provider the agent runs on: a
hybrid pool's agents have no server of their own provider. An agent has neither an API nor a
credential that may evict other pods.

One node at a time per pool: a hook holds its pool's lock from `before_update` to `after_update`
(the hooks run on the program's event loop, in the deploying process). A node that waits longer than
LOCK_TIMEOUT_SECONDS fails with a message naming the pool; an update that fails between the two hooks
keeps the lock (its node stays cordoned), so the pool's other resizes stop with that message instead
of taking a second node down.

`pulumi destroy` runs no update hooks: nothing here affects it (the drain-on-delete commands of
lifecycle.py handle removals, without `--run-program`).

The hook body (`before_resize`, `after_resize`) is a plain coroutine of the old/new inputs and a
runner, so tests drive it with a fake runner; `resize_hooks` binds it to a server with the SSH runner.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, Sequence

import pulumi

from components.k3s.config import API_PORT
from components.k3s.lifecycle import (DRAIN_TIMEOUT_SECONDS, KUBE_LIB, NAMESPACE, TOKEN_SECRET, TOKEN_TEMPLATE,
                                      lifecycle_kubeconfig)
from components.remote import shell_command
from components.shell import render
from config.model_base import check_host_key
from providers.previous_run import RECORDED_KEYS

RESIZE_TEMPLATE = Path(__file__).parent / "scripts" / "resize.sh"
SERVER_CA = "/var/lib/rancher/k3s/server/tls/server-ca.crt"  # K3s' server CA, on every K3s server


def on_server_kubeconfig(token: str) -> str:
    """The node-lifecycle account's kubeconfig for a hook's script run on a K3s server: that server's own API."""
    return lifecycle_kubeconfig(f"https://127.0.0.1:{API_PORT}", {"certificate-authority": SERVER_CA}, token)
READY_TIMEOUT_SECONDS = 600  # how long a resized node may take to boot and report Ready
# How long a node waits for the node of its pool being resized: that one's drain, resize and return.
LOCK_TIMEOUT_SECONDS = DRAIN_TIMEOUT_SECONDS + READY_TIMEOUT_SECONDS + 1200
# One script, connection included. resize.sh's phases wait on the wall clock: the drain at most DRAIN_TIMEOUT_SECONDS
# plus three 20 s API calls, the return at most READY_TIMEOUT_SECONDS plus its last pass (a 20 s read, a 5 s pause)
# and the uncordon: each well within.
SSH_TIMEOUT_SECONDS = DRAIN_TIMEOUT_SECONDS + READY_TIMEOUT_SECONDS
SSH_ATTEMPTS = 30  # connections of 10 s: a server coming back from its resize answers within minutes

NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # a Kubernetes node name (RFC 1123 label)
HOST = re.compile(r"[A-Za-z0-9][-A-Za-z0-9.:]*")  # an address or DNS name: never an ssh option
TOKEN = re.compile(r"[A-Za-z0-9._-]+")  # a service account token (a JWT)

InputPath = tuple[str, ...]
# Runs a script with bash on the K3s server that acts for the node (see the module docstring); its stdout.
Runner = Callable[[str], Awaitable[str]]


class ResizeError(Exception):
    """A resize hook failed: the engine aborts the server's update (before) or the deployment (after)."""


@dataclass(frozen=True)
class ResizeTarget:
    """A server resource whose in-place changes the hooks guard."""

    node: str  # the Kubernetes Node name (the server's hostname)
    pool: str
    power_off_inputs: tuple[InputPath, ...]  # the provider's inputs it changes by stopping the server

    def __post_init__(self) -> None:
        if not NODE_NAME.fullmatch(self.node):
            raise ValueError(f"resize hooks: node name {self.node!r} is not a Kubernetes node name")
        if not self.power_off_inputs:
            raise ValueError(f"resize hooks: no input of {self.node} powers it off")


@dataclass
class PoolTurns:
    """One resize at a time per pool, within the deploying process."""

    timeout: float = LOCK_TIMEOUT_SECONDS
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def take(self, target: ResizeTarget) -> None:
        lock = self._locks.setdefault(target.pool, asyncio.Lock())
        try:
            await asyncio.wait_for(lock.acquire(), self.timeout)
        except asyncio.TimeoutError:
            raise ResizeError(
                f"{target.node} was not resized: another node of pool {target.pool} has been resizing for "
                f"{self.timeout:.0f}s (or its update failed and left it cordoned). Resolve that node, then run "
                f"pulumi up again.") from None

    def give_back(self, target: ResizeTarget) -> None:
        lock = self._locks.get(target.pool)
        if lock is not None and lock.locked():
            lock.release()


def _at(values: Mapping[str, Any] | None, path: Sequence[str | int]) -> Any:
    """The value at `path` (keys and list indexes) in a resource's inputs or outputs; None where absent."""
    value: Any = values or {}
    for step in path:
        if isinstance(step, int):
            value = value[step] if isinstance(value, list) and step < len(value) else None
        else:
            value = value.get(step) if isinstance(value, Mapping) else None
    return value


def power_off_changes(target: ResizeTarget, old: Mapping[str, Any] | None,
                      new: Mapping[str, Any] | None) -> list[str]:
    """The inputs (dotted) whose change makes the provider power the server off; [] for other updates."""
    return [".".join(p) for p in target.power_off_inputs if _at(old, p) != _at(new, p)]


def token_script() -> str:
    return render(TOKEN_TEMPLATE, {"NAMESPACE": NAMESPACE, "SECRET_NAME": TOKEN_SECRET})


def resize_script(target: ResizeTarget, phase: str, token: str) -> str:
    if phase not in ("drain", "return"):
        raise ValueError(f"resize phase must be drain or return, got {phase!r}")
    if not TOKEN.fullmatch(token):
        raise ResizeError(f"the node-lifecycle token read for {target.node} is not a service account token")
    return render(RESIZE_TEMPLATE, {
        "PHASE": phase, "NODE_NAME": target.node,
        "KUBECONFIG_YAML": on_server_kubeconfig(token),
        "DRAIN_TIMEOUT": DRAIN_TIMEOUT_SECONDS, "READY_TIMEOUT": READY_TIMEOUT_SECONDS,
    }, libs=[KUBE_LIB])


@dataclass
class ResizeHooks:
    """The two hooks of one server; `tokens` carries the token from before_update to after_update."""

    target: ResizeTarget
    turns: PoolTurns
    tokens: dict[str, str] = field(default_factory=dict)

    async def before(self, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, run: Runner) -> None:
        changed = power_off_changes(self.target, old, new)
        if not changed:
            return
        what = f"{self.target.node} ({', '.join(changed)} changed: the provider powers it off)"
        await self.turns.take(self.target)
        try:
            token = (await run(token_script())).strip()
            await run(resize_script(self.target, "drain", token))
        except Exception as e:
            self.turns.give_back(self.target)
            raise ResizeError(f"resize of {what} aborted: draining it first failed: {e}") from e
        self.tokens[self.target.node] = token

    async def after(self, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, run: Runner) -> None:
        if not power_off_changes(self.target, old, new):
            return
        try:
            token = self.tokens.pop(self.target.node, None) or (await run(token_script())).strip()
            await run(resize_script(self.target, "return", token))
        except Exception as e:
            raise ResizeError(f"{self.target.node} was resized but not returned to service: {e}") from e
        finally:
            self.turns.give_back(self.target)


# --- binding to a server: the SSH runner ------------------------------------------------------------

# Passed as `host_key` where no pinned key can be had without a deadlock or from a program that no longer has the
# node (see _UNPINNED_WHY): ssh_run then checks no host key, and says so in the deployment's log. Never a default.
UNPINNED = "unpinned"
_UNPINNED_WHY = ("a K3s server's own resize (its key-read step waits for the very update the hook precedes) and the "
                 "stop of a node leaving over the internet (its key-read step is no longer in the program) use the "
                 "key the previous run recorded, and it recorded none for this address")
# Passed as `host_key` for those two: the key the previous run pinned for the host (RECORDED_KEYS), else UNPINNED.
RECORDED = "recorded"


SSH_PORT = 22
KEY_MISMATCH = "Host key verification failed"  # what OpenSSH prints when the host's key is not the pinned one


def known_hosts_line(host: str, host_key: str, port: int = SSH_PORT) -> str:
    """The known_hosts entry pinning `host` (at `port`: OpenSSH's `[host]:port` form off 22) to `host_key`."""
    try:
        key = check_host_key(host_key)
    except ValueError as e:
        raise ResizeError(f"the pinned SSH host key of {host} is unusable: {e}") from None
    return f"{host if port == SSH_PORT else f'[{host}]:{port}'} {key}\n"


def _private_file(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text if text.endswith("\n") else text + "\n")
    return path


def host_key_options(host: str, host_key: str | None, port: int, tmp: Path) -> list[str]:
    """ssh options that accept only the host's pinned key (a 0600 known_hosts of that one entry in `tmp`, which the
    caller removes), or, for UNPINNED, none checked. No key at all is an error: a hook never connects unverified
    by accident."""
    if host_key == UNPINNED:
        pulumi.log.warn(f"SSH to {host} without a host-key check: {_UNPINNED_WHY} "
                        "(docs/security.md, \"SSH host keys\")")
        return ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
    if not host_key:
        raise ResizeError(f"no pinned SSH host key is known for {host}: the hook does not connect unverified. "
                          "Run pulumi up once without changing this node (its host-key step reads the key), or set "
                          "its hostKey (bare metal); docs/security.md, \"SSH host keys\"")
    known = _private_file(tmp / "known_hosts", known_hosts_line(host, host_key, port))
    return ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "HostKeyAlgorithms=ssh-ed25519",
            "-o", "UpdateHostKeys=no", "-o", "CheckHostIP=no"]


async def ssh_run(host: str, user: str, private_key: str, script: str, timeout: float = SSH_TIMEOUT_SECONDS,
                  attempts: int = SSH_ATTEMPTS, *, host_key: str | None, port: int = SSH_PORT) -> str:
    """Run `script` with bash on `host` through the deployer's OpenSSH client, fed on stdin; `attempts` connections
    of 10 s at most (a machine coming back from a resize answers within minutes). `host_key`: the host's pinned
    ed25519 key, the same the program's remote commands connect with (providers/base.py ssh_connection): any
    other key fails the run (the private key and known_hosts live in a 0600 temporary directory for the run only)."""
    if not HOST.fullmatch(host or ""):
        raise ResizeError(f"no usable SSH address ({host!r}) to reach the node's K3s server")
    with tempfile.TemporaryDirectory() as tmp:
        key = _private_file(Path(tmp) / "key", private_key)
        argv = ["ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                *host_key_options(host, host_key, port, Path(tmp)), "-o", "LogLevel=ERROR",
                # A server coming back from its resize answers SSH a minute or two after power-on.
                "-o", "ConnectTimeout=10", "-o", f"ConnectionAttempts={int(attempts)}",
                *(["-p", str(int(port))] if port != SSH_PORT else []), "-l", user, "--", host,
                shell_command(user)]
        try:
            proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE,
                                                        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        except FileNotFoundError:
            raise ResizeError("the deployer has no OpenSSH client (ssh): install it to resize nodes in place") from None
        try:
            out, err = await asyncio.wait_for(proc.communicate(script.encode()), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            raise ResizeError(f"the script on {host} did not finish within {timeout:.0f}s") from None
    if proc.returncode:
        text = err.decode(errors="replace")
        if KEY_MISMATCH in text:
            raise ResizeError(
                f"{host} did not present its pinned SSH host key ({host_key}): nothing was run there. If the host "
                "was rebuilt or its address moved on purpose, re-pin it (docs/security.md, \"SSH host keys\": a new "
                "hostKey for bare metal, else pulumi up --replace the node's host-key-<node> command); if not, stop: "
                "something else answers at that address")
        tail = "\n".join(text.strip().splitlines()[-8:])
        raise ResizeError(f"the script on {host} failed (exit {proc.returncode}):\n{tail}")
    return out.decode()


async def _resolve(value: pulumi.Input[str]) -> str:
    return await value.future() if isinstance(value, pulumi.Output) else value  # type: ignore[return-value]


@dataclass(frozen=True)
class Reach:
    """Where a hook's scripts run: the SSH address and user, and the host key pinned for that address (UNPINNED:
    none can be had, see ssh_run)."""

    host: pulumi.Input[str]
    user: pulumi.Input[str]
    host_key: pulumi.Input[str] | None


# Where the scripts of a node run, from the server's outputs before the update (a server's own address is not
# awaitable while it updates: its outputs resolve after the update).
Where = Callable[[Mapping[str, Any] | None], Reach]
HostOf = Callable[[Mapping[str, Any] | None], pulumi.Input[str]]


def _run_on(where: Where, private_key: pulumi.Input[str], outputs: Mapping[str, Any] | None,
            timeout: float = SSH_TIMEOUT_SECONDS, attempts: int = SSH_ATTEMPTS) -> Runner:
    async def run(script: str) -> str:
        reach = where(outputs)
        host = await _resolve(reach.host)
        host_key = None if reach.host_key is None else await _resolve(reach.host_key)
        if host_key == RECORDED:
            host_key = RECORDED_KEYS.key_for(host, UNPINNED)
        return await ssh_run(host, await _resolve(reach.user), await _resolve(private_key),
                             script, timeout, attempts, host_key=host_key)
    return run


def output_path(*path: str | int) -> HostOf:
    """The address at `path` in the server's own outputs (e.g. Hetzner's `ipv4Address`)."""
    return lambda outputs: _at(outputs, path) or ""


@dataclass
class DrainServer:
    """The K3s server an agent's scripts run on: the cluster's first server. The K3s layer names it (`use`) while
    the program runs, after every provider has bound its hooks; the hooks read it when they fire, after the whole
    program has run. `host_key`: that server's pinned key, its connection's (providers/base.py ssh_connection: the
    output of its host-key step, or its configured hostKey): an agent's hook waits for it, never on its own machine,
    and the first server's own step waits for nothing of an agent or a firewall rule's update."""

    host: pulumi.Input[str] | None = None
    user: pulumi.Input[str] | None = None
    host_key: pulumi.Input[str] | None = None

    def use(self, host: pulumi.Input[str], user: pulumi.Input[str], host_key: pulumi.Input[str] | None) -> None:
        self.host, self.user, self.host_key = host, user, host_key

    def of(self, target: ResizeTarget) -> Reach:
        return self.reach(f"drain {target.node} from", "before resizing")

    def reach(self, purpose: str, when: str) -> Reach:
        """The server's SSH address, user and pinned key; `purpose` and `when` word the error where none is known."""
        if self.host is None or self.user is None:
            raise ResizeError(f"no K3s server is known to {purpose}: the program did not reach its K3s layer; "
                              f"drain the node by hand {when}")
        return Reach(self.host, self.user, self.host_key)


TURNS = PoolTurns()  # the deploying process's turns: one program run per process
DRAIN_SERVER = DrainServer()  # the deploying process's cluster: one program run per process


def where_scripts_run(target: ResizeTarget, *, server: bool, own_address: HostOf, user: str,
                      drain_server: DrainServer = DRAIN_SERVER) -> Where:
    """A K3s server runs its own scripts (with its provider's SSH user); an agent's run on the cluster's first
    server (with that server's user)."""
    if server:
        # Its own pinned key would come from its host-key step, whose output resolves only after this very update
        # (it depends on the machine): waiting for it would deadlock the hook. The previous run recorded it.
        return lambda outputs: Reach(own_address(outputs), user, RECORDED)
    return lambda _outputs: drain_server.of(target)


def resize_hooks(target: ResizeTarget, *, server: bool, own_address: HostOf, user: str,
                 private_key: pulumi.Input[str]) -> pulumi.ResourceHookBinding:
    """The hooks of one server resource. `own_address`: the node's address from its outputs (used when the
    node is a K3s server, with `user`); an agent's scripts run on DRAIN_SERVER."""
    hooks = ResizeHooks(target, TURNS)
    where = where_scripts_run(target, server=server, own_address=own_address, user=user)

    async def before(args: pulumi.ResourceHookArgs) -> None:
        await hooks.before(args.old_inputs, args.new_inputs, _run_on(where, private_key, args.old_outputs))

    async def after(args: pulumi.ResourceHookArgs) -> None:
        await hooks.after(args.old_inputs, args.new_inputs, _run_on(where, private_key, args.new_outputs))

    return pulumi.ResourceHookBinding(
        before_update=[pulumi.ResourceHook(f"resize-drain-{target.node}", before)],
        after_update=[pulumi.ResourceHook(f"resize-return-{target.node}", after)])
