"""The ad services: each configured service (config/ads.py) as one `Service` component in the team namespace,
wired to the data plane's stores, the platform's telemetry and the shared gateway.

Order: each service's own store credentials copied into the namespace (Redpanda's CA issued there once), the hot-path
PriorityClass and the registry's pull Secret, then one `Service` per enabled service (components/ads/service.py), each
waiting for the stores it uses. The `summary` (stack output `adServices`) says per service where it is served,
its replica bounds and its stores; it never holds a credential.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.ads import stores
from components.ads.context import (HOT_PATH_CLASS, HOT_PATH_PREEMPTION, HOT_PATH_PRIORITY, AdsContext, LagTarget,
                                    Neighbour, ServicePlan, StoreWiring, selector_labels)
from components.ads.service import Service
from components.data import DataPlane
from components.k3s import K3sCluster
from components.platform import Platform
from components.scheduling import toleration
from components.services import ClusterServices
from config import LoadedConfig
from config.consumers import keyspace_of
from config.ads import PLACEHOLDER_REPOSITORY, STORES, AdServices as Settings, Registry, Service as ServiceConfig
from config.model import POOL_LABEL, StackConfig

PULL_SECRET = "registry-pull"


class AdServices(pulumi.ComponentResource):
    summary: dict[str, Any]
    services: dict[str, Service]
    priority_class: str | None

    def __init__(self, name: str, loaded: LoadedConfig, cluster: K3sCluster, services: ClusterServices,
                 data: DataPlane, platform: Platform | None, opts: pulumi.ResourceOptions | None = None):
        super().__init__("adplatform:ads:AdServices", name, None, opts)
        cfg = loaded.config
        settings = cfg.ad_services
        ctx = AdsContext(
            parent=self, k8s=cluster.provider, ha=loaded.profile.strict, protect=loaded.profile.protect,
            namespace=settings.namespace, domain=cfg.domain,
            environment=loaded.profile.environment, gateway=services.gateway,
            otlp_endpoint=platform.otlp_endpoint if platform is not None else None,
            monitoring=platform is not None and "monitoring" in platform.enabled,
            after=tuple(services.ready),
            meshed=cfg.cluster_services.mesh.linkerd and settings.namespace in cfg.cluster_services.mesh.namespaces)
        enabled = settings.enabled

        wiring = stores.Wiring(ctx, data.endpoints)
        wirings = {name: {store: wiring.wire(name, store) for store in STORES if store in svc.stores}
                   for name, svc in enabled.items()}
        self.priority_class = hot_path_class(ctx) if any(s.hot_path for s in enabled.values()) else None
        pull = pull_secret(ctx, settings.registry, loaded.secrets.ad_services_registry_token)

        plans = {n: plan(n, svc, settings, cfg, wirings[n], self.priority_class, pull) for n, svc in enabled.items()}
        self.services = {n: Service(p, ctx, pulumi.ResourceOptions(parent=self)) for n, p in plans.items()}
        self.summary = {n: summary(plans[n], self.services[n], enabled[n]) for n in plans}
        self.register_outputs({"services": list(self.services)})


def hot_path_class(ctx: AdsContext) -> str:
    k8s.scheduling.v1.PriorityClass(
        "ads-hot-path", metadata=k8s.meta.v1.ObjectMetaArgs(name=HOT_PATH_CLASS, labels=ctx.labels("ads", "priority")),
        value=HOT_PATH_PRIORITY, global_default=False,
        # First in the scheduling queue, but no preemption: every platform pod on the general nodes runs at priority
        # 0 (OpenBao, cert-manager, the database operators, Prometheus, GitLab), so a scale-up that preempted would
        # pick its victims among them. Preemption is safe only once the platform's critical pods have a class
        # above this one.
        preemption_policy=HOT_PATH_PREEMPTION,
        description="Ad services on the revenue path (an ad request waits on them): scheduled first, never evicts.",
        opts=ctx.opts())
    return HOT_PATH_CLASS


def pull_secret(ctx: AdsContext, registry: Registry | None, token: pulumi.Output[str] | None) -> str | None:
    """A docker-registry Secret for the configured private registry (the token stays a secret Output)."""
    if registry is None or token is None:
        return None

    def config_json(password: str) -> str:
        auth = base64.b64encode(f"{registry.username}:{password}".encode()).decode()
        return json.dumps({"auths": {registry.host: {"username": registry.username, "password": password,
                                                     "auth": auth}}})
    k8s.core.v1.Secret(
        "ads-registry-pull", metadata=k8s.meta.v1.ObjectMetaArgs(name=PULL_SECRET, namespace=ctx.namespace,
                                                                 labels=ctx.labels("registry", "credentials")),
        type="kubernetes.io/dockerconfigjson",
        string_data={".dockerconfigjson": pulumi.Output.secret(token).apply(config_json)}, opts=ctx.opts())
    return PULL_SECRET


def _neighbour(name: str, svc: ServiceConfig) -> Neighbour:
    return Neighbour(name, selector_labels(name), svc.port)


def plan(name: str, svc: ServiceConfig, settings: Settings, cfg: StackConfig, wirings: dict[str, StoreWiring],
         priority_class: str | None, pull: str | None) -> ServicePlan:
    """One service resolved: its neighbours (callers it admits, services that list it as a caller), its own
    wirings to its stores (store -> wiring), its placement. Disabled services are neither callers nor callees."""
    enabled = settings.enabled
    pool = next((p for p in cfg.cluster.node_pools if p.name == svc.pool), None) if svc.pool else None
    keyspace = keyspace_of(cfg, name)
    return ServicePlan(
        name=name, image=svc.image.reference, placeholder=svc.image.repository == PLACEHOLDER_REPOSITORY,
        port=svc.port, metrics_port=svc.metrics_port, metrics_path=svc.metrics_path,
        liveness_path=svc.liveness_path, readiness_path=svc.readiness_path, host=svc.host,
        min_replicas=svc.min_replicas, max_replicas=svc.max_replicas,
        target_cpu_utilization=svc.target_cpu_utilization,
        requests_per_second=svc.requests_per_second,
        consumer_lag=LagTarget(svc.consumer_lag.group, svc.consumer_lag.average_value) if svc.consumer_lag else None,
        cpu=svc.cpu, memory=svc.memory, memory_limit=svc.memory_limit, run_as_user=svc.run_as_user,
        priority_class=priority_class if svc.hot_path else None,
        node_selector={POOL_LABEL: pool.name} if pool else {},
        tolerations=tuple(toleration(t) for t in pool.node_taints) if pool else (),
        stores=tuple(wirings[s] for s in STORES if s in svc.stores),
        keyspace=keyspace,
        callers=tuple(_neighbour(c, enabled[c]) for c in svc.callers if c in enabled),
        callees=tuple(_neighbour(other, o) for other, o in enabled.items() if name in o.callers),
        env=dict(svc.env), pull_secret=pull, io_uring=svc.io_uring)


def summary(p: ServicePlan, service: Service, svc: ServiceConfig) -> dict[str, Any]:
    return {"url": service.url, "internalUrl": service.internal_url,
            "replicas": {"min": p.min_replicas, "max": p.max_replicas}, "stores": list(svc.stores),
            "hotPath": svc.hot_path, "callers": [c.name for c in p.callers]}


__all__ = ["AdServices", "PULL_SECRET", "Service", "plan"]
