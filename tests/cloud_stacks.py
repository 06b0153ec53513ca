"""What the provider tests share: runs with a cloud's own settings (aws:region, ...), the staging stack
and a production variant as module fixtures, config-error runs, and the CSI StorageClass checks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import pulumi
import pulumi_kubernetes as k8s
import pytest
from pulumi.runtime import config as runtime_config
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

import providers
from components.services.autoscaler import shares
from config import ConfigError, load_from_pulumi
from config.model import LOCATION_LABEL, Cluster, Pool
from providers.base import FSTYPE_PARAMETER, ClusterProfile, NodeGroupRequest, NodeGroups, group_spec
from tests.conftest import SECRET_KEYS, base_raw, lower_layers, stack_run
from tools import mockrun

STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
T = TypeVar("T")


def run_cloud(raw: dict[str, Any], settings: dict[str, str], stack: str = "test") -> mockrun.Run:
    """The whole program with `raw` adplatform config and the cloud provider's own `settings`."""
    values = {f"adplatform:{k}": v for k, v in lower_layers(raw).items()}
    values.update(settings)
    return mockrun.run(values, {f"adplatform:{k}" for k in SECRET_KEYS}, stack)


def cloud_production(provider: str, settings: dict[str, str], cluster: dict[str, Any]) -> mockrun.Run:
    """The production profile on `provider` with `cluster` overrides (a provider test file's `production`)."""
    return run_cloud(base_raw(provider=provider, cluster=cluster), settings, stack=f"production-{provider}")


# tests/test_aws.py's production: a pinned AMI, a public API NLB and one pool pinned to a zone. Other files that need
# production on AWS (tests/test_secrets_seal.py) use this run too rather than one of their own.
AWS_REGION = {"aws:region": "eu-central-1"}
AWS_PRODUCTION_CLUSTER = {"image": "ami-0123456789abcdef0", "apiLoadBalancer": {"public": True},
                          "pools": [{"name": "stateful", "location": "eu-central-1b"}]}


def stack_fixtures(stack: str, provider: str, settings: dict[str, str], production_cluster: dict[str, Any]):
    """Module fixtures `staging` (the repository's stack file) and `production` (the production profile on
    `provider` with `production_cluster` overrides): one whole-program run each per test module."""

    @pytest.fixture(scope="module", name="staging")
    def staging() -> mockrun.Run:
        return stack_run(stack)

    @pytest.fixture(scope="module", name="production")
    def production() -> mockrun.Run:
        return cloud_production(provider, settings, production_cluster)

    return staging, production


def config_problems(raw: dict[str, Any], settings: dict[str, str]) -> list[str]:
    """The config errors of a run that must stop before any resource exists."""
    with pytest.raises(ConfigError) as err:
        run_cloud(raw, settings)
    assert mockrun.last_monitor.recorded == [], "nothing is created before the config is valid"
    return [str(p) for p in err.value.problems]


def run_alone(build: Callable[[], T], stack: str = "unit") -> tuple[T, list[mockrun.Resource]]:
    """`build` alone under the offline mocks (not the whole program): what it returns, what it registered."""
    mocks = mockrun.OfflineMocks()
    monitor = mockrun.RecordingMonitor(mocks)
    pulumi_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=mockrun.PROJECT, stack=stack, preview=False, monitor=monitor)
    result: list[T] = []
    _sync_await(run_pulumi_func(lambda: result.append(build())))
    return result[0], monitor.recorded


