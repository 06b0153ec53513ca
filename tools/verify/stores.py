"""Each data store accepts a write and a read with a consumer's own login (issue 21).

For every store with per-consumer users (config/consumers.py USER_STORES) the first ad service that uses it lends
its identity: a short-lived pod in the services' namespace carries the service's pod labels (so the service's own
NetworkPolicy lets it reach the store, and the store admits it as it admits the service) and the store's part of
the service's container environment, copied from the live Deployment: connection settings as plain values and the
login as `secretKeyRef`s to the service's own Secret `<service>-<store>` (components/ads/stores.py). Verify never
reads a credential: the kubelet hands it to the pod, the pod spec and verify's output only name the Secret.

The pod writes a marker, reads it back and removes what it may (each consumer may not drop its tables or topics:
the leftovers expire, TTL or retention), then exits; verify deletes it whatever happened. One table (PROBES) says
per store which pinned image has the client and what to run; everything else is shared.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from components.ads.context import selector_labels
from components.ads.stores import credential_secret
from components.charts import DRAGONFLY_VERSION, REDPANDA_VERSION, SCYLLADB_VERSION
from components.data.clickhouse.installation import SERVER_IMAGE as CLICKHOUSE_IMAGE
from components.data.redpanda import prefix as topic_prefix
from components.services.namespaces import RESTRICTED_CONTAINER_SECURITY, RESTRICTED_POD_SECURITY
from config.consumers import ADS, USER_STORES, store_consumers
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

PROBES = {
    "scylladb": Probe("scylladb", f"docker.io/scylladb/scylla:{SCYLLADB_VERSION}", "SCYLLA_", SCYLLADB),
    "redpanda": Probe("redpanda", f"docker.redpanda.com/redpandadata/redpanda:{REDPANDA_VERSION}", "KAFKA_", REDPANDA,
                      lambda service, cfg: {"TOPIC": f"{topic_prefix(service)}adplatform-verify"}),
    "clickhouse": Probe("clickhouse", CLICKHOUSE_IMAGE, "CLICKHOUSE_", CLICKHOUSE),
    "dragonfly": Probe("dragonfly", f"docker.dragonflydb.io/dragonflydb/dragonfly:{DRAGONFLY_VERSION}", "DRAGONFLY_",
                       DRAGONFLY),
}
assert set(PROBES) == set(USER_STORES), "every store with per-consumer users has a write/read probe"


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


def pod_manifest(probe: Probe, service: str, namespace: str, deployment: Obj, plain: dict[str, str],
                 name: str) -> Obj:
    """The probe pod: the service's labels and wiring, the restricted Pod Security level, nothing else."""
    volumes, mounts = file_volumes(deployment)
    env = [{"name": "HOME", "value": "/tmp"}, *({"name": k, "value": v} for k, v in plain.items()),
           *wiring_env(deployment, probe)]
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": namespace,
            "labels": {**selector_labels(service), "app.kubernetes.io/component": VERIFY_COMPONENT},
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
                # It carries the service's labels, so its Service would send it requests once Ready: a probe on
                # a port nothing listens on keeps it out of the endpoints (and out of the budget's healthy pods).
                "readinessProbe": {"tcpSocket": {"port": 1}, "periodSeconds": 60},
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *mounts],
            }],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}, *volumes],
        },
    }


def _wait(kube: Kubectl, namespace: str, name: str, sleep: Callable[[float], None]) -> str:
    """The pod's final phase (Succeeded/Failed), or the last seen one when it did not finish in time."""
    phase = "Pending"
    for _ in range(DEADLINE_SECONDS // POLL_SECONDS + 10):
        phase = (kube.get("pod", namespace, name) or {}).get("status", {}).get("phase", "Pending")
        if phase in ("Succeeded", "Failed"):
            break
        sleep(POLL_SECONDS)
    return phase


def roundtrip(kube: Kubectl, cfg: StackConfig, store: str, service: str, now: datetime,
              sleep: Callable[[float], None] = time.sleep) -> Check:
    probe, namespace = PROBES[store], cfg.ad_services.namespace
    label = f"{store} write/read as {service}"
    deployment = kube.get("deployment", namespace, service)
    if deployment is None:
        return Check(label, False, f"no Deployment {namespace}/{service}")
    env = wiring_env(deployment, probe)
    if not env:
        return Check(label, False, f"Deployment {namespace}/{service} has no {probe.env_prefix}* settings")
    if foreign := foreign_secrets(env, service, store):
        return Check(label, False, f"its {store} login comes from {', '.join(foreign)}, "
                                   f"not its own Secret {credential_secret(service, store)}")
    name = f"{VERIFY_COMPONENT}-{store}-{secrets.token_hex(3)}"
    plain = {"MARKER": marker(now), **probe.extra(service, cfg)}
    try:
        kube.create(pod_manifest(probe, service, namespace, deployment, plain, name))
    except KubectlError as err:  # e.g. the team's quota is used up: this store's check fails, the others run
        return Check(label, False, f"could not start the probe pod: {err}")
    try:
        phase = _wait(kube, namespace, name, sleep)
        if phase == "Succeeded":
            return Check(label, True, f"with Secret {credential_secret(service, store)}")
        return Check(label, False, f"pod {namespace}/{name} {phase}: {_tail(kube, namespace, name)}")
    finally:
        kube.delete("pod", namespace, name)


def _tail(kube: Kubectl, namespace: str, name: str) -> str:
    try:
        lines = kube.logs(namespace, name).strip().splitlines()
    except KubectlError as err:
        return f"no output ({err})"
    return " | ".join(lines[-LOG_LINES:]) or "no output"


def store_roundtrips(kube: Kubectl, cfg: StackConfig, now: datetime,
                     sleep: Callable[[float], None] = time.sleep) -> list[Check]:
    if not (cfg.layers.data_plane and cfg.layers.ad_services):
        return [Check("store write/read", True, "no ad service uses a store in this stack")]
    return [roundtrip(kube, cfg, store, service, now, sleep) for store, service in first_ad_consumers(cfg).items()]


__all__ = ["PROBES", "Probe", "first_ad_consumers", "pod_manifest", "roundtrip", "store_roundtrips"]
