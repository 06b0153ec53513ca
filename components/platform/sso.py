"""Single sign-on: this stack's GitLab is the platform's OpenID Connect identity provider (platform.sso).

Who logs in where (docs/security.md "Single sign-on"):

- Grafana (native `[auth.gitlab]`), JupyterHub (GenericOAuthenticator), Airflow (its FAB auth manager's OAuth),
  MLflow and the Kubeflow Pipelines UI (oauth2-proxy in front of them, components/platform/auth_proxy.py) let in
  members of the GitLab groups of
  `platform.sso.admins` and `platform.sso.users.<tool>`; admins get the tool's admin role.
- kubectl: the API server trusts GitLab's ID tokens (components/k3s/config.py oidc_apiserver_args); rights come
  only from `platform.sso.kubectl.bindings` (GitLab group -> ClusterRole, in a namespace or cluster-wide).
- OpenBao's UI and CLI (through `kubectl port-forward`): its OIDC auth method, which the cluster-services layer
  configures (components/services/secrets_sso.py: admins only); its client secret comes from that layer.

What this module creates and why:

- One OAuth application per consumer (SSO_CONSUMERS that are enabled), each with its own client id
  (config/platform.py oauth_client_id) and generated secret (pulumi_random, in state): no two tools share one.
  Each consumer gets its credentials as a Secret in its own namespace (keys client-id, client-secret).
- The applications are created in GitLab by a toolbox Job (toolbox_job.py), like the runner: scripts/
  oauth-bootstrap.sh feeds scripts/create-oauth-apps.rb the applications from a mounted Secret on the exec's stdin.
  Nothing secret is on a command line, in the Job's environment, in the ConfigMap or in the log; the Ruby program
  holds no values. Re-running finds each application by name and changes only what differs. The Job runs again
  whenever the applications change (the pod template carries a SHA-256 of them, as Helm charts' checksum/secret
  annotations do; the secrets are 64 random characters, so the hash reveals nothing).
- Least privilege: the Job's ServiceAccount may only find and exec into the toolbox pod (toolbox_job.gitlab_rules);
  its input is a mounted Secret, so it needs no Secret rights at all.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Sequence

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.k3s.config import OIDC_PREFIX
from components.platform import toolbox_job
from components.platform.context import OAuthClient, PlatformContext
from components.services.secrets import SecretStore
from components.services.secrets_sso import CONSUMER as STORE_CONSUMER
from config.platform import SSO_TOOLS, gitlab_issuer, oauth_client_id

NAME = "oauth-bootstrap"  # ServiceAccount, Role, RoleBinding, ConfigMap of the Job (namespace gitlab)
APP = "gitlab"
SHELL_SCRIPT = "oauth-bootstrap.sh"
RUBY_SCRIPT = "create-oauth-apps.rb"
APPS_SECRET = "oauth-applications"  # the Job's input, mounted read-only
APPS_MOUNT = "/applications"
APPS_KEY = "applications.json"
SCOPES = "openid profile email"  # ID token + profile + primary email; groups come with openid (groups_direct)
SECRET_LENGTH = 64
# kubectl's OIDC plugin (int128/kubelogin) listens on these for the authorization code (its default ports).
KUBECTL_REDIRECTS = ("http://localhost:8000", "http://localhost:18000")
# consumer -> (its host label, its OAuth callback path); the platform.<component> it belongs to is SSO_TOOLS'
CALLBACKS: dict[str, tuple[str, str]] = {
    "grafana": ("grafana", "/login/gitlab"),  # Grafana's [auth.gitlab] callback
    "airflow": ("airflow", "/auth/oauth-authorized/gitlab"),  # FAB's OAuth callback, provider "gitlab"
    "jupyterhub": ("jupyter", "/hub/oauth_callback"),  # OAuthenticator's callback
    "mlflow": ("mlflow", "/oauth2/callback"),  # oauth2-proxy's callback
    "kubeflow": ("kubeflow", "/oauth2/callback"),  # oauth2-proxy's callback (the Pipelines UI)
}
_NAME = re.compile(r"^[A-Za-z0-9 ._()-]+$")
_ID = re.compile(r"^[A-Za-z0-9._-]+$")
_REDIRECT = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d+)?(/[A-Za-z0-9._~/-]*)?$")


def consumers(ctx: PlatformContext) -> list[str]:
    """The enabled consumers: each web tool whose component is on, and kubectl."""
    return [c for c in CALLBACKS if getattr(ctx.settings, SSO_TOOLS[c]).enabled] + ["kubectl"]


def redirect_uris(ctx: PlatformContext, consumer: str) -> tuple[str, ...]:
    if consumer == "kubectl":
        return KUBECTL_REDIRECTS
    label, path = CALLBACKS[consumer]
    return (f"{ctx.url(label)}{path}",)


def clients(ctx: PlatformContext, store: SecretStore | None = None) -> dict[str, OAuthClient]:
    """Every consumer's OAuth client (none with SSO off), and the secret store's when it logs in with GitLab."""
    sso = ctx.settings.sso
    if not sso.enabled:
        return {}
    found = {}
    for consumer in consumers(ctx):
        secret = ctx.password(f"sso-{consumer}-client-secret", SECRET_LENGTH).result
        found[consumer] = OAuthClient(
            consumer=consumer, client_id=oauth_client_id(ctx.stack, consumer),
            client_secret=pulumi.Output.secret(secret), redirect_uris=redirect_uris(ctx, consumer),
            confidential=consumer != "kubectl", issuer=gitlab_issuer(ctx.domain),
            groups=tuple(sso.allowed(consumer)) if consumer != "kubectl" else (), admins=tuple(sso.admins))
    if store is not None and store.oidc is not None and store.oidc_client_secret is not None:
        login = store.oidc
        found[STORE_CONSUMER] = OAuthClient(
            consumer=STORE_CONSUMER, client_id=login.client_id, client_secret=store.oidc_client_secret,
            redirect_uris=login.redirect_uris, confidential=True, issuer=login.issuer, groups=login.admins,
            admins=login.admins)
    return found


def client_secret(ctx: PlatformContext, consumer: str, name: str, namespace: str,
                  after: Sequence[pulumi.Resource], extra: dict[str, pulumi.Input[str]] | None = None
                  ) -> k8s.core.v1.Secret:
    """The consumer's client id and secret as a Secret in its namespace (keys client-id, client-secret, and
    `extra`, e.g. oauth2-proxy's cookie-secret)."""
    client = ctx.sso[consumer]
    return ctx.credentials(f"sso-{consumer}-client", name, namespace,
                           {"client-id": client.client_id, "client-secret": client.client_secret, **(extra or {})},
                           after, labels=ctx.labels(consumer, "sso"))[1]


