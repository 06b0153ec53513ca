"""The runner bootstrap: a Job that creates this stack's instance runner in its own GitLab and puts the runner's
authentication token (glrt-...) into the Secret the runner chart reads, so one `pulumi up` brings up GitLab and a
registered runner with no token copied by hand. Used when the stack runs GitLab and the runner registers with it
and no `gitlabRunnerToken` is set (that secret overrides the bootstrap: config/rules.py, gitlab_runner.py).

What this module sets and why:

- How: the Job (image charts.GITLAB_KUBECTL_IMAGE, the GitLab chart's own hook image) execs into GitLab's toolbox
  pod and runs scripts/create-runner.rb with `gitlab-rails runner -`, the script on stdin from a mounted
  ConfigMap (scripts/runner-bootstrap.sh). No bootstrap credential is created: the toolbox already holds
  GitLab's database access, and the runner is created as the first administrator by the same service the UI uses.
- Idempotent: the Ruby script finds the runner by its description (one per stack) and prints the same token;
  the shell script patches the Secret only when it holds another value. A changed script replaces the Job
  (its pod template carries the scripts' hash), so it runs again.
- Least privilege (ServiceAccount `runner-bootstrap` in the runner's namespace): in namespace `gitlab`, `get` and
  `list` pods (to find the toolbox pod: its name is generated) and `create` on pods/exec (what an exec needs,
  also over WebSocket since Kubernetes 1.35); in its own namespace `get` and `patch` on the one Secret, by
  resourceNames. Pulumi creates that Secret (RBAC cannot limit `create` to a name), with the deprecated
  registration-token key only; the Job owns `runner-token` (server-side apply: Pulumi changes only the fields it
  set, so a refresh leaves the token in place).
- Secrets: the token goes from the exec's stdout through a variable into kubectl's stdin: never a command line,
  an environment variable or a log line. Nothing secret is in the Job or the ConfigMap.
- Order: GitLab's release -> this Job (Pulumi waits for its completion, pulumi-kubernetes batch/v1 Job await)
  -> the runner's release, whose pods mount the token.
- Downstream environments (`platform.gitlab.runner.downstream`, e.g. staging, which runs no GitLab): the Job
  also creates one instance runner per environment (tagged with it, described `adplatform <stack> (<env>)`) and
  writes its token into Secret `gitlab-runner-token-<env>`; the program reads that Secret back once the Job has
  completed and exports the tokens as the secret stack output `runnerTokens` ({env: token}), which the
  downstream stack reads through a StackReference (`platform.gitlab.runner.registration.stack`).
- Network: the Job talks to the Kubernetes API only (exec goes through the API server), which every namespace
  reaches (components/services/namespaces.py allow-kubernetes-api).
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from string import Template
from typing import Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import charts
from components.platform.context import PlatformContext
from components.services.namespaces import RESTRICTED_CONTAINER_SECURITY, RESTRICTED_POD_SECURITY

SCRIPTS = Path(__file__).parent / "scripts"
SHELL_SCRIPT = "runner-bootstrap.sh"
RUBY_SCRIPT = "create-runner.rb"
NAME = "runner-bootstrap"  # ServiceAccount, Roles, RoleBindings, ConfigMap
MOUNT = "/bootstrap"
# GitLab chart 10.2.3: the toolbox Deployment's pod labels (app=toolbox, release=<release>) and container name.
TOOLBOX_CONTAINER = "toolbox"
WAIT_SECONDS = 900  # for a toolbox pod to run (an upgrade of GitLab may be rolling it)
TIMEOUT = "30m"  # Pulumi's wait for the Job: the toolbox wait plus a Rails boot (a minute or two)
JOB_UID = 65534  # the GitLab chart runs its kubectl hooks as nobody (global.kubectl.securityContext)
JOB_RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
_LITERAL = re.compile(r"^[A-Za-z0-9 ._()/:-]+$")


def gitlab_rules() -> list[dict]:
    """In GitLab's namespace: find the toolbox pod, exec into it. Nothing else."""
    return [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
            {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}]


