"""Kernel-update reboots (issue 18): kured reboots the nodes that need it in the configured window, one node of
the whole cluster at a time, draining with disruption budgets honoured, on every node including the
database pools."""

from __future__ import annotations

import pytest

from components.charts import KURED, KURED_IMAGE
from components.k3s.lifecycle import DRAIN_TIMEOUT_SECONDS
from components.services import reboots
from config import ConfigError, load
from config.services import Reboots
from tests import variants
from tests.conftest import SECRET_KEYS, base_raw, k3s_config

RELEASE = "kubernetes:helm.sh/v3:Release"
NAMESPACE = "kubernetes:core/v1:Namespace"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
INSTALL = "command:remote:Command"


def kured(run) -> dict:
    return run.named("kured", RELEASE).inputs


def tolerates(tolerations: list[dict], taint: str) -> bool:
    """Kubernetes' matching of a toleration to a node taint 'key[=value]:Effect'."""
    key_value, effect = taint.rsplit(":", 1)
    key, _, value = key_value.partition("=")
    return any(t.get("key") in (None, key) and t.get("effect") in (None, effect)
               and (t.get("operator") == "Exists" or t.get("value", "") == value) for t in tolerations)


def test_pinned_chart_and_image(production):
    chart = kured(production)
    assert (chart["chart"], chart["version"], chart["repositoryOpts"]["repo"]) == (
        "kured", "6.1.0", "https://kubereboot.github.io/charts")
    assert (KURED.chart, KURED.version) == ("kured", "6.1.0")
    assert chart["values"]["image"] == {"repository": "ghcr.io/kubereboot/kured", "tag": "1.23.0"} == dict(
        zip(("repository", "tag"), KURED_IMAGE))
    assert chart["namespace"] == "kured" and chart["createNamespace"] is False, "our namespace, with its policies"


def test_one_node_of_the_cluster_at_a_time_never_forced(production):
    config = kured(production)["values"]["configuration"]
    # The single cluster lock with one holder: never two nodes (so never two database nodes) down at once.
    assert config["concurrency"] == 1
    assert config["lockTtl"] == 0, "a lock that expires would let a second node go while the first is still down"
    assert config["forceReboot"] is False, "a drain a disruption budget holds is retried, never forced"
    assert config["drainTimeout"] == f"{DRAIN_TIMEOUT_SECONDS}s" == "600s", "bounded, as the lifecycle drain"


def test_reboots_when_unattended_upgrades_asks(production):
    config = kured(production)["values"]["configuration"]
    assert config["rebootSentinel"] == "/var/run/reboot-required"
    assert config["useRebootSentinelHostPath"] is True


def test_default_window_production_and_staging(production, staging):
    for run in (production, staging):
        config = kured(run)["values"]["configuration"]
        assert (config["rebootDays"], config["startTime"], config["endTime"], config["timeZone"]) == (
            ["mon", "tue", "wed", "thu"], "02:00", "05:00", "UTC")


def test_window_from_config_reaches_kured():
    window = Reboots(days=["sat", "sun"], start="23:30", end="04:00", time_zone="Europe/Berlin")
    config = reboots.configuration(window)
    assert (config["rebootDays"], config["startTime"], config["endTime"], config["timeZone"]) == (
        ["sat", "sun"], "23:30", "04:00", "Europe/Berlin")


def test_runs_on_every_node_of_production_database_and_control_plane_included(production):
    tolerations = kured(production)["values"]["tolerations"]
    installs = [r.name.removeprefix("k3s-") for r in production.of_type(INSTALL)
                if r.name.startswith("k3s-") and "stdin" in r.inputs]
    taints = {t for node in installs for t in k3s_config(production, node)["node-taint"]}
    assert {"CriticalAddonsOnly=true:NoExecute", "adplatform.io/dedicated=scylladb:NoSchedule",
            "adplatform.io/dedicated=redpanda:NoSchedule"} <= taints, "the production pools are tainted"
    untolerated = sorted(t for t in taints if not tolerates(tolerations, t))
    assert not untolerated, f"kured would never run (nor reboot) nodes tainted {untolerated}"


def test_privileged_namespace_api_only(production):
    ns = production.named("ns-kured", NAMESPACE).inputs["metadata"]["labels"]
    assert ns["pod-security.kubernetes.io/enforce"] == "privileged", "hostPID and privileged to reboot the host"
    policies = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in production.of_type(NETPOL)
                if r.inputs["metadata"]["namespace"] == "kured"}
    egress = {name for name, spec in policies.items() if "egress" in spec}
    assert egress == {"allow-dns", "allow-kubernetes-api"}, "no egress but the API (and DNS, as everywhere)"
    assert policies["allow-kubernetes-api"]["egress"][0]["ports"] == [{"protocol": "TCP", "port": 6443}]
    assert policies["allow-from-monitoring"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8080}]


def test_metrics_scraped_after_the_monitoring_crds(production):
    release = production.named("kured", RELEASE)
    assert release.inputs["values"]["metrics"] == {"create": True}
    deps = {production.by_urn(u).name for u in release.dependencies}
    assert "prometheus-operator-crds" in deps, "Helm refuses the ServiceMonitor before its CRD exists"


def test_disabled_installs_nothing():
    run = variants.services_variant()  # kured off (a run shared with other files)
    assert not [r for r in run.resources if r.name in ("kured", "ns-kured")]


def problem(reboots_config: dict) -> str:
    raw = base_raw()
    raw["clusterServices"] = {**raw["clusterServices"], "reboots": reboots_config}
    with pytest.raises(ConfigError) as err:
        load("test", raw, SECRET_KEYS)
    (found,) = err.value.problems
    return str(found)


@pytest.mark.parametrize("given, expected", [
    ({"days": ["mo"]}, "adplatform:clusterServices.reboots.days must list days of mon, tue, wed, thu, fri, sat, "
                       "sun, each once (at least one), got ['mo']"),
    ({"days": ["mon", "mon"]}, "adplatform:clusterServices.reboots.days must list days"),
    ({"days": []}, "adplatform:clusterServices.reboots.days must list days"),
    ({"start": "2:00"}, "adplatform:clusterServices.reboots.start must be a time of day HH:MM (24 h), e.g. 02:00, "
                        "got '2:00'"),
    ({"end": "24:00"}, "adplatform:clusterServices.reboots.end must be a time of day HH:MM"),
    ({"end": "05:00; reboot"}, "adplatform:clusterServices.reboots.end must be a time of day HH:MM"),
    ({"timeZone": "Mars/Olympus"}, "adplatform:clusterServices.reboots.timeZone must be an IANA time zone name "
                                   "such as UTC or Europe/Berlin, got 'Mars/Olympus'"),
    ({"start": "03:00", "end": "03:00"}, "adplatform:clusterServices.reboots start and end are both '03:00'"),
    ({"window": "nightly"}, "adplatform:clusterServices.reboots has unknown key(s) 'window'"),
])
def test_bad_window_refused_naming_the_key(given, expected):
    assert problem(given).startswith(expected)


def test_over_midnight_and_named_zones_accepted():
    raw = base_raw()
    raw["clusterServices"] = {**raw["clusterServices"], "reboots": {
        "days": ["fri", "sat"], "start": "23:00", "end": "04:00", "timeZone": "America/New_York"}}
    window = load("test", raw, SECRET_KEYS).config.cluster_services.reboots
    assert (window.start, window.end, window.time_zone) == ("23:00", "04:00", "America/New_York")
