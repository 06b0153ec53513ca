"""Config of the platform layer: GitLab (+ runner), monitoring, logs, traces, data engineering and ML.

Each component has `enabled`; the profiles (config/profiles.py) turn the heavy ones off in staging.
What a component needs from the data plane (stores, its PostgreSQL database, gateway hostnames) is in
`NEEDS`; config/rules.py refuses a component whose needs are switched off, naming both keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import Field, field_validator, model_validator

from config.catalog import ENVIRONMENTS
from config.model_base import Model, check_hostname_label, one_of
from config.quantity import Cpu, Memory, check_volume_size, cpu_millis, memory_bytes
from config.services import check_cron

_RETENTION = re.compile(r"^[1-9]\d*[hdw]$")
_URL = re.compile(r"^https://[A-Za-z0-9.-]+(:\d+)?(/[^\s]*)?$")
_MATCHER = re.compile(r'^[a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)\s*"?[^"]*"?$')
# Tempo only. Jaeger v2 keeps traces in a database (Cassandra, Elasticsearch/OpenSearch, or its experimental
# ClickHouse store); the data plane's ScyllaDB and ClickHouse serve the ad path, and trace volume there would
# compete with bidding, while badger/memory are single-node. Tempo keeps traces in object storage.
TRACE_BACKENDS = ("tempo",)
RECEIVER_TYPES = ("slack", "webhook", "pagerduty")


def _check_retention(value: str) -> str:
    if not _RETENTION.match(value):
        raise ValueError("must be a duration in hours, days or weeks such as 72h, 15d or 4w")
    return value



def retention_hours(value: str) -> int:
    number, unit = int(value[:-1]), value[-1]
    return number * {"h": 1, "d": 24, "w": 24 * 7}[unit]


class Component(Model):
    enabled: bool = True


# A Pulumi stack name as StackReference takes it: `stack` (this project, this organization) or
# `organization/project/stack`, each part letters, digits, `.`, `_` or `-`.
_STACK_PART = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
_STACK_NAME = re.compile(rf"^({_STACK_PART}/{_STACK_PART}/)?{_STACK_PART}$")


class RunnerRegistration(Model):
    """Where a stack without its own GitLab gets its runner token: the stack running that GitLab, which creates
    a runner for this environment (its `platform.gitlab.runner.downstream`) and exports the token as the secret
    output `runnerTokens` (components/platform/runner_bootstrap.py)."""

    stack: str

    @field_validator("stack")
    @classmethod
    def _stack(cls, value: str) -> str:
        if not _STACK_NAME.match(value):
            raise ValueError("must be a Pulumi stack name, `<organization>/<project>/<stack>` or `<stack>` "
                             "(letters, digits, `.`, `_`, `-`), e.g. acme/adplatform/production")
        return value


def _check_environments(environments) -> None:
    """Each of `environments` (names or mapping keys) is a runner environment."""
    check = one_of(ENVIRONMENTS, "runner environments")
    for env in environments:
        check(env)


class RunnerFlags(Model):
    """How GitLab hands jobs to a runner the program creates (GitLab's RunnerMatcher: a `protected` runner takes
    only jobs of protected refs; one without `runUntagged` only jobs with tags, all of which it carries)."""

    run_untagged: bool
    protected: bool


# The templates' model (templates/gitlab-ci/README.md): each environment's deploy runner takes only the jobs tagged
# with it (deploy-<environment>, rollback) of protected branches and tags, so no merge request's or unprotected
# branch's code runs with the `deployer`'s rights; the untagged build, test and image jobs, merge requests'
# too (their refs are not protected), go to a separate build runner whose jobs have no Kubernetes rights.
RUNNER_FLAGS = {
    "production": RunnerFlags(run_untagged=False, protected=True),
    "staging": RunnerFlags(run_untagged=False, protected=True),
}
BUILD_RUNNER_FLAGS = RunnerFlags(run_untagged=True, protected=False)
# The environment whose cluster runs the build runner (merge requests' code): staging, never production.
RUNNER_BUILDS = {"production": False, "staging": True}
assert set(RUNNER_FLAGS) == set(ENVIRONMENTS) == set(RUNNER_BUILDS)


@dataclass(frozen=True)
class RunnerSpec:
    """A runner the program creates in GitLab for `environment`: its deploy runner (tagged with the environment)
    or its build runner (`builds`: no tags, takes the untagged jobs, its jobs get no Kubernetes rights)."""

    environment: str
    builds: bool
    flags: RunnerFlags

    @property
    def key(self) -> str:
        """Names its token: the key in the stack output runnerTokens and the suffix of its Secret."""
        return f"{self.environment}-build" if self.builds else self.environment

    @property
    def tags(self) -> tuple[str, ...]:
        return () if self.builds else (self.environment,)


class GitLabRunner(Model):
    """A runner with the Kubernetes executor. With this stack's own GitLab the program creates the runner there
    (components/platform/runner_bootstrap.py); registering with another GitLab (`url`), or overriding that, takes
    its token (glrt-..., Admin > CI/CD > Runners) as the secret `gitlabRunnerToken`."""

    enabled: bool | None = None  # unset: on exactly when this stack runs its own GitLab (GitLab._runner_default)
    # How the program creates this stack's runner (with a token from the secret, these are set in GitLab's UI
    # instead); unset: its environment's RUNNER_FLAGS.
    run_untagged: bool | None = None
    protected: bool | None = None
    # The GitLab it registers with: this stack's own (https://gitlab.<domain>) unless set, e.g. staging's
    # runner registers with production's GitLab and deploys to the staging cluster.
    url: str | None = None
    # Environments whose stacks register with this stack's GitLab: the program creates a runner there for each
    # (tagged with that environment) and exports its token as the secret stack output `runnerTokens`.
    downstream: tuple[str, ...] = ()
    # The flags of a downstream environment's runner, where its RUNNER_FLAGS do not fit,
    # e.g. {staging: {runUntagged: true, protected: true}} (both flags).
    downstream_runners: dict[str, RunnerFlags] = {}
    # On such a stack: read the token from that stack's `runnerTokens` instead of the secret gitlabRunnerToken.
    registration: RunnerRegistration | None = None
    # The GitLab group (full path) whose projects may use the runners the program creates: they are that group's
    # runners, not instance runners, so no project outside it can run a job with the deployer's rights. The runner
    # bootstrap creates the group when it is missing (owned by the first administrator).
    group: str = "ad-services"
    concurrent: int = 10  # jobs at once
    # Jobs run in their own namespace under this quota.
    requests_cpu: Cpu = "16"
    requests_memory: Memory = "32Gi"
    limits_memory: Memory = "64Gi"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not _URL.match(value):
            raise ValueError("must be the https:// URL of a GitLab instance, e.g. https://gitlab.ads.example.com")
        return value.rstrip("/") if value else value

    @field_validator("downstream")
    @classmethod
    def _downstream(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        _check_environments(value)
        if len(set(value)) != len(value):
            raise ValueError(f"lists an environment twice: {list(value)}")
        return value

    @field_validator("downstream_runners")
    @classmethod
    def _downstream_runners(cls, value: dict[str, RunnerFlags]) -> dict[str, RunnerFlags]:
        _check_environments(value)
        return value

    def flags(self, environment: str, own_environment: str) -> RunnerFlags:
        """The flags of the runner created for `environment`: this stack's own (`runUntagged`, `protected`) or a
        downstream one's (`downstreamRunners`), each unset flag from that environment's RUNNER_FLAGS."""
        default = RUNNER_FLAGS[environment]
        if environment != own_environment:
            return self.downstream_runners.get(environment, default)
        return RunnerFlags(
            run_untagged=default.run_untagged if self.run_untagged is None else self.run_untagged,
            protected=default.protected if self.protected is None else self.protected)

    def specs(self, environment: str, own_environment: str) -> list[RunnerSpec]:
        """The runners the program creates for `environment`: its deploy runner, then its build runner if that
        environment's cluster builds (RUNNER_BUILDS)."""
        deploy = RunnerSpec(environment, builds=False, flags=self.flags(environment, own_environment))
        return [deploy] + ([RunnerSpec(environment, builds=True, flags=BUILD_RUNNER_FLAGS)]
                           if RUNNER_BUILDS[environment] else [])

    _v_group = field_validator("group")(staticmethod(lambda value: check_group_path(value)))

    @field_validator("concurrent")
    @classmethod
    def _concurrent(cls, value: int) -> int:
        if not 1 <= value <= 500:
            raise ValueError("must be between 1 and 500 concurrent jobs")
        return value


