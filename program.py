"""The program as a straight line: config -> servers -> tuning -> cluster -> outputs.

`main()` is what `pulumi up` runs (via __main__.py) and what the tests and the offline plan run
under mocks. Later layers (cluster services, data plane, platform, ad services) plug in here,
each handed what the previous layer produced.
"""

from __future__ import annotations

import dataclasses

import pulumi

import providers
from components.host import HostTuning
from components.k3s import K3sCluster
from components.ads import AdServices
from components.data import DataPlane, validate as validate_data_plane
from components.data.outputs import data_plane_summary
from components.k3s.config import ApiServerOidc, EtcdBackup
from components.platform import Platform
from components.recovery import runbook
from components.services import ClusterServices
from config import ConfigError, LoadedConfig, Problem, load_from_pulumi
from config.catalog import PROVIDERS, SIZES, Size
from config.errors import NAMESPACE
from providers import hybrid
from providers import previous_run
from providers.base import PROVIDER_LABEL, check_credentials, check_seal


def _credential_problems() -> list[Problem]:
    """The stack provider's credentials (providers/base.py check_credentials); none for an unknown provider,
    which the config validation reports."""
    name = pulumi.Config(NAMESPACE).get("provider")
    return check_credentials(providers.get(name).credentials) if name in PROVIDERS else []


def provider_sizes(provider: providers.Provider) -> dict[str, Size]:
    """The size of each server type the provider maps one size class to (what pools naming it can hold); a type
    standing for several classes (bare metal's existing hosts) says nothing about its size."""
    types = list(provider.server_types.values())
    return {server_type: SIZES[size] for size, server_type in provider.server_types.items()
            if types.count(server_type) == 1}


def _with_previous_run(loaded: LoadedConfig) -> tuple[LoadedConfig, bool | None]:
    """The last run's record (providers/previous_run.py) applied before any resource is created: the nodes it had, for
    the check over the internet; their pinned SSH host keys, for the hooks that reach a node whose own key-read step
    cannot answer and for the commands of a dead machine (cluster.unreachableNodes), which keep their key without
    dialling it; and a GCP stack's gcp.legacyVolumeNames where unset. Where a wrong guess would hurt (a check over the
    internet, a dead machine, a GCP stack's volumes) a record that cannot be read fails the run. Returns the config
    with that setting resolved, and the setting (None off GCP) for this run's record."""
    on_gcp = "gcp" in hybrid.providers_used(loaded.config)
    gcp_legacy_unset = on_gcp and loaded.config.gcp.legacy_volume_names is None
    previous = previous_run.read(required=hybrid.joins_over_internet(loaded.config)
                                 or bool(loaded.config.cluster.unreachable_nodes) or gcp_legacy_unset)
    if churn := [*hybrid.churn_problems(loaded.config, previous), *hybrid.renumbered_problems(loaded.config, previous)]:
        raise ConfigError(churn)
    previous_run.RECORDED_KEYS.use(previous.host_keys())
    if not on_gcp:
        return loaded, None
    gcp_legacy = previous_run.gcp_legacy_volume_names(loaded.config.gcp.legacy_volume_names, previous)
    return dataclasses.replace(loaded, config=loaded.config.model_copy(
        update={"gcp": loaded.config.gcp.model_copy(update={"legacy_volume_names": gcp_legacy})})), gcp_legacy


def main() -> None:
    credentials = _credential_problems()
    try:
        loaded = load_from_pulumi()
    except ConfigError as err:  # one report of everything wrong, the provider's credentials included
        raise ConfigError([*err.problems, *credentials]) from None
    provider = providers.get(loaded.config.provider)
    # Pools may run on other providers than the stack's (providers/hybrid.py): each checks its own.
    problems = [*credentials, *hybrid.credential_problems(loaded.config), *hybrid.validate(loaded),
                *validate_data_plane(loaded.config, provider_sizes(provider)), *check_seal(loaded, provider.kms_seal)]
    if problems:
        raise ConfigError(problems)
    loaded, gcp_legacy = _with_previous_run(loaded)

    infra = hybrid.create(loaded)
    tuning = HostTuning("host-tuning", infra.nodes)
    # Backup settings are validated with the cluster-services layer they belong to.
    etcd_backup = EtcdBackup.from_config(loaded.config.cluster_services.backups, loaded.stack, loaded.secrets) \
        if loaded.config.layers.cluster_services else None
    cluster = K3sCluster("k3s", loaded.config.cluster, infra, tuning, etcd_backup=etcd_backup,
                         protect=loaded.profile.protect, oidc=ApiServerOidc.from_config(loaded.config, loaded.stack))
    if cluster.etcd_restore:
        pulumi.export("etcdRestore", cluster.etcd_restore)  # the runbook: no secrets in it
    if loaded.config.layers.cluster_services:
        services = ClusterServices("cluster-services", loaded, infra, cluster)
        pulumi.export("storageClass", services.storage_class)
        pulumi.export("clusterIssuer", services.cluster_issuer)
        pulumi.export("gateway", {"name": services.gateway.name, "namespace": services.gateway.namespace})
        pulumi.export("dns", services.dns)
        if services.secret_store.recovery is not None:  # a secret: the unseal key, or it PGP-encrypted
            pulumi.export("secretsRecovery", services.secret_store.recovery)
        if loaded.config.cluster_services.backups.enabled:
            pulumi.export("disasterRecovery", runbook(loaded.config, loaded.stack))  # no secrets in it
        if loaded.config.layers.data_plane:
            data = DataPlane("data-plane", loaded, cluster, services, local_nvme=infra.cluster.local_nvme)
            pulumi.export("dataPlane", data_plane_summary(data))
            platform = Platform("platform", loaded, cluster, services, data) if loaded.config.layers.platform else None
            if platform is not None:
                pulumi.export("platform", platform.summary)
                for name, value in platform.outputs.items():  # runnerTokens: secret (runner_bootstrap.py)
                    pulumi.export(name, value)
            if loaded.config.layers.ad_services:
                ads = AdServices("ad-services", loaded, cluster, services, data, platform)
                pulumi.export("adServices", ads.summary)

    pulumi.export("provider", loaded.config.provider)
    pulumi.export("profile", loaded.profile.name)
    pulumi.export("k3sVersion", loaded.config.cluster.k3s_version)
    pulumi.export("apiEndpoint", cluster.api_endpoint)
    pulumi.export("kubeconfig", pulumi.Output.secret(cluster.kubeconfig))
    pulumi.export("nodes", {
        node.hostname: {"pool": node.spec.pool, "role": node.spec.workload_role, "k3s": node.spec.k3s_role,
                        "publicIp": node.public_ip, "privateIp": node.private_ip,
                        "provider": node.spec.labels.get(PROVIDER_LABEL),
                        # Whether the gateway's cloud load balancer (the stack provider's) reaches it.
                        "loadBalancerTarget": hybrid.load_balancer_target(node)}
        for node in infra.nodes
    })
    pulumi.export("layers", loaded.config.layers.model_dump(by_alias=True))
    # Read back by the next run (providers/previous_run.py): names, addresses, host public keys; nothing secret.
    pulumi.export(previous_run.OUTPUT, previous_run.record(infra.nodes, gcp_legacy))
