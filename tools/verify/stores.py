"""Each data store accepts a write and a read with a consumer's own login (issue 21).

Ad-service stores (config/consumers.py USER_STORES): the first ad service that uses each lends its identity: a
short-lived pod in the services' namespace carries the service's pod labels (so the service's own NetworkPolicy
lets it reach the store, and the store admits it as it admits the service) and the store's part of the service's
container environment, copied from the live Deployment: connection settings as plain values and the login as
`secretKeyRef`s to the service's own Secret `<service>-<store>` (components/ads/stores.py).

PostgreSQL and the object store serve the platform: the probe runs in the namespace of the first enabled platform
component with a login of its own there (LOGINS: its copy of its database owner's password, its bucket keys), so
that namespace's policies let it through as they let the component, and it works in that component's own database
or bucket only. A stack with PostgreSQL but none of those components (staging) borrows the first configured
database's owner role from its Secret in the `postgres` namespace. Connection settings come from the config.

Verify never reads a credential: the kubelet hands it to the pod, the pod spec and verify's output only name the
Secret. The pod writes a marker, reads it back and removes what it may (each ad service may not drop its tables
or topics: the leftovers expire, TTL or retention; PostgreSQL's table and the object are removed, on failure too),
then exits; verify deletes it whatever happened. One table (PROBES) says per store which pinned image has the
client and what to run; everything else is shared.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from components.ads.context import selector_labels
from components.ads.stores import credential_secret, plain_env, secret_env
from components.charts import DRAGONFLY_VERSION, POSTGRES_IMAGE, REDPANDA_VERSION, SCYLLADB_VERSION
from components.data import objectstore, postgres
from components.data.clickhouse.backup import IMAGE as CURL_IMAGE
from components.data.clickhouse.installation import SERVER_IMAGE as CLICKHOUSE_IMAGE
from components.data.redpanda import prefix as topic_prefix
from components.data.redpanda_backup import SCRIPTS
from components.platform import gitlab, jupyterhub, logs, mlflow, traces
from components.services.namespaces import RESTRICTED_CONTAINER_SECURITY, RESTRICTED_POD_SECURITY
from config.consumers import ADS, USER_STORES, store_consumers
from config.platform import NEEDS
from config.model import StackConfig
from tools.verify.checks import Check, Obj
from tools.verify.kube import Kubectl, KubectlError

NOBODY = 65534
DEADLINE_SECONDS = 180  # the pod's activeDeadlineSeconds; verify waits a little longer for the kubelet to report
POLL_SECONDS = 3
LOG_LINES = 5  # of the pod's output in a failure's detail: the clients' own errors, which never echo a password
VERIFY_COMPONENT = "adplatform-verify"
RESOURCES = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "384Mi"}}

# Shell prologue of every probe: stop at the first failed step and say which. (grep reads its whole input, never
# -q: an early exit would kill the client with SIGPIPE and fail the pipeline.)
_PROLOGUE = "set -euo pipefail\numask 077\nstep() { echo \"$1\" >&2; }\n"


@dataclass(frozen=True)
class Probe:
    store: str
    image: str  # pinned: the image the data plane already runs this store's client from
    env_prefix: str  # the store's part of the consumer's environment (components/ads/stores.py wiring)
    script: str  # bash, reading only env: MARKER, and the copied wiring (plus `extra`'s names)
    extra: Callable[[str, StackConfig], dict[str, str]] = lambda service, cfg: {}  # plain env: the consumer's names


@dataclass(frozen=True)
class Target:
    """Whose login a probe wears and where it runs."""
    consumer: str  # the ad service, platform component or (PostgreSQL) owner role
    namespace: str
    secret: str  # the consumer's own Secret there: the only one the pod reads
    env: list[Obj]  # the store's connection: plain values and secretKeyRefs to `secret`
    labels: dict[str, str] = field(default_factory=dict)
    volumes: list[Obj] = field(default_factory=list)
    mounts: list[Obj] = field(default_factory=list)


@dataclass(frozen=True)
class Login:
    """A platform component's own login to a store, copied into its namespace."""
    namespace: str
    secret: str


