"""GitLab Runner (chart `gitlab-runner`, components/charts.py GITLAB_RUNNER) with the Kubernetes executor, installed
when `platform.gitlab.runner.enabled`; it registers with this stack's GitLab or `platform.gitlab.runner.url`.

What this module sets and why:

- The manager runs in namespace `gitlab-runner` (Pod Security `restricted`); CI jobs run in namespace `ci`
  (config/catalog.py CI_NAMESPACE) under Pod Security `baseline`, a ResourceQuota and container defaults from
  `platform.gitlab.runner`. The `ci` namespace carries its own layer label, so no data store admits job pods.
- Authentication: the runner authentication token (glrt-...) lives only in a Secret in the chart's
  `runners.secret` format; no registration token. With such a token the runner's tags and "run untagged jobs"
  are properties of the runner in GitLab, set where the token is created. On a stack running its own GitLab the
  runner bootstrap Job creates the runner and writes the token (runner_bootstrap.py); the stack secret
  `gitlabRunnerToken`, when set, is used instead. A stack registering with another stack's GitLab takes the
  token from that stack's secret output `runnerTokens` (`platform.gitlab.runner.registration.stack`, a
  StackReference; the other stack lists this environment in its `downstream`) or from `gitlabRunnerToken`.
- RBAC: the manager may create and manage job pods, their Secrets and Services in `ci` only (a Role there, the
  permissions the runner documents for its Kubernetes executor, docs/executors/kubernetes at v19.3.0).
- Deploy identity: ServiceAccount `deployer` in `ci`, bound in every team namespace to exactly what the
  templates' deploy script runs (templates/gitlab-ci/scripts/deploy.sh: kubectl get, set image, rollout status,
  annotate, all on the Deployment), and narrowed by the ValidatingAdmissionPolicy `deployer-image-only` to the
  image of the service container and the previous-image annotation (RBAC cannot limit a patch's fields). Jobs run
  as the namespace's default ServiceAccount (no rights) unless they ask for `deployer`
  (KUBERNETES_SERVICE_ACCOUNT_OVERWRITE, the only name `service_account_overwrite_allowed` accepts).
- Image builds: each job's build container runs under the AppArmor profile host tuning loads on every node
  (components/host/apparmor.d/adplatform-ci-build: containerd's default profile plus mounts), because Buildah
  mounts inside a user namespace of its own and containerd's default profile denies every mount.
- Scope: the runners the program creates are group runners of `platform.gitlab.runner.group`, so only that
  group's projects reach the `deployer` (runner_bootstrap.py).
- Runner tags: a glrt- token carries no tags; the runner is created in GitLab with the stack's environment as
  its tag (`production` / `staging`, config.catalog.ENVIRONMENTS), which the templates' deploy jobs name.
- Runners (config/platform.py GitLabRunner.specs, one release of the chart each, the chart's own structure: one
  manager, one token): the environment's deploy runner (release `gitlab-runner`: protected, its tag only) and,
  in the cluster that builds (staging), the build runner (release `gitlab-runner-build`: no tags, untagged jobs
  of any ref, merge requests' too). The build runner's jobs run as ServiceAccount `ci-build`, bound to nothing,
  token not mounted, and may not switch to the `deployer`: merge-request code gets no Kubernetes rights, and
  the deploy runners, which hand out the `deployer`, take nothing but protected refs' deploy jobs.
- One manager replica: a second one would double `concurrent` (each manager keeps its own limit) and the jobs
  a lost manager was running die with it either way; the Deployment is rescheduled within minutes.
- Metrics: the chart's PodMonitor on the manager's metrics port.
"""

from __future__ import annotations

import json
from typing import Any, Sequence
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s

from components import charts
from components.helm import release
from components.host.profiles import CI_BUILD_APPARMOR_PROFILE
from components.platform import gitlab, runner_bootstrap
from components.platform.context import Installed, PlatformContext
from components.services.namespaces import (NO_OWN_ENTRY_POINTS, RESTRICTED_CONTAINER_SECURITY, RESTRICTED_POD_SECURITY,
                                           Namespaces, NamespaceSpec)
from config.catalog import CI_NAMESPACE, DEPLOYER_SERVICE_ACCOUNT, SERVICE_CONTAINER
from config.platform import RunnerSpec

