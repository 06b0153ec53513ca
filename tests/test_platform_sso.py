"""Single sign-on (issue 20, finding 6): this stack's GitLab is the identity provider of every internal tool and
of kubectl. Every internal hostname is served by an SSO-protected backend, every consumer has its own OAuth client
(created in GitLab by the program), client secrets live only in Secrets, the API server trusts GitLab only with SSO
on, kubectl rights are exactly the configured bindings, and the bootstrap script keeps secrets off command lines
and logs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from components.k3s.config import OIDC_PREFIX, ApiServerOidc, node_config
from components.platform import airflow, auth_proxy, jupyterhub, monitoring, sso, toolbox_job
from config.catalog import PLATFORM_HOSTNAMES
from config.platform import Platform, oauth_client_id
from tests import validators
from tests.toolbox_fakes import run_toolbox_script
from tests.conftest import base_raw, k3s_config
from tests import variants
from tests.stores import RELEASE, SECRET, config_problems, stack_config, string_data
from tools.mockrun import Run, Secret

ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
JOB = "kubernetes:batch/v1:Job"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
CLUSTER_ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"
PUBLIC = {"ads", "rtb", "api"}  # the ad services: public by design
# GitLab and its registry are the identity provider itself (the registry authenticates with GitLab's tokens).
IDENTITY_PROVIDER = {"gitlab", "registry"}
INTERNAL = set(PLATFORM_HOSTNAMES) - PUBLIC - IDENTITY_PROVIDER
WEB_CONSUMERS = {"grafana": "grafana-sso", "airflow": "airflow-sso", "jupyterhub": "jupyterhub-sso",
                 "mlflow": auth_proxy.name("mlflow"), "kubeflow": auth_proxy.name("kubeflow")}


def values(run: Run, release: str) -> dict:
    raw = run.named(release, RELEASE).inputs["values"]
    return raw.value if isinstance(raw, Secret) else raw


def applications(run: Run) -> list[dict]:
    return json.loads(string_data(run.named("sso-oauth-applications", SECRET))[sso.APPS_KEY])


def sso_backends(run: Run) -> dict[str, str]:
    """Service name -> how it logs people in, read from what each release is configured with."""
    found = {}
    for proxy in (r for r in run.of_type(RELEASE) if r.inputs["chart"] == "oauth2-proxy"):
        args = values(run, proxy.name)["extraArgs"]
        if args["provider"] == "gitlab" and args["gitlab-group"]:
            found[proxy.name] = "oauth2-proxy"
    grafana = values(run, "kube-prometheus-stack")["grafana"]
    ini = grafana["grafana.ini"]
    if ini.get("auth.gitlab", {}).get("enabled") and ini.get("auth", {}).get("disable_login_form"):
        found[monitoring.GRAFANA_SERVICE] = "grafana [auth.gitlab]"
    hub = values(run, jupyterhub.RELEASE)["hub"]["config"]["JupyterHub"]
    if hub["authenticator_class"] == "oauthenticator.generic.GenericOAuthenticator":
        found[jupyterhub.PROXY_SERVICE] = "jupyterhub GenericOAuthenticator"
    if "AUTH_TYPE = AUTH_OAUTH" in values(run, airflow.RELEASE)["apiServer"].get("apiServerConfig", ""):
        found[airflow.API_SERVER_SERVICE] = "airflow FAB OAuth"
    return found


# --- every internal hostname is behind the single sign-on ------------------------------------------------
def test_every_internal_hostname_is_served_by_an_sso_backend(production):
    protected = sso_backends(production)
    routed = {}
    for route in production.of_type(ROUTE):
        for host in route.inputs["spec"].get("hostnames", []):  # HTTP->HTTPS redirects name none
            label = host.split(".", 1)[0]
            if label in INTERNAL:
                routed[label] = [ref["name"] for rule in route.inputs["spec"]["rules"] for ref in rule["backendRefs"]]
    assert set(routed) == INTERNAL  # production runs every internal tool
    for label, backends in routed.items():
        assert backends and all(b in protected for b in backends), (label, backends, protected)


def test_only_the_configured_groups_get_in(production):
    admins = stack_config(production).platform.sso.admins
    assert admins == ["platform-admins"]  # the default: nobody else until configured
    ini = values(production, "kube-prometheus-stack")["grafana"]["grafana.ini"]["auth.gitlab"]
    assert ini["allowed_groups"] == "platform-admins"
    assert ini["role_attribute_path"] == "(contains(groups[*], 'platform-admins')) && 'Admin' || 'Viewer'"
    generic = values(production, jupyterhub.RELEASE)["hub"]["config"]["GenericOAuthenticator"]
    assert generic["allowed_groups"] == ["platform-admins"] and generic["manage_groups"] is True
    for proxy in ("mlflow", "kubeflow"):
        assert values(production, auth_proxy.name(proxy))["extraArgs"]["gitlab-group"] == "platform-admins"
    assert "AUTH_ROLES_MAPPING = {'platform-admins': ['Admin']}" in \
        values(production, airflow.RELEASE)["apiServer"]["apiServerConfig"]


def test_tool_users_get_the_ordinary_role():
    settings = Platform.model_validate({"sso": {"users": {"grafana": ["data/analysts"]}}})
    assert settings.sso.allowed("grafana") == ["platform-admins", "data/analysts"]
    assert settings.sso.allowed("mlflow") == ["platform-admins"]
    assert monitoring.role_attribute_path(["a", "b/c"]) == \
        "(contains(groups[*], 'a') || contains(groups[*], 'b/c')) && 'Admin' || 'Viewer'"


# --- one OAuth client per consumer, created by the program --------------------------------------------------
def test_each_consumer_has_its_own_client(production):
    apps = applications(production)
    by_uid = {app["uid"]: app for app in apps}
    consumers = {"grafana", "airflow", "jupyterhub", "mlflow", "kubeflow", "kubectl", "openbao"}
    assert set(by_uid) == {oauth_client_id("production", c) for c in consumers}
    secrets = [app["secret"] for app in apps]
    assert len(set(secrets)) == len(secrets) and all(len(s) == sso.SECRET_LENGTH for s in secrets)
    assert len({app["name"] for app in apps}) == len(apps)
    for consumer, secret_name in WEB_CONSUMERS.items():
        app = by_uid[oauth_client_id("production", consumer)]
        data = string_data(production.named(f"sso-{consumer}-client", SECRET))
        assert data["client-id"] == app["uid"] and data["client-secret"] == app["secret"]
        assert production.named(f"sso-{consumer}-client", SECRET).inputs["metadata"]["name"] == secret_name
        assert app["confidential"] is True and app["scopes"] == "openid profile email"
    kubectl = by_uid[oauth_client_id("production", "kubectl")]
    assert kubectl["confidential"] is False and kubectl["redirect_uris"] == list(sso.KUBECTL_REDIRECTS)
    assert by_uid[oauth_client_id("production", "grafana")]["redirect_uris"] == \
        ["https://grafana.ads.example.com/login/gitlab"]


def test_the_applications_job_runs_during_gitlabs_install_with_least_privilege(production):
    job = production.named(sso.NAME, JOB)
    assert production.named("gitlab", RELEASE).urn not in job.dependencies  # its script waits for the migrations
    pod = job.inputs["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == sso.NAME
    assert {"name": "applications", "secret": {"secretName": sso.APPS_SECRET, "defaultMode": 0o440}} in pod["volumes"]
    [role] = [r for r in production.of_type(ROLE) if r.name.startswith(sso.NAME)]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    # Read the one migrations Job, find and exec into the toolbox: nothing else.
    toolbox = toolbox_job.Toolbox("gitlab", "gitlab", env["MIGRATIONS_JOB"])
    assert role.inputs["rules"] == toolbox_job.gitlab_rules(toolbox)
    suffix = production.named("gitlab", RELEASE).inputs["values"]["global"]["job"]["nameSuffixOverride"]
    assert env["MIGRATIONS_JOB"] == f"gitlab-migrations-{suffix}"  # the release's current migrations Job
    assert set(env) == {"GITLAB_NAMESPACE", "MIGRATIONS_JOB", "MIGRATIONS_WAIT_SECONDS", "TOOLBOX_SELECTOR",
                        "TOOLBOX_CONTAINER", "WAIT_SECONDS", "HOME", "APPS_FILE", "RUBY_SCRIPT"}
    annotations = job.inputs["spec"]["template"]["metadata"]["annotations"]
    assert len(annotations["adplatform.io/applications-sha256"]) == 64  # a changed application re-runs the Job


def test_client_secrets_are_only_in_secrets(production):
    """No client or cookie secret in chart values, ConfigMaps, Jobs or anything but a Kubernetes Secret."""
    secrets = [app["secret"] for app in applications(production)]
    for resource in production.resources:
        if resource.type in (SECRET, "random:index/randomPassword:RandomPassword"):
            continue
        text = json.dumps(resource.inputs, default=lambda o: o.value if isinstance(o, Secret) else str(o))
        for secret in secrets:
            assert secret not in text, (resource.type, resource.name)


def test_the_ruby_program_holds_no_values():
    ruby = (toolbox_job.SCRIPTS / sso.RUBY_SCRIPT).read_text()
    code = "\n".join(line for line in ruby.splitlines() if not line.lstrip().startswith("#"))
    assert "${" not in code and "adplatform" not in code and "http" not in code
    assert "find_or_initialize_by(name: name, owner_id: nil)" in code  # found again on a re-run
    assert "unless app.secret_matches?(secret)" in code  # the hashed secret is only rewritten when it differs


@pytest.mark.parametrize("field, value", [("secret", "a'b"), ("secret", "x\ny"), ("uid", "a b"),
                                          ("redirect", "https://x/\"quoted")])
def test_application_values_are_checked_before_they_reach_the_script(field, value):
    client = sso.OAuthClient("grafana", "id", "s", ("https://grafana.example.com/login/gitlab",), True,
                             "https://gitlab.example.com", (), ())
    args = {"client_id": "id", "secret": "s3cret"}
    if field == "redirect":
        client = sso.OAuthClient("grafana", "id", "s", (value,), True, "https://gitlab.example.com", (), ())
    elif field == "uid":
        args["client_id"] = value
    else:
        args["secret"] = value
    with pytest.raises(ValueError, match="has characters outside"):
        sso.application(SimpleNamespace(stack="production"), client, args["client_id"], args["secret"])


# --- the bootstrap script: clean, on stdin only, idempotent --------------------------------------------------
def test_the_applications_script_passes_shellcheck():
    assert validators.shellcheck({"oauth-bootstrap": toolbox_job.shell_script(sso.SHELL_SCRIPT)}) == ""


FAKE_KUBECTL = r"""#!/bin/bash
echo "$*" >> "$STATE/calls"
case "$1" in
  get) printf 'gitlab-toolbox-abc' ;;
  exec)
    cat > "$STATE/stdin.rb"
    echo "Rails boot warning"; echo "OAUTH_APPLICATION adplatform production grafana: ${RESULT:-created}" ;;