# cqlsh reads the login from a 0600 file (as components/data/scylladb/scripts/bootstrap.sh does); rows expire.
SCYLLADB = _PROLOGUE + r"""
printf '[plain_text_auth]\nusername = %s\npassword = %s\n' "${SCYLLA_USERNAME}" "${SCYLLA_PASSWORD}" > /tmp/credentials
cql() {
  cqlsh --credentials /tmp/credentials --request-timeout 30 -e "$1" "${SCYLLA_CONTACT_POINTS%%,*}" "${SCYLLA_PORT}"
}
table="\"${SCYLLA_KEYSPACE}\".adplatform_verify"
step "create table"; cql "CREATE TABLE IF NOT EXISTS ${table} (id text PRIMARY KEY) WITH default_time_to_live = 3600"
step "write"; cql "INSERT INTO ${table} (id) VALUES ('${MARKER}')"
step "read"; cql "SELECT id FROM ${table} WHERE id = '${MARKER}'" | grep "${MARKER}" > /dev/null
step "clean up"; cql "DELETE FROM ${table} WHERE id = '${MARKER}'"
"""

# rpk takes its connection from RPK_* (as components/data/redpanda_backup.py); the topic is the consumer's own
# (its ACLs cover `<service>.*`), one partition, an hour's retention (it may not delete topics); offset -1 is the
# newest record (rpk topic consume: `-N` counts back from the end).
REDPANDA = _PROLOGUE + r"""
export RPK_BROKERS="${KAFKA_BOOTSTRAP_SERVERS}" RPK_TLS_ENABLED=true RPK_TLS_CA="${KAFKA_SSL_CA_LOCATION}" \
  RPK_SASL_MECHANISM="${KAFKA_SASL_MECHANISM}" RPK_USER="${KAFKA_SASL_USERNAME}" RPK_PASS="${KAFKA_SASL_PASSWORD}"
step "create topic"
rpk topic describe "${TOPIC}" > /dev/null 2>&1 || rpk topic create "${TOPIC}" -p 1 -c retention.ms=3600000
step "write"; echo "${MARKER}" | rpk topic produce "${TOPIC}"
step "read"; rpk topic consume "${TOPIC}" --offset=-1 --num 1 --format '%v\n' | grep -x "${MARKER}" > /dev/null
"""

# One session (--multiquery) so the read hits the replica that took the write; the client reads CLICKHOUSE_USER and
# CLICKHOUSE_PASSWORD from the environment (ClickHouse PR #34947, since 22.3). Rows expire after a day.
CLICKHOUSE = _PROLOGUE + r"""
step "write and read"
clickhouse-client --host "${CLICKHOUSE_HOST}" --port "${CLICKHOUSE_NATIVE_PORT}" --multiquery --query "
  CREATE DATABASE IF NOT EXISTS ${CLICKHOUSE_DATABASE};
  CREATE TABLE IF NOT EXISTS ${CLICKHOUSE_DATABASE}.adplatform_verify (id String, at DateTime DEFAULT now())
    ENGINE = MergeTree ORDER BY id TTL at + INTERVAL 1 DAY;
  INSERT INTO ${CLICKHOUSE_DATABASE}.adplatform_verify (id) VALUES ('${MARKER}');
  SELECT id FROM ${CLICKHOUSE_DATABASE}.adplatform_verify WHERE id = '${MARKER}'" | grep -x "${MARKER}" > /dev/null
"""

