"""A Job that runs Ruby programs in GitLab's toolbox pod (`gitlab-rails runner -`): what the runner bootstrap
(runner_bootstrap.py) and the SSO bootstrap (sso.py) share, so one `pulumi up` configures this stack's GitLab with
nothing done by hand.

- How: the Job (image charts.GITLAB_KUBECTL_IMAGE, the GitLab chart's own hook image) runs a shell script from a
  mounted ConfigMap: scripts/toolbox.sh (wait for GitLab's migrations Job to complete, then for the toolbox pod;
  `rails_runner`) followed by the Job's own part. The Ruby program goes to the toolbox on the exec's stdin, never on
  a command line. No bootstrap credential is created: the toolbox already holds GitLab's database access.
- Least privilege (ServiceAccount `<name>`): in GitLab's namespace `get`/`list` pods (the toolbox pod's name is
  generated), `create` on pods/exec (what an exec needs, also over WebSocket since Kubernetes 1.35) and `get` on the
  one migrations Job, by name; whatever else a Job needs, it names (`rules`).
- Order (issue 22): nothing of it waits for GitLab's release. The chart's toolbox Deployment has no init container
  waiting for the database or the migrations (charts/gitlab/charts/toolbox/templates/deployment.yaml: certificates,
  configure), so its pod runs early in the install; the Job waits itself for what `gitlab-rails runner` needs, the
  schema: the current migrations Job (gitlab.toolbox) complete. Its Rails boot then overlaps webservice's,
  instead of following Helm's wait for the whole release. The model (tools/plan/timing.py AFTER_RELEASE) prices it so.
- Re-run on change: the Job has no metadata.name, so a changed spec (the pod template carries the hash of the
  scripts and of any mounted input) replaces it, and the new Job runs.
- Network: the Job talks to the Kubernetes API only (exec goes through the API server), which every namespace
  reaches (components/services/namespaces.py allow-kubernetes-api).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import charts
from components.platform.context import PlatformContext
from components.services.namespaces import RESTRICTED_CONTAINER_SECURITY, RESTRICTED_POD_SECURITY

SCRIPTS = Path(__file__).parent / "scripts"
TOOLBOX_SCRIPT = "toolbox.sh"
MOUNT = "/bootstrap"
# GitLab chart 10.2.3: the toolbox Deployment's pod labels (app=toolbox, release=<release>) and container name.
TOOLBOX_CONTAINER = "toolbox"
WAIT_SECONDS = 900  # for a toolbox pod to run once the migrations are done (an upgrade may be rolling it)
# For the migrations Job to complete: as long as Helm waits for GitLab's release (gitlab.py RELEASE_TIMEOUT_SECONDS,
# which covers the database's own wait and the migrations), the Job starting no later than the release.
MIGRATIONS_WAIT_SECONDS = 1800
# Pulumi's wait for the Job: the migrations wait, the toolbox wait and a Rails boot per program (a minute or two).
TIMEOUT = f"{(MIGRATIONS_WAIT_SECONDS + WAIT_SECONDS) // 60 + 10}m"
JOB_UID = 65534  # the GitLab chart runs its kubectl hooks as nobody (global.kubectl.securityContext)
JOB_RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
_LITERAL = re.compile(r"^[A-Za-z0-9 ._()/:-]+$")


@dataclass(frozen=True)
class Toolbox:
    """Where the Jobs find GitLab: its namespace, its release (the toolbox pod's label) and the name of its current
    migrations Job (components/platform/gitlab.py toolbox)."""

    namespace: str
    release: str
    migrations_job: str


def gitlab_rules(toolbox: Toolbox) -> list[dict]:
    """In GitLab's namespace: read the one migrations Job, find the toolbox pod, exec into it. Nothing else."""
    return [{"apiGroups": ["batch"], "resources": ["jobs"], "resourceNames": [toolbox.migrations_job],
             "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
            {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}]


def ruby_literal(value: str | bool) -> str:
    """A Ruby literal of a checked value: single-quoted (no interpolation) and of harmless characters only."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if not _LITERAL.match(value):
        raise ValueError(f"toolbox job: {value!r} has characters outside [A-Za-z0-9 ._()/:-]")
    return f"'{value}'"


def shell_script(part: str) -> str:
    """The Job's script: toolbox.sh, then the Job's own part (scripts/<part>)."""
    return (SCRIPTS / TOOLBOX_SCRIPT).read_text() + (SCRIPTS / part).read_text()


def rbac(ctx: PlatformContext, name: str, app: str, namespace: str, rules: dict[str, list[dict]],
         after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    """ServiceAccount `name` in `namespace`, and a Role + RoleBinding named `name` per namespace of `rules`.
    `after`: those namespaces. Not GitLab: RBAC is plain API objects, created while GitLab installs (issue 22)."""
    labels = ctx.labels(app, name)
    account = k8s.core.v1.ServiceAccount(
        name, metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace, labels=labels),
        opts=ctx.opts(after))
    objects: list[pulumi.Resource] = [account]
    for where, granted in rules.items():
        role = k8s.rbac.v1.Role(
            f"{name}-{where}", metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=where, labels=labels),
            rules=granted, opts=ctx.opts(after))
        binding = k8s.rbac.v1.RoleBinding(
            f"{name}-{where}-binding", metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=where, labels=labels),
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="Role", name=name),
            subjects=[k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=name, namespace=namespace)],
            opts=ctx.opts([*after, role, account]))
        objects += [role, binding]
    return objects


def scripts_digest(scripts: dict[str, str]) -> str:
    return hashlib.sha256("\n".join(scripts[k] for k in sorted(scripts)).encode()).hexdigest()


def job_spec(ctx: PlatformContext, name: str, app: str, entry: str, env: dict[str, str], toolbox: Toolbox,
             annotations: dict[str, Any], volumes: Sequence[dict] = (), mounts: Sequence[dict] = ()) -> dict:
    """The Job's spec: `entry` (a file of the ConfigMap `name`) run by bash, as nobody, read-only root."""
    env = {"GITLAB_NAMESPACE": toolbox.namespace, "MIGRATIONS_JOB": toolbox.migrations_job,
           "MIGRATIONS_WAIT_SECONDS": str(MIGRATIONS_WAIT_SECONDS),
           "TOOLBOX_SELECTOR": f"app=toolbox,release={toolbox.release}",
           "TOOLBOX_CONTAINER": TOOLBOX_CONTAINER, "WAIT_SECONDS": str(WAIT_SECONDS),
           "HOME": "/tmp",  # kubectl's cache, on the writable scratch volume
           **env}
    return {
        "backoffLimit": 2,
        "template": {
            "metadata": {"labels": ctx.labels(app, name), "annotations": annotations},
            "spec": {
                "serviceAccountName": name,
                "restartPolicy": "Never",
                "securityContext": {**RESTRICTED_POD_SECURITY, "runAsUser": JOB_UID, "runAsGroup": JOB_UID},
                "containers": [{
                    "name": name, "image": charts.GITLAB_KUBECTL_IMAGE,
                    "command": ["/bin/bash", f"{MOUNT}/{entry}"],
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                    "resources": JOB_RESOURCES,
                    "securityContext": {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": True},
                    "volumeMounts": [{"name": "scripts", "mountPath": MOUNT, "readOnly": True},
                                     {"name": "tmp", "mountPath": "/tmp"}, *mounts],
                }],
                "volumes": [{"name": "scripts", "configMap": {"name": name}},
                            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}, *volumes],
            },
        },
    }


def install(ctx: PlatformContext, name: str, app: str, namespace: str, scripts: dict[str, str], spec: Any,
            after: Sequence[pulumi.Resource], spaces: Sequence[pulumi.Resource]) -> k8s.batch.v1.Job:
    """The ConfigMap `name` holding `scripts` (once the namespaces in `spaces` exist) and the Job running `spec` once
    it exists and `after` (the Job's RBAC and inputs; not GitLab's release: the script waits) is done; done when the
    Job completed."""
    config = k8s.core.v1.ConfigMap(
        name, metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace, labels=ctx.labels(app, name)),
        data=scripts, opts=ctx.opts(spaces))
    # No metadata.name: Pulumi names it, so a changed spec (the scripts' hash) replaces the Job, which re-runs.
    return k8s.batch.v1.Job(
        name, metadata=k8s.meta.v1.ObjectMetaArgs(namespace=namespace, labels=ctx.labels(app, name)),
        spec=spec, opts=ctx.opts([*after, config], custom_timeouts=pulumi.CustomTimeouts(create=TIMEOUT,
                                                                                        update=TIMEOUT)))


__all__ = ["Toolbox", "gitlab_rules", "install", "job_spec", "rbac", "ruby_literal", "scripts_digest", "shell_script"]
