"""GitLab Community Edition (chart `gitlab`, components/charts.py GITLAB) at https://gitlab.<domain>, its container
registry at https://registry.<domain>, both routed on the shared gateway, its data in the data plane's stores.

What this module sets and why:

- PostgreSQL: the `gitlab` database of the CloudNativePG cluster (its read-write service), with the owner's
  credentials copied into namespace `gitlab`. TLS is required (`PGSSLMODE=require`, honoured by libpq in Rails
  and pg_dump): the chart verifies a server only together with a client certificate (`global.psql.ssl` needs
  `clientCertificate`/`clientKey`, charts/gitlab/templates/_postgresql.tpl), and the CloudNativePG CA is not
  published outside namespace `postgres`, so the certificate is not verified (see the README section).
- Redis: DragonflyDB's primary, password from a copy of its Secret, on a logical database of its own.
- Object storage, consolidated form: one connection Secret (fog's AWS provider, path-style for SeaweedFS, the
  provider's endpoint for external S3) and one bucket per object type, because a restore needs them apart.
  The registry gets its own storage Secret; redirects to the in-cluster store are off (clients cannot reach it).
- Backups: the toolbox CronJob (`platform.gitlab.backupSchedule`) writes a tarball of the database,
  repositories and objects to the `gitlab-backups` bucket with the same credentials it reads the objects with.
- Routes: our HTTPRoutes on the shared gateway; the chart's Gateway API/Envoy Gateway, ingress, cert-manager,
  Prometheus and runner are off, and external URLs are https (the gateway terminates TLS).
- HA (production): webservice, Sidekiq and the registry run at least 2 replicas spread over nodes, each with
  the chart's own PodDisruptionBudget (maxUnavailable 1). Gitaly runs once, on a volume we create (protected in
  production, so `pulumi destroy` keeps the repositories): Gitaly Cluster (Praefect) is left out because GitLab
  does not support it on Kubernetes and it needs a third PostgreSQL database and three Gitaly volumes.
- SSH (gitlab-shell) is off: the shared gateway serves HTTPS only, so Git runs over HTTPS with tokens.
  KAS (the agent for Kubernetes) is off: it needs its own host and a WebSocket/gRPC route, and deployments here
  go through the runner's deployer identity, not GitLab agents.
- Metrics: the chart's ServiceMonitors (webservice, Workhorse, Gitaly, exporter, registry) and Sidekiq's
  PodMonitor. Every container has requests and a memory limit; every pod runs under Pod Security `restricted`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import charts, yamltext
from components.data.endpoints import ObjectStoreEndpoint
from components.helm import release
from components.platform import sso
from components.platform.context import LAYER, Installed, PlatformContext
from components.platform.toolbox_job import Toolbox
from components.scheduling import topology_spread
from components.services.namespaces import Namespaces, NamespaceSpec

NAMESPACE = charts.GITLAB.namespace
RELEASE = "gitlab"  # contains the chart name: objects are named gitlab-<component>
# The chart's Services (webservice.fullname.withSuffix, registry.fullname) and Gitaly's claim
# (volumeClaimTemplates `repo-data` of StatefulSet gitlab-gitaly).
WEBSERVICE_SERVICE = f"{RELEASE}-webservice-default"
WORKHORSE_PORT = 8181  # Workhorse fronts Puma: every browser, API and Git-over-HTTP request goes through it
REGISTRY_SERVICE = f"{RELEASE}-registry"
REGISTRY_PORT = 5000
GITALY_CLAIM = f"repo-data-{RELEASE}-gitaly-0"
# Metrics ports Prometheus scrapes (each subchart's values.yaml `metrics.port`; the registry's debug server).
METRICS_PORTS = {"webservice": 8083, "workhorse": 9229, "sidekiq": 3807, "gitaly": 9236, "gitlab-exporter": 9168,
                 "registry": 5001}
HTTPS = 443  # webhooks, repository mirroring and imports reach other servers over HTTPS

# The release does not wait for its PostgreSQL database (components/platform/__init__.py _stores_ready): the chart
# waits for it itself. Its migrations Job runs `/scripts/wait-for-deps` before `/scripts/db-migrate`, with
# restartPolicy OnFailure, backoffLimit 6 and activeDeadlineSeconds 3600 (charts/gitlab/charts/migrations values.yaml
# scriptTpl, templates/_jobspec.yaml; read at chart 9.9.1), and webservice and Sidekiq start only after their
# `dependencies` init container's `/scripts/wait-for-deps` (webservice templates/deployment.yaml). The CNG script
# retries `rake db:version` (a Rails boot each) WAIT_FOR_TIMEOUT times before it fails; with BYPASS_SCHEMA_VERSION
# (the migrations Job) it only needs the database to answer, else the migrated schema. So the release installs while
# CloudNativePG bootstraps and applies the database (about two minutes), its pods go on once the database answers,
# and the release waits RELEASE_TIMEOUT_SECONDS for both (tools/plan/timing.py AFTER_STORES: GitLab is not ready
# before its database plus the migrations). The same Job and settings are in the 10.x chart sources (read for 10.2.3). What the pods read first is known before the database: the
# owner's password Secret (Pulumi's) and the read-write Service's name. PGSSLMODE=require mounts no CA.
# Nor does it wait for the object store's release (issue 22): no part of the install reads or writes an object. The
# migrations Job and the pods wait for the database only (wait-for-deps, above); webservice's /-/readiness checks the
# database, Redis and Gitaly (gitlabhq app/controllers/health_controller.rb CHECKS), Sidekiq's /readiness its own
# process; the registry builds its S3 driver without a request (container-registry registry/handlers/app.go NewApp:
# factory.Create; the upload purger starts after a random delay) and its /debug/health tests the store only with
# `health.storagedriver.enabled`, off in the chart and pinned off in values() below; the toolbox only names the
# buckets (env), and its backup CronJob runs at backupSchedule. Read at chart 9.9.1 (gitlab-org/charts/gitlab
# charts/registry/values.yaml `health`, templates/configmap.yaml, toolbox templates/deployment.yaml): the 10.x
# sources were not at hand. What the pods read first is Pulumi's: the connection Secrets and the keys in them
# (generated by the data plane, components/data/objectstore.py endpoint). The buckets, made by the SeaweedFS
# release's post-install hook, are first used when someone uploads, pushes or a backup runs, well after the store's
# release (90 s modelled) is done while GitLab's runs (600 s); a store that fails still fails the same `pulumi up`.
# Nor for its Redis, its DragonflyDB instance (issue 22): nothing of the chart waits for Redis before it starts
# (wait-for-deps asks the database only, above). The first part of the install that can use Redis is the migrations
# Job's seeding, which starts only once the database answers; a run that fails on Redis is retried (backoffLimit 6,
# above). Webservice and Sidekiq start after the migrations (their wait-for-deps needs the migrated schema), and
# webservice's readiness checks Redis (HealthController CHECKS, above), so Helm's wait covers Redis serving. What the
# pods read first is Pulumi's: the password Secret (REDIS_SECRET, a copy of the instance's ACL user's password) and the
# instance's Service name. The model counts the whole migrations and a Rails boot after the instance is Ready
# (tools/plan/timing.py AFTER_STORES); RELEASE_TIMEOUT_SECONDS outlasts the instance's own wait (900 s) plus that.
# A restore of the instance's volume (dataPlane.dragonfly.restore) completes in the disaster recovery's `stores` step,
# before the `platform` step installs GitLab (docs/disaster-recovery.md).
INSTALLS_BEFORE = frozenset({"postgres", "object_storage", "dragonfly"})  # stores GitLab's release does not wait for
# Long enough for the database at the end of its own wait (components/data/postgres.py READY_TIMEOUT_SECONDS) plus the
# chart's retry of wait-for-deps (a failed Job run is a few Rails boots, then the Job's back-off), the migrations and a
# Rails boot: the default 900 s would leave under 2 minutes once the database takes 5 (a failed wait fails `pulumi up`;
# a re-run continues, the release is not atomic).
RELEASE_TIMEOUT_SECONDS = 1800
# The chart names its Jobs `<release>-<subchart>-<suffix>`, the suffix by default a hash of the chart version and of all
# its values (templates/_helpers.tpl gitlab.jobNameSuffix, read at chart 9.9.1): a new Job whenever either changes. The
# toolbox Jobs (toolbox_job.py) wait for the current migrations Job by name while the release installs, so we set the
# suffix (`global.job.nameSuffixOverride`, doc/charts/globals.md "Jobs") by the same rule (job_suffix): a previous
# revision's Job has another name. A Job that failed under the same values keeps its name (so with the chart's own
# suffix: Helm leaves an unchanged Job as it is); toolbox.sh then says to delete it. Well within 63 characters.
JOB_SUFFIX_LENGTH = 10
EDITION = "ce"  # global.edition (chart values.yaml: ee by default; doc "Deploy the Community Edition")
ROOT_PASSWORD_SECRET = "gitlab-initial-root-password"
POSTGRES_SECRET = "gitlab-postgres"
REDIS_SECRET = "gitlab-redis"
OBJECT_STORAGE_SECRET = "gitlab-object-storage"
REGISTRY_STORAGE_SECRET = "gitlab-registry-storage"
BACKUP_STORAGE_SECRET = "gitlab-backup-storage"
REDIS_DATABASE = 1  # where GitLab's keys have always been (its DragonflyDB instance is now its own)
# global.appConfig.<type> -> the bucket purpose holding it (config/data.py BUCKET_PURPOSES, config/platform.py NEEDS).
OBJECT_BUCKETS = {"artifacts": "gitlab", "lfs": "gitlab-lfs", "uploads": "gitlab-uploads",
                  "packages": "gitlab-packages", "externalDiffs": "gitlab-mr-diffs",
                  "terraformState": "gitlab-terraform-state", "ciSecureFiles": "gitlab-ci-secure-files",
                  "dependencyProxy": "gitlab-dependency-proxy"}
REGISTRY_BUCKET = "registry"
BACKUP_BUCKET = "gitlab-backups"
BACKUP_TMP_BUCKET = "gitlab-tmp"  # the restore moves existing objects here first (backup-utility)
BACKUPS_KEPT = 7  # backup-utility --maximum-backups: older tarballs are deleted after a successful backup

# Requests and memory limits; CPU is not limited (Puma and Sidekiq burst on page loads and job spikes).
RESOURCES = {
    "webservice": {"requests": {"cpu": "1", "memory": "2.5Gi"}, "limits": {"memory": "4Gi"}},  # 2 Puma workers
    "workhorse": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
    "sidekiq": {"requests": {"cpu": "900m", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
    "gitaly": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "6Gi"}},
    "registry": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
    "toolbox": {"requests": {"cpu": "50m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
    "backup": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "4Gi"}},
    "migrations": {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
    "gitlab-exporter": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
    "init": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
    "job": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
}
# Gitaly's pod context lacks a seccomp profile in the chart (charts/gitlab/charts/gitaly/values.yaml), which
# `restricted` requires; the other subcharts set it.
GITALY_POD_SECURITY = {"runAsUser": 1000, "fsGroup": 1000, "fsGroupChangePolicy": "OnRootMismatch",
                       "seccompProfile": {"type": "RuntimeDefault"}}


def namespaces(ctx: PlatformContext) -> list[NamespaceSpec]:
    return [NamespaceSpec(
        name=NAMESPACE, pss="restricted", layer=LAYER, gateway=True,
        why="every GitLab component runs as its image's non-root user with all capabilities dropped and the "
            "RuntimeDefault seccomp profile (gitlab-shell, the one component that could need more, is off)",
        egress_to=ctx.store_peers("postgres", "dragonfly", "object_storage", consumer="gitlab"),
        egress_world=tuple(sorted({HTTPS, *ctx.object_storage_egress_world()})),
        ingress_from=(ctx.monitoring(sorted(METRICS_PORTS.values())),))]


# --- connection files (secret: they embed the object store's keys) -----------------------------------------
def rails_connection(objects: ObjectStoreEndpoint, key_id: str, secret_key: str) -> str:
    """The fog connection of the consolidated object storage (chart examples/objectstorage/rails.minio.yaml)."""
    return yamltext.safe_dump({
        "provider": "AWS", "region": objects.region, "aws_access_key_id": key_id,
        "aws_secret_access_key": secret_key, "aws_signature_version": 4, "endpoint": objects.url,
        "path_style": objects.path_style}, sort_keys=False)


def registry_storage(objects: ObjectStoreEndpoint, key_id: str, secret_key: str) -> str:
    """The registry's `storage` block (chart examples/objectstorage/registry.minio.yaml); the chart indents it
    under `storage:` and adds `delete: enabled: true`."""
    return yamltext.safe_dump({"s3": {
        "bucket": objects.buckets[REGISTRY_BUCKET], "accesskey": key_id, "secretkey": secret_key,
        "region": objects.region, "regionendpoint": objects.url, "pathstyle": objects.path_style,
        "v4auth": True}}, sort_keys=False)


def backup_s3cfg(objects: ObjectStoreEndpoint, key_id: str, secret_key: str) -> str:
    """s3cmd's config for backup-utility: the same store and keys as the objects it copies into the tarball."""
    scheme, _, host = objects.url.partition("://")
    # Path-style unless the store serves virtual-hosted buckets (s3cmd: host_bucket without %(bucket)s).
    host_bucket = host if objects.path_style else f"%(bucket)s.{host}"
    return "\n".join([
        "[default]", f"access_key = {key_id}", f"secret_key = {secret_key}", f"bucket_location = {objects.region}",
        f"host_base = {host}", f"host_bucket = {host_bucket}", f"use_https = {scheme == 'https'}",
        "signature_v2 = False", "multipart_chunk_size_mb = 128", ""])


