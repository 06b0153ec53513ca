"""ClickHouse users with generated passwords, none of them in plain text in the ClickHouseInstallation.

The CHI names each password by reference only: `<user>/password_sha256_hex: {valueFrom: {secretKeyRef}}`
(docs/security_hardening.md "Using secrets" at release-0.27.3; the older `k8s_secret_*` keys are
deprecated). The operator turns such a reference into an environment variable of the server container
and `from_env` in users.xml, so the CR, its ConfigMaps and the operator's logs only ever hold a
Secret's name. The hashes live in one Secret; the plain passwords only in the per-user credential
Secrets that clients read.

- `default`: ClickHouse's built-in user, locked down: a random password nobody is given, and the
  operator's own network rule (the installation's pods and localhost). Distributed queries between
  shards authenticate with the cluster's interserver secret instead of it.
- `admin`: for people (access management: creates roles and users by SQL), from the pod network only.
- one user per consumer (config/consumers.py: the ad services that list ClickHouse), named like the service,
  from the pod network only, with grants (`<user>/grants/query`: GRANT statements without a grantee, which
  ClickHouse applies to a user defined in users.xml; the operator renders the list as repeated <query>
  elements, docs/chi-examples/05-settings-08-grants.yaml) on its own database `ads_<service>` only, plus
  SELECT on the databases of the services it names in `readsFrom`. Not DROP, TRUNCATE or access management:
  a compromised service cannot destroy tables or create users; not the CLUSTER privilege either, so schema
  changes `ON CLUSTER` are made by `admin`.
- `backup`: the clickhouse-backup sidecar, with the operator's default networks: localhost and, through the
  `networks/host_regexp` the operator gives every user but `default` (hostRegexpTemplate, pkg/model/chi/normalizer/
  normalizer-configuration-user.go on branch 0.26.0), the installation's own server pods; not the rest of the pod
  network.
- `drill_canary` (while ClickHouse's restore is drilled, components/data/drills.py): the canary writer, from the
  pod network, allowed to create the database `drill_canary` and its table and to insert into it; nothing else,
  not even to read back what it wrote.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.data.clickhouse.topology import NAMESPACE
from components.data.context import DataContext
from components.data.endpoints import Credentials
from components.digest import mapping_text, plain_marker
from config.consumers import Consumer

AUTH_SECRET = "clickhouse-server-auth"  # password hashes + the interserver secret, read by the servers
# The servers read AUTH_SECRET through environment variables (the operator's secretKeyRef env vars,
# pkg/model/common/normalizer/subst/settings.go on branch 0.26.0): only at start. A digest of its contents on the pod
# template rolls the servers when it changes, one per shard at a time (the operator's host-by-host reconcile).
AUTH_DIGEST_ANNOTATION = "adplatform.io/auth-digest"
INTERSERVER_KEY = "interserver"
ADMIN, BACKUP, DEFAULT = "admin", "backup", "default"
# What a consumer may do in its own database (the first creates it), and in the databases it reads.
OWN_PRIVILEGES = "SELECT, INSERT, ALTER, CREATE DATABASE, CREATE TABLE, CREATE VIEW, CREATE DICTIONARY, OPTIMIZE, SHOW"
READ_PRIVILEGES = "SELECT, SHOW"
BACKUP_SECRET = "clickhouse-backup"  # the backup user's password and the sidecars' REST API login
API_USERNAME = "backup-api"
CANARY = "drill_canary"  # the restore drills' canary: its user, its database (components/data/drills.py)
CANARY_SECRET = "clickhouse-drill-canary"  # its login (keys: username, password)
CANARY_GRANTS = [f"GRANT CREATE DATABASE, CREATE TABLE, INSERT ON {CANARY}.*"]


@dataclass(frozen=True)
class Users:
    admin: Credentials
    consumers: dict[str, Credentials]  # consumer -> its own user (keys: username, password)
    backup: Credentials | None  # keys: username, password, api-username, api-password
    secrets: list[k8s.core.v1.Secret]
    auth_digest: pulumi.Output[str]  # plain: changes with any of AUTH_SECRET's values (auth_text)


def auth_text(values: dict[str, str]) -> str:
    """AUTH_SECRET's contents as one text, the same for the same contents whatever their order."""
    return mapping_text(values)


