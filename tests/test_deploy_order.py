"""The first deploy's ordering (issue 22): each resource waits for what it needs at apply time, not for a whole
layer below it. Checked on the recorded production run: the waits removed stay removed, the real ones stay."""

from __future__ import annotations

import pytest

from tools.mockrun import Run

RELEASE = "kubernetes:helm.sh/v3:Release"
NAMESPACE = "kubernetes:core/v1:Namespace"
STORAGE = {"hcloud-csi", "storage-class-hcloud-volumes", "storage-class-hcloud-volumes-xfs"}


def deps(run: Run, name: str, type_: str) -> set[str]:
    return {run.by_urn(u).name for u in run.named(name, type_).dependencies}


def test_monitoring_crds_wait_for_nothing_but_the_cluster_api(production):
    # A chart of CRDs only: no pods (no CNI needed), no volumes, no namespace of ours. Its provider is built from
    # the kubeconfig, read after the first server answers /readyz, so the API is there when it applies.
    assert deps(production, "prometheus-operator-crds", RELEASE) == set()
    provider = production.by_urn(production.named("prometheus-operator-crds", RELEASE).provider.rsplit("::", 1)[0])
    assert provider.name == "k8s"


def test_cert_manager_waits_for_network_policies_and_crds_not_storage(production):
    got = deps(production, "cert-manager", RELEASE)
    assert not got & STORAGE  # no PVCs: the CSI driver and storage classes are not its business
    # Real: the pod network (its pods), its namespace's policies, the ServiceMonitor's CRD, the Gateway API CRDs.
    assert {"cilium", "ns-cert-manager", "netpol-cert-manager-default-deny",
            "netpol-cert-manager-allow-api-server-webhooks", "prometheus-operator-crds",
            "gateway-api-standard-install"} <= got


def test_issuers_still_wait_for_cert_manager(production):
    assert "cert-manager" in deps(production, "cluster-issuer-letsencrypt-production",
                                  "kubernetes:cert-manager.io/v1:ClusterIssuer")


def test_upper_layers_namespaces_wait_for_the_cluster_not_the_cluster_services(production):
    # A namespace and its policies need the API and Cilium (CiliumNetworkPolicy is Cilium's CRD), not
    # cert-manager, issuers, storage or the monitoring CRDs.
    for ns in ("ns-cnpg-system", "ns-gitlab"):
        got = deps(production, ns, NAMESPACE)
        assert "cilium" in got
        assert not got & {"cert-manager", "cluster-issuer-letsencrypt-production", "prometheus-operator-crds",
                          *STORAGE}


def test_workloads_of_upper_layers_still_wait_for_the_cluster_services(production):
    # The stores and platform releases still need what they render: certificates, monitors, volumes.
    assert {"cert-manager", "prometheus-operator-crds", "storage-class-hcloud-volumes"} <= deps(production, "gitlab",
                                                                                                 RELEASE)
    # The backup plugin: cert-manager for its gRPC certificates.
    assert "cert-manager" in deps(production, "plugin-barman-cloud", RELEASE)


def reaches(run: Run, name: str, type_: str) -> set[str]:
    """Names of everything the resource waits for, directly or through what it waits for."""
    seen: set[str] = set()
    todo = list(run.named(name, type_).dependencies)
    while todo:
        urn = todo.pop()
        if urn not in seen:
            seen.add(urn)
            todo += run.by_urn(urn).dependencies
    return {run.by_urn(u).name for u in seen}


def test_cloudnative_pg_installs_alongside_cert_manager(production):
    # Issue 22: the operator mounts no volume and makes its own webhook certificate (no cert-manager annotation in
    # the chart's webhook configurations), so it waits for its namespaces' policies and its PodMonitor's CRD only.
    got = deps(production, "cloudnative-pg", RELEASE)
    assert {"ns-cnpg-system", "netpol-cnpg-system-default-deny", "netpol-cnpg-system-allow-api-server-webhooks",
            "netpol-cnpg-system-allow-kubernetes-api", "netpol-postgres-default-deny",
            "prometheus-operator-crds"} <= got
    assert not got & {"cert-manager", "cluster-issuer-letsencrypt-production", *STORAGE}
    assert "cilium" in reaches(production, "cloudnative-pg", RELEASE)  # its pods need the pod network