NAMESPACE = charts.GITLAB_RUNNER.namespace
RELEASE = "gitlab-runner"  # contains the chart name: the Deployment, ServiceAccount and Role are gitlab-runner
CI_LAYER = "ci"  # neither namespace is a data-store client (LAYER_LABEL "platform" would admit them)
TOKEN_SECRET = "gitlab-runner-token"
# The build runner's job pods' ServiceAccount in `ci`: no RoleBinding anywhere, no token mounted.
BUILD_SERVICE_ACCOUNT = "ci-build"
METRICS_PORT = 9252  # the chart's metrics.port
# The manager reads its token only when it starts, and the Secret is not the chart's (no checksum rolls the pod).
# When the runners moved from instance to group runners the bootstrap replaced the token: this annotation (the
# chart's podAnnotations) changes with the runners' scope, so the manager restarts, after the token was written,
# in the same `pulumi up`.
RUNNER_SCOPE_ANNOTATION = "adplatform.io/runner-scope"
HTTP, HTTPS = 80, 443
RUNNER_UID, RUNNER_GID = 100, 65533  # the alpine image's gitlab-runner user (chart podSecurityContext)
MANAGER_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
# Per job pod: the build container, the helper (clone, artifacts, cache) and each `services:` container.
# A job may raise its own up to the *_overwrite_max_allowed values (KUBERNETES_CPU_REQUEST, ...).
JOB_DEFAULTS = {
    "cpu_request": "500m", "memory_request": "1Gi", "memory_limit": "4Gi",
    "helper_cpu_request": "100m", "helper_memory_request": "128Mi", "helper_memory_limit": "512Mi",
    "service_cpu_request": "100m", "service_memory_request": "256Mi", "service_memory_limit": "2Gi",
    "cpu_request_overwrite_max_allowed": "4", "memory_request_overwrite_max_allowed": "8Gi",
    "memory_limit_overwrite_max_allowed": "16Gi",
}
# Buildah (templates/gitlab-ci/scripts/build-image.sh) runs as root without CAP_SYS_ADMIN, so it mounts inside a
# user namespace of its own, which containerd's default AppArmor profile denies (`deny mount,`). Build containers
# run under the Localhost profile host tuning loads on every node instead (components/host/apparmor.d). Their
# seccomp profile stays unset: K3s runs no default seccomp profile (no kubelet --seccomp-default), and
# RuntimeDefault would refuse the unshare(CLONE_NEWUSER) Buildah needs without CAP_SYS_ADMIN; baseline forbids
# naming Unconfined explicitly.
BUILD_APPARMOR_PROFILE = {"type": "Localhost", "localhost_profile": CI_BUILD_APPARMOR_PROFILE}
# Containers in `ci` that declare nothing (the quota admits only pods with requests and memory limits).
CI_LIMIT_RANGE = {"limits": [{"type": "Container", "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                              "default": {"memory": "1Gi"},
                              "max": {"memory": JOB_DEFAULTS["memory_limit_overwrite_max_allowed"]}}]}
# What the Kubernetes executor needs in the job namespace (docs/executors/kubernetes/_index.md, "Configure runner
# API permissions", v19.3.0), without the optional autoscaler, namespace-per-job and PodDisruptionBudget parts.
MANAGER_RULES = [
    {"apiGroups": [""], "resources": ["events"], "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "delete", "get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods/attach", "pods/exec"], "verbs": ["create", "delete", "get", "patch"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get", "list"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "delete", "get", "update"]},
    {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["create", "get"]},
]
# What templates/gitlab-ci/scripts/deploy.sh runs, on the Deployment only: `kubectl get` (get), `kubectl set image`
# and `kubectl annotate` (get, patch), `kubectl rollout status` (get, then list + watch by name: it reads the
# Deployment's status, no ReplicaSet or pod). The script never runs `rollout undo`, which would need ReplicaSets.
DEPLOYER_RULES = [
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch", "patch"]},
]
# RBAC cannot narrow `patch` to one field, and a patched pod template (serviceAccountName, volumes of the
# namespace's Secrets, command) would run anything as any ServiceAccount of the namespace. This admission policy
# lets the deployer change exactly what deploy.sh changes: the image of the service container and the
# previous-image annotation. Everything else must equal the stored object: at each level below, every key but the
# ones named (which the next level or the API server's own bookkeeping covers) is compared whole, so a field
# Kubernetes adds later is covered too. object/oldObject are dynamic maps in admission CEL (apiserver
# admission/plugin/cel compile.go declares them DynType), so `all` iterates their keys.
DEPLOYER_POLICY = "deployer-image-only"
DEPLOYER_USER = f"system:serviceaccount:{CI_NAMESPACE}:{DEPLOYER_SERVICE_ACCOUNT}"
PREVIOUS_IMAGE_ANNOTATION = "adplatform.io/previous-image"  # templates/gitlab-ci/scripts/deploy.sh
# What the API server itself changes on every update before validating admission runs.
SERVER_METADATA = ("managedFields", "resourceVersion", "generation")
# (path, the keys not compared at that level)
DEPLOYER_UNCHANGED = (
    ("metadata", ("annotations", *SERVER_METADATA)),
    ("spec", ("template",)),  # replicas, selector, strategy, paused, ...
    ("spec.template", ("spec",)),  # the pod template's labels and annotations
    ("spec.template.spec", ("containers",)),  # serviceAccountName, volumes, initContainers, securityContext, host*,
                                              # nodeSelector, affinity, tolerations, ephemeralContainers, ...
)