# redis-cli (the Dragonfly image ships redis-tools) takes AUTH on stdin, so the password is in no process's
# arguments; the key is under the service's own prefix (its ACL), and expires.
DRAGONFLY = _PROLOGUE + r"""
key="${DRAGONFLY_KEY_PREFIX}adplatform-verify"
step "write, read and delete"
printf 'AUTH %s %s\nSET %s %s EX 3600\nGET %s\nDEL %s\n' "${DRAGONFLY_USERNAME}" "${DRAGONFLY_PASSWORD}" \
  "${key}" "${MARKER}" "${key}" "${key}" \
  | redis-cli -h "${DRAGONFLY_HOST}" -p "${DRAGONFLY_PORT}" > /tmp/out
if [ "$(sed -n 3p /tmp/out)" != "${MARKER}" ]; then
  echo "replies: $(sed -n 1,3p /tmp/out | tr '\n' ' ')" >&2  # OK/errors and the value read: no credential
  exit 1
fi
"""

# psql (the CloudNativePG image) as the consumer's database owner, in its own database: a table of this run's own,
# dropped at the end and on any failure. TLS without the CA, as the platform's components connect (the cluster's
# CA Secret is not published outside `postgres`). MARKER is [a-z0-9-]: with `_` for `-` a plain identifier.
POSTGRES = _PROLOGUE + r"""
sql() { psql --no-psqlrc --quiet --tuples-only --no-align --set ON_ERROR_STOP=1 --command "$1"; }
table="public.${MARKER//-/_}"
trap 'sql "DROP TABLE IF EXISTS ${table}" > /dev/null 2>&1 || true' EXIT
step "create table"; sql "CREATE TABLE ${table} (id text PRIMARY KEY)"
step "write"; sql "INSERT INTO ${table} (id) VALUES ('${MARKER}')"
step "read"; sql "SELECT id FROM ${table} WHERE id = '${MARKER}'" | grep -x "${MARKER}" > /dev/null
step "clean up"; sql "DROP TABLE ${table}"
trap - EXIT
"""

# S3 with curl's SigV4 signing, the Redpanda backup's helpers (their keys go to curl on stdin) from the image that
# runs them (bash and curl): one object under S3_PREFIX in the consumer's own bucket, deleted at the end and on
# any failure.
_S3_HELPERS = "".join(line for line in (SCRIPTS / "redpanda-s3.sh").read_text().splitlines(keepends=True)
                      if not line.startswith("#!"))
OBJECTSTORE = _PROLOGUE + _S3_HELPERS + r"""
work="${TMPDIR:-/tmp}"
trap 's3 DELETE "${MARKER}" > /dev/null 2>&1 || true' EXIT
printf '%s\n' "${MARKER}" > "${work}/written"
step "write"; s3_put "${work}/written" "${MARKER}"
step "read"; s3_get "${MARKER}" "${work}/read"
if [ "$(< "${work}/read")" != "${MARKER}" ]; then
  echo "read back $(head -c 64 "${work}/read" | tr -cd 'a-zA-Z0-9 <>/:.-') instead of the marker" >&2
  exit 1
fi
step "clean up"; s3 DELETE "${MARKER}" > /dev/null
trap - EXIT
"""
S3_PREFIX = "adplatform-verify"  # the probe's objects, apart from the consumer's own

PROBES = {
    "scylladb": Probe("scylladb", f"docker.io/scylladb/scylla:{SCYLLADB_VERSION}", "SCYLLA_", SCYLLADB),
    "redpanda": Probe("redpanda", f"docker.redpanda.com/redpandadata/redpanda:{REDPANDA_VERSION}", "KAFKA_", REDPANDA,
                      lambda service, cfg: {"TOPIC": f"{topic_prefix(service)}adplatform-verify"}),
    "clickhouse": Probe("clickhouse", CLICKHOUSE_IMAGE, "CLICKHOUSE_", CLICKHOUSE),
    "dragonfly": Probe("dragonfly", f"docker.dragonflydb.io/dragonflydb/dragonfly:{DRAGONFLY_VERSION}", "DRAGONFLY_",
                       DRAGONFLY),
    "postgres": Probe("postgres", POSTGRES_IMAGE, "PG", POSTGRES),
    "objectstore": Probe("objectstore", CURL_IMAGE, "S3_", OBJECTSTORE),
}
PLATFORM_STORES = ("postgres", "objectstore")
assert set(PROBES) == {*USER_STORES, *PLATFORM_STORES}, "every store has a write/read probe"

