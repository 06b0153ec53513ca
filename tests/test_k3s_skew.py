"""Kubernetes' version-skew policy on a K3s upgrade: a kubelet is never newer than an API server, and the upgrade jobs'
kubectl is within one minor of the cluster.

A node joining a running cluster reads the servers' version with its agent token (k3s-lib.sh join_version) and starts
the older of theirs and the configured one, so a node added in the `pulumi up` that raises cluster.k3sVersion, or by
the autoscaler before the server plan ran, joins at the servers' version; the Plans then upgrade it. Its install
script runs here against stub commands under a temporary root (test_k3s_staging.py's Node and stub K3s servers)."""

from __future__ import annotations

import re

import pulumi
import pytest

from components import charts
from components.k3s.userdata import JoinSettings, group_spec, setup_scripts
from components.services import upgrades
from config.model import Pool
from providers.base import ClusterProfile
from tests import validators
from tests.conftest import script_param
from tests.test_k3s_staging import CMD, CONFIGURED, Node

OLDER = "v1.35.8+k3s1"


@pytest.fixture
def node(tmp_path, production):
    return Node(tmp_path, production)


def servers(node: Node, *versions: str) -> None:
    """The control-plane Nodes' kubeletVersion as the stub API lists them."""
    (node.state / "servers").write_text("\n".join(versions) + "\n")


def test_a_node_joining_servers_that_run_an_older_version_starts_theirs(node):
    """k3sVersion raised in the same `pulumi up` that adds the node: the Plans have not upgraded every server yet."""
    servers(node, CONFIGURED, OLDER, CONFIGURED)  # mid-rollout: the oldest server counts
    node.run("stage")  # staged at the configured version in parallel, before the join
    log = node.run("install")
    assert f"the servers run k3s {OLDER}, older than the configured {CONFIGURED}: joining at {OLDER}" in log
    assert f"installer VERSION={OLDER} EXEC=agent" in log, "re-staged at the servers' version"
    assert node.version() == OLDER and node.state_of() == (True, True)
    # The next runs leave it to the Plans (it runs K3s now: never re-installed).
    again = node.run("install")
    assert "installer" not in again and f"k3s {OLDER} runs here, {CONFIGURED} is configured" in again


@pytest.mark.parametrize("running", [CONFIGURED, "v1.37.1+k3s1"])
def test_a_node_joining_servers_at_or_above_the_configured_version_starts_the_configured_one(node, running):
    servers(node, running)
    node.run("stage")
    log = node.run("install")
    assert "installer VERSION=v" not in log, "the staged configured binary starts: nothing downloaded"
    assert node.version() == CONFIGURED


def test_the_agent_token_reaches_curl_on_stdin_never_on_its_command_line(node, production):
    token = script_param(production.named("k3s-general-1", CMD).inputs["stdin"].value, "AGENT_TOKEN")
    assert len(token) == 48
    node.run("install")
    assert token not in (node.state / "log").read_text(), "the command lines logged"
    assert (node.state / "curl-config").read_text() == f'user = "node:{token}"\n'


@pytest.mark.parametrize("reported", ["v1.35.8+k3s1$(reboot)", "1.35.8", "v1.35.8+k3s1 --help", "v1.35+k3s1"])
def test_a_version_that_is_not_a_k3s_release_is_refused_before_it_reaches_the_installer(node, reported):
    servers(node, reported)
    log = node.run("install", ok=False)
    assert "not a K3s release (vX.Y.Z+k3sN)" in log
    # An answer, not an unreachable API: refused at once, not asked again until the deadline.
    assert log.count("/api/v1/nodes") == 1 and "sleep" not in log
    assert "not installing k3s v1.36.4+k3s1 beside a server whose version cannot be compared with it" in log
    assert "installer VERSION" not in log and node.state_of() == (False, False), "nothing installed or started"


def test_servers_whose_version_cannot_be_read_fail_the_join_after_ten_minutes(node):
    # A wall-clock deadline, not a count of tries: on a first deploy the balancer may not route to the first server yet
    # and its Node is labelled only after its kubelet registered. Under a fake clock each pass costs 60 s: asked at
    # 0, 60, ..., 600 s, then it gives up.
    (node.state / "api-down").touch()
    log = node.run("install", ok=False, clock=60)
    assert log.count("/api/v1/nodes") == 11
    assert "the Kubernetes API at https://10.0.1.254:6443 did not list the control-plane Nodes" in log
    assert "cannot read the K3s version of the servers at https://10.0.1.254:6443 for 600s" in log
    assert "not installing k3s v1.36.4+k3s1, which may be newer" in log
    assert "installer VERSION" not in log and node.state_of() == (False, False)