class GitLab(Component):
    backup_schedule: str = "0 4 * * *"  # the toolbox's backup CronJob, to the object store's backups bucket
    repository_storage_size: str = "200Gi"  # Gitaly's volume
    runner: GitLabRunner = GitLabRunner()

    _v_cron = field_validator("backup_schedule")(check_cron)
    _v_size = field_validator("repository_storage_size")(check_volume_size)

    @model_validator(mode="after")
    def _runner_default(self) -> "GitLab":
        """A stack's own GitLab comes with its runner (the program creates it there); without GitLab the runner
        is off unless configured (it then registers with another stack's GitLab)."""
        if self.runner.enabled is None:
            # Models are frozen; this is still validation, before anyone reads the value.
            object.__setattr__(self, "runner", self.runner.model_copy(update={"enabled": self.enabled}))
        return self


class AlertReceiver(Model):
    """Where Alertmanager sends notifications. The URL or key is secret: `alertingSecrets.<name>`
    (pulumi config set --secret --path 'adplatform:alertingSecrets.<name>' <url or key>)."""

    name: str
    type: str
    channel: str | None = None  # slack

    _v_name = field_validator("name")(check_hostname_label)
    _v_type = field_validator("type")(staticmethod(one_of(RECEIVER_TYPES)))


class AlertRoute(Model):
    receiver: str
    matchers: list[str]  # Alertmanager matchers: severity="critical", namespace=~"ads|data"
    continue_: bool = Field(False, alias="continue")  # keep matching later routes after this one

    @field_validator("matchers")
    @classmethod
    def _matchers(cls, values: list[str]) -> list[str]:
        if not values:
            raise ValueError("must list at least one matcher such as severity=\"critical\"")
        for value in values:
            if not _MATCHER.match(value):
                raise ValueError(f"matcher {value!r} must be label=value, label!=value, label=~regex or label!~regex")
        return values


