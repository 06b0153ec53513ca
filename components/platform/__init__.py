"""The developer platform: GitLab (+ runner), monitoring, logs, traces, data engineering and ML, each from
the chart catalog, routed on the shared gateway, wired to the data plane's stores.

Each module exposes `namespaces(ctx)` and `install(ctx, spaces, after) -> Installed`; a disabled component
(platform.<name>.enabled: false) is neither declared nor installed, and what points at it (Grafana's
datasources, the runner's GitLab) follows the same switches. What each needs is config/platform.py NEEDS.
"""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any

import pulumi

from components.data import DataPlane
from components.data.endpoints import DragonflyEndpoint, PostgresEndpoint
from components.k3s import K3sCluster
from components.platform import (airflow, gitlab, gitlab_runner, jupyterhub, kubeflow, logs, mlflow, monitoring,
                                 spark, sso, traces)
from components.platform.context import (LAYER, OTLP_GATEWAY_HOST, OTLP_GRPC_PORT, Installed, PlatformContext)
from components.services import ClusterServices, namespaces
from config import LoadedConfig
from config.platform import NEEDS, Needs
from config.rules import schedulable_nodes

# platform.<name> -> the module installing it, in the order they are declared (no dependencies between them
# but the runner's on GitLab and the SSO proxies' on GitLab serving: GitLab comes before every tool that logs in).
MODULES: dict[str, ModuleType] = {
    "monitoring": monitoring, "logs": logs, "traces": traces, "gitlab": gitlab, "airflow": airflow,
    "spark": spark, "jupyterhub": jupyterhub, "mlflow": mlflow, "kubeflow": kubeflow,
}


class Platform(pulumi.ComponentResource):
    urls: dict[str, str]  # host label -> https URL, of every enabled component
    enabled: list[str]
    summary: dict[str, dict[str, object]]  # component -> enabled, URLs (the `platform` stack output)
    otlp_endpoint: str | None  # where workloads send traces (OTLP gRPC), None without traces
    ready: list[pulumi.Resource]

    def __init__(self, name: str, loaded: LoadedConfig, cluster: K3sCluster, services: ClusterServices,
                 data: DataPlane, opts: pulumi.ResourceOptions | None = None):
        super().__init__("adplatform:platform:Platform", name, None, opts)
        cfg = loaded.config
        ctx = PlatformContext(
            parent=self, k8s=cluster.provider, ha=loaded.profile.strict, protect=loaded.profile.protect,
            settings=cfg.platform, cluster=cfg.cluster, secrets=loaded.secrets, stack=loaded.stack,
            domain=cfg.domain, admin_cidrs=tuple(cfg.admin_cidrs), storage_class=services.storage_class,
            prerequisites=services.prerequisites,
            gateway=services.gateway, cluster_issuer=services.cluster_issuer, data=data.endpoints,
            backup=data.backup,
            general_nodes=schedulable_nodes(cfg),
            environment=loaded.profile.environment,
            teams=tuple(t.name for t in cfg.cluster_services.teams))
        # Every consumer's OAuth client, before any module: GitLab creates the applications, the tools use them.
        ctx = dataclasses.replace(ctx, sso=sso.clients(ctx, services.secret_store))

        enabled = {n: m for n, m in MODULES.items() if getattr(cfg.platform, n).enabled}
        if cfg.platform.gitlab.runner.enabled:
            enabled["runner"] = gitlab_runner
        specs = {n: m.namespaces(ctx) for n, m in enabled.items()}
        spaces = namespaces.install(ctx, [s for n in enabled for s in specs[n]], after=cluster.ready)

        installed: dict[str, Installed] = {}
        for name, module in enabled.items():
            after = [*services.foundations, *spaces.ready_for([s.name for s in specs[name]]),
                     *self._stores_ready(data, name, module)]
            installed[name] = module.install(ctx, spaces, after)
            # Declared before every tool that logs in with it and the runner (MODULES order), which wait on what of it
            # they need (ctx.gitlab_serving): not the SSO applications; the runner's bootstrap Job not even that.
            if name == "gitlab":
                ctx = dataclasses.replace(ctx, gitlab_serving=tuple(installed[name].serving))

        bindings = sso.kubectl_bindings(ctx, [*services.foundations, *cluster.ready])

        self.enabled = list(enabled)
        self.urls = {label: url for done in installed.values() for label, url in done.urls.items()}
        self.summary = {name: {"enabled": name in installed, "urls": installed[name].urls if name in installed else {}}
                        for name in [*MODULES, "runner"]}
        self.outputs = {k: v for done in installed.values() for k, v in done.outputs.items()}
        self.otlp_endpoint = f"http://{OTLP_GATEWAY_HOST}:{OTLP_GRPC_PORT}" if "traces" in enabled else None
        self.ready = [*spaces.ready, *(r for done in installed.values() for r in done.ready), *bindings]
        self.register_outputs({"enabled": self.enabled, "urls": self.urls})

    @staticmethod
    def _stores_ready(data: DataPlane, name: str, module: ModuleType) -> list[pulumi.Resource]:
        """A component starts once the stores it uses are up (their operators report ready): of DragonflyDB, the
        instance it connects to (its own, DragonflyEndpoint.serving), not the ad services' one and its users; of
        PostgreSQL, its database on the primary (PostgresEndpoint.serving), not the replicas still joining; none of the
        stores a module's release installs before (its `INSTALLS_BEFORE`: GitLab's chart waits for its database itself
        and reads no object while it installs)."""
        needs = NEEDS.get(name)
        if needs is None:
            return []
        stores = [store for store in needs.stores if store not in getattr(module, "INSTALLS_BEFORE", ())]
        endpoints = [getattr(data.endpoints, store) for store in stores]
        return [r for e in endpoints if e is not None for r in _serving(e, name, needs).ready]


def _serving(endpoint: Any, name: str, needs: Needs) -> Any:
    """The part of a store's endpoint component `name` uses."""
    if isinstance(endpoint, DragonflyEndpoint):
        return endpoint.serving(name)
    if isinstance(endpoint, PostgresEndpoint) and needs.database is not None:
        return endpoint.serving(needs.database)
    return endpoint


__all__ = ["LAYER", "MODULES", "Platform"]
