"""`make verify`: the live acceptance checks against recorded API responses (issue 21)."""

from __future__ import annotations

import base64
import io
import json
import re
import ssl
import subprocess
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

import pytest

from components import charts
from components.data import drills, objectstore
from tests import validators
from config.data import BUCKET_PURPOSES
from tests.conftest import stack_run
from tools.verify import __main__ as verify
from tools.verify import checks, expected, stores, tls
from tools.verify import kube as kube_module
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

    def helm_releases(self):
        return [s for s in self.answers.get("secrets", []) if s["metadata"].get("labels", {}).get("owner") == "helm"]

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
    schedule = {"metadata": {"name": "daily", "creationTimestamp": "2026-12-07T08:00:00Z"},
                "spec": {"schedule": "0 2 * * *"}}
    assert checks.velero_backups([schedule], [], NOW)[0].ok, "created an hour ago: no backup due yet"
    assert not checks.velero_backups([schedule], [], NOW + timedelta(days=2))[0].ok
    assert checks.cronjob_backups([{"metadata": {"name": "b", "namespace": "x"}, "status": {}}])[0].ok
    running = {"metadata": {"name": "b", "namespace": "x"},
               "status": {"lastScheduleTime": "2026-12-07T04:00:00Z", "active": [{"name": "b-1"}]}}
    assert checks.cronjob_backups([running])[0].ok


def test_helm_releases_are_read_from_their_secrets_labels_never_their_data(monkeypatch):
    calls = []

    def fake(args, **kwargs):
        calls.append(args)
        out = ("helm.sh/release.v1\tgitlab\tsh.helm.release.v1.gitlab.v2\tgitlab\tdeployed\t2\n"
               "helm.sh/release.v1\tgitlab\tsh.helm.release.v1.gitlab.v3\tgitlab\tfailed\t3\n")
        return subprocess.CompletedProcess(args, 0, stdout=out, stderr="")
    monkeypatch.setattr(kube_module.subprocess, "run", fake)
    helm = dict(verify.sections(Kubectl("/tmp/kubeconfig"), NOW, config(), good_probe))["Helm releases deployed"]
    assert helm() == [Check("helm release gitlab/gitlab", False, "revision 3 is failed")]
    [args] = calls
    assert args[3:8] == ["get", "secrets", "--all-namespaces", "--selector", "owner=helm"]
    output = args[args.index("-o") + 1]
    assert output.startswith("jsonpath=") and ".data" not in output, output


def weekly_backups(completed: str) -> tuple[list[Check], list[Check]]:
    """The healthy fixture's Velero and CloudNativePG backups on Sunday schedules, their newest finished on
    `completed` (a date); NOW is the Monday after 2026-12-06."""
    velero = fixture("healthy", "schedules.velero.io")
    velero[0]["spec"]["schedule"] = "0 2 * * 0"
    velero_done = fixture("healthy", "backups.velero.io")
    velero_done[0]["status"]["completionTimestamp"] = f"{completed}T02:14:09Z"
    cnpg = fixture("healthy", "scheduledbackups.postgresql.cnpg.io")
    cnpg[0]["spec"]["schedule"] = "0 0 3 * * 0"  # CloudNativePG's leading seconds field
    cnpg_done = fixture("healthy", "backups.postgresql.cnpg.io")
    cnpg_done[0]["status"]["stoppedAt"] = f"{completed}T03:05:40Z"
    return checks.velero_backups(velero, velero_done, NOW), checks.cnpg_backups(cnpg, cnpg_done, NOW)


def test_a_weekly_backup_schedule_allows_a_week_and_no_more():
    velero, cnpg = weekly_backups("2026-12-06")  # yesterday's run: 31 hours old, within the week
    assert velero[0].ok and cnpg[0].ok, (velero, cnpg)
    velero, cnpg = weekly_backups("2026-11-29")  # last Sunday's run missed: 8 days old
    assert not velero[0].ok and not cnpg[0].ok, (velero, cnpg)
    assert cnpg[0].detail == "newest completed backup 2026-11-29 03:05:40+00:00"