def test_postgres_objects_still_wait_for_their_operator_plugin_and_storage(production):
    # CRDs and webhooks before the CRs: the Cluster after the operator and the plugin (and the ObjectStore, the
    # plugin's CR); its volumes still need the CSI driver and the storage classes, now through the plugin.
    cluster = "kubernetes:postgresql.cnpg.io/v1:Cluster"
    assert {"cloudnative-pg", "plugin-barman-cloud", "postgres-object-store"} <= deps(production, "postgres-cluster",
                                                                                       cluster)
    assert "plugin-barman-cloud" in deps(production, "postgres-object-store",
                                         "kubernetes:barmancloud.cnpg.io/v1:ObjectStore")
    assert STORAGE <= reaches(production, "postgres-cluster", cluster)
    database = "kubernetes:postgresql.cnpg.io/v1:Database"
    assert {"cloudnative-pg", "ns-postgres"} <= deps(production, "postgres-database-gitlab", database)


JOB = "kubernetes:batch/v1:Job"


@pytest.mark.parametrize("job", ["oauth-bootstrap", "runner-bootstrap"])
def test_toolbox_jobs_run_during_gitlabs_install(production, job):
    # Issue 22: a toolbox Job execs into GitLab's toolbox pod, which runs early in the install (no init container of
    # it waits for the migrations); the Job waits for the migrations Job itself (toolbox.sh), so nothing of it waits
    # for GitLab's release: its Rails boot overlaps webservice's. Its ServiceAccount, Roles, RoleBindings and scripts
    # are plain objects in existing namespaces.
    assert "gitlab" not in reaches(production, job, JOB)
    for type_ in ("kubernetes:core/v1:ServiceAccount", "kubernetes:core/v1:ConfigMap"):
        assert "gitlab" not in reaches(production, job, type_)
    binding = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
    assert "gitlab" not in reaches(production, f"{job}-gitlab-binding", binding)
    assert {f"{job}-gitlab-binding", job} <= deps(production, job, JOB)  # RBAC and scripts before the Job


def test_runner_registers_after_gitlab_and_starts_after_its_token(production):
    assert "gitlab" not in reaches(production, "gitlab-runner-token", "kubernetes:core/v1:Secret")
    assert "gitlab-runner-token" in deps(production, "runner-bootstrap", JOB)
    assert {"runner-bootstrap", "gitlab-runner-token", "gitlab"} <= deps(production, "gitlab-runner", RELEASE)


# --- issue 22, second pass: each store waits for what it renders; each release for its own namespace --------------

ISSUERS = {"cert-manager", "cluster-issuer-letsencrypt-production", "cluster-issuer-letsencrypt-staging"}
DRAGONFLY = "kubernetes:dragonflydb.io/v1alpha1:Dragonfly"


def test_dragonfly_operator_installs_alongside_cert_manager(production):
    # The dragonfly-operator chart (v1.6.1) has no webhook, no Certificate and no monitor by default, and mounts no
    # volume: it waits for its namespaces and their policies only.
    got = deps(production, "dragonfly-operator", RELEASE)
    assert {"ns-dragonfly-operator", "netpol-dragonfly-operator-default-deny",
            "netpol-dragonfly-operator-allow-kubernetes-api"} <= got
    assert not got & {*ISSUERS, *STORAGE, "prometheus-operator-crds"}
    assert "cilium" in reaches(production, "dragonfly-operator", RELEASE)


@pytest.mark.parametrize("instance", ["dragonfly", "dragonfly-gitlab"])
def test_dragonfly_instances_wait_for_their_operator_volumes_and_monitor_crds_not_cert_manager(production, instance):
    got = deps(production, instance, DRAGONFLY)
    assert {"dragonfly-operator", "prometheus-operator-crds", *STORAGE} <= got  # CRD, snapshot volumes, PodMonitor
    assert f"netpol-{instance}-default-deny" in got
    assert not reaches(production, instance, DRAGONFLY) & ISSUERS  # no TLS anywhere in DragonflyDB here


