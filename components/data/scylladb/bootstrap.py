"""Credentials and schema: the superuser ScyllaDB starts with, the roles and keyspaces a Job creates.

The superuser never has a default password: `auth_superuser_name` and `auth_superuser_salted_password`
in scylla.yaml make ScyllaDB create it with our generated password on first start, so the well-known
`cassandra`/`cassandra` role never exists (scylladb tag scylla-2026.1.11 auth/password_authenticator.cc,
docs/operating-scylla/security/create-superuser.rst; the operator's docs recommend it, and ScyllaDB 2026.2
drops the default role). The config takes a crypt(3) hash, computed here (SHA-512, ScyllaDB's own scheme
for new passwords: auth/passwords.hh) from the generated password and a generated salt.

A Job then runs cqlsh from the pinned ScyllaDB image as that superuser: one role per consumer
(config/consumers.py) and Scylla Manager's role with their passwords, the keyspaces with NetworkTopologyStrategy
and one replica per rack, and each consumer's grants on its own keyspace only. Its name carries a hash of everything it does (passwords included,
as a digest), so a change runs it again; every statement is idempotent.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import charts
from components.data.context import DataContext
from components.services.namespaces import RESTRICTED_CONTAINER_SECURITY, RESTRICTED_POD_SECURITY
from config.data import SCYLLA_CANARY_KEYSPACE

SCRIPTS = Path(__file__).parent / "scripts"
BOOTSTRAP_MOUNT = "/etc/scylla-bootstrap"
JOB_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}
NOBODY = 65534  # the image's `nobody`: cqlsh needs no identity, only a writable HOME (an emptyDir)

_CRYPT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# SHA-512-crypt's final byte permutation (Drepper, "Unix crypt using SHA-256 and SHA-512", step 22e).
_CRYPT_ORDER = ((0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26), (6, 27, 48),
                (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32), (12, 33, 54), (34, 55, 13),
                (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60), (40, 61, 19), (62, 20, 41))
CRYPT_ROUNDS = 5000  # the scheme's default, what ScyllaDB uses for the passwords it hashes itself


def sha512_crypt(password: str, salt: str, rounds: int = CRYPT_ROUNDS) -> str:
    """crypt(3) "$6$" hash (glibc/libxcrypt compatible). Written out because Python's `crypt` module is
    deprecated and gone in 3.13; tests check it against the specification's vectors."""
    key, salt_bytes = password.encode(), salt.encode()[:16]
    alternate = hashlib.sha512(key + salt_bytes + key).digest()
    digest_a = hashlib.sha512(key + salt_bytes)
    digest_a.update((alternate * (len(key) // 64 + 1))[:len(key)])
    length = len(key)
    while length:
        digest_a.update(alternate if length & 1 else key)
        length >>= 1
    a = digest_a.digest()
    p_bytes = (hashlib.sha512(key * len(key)).digest() * (len(key) // 64 + 1))[:len(key)]
    s_bytes = (hashlib.sha512(salt_bytes * (16 + a[0])).digest() * (len(salt_bytes) // 64 + 1))[:len(salt_bytes)]
    c = a
    for i in range(rounds):
        step = hashlib.sha512(p_bytes if i & 1 else c)
        if i % 3:
            step.update(s_bytes)
        if i % 7:
            step.update(p_bytes)
        step.update(c if i & 1 else p_bytes)
        c = step.digest()
    encoded = []
    for first, second, third in _CRYPT_ORDER:
        value = (c[first] << 16) | (c[second] << 8) | c[third]
        encoded += [_CRYPT_ALPHABET[(value >> (6 * n)) & 0x3F] for n in range(4)]
    encoded += [_CRYPT_ALPHABET[(c[63] >> (6 * n)) & 0x3F] for n in range(2)]
    prefix = "$6$" if rounds == CRYPT_ROUNDS else f"$6$rounds={rounds}$"
    return f"{prefix}{salt_bytes.decode()}${''.join(encoded)}"


def replication(datacenter: str, factor: int) -> str:
    return f"{{'class': 'NetworkTopologyStrategy', '{datacenter}': {factor}}}"


# What a consumer may do in its keyspace: read and write rows, create and alter its tables (services run their
# own schema migrations). Not DROP (a bug or an attacker cannot drop a table), not AUTHORIZE (no grants to others).
CONSUMER_PERMISSIONS = ("SELECT", "MODIFY", "CREATE", "ALTER")


def quoted(role: str) -> str:
    """A role name as a quoted CQL identifier (ad service names carry '-')."""
    return '"' + role.replace('"', '""') + '"'


def keyspaces_cql(keyspaces: Sequence[str], datacenter: str, factor: int, grants: Mapping[str, str | None],
                  retired: Sequence[str] = ()) -> str:
    """Every keyspace with one replica per rack (ALTER keeps an existing one in step with the racks); each role
    (`grants`: role -> its keyspace) granted CONSUMER_PERMISSIONS on its own keyspace and nothing on the others
    (revoked: a service whose keyspace changed loses the old one); `retired` roles dropped. Keyspace names are
    validated identifiers (config/data.py)."""
    lines = []
    for keyspace in keyspaces:
        lines += [f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication(datacenter, factor)};",
                  f"ALTER KEYSPACE {keyspace} WITH replication = {replication(datacenter, factor)};"]
        for role, own in grants.items():
            if keyspace == own:
                lines += [f"GRANT {p} ON KEYSPACE {keyspace} TO {quoted(role)};" for p in CONSUMER_PERMISSIONS]
            else:
                lines.append(f"REVOKE ALL PERMISSIONS ON KEYSPACE {keyspace} FROM {quoted(role)};")
    lines += [f"DROP ROLE IF EXISTS {quoted(role)};" for role in retired if role not in grants]
    return "\n".join(lines) + "\n"


# The restore drills' canary (components/data/drills.py): a keyspace and table of write times, written hourly by a
# role that may only insert there. The drill creates the same table from canary_table_cql in its scratch node.
CANARY = SCYLLA_CANARY_KEYSPACE  # the role and the keyspace (config/data.py keeps it out of the configured keyspaces)
CANARY_TABLE = "canary"


def canary_table_cql(ttl_seconds: int) -> str:
    """The canary table: one row per write, expiring after `ttl_seconds` (no job deletes old rows)."""
    return (f"CREATE TABLE IF NOT EXISTS {CANARY}.{CANARY_TABLE} (written_at timestamp PRIMARY KEY) "
            f"WITH default_time_to_live = {ttl_seconds};")


def canary_cql(datacenter: str, factor: int, ttl_seconds: int) -> str:
    """The canary's keyspace (replicated like the others), its table, and its role's one grant: MODIFY on that table.
    No SELECT (the writer never reads), no CREATE or ALTER (the bootstrap owns the schema)."""
    table = f"{CANARY}.{CANARY_TABLE}"
    return "\n".join([
        f"CREATE KEYSPACE IF NOT EXISTS {CANARY} WITH replication = {replication(datacenter, factor)};",
        f"ALTER KEYSPACE {CANARY} WITH replication = {replication(datacenter, factor)};",
        canary_table_cql(ttl_seconds),
        f"ALTER TABLE {table} WITH default_time_to_live = {ttl_seconds};",
        f"GRANT MODIFY ON TABLE {table} TO {quoted(CANARY)};"]) + "\n"


def roles_file(roles: Sequence[str]) -> str:
    """bootstrap.sh's roles.txt: one role per line, its password in ROLE_PASSWORD_<line index>."""
    return "".join(f"{role}\n" for role in roles)


def script(name: str) -> str:
    return (SCRIPTS / name).read_text()


def content_hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:10]


def secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def job_spec(image: str, script_mount: str, script_name: str, config_map: str, env: list[dict[str, Any]],
             labels: dict[str, str], deadline_seconds: int = 3600) -> dict[str, Any]:
    """A run-to-completion pod at the `restricted` level: non-root, no capabilities, read-only root, only
    /tmp writable; on the general nodes (no tolerations)."""
    return {
        "backoffLimit": 6,
        "activeDeadlineSeconds": deadline_seconds,
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "securityContext": {**RESTRICTED_POD_SECURITY, "runAsUser": NOBODY, "runAsGroup": NOBODY},
                "containers": [{
                    "name": "run", "image": image, "imagePullPolicy": "IfNotPresent",
                    "command": ["/bin/bash", f"{script_mount}/{script_name}"],
                    "env": [{"name": "HOME", "value": "/tmp"}, {"name": "TMPDIR", "value": "/tmp"},
                            {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}, *env],
                    "resources": JOB_RESOURCES,
                    "securityContext": {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": True},
                    "volumeMounts": [{"name": "scripts", "mountPath": script_mount, "readOnly": True},
                                     {"name": "tmp", "mountPath": "/tmp"}],
                }],
                "volumes": [{"name": "scripts", "configMap": {"name": config_map, "defaultMode": 0o444}},
                            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
            },
        },
    }


def run_once(ctx: DataContext, resource_name: str, namespace: str, image: str, files: dict[str, str],
             entrypoint: str, env: list[dict[str, Any]], secrets: Sequence[pulumi.Output[str]],
             depends_on: Sequence[pulumi.Resource], mount: str) -> tuple[k8s.core.v1.ConfigMap, k8s.batch.v1.Job]:
    """A ConfigMap with `files` and a Job running `entrypoint` from it, both named by a hash of what they do.

    `secrets` (passwords the job sets) enter the Job's name only as a digest, so a rotated password runs it
    again; the digest is published (unsecret), a SHA-256 prefix of a 32-character random password."""
    files_hash = content_hash(image, *(f"{k}\n{v}" for k, v in sorted(files.items())))
    labels = ctx.labels("scylladb", resource_name)
    config_map = k8s.core.v1.ConfigMap(
        f"{resource_name}-scripts",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{resource_name}-{files_hash}", namespace=namespace, labels=labels),
        data=files, opts=ctx.opts(depends_on))
    job_hash = pulumi.Output.unsecret(pulumi.Output.all(*secrets).apply(
        lambda values: content_hash(files_hash, *(hashlib.sha256(v.encode()).hexdigest() for v in values))))
    job = k8s.batch.v1.Job(
        resource_name,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=job_hash.apply(lambda h: f"{resource_name}-{h}"), namespace=namespace, labels=labels,
            annotations={"pulumi.com/timeoutSeconds": "3600"}),
        spec=job_spec(image, mount, entrypoint, f"{resource_name}-{files_hash}", env, labels),
        opts=ctx.opts([*depends_on, config_map]))
    return config_map, job


def cqlsh_image() -> str:
    return f"docker.io/scylladb/scylla:{charts.SCYLLADB_VERSION}"