def test_the_initialising_server_asks_no_one_and_every_other_node_asks_its_join_endpoint(production):
    def param(name: str, key: str) -> str:
        return script_param(production.named(name, CMD).inputs["stdin"].value, key)
    assert param("k3s-control-plane-1", "JOIN_URL") == ""  # a rebuilt one asks the endpoint it probed (below)
    assert param("k3s-control-plane-2", "JOIN_URL") == "https://10.0.1.254:6443"
    assert param("k3s-general-1", "JOIN_URL") == "https://10.0.1.254:6443"


def test_a_rebuilt_first_server_joins_at_the_servers_version(tmp_path, production):
    from tests.test_k3s_rejoin import FirstServer
    server = FirstServer(tmp_path, production)
    servers(server, OLDER)
    log = server.run("install")
    assert "no etcd data: joining it" in log and f"installer VERSION={OLDER} EXEC=server" in log


def test_an_autoscaled_node_asks_the_api_endpoint_with_its_agent_token_and_passes_shellcheck():
    profile = ClusterProfile(k3s_disable=(), external_cloud_provider=True, cilium_values={})
    join = JoinSettings(CONFIGURED, "10.0.1.2", "agent-token", profile, "10.244.0.0/16", "10.96.0.0/16", (), "hetzner")
    spec = group_spec("general", Pool(name="general", role="general", autoscaling={"min": 0, "max": 2}), None,
                      "hetzner")
    script = setup_scripts(spec, join, "agent-token", "10.0.1.2")["k3s-install.sh"]
    assert script_param(script, "JOIN_URL") == "https://10.0.1.2:6443"
    assert script_param(script, "AGENT_TOKEN") == "agent-token"
    assert validators.shellcheck({"k3s-install.sh": script}) == ""


def _minor(version: str) -> int:
    match = re.search(r":v?1\.(\d+)\.\d+$", version) or re.match(r"v1\.(\d+)\.", version)
    assert match, version
    return int(match.group(1))


@pytest.mark.parametrize("k3s", [charts.K3S_VERSION, *charts.K3S_RELEASES])
def test_the_upgrade_jobs_kubectl_is_within_one_minor_of_every_allowed_k3s_release(k3s):
    """kubectl's skew policy: one minor older or newer than the API server (the manifest's v1.30.3 is not)."""
    assert abs(_minor(charts.SYSTEM_UPGRADE_JOB_KUBECTL_IMAGE) - _minor(k3s)) <= 1


def _transform(type_: str, props: dict):
    return upgrades.job_kubectl_image(pulumi.ResourceTransformArgs(True, type_, "x", props, pulumi.ResourceOptions()))


def test_the_controller_hands_its_jobs_the_pinned_kubectl_and_restarts_when_it_changes():
    env = {"metadata": {"name": "default-controller-env", "namespace": "system-upgrade"},
           "data": {"SYSTEM_UPGRADE_JOB_KUBECTL_IMAGE": "rancher/kubectl:v1.30.3", "SYSTEM_UPGRADE_JOB_PRIVILEGED": "true"}}
    data = _transform("kubernetes:core/v1:ConfigMap", env).props["data"]
    assert data == {"SYSTEM_UPGRADE_JOB_KUBECTL_IMAGE": charts.SYSTEM_UPGRADE_JOB_KUBECTL_IMAGE,
                    "SYSTEM_UPGRADE_JOB_PRIVILEGED": "true"}, "the manifest's other settings kept"
    deployment = {"metadata": {"name": "system-upgrade-controller"},
                  "spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}}}}
    template = _transform("kubernetes:apps/v1:Deployment", deployment).props["spec"]["template"]
    assert template["metadata"] == {"labels": {"a": "b"}, "annotations": {
        upgrades.KUBECTL_IMAGE_ANNOTATION: charts.SYSTEM_UPGRADE_JOB_KUBECTL_IMAGE}}
    assert _transform("kubernetes:core/v1:ConfigMap", {"metadata": {"name": "other"}, "data": {}}) is None