@pytest.mark.parametrize("name, type_, certificates", [
    ("scylla-operator", RELEASE, True),  # its webhook's certificate is cert-manager's
    ("redpanda-cluster", "kubernetes:cluster.redpanda.com/v1alpha2:Redpanda", True),  # TLS from our cert-manager CA
    ("plugin-barman-cloud", RELEASE, True),  # its gRPC certificates
    ("seaweedfs", RELEASE, False),  # enableSecurity off: the chart renders no Certificate
    ("clickhouse-installation", "kubernetes:clickhouse.altinity.com/v1:ClickHouseInstallation", False),
    ("dragonfly-gitlab", DRAGONFLY, False),
])
def test_stores_wait_for_cert_manager_exactly_when_they_render_certificates(production, name, type_, certificates):
    assert ("cert-manager" in reaches(production, name, type_)) is certificates


def test_every_store_says_what_it_renders():
    from components.data import NEEDS, STORES
    assert set(NEEDS) == {*STORES, "object_storage"}  # a new store must decide, not inherit the whole layer


def test_cluster_services_releases_wait_for_their_own_namespaces_policies_not_every_namespace(production):
    # cert-manager's pods talk once its namespace's policies (allows included) exist; other namespaces' policies
    # (the gateway's, the teams') are nothing to it.
    got = deps(production, "cert-manager", RELEASE)
    assert {"ns-cert-manager", "netpol-cert-manager-default-deny", "netpol-cert-manager-allow-egress-internet"} <= got
    others = {n for n in got if n.startswith(("ns-", "netpol-", "quota-", "limits-"))
              and not n.startswith(("ns-cert-manager", "netpol-cert-manager-"))}
    assert others == set()
    for release, namespace in (("kured", "kured"), ("velero", "velero"), ("openbao", "openbao")):
        got = deps(production, release, RELEASE)
        assert {f"ns-{namespace}", f"netpol-{namespace}-default-deny"} <= got
        assert not {n for n in got if n.startswith(("netpol-gateway-", "netpol-cert-manager-", "netpol-ads-"))}


def test_gitlab_waits_for_its_own_stores_not_the_ad_services_cache(production):
    got = deps(production, "gitlab", RELEASE)
    # The password Secrets of its own DragonflyDB login and of its database, the object store's connection Secrets
    # (none of the stores themselves: below).
    assert {"gitlab-postgres", "gitlab-redis", "gitlab-object-storage"} <= got
    # Not the ad services' instance, its ACL users, nor the operator's disruption budget.
    assert not reaches(production, "gitlab", RELEASE) & {"dragonfly", "dragonfly-acl", "dragonfly-user-ad-serving",
                                                         "dragonfly-operator-pdb"}


def test_runner_waits_for_gitlab_and_its_token_not_the_sso_applications(production):
    got = deps(production, "gitlab-runner", RELEASE)
    assert {"gitlab", "gitlab-route", "runner-bootstrap", "gitlab-runner-token"} <= got  # registers at GitLab's URL
    assert "oauth-bootstrap" not in reaches(production, "gitlab-runner", RELEASE)
    assert "oauth-bootstrap" not in reaches(production, "runner-bootstrap", JOB)


@pytest.mark.parametrize("tool", ["mlflow", "kubeflow"])
def test_sso_proxies_start_after_gitlab_serves(production, tool):
    # oauth2-proxy v7.15.3 reads GitLab's OIDC discovery document when it starts and exits without it: its atomic
    # release (900 s) must not start before GitLab's (up to 1800 s) answers. The GitLab applications are not needed
    # for that (they are for the first login), so the proxy does not wait for the Job creating them.
    proxy = f"{tool}-oauth2-proxy"
    assert {"gitlab", "gitlab-route"} <= deps(production, proxy, RELEASE)
    assert "oauth-bootstrap" not in reaches(production, proxy, RELEASE)


@pytest.mark.parametrize("release", ["mlflow", "kube-prometheus-stack", "jupyterhub", "airflow"])
def test_tools_that_discover_gitlab_at_first_login_do_not_wait_for_it(production, release):
    # MLflow itself sits behind its proxy; Grafana and JupyterHub are given GitLab's endpoints and Airflow's OAuth
    # client loads the discovery document at the first sign-in: none of them needs GitLab to install.
    assert "gitlab" not in reaches(production, release, RELEASE)


# --- issue 22, third pass: PostgreSQL is awaited; what needs neither it nor Let's Encrypt stops waiting for them -----