def test_a_daily_backup_schedule_allows_a_day_and_its_grace():
    assert checks.backup_max_age("0 2 * * *") == timedelta(hours=26)
    assert checks.backup_max_age("0 */6 * * *") == timedelta(hours=8)


def test_a_backup_schedule_that_is_not_a_five_field_cron_fails_its_check_only():
    velero = [{"metadata": {"name": "hourly", "creationTimestamp": "2026-12-01T00:00:00Z"},
               "spec": {"schedule": "@every 1h"}}]
    (check,) = checks.velero_backups(velero, [], NOW)
    assert check == Check("Velero schedule hourly", False,
                          "schedule '@every 1h' is not a five-field cron, so its backups' age limit is unknown")


def test_the_newest_helm_revision_decides():
    secrets = fixture("healthy", "secrets")
    (release,) = checks.helm_releases(secrets)
    assert release == Check("helm release cert-manager/cert-manager", True, "revision 2 is deployed")


def test_a_kubectl_that_does_not_answer_fails_its_section_and_the_rest_still_run(monkeypatch):
    def hang(args, timeout, **kwargs):
        raise subprocess.TimeoutExpired(args, timeout)
    monkeypatch.setattr(kube_module.subprocess, "run", hang)
    with pytest.raises(KubectlError, match=r"kubectl get nodes --all-namespaces -o json: no answer within 60s"):
        Kubectl("unused").list("nodes")
    out = io.StringIO()
    failed = verify.run(Kubectl("unused"), NOW, config(), out=out, probe=good_probe)
    report = out.getvalue()
    assert "FAIL nodes Ready (0/1)" in report and "FAIL backups recent" in report, report
    assert report.rstrip().endswith(f"FAILED: {failed} check(s)")


DRAGONFLY = next(k for k in checks.OPERATOR_KINDS if k.kind == "Dragonfly")


@pytest.mark.parametrize("phase, ok", [("Ready", True), ("ready", True), ("ResourcesCreated", False),
                                       ("RollingUpdate", False), (None, False)])
def test_dragonfly_is_ready_in_the_operators_current_and_older_phase_spelling(phase, ok):
    """The pinned operator (v1.6.1) writes PhaseReady `Ready`; `ready` is what earlier releases wrote."""
    dragonfly = {"metadata": {"name": "dragonfly", "namespace": "dragonfly"}, "status": {"phase": phase}}
    (check,) = checks.operator_resources(DRAGONFLY, [dragonfly])
    assert check.ok is ok, check.detail


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


# --- stores: a write and a read with a consumer's own login ------------------------------------------------
SECRETS = json.loads((FIXTURES / "live.json").read_text())["secrets"]  # the consumers' logins, in the cluster
SECRET_VALUES = [v for s in SECRETS for v in (s["data"]["password"], base64.b64decode(s["data"]["password"]).decode())]


def probe_pods(kube: Recorded) -> dict[str, dict]:
    return {m["metadata"]["name"].split("-")[2]: m for m in kube.created}


