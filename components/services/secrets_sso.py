"""OpenBao's UI and CLI behind the single login: an OIDC auth method against this stack's GitLab (platform.sso).

Who gets in: members of the GitLab groups of `platform.sso.admins` (GitLab's userinfo `groups`, full paths with
inherited memberships, as the other tools read them), with the admin policy. Nobody else: the role's
`bound_claims` refuse any other login. The Kubernetes auth method stays (ESO's readers, the configure Job, and the
break-glass `kubectl create token openbao-admin`, which still works with GitLab down).

Why it is set up here, in the cluster-services layer, and not by the platform layer that owns the other OAuth
clients (components/platform/sso.py): the configure Job that writes OpenBao's auth methods belongs to OpenBao, and no
layer reaches back up. Like the API server's OIDC flags (components/k3s/config.py ApiServerOidc), everything but the
client secret derives from config; the secret is generated here and handed up (SecretStore.oidc_client_secret) to
sso.py, which registers the GitLab application with it. GitLab usually does not exist yet when the Job first runs,
so the config is written with `skip_jwks_validation` (OpenBao warns, and discovers GitLab at the first login).

How admins reach the UI: it is not routed (the API it serves is the store itself; it stays off the gateway):
`kubectl -n openbao port-forward svc/openbao-active 8200`, then https://localhost:8200/ui, method OIDC. The server
certificate names `localhost` and the CA is the Secret openbao/openbao-tls `ca.crt`. The CLI:
`bao login -method=oidc` (its listener on localhost:8250). Both callbacks are the application's redirect URIs.

API (OpenBao v2.6.2 builtin/credential/jwt, mounted as type `oidc`): `auth/oidc/config` (oidc_discovery_url,
oidc_client_id, oidc_client_secret, default_role, skip_jwks_validation) and `auth/oidc/role/<name>` (role_type,
user_claim, groups_claim, bound_claims, allowed_redirect_uris, claim_mappings, token_*).
Vault (the other backend) has no configure Job: its bootstrap is run by hand (secrets.py), so no OIDC there.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from config import StackConfig
from config.platform import gitlab_issuer, oauth_client_id

CONSUMER = "openbao"  # config/platform.py SSO_CONSUMERS: the GitLab application's consumer name
MOUNT = "oidc"
ROLE = "gitlab-admins"
CLIENT_SECRET = "openbao-oidc-client"  # Secret (key client-secret) in the store's namespace, mounted by the Job
SECRET_MOUNT = "/oidc"
SECRET_LENGTH = 64  # as every OAuth client's (components/platform/sso.py)
# GitLab's userinfo `groups` (full paths, inherited memberships included); the ID token has only direct ones.
GROUPS_CLAIM = "groups"
CLI_REDIRECT = "http://localhost:8250/oidc/callback"  # `bao login -method=oidc`: its default listener
UI_CALLBACK = f"/ui/vault/auth/{MOUNT}/oidc/callback"  # the UI's callback (OpenBao docs, auth/jwt "OpenBao UI")


@dataclass(frozen=True)
class SecretsOidc:
    issuer: str  # GitLab's external URL, https://gitlab.<domain>
    client_id: str  # the openbao OAuth application's (config/platform.py oauth_client_id)
    admins: tuple[str, ...]  # platform.sso.admins: GitLab group paths (config-checked)
    api_port: int  # what `kubectl port-forward` forwards: the UI's redirect URI names it

    @classmethod
    def from_config(cls, cfg: StackConfig, stack: str, api_port: int) -> SecretsOidc | None:
        """Only with the single sign-on on (which needs this stack's GitLab) and the self-configuring backend."""
        if not (cfg.layers.platform and cfg.platform.sso.enabled and cfg.cluster_services.secrets.backend == "openbao"):
            return None
        return cls(gitlab_issuer(cfg.domain), oauth_client_id(stack, CONSUMER), tuple(cfg.platform.sso.admins),
                   api_port)

    @property
    def redirect_uris(self) -> tuple[str, ...]:
        return (f"https://localhost:{self.api_port}{UI_CALLBACK}", CLI_REDIRECT)

    def role(self, policy: str, lifetime: dict[str, str]) -> dict[str, object]:
        """The one role: GitLab admins get `policy`; the entity is GitLab's stable user id (`sub`), named by the
        username in its metadata; `lifetime`: token_ttl and token_max_ttl."""
        return {"role_type": "oidc", "user_claim": "sub", "groups_claim": GROUPS_CLAIM,
                "bound_claims": {GROUPS_CLAIM: list(self.admins)}, "bound_claims_type": "string",
                "claim_mappings": {"preferred_username": "username"},
                "allowed_redirect_uris": list(self.redirect_uris), "token_policies": [policy], **lifetime}

    def config_command(self, cli: str) -> str:
        """`auth/oidc/config`, written with the CLI's key=value form so the client secret is read from its mounted
        file (`@file`): never on a command line, in the script or in the log. The other values are quoted."""
        args = {"oidc_discovery_url": self.issuer, "oidc_client_id": self.client_id, "default_role": ROLE,
                "skip_jwks_validation": "true"}
        pairs = " ".join(shlex.quote(f"{k}={v}") for k, v in args.items())
        return (f"# auth-{MOUNT}-config\n{cli} write auth/{MOUNT}/config {pairs} "
                f"oidc_client_secret=@{SECRET_MOUNT}/client-secret\n")