def resolved(value: Any) -> Any:
    """`value` with every Output in it replaced by what it resolved to (after a run)."""
    if isinstance(value, pulumi.Output):
        return resolved(_sync_await(value.future()))
    if isinstance(value, dict):
        return {k: resolved(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [resolved(v) for v in value]
    return value


FAKE_USER_DATA = "#cloud-config\nruncmd:\n  - [sh, -c, 'echo join with the agent token']\n"


def autoscaled_general(**fields: Any) -> dict[str, Any]:
    """Stack overrides for the installers' fixtures: the general pool autoscaled 2..5 and tainted (to see the taint
    in each provider's scale-from-zero template), with `fields` added."""
    return {"adplatform:cluster": {"pools": [{"name": "general", "autoscaling": {"min": 2, "max": 5},
                                              "taints": ["adplatform.io/burst=true:NoSchedule"], **fields}]}}


def node_group_requests(cluster: Cluster, zones: Callable[[Pool], list[str | None]],
                        cluster_provider: str) -> list[NodeGroupRequest]:
    """What the autoscaler component would ask of a provider: a group per autoscaled pool and zone (`zones`), the
    pool's extra nodes split over them, each with (fake) secret user data."""
    requests = []
    for pool in cluster.autoscaled_pools:
        where = zones(pool)
        for zone, share in zip(where, shares(pool.autoscaling.extra, len(where))):
            # Labels and taints as the autoscaler component passes them (the K3s config's; location label included).
            name = f"{pool.name}-{zone}" if zone else pool.name
            requests.append(NodeGroupRequest(name=name, pool=pool,
                                             location=zone, min_size=0, max_size=share,
                                             user_data=pulumi.Output.secret(FAKE_USER_DATA),
                                             spec=group_spec(name, pool, zone, cluster_provider),
                                             node_labels={**pool.node_labels, **({LOCATION_LABEL: zone} if zone else {})},
                                             node_taints=pool.node_taints))
    return requests


@dataclass
class NodeGroupRun:
    groups: NodeGroups
    profile: ClusterProfile  # the provider's (node_boot_commands)
    values: dict  # groups.autoscaler_values, resolved
    requests: list[NodeGroupRequest]
    resources: list[mockrun.Resource]  # everything registered: the provider layer, then the node groups

    def of_type(self, type_: str) -> list[mockrun.Resource]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str, type_: str) -> mockrun.Resource:
        (found,) = [r for r in self.resources if r.name == name and r.type == type_]
        return found


def run_node_groups(stack: str, zones: Callable[[Pool], list[str | None]],
                    overrides: dict[str, Any] | None = None) -> NodeGroupRun:
    """The stack's provider layer alone under the offline mocks, then its node group installer called as the
    autoscaler component calls it, with node_group_requests(zones)."""
    values, secret = mockrun.stack_config(stack)
    values.update(overrides or {})

    def build() -> tuple[NodeGroups, ClusterProfile, list[NodeGroupRequest]]:
        runtime_config.set_all_config({k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()},
                                      list(secret))
        loaded = load_from_pulumi()
        infra = providers.get(loaded.config.provider).create(loaded)
        assert infra.install_node_groups is not None, f"{loaded.config.provider} has no node group installer"
        cluster_api = k8s.Provider("k8s", kubeconfig=mockrun.FAKE_KUBECONFIG)
        parent = pulumi.ComponentResource("adplatform:test:Autoscaler", "autoscaler")
        requests = node_group_requests(loaded.config.cluster, zones, loaded.config.provider)
        return infra.install_node_groups(requests, cluster_api, [], parent), infra.cluster, requests

    (groups, profile, requests), recorded = run_alone(build, stack)
    return NodeGroupRun(groups, profile, resolved(groups.autoscaler_values), requests, recorded)


def assert_block_storage(run: mockrun.Run, name: str, provisioner: str, *, reclaim: str,
                         driver: str) -> dict[str, str]:
    """The provider's default class `name` and its XFS twin `<name>-xfs`, as components/data relies on them:
    same provisioner and parameters (encryption included), expandable, bound where the pod runs, the
    environment's reclaim policy, both after the CSI driver (resource `driver`); only the default is
    default, only the twin formats XFS. Returns the default class's parameters."""
    default = run.named(f"storage-class-{name}", STORAGE_CLASS)
    xfs = run.named(f"storage-class-{name}-xfs", STORAGE_CLASS)
    assert default.inputs["metadata"]["name"] == name and xfs.inputs["metadata"]["name"] == f"{name}-xfs"
    assert default.inputs["metadata"]["annotations"] == {DEFAULT_CLASS: "true"}
    assert DEFAULT_CLASS not in (xfs.inputs["metadata"].get("annotations") or {}), "one default class only"
    for sc in (default, xfs):
        assert sc.inputs["provisioner"] == provisioner
        assert sc.inputs["allowVolumeExpansion"] is True and sc.inputs["volumeBindingMode"] == "WaitForFirstConsumer"
        assert sc.inputs["reclaimPolicy"] == reclaim
        assert run.named(driver).urn in sc.dependencies, "the classes wait for their CSI driver"
    params = dict(default.inputs.get("parameters") or {})
    assert xfs.inputs["parameters"] == {**params, FSTYPE_PARAMETER: "xfs"}
    assert params.get(FSTYPE_PARAMETER, "ext4") == "ext4"
    assert run.outputs["storageClass"] == name
    return params


def gateway_client_address(run: mockrun.Run) -> tuple[dict[str, Any], dict[str, str]]:
    """How a stack carries client addresses: Cilium's `gatewayAPI` values and the gateway's LB Service annotations
    (Gateway `spec.infrastructure.annotations`, which Cilium copies onto the Service)."""
    values = run.named("cilium", "kubernetes:helm.sh/v3:Release").inputs["values"]["gatewayAPI"]
    spec = run.named("gateway-shared", "kubernetes:gateway.networking.k8s.io/v1:Gateway").inputs["spec"]
    return values, (spec.get("infrastructure") or {}).get("annotations", {})


def assert_local_traffic_policy(run: mockrun.Run) -> None:
    """No PROXY headers from this provider's balancer: listeners must not expect them (every request would fail),
    and the source address survives because traffic stays on the node it arrives at."""
    values, annotations = gateway_client_address(run)
    assert values["enableProxyProtocol"] is False
    assert values["externalTrafficPolicy"] == "Local"
    assert values["xffNumTrustedHops"] == 0, "a client's own X-Forwarded-For must not be trusted"
    assert not any("proxy" in key.lower() or "proxy_protocol" in value for key, value in annotations.items())
