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
- `app`: what the ad services and the platform use, from the pod network only.
- `backup`: the clickhouse-backup sidecar, localhost only (the operator's default networks).
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

AUTH_SECRET = "clickhouse-server-auth"  # password hashes + the interserver secret, read by the servers
INTERSERVER_KEY = "interserver"
ADMIN, APP, BACKUP, DEFAULT = "admin", "app", "backup", "default"
BACKUP_SECRET = "clickhouse-backup"  # the backup user's password and the sidecars' REST API login
API_USERNAME = "backup-api"


@dataclass(frozen=True)
class Users:
    admin: Credentials
    app: Credentials
    backup: Credentials | None  # keys: username, password, api-username, api-password
    secrets: list[k8s.core.v1.Secret]


def sha256_hex(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def users_section(pod_cidr: str, backup: bool) -> dict[str, Any]:
    """`spec.configuration.users` of the CHI: every password a reference into AUTH_SECRET."""
    def hashed(user: str) -> dict[str, Any]:
        return {"valueFrom": {"secretKeyRef": {"name": AUTH_SECRET, "key": user}}}

    users: dict[str, Any] = {
        f"{DEFAULT}/password_sha256_hex": hashed(DEFAULT),
        f"{ADMIN}/password_sha256_hex": hashed(ADMIN),
        f"{ADMIN}/networks/ip": [pod_cidr],
        f"{ADMIN}/access_management": 1,
        f"{APP}/password_sha256_hex": hashed(APP),
        f"{APP}/networks/ip": [pod_cidr],
    }
    if backup:
        users[f"{BACKUP}/password_sha256_hex"] = hashed(BACKUP)
    return users


def interserver_secret() -> dict[str, Any]:
    """`clusters[].secret`: shards authenticate distributed queries with it, not as `default`."""
    return {"valueFrom": {"secretKeyRef": {"name": AUTH_SECRET, "key": INTERSERVER_KEY}}}


def install(ctx: DataContext, backup: bool, depends_on: Sequence[pulumi.Resource]) -> Users:
    passwords = {user: ctx.password(f"clickhouse-{user}-password").result
                 for user in (ADMIN, APP, DEFAULT, *([BACKUP] if backup else []))}
    interserver = ctx.password("clickhouse-interserver-secret").result
    labels = ctx.labels("clickhouse", "credentials")

    hashes: dict[str, pulumi.Input[str]] = {user: pw.apply(sha256_hex) for user, pw in passwords.items()}
    _, auth = ctx.credentials("clickhouse-server-auth", AUTH_SECRET, NAMESPACE,
                              {**hashes, INTERSERVER_KEY: interserver}, depends_on, labels=labels)
    admin, admin_secret = ctx.credentials("clickhouse-admin", "clickhouse-admin", NAMESPACE,
                                          {"username": ADMIN, "password": passwords[ADMIN]}, depends_on, labels=labels)
    app, app_secret = ctx.credentials("clickhouse-app", "clickhouse-app", NAMESPACE,
                                      {"username": APP, "password": passwords[APP]}, depends_on, labels=labels)
    secrets = [auth, admin_secret, app_secret]
    backup_credentials = None
    if backup:
        api_password = ctx.password("clickhouse-backup-api-password").result
        backup_credentials, backup_secret = ctx.credentials(
            "clickhouse-backup", BACKUP_SECRET, NAMESPACE,
            {"username": BACKUP, "password": passwords[BACKUP], "api-username": API_USERNAME,
             "api-password": api_password}, depends_on, labels=labels)
        secrets.append(backup_secret)
    return Users(admin=admin, app=app, backup=backup_credentials, secrets=secrets)