def test_each_store_is_written_and_read_by_a_pod_wearing_the_first_ad_services_identity():
    kube = Recorded("healthy")
    failed, report = run("healthy", kube=kube)
    assert failed == 0, report
    pods = probe_pods(kube)
    assert set(pods) == {"scylladb", "redpanda", "clickhouse", "dragonfly", "postgres", "objectstore"}
    owners = {"scylladb": "ad-serving", "redpanda": "ad-serving", "dragonfly": "ad-serving",
              "clickhouse": "analytics-ingestion"}  # the first ad service using each store (production config order)
    for store, service in owners.items():
        pod = pods[store]
        assert pod["metadata"]["namespace"] == "ads"
        # The service's selector labels: its NetworkPolicy's egress and the store's ingress apply to the probe.
        assert {"app.kubernetes.io/name": service, "app.kubernetes.io/part-of": "adplatform"}.items() <= \
            pod["metadata"]["labels"].items()
        [container] = pod["spec"]["containers"]
        assert container["image"] == stores.PROBES[store].image and ":" in container["image"].rsplit("/", 1)[1]
        logins = [e for e in container["env"] if "valueFrom" in e]
        assert logins and {e["valueFrom"]["secretKeyRef"]["name"] for e in logins} == {f"{service}-{store}"}
        assert pod["spec"]["securityContext"]["runAsNonRoot"] and container["securityContext"]["readOnlyRootFilesystem"]
        # Never Ready, so the service's Service never routes a request to it.
        assert container["readinessProbe"] == {"tcpSocket": {"port": 1}, "periodSeconds": 60}
    assert sorted(kube.deleted) == sorted(f"pod/{m['metadata']['namespace']}/{m['metadata']['name']}"
                                          for m in kube.created)
    redpanda = pods["redpanda"]["spec"]
    ca = {"secretName": "redpanda-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    assert {"name": "redpanda-ca", "secret": ca} in redpanda["volumes"], "rpk needs the CA the service trusts"


def test_a_failed_write_or_read_fails_with_the_pods_own_words_and_the_pod_is_removed():
    kube = Recorded("healthy", phases={"scylladb": "Failed"}, log="create table\nwrite\nread")
    failed, report = run("healthy", kube=kube)
    assert failed == 1
    assert "FAIL stores accept a consumer's write and read (5/6)" in report
    assert "x scylladb write/read as ad-serving: pod ads/adplatform-verify-scylladb-" in report
    detail = report.split("x scylladb write/read as ad-serving: ")[1].splitlines()[0]
    assert detail.endswith("Failed: create table | write | read")
    assert len(kube.deleted) == 6


def test_a_probe_pod_the_namespace_refuses_fails_that_store_only():
    class Full(Recorded):
        def create(self, manifest):
            if "-clickhouse-" in manifest["metadata"]["name"]:
                raise KubectlError('kubectl create -f -: Error from server (Forbidden): exceeded quota: ads-quota')
            super().create(manifest)
    failed, report = run("healthy", kube=Full("healthy"))
    assert failed == 1 and "(5/6)" in report
    assert ("x clickhouse write/read as analytics-ingestion: could not start the probe pod: kubectl create -f -: "
            "Error from server (Forbidden): exceeded quota: ads-quota") in report


def test_a_probe_that_never_finishes_fails_and_is_removed():
    kube = Recorded("healthy", phases={"redpanda": "Pending"})
    result = stores.roundtrip(kube, config(), "redpanda", "ad-serving", NOW, sleep=lambda s: None)
    assert not result.ok and "Pending" in result.detail
    assert kube.deleted == [f"pod/ads/{kube.created[0]['metadata']['name']}"]


@pytest.mark.parametrize("reason, message", [
    ("CreateContainerConfigError", 'secret "ad-serving-redpanda" not found'),
    ("ImagePullBackOff", 'Back-off pulling image "redpandadata/redpanda:v0"'),
])
def test_a_probe_that_cannot_start_fails_at_once_with_the_kubelets_reason(reason, message):
    class Stuck(Recorded):
        def get(self, kind, namespace, name):
            if kind != "pod":
                return super().get(kind, namespace, name)
            return {"status": {"phase": "Pending", "containerStatuses": [
                {"name": "probe", "state": {"waiting": {"reason": reason, "message": message}}}]}}

    kube, naps = Stuck("healthy"), []
    result = stores.roundtrip(kube, config(), "redpanda", "ad-serving", NOW, sleep=naps.append)
    assert not result.ok and f"Pending ({reason}: {message})" in result.detail
    assert naps == []  # no waiting out the deadline for a Secret or an image that will not come
    assert kube.deleted == [f"pod/ads/{kube.created[0]['metadata']['name']}"]


def test_a_probe_still_creating_its_container_is_waited_for():
    class Creating(Recorded):
        calls = 0

        def get(self, kind, namespace, name):
            if kind != "pod":
                return super().get(kind, namespace, name)
            Creating.calls += 1
            if Creating.calls < 3:
                return {"status": {"phase": "Pending", "containerStatuses": [
                    {"name": "probe", "state": {"waiting": {"reason": "ContainerCreating"}}}]}}
            return {"status": {"phase": "Succeeded"}}

    naps: list = []
    result = stores.roundtrip(Creating("healthy"), config(), "redpanda", "ad-serving", NOW, sleep=naps.append)
    assert result.ok and len(naps) == 2


def test_a_consumer_wired_to_another_login_or_missing_fails_without_a_pod():
    kube = Recorded("healthy")
    deployment = kube.answers["get:deployment/ads/ad-serving"]
    for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
        if e["name"] == "DRAGONFLY_PASSWORD":
            e["valueFrom"]["secretKeyRef"]["name"] = "dragonfly-admin"
    result = stores.roundtrip(kube, config(), "dragonfly", "ad-serving", NOW)
    assert not result.ok and result.detail == ("its dragonfly login comes from dragonfly-admin, not its own Secret "
                                               "ad-serving-dragonfly")
    del kube.answers["get:deployment/ads/analytics-ingestion"]
    result = stores.roundtrip(kube, config(), "clickhouse", "analytics-ingestion", NOW)
    assert not result.ok and result.detail == "no Deployment ads/analytics-ingestion"
    assert kube.created == []


def test_no_credential_reaches_verifys_output_the_pod_spec_or_kubectls_arguments(monkeypatch):
    kube = Recorded("healthy", phases={store: "Failed" for store in stores.PROBES}, log="NOAUTH Authentication failed")
    failed, report = run("healthy", kube=kube)
    assert failed == 6
    manifests = json.dumps(kube.created)
    for value in SECRET_VALUES:
        assert value not in report and value not in manifests
    # The real kubectl: the pod goes on stdin, never on a command line.
    calls = []

    def fake(args, **kwargs):
        calls.append((args, kwargs.get("input")))
        return subprocess.CompletedProcess(args, 0, stdout="{}", stderr="")
    monkeypatch.setattr(kube_module.subprocess, "run", fake)
    Kubectl("/tmp/kubeconfig").create(kube.created[0])
    [(args, stdin)] = calls
    assert args[-3:] == ["create", "-f", "-"] and json.loads(stdin) == kube.created[0]


def test_the_probes_use_only_what_the_services_wiring_gives_them():
    """Each script reads env the program's ad service Deployment sets (plus MARKER/HOME and what the script
    itself defines), and the recorded Deployments are the program's current wiring."""
    run_ = stack_run("production")
    program = {r.inputs["metadata"]["name"]: r.inputs for r in run_.of_type("kubernetes:apps/v1:Deployment")
               if "adplatform:ads:" in r.urn}
    recorded = answers("healthy")
    for service in ("ad-serving", "analytics-ingestion"):
        live = recorded[f"get:deployment/ads/{service}"]["spec"]["template"]["spec"]
        want = program[service]["spec"]["template"]["spec"]
        assert live["containers"][0]["env"] == want["containers"][0]["env"], "live.json: regenerate from the program"
        assert live["volumes"] == want["volumes"]
    for store, service in stores.first_ad_consumers(config()).items():
        probe = stores.PROBES[store]
        wiring = {e["name"] for e in stores.wiring_env(program[service], probe)}
        defined = set(re.findall(r"(?:export |\s)([A-Z_]+)=", probe.script))
        used = set(re.findall(r"\$\{([A-Z_]+)", probe.script))
        given = wiring | {"MARKER", "HOME"} | set(probe.extra(service, config()))
        assert used and used - defined <= given, (store, used - defined - given)


# --- PostgreSQL and the object store: a platform component's own login ------------------------------------------
def container_of(pod: dict) -> dict:
    [container] = pod["spec"]["containers"]
    return container


def env_of(pod: dict) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """(plain values, name -> (Secret, key))."""
    env = container_of(pod)["env"]
    refs = {e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
            for e in env if "valueFrom" in e}
    return {e["name"]: e["value"] for e in env if "value" in e}, refs


def program_secrets(stack: str) -> dict[tuple[str, str], set[str]]:
    """(namespace, name) -> keys of every Secret the program creates."""
    def keys(data) -> set[str]:
        return set(getattr(data, "value", data) or {})  # the whole map may reach the engine marked secret
    return {(r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]): keys(r.inputs.get("stringData"))
            for r in stack_run(stack).of_type("kubernetes:core/v1:Secret")}