CLUSTER = "kubernetes:postgresql.cnpg.io/v1:Cluster"
DATABASE = "kubernetes:postgresql.cnpg.io/v1:Database"


def annotations(run: Run, name: str, type_: str) -> dict[str, str]:
    return run.named(name, type_).inputs["metadata"].get("annotations") or {}


def test_pulumi_waits_until_postgres_is_ready_before_the_deploy_ends(production):
    # The operator's Ready condition (phase "Cluster in healthy state": every instance up), for as long as a first
    # bootstrap takes: `pulumi up` ends with every replica in place; each Database until the primary's instance
    # manager applied it (no condition on a Database), as long as the primary's bootstrap may take.
    assert annotations(production, "postgres-cluster", CLUSTER) == {
        "pulumi.com/waitFor": "condition=Ready", "pulumi.com/timeoutSeconds": "900"}
    databases = [r for r in production.resources if r.type == DATABASE]
    assert {r.name for r in databases} >= {"postgres-database-gitlab", "postgres-database-airflow"}
    for database in databases:
        assert annotations(production, database.name, DATABASE) == {
            "pulumi.com/waitFor": "jsonpath={.status.applied}=true", "pulumi.com/timeoutSeconds": "900"}
    # The drill's scratch Cluster is no Pulumi resource (its CronJob applies it at run time): nothing awaits it.
    assert [r.name for r in production.resources if r.type == CLUSTER] == ["postgres-cluster"]


def test_postgres_consumers_wait_for_their_database_on_the_primary_not_the_replicas(production):
    # Airflow's migrations need the primary and its own database, applied (awaited): not the Cluster's Ready (the
    # replicas join meanwhile), nor another consumer's database.
    got = deps(production, "airflow", RELEASE)
    assert "postgres-database-airflow" in got
    assert not reaches(production, "airflow", RELEASE) & {"postgres-cluster", "postgres-database-gitlab",
                                                          "postgres-scheduled-backup"}


def test_gitlab_installs_while_postgres_bootstraps_its_chart_waiting_for_the_database(production):
    # GitLab's chart waits for its database itself (its migrations Job and pods run wait-for-deps; components/platform/
    # gitlab.py INSTALLS_BEFORE): the release no longer waits for the Database, the Cluster, nor what they wait
    # for (the backup plugin and its object store), so it installs while CloudNativePG bootstraps.
    reached = reaches(production, "gitlab", RELEASE)
    assert not reached & {"postgres-database-gitlab", "postgres-cluster", "postgres-object-store",
                          "plugin-barman-cloud"}, reached & {"postgres-database-gitlab", "postgres-cluster"}
    # What its pods read before the database exists stays a dependency: the owner's password Secret, Redis's password
    # Secret; the toolbox Jobs and the runner still follow the release.
    assert {"gitlab-postgres", "gitlab-redis", "ns-gitlab"} <= deps(production, "gitlab", RELEASE)
    # The toolbox Jobs start with the release (on what it starts on), the runner's release still follows it.
    assert "ns-gitlab" in deps(production, "oauth-bootstrap", JOB)
    assert "gitlab" in deps(production, "gitlab-runner", RELEASE)


def test_a_postgres_database_is_applied_with_its_cluster_not_after_its_readiness(production):
    # Its await covers the primary's bootstrap: it starts when the Cluster does (on what the Cluster waits for: the
    # operator's webhooks, the plugin, the object store, the role Secrets), not once every replica is ready.
    for database in ("postgres-database-gitlab", "postgres-database-airflow"):
        got = deps(production, database, DATABASE)
        assert "postgres-cluster" not in reaches(production, database, DATABASE)
        assert got == deps(production, "postgres-cluster", CLUSTER)


def test_destroy_removes_every_postgres_database_while_its_operator_still_runs(production):
    # Without the edge to the Cluster, `pulumi destroy` may delete a Database and the Cluster at once. The Database's
    # finalizer is then released by the primary or, were the Cluster gone first, by the operator (it strips it from
    # every Database of a deleted Cluster): the operator must outlive every Database, i.e. each depends on it.
    for database in (r.name for r in production.resources if r.type == DATABASE):
        assert "cloudnative-pg" in deps(production, database, DATABASE), database