# The platform components whose own login the probes may wear (config/platform.py NEEDS: their database, their
# first bucket), in order of preference. Airflow, GitLab's object storage and Kubeflow keep theirs in formats of
# their own (connection strings, config files); MLflow's bucket first (its artifacts live under a prefix of their
# own, so the probe's object sits beside, not among, what Loki or Tempo list).
LOGINS = {
    "postgres": {"gitlab": Login(gitlab.NAMESPACE, gitlab.POSTGRES_SECRET),
                 "mlflow": Login(mlflow.NAMESPACE, mlflow.DB_SECRET),
                 "jupyterhub": Login(jupyterhub.NAMESPACE, jupyterhub.DB_SECRET)},
    "objectstore": {"mlflow": Login(mlflow.NAMESPACE, mlflow.S3_SECRET),
                    "logs": Login(logs.NAMESPACE, logs.S3_SECRET),
                    "traces": Login(traces.NAMESPACE, traces.S3_SECRET)},
}


def first_ad_consumers(cfg: StackConfig) -> dict[str, str]:
    """Store -> the first ad service using it (config order), for the stores some ad service uses."""
    return {store: ads[0].name for store, consumers in store_consumers(cfg).items()
            if (ads := [c for c in consumers if c.layer == ADS])}


def marker(now: datetime) -> str:
    """What a probe writes: unique per run, only [a-z0-9-] (it is spliced into CQL/SQL strings)."""
    return f"adplatform-verify-{now:%Y%m%d%H%M%S}-{secrets.token_hex(4)}"


def _container(deployment: Obj) -> Obj:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def wiring_env(deployment: Obj, probe: Probe) -> list[Obj]:
    """The store's part of the service's environment, exactly as its pods get it (values or secretKeyRefs)."""
    return [e for e in _container(deployment).get("env") or [] if e["name"].startswith(probe.env_prefix)]


def foreign_secrets(env: list[Obj], service: str, store: str) -> list[str]:
    """Secrets the wiring reads other than the service's own login to the store (expected: none)."""
    own = credential_secret(service, store)
    return sorted({ref["name"] for e in env if (ref := e.get("valueFrom", {}).get("secretKeyRef"))} - {own})


def file_volumes(deployment: Obj) -> tuple[list[Obj], list[Obj]]:
    """The service's mounted files (Redpanda's CA), without its scratch space: (volumes, mounts)."""
    pod = deployment["spec"]["template"]["spec"]
    volumes = [v for v in pod.get("volumes") or [] if "emptyDir" not in v]
    names = {v["name"] for v in volumes}
    mounts = [m for m in _container(deployment).get("volumeMounts") or [] if m["name"] in names]
    return volumes, mounts


def plain(values: dict[str, str]) -> list[Obj]:
    return [plain_env(k, v) for k, v in values.items()]


# --- whose login: an ad service's, from its live Deployment ---------------------------------------------------
def ad_target(kube: Kubectl, cfg: StackConfig, store: str, service: str) -> Target | str:
    """The ad service's wiring to `store` as its pods get it, or why the probe cannot wear it."""
    probe, namespace = PROBES[store], cfg.ad_services.namespace
    deployment = kube.get("deployment", namespace, service)
    if deployment is None:
        return f"no Deployment {namespace}/{service}"
    env = wiring_env(deployment, probe)
    if not env:
        return f"Deployment {namespace}/{service} has no {probe.env_prefix}* settings"
    if foreign := foreign_secrets(env, service, store):
        return (f"its {store} login comes from {', '.join(foreign)}, "
                f"not its own Secret {credential_secret(service, store)}")
    volumes, mounts = file_volumes(deployment)
    return Target(service, namespace, credential_secret(service, store), env, selector_labels(service), volumes,
                  mounts)


# --- whose login: a platform component's, from the config -----------------------------------------------------
def _enabled(cfg: StackConfig, component: str) -> bool:
    return cfg.layers.platform and getattr(cfg.platform, component).enabled