def test_postgres_and_the_object_store_are_probed_with_a_platform_components_own_login():
    kube = Recorded("healthy")
    failed, report = run("healthy", kube=kube)
    assert failed == 0, report
    assert " ok  stores accept a consumer's write and read (6/6)" in report
    pods = probe_pods(kube)
    made = program_secrets("production")
    # GitLab's copy of its database owner's login, in its own namespace (that namespace's egress applies), its own
    # database (pg_hba admits the role nowhere else).
    pg = pods["postgres"]
    values, refs = env_of(pg)
    assert pg["metadata"]["namespace"] == "gitlab" and container_of(pg)["image"] == charts.POSTGRES_IMAGE
    assert refs == {"PGUSER": ("gitlab-postgres", "username"), "PGPASSWORD": ("gitlab-postgres", "password")}
    assert {"username", "password"} <= made[("gitlab", "gitlab-postgres")]
    assert values["PGHOST"] == "postgres-rw.postgres.svc" and values["PGDATABASE"] == "gitlab"
    assert values["PGPORT"] == "5432" and values["PGSSLMODE"] == "require"
    # MLflow's S3 keys, its own bucket, which its SeaweedFS identity may write and nothing else may.
    s3 = pods["objectstore"]
    values, refs = env_of(s3)
    assert s3["metadata"]["namespace"] == "mlflow" and container_of(s3)["image"] == stores.CURL_IMAGE
    assert refs == {"S3_ACCESS_KEY": ("mlflow-s3", "AWS_ACCESS_KEY_ID"),
                    "S3_SECRET_KEY": ("mlflow-s3", "AWS_SECRET_ACCESS_KEY")}
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= made[("mlflow", "mlflow-s3")]
    assert values["S3_ENDPOINT"] == "http://s3.seaweedfs.svc:8333" and values["S3_BUCKET"] == "mlflow-artifacts"
    [identity] = json.loads(objectstore.s3_config({"mlflow": ("id", "key")}, {p: p for p in BUCKET_PURPOSES}))[
        "identities"]
    assert "Write:mlflow-artifacts" in identity["actions"]
    assert "Write:mlflow-artifacts" not in {a for i in json.loads(objectstore.s3_config(
        {"logs": ("id", "key")}, {p: p for p in BUCKET_PURPOSES}))["identities"] for a in i["actions"]}
    assert values["S3_PREFIX"] == "adplatform-verify"
    for pod in (pg, s3):
        assert pod["spec"]["securityContext"]["runAsNonRoot"] and container_of(pod)["readinessProbe"]


