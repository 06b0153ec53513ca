"""The runner bootstrap: a Job that creates this stack's runners in its own GitLab, as a runner of the group
`platform.gitlab.runner.group` (only that group's projects can use it, and with it the `deployer`), and puts the runner's
authentication token (glrt-...) into the Secret the runner chart reads, so one `pulumi up` brings up GitLab and a
registered runner with no token copied by hand. Used when the stack runs GitLab and the runner registers with it
and no `gitlabRunnerToken` is set (that secret overrides the bootstrap: config/rules.py, gitlab_runner.py).

What this module sets and why:

- How: a toolbox Job (toolbox_job.py: GitLab's toolbox pod, `gitlab-rails runner -`, the script on stdin) runs
  scripts/create-runner.rb through scripts/runner-bootstrap.sh. The runner is created as the first administrator
  by the same service the UI and `POST /api/v4/user/runners` (runner_type=group_type) use; the administrator, in
  admin mode, has Owner rights on the group (GroupPolicy :create_runners), and creates the group when missing.
- Existing stacks: a runner of the same description outside the group (the instance runner earlier versions
  created) is deleted and a group runner created; the new token reaches the Secret, and the manager restarts on
  it (gitlab_runner.py pod annotation RUNNER_SCOPE_ANNOTATION). Nothing is done by hand.
- Idempotent: the Ruby script finds the runner by its description (one per stack) and prints the same token;
  the shell script patches the Secret only when it holds another value. A changed script replaces the Job
  (its pod template carries the scripts' hash), so it runs again.
- Least privilege (ServiceAccount `runner-bootstrap` in the runner's namespace): in namespace `gitlab`, `get` on the
  current migrations Job (by name), `get` and `list` pods (to find the toolbox pod: its name is generated) and
  `create` on pods/exec (what an exec needs, also over WebSocket since Kubernetes 1.35); in its own namespace `get`
  and `patch` on the one Secret, by resourceNames. Pulumi creates that Secret (RBAC cannot limit `create` to a
  name), with the deprecated registration-token key only; the Job owns `runner-token` (server-side apply: Pulumi
  changes only the fields it set, so a refresh leaves the token in place).
- Secrets: the token goes from the exec's stdout through a variable into kubectl's stdin: never a command line,
  an environment variable or a log line. Nothing secret is in the Job or the ConfigMap.
- Order: this Job starts while GitLab's release installs and waits for GitLab's migrations Job itself
  (toolbox_job.py), so its Rails boot overlaps webservice's; Pulumi waits for its completion (pulumi-kubernetes
  batch/v1 Job await); then the runner's release (after GitLab's too), whose pods mount the token.
- Which runners: this stack's environment's (config/platform.py GitLabRunner.specs: its deploy runner, tagged
  with the environment, into Secret `gitlab-runner-token`; where the environment builds, the untagged build
  runner, into `gitlab-runner-token-build`), each described `adplatform <stack> (<key>)` (key: `staging`,
  `staging-build`, ...).
- Downstream environments (`platform.gitlab.runner.downstream`, e.g. staging, which runs no GitLab): the Job
  also creates each such environment's runners and writes each token into Secret `gitlab-runner-token-<key>`;
  the program reads those Secrets back once the Job has completed and exports the tokens as the secret stack
  output `runnerTokens` ({key: token}), which the downstream stack reads through a StackReference
  (`platform.gitlab.runner.registration.stack`).
"""

from __future__ import annotations

import base64
from string import Template
from typing import Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.platform import toolbox_job
from components.platform.context import PlatformContext
from components.platform.toolbox_job import MOUNT, SCRIPTS, Toolbox, ruby_literal
from config.platform import RunnerSpec

SHELL_SCRIPT = "runner-bootstrap.sh"
RUBY_SCRIPT = "create-runner.rb"
NAME = "runner-bootstrap"  # ServiceAccount, Roles, RoleBindings, ConfigMap
APP = "gitlab-runner"