def _secret_file(ctx: PlatformContext, resource_name: str, name: str, key: str, objects: ObjectStoreEndpoint,
                 render, depends_on: Sequence[pulumi.Resource]) -> k8s.core.v1.Secret:
    keys = objects.keys("gitlab")  # GitLab's own identity: only it can write the registry CI deploys from
    content = pulumi.Output.all(keys.access_key_id, keys.secret_access_key).apply(
        lambda keys: render(objects, keys[0], keys[1]))
    _, secret = ctx.credentials(resource_name, name, NAMESPACE, {key: content}, depends_on,
                                labels=ctx.labels("gitlab", "object-storage"))
    return secret


# --- values -------------------------------------------------------------------------------------------
def replicas(ctx: PlatformContext) -> tuple[int, int]:
    """(minimum, maximum) of a stateless component's autoscaler: 2 spread over nodes in production, 1 in staging."""
    least = ctx.replicas(2)
    return least, least * 3


def _spread(ctx: PlatformContext, app: str) -> dict[str, Any]:
    """Pods of a component over different nodes (the chart's pod labels app/release); the chart's own
    PodDisruptionBudget (maxUnavailable 1) keeps all but one through a drain."""
    spread = topology_spread({"app": app, "release": RELEASE}) if ctx.ha else []
    return {"maxUnavailable": 1, "topologySpreadConstraints": spread}