def gitlab_url(ctx: PlatformContext) -> str:
    return ctx.settings.gitlab.runner.url or ctx.url("gitlab")


def namespaces(ctx: PlatformContext) -> list[NamespaceSpec]:
    gitlab_port = urlsplit(gitlab_url(ctx)).port or HTTPS
    return [
        NamespaceSpec(
            name=NAMESPACE, pss="restricted", layer=CI_LAYER,
            why="the runner manager runs as the image's non-root user, without capabilities, RuntimeDefault seccomp",
            egress_world=(gitlab_port,),  # GitLab's public URL (this stack's gateway or another stack's GitLab)
            ingress_from=(ctx.monitoring((METRICS_PORT,)),)),
        NamespaceSpec(
            name=CI_NAMESPACE, pss="baseline", layer=CI_LAYER,
            why="CI jobs build images with buildah as root inside an unprivileged container (default capabilities, "
                "no privileged mode, no host access, the node's Localhost AppArmor profile adplatform-ci-build); "
                "`restricted` would forbid running as root",
            egress_world=tuple(sorted({HTTP, HTTPS, gitlab_port}))),  # clones, registries, package mirrors
    ]


# --- values ------------------------------------------------------------------------------------------------
def job_identity(spec: RunnerSpec) -> dict[str, Any]:
    """Who a runner's job pods are in Kubernetes. Build runner: ServiceAccount `ci-build` (no Role, no token
    mounted, runner common/config.go KubernetesConfig.ServiceAccount / AutomountServiceAccountToken) and no
    service_account_overwrite_allowed, so no job can ask for the `deployer` (the runner ignores
    KUBERNETES_SERVICE_ACCOUNT_OVERWRITE while that pattern is empty). Deploy runners: the namespace's default
    ServiceAccount unless a job asks for `deployer`."""
    if spec.builds:
        return {"service_account": BUILD_SERVICE_ACCOUNT, "automount_service_account_token": False}
    return {"service_account_overwrite_allowed": f"^{DEPLOYER_SERVICE_ACCOUNT}$"}


def runner_config(spec: RunnerSpec) -> str:
    """The [[runners]] template of config.toml (the chart renders it with `tpl`: no braces here)."""
    settings = {
        "namespace": CI_NAMESPACE,
        "image": charts.RUNNER_DEFAULT_JOB_IMAGE,
        "privileged": False,
        "poll_timeout": 600,  # large build images take minutes to pull
        **JOB_DEFAULTS,
        **job_identity(spec),
    }
    lines = ["[[runners]]", "  [runners.kubernetes]"]
    lines += [f"    {key} = {_toml(value)}" for key, value in settings.items()]
    # The job's own container (not the helper or services): the AppArmor profile host tuning loads on every node
    # (runner v19.2 common/config.go KubernetesContainerSecurityContext.AppArmorProfile -> the pod's
    # securityContext.appArmorProfile field, GA since Kubernetes 1.30; Pod Security baseline admits Localhost).
    lines += ["    [runners.kubernetes.build_container_security_context.app_armor_profile]"]
    lines += [f"      {key} = {_toml(value)}" for key, value in BUILD_APPARMOR_PROFILE.items()]
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def release_name(spec: RunnerSpec) -> str:
    """`gitlab-runner` (the deploy runner, as before) and `gitlab-runner-build`: both start with the chart's name,
    so the chart names their objects after the release (templates/_helpers.tpl gitlab-runner.fullname)."""
    return f"{RELEASE}-build" if spec.builds else RELEASE