def test_the_model_prices_the_postgres_bootstrap_one_instance_after_another():
    from tests.runs import stack_plan
    from tools.plan import timing
    plan = stack_plan("production")
    cluster = next(r for r in plan["resources"] if r["type"] == CLUSTER)
    assert cluster["inputs"]["spec"]["instances"] == 3
    assert timing.duration(cluster) == 3 * timing.AWAITED[CLUSTER]


def test_the_model_prices_a_database_as_the_primarys_bootstrap_and_starts_gitlab_before_the_replicas():
    from tests.runs import stack_plan
    from tools.plan import timing
    plan = stack_plan("production")
    database = next(r for r in plan["resources"] if r["type"] == DATABASE and r["name"] == "postgres-database-gitlab")
    # Not cheaper for hiding the wait: the primary's own bootstrap (one instance's figure), one retry interval of its
    # instance manager (30 s), one reconcile (5 s).
    assert timing.duration(database) == timing.AWAITED[CLUSTER] + 30 + 5
    resources, finish, _ = timing.schedule(plan)

    def urn(name: str, type_: str) -> str:
        [found] = [u for u, r in resources.items() if r["name"] == name and r["type"] == type_]
        return found
    gitlab = urn("gitlab", RELEASE)
    # GitLab's install (600 s) starts before its database is applied; it is ready no earlier than the database plus
    # its migrations and a Rails boot (timing.AFTER_STORES), and before the Cluster's replicas are all ready.
    gitlab_start = finish[gitlab] - timing.duration(resources[gitlab])
    database_done = finish[urn("postgres-database-gitlab", DATABASE)]
    assert gitlab_start < database_done and finish[gitlab] >= database_done + 373 + 60
    assert (DATABASE, ("global", "psql", "database"), 373 + 60) in timing.AFTER_STORES["gitlab"]


def test_the_model_ends_gitlab_no_earlier_than_its_database_plus_the_migrations(monkeypatch):
    # The release starts without its database, but its migrations cannot finish before the database exists: GitLab is
    # ready at max(its start + 600 s, the database applied + 433 s). With a database slow enough, the second wins and
    # the critical path names it.
    from tests.runs import stack_plan
    from tools.plan import timing
    plan = stack_plan("production")
    monkeypatch.setitem(timing.AWAITED, DATABASE, 900)
    resources, finish, via = timing.schedule(plan)
    [gitlab] = [u for u, r in resources.items() if r["name"] == "gitlab" and r["type"] == RELEASE]
    [database] = [u for u, r in resources.items() if r["name"] == "postgres-database-gitlab"]
    assert finish[gitlab] == finish[database] + 433 and via[gitlab] == database
    path = timing.estimate(plan)["criticalPath"]
    assert {"name": "gitlab", "type": RELEASE, "seconds": 433, "after": "postgres-database-gitlab"} in path
    assert [s["name"] for s in path].index("postgres-database-gitlab") < [s["name"] for s in path].index("gitlab")
    from tools.plan import timeline  # the timeline draws the same step
    row = next(r for r in timeline.rows(plan)["critical"] if r["name"] == "gitlab")
    assert row["seconds"] == 433 == row["end"] - row["start"]


@pytest.mark.parametrize("job", ["oauth-bootstrap", "runner-bootstrap"])
def test_the_model_ends_a_toolbox_job_no_earlier_than_gitlabs_migrations_plus_a_rails_boot(job):
    # The Job no longer follows GitLab's release, but its script waits for the migrations Job, then boots Rails in the
    # toolbox: in production the migrations wait for the database (timing.AFTER_RELEASE), and the path says so.
    from tests.runs import stack_plan
    from tools.plan import timing
    resources, finish, via = timing.schedule(stack_plan("production"))
    [database] = [u for u, r in resources.items() if r["name"] == "postgres-database-gitlab"]
    [the_job] = [u for u, r in resources.items() if r["name"] == job and r["type"] == JOB]
    assert finish[the_job] == finish[database] + 373 + 60 and via[the_job] == database
    assert timing.step(resources, finish, via, the_job) == {
        "name": job, "type": JOB, "seconds": 433, "after": "postgres-database-gitlab"}