def application_name(ctx: PlatformContext, consumer: str) -> str:
    return f"adplatform {ctx.stack} {consumer}"


def application(ctx: PlatformContext, client: OAuthClient, client_id: str, secret: str) -> dict:
    """One application as the Ruby program reads it; every value checked, so the JSON is one line of harmless
    characters (no quote, backslash or newline to break out of the heredoc or the JSON)."""
    name = application_name(ctx, client.consumer)
    checks = [(name, _NAME), (client_id, _ID), (secret, _ID), *((uri, _REDIRECT) for uri in client.redirect_uris)]
    for value, pattern in checks:
        if not pattern.match(value):
            raise ValueError(f"sso: an OAuth application value of {client.consumer} has characters outside "
                             f"{pattern.pattern}")
    return {"name": name, "uid": client_id, "secret": secret, "redirect_uris": list(client.redirect_uris),
            "scopes": SCOPES, "confidential": client.confidential}


def applications_json(ctx: PlatformContext) -> pulumi.Output[str]:
    ordered = list(ctx.sso.values())
    return pulumi.Output.secret(pulumi.Output.all(*(c.client_secret for c in ordered)).apply(
        lambda secrets: json.dumps([application(ctx, c, c.client_id, secret) for c, secret in zip(ordered, secrets)],
                                   separators=(",", ":"))))


