"""`make verify`: the live acceptance checks against recorded API responses (issue 21)."""

from __future__ import annotations

import io
import json
import ssl
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

import pytest

from tools.verify import __main__ as verify
from tools.verify import checks, tls
from tools.verify.checks import Check
from tools.verify.kube import Kubectl, KubectlError

FIXTURES = Path(__file__).parent / "fixtures" / "verify"
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc)


def answers(name: str) -> dict:
    """A recorded stack (`name`.json) with the live parts every stack here has (live.json: the consumers'
    Deployments and Secrets, the autoscaler and its status, the restore drill), lists joined."""
    found = json.loads((FIXTURES / f"{name}.json").read_text())
    for key, value in json.loads((FIXTURES / "live.json").read_text()).items():
        found[key] = found.get(key, []) + value if isinstance(value, list) else value
    return found


class Recorded(Kubectl):
    """kubectl answering from a recorded file: `<resource>` -> items, `raw:<path>` -> body,
    `get:<kind>/<namespace>/<name>` -> object. Probe pods end in `phases[store]` (default Succeeded)."""

    def __init__(self, name: str, phases: dict[str, str] | None = None, log: str = ""):
        super().__init__("unused")
        for key, value in (("answers", answers(name)), ("phases", phases or {}), ("log", log), ("created", []),
                           ("deleted", [])):
            object.__setattr__(self, key, value)

    def list(self, resource):
        return self.answers.get(resource)  # absent: the CRD is not installed

    def raw(self, path):
        if f"raw:{path}" not in self.answers:
            raise KubectlError(f"kubectl get --raw {path}: Error from server (ServiceUnavailable)")
        return self.answers[f"raw:{path}"]

    def get(self, kind, namespace, name):
        if kind == "pod":
            store = name.split("-")[2]  # adplatform-verify-<store>-<suffix>
            return {"status": {"phase": self.phases.get(store, "Succeeded")}}
        return self.answers.get(f"get:{kind}/{namespace}/{name}")

    def create(self, manifest):
        self.created.append(manifest)

    def delete(self, kind, namespace, name):
        self.deleted.append(f"{kind}/{namespace}/{name}")

    def logs(self, namespace, name):
        return self.log


@lru_cache(maxsize=None)
def config(stack: str = "production"):
    return verify.stack_file_config(stack)


def fixture(name: str, key: str) -> list:
    return json.loads((FIXTURES / f"{name}.json").read_text())[key]


def good_probe(host: str, now: datetime) -> Check:
    return Check(f"https://{host}", True, "203.0.113.10, certificate valid")


def run(name: str, probe=good_probe, kube: Recorded | None = None) -> tuple[int, str]:
    out = io.StringIO()
    failed = verify.run(kube or Recorded(name), NOW, config(), out=out, probe=probe)
    return failed, out.getvalue()


def test_a_healthy_stack_passes_every_section():
    failed, report = run("healthy")
    assert failed == 0, report
    assert report.rstrip().endswith("All checks passed.")
    for title in ("nodes Ready", "Helm releases deployed", "ScyllaCluster Ready", "Redpanda Ready",
                  "ClickHouseInstallation Ready", "ClickHouseKeeperInstallation Ready", "Dragonfly Ready",
                  "CNPG Cluster Ready", "SeaweedFS ready", "public hostnames", "no critical alert", "backups recent",
                  "stores accept a consumer's write and read", "node autoscaler", "restore drills recent"):
        assert f" ok  {title}" in report, title


def test_a_broken_stack_names_every_failure():
    failed, report = run("broken")
    for expected in ("x node production-scylla-2: Kubelet stopped posting node status.",
                     "x helm release gitlab/gitlab: revision 3 is failed",
                     "x ScyllaCluster scylla/scylla:", "x Redpanda redpanda/redpanda: failed to render the chart",
                     "x ClickHouseInstallation clickhouse/analytics: status.status is 'InProgress'",
                     "x Dragonfly dragonfly/dragonfly:", "x CNPG Cluster postgres/postgres: Cluster Is Not Ready",
                     "x StatefulSet seaweedfs/seaweedfs-volume: 2/3 replicas ready",
                     "x alert KubePersistentVolumeFillingUp: PersistentVolume is filling up.",
                     "x CronJob gitlab/gitlab-toolbox-backup", "x Velero schedule daily: newest backup "
                     "daily-20261207020000 PartiallyFailed", "x ScheduledBackup postgres/postgres-daily"):
        assert expected in report, expected
    assert failed == 12
    assert "FAILED: 12 check(s)" in report


