"""Pod scheduling fragments shared by every layer: tolerations of our taints, one replica per node."""

from __future__ import annotations

from typing import Any

HOSTNAME_TOPOLOGY = "kubernetes.io/hostname"
# Set by the cloud controller manager where there is one (Hetzner's: the datacenter, one per location), else by
# the kubelet from where the node's provider placed it, in that provider's CCM's words (components/k3s/config.py
# topology_labels).
ZONE_TOPOLOGY = "topology.kubernetes.io/zone"
REGION_TOPOLOGY = "topology.kubernetes.io/region"


def toleration(taint: str) -> dict[str, str]:
    """The toleration of exactly one node taint 'key[=value]:Effect'."""
    key_value, effect = taint.rsplit(":", 1)
    key, _, value = key_value.partition("=")
    if value:
        return {"key": key, "operator": "Equal", "value": value, "effect": effect}
    return {"key": key, "operator": "Exists", "effect": effect}


def pod_anti_affinity(labels: dict[str, str], required: bool = True) -> dict[str, Any]:
    """One pod per node (required in HA profiles: a lost node then costs one replica, never two)."""
    term = {"labelSelector": {"matchLabels": dict(labels)}, "topologyKey": HOSTNAME_TOPOLOGY}
    if required:
        return {"requiredDuringSchedulingIgnoredDuringExecution": [term]}
    return {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": term}]}


def topology_spread(labels: dict[str, str], required: bool = True,
                    topology_key: str = HOSTNAME_TOPOLOGY) -> list[dict[str, Any]]:
    return [{"maxSkew": 1, "topologyKey": topology_key,
             "whenUnsatisfiable": "DoNotSchedule" if required else "ScheduleAnyway",
             "labelSelector": {"matchLabels": dict(labels)}}]


def zone_spread(labels: dict[str, str], required: bool) -> list[dict[str, Any]]:
    """Replicas spread evenly over zones: required where the pool spans several locations (a lost location then
    costs one replica), preferred otherwise (one zone, or a cloud's spread the config does not name)."""
    return topology_spread(labels, required=required, topology_key=ZONE_TOPOLOGY)
