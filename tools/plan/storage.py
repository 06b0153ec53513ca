"""Block storage the cluster asks for, read from the plan: each claim with its size, storage class, how many
volumes of it exist (replicas x claim) and where it comes from.

Sources: PersistentVolumeClaims, StatefulSets' volumeClaimTemplates, the operators' CRs (ScyllaDB, Redpanda,
ClickHouse and its Keeper, CloudNativePG, Dragonfly) and the persistence our own Helm values turn on (the
`values` inputs of each release, as recorded in the plan). A claim whose size cannot be read is still
listed, with `gb` None and the reason, so nothing billable silently drops out of the estimate.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from config.model import ROLE_LABEL
from config.quantity import quantity

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"


def gigabytes(size: Any) -> float | None:
    """A Kubernetes quantity ("500Gi", "1Ti", "20G") in GiB, the unit clouds bill block storage by; None
    when it is not one (the cost model then lists the claim as unknown, never free)."""
    try:
        return None if size is None else float(quantity(str(size).strip())) / 2**30
    except ValueError:
        return None


def _at(value: Any, path: str) -> Any:
    for step in path.split(".") if path else []:
        value = value.get(step) if isinstance(value, dict) else None
    return value


def _count(value: Any, default: int = 1) -> int:
    return default if value is None else int(value)


def _role(value: Any) -> str | None:
    """The adplatform.io/role a workload's pods are pinned to (nodeSelector or a required node affinity)."""
    if isinstance(value, dict):
        if isinstance(value.get(ROLE_LABEL), str):
            return value[ROLE_LABEL]
        if value.get("key") == ROLE_LABEL and value.get("operator") == "In" and len(value.get("values") or []) == 1:
            return value["values"][0]
        value = list(value.values())
    if isinstance(value, list):
        return next((role for role in map(_role, value) if role), None)
    return None


def _claim(what: str, size: Any, storage_class: Any, count: int) -> dict[str, Any]:
    gb = gigabytes(size)
    return {"what": what, "gb": gb, "class": storage_class, "count": count,
            "reason": None if gb is not None else f"size {size!r} is not a quantity"}


def _pvc_spec(what: str, spec: dict[str, Any], count: int) -> dict[str, Any]:
    return _claim(what, _at(spec, "resources.requests.storage"), spec.get("storageClassName"), count)


