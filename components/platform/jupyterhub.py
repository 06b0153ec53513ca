"""JupyterHub from the Zero to JupyterHub chart (components/charts.py JUPYTERHUB), served at https://jupyter.<domain>.

What this module sets and why:

- Hub database: the `jupyterhub` database of the shared CloudNativePG cluster (`hub.db.type: postgres`, TLS),
  not the chart's sqlite volume. The URL carries no password: the hub reads PGPASSWORD (libpq) from our copy of
  the database credentials (`hub.extraEnv` secretKeyRef), so the chart's `hub.db.password` stays unset.
  Schema upgrades run at hub start (`hub.db.upgrade`), covered by the cluster's backups.
- Authentication with platform.sso on: GitLab (GenericOAuthenticator, gitlab_login): members of JupyterHub's
  GitLab groups only, the admins' groups as JupyterHub admins. Without SSO: NativeAuthenticator (in the hub image): people sign up, an admin authorizes them; sign-up is
  closed otherwise. The admin account `admin` logs in with a generated password (Secret `jupyterhub-admin`, key
  `password`) and cannot be claimed by signing up: a small subclass in `hub.extraConfig`.
- Secrets: the proxy token and cookie secret are generated (pulumi_random). The chart takes them only as plain
  values (`proxy.secretToken`, `hub.cookieSecret`), so the Helm values are marked secret; the cookie secret is
  hex (JupyterHub refuses other strings).
- User servers: the chart's pinned singleuser image, CPU/memory limits and guarantees from
  platform.jupyterhub.*, a home volume per user (dynamic PVC of `userStorageSize` on the cluster's
  StorageClass), restricted security contexts, idle servers culled after `idleTimeoutMinutes`.
- Routing: the gateway's HTTPRoute to the `proxy-public` Service (ClusterIP; the chart's Ingress, HTTPRoute and
  autohttps stay off: TLS ends at the shared gateway).
- Network: the chart's NetworkPolicies are off. They only add allows (policies are a union), e.g. egress from
  user servers to every public address; the namespace's own default-deny policies already let the hub, proxy
  and user servers talk inside the namespace and list exactly what leaves it: PostgreSQL, the object store,
  MLflow (when enabled) and HTTPS: the user servers' (package installs), the hub's with SSO (GitLab), nothing
  from the proxy or the image puller. Cloud metadata stays blocked by those policies
  (link-local is excluded), so the chart's privileged iptables init container is off.
- Small cluster: no user-scheduler or placeholders (their packing pays off only with a node autoscaler), no
  pre-install image-puller hook (it delays every upgrade); the continuous puller keeps the user image on the
  general nodes.
- Availability: JupyterHub runs one hub and one proxy by design (the chart's Recreate strategy), so no
  disruption budget: one of one would block every drain.
- Metrics: the hub's /hub/metrics (Prometheus auth off; only Prometheus reaches port 8081 from outside).
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import pulumi

from components import charts
from components.helm import release
from components.platform import mlflow, sso
from components.platform.context import LAYER, Installed, PlatformContext
from components.services.namespaces import (RESTRICTED_CONTAINER_SECURITY, RESTRICTED_POD_SECURITY, Namespaces,
                                           NamespaceSpec, PodsEgress)
from config.quantity import cpu_millis, memory_bytes

NAMESPACE = charts.JUPYTERHUB.namespace
RELEASE = "jupyterhub"
HOST_LABEL = "jupyter"
PROXY_SERVICE = "proxy-public"  # fullnameOverride "" (the chart's default): bare component names
PROXY_PORT = 80
HUB_PORT = 8081
CONSUMER = "jupyterhub"  # dataPlane.postgres.databases key
DB_SECRET = "jupyterhub-db"
ADMIN_SECRET = "jupyterhub-admin"
SSO_CLIENT = "jupyterhub"  # its OAuth client (components/platform/sso.py)
SSO_SECRET = "jupyterhub-sso"
ADMIN_USER = "admin"
ADMIN_PASSWORD_ENV = "JUPYTERHUB_ADMIN_PASSWORD"
HUB_LABELS = {"component": "hub", "app": "jupyterhub", "release": RELEASE}  # jupyterhub.matchLabels
# User servers: KubeSpawner's component label and the chart's common labels (hub jupyterhub_config.py), which the
# chart's own singleuser NetworkPolicy selects them by (chart 4.4.0 templates/singleuser/netpol.yaml).
USER_SERVER_LABELS = {"component": "singleuser-server", "app": "jupyterhub", "release": RELEASE}
USER_UID, USER_GID = 1000, 100  # the singleuser image's jovyan user and users group (chart singleuser.uid/fsGid)

HUB_RESOURCES = {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}
PROXY_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
PULLER_RESOURCES = {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}}

# Runs last in jupyterhub_config.py (files/hub/jupyterhub_config.py executes hub.extraConfig after hub.config).
AUTH_CONFIG = f'''
import inspect
import os
from secrets import compare_digest

import nativeauthenticator
from nativeauthenticator import NativeAuthenticator


class PlatformAuthenticator(NativeAuthenticator):
    """NativeAuthenticator whose admin account logs in with the generated password in ${ADMIN_PASSWORD_ENV}
    and cannot be claimed through the sign-up form."""

    async def authenticate(self, handler, data):
        data = data or {{}}
        if self.normalize_username(data.get("username", "")) == "{ADMIN_USER}":
            given = data.get("password", "").encode()
            expected = os.environ["{ADMIN_PASSWORD_ENV}"].encode()
            return "{ADMIN_USER}" if compare_digest(given, expected) else None
        result = super().authenticate(handler, data)
        return await result if inspect.isawaitable(result) else result

    def create_user(self, username, password, **kwargs):
        if self.normalize_username(username) == "{ADMIN_USER}":
            return None
        return super().create_user(username, password, **kwargs)


c.JupyterHub.authenticator_class = PlatformAuthenticator
c.JupyterHub.template_paths = [os.path.join(os.path.dirname(nativeauthenticator.__file__), "templates")]
'''


def namespaces(ctx: PlatformContext) -> list[NamespaceSpec]:
    return [NamespaceSpec(
        name=NAMESPACE, pss="restricted", layer=LAYER, gateway=True,
        why="hub, proxy, image puller and user servers run non-root without capabilities under RuntimeDefault "
            "seccomp (the chart's contexts plus KubeSpawner's, set here)",
        ingress_from=(ctx.monitoring((HUB_PORT,)),),
        # Notebooks log runs to MLflow (its namespace admits the platform layer) when it is on.
        egress_to=(*ctx.store_peers("postgres", "object_storage"), *mlflow.client_egress(ctx)),
        egress_world_pods=internet_egress(ctx))]


def internet_egress(ctx: PlatformContext) -> tuple[PodsEgress, ...]:
    """User servers install packages (PyPI, conda, git over HTTPS) and read the provider's S3 (HTTPS too); with
    platform.sso the hub exchanges the login's code at GitLab's public address. The proxy and the image puller
    never leave the cluster (the kubelet, not the puller's pod, pulls the image)."""
    sso = ctx.sso_egress_world(SSO_CLIENT)
    return (PodsEgress("user-servers", dict(USER_SERVER_LABELS), (443,)),
            *((PodsEgress("hub", dict(HUB_LABELS), sso),) if sso else ()))


def db_url(ctx: PlatformContext) -> str:
    postgres = ctx.data.postgres
    database = postgres.databases[CONSUMER]
    return (f"postgresql+psycopg2://{database.owner}@{postgres.host}:{postgres.port}/{database.name}"
            "?sslmode=require")


def native_login() -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """Without SSO: NativeAuthenticator with the generated admin (hub.config, hub.extraEnv, hub.extraConfig)."""
    config = {
        "JupyterHub": {"admin_access": False, "authenticator_class": "nativeauthenticator.NativeAuthenticator"},
        # NativeAuthenticator itself refuses anyone an admin has not authorized (open_signup off).
        "Authenticator": {"admin_users": [ADMIN_USER], "allow_all": True},
        "NativeAuthenticator": {"open_signup": False, "minimum_password_length": 12, "check_common_password": True},
    }
    env = {ADMIN_PASSWORD_ENV: {"valueFrom": {"secretKeyRef": {"name": ADMIN_SECRET, "key": "password"}}}}
    return config, env, {"10-platform-authenticator": AUTH_CONFIG}


def gitlab_login(ctx: PlatformContext) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """With SSO: OAuthenticator 17.4's GenericOAuthenticator (in the chart 4.4.0 hub image) against GitLab. Members
    of the allowed GitLab groups log in (GitLab's userinfo `groups`: full paths), the admins' groups are JupyterHub
    admins; the username is the GitLab username. The client secret comes from the Secret `jupyterhub-sso` as
    OAUTH_CLIENT_SECRET, which OAuthenticator reads by default, so it is not in the chart's values."""
    client = ctx.sso[SSO_CLIENT]
    config = {
        "JupyterHub": {"admin_access": False, "authenticator_class": "oauthenticator.generic.GenericOAuthenticator"},
        "GenericOAuthenticator": {
            "client_id": client.client_id,
            "oauth_callback_url": client.redirect_uris[0],
            "authorize_url": f"{client.issuer}/oauth/authorize", "token_url": f"{client.issuer}/oauth/token",
            "userdata_url": f"{client.issuer}/oauth/userinfo",
            "scope": sso.SCOPES.split(),
            "username_claim": "nickname",  # the GitLab username (userinfo)
            "login_service": "GitLab",
            "manage_groups": True,  # groups from the login decide who gets in and who is admin
            "auth_state_groups_key": "oauth_user.groups",
            "allowed_groups": list(client.allowed_groups()),
            "admin_groups": list(client.admins),
        },
    }
    env = {"OAUTH_CLIENT_SECRET": {"valueFrom": {"secretKeyRef": {"name": SSO_SECRET, "key": "client-secret"}}}}
    return config, env, {}


def hub_values(ctx: PlatformContext, cookie_secret: pulumi.Output[str]) -> dict[str, Any]:
    auth_config, auth_env, extra_config = gitlab_login(ctx) if SSO_CLIENT in ctx.sso else native_login()
    secret_env = {"PGPASSWORD": {"valueFrom": {"secretKeyRef": {"name": DB_SECRET, "key": "password"}}}, **auth_env}
    return {
        "db": {"type": "postgres", "url": db_url(ctx), "upgrade": True},
        "extraEnv": secret_env,
        "cookieSecret": cookie_secret,
        "config": {
            **auth_config,
            "KubeSpawner": {
                "pod_security_context": {**RESTRICTED_POD_SECURITY, "runAsUser": USER_UID, "fsGroup": USER_GID},
                "container_security_context": {**RESTRICTED_CONTAINER_SECURITY, "runAsUser": USER_UID},
            },
        },
        "extraConfig": extra_config,
        "authenticatePrometheus": False,
        "resources": HUB_RESOURCES,
        "networkPolicy": {"enabled": False},
        "pdb": {"enabled": False},
    }


def singleuser_values(ctx: PlatformContext) -> dict[str, Any]:
    settings = ctx.settings.jupyterhub
    return {
        "image": {"name": charts.JUPYTERHUB_SINGLEUSER_IMAGE, "tag": charts.JUPYTERHUB_SINGLEUSER_TAG},
        # The chart wants cores as numbers and KubeSpawner byte sizes without binary suffixes: plain numbers.
        "cpu": {"limit": cpu_millis(settings.user_cpu_limit) / 1000,
                "guarantee": cpu_millis(settings.user_cpu_guarantee) / 1000},
        "memory": {"limit": memory_bytes(settings.user_memory_limit),
                   "guarantee": memory_bytes(settings.user_memory_guarantee)},
        "storage": {"type": "dynamic", "capacity": settings.user_storage_size,
                    "dynamic": {"storageClass": ctx.storage_class, "storageAccessModes": ["ReadWriteOnce"]}},
        "uid": USER_UID,
        "fsGid": USER_GID,
        "allowPrivilegeEscalation": False,
        "cloudMetadata": {"blockWithIptables": False},
        "networkPolicy": {"enabled": False},
        "startTimeout": 600,  # a first start pulls the image and provisions the home volume
    }


def values(ctx: PlatformContext, proxy_token: pulumi.Output[str], cookie_secret: pulumi.Output[str]) -> dict[str, Any]:
    settings = ctx.settings.jupyterhub
    return {
        "hub": hub_values(ctx, cookie_secret),
        "proxy": {
            "secretToken": proxy_token,
            "service": {"type": "ClusterIP"},
            "https": {"enabled": False},
            "chp": {"resources": PROXY_RESOURCES, "networkPolicy": {"enabled": False}, "pdb": {"enabled": False}},
        },
        "singleuser": singleuser_values(ctx),
        "scheduling": {"userScheduler": {"enabled": False}, "userPlaceholder": {"enabled": False},
                       "podPriority": {"enabled": False}},
        "prePuller": {"hook": {"enabled": False}, "continuous": {"enabled": True}, "resources": PULLER_RESOURCES},
        "ingress": {"enabled": False},
        "httpRoute": {"enabled": False},
        "cull": {"enabled": True, "timeout": settings.idle_timeout_minutes * 60, "every": 600, "users": False,
                 "adminUsers": True, "removeNamedServers": False},
    }


def cookie_secret(ctx: PlatformContext) -> pulumi.Output[str]:
    """64 hex characters (JupyterHub decodes a string cookie secret as hex), derived from a generated password."""
    seed = ctx.password("jupyterhub-cookie-seed", 32).result
    return pulumi.Output.secret(seed.apply(lambda value: hashlib.sha256(value.encode()).hexdigest()))


def install(ctx: PlatformContext, spaces: Namespaces, after: Sequence[pulumi.Resource]) -> Installed:
    ns = spaces[NAMESPACE]
    before = [*after, ns]
    database = ctx.data.postgres.databases[CONSUMER]
    db_secret = database.credentials.copy_to("jupyterhub-db-credentials", NAMESPACE, ctx.opts(before), name=DB_SECRET)
    admin = ctx.credentials("jupyterhub-admin", ADMIN_SECRET, NAMESPACE,
                            {"username": ADMIN_USER, "password": ctx.password("jupyterhub-admin-password").result},
                            before, labels=ctx.labels("jupyterhub", "credentials"))[1]
    login = ([sso.client_secret(ctx, SSO_CLIENT, SSO_SECRET, NAMESPACE, before)] if SSO_CLIENT in ctx.sso else [])
    proxy_token = ctx.password("jupyterhub-proxy-token", 64).result
    chart_values = pulumi.Output.secret(values(ctx, proxy_token, cookie_secret(ctx)))
    chart = release(RELEASE, charts.JUPYTERHUB, chart_values, ctx.opts([*before, db_secret, admin, *login]),
                    namespace=NAMESPACE, create_namespace=False)
    monitor = ctx.service_monitor("jupyterhub-metrics", "hub", NAMESPACE, HUB_LABELS, "hub", [chart],
                                  path="/hub/metrics")
    route = ctx.route("jupyterhub-route", HOST_LABEL, NAMESPACE, PROXY_SERVICE, PROXY_PORT, [chart])
    return Installed(urls={HOST_LABEL: ctx.url(HOST_LABEL)}, ready=[db_secret, admin, *login, chart, monitor, route])


__all__ = ["install", "namespaces"]