def bootstrap(ctx: PlatformContext, toolbox: toolbox_job.Toolbox, after: Sequence[pulumi.Resource],
              spaces: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    """The Job creating the applications in GitLab, once `after` is done, while GitLab installs (the script waits
    for its migrations); nothing with SSO off. Its Secret, RBAC and scripts need only GitLab's namespace (`spaces`)."""
    if not ctx.sso:
        return []
    apps = applications_json(ctx)
    _, data = ctx.credentials("sso-oauth-applications", APPS_SECRET, toolbox.namespace, {APPS_KEY: apps}, spaces,
                              labels=ctx.labels(APP, NAME))
    scripts = {SHELL_SCRIPT: toolbox_job.shell_script(SHELL_SCRIPT),
               RUBY_SCRIPT: (toolbox_job.SCRIPTS / RUBY_SCRIPT).read_text()}
    digest = pulumi.Output.unsecret(apps.apply(lambda text: hashlib.sha256(text.encode()).hexdigest()))
    annotations = {"adplatform.io/scripts-sha256": toolbox_job.scripts_digest(scripts),
                   "adplatform.io/applications-sha256": digest}
    spec = toolbox_job.job_spec(
        ctx, NAME, APP, SHELL_SCRIPT,
        {"APPS_FILE": f"{APPS_MOUNT}/{APPS_KEY}", "RUBY_SCRIPT": f"{toolbox_job.MOUNT}/{RUBY_SCRIPT}"},
        toolbox, annotations,
        volumes=[{"name": "applications", "secret": {"secretName": APPS_SECRET, "defaultMode": 0o440}}],
        mounts=[{"name": "applications", "mountPath": APPS_MOUNT, "readOnly": True}])
    rbac = toolbox_job.rbac(ctx, NAME, APP, toolbox.namespace, {toolbox.namespace: toolbox_job.gitlab_rules(toolbox)},
                            spaces)
    job = toolbox_job.install(ctx, NAME, APP, toolbox.namespace, scripts, spec, [*after, *rbac, data], spaces)
    return [data, *rbac, job]


def _slug(group: str) -> str:
    """A Kubernetes name part for a GitLab group path (paths may hold '/', '_' and capitals), kept unique."""
    readable = re.sub(r"[^a-z0-9-]+", "-", group.lower()).strip("-")[:40]
    return f"{readable}-{hashlib.sha256(group.encode()).hexdigest()[:6]}"


def kubectl_bindings(ctx: PlatformContext, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    """platform.sso.kubectl.bindings as RBAC: a RoleBinding in the namespace (or a ClusterRoleBinding when none is
    given) from the GitLab group, as the API server names it (`gitlab:<path>`), to the ClusterRole."""
    if not ctx.sso:
        return []
    made: list[pulumi.Resource] = []
    for binding in ctx.settings.sso.kubectl.bindings:
        name = f"sso-{binding.cluster_role}-{_slug(binding.group)}"
        role_ref = k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="ClusterRole",
                                           name=binding.cluster_role)
        subjects = [k8s.rbac.v1.SubjectArgs(kind="Group", name=f"{OIDC_PREFIX}{binding.group}",
                                            api_group="rbac.authorization.k8s.io")]
        labels = ctx.labels("kubectl", "sso")
        if binding.namespace is None:
            made.append(k8s.rbac.v1.ClusterRoleBinding(
                name, metadata=k8s.meta.v1.ObjectMetaArgs(name=name, labels=labels), role_ref=role_ref,
                subjects=subjects, opts=ctx.opts(after)))
        else:
            made.append(k8s.rbac.v1.RoleBinding(
                f"{name}-{binding.namespace}",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=binding.namespace, labels=labels),
                role_ref=role_ref, subjects=subjects, opts=ctx.opts(after)))
    return made


__all__ = ["OIDC_PREFIX", "bootstrap", "client_secret", "clients", "kubectl_bindings"]