def _autoscaled(ctx: PlatformContext, app: str) -> dict[str, Any]:
    least, most = replicas(ctx)
    return {"minReplicas": least, "maxReplicas": most, **_spread(ctx, app)}


def _init() -> dict[str, Any]:
    return {"resources": RESOURCES["init"]}


def object_storage_values(ctx: PlatformContext) -> dict[str, Any]:
    objects = ctx.data.object_storage
    app_config: dict[str, Any] = {
        "object_store": {"enabled": True, "proxy_download": True,
                         "connection": {"secret": OBJECT_STORAGE_SECRET, "key": "connection"}},
        "backups": {"bucket": objects.buckets[BACKUP_BUCKET], "tmpBucket": objects.buckets[BACKUP_TMP_BUCKET]},
    }
    for kind, purpose in OBJECT_BUCKETS.items():
        app_config[kind] = {"enabled": True, "bucket": objects.buckets[purpose]}
    # Diffs of outdated merge request versions go to object storage; current ones stay in the database.
    app_config["externalDiffs"]["when"] = "outdated"
    return app_config


def global_values(ctx: PlatformContext) -> dict[str, Any]:
    pg = ctx.data.postgres
    database = pg.databases["gitlab"]
    dragonfly = ctx.data.dragonfly.serving("gitlab")  # GitLab's own instance (components/data/dragonfly.py)
    return {
        # Community Edition, as the platform promises (MIT-licensed images gitlab-*-ce). GitLab recommends EE without
        # a licence (the same free features, a licence later unlocks paid ones in place); switching to "ee" later
        # keeps the database and repositories.
        "edition": EDITION,
        "hosts": {"domain": ctx.domain, "https": True,
                  "gitlab": {"name": ctx.gateway.hostname("gitlab"), "https": True},
                  "registry": {"name": ctx.gateway.hostname("registry"), "https": True}},
        # Our HTTPRoutes on the shared gateway serve GitLab; nothing of the chart's own.
        "gatewayApi": {"enabled": False, "installEnvoy": False, "configureCertmanager": False},
        "ingress": {"enabled": False, "configureCertmanager": False, "tls": {"enabled": False}},
        "monitoring": {"enabled": True},  # ServiceMonitor/PodMonitor CRDs come with the cluster services
        "initialRootPassword": {"secret": ROOT_PASSWORD_SECRET, "key": "password"},
        "psql": {"host": pg.host, "port": pg.port, "database": database.name, "username": database.owner,
                 "password": {"useSecret": True, "secret": POSTGRES_SECRET, "key": "password"}},
        "redis": {"host": dragonfly.host, "port": dragonfly.port, "database": REDIS_DATABASE,
                  "auth": {"enabled": True, "secret": REDIS_SECRET, "key": "password"}},
        "minio": {"enabled": False},
        "registry": {"bucket": ctx.data.object_storage.buckets[REGISTRY_BUCKET]},  # read by the backups
        "kas": {"enabled": False},
        "pages": {"enabled": False},
        "appConfig": {**object_storage_values(ctx),
                      "initialDefaults": {"signupEnabled": False}},  # accounts are made by admins
        # libpq (Rails, pg_dump) reads this where database.yml names no sslmode: TLS or no connection.
        "extraEnv": {"PGSSLMODE": "require"},
    }