class Alerting(Model):
    receivers: list[AlertReceiver] = []
    routes: list[AlertRoute] = []
    default_receiver: str | None = None  # None: alerts are kept in Alertmanager only (no notification)


class Monitoring(Component):
    retention: str = "15d"  # Prometheus TSDB retention
    storage_size: str = "100Gi"  # per Prometheus replica
    alerting: Alerting = Alerting()

    _v_retention = field_validator("retention")(_check_retention)
    _v_size = field_validator("storage_size")(check_volume_size)


class Logs(Component):
    retention: str = "30d"  # Loki's compactor deletes older chunks from object storage
    _v_retention = field_validator("retention")(_check_retention)

    @field_validator("retention")
    @classmethod
    def _whole_days(cls, value: str) -> str:
        if retention_hours(value) < 24:
            raise ValueError("must be at least 24h: Loki's compactor applies retention to its daily index tables")
        return value


class Traces(Component):
    backend: str = "tempo"
    retention: str = "7d"
    _v_backend = field_validator("backend")(staticmethod(one_of(TRACE_BACKENDS)))
    _v_retention = field_validator("retention")(_check_retention)


class JupyterHub(Component):
    user_storage_size: str = "10Gi"  # each user's home volume
    user_cpu_limit: Cpu = "2"
    user_memory_limit: Memory = "8Gi"
    # What each user server is guaranteed (Kubernetes requests): the scheduler reserves it on a node.
    user_cpu_guarantee: Cpu = "500m"
    user_memory_guarantee: Memory = "2Gi"
    idle_timeout_minutes: int = 60  # jupyterhub-idle-culler stops servers idle this long (their volumes stay)
    _v_size = field_validator("user_storage_size")(check_volume_size)

    @field_validator("idle_timeout_minutes")
    @classmethod
    def _idle(cls, value: int) -> int:
        if not 10 <= value <= 7 * 24 * 60:
            raise ValueError("must be between 10 minutes and one week (10080)")
        return value

    @model_validator(mode="after")
    def _guarantees_within_limits(self) -> "JupyterHub":
        for what, parse, guarantee, limit in (
                ("cpu", cpu_millis, self.user_cpu_guarantee, self.user_cpu_limit),
                ("memory", memory_bytes, self.user_memory_guarantee, self.user_memory_limit)):
            if parse(guarantee) > parse(limit):
                raise ValueError(f"user{what.capitalize()}Guarantee ({guarantee}) must not exceed "
                                 f"user{what.capitalize()}Limit ({limit})")
        return self


class Airflow(Component):
    """DAGs come from a git repository through git-sync when `dagsRepo` is set (https URL, public or reachable
    without credentials); without it, DAGs are baked into a custom Airflow image."""

    dags_repo: str | None = None
    dags_branch: str = "main"
    dags_path: str = ""  # the folder in the repository holding the DAGs ("" for its root)

    @field_validator("dags_repo")
    @classmethod
    def _repo(cls, value: str | None) -> str | None:
        if value is not None and not _URL.match(value):
            raise ValueError("must be the https:// URL of a git repository, "
                             "e.g. https://gitlab.example.com/data/dags.git")
        return value

    @field_validator("dags_branch")
    @classmethod
    def _branch(cls, value: str) -> str:
        # git-sync's --ref: a branch or tag name (git check-ref-format's characters; no leading '-', no '..').
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._/-]{0,254}", value) or ".." in value:
            raise ValueError("must be a git branch or tag name such as main or release/2026-11")
        return value

    @field_validator("dags_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if value and (not re.fullmatch(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*", value) or ".." in value.split("/")):
            raise ValueError("must be a folder of the repository such as dags or airflow/dags (no leading '/', "
                             "no '..')")
        return value