def secret_rules(secrets: Sequence[str]) -> list[dict]:
    """In the runner's namespace: read and patch the Secrets the tokens go to, nothing else."""
    return [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": list(secrets), "verbs": ["get", "patch"]}]


def description(ctx: PlatformContext, environment: str) -> str:
    """How the script finds a runner again (one per stack and environment in a GitLab)."""
    return f"adplatform {ctx.stack} ({environment})"


def downstream_secret(secret: str, environment: str) -> str:
    return f"{secret}-{environment}"


def runners(ctx: PlatformContext, secret: str) -> list[tuple[str, str, str]]:
    """(environment, Ruby script file, Secret) per runner: this stack's own first, then each downstream one."""
    own = [(ctx.environment, RUBY_SCRIPT, secret)]
    return own + [(env, f"create-runner-{env}.rb", downstream_secret(secret, env))
                  for env in ctx.settings.gitlab.runner.downstream]


def ruby_literal(value: str | bool) -> str:
    """A Ruby literal of a checked value: single-quoted (no interpolation) and of harmless characters only."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if not _LITERAL.match(value):
        raise ValueError(f"runner bootstrap: {value!r} has characters outside [A-Za-z0-9 ._()/:-]")
    return f"'{value}'"


def ruby_script(ctx: PlatformContext, environment: str | None = None) -> str:
    """The Ruby script for the runner tagged `environment` (default: this stack's). A downstream runner takes
    this stack's runUntagged and protected settings: the downstream stack's own are not visible here."""
    runner = ctx.settings.gitlab.runner
    environment = environment or ctx.environment
    return Template((SCRIPTS / RUBY_SCRIPT).read_text()).substitute(
        description=ruby_literal(description(ctx, environment)), tag=ruby_literal(environment),
        run_untagged=ruby_literal(runner.run_untagged),
        access_level=ruby_literal("ref_protected" if runner.protected else "not_protected"))


def shell_script() -> str:
    return (SCRIPTS / SHELL_SCRIPT).read_text()


def _rbac(ctx: PlatformContext, namespace: str, gitlab_namespace: str, secrets: Sequence[str],
          after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    labels = ctx.labels("gitlab-runner", NAME)
    account = k8s.core.v1.ServiceAccount(
        NAME, metadata=k8s.meta.v1.ObjectMetaArgs(name=NAME, namespace=namespace, labels=labels),
        opts=ctx.opts(after))
    objects: list[pulumi.Resource] = [account]
    for where, rules in ((gitlab_namespace, gitlab_rules()), (namespace, secret_rules(secrets))):
        role = k8s.rbac.v1.Role(
            f"{NAME}-{where}", metadata=k8s.meta.v1.ObjectMetaArgs(name=NAME, namespace=where, labels=labels),
            rules=rules, opts=ctx.opts(after))
        binding = k8s.rbac.v1.RoleBinding(
            f"{NAME}-{where}-binding", metadata=k8s.meta.v1.ObjectMetaArgs(name=NAME, namespace=where, labels=labels),
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="Role", name=NAME),
            subjects=[k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=NAME, namespace=namespace)],
            opts=ctx.opts([*after, role, account]))
        objects += [role, binding]
    return objects


def job_spec(ctx: PlatformContext, namespace: str, gitlab_namespace: str, gitlab_release: str,
             secret: str, scripts: dict[str, str]) -> dict:
    pairs = " ".join(f"{MOUNT}/{script}={name}" for _, script, name in runners(ctx, secret))
    digest = hashlib.sha256("\n".join(scripts[k] for k in sorted(scripts)).encode()).hexdigest()
    env = {"GITLAB_NAMESPACE": gitlab_namespace, "TOOLBOX_SELECTOR": f"app=toolbox,release={gitlab_release}",
           "TOOLBOX_CONTAINER": TOOLBOX_CONTAINER, "RUNNER_NAMESPACE": namespace, "RUNNERS": pairs,
           "WAIT_SECONDS": str(WAIT_SECONDS),
           "HOME": "/tmp"}  # kubectl's cache, on the writable scratch volume
    return {
        "backoffLimit": 2,
        "template": {
            "metadata": {"labels": ctx.labels("gitlab-runner", NAME),
                         "annotations": {"adplatform.io/scripts-sha256": digest}},
            "spec": {
                "serviceAccountName": NAME,
                "restartPolicy": "Never",
                "securityContext": {**RESTRICTED_POD_SECURITY, "runAsUser": JOB_UID, "runAsGroup": JOB_UID},
                "containers": [{
                    "name": NAME, "image": charts.GITLAB_KUBECTL_IMAGE,
                    "command": ["/bin/bash", f"{MOUNT}/{SHELL_SCRIPT}"],
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                    "resources": JOB_RESOURCES,
                    "securityContext": {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": True},
                    "volumeMounts": [{"name": "scripts", "mountPath": MOUNT, "readOnly": True},
                                     {"name": "tmp", "mountPath": "/tmp"}],
                }],
                "volumes": [{"name": "scripts", "configMap": {"name": NAME}},
                            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
            },
        },
    }


def install(ctx: PlatformContext, namespace: str, gitlab_namespace: str, gitlab_release: str, secret: str,
            after: Sequence[pulumi.Resource]) -> k8s.batch.v1.Job:
    """The Job, once GitLab (in `after`) and the runner's Secret (also in `after`) exist; done when it completed."""
    scripts = {SHELL_SCRIPT: shell_script(), **{script: ruby_script(ctx, env) for env, script, _ in runners(ctx, secret)}}
    rbac = _rbac(ctx, namespace, gitlab_namespace, [name for _, _, name in runners(ctx, secret)], after)
    config = k8s.core.v1.ConfigMap(
        NAME, metadata=k8s.meta.v1.ObjectMetaArgs(name=NAME, namespace=namespace,
                                                  labels=ctx.labels("gitlab-runner", NAME)),
        data=scripts, opts=ctx.opts(after))
    # No metadata.name: Pulumi names it, so a changed spec (the scripts' hash) replaces the Job, which re-runs.
    return k8s.batch.v1.Job(
        NAME, metadata=k8s.meta.v1.ObjectMetaArgs(namespace=namespace, labels=ctx.labels("gitlab-runner", NAME)),
        spec=job_spec(ctx, namespace, gitlab_namespace, gitlab_release, secret, scripts),
        opts=ctx.opts([*after, *rbac, config], custom_timeouts=pulumi.CustomTimeouts(create=TIMEOUT,
                                                                                     update=TIMEOUT)))


def downstream_tokens(ctx: PlatformContext, namespace: str, secret: str,
                      job: k8s.batch.v1.Job) -> dict[str, pulumi.Output[str]]:
    """Each downstream runner's token, read back from the Secret the Job wrote (after the Job completed)."""
    tokens = {}
    for env in ctx.settings.gitlab.runner.downstream:
        name = downstream_secret(secret, env)
        written = k8s.core.v1.Secret.get(f"{name}-written", f"{namespace}/{name}", opts=ctx.opts([job]))
        tokens[env] = pulumi.Output.secret(written.data.apply(lambda data, name=name: _token(data, name)))
    return tokens


def _token(data: dict[str, str] | None, name: str) -> str:
    if not data or "runner-token" not in data:
        raise ValueError(f"runner bootstrap: Secret {name} holds no runner-token after the Job completed")
    return base64.b64decode(data["runner-token"]).decode()


__all__ = ["install", "downstream_tokens"]
