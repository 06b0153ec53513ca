"""ScyllaDB through scylla-operator: one ScyllaCluster on the ScyllaDB pool, Scylla Manager for backups and
repairs, password authentication with generated roles, keyspaces that replicate once per rack.

What `install` builds, in order:

1. the operator (chart `scylla-operator`, its CRDs applied from the same tag first: Helm never upgrades
   CRDs), 2 replicas of the controller and of the validating webhook with their PDBs in production-grade
   profiles, on the general nodes; the webhook's certificate comes from cert-manager (in `after`);
2. the nodes: a NodeConfig (perftune; on the local path also the XFS loop device) and, on the local path,
   the ScyllaDB Local CSI Driver with its StorageClass (storage.py);
3. Scylla Manager (chart `scylla-manager`, manager.py);
4. scylla.yaml (authentication, the superuser), the Manager agent's S3 config, the ScyllaCluster with
   its backup and repair tasks (cluster.py), and a ServiceMonitor for its metrics;
5. a Job creating the roles and keyspaces (bootstrap.py), then one giving Manager its CQL role.

Namespaces: `scylla-operator` (the operator, its webhook), `scylla` (the cluster), `scylla-manager`
(fixed by the operator), `local-csi-driver` on the local path. The operator itself creates
`scylla-operator-node-tuning` for the NodeConfig's DaemonSet and perftune Jobs; it is not declared here.
Those pods use the host network (pkg/controller/nodeconfig/resource.go), which NetworkPolicies do not
govern, and the namespace carries no Pod Security label, so the cluster default (privileged) admits them.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import charts
from components.data.context import (CANARY_RETENTION_DAYS, LAYER, DataContext, operator_affinity, pinned_resources,
                                     wait_for)
from components.data.endpoints import ScyllaEndpoint
from components.data.scylladb import bootstrap, cluster, manager, storage
from components.helm import release
from components.services.namespaces import Namespaces, NamespaceSpec, Peer

NAMESPACE = "scylla"
OPERATOR_NAMESPACE = charts.SCYLLA_OPERATOR.namespace  # the operator must run there (install-with-helm.md)
OPERATOR_RELEASE = "scylla-operator"
CQL_PORT = 9042
CQL_SHARD_AWARE_PORT = 19042
CLIENT_PORTS = (CQL_PORT, CQL_SHARD_AWARE_PORT)
METRICS_PORT = 9180
AGENT_METRICS_PORT = 5090
AGENT_API_PORT = 10001  # the Manager agent's REST API: Manager and the operator drive the nodes through it
WEBHOOK_PORT = 5000  # webhook-server's container port (templates/webhookserver.deployment.yaml)
OPERATOR_LABELS = {"app.kubernetes.io/name": "scylla-operator", "app.kubernetes.io/instance": "scylla-operator"}
WEBHOOK_LABELS = {"app.kubernetes.io/name": "webhook-server", "app.kubernetes.io/instance": "webhook-server"}
OPERATOR_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
WEBHOOK_RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
SUPERUSER = "adplatform_admin"
SHARED_ROLE = "adplatform"  # the one login every ad service shared before each got its own: dropped
MANAGER_ROLE = "scylla_manager"  # login only: DESCRIBE SCHEMA WITH INTERNALS needs no data access
ADMIN_SECRET = "scylla-admin-credentials"
MANAGER_ROLE_SECRET = "scylla-manager-role-credentials"
CANARY_SECRET = "scylla-drill-canary"  # the restore drills' canary role (bootstrap.CANARY), read by its CronJob


def namespaces(ctx: DataContext) -> list[NamespaceSpec]:
    operator = Peer(OPERATOR_NAMESPACE, (AGENT_API_PORT,))
    from_manager = Peer(manager.NAMESPACE, (AGENT_API_PORT, *CLIENT_PORTS))
    specs = [
        NamespaceSpec(
            name=OPERATOR_NAMESPACE, pss="baseline", layer=LAYER, webhooks=(WEBHOOK_PORT,),
            why="the chart's operator and webhook containers take no container securityContext (restricted "
                "needs capabilities dropped and no privilege escalation); the pods run non-root with "
                "RuntimeDefault seccomp",
            egress_to=(Peer(NAMESPACE, (AGENT_API_PORT,)),
                       Peer(manager.NAMESPACE, (manager.API_PORT, AGENT_API_PORT)))),
        NamespaceSpec(
            name=NAMESPACE, pss="privileged", layer=LAYER,
            why="the operator's ScyllaDB container runs as root and adds CAP_SYS_NICE (scylladbdatacenter/"
                "resource.go), which baseline forbids",
            ingress_from=(*ctx.clients(CLIENT_PORTS), ctx.monitoring((METRICS_PORT, AGENT_METRICS_PORT)), operator,
                          from_manager),
            egress_to=ctx.object_storage_peer(), egress_world=ctx.backup_egress_world()),
        NamespaceSpec(
            name=manager.NAMESPACE, pss="privileged", layer=LAYER,
            why="Manager's own ScyllaCluster runs ScyllaDB pods, which run as root with CAP_SYS_NICE",
            ingress_from=(Peer(OPERATOR_NAMESPACE, (manager.API_PORT, AGENT_API_PORT)),
                          ctx.monitoring((manager.METRICS_PORT,))),
            egress_to=(Peer(NAMESPACE, (AGENT_API_PORT, *CLIENT_PORTS)),)),
    ]
    if storage.choose(ctx).local:
        specs.append(NamespaceSpec(
            name=storage.CSI_NAMESPACE, pss="privileged", layer=LAYER,
            why="the local CSI driver mounts volumes on the host: a privileged container, host paths and "
                "bidirectional mount propagation"))
    return specs


# --- the operator -----------------------------------------------------------------------------------------

def operator_values(ctx: DataContext) -> dict[str, Any]:
    """Chart `scylla-operator` v1.21.1 values.yaml. Replicas > 1 make the chart add a PDB (minAvailable 1)
    for the controller (leader-elected) and for the webhook server (templates/*.pdb.yaml)."""
    replicas = ctx.operator_replicas()
    return {
        "replicas": replicas,
        "image": {"repository": "docker.io/scylladb", "tag": charts.SCYLLA_OPERATOR_VERSION,
                  "pullPolicy": "IfNotPresent"},
        "logLevel": 2,
        "resources": OPERATOR_RESOURCES,
        "affinity": operator_affinity(OPERATOR_LABELS),
        # Pod level is all the chart takes; the operator needs no root.
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "webhook": {"createSelfSignedCertificate": True},  # a cert-manager Issuer + Certificate
        "webhookServerReplicas": replicas,
        "webhookServerResources": WEBHOOK_RESOURCES,
        "webhookServerAffinity": operator_affinity(WEBHOOK_LABELS),
    }


def install_operator(ctx: DataContext, spaces: Namespaces, after: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    before = [*after, spaces[OPERATOR_NAMESPACE]]
    crds = [k8s.yaml.v2.ConfigFile(f"scylla-operator-crds-{i}", file=url, opts=ctx.opts(before, protect=True))
            for i, url in enumerate(charts.SCYLLA_OPERATOR_CRDS.urls)]
    operator = release(OPERATOR_RELEASE, charts.SCYLLA_OPERATOR, operator_values(ctx), ctx.opts([*before, *crds]),
                       namespace=OPERATOR_NAMESPACE, create_namespace=False)
    return [*crds, operator]


# --- credentials --------------------------------------------------------------------------------------------

def _secret(ctx: DataContext, name: str, username: str, password: pulumi.Output[str],
            after: Sequence[pulumi.Resource]) -> tuple[Any, k8s.core.v1.Secret]:
    return ctx.credentials(name, name, NAMESPACE, {"username": username, "password": password}, depends_on=after,
                           labels=ctx.labels("scylladb"))


def install(ctx: DataContext, spaces: Namespaces, after: Sequence[pulumi.Resource]) -> ScyllaEndpoint:
    settings = ctx.settings.scylladb
    where = ctx.placements["scylladb"]
    resources = pinned_resources(ctx, "scylladb")  # refused before anything is created
    chosen = storage.choose(ctx)
    if chosen.developer_mode:
        pulumi.log.warn(f"ScyllaDB runs in developer mode: {chosen.why}")
    operator = install_operator(ctx, spaces, after)
    in_namespace = [*after, spaces[NAMESPACE]]

    node_config = storage.install_node_config(ctx, chosen, [*after, *operator])
    volumes: list[pulumi.Resource] = [node_config]
    if chosen.local:
        volumes += storage.install_local_csi(ctx, [*after, spaces[storage.CSI_NAMESPACE], node_config])
    manager_release = manager.install(ctx, [*after, spaces[manager.NAMESPACE], *operator])

    # Passwords: generated once, kept in state, protected in production (ctx.password).
    admin_password = ctx.password("scylla-admin-password").result
    consumers = ctx.consumers_of("scylladb")
    passwords = {c.name: ctx.password(f"scylla-{c.name}-password").result for c in consumers}
    manager_password = ctx.password("scylla-manager-role-password").result
    # The crypt salt: 16 characters (the scheme's maximum) of its alphabet, generated once: a new salt would
    # rewrite scylla.yaml. Drawn like every generated secret here (32 characters), then cut to 16.
    salt = ctx.password("scylla-admin-password-salt").result.apply(lambda value: value[:16])
    salted = pulumi.Output.all(admin_password, salt).apply(lambda v: bootstrap.sha512_crypt(v[0], v[1]))
    _, admin_secret = _secret(ctx, ADMIN_SECRET, SUPERUSER, admin_password, in_namespace)
    logins = {name: _secret(ctx, user_secret(name), name, pw, in_namespace) for name, pw in passwords.items()}
    _, manager_role_secret = _secret(ctx, MANAGER_ROLE_SECRET, MANAGER_ROLE, manager_password, in_namespace)
    roles = {name: user_secret(name) for name in passwords}
    drilled = "scylladb" in ctx.drills
    if drilled:  # the restore drills' canary writer (components/data/drills.py): its role, created with the others
        passwords[bootstrap.CANARY] = ctx.password("scylla-drill-canary-password").result
        _, canary_secret = _secret(ctx, CANARY_SECRET, bootstrap.CANARY, passwords[bootstrap.CANARY], in_namespace)
        roles[bootstrap.CANARY] = CANARY_SECRET

    config = k8s.core.v1.ConfigMap(
        "scylla-config", metadata=k8s.meta.v1.ObjectMetaArgs(name=cluster.SCYLLA_CONFIG, namespace=NAMESPACE,
                                                               labels=ctx.labels("scylladb")),
        # The salted hash is not the password, but it is what a brute-force attack needs: kept secret.
        data={"scylla.yaml": pulumi.Output.secret(salted.apply(lambda h: cluster.scylla_yaml(SUPERUSER, h)))},
        opts=ctx.opts(in_namespace))
    inputs: list[pulumi.Resource] = [config]
    if ctx.backup is not None:
        inputs.append(k8s.core.v1.Secret(
            "scylla-agent-config", metadata=k8s.meta.v1.ObjectMetaArgs(
                name=cluster.AGENT_CONFIG, namespace=NAMESPACE, labels=ctx.labels("scylladb")),
            type="Opaque", string_data={"scylla-manager-agent.yaml": cluster.agent_config(ctx.backup.of("scylladb"))},
            opts=ctx.opts(in_namespace)))

    scylla = ctx.custom_resource(
        "scylla-cluster", "scylla.scylladb.com/v1", "ScyllaCluster", cluster.CLUSTER, NAMESPACE,
        cluster.cluster_spec(ctx, chosen, resources), ctx.labels("scylladb"),
        [*in_namespace, *operator, *volumes, *inputs], protect=True,
        annotations=wait_for("condition=Available", cluster.READY_TIMEOUT_SECONDS))
    monitor = ctx.custom_resource(
        "scylla-service-monitor", "monitoring.coreos.com/v1", "ServiceMonitor", cluster.CLUSTER, NAMESPACE,
        cluster.service_monitor_spec(), ctx.labels("scylladb", "metrics"), in_namespace)

    factor = cluster.replication_factor(where)
    grants = {c.name: c.keyspace for c in consumers}
    keyspaces = bootstrap.keyspaces_cql(settings.keyspaces, cluster.DATACENTER, factor, grants, retired=[SHARED_ROLE])
    job_secrets = [admin_secret, *(secret for _, secret in logins.values()), manager_role_secret]
    if drilled:
        keyspaces += bootstrap.canary_cql(cluster.DATACENTER, factor, CANARY_RETENTION_DAYS * 86400)
        job_secrets.append(canary_secret)
    job_passwords = [*passwords.values(), manager_password]
    # A restore brings the keyspaces with the snapshot's schema, and Manager's schema restore refuses a keyspace
    # that exists (scylla-manager v3.10.1 pkg/service/restore/schema_worker.go runs DESC SCHEMA's CREATE
    # statements as they are): the first run creates the roles only, a second one the keyspaces' replication
    # and grants once the restore is done.
    restoring = settings.restore is not None and ctx.backup is not None
    schema_job = _schema_job(ctx, "scylla-bootstrap", "" if restoring else keyspaces, roles, job_secrets,
                             job_passwords, [*in_namespace, scylla])
    registration = manager.install_credentials(ctx, MANAGER_ROLE, manager_password,
                                               [*after, spaces[manager.NAMESPACE], manager_release, scylla, schema_job])
    restored: list[pulumi.Resource] = []
    if restoring:
        restored = manager.install_restore(ctx, cluster.backup_location(ctx.backup.of("scylladb")), registration)
        restored.append(_schema_job(ctx, "scylla-keyspaces", keyspaces, roles, job_secrets, job_passwords,
                                    [*in_namespace, scylla, *restored]))

    return ScyllaEndpoint(
        hosts=[client_host()], port=CQL_PORT, datacenter=cluster.DATACENTER, keyspaces=list(settings.keyspaces),
        replication_factor=factor, users={name: creds for name, (creds, _) in logins.items()}, namespace=NAMESPACE,
        pod_labels=dict(cluster.POD_LABELS), ready=[scylla, schema_job, monitor, *registration, *restored])


def _schema_job(ctx: DataContext, name: str, keyspaces: str, roles: Mapping[str, str],
                secrets: Sequence[k8s.core.v1.Secret], passwords: Sequence[pulumi.Output[str]],
                after: Sequence[pulumi.Resource]) -> k8s.batch.v1.Job:
    """bootstrap.sh as the superuser: `roles` (role -> the Secret with its password: the consumers', the drills'
    canary's) and the manager's, then `keyspaces` (CQL: the keyspaces and each role's grants)."""
    _, job = bootstrap.run_once(
        ctx, name, NAMESPACE, bootstrap.cqlsh_image(),
        {"bootstrap.sh": bootstrap.script("bootstrap.sh"), "roles.txt": bootstrap.roles_file(list(roles)),
         "keyspaces.cql": keyspaces},
        "bootstrap.sh", env=[
            {"name": "CQL_HOST", "value": client_host()}, {"name": "CQL_PORT", "value": str(CQL_PORT)},
            bootstrap.secret_env("ADMIN_USERNAME", ADMIN_SECRET, "username"),
            bootstrap.secret_env("ADMIN_PASSWORD", ADMIN_SECRET, "password"),
            *(bootstrap.secret_env(f"ROLE_PASSWORD_{i}", secret, "password")
              for i, secret in enumerate(roles.values())),
            bootstrap.secret_env("MANAGER_USERNAME", MANAGER_ROLE_SECRET, "username"),
            bootstrap.secret_env("MANAGER_PASSWORD", MANAGER_ROLE_SECRET, "password")],
        secrets=passwords, depends_on=[*after, *secrets], mount=bootstrap.BOOTSTRAP_MOUNT)
    return job


def user_secret(consumer: str) -> str:
    """The Secret in the scylla namespace with a consumer's own role and password (it copies it)."""
    return f"scylla-user-{consumer}"


def client_host() -> str:
    """The operator's identity Service `<cluster>-client` (pkg/naming/names.go IdentityServiceName)."""
    return f"{cluster.CLUSTER}-client.{NAMESPACE}.svc"


__all__ = ["install", "namespaces"]