def _resource(name: str, type_: str, inputs: dict, dependencies: tuple[str, ...] = ()) -> dict:
    return {"urn": name, "type": type_, "name": name, "custom": True, "inputs": inputs,
            "dependencies": list(dependencies), "provider": "", "parent": ""}


def _toolbox_job(name: str, namespace: str) -> dict:
    env = [{"name": "GITLAB_NAMESPACE", "value": namespace},
           {"name": "MIGRATIONS_JOB", "value": "gitlab-migrations-0a"}]
    return _resource(name, JOB, {"spec": {"template": {"spec": {"containers": [{"env": env}]}}}})


def test_the_model_ends_a_toolbox_job_no_earlier_than_the_migrations_from_gitlabs_start():
    # Without a store to wait for, the migrations start with the release: a Job started earlier still ends no earlier
    # than the release's start plus the migrations plus its own run; a Job naming another GitLab is not held by it.
    from tools.plan import timing
    plan = {"resources": [
        _resource("tune-slow", "command:remote:Command", {}),
        _resource("gitlab", RELEASE, {"chart": "gitlab", "name": "gitlab", "namespace": "gitlab", "values": {}},
                  ("tune-slow",)),
        _toolbox_job("runner-bootstrap", "gitlab"), _toolbox_job("oauth-bootstrap", "elsewhere")]}
    resources, finish, via = timing.schedule(plan)
    assert finish["gitlab"] == 40 + 600
    assert finish["runner-bootstrap"] == 40 + 373 + 60 and via["runner-bootstrap"] == "tune-slow"
    assert finish["oauth-bootstrap"] == 60 and via["oauth-bootstrap"] is None


def test_the_backup_plugin_waits_for_cert_manager_not_lets_encrypt_nor_the_operator(production):
    # Its certificates come from the chart's own self-signed Issuer; its chart renders no CloudNativePG resource and
    # its controller watches its own ObjectStore only; the operator discovers it whenever its Service appears.
    got = deps(production, "plugin-barman-cloud", RELEASE)
    assert {"cert-manager", "ns-cnpg-system"} <= got
    assert not got & {"cloudnative-pg", "cluster-issuer-letsencrypt-production", "cluster-issuer-letsencrypt-staging"}
    # The Cluster still waits for both (its CRDs and webhooks; the plugin it archives WAL through).
    assert {"cloudnative-pg", "plugin-barman-cloud"} <= deps(production, "postgres-cluster", CLUSTER)


def test_no_later_layer_waits_for_the_lets_encrypt_issuers(production):
    # They sign the shared gateway's certificates only: the stores and the platform wait for cert-manager itself.
    acme = {"cluster-issuer-letsencrypt-production", "cluster-issuer-letsencrypt-staging"}
    for name, type_ in (("gitlab", RELEASE), ("scylla-operator", RELEASE), ("plugin-barman-cloud", RELEASE),
                        ("redpanda-cluster", "kubernetes:cluster.redpanda.com/v1alpha2:Redpanda"),
                        ("openbao", RELEASE)):
        assert not reaches(production, name, type_) & acme, name
    assert "cert-manager" in reaches(production, "scylla-operator", RELEASE)


def test_gitlabs_secrets_and_repository_claim_do_not_wait_for_its_stores(production):
    pvc = deps(production, "gitlab-gitaly-repositories", "kubernetes:core/v1:PersistentVolumeClaim")
    assert {"ns-gitlab", *STORAGE} <= pvc  # the claim binds on the provider's storage
    secret = "kubernetes:core/v1:Secret"
    for name in ("gitlab-initial-root-password", "gitlab-postgres", "gitlab-redis", "gitlab-object-storage"):
        assert "ns-gitlab" in deps(production, name, secret)
    stores = {"postgres-database-gitlab", "dragonfly-gitlab", "seaweedfs", "cert-manager"}
    waited_for_by_its_chart = {"postgres-database-gitlab", "seaweedfs", "dragonfly-gitlab"}
    for name, type_ in (("gitlab-gitaly-repositories", "kubernetes:core/v1:PersistentVolumeClaim"),
                        ("gitlab-postgres", secret), ("gitlab-object-storage", secret)):
        assert not reaches(production, name, type_) & stores, name
    # GitLab itself still waits for cert-manager, not its database nor its Redis, which its pods wait for themselves,
    # nor the object store, which nothing of its install reads (tests below).
    assert {*stores - waited_for_by_its_chart, "gitlab-gitaly-repositories",
            "gitlab-postgres"} <= deps(production, "gitlab", RELEASE)


