"""K3s staging (issue 22): every node downloads K3s in parallel right after its tuning (stage.sh), so the serial
etcd joins (install.sh) only configure and start it. The scripts run here against stub commands (systemctl, curl,
the upstream installer) under a temporary root; the stub installer follows the upstream install.sh's documented
switches (INSTALL_K3S_SKIP_DOWNLOAD/SKIP_ENABLE/SKIP_START/FORCE_RESTART, and its "no change, no start")."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from components.k3s import STAGED_INSTALLER
from tests.conftest import script_param
from tests import stubs

CMD = "command:remote:Command"
AGENT = "general-1"
CONFIGURED = "v1.36.4+k3s1"

# `systemctl`: unit state as files in $STATE (enabled-<unit>, active-<unit>); every call logged.
SYSTEMCTL = """#!/bin/sh
echo "systemctl $*" >>"$STATE/log"
case "$1" in
  is-enabled) [ -f "$STATE/enabled-$3" ] ;;
  is-active) [ -f "$STATE/active-$3" ] ;;
  start|restart) touch "$STATE/active-$2" ;;
  stop) rm -f "$STATE/active-$2" ;;
esac
"""
# `curl`: every request logged (a config read on stdin, -K -, kept in $STATE/curl-config); the K3s servers answer
# join_version's requests (the control-plane Nodes run the versions in $STATE/servers, default CONFIGURED; none
# with $STATE/api-down); any other URL serves the stub installer.
API_CURL = """
case "$*" in *"-K -"*) cat >"$STATE/curl-config" ;; esac
while [ $# -gt 0 ]; do
  if [ "$1" = -o ]; then out=$2; fi
  url=$1
  shift
done
case "$url" in
  */cacerts) echo ca >"$out"; exit 0 ;;
  */v1-k3s/client-kube-proxy.crt) echo cert >"$out"; exit 0 ;;
  */api/v1/nodes*)
    [ -f "$STATE/api-down" ] && exit 22
    for v in $(cat "$STATE/servers" 2>/dev/null || echo v1.36.4+k3s1); do
      printf '{"nodeInfo": {"kubeletVersion": "%s"}}\n' "$v"
    done >"$out"
    exit 0 ;;
esac
cp "$STATE/installer.sh" "$out"
"""
CURL = '#!/bin/sh\necho "curl $*" >>"$STATE/log"\n' + API_CURL
# `openssl req`: the key and signing request files it was asked for.
OPENSSL = """#!/bin/sh
while [ $# -gt 0 ]; do
  case "$1" in -keyout|-out) echo x >"$2" ;; esac
  shift
done
"""
# The upstream installer's behaviour, as far as these scripts rely on it.
INSTALLER = """#!/bin/sh
set -e
echo "installer VERSION=${INSTALL_K3S_VERSION:-} EXEC=$INSTALL_K3S_EXEC SKIP_DOWNLOAD=${INSTALL_K3S_SKIP_DOWNLOAD:-}\
 SKIP_ENABLE=${INSTALL_K3S_SKIP_ENABLE:-} SKIP_START=${INSTALL_K3S_SKIP_START:-}\
 FORCE_RESTART=${INSTALL_K3S_FORCE_RESTART:-}" >>"$STATE/log"
name=k3s; [ "$INSTALL_K3S_EXEC" = agent ] && name=k3s-agent
unit="$ROOT/etc/systemd/system/$name.service"
before=$(cat "$BIN/k3s" "$unit" 2>/dev/null | cksum)
if [ "${INSTALL_K3S_SKIP_DOWNLOAD:-}" != true ]; then
  printf '#!/bin/sh\\necho "k3s version %s (0000000)"\\n' "$INSTALL_K3S_VERSION" >"$BIN/k3s"
  chmod 755 "$BIN/k3s"
fi
[ -x "$BIN/k3s" ] || { echo "Executable k3s binary not found" >&2; exit 1; }
rm -f "$STATE/enabled-$name"  # systemd_disable
mkdir -p "$(dirname "$unit")"
echo "ExecStart=$BIN/k3s $INSTALL_K3S_EXEC" >"$unit"
[ "${INSTALL_K3S_SKIP_ENABLE:-}" = true ] && exit 0
touch "$STATE/enabled-$name"
[ "${INSTALL_K3S_SKIP_START:-}" = true ] && exit 0
after=$(cat "$BIN/k3s" "$unit" | cksum)
if [ "$before" = "$after" ] && [ "${INSTALL_K3S_FORCE_RESTART:-}" != true ]; then
  echo "No change detected so skipping service start" >&2; exit 0