def test_without_a_platform_consumer_postgres_is_probed_as_the_first_databases_owner():
    """Staging runs PostgreSQL for no platform component: the owner role's own Secret in `postgres`; its object store
    serves Loki."""
    cfg = config("staging")
    targets = stores.platform_targets(cfg)
    pg = targets["postgres"]
    assert (pg.consumer, pg.namespace, pg.secret) == ("gitlab", "postgres", "postgres-gitlab")
    assert {"username", "password"} <= program_secrets("staging")[("postgres", "postgres-gitlab")]
    s3 = targets["objectstore"]
    assert (s3.consumer, s3.namespace, s3.secret) == ("logs", "logging", "loki-s3")
    assert {"name": "S3_BUCKET", "value": "logs"} in s3.env
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= program_secrets("staging")[("logging", "loki-s3")]


def test_a_failed_postgres_write_fails_verify_with_the_clients_words(monkeypatch):
    kube = Recorded("healthy", phases={"postgres": "Failed"},
                    log="create table\nwrite\nERROR:  permission denied for table adplatform-verify")
    failed, report = run("healthy", kube=kube)
    assert failed == 1 and "FAIL stores accept a consumer's write and read (5/6)" in report
    detail = report.split("x postgres write/read as gitlab: ")[1].splitlines()[0]
    assert detail.startswith("pod gitlab/adplatform-verify-postgres-")
    assert detail.endswith("Failed: create table | write | ERROR:  permission denied for table adplatform-verify")
    assert any(d.startswith("pod/gitlab/adplatform-verify-postgres-") for d in kube.deleted)
    monkeypatch.setattr(verify, "Kubectl", lambda path: Recorded("healthy", phases={"objectstore": "Failed"}))
    monkeypatch.setattr(verify, "stack_file_config", lambda stack: config())
    monkeypatch.setattr(verify.tls, "hostname", good_probe)
    assert verify.main(["production", "--kubeconfig", "/dev/null"]) == 1


