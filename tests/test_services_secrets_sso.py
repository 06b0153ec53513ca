"""OpenBao's UI behind the single login (issue 20, finding 6): the configure Job gives OpenBao an OIDC auth method
against this stack's GitLab, whose one role admits the admins' GitLab groups only; the client secret is generated
once, held by OpenBao's own Secret and GitLab's application, and never written into a script or a command line."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess

import pytest

from components.digest import marker
from components.services import secrets, secrets_sso
from config.platform import oauth_client_id
from tests import validators, variants
from tests.netpol import internet_ports
from tests.stores import SECRET, string_data

JOB = "kubernetes:batch/v1:Job"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


def configure_script(run) -> str:
    return run.named("openbao-configure", CONFIG_MAP).inputs["data"]["configure.sh"]


def gitlab_application(run, consumer: str) -> dict:
    apps = json.loads(string_data(run.named("sso-oauth-applications", SECRET))["applications.json"])
    [app] = [a for a in apps if a["uid"] == oauth_client_id(run.stack, consumer)]
    return app


def role_body(script: str) -> dict:
    match = re.search(r"bao write auth/oidc/role/gitlab-admins - <<'JSON'\n(.*?)\nJSON\n", script, re.S)
    assert match, "the role is written"
    return json.loads(match.group(1))


@pytest.fixture(scope="module")
def no_sso():
    """No platform layer (run_raw's default): no GitLab to log in with (a run shared with other files:
    tests/variants.py)."""
    return variants.services_variant()


def test_the_ui_logs_in_with_gitlab_and_only_the_admins_groups_get_in(production):
    script = configure_script(production)
    assert validators.shellcheck({"openbao-configure": script}) == ""
    assert "bao read sys/auth/oidc >/dev/null 2>&1 || bao write sys/auth/oidc - <<'JSON'" in script
    assert '"type": "oidc"' in script
    [config] = [line for line in script.splitlines() if line.startswith("bao write auth/oidc/config")]
    assert config == ("bao write auth/oidc/config oidc_discovery_url=https://gitlab.ads.example.com "
                      "oidc_client_id=adplatform-production-openbao default_role=gitlab-admins "
                      "skip_jwks_validation=true oidc_client_secret=@/oidc/client-secret")
    role = role_body(script)
    assert role["bound_claims"] == {"groups": ["platform-admins"]} and role["bound_claims_type"] == "string"
    assert role["role_type"] == "oidc" and role["user_claim"] == "sub" and role["groups_claim"] == "groups"
    assert role["token_policies"] == [secrets.ADMIN_ROLE] and role["token_max_ttl"] == "4h"
    assert role["allowed_redirect_uris"] == ["https://localhost:8200/ui/vault/auth/oidc/oidc/callback",
                                             "http://localhost:8250/oidc/callback"]
    # The config comes before the role; both after the consumers' roles (the login stays first).
    assert script.index("/login") < script.index("auth/oidc/config") < \
        script.index("auth/oidc/role/gitlab-admins")


def test_the_client_secret_is_openbaos_own_and_registered_in_gitlab(production):
    secret = production.named(secrets_sso.CLIENT_SECRET, SECRET)
    assert secret.inputs["metadata"]["namespace"] == "openbao"
    value = string_data(secret)["client-secret"]
    app = gitlab_application(production, "openbao")
    assert app["secret"] == value and len(value) == secrets_sso.SECRET_LENGTH
    assert app["confidential"] is True
    assert app["redirect_uris"] == ["https://localhost:8200/ui/vault/auth/oidc/oidc/callback",
                                    "http://localhost:8250/oidc/callback"]
    # Nowhere but in its own Secret and GitLab's input: not in the script, the Job or any ConfigMap.
    job = production.named("openbao-configure", JOB)
    assert value not in json.dumps(job.inputs, default=str) and value not in configure_script(production)
    pod = job.inputs["spec"]["template"]["spec"]
    assert {"name": "oidc", "secret": {"secretName": secrets_sso.CLIENT_SECRET, "defaultMode": 0o440, "items": [
        {"key": "client-secret", "path": "client-secret"}]}} in pod["volumes"]
    assert {"name": "oidc", "mountPath": "/oidc", "readOnly": True} in pod["containers"][0]["volumeMounts"]
    # A new secret replaces the Job (its pod carries a digest of the secret), which writes it. The digest is
    # domain-separated: not the bare sha256 a store would accept as the password's hash.
    digest = job.inputs["spec"]["template"]["metadata"]["annotations"]["adplatform/oidc-client-sha256"]
    assert digest == marker("oidc-client-secret", value) != hashlib.sha256(value.encode()).hexdigest()
    assert digest == hashlib.sha256(b"adplatform/oidc-client-secret:" + value.encode()).hexdigest()  # as before
    assert production.named(secrets_sso.CLIENT_SECRET, SECRET).urn in job.dependencies


# The servers' pods as openbao chart 0.29.2 labels them (server-statefulset.yaml).
SERVER_PODS = {"helm.sh/chart": "openbao-0.29.2", "app.kubernetes.io/name": "openbao",
               "app.kubernetes.io/instance": "openbao", "component": "server"}


def test_openbao_servers_alone_reach_gitlab_over_https_only(production, no_sso):
    """The servers fetch GitLab's OIDC documents and exchange the login's code; the configure Job talks to the
    servers only, so it gets no way out."""
    policies = [r.inputs["spec"] for r in production.of_type(NETPOL) if r.inputs["metadata"]["namespace"] == "openbao"]
    job_pods = {**production.named("openbao-configure", JOB).inputs["spec"]["template"]["metadata"]["labels"],
                "job-name": "openbao-configure"}
    assert internet_ports(policies, SERVER_PODS) == {443}
    assert internet_ports(policies, job_pods) == set()
    # Without the login the servers get no way out (the snapshot CronJob's pods keep theirs to S3).
    assert [r.name for r in no_sso.of_type(NETPOL) if r.name.startswith("netpol-openbao-allow-egress-internet")] == [
        "netpol-openbao-allow-egress-internet-snapshot"]


def test_without_the_single_login_nothing_of_it_is_rendered(no_sso):
    assert "auth/oidc" not in configure_script(no_sso)
    assert not [r for r in no_sso.resources if r.name == secrets_sso.CLIENT_SECRET]
    pod = no_sso.named("openbao-configure", JOB).inputs["spec"]["template"]["spec"]
    assert "oidc" not in {v["name"] for v in pod["volumes"]}


def test_the_script_reads_the_client_secret_from_its_file_only(production, tmp_path):
    """The configure script against a stub CLI: the secret's value is never an argument."""
    calls = tmp_path / "calls"
    stub = tmp_path / "bao"
    stub.write_text('#!/bin/sh\necho "$*" >> "$CALLS"\ncat > /dev/null\n'
                    'case "$*" in *login*) echo s.stub-token ;; esac\n')
    stub.chmod(0o755)
    script = tmp_path / "configure.sh"
    script.write_text(configure_script(production))
    env = {"CLI": "bao", "AUTH_MOUNT": "kubernetes", "LOGIN_ROLE": "platform-admin", "TOKEN_FILE": "/t",
           "WAIT_SECONDS": "5", "BAO_ADDR": "https://x", "PATH": f"{tmp_path}:{os.environ['PATH']}",
           "CALLS": str(calls)}
    result = subprocess.run(["sh", str(script)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    [config] = [line for line in calls.read_text().splitlines() if line.startswith("write auth/oidc/config")]
    assert config.endswith("oidc_client_secret=@/oidc/client-secret")