def _metrics(service_monitor: bool = True) -> dict[str, Any]:
    return {"enabled": True, "serviceMonitor": {"enabled": service_monitor}}


def values(ctx: PlatformContext) -> dict[str, Any]:
    """The chart's values, with the suffix of its Jobs' names (job_suffix) derived from the rest."""
    chosen = chart_values(ctx)
    chosen["global"]["job"] = {"nameSuffixOverride": job_suffix(chosen)}
    return chosen


def job_suffix(chosen: dict[str, Any]) -> str:
    """What the chart would do (a hash of its version and values: a new name whenever either changes), but known
    here: a hash of the pinned version and our values. Plain hex, so the chart's `tpl` leaves it as it is."""
    text = json.dumps([charts.GITLAB.version, chosen], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:JOB_SUFFIX_LENGTH]


def toolbox(ctx: PlatformContext) -> Toolbox:
    """Where the toolbox Jobs find this GitLab, with the name of the current release revision's migrations Job
    (charts/gitlab/charts/migrations/templates/_helpers.tpl migrations.jobname: `<release>-migrations-<suffix>`)."""
    return toolbox_of(values(ctx))


def toolbox_of(chosen: dict[str, Any]) -> Toolbox:
    """toolbox, from the chart values already built (values)."""
    return Toolbox(NAMESPACE, RELEASE, f"{RELEASE}-migrations-{chosen['global']['job']['nameSuffixOverride']}")