fi
touch "$STATE/active-$name"
"""


class Node:
    """One agent node under a temporary root: run its rendered scripts, read back what they did."""

    def __init__(self, tmp: Path, production):
        self.root, self.bin, self.state = tmp / "root", tmp / "bin", tmp / "state"
        for d in (self.root, self.bin, self.state):
            d.mkdir()
        for name, body in (("systemctl", SYSTEMCTL), ("curl", CURL), ("cloud-init", "#!/bin/sh\nexit 0\n"),
                           ("pgrep", "#!/bin/sh\nexit 1\n"), ("openssl", OPENSSL),
                           ("sleep", '#!/bin/sh\necho "sleep $*" >>"$STATE/log"\n')):
            (self.bin / name).write_text(body)
            (self.bin / name).chmod(0o755)
        (self.state / "installer.sh").write_text(INSTALLER)
        self.scripts = {"stage": production.named(f"stage-k3s-{AGENT}", CMD).inputs["stdin"],
                        "install": production.named(f"k3s-{AGENT}", CMD).inputs["stdin"].value}

    def pin(self, digest: str) -> None:
        """cluster.k3sInstallerSha256 set to `digest` (the parameter as the program renders it)."""
        for name, text in self.scripts.items():
            assert "readonly INSTALLER_SHA256=''" in text
            self.scripts[name] = text.replace("readonly INSTALLER_SHA256=''", f"readonly INSTALLER_SHA256={digest}")

    def run(self, script: str, ok: bool = True, clock: int | None = None, **stub_env: str) -> str:
        """`clock`: run under tests/stubs.py's fake clock, each pause moving SECONDS on by that many seconds."""
        text = self.scripts[script].replace("/etc/", f"{self.root}/etc/").replace("/var/lib/", f"{self.root}/var/lib/")
        if clock is not None:
            text = stubs.with_fake_clock(text, clock)
        env = {"PATH": f"{self.bin}:/usr/bin:/bin", "STATE": str(self.state), "ROOT": str(self.root),
               "BIN": str(self.bin), **stub_env}
        (self.state / "log").write_text("")
        done = subprocess.run(["bash", "-s"], input=text, env=env, capture_output=True, text=True, timeout=60)
        assert (done.returncode == 0) == ok, done.stderr
        return (self.state / "log").read_text() + done.stderr

    def running(self, version: str) -> None:
        """K3s `version` installed and started the ordinary way (enabled unit, running service)."""
        (self.bin / "k3s").write_text(f'#!/bin/sh\necho "k3s version {version} (0000000)"\n')
        (self.bin / "k3s").chmod(0o755)
        (self.root / "etc/systemd/system").mkdir(parents=True)
        (self.root / "etc/systemd/system/k3s-agent.service").write_text("unit\n")
        for state in ("enabled", "active"):
            (self.state / f"{state}-k3s-agent").touch()

    def version(self) -> str:
        return subprocess.run([str(self.bin / "k3s"), "--version"], capture_output=True, text=True).stdout.split()[2]

    def state_of(self, unit: str = "k3s-agent") -> tuple[bool, bool]:
        return (self.state / f"enabled-{unit}").exists(), (self.state / f"active-{unit}").exists()


@pytest.fixture
def node(tmp_path, production):
    return Node(tmp_path, production)


def test_staging_downloads_the_pinned_version_and_starts_nothing(node):
    log = node.run("stage")
    assert log.count("curl ") == 1 and "/k3s-io/k3s/v1.36.4%2Bk3s1/install.sh" in log
    assert f"installer VERSION={CONFIGURED} EXEC=agent SKIP_DOWNLOAD= SKIP_ENABLE=true SKIP_START=true" in log
    assert node.version() == CONFIGURED and node.state_of() == (False, False), "staged: neither enabled nor started"
    assert (node.root / STAGED_INSTALLER.lstrip("/")).exists(), "the join re-runs the kept installer"
    again = node.run("stage")
    assert "curl" not in again and "installer" not in again, "a staged node is not staged again"


