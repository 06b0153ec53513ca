"""What the layers above the cluster services share when they create Kubernetes children: options,
labels, generated credentials, operator resources and disruption budgets (DataContext, PlatformContext
and the ad services' context build on it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Literal, Sequence

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random


# Velero leaves objects with this label out of every backup (velero.io/v1 ExcludeFromBackupLabel). Secrets
# that unlock other secrets carry it: the key must never sit inside the backup it protects. Pulumi state
# holds them and recreates them before a restore.
EXCLUDE_FROM_BACKUP = {"velero.io/exclude-from-backup": "true"}


def wait_for(condition: str, seconds: int) -> dict[str, str]:
    """pulumi-kubernetes await annotations for an operator's resource: `pulumi up`, and every consumer that
    depends on it, waits until the operator reports `condition` (condition=Ready, jsonpath=...)."""
    return {"pulumi.com/waitFor": condition, "pulumi.com/timeoutSeconds": str(seconds)}


# What a workload of a layer above the cluster services can render that needs one of those services first.
Need = Literal["volumes", "certificates", "monitors"]


@dataclass(frozen=True)
class Prerequisites:
    """The cluster services a later layer's workloads wait for, by what they render (issue 22): a workload waits for
    those it needs, not for the whole layer below."""

    volumes: tuple[pulumi.Resource, ...]  # CSI driver + StorageClasses: PersistentVolumeClaims bind
    # cert-manager (CRDs, webhook): a workload's Certificates and its own Issuers. Not the Let's Encrypt ClusterIssuers:
    # they sign the shared gateway's certificates (services layer), and no workload of a later layer names them.
    certificates: tuple[pulumi.Resource, ...]
    monitors: tuple[pulumi.Resource, ...]  # the Prometheus Operator CRDs: ServiceMonitor, PodMonitor

    def of(self, needs: Iterable[Need]) -> list[pulumi.Resource]:
        return [r for need in dict.fromkeys(needs) for r in getattr(self, need)]

    def all(self) -> list[pulumi.Resource]:
        return self.of(("volumes", "certificates", "monitors"))


@dataclass(frozen=True)
class Credentials:
    secret: str  # Secret name in `namespace`
    namespace: str
    values: dict[str, pulumi.Output[str]]  # Secret key -> value (secret Outputs, never plain)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.values)

    def copy_to(self, resource_name: str, namespace: str, opts: pulumi.ResourceOptions,
                name: str | None = None, rename: dict[str, str] | None = None) -> k8s.core.v1.Secret:
        """The same values as a Secret in `namespace` (`rename`: our key -> the consumer's key)."""
        rename = rename or {}
        return k8s.core.v1.Secret(
            resource_name,
            metadata=k8s.meta.v1.ObjectMetaArgs(name=name or self.secret, namespace=namespace),
            type="Opaque",
            string_data={rename.get(k, k): pulumi.Output.secret(v) for k, v in self.values.items()},
            opts=opts)


@dataclass(frozen=True)
class LayerContext:
    parent: pulumi.Resource  # the layer's component: every child hangs below it
    k8s: k8s.Provider
    ha: bool  # production-grade profile: quorum replicas, required anti-affinity, PDBs
    protect: bool  # production: stateful resources and generated credentials protected

    def opts(self, depends_on: Sequence[pulumi.Resource] = (), protect: bool = False,
             **kwargs) -> pulumi.ResourceOptions:
        """`protect`: asked for by stateful resources; honoured in production-grade profiles only."""
        return pulumi.ResourceOptions(parent=self.parent, provider=self.k8s, depends_on=list(depends_on),
                                      protect=protect and self.protect, **kwargs)

    def labels(self, app: str, component: str | None = None) -> dict[str, str]:
        labels = {"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "adplatform",
                  "app.kubernetes.io/managed-by": "pulumi"}
        if component:
            labels["app.kubernetes.io/component"] = component
        return labels

    def admission_policy(self, resource_name: str, name: str, spec: dict[str, Any], labels: dict[str, str],
                         after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
        """A ValidatingAdmissionPolicy `name` and the binding that denies what it refuses (everywhere it matches)."""
        policy = k8s.admissionregistration.v1.ValidatingAdmissionPolicy(
            resource_name, metadata=k8s.meta.v1.ObjectMetaArgs(name=name, labels=labels), spec=spec,
            opts=self.opts(after))
        binding = k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding(
            resource_name, metadata=k8s.meta.v1.ObjectMetaArgs(name=name, labels=labels),
            spec={"policyName": name, "validationActions": ["Deny"]}, opts=self.opts([*after, policy]))
        return [policy, binding]

    def password(self, name: str, length: int = 32) -> random.RandomPassword:
        """A generated credential: alphanumeric (safe in URLs, DSNs and config files), protected in production."""
        return random.RandomPassword(name, length=length, special=False, min_lower=1, min_upper=1, min_numeric=1,
                                     opts=pulumi.ResourceOptions(parent=self.parent, protect=self.protect))

    def credentials(self, resource_name: str, secret: str, namespace: str, values: dict[str, pulumi.Input[str]],
                    depends_on: Sequence[pulumi.Resource] = (), secret_type: str = "Opaque",
                    labels: dict[str, str] | None = None) -> tuple[Credentials, k8s.core.v1.Secret]:
        """A Secret holding `values` (every value marked secret) and the typed reference to it."""
        outputs = {k: pulumi.Output.secret(v) for k, v in values.items()}
        obj = k8s.core.v1.Secret(
            resource_name, metadata=k8s.meta.v1.ObjectMetaArgs(name=secret, namespace=namespace, labels=labels),
            type=secret_type, string_data=outputs, opts=self.opts(depends_on))
        return Credentials(secret=secret, namespace=namespace, values=outputs), obj

    def custom_resource(self, resource_name: str, api_version: str, kind: str, name: str, namespace: str | None,
                        spec: dict, labels: dict[str, str], depends_on: Sequence[pulumi.Resource] = (),
                        protect: bool = False, annotations: dict[str, str] | None = None,
                        immutable: Sequence[str] = ()) -> k8s.apiextensions.CustomResource:
        """An operator's resource (`protect`: a database whose deletion deletes its data).

        `immutable`: spec fields the operator's CRD refuses to change (CEL `self == oldSelf`), as paths under
        `spec`. A change to one replaces the object instead of failing the update; deleted first, because the
        replacement keeps the same name."""
        replace = {"replace_on_changes": [f"spec.{field}" for field in immutable],
                   "delete_before_replace": True} if immutable else {}
        return k8s.apiextensions.CustomResource(
            resource_name, api_version=api_version, kind=kind,
            metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace, labels=labels,
                                                annotations=annotations),
            spec=spec, opts=self.opts(depends_on, protect=protect, **replace))

    def disruption_budget(self, resource_name: str, name: str, namespace: str, selector: dict[str, str],
                          labels: dict[str, str], depends_on: Sequence[pulumi.Resource] = (),
                          min_available: int | None = None, max_unavailable: int | None = None,
                          unhealthy_pod_eviction_policy: str | None = None) -> k8s.policy.v1.PodDisruptionBudget:
        """Our PodDisruptionBudget, for workloads whose chart or operator ships none."""
        if (min_available is None) == (max_unavailable is None):
            raise ValueError(f"{resource_name}: set exactly one of min_available and max_unavailable")
        return k8s.policy.v1.PodDisruptionBudget(
            resource_name, metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace, labels=labels),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                min_available=min_available, max_unavailable=max_unavailable,
                unhealthy_pod_eviction_policy=unhealthy_pod_eviction_policy,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(selector))),
            opts=self.opts(depends_on))