# --- issue 22, fourth pass: GitLab installs while the object store does ----------------------------------------------

def test_gitlab_installs_without_waiting_for_the_object_store_but_with_its_connection_secrets(production):
    # Nothing of GitLab's install reads or writes an object (components/platform/gitlab.py INSTALLS_BEFORE): the
    # release waits for the Secrets its pods mount (Pulumi's, with the store's keys), not for SeaweedFS's release
    # (and the post-install hook in it that creates the buckets), nor anything only that release waits for.
    secret = "kubernetes:core/v1:Secret"
    got = deps(production, "gitlab", RELEASE)
    assert {"gitlab-object-storage", "gitlab-registry-storage", "gitlab-backup-storage"} <= got
    assert "seaweedfs" not in reaches(production, "gitlab", RELEASE)
    for name in ("gitlab-object-storage", "gitlab-registry-storage", "gitlab-backup-storage"):
        assert "seaweedfs" not in reaches(production, name, secret), name
    # Which holds only because the registry's readiness does not probe the store (chart values `health`).
    registry = production.named("gitlab", RELEASE).inputs["values"]["registry"]
    assert registry["health"] == {"storagedriver": {"enabled": False}}


@pytest.mark.parametrize("name", ["loki", "tempo", "mlflow", "airflow"])
def test_other_object_store_consumers_still_wait_for_the_object_store(production, name):
    # The exception is GitLab's alone (a module's INSTALLS_BEFORE), not every consumer's: these were not examined.
    assert "seaweedfs" in deps(production, name, RELEASE)


# --- issue 22, fifth pass: GitLab installs while its Redis (its DragonflyDB instance) starts ----------------------------

def test_gitlab_installs_without_waiting_for_its_redis_but_with_its_password_secret(production):
    # Nothing of GitLab's chart waits for Redis before it starts, and its pods read Pulumi's password copy
    # (components/platform/gitlab.py INSTALLS_BEFORE): the release waits for that Secret, not for the instance, its
    # operator, or the instance's own Secrets and monitors.
    got = deps(production, "gitlab", RELEASE)
    assert "gitlab-redis" in got
    assert not reaches(production, "gitlab", RELEASE) & {
        "dragonfly-gitlab", "dragonfly-operator", "dragonfly-gitlab-auth", "dragonfly-gitlab-read",
        "dragonfly-gitlab-metrics"}
    assert "dragonfly-gitlab" not in reaches(production, "gitlab-redis", "kubernetes:core/v1:Secret")
    # GitLab's values still name that instance, and the instance still waits for what it needs itself.
    redis = production.named("gitlab", RELEASE).inputs["values"]["global"]["redis"]
    assert redis["host"].startswith("dragonfly.dragonfly-gitlab.") and redis["auth"]["secret"] == "gitlab-redis"
    dragonfly = "kubernetes:dragonflydb.io/v1alpha1:Dragonfly"
    assert {"dragonfly-operator", "dragonfly-gitlab-auth", "storage-class-hcloud-volumes"} <= deps(
        production, "dragonfly-gitlab", dragonfly)


def test_gitlab_still_waits_for_the_ad_services_redis_consumers_do():
    # The exception is GitLab's (its module's INSTALLS_BEFORE), not every DragonflyDB consumer's.
    from components.platform import MODULES
    others = [name for name, module in MODULES.items() if name != "gitlab"
              and "dragonfly" in getattr(module, "INSTALLS_BEFORE", ())]
    assert others == []


