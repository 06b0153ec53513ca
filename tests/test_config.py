"""Config validation: every error names the key, the value given and what is accepted."""

from __future__ import annotations

import pytest

from config import ConfigError, load
from config.catalog import ROLES, SIZES
from config.profiles import PROFILES
from tests.conftest import SECRET_KEYS, VALID_KEY, base_raw

SECRET = SECRET_KEYS


def problems(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load("test", raw, SECRET)
    return [str(p) for p in err.value.problems]


def one_problem(raw: dict) -> str:
    found = problems(raw)
    assert len(found) == 1, found
    return found[0]


def test_valid_minimal_config_takes_profile_defaults():
    loaded = load("test", base_raw(), SECRET)
    cluster = loaded.config.cluster
    assert cluster.control_plane.count == 3
    assert {p.name: p.count for p in cluster.pools} == {
        "general": 5, "scylladb": 3, "redpanda": 3, "clickhouse": 3, "stateful": 3}
    assert loaded.profile.protect and loaded.profile.strict


def test_unknown_provider():
    msg = one_problem(base_raw(provider="digitalocean"))
    from config.catalog import PROVIDERS
    assert msg == f"adplatform:provider must be one of {', '.join(PROVIDERS)}, got 'digitalocean'"


def test_unknown_profile():
    msg = one_problem(base_raw(profile="prod"))
    assert msg.startswith("adplatform:profile must be one of production, staging, compact, got 'prod'")


@pytest.mark.parametrize("count", [0, 2, 4, 9])
def test_control_plane_count_must_be_odd_and_positive(count):
    msg = one_problem(base_raw(cluster={"controlPlane": {"count": count}}))
    assert msg == (f"adplatform:cluster.controlPlane.count must be odd (1, 3, 5 or 7) so embedded etcd keeps "
                   f"a quorum, got {count}")


def test_duplicate_pool_names():
    raw = base_raw(cluster={"pools": [{"name": "extra", "role": "general", "count": 2},
                                      {"name": "extra", "role": "general", "count": 2}]})
    assert one_problem(raw) == "adplatform:cluster.pools must have unique names; 'extra' appears 2 times, got 'extra'"


def test_unknown_pool_role():
    msg = one_problem(base_raw(cluster={"pools": [{"name": "gpu", "role": "ml", "count": 2}]}))
    assert msg.startswith("adplatform:cluster.pools[gpu].role must be one of the roles general, scylladb")
    assert msg.endswith("got 'ml'")


@pytest.mark.parametrize("taint, expected", [
    ("dedicated", "must be a taint 'key[=value]:Effect'"),
    ("dedicated=db:Sometimes", "must end in one of the effects NoSchedule, PreferNoSchedule, NoExecute"),
    ("bad key=x:NoSchedule", "must be a taint"),
])
def test_taint_syntax(taint, expected):
    msg = one_problem(base_raw(cluster={"pools": [{"name": "scylladb", "taints": [taint]}]}))
    assert msg.startswith(f"adplatform:cluster.pools[scylladb].taints[0] {expected}")
    assert msg.endswith(f"got {taint!r}")


def test_valid_taints_are_accepted():
    raw = base_raw(cluster={"pools": [{"name": "scylladb", "taints": ["example.com/db=scylla:NoExecute", "x:NoSchedule"]}]})
    pool = next(p for p in load("test", raw, SECRET).config.cluster.pools if p.name == "scylladb")
    assert pool.node_taints == ("example.com/db=scylla:NoExecute", "x:NoSchedule")


@pytest.mark.parametrize("cidr", ["10.0.0.1/8", "300.1.1.0/24", "office"])
def test_invalid_admin_cidr(cidr):
    msg = one_problem(base_raw(adminCidrs=["198.51.100.0/24", cidr]))
    assert msg.startswith("adplatform:adminCidrs[1] must be a network in CIDR notation")
    assert msg.endswith(f"got {cidr!r}")


def test_world_open_admin_cidr_refused_in_production_allowed_in_staging():
    msg = one_problem(base_raw(adminCidrs=["0.0.0.0/0"]))
    assert msg.startswith("adplatform:adminCidrs must not open SSH and the Kubernetes API to the whole internet")
    load("test", base_raw(profile="staging", adminCidrs=["0.0.0.0/0"]), SECRET)


def test_missing_ssh_public_keys():
    msg = one_problem(base_raw(sshPublicKeys=[]))
    assert msg == "adplatform:sshPublicKeys must list at least one SSH public key (ssh-ed25519 ...), got []"


def test_malformed_ssh_public_key():
    msg = one_problem(base_raw(sshPublicKeys=[VALID_KEY, "AAAA-not-a-key"]))
    assert msg.startswith("adplatform:sshPublicKeys[1] must be an OpenSSH public key line")


def test_missing_ssh_private_key():
    raw = base_raw()
    del raw["sshPrivateKey"]
    assert one_problem(raw).startswith("adplatform:sshPrivateKey must be set")


def test_plaintext_ssh_private_key_refused():
    with pytest.raises(ConfigError, match="sshPrivateKey must be stored as a secret"):
        load("test", base_raw(), set())


def test_missing_required_key():
    raw = base_raw()
    del raw["domain"]
    assert one_problem(raw) == "adplatform:domain must be set"


@pytest.mark.parametrize("version", ["1.36.4+k3s1", "v1.36.4", "v1.36+k3s1", "v2.0.0+k3s1", "latest"])
def test_k3s_version_format(version):
    msg = one_problem(base_raw(cluster={"k3sVersion": version}))
    assert msg == (f"adplatform:cluster.k3sVersion must be a K3s release of the form v1.X.Y+k3sN, "
                   f"e.g. v1.36.4+k3s1, got {version!r}")


def test_database_pool_too_small_for_replication_in_production():
    msg = one_problem(base_raw(cluster={"pools": [{"name": "scylladb", "count": 2}]}))
    assert msg == ("adplatform:cluster.pools[scylladb].count must be at least 3 in the production profile "
                   "(replication factor 3 puts one replica per rack and node), got 2")


def test_small_database_pools_are_fine_in_staging():
    loaded = load("test", base_raw(profile="staging"), SECRET)
    assert all(p.count == 1 for p in loaded.config.cluster.pools if p.role != "general")


def test_removing_a_database_role_in_production_needs_the_data_plane_off():
    raw = base_raw(cluster={"pools": [{"name": "redpanda", "count": 0}]})
    assert "must give the redpanda role at least 3 nodes" in one_problem(raw)
    load("test", base_raw(cluster={"pools": [{"name": "redpanda", "count": 0}]}, layers={"dataPlane": False}), SECRET)


def test_unknown_key_is_named_with_accepted_keys():
    msg = one_problem(base_raw(cluster={"contolPlane": {"count": 3}}))
    assert msg.startswith("adplatform:cluster has unknown key(s) 'contolPlane' (accepted: apiLoadBalancer, controlPlane")


def test_overlapping_networks():
    msg = one_problem(base_raw(cluster={"podCidr": "10.0.0.0/16"}))
    assert msg == "adplatform:cluster.podCidr must not overlap cluster.subnetCidr (10.0.1.0/24), got '10.0.0.0/16'"


def test_subnet_outside_network():
    msg = one_problem(base_raw(cluster={"subnetCidr": "192.168.1.0/24"}))
    assert msg == "adplatform:cluster.subnetCidr must lie inside cluster.networkCidr (10.0.0.0/8), got '192.168.1.0/24'"


def test_kubelet_restricted_label_refused():
    msg = one_problem(base_raw(cluster={"pools": [{"name": "general", "labels": {"node-role.kubernetes.io/worker": "true"}}]}))
    assert "kubernetes.io/k8s.io namespace the kubelet may not set" in msg
    assert msg.startswith("adplatform:cluster.pools[general].labels")


def test_all_problems_reported_at_once():
    found = problems(base_raw(provider="digitalocean", domain="no_dots", cluster={"controlPlane": {"count": 2}}))
    assert len(found) == 3


def test_pools_merge_by_name_and_count_zero_removes():
    raw = base_raw(profile="staging", cluster={"pools": [
        {"name": "scylladb", "count": 3, "serverType": "ccx63"},
        {"name": "clickhouse", "count": 0},
        {"name": "hotpath", "role": "general", "count": 2, "size": "dedicated-large"}]},
        dataPlane={"clickhouse": {"enabled": False}}, layers={"adServices": False})
    cluster = load("test", raw, SECRET).config.cluster
    pools = {p.name: p for p in cluster.active_pools}
    assert "clickhouse" not in pools
    assert pools["scylladb"].count == 3 and pools["scylladb"].server_type == "ccx63"
    assert pools["scylladb"].size == "medium"  # untouched fields keep the profile value
    assert pools["hotpath"].node_labels["adplatform.io/pool"] == "hotpath"


def test_profiles_reference_only_known_roles_and_sizes():
    for profile in PROFILES.values():
        cluster = profile.defaults["cluster"]
        assert cluster["controlPlane"]["size"] in SIZES
        for pool in cluster["pools"]:
            assert pool["role"] in ROLES and pool["size"] in SIZES


def test_production_keeps_scylladb_and_redpanda_on_separate_tainted_pools():
    cluster = load("test", base_raw(), SECRET).config.cluster
    scylla = next(p for p in cluster.pools if p.role == "scylladb")
    redpanda = next(p for p in cluster.pools if p.role == "redpanda")
    assert scylla.name != redpanda.name
    assert scylla.node_taints == ("adplatform.io/dedicated=scylladb:NoSchedule",)
    assert redpanda.node_taints == ("adplatform.io/dedicated=redpanda:NoSchedule",)
    assert cluster.control_plane.taints == ("CriticalAddonsOnly=true:NoExecute",)


def test_compact_profile_is_five_untainted_servers():
    cluster = load("test", base_raw(profile="compact"), SECRET).config.cluster
    assert cluster.control_plane.count + sum(p.count for p in cluster.active_pools) == 5
    assert cluster.control_plane.taints == ()
    assert all(p.node_taints == () and p.role == "converged" for p in cluster.active_pools)


# --- cluster services -----------------------------------------------------------------------------

def _services(**settings) -> dict:
    raw = base_raw()
    raw["clusterServices"] = {**raw["clusterServices"], **settings}
    return raw


def test_cluster_services_defaults_per_profile():
    prod = load("test", base_raw(), SECRET).config.cluster_services
    staging = load("test", base_raw(profile="staging"), SECRET).config.cluster_services
    assert prod.backups.enabled and not staging.backups.enabled
    assert prod.upgrades.agent_concurrency == 1 and staging.upgrades.agent_concurrency == 2
    assert prod.secrets.backend == "openbao" and prod.secrets.replicas == 3
    assert [t.name for t in prod.teams] == ["ads"]
    assert "gitlab" in prod.gateway.hostnames and not prod.mesh.linkerd


def test_acme_email_is_required_with_the_cluster_services_layer():
    raw = base_raw()
    raw["clusterServices"] = {"backups": raw["clusterServices"]["backups"]}
    assert one_problem(raw).startswith("adplatform:clusterServices.tls.acmeEmail must be set")
    raw["layers"] = {"clusterServices": False}
    load("test", raw, SECRET)  # without the layer nothing asks for it


def test_acme_email_syntax():
    msg = one_problem(_services(tls={"acmeEmail": "ops-at-example"}))
    assert msg.startswith("adplatform:clusterServices.tls.acmeEmail must be an e-mail address")
    assert msg.endswith("got 'ops-at-example'")


def test_production_requires_backups_with_s3_and_secret_keys():
    msg = one_problem(_services(backups={"enabled": False}))
    assert msg.startswith("adplatform:clusterServices.backups.enabled must be true in the production profile")
    raw = base_raw()
    raw["clusterServices"] = {"tls": raw["clusterServices"]["tls"]}
    del raw["backupAccessKeyId"], raw["backupSecretAccessKey"]
    found = problems(raw)
    assert any(p.startswith("adplatform:clusterServices.backups.s3 must be set when backups are enabled") for p in found)
    assert any(p.startswith("adplatform:backupAccessKeyId must be set with --secret") for p in found)
    assert any(p.startswith("adplatform:backupSecretAccessKey must be set with --secret") for p in found)


def test_backup_keys_in_plain_text_are_refused():
    with pytest.raises(ConfigError) as err:
        load("test", base_raw(), {"sshPrivateKey"})  # the keys are present, but not marked secret
    messages = [str(p) for p in err.value.problems]
    assert "adplatform:backupSecretAccessKey must be stored as a secret (pulumi config set --secret " \
           "adplatform:backupSecretAccessKey ...), it is in plain text in the stack file" in messages


@pytest.mark.parametrize("field, value, expected", [
    ("endpoint", "http://s3.example.com", "must be an https:// S3 endpoint URL"),
    ("bucket", "Bad_Bucket", "must be an S3 bucket name"),
])
def test_backup_target_syntax(field, value, expected):
    s3 = {"endpoint": "https://fsn1.your-objectstorage.com", "region": "fsn1", "bucket": "b-backups", field: value}
    msg = one_problem(_services(backups={"s3": s3}))
    assert msg.startswith(f"adplatform:clusterServices.backups.s3.{field} {expected}")


@pytest.mark.parametrize("key, value, expected", [
    ("etcdSchedule", "every 6 hours", "must be a 5-field cron expression"),
    ("etcdRetention", 0, "must be between 1 and 1000 snapshots"),
    ("veleroTtl", "30 days", "must be a Go duration"),
])
def test_backup_schedule_syntax(key, value, expected):
    raw = _services()
    raw["clusterServices"]["backups"] = {**raw["clusterServices"]["backups"], key: value}
    assert one_problem(raw).startswith(f"adplatform:clusterServices.backups.{key} {expected}")


def test_dns01_needs_its_provider_fields_and_a_secret_token():
    found = problems(_services(tls={"acmeEmail": "ops@example.com", "dns01": {"provider": "route53", "zone": "example.com"}}))
    assert "adplatform:clusterServices.tls.dns01.hostedZoneId must be set for the route53 DNS-01 solver" in found
    assert "adplatform:clusterServices.tls.dns01.accessKeyId must be set for the route53 DNS-01 solver" in found
    assert any(p.startswith("adplatform:dnsApiToken must be set with --secret for the route53 DNS-01 solver") for p in found)
    msg = one_problem(_services(tls={"acmeEmail": "ops@example.com", "dns01": {"provider": "hetzner", "zone": "x.com"}}))
    assert msg.startswith("adplatform:clusterServices.tls.dns01.provider must be one of cloudflare, route53, rfc2136")
    raw = _services(tls={"acmeEmail": "ops@example.com", "dns01": {"provider": "cloudflare", "zone": "example.com"}})
    raw["dnsApiToken"] = "cf-token"
    assert load("test", raw, SECRET).secrets.dns_api_token is not None


def test_secret_store_replicas_must_keep_a_raft_quorum():
    assert one_problem(_services(secrets={"replicas": 2})).startswith(
        "adplatform:clusterServices.secrets.replicas must be 1, 3 or 5 (raft needs an odd number of voters), got 2")
    assert one_problem(_services(secrets={"replicas": 1})).startswith(
        "adplatform:clusterServices.secrets.replicas must be at least 3 in the production profile")
    assert one_problem(_services(secrets={"backend": "sops"})).startswith(
        "adplatform:clusterServices.secrets.backend must be one of openbao, vault")


def test_teams_and_hostnames_are_dns_labels():
    msg = one_problem(_services(teams=[{"name": "Ad_Team"}]))
    assert msg.startswith("adplatform:clusterServices.teams[Ad_Team].name 'Ad_Team' must be a DNS label")
    found = problems(_services(teams=[{"name": "ads"}, {"name": "ads"}]))
    assert "adplatform:clusterServices.teams must have unique names; 'ads' appears 2 times, got 'ads'" in found
    msg = one_problem(_services(gateway={"hostnames": ["gitlab", "gitlab"]}))
    assert msg.startswith("adplatform:clusterServices.gateway.hostnames must not repeat a hostname")


def test_unknown_cluster_services_key_names_the_accepted_ones():
    msg = one_problem(_services(ingress={"class": "nginx"}))
    assert msg.startswith("adplatform:clusterServices has unknown key(s) 'ingress' (accepted: backups, dns, gateway, mesh")


def test_meshed_namespaces_must_be_team_namespaces():
    # Without the ad services: meshing `ads` also adds Linkerd's proxies to their quota check (config/ads.py).
    msg = one_problem({**_services(mesh={"linkerd": True, "namespaces": ["ads", "payments"]}),
                       "layers": {"adServices": False}})
    assert msg == ("adplatform:clusterServices.mesh.namespaces must name team namespaces (clusterServices.teams: "
                   "ads): only those are labelled for injection, got 'payments'")
    load("test", _services(mesh={"linkerd": False, "namespaces": ["payments"]}), SECRET)  # off: not checked


def test_dns01_zone_must_contain_the_domain():
    raw = _services(tls={"acmeEmail": "ops@example.com", "dns01": {"provider": "cloudflare", "zone": "other.com"}})
    raw["dnsApiToken"] = "cf-token"
    assert one_problem(raw) == ("adplatform:clusterServices.tls.dns01.zone must be the DNS zone of domain "
                                "'ads.example.com' (the domain itself or a parent of it), or the wildcard "
                                "certificate is never issued, got 'other.com'")
    raw["clusterServices"]["tls"]["dns01"]["zone"] = "example.com"
    load("test", raw, SECRET)


def test_gateway_hostnames_fit_one_gateway():
    raw = _services(gateway={"hostnames": [f"h{i}" for i in range(64)]})
    raw["layers"] = {"platform": False, "adServices": False}  # their hosts are not among h0..h63
    msg = one_problem(raw)
    assert msg.startswith("adplatform:clusterServices.gateway.hostnames must list at most 63 hostnames")


def test_secret_store_replicas_need_as_many_untainted_nodes():
    raw = _services(secrets={"replicas": 5})
    raw["cluster"] = {"pools": [{"name": "general", "count": 3}]}
    assert one_problem(raw) == ("adplatform:clusterServices.secrets.replicas must not exceed the 3 nodes without "
                                "taints: raft voters run one per node, got 5")
    raw["cluster"] = {"pools": [{"name": "general", "count": 5}]}
    load("test", raw, SECRET)


def test_a_bare_metal_block_under_another_provider_is_refused():
    hosts = {"hosts": [{"publicAddress": "203.0.113.10", "privateAddress": "10.0.1.10", "pool": "control-plane"}],
             "loadBalancerAddresses": ["192.0.2.240/28"]}
    assert one_problem(base_raw(bareMetal=hosts)).startswith(
        "adplatform:bareMetal is only read with provider: baremetal (the stack's provider is 'hetzner')")


@pytest.mark.parametrize(("store", "settings", "expected"), [
    ("postgres", {"databases": ["app"]},
     "adplatform:dataPlane.postgres.databases database 'app' is a name PostgreSQL or CloudNativePG keeps for itself"),
    ("postgres", {"databases": ["gitlab", "ca"]}, "database 'ca' is a name"),  # would overwrite the Secret postgres-ca
    ("postgres", {"databases": ["postgres"]}, "reserved: app, ca, postgres, replication, server"),
    ("postgres", {"databases": ["Gitlab"]}, "database 'Gitlab' must be 1-63 characters of a-z, 0-9 and '_'"),
    ("postgres", {"databases": ["gitlab", "gitlab"]}, "dataPlane.postgres.databases must not repeat a database"),
    ("postgres", {"backupRetention": "30 days"},
     "dataPlane.postgres.backupRetention must be a retention such as 30d, 4w or 3m, got '30 days'"),
    ("postgres", {"walStorageSize": "20G"}, "dataPlane.postgres.walStorageSize must be a volume size in Gi or Ti"),
    ("postgres", {"bogus": 1}, "dataPlane.postgres has unknown key(s) 'bogus' (accepted: backupRetention"),
    ("redpanda", {"retentionHours": 0}, "dataPlane.redpanda.retentionHours must be between 1 and 87600 hours"),
    ("redpanda", {"memory": "lots"}, "dataPlane.redpanda.memory must be a Kubernetes quantity such as 500m, 4, 8Gi, "
                                     "got 'lots'"),
    ("objectStorage", {"storageSize": "1Pi"}, "dataPlane.objectStorage.storageSize must be a volume size in Gi or Ti"),
])
def test_data_plane_settings_errors_name_key_value_and_accepted(store, settings, expected):
    assert expected in one_problem(base_raw(dataPlane={store: settings}))


def test_database_names_with_underscores_stay_accepted():
    """The reserved list refuses whole names only (the Secret name replaces '_' with '-')."""
    names = ["app_events", "ca_data", "gitlab", "airflow", "mlflow", "jupyterhub"]
    loaded = load("test", base_raw(dataPlane={"postgres": {"databases": names}}), SECRET)
    assert loaded.config.data_plane.postgres.databases == names