def values(ctx: PlatformContext, spec: RunnerSpec) -> dict[str, Any]:
    return {
        "gitlabUrl": gitlab_url(ctx),
        "concurrent": ctx.settings.gitlab.runner.concurrent,
        "replicas": 1,  # see the module docstring
        "unregisterRunners": True,  # with a glrt- token this removes only this manager's entry in GitLab
        "rbac": {"create": True, "clusterWideAccess": False, "rules": MANAGER_RULES},
        "serviceAccount": {"create": True},
        "runners": {"jobNamespace": CI_NAMESPACE, "secret": runner_bootstrap.own_secret(TOKEN_SECRET, spec),
                    "config": runner_config(spec)},
        "metrics": {"enabled": True, "port": METRICS_PORT, "podMonitor": {"enabled": True}},
        "resources": MANAGER_RESOURCES,
        "podAnnotations": {RUNNER_SCOPE_ANNOTATION: f"group {ctx.settings.gitlab.runner.group}"},
        "podSecurityContext": {**RESTRICTED_POD_SECURITY, "runAsUser": RUNNER_UID, "fsGroup": RUNNER_GID},
        "securityContext": {**RESTRICTED_CONTAINER_SECURITY, "privileged": False, "readOnlyRootFilesystem": False},
    }


def quota(ctx: PlatformContext) -> dict[str, Any]:
    runner = ctx.settings.gitlab.runner
    return {"hard": {"requests.cpu": runner.requests_cpu, "requests.memory": runner.requests_memory,
                     "limits.memory": runner.limits_memory, **NO_OWN_ENTRY_POINTS}}


# --- objects -----------------------------------------------------------------------------------------------
def job_namespace_limits(ctx: PlatformContext, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    opts = ctx.opts(after)
    return [
        k8s.core.v1.ResourceQuota("ci-quota", metadata=k8s.meta.v1.ObjectMetaArgs(
            name="ci-quota", namespace=CI_NAMESPACE, labels=ctx.labels("gitlab-runner", "quota")),
            spec=quota(ctx), opts=opts),
        k8s.core.v1.LimitRange("ci-limits", metadata=k8s.meta.v1.ObjectMetaArgs(
            name="container-defaults", namespace=CI_NAMESPACE, labels=ctx.labels("gitlab-runner", "quota")),
            spec=CI_LIMIT_RANGE, opts=opts),
    ]


def _same_except(new: str, old: str, allowed: Sequence[str]) -> str:
    """CEL: the maps `new` and `old` hold the same keys with equal values, the keys in `allowed` aside."""
    keys = json.dumps(list(allowed))
    return f"{new}.all(k, k in {keys} || (k in {old} && {new}[k] == {old}[k])) && {old}.all(k, k in {keys} || k in {new})"


# VAP variables (`variables.<name>`): the annotations (absent on a Deployment without any) and the containers.
DEPLOYER_VARIABLES = {
    "newAnnotations": "has(object.metadata.annotations) ? object.metadata.annotations : {}",
    "oldAnnotations": "has(oldObject.metadata.annotations) ? oldObject.metadata.annotations : {}",
    "newContainers": "object.spec.template.spec.containers",
    "oldContainers": "oldObject.spec.template.spec.containers",
}


def deployer_validations() -> list[dict[str, str]]:
    """What an update by the deployer must keep (see DEPLOYER_POLICY)."""
    checks = [{"expression": _same_except(f"object.{path}", f"oldObject.{path}", allowed),
               "message": f"the deployer may not change {path} (only the image of container {SERVICE_CONTAINER})"}
              for path, allowed in DEPLOYER_UNCHANGED]
    checks.append({"expression": _same_except("variables.newAnnotations", "variables.oldAnnotations",
                                              [PREVIOUS_IMAGE_ANNOTATION]),
                   "message": f"the deployer may change no annotation but {PREVIOUS_IMAGE_ANNOTATION}"})
    # Container names are unique in a pod: same count, every old name kept, each container unchanged but the
    # service container's image.
    new, old, service = "variables.newContainers", "variables.oldContainers", json.dumps(SERVICE_CONTAINER)
    checks.append({"expression": (
        f"{new}.size() == {old}.size() && {old}.all(o, {new}.exists(c, c.name == o.name)) && "
        f"{new}.all(c, c.name == {service} ? {old}.exists(o, o.name == c.name && {_same_except('c', 'o', ['image'])})"
        f" : c in {old})"),
        "message": f"the deployer may change only the image of container {SERVICE_CONTAINER}"})
    return checks


def deployer_policy_spec() -> dict[str, Any]:
    """Updates of Deployments by the deployer (no other user's); it may not create or delete any (RBAC)."""
    return {"failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["*"],
                                                    "operations": ["UPDATE"], "resources": ["deployments"]}]},
            "matchConditions": [{"name": "deployer", "expression": f"request.userInfo.username == '{DEPLOYER_USER}'"}],
            "variables": [{"name": name, "expression": expression} for name, expression in DEPLOYER_VARIABLES.items()],
            "validations": deployer_validations()}


