"""python -m tools.verify <stack> [--kubeconfig FILE]: check a deployed stack; exit 1 when anything fails."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from typing import Callable, Iterable

from components.data.context import DRILL_NAMESPACE
from components.data.drills import STALE_FACTOR
from components.services import autoscaler
from config.model import StackConfig
from tools.verify import checks, expected, stores, tls
from tools.verify.checks import Check
from tools.verify.kube import Kubectl, KubectlError

# The Alertmanager API through the API server's Service proxy (no port-forward): the operator's governing
# Service of kube-prometheus-stack's Alertmanager (components/platform/context.py ALERTMANAGER_URL).
ALERTS_PATH = ("/api/v1/namespaces/monitoring/services/alertmanager-operated:9093/proxy/api/v2/alerts"
               "?active=true&silenced=false&inhibited=false")
SEAWEEDFS_NAMESPACE = "seaweedfs"
# The chart passes --namespace=<release namespace>: the autoscaler writes its status ConfigMap there.
AUTOSCALER_STATUS = "cluster-autoscaler-status"


def sections(kube: Kubectl, now: datetime, cfg: StackConfig,
             probe: Callable[[str, datetime], Check] = tls.hostname) -> Iterable[tuple[str, Callable[[], list[Check]]]]:
    """(title, how to check it): run in order, each shown as it runs."""
    def listed(resource: str) -> list[dict]:
        return kube.list(resource) or []

    def cronjobs(drills: bool) -> list[dict]:
        return [c for c in listed("cronjobs") if (c["metadata"]["namespace"] == DRILL_NAMESPACE) == drills]

    yield "nodes Ready", lambda: checks.nodes_ready(listed("nodes"))
    yield "Helm releases deployed", lambda: checks.helm_releases(kube.helm_releases())
    for kind in checks.OPERATOR_KINDS:
        yield f"{kind.kind} Ready", lambda kind=kind: checks.operator_resources(kind, listed(kind.resource))
    yield "SeaweedFS ready", lambda: checks.workloads_ready(
        "StatefulSet", (s for s in listed("statefulsets") if s["metadata"]["namespace"] == SEAWEEDFS_NAMESPACE))
    yield "public hostnames", lambda: [probe(host, now) for host in checks.public_hostnames(
        listed("httproutes.gateway.networking.k8s.io") + listed("grpcroutes.gateway.networking.k8s.io"))]
    yield "no critical alert", lambda: _alerts(kube)
    yield "backups recent", lambda: [
        *checks.cronjob_backups(cronjobs(drills=False)),
        *checks.velero_backups(listed("schedules.velero.io"), listed("backups.velero.io"), now),
        *checks.cnpg_backups(listed("scheduledbackups.postgresql.cnpg.io"), listed("backups.postgresql.cnpg.io"),
                             now)]
    yield "stores accept a consumer's write and read", lambda: stores.store_roundtrips(kube, cfg, now)
    if groups := expected.node_groups(cfg):
        namespace = autoscaler.NAMESPACE
        yield "node autoscaler", lambda: checks.node_autoscaler(
            kube.get("deployment", namespace, autoscaler.NAME), kube.get("configmap", namespace, AUTOSCALER_STATUS),
            groups)
    if drills := expected.drill_cronjobs(cfg):
        yield "restore drills recent", lambda: checks.restore_drills(cronjobs(drills=True), drills, now, STALE_FACTOR)


def _alerts(kube: Kubectl) -> list[Check]:
    try:
        return checks.critical_alerts(kube.raw(ALERTS_PATH))
    except KubectlError as err:
        if "NotFound" in str(err):  # platform.monitoring off: no Alertmanager Service in this stack
            return [Check("critical alerts", True, "no Alertmanager in this stack (platform.monitoring off)")]
        return [Check("critical alerts", False, f"Alertmanager did not answer: {err}")]


def run(kube: Kubectl, now: datetime, cfg: StackConfig, out=None,
        probe: Callable[[str, datetime], Check] | None = None) -> int:
    """Print each section as it runs and each failure; return the number of failed checks."""
    out = out or sys.stdout
    failed = 0
    for title, check in sections(kube, now, cfg, probe or tls.hostname):
        print(f"... {title}", end="", flush=True, file=out)
        try:
            results = check()
        except KubectlError as err:
            results = [Check(title, False, str(err))]
        bad = [r for r in results if not r.ok]
        failed += len(bad)
        print(f"\r{'FAIL' if bad else ' ok '} {title} ({len(results) - len(bad)}/{len(results)})", file=out)
        for r in bad:
            print(f"       x {r.name}: {r.detail}", file=out)
    print(f"\n{'FAILED: ' + str(failed) + ' check(s)' if failed else 'All checks passed.'}", file=out)
    return failed


def stack_kubeconfig(stack: str) -> str:
    """The stack's kubeconfig output in a private temporary file."""
    text = subprocess.run(["pulumi", "stack", "output", "kubeconfig", "--show-secrets", "--stack", stack],
                          capture_output=True, text=True, check=True).stdout
    handle, path = tempfile.mkstemp(prefix=f"adplatform-{stack}-", suffix=".kubeconfig")
    with os.fdopen(handle, "w") as f:  # mkstemp creates it 0600
        f.write(text)
    return path


def stack_file_config(stack: str) -> StackConfig:
    """The stack's validated config from its stack file (what to expect: node groups, drills, consumers); secret
    values are placeholders, never needed here."""
    from tools.mockrun import stack_config
    from tools.plan.limits import config_of
    return config_of(stack, *stack_config(stack))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.verify", description=__doc__)
    parser.add_argument("stack")
    parser.add_argument("--kubeconfig", help="instead of the stack's kubeconfig output")
    args = parser.parse_args(argv)
    cfg = stack_file_config(args.stack.rsplit("/", 1)[-1])  # `<org>/<stack>` (make ORG=...): Pulumi.<stack>.yaml
    path = args.kubeconfig or stack_kubeconfig(args.stack)
    try:
        print(f"Verifying stack {args.stack}")
        return 1 if run(Kubectl(path), datetime.now(timezone.utc), cfg) else 0
    finally:
        if not args.kubeconfig:
            os.unlink(path)


if __name__ == "__main__":
    sys.exit(main())