def chart_values(ctx: PlatformContext) -> dict[str, Any]:
    settings = ctx.settings.gitlab
    proxies = [ctx.cluster.pod_cidr, ctx.cluster.subnet_cidr]  # the gateway's Envoy reaches pods from these
    backup_volume = {"enabled": True, "useGenericEphemeralVolume": True, "storageClass": ctx.storage_class,
                     "size": _double(settings.repository_storage_size)}
    return {
        "global": global_values(ctx),
        # Retired or replaced parts of the chart: none of them runs.
        "installCertmanager": False,
        "nginx-ingress": {"enabled": False},
        "prometheus": {"install": False},
        "gitlab-runner": {"install": False},  # components/platform/gitlab_runner.py
        "traefik": {"install": False},
        "haproxy": {"install": False},
        "upgradeCheck": {"resources": RESOURCES["job"]},
        "shared-secrets": {"resources": RESOURCES["job"]},
        "registry": {
            **_spread(ctx, "registry"),
            "hpa": dict(zip(("minReplicas", "maxReplicas"), replicas(ctx))),
            "storage": {"secret": REGISTRY_STORAGE_SECRET, "key": "config",
                        # Clients cannot reach the in-cluster store: blobs flow through the registry.
                        "redirect": {"disable": ctx.data.object_storage.in_cluster}},
            # Ready without the object store (INSTALLS_BEFORE): a storage probe in /debug/health would hold the
            # release until the store's release is done, and take every registry pod out of its Service in an outage.
            "health": {"storagedriver": {"enabled": False}},
            "resources": RESOURCES["registry"],
            "init": _init(),
            "metrics": _metrics(),
        },
        "gitlab": {
            "webservice": {
                **_autoscaled(ctx, "webservice"),
                "workerProcesses": 2,
                "resources": RESOURCES["webservice"],
                "workhorse": {"resources": RESOURCES["workhorse"], "metrics": _metrics(),
                              "trustedCIDRsForXForwardedFor": proxies},
                "trusted_proxies": proxies,
                "init": _init(),
                "metrics": _metrics(),
            },
            "sidekiq": {
                **_autoscaled(ctx, "sidekiq"),
                "resources": RESOURCES["sidekiq"],
                "init": _init(),
                "metrics": {"enabled": True, "podMonitor": {"enabled": True}},
            },
            "gitaly": {
                "persistence": {"enabled": True, "size": settings.repository_storage_size,
                                "storageClass": ctx.storage_class},
                "resources": RESOURCES["gitaly"],
                "securityContext": GITALY_POD_SECURITY,
                "maxUnavailable": 1,
                "init": _init(),
                "metrics": _metrics(),
            },
            "gitlab-shell": {"enabled": False},  # HTTPS-only gateway: see the module docstring
            "gitlab-exporter": {"resources": RESOURCES["gitlab-exporter"], "init": _init(), "metrics": _metrics()},
            "migrations": {"resources": RESOURCES["migrations"], "init": _init()},
            "toolbox": {
                "resources": RESOURCES["toolbox"],
                "init": _init(),
                "backups": {
                    "objectStorage": {"backend": "s3",
                                      "config": {"secret": BACKUP_STORAGE_SECRET, "key": "config"}},
                    "cron": {"enabled": True, "schedule": settings.backup_schedule,
                             "concurrencyPolicy": "Forbid",  # a slow backup is never cut short by the next
                             # Container images are CI build outputs on replicated object storage; leaving
                             # them out keeps the tarball the size of what cannot be rebuilt.
                             "extraArgs": f"--maximum-backups {BACKUPS_KEPT} --skip registry",
                             "resources": RESOURCES["backup"],
                             "persistence": backup_volume},
                },
            },
        },
    }