def test_the_model_ends_gitlab_no_earlier_than_its_redis_plus_the_migrations(monkeypatch):
    # Installed before its Redis serves, GitLab is still not ready before it: max(its start + 600 s, the instance
    # Ready + the migrations and a Rails boot). With an instance slow enough, the second wins and the path names it.
    from tests.runs import stack_plan
    from tools.plan import timing
    plan = stack_plan("production")
    monkeypatch.setitem(timing.AWAITED, timing.DRAGONFLY, 1500)
    resources, finish, via = timing.schedule(plan)
    [gitlab] = [u for u, r in resources.items() if r["name"] == "gitlab" and r["type"] == RELEASE]
    [redis] = [u for u, r in resources.items() if r["name"] == "dragonfly-gitlab" and r["type"] == timing.DRAGONFLY]
    assert finish[gitlab] == finish[redis] + 433 and via[gitlab] == redis
    path = timing.estimate(plan)["criticalPath"]
    assert {"name": "gitlab", "type": RELEASE, "seconds": 433, "after": "dragonfly-gitlab"} in path
    # The ad services' shared instance is not GitLab's: it never holds GitLab back.
    assert (timing.DRAGONFLY, ("global", "redis", "host"), 433) in timing.AFTER_STORES["gitlab"]
    [shared] = [u for u, r in resources.items() if r["name"] == "dragonfly" and r["type"] == timing.DRAGONFLY]
    assert shared not in {store for store, _ in timing._after_stores(resources)[gitlab]}


# The modelled first deploy (tools/plan/timing.py) of production, measured after the cuts above: 18m59s, K3s Ready at
# 4m53s (19m56s while the toolbox Jobs waited for GitLab's whole release; 3 s of it the SSH host-key read before a
# node's first command; 20m32s while GitLab waited for its Redis, 20m59s while it waited for the object store, 22m40s
# while it waited for its database, 20m20s before PostgreSQL's bootstrap was awaited and priced, 23m13s while GitLab
# waited for every replica, 21m43s before the Jobs Pulumi waits for were priced at their run). Deterministic (a model,
# not a clock): a change that brings a removed wait back fails here.
CRITICAL_PATH_SECONDS = 18 * 60 + 59


def test_every_job_is_priced_at_its_run_and_the_toolbox_jobs_at_a_rails_boot():
    # pulumi-kubernetes waits for a Job to complete: a Job is its pod's run, not one API call; the runner's and the
    # SSO applications' Jobs run `gitlab-rails runner` in GitLab's toolbox, which boots Rails (about a minute).
    from tests.runs import stack_plan
    from tools.plan import timing
    jobs = {r["name"]: timing.duration(r) for r in stack_plan("production")["resources"]
            if r["type"] == "kubernetes:batch/v1:Job"}
    assert {"oauth-bootstrap", "runner-bootstrap"} <= set(jobs)
    assert all(seconds >= 20 for seconds in jobs.values()), jobs
    assert jobs["oauth-bootstrap"] >= 50 and jobs["runner-bootstrap"] >= 50, jobs


def test_modelled_first_deploy_of_production_stays_within_its_measured_bound():
    from tests.runs import stack_plan
    from tools.plan import timing
    plan = stack_plan("production")
    estimate = timing.estimate(plan)
    assert estimate["criticalPathSeconds"] <= CRITICAL_PATH_SECONDS
    # Its shape: the cluster, its CNI, cert-manager, the backup plugin PostgreSQL archives through, GitLab's database
    # applied on the primary, GitLab's migrations and Rails boot after it (the part of GitLab's install that waits for
    # the database: the release itself started long before), its routes, then a login proxy that reads GitLab's OIDC
    # discovery when it starts. No runner bootstrap: it ran during GitLab's install. No volume or Redis step (GitLab's
    # release no longer waits for its DragonflyDB instance), no object store (installed meanwhile).
    assert [(s["name"], s.get("after")) for s in estimate["criticalPath"]][-11:] == [
        ("cilium", None), ("ns-cert-manager", None), ("netpol-cert-manager-allow-api-server-webhooks", None),
        ("cert-manager", None), ("plugin-barman-cloud", None), ("postgres-object-store", None),
        ("postgres-database-gitlab", None), ("gitlab", "postgres-database-gitlab"), ("gitlab-registry-route", None),
        ("mlflow-oauth2-proxy", None), ("mlflow-route", None)]
    assert not [s for s in estimate["criticalPath"]
                if s["name"].startswith(("dragonfly-", "hcloud-csi", "storage-class-", "seaweedfs"))]
    resources, finish, _ = timing.schedule(plan)
    k3s = max(f for urn, f in finish.items() if resources[urn]["type"] == "command:remote:Command"
              and resources[urn]["name"].startswith("k3s-"))
    assert k3s <= 4 * 60 + 53