# --- per kind: inputs -> claims ---------------------------------------------------------------------
def _pvc(inputs: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield _pvc_spec(_at(inputs, "metadata.name") or "claim", inputs.get("spec") or {}, 1)


def _statefulset(inputs: dict[str, Any]) -> Iterator[dict[str, Any]]:
    replicas = _count(_at(inputs, "spec.replicas"))
    for template in _at(inputs, "spec.volumeClaimTemplates") or []:
        yield _pvc_spec(_at(template, "metadata.name") or "claim", template.get("spec") or {}, replicas)


def _scylla(inputs: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A rack's members each claim its storage; a rack at 0 members (a small pool's spare racks) claims nothing."""
    for rack in _at(inputs, "spec.datacenter.racks") or []:
        if not _count(rack.get("members")):
            continue
        yield _claim(f"rack {rack.get('name')}", _at(rack, "storage.capacity"), _at(rack, "storage.storageClassName"),
                     _count(rack.get("members")))


def _redpanda(inputs: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = _at(inputs, "spec.clusterSpec") or {}
    volume = _at(spec, "storage.persistentVolume") or {}
    if volume.get("enabled"):
        yield _claim("data", volume.get("size"), volume.get("storageClass"), _count(_at(spec, "statefulset.replicas")))


def _clickhouse(inputs: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Altinity's CHI and CHK: every pod (shards x replicas of each cluster) gets each volume template the
    spec refers to (dataVolumeClaimTemplate, logVolumeClaimTemplate, ...)."""
    spec = inputs.get("spec") or {}
    pods = sum(_count(_at(c, "layout.shardsCount")) * _count(_at(c, "layout.replicasCount"))
               for c in _at(spec, "configuration.clusters") or [])
    used = set(_refs(spec))
    for template in _at(spec, "templates.volumeClaimTemplates") or []:
        if template.get("name") in used:
            yield _pvc_spec(template["name"], template.get("spec") or {}, pods)


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key.endswith("VolumeClaimTemplate") and isinstance(item, str):
                yield item
            else:
                yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def _cnpg(inputs: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = inputs.get("spec") or {}
    for key in ("storage", "walStorage"):
        if spec.get(key):
            yield _claim(key, _at(spec, f"{key}.size"), _at(spec, f"{key}.storageClass"), _count(spec.get("instances")))


def _dragonfly(inputs: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = inputs.get("spec") or {}
    claim = _at(spec, "snapshot.persistentVolumeClaimSpec")
    if claim:
        yield _pvc_spec("snapshots", claim, _count(spec.get("replicas")))


KINDS: dict[str, Callable[[dict[str, Any]], Iterator[dict[str, Any]]]] = {
    "kubernetes:core/v1:PersistentVolumeClaim": _pvc,
    "kubernetes:apps/v1:StatefulSet": _statefulset,
    "kubernetes:scylla.scylladb.com/v1:ScyllaCluster": _scylla,
    "kubernetes:cluster.redpanda.com/v1alpha2:Redpanda": _redpanda,
    "kubernetes:clickhouse.altinity.com/v1:ClickHouseInstallation": _clickhouse,
    "kubernetes:clickhouse-keeper.altinity.com/v1:ClickHouseKeeperInstallation": _clickhouse,
    "kubernetes:postgresql.cnpg.io/v1:Cluster": _cnpg,
    "kubernetes:dragonflydb.io/v1alpha1:Dragonfly": _dragonfly,
}


# --- Helm charts: where each chart's values put a volume ---------------------------------------------
# (label, values path of the volume, size key, class key, replicas path or None for one). The volume counts
# when its `enabled` is true (or it has no `enabled`). Paths and keys as in each chart's values.yaml at the
# version components/charts.py pins. GitLab's Gitaly claim is not here: components/platform/gitlab.py makes
# it as a PersistentVolumeClaim of its own (the chart's StatefulSet adopts it), counted once, there.
CHART_VOLUMES: dict[str, tuple[tuple[str, str, str, str, str | None], ...]] = {
    "seaweedfs": (("master", "master.data", "size", "storageClass", "master.replicas"),
                  ("filer", "filer.data", "size", "storageClass", "filer.replicas")),
    "kube-prometheus-stack": (
        ("prometheus", "prometheus.prometheusSpec.storageSpec.volumeClaimTemplate.spec",
         "resources.requests.storage", "storageClassName", "prometheus.prometheusSpec.replicas"),
        ("alertmanager", "alertmanager.alertmanagerSpec.storage.volumeClaimTemplate.spec",
         "resources.requests.storage", "storageClassName", "alertmanager.alertmanagerSpec.replicas"),
        ("grafana", "grafana.persistence", "size", "storageClassName", "grafana.replicas")),
    "loki": (("single binary", "singleBinary.persistence", "size", "storageClass", "singleBinary.replicas"),),
    "tempo": (("tempo", "persistence", "size", "storageClassName", "replicas"),),
    # OpenBao runs server.ha.replicas pods in HA mode, one standalone.
    "openbao": (("data", "server.dataStorage", "size", "storageClass", "server.ha.replicas if server.ha.enabled"),
                ("audit", "server.auditStorage", "size", "storageClass", "server.ha.replicas if server.ha.enabled")),
}
# Volumes that exist only while a Job runs: listed, not priced (a fraction of a month at most).
TRANSIENT_VOLUMES: dict[str, tuple[tuple[str, str], ...]] = {
    "gitlab": (("backup scratch space (generic ephemeral volume of the backup CronJob)",
                "gitlab.toolbox.backups.cron.persistence"),),
}


def _replicas(values: dict[str, Any], path: str | None) -> int:
    """`path`, or `path if switch`: the replica count, one when the switch is off or there is no path."""
    if path is None:
        return 1
    path, _, switch = path.partition(" if ")
    return _count(_at(values, path)) if not switch or _at(values, switch) else 1


def _chart(values: dict[str, Any], chart: str) -> Iterator[dict[str, Any]]:
    for label, path, size, storage_class, replicas in CHART_VOLUMES.get(chart, ()):
        volume = _at(values, path)
        if isinstance(volume, dict) and volume.get("enabled", True) is not False and _at(volume, size) is not None:
            count = _replicas(values, replicas)
            yield _claim(label, _at(volume, size), _at(volume, storage_class), count)
    if chart == "seaweedfs":  # a list: one volume per data directory on each volume server
        for directory in _at(values, "volume.dataDirs") or []:
            if directory.get("type") == "persistentVolumeClaim":
                yield _claim(f"volume server {directory.get('name')}", directory.get("size"),
                             directory.get("storageClass"), _count(_at(values, "volume.replicas")))
    if chart == "scylla-manager":  # the Manager's own ScyllaCluster, a CR inside the chart
        yield from _scylla({"spec": {"datacenter": {"racks": _at(values, "scylla.racks") or []}}})
    for label, path in TRANSIENT_VOLUMES.get(chart, ()):
        volume = _at(values, path)
        if isinstance(volume, dict) and volume.get("enabled"):
            yield {**_claim(label, volume.get("size"), volume.get("storageClass"), 1),
                   "transient": "exists only while the job runs"}


def claims(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every volume claim of the plan: resource (name, urn), layer, role its pods are pinned to, what, gb, class,
    count."""
    found = []
    for r in plan["resources"]:
        inputs = r["inputs"]
        if r["type"] in KINDS:
            rows = KINDS[r["type"]](inputs)
        elif r["type"] == HELM_RELEASE:
            chart = str(inputs.get("chart") or "").rsplit("/", 1)[-1]
            rows = _chart(inputs.get("values") or {}, chart)
        else:
            continue
        role = _role(inputs.get("spec") if r["type"] != HELM_RELEASE else None)
        found += [{"resource": r["name"], "urn": r["urn"], "layer": r["layer"], "role": role, **row} for row in rows]
    return found