def postgres_target(cfg: StackConfig) -> Target | None:
    """The first enabled component of LOGINS with its database configured, else the first database's owner role
    from its Secret in `postgres` (the data plane's, which the components' copies are made from)."""
    settings = cfg.data_plane.postgres
    if not (cfg.layers.data_plane and settings.enabled and settings.databases):
        return None
    found = [(c, NEEDS[c].database, login) for c, login in LOGINS["postgres"].items()
             if _enabled(cfg, c) and NEEDS[c].database in settings.databases]
    consumer, database, login = found[0] if found else (
        settings.databases[0], settings.databases[0],
        Login(postgres.NAMESPACE, postgres.role_secret(settings.databases[0])))
    env = [*plain({"PGHOST": postgres.RW_HOST, "PGPORT": str(postgres.PORT), "PGDATABASE": str(database),
                   "PGSSLMODE": "require", "PGCONNECT_TIMEOUT": "15"}),
           secret_env("PGUSER", login.secret, "username"), secret_env("PGPASSWORD", login.secret, "password")]
    return Target(consumer, login.namespace, login.secret, env)


def objectstore_target(cfg: StackConfig) -> Target | None:
    """The first enabled component of LOGINS, in its own first bucket, with its keys (the AWS SDKs' variable names,
    components/platform/context.py aws_credentials)."""
    settings = cfg.data_plane.object_storage
    if not (cfg.layers.data_plane and settings.enabled):
        return None
    found = [(c, login) for c, login in LOGINS["objectstore"].items() if _enabled(cfg, c)]
    if not found:
        return None
    consumer, login = found[0]
    url, region, buckets = objectstore.address(settings)
    env = [*plain({"S3_ENDPOINT": url, "S3_REGION": region, "S3_BUCKET": buckets[NEEDS[consumer].buckets[0]],
                   "S3_PREFIX": S3_PREFIX}),
           secret_env("S3_ACCESS_KEY", login.secret, "AWS_ACCESS_KEY_ID"),
           secret_env("S3_SECRET_KEY", login.secret, "AWS_SECRET_ACCESS_KEY")]
    return Target(consumer, login.namespace, login.secret, env)


# --- the probe pod ------------------------------------------------------------------------------------------
def pod_manifest(probe: Probe, target: Target, values: dict[str, str], name: str) -> Obj:
    """The probe pod: the consumer's labels and wiring, the restricted Pod Security level, nothing else."""
    env = [{"name": "HOME", "value": "/tmp"}, *plain(values), *target.env]
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": target.namespace,
            "labels": {**target.labels, "app.kubernetes.io/component": VERIFY_COMPONENT},
            # A meshed namespace would add a proxy that never exits, so the pod would never complete.
            "annotations": {"linkerd.io/inject": "disabled"},
        },
        "spec": {
            "restartPolicy": "Never", "activeDeadlineSeconds": DEADLINE_SECONDS,
            "automountServiceAccountToken": False, "enableServiceLinks": False,
            "securityContext": {**RESTRICTED_POD_SECURITY, "runAsUser": NOBODY, "runAsGroup": NOBODY},
            "containers": [{
                "name": "probe", "image": probe.image, "imagePullPolicy": "IfNotPresent",
                "command": ["/bin/bash", "-c", probe.script], "env": env, "resources": RESOURCES,
                "securityContext": {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": True},
                # An ad service's probe carries its labels, so its Service would send it requests once Ready: a
                # probe on a port nothing listens on keeps it out of the endpoints (and the budget's healthy pods).
                "readinessProbe": {"tcpSocket": {"port": 1}, "periodSeconds": 60},
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *target.mounts],
            }],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}, *target.volumes],
        },
    }


# Waiting reasons the kubelet does not recover from by itself within the probe's deadline: a Secret or key the pod
# names is missing (CreateContainerConfigError), or its image cannot be pulled. Waiting the full deadline for them
# only hides the cause; Kubernetes' own words in the status message name the Secret or the image.
STUCK_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError", "ErrImagePull", "ImagePullBackOff",
                           "InvalidImageName", "ErrImageNeverPull"})