# The clients faked on PATH: the scripts' own logic (steps, read-back comparison, clean-up) runs for real.
FAKE_PSQL = r"""#!/usr/bin/env bash
while [ $# -gt 0 ]; do [ "$1" = --command ] && sql="$2"; shift; done
echo "$sql" >> "$FAKE/log"
case "$sql" in
  INSERT*) if [ -n "${FAIL_WRITE:-}" ]; then echo "ERROR:  permission denied for schema public" >&2; exit 3; fi
           touch "$FAKE/row" ;;
  SELECT*) if [ -f "$FAKE/row" ] && [ -z "${LOSE_WRITE:-}" ]; then echo "$MARKER"; fi ;;
esac
"""
FAKE_CURL = r"""#!/usr/bin/env bash
cat > /dev/null  # the keys, on stdin
method=GET
while [ $# -gt 0 ]; do
  case "$1" in -X) method="$2"; shift ;; --upload-file) upload="$2"; shift ;; --output) output="$2"; shift ;;
    http*) url="$1" ;; esac
  shift
done
echo "$method $url" >> "$FAKE/log"
case "$method" in
  PUT) if [ -n "${FAIL_WRITE:-}" ]; then echo "curl: (22) The requested URL returned error: 403" >&2; exit 22; fi
       cp "$upload" "$FAKE/object" ;;
  GET) if [ -n "${LOSE_WRITE:-}" ]; then echo "<Error>NoSuchKey</Error>" > "$output"
       else cp "$FAKE/object" "$output"; fi ;;
  DELETE) rm -f "$FAKE/object" ;;
esac
"""