class Spark(Component):
    """The quota of the namespace Spark jobs run in (so a runaway job cannot take the general pool)."""

    requests_cpu: Cpu = "16"
    requests_memory: Memory = "64Gi"
    limits_memory: Memory = "64Gi"  # Spark sets each pod's memory limit to its request plus overhead
    pods: int = 200

    @field_validator("pods")
    @classmethod
    def _pods(cls, value: int) -> int:
        if not 2 <= value <= 5000:
            raise ValueError("must be between 2 (a driver and an executor) and 5000")
        return value


class Kubeflow(Component):
    """Kubeflow Pipelines keeps runs, pipelines and ML metadata in the MySQL of its manifests, on this volume."""

    database_storage_size: str = "20Gi"
    _v_size = field_validator("database_storage_size")(check_volume_size)


# --- single sign-on (components/platform/sso.py): GitLab is the platform's OIDC identity provider ----------
# Who logs in with GitLab: each web tool (native OIDC or behind oauth2-proxy) and kubectl (the API server's OIDC
# flags). One OAuth application, client id and secret per consumer: no two tools share a credential.
# tool -> the platform.<component> that serves it (the tool logs in only while its component is enabled).
SSO_TOOLS: dict[str, str] = {"grafana": "monitoring", "airflow": "airflow", "jupyterhub": "jupyterhub",
                             "mlflow": "mlflow", "kubeflow": "kubeflow"}
SSO_CONSUMERS = (*SSO_TOOLS, "kubectl", "openbao")  # openbao: its UI's login (components/services/secrets_sso.py)
# A GitLab group's full path (`platform-admins`, `data/analysts`): path segments of letters, digits, `_`, `.` and
# `-`, starting with a letter, digit or `_` (GitLab's namespace path rule), joined by `/`.
_GROUP_PATH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}(/[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}){0,19}$")
# What a GitLab group may be bound to in the cluster (Kubernetes' user-facing ClusterRoles). Cluster-wide only
# read-only `view` or, deliberately, `cluster-admin`; `edit` and `admin` only inside a namespace.
KUBECTL_ROLES = ("view", "edit", "admin", "cluster-admin")
CLUSTER_WIDE_ROLES = ("view", "cluster-admin")


def oauth_client_id(stack: str, consumer: str) -> str:
    """The client id of `consumer`'s OAuth application in this stack's GitLab. Derived, not random: the API
    server's --oidc-client-id (components/k3s/config.py) is set when K3s is installed, before the platform layer
    exists, and a client id is public by design (RFC 6749 2.2); the client secrets are generated."""
    return f"adplatform-{stack}-{consumer}"


def gitlab_issuer(domain: str) -> str:
    """GitLab's OIDC issuer (its external URL, https://gitlab.<domain>, as the gateway serves it)."""
    return f"https://gitlab.{domain}"


def check_group_path(value: str) -> str:
    if not _GROUP_PATH.match(value) or ".." in value:
        raise ValueError(f"{value!r} must be a GitLab group path such as platform-admins or data/analysts "
                         "(segments of letters, digits, '_', '.' and '-' joined by '/')")
    return value


def _check_groups(values: list[str]) -> list[str]:
    for value in values:
        check_group_path(value)
    if len(set(values)) != len(values):
        raise ValueError(f"lists a group twice: {values}")
    return values


class KubectlBinding(Model):
    """Members of a GitLab group get a ClusterRole: in `namespace`, or cluster-wide when it is unset."""

    group: str
    cluster_role: str
    namespace: str | None = None

    _v_group = field_validator("group")(staticmethod(check_group_path))
    _v_role = field_validator("cluster_role")(staticmethod(one_of(KUBECTL_ROLES, "ClusterRoles")))
    _v_namespace = field_validator("namespace")(staticmethod(lambda v: v if v is None else check_hostname_label(v)))

    @model_validator(mode="after")
    def _scope(self) -> "KubectlBinding":
        if self.namespace is None and self.cluster_role not in CLUSTER_WIDE_ROLES:
            raise ValueError(f"clusterRole {self.cluster_role!r} needs a namespace: cluster-wide bindings may only "
                             f"grant {' or '.join(CLUSTER_WIDE_ROLES)}")
        return self