def _stuck(pod: dict) -> str:
    """`<reason>: <message>` of a container that waits for something that will not come, else ''."""
    for status in pod.get("status", {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_REASONS:
            return f"{waiting['reason']}: {waiting.get('message', '')}".rstrip(": ")
    return ""


def _wait(kube: Kubectl, namespace: str, name: str, sleep: Callable[[float], None]) -> str:
    """The pod's final phase (Succeeded/Failed), why it is stuck, or the last phase seen when it did not finish in
    time."""
    phase = "Pending"
    for _ in range(DEADLINE_SECONDS // POLL_SECONDS + 10):
        pod = kube.get("pod", namespace, name) or {}
        phase = pod.get("status", {}).get("phase", "Pending")
        if phase in ("Succeeded", "Failed"):
            break
        if stuck := _stuck(pod):
            return f"{phase} ({stuck})"
        sleep(POLL_SECONDS)
    return phase


def probe_store(kube: Kubectl, store: str, target: Target | str, values: dict[str, str],
                sleep: Callable[[float], None] = time.sleep) -> Check:
    """Run `store`'s probe as `target` (or fail with the reason there is none) and remove its pod."""
    if isinstance(target, str):
        return Check(f"{store} write/read", False, target)
    label, namespace = f"{store} write/read as {target.consumer}", target.namespace
    name = f"{VERIFY_COMPONENT}-{store}-{secrets.token_hex(3)}"
    try:
        kube.create(pod_manifest(PROBES[store], target, values, name))
    except KubectlError as err:  # e.g. the team's quota is used up: this store's check fails, the others run
        return Check(label, False, f"could not start the probe pod: {err}")
    try:
        phase = _wait(kube, namespace, name, sleep)
        if phase == "Succeeded":
            return Check(label, True, f"with Secret {namespace}/{target.secret}")
        return Check(label, False, f"pod {namespace}/{name} {phase}: {_tail(kube, namespace, name)}")
    finally:
        kube.delete("pod", namespace, name)


def roundtrip(kube: Kubectl, cfg: StackConfig, store: str, service: str, now: datetime,
              sleep: Callable[[float], None] = time.sleep) -> Check:
    """An ad-service store's probe as `service`."""
    target = ad_target(kube, cfg, store, service)
    if isinstance(target, str):
        return Check(f"{store} write/read as {service}", False, target)
    return probe_store(kube, store, target, {"MARKER": marker(now), **PROBES[store].extra(service, cfg)}, sleep)


def _tail(kube: Kubectl, namespace: str, name: str) -> str:
    try:
        lines = kube.logs(namespace, name).strip().splitlines()
    except KubectlError as err:
        return f"no output ({err})"
    return " | ".join(lines[-LOG_LINES:]) or "no output"


def platform_targets(cfg: StackConfig) -> dict[str, Target]:
    """PostgreSQL's and the object store's probe targets, for those the stack has a consumer of."""
    found = {"postgres": postgres_target(cfg), "objectstore": objectstore_target(cfg)}
    return {store: target for store, target in found.items() if target is not None}


def store_roundtrips(kube: Kubectl, cfg: StackConfig, now: datetime,
                     sleep: Callable[[float], None] = time.sleep) -> list[Check]:
    found = []
    if cfg.layers.data_plane and cfg.layers.ad_services:
        found += [roundtrip(kube, cfg, store, service, now, sleep)
                  for store, service in first_ad_consumers(cfg).items()]
    found += [probe_store(kube, store, target, {"MARKER": marker(now)}, sleep)
              for store, target in platform_targets(cfg).items()]
    return found or [Check("store write/read", True, "no store has a consumer in this stack")]


__all__ = ["LOGINS", "PROBES", "Probe", "Target", "first_ad_consumers", "platform_targets", "pod_manifest",
           "probe_store", "roundtrip", "store_roundtrips"]