def run_script(tmp_path: Path, store: str, **flags: str) -> tuple[int, str, list[str]]:
    """The probe's script with its client faked: (exit code, stderr, the requests it made)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("psql", FAKE_PSQL), ("curl", FAKE_CURL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE": str(tmp_path), "TMPDIR": str(tmp_path),
           "MARKER": stores.marker(NOW), "S3_ENDPOINT": "http://s3.seaweedfs.svc:8333", "S3_REGION": "us-east-1",
           "S3_BUCKET": "mlflow-artifacts", "S3_PREFIX": "adplatform-verify", "S3_ACCESS_KEY": "id",
           "S3_SECRET_KEY": "key", **flags}
    done = subprocess.run(["bash", "-c", stores.PROBES[store].script], env=env, capture_output=True, text=True,
                          timeout=30, check=False)
    log = (tmp_path / "log").read_text().splitlines() if (tmp_path / "log").exists() else []
    return done.returncode, done.stderr, log


@pytest.mark.parametrize("store", ["postgres", "objectstore"])
def test_the_platform_probes_write_read_back_and_clean_up(tmp_path, store):
    code, stderr, log = run_script(tmp_path, store)
    assert code == 0, stderr
    assert stderr.splitlines()[-1] == "clean up"
    assert log[-1].startswith(("DROP TABLE public.", "DELETE http://s3.seaweedfs.svc:8333/mlflow-artifacts/"
                                                      "adplatform-verify/adplatform-verify-"))
    assert not (tmp_path / "object").exists()


@pytest.mark.parametrize("store, last", [("postgres", "ERROR:  permission denied for schema public"),
                                         ("objectstore", "curl: (22) The requested URL returned error: 403")])
def test_a_refused_write_fails_the_probe_and_still_cleans_up(tmp_path, store, last):
    code, stderr, log = run_script(tmp_path, store, FAIL_WRITE="1")
    assert code != 0
    assert stderr.splitlines()[-2:] == ["write", last]
    assert log[-1].startswith(("DROP TABLE IF EXISTS public.", "DELETE ")), "the exit trap removes what was made"


@pytest.mark.parametrize("store, last", [("postgres", "read"),
                                         ("objectstore", "read back <Error>NoSuchKey</Error> instead of the marker")])
def test_a_read_that_does_not_return_the_marker_fails_the_probe(tmp_path, store, last):
    code, stderr, log = run_script(tmp_path, store, LOSE_WRITE="1")
    assert code != 0 and stderr.splitlines()[-1] == last
    assert log[-1].startswith(("DROP TABLE IF EXISTS public.", "DELETE "))


# --- node autoscaler ----------------------------------------------------------------------------------------
AUTOSCALER = "get:deployment/cluster-autoscaler/cluster-autoscaler"
STATUS = "get:configmap/cluster-autoscaler/cluster-autoscaler-status"


def provider_group_names(stack: str) -> list[str]:
    """The node groups as the program hands them to the autoscaler: the chart's `--nodes` groups, or on AWS
    (auto-discovery by tag) the Auto Scaling groups it creates."""
    run_ = stack_run(stack)
    [release] = [r for r in run_.of_type("kubernetes:helm.sh/v3:Release") if r.urn.endswith("::cluster-autoscaler")]
    if "autoscalingGroups" in release.inputs["values"]:
        return [g["name"] for g in release.inputs["values"]["autoscalingGroups"]]
    return [r.inputs["name"] for r in run_.of_type("aws:autoscaling/group:Group")]


@pytest.mark.parametrize("stack", ["production", "staging-aws", "staging-gcp", "staging-azure"])
def test_the_expected_node_groups_are_the_ones_the_program_gives_the_autoscaler(stack):
    groups = expected.node_groups(verify.stack_file_config(stack))
    names = provider_group_names(stack)
    assert groups and names
    # Every group the program made is expected exactly once, and every expectation finds a group: one per zone for
    # an unpinned pool on AWS and GCP (`general-*`), else exactly one.
    assert all(sum(checks.is_group(n, g) for g in groups) == 1 for n in names), (names, groups)
    assert all(sum(checks.is_group(n, g) for n in names) == (3 if g.endswith("-*") else 1) for g in groups), \
        (names, groups)


def test_autoscaler_fails_when_not_available_or_a_node_group_is_not_registered():
    kube = Recorded("healthy")
    kube.answers[STATUS]["data"]["status"] = kube.answers[STATUS]["data"]["status"].replace(
        "adp-production-general-fsn1", "adp-production-other-fsn1")
    kube.answers[AUTOSCALER]["status"] = {"replicas": 2, "conditions": [
        {"type": "Available", "status": "False", "message": "Deployment does not have minimum availability."}]}
    failed, report = run("healthy", kube=kube)
    assert failed == 2
    assert ("x Deployment cluster-autoscaler/cluster-autoscaler: Deployment does not have minimum availability."
            in report)
    assert "x node group general-fsn1: not registered (the autoscaler lists: adp-production-other-fsn1)" in report


def test_autoscaler_without_a_status_or_still_initializing_fails():
    kube = Recorded("healthy")
    del kube.answers[STATUS]
    failed, report = run("healthy", kube=kube)
    assert failed == 1 and "x autoscaler status: no status ConfigMap yet" in report
    configmap = Recorded("healthy").answers[STATUS]
    configmap["data"]["status"] = "Cluster-autoscaler status at 2026-12-07 08:59:41 +0000 UTC:\n" + \
        configmap["data"]["status"].replace("autoscalerStatus: Running", "autoscalerStatus: Initializing")
    found = checks.node_autoscaler(Recorded("healthy").answers[AUTOSCALER], configmap, ["general-fsn1"])
    assert [(c.name, c.ok) for c in found] == [("Deployment cluster-autoscaler/cluster-autoscaler", True),
                                               ("autoscaler status", False), ("node group general-fsn1", True)]


def test_a_stack_without_autoscaled_pools_or_drills_has_no_such_section(monkeypatch):
    monkeypatch.setattr(expected, "node_groups", lambda cfg: [])
    monkeypatch.setattr(expected, "drill_cronjobs", lambda cfg: [])
    failed, report = run("healthy")
    assert failed == 0 and "node autoscaler" not in report and "restore drills" not in report


# --- restore drills -----------------------------------------------------------------------------------------
def drill(status: dict, schedule: str = "0 4 * * 0") -> dict:
    return {"metadata": {"name": "drill-postgres", "namespace": "dr-drills"}, "spec": {"schedule": schedule},
            "status": status}


@pytest.mark.parametrize("status, ok, detail", [
    ({}, True, "not yet run (before its first schedule)"),
    ({"lastScheduleTime": "2026-12-06T04:00:00Z", "active": [{"name": "drill-postgres-1"}]}, True,
     "first run in progress"),
    ({"lastScheduleTime": "2026-12-06T04:00:00Z", "lastSuccessfulTime": "2026-11-22T04:30:00Z"}, True,
     "last success 2026-11-22T04:30:00Z"),  # two weeks and a bit: two weekly periods not yet over
    ({"lastScheduleTime": "2026-12-06T04:00:00Z", "lastSuccessfulTime": "2026-11-22T04:00:00Z"}, False,
     "last success 2026-11-22T04:00:00Z, limit 14 days, 0:00:00 (2 schedule periods)"),
    ({"lastScheduleTime": "2026-12-06T04:00:00Z"}, False,
     "last success never, limit 14 days, 0:00:00 (2 schedule periods)"),  # its first run failed
])
def test_a_drill_must_have_succeeded_within_two_schedule_periods_once_it_ran(status, ok, detail):
    now = datetime(2026, 12, 6, 4, 0, tzinfo=timezone.utc)
    [found] = checks.restore_drills([drill(status)], ["drill-postgres"], now, drills.STALE_FACTOR)
    assert (found.ok, found.detail) == (ok, detail)


def test_a_missing_drill_fails_and_drills_are_not_counted_as_backups():
    kube = Recorded("healthy")
    kube.answers["cronjobs"] = [c for c in kube.answers["cronjobs"] if c["metadata"]["namespace"] != "dr-drills"]
    failed, report = run("healthy", kube=kube)
    # A failed check per drill the config has (PostgreSQL, Redpanda, ClickHouse, etcd, ScyllaDB, Velero, DragonflyDB).
    assert failed == 7 and "x drill drill-dragonfly: no such CronJob" in report and "x drill drill-etcd: no such CronJob" in report and "x drill drill-postgres: no such CronJob" in report
    assert "x drill drill-redpanda: no such CronJob" in report and "x drill drill-clickhouse: no such CronJob" in report
    assert "x drill drill-scylladb: no such CronJob" in report and "x drill drill-velero: no such CronJob" in report
    failed, report = run("healthy")
    assert " ok  backups recent (4/4)" in report, "the two backup CronJobs, Velero and CNPG; not the drill"
    assert expected.drill_cronjobs(config()) == ["drill-postgres", "drill-redpanda", "drill-clickhouse",
                                                     "drill-etcd", "drill-scylladb", "drill-velero",
                                                     "drill-dragonfly"]


def test_the_probe_scripts_pass_shellcheck():
    assert validators.shellcheck({f"verify-{store}": "#!/usr/bin/env bash\n" + p.script
                                  for store, p in stores.PROBES.items()}) == ""
