"""oauth2-proxy in front of a tool without an OIDC login of its own (MLflow): the tool's HTTPRoute points at the
proxy, which lets in members of the tool's GitLab groups (platform.sso) and forwards to the tool's Service.

What the values set and why (keys of helm/oauth2-proxy/values.yaml at tag oauth2-proxy-10.7.0):

- Provider `gitlab` with GitLab's issuer (`--oidc-issuer-url`): oauth2-proxy's GitLab provider is OIDC-based and
  checks `--gitlab-group` (comma-separated full paths) against GitLab's groups; `config.emailDomains: ["*"]`
  because the group check, not the mail domain, decides.
- Credentials: `config.existingSecret` names our Secret with client-id, client-secret (the tool's own OAuth
  client, sso.py) and cookie-secret (32 generated characters: an AES-256 key); the chart reads them into the
  proxy's environment (`proxyVarsAsSecrets`), so no secret is in the values or the generated ConfigMap.
- Cookies: secure (the gateway serves HTTPS only), sessions in the cookie (no Redis).
- `--reverse-proxy`: behind the gateway, the client address comes from X-Forwarded-For.
- Upstream: the tool's in-cluster Service (`config.upstreams`, the legacy config the chart generates).
- Start order: oauth2-proxy reads GitLab's /.well-known/openid-configuration when it starts and exits if it cannot
  (v7.15.3 providers.NewProvider -> NewOAuthProxy -> main's Fatalf), so a proxy that started before GitLab
  answers would crash-loop until its atomic release times out (900 s; GitLab may take 1800 s). The release waits
  for GitLab serving (ctx.gitlab_serving); nothing else of the tool does.
- Replicas and budget follow the profile; the PodDisruptionBudget only where there are two replicas (one pod
  with minAvailable 1 would block every node drain).
"""

from __future__ import annotations

from typing import Any, Sequence

import pulumi

from components import charts
from components.helm import release
from components.platform import sso
from components.platform.context import CLUSTER_DOMAIN, PlatformContext

PORT = 80  # the chart's service.portNumber
CALLBACK = "/oauth2/callback"  # oauth2-proxy's redirect path (sso.py CALLBACKS)
COOKIE_SECRET_LENGTH = 32  # bytes of an AES-256 cookie key: oauth2-proxy takes 16, 24 or 32
RESOURCES = {"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}}


def name(consumer: str) -> str:
    """Release, Service and Secret name (it contains the chart's name, so the chart keeps it as fullname)."""
    return f"{consumer}-oauth2-proxy"


def values(ctx: PlatformContext, consumer: str, label: str, namespace: str, service: str,
           port: int) -> dict[str, Any]:
    client = ctx.sso[consumer]
    replicas = ctx.replicas(2)
    return {
        "config": {"existingSecret": name(consumer), "emailDomains": ["*"],
                   "upstreams": [f"http://{service}.{namespace}.svc.{CLUSTER_DOMAIN}:{port}"]},
        "extraArgs": {
            "provider": "gitlab",
            "oidc-issuer-url": client.issuer,
            "gitlab-group": ",".join(client.allowed_groups()),
            "scope": sso.SCOPES,
            "redirect-url": f"{ctx.url(label)}{CALLBACK}",
            "cookie-secure": "true",
            "reverse-proxy": "true",
            "skip-provider-button": "true",  # straight to GitLab: there is no other way in
        },
        "replicaCount": replicas,
        "podDisruptionBudget": {"enabled": replicas > 1},
        "resources": RESOURCES,
    }


def install(ctx: PlatformContext, consumer: str, label: str, namespace: str, service: str, port: int,
            after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    """The proxy and the route serving https://<label>.<domain> through it."""
    cookie = ctx.password(f"{consumer}-oauth2-proxy-cookie-secret", COOKIE_SECRET_LENGTH).result
    secret = sso.client_secret(ctx, consumer, name(consumer), namespace, after, extra={"cookie-secret": cookie})
    proxy = release(name(consumer), charts.OAUTH2_PROXY, values(ctx, consumer, label, namespace, service, port),
                    ctx.opts([*after, secret, *ctx.gitlab_serving]), namespace=namespace, create_namespace=False)
    route = ctx.route(f"{consumer}-route", label, namespace, name(consumer), PORT, depends_on=[proxy])
    return [secret, proxy, route]


__all__ = ["install", "name"]
