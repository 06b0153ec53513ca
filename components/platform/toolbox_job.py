"""A Job that runs Ruby programs in GitLab's toolbox pod (`gitlab-rails runner -`): what the runner bootstrap
(runner_bootstrap.py) and the SSO bootstrap (sso.py) share, so one `pulumi up` configures this stack's GitLab with
nothing done by hand.

- How: the Job (image charts.GITLAB_KUBECTL_IMAGE, the GitLab chart's own hook image) runs a shell script from a
  mounted ConfigMap: scripts/toolbox.sh (wait for the toolbox pod, `rails_runner`) followed by the Job's own part.
  The Ruby program goes to the toolbox on the exec's stdin, never on a command line. No bootstrap credential is
  created: the toolbox already holds GitLab's database access.
- Least privilege (ServiceAccount `<name>`): in GitLab's namespace `get`/`list` pods (the toolbox pod's name is
  generated) and `create` on pods/exec (what an exec needs, also over WebSocket since Kubernetes 1.35); whatever
  else a Job needs, it names (`rules`).
- Order: the ServiceAccount, Roles, RoleBindings and the scripts' ConfigMap need only their namespaces; the Job
  alone waits for GitLab's release (its toolbox pod), so they are created during GitLab's long first install.
- Re-run on change: the Job has no metadata.name, so a changed spec (the pod template carries the hash of the
  scripts and of any mounted input) replaces it, and the new Job runs.
- Network: the Job talks to the Kubernetes API only (exec goes through the API server), which every namespace
  reaches (components/services/namespaces.py allow-kubernetes-api).
"""

from __future__ import annotations

import hashlib
import re
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
WAIT_SECONDS = 900  # for a toolbox pod to run (an upgrade of GitLab may be rolling it)
TIMEOUT = "30m"  # Pulumi's wait for the Job: the toolbox wait plus a Rails boot (a minute or two)
JOB_UID = 65534  # the GitLab chart runs its kubectl hooks as nobody (global.kubectl.securityContext)
JOB_RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
_LITERAL = re.compile(r"^[A-Za-z0-9 ._()/:-]+$")


def gitlab_rules() -> list[dict]:
    """In GitLab's namespace: find the toolbox pod, exec into it. Nothing else."""
    return [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
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
    `after`: those namespaces. Not GitLab: RBAC is plain API objects, so it is created while GitLab installs and
    only the Job waits for GitLab (issue 22)."""
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


def job_spec(ctx: PlatformContext, name: str, app: str, entry: str, env: dict[str, str], gitlab_namespace: str,
             gitlab_release: str, annotations: dict[str, Any], volumes: Sequence[dict] = (),
             mounts: Sequence[dict] = ()) -> dict:
    """The Job's spec: `entry` (a file of the ConfigMap `name`) run by bash, as nobody, read-only root."""
    env = {"GITLAB_NAMESPACE": gitlab_namespace, "TOOLBOX_SELECTOR": f"app=toolbox,release={gitlab_release}",
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
    it exists and `after` (GitLab and the Job's RBAC) is done; done when the Job completed."""
    config = k8s.core.v1.ConfigMap(
        name, metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace, labels=ctx.labels(app, name)),
        data=scripts, opts=ctx.opts(spaces))
    # No metadata.name: Pulumi names it, so a changed spec (the scripts' hash) replaces the Job, which re-runs.
    return k8s.batch.v1.Job(
        name, metadata=k8s.meta.v1.ObjectMetaArgs(namespace=namespace, labels=ctx.labels(app, name)),
        spec=spec, opts=ctx.opts([*after, config], custom_timeouts=pulumi.CustomTimeouts(create=TIMEOUT,
                                                                                        update=TIMEOUT)))


__all__ = ["gitlab_rules", "install", "job_spec", "rbac", "ruby_literal", "scripts_digest", "shell_script"]
