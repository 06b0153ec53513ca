"""install.sh re-run after a run that stopped half way: the scripts run against stub commands under a temporary root
(test_k3s_staging.py's Node), with a systemctl whose start or restart of K3s fails where the test says."""

from __future__ import annotations

import pytest

from tests.test_k3s_staging import CONFIGURED, SYSTEMCTL, Node

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
