"""Issue 20 finding 3: every consumer of a store has a login of its own (config/consumers.py is the one list),
limited to its own keyspace, database, topics or keys, delivered only to its namespace; GitLab's cache is an
instance of its own that no ad service can reach; no credential is in an output."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess

import pytest

from components.data import dragonfly
from components.data.clickhouse import users as clickhouse_users
from components.data.scylladb import bootstrap
from config.consumers import ADS, USER_STORES, store_consumers
from tests import variants
from tests.conftest import base_raw, stack_run
from tests.stores import NETPOL, SECRET, config_problems, policy, stack_config, string_data
from tests.test_credential_scope import holders
from tests.test_data_secrets import _generated
from tools.mockrun import Run

STACKS = ["production", "staging"]
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
USER = "kubernetes:cluster.redpanda.com/v1alpha2:User"
CHI = "kubernetes:clickhouse.altinity.com/v1:ClickHouseInstallation"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
# Each store's namespace and the prefix of its generated passwords (`<prefix>-<consumer>-password`).
STORE = {"scylladb": ("scylla", "scylla"), "redpanda": ("redpanda", "redpanda"),
         "clickhouse": ("clickhouse", "clickhouse"), "dragonfly": ("dragonfly", "dragonfly")}
PLATFORM_NAMESPACES = {"gitlab": "gitlab"}


def consumers(run: Run):
    return store_consumers(stack_config(run))


def ad_deployments(run: Run) -> dict[str, dict]:
    return {r.inputs["metadata"]["name"]: r.inputs for r in run.of_type(DEPLOYMENT)
            if "adplatform:ads:" in r.urn}


def secret_refs(deployment: dict) -> set[str]:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}


# --- one credential per consumer per store ---------------------------------------------------------------------
@pytest.mark.parametrize("stack", STACKS)
def test_each_consumer_has_a_password_of_its_own_held_only_by_the_store_and_itself(stack):
    """A consumer's generated password is in the store's namespace (or its own instance's) and the consumer's
    namespace, nowhere else; no two consumers share one."""
    run = stack_run(stack)
    generated = _generated(run)
    seen = []
    for store, found in consumers(run).items():
        namespace, prefix = STORE[store]
        for c in found:
            value = generated[f"{prefix}-{c.name}-password"]
            where = namespace if c.layer == ADS or store != "dragonfly" else f"dragonfly-{c.name}"
            consumer_ns = "ads" if c.layer == ADS else PLATFORM_NAMESPACES[c.name]
            assert holders(run, value) == {where, consumer_ns}, (store, c.name)
            seen.append(value)
    assert len(seen) == len(set(seen)) >= 12, "each consumer its own value, and enough of them to prove it"
    assert set(consumers(run)) == set(USER_STORES)


@pytest.mark.parametrize("stack", STACKS)
def test_no_two_ad_services_read_the_same_secret(stack):
    run = stack_run(stack)
    refs = {name: secret_refs(d) for name, d in ad_deployments(run).items()}
    assert len(refs) == 8
    for name, names in refs.items():
        for other, other_names in refs.items():
            if other != name:
                assert not names & other_names, (name, other, names & other_names)


# --- DragonflyDB: ACL users, and GitLab's own instance ----------------------------------------------------------
def acl_users(run: Run) -> dict[str, list[str]]:
    text = string_data(run.named("dragonfly-acl", SECRET))["dragonfly.acl"]
    return {line.split()[1]: line.split()[2:] for line in text.splitlines()}


@pytest.mark.parametrize("stack", STACKS)
def test_each_ad_service_is_an_acl_user_limited_to_its_own_keys(stack):
    run = stack_run(stack)
    users = acl_users(run)
    ads = [c.name for c in consumers(run)["dragonfly"] if c.layer == ADS]
    # With restore drills, one more user: the canary writer, which may only SET its one key (test_data_drills.py).
    drilled = any(r.name == "drill-dragonfly" for r in run.resources)
    assert set(users) == {"default", *ads, *(["drill-canary"] if drilled else [])} and len(ads) >= 3
    assert users["default"][0] == "off"  # no login without a user name
    for name in ads:
        rules = users[name]
        password = string_data(run.named(f"dragonfly-user-{name}", SECRET))["password"]
        assert rules[:2] == ["on", "#" + hashlib.sha256(password.encode()).hexdigest()]
        keys = [r for r in rules if "~" in r or r in ("allkeys", "resetkeys")]
        assert keys == ["resetkeys", f"~{name}:*"], name  # its own prefix only (no readsFrom in the profiles)
        assert [r for r in rules if r.startswith("&")] == [f"&{name}:*"]
        assert {"-@admin", "-@dangerous", "-@scripting"} <= set(rules) and "allchannels" not in rules
        env = {e["name"]: e for e in ad_deployments(run)[name]["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["DRAGONFLY_KEY_PREFIX"]["value"] == f"{name}:"
        assert env["DRAGONFLY_USERNAME"]["valueFrom"]["secretKeyRef"]["name"] == f"{name}-dragonfly"


def test_gitlabs_cache_is_its_own_instance_no_ad_service_can_reach(production):
    gitlab = production.named("dragonfly-gitlab", "kubernetes:dragonflydb.io/v1alpha1:Dragonfly").inputs
    assert gitlab["metadata"]["namespace"] == "dragonfly-gitlab"
    assert gitlab["spec"]["authentication"] == {"passwordFromSecret": {"name": "dragonfly-auth", "key": "password"}}
    password = string_data(production.named("dragonfly-gitlab-auth", SECRET))["password"]
    # Not a user of the ad services' instance, under any name or hash.
    assert "gitlab" not in acl_users(production)
    acl = string_data(production.named("dragonfly-acl", SECRET))["dragonfly.acl"]
    assert hashlib.sha256(password.encode()).hexdigest() not in acl and password not in acl
    # Only GitLab's namespace reaches its client port; the team namespaces reach only the ad services' instance.
    clients = [r.inputs["metadata"]["name"] for r in production.of_type(NETPOL)
               if r.inputs["metadata"]["namespace"] == "dragonfly-gitlab"
               and any(6379 in [p["port"] for p in rule.get("ports", [])]
                       for rule in r.inputs["spec"].get("ingress", []))]
    assert clients == ["allow-from-gitlab"]
    [rule] = policy(production, "dragonfly-gitlab", "allow-from-gitlab")["ingress"]
    assert rule["from"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "gitlab"}
    for name, deployment in ad_deployments(production).items():
        assert "dragonfly-gitlab" not in json.dumps(deployment), name
    for r in production.of_type(NETPOL):
        if r.inputs["metadata"]["namespace"] == "ads":
            assert "dragonfly-gitlab" not in json.dumps(r.inputs["spec"]), r.name
    # Its own size (a share of the stateful nodes), never the ad services' configured one.
    assert gitlab["spec"]["resources"]["limits"]["cpu"] == "1"


# --- Redpanda: SASL users with ACLs on their own topics ------------------------------------------------------------
def redpanda_acls(run: Run) -> dict[str, list[dict]]:
    """The consumers' users: not the backup export's and restore's own (test_disaster_recovery.py), nor the restore
    drills' canary writer (test_data_drills.py)."""
    from components.data.drills import RP_CANARY
    from components.data.redpanda_backup import BACKUP_USER, RESTORE_USER
    return {r.inputs["metadata"]["name"]: r.inputs["spec"]["authorization"]["acls"] for r in run.of_type(USER)
            if r.inputs["metadata"]["name"] not in (BACKUP_USER, RESTORE_USER, RP_CANARY)}


@pytest.mark.parametrize("stack", STACKS)
def test_each_redpanda_user_reaches_only_its_own_topics_groups_and_transactions(stack):
    run = stack_run(stack)
    acls = redpanda_acls(run)
    assert set(acls) == {c.name for c in consumers(run)["redpanda"]}
    for name, rules in acls.items():
        for rule in rules:
            resource = rule["resource"]
            if resource["type"] == "cluster":
                assert rule["operations"] == ["IdempotentWrite"]
                continue
            assert resource == {"type": resource["type"], "name": f"{name}.", "patternType": "prefixed"}, name
            assert rule["type"] == "allow" and "All" not in rule["operations"] and "Alter" not in rule["operations"]


# --- ScyllaDB: a role per consumer, granted its keyspace -----------------------------------------------------------
def bootstrap_files(run: Run) -> dict[str, str]:
    return run.named("scylla-bootstrap-scripts", CONFIG_MAP).inputs["data"]


@pytest.mark.parametrize("stack", STACKS)
def test_each_scylla_role_is_granted_its_own_keyspace_only(stack):
    run = stack_run(stack)
    files = bootstrap_files(run)
    found = consumers(run)["scylladb"]
    # besides the consumers, only the restore drills' canary role where ScyllaDB is drilled (tests/test_data_drills.py)
    assert [r for r in files["roles.txt"].splitlines() if r != bootstrap.CANARY] == [c.name for c in found]
    granted: dict[str, set[tuple[str, str]]] = {}
    for permission, keyspace, role in re.findall(r'^GRANT (\w+) ON KEYSPACE (\w+) TO "([^"]+)";$',
                                                 files["keyspaces.cql"], re.M):
        granted.setdefault(role, set()).add((permission, keyspace))
    for c in found:
        assert granted[c.name] == {(p, c.keyspace) for p in bootstrap.CONSUMER_PERMISSIONS}, c.name
    assert "GRANT ALL" not in files["keyspaces.cql"] and "AUTHORIZE" not in files["keyspaces.cql"]
    assert 'DROP ROLE IF EXISTS "adplatform";' in files["keyspaces.cql"]  # the old shared login
    env = {e["name"]: e for e in run.named("scylla-bootstrap", "kubernetes:batch/v1:Job")
           .inputs["spec"]["template"]["spec"]["containers"][0]["env"]}
    for i, c in enumerate(found):
        assert env[f"ROLE_PASSWORD_{i}"]["valueFrom"]["secretKeyRef"] == {"name": f"scylla-user-{c.name}",
                                                                          "key": "password"}


def test_bootstrap_quotes_role_names_and_passwords():
    """Run the script's own quoting functions: a quote inside a name or password stays inside its literal."""
    script = (bootstrap.SCRIPTS / "bootstrap.sh").read_text()
    functions = script[script.index("quoted_role()"):script.index("\n}\n", script.index("role_statements()")) + 3]
    out = subprocess.run(["bash", "-c", f'{functions}\nrole_statements "$1" "$2"', "-", 'ad"x', "p'w"],
                         capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ['CREATE ROLE IF NOT EXISTS "ad""x" WITH PASSWORD = \'p\'\'w\' AND LOGIN = true;',
                                'ALTER ROLE "ad""x" WITH PASSWORD = \'p\'\'w\' AND LOGIN = true;']


# --- ClickHouse: a user per consumer, granted its database ------------------------------------------------------------
@pytest.mark.parametrize("stack", STACKS)
def test_each_clickhouse_user_changes_only_its_own_database(stack):
    run = stack_run(stack)
    users = run.named("clickhouse-installation", CHI).inputs["spec"]["configuration"]["users"]
    names = [c.name for c in consumers(run)["clickhouse"]]
    assert names and "app/password_sha256_hex" not in users  # the old shared login is gone
    for name in names:
        database = clickhouse_users.database_of(name)
        assert users[f"{name}/grants/query"] == [f"GRANT {clickhouse_users.OWN_PRIVILEGES} ON {database}.*"]
        assert f"{name}/access_management" not in users and users[f"{name}/profile"] == "default"
        assert not {"DROP", "TRUNCATE", "ACCESS", "CLUSTER", "*.*"} & set(
            re.split(r"[ ,]+", users[f"{name}/grants/query"][0]))


# --- readsFrom: read-only access to another service's data ------------------------------------------------------------
def reads_run() -> Run:
    """Three services reading others' data (variants.READS_FROM; a run shared with other files)."""
    return variants.services_variant()


def test_reads_from_grants_read_only_access_in_each_shared_store():
    run = reads_run()
    topics = [r for r in redpanda_acls(run)["analytics-ingestion"] if r["resource"]["type"] == "topic"]
    assert [(r["resource"]["name"], r["operations"]) for r in topics[1:]] == [
        ("ad-serving.", ["Read", "Describe"]), ("bidding.", ["Read", "Describe"])]
    users = run.named("clickhouse-installation", CHI).inputs["spec"]["configuration"]["users"]
    assert users["reporting/grants/query"][1] == "GRANT SELECT, SHOW ON ads_analytics_ingestion.*"
    assert len(users["analytics-ingestion/grants/query"]) == 1  # readsFrom names no ClickHouse user of its
    rules = acl_users(run)["ml-inference"]
    assert "%R~bidding:*" in rules and "~bidding:*" not in rules and "~ml-inference:*" in rules


@pytest.mark.parametrize(("services", "key", "message"), [
    ({"reporting": {"readsFrom": ["reporting"]}}, "reporting.readsFrom", "must name other enabled services"),
    ({"reporting": {"readsFrom": ["ml-inference"]}}, "reporting.readsFrom", "must name other enabled services"),
    ({"reporting": {"readsFrom": ["nope"]}}, "reporting.readsFrom", "must name other enabled services"),
    ({"gitlab": {"stores": ["dragonfly"]}}, "gitlab", "names a platform component that also uses dataPlane.dragonfly"),
])
def test_bad_reads_from_or_a_consumer_name_taken_twice_is_refused(services, key, message):
    found = config_problems(base_raw(adServices={"services": services}))
    assert any(p.startswith(f"adplatform:adServices.services.{key} ") and message in p for p in found), found


# --- outputs -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stack", STACKS)
def test_outputs_name_each_consumers_secret_and_hold_no_credential(stack):
    run = stack_run(stack)
    # Secret outputs are encrypted in the state and shown only with --show-secrets: the secret store's recovery
    # key is one on purpose (secretsRecovery, test_services_secrets.py); every other output is plain.
    assert "secretsRecovery" in run.secret_outputs
    text = json.dumps({k: v for k, v in run.outputs.items() if k not in run.secret_outputs})
    for value in _generated(run).values():
        assert value not in text and hashlib.sha256(value.encode()).hexdigest() not in text
    endpoint = run.outputs["dataPlane"]["dragonfly"]["endpoint"]
    assert set(endpoint["users"]) == {c.name for c in consumers(run)["dragonfly"] if c.layer == ADS}
    if "gitlab" in endpoint["dedicated"]:
        assert endpoint["dedicated"]["gitlab"]["users"]["gitlab"]["secret"] == "dragonfly-user-gitlab"


# --- PostgreSQL: each owner role into its own database only ---------------------------------------------------------
def test_each_postgres_role_logs_in_to_its_own_database_only(production):
    spec = production.named("postgres-cluster", "kubernetes:postgresql.cnpg.io/v1:Cluster").inputs["spec"]
    # The consumers' databases, and the restore drills' canary (production drills PostgreSQL: test_data_drills.py).
    databases = [*stack_config(production).data_plane.postgres.databases, "drill_canary"]
    assert spec["postgresql"]["pg_hba"] == [*(f"host {db} {db} all scram-sha-256" for db in databases),
                                            "host all all all reject"]
    roles = {r["name"]: r for r in spec["managed"]["roles"]}
    assert set(roles) == set(databases)
    for db, r in roles.items():
        assert r["passwordSecret"] == {"name": f"postgres-{db}".replace("_", "-")} and not r["superuser"] and not r["createrole"]