esac
"""


def run_script(tmp_path: Path, apps: str) -> subprocess.CompletedProcess:
    (tmp_path / "apps.json").write_text(apps)
    (tmp_path / "create.rb").write_text("puts 'the program'\n")
    return run_toolbox_script(tmp_path, FAKE_KUBECTL, toolbox_job.shell_script(sso.SHELL_SCRIPT),
                              {"APPS_FILE": str(tmp_path / "apps.json"), "RUBY_SCRIPT": str(tmp_path / "create.rb")})


def test_the_applications_reach_ruby_on_stdin_only(tmp_path):
    secret = "S3cretValue0123456789abcdefABCDEF"
    apps = json.dumps([{"name": "adplatform production grafana", "uid": "adplatform-production-grafana",
                        "secret": secret}])
    result = run_script(tmp_path, apps)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "stdin.rb").read_text() == \
        f"apps_json = <<'ADPLATFORM_OAUTH_APPLICATIONS'\n{apps}\nADPLATFORM_OAUTH_APPLICATIONS\nputs 'the program'\n"
    calls = (tmp_path / "calls").read_text()
    assert secret not in calls and secret not in result.stdout + result.stderr
    assert "exec --stdin --namespace gitlab gitlab-toolbox-abc --container toolbox -- gitlab-rails runner -" in calls
    assert "OAUTH_APPLICATION adplatform production grafana: created" in result.stdout
    assert "Rails boot warning" not in result.stdout  # only the program's report lines are logged


def test_the_script_refuses_data_that_would_end_the_heredoc(tmp_path):
    result = run_script(tmp_path, '[{"a": 1}]\nADPLATFORM_OAUTH_APPLICATIONS\nsystem("id")\n')
    assert result.returncode != 0 and "heredoc terminator" in result.stderr
    assert not (tmp_path / "stdin.rb").exists()


# --- kubectl: the API server trusts GitLab only with SSO on; rights are the configured bindings --------------
def test_the_api_servers_trust_gitlab(production):
    args = [a for a in k3s_config(production, "control-plane-1")["kube-apiserver-arg"] if a.startswith("oidc-")]
    assert args == ["oidc-issuer-url=https://gitlab.ads.example.com",
                    "oidc-client-id=adplatform-production-kubectl",
                    "oidc-username-claim=preferred_username", f"oidc-username-prefix={OIDC_PREFIX}",
                    "oidc-groups-claim=groups_direct", f"oidc-groups-prefix={OIDC_PREFIX}"]


def test_without_gitlab_there_is_no_sso(staging):
    cfg = stack_config(staging)
    assert cfg.platform.gitlab.enabled is False and cfg.platform.sso.enabled is False
    assert ApiServerOidc.from_config(cfg, "staging") is None
    for node in ("control-plane-1",):
        assert not [a for a in k3s_config(staging, node)["kube-apiserver-arg"] if a.startswith("oidc-")]
    assert not [r for r in staging.resources if r.name.startswith(("sso-", sso.NAME))]
    ini = values(staging, "kube-prometheus-stack")["grafana"]["grafana.ini"]
    assert "auth.gitlab" not in ini


def test_agents_get_no_api_server_flags():
    oidc = ApiServerOidc("https://gitlab.example.com", "id")
    spec = SimpleNamespace(labels={}, taints=(), k3s_role="agent", workload_role="general", location=None,
                           region=None, zone=None)
    profile = SimpleNamespace(external_cloud_provider=False, k3s_disable=())
    cfg = node_config(spec, "n", SimpleNamespace(private_ip="10.0.0.2", public_ip="1.2.3.4"), token_key="token",
                      token="t", join_endpoint="10.0.0.1", tls_sans=[], pod_cidr="", service_cidr="",
                      profile=profile, oidc=oidc)
    assert "kube-apiserver-arg" not in cfg


def bindings_run() -> Run:
    """Production with `platform.sso.kubectl.bindings` (variants.KUBECTL_BINDINGS; the shared production variant)."""
    return variants.production_variant()


def test_kubectl_rights_are_exactly_the_configured_bindings(production):
    assert [t.name for t in stack_config(production).cluster_services.teams] == ["ads"]  # the binding's namespace
    assert not production.of_type(CLUSTER_ROLE_BINDING) or not [
        b for b in production.of_type(CLUSTER_ROLE_BINDING)
        if any(s["name"].startswith(OIDC_PREFIX) for s in b.inputs.get("subjects", []))]
    run = bindings_run()
    granted = []
    for kind in (ROLE_BINDING, CLUSTER_ROLE_BINDING):
        for binding in run.of_type(kind):
            for subject in binding.inputs.get("subjects", []):
                if subject["name"].startswith(OIDC_PREFIX):
                    assert subject["kind"] == "Group"
                    granted.append((subject["name"], binding.inputs["roleRef"]["name"],
                                    binding.inputs["metadata"].get("namespace")))
    assert sorted(granted) == [("gitlab:platform-admins", "cluster-admin", None),
                               ("gitlab:teams/ads", "edit", "ads")]


# --- config ----------------------------------------------------------------------------------------------
def test_sso_without_gitlab_is_refused():
    raw = base_raw(platform={"gitlab": {"enabled": False}, "sso": {"enabled": True}})
    assert "adplatform:platform.sso.enabled needs platform.gitlab.enabled" in "\n".join(config_problems(raw))


@pytest.mark.parametrize("sso, message", [
    ({"admins": ["bad group"]}, "must be a GitLab group path"),
    ({"users": {"gitlab": ["a"]}}, "must be one of tools grafana, airflow, jupyterhub, mlflow, kubeflow"),
    ({"kubectl": {"bindings": [{"group": "a", "clusterRole": "edit"}]}}, "needs a namespace"),
    ({"kubectl": {"bindings": [{"group": "a", "clusterRole": "system:masters", "namespace": "x"}]}},
     "must be one of ClusterRoles view, edit, admin, cluster-admin"),
])
def test_bad_sso_settings_are_named(sso, message):
    problems = "\n".join(config_problems(base_raw(platform={"sso": sso})))
    assert "adplatform:platform.sso" in problems and message in problems


def test_no_tool_is_open_to_every_gitlab_account():
    """With no group, oauth2-proxy and Grafana let every GitLab account in: such a config is refused, naming the
    keys, the tool and the value."""
    problems = config_problems(base_raw(platform={"sso": {"admins": []}}))
    for tool, component in (("grafana", "monitoring"), ("airflow", "airflow"), ("jupyterhub", "jupyterhub"),
                            ("mlflow", "mlflow"), ("kubeflow", "kubeflow")):
        assert any(p.startswith(f"adplatform:platform.sso.admins and platform.sso.users.{tool} name no GitLab group")
                   and f"platform.{component}.enabled: false" in p and p.endswith("got []") for p in problems), tool
    assert any("OpenBao's GitLab login" in p for p in problems)


def test_a_tool_with_its_own_users_needs_no_admins_but_openbao_does():
    users = {tool: ["data/analysts"] for tool in ("grafana", "airflow", "jupyterhub", "mlflow", "kubeflow")}
    [problem] = config_problems(base_raw(platform={"sso": {"admins": [], "users": users}}))
    assert problem.startswith("adplatform:platform.sso.admins must list at least one GitLab group path")


def test_a_disabled_tool_needs_no_group():
    users = {tool: ["data/analysts"] for tool in ("grafana", "airflow", "jupyterhub", "kubeflow")}
    problems = config_problems(base_raw(platform={"sso": {"admins": [], "users": users}, "mlflow": {"enabled": False}}))
    assert not any("mlflow" in p for p in problems)


def test_the_login_settings_refuse_an_empty_group_list():
    """The second line of defence: no renderer writes an empty group list (an open door) even if config let it."""
    client = sso.OAuthClient("mlflow", "id", "s", ("https://mlflow.example.com/oauth2/callback",), True,
                             "https://gitlab.example.com", (), ())
    ctx = SimpleNamespace(sso={"mlflow": client, "grafana": client, "jupyterhub": client, "airflow": client},
                          replicas=lambda n: n, url=lambda label: f"https://{label}.example.com")
    with pytest.raises(ValueError, match="no GitLab group is allowed in"):
        auth_proxy.values(ctx, "mlflow", "mlflow", "mlflow", "mlflow", 5000)
    with pytest.raises(ValueError, match="no GitLab group is allowed in"):
        monitoring.gitlab_login(ctx)
    with pytest.raises(ValueError, match="no GitLab group is allowed in"):
        airflow.gitlab_login(ctx)
    with pytest.raises(ValueError, match="no GitLab group is allowed in"):
        jupyterhub.gitlab_login(ctx)


def test_bindings_only_into_team_namespaces():
    raw = base_raw(platform={"sso": {"kubectl": {"bindings": [{"group": "a", "clusterRole": "edit",
                                                                "namespace": "kube-system"}]}}})
    [problem] = config_problems(raw)
    assert problem.startswith("adplatform:platform.sso.kubectl.bindings[0].namespace must be a team namespace")
    assert problem.endswith("got 'kube-system'")