def _double(size: str) -> str:
    """Scratch space of a backup: the repositories and objects it stages, then the tarball made of them."""
    return f"{int(size[:-2]) * 2}{size[-2:]}"


# --- objects ------------------------------------------------------------------------------------------
def gitaly_volume(ctx: PlatformContext, after: Sequence[pulumi.Resource]) -> k8s.core.v1.PersistentVolumeClaim:
    """Gitaly's claim, made before its StatefulSet (which adopts a claim of its template's name): the
    repositories survive an uninstall of the chart, and production refuses to delete it."""
    return k8s.core.v1.PersistentVolumeClaim(
        "gitlab-gitaly-repositories",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=GITALY_CLAIM, namespace=NAMESPACE,
                                            labels={"app": "gitaly", "release": RELEASE}),
        spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
            access_modes=["ReadWriteOnce"], storage_class_name=ctx.storage_class,
            resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                requests={"storage": ctx.settings.gitlab.repository_storage_size})),
        opts=ctx.opts(after, protect=True))


def secrets(ctx: PlatformContext, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    """Every credential the chart reads, as Secrets in namespace `gitlab` (none in the Helm values)."""
    opts = ctx.opts(after)
    objects = ctx.data.object_storage
    root = ctx.password("gitlab-root-password")
    _, root_secret = ctx.credentials("gitlab-initial-root-password", ROOT_PASSWORD_SECRET, NAMESPACE,
                                     {"password": root.result}, after, labels=ctx.labels("gitlab", "root"))
    return [
        root_secret,
        ctx.data.postgres.databases["gitlab"].credentials.copy_to("gitlab-postgres", NAMESPACE, opts,
                                                                   name=POSTGRES_SECRET),
        ctx.data.dragonfly.serving("gitlab").users["gitlab"].copy_to("gitlab-redis", NAMESPACE, opts, name=REDIS_SECRET),
        _secret_file(ctx, "gitlab-object-storage", OBJECT_STORAGE_SECRET, "connection", objects, rails_connection,
                     after),
        _secret_file(ctx, "gitlab-registry-storage", REGISTRY_STORAGE_SECRET, "config", objects, registry_storage,
                     after),
        _secret_file(ctx, "gitlab-backup-storage", BACKUP_STORAGE_SECRET, "config", objects, backup_s3cfg, after),
    ]


def install(ctx: PlatformContext, spaces: Namespaces, after: Sequence[pulumi.Resource]) -> Installed:
    ns = [spaces[NAMESPACE]]
    # Plain objects GitLab reads once it installs: the Secrets need the namespace (their values are Pulumi's, not the
    # stores'), the claim the storage too; both are made while the stores come up (issue 22).
    credentials = secrets(ctx, ns)
    volume = gitaly_volume(ctx, [*ns, *ctx.prerequisites.of(("volumes",))])
    # Not atomic: a first install runs the database migrations for many minutes, and rolling back an install
    # mid-migration would leave the database half-migrated; a re-run of `pulumi up` picks up where it stopped.
    chosen = values(ctx)
    gitlab = release(RELEASE, charts.GITLAB, chosen, ctx.opts([*after, *ns, *credentials, volume]),
                     namespace=NAMESPACE, atomic=False, create_namespace=False, timeout=RELEASE_TIMEOUT_SECONDS)
    routes = [ctx.route("gitlab-route", "gitlab", NAMESPACE, WEBSERVICE_SERVICE, WORKHORSE_PORT, [gitlab]),
              ctx.route("gitlab-registry-route", "registry", NAMESPACE, REGISTRY_SERVICE, REGISTRY_PORT, [gitlab])]
    # The OAuth applications of the single sign-on (sso.py): started with the release, they wait for its migrations.
    applications = sso.bootstrap(ctx, toolbox_of(chosen), [*after, *ns], [spaces[NAMESPACE]])
    serves = [*credentials, volume, gitlab, *routes]
    return Installed(urls={"gitlab": ctx.url("gitlab"), "registry": ctx.url("registry")},
                     ready=[*serves, *applications], serves=serves)


__all__ = ["install", "namespaces"]