def sha256_hex(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def database_of(consumer: str) -> str:
    """A consumer's own database: its name with '_' for '-' (a plain identifier), under `ads_` so that no
    service name can be `system` or `default`."""
    return "ads_" + consumer.replace("-", "_")


def grants(c: Consumer) -> list[str]:
    return [f"GRANT {OWN_PRIVILEGES} ON {database_of(c.name)}.*",
            *(f"GRANT {READ_PRIVILEGES} ON {database_of(other)}.*" for other in c.reads)]


def users_section(pod_cidr: str, backup: bool, consumers: Sequence[Consumer] = (),
                  canary: bool = False) -> dict[str, Any]:
    """`spec.configuration.users` of the CHI: every password a reference into AUTH_SECRET."""
    def hashed(user: str) -> dict[str, Any]:
        return {"valueFrom": {"secretKeyRef": {"name": AUTH_SECRET, "key": user}}}

    users: dict[str, Any] = {
        f"{DEFAULT}/password_sha256_hex": hashed(DEFAULT),
        f"{ADMIN}/password_sha256_hex": hashed(ADMIN),
        f"{ADMIN}/networks/ip": [pod_cidr],
        f"{ADMIN}/access_management": 1,
    }
    for c in consumers:
        users.update({f"{c.name}/password_sha256_hex": hashed(c.name), f"{c.name}/networks/ip": [pod_cidr],
                      f"{c.name}/profile": "default", f"{c.name}/grants/query": grants(c)})
    if backup:
        users[f"{BACKUP}/password_sha256_hex"] = hashed(BACKUP)
    if canary:
        users.update({f"{CANARY}/password_sha256_hex": hashed(CANARY), f"{CANARY}/networks/ip": [pod_cidr],
                      f"{CANARY}/profile": "default", f"{CANARY}/grants/query": CANARY_GRANTS})
    return users


def interserver_secret() -> dict[str, Any]:
    """`clusters[].secret`: shards authenticate distributed queries with it, not as `default`."""
    return {"valueFrom": {"secretKeyRef": {"name": AUTH_SECRET, "key": INTERSERVER_KEY}}}


def install(ctx: DataContext, backup: bool, depends_on: Sequence[pulumi.Resource]) -> Users:
    consumers = [c.name for c in ctx.consumers_of("clickhouse")]
    canary = "clickhouse" in ctx.drills
    passwords = {user: ctx.password(f"clickhouse-{user}-password").result
                 for user in (ADMIN, DEFAULT, *([BACKUP] if backup else []), *([CANARY] if canary else []),
                              *consumers)}
    interserver = ctx.password("clickhouse-interserver-secret").result
    labels = ctx.labels("clickhouse", "credentials")

    hashes: dict[str, pulumi.Input[str]] = {user: pw.apply(sha256_hex) for user, pw in passwords.items()}
    auth_values = {**hashes, INTERSERVER_KEY: interserver}
    _, auth = ctx.credentials("clickhouse-server-auth", AUTH_SECRET, NAMESPACE, auth_values, depends_on, labels=labels)
    digest = plain_marker("clickhouse-server-auth", pulumi.Output.all(**auth_values).apply(auth_text))
    admin, admin_secret = ctx.credentials("clickhouse-admin", "clickhouse-admin", NAMESPACE,
                                          {"username": ADMIN, "password": passwords[ADMIN]}, depends_on, labels=labels)
    secrets = [auth, admin_secret]
    logins = {}
    for name in consumers:
        logins[name], secret = ctx.credentials(user_secret(name), user_secret(name), NAMESPACE,
                                               {"username": name, "password": passwords[name]}, depends_on,
                                               labels=labels)
        secrets.append(secret)
    backup_credentials = None
    if backup:
        api_password = ctx.password("clickhouse-backup-api-password").result
        backup_credentials, backup_secret = ctx.credentials(
            "clickhouse-backup", BACKUP_SECRET, NAMESPACE,
            {"username": BACKUP, "password": passwords[BACKUP], "api-username": API_USERNAME,
             "api-password": api_password}, depends_on, labels=labels)
        secrets.append(backup_secret)
    if canary:
        _, canary_secret = ctx.credentials(CANARY_SECRET, CANARY_SECRET, NAMESPACE,
                                           {"username": CANARY, "password": passwords[CANARY]}, depends_on,
                                           labels=labels)
        secrets.append(canary_secret)
    return Users(admin=admin, consumers=logins, backup=backup_credentials, secrets=secrets, auth_digest=digest)


def user_secret(consumer: str) -> str:
    """The Secret in the clickhouse namespace with a consumer's own login (it copies it)."""
    return f"clickhouse-user-{consumer}"
