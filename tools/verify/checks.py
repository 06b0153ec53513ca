"""The acceptance checks, as pure functions of Kubernetes API JSON (lists of objects as `kubectl -o json`
returns them). Each returns one `Check` per thing it looked at, so the report names what failed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable

import yaml

from config.cron import longest_gap_seconds

Obj = dict[str, Any]


@dataclass(frozen=True)
class Check:
    name: str  # what was checked, e.g. "node prod-cp-1", "ScyllaCluster scylla/ads"
    ok: bool
    detail: str = ""


def _ref(obj: Obj) -> str:
    meta = obj.get("metadata", {})
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta.get("name", "?")


def _conditions(obj: Obj) -> dict[str, Obj]:
    return {c.get("type"): c for c in obj.get("status", {}).get("conditions") or []}


def _condition_true(obj: Obj, kind: str) -> bool:
    return _conditions(obj).get(kind, {}).get("status") == "True"


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- nodes and releases -----------------------------------------------------------------------------

def nodes_ready(nodes: list[Obj]) -> list[Check]:
    if not nodes:
        return [Check("nodes", False, "the cluster reports no node")]
    found = []
    for node in nodes:
        ready = _conditions(node).get("Ready", {})
        unschedulable = node.get("spec", {}).get("unschedulable", False)
        ok = ready.get("status") == "True"
        detail = ready.get("message", "") if not ok else ("cordoned" if unschedulable else "")
        found.append(Check(f"node {_ref(node)}", ok, detail))
    return found


def helm_releases(secrets: list[Obj]) -> list[Check]:
    """Helm 3 keeps each release revision in a Secret (type helm.sh/release.v1, labels name/status/version);
    the newest revision of each release must be `deployed`."""
    newest: dict[tuple[str, str], Obj] = {}
    for secret in secrets:
        if secret.get("type") != "helm.sh/release.v1":
            continue
        labels = secret["metadata"].get("labels", {})
        key = (secret["metadata"]["namespace"], labels.get("name", "?"))
        if key not in newest or int(labels.get("version", 0)) > int(newest[key]["metadata"]["labels"]["version"]):
            newest[key] = secret
    found = []
    for (namespace, name), secret in sorted(newest.items()):
        labels = secret["metadata"]["labels"]
        status = labels.get("status", "unknown")
        found.append(Check(f"helm release {namespace}/{name}", status == "deployed",
                           f"revision {labels.get('version')} is {status}"))
    return found


# --- the data plane's operator resources ------------------------------------------------------------

def _scylla(obj: Obj) -> tuple[bool, str]:
    cond = _conditions(obj)
    ok = (cond.get("Available", {}).get("status") == "True" and cond.get("Degraded", {}).get("status") != "True"
          and cond.get("Progressing", {}).get("status") != "True")
    return ok, "" if ok else "Available/Progressing/Degraded: " + ", ".join(
        f"{k}={cond.get(k, {}).get('status', '?')}" for k in ("Available", "Progressing", "Degraded"))


def _ready_condition(obj: Obj) -> tuple[bool, str]:
    ready = _conditions(obj).get("Ready", {})
    return ready.get("status") == "True", ready.get("message") or ready.get("reason") or "no Ready condition"


def _status_field(field: str, *good: str) -> Callable[[Obj], tuple[bool, str]]:
    def check(obj: Obj) -> tuple[bool, str]:
        value = obj.get("status", {}).get(field)
        return value in good, f"status.{field} is {value!r}, expected {' or '.join(map(repr, good))}"
    return check


@dataclass(frozen=True)
class Kind:
    resource: str  # what `kubectl get` takes: plural.group
    kind: str
    ready: Callable[[Obj], tuple[bool, str]]


# What each operator reports when its resource serves: ScyllaDB Operator's Available/Progressing/Degraded
# conditions, the Redpanda Operator's Ready condition, the Altinity operator's status.status (Completed after
# reconciling), the Dragonfly operator's status.phase, CloudNativePG's Ready condition. The Dragonfly operator
# (v1.6.1, internal/controller/util.go) writes PhaseReady `Ready`; older releases wrote `ready` (PhaseReadyOld),
# which a resource not reconciled since an upgrade may still show.
OPERATOR_KINDS = (
    Kind("scyllaclusters.scylla.scylladb.com", "ScyllaCluster", _scylla),
    Kind("redpandas.cluster.redpanda.com", "Redpanda", _ready_condition),
    Kind("clickhouseinstallations.clickhouse.altinity.com", "ClickHouseInstallation",
         _status_field("status", "Completed")),
    Kind("clickhousekeeperinstallations.clickhouse-keeper.altinity.com", "ClickHouseKeeperInstallation",
         _status_field("status", "Completed")),
    Kind("dragonflies.dragonflydb.io", "Dragonfly", _status_field("phase", "Ready", "ready")),
    Kind("clusters.postgresql.cnpg.io", "CNPG Cluster", _ready_condition),
)


def operator_resources(kind: Kind, objects: list[Obj]) -> list[Check]:
    found = []
    for obj in objects:
        ok, detail = kind.ready(obj)
        found.append(Check(f"{kind.kind} {_ref(obj)}", ok, "" if ok else detail))
    return found


def workloads_ready(kind: str, objects: Iterable[Obj]) -> list[Check]:
    """StatefulSets/Deployments of a chart without an operator (SeaweedFS): every replica ready."""
    found = []
    for obj in objects:
        want = obj.get("spec", {}).get("replicas", 1)
        have = obj.get("status", {}).get("readyReplicas", 0)
        found.append(Check(f"{kind} {_ref(obj)}", have >= want, f"{have}/{want} replicas ready"))
    return found


# --- hostnames --------------------------------------------------------------------------------------

def public_hostnames(routes: list[Obj]) -> list[str]:
    """Every hostname an HTTPRoute/GRPCRoute serves (the gateway's public names)."""
    return sorted({h for route in routes for h in route.get("spec", {}).get("hostnames") or [] if "*" not in h})


# --- alerts -----------------------------------------------------------------------------------------

def critical_alerts(alerts: list[Obj]) -> list[Check]:
    """Alertmanager API v2 /api/v2/alerts: any active, unsilenced, uninhibited `severity=critical` fails."""
    firing = [a for a in alerts if a.get("labels", {}).get("severity") == "critical"
              and a.get("status", {}).get("state", "active") == "active"]
    if not firing:
        return [Check("critical alerts", True, f"{len(alerts)} alert(s) active, none critical")]
    return [Check(f"alert {a['labels'].get('alertname', '?')}", False,
                  a.get("annotations", {}).get("summary") or a.get("annotations", {}).get("description", ""))
            for a in firing]


# --- backups ----------------------------------------------------------------------------------------

def cronjob_backups(cronjobs: list[Obj]) -> list[Check]:
    """A CronJob that has been scheduled must have succeeded since (or be running now)."""
    found = []
    for job in cronjobs:
        status = job.get("status", {})
        scheduled = status.get("lastScheduleTime")
        if scheduled is None:
            found.append(Check(f"CronJob {_ref(job)}", True, "not scheduled yet"))
            continue
        succeeded = status.get("lastSuccessfulTime")
        running = bool(status.get("active"))
        ok = running or (succeeded is not None and parse_time(succeeded) >= parse_time(scheduled))
        found.append(Check(f"CronJob {_ref(job)}", ok,
                           "running" if running else f"last scheduled {scheduled}, last success {succeeded}"))
    return found


# A backup may take this long after its scheduled time and still be on time (a large volume's upload).
BACKUP_GRACE = timedelta(hours=2)


def backup_max_age(cron: str) -> timedelta | None:
    """How old a schedule's newest backup may be: its longest gap between two runs (the schedule is the stack's
    config, daily or weekly), plus BACKUP_GRACE for the run due last to finish; None for a schedule that is not
    a five-field cron (not one the program wrote: `@every 6h`), which fails its check rather than the run."""
    try:
        return timedelta(seconds=longest_gap_seconds(cron)) + BACKUP_GRACE
    except ValueError:
        return None


def _unreadable(name: str, cron: str) -> Check:
    return Check(name, False, f"schedule {cron!r} is not a five-field cron, so its backups' age limit is unknown")


def velero_backups(schedules: list[Obj], backups: list[Obj], now: datetime) -> list[Check]:
    """Each Velero Schedule's newest Backup completed within its schedule's `backup_max_age`, once its first run
    is due."""
    found = []
    for schedule in schedules:
        name = schedule["metadata"]["name"]
        if (max_age := backup_max_age(schedule["spec"]["schedule"])) is None:
            found.append(_unreadable(f"Velero schedule {name}", schedule["spec"]["schedule"]))
            continue
        own = [b for b in backups if b["metadata"].get("labels", {}).get("velero.io/schedule-name") == name]
        created = parse_time(schedule["metadata"]["creationTimestamp"])
        if not own:
            found.append(Check(f"Velero schedule {name}", now - created < max_age,
                               "no backup yet" + ("" if now - created < max_age else f" after {now - created}")))
            continue
        newest = max(own, key=lambda b: b["metadata"]["creationTimestamp"])
        phase = newest.get("status", {}).get("phase")
        completed = newest.get("status", {}).get("completionTimestamp")
        recent = completed is not None and now - parse_time(completed) < max_age
        found.append(Check(f"Velero schedule {name}", phase == "Completed" and recent,
                           f"newest backup {newest['metadata']['name']} {phase}, completed {completed}"))
    return found


def cnpg_backups(scheduled: list[Obj], backups: list[Obj], now: datetime) -> list[Check]:
    """Each CloudNativePG ScheduledBackup's cluster has a completed Backup within its schedule's `backup_max_age`
    once it ran. Its schedule has a leading seconds field (components/data/postgres.py cron), dropped here."""
    found = []
    for item in scheduled:
        cluster = item["spec"]["cluster"]["name"]
        ref = _ref(item)
        if (max_age := backup_max_age(" ".join(item["spec"]["schedule"].split()[1:]))) is None:
            found.append(_unreadable(f"ScheduledBackup {ref}", item["spec"]["schedule"]))
            continue
        if not item.get("status", {}).get("lastScheduleTime"):
            found.append(Check(f"ScheduledBackup {ref}", True, "not scheduled yet"))
            continue
        done = [b for b in backups if b["spec"]["cluster"]["name"] == cluster
                and b.get("status", {}).get("phase") == "completed" and b["status"].get("stoppedAt")]
        newest = max((parse_time(b["status"]["stoppedAt"]) for b in done), default=None)
        ok = newest is not None and now - newest < max_age
        found.append(Check(f"ScheduledBackup {ref}", ok, f"newest completed backup {newest or 'none'}"))
    return found


# --- node autoscaler --------------------------------------------------------------------------------

def deployment_available(name: str, deployment: Obj | None) -> Check:
    if deployment is None:
        return Check(f"Deployment {name}", False, "not found")
    ok, detail = _condition_true(deployment, "Available"), _conditions(deployment).get("Available", {})
    ready = deployment.get("status", {}).get("readyReplicas", 0)
    return Check(f"Deployment {_ref(deployment)}", ok and ready > 0,
                 f"{ready} replica(s) ready" if ok else detail.get("message") or "not Available")


def autoscaler_status(configmap: Obj | None) -> dict[str, Any] | None:
    """The cluster autoscaler's status ConfigMap (`data.status`, YAML: clusterstate/api ClusterAutoscalerStatus),
    tolerating the `Cluster-autoscaler status at ...:` first line older releases put before it."""
    if configmap is None:
        return None
    text = (configmap.get("data") or {}).get("status", "")
    if text.startswith("Cluster-autoscaler status at"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return parsed if isinstance(parsed, dict) else None


def is_group(registered: str, expected: str) -> bool:
    """Whether the autoscaler's name of a node group is the program's group `expected` (NodeGroupRequest.name):
    each provider names the group after it, behind a stack prefix (Hetzner `adp-<stack>-`, AWS/Azure
    `<prefix>-`) or at the end of a URL (a GCE managed instance group)."""
    if expected.endswith("-*"):  # an unpinned pool's groups, one per zone its provider chose: `<pool>-<zone>`
        stem = expected[:-1]
        tail = registered.rsplit("/", 1)[-1]
        return tail.startswith(stem) or f"-{stem}" in tail
    return registered == expected or registered.endswith(("-" + expected, "/" + expected))


def node_autoscaler(deployment: Obj | None, configmap: Obj | None, expected: list[str]) -> list[Check]:
    """The autoscaler runs, reports `Running`, and every node group the stack's config declares is registered."""
    found = [deployment_available("cluster-autoscaler", deployment)]
    status = autoscaler_status(configmap)
    if status is None:
        detail = "no status ConfigMap yet" if configmap is None else "its status is not the autoscaler's YAML"
        return [*found, Check("autoscaler status", False, detail)]
    state = status.get("autoscalerStatus", "?")
    found.append(Check("autoscaler status", state == "Running", f"autoscalerStatus {state}"))
    registered = [g.get("name", "") for g in status.get("nodeGroups") or []]
    for name in expected:
        match = [r for r in registered if is_group(r, name)]
        found.append(Check(f"node group {name}", bool(match), f"registered as {match[0]}" if match else
                           f"not registered (the autoscaler lists: {', '.join(registered) or 'none'})"))
    return found


# --- restore drills ---------------------------------------------------------------------------------

def restore_drills(cronjobs: list[Obj], expected: list[str], now: datetime, stale_factor: int) -> list[Check]:
    """Each drill CronJob succeeded within `stale_factor` of its schedule's periods (its longest gap), once it
    has been scheduled; before its first schedule it has simply not run yet."""
    by_name = {job["metadata"]["name"]: job for job in cronjobs}
    found = []
    for name in expected:
        job = by_name.get(name)
        if job is None:
            found.append(Check(f"drill {name}", False, "no such CronJob"))
            continue
        status = job.get("status", {})
        if not status.get("lastScheduleTime"):
            found.append(Check(f"drill {_ref(job)}", True, "not yet run (before its first schedule)"))
            continue
        limit = timedelta(seconds=stale_factor * longest_gap_seconds(job["spec"]["schedule"]))
        succeeded = status.get("lastSuccessfulTime")
        if succeeded is None and status.get("active"):
            found.append(Check(f"drill {_ref(job)}", True, "first run in progress"))
            continue
        ok = succeeded is not None and now - parse_time(succeeded) < limit
        found.append(Check(f"drill {_ref(job)}", ok, f"last success {succeeded or 'never'}"
                           + ("" if ok else f", limit {limit} ({stale_factor} schedule periods)")))
    return found