def deployer_policy(ctx: PlatformContext, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    return ctx.admission_policy("deployer-policy", DEPLOYER_POLICY, deployer_policy_spec(),
                                ctx.labels("gitlab-runner", "deployer"), after)


def deployer(ctx: PlatformContext, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    """The deploy jobs' ServiceAccount and its rights in each team namespace (and nowhere else), which its
    admission policy narrows to the service container's image. The ServiceAccount waits for the policy: no
    deploy job can use it before the policy holds."""
    labels = ctx.labels("gitlab-runner", "deployer")
    policy = deployer_policy(ctx, after)
    account = k8s.core.v1.ServiceAccount(
        "ci-deployer", metadata=k8s.meta.v1.ObjectMetaArgs(name=DEPLOYER_SERVICE_ACCOUNT, namespace=CI_NAMESPACE,
                                                           labels=labels),
        opts=ctx.opts([*after, *policy]))
    objects: list[pulumi.Resource] = [*policy, account]
    for team in ctx.teams:
        role = k8s.rbac.v1.Role(
            f"deployer-{team}", metadata=k8s.meta.v1.ObjectMetaArgs(name=DEPLOYER_SERVICE_ACCOUNT, namespace=team,
                                                                    labels=labels),
            rules=DEPLOYER_RULES, opts=ctx.opts(after))
        binding = k8s.rbac.v1.RoleBinding(
            f"deployer-{team}-binding",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=DEPLOYER_SERVICE_ACCOUNT, namespace=team, labels=labels),
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="Role",
                                             name=DEPLOYER_SERVICE_ACCOUNT),
            subjects=[k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=DEPLOYER_SERVICE_ACCOUNT,
                                              namespace=CI_NAMESPACE)],
            opts=ctx.opts([*after, role, account]))
        objects += [role, binding]
    return objects


def bootstraps(ctx: PlatformContext) -> bool:
    """The program creates the runner in this stack's own GitLab, unless the stack sets gitlabRunnerToken or
    takes the token from another stack (config/rules.py refuses registration with an own GitLab)."""
    return ctx.secrets.gitlab_runner_token is None and ctx.settings.gitlab.runner.registration is None


def own_runners(ctx: PlatformContext) -> list[RunnerSpec]:
    """The runners this stack runs: its environment's deploy runner and, where that environment builds, its build
    runner. A token set by hand (gitlabRunnerToken) is one runner's, configured in GitLab's UI: that one only."""
    specs = ctx.settings.gitlab.runner.specs(ctx.environment, ctx.environment)
    return specs[:1] if ctx.secrets.gitlab_runner_token is not None else specs


def registered_tokens(ctx: PlatformContext) -> dict[str, pulumi.Output[str]]:
    """This environment's tokens from the stack in platform.gitlab.runner.registration (its `runnerTokens`), by
    runner key (`staging`, `staging-build`)."""
    registration = ctx.settings.gitlab.runner.registration
    if registration is None:
        return {}
    reference = pulumi.StackReference("runner-registration", stack_name=registration.stack,
                                      opts=pulumi.ResourceOptions(parent=ctx.parent))

    def pick(tokens: dict[str, str] | None, key: str) -> str:
        if not tokens or key not in tokens:
            raise ValueError(f"adplatform:platform.gitlab.runner.registration.stack: stack {registration.stack!r} "
                             f"exports no runnerTokens[{key!r}]; set platform.gitlab.runner.downstream: "
                             f"[{ctx.environment}] on that stack and run pulumi up there first")
        return tokens[key]
    exported = reference.get_output("runnerTokens")
    return {spec.key: pulumi.Output.secret(exported.apply(lambda tokens, key=spec.key: pick(tokens, key)))
            for spec in own_runners(ctx)}