class Kubectl(Model):
    bindings: list[KubectlBinding] = []


class Sso(Model):
    """GitLab groups (full paths) allowed into each tool. `admins` log in everywhere with the tool's admin role;
    `users.<tool>` log in to that tool with its ordinary role (Grafana Viewer, Airflow User: runs and clears DAGs,
    no connections or roles; JupyterHub user; MLflow and Kubeflow Pipelines through their proxy, which has no
    roles). Nobody else gets in, so every enabled tool needs at least one group (config/rules.py refuses none:
    oauth2-proxy and Grafana let every GitLab account in when no group is set). kubectl rights come only from
    `kubectl.bindings`."""

    enabled: bool | None = None  # unset: on exactly when this stack runs its own GitLab (the identity provider)
    admins: list[str] = ["platform-admins"]
    users: dict[str, list[str]] = {}
    kubectl: Kubectl = Kubectl()

    _v_admins = field_validator("admins")(staticmethod(_check_groups))

    @field_validator("users")
    @classmethod
    def _users(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        check = one_of(SSO_TOOLS, "tools")
        for tool, groups in value.items():
            check(tool)
            _check_groups(groups)
        return value

    def allowed(self, tool: str) -> list[str]:
        """Every group whose members may log in to `tool` (admins first)."""
        return [*self.admins, *(g for g in self.users.get(tool, []) if g not in self.admins)]


class Platform(Model):
    gitlab: GitLab = GitLab()
    monitoring: Monitoring = Monitoring()
    logs: Logs = Logs()
    traces: Traces = Traces()
    airflow: Airflow = Airflow()
    spark: Spark = Spark()
    jupyterhub: JupyterHub = JupyterHub()
    mlflow: Component = Component()
    kubeflow: Kubeflow = Kubeflow()
    sso: Sso = Sso()

    @model_validator(mode="after")
    def _sso_default(self) -> "Platform":
        """SSO follows GitLab, its identity provider, unless configured."""
        if self.sso.enabled is None:
            object.__setattr__(self, "sso", self.sso.model_copy(update={"enabled": self.gitlab.enabled}))
        return self

    def enabled(self) -> list[str]:
        return [name for name in COMPONENTS if getattr(self, name).enabled]


@dataclass(frozen=True)
class Needs:
    stores: tuple[str, ...] = ()  # dataPlane.<store> that must be enabled (config/data.py attribute names)
    database: str | None = None  # its database in dataPlane.postgres.databases
    buckets: tuple[str, ...] = ()  # object storage purposes only it reads and writes (config/data.py BUCKET_OWNERS)
    hostnames: tuple[str, ...] = ()  # gateway host labels it is served on (clusterServices.gateway.hostnames)


# Attribute name -> what it needs (one place: config/rules.py checks it, components/platform wires it).
NEEDS: dict[str, Needs] = {
    "gitlab": Needs(("postgres", "dragonfly", "object_storage"), "gitlab",
                    ("gitlab", "gitlab-lfs", "gitlab-uploads", "gitlab-packages", "gitlab-mr-diffs",
                     "gitlab-terraform-state", "gitlab-ci-secure-files", "gitlab-dependency-proxy", "registry",
                     "gitlab-backups", "gitlab-tmp"), ("gitlab", "registry")),
    "monitoring": Needs(hostnames=("grafana",)),
    "logs": Needs(("object_storage",), buckets=("logs",)),
    "traces": Needs(("object_storage",), buckets=("traces",)),
    # Buckets of their own: task logs apart from Loki's, MLflow's artifacts apart from Kubeflow user code's.
    "airflow": Needs(("postgres", "object_storage"), "airflow", ("airflow-logs",), ("airflow",)),
    "spark": Needs(),
    "jupyterhub": Needs(("postgres",), "jupyterhub", hostnames=("jupyter",)),
    "mlflow": Needs(("postgres", "object_storage"), "mlflow", ("mlflow-artifacts",), ("mlflow",)),
    # Its UI has no login: routed (on this hostname) only behind the single sign-on's proxy.
    "kubeflow": Needs(("object_storage",), buckets=("ml-artifacts",), hostnames=("kubeflow",)),
}
COMPONENTS = tuple(NEEDS)

__all__ = ["COMPONENTS", "NEEDS", "Platform", "SSO_CONSUMERS", "SSO_TOOLS", "Sso", "gitlab_issuer", "oauth_client_id", "retention_hours"]
