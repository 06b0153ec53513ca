"""install.sh re-run after a run that stopped half way: the scripts run against stub commands under a temporary root
(test_k3s_staging.py's Node), with a systemctl whose start or restart of K3s fails where the test says."""

from __future__ import annotations

import pytest

from tests.test_k3s_rejoin import FirstServer
from tests.test_k3s_staging import CMD, CONFIGURED, SYSTEMCTL, Node

# FAIL_RESTART=1: `systemctl restart` fails (K3s exits at start, or the run stops before the restart applied).
FAILING_SYSTEMCTL = SYSTEMCTL.replace(
    'case "$1" in', 'case "$1" in\n  restart) [ -n "${FAIL_RESTART:-}" ] && exit 1; touch "$STATE/active-$2" ;;', 1)


@pytest.fixture
def running(tmp_path, production):
    """An agent whose K3s runs at the configured version, with a systemctl that can fail its restart."""
    node = Node(tmp_path, production)
    node.running(CONFIGURED)
    (node.bin / "systemctl").write_text(FAILING_SYSTEMCTL)
    return node


def test_a_config_change_whose_restart_failed_restarts_on_the_next_run(running):
    """The first run writes config.yaml (rotated keys, a new flag) and stops before K3s restarted: the retry finds the
    file unchanged, and must still restart, or K3s keeps running the old configuration."""
    failed = running.run("install", ok=False, FAIL_RESTART="1")
    assert "systemctl restart k3s-agent" in failed
    assert (running.root / "etc/rancher/k3s/config.yaml").exists(), "written before the restart"
    retry = running.run("install")
    assert "systemctl restart k3s-agent" in retry and "configuration changed" in retry
    settled = running.run("install")
    assert "restart" not in settled and "already installed and configured" in settled, "restarted once, then idempotent"


def test_a_restart_that_fails_says_why_and_fails(running):
    log = running.run("install", ok=False, FAIL_RESTART="1")
    assert "k3s-agent on adp-production-general-1 did not come up: journalctl -u k3s-agent says why" in log


def test_a_server_whose_k3s_exits_at_start_gets_the_duplicate_member_advice(tmp_path, production):
    """K3s exits at start with "duplicate node name found" while the old etcd member of a rebuilt server remains: the
    unit, and so the installer's start, fails. The run must still say how to clear it, then fail."""
    server = FirstServer(tmp_path, production)
    installer = server.state / "installer.sh"
    installer.write_text(installer.read_text().replace(
        'touch "$STATE/active-$name"', '[ -n "${FAIL_START:-}" ] && exit 1\ntouch "$STATE/active-$name"'))
    log = server.run("install", ok=False, FAIL_START="1")
    assert "did not come up: journalctl -u k3s says why" in log
    assert "duplicate node name" in log and "kubectl delete node adp-production-control-plane-1" in log
    assert "API server on" not in log, "it fails at once, not after the readiness wait"


def test_the_readiness_wait_bounds_each_request(production):
    script = production.named("k3s-control-plane-1", CMD).inputs["stdin"].value
    assert "k3s kubectl get --raw=/readyz --request-timeout=5s" in script