def token_secret(ctx: PlatformContext, spec: RunnerSpec, registered: dict[str, pulumi.Output[str]],
                 after: Sequence[pulumi.Resource]) -> k8s.core.v1.Secret:
    # The chart mounts both keys (templates/deployment.yaml); the registration token is deprecated, left empty.
    # With the bootstrap, `runner-token` is the Job's to write (runner_bootstrap.py), not Pulumi's.
    token = ctx.secrets.gitlab_runner_token or registered.get(spec.key)
    values = {"runner-registration-token": "", **({"runner-token": token} if token is not None else {})}
    name = runner_bootstrap.own_secret(TOKEN_SECRET, spec)
    _, secret = ctx.credentials(name, name, NAMESPACE, values, after, labels=ctx.labels("gitlab-runner", "token"))
    return secret


def downstream_secrets(ctx: PlatformContext, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    """The Secrets the bootstrap Job writes the downstream runners' tokens into (Pulumi creates them, the Job
    may only patch them; no key is Pulumi's, so the Job's `runner-token` survives a refresh)."""
    return [ctx.credentials(f"{name}-secret", name, NAMESPACE, {}, after, labels=ctx.labels("gitlab-runner", "token"))[1]
            for spec, _, name in runner_bootstrap.runners(ctx, TOKEN_SECRET) if spec.environment != ctx.environment]


def build_identity(ctx: PlatformContext, after: Sequence[pulumi.Resource]) -> k8s.core.v1.ServiceAccount:
    """The build runner's job pods' ServiceAccount: bound to nothing, its token never mounted."""
    return k8s.core.v1.ServiceAccount(
        "ci-build", metadata=k8s.meta.v1.ObjectMetaArgs(name=BUILD_SERVICE_ACCOUNT, namespace=CI_NAMESPACE,
                                                        labels=ctx.labels("gitlab-runner", "build")),
        automount_service_account_token=False, opts=ctx.opts(after))


def install(ctx: PlatformContext, spaces: Namespaces, after: Sequence[pulumi.Resource]) -> Installed:
    base = [*after, spaces[NAMESPACE], spaces[CI_NAMESPACE]]
    runners = own_runners(ctx)
    # The token Secrets are plain objects the bootstrap Job fills later: they need the namespace, not GitLab, so they
    # are created while GitLab installs (issue 22).
    registered = registered_tokens(ctx)
    token: list[pulumi.Resource] = [token_secret(ctx, spec, registered, [spaces[NAMESPACE]]) for spec in runners]
    outputs = {}
    if bootstraps(ctx):
        token += downstream_secrets(ctx, [spaces[NAMESPACE]])
        # Not after GitLab's release: the Job waits for its migrations itself and runs while webservice starts.
        job = runner_bootstrap.install(ctx, NAMESPACE, gitlab.toolbox(ctx), TOKEN_SECRET,
                                       [*base, *token], [spaces[NAMESPACE], spaces[gitlab.NAMESPACE]])
        token.append(job)
        if ctx.settings.gitlab.runner.downstream:
            outputs["runnerTokens"] = runner_bootstrap.downstream_tokens(ctx, NAMESPACE, TOKEN_SECRET, job)
    limits = job_namespace_limits(ctx, base)
    deploy = deployer(ctx, base)
    identity = [build_identity(ctx, base)] if any(spec.builds for spec in runners) else []
    releases = [release(release_name(spec), charts.GITLAB_RUNNER, values(ctx, spec),
                        ctx.opts([*base, *ctx.gitlab_serving, *token, *limits, *identity]), namespace=NAMESPACE,
                        create_namespace=False)
                for spec in runners]
    return Installed(ready=[*token, *limits, *deploy, *identity, *releases], outputs=outputs)


__all__ = ["install", "namespaces"]