def test_exit_code_is_non_zero_on_failure(monkeypatch):
    monkeypatch.setattr(verify, "Kubectl", lambda path: Recorded("broken"))
    monkeypatch.setattr(verify, "stack_file_config", lambda stack: config())
    monkeypatch.setattr(verify.tls, "hostname", good_probe)
    assert verify.main(["production", "--kubeconfig", "/dev/null"]) == 1


def test_hostnames_come_from_the_routes_and_a_bad_certificate_fails():
    routes = fixture("broken", "httproutes.gateway.networking.k8s.io")
    assert checks.public_hostnames(routes) == ["gitlab.ads.example.com", "grafana.ads.example.com"]

    def probe(host, now):
        return Check(f"https://{host}", host.startswith("gitlab"), "invalid certificate: self-signed")
    failed, report = run("healthy", probe)
    assert failed == 0, "the healthy fixture routes only gitlab"
    failed, report = run("broken", probe)
    assert "x https://grafana.ads.example.com: invalid certificate: self-signed" in report


def test_alertmanager_not_answering_fails():
    kube = Recorded("healthy")
    kube.answers.pop(next(k for k in kube.answers if k.startswith("raw:")))
    out = io.StringIO()
    assert verify.run(kube, NOW, config(), out=out, probe=good_probe) == 1
    assert "Alertmanager did not answer" in out.getvalue()


def test_backups_pending_until_their_first_schedule():
    schedule = {"metadata": {"name": "daily", "creationTimestamp": "2026-12-07T08:00:00Z"}}
    assert checks.velero_backups([schedule], [], NOW)[0].ok, "created an hour ago: no backup due yet"
    assert not checks.velero_backups([schedule], [], NOW + timedelta(days=2))[0].ok
    assert checks.cronjob_backups([{"metadata": {"name": "b", "namespace": "x"}, "status": {}}])[0].ok
    running = {"metadata": {"name": "b", "namespace": "x"},
               "status": {"lastScheduleTime": "2026-12-07T04:00:00Z", "active": [{"name": "b-1"}]}}
    assert checks.cronjob_backups([running])[0].ok


def test_the_newest_helm_revision_decides():
    secrets = fixture("healthy", "secrets")
    (release,) = checks.helm_releases(secrets)
    assert release == Check("helm release cert-manager/cert-manager", True, "revision 2 is deployed")


def test_tls_probe_reports_resolution_failures(monkeypatch):
    def fail(*args, **kwargs):
        raise tls.socket.gaierror(-2, "Name or service not known")
    monkeypatch.setattr(tls.socket, "getaddrinfo", fail)
    result = tls.hostname("missing.ads.example.com", NOW)
    assert not result.ok and "does not resolve" in result.detail


def test_tls_probe_rejects_an_invalid_certificate(monkeypatch):
    monkeypatch.setattr(tls.socket, "getaddrinfo", lambda *a, **k: [(0, 0, 0, "", ("203.0.113.10", 443))])

    class Sock:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    class Context:
        def wrap_socket(self, sock, server_hostname):
            raise ssl.SSLCertVerificationError("certificate verify failed: self-signed certificate")
    monkeypatch.setattr(tls.socket, "create_connection", lambda *a, **k: Sock())
    result = tls.hostname("gitlab.ads.example.com", NOW, context=Context())
    assert not result.ok and "invalid certificate" in result.detail and "203.0.113.10" in result.detail


def test_a_stack_without_monitoring_has_no_alertmanager_to_ask():
    class NoMonitoring(Recorded):
        def raw(self, path):
            raise KubectlError('Error from server (NotFound): services "alertmanager-operated" not found')
    out = io.StringIO()
    assert verify.run(NoMonitoring("healthy"), NOW, config(), out=out, probe=good_probe) == 0
