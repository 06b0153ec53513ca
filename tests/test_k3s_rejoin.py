"""control-plane-1 rebuilt empty (its machine replaced: a lost location, a dead machine) joins the running cluster
instead of initialising a second one. Its install script runs here against stub commands under a temporary root, as
in test_k3s_staging.py; the probe of the API endpoint answers or not, and the server has etcd data or not."""

from __future__ import annotations

import pytest
import yaml

from tests.test_k3s_staging import API_CURL, CMD, Node

ETCD_DIR = "var/lib/rancher/k3s/server/db/etcd"
ETCD_DATA = f"{ETCD_DIR}/member/wal"  # K3s' own test of a member's data (pkg/etcd/etcd.go IsInitialized)
# The probe of the API endpoint (curl -skf ... /cacerts) answers unless PROBE=down, or from its try number
# PROBE_FROM on (a lost request first: PROBE=down PROBE_FROM=2); other downloads as the stub's.
CURL = """#!/bin/sh
echo "curl $*" >>"$STATE/log"
case "$*" in *"-o /dev/null"*"/cacerts"*)
  echo x >>"$STATE/probes"
  [ "${PROBE:-up}" = up ] && exit 0
  [ -n "${PROBE_FROM:-}" ] && [ "$(wc -l <"$STATE/probes")" -ge "$PROBE_FROM" ] && exit 0
  exit 7 ;;
esac
""" + API_CURL


class FirstServer(Node):
    def __init__(self, tmp, production):
        super().__init__(tmp, production)
        (self.bin / "curl").write_text(CURL)
        self.scripts = {"stage": production.named("stage-k3s-control-plane-1", CMD).inputs["stdin"],
                        "install": production.named("k3s-control-plane-1", CMD).inputs["stdin"].value}
        (self.root / "var/lib/rancher/k3s/server/tls").mkdir(parents=True)  # the PKI the install narrows

    def config(self) -> dict:
        return yaml.safe_load((self.root / "etc/rancher/k3s/config.yaml").read_text())


@pytest.fixture
def first(tmp_path, production):
    return FirstServer(tmp_path, production)


def test_a_first_server_rebuilt_empty_joins_the_running_cluster(first):
    log = first.run("install")
    assert "/cacerts" in log and "no etcd data: joining it" in log
    config = first.config()
    assert config["server"] == "https://10.0.1.254:6443", "it joins at the endpoint it probed, the API balancer"
    assert "cluster-init" not in config, "no second cluster"
    assert config["node-name"] == "adp-production-control-plane-1" and config["token"]
    assert first.state_of("k3s") == (True, True)


def test_a_first_deploy_and_a_server_with_etcd_data_keep_their_own_config(first):
    fresh = first.run("install", PROBE="down")
    assert "/cacerts" in fresh and "joining" not in fresh, "nothing answers yet: the first deploy initialises"
    assert first.config()["cluster-init"] is True and "server" not in first.config()
    (first.root / ETCD_DATA).mkdir(parents=True)
    member = first.run("install")
    assert "/cacerts" not in member, "a server holding etcd data is a member: nothing to probe"
    assert first.config()["cluster-init"] is True and "server" not in first.config()


def test_a_first_server_whose_join_failed_joins_again_instead_of_starting_a_second_cluster(first):
    """K3s writes its etcd member name (db/etcd/name) before it joins (pkg/etcd/etcd.go Register, setName); a join
    that fails (an old member of the same name left: 'duplicate node name found') leaves that directory with no WAL.
    The next run, the one its message asks for, must join again: cluster-init there starts an empty second cluster
    (K3s' Start: not initialised, no server) behind the same balancer."""
    (first.root / ETCD_DIR).mkdir(parents=True)
    (first.root / ETCD_DIR / "name").write_text("adp-production-control-plane-1-0123abcd")
    log = first.run("install")
    assert "no etcd data: joining it" in log
    assert first.config()["server"] == "https://10.0.1.254:6443" and "cluster-init" not in first.config()


def test_one_lost_probe_of_a_running_cluster_does_not_start_a_second_one(first):
    log = first.run("install", PROBE="down", PROBE_FROM="2")
    assert log.count("curl -skf") == 2 and "sleep 2" in log and "joining it" in log
    assert first.config()["server"] == "https://10.0.1.254:6443" and "cluster-init" not in first.config()


def test_a_server_that_was_joining_never_initialises_when_the_probe_fails(first):
    """An earlier run found the cluster and wrote the join config; the join has not completed (no WAL) and now the
    probe fails three times: it joins again (K3s retries the endpoint) rather than start a cluster beside it."""
    first.run("install")
    log = first.run("install", PROBE="down")
    assert log.count("curl -skf") == 3, "three tries before the probe counts as unanswered"
    assert "was joining the running cluster: joining it again" in log
    assert first.config()["server"] == "https://10.0.1.254:6443" and "cluster-init" not in first.config()


def test_only_the_initialising_servers_script_carries_a_join_config(production):
    """The other nodes' scripts, and so their K3s installs' triggers, are unchanged by it."""
    from tests.conftest import script_param
    first = production.named("k3s-control-plane-1", CMD).inputs["stdin"].value
    assert yaml.safe_load(script_param(first, "K3S_JOIN_CONFIG"))["server"] == "https://10.0.1.254:6443"
    for other in ("k3s-control-plane-2", "k3s-general-1"):
        assert "K3S_JOIN_CONFIG=" not in production.named(other, CMD).inputs["stdin"].value
