"""K3s upgrades: the system-upgrade-controller from its pinned release, and the two Plans that roll
servers one at a time, then agents (drained, bounded concurrency), at the stack's K3s version."""

from __future__ import annotations

import pulumi
import pytest

from config import ConfigError, load
from config.services import Reboots
from tests.conftest import SECRET_KEYS, base_raw

from components.charts import K3S_VERSION, SYSTEM_UPGRADE_CONTROLLER
from components.services import upgrades

PLAN = "kubernetes:upgrade.cattle.io/v1:Plan"
CONFIG_FILE = "kubernetes:yaml/v2:ConfigFile"


def _names(run, resource):
    return {run.by_urn(u).name for u in resource.dependencies}


def test_controller_from_the_pinned_release_crds_first(production):
    crds = production.named("system-upgrade-controller-crds", CONFIG_FILE)
    controller = production.named("system-upgrade-controller", CONFIG_FILE)
    base = "https://github.com/rancher/system-upgrade-controller/releases/download/v0.20.1/"
    assert SYSTEM_UPGRADE_CONTROLLER.version == "v0.20.1"
    assert crds.inputs["file"] == base + "crd.yaml"
    assert controller.inputs["file"] == base + "system-upgrade-controller.yaml"
    assert "system-upgrade-controller-crds" in _names(production, controller)


def test_servers_one_at_a_time_cordoned_at_the_stack_version(production):
    spec = production.named("upgrade-plan-server-plan", PLAN).inputs["spec"]
    assert spec["concurrency"] == 1 and spec["cordon"] is True and "drain" not in spec
    assert spec["version"] == K3S_VERSION
    assert spec["upgrade"]["image"] == "rancher/k3s-upgrade:v1.36.4-k3s1"
    assert spec["nodeSelector"]["matchExpressions"] == [
        {"key": "node-role.kubernetes.io/control-plane", "operator": "In", "values": ["true"]}]
    assert spec["tolerations"] == [{"key": "CriticalAddonsOnly", "operator": "Equal", "value": "true",
                                    "effect": "NoExecute"}]


def test_agents_after_the_servers_drained_with_bounded_concurrency(production, staging):
    spec = production.named("upgrade-plan-agent-plan", PLAN).inputs["spec"]
    assert spec["prepare"]["args"] == ["prepare", "server-plan"], "agents wait for the server plan"
    assert spec["drain"]["force"] is True and spec["drain"]["ignoreDaemonSets"] is True
    assert spec["drain"].get("disableEviction") is not True, "eviction honours PodDisruptionBudgets"
    assert spec["nodeSelector"]["matchExpressions"] == [
        {"key": "node-role.kubernetes.io/control-plane", "operator": "DoesNotExist"}]
    assert spec["version"] == K3S_VERSION and spec["upgrade"]["image"] == spec["prepare"]["image"]
    assert spec["concurrency"] == 1, "production: one agent at a time"
    assert staging.named("upgrade-plan-agent-plan", PLAN).inputs["spec"]["concurrency"] == 2


def test_agent_plan_tolerates_exactly_the_pool_taints(production):
    spec = production.named("upgrade-plan-agent-plan", PLAN).inputs["spec"]
    tolerated = {(t["key"], t["value"], t["effect"]) for t in spec["tolerations"]}
    assert all(t["operator"] == "Equal" for t in spec["tolerations"])
    assert ("adplatform.io/dedicated", "scylladb", "NoSchedule") in tolerated
    assert all(key == "adplatform.io/dedicated" for key, _, _ in tolerated)
    assert len(tolerated) == len(spec["tolerations"]) >= 3, "each pool taint once"


def test_plans_wait_for_the_controller_and_the_server_plan(production):
    server = production.named("upgrade-plan-server-plan", PLAN)
    agent = production.named("upgrade-plan-agent-plan", PLAN)
    assert {"system-upgrade-controller", "system-upgrade-controller-crds"} <= _names(production, server)
    assert {"system-upgrade-controller", "upgrade-plan-server-plan"} <= _names(production, agent)
    assert server.inputs["metadata"]["namespace"] == agent.inputs["metadata"]["namespace"] == "system-upgrade"


