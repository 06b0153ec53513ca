"""What the provider tests share: runs with a cloud's own settings (aws:region, ...), the staging stack
and a production variant as module fixtures, config-error runs, and the CSI StorageClass checks."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import pulumi
import pytest
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from config import ConfigError
from providers.base import FSTYPE_PARAMETER
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


def stack_fixtures(stack: str, provider: str, settings: dict[str, str], production_cluster: dict[str, Any]):
    """Module fixtures `staging` (the repository's stack file) and `production` (the production profile on
    `provider` with `production_cluster` overrides): one whole-program run each per test module."""

    @pytest.fixture(scope="module", name="staging")
    def staging() -> mockrun.Run:
        return stack_run(stack)

    @pytest.fixture(scope="module", name="production")
    def production() -> mockrun.Run:
        return run_cloud(base_raw(provider=provider, cluster=production_cluster), settings,
                         stack=f"production-{provider}")

    return staging, production


def config_problems(raw: dict[str, Any], settings: dict[str, str]) -> list[str]:
    """The config errors of a run that must stop before any resource exists."""
    with pytest.raises(ConfigError) as err:
        run_cloud(raw, settings)
    assert mockrun.last_monitor.recorded == [], "nothing is created before the config is valid"
    return [str(p) for p in err.value.problems]


def run_alone(build: Callable[[], T]) -> tuple[T, list[mockrun.Resource]]:
    """`build` alone under the offline mocks (not the whole program): what it returns, what it registered."""
    mocks = mockrun.OfflineMocks()
    monitor = mockrun.RecordingMonitor(mocks)
    pulumi_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=mockrun.PROJECT, stack="unit", preview=False, monitor=monitor)
    result: list[T] = []
    _sync_await(run_pulumi_func(lambda: result.append(build())))
    return result[0], monitor.recorded


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