def secret_rules(secrets: Sequence[str]) -> list[dict]:
    """In the runner's namespace: read and patch the Secrets the tokens go to, nothing else."""
    return [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": list(secrets), "verbs": ["get", "patch"]}]


def description(ctx: PlatformContext, spec: RunnerSpec) -> str:
    """How the script finds a runner again (one per stack and key in a GitLab): `adplatform <stack> (<key>)`."""
    return f"adplatform {ctx.stack} ({spec.key})"


def downstream_secret(secret: str, key: str) -> str:
    return f"{secret}-{key}"


def own_secret(secret: str, spec: RunnerSpec) -> str:
    """This stack's runners' Secrets: `secret` (its deploy runner, as before the build runner existed) and
    `<secret>-build`."""
    return downstream_secret(secret, "build") if spec.builds else secret


def script_name(spec: RunnerSpec, own: bool) -> str:
    if own:
        return "create-runner-build.rb" if spec.builds else RUBY_SCRIPT
    return f"create-runner-{spec.key}.rb"


def runners(ctx: PlatformContext, secret: str) -> list[tuple[RunnerSpec, str, str]]:
    """(runner, Ruby script file, Secret) per runner: this stack's own first, then each downstream environment's."""
    settings = ctx.settings.gitlab.runner
    own = [(spec, script_name(spec, True), own_secret(secret, spec))
           for spec in settings.specs(ctx.environment, ctx.environment)]
    return own + [(spec, script_name(spec, False), downstream_secret(secret, spec.key))
                  for env in settings.downstream for spec in settings.specs(env, ctx.environment)]


def ruby_script(ctx: PlatformContext, spec: RunnerSpec | None = None) -> str:
    """The Ruby script for one runner (default: this stack's deploy runner), with its tags and flags
    (config/platform.py GitLabRunner.specs)."""
    spec = spec or ctx.settings.gitlab.runner.specs(ctx.environment, ctx.environment)[0]
    return Template((SCRIPTS / RUBY_SCRIPT).read_text()).substitute(
        description=ruby_literal(description(ctx, spec)), tags=", ".join(ruby_literal(t) for t in spec.tags),
        group=ruby_literal(ctx.settings.gitlab.runner.group),
        run_untagged=ruby_literal(spec.flags.run_untagged),
        access_level=ruby_literal("ref_protected" if spec.flags.protected else "not_protected"))


def shell_script() -> str:
    return toolbox_job.shell_script(SHELL_SCRIPT)


def job_spec(ctx: PlatformContext, namespace: str, toolbox: Toolbox, secret: str, scripts: dict[str, str]) -> dict:
    pairs = " ".join(f"{MOUNT}/{script}={name}" for _, script, name in runners(ctx, secret))
    return toolbox_job.job_spec(
        ctx, NAME, APP, SHELL_SCRIPT, {"RUNNER_NAMESPACE": namespace, "RUNNERS": pairs}, toolbox,
        {"adplatform.io/scripts-sha256": toolbox_job.scripts_digest(scripts)})


def install(ctx: PlatformContext, namespace: str, toolbox: Toolbox, secret: str,
            after: Sequence[pulumi.Resource], spaces: Sequence[pulumi.Resource]) -> k8s.batch.v1.Job:
    """The Job, once the runner's Secret (in `after`) exists, while GitLab installs (the script waits for its
    migrations); done when it completed. Its RBAC and scripts need only the runner's and GitLab's namespaces
    (`spaces`)."""
    scripts = {SHELL_SCRIPT: shell_script(),
               **{script: ruby_script(ctx, spec) for spec, script, _ in runners(ctx, secret)}}
    rules = {toolbox.namespace: toolbox_job.gitlab_rules(toolbox),
             namespace: secret_rules([name for _, _, name in runners(ctx, secret)])}
    rbac = toolbox_job.rbac(ctx, NAME, APP, namespace, rules, spaces)
    return toolbox_job.install(ctx, NAME, APP, namespace, scripts, job_spec(ctx, namespace, toolbox, secret, scripts),
                               [*after, *rbac], spaces)


def downstream_tokens(ctx: PlatformContext, namespace: str, secret: str,
                      job: k8s.batch.v1.Job) -> dict[str, pulumi.Output[str]]:
    """Each downstream runner's token by its key (`staging`, `staging-build`), read back from the Secret the Job
    wrote (after the Job completed)."""
    tokens = {}
    for spec, _, name in runners(ctx, secret):
        if spec.environment == ctx.environment:
            continue
        written = k8s.core.v1.Secret.get(f"{name}-written", f"{namespace}/{name}", opts=ctx.opts([job]))
        tokens[spec.key] = pulumi.Output.secret(written.data.apply(lambda data, name=name: _token(data, name)))
    return tokens


def _token(data: dict[str, str] | None, name: str) -> str:
    if not data or "runner-token" not in data:
        raise ValueError(f"runner bootstrap: Secret {name} holds no runner-token after the Job completed")
    return base64.b64decode(data["runner-token"]).decode()


__all__ = ["install", "downstream_tokens"]