def test_upgrade_namespace_is_the_manifests_but_default_deny_is_ours(production):
    assert not [r for r in production.of_type("kubernetes:core/v1:Namespace")
                if r.inputs["metadata"]["name"] == "system-upgrade"], "one owner for the namespace"
    policies = {r.inputs["metadata"]["name"] for r in production.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
                if r.inputs["metadata"]["namespace"] == "system-upgrade"}
    assert policies == {"default-deny", "allow-dns", "allow-same-namespace", "allow-kubernetes-api"}


def _transform(type_, props):
    opts = pulumi.ResourceOptions()
    return upgrades.resource_limits(pulumi.ResourceTransformArgs(True, type_, "x", props, opts))


def test_controller_container_gets_requests_and_a_memory_limit():
    deployment = {"metadata": {"name": "system-upgrade-controller"},
                  "spec": {"template": {"spec": {"containers": [{"name": "system-upgrade-controller"}]}}}}
    result = _transform("kubernetes:apps/v1:Deployment", deployment)
    (container,) = result.props["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    assert container["resources"]["limits"]["memory"]
    assert _transform("kubernetes:core/v1:Namespace", {"metadata": {"name": "system-upgrade"}}) is None
    assert _transform("kubernetes:apps/v1:Deployment", {"metadata": {"name": "other"}}) is None


def test_toleration_of_a_taint_without_value():
    assert upgrades.toleration("example.com/gpu:NoSchedule") == {
        "key": "example.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def test_servers_upgrade_only_outside_the_reboot_window_with_margins(production):
    """kured's lock is kured's alone: a server upgraded while kured reboots another would take two etcd members
    down. Default reboots mon-thu 02:00-05:00 UTC: server upgrades start from 06:00 until 00:00, every day."""
    window = production.named("upgrade-plan-server-plan", PLAN).inputs["spec"]["window"]
    assert window == {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "startTime": "06:00",
                      "endTime": "00:00", "timeZone": "UTC"}
    assert "window" not in production.named("upgrade-plan-agent-plan", PLAN).inputs["spec"], \
        "agents are drained by eviction: budgets hold whatever kured does"


@pytest.mark.parametrize("start, end, zone, expected", [
    ("22:00", "01:30", "Europe/Berlin", ("02:30", "20:00")),  # a reboot window over midnight
    ("01:00", "03:00", "UTC", ("04:00", "23:00")),
    ("09:00", "05:00", "UTC", ("06:00", "07:00")),  # the longest: 20 hours of reboots leave an hour
])
def test_the_server_window_never_meets_the_reboot_window(start, end, zone, expected):
    reboots = Reboots(start=start, end=end, time_zone=zone)
    window = upgrades.server_window(reboots)
    assert (window["startTime"], window["endTime"], window["timeZone"]) == (*expected, zone)
    minutes = lambda clock: int(clock[:2]) * 60 + int(clock[3:])  # noqa: E731
    reboot = {m % 1440 for m in range(minutes(start), minutes(start) + (minutes(end) - minutes(start)) % 1440)}
    upgrade = {m % 1440 for m in range(minutes(expected[0]) - 60,
                                       minutes(expected[0]) + (minutes(expected[1]) - minutes(expected[0])) % 1440
                                       + 120)}
    assert not reboot & upgrade, "an hour after reboots end, two hours before they start"


def test_without_reboots_servers_upgrade_at_any_time():
    assert upgrades.server_window(Reboots(enabled=False)) is None
    assert "window" not in upgrades.server_plan("v1.36.4+k3s1", Reboots(enabled=False))


def test_a_reboot_window_that_leaves_upgrades_no_hour_is_refused_naming_the_key():
    with pytest.raises(ConfigError) as err:
        load("test", {**base_raw(), "clusterServices": {"reboots": {"start": "08:00", "end": "05:00"}}}, SECRET_KEYS)
    assert "adplatform:clusterServices.reboots" in str(err.value) and "08:00-05:00" in str(err.value)
    assert "at most 20 hours" in str(err.value)
