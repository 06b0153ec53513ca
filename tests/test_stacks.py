"""Every stack file synthesizes; bad config fails before any resource is registered."""

from __future__ import annotations

import pytest

from config import ConfigError
from providers.hetzner import md5_fingerprint
from tests.conftest import UP_TO_K3S, base_raw, run_raw, stack_run
from tests.runs import stack_plan
from tools import mockrun
from tools.plan import report


@pytest.mark.parametrize("stack", mockrun.stacks())
def test_every_stack_file_synthesizes(stack):
    run = stack_run(stack)
    assert run.outputs["nodes"], "a stack without servers is not a platform"
    assert "kubeconfig" in run.secret_outputs
    assert stack_plan(stack)["policy"]["violations"] == []


def test_repository_has_the_promised_stacks():
    assert {"production", "staging"} <= set(mockrun.stacks())


def test_production_and_staging_come_up_in_one_hetzner_project(production, monkeypatch):
    """Both stack files carry the same public key, and Hetzner refuses a fingerprint twice in a project:
    staging, brought up after production in production's project, uploads no key and uses production's."""
    keys = production.of_type("hcloud:index/sshKey:SshKey")
    assert keys, "the first stack in an empty project uploads its keys"
    uploaded = [{"id": 1000 + i, "name": k.inputs["name"], "publicKey": k.inputs["publicKey"],
                 "fingerprint": md5_fingerprint(k.inputs["publicKey"]), "labels": k.inputs["labels"]}
                for i, k in enumerate(keys)]
    monkeypatch.setitem(mockrun.CALL_RESULTS, "hcloud:index/getSshKeys:getSshKeys", lambda args: {"sshKeys": uploaded})
    staging = mockrun.run_stack("staging", {"layers": UP_TO_K3S})  # keys and servers: the provider layer's
    assert not staging.of_type("hcloud:index/sshKey:SshKey")
    for server in staging.of_type("hcloud:index/server:Server"):
        assert set(server.inputs["sshKeys"]) == {str(k["id"]) for k in uploaded}, server.name


def test_invalid_config_creates_nothing():
    with pytest.raises(ConfigError) as err:
        run_raw(base_raw(cluster={"controlPlane": {"count": 2}}))
    assert "controlPlane.count must be odd" in str(err.value)
    assert mockrun.last_monitor.recorded == []


def test_provider_specific_validation_runs_before_resources():
    with pytest.raises(ConfigError) as err:
        run_raw(base_raw(cluster={"location": "fsn1", "pools": [{"name": "general", "location": "ash"}]}))
    assert "cluster.pools[general].location must be a location of network zone eu-central" in str(err.value)
    assert mockrun.last_monitor.recorded == []


def test_unknown_hetzner_location():
    with pytest.raises(ConfigError) as err:
        run_raw(base_raw(cluster={"location": "fra1"}))
    assert str(err.value.problems[0]).startswith("adplatform:cluster.location must be a Hetzner location (fsn1")


def test_hetzner_pod_cidr_must_be_routable_in_the_private_network():
    with pytest.raises(ConfigError) as err:
        run_raw(base_raw(cluster={"podCidr": "172.16.0.0/16"}))
    assert str(err.value.problems[0]) == ("adplatform:cluster.podCidr must lie inside cluster.networkCidr (10.0.0.0/8): "
                                          "Hetzner routes pod traffic through the private network, got '172.16.0.0/16'")


def test_plan_report_lists_layers_pools_and_pinned_charts(production):
    text = report.render(stack_plan("production"))
    assert "Servers by pool:" in text and "scylladb" in text and "ccx43" in text
    assert "cilium" in text and "1.20.0" in text
    assert "kubeconfig: [secret]" in text
    assert "BEGIN OPENSSH" not in text and "offline-placeholder" not in text