def test_a_failed_download_leaves_no_partial_installer_and_the_next_run_stages(node):
    good = (node.bin / "curl").read_text()
    (node.bin / "curl").write_text("#!/bin/sh\necho 'curl: (22) 503' >&2\nexit 22\n")
    done = subprocess.run(["bash", "-s"], input=node.scripts["stage"].replace("/var/lib/", f"{node.root}/var/lib/"),
                          env={"PATH": f"{node.bin}:/usr/bin:/bin", "STATE": str(node.state)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "downloading the k3s v1.36.4+k3s1 installer from " in done.stderr
    assert "curl: (22) 503" in done.stderr, "curl says why"
    assert not list((node.root / STAGED_INSTALLER.lstrip("/")).parent.iterdir()), "no partial installer left"
    (node.bin / "curl").write_text(good)
    node.run("stage")
    assert node.version() == CONFIGURED


def test_the_join_starts_a_staged_node_without_downloading(node):
    node.run("stage")
    log = node.run("install")
    assert "install.sh" not in log and "installer VERSION=v" not in log, "the serial join downloads nothing"
    assert "installer VERSION= EXEC=agent SKIP_DOWNLOAD=true SKIP_ENABLE= SKIP_START= FORCE_RESTART=true" in log
    # A staged node has the binary and the unit file: only the enabled unit tells it was never started.
    assert node.state_of() == (True, True) and node.version() == CONFIGURED
    assert node.run("install").count("installer") == 0, "idempotent: a second join changes nothing"


def test_a_node_nothing_staged_stages_and_joins_in_one_go(node):
    """Autoscaled nodes (cloud-init runs install.sh alone) and nodes whose staging predates a version change."""
    log = node.run("install")
    assert log.count("curl -sSfL") == 1 and "SKIP_ENABLE=true SKIP_START=true" in log and "FORCE_RESTART=true" in log
    assert node.state_of() == (True, True) and node.version() == CONFIGURED


def test_a_running_node_keeps_its_version(node):
    node.running("v1.35.6+k3s1")
    log = node.run("stage")
    assert "curl" not in log and "installer" not in log, "staging leaves a running node alone"
    node.run("install")  # writes its configuration: a restart, never an installer run
    log = node.run("install")
    assert "curl" not in log and "installer" not in log
    assert "restart" not in log and " start " not in log, "same configuration: nothing changes"
    assert node.version() == "v1.35.6+k3s1" and node.state_of() == (True, True)


def test_staging_carries_no_secret_and_the_join_no_download(production):
    stage = production.named(f"stage-k3s-{AGENT}", CMD)
    assert isinstance(stage.inputs["stdin"], str), "no secret in the staging script: logged like tuning"
    assert script_param(stage.inputs["stdin"], "K3S_VERSION") == CONFIGURED
    join = production.named(f"k3s-{AGENT}", CMD).inputs["stdin"].value
    body = join[join.index("main() {"):]
    assert "INSTALL_K3S_SKIP_DOWNLOAD=true" in body and "stage_k3s" in body


def test_a_pinned_installer_runs_only_with_its_sha256(node):
    """cluster.k3sInstallerSha256: the downloaded install.sh is checked before it runs as root."""
    node.pin(hashlib.sha256(INSTALLER.encode()).hexdigest())
    log = node.run("stage")
    assert f"installer VERSION={CONFIGURED}" in log and node.version() == CONFIGURED


@pytest.mark.parametrize("script", ["stage", "install"])  # install: an autoscaled node stages in its join
def test_an_installer_with_another_sha256_is_refused_before_it_runs(node, script):
    node.pin("0" * 64)
    log = node.run(script, ok=False)
    assert "does not have the sha256 of adplatform:cluster.k3sInstallerSha256" in log
    assert "installer VERSION" not in log and not (node.bin / "k3s").exists(), "nothing of it ran"
    assert not list((node.root / "var/lib").rglob("install.sh*")), "no installer kept for a later join"
    assert node.state_of() == (False, False)


def test_the_pin_reaches_every_nodes_scripts_and_autoscaled_nodes():
    from components.k3s import install_script, stage_script
    from components.k3s.userdata import JoinSettings, group_spec, setup_scripts
    from config.model import Pool
    from providers.base import ClusterProfile
    digest = "ab" * 32
    profile = ClusterProfile(k3s_disable=(), external_cloud_provider=True, cilium_values={})
    join = JoinSettings(CONFIGURED, "10.0.1.2", "token", profile, "10.244.0.0/16", "10.96.0.0/16", (), "hetzner",
                        k3s_installer_sha256=digest)
    spec = group_spec("general", Pool(name="general", role="general", autoscaling={"min": 0, "max": 2}), None,
                      "hetzner")
    for script in (stage_script(spec, "n", CONFIGURED, digest), install_script(spec, "n", CONFIGURED, "", "", digest, join_url="", agent_token=""),
                   setup_scripts(spec, join, "token", "10.0.1.2")["k3s-install.sh"]):
        assert script_param(script, "INSTALLER_SHA256") == digest


def test_the_pin_must_be_a_sha256():
    from config.model import Cluster
    assert Cluster.model_validate({"k3sInstallerSha256": "ab" * 32}).k3s_installer_sha256 == "ab" * 32
    with pytest.raises(ValueError, match="must be the sha256 of install.sh at cluster.k3sVersion's tag"):
        Cluster.model_validate({"k3sInstallerSha256": "AB" * 32 + "; rm -rf /"})
